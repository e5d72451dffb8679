// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: files carried across kexec reboots.
 *
 *   liveupdate_kexec SCENARIO
 *
 * A scenario is a chain of boots: the program runs once per boot with
 * LUO_STAGE=0, 1, ... in the environment (0 when unset) and goes on to the
 * next stage by running luo-next-stage in a child, while this process holds
 * the session fds that the new kernel must find.  Each stage prints its own
 * KTAP document; a stage that kexecs has that hop as its last planned result,
 * printed only if the hop failed.
 *
 * Needs the liveupdate test module (CONFIG_LIVEUPDATE_TEST) for its
 * preservable test objects, and a test environment that provides
 * luo-next-stage; without /dev/liveupdate or the test module it skips.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <linux/reboot.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "liveupdate_test.h"
#include "kselftest.h"

static int stage;
/* Sessions or files of the many-* scenarios (second argument). */
static int many = 1000;
static int dev = -1;

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int new_object(unsigned long long value)
{
	int fd = luo_test_new(value);

	if (fd < 0)
		luo_bail("new test object: %s", strerror(-fd));
	return fd;
}

static void object_cmd(int fd, const char *cmd)
{
	int ret = luo_test_cmd(fd, "%s", cmd);

	if (ret)
		luo_bail("test object command %s: %s", cmd, strerror(-ret));
}

/* Preserve @fd as @token and report failures; true on success. */
static bool preserve(int sfd, int fd, __u64 token)
{
	int ret = luo_preserve_fd(sfd, fd, token);

	if (ret)
		ksft_print_msg("PRESERVE_FD of token %llu: %s\n",
			       (unsigned long long)token, strerror(-ret));
	return !ret;
}

/* Retrieve session @name: its fd, or -errno. */
static int retrieve_session(const char *name)
{
	int ret, sfd = -1;

	ret = luo_retrieve_session(dev, name, &sfd);
	if (ret) {
		ksft_print_msg("retrieve session %s: %s\n", name,
			       strerror(-ret));
		return ret;
	}
	return sfd;
}

/*
 * Retrieve @token and check that the file holds @want.  *@fdp gets the fd
 * (or -1 if the retrieve failed).
 */
static bool retrieve_value(int sfd, __u64 token, unsigned long long want,
			   int *fdp)
{
	unsigned long long value = 0;
	int ret, fd = -1;

	*fdp = -1;
	ret = luo_retrieve_fd(sfd, token, &fd);
	if (ret) {
		ksft_print_msg("retrieve token %llu: %s\n",
			       (unsigned long long)token, strerror(-ret));
		return false;
	}
	*fdp = fd;
	ret = luo_test_value(fd, &value);
	if (ret) {
		ksft_print_msg("token %llu: read value: %s\n",
			       (unsigned long long)token, strerror(-ret));
		return false;
	}
	if (value != want) {
		ksft_print_msg("token %llu: value %llu, want %llu\n",
			       (unsigned long long)token, value, want);
		return false;
	}
	return true;
}

/* True if the test object @fd holds @want (reporting it if not). */
static bool has_value(int fd, unsigned long long want)
{
	unsigned long long value = 0;
	int ret = luo_test_value(fd, &value);

	if (ret || value != want) {
		ksft_print_msg("fd %d: value %llu (%s), want %llu\n", fd,
			       value, strerror(-ret), want);
		return false;
	}
	return true;
}

struct want_file {
	__u64 token;
	__u32 state;
	__u32 error;
	const char *compatible;		/* NULL: the test handler's */
};

/* QUERY @sfd and compare with @kind and the @n files of @want. */
static bool query_is(int sfd, __u32 kind, const struct want_file *want,
		     unsigned int n)
{
	struct liveupdate_file_info *info;
	unsigned int i, bad = 0;
	__u32 got_kind = 0, count = n + 1;
	const char *compat;
	int ret;

	info = calloc(n + 1, sizeof(*info));
	if (!info)
		luo_bail("out of memory");
	ret = luo_query(sfd, &got_kind, info, &count);
	if (ret) {
		ksft_print_msg("query: %s\n", strerror(-ret));
		free(info);
		return false;
	}
	if (got_kind != kind) {
		ksft_print_msg("query: kind %u, want %u\n", got_kind, kind);
		bad++;
	}
	if (count != n) {
		ksft_print_msg("query: %u files, want %u\n", count, n);
		bad++;
	}
	for (i = 0; i < n && i < count; i++) {
		compat = want[i].compatible ?: LUO_TEST_COMPATIBLE;
		info[i].compatible[LIVEUPDATE_COMPATIBLE_LENGTH - 1] = '\0';
		if (info[i].token == want[i].token &&
		    info[i].state == want[i].state &&
		    info[i].error == want[i].error &&
		    !strcmp((char *)info[i].compatible, compat))
			continue;
		if (bad++ < 5)
			/* token/state/error/compatible */
			ksft_print_msg("query: file %u is %llu/%u/%u/%s, want %llu/%u/%u/%s\n",
				       i, (unsigned long long)info[i].token,
				       info[i].state, info[i].error,
				       (char *)info[i].compatible,
				       (unsigned long long)want[i].token,
				       want[i].state, want[i].error, compat);
	}
	free(info);
	return !bad;
}

/* @n files with tokens 1..n, all in @state. */
static bool query_all(int sfd, __u32 kind, unsigned int n, __u32 state)
{
	struct want_file *want = calloc(n + 1, sizeof(*want));
	unsigned int i;
	bool ok;

	if (!want)
		luo_bail("out of memory");
	for (i = 0; i < n; i++) {
		want[i].token = i + 1;
		want[i].state = state;
	}
	ok = query_is(sfd, kind, want, n);
	free(want);
	return ok;
}

static bool query_empty_outgoing(int sfd)
{
	return query_is(sfd, LIVEUPDATE_SESSION_OUTGOING, NULL, 0);
}

static bool live_is(int want)
{
	int live = luo_test_live();

	if (live != want)
		ksft_print_msg("live test objects: %d, want %d\n", live, want);
	return live == want;
}

static char *events(void)
{
	char *ev = luo_test_events();

	if (!ev)
		luo_bail("cannot read %s", LUO_TEST_EVENTS);
	return ev;
}

static void clear_events(void)
{
	int ret = luo_test_clear_events();

	if (ret)
		luo_bail("clear %s: %s", LUO_TEST_EVENTS, strerror(-ret));
}

/* Show (the start of) the event log, or of its @op events, as diagnostics. */
static void dump_events(const char *ev, const char *op)
{
	const char *line = ev, *end;
	size_t oplen = op ? strlen(op) : 0;
	int len, n = 0;

	ksft_print_msg("event log%s%s:\n", op ? ", " : "", op ?: "");
	for (; line && *line; line = end ? end + 1 : NULL) {
		end = strchr(line, '\n');
		len = end ? (int)(end - line) : (int)strlen(line);
		if (op && (strncmp(line, op, oplen) || line[oplen] != ' '))
			continue;
		if (n++ == 40) {
			ksft_print_msg("  ...\n");
			break;
		}
		ksft_print_msg("  %.*s\n", len, line);
	}
}

/* True if the @op events are exactly @want, in that order. */
static bool events_are(const char *op, const unsigned long long *want,
		       int n)
{
	unsigned long long *got = calloc(n + 1, sizeof(*got));
	char *ev = events();
	int i, count;
	bool ok;

	if (!got)
		luo_bail("out of memory");
	count = luo_event_values(ev, op, got, n + 1);
	ok = count == n;
	for (i = 0; ok && i < n; i++)
		ok = got[i] == want[i];
	if (!ok) {
		ksft_print_msg("%s events: %d, want %d\n", op, count, n);
		dump_events(ev, op);
	}
	free(got);
	free(ev);
	return ok;
}

/*
 * Like events_are(), for logs that may keep only the latest events: the @op
 * events present must be the last ones of @want, in order (all of them if
 * the log kept everything).
 */
static bool events_end_with(const char *op, const unsigned long long *want,
			    int n)
{
	unsigned long long *got = calloc(n + 1, sizeof(*got));
	char *ev = events();
	int i, count;
	bool ok;

	if (!got)
		luo_bail("out of memory");
	count = luo_event_values(ev, op, got, n + 1);
	ok = count > 0 && count <= n;
	for (i = 0; ok && i < count; i++)
		ok = got[i] == want[n - count + i];
	if (!ok) {
		ksft_print_msg("%s events: %d, want the last (up to) %d\n",
			       op, count, n);
		dump_events(ev, op);
	} else if (count < n) {
		ksft_print_msg("the event log kept the last %d %s events\n",
			       count, op);
	}
	free(got);
	free(ev);
	return ok;
}

/* LIST_SESSIONS: the names are exactly @want (in that order). */
static bool list_is(const char * const *want, unsigned int n)
{
	char (*names)[LUO_NAME_LEN];
	__u32 count = n + 1;
	unsigned int i;
	bool ok;
	int ret;

	names = calloc(n + 1, LUO_NAME_LEN);
	if (!names)
		luo_bail("out of memory");
	ret = luo_list_sessions(dev, names, &count);
	ok = !ret && count == n;
	if (!ok)
		ksft_print_msg("list sessions: %s, %u names, want %u\n",
			       strerror(-ret), count, n);
	for (i = 0; ok && i < n; i++) {
		ok = !strncmp(names[i], want[i], LUO_NAME_LEN);
		if (!ok)
			ksft_print_msg("list sessions: name %u is %.64s, want %s\n",
				       i, names[i], want[i]);
	}
	free(names);
	return ok;
}

/*
 * The last planned result of a stage that moves on: kexec into the next
 * stage.  Returns only if that did not happen, after reporting it.
 */
/*
 * simple: three files in one session; the new kernel retrieves them, checks
 * the incoming-session rules and finishes.
 */
static const unsigned long long simple_values[] = { 11, 22, 33 };

static void simple_0(void)
{
	int sfd, obj[3], i;
	bool ok = true;

	ksft_set_plan(4);
	sfd = luo_must_create_session(dev, "simple");
	for (i = 0; i < 3; i++) {
		obj[i] = new_object(simple_values[i]);
		ok &= preserve(sfd, obj[i], i + 1);
	}
	result(ok, "preserve 3 files into session simple");
	/* The session holds its files: their fds are not needed. */
	close(obj[1]);
	result(query_all(sfd, LIVEUPDATE_SESSION_OUTGOING, 3,
			 LIVEUPDATE_FILE_PRESERVED),
	       "query: outgoing session, 3 files preserved");
	result(live_is(3), "3 test objects live");
	luo_kexec_next();
}

static void simple_1(void)
{
	struct liveupdate_session_finish fin = {
		.size = sizeof(fin),
		.reserved = 1,
	};
	const struct want_file one_retrieved[] = {
		{ .token = 1, .state = LIVEUPDATE_FILE_RETRIEVED },
		{ .token = 2, .state = LIVEUPDATE_FILE_INCOMING },
		{ .token = 3, .state = LIVEUPDATE_FILE_INCOMING },
	};
	static const unsigned long long finish_order[] = { 33, 22, 11 };
	char name[LUO_NAME_LEN];
	int sfd, fd[3], again, tmp = -1, obj, ret, i;
	__u32 count;
	bool ok;
	char *ev;

	ksft_set_plan(26);
	sfd = retrieve_session("simple");
	require(sfd >= 0, "retrieve session simple");
	result(query_all(sfd, LIVEUPDATE_SESSION_INCOMING, 3,
			 LIVEUPDATE_FILE_INCOMING),
	       "query: incoming session, 3 files not retrieved");
	ret = luo_get_name(sfd, name);
	result(!ret && !strcmp(name, "simple"), "get_name on incoming session");

	/* Open sessions are not listed, nor can they be opened twice. */
	count = 0;
	ret = luo_list_sessions(dev, NULL, &count);
	result(!ret && !count, "list_sessions: the open session is not listed");
	check_ret(luo_retrieve_session(dev, "simple", &tmp), -EBUSY,
		  "retrieve_session while open: EBUSY");
	check_ret(luo_create_session(dev, "simple", &tmp), -EEXIST,
		  "create_session with the incoming name: EEXIST");

	obj = new_object(44);
	check_ret(luo_preserve_fd(sfd, obj, 4), -EINVAL,
		  "preserve_fd into incoming session: EINVAL");
	check_ret(luo_unpreserve_fd(sfd, 1), -EINVAL,
		  "unpreserve_fd on incoming session: EINVAL");
	check_ret(luo_retrieve_fd(sfd, 4, &tmp), -ENOENT,
		  "retrieve_fd of unknown token: ENOENT");

	result(retrieve_value(sfd, 1, 11, &fd[0]), "retrieve token 1: value 11");
	result(query_is(sfd, LIVEUPDATE_SESSION_INCOMING, one_retrieved, 3),
	       "query: token 1 retrieved, tokens 2 and 3 incoming");
	result(retrieve_value(sfd, 2, 22, &fd[1]),
	       "retrieve token 2 (fd closed before kexec): value 22");
	result(retrieve_value(sfd, 3, 33, &fd[2]), "retrieve token 3: value 33");
	ok = true;
	for (i = 0; i < 3; i++)
		ok &= fd[i] >= 0 && luo_has_cloexec(fd[i]);
	result(ok, "retrieved fds are close-on-exec");
	result(query_all(sfd, LIVEUPDATE_SESSION_INCOMING, 3,
			 LIVEUPDATE_FILE_RETRIEVED),
	       "query: 3 files retrieved");

	/* Asking again gives another fd for the same file. */
	ok = retrieve_value(sfd, 1, 11, &again) && again != fd[0] &&
	     !luo_test_cmd(again, "value=111") && has_value(fd[0], 111) &&
	     !luo_test_cmd(fd[0], "value=11") && has_value(again, 11);
	result(ok, "retrieve token 1 again: new fd, same file");
	if (again >= 0)
		close(again);

	ev = events();
	ok = true;
	for (i = 0; i < 3; i++)
		ok &= luo_event_count(ev, "retrieve", simple_values[i]) == 1;
	if (!ok)
		dump_events(ev, NULL);
	free(ev);
	result(ok, "handler retrieve ran once per file");

	ret = ioctl(sfd, LIVEUPDATE_SESSION_FINISH, &fin) ? -errno : 0;
	check_ret(ret, -EINVAL, "finish with reserved set: EINVAL");
	check_ret(luo_finish(sfd), 0, "finish");
	result(events_are("finish", finish_order, 3),
	       "handler finish ran for each file, last first");

	/* Now an empty outgoing session of the same name. */
	result(query_empty_outgoing(sfd), "query after finish: empty outgoing");
	ret = luo_get_name(sfd, name);
	result(!ret && !strcmp(name, "simple"), "get_name after finish");
	check_ret(luo_finish(sfd), -EINVAL, "finish again: EINVAL");
	check_ret(luo_retrieve_fd(sfd, 1, &tmp), -EINVAL,
		  "retrieve_fd after finish: EINVAL");
	check_ret(luo_retrieve_session(dev, "simple", &tmp), -ENOENT,
		  "retrieve_session after finish: ENOENT");
	ok = true;
	for (i = 0; i < 3; i++)
		ok &= fd[i] >= 0 && has_value(fd[i], simple_values[i]);
	result(ok, "retrieved files still work after finish");
	ksft_finished();
}

/* many-sessions: "many" sessions of one file each. */
static void many_sessions_name(char *name, int i)
{
	snprintf(name, LUO_NAME_LEN, "many-%04d", i);
}

static void many_sessions_0(void)
{
	char name[LUO_NAME_LEN];
	long long start;
	int i, sfd, obj;
	bool ok = true;

	ksft_set_plan(3);
	start = now_ms();
	for (i = 0; i < many && ok; i++) {
		many_sessions_name(name, i);
		sfd = luo_must_create_session(dev, name);
		obj = new_object(100000 + i);
		ok = preserve(sfd, obj, i + 1);
	}
	ksft_print_msg("create+preserve of %d sessions: %lld ms\n", many,
		       now_ms() - start);
	result(ok, "create %d sessions with one file each", many);
	result(live_is(many), "%d test objects live", many);
	luo_kexec_next();
}

static void many_sessions_1(void)
{
	char (*names)[LUO_NAME_LEN], want[LUO_NAME_LEN];
	int i, ret, *sfd, fd;
	long long start;
	__u32 count;
	void *gone;
	bool ok;

	ksft_set_plan(10);
	count = 0;
	ret = luo_list_sessions(dev, NULL, &count);
	if (ret || count != (__u32)many)
		ksft_print_msg("list sessions: %s, count %u\n",
			       strerror(-ret), count);
	result(!ret && count == (__u32)many, "list_sessions count: %d", many);

	names = calloc(many + 1, LUO_NAME_LEN);
	sfd = calloc(many, sizeof(*sfd));
	if (!names || !sfd)
		luo_bail("out of memory");
	count = many;
	ret = luo_list_sessions(dev, names, &count);
	ok = !ret && count == (__u32)many;
	for (i = 0; ok && i < many; i++) {
		many_sessions_name(want, i);
		ok = !strncmp(names[i], want, LUO_NAME_LEN);
		if (!ok)
			ksft_print_msg("name %d: %.64s, want %s\n", i,
				       names[i], want);
	}
	result(ok, "list_sessions: %d names in name order", many);

	/* A short buffer gets the first names and the full count. */
	memset(names, 0xa5, 11 * LUO_NAME_LEN);
	count = 10;
	ret = luo_list_sessions(dev, names, &count);
	ok = !ret && count == (__u32)many;
	for (i = 0; ok && i < 10; i++) {
		many_sessions_name(want, i);
		ok = !strncmp(names[i], want, LUO_NAME_LEN);
	}
	ok = ok && (unsigned char)names[10][0] == 0xa5;
	result(ok, "list_sessions with room for 10: 10 names, count %d",
	       many);

	gone = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (gone == MAP_FAILED)
		luo_bail("mmap: %s", strerror(errno));
	munmap(gone, 4096);
	count = 1;
	check_ret(luo_list_sessions(dev, gone, &count), -EFAULT,
		  "list_sessions into unmapped memory: EFAULT");

	start = now_ms();
	ok = true;
	for (i = 0; i < many; i++) {
		many_sessions_name(want, i);
		sfd[i] = retrieve_session(want);
		if (sfd[i] < 0) {
			ok = false;
			continue;
		}
		ok &= retrieve_value(sfd[i], i + 1, 100000 + i, &fd);
	}
	ksft_print_msg("retrieve of %d sessions and files: %lld ms\n", many,
		       now_ms() - start);
	result(ok, "retrieve %d sessions and their files", many);

	count = 0;
	ret = luo_list_sessions(dev, NULL, &count);
	result(!ret && !count, "list_sessions with all open: none");
	result(live_is(many), "%d test objects live before finish", many);

	ok = true;
	for (i = 0; i < many; i++)
		ok &= sfd[i] >= 0 && !luo_finish(sfd[i]);
	result(ok, "finish %d sessions", many);
	count = 0;
	ret = luo_list_sessions(dev, NULL, &count);
	result(!ret && !count, "list_sessions after finish: none");
	result(live_is(0), "no test objects live after finish");
	free(names);
	free(sfd);
	ksft_finished();
}

/* many-files: one session of "many" files. */
static void many_files_0(void)
{
	long long start;
	int i, sfd, obj;
	bool ok = true;

	ksft_set_plan(4);
	sfd = luo_must_create_session(dev, "many-files");
	start = now_ms();
	for (i = 0; i < many && ok; i++) {
		obj = new_object(200000 + i);
		ok = preserve(sfd, obj, i + 1);
	}
	ksft_print_msg("preserve of %d files: %lld ms\n", many,
		       now_ms() - start);
	result(ok, "preserve %d files into one session", many);
	result(query_all(sfd, LIVEUPDATE_SESSION_OUTGOING, many,
			 LIVEUPDATE_FILE_PRESERVED),
	       "query: %d files preserved, in order", many);
	result(live_is(many), "%d test objects live", many);
	luo_kexec_next();
}

static void many_files_1(void)
{
	unsigned long long *order;
	long long start;
	int i, sfd, fd;
	bool ok = true;

	ksft_set_plan(8);
	sfd = retrieve_session("many-files");
	require(sfd >= 0, "retrieve session many-files");
	result(query_all(sfd, LIVEUPDATE_SESSION_INCOMING, many,
			 LIVEUPDATE_FILE_INCOMING),
	       "query: %d incoming files, in order", many);
	start = now_ms();
	for (i = 0; i < many; i++)
		ok &= retrieve_value(sfd, i + 1, 200000 + i, &fd);
	ksft_print_msg("retrieve of %d files: %lld ms\n", many,
		       now_ms() - start);
	result(ok, "retrieve %d files", many);
	result(query_all(sfd, LIVEUPDATE_SESSION_INCOMING, many,
			 LIVEUPDATE_FILE_RETRIEVED),
	       "query: %d files retrieved", many);
	clear_events();
	check_ret(luo_finish(sfd), 0, "finish");
	order = calloc(many, sizeof(*order));
	if (!order)
		luo_bail("out of memory");
	for (i = 0; i < many; i++)
		order[i] = 200000 + many - 1 - i;
	result(events_end_with("finish", order, many),
	       "handler finish ran for %d files, last first", many);
	free(order);
	result(query_empty_outgoing(sfd), "query after finish: empty outgoing");
	result(live_is(0), "no test objects live after finish");
	ksft_finished();
}

/*
 * close-no-finish: an incoming session closed without FINISH stays, with
 * its retrieved files; one finished later is gone after the next update,
 * and so is one never finished.
 */
static void close_no_finish_0(void)
{
	int sfd, left, obj[3];
	bool ok;

	ksft_set_plan(3);
	sfd = luo_must_create_session(dev, "cnf");
	left = luo_must_create_session(dev, "cnf-left");
	obj[0] = new_object(7);
	obj[1] = new_object(8);
	obj[2] = new_object(9);
	ok = preserve(sfd, obj[0], 1) && preserve(sfd, obj[1], 2) &&
	     preserve(left, obj[2], 1);
	result(ok, "preserve 2 files into cnf, 1 into cnf-left");
	result(live_is(3), "3 test objects live");
	luo_kexec_next();
}

/* The debugfs view of the sessions contains @want. */
static bool debugfs_has(const char *want)
{
	char *view = luo_read_file("/sys/kernel/debug/liveupdate/sessions");
	bool ok = view && strstr(view, want);

	if (!ok)
		ksft_print_msg("debugfs sessions view:\n%s\n",
			       view ? view : "(unreadable)");
	free(view);
	return ok;
}

static void close_no_finish_1(void)
{
	static const char * const both[] = { "cnf", "cnf-left" };
	static const char * const left_only[] = { "cnf-left" };
	const struct want_file mixed[] = {
		{ .token = 1, .state = LIVEUPDATE_FILE_RETRIEVED },
		{ .token = 2, .state = LIVEUPDATE_FILE_INCOMING },
	};
	int sfd, left, a, b, lfd;
	bool ok;

	ksft_set_plan(15);
	sfd = retrieve_session("cnf");
	require(sfd >= 0, "retrieve session cnf");
	result(retrieve_value(sfd, 1, 7, &a), "retrieve token 1: value 7");
	require(a >= 0 && !luo_test_cmd(a, "value=70") && has_value(a, 70),
		"set the retrieved file's value to 70");
	close(sfd);

	result(list_is(both, 2),
	       "list_sessions after close without finish: cnf, cnf-left");
	sfd = retrieve_session("cnf");
	require(sfd >= 0, "retrieve session cnf again");
	result(query_is(sfd, LIVEUPDATE_SESSION_INCOMING, mixed, 2),
	       "query: token 1 still retrieved, token 2 incoming");
	result(retrieve_value(sfd, 1, 70, &b),
	       "retrieve token 1 again: the same file (value 70)");
	ok = b >= 0 && !luo_test_cmd(b, "value=71") && has_value(a, 71);
	result(ok, "both fds of token 1 are one file");
	check_ret(luo_finish(sfd), 0, "finish cnf");
	result(query_empty_outgoing(sfd), "query after finish: empty outgoing");

	left = retrieve_session("cnf-left");
	require(left >= 0, "retrieve session cnf-left");
	result(retrieve_value(left, 1, 9, &lfd), "cnf-left token 1: value 9");
	close(left);
	result(list_is(left_only, 1),
	       "list_sessions: cnf-left only (cnf is finished)");
	result(debugfs_has("session cnf-left incoming files=1\n"
			   "  token=1 liveupdate-test retrieved\n"),
	       "debugfs shows the unfinished session cnf-left and its file");

	/* Carry nothing: the finished session is closed as well. */
	close(sfd);
	close(a);
	if (b >= 0)
		close(b);
	if (lfd >= 0)
		close(lfd);
	luo_kexec_next();
}

static void close_no_finish_2(void)
{
	int tmp = -1;
	__u32 count = 0;
	int ret;

	ksft_set_plan(4);
	check_ret(luo_retrieve_session(dev, "cnf", &tmp), -ENOENT,
		  "finished and closed session cnf is gone: ENOENT");
	check_ret(luo_retrieve_session(dev, "cnf-left", &tmp), -ENOENT,
		  "unfinished session cnf-left was released: ENOENT");
	ret = luo_list_sessions(dev, NULL, &count);
	result(!ret && !count, "list_sessions: none");
	result(live_is(0), "no test objects live");
	ksft_finished();
}

/* reuse: a finished session takes new files for the next update. */
static void reuse_0(void)
{
	int sfd, a, b;

	ksft_set_plan(2);
	sfd = luo_must_create_session(dev, "reuse");
	a = new_object(100);
	b = new_object(200);
	result(preserve(sfd, a, 1) && preserve(sfd, b, 2),
	       "preserve 2 files into session reuse");
	luo_kexec_next();
}

static void reuse_1(void)
{
	int sfd, r1, r2, c, d;

	ksft_set_plan(9);
	sfd = retrieve_session("reuse");
	require(sfd >= 0, "retrieve session reuse");
	result(retrieve_value(sfd, 1, 100, &r1), "retrieve token 1: value 100");
	result(retrieve_value(sfd, 2, 200, &r2), "retrieve token 2: value 200");
	check_ret(luo_finish(sfd), 0, "finish");

	c = new_object(300);
	result(preserve(sfd, c, 1), "preserve a new file as token 1 again");
	result(r2 >= 0 && !luo_test_cmd(r2, "value=201") && preserve(sfd, r2, 2),
	       "preserve the retrieved file, now 201, as token 2");
	d = new_object(400);
	result(preserve(sfd, d, 3), "preserve a new file as token 3");
	result(query_all(sfd, LIVEUPDATE_SESSION_OUTGOING, 3,
			 LIVEUPDATE_FILE_PRESERVED),
	       "query: outgoing, 3 files preserved");
	luo_kexec_next();
}

static void reuse_2(void)
{
	int sfd, fd;

	ksft_set_plan(5);
	sfd = retrieve_session("reuse");
	require(sfd >= 0, "retrieve session reuse");
	result(retrieve_value(sfd, 1, 300, &fd), "retrieve token 1: value 300");
	result(retrieve_value(sfd, 2, 201, &fd), "retrieve token 2: value 201");
	result(retrieve_value(sfd, 3, 400, &fd), "retrieve token 3: value 400");
	check_ret(luo_finish(sfd), 0, "finish");
	ksft_finished();
}

/*
 * hops3: one session through three hops.  Token 1 is the same file all
 * along (retrieved and preserved again), token 2 a new file at every hop.
 */
#define HOPS	3

static unsigned long long hop_value(int hop, int token)
{
	return 1000ULL * hop + token;
}

static void hops3(void)
{
	int sfd, f1 = -1, f2, obj;

	ksft_set_plan(stage == 0 ? 2 : stage < HOPS ? 6 : 4);
	if (stage == 0) {
		sfd = luo_must_create_session(dev, "hops");
		f1 = new_object(hop_value(0, 1));
		f2 = new_object(hop_value(0, 2));
		result(preserve(sfd, f1, 1) && preserve(sfd, f2, 2),
		       "preserve 2 files into session hops");
		luo_kexec_next();
	}

	sfd = retrieve_session("hops");
	require(sfd >= 0, "retrieve session hops at hop %d", stage);
	result(retrieve_value(sfd, 1, hop_value(stage - 1, 1), &f1),
	       "token 1: value %llu", hop_value(stage - 1, 1));
	result(retrieve_value(sfd, 2, hop_value(stage - 1, 2), &f2),
	       "token 2: value %llu", hop_value(stage - 1, 2));
	check_ret(luo_finish(sfd), 0, "finish at hop %d", stage);
	if (stage == HOPS)
		ksft_finished();

	obj = new_object(hop_value(stage, 2));
	result(f1 >= 0 && !luo_test_cmd(f1, "value=%llu", hop_value(stage, 1)) &&
	       preserve(sfd, f1, 1) && preserve(sfd, obj, 2),
	       "preserve token 1 (same file, value %llu) and token 2 (new file, value %llu)",
	       hop_value(stage, 1), hop_value(stage, 2));
	luo_kexec_next();
}

/*
 * freeze-fail: a file that fails to freeze makes the update fail; the files
 * frozen already are thawed and the system goes on.  The update works once
 * the failure is gone.
 */
static const unsigned long long ff_values[] = { 1, 2, 3, 4, 5, 6 };
#define FF_FAILING	4

static void freeze_fail_0(void)
{
	const struct want_file a_files[] = {
		{ .token = 1, .state = LIVEUPDATE_FILE_PRESERVED },
		{ .token = 2, .state = LIVEUPDATE_FILE_PRESERVED },
	};
	const struct want_file b_files[] = {
		{ .token = 1, .state = LIVEUPDATE_FILE_PRESERVED },
		{ .token = 2, .state = LIVEUPDATE_FILE_PRESERVED },
		{ .token = 3, .state = LIVEUPDATE_FILE_PRESERVED },
	};
	int sa, sb, obj[6], ret, i, frozen = 0;
	bool ok;
	char *ev;

	ksft_set_plan(8);
	sa = luo_must_create_session(dev, "ff-a");
	sb = luo_must_create_session(dev, "ff-b");
	for (i = 0; i < 6; i++)
		obj[i] = new_object(ff_values[i]);
	ok = !luo_test_set_fail(obj[FF_FAILING - 1], "freeze", EIO, 0);
	/* The failing file sits between two others of its session. */
	ok = ok && preserve(sa, obj[0], 1) && preserve(sa, obj[1], 2) &&
	     preserve(sb, obj[2], 1) && preserve(sb, obj[3], 2) &&
	     preserve(sb, obj[4], 3);
	result(ok, "preserve 5 files, one failing to freeze (EIO)");
	if (!ok)
		luo_bail("setup failed");
	clear_events();

	ret = next_stage();
	/* 127: it could not even run; over 128: killed. */
	ksft_print_msg("%s exited %d\n", LUO_NEXT_STAGE, ret);
	result(ret > 0 && ret < 127, "%s fails when a file fails to freeze",
	       LUO_NEXT_STAGE);

	result(query_is(sa, LIVEUPDATE_SESSION_OUTGOING, a_files, 2),
	       "query ff-a after the failed update: 2 files preserved");
	result(query_is(sb, LIVEUPDATE_SESSION_OUTGOING, b_files, 3),
	       "query ff-b after the failed update: 3 files preserved");

	ev = events();
	ok = true;
	for (i = 0; i < 5; i++) {
		unsigned long long v = ff_values[i];
		int nf = luo_event_count(ev, "freeze", v);
		int nu = luo_event_count(ev, "unfreeze", v);
		int at_f = luo_event_find(ev, "freeze", v, 0);
		int at_u = luo_event_find(ev, "unfreeze", v, 0);

		if (v == FF_FAILING)
			continue;
		frozen += nf;
		if (nf != nu || (nf && at_u < at_f)) {
			ksft_print_msg("file %llu: %d freeze, %d unfreeze\n",
				       v, nf, nu);
			ok = false;
		}
	}
	if (!ok || !frozen)
		dump_events(ev, NULL);
	ksft_print_msg("%d files were frozen before the failure\n", frozen);
	result(ok && frozen > 0,
	       "every file frozen before the failure was unfrozen");
	ok = luo_event_count(ev, "unfreeze", FF_FAILING) == 0;
	free(ev);
	result(ok, "the file that failed to freeze was not unfrozen");

	result(preserve(sa, obj[5], 3) && live_is(6),
	       "preserve works after the failed update");

	object_cmd(obj[FF_FAILING - 1], "fail=none");
	luo_kexec_next();
}

static void freeze_fail_1(void)
{
	int sa, sb, fd;
	bool ok;

	ksft_set_plan(5);
	sa = retrieve_session("ff-a");
	require(sa >= 0, "retrieve session ff-a");
	sb = retrieve_session("ff-b");
	require(sb >= 0, "retrieve session ff-b");
	ok = retrieve_value(sa, 1, 1, &fd) && retrieve_value(sa, 2, 2, &fd) &&
	     retrieve_value(sa, 3, 6, &fd);
	result(ok, "ff-a: values 1, 2 and 6 (added after the failure)");
	ok = retrieve_value(sb, 1, 3, &fd) && retrieve_value(sb, 2, 4, &fd) &&
	     retrieve_value(sb, 3, 5, &fd);
	result(ok, "ff-b: values 3, 4 and 5");
	ok = !luo_finish(sa) && !luo_finish(sb);
	result(ok, "finish both sessions");
	ksft_finished();
}

/*
 * unknown-handler, bad-version: the new kernel cannot restore file 2 (no
 * handler for its format / format version): it is broken, the others are
 * fine and the session finishes.
 */
static void broken_file_0(bool ghost)
{
	const struct want_file files[] = {
		{ .token = 1, .state = LIVEUPDATE_FILE_PRESERVED },
		{ .token = 2, .state = LIVEUPDATE_FILE_PRESERVED,
		  .compatible = ghost ? LUO_TEST_GHOST_COMPATIBLE : NULL },
		{ .token = 3, .state = LIVEUPDATE_FILE_PRESERVED },
	};
	int sfd, obj[3], i;
	bool ok = true;

	ksft_set_plan(4);
	sfd = luo_must_create_session(dev, "broken");
	for (i = 0; i < 3; i++)
		obj[i] = new_object(i + 1);
	if (ghost)
		require(!luo_test_enable_ghost() &&
			!luo_test_cmd(obj[1], "ghost=1"),
			"file 2 preserved by the ghost handler");
	else
		require(!luo_test_cmd(obj[1], "version=7"),
			"file 2 written in format version 7");
	for (i = 0; i < 3; i++)
		ok &= preserve(sfd, obj[i], i + 1);
	result(ok, "preserve 3 files into session broken");
	result(query_is(sfd, LIVEUPDATE_SESSION_OUTGOING, files, 3),
	       "query: 3 files preserved, file 2 as %s",
	       ghost ? LUO_TEST_GHOST_COMPATIBLE : LUO_TEST_COMPATIBLE);
	luo_kexec_next();
}

static void broken_file_1(bool ghost)
{
	const struct want_file files[] = {
		{ .token = 1, .state = LIVEUPDATE_FILE_RETRIEVED },
		{ .token = 2, .state = LIVEUPDATE_FILE_BROKEN,
		  .error = EOPNOTSUPP,
		  .compatible = ghost ? LUO_TEST_GHOST_COMPATIBLE : NULL },
		{ .token = 3, .state = LIVEUPDATE_FILE_RETRIEVED },
	};
	int sfd, fd = -1;

	ksft_set_plan(8);
	sfd = retrieve_session("broken");
	require(sfd >= 0, "retrieve session broken");
	check_ret(luo_retrieve_fd(sfd, 2, &fd), -EOPNOTSUPP,
		  "retrieve file 2: EOPNOTSUPP");
	check_ret(luo_retrieve_fd(sfd, 2, &fd), -EOPNOTSUPP,
		  "retrieve file 2 again: EOPNOTSUPP");
	result(retrieve_value(sfd, 1, 1, &fd), "retrieve file 1: value 1");
	result(retrieve_value(sfd, 3, 3, &fd), "retrieve file 3: value 3");
	result(query_is(sfd, LIVEUPDATE_SESSION_INCOMING, files, 3),
	       "query: file 2 broken (EOPNOTSUPP), files 1 and 3 retrieved");
	check_ret(luo_finish(sfd), 0, "finish with a broken file");
	result(query_empty_outgoing(sfd), "query after finish: empty outgoing");
	ksft_finished();
}

static void unknown_handler(void)
{
	if (stage == 0)
		broken_file_0(true);
	broken_file_1(true);
}

static void bad_version(void)
{
	if (stage == 0)
		broken_file_0(false);
	broken_file_1(false);
}

/* finish-refused: a handler refuses FINISH twice; nothing changes meanwhile. */
static void finish_refused_0(void)
{
	int sfd, a, b;
	bool ok;

	ksft_set_plan(2);
	sfd = luo_must_create_session(dev, "refuse");
	a = new_object(1);
	b = new_object(2);
	ok = !luo_test_set_fail(a, "can_finish", EBUSY, 2) &&
	     preserve(sfd, a, 1) && preserve(sfd, b, 2);
	result(ok, "preserve 2 files, one refusing to finish twice");
	luo_kexec_next();
}

static void finish_refused_1(void)
{
	static const unsigned long long order[] = { 2, 1 };
	int sfd, a, b;

	ksft_set_plan(10);
	sfd = retrieve_session("refuse");
	require(sfd >= 0, "retrieve session refuse");
	result(retrieve_value(sfd, 1, 1, &a), "retrieve token 1: value 1");
	result(retrieve_value(sfd, 2, 2, &b), "retrieve token 2: value 2");
	clear_events();
	check_ret(luo_finish(sfd), -EBUSY, "finish refused: EBUSY");
	check_ret(luo_finish(sfd), -EBUSY, "finish refused again: EBUSY");
	result(query_all(sfd, LIVEUPDATE_SESSION_INCOMING, 2,
			 LIVEUPDATE_FILE_RETRIEVED),
	       "query: still incoming, 2 files retrieved");
	result(events_are("finish", NULL, 0),
	       "no file finished by the refused calls");
	check_ret(luo_finish(sfd), 0, "third finish");
	result(events_are("finish", order, 2),
	       "handler finish ran for both files, last first");
	result(query_empty_outgoing(sfd), "query after finish: empty outgoing");
	ksft_finished();
}

/* retrieve-fail: a failed retrieve leaves the file to retry. */
static void retrieve_fail_0(void)
{
	int sfd, a, b;
	bool ok;

	ksft_set_plan(2);
	sfd = luo_must_create_session(dev, "rfail");
	a = new_object(42);
	b = new_object(43);
	ok = !luo_test_set_fail(a, "retrieve", EIO, 1) &&
	     preserve(sfd, a, 1) && preserve(sfd, b, 2);
	result(ok, "preserve 2 files, one failing its first retrieve");
	luo_kexec_next();
}

static void retrieve_fail_1(void)
{
	int sfd, fd = -1;

	ksft_set_plan(6);
	sfd = retrieve_session("rfail");
	require(sfd >= 0, "retrieve session rfail");
	check_ret(luo_retrieve_fd(sfd, 1, &fd), -EIO,
		  "first retrieve of token 1: EIO");
	result(query_all(sfd, LIVEUPDATE_SESSION_INCOMING, 2,
			 LIVEUPDATE_FILE_INCOMING),
	       "query: token 1 still incoming (not broken)");
	result(retrieve_value(sfd, 1, 42, &fd), "retry token 1: value 42");
	result(retrieve_value(sfd, 2, 43, &fd), "retrieve token 2: value 43");
	check_ret(luo_finish(sfd), 0, "finish");
	ksft_finished();
}

/*
 * no-kho-image: with files preserved, reboot(KEXEC) into an image loaded
 * with the classic kexec_load() (which carries no KHO state) must fail and
 * change nothing; were it to jump, the dummy image would hang the test.
 */
static void no_kho_image_0(void)
{
	static const char * const load_dummy[] = { "luo-kexec", "-c", NULL };
	int sfd, obj, ret;

	ksft_set_plan(5);
	sfd = luo_must_create_session(dev, "nokho");
	obj = new_object(77);
	result(preserve(sfd, obj, 1), "preserve a file");
	clear_events();
	result(luo_run(load_dummy) == 0, "kexec_load of a dummy image");
	ret = luo_reboot_kexec();
	check_ret(ret, -EOPNOTSUPP,
		  "reboot into an image without KHO state: EOPNOTSUPP");
	result(query_all(sfd, LIVEUPDATE_SESSION_OUTGOING, 1,
			 LIVEUPDATE_FILE_PRESERVED) && !strstr(events(), "freeze"),
	       "the session is untouched, nothing was frozen");
	luo_kexec_next();
}

static void no_kho_image_1(void)
{
	int sfd, fd = -1;

	ksft_set_plan(3);
	sfd = retrieve_session("nokho");
	result(sfd >= 0, "retrieve session nokho");
	result(sfd >= 0 && retrieve_value(sfd, 1, 77, &fd),
	       "retrieve the file: value 77");
	check_ret(sfd >= 0 ? luo_finish(sfd) : sfd, 0, "finish");
	ksft_finished();
}

/*
 * disabled: a kernel booted with liveupdate=off offers no /dev/liveupdate
 * and leaves the previous kernel's state alone.
 */
static void disabled_0(void)
{
	int sfd, obj, ret;

	ksft_set_plan(2);
	sfd = luo_must_create_session(dev, "off");
	obj = new_object(5);
	result(preserve(sfd, obj, 1), "preserve a file");
	ret = next_stage_append("liveupdate=off");
	ksft_print_msg("%s returned %d\n", LUO_NEXT_STAGE, ret);
	ksft_test_result_fail("kexec into stage 1 with liveupdate=off\n");
	ksft_finished();
}

static void disabled_1(void)
{
	static const char * const restored[] = {
		"sh", "-c", "dmesg | grep -q 'liveupdate: restored'", NULL
	};

	ksft_set_plan(2);
	result(access(LUO_DEVICE, F_OK) && errno == ENOENT,
	       "no %s with liveupdate=off", LUO_DEVICE);
	result(luo_run(restored) == 1,
	       "the previous kernel's sessions were not restored");
	ksft_finished();
}

/* unretrieved: FINISH releases the files never retrieved. */
static void unretrieved_0(void)
{
	int sfd, a, b;

	ksft_set_plan(3);
	sfd = luo_must_create_session(dev, "unretrieved");
	a = new_object(1);
	b = new_object(2);
	result(preserve(sfd, a, 1) && preserve(sfd, b, 2),
	       "preserve 2 files into session unretrieved");
	result(live_is(2), "2 test objects live");
	luo_kexec_next();
}

static void unretrieved_1(void)
{
	int sfd, fd, live;
	bool ok;
	char *ev;

	ksft_set_plan(7);
	sfd = retrieve_session("unretrieved");
	require(sfd >= 0, "retrieve session unretrieved");
	result(retrieve_value(sfd, 1, 1, &fd), "retrieve token 1 only: value 1");
	live = luo_test_live();
	ksft_print_msg("%d test objects live before finish\n", live);
	result(live > 0, "test objects pending before finish");
	check_ret(luo_finish(sfd), 0, "finish");
	ev = events();
	ok = luo_event_count(ev, "finish", 1) == 1 &&
	     luo_event_count(ev, "finish", 2) == 1;
	if (!ok)
		dump_events(ev, NULL);
	free(ev);
	result(ok, "handler finish ran for the retrieved and the unretrieved file");
	result(query_empty_outgoing(sfd), "query after finish: empty outgoing");
	if (fd >= 0)
		close(fd);
	close(sfd);
	result(live_is(0), "no test objects live after finish");
	ksft_finished();
}

/* ---- FLBs: the test FLB, shared by the test and ghost handlers ---- */

static bool flb_is(const char *dir, const char *want)
{
	return luo_flb_is(dir, LUO_TEST_FLB_COMPATIBLE, want);
}

/* The test module's own view: its outgoing object and its preserved pages. */
static bool flb_out_is(const char *want, int live)
{
	char *got = luo_read_file(LUO_TEST_FLB);
	int got_live = luo_test_flb_live();
	bool ok = got && !strcmp(got, want) && got_live == live;

	if (!ok)
		ksft_print_msg("test FLB: %s, %d pages live; want %s, %d\n",
			       got ? strtok(got, "\n") : "(unreadable)",
			       got_live, want, live);
	free(got);
	return ok;
}

static int event_count(const char *op)
{
	char *ev = events();
	int n = luo_event_values(ev, op, NULL, 0);

	free(ev);
	return n;
}

static void flb_cmd(const char *cmd)
{
	int ret = luo_test_flb_cmd(cmd);

	if (ret)
		luo_bail("test FLB command %s: %s", cmd, strerror(-ret));
}

/*
 * flb: the lifecycle of an FLB shared by two handlers, across a kexec.
 * Session flb-a holds a test file (value 1), session flb-b a ghost one
 * (value 2); the FLB carries 600 and fails its first retrieve.
 */
static void flb_0(void)
{
	int sa, sb, sc, a1, a2, b1, c1;
	bool ok;
	char *ev;
	int ret;

	ksft_set_plan(17);
	result(flb_is("outgoing", "handlers=1 files=0"),
	       "FLB bound to the test handler, not preserved");
	require(!luo_test_enable_ghost(), "register the ghost handler");
	result(flb_is("outgoing", "handlers=2 files=0"),
	       "FLB bound to both handlers");
	result(flb_out_is("out=none\n", 0), "FLB: no outgoing object");

	/* A failing FLB preserve fails the file's, leaving nothing behind. */
	flb_cmd("value=500");
	flb_cmd("fail=preserve,5,1");
	clear_events();
	sa = luo_must_create_session(dev, "flb-a");
	a1 = new_object(1);
	check_ret(luo_preserve_fd(sa, a1, 1), -EIO,
		  "preserve: the FLB's preserve fails with EIO");
	ok = event_count("flb_preserve") == 1 && event_count("preserve") == 0 &&
	     luo_file_count(sa) == 0 && flb_out_is("out=none\n", 0) &&
	     flb_is("outgoing", "handlers=2 files=0");
	result(ok, "the file's preserve never ran, nothing is preserved");

	/* First file preserves the FLB, last unpreserve releases it. */
	ok = preserve(sa, a1, 1) && event_count("flb_preserve") == 2 &&
	     flb_out_is("out=500\n", 1) &&
	     flb_is("outgoing", "handlers=2 files=1");
	result(ok, "retry: the FLB is preserved with the first file");
	ok = !luo_unpreserve_fd(sa, 1) && event_count("flb_unpreserve") == 1 &&
	     flb_out_is("out=none\n", 0) &&
	     flb_is("outgoing", "handlers=2 files=0");
	result(ok, "unpreserving the last file unpreserves the FLB");
	clear_events();
	ok = preserve(sa, a1, 1) && event_count("flb_preserve") == 1;
	result(ok, "preserve again: the FLB is preserved again");

	/* Shared: a ghost file in another session takes a reference. */
	sb = luo_must_create_session(dev, "flb-b");
	b1 = new_object(2);
	object_cmd(b1, "ghost=1");
	ok = preserve(sb, b1, 1) && event_count("flb_preserve") == 1 &&
	     flb_is("outgoing", "handlers=2 files=2");
	result(ok, "a ghost-handler file shares the preserved FLB");
	a2 = new_object(3);
	sc = luo_must_create_session(dev, "flb-c");
	c1 = new_object(4);
	ok = preserve(sa, a2, 2) && preserve(sc, c1, 1) &&
	     flb_is("outgoing", "handlers=2 files=4");
	result(ok, "two more files: 4 references");
	ok = !luo_unpreserve_fd(sa, 2) && !close(sc) &&
	     flb_is("outgoing", "handlers=2 files=2") &&
	     event_count("flb_unpreserve") == 0;
	result(ok, "unpreserve one, close a session: 2 references, still preserved");
	check_ret(luo_write_file(LUO_TEST_GHOST, "0"), -EBUSY,
		  "the ghost handler cannot go while its file is preserved");

	/* The FLB freezes after the files; its failure fails the reboot. */
	flb_cmd("value=600");
	flb_cmd("fail=freeze,5,1");
	clear_events();
	ret = next_stage();
	ksft_print_msg("%s exited %d\n", LUO_NEXT_STAGE, ret);
	result(ret > 0 && ret < 127, "%s fails when the FLB fails to freeze",
	       LUO_NEXT_STAGE);
	ev = events();
	ok = luo_event_find(ev, "flb_freeze", 600, 0) >
	     luo_event_find(ev, "freeze", 1, 0) &&
	     luo_event_find(ev, "flb_freeze", 600, 0) >
	     luo_event_find(ev, "freeze", 2, 0) &&
	     luo_event_find(ev, "freeze", 2, 0) >= 0 &&
	     luo_event_count(ev, "unfreeze", 1) == 1 &&
	     luo_event_count(ev, "unfreeze", 2) == 1 &&
	     luo_event_values(ev, "flb_unfreeze", NULL, 0) == 0;
	if (!ok)
		dump_events(ev, NULL);
	free(ev);
	result(ok, "FLB frozen after both files; files unfrozen after its failure");
	/* The failed freeze did not write 600: the next one does. */
	result(flb_is("outgoing", "handlers=2 files=2") &&
	       flb_out_is("out=500\n", 1) && luo_file_count(sa) == 1 &&
	       luo_file_count(sb) == 1,
	       "everything still preserved after the failed reboot");
	close(a2);
	close(c1);

	/* Crosses the kexec in the FLB's state: its first retrieve fails. */
	flb_cmd("fail=retrieve,5,1");
	luo_kexec_next();
}

static void flb_1(void)
{
	int sa, sb, fd;
	bool ok;

	ksft_set_plan(14);
	result(flb_is("incoming", "files=2 pending"),
	       "incoming FLB: 2 dependent files, not retrieved");
	require(!luo_test_enable_ghost(), "register the ghost handler");
	sa = retrieve_session("flb-a");
	require(sa >= 0, "retrieve session flb-a");
	clear_events();
	check_ret(luo_retrieve_fd(sa, 1, &fd), -EIO,
		  "the file's retrieve fails with the FLB's retrieve");
	result(flb_is("incoming", "files=2 pending"),
	       "the FLB is still to be retrieved");
	ok = retrieve_value(sa, 1, 1, &fd) &&
	     event_count("flb_retrieve") == 2 &&
	     flb_is("incoming", "files=2 retrieved");
	result(ok, "retry: file and FLB (value 600) retrieved");
	ok = !luo_test_flb_cmd("get") && event_count("flb_retrieve") == 2;
	result(ok, "a subsystem gets the retrieved FLB without a new retrieve");
	ok = !luo_finish(sa) && event_count("finish") == 1 &&
	     event_count("flb_finish") == 0 &&
	     flb_is("incoming", "files=1 retrieved");
	result(ok, "finish flb-a: the FLB stays, one file depends on it");

	sb = retrieve_session("flb-b");
	require(sb >= 0, "retrieve session flb-b");
	clear_events();
	ok = !luo_finish(sb);
	result(ok, "finish flb-b without retrieving its file");
	{
		char *ev = events();

		ok = luo_event_find(ev, "finish", 2, 0) >= 0 &&
		     luo_event_find(ev, "flb_finish", 600, 0) >
		     luo_event_find(ev, "finish", 2, 0) &&
		     luo_event_values(ev, "flb_finish", NULL, 0) == 1;
		if (!ok)
			dump_events(ev, NULL);
		free(ev);
	}
	result(ok, "the FLB is finished once, after its last file");
	result(flb_is("incoming", "files=0 finished") && luo_test_flb_live() == 0,
	       "FLB finished, its page released");
	check_ret(luo_test_flb_cmd("get"), -ENOENT,
		  "a finished FLB cannot be got: ENOENT");
	result(live_is(0), "no test objects live");
	ksft_finished();
}

/*
 * flb-unretrieved: nobody asks for the FLB; finishing its files finishes
 * it from its serialized state alone.
 */
static void flb_unretrieved_0(void)
{
	int sfd, a, b;
	bool ok;

	ksft_set_plan(3);
	flb_cmd("value=700");
	sfd = luo_must_create_session(dev, "flb-u");
	a = new_object(7);
	b = new_object(8);
	ok = preserve(sfd, a, 1) && preserve(sfd, b, 2);
	result(ok, "preserve 2 files");
	result(flb_out_is("out=700\n", 1), "FLB preserved with value 700");
	luo_kexec_next();
}

static void flb_unretrieved_1(void)
{
	static const unsigned long long order[] = { 8, 7 };
	int sfd;
	bool ok;

	ksft_set_plan(6);
	result(flb_is("incoming", "files=2 pending"),
	       "incoming FLB: 2 dependent files");
	sfd = retrieve_session("flb-u");
	require(sfd >= 0, "retrieve session flb-u");
	clear_events();
	check_ret(luo_finish(sfd), 0, "finish without retrieving anything");
	ok = events_are("finish", order, 2) &&
	     events_are("flb_finish_unretrieved", (unsigned long long[]){ 700 },
			1) &&
	     event_count("flb_retrieve") == 0;
	result(ok, "files finished, then the FLB, never retrieved");
	result(flb_is("incoming", "files=0 finished") &&
	       luo_test_flb_live() == 0 && live_is(0),
	       "everything released");
	check_ret(luo_test_flb_cmd("get"), -ENOENT, "get after finish: ENOENT");
	ksft_finished();
}

/* flb-first-use: a subsystem retrieves the FLB before any file does. */
static void flb_first_use_0(void)
{
	int sfd, a;

	ksft_set_plan(2);
	flb_cmd("value=900");
	sfd = luo_must_create_session(dev, "flb-f");
	a = new_object(9);
	result(preserve(sfd, a, 1), "preserve a file");
	luo_kexec_next();
}

static void flb_first_use_1(void)
{
	int sfd, fd;
	bool ok;

	ksft_set_plan(5);
	clear_events();
	ok = !luo_test_flb_cmd("get") &&
	     events_are("flb_retrieve", (unsigned long long[]){ 900 }, 1) &&
	     flb_is("incoming", "files=1 retrieved");
	result(ok, "a subsystem retrieves the FLB first");
	sfd = retrieve_session("flb-f");
	require(sfd >= 0, "retrieve session flb-f");
	ok = retrieve_value(sfd, 1, 9, &fd) && event_count("flb_retrieve") == 1;
	result(ok, "the file's retrieve reuses it");
	ok = !luo_finish(sfd) &&
	     events_are("flb_finish", (unsigned long long[]){ 900 }, 1);
	result(ok, "finish: the FLB is finished once");
	result(luo_test_flb_live() == 0 && flb_is("incoming", "files=0 finished"),
	       "FLB released");
	ksft_finished();
}

/*
 * flb-early: the next kernel asks for the FLB at early_initcall, before the
 * incoming state is read (EAGAIN, not "none"), and at rootfs_initcall,
 * where an IOMMU driver adopts its tables, before any handler exists: it
 * gets the object there.  The handler that binds the FLB later, the
 * subsystem's own get, the file's retrieve and the finish all find that
 * same object, retrieved once and finished once.
 * flb-early-fail: the same, the early retrieve failing (EIO): nothing is
 * consumed, and the next get retrieves it.
 */
static void flb_early_stage0(unsigned long long value, const char *fail)
{
	char cmd[32];
	int sfd, a;

	ksft_set_plan(2);
	snprintf(cmd, sizeof(cmd), "value=%llu", value);
	flb_cmd(cmd);
	if (fail)
		flb_cmd(fail);
	sfd = luo_must_create_session(dev, "flb-e");
	a = new_object(19);
	result(preserve(sfd, a, 1), "preserve a file");
	luo_kexec_next_with("liveupdate_test_flb_early=1");
}

static void flb_early_stage1(unsigned long long value, int err)
{
	unsigned long long v[] = { value, value };
	int sfd, fd;
	bool ok;

	ksft_set_plan(6);
	ok = events_are("flb_too_early", (unsigned long long[]){ EAGAIN }, 1) &&
	     events_are("flb_retrieve", v, 1);
	if (err)
		ok &= events_are("flb_early_error",
				 (unsigned long long[]){ err }, 1) &&
		      !event_count("flb_early") &&
		      flb_is("incoming", "files=1 pending");
	else
		ok &= events_are("flb_early", v, 1) &&
		      !event_count("flb_early_error") &&
		      flb_is("incoming", "files=1 retrieved");
	result(ok, "%s; EAGAIN at early_initcall",
	       err ? "the retrieve at rootfs_initcall fails, nothing consumed" :
		     "retrieved at rootfs_initcall before any handler");
	ok = !luo_test_flb_cmd("get") &&
	     events_are("flb_retrieve", v, err ? 2 : 1) &&
	     flb_is("incoming", "files=1 retrieved");
	result(ok, "%s", err ? "the subsystem's get retrieves it" :
			 "the FLB bound later is the one retrieved early");
	clear_events();
	sfd = retrieve_session("flb-e");
	require(sfd >= 0, "retrieve session flb-e");
	ok = retrieve_value(sfd, 1, 19, &fd) && !event_count("flb_retrieve");
	result(ok, "the file's retrieve reuses it");
	ok = !luo_finish(sfd) && events_are("flb_finish", v, 1);
	result(ok, "finish: the FLB is finished once");
	result(luo_test_flb_live() == 0 && flb_is("incoming", "files=0 finished"),
	       "FLB released");
	ksft_finished();
}

static void flb_early_0(void)
{
	flb_early_stage0(901, NULL);
}

static void flb_early_1(void)
{
	flb_early_stage1(901, 0);
}

static void flb_early_fail_0(void)
{
	flb_early_stage0(902, "fail=retrieve,5,1");
}

static void flb_early_fail_1(void)
{
	flb_early_stage1(902, EIO);
}

/*
 * deps: a file whose state refers to another one (as an iommufd does the
 * memfds it maps).  It can be preserved only once that one is, in the same
 * session; that one cannot be unpreserved while it is.  In the next kernel
 * its retrieve retrieves that one first, which userspace then gets by its
 * token as the same file, retrieved once; the finish releases both.
 * That one stays held while a file that refers to it is pending: retrieved
 * first (session deps-held), its handler holds its state until the other
 * is retrieved; if the other cannot be released (deps-orphan: its handler,
 * the ghost one, is gone), FINISH leaves its page in place.
 */
static void deps_pair(const char *name, unsigned long long value, bool ghost)
{
	int sfd = luo_must_create_session(dev, name);
	int a = new_object(value), b = new_object(value + 1);
	char cmd[32];

	snprintf(cmd, sizeof(cmd), "dep=%d", a);
	object_cmd(b, cmd);
	if (ghost)
		object_cmd(b, "ghost=1");
	require(preserve(sfd, a, 1) && preserve(sfd, b, 2),
		"session %s: test file %llu, and %llu%s referring to it", name,
		value, value + 1, ghost ? " (ghost handler)" : "");
	close(a);
	close(b);
}

static void deps_0(void)
{
	int sfd, other, a, b, c, d, e, live;
	char cmd[32];
	bool ok;

	ksft_set_plan(11);
	sfd = luo_must_create_session(dev, "deps");
	other = luo_must_create_session(dev, "deps-other");
	a = new_object(31);
	b = new_object(32);
	snprintf(cmd, sizeof(cmd), "dep=%d", a);
	object_cmd(b, cmd);
	c = new_object(33);
	ok = luo_test_cmd(c, "dep=%d", b) == -ELOOP &&
	     luo_test_cmd(c, "dep=%d", c) == -ELOOP &&
	     luo_test_cmd(b, "dep=%d", c) == -EBUSY &&
	     luo_test_cmd(c, "dep=%d", sfd) == -EINVAL;
	result(ok, "a file refers to one test file that refers to none: ELOOP, EBUSY, EINVAL");

	clear_events();
	ok = luo_preserve_fd(sfd, b, 2) == -ENOENT &&
	     events_are("dep_error", (unsigned long long[]){ ENOENT }, 1);
	result(ok, "preserved before the file it refers to: ENOENT");
	ok = preserve(other, a, 1) && luo_preserve_fd(sfd, b, 2) == -ENOENT &&
	     !luo_unpreserve_fd(other, 1);
	result(ok, "that file in another session: ENOENT");

	object_cmd(b, "fail=preserve,5,1");
	ok = preserve(sfd, a, 1) && luo_preserve_fd(sfd, b, 2) == -EIO &&
	     !luo_unpreserve_fd(sfd, 1);
	result(ok, "a preserve that fails after the reference drops it");

	ok = preserve(sfd, a, 1) && preserve(sfd, b, 2) &&
	     luo_unpreserve_fd(sfd, 1) == -EBUSY;
	result(ok, "preserved after it; then it cannot be unpreserved: EBUSY");
	ok = !luo_unpreserve_fd(sfd, 2) && !luo_unpreserve_fd(sfd, 1) &&
	     preserve(sfd, a, 1) && preserve(sfd, b, 2);
	result(ok, "unpreserved in turn, and preserved again");

	/* A session closed with a file referring to another: both go. */
	live = luo_test_live();
	d = new_object(34);
	e = new_object(35);
	snprintf(cmd, sizeof(cmd), "dep=%d", d);
	object_cmd(e, cmd);
	ok = preserve(other, d, 1) && preserve(other, e, 2) &&
	     luo_test_live() == live + 2;
	clear_events();
	close(other);
	ok &= luo_test_live() == live &&
	      events_are("unpreserve", (unsigned long long[]){ 35, 34 }, 2);
	result(ok, "closing the session unpreserves it, then the file it refers to");
	close(d);
	close(e);

	require(!luo_test_enable_ghost(), "register the ghost handler");
	deps_pair("deps-held", 41, false);
	deps_pair("deps-orphan", 51, true);
	luo_kexec_next();
}

static void deps_held_1(void)
{
	int sfd = retrieve_session("deps-held"), fa = -1, fb = -1, live;
	bool ok;

	clear_events();
	ok = sfd >= 0 && retrieve_value(sfd, 1, 41, &fa) &&
	     events_are("held", (unsigned long long[]){ 41 }, 1) &&
	     events_are("dependents_done", NULL, 0);
	result(ok, "retrieved before the file that refers to it: held");
	ok = retrieve_value(sfd, 2, 42, &fb) &&
	     events_are("dependents_done", (unsigned long long[]){ 41 }, 1);
	result(ok, "that file retrieved: its handler is told it is no longer held");
	live = luo_test_live();
	ok = !luo_finish(sfd) &&
	     events_are("finish", (unsigned long long[]){ 42, 41 }, 2) &&
	     events_are("kept", NULL, 0) && luo_test_live() == live - 2;
	result(ok, "finish frees both pages");
	close(fa);
	close(fb);
	close(sfd);
}

static void deps_orphan_1(void)
{
	int sfd = retrieve_session("deps-orphan"), fa = -1, fb = -1, live;
	char *log;
	bool ok;

	clear_events();
	ok = sfd >= 0 && retrieve_value(sfd, 1, 51, &fa) &&
	     events_are("held", (unsigned long long[]){ 51 }, 1) &&
	     luo_retrieve_fd(sfd, 2, &fb) == -EOPNOTSUPP;
	result(ok, "the file that refers to it has no handler in this kernel (EOPNOTSUPP); it is held");
	live = luo_test_live();
	ok = !luo_finish(sfd) &&
	     events_are("finish", (unsigned long long[]){ 51 }, 1) &&
	     events_are("kept", (unsigned long long[]){ 51 }, 1) &&
	     events_are("dependents_done", NULL, 0) &&
	     luo_test_live() == live;
	log = luo_kernel_log();
	ok = ok && log &&
	     strstr(log, "token 1 (liveupdate-test) stays in place until the next update");
	free(log);
	result(ok, "finish leaves it in place, and says so: its page is not freed");
	close(fa);
	close(sfd);
}

static void deps_1(void)
{
	int sfd, fa, fb;
	bool ok;

	ksft_set_plan(10);
	sfd = retrieve_session("deps");
	require(sfd >= 0, "retrieve session deps");
	clear_events();
	ok = retrieve_value(sfd, 2, 32, &fb) &&
	     events_are("retrieve", (unsigned long long[]){ 31, 32 }, 2) &&
	     events_are("dep", (unsigned long long[]){ 31 }, 1) &&
	     events_are("held", (unsigned long long[]){ 31 }, 1) &&
	     events_are("dependents_done", (unsigned long long[]){ 31 }, 1);
	result(ok, "retrieving it retrieves the file it refers to, held until it is back");
	ok = luo_file_state(sfd, 1) == LIVEUPDATE_FILE_RETRIEVED &&
	     luo_file_state(sfd, 2) == LIVEUPDATE_FILE_RETRIEVED;
	result(ok, "both are retrieved");
	ok = retrieve_value(sfd, 1, 31, &fa) && event_count("retrieve") == 2;
	result(ok, "that file, by its token: the same, not retrieved again");
	ok = !luo_finish(sfd) &&
	     events_are("finish", (unsigned long long[]){ 32, 31 }, 2);
	result(ok, "finish: it first, then the file it refers to");
	deps_held_1();
	deps_orphan_1();
	ksft_finished();
}

/*
 * reply-fault: LIST_SESSIONS and RETRIEVE_FD write to userspace with no LUO
 * lock held.  Each is stalled in a userfaultfd fault on its reply (the
 * names, a missing page; the RETRIEVE_FD struct, write-protected as it is
 * read first) while a probe takes what a lock held there would block: the
 * state lock for writing, as the reboot does (the debugfs view takes it
 * too), or the session list (LIST_SESSIONS) or the session (QUERY).  Each
 * probe must end within LUO_STALL_PROBE_MS; then the reply is let through
 * and must be right.
 */
#define RF_FILES	2

static void reply_fault_0(void)
{
	bool ok = true;
	int sfd, obj, i;

	ksft_set_plan(2);
	sfd = luo_must_create_session(dev, "reply-fault");
	for (i = 0; i < RF_FILES; i++) {
		obj = new_object(910 + i);
		ok &= preserve(sfd, obj, i + 1);
		close(obj);
	}
	result(ok, "preserve %d files into session reply-fault", RF_FILES);
	luo_kexec_next();
}

struct rf_list {
	void *names;
	__u32 count;
};

static int rf_list(void *arg)
{
	struct rf_list *l = arg;

	l->count = 4;
	return luo_list_sessions(dev, l->names, &l->count);
}

struct rf_retrieve {
	int sfd;
	void *arg;
};

static int rf_retrieve(void *arg)
{
	struct rf_retrieve *r = arg;

	return ioctl(r->sfd, LIVEUPDATE_SESSION_RETRIEVE_FD, r->arg) ? -errno : 0;
}

static int rf_query(void *arg)
{
	int n = luo_file_count(*(int *)arg);

	return n < 0 ? n : 0;
}

/* Why a case cannot run here (no userfaultfd or debugfs), or NULL. */
static const char *rf_cannot(bool wp, bool write_side)
{
	static char why[128];
	struct luo_stall st;
	int ret;

	if (write_side && access(LUO_DEBUGFS_SESSIONS, R_OK))
		return LUO_DEBUGFS_SESSIONS " missing (CONFIG_DEBUG_FS)";
	ret = luo_stall_init(&st, wp, why, 0);
	if (!ret) {
		luo_stall_fini(&st);
		return NULL;
	}
	snprintf(why, sizeof(why), "no userfaultfd%s (CONFIG_USERFAULTFD): %s",
		 wp ? " write-protection" : "", strerror(-ret));
	return why;
}

/*
 * Stall @cmd (@what) in its write to @st's page and run @probe (@desc):
 * true if the probe went on meanwhile and both succeeded.
 */
static bool rf_stalled(struct luo_stall *st, const char *what,
		       int (*cmd)(void *arg), void *cmd_arg, const char *desc,
		       int (*probe)(void *arg), void *probe_arg)
{
	int ret, cmd_ret, probe_ret;

	ret = luo_stall_check(st, cmd, cmd_arg, probe, probe_arg, &cmd_ret,
			      &probe_ret);
	if (ret < 0)
		ksft_print_msg("%s did not stall in its write: %s\n", what,
			       strerror(-ret));
	else if (!ret)
		ksft_print_msg("%s blocked while %s stalled in its write\n",
			       desc, what);
	else if (probe_ret)
		ksft_print_msg("%s: %s\n", desc, strerror(-probe_ret));
	if (cmd_ret)
		ksft_print_msg("%s: %s\n", what, strerror(-cmd_ret));
	return ret == 1 && !probe_ret && !cmd_ret;
}

static void reply_fault_1(void)
{
	static const char *const write_side = "the state lock for writing";
	struct liveupdate_session_retrieve_fd arg = { .size = sizeof(arg) };
	struct liveupdate_session_retrieve_fd *reply;
	char names[4][LUO_NAME_LEN];
	struct rf_list list = {}, list_probe = { .names = names };
	struct rf_retrieve rr = {};
	struct luo_stall st;
	const char *why;
	int sfd, fd, ret, i;
	bool ok;

	ksft_set_plan(2 + 1 + RF_FILES + 1);
	for (i = 0; i < 2; i++) {
		why = rf_cannot(false, !i);
		if (why) {
			ksft_test_result_skip("LIST_SESSIONS stalled: %s\n", why);
			continue;
		}
		ret = luo_stall_init(&st, false, NULL, 0);
		if (ret)
			luo_bail("userfaultfd: %s", strerror(-ret));
		list.names = st.page;
		ok = rf_stalled(&st, "LIST_SESSIONS", rf_list, &list,
				i ? "LIST_SESSIONS" : write_side,
				i ? rf_list : luo_probe_write_side,
				i ? &list_probe : NULL);
		ok = ok && list.count == 1 && !strcmp(st.page, "reply-fault");
		luo_stall_fini(&st);
		result(ok, "LIST_SESSIONS stalled writing the names: %s goes on",
		       i ? "LIST_SESSIONS" : write_side);
	}

	sfd = retrieve_session("reply-fault");
	require(sfd >= 0, "retrieve session reply-fault");
	for (i = 0; i < RF_FILES; i++) {
		why = rf_cannot(true, !i);
		if (why) {
			ksft_test_result_skip("RETRIEVE_FD stalled: %s\n", why);
			continue;
		}
		arg.token = i + 1;
		arg.fd = -1;
		ret = luo_stall_init(&st, true, &arg, sizeof(arg));
		if (ret)
			luo_bail("userfaultfd: %s", strerror(-ret));
		rr.sfd = sfd;
		rr.arg = st.page;
		ok = rf_stalled(&st, "RETRIEVE_FD", rf_retrieve, &rr,
				i ? "QUERY of the session" : write_side,
				i ? rf_query : luo_probe_write_side,
				i ? &sfd : NULL);
		reply = st.page;
		fd = reply->fd;
		ok = ok && fd >= 0 && luo_test_has_value(fd, 910 + i);
		if (fd >= 0)
			close(fd);
		luo_stall_fini(&st);
		result(ok, "RETRIEVE_FD of token %d stalled writing its reply: %s goes on",
		       i + 1, i ? "QUERY of the session" : write_side);
	}
	result(!luo_finish(sfd), "finish session reply-fault");
	ksft_finished();
}

/* ---- preload: the handlers' background preload after boot ---- */

/*
 * The test handler's preload waits for the test to release it, so that
 * what runs while a file is being preloaded is known, not timed.  The
 * tracepoint is on from boot, where the kernel has tracing.
 */
#define PRELOAD_ARG	"liveupdate_test_preload_hold=1 " \
			"trace_event=liveupdate:liveupdate_preload"
#define PRELOAD_RELEASE	LUO_TEST_DEBUGFS "/preload_release"
#define PRELOAD_ALL	"18446744073709551615"
#define TRACE_DIR	"/sys/kernel/tracing"
#define TRACED		"liveupdate_preload: "

static const unsigned long long preload_a[] = { 501, 502, 503 };
static const unsigned long long preload_b[] = { 511, 512 };

static void preload_0(void)
{
	int sfd_a, sfd_b, fd, i;
	bool ok = true;

	ksft_set_plan(1);
	sfd_a = luo_must_create_session(dev, "preload-a");
	sfd_b = luo_must_create_session(dev, "preload-b");
	for (i = 0; i < 3; i++) {
		fd = new_object(preload_a[i]);
		ok &= preserve(sfd_a, fd, i + 1);
		close(fd);
	}
	for (i = 0; i < 2; i++) {
		fd = new_object(preload_b[i]);
		ok &= preserve(sfd_b, fd, i + 1);
		close(fd);
	}
	result(ok, "3 files preserved in session preload-a, 2 in preload-b");
	luo_kexec_next_with(PRELOAD_ARG);
}

/* The line number of event "@op @value" in @ev, or -1. */
static int event_at(const char *ev, const char *op, unsigned long long value)
{
	return luo_event_find(ev, op, value, 0);
}

/* Is event "@op @value" in the log now? */
static bool has_event(const char *op, unsigned long long value)
{
	char *ev = events();
	bool has = event_at(ev, op, value) >= 0;

	free(ev);
	return has;
}

/* Waits for event "@op @value" (the suite's timeout bounds the wait). */
static void wait_event_of(const char *op, unsigned long long value)
{
	for (int i = 0; !has_event(op, value); i++) {
		if (i && !(i % 100))
			ksft_print_msg("still waiting for event \"%s %llu\"\n",
				       op, value);
		usleep(50000);
	}
}

static void preload_release(unsigned long long value)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", value);
	if (luo_write_file(PRELOAD_RELEASE, buf))
		luo_bail("cannot write %s", PRELOAD_RELEASE);
}

/* A RETRIEVE_FD or FINISH in a thread of its own, which may block. */
struct preload_call {
	pthread_t thread;
	int sfd;
	__u64 token;	/* 0: FINISH */
	int fd, ret, tid, done;
};

static void *preload_call_main(void *arg)
{
	struct preload_call *c = arg;

	__atomic_store_n(&c->tid, (int)syscall(SYS_gettid), __ATOMIC_RELEASE);
	c->fd = -1;
	c->ret = c->token ? luo_retrieve_fd(c->sfd, c->token, &c->fd) :
			    luo_finish(c->sfd);
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* The scheduler state of thread @tid ('D' while it waits in the kernel). */
static char thread_state(int tid)
{
	char path[64], *stat, *paren, state = '?';

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
	stat = luo_read_file(path);
	paren = stat ? strrchr(stat, ')') : NULL;
	if (paren && paren[1] == ' ')
		state = paren[2];
	free(stat);
	return state;
}

/*
 * Starts @c, and waits until it either blocks in the kernel (true) or
 * returns (false).
 */
static bool preload_call_blocks(struct preload_call *c)
{
	if (pthread_create(&c->thread, NULL, preload_call_main, c))
		luo_bail("pthread_create");
	for (;;) {
		int tid = __atomic_load_n(&c->tid, __ATOMIC_ACQUIRE);

		if (__atomic_load_n(&c->done, __ATOMIC_ACQUIRE))
			return false;
		if (tid && thread_state(tid) == 'D')
			return true;
		usleep(10000);
	}
}

static void preload_1(void)
{
	struct preload_call ret502 = { .token = 2 }, fin_b = { 0 };
	int sfd_a, sfd_b, fd[3] = { -1, -1, -1 }, i;
	bool ok, blocked;
	char *ev;

	ksft_set_plan(8);
	sfd_a = retrieve_session("preload-a");
	sfd_b = retrieve_session("preload-b");
	require(sfd_a >= 0 && sfd_b >= 0,
		"retrieve sessions preload-a and preload-b");

	/* A retrieve does not wait for another file's preload. */
	wait_event_of("preload", 501);
	ok = retrieve_value(sfd_a, 3, 503, &fd[2]) &&
	     !has_event("preload_end", 501);
	result(ok, "RETRIEVE_FD of 503 while 501's preload is held: done at once");

	/* One of the file being preloaded waits for the preload to end. */
	preload_release(501);
	wait_event_of("preload", 502);
	ret502.sfd = sfd_a;
	blocked = preload_call_blocks(&ret502);
	preload_release(502);
	pthread_join(ret502.thread, NULL);
	fd[1] = ret502.fd;
	ev = events();
	ok = blocked && !ret502.ret && has_value(fd[1], 502) &&
	     event_at(ev, "preload_end", 502) >= 0 &&
	     event_at(ev, "preload_end", 502) < event_at(ev, "retrieve", 502);
	if (!ok)
		dump_events(ev, NULL);
	free(ev);
	result(ok, "RETRIEVE_FD of 502 while its preload is held: blocks until the preload ends, then retrieves it");

	/* A finish waits for the preload in progress, and stops the rest. */
	wait_event_of("preload", 511);
	fin_b.sfd = sfd_b;
	blocked = preload_call_blocks(&fin_b);
	preload_release(511);
	pthread_join(fin_b.thread, NULL);
	check_ret(fin_b.ret, 0, "FINISH of preload-b while 511's preload is held");
	preload_release(~0ULL);
	ev = events();
	ok = blocked && event_at(ev, "preload_end", 511) >= 0 &&
	     event_at(ev, "preload_end", 511) < event_at(ev, "finish", 511) &&
	     event_at(ev, "finish", 512) >= 0 &&
	     event_at(ev, "preload", 512) < 0 &&
	     event_at(ev, "preload", 503) < 0;
	if (!ok)
		dump_events(ev, NULL);
	free(ev);
	result(ok, "FINISH blocked until 511's preload ended, then finished both; 512, and 503 retrieved before its turn, never preloaded");

	ok = retrieve_value(sfd_a, 1, 501, &fd[0]);
	check_ret(luo_finish(sfd_a), 0, "FINISH of preload-a");
	for (i = 0; i < 3; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	close(sfd_a);
	close(sfd_b);
	result(ok && live_is(0), "501 retrieved; finished, no test object live");

	/* The files preloaded, and only they, in the trace. */
	mount("tracefs", TRACE_DIR, "tracefs", 0, NULL);
	if (access(TRACE_DIR "/events/liveupdate", F_OK)) {
		ksft_test_result_skip("liveupdate_preload trace events: no tracing in this kernel (the debug kernel has it)\n");
	} else {
		ev = luo_read_file(TRACE_DIR "/trace");
		ok = ev &&
		     strstr(ev, TRACED "session=preload-a token=1 compatible=liveupdate-test") &&
		     strstr(ev, TRACED "session=preload-a token=2 ") &&
		     strstr(ev, TRACED "session=preload-b token=1 ") &&
		     !strstr(ev, TRACED "session=preload-a token=3 ") &&
		     !strstr(ev, TRACED "session=preload-b token=2 ");
		if (!ok && ev)
			ksft_print_msg("trace:\n%s\n", ev);
		free(ev);
		result(ok, "liveupdate_preload fired for 501, 502 and 511, and for no other file");
	}
	ksft_finished();
}

/*
 * timeline: the steps both kernels stamp, on one axis.  A reboot that
 * fails (a freeze) comes first: the timeline the next kernel reads is the
 * one of the reboot that went through.
 */
#define TL_MAX	64
#define TL_DEBUGFS	"/sys/kernel/debug/liveupdate/timeline"

static struct liveupdate_timeline_step tl[TL_MAX];
static __u32 tl_n, tl_flags;
/* CLOCK_REALTIME right before the update, kept in the memfd. */
static struct timespec tl_then;

static long long ts_ns(const struct timespec *ts)
{
	return ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static bool tl_read(void)
{
	int ret;

	memset(tl, 0xa5, sizeof(tl));
	tl_n = TL_MAX;
	ret = luo_get_timeline(dev, tl, &tl_n, &tl_flags);
	if (ret || tl_n > TL_MAX) {
		ksft_print_msg("GET_TIMELINE: %s, %u steps\n", strerror(-ret),
			       tl_n);
		return false;
	}
	return true;
}

static void tl_dump(void)
{
	for (__u32 i = 0; i < tl_n; i++)
		ksft_print_msg("step %u: %lld..%lld ns count %u %s\n",
			       tl[i].step, (long long)tl[i].start_ns,
			       (long long)tl[i].end_ns, tl[i].count,
			       (char *)tl[i].label);
}

/* The index of step @step (with @label, if given) from @from, or -1. */
static int tl_find(__u32 step, const char *label, int from)
{
	for (int i = from; i >= 0 && i < (int)tl_n; i++)
		if (tl[i].step == step &&
		    (!label || !strcmp((char *)tl[i].label, label)))
			return i;
	return -1;
}

static int tl_count(__u32 step)
{
	int n = 0;

	for (__u32 i = 0; i < tl_n; i++)
		n += tl[i].step == step;
	return n;
}

/* Every label NUL-padded: the kernel copies nothing else out. */
static bool tl_padded(void)
{
	for (__u32 i = 0; i < tl_n && i < TL_MAX; i++) {
		size_t len = strnlen((char *)tl[i].label, sizeof(tl[i].label));

		for (size_t j = len; j < sizeof(tl[i].label); j++)
			if (tl[i].label[j])
				return false;
	}
	return true;
}

/* Steps in the order they started, none ending before it starts. */
static bool tl_ordered(void)
{
	for (__u32 i = 0; i < tl_n; i++) {
		if (tl[i].end_ns < tl[i].start_ns)
			return false;
		if (i && tl[i].start_ns < tl[i - 1].start_ns)
			return false;
	}
	return true;
}

static void timeline_0(void)
{
	static const char * const load[] = { LUO_NEXT_STAGE, "-l", NULL };
	struct liveupdate_ioctl_get_timeline bad = {
		.size = sizeof(bad), .reserved = 1,
	};
	struct liveupdate_timeline_step one[2];
	int sfd, obj[2], mfd, ret;
	__u32 n = 0, flags = 0;
	char buf[4096];
	bool ok;

	ksft_set_plan(6);
	/* A cold boot: only this kernel's steps. */
	ok = tl_read() && !tl_flags && tl_ordered() &&
	     tl_find(LIVEUPDATE_TL_READY, NULL, 0) >= 0 &&
	     tl_find(LIVEUPDATE_TL_OPEN, NULL, 0) >
	     tl_find(LIVEUPDATE_TL_READY, NULL, 0) &&
	     tl_find(LIVEUPDATE_TL_REBOOT, NULL, 0) < 0 &&
	     tl_find(LIVEUPDATE_TL_KHO_RESERVE, NULL, 0) < 0 &&
	     tl_find(LIVEUPDATE_TL_RESTORE, NULL, 0) < 0 && tl_padded();
	if (!ok)
		tl_dump();
	result(ok, "cold boot: READY then OPEN, no previous kernel, nothing restored, labels padded");

	check_ret(ioctl(dev, LIVEUPDATE_IOCTL_GET_TIMELINE, &bad) ? -errno : 0,
		  -EINVAL, "GET_TIMELINE with reserved set: EINVAL");
	memset(one, 0xa5, sizeof(one));
	n = 1;
	ret = luo_get_timeline(dev, one, &n, &flags);
	ok = !ret && n == tl_n && one[0].step == tl[0].step &&
	     one[1].step == 0xa5a5a5a5;
	result(ok, "room for one step: one written, the count of all returned");
	n = 0;
	ret = luo_get_timeline(dev, (void *)1, &n, &flags);
	result(!ret && n == tl_n, "room for none: only the count (%u)", n);

	sfd = luo_must_create_session(dev, "timeline");
	obj[0] = new_object(71);
	obj[1] = new_object(72);
	mfd = memfd_create("timeline", 0);
	memset(buf, 0x5a, sizeof(buf));
	ok = mfd >= 0 && write(mfd, buf, sizeof(buf)) == sizeof(buf) &&
	     preserve(sfd, obj[0], 1) && preserve(sfd, mfd, 2) &&
	     preserve(sfd, obj[1], 3);
	require(ok, "preserve two test files and a memfd");

	/* Loaded first: loading takes seconds under TCG, not in the update. */
	ret = luo_run(load);
	if (ret)
		luo_bail("%s -l: %d", LUO_NEXT_STAGE, ret);
	/* A reboot that fails leaves nothing in the next kernel's timeline. */
	ok = !luo_test_set_fail(obj[1], "freeze", EIO, 0);
	check_ret(ok ? luo_reboot_kexec() : -EINVAL, -EIO,
		  "a reboot whose freeze fails");
	object_cmd(obj[1], "fail=none");
	/* For the next kernel to check its timeline against. */
	clock_gettime(CLOCK_REALTIME, &tl_then);
	if (pwrite(mfd, &tl_then, sizeof(tl_then), 0) != sizeof(tl_then))
		luo_bail("cannot write the time into the memfd");
	ret = luo_reboot_kexec();
	ksft_test_result_fail("reboot into stage 1: %s\n", strerror(-ret));
	ksft_finished();
}

static void timeline_1(void)
{
	int reboot, prep, ft, fm, flb, wr, sd, jump, boot, kho, rest, ready,
	    open_, fin, sfd, fd[3], i;
	struct timespec mono, now;
	char *dbg, *line, *log;
	long long lines = 0;
	bool ok;

	/* A TSC this boot could not calibrate joins no clocks, rightly. */
	log = luo_kernel_log();
	if (tl_read() && !(tl_flags & LIVEUPDATE_TIMELINE_ONE_CLOCK) && log &&
	    strstr(log, "tsc: Marking TSC unstable"))
		ksft_exit_skip("the TSC was marked unstable in this boot: no joined clock to check\n");
	free(log);
	ksft_set_plan(11);
	require(tl_read(), "GET_TIMELINE after the update");
	ok = tl_flags == (LIVEUPDATE_TIMELINE_PREVIOUS |
			  LIVEUPDATE_TIMELINE_ONE_CLOCK) && tl_ordered() &&
	     tl_padded();
	if (!ok)
		tl_dump();
	result(ok, "both kernels on one clock, steps in the order they started");

	reboot = tl_find(LIVEUPDATE_TL_REBOOT, NULL, 0);
	prep = tl_find(LIVEUPDATE_TL_PREPARE, NULL, 0);
	ft = tl_find(LIVEUPDATE_TL_FREEZE, LUO_TEST_COMPATIBLE, 0);
	fm = tl_find(LIVEUPDATE_TL_FREEZE, "memfd", 0);
	flb = tl_find(LIVEUPDATE_TL_FREEZE_FLB, NULL, 0);
	wr = tl_find(LIVEUPDATE_TL_WRITE, NULL, 0);
	sd = tl_find(LIVEUPDATE_TL_SHUTDOWN, NULL, 0);
	jump = tl_find(LIVEUPDATE_TL_JUMP, NULL, 0);
	ok = reboot == 0 && tl[0].start_ns == 0 && prep > reboot &&
	     ft > prep && fm > ft && flb > fm && wr > flb && sd > wr &&
	     jump > sd && tl_count(LIVEUPDATE_TL_REBOOT) == 1 &&
	     tl_count(LIVEUPDATE_TL_FREEZE) == 2 &&
	     tl[ft].count == 2 && tl[fm].count == 1 && tl[flb].count == 2 &&
	     tl[wr].count == 3 && tl[jump].start_ns == tl[jump].end_ns &&
	     tl[ft].end_ns >= tl[fm].start_ns;
	if (!ok)
		tl_dump();
	result(ok, "old kernel: reboot, prepare, a freeze per handler (2 test files spanning the memfd), 2 FLBs, write of 3 files, shutdown, jump");

	boot = tl_find(LIVEUPDATE_TL_BOOT, NULL, 0);
	kho = tl_find(LIVEUPDATE_TL_KHO_RESERVE, NULL, 0);
	rest = tl_find(LIVEUPDATE_TL_RESTORE, NULL, 0);
	ready = tl_find(LIVEUPDATE_TL_READY, NULL, 0);
	open_ = tl_find(LIVEUPDATE_TL_OPEN, NULL, 0);
	ok = boot == jump + 1 && tl[boot].start_ns == tl[jump].start_ns &&
	     tl[boot].end_ns > tl[boot].start_ns &&
	     tl[boot].end_ns - tl[boot].start_ns < 60 * 1000000000LL &&
	     kho > boot && tl[kho].start_ns >= tl[boot].end_ns &&
	     rest > kho && tl[rest].count == 3 && ready > rest &&
	     open_ > ready;
	if (!ok)
		tl_dump();
	result(ok, "new kernel: boot from the jump, KHO reservation, restore of 3 files, ready, open");

	sfd = retrieve_session("timeline");
	require(sfd >= 0, "retrieve session timeline");
	ok = true;
	for (i = 0; i < 3; i++) {
		fd[i] = -1;
		ok &= !luo_retrieve_fd(sfd, i + 1, &fd[i]);
	}
	ok &= !luo_finish(sfd);
	result(ok, "retrieve the 3 files, finish");
	/*
	 * The join: the wall clock since the update began against the
	 * timeline's start of this kernel's clock plus CLOCK_MONOTONIC (both
	 * clocks start at boot).  The new kernel's wall clock comes from the
	 * RTC, whole seconds: hence the tolerance.
	 */
	clock_gettime(CLOCK_REALTIME, &now);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	ok = fd[1] >= 0 &&
	     pread(fd[1], &tl_then, sizeof(tl_then), 0) == sizeof(tl_then);
	if (ok) {
		long long wall = ts_ns(&now) - ts_ns(&tl_then);
		long long axis = tl[boot].end_ns + ts_ns(&mono);

		ksft_print_msg("wall clock since the update %lld ms, on the timeline %lld ms\n",
			       wall / 1000000, axis / 1000000);
		ok = llabs(wall - axis) < 1500000000LL;
	}
	result(ok, "the two kernels' clocks joined within 1.5 s of the wall clock");
	for (i = 0; i < 3; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	close(sfd);

	luo_wait_memfd_preloaded(1);
	require(tl_read(), "GET_TIMELINE after the finish");
	i = tl_find(LIVEUPDATE_TL_RETRIEVE_SESSION, NULL, 0);
	fin = tl_find(LIVEUPDATE_TL_FINISH, NULL, 0);
	open_ = tl_find(LIVEUPDATE_TL_OPEN, NULL, 0);
	ok = i > open_ && tl[i].count == 1 &&
	     tl_find(LIVEUPDATE_TL_RETRIEVE_FD, NULL, i) > i &&
	     tl[tl_find(LIVEUPDATE_TL_RETRIEVE_FD, NULL, i)].count == 3 &&
	     fin > i && tl[fin].count == 1 &&
	     tl[fin].end_ns >= tl[tl_find(LIVEUPDATE_TL_RETRIEVE_FD, NULL,
					  i)].end_ns &&
	     tl_find(LIVEUPDATE_TL_PRELOAD, NULL, 0) > 0 &&
	     tl[tl_find(LIVEUPDATE_TL_PRELOAD, NULL, 0)].count >= 1;
	if (!ok)
		tl_dump();
	result(ok, "retrieve-session (1), retrieve-fd (3), finish (1), and the memfd's preload");

	dbg = luo_read_file(TL_DEBUGFS);
	ok = dbg && strstr(dbg, "# previous kernel: yes, one clock: yes\n");
	for (line = dbg; ok && line && *line; line = strchr(line, '\n')) {
		line += *line == '\n';
		lines += *line && *line != '#';
	}
	ok = ok && lines == tl_n && strstr(dbg, " freeze 2 liveupdate-test\n") &&
	     strstr(dbg, " freeze 1 memfd\n") && strstr(dbg, " jump 0 -\n");
	if (!ok && dbg)
		ksft_print_msg("%s:\n%s", TL_DEBUGFS, dbg);
	free(dbg);
	result(ok, "debugfs timeline: the same %u steps", tl_n);
	result(live_is(0), "no test object live");
	ksft_finished();
}

/*
 * timeline-damage: the next kernel's reader of the timeline page, given a
 * page without the jump's cycle count (stage 1), a page as a later format
 * version would write it, every part larger (stage 2), and a page with a
 * step size too small (stage 3).  Damage is applied by the test kernel at
 * the jump (debugfs liveupdate/damage).
 */
#define DAMAGE_FILE	"/sys/kernel/debug/liveupdate/damage"

static void tl_damage_next(const char *what)
{
	char line[64];

	snprintf(line, sizeof(line), "timeline %s", what);
	require(!luo_write_file(DAMAGE_FILE, line), "damage the timeline: %s",
		what);
	luo_kexec_next();
}

/* The old kernel's steps of a reboot with nothing preserved. */
static bool tl_old_steps_intact(void)
{
	static const __u32 want[] = {
		LIVEUPDATE_TL_REBOOT, LIVEUPDATE_TL_PREPARE,
		LIVEUPDATE_TL_FREEZE_FLB, LIVEUPDATE_TL_WRITE,
		LIVEUPDATE_TL_SHUTDOWN, LIVEUPDATE_TL_JUMP,
	};

	if (tl_n < ARRAY_SIZE(want) || tl[0].start_ns)
		return false;
	for (unsigned int i = 0; i < ARRAY_SIZE(want); i++)
		if (tl[i].step != want[i] || tl[i].count || tl[i].label[0])
			return false;
	return true;
}

static void timeline_damage(void)
{
	struct timespec mono;
	char *dbg, *log;
	int ready;
	bool ok;

	if (stage == 0) {
		ksft_set_plan(1);
		tl_damage_next("jump-cycles");
	}
	ksft_set_plan(3);
	require(tl_read(), "GET_TIMELINE");
	clock_gettime(CLOCK_MONOTONIC, &mono);
	ready = tl_find(LIVEUPDATE_TL_READY, NULL, 0);
	if (stage == 1) {
		dbg = luo_read_file(TL_DEBUGFS);
		ok = tl_flags == LIVEUPDATE_TIMELINE_PREVIOUS &&
		     tl_old_steps_intact() &&
		     tl_find(LIVEUPDATE_TL_BOOT, NULL, 0) < 0 && ready > 0 &&
		     tl[ready].start_ns < ts_ns(&mono) && dbg &&
		     strstr(dbg, "# previous kernel: yes, one clock: no\n");
		if (!ok)
			tl_dump();
		free(dbg);
		result(ok, "no cycle count at the jump: the previous kernel's steps, this kernel's on its own clock");
		tl_damage_next("grow");
	}
	if (stage == 2) {
		ok = tl_flags == (LIVEUPDATE_TIMELINE_PREVIOUS |
				  LIVEUPDATE_TIMELINE_ONE_CLOCK) &&
		     tl_old_steps_intact() && tl_ordered() &&
		     tl_find(LIVEUPDATE_TL_BOOT, NULL, 0) == 6 && ready > 6;
		if (!ok)
			tl_dump();
		result(ok, "a larger header and larger steps (a later version): read as before");
		tl_damage_next("step-size");
	}
	log = luo_kernel_log();
	ok = !tl_flags && tl_find(LIVEUPDATE_TL_REBOOT, NULL, 0) < 0 &&
	     ready >= 0 && log &&
	     strstr(log, "previous kernel's timeline is damaged: ignored");
	if (!ok)
		tl_dump();
	free(log);
	result(ok, "a step size too small: the timeline is ignored, with a log line");
	result(live_is(0), "no test object live");
	ksft_finished();
}

typedef void (*stage_fn)(void);

struct scenario {
	const char *name;
	int last_stage;
	stage_fn stages[HOPS + 1];
};

static const struct scenario scenarios[] = {
	{ "simple", 1, { simple_0, simple_1 } },
	{ "many-sessions", 1, { many_sessions_0, many_sessions_1 } },
	{ "many-files", 1, { many_files_0, many_files_1 } },
	{ "close-no-finish", 2,
	  { close_no_finish_0, close_no_finish_1, close_no_finish_2 } },
	{ "reuse", 2, { reuse_0, reuse_1, reuse_2 } },
	{ "hops3", HOPS, { hops3, hops3, hops3, hops3 } },
	{ "freeze-fail", 1, { freeze_fail_0, freeze_fail_1 } },
	{ "unknown-handler", 1, { unknown_handler, unknown_handler } },
	{ "bad-version", 1, { bad_version, bad_version } },
	{ "finish-refused", 1, { finish_refused_0, finish_refused_1 } },
	{ "retrieve-fail", 1, { retrieve_fail_0, retrieve_fail_1 } },
	{ "unretrieved", 1, { unretrieved_0, unretrieved_1 } },
	{ "no-kho-image", 1, { no_kho_image_0, no_kho_image_1 } },
	{ "disabled", 1, { disabled_0, disabled_1 } },
	{ "flb", 1, { flb_0, flb_1 } },
	{ "flb-unretrieved", 1, { flb_unretrieved_0, flb_unretrieved_1 } },
	{ "flb-first-use", 1, { flb_first_use_0, flb_first_use_1 } },
	{ "flb-early", 1, { flb_early_0, flb_early_1 } },
	{ "flb-early-fail", 1, { flb_early_fail_0, flb_early_fail_1 } },
	{ "deps", 1, { deps_0, deps_1 } },
	{ "reply-fault", 1, { reply_fault_0, reply_fault_1 } },
	{ "preload", 1, { preload_0, preload_1 } },
	{ "timeline", 1, { timeline_0, timeline_1 } },
	{ "timeline-damage", 3,
	  { timeline_damage, timeline_damage, timeline_damage,
	    timeline_damage } },
};

static void usage(const char *prog)
{
	unsigned int i;

	fprintf(stderr, "%s SCENARIO [COUNT], with LUO_STAGE=N in the environment\nscenarios:",
		prog);
	for (i = 0; i < ARRAY_SIZE(scenarios); i++)
		fprintf(stderr, " %s", scenarios[i].name);
	fprintf(stderr, "\n");
}

int main(int argc, char **argv)
{
	const struct scenario *sc = NULL;
	struct rlimit rl;
	unsigned int i;

	if (argc == 3)
		many = atoi(argv[2]);
	if (argc < 2 || argc > 3 || many < 11) {
		usage(argv[0]);
		return KSFT_FAIL;
	}
	for (i = 0; i < ARRAY_SIZE(scenarios); i++)
		if (!strcmp(argv[1], scenarios[i].name))
			sc = &scenarios[i];
	if (!sc) {
		usage(argv[0]);
		return KSFT_FAIL;
	}

	stage = luo_stage();
	ksft_print_header();
	if (stage < 0 || stage > sc->last_stage)
		ksft_exit_fail_msg("%s has no stage %d\n", sc->name, stage);
	/* The one stage that runs with live update off checks that itself. */
	if (!strcmp(sc->name, "disabled") && stage == 1) {
		disabled_1();
		return KSFT_FAIL;
	}
	if (access(LUO_DEVICE, F_OK))
		ksft_exit_skip("%s missing (no LUO, or liveupdate=off)\n",
			       LUO_DEVICE);
	if (!luo_test_available())
		ksft_exit_skip("%s missing (CONFIG_LIVEUPDATE_TEST)\n",
			       LUO_TEST_DEVICE);
	/* many-*: "many" sessions or files, and as many test objects. */
	rl.rlim_max = 3 * many + 1024;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		ksft_exit_fail_msg("setrlimit(RLIMIT_NOFILE): %s\n",
				   strerror(errno));
	dev = luo_open_device();
	if (dev < 0)
		ksft_exit_fail_msg("open %s: %s\n", LUO_DEVICE, strerror(-dev));

	sc->stages[stage]();
	/* Every stage ends with ksft_finished() or luo_kexec_next(). */
	ksft_exit_fail_msg("stage %d of %s did not finish\n", stage, sc->name);
}
