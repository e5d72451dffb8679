// SPDX-License-Identifier: GPL-2.0
/*
 * luo-kexec: the test initramfs' kexec loader.
 *
 *   luo-kexec [-l] KERNEL INITRD CMDLINE
 *
 * Loads KERNEL and INITRD with kexec_file_load() (KHO works only with the
 * file-based loader) and, unless -l is given, jumps with
 * reboot(LINUX_REBOOT_CMD_KEXEC).  It returns only when something failed;
 * the caller still holds its session fds and keeps running.
 *
 *   luo-kexec -e
 *
 * Jumps into the image already loaded.
 *
 *   luo-kexec -c
 *
 * Loads, with the classic kexec_load(), an image of one dummy page: an
 * image that carries no KHO state, which a live update must refuse to jump
 * into (never jump into it otherwise).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kexec.h>
#include <linux/reboot.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int do_reboot(void)
{
	sync();
	/* The host measures the blackout from this line. */
	printf("luo-kexec: reboot\n");
	fflush(stdout);
	syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
		LINUX_REBOOT_CMD_KEXEC, NULL);
	fprintf(stderr, "luo-kexec: reboot(KEXEC): %s\n", strerror(errno));
	return 1;
}

static int load_dummy(void)
{
	static char page[4096] __attribute__((aligned(4096)));
	struct kexec_segment seg = {
		.buf = page,
		.bufsz = sizeof(page),
		.mem = (void *)0x1000000,	/* 16 MiB: RAM on any test VM */
		.memsz = sizeof(page),
	};

	if (syscall(SYS_kexec_load, 0x1000000UL, 1UL, &seg,
		    (unsigned long)KEXEC_ARCH_DEFAULT)) {
		fprintf(stderr, "luo-kexec: kexec_load: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int load_only = 0, kfd, ifd;

	if (argc == 2 && !strcmp(argv[1], "-e"))
		return do_reboot();
	if (argc == 2 && !strcmp(argv[1], "-c"))
		return load_dummy();
	if (argc > 1 && !strcmp(argv[1], "-l")) {
		load_only = 1;
		argv++;
		argc--;
	}
	if (argc != 4) {
		fprintf(stderr, "usage: luo-kexec [-l] KERNEL INITRD CMDLINE | -e | -c\n");
		return 2;
	}
	kfd = open(argv[1], O_RDONLY | O_CLOEXEC);
	ifd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (kfd < 0 || ifd < 0) {
		fprintf(stderr, "luo-kexec: open: %s\n", strerror(errno));
		return 1;
	}
	if (syscall(SYS_kexec_file_load, kfd, ifd, strlen(argv[3]) + 1,
		    argv[3], 0UL)) {
		fprintf(stderr, "luo-kexec: kexec_file_load: %s\n",
			strerror(errno));
		return 1;
	}
	close(kfd);
	close(ifd);
	if (load_only)
		return 0;
	return do_reboot();
}
