// SPDX-License-Identifier: GPL-2.0
/*
 * luo-demo-vmm: a pretend VMM whose whole state crosses a live update.
 *
 *   luo-demo-vmm start  [-s SOCKET] [-N NAME] [-m MiB] [-H] [-d] [-n STEPS]
 *                       [-r RATE] [-p EVERY]
 *   luo-demo-vmm resume [-s SOCKET] [-N NAME] [-d] [-n MORE] [-p EVERY]
 *                       [-w] [-r RATE]
 *   luo-demo-vmm check  [-m MiB] [-H] [-n STEPS]
 *
 * The state lives in two memfds: "guest-ram" (-m MiB, default 256; with -H
 * a hugetlb memfd of 2 MiB pages, as VMMs back guest RAM, from the pool
 * /proc/sys/vm/nr_hugepages sizes) and "device-state" (one page: struct
 * dev_state).  The "guest" runs steps:
 * step S picks PAGES_PER_STEP pages of guest RAM with an xorshift generator
 * seeded by S, and rewrites each from its previous version, so every step
 * depends on all the steps that touched those pages before.  A page is fully
 * described by a 64-bit version (its first word; version 0 is a page of
 * zeros), which makes the expected RAM after S steps computable in
 * O(S * PAGES_PER_STEP), and checking it O(pages touched): holes are found
 * with SEEK_DATA and need not be read.  The checksum is the sum of a hash of
 * every page's version, kept up to date at each step.
 *
 * start: gets the outgoing session NAME (default "demo-vmm") from luod,
 * preserves guest-ram (token 1) and device-state (token 2), runs STEPS
 * steps (default 1000) at full speed, then RATE steps a second (default
 * 50) until luod sends PREPARE: it stops at a step boundary, records the
 * step and checksum in device-state, answers READY and waits, holding its
 * session fd, for the reboot (or CANCEL, and then it runs on).
 *
 * resume: in the new kernel, gets the incoming session NAME, retrieves both
 * memfds, recomputes the state of guest RAM after the recorded steps from
 * scratch and compares every byte (exit status 1 and the first differing
 * offset on any difference), runs MORE steps (default 1000), finishes the
 * session and prints the final step and checksum.  With -w it then
 * preserves both memfds again and behaves as start does, for another hop;
 * without it, it asks luod to release the (now empty) session.
 *
 * check: no luod, no LUO: runs the computation in memfds and checks that
 * the verifier accepts it, and rejects a flipped byte, a lost step and a
 * stray write.
 *
 * -d: the VM also has a passthrough device, QEMU's "edu" (on a machine
 * with VT-d, see liveupdate_edu.h), owned through vfio-pci and an iommufd
 * whose IOAS maps guest-ram at GUEST_IOVA and device-state at STATE_IOVA;
 * the iommufd (token 3) and the device (token 4) are preserved after the
 * memfds.  At PREPARE the device loads a message from device-state into
 * its buffer by DMA, then starts a DMA of it back into another spot of
 * device-state and the VMM answers READY without waiting: the transfer
 * runs 100 ms later, in the old kernel or across the kexec.  resume
 * retrieves the device (bound and attached again, with its iommufd),
 * checks that the message arrived, and has the device write it once more
 * from its buffer, which no reset cleared, through the same IOVAs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/memfd.h>

#include "tools.h"
#include "libluo.h"
#include "../testing/selftests/liveupdate/liveupdate_edu.h"

#define DEFAULT_SOCKET	"/run/luod.sock"
#define DEFAULT_NAME	"demo-vmm"
#define GPAGE		4096ULL		/* guest page size, on any host */
#define PAGE_WORDS	(GPAGE / 8)
#define PAGES_PER_STEP	8
#define TOKEN_RAM	1
#define TOKEN_STATE	2
#define TOKEN_IOMMUFD	3
#define TOKEN_DEVICE	4
#define GUEST_IOVA	0x1000000ULL	/* guest-ram, for the device */
#define STATE_IOVA	0x800000ULL	/* device-state, under edu's 28 bits */
/* In device-state, after struct dev_state: the device's DMA mailbox. */
#define DMA_MSG		1024		/* what the device loads */
#define DMA_INFLIGHT	2048		/* where the DMA left in flight writes it */
#define DMA_AFTER	3072		/* where it writes it after the update */
#define DMA_LEN		256
#define STATE_MAGIC	"LUOVMM1"
#define STATE_VERSION	1
#define MiB		(1024ULL * 1024)
#define GOLDEN		0x9e3779b97f4a7c15ULL

/**
 * struct dev_state - the device-state memfd
 * @magic: STATE_MAGIC
 * @version: STATE_VERSION
 * @page_size: GPAGE
 * @pages_per_step: PAGES_PER_STEP
 * @ram_size: size of guest RAM in bytes
 * @step: number of steps completed
 * @checksum: checksum of guest RAM after @step steps
 * @saved: 1 when written at a step boundary for an update (PREPARE)
 * @updates: number of live updates this VM went through
 * @ready_ns: CLOCK_REALTIME when it answered READY, for the blackout
 * @header_sum: hash of all the fields above
 */
struct dev_state {
	char magic[8];
	uint32_t version;
	uint32_t page_size;
	uint32_t pages_per_step;
	uint32_t saved;
	uint64_t ram_size;
	uint64_t step;
	uint64_t checksum;
	uint64_t updates;
	uint64_t ready_ns;
	uint64_t header_sum;
};

struct vm {
	int ram_fd, state_fd;
	uint8_t *ram;
	uint64_t ram_size, npages;
	struct dev_state *st;
	int sock;		/* luod, or -1 */
	int sfd;		/* session, or -1 */
	struct edu edu;		/* with -d */
};

static const char *sock_path = DEFAULT_SOCKET;
static const char *name = DEFAULT_NAME;
static unsigned long long print_every = 100;
static double rate = 50;
static bool hugetlb;
static bool device;

static uint64_t clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* ---- the guest computation ---- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t xorshift64(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static uint64_t step_seed(uint64_t step)
{
	uint64_t x = mix64(step ^ 0x6c756f2d766d6d00ULL);

	return x ? x : 1;
}

/* The version a page gets when slot @i of step @step rewrites it. */
static uint64_t next_version(uint64_t old, uint64_t step, unsigned int i)
{
	uint64_t v = mix64(old + mix64(step * PAGES_PER_STEP + i));

	return v ? v : 1;
}

/* Word @j of page @page at version @v: cheap, but unique to all three. */
static uint64_t page_word(uint64_t page, uint64_t v, unsigned int j)
{
	if (!v)
		return 0;
	return j ? (v ^ (page << 24)) + j * GOLDEN : v;
}

static void page_fill(uint64_t *w, uint64_t page, uint64_t v)
{
	unsigned int j;

	for (j = 0; j < PAGE_WORDS; j++)
		w[j] = page_word(page, v, j);
}

/* A page's share of the checksum. */
static uint64_t page_sum(uint64_t page, uint64_t v)
{
	return v ? mix64(v ^ (page * 0xd6e8feb86659fd93ULL)) : 0;
}

static uint64_t header_sum(const struct dev_state *st)
{
	const uint8_t *p = (const uint8_t *)st;
	uint64_t h = 0, w;
	size_t i;

	for (i = 0; i < offsetof(struct dev_state, header_sum); i += 8) {
		memcpy(&w, p + i, 8);
		h = mix64(h ^ w);
	}
	return h;
}

/* Run one step on guest RAM: the state is read from RAM itself. */
static void do_step(struct vm *vm)
{
	uint64_t s = vm->st->step + 1, x = step_seed(s);
	uint64_t cs = vm->st->checksum;
	unsigned int i;

	for (i = 0; i < PAGES_PER_STEP; i++) {
		uint64_t p = xorshift64(&x) % vm->npages;
		uint64_t *w = (uint64_t *)(vm->ram + p * GPAGE);
		uint64_t old = w[0], v = next_version(old, s, i);

		cs += page_sum(p, v) - page_sum(p, old);
		page_fill(w, p, v);
	}
	vm->st->checksum = cs;
	vm->st->step = s;
}

/*
 * The versions of all pages after @steps steps, computed from scratch, and
 * in @last the step that last wrote each page.  Returns the checksum.
 */
static uint64_t replay(uint64_t npages, uint64_t steps, uint64_t *v,
		       uint64_t *last)
{
	uint64_t s, cs = 0;

	memset(v, 0, npages * sizeof(*v));
	memset(last, 0, npages * sizeof(*last));
	for (s = 1; s <= steps; s++) {
		uint64_t x = step_seed(s);
		unsigned int i;

		for (i = 0; i < PAGES_PER_STEP; i++) {
			uint64_t p = xorshift64(&x) % npages;
			uint64_t nv = next_version(v[p], s, i);

			cs += page_sum(p, nv) - page_sum(p, v[p]);
			v[p] = nv;
			last[p] = s;
		}
	}
	return cs;
}

/* ---- verification ---- */

struct verify {
	uint64_t npages, *v, *last;
	uint64_t bad;		/* first differing offset */
	uint64_t pages_read;
};

static void report_bad(struct verify *vf, uint64_t page, const uint8_t *got)
{
	static uint64_t want[PAGE_WORDS];
	const uint8_t *w = (const uint8_t *)want;
	unsigned int b;

	page_fill(want, page, vf->v[page]);
	for (b = 0; b < GPAGE; b++)
		if ((got ? got[b] : 0) != w[b])
			break;
	vf->bad = page * GPAGE + b;
	fprintf(stderr,
		"vmm: FAILED: guest RAM differs from the recomputed state at offset 0x%llx (page %llu, byte %u): expected 0x%02x, found 0x%02x%s; the page was last written by step %llu%s\n",
		(unsigned long long)vf->bad, (unsigned long long)page, b,
		w[b], got ? got[b] : 0, got ? "" : " (a hole)",
		(unsigned long long)vf->last[page],
		vf->last[page] ? "" : " (never)");
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* Compare pages [first, end) of @fd with their expected contents. */
static int verify_range(int fd, struct verify *vf, uint64_t first,
			uint64_t end)
{
	static uint64_t buf[64 * PAGE_WORDS], want[PAGE_WORDS];
	uint64_t p, k, n;
	int ret;

	for (p = first; p < end; p += n) {
		n = end - p < 64 ? end - p : 64;
		ret = pread_full(fd, buf, n * GPAGE, p * GPAGE);
		if (ret) {
			fprintf(stderr, "vmm: reading guest RAM at 0x%llx: %s\n",
				(unsigned long long)(p * GPAGE),
				strerror(-ret));
			return -1;
		}
		vf->pages_read += n;
		for (k = 0; k < n; k++) {
			const uint64_t *got = buf + k * PAGE_WORDS;

			page_fill(want, p + k, vf->v[p + k]);
			if (memcmp(got, want, GPAGE)) {
				report_bad(vf, p + k, (const uint8_t *)got);
				return 1;
			}
		}
	}
	return 0;
}

/* Pages [first, end) are a hole: they must be expected to be zero. */
static int verify_hole(struct verify *vf, uint64_t first, uint64_t end)
{
	uint64_t p;

	for (p = first; p < end; p++) {
		if (vf->v[p]) {
			report_bad(vf, p, NULL);
			return 1;
		}
	}
	return 0;
}

/*
 * Check every byte of guest RAM (@fd, @size bytes) against the state after
 * @steps steps, and @checksum against its checksum.  Returns 0 if intact,
 * 1 if not (with a message), -1 on error.
 */
static int verify_ram(int fd, uint64_t size, uint64_t steps,
		      uint64_t checksum, uint64_t *pages_read)
{
	struct verify vf = { .npages = size / GPAGE };
	uint64_t off = 0, cs;
	int ret = 0;

	vf.v = calloc(vf.npages, sizeof(*vf.v));
	vf.last = calloc(vf.npages, sizeof(*vf.last));
	if (!vf.v || !vf.last) {
		fprintf(stderr, "vmm: out of memory\n");
		ret = -1;
		goto out;
	}
	cs = replay(vf.npages, steps, vf.v, vf.last);
	while (!ret && off < size) {
		off_t data = lseek(fd, off, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO) {
			data = size;
		} else if (data < 0) {
			/* No SEEK_DATA: read it all. */
			ret = verify_range(fd, &vf, off / GPAGE, vf.npages);
			break;
		}
		data = data / GPAGE * GPAGE;
		if ((uint64_t)data > size)
			data = size;
		ret = verify_hole(&vf, off / GPAGE, data / GPAGE);
		if (ret || (uint64_t)data >= size)
			break;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > size)
			hole = size;
		hole = (hole + GPAGE - 1) / GPAGE * GPAGE;
		if (hole <= data)
			hole = data + GPAGE;
		ret = verify_range(fd, &vf, data / GPAGE, hole / GPAGE);
		off = hole;
	}
	if (!ret && cs != checksum) {
		fprintf(stderr,
			"vmm: FAILED: guest RAM is intact but the checksum in device-state (0x%016llx) is not the one of %llu steps (0x%016llx)\n",
			(unsigned long long)checksum,
			(unsigned long long)steps, (unsigned long long)cs);
		ret = 1;
	}
	if (pages_read)
		*pages_read = vf.pages_read;
out:
	free(vf.v);
	free(vf.last);
	return ret;
}

/* ---- memfds ---- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static __noreturn void die(const char *what, int err)
{
	fprintf(stderr, "vmm: %s: %s\n", what, strerror(err));
	exit(1);
}

static void map_ram(struct vm *vm)
{
	vm->ram = mmap(NULL, vm->ram_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       vm->ram_fd, 0);
	if (vm->ram == MAP_FAILED)
		die("mmap guest-ram", errno);
}

static void map_state(struct vm *vm)
{
	vm->st = mmap(NULL, GPAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
		      vm->state_fd, 0);
	if (vm->st == MAP_FAILED)
		die("mmap device-state", errno);
}

static void vm_create(struct vm *vm, unsigned long long mib)
{
	vm->ram_size = mib * MiB;
	vm->npages = vm->ram_size / GPAGE;
	vm->ram_fd = memfd_create("guest-ram", MFD_CLOEXEC |
				  (hugetlb ? MFD_HUGETLB | MFD_HUGE_2MB : 0));
	if (vm->ram_fd < 0)
		die(hugetlb ? "memfd_create guest-ram (MFD_HUGETLB | MFD_HUGE_2MB)"
			    : "memfd_create guest-ram", errno);
	if (ftruncate(vm->ram_fd, vm->ram_size))
		die(hugetlb ? "sizing guest-ram (a multiple of 2 MiB)"
			    : "sizing guest-ram", errno);
	vm->state_fd = memfd_create("device-state", MFD_CLOEXEC);
	if (vm->state_fd < 0)
		die("memfd_create device-state", errno);
	if (ftruncate(vm->state_fd, GPAGE))
		die("sizing device-state", errno);
	map_ram(vm);
	map_state(vm);
	memcpy(vm->st->magic, STATE_MAGIC, sizeof(vm->st->magic));
	vm->st->version = STATE_VERSION;
	vm->st->page_size = GPAGE;
	vm->st->pages_per_step = PAGES_PER_STEP;
	vm->st->ram_size = vm->ram_size;
	vm->st->header_sum = header_sum(vm->st);
}

static void print_step(struct vm *vm)
{
	printf("vmm: step %llu, checksum 0x%016llx\n",
	       (unsigned long long)vm->st->step,
	       (unsigned long long)vm->st->checksum);
	fflush(stdout);
}

/* ---- the passthrough device (-d) ---- */

static void device_own(struct vm *vm)
{
	int ret = edu_open(&vm->edu);

	if (ret)
		die("owning the edu device (vfio-pci, iommufd)", -ret);
	ret = edu_map_file(vm->edu.iommufd, vm->edu.ioas_id, vm->ram_fd, 0,
			   vm->ram_size, GUEST_IOVA);
	if (!ret)
		ret = edu_map_file(vm->edu.iommufd, vm->edu.ioas_id,
				   vm->state_fd, 0, GPAGE, STATE_IOVA);
	if (!ret)
		ret = edu_set_master(&vm->edu, true);
	if (ret)
		die("mapping guest memory for the device", -ret);
	printf("vmm: device: edu %s bound to vfio-pci and an iommufd; guest-ram at IOVA 0x%llx, device-state at 0x%llx\n",
	       vm->edu.bdf, GUEST_IOVA, STATE_IOVA);
}

/* At PREPARE: a message into the device, and a DMA of it left running. */
static void device_prepare(struct vm *vm)
{
	char *page = (char *)vm->st;
	int ret;

	memset(page + DMA_MSG, 0, DMA_LEN);
	snprintf(page + DMA_MSG, DMA_LEN,
		 "written by the device, its DMA started at step %llu before the update",
		 (unsigned long long)vm->st->step);
	memset(page + DMA_INFLIGHT, 0, 2 * DMA_LEN);
	memset(page + DMA_AFTER, 0, DMA_LEN);
	ret = edu_dma(&vm->edu, STATE_IOVA + DMA_MSG, 0, DMA_LEN, false);
	if (!ret)
		ret = edu_dma_start(&vm->edu, STATE_IOVA + DMA_INFLIGHT, 0,
				    DMA_LEN, true);
	if (ret)
		die("device DMA", -ret);
	printf("vmm: device: a message loaded into the device; its DMA back into device-state started, not waited for\n");
}

/* After the update: the DMA left in flight landed; the device goes on. */
static int device_resume(struct vm *vm)
{
	const char *page = (const char *)vm->st;
	int ret;

	ret = luo_retrieve_fd(vm->sfd, TOKEN_DEVICE, &vm->edu.devfd);
	if (ret)
		die("retrieving the device (token 4)", -ret);
	ret = luo_retrieve_fd(vm->sfd, TOKEN_IOMMUFD, &vm->edu.iommufd);
	if (!ret)
		ret = edu_map_bar(&vm->edu);
	if (ret)
		die("retrieving the iommufd (token 3), mapping BAR0", -ret);
	printf("vmm: device: retrieved, bound to vfio-pci and to the retrieved iommufd, attached as before\n");
	if (strncmp(page + DMA_INFLIGHT, page + DMA_MSG, DMA_LEN)) {
		fprintf(stderr, "vmm: FAILED: the DMA left in flight at the update did not arrive\n");
		return 1;
	}
	printf("vmm: device: the DMA left in flight arrived: \"%.*s\"\n",
	       DMA_LEN, page + DMA_INFLIGHT);
	ret = edu_dma_wait(&vm->edu, 5000);
	if (!ret)
		ret = edu_dma(&vm->edu, STATE_IOVA + DMA_AFTER, 0, DMA_LEN, true);
	if (ret)
		die("device DMA after the update", -ret);
	if (strncmp(page + DMA_AFTER, page + DMA_MSG, DMA_LEN)) {
		fprintf(stderr, "vmm: FAILED: a DMA after the update did not write what the device held\n");
		return 1;
	}
	printf("vmm: device: its buffer survived (no reset), and a new DMA through the same IOVA wrote it again\n");
	fflush(stdout);
	return 0;
}

/* ---- talking to luod ---- */

/* Ask luod for session @name (@mode: any, incoming, outgoing). */
static int get_session(struct vm *vm, const char *mode, unsigned int *kind)
{
	char req[128], line[512];
	int ret, fd;

	vm->sock = luo_connect(sock_path);
	if (vm->sock < 0) {
		fprintf(stderr, "vmm: cannot connect to luod at %s: %s\n",
			sock_path, strerror(-vm->sock));
		return -1;
	}
	snprintf(req, sizeof(req), "SESSION %s %s", name, mode);
	ret = luo_send_line(vm->sock, req);
	if (!ret)
		ret = luo_recv_line(vm->sock, line, sizeof(line), &fd, 30000);
	if (ret < 0) {
		fprintf(stderr, "vmm: asking luod for session %s: %s\n", name,
			strerror(-ret));
		return -1;
	}
	if (strncmp(line, "OK ", 3) || fd < 0) {
		fprintf(stderr, "vmm: luod refused session %s: %s\n", name,
			line);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*kind = !strcmp(line + 3, "incoming") ? LIVEUPDATE_SESSION_INCOMING :
		LIVEUPDATE_SESSION_OUTGOING;
	vm->sfd = fd;
	return 0;
}

static void lost_luod(struct vm *vm)
{
	printf("vmm: lost the connection to luod: running on without it (this VMM still holds session %s)\n",
	       name);
	fflush(stdout);
	close(vm->sock);
	vm->sock = -1;
}

/* PREPARE: stop at this step boundary, save, say READY, wait. */
static void prepare(struct vm *vm)
{
	char line[512];
	int ret;

	vm->st->saved = 1;
	vm->st->ready_ns = clock_ns(CLOCK_REALTIME);
	vm->st->header_sum = header_sum(vm->st);
	if (device)
		device_prepare(vm);
	printf("vmm: PREPARE: stopped at step %llu, checksum 0x%016llx, device state saved; READY\n",
	       (unsigned long long)vm->st->step,
	       (unsigned long long)vm->st->checksum);
	fflush(stdout);
	ret = luo_send_line(vm->sock, "READY");
	/* Now idle, holding the session, until the reboot or CANCEL. */
	while (!ret) {
		ret = luo_recv_line(vm->sock, line, sizeof(line), NULL, -1);
		if (ret >= 0 && !strcmp(line, "CANCEL"))
			break;
		if (ret >= 0 && !strcmp(line, "PREPARE"))
			ret = luo_send_line(vm->sock, "READY");
		else if (ret >= 0)
			ret = 0;
	}
	vm->st->saved = 0;
	vm->st->header_sum = header_sum(vm->st);
	if (ret < 0) {
		lost_luod(vm);
		return;
	}
	printf("vmm: update cancelled: running on from step %llu\n",
	       (unsigned long long)vm->st->step);
	fflush(stdout);
}

/*
 * Handle what luod sent, waiting up to @wait_ms for it.  @can_prepare is
 * false while the state is not all in preserved files yet.
 */
static void poll_luod(struct vm *vm, int wait_ms, bool can_prepare)
{
	long long until = now_ms() + wait_ms;

	for (;;) {
		struct pollfd pfd = { .fd = vm->sock, .events = POLLIN };
		long long left = until - now_ms();
		char line[512];
		int ret;

		if (vm->sock < 0) {
			if (left > 0)
				usleep(left * 1000);
			return;
		}
		ret = poll(&pfd, 1, left > 0 ? (int)left : 0);
		if (ret <= 0)
			return;
		ret = luo_recv_line(vm->sock, line, sizeof(line), NULL, 5000);
		if (ret < 0) {
			lost_luod(vm);
			continue;
		}
		if (!strcmp(line, "PREPARE")) {
			if (can_prepare) {
				prepare(vm);
				return;
			}
			printf("vmm: PREPARE while resuming: answering NOTREADY\n");
			fflush(stdout);
			luo_send_line(vm->sock,
				      "NOTREADY demo VMM still resuming (session not finished)");
		} else if (strcmp(line, "CANCEL")) {
			printf("vmm: luod says: %s\n", line);
		}
	}
}

/* Run @n steps at full speed. */
static void run_steps(struct vm *vm, unsigned long long n, bool can_prepare)
{
	unsigned long long i;

	for (i = 0; i < n; i++) {
		do_step(vm);
		if (print_every && !(vm->st->step % print_every))
			print_step(vm);
		if (vm->sock >= 0 && !(i % 16))
			poll_luod(vm, 0, can_prepare);
	}
}

/* Run @rate steps a second for ever, taking part in updates. */
static __noreturn void serve(struct vm *vm)
{
	long long period = rate > 0 ? (long long)(1000 / rate) : 1000;
	long long next = now_ms();

	printf("vmm: at step %llu; running %g steps/s until luod says PREPARE\n",
	       (unsigned long long)vm->st->step, rate);
	fflush(stdout);
	for (;;) {
		long long left;

		do_step(vm);
		if (print_every && !(vm->st->step % print_every))
			print_step(vm);
		next += period;
		left = next - now_ms();
		if (left < 0) {
			left = 0;
			next = now_ms();
		}
		poll_luod(vm, (int)left, true);
	}
}

static void preserve_all(struct vm *vm)
{
	int ret;

	ret = luo_preserve_fd(vm->sfd, vm->ram_fd, TOKEN_RAM);
	if (ret)
		die("preserving guest-ram", -ret);
	ret = luo_preserve_fd(vm->sfd, vm->state_fd, TOKEN_STATE);
	if (ret)
		die("preserving device-state", -ret);
	printf("vmm: session %s: guest-ram (%llu MiB, token %d) and device-state (token %d) preserved\n",
	       name, (unsigned long long)(vm->ram_size / MiB), TOKEN_RAM,
	       TOKEN_STATE);
	if (device) {
		/* After the memfds its IOAS maps, and before the device. */
		ret = luo_preserve_fd(vm->sfd, vm->edu.iommufd, TOKEN_IOMMUFD);
		if (ret)
			die("preserving the iommufd", -ret);
		ret = luo_preserve_fd(vm->sfd, vm->edu.devfd, TOKEN_DEVICE);
		if (ret)
			die("preserving the device", -ret);
		printf("vmm: session %s: the iommufd (token %d) and the edu device %s (token %d) preserved\n",
		       name, TOKEN_IOMMUFD, vm->edu.bdf, TOKEN_DEVICE);
	}
	fflush(stdout);
}

/* ---- modes ---- */

static int mode_start(unsigned long long mib, unsigned long long steps)
{
	struct vm vm = { .sock = -1, .sfd = -1 };
	unsigned int kind;
	int n;

	vm_create(&vm, mib);
	if (device)
		device_own(&vm);
	if (get_session(&vm, "outgoing", &kind))
		return 1;
	n = luo_file_count(vm.sfd, NULL);
	if (n > 0) {
		/* Left by a VMM that died: its files are stale, last first. */
		printf("vmm: session %s holds %d stale file(s): unpreserving them\n",
		       name, n);
		luo_unpreserve_fd(vm.sfd, TOKEN_DEVICE);
		luo_unpreserve_fd(vm.sfd, TOKEN_IOMMUFD);
		luo_unpreserve_fd(vm.sfd, TOKEN_RAM);
		luo_unpreserve_fd(vm.sfd, TOKEN_STATE);
	}
	preserve_all(&vm);
	printf("vmm: running %llu steps on %llu MiB of guest RAM\n", steps,
	       mib);
	fflush(stdout);
	run_steps(&vm, steps, true);
	serve(&vm);
}

static int check_state(struct vm *vm)
{
	struct dev_state *st = vm->st;
	struct stat sb;

	if (memcmp(st->magic, STATE_MAGIC, sizeof(st->magic)) ||
	    st->version != STATE_VERSION || st->page_size != GPAGE ||
	    st->pages_per_step != PAGES_PER_STEP) {
		fprintf(stderr, "vmm: FAILED: device-state is not ours (magic, version or geometry differ)\n");
		return 1;
	}
	if (st->header_sum != header_sum(st)) {
		fprintf(stderr, "vmm: FAILED: device-state is damaged (header checksum 0x%016llx, computed 0x%016llx)\n",
			(unsigned long long)st->header_sum,
			(unsigned long long)header_sum(st));
		return 1;
	}
	if (st->saved != 1) {
		fprintf(stderr, "vmm: FAILED: device-state was not saved at a step boundary (the VMM never answered PREPARE)\n");
		return 1;
	}
	if (fstat(vm->ram_fd, &sb))
		die("fstat guest-ram", errno);
	if ((uint64_t)sb.st_size != st->ram_size || !st->ram_size ||
	    st->ram_size % GPAGE) {
		fprintf(stderr, "vmm: FAILED: guest-ram is %lld bytes, device-state says %llu\n",
			(long long)sb.st_size,
			(unsigned long long)st->ram_size);
		return 1;
	}
	return 0;
}

static int mode_resume(unsigned long long more, bool again)
{
	struct vm vm = { .sock = -1, .sfd = -1,
			 .edu = { .iommufd = -1, .devfd = -1 } };
	uint64_t pages_read;
	unsigned int kind;
	long long t0;
	int ret;

	if (get_session(&vm, "incoming", &kind))
		return 1;
	ret = luo_retrieve_fd(vm.sfd, TOKEN_RAM, &vm.ram_fd);
	if (ret)
		die("retrieving guest-ram (token 1)", -ret);
	ret = luo_retrieve_fd(vm.sfd, TOKEN_STATE, &vm.state_fd);
	if (ret)
		die("retrieving device-state (token 2)", -ret);
	map_state(&vm);
	if (check_state(&vm))
		return 1;
	vm.ram_size = vm.st->ram_size;
	vm.npages = vm.ram_size / GPAGE;
	/*
	 * The new kernel's wall clock starts from the RTC (1 s steps): the
	 * blackout is an estimate; the time since this kernel booted is exact.
	 */
	printf("vmm: blackout about %.1f s (READY in the old kernel to here, wall clock); this kernel booted %.2f s ago\n",
	       (clock_ns(CLOCK_REALTIME) - vm.st->ready_ns) / 1e9,
	       clock_ns(CLOCK_BOOTTIME) / 1e9);
	printf("vmm: retrieved session %s: device state says step %llu, checksum 0x%016llx, %llu MiB of guest RAM; verifying\n",
	       name, (unsigned long long)vm.st->step,
	       (unsigned long long)vm.st->checksum,
	       (unsigned long long)(vm.ram_size / MiB));
	fflush(stdout);
	t0 = now_ms();
	ret = verify_ram(vm.ram_fd, vm.ram_size, vm.st->step,
			 vm.st->checksum, &pages_read);
	if (ret)
		return 1;
	printf("vmm: resumed at step %llu, guest RAM intact (%llu MiB verified)\n",
	       (unsigned long long)vm.st->step,
	       (unsigned long long)(vm.ram_size / MiB));
	printf("vmm: verification took %lld ms, %llu pages with data read\n",
	       now_ms() - t0, (unsigned long long)pages_read);
	fflush(stdout);
	if (device && device_resume(&vm))
		return 1;

	map_ram(&vm);
	vm.st->saved = 0;
	vm.st->updates++;
	vm.st->header_sum = header_sum(vm.st);
	run_steps(&vm, more, false);
	ret = luo_finish(vm.sfd);
	if (ret)
		die("finishing the session", -ret);
	printf("vmm: session %s finished (live updates survived: %llu)\n",
	       name, (unsigned long long)vm.st->updates);
	printf("vmm: final step %llu, checksum 0x%016llx\n",
	       (unsigned long long)vm.st->step,
	       (unsigned long long)vm.st->checksum);
	fflush(stdout);
	if (again) {
		preserve_all(&vm);
		serve(&vm);
	}
	/* Done for good: luod need not keep the empty session. */
	if (vm.sock >= 0) {
		char line[512];

		snprintf(line, sizeof(line), "RELEASE %s", name);
		if (!luo_send_line(vm.sock, line))
			luo_recv_line(vm.sock, line, sizeof(line), NULL, 5000);
	}
	return 0;
}

static int mode_check(unsigned long long mib, unsigned long long steps)
{
	struct vm vm = { .sock = -1, .sfd = -1 };
	uint64_t pages_read;
	unsigned long long off;
	int bad = 0, ret;
	uint8_t save;

	vm_create(&vm, mib);
	run_steps(&vm, steps, false);
	print_step(&vm);

	ret = verify_ram(vm.ram_fd, vm.ram_size, vm.st->step,
			 vm.st->checksum, &pages_read);
	printf("vmm: check: intact RAM %s (%llu pages read)\n",
	       ret ? "REJECTED" : "accepted",
	       (unsigned long long)pages_read);
	bad |= ret != 0;

	/* A flipped byte in the middle of the page the last step wrote. */
	{
		uint64_t x = step_seed(vm.st->step), p = 0;
		unsigned int i;

		for (i = 0; i < PAGES_PER_STEP; i++)
			p = xorshift64(&x) % vm.npages;
		off = p * GPAGE + 1234;
	}
	save = vm.ram[off];
	vm.ram[off] ^= 0x40;
	printf("vmm: check: flipping the byte at 0x%llx\n", off);
	ret = verify_ram(vm.ram_fd, vm.ram_size, vm.st->step,
			 vm.st->checksum, NULL);
	bad |= ret != 1;
	vm.ram[off] = save;

	/* A lost step: device-state claims one more than RAM holds. */
	printf("vmm: check: claiming one step more than was run\n");
	ret = verify_ram(vm.ram_fd, vm.ram_size, vm.st->step + 1,
			 vm.st->checksum, NULL);
	bad |= ret != 1;

	/* A stray write to the last page, which is most likely untouched. */
	off = vm.ram_size - 1;
	save = vm.ram[off];
	vm.ram[off] ^= 1;
	printf("vmm: check: stray write at 0x%llx\n", off);
	ret = verify_ram(vm.ram_fd, vm.ram_size, vm.st->step,
			 vm.st->checksum, NULL);
	bad |= ret != 1;
	vm.ram[off] = save;

	/* And a wrong checksum alone. */
	printf("vmm: check: wrong checksum\n");
	ret = verify_ram(vm.ram_fd, vm.ram_size, vm.st->step,
			 vm.st->checksum + 1, NULL);
	bad |= ret != 1;

	ret = verify_ram(vm.ram_fd, vm.ram_size, vm.st->step,
			 vm.st->checksum, NULL);
	bad |= ret != 0;
	printf("vmm: check %s\n", bad ? "FAILED" : "passed");
	return bad;
}

static __noreturn void print_usage(void)
{
	fprintf(stderr,
		"usage: luo-demo-vmm start  [-s SOCKET] [-N NAME] [-m MiB] [-H] [-d] [-n STEPS] [-r RATE] [-p EVERY]\n"
		"       luo-demo-vmm resume [-s SOCKET] [-N NAME] [-d] [-n MORE] [-p EVERY] [-w [-r RATE]]\n"
		"       luo-demo-vmm check  [-m MiB] [-H] [-n STEPS]\n"
		"  -s SOCKET  luod's socket (default %s)\n"
		"  -N NAME    session name (default %s)\n"
		"  -m MiB     guest RAM (default 256)\n"
		"  -H         guest RAM in 2 MiB hugetlb pages (set nr_hugepages first)\n"
		"  -d         with QEMU's edu device passed through (vfio-pci, iommufd)\n"
		"  -n STEPS   steps to run at full speed (default 1000)\n"
		"  -r RATE    steps per second while waiting for PREPARE (default 50)\n"
		"  -p EVERY   print a line every EVERY steps (default 100, 0: never)\n"
		"  -w         resume: after finishing, preserve again and wait for the next update\n",
		DEFAULT_SOCKET, DEFAULT_NAME);
	exit(2);
}

static unsigned long long number(const char *s, unsigned long long max)
{
	unsigned long long n;
	char *end;

	errno = 0;
	n = strtoull(s, &end, 0);
	if (errno || end == s || *end || n > max || *s == '-')
		print_usage();
	return n;
}

int main(int argc, char **argv)
{
	unsigned long long mib = 256, steps = 1000;
	bool again = false;
	const char *mode;
	char *end;
	int opt;

	if (argc < 2)
		print_usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	mode = argv[1];
	argv++;
	argc--;
	while ((opt = getopt(argc, argv, "s:N:m:Hdn:r:p:w")) != -1) {
		switch (opt) {
		case 's':
			sock_path = optarg;
			break;
		case 'N':
			name = optarg;
			if (!*name || strlen(name) >= LUO_NAME_SIZE ||
			    strpbrk(name, " \t\n"))
				print_usage();
			break;
		case 'm':
			mib = number(optarg, 1ULL << 20);
			if (!mib)
				print_usage();
			break;
		case 'H':
			hugetlb = true;
			break;
		case 'd':
			device = true;
			break;
		case 'n':
			steps = number(optarg, 1ULL << 40);
			break;
		case 'r':
			rate = strtod(optarg, &end);
			if (*end || rate <= 0 || rate > 1e6)
				print_usage();
			break;
		case 'p':
			print_every = number(optarg, 1ULL << 40);
			break;
		case 'w':
			again = true;
			break;
		default:
			print_usage();
		}
	}
	if (optind != argc)
		print_usage();
	if (!strcmp(mode, "start"))
		return mode_start(mib, steps);
	if (!strcmp(mode, "resume"))
		return mode_resume(steps, again);
	if (!strcmp(mode, "check"))
		return mode_check(mib, steps);
	print_usage();
}
