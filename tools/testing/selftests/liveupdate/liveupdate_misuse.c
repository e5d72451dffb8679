// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: the misuse matrix.
 *
 *   liveupdate_misuse
 *
 * Every ioctl of include/uapi/linux/liveupdate.h, on /dev/liveupdate and on
 * session fds in every state a session can be in, with every way of getting
 * its argument wrong; each call must fail with the errno the uAPI header
 * documents and leave everything as it was.  The matrix is a product:
 *
 *   object/state  x  command (base argument)  x  variant of the argument
 *
 * A base argument is one call with its documented outcome (an errno, or
 * success for calls that are harmless or can be undone).  Each base is run
 * in every variant of the size and pointer rules of the header's preamble:
 * exact size, larger with a zero tail (E2BIG if not zero), smaller (EINVAL),
 * and pointers that cannot be read or written (EFAULT).  Where two documented
 * errors apply and the header does not say which wins, either is accepted.
 * A failed call must not write to its argument, a successful one nothing
 * past the kernel's struct.  After each case the state must be unchanged:
 * the debugfs view of every session and file, LIST_SESSIONS, QUERY
 * (compatible strings and counts included) and GET_NAME of every session
 * fd; after each base also the test module's live counts, the memfd
 * handler's debugfs list of preserved memfds and the memfd contents (slower
 * to read); after each run of the matrix the fd table.  Threads check the
 * whole state after each group.
 *
 * Hugetlb memfds have a handler of their own ("memfd-hugetlb"), so they are
 * in the matrix too: the sessions with files hold a hugetlb memfd of one
 * 2 MiB page besides a test object and a shmem memfd, PRESERVE_FD gets a
 * fresh hugetlb memfd (preserved, then unpreserved), a preserved one, its
 * dup, its reopen through /proc (EBUSY) and its O_PATH fd (EBADF), and a
 * direct check makes sure a preserved one cannot be truncated, grown or
 * hole-punched (EPERM).  Hugetlb contents are written through a shared
 * mapping (hugetlbfs has no write(2)) with a pattern that differs at every
 * offset, and read back with pread(); the state checks read three windows
 * of the page.  Without a 2 MiB hugetlb pool (no hugetlbfs, or no memory
 * for a few pages) these parts are reported as skipped.
 *
 * iommufds ("iommufd") are in the matrix too; they need no device or
 * IOMMU, only /dev/iommu.  The sessions with files hold, preserved last,
 * an iommufd whose IOAS (not the first object it allocated, so that its ID
 * says something) maps their shmem memfd at MAP_IOVA with
 * IOMMU_IOAS_MAP_FILE: UNPRESERVE_FD of that memfd fails with EBUSY.
 * PRESERVE_FD gets the preserved iommufd and its dup (EBUSY), one mapping
 * a memfd no session holds (ENOENT), one mapping user memory with
 * IOMMU_IOAS_MAP (EOPNOTSUPP), a fresh one whose IOAS maps nothing
 * (preserved, then unpreserved) and, in stage 1, the retrieved one (EBUSY
 * until its session is finished).  The state checks look at every iommufd
 * without changing it: IOMMU_IOAS_IOVA_RANGES, and IOMMU_IOAS_MAP_FILE of
 * 4 KiB inside the mapping, which fails with EEXIST, or with EBUSY while
 * the iommufd is preserved (of an IOAS that maps nothing, IOMMU_IOAS_UNMAP
 * of everything: 0 bytes).  A direct check makes sure a preserved one
 * refuses maps, unmaps, IOMMU_IOAS_ALLOC and IOMMU_DESTROY (EBUSY) but
 * answers IOMMU_IOAS_IOVA_RANGES, and is an ordinary iommufd again once
 * unpreserved.  Without /dev/iommu these parts are reported as skipped.
 *
 * Stage 0 (first boot) sets up the 2 MiB pool, runs the device and outgoing
 * sessions (empty, with files, closed), then sets up sessions for stage 1
 * and kexecs.  Stage 1 runs the device with incoming sessions and sessions
 * incoming before retrieve, retrieved, with retrieved files (the hugetlb
 * memfd and the iommufd among them), finished, closed and
 * finished-and-closed.  It retrieves the iommufd before the memfd it maps,
 * which that retrieves, and checks its IOAS ID and mapping; after the
 * matrix, IOMMU_IOAS_UNMAP of exactly the mapped range.  The finished
 * session held an iommufd and its memfd, never retrieved.  Each stage runs
 * the matrix from one thread, then NR_THREADS threads run the non-mutating
 * part of it at once.  Everything is deterministic (no seed).
 *
 * Needs the liveupdate test module (CONFIG_LIVEUPDATE_TEST), memfd
 * preservation (CONFIG_LIVEUPDATE_MEMFD, CONFIG_LIVEUPDATE_MEMFD_HUGETLB),
 * CONFIG_IOMMUFD for the iommufd parts, and luo-next-stage.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>
#include <linux/memfd.h>

#include "liveupdate_test.h"
#include "liveupdate_edu.h"
#include "kselftest.h"

#define NR_THREADS	4
#define PAGE		4096
#define MEMFD_SIZE	(16 * 1024)
#define SESSIONS_MAX	16384
#define MAX_LIST	16
#define MAX_FILES	8
#define MAX_WATCH	8
#define MAX_FDTYPES	40
#define MAX_PRINTS	40
#define STATS_MAX	2048

/* A hugetlb memfd of the matrix: one 2 MiB page. */
#define HUGE_SIZE	(2 * 1024 * 1024)
#define HUGE_POOL	"/sys/kernel/mm/hugepages/hugepages-2048kB/"
/*
 * Free 2 MiB pages a stage wants: at most four memfds hold one each, and
 * PRESERVE_FD needs a free page outside KHO scratch (CMA) to move one out.
 */
#define HUGE_FREE	8
#define HUGE_COMPATIBLE	"memfd-hugetlb"
/* Tokens of the hugetlb memfds in the sessions with files. */
#define HUGE_TOKEN	3
#define HUGE_TOKEN_IN	4

/*
 * iommufds of the matrix.  In the sessions with files, one IOAS maps all of
 * the shmem memfd of token 2 at MAP_IOVA; the state checks try to map
 * 4 KiB again at PROBE_IOVA, inside that mapping.  Nothing is mapped at
 * FREE_IOVA.
 */
#define IOMMU_DEV		"/dev/iommu"
#define IOMMUFD_COMPATIBLE	"iommufd"
#define IOMMUFD_TOKEN		5
#define MAP_IOVA		0x100000ULL
#define PROBE_IOVA		(MAP_IOVA + PAGE)
#define USER_IOVA		0x200000ULL	/* user memory (IOMMU_IOAS_MAP) */
#define FREE_IOVA		0x300000ULL

/* A name of exactly 63 bytes, the longest allowed. */
#define NAME_63 \
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"

static int stage;
static int dev = -1;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ---- what must not change ---- */

struct sess_view {
	int fd;
	__u32 kind, count;
	struct liveupdate_file_info files[MAX_FILES];
	char name[LUO_NAME_LEN];
};

/* What the state checks see of an iommufd (ioas_look()). */
struct ioas_view {
	int ranges;		/* IOMMU_IOAS_IOVA_RANGES: how many, or -errno */
	long long probe;
};

struct snap {
	char sessions[SESSIONS_MAX];	/* debugfs: every session and file */
	char memfds[STATS_MAX];		/* debugfs: every preserved memfd */
	int live, flb_live;
	__u32 nlist;
	char list[MAX_LIST][LUO_NAME_LEN];
	int nviews;
	struct sess_view view[MAX_WATCH];
	int nmem;
	unsigned long long memsum[MAX_WATCH];
	int nioas;
	struct ioas_view ioas[MAX_WATCH];
};

/*
 * An iommufd the state checks look at: its IOAS @ioas maps 4 KiB at
 * @probe, or nothing if @probe is 0; @memfd is a memfd to try to map.
 */
struct watched_ioas {
	int fd;
	__u32 ioas;
	int memfd;
	__u64 probe;
};

/* Set up before the matrix runs, read-only while it runs. */
static int watch_sessions[MAX_WATCH], nwatch_sessions;
static int watch_memfds[MAX_WATCH], nwatch_memfds;
static struct watched_ioas watch_ioas[MAX_WATCH];
static int nwatch_ioas;

static void watch_session(int sfd)
{
	watch_sessions[nwatch_sessions++] = sfd;
}

static void watch_memfd(int fd)
{
	watch_memfds[nwatch_memfds++] = fd;
}

static void watch_iommufd(int fd, __u32 ioas, int memfd, __u64 probe)
{
	watch_ioas[nwatch_ioas++] = (struct watched_ioas){ fd, ioas, memfd,
							   probe };
}

/*
 * Without changing it, whether an iommufd is preserved and its mapping
 * still there: IOMMU_IOAS_MAP_FILE of 4 KiB at an IOVA its IOAS maps fails
 * with EEXIST, or with EBUSY while the iommufd is preserved; of an IOAS
 * that maps nothing, IOMMU_IOAS_UNMAP of everything unmaps 0 bytes, or
 * fails with EBUSY.  Anything else is a change, which this undoes as well
 * as it can.
 */
static void ioas_look(const struct watched_ioas *w, struct ioas_view *v)
{
	v->ranges = edu_iova_ranges(w->fd, w->ioas);
	if (!w->probe) {
		v->probe = edu_unmap_len(w->fd, w->ioas, 0, UINT64_MAX);
		return;
	}
	v->probe = edu_map_file(w->fd, w->ioas, w->memfd, 0, PAGE, w->probe);
	if (!v->probe)
		edu_unmap(w->fd, w->ioas, w->probe, PAGE);
}

/*
 * A hash of a memfd's size and contents; @buf has room for MEMFD_SIZE.  Of
 * a larger memfd (a hugetlb one) only the first, a middle and the last
 * MEMFD_SIZE bytes: a huge page is replaced or lost whole, and reading all
 * of it after every base would make the matrix several times slower.
 */
static unsigned long long memfd_sum(int fd, unsigned char *buf)
{
	unsigned long long h = 0xcbf29ce484222325ULL, w;
	off_t at[3];
	struct stat st;
	ssize_t len, i;
	int k, n;

	if (fstat(fd, &st))
		return 0;
	at[0] = 0;
	at[1] = st.st_size / 2 & ~(off_t)7;
	at[2] = st.st_size - MEMFD_SIZE;
	n = st.st_size > MEMFD_SIZE ? 3 : 1;
	h ^= (unsigned long long)st.st_size;
	for (k = 0; k < n; k++) {
		memset(buf, 0, MEMFD_SIZE);
		len = pread(fd, buf, MEMFD_SIZE, at[k]);
		if (len < 0)
			return 1;
		h ^= (unsigned long long)len << 32;
		for (i = 0; i < MEMFD_SIZE; i += sizeof(w)) {
			memcpy(&w, buf + i, sizeof(w));
			h = (h ^ w) * 0x100000001b3ULL;
		}
	}
	return h;
}

/*
 * The debugfs session list and memfd list stay open, read again from the
 * start for each snapshot (the live counts cannot be: they are not
 * seekable).
 */
struct dbg_fds {
	int sessions;
	int memfds;
};

static void dbg_open(struct dbg_fds *d)
{
	d->sessions = open(LUO_DEBUGFS_SESSIONS, O_RDONLY | O_CLOEXEC);
	if (d->sessions < 0)
		luo_bail("open %s: %s", LUO_DEBUGFS_SESSIONS, strerror(errno));
	d->memfds = open(LUO_MEMFD_STATS, O_RDONLY | O_CLOEXEC);
	if (d->memfds < 0)
		luo_bail("open %s: %s", LUO_MEMFD_STATS, strerror(errno));
}

static void dbg_close(struct dbg_fds *d)
{
	close(d->sessions);
	close(d->memfds);
}

/* The whole file into @buf (NUL-terminated): its length, or -errno. */
static int pread_all(int fd, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t ret;

	/* seq_file and simple_attr reads are short only at the end. */
	do {
		ret = pread(fd, buf + len, size - 1 - len, len);
		if (ret < 0)
			return -errno;
		len += ret;
	} while (len == size - 1 && ret);
	if (len >= size - 1)
		return -EFBIG;
	buf[len] = '\0';
	return len;
}

/*
 * Returns 0, or -errno if a part of the state could not be read.  @full:
 * the memfd contents, the debugfs memfd list and the live counts too (else
 * they are copied from @ref; the debugfs session list shows every file
 * added or removed).
 */
static int snap_take(struct snap *s, const struct dbg_fds *d,
		     unsigned char *membuf, bool full, const struct snap *ref)
{
	int i, ret;

	s->nlist = MAX_LIST;
	memset(s->list, 0, sizeof(s->list));
	ret = luo_list_sessions(dev, s->list, &s->nlist);
	if (ret)
		return ret;
	ret = pread_all(d->sessions, s->sessions, sizeof(s->sessions));
	if (ret < 0)
		return ret;
	if (full)
		ret = pread_all(d->memfds, s->memfds, sizeof(s->memfds));
	else
		memcpy(s->memfds, ref->memfds, sizeof(s->memfds));
	if (ret < 0)
		return ret;
	s->live = full ? luo_test_live() : ref->live;
	s->flb_live = full ? luo_test_flb_live() : ref->flb_live;
	if (s->live < 0 || s->flb_live < 0)
		return -EIO;
	for (i = 0; i < nwatch_sessions; i++) {
		struct sess_view *v = &s->view[i];

		memset(v, 0, sizeof(*v));
		v->fd = watch_sessions[i];
		v->count = MAX_FILES;
		ret = luo_query(v->fd, &v->kind, v->files, &v->count);
		if (!ret)
			ret = luo_get_name(v->fd, v->name);
		if (ret)
			return ret;
		if (v->count > MAX_FILES)
			return -E2BIG;
	}
	s->nviews = nwatch_sessions;
	for (i = 0; i < nwatch_memfds; i++)
		s->memsum[i] = full ? memfd_sum(watch_memfds[i], membuf) :
				      ref->memsum[i];
	s->nmem = nwatch_memfds;
	for (i = 0; i < nwatch_ioas; i++)
		ioas_look(&watch_ioas[i], &s->ioas[i]);
	s->nioas = nwatch_ioas;
	return 0;
}

/* Describe the first difference in @why; false if there is one. */
static bool snap_same(const struct snap *a, const struct snap *b, char *why,
		      size_t len)
{
	int i;

	if (strcmp(a->sessions, b->sessions)) {
		snprintf(why, len, "debugfs sessions changed:\n%s--- now:\n%s",
			 a->sessions, b->sessions);
		return false;
	}
	if (strcmp(a->memfds, b->memfds)) {
		snprintf(why, len, "debugfs memfds changed:\n%s--- now:\n%s",
			 a->memfds, b->memfds);
		return false;
	}
	if (a->live != b->live || a->flb_live != b->flb_live) {
		snprintf(why, len, "test live %d -> %d, flb_live %d -> %d",
			 a->live, b->live, a->flb_live, b->flb_live);
		return false;
	}
	if (a->nlist != b->nlist ||
	    memcmp(a->list, b->list, sizeof(a->list))) {
		snprintf(why, len, "LIST_SESSIONS changed (%u -> %u)",
			 a->nlist, b->nlist);
		return false;
	}
	for (i = 0; i < a->nviews; i++) {
		if (memcmp(&a->view[i], &b->view[i], sizeof(a->view[i]))) {
			snprintf(why, len, "QUERY/GET_NAME of fd %d changed",
				 a->view[i].fd);
			return false;
		}
	}
	for (i = 0; i < a->nmem; i++) {
		if (a->memsum[i] != b->memsum[i]) {
			snprintf(why, len, "memfd %d contents changed",
				 watch_memfds[i]);
			return false;
		}
	}
	for (i = 0; i < a->nioas; i++) {
		const struct ioas_view *x = &a->ioas[i], *y = &b->ioas[i];

		if (x->ranges != y->ranges || x->probe != y->probe) {
			snprintf(why, len,
				 "iommufd %d: IOVA_RANGES %d -> %d, probe at %#llx %lld -> %lld",
				 watch_ioas[i].fd, x->ranges, y->ranges,
				 (unsigned long long)watch_ioas[i].probe,
				 x->probe, y->probe);
			return false;
		}
	}
	return true;
}

static const struct sess_view *snap_view(const struct snap *s, int sfd)
{
	int i;

	for (i = 0; i < s->nviews; i++)
		if (s->view[i].fd == sfd)
			return &s->view[i];
	return NULL;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own fd */
}

/* ---- the cases ---- */

/*
 * The argument area of a context: pages 0-2 hold the struct (and its tail),
 * page 3 is a guard, page 4 takes what LIST_SESSIONS and QUERY write out,
 * page 5 is a guard.
 */
#define AREA_PAGES	6
#define ARG_OFF		(1 * PAGE)
#define RO_OFF		(2 * PAGE)
#define GUARD1_OFF	(3 * PAGE)
#define OUT_OFF		(4 * PAGE)
#define GUARD2_OFF	(5 * PAGE)
#define CANARY		0xa5

struct ctx;
struct base;
typedef bool (*ok_fn)(struct ctx *c, const struct base *b, void *argp);

struct base {
	char desc[96];
	int obj;		/* the fd the ioctl goes to */
	unsigned long req;
	unsigned int len;	/* sizeof the command's struct */
	union {
		unsigned char raw[128];
		struct liveupdate_ioctl_create_session create;
		struct liveupdate_ioctl_list_sessions list;
		struct liveupdate_session_preserve_fd preserve;
		struct liveupdate_session_retrieve_fd retrieve_fd;
		struct liveupdate_session_finish finish;
		struct liveupdate_session_get_name get_name;
		struct liveupdate_session_unpreserve_fd unpreserve;
		struct liveupdate_session_query query;
	} arg;
	int want;		/* 0 or -errno */
	int alt;		/* another errno the header allows, or 0 */
	bool out;		/* the command writes its struct back */
	bool mut;		/* success changes state: @ok undoes it */
	bool skip_ok;		/* success cannot be undone: error variants only */
	ok_fn ok;		/* checks a success (and undoes it) */
};

enum variant {
	V_EXACT,	/* sizeof */
	V_TAIL8,	/* sizeof + 8, zero tail */
	V_TAIL_BIG,	/* sizeof + 3000, zero tail */
	V_NZ_FIRST,	/* sizeof + 8, first tail byte set: E2BIG */
	V_NZ_LAST,	/* sizeof + 8, last tail byte set: E2BIG */
	V_NZ_FAR,	/* sizeof + 3000, last tail byte set: E2BIG */
	V_SIZE0,	/* size 0: EINVAL */
	V_SIZE4,	/* only the size member: EINVAL */
	V_SHORT,	/* sizeof - 1: EINVAL */
	V_NULL,		/* NULL argument: EFAULT */
	V_GUARD,	/* unmapped argument: EFAULT */
	V_CROSS,	/* size readable, the rest unmapped: EFAULT */
	V_HUGE,		/* size 0xffffffff, zeros up to unmapped: EFAULT */
	V_RO,		/* read-only argument: EFAULT if written back */
	NR_VARIANTS
};

static const char *const variant_names[NR_VARIANTS] = {
	"exact", "tail8", "tail3000", "nz-first", "nz-last", "nz-far",
	"size0", "size4", "short", "null", "unmapped", "cross", "huge",
	"read-only",
};

struct ctx {
	int tid;		/* 0: the main thread */
	bool threaded;		/* only non-mutating cases, coarser checks */
	const char *state;
	unsigned char *area;
	unsigned char *membuf;
	struct dbg_fds dbg;
	struct snap ref;	/* the state every case must leave */
	struct snap now;
	/* The group of cases being run (one command on one state). */
	const char *group;
	unsigned int gcases, gfails;
	unsigned int cases, fails, prints;
};

static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

static __printf(2, 3) void fail(struct ctx *c, const char *fmt, ...)
{
	char msg[8192], *line, *next;
	va_list ap;

	c->gfails++;
	c->fails++;
	if (c->prints++ >= MAX_PRINTS) {
		if (c->prints == MAX_PRINTS + 1)
			printf("# [t%d] more failures not shown\n", c->tid);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&print_lock);
	/* Every line a KTAP diagnostic, multi-line state dumps included. */
	line = strtok_r(msg, "\n", &next);
	printf("# [t%d] FAIL %s/%s: %s\n", c->tid, c->state, c->group,
	       line ?: "");
	while ((line = strtok_r(NULL, "\n", &next)))
		printf("# [t%d]   %s\n", c->tid, line);
	fflush(stdout);
	pthread_mutex_unlock(&print_lock);
}

static void ctx_init(struct ctx *c, int tid, bool threaded)
{
	memset(c, 0, sizeof(*c));
	c->tid = tid;
	c->threaded = threaded;
	c->area = mmap(NULL, AREA_PAGES * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	c->membuf = malloc(MEMFD_SIZE);
	if (c->area == MAP_FAILED || !c->membuf)
		luo_bail("context memory: %s", strerror(errno));
	if (mprotect(c->area + GUARD1_OFF, PAGE, PROT_NONE) ||
	    mprotect(c->area + GUARD2_OFF, PAGE, PROT_NONE))
		luo_bail("mprotect: %s", strerror(errno));
	dbg_open(&c->dbg);
	if (snap_take(&c->ref, &c->dbg, c->membuf, true, NULL))
		luo_bail("cannot read the state");
}

static void ctx_destroy(struct ctx *c)
{
	munmap(c->area, AREA_PAGES * PAGE);
	free(c->membuf);
	dbg_close(&c->dbg);
}

/*
 * Compare with the reference; on a difference, report it and take the new
 * state as the reference, so one change is reported once.  @full: memfd
 * contents too.
 */
static void check_state(struct ctx *c, const char *what, bool full)
{
	char why[8192];
	int ret;

	ret = snap_take(&c->now, &c->dbg, c->membuf, full, &c->ref);
	if (ret) {
		fail(c, "%s: cannot read the state: %s", what, strerror(-ret));
		return;
	}
	if (!snap_same(&c->ref, &c->now, why, sizeof(why))) {
		fail(c, "%s: state changed: %s", what, why);
		if (full)
			memcpy(&c->ref, &c->now, sizeof(c->ref));
		else if (snap_take(&c->ref, &c->dbg, c->membuf, true, NULL))
			luo_bail("cannot read the state");
	}
}

static void group_end(struct ctx *c)
{
	if (!c->group)
		return;
	if (c->threaded) {
		check_state(c, "after the group", true);
	} else {
		ksft_test_result(!c->gfails, "stage %d %s %s: %u cases\n",
				 stage, c->state, c->group, c->gcases);
	}
	c->group = NULL;
}

static void group(struct ctx *c, const char *name)
{
	group_end(c);
	c->group = name;
	c->gcases = 0;
	c->gfails = 0;
}

static void *out_area(struct ctx *c)
{
	return c->area + OUT_OFF;
}

/* An output pointer with room for one @size entry before the guard. */
static void *out_room1(struct ctx *c, size_t size)
{
	return c->area + GUARD2_OFF - size;
}

static void *unmapped(struct ctx *c)
{
	return c->area + GUARD1_OFF;
}

static int variant_want(const struct base *b, int v, int *alt)
{
	*alt = 0;
	switch (v) {
	case V_NZ_FIRST:
	case V_NZ_LAST:
	case V_NZ_FAR:
		return -E2BIG;
	case V_SIZE0:
	case V_SIZE4:
	case V_SHORT:
		return -EINVAL;
	case V_NULL:
	case V_GUARD:
	case V_CROSS:
	case V_HUGE:
		return -EFAULT;
	case V_RO:
		if (!b->want && b->out)
			return -EFAULT;
		break;
	}
	*alt = b->alt;
	return b->want;
}

/* strerrorname_np() returns static strings: several may share a message. */
static const char *err_name(int err)
{
	if (!err)
		return "success";
	return strerrorname_np(-err) ?: "?";
}

static void run_variant(struct ctx *c, const struct base *b, int v)
{
	unsigned char *argp = c->area + ARG_OFF;
	unsigned char *guard = c->area + GUARD1_OFF;
	__u32 size = b->len;
	int want, alt, got;
	bool ro = false;

	want = variant_want(b, v, &alt);
	if (b->skip_ok && !want)
		return;

	memset(c->area, 0, GUARD1_OFF);
	memset(c->area + OUT_OFF, CANARY, PAGE);
	switch (v) {
	case V_TAIL8:
	case V_NZ_FIRST:
	case V_NZ_LAST:
		size += 8;
		break;
	case V_TAIL_BIG:
	case V_NZ_FAR:
		size += 3000;
		break;
	case V_SIZE0:
		size = 0;
		break;
	case V_SIZE4:
		size = 4;
		break;
	case V_SHORT:
		size = b->len - 1;
		break;
	case V_NULL:
		argp = NULL;
		break;
	case V_GUARD:
		argp = guard;
		break;
	case V_CROSS:
		argp = guard - sizeof(__u32);
		break;
	case V_HUGE:
		argp = guard - b->len - 8;
		size = 0xffffffff;
		break;
	case V_RO:
		argp = c->area + RO_OFF;
		ro = true;
		break;
	}
	if (v == V_CROSS) {
		memcpy(argp, &size, sizeof(size));
	} else if (argp && argp != guard) {
		memcpy(argp, b->arg.raw, b->len);
		memcpy(argp, &size, sizeof(size));
	}
	if (v == V_NZ_FIRST)
		argp[b->len] = 1;
	else if (v == V_NZ_LAST || v == V_NZ_FAR)
		argp[size - 1] = 0x80;
	if (ro && mprotect(argp, PAGE, PROT_READ))
		luo_bail("mprotect: %s", strerror(errno));

	got = ioctl(b->obj, b->req, argp) ? -errno : 0;

	if (ro && mprotect(argp, PAGE, PROT_READ | PROT_WRITE))
		luo_bail("mprotect: %s", strerror(errno));
	c->gcases++;
	c->cases++;
	if (got != want && !(alt && got == alt)) {
		fail(c, "%s [%s]: got %s, want %s%s%s", b->desc,
		     variant_names[v], err_name(got), err_name(want),
		     alt ? " or " : "", alt ? err_name(alt) : "");
		/* An unexpected success may need undoing before going on. */
		if (!got && b->ok)
			b->ok(c, b, argp);
	} else if (got) {
		/* A failed call writes nothing back. */
		if (argp && argp != guard && v != V_CROSS && v != V_HUGE &&
		    memcmp(argp + 4, b->arg.raw + 4, b->len - 4))
			fail(c, "%s [%s]: failed with %s but wrote to its argument",
			     b->desc, variant_names[v], err_name(got));
	} else {
		unsigned int i;

		/* Nothing is written past the kernel's struct. */
		for (i = b->len; i < size && size != 0xffffffff; i++) {
			if (argp[i]) {
				fail(c, "%s [%s]: tail byte %u written",
				     b->desc, variant_names[v], i);
				break;
			}
		}
		if (b->ok && !b->ok(c, b, argp))
			fail(c, "%s [%s]: wrong result", b->desc,
			     variant_names[v]);
	}
	if (!c->threaded) {
		char what[160];

		snprintf(what, sizeof(what), "%s [%s]", b->desc,
			 variant_names[v]);
		check_state(c, what, false);
	}
}

/* Run @b in every variant. */
static void run_base(struct ctx *c, const struct base *b)
{
	int v;

	/* Other threads' cases would see what a mutating one does. */
	if (c->threaded && b->mut)
		return;
	for (v = 0; v < NR_VARIANTS; v++)
		run_variant(c, b, v);
	/* The memfd contents, once per base: reading them is the slow part. */
	if (!c->threaded)
		check_state(c, b->desc, true);
}

static __printf(3, 4) void base_init(struct base *b, int obj,
				     const char *fmt, ...)
{
	va_list ap;

	memset(b, 0, sizeof(*b));
	b->obj = obj;
	va_start(ap, fmt);
	vsnprintf(b->desc, sizeof(b->desc), fmt, ap);
	va_end(ap);
}

/* ---- success checks ---- */

/* The fd a call returned: valid, close-on-exec; closed here. */
static bool ok_close_fd(int fd)
{
	bool ok = fd >= 0 && luo_has_cloexec(fd);

	if (fd >= 0)
		close(fd);
	return ok;
}

/* CREATE_SESSION or RETRIEVE_SESSION: a session fd with the right name. */
static bool ok_session_fd(struct ctx *c, const struct base *b, void *argp)
{
	const struct liveupdate_ioctl_create_session *arg = argp;
	char name[LUO_NAME_LEN];
	int ret = luo_get_name(arg->fd, name);

	(void)c;
	if (ret || strcmp(name, (const char *)b->arg.create.name)) {
		ok_close_fd(arg->fd);
		return false;
	}
	return ok_close_fd(arg->fd);
}

static bool ok_retrieve_fd(struct ctx *c, const struct base *b, void *argp)
{
	const struct liveupdate_session_retrieve_fd *arg = argp;

	(void)c;
	(void)b;
	return ok_close_fd(arg->fd);
}

static bool ok_list(struct ctx *c, const struct base *b, void *argp)
{
	const struct liveupdate_ioctl_list_sessions *arg = argp;
	__u32 room = b->arg.list.count, n = c->ref.nlist, i;
	const unsigned char *names = (const void *)(uintptr_t)b->arg.list.names;

	if (arg->count != n)
		return false;
	for (i = 0; i < n && i < room; i++)
		if (memcmp(names + i * LUO_NAME_LEN, c->ref.list[i],
			   LUO_NAME_LEN))
			return false;
	/* Nothing past the names asked for. */
	if (names && (uintptr_t)names >= (uintptr_t)out_area(c) &&
	    (uintptr_t)names < (uintptr_t)out_area(c) + PAGE &&
	    room < n && names[room * LUO_NAME_LEN] != CANARY)
		return false;
	return true;
}

static bool ok_query(struct ctx *c, const struct base *b, void *argp)
{
	const struct liveupdate_session_query *arg = argp;
	const struct sess_view *v = snap_view(&c->ref, b->obj);
	const struct liveupdate_file_info *files;
	__u32 room = b->arg.query.count, i;

	files = (const void *)(uintptr_t)b->arg.query.files;
	if (!v || arg->kind != v->kind || arg->count != v->count ||
	    arg->reserved)
		return false;
	for (i = 0; i < v->count && i < room; i++)
		if (memcmp(&files[i], &v->files[i], sizeof(files[i])))
			return false;
	if (files && (void *)files == out_area(c) && room < v->count &&
	    *(const unsigned char *)&files[room] != CANARY)
		return false;
	return true;
}

static bool ok_get_name(struct ctx *c, const struct base *b, void *argp)
{
	const struct liveupdate_session_get_name *arg = argp;
	const struct sess_view *v = snap_view(&c->ref, b->obj);

	return v && !arg->reserved &&
	       !memcmp(arg->name, v->name, LUO_NAME_LEN);
}

/* A preserve that worked: give the file back. */
static bool ok_preserve(struct ctx *c, const struct base *b, void *argp)
{
	(void)c;
	(void)argp;
	return !luo_unpreserve_fd(b->obj, b->arg.preserve.token);
}

/* ---- the world of a stage ---- */

/* A file to hand to PRESERVE_FD, with what an outgoing session answers. */
struct fdtype {
	const char *desc;
	int fd;
	int err;	/* 0: preservable (then undone) */
	/*
	 * Its handler refuses it: another thread's PRESERVE_FD of it, into
	 * another session, holds it meanwhile (EBUSY).
	 */
	bool racy;
};

static struct fdtype fdtypes[MAX_FDTYPES];
static int nr_fdtypes;

/* @fd is a bad fd number on purpose. */
static void add_bad_fd(const char *desc, int fd)
{
	fdtypes[nr_fdtypes++] = (struct fdtype){ .desc = desc, .fd = fd,
						 .err = -EBADF };
}

static void add_fdtype(const char *desc, int fd, int err)
{
	if (fd < 0)
		luo_bail("fd for %s: %s", desc, strerror(errno));
	fdtypes[nr_fdtypes++] = (struct fdtype){ .desc = desc, .fd = fd,
						 .err = err };
}

static void add_racy_fdtype(const char *desc, int fd, int err)
{
	add_fdtype(desc, fd, err);
	fdtypes[nr_fdtypes - 1].racy = true;
}

/* A name and what CREATE_SESSION and RETRIEVE_SESSION answer for it. */
struct name_case {
	const char *desc;
	unsigned char name[LUO_NAME_LEN];
	int create, retrieve;
};

#define MAX_NAMES 16
static struct name_case names[MAX_NAMES];
static int nr_names;

/* @len bytes of @name (which may hold NULs), no NUL added past them. */
static void add_name(const char *desc, const void *name, size_t len,
		     int create, int retrieve)
{
	struct name_case *n = &names[nr_names++];

	n->desc = desc;
	memset(n->name, 0, sizeof(n->name));
	memcpy(n->name, name, len);
	n->create = create;
	n->retrieve = retrieve;
}

static void add_str_name(const char *name, int create, int retrieve)
{
	add_name(name, name, strlen(name), create, retrieve);
}

/* Session fds of the stage, each one a state of the matrix. */
struct sess_state {
	const char *state;
	int fd;
};

#define MAX_STATES 8
static struct sess_state sess_states[MAX_STATES];
static int nr_sess_states;
/* A session fd number that was closed, and never reused meanwhile. */
static int closed_fd = -1;

static void add_sess_state(const char *state, int fd)
{
	sess_states[nr_sess_states++] = (struct sess_state){ state, fd };
	watch_session(fd);
}

/* Files a preserved iommufd of their session maps: not unpreservable. */
static struct {
	int sfd;
	__u64 token;
} mapped_files[MAX_STATES];
static int nr_mapped_files;

static void add_mapped(int sfd, __u64 token)
{
	mapped_files[nr_mapped_files].sfd = sfd;
	mapped_files[nr_mapped_files++].token = token;
}

static bool is_mapped(int sfd, __u64 token)
{
	int i;

	for (i = 0; i < nr_mapped_files; i++)
		if (mapped_files[i].sfd == sfd &&
		    mapped_files[i].token == token)
			return true;
	return false;
}

static int new_memfd(const char *name, unsigned int seed)
{
	unsigned char *buf = malloc(MEMFD_SIZE);
	int fd = memfd_create(name, MFD_CLOEXEC);
	int i;

	if (fd < 0 || !buf)
		luo_bail("memfd_create %s: %s", name, strerror(errno));
	for (i = 0; i < MEMFD_SIZE; i++)
		buf[i] = (i * 7 + seed) & 0xff;
	if (pwrite(fd, buf, MEMFD_SIZE, 0) != MEMFD_SIZE)
		luo_bail("write memfd %s: %s", name, strerror(errno));
	free(buf);
	return fd;
}

static bool memfd_has(int fd, unsigned int seed)
{
	unsigned char *buf = malloc(MEMFD_SIZE);
	bool ok = buf && pread(fd, buf, MEMFD_SIZE, 0) == MEMFD_SIZE;
	int i;

	for (i = 0; ok && i < MEMFD_SIZE; i++)
		ok = buf[i] == ((i * 7 + seed) & 0xff);
	free(buf);
	return ok;
}

/* ---- hugetlb memfds ---- */

/* Whether this stage has hugetlb memfds, and why not if it has none. */
static bool huge;
static char huge_why[160];
/* The same for iommufds */
static bool iommu;
static char iommu_why[160];

/*
 * Seeds of the hugetlb memfds' contents, those of the shmem memfds beside
 * them plus 20.
 */
#define HSEED_OUT	21	/* stage 0, mis-out-files */
#define HSEED_UNRET	22	/* in-unret */
#define HSEED_FRESH	23	/* the one PRESERVE_FD gets, each stage */
#define HSEED_IN	24	/* in-files */
#define HSEED_S1	25	/* stage 1, mis-out-s1 */
/*
 * In-files' first test object says whether stage 0 added a hugetlb memfd
 * (IN_FILES_HUGE added to its value) and an iommufd (its IOAS ID times
 * IN_FILES_IOAS added).
 */
#define IN_FILES_VALUE		401
#define IN_FILES_HUGE		10
#define IN_FILES_IOAS		1000

/* Free and unreserved pages of the 2 MiB pool, or -errno. */
static int huge_avail(void)
{
	int free = luo_read_count(HUGE_POOL "free_hugepages");
	int resv = luo_read_count(HUGE_POOL "resv_hugepages");

	return free < 0 ? free : resv < 0 ? resv : free - resv;
}

/*
 * At least HUGE_FREE free and unreserved pages in the 2 MiB pool, and
 * memfd_create() of a hugetlb memfd works; else false, with the reason in
 * huge_why.
 */
static bool huge_setup(void)
{
	int nr = luo_read_count(HUGE_POOL "nr_hugepages");
	int avail = huge_avail();
	char str[32];
	int fd, ret = 0;

	if (nr < 0 || avail < 0) {
		snprintf(huge_why, sizeof(huge_why),
			 "no 2 MiB hugetlb pages (%s: %s)", HUGE_POOL,
			 strerror(nr < 0 ? -nr : -avail));
		return false;
	}
	if (avail < HUGE_FREE) {
		/* nr_hugepages counts the pages in use too. */
		snprintf(str, sizeof(str), "%d", nr + HUGE_FREE - avail);
		ret = luo_write_file(HUGE_POOL "nr_hugepages", str);
		avail = huge_avail();
	}
	if (avail < HUGE_FREE) {
		snprintf(huge_why, sizeof(huge_why),
			 "2 MiB hugetlb pool: %d pages free, %d wanted (%s)",
			 avail, HUGE_FREE, ret ? strerror(-ret) : "no memory");
		return false;
	}
	fd = memfd_create("misuse-huge-probe",
			  MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB);
	if (fd < 0) {
		snprintf(huge_why, sizeof(huge_why),
			 "memfd_create(MFD_HUGETLB | MFD_HUGE_2MB): %s",
			 strerror(errno));
		return false;
	}
	close(fd);
	ksft_print_msg("misuse: stage %d: 2 MiB hugetlb pool: %d pages, %d free\n",
		       stage, luo_read_count(HUGE_POOL "nr_hugepages"), avail);
	return true;
}

/*
 * A hugetlb memfd of one 2 MiB page holding the pattern of @seed, which
 * differs at every offset: written through a shared mapping, since
 * hugetlbfs has no write(2).
 */
static int new_huge_memfd(const char *name, unsigned long long seed)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB);
	void *map;

	if (fd < 0 || ftruncate(fd, HUGE_SIZE))
		luo_bail("hugetlb memfd %s: %s", name, strerror(errno));
	/* The mapping reserves the page: no SIGBUS when it is written. */
	map = mmap(NULL, HUGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		luo_bail("mmap hugetlb memfd %s: %s", name, strerror(errno));
	luo_fill(map, 0, HUGE_SIZE, seed);
	munmap(map, HUGE_SIZE);
	return fd;
}

/*
 * @fd is a hugetlbfs file of HUGE_SIZE bytes holding the pattern of @seed,
 * read back with pread(): every byte.
 */
static bool huge_has(int fd, unsigned long long seed)
{
	__u64 *buf = malloc(HUGE_SIZE);
	struct statfs sf;
	struct stat st;
	size_t i;
	bool ok;

	if (!buf)
		luo_bail("out of memory");
	ok = fd >= 0 && !fstatfs(fd, &sf) &&
	     (__u32)sf.f_type == HUGETLBFS_MAGIC && !fstat(fd, &st) &&
	     st.st_size == HUGE_SIZE;
	if (fd >= 0 && !ok)
		ksft_print_msg("hugetlb memfd fd %d: not hugetlbfs, or not %d bytes\n",
			       fd, HUGE_SIZE);
	if (ok && pread(fd, buf, HUGE_SIZE, 0) != HUGE_SIZE) {
		ksft_print_msg("hugetlb memfd fd %d: pread: %s\n", fd,
			       strerror(errno));
		ok = false;
	}
	for (i = 0; ok && i < HUGE_SIZE / 8; i++) {
		if (buf[i] == luo_word_at(i * 8, seed))
			continue;
		ksft_print_msg("hugetlb memfd fd %d: byte %#zx is %#llx, want %#llx\n",
			       fd, i * 8, (unsigned long long)buf[i],
			       (unsigned long long)luo_word_at(i * 8, seed));
		ok = false;
	}
	free(buf);
	return ok;
}

/* A file QUERY must list: its token, compatible string and state. */
struct want_file {
	__u64 token;
	const char *compatible;
	__u32 state;
};

/* QUERY of @sfd lists exactly the @n files of @want, in any order. */
static bool query_is(int sfd, const struct want_file *want, __u32 n)
{
	struct liveupdate_file_info files[MAX_FILES];
	__u32 kind, count = MAX_FILES, i, j;
	int ret = luo_query(sfd, &kind, files, &count);

	if (ret || count != n) {
		ksft_print_msg("QUERY of fd %d: %s, %u files, want %u\n", sfd,
			       err_name(ret), count, n);
		return false;
	}
	for (j = 0; j < n; j++) {
		for (i = 0; i < count; i++)
			if (files[i].token == want[j].token)
				break;
		if (i < count &&
		    !strcmp((const char *)files[i].compatible,
			    want[j].compatible) &&
		    files[i].state == want[j].state)
			continue;
		ksft_print_msg("QUERY of fd %d, token %llu: %s, state %u; want %s, state %u\n",
			       sfd, (unsigned long long)want[j].token,
			       i < count ? (const char *)files[i].compatible :
					   "(missing)",
			       i < count ? files[i].state : 0,
			       want[j].compatible, want[j].state);
		return false;
	}
	return true;
}

/* What QUERY lists in an outgoing session with files: @want, how many. */
static __u32 out_files(struct want_file *want)
{
	__u32 n = 0;

	want[n++] = (struct want_file){ 1, LUO_TEST_COMPATIBLE,
					LIVEUPDATE_FILE_PRESERVED };
	want[n++] = (struct want_file){ 2, "memfd", LIVEUPDATE_FILE_PRESERVED };
	if (huge)
		want[n++] = (struct want_file){ HUGE_TOKEN, HUGE_COMPATIBLE,
						LIVEUPDATE_FILE_PRESERVED };
	if (iommu)
		want[n++] = (struct want_file){ IOMMUFD_TOKEN,
						IOMMUFD_COMPATIBLE,
						LIVEUPDATE_FILE_PRESERVED };
	return n;
}

/*
 * The hugetlb memfd @fd of a session with files (@sess, fd @sfd), and the
 * fresh one @fresh: written and read back, listed by QUERY with the
 * session's other files.  Then, since a preserved memfd's pages are
 * described by physical address, its size cannot change and no page may
 * leave it: ftruncate to another size and punching a hole fail with EPERM,
 * leaving size, blocks and contents as they were.
 */
static void huge_checks(const char *sess, int sfd, int fd,
			unsigned long long seed, int fresh)
{
	struct want_file want[MAX_FILES];
	__u32 nwant = out_files(want);
	const struct {
		const char *desc;
		int mode;		/* -1: ftruncate to @arg */
		off_t arg;
	} ops[] = {
		{ "ftruncate to 0", -1, 0 },
		{ "ftruncate to 4 MiB", -1, 2 * HUGE_SIZE },
		{ "fallocate(PUNCH_HOLE | KEEP_SIZE) of the page",
		  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, HUGE_SIZE },
	};
	unsigned int i, cases = 0, fails = 0;
	struct stat before, after = { 0 };
	char what[96];
	int got;

	snprintf(what, sizeof(what), "stage %d %s hugetlb memfd", stage, sess);
	if (!huge) {
		ksft_test_result_skip("%s: %s\n", what, huge_why);
		ksft_test_result_skip("%s while preserved: %s\n", what,
				      huge_why);
		return;
	}
	ksft_test_result(huge_has(fd, seed) && huge_has(fresh, HSEED_FRESH) &&
			 query_is(sfd, want, nwant),
			 "%s: written through a mapping, read back, QUERY says %s\n",
			 what, HUGE_COMPATIBLE);

	if (fstat(fd, &before))
		luo_bail("fstat: %s", strerror(errno));
	for (i = 0; i < ARRAY_SIZE(ops); i++) {
		if (ops[i].mode < 0)
			got = ftruncate(fd, ops[i].arg);
		else
			got = fallocate(fd, ops[i].mode, 0, ops[i].arg);
		got = got ? -errno : 0;
		cases++;
		if (got != -EPERM) {
			fails++;
			ksft_print_msg("FAIL %s: %s: got %s, want EPERM\n", what,
				       ops[i].desc, err_name(got));
		}
	}
	/* huge_has() tells what differs in the contents. */
	cases++;
	if (fstat(fd, &after) || after.st_size != before.st_size ||
	    after.st_blocks != before.st_blocks || !huge_has(fd, seed)) {
		fails++;
		ksft_print_msg("FAIL %s: size %lld -> %lld, blocks %lld -> %lld, or contents\n",
			       what, (long long)before.st_size,
			       (long long)after.st_size,
			       (long long)before.st_blocks,
			       (long long)after.st_blocks);
	}
	ksft_test_result(!fails,
			 "%s while preserved: resize and punch hole fail (EPERM): %u cases\n",
			 what, cases);
}

/* ---- iommufds ---- */

/* Whether /dev/iommu can be opened; else false, with the reason in iommu_why. */
static bool iommu_setup(void)
{
	int fd = open(IOMMU_DEV, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		snprintf(iommu_why, sizeof(iommu_why),
			 "no iommufds (open %s: %s)", IOMMU_DEV,
			 strerror(errno));
		return false;
	}
	close(fd);
	return true;
}

/* A page of user memory, for IOMMU_IOAS_MAP */
static void *user_page(void)
{
	static void *page;

	if (!page) {
		page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (page == MAP_FAILED)
			luo_bail("mmap: %s", strerror(errno));
	}
	return page;
}

/*
 * A new iommufd with one IOAS, its ID into *@ioas: a first IOAS is
 * allocated and destroyed before it, so that the ID is not the first one.
 * The IOAS maps all of @memfd at MAP_IOVA if @memfd >= 0, and a page of
 * user memory at USER_IOVA if @user.
 */
static int new_iommufd(int memfd, bool user, __u32 *ioas)
{
	int fd = open(IOMMU_DEV, O_RDWR | O_CLOEXEC), ret;
	__u32 first;

	if (fd < 0)
		luo_bail("open %s: %s", IOMMU_DEV, strerror(errno));
	ret = edu_ioas_alloc(fd, &first);
	if (!ret)
		ret = edu_ioas_alloc(fd, ioas);
	if (!ret)
		ret = edu_destroy(fd, first);
	if (!ret && memfd >= 0)
		ret = edu_map_file(fd, *ioas, memfd, 0, MEMFD_SIZE, MAP_IOVA);
	if (!ret && user)
		ret = edu_map_user(fd, *ioas, user_page(), PAGE, USER_IOVA);
	if (ret)
		luo_bail("iommufd setup: %s", strerror(-ret));
	return fd;
}

/*
 * The fds of iommufds: @busy preserved already, after the memfd @memfd it
 * maps, as in add_common_fdtypes(); one mapping a memfd no session holds
 * (ENOENT) and one mapping user memory (EOPNOTSUPP), which the handler
 * refuses; a fresh one whose IOAS maps nothing (preservable, then undone).
 * The state checks watch the last three: a preserve that failed or was
 * undone leaves them ordinary iommufds, as they were.
 */
static void add_iommufd_fdtypes(int busy, int memfd)
{
	int other = new_memfd("misuse-iommufd-other", 7), fd;
	__u32 ioas;

	add_fdtype("iommufd, preserved already", busy, -EBUSY);
	add_fdtype("dup of a preserved iommufd",
		   fcntl(busy, F_DUPFD_CLOEXEC, 0), -EBUSY);
	fd = new_iommufd(other, false, &ioas);
	add_racy_fdtype("iommufd mapping a memfd no session holds", fd,
			-ENOENT);
	watch_iommufd(fd, ioas, other, PROBE_IOVA);
	fd = new_iommufd(-1, true, &ioas);
	add_racy_fdtype("iommufd mapping user memory (IOMMU_IOAS_MAP)", fd,
			-EOPNOTSUPP);
	watch_iommufd(fd, ioas, memfd, USER_IOVA);
	fd = new_iommufd(-1, false, &ioas);
	add_fdtype("fresh iommufd, its IOAS mapping nothing", fd, 0);
	watch_iommufd(fd, ioas, memfd, 0);
}

/*
 * The iommufd @fd of a session with files (@sess, fd @sfd), preserved after
 * the memfd @memfd that its IOAS @ioas maps: listed by QUERY, seen
 * preserved by the state checks.  While it is preserved, whatever would
 * change its objects or mappings fails with EBUSY, and
 * IOMMU_IOAS_IOVA_RANGES works.  Unpreserved, it is an ordinary iommufd
 * again; then it is preserved again, last as it was.
 */
static void iommufd_checks(const char *sess, int sfd, int fd, __u32 ioas,
			   int memfd)
{
	static const char *const ops[] = {
		"IOMMU_IOAS_MAP_FILE", "IOMMU_IOAS_MAP",
		"IOMMU_IOAS_UNMAP of the mapping",
		"IOMMU_IOAS_UNMAP of everything", "IOMMU_IOAS_ALLOC",
		"IOMMU_DESTROY of the IOAS",
	};
	const struct watched_ioas w = { fd, ioas, memfd, PROBE_IOVA };
	struct ioas_view before, after;
	struct want_file want[MAX_FILES];
	__u32 nwant = out_files(want), id;
	unsigned int i, cases = 0, fails = 0;
	int got, map = 0, unpreserve, preserve = 0;
	long long unmapped = 0;
	char what[96];

	snprintf(what, sizeof(what), "stage %d %s iommufd", stage, sess);
	if (!iommu) {
		ksft_test_result_skip("%s: %s\n", what, iommu_why);
		ksft_test_result_skip("%s while preserved: %s\n", what,
				      iommu_why);
		ksft_test_result_skip("%s unpreserved: %s\n", what, iommu_why);
		return;
	}
	ioas_look(&w, &before);
	result(before.ranges > 0 && before.probe == -EBUSY &&
	       query_is(sfd, want, nwant),
	       "%s: IOAS %u maps the memfd of token 2, preserved after it, QUERY says %s",
	       what, ioas, IOMMUFD_COMPATIBLE);

	for (i = 0; i < ARRAY_SIZE(ops); i++) {
		switch (i) {
		case 0:
			got = edu_map_file(fd, ioas, memfd, 0, PAGE, FREE_IOVA);
			break;
		case 1:
			got = edu_map_user(fd, ioas, user_page(), PAGE,
					   FREE_IOVA);
			break;
		case 2:
		case 3:
			if (i == 2)
				unmapped = edu_unmap_len(fd, ioas, MAP_IOVA,
							 MEMFD_SIZE);
			else
				unmapped = edu_unmap_len(fd, ioas, 0, UINT64_MAX);
			got = unmapped < 0 ? unmapped : 0;
			break;
		case 4:
			got = edu_ioas_alloc(fd, &id);
			break;
		default:
			got = edu_destroy(fd, ioas);
			break;
		}
		cases++;
		if (got != -EBUSY) {
			fails++;
			ksft_print_msg("FAIL %s: %s: got %s, want EBUSY\n", what,
				       ops[i], err_name(got));
		}
	}
	ioas_look(&w, &after);
	cases++;
	if (after.ranges <= 0 || after.ranges != before.ranges ||
	    after.probe != before.probe) {
		fails++;
		ksft_print_msg("FAIL %s: IOVA_RANGES %d -> %d, probe %lld -> %lld\n",
			       what, before.ranges, after.ranges, before.probe,
			       after.probe);
	}
	result(!fails,
	       "%s while preserved: map, unmap, IOAS alloc and destroy fail (EBUSY), IOVA_RANGES works: %u cases",
	       what, cases);

	unpreserve = luo_unpreserve_fd(sfd, IOMMUFD_TOKEN);
	if (!unpreserve) {
		ioas_look(&w, &after);
		map = edu_map_file(fd, ioas, memfd, 0, PAGE, FREE_IOVA);
		unmapped = edu_unmap_len(fd, ioas, FREE_IOVA, PAGE);
		preserve = luo_preserve_fd(sfd, fd, IOMMUFD_TOKEN);
	}
	result(!unpreserve && after.probe == -EEXIST && !map &&
	       unmapped == PAGE && !preserve,
	       "%s unpreserved: an ordinary iommufd again (a map and an unmap work), preserved again",
	       what);
	if (unpreserve || preserve)
		ksft_print_msg("%s: UNPRESERVE_FD %s, PRESERVE_FD again %s\n",
			       what, err_name(unpreserve), err_name(preserve));
	/* The matrix expects it in the session. */
	if (preserve)
		luo_bail("%s not preserved again", what);
}

static int new_object(unsigned long long value)
{
	int fd = luo_test_new(value);

	if (fd < 0)
		luo_bail("new test object: %s", strerror(-fd));
	return fd;
}

static int retrieve_session(const char *name)
{
	int ret, sfd = -1;

	ret = luo_retrieve_session(dev, name, &sfd);
	if (ret)
		luo_bail("retrieve session %s: %s", name, strerror(-ret));
	return sfd;
}

/*
 * A memfd's pages in KHO scratch move after PRESERVE_FD, and QUERY says
 * SETTLING meanwhile: wait, so that the state snapshots stay the same.
 */
static void wait_settled(int sfd)
{
	struct liveupdate_file_info files[MAX_FILES];
	__u32 kind, count, i;
	int tries;

	for (tries = 0; tries < 1000; tries++) {
		count = MAX_FILES;
		if (luo_query(sfd, &kind, files, &count))
			return;
		for (i = 0; i < count && i < MAX_FILES; i++)
			if (files[i].state == LIVEUPDATE_FILE_SETTLING)
				break;
		if (i == count || i == MAX_FILES)
			return;
		usleep(10000);
	}
	luo_bail("a preserved file still settling after 10 s");
}

static void preserve(int sfd, int fd, __u64 token)
{
	int ret = luo_preserve_fd(sfd, fd, token);

	if (ret)
		luo_bail("PRESERVE_FD of token %llu: %s",
			 (unsigned long long)token, strerror(-ret));
	wait_settled(sfd);
}

/* An fd number far above what anything here opens, free. */
static int free_fd_number(int n)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd < 0 || dup2(fd, n) != n)
		luo_bail("dup2: %s", strerror(errno));
	close(fd);
	close(n);
	return n;
}

/* The fds every PRESERVE_FD matrix tries; @busy: memfds preserved already. */
static void add_common_fdtypes(int busy_memfd, int busy_obj)
{
	int p[2], s[2], fd;

	add_bad_fd("fd -1", -1);
	add_bad_fd("fd INT_MAX", INT_MAX);
	add_bad_fd("closed fd", free_fd_number(900));
	if (pipe2(p, O_CLOEXEC))
		luo_bail("pipe: %s", strerror(errno));
	add_fdtype("pipe read end", p[0], -ENOENT);
	add_fdtype("pipe write end", p[1], -ENOENT);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s))
		luo_bail("socketpair: %s", strerror(errno));
	add_fdtype("unix socket", s[0], -ENOENT);
	add_fdtype("eventfd", eventfd(0, EFD_CLOEXEC), -ENOENT);
	/* /run is a tmpfs (shmem, like a memfd, but not one). */
	fd = open("/run/misuse-file", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0 && write(fd, "x", 1) != 1)
		luo_bail("write /run/misuse-file: %s", strerror(errno));
	add_fdtype("regular tmpfs file", fd, -ENOENT);
	/* O_PATH fds have no file to preserve: fget() does not see them. */
	add_fdtype("O_PATH tmpfs file",
		   open("/run/misuse-file", O_PATH | O_CLOEXEC), -EBADF);
	add_fdtype("/dev/null", open("/dev/null", O_RDWR | O_CLOEXEC), -ENOENT);
	add_fdtype("directory", open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC),
		   -ENOENT);
	add_fdtype("procfs file",
		   open("/proc/self/status", O_RDONLY | O_CLOEXEC), -ENOENT);
	add_fdtype("/dev/liveupdate", dev, -ENOENT);
	add_fdtype("memfd, preserved already", busy_memfd, -EBUSY);
	add_fdtype("dup of a preserved memfd", fcntl(busy_memfd,
						     F_DUPFD_CLOEXEC, 0),
		   -EBUSY);
	{
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", busy_memfd);
		/* Another file of the same memfd: the handler refuses it. */
		add_fdtype("reopened preserved memfd",
			   open(path, O_RDWR | O_CLOEXEC), -EBUSY);
		add_fdtype("O_PATH of a memfd",
			   open(path, O_PATH | O_CLOEXEC), -EBADF);
	}
	add_fdtype("test object, preserved already", busy_obj, -EBUSY);
	add_fdtype("dup of a preserved test object",
		   fcntl(busy_obj, F_DUPFD_CLOEXEC, 0), -EBUSY);
	fd = new_object(999);
	if (luo_test_set_fail(fd, "preserve", EIO, 0))
		luo_bail("test object fail=preserve");
	add_racy_fdtype("test object failing preserve (EIO)", fd, -EIO);
	add_fdtype("fresh memfd", new_memfd("misuse-fresh", 3), 0);
	add_fdtype("fresh test object", new_object(998), 0);
}

/*
 * The fds of hugetlb memfds: @busy preserved already, as the shmem ones
 * above; @fresh preservable (then undone).
 */
static void add_huge_fdtypes(int busy, int fresh)
{
	char path[64];

	add_fdtype("hugetlb memfd, preserved already", busy, -EBUSY);
	add_fdtype("dup of a preserved hugetlb memfd",
		   fcntl(busy, F_DUPFD_CLOEXEC, 0), -EBUSY);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", busy);
	/* Another file of the same inode: the handler refuses it. */
	add_fdtype("reopened preserved hugetlb memfd",
		   open(path, O_RDWR | O_CLOEXEC), -EBUSY);
	add_fdtype("O_PATH of a hugetlb memfd", open(path, O_PATH | O_CLOEXEC),
		   -EBADF);
	add_fdtype("fresh hugetlb memfd", fresh, 0);
}

/* ---- the matrix ---- */

static void dev_cases(struct ctx *c)
{
	struct base b;
	int i;

	group(c, "CREATE_SESSION");
	for (i = 0; i < nr_names; i++) {
		base_init(&b, dev, "create '%s'", names[i].desc);
		b.req = LIVEUPDATE_IOCTL_CREATE_SESSION;
		b.len = sizeof(b.arg.create);
		b.arg.create.fd = -7;	/* output only */
		memcpy(b.arg.create.name, names[i].name, LUO_NAME_LEN);
		b.want = names[i].create;
		b.out = true;
		b.mut = true;		/* even a failure on output: the name */
		b.ok = ok_session_fd;
		if (b.want)
			b.mut = false;
		run_base(c, &b);
	}

	group(c, "RETRIEVE_SESSION");
	for (i = 0; i < nr_names; i++) {
		base_init(&b, dev, "retrieve '%s'", names[i].desc);
		b.req = LIVEUPDATE_IOCTL_RETRIEVE_SESSION;
		b.len = sizeof(b.arg.create);
		b.arg.create.fd = -7;
		memcpy(b.arg.create.name, names[i].name, LUO_NAME_LEN);
		b.want = names[i].retrieve;
		b.out = true;
		b.mut = !b.want;
		b.ok = ok_session_fd;
		run_base(c, &b);
	}

	group(c, "LIST_SESSIONS");
	{
		static const struct {
			const char *desc;
			__u32 count;
			/*
			 * 0: none, 1: out area, 2: unmapped, 3: room for 1,
			 * 4: out area + 1, 5: kernel address
			 */
			int where;
			__u32 fault_from;	/* EFAULT if this many */
		} lc[] = {
			{ "count 0, names 0", 0, 0, 0 },
			{ "count 0, names unmapped", 0, 2, 0 },
			{ "count 1, names 0", 1, 0, 1 },
			{ "count 1, names unmapped", 1, 2, 1 },
			{ "count 1, names kernel address", 1, 5, 1 },
			{ "count 1", 1, 1, 0 },
			{ "count 16", 16, 1, 0 },
			{ "count UINT32_MAX, room for all", UINT32_MAX, 1, 0 },
			{ "count 2, room for 1", 2, 3, 2 },
			{ "count 16, unaligned names", 16, 4, 0 },
		};
		unsigned int j;

		for (j = 0; j < ARRAY_SIZE(lc); j++) {
			void *p = NULL;

			switch (lc[j].where) {
			case 1:
				p = out_area(c);
				break;
			case 2:
				p = unmapped(c);
				break;
			case 3:
				p = out_room1(c, LUO_NAME_LEN);
				break;
			case 4:
				p = (char *)out_area(c) + 1;
				break;
			case 5:
				p = (void *)(uintptr_t)0xffff888000000000ULL;
				break;
			}
			base_init(&b, dev, "list %s", lc[j].desc);
			b.req = LIVEUPDATE_IOCTL_LIST_SESSIONS;
			b.len = sizeof(b.arg.list);
			b.arg.list.count = lc[j].count;
			b.arg.list.names = (uintptr_t)p;
			b.want = lc[j].fault_from &&
				 c->ref.nlist >= lc[j].fault_from ? -EFAULT : 0;
			b.out = true;
			b.ok = ok_list;
			/* Our list check reads the names it asked for. */
			if (sizeof(void *) == 4 && lc[j].where == 5)
				continue;
			run_base(c, &b);
		}
	}
}

/* Commands that do not exist on an object: ENOTTY, whatever the argument. */
static void unknown_cases(struct ctx *c, int obj, bool session)
{
	static const unsigned long dev_reqs[] = {
		_IO(LIVEUPDATE_IOCTL_TYPE, 0x02),
		_IO(LIVEUPDATE_IOCTL_TYPE, 0x1f),
		_IO(LIVEUPDATE_IOCTL_TYPE, 0x22),
		_IO(LIVEUPDATE_IOCTL_TYPE, 0xff),
		LIVEUPDATE_SESSION_PRESERVE_FD,
		LIVEUPDATE_SESSION_QUERY,
		_IOWR(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_CREATE_SESSION,
		      struct liveupdate_ioctl_create_session),
		_IOR(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_LIST_SESSIONS,
		     struct liveupdate_ioctl_list_sessions),
		_IO(LIVEUPDATE_IOCTL_TYPE + 1, LIVEUPDATE_CMD_CREATE_SESSION),
		TCGETS,
	};
	static const unsigned long sess_reqs[] = {
		_IO(LIVEUPDATE_IOCTL_TYPE, 0x3f),
		_IO(LIVEUPDATE_IOCTL_TYPE, 0x44),
		_IO(LIVEUPDATE_IOCTL_TYPE, 0x5f),
		_IO(LIVEUPDATE_IOCTL_TYPE, 0x62),
		_IO(LIVEUPDATE_IOCTL_TYPE, 0xff),
		LIVEUPDATE_IOCTL_CREATE_SESSION,
		LIVEUPDATE_IOCTL_LIST_SESSIONS,
		_IOWR(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_SESSION_QUERY,
		      struct liveupdate_session_query),
		_IOW(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_SESSION_FINISH,
		     struct liveupdate_session_finish),
		_IO(LIVEUPDATE_IOCTL_TYPE - 1, LIVEUPDATE_CMD_SESSION_GET_NAME),
		TCGETS,
	};
	const unsigned long *reqs = session ? sess_reqs : dev_reqs;
	unsigned int n = session ? ARRAY_SIZE(sess_reqs) : ARRAY_SIZE(dev_reqs);
	unsigned int i, a;

	group(c, "unknown commands");
	for (i = 0; i < n; i++) {
		for (a = 0; a < 2; a++) {
			/* A plausible argument, and none. */
			void *arg = a ? NULL : out_area(c);
			int got;

			memset(out_area(c), 0, 128);
			*(__u32 *)out_area(c) = 128;
			got = ioctl(obj, reqs[i], arg) ? -errno : 0;
			c->gcases++;
			c->cases++;
			if (got != -ENOTTY)
				fail(c, "ioctl %#lx (%s argument): got %s, want ENOTTY",
				     reqs[i], a ? "NULL" : "valid",
				     err_name(got));
			if (!c->threaded)
				check_state(c, "unknown command", false);
		}
	}
}

static void session_cases(struct ctx *c, int sfd)
{
	const struct sess_view *v = snap_view(&c->ref, sfd);
	static const __u64 unknown_tokens[] = { 0, 77777, UINT64_MAX };
	bool in;
	struct base b;
	__u32 i;
	int j;

	if (!v)
		luo_bail("no view of session fd %d", sfd);
	in = v->kind == LIVEUPDATE_SESSION_INCOMING;

	group(c, "PRESERVE_FD");
	for (j = 0; j < nr_fdtypes; j++) {
		const struct fdtype *t = &fdtypes[j];
		static const __u64 ok_tokens[] = { 0x1000, 0, UINT64_MAX };
		unsigned int k, ntok = t->err ? 1 : ARRAY_SIZE(ok_tokens);

		for (k = 0; k < ntok; k++) {
			base_init(&b, sfd, "preserve %s, token %#llx", t->desc,
				  (unsigned long long)ok_tokens[k]);
			b.req = LIVEUPDATE_SESSION_PRESERVE_FD;
			b.len = sizeof(b.arg.preserve);
			b.arg.preserve.fd = t->fd;
			b.arg.preserve.token = ok_tokens[k];
			if (in) {
				b.want = -EINVAL;
				b.alt = t->err;
			} else {
				b.want = t->err;
				if (t->racy && c->threaded)
					b.alt = -EBUSY;
				b.mut = !t->err;
				/* Undoes an unexpected success too. */
				b.ok = ok_preserve;
			}
			run_base(c, &b);
		}
	}
	/* A token in use: the preservable file stays an ordinary file. */
	for (i = 0; i < v->count; i++) {
		for (j = 0; j < nr_fdtypes; j++) {
			if (fdtypes[j].err)
				continue;
			base_init(&b, sfd, "preserve %s, token %llu in use",
				  fdtypes[j].desc,
				  (unsigned long long)v->files[i].token);
			b.req = LIVEUPDATE_SESSION_PRESERVE_FD;
			b.len = sizeof(b.arg.preserve);
			b.arg.preserve.fd = fdtypes[j].fd;
			b.arg.preserve.token = v->files[i].token;
			b.want = in ? -EINVAL : -EEXIST;
			b.alt = in ? -EEXIST : 0;
			b.ok = in ? NULL : ok_preserve;
			run_base(c, &b);
		}
	}

	group(c, "RETRIEVE_FD");
	for (j = 0; j < (int)ARRAY_SIZE(unknown_tokens); j++) {
		bool known = false;

		for (i = 0; i < v->count; i++)
			known |= v->files[i].token == unknown_tokens[j];
		if (known)
			continue;
		base_init(&b, sfd, "retrieve unknown token %#llx",
			  (unsigned long long)unknown_tokens[j]);
		b.req = LIVEUPDATE_SESSION_RETRIEVE_FD;
		b.len = sizeof(b.arg.retrieve_fd);
		b.arg.retrieve_fd.fd = -7;
		b.arg.retrieve_fd.token = unknown_tokens[j];
		b.want = in ? -ENOENT : -EINVAL;
		b.alt = in ? 0 : -ENOENT;
		b.out = true;
		run_base(c, &b);
	}
	for (i = 0; i < v->count; i++) {
		const struct liveupdate_file_info *f = &v->files[i];

		base_init(&b, sfd, "retrieve token %llu (state %u)",
			  (unsigned long long)f->token, f->state);
		b.req = LIVEUPDATE_SESSION_RETRIEVE_FD;
		b.len = sizeof(b.arg.retrieve_fd);
		b.arg.retrieve_fd.fd = -7;
		b.arg.retrieve_fd.token = f->token;
		b.out = true;
		b.ok = ok_retrieve_fd;
		if (!in)
			b.want = -EINVAL;
		/* A first retrieve restores the file: for good. */
		else if (f->state != LIVEUPDATE_FILE_RETRIEVED)
			b.skip_ok = true;
		run_base(c, &b);
	}

	group(c, "FINISH");
	{
		static const __u32 reserved[] = { 0, 1, 0x80000000 };

		for (j = 0; j < (int)ARRAY_SIZE(reserved); j++) {
			base_init(&b, sfd, "finish, reserved %#x", reserved[j]);
			b.req = LIVEUPDATE_SESSION_FINISH;
			b.len = sizeof(b.arg.finish);
			b.arg.finish.reserved = reserved[j];
			if (reserved[j] || !in)
				b.want = -EINVAL;
			else
				b.skip_ok = true;	/* ends the session */
			run_base(c, &b);
		}
	}

	group(c, "GET_NAME");
	{
		static const __u32 reserved[] = { 0, 1, 0xffffffff };

		for (j = 0; j < (int)ARRAY_SIZE(reserved); j++) {
			base_init(&b, sfd, "get name, reserved %#x",
				  reserved[j]);
			b.req = LIVEUPDATE_SESSION_GET_NAME;
			b.len = sizeof(b.arg.get_name);
			b.arg.get_name.reserved = reserved[j];
			/* The name is output only. */
			memset(b.arg.get_name.name, 'Z', LUO_NAME_LEN);
			b.want = reserved[j] ? -EINVAL : 0;
			b.out = true;
			b.ok = ok_get_name;
			run_base(c, &b);
		}
	}

	group(c, "UNPRESERVE_FD");
	for (j = 0; j < (int)ARRAY_SIZE(unknown_tokens); j++) {
		bool known = false;

		for (i = 0; i < v->count; i++)
			known |= v->files[i].token == unknown_tokens[j];
		if (known)
			continue;
		base_init(&b, sfd, "unpreserve unknown token %#llx",
			  (unsigned long long)unknown_tokens[j]);
		b.req = LIVEUPDATE_SESSION_UNPRESERVE_FD;
		b.len = sizeof(b.arg.unpreserve);
		b.arg.unpreserve.token = unknown_tokens[j];
		b.want = in ? -EINVAL : -ENOENT;
		b.alt = in ? -ENOENT : 0;
		run_base(c, &b);

		base_init(&b, sfd, "unpreserve unknown token %#llx, reserved 1",
			  (unsigned long long)unknown_tokens[j]);
		b.req = LIVEUPDATE_SESSION_UNPRESERVE_FD;
		b.len = sizeof(b.arg.unpreserve);
		b.arg.unpreserve.token = unknown_tokens[j];
		b.arg.unpreserve.reserved = 1;
		b.want = -EINVAL;
		b.alt = -ENOENT;
		run_base(c, &b);
	}
	for (i = 0; i < v->count; i++) {
		static const __u32 reserved[] = { 0, 1, 0x80000000 };

		for (j = 0; j < (int)ARRAY_SIZE(reserved); j++) {
			base_init(&b, sfd, "unpreserve token %llu, reserved %#x",
				  (unsigned long long)v->files[i].token,
				  reserved[j]);
			b.req = LIVEUPDATE_SESSION_UNPRESERVE_FD;
			b.len = sizeof(b.arg.unpreserve);
			b.arg.unpreserve.token = v->files[i].token;
			b.arg.unpreserve.reserved = reserved[j];
			if (reserved[j] || in)
				b.want = -EINVAL;
			else if (is_mapped(sfd, v->files[i].token))
				b.want = -EBUSY;	/* an iommufd maps it */
			else
				b.skip_ok = true;	/* would reorder */
			run_base(c, &b);
		}
	}

	group(c, "QUERY");
	{
		static const struct {
			const char *desc;
			__u32 count, reserved, kind;
			int where;	/* as in LIST_SESSIONS */
			__u32 fault_from;
		} qc[] = {
			{ "count 0, files 0", 0, 0, 0, 0, 0 },
			{ "count 0, files unmapped", 0, 0, 0, 2, 0 },
			{ "count 1, files 0", 1, 0, 0, 0, 1 },
			{ "count 1, files unmapped", 1, 0, 0, 2, 1 },
			{ "count 1, files kernel address", 1, 0, 0, 5, 1 },
			{ "count 1", 1, 0, 0, 1, 0 },
			{ "count 8", 8, 0, 0, 1, 0 },
			{ "count UINT32_MAX, room for all", UINT32_MAX, 0, 0,
			  1, 0 },
			{ "count 2, room for 1", 2, 0, 0, 3, 2 },
			{ "count 8, kind set (output only)", 8, 0, 0xdead, 1,
			  0 },
			{ "count 8, reserved 1", 8, 1, 0, 1, 0 },
			{ "count 8, reserved 0xffffffff", 8, 0xffffffff, 0, 1,
			  0 },
			{ "count 1, files 0, reserved 1", 1, 1, 0, 0, 1 },
		};
		const size_t info_size = sizeof(struct liveupdate_file_info);
		unsigned int k;

		for (k = 0; k < ARRAY_SIZE(qc); k++) {
			void *p = NULL;

			switch (qc[k].where) {
			case 1:
				p = out_area(c);
				break;
			case 2:
				p = unmapped(c);
				break;
			case 3:
				p = out_room1(c, info_size);
				break;
			case 5:
				p = (void *)(uintptr_t)0xffff888000000000ULL;
				break;
			}
			if (sizeof(void *) == 4 && qc[k].where == 5)
				continue;
			base_init(&b, sfd, "query %s", qc[k].desc);
			b.req = LIVEUPDATE_SESSION_QUERY;
			b.len = sizeof(b.arg.query);
			b.arg.query.count = qc[k].count;
			b.arg.query.reserved = qc[k].reserved;
			b.arg.query.kind = qc[k].kind;
			b.arg.query.files = (uintptr_t)p;
			b.out = true;
			b.ok = ok_query;
			if (qc[k].reserved) {
				b.want = -EINVAL;
				/* QUERY does not say which comes first. */
				if (qc[k].fault_from &&
				    v->count >= qc[k].fault_from)
					b.alt = -EFAULT;
			} else if (qc[k].fault_from &&
				   v->count >= qc[k].fault_from) {
				b.want = -EFAULT;
			}
			run_base(c, &b);
		}
	}

	unknown_cases(c, sfd, true);
}

/* Every command on an fd whose session was closed: EBADF. */
static void closed_cases(struct ctx *c)
{
	static const unsigned long reqs[] = {
		LIVEUPDATE_SESSION_PRESERVE_FD, LIVEUPDATE_SESSION_RETRIEVE_FD,
		LIVEUPDATE_SESSION_FINISH, LIVEUPDATE_SESSION_GET_NAME,
		LIVEUPDATE_SESSION_UNPRESERVE_FD, LIVEUPDATE_SESSION_QUERY,
		LIVEUPDATE_IOCTL_CREATE_SESSION,
		LIVEUPDATE_IOCTL_RETRIEVE_SESSION,
		LIVEUPDATE_IOCTL_LIST_SESSIONS,
	};
	unsigned int i;

	group(c, "closed session fd");
	for (i = 0; i < ARRAY_SIZE(reqs); i++) {
		int got;

		memset(out_area(c), 0, 128);
		*(__u32 *)out_area(c) = 72;
		got = ioctl(closed_fd, reqs[i], out_area(c)) ? -errno : 0;
		c->gcases++;
		c->cases++;
		if (got != -EBADF)
			fail(c, "ioctl %#lx on closed fd %d: got %s, want EBADF",
			     reqs[i], closed_fd, err_name(got));
		if (!c->threaded)
			check_state(c, "closed fd", false);
	}
}

/* Run every state of the stage; returns the number of cases. */
static unsigned int run_matrix(struct ctx *c)
{
	unsigned int before, total = 0;
	int i;

	c->state = stage ? "device (incoming sessions)" : "device";
	before = c->cases;
	dev_cases(c);
	unknown_cases(c, dev, false);
	group_end(c);
	if (!c->threaded)
		ksft_print_msg("misuse: stage %d %s %u cases\n", stage,
			       c->state, c->cases - before);
	for (i = 0; i < nr_sess_states; i++) {
		c->state = sess_states[i].state;
		before = c->cases;
		session_cases(c, sess_states[i].fd);
		group_end(c);
		if (!c->threaded)
			ksft_print_msg("misuse: stage %d %s %u cases\n", stage,
				       c->state, c->cases - before);
	}
	c->state = "closed";
	before = c->cases;
	closed_cases(c);
	group_end(c);
	if (!c->threaded)
		ksft_print_msg("misuse: stage %d %s %u cases\n", stage,
			       c->state, c->cases - before);
	total = c->cases;
	return total;
}

static struct ctx thread_ctx[NR_THREADS];

static void *thread_main(void *arg)
{
	struct ctx *c = arg;

	run_matrix(c);
	return NULL;
}

/* The matrix from one thread, then from NR_THREADS at once. */
static void run_stage_matrix(void)
{
	pthread_t threads[NR_THREADS];
	unsigned int single, all = 0, fails = 0, before;
	long long t0 = now_ms();
	struct ctx c;
	int fds, i;

	ksft_print_msg("misuse: stage %d: %d fd types, %d names, %d session states, %d variants, %d threads\n",
		       stage, nr_fdtypes, nr_names, nr_sess_states,
		       NR_VARIANTS, NR_THREADS);
	ctx_init(&c, 0, false);
	fds = count_fds();
	single = run_matrix(&c);
	ksft_print_msg("misuse: stage %d single thread: %u cases, %u failed, %lld ms\n",
		       stage, single, c.fails, now_ms() - t0);
	ksft_test_result(count_fds() == fds, "stage %d single thread: no fd left behind\n",
			 stage);

	t0 = now_ms();
	for (i = 0; i < NR_THREADS; i++)
		ctx_init(&thread_ctx[i], i + 1, true);
	for (i = 0; i < NR_THREADS; i++)
		if (pthread_create(&threads[i], NULL, thread_main,
				   &thread_ctx[i]))
			luo_bail("pthread_create failed");
	for (i = 0; i < NR_THREADS; i++) {
		pthread_join(threads[i], NULL);
		all += thread_ctx[i].cases;
		fails += thread_ctx[i].fails;
		ctx_destroy(&thread_ctx[i]);
	}
	/* Everything the threads did must have left the state as it was. */
	before = c.fails;
	check_state(&c, "after the threads", true);
	ksft_print_msg("misuse: stage %d %d threads: %u cases, %u failed, %lld ms\n",
		       stage, NR_THREADS, all, fails, now_ms() - t0);
	ksft_test_result(!fails && all > 0,
			 "stage %d %d threads at once: %u cases\n", stage,
			 NR_THREADS, all);
	ksft_test_result(c.fails == before && count_fds() == fds,
			 "stage %d after the threads: state unchanged, no fd left behind\n",
			 stage);
	ksft_print_msg("misuse: stage %d total %u cases\n", stage,
		       single + all);
	ctx_destroy(&c);
}

/* ---- stages ---- */

/* Stage 0: the device, outgoing sessions; then what stage 1 needs. */
static void stage0(void)
{
	int s_empty, s_files, s_closed, m1, t1, h1 = -1, hf = -1, i1 = -1;
	unsigned long long value;
	unsigned char raw[LUO_NAME_LEN];
	__u32 n = 0, ioas1 = 0, ioas;
	int ret, sfd, m, fd = -1;

	ret = luo_list_sessions(dev, NULL, &n);
	if (ret || n)
		luo_bail("fresh boot: %u incoming sessions (%s)", n,
			 strerror(-ret));
	huge = huge_setup();
	if (!huge)
		ksft_print_msg("misuse: stage 0: no hugetlb memfds: %s\n",
			       huge_why);
	iommu = iommu_setup();
	if (!iommu)
		ksft_print_msg("misuse: stage 0: %s\n", iommu_why);

	s_empty = luo_must_create_session(dev, "mis-out-empty");
	s_files = luo_must_create_session(dev, "mis-out-files");
	m1 = new_memfd("misuse-m1", 1);
	t1 = new_object(101);
	preserve(s_files, t1, 1);
	preserve(s_files, m1, 2);
	if (huge) {
		h1 = new_huge_memfd("misuse-huge-m1", HSEED_OUT);
		preserve(s_files, h1, HUGE_TOKEN);
		hf = new_huge_memfd("misuse-huge-fresh", HSEED_FRESH);
	}
	if (iommu) {
		/* Last: iommufd_checks() unpreserves it and preserves it again. */
		i1 = new_iommufd(m1, false, &ioas1);
		preserve(s_files, i1, IOMMUFD_TOKEN);
		add_mapped(s_files, 2);
	}
	s_closed = luo_must_create_session(dev, "mis-closed");
	close(s_closed);
	closed_fd = free_fd_number(901);

	add_common_fdtypes(m1, t1);
	if (huge)
		add_huge_fdtypes(h1, hf);
	if (iommu) {
		watch_iommufd(i1, ioas1, m1, PROBE_IOVA);
		add_iommufd_fdtypes(i1, m1);
	}
	add_fdtype("session fd (mis-out-files)", s_files, -ENOENT);
	add_fdtype("session fd (mis-out-empty)", s_empty, -ENOENT);
	watch_memfd(m1);
	if (huge) {
		watch_memfd(h1);
		/* Its page may move out of KHO scratch at each PRESERVE_FD. */
		watch_memfd(hf);
	}
	add_sess_state("outgoing (empty)", s_empty);
	add_sess_state("outgoing (with files)", s_files);

	add_str_name("", -EINVAL, -EINVAL);
	memset(raw, 'x', sizeof(raw));
	add_name("64 bytes, no NUL", raw, sizeof(raw), -EINVAL, -EINVAL);
	raw[0] = 0;
	add_name("NUL first, bytes after", raw, sizeof(raw), -EINVAL,
		 -EINVAL);
	add_name("63 bytes", NAME_63, 63, 0, -ENOENT);
	add_str_name("mis-out-empty", -EEXIST, -ENOENT);
	add_str_name("mis-out-files", -EEXIST, -ENOENT);
	add_name("mis-out-empty\\0junk", "mis-out-empty\0junk", 18, -EEXIST,
		 -ENOENT);
	add_str_name("mis-closed", 0, -ENOENT);
	add_str_name("\xff\x01 odd/name", 0, -ENOENT);

	huge_checks("mis-out-files", s_files, h1, HSEED_OUT, hf);
	iommufd_checks("mis-out-files", s_files, i1, ioas1, m1);
	run_stage_matrix();

	/*
	 * What stage 1 finds: one session per incoming state.  Each test
	 * object's value says which session it was in.  The sessions with
	 * memfds get a hugetlb memfd too, if there are hugetlb pages, and an
	 * iommufd mapping their memfd, if there is /dev/iommu.
	 */
	sfd = luo_must_create_session(dev, "in-unret");
	preserve(sfd, new_object(201), 1);
	m = new_memfd("misuse-in-unret", 2);
	preserve(sfd, m, 2);
	if (huge)
		preserve(sfd, new_huge_memfd("misuse-huge-in-unret",
					     HSEED_UNRET), HUGE_TOKEN);
	if (iommu)
		preserve(sfd, new_iommufd(m, false, &ioas), IOMMUFD_TOKEN);
	sfd = luo_must_create_session(dev, "in-ret");
	preserve(sfd, new_object(301), 1);
	sfd = luo_must_create_session(dev, "in-files");
	m = new_memfd("misuse-in-files", 4);
	ioas = 0;
	if (iommu)
		fd = new_iommufd(m, false, &ioas);
	/* Tells stage 1 what to expect: the hugetlb memfd, the IOAS ID. */
	value = IN_FILES_VALUE + (unsigned long long)ioas * IN_FILES_IOAS;
	if (huge)
		value += IN_FILES_HUGE;
	preserve(sfd, new_object(value), 1);
	preserve(sfd, m, 2);
	preserve(sfd, new_object(402), 3);
	if (huge)
		preserve(sfd, new_huge_memfd("misuse-huge-in-files", HSEED_IN),
			 HUGE_TOKEN_IN);
	if (iommu)
		preserve(sfd, fd, IOMMUFD_TOKEN);
	sfd = luo_must_create_session(dev, "in-fin");
	preserve(sfd, new_object(501), 1);
	if (iommu) {
		/* Stage 1 finishes them never retrieved. */
		m = new_memfd("misuse-in-fin", 6);
		preserve(sfd, m, 2);
		preserve(sfd, new_iommufd(m, false, &ioas), IOMMUFD_TOKEN);
	}
	sfd = luo_must_create_session(dev, "in-closed");
	preserve(sfd, new_object(601), 1);
	sfd = luo_must_create_session(dev, "in-finclosed");
	preserve(sfd, new_object(701), 1);
	/* Only the in-* sessions go along. */
	close(s_empty);
	close(s_files);

	if (ksft_get_fail_cnt()) {
		ksft_test_result_fail("kexec into stage 1 # not tried after failures\n");
		ksft_set_plan(ksft_test_num());
		ksft_finished();
	}
	ret = next_stage();
	ksft_print_msg("%s returned %d\n", LUO_NEXT_STAGE, ret);
	ksft_test_result_fail("kexec into stage 1\n");
	ksft_set_plan(ksft_test_num());
	ksft_finished();
}

static int retrieve_token(int sfd, __u64 token)
{
	int ret, fd = -1;

	ret = luo_retrieve_fd(sfd, token, &fd);
	if (ret)
		luo_bail("retrieve token %llu: %s", (unsigned long long)token,
			 strerror(-ret));
	return fd;
}

/* Stage 1: incoming sessions in every state. */
static void stage1(void)
{
	static const char *const want_list[] = {
		"in-closed", "in-files", "in-fin", "in-finclosed", "in-ret",
		"in-unret",
	};
	static const struct want_file in_files[] = {
		{ 1, LUO_TEST_COMPATIBLE, LIVEUPDATE_FILE_RETRIEVED },
		{ 2, "memfd", LIVEUPDATE_FILE_RETRIEVED },
		{ 3, LUO_TEST_COMPATIBLE, LIVEUPDATE_FILE_INCOMING },
		{ HUGE_TOKEN_IN, HUGE_COMPATIBLE, LIVEUPDATE_FILE_RETRIEVED },
		{ IOMMUFD_TOKEN, IOMMUFD_COMPATIBLE, LIVEUPDATE_FILE_RETRIEVED },
	};
	struct want_file want[ARRAY_SIZE(in_files)];
	char list[MAX_LIST][LUO_NAME_LEN];
	int s_ret, s_files, s_fin, s_out, f1, f2, m1, t1, sfd, ret;
	int h2 = -1, hs1 = -1, hf = -1, i2 = -1, is1 = -1;
	unsigned long long in_value = 0;
	unsigned char raw[LUO_NAME_LEN];
	__u32 n = MAX_LIST, i, nwant = 0, in_ioas, ioas1 = 0, m_state = 0;
	long long unmapped, left;
	struct ioas_view v;
	bool ok, in_huge;

	ret = luo_list_sessions(dev, list, &n);
	ok = !ret && n == ARRAY_SIZE(want_list);
	for (i = 0; ok && i < n; i++)
		ok = !strcmp(list[i], want_list[i]);
	ksft_test_result(ok, "stage 1: the incoming sessions are listed\n");
	if (!ok)
		luo_bail("incoming sessions: %u listed (%s)", n, strerror(-ret));

	s_ret = retrieve_session("in-ret");
	s_files = retrieve_session("in-files");
	f1 = retrieve_token(s_files, 1);
	if (luo_test_value(f1, &in_value))
		in_value = 0;
	in_huge = in_value % IN_FILES_IOAS == IN_FILES_VALUE + IN_FILES_HUGE;
	in_ioas = in_value / IN_FILES_IOAS;
	if (in_ioas) {
		/* Before the memfd it maps, which this retrieves. */
		ret = luo_retrieve_fd(s_files, IOMMUFD_TOKEN, &i2);
		if (ret) {
			ksft_print_msg("retrieve iommufd: %s\n", strerror(-ret));
			i2 = -1;
		}
		m_state = luo_file_state(s_files, 2);
	}
	f2 = retrieve_token(s_files, 2);
	for (i = 0; i < ARRAY_SIZE(in_files); i++)
		if ((in_huge || in_files[i].token != HUGE_TOKEN_IN) &&
		    (in_ioas || in_files[i].token != IOMMUFD_TOKEN))
			want[nwant++] = in_files[i];
	ksft_test_result((in_huge ||
			  in_value % IN_FILES_IOAS == IN_FILES_VALUE) &&
			 memfd_has(f2, 4),
			 "stage 1: retrieved files hold what was preserved\n");
	if (in_huge) {
		/* A failure is reported here; the matrix runs on anyway. */
		ret = luo_retrieve_fd(s_files, HUGE_TOKEN_IN, &h2);
		if (ret) {
			ksft_print_msg("retrieve hugetlb memfd: %s\n",
				       strerror(-ret));
			h2 = -1;
		}
		ksft_test_result(h2 >= 0 && huge_has(h2, HSEED_IN) &&
				 luo_memfd_name_is(h2, "misuse-huge-in-files") &&
				 query_is(s_files, want, nwant),
				 "stage 1: retrieved hugetlb memfd intact, QUERY says %s\n",
				 HUGE_COMPATIBLE);
	} else {
		ksft_test_result_skip("stage 1: retrieved hugetlb memfd: stage 0 had none\n");
	}
	if (in_ioas) {
		const struct watched_ioas w = { i2, in_ioas, f2, PROBE_IOVA };

		ioas_look(&w, &v);
		if (m_state != LIVEUPDATE_FILE_RETRIEVED)
			ksft_print_msg("memfd of token 2 in state %u after RETRIEVE_FD of the iommufd\n",
				       m_state);
		result(i2 >= 0 && m_state == LIVEUPDATE_FILE_RETRIEVED &&
		       v.ranges > 0 && v.probe == -EEXIST &&
		       query_is(s_files, want, nwant),
		       "stage 1: retrieved iommufd: IOAS %u again, mapping at %#llx the memfd it retrieved, QUERY says %s",
		       in_ioas, MAP_IOVA, IOMMUFD_COMPATIBLE);
	} else {
		ksft_test_result_skip("stage 1: retrieved iommufd: stage 0 had none\n");
	}
	/* With an iommufd and its memfd, never retrieved */
	s_fin = retrieve_session("in-fin");
	ret = luo_finish(s_fin);
	if (ret)
		luo_bail("finish in-fin: %s", strerror(-ret));
	sfd = retrieve_session("in-closed");
	close(sfd);
	sfd = retrieve_session("in-finclosed");
	ret = luo_finish(sfd);
	if (ret)
		luo_bail("finish in-finclosed: %s", strerror(-ret));
	close(sfd);
	closed_fd = free_fd_number(901);

	/* For this kernel's own hugetlb memfds: the retrieved one has its page. */
	huge = huge_setup();
	if (!huge)
		ksft_print_msg("misuse: stage 1: no new hugetlb memfds: %s\n",
			       huge_why);
	iommu = iommu_setup();
	if (!iommu)
		ksft_print_msg("misuse: stage 1: %s\n", iommu_why);

	/* Preserved in this kernel: the busy files of PRESERVE_FD. */
	s_out = luo_must_create_session(dev, "mis-out-s1");
	m1 = new_memfd("misuse-s1", 5);
	t1 = new_object(801);
	preserve(s_out, t1, 1);
	preserve(s_out, m1, 2);
	if (huge) {
		hs1 = new_huge_memfd("misuse-huge-s1", HSEED_S1);
		preserve(s_out, hs1, HUGE_TOKEN);
		hf = new_huge_memfd("misuse-huge-fresh", HSEED_FRESH);
	}
	if (iommu) {
		is1 = new_iommufd(m1, false, &ioas1);
		preserve(s_out, is1, IOMMUFD_TOKEN);
		add_mapped(s_out, 2);
	}

	add_common_fdtypes(m1, t1);
	if (huge)
		add_huge_fdtypes(hs1, hf);
	if (iommu) {
		watch_iommufd(is1, ioas1, m1, PROBE_IOVA);
		add_iommufd_fdtypes(is1, m1);
	}
	if (i2 >= 0) {
		/* Not preservable again until its session is finished */
		add_fdtype("retrieved iommufd", i2, -EBUSY);
		watch_iommufd(i2, in_ioas, f2, PROBE_IOVA);
	}
	add_fdtype("a retrieved session's fd", s_ret, -ENOENT);
	add_fdtype("a finished session's fd", s_fin, -ENOENT);
	watch_memfd(m1);
	watch_memfd(f2);
	if (h2 >= 0)
		watch_memfd(h2);
	if (huge) {
		watch_memfd(hs1);
		watch_memfd(hf);
	}
	add_sess_state("incoming, retrieved", s_ret);
	add_sess_state("incoming, files retrieved", s_files);
	add_sess_state("finished", s_fin);
	add_sess_state("outgoing (with files)", s_out);

	add_str_name("", -EINVAL, -EINVAL);
	memset(raw, 'x', sizeof(raw));
	add_name("64 bytes, no NUL", raw, sizeof(raw), -EINVAL, -EINVAL);
	add_name("63 bytes", NAME_63, 63, 0, -ENOENT);
	add_str_name("in-unret", -EEXIST, 0);
	add_name("in-unret\\0junk", "in-unret\0junk", 13, -EEXIST, 0);
	add_str_name("in-ret", -EEXIST, -EBUSY);
	add_str_name("in-files", -EEXIST, -EBUSY);
	add_str_name("in-fin", -EEXIST, -ENOENT);
	add_str_name("in-closed", -EEXIST, 0);
	add_str_name("in-finclosed", 0, -ENOENT);
	add_str_name("mis-out-files", 0, -ENOENT);
	add_str_name("mis-out-s1", -EEXIST, -ENOENT);

	huge_checks("mis-out-s1", s_out, hs1, HSEED_S1, hf);
	iommufd_checks("mis-out-s1", s_out, is1, ioas1, m1);
	run_stage_matrix();

	/* The matrix changed nothing: the files are still what they were. */
	f1 = retrieve_token(s_files, 1);
	ksft_test_result(luo_test_has_value(f1, in_value) && memfd_has(f2, 4) &&
			 memfd_has(m1, 5),
			 "stage 1: files unchanged after the matrix\n");
	close(f1);
	if (in_huge || huge) {
		/* Every byte, where the matrix's checks read a few windows. */
		ok = (!in_huge || huge_has(h2, HSEED_IN)) &&
		     (!huge || (huge_has(hs1, HSEED_S1) &&
				huge_has(hf, HSEED_FRESH)));
		ksft_test_result(ok, "stage 1: hugetlb memfds unchanged after the matrix\n");
	} else {
		ksft_test_result_skip("stage 1: hugetlb memfds after the matrix: none\n");
	}
	if (in_ioas) {
		unmapped = edu_unmap_len(i2, in_ioas, MAP_IOVA, MEMFD_SIZE);
		left = edu_unmap_len(i2, in_ioas, 0, UINT64_MAX);
		if (unmapped != MEMFD_SIZE || left)
			ksft_print_msg("IOMMU_IOAS_UNMAP: %lld, then of everything %lld\n",
				       unmapped, left);
		result(unmapped == MEMFD_SIZE && !left,
		       "stage 1: retrieved iommufd after the matrix: IOMMU_IOAS_UNMAP of the mapped range unmaps its %d bytes, nothing else mapped",
		       MEMFD_SIZE);
	} else {
		ksft_test_result_skip("stage 1: retrieved iommufd after the matrix: stage 0 had none\n");
	}
	ksft_set_plan(ksft_test_num());
	ksft_finished();
}

int main(void)
{
	stage = luo_stage();
	ksft_print_header();
	if (access(LUO_DEVICE, F_OK))
		ksft_exit_skip("%s missing (no LUO, or liveupdate=off)\n",
			       LUO_DEVICE);
	if (!luo_test_available())
		ksft_exit_skip("%s missing (CONFIG_LIVEUPDATE_TEST)\n",
			       LUO_TEST_DEVICE);
	dev = luo_open_device();
	if (dev < 0)
		ksft_exit_fail_msg("open %s: %s\n", LUO_DEVICE, strerror(-dev));
	if (stage == 0)
		stage0();
	else if (stage == 1)
		stage1();
	ksft_exit_fail_msg("no stage %d\n", stage);
}
