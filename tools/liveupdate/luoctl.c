// SPDX-License-Identifier: GPL-2.0
/*
 * luoctl: operator command line for live updates driven by luod.
 *
 *   luoctl [OPTIONS] status [--json]
 *   luoctl [OPTIONS] update
 *   luoctl [OPTIONS] cancel
 *   luoctl [OPTIONS] release NAME
 *   luoctl load [--dry-run] [--cmdline LINE] [--append ARGS] KERNEL [INITRD]
 *   luoctl unload
 *
 * OPTIONS: -s SOCKET (default /run/luod.sock), -t SECONDS (how long any
 * talk with luod may take), --json, -h, -V.  status, cancel and release
 * ask luod; update asks luod to get its clients ready and kexec, and
 * returns only if that failed; load loads the next kernel with
 * kexec_file_load() on a command line built by luo_next_cmdline().  The
 * exit status says what happened (enum below); errors go to stderr
 * prefixed with "luoctl: ".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools.h"
#include "libluo.h"

#define DEFAULT_SOCKET	"/run/luod.sock"
/* Default limits on talking to luod, in seconds. */
#define DEFAULT_TIMEOUT		30
/* luod's default: up to 10 s each to sync, settle, get ready, sync again. */
#define DEFAULT_UPDATE_TIMEOUT	120
#define LINE_SIZE	2048

/* Exit statuses, documented in the README and in --help. */
enum {
	EXIT_OK,		/* done */
	EXIT_FAIL,		/* luod or the kernel refused, or said ERR */
	EXIT_USAGE,		/* bad command line */
	EXIT_UNREACHABLE,	/* luod is not running or cannot be reached */
	EXIT_TIMEOUT,		/* no answer within --timeout */
	EXIT_LU_OFF,		/* live update is off on this kernel */
};

static const char *sock_path = DEFAULT_SOCKET;
static int timeout_s = -1;	/* -1: the command's default */
static bool json;
static long long deadline;	/* CLOCK_MONOTONIC ms */

static __printf(1, 2) void err(const char *fmt, ...)
{
	va_list ap;

	fputs("luoctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void print_usage(FILE *f)
{
	fprintf(f,
		"usage: luoctl [OPTIONS] status [--json]\n"
		"       luoctl [OPTIONS] update\n"
		"       luoctl [OPTIONS] cancel\n"
		"       luoctl [OPTIONS] release NAME\n"
		"       luoctl load [--dry-run] [--cmdline LINE] [--append ARGS] KERNEL [INITRD]\n"
		"       luoctl unload\n"
		"options:\n"
		"  -s, --socket SOCKET   luod's socket (default %s)\n"
		"  -t, --timeout SECONDS give up talking to luod after SECONDS\n"
		"                        (default %d, update %d)\n"
		"  -j, --json            status as JSON\n"
		"  -h, --help            this text\n"
		"  -V, --version         luoctl's version\n"
		"exit status: 0 done, 1 failed (luod said why), 2 bad usage,\n"
		"  3 luod not running or unreachable, 4 timed out,\n"
		"  5 live update is off on this kernel\n",
		DEFAULT_SOCKET, DEFAULT_TIMEOUT, DEFAULT_UPDATE_TIMEOUT);
}

static __noreturn __printf(1, 2) void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("luoctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	print_usage(stderr);
	exit(EXIT_USAGE);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* What is left of --timeout, in ms (0 once it is over). */
static int left_ms(void)
{
	long long left = deadline - now_ms();

	return left > 0 ? (int)left : 0;
}

/* The running kernel's command line, malloc()ed, or NULL. */
static char *proc_cmdline(void)
{
	FILE *f = fopen("/proc/cmdline", "re");
	char *line = NULL;
	size_t size = 0;
	ssize_t len;

	if (!f)
		return NULL;
	len = getline(&line, &size, f);
	fclose(f);
	if (len < 0) {
		free(line);
		return NULL;
	}
	while (len && (line[len - 1] == '\n' || line[len - 1] == ' '))
		line[--len] = '\0';
	return line;
}

/* Say why live update is off; true if it is (/dev/liveupdate missing). */
static bool live_update_off(void)
{
	char *cmdline;

	if (!access(LUO_DEVICE, F_OK))
		return false;
	cmdline = proc_cmdline();
	if (cmdline && !luo_cmdline_has_liveupdate(cmdline))
		err("live update is off: %s does not exist (liveupdate=on is not on the kernel command line)",
		    LUO_DEVICE);
	else
		err("live update is off: %s does not exist (KHO is disabled or LUO failed to start; see the kernel log)",
		    LUO_DEVICE);
	free(cmdline);
	return true;
}

/* Connect to luod: the socket, or -(exit status) after a message. */
static int connect_luod(int default_s)
{
	int sock;

	deadline = now_ms() + 1000LL * (timeout_s >= 0 ? timeout_s : default_s);
	sock = luo_connect_timeout(sock_path, left_ms());
	if (sock >= 0)
		return sock;
	if (sock == -ETIMEDOUT) {
		err("luod at %s did not accept the connection within %d s",
		    sock_path, timeout_s >= 0 ? timeout_s : default_s);
		return -EXIT_TIMEOUT;
	}
	if (live_update_off())
		return -EXIT_LU_OFF;
	if (sock == -ENOENT || sock == -ECONNREFUSED)
		err("luod is not running (nothing listens on %s)", sock_path);
	else
		err("cannot connect to luod at %s: %s", sock_path,
		    strerror(-sock));
	return -EXIT_UNREACHABLE;
}

/* The exit status for a failed exchange about @what, after a message. */
static int talk_failed(int ret, const char *what)
{
	if (ret == -ETIMEDOUT || ret == -EAGAIN) {
		err("luod did not answer %s in time (--timeout)", what);
		return EXIT_TIMEOUT;
	}
	if (ret == -ECONNRESET || ret == -EPIPE)
		err("luod closed the connection without answering %s", what);
	else
		err("talking to luod: %s", strerror(-ret));
	return EXIT_FAIL;
}

/* Send @req, read the reply into @line: 0 or an exit status. */
static int ask(int sock, const char *req, char *line, size_t size)
{
	int ret = luo_send_line(sock, req);

	if (!ret)
		ret = luo_recv_line(sock, line, size, NULL, left_ms());
	return ret < 0 ? talk_failed(ret, req) : 0;
}

/* Connect, send @req, expect "OK ...": 0 or an exit status. */
static int simple_request(const char *req, char *line, size_t size)
{
	int sock, ret;

	sock = connect_luod(DEFAULT_TIMEOUT);
	if (sock < 0)
		return -sock;
	ret = ask(sock, req, line, size);
	close(sock);
	if (ret)
		return ret;
	if (strncmp(line, "OK", 2) || (line[2] && line[2] != ' ')) {
		err("luod: %s", line);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* ---- status ---- */

/* Undo luod's \xHH escapes in place. */
static void unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] == 'x' && isxdigit((unsigned char)s[2]) &&
		    isxdigit((unsigned char)s[3])) {
			char hex[3] = { s[2], s[3], '\0' };

			*out++ = (char)strtoul(hex, NULL, 16);
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);	/* bytes, read as Latin-1 */
		else
			putchar(c);
	}
	putchar('"');
}

static bool numeric_key(const char *key)
{
	static const char * const keys[] = {
		"pid", "clients", "sessions", "connections", "token", "client",
		"start_us", "end_us", "count",
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(keys); i++)
		if (!strcmp(key, keys[i]))
			return true;
	return false;
}

/* Print the key=value fields of @fields as JSON members. */
static void json_fields(char *fields, bool first)
{
	char *save = NULL, *kv, *val;

	for (kv = strtok_r(fields, " ", &save); kv;
	     kv = strtok_r(NULL, " ", &save)) {
		val = strchr(kv, '=');
		/* "files=N" counts the "files" array that follows. */
		if (!val || !strncmp(kv, "files=", 6))
			continue;
		*val++ = '\0';
		unescape(val);
		printf("%s", first ? "" : ",");
		first = false;
		json_string(kv);
		putchar(':');
		if (numeric_key(kv) && val[0] && strspn(val, "0123456789") ==
		    strlen(val))
			printf("%s", val);
		else if (!strcmp(kv, "client") && !strcmp(val, "none"))
			printf("null");
		else
			json_string(val);
	}
}

/* STATUS lines as one JSON object; see the README for its shape. */
static void status_json(char **lines, int n)
{
	bool in_session = false, any_file = false, any_session = false;
	bool in_timeline = false, any_step = false;
	char *name, *rest;
	int i;

	printf("{");
	for (i = 0; i < n; i++) {
		char *l = lines[i];

		if (!strncmp(l, "luod ", 5)) {
			printf("\"luod\":{");
			json_fields(l + 5, true);
			printf("},\"sessions\":[");
		} else if (!strncmp(l, "session ", 8)) {
			name = l + 8;
			rest = strchr(name, ' ');
			if (rest)
				*rest++ = '\0';
			unescape(name);
			printf("%s%s{\"name\":", in_session ? "]}" : "",
			       any_session ? "," : "");
			json_string(name);
			if (rest)
				json_fields(rest, false);
			printf(",\"files\":[");
			in_session = true;
			any_session = true;
			any_file = false;
		} else if (!strncmp(l, "  file ", 7) && in_session) {
			printf("%s{", any_file ? "," : "");
			json_fields(l + 7, true);
			printf("}");
			any_file = true;
		} else if (!strncmp(l, "timeline ", 9) && !in_timeline) {
			printf("%s],\"timeline\":{", in_session ? "]}" : "");
			json_fields(l + 9, true);
			printf(",\"steps\":[");
			in_session = false;
			in_timeline = true;
		} else if (!strncmp(l, "  step ", 7) && in_timeline) {
			printf("%s{", any_step ? "," : "");
			json_fields(l + 7, true);
			printf("}");
			any_step = true;
		}
	}
	if (in_timeline)
		printf("]}}\n");
	else
		printf("%s]}\n", in_session ? "]}" : "");
}

/* Read the @n lines of a STATUS body; 0 or an exit status. */
static int read_lines(int sock, char **lines, int n)
{
	char line[LINE_SIZE];
	int i, ret;

	for (i = 0; i < n; i++) {
		ret = luo_recv_line(sock, line, sizeof(line), NULL, left_ms());
		if (ret < 0)
			return talk_failed(ret, "STATUS");
		lines[i] = strdup(line);
		if (!lines[i]) {
			err("out of memory");
			return EXIT_FAIL;
		}
	}
	return 0;
}

static int cmd_status(void)
{
	char line[LINE_SIZE], **lines;
	int sock, n, i, ret;

	sock = connect_luod(DEFAULT_TIMEOUT);
	if (sock < 0)
		return -sock;
	ret = ask(sock, "STATUS", line, sizeof(line));
	if (ret)
		goto out;
	if (strncmp(line, "OK ", 3) || sscanf(line + 3, "%d", &n) != 1 ||
	    n < 0) {
		err("luod: %s", line);
		ret = EXIT_FAIL;
		goto out;
	}
	lines = calloc(n ? n : 1, sizeof(*lines));
	if (!lines) {
		err("out of memory");
		ret = EXIT_FAIL;
		goto out;
	}
	ret = read_lines(sock, lines, n);
	if (!ret && json)
		status_json(lines, n);
	for (i = 0; !ret && !json && i < n; i++)
		puts(lines[i]);
	for (i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
out:
	close(sock);
	return ret;
}

/* ---- update, cancel, release ---- */

static int cmd_update(void)
{
	char line[LINE_SIZE];
	int sock, ret;

	sock = connect_luod(DEFAULT_UPDATE_TIMEOUT);
	if (sock < 0)
		return -sock;
	fflush(stdout);
	/*
	 * luod answers only if the update failed: the reboot never returns.
	 * Giving up closes the connection, which makes luod cancel.
	 */
	ret = ask(sock, "UPDATE", line, sizeof(line));
	close(sock);
	if (ret)
		return ret;
	if (!strncmp(line, "ERR ", 4)) {
		err("update failed: %s", line + 4);
		return EXIT_FAIL;
	}
	err("unexpected answer from luod: %s", line);
	return EXIT_FAIL;
}

static int cmd_cancel(void)
{
	char line[LINE_SIZE];
	int ret = simple_request("CANCEL", line, sizeof(line));

	if (!ret)
		printf("update cancelled\n");
	return ret;
}

static int cmd_release(const char *name)
{
	char req[LINE_SIZE], line[LINE_SIZE];
	int ret;

	snprintf(req, sizeof(req), "RELEASE %s", name);
	ret = simple_request(req, line, sizeof(line));
	if (!ret)
		printf("released session %s\n", name);
	return ret;
}

/* ---- load, unload ---- */

static const char *load_hint(int ret)
{
	switch (ret) {
	case -EPERM:
		return " (needs CAP_SYS_BOOT; or kernel.kexec_load_disabled or lockdown is on)";
	case -ENOEXEC:
		return " (not a kernel image this kernel can load)";
	case -EINVAL:
		return " (bad image, or command line too long)";
	case -EKEYREJECTED:
	case -EBADMSG:
		return " (the image's signature was rejected)";
	case -EBUSY:
		return " (a kexec is under way)";
	case -ENOSYS:
		return " (this kernel has no kexec_file_load: CONFIG_KEXEC_FILE is off)";
	}
	return "";
}

struct load_args {
	const char *kernel, *initrd, *base;
	char *append;		/* every --append, space-separated */
	bool dry_run;
};

/*
 * An unclosed '"' would swallow the rest of the line into one value, and
 * with it the kho=on and liveupdate=on that luod's handover needs.
 */
static void check_quotes(const char *opt, const char *args)
{
	size_t n = 0;

	for (; *args; args++)
		n += *args == '"';
	if (n % 2)
		usage_error("load: %s has an unclosed '\"'", opt);
}

static void add_append(struct load_args *a, const char *args)
{
	char *joined;

	check_quotes("--append", args);
	if (asprintf(&joined, "%s%s%s", a->append ? a->append : "",
		     a->append ? " " : "", args) < 0) {
		err("out of memory");
		exit(EXIT_FAIL);
	}
	free(a->append);
	a->append = joined;
}

static void parse_load(int argc, char **argv, struct load_args *a)
{
	int i;

	for (i = 0; i < argc; i++) {
		const char *arg = argv[i];

		if (!strcmp(arg, "--append") || !strcmp(arg, "--cmdline")) {
			if (++i == argc)
				usage_error("%s needs a value", arg);
			if (arg[2] == 'a')
				add_append(a, argv[i]);
			else
				a->base = argv[i];
		} else if (!strncmp(arg, "--append=", 9)) {
			add_append(a, arg + 9);
		} else if (!strncmp(arg, "--cmdline=", 10)) {
			a->base = arg + 10;
		} else if (!strcmp(arg, "--dry-run") || !strcmp(arg, "-n")) {
			a->dry_run = true;
		} else if (arg[0] == '-' && arg[1]) {
			usage_error("load: unknown option %s", arg);
		} else if (!a->kernel) {
			a->kernel = arg;
		} else if (!a->initrd) {
			a->initrd = arg;
		} else {
			usage_error("load: too many arguments");
		}
	}
	if (!a->kernel)
		usage_error("load: which KERNEL?");
	if (a->base)
		check_quotes("--cmdline", a->base);
}

static int cmd_load(int argc, char **argv)
{
	struct load_args a = { 0 };
	char *current = NULL, *line;
	int ret;

	parse_load(argc, argv, &a);
	if (!a.base) {
		current = proc_cmdline();
		if (!current) {
			err("cannot read /proc/cmdline: %s", strerror(errno));
			return EXIT_FAIL;
		}
	}
	line = luo_next_cmdline(a.base ? a.base : current, a.append);
	free(current);
	free(a.append);
	if (!line) {
		err("out of memory");
		return EXIT_FAIL;
	}
	ret = a.dry_run ? 0 : luo_kexec_load(a.kernel, a.initrd, line);
	if (ret) {
		err("cannot load %s%s%s: %s%s", a.kernel,
		    a.initrd ? " with " : "", a.initrd ? a.initrd : "",
		    strerror(-ret), load_hint(ret));
		free(line);
		return EXIT_FAIL;
	}
	printf("%s %s%s%s\ncommand line: %s\n",
	       a.dry_run ? "would load" : "loaded", a.kernel,
	       a.initrd ? " with " : " (no initramfs)",
	       a.initrd ? a.initrd : "", line);
	free(line);
	return EXIT_OK;
}

static int cmd_unload(void)
{
	int ret = luo_kexec_unload();

	if (ret) {
		err("cannot unload: %s", strerror(-ret));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* ---- main ---- */

static void parse_global(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long t;
	int opt;

	opterr = 0;
	/*
	 * "+": stop at the command; its own options are parsed after.  ":":
	 * a missing argument is ':', told apart from an unknown option.
	 */
	while ((opt = getopt_long(argc, argv, "+:s:t:jhV", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			sock_path = optarg;
			break;
		case 't':
			t = strtol(optarg, &end, 10);
			if (*end || end == optarg || t <= 0 || t > 86400)
				usage_error("--timeout wants 1..86400 seconds, not '%s'",
					    optarg);
			timeout_s = (int)t;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			print_usage(stdout);
			exit(EXIT_OK);
		case 'V':
			printf("luoctl %s\n", LUO_TOOLS_VERSION);
			exit(EXIT_OK);
		case ':':
			usage_error("option %s needs a value", argv[optind - 1]);
		default:
			/* optopt: the letter, or a long option's given a value. */
			if (!strncmp(argv[optind - 1], "--", 2) && optopt)
				usage_error("option %s takes no value",
					    argv[optind - 1]);
			if (optopt)	/* maybe among others: "-jx" */
				usage_error("unknown option -%c", optopt);
			usage_error("unknown option %s", argv[optind - 1]);
		}
	}
}

int main(int argc, char **argv)
{
	const char *cmd;
	int i, n;

	parse_global(argc, argv);
	i = optind;
	if (i == argc)
		usage_error("which command?");
	cmd = argv[i++];
	n = argc - i;
	if (!strcmp(cmd, "status")) {
		for (; i < argc; i++) {
			if (strcmp(argv[i], "--json") && strcmp(argv[i], "-j"))
				usage_error("status: unknown argument %s",
					    argv[i]);
			json = true;
		}
		return cmd_status();
	}
	if (!strcmp(cmd, "load"))
		return cmd_load(n, argv + i);
	if (!strcmp(cmd, "release")) {
		if (n != 1)
			usage_error("release: which NAME?");
		return cmd_release(argv[i]);
	}
	if (n)
		usage_error("%s: unexpected argument %s", cmd, argv[i]);
	if (!strcmp(cmd, "unload"))
		return cmd_unload();
	if (!strcmp(cmd, "update"))
		return cmd_update();
	if (!strcmp(cmd, "cancel"))
		return cmd_cancel();
	usage_error("unknown command %s", cmd);
}
