// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: a damaged handover state.
 *
 *   liveupdate_damage
 *
 * Each stage preserves sessions of memfds and test objects, asks the
 * kernel (debugfs liveupdate/damage, CONFIG_LIVEUPDATE_TEST) to damage the
 * state it hands over in the ways of one "run", and kexecs; the next stage
 * checks that the new kernel booted, logged each damage, refused exactly
 * the damaged sessions and files with the documented errno, and gave back
 * every undamaged one intact, each damaged file refused within
 * RETRIEVE_MS.  Runs: damaged records, a damaged handler record, a damaged
 * FLB record, broken framing and foreign chunks, a truncated chunk, a
 * newer format version, a bad magic, the bounds of the memfd reader, and
 * damage aimed outside the handover, which the kernel must refuse.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "liveupdate_test.h"
#include "kselftest.h"

#define DAMAGE		"/sys/kernel/debug/liveupdate/damage"
#define MAX_FILES	8
#define MAX_SESSIONS	12
#define MAX_LOGS	8
#define MAX_DAMAGE	24
/* A damaged file is refused within this, however its chains are made. */
#define RETRIEVE_MS	5000

#define PG		4096UL
#define THP_SIZE	(2UL << 20)
#define THP_KNOB	"/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define KHO_OUT		"/sys/kernel/debug/kho/out/"

/*
 * MEMFD: a few pages, OBJECT: a test object; PAGE1: a memfd of one page
 * (one entry in one chunk); THP1, THP3: a memfd of one or three PMD-sized
 * huge folios; NAMED: one page, named so that a header 8 bytes longer
 * still finds a name ("memfd:" at 8 in it); TARGET: one page, whose
 * physical address becomes the size of the AIMER memfd that follows it,
 * so that a pointer read at the size field leads into TARGET's contents.
 */
enum kind { NONE, MEMFD, OBJECT, PAGE1, THP1, THP3, NAMED, TARGET, AIMER };

/* RETRIEVE_FD of the file restores no page (MemTotal does not grow). */
#define NO_RESTORE	0x1

struct dfile {
	enum kind kind;
	__u64 token;
	int want;		/* RETRIEVE_FD result: 0 (intact) or -errno */
	unsigned int flags;
};

struct dsession {
	const char *name;
	int want;		/* RETRIEVE_SESSION result: 0 or -errno */
	struct dfile files[MAX_FILES];
};

struct drun {
	const char *name;
	struct dsession sessions[MAX_SESSIONS];
	const char *damage[MAX_DAMAGE];
	const char *logs[MAX_LOGS];	/* must appear in the new kernel's log */
};

/*
 * The memfd format offsets poked below, from struct memfd_preserve_file in
 * include/linux/kho/abi/memfd_preserve.h: magic 0, header_size 8, size 16,
 * nr_folios 32, nr_pages 40, chunks 48, nr_chunks 56, name_len 76, name
 * 80.  Memfd "m" of token 5 is named
 * "memfd:m5": name_len 8, so its NUL is at 88.  A chunk: next 0, size 8,
 * used 12, its first entry at 16; an entry: type 0, order 1, nr 4 (u32),
 * index 8, and a RUN entry's PFN at 16.  The writer's first chunk holds 48
 * bytes of entries: two RUN entries (24 bytes each); a third goes to a
 * second chunk.
 */
static const struct drun runs[] = {
	{
		.name = "records",
		.sessions = {
			{ "a-good", 0, { { MEMFD, 1, 0 }, { OBJECT, 2, 0 } } },
			{ "a-nr-files", -EBADMSG, { { MEMFD, 1 }, { OBJECT, 2 } } },
			{ "a-name", -ENOENT, { { MEMFD, 1 } } },
			{ "a-x-dup", -ENOENT, { { MEMFD, 1 } } },
			{ "a-handler-id", 0,
			  { { MEMFD, 1, 0 }, { OBJECT, 2, -EBADMSG } } },
			{ "a-version", 0,
			  { { MEMFD, 1, -EOPNOTSUPP }, { OBJECT, 2, 0 } } },
			{ "a-token", -EBADMSG, { { MEMFD, 1 }, { MEMFD, 2 } } },
			{ "a-data", 0,
			  { { OBJECT, 1, -EBADMSG }, { MEMFD, 2, -EBADMSG },
			    { OBJECT, 3, -EBADMSG }, { MEMFD, 4, 0 } } },
			{ "a-type", -EBADMSG, { { MEMFD, 1 } } },
			{ "a-flb-id", 0,
			  { { OBJECT, 1, -EBADMSG }, { MEMFD, 2, 0 } } },
			{ "a-memfd", 0,
			  { { MEMFD, 1, -EBADMSG }, { MEMFD, 2, -EBADMSG },
			    { MEMFD, 3, -EBADMSG }, { MEMFD, 4, -EBADMSG },
			    { MEMFD, 5, -EBADMSG }, { MEMFD, 6, 0 } } },
		},
		.damage = {
			"session a-nr-files nr-files",
			"session a-name name-nul",
			"session a-x-dup rename=a-good",
			"file a-handler-id 2 handler-id",
			"file a-version 1 version",
			"file a-token 2 token=1",
			"file a-data 1 data=wild",
			"file a-data 2 data=wild",
			"file a-data 3 data=zero-page",
			"file a-type 1 type",
			"file a-flb-id 1 flb-id",
			"file a-memfd 1 poke=0,0,8",
			"file a-memfd 2 poke=40,ffffffffffff,8",
			"file a-memfd 3 poke=48,100000000000,8",
			"file a-memfd 4 poke=76,ffff,2",
			"file a-memfd 5 poke=88,78,1",
		},
		.logs = {
			"session 'a-nr-files': damaged state",
			"damaged session record",
			"session 'a-good': duplicate name",
			"unknown handler id",
			"duplicate token 1",
			"unknown record type 0x7f",
			"FLB dependency",
			"not a preserved page",
		},
	},
	{
		.name = "memfd chains and counts",
		.sessions = {
			{ "b-memfd", 0,
			  { { MEMFD, 6, -EBADMSG }, { MEMFD, 7, -EBADMSG },
			    { MEMFD, 8, 0 }, { OBJECT, 9, 0 } } },
		},
		.damage = {
			"file b-memfd 6 loop=48",
			"file b-memfd 7 poke=16,ffffffffffffffff,8",
			"flb memfd-metadata nr-files=999",
		},
		.logs = { "FLB memfd-metadata: 999 dependent files" },
	},
	{
		.name = "handler record",
		.sessions = {
			{ "c-memfd", 0,
			  { { MEMFD, 1, -EBADMSG }, { OBJECT, 2, 0 } } },
		},
		.damage = { "handler memfd name-nul" },
		.logs = { "damaged handler record", "unknown handler id" },
	},
	{
		.name = "FLB record",
		.sessions = {
			{ "d-flb", 0,
			  { { OBJECT, 1, -EBADMSG }, { MEMFD, 2, 0 } } },
		},
		.damage = { "flb liveupdate-test-flb name-nul" },
		.logs = { "damaged FLB record", "FLB dependency" },
	},
	{
		/* A broken length loses the rest of its chunk: last session. */
		.name = "framing and foreign chunks",
		.sessions = {
			{ "e-a", 0, { { MEMFD, 1, 0 }, { OBJECT, 2, 0 } } },
			{ "e-b", 0, { { OBJECT, 1, 0 } } },
			{ "e-z", -EBADMSG,
			  { { MEMFD, 1 }, { OBJECT, 2 }, { MEMFD, 3 } } },
		},
		.damage = {
			"file e-z 2 size",
			"header chunk-dup",
			"header chunk-wild",
			"header nr-sessions",
		},
		.logs = {
			"handover chunk 0 is damaged",
			"handover chunk 1 is damaged",
			"handover chunk 2 is damaged",
			"of 4 sessions",
		},
	},
	{
		.name = "truncated chunk",
		.sessions = {
			{ "f-a", 0, { { MEMFD, 1, 0 }, { OBJECT, 2, 0 } } },
			{ "f-z", -EBADMSG, { { MEMFD, 1 }, { OBJECT, 2 } } },
		},
		.damage = { "header chunk-truncate" },
		.logs = { "handover chunk 0 is damaged" },
	},
	{
		.name = "newer format",
		.sessions = {
			{ "g-a", -ENOENT, { { MEMFD, 1 }, { OBJECT, 2 } } },
		},
		.damage = { "header version" },
		.logs = { "is newer than this kernel's" },
	},
	{
		.name = "bad magic",
		.sessions = {
			{ "h-a", -ENOENT, { { MEMFD, 1 }, { OBJECT, 2 } } },
		},
		.damage = { "header magic" },
		.logs = { "handover state has a bad header" },
	},
	{
		/*
		 * Each damage in "i-reader" passes every check of the memfd
		 * reader but the one it is aimed at.  Without those checks, 2
		 * and 4 came back with data missing, 3 spun through 2^32
		 * chunks, 5 was refused, and 1 failed only after taking its
		 * folio back from KHO (seen when it is aligned to order 10);
		 * 6 is the other half of 5's rule.  "i-aim" aims at a
		 * preserved file's contents, which the knob used to write.
		 */
		.name = "memfd reader",
		.sessions = {
			{ "i-reader", 0,
			  { { THP1, 1, -EBADMSG, NO_RESTORE },
			    { THP3, 2, -EBADMSG }, { PAGE1, 3, -EBADMSG },
			    { PAGE1, 4, -EBADMSG }, { NAMED, 5, 0 },
			    { PAGE1, 6, -EBADMSG }, { MEMFD, 7, 0 },
			    { OBJECT, 8, 0 } } },
			{ "i-aim", 0, { { TARGET, 1, 0 }, { AIMER, 2, 0 } } },
		},
		.damage = {
			/* 1: an order-10 folio, above MAX_PAGECACHE_ORDER. */
			"file i-reader 1 poke=48:17,a,1",
			"file i-reader 1 poke=48:20,400,4",
			/* 2: chunk 2 of 2 emptied, the counts cut to chunk 1's. */
			"file i-reader 2 poke=48:0:12,0,4",
			"file i-reader 2 poke=32,2,8",
			"file i-reader 2 poke=40,400,8",
			/* 3: a cycle of one empty chunk, 2^32 - 1 announced. */
			"file i-reader 3 loop=48",
			"file i-reader 3 poke=48:12,0,4",
			"file i-reader 3 poke=56,ffffffff,4",
			/* 4: one empty chunk and no folio: more chunks than folios. */
			"file i-reader 4 poke=48:12,0,4",
			"file i-reader 4 poke=32,0,8",
			"file i-reader 4 poke=40,0,8",
			/* 5: a header 8 bytes longer; the name at 88 is "memfd:ab". */
			"file i-reader 5 poke=8,58,4",
			"file i-reader 5 poke=76,8,2",
			/* 6: a header size that is no multiple of 8. */
			"file i-reader 6 poke=8,54,4",
			/*
			 * At TARGET's contents, through AIMER's size: refused,
			 * so both come back intact.
			 */
			"file i-aim 2 loop=16",
			"file i-aim 2 poke=16:0,ffffffffffffffff,8",
		},
	},
};

static int stage;
static int dev = -1;

/* Contents derived from where a file sits, so nothing needs carrying. */
static unsigned char pattern(const char *session, __u64 token, size_t i)
{
	unsigned int h = 2166136261u;

	while (*session)
		h = (h ^ (unsigned char)*session++) * 16777619u;
	return (h + token * 131 + i * 7 + (i >> 12)) & 0xff;
}

static __u64 object_value(const char *session, __u64 token)
{
	return ((__u64)pattern(session, token, 0) << 32) | token;
}

/* The physical address of TARGET's page: AIMER's size. */
static __u64 target_phys;

static size_t memfd_size(const struct dfile *f)
{
	switch (f->kind) {
	case PAGE1:
	case NAMED:
	case TARGET:
		return PG;
	case THP1:
		return THP_SIZE;
	case THP3:
		return 3 * THP_SIZE;
	case AIMER:
		return target_phys;
	default:
		return 3 * PG + 100 + f->token * 512;
	}
}

/* The PFN of the first page of memfd @fd, or 0. */
static __u64 memfd_pfn(int fd)
{
	__u64 entry = 0;
	char *map;
	int pm;

	map = mmap(NULL, PG, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return 0;
	(void)*(volatile char *)map;
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0 || pread(pm, &entry, 8, (uintptr_t)map / PG * 8) != 8)
		entry = 0;
	if (pm >= 0)
		close(pm);
	munmap(map, PG);
	return entry >> 63 ? entry & ((1ULL << 55) - 1) : 0;
}

/* Whether @pfn is in a KHO scratch area, which no preserved page may use. */
static bool in_scratch(__u64 pfn)
{
	char *phys = luo_read_file(KHO_OUT "scratch_phys");
	char *len = luo_read_file(KHO_OUT "scratch_len");
	char *p = phys, *l = len;
	bool in = false;

	while (p && l && *p && *l) {
		__u64 start = strtoull(p, &p, 16);
		__u64 end = start + strtoull(l, &l, 16);

		in |= pfn * PG >= start && pfn * PG < end;
		p += strspn(p, "\n");
		l += strspn(l, "\n");
	}
	free(phys);
	free(len);
	return in;
}

/* Set shmem THP to @mode; the mode it had in @old, if not NULL. */
static void thp_mode(const char *mode, char *old, size_t size)
{
	char *now = luo_read_file(THP_KNOB), *start, *end;
	int ret;

	if (!now)
		luo_bail("%s: %s", THP_KNOB, strerror(errno));
	start = strchr(now, '[');
	end = start ? strchr(start, ']') : NULL;
	if (old && end) {
		*end = 0;
		snprintf(old, size, "%s", start + 1);
	}
	free(now);
	ret = luo_write_file(THP_KNOB, mode);
	if (ret)
		luo_bail("%s: %s: %s", THP_KNOB, mode, strerror(-ret));
}

static int new_memfd(const char *session, const struct dfile *f)
{
	size_t size = memfd_size(f), i;
	unsigned char *buf;
	char name[16];
	int fd;

	if (f->kind == NAMED)
		snprintf(name, sizeof(name), "XYmemfd:ab");
	else
		snprintf(name, sizeof(name), "m%llu",
			 (unsigned long long)f->token);
	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		luo_bail("memfd_create: %s", strerror(errno));
	if (ftruncate(fd, size))
		luo_bail("ftruncate memfd: %s", strerror(errno));
	/* AIMER is all holes: only its size matters. */
	if (f->kind == AIMER)
		return fd;
	buf = malloc(size);
	if (!buf)
		luo_bail("out of memory");
	for (i = 0; i < size; i++)
		buf[i] = pattern(session, f->token, i);
	if (pwrite(fd, buf, size, 0) != (ssize_t)size)
		luo_bail("write memfd: %s", strerror(errno));
	free(buf);
	return fd;
}

/* A memfd of PMD-sized folios only; bails out if shmem gives smaller. */
static int new_thp_memfd(const char *session, const struct dfile *f)
{
	long kb = luo_meminfo_kb("ShmemHugePages");
	char old[32] = "never";
	int fd;

	thp_mode("always", old, sizeof(old));
	fd = new_memfd(session, f);
	kb = luo_meminfo_kb("ShmemHugePages") - kb;
	thp_mode(old, NULL, 0);
	if (kb * 1024 != (long)memfd_size(f))
		luo_bail("THP memfd %llu: %ld kB in huge pages",
			 (unsigned long long)f->token, kb);
	return fd;
}

/*
 * THP1's folio: at a PFN aligned to order 10 if a few tries find one, and
 * outside KHO scratch (where it would move).  A reader without the
 * MAX_PAGECACHE_ORDER check then restores it on the way to EBADMSG (its
 * order does not match), and MemTotal shows that.
 */
static int new_thp1_memfd(const char *session, const struct dfile *f)
{
	int fd = -1, tries[8], n;
	__u64 pfn = 0;

	for (n = 0; n < 8; n++) {
		fd = new_thp_memfd(session, f);
		tries[n] = fd;
		pfn = memfd_pfn(fd);
		if (pfn && !(pfn & 1023) && !in_scratch(pfn))
			break;
	}
	if (n == 8)
		n--;
	while (n-- > 0)
		close(tries[n]);
	ksft_print_msg("THP at PFN %#llx: %saligned to order 10\n",
		       (unsigned long long)pfn, !pfn || pfn & 1023 ? "not " : "");
	return fd;
}

/*
 * TARGET's page as the next kernel finds it: once out of KHO scratch, if
 * it was there (PRESERVE_FD moves it).  Its address is AIMER's size.
 */
static void note_target(int fd)
{
	__u64 pfn = memfd_pfn(fd);
	int ms;

	for (ms = 0; (!pfn || in_scratch(pfn)) && ms < 10000; ms += 10) {
		usleep(10000);
		pfn = memfd_pfn(fd);
	}
	if (!pfn || in_scratch(pfn))
		luo_bail("TARGET's page: PFN %#llx", (unsigned long long)pfn);
	target_phys = pfn * PG;
	ksft_print_msg("TARGET's page at %#llx\n",
		       (unsigned long long)target_phys);
}

static int make_file(const char *session, const struct dfile *f)
{
	switch (f->kind) {
	case OBJECT:
		return luo_test_new(object_value(session, f->token));
	case THP1:
		return new_thp1_memfd(session, f);
	case THP3:
		return new_thp_memfd(session, f);
	case AIMER:
		if (!target_phys)
			luo_bail("AIMER without a TARGET before it");
		return new_memfd(session, f);
	default:
		return new_memfd(session, f);
	}
}

static bool memfd_intact(int fd, const char *session, const struct dfile *f)
{
	size_t size = memfd_size(f), i;
	unsigned char *buf;
	bool ok;

	buf = malloc(size + 1);
	if (!buf)
		luo_bail("out of memory");
	ok = pread(fd, buf, size + 1, 0) == (ssize_t)size;
	for (i = 0; ok && i < size; i++)
		ok = buf[i] == pattern(session, f->token, i);
	free(buf);
	return ok;
}

/* AIMER, whose size the previous kernel chose: page-sized, all holes. */
static bool aimer_intact(int fd)
{
	unsigned char buf[PG];
	struct stat st;
	size_t i;
	bool ok;

	ok = !fstat(fd, &st) && st.st_size && !(st.st_size % PG) &&
	     pread(fd, buf, PG, 0) == (ssize_t)PG;
	for (i = 0; ok && i < PG; i++)
		ok = !buf[i];
	return ok;
}

/* NAMED came back with the name found at the longer header's end. */
static bool named_intact(int fd, const char *session, const struct dfile *f)
{
	char path[64], link[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = 0;
	if (strcmp(link, "/memfd:ab (deleted)"))
		ksft_print_msg("name: %s\n", link);
	return !strcmp(link, "/memfd:ab (deleted)") &&
	       memfd_intact(fd, session, f);
}

static void setup(const struct drun *run)
{
	const struct dsession *s;
	const struct dfile *f;
	unsigned int i;
	int ret;

	ret = luo_write_file(DAMAGE, "clear");
	if (ret)
		luo_bail("%s: %s", DAMAGE, strerror(-ret));
	for (s = run->sessions; s < run->sessions + MAX_SESSIONS && s->name;
	     s++) {
		int sfd = -1;

		ret = luo_create_session(dev, s->name, &sfd);
		if (ret)
			luo_bail("create session %s: %s", s->name, strerror(-ret));
		for (f = s->files; f < s->files + MAX_FILES && f->kind; f++) {
			int fd = make_file(s->name, f);

			if (fd < 0)
				luo_bail("new test object: %s", strerror(-fd));
			ret = luo_preserve_fd(sfd, fd, f->token);
			if (ret)
				luo_bail("preserve %s/%llu: %s", s->name,
					 (unsigned long long)f->token,
					 strerror(-ret));
			if (f->kind == TARGET)
				note_target(fd);
			close(fd);
		}
		/* sfd stays open: the session goes with the reboot. */
	}
	for (i = 0; i < ARRAY_SIZE(run->damage) && run->damage[i]; i++) {
		ret = luo_write_file(DAMAGE, run->damage[i]);
		if (ret)
			luo_bail("%s: %s: %s", DAMAGE, run->damage[i],
				 strerror(-ret));
	}
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool file_intact(int fd, const char *session, const struct dfile *f)
{
	unsigned long long value;

	switch (f->kind) {
	case OBJECT:
		return !luo_test_value(fd, &value) &&
		       value == object_value(session, f->token);
	case AIMER:
		return aimer_intact(fd);
	case NAMED:
		return named_intact(fd, session, f);
	default:
		return memfd_intact(fd, session, f);
	}
}

/*
 * RETRIEVE_FD of @f: its errno, in bounded time, and for NO_RESTORE
 * without taking any preserved page back (MemTotal grows as KHO gives
 * pages back; the metadata pool's few pages may come back meanwhile).
 */
static void check_refused(const char *session, const struct dfile *f,
			  int ret, long ms, long kb)
{
	ksft_print_msg("%s/%llu: %d (%s) in %ld ms, MemTotal %+ld kB\n",
		       session, (unsigned long long)f->token, ret,
		       strerror(-ret), ms, kb);
	ksft_test_result(ret == f->want && ms < RETRIEVE_MS,
			 "%s/%llu: RETRIEVE_FD gives %s within %d ms\n",
			 session, (unsigned long long)f->token,
			 f->want ? strerror(-f->want) : "the file",
			 RETRIEVE_MS);
	if (f->flags & NO_RESTORE)
		ksft_test_result(kb < 1024, "%s/%llu: no page restored\n",
				 session, (unsigned long long)f->token);
}

static void check_file(int sfd, const char *session, const struct dfile *f)
{
	long kb = luo_meminfo_kb("MemTotal"), ms = now_ms();
	int fd = -1, ret;

	ret = luo_retrieve_fd(sfd, f->token, &fd);
	ms = now_ms() - ms;
	kb = luo_meminfo_kb("MemTotal") - kb;
	if (ret || f->want) {
		check_refused(session, f, ret, ms, kb);
		if (!ret)
			close(fd);
		return;
	}
	ksft_test_result(file_intact(fd, session, f), "%s/%llu: %s intact\n",
			 session, (unsigned long long)f->token,
			 f->kind == OBJECT ? "test object" : "memfd");
	close(fd);
}

static void check(const struct drun *run)
{
	const struct dsession *s;
	const struct dfile *f;
	unsigned int i;
	char *log;
	int ret;

	ksft_print_msg("checking run '%s'\n", run->name);
	for (s = run->sessions; s < run->sessions + MAX_SESSIONS && s->name;
	     s++) {
		int sfd = -1;

		ret = luo_retrieve_session(dev, s->name, &sfd);
		if (ret != s->want)
			ksft_print_msg("got %d (%s)\n", ret, strerror(-ret));
		ksft_test_result(ret == s->want,
				 "%s: RETRIEVE_SESSION gives %s\n", s->name,
				 s->want ? strerror(-s->want) : "the session");
		if (ret)
			continue;
		for (f = s->files; f < s->files + MAX_FILES && f->kind; f++)
			check_file(sfd, s->name, f);
		ret = luo_finish(sfd);
		ksft_test_result(!ret, "%s: FINISH\n", s->name);
		close(sfd);
	}
	/* After the retrieves: some damage is only seen by them. */
	log = luo_kernel_log();
	for (i = 0; i < MAX_LOGS && run->logs[i]; i++)
		ksft_test_result(strstr(log, run->logs[i]),
				 "kernel log says \"%s\"\n", run->logs[i]);
	free(log);
}

/* The number of checks depends on the run: the plan comes last. */
static void __noreturn finished(void)
{
	ksft_set_plan(ksft_test_num());
	ksft_finished();
}

int main(void)
{
	stage = luo_stage();
	ksft_print_header();
	if (stage < 0 || stage > (int)ARRAY_SIZE(runs))
		ksft_exit_fail_msg("no stage %d\n", stage);
	if (access(LUO_DEVICE, F_OK))
		ksft_exit_skip("%s missing (no LUO, or liveupdate=off)\n",
			       LUO_DEVICE);
	if (!luo_test_available() || access(DAMAGE, F_OK))
		ksft_exit_skip("needs CONFIG_LIVEUPDATE_TEST and debugfs\n");
	dev = luo_open_device();
	if (dev < 0)
		ksft_exit_fail_msg("open %s: %s\n", LUO_DEVICE,
				   strerror(-dev));

	if (stage)
		check(&runs[stage - 1]);
	if (stage == ARRAY_SIZE(runs))
		finished();
	if (ksft_get_fail_cnt()) {
		ksft_test_result_fail("kexec into stage %d # not tried after failures\n",
				      stage + 1);
		finished();
	}
	ksft_print_msg("damaging run '%s'\n", runs[stage].name);
	setup(&runs[stage]);
	ksft_print_msg("%s returned %d\n", LUO_NEXT_STAGE, next_stage());
	ksft_test_result_fail("kexec into stage %d\n", stage + 1);
	finished();
}
