// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: reboot races and a long chain of kexec hops.
 *
 *   liveupdate_races reboot-races     (LUO_STAGE=N, see liveupdate_test.h)
 *   liveupdate_races long-run [MAX_MIB]
 *
 * reboot-races: stage 0 preserves stable sessions (memfds, test objects)
 *	and starts threads that keep preserving and unpreserving memfds and
 *	test objects, creating and closing sessions, reloading the kexec image
 *	and writing counters into pages of the preserved memfds (holes of
 *	sparse ones included), then calls reboot(KEXEC) itself while they
 *	run.  A reboot that fails must leave everything as the threads'
 *	journals say, and usable; it is retried.  One always fails (a test
 *	object fails its first freeze), others may (EBUSY: a racing
 *	kexec_file_load).  Stage 1 checks that each page holds at least the
 *	counter published before the reboot call (snapshot in a preserved
 *	manifest memfd), that each racing thread's files are those of one
 *	point of its sequence of operations, and every file's contents.
 * long-run: ten kexec hops with memfds of 0 B, 1 B, 4 KiB, unaligned,
 *	sparse, THP-backed, 64 MiB and MAX_MIB (default 1024) MiB; each hop
 *	checks the checksums kept in a preserved manifest, rewrites some
 *	pages, and preserves everything again; the last one checks that the
 *	memory comes back.  Per-hop times are printed.  The debug kernel's
 *	suite line uses 256 MiB in a 2G guest: a KASAN kernel kexec'd with
 *	3G of RAM finds no room for its shadow in the KHO scratch areas, and
 *	1 GiB takes minutes per hop there.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/reboot.h>

#include "liveupdate_test.h"
#include "kselftest.h"

#define PG		4096ULL
#define SZ_1M		(1024 * 1024ULL)
#define SZ_1G		(1024 * SZ_1M)

static int stage;
static int dev = -1;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* splitmix64's finalizer: a cheap, well mixed function of @x. */
static __u64 mix(__u64 x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static __u64 rnd_next(__u64 *state)
{
	*state += 0x9e3779b97f4a7c15ULL;
	return mix(*state);
}

static void preserve(int sfd, int fd, __u64 token)
{
	int ret = luo_preserve_fd(sfd, fd, token);

	if (ret)
		luo_bail("PRESERVE_FD of token %#llx: %s",
			 (unsigned long long)token, strerror(-ret));
}

static int retrieve(int sfd, __u64 token)
{
	int fd = -1, ret = luo_retrieve_fd(sfd, token, &fd);

	if (ret)
		ksft_print_msg("RETRIEVE_FD of token %#llx: %s\n",
			       (unsigned long long)token, strerror(-ret));
	return ret ? -1 : fd;
}

static int new_memfd(const char *name, __u64 size)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0 || (size && ftruncate(fd, size)))
		luo_bail("memfd %s of %llu bytes: %s", name,
			 (unsigned long long)size, strerror(errno));
	return fd;
}

/* The tokens of a session's files, and how many there are (or -errno). */
static int query_tokens(int sfd, __u64 *tokens, char (*compat)[48], int max)
{
	struct liveupdate_file_info info[32];
	__u32 kind, count = 32;
	int ret = luo_query(sfd, &kind, info, &count);

	if (ret)
		return ret;
	for (int i = 0; i < (int)count && i < max && i < 32; i++) {
		tokens[i] = info[i].token;
		if (compat)
			memcpy(compat[i], info[i].compatible, 48);
		if (info[i].state == LIVEUPDATE_FILE_BROKEN)
			ksft_print_msg("token %#llx is broken: %s\n",
				       (unsigned long long)info[i].token,
				       strerror(info[i].error));
	}
	return count;
}

/* ======================== reboot-races ======================== */

/*
 * Stable sessions hold a dense and a sparse memfd whose tracked pages the
 * writers keep updating, and a test object; the first one also holds the
 * test object that fails the first reboot and a probe memfd.  The racing
 * threads never touch them.
 */
#define NR_STABLE	3
#define DENSE_PAGES	32
/* Tracked pages of a sparse memfd: one in eight has data at first. */
#define SPARSE_TRACK	512
/* Pages between two tracked pages of a sparse memfd. */
#define SPARSE_STRIDE	257ULL
#define SPARSE_SIZE	(SPARSE_TRACK * SPARSE_STRIDE * PG)
#define PER_STABLE	(DENSE_PAGES + SPARSE_TRACK)
#define NR_PAGES	(NR_STABLE * PER_STABLE)
#define NR_WRITERS	3
#define NR_PRES		2
#define PRES_SLOTS	6
#define NR_CHURN	2
#define CHURN_SLOTS	2
#define MAX_ATTEMPTS	8
/* The image reloader runs during the first attempts only. */
#define RELOAD_ATTEMPTS	4
#define PROBE_PAGES	16
#define MAN_SIZE	(16 * PG)
#define RACE_MAGIC	0x524143452d4d414eULL	/* "RACE-MAN" */
#define VAL_MAGIC	0x76616c75652d2d21ULL
#define SAB_VALUE	0x5ab07a6eULL
#define PROBE_TAG	0x50524f4245000000ULL
/* Operations each thread must have done before a reboot is tried. */
#define MIN_WRITES	200
#define MIN_OPS		12
#define PROGRESS_MS	120000

enum { T_DENSE = 1, T_SPARSE, T_OBJ, T_SAB, T_PROBE };
enum { K_MEMFD = 1, K_OBJ = 2 };
enum { OP_PRESERVE = 1, OP_UNPRESERVE, OP_CREATE, OP_CLOSE };

/* A preserver's file (tok[0]), or a churn thread's session and files. */
struct slot {
	__u64 name;
	__u64 tok[2];
};

/*
 * What one racing thread did, in the preserved manifest, so that the next
 * kernel can tell which states are consistent.  An operation is announced
 * (@op, @slot, @idx, @arg, then @pending = its number), done, then
 * committed (@s, then @done = @pending): the state handed over must be
 * @s, or @s with the announced operation applied.
 */
struct journal {
	__u64 pending;
	__u64 done;
	__u32 op, slot, idx, pad;
	__u64 arg;
	struct slot s[PRES_SLOTS];
};

struct manifest {
	__u64 magic;
	__u64 seed;
	__u32 attempts;
	__u32 probes;
	__s32 err[MAX_ATTEMPTS];
	__u64 writes[NR_WRITERS];
	__u64 wseq[NR_WRITERS];
	__u64 eperm[NR_WRITERS];
	__u64 fills[NR_WRITERS];
	__u64 reloads, reload_busy;
	/* Counters published at the reboot call, and as they kept going. */
	__u64 snap[NR_PAGES];
	__u64 pub[NR_PAGES];
	struct journal pres[NR_PRES];
	struct journal churn[NR_CHURN];
};

static_assert(sizeof(struct manifest) <= MAN_SIZE, "manifest too large");

static struct manifest *man;
static __u64 seed;
static int man_sfd, stable_sfd[NR_STABLE], pres_sfd[NR_PRES];
static int dense_fd[NR_STABLE], sparse_fd[NR_STABLE], probe_fd;
static char *dense_map[NR_STABLE], *sparse_map[NR_STABLE];
/* Pages holding data (written by the writer that owns them). */
static bool present[NR_PAGES];
/* Each churn thread's session fds, per slot. */
static int churn_sfd[NR_CHURN][CHURN_SLOTS];
/* Each preserver's fd per slot, when it kept one (-1 otherwise). */
static int pres_fd[NR_PRES][PRES_SLOTS];
static char next_cmdline[4096];

static int stop;
static int reloader_on;
/* Odd while reboot() runs: writes into holes may then fail with EPERM. */
static unsigned int reboot_gen;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static char thread_err[256];
static int nr_thread_err;

static __printf(1, 2) void thread_fail(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&err_lock);
	if (!nr_thread_err++) {
		va_start(ap, fmt);
		vsnprintf(thread_err, sizeof(thread_err), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&err_lock);
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
}

static bool stopped(void)
{
	return __atomic_load_n(&stop, __ATOMIC_ACQUIRE);
}

/* ---- pages the writers update ---- */

static int pg_stable(int p)
{
	return p / PER_STABLE;
}

static int pg_j(int p)
{
	return p % PER_STABLE;
}

static bool pg_sparse(int p)
{
	return pg_j(p) >= DENSE_PAGES;
}

static __u64 pg_off(int p)
{
	if (pg_sparse(p))
		return (pg_j(p) - DENSE_PAGES) * SPARSE_STRIDE * PG;
	return pg_j(p) * PG;
}

/* Most tracked pages of a sparse memfd start as holes. */
static bool pg_hole0(int p)
{
	return pg_sparse(p) && ((pg_j(p) - DENSE_PAGES) % 8);
}

static int pg_fd(int p)
{
	return (pg_sparse(p) ? sparse_fd : dense_fd)[pg_stable(p)];
}

static __u64 *pg_addr(int p)
{
	char *map = (pg_sparse(p) ? sparse_map : dense_map)[pg_stable(p)];

	return (__u64 *)(map + pg_off(p));
}

static __u64 pg_tag(int p)
{
	return 0x5041474500000000ULL | p;
}

static __u64 pg_word(int p, int i)
{
	return mix(((__u64)p << 16) | i);
}

static int pg_owner(int p)
{
	return p % NR_WRITERS;
}

/* Word 0 is the counter, word 1 the tag, then a pattern (zeros if a hole). */
static void pg_init(__u64 *w, int p)
{
	w[0] = 0;
	w[1] = pg_tag(p);
	for (unsigned int i = 2; i < PG / 8; i++)
		w[i] = pg_hole0(p) ? 0 : pg_word(p, i);
}

/*
 * Does page @p hold a counter of at least @floor (exactly @floor if
 * @exact), with its tag and pattern?  A hole is fine while nothing was
 * published for it.
 */
static bool pg_check(const __u64 *w, int p, __u64 floor, bool exact)
{
	unsigned int i;
	__u64 c = w[0];

	for (i = 0; i < PG / 8 && !w[i]; i++)
		;
	if (i == PG / 8) {
		if (pg_hole0(p) && !floor)
			return true;
		ksft_print_msg("page %d: zero, want counter %llu\n", p,
			       (unsigned long long)floor);
		return false;
	}
	if (w[1] != pg_tag(p)) {
		ksft_print_msg("page %d: tag %#llx, want %#llx\n", p,
			       (unsigned long long)w[1],
			       (unsigned long long)pg_tag(p));
		return false;
	}
	for (i = 2; i < PG / 8; i++) {
		if (w[i] != (pg_hole0(p) ? 0 : pg_word(p, i))) {
			ksft_print_msg("page %d: word %u is %#llx\n", p, i,
				       (unsigned long long)w[i]);
			return false;
		}
	}
	if (c < floor || (exact && c != floor) ||
	    (c && (int)(c & 0xff) != pg_owner(p) + 1)) {
		ksft_print_msg("page %d: counter %#llx, want %s%#llx (writer %d)\n",
			       p, (unsigned long long)c, exact ? "" : ">= ",
			       (unsigned long long)floor, pg_owner(p));
		return false;
	}
	return true;
}

/* ---- files of the racing threads: contents follow from the token ---- */

static __u64 mk_token(int kind, int cls, __u64 seq)
{
	return ((__u64)kind << 56) | ((__u64)cls << 40) | seq;
}

static int tok_kind(__u64 tok)
{
	return tok >> 56;
}

static __u64 obj_size(__u64 tok)
{
	return PG * (1 + tok % 3) + tok % 200;
}

static void obj_fill(__u64 *buf, __u64 tok, __u64 size)
{
	for (__u64 i = 0; i < (size + 7) / 8; i++)
		buf[i] = mix(tok ^ (i << 40));
}

/* A new memfd or test object with the contents of @tok: its fd, or -errno. */
static int obj_make(__u64 tok)
{
	static __thread __u64 buf[(4 * PG + 200) / 8 + 1];
	__u64 size = obj_size(tok);
	int fd;

	if (tok_kind(tok) == K_OBJ)
		return luo_test_new(tok ^ VAL_MAGIC);
	fd = memfd_create("race", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	obj_fill(buf, tok, size);
	if (pwrite(fd, buf, size, 0) != (ssize_t)size) {
		close(fd);
		return -EIO;
	}
	return fd;
}

static bool obj_ok(int fd, __u64 tok, const char *compat)
{
	static __u64 want[(4 * PG + 200) / 8 + 1], got[(4 * PG + 200) / 8 + 1];
	__u64 size = obj_size(tok);
	struct stat st;
	bool ok;

	if (tok_kind(tok) == K_OBJ) {
		ok = !strcmp(compat, LUO_TEST_COMPATIBLE) &&
		     luo_test_has_value(fd, tok ^ VAL_MAGIC);
	} else {
		obj_fill(want, tok, size);
		ok = !strcmp(compat, "memfd") && !fstat(fd, &st) &&
		     (__u64)st.st_size == size &&
		     pread(fd, got, size, 0) == (ssize_t)size &&
		     !memcmp(got, want, size);
	}
	if (!ok)
		ksft_print_msg("token %#llx (%s): wrong contents\n",
			       (unsigned long long)tok, compat);
	return ok;
}

/* ---- journals ---- */

static void j_begin(struct journal *j, __u32 op, __u32 slot, __u32 idx,
		    __u64 arg)
{
	j->op = op;
	j->slot = slot;
	j->idx = idx;
	j->arg = arg;
	__atomic_store_n(&j->pending, j->done + 1, __ATOMIC_RELEASE);
}

static void j_apply(struct slot *s, __u32 op, __u32 slot, __u32 idx,
		    __u64 arg)
{
	switch (op) {
	case OP_PRESERVE:
		s[slot].tok[idx] = arg;
		break;
	case OP_UNPRESERVE:
		s[slot].tok[idx] = 0;
		break;
	case OP_CREATE:
		s[slot].name = arg;
		s[slot].tok[0] = 0;
		s[slot].tok[1] = 0;
		break;
	case OP_CLOSE:
		memset(&s[slot], 0, sizeof(s[slot]));
		break;
	}
}

/* Commit the announced operation: it succeeded. */
static void j_commit(struct journal *j)
{
	j_apply(j->s, j->op, j->slot, j->idx, j->arg);
	__atomic_store_n(&j->done, j->pending, __ATOMIC_RELEASE);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

/*
 * Canonical text of a state: one "NAME:TOK,TOK" entry per session (name 0
 * for a preserver's single session), sorted.  @names/@toks describe @n
 * sessions of up to two files each.
 */
static void canon(char *out, size_t len, const __u64 *names,
		  __u64 (*toks)[PRES_SLOTS + 2], const int *nr_toks, int n)
{
	char ent[16][256], one[24];
	size_t at = 0;

	for (int i = 0; i < n && i < 16; i++) {
		__u64 t[PRES_SLOTS + 2];
		int m = 0;

		for (int k = 0; k < nr_toks[i]; k++)
			if (toks[i][k])
				t[m++] = toks[i][k];
		/* Sort the tokens. */
		for (int a = 1; a < m; a++)
			for (int b = a; b > 0 && t[b - 1] > t[b]; b--) {
				__u64 x = t[b];

				t[b] = t[b - 1];
				t[b - 1] = x;
			}
		snprintf(ent[i], sizeof(ent[i]), "%llx:",
			 (unsigned long long)names[i]);
		for (int k = 0; k < m; k++) {
			snprintf(one, sizeof(one), "%s%llx", k ? "," : "",
				 (unsigned long long)t[k]);
			strncat(ent[i], one,
				sizeof(ent[i]) - strlen(ent[i]) - 1);
		}
	}
	qsort(ent, n, sizeof(ent[0]), cmp_str);
	out[0] = 0;
	for (int i = 0; i < n; i++)
		at += snprintf(out + at, at < len ? len - at : 0, "%s;", ent[i]);
}

/* The canonical text of the state in @s (@nr slots; preserver if !@named). */
static void canon_slots(char *out, size_t len, const struct slot *s, int nr,
			bool named)
{
	__u64 names[PRES_SLOTS], toks[PRES_SLOTS][PRES_SLOTS + 2];
	int nr_toks[PRES_SLOTS], n = 0;

	if (!named) {
		names[0] = 0;
		nr_toks[0] = nr;
		for (int i = 0; i < nr; i++)
			toks[0][i] = s[i].tok[0];
		canon(out, len, names, toks, nr_toks, 1);
		return;
	}
	for (int i = 0; i < nr; i++) {
		if (!s[i].name)
			continue;
		names[n] = s[i].name;
		toks[n][0] = s[i].tok[0];
		toks[n][1] = s[i].tok[1];
		nr_toks[n++] = 2;
	}
	canon(out, len, names, toks, nr_toks, n);
}

/*
 * Is @actual the journal's committed state, or (while an operation was
 * announced and not committed) that state with the operation applied?
 */
static bool journal_matches(const struct journal *j, int nr, bool named,
			    const char *actual, const char *who)
{
	char a[2048], b[2048] = "";
	struct slot s[PRES_SLOTS];

	canon_slots(a, sizeof(a), j->s, nr, named);
	if (j->pending != j->done && j->pending != j->done + 1) {
		ksft_print_msg("%s: journal damaged: pending %llu, done %llu\n",
			       who, (unsigned long long)j->pending,
			       (unsigned long long)j->done);
		return false;
	}
	if (j->pending != j->done) {
		memcpy(s, j->s, sizeof(s));
		j_apply(s, j->op, j->slot, j->idx, j->arg);
		canon_slots(b, sizeof(b), s, nr, named);
	}
	if (!strcmp(actual, a) || (b[0] && !strcmp(actual, b))) {
		if (j->pending != j->done)
			ksft_print_msg("%s: operation %llu (%u) was under way: %s\n",
				       who, (unsigned long long)j->pending,
				       j->op, !strcmp(actual, a) &&
				       strcmp(a, b) ? "not done" : "done");
		return true;
	}
	ksft_print_msg("%s: state %s\n", who, actual);
	ksft_print_msg("%s: want %s%s%s (op %u pending: %llu, done %llu)\n",
		       who, a, b[0] ? " or " : "", b, j->op,
		       (unsigned long long)j->pending,
		       (unsigned long long)j->done);
	return false;
}

/* ---- the racing threads ---- */

/*
 * Writers: each owns every NR_WRITERS-th page and stores increasing
 * counters into it (low byte: writer + 1), through the mapping where the
 * page is present and with pwrite() into holes; then publishes the counter.
 */
static void *writer_main(void *arg)
{
	int w = (long)arg, p;
	__u64 rnd = seed ^ mix(w + 100 + man->wseq[w]), c;
	unsigned int gen, burst = 0;
	ssize_t n;

	while (!stopped()) {
		p = (rnd_next(&rnd) % (NR_PAGES / NR_WRITERS)) * NR_WRITERS + w;
		/* Fill holes slowly: some are left for every attempt. */
		if (!present[p] && rnd_next(&rnd) % 256)
			continue;
		c = (++man->wseq[w] << 8) | (w + 1);
		if (present[p]) {
			__atomic_store_n(pg_addr(p), c, __ATOMIC_RELAXED);
		} else {
			__u64 rec[2] = { c, pg_tag(p) };

			gen = __atomic_load_n(&reboot_gen, __ATOMIC_ACQUIRE);
			n = pwrite(pg_fd(p), rec, sizeof(rec), pg_off(p));
			if (n != sizeof(rec)) {
				int err = n < 0 ? errno : EIO;
				unsigned int now = __atomic_load_n(&reboot_gen,
							__ATOMIC_ACQUIRE);

				/* Refused while frozen for the reboot. */
				if (err == EPERM && ((gen & 1) || gen != now)) {
					man->eperm[w]++;
					continue;
				}
				thread_fail("writer %d: pwrite into the hole of page %d: %s",
					    w, p, strerror(err));
				break;
			}
			present[p] = true;
			man->fills[w]++;
		}
		__atomic_store_n(&man->pub[p], c, __ATOMIC_RELEASE);
		__atomic_store_n(&man->writes[w], man->writes[w] + 1,
				 __ATOMIC_RELAXED);
		/* Leave CPU time to the other threads. */
		if (!(++burst % 64))
			sleep_ms(1);
	}
	return NULL;
}

/*
 * Preservers: each has a session of its own and PRES_SLOTS slots; a random
 * slot gets a new memfd or test object preserved, or its file unpreserved.
 * Half of the files are closed right after PRESERVE_FD, so unpreserving
 * them frees them.
 */
static void *preserver_main(void *arg)
{
	int t = (long)arg, slot, fd, ret;
	struct journal *j = &man->pres[t];
	__u64 rnd = seed ^ mix(t + 200 + j->done), tok;

	while (!stopped()) {
		slot = rnd_next(&rnd) % PRES_SLOTS;
		tok = j->s[slot].tok[0];
		if (!tok) {
			tok = mk_token(j->done & 1 ? K_OBJ : K_MEMFD, 1 + t,
				       j->done + 1);
			fd = obj_make(tok);
			if (fd < 0) {
				thread_fail("preserver %d: new file: %s", t,
					    strerror(-fd));
				break;
			}
			j_begin(j, OP_PRESERVE, slot, 0, tok);
			ret = luo_preserve_fd(pres_sfd[t], fd, tok);
			if (ret) {
				thread_fail("preserver %d: PRESERVE_FD %#llx: %s",
					    t, (unsigned long long)tok,
					    strerror(-ret));
				close(fd);
				break;
			}
			j_commit(j);
			if (rnd_next(&rnd) & 1) {
				close(fd);
				fd = -1;
			}
			pres_fd[t][slot] = fd;
		} else {
			j_begin(j, OP_UNPRESERVE, slot, 0, tok);
			ret = luo_unpreserve_fd(pres_sfd[t], tok);
			if (ret) {
				thread_fail("preserver %d: UNPRESERVE_FD %#llx: %s",
					    t, (unsigned long long)tok,
					    strerror(-ret));
				break;
			}
			j_commit(j);
			fd = pres_fd[t][slot];
			pres_fd[t][slot] = -1;
			/* An ordinary memfd again: it can be resized. */
			if (fd >= 0 && tok_kind(tok) == K_MEMFD &&
			    ftruncate(fd, 0)) {
				thread_fail("preserver %d: unpreserved memfd %#llx cannot be resized: %s",
					    t, (unsigned long long)tok,
					    strerror(errno));
				close(fd);
				break;
			}
			if (fd >= 0)
				close(fd);
		}
		if (!(j->done % 4))
			sleep_ms(1);
	}
	return NULL;
}

static void churn_name(char *name, size_t len, int t, __u64 seq)
{
	snprintf(name, len, "race-churn-%d-%llu", t, (unsigned long long)seq);
}

/*
 * Churners: sessions created, given a memfd and a test object, and closed
 * (which unpreserves what they hold), in random order over two slots.
 */
static void *churner_main(void *arg)
{
	int t = (long)arg, slot, fd, ret, idx;
	struct journal *j = &man->churn[t];
	__u64 rnd = seed ^ mix(t + 300 + j->done), tok;
	char name[LUO_NAME_LEN];
	struct slot *s;

	while (!stopped()) {
		slot = rnd_next(&rnd) % CHURN_SLOTS;
		s = &j->s[slot];
		if (!s->name) {
			churn_name(name, sizeof(name), t, j->done + 1);
			j_begin(j, OP_CREATE, slot, 0, j->done + 1);
			ret = luo_create_session(dev, name,
						 &churn_sfd[t][slot]);
			if (ret) {
				thread_fail("churner %d: create %s: %s", t,
					    name, strerror(-ret));
				break;
			}
			j_commit(j);
		} else if ((!s->tok[0] || !s->tok[1]) &&
			   rnd_next(&rnd) % 4) {
			idx = s->tok[0] ? 1 : 0;
			tok = mk_token(idx ? K_OBJ : K_MEMFD, 0x10 + t,
				       j->done + 1);
			fd = obj_make(tok);
			if (fd < 0) {
				thread_fail("churner %d: new file: %s", t,
					    strerror(-fd));
				break;
			}
			j_begin(j, OP_PRESERVE, slot, idx, tok);
			ret = luo_preserve_fd(churn_sfd[t][slot], fd, tok);
			close(fd);
			if (ret) {
				thread_fail("churner %d: PRESERVE_FD %#llx: %s",
					    t, (unsigned long long)tok,
					    strerror(-ret));
				break;
			}
			j_commit(j);
		} else {
			j_begin(j, OP_CLOSE, slot, 0, 0);
			/* Returns once the session is released. */
			close(churn_sfd[t][slot]);
			churn_sfd[t][slot] = -1;
			j_commit(j);
		}
		if (!(j->done % 4))
			sleep_ms(1);
	}
	return NULL;
}

/* Reloads the kexec image now and then: a racing reboot gets EBUSY. */
static void *reloader_main(void *arg)
{
	__u64 rnd = seed ^ mix(400 + man->reloads);
	int kfd, ifd, ret;
	long nap;

	(void)arg;
	while (!stopped()) {
		for (nap = 50 + rnd_next(&rnd) % 450; nap > 0 && !stopped();
		     nap -= 10)
			sleep_ms(10);
		if (stopped() ||
		    !__atomic_load_n(&reloader_on, __ATOMIC_ACQUIRE))
			continue;
		kfd = open("/boot/bzImage", O_RDONLY | O_CLOEXEC);
		ifd = open("/run/next.cpio", O_RDONLY | O_CLOEXEC);
		ret = kfd < 0 || ifd < 0 ? -1 :
		      syscall(SYS_kexec_file_load, kfd, ifd,
			      strlen(next_cmdline) + 1, next_cmdline, 0UL);
		if (ret && errno != EBUSY)
			thread_fail("reloader: kexec_file_load: %s",
				    strerror(errno));
		else if (ret)
			man->reload_busy++;
		else
			man->reloads++;
		if (kfd >= 0)
			close(kfd);
		if (ifd >= 0)
			close(ifd);
	}
	return NULL;
}

#define NR_THREADS	(NR_WRITERS + NR_PRES + NR_CHURN + 1)

static pthread_t threads[NR_THREADS];

static void start_threads(void)
{
	int n = 0, i;

	__atomic_store_n(&stop, 0, __ATOMIC_RELEASE);
	for (i = 0; i < NR_WRITERS; i++)
		pthread_create(&threads[n++], NULL, writer_main, (void *)(long)i);
	for (i = 0; i < NR_PRES; i++)
		pthread_create(&threads[n++], NULL, preserver_main, (void *)(long)i);
	for (i = 0; i < NR_CHURN; i++)
		pthread_create(&threads[n++], NULL, churner_main, (void *)(long)i);
	pthread_create(&threads[n++], NULL, reloader_main, NULL);
}

static void stop_threads(void)
{
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < NR_THREADS; i++)
		pthread_join(threads[i], NULL);
}

/* Wait until every thread has done some work since @w0/@o0. */
static bool progressed(const __u64 *w0, const __u64 *o0)
{
	int i;

	for (i = 0; i < NR_WRITERS; i++)
		if (__atomic_load_n(&man->writes[i], __ATOMIC_RELAXED) <
		    w0[i] + MIN_WRITES)
			return false;
	for (i = 0; i < NR_PRES; i++)
		if (__atomic_load_n(&man->pres[i].done, __ATOMIC_ACQUIRE) <
		    o0[i] + MIN_OPS)
			return false;
	for (i = 0; i < NR_CHURN; i++)
		if (__atomic_load_n(&man->churn[i].done, __ATOMIC_ACQUIRE) <
		    o0[NR_PRES + i] + MIN_OPS)
			return false;
	return true;
}

/* The tokens of @sfd in canonical form (one session named @name). */
static bool canon_session(int sfd, __u64 name, char *out, size_t len)
{
	__u64 names[1] = { name }, toks[1][PRES_SLOTS + 2];
	int n = query_tokens(sfd, toks[0], NULL, PRES_SLOTS + 2);

	if (n < 0 || n > PRES_SLOTS + 2) {
		ksft_print_msg("QUERY: %d\n", n);
		return false;
	}
	canon(out, len, names, toks, &n, 1);
	return true;
}

static bool stable_tokens_ok(int sfd, int s)
{
	__u64 tok[8];
	int n = query_tokens(sfd, tok, NULL, 8), want = s ? 3 : 5;

	for (int i = 0; i < n && i < want; i++)
		if (tok[i] != (__u64)i + 1)
			n = -1;
	if (n != want)
		ksft_print_msg("stable session %d: %d files, tokens 1..%d expected\n",
			       s, n, want);
	return n == want;
}

/* Test objects preserved now: stable ones, the saboteur, racing ones. */
static int objects_preserved(void)
{
	int n = NR_STABLE + 1;

	for (int t = 0; t < NR_PRES; t++)
		for (int i = 0; i < PRES_SLOTS; i++)
			n += tok_kind(man->pres[t].s[i].tok[0]) == K_OBJ;
	for (int t = 0; t < NR_CHURN; t++)
		for (int i = 0; i < CHURN_SLOTS; i++)
			n += tok_kind(man->churn[t].s[i].tok[1]) == K_OBJ;
	return n;
}

/*
 * After a failed reboot, with the threads stopped: every session holds
 * exactly what the journals say, every page exactly its last published
 * counter, and a hole of a preserved memfd can be written again.
 */
static bool state_usable(int attempt)
{
	char a[2048], who[32];
	static __u64 page[PG / 8];
	__u64 rec[2] = { PROBE_TAG | attempt, attempt };
	bool ok = true;
	int t, i, live;

	for (t = 0; t < NR_PRES; t++) {
		snprintf(who, sizeof(who), "preserver %d", t);
		ok &= man->pres[t].pending == man->pres[t].done &&
		      canon_session(pres_sfd[t], 0, a, sizeof(a)) &&
		      journal_matches(&man->pres[t], PRES_SLOTS, false, a, who);
	}
	for (t = 0; t < NR_CHURN; t++) {
		__u64 cn[CHURN_SLOTS], ct[CHURN_SLOTS][PRES_SLOTS + 2];
		int nt[CHURN_SLOTS], nc = 0, tt;
		struct slot *s = man->churn[t].s;
		char nm[LUO_NAME_LEN];
		unsigned long long sq;

		for (i = 0; i < CHURN_SLOTS; i++) {
			if (!s[i].name)
				continue;
			if (luo_get_name(churn_sfd[t][i], nm) ||
			    sscanf(nm, "race-churn-%d-%llu", &tt, &sq) != 2 ||
			    tt != t) {
				ok = false;
				continue;
			}
			cn[nc] = sq;
			nt[nc] = query_tokens(churn_sfd[t][i], ct[nc], NULL,
					      PRES_SLOTS + 2);
			if (nt[nc] < 0 || nt[nc] > 2) {
				ok = false;
				continue;
			}
			nc++;
		}
		canon(a, sizeof(a), cn, ct, nt, nc);
		snprintf(who, sizeof(who), "churner %d", t);
		ok &= man->churn[t].pending == man->churn[t].done &&
		      journal_matches(&man->churn[t], CHURN_SLOTS, true, a,
				      who);
	}
	for (i = 0; i < NR_STABLE; i++)
		ok &= stable_tokens_ok(stable_sfd[i], i);
	for (i = 0; i < NR_PAGES; i++) {
		if (pread(pg_fd(i), page, PG, pg_off(i)) != PG ||
		    !pg_check(page, i, man->pub[i], true))
			ok = false;
	}
	live = luo_test_live();
	if (live != objects_preserved()) {
		ksft_print_msg("test objects preserved: %d, journals say %d\n",
			       live, objects_preserved());
		ok = false;
	}
	if (pwrite(probe_fd, rec, sizeof(rec), attempt * PG) != sizeof(rec)) {
		ksft_print_msg("write into a hole of a preserved memfd: %s\n",
			       strerror(errno));
		ok = false;
	}
	man->probes = attempt;
	return ok;
}

/* The command line luo-next-stage gives the next kernel. */
static void make_next_cmdline(void)
{
	char *cmd = luo_read_file("/proc/cmdline"), *at;

	if (!cmd)
		luo_bail("read /proc/cmdline");
	cmd[strcspn(cmd, "\n")] = 0;
	at = strstr(cmd, "luotest.stage=");
	if (!at)
		luo_bail("no luotest.stage= in the command line");
	*at = 0;
	at += strlen("luotest.stage=");
	snprintf(next_cmdline, sizeof(next_cmdline), "%sluotest.stage=%d%s",
		 cmd, atoi(at) + 1, at + strspn(at, "0123456789"));
	free(cmd);
}

static void races_setup(void)
{
	static __u64 page[PG / 8];
	char name[LUO_NAME_LEN];
	int mfd, fd, s, p;

	/* The manifest: shared memory of the threads, preserved as well. */
	mfd = new_memfd("race-manifest", MAN_SIZE);
	man = mmap(NULL, MAN_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (man == MAP_FAILED)
		luo_bail("mmap the manifest: %s", strerror(errno));
	memset(man, 0, MAN_SIZE);
	man->magic = RACE_MAGIC;
	man->seed = seed;
	man_sfd = luo_must_create_session(dev, "race-manifest");
	preserve(man_sfd, mfd, 1);

	for (s = 0; s < NR_STABLE; s++) {
		snprintf(name, sizeof(name), "race-stable-%d", s);
		stable_sfd[s] = luo_must_create_session(dev, name);
		dense_fd[s] = new_memfd("race-dense", DENSE_PAGES * PG);
		sparse_fd[s] = new_memfd("race-sparse", SPARSE_SIZE);
		for (p = s * PER_STABLE; p < (s + 1) * PER_STABLE; p++) {
			if (pg_hole0(p))
				continue;
			pg_init(page, p);
			if (pwrite(pg_fd(p), page, PG, pg_off(p)) != PG)
				luo_bail("write page %d: %s", p, strerror(errno));
			present[p] = true;
		}
		dense_map[s] = mmap(NULL, DENSE_PAGES * PG,
				    PROT_READ | PROT_WRITE, MAP_SHARED,
				    dense_fd[s], 0);
		sparse_map[s] = mmap(NULL, SPARSE_SIZE, PROT_READ | PROT_WRITE,
				     MAP_SHARED, sparse_fd[s], 0);
		if (dense_map[s] == MAP_FAILED || sparse_map[s] == MAP_FAILED)
			luo_bail("mmap: %s", strerror(errno));
		preserve(stable_sfd[s], dense_fd[s], T_DENSE);
		preserve(stable_sfd[s], sparse_fd[s], T_SPARSE);
		fd = luo_test_new(VAL_MAGIC + s);
		if (fd < 0)
			luo_bail("test object: %s", strerror(-fd));
		preserve(stable_sfd[s], fd, T_OBJ);
	}
	/* Fails its first freeze: the first reboot cannot go through. */
	fd = luo_test_new(SAB_VALUE);
	if (fd < 0 || luo_test_set_fail(fd, "freeze", EIO, 1))
		luo_bail("saboteur test object");
	preserve(stable_sfd[0], fd, T_SAB);
	probe_fd = new_memfd("race-probe", PROBE_PAGES * PG);
	preserve(stable_sfd[0], probe_fd, T_PROBE);

	for (int t = 0; t < NR_PRES; t++) {
		snprintf(name, sizeof(name), "race-pres-%d", t);
		pres_sfd[t] = luo_must_create_session(dev, name);
		for (int i = 0; i < PRES_SLOTS; i++)
			pres_fd[t][i] = -1;
	}
}

static void races_0(void)
{
	__u64 w0[NR_WRITERS], o0[NR_PRES + NR_CHURN];
	char *const load[] = { LUO_NEXT_STAGE, "-l", NULL };
	int attempt, ret, err, i;
	bool sab_fired = false;
	long long t0;

	races_setup();
	ret = luo_run(load);
	if (ret)
		luo_bail("%s -l: %d", LUO_NEXT_STAGE, ret);
	make_next_cmdline();
	ksft_test_result_pass("stage 0: %d stable sessions, %d racing threads, image loaded\n",
			      NR_STABLE, NR_THREADS);

	for (attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
		man->attempts = attempt;
		__atomic_store_n(&reloader_on, attempt <= RELOAD_ATTEMPTS,
				 __ATOMIC_RELEASE);
		for (i = 0; i < NR_WRITERS; i++)
			w0[i] = man->writes[i];
		for (i = 0; i < NR_PRES; i++)
			o0[i] = man->pres[i].done;
		for (i = 0; i < NR_CHURN; i++)
			o0[NR_PRES + i] = man->churn[i].done;
		start_threads();
		t0 = now_ms();
		while (!progressed(w0, o0) && !stopped() &&
		       now_ms() - t0 < PROGRESS_MS)
			sleep_ms(20);
		if (!stopped())
			sleep_ms(rnd_next(&seed) % 500);
		if (stopped() || !progressed(w0, o0)) {
			stop_threads();
			luo_bail("attempt %d: %s", attempt, nr_thread_err ?
				 thread_err : "the threads made no progress");
		}

		/* The expectation the next kernel checks the pages against. */
		for (i = 0; i < NR_PAGES; i++)
			man->snap[i] = __atomic_load_n(&man->pub[i],
						       __ATOMIC_ACQUIRE);
		ksft_print_msg("attempt %d: reboot(KEXEC) while %d threads run (%lld ms after start)\n",
			       attempt, NR_THREADS, now_ms() - t0);
		fflush(stdout);
		__atomic_add_fetch(&reboot_gen, 1, __ATOMIC_ACQ_REL);
		err = -luo_reboot_kexec();
		__atomic_add_fetch(&reboot_gen, 1, __ATOMIC_ACQ_REL);
		stop_threads();
		man->err[attempt - 1] = err;
		if (nr_thread_err)
			luo_bail("attempt %d: %s", attempt, thread_err);
		/*
		 * Only two things can make it fail here: the test object
		 * armed to fail its freeze (once), and EBUSY from the kexec
		 * lock held by a racing kexec_file_load().
		 */
		ksft_print_msg("attempt %d: reboot(KEXEC) failed: %s\n", attempt,
			       strerror(err));
		if (err != EBUSY && (err != EIO || sab_fired))
			luo_bail("attempt %d: reboot(KEXEC) failed with %s",
				 attempt, strerror(err));
		sab_fired |= err == EIO;
		result(state_usable(attempt),
		       "attempt %d: reboot failed with %s: sessions, files and counters as the journals say, holes writable again",
		       attempt, err == EIO ? "EIO (injected freeze failure)" :
		       "EBUSY (racing kexec_file_load)");
	}
	luo_bail("no reboot went through in %d attempts", MAX_ATTEMPTS);
}

/* ---- stage 1 ---- */

static int list_incoming(char (*names)[LUO_NAME_LEN], int max)
{
	__u32 count = max;
	int ret = luo_list_sessions(dev, names, &count);

	if (ret)
		luo_bail("LIST_SESSIONS: %s", strerror(-ret));
	if ((int)count > max)
		luo_bail("%u incoming sessions, more than %d", count, max);
	return count;
}

static int retrieve_session(const char *name)
{
	int sfd = -1, ret = luo_retrieve_session(dev, name, &sfd);

	if (ret)
		ksft_print_msg("RETRIEVE_SESSION %s: %s\n", name,
			       strerror(-ret));
	return ret ? -1 : sfd;
}

/* Retrieve and check every file of a racing session; canonical state out. */
static bool racing_session(int sfd, __u64 name, char *out, size_t len)
{
	__u64 names[1] = { name }, toks[1][PRES_SLOTS + 2];
	char compat[PRES_SLOTS + 2][48];
	int n = query_tokens(sfd, toks[0], compat, PRES_SLOTS + 2), fd;
	bool ok = n >= 0 && n <= PRES_SLOTS + 2;

	for (int i = 0; ok && i < n; i++) {
		fd = retrieve(sfd, toks[0][i]);
		ok = fd >= 0 && obj_ok(fd, toks[0][i], compat[i]);
		if (fd >= 0)
			close(fd);
	}
	if (ok)
		canon(out, len, names, toks, &n, 1);
	return ok;
}

/* The pages of stable session @s against the snapshot and the last counters. */
static bool stable_pages_ok(int s, int dfd, int sfd_, int *advanced)
{
	static __u64 page[PG / 8];
	__u64 floor, blocks = 0;
	struct stat st;
	bool ok = true;
	int p, fd;

	for (p = s * PER_STABLE; p < (s + 1) * PER_STABLE; p++) {
		fd = pg_sparse(p) ? sfd_ : dfd;
		floor = man->snap[p] > man->pub[p] ? man->snap[p] : man->pub[p];
		if (man->snap[p] > man->pub[p]) {
			ksft_print_msg("page %d: snapshot %#llx above the last published %#llx\n",
				       p, (unsigned long long)man->snap[p],
				       (unsigned long long)man->pub[p]);
			ok = false;
		}
		if (pread(fd, page, PG, pg_off(p)) != PG ||
		    !pg_check(page, p, floor, false)) {
			ok = false;
			continue;
		}
		*advanced += page[0] > man->snap[p];
		if (pg_sparse(p) && (page[0] || page[1]))
			blocks += PG / 512;
	}
	/* Nothing but the tracked pages of the sparse memfd has data. */
	if (fstat(sfd_, &st) || (__u64)st.st_blocks != blocks ||
	    (__u64)st.st_size != SPARSE_SIZE) {
		ksft_print_msg("sparse memfd %d: %lld blocks, %lld bytes; want %llu blocks\n",
			       s, (long long)st.st_blocks,
			       (long long)st.st_size,
			       (unsigned long long)blocks);
		ok = false;
	}
	if (fstat(dfd, &st) || (__u64)st.st_size != DENSE_PAGES * PG)
		ok = false;
	return ok;
}

static bool blocks_ok(int fd, unsigned int pages)
{
	struct stat st;

	return !fstat(fd, &st) && (__u64)st.st_blocks == pages * (PG / 512) &&
	       (__u64)st.st_size == PROBE_PAGES * PG;
}

static void races_1(void)
{
	char names[64][LUO_NAME_LEN], a[2048], b[2048], who[32];
	int msfd, mfd, n, s, t, i, sfd, fd, advanced = 0, nr_open = 0;
	int open_sfd[64];
	static struct manifest m;
	bool ok, known, seen_stable[NR_STABLE] = { 0 },
	     seen_pres[NR_PRES] = { 0 }, unknown = false, objs = true,
	     probe_ok = true;
	__u64 seq;
	static __u64 page[PG / 8];

	ksft_set_plan(9);
	msfd = retrieve_session("race-manifest");
	mfd = msfd < 0 ? -1 : retrieve(msfd, 1);
	if (mfd < 0 || pread(mfd, &m, sizeof(m), 0) != sizeof(m) ||
	    m.magic != RACE_MAGIC || !m.attempts || m.attempts > MAX_ATTEMPTS)
		luo_bail("no valid manifest");
	man = &m;
	ksft_print_msg("seed %llu; the reboot went through at attempt %u\n",
		       (unsigned long long)m.seed, m.attempts);
	for (i = 0; i + 1 < (int)m.attempts; i++)
		ksft_print_msg("attempt %d had failed: %s\n", i + 1,
			       strerror(m.err[i]));
	for (i = 0; i < NR_WRITERS; i++)
		ksft_print_msg("writer %d: %llu writes, %llu holes filled, %llu EPERM while frozen\n",
			       i, (unsigned long long)m.writes[i],
			       (unsigned long long)m.fills[i],
			       (unsigned long long)m.eperm[i]);
	for (t = 0; t < NR_PRES; t++)
		ksft_print_msg("preserver %d: %llu operations\n", t,
			       (unsigned long long)m.pres[t].done);
	for (t = 0; t < NR_CHURN; t++)
		ksft_print_msg("churner %d: %llu operations\n", t,
			       (unsigned long long)m.churn[t].done);
	ksft_print_msg("image reloads: %llu, %llu of them EBUSY\n",
		       (unsigned long long)m.reloads,
		       (unsigned long long)m.reload_busy);
	result(m.attempts >= 2 && m.probes == m.attempts - 1 &&
	       (m.err[0] == EIO || m.err[0] == EBUSY),
	       "manifest: %u attempts, the first failed cleanly", m.attempts);

	n = list_incoming(names, 64);
	for (i = 0; i < n; i++) {
		known = false;
		for (s = 0; s < NR_STABLE; s++) {
			snprintf(a, sizeof(a), "race-stable-%d", s);
			if (!strcmp(names[i], a)) {
				seen_stable[s] = true;
				known = true;
			}
		}
		for (t = 0; t < NR_PRES; t++) {
			snprintf(a, sizeof(a), "race-pres-%d", t);
			if (!strcmp(names[i], a)) {
				seen_pres[t] = true;
				known = true;
			}
		}
		if (sscanf(names[i], "race-churn-%d-%llu", &t,
			   (unsigned long long *)&seq) == 2 && t >= 0 &&
		    t < NR_CHURN)
			known = true;
		if (!known) {
			ksft_print_msg("unknown incoming session %s\n", names[i]);
			unknown = true;
		}
	}
	ok = !unknown;
	for (s = 0; s < NR_STABLE; s++)
		ok &= seen_stable[s];
	for (t = 0; t < NR_PRES; t++)
		ok &= seen_pres[t];
	result(ok, "%d incoming sessions: every stable one, nothing unknown", n);

	/* Stable sessions: pages, test objects, the saboteur, the probe. */
	ok = true;
	for (s = 0; s < NR_STABLE; s++) {
		int dfd, sp;
		char compat[8][48];
		__u64 tok[8];

		snprintf(a, sizeof(a), "race-stable-%d", s);
		sfd = retrieve_session(a);
		if (sfd < 0) {
			ok = false;
			objs = false;
			probe_ok = false;
			continue;
		}
		open_sfd[nr_open++] = sfd;
		ok &= query_tokens(sfd, tok, compat, 8) == (s ? 3 : 5);
		dfd = retrieve(sfd, T_DENSE);
		sp = retrieve(sfd, T_SPARSE);
		ok &= dfd >= 0 && sp >= 0 &&
		      stable_pages_ok(s, dfd, sp, &advanced);
		fd = retrieve(sfd, T_OBJ);
		objs &= fd >= 0 && luo_test_has_value(fd, VAL_MAGIC + s);
		close(fd);
		if (!s) {
			fd = retrieve(sfd, T_SAB);
			objs &= fd >= 0 && luo_test_has_value(fd, SAB_VALUE);
			close(fd);
			fd = retrieve(sfd, T_PROBE);
			for (i = 1; fd >= 0 && i <= (int)m.probes; i++)
				probe_ok &= pread(fd, page, PG, i * PG) == PG &&
					    page[0] == (PROBE_TAG | i) &&
					    page[1] == (__u64)i;
			probe_ok &= fd >= 0 && blocks_ok(fd, m.probes);
			close(fd);
		}
		close(dfd);
		close(sp);
	}
	ksft_print_msg("%d of %d pages went on past the snapshot\n", advanced,
		       NR_PAGES);
	result(ok, "stable memfds: every page at or past its snapshot counter, tags and patterns intact, holes stay holes");
	result(objs, "stable test objects and the one that failed its freeze: values intact");
	result(probe_ok, "probe memfd: the %u pages written into holes after failed reboots",
	       m.probes);

	/* Preservers: one session each, in a state of their sequence. */
	ok = true;
	for (t = 0; t < NR_PRES; t++) {
		snprintf(a, sizeof(a), "race-pres-%d", t);
		snprintf(who, sizeof(who), "preserver %d", t);
		sfd = retrieve_session(a);
		if (sfd < 0) {
			ok = false;
			continue;
		}
		open_sfd[nr_open++] = sfd;
		ok &= racing_session(sfd, 0, b, sizeof(b)) &&
		      journal_matches(&m.pres[t], PRES_SLOTS, false, b, who);
	}
	result(ok, "preserver sessions: the files of one point of each thread's sequence, contents as their tokens say");

	/* Churners: their sessions, together, in a state of their sequence. */
	ok = true;
	for (t = 0; t < NR_CHURN; t++) {
		__u64 cn[16], ct[16][PRES_SLOTS + 2];
		int nt[16], nc = 0;

		for (i = 0; i < n; i++) {
			int tt;
			char compat[PRES_SLOTS + 2][48];

			if (sscanf(names[i], "race-churn-%d-%llu", &tt,
				   (unsigned long long *)&seq) != 2 ||
			    tt != t || nc == 16)
				continue;
			sfd = retrieve_session(names[i]);
			if (sfd < 0) {
				ok = false;
				continue;
			}
			open_sfd[nr_open++] = sfd;
			cn[nc] = seq;
			nt[nc] = query_tokens(sfd, ct[nc], compat,
					      PRES_SLOTS + 2);
			if (nt[nc] < 0 || nt[nc] > 2) {
				ok = false;
				continue;
			}
			for (int k = 0; k < nt[nc]; k++) {
				fd = retrieve(sfd, ct[nc][k]);
				ok &= fd >= 0 &&
				      obj_ok(fd, ct[nc][k], compat[k]);
				if (fd >= 0)
					close(fd);
			}
			nc++;
		}
		canon(a, sizeof(a), cn, ct, nt, nc);
		snprintf(who, sizeof(who), "churner %d", t);
		ok &= journal_matches(&m.churn[t], CHURN_SLOTS, true, a, who);
	}
	result(ok, "churned sessions: those of one point of each thread's sequence, contents as their tokens say");

	ok = !luo_finish(msfd);
	for (i = 0; i < nr_open; i++)
		ok &= !luo_finish(open_sfd[i]);
	n = list_incoming(names, 64);
	result(ok && !n, "finish every session: no incoming session left");
	close(mfd);
	close(msfd);
	for (i = 0; i < nr_open; i++)
		close(open_sfd[i]);
	n = luo_test_live();
	result(!n, "no test object left preserved (%d)", n);
	ksft_finished();
}

/* ======================== long-run ======================== */

#define HOPS		10
#define LR_MAGIC	0x4c4f4e4752554e31ULL	/* "LONGRUN1" */
#define LR_MAN_TOKEN	100
#define NR_LR		8
#define LR_THP_SIZE	(8 * SZ_1M)
#define LR_SPARSE_SIZE	(4 * SZ_1G)
#define LR_SPARSE_RUNS	64
/* Pages rewritten per memfd and hop. */
#define LR_MOD		64
#define SHMEM_THP	"/sys/kernel/mm/transparent_hugepage/shmem_enabled"

enum { LR_ZERO, LR_BYTE, LR_PAGE, LR_ODD, LR_SPARSE, LR_THP, LR_64M, LR_BIG };

static const char *const lr_names[NR_LR] = {
	"zero", "byte", "page", "odd", "sparse", "thp", "64m", "big",
};

/* Fletcher-like: a is the sum of the words, b weighs them by position. */
struct ck {
	__u64 a, b;
};

struct lr_manifest {
	__u64 magic;
	__u32 hop;		/* the stage that wrote it */
	__u32 thp;		/* the THP memfd is in huge pages */
	__u64 big;		/* size of the largest memfd */
	long base_free_kb;	/* MemFree in stage 0 before any memfd */
	struct {
		struct ck ck;
		__u64 blocks, size;
	} f[NR_LR];
	/* Per stage: retrieve, verify, rewrite (or write), preserve (ms). */
	long long ms[HOPS + 1][4];
	long long uptime_ms[HOPS + 1];
};

static __u64 lr_size(int i, __u64 big)
{
	switch (i) {
	case LR_ZERO:	return 0;
	case LR_BYTE:	return 1;
	case LR_PAGE:	return PG;
	case LR_ODD:	return SZ_1M + 12345;
	case LR_SPARSE:	return LR_SPARSE_SIZE;
	case LR_THP:	return LR_THP_SIZE;
	case LR_64M:	return 64 * SZ_1M;
	}
	return big;
}

/* Cheap contents: a multiplicative hash of the word offset and @seed. */
static void lr_fill(__u64 *buf, __u64 off, size_t len, __u64 seed)
{
	__u64 w = off / 8;

	for (size_t i = 0; i < (len + 7) / 8; i++)
		buf[i] = ((w + i) * 0x9e3779b97f4a7c15ULL) ^ seed;
}

static int lr_put(int fd, __u64 off, __u64 len, __u64 seed)
{
	static __u64 buf[4 * SZ_1M / 8];
	__u64 n;

	while (len) {
		n = len < sizeof(buf) ? len : sizeof(buf);
		lr_fill(buf, off, n, seed);
		if (pwrite(fd, buf, n, off) != (ssize_t)n)
			return -errno;
		off += n;
		len -= n;
	}
	return 0;
}

static void ck_add(struct ck *c, const __u64 *w, size_t n)
{
	__u64 a = c->a, b = c->b;

	for (size_t i = 0; i < n; i++) {
		a += w[i];
		b += a;
	}
	c->a = a;
	c->b = b;
}

/* Checksum of the data ranges of @fd (each fed with its offset first). */
static int lr_checksum(int fd, struct ck *c, __u64 *blocks, __u64 *size)
{
	static __u64 buf[4 * SZ_1M / 8 + 1];
	off_t data = 0, hole;
	struct stat st;
	__u64 n, off;

	memset(c, 0, sizeof(*c));
	if (fstat(fd, &st))
		return -errno;
	*blocks = st.st_blocks;
	*size = st.st_size;
	while ((data = lseek(fd, data, SEEK_DATA)) >= 0) {
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole <= data)
			return -EIO;
		n = data;
		ck_add(c, &n, 1);
		for (off = data; off < (__u64)hole; off += n) {
			n = (__u64)hole - off;
			if (n > 4 * SZ_1M)
				n = 4 * SZ_1M;
			if (pread(fd, buf, n, off) != (ssize_t)n)
				return -EIO;
			memset((char *)buf + n, 0, 8);
			ck_add(c, buf, (n + 7) / 8);
		}
		data = hole;
	}
	return errno == ENXIO ? 0 : -errno;
}

/* The sparse memfd's data at stage 0: a page every 64 MiB + k pages. */
static __u64 lr_sparse_off(int k)
{
	return k * 64 * SZ_1M + k * PG;
}

/* A hole filled at hop @h. */
static __u64 lr_hole_off(int h)
{
	return 3 * SZ_1G + h * SZ_1M + (h % 7) * PG;
}

static __u64 lr_seed(int i, int h, int k)
{
	return mix(((__u64)h << 40) | ((__u64)i << 20) | k);
}

/*
 * Fold into @c a change of the @n words at word @at of the @total words
 * the checksum is made of: word i counts total - i times in b.
 */
static void ck_change(struct ck *c, __u64 total, __u64 at, const __u64 *old,
		      const __u64 *new, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		__u64 d = new[k] - old[k];

		c->a += d;
		c->b += d * (total - (at + k));
	}
}

/*
 * Write [@off, +@len) (at most a page) of a memfd that is one data range
 * of @size bytes with the pattern of @seed, and update its checksum @c
 * from what was there: the next hop checks that the write landed.
 */
static int lr_rewrite(int fd, __u64 off, __u64 len, __u64 seed, __u64 size,
		      struct ck *c)
{
	__u64 old[PG / 8 + 1], new[PG / 8 + 1];

	memset(old, 0, sizeof(old));
	memset(new, 0, sizeof(new));
	if (pread(fd, old, len, off) != (ssize_t)len)
		return -EIO;
	lr_fill(new, off, len, seed);
	memset((char *)new + len, 0, 8);
	if (pwrite(fd, new, len, off) != (ssize_t)len)
		return -errno;
	/* Word 0 is the offset of the data range, 0. */
	ck_change(c, 1 + (size + 7) / 8, 1 + off / 8, old, new,
		  (len + 7) / 8);
	return 0;
}

/*
 * Rewrite some pages of memfd @i at hop @h (the sparse one also gets a
 * hole filled) and bring its expected checksum in @f up to date.
 */
static int lr_modify(int fd, int i, int h, struct ck *c, __u64 *blocks,
		     __u64 *size_)
{
	__u64 size = *size_, pages = size / PG, off;
	int ret = 0;

	switch (i) {
	case LR_ZERO:
		return 0;
	case LR_SPARSE:
		/* Its layout changes: checksum it again (it is small). */
		off = lr_sparse_off(h % LR_SPARSE_RUNS);
		return lr_put(fd, off, PG, lr_seed(i, h, 0)) ?:
		       lr_put(fd, lr_hole_off(h), PG, lr_seed(i, h, 1)) ?:
		       lr_checksum(fd, c, blocks, size_);
	}
	for (int k = 0; !ret && pages && k < LR_MOD; k++) {
		off = mix(lr_seed(i, h, k)) % pages * PG;
		ret = lr_rewrite(fd, off, PG, lr_seed(i, h, k), size, c);
	}
	/* The unaligned tail (the whole of the 1-byte memfd). */
	if (!ret && size % PG)
		ret = lr_rewrite(fd, pages * PG, size % PG,
				 lr_seed(i, h, LR_MOD), size, c);
	return ret;
}

static bool lr_thp_available(void)
{
	return !access(SHMEM_THP, W_OK);
}

/* Write the THP memfd through a 2 MiB-aligned MADV_HUGEPAGE mapping. */
static bool lr_thp_write(int fd)
{
	char *area, *map;
	bool ok;

	area = mmap(NULL, LR_THP_SIZE + 2 * SZ_1M, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		return false;
	map = mmap((char *)(((uintptr_t)area + 2 * SZ_1M - 1) & ~(2 * SZ_1M - 1)),
		   LR_THP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		   fd, 0);
	ok = map != MAP_FAILED && !madvise(map, LR_THP_SIZE, MADV_HUGEPAGE);
	if (ok)
		lr_fill((__u64 *)map, 0, LR_THP_SIZE, lr_seed(LR_THP, 0, 0));
	munmap(area, LR_THP_SIZE + 2 * SZ_1M);
	return ok;
}

static void lr_save(int mfd, const struct lr_manifest *m)
{
	if (pwrite(mfd, m, sizeof(*m), 0) != sizeof(*m))
		luo_bail("write the manifest: %s", strerror(errno));
}

static long long uptime_ms(void)
{
	char *s = luo_read_file("/proc/uptime");
	long long ms = s ? (long long)(atof(s) * 1000) : -1;

	free(s);
	return ms;
}

static void lr_times(const struct lr_manifest *m, int h)
{
	ksft_print_msg("hop %2d: retrieve %6lld ms, verify %6lld ms, rewrite %6lld ms, preserve %6lld ms; stage started %lld ms after boot\n",
		       h, m->ms[h][0], m->ms[h][1], m->ms[h][2], m->ms[h][3],
		       m->uptime_ms[h]);
}

static void long_run_0(__u64 big)
{
	static struct lr_manifest m;
	int sfd, mfd, fd[NR_LR], i, k;
	long thp_kb;
	long long t;
	bool ok = true;

	ksft_set_plan(4);
	m.magic = LR_MAGIC;
	m.big = big;
	m.uptime_ms[0] = uptime_ms();
	m.base_free_kb = luo_meminfo_kb("MemFree");
	ksft_print_msg("memfds up to %llu MiB; MemFree %ld kB\n",
		       (unsigned long long)(big / SZ_1M), m.base_free_kb);
	sfd = luo_must_create_session(dev, "long-run");
	t = now_ms();
	for (i = 0; i < NR_LR; i++) {
		fd[i] = new_memfd(lr_names[i],
				  i == LR_THP ? 0 : lr_size(i, big));
		switch (i) {
		case LR_ZERO:
			break;
		case LR_SPARSE:
			for (k = 0; k < LR_SPARSE_RUNS; k++)
				ok &= !lr_put(fd[i], lr_sparse_off(k), PG,
					      lr_seed(i, 0, k));
			break;
		case LR_THP:
			if (lr_thp_available()) {
				luo_write_file(SHMEM_THP, "advise");
				thp_kb = luo_meminfo_kb("ShmemHugePages");
				ok &= !ftruncate(fd[i], LR_THP_SIZE) &&
				      lr_thp_write(fd[i]);
				thp_kb = luo_meminfo_kb("ShmemHugePages") - thp_kb;
				luo_write_file(SHMEM_THP, "never");
				m.thp = thp_kb == LR_THP_SIZE / 1024;
				ksft_print_msg("THP memfd: %ld kB in huge pages\n",
					       thp_kb);
			} else {
				ok &= !lr_put(fd[i], 0, LR_THP_SIZE,
					      lr_seed(i, 0, 0));
			}
			break;
		default:
			ok &= !lr_put(fd[i], 0, lr_size(i, big),
				      lr_seed(i, 0, 0));
		}
	}
	m.ms[0][2] = now_ms() - t;
	t = now_ms();
	for (i = 0; i < NR_LR; i++)
		ok &= !lr_checksum(fd[i], &m.f[i].ck, &m.f[i].blocks,
				   &m.f[i].size) &&
		      m.f[i].size == lr_size(i, big);
	m.ms[0][1] = now_ms() - t;
	result(ok, "stage 0: 8 memfds written (0 B to %llu MiB), checksummed",
	       (unsigned long long)(big / SZ_1M));
	if (!lr_thp_available())
		ksft_test_result_skip("THP memfd: no shmem THP\n");
	else
		result(m.thp, "THP memfd is all huge pages");

	t = now_ms();
	for (i = 0; i < NR_LR; i++)
		preserve(sfd, fd[i], i + 1);
	m.ms[0][3] = now_ms() - t;
	m.hop = 0;
	mfd = new_memfd("long-run-manifest", PG);
	lr_save(mfd, &m);
	preserve(sfd, mfd, LR_MAN_TOKEN);
	result(true, "preserve the 8 memfds and the manifest");
	lr_times(&m, 0);
	luo_kexec_next();
}

static void long_run_hop(void)
{
	static struct lr_manifest m;
	int sfd = -1, mfd, fd[NR_LR], i, h = stage, bad = 0, ret;
	long thp_kb = 0, free0, free1;
	long long t, t_stage = now_ms();
	struct ck ck;
	__u64 blocks, size, total = 0;
	bool ok;

	ksft_set_plan(h == HOPS ? 5 : 6);
	free0 = luo_meminfo_kb("MemFree");
	if (luo_retrieve_session(dev, "long-run", &sfd))
		luo_bail("no session long-run");
	mfd = retrieve(sfd, LR_MAN_TOKEN);
	if (mfd < 0 || pread(mfd, &m, sizeof(m), 0) != sizeof(m) ||
	    m.magic != LR_MAGIC || m.hop != (__u32)h - 1)
		luo_bail("no valid manifest from hop %d", h - 1);
	m.uptime_ms[h] = uptime_ms();

	t = now_ms();
	ok = true;
	for (i = 0; i < NR_LR; i++) {
		if (i == LR_THP)
			thp_kb = luo_meminfo_kb("ShmemHugePages");
		fd[i] = retrieve(sfd, i + 1);
		if (i == LR_THP) {
			/* Counted once the page cache is filled: SEEK_DATA waits. */
			lseek(fd[i], 0, SEEK_DATA);
			thp_kb = luo_meminfo_kb("ShmemHugePages") - thp_kb;
		}
		ok &= fd[i] >= 0;
	}
	m.ms[h][0] = now_ms() - t;
	if (!ok)
		luo_bail("hop %d: retrieve", h);
	result(ok, "hop %d: retrieve the 8 memfds", h);

	t = now_ms();
	for (i = 0; i < NR_LR; i++) {
		if (lr_checksum(fd[i], &ck, &blocks, &size) ||
		    ck.a != m.f[i].ck.a || ck.b != m.f[i].ck.b ||
		    blocks != m.f[i].blocks || size != m.f[i].size) {
			ksft_print_msg("memfd %s: checksum %016llx/%016llx, %llu blocks, %llu bytes; want %016llx/%016llx, %llu blocks, %llu bytes\n",
				       lr_names[i], (unsigned long long)ck.a,
				       (unsigned long long)ck.b,
				       (unsigned long long)blocks,
				       (unsigned long long)size,
				       (unsigned long long)m.f[i].ck.a,
				       (unsigned long long)m.f[i].ck.b,
				       (unsigned long long)m.f[i].blocks,
				       (unsigned long long)m.f[i].size);
			bad++;
		}
		total += m.f[i].blocks * 512;
	}
	m.ms[h][1] = now_ms() - t;
	result(!bad, "hop %d: checksums, sizes and blocks of all 8 memfds (%llu MiB)",
	       h, (unsigned long long)(total / SZ_1M));
	if (!m.thp) {
		ksft_test_result_skip("hop %d: THP memfd: no shmem THP\n", h);
	} else {
		ksft_print_msg("THP memfd: %ld kB in huge pages\n", thp_kb);
		result(thp_kb == LR_THP_SIZE / 1024,
		       "hop %d: THP memfd still in huge pages", h);
	}
	result(!luo_finish(sfd) && luo_finish(sfd) == -EINVAL,
	       "hop %d: finish (then outgoing: a second FINISH is EINVAL)", h);

	if (h == HOPS) {
		for (i = 0; i < NR_LR; i++)
			close(fd[i]);
		close(mfd);
		close(sfd);
		/* Freed folios may sit in per-CPU lists for a moment. */
		sleep_ms(200);
		free1 = luo_meminfo_kb("MemFree");
		lr_times(&m, h);
		for (i = 0; i <= HOPS; i++)
			lr_times(&m, i);
		ksft_print_msg("MemFree: %ld kB at stage 0, %ld kB before retrieve, %ld kB after closing all (%llu kB of memfds)\n",
			       m.base_free_kb, free0, free1,
			       (unsigned long long)(total / 1024));
		result(free1 - free0 >= (long)(total / 1024) * 9 / 10 &&
		       free1 >= m.base_free_kb - (long)(m.base_free_kb / 20),
		       "hop %d: all memory comes back after the last hop (%ld kB freed)",
		       h, free1 - free0);
		ksft_finished();
	}

	t = now_ms();
	ok = true;
	for (i = 0; i < NR_LR; i++) {
		ret = lr_modify(fd[i], i, h, &m.f[i].ck, &m.f[i].blocks,
				&m.f[i].size);
		if (ret)
			ksft_print_msg("rewrite memfd %s: %s\n", lr_names[i],
				       strerror(-ret));
		ok &= !ret;
	}
	/* The sparse memfd got one more page. */
	ok &= m.f[LR_SPARSE].blocks == (LR_SPARSE_RUNS + h) * (PG / 512);
	m.ms[h][2] = now_ms() - t;
	t = now_ms();
	for (i = 0; i < NR_LR; i++)
		ok &= !luo_preserve_fd(sfd, fd[i], i + 1);
	m.ms[h][3] = now_ms() - t;
	m.hop = h;
	lr_save(mfd, &m);
	ok &= !luo_preserve_fd(sfd, mfd, LR_MAN_TOKEN);
	result(ok, "hop %d: pages rewritten, a hole filled, all preserved again",
	       h);
	lr_times(&m, h);
	ksft_print_msg("hop %d: %lld ms in this stage\n", h, now_ms() - t_stage);
	luo_kexec_next();
}

int main(int argc, char **argv)
{
	const char *scenario = argc >= 2 ? argv[1] : "";
	const char *env = getenv("LUO_RACE_SEED");
	__u64 big = SZ_1G;

	stage = luo_stage();
	if (!strcmp(scenario, "long-run") && argc == 3)
		big = strtoull(argv[2], NULL, 0) * SZ_1M;
	if ((strcmp(scenario, "reboot-races") || argc != 2) &&
	    (strcmp(scenario, "long-run") || argc > 3 || big < SZ_1M)) {
		fprintf(stderr, "%s reboot-races | long-run [MAX_MIB], with LUO_STAGE=N\n",
			argv[0]);
		return KSFT_FAIL;
	}
	ksft_print_header();
	if (access(LUO_DEVICE, F_OK))
		ksft_exit_skip("%s missing\n", LUO_DEVICE);
	if (!luo_test_available())
		ksft_exit_skip("no test module (%s)\n", LUO_TEST_DEVICE);
	dev = luo_open_device();
	if (dev < 0)
		ksft_exit_fail_msg("open %s: %s\n", LUO_DEVICE, strerror(-dev));
	if (!strcmp(scenario, "long-run")) {
		if (!stage)
			long_run_0(big);
		if (stage <= HOPS)
			long_run_hop();
		luo_bail("no stage %d", stage);
	}
	if (!stage) {
		seed = env ? strtoull(env, NULL, 0) : (__u64)time(NULL);
		ksft_print_msg("seed %llu (LUO_RACE_SEED=%llu repeats the choices)\n",
			       (unsigned long long)seed,
			       (unsigned long long)seed);
		races_0();
	}
	if (stage == 1)
		races_1();
	luo_bail("no stage %d", stage);
}
