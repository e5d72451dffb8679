// SPDX-License-Identifier: GPL-2.0
/*
 * VFIO: device cdevs preserved across a live update.
 *
 * A VMM preserves the cdev of a vfio-pci device it drives, after the
 * iommufd the device is bound to.  From then until the kexec the device
 * stays bound and attached as it is (attach, detach and reset are
 * refused), its bus master bit survives the kexec, and its IOMMU keeps
 * translating its DMA through the kexec.  The format is in
 * <linux/kho/abi/vfio_preserve.h>.
 */
#include <linux/cleanup.h>
#include <linux/file.h>
#include <linux/iommu-liveupdate.h>
#include <linux/iommufd.h>
#include <linux/kexec_handover.h>
#include <linux/kho/abi/vfio_preserve.h>
#include <linux/liveupdate.h>
#include <linux/pci.h>
#include <linux/vfio.h>

#include "vfio.h"

static bool vfio_lu_can_preserve(struct liveupdate_file_handler *handler,
				 struct file *file)
{
	struct vfio_device_file *df = file->private_data;

	return file->f_op == &vfio_device_fops && !df->group;
}

/* The checks of vfio_lu_preserve() on the device, with its dev_set locked. */
static int vfio_lu_check(struct vfio_device_file *df, u32 *pt_id)
{
	struct vfio_device *device = df->device;
	struct pci_dev *pdev;

	/* Paired with smp_store_release() following vfio_df_open() */
	if (!smp_load_acquire(&df->access_granted) || !df->iommufd ||
	    !device->iommufd_device || !device->iommufd_attached)
		return -EINVAL;
	if (!dev_is_pci(device->dev))
		return -EOPNOTSUPP;
	pdev = to_pci_dev(device->dev);
	/*
	 * A variant driver keeps state of its own, a VF depends on its PF,
	 * and a bridge above the device would stop forwarding its DMA at the
	 * kexec: none of that is kept yet.
	 */
	if (!pdev->driver || strcmp(pdev->driver->name, "vfio-pci") ||
	    pdev->is_virtfn || !pci_is_root_bus(pdev->bus))
		return -EOPNOTSUPP;
	return iommufd_device_get_attached_pt(device->iommufd_device, pt_id) ?
	       -EINVAL : 0;
}

static int vfio_lu_preserve(struct liveupdate_file *lf)
{
	struct vfio_device_file *df = lf->file->private_data;
	struct vfio_device *device = df->device;
	struct vfio_preserve_device *ser;
	struct pci_dev *pdev;
	u64 token;
	u32 pt_id;
	int err;

	guard(mutex)(&device->dev_set->lock);
	err = vfio_lu_check(df, &pt_id);
	if (err)
		return err;
	pdev = to_pci_dev(device->dev);
	/* Its iommufd, preserved first, keeps the page table as it is. */
	err = liveupdate_file_dep_outgoing(lf, iommufd_ctx_file(df->iommufd),
					   &token);
	if (err)
		return err;
	if (WARN_ON(!iommufd_ctx_is_frozen(df->iommufd)))
		return -EBUSY;

	ser = kho_alloc_preserve(sizeof(*ser));
	if (IS_ERR(ser))
		return PTR_ERR(ser);
	ser->iommufd_token = token;
	ser->segment = pci_domain_nr(pdev->bus);
	ser->rid = pci_dev_id(pdev);
	ser->vendor = pdev->vendor;
	ser->device = pdev->device;
	ser->devid = df->devid;
	ser->pt_id = pt_id;

	err = iommu_liveupdate_preserve_device(&pdev->dev);
	if (err) {
		kho_unpreserve_free(ser);
		return err;
	}
	device->liveupdate_frozen = true;
	pci_dev_set_liveupdate(pdev, true);
	lf->data = virt_to_phys(ser);
	lf->private = ser;
	return 0;
}

static void vfio_lu_unpreserve(struct liveupdate_file *lf)
{
	struct vfio_device_file *df = lf->file->private_data;
	struct vfio_device *device = df->device;
	struct pci_dev *pdev = to_pci_dev(device->dev);

	guard(mutex)(&device->dev_set->lock);
	pci_dev_set_liveupdate(pdev, false);
	device->liveupdate_frozen = false;
	iommu_liveupdate_unpreserve_device(&pdev->dev);
	kho_unpreserve_free(lf->private);
	lf->private = NULL;
}

static int vfio_lu_retrieve(struct liveupdate_file *lf)
{
	/* Binding the device to the retrieved iommufd is the next step. */
	return -EOPNOTSUPP;
}

static void vfio_lu_finish(struct liveupdate_file *lf)
{
	struct folio *folio;

	if (lf->file || !lf->data || !PAGE_ALIGNED(lf->data))
		return;
	/*
	 * Never retrieved.  What the IOMMU kept for the device is released
	 * by the IOMMU FLB's finish, after the last file of this handler.
	 */
	folio = kho_restore_folio(lf->data);
	if (folio)
		folio_put(folio);
}

static const struct liveupdate_file_ops vfio_lu_ops = {
	.can_preserve	= vfio_lu_can_preserve,
	.preserve	= vfio_lu_preserve,
	.unpreserve	= vfio_lu_unpreserve,
	.retrieve	= vfio_lu_retrieve,
	.finish		= vfio_lu_finish,
};

static struct liveupdate_file_handler vfio_lu_handler = {
	.compatible	= VFIO_PRESERVE_COMPATIBLE,
	.version	= VFIO_PRESERVE_VERSION,
	.ops		= &vfio_lu_ops,
	.owner		= THIS_MODULE,
};

/**
 * vfio_liveupdate_init() - make vfio-pci device cdevs preservable
 *
 * Return: 0, also when live update is off; or an errno.
 */
int __init vfio_liveupdate_init(void)
{
	int err = liveupdate_register_file_handler(&vfio_lu_handler);

	if (err)
		return err == -EOPNOTSUPP ? 0 : err;
	err = liveupdate_register_flb(&vfio_lu_handler, &iommu_liveupdate_flb);
	if (err)
		liveupdate_unregister_file_handler(&vfio_lu_handler);
	return err;
}

/**
 * vfio_liveupdate_exit() - undo vfio_liveupdate_init()
 */
void vfio_liveupdate_exit(void)
{
	liveupdate_unregister_flb(&vfio_lu_handler, &iommu_liveupdate_flb);
	liveupdate_unregister_file_handler(&vfio_lu_handler);
}
