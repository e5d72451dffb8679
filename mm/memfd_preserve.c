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
 * Incoming: the first retrieve (or finish) restores every folio from KHO
 * into an array kept in &liveupdate_file.private, and frees the chunks of
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
 */
#define pr_fmt(fmt) "memfd_preserve: " fmt

#include <linux/cleanup.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/fault-inject.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/hugetlb.h>
#include <linux/init.h>
#include <linux/io.h>
#include <linux/kexec_handover.h>
#include <linux/kho/abi/memfd_preserve.h>
#include <linux/liveupdate.h>
#include <linux/memcontrol.h>
#include <linux/memfd.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mount.h>
#include <linux/mutex.h>
#include <linux/pagemap.h>
#include <linux/folio_batch.h>
#include <linux/rcupdate.h>
#include <linux/refcount.h>
#include <linux/seq_file.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>
#include <linux/swap.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "internal.h"

#define MFP_NAME_PREFIX		"memfd:"
/* Chunks grow from 64 bytes (in the pool) up to 64 KiB (of their own). */
#define MFP_CHUNK_MIN		64U
#define MFP_CHUNK_MAX_ORDER	4U
#define MFP_POOL_ROOM		(PAGE_SIZE - \
				 sizeof(struct memfd_preserve_pool_page))
/* Shorter runs of contiguous pages are cheaper as PAGES words. */
#define MFP_RUN_MIN		3
/* Longer ones are cut: 4 MiB per entry. */
#define MFP_RUN_MAX		(1U << MAX_PAGE_ORDER)
/* In @added: preserved and held, not yet described in the metadata. */
#define MFP_PENDING		XA_MARK_0
#define MFP_SEALS		(F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | \
				 F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | \
				 F_SEAL_EXEC)
#define MFP_MAX_INDEX		((u64)(MAX_LFS_FILESIZE >> PAGE_SHIFT))

/* The handover format is ABI: its records keep their sizes. */
static_assert(sizeof(struct memfd_preserve_pool_page) == 16);
static_assert(sizeof(struct memfd_preserve_chunk) == 16);
static_assert(sizeof(struct memfd_preserve_file) == 80);
static_assert(sizeof(struct memfd_preserve_entry) == 16);
static_assert(sizeof(struct memfd_preserve_run) == 24);
static_assert(sizeof(struct memfd_preserve_pages) == 16);

/**
 * struct mfp_span - the pages @first to @last of a memfd
 * @first: first page index
 * @last: last page index
 */
struct mfp_span {
	pgoff_t first;
	pgoff_t last;
};

/**
 * struct mfp_run - order-0 folios at consecutive indices and PFNs
 * @index: index of the first
 * @pfn: PFN of the first
 * @nr: how many
 */
struct mfp_run {
	pgoff_t index;
	unsigned long pfn;
	unsigned long nr;
};

/**
 * struct memfd_preserved - an outgoing preserved memfd
 * @lock: protects everything below and the metadata
 * @ref: references: the LUO file, and shmem hooks in flight
 * @rcu: for freeing after shmem hooks stop seeing it
 * @file: the memfd
 * @added: page index -> folio, for folios added after PRESERVE_FD, marked
 *	%MFP_PENDING until freeze describes them, and for folios moved out of
 *	CMA; it owns the reference of a pending folio only
 * @pool: the metadata pool @hdr and the small chunks come from
 * @hdr: the file header, in the pool
 * @hdr_size: bytes allocated for @hdr
 * @tail: the last chunk, or NULL before the first entry
 * @open: the PAGES entry words can be appended to, or NULL
 * @open_next: index after the last page of @open
 * @dead: unpreserved (or failed to preserve): hooks must do nothing
 * @frozen: frozen for the reboot: no folio may be added
 * @scanned: PRESERVE_FD's walk is over: the hook starts @move_work itself
 * @was_unevictable: the mapping was unevictable before PRESERVE_FD
 * @nr_pending: folios added since PRESERVE_FD, not described yet
 * @node: in mfp_list
 * @move_work: moves the folios in @moves out of CMA after PRESERVE_FD
 * @moves: runs of contiguous folios found in CMA, by the scan or the hook
 * @nr_moves: entries in @moves
 * @max_moves: room in @moves
 * @move_span: the entry of @moves @move_work is at
 * @move_start: the page index in it @move_work is at
 * @move_run: what @move_work gathered and has yet to describe
 * @nr_moving: pages of @moves not moved and described yet
 * @move_err: why @move_work stopped short, or 0
 * @move_fatal: @move_err was not a page failing to migrate: no retry
 * @moving: @move_work is queued or running
 * @cancel: unpreserving: @move_work stops at its next batch
 */
struct memfd_preserved {
	struct mutex lock;		/* see the kernel-doc above */
	refcount_t ref;
	struct rcu_head rcu;
	struct list_head node;
	unsigned long nr_pending;
	struct file *file;
	struct xarray added;
	struct mfp_pool *pool;
	struct memfd_preserve_file *hdr;
	size_t hdr_size;
	struct memfd_preserve_chunk *tail;
	struct memfd_preserve_pages *open;
	pgoff_t open_next;
	bool dead;
	bool frozen;
	bool scanned;
	bool was_unevictable;
	struct work_struct move_work;
	struct mfp_span *moves;
	unsigned int nr_moves;
	unsigned int max_moves;
	unsigned int move_span;
	pgoff_t move_start;
	struct mfp_run move_run;
	unsigned long nr_moving;
	int move_err;
	bool move_fatal;
	bool moving;
	bool cancel;
};

/**
 * struct mfp_in - an incoming memfd, restored from KHO
 * @err: sticky error: the state was damaged and is released
 * @nr: folios in @folios
 * @nr_pages: pages in @folios
 * @folios: restored folios, each with one reference we own
 * @indices: page index of each folio
 * @size: i_size
 * @pos: file position
 * @seals: F_SEAL_*
 * @mode: permission bits
 * @uid: owner
 * @gid: group
 * @flags: MEMFD_PRESERVE_F_*
 * @name: the memfd's name
 */
struct mfp_in {
	int err;
	unsigned long nr;
	unsigned long nr_pages;
	struct folio **folios;
	pgoff_t *indices;
	loff_t size;
	loff_t pos;
	unsigned int seals;
	umode_t mode;
	kuid_t uid;
	kgid_t gid;
	u32 flags;
	char name[MEMFD_PRESERVE_NAME_LENGTH];
};

/* Outgoing preserved memfds, for the debugfs statistics. */
static LIST_HEAD(mfp_list);
static DEFINE_MUTEX(mfp_list_lock);

/* ---- the metadata pool: an FLB shared by every preserved memfd ---- */

/**
 * struct mfp_pool_page - a page of the outgoing metadata pool
 * @node: in &mfp_pool.pages, in the order of the handed-over list
 * @base: the page, starting with a struct memfd_preserve_pool_page
 * @used: bytes handed out so far (allocation only bumps)
 * @live: objects handed out and not freed yet
 */
struct mfp_pool_page {
	struct list_head node;
	void *base;
	u32 used;
	u32 live;
};

/**
 * struct mfp_pool - the outgoing metadata pool
 * @lock: protects everything below and the links between pool pages
 * @pages: the pages, in list order
 * @by_pfn: PFN -> struct mfp_pool_page, for freeing objects
 * @cur: the page objects are allocated from
 */
struct mfp_pool {
	struct mutex lock;	/* see the kernel-doc above */
	struct list_head pages;
	struct xarray by_pfn;
	struct mfp_pool_page *cur;
};

/* Unlink @pg from the handed-over list and free it; @pool->lock held. */
static void mfp_pool_page_free(struct mfp_pool *pool, struct mfp_pool_page *pg)
{
	struct memfd_preserve_pool_page *hdr = pg->base, *prev;

	if (!list_is_first(&pg->node, &pool->pages)) {
		prev = list_prev_entry(pg, node)->base;
		prev->next = hdr->next;
	}
	list_del(&pg->node);
	xa_erase(&pool->by_pfn, PHYS_PFN(virt_to_phys(pg->base)));
	if (pool->cur == pg)
		pool->cur = NULL;
	kho_unpreserve_free(pg->base);
	kfree(pg);
}

static struct mfp_pool_page *mfp_pool_page_new(struct mfp_pool *pool)
{
	struct memfd_preserve_pool_page *tail;
	struct mfp_pool_page *pg;
	int err;

	pg = kzalloc_obj(*pg, GFP_KERNEL_ACCOUNT);
	if (!pg)
		return ERR_PTR(-ENOMEM);
	pg->base = kho_alloc_preserve(PAGE_SIZE);
	if (IS_ERR(pg->base)) {
		err = PTR_ERR(pg->base);
		goto err_free;
	}
	err = xa_err(xa_store(&pool->by_pfn, PHYS_PFN(virt_to_phys(pg->base)),
			      pg, GFP_KERNEL));
	if (err)
		goto err_unpreserve;
	pg->used = sizeof(struct memfd_preserve_pool_page);
	if (!list_empty(&pool->pages)) {
		tail = list_last_entry(&pool->pages, struct mfp_pool_page,
				       node)->base;
		tail->next = virt_to_phys(pg->base);
	}
	list_add_tail(&pg->node, &pool->pages);
	return pg;

err_unpreserve:
	kho_unpreserve_free(pg->base);
err_free:
	kfree(pg);
	return ERR_PTR(err);
}

/* @len zeroed bytes, 8-byte aligned, within one preserved pool page. */
static void *mfp_pool_alloc(struct mfp_pool *pool, size_t len)
{
	struct mfp_pool_page *pg, *old;
	void *obj;

	len = ALIGN(len, 8);
	if (WARN_ON_ONCE(len > MFP_POOL_ROOM))
		return ERR_PTR(-E2BIG);
	guard(mutex)(&pool->lock);
	pg = pool->cur;
	if (!pg || pg->used + len > PAGE_SIZE) {
		pg = mfp_pool_page_new(pool);
		if (IS_ERR(pg))
			return pg;
		old = pool->cur;
		pool->cur = pg;
		if (old && !old->live)
			mfp_pool_page_free(pool, old);
	}
	obj = pg->base + pg->used;
	memset(obj, 0, len);
	pg->used += len;
	pg->live++;
	return obj;
}

static void mfp_pool_free(struct mfp_pool *pool, void *obj)
{
	struct mfp_pool_page *pg;

	guard(mutex)(&pool->lock);
	pg = xa_load(&pool->by_pfn, PHYS_PFN(virt_to_phys(obj)));
	if (WARN_ON_ONCE(!pg || !pg->live) || --pg->live)
		return;
	if (pg == pool->cur)
		pg->used = sizeof(struct memfd_preserve_pool_page);
	else
		mfp_pool_page_free(pool, pg);
}

static int mfp_pool_preserve(struct liveupdate_flb *flb,
			     struct liveupdate_flb_state *out)
{
	struct mfp_pool *pool = kzalloc_obj(*pool, GFP_KERNEL_ACCOUNT);

	if (!pool)
		return -ENOMEM;
	mutex_init(&pool->lock);
	INIT_LIST_HEAD(&pool->pages);
	xa_init(&pool->by_pfn);
	out->obj = pool;
	return 0;
}

static void mfp_pool_unpreserve(struct liveupdate_flb *flb,
				struct liveupdate_flb_state *out)
{
	struct mfp_pool *pool = out->obj;
	struct mfp_pool_page *pg, *tmp;

	/* Every memfd freed its objects before its reference went. */
	scoped_guard(mutex, &pool->lock) {
		list_for_each_entry_safe(pg, tmp, &pool->pages, node) {
			WARN_ON_ONCE(pg->live);
			mfp_pool_page_free(pool, pg);
		}
	}
	xa_destroy(&pool->by_pfn);
	mutex_destroy(&pool->lock);
	kfree(pool);
}

static int mfp_pool_freeze(struct liveupdate_flb *flb,
			   struct liveupdate_flb_state *out)
{
	struct mfp_pool *pool = out->obj;
	struct mfp_pool_page *first;

	guard(mutex)(&pool->lock);
	first = list_first_entry_or_null(&pool->pages, struct mfp_pool_page,
					 node);
	out->data = first ? virt_to_phys(first->base) : 0;
	return 0;
}

/**
 * struct mfp_pool_in - the incoming metadata pool
 * @pages: PFN -> restored pool page
 * @started: the walk of the handed-over list has begun
 * @walked: it is over, and @err says how it ended
 * @err: the walk's error, for every later use: the list was damaged
 * @next: physical address of the next page to restore
 * @nr: pages restored so far, a bound against cycles
 * @folio: a page restored but not stored yet (out of memory): KHO restores
 *	a page only once, so it is kept for the next try
 *
 * Used by the FLB's callbacks, which the core serializes, and read by the
 * memfd retrieves once the FLB is retrieved.
 */
struct mfp_pool_in {
	struct xarray pages;
	bool started;
	bool walked;
	int err;
	u64 next;
	unsigned long nr;
	struct folio *folio;
};

static struct mfp_pool_in mfp_pool_incoming = {
	.pages = XARRAY_INIT(mfp_pool_incoming.pages, 0),
};

/*
 * Restore every pool page the previous kernel listed.  Running out of
 * memory is not final: the walk resumes where it stopped on the next call.
 */
static int mfp_pool_walk(struct liveupdate_flb_state *in)
{
	struct mfp_pool_in *pool = &mfp_pool_incoming;
	const struct memfd_preserve_pool_page *hdr;
	int err = 0;

	if (pool->walked)
		return pool->err;
	if (!pool->started) {
		pool->started = true;
		pool->next = in->data;
		if (in->version != MEMFD_PRESERVE_POOL_VERSION) {
			pool->next = 0;
			err = -EOPNOTSUPP;
		}
	}
	while (pool->next) {
		if (!pool->folio) {
			err = -EBADMSG;
			/* A cycle ends at a page restored already. */
			if (!PAGE_ALIGNED(pool->next) ||
			    pool->nr++ > get_num_physpages())
				break;
			pool->folio = kho_restore_folio(pool->next);
			if (!pool->folio)
				break;
			if (folio_order(pool->folio)) {
				folio_put(pool->folio);
				pool->folio = NULL;
				break;
			}
		}
		err = xa_err(xa_store(&pool->pages, PHYS_PFN(pool->next),
				      pool->folio, GFP_KERNEL));
		if (err)
			return err;
		hdr = folio_address(pool->folio);
		pool->folio = NULL;
		pool->next = hdr->next;
		err = 0;
	}
	if (err)
		pr_warn("metadata pool: %pe\n", ERR_PTR(err));
	pool->walked = true;
	pool->err = err;
	return err;
}

static int mfp_pool_retrieve(struct liveupdate_flb *flb,
			     struct liveupdate_flb_state *in)
{
	int err = mfp_pool_walk(in);

	if (!err)
		in->obj = &mfp_pool_incoming;
	return err;
}

static void mfp_pool_finish(struct liveupdate_flb *flb,
			    struct liveupdate_flb_state *in, bool retrieved)
{
	struct mfp_pool_in *pool = &mfp_pool_incoming;
	struct folio *folio;
	unsigned long pfn;

	/* Never retrieved: restore the pages only to free them. */
	mfp_pool_walk(in);
	xa_for_each(&pool->pages, pfn, folio)
		folio_put(folio);
	xa_destroy(&pool->pages);
	/* Out of memory even now: what is left of the list is lost. */
	if (pool->folio)
		folio_put(pool->folio);
	pool->folio = NULL;
}

/* @len bytes at @phys, if they lie in one incoming pool page. */
static void *mfp_pool_in_ptr(struct mfp_pool_in *pool, u64 phys, size_t len)
{
	size_t off = offset_in_page(phys);
	struct folio *folio;

	if (!IS_ALIGNED(phys, 8) ||
	    off < sizeof(struct memfd_preserve_pool_page) ||
	    len > PAGE_SIZE - off)
		return NULL;
	folio = xa_load(&pool->pages, PHYS_PFN(phys));
	return folio ? folio_address(folio) + off : NULL;
}

static const struct liveupdate_flb_ops mfp_pool_ops = {
	.preserve	= mfp_pool_preserve,
	.unpreserve	= mfp_pool_unpreserve,
	.freeze		= mfp_pool_freeze,
	.retrieve	= mfp_pool_retrieve,
	.finish		= mfp_pool_finish,
};

static struct liveupdate_flb mfp_pool_flb = {
	.compatible	= MEMFD_PRESERVE_POOL_COMPATIBLE,
	.version	= MEMFD_PRESERVE_POOL_VERSION,
	.ops		= &mfp_pool_ops,
	.owner		= THIS_MODULE,
};

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

/* Describe the run: one KHO call and one entry, or words if it is short. */
static int mfp_flush_run(struct memfd_preserved *p, struct mfp_run *run)
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

/*
 * Describe the folio of order @order at @index and @pfn, taking over the
 * caller's reference; order-0 folios gather in @run first.  @p->lock held.
 */
static int mfp_describe(struct memfd_preserved *p, struct mfp_run *run,
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
	p->nr_moving = 0;
}

static void mfp_put(struct memfd_preserved *p)
{
	if (refcount_dec_and_test(&p->ref))
		kfree_rcu(p, rcu);
}

/*
 * A memfd of fewer pages than this gets its page cache filled during
 * RETRIEVE_FD; a larger one in a work item after (see mfp_retrieve()).
 */
#define MFP_RESTORE_LATER_MIN	512
/* Folios taken per batch of the walk. */
#define MFP_WALK_BATCH		64
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
 * Whether @folio may stay where it is: not in CMA (the KHO scratch areas
 * the next kernel boots from) nor otherwise movable.  Order-0 folios of one
 * pageblock share the answer, cached in *@block and *@ok.
 */
static bool mfp_stays(struct folio *folio, unsigned long *block, bool *ok)
{
	unsigned long pb = folio_pfn(folio) >> pageblock_order;

	if (folio_test_large(folio))
		return folio_is_longterm_pinnable(folio);
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
		    !mfp_stays(folio, &block, &ok)) {
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
 * Note the folio at @index, of @nr pages, to be moved out of CMA and
 * described by mfp_move_fn(); adjacent folios share an entry.  @p->lock
 * held.
 */
static int mfp_note_move(struct memfd_preserved *p, pgoff_t index,
			 unsigned long nr)
{
	struct mfp_span *last = p->nr_moves ? &p->moves[p->nr_moves - 1] :
				NULL;

	if (last && last->last + 1 == index) {
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
	p->nr_moving += nr;
	return 0;
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
	int err;

	*next = index + 1;
	err = shmem_get_folio(file_inode(p->file), index, 0, &folio,
			      SGP_NOALLOC);
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

/*
 * Record @folio in @p->added, as pending or as moved out of CMA.  A
 * pending folio there at the same index left the page cache again (its
 * add was undone after memfd_preserve_folio_added()): it is released.
 * @p->lock held.
 */
static int mfp_added_store(struct memfd_preserved *p, struct folio *folio,
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
	p->nr_moving -= min(p->nr_moving, folio_nr_pages(folio));
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

/* Start mfp_move_fn() for what was noted, unless it runs; @p->lock held. */
static void mfp_move_start(struct memfd_preserved *p)
{
	if (p->moving || p->cancel || p->move_span == p->nr_moves)
		return;
	WRITE_ONCE(p->moving, true);
	queue_work(system_dfl_long_wq, &p->move_work);
}

/*
 * Move the folios PRESERVE_FD found in CMA (KHO's scratch areas, which the
 * next kernel boots from) and those added there since, and describe them,
 * after PRESERVE_FD returned: migrating is most of what preserving a memfd
 * would cost otherwise.  The memfd can be used meanwhile; freeze waits for
 * this.
 */
static void mfp_move_fn(struct work_struct *work)
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
				    file_inode(p->file)->i_ino, p->nr_moving,
				    err);
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
	hdr->seals = READ_ONCE(SHMEM_I(inode)->seals);
	hdr->mode = READ_ONCE(inode->i_mode) & 07777;
	hdr->uid = from_kuid(&init_user_ns, inode->i_uid);
	hdr->gid = from_kgid(&init_user_ns, inode->i_gid);
	hdr->flags = mfp_file_flags(p->file);
}

/**
 * memfd_preserve_folio_added() - a folio was added to a preserved memfd
 * @inode: the memfd's inode
 * @folio: the new folio, locked, in @inode's page cache
 *
 * Called by shmem_add_to_page_cache() for a new folio (not one swapped in)
 * when it found the memfd preserved under the i_pages lock.  Holds and
 * preserves @folio, to be described in the metadata at freeze; a folio in
 * CMA is noted instead, for mfp_move_fn() to move and describe.  Either
 * the walk in mfp_preserve() sees @folio or we see ->preserved; when both
 * do, the walk finds @folio in @added.
 *
 * Return: 0; -EPERM once frozen for the reboot (the write fails rather
 * than being lost); or -ENOMEM.  On error the caller takes @folio out of
 * the page cache again.
 */
int memfd_preserve_folio_added(struct inode *inode, struct folio *folio)
{
	struct shmem_inode_info *info = SHMEM_I(inode);
	struct memfd_preserved *p;
	int err = 0;

	rcu_read_lock();
	p = rcu_dereference(info->preserved);
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

/* ---- outgoing: the handler ops ---- */

static bool mfp_can_preserve(struct liveupdate_file_handler *handler,
			     struct file *file)
{
	const struct qstr *name = &file->f_path.dentry->d_name;

	/* hugetlb memfds are not supported (yet): ENOENT, as for any type. */
	if (!shmem_file(file))
		return false;
	/* memfds live on the internal mounts; tmpfs files do not. */
	if (!(file->f_path.mnt->mnt_sb->s_flags & SB_KERNMOUNT))
		return false;
	return name->len >= strlen(MFP_NAME_PREFIX) &&
	       !memcmp(name->name, MFP_NAME_PREFIX, strlen(MFP_NAME_PREFIX));
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
	mutex_init(&p->lock);
	refcount_set(&p->ref, 1);
	xa_init(&p->added);
	INIT_WORK(&p->move_work, mfp_move_fn);
	p->file = file;
	p->pool = pool;
	p->hdr = hdr;
	p->hdr_size = ALIGN(size, 8);
	hdr->magic = MEMFD_PRESERVE_MAGIC;
	hdr->header_size = sizeof(*hdr);
	hdr->name_len = name->len;
	memcpy(hdr->name, name->name, name->len);
	return p;
}

/*
 * Publish @p as @mapping's preserved state, or take it back (NULL), under
 * the i_pages lock: see memfd_preserve_mapping().
 */
static void mfp_publish(struct address_space *mapping,
			struct memfd_preserved *p)
{
	xa_lock_irq(&mapping->i_pages);
	rcu_assign_pointer(SHMEM_I(mapping->host)->preserved, p);
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

	if (set) {
		p->was_unevictable = mapping_unevictable(mapping);
		mapping_set_unevictable(mapping);
	} else if (!p->was_unevictable) {
		mapping_clear_unevictable(mapping);
		/* Back to the evictable lists: O(pages), not in a reboot. */
		shmem_unlock_mapping(mapping);
	}
}

static int mfp_preserve(struct liveupdate_file *lf)
{
	struct file *file = lf->file;
	struct inode *inode = file_inode(file);
	struct shmem_inode_info *info = SHMEM_I(inode);
	struct memfd_preserved *p;
	int err;

	/* A memfd retrieved a moment ago may still be getting its folios. */
	err = memfd_preserve_wait_restored(inode);
	if (err)
		return err;
	p = mfp_alloc(file);
	if (IS_ERR(p))
		return PTR_ERR(p);

	inode_lock(inode);
	if (rcu_access_pointer(info->preserved) ||
	    (info->flags & SHMEM_F_MAPPING_FROZEN)) {
		inode_unlock(inode);
		mfp_pool_free(p->pool, p->hdr);
		mfp_put(p);
		return -EBUSY;
	}
	/* No size change, no hole punched: no folio leaves the page cache. */
	shmem_freeze(inode, true);
	mfp_publish(inode->i_mapping, p);
	mfp_set_unevictable(p, true);
	err = mfp_scan(p, inode->i_mapping);
	mutex_lock(&p->lock);
	if (err) {
		mfp_publish(inode->i_mapping, NULL);
		p->dead = true;
		mutex_unlock(&p->lock);
		mfp_release(p);
		mfp_set_unevictable(p, false);
		shmem_freeze(inode, false);
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
	mfp_publish(inode->i_mapping, NULL);
	p->dead = true;
	mutex_unlock(&p->lock);
	mfp_release(p);
	mfp_set_unevictable(p, false);
	shmem_freeze(inode, false);
	inode_unlock(inode);
	lf->private = NULL;
	mfp_put(p);
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

/*
 * Wait for the move out of CMA, then freeze: from here on no folio is
 * added, nor noted to move.  Only if the reboot follows PRESERVE_FD
 * closely is there a wait.
 */
static int mfp_freeze_moved(struct memfd_preserved *p)
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

/* ---- incoming ---- */

static void mfp_put_folios(struct folio **folios, unsigned long nr)
{
	unsigned long i;

	for (i = 0; i < nr; i++) {
		folio_put(folios[i]);
		if (!(i % SWAP_CLUSTER_MAX))
			cond_resched();
	}
}

static void mfp_in_put_folios(struct mfp_in *in)
{
	mfp_put_folios(in->folios, in->nr);
	kvfree(in->folios);
	kvfree(in->indices);
	in->folios = NULL;
	in->indices = NULL;
	in->nr = 0;
	in->nr_pages = 0;
}

/**
 * struct mfp_parse - state of the walk over the incoming metadata
 * @in: what is being restored
 * @max: folios the header announced
 */
struct mfp_parse {
	struct mfp_in *in;
	unsigned long max;
};

static int mfp_in_add(struct mfp_parse *ps, struct folio *folio,
		      pgoff_t index)
{
	struct mfp_in *in = ps->in;

	if (in->nr == ps->max) {
		folio_put(folio);
		return -EBADMSG;
	}
	if (folio_test_large(folio))
		folio_set_large_rmappable(folio);
	in->folios[in->nr] = folio;
	in->indices[in->nr] = index;
	in->nr++;
	in->nr_pages += folio_nr_pages(folio);
	return 0;
}

static bool mfp_range_ok(u64 index, u64 nr)
{
	return nr && index < MFP_MAX_INDEX && nr <= MFP_MAX_INDEX - index;
}

static int mfp_parse_run(struct mfp_parse *ps,
			 const struct memfd_preserve_run *run)
{
	const struct memfd_preserve_entry *e = &run->hdr;
	struct folio *folio;
	struct page *page;
	u32 i;
	int err;

	if (!mfp_range_ok(e->index, e->nr) ||
	    run->pfn > MEMFD_PRESERVE_PFN_MASK ||
	    run->pfn + e->nr - 1 > MEMFD_PRESERVE_PFN_MASK)
		return -EBADMSG;
	if (e->order) {
		if (e->order > MAX_PAGECACHE_ORDER || e->nr != 1U << e->order ||
		    !IS_ALIGNED(e->index, e->nr) ||
		    !IS_ALIGNED(run->pfn, e->nr))
			return -EBADMSG;
		folio = kho_restore_folio(PFN_PHYS(run->pfn));
		if (!folio)
			return -EBADMSG;
		if (folio_order(folio) != e->order) {
			folio_put(folio);
			return -EBADMSG;
		}
		return mfp_in_add(ps, folio, e->index);
	}

	if (e->nr > ps->max - ps->in->nr)
		return -EBADMSG;
	page = kho_restore_pages(PFN_PHYS(run->pfn), e->nr);
	if (!page)
		return -EBADMSG;
	for (i = 0; i < e->nr; i++) {
		err = mfp_in_add(ps, pfn_folio(run->pfn + i), e->index + i);
		if (err) {
			while (++i < e->nr)
				put_page(pfn_to_page(run->pfn + i));
			return err;
		}
		if (!(i % MFP_RUN_MAX))
			cond_resched();
	}
	return 0;
}

static int mfp_parse_pages(struct mfp_parse *ps,
			   const struct memfd_preserve_pages *pages)
{
	u64 index = pages->hdr.index, word, pfn;
	struct folio *folio;
	u32 i;
	int err;

	if (pages->hdr.order || !pages->hdr.nr)
		return -EBADMSG;
	for (i = 0; i < pages->hdr.nr; i++) {
		word = pages->words[i];
		pfn = word & MEMFD_PRESERVE_PFN_MASK;
		index += word >> MEMFD_PRESERVE_PFN_BITS;
		if (!mfp_range_ok(index, 1))
			return -EBADMSG;
		folio = kho_restore_folio(PFN_PHYS(pfn));
		if (!folio)
			return -EBADMSG;
		if (folio_order(folio)) {
			folio_put(folio);
			return -EBADMSG;
		}
		err = mfp_in_add(ps, folio, index);
		if (err)
			return err;
		index++;
	}
	return 0;
}

/* Parse and restore the entries of one chunk. */
static int mfp_parse_chunk(struct mfp_parse *ps,
			   const struct memfd_preserve_chunk *c, size_t room)
{
	const struct memfd_preserve_entry *e;
	size_t off, len;
	int err;

	/*
	 * The writer makes a chunk for an entry: an empty one is damage, and
	 * every chunk restores a folio at least, so that a cycle in the chain
	 * ends at a folio restored already.
	 */
	if (!c->used || c->used > room || !IS_ALIGNED(c->used, 8))
		return -EBADMSG;
	for (off = 0; off < c->used; off += len) {
		cond_resched();
		if (c->used - off < sizeof(*e))
			return -EBADMSG;
		e = (const void *)(c + 1) + off;
		if (e->reserved)
			return -EBADMSG;
		if (e->type == MEMFD_PRESERVE_ENTRY_RUN) {
			len = sizeof(struct memfd_preserve_run);
			if (c->used - off < len)
				return -EBADMSG;
			err = mfp_parse_run(ps, (const void *)e);
		} else if (e->type == MEMFD_PRESERVE_ENTRY_PAGES) {
			len = struct_size_t(struct memfd_preserve_pages,
					    words, e->nr);
			if (c->used - off < len)
				return -EBADMSG;
			err = mfp_parse_pages(ps, (const void *)e);
		} else {
			return -EBADMSG;
		}
		if (err)
			return err;
	}
	return 0;
}

/* @name: where the writer put the name, after its header (header_size). */
static int mfp_parse_header(struct mfp_in *in,
			    const struct memfd_preserve_file *hdr,
			    const char *name)
{
	if (hdr->magic != MEMFD_PRESERVE_MAGIC || hdr->reserved ||
	    name[hdr->name_len] ||
	    strnlen(name, hdr->name_len) != hdr->name_len ||
	    strncmp(name, MFP_NAME_PREFIX, strlen(MFP_NAME_PREFIX)) ||
	    hdr->seals & ~MFP_SEALS || hdr->mode & ~07777 ||
	    hdr->flags & ~MEMFD_PRESERVE_F_ALL ||
	    !(hdr->flags & (MEMFD_PRESERVE_F_READ | MEMFD_PRESERVE_F_WRITE)) ||
	    hdr->size > MAX_LFS_FILESIZE || hdr->pos > MAX_LFS_FILESIZE ||
	    hdr->nr_folios > hdr->nr_pages ||
	    hdr->nr_chunks > hdr->nr_folios ||
	    /* Not totalram: preserved pages join it only once restored. */
	    hdr->nr_pages > get_num_physpages() ||
	    !hdr->chunks != !hdr->nr_chunks)
		return -EBADMSG;
	in->uid = make_kuid(&init_user_ns, hdr->uid);
	in->gid = make_kgid(&init_user_ns, hdr->gid);
	if (!uid_valid(in->uid) || !gid_valid(in->gid))
		return -EBADMSG;
	in->size = hdr->size;
	in->pos = hdr->pos;
	in->seals = hdr->seals;
	in->mode = hdr->mode;
	in->flags = hdr->flags;
	memcpy(in->name, name, hdr->name_len + 1);
	return 0;
}

/*
 * The chunk at @phys: in the pool, or a block of its own, restored into
 * *@foliop for the caller to free.  NULL if it is neither.
 */
static const struct memfd_preserve_chunk *
mfp_in_chunk(struct mfp_pool_in *pool, u64 phys, struct folio **foliop)
{
	const struct memfd_preserve_chunk *c;
	struct folio *folio;

	*foliop = NULL;
	c = mfp_pool_in_ptr(pool, phys, sizeof(*c));
	if (c)
		return c->size >= MFP_CHUNK_MIN && c->size < PAGE_SIZE &&
		       mfp_pool_in_ptr(pool, phys, c->size) ? c : NULL;
	if (!PAGE_ALIGNED(phys))
		return NULL;
	folio = kho_restore_folio(phys);
	if (!folio)
		return NULL;
	c = folio_address(folio);
	if (c->size != folio_size(folio)) {
		folio_put(folio);
		return NULL;
	}
	*foliop = folio;
	return c;
}

/* Restore everything from KHO into @in, freeing the chunks of their own. */
static int mfp_in_restore(struct mfp_in *in, struct mfp_pool_in *pool,
			  u64 phys)
{
	const struct memfd_preserve_file *hdr;
	const struct memfd_preserve_chunk *c;
	struct mfp_parse ps = { .in = in };
	u64 nr_chunks, nr_pages, i;
	struct folio *folio;
	int err;

	hdr = mfp_pool_in_ptr(pool, phys, sizeof(*hdr));
	/* A later writer's longer header: what we do not know is ignored. */
	if (!hdr || hdr->header_size < sizeof(*hdr) ||
	    !IS_ALIGNED(hdr->header_size, 8) ||
	    hdr->name_len >= MEMFD_PRESERVE_NAME_LENGTH ||
	    !mfp_pool_in_ptr(pool, phys, (size_t)hdr->header_size +
					 hdr->name_len + 1))
		return -EBADMSG;
	err = mfp_parse_header(in, hdr, (const char *)hdr + hdr->header_size);
	if (err)
		return err;
	ps.max = hdr->nr_folios;
	nr_chunks = hdr->nr_chunks;
	nr_pages = hdr->nr_pages;
	/* The last allocation: nothing after it returns -ENOMEM. */
	in->folios = kvmalloc_array(ps.max ?: 1, sizeof(*in->folios),
				    GFP_KERNEL);
	in->indices = kvmalloc_array(ps.max ?: 1, sizeof(*in->indices),
				     GFP_KERNEL);
	if (!in->folios || !in->indices)
		return -ENOMEM;

	for (i = 0, phys = hdr->chunks; phys; i++) {
		if (i == nr_chunks)
			return -EBADMSG;
		c = mfp_in_chunk(pool, phys, &folio);
		if (!c)
			return -EBADMSG;
		err = mfp_parse_chunk(&ps, c, c->size - sizeof(*c));
		phys = c->next;
		if (folio)
			folio_put(folio);
		if (err)
			return err;
	}
	if (i != nr_chunks || in->nr != ps.max || in->nr_pages != nr_pages)
		return -EBADMSG;
	return 0;
}

/* The incoming state, restored on first use. */
static struct mfp_in *mfp_in_get(struct liveupdate_file *lf)
{
	struct mfp_in *in = lf->private;
	struct mfp_pool_in *pool;
	int err;

	if (in)
		return in->err ? ERR_PTR(in->err) : in;
	if (lf->version != MEMFD_PRESERVE_VERSION)
		return ERR_PTR(-EOPNOTSUPP);
	/* Not part of the sticky state: a failure here can be retried. */
	err = liveupdate_flb_get_incoming(&mfp_pool_flb, (void **)&pool);
	if (err)
		return ERR_PTR(err == -ENOENT ? -EBADMSG : err);
	in = kzalloc_obj(*in);
	if (!in)
		return ERR_PTR(-ENOMEM);
	lf->private = in;
	err = mfp_in_restore(in, pool, lf->data);
	if (err == -ENOMEM) {
		/* Nothing was restored yet (see mfp_in_restore()): retry. */
		mfp_in_put_folios(in);
		kfree(in);
		lf->private = NULL;
		return ERR_PTR(err);
	}
	if (err) {
		/* Partly consumed: what was restored is freed, for good. */
		mfp_in_put_folios(in);
		in->err = err;
		pr_warn("cannot restore token %llu: %pe\n", lf->token,
			ERR_PTR(err));
		return ERR_PTR(err);
	}
	return in;
}

/*
 * debugfs fail_memfd_restore: stop filling a memfd's page cache half way
 * and fail, as a damaged handover or a lack of memory would.
 */
static DECLARE_FAULT_ATTR(fail_memfd_restore);

/* Uncharge the folios @from to @to (excluded) of @in. */
static void mfp_uncharge(struct mfp_in *in, unsigned long from,
			 unsigned long to)
{
	while (from < to)
		mem_cgroup_uncharge(in->folios[from++]);
}

/*
 * Charge every folio of @in to the caller's memcg, as if the caller had
 * written them.  Done in RETRIEVE_FD even when the folios go into the page
 * cache later, so that a memcg limit fails the retrieve, not the memfd.
 */
static int mfp_charge(struct mfp_in *in)
{
	unsigned long i;
	int err;

	for (i = 0; i < in->nr; i++) {
		err = mem_cgroup_charge(in->folios[i], current->mm, GFP_KERNEL);
		if (err) {
			mfp_uncharge(in, 0, i);
			return err;
		}
	}
	return 0;
}

/*
 * Fill @inode's page cache with the folios of @in, charged already, and
 * account them to the inode, whose blocks are reserved already; put the
 * ones added on the LRU.  Nobody can look the folios up before they are
 * in the page cache: hence the non-atomic flag updates.
 *
 * On error, if nobody can see the memfd yet (!@visible), every folio is
 * removed again and stays in @in, still charged, for a retry.  Once the
 * memfd is visible, fault-around may have mapped a folio that was added:
 * those are truncated the way shmem truncates, unmapping them first, and
 * the others are uncharged; the memfd then fails every access with EIO.
 * The reserved blocks of the folios not in the page cache are given back.
 */
static int mfp_fill(struct inode *inode, struct mfp_in *in, bool visible)
{
	struct address_space *mapping = inode->i_mapping;
	unsigned long added, want, i;
	struct folio *folio;
	int err;

	for (i = 0; i < in->nr; i++) {
		folio = in->folios[i];
		__folio_set_swapbacked(folio);
		__folio_mark_uptodate(folio);
		/* Shmem folios are dirty: clean ones would just be dropped. */
		folio_mark_dirty(folio);
	}
	want = should_fail(&fail_memfd_restore, 1) ? in->nr / 2 : in->nr;
	added = shmem_add_restored_folios(mapping, in->folios, in->indices,
					  want, mapping_gfp_mask(mapping), &err);
	if (!err && added < in->nr)
		err = -ENOMEM;
	if (err && !visible) {
		for (i = 0; i < added; i++) {
			folio = in->folios[i];
			folio_lock(folio);
			filemap_remove_folio(folio);
			folio_unlock(folio);
		}
		added = 0;
	}
	for (i = added; err && i < in->nr; i++)
		folio_clear_dirty(in->folios[i]);
	if (err && visible)
		mfp_uncharge(in, added, in->nr);
	/* Takes the blocks back for the folios that are not in the cache. */
	shmem_recalc_inode(inode, in->nr_pages, 0);
	/*
	 * Off the LRU, nothing can swap them out: the truncate meets no swap
	 * entry, whose swap-in would wait for the gate we keep closed.  Nor
	 * the inode lock, which a truncate may hold while it waits there.
	 */
	if (err && visible)
		shmem_truncate_range(inode, 0, (uoff_t)-1);
	else
		folios_add_lru(in->folios, added);
	/* Overlapping entries. */
	return err == -EEXIST ? -EBADMSG : err;
}

/* Restores that finished in the background, and accesses that waited. */
static atomic_long_t mfp_nr_background;
static atomic_long_t mfp_nr_waits;

/**
 * struct mfp_restore - a retrieved memfd getting its folios in the background
 * @work: runs mfp_restore_fn()
 * @inode: the new memfd's inode; not evicted before the work is done
 * @memcg: the retrieving task's memcg, for the page cache's own allocations
 * @in: the folios, charged already
 *
 * The work holds no reference to the memfd: userspace may close it at
 * once, and then shmem_evict_inode() waits for the work to be done.
 */
struct mfp_restore {
	struct work_struct work;
	struct inode *inode;
	struct mem_cgroup *memcg;
	struct mfp_in *in;
};

/*
 * Open the gate memfd_preserve_wait_restored() keeps, or with @err fail
 * every access.  The last touch of @inode: once open, it may be evicted.
 * Nothing else changes the flags while they hold %SHMEM_F_RESTORING: all
 * who would wait for the gate first.
 */
static void mfp_restore_done(struct inode *inode, int err)
{
	struct shmem_inode_info *info = SHMEM_I(inode);
	unsigned long flags = READ_ONCE(info->flags) & ~SHMEM_F_RESTORING;

	if (err)
		flags |= SHMEM_F_RESTORE_FAILED;
	/* The folios first: pairs with memfd_preserve_wait_restored(). */
	store_release_wake_up(&info->flags, flags);
}

static void mfp_restore_fn(struct work_struct *work)
{
	struct mfp_restore *r = container_of(work, struct mfp_restore, work);
	struct inode *inode = r->inode;
	struct mfp_in *in = r->in;
	struct mem_cgroup *old;
	int err;

	/* The xarray's nodes are charged to the retrieving task's memcg too. */
	old = set_active_memcg(r->memcg);
	err = mfp_fill(inode, in, true);
	set_active_memcg(old);
	mem_cgroup_put(r->memcg);
	if (err)
		pr_err("%s (inode %llu): cannot restore its folios: %pe; it fails with EIO\n",
		       in->name, (u64)inode->i_ino, ERR_PTR(err));
	/* The page cache holds its folios now: ours go before the gate. */
	mfp_in_put_folios(in);
	kfree(in);
	atomic_long_inc(&mfp_nr_background);
	mfp_restore_done(inode, err);
	kfree(r);
}

static bool mfp_restoring(struct shmem_inode_info *info)
{
	/* The folios after the flag: pairs with mfp_restore_done(). */
	return smp_load_acquire(&info->flags) & SHMEM_F_RESTORING;
}

static int mfp_wait_restoring(struct shmem_inode_info *info, bool killable)
{
	atomic_long_inc(&mfp_nr_waits);
	if (!killable) {
		wait_var_event(&info->flags, !mfp_restoring(info));
		return 0;
	}
	return wait_var_event_killable(&info->flags, !mfp_restoring(info));
}

/**
 * __memfd_preserve_wait_restored() - wait for a memfd's restored folios
 * @inode: a shmem inode with %SHMEM_F_RESTORING or %SHMEM_F_RESTORE_FAILED
 *
 * Called by shmem (through memfd_preserve_wait_restored()) before anything
 * that looks at or changes the page cache of a memfd whose folios may
 * still be on their way in, from the work item RETRIEVE_FD queued.
 *
 * Return: 0 once they are all in; -EIO if they could not be put in;
 * -EINTR if a fatal signal came first.
 */
int __memfd_preserve_wait_restored(struct inode *inode)
{
	struct shmem_inode_info *info = SHMEM_I(inode);

	if (mfp_restoring(info) && mfp_wait_restoring(info, true))
		return -EINTR;
	return READ_ONCE(info->flags) & SHMEM_F_RESTORE_FAILED ? -EIO : 0;
}

/**
 * __memfd_preserve_wait_evict() - wait before evicting a restoring memfd
 * @inode: a shmem inode being evicted, with %SHMEM_F_RESTORING
 *
 * Called by shmem_evict_inode() (through memfd_preserve_wait_evict()):
 * the work item filling the page cache uses the inode until it is done.
 * Not killable: the inode must not go before.
 */
void __memfd_preserve_wait_evict(struct inode *inode)
{
	mfp_wait_restoring(SHMEM_I(inode), false);
}

/*
 * The file to hand out: @file itself if the memfd was open read-write, else
 * a file of its own on the same inode, open read-only or write-only as it
 * was; with the status flags it had.
 */
static struct file *mfp_open_as(struct file *file, u32 flags)
{
	u32 rw = flags & (MEMFD_PRESERVE_F_READ | MEMFD_PRESERVE_F_WRITE);
	struct file *as = file;

	if (rw != (MEMFD_PRESERVE_F_READ | MEMFD_PRESERVE_F_WRITE)) {
		as = dentry_open(&file->f_path, O_LARGEFILE |
				 (rw == MEMFD_PRESERVE_F_READ ? O_RDONLY :
							       O_WRONLY),
				 current_cred());
		if (IS_ERR(as))
			return as;
	}
	spin_lock(&as->f_lock);
	if (flags & MEMFD_PRESERVE_F_APPEND)
		as->f_flags |= O_APPEND;
	if (flags & MEMFD_PRESERVE_F_NONBLOCK)
		as->f_flags |= O_NONBLOCK;
	as->f_iocb_flags = iocb_flags(as);
	spin_unlock(&as->f_lock);
	return as;
}

/*
 * Charge the folios and reserve their blocks, then either fill the page
 * cache now (a small memfd) or close the gate and leave that to @r.
 */
static int mfp_populate(struct inode *inode, struct mfp_in *in,
			struct mfp_restore *r)
{
	int err;

	err = mfp_charge(in);
	if (err)
		return err;
	err = shmem_inode_acct_blocks(inode, in->nr_pages);
	if (err)
		goto uncharge;
	if (r) {
		/* Nobody else sees the inode yet. */
		SHMEM_I(inode)->flags |= SHMEM_F_RESTORING;
		return 0;
	}
	err = mfp_fill(inode, in, false);
	if (!err)
		return 0;
uncharge:
	mfp_uncharge(in, 0, in->nr);
	return err;
}

static int mfp_retrieve(struct liveupdate_file *lf)
{
	struct mfp_restore *r = NULL;
	struct file *file, *as;
	struct inode *inode;
	struct mfp_in *in;
	int err;

	in = mfp_in_get(lf);
	if (IS_ERR(in))
		return PTR_ERR(in);

	/* Without a work item the folios go in now, that is all. */
	if (in->nr_pages >= MFP_RESTORE_LATER_MIN)
		r = kmalloc_obj(*r);
	file = memfd_alloc_file(in->name, 0);
	if (IS_ERR(file)) {
		err = PTR_ERR(file);
		goto err_free;
	}
	as = mfp_open_as(file, in->flags);
	if (IS_ERR(as)) {
		err = PTR_ERR(as);
		goto err_fput;
	}
	inode = file_inode(file);

	inode_lock(inode);
	err = mfp_populate(inode, in, r);
	if (err) {
		inode_unlock(inode);
		if (as != file)
			fput(as);
		goto err_fput;
	}
	i_size_write(inode, in->size);
	inode->i_mode = S_IFREG | in->mode;
	inode->i_uid = in->uid;
	inode->i_gid = in->gid;
	SHMEM_I(inode)->seals = in->seals;
	/* A fresh file has no writable mapping: this cannot fail. */
	if (in->seals & F_SEAL_WRITE)
		WARN_ON_ONCE(mapping_deny_writable(file->f_mapping));
	inode_unlock(inode);
	as->f_pos = in->pos;
	lf->private = NULL;
	lf->file = as;

	if (as != file)
		fput(file);
	if (r) {
		INIT_WORK(&r->work, mfp_restore_fn);
		r->inode = inode;
		r->memcg = get_mem_cgroup_from_mm(current->mm);
		r->in = in;
		queue_work(system_dfl_long_wq, &r->work);
		return 0;
	}
	mfp_in_put_folios(in);
	kfree(in);
	return 0;

err_fput:
	fput(file);
err_free:
	kfree(r);
	return err;
}

static void mfp_finish(struct liveupdate_file *lf)
{
	struct mfp_in *in;

	if (lf->file)
		return;
	/* Never retrieved: restore what is left only to free it. */
	mfp_in_get(lf);
	in = lf->private;
	if (in) {
		mfp_in_put_folios(in);
		kfree(in);
	}
	lf->private = NULL;
}

static const struct liveupdate_file_ops mfp_ops = {
	.can_preserve	= mfp_can_preserve,
	.preserve	= mfp_preserve,
	.unpreserve	= mfp_unpreserve,
	.freeze		= mfp_freeze,
	.unfreeze	= mfp_unfreeze,
	.settling	= mfp_settling,
	.retrieve	= mfp_retrieve,
	.finish		= mfp_finish,
};

static struct liveupdate_file_handler mfp_handler = {
	.compatible	= MEMFD_PRESERVE_COMPATIBLE,
	.version	= MEMFD_PRESERVE_VERSION,
	.ops		= &mfp_ops,
	.owner		= THIS_MODULE,
};

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
			   used, alloc, p->nr_moving);
	}
	seq_printf(m, "# restored_in_background %ld accesses_waited %ld\n",
		   atomic_long_read(&mfp_nr_background),
		   atomic_long_read(&mfp_nr_waits));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(mfp_stats);

static int __init memfd_preserve_init(void)
{
	int err = liveupdate_register_file_handler(&mfp_handler);

	if (err) {
		pr_err("cannot register the memfd handler: %d\n", err);
		return err;
	}
	err = liveupdate_register_flb(&mfp_handler, &mfp_pool_flb);
	if (err) {
		pr_err("cannot bind the metadata pool: %d\n", err);
		liveupdate_unregister_file_handler(&mfp_handler);
		return err;
	}
	debugfs_create_file("memfd_preserve", 0400, NULL, NULL,
			    &mfp_stats_fops);
	fault_create_debugfs_attr("fail_memfd_restore", NULL,
				  &fail_memfd_restore);
	return 0;
}
late_initcall(memfd_preserve_init);
