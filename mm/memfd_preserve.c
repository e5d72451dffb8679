// SPDX-License-Identifier: GPL-2.0
/**
 * DOC: memfd preservation
 *
 * A memfd preserved into a LUO session keeps its contents, holes, large
 * folios, size, position, seals, name, mode, owner and open flags (access
 * mode, O_APPEND, O_NONBLOCK) across the kexec.
 * The format is described in include/linux/kho/abi/memfd_preserve.h.
 *
 * Outgoing: preserved means held.  From PRESERVE_FD on, every folio
 * described to KHO holds a folio reference, taken while the folio was
 * locked and in the page cache, until unpreserve (or the kexec).  Reclaim,
 * migration, compaction, alloc_contig_range(), khugepaged and the shmem
 * huge shrinker all check for such references under the folio lock: they
 * fail on these folios as on any referenced folio, with no hook of ours.
 * The size is frozen (SHMEM_F_MAPPING_FROZEN), so no folio leaves the page
 * cache by truncation either.
 *
 * Folios enter the page cache of a preserved memfd through one place,
 * shmem_add_to_page_cache(), which hands each new one to
 * memfd_preserve_folio_added(): held and preserved there, and described
 * at freeze (fault, write, userfaultfd).  Swap-in needs no hook: nothing
 * held goes to swap, and PRESERVE_FD's walk swaps in what it finds.
 * khugepaged fails a collapse that would fill holes of a preserved memfd.
 *
 * No folio may stay in CMA: KHO's scratch areas are CMA in this kernel
 * and the next kernel boots from them.  Folios PRESERVE_FD finds there (or
 * that are added there later) are noted, and a work item migrates them out
 * after PRESERVE_FD returned, then holds and describes them; freeze waits
 * for it.  shmem allocates unmovable for a preserved memfd
 * (memfd_preserve_gfp()).  Holes stay holes.
 *
 * While preserved, the mapping is unevictable (as SHM_LOCK makes it), so
 * that reclaim does not unmap held folios over and over.  Nothing here is
 * charged to RLIMIT_MEMLOCK: the folios stay charged to their memory
 * cgroup, and only the holder of a session, handed out by the agent that
 * owns /dev/liveupdate (CAP_SYS_ADMIN), can preserve: that is the
 * capability, as CAP_IPC_LOCK is for SHM_LOCK.
 *
 * Metadata: each memfd's header and its first, small chunks of entries come
 * from a pool of preserved pages shared by every preserved memfd, an FLB
 * bound to the handler; larger chunks are preserved blocks of their own.
 *
 * Incoming: the preload after boot (or else the first retrieve, or the
 * finish) restores every folio from KHO into an array kept in
 * &liveupdate_file.private, and frees the chunks of
 * its own; the pool goes when the last memfd is finished.  A retrieve
 * builds a new memfd from that array, its folios charged to the memory
 * cgroup of the retrieving task; if it fails, the new memfd is torn down
 * and the folios stay in the array, so the retrieve can be retried.
 * The page cache of a large memfd is filled after RETRIEVE_FD returns, by
 * a work item; until it is done, shmem makes everything that would look
 * at the page cache wait (memfd_preserve_wait_restored()).  Restored
 * folios enter the page cache as in shmem_add_to_page_cache(): locked,
 * with mapping and index set before they are visible, so fault-around
 * skips them until they are in.  A fill that fails after RETRIEVE_FD
 * keeps the folios it added (they may be mapped already), and the memfd
 * fails every access with EIO.
 *
 * hugetlb memfds have a handler of their own (memfd_preserve_hugetlb.c)
 * that shares all of the outgoing side: hugetlb_add_to_page_cache() is
 * their one place of adding, hugetlbfs_mapping_frozen() freezes their
 * size, and a huge page must not reach into CMA even in part.
 *
 * Files: memfd_preserve.c has the handlers' ops, the page cache walk, the
 * metadata writer and the hook; memfd_preserve_pool.c the metadata pool;
 * memfd_preserve_move.c the move out of CMA; memfd_preserve_restore.c the
 * incoming side; memfd_preserve_hugetlb.c what differs for hugetlb
 * memfds.  memfd_preserve_internal.h is what they share.
 */
#define pr_fmt(fmt) "memfd_preserve: " fmt

#include <linux/cleanup.h>
#include <linux/debugfs.h>
#include <linux/fault-inject.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/io.h>
#include <linux/hugetlb.h>
#include <linux/kexec_handover.h>
#include <linux/memfd.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/pagemap.h>
#include <linux/rcupdate.h>
#include <linux/seq_file.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>

#include "memfd_preserve_internal.h"

/* The handover format is ABI: its records keep their sizes. */
static_assert(sizeof(struct memfd_preserve_pool_page) == 16);
static_assert(sizeof(struct memfd_preserve_chunk) == 16);
static_assert(sizeof(struct memfd_preserve_file) == 80);
static_assert(sizeof(struct memfd_preserve_entry) == 16);
static_assert(sizeof(struct memfd_preserve_run) == 24);
static_assert(sizeof(struct memfd_preserve_pages) == 16);
static_assert(sizeof(struct memfd_preserve_hugetlb_pool) == 520);

/* Outgoing preserved memfds, for the debugfs statistics. */
static LIST_HEAD(mfp_list);
static DEFINE_MUTEX(mfp_list_lock);

/* ---- outgoing: the metadata writer ---- */

static bool mfp_room(struct memfd_preserved *p, size_t len)
{
	struct memfd_preserve_chunk *c = p->tail;

	return c && sizeof(*c) + c->used + len <= c->size;
}

static u32 mfp_next_chunk_size(u32 prev)
{
	if (!prev)
		return MFP_CHUNK_MIN;
	if (prev < PAGE_SIZE)
		return min_t(u32, prev * 4, PAGE_SIZE);
	return min_t(u32, prev * 2, PAGE_SIZE << MFP_CHUNK_MAX_ORDER);
}

static void mfp_chunk_free(struct memfd_preserved *p,
			   struct memfd_preserve_chunk *c)
{
	if (c->size < PAGE_SIZE)
		mfp_pool_free(p->pool, c);
	else
		kho_unpreserve_free(c);
}

/* Reserve @len bytes of entries, in a new chunk if needed. */
static void *mfp_reserve(struct memfd_preserved *p, size_t len)
{
	struct memfd_preserve_chunk *c = p->tail, *nc;
	u32 size;
	void *mem;

	if (!mfp_room(p, len)) {
		size = mfp_next_chunk_size(c ? c->size : 0);
		nc = size < PAGE_SIZE ? mfp_pool_alloc(p->pool, size) :
					kho_alloc_preserve(size);
		if (IS_ERR(nc))
			return nc;
		nc->size = size;
		if (c)
			c->next = virt_to_phys(nc);
		else
			p->hdr->chunks = virt_to_phys(nc);
		p->tail = nc;
		p->hdr->nr_chunks++;
		p->open = NULL;
		c = nc;
	}
	mem = (void *)(c + 1) + c->used;
	c->used += len;
	return mem;
}

static int mfp_emit_run(struct memfd_preserved *p, pgoff_t index,
			unsigned long pfn, unsigned long nr, unsigned int order)
{
	struct memfd_preserve_run *run;

	run = mfp_reserve(p, sizeof(*run));
	if (IS_ERR(run))
		return PTR_ERR(run);
	p->open = NULL;
	run->hdr.type = MEMFD_PRESERVE_ENTRY_RUN;
	run->hdr.order = order;
	run->hdr.nr = nr;
	run->hdr.index = index;
	run->pfn = pfn;
	p->hdr->nr_folios += order ? 1 : nr;
	p->hdr->nr_pages += nr;
	return 0;
}

static int mfp_emit_page(struct memfd_preserved *p, pgoff_t index,
			 unsigned long pfn)
{
	struct memfd_preserve_pages *e = p->open;
	u64 *word;

	if (pfn > MEMFD_PRESERVE_PFN_MASK)
		return -EOPNOTSUPP;
	if (e && index >= p->open_next &&
	    index - p->open_next <= MEMFD_PRESERVE_SKIP_MAX &&
	    mfp_room(p, sizeof(*word))) {
		word = mfp_reserve(p, sizeof(*word));
		*word = pfn | (u64)(index - p->open_next) <<
			MEMFD_PRESERVE_PFN_BITS;
		e->hdr.nr++;
	} else {
		e = mfp_reserve(p, struct_size(e, words, 1));
		if (IS_ERR(e))
			return PTR_ERR(e);
		e->hdr.type = MEMFD_PRESERVE_ENTRY_PAGES;
		e->hdr.nr = 1;
		e->hdr.index = index;
		e->words[0] = pfn;
		p->open = e;
	}
	p->open_next = index + 1;
	p->hdr->nr_folios++;
	p->hdr->nr_pages++;
	return 0;
}

/*
 * Every folio described in the metadata holds one reference, taken while
 * the folio was locked and in the page cache, so that whatever would
 * move, free or split it (reclaim, migration, compaction, collapse, the
 * huge shrinker) finds the reference and leaves it alone.  The
 * description owns that reference: the functions below that describe a
 * folio take it over, and drop it if they fail.
 */

/* Drop the references of the @nr order-0 folios from @pfn on. */
static void mfp_put_pfns(unsigned long pfn, unsigned long nr)
{
	while (nr--)
		folio_put(pfn_folio(pfn++));
}

/* One order-0 page, preserved on its own and described by a word. */
static int mfp_add_page(struct memfd_preserved *p, pgoff_t index,
			unsigned long pfn)
{
	int err = kho_preserve_pages(pfn_to_page(pfn), 1);

	if (!err) {
		err = mfp_emit_page(p, index, pfn);
		if (err)
			kho_unpreserve_pages(pfn_to_page(pfn), 1);
	}
	if (err)
		folio_put(pfn_folio(pfn));
	return err;
}

/* A large folio: one naturally aligned block, one KHO call. */
static int mfp_add_large(struct memfd_preserved *p, pgoff_t index,
			 unsigned long pfn, unsigned int order)
{
	int err = kho_preserve_pages(pfn_to_page(pfn), 1UL << order);

	if (!err) {
		err = mfp_emit_run(p, index, pfn, 1UL << order, order);
		if (err)
			kho_unpreserve_pages(pfn_to_page(pfn), 1UL << order);
	}
	if (err)
		folio_put(pfn_folio(pfn));
	return err;
}

/**
 * mfp_flush_run() - describe the order-0 folios gathered in a run
 * @p: the preserved memfd, with @p->lock held
 * @run: the run; empty afterwards
 *
 * Describe the run: one KHO call and one entry, or words if it is short.
 * The description takes over the folios' references.
 *
 * Return: 0, or an error, the references of the folios not described
 * dropped.
 */
int mfp_flush_run(struct memfd_preserved *p, struct mfp_run *run)
{
	struct page *page = pfn_to_page(run->pfn);
	unsigned long i, nr = run->nr;
	int err = 0;

	run->nr = 0;
	if (nr < MFP_RUN_MIN) {
		for (i = 0; !err && i < nr; i++)
			err = mfp_add_page(p, run->index + i, run->pfn + i);
		/* mfp_add_page() dropped the reference of the one that failed. */
		if (err)
			mfp_put_pfns(run->pfn + i, nr - i);
		return err;
	}
	err = kho_preserve_pages(page, nr);
	if (!err) {
		err = mfp_emit_run(p, run->index, run->pfn, nr, 0);
		if (err)
			kho_unpreserve_pages(page, nr);
	}
	if (err)
		mfp_put_pfns(run->pfn, nr);
	return err;
}

/* Forget the run after an error elsewhere, dropping its references. */
static void mfp_drop_run(struct mfp_run *run)
{
	mfp_put_pfns(run->pfn, run->nr);
	run->nr = 0;
}

/**
 * mfp_describe() - describe a held folio in the metadata
 * @p: the preserved memfd, with @p->lock held
 * @run: where order-0 folios gather before they are described
 * @index: the folio's page index
 * @pfn: its first PFN
 * @order: its order
 *
 * Describe the folio of order @order at @index and @pfn, taking over the
 * caller's reference; order-0 folios gather in @run first.
 *
 * Return: 0, or an error, the caller's reference dropped.
 */
int mfp_describe(struct memfd_preserved *p, struct mfp_run *run,
		 pgoff_t index, unsigned long pfn, unsigned int order)
{
	int err;

	/*
	 * KHO restores a run as preserved only if it stays on one node; and
	 * a bounded run keeps every loop over it short.
	 */
	if (!order && run->nr && index == run->index + run->nr &&
	    pfn == run->pfn + run->nr && run->nr < MFP_RUN_MAX &&
	    pfn_to_nid(pfn) == pfn_to_nid(run->pfn)) {
		run->nr++;
		return 0;
	}
	err = mfp_flush_run(p, run);
	if (err) {
		folio_put(pfn_folio(pfn));
		return err;
	}
	if (order)
		return mfp_add_large(p, index, pfn, order);
	run->index = index;
	run->pfn = pfn;
	run->nr = 1;
	return 0;
}

/* Undo what a chunk describes: the KHO preservations and the references. */
static void mfp_release_entries(struct memfd_preserve_chunk *c)
{
	struct memfd_preserve_entry *e;
	struct memfd_preserve_pages *pages;
	struct memfd_preserve_run *run;
	unsigned long pfn;
	u32 off, i;

	for (off = 0; off < c->used; ) {
		e = (void *)(c + 1) + off;
		if (e->type == MEMFD_PRESERVE_ENTRY_RUN) {
			run = (void *)e;
			kho_unpreserve_pages(pfn_to_page(run->pfn), e->nr);
			if (e->order)
				folio_put(pfn_folio(run->pfn));
			else
				mfp_put_pfns(run->pfn, e->nr);
			off += sizeof(*run);
		} else {
			pages = (void *)e;
			for (i = 0; i < e->nr; i++) {
				pfn = pages->words[i] & MEMFD_PRESERVE_PFN_MASK;
				kho_unpreserve_pages(pfn_to_page(pfn), 1);
				folio_put(pfn_folio(pfn));
			}
			off += struct_size(pages, words, e->nr);
		}
	}
}

/* Release everything: KHO preservations, references, metadata.  @p is dead. */
static void mfp_release(struct memfd_preserved *p)
{
	struct memfd_preserve_chunk *c, *next;
	struct folio *folio;
	unsigned long index;

	for (c = p->hdr->chunks ? phys_to_virt(p->hdr->chunks) : NULL; c;
	     c = next) {
		mfp_release_entries(c);
		next = c->next ? phys_to_virt(c->next) : NULL;
		mfp_chunk_free(p, c);
		cond_resched();
	}
	mfp_pool_free(p->pool, p->hdr);
	p->hdr = NULL;
	p->tail = NULL;

	/* Pending folios were preserved on their own and are not described. */
	xa_for_each_marked(&p->added, index, folio, MFP_PENDING) {
		kho_unpreserve_folio(folio);
		folio_put(folio);
	}
	xa_destroy(&p->added);
	mfp_drop_run(&p->move_run);
	kfree(p->moves);
	p->moves = NULL;
	p->nr_moves = 0;
}

static void mfp_put(struct memfd_preserved *p)
{
	if (refcount_dec_and_test(&p->ref))
		kfree_rcu(p, rcu);
}

/* Folios taken per batch of the walk. */
#define MFP_WALK_BATCH		64

/**
 * struct mfp_walk - one batch of the page cache walk
 * @start: the next index to look at
 * @end: the last index to look at
 * @nr: folios in @folios, each with a reference
 * @nr_slow: indices in @slow, to take the careful way
 * @folios: folios taken the fast way
 * @slow: indices of entries that need more care
 */
struct mfp_walk {
	pgoff_t start;
	pgoff_t end;
	unsigned int nr;
	unsigned int nr_slow;
	struct folio *folios[MFP_WALK_BATCH];
	pgoff_t slow[MFP_WALK_BATCH];
};

/*
 * debugfs fail_memfd_placement: take pageblock "block" (1 is the second
 * one; 0, the default, is off) of a huge page for one in a KHO scratch
 * area, when the attribute fires.  The page allocator never makes a huge page that reaches into an
 * area (see Documentation/mm/memfd_preservation.rst), so the scan and the
 * refusal are tested this way.
 */
static DECLARE_FAULT_ATTR(fail_memfd_placement);
static u32 mfp_placement_block;

static bool mfp_placement_fails(unsigned long block)
{
	return IS_ENABLED(CONFIG_FAULT_INJECTION_DEBUG_FS) &&
	       block == READ_ONCE(mfp_placement_block) &&
	       should_fail(&fail_memfd_placement, 1);
}

/**
 * mfp_folio_stays() - whether a folio may stay where it is
 * @folio: a folio of a preserved memfd
 *
 * Return: true if no page of @folio is in CMA (the KHO scratch areas the
 * next kernel boots from) and @folio is not otherwise movable.  A folio
 * larger than a pageblock (a gigantic hugetlb page) may start outside CMA
 * and reach into it: every pageblock is checked.  Test kernels can make
 * one pageblock count as CMA (fail_memfd_placement).
 */
bool mfp_folio_stays(struct folio *folio)
{
	unsigned long pfn = folio_pfn(folio), end = pfn + folio_nr_pages(folio);
	unsigned long block = 0;

	if (!folio_is_longterm_pinnable(folio))
		return false;
	for (pfn += pageblock_nr_pages; pfn < end; pfn += pageblock_nr_pages)
		if (is_migrate_cma_page(pfn_to_page(pfn)) ||
		    mfp_placement_fails(++block))
			return false;
	return true;
}

/**
 * mfp_poisoned() - whether a folio has a hardware memory error
 * @folio: a folio of a preserved memfd
 *
 * hugetlbfs keeps a poisoned huge page in the page cache, and a held
 * folio is not taken out by memory_failure(): the next kernel must not
 * get it, as guest memory or, if never retrieved, as free memory.
 *
 * Return: true if @folio, or a page of it, is poisoned.
 */
bool mfp_poisoned(struct folio *folio)
{
	return folio_test_hwpoison(folio) ||
	       (folio_test_large(folio) && folio_test_has_hwpoisoned(folio));
}

/*
 * What may not be preserved at all: a poisoned folio, and one whose head
 * is out of CMA but whose tail is in it, which migration
 * (memfd_pin_folios()) would leave where it is, looking at the head alone.
 */
static int mfp_check_folio(struct memfd_preserved *p, struct folio *folio)
{
	if (mfp_poisoned(folio)) {
		pr_warn_ratelimited("inode %llu: the page at PFN %#lx is poisoned; it cannot be preserved\n",
				    file_inode(p->file)->i_ino,
				    folio_pfn(folio));
		return -EHWPOISON;
	}
	if (mfp_folio_stays(folio))
		return 0;
	pr_warn_ratelimited("inode %llu: the %lu KiB page at PFN %#lx reaches into a KHO scratch area; it cannot be preserved\n",
			    file_inode(p->file)->i_ino, folio_size(folio) / SZ_1K,
			    folio_pfn(folio));
	return -EXDEV;
}

/*
 * Whether @folio may stay where it is (see mfp_folio_stays()).  Order-0
 * folios of one pageblock share the answer, cached in *@block and *@ok.
 */
static bool mfp_stays(struct folio *folio, unsigned long *block, bool *ok)
{
	unsigned long pb = folio_pfn(folio) >> pageblock_order;

	/*
	 * A gigantic page takes the slow path, so that mfp_check_folio()
	 * decides, once (fail_memfd_placement counts on it).
	 */
	if (folio_nr_pages(folio) > pageblock_nr_pages)
		return false;
	if (folio_test_large(folio))
		return mfp_folio_stays(folio);
	if (pb != *block) {
		*block = pb;
		*ok = folio_is_longterm_pinnable(folio);
	}
	return *ok;
}

/*
 * Take the next batch of folios, each with a reference taken while we held
 * its lock and it was in the page cache: whatever wants to move, free or
 * split it locks it first and then sees the reference.  Folios locked by
 * someone else, not uptodate (fallocated) or that must move out of CMA,
 * and swap entries, go to the careful way.
 */
static void mfp_walk_batch(struct address_space *mapping, struct mfp_walk *w)
{
	XA_STATE(xas, &mapping->i_pages, w->start);
	unsigned long block = ULONG_MAX;
	struct folio *folio;
	bool ok = false;

	w->nr = 0;
	w->nr_slow = 0;
	rcu_read_lock();
	xas_for_each(&xas, folio, w->end) {
		if (xas_retry(&xas, folio))
			continue;
		if (xa_is_value(folio))
			goto slow;
		if (!folio_try_get(folio))
			goto retry;
		if (unlikely(folio != xas_reload(&xas))) {
			folio_put(folio);
			goto retry;
		}
		if (!folio_trylock(folio))
			goto put_slow;
		if (folio->mapping != mapping || !folio_test_uptodate(folio) ||
		    mfp_poisoned(folio) || !mfp_stays(folio, &block, &ok)) {
			folio_unlock(folio);
			goto put_slow;
		}
		folio_unlock(folio);
		w->folios[w->nr++] = folio;
		w->start = folio_next_index(folio);
		if (w->nr == MFP_WALK_BATCH)
			break;
		continue;
retry:
		xas_reset(&xas);
		continue;
put_slow:
		folio_put(folio);
slow:
		w->slow[w->nr_slow++] = xas.xa_index;
		w->start = xas.xa_index + 1;
		if (w->nr_slow == MFP_WALK_BATCH)
			break;
	}
	if (!w->nr && !w->nr_slow)
		w->start = w->end + 1;
	rcu_read_unlock();
}

/*
 * The careful way, for the entry at @index.  shmem_get_folio() swaps it
 * in if it is in swap, waits for whoever holds the folio lock (an add that
 * has yet to reach memfd_preserve_folio_added(), or a migration, collapse
 * or swap-out that started before the memfd was preserved and may replace
 * the folio), zeroes a fallocated folio, and returns the folio locked, in
 * the page cache, with a reference.  It is unlocked before @p->lock is
 * taken: memfd_preserve_folio_added() takes @p->lock under a folio lock.
 * A folio in CMA is only noted, for mfp_move_fn().
 */
static int mfp_take_slow(struct memfd_preserved *p, struct mfp_run *run,
			 pgoff_t index, pgoff_t *next)
{
	struct folio *folio;
	int err = 0;

	*next = index + 1;
	/* hugetlb: no swap, no fallocated folio that is not uptodate. */
	if (p->hugetlb) {
		folio = filemap_lock_folio(p->file->f_mapping, index);
		if (IS_ERR(folio))
			err = PTR_ERR(folio);
	} else {
		err = shmem_get_folio(file_inode(p->file), index, 0, &folio,
				      SGP_NOALLOC);
	}
	/* A hole now (reclaim dropped a clean folio): later adds take it. */
	if (err == -ENOENT || (!err && !folio))
		return 0;
	if (err)
		return err;
	folio_unlock(folio);

	guard(mutex)(&p->lock);
	*next = folio_next_index(folio);
	if (xa_load(&p->added, folio->index) == folio) {
		/* memfd_preserve_folio_added() took it meanwhile. */
		folio_put(folio);
		return 0;
	}
	if (!folio_is_longterm_pinnable(folio)) {
		err = mfp_note_move(p, folio->index, folio_nr_pages(folio));
		folio_put(folio);
		return err;
	}
	err = mfp_check_folio(p, folio);
	if (err) {
		folio_put(folio);
		return err;
	}
	return mfp_describe(p, run, folio->index, folio_pfn(folio),
			    folio_order(folio));
}

/*
 * Describe every folio in the page cache up to i_size, each held by a
 * reference; folios wholly beyond i_size can only be fallocated ones, zero
 * and invisible, and are left out.  Nearly all folios are taken by
 * mfp_walk_batch(), the others by mfp_take_slow().  Folios in CMA are left
 * to mfp_move_fn().
 */
static int mfp_scan(struct memfd_preserved *p, struct address_space *mapping)
{
	loff_t isize = i_size_read(file_inode(p->file));
	struct mfp_walk *w __free(kfree) = NULL;
	struct mfp_run run = {};
	struct folio *folio;
	pgoff_t next;
	unsigned int i;
	int err = 0;

	if (!isize)
		return 0;
	w = kmalloc_obj(*w);
	if (!w)
		return -ENOMEM;
	w->start = 0;
	w->end = (isize - 1) >> PAGE_SHIFT;
	while (!err && w->start <= w->end) {
		mfp_walk_batch(mapping, w);
		scoped_guard(mutex, &p->lock) {
			for (i = 0; i < w->nr; i++) {
				folio = w->folios[i];
				/* Added since ->preserved: the hook took it. */
				if (err || xa_load(&p->added, folio->index) == folio)
					folio_put(folio);
				else
					err = mfp_describe(p, &run, folio->index,
							   folio_pfn(folio),
							   folio_order(folio));
			}
		}
		/* A folio taken the careful way may cover later indices. */
		next = 0;
		for (i = 0; !err && i < w->nr_slow; i++) {
			if (w->slow[i] < next)
				continue;
			err = mfp_take_slow(p, &run, w->slow[i], &next);
			w->start = max(w->start, next);
		}
		cond_resched();
	}
	guard(mutex)(&p->lock);
	if (err) {
		mfp_drop_run(&run);
		return err;
	}
	return mfp_flush_run(p, &run);
}

/**
 * mfp_added_store() - record a held folio in @p->added
 * @p: the preserved memfd, with @p->lock held
 * @folio: the folio
 * @pending: pending (to be described at freeze), or moved out of CMA
 *
 * Record @folio in @p->added, as pending or as moved out of CMA.  A
 * pending folio there at the same index left the page cache again (its
 * add was undone after memfd_preserve_folio_added()): it is released.
 *
 * Return: 0, or the xarray's error.
 */
int mfp_added_store(struct memfd_preserved *p, struct folio *folio,
		    bool pending)
{
	pgoff_t index = folio->index;
	bool was_pending = xa_get_mark(&p->added, index, MFP_PENDING);
	struct folio *old;

	old = xa_store(&p->added, index, folio, GFP_KERNEL);
	if (xa_is_err(old))
		return xa_err(old);
	if (old && old != folio && was_pending) {
		kho_unpreserve_folio(old);
		folio_put(old);
		p->nr_pending--;
	}
	if (pending) {
		xa_set_mark(&p->added, index, MFP_PENDING);
		p->nr_pending += !was_pending || old != folio;
	} else {
		xa_clear_mark(&p->added, index, MFP_PENDING);
	}
	return 0;
}

/*
 * Before the pending folios are described at freeze, make sure each is
 * still what the page cache holds: an add can be undone after
 * memfd_preserve_folio_added() (a failed write, a userfaultfd copy whose
 * PTE could not be installed), always under the folio lock taken for the
 * add.  One that left is released; a fallocated one is zeroed.  @p is
 * frozen and @move_work done: nothing else changes @p->added.
 */
static void mfp_check_pending(struct memfd_preserved *p)
{
	struct address_space *mapping = p->file->f_mapping;
	struct folio *folio;
	unsigned long index;
	bool gone;

	xa_for_each_marked(&p->added, index, folio, MFP_PENDING) {
		folio_lock(folio);
		gone = folio->mapping != mapping;
		if (!gone && !folio_test_uptodate(folio)) {
			folio_zero_range(folio, 0, folio_size(folio));
			flush_dcache_folio(folio);
			folio_mark_uptodate(folio);
		}
		folio_unlock(folio);
		if (!gone)
			continue;
		guard(mutex)(&p->lock);
		xa_erase(&p->added, index);
		kho_unpreserve_folio(folio);
		folio_put(folio);
		p->nr_pending--;
	}
}

/* Describe the folios added since the last time; @p->lock held. */
static int mfp_flush_pending(struct memfd_preserved *p)
{
	struct folio *folio;
	unsigned long index;
	int err;

	p->open = NULL;
	xa_for_each_marked(&p->added, index, folio, MFP_PENDING) {
		if (folio_test_large(folio))
			err = mfp_emit_run(p, index, folio_pfn(folio),
					   folio_nr_pages(folio),
					   folio_order(folio));
		else
			err = mfp_emit_page(p, index, folio_pfn(folio));
		if (err)
			return err;
		/* Its reference is the description's now. */
		xa_clear_mark(&p->added, index, MFP_PENDING);
		p->nr_pending--;
	}
	p->open = NULL;
	return 0;
}

/* The open file's mode and status flags, in the format's own bits. */
static u32 mfp_file_flags(struct file *file)
{
	unsigned int f_flags = READ_ONCE(file->f_flags);
	u32 flags = 0;

	if (file->f_mode & FMODE_READ)
		flags |= MEMFD_PRESERVE_F_READ;
	if (file->f_mode & FMODE_WRITE)
		flags |= MEMFD_PRESERVE_F_WRITE;
	if (f_flags & O_APPEND)
		flags |= MEMFD_PRESERVE_F_APPEND;
	if (f_flags & O_NONBLOCK)
		flags |= MEMFD_PRESERVE_F_NONBLOCK;
	return flags;
}

/* The attributes that can change while preserved; @p->lock held. */
static void mfp_fill_attrs(struct memfd_preserved *p)
{
	struct inode *inode = file_inode(p->file);
	struct memfd_preserve_file *hdr = p->hdr;

	hdr->size = i_size_read(inode);
	hdr->pos = READ_ONCE(p->file->f_pos);
	hdr->seals = memfd_fcntl(p->file, F_GET_SEALS, 0);
	hdr->mode = READ_ONCE(inode->i_mode) & 07777;
	hdr->uid = from_kuid(&init_user_ns, inode->i_uid);
	hdr->gid = from_kgid(&init_user_ns, inode->i_gid);
	hdr->flags = mfp_file_flags(p->file);
}

/**
 * mfp_folio_added() - a folio was added to a preserved memfd
 * @slot: where the memfd's inode points to its &struct memfd_preserved
 * @folio: the new folio, locked, in the memfd's page cache
 *
 * Holds and preserves @folio, to be described in the metadata at freeze;
 * a folio in CMA is noted instead, for mfp_move_fn() to move and
 * describe.  Either the walk in mfp_preserve() sees @folio or we see
 * ->preserved; when both do, the walk finds @folio in @added.
 *
 * Return: 0; -EPERM once frozen for the reboot (the write fails rather
 * than being lost); -EXDEV for a huge page reaching into CMA; or
 * -ENOMEM.  On error the caller takes @folio out of the page cache again.
 */
int mfp_folio_added(struct memfd_preserved __rcu **slot, struct folio *folio)
{
	struct memfd_preserved *p;
	int err = 0;

	rcu_read_lock();
	p = rcu_dereference(*slot);
	if (p && !refcount_inc_not_zero(&p->ref))
		p = NULL;
	rcu_read_unlock();
	if (!p)
		return 0;

	mutex_lock(&p->lock);
	if (p->dead)
		goto out;
	err = -EPERM;
	if (p->frozen)
		goto out;
	err = 0;
	/* Taken by the walk's careful way or the mover while we came. */
	if (xa_load(&p->added, folio->index) == folio)
		goto out;
	if (!folio_is_longterm_pinnable(folio)) {
		err = mfp_note_move(p, folio->index, folio_nr_pages(folio));
		if (!err && p->scanned)
			mfp_move_start(p);
		goto out;
	}
	err = mfp_check_folio(p, folio);
	if (err)
		goto out;
	err = kho_preserve_folio(folio);
	if (err)
		goto out;
	err = mfp_added_store(p, folio, true);
	if (err) {
		kho_unpreserve_folio(folio);
		goto out;
	}
	folio_get(folio);
out:
	mutex_unlock(&p->lock);
	mfp_put(p);
	return err;
}

/**
 * memfd_preserve_folio_added() - a folio was added to a preserved memfd
 * @inode: the memfd's inode
 * @folio: the new folio, locked, in @inode's page cache
 *
 * Called by shmem_add_to_page_cache() for a new folio (not one swapped in)
 * when it found the memfd preserved under the i_pages lock: see
 * mfp_folio_added().
 *
 * Return: 0, or an error after which the caller takes @folio out of the
 * page cache again.
 */
int memfd_preserve_folio_added(struct inode *inode, struct folio *folio)
{
	return mfp_folio_added(&SHMEM_I(inode)->preserved, folio);
}

/* ---- outgoing: the handler ops ---- */

/**
 * mfp_is_memfd() - whether a shmem or hugetlbfs file is a memfd
 * @file: the file
 *
 * Return: true if @file lives on an internal mount (tmpfs and hugetlbfs
 * files do not) and is named as memfd_create() names its files (SysV
 * shared memory and MAP_HUGETLB files are not).
 */
bool mfp_is_memfd(struct file *file)
{
	const struct qstr *name = &file->f_path.dentry->d_name;

	if (!(file->f_path.mnt->mnt_sb->s_flags & SB_KERNMOUNT))
		return false;
	return name->len >= strlen(MFP_NAME_PREFIX) &&
	       !memcmp(name->name, MFP_NAME_PREFIX, strlen(MFP_NAME_PREFIX));
}

static bool mfp_can_preserve(struct liveupdate_file_handler *handler,
			     struct file *file)
{
	/* hugetlb memfds have a handler of their own. */
	return shmem_file(file) && mfp_is_memfd(file);
}

static struct memfd_preserved __rcu **mfp_slot(struct memfd_preserved *p)
{
#ifdef CONFIG_LIVEUPDATE_MEMFD_HUGETLB
	if (p->hugetlb)
		return mfp_hugetlb_slot(file_inode(p->file));
#endif
	return &SHMEM_I(file_inode(p->file))->preserved;
}

static struct memfd_preserved *mfp_alloc(struct file *file)
{
	const struct qstr *name = &file->f_path.dentry->d_name;
	struct memfd_preserve_file *hdr;
	struct memfd_preserved *p;
	struct mfp_pool *pool;
	size_t size;
	int err;

	if (name->len >= MEMFD_PRESERVE_NAME_LENGTH)
		return ERR_PTR(-ENAMETOOLONG);
	/* The core preserved the pool before calling us. */
	err = liveupdate_flb_get_outgoing(&mfp_pool_flb, (void **)&pool);
	if (WARN_ON_ONCE(err))
		return ERR_PTR(err);
	p = kzalloc_obj(*p, GFP_KERNEL_ACCOUNT);
	if (!p)
		return ERR_PTR(-ENOMEM);
	size = struct_size(hdr, name, name->len + 1);
	hdr = mfp_pool_alloc(pool, size);
	if (IS_ERR(hdr)) {
		kfree(p);
		return ERR_CAST(hdr);
	}
	if (is_file_hugepages(file))
		mfp_pool_hugetlb(pool);
	mutex_init(&p->lock);
	refcount_set(&p->ref, 1);
	xa_init(&p->added);
	INIT_WORK(&p->move_work, mfp_move_fn);
	p->file = file;
	p->pool = pool;
	p->hdr = hdr;
	p->hdr_size = ALIGN(size, 8);
	p->hugetlb = is_file_hugepages(file);
	hdr->magic = MEMFD_PRESERVE_MAGIC;
	hdr->header_size = sizeof(*hdr);
	if (p->hugetlb)
		hdr->huge_shift = huge_page_shift(hstate_file(file));
	hdr->name_len = name->len;
	memcpy(hdr->name, name->name, name->len);
	return p;
}

/*
 * Publish @p as its memfd's preserved state, or take it back (!@on), under
 * the i_pages lock: see memfd_preserve_mapping().  For a hugetlb memfd
 * this also freezes its size (hugetlbfs_mapping_frozen()).
 */
static void mfp_publish(struct memfd_preserved *p, bool on)
{
	struct address_space *mapping = p->file->f_mapping;

	xa_lock_irq(&mapping->i_pages);
	rcu_assign_pointer(*mfp_slot(p), on ? p : NULL);
	xa_unlock_irq(&mapping->i_pages);
}

/*
 * Reclaim cannot free a held folio, but it would unmap it (zapping a
 * VMM's guest mappings) before it finds the reference, again and again:
 * while preserved the mapping is unevictable, as SHM_LOCK makes it, and
 * its folios go to the unevictable list when reclaim first meets them.
 */
static void mfp_set_unevictable(struct memfd_preserved *p, bool set)
{
	struct address_space *mapping = p->file->f_mapping;

	/* hugetlb folios are never on the LRU. */
	if (p->hugetlb)
		return;
	if (set) {
		p->was_unevictable = mapping_unevictable(mapping);
		mapping_set_unevictable(mapping);
	} else if (!p->was_unevictable) {
		mapping_clear_unevictable(mapping);
		/* Back to the evictable lists: O(pages), not in a reboot. */
		shmem_unlock_mapping(mapping);
	}
}

/*
 * No size change, no hole punched: no folio leaves the page cache.  A
 * hugetlb memfd is frozen by being published.
 */
static void mfp_freeze_size(struct memfd_preserved *p, bool freeze)
{
	if (!p->hugetlb)
		shmem_freeze(file_inode(p->file), freeze);
}

/* Preserved already, or (shmem) frozen by someone else. */
static bool mfp_busy(struct memfd_preserved *p)
{
	struct inode *inode = file_inode(p->file);

	return rcu_access_pointer(*mfp_slot(p)) ||
	       (!p->hugetlb && (SHMEM_I(inode)->flags & SHMEM_F_MAPPING_FROZEN));
}

static int mfp_preserve(struct liveupdate_file *lf)
{
	struct file *file = lf->file;
	struct inode *inode = file_inode(file);
	struct memfd_preserved *p;
	int err;

	/* A memfd retrieved a moment ago may still be getting its folios. */
	if (shmem_file(file)) {
		err = memfd_preserve_wait_restored(inode);
		if (err)
			return err;
	}
	p = mfp_alloc(file);
	if (IS_ERR(p))
		return PTR_ERR(p);

	inode_lock(inode);
	if (mfp_busy(p)) {
		inode_unlock(inode);
		mfp_pool_free(p->pool, p->hdr);
		mfp_put(p);
		return -EBUSY;
	}
	mfp_freeze_size(p, true);
	mfp_publish(p, true);
	mfp_set_unevictable(p, true);
	err = mfp_scan(p, inode->i_mapping);
	mutex_lock(&p->lock);
	if (err) {
		mfp_publish(p, false);
		p->dead = true;
		mutex_unlock(&p->lock);
		mfp_release(p);
		mfp_set_unevictable(p, false);
		mfp_freeze_size(p, false);
		inode_unlock(inode);
		mfp_put(p);
		return err;
	}
	mfp_fill_attrs(p);
	p->open = NULL;
	p->scanned = true;
	mfp_move_start(p);
	mutex_unlock(&p->lock);
	inode_unlock(inode);

	lf->data = virt_to_phys(p->hdr);
	lf->private = p;
	scoped_guard(mutex, &mfp_list_lock)
		list_add_tail(&p->node, &mfp_list);
	return 0;
}

static void mfp_unpreserve(struct liveupdate_file *lf)
{
	struct memfd_preserved *p = lf->private;
	struct inode *inode = file_inode(p->file);

	scoped_guard(mutex, &mfp_list_lock)
		list_del(&p->node);
	scoped_guard(mutex, &p->lock)
		p->cancel = true;
	flush_work(&p->move_work);
	inode_lock(inode);
	mutex_lock(&p->lock);
	mfp_publish(p, false);
	p->dead = true;
	mutex_unlock(&p->lock);
	mfp_release(p);
	mfp_set_unevictable(p, false);
	mfp_freeze_size(p, false);
	inode_unlock(inode);
	lf->private = NULL;
	mfp_put(p);
}

static int mfp_freeze(struct liveupdate_file *lf)
{
	struct memfd_preserved *p = lf->private;
	int err;

	err = mfp_freeze_moved(p);
	if (err)
		return err;
	mfp_check_pending(p);
	guard(mutex)(&p->lock);
	err = mfp_flush_pending(p);
	if (err) {
		p->frozen = false;
		return err;
	}
	mfp_fill_attrs(p);
	return 0;
}

static bool mfp_settling(struct liveupdate_file *lf)
{
	struct memfd_preserved *p = lf->private;

	return READ_ONCE(p->moving);
}

static void mfp_unfreeze(struct liveupdate_file *lf)
{
	struct memfd_preserved *p = lf->private;

	guard(mutex)(&p->lock);
	p->frozen = false;
}

static const struct liveupdate_file_ops mfp_ops = {
	.can_preserve	= mfp_can_preserve,
	.preserve	= mfp_preserve,
	.unpreserve	= mfp_unpreserve,
	.freeze		= mfp_freeze,
	.unfreeze	= mfp_unfreeze,
	.settling	= mfp_settling,
	.preload	= mfp_preload,
	.retrieve	= mfp_retrieve,
	.dependents_done = mfp_dependents_done,
	.finish		= mfp_finish,
};

static struct liveupdate_file_handler mfp_handler = {
	.compatible	= MEMFD_PRESERVE_COMPATIBLE,
	.version	= MEMFD_PRESERVE_VERSION,
	.ops		= &mfp_ops,
	.owner		= THIS_MODULE,
};

#ifdef CONFIG_LIVEUPDATE_MEMFD_HUGETLB
/* The outgoing side is the same; what differs is in memfd_preserve_hugetlb.c. */
static const struct liveupdate_file_ops mfp_hugetlb_ops = {
	.can_preserve	= mfp_hugetlb_can_preserve,
	.preserve	= mfp_preserve,
	.unpreserve	= mfp_unpreserve,
	.freeze		= mfp_freeze,
	.unfreeze	= mfp_unfreeze,
	.settling	= mfp_settling,
	.preload	= mfp_preload,
	.retrieve	= mfp_hugetlb_retrieve,
	.dependents_done = mfp_dependents_done,
	.finish		= mfp_finish,
};

struct liveupdate_file_handler mfp_hugetlb_handler = {
	.compatible	= MEMFD_PRESERVE_HUGETLB_COMPATIBLE,
	.version	= MEMFD_PRESERVE_HUGETLB_VERSION,
	.ops		= &mfp_hugetlb_ops,
	.owner		= THIS_MODULE,
};

static struct liveupdate_file_handler *mfp_handlers[] = {
	&mfp_handler, &mfp_hugetlb_handler,
};
#else
static struct liveupdate_file_handler *mfp_handlers[] = { &mfp_handler };
#endif

/* ---- statistics ---- */

/*
 * One line per outgoing preserved memfd: what its metadata costs, in bytes
 * used by the header and entries and in bytes of chunks allocated, and the
 * pages still to be moved out of CMA.
 */
static int mfp_stats_show(struct seq_file *m, void *unused)
{
	struct memfd_preserve_chunk *c;
	struct memfd_preserved *p;
	size_t used, alloc;

	seq_puts(m, "# inode pages folios pending chunks meta_used meta_alloc moving\n");
	guard(mutex)(&mfp_list_lock);
	list_for_each_entry(p, &mfp_list, node) {
		guard(mutex)(&p->lock);
		used = struct_size(p->hdr, name, p->hdr->name_len + 1);
		alloc = p->hdr_size;
		for (c = p->hdr->chunks ? phys_to_virt(p->hdr->chunks) : NULL;
		     c; c = c->next ? phys_to_virt(c->next) : NULL) {
			used += sizeof(*c) + c->used;
			alloc += c->size;
		}
		seq_printf(m, "%llu %llu %llu %lu %u %zu %zu %lu\n",
			   file_inode(p->file)->i_ino, p->hdr->nr_pages,
			   p->hdr->nr_folios, p->nr_pending, p->hdr->nr_chunks,
			   used, alloc, mfp_left_to_move(p));
	}
	seq_printf(m, "# restored_in_background %ld accesses_waited %ld preloaded %ld\n",
		   atomic_long_read(&mfp_nr_background),
		   atomic_long_read(&mfp_nr_waits),
		   atomic_long_read(&mfp_nr_preloaded));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(mfp_stats);

/**
 * mfp_count_hugetlb() - count the huge pages of the frozen hugetlb memfds
 * @hp: where to write them, by huge page shift
 */
void mfp_count_hugetlb(struct memfd_preserve_hugetlb_pool *hp)
{
	struct memfd_preserved *p;

	memset(hp->pages, 0, sizeof(hp->pages));
	guard(mutex)(&mfp_list_lock);
	list_for_each_entry(p, &mfp_list, node) {
		if (!p->hugetlb)
			continue;
		guard(mutex)(&p->lock);
		hp->pages[p->hdr->huge_shift] += p->hdr->nr_folios;
	}
}

/* Register @h, bound to the metadata pool. */
static int __init mfp_register(struct liveupdate_file_handler *h)
{
	int err = liveupdate_register_file_handler(h);

	if (err) {
		pr_err("cannot register the %s handler: %d\n", h->compatible, err);
		return err;
	}
	err = liveupdate_register_flb(h, &mfp_pool_flb);
	if (err) {
		pr_err("cannot bind the metadata pool to %s: %d\n",
		       h->compatible, err);
		liveupdate_unregister_file_handler(h);
	}
	return err;
}

static int __init memfd_preserve_init(void)
{
	struct dentry *dir;
	unsigned int i;
	int err;

	mfp_hugetlb_pool_in_free();
	for (i = 0; i < ARRAY_SIZE(mfp_handlers); i++) {
		err = mfp_register(mfp_handlers[i]);
		if (err) {
			while (i--)
				liveupdate_unregister_file_handler(mfp_handlers[i]);
			return err;
		}
	}
	debugfs_create_file("memfd_preserve", 0400, NULL, NULL,
			    &mfp_stats_fops);
	fault_create_debugfs_attr("fail_memfd_restore", NULL,
				  &fail_memfd_restore);
	dir = fault_create_debugfs_attr("fail_memfd_placement", NULL,
					&fail_memfd_placement);
	if (!IS_ERR(dir))
		debugfs_create_u32("block", 0600, dir, &mfp_placement_block);
	return 0;
}
late_initcall(memfd_preserve_init);
