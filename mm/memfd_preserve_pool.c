// SPDX-License-Identifier: GPL-2.0
/*
 * memfd preservation: the metadata pool, an FLB shared by every preserved
 * memfd.  Outgoing, it hands out the small objects of the metadata (each
 * memfd's header and first chunks) from preserved pages linked into a
 * list; incoming, it restores that list for the retrieves.
 */
#define pr_fmt(fmt) "memfd_preserve: " fmt

#include <linux/cleanup.h>
#include <linux/io.h>
#include <linux/kexec_handover.h>
#include <linux/list.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "memfd_preserve_internal.h"

/* Room for objects in a pool page, after its header. */
#define MFP_POOL_ROOM		(PAGE_SIZE - \
				 sizeof(struct memfd_preserve_pool_page))

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
 * @huge: the count of preserved huge pages handed to the next kernel's
 *	hugetlb, once a hugetlb memfd is preserved
 */
struct mfp_pool {
	struct mutex lock;	/* see the kernel-doc above */
	struct list_head pages;
	struct xarray by_pfn;
	struct mfp_pool_page *cur;
	struct memfd_preserve_hugetlb_pool *huge;
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

/**
 * mfp_pool_alloc() - allocate an object of the outgoing metadata
 * @pool: the outgoing pool
 * @len: its size, at most %MFP_POOL_ROOM
 *
 * Return: @len zeroed bytes, 8-byte aligned, within one preserved pool
 * page; or an ERR_PTR().
 */
void *mfp_pool_alloc(struct mfp_pool *pool, size_t len)
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

/**
 * mfp_pool_free() - free an object of mfp_pool_alloc()
 * @pool: the pool it came from
 * @obj: the object
 *
 * A page left without objects is freed, unless it is the one objects are
 * allocated from: that one starts over.
 */
void mfp_pool_free(struct mfp_pool *pool, void *obj)
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
	if (pool->huge) {
		kho_remove_subtree(pool->huge);
		kho_unpreserve_free(pool->huge);
	}
	xa_destroy(&pool->by_pfn);
	mutex_destroy(&pool->lock);
	kfree(pool);
}

static int mfp_pool_freeze(struct liveupdate_flb *flb,
			   struct liveupdate_flb_state *out)
{
	struct mfp_pool *pool = out->obj;
	struct memfd_preserve_hugetlb_pool *huge;
	struct mfp_pool_page *first;

	scoped_guard(mutex, &pool->lock) {
		first = list_first_entry_or_null(&pool->pages,
						 struct mfp_pool_page, node);
		out->data = first ? virt_to_phys(first->base) : 0;
		huge = pool->huge;
	}
	/* The files are frozen: their number of huge pages is final. */
	if (huge)
		mfp_count_hugetlb(huge);
	return 0;
}

/*
 * A reboot that failed after freeze: the next freeze counts again, and a
 * kexec that skips freeze must not find old numbers.  The core serializes
 * freeze and unfreeze; the lock only orders this against mfp_pool_hugetlb().
 */
static void mfp_pool_unfreeze(struct liveupdate_flb *flb,
			      struct liveupdate_flb_state *out)
{
	struct mfp_pool *pool = out->obj;

	guard(mutex)(&pool->lock);
	if (pool->huge)
		memset(pool->huge->pages, 0, sizeof(pool->huge->pages));
}

/**
 * mfp_pool_hugetlb() - hand the count of preserved huge pages over
 * @pool: the outgoing pool
 *
 * The next kernel's hugetlb sizes its boot pool before any memfd is
 * retrieved: the first hugetlb memfd preserved adds the KHO subtree it
 * reads then, filled in at freeze.  It goes with the pool.  Without it
 * the next kernel allocates its whole boot pool, so a failure here only
 * warns.
 */
void mfp_pool_hugetlb(struct mfp_pool *pool)
{
	struct memfd_preserve_hugetlb_pool *huge;
	int err;

	guard(mutex)(&pool->lock);
	if (pool->huge)
		return;
	huge = kho_alloc_preserve(sizeof(*huge));
	err = PTR_ERR_OR_ZERO(huge);
	if (!err) {
		huge->magic = MEMFD_PRESERVE_HUGETLB_POOL_MAGIC;
		err = kho_add_subtree(MEMFD_PRESERVE_HUGETLB_POOL_NODE, huge,
				      sizeof(*huge));
		if (err)
			kho_unpreserve_free(huge);
	}
	if (err) {
		pr_warn_ratelimited("cannot hand over the count of preserved huge pages (%d): the next kernel's boot pools will not count them\n",
				    err);
		return;
	}
	pool->huge = huge;
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

/**
 * mfp_pool_in_ptr() - find incoming metadata in the pool
 * @pool: the incoming pool
 * @phys: where the previous kernel put it
 * @len: its size
 *
 * Return: @len bytes at @phys, if they lie in one incoming pool page;
 * else NULL.
 */
void *mfp_pool_in_ptr(struct mfp_pool_in *pool, u64 phys, size_t len)
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
	.unfreeze	= mfp_pool_unfreeze,
	.retrieve	= mfp_pool_retrieve,
	.finish		= mfp_pool_finish,
};

struct liveupdate_flb mfp_pool_flb = {
	.compatible	= MEMFD_PRESERVE_POOL_COMPATIBLE,
	.version	= MEMFD_PRESERVE_POOL_VERSION,
	.ops		= &mfp_pool_ops,
	.owner		= THIS_MODULE,
};
