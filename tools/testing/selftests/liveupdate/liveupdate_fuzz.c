// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: a seeded fuzzer checked against a model.
 *
 *   liveupdate_fuzz [SEED [ITERATIONS [SECONDS]]]     (LUO_STAGE=N)
 *
 * or LUO_FUZZ_SEED, LUO_FUZZ_ITERS and LUO_FUZZ_SECS in the environment
 * (on the kernel command line for a test boot: LUO_APPEND=LUO_FUZZ_SEED=N).
 *
 * Stage 0: NR_WORKERS processes share the /dev/liveupdate fd and run random
 * operations: sessions created (own, colliding and shared names) and closed,
 * memfds (small, sparse, hugetlb) and test objects preserved, unpreserved,
 * written, truncated, sealed, dup'ed and closed, every ioctl with random
 * sizes, tails, bad pointers, read-only replies, reserved fields and command
 * numbers.  A hugetlb memfd (2 MiB pages, when the pool file exists) is
 * written through shared mappings and resized and punched by whole huge
 * pages; stage 0 sets up a pool that covers every worker's cap of them.
 * An iommufd (when /dev/iommu exists; no device or IOMMU needed) has one
 * IOAS, not always its first object, which may map a few pages of one of
 * the worker's shmem memfds (IOMMU_IOAS_MAP_FILE) and a page of user
 * memory (IOMMU_IOAS_MAP); IOAS commands map and unmap them.  The model
 * knows what the handler requires: PRESERVE_FD of an iommufd fails with
 * EOPNOTSUPP while it maps user memory, and with ENOENT unless the memfd
 * it maps is preserved in the same session; UNPRESERVE_FD of that memfd
 * fails with EBUSY while the iommufd is preserved; a preserved iommufd
 * refuses every IOAS command but IOMMU_IOAS_IOVA_RANGES (EBUSY).
 * Each worker keeps a model of what it preserved and checks every result the
 * model determines; a mismatch stops it with its seed and iteration.  Each
 * worker is bounded by ITERATIONS and by SECONDS of wall clock.  The workers
 * then hand their sessions (SCM_RIGHTS) and their model to the parent, which
 * preserves the combined model as a memfd in session "fuzz-manifest" and
 * kexecs.
 * Stage 1: every session of the manifest, and no other, is listed; each file
 * is retrieved and checked (size, content hash, seals, test values and
 * injected retrieve and finish failures; for a hugetlb memfd also its file
 * system, page size and allocated huge pages; for an iommufd its IOAS ID
 * and IOMMU_IOAS_UNMAP of exactly what it mapped), every session finished,
 * and nothing is left behind.  Depending on the seed, a session's iommufds
 * are retrieved in order, first (which retrieves the memfds they map), or
 * never (FINISH releases them).
 *
 * The kinds of operation a worker runs are a function of the seed (and of
 * the time bound); their arguments also of which worker wins each race for
 * a shared name or object.
 * The defaults, DEF_ITERS and DEF_SECS per worker: the iterations take about
 * 2 s on the fast kernel and 50 s on the debug one (KASAN, under TCG), so
 * that the clock bounds only a slow machine.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>
#include <linux/memfd.h>

#include "liveupdate_test.h"
#include "liveupdate_edu.h"
#include "kselftest.h"

#define NR_WORKERS	4
#define DEF_ITERS	15000
#define DEF_SECS	90
#define MAX_SESS	8
#define MAX_OBJ		32
#define PG		4096ULL
#define SMALL_MAX	(16 * PG)
#define SPARSE_PAGES	6
#define HPS		(2ULL << 20)	/* hugetlb memfds: 2 MiB pages */
#define HUGE_MAX_PAGES	3		/* the largest hugetlb memfd */
#define HUGE_CAP	10		/* huge pages a worker's memfds span */
#define HUGE_SLACK	8		/* for pages freed a moment late */
#define HUGE_POOL	(NR_WORKERS * HUGE_CAP + HUGE_SLACK)
#define HUGE_SYSFS	"/sys/kernel/mm/hugepages/hugepages-2048kB/"
#define NR_PRIV_NAMES	12
#define NR_SHARED_NAMES	4
#define NR_SHARED_MEMFD	3
#define NR_SHARED_TEST	3
#define NR_SHARED	(NR_SHARED_MEMFD + NR_SHARED_TEST)
#define MANIFEST_MAX	(64 * 1024)
#define MANIFEST_NAME	"fuzz-manifest"
#define HIST		8
#define HIST_LEN	112
#define NONE		1	/* no alternative result */
#define PRE_REPLY	(-1)	/* the reply cannot be written */
#define BAD_FD		1048576		/* past any fd limit */
#define NR_SEED_MIX	0x9e3779b97f4a7c15ULL
#define IOMMU_DEV	"/dev/iommu"
#define USER_IOVA	PG		/* user memory (IOMMU_IOAS_MAP) */
#define FILE_IOVA	0x100000ULL	/* and up: a memfd (IOMMU_IOAS_MAP_FILE) */
#define FILE_IOVAS	65536		/* pages of IOVA a memfd may start at */
#define FREE_IOVA	0x40000000ULL	/* nothing mapped there */

#define CMD(nr)		_IO(LIVEUPDATE_IOCTL_TYPE, nr)

enum kind { K_MEMFD, K_SPARSE, K_TEST, K_HUGE, K_IOMMUFD };

/*
 * One file a worker knows about.  K_MEMFD keeps its expected contents in
 * @buf; K_SPARSE has pages of generated contents at @page_off; K_TEST holds
 * @value.  K_HUGE, a hugetlb memfd, has 4 KiB pages of generated contents
 * at @page_off as K_SPARSE, and its allocated huge pages in bitmap
 * @present (the rest of each reads as zeros).  K_IOMMUFD, an iommufd, has
 * IOAS @ioas, which maps @size bytes of object @map (a K_MEMFD or K_SPARSE
 * of ours, whose @mapped counts it) at @iova if @map >= 0, and a page of
 * user memory at USER_IOVA if @user.  A preserved object whose fds are all
 * closed stays in the model: the session keeps it; so does a memfd an
 * iommufd maps: the mapping keeps it.
 */
struct obj {
	bool used;
	enum kind kind;
	int fd, dup;
	int shared;		/* index of a shared object, or -1 */
	int sess;		/* session while preserved, or -1 */
	__u64 token;
	__u64 size;
	unsigned char *buf;
	int npages;
	__u64 page_off[SPARSE_PAGES];
	__u64 page_seed[SPARSE_PAGES];
	unsigned int present;
	unsigned int seals;
	__u64 value;
	int fail_preserve, fail_retrieve, fail_finish;
	__u32 ioas;
	int map, mapped;
	__u64 iova;
	bool user;
};

struct sess {
	bool used;
	int fd;
	char name[LUO_NAME_LEN];
	int nfiles;
	int files[MAX_OBJ];	/* object indices, in preservation order */
};

enum op {
	OP_CREATE, OP_CLOSE_SESS, OP_DUP_SESS, OP_NEW_OBJ, OP_PRESERVE,
	OP_UNPRESERVE, OP_QUERY, OP_GET_NAME, OP_LIST, OP_RETRIEVE_SESS,
	OP_RETRIEVE_FD, OP_FINISH, OP_RANDOM_CMD, OP_WRITE, OP_TRUNCATE,
	OP_SEAL, OP_CLOSE_FD, OP_DUP_FD, OP_TEST_CMD, OP_VERIFY, OP_IOAS,
	NR_OPS,
};

static const char * const op_names[NR_OPS] = {
	"create", "close_session", "dup_session", "new_object", "preserve",
	"unpreserve", "query", "get_name", "list", "retrieve_session",
	"retrieve_fd", "finish", "random_cmd", "write", "truncate", "seal",
	"close_fd", "dup_fd", "test_cmd", "verify", "ioas",
};

/* Relative frequencies. */
static const unsigned int op_weight[NR_OPS] = {
	[OP_CREATE] = 8, [OP_CLOSE_SESS] = 2, [OP_DUP_SESS] = 1,
	[OP_NEW_OBJ] = 8, [OP_PRESERVE] = 16, [OP_UNPRESERVE] = 6,
	[OP_QUERY] = 5, [OP_GET_NAME] = 3, [OP_LIST] = 2,
	[OP_RETRIEVE_SESS] = 2, [OP_RETRIEVE_FD] = 2, [OP_FINISH] = 2,
	[OP_RANDOM_CMD] = 8, [OP_WRITE] = 8, [OP_TRUNCATE] = 4, [OP_SEAL] = 2,
	[OP_CLOSE_FD] = 4, [OP_DUP_FD] = 3, [OP_TEST_CMD] = 5, [OP_VERIFY] = 3,
	[OP_IOAS] = 4,
};

/* What a worker reports to the parent, in memory shared with it. */
struct wstat {
	__u64 iters;
	__u64 ops[NR_OPS];
	__u64 calls;		/* results checked against the model */
	__u64 errors;		/* of which expected failures */
	__u64 created;		/* sessions created */
	__u64 preserved;	/* files preserved */
	__u64 unpreserved;	/* files unpreserved by UNPRESERVE_FD */
	__u64 huge_new;		/* hugetlb memfds created */
	__u64 huge_short;	/* hugetlb mmaps or fallocates short of pages */
	__u64 iommufd_new;	/* iommufds created */
	__u64 iommufd_kept;	/* of the files preserved, iommufds mapping a memfd */
	__u64 msecs;
	int nsess;
	int failed;
	size_t mlen;
	char manifest[MANIFEST_MAX];
};

static __u64 seed;
static __u64 max_iters = DEF_ITERS;
static __u64 max_secs = DEF_SECS;
static int stage;
static int dev = -1;
static bool have_test;
static bool have_huge;
static bool have_iommu;

/* Created by the parent before the workers fork: never written after. */
static struct obj shared_obj[NR_SHARED];

/* Per worker (each is a process of its own). */
static int wid = -1;
static __u64 rnd_state;
static __u64 op_state;	/* a stream of its own: same ops for the same seed */
static __u64 iter;
static struct wstat *st;
static struct sess sess[MAX_SESS];
static struct obj obj[MAX_OBJ];
static unsigned char *area, *ro;
static int pipe_fd = -1, path_fd = -1;
static int probe_fd = -1;	/* a memfd of a page, to try to map */
static char hist[HIST][HIST_LEN];
static unsigned int nhist;
static struct liveupdate_file_info info[MAX_OBJ + 4];

/* ---- random numbers, hashes ---- */

static __u64 mix64(__u64 z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static __u64 rnd(void)
{
	rnd_state += NR_SEED_MIX;
	return mix64(rnd_state);
}

static __u32 rn(__u32 n)
{
	return n ? rnd() % n : 0;
}

static bool chance(unsigned int percent)
{
	return rn(100) < percent;
}

static void fill_random(unsigned char *p, size_t len, __u64 s)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (!(i % 8))
			s = mix64(s + NR_SEED_MIX);
		p[i] = s >> (8 * (i % 8));
	}
}

static bool all_zero(const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* Contents are hashed page by page: zero pages (and holes) do not count. */
static __u64 hash_page(__u64 h, __u64 off, const unsigned char *pg)
{
	__u64 w;
	size_t i;

	if (all_zero(pg, PG))
		return h;
	h = mix64(h ^ off);
	for (i = 0; i < PG; i += 8) {
		memcpy(&w, pg + i, 8);
		h = (h ^ w) * 0x100000001b3ULL;
	}
	return mix64(h);
}

static __u64 hash_buf(const unsigned char *buf, __u64 size)
{
	unsigned char pg[PG];
	__u64 h = 1, off;

	for (off = 0; off < size; off += PG) {
		__u64 n = size - off < PG ? size - off : PG;

		memset(pg, 0, PG);
		memcpy(pg, buf + off, n);
		h = hash_page(h, off, pg);
	}
	return h;
}

/* The hash of what @fd holds now, found through SEEK_DATA; 0 on error. */
static __u64 hash_fd(int fd, __u64 size)
{
	unsigned char pg[PG];
	__u64 h = 1, off = 0, p;
	off_t data, hole;

	while (off < size) {
		data = lseek(fd, off, SEEK_DATA);
		if (data < 0)
			return errno == ENXIO ? h : 0;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return 0;
		for (p = data & ~(PG - 1); p < (__u64)hole; p += PG) {
			memset(pg, 0, PG);
			if (pread(fd, pg, PG, p) < 0)
				return 0;
			h = hash_page(h, p, pg);
		}
		off = hole;
	}
	return h;
}

/*
 * The hash of what hugetlb memfd @fd holds, a huge page per read (pread
 * reads a hole as zeros and allocates nothing; SEEK_DATA sees no holes
 * there); 0 on error.
 */
static __u64 hash_huge_fd(int fd, __u64 size)
{
	static __u64 buf[HPS / 8];
	__u64 h = 1, off, p, i, w;

	for (off = 0; off < size; off += HPS) {
		if (pread(fd, buf, HPS, off) != (ssize_t)HPS)
			return 0;
		for (p = 0; p < HPS; p += PG) {
			/* Most of it is zeros: skip those a word at a time. */
			for (w = 0, i = 0; i < PG / 8; i++)
				w |= buf[p / 8 + i];
			if (w)
				h = hash_page(h, off + p,
					      (unsigned char *)&buf[p / 8]);
		}
	}
	return h;
}

static __u64 obj_hash(const struct obj *o)
{
	unsigned char pg[PG];
	__u64 h = 1;
	int i;

	if (o->kind == K_MEMFD)
		return hash_buf(o->buf, o->size);
	/* @page_off is kept sorted. */
	for (i = 0; i < o->npages; i++) {
		fill_random(pg, PG, o->page_seed[i]);
		h = hash_page(h, o->page_off[i], pg);
	}
	return h;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ---- failures ---- */

static __printf(1, 2) void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(hist[nhist++ % HIST], HIST_LEN, fmt, ap);
	va_end(ap);
}

static void print_rerun(void)
{
	ksft_print_msg("rerun: LUO_FUZZ_SEED=%llu ./liveupdate_fuzz (LUO_STAGE=0)\n",
		       (unsigned long long)seed);
	ksft_print_msg("   or: LUO_APPEND=LUO_FUZZ_SEED=%llu make retest-fast T=fuzz\n",
		       (unsigned long long)seed);
}

/* The whole report in one write(), not mixed with other workers' lines. */
static __printf(1, 2) void __noreturn wfail(const char *fmt, ...)
{
	char out[HIST * (HIST_LEN + 16) + 1024];
	size_t n = 0;
	unsigned int i;
	va_list ap;

	n += snprintf(out + n, sizeof(out) - n,
		      "# FAIL: seed %llu worker %d iteration %llu: ",
		      (unsigned long long)seed, wid,
		      (unsigned long long)iter);
	va_start(ap, fmt);
	n += vsnprintf(out + n, sizeof(out) - n, fmt, ap);
	va_end(ap);
	i = nhist > HIST ? nhist - HIST : 0;
	for (; i < nhist && n < sizeof(out); i++)
		n += snprintf(out + n, sizeof(out) - n, "\n#   op %u: %s", i,
			      hist[i % HIST]);
	if (n < sizeof(out))
		n += snprintf(out + n, sizeof(out) - n,
			      "\n# rerun: LUO_FUZZ_SEED=%llu\n",
			      (unsigned long long)seed);
	fflush(stdout);
	if (write(1, out, n < sizeof(out) ? n : sizeof(out) - 1) < 0)
		perror("write");
	st->iters = iter;
	st->failed = 1;
	_exit(1);
}

static const char *ename(int ret)
{
	static char buf[2][48];
	static int n;

	n ^= 1;
	if (ret == NONE)
		return "-";
	if (!ret)
		return "success";
	snprintf(buf[n], sizeof(buf[n]), "%s (%d)", strerror(-ret), -ret);
	return buf[n];
}

/* @ret must be @want or @alt (NONE: no alternative). */
static void expect(int ret, int want, int alt, const char *what)
{
	st->calls++;
	if (ret == want || (alt != NONE && ret == alt)) {
		if (ret)
			st->errors++;
		return;
	}
	wfail("%s: got %s, want %s%s%s", what, ename(ret), ename(want),
	      alt != NONE ? " or " : "", alt != NONE ? ename(alt) : "");
}

/* ---- ioctls in random envelopes ---- */

enum env {
	E_PLAIN, E_SHORT, E_LONG, E_TAIL, E_TAIL_FAULT, E_BADPTR, E_RDONLY,
	NR_ENV,
};

static const char * const env_names[NR_ENV] = {
	"plain", "short", "long", "tail", "tail-fault", "bad-pointer",
	"read-only",
};

static enum env pick_env(void)
{
	return chance(60) ? E_PLAIN : 1 + rn(NR_ENV - 1);
}

/*
 * Issue command @nr on @fd with @arg (@len bytes; its size member is set
 * here) placed as @env says, and copy the reply back into @arg.  *@pre
 * gets the errno the envelope alone determines, PRE_REPLY if the reply
 * cannot be written, or 0.  Returns 0 or -errno.
 */
static int xioctl(int fd, unsigned int nr, void *arg, size_t len,
		  enum env env, int *pre)
{
	unsigned char *p = area;
	size_t extra = 0, gap = 0;
	__u32 size = len;
	int ret;

	*pre = 0;
	switch (env) {
	case E_PLAIN:
		break;
	case E_SHORT:
		size = rn(len);
		*pre = EINVAL;
		break;
	case E_LONG:
	case E_TAIL:
		extra = 1 + rn(2 * PG);
		size = len + extra;
		if (env == E_TAIL)
			*pre = E2BIG;
		break;
	case E_TAIL_FAULT:
		/* The tail is zero up to the guard page, then faults. */
		gap = rn(64);
		p = area + 3 * PG - len - gap;
		size = len + gap + 1 + rn(PG);
		*pre = EFAULT;
		break;
	case E_BADPTR:
		p = chance(50) ? NULL : area + 3 * PG;
		*pre = EFAULT;
		break;
	case E_RDONLY:
		p = ro;
		*pre = PRE_REPLY;
		break;
	default:
		break;
	}
	memcpy(arg, &size, sizeof(size));
	if (env == E_RDONLY) {
		if (mprotect(ro, PG, PROT_READ | PROT_WRITE))
			wfail("mprotect: %s", strerror(errno));
		memcpy(ro, arg, len);
		if (mprotect(ro, PG, PROT_READ))
			wfail("mprotect: %s", strerror(errno));
	} else if (env != E_BADPTR) {
		memcpy(p, arg, len);
		if (env == E_TAIL_FAULT)
			memset(p + len, 0, gap);
		else
			memset(p + len, 0, extra);
		if (env == E_TAIL)
			p[len + rn(extra)] = 1 + rn(255);
	}
	ret = ioctl(fd, CMD(nr), p) ? -errno : 0;
	if (env != E_BADPTR)
		memcpy(arg, p, len);
	return ret;
}

/* The result a call must end with, given its envelope and the command's. */
static int outcome(int pre, int want, bool replies)
{
	if (want == NONE)
		return NONE;
	if (pre > 0)
		return -pre;
	if (pre == PRE_REPLY && replies && !want)
		return -EFAULT;
	return want;
}

/* ---- the model ---- */

static struct obj *obj_new(void)
{
	int i;

	for (i = 0; i < MAX_OBJ; i++)
		if (!obj[i].used) {
			memset(&obj[i], 0, sizeof(obj[i]));
			obj[i].used = true;
			obj[i].fd = -1;
			obj[i].dup = -1;
			obj[i].shared = -1;
			obj[i].sess = -1;
			obj[i].map = -1;
			return &obj[i];
		}
	return NULL;
}

/*
 * Forget an object the kernel no longer holds for us.  An iommufd's context
 * goes with its last file, and its mapping with it.
 */
static void obj_maybe_drop(struct obj *o)
{
	if (o->fd >= 0 || o->dup >= 0 || o->sess >= 0 || o->mapped)
		return;
	if (o->shared < 0)
		free(o->buf);
	o->used = false;
	if (o->kind == K_IOMMUFD && o->map >= 0) {
		obj[o->map].mapped--;
		obj_maybe_drop(&obj[o->map]);
	}
}

static const char *kind_name(const struct obj *o)
{
	static const char * const names[] = {
		[K_MEMFD] = "memfd", [K_SPARSE] = "sparse memfd",
		[K_TEST] = "test object", [K_HUGE] = "hugetlb memfd",
		[K_IOMMUFD] = "iommufd",
	};

	return names[o->kind];
}

static int pick_obj(bool (*ok)(const struct obj *o))
{
	int i, n = 0, pick[MAX_OBJ];

	for (i = 0; i < MAX_OBJ; i++)
		if (obj[i].used && (!ok || ok(&obj[i])))
			pick[n++] = i;
	return n ? pick[rn(n)] : -1;
}

static int pick_sess(void)
{
	int i, n = 0, pick[MAX_SESS];

	for (i = 0; i < MAX_SESS; i++)
		if (sess[i].used)
			pick[n++] = i;
	return n ? pick[rn(n)] : -1;
}

static int free_sess(void)
{
	int i;

	for (i = 0; i < MAX_SESS; i++)
		if (!sess[i].used)
			return i;
	return -1;
}

static int sess_by_name(const char *name)
{
	int i;

	for (i = 0; i < MAX_SESS; i++)
		if (sess[i].used && !strcmp(sess[i].name, name))
			return i;
	return -1;
}

static int file_by_token(const struct sess *s, __u64 token)
{
	int i;

	for (i = 0; i < s->nfiles; i++)
		if (obj[s->files[i]].token == token)
			return i;
	return -1;
}

static int obj_fd(const struct obj *o)
{
	if (o->fd >= 0 && o->dup >= 0)
		return chance(50) ? o->fd : o->dup;
	return o->fd >= 0 ? o->fd : o->dup;
}

static bool not_iommufd(const struct obj *o)
{
	return o->kind != K_IOMMUFD;
}

/*
 * Some fd that is not a session: ioctls of the 0xBA type get ENOTTY.  Not
 * an iommufd: it reads the size of a command numbered in its own range
 * first (EFAULT from a NULL argument).
 */
static int other_fd(void)
{
	int i = pick_obj(not_iommufd);

	if (i >= 0 && obj_fd(&obj[i]) >= 0 && chance(70))
		return obj_fd(&obj[i]);
	return pipe_fd;
}

static void unpreserved(struct obj *o)
{
	struct sess *s = &sess[o->sess];
	int i = file_by_token(s, o->token);

	memmove(&s->files[i], &s->files[i + 1],
		(s->nfiles - i - 1) * sizeof(s->files[0]));
	s->nfiles--;
	o->sess = -1;
	obj_maybe_drop(o);
}

/*
 * What the handler answers to PRESERVE_FD of iommufd @o into session @si:
 * user memory cannot be found again in the next kernel (EOPNOTSUPP, seen
 * before any file is looked up); the memfd it maps must be preserved in
 * the same session (ENOENT).
 */
static int iommufd_preserve_errno(const struct obj *o, int si)
{
	if (o->user)
		return -EOPNOTSUPP;
	if (o->map >= 0 && obj[o->map].sess != si)
		return -ENOENT;
	return 0;
}

/* Whether a preserved iommufd maps object @oi (then of the same session). */
static bool mapped_by_preserved(int oi)
{
	int i;

	for (i = 0; i < MAX_OBJ; i++)
		if (obj[i].used && obj[i].kind == K_IOMMUFD &&
		    obj[i].sess >= 0 && obj[i].map == oi)
			return true;
	return false;
}

static void random_name(char *name, bool *shared)
{
	unsigned int k = rn(NR_PRIV_NAMES + NR_SHARED_NAMES);

	*shared = false;
	if (k >= NR_PRIV_NAMES) {
		*shared = true;
		snprintf(name, LUO_NAME_LEN, "fz-shared-%u", k - NR_PRIV_NAMES);
	} else if (k == 0) {
		/* The longest name there can be. */
		memset(name, 'L', LUO_NAME_LEN - 1);
		name[LUO_NAME_LEN - 1] = '\0';
		name[0] = '0' + wid;
	} else {
		snprintf(name, LUO_NAME_LEN, "fz%d-%u", wid, k);
	}
}

/* ---- operations on /dev/liveupdate ---- */

static void op_create(int target)
{
	struct liveupdate_ioctl_create_session a = { 0 };
	int pre, ret, want = 0, alt = NONE, si = free_sess();
	char name[LUO_NAME_LEN] = "";
	enum env env = pick_env();
	bool shared = false, nonul = false;

	switch (rn(12)) {
	case 0:
		name[0] = '\0';
		want = -EINVAL;
		break;
	case 1:
		strcpy(name, "(no NUL)");
		nonul = true;
		want = -EINVAL;
		break;
	default:
		random_name(name, &shared);
		if (sess_by_name(name) >= 0)
			want = -EEXIST;
		else if (shared)
			alt = -EEXIST;
		break;
	}
	if (si < 0 && !want) {
		/* No room: collide with a session we have. */
		si = pick_sess();
		memcpy(name, sess[si].name, LUO_NAME_LEN);
		want = -EEXIST;
		alt = NONE;
	}
	luo_set_name(a.name, name);
	if (nonul)
		memset(a.name, 'n', LUO_NAME_LEN);
	note("CREATE_SESSION '%.20s' env %s on fd %d", name, env_names[env],
	     target);
	ret = xioctl(target, LIVEUPDATE_CMD_CREATE_SESSION, &a, sizeof(a),
		     env, &pre);
	if (target != dev) {
		expect(ret, -ENOTTY, NONE, "CREATE_SESSION on a non-device fd");
		return;
	}
	expect(ret, outcome(pre, want, true), outcome(pre, alt, true),
	       "CREATE_SESSION");
	if (ret)
		return;
	if (a.fd < 0 || !luo_has_cloexec(a.fd))
		wfail("CREATE_SESSION returned fd %d (close-on-exec %d)", a.fd,
		      a.fd >= 0 && luo_has_cloexec(a.fd));
	st->created++;
	sess[si].used = true;
	sess[si].fd = a.fd;
	sess[si].nfiles = 0;
	memcpy(sess[si].name, name, LUO_NAME_LEN);
}

static void op_retrieve_sess(int target)
{
	struct liveupdate_ioctl_retrieve_session a = { 0 };
	char name[LUO_NAME_LEN];
	enum env env = pick_env();
	int pre, ret, want;
	bool shared;

	/* Stage 0 of a fresh boot has no incoming session. */
	random_name(name, &shared);
	want = -ENOENT;
	if (chance(10)) {
		name[0] = '\0';
		want = -EINVAL;
	}
	luo_set_name(a.name, name);
	note("RETRIEVE_SESSION '%.20s' env %s", name, env_names[env]);
	ret = xioctl(target, LIVEUPDATE_CMD_RETRIEVE_SESSION, &a, sizeof(a),
		     env, &pre);
	if (target != dev)
		expect(ret, -ENOTTY, NONE, "RETRIEVE_SESSION on a non-device fd");
	else
		expect(ret, outcome(pre, want, true), NONE, "RETRIEVE_SESSION");
}

static void op_list(int target)
{
	struct liveupdate_ioctl_list_sessions a = { 0 };
	/* Names would go to buffers that must stay untouched. */
	static unsigned char buf[4 * LUO_NAME_LEN];
	unsigned char *names = ro;
	enum env env = pick_env();
	__u32 count = rn(4);
	int pre, ret;

	memset(buf, 0xaa, sizeof(buf));
	a.count = count;
	a.names = chance(80) ? (uintptr_t)buf : (uintptr_t)names;
	if (!count && chance(50))
		a.names = 0;
	note("LIST_SESSIONS count %u env %s", count, env_names[env]);
	ret = xioctl(target, LIVEUPDATE_CMD_LIST_SESSIONS, &a, sizeof(a), env,
		     &pre);
	if (target != dev) {
		expect(ret, -ENOTTY, NONE, "LIST_SESSIONS on a non-device fd");
		return;
	}
	expect(ret, outcome(pre, 0, true), NONE, "LIST_SESSIONS");
	if (ret)
		return;
	if (a.count || buf[0] != 0xaa ||
	    memcmp(buf, buf + 1, sizeof(buf) - 1))
		wfail("LIST_SESSIONS: %u incoming sessions in stage 0", a.count);
}

static void op_timeline(int target)
{
	struct liveupdate_ioctl_get_timeline a = { 0 };
	/* Steps go to a buffer of ours, or to one that must stay untouched. */
	static struct liveupdate_timeline_step buf[4];
	enum env env = pick_env();
	__u32 count = rn(5);
	int pre, ret;

	a.count = count;
	a.steps = chance(80) ? (uintptr_t)buf : (uintptr_t)ro;
	if (!count && chance(50))
		a.steps = 0;
	note("GET_TIMELINE count %u env %s", count, env_names[env]);
	ret = xioctl(target, LIVEUPDATE_CMD_GET_TIMELINE, &a, sizeof(a), env,
		     &pre);
	if (target != dev) {
		expect(ret, -ENOTTY, NONE, "GET_TIMELINE on a non-device fd");
		return;
	}
	/* A cold boot has steps (ready, open): written unless room is 0. */
	expect(ret, outcome(pre, count && a.steps == (uintptr_t)ro ?
				 -EFAULT : 0, true), NONE, "GET_TIMELINE");
	if (!ret && !a.count)
		wfail("GET_TIMELINE: no steps after a boot");
}

/* ---- operations on sessions ---- */

/* A session, or -1 with *@fd some other fd (then ENOTTY). */
static int target_sess(int *fd)
{
	int si = pick_sess();

	if (si < 0 || chance(5)) {
		*fd = chance(30) ? dev : other_fd();
		return -1;
	}
	*fd = sess[si].fd;
	return si;
}

/* A number that is no open fd (nothing else opens fds meanwhile). */
static int closed_fd(void)
{
	int fd = dup(0);

	if (fd >= 0)
		close(fd);
	return fd;
}

static void op_preserve(int si, int tfd)
{
	struct liveupdate_session_preserve_fd a = { 0 };
	int pre, ret, want = 0, alt = NONE, oi = -1, fd;
	enum env env = pick_env();
	struct sess *s = si >= 0 ? &sess[si] : NULL;
	const char *what;
	struct obj *o = NULL;
	__u64 token;

	switch (rn(20)) {
	case 0:
		fd = chance(50) ? -1 : chance(50) ? BAD_FD : closed_fd();
		what = "bad fd";
		want = -EBADF;
		break;
	case 1:
		fd = path_fd;
		what = "O_PATH fd";
		want = -EBADF;
		break;
	case 2:
		if (chance(30))
			fd = dev;
		else
			fd = s && chance(50) ? s->fd : pipe_fd;
		what = "unsupported fd";
		want = -ENOENT;
		break;
	default:
		oi = pick_obj(NULL);
		if (oi < 0 || obj_fd(&obj[oi]) < 0)
			return;
		o = &obj[oi];
		fd = obj_fd(o);
		what = kind_name(o);
		break;
	}
	if (s && s->nfiles && chance(25))
		token = obj[s->files[rn(s->nfiles)]].token;
	else if (chance(70))
		token = rn(8);
	else
		token = chance(10) ? ~0ULL : rnd();

	if (want) {
		/* EBADF comes first, then the token, then the handler. */
		if (want == -ENOENT && s && file_by_token(s, token) >= 0)
			want = -EEXIST;
	} else if (s && file_by_token(s, token) >= 0) {
		want = -EEXIST;
	} else if (o->sess >= 0) {
		want = -EBUSY;
	} else if (o->shared >= 0) {
		/* Another worker may hold it. */
		alt = -EBUSY;
	} else if (o->kind == K_TEST && o->fail_preserve) {
		want = -o->fail_preserve;
	} else if (o->kind == K_IOMMUFD) {
		want = iommufd_preserve_errno(o, si);
	}
	a.fd = fd;
	a.token = token;
	note("PRESERVE_FD %s fd %d token %llu into %s env %s", what, fd,
	     (unsigned long long)token, s ? s->name : "(not a session)",
	     env_names[env]);
	ret = xioctl(tfd, LIVEUPDATE_CMD_SESSION_PRESERVE_FD, &a, sizeof(a),
		     env, &pre);
	if (!s) {
		expect(ret, -ENOTTY, NONE, "PRESERVE_FD on a non-session fd");
		return;
	}
	expect(ret, outcome(pre, want, false), outcome(pre, alt, false),
	       "PRESERVE_FD");
	/* An armed failure is used up by the call that reached it. */
	if (o && o->kind == K_TEST && o->fail_preserve &&
	    ret == -o->fail_preserve)
		o->fail_preserve = 0;
	if (ret)
		return;
	st->preserved++;
	if (o->kind == K_IOMMUFD && o->map >= 0)
		st->iommufd_kept++;
	o->sess = si;
	o->token = token;
	s->files[s->nfiles++] = oi;
}

static void op_unpreserve(int si, int tfd)
{
	struct liveupdate_session_unpreserve_fd a = { 0 };
	struct sess *s = si >= 0 ? &sess[si] : NULL;
	enum env env = pick_env();
	int pre, ret, want, fi = -1;
	__u64 token;

	if (s && s->nfiles && chance(75))
		token = obj[s->files[rn(s->nfiles)]].token;
	else
		token = chance(50) ? rn(8) : rnd();
	if (s)
		fi = file_by_token(s, token);
	want = fi >= 0 ? 0 : -ENOENT;
	/* A preserved iommufd's state names it. */
	if (fi >= 0 && mapped_by_preserved(s->files[fi]))
		want = -EBUSY;
	if (chance(8)) {
		a.reserved = 1 + rn(~0U - 1);
		want = -EINVAL;
	}
	a.token = token;
	note("UNPRESERVE_FD token %llu from %s env %s",
	     (unsigned long long)token, s ? s->name : "(not a session)",
	     env_names[env]);
	ret = xioctl(tfd, LIVEUPDATE_CMD_SESSION_UNPRESERVE_FD, &a, sizeof(a),
		     env, &pre);
	if (!s) {
		expect(ret, -ENOTTY, NONE, "UNPRESERVE_FD on a non-session fd");
		return;
	}
	expect(ret, outcome(pre, want, false), NONE, "UNPRESERVE_FD");
	if (ret)
		return;
	st->unpreserved++;
	unpreserved(&obj[s->files[fi]]);
}

static const char *compatible_of(const struct obj *o)
{
	if (o->kind == K_TEST)
		return LUO_TEST_COMPATIBLE;
	if (o->kind == K_IOMMUFD)
		return "iommufd";
	return o->kind == K_HUGE ? "memfd-hugetlb" : "memfd";
}

/* Check a QUERY reply (@n entries written) against session @s. */
static void check_query(const struct sess *s, __u32 kind, __u32 count,
			__u32 n, const char *what)
{
	__u32 i;

	if (kind != LIVEUPDATE_SESSION_OUTGOING || count != (__u32)s->nfiles)
		wfail("%s %s: kind %u, %u files; want %u, %d", what, s->name,
		      kind, count, LIVEUPDATE_SESSION_OUTGOING, s->nfiles);
	for (i = 0; i < n && i < count; i++) {
		const struct obj *o = &obj[s->files[i]];

		/* A memfd may still be moving pages out of KHO scratch. */
		if (info[i].token != o->token ||
		    (info[i].state != LIVEUPDATE_FILE_PRESERVED &&
		     (o->kind == K_TEST || o->kind == K_IOMMUFD ||
		      info[i].state != LIVEUPDATE_FILE_SETTLING)) ||
		    info[i].error ||
		    strcmp((char *)info[i].compatible, compatible_of(o)))
			wfail("%s %s: file %u: token %llu state %u err %u '%.48s', want %llu '%s'",
			      what, s->name, i,
			      (unsigned long long)info[i].token,
			      info[i].state, info[i].error,
			      info[i].compatible,
			      (unsigned long long)o->token,
			      compatible_of(o));
	}
	for (; i < n; i++)
		if (info[i].token != 0xaaaaaaaaaaaaaaaaULL)
			wfail("%s %s: entry %u written past the files", what,
			      s->name, i);
}

static void op_query(int si, int tfd)
{
	struct liveupdate_session_query a = { 0 };
	struct sess *s = si >= 0 ? &sess[si] : NULL;
	enum env env = pick_env();
	int pre, ret, want = 0;
	__u32 room = rn(MAX_OBJ + 4);
	bool bad = false;

	memset(info, 0xaa, sizeof(info));
	a.count = room;
	a.files = (uintptr_t)info;
	if (chance(8)) {
		a.files = chance(50) ? 0 : (uintptr_t)(area + 3 * PG);
		bad = true;
	}
	if (s && bad && room && s->nfiles)
		want = -EFAULT;
	if (chance(8)) {
		a.reserved = 1 + rn(100);
		want = -EINVAL;
	}
	note("QUERY %s room %u%s env %s", s ? s->name : "(not a session)",
	     room, bad ? " bad files" : "", env_names[env]);
	ret = xioctl(tfd, LIVEUPDATE_CMD_SESSION_QUERY, &a, sizeof(a), env,
		     &pre);
	if (!s) {
		expect(ret, -ENOTTY, NONE, "QUERY on a non-session fd");
		return;
	}
	expect(ret, outcome(pre, want, true), NONE, "QUERY");
	if (!ret)
		check_query(s, a.kind, a.count, bad ? 0 : room, "QUERY");
}

static void op_get_name(int si, int tfd)
{
	struct liveupdate_session_get_name a = { 0 };
	struct sess *s = si >= 0 ? &sess[si] : NULL;
	enum env env = pick_env();
	int pre, ret, want = 0;

	if (chance(8)) {
		a.reserved = 1 + rn(100);
		want = -EINVAL;
	}
	note("GET_NAME %s env %s", s ? s->name : "(not a session)",
	     env_names[env]);
	ret = xioctl(tfd, LIVEUPDATE_CMD_SESSION_GET_NAME, &a, sizeof(a), env,
		     &pre);
	if (!s) {
		expect(ret, -ENOTTY, NONE, "GET_NAME on a non-session fd");
		return;
	}
	expect(ret, outcome(pre, want, true), NONE, "GET_NAME");
	if (!ret && strncmp((char *)a.name, s->name, LUO_NAME_LEN))
		wfail("GET_NAME: '%.64s', want '%s'", a.name, s->name);
}

/* RETRIEVE_FD and FINISH are for incoming sessions: EINVAL on ours. */
static void op_retrieve_fd(int si, int tfd)
{
	struct liveupdate_session_retrieve_fd a = { 0 };
	enum env env = pick_env();
	int pre, ret;

	a.token = chance(50) ? rn(8) : rnd();
	note("RETRIEVE_FD token %llu env %s", (unsigned long long)a.token,
	     env_names[env]);
	ret = xioctl(tfd, LIVEUPDATE_CMD_SESSION_RETRIEVE_FD, &a, sizeof(a),
		     env, &pre);
	if (si < 0)
		expect(ret, -ENOTTY, NONE, "RETRIEVE_FD on a non-session fd");
	else
		expect(ret, outcome(pre, -EINVAL, true), NONE,
		       "RETRIEVE_FD on an outgoing session");
}

static void op_finish(int si, int tfd)
{
	struct liveupdate_session_finish a = { 0 };
	enum env env = pick_env();
	int pre, ret;

	if (chance(30))
		a.reserved = rnd();
	note("FINISH reserved %u env %s", a.reserved, env_names[env]);
	ret = xioctl(tfd, LIVEUPDATE_CMD_SESSION_FINISH, &a, sizeof(a), env,
		     &pre);
	if (si < 0)
		expect(ret, -ENOTTY, NONE, "FINISH on a non-session fd");
	else
		expect(ret, outcome(pre, -EINVAL, false), NONE,
		       "FINISH on an outgoing session");
}

static void op_close_sess(void)
{
	int si = pick_sess(), i;
	struct sess *s;

	if (si < 0)
		return;
	s = &sess[si];
	note("close session %s (%d files)", s->name, s->nfiles);
	if (close(s->fd))
		wfail("close of session %s: %s", s->name, strerror(errno));
	/* Every file is unpreserved; the name is free again. */
	for (i = 0; i < s->nfiles; i++) {
		obj[s->files[i]].sess = -1;
		obj_maybe_drop(&obj[s->files[i]]);
	}
	s->used = false;
}

static void op_dup_sess(void)
{
	int si = pick_sess(), fd;

	if (si < 0)
		return;
	note("dup session %s", sess[si].name);
	fd = fcntl(sess[si].fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		wfail("dup of a session fd: %s", strerror(errno));
	close(sess[si].fd);
	sess[si].fd = fd;
}

/* Any command number of the type, any encoding, on any of our fds. */
static void op_random_cmd(void)
{
	unsigned int nr = rn(256), cmd = CMD(nr);
	int fd, si = -1, ret;
	bool is_dev = false;

	switch (rn(4)) {
	case 0:
		fd = dev;
		is_dev = true;
		break;
	case 1:
		si = pick_sess();
		fd = si >= 0 ? sess[si].fd : pipe_fd;
		break;
	default:
		fd = other_fd();
		break;
	}
	if (chance(30))
		cmd = _IOC(1 + rn(3), LIVEUPDATE_IOCTL_TYPE, nr, rn(256));
	if (cmd == CMD(nr) && is_dev) {
		switch (nr) {
		case LIVEUPDATE_CMD_CREATE_SESSION:
			return op_create(fd);
		case LIVEUPDATE_CMD_RETRIEVE_SESSION:
			return op_retrieve_sess(fd);
		case LIVEUPDATE_CMD_LIST_SESSIONS:
			return op_list(fd);
		case LIVEUPDATE_CMD_GET_TIMELINE:
			return op_timeline(fd);
		}
	} else if (cmd == CMD(nr) && si >= 0) {
		switch (nr) {
		case LIVEUPDATE_CMD_SESSION_PRESERVE_FD:
			return op_preserve(si, fd);
		case LIVEUPDATE_CMD_SESSION_RETRIEVE_FD:
			return op_retrieve_fd(si, fd);
		case LIVEUPDATE_CMD_SESSION_FINISH:
			return op_finish(si, fd);
		case LIVEUPDATE_CMD_SESSION_GET_NAME:
			return op_get_name(si, fd);
		case LIVEUPDATE_CMD_SESSION_UNPRESERVE_FD:
			return op_unpreserve(si, fd);
		case LIVEUPDATE_CMD_SESSION_QUERY:
			return op_query(si, fd);
		}
	}
	fill_random(area, 3 * PG, rnd());
	note("ioctl 0x%x on fd %d", cmd, fd);
	ret = ioctl(fd, cmd, chance(20) ? NULL : area) ? -errno : 0;
	expect(ret, -ENOTTY, NONE, "unknown command");
}

/* ---- files ---- */

static int new_memfd(const char *name)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		ksft_exit_fail_msg("memfd_create: %s\n", strerror(errno));
	return fd;
}

static void write_all(int fd, const void *buf, size_t len, __u64 off)
{
	if (pwrite(fd, buf, len, off) != (ssize_t)len)
		ksft_exit_fail_msg("pwrite of %zu bytes at %llu: %s\n", len,
				   (unsigned long long)off, strerror(errno));
}

/* Add (or replace) a sparse page, keeping them sorted. */
static void sparse_put(struct obj *o, __u64 off, __u64 s)
{
	int i, j;

	for (i = 0; i < o->npages && o->page_off[i] < off; i++)
		;
	if (i == o->npages || o->page_off[i] != off) {
		for (j = o->npages; j > i; j--) {
			o->page_off[j] = o->page_off[j - 1];
			o->page_seed[j] = o->page_seed[j - 1];
		}
		o->npages++;
	}
	o->page_off[i] = off;
	o->page_seed[i] = s;
}

static void sparse_write(struct obj *o, int fd, __u64 off, __u64 s)
{
	unsigned char pg[PG];

	fill_random(pg, PG, s);
	write_all(fd, pg, PG, off);
	sparse_put(o, off, s);
}

static void make_memfd(struct obj *o, bool sparse)
{
	__u64 i, n;

	o->fd = new_memfd(sparse ? "fuzz-sparse" : "fuzz");
	if (sparse) {
		o->kind = K_SPARSE;
		o->size = PG * (256 + rn(1 << 22));	/* up to 16 GiB */
		if (ftruncate(o->fd, o->size))
			ksft_exit_fail_msg("ftruncate: %s\n", strerror(errno));
		n = 1 + rn(3);
		for (i = 0; i < n; i++)
			sparse_write(o, o->fd, PG * rn(o->size / PG), rnd());
		return;
	}
	o->kind = K_MEMFD;
	o->size = chance(10) ? 0 : 1 + rn(SMALL_MAX);
	o->buf = calloc(1, SMALL_MAX);
	if (!o->buf)
		ksft_exit_fail_msg("out of memory\n");
	if (ftruncate(o->fd, o->size))
		ksft_exit_fail_msg("ftruncate: %s\n", strerror(errno));
	/* All holes, all data, or a run of data. */
	switch (rn(3)) {
	case 0:
		return;
	case 1:
		fill_random(o->buf, o->size, rnd());
		write_all(o->fd, o->buf, o->size, 0);
		return;
	default:
		i = rn(o->size + 1);
		n = rn(o->size - i + 1);
		fill_random(o->buf + i, n, rnd());
		write_all(o->fd, o->buf + i, n, i);
	}
}

/* Huge pages this worker's hugetlb memfds may still span (HUGE_CAP). */
static __u64 huge_room(void)
{
	__u64 used = 0;
	int i;

	/* Their sizes bound what they hold and what their mappings reserve. */
	for (i = 0; i < MAX_OBJ; i++)
		if (obj[i].used && obj[i].kind == K_HUGE)
			used += obj[i].size / HPS;
	return used < HUGE_CAP ? HUGE_CAP - used : 0;
}

/* What ftruncate(@size) of @o gets: the seals and preservation freeze it. */
static int resize_errno(const struct obj *o, __u64 size)
{
	if (size == o->size)
		return 0;
	if ((size < o->size && (o->seals & F_SEAL_SHRINK)) ||
	    (size > o->size && (o->seals & F_SEAL_GROW)) || o->sess >= 0)
		return -EPERM;
	return 0;
}

/* ftruncate(@size) of @o, which must get @want; true if it resized. */
static bool try_truncate(struct obj *o, __u64 size, int want)
{
	note("ftruncate %s %llu to %llu%s", kind_name(o),
	     (unsigned long long)o->size, (unsigned long long)size,
	     o->sess >= 0 ? " (preserved)" : "");
	expect(ftruncate(obj_fd(o), size) ? -errno : 0, want, NONE,
	       o->kind == K_HUGE ? "ftruncate of a hugetlb memfd" : "ftruncate");
	return !want;
}

/* Forget the pages written in [@from, @to). */
static void sparse_cut(struct obj *o, __u64 from, __u64 to)
{
	int i, n = 0;

	for (i = 0; i < o->npages; i++) {
		if (o->page_off[i] >= from && o->page_off[i] < to)
			continue;
		o->page_off[n] = o->page_off[i];
		o->page_seed[n++] = o->page_seed[i];
	}
	o->npages = n;
}

/*
 * Write 4 KiB of generated data at @off of a hugetlb memfd (it has no
 * write(2)) through a shared mapping of the whole file.  The mmap reserves
 * every huge page the file lacks, so that the fault cannot find the pool
 * empty (SIGBUS); a pool short for a moment, a page freed late, fails the
 * mmap with ENOMEM instead, and nothing is written.  Writing into a hole
 * allocates its huge page, preserved or not.
 */
static void huge_write(struct obj *o, int fd, __u64 off, __u64 s)
{
	unsigned char *map;
	int ret = 0;

	note("write hugetlb page at %llu of %llu%s", (unsigned long long)off,
	     (unsigned long long)o->size, o->sess >= 0 ? " (preserved)" : "");
	map = mmap(NULL, o->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		ret = -errno;
	expect(ret, 0, -ENOMEM, "mmap of a hugetlb memfd");
	if (ret) {
		st->huge_short++;
		return;
	}
	fill_random(map + off, PG, s);
	if (munmap(map, o->size))
		wfail("munmap: %s", strerror(errno));
	sparse_put(o, off, s);
	o->present |= 1U << (off / HPS);
}

/* A hugetlb memfd of up to HUGE_MAX_PAGES huge pages, within the cap. */
static void make_huge(struct obj *o)
{
	__u64 n = rn(HUGE_MAX_PAGES + 1), room = huge_room(), i, off;

	o->kind = K_HUGE;
	o->fd = memfd_create("fuzz-huge", MFD_CLOEXEC | MFD_ALLOW_SEALING |
			     MFD_HUGETLB | MFD_HUGE_2MB);
	if (o->fd < 0)
		wfail("memfd_create(MFD_HUGETLB): %s", strerror(errno));
	st->huge_new++;
	o->size = HPS * (n < room ? n : room);
	if (ftruncate(o->fd, o->size))
		wfail("ftruncate of a hugetlb memfd: %s", strerror(errno));
	/* Some huge pages written, the others holes. */
	n = o->size ? rn(3) : 0;
	for (i = 0; i < n; i++) {
		off = PG * rn(o->size / PG);
		huge_write(o, o->fd, off, rnd());
	}
}

/* ---- iommufds ---- */

/* What an iommufd may map: a shmem memfd of ours, open */
static bool own_shmem_open(const struct obj *o)
{
	return (o->kind == K_MEMFD || o->kind == K_SPARSE) && o->shared < 0 &&
	       obj_fd(o) >= 0;
}

static bool own_iommufd_open(const struct obj *o)
{
	return o->kind == K_IOMMUFD && obj_fd(o) >= 0;
}

/* Map a few pages of one of our memfds where iommufd @o maps none. */
static void ioas_map_memfd(struct obj *o)
{
	int m = pick_obj(own_shmem_open);

	if (m < 0)
		return;
	o->iova = FILE_IOVA + PG * rn(FILE_IOVAS);
	o->size = PG * (1 + rn(4));
	note("IOMMU_IOAS_MAP_FILE of object %d, %llu bytes at %#llx", m,
	     (unsigned long long)o->size, (unsigned long long)o->iova);
	expect(edu_map_file(obj_fd(o), o->ioas, obj_fd(&obj[m]), 0, o->size,
			    o->iova), 0, NONE, "IOMMU_IOAS_MAP_FILE");
	o->map = m;
	obj[m].mapped++;
}

static void ioas_map_user(struct obj *o)
{
	note("IOMMU_IOAS_MAP of user memory at %#llx", USER_IOVA);
	expect(edu_map_user(obj_fd(o), o->ioas, area, PG, USER_IOVA), 0, NONE,
	       "IOMMU_IOAS_MAP");
	o->user = true;
}

/*
 * An iommufd with one IOAS: up to two IOAS allocated before it and
 * destroyed, so that its ID is not always the first one.
 */
static void make_iommufd(struct obj *o)
{
	__u32 first[2];
	int i, n = rn(3);

	o->kind = K_IOMMUFD;
	o->fd = open(IOMMU_DEV, O_RDWR | O_CLOEXEC);
	if (o->fd < 0)
		wfail("open %s: %s", IOMMU_DEV, strerror(errno));
	st->iommufd_new++;
	for (i = 0; i < n; i++)
		expect(edu_ioas_alloc(o->fd, &first[i]), 0, NONE,
		       "IOMMU_IOAS_ALLOC");
	expect(edu_ioas_alloc(o->fd, &o->ioas), 0, NONE, "IOMMU_IOAS_ALLOC");
	for (i = 0; i < n; i++)
		expect(edu_destroy(o->fd, first[i]), 0, NONE, "IOMMU_DESTROY");
	if (chance(70))
		ioas_map_memfd(o);
	if (chance(10))
		ioas_map_user(o);
}

/* The memfd iommufd @o maps is no longer mapped by it. */
static void ioas_unmapped_memfd(struct obj *o)
{
	struct obj *m = &obj[o->map];

	o->map = -1;
	m->mapped--;
	obj_maybe_drop(m);
}

/*
 * IOAS commands on one of our iommufds.  Preserved, it is frozen: what
 * would change it fails with EBUSY, IOMMU_IOAS_IOVA_RANGES works.  Else
 * map a memfd or user memory where nothing is mapped (EEXIST where it
 * is), unmap exactly what is mapped (ENOENT where nothing is), or all.
 */
static void op_ioas(void)
{
	int i = pick_obj(own_iommufd_open), fd, ret;
	long long len, want;
	unsigned int cmd;
	struct obj *o;
	__u32 id;

	if (i < 0)
		return;
	o = &obj[i];
	fd = obj_fd(o);
	if (o->sess >= 0) {
		cmd = rn(6);
		note("IOAS command %u on a preserved iommufd", cmd);
		switch (cmd) {
		case 0:
			ret = edu_map_file(fd, o->ioas, probe_fd, 0, PG,
					   FREE_IOVA);
			break;
		case 1:
			ret = edu_map_user(fd, o->ioas, area, PG, FREE_IOVA);
			break;
		case 2:
			len = edu_unmap_len(fd, o->ioas, 0, UINT64_MAX);
			ret = len < 0 ? len : 0;
			break;
		case 3:
			ret = edu_ioas_alloc(fd, &id);
			break;
		case 4:
			ret = edu_destroy(fd, o->ioas);
			break;
		default:
			ret = edu_iova_ranges(fd, o->ioas);
			expect(ret < 0 ? ret : 0, 0, NONE,
			       "IOMMU_IOAS_IOVA_RANGES of a preserved iommufd");
			if (!ret)
				wfail("IOMMU_IOAS_IOVA_RANGES: no IOVA range");
			return;
		}
		expect(ret, -EBUSY, NONE, "IOAS command on a preserved iommufd");
		return;
	}
	switch (rn(4)) {
	case 0:
		if (o->map < 0)
			return ioas_map_memfd(o);
		note("IOMMU_IOAS_MAP_FILE over the mapping at %#llx",
		     (unsigned long long)o->iova);
		expect(edu_map_file(fd, o->ioas, probe_fd, 0, PG, o->iova),
		       -EEXIST, NONE, "IOMMU_IOAS_MAP_FILE over a mapping");
		return;
	case 1:
		if (!o->user)
			return ioas_map_user(o);
		note("IOMMU_IOAS_UNMAP of the user memory");
		len = edu_unmap_len(fd, o->ioas, USER_IOVA, PG);
		want = PG;
		o->user = false;
		break;
	case 2:
		if (o->map < 0) {
			note("IOMMU_IOAS_UNMAP where nothing is mapped");
			len = edu_unmap_len(fd, o->ioas, FREE_IOVA, PG);
			expect(len < 0 ? len : 0, -ENOENT, NONE,
			       "IOMMU_IOAS_UNMAP where nothing is mapped");
			return;
		}
		note("IOMMU_IOAS_UNMAP of the mapping at %#llx",
		     (unsigned long long)o->iova);
		len = edu_unmap_len(fd, o->ioas, o->iova, o->size);
		want = o->size;
		ioas_unmapped_memfd(o);
		break;
	default:
		note("IOMMU_IOAS_UNMAP of everything");
		len = edu_unmap_len(fd, o->ioas, 0, UINT64_MAX);
		want = (o->map >= 0 ? o->size : 0) + (o->user ? PG : 0);
		o->user = false;
		if (o->map >= 0)
			ioas_unmapped_memfd(o);
		break;
	}
	expect(len < 0 ? len : 0, 0, NONE, "IOMMU_IOAS_UNMAP");
	if (len != want)
		wfail("IOMMU_IOAS_UNMAP: %lld bytes, want %lld", len, want);
}

/*
 * Without changing it, what iommufd @o's IOAS maps: IOMMU_IOAS_MAP_FILE of
 * a page at an IOVA mapped fails with EEXIST (EBUSY while preserved); of an
 * IOAS that maps nothing, IOMMU_IOAS_UNMAP of everything unmaps 0 bytes.
 */
static void verify_iommufd(const struct obj *o, const char *when)
{
	int fd = obj_fd(o), ranges = edu_iova_ranges(fd, o->ioas);
	long long len;

	if (ranges <= 0)
		wfail("%s: IOMMU_IOAS_IOVA_RANGES of IOAS %u: %d", when, o->ioas,
		      ranges);
	if (o->map >= 0 || o->user) {
		expect(edu_map_file(fd, o->ioas, probe_fd, 0, PG,
				    o->map >= 0 ? o->iova : USER_IOVA),
		       o->sess >= 0 ? -EBUSY : -EEXIST, NONE,
		       "IOMMU_IOAS_MAP_FILE over a mapping");
		return;
	}
	len = edu_unmap_len(fd, o->ioas, 0, UINT64_MAX);
	expect(len < 0 ? len : 0, o->sess >= 0 ? -EBUSY : 0, NONE,
	       "IOMMU_IOAS_UNMAP of an IOAS that maps nothing");
	if (len > 0)
		wfail("%s: IOMMU_IOAS_UNMAP of IOAS %u: %lld bytes", when,
		      o->ioas, len);
}

static void op_new_obj(void)
{
	struct obj *o = obj_new();
	unsigned int r = rn(100);

	if (!o)
		return;
	/* One in 8 new objects, where there are hugetlb pages. */
	if (have_huge && !rn(8)) {
		make_huge(o);
	} else if (have_iommu && !rn(6)) {
		make_iommufd(o);
	} else if (have_test && r < 35) {
		o->kind = K_TEST;
		o->value = rnd();
		o->fd = luo_test_new(o->value);
		if (o->fd < 0)
			wfail("new test object: %s", strerror(-o->fd));
	} else {
		make_memfd(o, r >= 80);
	}
	note("new %s fd %d size %llu", kind_name(o), o->fd,
	     (unsigned long long)o->size);
}

static bool own_memfd_open(const struct obj *o)
{
	return o->kind != K_TEST && o->kind != K_IOMMUFD && o->shared < 0 &&
	       obj_fd(o) >= 0;
}

static bool own_test_open(const struct obj *o)
{
	return o->kind == K_TEST && o->shared < 0 && obj_fd(o) >= 0;
}

static bool is_open(const struct obj *o)
{
	return obj_fd(o) >= 0;
}

/* Writes within the size always work; past it only when not frozen. */
static void op_write(void)
{
	int i = pick_obj(own_memfd_open), fd, want;
	unsigned char data[2 * PG];
	struct obj *o;
	__u64 off, len, s;
	ssize_t got;

	if (i < 0)
		return;
	o = &obj[i];
	fd = obj_fd(o);
	s = rnd();
	if (o->kind == K_HUGE) {
		if (!o->size)
			return;
		off = o->npages && chance(50) ? o->page_off[rn(o->npages)] :
			PG * rn(o->size / PG);
		/* No room for another page: overwrite one. */
		if (o->npages == SPARSE_PAGES)
			off = o->page_off[rn(o->npages)];
		huge_write(o, fd, off, s);
		return;
	}
	if (o->kind == K_SPARSE) {
		/* Truncated below a page: nothing to write within the size. */
		if (o->size < PG)
			return;
		off = o->npages && chance(50) ? o->page_off[rn(o->npages)] :
			PG * rn(o->size / PG);
		/* No room for another page: overwrite one. */
		if (o->npages == SPARSE_PAGES)
			off = o->page_off[rn(o->npages)];
		note("write sparse page at %llu", (unsigned long long)off);
		sparse_write(o, fd, off, s);
		return;
	}
	len = 1 + rn(sizeof(data));
	if (o->size && chance(80)) {
		off = rn(o->size);
		if (off + len > o->size)
			len = o->size - off;
	} else {
		off = o->size + rn(PG);
		if (off + len > SMALL_MAX)
			return;
	}
	want = 0;
	if (off + len > o->size && (o->sess >= 0 || (o->seals & F_SEAL_GROW)))
		want = -EPERM;
	fill_random(data, len, s);
	note("write %llu bytes at %llu of %llu%s", (unsigned long long)len,
	     (unsigned long long)off, (unsigned long long)o->size,
	     o->sess >= 0 ? " (preserved)" : "");
	got = pwrite(fd, data, len, off);
	expect(got < 0 ? -errno : 0, want, NONE, "pwrite");
	if (got < 0)
		return;
	if ((__u64)got != len)
		wfail("pwrite: %zd of %llu bytes", got, (unsigned long long)len);
	memcpy(o->buf + off, data, len);
	if (off + len > o->size)
		o->size = off + len;
}

/*
 * A hugetlb memfd's size is whole huge pages (EINVAL otherwise, checked
 * first), grown within the worker's cap; a preserved one keeps its size
 * (EPERM).
 */
static void huge_truncate(struct obj *o)
{
	__u64 n = o->size / HPS, to = rn(HUGE_MAX_PAGES + 1), size;
	int want;

	if (to > n + huge_room())
		to = n + huge_room();
	size = HPS * to;
	if (chance(10))
		size = o->size;
	else if (chance(15))
		size += PG * (1 + rn(HPS / PG - 1));
	want = size % HPS ? -EINVAL : resize_errno(o, size);
	if (!try_truncate(o, size, want))
		return;
	/* Shrinking frees the huge pages past the end. */
	sparse_cut(o, size, ~0ULL);
	o->present &= (1U << (size / HPS)) - 1;
	o->size = size;
}

/*
 * Allocate or punch one whole huge page within the size: EPERM while
 * preserved, whatever the mode.  Allocating a hole may find the pool short
 * for a moment (ENOSPC), as an mmap may.
 */
static void huge_fallocate(struct obj *o)
{
	bool punch = chance(50);
	int mode = punch ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE :
		   chance(50) ? FALLOC_FL_KEEP_SIZE : 0;
	int want = 0, alt = NONE, ret;
	__u64 idx;

	if (!o->size)
		return;
	idx = rn(o->size / HPS);
	if (o->sess >= 0)
		want = -EPERM;
	else if (!punch && !(o->present & (1U << idx)))
		alt = -ENOSPC;
	note("fallocate mode 0x%x huge page %llu of %llu%s", mode,
	     (unsigned long long)idx, (unsigned long long)o->size,
	     o->sess >= 0 ? " (preserved)" : "");
	ret = fallocate(obj_fd(o), mode, idx * HPS, HPS) ? -errno : 0;
	expect(ret, want, alt, "fallocate of a hugetlb memfd");
	if (ret == -ENOSPC)
		st->huge_short++;
	if (ret)
		return;
	if (punch) {
		sparse_cut(o, idx * HPS, (idx + 1) * HPS);
		o->present &= ~(1U << idx);
	} else {
		o->present |= 1U << idx;
	}
}

static void op_truncate(void)
{
	int i = pick_obj(own_memfd_open), j;
	struct obj *o;
	__u64 size;

	if (i < 0)
		return;
	o = &obj[i];
	if (o->kind == K_HUGE) {
		if (chance(30))
			huge_fallocate(o);
		else
			huge_truncate(o);
		return;
	}
	if (o->kind == K_SPARSE)
		size = PG * rn(2 * o->size / PG + 1);
	else
		size = rn(SMALL_MAX + 1);
	if (chance(10))
		size = o->size;
	if (!try_truncate(o, size, resize_errno(o, size)))
		return;
	if (o->kind == K_SPARSE) {
		for (j = 0; j < o->npages && o->page_off[j] < size; j++)
			;
		o->npages = j;
	} else if (size < o->size) {
		memset(o->buf + size, 0, o->size - size);
	}
	o->size = size;
}

static void op_seal(void)
{
	int i = pick_obj(own_memfd_open);
	unsigned int seal = chance(50) ? F_SEAL_SHRINK : F_SEAL_GROW;

	if (i < 0 || obj[i].sess >= 0)
		return;
	note("seal 0x%x", seal);
	expect(fcntl(obj_fd(&obj[i]), F_ADD_SEALS, seal) ? -errno : 0, 0,
	       NONE, "F_ADD_SEALS");
	obj[i].seals |= seal;
}

static void op_close_fd(void)
{
	int i = pick_obj(is_open);
	struct obj *o;

	if (i < 0)
		return;
	o = &obj[i];
	note("close fd of object %d", i);
	if (o->dup >= 0 && (o->fd < 0 || chance(50))) {
		close(o->dup);
		o->dup = -1;
	} else {
		close(o->fd);
		o->fd = -1;
	}
	obj_maybe_drop(o);
}

static void op_dup_fd(void)
{
	int i = pick_obj(is_open);
	struct obj *o;

	if (i < 0)
		return;
	o = &obj[i];
	note("dup fd of object %d", i);
	if (o->fd < 0) {
		o->fd = o->dup;
		o->dup = -1;
	}
	if (o->dup >= 0)
		close(o->dup);
	o->dup = fcntl(o->fd, F_DUPFD_CLOEXEC, 0);
	if (o->dup < 0)
		wfail("dup: %s", strerror(errno));
}

/* Errnos for failure injection; not EBADMSG or EOPNOTSUPP (BROKEN). */
static int random_errno(void)
{
	static const int errs[] = { EIO, ENOSPC, EAGAIN, ENODEV, ENOMEM };

	return errs[rn(ARRAY_SIZE(errs))];
}

static void op_test_cmd(void)
{
	int i = pick_obj(own_test_open), fd, err = random_errno(), ret;
	struct obj *o;

	if (i < 0)
		return;
	o = &obj[i];
	fd = obj_fd(o);
	switch (rn(6)) {
	case 0:
	case 1:
		o->value = rnd();
		note("test value=%llu", (unsigned long long)o->value);
		ret = luo_test_cmd(fd, "value=%llu",
				   (unsigned long long)o->value);
		expect(ret, 0, NONE, "test value=");
		break;
	case 2:
		note("test fail=preserve,%d,1", err);
		expect(luo_test_set_fail(fd, "preserve", err, 1), 0, NONE,
		       "test fail=preserve");
		o->fail_preserve = err;
		break;
	case 3:
		note("test fail=retrieve,%d,1", err);
		expect(luo_test_set_fail(fd, "retrieve", err, 1), 0, NONE,
		       "test fail=retrieve");
		o->fail_retrieve = err;
		break;
	case 4:
		note("test fail=can_finish,%d,1", err);
		expect(luo_test_set_fail(fd, "can_finish", err, 1), 0, NONE,
		       "test fail=can_finish");
		o->fail_finish = err;
		break;
	default:
		if (chance(50)) {
			note("test fail=none");
			expect(luo_test_cmd(fd, "fail=none"), 0, NONE,
			       "test fail=none");
			o->fail_preserve = 0;
			o->fail_retrieve = 0;
			o->fail_finish = 0;
		} else {
			note("test bogus command");
			expect(luo_test_cmd(fd, "bogus=%u", rn(10)), -EINVAL,
			       NONE, "test bogus command");
		}
		break;
	}
}

/*
 * Why @fd is not a hugetlb memfd of 2 MiB pages with the huge pages of
 * bitmap @present allocated (st_blocks counts them), or NULL.
 */
static const char *huge_mismatch(int fd, unsigned int present)
{
	__u64 blocks = __builtin_popcount(present) * (HPS / 512);
	static char why[128];
	struct statfs sf = { 0 };
	struct stat sb = { 0 };

	if (fstatfs(fd, &sf) || (__u32)sf.f_type != HUGETLBFS_MAGIC ||
	    (__u64)sf.f_bsize != HPS) {
		snprintf(why, sizeof(why),
			 "file system %#lx, block size %ld; want %#x, %llu",
			 (unsigned long)sf.f_type, (long)sf.f_bsize,
			 HUGETLBFS_MAGIC, HPS);
		return why;
	}
	if (fstat(fd, &sb) || (__u64)sb.st_blocks != blocks) {
		snprintf(why, sizeof(why),
			 "%lld blocks; want %llu (huge pages 0x%x)",
			 (long long)sb.st_blocks, (unsigned long long)blocks,
			 present);
		return why;
	}
	return NULL;
}

/* What an open object holds is what the model says. */
static void verify_obj(const struct obj *o, const char *when)
{
	unsigned long long value;
	const char *why;
	struct stat sb;
	int fd = obj_fd(o), seals;
	__u64 h;

	if (o->kind == K_TEST) {
		if (luo_test_value(fd, &value) || value != o->value)
			wfail("%s: test object holds %llu, want %llu", when,
			      value, (unsigned long long)o->value);
		return;
	}
	if (o->kind == K_IOMMUFD)
		return verify_iommufd(o, when);
	if (fstat(fd, &sb) || (__u64)sb.st_size != o->size)
		wfail("%s: memfd of %lld bytes, want %llu", when,
		      (long long)sb.st_size, (unsigned long long)o->size);
	if (o->kind == K_HUGE) {
		why = huge_mismatch(fd, o->present);
		if (why)
			wfail("%s: hugetlb memfd: %s", when, why);
		h = hash_huge_fd(fd, o->size);
	} else {
		h = hash_fd(fd, o->size);
	}
	if (h != obj_hash(o))
		wfail("%s: memfd contents differ from the model", when);
	seals = fcntl(fd, F_GET_SEALS);
	if (seals != (int)o->seals)
		wfail("%s: seals 0x%x, want 0x%x", when, seals, o->seals);
}

static void op_verify(void)
{
	int i = pick_obj(is_open);

	if (i < 0)
		return;
	note("verify object %d", i);
	verify_obj(&obj[i], "verify");
	st->calls++;
}

/* ---- the worker ---- */

static enum op pick_op(void)
{
	unsigned int total = 0, r, i;

	for (i = 0; i < NR_OPS; i++)
		total += op_weight[i];
	op_state += NR_SEED_MIX;
	r = mix64(op_state) % total;
	for (i = 0; op_weight[i] <= r; i++)
		r -= op_weight[i];
	return i;
}

static void run_op(enum op op)
{
	int si, fd;

	switch (op) {
	case OP_CREATE:
		return op_create(chance(3) ? other_fd() : dev);
	case OP_CLOSE_SESS:
		return op_close_sess();
	case OP_DUP_SESS:
		return op_dup_sess();
	case OP_NEW_OBJ:
		return op_new_obj();
	case OP_LIST:
		return op_list(chance(5) ? other_fd() : dev);
	case OP_RETRIEVE_SESS:
		return op_retrieve_sess(chance(5) ? other_fd() : dev);
	case OP_RANDOM_CMD:
		return op_random_cmd();
	case OP_WRITE:
		return op_write();
	case OP_TRUNCATE:
		return op_truncate();
	case OP_SEAL:
		return op_seal();
	case OP_CLOSE_FD:
		return op_close_fd();
	case OP_DUP_FD:
		return op_dup_fd();
	case OP_TEST_CMD:
		return op_test_cmd();
	case OP_VERIFY:
		return op_verify();
	case OP_IOAS:
		return op_ioas();
	default:
		break;
	}
	si = target_sess(&fd);
	switch (op) {
	case OP_PRESERVE:
		return op_preserve(si, fd);
	case OP_UNPRESERVE:
		return op_unpreserve(si, fd);
	case OP_QUERY:
		return op_query(si, fd);
	case OP_GET_NAME:
		return op_get_name(si, fd);
	case OP_RETRIEVE_FD:
		return op_retrieve_fd(si, fd);
	case OP_FINISH:
		return op_finish(si, fd);
	default:
		break;
	}
}

static __printf(1, 2) void mprintf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(st->manifest + st->mlen, MANIFEST_MAX - st->mlen, fmt,
		      ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= MANIFEST_MAX - st->mlen)
		wfail("manifest full");
	st->mlen += n;
}

/*
 * The manifest: "S name" per session, then its files in preservation
 * order, "M token size hash seals shared" for a memfd, "H token size hash
 * seals shared present" for a hugetlb memfd (@present: its allocated huge
 * pages), "T token value fail_retrieve fail_finish shared" for a test
 * object and "I token ioas memfd_token iova length" for an iommufd (length
 * 0 if its IOAS maps nothing).
 */
static void write_manifest(void)
{
	int si, i;

	for (si = 0; si < MAX_SESS; si++) {
		struct sess *s = &sess[si];

		if (!s->used)
			continue;
		mprintf("S %s\n", s->name);
		for (i = 0; i < s->nfiles; i++) {
			struct obj *o = &obj[s->files[i]];

			if (o->kind == K_TEST)
				mprintf("T %llu %llu %d %d %d\n",
					(unsigned long long)o->token,
					(unsigned long long)o->value,
					o->fail_retrieve, o->fail_finish,
					o->shared);
			else if (o->kind == K_IOMMUFD && o->map >= 0)
				mprintf("I %llu %u %llu %llu %llu\n",
					(unsigned long long)o->token, o->ioas,
					(unsigned long long)obj[o->map].token,
					(unsigned long long)o->iova,
					(unsigned long long)o->size);
			else if (o->kind == K_IOMMUFD)
				mprintf("I %llu %u 0 0 0\n",
					(unsigned long long)o->token, o->ioas);
			else if (o->kind == K_HUGE)
				mprintf("H %llu %llu %llu %u %d %u\n",
					(unsigned long long)o->token,
					(unsigned long long)o->size,
					(unsigned long long)obj_hash(o),
					o->seals, o->shared, o->present);
			else
				mprintf("M %llu %llu %llu %u %d\n",
					(unsigned long long)o->token,
					(unsigned long long)o->size,
					(unsigned long long)obj_hash(o),
					o->seals, o->shared);
		}
		st->nsess++;
	}
}

static int send_fd(int sock, int fd, const char *name)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { (void *)name, strlen(name) + 1 };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf,
		.msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0) < 0 ? -errno : 0;
}

/* One session fd and its name: 1, 0 at the end, or -errno. */
static int recv_fd(int sock, char *name, int *fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { name, LUO_NAME_LEN };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf,
		.msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *c;
	ssize_t n;

	n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	if (n <= 0)
		return n ? -errno : 0;
	c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS || n > LUO_NAME_LEN ||
	    name[n - 1])
		return -EPROTO;
	memcpy(fd, CMSG_DATA(c), sizeof(int));
	return 1;
}

/*
 * A hugetlb mapping reserved its pages, so a fault that raises SIGBUS was
 * refused a page by the handler (or the pool accounting is off).
 */
static void on_sigbus(int sig)
{
	wfail("signal %d: a hugetlb fault found no page", sig);
}

static void __noreturn worker(int id, int sock)
{
	long long start = now_ms(), deadline = start + max_secs * 1000;
	struct sigaction sa = { .sa_handler = on_sigbus };
	struct liveupdate_session_query q;
	int i, pre, ret;

	wid = id;
	if (sigaction(SIGBUS, &sa, NULL))
		wfail("sigaction: %s", strerror(errno));
	rnd_state = mix64(seed + (id + 1) * NR_SEED_MIX);
	op_state = mix64(~seed + (id + 1) * NR_SEED_MIX);
	area = mmap(NULL, 5 * PG, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		wfail("mmap: %s", strerror(errno));
	/* Page 3 faults; page 4 is read-only. */
	ro = area + 4 * PG;
	if (mprotect(area + 3 * PG, PG, PROT_NONE) ||
	    mprotect(ro, PG, PROT_READ))
		wfail("mprotect: %s", strerror(errno));
	for (i = 0; i < NR_SHARED; i++)
		if (shared_obj[i].used)
			obj[i] = shared_obj[i];

	for (iter = 0; iter < max_iters && now_ms() < deadline; iter++) {
		enum op op = pick_op();

		st->ops[op]++;
		run_op(op);
	}
	st->iters = iter;

	/* What the kernel holds is what the model says. */
	for (i = 0; i < MAX_SESS; i++) {
		if (!sess[i].used)
			continue;
		memset(info, 0xaa, sizeof(info));
		q = (struct liveupdate_session_query){
			.count = MAX_OBJ + 4,
			.files = (uintptr_t)info,
		};
		ret = xioctl(sess[i].fd, LIVEUPDATE_CMD_SESSION_QUERY, &q,
			     sizeof(q), E_PLAIN, &pre);
		expect(ret, 0, NONE, "final QUERY");
		check_query(&sess[i], q.kind, q.count, MAX_OBJ + 4,
			    "final QUERY");
	}
	for (i = 0; i < MAX_OBJ; i++)
		if (obj[i].used && obj_fd(&obj[i]) >= 0)
			verify_obj(&obj[i], "final check");

	write_manifest();
	for (i = 0; i < MAX_SESS; i++) {
		if (!sess[i].used)
			continue;
		ret = send_fd(sock, sess[i].fd, sess[i].name);
		if (ret)
			wfail("sending session %s: %s", sess[i].name,
			      strerror(-ret));
	}
	st->msecs = now_ms() - start;
	fflush(stdout);
	_exit(0);
}

/* ---- stage 0: the parent ---- */

static void make_shared(void)
{
	int i;

	rnd_state = mix64(seed);
	for (i = 0; i < NR_SHARED; i++) {
		struct obj *o = &shared_obj[i];

		memset(o, 0, sizeof(*o));
		o->used = true;
		o->shared = i;
		o->sess = -1;
		o->dup = -1;
		o->map = -1;
		if (i < NR_SHARED_MEMFD) {
			make_memfd(o, i == NR_SHARED_MEMFD - 1);
			continue;
		}
		if (!have_test) {
			o->used = false;
			continue;
		}
		o->kind = K_TEST;
		o->value = rnd();
		o->fd = luo_test_new(o->value);
		if (o->fd < 0)
			ksft_exit_fail_msg("new test object: %s\n",
					   strerror(-o->fd));
	}
}

/* Number of lines in @m starting with @c. */
static int count_lines(const char *m, char c)
{
	int n = 0;

	for (; m && *m; m = strchr(m, '\n'), m = m ? m + 1 : NULL)
		if (*m == c)
			n++;
	return n;
}

static bool check_unique(const char *all)
{
	bool seen_shared[NR_SHARED] = { false };
	char names[NR_WORKERS * MAX_SESS][LUO_NAME_LEN];
	const char *m;
	int n = 0, i, sh;

	for (m = all; m && *m; m = strchr(m, '\n'), m = m ? m + 1 : NULL) {
		if (*m == 'S') {
			if (sscanf(m, "S %63s", names[n]) != 1)
				return false;
			for (i = 0; i < n; i++)
				if (!strcmp(names[i], names[n])) {
					ksft_print_msg("session %s held twice\n",
						       names[n]);
					return false;
				}
			n++;
			continue;
		}
		if (*m != 'M' && *m != 'H' && *m != 'T')
			continue;
		if (sscanf(m, "%*c %*s %*s %*s %*s %d", &sh) != 1)
			return false;
		if (sh < 0)
			continue;
		if (sh >= NR_SHARED || seen_shared[sh]) {
			ksft_print_msg("shared object %d preserved twice\n",
				       sh);
			return false;
		}
		seen_shared[sh] = true;
	}
	return true;
}

/*
 * A 2 MiB pool with HUGE_POOL pages free and unreserved: the workers, each
 * within HUGE_CAP, never find it empty.  Without it, no hugetlb memfds.
 */
static bool huge_setup(void)
{
	long nr = luo_huge_val(2048, "nr_hugepages"), avail;
	char str[24];
	int fd, ret = 0;

	if (nr < 0) {
		ksft_print_msg("%s missing: no hugetlb memfds\n",
			       HUGE_SYSFS "nr_hugepages");
		return false;
	}
	avail = luo_huge_val(2048, "free_hugepages") - luo_huge_val(2048, "resv_hugepages");
	if (avail < HUGE_POOL) {
		snprintf(str, sizeof(str), "%ld", nr + HUGE_POOL - avail);
		ret = luo_write_file(HUGE_SYSFS "nr_hugepages", str);
		avail = luo_huge_val(2048, "free_hugepages") -
			luo_huge_val(2048, "resv_hugepages");
	}
	if (avail < HUGE_POOL) {
		ksft_print_msg("hugetlb pool: %ld free of %ld (%s), want %d: no hugetlb memfds\n",
			       avail, luo_huge_val(2048, "nr_hugepages"), ename(ret),
			       HUGE_POOL);
		return false;
	}
	fd = memfd_create("fuzz-probe", MFD_CLOEXEC | MFD_HUGETLB |
			  MFD_HUGE_2MB);
	if (fd < 0) {
		ksft_print_msg("memfd_create(MFD_HUGETLB): %s: no hugetlb memfds\n",
			       strerror(errno));
		return false;
	}
	close(fd);
	ksft_print_msg("hugetlb pool: %ld pages of 2 MiB free, %d per worker\n",
		       avail, HUGE_CAP);
	return true;
}

static void stage0(void)
{
	int sock[NR_WORKERS], sv[2], fds[NR_WORKERS * MAX_SESS];
	__u64 iters = 0, calls = 0, errors = 0, ops[NR_OPS] = { 0 };
	__u64 created = 0, preserved = 0, unpreserved = 0;
	__u64 huge_new = 0, huge_short = 0, iommufd_new = 0, iommufd_kept = 0;
	int nfds = 0, i, j, ret, status, mfd, msfd = -1, live;
	pid_t pid[NR_WORKERS];
	struct wstat *ws;
	bool names_ok = true;
	char name[LUO_NAME_LEN], got[LUO_NAME_LEN];
	size_t len;
	char *all;

	ksft_print_msg("seed %llu, %d workers, at most %llu iterations and %llu s each\n",
		       (unsigned long long)seed, NR_WORKERS,
		       (unsigned long long)max_iters,
		       (unsigned long long)max_secs);
	print_rerun();
	have_test = luo_test_available();
	if (!have_test)
		ksft_print_msg("%s missing: memfds only\n", LUO_TEST_DEVICE);
	have_huge = huge_setup();
	ret = open(IOMMU_DEV, O_RDWR | O_CLOEXEC);
	have_iommu = ret >= 0;
	if (have_iommu)
		close(ret);
	else
		ksft_print_msg("open %s: %s: no iommufds\n", IOMMU_DEV,
			       strerror(errno));
	pipe_fd = -1;
	make_shared();
	ws = mmap(NULL, NR_WORKERS * sizeof(*ws), PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ws == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));

	for (i = 0; i < NR_WORKERS; i++) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
			ksft_exit_fail_msg("socketpair: %s\n", strerror(errno));
		fflush(stdout);
		pid[i] = fork();
		if (pid[i] < 0)
			ksft_exit_fail_msg("fork: %s\n", strerror(errno));
		if (!pid[i]) {
			int p[2];

			close(sv[0]);
			for (j = 0; j < i; j++)
				close(sock[j]);
			st = &ws[i];
			if (pipe2(p, O_CLOEXEC))
				_exit(1);
			pipe_fd = p[0];
			path_fd = open("/", O_PATH | O_CLOEXEC);
			probe_fd = new_memfd("fuzz-probe");
			worker(i, sv[1]);
		}
		close(sv[1]);
		sock[i] = sv[0];
	}

	/* The sessions of each worker, until it exits. */
	for (i = 0; i < NR_WORKERS; i++) {
		int n = 0;

		while ((ret = recv_fd(sock[i], name, &fds[nfds])) > 0) {
			if (luo_get_name(fds[nfds], got) ||
			    strcmp(got, name)) {
				ksft_print_msg("worker %d sent session '%s' as '%s'\n",
					       i, got, name);
				names_ok = false;
			}
			nfds++;
			n++;
		}
		if (ret < 0)
			ksft_print_msg("receiving from worker %d: %s\n", i,
				       strerror(-ret));
		close(sock[i]);
		if (waitpid(pid[i], &status, 0) != pid[i])
			ksft_exit_fail_msg("waitpid: %s\n", strerror(errno));
		ret = WIFEXITED(status) && !WEXITSTATUS(status) &&
		      !ws[i].failed && !ret && n == ws[i].nsess;
		ksft_test_result(ret,
				 "worker %d: %llu iterations, %llu ms, %llu checks, %d sessions\n",
				 i, (unsigned long long)ws[i].iters,
				 (unsigned long long)ws[i].msecs,
				 (unsigned long long)ws[i].calls, n);
		iters += ws[i].iters;
		calls += ws[i].calls;
		errors += ws[i].errors;
		created += ws[i].created;
		preserved += ws[i].preserved;
		unpreserved += ws[i].unpreserved;
		huge_new += ws[i].huge_new;
		huge_short += ws[i].huge_short;
		iommufd_new += ws[i].iommufd_new;
		iommufd_kept += ws[i].iommufd_kept;
		for (j = 0; j < NR_OPS; j++)
			ops[j] += ws[i].ops[j];
	}
	ksft_print_msg("fuzz: %llu iterations, %llu checked results (%llu expected errors)\n",
		       (unsigned long long)iters, (unsigned long long)calls,
		       (unsigned long long)errors);
	ksft_print_msg("fuzz: %llu sessions created, %llu files preserved, %llu unpreserved\n",
		       (unsigned long long)created,
		       (unsigned long long)preserved,
		       (unsigned long long)unpreserved);
	if (have_huge)
		ksft_print_msg("fuzz: %llu hugetlb memfds, %llu mmaps or fallocates refused\n",
			       (unsigned long long)huge_new,
			       (unsigned long long)huge_short);
	for (j = 0; j < NR_OPS; j++)
		ksft_print_msg("fuzz: %-16s %llu\n", op_names[j],
			       (unsigned long long)ops[j]);
	if (have_iommu)
		result(iommufd_new > 0,
		       "iommufds: %llu created, %llu preserved with the memfd they map",
		       (unsigned long long)iommufd_new,
		       (unsigned long long)iommufd_kept);
	else
		ksft_test_result_skip("iommufds: %s missing\n", IOMMU_DEV);
	if (ksft_get_fail_cnt()) {
		print_rerun();
		ksft_exit_fail_msg("a worker failed: no kexec\n");
	}

	len = 64;
	for (i = 0; i < NR_WORKERS; i++)
		len += ws[i].mlen;
	all = malloc(len + 1);
	if (!all)
		ksft_exit_fail_msg("out of memory\n");
	len = snprintf(all, 64, "seed %llu\n", (unsigned long long)seed);
	for (i = 0; i < NR_WORKERS; i++) {
		memcpy(all + len, ws[i].manifest, ws[i].mlen);
		len += ws[i].mlen;
	}
	all[len] = '\0';
	ksft_test_result(names_ok, "%d session fds received, names match\n",
			 nfds);
	ksft_test_result(check_unique(all),
			 "each shared name and object held by at most one worker\n");
	live = have_test ? luo_test_live() : 0;
	ksft_test_result(live == count_lines(all, 'T'),
			 "%d test objects preserved, as in the models\n", live);
	ksft_print_msg("manifest: %d sessions, %d memfds (%d hugetlb), %d test objects, %d iommufds, %zu B\n",
		       count_lines(all, 'S'),
		       count_lines(all, 'M') + count_lines(all, 'H'),
		       count_lines(all, 'H'), count_lines(all, 'T'),
		       count_lines(all, 'I'), len);

	ret = luo_create_session(dev, MANIFEST_NAME, &msfd);
	mfd = new_memfd("fuzz-manifest");
	if (!ret) {
		write_all(mfd, all, len, 0);
		ret = luo_preserve_fd(msfd, mfd, 1);
	}
	ksft_test_result(!ret, "manifest preserved: %s\n", ename(ret));
	if (ksft_get_fail_cnt()) {
		print_rerun();
		ksft_exit_fail_msg("failures: no kexec\n");
	}
	ret = next_stage();
	ksft_exit_fail_msg("%s returned %d\n", LUO_NEXT_STAGE, ret);
}

/* ---- stage 1 ---- */

/* Check one file of a retrieved session against its manifest line. */
static int injected;	/* injected retrieve failures seen */

static bool check_file(int sfd, const char *sname, const char *line,
		       int *busy)
{
	unsigned long long token, size, hash, value;
	unsigned int seals, present = 0;
	int fr, ff, sh, fd = -1, ret, got_seals;
	bool huge = line[0] == 'H';
	const char *why;
	struct stat sb;
	bool ok = false;

	if (line[0] == 'T') {
		if (sscanf(line, "T %llu %llu %d %d %d", &token, &value, &fr,
			   &ff, &sh) != 5)
			return false;
		ret = luo_retrieve_fd(sfd, token, &fd);
		if (fr) {
			/* The injected failure first, then the retry works. */
			if (ret != -fr) {
				ksft_print_msg("%s: token %llu: retrieve %s, want injected %s\n",
					       sname, token, ename(ret),
					       ename(-fr));
				if (!ret)
					close(fd);
				return false;
			}
			injected++;
			ret = luo_retrieve_fd(sfd, token, &fd);
		}
		if (ret) {
			ksft_print_msg("%s: token %llu: retrieve: %s\n", sname,
				       token, ename(ret));
			return false;
		}
		ok = luo_test_has_value(fd, value);
		if (!ok)
			ksft_print_msg("%s: token %llu: value differs\n",
				       sname, token);
		*busy += ff != 0;
		close(fd);
		return ok;
	}
	if (huge) {
		if (sscanf(line, "H %llu %llu %llu %u %d %u", &token, &size,
			   &hash, &seals, &sh, &present) != 6)
			return false;
	} else if (sscanf(line, "M %llu %llu %llu %u %d", &token, &size,
			  &hash, &seals, &sh) != 5) {
		return false;
	}
	ret = luo_retrieve_fd(sfd, token, &fd);
	if (ret) {
		ksft_print_msg("%s: token %llu: retrieve: %s\n", sname, token,
			       ename(ret));
		return false;
	}
	/* Still a hugetlb memfd of 2 MiB pages, with the same pages. */
	why = huge ? huge_mismatch(fd, present) : NULL;
	if (why) {
		ksft_print_msg("%s: token %llu: %s\n", sname, token, why);
		close(fd);
		return false;
	}
	got_seals = fcntl(fd, F_GET_SEALS);
	ok = !fstat(fd, &sb) && (__u64)sb.st_size == size &&
	     (huge ? hash_huge_fd(fd, size) : hash_fd(fd, size)) == hash &&
	     got_seals == (int)seals;
	if (!ok)
		ksft_print_msg("%s: token %llu: size %lld seals 0x%x, want %llu 0x%x, or data\n",
			       sname, token, (long long)sb.st_size, got_seals,
			       size, seals);
	close(fd);
	return ok;
}

/*
 * Retrieve the iommufd of manifest line @line: its IOAS has its ID still,
 * and maps the same range of the memfd it names, which is retrieved with it
 * if it was not already.  IOMMU_IOAS_UNMAP of exactly that range unmaps
 * it, and then nothing is left.
 */
static bool check_iommufd(int sfd, const char *sname, const char *line)
{
	unsigned long long token, mtoken, iova, len;
	__u32 state = LIVEUPDATE_FILE_RETRIEVED;
	long long unmapped = 0, left;
	int fd = -1, ret, ranges;
	unsigned int ioas;
	bool ok;

	if (sscanf(line, "I %llu %u %llu %llu %llu", &token, &ioas, &mtoken,
		   &iova, &len) != 5)
		return false;
	ret = luo_retrieve_fd(sfd, token, &fd);
	if (ret) {
		ksft_print_msg("%s: token %llu: retrieve: %s\n", sname, token,
			       ename(ret));
		return false;
	}
	if (len) {
		state = luo_file_state(sfd, mtoken);
		unmapped = edu_unmap_len(fd, ioas, iova, len);
	}
	left = edu_unmap_len(fd, ioas, 0, UINT64_MAX);
	ranges = edu_iova_ranges(fd, ioas);
	close(fd);
	ok = state == LIVEUPDATE_FILE_RETRIEVED &&
	     unmapped == (long long)len && !left && ranges > 0;
	if (!ok)
		ksft_print_msg("%s: iommufd %llu: memfd %llu in state %u; IOAS %u: %lld of %llu bytes at %#llx unmapped, then %lld; %d IOVA ranges\n",
			       sname, token, mtoken, state, ioas, unmapped, len,
			       iova, left, ranges);
	return ok;
}

/* When stage 1 retrieves the iommufds of a session */
enum { IOMMUFD_IN_ORDER, IOMMUFD_FIRST, IOMMUFD_NEVER, NR_IOMMUFD_MODES };

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char * const *)a, *(char * const *)b);
}

/*
 * LIST_SESSIONS names every session of the manifest, in name order, and no
 * other (the manifest's own is open, so not listed).
 */
static bool check_list(char **line, int nlines)
{
	char *want[NR_WORKERS * MAX_SESS], *names;
	__u32 count = 0, n = 0, i;
	bool ok;
	int l;

	for (l = 0; l < nlines; l++)
		if (line[l][0] == 'S' && n < NR_WORKERS * MAX_SESS)
			want[n++] = line[l] + 2;
	qsort(want, n, sizeof(want[0]), cmp_name);
	if (luo_list_sessions(dev, NULL, &count))
		return false;
	names = calloc(count + 1, LUO_NAME_LEN);
	if (!names || luo_list_sessions(dev, names, &count))
		return false;
	ok = count == n;
	for (i = 0; ok && i < n; i++)
		ok = !strcmp(names + i * LUO_NAME_LEN, want[i]);
	if (!ok)
		ksft_print_msg("LIST_SESSIONS: %u sessions, want %u (entry %u differs)\n",
			       count, n, i);
	free(names);
	return ok;
}

/* The compatible string of a manifest line's file. */
static const char *compatible_of_line(const char *line)
{
	if (line[0] == 'T')
		return LUO_TEST_COMPATIBLE;
	if (line[0] == 'I')
		return "iommufd";
	return line[0] == 'H' ? "memfd-hugetlb" : "memfd";
}

/* QUERY of an incoming session: its files in the order of @line. */
static bool check_incoming(int sfd, const char *name, char **line, int n)
{
	unsigned long long token;
	__u32 kind = 0, count = MAX_OBJ + 4;
	const char *compatible;
	int i, ret;

	memset(info, 0, sizeof(info));
	ret = luo_query(sfd, &kind, info, &count);
	if (ret || kind != LIVEUPDATE_SESSION_INCOMING || count != (__u32)n) {
		ksft_print_msg("%s: QUERY %s, kind %u, %u files; want %d\n",
			       name, ename(ret), kind, count, n);
		return false;
	}
	for (i = 0; i < n; i++) {
		compatible = compatible_of_line(line[i]);
		if (sscanf(line[i], "%*c %llu", &token) != 1 ||
		    info[i].token != token ||
		    info[i].state != LIVEUPDATE_FILE_INCOMING ||
		    strcmp((char *)info[i].compatible, compatible)) {
			ksft_print_msg("%s: file %d: token %llu state %u '%.48s', want '%s'\n",
				       name, i,
				       (unsigned long long)info[i].token,
				       info[i].state, info[i].compatible,
				       line[i]);
			return false;
		}
	}
	return true;
}

static void stage1(void)
{
	int msfd, mfd = -1, sfd, ret, busy, tries, sessions = 0, files;
	int nfiles = 0, mode, modes[NR_IOMMUFD_MODES] = { 0 };
	int nlines = 0, i, j, refused = 0;
	__u32 kind = 0, count;
	char *m, *p, **line;
	struct stat sb;
	bool ok;

	ret = luo_retrieve_session(dev, MANIFEST_NAME, &msfd);
	if (ret)
		ksft_exit_fail_msg("retrieve %s: %s\n", MANIFEST_NAME,
				   ename(ret));
	ret = luo_retrieve_fd(msfd, 1, &mfd);
	if (ret || fstat(mfd, &sb))
		ksft_exit_fail_msg("retrieve the manifest: %s\n", ename(ret));
	m = calloc(1, sb.st_size + 1);
	if (!m || pread(mfd, m, sb.st_size, 0) != sb.st_size)
		ksft_exit_fail_msg("read the manifest: %s\n", strerror(errno));
	close(mfd);
	line = calloc(count_lines(m, 'S') + count_lines(m, 'M') +
		      count_lines(m, 'H') + count_lines(m, 'T') +
		      count_lines(m, 'I') + 2, sizeof(*line));
	if (!line)
		ksft_exit_fail_msg("out of memory\n");
	for (p = strtok(m, "\n"); p; p = strtok(NULL, "\n"))
		if (p[0] == 'S' || p[0] == 'M' || p[0] == 'H' || p[0] == 'T' ||
		    p[0] == 'I')
			line[nlines++] = p;
	if (sscanf(m, "seed %llu", (unsigned long long *)&seed) == 1)
		ksft_print_msg("seed %llu\n", (unsigned long long)seed);

	ksft_test_result(check_list(line, nlines),
			 "the sessions listed are the manifest's\n");
	for (i = 0; i < nlines; i++) {
		const char *name = line[i] + 2;

		if (line[i][0] != 'S')
			continue;
		for (files = 0; i + 1 + files < nlines &&
		     line[i + 1 + files][0] != 'S'; files++)
			;
		ok = !luo_retrieve_session(dev, name, &sfd);
		ok = ok && check_incoming(sfd, name, line + i + 1, files);
		busy = 0;
		/* Its iommufds in order, first, or never: FINISH releases them. */
		mode = mix64(seed + sessions) % NR_IOMMUFD_MODES;
		for (j = 0; ok && j < files; j++) {
			if (line[i + 1 + j][0] == 'I') {
				modes[mode]++;
				if (mode == IOMMUFD_FIRST)
					ok = check_iommufd(sfd, name,
							   line[i + 1 + j]);
			}
		}
		for (j = 0; ok && j < files; j++) {
			if (line[i + 1 + j][0] != 'I')
				ok = check_file(sfd, name, line[i + 1 + j],
						&busy);
			else if (mode == IOMMUFD_IN_ORDER)
				ok = check_iommufd(sfd, name, line[i + 1 + j]);
		}
		/* Each armed can_finish refuses once. */
		ret = -1;
		for (tries = 0; ok && tries <= busy; tries++) {
			ret = luo_finish(sfd);
			if (ret != -EBUSY)
				break;
		}
		ok = ok && !ret && (!busy || tries > 0);
		refused += tries;
		count = 0;
		ok = ok && !luo_query(sfd, &kind, NULL, &count) &&
		     kind == LIVEUPDATE_SESSION_OUTGOING && !count;
		ksft_test_result(ok, "session %s: %d files intact, finished\n",
				 name, files);
		close(sfd);
		sessions++;
		nfiles += files;
	}
	ksft_test_result(!luo_finish(msfd), "manifest session finished\n");
	close(msfd);
	count = 0;
	ret = luo_list_sessions(dev, NULL, &count);
	ksft_test_result(!ret && !count &&
			 (!have_test || luo_test_live() == 0),
			 "nothing left: %u incoming sessions, %d test objects\n",
			 count, have_test ? luo_test_live() : 0);
	ksft_print_msg("%d sessions and %d files verified\n", sessions,
		       nfiles);
	ksft_print_msg("%d injected retrieve failures and %d FINISH refusals seen\n",
		       injected, refused);
	ksft_print_msg("iommufds: %d retrieved in order, %d first, %d never\n",
		       modes[IOMMUFD_IN_ORDER], modes[IOMMUFD_FIRST],
		       modes[IOMMUFD_NEVER]);
	ksft_set_plan(ksft_test_num());
	ksft_finished();
}

static __u64 param(int argc, char **argv, int i, const char *env, __u64 def)
{
	const char *s = argc > i ? argv[i] : getenv(env);

	return s && *s ? strtoull(s, NULL, 0) : def;
}

int main(int argc, char **argv)
{
	stage = luo_stage();
	seed = param(argc, argv, 1, "LUO_FUZZ_SEED", 0);
	if (!seed)
		seed = mix64(time(NULL) ^ getpid());
	max_iters = param(argc, argv, 2, "LUO_FUZZ_ITERS", DEF_ITERS);
	max_secs = param(argc, argv, 3, "LUO_FUZZ_SECS", DEF_SECS);
	ksft_print_header();
	if (access(LUO_DEVICE, F_OK))
		ksft_exit_skip("%s missing\n", LUO_DEVICE);
	dev = luo_open_device();
	if (dev < 0)
		ksft_exit_fail_msg("open %s: %s\n", LUO_DEVICE, strerror(-dev));
	have_test = luo_test_available();
	if (stage == 0)
		stage0();
	else if (stage == 1)
		stage1();
	ksft_exit_fail_msg("no stage %d\n", stage);
}
