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
#include <linux/anon_inodes.h>
#include <linux/cleanup.h>
#include <linux/file.h>
#include <linux/iommu-liveupdate.h>
#include <linux/iommufd.h>
#include <linux/kexec_handover.h>
#include <linux/kho/abi/vfio_preserve.h>
#include <linux/liveupdate.h>
#include <linux/pci.h>
#include <linux/vfio.h>
#include <linux/vfio_pci_core.h>

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
	    pdev->is_virtfn || pci_num_vf(pdev) || !pci_is_root_bus(pdev->bus))
		return -EOPNOTSUPP;
	/*
	 * Interrupts are not kept yet: the next kernel does not know where
	 * an MSI of the device would go.
	 */
	if (container_of(device, struct vfio_pci_core_device, vdev)->irq_type !=
	    VFIO_PCI_NUM_IRQS)
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

	/* No reset from here on, and bus mastering kept at the kexec. */
	err = pci_dev_set_liveupdate(pdev, true);
	if (!err) {
		err = iommu_liveupdate_preserve_device(&pdev->dev);
		if (err)
			pci_dev_set_liveupdate(pdev, false);
	}
	if (err) {
		kho_unpreserve_free(ser);
		return err;
	}
	device->liveupdate_frozen = true;
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

/* The preserved record (its folio is kept in @lf->private until finish). */
static const struct vfio_preserve_device *vfio_lu_record(struct liveupdate_file *lf)
{
	struct folio *folio;

	if (lf->version != VFIO_PRESERVE_VERSION)
		return ERR_PTR(-EOPNOTSUPP);
	folio = liveupdate_file_in_folio(lf);
	if (IS_ERR(folio))
		return ERR_CAST(folio);
	if (folio_size(folio) < sizeof(struct vfio_preserve_device))
		return ERR_PTR(-EBADMSG);
	return folio_address(folio);
}

/*
 * The preserved device, bound to vfio-pci: nothing bound it at boot, so
 * that nothing touched it.  Returns it with a registration reference.
 */
static struct vfio_device *vfio_lu_device(const struct vfio_preserve_device *ser)
{
	struct pci_dev *pdev __free(pci_dev_put) =
		pci_get_domain_bus_and_slot(ser->segment, PCI_BUS_NUM(ser->rid),
					    ser->rid & 0xff);
	struct vfio_pci_core_device *core;
	struct device_driver *drv;
	struct vfio_device *device;
	int err;

	if (!pdev || pdev->vendor != ser->vendor || pdev->device != ser->device)
		return ERR_PTR(-ENODEV);
	/* An IOMMU off in this kernel stopped it (iommu_liveupdate_stop_devices()). */
	if (!device_iommu_mapped(&pdev->dev))
		return ERR_PTR(-ENODEV);

	if (!pdev->dev.driver) {
		drv = driver_find("vfio-pci", &pci_bus_type);
		if (!drv || !try_module_get(drv->owner))
			return ERR_PTR(-ENODEV);
		err = device_set_driver_override(&pdev->dev, "vfio-pci");
		if (!err)
			err = device_driver_attach(drv, &pdev->dev);
		if (err)
			device_set_driver_override(&pdev->dev, NULL);
		module_put(drv->owner);
		if (err)
			return ERR_PTR(err);
	}

	guard(device)(&pdev->dev);
	if (!pdev->driver || strcmp(pdev->driver->name, "vfio-pci"))
		return ERR_PTR(-EBUSY);
	core = dev_get_drvdata(&pdev->dev);
	device = &core->vdev;
	if (!vfio_device_try_get_registration(device))
		return ERR_PTR(-ENODEV);
	return device;
}

/* What VFIO_DEVICE_BIND_IOMMUFD does, and the attach the device had. */
static int vfio_lu_bind(struct vfio_device_file *df, struct iommufd_ctx *ictx,
			const struct vfio_preserve_device *ser)
{
	struct vfio_device *device = df->device;
	struct pci_dev *pdev = to_pci_dev(device->dev);
	int err;

	err = vfio_device_block_group(device);
	if (err)
		return err;

	mutex_lock(&device->dev_set->lock);
	df->iommufd = ictx;
	/*
	 * A device whose translation was kept is held
	 * (pci_dev_liveupdate_hold()) until the update is finished: this
	 * open, and only this one, neither resets it nor clears its bus
	 * master bit.  One its IOMMU could not adopt is not held, and is
	 * opened as at any boot: its DMA was stopped at boot anyway.
	 */
	if (!pci_dev_is_liveupdate(pdev))
		pci_info(pdev, "its translation was not kept: handed over as at any boot\n");
	device->liveupdate_retrieving = true;
	err = vfio_df_open(df);
	device->liveupdate_retrieving = false;
	if (err)
		goto out_unlock;

	err = iommufd_device_restore_attach(device->iommufd_device, ser->devid,
					    ser->pt_id, &df->devid);
	if (err) {
		vfio_df_close(df);
		goto out_unlock;
	}
	device->iommufd_attached = true;
	device->cdev_opened = true;
	/* Paired with smp_load_acquire() in vfio_device_fops::ioctl/read/... */
	smp_store_release(&df->access_granted, true);
	mutex_unlock(&device->dev_set->lock);
	return 0;

out_unlock:
	df->iommufd = NULL;
	mutex_unlock(&device->dev_set->lock);
	vfio_device_unblock_group(device);
	return err;
}

static int vfio_lu_retrieve(struct liveupdate_file *lf)
{
	const struct vfio_preserve_device *ser = vfio_lu_record(lf);
	struct vfio_device_file *df;
	struct vfio_device *device;
	struct iommufd_ctx *ictx;
	struct file *ifile, *file;
	int err;

	if (IS_ERR(ser))
		return PTR_ERR(ser);
	/* Its iommufd first: the IOAS and its mappings exist again. */
	err = liveupdate_file_dep_incoming(lf, ser->iommufd_token, &ifile);
	if (err)
		return err;
	ictx = iommufd_ctx_from_file(ifile);
	fput(ifile);
	if (IS_ERR(ictx))
		return -EBADMSG;

	device = vfio_lu_device(ser);
	if (IS_ERR(device)) {
		iommufd_ctx_put(ictx);
		return PTR_ERR(device);
	}
	df = vfio_allocate_device_file(device);
	if (IS_ERR(df)) {
		vfio_device_put_registration(device);
		iommufd_ctx_put(ictx);
		return PTR_ERR(df);
	}
	file = anon_inode_getfile_fmode("[vfio-device]", &vfio_device_fops, df,
					O_RDWR, FMODE_PREAD | FMODE_PWRITE);
	if (IS_ERR(file)) {
		kfree(df);
		vfio_device_put_registration(device);
		iommufd_ctx_put(ictx);
		return PTR_ERR(file);
	}
	/* As a cdev open: every mmap of the device in one address space. */
	file->f_mapping = device->inode->i_mapping;

	err = vfio_lu_bind(df, ictx, ser);
	if (err) {
		iommufd_ctx_put(ictx);
		/* The release puts the registration and frees @df. */
		fput(file);
		return err;
	}
	lf->file = file;
	return 0;
}

static void vfio_lu_finish(struct liveupdate_file *lf)
{
	const struct vfio_preserve_device *ser = vfio_lu_record(lf);
	struct folio *folio = liveupdate_file_in_folio(lf);
	struct pci_dev *pdev;

	lf->private = NULL;
	if (IS_ERR(ser)) {
		/* Restores the record if nothing did, e.g. another version. */
		if (!IS_ERR(folio))
			folio_put(folio);
		/* Which device it is, and so whether it still does DMA: unknown. */
		liveupdate_file_not_released(lf);
		return;
	}
	pdev = pci_get_domain_bus_and_slot(ser->segment, PCI_BUS_NUM(ser->rid),
					   ser->rid & 0xff);
	if (pdev && pdev->vendor == ser->vendor &&
	    pdev->device == ser->device) {
		/*
		 * Nobody took it: stop its DMA, then the IOMMU's translation.
		 * Only if still held: one its IOMMU could not adopt was
		 * stopped at boot, and may have a driver of its own by now.
		 */
		if (!lf->file && pci_dev_is_liveupdate(pdev))
			pci_clear_master(pdev);
		/*
		 * Before the memfds it did DMA into are finished, which they
		 * are after this file, which depends on them.
		 */
		iommu_liveupdate_finish_device(&pdev->dev);
	} else {
		liveupdate_file_not_released(lf);
	}
	pci_dev_put(pdev);
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
