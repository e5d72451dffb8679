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
 * every undamaged one intact.  Runs: damaged records, a damaged handler
 * record, a damaged FLB record, broken framing and foreign chunks, a
 * truncated chunk, a newer format version, a bad magic.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <unistd.h>

#include "liveupdate_test.h"
#include "kselftest.h"

#define DAMAGE		"/sys/kernel/debug/liveupdate/damage"
#define MAX_FILES	8
#define MAX_SESSIONS	12
#define MAX_LOGS	8

enum kind { NONE, MEMFD, OBJECT };

struct dfile {
	enum kind kind;
	__u64 token;
	int want;		/* RETRIEVE_FD result: 0 (intact) or -errno */
};

struct dsession {
	const char *name;
	int want;		/* RETRIEVE_SESSION result: 0 or -errno */
	struct dfile files[MAX_FILES];
};

struct drun {
	const char *name;
	struct dsession sessions[MAX_SESSIONS];
	const char *damage[16];
	const char *logs[MAX_LOGS];	/* must appear in the new kernel's log */
};

/*
 * The memfd format offsets poked below, from struct memfd_preserve_file in
 * include/linux/kho/abi/memfd_preserve.h: magic 0, size 16, nr_pages 40,
 * chunks 48, name_len 76, name 80.  Memfd "m" of token 5 is named
 * "memfd:m5": name_len 8, so its NUL is at 88.
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

static size_t memfd_size(__u64 token)
{
	return 3 * 4096 + 100 + token * 512;
}

static int make_memfd(const char *session, __u64 token)
{
	size_t size = memfd_size(token), i;
	unsigned char *buf;
	char name[16];
	int fd;

	snprintf(name, sizeof(name), "m%llu", (unsigned long long)token);
	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		luo_bail("memfd_create: %s", strerror(errno));
	buf = malloc(size);
	if (!buf)
		luo_bail("out of memory");
	for (i = 0; i < size; i++)
		buf[i] = pattern(session, token, i);
	if (write(fd, buf, size) != (ssize_t)size)
		luo_bail("write memfd: %s", strerror(errno));
	free(buf);
	return fd;
}

static __u64 object_value(const char *session, __u64 token)
{
	return ((__u64)pattern(session, token, 0) << 32) | token;
}

static bool memfd_intact(int fd, const char *session, __u64 token)
{
	size_t size = memfd_size(token), i;
	unsigned char *buf;
	bool ok;

	buf = malloc(size + 1);
	if (!buf)
		luo_bail("out of memory");
	ok = pread(fd, buf, size + 1, 0) == (ssize_t)size;
	for (i = 0; ok && i < size; i++)
		ok = buf[i] == pattern(session, token, i);
	free(buf);
	return ok;
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
			int fd = f->kind == MEMFD ?
				 make_memfd(s->name, f->token) :
				 luo_test_new(object_value(s->name, f->token));

			if (fd < 0)
				luo_bail("new test object: %s", strerror(-fd));
			ret = luo_preserve_fd(sfd, fd, f->token);
			if (ret)
				luo_bail("preserve %s/%llu: %s", s->name,
					 (unsigned long long)f->token,
					 strerror(-ret));
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

static char *kernel_log(void)
{
	int size = klogctl(10, NULL, 0);	/* SYSLOG_ACTION_SIZE_BUFFER */
	char *buf;
	int n;

	if (size <= 0)
		luo_bail("klogctl: %s", strerror(errno));
	buf = malloc(size + 1);
	if (!buf)
		luo_bail("out of memory");
	n = klogctl(3, buf, size);		/* SYSLOG_ACTION_READ_ALL */
	if (n < 0)
		luo_bail("klogctl: %s", strerror(errno));
	buf[n] = 0;
	return buf;
}

static void check_file(int sfd, const char *session, const struct dfile *f)
{
	unsigned long long value;
	int fd = -1, ret;
	bool ok;

	ret = luo_retrieve_fd(sfd, f->token, &fd);
	if (ret || f->want) {
		if (ret != f->want)
			ksft_print_msg("got %d (%s)\n", ret, strerror(-ret));
		ksft_test_result(ret == f->want,
				 "%s/%llu: RETRIEVE_FD gives %s\n", session,
				 (unsigned long long)f->token,
				 f->want ? strerror(-f->want) : "the file");
		if (!ret)
			close(fd);
		return;
	}
	if (f->kind == MEMFD) {
		ok = memfd_intact(fd, session, f->token);
	} else {
		ok = !luo_test_value(fd, &value) &&
		     value == object_value(session, f->token);
	}
	ksft_test_result(ok, "%s/%llu: %s intact\n", session,
			 (unsigned long long)f->token,
			 f->kind == MEMFD ? "memfd" : "test object");
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
	log = kernel_log();
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
