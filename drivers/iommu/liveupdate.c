// SPDX-License-Identifier: GPL-2.0
/*
 * IOMMU translation kept across a live update.
 *
 * A VFIO device preserved across a live update keeps doing DMA while the
 * kernel is replaced.  Its IOMMU driver preserves what the hardware walks
 * to translate that DMA, leaves translation on at the kexec, and in the
 * next kernel adopts those structures rather than resetting them.  This
 * file is the driver-independent part: the list of preserved devices,
 * handed over as an FLB that the IOMMU driver reads from its initcall,
 * and the finish that hands each device back to its driver when the live
 * update is over.  The format is in <linux/kho/abi/iommu_preserve.h>.
 */
#define pr_fmt(fmt) "iommu: liveupdate: " fmt

#include <linux/cleanup.h>
#include <linux/device.h>
#include <linux/err.h>
#include <linux/iommu.h>
#include <linux/iommu-liveupdate.h>
#include <linux/kexec_handover.h>
#include <linux/kho/abi/iommu_preserve.h>
#include <linux/liveupdate.h>
#include <linux/mm.h>
#include <linux/mutex.h>
#include <linux/overflow.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/xarray.h>

#include "iommu-priv.h"

static unsigned long iommu_lu_key(u16 segment, u16 rid)
{
	return (unsigned long)segment << 16 | rid;
}

/* ---- outgoing ----------------------------------------------------------- */

/*
 * The preserved devices by segment and RID.  Written under iommu_lu_lock;
 * read locklessly by the IOMMU driver's shutdown, with interrupts off.
 */
static DEFINE_XARRAY(iommu_lu_devs);
static DEFINE_MUTEX(iommu_lu_lock);
static unsigned int iommu_lu_nr_devs;
static bool iommu_lu_frozen;

struct iommu_lu_dev {
	struct device *dev;
	struct iommu_preserve_dev rec;
};

static int iommu_lu_rid(struct device *dev, u16 *segment, u16 *rid)
{
	struct pci_dev *pdev;

	if (!dev_is_pci(dev))
		return -EOPNOTSUPP;
	pdev = to_pci_dev(dev);
	*segment = pci_domain_nr(pdev->bus);
	*rid = pci_dev_id(pdev);
	return 0;
}

/**
 * iommu_liveupdate_preserve_device() - keep a device's DMA translated
 * @dev: a PCI device attached to a paging domain
 *
 * Ask @dev's IOMMU driver to keep translating its DMA across the live
 * update, through the domain attached now.  The caller (a file handler
 * bound to iommu_liveupdate_flb, from its preserve) guarantees that the
 * domain stays attached and unchanged, and its mappings too, until
 * iommu_liveupdate_unpreserve_device() or the kexec.
 *
 * Return: 0; -ENOENT if no file of a handler bound to the FLB is being
 * preserved; -EOPNOTSUPP if @dev is not PCI or its IOMMU driver cannot do
 * it; -EBUSY if @dev is preserved already; or the driver's error.
 */
int iommu_liveupdate_preserve_device(struct device *dev)
{
	const struct iommu_ops *ops;
	struct iommu_lu_dev *d;
	u16 segment, rid;
	void *obj;
	int err;

	err = iommu_lu_rid(dev, &segment, &rid);
	if (err)
		return err;
	err = liveupdate_flb_get_outgoing(&iommu_liveupdate_flb, &obj);
	if (err)
		return err;
	if (!device_iommu_mapped(dev))
		return -EOPNOTSUPP;
	ops = dev_iommu_ops(dev);
	if (!ops->liveupdate_preserve || !ops->liveupdate_unpreserve)
		return -EOPNOTSUPP;

	d = kzalloc_obj(*d, GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	d->dev = dev;
	d->rec.segment = segment;
	d->rec.rid = rid;

	guard(mutex)(&iommu_lu_lock);
	err = xa_insert(&iommu_lu_devs, iommu_lu_key(segment, rid), d,
			GFP_KERNEL);
	if (err) {
		kfree(d);
		return err;
	}
	err = ops->liveupdate_preserve(dev, &d->rec);
	if (err) {
		xa_erase(&iommu_lu_devs, iommu_lu_key(segment, rid));
		kfree(d);
		return err;
	}
	iommu_lu_nr_devs++;
	return 0;
}
EXPORT_SYMBOL_GPL(iommu_liveupdate_preserve_device);

/**
 * iommu_liveupdate_unpreserve_device() - undo iommu_liveupdate_preserve_device()
 * @dev: the device
 *
 * Its IOMMU driver no longer keeps anything for the next kernel; the
 * translation itself never changed.
 */
void iommu_liveupdate_unpreserve_device(struct device *dev)
{
	struct iommu_lu_dev *d;
	u16 segment, rid;

	if (iommu_lu_rid(dev, &segment, &rid))
		return;

	guard(mutex)(&iommu_lu_lock);
	d = xa_erase(&iommu_lu_devs, iommu_lu_key(segment, rid));
	if (WARN_ON(!d))
		return;
	dev_iommu_ops(dev)->liveupdate_unpreserve(dev, &d->rec);
	iommu_lu_nr_devs--;
	kfree(d);
}
EXPORT_SYMBOL_GPL(iommu_liveupdate_unpreserve_device);

/**
 * iommu_liveupdate_committed() - is the kexec under way with devices kept?
 *
 * For IOMMU drivers' shutdown, which keeps translation on for the devices
 * it kept.
 *
 * Return: true from the freeze of the live update reboot on.
 */
bool iommu_liveupdate_committed(void)
{
	return READ_ONCE(iommu_lu_frozen);
}

/**
 * iommu_liveupdate_rid_preserved() - is this requester ID kept translated?
 * @segment: PCI segment
 * @rid: requester ID
 *
 * Lockless; for IOMMU drivers' shutdown, once committed.
 *
 * Return: true if the device at @segment, @rid is preserved.
 */
bool iommu_liveupdate_rid_preserved(u16 segment, u16 rid)
{
	return xa_load(&iommu_lu_devs, iommu_lu_key(segment, rid));
}

static int iommu_lu_preserve(struct liveupdate_flb *flb,
			     struct liveupdate_flb_state *out)
{
	/* The devices are added one by one; the table is written at freeze. */
	out->obj = &iommu_lu_devs;
	out->data = 0;
	return 0;
}

static void iommu_lu_unpreserve(struct liveupdate_flb *flb,
				struct liveupdate_flb_state *out)
{
	/* Every device was unpreserved with its file, before the FLB. */
	WARN_ON(!xa_empty(&iommu_lu_devs));
}

static int iommu_lu_freeze(struct liveupdate_flb *flb,
			   struct liveupdate_flb_state *out)
{
	struct iommu_preserve_table *table;
	struct iommu_lu_dev *d;
	unsigned long key;
	u32 i = 0;

	guard(mutex)(&iommu_lu_lock);
	table = kho_alloc_preserve(struct_size(table, devs, iommu_lu_nr_devs));
	if (IS_ERR(table))
		return PTR_ERR(table);
	table->magic = IOMMU_PRESERVE_MAGIC;
	table->nr_devs = iommu_lu_nr_devs;
	xa_for_each(&iommu_lu_devs, key, d)
		table->devs[i++] = d->rec;
	out->data = virt_to_phys(table);
	WRITE_ONCE(iommu_lu_frozen, true);
	return 0;
}

static void iommu_lu_unfreeze(struct liveupdate_flb *flb,
			      struct liveupdate_flb_state *out)
{
	guard(mutex)(&iommu_lu_lock);
	WRITE_ONCE(iommu_lu_frozen, false);
	kho_unpreserve_free(phys_to_virt(out->data));
	out->data = 0;
}

/* ---- incoming ----------------------------------------------------------- */

struct iommu_lu_in {
	struct iommu_preserve_table *table;
	struct xarray devs;		/* entries of @table by segment and RID */
};

/*
 * The incoming devices, from the FLB's retrieve to its finish; a device
 * leaves @devs when it is finished.  iommu_lu_in_lock serializes the
 * finishes; lookups from the IOMMU driver's init need no lock.
 */
static struct iommu_lu_in *iommu_lu_in;
static DEFINE_MUTEX(iommu_lu_in_lock);
static const struct iommu_liveupdate_driver *iommu_lu_drivers[2];

static struct iommu_preserve_table *iommu_lu_table_in(u64 phys)
{
	struct iommu_preserve_table *table;
	struct folio *folio;

	if (!phys || !PAGE_ALIGNED(phys))
		return ERR_PTR(-EBADMSG);
	folio = kho_restore_folio(phys);
	if (!folio)
		return ERR_PTR(-EBADMSG);
	table = folio_address(folio);
	if (table->magic != IOMMU_PRESERVE_MAGIC || table->reserved ||
	    struct_size(table, devs, table->nr_devs) > folio_size(folio)) {
		folio_put(folio);
		return ERR_PTR(-EBADMSG);
	}
	return table;
}

static void iommu_lu_in_free(struct iommu_lu_in *in)
{
	xa_destroy(&in->devs);
	folio_put(virt_to_folio(in->table));
	kfree(in);
}

static int iommu_lu_retrieve(struct liveupdate_flb *flb,
			     struct liveupdate_flb_state *in_state)
{
	struct iommu_lu_in *in;
	u32 i;
	int err;

	if (in_state->version != IOMMU_PRESERVE_VERSION)
		return -EOPNOTSUPP;
	in = kzalloc_obj(*in, GFP_KERNEL);
	if (!in)
		return -ENOMEM;
	xa_init(&in->devs);
	in->table = iommu_lu_table_in(in_state->data);
	if (IS_ERR(in->table)) {
		err = PTR_ERR(in->table);
		kfree(in);
		return err;
	}
	for (i = 0; i < in->table->nr_devs; i++) {
		struct iommu_preserve_dev *rec = &in->table->devs[i];

		/* A device listed twice would be finished twice. */
		err = xa_insert(&in->devs, iommu_lu_key(rec->segment, rec->rid),
				rec, GFP_KERNEL);
		if (err) {
			iommu_lu_in_free(in);
			return err == -EBUSY ? -EBADMSG : err;
		}
	}
	WRITE_ONCE(iommu_lu_in, in);
	in_state->obj = in;
	return 0;
}

static struct pci_dev *iommu_lu_pci_dev(const struct iommu_preserve_dev *rec)
{
	return pci_get_domain_bus_and_slot(rec->segment, PCI_BUS_NUM(rec->rid),
					   rec->rid & 0xff);
}

/*
 * The live update is over for the device of @rec, which is off the list:
 * its driver tears down what nobody took over, and the device, which
 * nothing could bind until now, is an ordinary one again, on its group's
 * domain.
 */
static void iommu_lu_finish_dev(const struct iommu_preserve_dev *rec)
{
	const struct iommu_liveupdate_driver *drv = NULL;
	struct iommu_domain *domain;
	struct pci_dev *pdev;
	bool abandoned = false;

	/*
	 * Nobody took the device over (its file was not retrieved, or not
	 * finished by its handler, or no IOMMU translates for it): stop its
	 * DMA before the translation goes, and before the memory it wrote to
	 * is released.
	 */
	pdev = iommu_lu_pci_dev(rec);
	if (pdev && (!pdev->dev.iommu || pdev->dev.iommu->attach_deferred)) {
		pci_clear_master(pdev);
		abandoned = true;
	}

	if (rec->driver < ARRAY_SIZE(iommu_lu_drivers))
		drv = iommu_lu_drivers[rec->driver];
	if (drv)
		drv->finish(rec);
	else
		pr_warn("%04x:%02x:%02x.%d: no IOMMU driver took it over; what was kept for it stays reserved\n",
			rec->segment, PCI_BUS_NUM(rec->rid),
			PCI_SLOT(rec->rid), PCI_FUNC(rec->rid));

	if (!pdev)
		return;
	domain = iommu_get_domain_for_dev(&pdev->dev);
	if (domain)
		iommu_deferred_attach(&pdev->dev, domain);
	/* Reset, if abandoned, as a driver finds a device at boot. */
	pci_dev_liveupdate_release(pdev, abandoned);
	pci_dev_put(pdev);
}

/**
 * iommu_liveupdate_hold_device() - a device's translation was adopted
 * @segment: PCI segment
 * @rid: requester ID
 *
 * For the IOMMU driver, once it took over the translation of a device the
 * previous kernel kept: PCI enumeration is done, and no driver may bind
 * the device until its file hands it over or the update is finished for
 * it (pci_dev_liveupdate_hold()).
 */
void iommu_liveupdate_hold_device(u16 segment, u16 rid)
{
	struct pci_dev *pdev = pci_get_domain_bus_and_slot(segment,
							   PCI_BUS_NUM(rid),
							   rid & 0xff);

	if (pdev) {
		pci_dev_liveupdate_hold(pdev);
		pci_dev_put(pdev);
	}
}

static void iommu_lu_finish(struct liveupdate_flb *flb,
			    struct liveupdate_flb_state *in_state,
			    bool retrieved)
{
	struct iommu_lu_in *in = in_state->obj;
	struct iommu_preserve_table *table;
	struct iommu_preserve_dev *rec;
	unsigned long key;

	if (!retrieved) {
		/* Nobody read it, so no IOMMU adopted anything from it. */
		table = iommu_lu_table_in(in_state->data);
		if (!IS_ERR(table))
			folio_put(virt_to_folio(table));
		return;
	}

	/* The devices whose own files did not finish them. */
	guard(mutex)(&iommu_lu_in_lock);
	xa_for_each(&in->devs, key, rec) {
		xa_erase(&in->devs, key);
		iommu_lu_finish_dev(rec);
	}
	WRITE_ONCE(iommu_lu_in, NULL);
	iommu_lu_in_free(in);
}

/**
 * iommu_liveupdate_finish_device() - the live update is over for a device
 * @dev: a device the previous kernel kept translated
 *
 * For the file handler of @dev, from its finish: the device's IOMMU driver
 * tears down what nobody took over (the device is blocked then, if it
 * still does DMA) and frees what was kept for it, and the device can be
 * bound to drivers again.  Before the memory it did DMA into is released
 * with the rest of its session, not when the last session is finished.
 * Nothing if @dev was not kept or is finished already.
 */
void iommu_liveupdate_finish_device(struct device *dev)
{
	struct iommu_preserve_dev *rec;
	struct iommu_lu_in *in;
	u16 segment, rid;

	if (iommu_lu_rid(dev, &segment, &rid))
		return;
	guard(mutex)(&iommu_lu_in_lock);
	in = iommu_lu_in;
	rec = in ? xa_erase(&in->devs, iommu_lu_key(segment, rid)) : NULL;
	if (rec)
		iommu_lu_finish_dev(rec);
}
EXPORT_SYMBOL_GPL(iommu_liveupdate_finish_device);

/**
 * iommu_liveupdate_incoming() - take over the devices the previous kernel kept
 * @drv: the calling IOMMU driver
 *
 * For an IOMMU driver's initcall: read the devices the previous kernel
 * kept translated, and register @drv to finish those of its own.  Look
 * them up with iommu_liveupdate_incoming_find() until the live update is
 * finished.
 *
 * Return: the number of devices of @drv; -ENOENT if the previous kernel
 * kept none (or this is not a live update); another errno if it kept some
 * but their description is unusable, in which case the driver must keep
 * DMA blocked rather than let it through untranslated.
 */
int iommu_liveupdate_incoming(const struct iommu_liveupdate_driver *drv)
{
	struct iommu_lu_in *in;
	int err, nr = 0;
	u32 i;

	if (WARN_ON(!drv->id || drv->id >= ARRAY_SIZE(iommu_lu_drivers)))
		return -EINVAL;
	err = liveupdate_flb_get_incoming(&iommu_liveupdate_flb, (void **)&in);
	if (err)
		return err;
	iommu_lu_drivers[drv->id] = drv;
	for (i = 0; i < in->table->nr_devs; i++)
		nr += in->table->devs[i].driver == drv->id;
	return nr;
}

/**
 * iommu_liveupdate_incoming_for_each() - every device a driver's entries name
 * @driver: the %IOMMU_PRESERVE_DRIVER_* of the entries
 * @fn: called for each, until it returns non-zero
 * @arg: passed to @fn
 *
 * For the IOMMU driver's init, after iommu_liveupdate_incoming().
 *
 * Return: what @fn returned last, or 0.
 */
int iommu_liveupdate_incoming_for_each(u32 driver,
				       int (*fn)(const struct iommu_preserve_dev *rec,
						 void *arg),
				       void *arg)
{
	struct iommu_preserve_dev *rec;
	unsigned long key;
	int ret = 0;

	if (!iommu_lu_in)
		return 0;
	xa_for_each(&iommu_lu_in->devs, key, rec) {
		if (rec->driver != driver)
			continue;
		ret = fn(rec, arg);
		if (ret)
			break;
	}
	return ret;
}

/**
 * iommu_liveupdate_incoming_find() - a device the previous kernel kept
 * @segment: PCI segment
 * @rid: requester ID
 *
 * Valid after iommu_liveupdate_incoming() and until the live update is
 * finished; the caller checks the entry's driver.
 *
 * Return: the device's entry, or NULL.
 */
const struct iommu_preserve_dev *
iommu_liveupdate_incoming_find(u16 segment, u16 rid)
{
	struct iommu_lu_in *in = READ_ONCE(iommu_lu_in);

	return in ? xa_load(&in->devs, iommu_lu_key(segment, rid)) : NULL;
}

/**
 * iommu_liveupdate_stop_devices() - no IOMMU will translate for kept devices
 *
 * For an IOMMU driver disabled in this kernel (on the command line) that
 * finds translation on after a live update, before it turns it off: the
 * previous kernel leaves it on only for the devices it kept doing DMA, and
 * their DMA must not reach memory untranslated, so their bus mastering
 * goes off.  If which ones is unknown (the handover is damaged or lost),
 * every PCI device's does: this runs before drivers bind.  The kept ones
 * are held until finished (pci_dev_liveupdate_hold()), which resets them
 * if it can; their files cannot be retrieved without an IOMMU.
 */
void iommu_liveupdate_stop_devices(void)
{
	struct pci_dev *pdev = NULL;
	struct iommu_lu_in *in;
	int err;
	u32 i;

	err = liveupdate_flb_get_incoming(&iommu_liveupdate_flb, (void **)&in);
	if (err) {
		pr_err("devices kept by the previous kernel unknown (%pe), no IOMMU: stopping every bus master\n",
		       ERR_PTR(err));
		for_each_pci_dev(pdev)
			pci_clear_master(pdev);
		return;
	}
	for (i = 0; i < in->table->nr_devs; i++) {
		pdev = iommu_lu_pci_dev(&in->table->devs[i]);
		if (!pdev)
			continue;
		/* Held too: no driver may set it going again until finished. */
		pci_dev_liveupdate_hold(pdev);
		pci_clear_master(pdev);
		pci_wait_for_pending_transaction(pdev);
		pci_warn(pdev, "kept doing DMA by the previous kernel, but no IOMMU translates for it: bus mastering off\n");
		pci_dev_put(pdev);
	}
}

static const struct liveupdate_flb_ops iommu_lu_flb_ops = {
	.preserve	= iommu_lu_preserve,
	.unpreserve	= iommu_lu_unpreserve,
	.freeze		= iommu_lu_freeze,
	.unfreeze	= iommu_lu_unfreeze,
	.retrieve	= iommu_lu_retrieve,
	.finish		= iommu_lu_finish,
};

/*
 * iommu_liveupdate_flb - the IOMMU state devices kept across a live update
 *
 * Bound by every file handler that preserves devices doing DMA, so that
 * it is preserved while one of their files is, and finished after the
 * last of them.  Built in, so the IOMMU driver reads it at its initcall.
 */
struct liveupdate_flb iommu_liveupdate_flb = {
	.compatible	= IOMMU_PRESERVE_COMPATIBLE,
	.version	= IOMMU_PRESERVE_VERSION,
	.ops		= &iommu_lu_flb_ops,
};
EXPORT_SYMBOL_GPL(iommu_liveupdate_flb);
