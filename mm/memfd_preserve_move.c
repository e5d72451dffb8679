// SPDX-License-Identifier: GPL-2.0
/*
 * memfd preservation: the move out of KHO scratch.  Folios of a preserved
 * memfd that are in CMA (KHO's scratch areas, which the next kernel boots
 * from) or otherwise movable are noted by PRESERVE_FD's walk and by the
 * hook; a work item migrates them out after PRESERVE_FD returned, then
 * holds and describes them, and freeze waits for it.
 */
#define pr_fmt(fmt) "memfd_preserve: " fmt

#include <linux/cleanup.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/sched.h>
#include <linux/slab.h>

#include "memfd_preserve_internal.h"

/*
 * Folios moved out of CMA per memfd_pin_folios() call: each call has a
 * fixed cost (pin, isolate, a migrate_pages() round, pin again), so fewer,
 * larger calls.
 */
#define MFP_MOVE_BATCH		512
/*
 * A batch is tried again, this many times at most, MFP_MOVE_RETRY_MS
 * apart, while some of its pages fail to migrate: the memfd is in use
 * meanwhile, and a page under a read or write is busy for a moment.
 */
#define MFP_MOVE_TRIES		100
#define MFP_MOVE_RETRY_MS	10

/**
 * mfp_note_move() - note a folio to be moved out of CMA
 * @p: the preserved memfd, with @p->lock held
 * @index: the folio's page index
 * @nr: its pages
 *
 * Note the folio at @index, of @nr pages, to be moved out of CMA and
 * described by mfp_move_fn(); adjacent folios share an entry.
 *
 * Return: 0, or -ENOMEM.
 */
int mfp_note_move(struct memfd_preserved *p, pgoff_t index,
		  unsigned long nr)
{
	struct mfp_span *last = p->nr_moves ? &p->moves[p->nr_moves - 1] :
				NULL;

	/* Not a span the work has left behind: it would not look back. */
	if (last && p->move_span < p->nr_moves && last->last + 1 == index) {
		last->last += nr;
	} else {
		if (p->nr_moves == p->max_moves) {
			unsigned int max = max(16U, 2 * p->max_moves);
			struct mfp_span *moves;

			moves = krealloc_array(p->moves, max, sizeof(*moves),
					       GFP_KERNEL_ACCOUNT);
			if (!moves)
				return -ENOMEM;
			p->moves = moves;
			p->max_moves = max;
		}
		p->moves[p->nr_moves].first = index;
		p->moves[p->nr_moves].last = index + nr - 1;
		p->nr_moves++;
	}
	return 0;
}

/**
 * mfp_left_to_move() - pages the work has still to move out of CMA
 * @p: the preserved memfd, with @p->lock held
 *
 * Return: the pages of the noted spans that mfp_move_fn() has not passed
 * yet, holes and pages past i_size included, and those it moved but has
 * yet to describe (for statistics).
 */
unsigned long mfp_left_to_move(struct memfd_preserved *p)
{
	unsigned long nr = p->move_run.nr;
	unsigned int i;
	pgoff_t first;

	for (i = p->move_span; i < p->nr_moves; i++) {
		first = p->moves[i].first;
		if (i == p->move_span)
			first = max(first, p->move_start);
		if (first <= p->moves[i].last)
			nr += p->moves[i].last - first + 1;
	}
	return nr;
}

/*
 * memfd_pin_folios() takes its folios without their lock: hold each as the
 * walk does, under its lock and while it is in the page cache.  An add
 * still on its way to memfd_preserve_folio_added() holds the lock until
 * the hook ran, and a swap-out that took a folio out of the page cache
 * meanwhile is seen.  Returns how many of @folios, from the first, are
 * held; the caller starts again at the next one.
 */
static long mfp_hold_moved(struct memfd_preserved *p, struct folio **folios,
			   long nr)
{
	struct address_space *mapping = p->file->f_mapping;
	struct folio *folio;
	bool in_cache;
	long i;

	for (i = 0; i < nr; i++) {
		folio = folios[i];
		folio_lock(folio);
		in_cache = folio->mapping == mapping;
		if (in_cache)
			folio_get(folio);
		folio_unlock(folio);
		if (!in_cache)
			break;
	}
	return i;
}

/*
 * Describe a folio moved out of CMA and held by mfp_hold_moved(), taking
 * over its reference, unless it was taken already.  @p->lock held.
 */
static int mfp_take_moved(struct memfd_preserved *p, struct folio *folio)
{
	int err;

	if (xa_load(&p->added, folio->index) == folio) {
		folio_put(folio);
		return 0;
	}
	/* Moved by its head alone: a gigantic page may still reach into CMA. */
	if (mfp_poisoned(folio) || !mfp_folio_stays(folio)) {
		err = mfp_poisoned(folio) ? -EHWPOISON : -EXDEV;
		folio_put(folio);
		return err;
	}
	err = mfp_added_store(p, folio, false);
	if (err) {
		folio_put(folio);
		return err;
	}
	err = mfp_describe(p, &p->move_run, folio->index, folio_pfn(folio),
			   folio_order(folio));
	if (err) {
		xa_erase(&p->added, folio->index);
		return err;
	}
	return 0;
}

/*
 * The rest of the span mfp_move_fn() is at, or of the next one; false if
 * none is left.  The hook may have made the current span longer.
 */
static bool mfp_next_span(struct memfd_preserved *p, struct mfp_span *span)
{
	guard(mutex)(&p->lock);
	for (; p->move_span < p->nr_moves; p->move_span++, p->move_start = 0) {
		*span = p->moves[p->move_span];
		span->first = max(span->first, p->move_start);
		if (span->first <= span->last)
			return true;
	}
	return false;
}

/*
 * Move the folios of @span out of CMA, many per memfd_pin_folios() call,
 * and describe them.  The folios there are not held yet: whatever is at
 * each index now (migrated, or swapped out and in again) is what gets
 * moved; a hole (a clean folio dropped) is filled by memfd_pin_folios(),
 * whose new folio reaches memfd_preserve_folio_added().  A batch
 * whose pages fail to migrate stops the work where it is, to be tried
 * again by the next freeze; a failure to describe is final.
 */
static int mfp_move_span(struct memfd_preserved *p, struct mfp_span *span,
			 struct folio **folios)
{
	loff_t isize = i_size_read(file_inode(p->file));
	loff_t end = min_t(loff_t, isize, (loff_t)(span->last + 1) << PAGE_SHIFT);
	pgoff_t start = span->first, off;
	unsigned int tries, stalls = 0;
	long nr, held, i;
	int err = 0;

	while (((loff_t)start << PAGE_SHIFT) < end) {
		for (tries = 1; ; tries++) {
			if (READ_ONCE(p->cancel))
				return -ECANCELED;
			nr = memfd_pin_folios(p->file,
					      (loff_t)start << PAGE_SHIFT,
					      end - 1, folios, MFP_MOVE_BATCH,
					      &off);
			if (nr > 0)
				break;
			if (!nr || tries == MFP_MOVE_TRIES ||
			    (nr != -ENOMEM && nr != -EAGAIN && nr != -EBUSY))
				return nr ?: -EAGAIN;
			msleep(MFP_MOVE_RETRY_MS);
		}
		held = mfp_hold_moved(p, folios, nr);
		scoped_guard(mutex, &p->lock) {
			for (i = 0; i < held; i++) {
				if (err)
					folio_put(folios[i]);
				else
					err = mfp_take_moved(p, folios[i]);
			}
			if (err)
				p->move_fatal = true;
			else if (held)
				p->move_start = folio_next_index(folios[held - 1]);
			start = max(start, p->move_start);
		}
		unpin_folios(folios, nr);
		if (err)
			return err;
		/* A folio left the page cache under us: pin it again. */
		if (held < nr && ++stalls == MFP_MOVE_TRIES)
			return -EAGAIN;
		cond_resched();
	}
	/* Beyond i_size, if the span reaches there: nothing to move. */
	guard(mutex)(&p->lock);
	p->move_start = max(p->move_start, span->last + 1);
	return 0;
}

/**
 * mfp_move_start() - start moving what was noted
 * @p: the preserved memfd, with @p->lock held
 *
 * Start mfp_move_fn() for what was noted, unless it runs or stopped for
 * good (every reboot then fails until the memfd is unpreserved).
 */
void mfp_move_start(struct memfd_preserved *p)
{
	/*
	 * After a failure to describe, folios it had gathered are in @added
	 * but not described: a new run would take them for done.
	 */
	if (p->moving || p->cancel || p->move_fatal ||
	    p->move_span == p->nr_moves)
		return;
	WRITE_ONCE(p->moving, true);
	queue_work(system_dfl_long_wq, &p->move_work);
}

/**
 * mfp_move_fn() - the work item that moves folios out of CMA
 * @work: &memfd_preserved.move_work
 *
 * Move the folios PRESERVE_FD found in CMA (KHO's scratch areas, which the
 * next kernel boots from) and those added there since, and describe them,
 * after PRESERVE_FD returned: migrating is most of what preserving a memfd
 * would cost otherwise.  The memfd can be used meanwhile; freeze waits for
 * this.
 */
void mfp_move_fn(struct work_struct *work)
{
	struct memfd_preserved *p = container_of(work, struct memfd_preserved,
						 move_work);
	struct folio **folios __free(kfree) =
		kmalloc_array(MFP_MOVE_BATCH, sizeof(*folios), GFP_KERNEL);
	struct mfp_span span;
	int err = folios ? 0 : -ENOMEM;

	while (!err && mfp_next_span(p, &span))
		err = mfp_move_span(p, &span, folios);

	guard(mutex)(&p->lock);
	if (!err) {
		err = mfp_flush_run(p, &p->move_run);
		p->move_fatal = !!err;
	}
	p->open = NULL;
	p->move_err = err;
	WRITE_ONCE(p->moving, false);
	/* The hook noted more while we were on our way out. */
	if (!err)
		mfp_move_start(p);
	if (err && err != -ECANCELED)
		pr_warn_ratelimited("inode %llu: cannot move %lu pages out of CMA: %d\n",
				    file_inode(p->file)->i_ino,
				    mfp_left_to_move(p),
				    err);
}

/*
 * The move out of CMA failed: fail this reboot, and if a page merely
 * failed to migrate (pinned by someone else for a while), start over from
 * where the move stopped, for the next try.  @p->lock held.
 */
static int mfp_move_failed(struct memfd_preserved *p)
{
	int err = p->move_err;

	if (!p->move_fatal) {
		p->move_err = 0;
		mfp_move_start(p);
	}
	return err;
}

/**
 * mfp_freeze_moved() - wait for the move out of CMA, then freeze
 * @p: the preserved memfd
 *
 * Wait for the move out of CMA, then freeze: from here on no folio is
 * added, nor noted to move.  Only if the reboot follows PRESERVE_FD
 * closely is there a wait.
 *
 * Return: 0, frozen; or the error the move stopped with, not frozen.
 */
int mfp_freeze_moved(struct memfd_preserved *p)
{
	for (;;) {
		flush_work(&p->move_work);
		guard(mutex)(&p->lock);
		if (p->moving)
			continue;
		if (p->move_err)
			return mfp_move_failed(p);
		p->frozen = true;
		return 0;
	}
}
