// SPDX-License-Identifier: GPL-2.0
/*
 * luo_tools_test: luod, luoctl and luo-demo-vmm across one live update.
 *
 *   LUO_STAGE=0|1 luo_tools_test
 *
 * Runs once per boot in the test VM (luod, luoctl and luo-demo-vmm in PATH,
 * luo-next-stage available), printing one KTAP document per stage.
 *
 * Stage 0 starts luod; a client (a child process) gets session "tools-test"
 * through it and preserves a memfd of known contents; then it checks what
 * luoctl status reports, that bad requests are refused, that an update with
 * no kernel loaded fails cleanly, starts the demo VMM, loads the next
 * kernel (luo-next-stage -l), checks that luod holds an update back while
 * a preserved file is settling (a test file that says so), that a client
 * that never answers PREPARE makes the update fail after luod's timeout
 * with everything still preserved, and finally runs luoctl update, which
 * reboots.  Like the other
 * multi-stage tests, the last planned result (the reboot) is printed only
 * if it failed.
 *
 * Stage 1 starts luod again, gets "tools-test" back by name, checks the
 * memfd's contents, finishes the session, checks luoctl status, and resumes
 * the demo VMM, which verifies all of its guest RAM.  Then, with luod
 * restarted and logging to a file, it abuses luod and luoctl: 500
 * connections at once, peers that send and never read, a session fd behind
 * 2000 queued replies, SESSION repeated unread (luod's fds), binary
 * garbage, an over-long line, a request cut short, bad session names,
 * luoctl cancel during an update, luoctl's exit codes, usage errors,
 * --timeout, --json (parsed) and load --dry-run, and last a luod with few
 * fds hit by more connections than it has fds.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tools.h"
#include "libluo.h"

#define SOCK		"/run/luo-tools-test.sock"
#define SOCK2		"/run/luo-tools-test-2.sock"
#define SESSION		"tools-test"
#define MUTE		"tools-test-mute"
#define VMM		"tools-test-vmm"
#define SETTLE		"tools-test-settle"
#define TOKEN		7
#define DATA_SIZE	(1024 * 1024 + 123)
#define LINE_MAX_TEST	600		/* longer than luod takes */
#define TIMEOUT_S	4		/* luod -t */
#define TIMEOUT_ARG	"4"
#define STAGE0_TESTS	15
#define STAGE1_TESTS	36

static int test_no, failures;
static pid_t luod_pid = -1;

/* ---- KTAP ---- */

static __printf(1, 2) void diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static __printf(2, 3) bool result(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s %d ", ok ? "ok" : "not ok", ++test_no);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (!ok)
		failures++;
	return ok;
}

static __noreturn __printf(1, 2) void bail(const char *fmt, ...)
{
	va_list ap;

	fputs("Bail out! ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (luod_pid > 0)
		kill(luod_pid, SIGTERM);
	exit(1);
}

/* A result the rest of the stage depends on. */
#define require(ok, ...) do {						\
	if (!result(ok, __VA_ARGS__))					\
		bail("cannot go on");					\
} while (0)

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- running the tools ---- */

/*
 * Run @argv (from PATH) with stdout and stderr captured into *@out
 * (malloc()ed, NUL-terminated, echoed as diagnostics).  Returns its exit
 * status, 128 + signal, or -errno.
 */
static int run_opts(char **out, const char *const argv[], bool echo,
		    bool with_stderr)
{
	size_t len = 0, size = 4096;
	char *buf = malloc(size), *line, *next;
	int pfd[2], status, i;
	pid_t pid;

	if (!buf || pipe2(pfd, O_CLOEXEC))
		bail("out of memory or fds");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		bail("fork: %s", strerror(errno));
	if (!pid) {
		dup2(pfd[1], 1);
		if (with_stderr)
			dup2(pfd[1], 2);
		else
			close(2);
		/* execvp() does not write to the strings it is given. */
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		ssize_t n;

		if (size - len < 1024) {
			size *= 2;
			buf = realloc(buf, size);
			if (!buf)
				bail("out of memory");
		}
		n = read(pfd[0], buf + len, size - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
	}
	buf[len] = '\0';
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			bail("waitpid: %s", strerror(errno));
	*out = buf;
	if (!echo)
		goto done;
	printf("# $");
	for (i = 0; argv[i]; i++)
		printf(" %s", argv[i]);
	putchar('\n');
	for (line = buf; *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next = '\0';
		printf("# | %s\n", line);
		if (!next)
			break;
		*next++ = '\n';
	}
	fflush(stdout);
done:
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

static int run_echo(char **out, const char *const argv[], bool echo)
{
	return run_opts(out, argv, echo, true);
}

static int run(char **out, const char *const argv[])
{
	return run_echo(out, argv, true);
}

static pid_t spawn(const char *const argv[])
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		bail("fork: %s", strerror(errno));
	if (!pid) {
		execvp(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

static bool alive(pid_t pid)
{
	return pid > 0 && waitpid(pid, NULL, WNOHANG) == 0;
}

/* Does @text hold a line starting with @prefix? */
static bool has_line(const char *text, const char *prefix)
{
	size_t len = strlen(prefix);
	const char *p = text;

	while (p && *p) {
		if (!strncmp(p, prefix, len))
			return true;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

/* One request to luod on @sock; the reply line in @line, fd in *@fd. */
static int ask(int sock, const char *req, char *line, size_t size, int *fd)
{
	int ret = luo_send_line(sock, req);

	if (!ret)
		ret = luo_recv_line(sock, line, size, fd, 10000);
	if (ret < 0)
		snprintf(line, size, "(no answer: %s)", strerror(-ret));
	return ret < 0 ? ret : 0;
}

/* luoctl status: its output, empty if it failed. */
static char *status_echo(bool echo)
{
	static const char * const argv[] = {
		"luoctl", "-s", SOCK, "status", NULL
	};
	char *out;

	if (run_echo(&out, argv, echo))
		out[0] = '\0';
	return out;
}

static char *status(void)
{
	return status_echo(true);
}

/* Wait until luod (@pid) answers PING on SOCK. */
static bool luod_answers(pid_t pid)
{
	long long until = now_ms() + 20000;
	char line[256];

	while (now_ms() < until && alive(pid)) {
		int sock = luo_connect(SOCK);

		if (sock >= 0) {
			bool ok = !ask(sock, "PING", line, sizeof(line), NULL) &&
				  !strncmp(line, "OK luod ", 8);

			close(sock);
			if (ok)
				return true;
			diag("PING: %s", line);
		}
		sleep_ms(100);
	}
	diag("luod %s", alive(pid) ? "does not answer" : "exited");
	return false;
}

/* Start luod and wait until it answers PING. */
static bool start_luod(void)
{
	static const char * const argv[] = {
		"luod", "-s", SOCK, "-t", TIMEOUT_ARG, NULL
	};

	luod_pid = spawn(argv);
	return luod_answers(luod_pid);
}

/* Stop luod with SIGTERM: true if it exits cleanly. */
static bool stop_luod(void)
{
	int st, rc;

	kill(luod_pid, SIGTERM);
	rc = waitpid(luod_pid, &st, 0);
	luod_pid = -1;
	return rc > 0 && WIFEXITED(st) && !WEXITSTATUS(st);
}

/* ---- the memfd's contents ---- */

static unsigned char data_byte(size_t i)
{
	return (unsigned char)(((i * 2654435761u) >> 13) ^ (i >> 16) ^ 0x5a);
}

/* NULL if @fd holds our DATA_SIZE bytes, else what is wrong. */
static const char *check_data(int fd)
{
	static char why[128];
	unsigned char *buf;
	struct stat st;
	size_t i;

	if (fstat(fd, &st))
		return "fstat failed";
	if (st.st_size != DATA_SIZE) {
		snprintf(why, sizeof(why), "size %lld, want %d",
			 (long long)st.st_size, DATA_SIZE);
		return why;
	}
	buf = malloc(DATA_SIZE);
	if (!buf)
		return "out of memory";
	if (pread(fd, buf, DATA_SIZE, 0) != DATA_SIZE) {
		free(buf);
		return "short read";
	}
	for (i = 0; i < DATA_SIZE; i++) {
		if (buf[i] != data_byte(i)) {
			snprintf(why, sizeof(why),
				 "byte %zu is 0x%02x, want 0x%02x", i, buf[i],
				 data_byte(i));
			free(buf);
			return why;
		}
	}
	free(buf);
	return NULL;
}

/* ---- a client of luod, in a child process ---- */

struct client {
	pid_t pid;
	int ctl;	/* to the child: "check" -> "ok|fail ... prepares=P cancels=C" */
};

static __printf(4, 5) void client_reply(int ctl, int prepares, int cancels,
					const char *fmt, ...)
{
	char buf[300];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (len > 200)
		len = 200;
	snprintf(buf + len, sizeof(buf) - len, " prepares=%d cancels=%d",
		 prepares, cancels);
	luo_send_line(ctl, buf);
}

/* What the session and the memfd look like; NULL if as preserved. */
static const char *client_state(int sfd, int memfd)
{
	struct liveupdate_file_info files[4];
	unsigned int kind, count;
	int ret = luo_query(sfd, &kind, files, 4, &count);

	if (ret)
		return "QUERY failed";
	/* Settling: preserved, some pages still moving out of KHO scratch. */
	if (kind != LIVEUPDATE_SESSION_OUTGOING || count != 1 ||
	    files[0].token != TOKEN ||
	    (files[0].state != LIVEUPDATE_FILE_PRESERVED &&
	     files[0].state != LIVEUPDATE_FILE_SETTLING))
		return "session is not outgoing with the memfd preserved";
	return check_data(memfd);
}

static __noreturn void client_main(int ctl, const char *name, bool mute)
{
	int sock, sfd = -1, memfd = -1, prepares = 0, cancels = 0, ret;
	char line[256], got[LUO_NAME_SIZE];
	unsigned int kind, count;
	const char *why = NULL;
	unsigned char *buf;
	size_t i;

	sock = luo_connect(SOCK);
	if (sock < 0)
		why = "cannot connect to luod";
	if (!why) {
		snprintf(got, sizeof(got), "SESSION %s outgoing", name);
		if (ask(sock, got, line, sizeof(line), &sfd) ||
		    strcmp(line, "OK outgoing") || sfd < 0)
			why = "luod did not hand an outgoing session";
	}
	if (!why && (luo_session_name(sfd, got) || strcmp(got, name)))
		why = "GET_NAME does not give the session's name";
	if (!why && (luo_query(sfd, &kind, NULL, 0, &count) ||
		     kind != LIVEUPDATE_SESSION_OUTGOING || count))
		why = "the new session is not empty and outgoing";
	if (!why && !mute) {
		buf = malloc(DATA_SIZE);
		memfd = memfd_create("tools-test-data", MFD_CLOEXEC);
		if (!buf || memfd < 0 || ftruncate(memfd, DATA_SIZE)) {
			why = "cannot make the memfd";
		} else {
			for (i = 0; i < DATA_SIZE; i++)
				buf[i] = data_byte(i);
			if (pwrite(memfd, buf, DATA_SIZE, 0) != DATA_SIZE)
				why = "cannot write the memfd";
		}
		free(buf);
		ret = why ? 0 : luo_preserve_fd(sfd, memfd, TOKEN);
		if (ret)
			why = "PRESERVE_FD failed";
		if (!why)
			why = client_state(sfd, memfd);
	}
	if (why)
		client_reply(ctl, 0, 0, "setup fail %s", why);
	else
		client_reply(ctl, 0, 0, "setup ok");

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = sock, .events = POLLIN },
			{ .fd = ctl, .events = POLLIN },
		};

		if (poll(pfd, 2, -1) < 0)
			continue;
		/* luod's messages first, so that a check sees them. */
		while (sock >= 0 && poll(pfd, 1, 0) > 0) {
			ret = luo_recv_line(sock, line, sizeof(line), NULL,
					    5000);
			if (ret < 0) {
				close(sock);
				sock = -1;
				pfd[0].fd = -1;
				break;
			}
			if (!strcmp(line, "PREPARE")) {
				prepares++;
				if (!mute)
					luo_send_line(sock, "READY");
			} else if (!strcmp(line, "CANCEL")) {
				cancels++;
			}
		}
		if (!(pfd[1].revents & (POLLIN | POLLHUP)) &&
		    poll(&pfd[1], 1, 0) <= 0)
			continue;
		ret = luo_recv_line(ctl, line, sizeof(line), NULL, 5000);
		if (ret < 0)
			_exit(0);
		if (sock < 0)
			why = "lost luod";
		else
			why = mute ? NULL : client_state(sfd, memfd);
		if (why)
			client_reply(ctl, prepares, cancels, "fail %s", why);
		else
			client_reply(ctl, prepares, cancels, "ok");
	}
}

static struct client start_client(const char *name, bool mute, char *setup,
				  size_t size)
{
	struct client c;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		bail("socketpair: %s", strerror(errno));
	fflush(stdout);
	c.pid = fork();
	if (c.pid < 0)
		bail("fork: %s", strerror(errno));
	if (!c.pid) {
		close(sv[0]);
		client_main(sv[1], name, mute);
	}
	close(sv[1]);
	c.ctl = sv[0];
	if (luo_recv_line(c.ctl, setup, size, NULL, 20000) < 0)
		snprintf(setup, size, "no answer from the client");
	return c;
}

/* Ask the client to check its state: true if "ok" with those counts. */
static bool client_check(struct client *c, int prepares, int cancels)
{
	char line[300], want[64];

	if (luo_send_line(c->ctl, "check") ||
	    luo_recv_line(c->ctl, line, sizeof(line), NULL, 20000) < 0) {
		diag("client %d does not answer", (int)c->pid);
		return false;
	}
	snprintf(want, sizeof(want), "ok prepares=%d cancels=%d", prepares,
		 cancels);
	if (prepares < 0)	/* any number, as long as each was cancelled */
		return !strncmp(line, "ok prepares=", 12) &&
		       sscanf(line, "ok prepares=%d cancels=%d", &prepares,
			      &cancels) == 2 && prepares == cancels;
	if (strcmp(line, want))
		diag("client %d: '%s', want '%s'", (int)c->pid, line, want);
	return !strcmp(line, want);
}

/*
 * In a child, while the parent's update request waits: luod must say
 * "update=settling" and ask no client to PREPARE for as long as the test
 * file @obj is settling; then the file is told it has settled.
 */
static bool settle_checker(int obj, struct client *good)
{
	long long until = now_ms() + 10000;
	bool seen = false, ok;
	char *out;

	while (!seen && now_ms() < until) {
		out = status_echo(false);
		seen = strstr(out, " update=settling");
		free(out);
		if (!seen)
			sleep_ms(50);
	}
	sleep_ms(500);
	out = status_echo(false);
	ok = seen && strstr(out, " update=settling") &&
	     has_line(out, "  file token=1 state=settling ") &&
	     client_check(good, -1, 0);
	free(out);
	if (write(obj, "settling=0", 10) != 10)
		ok = false;
	return ok;
}

/* ---- stage 0 ---- */

static void stage0(void)
{
	static const char * const luod2[] = { "luod", "-s", SOCK2, NULL };
	static const char * const update[] = {
		"luoctl", "-s", SOCK, "update", NULL
	};
	static const char * const load[] = { "luo-next-stage", "-l", NULL };
	static const char * const vmm[] = {
		"luo-demo-vmm", "start", "-s", SOCK, "-N", VMM, "-m", "16",
		"-n", "500", "-r", "20", "-p", "100", NULL
	};
	char line[300], *out;
	struct client good, mute;
	int loaded, sock, rc, fd, obj, sfd, cstatus;
	long long t0, until;
	pid_t vmm_pid, checker;
	bool ok;

	printf("1..%d\n", STAGE0_TESTS);
	/* A fresh boot has nothing loaded; make sure. */
	loaded = luo_kexec_loaded();
	if (loaded == 1 && luo_kexec_unload())
		diag("cannot unload the kexec image");
	loaded = luo_kexec_loaded();
	diag("kexec image loaded: %d", loaded);

	require(start_luod(), "luod starts and answers PING");

	rc = run(&out, luod2);
	result(rc == 1 && strstr(out, "busy"),
	       "a second luod is refused while the first holds /dev/liveupdate");
	free(out);

	good = start_client(SESSION, false, line, sizeof(line));
	diag("client: %s", line);
	require(!strncmp(line, "setup ok", 8),
		"a client gets session " SESSION " through luod and preserves a memfd in it");

	sock = luo_connect(SOCK);
	if (sock < 0)
		bail("connect to luod: %s", strerror(-sock));
	fd = -1;
	ask(sock, "SESSION " SESSION, line, sizeof(line), &fd);
	diag("SESSION " SESSION ": %s", line);
	result(!strncmp(line, "ERR ", 4) && strstr(line, "held by") &&
	       fd < 0, "luod refuses a session another client holds");
	if (fd >= 0)
		close(fd);

	ok = true;
	{
		static const char * const bad[] = {
			"SESSION xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
			"SESSION foo sideways", "SESSION nosuch incoming",
			"SESSION " SESSION " incoming", "FROBNICATE",
			"RELEASE nosuch", "STATUS extra",
		};
		size_t i;

		for (i = 0; i < ARRAY_SIZE(bad); i++) {
			fd = -1;
			ask(sock, bad[i], line, sizeof(line), &fd);
			if (strncmp(line, "ERR ", 4) || fd >= 0) {
				diag("'%s' -> '%s'", bad[i], line);
				ok = false;
			}
			if (fd >= 0)
				close(fd);
		}
	}
	ask(sock, "PING", line, sizeof(line), NULL);
	result(ok && !strncmp(line, "OK luod", 7),
	       "luod rejects bad requests and keeps serving");
	close(sock);

	out = status();
	result(has_line(out, "session " SESSION " kind=outgoing files=1 client=") &&
	       has_line(out, "  file token=7 state=preserved ") &&
	       (loaded < 0 || strstr(out, loaded ? "kexec=loaded" :
				     "kexec=not-loaded")),
	       "luoctl status lists the session and its preserved memfd");
	free(out);

	rc = run(&out, update);
	result(rc == 1 && has_line(out, "luoctl: update failed: ") &&
	       strstr(out, "no kernel is loaded"),
	       "luoctl update with no kernel loaded fails with a clear message");
	free(out);
	out = status();
	result(client_check(&good, loaded < 0 ? -1 : 0, loaded < 0 ? -1 : 0) &&
	       has_line(out, "session " SESSION " kind=outgoing files=1 client="),
	       "after that failed update the memfd is still preserved and intact");
	free(out);

	vmm_pid = spawn(vmm);
	until = now_ms() + 60000;
	ok = false;
	while (!ok && now_ms() < until && alive(vmm_pid)) {
		sleep_ms(500);
		out = status_echo(false);
		ok = has_line(out, "session " VMM " kind=outgoing files=2 client=");
		free(out);
	}
	result(ok, "the demo VMM preserves its two memfds through luod");

	rc = run(&out, load);
	free(out);
	require(rc == 0 && luo_kexec_loaded() != 0,
		"luo-next-stage -l loads the next kernel");

	/* A session luod holds, with a test file that is settling. */
	sock = luo_connect(SOCK);
	obj = open("/dev/liveupdate_test", O_RDWR | O_CLOEXEC);
	sfd = -1;
	ok = sock >= 0 && obj >= 0 &&
	     !ask(sock, "SESSION " SETTLE " outgoing", line, sizeof(line),
		  &sfd) && sfd >= 0 && write(obj, "settling=1", 10) == 10 &&
	     !luo_preserve_fd(sfd, obj, 1);
	if (!ok)
		diag("settling test file: %s", strerror(errno));

	mute = start_client(MUTE, true, line, sizeof(line));
	diag("silent client: %s", line);
	/* Without it the update below would succeed: a kexec mid-stage. */
	if (strncmp(line, "setup ok", 8))
		bail("the silent client is not set up: %s", line);
	fflush(stdout);
	checker = ok ? fork() : -1;
	if (!checker)
		_exit(settle_checker(obj, &good) ? 0 : 1);
	t0 = now_ms();
	rc = run(&out, update);
	t0 = now_ms() - t0;
	diag("update took %lld ms", t0);
	result(checker > 0 && waitpid(checker, &cstatus, 0) == checker &&
	       WIFEXITED(cstatus) && !WEXITSTATUS(cstatus),
	       "luod holds the update back while a preserved file is settling");
	result(rc == 1 && t0 >= TIMEOUT_S * 1000 - 500 &&
	       strstr(out, "timed out") && strstr(out, MUTE),
	       "a client that never answers PREPARE makes the update fail after the timeout");
	free(out);
	/* Gone before the real update: luod's fd, then ours. */
	if (sock >= 0) {
		ask(sock, "RELEASE " SETTLE, line, sizeof(line), NULL);
		close(sock);
	}
	if (sfd >= 0)
		close(sfd);
	if (obj >= 0)
		close(obj);

	out = status();
	result(client_check(&good, 1, 1) && client_check(&mute, 1, 1) &&
	       alive(vmm_pid) &&
	       has_line(out, "session " SESSION " kind=outgoing files=1 client=") &&
	       has_line(out, "session " VMM " kind=outgoing files=2 client="),
	       "every client got PREPARE then CANCEL, and all stays preserved");
	free(out);

	kill(mute.pid, SIGKILL);
	waitpid(mute.pid, NULL, 0);
	close(mute.ctl);
	until = now_ms() + 10000;
	ok = false;
	while (!ok && now_ms() < until) {
		out = status_echo(false);
		ok = has_line(out, "session " MUTE " kind=outgoing files=0 client=none");
		free(out);
		if (!ok)
			sleep_ms(200);
	}
	result(ok, "luod keeps the session of a client that died");

	/* The good client, the VMM and luod hold their sessions: go. */
	diag("updating: the next stage checks what came through");
	rc = run(&out, update);
	result(false, "luoctl update reboots into the next stage (exit %d)",
	       rc);
	bail("still running after luoctl update");
}

/* ---- robustness: luod and luoctl under abuse (stage 1, at the end) ---- */

#define ROBUST_LOG	"/run/luod-robust.log"
#define SILENT_SOCK	"/run/luo-tools-test-silent.sock"
#define NR_MANY		500
#define NR_SLOW		5
/* Replies of a few hundred bytes each: far more than a socket buffer. */
#define SLOW_REQS	500
#define NR_FLOOD	150
#define LOW_NOFILE	32	/* luod's soft limit in the fd test */
#define LOW_NOFILE_MAX	64	/* and its hard limit */
#define NOT_A_NAME	"tools-test-not-a-name"

/*
 * Start luod on SOCK with its log in @log and, if @soft, RLIMIT_NOFILE
 * @soft / @hard; wait until it answers PING.
 */
static bool start_luod_logged(const char *log, rlim_t soft, rlim_t hard)
{
	static const char * const argv[] = {
		"luod", "-s", SOCK, "-t", TIMEOUT_ARG, NULL
	};
	struct rlimit rl = { soft, hard };
	int fd;

	fflush(stdout);
	luod_pid = fork();
	if (luod_pid < 0)
		bail("fork: %s", strerror(errno));
	if (!luod_pid) {
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(127);
		if (soft && setrlimit(RLIMIT_NOFILE, &rl))
			_exit(127);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	return luod_answers(luod_pid);
}

/* Does the file @path hold @needle?  All of it: luod's log grows long. */
static bool file_has(const char *path, const char *needle)
{
	size_t len = 0, size = 65536;
	char *buf = NULL, *grown;
	bool found = false;
	ssize_t n = 1;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	while (n > 0) {
		if (!buf || size - len < 4096) {
			size *= 2;
			grown = realloc(buf, size);
			if (!grown)
				break;
			buf = grown;
		}
		n = read(fd, buf + len, size - len - 1);
		if (n > 0)
			len += n;
	}
	close(fd);
	if (buf && !n) {
		buf[len] = '\0';
		found = strstr(buf, needle);
	}
	free(buf);
	return found;
}

/* PING on @sock answered within @ms? */
static bool ping_within(int sock, int ms)
{
	char line[128];
	int ret = luo_send_line(sock, "PING");

	if (!ret)
		ret = luo_recv_line(sock, line, sizeof(line), NULL, ms);
	return ret > 0 && !strncmp(line, "OK luod ", 8);
}

/*
 * Read @sock until EOF (a reset counts), or for @ms at most: the bytes in
 * @buf (NUL-terminated); *@eof says whether the peer closed.
 */
static size_t read_all(int sock, char *buf, size_t size, int ms, bool *eof)
{
	long long until = now_ms() + ms;
	size_t len = 0;

	*eof = false;
	while (len + 1 < size) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN };
		long long left = until - now_ms();
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			break;
		n = recv(sock, buf + len, size - len - 1, 0);
		if (n <= 0) {
			*eof = !n || errno == ECONNRESET;
			break;
		}
		len += n;
	}
	buf[len] = '\0';
	return len;
}

/* Is @buf (@len bytes) whole lines, each "ERR " and printable ASCII? */
static bool plain_err_lines(const char *buf, size_t len, int *lines)
{
	size_t i, start = 0;

	*lines = 0;
	for (i = 0; i < len; i++) {
		if (buf[i] == '\n') {
			if (strncmp(buf + start, "ERR ", 4) || i - start < 5)
				return false;
			++*lines;
			start = i + 1;
		} else if (buf[i] < 0x20 || buf[i] >= 0x7f) {
			return false;
		}
	}
	return start == len;
}

/*
 * Send @len bytes of @req on a new connection and read for up to @ms:
 * the length of the reply in @buf, or -1; *@eof as for read_all().
 */
static ssize_t raw_request(const void *req, size_t len, char *buf,
			   size_t size, int ms, bool *eof)
{
	int sock = luo_connect_timeout(SOCK, 5000);
	size_t got;

	*eof = false;
	buf[0] = '\0';
	if (sock < 0)
		return -1;
	if (luo_send_fd(sock, -1, req, len)) {
		close(sock);
		return -1;
	}
	got = read_all(sock, buf, size, ms, eof);
	close(sock);
	return got;
}

/* A PING on a new connection answered within @ms? */
static bool ping_new(int ms)
{
	int sock = luo_connect_timeout(SOCK, ms);
	bool ok = sock >= 0 && ping_within(sock, ms);

	if (sock >= 0)
		close(sock);
	return ok;
}

/* connections=N in luoctl status, or -1. */
static int status_connections(void)
{
	char *out = status_echo(false), *p = strstr(out, " connections=");
	int n = p ? atoi(p + 13) : -1;

	free(out);
	return n;
}

static void robust_many(void)
{
	static int socks[NR_MANY];
	int i, connected = 0, n;
	bool ok;

	for (i = 0; i < NR_MANY; i++) {
		socks[i] = luo_connect_timeout(SOCK, 5000);
		connected += socks[i] >= 0;
	}
	n = status_connections();
	diag("%d of %d connected; luoctl status says connections=%d",
	     connected, NR_MANY, n);
	ok = connected == NR_MANY && n > NR_MANY &&
	     socks[0] >= 0 && ping_within(socks[0], 5000) &&
	     socks[NR_MANY - 1] >= 0 && ping_within(socks[NR_MANY - 1], 5000);
	for (i = 0; i < NR_MANY; i++)
		if (socks[i] >= 0)
			close(socks[i]);
	result(ok, "with %d clients connected, luoctl status and PING still work",
	       NR_MANY);
}

/* Count the replies ("OK " at a line start) @sock sends, up to @want. */
static int count_replies(int sock, int want, int ms)
{
	long long until = now_ms() + ms;
	bool at_start = true, matching = false;
	int heads = 0, m = 0;
	char buf[16384];

	while (heads < want && now_ms() < until) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN };
		ssize_t n, i;

		if (poll(&pfd, 1, 500) <= 0)
			continue;
		n = recv(sock, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			if (at_start) {
				matching = true;
				m = 0;
			}
			at_start = buf[i] == '\n';
			if (!matching)
				continue;
			if (buf[i] != "OK "[m]) {
				matching = false;
			} else if (++m == 3) {
				heads++;
				matching = false;
			}
		}
	}
	return heads;
}

static void robust_slow_readers(void)
{
	static char reqs[SLOW_REQS * 7 + 1];
	int socks[NR_SLOW], i, sock, got, all = 0;
	long long t0, took = -1;

	for (i = 0; i < SLOW_REQS; i++)
		memcpy(reqs + 7 * i, "STATUS\n", 7);
	for (i = 0; i < NR_SLOW; i++) {
		socks[i] = luo_connect_timeout(SOCK, 5000);
		if (socks[i] >= 0 &&
		    luo_send_fd(socks[i], -1, reqs, 7 * SLOW_REQS))
			diag("slow reader %d: cannot send its requests", i);
	}
	sleep_ms(300);	/* luod is answering them meanwhile */
	t0 = now_ms();
	sock = luo_connect_timeout(SOCK, 5000);
	if (sock >= 0 && ping_within(sock, 10000))
		took = now_ms() - t0;
	if (sock >= 0)
		close(sock);
	diag("PING with %d peers not reading: %lld ms", NR_SLOW, took);
	result(took >= 0 && took < 1000,
	       "%d peers that send requests and never read do not delay another client's PING (< 1 s)",
	       NR_SLOW);

	for (i = 0; i < NR_SLOW; i++) {
		/* Under KASAN a STATUS takes luod milliseconds of ioctls. */
		got = socks[i] < 0 ? 0 : count_replies(socks[i], SLOW_REQS,
							  60000);
		if (got != SLOW_REQS)
			diag("slow reader %d got %d replies", i, got);
		all += got == SLOW_REQS;
		if (socks[i] >= 0)
			close(socks[i]);
	}
	result(all == NR_SLOW,
	       "once they read, the slow peers get all %d replies each",
	       SLOW_REQS);
}

#define FDQ		"tools-test-fdq"
#define FLOOD		"tools-test-flood"
#define NR_FLOOD_REQS	3000
#define REPLIES_SIZE	(32 << 20)

/* The open fds of luod, from /proc/PID/fd, or -1. */
static int luod_fds(void)
{
	char path[64];
	struct dirent *d;
	int n = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)luod_pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((d = readdir(dir)))
		n += d->d_name[0] != '.';
	closedir(dir);
	return n;
}

/* Does @buf's last whole line (it ends with '\n') start with @prefix? */
static bool last_line_is(const char *buf, size_t len, const char *prefix)
{
	size_t start;

	if (!len || buf[len - 1] != '\n')
		return false;
	for (start = len - 1; start && buf[start - 1] != '\n'; start--)
		;
	return !strncmp(buf + start, prefix, strlen(prefix));
}

/* Lines of @buf (@len bytes) starting with @prefix. */
static int count_lines(const char *buf, size_t len, const char *prefix)
{
	const char *p = buf, *end = buf + len, *nl;
	size_t plen = strlen(prefix);
	int n = 0;

	while (p < end) {
		if ((size_t)(end - p) >= plen && !memcmp(p, prefix, plen))
			n++;
		nl = memchr(p, '\n', end - p);
		if (!nl)
			break;
		p = nl + 1;
	}
	return n;
}

/*
 * An fd reply behind a long queue: 2000 STATUS, then SESSION, then PING,
 * sent before reading anything.  The session fd must come with the recv()
 * that holds the first byte of "OK outgoing", no earlier, no later, and
 * it alone.
 */
static void robust_fd_order(void)
{
	static const char tail[] = "SESSION " FDQ " outgoing\nPING\n";
	static char reqs[SLOW_REQS * 7 + sizeof(tail)];
	size_t len = 0, at = 0, line_at = 0;
	int sock, i, fds = 0, fd, sfd = -1;
	char *buf, name[LUO_NAME_SIZE], line[128], *p;
	long long until;
	bool ok;

	for (i = 0; i < SLOW_REQS; i++)
		memcpy(reqs + 7 * i, "STATUS\n", 7);
	memcpy(reqs + 7 * SLOW_REQS, tail, sizeof(tail) - 1);
	buf = malloc(REPLIES_SIZE);
	sock = luo_connect_timeout(SOCK, 5000);
	ok = buf && sock >= 0 &&
	     !luo_send_fd(sock, -1, reqs, 7 * SLOW_REQS + sizeof(tail) - 1);
	sleep_ms(500);	/* luod queues what it can meanwhile */
	until = now_ms() + 30000;
	while (ok && now_ms() < until && !last_line_is(buf, len, "OK luod ")) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, 1000) <= 0)
			continue;
		/* Small reads: where the fd comes says something. */
		n = luo_recv_fd(sock, &fd, buf + len,
				len + 4096 < REPLIES_SIZE ? 4096 :
				REPLIES_SIZE - len - 1);
		if (n <= 0) {
			ok = false;
			break;
		}
		if (fd >= 0) {
			fds++;
			at = len;
			if (sfd >= 0)
				close(sfd);
			sfd = fd;
		}
		len += n;
		/* Is the fd's recv() the one holding "OK outgoing"? */
		if (fd >= 0) {
			buf[len] = '\0';
			p = NULL;
			if (len >= 12)
				p = memmem(buf + (at > 12 ? at - 12 : 0),
					   len - (at > 12 ? at - 12 : 0),
					   "\nOK outgoing\n", 13);
			line_at = p ? (size_t)(p + 1 - buf) : 0;
		}
	}
	ok = ok && last_line_is(buf, len, "OK luod ") &&
	     count_lines(buf, len, "OK ") == SLOW_REQS + 2 && fds == 1 &&
	     line_at >= at && line_at < len && sfd >= 0 &&
	     !luo_session_name(sfd, name) && !strcmp(name, FDQ);
	diag("fd order: %zu bytes, %d fd(s), the fd with the recv() at %zu, 'OK outgoing' at %zu",
	     len, fds, at, line_at);
	if (sfd >= 0)
		close(sfd);
	ok = ok && !ask(sock, "RELEASE " FDQ, line, sizeof(line), NULL) &&
	     !strcmp(line, "OK released");
	if (sock >= 0)
		close(sock);
	free(buf);
	result(ok, "behind %d STATUS replies, a session fd comes with its 'OK outgoing' line, and only it",
	       SLOW_REQS);
}

/*
 * A client asking for its own session over and over, never reading:
 * luod stops taking its requests once a few fds wait for it, instead of
 * dup()ing one per request until it has none left.
 */
static void robust_session_flood(void)
{
	static const char req[] = "SESSION " FLOOD " outgoing\n";
	static char reqs[NR_FLOOD_REQS * (sizeof(req) - 1)];
	int sock, fd = -1, before, during = -1, fds = 0, lines = 0, sent;
	char line[128], buf[4096];
	long long until;
	size_t off = 0;
	bool ok;

	for (sent = 0; sent < NR_FLOOD_REQS; sent++)
		memcpy(reqs + sent * (sizeof(req) - 1), req, sizeof(req) - 1);
	sock = luo_connect_timeout(SOCK, 5000);
	ok = sock >= 0 && !ask(sock, "SESSION " FLOOD " outgoing", line,
			       sizeof(line), &fd) &&
	     !strcmp(line, "OK outgoing") && fd >= 0;
	if (fd >= 0)
		close(fd);
	before = luod_fds();
	/* As much as the socket takes: luod soon stops reading it. */
	while (ok && off < sizeof(reqs)) {
		ssize_t n = send(sock, reqs + off, sizeof(reqs) - off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n <= 0)
			break;
		off += n;
	}
	sent = off / (sizeof(req) - 1);
	sleep_ms(500);
	during = luod_fds();
	ok = ok && before > 0 && during >= 0 && during <= before + 10 &&
	     ping_new(5000);
	diag("SESSION flood: %d requests sent, luod had %d fds before, %d during",
	     sent, before, during);
	/* Then every whole request gets its reply, each with an fd. */
	until = now_ms() + 30000;
	while (ok && lines < sent && now_ms() < until) {
		struct pollfd pfd = { .fd = sock, .events = POLLIN };
		ssize_t n, i;

		if (poll(&pfd, 1, 1000) <= 0)
			continue;
		n = luo_recv_fd(sock, &fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		if (fd >= 0) {
			fds++;
			close(fd);
		}
		for (i = 0; i < n; i++)
			lines += buf[i] == '\n';
	}
	diag("SESSION flood: %d replies, %d fds", lines, fds);
	ok = ok && lines == sent && fds == sent;
	if (sock >= 0)
		close(sock);
	sock = luo_connect_timeout(SOCK, 5000);
	ok = ok && sock >= 0 &&
	     !ask(sock, "RELEASE " FLOOD, line, sizeof(line), NULL) &&
	     !strcmp(line, "OK released");
	if (sock >= 0)
		close(sock);
	result(ok, "SESSION %d times unread does not use up luod's fds (at most 10 more), and each gets its fd once read",
	       NR_FLOOD_REQS);
}

static void robust_hostile(void)
{
	static char junk[8192 + LINE_MAX_TEST + 1];
	char buf[65536], *out;
	unsigned int x = 2463534242u;
	int lines = 0;
	bool eof, ok;
	ssize_t n;
	size_t i;

	/*
	 * Lines of 99 random bytes: every other one any byte (NULs, control
	 * characters: refused as such), the others no control character
	 * (non-ASCII, backslashes: refused as a bad request, echoed
	 * escaped).  Then a run too long.
	 */
	for (i = 0; i < 8192; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		if (i % 100 == 99)
			junk[i] = '\n';
		else if (i / 100 % 2)
			junk[i] = (char)(0x20 + x % 0xe0 == 0x7f ? '\\' :
					 0x20 + x % 0xe0);
		else
			junk[i] = (char)x;
	}
	memset(junk + 8192, 'Z', LINE_MAX_TEST);
	n = raw_request(junk, sizeof(junk) - 1, buf, sizeof(buf), 5000, &eof);
	ok = n >= 0 && plain_err_lines(buf, n, &lines) && lines >= 60 && eof &&
	     strstr(buf, "ERR request holds control character 0x") &&
	     strstr(buf, "ERR bad request '") && strstr(buf, "\\x") &&
	     strstr(buf, "longer than");
	diag("binary garbage: %d ERR line(s), %s", lines,
	     eof ? "then closed" : "not closed");
	result(ok && ping_new(5000),
	       "binary garbage, a line every 100 bytes, gets one printable ERR line per line (control characters refused, the rest echoed escaped), then the over-long run closes the connection; luod serves on");

	/* luod logs 20 refusals a second: the garbage used this second's. */
	sleep_ms(1100);
	memset(junk, 'A', 2000);
	junk[2000] = '\n';
	n = raw_request(junk, 2001, buf, sizeof(buf), 5000, &eof);
	diag("over-long line: '%.*s'", (int)strcspn(buf, "\n"), buf);
	result(n > 0 && !strncmp(buf, "ERR ", 4) && strstr(buf, "longer") &&
	       eof, "an over-long line is refused and its connection closed");

	/* No newline, then close: nothing to answer, nothing to do. */
	n = raw_request("SESSION " NOT_A_NAME,
			sizeof("SESSION " NOT_A_NAME) - 1, buf, sizeof(buf),
			500, &eof);
	sleep_ms(200);
	out = status_echo(false);
	result(n == 0 && *out && !strstr(out, NOT_A_NAME) &&
	       file_has(ROBUST_LOG, "unfinished request") && ping_new(5000),
	       "a request cut short by a close is logged, not served");
	free(out);
}

static void robust_names(void)
{
	/* Each with its length: some hold a NUL. */
	static const struct {
		const char *req;
		size_t len;
	} bad[] = {
#define R(s)	{ s "\n", sizeof(s) }
		R("SESSION xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
		R("SESSION"),
		R("SESSION tools-test-bad\0evil"),
		R("SESSION tools-test-bad\rSTATUS"),
		R("SESSION tools-test-bad\x01"),
		R("SESSION tools-test-bad\x7f"),
		R("SESSION tools-test-caf\xc3\xa9"),
		R("SESSION \x1b[2Jtools-test-bad"),
		R("RELEASE tools-test-bad\x1b"),
		R("RELEASE tools-test-caf\xc3\xa9"),
#undef R
	};
	static const char good[] =
		"!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_";
	char buf[4096], req[128], line[300], *out;
	int sock, fd, lines;
	bool eof, ok = true;
	ssize_t n;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		n = raw_request(bad[i].req, bad[i].len, buf, sizeof(buf),
				500, &eof);
		if (n <= 0 || !plain_err_lines(buf, n, &lines) || lines != 1) {
			diag("bad name %zu: '%s'", i, buf);
			ok = false;
		}
	}
	out = status_echo(false);
	ok = ok && *out && !strstr(out, "session tools-test-bad") &&
	     !strstr(out, "session tools-test-caf");
	free(out);
	result(ok, "bad session names (64 bytes, empty, NUL, CR, control, DEL, non-ASCII) are refused with one ERR line each, and none is created");

	/* 63 bytes of printable ASCII, no space: the longest valid name. */
	sock = luo_connect_timeout(SOCK, 5000);
	fd = -1;
	snprintf(req, sizeof(req), "SESSION %s outgoing", good);
	ok = sock >= 0 && strlen(good) == LUO_NAME_SIZE - 1 &&
	     !ask(sock, req, line, sizeof(line), &fd) &&
	     !strcmp(line, "OK outgoing") && fd >= 0;
	if (fd >= 0)
		close(fd);
	snprintf(req, sizeof(req), "RELEASE %s", good);
	ok = ok && !ask(sock, req, line, sizeof(line), NULL) &&
	     !strcmp(line, "OK released");
	if (sock >= 0)
		close(sock);
	result(ok, "a name of 63 printable ASCII bytes is accepted and released");

	result(file_has(ROBUST_LOG, "refused: request holds control character 0x00") &&
	       file_has(ROBUST_LOG, "refused: bad session name") &&
	       file_has(ROBUST_LOG, "refused: request longer than"),
	       "luod logs every refused request with its reason");
}

/* luoctl update in the background, cancelled by luoctl cancel. */
static void robust_cancel(void)
{
	static const char * const update[] = {
		"luoctl", "-s", SOCK, "update", NULL
	};
	static const char * const cancel[] = {
		"luoctl", "-s", SOCK, "cancel", NULL
	};
	static const char * const load[] = {
		"luoctl", "load", "/boot/bzImage", NULL
	};
	static const char * const unload[] = { "luoctl", "unload", NULL };
	struct client mute;
	char line[300], *out;
	long long until, t0;
	pid_t upd;
	int rc, st;
	bool ok, preparing = false;

	/*
	 * The silent client is what stops this update from kexecing: set it
	 * up first, and load nothing without it.
	 */
	mute = start_client(MUTE "-2", true, line, sizeof(line));
	diag("silent client: %s", line);
	if (strncmp(line, "setup ok", 8)) {
		result(false, "luoctl load: not tried, the silent client is not set up");
		result(false, "luoctl cancel: not tried, the silent client is not set up");
		goto out;
	}
	rc = run(&out, load);
	result(rc == 0 && luo_kexec_loaded() == 1 && strstr(out, " kho=on") &&
	       strstr(out, " liveupdate=on") && !strstr(out, "BOOT_IMAGE="),
	       "luoctl load loads a kernel with kho=on and liveupdate=on and no BOOT_IMAGE=");
	free(out);

	upd = spawn(update);
	until = now_ms() + 10000;
	while (!preparing && now_ms() < until) {
		out = status_echo(false);
		preparing = strstr(out, " update=preparing");
		free(out);
		if (!preparing)
			sleep_ms(50);
	}
	t0 = now_ms();
	rc = run(&out, cancel);
	free(out);
	ok = waitpid(upd, &st, 0) == upd && WIFEXITED(st) &&
	     WEXITSTATUS(st) == 1;
	t0 = now_ms() - t0;
	diag("update ended %lld ms after the cancel", t0);
	result(preparing && rc == 0 && ok && t0 < TIMEOUT_S * 1000 - 1000 &&
	       client_check(&mute, 1, 1) &&
	       file_has(ROBUST_LOG, "update cancelled: cancelled by pid"),
	       "luoctl cancel ends an update in progress: the requester fails, the client gets CANCEL");
out:
	kill(mute.pid, SIGKILL);
	waitpid(mute.pid, NULL, 0);
	close(mute.ctl);
	rc = run(&out, unload);
	free(out);
	if (rc || luo_kexec_loaded() == 1)
		diag("luoctl unload: exit %d", rc);
}

static void robust_luod(void)
{
	struct rlimit rl;

	/* Room for NR_MANY connections and then some. */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	require(start_luod_logged(ROBUST_LOG, 0, 0),
		"luod starts again, logging to a file");
	robust_many();
	robust_slow_readers();
	robust_fd_order();
	robust_session_flood();
	robust_hostile();
	robust_names();
	robust_cancel();
}

/* ---- a JSON syntax check, for luoctl status --json ---- */

static void json_blank(const char **p)
{
	while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')
		(*p)++;
}

static bool json_str(const char **p)
{
	const char *s = *p;
	int i;

	if (*s++ != '"')
		return false;
	for (; *s != '"'; s++) {
		if ((unsigned char)*s < 0x20)	/* NUL included */
			return false;
		if (*s != '\\')
			continue;
		s++;
		if (*s == 'u') {
			for (i = 1; i <= 4; i++)
				if (!isxdigit((unsigned char)s[i]))
					return false;
			s += 4;
		} else if (!*s || !strchr("\"\\/bfnrt", *s)) {
			return false;
		}
	}
	*p = s + 1;
	return true;
}

static bool json_num(const char **p)
{
	const char *s = *p;

	if (*s == '-')
		s++;
	if (!isdigit((unsigned char)*s))
		return false;
	if (*s == '0' && isdigit((unsigned char)s[1]))
		return false;	/* no leading zeros */
	while (isdigit((unsigned char)*s))
		s++;
	if (*s == '.') {
		if (!isdigit((unsigned char)*++s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!isdigit((unsigned char)*s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
	}
	*p = s;
	return true;
}

/* One JSON value at *@p, and blanks around it. */
static bool json_val(const char **p, int depth)
{
	static const char * const words[] = { "true", "false", "null" };
	char close;
	size_t i;

	json_blank(p);
	if (depth > 32)
		return false;
	if (**p == '"')
		return json_str(p);
	if (**p != '{' && **p != '[') {
		for (i = 0; i < ARRAY_SIZE(words); i++) {
			if (!strncmp(*p, words[i], strlen(words[i]))) {
				*p += strlen(words[i]);
				return true;
			}
		}
		return json_num(p);
	}
	close = **p == '{' ? '}' : ']';
	(*p)++;
	json_blank(p);
	if (**p == close) {
		(*p)++;
		return true;
	}
	for (;;) {
		if (close == '}') {
			json_blank(p);
			if (!json_str(p))
				return false;
			json_blank(p);
			if (*(*p)++ != ':')
				return false;
		}
		if (!json_val(p, depth + 1))
			return false;
		json_blank(p);
		if (**p == close) {
			(*p)++;
			return true;
		}
		if (*(*p)++ != ',')
			return false;
	}
}

/* Is @text one JSON value, and nothing else but blanks? */
static bool json_valid(const char *text)
{
	if (!json_val(&text, 0))
		return false;
	json_blank(&text);
	return !*text;
}

/* luoctl's exit status and output for @argv, stdout only unless @err. */
static int luoctl_out(char **out, bool err, const char *const argv[])
{
	return run_opts(out, argv, true, err);
}

static void robust_luoctl(void)
{
	static const char * const help[] = { "luoctl", "--help", NULL };
	static const char * const version[] = { "luoctl", "--version", NULL };
	static const char * const bogus[] = { "luoctl", "--bogus", NULL };
	static const char * const nocmd[] = { "luoctl", "frobnicate", NULL };
	static const char * const absent[] = {
		"luoctl", "-s", "/run/nobody-listens.sock", "status", NULL
	};
	static const char * const release[] = {
		"luoctl", "-s", SOCK, "release", NOT_A_NAME, NULL
	};
	static const char * const cancel[] = {
		"luoctl", "-s", SOCK, "cancel", NULL
	};
	static const char * const silent[] = {
		"luoctl", "-s", SILENT_SOCK, "--timeout", "1", "status", NULL
	};
	static const char * const json[] = {
		"luoctl", "-s", SOCK, "status", "--json", NULL
	};
	static const char * const dry[] = {
		"luoctl", "load", "--dry-run", "--cmdline",
		"BOOT_IMAGE=/boot/old root=/dev/vda console=ttyS0 -- init1",
		"--append", "foo=1 -- init2", "/boot/bzImage", NULL
	};
	static const char * const dry_on[] = {
		"luoctl", "load", "--dry-run", "--cmdline",
		"quiet kho=on liveupdate=1", "/boot/bzImage", "/boot/initrd", NULL
	};
	static const char * const noval[] = { "luoctl", "-s", SOCK, "-t", NULL };
	static const char * const quote[] = {
		"luoctl", "load", "--dry-run", "--append", "foo=\"a b",
		"/boot/bzImage", NULL
	};
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int rc[4], lsn;
	long long t0;
	char *out;
	bool ok;

	rc[0] = luoctl_out(&out, false, help);
	ok = !rc[0] && !strncmp(out, "usage: luoctl", 13) &&
	     strstr(out, "exit status");
	free(out);
	rc[0] = luoctl_out(&out, false, version);
	ok = ok && !rc[0] && !strncmp(out, "luoctl ", 7);
	free(out);
	result(ok, "luoctl --help prints its usage on stdout and exits 0; --version too");

	rc[0] = luoctl_out(&out, true, bogus);
	free(out);
	rc[1] = luoctl_out(&out, true, nocmd);
	free(out);
	rc[2] = luoctl_out(&out, true, absent);
	ok = strstr(out, "not running");
	free(out);
	rc[3] = luoctl_out(&out, true, release);
	free(out);
	diag("exit: bad option %d, bad command %d, no luod %d, ERR %d",
	     rc[0], rc[1], rc[2], rc[3]);
	rc[0] = rc[0] == 2 && rc[1] == 2 && rc[2] == 3 && rc[3] == 1;
	rc[1] = luoctl_out(&out, true, cancel);
	free(out);
	result(ok && rc[0] && rc[1] == 1,
	       "luoctl exits 2 on bad usage, 3 when luod is not running, 1 when luod refuses");

	rc[0] = luoctl_out(&out, true, noval);
	ok = rc[0] == 2 && strstr(out, "option -t needs a value");
	free(out);
	rc[0] = luoctl_out(&out, true, quote);
	result(ok && rc[0] == 2 && strstr(out, "unclosed") &&
	       !strstr(out, "would load"),
	       "luoctl says an option lacks its value, and load refuses an unclosed quote (the next kernel would lose liveupdate=on), both exit 2");
	free(out);

	/* A socket that accepts (in its backlog) and never answers. */
	unlink(SILENT_SOCK);
	memcpy(addr.sun_path, SILENT_SOCK, sizeof(SILENT_SOCK));
	lsn = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ok = lsn >= 0 && !bind(lsn, (struct sockaddr *)&addr, sizeof(addr)) &&
	     !listen(lsn, 4);
	t0 = now_ms();
	rc[0] = luoctl_out(&out, true, silent);
	t0 = now_ms() - t0;
	free(out);
	if (lsn >= 0)
		close(lsn);
	unlink(SILENT_SOCK);
	result(ok && rc[0] == 4 && t0 >= 900 && t0 < 5000,
	       "luoctl --timeout 1 gives up on a silent luod after 1 s with exit 4 (took %lld ms)",
	       t0);

	rc[0] = luoctl_out(&out, false, json);
	result(!rc[0] && json_valid(out) &&
	       !strncmp(out, "{\"luod\":{\"pid\":", 15) &&
	       strstr(out, "},\"sessions\":[") &&
	       strstr(out, "\"sessions\":[{\"name\":\"" MUTE "\",\"kind\":\"incoming\"") &&
	       strstr(out, "],\"timeline\":{\"previous\":\"yes\",\"one-clock\":\"yes\",") &&
	       strstr(out, ",\"steps\":[{\"name\":\"reboot\",\"start_us\":0,") &&
	       strstr(out, "}]}}"),
	       "luoctl status --json is valid JSON: luod's state, sessions and timeline");
	free(out);

	rc[0] = luoctl_out(&out, false, dry);
	ok = !rc[0] && has_line(out, "command line: root=/dev/vda console=ttyS0 foo=1 kho=on liveupdate=on -- init1 init2\n");
	free(out);
	rc[0] = luoctl_out(&out, false, dry_on);
	result(ok && !rc[0] &&
	       has_line(out, "would load /boot/bzImage with /boot/initrd\n") &&
	       has_line(out, "command line: quiet kho=on liveupdate=1\n") &&
	       luo_kexec_loaded() != 1,
	       "luoctl load builds the next command line: BOOT_IMAGE= dropped, --append before init's args, kho=on and liveupdate=on ensured");
	free(out);
	result(stop_luod(), "luod exits cleanly after all that");
}

/* utime + stime of @pid, in clock ticks, or -1. */
static long long cpu_ticks(pid_t pid)
{
	unsigned long long ut, st;
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* After the command name: state is field 3, utime 14, stime 15. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -1;
	return ut + st;
}

/* luod's soft RLIMIT_NOFILE, from /proc/PID/limits, or -1. */
static long long luod_nofile(void)
{
	char path[64], buf[4096], *p;
	long long soft = -1;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/limits", (int)luod_pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strstr(buf, "Max open files");
	if (p)
		sscanf(p + 14, "%lld", &soft);
	return soft;
}

/* luod with few fds, hit by more connections than it has fds. */
static void robust_fds(void)
{
	static int socks[NR_FLOOD];
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int i, made = 0, held = -1, refused = 0, sock;
	long long c0, c1, limit;
	char buf[256];
	ssize_t n;
	bool ok;

	require(start_luod_logged(ROBUST_LOG, LOW_NOFILE, LOW_NOFILE_MAX),
		"luod starts with RLIMIT_NOFILE %d (hard %d)", LOW_NOFILE,
		LOW_NOFILE_MAX);
	limit = luod_nofile();
	result(limit == LOW_NOFILE_MAX,
	       "luod raises RLIMIT_NOFILE to its hard limit (%lld)", limit);

	/* Non-blocking: a full backlog must not hang the test. */
	memcpy(addr.sun_path, SOCK, sizeof(SOCK));
	for (i = 0; i < NR_FLOOD; i++) {
		socks[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
				  SOCK_NONBLOCK, 0);
		if (socks[i] >= 0 &&
		    connect(socks[i], (struct sockaddr *)&addr, sizeof(addr))) {
			close(socks[i]);
			socks[i] = -1;
		}
		made += socks[i] >= 0;
	}
	sleep_ms(500);	/* for luod to take or refuse them all */
	c0 = cpu_ticks(luod_pid);
	sleep_ms(1000);
	c1 = cpu_ticks(luod_pid);
	diag("%d connections made; luod used %lld ticks of CPU in 1 s (%ld a second)",
	     made, c1 - c0, sysconf(_SC_CLK_TCK));
	for (i = 0; i < NR_FLOOD; i++) {
		if (socks[i] < 0)
			continue;
		n = recv(socks[i], buf, sizeof(buf) - 1, MSG_DONTWAIT);
		if (n > 0 && !strncmp(buf, "ERR ", 4))
			refused++;
		else if (n < 0 && errno == EAGAIN && held < 0)
			held = i;
	}
	diag("%d refused with ERR; first one held: %d", refused, held);
	result(made > LOW_NOFILE_MAX && c0 >= 0 && c1 >= 0 &&
	       c1 - c0 < sysconf(_SC_CLK_TCK) / 5 && refused > 0,
	       "out of fds, luod refuses the extra connections with ERR and does not spin");

	ok = held >= 0 && ping_within(socks[held], 5000);
	for (i = 0; i < NR_FLOOD; i++)
		if (socks[i] >= 0)
			close(socks[i]);
	sleep_ms(200);
	sock = luo_connect_timeout(SOCK, 5000);
	ok = ok && sock >= 0 && ping_within(sock, 5000) &&
	     file_has(ROBUST_LOG, "out of file descriptors");
	if (sock >= 0)
		close(sock);
	/* Stopped whatever the checks said: it holds /dev/liveupdate. */
	ok = stop_luod() && ok;
	result(ok,
	       "luod keeps serving its connections, and new ones once fds are free");
}

/* ---- stage 1 ---- */

static void stage1(void)
{
	static const char * const resume[] = {
		"luo-demo-vmm", "resume", "-s", SOCK, "-N", VMM,
		"-n", "200", "-p", "100", NULL
	};
	struct liveupdate_file_info files[4];
	char line[300], name[LUO_NAME_SIZE], want[128], *out;
	unsigned int kind = 0, count = 0;
	int sock, sfd = -1, memfd = -1, rc;
	const char *why;

	printf("1..%d\n", STAGE1_TESTS);
	require(start_luod(), "luod starts after the update and answers PING");

	out = status();
	result(has_line(out, "session " SESSION " kind=incoming files=1 client=none") &&
	       has_line(out, "  file token=7 state=incoming ") &&
	       has_line(out, "session " VMM " kind=incoming files=2 client=none") &&
	       has_line(out, "session " MUTE " kind=incoming files=0 client=none"),
	       "luoctl status lists the three incoming sessions");
	free(out);

	sock = luo_connect(SOCK);
	if (sock < 0)
		bail("connect to luod: %s", strerror(-sock));
	ask(sock, "SESSION " SESSION " incoming", line, sizeof(line), &sfd);
	diag("SESSION " SESSION " incoming: %s", line);
	require(!strcmp(line, "OK incoming") && sfd >= 0 &&
		!luo_session_name(sfd, name) && !strcmp(name, SESSION) &&
		!luo_query(sfd, &kind, files, 4, &count) &&
		kind == LIVEUPDATE_SESSION_INCOMING && count == 1 &&
		files[0].token == TOKEN &&
		files[0].state == LIVEUPDATE_FILE_INCOMING,
		"luod hands the incoming session back by name, with its memfd");

	rc = luo_retrieve_fd(sfd, TOKEN, &memfd);
	why = rc ? strerror(-rc) : check_data(memfd);
	if (why)
		diag("memfd: %s", why);
	result(!why, "the memfd comes back with its %d bytes intact",
	       DATA_SIZE);

	rc = luo_finish(sfd);
	if (rc)
		diag("FINISH: %s", strerror(-rc));
	result(!rc && !luo_query(sfd, &kind, NULL, 0, &count) &&
	       kind == LIVEUPDATE_SESSION_OUTGOING && !count &&
	       (memfd < 0 || !check_data(memfd)),
	       "FINISH makes it an empty outgoing session; the memfd stays usable");

	out = status();
	snprintf(want, sizeof(want), "session " SESSION " kind=outgoing files=0 client=%d",
		 (int)getpid());
	result(has_line(out, want), "luoctl status shows the finished session");
	result(has_line(out, "timeline previous=yes one-clock=yes") &&
	       has_line(out, "  step name=reboot start_us=0 ") &&
	       has_line(out, "  step name=freeze ") &&
	       has_line(out, "  step name=jump ") &&
	       has_line(out, "  step name=boot ") &&
	       has_line(out, "  step name=retrieve-fd ") &&
	       has_line(out, "  step name=finish "),
	       "luoctl status shows the kernel's timeline of the update, both kernels on one clock");
	free(out);

	rc = run(&out, resume);
	result(rc == 0 && strstr(out, "guest RAM intact") &&
	       strstr(out, "vmm: final step"),
	       "the demo VMM resumes with all of its guest RAM verified");
	free(out);

	out = status();
	result(*out && !strstr(out, "session " VMM " "),
	       "the VMM released its finished session");
	result(has_line(out, "session " MUTE " kind=incoming files=0 client=none"),
	       "luod keeps holding an incoming session nobody claimed");
	free(out);

	close(sock);
	result(stop_luod() && access(SOCK, F_OK) && errno == ENOENT,
	       "luod exits cleanly on SIGTERM and removes its socket");

	robust_luod();
	robust_luoctl();
	robust_fds();
}

int main(void)
{
	const char *env = getenv("LUO_STAGE");
	int stage = env ? atoi(env) : 0, plan;

	signal(SIGPIPE, SIG_IGN);
	printf("TAP version 13\n");
	if (access(LUO_DEVICE, F_OK)) {
		printf("1..0 # SKIP %s missing: live update is off\n",
		       LUO_DEVICE);
		return 0;
	}
	if (stage == 0) {
		stage0();
		plan = STAGE0_TESTS;
	} else if (stage == 1) {
		stage1();
		plan = STAGE1_TESTS;
	} else {
		printf("1..0 # SKIP no stage %d\n", stage);
		return 0;
	}
	if (test_no != plan) {
		diag("ran %d tests, planned %d", test_no, plan);
		failures++;
	}
	diag("stage %d: %d failure(s)", stage, failures);
	return failures ? 1 : 0;
}
