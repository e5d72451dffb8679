// SPDX-License-Identifier: GPL-2.0
/*
 * libluo: wrappers over the LUO uAPI and helpers for LUO agents.
 * See libluo.h for what each function does and returns.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/kexec.h>
#include <linux/reboot.h>

#include "tools.h"
#include "libluo.h"

/*
 * Copy @name into a uAPI name field.  Checked here rather than by the
 * kernel so that a long name is reported as such, not as a bare EINVAL.
 */
static int set_name(__u8 dst[LUO_NAME_SIZE], const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (!len)
		return -EINVAL;
	if (len >= LUO_NAME_SIZE)
		return -ENAMETOOLONG;
	memset(dst, 0, LUO_NAME_SIZE);
	memcpy(dst, name, len);
	return 0;
}

int luo_open(void)
{
	int fd = open(LUO_DEVICE, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int luo_create_session(int dev, const char *name, int *sfd)
{
	struct liveupdate_ioctl_create_session arg;
	int ret;

	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	ret = set_name(arg.name, name);
	if (ret)
		return ret;
	if (ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, &arg))
		return -errno;
	*sfd = arg.fd;
	return 0;
}

int luo_retrieve_session(int dev, const char *name, int *sfd)
{
	struct liveupdate_ioctl_retrieve_session arg;
	int ret;

	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	ret = set_name(arg.name, name);
	if (ret)
		return ret;
	if (ioctl(dev, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, &arg))
		return -errno;
	*sfd = arg.fd;
	return 0;
}

int luo_list_sessions(int dev, char names[][LUO_NAME_SIZE], unsigned int max,
		      unsigned int *count)
{
	struct liveupdate_ioctl_list_sessions arg;

	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	arg.count = names ? max : 0;
	arg.names = (uintptr_t)names;
	if (ioctl(dev, LIVEUPDATE_IOCTL_LIST_SESSIONS, &arg))
		return -errno;
	*count = arg.count;
	return 0;
}

int luo_get_timeline(int dev, struct liveupdate_timeline_step *steps,
		     unsigned int max, unsigned int *count,
		     unsigned int *flags)
{
	struct liveupdate_ioctl_get_timeline arg;

	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	arg.count = steps ? max : 0;
	arg.steps = (uintptr_t)steps;
	if (ioctl(dev, LIVEUPDATE_IOCTL_GET_TIMELINE, &arg))
		return -errno;
	*count = arg.count;
	*flags = arg.flags;
	return 0;
}

const char *luo_timeline_step_str(unsigned int step)
{
	static const char * const names[] = {
		[LIVEUPDATE_TL_REBOOT] = "reboot",
		[LIVEUPDATE_TL_PREPARE] = "prepare",
		[LIVEUPDATE_TL_FREEZE] = "freeze",
		[LIVEUPDATE_TL_FREEZE_FLB] = "freeze-flb",
		[LIVEUPDATE_TL_WRITE] = "write",
		[LIVEUPDATE_TL_SHUTDOWN] = "shutdown",
		[LIVEUPDATE_TL_JUMP] = "jump",
		[LIVEUPDATE_TL_BOOT] = "boot",
		[LIVEUPDATE_TL_KHO_RESERVE] = "kho-reserve",
		[LIVEUPDATE_TL_RESTORE] = "restore",
		[LIVEUPDATE_TL_READY] = "ready",
		[LIVEUPDATE_TL_OPEN] = "open",
		[LIVEUPDATE_TL_PRELOAD] = "preload",
		[LIVEUPDATE_TL_RETRIEVE_SESSION] = "retrieve-session",
		[LIVEUPDATE_TL_RETRIEVE_FD] = "retrieve-fd",
		[LIVEUPDATE_TL_FINISH] = "finish",
	};

	if (step < ARRAY_SIZE(names) && names[step])
		return names[step];
	return "unknown";
}

int luo_walk_sessions(int dev, int (*fn)(const char *name, void *arg),
		      void *arg)
{
	char (*names)[LUO_NAME_SIZE] = NULL;
	unsigned int room = 0, count = 0, i;
	int ret;

	/* The list can grow between two calls: ask again until it fits. */
	for (;;) {
		ret = luo_list_sessions(dev, names, room, &count);
		if (ret)
			goto out;
		if (count <= room)
			break;
		free(names);
		room = count + 8;
		names = calloc(room, LUO_NAME_SIZE);
		if (!names)
			return -ENOMEM;
	}
	for (i = 0; i < count; i++) {
		names[i][LUO_NAME_SIZE - 1] = '\0';
		ret = fn(names[i], arg);
		if (ret)
			break;
	}
out:
	free(names);
	return ret;
}

int luo_preserve_fd(int sfd, int fd, uint64_t token)
{
	struct liveupdate_session_preserve_fd arg;

	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	arg.fd = fd;
	arg.token = token;
	return ioctl(sfd, LIVEUPDATE_SESSION_PRESERVE_FD, &arg) ? -errno : 0;
}

int luo_unpreserve_fd(int sfd, uint64_t token)
{
	struct liveupdate_session_unpreserve_fd arg;

	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	arg.token = token;
	return ioctl(sfd, LIVEUPDATE_SESSION_UNPRESERVE_FD, &arg) ? -errno : 0;
}

int luo_retrieve_fd(int sfd, uint64_t token, int *fd)
{
	struct liveupdate_session_retrieve_fd arg;

	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	arg.token = token;
	if (ioctl(sfd, LIVEUPDATE_SESSION_RETRIEVE_FD, &arg))
		return -errno;
	*fd = arg.fd;
	return 0;
}

int luo_finish(int sfd)
{
	struct liveupdate_session_finish arg;

	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	return ioctl(sfd, LIVEUPDATE_SESSION_FINISH, &arg) ? -errno : 0;
}

int luo_session_name(int sfd, char name[LUO_NAME_SIZE])
{
	struct liveupdate_session_get_name arg;

	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	if (ioctl(sfd, LIVEUPDATE_SESSION_GET_NAME, &arg))
		return -errno;
	memcpy(name, arg.name, LUO_NAME_SIZE);
	name[LUO_NAME_SIZE - 1] = '\0';
	return 0;
}

int luo_query(int sfd, unsigned int *kind, struct liveupdate_file_info *files,
	      unsigned int max, unsigned int *count)
{
	struct liveupdate_session_query arg;

	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	arg.count = files ? max : 0;
	arg.files = (uintptr_t)files;
	if (ioctl(sfd, LIVEUPDATE_SESSION_QUERY, &arg))
		return -errno;
	if (kind)
		*kind = arg.kind;
	if (count)
		*count = arg.count;
	return 0;
}

int luo_file_count(int sfd, unsigned int *kind)
{
	unsigned int count = 0;
	int ret = luo_query(sfd, kind, NULL, 0, &count);

	return ret ? ret : (int)count;
}

const char *luo_kind_str(unsigned int kind)
{
	switch (kind) {
	case LIVEUPDATE_SESSION_OUTGOING:
		return "outgoing";
	case LIVEUPDATE_SESSION_INCOMING:
		return "incoming";
	}
	return "unknown";
}

const char *luo_file_state_str(unsigned int state)
{
	switch (state) {
	case LIVEUPDATE_FILE_PRESERVED:
		return "preserved";
	case LIVEUPDATE_FILE_INCOMING:
		return "incoming";
	case LIVEUPDATE_FILE_RETRIEVED:
		return "retrieved";
	case LIVEUPDATE_FILE_BROKEN:
		return "broken";
	case LIVEUPDATE_FILE_SETTLING:
		return "settling";
	}
	return "unknown";
}

int luo_connect_timeout(const char *path, int timeout_ms)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	int sock, err;

	if (len >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, path, len + 1);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return -errno;
	if (timeout_ms >= 0) {
		/* 0 would mean "for ever" to SO_SNDTIMEO. */
		int ms = timeout_ms ? timeout_ms : 1;
		struct timeval tv = {
			.tv_sec = ms / 1000,
			.tv_usec = (ms % 1000) * 1000,
		};

		if (setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv,
			       sizeof(tv))) {
			err = -errno;
			close(sock);
			return err;
		}
	}
	/* A unix connect() waits, up to SO_SNDTIMEO, while the backlog is full. */
	while (connect(sock, (struct sockaddr *)&addr, sizeof(addr))) {
		if (errno == EINTR)
			continue;
		err = errno == EAGAIN && timeout_ms >= 0 ? -ETIMEDOUT : -errno;
		close(sock);
		return err;
	}
	return sock;
}

int luo_connect(const char *path)
{
	return luo_connect_timeout(path, -1);
}

ssize_t luo_send_fd_some(int sock, int fd, const void *msg, size_t len,
			 int flags)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr mh;
	struct iovec iov;
	ssize_t n;

	if (fd >= 0 && !len)
		return -EINVAL;
	memset(&mh, 0, sizeof(mh));
	iov.iov_base = (void *)msg;
	iov.iov_len = len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

int luo_send_fd(int sock, int fd, const void *msg, size_t len)
{
	const char *p = msg;
	ssize_t n;

	if (fd >= 0 && !len)
		return -EINVAL;
	while (len) {
		n = luo_send_fd_some(sock, fd, p, len, 0);
		if (n < 0)
			return n;
		/* The fd went with the first chunk. */
		fd = -1;
		p += n;
		len -= n;
	}
	return 0;
}

static ssize_t recv_fd(int sock, int *fd, void *buf, size_t len, int flags)
{
	/* Room for a few fds, so that a sender passing more cannot leak. */
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct cmsghdr *cm;
	struct msghdr mh;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	int got = -1;
	ssize_t n;

	if (fd)
		*fd = -1;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.buf;
	mh.msg_controllen = sizeof(ctl.buf);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t i, nfds;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		nfds = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < nfds; i++) {
			int f;

			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int),
			       sizeof(int));
			if (got < 0 && fd)
				got = f;
			else
				close(f);
		}
	}
	if (mh.msg_flags & MSG_CTRUNC) {
		if (got >= 0)
			close(got);
		return -EMSGSIZE;
	}
	if (fd)
		*fd = got;
	return n;
}

ssize_t luo_recv_fd(int sock, int *fd, void *buf, size_t len)
{
	return recv_fd(sock, fd, buf, len, 0);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int luo_recv_line(int sock, char *line, size_t size, int *fd, int timeout_ms)
{
	long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	size_t len = 0;
	int got = -1, ret;

	if (fd)
		*fd = -1;
	if (!size)
		return -EINVAL;
	for (;;) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN };
		int wait = -1, f;
		ssize_t n;
		char c;

		/* Poll only when nothing is there yet. */
		n = recv_fd(sock, &f, &c, 1, MSG_DONTWAIT);
		if (n == -EAGAIN) {
			if (deadline >= 0) {
				long long left = deadline - now_ms();

				wait = left > 0 ? (int)left : 0;
			}
			ret = poll(&pfd, 1, wait);
			if (ret < 0 && errno == EINTR)
				continue;
			if (ret < 0) {
				ret = -errno;
				goto fail;
			}
			if (!ret) {
				ret = -ETIMEDOUT;
				goto fail;
			}
			continue;
		}
		if (n < 0) {
			ret = n;
			goto fail;
		}
		if (!n) {
			ret = -ECONNRESET;
			goto fail;
		}
		if (f >= 0) {
			/* One fd per line at most: drop extras. */
			if (got < 0 && fd)
				got = f;
			else
				close(f);
		}
		if (c == '\n')
			break;
		if (len + 1 >= size) {
			ret = -EMSGSIZE;
			goto fail;
		}
		line[len++] = c;
	}
	if (len && line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	if (fd)
		*fd = got;
	return len;
fail:
	if (got >= 0)
		close(got);
	line[0] = '\0';
	return ret;
}

int luo_send_line(int sock, const char *line)
{
	size_t len = strlen(line);
	char *buf = malloc(len + 1);
	int ret;

	if (!buf)
		return -ENOMEM;
	memcpy(buf, line, len);
	buf[len] = '\n';
	/* One send, so that a line is never interleaved with another. */
	ret = luo_send_fd(sock, -1, buf, len + 1);
	free(buf);
	return ret;
}

/* kstrtobool()'s idea of "true", which is what liveupdate= is parsed with. */
static bool value_is_on(const char *v, size_t len)
{
	if (len && *v == '"') {
		v++;
		len--;
	}
	if (!len)
		return false;
	switch (v[0]) {
	case 'y': case 'Y': case 't': case 'T': case '1':
		return true;
	case 'o': case 'O':
		return len > 1 && (v[1] == 'n' || v[1] == 'N');
	}
	return false;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n';
}

/*
 * The next token of a command line at *@p (split on blanks, double quotes
 * grouping, as the kernel's parse_args() does), or NULL at the end; its
 * length in *@len, and *@p moved past it.
 */
static const char *next_token(const char **p, size_t *len)
{
	const char *s = *p, *start;
	bool quoted = false;

	while (is_blank(*s))
		s++;
	start = s;
	while (*s && (quoted || !is_blank(*s))) {
		if (*s == '"')
			quoted = !quoted;
		s++;
	}
	*p = s;
	*len = s - start;
	return *len ? start : NULL;
}

static bool is_end_of_kernel_args(const char *tok, size_t len)
{
	return len == 2 && !strncmp(tok, "--", 2);
}

/* Does @tok (of @len bytes) start with @key ("name=")? */
static bool token_is(const char *tok, size_t len, const char *key)
{
	size_t klen = strlen(key);

	return len >= klen && !strncmp(tok, key, klen);
}

/*
 * Walk the kernel's part of @cmdline (" -- " ends it, the rest goes to
 * init).  Returns whether the last @key ("name=") there turns its option
 * on, and in *@end the offset where the kernel's part ends.
 */
static bool scan_cmdline(const char *cmdline, const char *key, size_t *end)
{
	const char *p = cmdline, *tok;
	size_t len, klen = strlen(key);
	bool on = false;

	while ((tok = next_token(&p, &len))) {
		if (is_end_of_kernel_args(tok, len)) {
			*end = tok - cmdline;
			return on;
		}
		if (token_is(tok, len, key))
			on = value_is_on(tok + klen, len - klen);
	}
	*end = p - cmdline;
	return on;
}

int luo_cmdline_has_liveupdate(const char *cmdline)
{
	size_t end;

	return scan_cmdline(cmdline ? cmdline : "", "liveupdate=", &end);
}

/* Insert "@opt " at @out[@at] (room checked by the caller). */
static void insert_opt(char *out, size_t at, const char *opt)
{
	size_t olen = strlen(opt), len = strlen(out);

	if (at < len) {
		memmove(out + at + olen + 1, out + at, len - at + 1);
		memcpy(out + at, opt, olen);
		out[at + olen] = ' ';
	} else {
		sprintf(out + len, "%s%s", len ? " " : "", opt);
	}
}

char *luo_kexec_cmdline(const char *cmdline)
{
	/* In this order: KHO is what LUO's handover rides on. */
	static const char * const opts[][2] = {
		{ "kho=", "kho=on" },
		{ "liveupdate=", "liveupdate=on" },
	};
	size_t len, end, i;
	char *out;

	if (!cmdline)
		cmdline = "";
	/* Drop trailing blanks: /proc/cmdline ends with a newline. */
	len = strlen(cmdline);
	while (len && is_blank(cmdline[len - 1]))
		len--;
	out = malloc(len + sizeof(" kho=on liveupdate=on "));
	if (!out)
		return NULL;
	memcpy(out, cmdline, len);
	out[len] = '\0';
	for (i = 0; i < ARRAY_SIZE(opts); i++) {
		/* Before " -- ": what follows it is init's, not the kernel's. */
		if (!scan_cmdline(out, opts[i][0], &end))
			insert_opt(out, end, opts[i][1]);
	}
	return out;
}

/* Does @cmdline have init arguments (a token after " -- ")? */
static bool has_init_args(const char *cmdline)
{
	const char *p = cmdline, *tok;
	size_t len;

	while ((tok = next_token(&p, &len)))
		if (is_end_of_kernel_args(tok, len))
			return next_token(&p, &len);
	return false;
}

/*
 * Append to @out (at *@olen) the tokens of the kernel's part of @src, or of
 * init's part if @init, each after a space; BOOT_IMAGE= dropped if @boot.
 */
static void add_tokens(char *out, size_t *olen, const char *src, bool init,
		       bool boot)
{
	const char *p = src, *tok;
	bool in_init = false;
	size_t len;

	while ((tok = next_token(&p, &len))) {
		if (!in_init && is_end_of_kernel_args(tok, len)) {
			in_init = true;
			continue;
		}
		if (in_init != init ||
		    (boot && !in_init && token_is(tok, len, "BOOT_IMAGE=")))
			continue;
		if (*olen)
			out[(*olen)++] = ' ';
		memcpy(out + *olen, tok, len);
		*olen += len;
	}
	out[*olen] = '\0';
}

char *luo_next_cmdline(const char *current, const char *append)
{
	size_t len = 0, room;
	char *line, *out;

	current = current ? current : "";
	append = append ? append : "";
	/* Each token plus a space, and " --": never more than the inputs. */
	room = strlen(current) + strlen(append) + sizeof(" -- ") + 2;
	line = malloc(room);
	if (!line)
		return NULL;
	add_tokens(line, &len, current, false, true);
	add_tokens(line, &len, append, false, false);
	if (has_init_args(current) || has_init_args(append)) {
		memcpy(line + len, len ? " --" : "--", len ? 3 : 2);
		len += len ? 3 : 2;
		add_tokens(line, &len, current, true, false);
		add_tokens(line, &len, append, true, false);
	}
	out = luo_kexec_cmdline(line);
	free(line);
	return out;
}

int luo_kexec_load(const char *kernel, const char *initrd,
		   const char *cmdline)
{
#ifdef SYS_kexec_file_load
	unsigned long flags = 0;
	int kfd, ifd = -1, ret = 0;
	char *line;

	line = luo_kexec_cmdline(cmdline);
	if (!line)
		return -ENOMEM;
	kfd = open(kernel, O_RDONLY | O_CLOEXEC);
	if (kfd < 0) {
		ret = -errno;
		goto out;
	}
	if (initrd) {
		ifd = open(initrd, O_RDONLY | O_CLOEXEC);
		if (ifd < 0) {
			ret = -errno;
			goto out;
		}
	} else {
		flags |= KEXEC_FILE_NO_INITRAMFS;
	}
	if (syscall(SYS_kexec_file_load, kfd, ifd, strlen(line) + 1, line,
		    flags))
		ret = -errno;
out:
	if (kfd >= 0)
		close(kfd);
	if (ifd >= 0)
		close(ifd);
	free(line);
	return ret;
#else
	(void)kernel;
	(void)initrd;
	(void)cmdline;
	return -ENOSYS;
#endif
}

int luo_kexec_unload(void)
{
#ifdef SYS_kexec_file_load
	if (syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL,
		    (unsigned long)KEXEC_FILE_UNLOAD))
		return -errno;
	return 0;
#else
	return -ENOSYS;
#endif
}

int luo_kexec_loaded(void)
{
	int fd = open("/sys/kernel/kexec_loaded", O_RDONLY | O_CLOEXEC);
	char c = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, &c, 1);
	close(fd);
	if (n < 0)
		return -errno;
	if (n != 1 || (c != '0' && c != '1'))
		return -EPROTO;
	return c == '1';
}

int luo_kexec_jump(void)
{
	/* glibc's reboot() passes the two magic numbers itself. */
	reboot(LINUX_REBOOT_CMD_KEXEC);
	return -errno;
}

int luo_kexec_reboot(void)
{
	sync();
	return luo_kexec_jump();
}
