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

int luo_connect(const char *path)
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
	if (connect(sock, (struct sockaddr *)&addr, sizeof(addr))) {
		err = -errno;
		close(sock);
		return err;
	}
	return sock;
}

int luo_send_fd(int sock, int fd, const void *msg, size_t len)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	const char *p = msg;
	struct msghdr mh;
	struct iovec iov;
	ssize_t n;

	if (fd >= 0 && !len)
		return -EINVAL;
	while (len) {
		memset(&mh, 0, sizeof(mh));
		iov.iov_base = (void *)p;
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
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
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

/*
 * Walk the kernel's part of @cmdline (tokens split on blanks, double quotes
 * grouping; " -- " ends it, the rest goes to init).  Sets *@on to whether the
 * last liveupdate= turns live update on, and returns the offset where the
 * kernel's part ends.
 */
static size_t scan_cmdline(const char *cmdline, bool *on)
{
	static const char key[] = "liveupdate=";
	const char *p = cmdline;

	*on = false;
	for (;;) {
		const char *start;
		bool quoted = false;

		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			return p - cmdline;
		start = p;
		while (*p && (quoted || (*p != ' ' && *p != '\t' &&
					 *p != '\n'))) {
			if (*p == '"')
				quoted = !quoted;
			p++;
		}
		if (p - start == 2 && !strncmp(start, "--", 2))
			return start - cmdline;
		if ((size_t)(p - start) >= sizeof(key) - 1 &&
		    !strncmp(start, key, sizeof(key) - 1))
			*on = value_is_on(start + sizeof(key) - 1,
					  p - start - (sizeof(key) - 1));
	}
}

int luo_cmdline_has_liveupdate(const char *cmdline)
{
	bool on;

	scan_cmdline(cmdline ? cmdline : "", &on);
	return on;
}

char *luo_kexec_cmdline(const char *cmdline)
{
	static const char opt[] = "liveupdate=on";
	size_t len, end;
	bool on;
	char *out;

	if (!cmdline)
		cmdline = "";
	/* Drop trailing blanks: /proc/cmdline ends with a newline. */
	len = strlen(cmdline);
	while (len && (cmdline[len - 1] == ' ' || cmdline[len - 1] == '\t' ||
		       cmdline[len - 1] == '\n'))
		len--;
	out = malloc(len + sizeof(opt) + 2);
	if (!out)
		return NULL;
	memcpy(out, cmdline, len);
	out[len] = '\0';
	end = scan_cmdline(out, &on);
	if (on)
		return out;
	if (end < len) {
		/* Before " -- ": what follows it is init's, not the kernel's. */
		memmove(out + end + sizeof(opt), out + end, len - end + 1);
		memcpy(out + end, opt, sizeof(opt) - 1);
		out[end + sizeof(opt) - 1] = ' ';
	} else {
		sprintf(out + len, "%s%s", len ? " " : "", opt);
	}
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

int luo_kexec_reboot(void)
{
	sync();
	/* glibc's reboot() passes the two magic numbers itself. */
	reboot(LINUX_REBOOT_CMD_KEXEC);
	return -errno;
}
