// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: hugetlb memfds carried across kexec reboots.
 *
 *   liveupdate_hugetlb SCENARIO     (LUO_STAGE=N, see liveupdate_test.h)
 *
 * core: stage 0 sets up 2 MiB and 1 GiB pools and preserves, in one
 *       session, hugetlb memfds of every shape: 2 MiB pages all written,
 *       sparse (a few pages, the rest holes), sealed, a 1 GiB page next to
 *       a 1 GiB hole, read-only with a file position and holes written
 *       through shared mappings after PRESERVE_FD, and a shmem memfd; one
 *       more in a second session that the next kernel never retrieves.
 *       While they are preserved, resizing and punching holes fail with
 *       EPERM, a second PRESERVE_FD with EBUSY, and F_ADD_SEALS works.
 *       Stage 1 finishes the second session (its pages go to the buddy
 *       allocator, not to the pool), retrieves the rest, checks every byte,
 *       hole, seal, name, mode, owner, position and open flag, and follows
 *       the pool counters: the restored pages are the pool, in use, until
 *       the memfds are closed, and free pool pages after.
 * core-nopreload: the same, the next kernel booted with
 *       liveupdate_preload=off: RETRIEVE_FD restores each memfd itself.
 * hops: a sparse 2 MiB memfd and a 1 GiB memfd through three kexecs: each
 *       stage checks every byte, writes a hole of the 2 MiB one from a new
 *       pool page, rewrites part of the 1 GiB page, and preserves both again
 *       into the same session after FINISH.
 * big:  4 GiB of 1 GiB pages in one memfd, every byte checked after the
 *       kexec; PRESERVE_FD, RETRIEVE_FD and the check are timed.
 * mm:   (a machine with a movable zone, harness/suite) a 2 MiB memfd of 16
 *       pages and a 1 GiB memfd, preserved; then nothing mm does moves or
 *       frees a page of them: shrinking the pools to 0 leaves the pages in
 *       use, offlining the memory blocks that hold them fails or never
 *       ends, and soft offline of a page fails or leaves it where it is
 *       (PFNs from /proc/self/pagemap).  Stage 1 retrieves the 2 MiB memfd
 *       in a hugetlb cgroup whose limit is half of it: ENOMEM, and nothing
 *       is consumed (pools and charge unchanged); once the limit is lifted
 *       RETRIEVE_FD works and the pages are charged there.
 * nosize: a 1 GiB memfd, a 2 MiB one and a shmem one, preserved; the next
 *       kernel boots with clearcpuid=pdpe1gb, so it has no 1 GiB hstate:
 *       RETRIEVE_FD of the 1 GiB memfd fails with EOPNOTSUPP (and again),
 *       the others restore, and FINISH frees the 1 GiB page to the buddy
 *       allocator.
 * bootclamp: a 2 MiB memfd of 4 pages, preserved; the next kernel boots
 *       with a pool of 2 pages of 2 MiB: both count as preserved ones, so
 *       none is allocated, and the log says "2 of 2"; after the retrieve
 *       the pool has the 4 pages.
 * straddle: (a machine whose KHO scratch area begins inside a free 1 GiB
 *       range) a 1 GiB pool as large as can be had, each page in a memfd of
 *       its own, located through /proc/self/pagemap and KHO's debugfs: no
 *       page reaches into a scratch area.  With debugfs
 *       fail_memfd_placement taking a page for one that does, PRESERVE_FD
 *       fails with EXDEV and keeps nothing, and a fault in a preserved
 *       memfd that gets the page raises SIGBUS and leaves the memfd empty.
 *       Every page clear of the areas is then preserved, and intact after
 *       the kexec.
 * bootpool: a 1 GiB memfd and a 2 MiB memfd of 4 pages, preserved; the
 *       next kernel boots with pools of 10 pages of 2 MiB and one of 1 GiB
 *       (hugepages=): the preserved pages count toward them, so the boot
 *       takes 6 fresh 2 MiB pages and no 1 GiB one, and says so in the
 *       log; after the retrieves the pools are exactly the boot pools.
 *
 * Contents are only written and read through MAP_SHARED mappings of the
 * pages that hold data (hugetlbfs has no write(2), and faulting a hole in
 * would allocate a page); holes are read with read(2), which does not.
 * Every word of a huge page depends on the page's index, its offset and a
 * seed, so a page or a 4 KiB part of one out of place does not match.
 *
 * The old kernel's pools are set up here at runtime, but for 1 GiB pages,
 * which its suite line (harness/suite, the "giant" machines) has the first
 * boot allocate from memblock: at run time, the debug kernel's early
 * allocations leave no free 1 GiB range in one guest out of a few.  If a
 * pool cannot be had the test fails when the guest has the memory its
 * suite line gives it, and is skipped in a smaller one.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>
#include <linux/memfd.h>

#include "liveupdate_test.h"
#include "kselftest.h"

#define MIB		(1024ULL * 1024)
#define GIB		(1024 * MIB)
#define KB_2M		2048UL
#define KB_1G		1048576UL
#define HPS_2M		(2 * MIB)
#define HPS_1G		GIB
#define PAGE_BIT(n)	(1ULL << (n))
/* Pattern: consecutive words of a huge page differ by this (odd) step. */
#define STEP		0x9e3779b97f4a7c15ULL
#define HUGE_DIR	LUO_HUGE_DIR
/* MemTotal of the guests of harness/suite, give or take the kernel. */
#define CORE_MEM_KB	(3 * 1024 * 1024L)
#define BIG_MEM_KB	(9 * 1024 * 1024L)

static int dev = -1;
static int stage;
/* core-nopreload: the next kernel restores the memfds in RETRIEVE_FD. */
static bool nopreload;
#define NOPRELOAD	"liveupdate_preload=off"

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* ---- hugetlb pools ---- */

static void pool_print(unsigned long kb, const char *when)
{
	ksft_print_msg("hugepages-%lukB %s: nr %ld free %ld resv %ld surplus %ld\n",
		       kb, when, luo_huge_val(kb, "nr_hugepages"),
		       luo_huge_val(kb, "free_hugepages"),
		       luo_huge_val(kb, "resv_hugepages"),
		       luo_huge_val(kb, "surplus_hugepages"));
}

/* The pool of @kb pages: @nr pages, @free of them free, none reserved or surplus. */
static bool pool_is(unsigned long kb, long nr, long free)
{
	long n = luo_huge_val(kb, "nr_hugepages"), f = luo_huge_val(kb, "free_hugepages");
	long r = luo_huge_val(kb, "resv_hugepages"), s = luo_huge_val(kb, "surplus_hugepages");

	if (n == nr && f == free && !r && !s)
		return true;
	ksft_print_msg("hugepages-%lukB: nr %ld free %ld resv %ld surplus %ld, want nr %ld free %ld resv 0 surplus 0\n",
		       kb, n, f, r, s, nr, free);
	return false;
}

/*
 * /proc/meminfo tells about the default huge page size, 2 MiB here: @nr
 * pages, @free of them free, none reserved or surplus.
 */
static bool meminfo_is(long nr, long free)
{
	long size = luo_meminfo_kb("Hugepagesize");
	long n = luo_meminfo_kb("HugePages_Total");
	long f = luo_meminfo_kb("HugePages_Free");
	long r = luo_meminfo_kb("HugePages_Rsvd");
	long s = luo_meminfo_kb("HugePages_Surp");

	if (size == (long)KB_2M && n == nr && f == free && !r && !s)
		return true;
	ksft_print_msg("meminfo: Hugepagesize %ld kB, HugePages_Total %ld Free %ld Rsvd %ld Surp %ld; want %lu kB, %ld, %ld, 0, 0\n",
		       size, n, f, r, s, KB_2M, nr, free);
	return false;
}

/* vm.nr_hugepages, the persistent pool of the default size, is @nr. */
static bool sysctl_nr_is(long nr)
{
	char *s = luo_read_file("/proc/sys/vm/nr_hugepages");
	long n = s ? atol(s) : -1;

	free(s);
	if (n != nr)
		ksft_print_msg("vm.nr_hugepages %ld, want %ld\n", n, nr);
	return n == nr;
}

/* Ask for a pool of @nr pages of @kb: whether it has that many now. */
static bool pool_set(unsigned long kb, long nr)
{
	char path[96], str[32];
	int ret;

	snprintf(path, sizeof(path), HUGE_DIR "/nr_hugepages", kb);
	snprintf(str, sizeof(str), "%ld", nr);
	ret = luo_write_file(path, str);
	if (ret)
		ksft_print_msg("write %s to %s: %s\n", str, path, strerror(-ret));
	return luo_huge_val(kb, "nr_hugepages") == nr;
}

/* The pool of @kb pages: @nr pages, all free; then shrunk to none. */
static bool pool_all_free_then_empty(unsigned long kb, long nr)
{
	return pool_is(kb, nr, nr) && pool_set(kb, 0) && pool_is(kb, 0, 0);
}

/*
 * The old kernel's pool of @kb pages: @nr of them.  The guest was given
 * memory for it by design if its MemTotal is at least @need_kb: a pool
 * that cannot be had fails the test then, and skips it in a smaller one.
 */
static void pool_setup(unsigned long kb, long nr, long need_kb)
{
	long total = luo_meminfo_kb("MemTotal");
	char path[96];

	snprintf(path, sizeof(path), HUGE_DIR "/nr_hugepages", kb);
	if (access(path, W_OK))
		ksft_exit_skip("no hugetlb pages of %lu kB (%s: %s)\n", kb,
			       path, strerror(errno));
	/* Gigantic pages want free 1 GiB ranges: compact first. */
	luo_write_file("/proc/sys/vm/compact_memory", "1");
	if (pool_set(kb, nr))
		return;
	pool_print(kb, "short");
	ksft_print_msg("MemTotal %ld kB, MemFree %ld kB, MemAvailable %ld kB\n",
		       total, luo_meminfo_kb("MemFree"),
		       luo_meminfo_kb("MemAvailable"));
	if (total >= need_kb)
		luo_bail("a pool of %ld pages of %lu kB in a guest of %ld kB: %ld allocated",
			 nr, kb, total, luo_huge_val(kb, "nr_hugepages"));
	ksft_exit_skip("%ld pages of %lu kB: this guest (MemTotal %ld kB) is smaller than the test's (%ld kB)\n",
		       nr, kb, total, need_kb);
}

/* ---- contents ---- */

/*
 * A hugetlb memfd: @pages huge pages of @kb, those of bitmap @data holding
 * the pattern of @seed (every byte), the others holes.
 */
struct hshape {
	const char *name;
	__u64 token;
	unsigned long kb;
	unsigned int flags;	/* more memfd_create() flags */
	unsigned int pages;	/* the size, in huge pages */
	__u64 seed;
	__u64 data;
};

static __u64 hps_of(const struct hshape *s)
{
	return s->kb * 1024;
}

/* The word at byte @off of huge page @idx in the pattern of @seed. */
static __u64 word_of(__u64 seed, __u64 idx, __u64 off)
{
	return luo_word_at(idx, seed) + off / 8 * STEP;
}

static void fill_words(__u64 *p, __u64 n, __u64 v)
{
	for (__u64 i = 0; i < n; i++)
		p[i] = v + i * STEP;
}

/* The index of the first of the @n words at @p not in the pattern from @v, or @n. */
static __u64 bad_word(const __u64 *p, __u64 n, __u64 v)
{
	__u64 i, j, m, acc;

	/* A block of 4 KiB at a time, without a branch per word. */
	for (i = 0; i < n; i += m) {
		m = n - i < 512 ? n - i : 512;
		acc = 0;
		for (j = i; j < i + m; j++)
			acc |= p[j] ^ (v + j * STEP);
		if (!acc)
			continue;
		for (j = i; j < i + m; j++)
			if (p[j] != v + j * STEP)
				return j;
	}
	return n;
}

/*
 * A fault that finds no page and no pool page for it raises SIGBUS: taken
 * as a failed check, not a crash.
 */

/* A run of @n words at @p, the pattern from @v: filled, or checked into @bad. */
struct span {
	__u64 *p;
	__u64 n, v, bad;
};

/*
 * Fill (@write) or check @sp, as fill_words() or bad_word(); false on
 * SIGBUS.  Everything is read through @sp, so that nothing a jump back
 * here would need lives in a register.
 */
static bool guarded(struct span *sp, bool write)
{
	if (sigsetjmp(luo_bus_env, 1)) {
		luo_bus_armed = 0;
		return false;
	}
	luo_bus_armed = 1;
	if (write)
		fill_words(sp->p, sp->n, sp->v);
	else
		sp->bad = bad_word(sp->p, sp->n, sp->v);
	luo_bus_armed = 0;
	return true;
}

/*
 * Write or check [@off, @off + @len) of @fd, huge pages of @hps, through a
 * shared mapping of each huge page in turn, with the pattern of @seed.
 */
static bool range_op(const char *name, int fd, __u64 hps, __u64 off,
		     __u64 len, __u64 seed, bool write)
{
	__u64 idx, in, n, bad;
	struct span sp;
	char *map;
	bool ok;

	while (len) {
		idx = off / hps;
		in = off % hps;
		n = len < hps - in ? len : hps - in;
		map = mmap(NULL, hps, write ? PROT_READ | PROT_WRITE : PROT_READ,
			   MAP_SHARED, fd, idx * hps);
		if (map == MAP_FAILED) {
			ksft_print_msg("%s: mmap of huge page %llu: %s\n", name,
				       (unsigned long long)idx, strerror(errno));
			return false;
		}
		sp.p = (__u64 *)(map + in);
		sp.n = n / 8;
		sp.v = word_of(seed, idx, in);
		sp.bad = sp.n;
		ok = guarded(&sp, write);
		bad = sp.bad;
		if (!ok)
			ksft_print_msg("%s: SIGBUS in huge page %llu\n", name,
				       (unsigned long long)idx);
		else if (bad != sp.n)
			ksft_print_msg("%s: byte %#llx of huge page %llu is %#llx, want %#llx\n",
				       name, (unsigned long long)(in + bad * 8),
				       (unsigned long long)idx,
				       (unsigned long long)sp.p[bad],
				       (unsigned long long)word_of(seed, idx,
								   in + bad * 8));
		munmap(map, hps);
		if (!ok || bad != sp.n)
			return false;
		off += n;
		len -= n;
	}
	return true;
}

static bool put_range(const char *name, int fd, __u64 hps, __u64 off,
		      __u64 len, __u64 seed)
{
	return range_op(name, fd, hps, off, len, seed, true);
}

static bool check_range(const char *name, int fd, __u64 hps, __u64 off,
			__u64 len, __u64 seed)
{
	return range_op(name, fd, hps, off, len, seed, false);
}

/* Does read(2) find zeros in [@off, @off + @len)? */
static bool zeros_at(const char *name, int fd, __u64 off, __u64 len)
{
	static __u64 buf[MIB / 8];
	__u64 n, i;

	while (len) {
		n = len < MIB ? len : MIB;
		if (pread(fd, buf, n, off) != (ssize_t)n) {
			ksft_print_msg("%s: read at %#llx: %s\n", name,
				       (unsigned long long)off, strerror(errno));
			return false;
		}
		for (i = 0; i < n / 8; i++) {
			if (buf[i]) {
				ksft_print_msg("%s: hole byte %#llx is %#llx\n",
					       name,
					       (unsigned long long)(off + i * 8),
					       (unsigned long long)buf[i]);
				return false;
			}
		}
		off += n;
		len -= n;
	}
	return true;
}

/*
 * Huge page @idx of @fd reads as zeros: all of a 2 MiB one; the first,
 * a middle and the last MiB of a 1 GiB one (st_blocks tells it has no page).
 */
static bool hole_reads_zero(const char *name, int fd, __u64 hps, __u64 idx)
{
	__u64 at = idx * hps;

	if (hps <= HPS_2M)
		return zeros_at(name, fd, at, hps);
	return zeros_at(name, fd, at, MIB) &&
	       zeros_at(name, fd, at + hps / 2, MIB) &&
	       zeros_at(name, fd, at + hps - MIB, MIB);
}

/*
 * @fd is a hugetlbfs file of @s's page size and size, with the pages of
 * bitmap @data present (st_blocks) and no other.  Checked before any
 * mapping touches it.
 */
static bool shape_meta(int fd, const struct hshape *s, __u64 data)
{
	__u64 hps = hps_of(s), blocks;
	struct statfs sf = { 0 };
	struct stat st = { 0 };

	if (fd < 0)
		return false;
	if (fstatfs(fd, &sf) || (__u32)sf.f_type != HUGETLBFS_MAGIC ||
	    (__u64)sf.f_bsize != hps) {
		ksft_print_msg("%s: file system type %#lx, block size %ld; want %#x, %llu\n",
			       s->name, (unsigned long)sf.f_type,
			       (long)sf.f_bsize, HUGETLBFS_MAGIC,
			       (unsigned long long)hps);
		return false;
	}
	blocks = __builtin_popcountll(data) * (hps / 512);
	if (fstat(fd, &st) || (__u64)st.st_size != s->pages * hps ||
	    (__u64)st.st_blocks != blocks) {
		ksft_print_msg("%s: size %lld, %lld blocks; want %llu, %llu\n",
			       s->name, (long long)st.st_size,
			       (long long)st.st_blocks,
			       (unsigned long long)(s->pages * hps),
			       (unsigned long long)blocks);
		return false;
	}
	return true;
}

/* The pages of @data hold @s's pattern, every byte; the others are holes. */
static bool shape_data(int fd, const struct hshape *s, __u64 data)
{
	__u64 hps = hps_of(s);

	for (unsigned int i = 0; i < s->pages; i++) {
		if (data & PAGE_BIT(i)) {
			if (!check_range(s->name, fd, hps, i * hps, hps, s->seed))
				return false;
		} else if (!hole_reads_zero(s->name, fd, hps, i)) {
			return false;
		}
	}
	return true;
}

static bool shape_intact(int fd, const struct hshape *s, __u64 data)
{
	return shape_meta(fd, s, data) && shape_data(fd, s, data);
}

/* A hugetlb memfd of @s's page size and size, not written. */
static int shape_new(const struct hshape *s)
{
	unsigned int size = s->kb == KB_1G ? MFD_HUGE_1GB : MFD_HUGE_2MB;
	int fd = memfd_create(s->name, MFD_HUGETLB | size | s->flags);

	if (fd < 0)
		luo_bail("memfd_create %s: %s", s->name, strerror(errno));
	if (ftruncate(fd, s->pages * hps_of(s)))
		luo_bail("ftruncate %s: %s", s->name, strerror(errno));
	return fd;
}

/* Write the pages of @data. */
static bool shape_put(int fd, const struct hshape *s, __u64 data)
{
	__u64 hps = hps_of(s);

	for (unsigned int i = 0; i < s->pages; i++)
		if ((data & PAGE_BIT(i)) &&
		    !put_range(s->name, fd, hps, i * hps, hps, s->seed))
			return false;
	return true;
}

static bool seals_are(int fd, const char *name, int want)
{
	int got = fcntl(fd, F_GET_SEALS);

	if (got != want)
		ksft_print_msg("%s: seals %#x, want %#x\n", name, got, want);
	return got == want;
}

static bool flags_are(int fd, const char *name, int want)
{
	int got = fcntl(fd, F_GETFL);
	int mask = O_ACCMODE | O_APPEND | O_NONBLOCK;

	if (got < 0 || (got & mask) != want)
		ksft_print_msg("%s: open flags %#o, want %#o\n", name,
			       got & mask, want);
	return got >= 0 && (got & mask) == want;
}

static bool pos_is(int fd, const char *name, off_t want)
{
	off_t got = lseek(fd, 0, SEEK_CUR);

	if (got != want)
		ksft_print_msg("%s: position %lld, want %lld\n", name,
			       (long long)got, (long long)want);
	return got == want;
}

/* A writable shared mapping of @fd is refused with EPERM (write seals). */
static bool no_writable_map(int fd, __u64 hps)
{
	void *map = mmap(NULL, hps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (map != MAP_FAILED) {
		munmap(map, hps);
		return false;
	}
	return errno == EPERM;
}

/* ---- core ---- */

enum {
	T_FULL = 1, T_SPARSE, T_SEALED, T_GIANT, T_SHMEM, T_RDONLY,
};

#define T_UNRET		1
#define NR_FILES	6

static const struct hshape full = {
	.name = "hfull", .token = T_FULL, .kb = KB_2M, .pages = 32,
	.seed = 1, .data = PAGE_BIT(32) - 1,
};

static const struct hshape sparse = {
	.name = "hsparse", .token = T_SPARSE, .kb = KB_2M, .pages = 32,
	.seed = 2,
	.data = PAGE_BIT(0) | PAGE_BIT(3) | PAGE_BIT(17) | PAGE_BIT(31),
};

static const struct hshape sealed = {
	.name = "hsealed", .token = T_SEALED, .kb = KB_2M,
	.flags = MFD_ALLOW_SEALING, .pages = 2, .seed = 3, .data = 3,
};

/* 2 GiB: a 1 GiB page, then a 1 GiB hole. */
static const struct hshape giant = {
	.name = "hgiant", .token = T_GIANT, .kb = KB_1G,
	.flags = MFD_ALLOW_SEALING, .pages = 2, .seed = 4, .data = PAGE_BIT(0),
};

/*
 * Pages 0 and 1 written before PRESERVE_FD; 4 through a mapping made
 * before it and 6 through one made after, both written after it.
 */
static const struct hshape rdonly = {
	.name = "hrdonly", .token = T_RDONLY, .kb = KB_2M, .pages = 8,
	.seed = 5,
	.data = PAGE_BIT(0) | PAGE_BIT(1) | PAGE_BIT(4) | PAGE_BIT(6),
};

static const struct hshape unret = {
	.name = "hunret", .token = T_UNRET, .kb = KB_2M, .pages = 32,
	.seed = 6, .data = PAGE_BIT(32) - 1,
};

#define RDONLY_EARLY	(PAGE_BIT(0) | PAGE_BIT(1))
#define FULL_POS	(5 * HPS_2M + 77)
#define RDONLY_POS	(3 * HPS_2M + 12345)
#define SEALS		(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
/* Added to the 1 GiB memfd while it is preserved. */
#define GIANT_SEALS	(F_SEAL_GROW | F_SEAL_FUTURE_WRITE)
#define SHMEM_SIZE	(MIB + 4096)
#define SHMEM_SEED	7
#define UNRET_BYTES	((long)(32 * HPS_2M))
/* The 2 MiB pages the retrieved memfds hold, and a few to spare. */
#define CORE_2M		(32 + 4 + 2 + 4)
#define CORE_1G		1
#define CORE_POOL_2M	(CORE_2M + 32 + 6)

static bool shmem_intact(int fd)
{
	static __u64 buf[SHMEM_SIZE / 8], want[SHMEM_SIZE / 8];
	struct statfs sf;
	struct stat st;

	if (fd < 0 || fstatfs(fd, &sf) || (__u32)sf.f_type != TMPFS_MAGIC ||
	    fstat(fd, &st) || st.st_size != SHMEM_SIZE) {
		ksft_print_msg("shmem memfd: not tmpfs, or size changed\n");
		return false;
	}
	luo_fill(want, 0, SHMEM_SIZE, SHMEM_SEED);
	return pread(fd, buf, SHMEM_SIZE, 0) == SHMEM_SIZE &&
	       !memcmp(buf, want, SHMEM_SIZE) && luo_memfd_name_is(fd, "hshmem");
}

/* Truncate, grow and punch a hole in @fd: EPERM each. */
static bool resize_refused(int fd, __u64 size, __u64 hps)
{
	return ftruncate(fd, size / 2) && errno == EPERM &&
	       ftruncate(fd, size * 2) && errno == EPERM &&
	       fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			 hps) && errno == EPERM;
}

/* Write 2 MiB page @idx, mapped at @map, with the pattern of @seed. */
static bool fill_mapped(char *map, __u64 seed, __u64 idx)
{
	struct span sp = {
		.p = (__u64 *)map, .n = HPS_2M / 8, .v = word_of(seed, idx, 0),
	};

	return guarded(&sp, true);
}

/*
 * Preserve @ffd (full) and @gfd (giant) into a session of their own, then
 * close it: the release of 2 MiB and 1 GiB pages.  Afterwards they can be
 * resized again, are intact, and the pools did not change.
 */
static bool drop_intact(int ffd, int gfd)
{
	static const char * const keys[] = {
		"nr_hugepages", "free_hugepages", "resv_hugepages",
		"surplus_hugepages",
	};
	static const unsigned long kbs[] = { KB_2M, KB_1G };
	off_t fsize = full.pages * HPS_2M, gsize = giant.pages * HPS_1G;
	int tsfd = luo_must_create_session(dev, "hugetlb-drop");
	long before[2][4];
	bool ok;

	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 4; i++)
			before[k][i] = luo_huge_val(kbs[k], keys[i]);
	ok = luo_keep(tsfd, ffd, T_FULL) && luo_keep(tsfd, gfd, T_GIANT) &&
	     ftruncate(ffd, fsize + HPS_2M) && errno == EPERM;
	close(tsfd);
	ok = ok && !ftruncate(ffd, fsize + HPS_2M) && !ftruncate(ffd, fsize) &&
	     !ftruncate(gfd, gsize + HPS_1G) && !ftruncate(gfd, gsize) &&
	     shape_intact(ffd, &full, full.data) &&
	     shape_intact(gfd, &giant, giant.data);
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < 4; i++) {
			long now = luo_huge_val(kbs[k], keys[i]);

			if (now == before[k][i])
				continue;
			ksft_print_msg("hugepages-%lukB %s: %ld, was %ld\n",
				       kbs[k], keys[i], now, before[k][i]);
			ok = false;
		}
	}
	return ok;
}

static void core_0(void)
{
	int sfd, usfd, ffd, spfd, sefd, gfd, shfd, rwfd, rofd, ufd;
	char path[64], *early, *late;
	bool ok;

	ksft_set_plan(7);
	/* The gigantic page first, while memory is least fragmented. */
	pool_setup(KB_1G, CORE_1G, CORE_MEM_KB);
	pool_setup(KB_2M, CORE_POOL_2M, CORE_MEM_KB);
	pool_print(KB_2M, "set up");
	pool_print(KB_1G, "set up");
	sfd = luo_must_create_session(dev, "hugetlb");
	usfd = luo_must_create_session(dev, "hugetlb-unret");

	ffd = shape_new(&full);
	spfd = shape_new(&sparse);
	sefd = shape_new(&sealed);
	gfd = shape_new(&giant);
	rwfd = shape_new(&rdonly);
	ufd = shape_new(&unret);
	ok = shape_put(ffd, &full, full.data) &&
	     shape_put(spfd, &sparse, sparse.data) &&
	     shape_put(sefd, &sealed, sealed.data) &&
	     shape_put(gfd, &giant, giant.data) &&
	     shape_put(rwfd, &rdonly, RDONLY_EARLY) &&
	     shape_put(ufd, &unret, unret.data);
	ok = ok && shape_intact(ffd, &full, full.data) &&
	     shape_intact(spfd, &sparse, sparse.data) &&
	     shape_intact(gfd, &giant, giant.data) &&
	     shape_intact(rwfd, &rdonly, RDONLY_EARLY) &&
	     shape_intact(ufd, &unret, unret.data);
	/* The write seal wants no writable mapping left: all are unmapped. */
	ok = ok && !fcntl(sefd, F_ADD_SEALS, SEALS) &&
	     seals_are(sefd, sealed.name, SEALS) &&
	     shape_intact(sefd, &sealed, sealed.data);

	/* Mode, owner, position and open flags to carry over. */
	ok = ok && !fchmod(ffd, 0640) && !fchown(ffd, 1000, 2000) &&
	     lseek(ffd, FULL_POS, SEEK_SET) == FULL_POS &&
	     !fcntl(ffd, F_SETFL, O_APPEND | O_NONBLOCK);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", rwfd);
	rofd = open(path, O_RDONLY);
	ok = ok && rofd >= 0 && lseek(rofd, RDONLY_POS, SEEK_SET) == RDONLY_POS;
	/* Reserved now, written after PRESERVE_FD. */
	early = mmap(NULL, HPS_2M, PROT_READ | PROT_WRITE, MAP_SHARED, rwfd,
		     4 * HPS_2M);
	ok = ok && early != MAP_FAILED;

	shfd = memfd_create("hshmem", 0);
	ok = ok && shfd >= 0 && !luo_put(shfd, 0, SHMEM_SIZE, SHMEM_SEED);
	result(ok, "hugetlb memfds of 2 MiB and 1 GiB pages written through shared mappings, read back; sealed, chmod, chown, seek, O_APPEND|O_NONBLOCK, read-only reopen");
	if (!ok)
		luo_kexec_next();

	ok = drop_intact(ffd, gfd);
	result(ok, "a 2 MiB and a 1 GiB memfd preserved, then released by closing their session: resizable again, intact, the pools as they were");

	ok = luo_keep(sfd, ffd, T_FULL) && luo_keep(sfd, spfd, T_SPARSE) &&
	     luo_keep(sfd, sefd, T_SEALED) && luo_keep(sfd, gfd, T_GIANT) &&
	     luo_keep(sfd, shfd, T_SHMEM) && luo_keep(sfd, rofd, T_RDONLY) &&
	     luo_keep(usfd, ufd, T_UNRET);
	result(ok, "preserve five hugetlb memfds and a shmem memfd, and one more in a second session");
	pool_print(KB_2M, "preserved");
	pool_print(KB_1G, "preserved");

	ok = luo_preserve_fd(sfd, ffd, 100) == -EBUSY &&
	     luo_preserve_fd(usfd, gfd, 100) == -EBUSY;
	result(ok, "the same hugetlb memfd again, in its session or another: EBUSY");

	ok = resize_refused(ffd, full.pages * HPS_2M, HPS_2M) &&
	     resize_refused(gfd, giant.pages * HPS_1G, HPS_1G) &&
	     shape_meta(ffd, &full, full.data) &&
	     check_range(full.name, ffd, HPS_2M, 0, HPS_2M, full.seed) &&
	     shape_meta(gfd, &giant, giant.data);
	result(ok, "while preserved: truncate, grow and punch hole fail with EPERM; pages, size and blocks unchanged");

	ok = !fcntl(gfd, F_ADD_SEALS, GIANT_SEALS) &&
	     seals_are(gfd, giant.name, GIANT_SEALS) &&
	     no_writable_map(gfd, HPS_1G);
	result(ok, "while preserved: F_ADD_SEALS(F_SEAL_GROW|F_SEAL_FUTURE_WRITE) works and holds");

	/* Holes written while preserved, from a mapping made before and after. */
	ok = early != MAP_FAILED &&
	     fill_mapped(early, rdonly.seed, 4);
	late = mmap(NULL, HPS_2M, PROT_READ | PROT_WRITE, MAP_SHARED, rwfd,
		    6 * HPS_2M);
	ok = ok && late != MAP_FAILED && fill_mapped(late, rdonly.seed, 6);
	if (early != MAP_FAILED)
		munmap(early, HPS_2M);
	if (late != MAP_FAILED)
		munmap(late, HPS_2M);
	ok = ok && shape_intact(rofd, &rdonly, rdonly.data) &&
	     pos_is(rofd, rdonly.name, RDONLY_POS);
	result(ok, "while preserved: two holes written through shared mappings, made before and after PRESERVE_FD");
	pool_print(KB_2M, "at the reboot");
	pool_print(KB_1G, "at the reboot");
	luo_kexec_next_with(nopreload ? NOPRELOAD : NULL);
}

static void core_1(void)
{
	int sfd = -1, usfd = -1, fd[NR_FILES + 1], ret;
	long free0, free1;
	struct stat st;
	bool ok;

	ksft_set_plan(18);
	result(pool_is(KB_2M, 0, 0) && pool_is(KB_1G, 0, 0),
	       "no hugetlb pool at boot");
	/* Left alone, the pool stays as it is: preloaded pages are not in it. */
	if (nopreload) {
		ret = luo_memfd_preloaded();
		result(!ret, NOPRELOAD ": no memfd preloaded (%d)", ret);
	} else {
		ret = luo_wait_memfd_preloaded(NR_FILES + 1);
		result(ret == NR_FILES + 1 && pool_is(KB_2M, 0, 0) &&
		       pool_is(KB_1G, 0, 0),
		       "before any retrieve, the %d memfds were restored from KHO in the background (%d seen); the pools are untouched",
		       NR_FILES + 1, ret);
	}

	/* The never retrieved memfd, finished first: nothing else counts yet. */
	usfd = luo_must_retrieve_session(dev, "hugetlb-unret");
	free0 = luo_free_kb();
	ret = luo_finish(usfd);
	free1 = luo_wait_free_kb(free0, UNRET_BYTES / 1024 * 3 / 4, 5000);
	ksft_print_msg("free: %ld kB before, %ld kB after FINISH\n", free0,
		       free1);
	/* A quarter of slack: other tasks allocate meanwhile. */
	result(!ret && free1 - free0 >= UNRET_BYTES / 1024 * 3 / 4 &&
	       pool_is(KB_2M, 0, 0) && luo_take(usfd, T_UNRET) < 0,
	       "never retrieved: FINISH frees its 32 huge pages to the buddy allocator, not to the pool");
	close(usfd);

	sfd = luo_must_retrieve_session(dev, "hugetlb");
	ok = true;
	for (int t = 1; t <= NR_FILES; t++) {
		fd[t] = luo_take(sfd, t);
		ok &= fd[t] >= 0;
	}
	result(ok, "retrieve the six memfds");
	if (!ok)
		ksft_exit_fail_msg("stage 1: cannot go on without them\n");
	pool_print(KB_2M, "after RETRIEVE_FD");
	result(pool_is(KB_2M, CORE_2M, 0) && pool_is(KB_1G, CORE_1G, 0) &&
	       meminfo_is(CORE_2M, 0) && sysctl_nr_is(CORE_2M),
	       "pools after RETRIEVE_FD: %d 2 MiB and %d 1 GiB pages, all in use, none reserved; /proc/meminfo and vm.nr_hugepages agree",
	       CORE_2M, CORE_1G);

	/* st_blocks of all of them first: checks after this map pages in. */
	ok = shape_meta(fd[T_FULL], &full, full.data) &&
	     shape_meta(fd[T_SPARSE], &sparse, sparse.data) &&
	     shape_meta(fd[T_SEALED], &sealed, sealed.data) &&
	     shape_meta(fd[T_GIANT], &giant, giant.data) &&
	     shape_meta(fd[T_RDONLY], &rdonly, rdonly.data);
	result(ok && shape_data(fd[T_FULL], &full, full.data),
	       "full: 32 pages of 2 MiB intact, a hugetlbfs file of 2 MiB blocks");
	ok = !fstat(fd[T_FULL], &st);
	result(ok && pos_is(fd[T_FULL], full.name, FULL_POS) &&
	       (st.st_mode & 07777) == 0640 && st.st_uid == 1000 &&
	       st.st_gid == 2000 && luo_memfd_name_is(fd[T_FULL], full.name) &&
	       flags_are(fd[T_FULL], full.name, O_RDWR | O_APPEND | O_NONBLOCK) &&
	       luo_has_cloexec(fd[T_FULL]),
	       "full: position, mode 0640, owner 1000:2000, name, O_RDWR|O_APPEND|O_NONBLOCK");
	result(shape_intact(fd[T_SPARSE], &sparse, sparse.data) &&
	       luo_memfd_name_is(fd[T_SPARSE], sparse.name),
	       "sparse 64 MiB: pages 0, 3, 17, 31 intact, the other 28 still holes");
	result(shape_intact(fd[T_SEALED], &sealed, sealed.data) &&
	       seals_are(fd[T_SEALED], sealed.name, SEALS) &&
	       luo_memfd_name_is(fd[T_SEALED], sealed.name),
	       "sealed: intact, F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE");
	result(shape_intact(fd[T_GIANT], &giant, giant.data) &&
	       seals_are(fd[T_GIANT], giant.name, GIANT_SEALS) &&
	       luo_memfd_name_is(fd[T_GIANT], giant.name),
	       "1 GiB pages: the page intact, the hole still a hole, a hugetlbfs file of 1 GiB blocks, the seals added while preserved");
	result(shape_intact(fd[T_RDONLY], &rdonly, rdonly.data) &&
	       pos_is(fd[T_RDONLY], rdonly.name, RDONLY_POS) &&
	       flags_are(fd[T_RDONLY], rdonly.name, O_RDONLY) &&
	       luo_memfd_name_is(fd[T_RDONLY], rdonly.name),
	       "read-only: O_RDONLY, position; the holes written after PRESERVE_FD arrived, the others still holes");
	result(shmem_intact(fd[T_SHMEM]),
	       "the shmem memfd in the same session: intact, still tmpfs");
	result(pool_is(KB_2M, CORE_2M, 0) && pool_is(KB_1G, CORE_1G, 0),
	       "reading them allocated no huge page");
	result(!luo_finish(sfd), "finish");
	close(sfd);

	/* An ordinary memfd now: what is refused is the seals' doing. */
	ok = ftruncate(fd[T_SEALED], HPS_2M) && errno == EPERM &&
	     ftruncate(fd[T_SEALED], 4 * HPS_2M) && errno == EPERM &&
	     no_writable_map(fd[T_SEALED], HPS_2M) &&
	     ftruncate(fd[T_GIANT], 4 * HPS_1G) && errno == EPERM &&
	     no_writable_map(fd[T_GIANT], HPS_1G);
	result(ok, "after FINISH the seals hold: shrink, grow and writable mappings refused");
	ok = !ftruncate(fd[T_FULL], 16 * HPS_2M) &&
	     !fstat(fd[T_FULL], &st) && st.st_blocks == 16 * HPS_2M / 512 &&
	     pool_is(KB_2M, CORE_2M, 16) &&
	     check_range(full.name, fd[T_FULL], HPS_2M, 15 * HPS_2M, HPS_2M,
			 full.seed);
	result(ok, "after FINISH an ordinary hugetlb memfd: truncating 16 pages gives them to the pool");

	for (int t = 1; t <= NR_FILES; t++)
		close(fd[t]);
	pool_print(KB_2M, "all closed");
	result(pool_is(KB_2M, CORE_2M, CORE_2M) &&
	       pool_is(KB_1G, CORE_1G, CORE_1G) &&
	       meminfo_is(CORE_2M, CORE_2M),
	       "all closed: every restored page is a free pool page");
	result(pool_set(KB_2M, 0) && pool_set(KB_1G, 0) &&
	       pool_is(KB_2M, 0, 0) && pool_is(KB_1G, 0, 0),
	       "the pools shrink to 0");
	ksft_finished();
}

/* ---- hops ---- */

#define HOPS		3
#define HOP_1G_SEED(s)	(300 + (s))
#define HOP_REWRITE	HPS_2M

static const struct hshape hop2m = {
	.name = "hop2m", .token = 1, .kb = KB_2M, .pages = 16, .seed = 21,
	.data = PAGE_BIT(0) | PAGE_BIT(5) | PAGE_BIT(9) | PAGE_BIT(15),
};

/* Its first 2 MiB rewritten at each stage @s, with HOP_1G_SEED(s). */
static const struct hshape hop1g = {
	.name = "hop1g", .token = 2, .kb = KB_1G, .pages = 1, .seed = 22,
	.data = PAGE_BIT(0),
};

/* The hole of hop2m written at stage s. */
static const int hop_page[HOPS + 1] = { -1, 2, 7, 12 };

/* hop2m's pages once stage @s wrote its own. */
static __u64 hop_data(int s)
{
	__u64 data = hop2m.data;

	for (int i = 1; i <= s; i++)
		data |= PAGE_BIT(hop_page[i]);
	return data;
}

/* Both as stage @s left them. */
static bool hop_intact(int fd2m, int fd1g, int s)
{
	return shape_intact(fd2m, &hop2m, hop_data(s)) &&
	       shape_meta(fd1g, &hop1g, hop1g.data) &&
	       check_range(hop1g.name, fd1g, HPS_1G, 0, HOP_REWRITE,
			   HOP_1G_SEED(s)) &&
	       check_range(hop1g.name, fd1g, HPS_1G, HOP_REWRITE,
			   HPS_1G - HOP_REWRITE, hop1g.seed);
}

static void run_hops(void)
{
	int sfd, fd2m, fd1g, n;
	bool ok;

	if (!stage) {
		ksft_set_plan(2);
		pool_setup(KB_1G, 1, CORE_MEM_KB);
		pool_setup(KB_2M, __builtin_popcountll(hop2m.data) + 2,
			   CORE_MEM_KB);
		sfd = luo_must_create_session(dev, "hugetlb-hops");
		fd2m = shape_new(&hop2m);
		fd1g = shape_new(&hop1g);
		ok = shape_put(fd2m, &hop2m, hop2m.data) &&
		     shape_put(fd1g, &hop1g, hop1g.data) &&
		     put_range(hop1g.name, fd1g, HPS_1G, 0, HOP_REWRITE,
			       HOP_1G_SEED(0)) &&
		     hop_intact(fd2m, fd1g, 0);
		result(ok, "stage 0: a sparse 2 MiB and a 1 GiB memfd written");
		result(luo_keep(sfd, fd2m, hop2m.token) &&
		       luo_keep(sfd, fd1g, hop1g.token), "stage 0: preserved");
		luo_kexec_next();
	}

	if (stage > HOPS)
		ksft_exit_fail_msg("no stage %d\n", stage);
	/* hop2m's pages at the start of this stage. */
	n = __builtin_popcountll(hop_data(stage - 1));
	ksft_set_plan(stage < HOPS ? 6 : 7);
	result(pool_is(KB_2M, 0, 0) && pool_is(KB_1G, 0, 0),
	       "stage %d: no hugetlb pool at boot", stage);
	sfd = luo_must_retrieve_session(dev, "hugetlb-hops");
	fd2m = luo_take(sfd, hop2m.token);
	fd1g = luo_take(sfd, hop1g.token);
	result(fd2m >= 0 && fd1g >= 0 && pool_is(KB_2M, n, 0) &&
	       pool_is(KB_1G, 1, 0),
	       "stage %d: retrieved; pools: %d 2 MiB and one 1 GiB page, all in use",
	       stage, n);
	result(hop_intact(fd2m, fd1g, stage - 1),
	       "stage %d: every byte of both, holes still holes", stage);
	result(!luo_finish(sfd), "stage %d: finish", stage);

	/* One more pool page, for a hole; the restored ones stay in use. */
	ok = pool_set(KB_2M, n + 1) &&
	     put_range(hop2m.name, fd2m, HPS_2M, hop_page[stage] * HPS_2M,
		       HPS_2M, hop2m.seed) &&
	     put_range(hop1g.name, fd1g, HPS_1G, 0, HOP_REWRITE,
		       HOP_1G_SEED(stage)) &&
	     pool_is(KB_2M, n + 1, 0) && hop_intact(fd2m, fd1g, stage);
	result(ok, "stage %d: hole %d written from a new pool page, the 1 GiB page rewritten in part",
	       stage, hop_page[stage]);
	if (stage < HOPS) {
		/* After FINISH the session is outgoing again, under its name. */
		result(luo_keep(sfd, fd2m, hop2m.token) &&
		       luo_keep(sfd, fd1g, hop1g.token),
		       "stage %d: preserved again", stage);
		luo_kexec_next();
	}
	close(sfd);
	close(fd2m);
	close(fd1g);
	result(pool_is(KB_2M, n + 1, n + 1) && pool_is(KB_1G, 1, 1),
	       "stage %d: closed: every page a free pool page", stage);
	result(pool_set(KB_2M, 0) && pool_set(KB_1G, 0) &&
	       pool_is(KB_2M, 0, 0) && pool_is(KB_1G, 0, 0),
	       "stage %d: the pools shrink to 0", stage);
	ksft_finished();
}

/* ---- big ---- */

static const struct hshape big_shape = {
	.name = "hbig", .token = 1, .kb = KB_1G, .pages = 4, .seed = 31,
	.data = PAGE_BIT(4) - 1,
};

static void run_big(void)
{
	const struct hshape *s = &big_shape;
	long long t, t1, t2;
	int sfd, fd;
	bool ok;

	if (!stage) {
		ksft_set_plan(2);
		t = now_us();
		pool_setup(KB_1G, s->pages, BIG_MEM_KB);
		ksft_print_msg("a pool of %u 1 GiB pages: %lld ms\n", s->pages,
			       (now_us() - t) / 1000);
		sfd = luo_must_create_session(dev, "hugetlb-big");
		fd = shape_new(s);
		t = now_us();
		ok = shape_put(fd, s, s->data);
		t = now_us() - t;
		ksft_print_msg("4 GiB written: %lld ms\n", t / 1000);
		result(ok && shape_meta(fd, s, s->data),
		       "4 GiB of 1 GiB pages written");
		t = now_us();
		ok = luo_keep(sfd, fd, s->token);
		t = now_us() - t;
		ksft_print_msg("PRESERVE_FD of 4 GiB of 1 GiB pages: %lld us\n",
			       t);
		result(ok, "preserved");
		luo_kexec_next();
	}

	ksft_set_plan(6);
	result(pool_is(KB_1G, 0, 0), "no 1 GiB pool at boot");
	t = now_us();
	sfd = luo_must_retrieve_session(dev, "hugetlb-big");
	t1 = now_us();
	fd = luo_take(sfd, s->token);
	t2 = now_us();
	ksft_print_msg("RETRIEVE_SESSION: %lld us; RETRIEVE_FD of 4 GiB of 1 GiB pages: %lld us\n",
		       t1 - t, t2 - t1);
	result(fd >= 0 && pool_is(KB_1G, s->pages, 0),
	       "retrieved; pool: 4 pages of 1 GiB, all in use");
	t = now_us();
	ok = shape_intact(fd, s, s->data);
	t = now_us() - t;
	ksft_print_msg("every byte of 4 GiB checked: %lld ms\n", t / 1000);
	result(ok, "every byte of 4 GiB intact");
	t = now_us();
	ok = !luo_finish(sfd);
	ksft_print_msg("FINISH: %lld us\n", now_us() - t);
	result(ok, "finish");
	close(sfd);
	t = now_us();
	close(fd);
	ksft_print_msg("close: %lld us\n", now_us() - t);
	result(pool_is(KB_1G, s->pages, s->pages),
	       "closed: every page a free pool page");
	result(pool_set(KB_1G, 0) && pool_is(KB_1G, 0, 0),
	       "the pool shrinks to 0");
	ksft_finished();
}

/* ---- mm ---- */

#ifndef MADV_SOFT_OFFLINE
#define MADV_SOFT_OFFLINE	101
#endif
#define PG		4096ULL
#define MEM_PATH	"/sys/devices/system/memory"
/* Only there with CONFIG_MEMORY_FAILURE, as MADV_SOFT_OFFLINE. */
#define SOFT_OFFLINE	MEM_PATH "/soft_offline_page"
#define CGROOT		"/sys/fs/cgroup"
#define HCG		CGROOT "/luo-hugetlb"
/*
 * Each try to offline a memory block: one whose pages cannot move retries
 * their migration until a signal.
 */
#define OFFLINE_MS	2000
#define MAX_BLOCKS	64
/* Free 2 MiB pool pages next to the memfd's, for the shrink to free. */
#define MM_SPARE_2M	4
/* The hugetlb cgroup's limit at the first RETRIEVE_FD: half the memfd. */
#define MM_LIMIT_PAGES	8
/* The 2 MiB page soft offline is tried on. */
#define MM_SOFT_PAGE	5

static const struct hshape mm2m = {
	.name = "mm2m", .token = 1, .kb = KB_2M, .pages = 16, .seed = 41,
	.data = PAGE_BIT(16) - 1,
};

static const struct hshape mm1g = {
	.name = "mm1g", .token = 2, .kb = KB_1G, .pages = 1, .seed = 42,
	.data = PAGE_BIT(0),
};

/* The PFNs of mm2m's pages, then mm1g's. */
#define MM_PFNS		17

/* The PFN of the page mapped at @addr, or 0. */
static __u64 pfn_of(const void *addr)
{
	__u64 pfn = 0;

	return luo_pfns(addr, PG, &pfn) ? 0 : pfn;
}

/*
 * The PFNs of the huge pages of both memfds, mapped whole at @m2 and @m1,
 * into @pfn: false if one is not mapped, or not a huge page's first.
 */
static bool mm_pfns(const char *m2, const char *m1, __u64 *pfn)
{
	bool ok = true;

	for (unsigned int i = 0; i < mm2m.pages; i++) {
		pfn[i] = pfn_of(m2 + i * HPS_2M);
		ok &= pfn[i] && !(pfn[i] % (HPS_2M / PG));
	}
	pfn[MM_PFNS - 1] = pfn_of(m1);
	ok &= pfn[MM_PFNS - 1] && !(pfn[MM_PFNS - 1] % (HPS_1G / PG));
	if (!ok)
		ksft_print_msg("pagemap: a huge page with no PFN, or not aligned (2 MiB page 0 %#llx, 1 GiB page %#llx)\n",
			       (unsigned long long)pfn[0],
			       (unsigned long long)pfn[MM_PFNS - 1]);
	return ok;
}

static bool same_pfns(const __u64 *before, const __u64 *after)
{
	bool same = true;

	for (int i = 0; i < MM_PFNS; i++) {
		if (before[i] == after[i])
			continue;
		ksft_print_msg("%s page %d moved: PFN %#llx, now %#llx\n",
			       i < MM_PFNS - 1 ? mm2m.name : mm1g.name,
			       i < MM_PFNS - 1 ? i : 0,
			       (unsigned long long)before[i],
			       (unsigned long long)after[i]);
		same = false;
	}
	return same;
}

/* Where the PFNs are, again, and the contents: unchanged. */
static bool mm_in_place(int fd2, int fd1, const char *m2, const char *m1,
			const __u64 *before, bool check_1g)
{
	__u64 now[MM_PFNS];

	return mm_pfns(m2, m1, now) && same_pfns(before, now) &&
	       shape_intact(fd2, &mm2m, mm2m.data) &&
	       (!check_1g || shape_intact(fd1, &mm1g, mm1g.data));
}

/* Write @str to nr_hugepages of the pool of @kb: 0 or -errno. */
static int pool_write(unsigned long kb, const char *str)
{
	char path[96];

	snprintf(path, sizeof(path), HUGE_DIR "/nr_hugepages", kb);
	return luo_write_file(path, str);
}

static __u64 block_bytes(void)
{
	char *s = luo_read_file(MEM_PATH "/block_size_bytes");
	__u64 size = s ? strtoull(s, NULL, 16) : 0;

	free(s);
	return size;
}

/* Add the memory blocks of @per pages holding [@pfn, @pfn + @n) to @ids. */
static int add_blocks(int *ids, int nr, __u64 pfn, __u64 n, __u64 per)
{
	for (__u64 b = pfn / per; b <= (pfn + n - 1) / per; b++) {
		int i = 0;

		while (i < nr && ids[i] != (int)b)
			i++;
		if (i == nr && nr < MAX_BLOCKS)
			ids[nr++] = b;
	}
	return nr;
}

static bool block_online(const char *state)
{
	char *s = luo_read_file(state);
	bool online = s && !strncmp(s, "online", 6);

	free(s);
	return online;
}

static void on_alarm(int sig)
{
	(void)sig;
}

/*
 * Write @str to @path, interrupted after @ms: 0, or -errno (-EINTR if
 * interrupted).  No SA_RESTART: the write returns at the signal.
 */
static int write_timed(const char *path, const char *str, int ms)
{
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	struct itimerval it = {
		.it_value = { .tv_sec = ms / 1000, .tv_usec = ms % 1000 * 1000 },
	}, stop = { 0 };
	int ret;

	sigaction(SIGALRM, &sa, &old);
	setitimer(ITIMER_REAL, &it, NULL);
	ret = luo_write_file(path, str);
	setitimer(ITIMER_REAL, &stop, NULL);
	sigaction(SIGALRM, &old, NULL);
	return ret;
}

/*
 * Try to offline each memory block holding one of the huge pages of
 * @pfn (MM_PFNS of them), *@nr blocks: false if one went offline (it is
 * onlined again, in its zone), or was not there and online to be tried.
 */
static bool offline_refused(const __u64 *pfn, int *nr)
{
	__u64 per = block_bytes() / PG;
	int ids[MAX_BLOCKS], n = 0, ret;
	char path[96], *zones;
	bool ok = true;
	long long t;

	*nr = 0;
	if (!per) {
		ksft_print_msg("no %s/block_size_bytes: no memory hotplug?\n",
			       MEM_PATH);
		return false;
	}
	for (int i = 0; i < MM_PFNS - 1; i++)
		n = add_blocks(ids, n, pfn[i], HPS_2M / PG, per);
	n = add_blocks(ids, n, pfn[MM_PFNS - 1], HPS_1G / PG, per);
	*nr = n;
	for (int b = 0; b < n; b++) {
		snprintf(path, sizeof(path), MEM_PATH "/memory%d/valid_zones",
			 ids[b]);
		zones = luo_read_file(path);
		snprintf(path, sizeof(path), MEM_PATH "/memory%d/state", ids[b]);
		if (!zones || !block_online(path)) {
			ksft_print_msg("memory%d: not there, or not online\n",
				       ids[b]);
			free(zones);
			ok = false;
			continue;
		}
		zones[strcspn(zones, "\n")] = '\0';
		t = now_us();
		ret = write_timed(path, "offline", OFFLINE_MS);
		ksft_print_msg("memory%d (%s): offline %s after %lld ms\n",
			       ids[b], zones, !ret ? "done" :
			       ret == -EINTR ? "interrupted" : strerror(-ret),
			       (now_us() - t) / 1000);
		if (!ret) {
			ksft_print_msg("memory%d went offline with preserved huge pages in it\n",
				       ids[b]);
			ok = false;
			if (luo_write_file(path, strstr(zones, "Movable") ?
					   "online_movable" : "online"))
				ksft_print_msg("memory%d: cannot online it again\n",
					       ids[b]);
		}
		free(zones);
	}
	return ok;
}

/*
 * Poison the first page of @fd from a child: memory_failure() kills the
 * task that asked, with SIGBUS.  Returns 0, or the madvise() error.
 */
static int poison_page(int fd)
{
	int status, ret;
	pid_t pid;
	char *m;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		m = mmap(NULL, HPS_2M, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
			 0);
		if (m == MAP_FAILED)
			_exit(ENOMEM);
		memset(m, 0x5a, HPS_2M);
		ret = madvise(m, getpagesize(), MADV_HWPOISON) ? errno : 0;
		_exit(ret);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -errno;
	if (WIFSIGNALED(status))
		return WTERMSIG(status) == SIGBUS ? 0 : -EINTR;
	return -WEXITSTATUS(status);
}

/*
 * A memfd whose page has a hardware memory error: hugetlbfs keeps the page
 * in the page cache, and the next kernel must not get it.
 */
static void poisoned_refused(int sfd)
{
	const char *what =
		"a poisoned 2 MiB page (MADV_HWPOISON): PRESERVE_FD gets EHWPOISON";
	int fd, ret;

	if (access(SOFT_OFFLINE, F_OK)) {
		ksft_test_result_skip("%s: no CONFIG_MEMORY_FAILURE\n", what);
		return;
	}
	fd = memfd_create("hpoison", MFD_HUGETLB | MFD_HUGE_2MB);
	if (fd < 0 || ftruncate(fd, HPS_2M)) {
		result(false, "%s: memfd: %s", what, strerror(errno));
		return;
	}
	ret = poison_page(fd);
	if (ret)
		ksft_print_msg("MADV_HWPOISON: %s\n", strerror(-ret));
	else
		ret = luo_preserve_fd(sfd, fd, 999);
	if (ret != -EHWPOISON)
		ksft_print_msg("PRESERVE_FD of the poisoned memfd: %s\n",
			       strerror(-ret));
	close(fd);
	result(ret == -EHWPOISON, "%s", what);
}

static void mm_0(void)
{
	__u64 before[MM_PFNS];
	char *m2, *m1;
	int sfd, fd2, fd1, blocks = 0, ret, ret1;
	bool ok;

	ksft_set_plan(5);
	/* The gigantic page first, while memory is least fragmented. */
	pool_setup(KB_1G, 1, CORE_MEM_KB);
	pool_setup(KB_2M, mm2m.pages + MM_SPARE_2M + 1, CORE_MEM_KB);
	sfd = luo_must_create_session(dev, "hugetlb-mm");
	fd2 = shape_new(&mm2m);
	fd1 = shape_new(&mm1g);
	ok = shape_put(fd2, &mm2m, mm2m.data) &&
	     shape_put(fd1, &mm1g, mm1g.data) &&
	     shape_intact(fd2, &mm2m, mm2m.data) &&
	     luo_keep(sfd, fd2, mm2m.token) && luo_keep(sfd, fd1, mm1g.token) &&
	     luo_settled(sfd, mm2m.token) && luo_settled(sfd, mm1g.token);
	/*
	 * Where the pages are once settled (pages in the movable zone have
	 * moved out of it): mapped whole, and kept so, for their PFNs.
	 */
	m2 = mmap(NULL, mm2m.pages * HPS_2M, PROT_READ,
		  MAP_SHARED | MAP_POPULATE, fd2, 0);
	m1 = mmap(NULL, HPS_1G, PROT_READ, MAP_SHARED | MAP_POPULATE, fd1, 0);
	ok = ok && m2 != MAP_FAILED && m1 != MAP_FAILED &&
	     mm_pfns(m2, m1, before);
	result(ok, "mm: a 2 MiB memfd of 16 pages and a 1 GiB memfd written, preserved, settled, mapped");
	if (!ok)
		luo_kexec_next();
	pool_print(KB_2M, "preserved");
	pool_print(KB_1G, "preserved");

	poisoned_refused(sfd);

	ret = pool_write(KB_2M, "0");
	ret1 = pool_write(KB_1G, "0");
	if (ret || ret1)
		ksft_print_msg("nr_hugepages 0: %s (2 MiB), %s (1 GiB)\n",
			       strerror(-ret), strerror(-ret1));
	pool_print(KB_2M, "shrunk to 0");
	pool_print(KB_1G, "shrunk to 0");
	ok = luo_huge_val(KB_2M, "nr_hugepages") == mm2m.pages &&
	     luo_huge_val(KB_2M, "free_hugepages") == 0 &&
	     luo_huge_val(KB_1G, "nr_hugepages") == 1 &&
	     luo_huge_val(KB_1G, "free_hugepages") == 0 &&
	     mm_in_place(fd2, fd1, m2, m1, before, true);
	result(ok, "while preserved: both pools shrunk to 0 keep the pages in use (16 of 2 MiB, one of 1 GiB), none free; in place, intact");

	ok = offline_refused(before, &blocks) &&
	     mm_in_place(fd2, fd1, m2, m1, before, true);
	result(ok, "while preserved: offlining the %d memory blocks that hold the huge pages fails or does not end; the pages stay in place, intact",
	       blocks);

	if (access(SOFT_OFFLINE, F_OK)) {
		ksft_test_result_skip("while preserved: soft offline of a 2 MiB page: no CONFIG_MEMORY_FAILURE (%s: %s)\n",
				      SOFT_OFFLINE, strerror(errno));
	} else {
		ret = madvise(m2 + MM_SOFT_PAGE * HPS_2M, HPS_2M,
			      MADV_SOFT_OFFLINE) ? -errno : 0;
		ksft_print_msg("MADV_SOFT_OFFLINE of 2 MiB page %d: %s\n",
			       MM_SOFT_PAGE, ret ? strerror(-ret) : "done");
		result(mm_in_place(fd2, fd1, m2, m1, before, false),
		       "while preserved: soft offline of a 2 MiB page fails or leaves it in place; intact");
	}
	pool_print(KB_2M, "at the reboot");
	pool_print(KB_1G, "at the reboot");
	luo_kexec_next();
}

/* A file of the hugetlb cgroup, as a number, or -1. */
static long long hcg_val(const char *file)
{
	char path[128], *s;
	long long n;

	snprintf(path, sizeof(path), HCG "/%s", file);
	s = luo_read_file(path);
	n = s ? atoll(s) : -1;
	free(s);
	return n;
}

static int hcg_write(const char *file, const char *str)
{
	char path[128];

	snprintf(path, sizeof(path), HCG "/%s", file);
	return luo_write_file(path, str);
}

/*
 * Into a new cgroup v2 child with the hugetlb controller and @max bytes
 * of 2 MiB pages: cgroup2 mounted if need be.  The config has
 * CONFIG_CGROUP_HUGETLB: a cgroup that cannot be had fails the test.
 */
static void hcg_enter(unsigned long long max)
{
	char *ctl, str[32];
	bool has;
	int ret;

	mkdir(CGROOT, 0755);
	if (access(CGROOT "/cgroup.controllers", F_OK) &&
	    mount("cgroup2", CGROOT, "cgroup2", 0, NULL))
		luo_bail("mount cgroup2 on %s: %s", CGROOT, strerror(errno));
	ctl = luo_read_file(CGROOT "/cgroup.controllers");
	has = ctl && strstr(ctl, "hugetlb");
	if (ctl)
		ctl[strcspn(ctl, "\n")] = '\0';
	if (!has)
		luo_bail("no hugetlb controller: cgroup.controllers '%s'",
			 ctl ? ctl : "(unreadable)");
	free(ctl);
	ret = luo_write_file(CGROOT "/cgroup.subtree_control", "+hugetlb");
	if (ret)
		luo_bail("+hugetlb in cgroup.subtree_control: %s",
			 strerror(-ret));
	if (mkdir(HCG, 0755) && errno != EEXIST)
		luo_bail("mkdir %s: %s", HCG, strerror(errno));
	snprintf(str, sizeof(str), "%llu", max);
	ret = hcg_write("hugetlb.2MB.max", str);
	if (!ret)
		ret = hcg_write("cgroup.procs", "0");
	if (ret)
		luo_bail("hugetlb cgroup %s, limit %s: %s", HCG, str,
			 strerror(-ret));
}

static void mm_1(void)
{
	long long cur2, cur1;
	int sfd, fd2 = -1, fd1, ret;

	ksft_set_plan(8);
	result(pool_is(KB_2M, 0, 0) && pool_is(KB_1G, 0, 0),
	       "no hugetlb pool at boot");
	hcg_enter(MM_LIMIT_PAGES * HPS_2M);
	sfd = luo_must_retrieve_session(dev, "hugetlb-mm");

	ret = luo_retrieve_fd(sfd, mm2m.token, &fd2);
	cur2 = hcg_val("hugetlb.2MB.current");
	ksft_print_msg("RETRIEVE_FD with room for %d pages in the cgroup: %s; hugetlb.2MB.current %lld\n",
		       MM_LIMIT_PAGES, ret ? strerror(-ret) : "done", cur2);
	if (ret)
		fd2 = -1;
	pool_print(KB_2M, "after the refused RETRIEVE_FD");
	result(ret == -ENOMEM && pool_is(KB_2M, 0, 0) && pool_is(KB_1G, 0, 0) &&
	       !cur2,
	       "RETRIEVE_FD in a hugetlb cgroup with room for 8 of its 16 pages: ENOMEM; nr_hugepages still 0, none free, nothing charged");

	ret = hcg_write("hugetlb.2MB.max", "max");
	if (ret)
		ksft_print_msg("hugetlb.2MB.max: %s\n", strerror(-ret));
	if (fd2 < 0)
		fd2 = luo_take(sfd, mm2m.token);
	cur2 = hcg_val("hugetlb.2MB.current");
	ksft_print_msg("hugetlb.2MB.current %lld\n", cur2);
	result(!ret && fd2 >= 0 && pool_is(KB_2M, mm2m.pages, 0) &&
	       cur2 == (long long)(mm2m.pages * HPS_2M),
	       "limit lifted: RETRIEVE_FD works; 16 pool pages in use, hugetlb.2MB.current 32 MiB");
	result(shape_intact(fd2, &mm2m, mm2m.data),
	       "the 2 MiB memfd: every byte of its 16 pages intact");

	fd1 = luo_take(sfd, mm1g.token);
	cur1 = hcg_val("hugetlb.1GB.current");
	ksft_print_msg("hugetlb.1GB.current %lld\n", cur1);
	result(fd1 >= 0 && pool_is(KB_1G, 1, 0) && cur1 == (long long)HPS_1G &&
	       shape_intact(fd1, &mm1g, mm1g.data),
	       "the 1 GiB memfd: retrieved, a pool page in use charged to the cgroup, every byte intact");
	result(!luo_finish(sfd), "finish");
	close(sfd);
	close(fd2);
	close(fd1);
	cur2 = hcg_val("hugetlb.2MB.current");
	cur1 = hcg_val("hugetlb.1GB.current");
	ksft_print_msg("closed: hugetlb.2MB.current %lld, hugetlb.1GB.current %lld\n",
		       cur2, cur1);
	result(pool_is(KB_2M, mm2m.pages, mm2m.pages) && pool_is(KB_1G, 1, 1) &&
	       !cur2 && !cur1,
	       "closed: every page a free pool page, uncharged");
	luo_write_file(CGROOT "/cgroup.procs", "0");
	rmdir(HCG);
	result(pool_set(KB_2M, 0) && pool_set(KB_1G, 0) &&
	       pool_is(KB_2M, 0, 0) && pool_is(KB_1G, 0, 0),
	       "the pools shrink to 0");
	ksft_finished();
}

/* ---- nosize ---- */

/* The next kernel's CPU has no 1 GiB pages: no hstate of them. */
#define NO_1G		"clearcpuid=pdpe1gb"
#define NS_SHMEM	3
/* Most of the 1 GiB page: a few MiB may sit in per-CPU lists. */
#define NS_FREED_KB	((long)(HPS_1G / 1024 * 15 / 16))

static const struct hshape ns1g = {
	.name = "ns1g", .token = 1, .kb = KB_1G, .pages = 1, .seed = 51,
	.data = PAGE_BIT(0),
};

static const struct hshape ns2m = {
	.name = "ns2m", .token = 2, .kb = KB_2M, .pages = 4, .seed = 52,
	.data = PAGE_BIT(4) - 1,
};

static void nosize_0(void)
{
	int sfd, fd1, fd2, shfd;
	bool ok;

	ksft_set_plan(2);
	pool_setup(KB_1G, 1, CORE_MEM_KB);
	pool_setup(KB_2M, ns2m.pages, CORE_MEM_KB);
	sfd = luo_must_create_session(dev, "hugetlb-nosize");
	fd1 = shape_new(&ns1g);
	fd2 = shape_new(&ns2m);
	shfd = memfd_create("hshmem", 0);
	ok = shape_put(fd1, &ns1g, ns1g.data) &&
	     shape_put(fd2, &ns2m, ns2m.data) &&
	     shape_intact(fd1, &ns1g, ns1g.data) &&
	     shape_intact(fd2, &ns2m, ns2m.data) &&
	     shfd >= 0 && !luo_put(shfd, 0, SHMEM_SIZE, SHMEM_SEED);
	result(ok, "nosize: a 1 GiB, a 2 MiB and a shmem memfd written");
	result(luo_keep(sfd, fd1, ns1g.token) && luo_keep(sfd, fd2, ns2m.token) &&
	       luo_keep(sfd, shfd, NS_SHMEM),
	       "nosize: preserved, to a kernel booted with " NO_1G);
	luo_kexec_next_with(NO_1G);
}

static void nosize_1(void)
{
	int sfd, fd = -1, fd2, shfd, ret, again;
	long free0, free1;
	char path[96], *cmdline;
	bool no1g;

	ksft_set_plan(7);
	snprintf(path, sizeof(path), HUGE_DIR, KB_1G);
	no1g = access(path, F_OK) && errno == ENOENT;
	result(no1g, "booted with " NO_1G ": no hugetlb pages of 1 GiB");
	if (!no1g) {
		cmdline = luo_read_file("/proc/cmdline");
		ksft_exit_fail_msg("test setup failed: %s exists although the kernel was booted with %s (command line: %s), there is nothing to test\n",
				   path, NO_1G, cmdline ? cmdline : "?");
	}
	result(pool_is(KB_2M, 0, 0), "no 2 MiB pool at boot");
	sfd = luo_must_retrieve_session(dev, "hugetlb-nosize");

	ret = luo_retrieve_fd(sfd, ns1g.token, &fd);
	if (!ret)
		close(fd);
	again = luo_retrieve_fd(sfd, ns1g.token, &fd);
	if (!again)
		close(fd);
	ksft_print_msg("RETRIEVE_FD of the 1 GiB memfd: %s, then %s\n",
		       ret ? strerror(-ret) : "done",
		       again ? strerror(-again) : "done");
	result(ret == -EOPNOTSUPP && again == -EOPNOTSUPP,
	       "RETRIEVE_FD of the 1 GiB memfd: EOPNOTSUPP, and again");

	fd2 = luo_take(sfd, ns2m.token);
	result(fd2 >= 0 && pool_is(KB_2M, ns2m.pages, 0) &&
	       shape_intact(fd2, &ns2m, ns2m.data),
	       "the 2 MiB memfd: retrieved, its 4 pages pool pages in use, intact");
	shfd = luo_take(sfd, NS_SHMEM);
	result(shmem_intact(shfd), "the shmem memfd: intact, still tmpfs");

	free0 = luo_free_kb();
	ret = luo_finish(sfd);
	free1 = luo_wait_free_kb(free0, NS_FREED_KB, 5000);
	ksft_print_msg("FINISH: %s; free %ld kB before, %ld kB after\n",
		       ret ? strerror(-ret) : "done", free0, free1);
	result(!ret && free1 - free0 >= NS_FREED_KB,
	       "FINISH works and frees the 1 GiB page to the buddy allocator (free +%ld kB)",
	       free1 - free0);
	close(sfd);
	close(fd2);
	close(shfd);
	result(pool_all_free_then_empty(KB_2M, ns2m.pages),
	       "closed: the 2 MiB pages are free pool pages; the pool shrinks to 0");
	ksft_finished();
}

/* ---- bootpool ---- */

/*
 * The next kernel's boot pools: 10 pages of 2 MiB, more than are preserved,
 * and one of 1 GiB, as many.  (Two 1 GiB pages at run time are too many for
 * the debug kernel's guest, fragmented by its early allocations.)  The
 * early lines must stay in the log buffer.
 */
#define BOOT_POOLS	"hugepagesz=1G hugepages=1 hugepagesz=2M hugepages=10 log_buf_len=4M"
#define BP_2M_BOOT	10
/* hugetlb's log line: "HugeTLB: 4 of 10 boot pages of size 2.00 MiB come..." */
#define BP_FROM		"boot pages of size "
#define BP_PREV		"come from the previous kernel"

static const struct hshape bp1g = {
	.name = "bp1g", .token = 1, .kb = KB_1G, .pages = 1, .seed = 61,
	.data = PAGE_BIT(0),
};

static const struct hshape bp2m = {
	.name = "bp2m", .token = 2, .kb = KB_2M, .pages = 4, .seed = 62,
	.data = PAGE_BIT(4) - 1,
};

static void bootpool_0(void)
{
	int sfd, fd1, fd2;

	ksft_set_plan(2);
	pool_setup(KB_1G, bp1g.pages, CORE_MEM_KB);
	pool_setup(KB_2M, bp2m.pages, CORE_MEM_KB);
	sfd = luo_must_create_session(dev, "hugetlb-bootpool");
	fd1 = shape_new(&bp1g);
	fd2 = shape_new(&bp2m);
	result(shape_put(fd1, &bp1g, bp1g.data) &&
	       shape_put(fd2, &bp2m, bp2m.data),
	       "bootpool: a 1 GiB memfd and a 2 MiB memfd of 4 pages written");
	result(luo_keep(sfd, fd1, bp1g.token) && luo_keep(sfd, fd2, bp2m.token),
	       "bootpool: preserved, to a kernel booted with " BOOT_POOLS);
	luo_kexec_next_with(BOOT_POOLS);
}

static void bootpool_1(void)
{
	char *log = luo_kernel_log();
	int sfd, fd1, fd2;

	ksft_set_plan(6);
	result(pool_is(KB_2M, BP_2M_BOOT - bp2m.pages,
		       BP_2M_BOOT - bp2m.pages) && pool_is(KB_1G, 0, 0),
	       "booted with " BOOT_POOLS ": 6 fresh 2 MiB pages, no 1 GiB one");
	result(strstr(log, "HugeTLB: 4 of 10 " BP_FROM "2.00 MiB " BP_PREV) &&
	       strstr(log, "HugeTLB: 1 of 1 " BP_FROM "1.00 GiB " BP_PREV) &&
	       !strstr(log, "HugeTLB: allocating"),
	       "the log says how many boot pool pages come from the previous kernel, and no allocation failed");
	free(log);
	sfd = luo_must_retrieve_session(dev, "hugetlb-bootpool");
	fd1 = luo_take(sfd, bp1g.token);
	fd2 = luo_take(sfd, bp2m.token);
	result(fd1 >= 0 && fd2 >= 0 && pool_is(KB_2M, BP_2M_BOOT, 6) &&
	       pool_is(KB_1G, 1, 0),
	       "retrieved: the pools are the boot pools, the restored pages in use");
	result(shape_intact(fd1, &bp1g, bp1g.data) &&
	       shape_intact(fd2, &bp2m, bp2m.data), "every byte of both intact");
	result(!luo_finish(sfd), "finish");
	close(sfd);
	close(fd1);
	close(fd2);
	result(pool_is(KB_2M, BP_2M_BOOT, BP_2M_BOOT) && pool_is(KB_1G, 1, 1) &&
	       pool_set(KB_2M, 0) && pool_set(KB_1G, 0) &&
	       pool_is(KB_2M, 0, 0) && pool_is(KB_1G, 0, 0),
	       "closed: every boot pool page free; the pools shrink to 0");
	ksft_finished();
}

/* ---- straddle ---- */

/*
 * The placement rule (Documentation/mm/memfd_preservation.rst): no huge
 * page may reach into a KHO scratch area.  What guarantees it for 1 GiB
 * pages is the page allocator: scratch areas are CMA pageblocks, and
 * alloc_contig_range() outside a CMA allocation refuses a range with one
 * (has_unmovable_pages()); a boot-time page comes from memblock before the
 * areas are placed, or, after a live update, from inside them.  The suite
 * line's machine makes KHO's global scratch area begin inside a 1 GiB
 * range whose rest is free: a pool as large as can be had must still have
 * no page reaching into an area.  The handler's own check, the backstop,
 * is tried through debugfs fail_memfd_placement.
 */
#define ST_MAX		16
#define ST_SCRATCH	"/sys/kernel/debug/kho/out/scratch_"
#define ST_FAIL		"/sys/kernel/debug/fail_memfd_placement"

enum st_kind { ST_CLEAR, ST_STRADDLE, ST_INSIDE };

static const char * const st_kinds[] = {
	"clear of the scratch areas", "reaching into one", "starting in one",
};

struct st_area {
	__u64 start, end;
};

/* KHO's scratch areas, from its debugfs: their number, or -1. */
static int st_areas(struct st_area *a, int max)
{
	char *phys = luo_read_file(ST_SCRATCH "phys");
	char *len = luo_read_file(ST_SCRATCH "len");
	char *p = phys, *l = len, *end;
	int n = 0;

	while (p && l && n < max) {
		__u64 start = strtoull(p, &end, 16);

		if (end == p)
			break;
		p = end;
		a[n].start = start;
		a[n].end = start + strtoull(l, &end, 16);
		if (end == l)
			break;
		l = end;
		n++;
	}
	if (!phys || !len)
		n = -1;
	free(phys);
	free(len);
	return n;
}

/* Where the 1 GiB range at @start stands with respect to the areas. */
static enum st_kind st_classify(__u64 start, const struct st_area *a, int n)
{
	enum st_kind k = ST_CLEAR;

	for (int i = 0; i < n; i++) {
		if (start >= a[i].start && start < a[i].end)
			return ST_INSIDE;
		if (a[i].start < start + HPS_1G && a[i].end > start)
			k = ST_STRADDLE;
	}
	return k;
}

static struct hshape st_shape(int i)
{
	static char names[ST_MAX + 1][8];

	snprintf(names[i], sizeof(names[i]), "st%d", i);
	return (struct hshape){ .name = names[i], .token = i + 1,
				.kb = KB_1G, .pages = 1, .seed = 70 + i,
				.data = 1 };
}

/* The physical address of the one page of the 1 GiB memfd @fd, or 0. */
static __u64 st_phys(int fd)
{
	volatile char *map = mmap(NULL, HPS_1G, PROT_READ, MAP_SHARED, fd, 0);
	__u64 pfn;

	if (map == MAP_FAILED)
		return 0;
	(void)map[0];
	pfn = pfn_of((const void *)map);
	munmap((void *)map, HPS_1G);
	return pfn * PG;
}

/* Is every page of [@start, @end) free (a page count of 0)? */
static bool st_all_free(__u64 start, __u64 end)
{
	static __u64 count[4096];
	int fd = open("/proc/kpagecount", O_RDONLY | O_CLOEXEC);
	__u64 pfn = start / PG, last = end / PG;
	bool free = fd >= 0;

	while (free && pfn < last) {
		size_t n = last - pfn < 4096 ? last - pfn : 4096;

		if (pread(fd, count, n * 8, pfn * 8) != (ssize_t)(n * 8))
			free = false;
		for (size_t i = 0; free && i < n; i++)
			free = !count[i];
		pfn += n;
	}
	if (fd >= 0)
		close(fd);
	return free;
}

/*
 * The 1 GiB ranges the allocator could have had but for a scratch area
 * beginning inside them: the part below the area all free.
 */
static int st_refused(const struct st_area *a, int n)
{
	int refused = 0;

	for (int i = 0; i < n; i++) {
		__u64 g = a[i].start & ~(HPS_1G - 1);

		if (g == a[i].start || st_classify(g, a, n) != ST_STRADDLE ||
		    !st_all_free(g, a[i].start))
			continue;
		ksft_print_msg("[%#llx, %#llx): free up to the scratch area at %#llx, and no pool page\n",
			       (unsigned long long)g,
			       (unsigned long long)(g + HPS_1G),
			       (unsigned long long)a[i].start);
		refused++;
	}
	return refused;
}

/* @nr pages of 1 GiB, @free of them free (a mapping may reserve one). */
static bool st_pool_is(long nr, long free)
{
	long n = luo_huge_val(KB_1G, "nr_hugepages");
	long f = luo_huge_val(KB_1G, "free_hugepages");

	if (n != nr || f != free)
		pool_print(KB_1G, "now");
	return n == nr && f == free;
}

/*
 * Have the handler take pageblock @block of a 1 GiB page (1 is the second
 * of its 512) for one in a scratch area; 0: stop.
 */
static bool st_inject(int block)
{
	char str[16];

	if (!block)
		return !luo_write_file(ST_FAIL "/probability", "0") &&
		       !luo_write_file(ST_FAIL "/block", "0");
	snprintf(str, sizeof(str), "%d", block);
	return !luo_write_file(ST_FAIL "/block", str) &&
	       !luo_write_file(ST_FAIL "/verbose", "0") &&
	       !luo_write_file(ST_FAIL "/times", "-1") &&
	       !luo_write_file(ST_FAIL "/probability", "100");
}

/* The last pageblock of a 1 GiB page, whose tail would reach an area. */
#define ST_LAST_BLOCK	((int)(HPS_1G / HPS_2M) - 1)

static void straddle_0(void)
{
	int fd[ST_MAX], kind[ST_MAX], count[3] = { 0 }, nr, na, sfd, efd = -1;
	struct hshape sh[ST_MAX], empty = st_shape(ST_MAX);
	struct st_area area[16];
	int refused, ret, victim;
	unsigned int kept = 0;
	bool inject;
	char name[LIVEUPDATE_SESSION_NAME_LENGTH];
	bool ok = true;
	__u64 phys;

	ksft_set_plan(5);
	na = st_areas(area, 16);
	if (na <= 0)
		luo_bail("no KHO scratch areas in %s*", ST_SCRATCH);
	for (int i = 0; i < na; i++)
		ksft_print_msg("KHO scratch area %d: [%#llx, %#llx)\n", i,
			       (unsigned long long)area[i].start,
			       (unsigned long long)area[i].end);
	/* Every 1 GiB range that can be had. */
	luo_write_file("/proc/sys/vm/compact_memory", "1");
	pool_set(KB_1G, ST_MAX);
	nr = luo_huge_val(KB_1G, "nr_hugepages");
	for (int i = 0; i < nr; i++) {
		sh[i] = st_shape(i);
		fd[i] = shape_new(&sh[i]);
		ok &= shape_put(fd[i], &sh[i], 1);
		phys = st_phys(fd[i]);
		ok &= phys && !(phys % HPS_1G);
		kind[i] = st_classify(phys, area, na);
		count[kind[i]]++;
		ksft_print_msg("%s: the 1 GiB page at %#llx, %s\n", sh[i].name,
			       (unsigned long long)phys, st_kinds[kind[i]]);
	}
	refused = st_refused(area, na);
	result(ok && refused && !count[ST_STRADDLE] && !count[ST_INSIDE],
	       "a pool of %d pages of 1 GiB, every one clear of the scratch areas; %d 1 GiB ranges free below an area were not taken",
	       nr, refused);
	if (!ok || count[ST_CLEAR] < 2)
		ksft_exit_fail_msg("the memory layout gave fewer than two 1 GiB pages clear of the areas: cannot go on\n");

	/*
	 * Stage 1 learns the tokens to expect from the session's name: the
	 * clear pages' memfds, but for the victim's, whose page the empty
	 * memfd (token ST_MAX + 1) gets where fault injection is.
	 */
	inject = !access("/sys/kernel/debug/fail_page_alloc", F_OK);
	victim = 0;
	while (kind[victim] != ST_CLEAR)
		victim++;
	for (int i = 0; i < nr; i++)
		if (kind[i] == ST_CLEAR && (!inject || i != victim))
			kept |= 1U << i;
	if (inject)
		kept |= 1U << ST_MAX;
	snprintf(name, sizeof(name), "hugetlb-straddle-%x", kept);
	sfd = luo_must_create_session(dev, name);
	if (!inject) {
		for (int i = 0; i < 3; i++)
			ksft_test_result_skip("the handler's refusal: no fault injection in this kernel (the debug kernel has it)\n");
		goto keep;
	}
	if (access(ST_FAIL, F_OK))
		ksft_exit_fail_msg("fault injection, but no %s\n", ST_FAIL);

	/* PRESERVE_FD's walk, the page's last pageblock taken for CMA. */
	if (!st_inject(ST_LAST_BLOCK))
		ksft_exit_fail_msg("cannot set up %s\n", ST_FAIL);
	ret = luo_preserve_fd(sfd, fd[victim], sh[victim].token);
	st_inject(0);
	result(ret == -EXDEV && luo_file_count(sfd) == 0 &&
	       shape_intact(fd[victim], &sh[victim], 1),
	       "a page whose last pageblock is taken for a scratch area's (%s): PRESERVE_FD fails with EXDEV (%s), nothing kept, the memfd intact",
	       ST_FAIL, strerror(-ret));

	/* The hook, for a page added to a preserved memfd. */
	efd = shape_new(&empty);
	ok = luo_keep(sfd, efd, empty.token);
	close(fd[victim]);
	fd[victim] = -1;
	ok = ok && st_pool_is(nr, 1) && st_inject(1);
	ok = ok && !put_range(empty.name, efd, HPS_1G, 0, HPS_1G, empty.seed);
	st_inject(0);
	result(ok && shape_meta(efd, &empty, 0) && st_pool_is(nr, 1),
	       "a page faulted into a preserved memfd, its second pageblock taken for a scratch area's: SIGBUS, the page back in the pool, the memfd still empty");
	result(put_range(empty.name, efd, HPS_1G, 0, HPS_1G, empty.seed) &&
	       st_pool_is(nr, 0),
	       "without the injection, the same fault adds the page");

keep:
	/* One in a scratch area would need a free page to move to. */
	ok = true;
	for (int i = 0; i < nr; i++)
		if (fd[i] >= 0 && kind[i] == ST_CLEAR)
			ok &= luo_keep(sfd, fd[i], sh[i].token);
	result(ok && luo_file_count(sfd) == __builtin_popcount(kept),
	       "every page clear of the areas preserved: %d memfds, session %s",
	       __builtin_popcount(kept), name);
	luo_kexec_next();
}

static void straddle_1(void)
{
	char names[4][LIVEUPDATE_SESSION_NAME_LENGTH] = { 0 }, *end;
	unsigned int kept = 0;
	__u32 count = 4;
	int sfd, fd, n = 0;
	bool ok;

	ksft_set_plan(2);
	ok = !luo_list_sessions(dev, names, &count) && count == 1 &&
	     !strncmp(names[0], "hugetlb-straddle-", 17);
	if (ok)
		kept = strtoul(names[0] + 17, &end, 16);
	if (!ok || *end || !kept)
		luo_bail("want one incoming session hugetlb-straddle-MASK (%u listed, the first '%s')",
			 count, names[0]);
	sfd = luo_must_retrieve_session(dev, names[0]);
	for (int i = 0; i <= ST_MAX; i++) {
		struct hshape sh = st_shape(i);

		if (!(kept & (1U << i)))
			continue;
		fd = luo_take(sfd, sh.token);
		ok &= fd >= 0 && shape_intact(fd, &sh, 1);
		n++;
		close(fd);
	}
	result(ok && luo_file_count(sfd) == n,
	       "the %d memfds named by the session retrieved, every byte intact, and no other",
	       n);
	result(!luo_finish(sfd) && !close(sfd) && pool_is(KB_1G, n, n) &&
	       pool_set(KB_1G, 0) && pool_is(KB_1G, 0, 0),
	       "finished and closed: %d free pool pages; the pool shrinks to 0",
	       n);
	ksft_finished();
}

/* ---- bootclamp ---- */

/* Fewer 2 MiB boot pool pages than are preserved: the count is clamped. */
#define CLAMP_POOLS	"hugepagesz=2M hugepages=2 log_buf_len=4M"

static const struct hshape bc2m = {
	.name = "bc2m", .token = 1, .kb = KB_2M, .pages = 4, .seed = 63,
	.data = PAGE_BIT(4) - 1,
};

static void bootclamp_0(void)
{
	int sfd, fd;

	ksft_set_plan(2);
	pool_setup(KB_2M, bc2m.pages, CORE_MEM_KB / 2);
	sfd = luo_must_create_session(dev, "hugetlb-bootclamp");
	fd = shape_new(&bc2m);
	result(shape_put(fd, &bc2m, bc2m.data), "a 2 MiB memfd of 4 pages written");
	result(luo_keep(sfd, fd, bc2m.token),
	       "preserved, to a kernel booted with " CLAMP_POOLS);
	luo_kexec_next_with(CLAMP_POOLS);
}

static void bootclamp_1(void)
{
	char *log = luo_kernel_log();
	int sfd, fd;

	ksft_set_plan(4);
	result(pool_is(KB_2M, 0, 0) &&
	       strstr(log, "HugeTLB: 2 of 2 " BP_FROM "2.00 MiB " BP_PREV) &&
	       !strstr(log, BP_FROM "1.00 GiB") &&
	       !strstr(log, "HugeTLB: allocating"),
	       "booted with " CLAMP_POOLS ": both boot pages come from the 4 preserved, none is allocated; no line for 1 GiB pages");
	free(log);
	sfd = luo_must_retrieve_session(dev, "hugetlb-bootclamp");
	fd = luo_take(sfd, bc2m.token);
	result(fd >= 0 && pool_is(KB_2M, bc2m.pages, 0) &&
	       shape_intact(fd, &bc2m, bc2m.data),
	       "retrieved: 4 pool pages, all in use, more than the boot pool; intact");
	result(!luo_finish(sfd), "finish");
	close(sfd);
	close(fd);
	result(pool_all_free_then_empty(KB_2M, bc2m.pages),
	       "closed: 4 free pool pages; the pool shrinks to 0");
	ksft_finished();
}

/* Stage 0 or 1 of a two-stage scenario; returns at any other stage. */
static void run_two(void (*stage0)(void), void (*stage1)(void))
{
	if (stage == 0)
		stage0();
	else if (stage == 1)
		stage1();
}

int main(int argc, char **argv)
{
	static const char * const scenarios[] = {
		"core", "core-nopreload", "hops", "big", "mm", "nosize",
		"bootpool", "bootclamp", "straddle",
	};
	const char *scenario = argc == 2 ? argv[1] : "";
	struct sigaction sa = { .sa_handler = luo_on_sigbus };
	bool known = false;

	stage = luo_stage();
	nopreload = !strcmp(scenario, "core-nopreload");
	for (size_t i = 0; i < ARRAY_SIZE(scenarios); i++)
		known |= !strcmp(scenario, scenarios[i]);
	if (!known) {
		fprintf(stderr, "%s core|core-nopreload|hops|big|mm|nosize|bootpool|bootclamp|straddle, with LUO_STAGE=N\n",
			argv[0]);
		return KSFT_FAIL;
	}
	ksft_print_header();
	if (access(LUO_DEVICE, F_OK))
		ksft_exit_skip("%s missing\n", LUO_DEVICE);
	dev = luo_open_device();
	if (dev < 0)
		ksft_exit_fail_msg("open %s: %s\n", LUO_DEVICE, strerror(-dev));
	if (sigaction(SIGBUS, &sa, NULL))
		ksft_exit_fail_msg("sigaction: %s\n", strerror(errno));
	if (!strcmp(scenario, "hops"))
		run_hops();
	else if (!strcmp(scenario, "big"))
		run_big();
	else if (!strcmp(scenario, "mm"))
		run_two(mm_0, mm_1);
	else if (!strcmp(scenario, "nosize"))
		run_two(nosize_0, nosize_1);
	else if (!strcmp(scenario, "bootpool"))
		run_two(bootpool_0, bootpool_1);
	else if (!strcmp(scenario, "bootclamp"))
		run_two(bootclamp_0, bootclamp_1);
	else if (!strcmp(scenario, "straddle"))
		run_two(straddle_0, straddle_1);
	else
		run_two(core_0, core_1);
	ksft_exit_fail_msg("no stage %d\n", stage);
}
