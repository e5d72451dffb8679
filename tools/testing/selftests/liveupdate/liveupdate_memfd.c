// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: memfds carried across kexec reboots.
 *
 *   liveupdate_memfd SCENARIO     (LUO_STAGE=N, see liveupdate_test.h)
 *
 * core:  stage 0 creates memfds of every shape (256 MiB full, sizes 0, 1
 *        byte, one page and unaligned, 64 GiB and 4 TiB sparse, THP-backed,
 *        one per seal, MFD_NOEXEC_SEAL and MFD_EXEC, written after
 *        PRESERVE_FD from another process, never retrieved) and kexecs;
 *        stage 1 checks every byte, hole and property, once the memfds
 *        are preloaded.
 * core-nopreload: the same, the next kernel booted with
 *        liveupdate_preload=off: RETRIEVE_FD restores each memfd itself.
 * paths: one boot: what holds while a memfd is preserved (size locked,
 *        seals, refusals), and that unpreserve and closing the session
 *        give back an ordinary memfd (the debug kernel's kmemleak checks
 *        that nothing leaks).
 * hops:  three consecutive kexecs; each stage verifies the checksums of
 *        everything, changes some of it, and preserves it again into the
 *        same session after FINISH.
 * memcg: a retrieved memfd is charged to the memory cgroup of the task that
 *        retrieves it, and uncharged when it is freed (needs CONFIG_MEMCG).
 * lazy:  memfds whose page cache is filled after RETRIEVE_FD returns, each
 *        used at once in one way (read, fault, write, SEEK_DATA, punch,
 *        truncate, splice, preserve again, collapse, stat, close): each
 *        must see the whole memfd, as if it had been filled before; with
 *        debugfs fail_memfd_restore, one whose filling fails gives EIO.
 * scratch: a memfd with pages in KHO scratch, preserved, written by a
 *        child and kexeced at once: the reboot waits for the pages to
 *        move out of scratch, and every byte arrives.
 * vmsplice: a memfd with a page in KHO scratch that a pipe holds
 *        (vmsplice): the move out of scratch stops on it, the reboot
 *        fails, and once the pipe is drained the move resumes and the
 *        kexec works; stage 1 checks every byte.
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
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/memfd.h>

#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC	0x0020
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL	0x0008U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC	0x0010U
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE	25
#endif

#include "liveupdate_test.h"
#include "kselftest.h"

#define MiB		(1024ULL * 1024)
#define GiB		(1024 * MiB)
#define TiB		(1024 * GiB)
#define PG		4096ULL
/* put() and check() move data a chunk at a time. */
#define CHUNK		MiB
/* Page 64^3: the page cache needs one more level from there on. */
#define EDGE_OFF	(262144 * PG)

#define FULL_SIZE	(256 * MiB)
#define FULL_POS	12345
#define LATE_SIZE	(16 * MiB)
#define THP_SIZE	(8 * MiB)
#define UNRET_SIZE	(64 * MiB)
#define ODD_SIZE	(3 * PG + 100)

/* A sparse memfd: @nr_runs runs of @run bytes, @step apart, and a last page. */
struct sparse {
	const char *name;
	__u64 size, step, run, seed;
};

static const struct sparse sparse64g = {
	"sparse64g", 64 * GiB, 64 * MiB + 5 * PG, PG, 2
};

static const struct sparse sparse4t = {
	"sparse4t", 4 * TiB, 512 * GiB + 3 * PG, MiB, 3
};

enum {
	T_FULL = 1, T_SPARSE64G, T_SPARSE4T, T_ZERO, T_BYTE, T_PAGE, T_ODD,
	T_NOEXEC, T_EXEC, T_LATE, T_THP, T_RDONLY, T_APPEND, T_EDGE, T_SEALS,
};

static const unsigned int seals[] = {
	F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE,
	F_SEAL_FUTURE_WRITE, F_SEAL_EXEC,
};

#define NR_SEALS	ARRAY_SIZE(seals)
#define WRITE_SEALS	(F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | \
			 F_SEAL_FUTURE_WRITE)

/* The seals @seal gives: F_SEAL_EXEC on an executable memfd implies W^X. */
static unsigned int seals_of(unsigned int seal)
{
	return seal == F_SEAL_EXEC ? seal | WRITE_SEALS : seal;
}

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

static __u64 word_at(__u64 off, __u64 seed)
{
	__u64 x = (off + 1) * 0x9e3779b97f4a7c15ULL ^ seed;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	return x ^ (x >> 29);
}

static void fill(__u64 *buf, __u64 off, size_t len, __u64 seed)
{
	size_t i;

	for (i = 0; i < len / 8; i++)
		buf[i] = word_at(off + i * 8, seed);
	if (len % 8) {
		__u64 last = word_at(off + i * 8, seed);

		memcpy(&buf[i], &last, len % 8);
	}
}

/* Write [off, off + len) with the pattern of @seed. */
static int put(int fd, __u64 off, __u64 len, __u64 seed)
{
	static __u64 buf[CHUNK / 8];
	__u64 n;

	while (len) {
		n = len < CHUNK ? len : CHUNK;
		fill(buf, off, n, seed);
		if (pwrite(fd, buf, n, off) != (ssize_t)n)
			return -errno;
		off += n;
		len -= n;
	}
	return 0;
}

/* Does [off, off + len) hold the pattern of @seed? */
static bool check(int fd, __u64 off, __u64 len, __u64 seed)
{
	static __u64 buf[CHUNK / 8 + 1], want[CHUNK / 8 + 1];
	__u64 n;

	while (len) {
		n = len < CHUNK ? len : CHUNK;
		fill(want, off, n, seed);
		if (pread(fd, buf, n, off) != (ssize_t)n ||
		    memcmp(buf, want, n)) {
			ksft_print_msg("mismatch in [%llu, +%llu)\n",
				       (unsigned long long)off,
				       (unsigned long long)n);
			return false;
		}
		off += n;
		len -= n;
	}
	return true;
}

static int new_memfd(const char *name, unsigned int flags, __u64 size)
{
	int fd = memfd_create(name, flags);

	if (fd < 0)
		ksft_exit_fail_msg("memfd_create %s: %s\n", name,
				   strerror(errno));
	if (size && ftruncate(fd, size))
		ksft_exit_fail_msg("ftruncate %s: %s\n", name, strerror(errno));
	return fd;
}

static bool size_is(int fd, __u64 size)
{
	struct stat st;

	return !fstat(fd, &st) && (__u64)st.st_size == size;
}

static __u64 blocks_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? ~0ULL : (__u64)st.st_blocks;
}

/* Data ranges of @s, in order: run starts, then the last page. */
static int sparse_nr(const struct sparse *s)
{
	return (s->size - PG + s->step - 1) / s->step + 1;
}

static __u64 sparse_off(const struct sparse *s, int i, __u64 *len)
{
	if (i == sparse_nr(s) - 1) {
		*len = PG;
		return s->size - PG;
	}
	*len = s->run;
	return (i * s->step) & ~(PG - 1);
}

static int sparse_create(const struct sparse *s)
{
	int fd = new_memfd(s->name, 0, s->size);
	__u64 off, len;

	for (int i = 0; i < sparse_nr(s); i++) {
		off = sparse_off(s, i, &len);
		if (put(fd, off, len, s->seed))
			ksft_exit_fail_msg("write %s: %s\n", s->name,
					   strerror(errno));
	}
	return fd;
}

/* @fd holds exactly the data of @s (SEEK_DATA/SEEK_HOLE), intact. */
static bool sparse_intact(int fd, const struct sparse *s)
{
	__u64 off, len, pages = 0;
	off_t data, hole;

	if (fd < 0 || !size_is(fd, s->size))
		return false;
	for (int i = 0; i < sparse_nr(s); i++) {
		off = sparse_off(s, i, &len);
		data = lseek(fd, i ? off - PG : 0, SEEK_DATA);
		hole = data < 0 ? -1 : lseek(fd, data, SEEK_HOLE);
		if ((__u64)data != off || (__u64)hole != off + len) {
			ksft_print_msg("%s: data [%lld, %lld), want [%llu, %llu)\n",
				       s->name, (long long)data,
				       (long long)hole,
				       (unsigned long long)off,
				       (unsigned long long)(off + len));
			return false;
		}
		if (!check(fd, off, len, s->seed))
			return false;
		pages += len / PG;
	}
	if (blocks_of(fd) != pages * (PG / 512)) {
		ksft_print_msg("%s: %llu blocks, want %llu\n", s->name,
			       blocks_of(fd), pages * (PG / 512));
		return false;
	}
	return true;
}

static bool thp_available(void)
{
	return !access("/sys/kernel/mm/transparent_hugepage/shmem_enabled",
		       W_OK);
}

/* ---- core ---- */

/*
 * The metadata bytes used and allocated for the preserved memfd @fd, and
 * its pages still to be moved out of CMA, from the handler's debugfs
 * statistics; false if it is not listed.
 */
static bool memfd_stats(int fd, long *used, long *alloc, long *moving)
{
	struct luo_memfd_stats m;

	if (!luo_memfd_stats(fd, &m))
		return false;
	*used = m.used;
	*alloc = m.alloc;
	*moving = m.moving;
	return true;
}

/*
 * Wait until the folios PRESERVE_FD found in CMA are moved out and
 * described (at most a minute); false if that does not happen.
 */
static bool memfd_moved(int fd)
{
	long used, alloc, moving;

	for (int i = 0; i < 6000; i++) {
		if (!memfd_stats(fd, &used, &alloc, &moving))
			return false;
		if (!moving)
			return true;
		usleep(10000);
	}
	ksft_print_msg("%ld pages still to move out of CMA\n", moving);
	return false;
}

/* The metadata bytes of @fd, once complete. */
static bool memfd_meta(int fd, long *used, long *alloc)
{
	long moving;

	return memfd_moved(fd) && memfd_stats(fd, used, alloc, &moving);
}

static bool pool_is(const char *dir, const char *want)
{
	return luo_flb_is(dir, "memfd-metadata", want);
}

static void core_0(void)
{
	int sfd, usfd, full, s64, s4t, zero, byte, page, odd, noexec, exec;
	int late, thp, unret, edge, sealfd[NR_SEALS], rdonly, append, n;
	char path[64];
	long free0, free1, thp_kb = 0, used = 0, alloc = 0;
	long zused = 0, zalloc = 0;
	char want[64];
	bool ok = true;
	long long t;
	char *map;
	pid_t pid;

	ksft_set_plan(9);
	luo_create_session(dev, "memfd", &sfd);
	luo_create_session(dev, "memfd-unret", &usfd);

	full = new_memfd("full", 0, 0);
	result(!put(full, 0, FULL_SIZE, 1), "write 256 MiB");
	lseek(full, FULL_POS, SEEK_SET);
	fchmod(full, 0640);
	result(!fchown(full, 1000, 2000), "chown 1000:2000");

	s64 = sparse_create(&sparse64g);
	s4t = sparse_create(&sparse4t);

	zero = new_memfd("zero", 0, 0);
	byte = new_memfd("byte", 0, 0);
	put(byte, 0, 1, 4);
	page = new_memfd("page", 0, 0);
	put(page, 0, PG, 4);
	odd = new_memfd("odd", 0, 0);
	put(odd, 0, ODD_SIZE, 4);
	lseek(odd, ODD_SIZE, SEEK_SET);

	for (unsigned int i = 0; i < NR_SEALS; i++) {
		sealfd[i] = new_memfd("sealed", MFD_ALLOW_SEALING, 0);
		put(sealfd[i], 0, 2 * PG, 5 + i);
		ok &= !fcntl(sealfd[i], F_ADD_SEALS, seals[i]) &&
		      fcntl(sealfd[i], F_GET_SEALS) == (int)seals_of(seals[i]);
	}
	result(ok, "one memfd sealed with each seal");
	noexec = new_memfd("noexec", MFD_NOEXEC_SEAL, 0);
	put(noexec, 0, PG, 12);
	exec = new_memfd("exec", MFD_EXEC, 0);
	put(exec, 0, PG, 13);

	late = new_memfd("late", 0, LATE_SIZE);
	put(late, 0, MiB, 6);

	/* Open modes: read-only (reopened), and O_APPEND | O_NONBLOCK. */
	n = new_memfd("rdonly", 0, 0);
	put(n, 0, PG, 15);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", n);
	rdonly = open(path, O_RDONLY);
	close(n);
	append = new_memfd("append", 0, 0);
	put(append, 0, PG, 16);
	fcntl(append, F_SETFL, O_APPEND | O_NONBLOCK);

	thp = -1;
	if (thp_available()) {
		luo_write_file("/sys/kernel/mm/transparent_hugepage/shmem_enabled",
			       "always");
		thp_kb = luo_meminfo_kb("ShmemHugePages");
		thp = new_memfd("thp", 0, THP_SIZE);
		put(thp, 0, THP_SIZE, 7);
		thp_kb = luo_meminfo_kb("ShmemHugePages") - thp_kb;
		luo_write_file("/sys/kernel/mm/transparent_hugepage/shmem_enabled",
			       "never");
		ksft_print_msg("THP memfd: %ld kB in huge pages\n", thp_kb);
	}

	unret = new_memfd("unret", 0, 0);
	put(unret, 0, UNRET_SIZE, 8);
	/* Two pages either side of 64^3 entries: the page cache grows a level. */
	edge = new_memfd("edge", 0, EDGE_OFF + 2 * PG);
	put(edge, EDGE_OFF - PG, 2 * PG, 18);

	t = now_us();
	ok = luo_keep(sfd, full, T_FULL);
	t = now_us() - t;
	ksft_print_msg("PRESERVE_FD of 256 MiB of 4 KiB pages: %lld us\n", t);
	free0 = luo_meminfo_kb("MemFree");
	ok &= luo_keep(sfd, s64, T_SPARSE64G) && luo_keep(sfd, s4t, T_SPARSE4T);
	free1 = luo_meminfo_kb("MemFree");
	ok &= luo_keep(sfd, zero, T_ZERO) && luo_keep(sfd, byte, T_BYTE) &&
	      luo_keep(sfd, page, T_PAGE) && luo_keep(sfd, odd, T_ODD) &&
	      luo_keep(sfd, noexec, T_NOEXEC) && luo_keep(sfd, exec, T_EXEC) &&
	      luo_keep(sfd, late, T_LATE) && luo_keep(usfd, unret, 1) &&
	      luo_keep(sfd, rdonly, T_RDONLY) && luo_keep(sfd, append, T_APPEND) &&
	      luo_keep(sfd, edge, T_EDGE);
	for (unsigned int i = 0; i < NR_SEALS; i++)
		ok &= luo_keep(sfd, sealfd[i], T_SEALS + i);
	if (thp >= 0)
		ok &= luo_keep(sfd, thp, T_THP);
	result(ok, "preserve the memfds");
	ksft_print_msg("MemFree: %ld kB before, %ld kB after preserving the sparse ones\n",
		       free0, free1);
	result(free0 - free1 < 4096,
	       "preserving 64 GiB and 4 TiB sparse memfds allocated no holes");

	/* Small memfds share the metadata pool: tens of bytes, not a page. */
	ok = memfd_meta(zero, &zused, &zalloc) && memfd_meta(page, &used, &alloc);
	ksft_print_msg("metadata: empty memfd %ld/%ld bytes, one page %ld/%ld bytes (used/allocated)\n",
		       zused, zalloc, used, alloc);
	result(ok && zalloc <= 128 && alloc <= 192,
	       "metadata of an empty and a one-page memfd: at most 128 and 192 bytes");
	/* Bound to both memfd handlers: shmem and hugetlb memfds. */
	snprintf(want, sizeof(want), "handlers=2 files=%d",
		 luo_file_count(sfd) + luo_file_count(usfd));
	result(pool_is("outgoing", want),
	       "the metadata pool FLB is preserved, one reference per memfd");

	/* Writes after PRESERVE_FD: hole, present page, and from a child. */
	n = put(late, 8 * MiB, 2 * PG, 9) ?: put(late, 0, PG, 10);
	pid = fork();
	if (!pid) {
		map = mmap(NULL, LATE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
			   late, 0);
		if (map == MAP_FAILED)
			_exit(1);
		fill((__u64 *)(map + 12 * MiB), 12 * MiB, MiB, 11);
		fill((__u64 *)(map + 2 * PG), 2 * PG, PG, 14);
		_exit(0);
	}
	waitpid(pid, &pid, 0);
	result(!n && WIFEXITED(pid) && !WEXITSTATUS(pid),
	       "write holes and present pages, also from a child's mmap");
	if (thp >= 0)
		result(thp_kb == THP_SIZE / 1024, "THP memfd is all huge pages");
	else
		ksft_test_result_skip("THP memfd: no shmem THP\n");
	luo_kexec_next_with(nopreload ? NOPRELOAD : NULL);
}

/* Each seal comes back, and means what it meant. */
static bool seal_holds(int fd, unsigned int seal)
{
	int got = fcntl(fd, F_GET_SEALS);
	bool ok;

	if (got != (int)seals_of(seal)) {
		ksft_print_msg("seals 0x%x, want 0x%x\n", got, seals_of(seal));
		return false;
	}
	switch (seal) {
	case F_SEAL_SEAL:
		return fcntl(fd, F_ADD_SEALS, F_SEAL_GROW) && errno == EPERM;
	case F_SEAL_SHRINK:
		return ftruncate(fd, PG) && errno == EPERM &&
		       !ftruncate(fd, 3 * PG);
	case F_SEAL_GROW:
		return ftruncate(fd, 3 * PG) && errno == EPERM &&
		       !ftruncate(fd, PG);
	case F_SEAL_WRITE:
	case F_SEAL_FUTURE_WRITE:
		ok = pwrite(fd, "x", 1, 0) < 0 && errno == EPERM;
		return ok && mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED,
				  fd, 0) == MAP_FAILED;
	case F_SEAL_EXEC:
		/* An executable memfd stays executable. */
		return fchmod(fd, 0666) && errno == EPERM;
	}
	return false;
}

static void core_1(void)
{
	int sfd = -1, usfd = -1, fd, got, n;
	long free0, free1, thp0, shmem0, shmem1, shmem2, preloaded;
	struct stat st;
	char want[64];
	long long t;
	bool ok;

	ksft_set_plan(23);
	luo_retrieve_session(dev, "memfd", &sfd);
	luo_retrieve_session(dev, "memfd-unret", &usfd);
	if (sfd < 0 || usfd < 0)
		ksft_exit_fail_msg("retrieve sessions\n");
	n = luo_file_count(sfd) + luo_file_count(usfd);
	if (nopreload) {
		/* The first restore, in a retrieve, takes the pool in. */
		preloaded = luo_memfd_preloaded();
		snprintf(want, sizeof(want), "files=%d pending", n);
		result(!preloaded && pool_is("incoming", want),
		       NOPRELOAD ": no memfd preloaded (%ld); incoming metadata pool: one reference per memfd, not retrieved",
		       preloaded);
	} else {
		/* Restoring a memfd in the background takes the pool in. */
		preloaded = luo_wait_memfd_preloaded(n);
		snprintf(want, sizeof(want), "files=%d retrieved", n);
		result(preloaded == n && pool_is("incoming", want),
		       "all %d memfds preloaded in the background (%ld seen); incoming metadata pool: one reference per memfd, retrieved",
		       n, preloaded);
	}

	shmem0 = luo_meminfo_kb("Shmem");
	t = now_us();
	fd = luo_take(sfd, T_FULL);
	t = now_us() - t;
	ksft_print_msg("RETRIEVE_FD of 256 MiB of 4 KiB pages: %lld us\n", t);
	result(fd >= 0 && size_is(fd, FULL_SIZE) && check(fd, 0, FULL_SIZE, 1),
	       "full: 256 MiB intact");
	/* Once read, the page cache is filled and counted. */
	shmem1 = luo_meminfo_kb("Shmem");
	ok = fd >= 0 && !fstat(fd, &st);
	result(ok && lseek(fd, 0, SEEK_CUR) == FULL_POS &&
	       (st.st_mode & 07777) == 0640 && st.st_uid == 1000 &&
	       st.st_gid == 2000 && luo_memfd_name_is(fd, "full"),
	       "full: position, mode 0640, owner 1000:2000, name");
	result(fd >= 0 && !ftruncate(fd, MiB) && blocks_of(fd) == MiB / 512,
	       "full: an ordinary memfd after retrieve");
	shmem2 = luo_meminfo_kb("Shmem");
	ksft_print_msg("Shmem: %ld kB, %ld kB after RETRIEVE_FD, %ld kB after truncating to 1 MiB\n",
		       shmem0, shmem1, shmem2);
	/* Per-CPU counter deltas not folded in yet: up to about 1 MiB. */
	result(labs(shmem1 - shmem0 - (long)(FULL_SIZE / 1024)) <= 2048 &&
	       labs(shmem1 - shmem2 - (long)((FULL_SIZE - MiB) / 1024)) <= 2048,
	       "full: the Shmem counter follows RETRIEVE_FD and truncate");

	fd = luo_take(sfd, T_SPARSE64G);
	result(sparse_intact(fd, &sparse64g),
	       "sparse 64 GiB: %d runs, holes stay holes", sparse_nr(&sparse64g));
	fd = luo_take(sfd, T_SPARSE4T);
	result(sparse_intact(fd, &sparse4t),
	       "sparse 4 TiB: %d runs, holes stay holes", sparse_nr(&sparse4t));

	fd = luo_take(sfd, T_ZERO);
	result(fd >= 0 && size_is(fd, 0) && !blocks_of(fd) && luo_memfd_name_is(fd, "zero"),
	       "size 0");
	fd = luo_take(sfd, T_BYTE);
	result(fd >= 0 && size_is(fd, 1) && check(fd, 0, 1, 4), "size 1 byte");
	fd = luo_take(sfd, T_PAGE);
	result(fd >= 0 && size_is(fd, PG) && check(fd, 0, PG, 4) &&
	       blocks_of(fd) == PG / 512, "size one page");
	fd = luo_take(sfd, T_ODD);
	result(fd >= 0 && size_is(fd, ODD_SIZE) && check(fd, 0, ODD_SIZE, 4) &&
	       lseek(fd, 0, SEEK_CUR) == ODD_SIZE, "size 3 pages + 100 bytes");

	ok = true;
	for (unsigned int i = 0; i < NR_SEALS; i++) {
		fd = luo_take(sfd, T_SEALS + i);
		if (fd < 0 || !check(fd, 0, 2 * PG, 5 + i) ||
		    !seal_holds(fd, seals[i])) {
			ksft_print_msg("seal 0x%x lost\n", seals[i]);
			ok = false;
		}
	}
	result(ok, "each seal comes back and holds");

	fd = luo_take(sfd, T_NOEXEC);
	got = fd >= 0 ? fcntl(fd, F_GET_SEALS) : -1;
	ok = fd >= 0 && !fstat(fd, &st);
	result(ok && check(fd, 0, PG, 12) && got == F_SEAL_EXEC &&
	       !(st.st_mode & 0111) && fchmod(fd, 0755) && errno == EPERM &&
	       pwrite(fd, "y", 1, 0) == 1,
	       "MFD_NOEXEC_SEAL: not executable, seals 0x%x, writable", got);
	fd = luo_take(sfd, T_EXEC);
	got = fd >= 0 ? fcntl(fd, F_GET_SEALS) : -1;
	ok = fd >= 0 && !fstat(fd, &st);
	result(ok && check(fd, 0, PG, 13) && got == F_SEAL_SEAL &&
	       (st.st_mode & 0111) && !fchmod(fd, 0600),
	       "MFD_EXEC: executable, seals 0x%x", got);

	fd = luo_take(sfd, T_LATE);
	result(fd >= 0 && check(fd, 0, PG, 10) && check(fd, PG, PG, 6) &&
	       check(fd, 2 * PG, PG, 14) && check(fd, 3 * PG, MiB - 3 * PG, 6) &&
	       check(fd, 8 * MiB, 2 * PG, 9) && check(fd, 12 * MiB, MiB, 11) &&
	       blocks_of(fd) == (MiB + 2 * PG + MiB) / 512,
	       "writes after PRESERVE_FD survived, holes stay holes");

	fd = luo_take(sfd, T_RDONLY);
	got = fd >= 0 ? fcntl(fd, F_GETFL) : -1;
	ok = fd >= 0 && (got & O_ACCMODE) == O_RDONLY && check(fd, 0, PG, 15) &&
	     pwrite(fd, "z", 1, 0) < 0 && errno == EBADF;
	if (!ok)
		ksft_print_msg("read-only memfd: flags 0%o\n", got);
	fd = luo_take(sfd, T_EDGE);
	result(fd >= 0 && check(fd, EDGE_OFF - PG, 2 * PG, 18) &&
	       blocks_of(fd) == 2 * PG / 512,
	       "two pages either side of 64^3 pages intact");
	fd = luo_take(sfd, T_APPEND);
	got = fd >= 0 ? fcntl(fd, F_GETFL) : -1;
	result(ok && (got & O_ACCMODE) == O_RDWR && (got & O_APPEND) &&
	       (got & O_NONBLOCK) && write(fd, "z", 1) == 1 &&
	       size_is(fd, PG + 1) && check(fd, 0, PG, 16),
	       "open modes: read-only stays read-only, O_APPEND|O_NONBLOCK kept");

	if (!thp_available()) {
		ksft_test_result_skip("THP: no shmem THP\n");
	} else {
		thp0 = luo_meminfo_kb("ShmemHugePages");
		fd = luo_take(sfd, T_THP);
		ok = fd >= 0 && check(fd, 0, THP_SIZE, 7);
		thp0 = luo_meminfo_kb("ShmemHugePages") - thp0;
		ksft_print_msg("THP memfd: %ld kB in huge pages\n", thp0);
		result(ok && thp0 == THP_SIZE / 1024,
		       "THP: intact, still huge pages");
	}

	result(luo_take(sfd, 1234) < 0, "unknown token fails");
	result(!luo_finish(sfd), "finish");

	free0 = luo_meminfo_kb("MemFree");
	got = luo_finish(usfd);
	free1 = luo_meminfo_kb("MemFree");
	ksft_print_msg("MemFree: %ld kB before, %ld kB after FINISH\n", free0,
		       free1);
	/* Up to a few MiB of what is freed can sit in per-CPU page lists. */
	result(!got && free1 - free0 >= (long)(UNRET_SIZE / 1024) * 3 / 4,
	       "the never retrieved memfd is freed at FINISH");
	result(luo_take(usfd, 1) < 0, "nothing to retrieve after FINISH");
	result(pool_is("incoming", "files=0 finished"),
	       "the metadata pool is finished with the last memfd");
	ksft_finished();
}

/* ---- paths ---- */

static bool resize_refused(int fd, __u64 size)
{
	return ftruncate(fd, size / 2) && errno == EPERM &&
	       ftruncate(fd, size * 2) && errno == EPERM &&
	       fallocate(fd, 0, size, MiB) && errno == EPERM &&
	       fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			 PG) && errno == EPERM &&
	       pwrite(fd, "x", 1, size) < 0 && errno == EPERM;
}

/* Resizable again; [0, @size) is left as it was. */
static bool ordinary(int fd, __u64 size)
{
	return !ftruncate(fd, size * 2) && !fallocate(fd, 0, size, size * 2) &&
	       !fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, size,
			  PG) && !ftruncate(fd, size);
}

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE	25
#endif
#define STAY_SIZE	(4 * MiB)
#define PMD_SIZE_	(2 * MiB)

/* The PFNs behind @len bytes at @map (0 where not present), or false. */
static bool pfns_of(const char *map, __u64 len, __u64 *pfn)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	__u64 i, n = len / PG;
	bool ok;

	if (fd < 0)
		return false;
	ok = pread(fd, pfn, n * 8, (uintptr_t)map / PG * 8) == (ssize_t)(n * 8);
	close(fd);
	for (i = 0; ok && i < n; i++)
		pfn[i] = (pfn[i] >> 63) ? pfn[i] & ((1ULL << 55) - 1) : 0;
	return ok;
}

/* The same, after faulting every page in (a collapse attempt unmaps). */
static bool pfns_of_mapped(const char *map, __u64 len, __u64 *pfn)
{
	for (__u64 off = 0; off < len; off += PG)
		(void)*(const volatile char *)(map + off);
	return pfns_of(map, len, pfn);
}

/*
 * While preserved, a memfd's folios stay where they are: compaction and
 * MADV_COLLAPSE move none of them.  After unpreserve MADV_COLLAPSE works
 * again, which shows the check can see a move.
 */
static void stays(int sfd)
{
	static __u64 before[STAY_SIZE / PG], after[STAY_SIZE / PG];
	char *area, *map;
	int fd, ret;
	bool ok;

	fd = new_memfd("paths-stay", 0, STAY_SIZE);
	put(fd, 0, STAY_SIZE, 17);
	/* A PMD-aligned mapping, so that MADV_COLLAPSE can work at all. */
	area = mmap(NULL, STAY_SIZE + PMD_SIZE_, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	map = area == MAP_FAILED ? MAP_FAILED :
	      mmap((char *)(((uintptr_t)area + PMD_SIZE_ - 1) & ~(PMD_SIZE_ - 1)),
		   STAY_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		   fd, 0);
	ok = map != MAP_FAILED && luo_keep(sfd, fd, 4);
	ok = ok && pfns_of_mapped(map, STAY_SIZE, before) && before[0];
	luo_write_file("/proc/sys/vm/compact_memory", "1");
	ret = thp_available() ? madvise(map, PMD_SIZE_, MADV_COLLAPSE) : -1;
	ksft_print_msg("preserved: MADV_COLLAPSE %d (%s), first PFN %#llx\n",
		       ret, ret ? strerror(errno) : "done",
		       (unsigned long long)before[0]);
	ok = ok && ret && pfns_of_mapped(map, STAY_SIZE, after);
	for (__u64 i = 0; ok && i < STAY_SIZE / PG; i++) {
		if (before[i] != after[i]) {
			ksft_print_msg("page %llu moved: PFN %#llx, now %#llx\n",
				       (unsigned long long)i,
				       (unsigned long long)before[i],
				       (unsigned long long)after[i]);
			ok = false;
		}
	}
	ok = ok && check(fd, 0, STAY_SIZE, 17);
	result(ok, "while preserved: compaction and MADV_COLLAPSE move no page");
	if (!thp_available()) {
		ksft_test_result_skip("MADV_COLLAPSE after unpreserve: no shmem THP\n");
	} else {
		ok = !luo_unpreserve_fd(sfd, 4);
		ret = madvise(map, PMD_SIZE_, MADV_COLLAPSE);
		ksft_print_msg("unpreserved: MADV_COLLAPSE %d (%s)\n", ret,
			       ret ? strerror(errno) : "done");
		ok = ok && !ret && pfns_of_mapped(map, STAY_SIZE, after) &&
		     memcmp(before, after, PMD_SIZE_ / PG * 8) &&
		     after[1] == after[0] + 1 && check(fd, 0, STAY_SIZE, 17);
		result(ok, "unpreserved: MADV_COLLAPSE moves the pages into a huge one");
	}
	if (area != MAP_FAILED)
		munmap(area, STAY_SIZE + PMD_SIZE_);
	close(fd);
}

/* KHO's scratch areas, which the next kernel boots from: [start, end). */
#define KHO_OUT		"/sys/kernel/debug/kho/out/"
#define MAX_SCRATCH	16
static __u64 scratch_start[MAX_SCRATCH], scratch_end[MAX_SCRATCH];
static int nr_scratch;

static bool read_scratch(void)
{
	char *phys = luo_read_file(KHO_OUT "scratch_phys");
	char *len = luo_read_file(KHO_OUT "scratch_len");
	char *p = phys, *l = len;

	nr_scratch = 0;
	while (p && l && *p && *l && nr_scratch < MAX_SCRATCH) {
		scratch_start[nr_scratch] = strtoull(p, &p, 16);
		scratch_end[nr_scratch] = scratch_start[nr_scratch] +
					  strtoull(l, &l, 16);
		nr_scratch++;
		p += strspn(p, "\n");
		l += strspn(l, "\n");
	}
	free(phys);
	free(len);
	return nr_scratch > 0;
}

/*
 * How many of the pages at @map, @len bytes, sit in a scratch area; and in
 * *@runs (if not NULL), in how many runs of physically contiguous pages
 * the whole range lies.
 */
static long pages_in_scratch(const char *map, __u64 len, long *runs)
{
	__u64 n = len / PG, *pfn = malloc(n * 8);
	long in = 0;

	if (!pfn || !pfns_of_mapped(map, len, pfn)) {
		free(pfn);
		return -1;
	}
	for (__u64 i = 0; i < n; i++)
		for (int a = 0; a < nr_scratch; a++)
			if (pfn[i] && pfn[i] * PG >= scratch_start[a] &&
			    pfn[i] * PG < scratch_end[a])
				in++;
	if (runs) {
		*runs = 1;
		for (__u64 i = 1; i < n; i++)
			*runs += pfn[i] != pfn[i - 1] + 1;
	}
	free(pfn);
	return in;
}

/*
 * A memfd whose pages sit in KHO scratch (CMA while this kernel runs; the
 * next kernel boots from it) has them moved out after PRESERVE_FD, in the
 * background, contents intact, and stays usable meanwhile: the last
 * CMA_STEP, where the pages in scratch are, is written again at once.
 * The memfd grows until the allocator puts some of its pages there: that
 * happens once CMA holds more than half the free memory.  Unpreserving
 * while the move is under way stops it.
 */
#define CMA_STEP	(16 * MiB)

/*
 * Grow the memfd @fd, CMA_STEP at a time written with the pattern of
 * @seed, until the allocator puts some pages of the last step in KHO
 * scratch, or memory runs short.  Returns the size reached; *@in is the
 * number of pages of the last step in scratch, *@runs the number of runs
 * of physically contiguous pages it lies in.
 */
static __u64 grow_into_scratch(int fd, __u64 seed, long *in, long *runs)
{
	long avail = luo_meminfo_kb("MemAvailable") * 1024LL - 128 * MiB;
	__u64 size = 0;
	char *map;

	*in = 0;
	while (*in == 0 && size + CMA_STEP <= (__u64)avail) {
		if (ftruncate(fd, size + CMA_STEP) ||
		    put(fd, size, CMA_STEP, seed))
			break;
		map = mmap(NULL, CMA_STEP, PROT_READ, MAP_SHARED, fd, size);
		if (map == MAP_FAILED)
			break;
		*in = pages_in_scratch(map, CMA_STEP, runs);
		munmap(map, CMA_STEP);
		size += CMA_STEP;
	}
	return size;
}

static void out_of_scratch(int sfd)
{
	long before = 0, after = -1, runs_before = 0, runs_after = 0;
	long used, alloc, moving = -1, moving2 = -1;
	long long t, t2;
	__u32 state;
	__u64 size = 0;
	char *map;
	bool ok;
	int fd;

	if (!read_scratch()) {
		ksft_test_result_skip("out of KHO scratch: no " KHO_OUT "\n");
		ksft_test_result_skip("unpreserved while moving: no " KHO_OUT "\n");
		return;
	}
	fd = new_memfd("paths-scratch", 0, 0);
	size = grow_into_scratch(fd, 23, &before, &runs_before);
	ksft_print_msg("scratch: %d areas; %llu MiB written, %ld pages of the last %llu MiB in scratch\n",
		       nr_scratch, size / MiB, before, CMA_STEP / MiB);
	if (before <= 0) {
		ksft_test_result_skip("out of KHO scratch: no page landed there\n");
		ksft_test_result_skip("unpreserved while moving: no page in scratch\n");
		close(fd);
		return;
	}
	/* Unpreserved at once, while moving: an ordinary memfd again. */
	ok = luo_keep(sfd, fd, 6) && memfd_stats(fd, &used, &alloc, &moving);
	ok = ok && !luo_unpreserve_fd(sfd, 6);
	ksft_print_msg("scratch: unpreserved with %ld pages left to move\n",
		       moving);
	result(ok && !ftruncate(fd, size + PG) && !ftruncate(fd, size) &&
	       check(fd, 0, size, 23),
	       "unpreserved while moving out of scratch: ordinary, intact");

	/*
	 * QUERY says SETTLING until every page is moved (checked first: the
	 * move may be over by the time debugfs is read), then PRESERVED.
	 */
	t = now_us();
	ok = luo_keep(sfd, fd, 5);
	t = now_us() - t;
	state = luo_file_state(sfd, 5);
	ok = ok && memfd_stats(fd, &used, &alloc, &moving) &&
	     (state == LIVEUPDATE_FILE_SETTLING ||
	      (state == LIVEUPDATE_FILE_PRESERVED && !moving));
	ok = ok && !put(fd, size - CMA_STEP, CMA_STEP, 29);
	t2 = now_us();
	while (ok && luo_file_state(sfd, 5) == LIVEUPDATE_FILE_SETTLING &&
	       now_us() - t2 < 60000000)
		usleep(10000);
	t2 = now_us() - t2;
	ok = ok && luo_file_state(sfd, 5) == LIVEUPDATE_FILE_PRESERVED &&
	     memfd_stats(fd, &used, &alloc, &moving2) && !moving2;
	map = ok ? mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
	if (map != MAP_FAILED) {
		after = pages_in_scratch(map, size, NULL);
		pages_in_scratch(map + size - CMA_STEP, CMA_STEP, &runs_after);
		munmap(map, size);
	}
	ksft_print_msg("scratch: PRESERVE_FD %lld ms, then state %u with %ld pages left to move; moved %lld ms later; %ld pages in scratch; last %llu MiB: %ld runs before, %ld after\n",
		       t / 1000, state, moving, t2 / 1000, after,
		       CMA_STEP / MiB, runs_before, runs_after);
	result(after == 0 && check(fd, 0, size - CMA_STEP, 23) &&
	       check(fd, size - CMA_STEP, CMA_STEP, 29) &&
	       !luo_unpreserve_fd(sfd, 5),
	       "PRESERVE_FD: %ld pages moved out of KHO scratch after (QUERY: settling, then preserved), contents and writes meanwhile intact",
	       before);
	close(fd);
}

static void paths_0(void)
{
	int sfd, sfd2, fd, fd2, sealfd, hfd, tmp;

	ksft_set_plan(14);
	luo_create_session(dev, "paths", &sfd);
	fd = new_memfd("paths", MFD_ALLOW_SEALING, 4 * MiB);
	put(fd, 0, 2 * MiB, 1);
	result(luo_keep(sfd, fd, 1), "preserve");
	result(resize_refused(fd, 4 * MiB) && check(fd, 0, 2 * MiB, 1),
	       "while preserved: truncate, grow, punch hole, fallocate, write beyond size: EPERM");
	result(luo_preserve_fd(sfd, fd, 2) == -EBUSY,
	       "the same memfd twice: EBUSY");
	sealfd = new_memfd("paths-seal", MFD_ALLOW_SEALING, MiB);
	put(sealfd, 0, MiB, 3);
	result(luo_keep(sfd, sealfd, 3) &&
	       fcntl(sealfd, F_ADD_SEALS, F_SEAL_WRITE) && errno == EBUSY &&
	       !fcntl(sealfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
		      F_SEAL_FUTURE_WRITE) && !luo_unpreserve_fd(sfd, 3) &&
	       !fcntl(sealfd, F_ADD_SEALS, F_SEAL_WRITE),
	       "while preserved: F_SEAL_WRITE EBUSY (pinned), other seals work");
	close(sealfd);
	stays(sfd);
	out_of_scratch(sfd);
	result(!luo_unpreserve_fd(sfd, 1) && ordinary(fd, 4 * MiB) &&
	       check(fd, 0, 2 * MiB, 1), "unpreserved: an ordinary memfd again");

	/* Closing a session unpreserves what it holds. */
	luo_create_session(dev, "paths-close", &sfd2);
	fd2 = new_memfd("paths-close", 0, 8 * MiB);
	put(fd2, 0, 8 * MiB, 2);
	result(luo_keep(sfd2, fd2, 1) && luo_keep(sfd2, fd, 2),
	       "preserve two memfds into a second session");
	close(sfd2);
	result(ordinary(fd2, 8 * MiB) && check(fd2, PG, 8 * MiB - PG, 2) &&
	       !luo_create_session(dev, "paths-close", &sfd2),
	       "session closed: memfds ordinary again, its name free");
	close(sfd2);
	close(fd2);

	/* Refused: not memfds, or not supported. */
	mkdir("/tmp/lmt", 0700);
	if (!mount("tmpfs", "/tmp/lmt", "tmpfs", 0, NULL)) {
		tmp = open("/tmp/lmt/f", O_RDWR | O_CREAT, 0600);
		result(luo_preserve_fd(sfd, tmp, 98) == -ENOENT,
		       "tmpfs file: ENOENT");
		close(tmp);
		umount("/tmp/lmt");
	} else {
		ksft_test_result_skip("tmpfs file: cannot mount tmpfs\n");
	}
	tmp = open("/dev/null", O_RDWR);
	result(luo_preserve_fd(sfd, tmp, 99) == -ENOENT, "/dev/null: ENOENT");
	close(tmp);
	/* hugetlb memfds have a handler (liveupdate_hugetlb); files do not. */
	if (!mount("nodev", "/tmp/lmt", "hugetlbfs", 0, NULL)) {
		hfd = open("/tmp/lmt/f", O_RDWR | O_CREAT, 0600);
		result(hfd >= 0 && luo_preserve_fd(sfd, hfd, 97) == -ENOENT,
		       "hugetlbfs file: ENOENT");
		close(hfd);
		umount("/tmp/lmt");
	} else {
		ksft_test_result_skip("hugetlbfs file: cannot mount hugetlbfs (%s)\n",
				      strerror(errno));
	}
	close(fd);
	close(sfd);
	ksft_finished();
}

/* ---- hops ---- */

#define HOPS		3
#define HOP_FULL	(32 * MiB)

static const struct sparse hop_sparse = {
	"hop-sparse", GiB, 16 * MiB + PG, PG, 21
};

/* At stage @s, the first MiB of "hop-full" has seed 100 + s. */
static bool hop_check(int full, int sparse, int s)
{
	return full >= 0 && size_is(full, HOP_FULL) &&
	       check(full, 0, MiB, 100 + s) &&
	       check(full, MiB, HOP_FULL - MiB, 99) &&
	       sparse_intact(sparse, &hop_sparse);
}

static void hops(void)
{
	int sfd, full, sparse;

	ksft_set_plan(stage ? 4 : 2);
	if (!stage) {
		luo_create_session(dev, "hops", &sfd);
		full = new_memfd("hop-full", 0, 0);
		put(full, 0, HOP_FULL, 99);
		put(full, 0, MiB, 100);
		sparse = sparse_create(&hop_sparse);
		result(hop_check(full, sparse, 0), "stage 0: written");
	} else {
		luo_retrieve_session(dev, "hops", &sfd);
		full = luo_take(sfd, 1);
		sparse = luo_take(sfd, 2);
		result(hop_check(full, sparse, stage - 1),
		       "stage %d: checksums of everything", stage);
		result(!luo_finish(sfd), "stage %d: finish", stage);
		if (stage == HOPS) {
			result(!put(full, 0, MiB, 100 + stage) &&
			       hop_check(full, sparse, stage),
			       "stage %d: still writable", stage);
			ksft_test_result_pass("stage %d: last hop\n", stage);
			ksft_finished();
		}
		result(!put(full, 0, MiB, 100 + stage) &&
		       hop_check(full, sparse, stage),
		       "stage %d: first MiB rewritten", stage);
	}
	/* After FINISH the session is outgoing again, under its own name. */
	result(luo_keep(sfd, full, 1) && luo_keep(sfd, sparse, 2),
	       "stage %d: preserve again", stage);
	luo_kexec_next();
}

/* ---- memcg ---- */

#define MEMCG_SIZE	(32 * MiB)
#define CGROOT		"/sys/fs/cgroup"
#define CG		CGROOT "/luo-memcg"

static long long memcg_current(void)
{
	char *v = luo_read_file(CG "/memory.current");
	long long n = v ? atoll(v) : -1;

	free(v);
	return n;
}

static void memcg(void)
{
	long long before, charged, after;
	char pid[32];
	int sfd, fd;

	if (!stage) {
		ksft_set_plan(1);
		luo_create_session(dev, "memcg", &sfd);
		fd = new_memfd("memcg", 0, 0);
		result(!put(fd, 0, MEMCG_SIZE, 31) && luo_keep(sfd, fd, 1),
		       "preserve 32 MiB");
		luo_kexec_next();
	}
	ksft_set_plan(4);
	mkdir(CGROOT, 0755);
	snprintf(pid, sizeof(pid), "%d", getpid());
	if ((mount("cgroup2", CGROOT, "cgroup2", 0, NULL) && errno != EBUSY) ||
	    luo_write_file(CGROOT "/cgroup.subtree_control", "+memory") ||
	    (mkdir(CG, 0755) && errno != EEXIST) ||
	    luo_write_file(CG "/cgroup.procs", pid))
		ksft_exit_fail_msg("cannot set up a memory cgroup: %s\n",
				   strerror(errno));
	luo_retrieve_session(dev, "memcg", &sfd);
	before = memcg_current();
	fd = luo_take(sfd, 1);
	charged = memcg_current();
	ksft_print_msg("memory.current: %lld before RETRIEVE_FD, %lld after\n",
		       before, charged);
	result(fd >= 0 && charged - before >= (long long)MEMCG_SIZE &&
	       charged - before < (long long)(MEMCG_SIZE + 4 * MiB),
	       "32 MiB charged to the retriever's memory cgroup");
	result(fd >= 0 && check(fd, 0, MEMCG_SIZE, 31), "contents intact");
	result(!luo_finish(sfd), "finish");
	close(fd);
	after = memcg_current();
	ksft_print_msg("memory.current: %lld after close\n", after);
	/* Per-CPU LRU batches may still hold a few folios for a moment. */
	result(charged - after >= (long long)(MEMCG_SIZE - 4 * MiB),
	       "uncharged when the memfd is freed");
	ksft_finished();
}

/* ---- lazy ---- */

/* [0, 8 MiB) and [12 MiB, 24 MiB) hold data: 5120 pages, filled later. */
#define LAZY_SIZE	(24 * MiB)
#define LAZY_HOLE	(8 * MiB)
#define LAZY_HOLE_END	(12 * MiB)
#define LAZY_BLOCKS	((LAZY_SIZE - (LAZY_HOLE_END - LAZY_HOLE)) / 512)
#define THP_PATH	"/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define FAIL_PATH	"/sys/kernel/debug/fail_memfd_restore"

enum lazy_use {
	LAZY_CLOSE, LAZY_STAT, LAZY_READ, LAZY_FAULT, LAZY_WRITE, LAZY_SEEK,
	LAZY_PUNCH, LAZY_TRUNCATE, LAZY_SPLICE, LAZY_PRESERVE, LAZY_COLLAPSE,
	LAZY_FAIL, NR_LAZY
};

static const char * const lazy_names[NR_LAZY] = {
	"close", "stat", "read", "fault", "write", "seek", "punch", "truncate",
	"splice", "preserve", "collapse", "fail",
};

static __u64 lazy_seed(int use)
{
	return 40 + use;
}

/* The data of lazy memfd @use in [@from, @to), holes excepted. */
static bool lazy_data(int fd, int use, __u64 from, __u64 to)
{
	__u64 a = from, b = to < LAZY_HOLE ? to : LAZY_HOLE;

	if (a < b && !check(fd, a, b - a, lazy_seed(use)))
		return false;
	a = from > LAZY_HOLE_END ? from : LAZY_HOLE_END;
	return a >= to || check(fd, a, to - a, lazy_seed(use));
}

static bool is_zero(int fd, __u64 off, __u64 len)
{
	static char buf[CHUNK], zero[CHUNK];

	return len <= CHUNK && pread(fd, buf, len, off) == (ssize_t)len &&
	       !memcmp(buf, zero, len);
}

/* All of lazy memfd @use, the hole included, as stage 0 wrote it. */
static bool lazy_intact(int fd, int use)
{
	return size_is(fd, LAZY_SIZE) && blocks_of(fd) == LAZY_BLOCKS &&
	       lazy_data(fd, use, 0, LAZY_SIZE) &&
	       is_zero(fd, LAZY_HOLE, PG) &&
	       is_zero(fd, LAZY_HOLE_END - PG, PG) &&
	       lseek(fd, 0, SEEK_HOLE) == LAZY_HOLE &&
	       lseek(fd, LAZY_HOLE, SEEK_DATA) == LAZY_HOLE_END;
}

static bool lazy_fault(int fd, int use)
{
	__u64 want[PG / 8];
	char *map = mmap(NULL, LAZY_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	bool ok;

	if (map == MAP_FAILED)
		return false;
	/* The last page first, then a hole, then the first page. */
	fill(want, LAZY_SIZE - PG, PG, lazy_seed(use));
	ok = !memcmp(map + LAZY_SIZE - PG, want, PG) && !map[LAZY_HOLE];
	fill(want, 0, PG, lazy_seed(use));
	ok = ok && !memcmp(map, want, PG);
	munmap(map, LAZY_SIZE);
	/* The hole's page faulted in is a page of the memfd now. */
	return ok && lazy_data(fd, use, 0, LAZY_SIZE) &&
	       is_zero(fd, LAZY_HOLE, 2 * PG) &&
	       blocks_of(fd) == LAZY_BLOCKS + PG / 512;
}

static bool lazy_write(int fd, int use)
{
	return !put(fd, LAZY_HOLE + MiB, PG, 90) && !put(fd, MiB, PG, 90) &&
	       check(fd, MiB, PG, 90) && check(fd, LAZY_HOLE + MiB, PG, 90) &&
	       lazy_data(fd, use, 0, MiB) &&
	       lazy_data(fd, use, MiB + PG, LAZY_SIZE) &&
	       blocks_of(fd) == LAZY_BLOCKS + PG / 512;
}

static bool lazy_seek(int fd, int use)
{
	return lseek(fd, 0, SEEK_HOLE) == LAZY_HOLE &&
	       lseek(fd, LAZY_HOLE, SEEK_DATA) == LAZY_HOLE_END &&
	       lseek(fd, LAZY_HOLE_END, SEEK_HOLE) == LAZY_SIZE &&
	       lazy_intact(fd, use);
}

static bool lazy_punch(int fd, int use)
{
	return !fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			  MiB) &&
	       is_zero(fd, 0, MiB) && lseek(fd, 0, SEEK_DATA) == MiB &&
	       lazy_data(fd, use, MiB, LAZY_SIZE) &&
	       blocks_of(fd) == LAZY_BLOCKS - MiB / 512;
}

static bool lazy_truncate(int fd, int use)
{
	return !ftruncate(fd, 4 * MiB) && size_is(fd, 4 * MiB) &&
	       blocks_of(fd) == 4 * MiB / 512 && lazy_data(fd, use, 0, 4 * MiB);
}

/* 64 KiB from the second data range, through a pipe. */
static bool lazy_splice(int fd, int use)
{
	static __u64 buf[8192], want[8192];
	loff_t off = LAZY_HOLE_END;
	int p[2];
	bool ok;

	if (pipe(p))
		return false;
	fill(want, LAZY_HOLE_END, sizeof(want), lazy_seed(use));
	ok = sendfile(p[1], fd, &off, sizeof(buf)) == sizeof(buf) &&
	     read(p[0], buf, sizeof(buf)) == sizeof(buf) &&
	     !memcmp(buf, want, sizeof(buf));
	close(p[0]);
	close(p[1]);
	return ok && lazy_intact(fd, use);
}

static bool lazy_preserve(int fd, int use)
{
	int sfd = -1, ret;
	bool ok;

	luo_create_session(dev, "lazy-again", &sfd);
	ret = luo_preserve_fd(sfd, fd, 1);
	if (ret)
		ksft_print_msg("PRESERVE_FD: %s\n", strerror(-ret));
	ok = !ret && lazy_intact(fd, use);
	close(sfd);
	return ok;
}

/* khugepaged's collapse of the first 2 MiB, which would fill holes. */
static bool lazy_collapse(int fd, int use)
{
	char *map = mmap(NULL, 2 * MiB, PROT_READ, MAP_SHARED, fd, 0);
	int ret;

	if (map == MAP_FAILED)
		return false;
	ret = madvise(map, 2 * MiB, MADV_COLLAPSE);
	ksft_print_msg("MADV_COLLAPSE: %s\n", ret ? strerror(errno) : "done");
	munmap(map, 2 * MiB);
	return lazy_intact(fd, use);
}

/* Does reading the first byte of a mapping of @fd raise SIGBUS? */
static bool fault_sigbus(int fd)
{
	int status;
	pid_t pid;

	pid = fork();
	if (!pid) {
		volatile char *map = mmap(NULL, PG, PROT_READ, MAP_SHARED,
					  fd, 0);

		if (map != MAP_FAILED)
			(void)map[0];
		_exit(0);
	}
	return pid > 0 && waitpid(pid, &status, 0) == pid &&
	       WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS;
}

/*
 * The page cache could not be filled (fault injection): the memfd keeps
 * its size, and everything that would see its contents fails with EIO.
 */
static bool lazy_fail(int fd)
{
	char c;
	int sfd = -1, ret;
	bool ok;

	ok = size_is(fd, LAZY_SIZE) && pread(fd, &c, 1, 0) < 0 &&
	     errno == EIO && pwrite(fd, &c, 1, LAZY_HOLE) < 0 &&
	     errno == EIO && lseek(fd, 0, SEEK_DATA) < 0 && errno == EIO &&
	     ftruncate(fd, MiB) && errno == EIO &&
	     fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
		       MiB) && errno == EIO && fault_sigbus(fd);
	luo_create_session(dev, "lazy-fail", &sfd);
	ret = luo_preserve_fd(sfd, fd, 1);
	close(sfd);
	if (ret != -EIO)
		ksft_print_msg("PRESERVE_FD of the failed memfd: %d\n", ret);
	return ok && ret == -EIO && !close(fd);
}

static bool lazy_use(int fd, int use)
{
	switch (use) {
	case LAZY_CLOSE:
		return !close(fd);
	case LAZY_STAT:
		/* The size and the blocks are there before the folios. */
		return size_is(fd, LAZY_SIZE) &&
		       blocks_of(fd) == LAZY_BLOCKS && lazy_intact(fd, use);
	case LAZY_READ:
		/* Timed by the caller up to here. */
		return lazy_data(fd, use, LAZY_SIZE - PG, LAZY_SIZE);
	case LAZY_FAULT:
		return lazy_fault(fd, use);
	case LAZY_WRITE:
		return lazy_write(fd, use);
	case LAZY_SEEK:
		return lazy_seek(fd, use);
	case LAZY_PUNCH:
		return lazy_punch(fd, use);
	case LAZY_TRUNCATE:
		return lazy_truncate(fd, use);
	case LAZY_SPLICE:
		return lazy_splice(fd, use);
	case LAZY_PRESERVE:
		return lazy_preserve(fd, use);
	case LAZY_COLLAPSE:
		return lazy_collapse(fd, use);
	case LAZY_FAIL:
		return lazy_fail(fd);
	}
	return false;
}

/* The counters of the handler's debugfs statistics, or false. */
static bool lazy_counters(long *background, long *waited)
{
	char *buf = luo_read_file(LUO_MEMFD_STATS);
	char *line = buf ? strstr(buf, "# restored_in_background") : NULL;
	bool ok = line && sscanf(line,
				 "# restored_in_background %ld accesses_waited %ld",
				 background, waited) == 2;

	free(buf);
	return ok;
}

static void lazy(void)
{
	long bg0, bg1, waited0, waited1;
	bool thp = thp_available(), fail = !access(FAIL_PATH, F_OK);
	long long t, first;
	bool ok = true;
	int sfd, fd;

	if (!stage) {
		ksft_set_plan(1);
		luo_create_session(dev, "lazy", &sfd);
		for (int use = 0; use < NR_LAZY; use++) {
			fd = new_memfd(lazy_names[use], 0, LAZY_SIZE);
			ok &= !put(fd, 0, LAZY_HOLE, lazy_seed(use)) &&
			      !put(fd, LAZY_HOLE_END, LAZY_SIZE - LAZY_HOLE_END,
				   lazy_seed(use)) &&
			      luo_keep(sfd, fd, use + 1);
			close(fd);
		}
		result(ok, "%d memfds of 24 MiB with a 4 MiB hole preserved",
		       NR_LAZY);
		luo_kexec_next();
	}

	ksft_set_plan(NR_LAZY + 1);
	luo_retrieve_session(dev, "lazy", &sfd);
	if (sfd < 0 || !lazy_counters(&bg0, &waited0))
		ksft_exit_fail_msg("retrieve the session, read the counters\n");
	if (thp)
		luo_write_file(THP_PATH, "advise");
	for (int use = 0; use < NR_LAZY; use++) {
		if (use == LAZY_FAIL && fail &&
		    (luo_write_file(FAIL_PATH "/verbose", "0") ||
		     luo_write_file(FAIL_PATH "/probability", "100") ||
		     luo_write_file(FAIL_PATH "/times", "1")))
			ksft_exit_fail_msg("cannot set up %s\n", FAIL_PATH);
		t = now_us();
		fd = luo_take(sfd, use + 1);
		first = now_us();
		t = first - t;
		if ((use == LAZY_COLLAPSE && !thp) || (use == LAZY_FAIL && !fail)) {
			result(lazy_intact(fd, use), "%s: %s, intact",
			       lazy_names[use], use == LAZY_FAIL ?
			       "no fault injection" : "no shmem THP");
			continue;
		}
		ok = fd >= 0 && lazy_use(fd, use);
		if (use == LAZY_READ) {
			ksft_print_msg("RETRIEVE_FD of 24 MiB: %lld us, its first read %lld us after\n",
				       t, now_us() - first);
			ok = ok && lazy_intact(fd, use);
		}
		result(ok, "%s at once", lazy_names[use]);
	}
	if (thp)
		luo_write_file(THP_PATH, "never");
	if (!lazy_counters(&bg1, &waited1)) {
		bg1 = -1;
		waited1 = -1;
	}
	ksft_print_msg("filled after RETRIEVE_FD: %ld memfds; accesses that waited: %ld\n",
		       bg1 - bg0, waited1 - waited0);
	result(bg1 - bg0 == NR_LAZY && waited1 > waited0,
	       "all %d filled after RETRIEVE_FD, some accesses waited", NR_LAZY);
	ksft_finished();
}

/* ---- scratch ---- */

#define SCRATCH_SEED	41
#define SCRATCH_LATE	43

/*
 * Does the page at @off hold the word of SCRATCH_LATE first, then the
 * pattern of SCRATCH_SEED?
 */
static bool scratch_page_ok(int fd, __u64 off)
{
	__u64 word;

	return pread(fd, &word, 8, off) == 8 &&
	       word == word_at(off, SCRATCH_LATE) &&
	       check(fd, off + 8, PG - 8, SCRATCH_SEED);
}

/*
 * A memfd with pages in KHO scratch, preserved just before the reboot:
 * the next kernel is loaded first, so that reboot(KEXEC) follows
 * PRESERVE_FD at once and the freeze most likely waits for the pages to
 * be moved out; in between, a child writes the first word of every page
 * of the last CMA_STEP through a shared mapping.  Stage 1 finds every
 * byte.
 */
static void scratch_reboot(void)
{
	char *const load[] = { LUO_NEXT_STAGE, "-l", NULL };
	long in = 0, runs, used, alloc, moving = -1;
	int sfd, fd, status, ret;
	struct stat st;
	__u32 state = 0;
	__u64 size, off;
	bool ok;
	pid_t pid;
	char *map;

	if (stage == 1) {
		ksft_set_plan(1);
		luo_retrieve_session(dev, "scratch", &sfd);
		fd = luo_take(sfd, 1);
		ok = fd >= 0 && !fstat(fd, &st) &&
		     (__u64)st.st_size >= CMA_STEP;
		size = ok ? st.st_size : 0;
		ok = ok && check(fd, 0, size - CMA_STEP, SCRATCH_SEED);
		for (off = size - CMA_STEP; ok && off < size; off += PG)
			ok = scratch_page_ok(fd, off);
		result(ok && !luo_finish(sfd),
		       "every byte arrived, the child's late writes too");
		ksft_finished();
	}
	ksft_set_plan(3);
	fd = new_memfd("scratch", 0, 0);
	size = read_scratch() ? grow_into_scratch(fd, SCRATCH_SEED, &in,
						  &runs) : 0;
	ksft_print_msg("%llu MiB written, %ld pages of the last %llu MiB in KHO scratch\n",
		       size / MiB, in, CMA_STEP / MiB);
	result(size && in > 0 && !luo_run(load),
	       "a memfd with pages in KHO scratch; the next kernel loaded");

	luo_create_session(dev, "scratch", &sfd);
	ok = luo_keep(sfd, fd, 1);
	state = luo_file_state(sfd, 1);
	memfd_stats(fd, &used, &alloc, &moving);
	fflush(stdout);
	pid = ok ? fork() : -1;
	if (!pid) {
		map = mmap(NULL, CMA_STEP, PROT_READ | PROT_WRITE, MAP_SHARED,
			   fd, size - CMA_STEP);
		if (map == MAP_FAILED)
			_exit(1);
		for (off = 0; off < CMA_STEP; off += PG)
			*(__u64 *)(map + off) = word_at(size - CMA_STEP + off,
							SCRATCH_LATE);
		_exit(0);
	}
	ok = pid > 0 && waitpid(pid, &status, 0) == pid &&
	     WIFEXITED(status) && !WEXITSTATUS(status);
	ksft_print_msg("after PRESERVE_FD: state %u, %ld pages to move\n",
		       state, moving);
	result(ok, "preserved; a child wrote into every page of the last %llu MiB",
	       CMA_STEP / MiB);
	if (ksft_get_fail_cnt())
		luo_kexec_next();
	fflush(stdout);
	ret = luo_reboot_kexec();
	ksft_print_msg("reboot(KEXEC): %s\n", strerror(-ret));
	ksft_test_result_fail("kexec into stage 1\n");
	ksft_finished();
}

/* ---- vmsplice ---- */

#define VMS_SEED	53
#define VMS_TOKEN	1
/* How long a move out of scratch may take to end, in microseconds. */
#define VMS_SETTLE_US	60000000LL

/* Is the page at PFN @pfn in a KHO scratch area? */
static bool pfn_in_scratch(__u64 pfn)
{
	for (int a = 0; a < nr_scratch; a++)
		if (pfn && pfn * PG >= scratch_start[a] &&
		    pfn * PG < scratch_end[a])
			return true;
	return false;
}

/*
 * The offset of the first page of [@from, @from + CMA_STEP) of @fd that
 * sits in KHO scratch, mapped at *@map (MAP_SHARED, CMA_STEP bytes); or
 * ~0 (and *@map MAP_FAILED) if there is none.
 */
static __u64 scratch_page(int fd, __u64 from, char **map)
{
	__u64 n = CMA_STEP / PG, *pfn = malloc(n * 8), off = ~0ULL;

	*map = mmap(NULL, CMA_STEP, PROT_READ, MAP_SHARED, fd, from);
	if (pfn && *map != MAP_FAILED && pfns_of_mapped(*map, CMA_STEP, pfn))
		for (__u64 i = 0; i < n && off == ~0ULL; i++)
			if (pfn_in_scratch(pfn[i]))
				off = i * PG;
	free(pfn);
	if (off == ~0ULL && *map != MAP_FAILED) {
		munmap(*map, CMA_STEP);
		*map = MAP_FAILED;
	}
	return off;
}

/*
 * Wait until the memfd @token of @sfd is no longer SETTLING (the move out
 * of scratch ended, moved all or stopped on an error): its state, and in
 * *@left the pages it still has to move (-1 if unknown).
 */
static __u32 vms_settle(int sfd, int fd, long *left, long long *us)
{
	long long t = now_us();
	long used, alloc;
	__u32 state;

	while ((state = luo_file_state(sfd, VMS_TOKEN)) ==
	       LIVEUPDATE_FILE_SETTLING && now_us() - t < VMS_SETTLE_US)
		usleep(10000);
	*us = now_us() - t;
	if (!memfd_stats(fd, &used, &alloc, left))
		*left = -1;
	return state;
}

/*
 * A page of a preserved memfd that sits in KHO scratch and cannot be
 * migrated: a pipe holds it (vmspliced from a shared mapping of the
 * memfd, and not read).  The move out of scratch after PRESERVE_FD tries
 * its batch for about a second, then stops with the error, which ends the
 * settling with pages left to move.  The next reboot(KEXEC) fails with
 * that error: the freeze fails, the system goes on, nothing is lost; and
 * the failed freeze starts the move again from where it stopped.  Once
 * the pipe is drained the move gets through, and the kexec works; stage 1
 * finds every byte.
 *
 * Before the fix, the error of a failed move stayed: every reboot failed
 * the same way, drained pipe or not, until the memfd was unpreserved.
 */
static void vmsplice_reboot(void)
{
	char *const load[] = { LUO_NEXT_STAGE, "-l", NULL };
	static __u64 buf[PG / 8], want[PG / 8];
	long in = 0, runs, left = -1, left2 = -1;
	int sfd = -1, fd, pipefd[2] = { -1, -1 }, ret, retries = 0;
	long long us, us2;
	__u64 size, off, pfn = 0;
	__u32 state, state2;
	struct iovec iov;
	struct stat st;
	char *map;
	bool ok;

	if (stage == 1) {
		ksft_set_plan(1);
		luo_retrieve_session(dev, "vmsplice", &sfd);
		fd = luo_take(sfd, VMS_TOKEN);
		ok = fd >= 0 && !fstat(fd, &st) &&
		     (__u64)st.st_size >= CMA_STEP &&
		     check(fd, 0, st.st_size, VMS_SEED);
		result(ok && !luo_finish(sfd),
		       "every byte arrived, the page the pipe held too");
		ksft_finished();
	}
	if (!read_scratch())
		ksft_exit_skip("no %s: KHO scratch unknown\n", KHO_OUT);
	fd = new_memfd("vmsplice", 0, 0);
	size = grow_into_scratch(fd, VMS_SEED, &in, &runs);
	ksft_print_msg("%llu MiB written, %ld pages of the last %llu MiB in KHO scratch\n",
		       size / MiB, in, CMA_STEP / MiB);
	off = in > 0 ? scratch_page(fd, size - CMA_STEP, &map) : ~0ULL;
	if (off == ~0ULL)
		ksft_exit_skip("no page of the memfd landed in KHO scratch\n");
	ksft_set_plan(4);

	/* The pipe takes a reference on the page cache page, not a copy. */
	iov.iov_base = map + off;
	iov.iov_len = PG;
	ok = !pipe2(pipefd, O_CLOEXEC) &&
	     vmsplice(pipefd[1], &iov, 1, 0) == (ssize_t)PG &&
	     !luo_pfns(map + off, PG, &pfn) && pfn_in_scratch(pfn);
	munmap(map, CMA_STEP);
	off += size - CMA_STEP;
	ksft_print_msg("page at %#llx (PFN %#llx) vmspliced into a pipe\n",
		       (unsigned long long)off, (unsigned long long)pfn);
	result(ok && !luo_run(load),
	       "a memfd with pages in KHO scratch, one of them held by a pipe (vmsplice); the next kernel loaded");
	if (!ok)
		luo_kexec_next();

	/* The move stops short on the page the pipe holds. */
	sfd = luo_must_create_session(dev, "vmsplice");
	ok = luo_keep(sfd, fd, VMS_TOKEN);
	state = vms_settle(sfd, fd, &left, &us);
	ksft_print_msg("PRESERVE_FD; %lld ms later state %u with %ld pages left to move\n",
		       us / 1000, state, left);
	result(ok && state == LIVEUPDATE_FILE_PRESERVED && left > 0,
	       "the move out of scratch stops on the page the pipe holds: settling ends with pages left to move");

	/*
	 * The pipe is drained at once: the failed freeze has just started
	 * the move again, which retries the page for about a second.
	 */
	fflush(stdout);
	ret = luo_reboot_kexec();
	ok = ret < 0 && read(pipefd[0], buf, PG) == (ssize_t)PG;
	close(pipefd[0]);
	close(pipefd[1]);
	fill(want, off, PG, VMS_SEED);
	ok = ok && !memcmp(buf, want, PG);
	state2 = luo_file_state(sfd, VMS_TOKEN);
	ksft_print_msg("reboot(KEXEC): %s; then state %u\n",
		       ret ? strerror(-ret) : "returned 0", state2);
	result(ok && ret != -EINVAL && luo_file_count(sfd) == 1 &&
	       (state2 == LIVEUPDATE_FILE_SETTLING ||
		state2 == LIVEUPDATE_FILE_PRESERVED) &&
	       check(fd, 0, size, VMS_SEED),
	       "reboot(KEXEC) fails (%s) while the pipe holds the page: still preserved, the pipe's page and every byte intact",
	       strerror(-ret));

	/*
	 * The move, started again, gets through now.  Only on a machine so
	 * slow that it gave up again before the pipe was drained are more
	 * pages left: then the next failed freeze starts it once more.
	 */
	for (;;) {
		state = vms_settle(sfd, fd, &left2, &us2);
		if (left2 <= 0 || retries == 2)
			break;
		ret = luo_reboot_kexec();
		retries++;
		ksft_print_msg("moved %ld pages short: reboot(KEXEC) again: %s\n",
			       left2, strerror(-ret));
	}
	ksft_print_msg("after the drain: state %u, %ld pages left to move, %lld ms; %d more failed reboots\n",
		       state, left2, us2 / 1000, retries);
	result(state == LIVEUPDATE_FILE_PRESERVED && !left2 &&
	       check(fd, size - CMA_STEP, CMA_STEP, VMS_SEED),
	       "pipe drained: the move resumes where it stopped and ends, nothing left to move");
	if (ksft_get_fail_cnt())
		luo_kexec_next();
	fflush(stdout);
	ret = luo_reboot_kexec();
	ksft_print_msg("reboot(KEXEC): %s\n", strerror(-ret));
	ksft_test_result_fail("kexec into stage 1\n");
	ksft_finished();
}

int main(int argc, char **argv)
{
	const char *scenario = argc == 2 ? argv[1] : "";

	stage = luo_stage();
	nopreload = !strcmp(scenario, "core-nopreload");
	if (nopreload)
		scenario = "core";
	if (strcmp(scenario, "core") && strcmp(scenario, "paths") &&
	    strcmp(scenario, "hops") && strcmp(scenario, "memcg") &&
	    strcmp(scenario, "lazy") && strcmp(scenario, "scratch") &&
	    strcmp(scenario, "vmsplice")) {
		fprintf(stderr, "%s core|core-nopreload|paths|hops|memcg|lazy|scratch|vmsplice, with LUO_STAGE=N\n",
			argv[0]);
		return KSFT_FAIL;
	}
	ksft_print_header();
	if (access(LUO_DEVICE, F_OK))
		ksft_exit_skip("%s missing\n", LUO_DEVICE);
	dev = luo_open_device();
	if (dev < 0)
		ksft_exit_fail_msg("open %s: %s\n", LUO_DEVICE, strerror(-dev));
	if (!strcmp(scenario, "paths"))
		paths_0();
	else if (!strcmp(scenario, "hops"))
		hops();
	else if (!strcmp(scenario, "memcg"))
		memcg();
	else if (!strcmp(scenario, "lazy"))
		lazy();
	else if (!strcmp(scenario, "scratch"))
		scratch_reboot();
	else if (!strcmp(scenario, "vmsplice"))
		vmsplice_reboot();
	else if (stage == 0)
		core_0();
	else if (stage == 1)
		core_1();
	ksft_exit_fail_msg("no stage %d\n", stage);
}
