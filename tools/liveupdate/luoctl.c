// SPDX-License-Identifier: GPL-2.0
/*
 * luoctl: operator command line for live updates driven by luod.
 *
 *   luoctl [-s SOCKET] status
 *   luoctl load KERNEL [INITRD] [--append ARGS]
 *   luoctl unload
 *   luoctl [-s SOCKET] update
 *
 * status asks luod (socket default /run/luod.sock) for its sessions; load
 * loads the next kernel with kexec_file_load(), with the running kernel's
 * command line plus ARGS and "liveupdate=on" kept; update asks luod to get
 * its clients ready and kexec, and returns only if that failed.  Exit
 * status 0 on success, 1 on failure, 2 on bad usage; errors go to stderr
 * prefixed with "luoctl: ".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools.h"
#include "libluo.h"

#define DEFAULT_SOCKET	"/run/luod.sock"

static const char *sock_path = DEFAULT_SOCKET;

static __printf(1, 2) void err(const char *fmt, ...)
{
	va_list ap;

	fputs("luoctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static __noreturn void print_usage(void)
{
	fprintf(stderr,
		"usage: luoctl [-s SOCKET] status\n"
		"       luoctl load KERNEL [INITRD] [--append ARGS]\n"
		"       luoctl unload\n"
		"       luoctl [-s SOCKET] update\n"
		"  -s SOCKET  luod's socket (default %s)\n", DEFAULT_SOCKET);
	exit(2);
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
static int live_update_off(void)
{
	char *cmdline;

	if (!access(LUO_DEVICE, F_OK))
		return 0;
	cmdline = proc_cmdline();
	if (cmdline && !luo_cmdline_has_liveupdate(cmdline))
		err("live update is off: %s does not exist (liveupdate=on is not on the kernel command line)",
		    LUO_DEVICE);
	else
		err("live update is off: %s does not exist (KHO is disabled or LUO failed to start; see the kernel log)",
		    LUO_DEVICE);
	free(cmdline);
	return 1;
}

static int connect_luod(void)
{
	int sock = luo_connect(sock_path);

	if (sock >= 0)
		return sock;
	if (live_update_off())
		return -1;
	if (sock == -ENOENT || sock == -ECONNREFUSED)
		err("luod is not running (nothing listens on %s)", sock_path);
	else
		err("cannot connect to luod at %s: %s", sock_path,
		    strerror(-sock));
	return -1;
}

/* Send @req and read the reply line into @line; 0, or -1 after a message. */
static int ask(int sock, const char *req, char *line, size_t size)
{
	int ret = luo_send_line(sock, req);

	if (!ret)
		ret = luo_recv_line(sock, line, size, NULL, -1);
	if (ret == -ECONNRESET) {
		err("luod closed the connection without answering %s", req);
		return -1;
	}
	if (ret < 0) {
		err("talking to luod: %s", strerror(-ret));
		return -1;
	}
	return 0;
}

static int cmd_status(void)
{
	char line[1024];
	int sock, n, i, ret;

	sock = connect_luod();
	if (sock < 0)
		return 1;
	if (ask(sock, "STATUS", line, sizeof(line)))
		return 1;
	if (strncmp(line, "OK ", 3) || sscanf(line + 3, "%d", &n) != 1) {
		err("luod: %s", line);
		return 1;
	}
	/* The body can be long (a line per session and file): read in bulk. */
	for (i = 0; i < n;) {
		ssize_t len = read(sock, line, sizeof(line));

		if (len < 0 && errno == EINTR)
			continue;
		if (len <= 0) {
			err("reading luod's status: %s",
			    len ? strerror(errno) : "connection closed");
			return 1;
		}
		for (ret = 0; ret < len && i < n; ret++)
			i += line[ret] == '\n';
		fwrite(line, 1, ret, stdout);
	}
	close(sock);
	return 0;
}

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

static int cmd_load(int argc, char **argv)
{
	const char *kernel = NULL, *initrd = NULL, *append = NULL;
	char *cmdline, *full, *line;
	int i, ret;

	for (i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--append")) {
			if (++i == argc)
				print_usage();
			append = argv[i];
		} else if (!strncmp(argv[i], "--append=", 9)) {
			append = argv[i] + 9;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			print_usage();
		} else if (!kernel) {
			kernel = argv[i];
		} else if (!initrd) {
			initrd = argv[i];
		} else {
			print_usage();
		}
	}
	if (!kernel)
		print_usage();
	cmdline = proc_cmdline();
	if (!cmdline) {
		err("cannot read /proc/cmdline: %s", strerror(errno));
		return 1;
	}
	if (append && *append) {
		if (asprintf(&full, "%s %s", cmdline, append) < 0)
			full = NULL;
	} else {
		full = strdup(cmdline);
	}
	line = full ? luo_kexec_cmdline(full) : NULL;
	if (!line) {
		err("out of memory");
		return 1;
	}
	ret = luo_kexec_load(kernel, initrd, full);
	if (ret) {
		err("cannot load %s%s%s: %s%s", kernel, initrd ? " with " : "",
		    initrd ? initrd : "", strerror(-ret), load_hint(ret));
		return 1;
	}
	printf("loaded %s%s%s\ncommand line: %s\n", kernel,
	       initrd ? " with " : " (no initramfs)", initrd ? initrd : "",
	       line);
	free(cmdline);
	free(full);
	free(line);
	return 0;
}

static int cmd_unload(void)
{
	int ret = luo_kexec_unload();

	if (ret) {
		err("cannot unload: %s", strerror(-ret));
		return 1;
	}
	return 0;
}

static int cmd_update(void)
{
	char line[1024];
	int sock;

	sock = connect_luod();
	if (sock < 0)
		return 1;
	fflush(stdout);
	/* luod answers only if the update failed: the reboot never returns. */
	if (ask(sock, "UPDATE", line, sizeof(line)))
		return 1;
	if (!strncmp(line, "ERR ", 4)) {
		err("update failed: %s", line + 4);
		return 1;
	}
	err("unexpected answer from luod: %s", line);
	return 1;
}

int main(int argc, char **argv)
{
	const char *cmd;
	int i = 1;

	while (i < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "-s") && i + 1 < argc) {
			sock_path = argv[i + 1];
			i += 2;
		} else if (!strncmp(argv[i], "-s", 2) && argv[i][2]) {
			sock_path = argv[i] + 2;
			i++;
		} else {
			print_usage();
		}
	}
	if (i == argc)
		print_usage();
	cmd = argv[i++];
	if (!strcmp(cmd, "status") && i == argc)
		return cmd_status();
	if (!strcmp(cmd, "load"))
		return cmd_load(argc - i, argv + i);
	if (!strcmp(cmd, "unload") && i == argc)
		return cmd_unload();
	if (!strcmp(cmd, "update") && i == argc)
		return cmd_update();
	print_usage();
}
