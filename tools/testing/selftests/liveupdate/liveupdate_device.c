// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: passthrough devices, on a machine with QEMU's
 * VT-d and its "edu" PCI device (harness/run-suite.py, "edu").
 *
 *   liveupdate_device SCENARIO     (LUO_STAGE=N, see liveupdate_test.h)
 *
 * rig:  the device as a VMM owns it, within one boot: bound to vfio-pci,
 *       its cdev bound to an iommufd and attached to an IOAS that maps a
 *       memfd (IOMMU_IOAS_MAP_FILE).  The DMA engine copies a page of the
 *       memfd into the device and back to another IOVA, through the IOMMU;
 *       a transfer to an IOVA nothing maps faults (the IOMMU logs it) and
 *       writes nothing; once the memfd is unmapped, a transfer to its old
 *       IOVAs faults and leaves its bytes as they were.  Closing the files
 *       and owning the device again works.
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
#include <unistd.h>

#include "liveupdate_test.h"
#include "liveupdate_edu.h"

#define RAM_SIZE	(2UL << 20)	/* the "guest RAM" memfd */
#define RAM_IOVA	0x1000000ULL	/* 16 MiB, under edu's 28-bit limit */
#define HOLE_IOVA	0x8000000ULL	/* nothing is ever mapped here */
#define SEED		0x6564750a

static int stage;

/* Do the @len bytes at @off of @fd hold the pattern @seed from @pat_off? */
static bool holds(int fd, __u64 off, size_t len, __u64 pat_off, __u64 seed)
{
	__u64 buf[EDU_DMA_MAX / 8];

	if (len > sizeof(buf) || pread(fd, buf, len, off) != (ssize_t)len)
		return false;
	for (size_t i = 0; i < len / 8; i++)
		if (buf[i] != luo_word_at(pat_off + i * 8, seed))
			return false;
	return true;
}

/* How many IOMMU fault records for @iova the kernel log has. */
static int dmar_faults(__u64 iova)
{
	char *log = luo_kernel_log(), *p = log, want[64];
	int n = 0;

	snprintf(want, sizeof(want), "fault addr 0x%llx", (unsigned long long)iova);
	while ((p = strstr(p, want))) {
		n++;
		p += strlen(want);
	}
	free(log);
	return n;
}

/* A DMA into @iova, which no mapping covers: a fault, and it ends. */
static bool dma_faults(struct edu *e, __u64 iova)
{
	int before = dmar_faults(iova);

	if (edu_dma(e, iova, 0, 64, true))
		return false;
	/* The fault is logged from the IOMMU's interrupt: give it a moment. */
	for (int i = 0; i < 100; i++) {
		if (dmar_faults(iova) > before)
			return true;
		usleep(10000);
	}
	return false;
}

static int new_ram(void)
{
	int fd = memfd_create("guest-ram", MFD_CLOEXEC);

	if (fd < 0)
		luo_bail("memfd_create: %s", strerror(errno));
	if (ftruncate(fd, RAM_SIZE) || luo_put(fd, 0, RAM_SIZE, SEED))
		luo_bail("guest RAM: %s", strerror(errno));
	return fd;
}

static void run_rig(void)
{
	struct edu e;
	int ram, ret;

	ret = edu_open(&e);
	if (ret == -ENODEV)
		ksft_exit_skip("no edu device: not the edu machine\n");
	if (ret)
		luo_bail("owning the edu device: %s", strerror(-ret));
	ksft_set_plan(7);
	ksft_test_result_pass("edu %s bound to vfio-pci, its cdev bound to an iommufd and attached to an IOAS (hwpt %u)\n",
			      e.bdf, e.hwpt_id);
	ksft_test_result(edu_alive(&e), "BAR0 mapped: identification and liveness registers\n");

	ram = new_ram();
	ret = edu_map_file(e.iommufd, e.ioas_id, ram, 0, RAM_SIZE, RAM_IOVA);
	if (ret)
		luo_bail("IOMMU_IOAS_MAP_FILE: %s", strerror(-ret));
	ret = edu_set_master(&e, true);
	if (ret)
		luo_bail("bus mastering: %s", strerror(-ret));
	ksft_test_result(edu_pci_command(e.bdf) & PCI_COMMAND_MASTER,
			 "the memfd mapped at IOVA 0x%llx, bus mastering on\n",
			 RAM_IOVA);

	/* A page of the memfd into the device, and back at another offset. */
	ksft_test_result(!edu_dma(&e, RAM_IOVA + 0x3000, 0, EDU_DMA_MAX, false) &&
			 !edu_dma(&e, RAM_IOVA + 0x10000, 0, EDU_DMA_MAX, true) &&
			 holds(ram, 0x10000, EDU_DMA_MAX, 0x3000, SEED) &&
			 holds(ram, 0x10000 + EDU_DMA_MAX, EDU_DMA_MAX,
			       0x10000 + EDU_DMA_MAX, SEED),
			 "DMA through the IOMMU: a page of the memfd copied by the device\n");

	ksft_test_result(dma_faults(&e, HOLE_IOVA),
			 "DMA to an IOVA nothing maps faults\n");

	ret = edu_unmap(e.iommufd, e.ioas_id, RAM_IOVA, RAM_SIZE);
	if (ret)
		luo_bail("IOMMU_IOAS_UNMAP: %s", strerror(-ret));
	ksft_test_result(dma_faults(&e, RAM_IOVA + 0x20000) &&
			 holds(ram, 0x20000, 64, 0x20000, SEED),
			 "after the unmap, DMA to the memfd's IOVAs faults and writes nothing\n");

	edu_close(&e);
	ret = edu_open(&e);
	ksft_test_result(!ret && edu_alive(&e), "closed and owned again\n");
	if (!ret)
		edu_close(&e);
	close(ram);
}

int main(int argc, char **argv)
{
	const char *scenario = argc == 2 ? argv[1] : "";

	stage = luo_stage();
	if (strcmp(scenario, "rig")) {
		fprintf(stderr, "%s rig, with LUO_STAGE=N\n", argv[0]);
		return KSFT_FAIL;
	}
	ksft_print_header();
	run_rig();
	ksft_finished();
}
