// SPDX-License-Identifier: GPL-2.0-only
/**
 * DOC: iommufd preservation
 *
 * An iommufd can be preserved into a LUO session, after the files it maps
 * (IOMMU_IOAS_MAP_FILE of memfds preserved in the same session) and before
 * the devices bound to it.  The format is described in
 * include/linux/kho/abi/iommufd_preserve.h.
 *
 * Preserving freezes the context: from then until it is unpreserved,
 * whatever would create, destroy or change an object, a mapping or an
 * attachment fails with EBUSY: the ioctls other than the few that only
 * read, and iommufd_device_bind(), iommufd_device_attach(),
 * iommufd_device_replace(), iommufd_access_create() and
 * iommufd_vfio_compat_ioas_create().  The state written at preserve is
 * then final, so there is nothing to do at freeze.
 *
 * Locking: &iommufd_ctx.lu_rwsem.  Those operations hold it for read,
 * taken first, while they check &iommufd_ctx.lu_frozen and do their work
 * (iommufd_lu_block_freeze()); preserve and unpreserve hold it for write.
 * So preserve sees no operation half done, and one that starts later sees
 * the context frozen.  Under it preserve takes the locks of an IOAS in
 * their usual order (domains_rwsem, then iova_rwsem) to walk its mappings.
 * Detaching and unbinding a device cannot fail and are not held off: the
 * VFIO handler keeps its preserved devices from doing either.
 *
 * In the next kernel, retrieving the file builds a new context (an
 * anonymous "[iommufd]" file) from the records, once all of them are
 * checked: each IOAS under its old ID, with its option, and each mapping
 * at its old IOVA, of the file liveupdate_file_dep_incoming() gives back
 * for its token.  The IOVA alignment is not restored: iommufd derives it
 * from the page tables attached, as it did in the previous kernel.
 * Nothing is pinned yet.  The IDs of the page tables and devices are
 * reserved, so that no other object gets them, and their records are
 * kept with the context (&iommufd_ctx.lu_in): a paging domain needs a
 * device, so a page table is only created when the VFIO handler restores
 * the first device that was attached to it, with
 * iommufd_device_restore_attach().  That fills it, pinning the pages (and
 * accounting them to the process that retrieved the iommufd), then
 * attaches the device.  On any error the new context is destroyed, and a
 * later retrieve starts over.  The retrieved context is an ordinary one,
 * not frozen; it can only be preserved again once its session is
 * finished.
 *
 * Finishing the file releases the block, and the records of a retrieved
 * context: LUO finishes the devices' files before, so every device that
 * will come back has.  The IDs still reserved are then released: a page
 * table no restored device was attached to is gone.
 *
 * Locking of the incoming side: &iommufd_ctx.lu_in_lock protects
 * &iommufd_ctx.lu_in and the records.  iommufd_device_restore_attach()
 * holds it, inside lu_rwsem held for read, and takes an IOAS's mutex
 * inside it; finish takes it alone.
 */
#define pr_fmt(fmt) "iommufd: " fmt

#include <linux/bsearch.h>
#include <linux/cleanup.h>
#include <linux/file.h>
#include <linux/kexec_handover.h>
#include <linux/kho/abi/iommufd_preserve.h>
#include <linux/liveupdate.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/overflow.h>
#include <linux/rwsem.h>
#include <linux/slab.h>
#include <linux/xarray.h>

#include "io_pagetable.h"
#include "iommufd_private.h"

static_assert(sizeof(struct iommufd_preserve_header) == 56);
static_assert(sizeof(struct iommufd_preserve_ioas) == 24);
static_assert(sizeof(struct iommufd_preserve_area) == 40);
static_assert(sizeof(struct iommufd_preserve_hwpt) == 16);
static_assert(sizeof(struct iommufd_preserve_device) == 8);

/* The mapping permissions the format carries; iommufd sets no others. */
#define IOMMUFD_LU_PROT		(IOMMU_READ | IOMMU_WRITE | IOMMU_CACHE)

/*
 * &liveupdate_file.private: of an outgoing file, its struct iommufd_lu; of
 * an incoming one, the folio of its block (liveupdate_file_in_folio()).
 */

/* A preserved context, in &liveupdate_file.private until unpreserved. */
struct iommufd_lu {
	struct iommufd_ctx *ictx;		/* holds a reference */
	struct iommufd_preserve_header *hdr;	/* from kho_alloc_preserve() */
};

struct iommufd_lu_counts {
	u32 ioas;
	u32 areas;
	u32 hwpts;
	u32 devices;
};

/*
 * Preserve walks the context twice under lu_rwsem: the first walk (@hdr
 * NULL) checks every object and counts the records, the second writes them
 * into the block sized from those counts.  Nothing can be created in
 * between; an unbound device or its freed page table only leaves room
 * unused.
 */
struct iommufd_lu_writer {
	struct liveupdate_file *lf;
	struct iommufd_preserve_header *hdr;
	struct iommufd_preserve_ioas *ioas;
	struct iommufd_preserve_area *areas;
	struct iommufd_preserve_hwpt *hwpts;
	struct iommufd_preserve_device *devices;
	struct iommufd_lu_counts room;
	struct iommufd_lu_counts n;
	/* The mapped files named so far: struct file * -> an area naming it */
	struct xarray files;
};

/*
 * Take the next record of a kind whose count is @n.  While counting, @room
 * is U32_MAX, which only an absurd number of mappings reaches.  While
 * writing, nothing can have been added since counting.
 */
static int iommufd_lu_take(struct iommufd_lu_writer *w, u32 *n, u32 room,
			   u32 *index)
{
	if (*n == room)
		return w->hdr ? -EBUSY : -E2BIG;
	*index = (*n)++;
	return 0;
}

/* The token of @file in the session, named to LUO once per file. */
static int iommufd_lu_file_token(struct iommufd_lu_writer *w,
				 struct file *file, u32 area, u64 *token)
{
	void *entry;
	int rc;

	entry = xa_load(&w->files, (unsigned long)file);
	if (entry) {
		*token = w->areas[xa_to_value(entry)].file_token;
		return 0;
	}
	/* -ENOENT if @file is not preserved in the session (yet) */
	rc = liveupdate_file_dep_outgoing(w->lf, file, token);
	if (rc)
		return rc;
	return xa_err(xa_store(&w->files, (unsigned long)file,
			       xa_mk_value(area), GFP_KERNEL));
}

static u32 iommufd_lu_prot(int iommu_prot)
{
	u32 prot = 0;

	if (iommu_prot & IOMMU_READ)
		prot |= IOMMUFD_PRESERVE_PROT_READ;
	if (iommu_prot & IOMMU_WRITE)
		prot |= IOMMUFD_PRESERVE_PROT_WRITE;
	if (iommu_prot & IOMMU_CACHE)
		prot |= IOMMUFD_PRESERVE_PROT_CACHE;
	return prot;
}

static int iommufd_lu_save_area(struct iommufd_lu_writer *w,
				struct iopt_area *area)
{
	struct iopt_pages *pages = area->pages;
	unsigned long iova = iopt_area_iova(area);
	struct iommufd_preserve_area *rec;
	u32 index;
	u64 token;
	int rc;

	/* NULL while a map or an unmap works on the area */
	if (!pages)
		return -EBUSY;
	/* Only a file's pages can be found again in the next kernel. */
	if (pages->type != IOPT_ADDRESS_FILE)
		return -EOPNOTSUPP;
	if (area->iommu_prot & ~IOMMUFD_LU_PROT)
		return -EOPNOTSUPP;
	rc = iommufd_lu_take(w, &w->n.areas, w->room.areas, &index);
	if (rc || !w->hdr)
		return rc;

	rc = iommufd_lu_file_token(w, pages->file, index, &token);
	if (rc)
		return rc;
	rec = &w->areas[index];
	rec->iova = iova;
	rec->length = iopt_area_length(area);
	rec->file_token = token;
	/* pages->start is the file offset of the pages' first page */
	rec->file_offset = pages->start + iopt_area_start_byte(area, iova);
	rec->prot = iommufd_lu_prot(area->iommu_prot);
	return 0;
}

/* @obj: its users count raised, so that it stays while unlocked */
static int iommufd_lu_save_ioas(struct iommufd_lu_writer *w,
				struct iommufd_object *obj)
{
	struct iommufd_ioas *ioas = container_of(obj, struct iommufd_ioas, obj);
	struct io_pagetable *iopt = &ioas->iopt;
	struct iommufd_preserve_ioas *rec;
	struct iopt_area *area;
	u32 index, first;
	int rc;

	guard(rwsem_read)(&iopt->domains_rwsem);
	guard(rwsem_read)(&iopt->iova_rwsem);
	/* In-kernel users pin pages this format does not describe. */
	if (!xa_empty(&iopt->access_list))
		return -EOPNOTSUPP;
	if (!RB_EMPTY_ROOT(&iopt->allowed_itree.rb_root))
		return -EOPNOTSUPP;
	rc = iommufd_lu_take(w, &w->n.ioas, w->room.ioas, &index);
	if (rc)
		return rc;

	first = w->n.areas;
	for (area = iopt_area_iter_first(iopt, 0, ULONG_MAX); area;
	     area = iopt_area_iter_next(area, 0, ULONG_MAX)) {
		rc = iommufd_lu_save_area(w, area);
		if (rc)
			return rc;
	}
	if (!w->hdr)
		return 0;

	rec = &w->ioas[index];
	rec->id = ioas->obj.id;
	if (iopt->disable_large_pages)
		rec->flags |= IOMMUFD_PRESERVE_IOAS_NO_LARGE_PAGES;
	rec->first_area = first;
	rec->nr_areas = w->n.areas - first;
	rec->iova_alignment = iopt->iova_alignment;
	return 0;
}

/* Under the objects' xa_lock, which keeps @obj from being freed */
static int iommufd_lu_save_hwpt(struct iommufd_lu_writer *w,
				struct iommufd_object *obj)
{
	struct iommufd_hwpt_paging *hwpt =
		container_of(obj, struct iommufd_hwpt_paging, common.obj);
	struct iommufd_preserve_hwpt *rec;
	u32 index;
	int rc;

	/* Their nested page tables, faults and dirty bits would be lost. */
	if (hwpt->nest_parent || hwpt->common.fault || hwpt->dirty_tracking)
		return -EOPNOTSUPP;
	rc = iommufd_lu_take(w, &w->n.hwpts, w->room.hwpts, &index);
	if (rc || !w->hdr)
		return rc;

	rec = &w->hwpts[index];
	rec->id = obj->id;
	rec->ioas_id = hwpt->ioas->obj.id;
	if (hwpt->auto_domain)
		rec->flags |= IOMMUFD_PRESERVE_HWPT_AUTO_DOMAIN;
	if (hwpt->enforce_cache_coherency)
		rec->flags |= IOMMUFD_PRESERVE_HWPT_ENFORCE_CC;
	return 0;
}

/*
 * Under the objects' xa_lock.  Only the ID: the device's own handler binds
 * it again.
 */
static int iommufd_lu_save_device(struct iommufd_lu_writer *w,
				  struct iommufd_object *obj)
{
	u32 index;
	int rc;

	rc = iommufd_lu_take(w, &w->n.devices, w->room.devices, &index);
	if (rc || !w->hdr)
		return rc;
	w->devices[index].id = obj->id;
	return 0;
}

/* One walk over every object of @ictx, by increasing ID */
static int iommufd_lu_walk(struct iommufd_lu_writer *w,
			   struct iommufd_ctx *ictx)
{
	struct iommufd_object *obj;
	unsigned long index;
	int rc = 0;

	xa_lock(&ictx->objects);
	xa_for_each(&ictx->objects, index, obj) {
		switch (obj->type) {
		case IOMMUFD_OBJ_IOAS:
			/* Zero users: being destroyed, not ours to describe */
			if (!refcount_inc_not_zero(&obj->users))
				continue;
			/* Its mappings are walked under sleeping locks. */
			xa_unlock(&ictx->objects);
			rc = iommufd_lu_save_ioas(w, obj);
			refcount_dec(&obj->users);
			xa_lock(&ictx->objects);
			break;
		case IOMMUFD_OBJ_HWPT_PAGING:
			rc = iommufd_lu_save_hwpt(w, obj);
			break;
		case IOMMUFD_OBJ_DEVICE:
			rc = iommufd_lu_save_device(w, obj);
			break;
		default:
			rc = -EOPNOTSUPP;
			break;
		}
		if (rc)
			break;
	}
	xa_unlock(&ictx->objects);
	return rc;
}

/* Allocate the block for what the first walk counted, and lay it out. */
static int iommufd_lu_alloc(struct iommufd_lu_writer *w,
			    struct iommufd_ctx *ictx)
{
	size_t ioas_off, area_off, hwpt_off, device_off, size;
	struct iommufd_preserve_header *hdr;

	ioas_off = sizeof(*hdr);
	area_off = size_add(ioas_off, array_size(w->n.ioas, sizeof(*w->ioas)));
	hwpt_off = size_add(area_off,
			    array_size(w->n.areas, sizeof(*w->areas)));
	device_off = size_add(hwpt_off,
			      array_size(w->n.hwpts, sizeof(*w->hwpts)));
	size = size_add(device_off,
			array_size(w->n.devices, sizeof(*w->devices)));
	/* Far beyond the largest block KHO gives anyway */
	if (size > U32_MAX)
		return -E2BIG;

	/* Zeroed: reserved fields and flags start out clear. */
	hdr = kho_alloc_preserve(size);
	if (IS_ERR(hdr))
		return PTR_ERR(hdr);
	hdr->magic = IOMMUFD_PRESERVE_MAGIC;
	hdr->header_size = sizeof(*hdr);
	hdr->size = size;
	if (ictx->account_mode == IOPT_PAGES_ACCOUNT_MM)
		hdr->flags |= IOMMUFD_PRESERVE_CTX_ACCOUNT_MM;
	hdr->ioas_offset = ioas_off;
	hdr->area_offset = area_off;
	hdr->hwpt_offset = hwpt_off;
	hdr->device_offset = device_off;

	w->hdr = hdr;
	w->ioas = (void *)hdr + ioas_off;
	w->areas = (void *)hdr + area_off;
	w->hwpts = (void *)hdr + hwpt_off;
	w->devices = (void *)hdr + device_off;
	w->room = w->n;
	w->n = (struct iommufd_lu_counts){};
	return 0;
}

/* Check and describe @ictx: lu_rwsem held for write. */
static int iommufd_lu_serialize(struct iommufd_lu_writer *w,
				struct iommufd_ctx *ictx)
{
	int rc;

	lockdep_assert_held_write(&ictx->lu_rwsem);
	w->room = (struct iommufd_lu_counts){
		.ioas = U32_MAX, .areas = U32_MAX,
		.hwpts = U32_MAX, .devices = U32_MAX,
	};
	rc = iommufd_lu_walk(w, ictx);
	if (rc)
		return rc;
	rc = iommufd_lu_alloc(w, ictx);
	if (rc)
		return rc;
	rc = iommufd_lu_walk(w, ictx);
	if (rc) {
		kho_unpreserve_free(w->hdr);
		w->hdr = NULL;
		return rc;
	}
	w->hdr->nr_ioas = w->n.ioas;
	w->hdr->nr_areas = w->n.areas;
	w->hdr->nr_hwpts = w->n.hwpts;
	w->hdr->nr_devices = w->n.devices;
	return 0;
}

static bool iommufd_lu_can_preserve(struct liveupdate_file_handler *handler,
				    struct file *file)
{
	return iommufd_file_is_ctx(file);
}

static int iommufd_lu_preserve(struct liveupdate_file *lf)
{
	struct iommufd_ctx *ictx = lf->file->private_data;
	struct iommufd_lu_writer w = { .lf = lf };
	int rc;

	struct iommufd_lu *lu __free(kfree) =
		kzalloc_obj(*lu, GFP_KERNEL_ACCOUNT);
	if (!lu)
		return -ENOMEM;

	/* Killable: an ioctl in flight may wait on userspace (page faults). */
	ACQUIRE(rwsem_write_kill, lock)(&ictx->lu_rwsem);
	rc = ACQUIRE_ERR(rwsem_write_kill, &lock);
	if (rc)
		return rc;
	/* LUO preserves a file once, and a context has one file. */
	if (ictx->lu_frozen)
		return -EBUSY;
	/* Nor while devices of the last update may still come back */
	scoped_guard(mutex, &ictx->lu_in_lock)
		if (ictx->lu_in)
			return -EBUSY;

	xa_init(&w.files);
	rc = iommufd_lu_serialize(&w, ictx);
	xa_destroy(&w.files);
	if (rc)
		return rc;

	WRITE_ONCE(ictx->lu_frozen, true);
	iommufd_ctx_get(ictx);
	lu->ictx = ictx;
	lu->hdr = w.hdr;
	lf->data = virt_to_phys(w.hdr);
	lf->private = no_free_ptr(lu);
	return 0;
}

static void iommufd_lu_unpreserve(struct liveupdate_file *lf)
{
	struct iommufd_lu *lu = lf->private;

	scoped_guard(rwsem_write, &lu->ictx->lu_rwsem)
		WRITE_ONCE(lu->ictx->lu_frozen, false);
	kho_unpreserve_free(lu->hdr);
	iommufd_ctx_put(lu->ictx);
	kfree(lu);
	lf->private = NULL;
}

/* The records of an incoming block, once checked */
struct iommufd_lu_block {
	const struct iommufd_preserve_header *hdr;
	const struct iommufd_preserve_ioas *ioas;
	const struct iommufd_preserve_area *areas;
	const struct iommufd_preserve_hwpt *hwpts;
	const struct iommufd_preserve_device *devices;
};

/* Whether an object can have @id: the range IDs are allocated in */
static bool iommufd_lu_id_ok(u32 id)
{
	return id && id <= INT_MAX;
}

/* For bsearch() in arrays of records that start with their u32 ID */
static int iommufd_lu_cmp_id(const void *key, const void *elt)
{
	u32 id = *(const u32 *)key;
	u32 elt_id = *(const u32 *)elt;

	if (id < elt_id)
		return -1;
	return id > elt_id;
}

static_assert(offsetof(struct iommufd_preserve_ioas, id) == 0);

/* The header, and where the arrays are: within @hdr->size, apart */
static int iommufd_lu_check_header(const struct iommufd_preserve_header *hdr,
				   size_t block_size)
{
	const struct {
		u32 offset;
		u32 nr;
		size_t size;
	} arr[] = {
		{ hdr->ioas_offset, hdr->nr_ioas,
		  sizeof(struct iommufd_preserve_ioas) },
		{ hdr->area_offset, hdr->nr_areas,
		  sizeof(struct iommufd_preserve_area) },
		{ hdr->hwpt_offset, hdr->nr_hwpts,
		  sizeof(struct iommufd_preserve_hwpt) },
		{ hdr->device_offset, hdr->nr_devices,
		  sizeof(struct iommufd_preserve_device) },
	};
	u64 end[ARRAY_SIZE(arr)];
	unsigned int i, j;

	if (hdr->magic != IOMMUFD_PRESERVE_MAGIC ||
	    hdr->header_size < sizeof(*hdr) ||
	    !IS_ALIGNED(hdr->header_size, 8) ||
	    hdr->size < hdr->header_size || hdr->size > block_size ||
	    (hdr->flags & ~IOMMUFD_PRESERVE_CTX_FLAGS) || hdr->reserved)
		return -EBADMSG;

	for (i = 0; i < ARRAY_SIZE(arr); i++) {
		/* Cannot overflow: a u32 times a small size, plus a u32 */
		end[i] = arr[i].offset + (u64)arr[i].nr * arr[i].size;
		if (!IS_ALIGNED(arr[i].offset, 8) ||
		    arr[i].offset < hdr->header_size || end[i] > hdr->size)
			return -EBADMSG;
		for (j = 0; j < i; j++)
			if (arr[i].nr && arr[j].nr &&
			    arr[i].offset < end[j] && arr[j].offset < end[i])
				return -EBADMSG;
	}
	return 0;
}

/* The mappings of one IOAS: by increasing IOVA, apart */
static int iommufd_lu_check_areas(const struct iommufd_preserve_area *areas,
				  u32 nr)
{
	u64 last, file_last, prev_last = 0;
	u32 i;

	for (i = 0; i < nr; i++) {
		const struct iommufd_preserve_area *rec = &areas[i];

		if (!rec->length || rec->reserved ||
		    (rec->prot & ~IOMMUFD_PRESERVE_PROT_ALL) ||
		    check_add_overflow(rec->iova, rec->length - 1, &last) ||
		    check_add_overflow(rec->file_offset, rec->length - 1,
				       &file_last) ||
		    (unsigned long)last != last ||
		    (unsigned long)file_last != file_last ||
		    (i && rec->iova <= prev_last))
			return -EBADMSG;
		prev_last = last;
	}
	return 0;
}

/* The IOAS by increasing ID, their slices of mappings in order, all of them */
static int iommufd_lu_check_ioas(const struct iommufd_lu_block *b)
{
	const struct iommufd_preserve_header *hdr = b->hdr;
	u32 i, next_area = 0, prev_id = 0;
	int rc;

	for (i = 0; i < hdr->nr_ioas; i++) {
		const struct iommufd_preserve_ioas *rec = &b->ioas[i];
		u64 align = rec->iova_alignment;

		if (!iommufd_lu_id_ok(rec->id) || rec->id <= prev_id ||
		    (rec->flags & ~IOMMUFD_PRESERVE_IOAS_FLAGS) ||
		    !align || (align & (align - 1)) ||
		    rec->first_area != next_area ||
		    rec->nr_areas > hdr->nr_areas - next_area)
			return -EBADMSG;
		rc = iommufd_lu_check_areas(&b->areas[next_area], rec->nr_areas);
		if (rc)
			return rc;
		next_area += rec->nr_areas;
		prev_id = rec->id;
	}
	return next_area == hdr->nr_areas ? 0 : -EBADMSG;
}

/* The page tables by increasing ID, each of an IOAS described */
static int iommufd_lu_check_hwpts(const struct iommufd_lu_block *b)
{
	const struct iommufd_preserve_header *hdr = b->hdr;
	u32 i, prev_id = 0;

	for (i = 0; i < hdr->nr_hwpts; i++) {
		const struct iommufd_preserve_hwpt *rec = &b->hwpts[i];

		if (!iommufd_lu_id_ok(rec->id) || rec->id <= prev_id ||
		    (rec->flags & ~IOMMUFD_PRESERVE_HWPT_FLAGS) ||
		    rec->reserved ||
		    !bsearch(&rec->ioas_id, b->ioas, hdr->nr_ioas,
			     sizeof(*b->ioas), iommufd_lu_cmp_id))
			return -EBADMSG;
		prev_id = rec->id;
	}
	return 0;
}

/* The devices by increasing ID */
static int iommufd_lu_check_devices(const struct iommufd_lu_block *b)
{
	u32 i, prev_id = 0;

	for (i = 0; i < b->hdr->nr_devices; i++) {
		const struct iommufd_preserve_device *rec = &b->devices[i];

		if (!iommufd_lu_id_ok(rec->id) || rec->id <= prev_id ||
		    rec->reserved)
			return -EBADMSG;
		prev_id = rec->id;
	}
	return 0;
}

/*
 * Check everything in the block at @va, @block_size bytes, and fill in @b.
 * That IDs are unique across kinds is checked when they are reserved.
 */
static int iommufd_lu_check(struct iommufd_lu_block *b, const void *va,
			    size_t block_size)
{
	const struct iommufd_preserve_header *hdr = va;
	int rc;

	rc = iommufd_lu_check_header(hdr, block_size);
	if (rc)
		return rc;
	b->hdr = hdr;
	b->ioas = va + hdr->ioas_offset;
	b->areas = va + hdr->area_offset;
	b->hwpts = va + hdr->hwpt_offset;
	b->devices = va + hdr->device_offset;
	rc = iommufd_lu_check_ioas(b);
	if (rc)
		return rc;
	rc = iommufd_lu_check_hwpts(b);
	if (rc)
		return rc;
	return iommufd_lu_check_devices(b);
}

/*
 * What a retrieved context keeps of the block for
 * iommufd_device_restore_attach(), by increasing ID.  @reserved: the ID is
 * reserved for the record's object, which has not been restored, or has
 * been and was destroyed or failed (the ID is then reserved again).
 */
struct iommufd_lu_in_hwpt {
	u32 id;
	u32 ioas_id;
	u32 flags;
	bool reserved;
};

struct iommufd_lu_in_device {
	u32 id;
	bool reserved;
};

static_assert(offsetof(struct iommufd_lu_in_hwpt, id) == 0);
static_assert(offsetof(struct iommufd_lu_in_device, id) == 0);

/**
 * struct iommufd_lu_in - the records of a retrieved context
 * @nr_hwpts: number of @hwpts
 * @nr_devices: number of @devices
 * @hwpts: the page tables, by increasing ID
 * @devices: the devices, by increasing ID
 *
 * In &iommufd_ctx.lu_in, under &iommufd_ctx.lu_in_lock, from the retrieve
 * until the finish of the context's file.
 */
struct iommufd_lu_in {
	u32 nr_hwpts;
	u32 nr_devices;
	struct iommufd_lu_in_hwpt *hwpts;
	struct iommufd_lu_in_device *devices;
};

static void iommufd_lu_in_free(struct iommufd_lu_in *lu_in)
{
	if (!lu_in)
		return;
	kvfree(lu_in->hwpts);
	kvfree(lu_in->devices);
	kfree(lu_in);
}

/* The records of @b's page tables and devices; their IDs are not reserved. */
static struct iommufd_lu_in *
iommufd_lu_in_alloc(const struct iommufd_lu_block *b)
{
	const struct iommufd_preserve_header *hdr = b->hdr;
	u32 i;

	struct iommufd_lu_in *lu_in __free(kfree) =
		kzalloc_obj(*lu_in, GFP_KERNEL_ACCOUNT);
	if (!lu_in)
		return NULL;
	if (hdr->nr_hwpts) {
		lu_in->hwpts = kvzalloc_objs(*lu_in->hwpts, hdr->nr_hwpts,
					     GFP_KERNEL_ACCOUNT);
		if (!lu_in->hwpts)
			return NULL;
	}
	if (hdr->nr_devices) {
		lu_in->devices = kvzalloc_objs(*lu_in->devices,
					       hdr->nr_devices,
					       GFP_KERNEL_ACCOUNT);
		if (!lu_in->devices) {
			kvfree(lu_in->hwpts);
			return NULL;
		}
	}

	lu_in->nr_hwpts = hdr->nr_hwpts;
	for (i = 0; i < hdr->nr_hwpts; i++) {
		lu_in->hwpts[i].id = b->hwpts[i].id;
		lu_in->hwpts[i].ioas_id = b->hwpts[i].ioas_id;
		lu_in->hwpts[i].flags = b->hwpts[i].flags;
	}
	lu_in->nr_devices = hdr->nr_devices;
	for (i = 0; i < hdr->nr_devices; i++)
		lu_in->devices[i].id = b->devices[i].id;
	return no_free_ptr(lu_in);
}

/*
 * Reserve every ID of @b in the new @ictx, and mark the records of @lu_in
 * reserved.  The context is new: an ID found taken is one described twice.
 */
static int iommufd_lu_reserve_ids(struct iommufd_ctx *ictx,
				  const struct iommufd_lu_block *b,
				  struct iommufd_lu_in *lu_in)
{
	const struct iommufd_preserve_header *hdr = b->hdr;
	u32 i;
	int rc;

	for (i = 0; i < hdr->nr_ioas; i++) {
		rc = iommufd_object_reserve_id(ictx, b->ioas[i].id);
		if (rc)
			goto out;
	}
	for (i = 0; i < lu_in->nr_hwpts; i++) {
		rc = iommufd_object_reserve_id(ictx, lu_in->hwpts[i].id);
		if (rc)
			goto out;
		lu_in->hwpts[i].reserved = true;
	}
	for (i = 0; i < lu_in->nr_devices; i++) {
		rc = iommufd_object_reserve_id(ictx, lu_in->devices[i].id);
		if (rc)
			goto out;
		lu_in->devices[i].reserved = true;
	}
	return 0;
out:
	/* The context is discarded, its reserved IDs with it. */
	return rc == -EBUSY ? -EBADMSG : rc;
}

/* The IOMMU_READ/WRITE/CACHE bits of a &iommufd_preserve_area.prot */
static int iommufd_lu_iommu_prot(u32 prot)
{
	int iommu_prot = 0;

	if (prot & IOMMUFD_PRESERVE_PROT_READ)
		iommu_prot |= IOMMU_READ;
	if (prot & IOMMUFD_PRESERVE_PROT_WRITE)
		iommu_prot |= IOMMU_WRITE;
	if (prot & IOMMUFD_PRESERVE_PROT_CACHE)
		iommu_prot |= IOMMU_CACHE;
	return iommu_prot;
}

/* Map @rec's file again in the new @ioas, at the same IOVA */
static int iommufd_lu_restore_area(struct liveupdate_file *lf,
				   struct iommufd_ctx *ictx,
				   struct iommufd_ioas *ioas,
				   const struct iommufd_preserve_area *rec)
{
	unsigned long iova = rec->iova;
	struct file *file;
	int rc;

	/* -EBADMSG if the session has no such file */
	rc = liveupdate_file_dep_incoming(lf, rec->file_token, &file);
	if (rc)
		return rc;
	rc = iopt_map_file(ictx, &ioas->iopt, &iova, file, rec->file_offset,
			   rec->length, iommufd_lu_iommu_prot(rec->prot), 0);
	/* The mapping holds a reference of its own. */
	fput(file);
	return rc;
}

/* A new IOAS for @rec in the new @ictx, under @rec's ID, reserved */
static int iommufd_lu_restore_ioas(struct liveupdate_file *lf,
				   struct iommufd_ctx *ictx,
				   const struct iommufd_preserve_ioas *rec,
				   const struct iommufd_preserve_area *areas)
{
	struct iommufd_ioas *ioas;
	u32 new_id, i;
	int rc;

	ioas = iommufd_ioas_alloc(ictx);
	if (IS_ERR(ioas))
		return PTR_ERR(ioas);
	new_id = ioas->obj.id;
	rc = iommufd_object_move_id(ictx, &ioas->obj, rec->id);
	if (rc)
		goto out_abort;
	iommufd_object_release_id(ictx, new_id);

	/* Before any mapping, as IOMMU_OPTION_HUGE_PAGES had to be */
	if (rec->flags & IOMMUFD_PRESERVE_IOAS_NO_LARGE_PAGES) {
		rc = iopt_disable_large_pages(&ioas->iopt);
		if (rc)
			goto out_abort;
	}
	for (i = 0; i < rec->nr_areas; i++) {
		rc = iommufd_lu_restore_area(lf, ictx, ioas,
					     &areas[rec->first_area + i]);
		if (rc)
			goto out_abort;
	}

	down_read(&ictx->ioas_creation_lock);
	iommufd_object_finalize(ictx, &ioas->obj);
	up_read(&ictx->ioas_creation_lock);
	return 0;

out_abort:
	/* Unmaps what was mapped */
	iommufd_object_abort_and_destroy(ictx, &ioas->obj);
	return rc;
}

static int iommufd_lu_retrieve(struct liveupdate_file *lf)
{
	struct iommufd_lu_block b;
	struct iommufd_lu_in *lu_in;
	struct iommufd_ctx *ictx;
	struct folio *folio;
	u32 i;
	int rc;

	if (lf->version != IOMMUFD_PRESERVE_VERSION)
		return -EOPNOTSUPP;
	folio = liveupdate_file_in_folio(lf);
	if (IS_ERR(folio))
		return PTR_ERR(folio);
	rc = iommufd_lu_check(&b, folio_address(folio), folio_size(folio));
	if (rc)
		return rc;

	lu_in = iommufd_lu_in_alloc(&b);
	if (!lu_in)
		return -ENOMEM;
	ictx = iommufd_ctx_create();
	if (IS_ERR(ictx)) {
		rc = PTR_ERR(ictx);
		goto out_free;
	}
	if (b.hdr->flags & IOMMUFD_PRESERVE_CTX_ACCOUNT_MM)
		ictx->account_mode = IOPT_PAGES_ACCOUNT_MM;

	rc = iommufd_lu_reserve_ids(ictx, &b, lu_in);
	if (rc)
		goto out_put;
	for (i = 0; i < b.hdr->nr_ioas; i++) {
		rc = iommufd_lu_restore_ioas(lf, ictx, &b.ioas[i], b.areas);
		if (rc)
			goto out_put;
	}

	scoped_guard(mutex, &ictx->lu_in_lock)
		ictx->lu_in = lu_in;
	/* LUO owns the reference iommufd_ctx_create() returned. */
	lf->file = ictx->file;
	return 0;

out_put:
	/* Destroys the IOAS made, and releases the IDs reserved */
	fput(ictx->file);
out_free:
	iommufd_lu_in_free(lu_in);
	return rc;
}

/* Make sure @id is reserved for its record, whose object does not exist. */
static int iommufd_lu_reserve_again(struct iommufd_ctx *ictx, bool *reserved,
				    u32 id)
{
	int rc;

	if (*reserved)
		return 0;
	/* -EBUSY if another object got it meanwhile */
	rc = iommufd_object_reserve_id(ictx, id);
	if (!rc)
		*reserved = true;
	return rc;
}

/*
 * Attach @idev to the page table @rec describes, creating it if it does not
 * exist: under @rec's IOAS mutex, filled before the device is attached to
 * it, and published only once it is, as iommufd_device_auto_get_domain()
 * does.
 */
static int iommufd_lu_attach_hwpt(struct iommufd_device *idev,
				  struct iommufd_lu_in_hwpt *rec)
{
	struct iommufd_hwpt_paging *hwpt_paging;
	struct iommufd_ctx *ictx = idev->ictx;
	struct iommufd_hw_pagetable *hwpt;
	struct iommufd_object *obj;
	struct iommufd_ioas *ioas;
	bool enforce_cc;
	u32 new_id;
	int rc;

	lockdep_assert_held(&ictx->lu_in_lock);
	if (!rec->reserved) {
		/* Restored already, by another device */
		obj = iommufd_get_object(ictx, rec->id,
					 IOMMUFD_OBJ_HWPT_PAGING);
		if (!IS_ERR(obj)) {
			hwpt_paging = container_of(obj,
						   struct iommufd_hwpt_paging,
						   common.obj);
			hwpt = &hwpt_paging->common;
			rc = -EBUSY;
			if (hwpt_paging->ioas->obj.id == rec->ioas_id)
				rc = iommufd_hw_pagetable_attach(hwpt, idev,
								 IOMMU_NO_PASID);
			iommufd_put_object(ictx, obj);
			return rc;
		}
		/* And destroyed since, with the last device attached to it */
		rc = iommufd_lu_reserve_again(ictx, &rec->reserved, rec->id);
		if (rc)
			return rc;
	}

	/* Userspace may have destroyed it. */
	ioas = iommufd_get_ioas(ictx, rec->ioas_id);
	if (IS_ERR(ioas))
		return PTR_ERR(ioas);
	mutex_lock(&ioas->mutex);
	enforce_cc = rec->flags & IOMMUFD_PRESERVE_HWPT_ENFORCE_CC;
	hwpt_paging = iommufd_hwpt_paging_alloc(ictx, ioas, idev, IOMMU_NO_PASID,
						0, false, NULL, enforce_cc);
	if (IS_ERR(hwpt_paging)) {
		rc = PTR_ERR(hwpt_paging);
		goto out_unlock;
	}
	hwpt = &hwpt_paging->common;
	new_id = hwpt->obj.id;
	rc = iommufd_object_move_id(ictx, &hwpt->obj, rec->id);
	if (rc)
		goto out_abort;
	rc = iommufd_hw_pagetable_attach(hwpt, idev, IOMMU_NO_PASID);
	if (rc) {
		/* @rec->id stays reserved; @new_id is, by the move. */
		WARN_ON(iommufd_object_move_id(ictx, &hwpt->obj, new_id));
		goto out_abort;
	}
	iommufd_object_release_id(ictx, new_id);
	rec->reserved = false;
	hwpt_paging->auto_domain = rec->flags &
				   IOMMUFD_PRESERVE_HWPT_AUTO_DOMAIN;
	iommufd_object_finalize(ictx, &hwpt->obj);
	goto out_unlock;

out_abort:
	iommufd_object_abort_and_destroy(ictx, &hwpt->obj);
out_unlock:
	mutex_unlock(&ioas->mutex);
	iommufd_put_object(ictx, &ioas->obj);
	return rc;
}

/**
 * iommufd_device_restore_attach() - restore a device's ID and attachment
 * @idev: a device the caller just bound with iommufd_device_bind() to a
 *	context retrieved from a live update, not attached, not yet known to
 *	userspace by its ID
 * @old_devid: the device's ID in the previous kernel
 * @old_pt_id: the ID, in the previous kernel, of the page table (HWPT) the
 *	device was attached to without a PASID
 * @devid: output: the ID @idev ends up with: @old_devid on success, else
 *	the one it was bound with
 *
 * For the VFIO live update handler, which gets back the device of an
 * iommufd preserved with it.  Gives @idev its old ID, then attaches it, as
 * iommufd_device_attach() would, to the page table that had @old_pt_id:
 * to that object if another device of the context restored it already,
 * else to a new one under that ID, created for @idev on the IOAS the page
 * table was of, as it was (allocated automatically or not, enforcing cache
 * coherency or not), and filled before @idev is attached to it.  Undo it
 * with iommufd_device_detach().
 *
 * Possible until the iommufd's live update session is finished.  On
 * failure nothing changed: @idev is bound, under the ID it had, and not
 * attached; a later call may succeed.
 *
 * Context: process context; takes the context's live update locks, and
 * those iommufd_device_attach() takes.
 *
 * Return: 0; -ENOENT if the context was not retrieved from a live update,
 * or its session is finished, or it had no device @old_devid or page table
 * @old_pt_id, or that page table's IOAS was destroyed; -EBUSY if the
 * context is preserved again, or another object has either ID; an error
 * of creating the page table (-ENOMEM, -EINVAL if the IOMMU cannot enforce
 * cache coherency as it did, ...) or of attaching (-EINVAL if the device
 * cannot use that page table, ...).
 */
int iommufd_device_restore_attach(struct iommufd_device *idev, u32 old_devid,
				  u32 old_pt_id, u32 *devid)
{
	struct iommufd_lu_in_device *dev_rec = NULL;
	struct iommufd_lu_in_hwpt *hwpt_rec = NULL;
	struct iommufd_ctx *ictx = idev->ictx;
	u32 bind_id = idev->obj.id;
	struct iommufd_lu_in *lu_in;
	bool move;
	int rc;

	rc = iommufd_lu_block_freeze(ictx);
	if (rc)
		goto out;
	mutex_lock(&ictx->lu_in_lock);
	lu_in = ictx->lu_in;
	if (lu_in) {
		dev_rec = bsearch(&old_devid, lu_in->devices, lu_in->nr_devices,
				  sizeof(*dev_rec), iommufd_lu_cmp_id);
		hwpt_rec = bsearch(&old_pt_id, lu_in->hwpts, lu_in->nr_hwpts,
				   sizeof(*hwpt_rec), iommufd_lu_cmp_id);
	}
	if (!dev_rec || !hwpt_rec) {
		rc = -ENOENT;
		goto out_unlock;
	}

	/* Already there if it got the ID back by chance, being bound again */
	move = bind_id != old_devid;
	if (move) {
		rc = iommufd_lu_reserve_again(ictx, &dev_rec->reserved,
					      old_devid);
		if (rc)
			goto out_unlock;
		rc = iommufd_object_move_id(ictx, &idev->obj, old_devid);
		if (rc)
			goto out_unlock;
		dev_rec->reserved = false;
	}

	rc = iommufd_lu_attach_hwpt(idev, hwpt_rec);
	if (rc) {
		if (move) {
			/* @bind_id is reserved, by the move. */
			WARN_ON(iommufd_object_move_id(ictx, &idev->obj,
						       bind_id));
			dev_rec->reserved = true;
		}
		goto out_unlock;
	}
	if (move)
		iommufd_object_release_id(ictx, bind_id);
	/* Pairs with iommufd_device_detach(), as for iommufd_device_attach() */
	refcount_inc(&idev->obj.users);

out_unlock:
	mutex_unlock(&ictx->lu_in_lock);
	iommufd_lu_allow_freeze(ictx);
out:
	*devid = idev->obj.id;
	return rc;
}
EXPORT_SYMBOL_NS_GPL(iommufd_device_restore_attach, "IOMMUFD");

/* Release the IDs still reserved for @lu_in's records, and free it. */
static void iommufd_lu_in_release(struct iommufd_ctx *ictx,
				  struct iommufd_lu_in *lu_in)
{
	u32 i;

	for (i = 0; i < lu_in->nr_hwpts; i++)
		if (lu_in->hwpts[i].reserved)
			iommufd_object_release_id(ictx, lu_in->hwpts[i].id);
	for (i = 0; i < lu_in->nr_devices; i++)
		if (lu_in->devices[i].reserved)
			iommufd_object_release_id(ictx, lu_in->devices[i].id);
	iommufd_lu_in_free(lu_in);
}

/**
 * iommufd_lu_ctx_release() - free what a context keeps of a live update
 * @ictx: a context being destroyed
 *
 * Its records, if its session was not finished: only if its retrieve
 * failed, as LUO holds the file of a retrieved context until then.
 */
void iommufd_lu_ctx_release(struct iommufd_ctx *ictx)
{
	iommufd_lu_in_free(ictx->lu_in);
	ictx->lu_in = NULL;
}

static void iommufd_lu_finish(struct liveupdate_file *lf)
{
	struct iommufd_lu_in *lu_in = NULL;
	struct iommufd_ctx *ictx;
	struct folio *folio;

	/*
	 * The files of the devices, which depend on the iommufd, are
	 * finished before it: no device of the context comes back later.
	 * From now on iommufd_device_restore_attach() finds no records.
	 */
	if (lf->file) {
		ictx = lf->file->private_data;
		scoped_guard(mutex, &ictx->lu_in_lock)
			swap(lu_in, ictx->lu_in);
		if (lu_in)
			iommufd_lu_in_release(ictx, lu_in);
	}

	/* Restores the block if nothing did, e.g. on a version mismatch. */
	folio = liveupdate_file_in_folio(lf);
	if (IS_ERR(folio))
		pr_warn("preserved iommufd %llu: cannot release %#llx\n",
			lf->token, lf->data);
	else
		folio_put(folio);
	lf->private = NULL;
}

static const struct liveupdate_file_ops iommufd_lu_ops = {
	.can_preserve	= iommufd_lu_can_preserve,
	.preserve	= iommufd_lu_preserve,
	.unpreserve	= iommufd_lu_unpreserve,
	.retrieve	= iommufd_lu_retrieve,
	.finish		= iommufd_lu_finish,
};

static struct liveupdate_file_handler iommufd_lu_handler = {
	.compatible	= IOMMUFD_PRESERVE_COMPATIBLE,
	.version	= IOMMUFD_PRESERVE_VERSION,
	.ops		= &iommufd_lu_ops,
	.owner		= THIS_MODULE,
};

static bool iommufd_lu_registered;

/**
 * iommufd_lu_register() - make iommufds preservable across a live update
 *
 * Called at module init, once /dev/iommu exists.
 *
 * Return: 0, also when the kernel cannot preserve files; else the error
 * of liveupdate_register_file_handler().
 */
int __init iommufd_lu_register(void)
{
	int rc;

	rc = liveupdate_register_file_handler(&iommufd_lu_handler);
	if (rc == -EOPNOTSUPP)
		return 0;
	if (rc) {
		pr_err("cannot register the live update handler: %d\n", rc);
		return rc;
	}
	iommufd_lu_registered = true;
	return 0;
}

/**
 * iommufd_lu_unregister() - undo iommufd_lu_register()
 *
 * Called at module exit, which the handler's files keep from happening
 * while any is preserved or not yet finished.
 */
void iommufd_lu_unregister(void)
{
	if (iommufd_lu_registered)
		liveupdate_unregister_file_handler(&iommufd_lu_handler);
	iommufd_lu_registered = false;
}
