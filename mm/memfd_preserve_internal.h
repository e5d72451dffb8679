/* SPDX-License-Identifier: GPL-2.0 */
/*
 * memfd preservation: what mm/memfd_preserve*.c share.  The DOC comment in
 * mm/memfd_preserve.c says how the handler works; the handover format is
 * include/linux/kho/abi/memfd_preserve.h.
 */
#ifndef _MM_MEMFD_PRESERVE_INTERNAL_H
#define _MM_MEMFD_PRESERVE_INTERNAL_H

#include <linux/kho/abi/memfd_preserve.h>
#include <linux/liveupdate.h>
#include <linux/mutex.h>
#include <linux/refcount.h>
#include <linux/types.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#define MFP_NAME_PREFIX		"memfd:"
/* Chunks grow from 64 bytes (in the pool) up to 64 KiB (of their own). */
#define MFP_CHUNK_MIN		64U
#define MFP_CHUNK_MAX_ORDER	4U
/* Shorter runs of contiguous pages are cheaper as PAGES words. */
#define MFP_RUN_MIN		3
/* Longer ones are cut: 4 MiB per entry. */
#define MFP_RUN_MAX		BIT(MAX_PAGE_ORDER)
/* In @added: preserved and held, not yet described in the metadata. */
#define MFP_PENDING		XA_MARK_0

struct fault_attr;
struct mfp_pool;
struct mfp_pool_in;

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
 * @hugetlb: a hugetlb memfd, of the %MEMFD_PRESERVE_HUGETLB_COMPATIBLE
 *	handler
 * @nr_pending: folios added since PRESERVE_FD, not described yet
 * @node: in mfp_list
 * @move_work: moves the folios in @moves out of CMA after PRESERVE_FD
 * @moves: runs of contiguous folios found in CMA, by the scan or the hook
 * @nr_moves: entries in @moves
 * @max_moves: room in @moves
 * @move_span: the entry of @moves @move_work is at
 * @move_start: the page index in it @move_work is at
 * @move_run: what @move_work gathered and has yet to describe
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
	bool hugetlb;
	struct work_struct move_work;
	struct mfp_span *moves;
	unsigned int nr_moves;
	unsigned int max_moves;
	unsigned int move_span;
	pgoff_t move_start;
	struct mfp_run move_run;
	int move_err;
	bool move_fatal;
	bool moving;
	bool cancel;
};

/* memfd_preserve.c: the handlers and the metadata writer */
int mfp_describe(struct memfd_preserved *p, struct mfp_run *run,
		 pgoff_t index, unsigned long pfn, unsigned int order);
int mfp_flush_run(struct memfd_preserved *p, struct mfp_run *run);
int mfp_added_store(struct memfd_preserved *p, struct folio *folio,
		    bool pending);
bool mfp_folio_stays(struct folio *folio);
bool mfp_poisoned(struct folio *folio);
int mfp_folio_added(struct memfd_preserved __rcu **slot, struct folio *folio);
bool mfp_is_memfd(struct file *file);

/* memfd_preserve_pool.c: the metadata pool */
extern struct liveupdate_flb mfp_pool_flb;
void *mfp_pool_alloc(struct mfp_pool *pool, size_t len);
void mfp_pool_free(struct mfp_pool *pool, void *obj);
void *mfp_pool_in_ptr(struct mfp_pool_in *pool, u64 phys, size_t len);
void mfp_pool_hugetlb(struct mfp_pool *pool);
void mfp_count_hugetlb(struct memfd_preserve_hugetlb_pool *hp);

/* memfd_preserve_move.c: the move out of CMA */
int mfp_note_move(struct memfd_preserved *p, pgoff_t index,
		  unsigned long nr);
void mfp_move_start(struct memfd_preserved *p);
unsigned long mfp_left_to_move(struct memfd_preserved *p);
void mfp_move_fn(struct work_struct *work);
int mfp_freeze_moved(struct memfd_preserved *p);

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
 * @huge_order: a hugetlb memfd's huge page order, else 0
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
	unsigned int huge_order;
	char name[MEMFD_PRESERVE_NAME_LENGTH];
};

/**
 * struct mfp_hold - a retrieved memfd's folios, held for its dependents
 * @in: the incoming state: its references on the folios are the hold
 * @users: the file, and whoever fills the page cache from @in (during
 *	RETRIEVE_FD, or a work item after it); the last one releases @in
 * @keep: set by the file: release @in without dropping the references
 *
 * While a file that refers to the memfd is pending (an iommufd, whose
 * device may still write through the IOMMU tables the previous kernel
 * left), the folios must stay where they are whatever userspace does to
 * the memfd: a truncate takes them out of the page cache, not out of
 * memory.  See liveupdate_file_has_dependents().
 */
struct mfp_hold {
	struct mfp_in *in;
	refcount_t users;
	bool keep;
};

/* memfd_preserve_restore.c: the incoming side */
extern struct fault_attr fail_memfd_restore;
extern atomic_long_t mfp_nr_background;
extern atomic_long_t mfp_nr_waits;
extern atomic_long_t mfp_nr_preloaded;
struct mfp_in *mfp_in_get(struct liveupdate_file *lf);
void mfp_preload(struct liveupdate_file *lf);
void mfp_in_put_folios(struct mfp_in *in);
struct file *mfp_open_as(struct file *file, u32 flags);
void mfp_in_set_attrs(struct file *file, struct mfp_in *in,
		      unsigned int *seals);
struct mfp_hold *mfp_hold_alloc(struct liveupdate_file *lf,
				struct mfp_in *in);
void mfp_in_done(struct mfp_hold *hold, struct mfp_in *in);
int mfp_retrieve(struct liveupdate_file *lf);
void mfp_dependents_done(struct liveupdate_file *lf);
void mfp_finish(struct liveupdate_file *lf);

/* memfd_preserve_hugetlb.c: what differs for hugetlb memfds */
#ifdef CONFIG_LIVEUPDATE_MEMFD_HUGETLB
extern struct liveupdate_file_handler mfp_hugetlb_handler;
struct memfd_preserved __rcu **mfp_hugetlb_slot(struct inode *inode);
bool mfp_hugetlb_can_preserve(struct liveupdate_file_handler *handler,
			      struct file *file);
int mfp_hugetlb_retrieve(struct liveupdate_file *lf);
void mfp_hugetlb_pool_in_free(void);
#else
static inline void mfp_hugetlb_pool_in_free(void)
{
}
#endif

#endif /* _MM_MEMFD_PRESERVE_INTERNAL_H */
