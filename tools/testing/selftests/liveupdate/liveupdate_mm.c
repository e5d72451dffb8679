// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: preserved memfds against the rest of mm.
 *
 *   liveupdate_mm CASE...     (LUO_STAGE=N, see liveupdate_test.h)
 *
 * A preserved memfd holds its folios from PRESERVE_FD to the kexec: an mm
 * path that would free, move or split one fails or leaves it alone, and
 * every byte arrives.  Each case drives one mm path at memfds of its own
 * (tokens of its own) in stage 0 and checks every page of them after the
 * kexec in stage 1; the cases named share one boot pair.  Where it can,
 * stage 0 checks at once that the preserved folios stayed (mincore, PFNs,
 * page flags), and drives the same path at an unpreserved control memfd
 * to show that the path acts at all here: if it leaves the control alone,
 * that result is a SKIP (nothing was shown), never a pass.
 *
 * clean:    read-faulted, so clean, zero pages: drop_caches, MADV_PAGEOUT.
 * reclaim:  written pages charged to a memory cgroup: memory.reclaim and
 *           MADV_PAGEOUT, swapping to zram.
 * swapin:   pages swapped out to zram before PRESERVE_FD, swapped in by
 *           two threads while PRESERVE_FD runs.
 * eofswap:  pages fallocated past EOF (FALLOC_FL_KEEP_SIZE) and those
 *           before it swapped out to zram before PRESERVE_FD.
 * shrinker: a THP memfd whose last huge folio crosses EOF, which the shmem
 *           huge shrinker (drop_caches) splits to free its tail.
 * collapse: MADV_COLLAPSE of small pages into a huge one, over a memfd
 *           with every page and over one with holes.
 * contig:   runtime 1 GiB and 2 MiB hugetlb allocation (alloc_contig_range,
 *           compaction), and offlining every memory block: on a machine
 *           without ZONE_MOVABLE, where the preserved pages share memory
 *           blocks that can go offline.
 * numa:     move_pages, mbind(MPOL_MF_MOVE) and migrate_pages between two
 *           nodes.
 * uffd:     UFFDIO_COPY, UFFDIO_ZEROPAGE and faults resolved for a thread,
 *           into a userfaultfd-registered mapping after PRESERVE_FD.
 * restore:  large memfds used at once after RETRIEVE_FD, while their page
 *           cache may still be filled: read through a mapping (fault-
 *           around), mapped with MAP_POPULATE, written through a mapping.
 * torture:  memfds of every shape, a hugetlb one among them, preserved
 *           while child processes hammer mm with all of the above and
 *           hugetlb pool resizing, through settling and up to the kexec;
 *           stage 1 checks every page, puts the restored memfds under
 *           drop_caches and memory pressure, and checks again.
 *
 * Between the last case and the kexec a tenant process fills most free
 * memory with a marker and holds it, mlocked: a preserved page that mm
 * freed comes back with the marker, which stage 1 looks for everywhere.
 * The cases set up a zram swap device and memory cgroups themselves; two
 * NUMA nodes and an offlinable movable zone come from the kernel command
 * line (harness/suite, memory "+mm").
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/memfd.h>
#include <linux/mempolicy.h>
#include <linux/userfaultfd.h>

#include "liveupdate_test.h"
#include "kselftest.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT	21
#endif

#define KIB		1024ULL
#define MIB		(1024 * KIB)
#define PG		4096ULL
/* Words of the tenant's fill: no pattern word equals it but by chance. */
#define MARKER		0x21214b52414d5421ULL

#define SESSION		"mm"
#define T_MANIFEST	1
#define THP_PATH	"/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define HUGE_PATH	"/sys/kernel/mm/hugepages/hugepages-%llukB/nr_hugepages"
#define MEM_PATH	"/sys/devices/system/memory"
#define ZRAM_SIZE	(256 * MIB)
#define CG_CASES	"luo-mm"
#define CG_PRESSURE	"luo-mm-pressure"

static int dev = -1;
static int stage;

/*
 * The result of running an mm path at a control memfd: a pass if the path
 * acted on it, a SKIP otherwise, as the case then shows nothing.
 */
static __printf(2, 3) void acts(bool acted, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (acted)
		ksft_test_result_pass("%s\n", what);
	else
		ksft_test_result_skip("%s: no effect here, nothing shown\n",
				      what);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	usleep(ms * 1000);
}

/* ---- memfds and what they hold ---- */

/*
 * What a memfd of @size bytes holds: the pattern @seed in its data pages,
 * zeros elsewhere (holes, or pages known to be zero).  Data pages are
 * those of [@from, @to) whose offset from @from modulo @step (0: every
 * page) is below @run.
 */
struct shape {
	const char *name;
	__u64 size, from, to, step, run, seed;
};

static bool is_data(const struct shape *s, __u64 off)
{
	if (off < s->from || off >= s->to)
		return false;
	return !s->step || (off - s->from) % s->step < s->run;
}

static int new_memfd(const char *name, __u64 size)
{
	int fd = memfd_create(name, 0);

	if (fd < 0 || ftruncate(fd, size))
		luo_bail("memfd %s of %llu bytes: %s", name,
			 (unsigned long long)size, strerror(errno));
	return fd;
}

/* Write the data pages of @s into @fd, [@lo, @hi) of them only. */
static void write_part(int fd, const struct shape *s, __u64 lo, __u64 hi)
{
	for (__u64 off = lo; off < hi && off < s->size; off += PG)
		if (is_data(s, off) && luo_put(fd, off, PG, s->seed))
			luo_bail("write %s: %s", s->name, strerror(errno));
}

static int make_memfd(const struct shape *s)
{
	int fd = new_memfd(s->name, s->size);

	write_part(fd, s, 0, s->size);
	return fd;
}

/*
 * Does @fd hold what @s says, every page of it?  Reports the pages that
 * do not, and how many of them hold the tenant's marker.
 */
static bool verify(int fd, const struct shape *s)
{
	static __u64 buf[MIB / 8], want[PG / 8];
	__u64 bad = 0, marked = 0, first = ~0ULL, n;
	struct stat st;

	if (fd < 0 || fstat(fd, &st) || (__u64)st.st_size != s->size) {
		ksft_print_msg("%s: fd %d, size %lld, want %llu\n", s->name, fd,
			       fd < 0 ? -1LL : (long long)st.st_size,
			       (unsigned long long)s->size);
		return false;
	}
	for (__u64 off = 0; off < s->size; off += n) {
		n = s->size - off < MIB ? s->size - off : MIB;
		if (pread(fd, buf, n, off) != (ssize_t)n) {
			ksft_print_msg("%s: read at %llu: %s\n", s->name,
				       (unsigned long long)off,
				       strerror(errno));
			return false;
		}
		for (__u64 p = 0; p < n; p += PG) {
			__u64 len = n - p < PG ? n - p : PG;
			const __u64 *got = buf + p / 8;
			bool seen = false;

			if (is_data(s, off + p))
				luo_fill(want, off + p, PG, s->seed);
			else
				memset(want, 0, PG);
			if (!memcmp(got, want, len))
				continue;
			for (__u64 w = 0; w < len / 8 && !seen; w++)
				seen = got[w] == MARKER;
			bad++;
			marked += seen;
			if (first == ~0ULL)
				first = off + p;
		}
	}
	if (bad)
		ksft_print_msg("%s: %llu of %llu pages wrong (first at %#llx), %llu of them with the tenant's marker\n",
			       s->name, (unsigned long long)bad,
			       (unsigned long long)((s->size + PG - 1) / PG),
			       (unsigned long long)first,
			       (unsigned long long)marked);
	return !bad;
}

/* Pages of [0, @len) of @fd in memory: page cache or swap cache. */
static long resident(int fd, __u64 len)
{
	static unsigned char vec[256 * MIB / PG];
	void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	long n = 0;

	if (map == MAP_FAILED || len > sizeof(vec) * PG ||
	    mincore(map, len, vec))
		n = -1;
	for (__u64 i = 0; n >= 0 && i < len / PG; i++)
		n += vec[i] & 1;
	if (map != MAP_FAILED)
		munmap(map, len);
	return n;
}

static __u64 blocks_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? ~0ULL : (__u64)st.st_blocks;
}

/* Read one byte of every page of a mapping, faulting them in. */
static unsigned long touch(const char *map, __u64 len)
{
	unsigned long sum = 0;

	for (__u64 off = 0; off < len; off += PG)
		sum += *(const volatile char *)(map + off);
	return sum;
}

/* A memfd of @size bytes, every page read-faulted through a shared map. */
static int read_faulted(const char *name, __u64 size)
{
	int fd = new_memfd(name, size);
	char *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);

	if (map == MAP_FAILED)
		luo_bail("map %s: %s", name, strerror(errno));
	touch(map, size);
	munmap(map, size);
	return fd;
}

/*
 * MADV_PAGEOUT on a new shared mapping of [0, @len) of @fd, its pages
 * faulted in first (only mapped pages are paged out).
 */
static int pageout(int fd, __u64 len)
{
	char *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	int ret;

	if (map == MAP_FAILED)
		return -errno;
	touch(map, len);
	ret = madvise(map, len, MADV_PAGEOUT) ? -errno : 0;
	munmap(map, len);
	return ret;
}

static void drop_all_caches(void)
{
	sync();
	luo_write_file("/proc/sys/vm/drop_caches", "3");
}

/* The PFNs of every page of [0, @len) of @fd, mapped and faulted in. */
static bool pfns_of(int fd, __u64 len, __u64 *pfn)
{
	char *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	bool ok;

	if (map == MAP_FAILED)
		return false;
	touch(map, len);
	ok = !luo_pfns(map, len, pfn);
	munmap(map, len);
	for (__u64 i = 0; ok && i < len / PG; i++)
		ok = pfn[i];
	return ok;
}

/* How many of the @n PFNs differ; reports the first. */
static long count_moved(const __u64 *before, const __u64 *after, __u64 n)
{
	long count = 0;

	for (__u64 i = 0; i < n; i++) {
		if (before[i] == after[i])
			continue;
		if (!count++)
			ksft_print_msg("page %llu moved: PFN %#llx, now %#llx\n",
				       (unsigned long long)i,
				       (unsigned long long)before[i],
				       (unsigned long long)after[i]);
	}
	return count;
}

/* ---- LUO ---- */

/* ---- facilities ---- */

static const char *swap_missing(void)
{
	static char why[96];
	static int ret = 1;

	if (ret == 1)
		ret = luo_zram_swap(ZRAM_SIZE);
	if (!ret)
		return NULL;
	snprintf(why, sizeof(why), "no zram swap: %s", strerror(-ret));
	return why;
}

static const char *memcg_missing(void)
{
	static char why[96];
	int ret = luo_memcg_create(CG_CASES, 0);

	if (!ret)
		return NULL;
	snprintf(why, sizeof(why), "no memory cgroup: %s", strerror(-ret));
	return why;
}

static bool thp_available(void)
{
	return !access(THP_PATH, W_OK);
}

/* Set shmem_enabled to @mode, returning the mode it had in @old. */
static void thp_mode(const char *mode, char *old, size_t len)
{
	char *cur = old ? luo_read_file(THP_PATH) : NULL;
	char *sel = cur ? strchr(cur, '[') : NULL;

	if (old) {
		snprintf(old, len, "%s", sel ? sel + 1 : "never");
		old[strcspn(old, "]")] = '\0';
	}
	free(cur);
	luo_write_file(THP_PATH, mode);
}

/* Is the page at @off of @fd part of a large folio (/proc/kpageflags)? */
static int in_large_folio(int fd, __u64 off)
{
	char *map = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, off);
	__u64 pfn = 0, flags = 0;
	int kfd, ret = -1;

	if (map == MAP_FAILED)
		return -1;
	touch(map, PG);
	kfd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	if (!luo_pfns(map, PG, &pfn) && pfn && kfd >= 0 &&
	    pread(kfd, &flags, 8, pfn * 8) == 8)
		ret = !!(flags & (1ULL << 22));		/* KPF_THP */
	if (kfd >= 0)
		close(kfd);
	munmap(map, PG);
	return ret;
}

static int nr_nodes(void)
{
	int n = 0;
	char path[64];

	do
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d",
			 n);
	while (!access(path, F_OK) && ++n < 64);
	return n;
}

static long sys_move_pages(int count, void **pages, const int *nodes,
			   int *status)
{
	return syscall(SYS_move_pages, 0, count, pages, nodes, status,
		       MPOL_MF_MOVE);
}

static long sys_mbind(void *addr, unsigned long len, int mode,
		      unsigned long nodes)
{
	return syscall(SYS_mbind, addr, len, mode, mode ? &nodes : NULL,
		       mode ? 64 : 0, mode ? MPOL_MF_MOVE : 0);
}

static long sys_migrate_pages(unsigned long from, unsigned long to)
{
	return syscall(SYS_migrate_pages, 0, 64, &from, &to);
}

static long sys_set_mempolicy(int mode, unsigned long nodes)
{
	return syscall(SYS_set_mempolicy, mode, mode ? &nodes : NULL,
		       mode ? 64 : 0);
}

/* Move every page mapped at @map, @len bytes, to the node after its own. */
static long move_all(char *map, __u64 len, int nodes, int *moved_to)
{
	static void *pages[64 * MIB / PG];
	static int where[64 * MIB / PG], to[64 * MIB / PG];
	int n = len / PG, count = 0;

	for (int i = 0; i < n; i++)
		pages[i] = map + i * PG;
	if (sys_move_pages(n, pages, NULL, where))
		return -errno;
	for (int i = 0; i < n; i++)
		to[i] = where[i] >= 0 ? (where[i] + 1) % nodes : 0;
	sys_move_pages(n, pages, to, where);
	for (int i = 0; i < n; i++)
		count += where[i] == to[i];
	if (moved_to)
		*moved_to = to[0];
	return count;
}

static int uffd_open(void)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_MISSING_SHMEM,
	};
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api)) {
		close(fd);
		return -errno;
	}
	return fd;
}

static const char *uffd_missing(void)
{
	static char why[96];
	int fd = uffd_open();

	if (fd >= 0) {
		close(fd);
		return NULL;
	}
	snprintf(why, sizeof(why), "no userfaultfd for shmem: %s",
		 strerror(-fd));
	return why;
}

/* Register [@map, +@len) for missing-page faults. */
static int uffd_register(int uffd, void *map, __u64 len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)map, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	const __u64 want = 1ULL << _UFFDIO_COPY | 1ULL << _UFFDIO_ZEROPAGE;

	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return -errno;
	return (reg.ioctls & want) == want ? 0 : -EOPNOTSUPP;
}

/* UFFDIO_COPY the page of @s at @off into the mapping @map of it. */
static int uffd_copy(int uffd, char *map, const struct shape *s, __u64 off)
{
	static __thread __u64 page[PG / 8];
	struct uffdio_copy copy = {
		.dst = (uintptr_t)map + off,
		.src = (uintptr_t)page,
		.len = PG,
	};

	luo_fill(page, off, PG, s->seed);
	if (ioctl(uffd, UFFDIO_COPY, &copy))
		return copy.copy == -EEXIST ? 0 : -errno;
	return 0;
}

static int uffd_zero(int uffd, char *map, __u64 off, __u64 len)
{
	struct uffdio_zeropage zero = {
		.range = { .start = (uintptr_t)map + off, .len = len },
	};

	return ioctl(uffd, UFFDIO_ZEROPAGE, &zero) ? -errno : 0;
}

/* ---- memory blocks and hugetlb ---- */

static __u64 block_bytes(void)
{
	char *s = luo_read_file(MEM_PATH "/block_size_bytes");
	__u64 size = s ? strtoull(s, NULL, 16) : 0;

	free(s);
	return size;
}

/* The memory block numbers, into @ids (room for @max); how many. */
static int memory_blocks(int *ids, int max)
{
	DIR *d = opendir(MEM_PATH);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)) && n < max)
		if (!strncmp(e->d_name, "memory", 6) &&
		    e->d_name[6] >= '0' && e->d_name[6] <= '9')
			ids[n++] = atoi(e->d_name + 6);
	if (d)
		closedir(d);
	return n;
}

static bool block_is(int id, const char *file, const char *want)
{
	char path[96], *s;
	bool is;

	snprintf(path, sizeof(path), MEM_PATH "/memory%d/%s", id, file);
	s = luo_read_file(path);
	is = s && !strncmp(s, want, strlen(want));
	free(s);
	return is;
}

static void on_alarm(int sig)
{
	(void)sig;
}

/*
 * Write @str to @path in a child, interrupted after @ms: offlining a block
 * whose pages cannot move retries until a signal, a gigantic page
 * allocation can take long.  0 if the write worked, 1 if it failed, 2 if
 * it was interrupted.
 */
static int write_bounded(const char *path, const char *str, int ms)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval it = {
		.it_value = { .tv_sec = ms / 1000, .tv_usec = ms % 1000 * 1000 },
	};
	int status, ret;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (!pid) {
		sigaction(SIGALRM, &sa, NULL);
		setitimer(ITIMER_REAL, &it, NULL);
		ret = luo_write_file(path, str);
		_exit(!ret ? 0 : ret == -EINTR ? 2 : 1);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return 1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
}

struct offline_stats {
	int blocks, offlined, refused, timed_out;
	int exposed;	/* blocks holding a page of @pfn that were not refused */
};

/* Does memory block @id hold one of the @n PFNs of @pfn? */
static bool block_holds(int id, __u64 per, const __u64 *pfn, __u64 n)
{
	for (__u64 i = 0; i < n; i++)
		if (pfn[i] / per == (__u64)id)
			return true;
	return false;
}

/*
 * Offline each online memory block in turn (each try bounded by @ms) and
 * online it again, in its zone; @bad (if not NULL) is set to the blocks
 * that went offline although they held a page of @pfn[@n].
 */
static void offline_all(int ms, const __u64 *pfn, __u64 n, int *bad,
			struct offline_stats *st)
{
	static int ids[4096];
	__u64 per = block_bytes() / PG;
	int nr = memory_blocks(ids, ARRAY_SIZE(ids));
	char path[96];
	bool movable, holds;
	int ret;

	memset(st, 0, sizeof(*st));
	for (int b = 0; b < nr && per; b++) {
		if (!block_is(ids[b], "online", "1"))
			continue;
		movable = block_is(ids[b], "valid_zones", "Movable");
		snprintf(path, sizeof(path), MEM_PATH "/memory%d/online",
			 ids[b]);
		st->blocks++;
		holds = block_holds(ids[b], per, pfn, n);
		ret = write_bounded(path, "0", ms);
		st->exposed += holds && ret != 1;
		if (holds)
			ksft_print_msg("memory%d holds preserved pages: %s\n",
				       ids[b], ret == 0 ? "offlined" :
				       ret == 1 ? "refused" : "timed out");
		switch (ret) {
		case 0:
			st->offlined++;
			if (holds) {
				ksft_print_msg("memory%d went offline with preserved pages in it\n",
					       ids[b]);
				(*bad)++;
			}
			snprintf(path, sizeof(path), MEM_PATH "/memory%d/state",
				 ids[b]);
			if (luo_write_file(path, movable ? "online_movable" :
					   "online"))
				ksft_print_msg("memory%d: cannot online it again\n",
					       ids[b]);
			break;
		case 1:
			st->refused++;
			break;
		default:
			st->timed_out++;
		}
	}
}

/* Runtime hugetlb pages of @kb: ask for @nr, return how many came. */
static long hugetlb_try(__u64 kb, int nr, int ms)
{
	char path[96], str[16], *got;
	long n;

	snprintf(path, sizeof(path), HUGE_PATH, (unsigned long long)kb);
	if (access(path, W_OK))
		return -1;
	snprintf(str, sizeof(str), "%d", nr);
	write_bounded(path, str, ms);
	got = luo_read_file(path);
	n = got ? atol(got) : -1;
	free(got);
	luo_write_file(path, "0");
	return n;
}

/* Preserved pages in movable memory blocks (the offlinable ones). */
static long in_movable(const __u64 *pfn, __u64 n)
{
	__u64 per = block_bytes() / PG, last = ~0ULL;
	long count = 0;
	bool movable = false;
	char path[96], *zones;

	for (__u64 i = 0; per && i < n; i++) {
		if (pfn[i] / per != last) {
			last = pfn[i] / per;
			snprintf(path, sizeof(path),
				 MEM_PATH "/memory%llu/valid_zones",
				 (unsigned long long)last);
			zones = luo_read_file(path);
			movable = zones && strstr(zones, "Movable");
			free(zones);
		}
		count += movable;
	}
	return count;
}

/* Pages of the mapping @map, [@off, +@len), that do not hold @seed's pattern. */
static long map_mismatch(const char *map, __u64 off, __u64 len, __u64 seed)
{
	static __thread __u64 want[PG / 8];
	long bad = 0;

	for (__u64 p = off; p < off + len; p += PG) {
		luo_fill(want, p, PG, seed);
		bad += !!memcmp(map + p, want, PG);
	}
	return bad;
}

/* ---- clean ---- */

#define CLEAN_SIZE	(16 * MIB)

static const struct shape clean_shape = { .name = "clean", .size = CLEAN_SIZE };

/*
 * MADV_PAGEOUT on @map (the whole of @fd, mapped and faulted in), unmap
 * it, drop_caches: the pages of @fd left in memory, counted without
 * faulting any back in.
 */
static long clean_left(int fd, char *map)
{
	madvise(map, CLEAN_SIZE, MADV_PAGEOUT);
	munmap(map, CLEAN_SIZE);
	drop_all_caches();
	return resident(fd, CLEAN_SIZE);
}

static char *clean_map(int fd)
{
	char *map = mmap(NULL, CLEAN_SIZE, PROT_READ, MAP_SHARED, fd, 0);

	if (map == MAP_FAILED)
		luo_bail("map a clean memfd: %s", strerror(errno));
	touch(map, CLEAN_SIZE);
	return map;
}

static void clean_0(int sfd, __u64 token)
{
	int fd = read_faulted("clean", CLEAN_SIZE);
	int ctl = read_faulted("clean-control", CLEAN_SIZE);
	long pages = CLEAN_SIZE / PG, at_once, c_at_once, left, cleft;
	bool ok = luo_keep(sfd, fd, token), shown;
	struct luo_memfd_stats m = { .moving = -1 };
	char *map;

	/*
	 * At once: read-faulted, unmapped, preserved, dropped.  Pages in KHO
	 * scratch or ZONE_MOVABLE are not held until the work item has moved
	 * them: one dropped meanwhile was clean, so zero, and comes back as a
	 * new page that is held (or moved) once faulted in.  Every other page
	 * is held already.  Once settled every page is held.
	 */
	ok = ok && luo_memfd_stats(fd, &m);
	drop_all_caches();
	at_once = resident(fd, CLEAN_SIZE);
	c_at_once = resident(ctl, CLEAN_SIZE);
	shown = c_at_once >= 0 && c_at_once < pages;
	if (!shown || m.moving >= pages)
		ksft_test_result_skip("clean: drop_caches at once: %s, nothing shown\n",
				      shown ? "every page still to move" :
				      "the control keeps its pages");
	else
		result(ok && at_once >= 0 && pages - at_once <= m.moving,
		       "clean: drop_caches at once after PRESERVE_FD drops none of the held pages (%ld dropped, %ld still to move)",
		       pages - at_once, m.moving);
	ok = ok && luo_settled(sfd, token);
	map = clean_map(fd);
	ok = ok && luo_settled(sfd, token);
	left = clean_left(fd, map);
	cleft = clean_left(ctl, clean_map(ctl));
	ksft_print_msg("clean: pages left of %ld: %ld after drop_caches at once (control: %ld); once settled, %ld after MADV_PAGEOUT and drop_caches (control: %ld)\n",
		       pages, at_once, c_at_once, left, cleft);
	shown = cleft >= 0 && cleft < pages;
	acts(shown,
	     "clean: MADV_PAGEOUT and drop_caches drop an unpreserved memfd's clean pages");
	if (shown)
		result(ok && left == pages && verify(fd, &clean_shape),
		       "clean: once settled they drop none of the preserved memfd's (mincore), all zero");
	else
		ksft_test_result_skip("clean: once settled: nothing shown\n");
	close(ctl);
	close(fd);
}

static void clean_1(int sfd, __u64 token)
{
	int fd = luo_take(sfd, token);

	result(verify(fd, &clean_shape),
	       "clean: every read-faulted page zero after the kexec, no tenant's marker");
	close(fd);
}

/* ---- reclaim ---- */

#define RECLAIM_SIZE	(16 * MIB)

static const struct shape reclaim_shape = {
	"reclaim", RECLAIM_SIZE, 0, RECLAIM_SIZE, 0, 0, 11
};

static const struct shape reclaim_ctl = {
	"reclaim-control", RECLAIM_SIZE, 0, RECLAIM_SIZE, 0, 0, 12
};

static const char *reclaim_missing(void)
{
	return swap_missing() ?: memcg_missing();
}

static void reclaim_0(int sfd, __u64 token)
{
	long pages = RECLAIM_SIZE / PG, r[3], c[2];
	int fd, ctl;
	bool ok;

	/* Charged to the cases' memory cgroup, which is asked to reclaim. */
	luo_memcg_enter(CG_CASES);
	fd = make_memfd(&reclaim_shape);
	ctl = make_memfd(&reclaim_ctl);
	luo_memcg_enter(NULL);
	ok = luo_keep(sfd, fd, token);
	luo_memcg_reclaim(CG_CASES, 4 * RECLAIM_SIZE);
	r[0] = resident(fd, RECLAIM_SIZE);
	c[0] = resident(ctl, RECLAIM_SIZE);
	pageout(fd, RECLAIM_SIZE);
	pageout(ctl, RECLAIM_SIZE);
	r[1] = resident(fd, RECLAIM_SIZE);
	c[1] = resident(ctl, RECLAIM_SIZE);
	ok = ok && luo_settled(sfd, token);
	luo_memcg_reclaim(CG_CASES, 4 * RECLAIM_SIZE);
	pageout(fd, RECLAIM_SIZE);
	r[2] = resident(fd, RECLAIM_SIZE);
	ksft_print_msg("reclaim: pages left of %ld: %ld after memory.reclaim, %ld after MADV_PAGEOUT, %ld after both once settled; control: %ld, %ld\n",
		       pages, r[0], r[1], r[2], c[0], c[1]);
	acts(c[0] < pages && c[1] < pages,
	     "reclaim: memory.reclaim and MADV_PAGEOUT swap an unpreserved memfd's pages out to zram");
	result(ok && r[0] == pages && r[1] == pages && r[2] == pages &&
	       verify(fd, &reclaim_shape),
	       "reclaim: they swap out none of the preserved memfd's (mincore), intact");
	close(ctl);
	close(fd);
}

static void reclaim_1(int sfd, __u64 token)
{
	int fd = luo_take(sfd, token);

	result(verify(fd, &reclaim_shape),
	       "reclaim: every written page intact after the kexec");
	close(fd);
}

/* ---- swapin ---- */

#define SWAPIN_FILES	4
#define SWAPIN_SIZE	(4 * MIB)

static const struct shape swapin_shapes[SWAPIN_FILES] = {
	{ "swapin-0", SWAPIN_SIZE, 0, SWAPIN_SIZE, 0, 0, 21 },
	{ "swapin-1", SWAPIN_SIZE, 0, SWAPIN_SIZE, 0, 0, 22 },
	{ "swapin-2", SWAPIN_SIZE, 0, SWAPIN_SIZE, 0, 0, 23 },
	{ "swapin-3", SWAPIN_SIZE, 0, SWAPIN_SIZE, 0, 0, 24 },
};

struct reader {
	pthread_t thread;
	int fd;
	bool mapped;
	volatile bool stop;
	long passes;
};

/* Read the memfd over and over: pread() forwards, or faults backwards. */
static void *reader(void *arg)
{
	static __thread char buf[64 * KIB];
	struct reader *r = arg;
	char *map = r->mapped ? mmap(NULL, SWAPIN_SIZE, PROT_READ, MAP_SHARED,
				     r->fd, 0) : NULL;

	while (!r->stop && map != MAP_FAILED) {
		for (__u64 off = 0; off < SWAPIN_SIZE && !r->stop;
		     off += sizeof(buf)) {
			if (!map)
				pread(r->fd, buf, sizeof(buf), off);
			else
				touch(map + SWAPIN_SIZE - off - sizeof(buf),
				      sizeof(buf));
		}
		r->passes++;
	}
	if (map && map != MAP_FAILED)
		munmap(map, SWAPIN_SIZE);
	return NULL;
}

static void swapin_0(int sfd, __u64 token)
{
	long pages = SWAPIN_SIZE / PG, out = 0, left = 0;
	struct reader r[2];
	int fd[SWAPIN_FILES];
	bool ok = true;

	for (int i = 0; i < SWAPIN_FILES; i++) {
		fd[i] = make_memfd(&swapin_shapes[i]);
		pageout(fd[i], SWAPIN_SIZE);
		out += pages - resident(fd[i], SWAPIN_SIZE);
	}
	ksft_print_msg("swapin: %ld of %ld pages swapped out before PRESERVE_FD\n",
		       out, pages * SWAPIN_FILES);
	acts(out > 0, "swapin: MADV_PAGEOUT swaps a memfd out to zram");
	for (int i = 0; i < SWAPIN_FILES; i++) {
		for (int t = 0; t < 2; t++) {
			r[t] = (struct reader){ .fd = fd[i], .mapped = t };
			pthread_create(&r[t].thread, NULL, reader, &r[t]);
		}
		ok &= luo_keep(sfd, fd[i], token + i);
		for (int t = 0; t < 2; t++) {
			r[t].stop = true;
			pthread_join(r[t].thread, NULL);
		}
	}
	for (int i = 0; i < SWAPIN_FILES; i++) {
		ok = ok && luo_settled(sfd, token + i);
		pageout(fd[i], SWAPIN_SIZE);
		left += resident(fd[i], SWAPIN_SIZE);
		ok = ok && verify(fd[i], &swapin_shapes[i]);
		close(fd[i]);
	}
	ksft_print_msg("swapin: %ld of %ld pages resident after PRESERVE_FD and MADV_PAGEOUT\n",
		       left, pages * SWAPIN_FILES);
	result(ok && left == pages * SWAPIN_FILES,
	       "swapin: PRESERVE_FD while two threads swap in: every page held after (mincore), intact");
}

static void swapin_1(int sfd, __u64 token)
{
	bool ok = true;
	int fd;

	for (int i = 0; i < SWAPIN_FILES; i++) {
		fd = luo_take(sfd, token + i);
		ok &= verify(fd, &swapin_shapes[i]);
		close(fd);
	}
	result(ok, "swapin: every page of the %d memfds intact after the kexec",
	       SWAPIN_FILES);
}

/* ---- eofswap ---- */

/*
 * A memfd of EOF_SIZE bytes, written, with EOF_BEYOND more fallocated past
 * EOF (FALLOC_FL_KEEP_SIZE) and never written, all of it charged to a
 * memory cgroup of its own and swapped out to zram by memory.reclaim
 * (shmem writes out a fallocated page as zeros).  PRESERVE_FD's walk goes
 * up to i_size, swapping in what it finds there; the entries past EOF are
 * zero and invisible, and are left out.  Before the fix the walk went on
 * past i_size, where shmem refuses to swap in: PRESERVE_FD failed with
 * EINVAL, and did again on every try while those entries stayed in swap.
 */
#define EOF_SIZE	MIB
#define EOF_BEYOND	MIB
#define CG_EOF		"luo-mm-eofswap"

static const struct shape eof_shape = {
	"eofswap", EOF_SIZE, 0, EOF_SIZE, 0, 0, 27
};

static const char *eofswap_missing(void)
{
	static char why[96];
	const char *why_swap = swap_missing();
	int ret;

	if (why_swap)
		return why_swap;
	ret = luo_memcg_create(CG_EOF, 0);
	if (!ret)
		return NULL;
	snprintf(why, sizeof(why), "no memory cgroup: %s", strerror(-ret));
	return why;
}

/* Bytes memory cgroup @name has in swap (memory.swap.current), or -1. */
static long long memcg_swapped(const char *name)
{
	char path[128], *buf;
	long long bytes;

	snprintf(path, sizeof(path), LUO_CGROOT "/%s/memory.swap.current",
		 name);
	buf = luo_read_file(path);
	bytes = buf ? atoll(buf) : -1;
	free(buf);
	return bytes;
}

/*
 * Bytes of @fd past EOF in swap: those memory cgroup CG_EOF has there, less
 * the pages before EOF that are not in memory (written, so swapped out).
 * mincore() cannot tell: it counts a fallocated page as not in memory.
 */
static long long eof_swapped(int fd, long *in)
{
	long long swapped = memcg_swapped(CG_EOF);

	*in = resident(fd, EOF_SIZE);
	if (swapped < 0 || *in < 0)
		return -1;
	return swapped - (long long)(EOF_SIZE / PG - *in) * PG;
}

static void eofswap_0(int sfd, __u64 token)
{
	long pages = EOF_SIZE / PG, in[3] = { -1, -1, -1 };
	long long past[3] = { -1, -1, -1 };
	int fd, ret = -ECANCELED;
	bool ok;

	luo_memcg_enter(CG_EOF);
	fd = make_memfd(&eof_shape);
	ok = !fallocate(fd, FALLOC_FL_KEEP_SIZE, EOF_SIZE, EOF_BEYOND);
	luo_memcg_enter(NULL);
	if (!ok)
		ksft_print_msg("eofswap: fallocate past EOF: %s\n",
			       strerror(errno));
	past[0] = eof_swapped(fd, &in[0]);
	for (int i = 0; ok && i < 8 &&
	     (in[1] || past[1] < (long long)EOF_BEYOND); i++) {
		luo_memcg_reclaim(CG_EOF, 4 * (EOF_SIZE + EOF_BEYOND));
		past[1] = eof_swapped(fd, &in[1]);
	}
	if (ok)
		ret = luo_preserve_fd(sfd, fd, token);
	ok = ok && !ret && luo_settled(sfd, token);
	past[2] = eof_swapped(fd, &in[2]);
	ksft_print_msg("eofswap: of %ld pages before EOF, in memory: %ld written, %ld after memory.reclaim, %ld after PRESERVE_FD (%s); KiB past EOF in swap: %lld, %lld, %lld\n",
		       pages, in[0], in[1], in[2], strerror(-ret),
		       past[0] / 1024, past[1] / 1024, past[2] / 1024);
	acts(past[0] == 0 && past[1] > 0,
	     "eofswap: memory.reclaim swaps out pages fallocated past EOF (memory.swap.current)");
	if (past[1] <= 0)
		ksft_test_result_skip("eofswap: PRESERVE_FD: nothing swapped out past EOF, nothing shown\n");
	else
		result(ok && in[2] == pages && verify(fd, &eof_shape),
		       "eofswap: PRESERVE_FD with pages swapped out past EOF works; every page before EOF in memory after, intact");
	close(fd);
}

static void eofswap_1(int sfd, __u64 token)
{
	int fd = luo_take(sfd, token);

	ksft_print_msg("eofswap: %llu blocks after the kexec\n",
		       (unsigned long long)(fd < 0 ? 0 : blocks_of(fd)));
	result(verify(fd, &eof_shape),
	       "eofswap: size and every page before EOF intact after the kexec");
	close(fd);
}

/* ---- shrinker ---- */

/* EOF 4 KiB into the second 2 MiB folio: 511 pages past EOF in it. */
#define SHR_SIZE	(3 * MIB + PG)
#define SHR_GROWN	(4 * MIB)

static const struct shape shr_shape = {
	"shrinker", SHR_SIZE, 0, SHR_SIZE, 0, 0, 31
};

static const struct shape shr_ctl = {
	"shrinker-control", SHR_SIZE, 0, SHR_SIZE, 0, 0, 32
};

static const struct shape shr_grown = {
	"shrinker-grown", SHR_GROWN, 0, SHR_SIZE, 0, 0, 31
};

static const char *thp_missing(void)
{
	return thp_available() ? NULL : "no shmem THP";
}

/* make_memfd() with shmem THP set to @mode meanwhile. */
static int thp_memfd(const struct shape *s, const char *mode)
{
	char old[32];
	int fd;

	thp_mode(mode, old, sizeof(old));
	fd = make_memfd(s);
	thp_mode(old, NULL, 0);
	return fd;
}

/*
 * A memfd of SHR_SIZE whose last huge folio was allocated across EOF,
 * which puts the memfd on the shmem huge shrinker's list.
 */
static int eof_thp(const struct shape *s)
{
	return thp_memfd(s, "always");
}

static void shrinker_0(int sfd, __u64 token)
{
	int fd = eof_thp(&shr_shape), ctl = eof_thp(&shr_ctl);
	struct luo_memfd_stats m = { .moving = -1 };
	int big[4], cbig[2];
	__u64 last = SHR_SIZE - PG;
	bool ok;

	big[0] = in_large_folio(fd, last);
	cbig[0] = in_large_folio(ctl, last);
	ok = luo_keep(sfd, fd, token) && luo_memfd_stats(fd, &m);
	/*
	 * drop_caches shrinks slab, and shmem's huge shrinker with it.  At
	 * once, a folio still to move out of KHO scratch or ZONE_MOVABLE
	 * (a THP memfd's always is, here) is not held yet, and may be split
	 * (its tail past EOF is zero) or be migrating: reported only.
	 */
	drop_all_caches();
	big[1] = in_large_folio(fd, last);
	cbig[1] = in_large_folio(ctl, last);
	ok = ok && luo_settled(sfd, token);
	big[2] = in_large_folio(fd, last);
	drop_all_caches();
	big[3] = in_large_folio(fd, last);
	ksft_print_msg("shrinker: last page in a large folio: %d, %d after drop_caches at once (%ld pages to move), %d once settled, %d after drop_caches then; control: %d, %d\n",
		       big[0], big[1], m.moving, big[2], big[3], cbig[0],
		       cbig[1]);
	acts(cbig[0] == 1 && cbig[1] == 0,
	     "shrinker: the shmem huge shrinker splits an unpreserved memfd's huge folio across EOF");
	if (big[2] != 1)
		ksft_test_result_skip("shrinker: no huge folio across EOF once settled (%d), nothing shown\n",
				      big[2]);
	else
		result(ok && big[3] == 1 && verify(fd, &shr_shape),
		       "shrinker: once settled it leaves the preserved memfd's huge folio across EOF whole, intact");
	close(ctl);
	close(fd);
}

static void shrinker_1(int sfd, __u64 token)
{
	int fd = luo_take(sfd, token);
	bool ok = verify(fd, &shr_shape);

	/* What lay past EOF in the folio reads as zeros once the file grows. */
	result(ok && !ftruncate(fd, SHR_GROWN) && verify(fd, &shr_grown),
	       "shrinker: intact up to EOF after the kexec, zero past it once grown");
	close(fd);
}

/* ---- collapse ---- */

/*
 * Memfds of two huge pages' worth, written in small pages: "full" has
 * every page, "holes" 64 KiB of every 128 KiB, so that a collapse would
 * fill holes.  MADV_COLLAPSE builds a huge folio and puts it in the page
 * cache in place of the small ones, outside shmem_add_to_page_cache(): on
 * a preserved memfd it fails on the references of the held small folios
 * (EAGAIN), which stay where they are, and the holes stay holes.  The
 * control, like "holes" but not preserved, collapses.  (collapse_file()
 * also refuses a preserved memfd outright, for folios not held yet, still
 * to move out of KHO scratch: a window this case does not aim at.)
 */
#define HPAGE		(2 * MIB)
#define COL_SIZE	(2 * HPAGE)

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE	25
#endif

static const struct shape col_full = {
	"collapse-full", COL_SIZE, 0, COL_SIZE, 0, 0, 71
};

static const struct shape col_holes = {
	"collapse-holes", COL_SIZE, 0, COL_SIZE, 128 * KIB, 64 * KIB, 72
};

static const struct shape col_ctl = {
	"collapse-control", COL_SIZE, 0, COL_SIZE, 128 * KIB, 64 * KIB, 73
};

/* MADV_COLLAPSE over all of @fd, mapped huge-page aligned: 0 or -errno. */
static int collapse(int fd)
{
	char *area = mmap(NULL, COL_SIZE + HPAGE, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *map;
	int ret;

	if (area == MAP_FAILED)
		return -errno;
	map = (char *)(((uintptr_t)area + HPAGE - 1) & ~(uintptr_t)(HPAGE - 1));
	if (mmap(map, COL_SIZE, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0) ==
	    MAP_FAILED) {
		ret = -errno;
	} else {
		madvise(map, COL_SIZE, MADV_HUGEPAGE);
		ret = madvise(map, COL_SIZE, MADV_COLLAPSE) ? -errno : 0;
	}
	munmap(area, COL_SIZE + HPAGE);
	return ret;
}

static void collapse_0(int sfd, __u64 token)
{
	static __u64 before[COL_SIZE / PG], after[COL_SIZE / PG];
	int full = thp_memfd(&col_full, "never");
	int holes = thp_memfd(&col_holes, "never");
	int ctl = thp_memfd(&col_ctl, "never"), ret[3], big[3];
	__u64 blocks = blocks_of(holes);
	char old[32];
	bool ok;

	ok = luo_keep(sfd, full, token) && luo_keep(sfd, holes, token + 1) &&
	     luo_settled(sfd, token) && luo_settled(sfd, token + 1) &&
	     pfns_of(full, COL_SIZE, before);
	thp_mode("advise", old, sizeof(old));
	ret[0] = collapse(full);
	ret[1] = collapse(holes);
	ret[2] = collapse(ctl);
	thp_mode(old, NULL, 0);
	big[0] = in_large_folio(full, 0);
	big[1] = in_large_folio(holes, 0);
	big[2] = in_large_folio(ctl, 0);
	ksft_print_msg("collapse: MADV_COLLAPSE %d, %d, control %d; first page in a large folio after: %d, %d, control %d; blocks of holes %llu, before %llu\n",
		       ret[0], ret[1], ret[2], big[0], big[1], big[2],
		       (unsigned long long)blocks_of(holes),
		       (unsigned long long)blocks);
	acts(!ret[2] && big[2] == 1,
	     "collapse: MADV_COLLAPSE collapses an unpreserved memfd's small pages and holes");
	result(ok && ret[0] && ret[1] && !big[0] && !big[1] &&
	       pfns_of(full, COL_SIZE, after) &&
	       !count_moved(before, after, COL_SIZE / PG) &&
	       blocks_of(holes) == blocks && verify(full, &col_full) &&
	       verify(holes, &col_holes),
	       "collapse: it fails on the preserved memfds: small pages in place, holes still holes, intact");
	close(ctl);
	close(holes);
	close(full);
}

static void collapse_1(int sfd, __u64 token)
{
	int full = luo_take(sfd, token), holes = luo_take(sfd, token + 1);

	result(verify(full, &col_full) && verify(holes, &col_holes),
	       "collapse: both intact after the kexec, holes still holes");
	close(holes);
	close(full);
}

/* ---- contig ---- */

#define CONTIG_SIZE	(256 * MIB)

static const struct shape contig_shape = {
	"contig", CONTIG_SIZE, 0, CONTIG_SIZE, 0, 0, 41
};

static const char *contig_missing(void)
{
	return block_bytes() ? NULL : "no memory blocks (memory hotplug)";
}

static void contig_0(int sfd, __u64 token)
{
	static __u64 before[CONTIG_SIZE / PG], after[CONTIG_SIZE / PG];
	__u64 n = CONTIG_SIZE / PG;
	int nodes = nr_nodes(), fd, bad = 0;
	struct offline_stats st;
	long giant, huge, mov;
	long long t;
	bool ok;

	/*
	 * On the last node: the first one holds most of the kernel's own
	 * memory, whose blocks memory offline refuses at once.
	 */
	if (nodes > 1 && sys_set_mempolicy(MPOL_BIND, 1UL << (nodes - 1)))
		ksft_print_msg("contig: bind to node %d: %s\n", nodes - 1,
			       strerror(errno));
	fd = make_memfd(&contig_shape);
	sys_set_mempolicy(MPOL_DEFAULT, 0);

	ok = luo_keep(sfd, fd, token) && luo_settled(sfd, token) &&
	     pfns_of(fd, CONTIG_SIZE, before);
	mov = ok ? in_movable(before, n) : 0;
	t = now_ms();
	giant = hugetlb_try(1048576, 1, 20000);
	huge = hugetlb_try(2048, 64, 20000);
	offline_all(2000, before, n, &bad, &st);
	ok = ok && pfns_of(fd, CONTIG_SIZE, after);
	ksft_print_msg("contig: %ld of %llu preserved pages in movable blocks; hugetlb: %ld 1 GiB, %ld 2 MiB pages; memory blocks: %d online, %d offlined and onlined again, %d refused, %d timed out, %d of them holding preserved pages and not refused at once (%lld ms)\n",
		       mov, (unsigned long long)n, giant, huge, st.blocks,
		       st.offlined, st.refused, st.timed_out, st.exposed,
		       now_ms() - t);
	acts(st.exposed > 0,
	     "contig: memory offline tries to migrate preserved pages (alloc_contig_range's isolation)");
	result(ok && !bad && !count_moved(before, after, n) &&
	       verify(fd, &contig_shape),
	       "contig: none of the preserved memfd's pages moved or went offline, intact");
	close(fd);
}

static void contig_1(int sfd, __u64 token)
{
	int fd = luo_take(sfd, token);

	result(verify(fd, &contig_shape), "contig: intact after the kexec");
	close(fd);
}

/* ---- numa ---- */

#define NUMA_SIZE	(16 * MIB)

static const struct shape numa_shape = {
	"numa", NUMA_SIZE, 0, NUMA_SIZE, 0, 0, 51
};

static const struct shape numa_ctl = {
	"numa-control", NUMA_SIZE, 0, NUMA_SIZE, 0, 0, 52
};

static const char *numa_missing(void)
{
	return nr_nodes() >= 2 ? NULL : "one NUMA node (no numa=fake=2?)";
}

static void numa_0(int sfd, __u64 token)
{
	static __u64 before[NUMA_SIZE / PG], after[NUMA_SIZE / PG];
	int nodes = nr_nodes(), fd, ctl, to = -1;
	long cmoved, pmoved, mb, mp;
	char *map, *cmap;
	bool ok;

	/* Both on node 0, then moved to node 1 and back. */
	sys_set_mempolicy(MPOL_BIND, 1);
	fd = make_memfd(&numa_shape);
	ctl = make_memfd(&numa_ctl);
	sys_set_mempolicy(MPOL_DEFAULT, 0);
	ok = luo_keep(sfd, fd, token) && luo_settled(sfd, token) &&
	     pfns_of(fd, NUMA_SIZE, before);
	map = mmap(NULL, NUMA_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	cmap = mmap(NULL, NUMA_SIZE, PROT_READ, MAP_SHARED, ctl, 0);
	if (map == MAP_FAILED || cmap == MAP_FAILED)
		luo_bail("map the numa memfds: %s", strerror(errno));
	touch(map, NUMA_SIZE);
	touch(cmap, NUMA_SIZE);
	cmoved = move_all(cmap, NUMA_SIZE, nodes, &to);
	pmoved = move_all(map, NUMA_SIZE, nodes, NULL);
	mb = sys_mbind(map, NUMA_SIZE, MPOL_BIND, 1UL << 1) ? -errno : 0;
	mp = sys_migrate_pages(1UL << 0, 1UL << 1);
	mp = mp < 0 ? -errno : mp;
	sys_mbind(map, NUMA_SIZE, MPOL_DEFAULT, 0);
	munmap(map, NUMA_SIZE);
	munmap(cmap, NUMA_SIZE);
	ok = ok && pfns_of(fd, NUMA_SIZE, after);
	ksft_print_msg("numa: %d nodes; move_pages moved %ld of the control's pages (to node %d), reported %ld of the preserved memfd's moved; mbind: %ld; migrate_pages: %ld\n",
		       nodes, cmoved, to, pmoved, mb, mp);
	acts(cmoved > 0,
	     "numa: move_pages moves an unpreserved memfd's pages to another node");
	result(ok && !count_moved(before, after, NUMA_SIZE / PG) &&
	       verify(fd, &numa_shape),
	       "numa: move_pages, mbind(MPOL_MF_MOVE) and migrate_pages move none of the preserved memfd's pages, intact");
	close(ctl);
	close(fd);
}

static void numa_1(int sfd, __u64 token)
{
	int fd = luo_take(sfd, token);

	result(verify(fd, &numa_shape), "numa: intact after the kexec");
	close(fd);
}

/* ---- uffd ---- */

/*
 * [0, 2 MiB) UFFDIO_COPY, [2, 3 MiB) UFFDIO_ZEROPAGE, [4, 5 MiB) faults of
 * a thread resolved with UFFDIO_COPY; the rest holes.
 */
#define UFFD_SIZE	(8 * MIB)
#define UFFD_ZERO	(2 * MIB)
#define UFFD_FAULT	(4 * MIB)
#define UFFD_PAGES	(4 * MIB / PG)

static const struct shape uffd_shape = {
	"uffd", UFFD_SIZE, 0, 5 * MIB, 4 * MIB, 2 * MIB, 61
};

struct faulter {
	pthread_t thread;
	const char *map;
	__u64 from, to;
	volatile bool done;
};

static void *faulter(void *arg)
{
	struct faulter *f = arg;

	touch(f->map + f->from, f->to - f->from);
	f->done = true;
	return NULL;
}

/*
 * Resolve the missing-page faults of @uffd in @map with @s's data until
 * @f is done or 30 s passed; how many faults were resolved, or -errno.
 */
static long serve_faults(int uffd, char *map, const struct shape *s,
			 struct faulter *f)
{
	struct pollfd p = { .fd = uffd, .events = POLLIN };
	long long t = now_ms();
	struct uffd_msg msg;
	long served = 0;
	__u64 off;
	int ret;

	while (!f->done && now_ms() - t < 30000) {
		if (poll(&p, 1, 100) <= 0)
			continue;
		while (read(uffd, &msg, sizeof(msg)) == sizeof(msg)) {
			if (msg.event != UFFD_EVENT_PAGEFAULT)
				continue;
			off = (msg.arg.pagefault.address - (uintptr_t)map) &
			      ~(PG - 1);
			ret = uffd_copy(uffd, map, s, off);
			if (ret)
				return ret;
			served++;
		}
	}
	return f->done ? served : -ETIMEDOUT;
}

static void uffd_0(int sfd, __u64 token)
{
	int fd = new_memfd("uffd", UFFD_SIZE), uffd = uffd_open();
	char *map = mmap(NULL, UFFD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
			 fd, 0);
	struct faulter f = {
		.map = map, .from = UFFD_FAULT, .to = UFFD_FAULT + MIB,
	};
	long served = 0;
	bool ok;

	ok = uffd >= 0 && map != MAP_FAILED &&
	     !uffd_register(uffd, map, UFFD_SIZE) && luo_keep(sfd, fd, token);
	for (__u64 off = 0; ok && off < UFFD_ZERO; off += PG)
		ok = !uffd_copy(uffd, map, &uffd_shape, off);
	ok = ok && !uffd_zero(uffd, map, UFFD_ZERO, MIB);
	if (ok) {
		pthread_create(&f.thread, NULL, faulter, &f);
		served = serve_faults(uffd, map, &uffd_shape, &f);
		/* Closing it lets a fault left over go on without it. */
		close(uffd);
		uffd = -1;
		pthread_join(f.thread, NULL);
	}
	ksft_print_msg("uffd: %ld faults resolved; %llu blocks, want %llu\n",
		       served, (unsigned long long)blocks_of(fd),
		       (unsigned long long)(UFFD_PAGES * PG / 512));
	ok = ok && served > 0 && luo_settled(sfd, token) &&
	     verify(fd, &uffd_shape) &&
	     blocks_of(fd) == UFFD_PAGES * PG / 512;
	result(ok, "uffd: UFFDIO_COPY, UFFDIO_ZEROPAGE and a thread's faults resolved into the preserved memfd");
	if (uffd >= 0)
		close(uffd);
	if (map != MAP_FAILED)
		munmap(map, UFFD_SIZE);
	close(fd);
}

static void uffd_1(int sfd, __u64 token)
{
	int fd = luo_take(sfd, token);
	__u64 blocks = fd >= 0 ? blocks_of(fd) : 0;

	ksft_print_msg("uffd: %llu blocks, want %llu\n",
		       (unsigned long long)blocks,
		       (unsigned long long)(UFFD_PAGES * PG / 512));
	result(verify(fd, &uffd_shape) && blocks == UFFD_PAGES * PG / 512,
	       "uffd: copied and zeroed pages intact after the kexec, holes still holes");
	close(fd);
}

/* ---- restore ---- */

/* 2048 pages: their page cache is filled after RETRIEVE_FD returns. */
#define RESTORE_SIZE	(8 * MIB)
#define RESTORE_WRITE	64

static const struct shape restore_shapes[] = {
	{ "restore-read", RESTORE_SIZE, 0, RESTORE_SIZE, 0, 0, 71 },
	{ "restore-populate", RESTORE_SIZE, 0, RESTORE_SIZE, 0, 0, 72 },
	{ "restore-write", RESTORE_SIZE, 0, RESTORE_SIZE, 0, 0, 73 },
};

static void restore_0(int sfd, __u64 token)
{
	bool ok = true;
	int fd;

	for (int i = 0; i < 3; i++) {
		fd = make_memfd(&restore_shapes[i]);
		ok &= luo_keep(sfd, fd, token + i);
		close(fd);
	}
	result(ok, "restore: 3 memfds of %llu MiB preserved", RESTORE_SIZE / MIB);
}

/* pread() the memfd from its end while the main thread faults it in. */
static void *back_reader(void *arg)
{
	static __u64 buf[PG / 8], want[PG / 8];
	int fd = *(int *)arg;
	long bad = 0;

	for (__u64 off = RESTORE_SIZE; off; ) {
		off -= PG;
		luo_fill(want, off, PG, restore_shapes[0].seed);
		bad += pread(fd, buf, PG, off) != PG || memcmp(buf, want, PG);
	}
	return (void *)bad;
}

static void restore_1(int sfd, __u64 token)
{
	const struct shape *s = restore_shapes;
	long bad[2] = { -1, -1 };
	pthread_t thread;
	void *ret = NULL;
	char *map;
	int fd;

	/* Read through a mapping at once: fault-around maps many pages. */
	fd = luo_take(sfd, token);
	map = mmap(NULL, RESTORE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	if (map != MAP_FAILED) {
		pthread_create(&thread, NULL, back_reader, &fd);
		bad[0] = map_mismatch(map, 0, RESTORE_SIZE, s[0].seed);
		pthread_join(thread, &ret);
		bad[1] = (long)ret;
		munmap(map, RESTORE_SIZE);
	}
	ksft_print_msg("restore: %ld pages wrong through the mapping, %ld through pread\n",
		       bad[0], bad[1]);
	result(!bad[0] && !bad[1] && verify(fd, &s[0]),
	       "restore: read at once through a mapping (fault-around) and pread");
	close(fd);

	fd = luo_take(sfd, token + 1);
	map = mmap(NULL, RESTORE_SIZE, PROT_READ, MAP_SHARED | MAP_POPULATE,
		   fd, 0);
	bad[0] = map == MAP_FAILED ? -1 :
		 map_mismatch(map, 0, RESTORE_SIZE, s[1].seed);
	if (map != MAP_FAILED)
		munmap(map, RESTORE_SIZE);
	result(!bad[0] && verify(fd, &s[1]),
	       "restore: mapped at once with MAP_POPULATE");
	close(fd);

	/* Every other page written at once through a mapping. */
	fd = luo_take(sfd, token + 2);
	map = mmap(NULL, RESTORE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		   fd, 0);
	bad[0] = -1;
	if (map != MAP_FAILED) {
		for (__u64 off = 0; off < RESTORE_SIZE; off += 2 * PG)
			luo_fill((__u64 *)(map + off), off, PG, RESTORE_WRITE);
		bad[0] = 0;
		for (__u64 off = 0; off < RESTORE_SIZE; off += 2 * PG)
			bad[0] += map_mismatch(map, off, PG, RESTORE_WRITE) +
				  map_mismatch(map, off + PG, PG, s[2].seed);
		munmap(map, RESTORE_SIZE);
	}
	result(!bad[0], "restore: written at once through a mapping");
	close(fd);
}

/* ---- torture ---- */

enum {
	TT_SPARSE, TT_THP, TT_EOF, TT_CLEAN, TT_UFFD, TT_MEMCG, TT_SWAPPED,
	TT_LATE, TT_HUGE, NR_TT
};

#define TT_LATE_SIZE	(16 * MIB)
/*
 * A hugetlb memfd of 8 pages of 2 MiB: the even ones written before
 * PRESERVE_FD, the odd ones after, through the mapping, the last with
 * UFFDIO_COPY.
 */
#define HPG		(2 * MIB)
#define TT_HUGE_SIZE	(8 * HPG)

static const struct shape tt_shapes[NR_TT] = {
	[TT_SPARSE] = { "t-sparse", 64 * MIB, 0, 64 * MIB, MIB + 3 * PG,
			2 * PG, 81 },
	[TT_THP] = { "t-thp", 8 * MIB, 0, 8 * MIB, 0, 0, 82 },
	[TT_EOF] = { "t-eof", SHR_SIZE, 0, SHR_SIZE, 0, 0, 83 },
	[TT_CLEAN] = { .name = "t-clean", .size = 8 * MIB },
	[TT_UFFD] = { "t-uffd", UFFD_SIZE, 0, 5 * MIB, 4 * MIB, 2 * MIB, 84 },
	[TT_MEMCG] = { "t-memcg", 8 * MIB, 0, 8 * MIB, 0, 0, 85 },
	[TT_SWAPPED] = { "t-swapped", 8 * MIB, 0, 8 * MIB, 0, 0, 86 },
	[TT_LATE] = { "t-late", TT_LATE_SIZE, 0, TT_LATE_SIZE, 0, 0, 87 },
	[TT_HUGE] = { "t-huge", TT_HUGE_SIZE, 0, TT_HUGE_SIZE, 0, 0, 88 },
};

/*
 * No holes: the hammers may fault every page in.  Not the hugetlb memfd,
 * whose holes must still be holes at PRESERVE_FD.
 */
static bool tt_dense(int i)
{
	return i != TT_SPARSE && i != TT_UFFD && i != TT_HUGE;
}

enum {
	H_DROP, H_COMPACT, H_PAGEOUT, H_MOVE, H_SWAP, H_HUGETLB, H_OFFLINE,
	NR_H
};

static const char * const hammer_names[NR_H] = {
	"drop_caches", "compaction", "MADV_PAGEOUT", "move_pages",
	"zram+memcg pressure", "hugetlb 1G/2M", "memory offline",
};

static int tt_fd[NR_TT];
static pid_t hammers[NR_H];
static char *tt_huge_map;

/*
 * The hugetlb memfd, mapped whole: the mapping reserves its 8 pool pages,
 * so that the pool hammer cannot take those still to be faulted in.
 */
static int tt_huge_new(void)
{
	char path[96];
	int fd;

	snprintf(path, sizeof(path), HUGE_PATH, 2048ULL);
	luo_write_file(path, "8");
	fd = memfd_create(tt_shapes[TT_HUGE].name, MFD_HUGETLB | MFD_HUGE_2MB);
	if (fd < 0 || ftruncate(fd, TT_HUGE_SIZE))
		luo_bail("hugetlb memfd of %llu bytes: %s",
			 (unsigned long long)TT_HUGE_SIZE, strerror(errno));
	tt_huge_map = mmap(NULL, TT_HUGE_SIZE, PROT_READ | PROT_WRITE,
			   MAP_SHARED, fd, 0);
	if (tt_huge_map == MAP_FAILED)
		luo_bail("map %s with 8 free pool pages: %s",
			 tt_shapes[TT_HUGE].name, strerror(errno));
	luo_write_file(path, "0");
	return fd;
}

/* Write huge pages @first, @first + 2, ... below @end of the hugetlb memfd. */
static void tt_huge_write(unsigned int first, __u64 end)
{
	const struct shape *s = &tt_shapes[TT_HUGE];

	for (__u64 off = first * HPG; off < end; off += 2 * HPG)
		for (__u64 p = off; p < off + HPG; p += PG)
			luo_fill((__u64 *)(tt_huge_map + p), p, PG, s->seed);
}

/*
 * The last huge page of the hugetlb memfd, a hole until now, filled with
 * UFFDIO_COPY through a mapping of it alone registered with userfaultfd.
 * Returns how, or NULL on failure.
 */
static const char *tt_huge_copy_last(void)
{
	const struct shape *s = &tt_shapes[TT_HUGE];
	const __u64 last = s->size - HPG;
	struct uffdio_api api = {
		.api = UFFD_API, .features = UFFD_FEATURE_MISSING_HUGETLBFS,
	};
	struct uffdio_register reg = {
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	struct uffdio_copy copy = { .len = HPG };
	const char *how = "UFFDIO_COPY";
	__u64 *src = malloc(HPG);
	char *map;
	int uffd;

	map = mmap(NULL, HPG, PROT_READ | PROT_WRITE, MAP_SHARED,
		   tt_fd[TT_HUGE], last);
	if (!src || map == MAP_FAILED)
		luo_bail("map the last page of %s: %s", s->name, strerror(errno));
	for (__u64 p = 0; p < HPG; p += PG)
		luo_fill(src + p / 8, last + p, PG, s->seed);
	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0) {
		/* No userfaultfd in this kernel: a plain write. */
		memcpy(map, src, HPG);
		how = "a plain write (no userfaultfd)";
		goto out;
	}
	reg.range.start = (uintptr_t)map;
	reg.range.len = HPG;
	copy.dst = (uintptr_t)map;
	copy.src = (uintptr_t)src;
	if (ioctl(uffd, UFFDIO_API, &api) ||
	    ioctl(uffd, UFFDIO_REGISTER, &reg) ||
	    ioctl(uffd, UFFDIO_COPY, &copy)) {
		ksft_print_msg("%s: UFFDIO_COPY into its last page: %s\n",
			       s->name, strerror(errno));
		how = NULL;
	}
out:
	if (uffd >= 0)
		close(uffd);
	munmap(map, HPG);
	free(src);
	return how;
}

/* One hammer's loop, in a child, until it is killed. */
static void __noreturn hammer(int h)
{
	__u64 *pressure = NULL;
	struct offline_stats st;
	int nodes = nr_nodes();
	char *map;

	if (h == H_SWAP) {
		pressure = mmap(NULL, 64 * MIB, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (pressure == MAP_FAILED || luo_memcg_enter(CG_PRESSURE))
			_exit(1);
	}
	for (unsigned long round = 0; ; round++) {
		switch (h) {
		case H_DROP:
			drop_all_caches();
			sleep_ms(50);
			break;
		case H_COMPACT:
			luo_write_file("/proc/sys/vm/compact_memory", "1");
			sleep_ms(100);
			break;
		case H_PAGEOUT:
		case H_MOVE:
			for (int i = 0; i < NR_TT; i++) {
				if (!tt_dense(i))
					continue;
				if (h == H_PAGEOUT) {
					pageout(tt_fd[i], tt_shapes[i].size);
					continue;
				}
				map = mmap(NULL, tt_shapes[i].size, PROT_READ,
					   MAP_SHARED, tt_fd[i], 0);
				if (map == MAP_FAILED)
					continue;
				touch(map, tt_shapes[i].size);
				move_all(map, tt_shapes[i].size & ~(PG - 1),
					 nodes, NULL);
				munmap(map, tt_shapes[i].size);
			}
			sleep_ms(20);
			break;
		case H_SWAP:
			/* 64 MiB in a 24 MiB cgroup: always swapping. */
			for (__u64 i = 0; i < 64 * MIB / 8; i += PG / 8)
				pressure[i] = round + i;
			break;
		case H_HUGETLB:
			hugetlb_try(2048, 32, 5000);
			if (round % 4 == 0)
				hugetlb_try(1048576, 1, 10000);
			sleep_ms(100);
			break;
		case H_OFFLINE:
			offline_all(1000, NULL, 0, NULL, &st);
			sleep_ms(100);
			break;
		}
	}
}

/* Which hammers can run here; the reason of the first that cannot. */
static bool hammer_can(int h)
{
	char path[96];

	switch (h) {
	case H_MOVE:
		return nr_nodes() >= 2;
	case H_SWAP:
		return !swap_missing() &&
		       !luo_memcg_create(CG_PRESSURE, 24 * MIB);
	case H_HUGETLB:
		snprintf(path, sizeof(path), HUGE_PATH, 2048ULL);
		return !access(path, W_OK);
	case H_OFFLINE:
		return block_bytes();
	}
	return true;
}

static void hammers_start(char *list, size_t len)
{
	pid_t pid;

	list[0] = '\0';
	for (int h = 0; h < NR_H; h++) {
		hammers[h] = 0;
		if (!hammer_can(h))
			continue;
		fflush(stdout);
		pid = fork();
		if (!pid)
			hammer(h);
		hammers[h] = pid > 0 ? pid : 0;
		if (pid > 0)
			snprintf(list + strlen(list), len - strlen(list),
				 "%s%s", *list ? ", " : "", hammer_names[h]);
	}
}

static void hammer_stop(int h)
{
	if (hammers[h] <= 0)
		return;
	kill(hammers[h], SIGKILL);
	waitpid(hammers[h], NULL, 0);
	hammers[h] = 0;
}

/* Online again whatever a killed offline hammer left offline. */
static void online_all(void)
{
	static int ids[4096];
	int nr = memory_blocks(ids, ARRAY_SIZE(ids));
	char path[96];

	for (int b = 0; b < nr; b++) {
		if (block_is(ids[b], "online", "1"))
			continue;
		snprintf(path, sizeof(path), MEM_PATH "/memory%d/online",
			 ids[b]);
		luo_write_file(path, "1");
	}
}

struct late_writer {
	pthread_t thread;
	int fd;
};

static void *late_writer(void *arg)
{
	struct late_writer *w = arg;

	write_part(w->fd, &tt_shapes[TT_LATE], TT_LATE_SIZE / 2, TT_LATE_SIZE);
	return NULL;
}

/*
 * The uffd memfd's data after PRESERVE_FD: through userfaultfd if @map is
 * registered with @uffd, with plain writes otherwise.
 */
static bool tt_uffd_fill(int fd, int uffd, char *map)
{
	const struct shape *s = &tt_shapes[TT_UFFD];
	static char zero[MIB];
	struct faulter f = {
		.map = map, .from = UFFD_FAULT, .to = UFFD_FAULT + MIB,
	};
	long served;
	bool ok = true;

	if (uffd < 0) {
		write_part(fd, s, 0, UFFD_ZERO);
		write_part(fd, s, UFFD_FAULT, UFFD_FAULT + MIB);
		return pwrite(fd, zero, MIB, UFFD_ZERO) == MIB;
	}
	for (__u64 off = 0; ok && off < UFFD_ZERO; off += PG)
		ok = !uffd_copy(uffd, map, s, off);
	ok = ok && !uffd_zero(uffd, map, UFFD_ZERO, MIB);
	if (!ok)
		return false;
	pthread_create(&f.thread, NULL, faulter, &f);
	served = serve_faults(uffd, map, s, &f);
	close(uffd);
	pthread_join(f.thread, NULL);
	return served > 0;
}

static void torture_0(int sfd, __u64 token)
{
	char list[256], old[32];
	long swapped = -1, moved;
	long long slowest = -1;
	const char *how;
	int slow = 0;
	struct late_writer w;
	int uffd;
	char *umap;
	long long t;
	bool ok = true, thp = thp_available();

	/* Every shape, set up as far as this kernel can. */
	if (thp)
		thp_mode("always", old, sizeof(old));
	tt_fd[TT_SPARSE] = make_memfd(&tt_shapes[TT_SPARSE]);
	tt_fd[TT_THP] = make_memfd(&tt_shapes[TT_THP]);
	tt_fd[TT_EOF] = make_memfd(&tt_shapes[TT_EOF]);
	if (thp)
		thp_mode(old, NULL, 0);
	tt_fd[TT_CLEAN] = read_faulted(tt_shapes[TT_CLEAN].name, 8 * MIB);
	tt_fd[TT_UFFD] = new_memfd(tt_shapes[TT_UFFD].name, UFFD_SIZE);
	if (!memcg_missing())
		luo_memcg_enter(CG_CASES);
	tt_fd[TT_MEMCG] = make_memfd(&tt_shapes[TT_MEMCG]);
	luo_memcg_enter(NULL);
	tt_fd[TT_SWAPPED] = make_memfd(&tt_shapes[TT_SWAPPED]);
	if (!swap_missing()) {
		pageout(tt_fd[TT_SWAPPED], 8 * MIB);
		swapped = 8 * MIB / PG - resident(tt_fd[TT_SWAPPED], 8 * MIB);
	}
	tt_fd[TT_LATE] = new_memfd(tt_shapes[TT_LATE].name, TT_LATE_SIZE);
	write_part(tt_fd[TT_LATE], &tt_shapes[TT_LATE], 0, TT_LATE_SIZE / 2);
	tt_fd[TT_HUGE] = tt_huge_new();
	tt_huge_write(0, TT_HUGE_SIZE);

	/*
	 * PRESERVE_FD while the hammers run; then writes and fills.  The
	 * userfaultfd comes after the fork: a hammer holding it would keep
	 * a fault left over waiting after we close it.
	 */
	hammers_start(list, sizeof(list));
	uffd = uffd_open();
	umap = mmap(NULL, UFFD_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		    tt_fd[TT_UFFD], 0);
	if (umap == MAP_FAILED)
		luo_bail("map t-uffd: %s", strerror(errno));
	if (uffd >= 0 && uffd_register(uffd, umap, UFFD_SIZE)) {
		close(uffd);
		uffd = -1;
	}
	ksft_print_msg("torture: shmem THP %s, userfaultfd %s, %ld pages swapped out before PRESERVE_FD; hammers: %s\n",
		       thp ? "on" : "off", uffd >= 0 ? "on" : "off", swapped,
		       list);
	sleep_ms(500);
	t = now_ms();
	for (int i = 0; i < NR_TT; i++) {
		long long t1 = now_ms();

		ok &= luo_keep(sfd, tt_fd[i], token + i);
		if (now_ms() - t1 > slowest) {
			slowest = now_ms() - t1;
			slow = i;
		}
	}
	ksft_print_msg("torture: PRESERVE_FD of %d memfds: %lld ms, the slowest %s: %lld ms\n",
		       NR_TT, now_ms() - t, tt_shapes[slow].name, slowest);
	w.fd = tt_fd[TT_LATE];
	pthread_create(&w.thread, NULL, late_writer, &w);
	ok &= tt_uffd_fill(tt_fd[TT_UFFD], uffd, umap);
	tt_huge_write(1, TT_HUGE_SIZE - HPG);
	how = tt_huge_copy_last();
	ok &= !!how;
	ksft_print_msg("torture: the hugetlb memfd's holes filled after PRESERVE_FD through its mapping, the last by %s\n",
		       how ? how : "UFFDIO_COPY, which failed");
	pthread_join(w.thread, NULL);
	result(ok, "torture: %d memfds of every shape preserved, written and filled by userfaultfd under %s",
	       NR_TT, list);

	/* Through settling, and some more. */
	t = now_ms();
	ok = true;
	for (int i = 0; i < NR_TT; i++)
		ok &= luo_settled(sfd, token + i);
	ksft_print_msg("torture: settled in %lld ms\n", now_ms() - t);
	/* Held: move_pages() moves none of the preserved huge pages. */
	if (nr_nodes() >= 2) {
		moved = move_all(tt_huge_map, TT_HUGE_SIZE, nr_nodes(), NULL);
		ksft_print_msg("torture: move_pages of the hugetlb memfd: %ld of %llu base pages moved\n",
			       moved, TT_HUGE_SIZE / PG);
		ok &= moved <= 0;
	}
	sleep_ms(3000);
	for (int i = 0; i < NR_TT; i++)
		ok &= verify(tt_fd[i], &tt_shapes[i]);
	result(ok, "torture: settled, every page intact while hammered");

	/*
	 * The tenant needs the memory now; the other hammers go on up to
	 * the kexec.
	 */
	hammer_stop(H_HUGETLB);
	hammer_stop(H_OFFLINE);
	hugetlb_try(2048, 0, 5000);
	hugetlb_try(1048576, 0, 5000);
	online_all();
	munmap(umap, UFFD_SIZE);
	munmap(tt_huge_map, TT_HUGE_SIZE);
}

/* Does every memfd of the torture hold what it should? */
static bool tt_verify(const int *fd)
{
	bool ok = true;

	for (int i = 0; i < NR_TT; i++)
		ok &= verify(fd[i], &tt_shapes[i]);
	return ok;
}

static void torture_1(int sfd, __u64 token)
{
	long pages = 0, left = 0;
	int fd[NR_TT];
	bool ok;

	/* Restored memfds charged to a memory cgroup, to reclaim them. */
	swap_missing();
	if (!memcg_missing())
		luo_memcg_enter(CG_CASES);
	for (int i = 0; i < NR_TT; i++)
		fd[i] = luo_take(sfd, token + i);
	luo_memcg_enter(NULL);
	result(tt_verify(fd),
	       "torture: every page of every memfd intact after the kexec, holes zero, no tenant's marker");

	drop_all_caches();
	for (int i = 0; i < NR_TT; i++) {
		if (!tt_dense(i) || fd[i] < 0)
			continue;
		pageout(fd[i], tt_shapes[i].size);
		pages += tt_shapes[i].size / PG;
		left += resident(fd[i], tt_shapes[i].size);
	}
	if (!memcg_missing())
		luo_memcg_reclaim(CG_CASES, 256 * MIB);
	drop_all_caches();
	ksft_print_msg("torture: %ld of %ld pages of the restored memfds resident after drop_caches, MADV_PAGEOUT and memory.reclaim\n",
		       left, pages);
	ok = tt_verify(fd);
	result(ok, "torture: intact again after drop_caches, MADV_PAGEOUT and memory.reclaim in the new kernel");
	for (int i = 0; i < NR_TT; i++)
		if (fd[i] >= 0)
			close(fd[i]);
}

/* ---- the stages ---- */

struct mm_case {
	const char *name;
	int nr0, nr1;		/* KTAP results in stage 0 and in stage 1 */
	const char *(*missing)(void);	/* why it cannot run, or NULL */
	void (*before)(int sfd, __u64 token);
	void (*after)(int sfd, __u64 token);
};

static const struct mm_case cases[] = {
	{ "clean", 3, 1, NULL, clean_0, clean_1 },
	{ "reclaim", 2, 1, reclaim_missing, reclaim_0, reclaim_1 },
	{ "swapin", 2, 1, swap_missing, swapin_0, swapin_1 },
	{ "eofswap", 2, 1, eofswap_missing, eofswap_0, eofswap_1 },
	{ "shrinker", 2, 1, thp_missing, shrinker_0, shrinker_1 },
	{ "collapse", 2, 1, thp_missing, collapse_0, collapse_1 },
	{ "contig", 2, 1, contig_missing, contig_0, contig_1 },
	{ "numa", 2, 1, numa_missing, numa_0, numa_1 },
	{ "uffd", 1, 1, uffd_missing, uffd_0, uffd_1 },
	{ "restore", 1, 3, NULL, restore_0, restore_1 },
	{ "torture", 2, 2, NULL, torture_0, torture_1 },
};

/* Each case's files: tokens from its own base on. */
static __u64 case_token(const struct mm_case *c)
{
	return (c - cases + 1) * 100;
}

/* The manifest memfd, token T_MANIFEST: which cases ran in stage 0. */
struct record {
	char name[16];
	char why[112];		/* empty if it ran, else why it could not */
};

/*
 * A tenant: a child that fills most free memory with MARKER, mlocked, and
 * holds it until the kexec.  Returns the bytes it holds, 0 on failure.
 */
static __u64 tenant(void)
{
	__u64 avail = luo_meminfo_kb("MemAvailable") * KIB, bytes, got = 0;
	int p[2];
	pid_t pid;

	bytes = avail > 320 * MIB ? avail - 256 * MIB : 64 * MIB;
	bytes = bytes > 512 * MIB ? 512 * MIB : bytes;
	if (pipe(p))
		return 0;
	fflush(stdout);
	pid = fork();
	if (!pid) {
		__u64 *mem;

		close(p[0]);
		luo_write_file("/proc/self/oom_score_adj", "1000");
		/* Locked: zram would not keep the marker in freed pages. */
		mlockall(MCL_CURRENT | MCL_FUTURE);
		do
			mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		while (mem == MAP_FAILED && (bytes /= 2) >= 64 * MIB);
		if (mem == MAP_FAILED)
			_exit(1);
		for (__u64 i = 0; i < bytes / 8; i++)
			mem[i] = MARKER;
		if (write(p[1], &bytes, sizeof(bytes)) != sizeof(bytes))
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	if (pid < 0 || read(p[0], &got, sizeof(got)) != sizeof(got))
		got = 0;
	close(p[0]);
	return got;
}

/* What this machine offers the cases. */
static void describe_machine(void)
{
	static int ids[4096];
	int nr = memory_blocks(ids, ARRAY_SIZE(ids)), movable = 0;

	for (int b = 0; b < nr; b++)
		movable += block_is(ids[b], "valid_zones", "Movable");
	ksft_print_msg("machine: %d NUMA nodes, %d memory blocks of %llu MiB (%d movable), MemFree %ld kB, CmaFree %ld kB\n",
		       nr_nodes(), nr, (unsigned long long)(block_bytes() / MIB),
		       movable, luo_meminfo_kb("MemFree"),
		       luo_meminfo_kb("CmaFree"));
}

static void __noreturn stage_0(const struct mm_case **run, int nr)
{
	static struct record rec[ARRAY_SIZE(cases)];
	int plan = 1, sfd, mfd, ret;
	const char *why;
	__u64 held;
	bool ok;

	for (int i = 0; i < nr; i++)
		plan += run[i]->nr0;
	ksft_set_plan(plan);
	describe_machine();
	sfd = luo_must_create_session(dev, SESSION);
	for (int i = 0; i < nr; i++) {
		why = run[i]->missing ? run[i]->missing() : NULL;
		snprintf(rec[i].name, sizeof(rec[i].name), "%s", run[i]->name);
		snprintf(rec[i].why, sizeof(rec[i].why), "%s", why ?: "");
		if (!why) {
			run[i]->before(sfd, case_token(run[i]));
			continue;
		}
		for (int k = 0; k < run[i]->nr0; k++)
			ksft_test_result_skip("%s: %s\n", run[i]->name, why);
	}
	mfd = new_memfd("manifest", sizeof(rec));
	ok = pwrite(mfd, rec, sizeof(rec), 0) == sizeof(rec) &&
	     luo_keep(sfd, mfd, T_MANIFEST);
	held = tenant();
	ksft_print_msg("tenant: %llu MiB of marker, MemFree %ld kB\n",
		       (unsigned long long)(held / MIB),
		       luo_meminfo_kb("MemFree"));
	result(ok && held, "manifest preserved; a tenant holds %llu MiB of freed memory",
	       (unsigned long long)(held / MIB));
	/* On to stage 1 even after failures: it shows what they cost. */
	ret = next_stage();
	ksft_test_result_fail("kexec into stage 1\n");
	ksft_exit_fail_msg("%s returned %d\n", LUO_NEXT_STAGE, ret);
}

static void __noreturn stage_1(const struct mm_case **run, int nr)
{
	static struct record rec[ARRAY_SIZE(cases)];
	int plan = 1, sfd = -1, mfd;
	const struct record *r;

	for (int i = 0; i < nr; i++)
		plan += run[i]->nr1;
	ksft_set_plan(plan);
	if (luo_retrieve_session(dev, SESSION, &sfd))
		luo_bail("retrieve session %s", SESSION);
	mfd = luo_take(sfd, T_MANIFEST);
	if (mfd < 0 || pread(mfd, rec, sizeof(rec), 0) != sizeof(rec))
		luo_bail("read the manifest");
	for (int i = 0; i < nr; i++) {
		r = NULL;
		for (unsigned int k = 0; k < ARRAY_SIZE(rec) && !r; k++)
			if (!strcmp(rec[k].name, run[i]->name))
				r = &rec[k];
		if (r && !r->why[0]) {
			run[i]->after(sfd, case_token(run[i]));
			continue;
		}
		for (int k = 0; k < run[i]->nr1; k++) {
			if (r)
				ksft_test_result_skip("%s: %s\n", run[i]->name,
						      r->why);
			else
				ksft_test_result_fail("%s: not in the manifest\n",
						      run[i]->name);
		}
	}
	result(!luo_finish(sfd), "finish");
	ksft_finished();
}

int main(int argc, char **argv)
{
	const struct mm_case *run[ARRAY_SIZE(cases)];
	int nr = 0;

	stage = luo_stage();
	for (int i = 1; i < argc && nr >= 0; i++) {
		unsigned int k = 0;

		while (k < ARRAY_SIZE(cases) && strcmp(argv[i], cases[k].name))
			k++;
		if (k == ARRAY_SIZE(cases) || nr == ARRAY_SIZE(cases))
			nr = -1;
		else
			run[nr++] = &cases[k];
	}
	if (nr <= 0) {
		fprintf(stderr, "%s CASE..., with LUO_STAGE=N; cases:", argv[0]);
		for (unsigned int k = 0; k < ARRAY_SIZE(cases); k++)
			fprintf(stderr, " %s", cases[k].name);
		fprintf(stderr, "\n");
		return KSFT_FAIL;
	}
	ksft_print_header();
	if (access(LUO_DEVICE, F_OK))
		ksft_exit_skip("%s missing\n", LUO_DEVICE);
	dev = luo_open_device();
	if (dev < 0)
		ksft_exit_fail_msg("open %s: %s\n", LUO_DEVICE, strerror(-dev));
	if (stage == 0)
		stage_0(run, nr);
	if (stage == 1)
		stage_1(run, nr);
	ksft_exit_fail_msg("no stage %d\n", stage);
}
