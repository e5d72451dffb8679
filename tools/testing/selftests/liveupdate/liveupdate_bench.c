// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator benchmark: what preserving and retrieving costs.
 *
 *   liveupdate_bench SCENARIO ARGS...     (LUO_STAGE=0 or 1)
 *
 * One stage per boot: stage 0 sets up, preserves and kexecs (through
 * luo-next-stage, while it keeps holding its session fds); stage 1, in the
 * new kernel, retrieves, checks and finishes.  Only the first LUO interface
 * is used (CREATE_SESSION, RETRIEVE_SESSION, PRESERVE_FD, RETRIEVE_FD,
 * FINISH), so the same binary runs on any LUO kernel.
 *
 * Every page written holds a 64-bit word at its start, its index XOR
 * 0x5a5a5a5a5a5a5a5a (for the one-page memfds: the index of the file), and
 * 0xa5 bytes after it.  Scenarios and the keys they print:
 *
 * memfd SIZE_MIB [thp]  one memfd of SIZE_MIB MiB, every page written (with
 *	thp, shmem_enabled is set to "always" first), in session "bench".
 *	0: preserve_us, moved_after_us (how long after PRESERVE_FD returned
 *	   our handler was done moving pages out of KHO scratch, from its
 *	   debugfs file; upstream moves them within PRESERVE_FD and has no
 *	   such file: there it is the time of looking for it, about 1 ms
 *	   under TCG), memfree_before_kb, memfree_after_kb, preserve_kb
 *	   (MemFree consumed by preserving), cma_moved_kb (CmaFree gained:
 *	   pages moved out of KHO scratch), shmem_huge_kb (thp only).
 *	1: open_us, retrieve_session_us, retrieve_fd_us, first_read_us (read
 *	   and check the first word of every page through a shared mapping),
 *	   first_read_faults (minor faults taken doing so),
 *	   retrieve_kb (MemFree consumed from before RETRIEVE_FD to after the
 *	   first read and munmap; may be negative), finish_us, shmem_huge_kb
 *	   (thp only).
 * sparse SIZE_GIB PERCENT  a SIZE_GIB GiB memfd of which every
 *	(100 / PERCENT)-th page is written, in session "bench".
 *	0: preserve_us, memfree_before_kb, memfree_after_kb, preserve_kb,
 *	   written_pages.
 *	1: open_us, retrieve_session_us, retrieve_fd_us, check_us (pread
 *	   and check every written page), retrieve_kb (MemFree consumed from
 *	   before RETRIEVE_FD to after the check),
 *	   blocks_pages (st_blocks / 8: the host compares it with
 *	   written_pages), finish_us.
 * sessions N  N sessions "s0".."sN-1", each with one one-page memfd.
 * files N  one session "files" with N one-page memfds, tokens 1..N.
 * spread FILES SESSIONS  FILES one-page memfds dealt round-robin into
 *	SESSIONS sessions "p0".., tokens 1.. in each.
 *	0: create_preserve_us (memfd_create, write, CREATE_SESSION and
 *	   PRESERVE_FD of everything), preserve_only_us (the sum of the
 *	   CREATE_SESSION and PRESERVE_FD ioctls alone).
 *	1: open_us, retrieve_all_us (every RETRIEVE_SESSION and RETRIEVE_FD),
 *	   finish_us (FINISH of every session).  Every file is checked.
 * hugetlb SIZE_MIB PAGE_KIB  one hugetlb memfd of SIZE_MIB MiB in pages of
 *	PAGE_KIB kB (2048 or 1048576), every byte written through a shared
 *	mapping (hugetlbfs has no write(2)), in session "bench".  Stage 0 first
 *	sets the pool of that page size to SIZE_MIB / page size pages, at
 *	runtime (right after boot, while free memory is least fragmented), and
 *	fails if it does not get them.  Our kernel's handler "memfd-hugetlb"
 *	only: a kernel that cannot preserve hugetlb memfds fails PRESERVE_FD.
 *	0: as memfd (without shmem_huge_kb), and huge_pages (pages preserved).
 *	1: open_us, retrieve_session_us, retrieve_fd_us, first_touch_us (read
 *	   and check the first word of every huge page through a new shared
 *	   mapping: the first touch of each), first_touch_faults (minor faults
 *	   taken doing so), check_us (then check every byte of the memfd),
 *	   retrieve_kb (MemFree consumed from before RETRIEVE_FD to after the
 *	   check and munmap), finish_us.
 * device SIZE_MIB [nodev]  a VM with a passthrough device, on the edu
 *	machine (QEMU's VT-d and edu device; our kernel only, as others
 *	cannot preserve an iommufd or a VFIO device): guest RAM, a memfd of
 *	SIZE_MIB MiB written as memfd's, mapped (IOMMU_IOAS_MAP_FILE) at IOVA
 *	DEV_IOVA of an iommufd the device is bound and attached to; the
 *	memfd (token 1), the iommufd (2) and the device (3) preserved in
 *	session "bench".  With nodev the machine and guest RAM are the same
 *	but only the memfd is preserved: the baseline.
 *	0: preserve_us (every PRESERVE_FD); the next kernel is loaded, then
 *	   the device copies a page of guest RAM onto itself by DMA; the TSC
 *	   when that completes is kept in the memfd (the second word of page
 *	   0), and the kexec follows at once.
 *	1: open_us, retrieve_session_us, retrieve_device_us (RETRIEVE_FD of
 *	   the device, which retrieves the iommufd and the memfd it needs),
 *	   retrieve_fd_us (of the memfd: the same file by then), then the
 *	   DMA through the same IOVA, nothing mapped again: dma_gap_us, from
 *	   the completion of the last DMA before the kexec to that of the
 *	   first after it, by the TSC (it includes the 100 ms edu takes to
 *	   run a transfer); then first_read_us as memfd's, finish_us.
 *	   nodev: as memfd.
 * none  nothing preserved: the blackout baseline.
 *
 * Output, one line each, flushed at once: "luobench: KEY VALUE" with an
 * integer VALUE (microseconds for *_us keys, kB for *_kb keys, counts
 * otherwise); "luobench: kexec" just before kexecing; in stage 1
 * "luobench: retrieved" as soon as every fd is retrieved (printed before
 * the keys measured so far, since the host timestamps it for the
 * blackout) and "luobench: done" at the end.  Any failure prints
 * "luobench: error WHAT[: strerror]" and exits 1.  Times are
 * CLOCK_MONOTONIC.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/memfd.h>

#include "liveupdate_test.h"
#include "liveupdate_edu.h"

#define PAGE		4096ULL
#define MiB		(1024ULL * 1024)
#define GiB		(1024 * MiB)
/* memfd_0() writes a chunk at a time. */
#define CHUNK		MiB
#define PATTERN		0x5a5a5a5a5a5a5a5aULL
#define FILL		0xa5
#define THP_SHMEM	"/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define HUGE_NR		"/sys/kernel/mm/hugepages/hugepages-%llukB/nr_hugepages"
#define COMPACT		"/proc/sys/vm/compact_memory"
#define SESSION		"bench"
#define TOKEN		1
#define TOKEN_IOMMUFD	2
#define TOKEN_DEVICE	3
#define DEV_IOVA	0x1000000ULL	/* under edu's 28-bit DMA limit */

typedef unsigned long long u64;

static int dev = -1;
static int sfd = -1;	/* memfd and sparse: the session "bench" */

static __noreturn __printf(2, 3) void fail(int err, const char *fmt, ...)
{
	va_list ap;

	printf("luobench: error ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	if (err)
		printf(": %s", strerror(err));
	printf("\n");
	fflush(stdout);
	exit(1);
}

static void say(const char *what)
{
	printf("luobench: %s\n", what);
	fflush(stdout);
}

static void put(const char *key, long long value)
{
	printf("luobench: %s %lld\n", key, value);
	fflush(stdout);
}

/*
 * The kernel's timeline of the update (ours only: other kernels have no
 * LIVEUPDATE_IOCTL_GET_TIMELINE): tl_STEP_us, the duration of each step
 * (the freezes of all handlers added up), and from the jump to the device
 * ready, to its first open and to the last RETRIEVE_FD.
 */
static void timeline(void)
{
	static const char * const names[] = {
		[LIVEUPDATE_TL_REBOOT] = "reboot",
		[LIVEUPDATE_TL_PREPARE] = "prepare",
		[LIVEUPDATE_TL_FREEZE] = "freeze",
		[LIVEUPDATE_TL_FREEZE_FLB] = "freeze_flb",
		[LIVEUPDATE_TL_WRITE] = "write",
		[LIVEUPDATE_TL_SHUTDOWN] = "shutdown",
		[LIVEUPDATE_TL_BOOT] = "boot",
		[LIVEUPDATE_TL_KHO_RESERVE] = "kho_reserve",
		[LIVEUPDATE_TL_RESTORE] = "restore",
		[LIVEUPDATE_TL_PRELOAD] = "preload",
		[LIVEUPDATE_TL_RETRIEVE_FD] = "retrieve_fd",
	};
	struct liveupdate_timeline_step steps[64];
	long long sum[ARRAY_SIZE(names)] = { 0 }, at[LIVEUPDATE_TL_FINISH + 1];
	__u32 n = ARRAY_SIZE(steps), flags = 0, i;
	char key[64];

	if (luo_get_timeline(dev, steps, &n, &flags))
		return;
	memset(at, 0xff, sizeof(at));
	for (i = 0; i < n && i < ARRAY_SIZE(steps); i++) {
		__u32 id = steps[i].step;

		if (id < ARRAY_SIZE(names))
			sum[id] += steps[i].end_ns - steps[i].start_ns;
		if (id < ARRAY_SIZE(at))
			at[id] = id == LIVEUPDATE_TL_RETRIEVE_FD ?
				 steps[i].end_ns : steps[i].start_ns;
	}
	for (i = 0; i < ARRAY_SIZE(names); i++) {
		if (!names[i] || at[i] < 0)
			continue;
		snprintf(key, sizeof(key), "tl_%s_us", names[i]);
		put(key, sum[i] / 1000);
	}
	if (!(flags & LIVEUPDATE_TIMELINE_ONE_CLOCK))
		return;
	put("tl_to_jump_us", at[LIVEUPDATE_TL_JUMP] / 1000);
	if (at[LIVEUPDATE_TL_READY] >= 0)
		put("tl_jump_to_ready_us",
		    (at[LIVEUPDATE_TL_READY] - at[LIVEUPDATE_TL_JUMP]) / 1000);
	if (at[LIVEUPDATE_TL_OPEN] >= 0)
		put("tl_jump_to_open_us",
		    (at[LIVEUPDATE_TL_OPEN] - at[LIVEUPDATE_TL_JUMP]) / 1000);
	if (at[LIVEUPDATE_TL_RETRIEVE_FD] >= 0)
		put("tl_jump_to_retrieved_us",
		    (at[LIVEUPDATE_TL_RETRIEVE_FD] - at[LIVEUPDATE_TL_JUMP]) /
		    1000);
}

static void done(void)
{
	timeline();
	say("done");
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void put_us(const char *key, long long ns)
{
	put(key, ns / 1000);
}

/* A /proc/meminfo field, in kB. */
static long long meminfo_kb(const char *key)
{
	char *buf = luo_read_file("/proc/meminfo"), *line, *next;
	char name[64];
	long long kb;

	if (!buf)
		fail(errno ? errno : EIO, "read /proc/meminfo");
	for (line = buf; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (sscanf(line, "%63[^:]: %lld", name, &kb) == 2 &&
		    !strcmp(name, key)) {
			free(buf);
			return kb;
		}
	}
	free(buf);
	fail(ENOENT, "%s in /proc/meminfo", key);
}

/* Make room for @n open fds. */
static void raise_nofile(rlim_t n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		fail(errno, "getrlimit");
	if (rl.rlim_cur >= n)
		return;
	rl.rlim_cur = n;
	if (rl.rlim_max < n)
		rl.rlim_max = n;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		fail(errno, "setrlimit RLIMIT_NOFILE %llu", (u64)n);
}

static long long arg_num(const char *s, long long min, long long max)
{
	long long v;
	char *end;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		fail(EINVAL, "argument %s (%lld..%lld)", s, min, max);
	return v;
}

static u64 pattern(u64 idx)
{
	return idx ^ PATTERN;
}

/* A memfd of @size bytes, with MFD_CLOEXEC and @flags. */
static int make_memfd_flags(u64 size, unsigned int flags)
{
	int fd = memfd_create("bench", MFD_CLOEXEC | flags);

	if (fd < 0)
		fail(errno, "memfd_create");
	if (ftruncate(fd, size))
		fail(errno, "ftruncate %llu", size);
	return fd;
}

static int make_memfd(u64 size)
{
	return make_memfd_flags(size, 0);
}

static void write_at(int fd, const void *buf, u64 len, u64 off)
{
	ssize_t ret = pwrite(fd, buf, len, off);

	if (ret < 0 || (u64)ret != len)
		fail(ret < 0 ? errno : EIO, "write at %llu", off);
}

/* Write the page at @off: @word, then FILL. */
static void write_page(int fd, u64 off, u64 word)
{
	static u64 page[PAGE / 8];

	memset(page, FILL, sizeof(page));
	page[0] = word;
	write_at(fd, page, PAGE, off);
}

static void check_word(int fd, u64 off, u64 want, const char *what, u64 idx)
{
	ssize_t ret;
	u64 word;

	ret = pread(fd, &word, sizeof(word), off);
	if (ret != sizeof(word))
		fail(ret < 0 ? errno : EIO, "read %s %llu", what, idx);
	if (word != want)
		fail(0, "%s %llu: read %#llx, expected %#llx", what, idx, word,
		     want);
}

static void open_dev(void)
{
	dev = luo_open_device();
	if (dev < 0)
		fail(-dev, "open " LUO_DEVICE);
}

/* Time the first open of /dev/liveupdate in the new kernel. */
static long long open_dev_timed(void)
{
	long long t = now_ns();

	open_dev();
	return now_ns() - t;
}

static __noreturn void next_kernel(void)
{
	int ret;

	say("kexec");
	ret = next_stage();
	if (ret < 0)
		fail(-ret, "kexec");
	fail(0, "kexec: luo-next-stage exited with %d", ret);
}

/*
 * Our kernel's memfd handler lists what each preserved memfd's metadata
 * costs in debugfs (upstream has no such file; the host estimates its cost
 * from preserve_kb): meta_used_bytes of header and entries, meta_alloc_bytes
 * of chunks.
 */
static void put_meta(void)
{
	unsigned long long v[7];
	char line[256];
	FILE *f = fopen("/sys/kernel/debug/memfd_preserve", "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%llu %llu %llu %llu %llu %llu %llu", &v[0],
			   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]) == 7) {
			put("meta_used_bytes", v[5]);
			put("meta_alloc_bytes", v[6]);
		}
	fclose(f);
}

/*
 * Pages our memfd handler has still to move out of KHO scratch (CMA), over
 * every preserved memfd: the last column of its debugfs file.  0 where the
 * file does not exist.
 */
static long long pages_moving(void)
{
	unsigned long long v[8], sum = 0;
	char line[256];
	FILE *f = fopen("/sys/kernel/debug/memfd_preserve", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%llu %llu %llu %llu %llu %llu %llu %llu",
			   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
			   &v[7]) == 8)
			sum += v[7];
	fclose(f);
	return sum;
}

/* Stage 0 of memfd and sparse: preserve @fd into the session "bench". */
static void preserve_bench(int fd)
{
	long long before, after, cma, t;
	int ret;

	open_dev();
	ret = luo_create_session(dev, SESSION, &sfd);
	if (ret)
		fail(-ret, "create session " SESSION);
	cma = meminfo_kb("CmaFree");
	before = meminfo_kb("MemFree");
	t = now_ns();
	ret = luo_preserve_fd(sfd, fd, TOKEN);
	t = now_ns() - t;
	if (ret)
		fail(-ret, "preserve fd");
	put_us("preserve_us", t);
	t = now_ns();
	while (pages_moving()) {
		if (now_ns() - t > 600 * 1000000000LL)
			fail(0, "pages still to move out of KHO scratch after 10 minutes");
		usleep(1000);
	}
	put_us("moved_after_us", now_ns() - t);
	after = meminfo_kb("MemFree");
	/* Pages moved out of KHO scratch (CMA), freeing them. */
	put("cma_moved_kb", meminfo_kb("CmaFree") - cma);
	put("memfree_before_kb", before);
	put("memfree_after_kb", after);
	put("preserve_kb", before - after);
	put_meta();
}

/*
 * Stage 1 of memfd and sparse: retrieve the memfd of @size bytes; *@memfree
 * is MemFree just before RETRIEVE_FD.
 */
static int retrieve_bench(u64 size, long long *memfree)
{
	long long t_open, t_session, t_fd;
	struct stat st;
	int ret, fd = -1;

	t_open = open_dev_timed();
	t_session = now_ns();
	ret = luo_retrieve_session(dev, SESSION, &sfd);
	t_session = now_ns() - t_session;
	if (ret)
		fail(-ret, "retrieve session " SESSION);
	*memfree = meminfo_kb("MemFree");
	t_fd = now_ns();
	ret = luo_retrieve_fd(sfd, TOKEN, &fd);
	t_fd = now_ns() - t_fd;
	if (ret)
		fail(-ret, "retrieve fd");
	say("retrieved");
	put_us("open_us", t_open);
	put_us("retrieve_session_us", t_session);
	put_us("retrieve_fd_us", t_fd);
	if (fstat(fd, &st))
		fail(errno, "fstat");
	if ((u64)st.st_size != size)
		fail(0, "size %lld, expected %llu", (long long)st.st_size,
		     size);
	return fd;
}

static void finish_bench(void)
{
	long long t = now_ns();
	int ret = luo_finish(sfd);

	t = now_ns() - t;
	if (ret)
		fail(-ret, "finish");
	put_us("finish_us", t);
}

static long long minor_faults(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		fail(errno, "getrusage");
	return ru.ru_minflt;
}

/* A memfd of @size bytes, every page written. */
static int memfd_fill(u64 size)
{
	static u64 chunk[CHUNK / 8];
	int fd = make_memfd(size);
	u64 off, i;

	memset(chunk, FILL, sizeof(chunk));
	for (off = 0; off < size; off += CHUNK) {
		for (i = 0; i < CHUNK / PAGE; i++)
			chunk[i * (PAGE / 8)] = pattern(off / PAGE + i);
		write_at(fd, chunk, CHUNK, off);
	}
	return fd;
}

/* Read the first word of every page through a shared mapping: first_read_*. */
static void memfd_check(int fd, u64 size)
{
	u64 i, pages = size / PAGE;
	long long faults, t;
	const u64 *map;

	map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		fail(errno, "mmap");
	faults = minor_faults();
	t = now_ns();
	for (i = 0; i < pages; i++)
		if (map[i * (PAGE / 8)] != pattern(i))
			break;
	t = now_ns() - t;
	if (i < pages)
		fail(0, "page %llu: read %#llx, expected %#llx", i,
		     map[i * (PAGE / 8)], pattern(i));
	put_us("first_read_us", t);
	/* Fewer than pages: fault-around maps more than one per fault. */
	put("first_read_faults", minor_faults() - faults);
	if (munmap((void *)map, size))
		fail(errno, "munmap");
}

static void memfd_0(u64 size, bool thp)
{
	int fd, ret;

	if (thp) {
		ret = luo_write_file(THP_SHMEM, "always");
		if (ret)
			fail(-ret, "write " THP_SHMEM);
	}
	fd = memfd_fill(size);
	preserve_bench(fd);
	if (thp)
		put("shmem_huge_kb", meminfo_kb("ShmemHugePages"));
	next_kernel();
}

static void memfd_1(u64 size, bool thp)
{
	long long before;
	int fd;

	fd = retrieve_bench(size, &before);
	memfd_check(fd, size);
	put("retrieve_kb", before - meminfo_kb("MemFree"));
	finish_bench();
	if (thp)
		put("shmem_huge_kb", meminfo_kb("ShmemHugePages"));
	done();
}

/*
 * hugetlb: the pool of huge pages of @hps bytes gets @nr pages, or the
 * scenario fails.  Gigantic pages need free aligned ranges of their size:
 * compact first (best effort; there may be nothing to compact).
 */
static void pool_setup(u64 hps, u64 nr)
{
	char path[96], str[32], *back;
	long long got;
	int ret;

	(void)luo_write_file(COMPACT, "1");
	snprintf(path, sizeof(path), HUGE_NR, hps / 1024);
	snprintf(str, sizeof(str), "%llu", nr);
	ret = luo_write_file(path, str);
	if (ret)
		fail(-ret, "write %s to %s", str, path);
	back = luo_read_file(path);
	if (!back)
		fail(errno ? errno : EIO, "read %s", path);
	got = atoll(back);
	free(back);
	if (got != (long long)nr)
		fail(0, "%s: %lld pages, %llu wanted (MemTotal %lld kB, MemFree %lld kB)",
		     path, got, nr, meminfo_kb("MemTotal"), meminfo_kb("MemFree"));
}

/* What every 4 KiB page holds after its first word: FILL. */
static const unsigned char *fill_page(void)
{
	static unsigned char page[PAGE];

	memset(page, FILL, sizeof(page));
	return page;
}

static void hugetlb_0(u64 size, u64 hps)
{
	unsigned int flags = MFD_HUGETLB |
			     (hps == GiB ? MFD_HUGE_1GB : MFD_HUGE_2MB);
	u64 i, *map;
	int fd;

	pool_setup(hps, size / hps);
	fd = make_memfd_flags(size, flags);
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		fail(errno, "mmap");
	for (i = 0; i < size / PAGE; i++) {
		memset(map + i * (PAGE / 8), FILL, PAGE);
		map[i * (PAGE / 8)] = pattern(i);
	}
	if (munmap(map, size))
		fail(errno, "munmap");
	preserve_bench(fd);
	put("huge_pages", size / hps);
	next_kernel();
}

static void hugetlb_1(u64 size, u64 hps)
{
	const unsigned char *fill = fill_page(), *p;
	u64 i, huge = size / hps, step = hps / PAGE;
	long long before, faults, t;
	const u64 *map;
	int fd;

	fd = retrieve_bench(size, &before);
	map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		fail(errno, "mmap");
	faults = minor_faults();
	t = now_ns();
	for (i = 0; i < huge; i++)
		if (map[i * (hps / 8)] != pattern(i * step))
			break;
	t = now_ns() - t;
	if (i < huge)
		fail(0, "huge page %llu: read %#llx, expected %#llx", i,
		     map[i * (hps / 8)], pattern(i * step));
	put_us("first_touch_us", t);
	put("first_touch_faults", minor_faults() - faults);
	t = now_ns();
	for (i = 0; i < size / PAGE; i++) {
		if (map[i * (PAGE / 8)] != pattern(i))
			fail(0, "page %llu: read %#llx, expected %#llx", i,
			     map[i * (PAGE / 8)], pattern(i));
		p = (const unsigned char *)map + i * PAGE;
		if (memcmp(p + 8, fill + 8, PAGE - 8)) {
			u64 b = 8;

			while (p[b] == FILL)
				b++;
			fail(0, "page %llu byte %llu: read %#x, expected %#x",
			     i, b, p[b], FILL);
		}
	}
	put_us("check_us", now_ns() - t);
	if (munmap((void *)map, size))
		fail(errno, "munmap");
	put("retrieve_kb", before - meminfo_kb("MemFree"));
	finish_bench();
	done();
}

static void sparse_0(u64 size, u64 step)
{
	u64 idx, written = 0;
	int fd = make_memfd(size);

	for (idx = 0; idx < size / PAGE; idx += step, written++)
		write_page(fd, idx * PAGE, pattern(idx));
	preserve_bench(fd);
	put("written_pages", written);
	next_kernel();
}

static void sparse_1(u64 size, u64 step)
{
	long long before, t;
	struct stat st;
	u64 idx;
	int fd;

	fd = retrieve_bench(size, &before);
	t = now_ns();
	for (idx = 0; idx < size / PAGE; idx += step)
		check_word(fd, idx * PAGE, pattern(idx), "page", idx);
	put_us("check_us", now_ns() - t);
	/* After the first read: the page cache may be filled after RETRIEVE_FD. */
	put("retrieve_kb", before - meminfo_kb("MemFree"));
	if (fstat(fd, &st))
		fail(errno, "fstat");
	put("blocks_pages", st.st_blocks / 8);
	finish_bench();
	done();
}

/*
 * sessions, files and spread: file i (one page) goes to session
 * i % sessions with token i / sessions + 1.
 */
struct spread {
	int files, sessions;
	char prefix;	/* sessions are "%c%d", or the one "files" if 0 */
};

static void session_name(const struct spread *s, int j, char *name)
{
	if (s->prefix)
		snprintf(name, LUO_NAME_LEN, "%c%d", s->prefix, j);
	else
		snprintf(name, LUO_NAME_LEN, "files");
}

static void spread_alloc(const struct spread *s, int **fds, int **sfds)
{
	raise_nofile((rlim_t)s->files + s->sessions + 64);
	*fds = calloc(s->files, sizeof(int));
	*sfds = calloc(s->sessions, sizeof(int));
	if (!*fds || !*sfds)
		fail(ENOMEM, "calloc");
}

static void spread_0(const struct spread *s)
{
	long long t, t1, ioctl_ns = 0;
	char name[LUO_NAME_LEN];
	int *fds, *sfds, i, j, ret;

	spread_alloc(s, &fds, &sfds);
	open_dev();
	t = now_ns();
	for (i = 0; i < s->files; i++) {
		j = i % s->sessions;
		fds[i] = make_memfd(PAGE);
		write_page(fds[i], 0, pattern(i));
		if (i < s->sessions) {
			session_name(s, j, name);
			t1 = now_ns();
			ret = luo_create_session(dev, name, &sfds[j]);
			ioctl_ns += now_ns() - t1;
			if (ret)
				fail(-ret, "create session %s", name);
		}
		t1 = now_ns();
		ret = luo_preserve_fd(sfds[j], fds[i], i / s->sessions + 1);
		ioctl_ns += now_ns() - t1;
		if (ret)
			fail(-ret, "preserve file %d", i);
	}
	t = now_ns() - t;
	/* The sessions hold the files: keep only the session fds. */
	for (i = 0; i < s->files; i++)
		close(fds[i]);
	put_us("create_preserve_us", t);
	put_us("preserve_only_us", ioctl_ns);
	next_kernel();
}

static void spread_1(const struct spread *s)
{
	char name[LUO_NAME_LEN];
	int *fds, *sfds, i, j, ret;
	long long t_open, t;

	spread_alloc(s, &fds, &sfds);
	t_open = open_dev_timed();
	t = now_ns();
	for (j = 0; j < s->sessions; j++) {
		session_name(s, j, name);
		ret = luo_retrieve_session(dev, name, &sfds[j]);
		if (ret)
			fail(-ret, "retrieve session %s", name);
		for (i = j; i < s->files; i += s->sessions) {
			ret = luo_retrieve_fd(sfds[j], i / s->sessions + 1,
					      &fds[i]);
			if (ret)
				fail(-ret, "retrieve file %d", i);
		}
	}
	t = now_ns() - t;
	say("retrieved");
	put_us("open_us", t_open);
	put_us("retrieve_all_us", t);
	for (i = 0; i < s->files; i++) {
		check_word(fds[i], 0, pattern(i), "file", i);
		close(fds[i]);
	}
	t = now_ns();
	for (j = 0; j < s->sessions; j++) {
		ret = luo_finish(sfds[j]);
		if (ret)
			fail(-ret, "finish session %d", j);
	}
	put_us("finish_us", now_ns() - t);
	done();
}

/* The TSC rate: tsc_early_khz= if given, else as the kernel found it. */
static long long tsc_khz(void)
{
	char *s = luo_read_file("/proc/cmdline"), *p;
	unsigned int mhz, frac;
	long long khz = 0;

	p = s ? strstr(s, "tsc_early_khz=") : NULL;
	if (p)
		khz = atoll(p + strlen("tsc_early_khz="));
	free(s);
	if (khz)
		return khz;
	s = luo_kernel_log();
	p = s ? strstr(s, "tsc: Detected ") : NULL;
	if (p && sscanf(p, "tsc: Detected %u.%3u MHz", &mhz, &frac) == 2)
		khz = mhz * 1000LL + frac;
	free(s);
	if (!khz)
		fail(0, "TSC rate unknown");
	return khz;
}

/*
 * A DMA from the device's buffer into page 1 of guest RAM, which @load
 * copies into the buffer first; the TSC once it is done.  edu runs each
 * transfer 100 ms (virtual time) after it is started.
 */
static u64 device_dma(struct edu *e, bool load)
{
	int ret = load ? edu_dma(e, DEV_IOVA + PAGE, 0, EDU_DMA_MAX, false) : 0;

	if (!ret)
		ret = edu_dma(e, DEV_IOVA + PAGE, 0, EDU_DMA_MAX, true);
	if (ret)
		fail(-ret, "DMA");
	return __builtin_ia32_rdtsc();
}

static void device_0(u64 size, bool nodev)
{
	static const char * const load[] = { LUO_NEXT_STAGE, "-l", NULL };
	struct edu e;
	long long t;
	u64 tsc;
	int fd, ret;

	fd = memfd_fill(size);
	ret = edu_open(&e);
	if (ret)
		fail(-ret, "own the edu device (vfio-pci, iommufd)");
	ret = edu_map_file(e.iommufd, e.ioas_id, fd, 0, size, DEV_IOVA);
	if (!ret)
		ret = edu_set_master(&e, true);
	if (ret)
		fail(-ret, "map the memfd at IOVA %#llx, bus mastering", DEV_IOVA);
	open_dev();
	ret = luo_create_session(dev, SESSION, &sfd);
	if (ret)
		fail(-ret, "create session " SESSION);
	t = now_ns();
	ret = luo_preserve_fd(sfd, fd, TOKEN);
	if (!ret && !nodev)
		ret = luo_preserve_fd(sfd, e.iommufd, TOKEN_IOMMUFD);
	if (!ret && !nodev)
		ret = luo_preserve_fd(sfd, e.devfd, TOKEN_DEVICE);
	t = now_ns() - t;
	if (ret)
		fail(-ret, "preserve fd");
	put_us("preserve_us", t);
	if (nodev) {
		/* Not preserved: the device goes with its files at the kexec. */
		edu_close(&e);
		next_kernel();
	}
	/* Loaded first (seconds under TCG): the gap starts at the last DMA. */
	ret = luo_run(load);
	if (ret)
		fail(0, "%s -l: %d", LUO_NEXT_STAGE, ret);
	tsc = device_dma(&e, true);
	write_at(fd, &tsc, sizeof(tsc), 8);
	say("kexec");
	/* What luo-kexec prints right before: where the blackout starts. */
	printf("luo-kexec: reboot\n");
	fflush(stdout);
	ret = luo_reboot_kexec();
	fail(-ret, "reboot(KEXEC)");
}

static void device_1(u64 size, bool nodev)
{
	struct edu e = { .iommufd = -1, .devfd = -1 };
	long long t_open, t_session, t_dev, t_fd;
	u64 tsc0, tsc1;
	int ret, fd = -1;

	if (nodev) {
		memfd_1(size, false);
		return;
	}
	t_open = open_dev_timed();
	t_session = now_ns();
	ret = luo_retrieve_session(dev, SESSION, &sfd);
	t_session = now_ns() - t_session;
	if (ret)
		fail(-ret, "retrieve session " SESSION);
	t_dev = now_ns();
	ret = luo_retrieve_fd(sfd, TOKEN_DEVICE, &e.devfd);
	t_dev = now_ns() - t_dev;
	if (ret)
		fail(-ret, "retrieve the device");
	t_fd = now_ns();
	ret = luo_retrieve_fd(sfd, TOKEN, &fd);
	t_fd = now_ns() - t_fd;
	if (ret)
		fail(-ret, "retrieve fd");
	say("retrieved");
	ret = edu_map_bar(&e);
	if (ret)
		fail(-ret, "map BAR0");
	/* Its buffer still holds what stage 0 loaded into it. */
	tsc1 = device_dma(&e, false);
	put_us("open_us", t_open);
	put_us("retrieve_session_us", t_session);
	put_us("retrieve_device_us", t_dev);
	put_us("retrieve_fd_us", t_fd);
	if (pread(fd, &tsc0, sizeof(tsc0), 8) != sizeof(tsc0))
		fail(errno, "read the TSC of the last DMA");
	put("dma_gap_us", (tsc1 - tsc0) * 1000 / tsc_khz());
	memfd_check(fd, size);
	finish_bench();
	done();
}

static __noreturn void print_usage(const char *prog)
{
	fprintf(stderr,
		"usage: LUO_STAGE=0|1 %s memfd SIZE_MIB [thp]\n"
		"       | sparse SIZE_GIB PERCENT | sessions N | files N\n"
		"       | spread FILES SESSIONS | hugetlb SIZE_MIB 2048|1048576\n"
		"       | device SIZE_MIB [nodev] | none\n", prog);
	fail(EINVAL, "usage");
}

int main(int argc, char **argv)
{
	const char *scenario = argc > 1 ? argv[1] : "";
	int stage = luo_stage(), nargs = argc - 2;
	struct spread s;

	if (stage != 0 && stage != 1)
		fail(EINVAL, "stage %d", stage);
	if (!strcmp(scenario, "memfd") && (nargs == 1 || nargs == 2)) {
		u64 size = arg_num(argv[2], 1, 1 << 24) * MiB;
		bool thp = nargs == 2;

		if (thp && strcmp(argv[3], "thp"))
			print_usage(argv[0]);
		if (stage)
			memfd_1(size, thp);
		else
			memfd_0(size, thp);
	} else if (!strcmp(scenario, "sparse") && nargs == 2) {
		u64 size = arg_num(argv[2], 1, 1 << 14) * GiB;
		u64 step = 100 / arg_num(argv[3], 1, 100);

		if (stage)
			sparse_1(size, step);
		else
			sparse_0(size, step);
	} else if ((!strcmp(scenario, "sessions") ||
		    !strcmp(scenario, "files")) && nargs == 1) {
		s.files = arg_num(argv[2], 1, 1 << 24);
		s.sessions = scenario[0] == 's' ? s.files : 1;
		s.prefix = scenario[0] == 's' ? 's' : 0;
		if (stage)
			spread_1(&s);
		else
			spread_0(&s);
	} else if (!strcmp(scenario, "spread") && nargs == 2) {
		s.files = arg_num(argv[2], 1, 1 << 24);
		s.sessions = arg_num(argv[3], 1, s.files);
		s.prefix = 'p';
		if (stage)
			spread_1(&s);
		else
			spread_0(&s);
	} else if (!strcmp(scenario, "hugetlb") && nargs == 2) {
		u64 size = arg_num(argv[2], 2, 1 << 24) * MiB;
		u64 hps = arg_num(argv[3], 2048, 1048576) * 1024;

		if ((hps != 2 * MiB && hps != GiB) || size % hps)
			print_usage(argv[0]);
		if (stage)
			hugetlb_1(size, hps);
		else
			hugetlb_0(size, hps);
	} else if (!strcmp(scenario, "device") && (nargs == 1 || nargs == 2)) {
		u64 size = arg_num(argv[2], 1, 240) * MiB;
		bool nodev = nargs == 2;

		if (nodev && strcmp(argv[3], "nodev"))
			print_usage(argv[0]);
		if (stage)
			device_1(size, nodev);
		else
			device_0(size, nodev);
	} else if (!strcmp(scenario, "none") && nargs == 0) {
		if (!stage)
			next_kernel();
		say("retrieved");
		/* For the timeline only, after the blackout's end. */
		open_dev();
		done();
	} else {
		print_usage(argv[0]);
	}
	return 0;
}
