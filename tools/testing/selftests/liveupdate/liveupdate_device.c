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
 *
 * inflight: a device kept running across a live update, its DMA in flight
 *       at the kexec.  Stage 0 owns the device as rig does, then checks
 *       the preservation rules: the iommufd goes after the memfd it maps
 *       and the device after its iommufd (ENOENT otherwise), an IOAS that
 *       maps user memory cannot be preserved (EOPNOTSUPP); once preserved,
 *       the IOAS and the attachment are frozen (EBUSY) but DMA still works,
 *       and the iommufd cannot be unpreserved under its device (EBUSY).
 *       Unpreserving both makes them ordinary again, as does closing
 *       another session they are preserved in; they are preserved again,
 *       the liveness register set, a page of the memfd loaded into the
 *       device.  A reboot whose freeze fails leaves them preserved and
 *       working.  Then a DMA from the device into the memfd is started
 *       right before reboot(KEXEC).  Stage 1 retrieves the memfd: the DMA
 *       landed through the kept IOMMU tables without a fault and nothing
 *       else of the memfd changed.  It then retrieves the iommufd, whose
 *       IOAS has its old ID, and the device, bound to vfio-pci and to that
 *       iommufd and attached: nothing reset it (its registers hold what
 *       they held, bus mastering is on), DMA goes on through the same
 *       IOVAs without mapping anything again, DMA to an IOVA nothing maps
 *       faults, the IOAS is an ordinary one again (unmap, map), and after
 *       FINISH DMA goes on.
 *
 * damage: stage 0 as inflight, the IOMMU's part of the handover (its FLB)
 *       damaged so that the next kernel cannot find it.  Stage 1: the
 *       kernel keeps translation on but adopts nothing and stops the
 *       device (bus mastering off); a DMA it is made to do faults and
 *       writes nothing; the iommufd retrieves, the device does not;
 *       FINISH works and the memfd is whole.
 *
 * abandon: stage 0 as inflight; stage 1 retrieves only the memfd and
 *       checks it as inflight does.  The device, bound to no driver,
 *       still has its registers and bus mastering (through sysfs), no
 *       driver can be bound to it, and a DMA round trip goes through the
 *       page table the IOMMU adopted.
 *       FINISH closes the unretrieved iommufd and device: bus mastering
 *       is turned off, the IOMMU drops the kept translation, and a DMA to
 *       the old IOVAs (bus mastering set again through sysfs) faults and
 *       writes nothing.  vfio-pci and a new iommufd own the device again.
 *       The memfd, closed, frees its pages: nothing holds them any more.
 *
 * orphan: stage 0 as inflight, the device's handler gone in the next
 *       kernel (its format renamed in the handover).  Stage 1 retrieves
 *       the memfd and punches it whole: its pages stay allocated, since
 *       the device still writes there through the adopted tables.
 *       Another tenant takes nearly all free memory; DMAs into the old
 *       IOVAs do not touch it.  The device's RETRIEVE_FD fails
 *       (EOPNOTSUPP); FINISH keeps the memfd's old pages allocated, and
 *       says so; the tenant is still intact after another DMA.
 *
 * version: as orphan, but the device's handler is there and finds a
 *       version of its record it does not read: it cannot tell whether
 *       the device still does DMA, so the memfd stays just the same.
 *
 * nommu: stage 0 as inflight, the next kernel booted with intel_iommu=off.
 *       Before it turns translation off for good it stops the device the
 *       previous kernel kept (bus mastering off) and says so; the device
 *       cannot be retrieved without an IOMMU; the memfd can, whole, and
 *       FINISH works.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
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

/*
 * How many IOMMU fault records for an address in [@lo, @hi) the kernel log
 * has.  VT-d records the page of the faulting address.
 */
static int dmar_faults_in(__u64 lo, __u64 hi)
{
	static const char want[] = "fault addr 0x";
	char *log = luo_kernel_log(), *p = log;
	unsigned long long addr;
	int n = 0;

	while ((p = strstr(p, want))) {
		p += strlen(want);
		addr = strtoull(p, NULL, 16);
		if (addr >= lo && addr < hi)
			n++;
	}
	free(log);
	return n;
}

/* How many IOMMU fault records for @iova the kernel log has. */
static int dmar_faults(__u64 iova)
{
	return dmar_faults_in(iova, iova + 1);
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

/*
 * inflight: the session's files, and what stage 0 does to the guest RAM
 * memfd.  Every DMA copies EDU_DMA_MAX bytes through the device's buffer
 * (from its offset 0); the offsets are those of the memfd.
 */
#define INFLIGHT	"inflight"
#define TOK_RAM		1
#define TOK_IOMMUFD	2
#define TOK_DEVICE	3
#define TOK_IDS		4	/* a test object: the iommufd object IDs */
#define TOK_FREEZE	5	/* a test object whose freeze fails */
#define LUO_DAMAGE	"/sys/kernel/debug/liveupdate/damage"
#define PG		4096
#define USER_IOVA	0x4000000ULL	/* anonymous memory (IOMMU_IOAS_MAP) */
#define USER_SIZE	0x10000
#define EXTRA_IOVA	0x2000000ULL	/* a second mapping of one memfd page */
#define EXTRA_OFF	0x80000		/* that page */
#define FROZEN_SRC	0x3000		/* round trip while preserved */
#define FROZEN_DST	0x10000
#define AGAIN_DST	0x11000		/* round trip from EXTRA_IOVA */
#define PAGE_SRC	0x5000		/* loaded into the device before kexec */
#define INFLIGHT_DST	0x100000	/* where the in-flight DMA writes it */
#define FAULT_OFF	0x180000	/* a DMA after FINISH */
#define OWN_SRC		0x7000		/* round trip of the new owner */
#define OWN_DST		0x12000
#define OWN_DST2	0x13000
#define ADOPT_DST	0x14000
#define LIVENESS_X	0x4c554f21U
#define TENANT_SEED	0x74656e61
#define TENANT_SPARE_KB	(96L << 10)	/* left free for the rest */

/* The copies stage 0 makes (dst <- src), the in-flight one last. */
static const struct { __u64 src, dst; } ram_copies[] = {
	{ FROZEN_SRC, FROZEN_DST },
	{ EXTRA_OFF, AGAIN_DST },
	{ PAGE_SRC, INFLIGHT_DST },
};

/* The word at @off of the guest RAM once stage 0's DMAs all landed. */
static __u64 ram_word(__u64 off)
{
	for (size_t i = 0; i < ARRAY_SIZE(ram_copies); i++)
		if (off - ram_copies[i].dst < EDU_DMA_MAX)
			return luo_word_at(ram_copies[i].src + off -
					   ram_copies[i].dst, SEED);
	return luo_word_at(off, SEED);
}

/* The whole guest RAM, malloc()ed, or NULL. */
static __u64 *read_ram(int fd)
{
	__u64 *img = malloc(RAM_SIZE);

	if (img && pread(fd, img, RAM_SIZE, 0) != (ssize_t)RAM_SIZE) {
		free(img);
		img = NULL;
	}
	return img;
}

/* Words of [@from, @to) of @img that are not ram_word(); the first printed. */
static long ram_mismatches(const __u64 *img, __u64 from, __u64 to)
{
	long n = 0;

	for (__u64 off = from; off < to; off += 8) {
		if (img[off / 8] == ram_word(off))
			continue;
		if (!n++)
			ksft_print_msg("memfd offset 0x%llx: 0x%016llx, want 0x%016llx\n",
				       (unsigned long long)off,
				       (unsigned long long)img[off / 8],
				       (unsigned long long)ram_word(off));
	}
	if (n)
		ksft_print_msg("%ld words of [0x%llx, 0x%llx) differ\n", n,
			       (unsigned long long)from,
			       (unsigned long long)to);
	return n;
}

static bool master_on(const char *bdf)
{
	int cmd = edu_pci_command(bdf);

	return cmd >= 0 && (cmd & PCI_COMMAND_MASTER);
}

/*
 * EDU_DMA_MAX bytes from @src_iova (memfd offset @src_off) into the device
 * and back to memfd offset @dst_off (at RAM_IOVA): they arrive there, and
 * the bytes after them stay as they were.
 */
static bool round_trip(struct edu *e, int ram, __u64 src_iova, __u64 src_off,
		       __u64 dst_off)
{
	int ret = edu_dma(e, src_iova, 0, EDU_DMA_MAX, false);

	if (!ret)
		ret = edu_dma(e, RAM_IOVA + dst_off, 0, EDU_DMA_MAX, true);
	if (ret) {
		ksft_print_msg("DMA: %s\n", strerror(-ret));
		return false;
	}
	return holds(ram, dst_off, EDU_DMA_MAX, src_off, SEED) &&
	       holds(ram, dst_off + EDU_DMA_MAX, EDU_DMA_MAX,
		     dst_off + EDU_DMA_MAX, SEED);
}

/* With @damage written to LUO_DAMAGE, and @append on the next command line. */
static void inflight_0(const char *damage, const char *append)
{
	const char * const load[] = { LUO_NEXT_STAGE, "-l",
				      append ? "-a" : NULL, append, NULL };
	struct timespec t0, t1;
	int dev, sfd, other, ram, fd, ret, ret2;
	struct edu e;
	bool ok, busy;
	void *user;
	__u32 id;

	if (edu_find(&e))
		ksft_exit_skip("no edu device: not the edu machine\n");
	ksft_set_plan(damage ? 29 : 28);
	dev = luo_open_device();
	if (dev < 0)
		luo_bail("open %s: %s", LUO_DEVICE, strerror(-dev));

	/* Owned as in rig. */
	ret = edu_open(&e);
	if (ret)
		ksft_print_msg("owning the edu device: %s\n", strerror(-ret));
	require(!ret, "edu bound to vfio-pci, its cdev bound to an iommufd and attached to an IOAS");
	ram = new_ram();
	ret = edu_map_file(e.iommufd, e.ioas_id, ram, 0, RAM_SIZE, RAM_IOVA);
	if (!ret)
		ret = edu_set_master(&e, true);
	if (ret)
		ksft_print_msg("map, bus mastering: %s\n", strerror(-ret));
	require(!ret && edu_alive(&e) && master_on(e.bdf),
		"2 MiB memfd mapped at IOVA 0x%llx (IOMMU_IOAS_MAP_FILE), bus mastering on",
		RAM_IOVA);

	/* The order of the preservation, and what an iommufd can carry. */
	sfd = luo_must_create_session(dev, INFLIGHT);
	check_ret(luo_preserve_fd(sfd, e.iommufd, TOK_IOMMUFD), -ENOENT,
		  "PRESERVE_FD of the iommufd before the memfd it maps: ENOENT");
	check_ret(luo_preserve_fd(sfd, e.devfd, TOK_DEVICE), -ENOENT,
		  "PRESERVE_FD of the device before its iommufd: ENOENT");
	require(luo_keep(sfd, ram, TOK_RAM), "PRESERVE_FD of the memfd: 0");
	user = mmap(NULL, USER_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (user == MAP_FAILED)
		luo_bail("mmap: %s", strerror(errno));
	memset(user, 0, USER_SIZE);
	ret = edu_map_user(e.iommufd, e.ioas_id, user, USER_SIZE, USER_IOVA);
	if (ret)
		luo_bail("IOMMU_IOAS_MAP of anonymous memory: %s",
			 strerror(-ret));
	check_ret(luo_preserve_fd(sfd, e.iommufd, TOK_IOMMUFD), -EOPNOTSUPP,
		  "PRESERVE_FD of the iommufd while its IOAS also maps anonymous memory (IOMMU_IOAS_MAP at 0x%llx): EOPNOTSUPP",
		  USER_IOVA);
	ret = edu_unmap(e.iommufd, e.ioas_id, USER_IOVA, USER_SIZE);
	if (ret)
		luo_bail("IOMMU_IOAS_UNMAP of the anonymous memory: %s",
			 strerror(-ret));
	munmap(user, USER_SIZE);
	require(luo_keep(sfd, e.iommufd, TOK_IOMMUFD),
		"PRESERVE_FD of the iommufd, its IOAS mapping only the preserved memfd: 0");
	require(luo_keep(sfd, e.devfd, TOK_DEVICE),
		"PRESERVE_FD of the device, after its iommufd: 0");

	/* Preserved: the tables and the attachment are frozen, not gone. */
	check_ret(edu_map_file(e.iommufd, e.ioas_id, ram, EXTRA_OFF, PG,
			       EXTRA_IOVA), -EBUSY,
		  "preserved iommufd: IOMMU_IOAS_MAP_FILE: EBUSY");
	check_ret(edu_unmap(e.iommufd, e.ioas_id, RAM_IOVA, RAM_SIZE), -EBUSY,
		  "preserved iommufd: IOMMU_IOAS_UNMAP: EBUSY");
	check_ret(edu_ioas_alloc(e.iommufd, &id), -EBUSY,
		  "preserved iommufd: IOMMU_IOAS_ALLOC: EBUSY");
	check_ret(edu_hwpt_alloc(e.iommufd, e.dev_id, e.ioas_id, &id), -EBUSY,
		  "preserved iommufd: IOMMU_HWPT_ALLOC: EBUSY");
	ret = edu_iova_ranges(e.iommufd, e.ioas_id);
	if (ret <= 0)
		ksft_print_msg("IOMMU_IOAS_IOVA_RANGES: %d (%s)\n", ret,
			       strerror(-ret));
	result(ret > 0, "preserved iommufd: IOMMU_IOAS_IOVA_RANGES still works");
	check_ret(edu_detach(&e), -EBUSY,
		  "preserved device: VFIO_DEVICE_DETACH_IOMMUFD_PT: EBUSY");
	check_ret(edu_attach(&e, e.ioas_id), -EBUSY,
		  "preserved device: VFIO_DEVICE_ATTACH_IOMMUFD_PT: EBUSY");
	check_ret(luo_unpreserve_fd(sfd, TOK_IOMMUFD), -EBUSY,
		  "UNPRESERVE_FD of the iommufd while its device is preserved: EBUSY");
	result(round_trip(&e, ram, RAM_IOVA + FROZEN_SRC, FROZEN_SRC,
			  FROZEN_DST),
	       "preserved: a DMA round trip through the IOMMU still works");

	/* Unpreserved, they are ordinary again. */
	check_ret(luo_unpreserve_fd(sfd, TOK_DEVICE), 0,
		  "UNPRESERVE_FD of the device: 0");
	check_ret(luo_unpreserve_fd(sfd, TOK_IOMMUFD), 0,
		  "UNPRESERVE_FD of the iommufd, after its device: 0");
	ret = edu_map_file(e.iommufd, e.ioas_id, ram, EXTRA_OFF, PG,
			   EXTRA_IOVA);
	ok = !ret && round_trip(&e, ram, EXTRA_IOVA, EXTRA_OFF, AGAIN_DST);
	ret2 = edu_unmap(e.iommufd, e.ioas_id, EXTRA_IOVA, PG);
	if (ret || ret2)
		ksft_print_msg("IOMMU_IOAS_MAP_FILE: %s, IOMMU_IOAS_UNMAP: %s\n",
			       strerror(-ret), strerror(-ret2));
	result(ok && !ret2,
	       "unpreserved: IOMMU_IOAS_MAP_FILE of a memfd page at 0x%llx, a DMA round trip through it, IOMMU_IOAS_UNMAP",
	       EXTRA_IOVA);

	/* So does closing the session they are preserved in. */
	other = luo_must_create_session(dev, INFLIGHT "-closed");
	ok = !luo_unpreserve_fd(sfd, TOK_RAM) && luo_keep(other, ram, TOK_RAM) &&
	     luo_keep(other, e.iommufd, TOK_IOMMUFD) &&
	     luo_keep(other, e.devfd, TOK_DEVICE) && edu_detach(&e) == -EBUSY;
	close(other);
	ret = edu_detach(&e);
	if (!ret)
		ret = edu_attach(&e, e.ioas_id);
	if (ret)
		ksft_print_msg("detach, attach: %s\n", strerror(-ret));
	result(ok && !ret && round_trip(&e, ram, RAM_IOVA + FROZEN_SRC,
					FROZEN_SRC, FROZEN_DST),
	       "preserved in another session, then that session closed: ordinary again (detach, attach, a DMA round trip)");
	require(luo_keep(sfd, ram, TOK_RAM) &&
		luo_keep(sfd, e.iommufd, TOK_IOMMUFD),
		"PRESERVE_FD of the memfd and the iommufd again: 0");
	require(luo_keep(sfd, e.devfd, TOK_DEVICE),
		"PRESERVE_FD of the device again: 0");

	/* The object IDs, which stage 1 finds again in the retrieved iommufd. */
	ret = luo_test_new(e.ioas_id | (__u64)e.hwpt_id << 16 |
			   (__u64)e.dev_id << 32);
	require(ret >= 0 && luo_keep(sfd, ret, TOK_IDS),
		"the IOAS, HWPT and device IDs (%u, %u, %u) kept in a test object",
		e.ioas_id, e.hwpt_id, e.dev_id);

	/* Loaded first: that takes seconds under TCG, the DMA 100 ms. */
	ret = luo_run(load);
	if (ret)
		ksft_print_msg("%s -l: %d\n", LUO_NEXT_STAGE, ret);
	result(!ret, "the next kernel loaded (%s -l)", LUO_NEXT_STAGE);

	/* A reboot that fails at freeze leaves everything preserved, working. */
	fd = luo_test_new(0);
	ok = fd >= 0 && !luo_test_cmd(fd, "fail=freeze,5,1") &&
	     luo_keep(sfd, fd, TOK_FREEZE);
	ret = luo_reboot_kexec();
	ok = ok && ret == -EIO &&
	     edu_unmap(e.iommufd, e.ioas_id, RAM_IOVA, RAM_SIZE) == -EBUSY &&
	     edu_detach(&e) == -EBUSY &&
	     round_trip(&e, ram, RAM_IOVA + FROZEN_SRC, FROZEN_SRC,
			FROZEN_DST) &&
	     !luo_unpreserve_fd(sfd, TOK_FREEZE);
	if (fd >= 0)
		close(fd);
	result(ok, "reboot(KEXEC) failing at freeze (%s): still preserved and frozen, a DMA round trip works",
	       strerror(-ret));

	/* State in the device, then a DMA left running into the kexec. */
	edu_wr32(&e, EDU_REG_LIVENESS, LIVENESS_X);
	ret = edu_dma(&e, RAM_IOVA + PAGE_SRC, 0, EDU_DMA_MAX, false);
	if (ret)
		ksft_print_msg("DMA: %s\n", strerror(-ret));
	result(!ret && edu_rd32(&e, EDU_REG_LIVENESS) == ~LIVENESS_X,
	       "device state: liveness register written (0x%x), the 2 KiB at memfd offset 0x%x loaded into its buffer",
	       LIVENESS_X, PAGE_SRC);
	if (damage) {
		ret = luo_write_file(LUO_DAMAGE, damage);
		if (ret)
			ksft_print_msg("%s: %s\n", LUO_DAMAGE, strerror(-ret));
		result(!ret, "the handover will be damaged: %s", damage);
	}
	if (ksft_get_fail_cnt())
		luo_kexec_next();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = edu_dma_start(&e, RAM_IOVA + INFLIGHT_DST, 0, EDU_DMA_MAX, true);
	busy = edu_dma_busy(&e);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (ret)
		luo_bail("DMA start: %s", strerror(-ret));
	ksft_print_msg("DMA of %d bytes to IOVA 0x%llx started %lld us before reboot(KEXEC), which follows this line; %s\n",
		       EDU_DMA_MAX, RAM_IOVA + INFLIGHT_DST,
		       (t1.tv_sec - t0.tv_sec) * 1000000LL +
		       (t1.tv_nsec - t0.tv_nsec) / 1000,
		       busy ? "running" : "already done");
	fflush(stdout);
	ret = luo_reboot_kexec();
	ksft_print_msg("reboot(KEXEC): %s\n", strerror(-ret));
	ksft_test_result_fail("kexec into stage 1\n");
	ksft_finished();
}

/* Do the DMA registers still describe the in-flight transfer, done? */
static bool inflight_regs(struct edu *e)
{
	__u64 src = edu_rd64(e, EDU_REG_DMA_SRC);
	__u64 dst = edu_rd64(e, EDU_REG_DMA_DST);
	__u64 cnt = edu_rd64(e, EDU_REG_DMA_COUNT);
	__u64 cmd = edu_rd64(e, EDU_REG_DMA_CMD);
	bool ok = src == EDU_BUF && dst == RAM_IOVA + INFLIGHT_DST &&
		  cnt == EDU_DMA_MAX && !(cmd & EDU_DMA_RUN);

	if (!ok)
		ksft_print_msg("DMA src 0x%llx, dst 0x%llx, count 0x%llx, cmd 0x%llx\n",
			       (unsigned long long)src,
			       (unsigned long long)dst,
			       (unsigned long long)cnt,
			       (unsigned long long)cmd);
	return ok;
}

/*
 * Stage 1, whatever is retrieved next: the session and the memfd; the
 * in-flight DMA landed through the kept tables, nothing else of the memfd
 * changed, nothing faulted.  Six results.  Returns the memfd.
 */
/* @dev_state: the device file's QUERY state, retrieved by nobody yet. */
static int landed(int *devp, int *sfdp, __u32 dev_state)
{
	char *log, *at, *end;
	int dev, sfd = -1, ram, ret;
	struct stat st;
	__u64 *img;
	long bad;

	dev = luo_open_device();
	if (dev < 0)
		luo_bail("open %s: %s", LUO_DEVICE, strerror(-dev));
	ret = luo_retrieve_session(dev, INFLIGHT, &sfd);
	if (ret)
		ksft_print_msg("RETRIEVE_SESSION: %s\n", strerror(-ret));
	require(!ret, "retrieve session " INFLIGHT);
	ram = luo_take(sfd, TOK_RAM);
	require(ram >= 0 && !fstat(ram, &st) && st.st_size == (off_t)RAM_SIZE,
		"retrieve the 2 MiB memfd");
	result(luo_file_state(sfd, TOK_IOMMUFD) == LIVEUPDATE_FILE_INCOMING &&
	       luo_file_state(sfd, TOK_DEVICE) == dev_state,
	       "the iommufd and the device are in the session, not retrieved yet%s",
	       dev_state == LIVEUPDATE_FILE_BROKEN ?
	       "; the device BROKEN, no handler for its format" : "");

	/* The memfd: the in-flight DMA landed, nothing else changed. */
	img = read_ram(ram);
	if (!img)
		luo_bail("reading the memfd: %s", strerror(errno));
	bad = ram_mismatches(img, INFLIGHT_DST, INFLIGHT_DST + EDU_DMA_MAX);
	if (bad && img[INFLIGHT_DST / 8] == luo_word_at(INFLIGHT_DST, SEED))
		ksft_print_msg("the old bytes are still there: the DMA did not land\n");
	result(!bad,
	       "the in-flight DMA arrived: the 2 KiB at memfd offset 0x%x hold those loaded from 0x%x",
	       INFLIGHT_DST, PAGE_SRC);
	bad = ram_mismatches(img, 0, INFLIGHT_DST) +
	      ram_mismatches(img, INFLIGHT_DST + EDU_DMA_MAX, RAM_SIZE);
	result(!bad, "every other byte of the memfd is as before the kexec");
	free(img);

	/* The IOMMU kept translating, and nothing faulted. */
	log = luo_kernel_log();
	at = strstr(log, "preserved by the previous kernel");
	if (at) {
		while (at > log && at[-1] != '\n')
			at--;
		end = strchr(at, '\n');
		ksft_print_msg("%.*s\n", end ? (int)(end - at) : (int)strlen(at),
			       at);
	}
	result(at, "kernel log: IOMMU translation kept for a device preserved by the previous kernel");
	free(log);
	ret = dmar_faults_in(RAM_IOVA, RAM_IOVA + RAM_SIZE);
	if (ret)
		ksft_print_msg("%d IOMMU faults\n", ret);
	result(!ret, "kernel log: no IOMMU fault in the memfd's IOVAs [0x%llx, 0x%llx)",
	       RAM_IOVA, RAM_IOVA + RAM_SIZE);

	*devp = dev;
	*sfdp = sfd;
	return ram;
}

/*
 * Another tenant: anonymous memory in small pages, nearly all that is free,
 * each word its own pattern; whatever the kernel frees is reused in it.
 */
static __u64 *tenant_fill(size_t *len)
{
	/* KHO scratch is CMA, which page tables and slab cannot use. */
	long kb = luo_free_kb() - luo_meminfo_kb("CmaFree") - TENANT_SPARE_KB;
	__u64 *t;

	*len = kb > 0 ? (size_t)kb << 10 : 0;
	if (!*len)
		return NULL;
	t = mmap(NULL, *len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t == MAP_FAILED)
		return NULL;
	madvise(t, *len, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < *len / 8; i++)
		t[i] = luo_word_at(i * 8, TENANT_SEED);
	return t;
}

/* Words of the tenant that are not its own; the first printed. */
static long tenant_damage(const __u64 *t, size_t len)
{
	long n = 0;

	for (size_t i = 0; t && i < len / 8; i++) {
		if (t[i] == luo_word_at(i * 8, TENANT_SEED))
			continue;
		if (!n++)
			ksft_print_msg("tenant word at 0x%zx: 0x%llx\n", i * 8,
				       (unsigned long long)t[i]);
	}
	return t ? n : -1;
}

/* A DMA from the device's buffer to every 128 KiB of the old guest RAM. */
static int dma_over_ram(struct edu *e)
{
	int ret = 0;

	for (__u64 off = 0; off < RAM_SIZE && !ret; off += 0x20000)
		ret = edu_dma(e, RAM_IOVA + off, 0, EDU_DMA_MAX, true);
	return ret;
}

static void abandon_1(void)
{
	struct edu r = { .iommufd = -1, .devfd = -1 }, e;
	int dev, sfd, ram, ret, ret2, cfg;
	long free0, free1;
	char drv[EDU_DRV_LEN];
	__u32 id, live;
	bool ok;

	ksft_set_plan(21);
	ram = landed(&dev, &sfd, LIVEUPDATE_FILE_INCOMING);

	/* The device kept its state: no driver, registers through sysfs. */
	ret = edu_find(&r);
	if (ret)
		luo_bail("no edu device in stage 1: %s", strerror(-ret));
	ret = edu_driver(r.bdf, drv);
	if (ret || drv[0])
		ksft_print_msg("%s driver: %s (%s)\n", r.bdf, drv,
			       strerror(-ret));
	result(!ret && !drv[0], "the device is bound to no driver");
	cfg = edu_pci_command(r.bdf);
	if (cfg < 0)
		ksft_print_msg("config space: %s\n", strerror(-cfg));
	else
		ksft_print_msg("PCI command register 0x%04x\n", cfg);
	result(cfg >= 0 && (cfg & PCI_COMMAND_MASTER) &&
	       (cfg & PCI_COMMAND_MEMORY),
	       "config space: bus mastering and memory decoding still on");
	ret = edu_map_resource(&r);
	if (ret)
		ksft_print_msg("resource0: %s\n", strerror(-ret));
	require(!ret, "BAR0 mapped through sysfs (resource0)");
	id = edu_rd32(&r, EDU_REG_ID);
	live = edu_rd32(&r, EDU_REG_LIVENESS);
	if ((id & 0xffff) != 0x00ed || live != ~LIVENESS_X)
		ksft_print_msg("id 0x%08x, liveness 0x%08x\n", id, live);
	result((id & 0xffff) == 0x00ed && live == ~LIVENESS_X,
	       "the liveness register reads ~0x%x, as written before the kexec",
	       LIVENESS_X);
	ok = inflight_regs(&r);
	result(ok, "the DMA registers hold the in-flight transfer (buffer to IOVA 0x%llx, %d bytes), done",
	       RAM_IOVA + INFLIGHT_DST, EDU_DMA_MAX);

	/* Held: no driver takes a device whose DMA is still the VMM's. */
	ret = edu_bind_vfio(r.bdf);
	ret2 = edu_write_attr("/sys/bus/pci/drivers/vfio-pci/bind", r.bdf);
	edu_driver(r.bdf, drv);
	if (!ret || !ret2 || drv[0])
		ksft_print_msg("drivers_probe: %s, bind: %s, driver \"%s\"\n",
			       strerror(-ret), strerror(-ret2), drv);
	result(ret && ret2 && !drv[0],
	       "until FINISH no driver binds it, through drivers_probe or bind");

	/* The adopted tables translate: a round trip before anyone owns it. */
	result(round_trip(&r, ram, RAM_IOVA + OWN_SRC, OWN_SRC, ADOPT_DST),
	       "a DMA round trip through the page table the IOMMU adopted, the device owned by nobody");

	/*
	 * FINISH ends the kept translation: the device is stopped, and once
	 * made a bus master again, its DMA to the old IOVAs faults.
	 */
	check_ret(luo_finish(sfd), 0,
		  "FINISH, the iommufd and the device never retrieved: 0");
	result(!master_on(r.bdf), "after FINISH, bus mastering is off");
	ret = edu_sysfs_set_master(r.bdf, true);
	if (ret)
		ksft_print_msg("setting bus mastering: %s\n", strerror(-ret));
	result(!ret && dma_faults(&r, RAM_IOVA + FAULT_OFF),
	       "made a bus master again, a DMA to IOVA 0x%llx faults in the IOMMU",
	       RAM_IOVA + FAULT_OFF);
	result(holds(ram, FAULT_OFF, EDU_DMA_MAX, FAULT_OFF, SEED) &&
	       holds(ram, FAULT_OFF + EDU_DMA_MAX, EDU_DMA_MAX,
		     FAULT_OFF + EDU_DMA_MAX, SEED),
	       "after FINISH, that DMA wrote nothing into the memfd (offset 0x%x)",
	       FAULT_OFF);
	edu_close(&r);

	/* Owned again, as in rig. */
	ret = edu_open(&e);
	if (ret)
		ksft_print_msg("owning the edu device: %s\n", strerror(-ret));
	result(!ret, "owned again: bound to vfio-pci, its cdev bound to a new iommufd and attached to a new IOAS");
	ok = false;
	if (!ret) {
		ret = edu_map_file(e.iommufd, e.ioas_id, ram, 0, RAM_SIZE,
				   RAM_IOVA);
		if (!ret)
			ret = edu_set_master(&e, true);
		if (ret)
			ksft_print_msg("map, bus mastering: %s\n",
				       strerror(-ret));
		ok = !ret && round_trip(&e, ram, RAM_IOVA + OWN_SRC, OWN_SRC,
					OWN_DST);
		edu_close(&e);
	}
	result(ok, "owned again: the retrieved memfd mapped at IOVA 0x%llx, a DMA round trip through the IOMMU",
	       RAM_IOVA);
	free0 = luo_free_kb();
	close(ram);
	free1 = luo_wait_free_kb(free0, RAM_SIZE / 1024 * 3 / 4, 5000);
	ksft_print_msg("free: %ld kB before, %ld kB after closing the memfd\n",
		       free0, free1);
	result(free1 - free0 >= (long)RAM_SIZE / 1024 * 3 / 4,
	       "the memfd closed, its 2 MiB are freed: nothing holds them after FINISH");
	close(sfd);
	close(dev);
	ksft_finished();
}

/* @nohandler: the handler is gone; else it cannot read the device's record. */
static void orphan_1(bool nohandler)
{
	struct edu r = { .iommufd = -1, .devfd = -1 };
	long free0, free1, bad;
	int dev, sfd, ram, ret, fd = -1;
	size_t len;
	__u64 *t;
	char *log;

	ksft_set_plan(16);
	ram = landed(&dev, &sfd, nohandler ? LIVEUPDATE_FILE_BROKEN :
					     LIVEUPDATE_FILE_INCOMING);
	ret = edu_find(&r);
	if (!ret)
		ret = edu_map_resource(&r);
	require(!ret && master_on(r.bdf),
		"the device held, a bus master; BAR0 mapped through sysfs");

	free0 = luo_free_kb();
	ret = fallocate(ram, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			RAM_SIZE);
	free1 = luo_wait_free_kb(free0, RAM_SIZE / 1024 / 2, 500);
	ksft_print_msg("free: %ld kB before, %ld kB after the punch\n", free0,
		       free1);
	result(!ret && free1 - free0 < (long)RAM_SIZE / 1024 / 2,
	       "the memfd punched whole: its 2 MiB stay allocated, the device still writes there");
	t = tenant_fill(&len);
	require(t, "another tenant fills %zu MiB, nearly all free memory",
		len >> 20);
	ret = dma_over_ram(&r);
	if (ret)
		ksft_print_msg("DMA: %s\n", strerror(-ret));
	bad = tenant_damage(t, len);
	result(!ret && !bad,
	       "DMAs into every 128 KiB of the old guest RAM's IOVAs: the tenant is intact (%ld words changed)",
	       bad);
	munmap(t, len);

	ret = luo_retrieve_fd(sfd, TOK_DEVICE, &fd);
	check_ret(ret, -EOPNOTSUPP,
		  "RETRIEVE_FD of the device: EOPNOTSUPP, %s",
		  nohandler ? "no handler for its format" :
			      "a version of its format this kernel does not read");
	if (!ret)
		close(fd);
	check_ret(luo_finish(sfd), 0, "FINISH");
	log = luo_kernel_log();
	ret = log && strstr(log, nohandler ? "cannot be released" :
					      "could not be released") &&
	      strstr(log, "token 1 (memfd) stays in place until the next update") &&
	      strstr(log, "guest-ram: 512 pages kept in place");
	free(log);
	result(ret, "kernel log: the device cannot be released, so the memfd's 512 old pages stay allocated");
	close(ram);
	t = tenant_fill(&len);
	require(t, "another tenant fills %zu MiB", len >> 20);
	edu_sysfs_set_master(r.bdf, true);
	dma_over_ram(&r);
	bad = tenant_damage(t, len);
	result(!bad, "DMAs into the old IOVAs after FINISH: the tenant is intact (%ld words changed)",
	       bad);
	munmap(t, len);
	edu_close(&r);
	close(sfd);
	close(dev);
	ksft_finished();
}

/*
 * The VMM takes everything back: the iommufd with its IOAS and mappings,
 * and the device, bound to it and attached as before, its state kept.
 */
static void inflight_1(void)
{
	struct edu e = { .iommufd = -1, .devfd = -1 };
	unsigned long long ids = 0;
	int dev, sfd, ram, ret, fd;
	char drv[EDU_DRV_LEN];
	__u32 live;
	bool ok;

	ksft_set_plan(23);
	ram = landed(&dev, &sfd, LIVEUPDATE_FILE_INCOMING);

	fd = luo_take(sfd, TOK_IDS);
	require(fd >= 0 && !luo_test_value(fd, &ids),
		"the object IDs of stage 0 retrieved");
	close(fd);
	e.ioas_id = ids & 0xffff;
	e.hwpt_id = (ids >> 16) & 0xffff;
	e.dev_id = ids >> 32;

	e.iommufd = luo_take(sfd, TOK_IOMMUFD);
	if (e.iommufd < 0)
		ksft_print_msg("RETRIEVE_FD: %s\n", strerror(-e.iommufd));
	require(e.iommufd >= 0, "RETRIEVE_FD of the iommufd");
	ret = edu_iova_ranges(e.iommufd, e.ioas_id);
	result(ret > 0, "its IOAS has the ID it had (%u): IOMMU_IOAS_IOVA_RANGES",
	       e.ioas_id);
	e.devfd = luo_take(sfd, TOK_DEVICE);
	if (e.devfd < 0)
		ksft_print_msg("RETRIEVE_FD: %s\n", strerror(-e.devfd));
	require(e.devfd >= 0, "RETRIEVE_FD of the device");
	if (edu_find(&e))
		luo_bail("no edu device in stage 1");
	ret = edu_driver(e.bdf, drv);
	result(!ret && !strcmp(drv, "vfio-pci"), "the device is bound to vfio-pci");
	ret = edu_map_bar(&e);
	if (ret)
		ksft_print_msg("BAR0: %s\n", strerror(-ret));
	require(!ret, "the device fd is usable: BAR0 mapped through it");

	/* Nothing reset it. */
	live = edu_rd32(&e, EDU_REG_LIVENESS);
	result(live == ~LIVENESS_X,
	       "the liveness register reads ~0x%x, as written before the kexec",
	       LIVENESS_X);
	ok = inflight_regs(&e);
	result(ok, "the DMA registers hold the in-flight transfer");
	result(master_on(e.bdf), "bus mastering still on");

	/* The same IOVAs, nothing mapped again; translation really is on. */
	result(round_trip(&e, ram, RAM_IOVA + OWN_SRC, OWN_SRC, OWN_DST),
	       "a DMA round trip through the IOVAs of before the kexec, nothing mapped again");
	result(dma_faults(&e, HOLE_IOVA),
	       "a DMA to an IOVA nothing maps faults: translation is on");
	ret = edu_unmap(e.iommufd, e.ioas_id, RAM_IOVA, RAM_SIZE);
	check_ret(ret, 0, "the IOAS is an ordinary one: IOMMU_IOAS_UNMAP of the memfd");
	result(!ret && dma_faults(&e, RAM_IOVA + FAULT_OFF) &&
	       holds(ram, FAULT_OFF, EDU_DMA_MAX, FAULT_OFF, SEED),
	       "then a DMA to it faults and writes nothing");
	ret = edu_map_file(e.iommufd, e.ioas_id, ram, 0, RAM_SIZE, RAM_IOVA);
	check_ret(ret, 0, "IOMMU_IOAS_MAP_FILE of the memfd again");

	check_ret(luo_finish(sfd), 0, "FINISH");
	result(round_trip(&e, ram, RAM_IOVA + OWN_SRC, OWN_SRC, OWN_DST2),
	       "after FINISH, DMA goes on through the retrieved iommufd");
	edu_close(&e);
	close(ram);
	close(sfd);
	close(dev);
	ksft_finished();
}

/*
 * The IOMMU's part of the handover is lost (its FLB cannot be found): the
 * next kernel keeps translation on but adopts nothing, and stops the
 * devices behind the unit.  The memfd is whole; the device's DMA faults.
 */
/* The EDU_DMA_MAX bytes at @off of the memfd, and as many after, unwritten. */
static bool untouched(int ram, __u64 off)
{
	return holds(ram, off, EDU_DMA_MAX, off, SEED) &&
	       holds(ram, off + EDU_DMA_MAX, EDU_DMA_MAX, off + EDU_DMA_MAX,
		     SEED);
}

static void damage_1(void)
{
	struct edu r = { .iommufd = -1, .devfd = -1 };
	int dev, sfd, ram, ret, fd;
	char *log;
	bool ok;

	ksft_set_plan(11);
	dev = luo_open_device();
	if (dev < 0)
		luo_bail("open %s: %s", LUO_DEVICE, strerror(-dev));
	ret = luo_retrieve_session(dev, INFLIGHT, &sfd);
	require(!ret, "retrieve session " INFLIGHT);
	ram = luo_take(sfd, TOK_RAM);
	require(ram >= 0, "retrieve the 2 MiB memfd");

	log = luo_kernel_log();
	ok = strstr(log, "what the previous kernel kept is unusable") &&
	     strstr(log, "DMA stays blocked") &&
	     !strstr(log, "preserved by the previous kernel");
	free(log);
	result(ok, "kernel log: translation left on, nothing adopted, DMA blocked");
	if (edu_find(&r))
		luo_bail("no edu device in stage 1");
	result(!master_on(r.bdf), "the device's bus mastering was turned off at boot");
	ret = edu_map_resource(&r);
	require(!ret, "BAR0 mapped through sysfs (resource0)");
	ret = edu_sysfs_set_master(r.bdf, true);
	result(!ret && dma_faults(&r, RAM_IOVA + FAULT_OFF),
	       "made a bus master again, a DMA to the old IOVA 0x%llx faults",
	       RAM_IOVA + FAULT_OFF);
	result(untouched(ram, FAULT_OFF),
	       "and writes nothing into the memfd");
	edu_sysfs_set_master(r.bdf, false);
	edu_close(&r);

	fd = luo_take(sfd, TOK_IOMMUFD);
	if (fd < 0)
		ksft_print_msg("RETRIEVE_FD of the iommufd: %s\n", strerror(-fd));
	result(fd >= 0, "RETRIEVE_FD of the iommufd: its own state is intact");
	if (fd >= 0)
		close(fd);
	fd = -1;
	ret = luo_retrieve_fd(sfd, TOK_DEVICE, &fd);
	check_ret(ret, -EBADMSG,
		  "RETRIEVE_FD of the device: EBADMSG, the IOMMU state it depends on is lost");
	if (!ret)
		close(fd);
	check_ret(luo_finish(sfd), 0, "FINISH");
	result(untouched(ram, FAULT_OFF),
	       "the memfd is still whole after FINISH");
	close(ram);
	close(sfd);
	close(dev);
	ksft_finished();
}

static void nommu_1(void)
{
	struct edu r = { .iommufd = -1, .devfd = -1 };
	int dev, sfd, ram, ret, fd = -1;
	char drv[EDU_DRV_LEN];
	__u64 *img;
	char *log;
	long bad;
	bool ok;

	ksft_set_plan(8);
	dev = luo_open_device();
	if (dev < 0)
		luo_bail("open %s: %s", LUO_DEVICE, strerror(-dev));
	ret = luo_retrieve_session(dev, INFLIGHT, &sfd);
	require(!ret, "retrieve session " INFLIGHT);

	log = luo_kernel_log();
	ok = log && strstr(log, "no IOMMU translates for it: bus mastering off");
	free(log);
	result(ok, "kernel log: the kept device was stopped before translation went off");
	if (edu_find(&r))
		luo_bail("no edu device in stage 1");
	result(!master_on(r.bdf), "its bus mastering is off");

	ret = luo_retrieve_fd(sfd, TOK_DEVICE, &fd);
	check_ret(ret, -ENODEV,
		  "RETRIEVE_FD of the device without an IOMMU: ENODEV");
	if (!ret)
		close(fd);
	ret = edu_driver(r.bdf, drv);
	result(!ret && !drv[0], "and it left no driver bound to the device");
	ram = luo_take(sfd, TOK_RAM);
	img = ram >= 0 ? read_ram(ram) : NULL;
	bad = img ? ram_mismatches(img, 0, INFLIGHT_DST) +
		    ram_mismatches(img, INFLIGHT_DST + EDU_DMA_MAX, RAM_SIZE) :
		    -1;
	free(img);
	result(!bad, "the memfd retrieved: every byte but the in-flight DMA's as before the kexec");
	check_ret(luo_finish(sfd), 0, "FINISH");
	result(!master_on(r.bdf), "bus mastering still off after FINISH");
	close(ram);
	close(sfd);
	close(dev);
	ksft_finished();
}

int main(int argc, char **argv)
{
	const char *scenario = argc == 2 ? argv[1] : "";

	stage = luo_stage();
	if (strcmp(scenario, "rig") && strcmp(scenario, "inflight") &&
	    strcmp(scenario, "abandon") && strcmp(scenario, "damage") &&
	    strcmp(scenario, "orphan") && strcmp(scenario, "version") &&
	    strcmp(scenario, "nommu")) {
		fprintf(stderr, "%s rig|inflight|abandon|damage|orphan|version|nommu, with LUO_STAGE=N\n",
			argv[0]);
		return KSFT_FAIL;
	}
	ksft_print_header();
	if (!strcmp(scenario, "rig"))
		run_rig();
	else if (stage == 0 && !strcmp(scenario, "damage"))
		inflight_0("flb iommu name-nul", NULL);
	else if (stage == 0 && !strcmp(scenario, "orphan"))
		inflight_0("handler vfio-pci rename=vfio-gone", NULL);
	else if (stage == 0 && !strcmp(scenario, "version"))
		inflight_0("file " INFLIGHT " 3 version", NULL);
	else if (stage == 0 && !strcmp(scenario, "nommu"))
		inflight_0(NULL, "intel_iommu=off");
	else if (stage == 0)
		inflight_0(NULL, NULL);
	else if (stage == 1 && !strcmp(scenario, "inflight"))
		inflight_1();
	else if (stage == 1 && !strcmp(scenario, "damage"))
		damage_1();
	else if (stage == 1 && !strcmp(scenario, "orphan"))
		orphan_1(true);
	else if (stage == 1 && !strcmp(scenario, "version"))
		orphan_1(false);
	else if (stage == 1 && !strcmp(scenario, "nommu"))
		nommu_1();
	else if (stage == 1)
		abandon_1();
	else
		ksft_exit_fail_msg("%s has no stage %d\n", scenario, stage);
	ksft_finished();
}
