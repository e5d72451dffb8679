// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: fault-injection sweep.
 *
 *   liveupdate_faults     (LUO_STAGE=N, see liveupdate_test.h; debug kernel)
 *
 * Every fallible step of the LUO paths is failed in turn, fail_nth style
 * (as tools/testing/selftests/iommu/iommufd_fail_nth.c does): for n = 1,
 * 2, ... /proc/self/task/TID/fail-nth makes the n-th fault site the task
 * reaches (slab or page allocation, user copy) fail, until the operation
 * completes without reaching n sites.  KHO's own preservation tracking
 * allocates, so this also fails every KHO call on these paths.  After each
 * injected failure: the errno is a sane one (ENOMEM; EFAULT for a user
 * copy; ENOSPC, shmem's and hugetlbfs' errno for a memfd inode they
 * could not allocate), the state is exactly as before (query, debugfs live
 * counts, memfd contents, open fds; for a hugetlb memfd's RETRIEVE_FD the
 * 2 MiB pool counters too), no kernel splat, and a retry without
 * injection succeeds with intact contents.  Faults that the kernel absorbs
 * (the operation still succeeds) are counted as "absorbed".
 *
 * Each stage first sets up a pool of 2 MiB hugetlb pages (hugetlb memfds
 * take their pages from it); one that cannot be had is a failure.
 *
 * Stage 0: CREATE_SESSION, PRESERVE_FD of memfds (empty, small, THP,
 *	sparse, hugetlb) and of a test object (binds the test FLB),
 *	UNPRESERVE_FD, a write into a hole of a preserved memfd (the folio
 *	it adds is held by the handler's hook, or the add fails and the hole
 *	stays), session close; the test module's preserve failures (file and
 *	FLB); the module's freeze failures (file and FLB) fail
 *	reboot(KEXEC); the freeze swept with the test FLB's freeze failing
 *	every time, so that the reboot cannot go through meanwhile (see
 *	freeze_sweep()); kmemleak; then the real reboot.
 * Stage 1 (booted with liveupdate_preload=off, so that RETRIEVE_FD
 *	restores the folios from KHO itself): RETRIEVE_SESSION,
 *	RETRIEVE_FD (each memfd kind and test objects, a fresh preserved
 *	copy for each n), FINISH (a fresh session
 *	for each n); the module's retrieve, FLB retrieve and can_finish
 *	failures; everything finished; kmemleak.  A failed RETRIEVE_FD of
 *	the hugetlb memfd leaves the pool counters (nr, free, resv, surplus)
 *	exactly as they were; a successful one adds its pages to the pool,
 *	in use (nr_hugepages up, free_hugepages not); FINISH frees the copies
 *	never retrieved to the page allocator, not to the pool.  Prints the
 *	sites of every operation and their total.
 *
 *   liveupdate_faults device   (on the edu machine: QEMU's VT-d and edu)
 *
 * Stage 0: a memfd mapped through an iommufd the edu device is bound and
 *	attached to, the memfd preserved; PRESERVE_FD of the iommufd, then
 *	of the device, swept: after a failure neither is preserved nor
 *	frozen (an IOAS can be allocated, the device detached and attached
 *	again) and a DMA round trip works.  Both preserved, kmemleak, the
 *	reboot.
 * Stage 1: the memfd retrieved; RETRIEVE_FD of the iommufd, then of the
 *	device, swept without a retry in between (each is retrieved once):
 *	each failure leaves the file retrievable; the sweep ends at the
 *	first retrieve that succeeds (one whose injected fault was absorbed
 *	ends it early).  The device does DMA through its old IOVAs; FINISH;
 *	kmemleak.
 *
 * An allocation failure the kernel reports (warn_alloc(), vmalloc for
 * one) comes with a stack dump, which the suite's log check would take for
 * a splat: the console log level is lowered and this program reads
 * /dev/kmsg itself, failing (and printing) on any real splat.
 * Bounds: at most MAX_N sites per operation, POOL preserved copies for
 * each stage 1 sweep; either one reached fails the test.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/magic.h>
#include <linux/memfd.h>
#include <linux/reboot.h>

#include "liveupdate_test.h"
#include "liveupdate_edu.h"
#include "kselftest.h"

#define PG		4096ULL
#define MIB		(1024ULL * 1024)
#define GIB		(1024 * MIB)

/* Sites swept per operation at most: hitting it fails the test. */
#define MAX_N		400
/* Preserved copies per kind for the stage 1 sweeps (one per n). */
#define POOL		48
#define NOTES_MAGIC	0x4c55464c54533031ULL	/* "LUFLTS01" */
#define DEBUGFS		"/sys/kernel/debug"
#define KMEMLEAK	DEBUGFS "/kmemleak"
#define PRINTK		"/proc/sys/kernel/printk"
#define THP_KNOB	"/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define HUGE_DIR	"/sys/kernel/mm/hugepages/hugepages-2048kB"
#define HPS		(2 * MIB)	/* the hugetlb memfd's page size */

/* Memfd kinds; their tokens are KIND * 1000 + copy. */
enum { K_EMPTY, K_SMALL, K_THP, K_SPARSE, K_HUGE, K_OBJ, NR_KINDS };

static const char * const kind_names[NR_KINDS] = {
	"empty memfd", "small memfd", "THP memfd", "sparse memfd",
	"hugetlb memfd", "test object",
};

static const __u64 kind_size[NR_KINDS] = {
	0, 3 * PG + 100, 4 * MIB, 1 * GIB, 3 * HPS, 0,
};

/* Sparse memfd: these pages are written, the rest are holes. */
static const __u64 sparse_pages[] = { 0, 65536 + 3, 262143 };
/* ... and these pages are holes. */
static const __u64 sparse_holes[] = { 1, 65536 + 2, 262142 };

/* Hugetlb memfd: 2 MiB pages 0 and 2 are written, page 1 is a hole. */
static const __u64 huge_pages[] = { 0, 2 };
#define HUGE_HOLE	1
#define HUGE_DATA	((long)ARRAY_SIZE(huge_pages))
/*
 * Free 2 MiB pool pages beyond those the stage 0 pool copies use: the
 * PRESERVE_FD sweep's memfd, and pages for the preserved ones found in
 * KHO scratch to move into (else the reboot fails with ENOMEM).  Stage 1
 * has as many free, so that a retrieve taking a free page would show.
 */
#define HUGE_SLACK	16
#define HUGE_POOL0	(POOL * HUGE_DATA + HUGE_SLACK)

/*
 * Operations whose sites are counted (the lead quotes them); PRESERVE_FD
 * and RETRIEVE_FD in the order of the kinds.
 */
enum {
	O_CREATE, O_PRES_EMPTY, O_PRES_SMALL, O_PRES_THP, O_PRES_SPARSE,
	O_PRES_HUGE, O_PRES_OBJ, O_UNPRES_MEMFD, O_UNPRES_OBJ, O_ADD_MEMFD,
	O_CLOSE, O_FREEZE,
	O_RET_SESSION, O_RET_EMPTY, O_RET_SMALL, O_RET_THP, O_RET_SPARSE,
	O_RET_HUGE, O_RET_OBJ, O_FINISH,
	O_PRES_IOMMUFD, O_PRES_DEVICE, O_RET_DEVICE, NR_OPS,
};

static const char * const op_names[NR_OPS] = {
	"CREATE_SESSION", "PRESERVE_FD empty memfd", "PRESERVE_FD small memfd",
	"PRESERVE_FD THP memfd", "PRESERVE_FD sparse memfd",
	"PRESERVE_FD hugetlb memfd", "PRESERVE_FD test object",
	"UNPRESERVE_FD memfd", "UNPRESERVE_FD test object",
	"write into a preserved memfd", "session close", "freeze (reboot)",
	"RETRIEVE_SESSION", "RETRIEVE_FD empty memfd",
	"RETRIEVE_FD small memfd", "RETRIEVE_FD THP memfd",
	"RETRIEVE_FD sparse memfd", "RETRIEVE_FD hugetlb memfd",
	"RETRIEVE_FD test object", "FINISH",
	"PRESERVE_FD iommufd", "PRESERVE_FD device", "RETRIEVE_FD device",
};

/* Carried to stage 1 in a preserved memfd: the sites of stage 0. */
struct notes {
	__u64 magic;
	__s32 sites[NR_OPS];
};

static struct notes notes;
static int dev = -1, nth_fd = -1, kmsg_fd = -1;
static char saved_printk[64];
static bool thp_ok, huge_ok;
static int errors;	/* failures in the current sweep */

/* A failed check in a sweep: print it, count it. */
#define bad(fmt, ...) do {						\
	ksft_print_msg("FAIL: " fmt "\n", ##__VA_ARGS__);		\
	errors++;							\
} while (0)

/* ---- fault injection ---------------------------------------------- */

static int write_knob(const char *path, const char *val)
{
	int ret = luo_write_file(path, val);

	if (ret)
		ksft_print_msg("%s: %s\n", path, strerror(-ret));
	return ret;
}

/*
 * Make GFP_KERNEL slab and order-0 page allocations fail on request (both
 * skip sleeping allocations and order 0 by default), and keep the fault
 * reports quiet: the sweep checks for splats, not for injections.
 */
static void fi_setup(void)
{
	static const char * const quiet[] = {
		"failslab", "fail_page_alloc", "fail_usercopy", "fail_futex",
		"fail_function", "fail_memfd_restore",
	};
	char path[128];
	unsigned int i;

	if (write_knob(DEBUGFS "/failslab/ignore-gfp-wait", "N") ||
	    write_knob(DEBUGFS "/fail_page_alloc/ignore-gfp-wait", "N") ||
	    write_knob(DEBUGFS "/fail_page_alloc/ignore-gfp-highmem", "N") ||
	    write_knob(DEBUGFS "/fail_page_alloc/min-order", "0"))
		luo_bail("no fault injection knobs (debug kernel only)");
	for (i = 0; i < ARRAY_SIZE(quiet); i++) {
		snprintf(path, sizeof(path), DEBUGFS "/%s/verbose", quiet[i]);
		if (!access(path, F_OK))
			write_knob(path, "0");
	}
	snprintf(path, sizeof(path), "/proc/self/task/%d/fail-nth",
		 (int)syscall(SYS_gettid));
	nth_fd = open(path, O_RDWR | O_CLOEXEC);
	if (nth_fd < 0)
		luo_bail("%s: %s (debug kernel only)", path, strerror(errno));
}

/* Fail the @n-th fault site this task reaches from now on. */
static void arm(int n)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%d", n);

	if (pwrite(nth_fd, buf, len, 0) != len)
		luo_bail("arming fail-nth: %s", strerror(errno));
}

/*
 * Disarm; true if the fault was injected (fail-nth reached 0).  Reading
 * and writing fail-nth copy to and from user space, which are fault sites
 * themselves: an EFAULT there means the count was still running.
 */
static bool disarm(void)
{
	bool injected;
	char buf[16];
	ssize_t len;

	len = pread(nth_fd, buf, sizeof(buf) - 1, 0);
	if (len < 0 && errno == EFAULT) {
		injected = false;
	} else if (len <= 0) {
		luo_bail("reading fail-nth: %s", strerror(errno));
	} else {
		buf[len] = '\0';
		injected = atoi(buf) == 0;
	}
	if (pwrite(nth_fd, "0", 1, 0) != 1) {
		injected = false;
		if (pwrite(nth_fd, "0", 1, 0) != 1)
			luo_bail("disarming fail-nth: %s", strerror(errno));
	}
	return injected;
}

/* ---- kernel log ----------------------------------------------------- */

/* What the suite's log check calls a splat (harness/run-suite.py). */
static const char * const splats[] = {
	"WARNING:", "BUG:", "kernel BUG", "Oops", "Kernel panic",
	"general protection fault", "KASAN", "UBSAN", "unreferenced object",
	"possible recursive locking", "possible circular locking",
	"inconsistent lock state", "list_add corruption",
	"list_del corruption", "refcount_t:", "INFO: task ", "Call Trace:",
};

static void restore_printk(void)
{
	if (saved_printk[0])
		luo_write_file(PRINTK, saved_printk);
}

/* Hide the kernel log from the console; read it from /dev/kmsg instead. */
static void log_setup(void)
{
	char *cur = luo_read_file(PRINTK);

	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg_fd < 0 || !cur)
		luo_bail("/dev/kmsg or %s: %s", PRINTK, strerror(errno));
	lseek(kmsg_fd, 0, SEEK_END);
	snprintf(saved_printk, sizeof(saved_printk), "%d", atoi(cur));
	free(cur);
	atexit(restore_printk);
	if (luo_write_file(PRINTK, "1"))
		luo_bail("cannot lower the console log level");
}

/*
 * Read the new kernel messages; report (on stdout, so the suite sees it
 * too) every splat.  A stack dump is expected only after an allocation
 * failure report (warn_alloc()).  Returns the number of splats.
 */
static int alloc_reports;	/* allocation failure reports seen */
static bool log_quiet;		/* the detector's own probe: print nothing */

static int log_check(const char *what, int n)
{
	static bool alloc_report;
	char rec[8192], *msg, *end;
	int found = 0;
	unsigned int i;
	ssize_t len;

	for (;;) {
		len = read(kmsg_fd, rec, sizeof(rec) - 1);
		if (len < 0 && errno == EPIPE)
			continue;	/* overwritten records: go on */
		if (len <= 0)
			break;
		rec[len] = '\0';
		msg = strchr(rec, ';');
		if (!msg)
			continue;
		msg++;
		end = strchr(msg, '\n');
		if (end)
			*end = '\0';
		/* warn_alloc(): "page allocation failure: ...", "vmalloc ..." */
		if (strstr(msg, ", mode:0x") && strstr(msg, "nodemask=")) {
			alloc_report = true;
			alloc_reports++;
			continue;
		}
		for (i = 0; i < ARRAY_SIZE(splats); i++) {
			if (!strstr(msg, splats[i]))
				continue;
			if (!strcmp(splats[i], "Call Trace:") && alloc_report) {
				alloc_report = false;
				break;
			}
			if (!log_quiet)
				ksft_print_msg("kernel splat after %s n=%d: %s\n",
					       what, n, msg);
			found++;
			break;
		}
	}
	return found;
}

/*
 * The detector works: a splat-like record written to the (hidden) kernel
 * log is found.  Level 4 stays below the lowered console level.
 */
static void log_probe(void)
{
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC), found;

	log_check("before the probe", 0);
	if (fd < 0 || luo_write_str(fd, "<4>liveupdate_faults: probe, WARNING: not a real one\n"))
		luo_bail("writing to /dev/kmsg: %s", strerror(errno));
	close(fd);
	log_quiet = true;
	found = log_check("probe", 0);
	log_quiet = false;
	result(found == 1, "the kernel log check finds a probe splat (%d)",
	       found);
}

/*
 * Scan for leaks (two scans: an object is reported once it looked
 * unreferenced twice, and only when older than 5 s) and fail on reports
 * whose backtrace points into LUO, KHO or memfd code.
 */
static void kmemleak_check(const char *when)
{
	static const char * const ours[] = {
		"liveupdate", "luo_", "lut_", "kho_", "memfd", "shmem",
		"hugetlb",
	};
	char *rep, *obj, *next;
	int ours_n = 0, all = 0;
	unsigned int i;

	if (access(KMEMLEAK, W_OK)) {
		result(false, "%s: kmemleak (no %s)", when, KMEMLEAK);
		return;
	}
	sleep(6);
	if (write_knob(KMEMLEAK, "scan") || write_knob(KMEMLEAK, "scan")) {
		result(false, "%s: kmemleak scan", when);
		return;
	}
	rep = luo_read_file(KMEMLEAK);
	for (obj = rep ? strstr(rep, "unreferenced object") : NULL; obj;
	     obj = next) {
		next = strstr(obj + 1, "unreferenced object");
		if (next)
			next[-1] = '\0';
		all++;
		for (i = 0; i < ARRAY_SIZE(ours); i++) {
			if (strstr(obj, ours[i])) {
				ksft_print_msg("leak report:\n%s\n", obj);
				ours_n++;
				break;
			}
		}
	}
	free(rep);
	if (all > ours_n)
		ksft_print_msg("%s: %d other kmemleak reports\n", when,
			       all - ours_n);
	result(rep && !ours_n, "%s: no kmemleak report in LUO/KHO/memfd code",
	       when);
	/* Do not report them again at the next scan. */
	write_knob(KMEMLEAK, "clear");
}

/* ---- memfds and test objects ---------------------------------------- */

static __u64 word_at(__u64 off, __u64 seed)
{
	__u64 x = (off + 1) * 0x9e3779b97f4a7c15ULL ^ seed;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	return x ^ (x >> 29);
}

static bool put(int fd, __u64 off, __u64 len, __u64 seed)
{
	static __u64 buf[MIB / 8];
	__u64 n, i;

	while (len) {
		n = len < MIB ? len : MIB;
		for (i = 0; i < (n + 7) / 8; i++)
			buf[i] = word_at(off + i * 8, seed);
		if (pwrite(fd, buf, n, off) != (ssize_t)n)
			return false;
		off += n;
		len -= n;
	}
	return true;
}

static bool check(int fd, __u64 off, __u64 len, __u64 seed, bool zero)
{
	static __u64 buf[MIB / 8], want[MIB / 8];
	__u64 n, i;

	while (len) {
		n = len < MIB ? len : MIB;
		for (i = 0; i < (n + 7) / 8; i++)
			want[i] = zero ? 0 : word_at(off + i * 8, seed);
		if (pread(fd, buf, n, off) != (ssize_t)n ||
		    memcmp(buf, want, n))
			return false;
		off += n;
		len -= n;
	}
	return true;
}

static __u64 seed_of(int kind, int copy)
{
	return kind * 1000 + copy + 1;
}

static bool thp_available(void)
{
	return !access(THP_KNOB, W_OK);
}

/* ---- the 2 MiB hugetlb pool ----------------------------------------- */

struct hpool {
	long nr, free, resv, surplus;
};

static struct hpool huge_pool(void)
{
	struct hpool p = {
		luo_huge_val(2048, "nr_hugepages"), luo_huge_val(2048, "free_hugepages"),
		luo_huge_val(2048, "resv_hugepages"), luo_huge_val(2048, "surplus_hugepages"),
	};

	return p;
}

static void huge_print(const char *when, const struct hpool *p)
{
	ksft_print_msg("hugepages-2048kB %s: nr %ld free %ld resv %ld surplus %ld\n",
		       when, p->nr, p->free, p->resv, p->surplus);
}

/* The pool counters are @want; prints them and @want otherwise. */
static bool huge_pool_is(const char *when, const struct hpool *want)
{
	struct hpool now = huge_pool();

	if (now.nr == want->nr && now.free == want->free &&
	    now.resv == want->resv && now.surplus == want->surplus)
		return true;
	huge_print(when, &now);
	huge_print("wanted", want);
	return false;
}

/*
 * @base with @in_use more pages counted in the pool, in use: what a
 * RETRIEVE_FD of a hugetlb memfd holding that many pages does.
 */
static bool huge_pool_grew(const char *when, const struct hpool *base,
			   long in_use)
{
	struct hpool want = *base;

	want.nr += in_use;
	return huge_pool_is(when, &want);
}

/*
 * A pool of @nr free 2 MiB pages, before any hugetlb memfd uses one.
 * False (counters printed) if it cannot be had.
 */
static bool huge_setup(long nr)
{
	struct hpool now;
	char str[32];
	int ret;

	snprintf(str, sizeof(str), "%ld", nr);
	ret = luo_write_file(HUGE_DIR "/nr_hugepages", str);
	if (!ret && luo_huge_val(2048, "nr_hugepages") != nr) {
		/* Short of free 2 MiB ranges: compact, and try again. */
		luo_write_file("/proc/sys/vm/compact_memory", "1");
		ret = luo_write_file(HUGE_DIR "/nr_hugepages", str);
	}
	if (ret)
		ksft_print_msg("write %s to %s/nr_hugepages: %s\n", str,
			       HUGE_DIR, strerror(-ret));
	now = huge_pool();
	if (!ret && now.nr == nr && now.free == nr && !now.resv &&
	    !now.surplus)
		return true;
	huge_print("set up", &now);
	ksft_print_msg("wanted a pool of %ld free pages; MemTotal %ld kB, MemFree %ld kB, MemAvailable %ld kB\n",
		       nr, luo_meminfo_kb("MemTotal"), luo_meminfo_kb("MemFree"),
		       luo_meminfo_kb("MemAvailable"));
	return false;
}

/* ---- hugetlb memfd contents ------------------------------------------ */

/*
 * hugetlbfs has no write(2): the pages are written and checked through a
 * shared mapping of each (a hole is never mapped, which would allocate a
 * page, but read).  A fault that finds no page and no pool page for it
 * raises SIGBUS: a failed check, not a crash.
 */

/* Huge page @idx mapped at @p: filled, or checked into @bad. */
struct hspan {
	__u64 *p, idx, seed, bad;
};

static void hspan_fill(struct hspan *sp)
{
	for (__u64 i = 0; i < HPS / 8; i++)
		sp->p[i] = word_at(sp->idx * HPS + i * 8, sp->seed);
}

static void hspan_check(struct hspan *sp)
{
	for (__u64 i = 0; i < HPS / 8; i++) {
		if (sp->p[i] != word_at(sp->idx * HPS + i * 8, sp->seed)) {
			sp->bad = i;
			return;
		}
	}
}

/* Everything through @sp, so that nothing a jump back needs is in a register. */
static bool hspan_guarded(struct hspan *sp, bool write)
{
	if (sigsetjmp(luo_bus_env, 1)) {
		luo_bus_armed = 0;
		return false;
	}
	luo_bus_armed = 1;
	if (write)
		hspan_fill(sp);
	else
		hspan_check(sp);
	luo_bus_armed = 0;
	return true;
}

/* Write (@write) or check 2 MiB page @idx of @fd with the pattern of @seed. */
static bool huge_page_op(int fd, __u64 idx, __u64 seed, bool write)
{
	struct hspan sp = { .idx = idx, .seed = seed, .bad = HPS / 8 };
	bool ok;
	void *map;

	map = mmap(NULL, HPS, write ? PROT_READ | PROT_WRITE : PROT_READ,
		   MAP_SHARED, fd, idx * HPS);
	if (map == MAP_FAILED) {
		ksft_print_msg("hugetlb memfd: mmap of page %llu: %s\n",
			       (unsigned long long)idx, strerror(errno));
		return false;
	}
	sp.p = map;
	ok = hspan_guarded(&sp, write);
	if (!ok)
		ksft_print_msg("hugetlb memfd: SIGBUS in page %llu\n",
			       (unsigned long long)idx);
	else if (sp.bad != HPS / 8)
		ksft_print_msg("hugetlb memfd: byte %#llx of page %llu is %#llx, want %#llx\n",
			       (unsigned long long)(sp.bad * 8),
			       (unsigned long long)idx,
			       (unsigned long long)sp.p[sp.bad],
			       (unsigned long long)word_at(idx * HPS + sp.bad * 8,
							  seed));
	ok = ok && sp.bad == HPS / 8;
	munmap(map, HPS);
	return ok;
}

/*
 * A hugetlbfs file of 2 MiB blocks holding its two pages and no other
 * (st_blocks, before anything is mapped), these intact, the hole zeros.
 */
static bool huge_intact(int fd, __u64 seed)
{
	struct statfs sf = { 0 };
	struct stat st = { 0 };
	unsigned int i;

	if (fstatfs(fd, &sf) || (__u32)sf.f_type != HUGETLBFS_MAGIC ||
	    (__u64)sf.f_bsize != HPS || fstat(fd, &st) ||
	    (__u64)st.st_blocks != HUGE_DATA * HPS / 512) {
		ksft_print_msg("hugetlb memfd: file system %#lx, block size %ld, %lld blocks; want %#x, %llu, %llu\n",
			       (unsigned long)sf.f_type, (long)sf.f_bsize,
			       (long long)st.st_blocks, HUGETLBFS_MAGIC,
			       (unsigned long long)HPS,
			       (unsigned long long)(HUGE_DATA * HPS / 512));
		return false;
	}
	for (i = 0; i < ARRAY_SIZE(huge_pages); i++)
		if (!huge_page_op(fd, huge_pages[i], seed, false))
			return false;
	if (!check(fd, HUGE_HOLE * HPS, HPS, 0, true)) {
		ksft_print_msg("hugetlb memfd: page %d is not a hole of zeros\n",
			       HUGE_HOLE);
		return false;
	}
	return true;
}

/* A memfd of @kind holding the pattern of @seed. */
static int new_memfd(int kind, __u64 seed)
{
	int fd = memfd_create(kind_names[kind], kind == K_HUGE ?
			      MFD_HUGETLB | MFD_HUGE_2MB : 0);
	unsigned int i;
	void *p;

	if (fd < 0 || ftruncate(fd, kind_size[kind]))
		luo_bail("memfd %s: %s", kind_names[kind], strerror(errno));
	switch (kind) {
	case K_SMALL:
		if (!put(fd, 0, kind_size[kind], seed))
			luo_bail("writing the small memfd");
		break;
	case K_THP:
		/* Faulted in through a MADV_HUGEPAGE mapping: huge folios. */
		p = mmap(NULL, kind_size[kind], PROT_READ | PROT_WRITE,
			 MAP_SHARED, fd, 0);
		if (p == MAP_FAILED)
			luo_bail("mmap THP memfd: %s", strerror(errno));
		madvise(p, kind_size[kind], MADV_HUGEPAGE);
		for (i = 0; i < kind_size[kind] / 8; i++)
			((__u64 *)p)[i] = word_at(i * 8, seed);
		munmap(p, kind_size[kind]);
		break;
	case K_SPARSE:
		for (i = 0; i < ARRAY_SIZE(sparse_pages); i++)
			if (!put(fd, sparse_pages[i] * PG, PG, seed + i))
				luo_bail("writing the sparse memfd");
		break;
	case K_HUGE:
		for (i = 0; i < ARRAY_SIZE(huge_pages); i++)
			if (!huge_page_op(fd, huge_pages[i], seed, true))
				luo_bail("writing the hugetlb memfd");
		break;
	}
	return fd;
}

/* Does memfd @fd of @kind hold its pattern, size and holes? */
static bool memfd_intact(int fd, int kind, __u64 seed)
{
	struct stat st;
	unsigned int i;

	if (fstat(fd, &st) || (__u64)st.st_size != kind_size[kind])
		return false;
	switch (kind) {
	case K_SMALL:
	case K_THP:
		return check(fd, 0, kind_size[kind], seed, false);
	case K_SPARSE:
		for (i = 0; i < ARRAY_SIZE(sparse_pages); i++)
			if (!check(fd, sparse_pages[i] * PG, PG, seed + i,
				   false) ||
			    !check(fd, sparse_holes[i] * PG, PG, 0, true))
				return false;
		return true;
	case K_HUGE:
		return huge_intact(fd, seed);
	}
	return true;
}

/* Kinds that have pool copies and are swept (THP and hugetlb may not). */
static bool kind_ok(int kind)
{
	return (kind != K_THP || thp_ok) && (kind != K_HUGE || huge_ok);
}

static int new_object(__u64 value)
{
	int fd = luo_test_new(value);

	if (fd < 0)
		luo_bail("test object: %s", strerror(-fd));
	return fd;
}

/* The state of @token in @sfd, or 0 if it is not there. */
static __u32 file_state(int sfd, __u64 token)
{
	/* Room for the biggest session here (the stage 1 pool). */
	static struct liveupdate_file_info files[NR_KINDS * POOL + 8];
	__u32 kind = 0, count = ARRAY_SIZE(files), i;

	if (luo_query(sfd, &kind, files, &count))
		return 0;
	for (i = 0; i < count && i < ARRAY_SIZE(files); i++) {
		if (files[i].token != token)
			continue;
		/* Preserved either way: a memfd may still be moving pages. */
		if (files[i].state == LIVEUPDATE_FILE_SETTLING)
			return LIVEUPDATE_FILE_PRESERVED;
		return files[i].state;
	}
	return 0;
}

static void preserve(int sfd, int fd, __u64 token)
{
	int ret = luo_preserve_fd(sfd, fd, token);

	if (ret)
		luo_bail("preserving %llu: %s", (unsigned long long)token,
			 strerror(-ret));
}

/* Open fds of this process (a failure must not leak one). */
static int nr_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	int n = 0;

	if (!dir)
		luo_bail("/proc/self/fd: %s", strerror(errno));
	while (readdir(dir))
		n++;
	closedir(dir);
	return n;
}

/* ---- the sweep ------------------------------------------------------ */

/*
 * One operation to sweep.  setup() brings the state to "before" (not
 * injected), run() is the operation (injected), same() checks after a
 * failure that nothing changed, done() checks after a success that the
 * operation took effect, undo() goes back to the baseline.
 */
struct op {
	int id;
	void (*setup)(void);
	int (*run)(void);
	bool (*same)(int err);
	bool (*done)(void);
	void (*undo)(void);
};

static bool sane_errno(int err)
{
	/*
	 * Allocation failures, user copies (fail_usercopy), and shmem's
	 * ENOSPC for a memfd's inode that could not be allocated.
	 */
	return err == -ENOMEM || err == -EFAULT || err == -ENOSPC;
}

/* Sweep @op over n = 1, 2, ...; returns the number of sites. */
static int sweep(const struct op *op)
{
	const char *name = op_names[op->id];
	int n, ret, fds, tolerated = 0;
	bool injected = true;

	errors = 0;
	log_check("before", 0);
	for (n = 1; injected && errors < 5; n++) {
		if (n > MAX_N) {
			bad("%s: more than %d sites", name, MAX_N);
			break;
		}
		if (op->setup)
			op->setup();
		fds = nr_fds();
		arm(n);
		ret = op->run();
		injected = disarm();
		tolerated += injected && !ret;
		if (ret && !injected)
			bad("%s n=%d: fails with no injection: %s", name, n,
			    strerror(-ret));
		if (ret && !sane_errno(ret))
			bad("%s n=%d: unexpected errno %d (%s)", name, n, -ret,
			    strerror(-ret));
		if (ret) {
			if (nr_fds() != fds)
				bad("%s n=%d: fd count %d -> %d", name, n, fds,
				    nr_fds());
			if (op->same && !op->same(ret))
				bad("%s n=%d: state changed by the failure",
				    name, n);
			ret = op->run();
			if (ret)
				bad("%s n=%d: retry fails: %s", name, n,
				    strerror(-ret));
		}
		if (!ret && op->done && !op->done())
			bad("%s n=%d: wrong state after success", name, n);
		if (log_check(name, n))
			bad("%s n=%d: kernel splat", name, n);
		if (op->undo)
			op->undo();
	}
	n--;
	ksft_print_msg("%s: %d fault sites (%d absorbed)\n", name, n - 1,
		       tolerated);
	result(!errors, "fail-nth over %s: %d sites, each failed cleanly and retried",
	       name, n - 1);
	notes.sites[op->id] = n - 1;
	return n - 1;
}

/* ---- stage 0 -------------------------------------------------------- */

static int cur_sfd = -1, cur_fd = -1, cur_kind, base_live, base_flb;
static __u64 cur_token;

static bool counts_are(int live, int flb)
{
	return luo_test_live() == live && luo_test_flb_live() == flb;
}

static int run_create(void)
{
	return luo_create_session(dev, "faults-create", &cur_sfd);
}

static bool create_done(void)
{
	return luo_file_count(cur_sfd) == 0;
}

static void close_cur(void)
{
	close(cur_sfd);
	cur_sfd = -1;
}

static int run_preserve(void)
{
	return luo_preserve_fd(cur_sfd, cur_fd, cur_token);
}

static bool unpreserved(void)
{
	return luo_file_count(cur_sfd) == 0 &&
	       counts_are(base_live, base_flb) &&
	       (cur_kind == K_OBJ ? luo_test_has_value(cur_fd, 42) :
		memfd_intact(cur_fd, cur_kind, 7));
}

static bool preserve_same(int err)
{
	(void)err;
	return unpreserved();
}

static bool preserve_done(void)
{
	return luo_file_count(cur_sfd) == 1 &&
	       file_state(cur_sfd, cur_token) == LIVEUPDATE_FILE_PRESERVED;
}

static void undo_preserve(void)
{
	int ret = luo_unpreserve_fd(cur_sfd, cur_token);

	if (ret)
		bad("unpreserve after success: %s", strerror(-ret));
	if (!unpreserved())
		bad("state after unpreserve");
}

static void setup_preserved(void)
{
	preserve(cur_sfd, cur_fd, cur_token);
}

static int run_unpreserve(void)
{
	return luo_unpreserve_fd(cur_sfd, cur_token);
}

static bool unpreserve_same(int err)
{
	(void)err;
	return preserve_done();
}

/*
 * add: a page written into a hole of the preserved sparse memfd.  The
 * folio the write adds is held by the handler's hook, or the hook fails
 * and shmem takes the folio out again: either way every page in the page
 * cache is held (debugfs: pages described plus folios pending or still to
 * move, all of order 0 here, against st_blocks).
 */
#define ADD_PAGE	(65536 + 2)	/* one of sparse_holes[] */
#define ADD_SEED	99

static bool all_held(int fd)
{
	struct luo_memfd_stats m;
	struct stat st;
	long held;

	if (!luo_memfd_stats(fd, &m) || fstat(fd, &st))
		return false;
	held = m.pages + m.pending + m.moving;
	if (held != st.st_blocks / 8)
		ksft_print_msg("%ld pages held, %lld in the page cache\n", held,
			       (long long)st.st_blocks / 8);
	return held == st.st_blocks / 8;
}

/* The work moving pages out of KHO scratch done: all_held() counts then. */
static void setup_add(void)
{
	static struct liveupdate_file_info files[1];
	__u32 kind, count, tries = 0;

	setup_preserved();
	do {
		count = ARRAY_SIZE(files);
		if (luo_query(cur_sfd, &kind, files, &count) || count != 1)
			luo_bail("QUERY of the write's session");
	} while (files[0].state == LIVEUPDATE_FILE_SETTLING &&
		 ++tries < 6000 && !usleep(10000));
}

static int run_add(void)
{
	static __u64 page[PG / 8];
	ssize_t n;

	for (unsigned int i = 0; i < PG / 8; i++)
		page[i] = word_at(ADD_PAGE * PG + i * 8, ADD_SEED);
	n = pwrite(cur_fd, page, PG, ADD_PAGE * PG);
	return n == (ssize_t)PG ? 0 : n < 0 ? -errno : -EIO;
}

/*
 * A failed write leaves a hole, or a zero page if only the user copy
 * failed (shmem keeps the folio it added, zeroed): held either way.
 */
static bool add_same(int err)
{
	(void)err;
	return preserve_done() && memfd_intact(cur_fd, K_SPARSE, 7) &&
	       all_held(cur_fd);
}

static bool add_done(void)
{
	return preserve_done() && all_held(cur_fd) &&
	       check(cur_fd, ADD_PAGE * PG, PG, ADD_SEED, false);
}

static void undo_add(void)
{
	int ret = luo_unpreserve_fd(cur_sfd, cur_token);

	if (ret)
		bad("unpreserve after a write: %s", strerror(-ret));
	if (fallocate(cur_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      ADD_PAGE * PG, PG))
		bad("punching the written page out: %s", strerror(errno));
	if (!unpreserved())
		bad("state after unpreserve");
}

/* close: a session with a memfd and a test object. */
static int close_memfd = -1, close_obj = -1;

static void setup_close(void)
{
	cur_sfd = luo_must_create_session(dev, "faults-close");
	preserve(cur_sfd, close_memfd, 1);
	preserve(cur_sfd, close_obj, 2);
}

static int run_close(void)
{
	int ret = close(cur_sfd) ? -errno : 0;

	cur_sfd = -1;
	return ret;
}

/* Everything is released: the files can be preserved elsewhere. */
static bool close_done(void)
{
	int sfd, ok;

	if (!counts_are(base_live, base_flb) ||
	    !memfd_intact(close_memfd, K_SMALL, 7) ||
	    !luo_test_has_value(close_obj, 42))
		return false;
	sfd = luo_must_create_session(dev, "faults-close");
	ok = !luo_preserve_fd(sfd, close_memfd, 1) &&
	     !luo_preserve_fd(sfd, close_obj, 2);
	close(sfd);
	return ok && counts_are(base_live, base_flb);
}

static void module_preserve_failures(void)
{
	int sfd = luo_must_create_session(dev, "faults-module"), obj = new_object(42);
	int ret;
	bool ok;

	/* The handler's preserve fails once with EXDEV. */
	luo_test_set_fail(obj, "preserve", EXDEV, 1);
	ret = luo_preserve_fd(sfd, obj, 1);
	ok = ret == -EXDEV && luo_file_count(sfd) == 0 &&
	     counts_are(base_live, base_flb);
	result(ok, "module: preserve fails with its errno, nothing kept (%d)",
	       ret);
	ok = !luo_preserve_fd(sfd, obj, 1) && luo_file_count(sfd) == 1 &&
	     !luo_unpreserve_fd(sfd, 1) && counts_are(base_live, base_flb);
	result(ok, "module: preserve retried succeeds");

	/* The FLB's preserve (first file) fails once with EIO. */
	luo_test_flb_cmd("fail=preserve,5,1");
	ret = luo_preserve_fd(sfd, obj, 1);
	ok = ret == -EIO && luo_file_count(sfd) == 0 &&
	     counts_are(base_live, base_flb);
	result(ok, "module: FLB preserve fails the file's preserve (%d)", ret);
	ok = !luo_preserve_fd(sfd, obj, 1) && luo_file_count(sfd) == 1 &&
	     luo_test_flb_live() == base_flb + 1;
	result(ok, "module: FLB preserve retried succeeds");
	close(sfd);
	close(obj);
	result(counts_are(base_live, base_flb),
	       "module: closing the session releases file and FLB");
}

/* Stage 1 pools and sessions, and the freeze sweep's checks. */
static int pool_sfd = -1, rs_sfd = -1, inj_sfd = -1, notes_fd = -1;
static int pool_fd[NR_KINDS][POOL], fin_sfd[POOL], fin_fd[POOL];
static int rs_fd[2], inj_fd[2];

static void build_next_state(void)
{
	char name[32];
	int k, i, obj;

	pool_sfd = luo_must_create_session(dev, "faults-pool");
	for (k = 0; k < NR_KINDS; k++) {
		if (!kind_ok(k))
			continue;
		for (i = 0; i < POOL; i++) {
			pool_fd[k][i] = k == K_OBJ ?
				new_object(seed_of(k, i)) :
				new_memfd(k, seed_of(k, i));
			preserve(pool_sfd, pool_fd[k][i], k * 1000 + i);
		}
	}
	notes_fd = new_memfd(K_EMPTY, 0);
	if (ftruncate(notes_fd, PG))
		luo_bail("notes memfd: %s", strerror(errno));
	preserve(pool_sfd, notes_fd, 9999);

	for (i = 0; i < POOL; i++) {
		snprintf(name, sizeof(name), "faults-fin-%d", i);
		fin_sfd[i] = luo_must_create_session(dev, name);
		fin_fd[i] = new_memfd(K_SMALL, seed_of(K_SMALL, 100 + i));
		preserve(fin_sfd[i], fin_fd[i], 1);
		/* Never retrieved: FINISH releases it. */
		obj = new_object(200 + i);
		preserve(fin_sfd[i], obj, 2);
		close(obj);
	}

	rs_sfd = luo_must_create_session(dev, "faults-rs");
	rs_fd[0] = new_memfd(K_SMALL, 77);
	rs_fd[1] = new_object(77);
	preserve(rs_sfd, rs_fd[0], 1);
	preserve(rs_sfd, rs_fd[1], 2);

	/* Module failures carried over: retrieve and can_finish, once. */
	inj_sfd = luo_must_create_session(dev, "faults-inj");
	inj_fd[0] = new_object(300);
	inj_fd[1] = new_object(301);
	luo_test_set_fail(inj_fd[0], "retrieve", EIO, 1);
	luo_test_set_fail(inj_fd[1], "can_finish", EBUSY, 1);
	preserve(inj_sfd, inj_fd[0], 1);
	preserve(inj_sfd, inj_fd[1], 2);
	luo_test_flb_cmd("fail=retrieve,5,1");
}

static bool write_notes(void)
{
	notes.magic = NOTES_MAGIC;
	return pwrite(notes_fd, &notes, sizeof(notes), 0) == sizeof(notes);
}

/* After a failed reboot: everything still preserved and intact. */
static bool still_preserved(int n)
{
	int k = n % POOL, i, kinds = 0;
	bool ok = counts_are(base_live, base_flb);

	for (i = 0; i < NR_KINDS; i++)
		kinds += kind_ok(i);
	ok &= luo_file_count(pool_sfd) == kinds * POOL + 1;
	ok &= luo_file_count(rs_sfd) == 2 && luo_file_count(inj_sfd) == 2;
	for (i = 0; i < POOL; i++)
		ok &= luo_file_count(fin_sfd[i]) == 2;
	for (i = 0; i < NR_KINDS; i++) {
		if (!kind_ok(i))
			continue;
		ok &= file_state(pool_sfd, i * 1000 + k) ==
		      LIVEUPDATE_FILE_PRESERVED;
		ok &= i == K_OBJ ?
		      luo_test_has_value(pool_fd[i][k], seed_of(i, k)) :
		      memfd_intact(pool_fd[i][k], i, seed_of(i, k));
	}
	return ok;
}

/* Still usable after a failed reboot: a file can be preserved and dropped. */
static bool usable(void)
{
	int obj = new_object(5), ret;

	ret = luo_preserve_fd(rs_sfd, obj, 3);
	if (!ret)
		ret = luo_unpreserve_fd(rs_sfd, 3);
	close(obj);
	return !ret;
}

/*
 * The freeze runs in the task calling reboot(KEXEC).  LUO does everything
 * that can fail (sizing and allocating the handover state, the handlers'
 * freezes) before the FLBs freeze, and the test FLB's freeze is made to
 * fail every time: so the reboot cannot go through while the fault sites
 * before it are swept, and an injected fault that is absorbed shows up as
 * the FLB's EIO.  Then the reboot is done for real.
 */
static void freeze_sweep(void)
{
	/* Stage 1's retrieves restore from KHO themselves: swept too. */
	static char * const load[] = {
		LUO_NEXT_STAGE, "-l", "-a", "liveupdate_preload=off", NULL
	};
	int ret, n, tolerated = 0, objfd = pool_fd[K_OBJ][1];
	bool injected = true;

	ret = luo_run(load);
	if (ret)
		luo_bail("%s -l: %d", LUO_NEXT_STAGE, ret);
	base_live = luo_test_live();
	base_flb = luo_test_flb_live();

	/* The module's failures first: a file's freeze, then the FLB's. */
	luo_test_set_fail(objfd, "freeze", EIO, 1);
	ret = luo_reboot_kexec();
	result(ret == -EIO && still_preserved(0) && usable(),
	       "module: a file's failed freeze fails the reboot (%d), all kept",
	       ret);
	luo_test_flb_cmd("fail=freeze,5,1");
	ret = luo_reboot_kexec();
	result(ret == -EIO && still_preserved(1) && usable(),
	       "module: the FLB's failed freeze fails the reboot (%d), all kept",
	       ret);

	errors = 0;
	log_check("before", 0);
	luo_test_flb_cmd("fail=freeze,5,0");
	for (n = 1; injected && errors < 5; n++) {
		if (n > MAX_N) {
			bad("freeze: more than %d sites", MAX_N);
			break;
		}
		arm(n);
		ret = luo_reboot_kexec();
		injected = disarm();
		if (ret == -EIO && injected)
			tolerated++;
		else if (!sane_errno(ret) && ret != -EIO)
			bad("freeze n=%d: unexpected result %d (%s)", n, ret,
			    strerror(-ret));
		else if (!injected && ret != -EIO)
			bad("freeze n=%d: fails with no injection: %s", n,
			    strerror(-ret));
		if (!still_preserved(n) || !usable())
			bad("freeze n=%d: state changed by the failure", n);
		if (log_check("freeze", n))
			bad("freeze n=%d: kernel splat", n);
	}
	n--;
	/* "none" clears every FLB op: re-arm the retrieve for stage 1. */
	luo_test_flb_cmd("fail=none");
	luo_test_flb_cmd("fail=retrieve,5,1");
	notes.sites[O_FREEZE] = n - 1;
	ksft_print_msg("%s: %d fault sites (%d absorbed)\n",
		       op_names[O_FREEZE], n - 1, tolerated);
	result(!errors,
	       "fail-nth over the freeze: %d sites, each failed the reboot cleanly",
	       n - 1);

	kmemleak_check("stage 0");
	ksft_print_msg("%d allocation failure reports (hidden from the console)\n",
		       alloc_reports);
	if (!write_notes())
		luo_bail("writing the notes memfd");
	fflush(stdout);
	ret = luo_reboot_kexec();
	luo_bail("reboot(KEXEC) with no injection: %s", strerror(-ret));
}

static void stage0(void)
{
	static const struct op ops[] = {
		{ O_CREATE, NULL, run_create, NULL, create_done, close_cur },
		{ O_PRES_EMPTY, NULL, run_preserve, preserve_same,
		  preserve_done, undo_preserve },
		{ O_PRES_SMALL, NULL, run_preserve, preserve_same,
		  preserve_done, undo_preserve },
		{ O_PRES_THP, NULL, run_preserve, preserve_same,
		  preserve_done, undo_preserve },
		{ O_PRES_SPARSE, NULL, run_preserve, preserve_same,
		  preserve_done, undo_preserve },
		{ O_PRES_HUGE, NULL, run_preserve, preserve_same,
		  preserve_done, undo_preserve },
		{ O_PRES_OBJ, NULL, run_preserve, preserve_same,
		  preserve_done, undo_preserve },
	};
	static const struct op unpres = {
		O_UNPRES_MEMFD, setup_preserved, run_unpreserve,
		unpreserve_same, unpreserved, NULL,
	};
	static const struct op addop = {
		O_ADD_MEMFD, setup_add, run_add, add_same, add_done,
		undo_add,
	};
	static const struct op closeop = {
		O_CLOSE, setup_close, run_close, NULL, close_done, NULL,
	};
	struct hpool pool, want;
	struct op op;
	int k, sfd;
	long thp_kb;

	ksft_set_plan(24);
	/* First, while memory is least fragmented. */
	huge_ok = huge_setup(HUGE_POOL0);
	result(huge_ok, "a pool of %ld free 2 MiB hugetlb pages set up",
	       HUGE_POOL0);
	log_probe();
	base_live = luo_test_live();
	base_flb = luo_test_flb_live();
	if (base_live < 0 || base_flb < 0)
		luo_bail("test module debugfs counts");
	module_preserve_failures();

	sweep(&ops[0]);
	sfd = luo_must_create_session(dev, "faults-sweep");
	for (k = K_EMPTY; k <= K_OBJ; k++) {
		if (k == K_THP && !thp_ok) {
			result(false, "%s: no shmem THP", op_names[O_PRES_THP]);
			continue;
		}
		if (k == K_HUGE && !huge_ok) {
			result(false, "hugetlb memfd: no 2 MiB pool");
			result(false, "%s: no 2 MiB pool", op_names[O_PRES_HUGE]);
			continue;
		}
		cur_sfd = sfd;
		cur_kind = k;
		cur_token = 10 + k;
		thp_kb = luo_meminfo_kb("ShmemHugePages");
		pool = huge_pool();
		cur_fd = k == K_OBJ ? new_object(42) : new_memfd(k, 7);
		if (k == K_THP) {
			thp_kb = luo_meminfo_kb("ShmemHugePages") - thp_kb;
			result(thp_kb * 1024 == (long)kind_size[k],
			       "THP memfd: %ld kB in huge pages", thp_kb);
		}
		if (k == K_HUGE) {
			want = pool;
			want.free -= HUGE_DATA;
			result(huge_pool_is("after writing", &want) &&
			       memfd_intact(cur_fd, k, 7),
			       "hugetlb memfd: pages 0 and 2 of 3 written from the 2 MiB pool, page 1 a hole");
		}
		sweep(&ops[k + 1]);
		if (k == K_SPARSE)
			sweep(&addop);
		if (k == K_SMALL || k == K_OBJ) {
			op = unpres;
			op.id = k == K_OBJ ? O_UNPRES_OBJ : O_UNPRES_MEMFD;
			sweep(&op);
		}
		close(cur_fd);
	}
	close(sfd);

	close_memfd = new_memfd(K_SMALL, 7);
	close_obj = new_object(42);
	sweep(&closeop);
	close(close_memfd);
	close(close_obj);

	build_next_state();
	freeze_sweep();
}

/* ---- stage 1 -------------------------------------------------------- */

static int pool_next[NR_KINDS], fin_next;
/* The 2 MiB pool before the RETRIEVE_FD of a hugetlb memfd. */
static struct hpool ret_pool;

static bool read_notes(void)
{
	int sfd, fd;

	if (luo_retrieve_session(dev, "faults-pool", &pool_sfd))
		return false;
	sfd = pool_sfd;
	if (luo_retrieve_fd(sfd, 9999, &fd))
		return false;
	notes_fd = fd;
	return pread(fd, &notes, sizeof(notes), 0) == sizeof(notes) &&
	       notes.magic == NOTES_MAGIC;
}

static int run_ret_session(void)
{
	return luo_retrieve_session(dev, "faults-rs", &cur_sfd);
}

static bool ret_session_same(int err)
{
	__u32 count = 0;

	(void)err;
	/* Still listed, and not open (the retry would fail with EBUSY). */
	return !luo_list_sessions(dev, NULL, &count) && count > 0;
}

static bool ret_session_done(void)
{
	__u32 kind = 0, count = 0;

	return !luo_query(cur_sfd, &kind, NULL, &count) &&
	       kind == LIVEUPDATE_SESSION_INCOMING && count == 2;
}

static void setup_ret_fd(void)
{
	cur_token = cur_kind * 1000 + pool_next[cur_kind];
	cur_fd = -1;
	if (cur_kind == K_HUGE)
		ret_pool = huge_pool();
}

static int run_ret_fd(void)
{
	return luo_retrieve_fd(pool_sfd, cur_token, &cur_fd);
}

static bool ret_fd_same(int err)
{
	__u32 state = file_state(pool_sfd, cur_token);
	bool ok;

	/* Only a reply that could not be written leaves it retrieved. */
	ok = state == LIVEUPDATE_FILE_INCOMING ||
	     (err == -EFAULT && state == LIVEUPDATE_FILE_RETRIEVED);
	/*
	 * A hugetlb memfd's retrieve is all or nothing: the pool exactly as
	 * before, or, retrieved after all, as after a retrieve.
	 */
	if (ok && cur_kind == K_HUGE)
		ok = huge_pool_grew("after the failed RETRIEVE_FD", &ret_pool,
				    state == LIVEUPDATE_FILE_RETRIEVED ?
				    HUGE_DATA : 0);
	return ok;
}

static bool ret_fd_done(void)
{
	int i = pool_next[cur_kind];
	__u64 seed = seed_of(cur_kind, i);

	if (file_state(pool_sfd, cur_token) != LIVEUPDATE_FILE_RETRIEVED)
		return false;
	/*
	 * Its pages join the pool, in use, taking no free page; reading
	 * them allocates none either.
	 */
	if (cur_kind == K_HUGE)
		return huge_pool_grew("after RETRIEVE_FD", &ret_pool,
				      HUGE_DATA) &&
		       memfd_intact(cur_fd, cur_kind, seed) &&
		       huge_pool_grew("after reading it", &ret_pool,
				      HUGE_DATA);
	return cur_kind == K_OBJ ? luo_test_has_value(cur_fd, seed) :
	       memfd_intact(cur_fd, cur_kind, seed);
}

static void undo_ret_fd(void)
{
	close(cur_fd);
	if (++pool_next[cur_kind] >= POOL) {
		bad("%s: pool of %d copies used up", kind_names[cur_kind],
		    POOL);
		pool_next[cur_kind] = POOL - 1;
	}
}

static void setup_finish(void)
{
	char name[32];
	int ret;

	snprintf(name, sizeof(name), "faults-fin-%d", fin_next);
	ret = luo_retrieve_session(dev, name, &cur_sfd);
	if (!ret)
		ret = luo_retrieve_fd(cur_sfd, 1, &cur_fd);
	if (ret)
		luo_bail("setting up FINISH %d: %s", fin_next, strerror(-ret));
}

static int run_finish(void)
{
	return luo_finish(cur_sfd);
}

static bool finish_same(int err)
{
	__u32 kind = 0, count = 0;

	(void)err;
	return !luo_query(cur_sfd, &kind, NULL, &count) &&
	       kind == LIVEUPDATE_SESSION_INCOMING && count == 2 &&
	       file_state(cur_sfd, 1) == LIVEUPDATE_FILE_RETRIEVED &&
	       file_state(cur_sfd, 2) == LIVEUPDATE_FILE_INCOMING &&
	       memfd_intact(cur_fd, K_SMALL, seed_of(K_SMALL, 100 + fin_next));
}

static bool finish_done(void)
{
	__u32 kind = 0, count = 0;

	return !luo_query(cur_sfd, &kind, NULL, &count) &&
	       kind == LIVEUPDATE_SESSION_OUTGOING && count == 0 &&
	       memfd_intact(cur_fd, K_SMALL, seed_of(K_SMALL, 100 + fin_next));
}

static void undo_finish(void)
{
	close(cur_sfd);
	close(cur_fd);
	if (++fin_next >= POOL) {
		bad("FINISH: pool of %d sessions used up", POOL);
		fin_next = POOL - 1;
	}
}

static void module_retrieve_failures(void)
{
	int sfd, fd = -1, ret;
	bool ok;

	if (luo_retrieve_session(dev, "faults-inj", &sfd))
		luo_bail("retrieve faults-inj");
	/* The first test file retrieved retrieves the FLB: it fails once. */
	ret = luo_retrieve_fd(sfd, 2, &fd);
	ok = ret == -EIO && file_state(sfd, 2) == LIVEUPDATE_FILE_INCOMING;
	result(ok, "module: the FLB's failed retrieve fails the file's (%d)",
	       ret);
	ok = !luo_retrieve_fd(sfd, 2, &fd) && luo_test_has_value(fd, 301);
	result(ok, "module: retried after the FLB's failure, intact");
	close(fd);
	ret = luo_retrieve_fd(sfd, 1, &fd);
	ok = ret == -EIO && file_state(sfd, 1) == LIVEUPDATE_FILE_INCOMING;
	result(ok, "module: the handler's retrieve fails (%d)", ret);
	ok = !luo_retrieve_fd(sfd, 1, &fd) && luo_test_has_value(fd, 300);
	result(ok, "module: retrieve retried, intact");
	close(fd);
	ret = luo_finish(sfd);
	ok = ret == -EBUSY && luo_file_count(sfd) == 2 &&
	     file_state(sfd, 2) == LIVEUPDATE_FILE_RETRIEVED;
	result(ok, "module: can_finish refuses: FINISH fails, nothing changes (%d)",
	       ret);
	result(!luo_finish(sfd) && luo_file_count(sfd) == 0,
	       "module: FINISH retried succeeds");
	close(sfd);
}

static void stage1(void)
{
	static const struct op retsess = {
		O_RET_SESSION, NULL, run_ret_session, ret_session_same,
		ret_session_done, close_cur,
	};
	static const struct op retfd = {
		O_RET_EMPTY, setup_ret_fd, run_ret_fd, ret_fd_same,
		ret_fd_done, undo_ret_fd,
	};
	static const struct op finish = {
		O_FINISH, setup_finish, run_finish, finish_same, finish_done,
		undo_finish,
	};
	struct hpool fin0, fin1, boot;
	int k, total = 0, i, sfd;
	struct op op;
	bool ok;

	ksft_set_plan(22);
	result(luo_memfd_preloaded() == 0,
	       "liveupdate_preload=off: no memfd was restored before its retrieve");
	/* The preserved pages join the pool only when retrieved. */
	boot = huge_pool();
	huge_print("at boot", &boot);
	ok = !boot.nr && !boot.free && !boot.resv && !boot.surplus;
	result(huge_setup(HUGE_SLACK) && ok,
	       "no 2 MiB hugetlb pool at boot; a pool of %d free pages set up",
	       HUGE_SLACK);

	result(read_notes(), "stage 0's counts read from the notes memfd");
	ksft_print_msg("%s: %d fault sites in stage 0\n",
		       op_names[O_FREEZE], notes.sites[O_FREEZE]);
	/* Stage 0 preserved hugetlb copies if it had its pool. */
	huge_ok = file_state(pool_sfd, K_HUGE * 1000) ==
		  LIVEUPDATE_FILE_INCOMING;

	module_retrieve_failures();
	sweep(&retsess);
	for (k = K_EMPTY; k <= K_OBJ; k++) {
		if (k == K_THP && !thp_ok) {
			result(false, "%s: no shmem THP", op_names[O_RET_THP]);
			continue;
		}
		if (k == K_HUGE && !huge_ok) {
			result(false, "%s: no hugetlb copies from stage 0",
			       op_names[O_RET_HUGE]);
			continue;
		}
		op = retfd;
		op.id = O_RET_EMPTY + k;
		cur_kind = k;
		sweep(&op);
	}
	sweep(&finish);

	/* Finish what is left; nothing may stay preserved. */
	fin0 = huge_pool();
	ok = !luo_finish(pool_sfd);
	fin1 = huge_pool();
	close(pool_sfd);
	close(notes_fd);
	if (!luo_retrieve_session(dev, "faults-rs", &sfd)) {
		ok &= !luo_finish(sfd);
		close(sfd);
	} else {
		ok = false;
	}
	for (i = fin_next; i < POOL; i++) {
		char name[32];

		snprintf(name, sizeof(name), "faults-fin-%d", i);
		if (luo_retrieve_session(dev, name, &sfd)) {
			ok = false;
			continue;
		}
		ok &= !luo_finish(sfd);
		close(sfd);
	}
	ok &= counts_are(0, 0);
	result(ok, "everything finished: no test object or FLB page left (%d, %d)",
	       luo_test_live(), luo_test_flb_live());
	/*
	 * The copies never retrieved go to the page allocator: nr_hugepages
	 * does not change.  The retrieved ones are closed (and their session
	 * finished): every page of the pool is free.
	 */
	huge_print("before FINISH", &fin0);
	huge_print("after FINISH", &fin1);
	result(huge_ok && fin1.nr == fin0.nr && fin1.free == fin1.nr &&
	       !fin1.resv && !fin1.surplus,
	       "FINISH frees the %d hugetlb copies never retrieved to the page allocator, not to the pool; every retrieved page a free pool page",
	       POOL - pool_next[K_HUGE]);
	result(!log_check("finishing", 0), "no kernel splat while finishing");
	/* Every memfd restored by the retrieves themselves, or by FINISH. */
	result(luo_memfd_preloaded() == 0,
	       "liveupdate_preload=off: still no memfd preloaded at the end");

	kmemleak_check("stage 1");
	ksft_print_msg("%d allocation failure reports (hidden from the console)\n",
		       alloc_reports);
	for (i = 0; i < NR_OPS; i++) {
		if (notes.sites[i] > 0)
			total += notes.sites[i];
		ksft_print_msg("sites %-28s %d\n", op_names[i],
			       notes.sites[i]);
	}
	ksft_print_msg("sites total %d\n", total);
}

/* ---- device (the edu machine) --------------------------------------- */

#define D_SESSION	"faults-device"
#define D_RAM		1
#define D_IOMMUFD	2
#define D_DEVICE	3
#define D_IOVA		0x1000000ULL	/* under edu's 28-bit DMA limit */
#define D_SIZE		(2 * MIB)
#define D_SEED		0x64657631

static struct edu d_edu = { .iommufd = -1, .devfd = -1 };
static int d_sfd = -1, d_ram = -1;

/* The memfd's first page, through the device, onto its cleared second. */
static bool d_round_trip(void)
{
	static char zero[EDU_DMA_MAX], a[EDU_DMA_MAX], b[EDU_DMA_MAX];
	int ret = pwrite(d_ram, zero, sizeof(zero), PG) == sizeof(zero) ?
		  0 : -EIO;

	if (!ret)
		ret = edu_dma(&d_edu, D_IOVA, 0, EDU_DMA_MAX, false);
	if (!ret)
		ret = edu_dma(&d_edu, D_IOVA + PG, 0, EDU_DMA_MAX, true);
	if (ret)
		ksft_print_msg("DMA: %s\n", strerror(-ret));
	return !ret && pread(d_ram, a, sizeof(a), 0) == sizeof(a) &&
	       pread(d_ram, b, sizeof(b), PG) == sizeof(b) &&
	       !memcmp(a, b, sizeof(a)) && memcmp(a, zero, sizeof(a));
}

/* Not preserved, nor frozen: a new IOAS can be had. */
static bool d_iommufd_free(void)
{
	__u32 id = 0;

	if (file_state(d_sfd, D_IOMMUFD) || edu_ioas_alloc(d_edu.iommufd, &id))
		return false;
	return !edu_destroy(d_edu.iommufd, id);
}

static int run_pres_iommufd(void)
{
	return luo_preserve_fd(d_sfd, d_edu.iommufd, D_IOMMUFD);
}

static bool pres_iommufd_same(int err)
{
	(void)err;
	return d_iommufd_free() && d_round_trip();
}

static bool pres_iommufd_done(void)
{
	__u32 id;

	return file_state(d_sfd, D_IOMMUFD) == LIVEUPDATE_FILE_PRESERVED &&
	       edu_ioas_alloc(d_edu.iommufd, &id) == -EBUSY;
}

static void undo_pres_iommufd(void)
{
	if (luo_unpreserve_fd(d_sfd, D_IOMMUFD) || !d_iommufd_free())
		bad("iommufd: unpreserve after success");
}

static void setup_pres_device(void)
{
	preserve(d_sfd, d_edu.iommufd, D_IOMMUFD);
}

static int run_pres_device(void)
{
	return luo_preserve_fd(d_sfd, d_edu.devfd, D_DEVICE);
}

static bool pres_device_same(int err)
{
	(void)err;
	return !file_state(d_sfd, D_DEVICE) && d_round_trip();
}

static bool pres_device_done(void)
{
	return file_state(d_sfd, D_DEVICE) == LIVEUPDATE_FILE_PRESERVED &&
	       edu_detach(&d_edu) == -EBUSY;
}

/* Both unpreserved: the device detaches and attaches again. */
static void undo_pres_device(void)
{
	int ret = luo_unpreserve_fd(d_sfd, D_DEVICE);

	if (!ret)
		ret = luo_unpreserve_fd(d_sfd, D_IOMMUFD);
	if (!ret)
		ret = edu_detach(&d_edu);
	if (!ret)
		ret = edu_attach(&d_edu, d_edu.ioas_id);
	if (ret || !d_round_trip())
		bad("device: unpreserve after success: %s", strerror(-ret));
}

static void device_stage0(void)
{
	static const struct op ops[] = {
		{ O_PRES_IOMMUFD, NULL, run_pres_iommufd, pres_iommufd_same,
		  pres_iommufd_done, undo_pres_iommufd },
		{ O_PRES_DEVICE, setup_pres_device, run_pres_device,
		  pres_device_same, pres_device_done, undo_pres_device },
	};
	static const char * const load[] = { LUO_NEXT_STAGE, "-l", NULL };
	int ret;

	ksft_set_plan(4);
	ret = edu_open(&d_edu);
	if (!ret) {
		d_ram = memfd_create("faults-device", 0);
		if (d_ram < 0 || ftruncate(d_ram, D_SIZE) ||
		    !put(d_ram, 0, D_SIZE, D_SEED))
			ret = -errno ?: -EIO;
	}
	if (!ret)
		ret = edu_map_file(d_edu.iommufd, d_edu.ioas_id, d_ram, 0,
				   D_SIZE, D_IOVA);
	if (!ret)
		ret = edu_set_master(&d_edu, true);
	if (ret)
		luo_bail("owning the edu device, mapping a memfd: %s",
			 strerror(-ret));
	d_sfd = luo_must_create_session(dev, D_SESSION);
	preserve(d_sfd, d_ram, D_RAM);
	result(d_round_trip(), "the edu device does DMA through an iommufd into a preserved memfd");
	sweep(&ops[0]);
	sweep(&ops[1]);
	preserve(d_sfd, d_edu.iommufd, D_IOMMUFD);
	preserve(d_sfd, d_edu.devfd, D_DEVICE);
	ret = luo_run(load);
	if (ret)
		luo_bail("%s -l: %d", LUO_NEXT_STAGE, ret);
	kmemleak_check("stage 0");
	fflush(stdout);
	ret = luo_reboot_kexec();
	luo_bail("reboot(KEXEC) with no injection: %s", strerror(-ret));
}

/*
 * RETRIEVE_FD of @token, failing the n-th site for n = 1, 2, ... without
 * a retry in between, as a file is retrieved once: until a retrieve
 * succeeds, the first whose injected fault was absorbed, or that reached
 * no injected site.  Each failure must leave the file retrievable.
 * Returns the fd.
 */
static int d_retrieve_sweep(__u64 token, const char *what)
{
	int n, ret = -1, fd = -1, absorbed = 0;
	bool injected = true;

	errors = 0;
	log_check("before", 0);
	for (n = 1; injected && errors < 5; n++) {
		if (n > MAX_N) {
			bad("%s: more than %d sites", what, MAX_N);
			break;
		}
		arm(n);
		ret = luo_retrieve_fd(d_sfd, token, &fd);
		injected = disarm();
		absorbed = injected && !ret;
		if (ret && !injected)
			bad("%s n=%d: fails with no injection: %s", what, n,
			    strerror(-ret));
		if (ret && !sane_errno(ret))
			bad("%s n=%d: unexpected errno %d (%s)", what, n, -ret,
			    strerror(-ret));
		/* Retrieved, but its fd not copied out: a retry gives it. */
		if (ret == -EFAULT &&
		    file_state(d_sfd, token) == LIVEUPDATE_FILE_RETRIEVED) {
			ret = luo_retrieve_fd(d_sfd, token, &fd);
			if (ret)
				bad("%s n=%d: retry after EFAULT: %s", what, n,
				    strerror(-ret));
		} else if (ret && file_state(d_sfd, token) !=
				  LIVEUPDATE_FILE_INCOMING) {
			bad("%s n=%d: state %u after the failure", what, n,
			    file_state(d_sfd, token));
		}
		if (log_check(what, n))
			bad("%s n=%d: kernel splat", what, n);
		if (!ret)
			break;
	}
	ksft_print_msg("%s: %d sites failed%s\n", what, n - 1,
		       absorbed ? ", then one absorbed ended it" : "");
	result(!errors, "fail-nth over %s: %d sites, each failed cleanly and left it retrievable",
	       what, n - 1);
	return fd;
}

/* The iommufd first, then the device, each swept. */
static void device_stage1(void)
{
	int ret, fd;

	ksft_set_plan(5);
	ret = luo_retrieve_session(dev, D_SESSION, &d_sfd);
	if (ret)
		luo_bail("retrieve session " D_SESSION ": %s", strerror(-ret));
	/* The memfd first, so that the iommufd's sweep gets past its fill. */
	ret = luo_retrieve_fd(d_sfd, D_RAM, &d_ram);
	if (ret)
		luo_bail("retrieve the memfd: %s", strerror(-ret));
	d_edu.iommufd = d_retrieve_sweep(D_IOMMUFD, "RETRIEVE_FD iommufd");
	fd = d_retrieve_sweep(D_DEVICE, op_names[O_RET_DEVICE]);
	d_edu.devfd = fd;
	ret = fd < 0 ? -EBADF : edu_map_bar(&d_edu);
	result(!ret && d_round_trip(),
	       "then retrieved: DMA through its old IOVAs, nothing mapped again");
	check_ret(luo_finish(d_sfd), 0, "FINISH");
	edu_close(&d_edu);
	close(d_ram);
	kmemleak_check("stage 1");
}

int main(int argc, char **argv)
{
	struct rlimit rl = { 8192, 8192 };
	struct sigaction sa = { .sa_handler = luo_on_sigbus };
	int stage = luo_stage();

	ksft_print_header();
	ksft_print_msg("fault sweep: stage %d, at most %d sites per operation, pools of %d\n",
		       stage, MAX_N, POOL);
	if (!luo_test_available())
		luo_bail("no %s (CONFIG_LIVEUPDATE_TEST)", LUO_TEST_DEVICE);
	setrlimit(RLIMIT_NOFILE, &rl);
	if (sigaction(SIGBUS, &sa, NULL))
		luo_bail("sigaction: %s", strerror(errno));
	dev = luo_open_device();
	if (dev < 0)
		luo_bail("%s: %s", LUO_DEVICE, strerror(-dev));
	memset(&notes, 0xff, sizeof(notes));
	thp_ok = thp_available();
	if (thp_ok)
		luo_write_file(THP_KNOB, "advise");
	fi_setup();
	log_setup();
	luo_write_file(KMEMLEAK, "clear");
	if (argc == 2 && !strcmp(argv[1], "device") && stage == 0)
		device_stage0();
	else if (argc == 2 && !strcmp(argv[1], "device") && stage == 1)
		device_stage1();
	else if (argc > 1)
		luo_bail("usage: %s [device]", argv[0]);
	else if (stage == 0)
		stage0();
	else if (stage == 1)
		stage1();
	else
		luo_bail("unexpected stage %d", stage);
	restore_printk();
	ksft_finished();
}
