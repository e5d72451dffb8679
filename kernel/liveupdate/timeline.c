// SPDX-License-Identifier: GPL-2.0
/**
 * DOC: Live Update Orchestrator: the blackout timeline
 *
 * The reboot path stamps its steps into a preserved page, up to the kexec
 * jump; the next kernel reads that page at boot and stamps its own steps,
 * from KHO's early reservation of preserved memory to the last FINISH.
 * LIVEUPDATE_IOCTL_GET_TIMELINE and debugfs show both on one axis.
 *
 * Each kernel's clock starts at its own boot, so the two are joined by a
 * cycle counter that keeps running across the jump: the old kernel records
 * it at the jump, the new one at a known time of its own clock and again
 * when the timeline is first read, which gives the counter's rate.  Only
 * a counter known to run on across a kexec at one rate joins them (the
 * TSC on x86, unless found unstable); without one the two kernels' steps
 * are shown apart.  The stamps are the kernels' local_clock(), which is
 * approximate across CPUs where sched_clock is not stable.
 *
 * This kernel's steps are kept per id: the first start, the last end and
 * a count, so that 100,000 retrieves cost one slot, not 100,000.
 */
#define pr_fmt(fmt) "liveupdate: " fmt

#include <linux/kexec_handover.h>
#include <linux/kho/abi/liveupdate.h>
#include <linux/math64.h>
#include <linux/mm.h>
#include <linux/sched/clock.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/timex.h>
#ifdef CONFIG_X86
#include <asm/tsc.h>
#endif

#include "internal.h"

static_assert(sizeof(struct luo_abi_timeline) == 40);
static_assert(sizeof(struct luo_abi_timeline_step) == 72);
static_assert(sizeof(struct liveupdate_timeline_step) ==
	      sizeof(struct luo_abi_timeline_step));

#define LUO_TL_FIRST_BOOT_STEP	LIVEUPDATE_TL_KHO_RESERVE
#define LUO_TL_LAST_STEP	LIVEUPDATE_TL_FINISH
#define LUO_TL_NR_BOOT_STEPS	(LUO_TL_LAST_STEP - LUO_TL_FIRST_BOOT_STEP + 1)

/* The shutdown and the jump always find room. */
#define LUO_TL_OUT_MAX		(LUO_ABI_TIMELINE_MAX_STEPS(PAGE_SIZE) - 2)
/* A counter slower than this (Hz) is not used to join the clocks. */
#define LUO_TL_MIN_HZ		(NSEC_PER_SEC / 16)
/*
 * Nor is a join measured over less than this, or one that puts a boot
 * step longer than LUO_TL_MAX_BOOT_NS.
 */
#define LUO_TL_MIN_RATE_NS	(NSEC_PER_SEC / 10)
#define LUO_TL_MAX_BOOT_NS	(600 * NSEC_PER_SEC)

/* Outgoing: the page the reboot path fills in, published at boot. */
static struct luo_abi_timeline *luo_tl_out __ro_after_init;
/* When LUO's part of the reboot ended, for the shutdown step. */
static u64 luo_tl_out_done_ns;

/* Incoming: a copy of what the previous kernel wrote, or NULL. */
static struct luo_abi_timeline *luo_tl_prev __ro_after_init;

/* This kernel's steps, by id, and the join; under luo_tl_lock. */
static DEFINE_SPINLOCK(luo_tl_lock);
static struct luo_abi_timeline_step luo_tl_boot[LUO_TL_NR_BOOT_STEPS];
static bool luo_tl_join_tried, luo_tl_joined;
/* Where this kernel's clock started on the previous kernel's axis. */
static u64 luo_tl_zero;
/* The cycle counter at a known time of this kernel's clock. */
static u64 luo_tl_anchor_ns __ro_after_init;
static u64 luo_tl_anchor_cycles __ro_after_init;

/*
 * A cycle counter that runs on across a kexec at one rate: the TSC, unless
 * the kernel found it unstable.  Elsewhere get_cycles() may restart at
 * boot (s390), wrap within seconds (MIPS) or differ between CPUs.
 * Return: the counter, or 0 where there is none.
 */
static u64 luo_tl_cycles(void)
{
#ifdef CONFIG_X86
	if (boot_cpu_has(X86_FEATURE_TSC) && !check_tsc_unstable())
		return get_cycles();
#endif
	return 0;
}

/* ---- the kernel that reboots ---- */

/* Room for one more step; NULL when the page is full. */
static struct luo_abi_timeline_step *luo_tl_out_append(u32 step)
{
	struct luo_abi_timeline *tl = luo_tl_out;
	struct luo_abi_timeline_step *s;

	if (!tl || tl->nr_steps == LUO_ABI_TIMELINE_MAX_STEPS(PAGE_SIZE) ||
	    (tl->nr_steps >= LUO_TL_OUT_MAX && step != LIVEUPDATE_TL_SHUTDOWN &&
	     step != LIVEUPDATE_TL_JUMP))
		return NULL;
	s = &tl->steps[tl->nr_steps++];
	memset(s, 0, sizeof(*s));
	s->step = step;
	return s;
}

/**
 * luo_tl_reboot_begin() - start the timeline of a reboot
 *
 * Called when the reboot reaches LUO, before it waits for anything; a
 * reboot that fails leaves an incomplete timeline that the next one
 * overwrites.
 *
 * Return: the start time, for luo_tl_out_step().
 */
u64 luo_tl_reboot_begin(void)
{
	luo_tl_out_done_ns = 0;
	if (luo_tl_out) {
		luo_tl_out->magic = 0;
		luo_tl_out->nr_steps = 0;
	}
	return local_clock();
}

/**
 * luo_tl_out_step() - stamp a step of the reboot path
 * @step: LIVEUPDATE_TL_* of the kernel that reboots
 * @start_ns: when it started (local_clock())
 * @count: what it covered, or 0
 *
 * The step ends now.  Only the reboot path calls this, with the kexec lock
 * and luo_state_rwsem held: nothing else writes the page.
 *
 * Return: now, the start of the next step.
 */
u64 luo_tl_out_step(u32 step, u64 start_ns, u32 count)
{
	struct luo_abi_timeline_step *s = luo_tl_out_append(step);
	u64 now = local_clock();

	if (s) {
		s->start_ns = start_ns;
		s->end_ns = now;
		s->count = count;
	}
	return now;
}

/**
 * luo_tl_out_freeze() - add one file's freeze to its handler's step
 * @compatible: the handler's compatible string
 * @start_ns: when the freeze started; it ended now
 *
 * Files are frozen session by session, so one handler's freezes may
 * interleave with another's: its step spans them all.
 */
void luo_tl_out_freeze(const char *compatible, u64 start_ns)
{
	struct luo_abi_timeline *tl = luo_tl_out;
	struct luo_abi_timeline_step *s = NULL;
	u64 now = local_clock();
	u32 i;

	if (!tl)
		return;
	/* Few handlers, and the last step is the likely one. */
	for (i = tl->nr_steps; i-- > 0;) {
		if (tl->steps[i].step != LIVEUPDATE_TL_FREEZE)
			break;
		if (!strcmp(tl->steps[i].label, compatible)) {
			s = &tl->steps[i];
			break;
		}
	}
	if (!s) {
		s = luo_tl_out_append(LIVEUPDATE_TL_FREEZE);
		if (!s)
			return;
		strscpy(s->label, compatible);
		s->start_ns = start_ns;
	}
	s->end_ns = now;
	s->count++;
}

/**
 * luo_tl_reboot_done() - LUO's part of a reboot ended well
 */
void luo_tl_reboot_done(void)
{
	luo_tl_out_done_ns = local_clock();
}

/**
 * liveupdate_jump() - stamp the kexec jump
 *
 * Called by kernel_kexec() right before machine_kexec() of a reboot that
 * went through liveupdate_reboot(), with the other CPUs stopped.  Completes
 * the timeline the next kernel reads.
 */
void liveupdate_jump(void)
{
	struct luo_abi_timeline *tl = luo_tl_out;
	struct luo_abi_timeline_step *s;

	if (!liveupdate_enabled() || !tl || !luo_tl_out_done_ns)
		return;
	tl->jump_cycles = luo_tl_cycles();
	tl->jump_ns = local_clock();
	s = luo_tl_out_append(LIVEUPDATE_TL_SHUTDOWN);
	if (s) {
		s->start_ns = luo_tl_out_done_ns;
		s->end_ns = tl->jump_ns;
	}
	s = luo_tl_out_append(LIVEUPDATE_TL_JUMP);
	if (s) {
		s->start_ns = tl->jump_ns;
		s->end_ns = tl->jump_ns;
	}
	tl->version = LUO_ABI_TIMELINE_VERSION;
	tl->header_size = sizeof(*tl);
	tl->step_size = sizeof(struct luo_abi_timeline_step);
	tl->magic = LUO_ABI_TIMELINE_MAGIC;
	luo_timeline_damage(tl);
}

/* ---- the kernel that booted ---- */

static void luo_tl_span_at(u32 step, u64 start_ns, u64 end_ns, u32 count,
			   bool once)
{
	struct luo_abi_timeline_step *s;

	if (WARN_ON_ONCE(step < LUO_TL_FIRST_BOOT_STEP ||
			 step > LUO_TL_LAST_STEP))
		return;
	s = &luo_tl_boot[step - LUO_TL_FIRST_BOOT_STEP];
	guard(spinlock_irqsave)(&luo_tl_lock);
	if (once && s->step)
		return;
	if (!s->step) {
		s->step = step;
		s->start_ns = start_ns;
	}
	s->start_ns = min(s->start_ns, start_ns);
	s->end_ns = max(s->end_ns, end_ns);
	s->count += count;
}

/**
 * luo_tl_span() - add to one of this kernel's steps
 * @step: LIVEUPDATE_TL_* of the kernel that booted
 * @start_ns: when this occurrence started (local_clock())
 * @count: what it covered
 *
 * The occurrence ends now.  The step keeps the first start and the last
 * end of all its occurrences, and their total count.
 */
void luo_tl_span(u32 step, u64 start_ns, u32 count)
{
	luo_tl_span_at(step, start_ns, local_clock(), count, false);
}

/**
 * luo_tl_instant() - stamp one of this kernel's steps, once
 * @step: LIVEUPDATE_TL_READY or LIVEUPDATE_TL_OPEN
 *
 * Only the first call counts: the first open is the agent starting.
 */
void luo_tl_instant(u32 step)
{
	u64 now = local_clock();

	luo_tl_span_at(step, now, now, 0, true);
}

static void __init luo_tl_read_prev(void)
{
	const struct luo_abi_timeline_step *step, *first;
	const struct luo_abi_timeline *tl;
	struct luo_abi_timeline *prev;
	struct folio *folio;
	phys_addr_t phys;
	size_t size;
	u32 i, stride;
	u64 last = 0;

	if (kho_retrieve_subtree(LUO_ABI_TIMELINE_NAME, &phys, &size))
		return;
	if (size != PAGE_SIZE || !PAGE_ALIGNED(phys))
		return;
	folio = kho_restore_folio(phys);
	if (!folio)
		return;
	tl = folio_address(folio);
	if (folio_size(folio) != PAGE_SIZE || !tl->magic)
		goto out;
	/* Any version: later ones only grow and add step ids. */
	stride = tl->step_size;
	if (tl->magic != LUO_ABI_TIMELINE_MAGIC || !tl->version ||
	    tl->header_size < sizeof(*tl) || tl->header_size % 8 ||
	    tl->header_size >= PAGE_SIZE || stride < sizeof(*step) ||
	    stride % 8 || !tl->nr_steps ||
	    tl->nr_steps > (PAGE_SIZE - tl->header_size) / stride) {
		/* Only the timeline is lost; say why it is missing. */
		pr_warn("previous kernel's timeline is damaged: ignored\n");
		goto out;
	}
	prev = kmalloc(struct_size(prev, steps, tl->nr_steps), GFP_KERNEL);
	if (!prev)
		goto out;
	*prev = *tl;
	prev->nr_steps = 0;
	first = (const void *)tl + tl->header_size;
	/* Only what a rebooting kernel stamps, from the reboot on. */
	for (i = 0; i < tl->nr_steps; i++) {
		step = (const void *)first + i * stride;
		if (step->step < LIVEUPDATE_TL_REBOOT ||
		    step->step > LIVEUPDATE_TL_JUMP ||
		    step->end_ns < step->start_ns ||
		    step->start_ns < first->start_ns)
			continue;
		prev->steps[prev->nr_steps] = *step;
		prev->steps[prev->nr_steps].label[sizeof(step->label) - 1] = 0;
		last = max(last, step->end_ns);
		prev->nr_steps++;
	}
	if (!prev->nr_steps || prev->steps[0].step != LIVEUPDATE_TL_REBOOT) {
		kfree(prev);
		goto out;
	}
	/* A jump before the end of a step cannot join the clocks. */
	if (prev->jump_ns < last)
		prev->jump_cycles = 0;
	luo_tl_prev = prev;
out:
	folio_put(folio);
}

/**
 * luo_tl_init() - start this kernel's clock anchor, read the previous
 * kernel's timeline
 *
 * Called when the incoming state is read, early in the boot.
 */
void __init luo_tl_init(void)
{
	unsigned long flags;
	u64 start, end;

	/* Both at once: see luo_tl_join(). */
	local_irq_save(flags);
	luo_tl_anchor_cycles = luo_tl_cycles();
	luo_tl_anchor_ns = local_clock();
	local_irq_restore(flags);
	if (kho_reserve_time(&start, &end))
		luo_tl_span_at(LIVEUPDATE_TL_KHO_RESERVE, start, end, 0, false);
	luo_tl_read_prev();
}

/**
 * luo_tl_publish() - publish the page the next kernel gets our reboot in
 *
 * A kernel without a timeline page still live-updates: the next kernel
 * only lacks this one's reboot steps.
 */
void __init luo_tl_publish(void)
{
	struct luo_abi_timeline *tl;

	tl = kho_alloc_preserve(PAGE_SIZE);
	if (IS_ERR(tl)) {
		pr_warn("no timeline for the next kernel: %pe\n", tl);
		return;
	}
	if (kho_add_subtree(LUO_ABI_TIMELINE_NAME, tl, PAGE_SIZE)) {
		pr_warn("no timeline for the next kernel\n");
		kho_unpreserve_free(tl);
		return;
	}
	luo_tl_out = tl;
}

/* ---- reading ---- */

/*
 * Where this kernel's clock started on the axis of the previous kernel's
 * reboot (@base is its start), from the counter's rate between the anchor
 * and now.  Called with luo_tl_lock held, so with IRQs off between the two
 * reads; done once, when enough time has passed to measure the rate well.
 */
static void luo_tl_join(const struct luo_abi_timeline *prev, u64 base)
{
	u64 cycles = luo_tl_cycles(), now = local_clock();
	u64 dcycles, dns, gap_cycles, gap;

	lockdep_assert_held(&luo_tl_lock);
	if (!prev->jump_cycles || !luo_tl_anchor_cycles ||
	    luo_tl_anchor_cycles <= prev->jump_cycles ||
	    cycles <= luo_tl_anchor_cycles || now <= luo_tl_anchor_ns)
		goto fail;
	dns = now - luo_tl_anchor_ns;
	if (dns < LUO_TL_MIN_RATE_NS)
		return;		/* too early to tell: try again later */
	dcycles = cycles - luo_tl_anchor_cycles;
	gap_cycles = luo_tl_anchor_cycles - prev->jump_cycles;
	/* With dns / dcycles < 16 the quotient below fits in 64 bits. */
	if (dcycles < div_u64(dns, NSEC_PER_SEC / LUO_TL_MIN_HZ) ||
	    gap_cycles >= 1ULL << 59)
		goto fail;
	gap = mul_u64_u64_div_u64(gap_cycles, dns, dcycles);
	/* The clock started after the jump, and not much later. */
	if (gap < luo_tl_anchor_ns ||
	    gap - luo_tl_anchor_ns > LUO_TL_MAX_BOOT_NS)
		goto fail;
	luo_tl_zero = prev->jump_ns - base + gap - luo_tl_anchor_ns;
	luo_tl_joined = true;
fail:
	luo_tl_join_tried = true;
}

static void luo_tl_put(struct liveupdate_timeline_step *out, u32 room, u32 *n,
		       const struct luo_abi_timeline_step *s, s64 offset)
{
	if (*n < room) {
		struct liveupdate_timeline_step *o = &out[*n];

		o->start_ns = s->start_ns + offset;
		o->end_ns = s->end_ns + offset;
		o->step = s->step;
		o->count = s->count;
		/* Padded: the whole struct goes to userspace. */
		strscpy_pad(o->label, s->label);
	}
	(*n)++;
}

/**
 * luo_tl_get() - the timeline of the last update, on one axis
 * @out: room for @room steps
 * @room: entries @out has
 * @flags: output: LIVEUPDATE_TIMELINE_*
 *
 * See struct liveupdate_ioctl_get_timeline for the axis.
 *
 * Return: the number of steps, of which the first @room are in @out.
 */
u32 luo_tl_get(struct liveupdate_timeline_step *out, u32 room, u32 *flags)
{
	const struct luo_abi_timeline *prev = luo_tl_prev;
	struct luo_abi_timeline_step boot[LUO_TL_NR_BOOT_STEPS];
	u8 order[LUO_TL_NR_BOOT_STEPS];
	u64 base = 0, zero = 0;
	bool joined = false;
	u32 i, j, n = 0, nr = 0;

	*flags = 0;
	if (prev)
		base = prev->steps[0].start_ns;

	scoped_guard(spinlock_irqsave, &luo_tl_lock) {
		if (prev && !luo_tl_join_tried)
			luo_tl_join(prev, base);
		joined = luo_tl_joined;
		zero = joined ? luo_tl_zero : 0;
		memcpy(boot, luo_tl_boot, sizeof(boot));
	}

	if (prev) {
		*flags |= LIVEUPDATE_TIMELINE_PREVIOUS;
		for (i = 0; i < prev->nr_steps; i++)
			luo_tl_put(out, room, &n, &prev->steps[i], -base);
	}
	if (joined) {
		struct luo_abi_timeline_step s = {
			.step = LIVEUPDATE_TL_BOOT,
			.start_ns = prev->jump_ns,
			.end_ns = zero + base,
		};

		*flags |= LIVEUPDATE_TIMELINE_ONE_CLOCK;
		luo_tl_put(out, room, &n, &s, -base);
	}

	/* This kernel's steps, by start: few, so an insertion sort. */
	for (i = 0; i < LUO_TL_NR_BOOT_STEPS; i++) {
		if (!boot[i].step)
			continue;
		for (j = nr; j > 0 && boot[order[j - 1]].start_ns >
				      boot[i].start_ns; j--)
			order[j] = order[j - 1];
		order[j] = i;
		nr++;
	}
	for (i = 0; i < nr; i++)
		luo_tl_put(out, room, &n, &boot[order[i]], zero);
	return n;
}

static const char *const luo_tl_names[] = {
	[LIVEUPDATE_TL_REBOOT]		= "reboot",
	[LIVEUPDATE_TL_PREPARE]		= "prepare",
	[LIVEUPDATE_TL_FREEZE]		= "freeze",
	[LIVEUPDATE_TL_FREEZE_FLB]	= "freeze-flb",
	[LIVEUPDATE_TL_WRITE]		= "write",
	[LIVEUPDATE_TL_SHUTDOWN]	= "shutdown",
	[LIVEUPDATE_TL_JUMP]		= "jump",
	[LIVEUPDATE_TL_BOOT]		= "boot",
	[LIVEUPDATE_TL_KHO_RESERVE]	= "kho-reserve",
	[LIVEUPDATE_TL_RESTORE]		= "restore",
	[LIVEUPDATE_TL_READY]		= "ready",
	[LIVEUPDATE_TL_OPEN]		= "open",
	[LIVEUPDATE_TL_PRELOAD]		= "preload",
	[LIVEUPDATE_TL_RETRIEVE_SESSION] = "retrieve-session",
	[LIVEUPDATE_TL_RETRIEVE_FD]	= "retrieve-fd",
	[LIVEUPDATE_TL_FINISH]		= "finish",
};

static_assert(ARRAY_SIZE(luo_tl_names) == LUO_TL_LAST_STEP + 1);

/**
 * luo_tl_show() - the timeline for debugfs, one step a line
 * @m: the seq_file
 *
 * Start and end in microseconds on the axis of luo_tl_get(), the duration,
 * the step, its count and its label.
 *
 * Return: 0 or -ENOMEM.
 */
int luo_tl_show(struct seq_file *m)
{
	struct liveupdate_timeline_step *steps;
	u32 flags, n, i;

	n = luo_tl_get(NULL, 0, &flags);
	steps = kzalloc_objs(*steps, n);
	if (!steps)
		return -ENOMEM;
	n = min(n, luo_tl_get(steps, n, &flags));
	seq_printf(m, "# previous kernel: %s, one clock: %s\n",
		   str_yes_no(flags & LIVEUPDATE_TIMELINE_PREVIOUS),
		   str_yes_no(flags & LIVEUPDATE_TIMELINE_ONE_CLOCK));
	seq_puts(m, "# start_us end_us duration_us step count label\n");
	for (i = 0; i < n; i++) {
		const struct liveupdate_timeline_step *s = &steps[i];

		seq_printf(m, "%lld %lld %lld %s %u %s\n",
			   div_s64(s->start_ns, NSEC_PER_USEC),
			   div_s64(s->end_ns, NSEC_PER_USEC),
			   div_s64(s->end_ns - s->start_ns, NSEC_PER_USEC),
			   luo_tl_names[s->step], s->count,
			   s->label[0] ? (char *)s->label : "-");
	}
	kfree(steps);
	return 0;
}
