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
 * Rebuilding the context in the next kernel is not done yet: retrieving
 * fails with EOPNOTSUPP, and finishing releases what was handed over.
 */
#define pr_fmt(fmt) "iommufd: " fmt

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

static int iommufd_lu_retrieve(struct liveupdate_file *lf)
{
	/* Rebuilding the context from the handover comes with a later patch. */
	return -EOPNOTSUPP;
}

static void iommufd_lu_finish(struct liveupdate_file *lf)
{
	struct folio *folio;

	/* A retrieved context would own what was handed over. */
	if (lf->file)
		return;
	/*
	 * The handle comes from the previous kernel: check it before KHO
	 * does, which refuses any page it did not preserve.
	 */
	if (!lf->data || !PAGE_ALIGNED(lf->data)) {
		pr_warn("preserved iommufd %llu: bad handle %#llx\n",
			lf->token, lf->data);
		return;
	}
	folio = kho_restore_folio(lf->data);
	if (!folio) {
		pr_warn("preserved iommufd %llu: %#llx was not preserved\n",
			lf->token, lf->data);
		return;
	}
	folio_put(folio);
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
