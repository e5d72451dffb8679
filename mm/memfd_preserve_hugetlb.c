// SPDX-License-Identifier: GPL-2.0
/*
 * memfd preservation: what differs for hugetlb memfds.
 *
 * A hugetlb memfd (memfd_create(MFD_HUGETLB)) is preserved by a handler of
 * its own, MEMFD_PRESERVE_HUGETLB_COMPATIBLE, so that a kernel that cannot
 * take it fails it cleanly.  The outgoing side is that of shmem memfds
 * (memfd_preserve.c): each huge page is held by a folio reference, which
 * hugetlb migration, memory offline and alloc_contig_range() respect as
 * they respect any reference; the size is frozen (hugetlbfs_mapping_frozen()
 * refuses truncate and fallocate); pages added later reach the handler
 * through hugetlb_add_to_page_cache(); pages in CMA are moved out by the
 * work item, which memfd_pin_folios() does for hugetlb pages too.
 *
 * Incoming, each huge page KHO kept is a compound folio of the page's
 * order: hugetlb_add_restored_folios() makes it a hugetlb page of the new
 * memfd and of its hstate's pool, with no copy and no split.  These pages
 * count toward the boot pool (hugepages=): hugetlb learns how many there
 * are from memfd_preserve_hugetlb_boot_pages(), before it allocates.
 */
#define pr_fmt(fmt) "memfd_preserve: " fmt

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/hugetlb.h>
#include <linux/kexec_handover.h>
#include <linux/memblock.h>
#include <linux/memfd.h>
#include <linux/pagemap.h>
#include <linux/slab.h>
#include <uapi/linux/memfd.h>

#include "memfd_preserve_internal.h"

/**
 * mfp_hugetlb_slot() - where a hugetlbfs inode points to its preserved state
 * @inode: the inode of a hugetlb memfd
 *
 * Return: the address of its &hugetlbfs_inode_info.preserved.
 */
struct memfd_preserved __rcu **mfp_hugetlb_slot(struct inode *inode)
{
	return &HUGETLBFS_I(inode)->preserved;
}

/**
 * memfd_preserve_hugetlb_added() - a huge page was added to a preserved memfd
 * @inode: the memfd's inode
 * @folio: the new hugetlb folio, locked, in @inode's page cache
 *
 * Called by hugetlb_add_to_page_cache() when it found the memfd preserved:
 * see mfp_folio_added().
 *
 * Return: 0, or an error after which the caller takes @folio out of the
 * page cache again.
 */
int memfd_preserve_hugetlb_added(struct inode *inode, struct folio *folio)
{
	return mfp_folio_added(mfp_hugetlb_slot(inode), folio);
}

/**
 * mfp_hugetlb_can_preserve() - &liveupdate_file_ops.can_preserve
 * @handler: the hugetlb memfd handler
 * @file: the file
 *
 * Return: true for a hugetlb memfd.
 */
bool mfp_hugetlb_can_preserve(struct liveupdate_file_handler *handler,
			      struct file *file)
{
	return is_file_hugepages(file) && mfp_is_memfd(file);
}

/**
 * mfp_hugetlb_retrieve() - &liveupdate_file_ops.retrieve for hugetlb memfds
 * @lf: the incoming file
 *
 * Build a hugetlb memfd of the preserved huge page size around the pages
 * the previous kernel left.  They go into the page cache during the
 * retrieve: a memfd has few huge pages, and each costs the same whatever
 * its size.
 *
 * Return: 0, with the new file in @lf->file; -EOPNOTSUPP if this kernel has
 * no huge pages of that size; or another error.  On error the pages stay
 * ours, so that the retrieve can be tried again or the file finished.
 */
int mfp_hugetlb_retrieve(struct liveupdate_file *lf)
{
	struct mfp_hold *hold;
	unsigned int shift;
	struct inode *inode;
	struct file *file, *as;
	struct mfp_in *in;
	int err;

	in = mfp_in_get(lf);
	if (IS_ERR(in))
		return PTR_ERR(in);
	shift = in->huge_order + PAGE_SHIFT;
	if (!size_to_hstate(1UL << shift)) {
		pr_warn_ratelimited("%s: this kernel has no %lu KiB huge pages\n",
				    in->name, (1UL << shift) / SZ_1K);
		return -EOPNOTSUPP;
	}
	hold = mfp_hold_alloc(lf, in);
	if (IS_ERR(hold))
		return PTR_ERR(hold);
	/* As memfd_create() makes it, MFD_HUGE_* giving the size. */
	file = memfd_alloc_file(in->name, MFD_HUGETLB |
				shift << MFD_HUGE_SHIFT);
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
	err = hugetlb_add_restored_folios(file->f_mapping, in->folios,
					  in->indices, in->nr);
	if (err) {
		inode_unlock(inode);
		if (as != file)
			fput(as);
		/* Overlapping entries. */
		err = err == -EEXIST ? -EBADMSG : err;
		goto err_fput;
	}
	mfp_in_set_attrs(file, in, &HUGETLBFS_I(inode)->seals);
	inode_unlock(inode);
	as->f_pos = in->pos;
	lf->private = hold;
	lf->file = as;
	if (as != file)
		fput(file);
	/* The page cache holds the folios now. */
	mfp_in_done(hold, in);
	return 0;

err_fput:
	fput(file);
err_free:
	kfree(hold);
	return err;
}

/* Read once, early: hugetlb asks again after memblock is gone. */
static u64 mfp_boot_pages[MEMFD_PRESERVE_HUGE_SHIFTS] __initdata;
/* The page that held them, freed once hugetlb has its boot pools. */
static phys_addr_t mfp_boot_phys __initdata;

/**
 * memfd_preserve_hugetlb_boot_init() - read what the previous kernel kept
 *
 * Called by hugetlb before it allocates any boot page, while memblock
 * still hands out scratch memory only, so the preserved page is intact.
 */
void __init memfd_preserve_hugetlb_boot_init(void)
{
	const struct memfd_preserve_hugetlb_pool *hp;
	phys_addr_t phys;
	size_t size;

	if (!kho_is_enabled() ||
	    kho_retrieve_subtree(MEMFD_PRESERVE_HUGETLB_POOL_NODE, &phys, &size))
		return;
	if (size != sizeof(*hp) || !PAGE_ALIGNED(phys) ||
	    !memblock_is_map_memory(phys)) {
		pr_warn("%s: %zu bytes at %pa: ignored\n",
			MEMFD_PRESERVE_HUGETLB_POOL_NODE, size, &phys);
		return;
	}
	/* The page is ours to free from here on, whatever it holds. */
	mfp_boot_phys = phys;
	hp = phys_to_virt(phys);
	if (hp->magic != MEMFD_PRESERVE_HUGETLB_POOL_MAGIC) {
		pr_warn("%s: magic %#llx: ignored\n",
			MEMFD_PRESERVE_HUGETLB_POOL_NODE, hp->magic);
		return;
	}
	memcpy(mfp_boot_pages, hp->pages, sizeof(mfp_boot_pages));
}

/**
 * memfd_preserve_hugetlb_boot_pages() - huge pages the previous kernel kept
 * @shift: a huge page size, as its shift
 *
 * Return: how many huge pages of 2^@shift bytes the hugetlb memfds frozen
 * by the previous kernel hold, and that join this kernel's pool as they
 * are retrieved; 0 if none, or if this boot is not a live update.  Asked
 * for the 2 MiB pool after KHO checked the handover: 0 if it refused it.
 */
unsigned long __init memfd_preserve_hugetlb_boot_pages(unsigned int shift)
{
	if (!is_kho_boot() || shift >= ARRAY_SIZE(mfp_boot_pages))
		return 0;
	return mfp_boot_pages[shift];
}

/**
 * mfp_hugetlb_pool_in_free() - free the incoming count of huge pages
 *
 * Once hugetlb sized its boot pools, nobody reads it again.
 */
void __init mfp_hugetlb_pool_in_free(void)
{
	struct folio *folio;

	if (!mfp_boot_phys || !is_kho_boot())
		return;
	folio = kho_restore_folio(mfp_boot_phys);
	if (!folio) {
		pr_warn("%s at %pa was not preserved\n",
			MEMFD_PRESERVE_HUGETLB_POOL_NODE, &mfp_boot_phys);
		return;
	}
	/* Not the page kho_alloc_preserve() gave: keep it rather than guess. */
	if (folio_order(folio)) {
		pr_warn("%s at %pa is a folio of order %u: kept\n",
			MEMFD_PRESERVE_HUGETLB_POOL_NODE, &mfp_boot_phys,
			folio_order(folio));
		return;
	}
	folio_put(folio);
}
