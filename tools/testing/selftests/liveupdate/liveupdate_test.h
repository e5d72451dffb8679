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
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/liveupdate.h>
#include <linux/reboot.h>
#include <linux/userfaultfd.h>

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

/*
 * One TAP result; @fmt is a string literal (a newline is appended to it),
 * never a conditional expression.
 */
#define result(cond, fmt, ...) \
	ksft_test_result(cond, fmt "\n", ##__VA_ARGS__)

/* Report whether @got (0 or -errno) is @want; true if it is. */
static inline __printf(3, 4) bool check_ret(int got, int want, const char *fmt, ...)
{
	char desc[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	if (got != want)
		ksft_print_msg("%s: got %d (%s), want %d (%s)\n", desc, got,
			       strerror(-got), want, strerror(-want));
	ksft_test_result(got == want, "%s\n", desc);
	return got == want;
}

/* A result that the rest of the stage depends on. */
static inline __printf(2, 3) void require(bool ok, const char *fmt, ...)
{
	char desc[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	ksft_test_result(ok, "%s\n", desc);
	if (!ok)
		luo_bail("cannot go on after: %s", desc);
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
/* Reading it takes LUO's state lock for writing, as reboot(KEXEC) does. */
#define LUO_DEBUGFS_SESSIONS	"/sys/kernel/debug/liveupdate/sessions"

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

/* PRESERVE_FD, its error reported: true if @fd is preserved as @token. */
static inline bool luo_keep(int sfd, int fd, __u64 token)
{
	int ret = luo_preserve_fd(sfd, fd, token);

	if (ret)
		ksft_print_msg("PRESERVE_FD of token %llu: %s\n",
			       (unsigned long long)token, strerror(-ret));
	return !ret;
}

/* RETRIEVE_FD, its error reported: the file of @token, or -1. */
static inline int luo_take(int sfd, __u64 token)
{
	int fd = -1, ret = luo_retrieve_fd(sfd, token, &fd);

	if (ret)
		ksft_print_msg("RETRIEVE_FD of token %llu: %s\n",
			       (unsigned long long)token, strerror(-ret));
	return ret ? -1 : fd;
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

/*
 * LIVEUPDATE_IOCTL_GET_TIMELINE: up to *@count steps into @steps; *@count
 * gets the number of steps, *@flags LIVEUPDATE_TIMELINE_*.
 */
static inline int luo_get_timeline(int dev,
				   struct liveupdate_timeline_step *steps,
				   __u32 *count, __u32 *flags)
{
	struct liveupdate_ioctl_get_timeline arg = {
		.size = sizeof(arg),
		.count = *count,
		.steps = (uintptr_t)steps,
	};

	if (ioctl(dev, LIVEUPDATE_IOCTL_GET_TIMELINE, &arg))
		return -errno;
	*count = arg.count;
	*flags = arg.flags;
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

/*
 * Free memory in kB as the page allocator sees it: the free pages of every
 * zone and those parked on the per-CPU lists, which MemFree leaves out and
 * where a freed 2 MiB page can sit.  -1 if /proc/zoneinfo is unreadable.
 */
static inline long luo_free_kb(void)
{
	long pages = 0, n, page_kb = sysconf(_SC_PAGESIZE) / 1024;
	char line[256];
	FILE *f = fopen("/proc/zoneinfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, " pages free %ld", &n) == 1 ||
		    sscanf(line, " count: %ld", &n) == 1)
			pages += n;
	fclose(f);
	return pages * page_kb;
}

/*
 * Wait up to @ms for luo_free_kb() to reach @base + @kb: freeing can be
 * deferred to a worker, and another task can hold pages for a moment.
 * Return: the last luo_free_kb().
 */
static inline long luo_wait_free_kb(long base, long kb, int ms)
{
	long now = luo_free_kb();

	for (; now >= 0 && now - base < kb && ms > 0; ms -= 10) {
		usleep(10 * 1000);
		now = luo_free_kb();
	}
	return now;
}

/* CREATE_SESSION that must work: the session fd, or bail out. */
static inline int luo_must_create_session(int dev, const char *name)
{
	int sfd = -1, ret = luo_create_session(dev, name, &sfd);

	if (ret)
		luo_bail("create session %s: %s", name, strerror(-ret));
	return sfd;
}

static inline int luo_must_retrieve_session(int dev, const char *name)
{
	int sfd = -1, ret = luo_retrieve_session(dev, name, &sfd);

	if (ret)
		luo_bail("retrieve session %s: %s", name, strerror(-ret));
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

#define LUO_HUGE_DIR	"/sys/kernel/mm/hugepages/hugepages-%lukB"

/* A counter ("nr_hugepages", "free_hugepages"...) of the pool of @kb pages, or -1. */
static inline long luo_huge_val(unsigned long kb, const char *name)
{
	char path[96], *s;
	long n;

	snprintf(path, sizeof(path), LUO_HUGE_DIR "/%s", kb, name);
	s = luo_read_file(path);
	n = s ? atol(s) : -1;
	free(s);
	return n;
}

/* The whole kernel log buffer, NUL-terminated; bails out on failure. */
static inline char *luo_kernel_log(void)
{
	int size = klogctl(10, NULL, 0);	/* SYSLOG_ACTION_SIZE_BUFFER */
	char *buf;
	int n;

	if (size <= 0)
		luo_bail("klogctl: log buffer size %d: %s", size,
			 size < 0 ? strerror(errno) : "empty");
	/* Formatted, the records take more room than in the ring. */
	size *= 2;
	buf = malloc(size + 1);
	if (!buf)
		luo_bail("out of memory");
	n = klogctl(3, buf, size);		/* SYSLOG_ACTION_READ_ALL */
	if (n < 0)
		luo_bail("klogctl: %s", strerror(errno));
	buf[n] = 0;
	return buf;
}

#define LUO_MEMFD_STATS		"/sys/kernel/debug/memfd_preserve"

/*
 * A preserved memfd's line of the memfd handler's debugfs statistics:
 * pages and folios described, folios added since PRESERVE_FD (pending),
 * metadata chunks, metadata bytes used and allocated, and pages still to
 * be moved out of KHO scratch or ZONE_MOVABLE.
 */
struct luo_memfd_stats {
	long pages, folios, pending, chunks, used, alloc, moving;
};

/*
 * Incoming memfds whose folios the handler restored from KHO in the
 * background after boot (liveupdate_preload=), or -1.
 */
static inline long luo_memfd_preloaded(void)
{
	char *buf = luo_read_file(LUO_MEMFD_STATS);
	char *line = buf ? strstr(buf, " preloaded ") : NULL;
	long n = -1;

	if (line && sscanf(line, " preloaded %ld", &n) != 1)
		n = -1;
	free(buf);
	return n;
}

/*
 * Waits for @want preloaded memfds (the suite's timeout bounds the wait):
 * the count, or -1 if it cannot be read.
 */
static inline long luo_wait_memfd_preloaded(long want)
{
	long n = luo_memfd_preloaded();

	for (int i = 1; n >= 0 && n < want; i++) {
		usleep(100000);
		n = luo_memfd_preloaded();
		if (!(i % 50))
			ksft_print_msg("%ld of %ld memfds preloaded so far\n", n,
				       want);
	}
	return n;
}

/* The statistics of the preserved memfd @fd; false if it is not listed. */
static inline bool luo_memfd_stats(int fd, struct luo_memfd_stats *out)
{
	char *buf = luo_read_file(LUO_MEMFD_STATS), *line, *next;
	struct luo_memfd_stats s, *m = &s;
	unsigned long long ino;
	struct stat st;
	bool found = false;

	if (!buf || fstat(fd, &st)) {
		free(buf);
		return false;
	}
	for (line = buf; !found && line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			next++;
		found = sscanf(line, "%llu %ld %ld %ld %ld %ld %ld %ld", &ino,
			       &m->pages, &m->folios, &m->pending, &m->chunks,
			       &m->used, &m->alloc, &m->moving) == 8 &&
			ino == (unsigned long long)st.st_ino;
	}
	free(buf);
	if (found)
		*out = s;
	return found;
}

/*
 * A function run in a thread, whose end can be waited for with a timeout
 * (a thread stuck in the kernel cannot be killed, only waited for).
 */
struct luo_call {
	pthread_t thread;
	int (*fn)(void *arg);
	void *arg;
	int ret;
	int done;
};

static inline void *luo_call_main(void *arg)
{
	struct luo_call *c = arg;

	c->ret = c->fn(c->arg);
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static inline int luo_call_start(struct luo_call *c, int (*fn)(void *arg),
				 void *arg)
{
	c->fn = fn;
	c->arg = arg;
	c->ret = 0;
	c->done = 0;
	return -pthread_create(&c->thread, NULL, luo_call_main, c);
}

static inline bool luo_call_done(struct luo_call *c)
{
	return __atomic_load_n(&c->done, __ATOMIC_ACQUIRE);
}

/* Whether @c ends within about @ms milliseconds. */
static inline bool luo_call_wait(struct luo_call *c, int ms)
{
	const struct timespec tick = { 0, 1000000 };

	while (!luo_call_done(c) && ms-- > 0)
		nanosleep(&tick, NULL);
	return luo_call_done(c);
}

/* @fn's result. */
static inline int luo_call_join(struct luo_call *c)
{
	pthread_join(c->thread, NULL);
	return c->ret;
}

/*
 * A page that stalls the kernel's first write to it in a userfaultfd fault,
 * until luo_stall_release(): a missing page (MISSING mode), or one that
 * holds a struct the kernel reads before it writes, write-protected (WP
 * mode).  Given as a command's output, it shows what the command holds
 * while it writes to userspace: a LUO lock held there would let any
 * process with a session fd hold up the session, or the reboot.
 */
struct luo_stall {
	int uffd;
	void *page;
	size_t size;
	bool wp;
};

static inline void luo_stall_fini(struct luo_stall *st)
{
	if (st->page != MAP_FAILED)
		munmap(st->page, st->size);
	st->page = MAP_FAILED;
	if (st->uffd >= 0)
		close(st->uffd);
	st->uffd = -1;
}

/*
 * Set up @st; in WP mode the page starts with the @len bytes at @data.
 * Returns 0, or -errno if userfaultfd (or its WP mode) is not available.
 */
static inline int luo_stall_init(struct luo_stall *st, bool wp,
				 const void *data, size_t len)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = wp ? UFFD_FEATURE_PAGEFAULT_FLAG_WP : 0,
	};
	struct uffdio_register reg = {
		.mode = wp ? UFFDIO_REGISTER_MODE_WP :
			     UFFDIO_REGISTER_MODE_MISSING,
	};
	struct uffdio_writeprotect prot = {
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};
	int ret;

	st->wp = wp;
	st->size = sysconf(_SC_PAGESIZE);
	st->page = MAP_FAILED;
	/* Not UFFD_USER_MODE_ONLY: the faults to catch are the kernel's. */
	st->uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (st->uffd < 0)
		return -errno;
	if (ioctl(st->uffd, UFFDIO_API, &api))
		goto fail;
	st->page = mmap(NULL, st->size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (st->page == MAP_FAILED)
		goto fail;
	if (wp) {
		/* Write-protection applies to a page that is there. */
		memset(st->page, 0, st->size);
		memcpy(st->page, data, len);
	}
	reg.range.start = (uintptr_t)st->page;
	reg.range.len = st->size;
	if (ioctl(st->uffd, UFFDIO_REGISTER, &reg))
		goto fail;
	prot.range = reg.range;
	if (wp && ioctl(st->uffd, UFFDIO_WRITEPROTECT, &prot))
		goto fail;
	return 0;
fail:
	ret = -errno;
	luo_stall_fini(st);
	return ret;
}

/*
 * Wait up to @ms milliseconds for a write fault on the page, while @c runs:
 * 0, -ENODATA if @c ended without one, -ETIMEDOUT, -EPROTO for another
 * event, or -errno.
 */
static inline int luo_stall_wait(struct luo_stall *st, struct luo_call *c,
				 int ms)
{
	struct pollfd pfd = { .fd = st->uffd, .events = POLLIN };
	struct uffd_msg msg;
	__u64 at;
	int ret;

	for (;;) {
		ret = poll(&pfd, 1, 10);
		if (ret < 0)
			return -errno;
		if (ret)
			break;
		if (luo_call_done(c))
			return -ENODATA;
		ms -= 10;
		if (ms <= 0)
			return -ETIMEDOUT;
	}
	ret = read(st->uffd, &msg, sizeof(msg));
	if (ret < 0)
		return -errno;
	at = msg.arg.pagefault.address;
	if (ret != sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT ||
	    at < (uintptr_t)st->page || at >= (uintptr_t)st->page + st->size ||
	    !(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE))
		return -EPROTO;
	return 0;
}

/* Let the stalled write go on: 0, or -errno (the uffd is closed then). */
static inline int luo_stall_release(struct luo_stall *st)
{
	struct uffdio_range range = {
		.start = (uintptr_t)st->page,
		.len = st->size,
	};
	struct uffdio_writeprotect prot = { .range = range };
	struct uffdio_zeropage zero = { .range = range };
	int ret;

	if (st->wp) {
		ret = ioctl(st->uffd, UFFDIO_WRITEPROTECT, &prot);
	} else {
		ret = ioctl(st->uffd, UFFDIO_ZEROPAGE, &zero);
		if (ret && errno == EEXIST)
			ret = ioctl(st->uffd, UFFDIO_WAKE, &range);
	}
	if (!ret)
		return 0;
	ret = -errno;
	/* Closing it unregisters the page and wakes the stalled fault. */
	close(st->uffd);
	st->uffd = -1;
	return ret;
}

/* Long enough for a debug kernel under TCG; a blocked probe waits for ever. */
#define LUO_STALL_FAULT_MS	10000
#define LUO_STALL_PROBE_MS	5000

/*
 * Run @cmd, which writes to @st's page, in a thread until that write
 * stalls, then @probe in another thread.  The write is let go once @probe
 * ended or LUO_STALL_PROBE_MS passed, and both threads are joined:
 * *@cmd_ret and *@probe_ret get their results.
 *
 * Return: 1 if @probe ended in time while @cmd was still stalled, 0 if it
 * did not, or -errno if @cmd never stalled (see luo_stall_wait()).
 */
static inline int luo_stall_check(struct luo_stall *st,
				  int (*cmd)(void *arg), void *cmd_arg,
				  int (*probe)(void *arg), void *probe_arg,
				  int *cmd_ret, int *probe_ret)
{
	struct luo_call c, p;
	int ret;

	*cmd_ret = -ECANCELED;
	*probe_ret = -ECANCELED;
	ret = luo_call_start(&c, cmd, cmd_arg);
	if (ret)
		return ret;
	ret = luo_stall_wait(st, &c, LUO_STALL_FAULT_MS);
	if (!ret)
		ret = luo_call_start(&p, probe, probe_arg);
	if (ret) {
		luo_stall_release(st);
		*cmd_ret = luo_call_join(&c);
		return ret;
	}
	ret = luo_call_wait(&p, LUO_STALL_PROBE_MS) && !luo_call_done(&c);
	luo_stall_release(st);
	*cmd_ret = luo_call_join(&c);
	*probe_ret = luo_call_join(&p);
	return ret;
}

/* A probe: takes LUO's state lock for writing, as reboot(KEXEC) does. */
static inline int luo_probe_write_side(void *unused)
{
	char *view = luo_read_file(LUO_DEBUGFS_SESSIONS);
	bool ok = view;

	(void)unused;
	free(view);
	return ok ? 0 : -EIO;
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
 * End the stage by kexecing into the next one, with @append added to the
 * kernel command line (or NULL), unless a check failed already; returning
 * from the kexec is itself a failure.
 */
static inline void __noreturn luo_kexec_next_with(const char *append)
{
	int ret;

	if (ksft_get_fail_cnt()) {
		ksft_test_result_fail("kexec into stage %d%s%s # not tried after failures\n",
				      luo_stage() + 1, append ? " with " : "",
				      append ?: "");
		ksft_finished();
	}
	ret = next_stage_append(append);
	ksft_print_msg("%s returned %d\n", LUO_NEXT_STAGE, ret);
	ksft_test_result_fail("kexec into stage %d%s%s\n", luo_stage() + 1,
			      append ? " with " : "", append ?: "");
	ksft_finished();
}

static inline void __noreturn luo_kexec_next(void)
{
	luo_kexec_next_with(NULL);
}

/* The QUERY state of file @token of session @sfd, or 0 if it is not there. */
static inline __u32 luo_file_state(int sfd, __u64 token)
{
	static struct liveupdate_file_info files[256];
	__u32 kind, count = ARRAY_SIZE(files);

	if (luo_query(sfd, &kind, files, &count))
		return 0;
	for (__u32 i = 0; i < count && i < ARRAY_SIZE(files); i++)
		if (files[i].token == token)
			return files[i].state;
	return 0;
}

/*
 * Wait (up to a minute) until file @token of session @sfd is done settling:
 * the memfd handler moves the pages that may not stay where they are (KHO
 * scratch, ZONE_MOVABLE) after PRESERVE_FD.  True once it is PRESERVED.
 */
static inline bool luo_settled(int sfd, __u64 token)
{
	const struct timespec tick = { 0, 10000000 };
	struct timespec t0, t;
	long long ms = 0;
	__u32 state;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while ((state = luo_file_state(sfd, token)) ==
	       LIVEUPDATE_FILE_SETTLING && ms < 60000) {
		nanosleep(&tick, NULL);
		clock_gettime(CLOCK_MONOTONIC, &t);
		ms = (t.tv_sec - t0.tv_sec) * 1000LL +
		     (t.tv_nsec - t0.tv_nsec) / 1000000;
	}
	if (state != LIVEUPDATE_FILE_PRESERVED)
		ksft_print_msg("token %llu: state %u after %lld ms\n",
			       (unsigned long long)token, state, ms);
	return state == LIVEUPDATE_FILE_PRESERVED;
}

/*
 * A fault that finds no page (a hugetlb hole with no pool page for it)
 * raises SIGBUS: with luo_on_sigbus() as the handler and luo_bus_armed
 * set, it returns to the sigsetjmp(luo_bus_env) as a failed check.
 */
static sigjmp_buf luo_bus_env;
static volatile sig_atomic_t luo_bus_armed;

static inline void luo_on_sigbus(int sig)
{
	if (luo_bus_armed)
		siglongjmp(luo_bus_env, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Whether memfd @fd is named @name, as /proc shows it. */
static inline bool luo_memfd_name_is(int fd, const char *name)
{
	char path[64], link[512], want[512];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = 0;
	snprintf(want, sizeof(want), "/memfd:%s (deleted)", name);
	if (strcmp(link, want))
		ksft_print_msg("name: %s, want %s\n", link, want);
	return !strcmp(link, want);
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

/*
 * Test data: the 64-bit word at byte offset @off of the pattern @seed.
 * A pattern is a function of the offset, so any range can be written and
 * checked on its own, in any order, by any process.
 */
static inline __u64 luo_word_at(__u64 off, __u64 seed)
{
	__u64 x = (off + 1) * 0x9e3779b97f4a7c15ULL ^ seed;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	return x ^ (x >> 29);
}

/* Fill @buf, @len bytes (a multiple of 8), with the pattern from @off. */
static inline void luo_fill(__u64 *buf, __u64 off, size_t len, __u64 seed)
{
	for (size_t i = 0; i < len / 8; i++)
		buf[i] = luo_word_at(off + i * 8, seed);
}

/* pwrite() [@off, @off + @len) (multiples of 8) with the pattern @seed. */
static inline int luo_put(int fd, __u64 off, __u64 len, __u64 seed)
{
	static __thread __u64 buf[65536 / 8];
	__u64 n;

	while (len) {
		n = len < sizeof(buf) ? len : sizeof(buf);
		luo_fill(buf, off, n, seed);
		if (pwrite(fd, buf, n, off) != (ssize_t)n)
			return errno ? -errno : -EIO;
		off += n;
		len -= n;
	}
	return 0;
}

/*
 * The PFNs behind @len bytes at @map, from /proc/self/pagemap (0 where no
 * page is mapped; root sees PFNs), into @pfn.  Faults nothing in.
 */
static inline int luo_pfns(const void *map, size_t len, __u64 *pfn)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	size_t n = len / 4096;
	ssize_t got;

	if (fd < 0)
		return -errno;
	got = pread(fd, pfn, n * 8, (uintptr_t)map / 4096 * 8);
	close(fd);
	if (got != (ssize_t)(n * 8))
		return -EIO;
	for (size_t i = 0; i < n; i++)
		pfn[i] = (pfn[i] >> 63) ? pfn[i] & ((1ULL << 55) - 1) : 0;
	return 0;
}

/* Is @dev (such as "/dev/zram0") an active swap device? */
static inline bool luo_swap_active(const char *dev)
{
	char *swaps = luo_read_file("/proc/swaps"), *at;
	size_t len = strlen(dev);
	bool on = false;

	for (at = swaps; at && (at = strstr(at, dev)); at += len)
		if ((at == swaps || at[-1] == '\n') &&
		    (at[len] == ' ' || at[len] == '\t'))
			on = true;
	free(swaps);
	return on;
}

/*
 * Swap on zram0, a compressed RAM disk of @size bytes: the swap device of
 * a test VM, which has no disk.  Done once per boot: an active one is
 * kept.  0, or -errno (-ENODEV without CONFIG_ZRAM, -ENOSYS without
 * CONFIG_SWAP).  busybox mkswap writes the signature; busybox-static runs
 * its applets without links, see harness/build-tests.sh.
 */
static inline int luo_zram_swap(unsigned long long size)
{
	static const char * const mkswap[] = {
		"busybox", "mkswap", "/dev/zram0", NULL
	};
	char str[32];
	int ret;

	if (luo_swap_active("/dev/zram0"))
		return 0;
	if (access("/sys/block/zram0/disksize", W_OK))
		return -ENODEV;
	snprintf(str, sizeof(str), "%llu", size);
	ret = luo_write_file("/sys/block/zram0/disksize", str);
	if (ret && ret != -EBUSY)
		return ret;
	ret = luo_run(mkswap);
	if (ret)
		return ret < 0 ? ret : -EIO;
	return swapon("/dev/zram0", 0) ? -errno : 0;
}

#define LUO_CGROOT	"/sys/fs/cgroup"

/*
 * A cgroup v2 memory cgroup @name (a directory under LUO_CGROOT, which is
 * mounted if need be) with memory.max @max bytes, or no limit if @max is
 * 0.  An existing one is reused.  0, or -errno (-ENOENT without
 * CONFIG_MEMCG).
 */
static inline int luo_memcg_create(const char *name, unsigned long long max)
{
	char path[128], str[32];
	int ret;

	mkdir(LUO_CGROOT, 0755);
	if (access(LUO_CGROOT "/cgroup.controllers", F_OK) &&
	    mount("cgroup2", LUO_CGROOT, "cgroup2", 0, NULL))
		return -errno;
	ret = luo_write_file(LUO_CGROOT "/cgroup.subtree_control", "+memory");
	if (ret)
		return ret == -EINVAL ? -ENOENT : ret;
	snprintf(path, sizeof(path), LUO_CGROOT "/%s", name);
	if (mkdir(path, 0755) && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), LUO_CGROOT "/%s/memory.max", name);
	if (max)
		snprintf(str, sizeof(str), "%llu", max);
	else
		snprintf(str, sizeof(str), "max");
	return luo_write_file(path, str);
}

/*
 * Move the calling process into memory cgroup @name, or back to the root
 * cgroup if @name is NULL: memory it allocates from then on is charged
 * there (charges already made stay where they are).
 */
static inline int luo_memcg_enter(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), LUO_CGROOT "%s%s/cgroup.procs",
		 name ? "/" : "", name ? name : "");
	return luo_write_file(path, "0");
}

/*
 * Proactive reclaim of up to @bytes from memory cgroup @name
 * (memory.reclaim): 0 if that much was reclaimed, -EAGAIN if less was.
 */
static inline int luo_memcg_reclaim(const char *name, unsigned long long bytes)
{
	char path[128], str[32];

	snprintf(path, sizeof(path), LUO_CGROOT "/%s/memory.reclaim", name);
	snprintf(str, sizeof(str), "%llu", bytes);
	return luo_write_file(path, str);
}

#endif /* __LIVEUPDATE_TEST_H */
