// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: memfds carried across a kexec reboot.
 *
 *   liveupdate_memfd SCENARIO
 *
 * core: stage 0 creates memfds (full, sparse, 4 TiB sparse, sealed,
 * MFD_NOEXEC_SEAL, THP-backed, written after PRESERVE_FD, never retrieved),
 * checks what must hold while they are preserved, and kexecs; stage 1
 * retrieves them and checks contents, holes, size, position, seals, name,
 * mode and owner, and that FINISH frees the one never retrieved.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
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

#include "liveupdate_test.h"
#include "kselftest.h"

#define MiB		(1024ULL * 1024)
#define GiB		(1024 * MiB)
#define TiB		(1024 * GiB)
#define PG		4096ULL

#define FULL_SIZE	(64 * MiB)
#define FULL_POS	12345
#define SPARSE_SIZE	GiB
#define SPARSE_STEP	(37 * MiB + 5 * PG)
#define HUGE4T_SIZE	(4 * TiB)
#define HUGE4T_STEP	(397 * GiB + 3 * PG)
#define LATE_SIZE	(16 * MiB)
#define THP_SIZE	(8 * MiB)
#define UNRET_SIZE	(64 * MiB)

enum { T_FULL = 1, T_SPARSE, T_4T, T_SEALED, T_NOEXEC, T_LATE, T_THP };

static int dev = -1;
static int stage;

#define result(cond, fmt, ...) \
	ksft_test_result(cond, fmt "\n", ##__VA_ARGS__)

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
}

/* Write [off, off + len) with the pattern of @seed. */
static int put(int fd, __u64 off, __u64 len, __u64 seed)
{
	static __u64 buf[MiB / 8];
	__u64 n;

	while (len) {
		n = len < MiB ? len : MiB;
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
	static __u64 buf[MiB / 8], want[MiB / 8];
	__u64 n;

	while (len) {
		n = len < MiB ? len : MiB;
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

static long meminfo_kb(const char *key)
{
	char line[256];
	long val = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)) &&
		    line[strlen(key)] == ':')
			val = atol(line + strlen(key) + 1);
	fclose(f);
	return val;
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

static bool name_is(int fd, const char *name)
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

/* The data regions of @fd, by SEEK_DATA/SEEK_HOLE, are the pages at @offs. */
static bool data_is(int fd, const __u64 *offs, int n, __u64 size)
{
	off_t pos = 0, data, hole;
	int i = 0;

	for (;;) {
		data = lseek(fd, pos, SEEK_DATA);
		if (data < 0)
			break;
		hole = lseek(fd, data, SEEK_HOLE);
		while (data < hole) {
			if (i >= n || (__u64)data != offs[i]) {
				ksft_print_msg("unexpected data at %lld\n",
					       (long long)data);
				return false;
			}
			data += PG;
			i++;
		}
		pos = hole;
		if ((__u64)pos >= size)
			break;
	}
	if (i != n)
		ksft_print_msg("%d data pages, want %d\n", i, n);
	return i == n;
}

static int sparse_offs(__u64 *offs, __u64 size, __u64 step)
{
	int n = 0;
	__u64 off;

	for (off = 0; off < size; off += step)
		offs[n++] = off & ~(PG - 1);
	offs[n++] = size - PG;
	return n;
}

static bool thp_available(void)
{
	return !access("/sys/kernel/mm/transparent_hugepage/shmem_enabled",
		       W_OK);
}

static void __noreturn kexec_next(void)
{
	int ret;

	if (ksft_get_fail_cnt()) {
		ksft_test_result_fail("kexec into stage %d # not tried after failures\n",
				      stage + 1);
		ksft_finished();
	}
	ret = next_stage();
	ksft_print_msg("%s returned %d\n", LUO_NEXT_STAGE, ret);
	ksft_test_result_fail("kexec into stage %d\n", stage + 1);
	ksft_finished();
}

static bool preserve(int sfd, int fd, __u64 token)
{
	int ret = luo_preserve_fd(sfd, fd, token);

	if (ret)
		ksft_print_msg("PRESERVE_FD of token %llu: %s\n",
			       (unsigned long long)token, strerror(-ret));
	return !ret;
}

static void core_0(void)
{
	__u64 offs[64];
	int sfd, usfd, full, sparse, big, sealed, noexec, late, thp, unret;
	int tmp, hfd, n, ret;
	long free0, free1, thp_kb = 0;
	long long t;
	struct stat st;
	char *map;
	pid_t pid;

	ksft_set_plan(15);
	luo_create_session(dev, "memfd", &sfd);
	luo_create_session(dev, "memfd-unret", &usfd);

	full = new_memfd("full", 0, 0);
	result(!put(full, 0, FULL_SIZE, 1), "write 64 MiB");
	lseek(full, FULL_POS, SEEK_SET);
	fchmod(full, 0640);
	result(!fchown(full, 1000, 2000), "chown 1000:2000");

	sparse = new_memfd("sparse", 0, SPARSE_SIZE);
	n = sparse_offs(offs, SPARSE_SIZE, SPARSE_STEP);
	for (int i = 0; i < n; i++)
		put(sparse, offs[i], PG, 2);
	big = new_memfd("4t", 0, HUGE4T_SIZE);
	n = sparse_offs(offs, HUGE4T_SIZE, HUGE4T_STEP);
	for (int i = 0; i < n; i++)
		put(big, offs[i], PG, 3);

	sealed = new_memfd("sealed", MFD_ALLOW_SEALING, 0);
	put(sealed, 0, 3 * PG + 100, 4);
	result(!fcntl(sealed, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
		      F_SEAL_WRITE | F_SEAL_SEAL), "seal shrink, grow, write, seal");
	noexec = new_memfd("noexec", MFD_NOEXEC_SEAL, 0);
	put(noexec, 0, PG, 5);

	late = new_memfd("late", 0, LATE_SIZE);
	put(late, 0, MiB, 6);

	thp = -1;
	if (thp_available()) {
		luo_write_file("/sys/kernel/mm/transparent_hugepage/shmem_enabled",
			       "always");
		thp_kb = meminfo_kb("ShmemHugePages");
		thp = new_memfd("thp", 0, THP_SIZE);
		put(thp, 0, THP_SIZE, 7);
		thp_kb = meminfo_kb("ShmemHugePages") - thp_kb;
		ksft_print_msg("THP memfd: %ld kB in huge pages\n", thp_kb);
	}

	unret = new_memfd("unret", 0, 0);
	put(unret, 0, UNRET_SIZE, 8);

	free0 = meminfo_kb("MemFree");
	t = now_us();
	ret = preserve(sfd, full, T_FULL);
	t = now_us() - t;
	ksft_print_msg("PRESERVE_FD of 64 MiB of 4 KiB pages: %lld us\n", t);
	fstat(sparse, &st);
	ret &= preserve(sfd, sparse, T_SPARSE) && preserve(sfd, big, T_4T) &&
	       preserve(sfd, sealed, T_SEALED) &&
	       preserve(sfd, noexec, T_NOEXEC) && preserve(sfd, late, T_LATE) &&
	       preserve(usfd, unret, 1);
	if (thp >= 0)
		ret &= preserve(sfd, thp, T_THP);
	result(ret, "preserve the memfds");
	free1 = meminfo_kb("MemFree");
	ksft_print_msg("MemFree: %ld kB before, %ld kB after preserving\n",
		       free0, free1);
	result(free0 - free1 < 4096, "preserving allocated no holes (< 4 MiB)");

	/* The size is locked while preserved. */
	result(ftruncate(full, FULL_SIZE / 2) && errno == EPERM,
	       "ftruncate shrink: EPERM");
	result(ftruncate(full, FULL_SIZE * 2) && errno == EPERM,
	       "ftruncate grow: EPERM");
	result(fallocate(full, 0, FULL_SIZE, MiB) && errno == EPERM,
	       "fallocate beyond size: EPERM");
	result(fallocate(full, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			 MiB) && errno == EPERM, "punch hole: EPERM");
	result(pwrite(full, "x", 1, FULL_SIZE) < 0 && errno == EPERM,
	       "write beyond size: EPERM");

	/* Unpreserved, a memfd is ordinary again. */
	tmp = new_memfd("tmp", 0, MiB);
	ret = luo_preserve_fd(sfd, tmp, 99);
	ret = ret ?: luo_unpreserve_fd(sfd, 99);
	result(!ret && !ftruncate(tmp, 2 * MiB) &&
	       !fallocate(tmp, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			  PG), "unpreserved: ftruncate and punch hole work");
	close(tmp);

	/* Not memfds, or not supported. */
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
	hfd = memfd_create("huge", MFD_HUGETLB);
	if (hfd >= 0) {
		result(luo_preserve_fd(sfd, hfd, 97) == -EOPNOTSUPP,
		       "MFD_HUGETLB: EOPNOTSUPP");
		close(hfd);
	} else {
		ksft_test_result_skip("MFD_HUGETLB: no hugetlb (%s)\n",
				      strerror(errno));
	}

	/* Writes after PRESERVE_FD: hole, present page, and from a child. */
	ret = put(late, 8 * MiB, 2 * PG, 9) ?: put(late, 0, PG, 10);
	pid = fork();
	if (!pid) {
		map = mmap(NULL, LATE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
			   late, 0);
		if (map == MAP_FAILED)
			_exit(1);
		fill((__u64 *)(map + 12 * MiB), 12 * MiB, MiB, 11);
		_exit(0);
	}
	waitpid(pid, &n, 0);
	result(!ret && WIFEXITED(n) && !WEXITSTATUS(n),
	       "write a hole, a present page, and a hole from a child's mmap");
	if (thp >= 0)
		result(thp_kb >= 2048, "THP memfd uses huge pages");
	else
		ksft_test_result_skip("THP memfd: no shmem THP\n");
	kexec_next();
}

static int retrieve(int sfd, __u64 token)
{
	int fd = -1, ret = luo_retrieve_fd(sfd, token, &fd);

	if (ret)
		ksft_print_msg("RETRIEVE_FD of token %llu: %s\n",
			       (unsigned long long)token, strerror(-ret));
	return ret ? -1 : fd;
}

static bool size_is(int fd, __u64 size)
{
	struct stat st;

	return !fstat(fd, &st) && (__u64)st.st_size == size;
}

static void core_1(void)
{
	int sfd = -1, usfd = -1, fd, n, seals, ret;
	__u64 offs[64];
	long long t;
	long free0, free1, thp_kb;
	struct stat st;
	bool ok;

	ksft_set_plan(16);
	luo_retrieve_session(dev, "memfd", &sfd);
	luo_retrieve_session(dev, "memfd-unret", &usfd);
	if (sfd < 0 || usfd < 0)
		ksft_exit_fail_msg("retrieve sessions\n");

	t = now_us();
	fd = retrieve(sfd, T_FULL);
	t = now_us() - t;
	ksft_print_msg("RETRIEVE_FD of 64 MiB of 4 KiB pages: %lld us\n", t);
	result(fd >= 0 && size_is(fd, FULL_SIZE) && check(fd, 0, FULL_SIZE, 1),
	       "full: 64 MiB intact");
	result(fd >= 0 && lseek(fd, 0, SEEK_CUR) == FULL_POS,
	       "full: position");
	ok = fd >= 0 && !fstat(fd, &st);
	result(ok && (st.st_mode & 07777) == 0640 && st.st_uid == 1000 &&
	       st.st_gid == 2000, "full: mode 0640, owner 1000:2000");
	result(fd >= 0 && name_is(fd, "full"), "full: name");
	result(fd >= 0 && ftruncate(fd, MiB) == 0, "full: ordinary after retrieve");

	fd = retrieve(sfd, T_SPARSE);
	n = sparse_offs(offs, SPARSE_SIZE, SPARSE_STEP);
	ok = fd >= 0 && size_is(fd, SPARSE_SIZE) && data_is(fd, offs, n,
							     SPARSE_SIZE);
	for (int i = 0; ok && i < n; i++)
		ok = check(fd, offs[i], PG, 2);
	result(ok && !fstat(fd, &st) && st.st_blocks == n * 8,
	       "sparse 1 GiB: %d pages, holes stay holes", n);

	fd = retrieve(sfd, T_4T);
	n = sparse_offs(offs, HUGE4T_SIZE, HUGE4T_STEP);
	ok = fd >= 0 && size_is(fd, HUGE4T_SIZE) && data_is(fd, offs, n,
							     HUGE4T_SIZE);
	for (int i = 0; ok && i < n; i++)
		ok = check(fd, offs[i], PG, 3);
	result(ok, "sparse 4 TiB: %d pages, holes stay holes", n);

	fd = retrieve(sfd, T_SEALED);
	seals = fd >= 0 ? fcntl(fd, F_GET_SEALS) : -1;
	result(fd >= 0 && size_is(fd, 3 * PG + 100) &&
	       check(fd, 0, 3 * PG + 96, 4) &&
	       seals == (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
			 F_SEAL_SEAL) &&
	       pwrite(fd, "x", 1, 0) < 0 && errno == EPERM &&
	       mmap(NULL, PG, PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED,
	       "sealed: contents, seals 0x%x, writes refused", seals);

	fd = retrieve(sfd, T_NOEXEC);
	seals = fd >= 0 ? fcntl(fd, F_GET_SEALS) : -1;
	ok = fd >= 0 && !fstat(fd, &st);
	result(ok && check(fd, 0, PG, 5) && seals == F_SEAL_EXEC &&
	       !(st.st_mode & 0111) && fchmod(fd, 0755) && errno == EPERM &&
	       pwrite(fd, "y", 1, 0) == 1,
	       "MFD_NOEXEC_SEAL: non-exec, seals 0x%x, writable", seals);

	fd = retrieve(sfd, T_LATE);
	result(fd >= 0 && check(fd, 0, PG, 10) && check(fd, PG, MiB - PG, 6) &&
	       check(fd, 8 * MiB, 2 * PG, 9) && check(fd, 12 * MiB, MiB, 11),
	       "writes after PRESERVE_FD survived");

	if (access("/sys/kernel/mm/transparent_hugepage/shmem_enabled", F_OK)) {
		ksft_test_result_skip("THP: no shmem THP\n");
	} else {
		thp_kb = meminfo_kb("ShmemHugePages");
		fd = retrieve(sfd, T_THP);
		ksft_print_msg("ShmemHugePages after retrieve: %ld kB\n",
			       meminfo_kb("ShmemHugePages"));
		result(fd >= 0 && check(fd, 0, THP_SIZE, 7) &&
		       meminfo_kb("ShmemHugePages") >= 2048 &&
		       meminfo_kb("ShmemHugePages") - thp_kb >= 0,
		       "THP: contents, still huge pages");
	}

	result(retrieve(sfd, 1234) < 0, "unknown token fails");
	ret = luo_finish(sfd);
	result(!ret, "finish");

	free0 = meminfo_kb("MemFree");
	ret = luo_finish(usfd);
	free1 = meminfo_kb("MemFree");
	ksft_print_msg("MemFree: %ld kB before, %ld kB after FINISH\n", free0,
		       free1);
	result(!ret, "finish the session with an unretrieved memfd");
	result(free1 - free0 >= (long)(UNRET_SIZE / 1024) * 9 / 10,
	       "unretrieved memfd freed at FINISH");
	result(retrieve(usfd, 1) < 0, "nothing to retrieve after FINISH");
	ksft_finished();
}

int main(int argc, char **argv)
{
	if (argc != 2 || strcmp(argv[1], "core")) {
		fprintf(stderr, "%s core, with LUO_STAGE=N\n", argv[0]);
		return KSFT_FAIL;
	}
	stage = luo_stage();
	ksft_print_header();
	if (access(LUO_DEVICE, F_OK))
		ksft_exit_skip("%s missing\n", LUO_DEVICE);
	dev = luo_open_device();
	if (dev < 0)
		ksft_exit_fail_msg("open %s: %s\n", LUO_DEVICE, strerror(-dev));
	if (stage == 0)
		core_0();
	else if (stage == 1)
		core_1();
	ksft_exit_fail_msg("no stage %d\n", stage);
}
