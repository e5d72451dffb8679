/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the Live Update Orchestrator (LUO) selftests.
 *
 * The luo_*() wrappers return 0 (or a non-negative value such as an fd) on
 * success and -errno on failure, so that a test compares errnos directly.
 *
 * The test objects come from the liveupdate test module
 * (CONFIG_LIVEUPDATE_TEST): every open() of /dev/liveupdate_test creates a
 * new preservable object holding a 64-bit value; its debugfs directory logs
 * the handler callbacks and counts the objects still preserved or pending.
 */
#ifndef __LIVEUPDATE_TEST_H
#define __LIVEUPDATE_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/liveupdate.h>
#include <linux/reboot.h>

#include "kselftest.h"

/* A step the rest of the stage depends on failed: end the program. */
static inline __printf(1, 2) void __noreturn luo_bail(const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ksft_exit_fail_msg("stage %d: %s\n", atoi(getenv("LUO_STAGE") ?: "0"),
			   msg);
}

#define LUO_DEVICE		"/dev/liveupdate"
#define LUO_TEST_DEVICE		"/dev/liveupdate_test"
#define LUO_TEST_DEBUGFS	"/sys/kernel/debug/liveupdate_test"
#define LUO_TEST_EVENTS		LUO_TEST_DEBUGFS "/events"
#define LUO_TEST_LIVE		LUO_TEST_DEBUGFS "/live"
#define LUO_TEST_GHOST		LUO_TEST_DEBUGFS "/ghost"
#define LUO_TEST_COMPATIBLE	"liveupdate-test"
#define LUO_TEST_GHOST_COMPATIBLE "liveupdate-test-ghost"
#define LUO_NEXT_STAGE		"luo-next-stage"
#define LUO_TEST_FLB		LUO_TEST_DEBUGFS "/flb"
#define LUO_TEST_FLB_LIVE	LUO_TEST_DEBUGFS "/flb_live"
#define LUO_TEST_FLB_COMPATIBLE	"liveupdate-test-flb"
#define LUO_DEBUGFS_FLBS	"/sys/kernel/debug/liveupdate/flbs"

#define LUO_NAME_LEN		LIVEUPDATE_SESSION_NAME_LENGTH

/* Copy @name into a name field; a name of 64 bytes or more gets no NUL. */
static inline void luo_set_name(__u8 *dst, const char *name)
{
	size_t i;

	memset(dst, 0, LUO_NAME_LEN);
	for (i = 0; i < LUO_NAME_LEN && name[i]; i++)
		dst[i] = name[i];
}

static inline int luo_open_device(void)
{
	int fd = open(LUO_DEVICE, O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

static inline int luo_create_session(int dev, const char *name, int *sfd)
{
	struct liveupdate_ioctl_create_session arg = { .size = sizeof(arg) };

	luo_set_name(arg.name, name);
	if (ioctl(dev, LIVEUPDATE_IOCTL_CREATE_SESSION, &arg))
		return -errno;
	*sfd = arg.fd;
	return 0;
}

static inline int luo_retrieve_session(int dev, const char *name, int *sfd)
{
	struct liveupdate_ioctl_retrieve_session arg = { .size = sizeof(arg) };

	luo_set_name(arg.name, name);
	if (ioctl(dev, LIVEUPDATE_IOCTL_RETRIEVE_SESSION, &arg))
		return -errno;
	*sfd = arg.fd;
	return 0;
}

/*
 * @names: room for *@count names of LUO_NAME_LEN bytes (may be NULL when
 * *@count is 0).  On success *@count is the number of incoming sessions.
 */
static inline int luo_list_sessions(int dev, void *names, __u32 *count)
{
	struct liveupdate_ioctl_list_sessions arg = {
		.size = sizeof(arg),
		.count = *count,
		.names = (uintptr_t)names,
	};

	if (ioctl(dev, LIVEUPDATE_IOCTL_LIST_SESSIONS, &arg))
		return -errno;
	*count = arg.count;
	return 0;
}

static inline int luo_preserve_fd(int sfd, int fd, __u64 token)
{
	struct liveupdate_session_preserve_fd arg = {
		.size = sizeof(arg),
		.fd = fd,
		.token = token,
	};

	return ioctl(sfd, LIVEUPDATE_SESSION_PRESERVE_FD, &arg) ? -errno : 0;
}

static inline int luo_retrieve_fd(int sfd, __u64 token, int *fd)
{
	struct liveupdate_session_retrieve_fd arg = {
		.size = sizeof(arg),
		.token = token,
	};

	if (ioctl(sfd, LIVEUPDATE_SESSION_RETRIEVE_FD, &arg))
		return -errno;
	*fd = arg.fd;
	return 0;
}

static inline int luo_unpreserve_fd(int sfd, __u64 token)
{
	struct liveupdate_session_unpreserve_fd arg = {
		.size = sizeof(arg),
		.token = token,
	};

	return ioctl(sfd, LIVEUPDATE_SESSION_UNPRESERVE_FD, &arg) ? -errno : 0;
}

static inline int luo_finish(int sfd)
{
	struct liveupdate_session_finish arg = { .size = sizeof(arg) };

	return ioctl(sfd, LIVEUPDATE_SESSION_FINISH, &arg) ? -errno : 0;
}

/* @name: LUO_NAME_LEN bytes. */
static inline int luo_get_name(int sfd, char *name)
{
	struct liveupdate_session_get_name arg = { .size = sizeof(arg) };

	if (ioctl(sfd, LIVEUPDATE_SESSION_GET_NAME, &arg))
		return -errno;
	memcpy(name, arg.name, LUO_NAME_LEN);
	return 0;
}

/*
 * @files: room for *@count entries (may be NULL when *@count is 0).  On
 * success *@kind is the session kind and *@count the number of its files.
 */
static inline int luo_query(int sfd, __u32 *kind,
			    struct liveupdate_file_info *files, __u32 *count)
{
	struct liveupdate_session_query arg = {
		.size = sizeof(arg),
		.count = *count,
		.files = (uintptr_t)files,
	};

	if (ioctl(sfd, LIVEUPDATE_SESSION_QUERY, &arg))
		return -errno;
	*kind = arg.kind;
	*count = arg.count;
	return 0;
}

/* Number of files in a session, or -errno. */
static inline int luo_file_count(int sfd)
{
	__u32 kind, count = 0;
	int ret = luo_query(sfd, &kind, NULL, &count);

	return ret ? ret : (int)count;
}

static inline bool luo_has_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);

	return flags >= 0 && (flags & FD_CLOEXEC);
}

/* Write a whole string to a file with one write(). */
static inline int luo_write_str(int fd, const char *str)
{
	size_t len = strlen(str);
	ssize_t ret = write(fd, str, len);

	if (ret < 0)
		return -errno;
	return (size_t)ret == len ? 0 : -EIO;
}

static inline int luo_write_file(const char *path, const char *str)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -errno;
	ret = luo_write_str(fd, str);
	close(fd);
	return ret;
}

/* A /proc/meminfo field in kB, or -1. */
static inline long luo_meminfo_kb(const char *key)
{
	size_t len = strlen(key);
	char line[256];
	long val = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, len) && line[len] == ':')
			val = atol(line + len + 1);
	fclose(f);
	return val;
}

/* CREATE_SESSION that must work: the session fd, or bail out. */
static inline int luo_must_create_session(int dev, const char *name)
{
	int sfd = -1, ret = luo_create_session(dev, name, &sfd);

	if (ret)
		luo_bail("create session %s: %s", name, strerror(-ret));
	return sfd;
}

/* Read a whole (small or large) file into a malloc()ed string, or NULL. */
static inline char *luo_read_file(const char *path)
{
	size_t len = 0, size = 4096;
	char *buf = malloc(size);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t ret;

	if (fd < 0 || !buf)
		goto fail;
	for (;;) {
		if (size - len < 2) {
			char *bigger = realloc(buf, size * 2);

			if (!bigger)
				goto fail;
			buf = bigger;
			size *= 2;
		}
		ret = read(fd, buf + len, size - len - 1);
		if (ret < 0)
			goto fail;
		if (!ret)
			break;
		len += ret;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

/* Send one command ("value=N", "fail=...", ...) to a test object. */
static inline int luo_test_cmd(int fd, const char *fmt, ...)
{
	char buf[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return luo_write_str(fd, buf);
}

/* A new test object holding @value: its fd, or -errno. */
static inline int luo_test_new(unsigned long long value)
{
	int fd = open(LUO_TEST_DEVICE, O_RDWR | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -errno;
	ret = luo_test_cmd(fd, "value=%llu", value);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

static inline int luo_test_value(int fd, unsigned long long *value)
{
	char buf[64];
	ssize_t len;

	/* Objects may or may not be seekable: rewind if they are. */
	lseek(fd, 0, SEEK_SET);
	len = read(fd, buf, sizeof(buf) - 1);
	if (len < 0)
		return -errno;
	buf[len] = '\0';
	if (sscanf(buf, "value=%llu", value) != 1)
		return -EPROTO;
	return 0;
}

/* True if @fd is a test object that holds @value. */
static inline bool luo_test_has_value(int fd, unsigned long long value)
{
	unsigned long long seen;

	return !luo_test_value(fd, &seen) && seen == value;
}

/* @op: preserve, freeze, retrieve or can_finish; @count 0 means always. */
static inline int luo_test_set_fail(int fd, const char *op, int err,
				    unsigned int count)
{
	return luo_test_cmd(fd, "fail=%s,%d,%u", op, err, count);
}

static inline bool luo_test_available(void)
{
	return !access(LUO_TEST_DEVICE, F_OK);
}

static inline int luo_test_enable_ghost(void)
{
	return luo_write_file(LUO_TEST_GHOST, "1");
}

/* A file holding one non-negative number: the number, or -errno. */
static inline int luo_read_count(const char *path)
{
	char *buf = luo_read_file(path), *end;
	long n;

	if (!buf)
		return -EIO;
	n = strtol(buf, &end, 10);
	if (end == buf || n < 0 || n > INT_MAX)
		n = -EPROTO;
	free(buf);
	return n;
}

/* Number of test objects still preserved or pending, or -errno. */
static inline int luo_test_live(void)
{
	return luo_read_count(LUO_TEST_LIVE);
}

/* Preserved pages of the test FLB, or -errno. */
static inline int luo_test_flb_live(void)
{
	return luo_read_count(LUO_TEST_FLB_LIVE);
}

/* Send one command ("value=N", "fail=...", "get") to the test FLB. */
static inline int luo_test_flb_cmd(const char *cmd)
{
	return luo_write_file(LUO_TEST_FLB, cmd);
}

/*
 * The line of LUO's debugfs FLB list for @compatible in direction @dir
 * ("outgoing" or "incoming"), without its newline, malloc()ed; NULL if
 * there is none.
 */
static inline char *luo_flb_line(const char *dir, const char *compatible)
{
	char *buf = luo_read_file(LUO_DEBUGFS_FLBS), *line, *next, *ret = NULL;
	size_t dlen = strlen(dir), clen = strlen(compatible);

	for (line = buf; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!strncmp(line, dir, dlen) && line[dlen] == ' ' &&
		    !strncmp(line + dlen + 1, compatible, clen) &&
		    line[dlen + 1 + clen] == ' ') {
			ret = strdup(line);
			break;
		}
	}
	free(buf);
	return ret;
}

/*
 * Whether LUO's debugfs line for FLB @compatible in @dir is
 * "@dir @compatible @want"; prints what it is otherwise.
 */
static inline bool luo_flb_is(const char *dir, const char *compatible,
			      const char *want)
{
	char *line = luo_flb_line(dir, compatible);
	size_t skip = strlen(dir) + strlen(compatible) + 2;
	bool ok = line && !strcmp(line + skip, want);

	if (!ok)
		printf("# %s FLB %s: '%s', want '%s'\n", dir, compatible,
		       line ? line + skip : "(none)", want);
	free(line);
	return ok;
}

static inline int luo_test_clear_events(void)
{
	return luo_write_file(LUO_TEST_EVENTS, "clear\n");
}

/* The event log ("OP VALUE" lines), malloc()ed, or NULL. */
static inline char *luo_test_events(void)
{
	return luo_read_file(LUO_TEST_EVENTS);
}

/*
 * Walk the event log: store in @values (room for @max) the values of the
 * @op events in log order, and return how many there are (which may exceed
 * @max).  @values may be NULL when @max is 0.
 */
static inline int luo_event_values(const char *events, const char *op,
				   unsigned long long *values, int max)
{
	const char *line = events;
	int n = 0;

	while (line && *line) {
		unsigned long long value;
		char name[32];

		if (sscanf(line, "%31s %llu", name, &value) == 2 &&
		    !strcmp(name, op)) {
			if (n < max)
				values[n] = value;
			n++;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return n;
}

/* Line number of the first "@op @value" event at or after line @from. */
static inline int luo_event_find(const char *events, const char *op,
				 unsigned long long value, int from)
{
	const char *line = events;
	int i = 0;

	while (line && *line) {
		unsigned long long v;
		char name[32];

		if (i >= from && sscanf(line, "%31s %llu", name, &v) == 2 &&
		    !strcmp(name, op) && v == value)
			return i;
		line = strchr(line, '\n');
		if (line)
			line++;
		i++;
	}
	return -1;
}

/* Number of "@op @value" events. */
static inline int luo_event_count(const char *events, const char *op,
				  unsigned long long value)
{
	int n = 0, at = -1;

	while ((at = luo_event_find(events, op, value, at + 1)) >= 0)
		n++;
	return n;
}

/* The stage of a multi-stage test: 0 on the first boot, +1 per kexec. */
static inline int luo_stage(void)
{
	const char *stage = getenv("LUO_STAGE");

	return stage ? atoi(stage) : 0;
}

/*
 * Run @argv (searched in PATH) and return its exit status, or -errno.
 * Takes static const char * const arrays as well as execvp()'s char *[].
 */
#define luo_run(argv)	__luo_run((const char *const *)(argv))
static inline int __luo_run(const char *const argv[])
{
	int status;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		/* execvp() does not write to the strings it is given. */
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -errno;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/*
 * Kexec into the next stage, with @append added to the kernel command line
 * (or NULL).  luo-next-stage runs in a child while the caller keeps holding
 * its session fds (they are close-on-exec, so the child does not get them).
 * Returns only if that failed, with luo-next-stage's status, or -errno.
 */
static inline int next_stage_append(const char *append)
{
	const char * const argv[] = {
		LUO_NEXT_STAGE, append ? "-a" : NULL, append, NULL
	};

	return luo_run(argv);
}

static inline int next_stage(void)
{
	return next_stage_append(NULL);
}

/*
 * reboot(LINUX_REBOOT_CMD_KEXEC) into the image loaded before (by
 * "luo-next-stage -l"): returns only if that failed, with -errno.
 */
static inline int luo_reboot_kexec(void)
{
	return syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
		       LINUX_REBOOT_CMD_KEXEC, NULL) ? -errno : 0;
}

#endif /* __LIVEUPDATE_TEST_H */
