// SPDX-License-Identifier: GPL-2.0
/*
 * memfd preservation: the incoming side.  Parses and checks a preserved
 * memfd's metadata, restores its folios from KHO (in the background after
 * boot, or in RETRIEVE_FD if that comes first), charges them to the
 * retriever's memory cgroup and fills the new memfd's page cache: for a
 * large memfd in a work item, which shmem's accesses wait for.
 */
#define pr_fmt(fmt) "memfd_preserve: " fmt

#include <linux/cleanup.h>
#include <linux/fault-inject.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kexec_handover.h>
#include <linux/memcontrol.h>
#include <linux/memfd.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>
#include <linux/swap.h>
#include <linux/wait_bit.h>

#include "internal.h"
#include "memfd_preserve_internal.h"

#define MFP_SEALS		(F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | \
				 F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | \
				 F_SEAL_EXEC)
#define MFP_MAX_INDEX		((u64)(MAX_LFS_FILESIZE >> PAGE_SHIFT))

/*
 * A memfd of fewer pages than this gets its page cache filled during
 * RETRIEVE_FD; a larger one in a work item after (see mfp_retrieve()).
 */
#define MFP_RESTORE_LATER_MIN	512

static void mfp_put_folios(struct folio **folios, unsigned long nr)
{
	unsigned long i;

	for (i = 0; i < nr; i++) {
		folio_put(folios[i]);
		if (!(i % SWAP_CLUSTER_MAX))
			cond_resched();
	}
}

/**
 * mfp_in_put_folios() - drop the folios of an incoming memfd
 * @in: the incoming memfd
 *
 * Drop our reference on every folio of @in: a folio in a page cache by now
 * stays there, the others are freed.
 */
void mfp_in_put_folios(struct mfp_in *in)
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

/*
 * A folio KHO gave back for an entry that turns out damaged: not freed,
 * as what it holds may still be a device's DMA target (a file that refers
 * to the memfd is pending); it stays allocated until the next update.
 */
static void mfp_keep_damaged(struct folio *folio)
{
	pr_warn_ratelimited("a damaged entry names PFN %#lx: kept allocated\n",
			    folio_pfn(folio));
}

static int mfp_in_add(struct mfp_parse *ps, struct folio *folio,
		      pgoff_t index)
{
	struct mfp_in *in = ps->in;

	if (in->nr == ps->max) {
		mfp_keep_damaged(folio);
		return -EBADMSG;
	}
	/* hugetlb folios are not rmappable the way THPs are. */
	if (folio_test_large(folio) && !in->huge_order)
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
	/* A hugetlb memfd has runs of one huge page each, of its order. */
	if (ps->in->huge_order && e->order != ps->in->huge_order)
		return -EBADMSG;
	if (e->order) {
		if ((e->order > MAX_PAGECACHE_ORDER && !ps->in->huge_order) ||
		    e->nr != 1U << e->order ||
		    !IS_ALIGNED(e->index, e->nr) ||
		    !IS_ALIGNED(run->pfn, e->nr))
			return -EBADMSG;
		folio = kho_restore_folio(PFN_PHYS(run->pfn));
		if (!folio)
			return -EBADMSG;
		if (folio_order(folio) != e->order) {
			mfp_keep_damaged(folio);
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
		/* Cannot fail for lack of room: checked above. */
		err = mfp_in_add(ps, pfn_folio(run->pfn + i), e->index + i);
		if (err)
			return err;
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

	if (pages->hdr.order || !pages->hdr.nr || ps->in->huge_order)
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
			mfp_keep_damaged(folio);
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

/*
 * A hugetlb memfd's page size: that of x86's 2 MiB or 1 GiB pages, or of
 * any other architecture's, above the base page and at most 16 GiB.
 */
static bool mfp_huge_shift_ok(unsigned int shift, bool hugetlb)
{
	if (!hugetlb)
		return !shift;
	return shift > PAGE_SHIFT && shift <= 34;
}

/*
 * @name: where the writer put the name, after its header (header_size).
 * @hugetlb: the file is a hugetlb memfd's.
 */
static int mfp_parse_header(struct mfp_in *in,
			    const struct memfd_preserve_file *hdr,
			    const char *name, bool hugetlb)
{
	if (hdr->magic != MEMFD_PRESERVE_MAGIC || hdr->reserved ||
	    !mfp_huge_shift_ok(hdr->huge_shift, hugetlb) ||
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
	in->huge_order = hugetlb ? hdr->huge_shift - PAGE_SHIFT : 0;
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
			  u64 phys, bool hugetlb, gfp_t gfp)
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
	err = mfp_parse_header(in, hdr, (const char *)hdr + hdr->header_size,
			       hugetlb);
	if (err)
		return err;
	ps.max = hdr->nr_folios;
	nr_chunks = hdr->nr_chunks;
	nr_pages = hdr->nr_pages;
	/* The last allocation: nothing after it returns -ENOMEM. */
	in->folios = kvmalloc_array(ps.max ?: 1, sizeof(*in->folios), gfp);
	in->indices = kvmalloc_array(ps.max ?: 1, sizeof(*in->indices), gfp);
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

static struct mfp_in *__mfp_in_get(struct liveupdate_file *lf, gfp_t gfp)
{
	bool hugetlb = strcmp(lf->handler->compatible, MEMFD_PRESERVE_COMPATIBLE);
	struct mfp_in *in = lf->private;
	struct mfp_pool_in *pool;
	int err;

	if (in)
		return in->err ? ERR_PTR(in->err) : in;
	/* Both formats are at version 1. */
	if (lf->version != (hugetlb ? MEMFD_PRESERVE_HUGETLB_VERSION :
				      MEMFD_PRESERVE_VERSION))
		return ERR_PTR(-EOPNOTSUPP);
	/* Not part of the sticky state: a failure here can be retried. */
	err = liveupdate_flb_get_incoming(&mfp_pool_flb, (void **)&pool);
	if (err)
		return ERR_PTR(err == -ENOENT ? -EBADMSG : err);
	in = kzalloc_obj(*in, gfp);
	if (!in)
		return ERR_PTR(-ENOMEM);
	lf->private = in;
	err = mfp_in_restore(in, pool, lf->data, hugetlb, gfp);
	if (err == -ENOMEM) {
		/* Nothing was restored yet (see mfp_in_restore()): retry. */
		mfp_in_put_folios(in);
		kfree(in);
		lf->private = NULL;
		return ERR_PTR(err);
	}
	if (err) {
		/*
		 * Damaged: the retrieve fails for good.  What was restored
		 * stays allocated until finish, which frees it unless a file
		 * that refers to this one (a device's DMA) still needs it.
		 */
		in->err = err;
		pr_warn("cannot restore token %llu: %pe\n", lf->token,
			ERR_PTR(err));
		return ERR_PTR(err);
	}
	return in;
}

/**
 * mfp_in_get() - the incoming state of a memfd, restored on first use
 * @lf: the incoming file, of either memfd handler
 *
 * Return: the state, its folios restored from KHO; or an error: sticky
 * (-EBADMSG) if the handover is damaged, else the retrieve can be retried.
 */
struct mfp_in *mfp_in_get(struct liveupdate_file *lf)
{
	return __mfp_in_get(lf, GFP_KERNEL);
}

/* Memfds whose folios came back from KHO before anyone asked for them. */
atomic_long_t mfp_nr_preloaded;

/**
 * mfp_preload() - &liveupdate_file_ops.preload: restore the folios early
 * @lf: the incoming file, of either memfd handler
 *
 * Restoring the folios from KHO is most of a retrieve's work, one struct
 * page at a time for a hugetlb page.  Done here, in the background after
 * boot, it is no longer in the VMM's way.  A failure is sticky or
 * retried by mfp_in_get() in the retrieve, which reports it.
 */
void mfp_preload(struct liveupdate_file *lf)
{
	/* Nobody asked yet: no OOM kill for it, a retrieve can retry. */
	if (!IS_ERR(__mfp_in_get(lf, GFP_KERNEL | __GFP_RETRY_MAYFAIL |
				     __GFP_NOWARN)))
		atomic_long_inc(&mfp_nr_preloaded);
}

/*
 * debugfs fail_memfd_restore: stop filling a memfd's page cache half way
 * and fail, as a damaged handover or a lack of memory would.
 */
DECLARE_FAULT_ATTR(fail_memfd_restore);

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
atomic_long_t mfp_nr_background;
atomic_long_t mfp_nr_waits;

/**
 * struct mfp_restore - a retrieved memfd getting its folios in the background
 * @work: runs mfp_restore_fn()
 * @inode: the new memfd's inode; not evicted before the work is done
 * @memcg: the retrieving task's memcg, for the page cache's own allocations
 * @in: the folios, charged already
 * @hold: where @in goes once done, if the memfd is held for its dependents
 *
 * The work holds no reference to the memfd: userspace may close it at
 * once, and then shmem_evict_inode() waits for the work to be done.
 */
struct mfp_restore {
	struct work_struct work;
	struct inode *inode;
	struct mem_cgroup *memcg;
	struct mfp_in *in;
	struct mfp_hold *hold;
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
	/* The page cache holds its folios: ours go (or stay held) first. */
	mfp_in_done(r->hold, in);
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

/**
 * mfp_open_as() - the file to hand out for a retrieved memfd
 * @file: the new memfd, open read-write
 * @flags: MEMFD_PRESERVE_F_* of the preserved file
 *
 * Return: @file itself if the memfd was open read-write, else
 * a file of its own on the same inode, open read-only or write-only as it
 * was; with the status flags it had.
 */
struct file *mfp_open_as(struct file *file, u32 flags)
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

/**
 * mfp_in_set_attrs() - give a new memfd the preserved one's attributes
 * @file: the new memfd, its inode locked, seen by nobody else yet
 * @in: the incoming state
 * @seals: where the memfd's seals live (shmem's or hugetlbfs's inode)
 */
void mfp_in_set_attrs(struct file *file, struct mfp_in *in,
		      unsigned int *seals)
{
	struct inode *inode = file_inode(file);

	i_size_write(inode, in->size);
	inode->i_mode = S_IFREG | in->mode;
	inode->i_uid = in->uid;
	inode->i_gid = in->gid;
	*seals = in->seals;
	/* A fresh file has no writable mapping: this cannot fail. */
	if (in->seals & F_SEAL_WRITE)
		WARN_ON_ONCE(mapping_deny_writable(file->f_mapping));
}

/*
 * Free @in and drop its references on the folios; with @keep a file that
 * refers to the memfd could not be released, so the folios stay allocated
 * until the next update and only our bookkeeping goes.
 */
static void mfp_in_release(struct mfp_in *in, bool keep)
{
	if (keep) {
		pr_warn("%s: %lu pages kept in place\n", in->name,
			in->nr_pages);
		in->nr = 0;
	}
	mfp_in_put_folios(in);
	kfree(in);
}

/**
 * mfp_hold_alloc() - a hold on @in's folios, if the memfd needs one
 * @lf: the incoming file being retrieved
 * @in: its incoming state
 *
 * Return: NULL if no file refers to @lf any more; else a new hold, which
 * mfp_in_done() and mfp_hold_release() each drop once; or ERR_PTR(-ENOMEM).
 */
struct mfp_hold *mfp_hold_alloc(struct liveupdate_file *lf, struct mfp_in *in)
{
	struct mfp_hold *hold;

	if (!liveupdate_file_has_dependents(lf))
		return NULL;
	hold = kmalloc_obj(*hold);
	if (!hold)
		return ERR_PTR(-ENOMEM);
	hold->in = in;
	/* Whoever fills the page cache, and the file. */
	refcount_set(&hold->users, 2);
	hold->keep = false;
	return hold;
}

static void mfp_hold_put(struct mfp_hold *hold)
{
	/* Acquire on the last put: the other's @keep is seen. */
	if (!refcount_dec_and_test(&hold->users))
		return;
	mfp_in_release(hold->in, hold->keep);
	kfree(hold);
}

/**
 * mfp_in_done() - the page cache no longer needs @in
 * @hold: the memfd's hold, or NULL
 * @in: the incoming state, its folios in the page cache (or failed to go)
 *
 * Without a hold our references on the folios go, and @in with them;
 * with one they stay until the file's side is dropped too
 * (mfp_hold_release()).  Either way the last use of @in by whoever filled
 * the page cache.
 */
void mfp_in_done(struct mfp_hold *hold, struct mfp_in *in)
{
	if (hold)
		mfp_hold_put(hold);
	else
		mfp_in_release(in, false);
}

/*
 * Drop the file's side of a retrieved memfd's hold, if it has one (see
 * mfp_in_release() for @keep): a background fill may still be reading
 * the folios, and then the release is its to do, without waiting here.
 */
static void mfp_hold_release(struct liveupdate_file *lf, bool keep)
{
	struct mfp_hold *hold = lf->private;

	if (!hold)
		return;
	lf->private = NULL;
	hold->keep = keep;
	mfp_hold_put(hold);
}

/**
 * mfp_dependents_done() - &liveupdate_file_ops.dependents_done
 * @lf: a retrieved memfd, held for the files that refer to it
 */
void mfp_dependents_done(struct liveupdate_file *lf)
{
	mfp_hold_release(lf, false);
}

/**
 * mfp_retrieve() - &liveupdate_file_ops.retrieve: build the memfd anew
 * @lf: the incoming file
 *
 * Return: 0, with the new file in @lf->file; or an error.
 */
int mfp_retrieve(struct liveupdate_file *lf)
{
	struct mfp_restore *r = NULL;
	struct mfp_hold *hold;
	struct file *file, *as;
	struct inode *inode;
	struct mfp_in *in;
	int err;

	in = mfp_in_get(lf);
	if (IS_ERR(in))
		return PTR_ERR(in);
	hold = mfp_hold_alloc(lf, in);
	if (IS_ERR(hold))
		return PTR_ERR(hold);

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
	mfp_in_set_attrs(file, in, &SHMEM_I(inode)->seals);
	inode_unlock(inode);
	as->f_pos = in->pos;
	lf->private = hold;
	lf->file = as;

	if (as != file)
		fput(file);
	if (r) {
		INIT_WORK(&r->work, mfp_restore_fn);
		r->inode = inode;
		r->memcg = get_mem_cgroup_from_mm(current->mm);
		r->in = in;
		r->hold = hold;
		queue_work(system_dfl_long_wq, &r->work);
		return 0;
	}
	mfp_in_done(hold, in);
	return 0;

err_fput:
	fput(file);
err_free:
	kfree(r);
	kfree(hold);
	return err;
}

/**
 * mfp_finish() - &liveupdate_file_ops.finish: free what was not retrieved
 * @lf: the incoming file
 */
void mfp_finish(struct liveupdate_file *lf)
{
	bool keep = liveupdate_file_has_dependents(lf);
	struct mfp_in *in;

	if (lf->file) {
		mfp_hold_release(lf, keep);
		return;
	}
	/*
	 * Never retrieved: restore what is left only to free it.  If it must
	 * stay, what KHO still has stays reserved by KHO.
	 */
	if (!keep)
		mfp_in_get(lf);
	in = lf->private;
	if (in)
		mfp_in_release(in, keep);
	else if (keep)
		pr_warn("token %llu: its pages stay reserved\n", lf->token);
	lf->private = NULL;
}
