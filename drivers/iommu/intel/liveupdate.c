// SPDX-License-Identifier: GPL-2.0
/*
 * Intel VT-d: translation kept across a live update.
 *
 * A preserved device goes on doing DMA through the kexec.  Its root
 * table, the context table of its bus and its second-stage page table are
 * preserved with KHO; at the kexec translation stays on, and only the
 * context entries of preserved devices stay present.  The next kernel
 * keeps translation on and copies those context entries, and only those,
 * as the kdump kernel copies all of them: the hardware goes on walking
 * the same page table, and the DMA never stops.  When the live update is
 * finished, an entry nobody took over is torn down, its domain ID freed
 * and its page table given back.  Legacy (not scalable) mode only.  See
 * <linux/kho/abi/iommu_preserve.h> for what is handed over.
 */
#define pr_fmt(fmt) "DMAR: " fmt

#include <linux/bitfield.h>
#include <linux/cleanup.h>
#include <linux/dmar.h>
#include <linux/iommu-liveupdate.h>
#include <linux/kexec_handover.h>
#include <linux/kho/abi/iommu_preserve.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/xarray.h>

#include "iommu.h"

/* Second-stage paging entries (VT-d spec 9.8), as the hardware reads them. */
#define VTD_LU_PTE_ADDR		GENMASK_ULL(51, 12)
#define VTD_LU_PTE_PS		BIT_ULL(7)
#define VTD_LU_PTES		(VTD_PAGE_SIZE / sizeof(u64))
/* Context entry: translation type (bits 3:2) and address width (2:0). */
#define VTD_LU_CTX_TT		GENMASK_ULL(3, 2)
#define VTD_LU_CTX_AW		GENMASK_ULL(2, 0)

/**
 * struct vtd_lu_unit - one remapping unit's part in a live update
 * @nr_out: preserved devices behind the unit
 * @bus_refs: preserved devices per bus: the bus's context table is
 *	preserved while non-zero
 * @blocking: incoming: translation stays on, but nothing of the previous
 *	kernel is used: every device is blocked until attached anew
 * @adopting: incoming: context entries of preserved devices are copied
 * @old_root: incoming: the root table the previous kernel left, and the
 *	context tables it points to for the buses of preserved devices,
 *	taken back from KHO (so known to be what was preserved) before the
 *	copy reads them, freed once the unit uses its own
 * @old_ctx: see @old_root, by bus
 * @held: incoming: the requester IDs the previous kernel kept behind this
 *	unit, until finished: their devices stay deferred-attach, so that
 *	nothing attaches a domain to a device whose DMA may be running
 * @kept: incoming: the requester IDs whose context entries were copied,
 *	and their domain IDs
 * @dids: incoming: how many copied entries use each domain ID, which the
 *	copy reserved and the last of them frees
 */
struct vtd_lu_unit {
	unsigned int nr_out;
	u16 bus_refs[256];
	bool blocking;
	bool adopting;
	struct folio *old_root;
	struct folio *old_ctx[256];
	struct xarray held;
	struct xarray kept;
	struct xarray dids;
};

/*
 * Incoming: this boot follows a live update, so translation found on is
 * the previous kernel's doing; and how many kept context entries use each
 * page table (by the PFN of its top), which is freed with the last of
 * them.  Written by the IOMMU init and the finishes.
 */
static bool vtd_lu_in_mode;
static DEFINE_XARRAY(vtd_lu_tops);

/* Units by seq_id; written under vtd_lu_lock, or at init. */
static DEFINE_XARRAY(vtd_lu_units);
static DEFINE_MUTEX(vtd_lu_lock);

/* Preserved page tables by the PFN of their top table: a refcount. */
static DEFINE_XARRAY(vtd_lu_domains);

static struct vtd_lu_unit *vtd_lu_unit(struct intel_iommu *iommu, bool alloc)
{
	struct vtd_lu_unit *unit = xa_load(&vtd_lu_units, iommu->seq_id);

	if (unit || !alloc)
		return unit;
	unit = kzalloc_obj(*unit, GFP_KERNEL);
	if (!unit)
		return NULL;
	xa_init(&unit->held);
	xa_init(&unit->kept);
	xa_init(&unit->dids);
	if (xa_err(xa_store(&vtd_lu_units, iommu->seq_id, unit, GFP_KERNEL))) {
		kfree(unit);
		return NULL;
	}
	return unit;
}

/*
 * A walk of a second-stage page table, top table first.  @pre is called on
 * each table before its entries are read: a negative return ends the walk
 * with that error, a positive one skips the table.  @post is called once
 * its subtables are done.  The depth is at most 5 (a 5-level table).
 */
struct vtd_lu_walk {
	int (*pre)(struct vtd_lu_walk *w, phys_addr_t table);
	void (*post)(struct vtd_lu_walk *w, phys_addr_t table);
	unsigned long count;
};

static int vtd_lu_walk(struct vtd_lu_walk *w, phys_addr_t table, int level)
{
	u64 *ptes = phys_to_virt(table);
	int i, err = 0;

	if (w->pre) {
		err = w->pre(w, table);
		if (err)
			return err < 0 ? err : 0;
	}
	for (i = 0; level > 0 && i < VTD_LU_PTES && !err; i++) {
		u64 pte = READ_ONCE(ptes[i]);

		/* An empty entry, or a leaf: a 2 MiB or 1 GiB page. */
		if (!pte || (level <= 2 && (pte & VTD_LU_PTE_PS)))
			continue;
		err = vtd_lu_walk(w, pte & VTD_LU_PTE_ADDR, level - 1);
	}
	if (w->post)
		w->post(w, table);
	return err;
}

static int vtd_lu_preserve_table(struct vtd_lu_walk *w, phys_addr_t table)
{
	int err = kho_preserve_folio(virt_to_folio(phys_to_virt(table)));

	if (!err)
		w->count++;
	return err;
}

/* Unpreserve the first @w->count tables of the walk. */
static int vtd_lu_unpreserve_table(struct vtd_lu_walk *w, phys_addr_t table)
{
	if (!w->count)
		return -ECANCELED;
	kho_unpreserve_folio(virt_to_folio(phys_to_virt(table)));
	w->count--;
	return 0;
}

/* The level of a second-stage table's top: AW 1, 2, 3 are 3, 4, 5 levels. */
static int vtd_lu_top_level(u64 ctx_hi)
{
	unsigned int aw = FIELD_GET(VTD_LU_CTX_AW, ctx_hi);

	return aw >= 1 && aw <= 3 ? aw + 1 : -EINVAL;
}

/*
 * Preserve the page table whose top is at @top, @level its level, once:
 * devices that share a domain share it.
 */
static int vtd_lu_hold_table(phys_addr_t top, int level)
{
	unsigned long refs = xa_to_value(xa_load(&vtd_lu_domains,
						 PHYS_PFN(top)));
	struct vtd_lu_walk w = { .pre = vtd_lu_preserve_table };
	int err;

	err = xa_err(xa_store(&vtd_lu_domains, PHYS_PFN(top),
			      xa_mk_value(refs + 1), GFP_KERNEL));
	if (err || refs)
		return err;
	err = vtd_lu_walk(&w, top, level);
	if (err) {
		w.pre = vtd_lu_unpreserve_table;
		vtd_lu_walk(&w, top, level);
		xa_erase(&vtd_lu_domains, PHYS_PFN(top));
	}
	return err;
}

static void vtd_lu_release_table(phys_addr_t top, int level)
{
	unsigned long refs = xa_to_value(xa_load(&vtd_lu_domains,
						 PHYS_PFN(top)));
	struct vtd_lu_walk w = {
		.pre = vtd_lu_unpreserve_table,
		.count = ULONG_MAX,
	};

	if (WARN_ON(!refs))
		return;
	if (refs > 1) {
		xa_store(&vtd_lu_domains, PHYS_PFN(top), xa_mk_value(refs - 1),
			 GFP_KERNEL);
		return;
	}
	xa_erase(&vtd_lu_domains, PHYS_PFN(top));
	vtd_lu_walk(&w, top, level);
}

static int vtd_lu_alias(struct pci_dev *pdev, u16 alias, void *data)
{
	return alias != pci_dev_id(pdev);
}

static struct folio *vtd_lu_ctx_folio(struct intel_iommu *iommu, u8 bus)
{
	return virt_to_folio(phys_to_virt(iommu->root_entry[bus].lo &
					  VTD_PAGE_MASK));
}

/**
 * intel_iommu_lu_preserve() - keep a device's translation for the next kernel
 * @dev: the device, attached to a second-stage paging domain
 * @rec: its entry, to fill in
 *
 * Preserve the unit's root table, the device's context table and the
 * domain's page table, which the caller keeps from changing.
 *
 * Return: 0; -EOPNOTSUPP in scalable mode or for a device with DMA aliases;
 * -EINVAL if the device has no paging domain; or KHO's error.
 */
int intel_iommu_lu_preserve(struct device *dev, struct iommu_preserve_dev *rec)
{
	struct device_domain_info *info = dev_iommu_priv_get(dev);
	struct intel_iommu *iommu = info->iommu;
	struct dmar_domain *domain = info->domain;
	struct pt_iommu_vtdss_hw_info hw;
	struct context_entry *ce, ctx = {};
	struct vtd_lu_unit *unit;
	int level, err;

	if (sm_supported(iommu))
		return -EOPNOTSUPP;
	if (!domain || !intel_domain_is_ss_paging(domain))
		return -EINVAL;
	/*
	 * The device's own TLB would keep translations the next kernel
	 * cannot invalidate before it knows the device.
	 */
	if (info->ats_enabled)
		return -EOPNOTSUPP;
	/* Each alias has its own context entry: keep to one. */
	if (dev_is_pci(dev) &&
	    pci_for_each_dma_alias(to_pci_dev(dev), vtd_lu_alias, NULL))
		return -EOPNOTSUPP;

	pt_iommu_vtdss_hw_info(&domain->sspt, &hw);
	spin_lock(&iommu->lock);
	ce = iommu_context_addr(iommu, info->bus, info->devfn, 0);
	if (ce)
		ctx = *ce;
	spin_unlock(&iommu->lock);
	if (!context_present(&ctx) ||
	    context_domain_id(&ctx) != domain_id_iommu(domain, iommu) ||
	    (ctx.lo & VTD_PAGE_MASK) != hw.ssptptr)
		return -EINVAL;
	level = vtd_lu_top_level(ctx.hi);
	if (level < 0)
		return level;

	guard(mutex)(&vtd_lu_lock);
	unit = vtd_lu_unit(iommu, true);
	if (!unit)
		return -ENOMEM;
	err = vtd_lu_hold_table(hw.ssptptr, level);
	if (err)
		return err;
	if (!unit->bus_refs[info->bus]) {
		err = kho_preserve_folio(vtd_lu_ctx_folio(iommu, info->bus));
		if (err)
			goto release_table;
	}
	if (!unit->nr_out) {
		err = kho_preserve_folio(virt_to_folio(iommu->root_entry));
		if (err)
			goto release_ctx;
	}
	unit->bus_refs[info->bus]++;
	unit->nr_out++;

	rec->driver = IOMMU_PRESERVE_DRIVER_VTD;
	rec->data[0] = iommu->reg_phys;
	rec->data[1] = virt_to_phys(iommu->root_entry);
	rec->data[2] = ctx.lo;
	rec->data[3] = ctx.hi;
	return 0;

release_ctx:
	if (!unit->bus_refs[info->bus])
		kho_unpreserve_folio(vtd_lu_ctx_folio(iommu, info->bus));
release_table:
	vtd_lu_release_table(hw.ssptptr, level);
	return err;
}

/**
 * intel_iommu_lu_unpreserve() - undo intel_iommu_lu_preserve()
 * @dev: the device
 * @rec: its entry
 */
void intel_iommu_lu_unpreserve(struct device *dev,
			       const struct iommu_preserve_dev *rec)
{
	struct device_domain_info *info = dev_iommu_priv_get(dev);
	struct intel_iommu *iommu = info->iommu;
	struct vtd_lu_unit *unit;

	guard(mutex)(&vtd_lu_lock);
	unit = vtd_lu_unit(iommu, false);
	if (WARN_ON(!unit || !unit->nr_out || !unit->bus_refs[info->bus]))
		return;
	if (!--unit->nr_out)
		kho_unpreserve_folio(virt_to_folio(iommu->root_entry));
	if (!--unit->bus_refs[info->bus])
		kho_unpreserve_folio(vtd_lu_ctx_folio(iommu, info->bus));
	vtd_lu_release_table(rec->data[2] & VTD_PAGE_MASK,
			     vtd_lu_top_level(rec->data[3]));
}

/**
 * intel_iommu_lu_shutdown() - leave translation on for preserved devices
 * @iommu: the unit, at the kexec: one CPU, interrupts off
 *
 * If devices behind @iommu are kept across the live update now under way,
 * clear every context entry that is not theirs, and every root entry of a
 * bus without one: until the next kernel switches to its own root table,
 * the hardware walks this one, and anything else it points to is
 * reused memory by then.
 *
 * Return: true if translation must stay on.
 */
bool intel_iommu_lu_shutdown(struct intel_iommu *iommu)
{
	struct vtd_lu_unit *unit = xa_load(&vtd_lu_units, iommu->seq_id);
	int bus, devfn;

	if (!unit || !unit->nr_out || !iommu_liveupdate_committed())
		return false;

	for (bus = 0; bus < 256; bus++) {
		struct root_entry *re = &iommu->root_entry[bus];
		struct context_entry *ctx;

		if (!(re->lo & 1))
			continue;
		if (!unit->bus_refs[bus]) {
			re->lo = 0;
			re->hi = 0;
			__iommu_flush_cache(iommu, re, sizeof(*re));
			continue;
		}
		ctx = phys_to_virt(re->lo & VTD_PAGE_MASK);
		for (devfn = 0; devfn < 256; devfn++) {
			if (!context_present(&ctx[devfn]) ||
			    iommu_liveupdate_rid_preserved(iommu->segment,
							   PCI_DEVID(bus, devfn)))
				continue;
			context_clear_entry(&ctx[devfn]);
			__iommu_flush_cache(iommu, &ctx[devfn], sizeof(*ctx));
		}
	}
	iommu->flush.flush_context(iommu, 0, 0, 0, DMA_CCMD_GLOBAL_INVL);
	iommu->flush.flush_iotlb(iommu, 0, 0, 0, DMA_TLB_GLOBAL_FLUSH);
	pr_info("%s: translation left on for %u preserved device(s)\n",
		iommu->name, unit->nr_out);
	return true;
}

/* ---- the next kernel ---------------------------------------------------- */

static void vtd_lu_finish(const struct iommu_preserve_dev *rec);

static const struct iommu_liveupdate_driver vtd_lu_driver = {
	.id	= IOMMU_PRESERVE_DRIVER_VTD,
	.finish	= vtd_lu_finish,
};

static bool vtd_lu_rec_of(const struct iommu_preserve_dev *rec,
			  struct intel_iommu *iommu)
{
	return rec && rec->driver == IOMMU_PRESERVE_DRIVER_VTD &&
	       rec->segment == iommu->segment && rec->data[0] == iommu->reg_phys;
}

static void vtd_lu_put_old(struct vtd_lu_unit *unit)
{
	int bus;

	for (bus = 0; bus < 256; bus++) {
		if (unit->old_ctx[bus])
			folio_put(unit->old_ctx[bus]);
		unit->old_ctx[bus] = NULL;
	}
	if (unit->old_root)
		folio_put(unit->old_root);
	unit->old_root = NULL;
}

/*
 * Take the old root table and the context tables of the buses that have
 * preserved devices back from KHO: only what the previous kernel
 * preserved is read.  Return the number of preserved devices found.
 */
static int vtd_lu_take_old(struct intel_iommu *iommu, struct vtd_lu_unit *unit,
			   phys_addr_t old_root)
{
	struct root_entry *root;
	int bus, devfn, nr = 0;

	unit->old_root = kho_restore_folio(old_root);
	if (!unit->old_root)
		return -EBADMSG;
	root = folio_address(unit->old_root);
	for (bus = 0; bus < 256; bus++) {
		const struct iommu_preserve_dev *rec = NULL;

		for (devfn = 0; devfn < 256 && !vtd_lu_rec_of(rec, iommu); devfn++)
			rec = iommu_liveupdate_incoming_find(iommu->segment,
							     PCI_DEVID(bus, devfn));
		if (!vtd_lu_rec_of(rec, iommu))
			continue;
		if (!(root[bus].lo & 1))
			return -EBADMSG;
		unit->old_ctx[bus] = kho_restore_folio(root[bus].lo &
						       VTD_PAGE_MASK);
		if (!unit->old_ctx[bus])
			return -EBADMSG;
		nr++;
	}
	return nr;
}

static int vtd_lu_hold_rid(const struct iommu_preserve_dev *rec, void *arg)
{
	struct intel_iommu *iommu = arg;
	struct vtd_lu_unit *unit = xa_load(&vtd_lu_units, iommu->seq_id);

	if (vtd_lu_rec_of(rec, iommu))
		xa_store(&unit->held, rec->rid, xa_mk_value(1), GFP_KERNEL);
	return 0;
}

/*
 * Which devices the previous kernel kept is unknown: stop every device
 * behind @iommu from doing DMA before anything attaches it a domain.  No
 * driver is bound yet.
 */
static void __init vtd_lu_stop_masters(struct intel_iommu *iommu)
{
	struct pci_dev *pdev = NULL;
	struct dmar_drhd_unit *drhd;

	for_each_pci_dev(pdev) {
		drhd = dmar_find_matched_drhd_unit(pdev);
		if (drhd && drhd->iommu == iommu)
			pci_clear_master(pdev);
	}
}

/**
 * intel_iommu_lu_held() - is this device kept from its default domain?
 * @iommu: the unit
 * @bus: bus of the device
 * @devfn: devfn of the device
 *
 * Return: true for a device the previous kernel kept behind @iommu, until
 * the live update is finished for it: it must not get a domain before its
 * owner attaches one, whether its translation was adopted or is blocked.
 */
bool intel_iommu_lu_held(struct intel_iommu *iommu, u8 bus, u8 devfn)
{
	struct vtd_lu_unit *unit;

	if (!READ_ONCE(vtd_lu_in_mode))
		return false;
	unit = xa_load(&vtd_lu_units, iommu->seq_id);
	return unit && xa_load(&unit->held, PCI_DEVID(bus, devfn));
}

/**
 * intel_iommu_lu_adopt_unit() - decide what to do with translation left on
 * @iommu: a unit found with translation enabled, outside a kdump kernel
 *
 * After a live update that kept devices behind @iommu, translation stays
 * on and their context entries are copied.  After a live update, if
 * anything does not add up, translation stays on too but nothing is
 * copied: a preserved device then stays blocked, rather than doing DMA
 * untranslated or through tables nobody vouches for.  Outside a live
 * update, the caller turns translation off as before.
 *
 * Return: true if translation must stay on.
 */
bool __init intel_iommu_lu_adopt_unit(struct intel_iommu *iommu)
{
	static int nr_in = -EAGAIN;
	struct vtd_lu_unit *unit;
	u64 rtaddr;
	int nr;

	if (nr_in == -EAGAIN)
		nr_in = iommu_liveupdate_incoming(&vtd_lu_driver);
	if (nr_in == -ENOENT && !is_kho_boot())
		return false;
	vtd_lu_in_mode = true;

	unit = vtd_lu_unit(iommu, true);
	if (!unit) {
		pr_err("%s: out of memory for the live update; DMA stays blocked\n",
		       iommu->name);
		return true;
	}
	unit->blocking = true;
	if (nr_in > 0)
		iommu_liveupdate_incoming_for_each(IOMMU_PRESERVE_DRIVER_VTD,
						   vtd_lu_hold_rid, iommu);
	if (nr_in < 0) {
		pr_err("%s: translation was left on, but what the previous kernel kept is unusable (%d): DMA stays blocked\n",
		       iommu->name, nr_in);
		vtd_lu_stop_masters(iommu);
		return true;
	}

	rtaddr = readq(iommu->reg + DMAR_RTADDR_REG);
	if (sm_supported(iommu) || (rtaddr & DMA_RTADDR_SMT)) {
		pr_err("%s: translation was left on in scalable mode, which a live update does not keep: DMA stays blocked\n",
		       iommu->name);
		return true;
	}
	nr = vtd_lu_take_old(iommu, unit, rtaddr & VTD_PAGE_MASK);
	if (nr <= 0) {
		/* The hardware may still walk them: freed after the switch. */
		pr_err("%s: translation was left on, but no preserved device's tables are intact (%d): DMA stays blocked\n",
		       iommu->name, nr);
		return true;
	}
	unit->blocking = false;
	unit->adopting = true;
	return true;
}

/**
 * intel_iommu_lu_keep_bus() - should the copy look at this bus?
 * @iommu: the unit
 * @bus: the bus
 *
 * Return: true outside a live update (kdump copies every bus); in a live
 * update, true only for a bus with preserved devices.
 */
bool intel_iommu_lu_keep_bus(struct intel_iommu *iommu, int bus)
{
	struct vtd_lu_unit *unit = xa_load(&vtd_lu_units, iommu->seq_id);

	if (!vtd_lu_in_mode)
		return true;
	return unit && unit->adopting && unit->old_ctx[bus];
}

/*
 * A copied entry that used @did is gone; the last one frees the domain ID,
 * which the copy reserved (once, however many entries used it).
 */
static void vtd_lu_put_did(struct intel_iommu *iommu, struct vtd_lu_unit *unit,
			   u16 did)
{
	unsigned long refs = xa_to_value(xa_load(&unit->dids, did));

	if (WARN_ON(!refs))
		return;
	if (refs > 1) {
		xa_store(&unit->dids, did, xa_mk_value(refs - 1), GFP_KERNEL);
		return;
	}
	xa_erase(&unit->dids, did);
	ida_free(&iommu->domain_ida, did);
}

/**
 * intel_iommu_lu_keep_context() - should the copy keep this context entry?
 * @iommu: the unit
 * @bus: bus of the entry
 * @devfn: devfn of the entry
 * @ce: the entry as the previous kernel left it
 *
 * Return: true outside a live update (kdump keeps every entry); in a live
 * update, true only for the entry of a preserved device, exactly as it
 * was preserved.
 */
bool intel_iommu_lu_keep_context(struct intel_iommu *iommu, int bus,
				 int devfn, struct context_entry *ce)
{
	struct vtd_lu_unit *unit = xa_load(&vtd_lu_units, iommu->seq_id);
	const struct iommu_preserve_dev *rec;
	u16 rid = PCI_DEVID(bus, devfn);
	unsigned long refs, top, tops;
	u16 did;

	if (!vtd_lu_in_mode)
		return true;
	if (!unit || !unit->adopting)
		return false;
	rec = iommu_liveupdate_incoming_find(iommu->segment, rid);
	if (!vtd_lu_rec_of(rec, iommu))
		return false;
	if (ce->lo != rec->data[2] || ce->hi != rec->data[3] ||
	    vtd_lu_top_level(ce->hi) < 0 ||
	    FIELD_GET(VTD_LU_CTX_TT, ce->lo) != CONTEXT_TT_MULTI_LEVEL ||
	    context_domain_id(ce) >= cap_ndoms(iommu->cap)) {
		pr_err("%s: %02x:%02x.%d: context entry not as preserved: blocked\n",
		       iommu->name, bus, PCI_SLOT(devfn), PCI_FUNC(devfn));
		return false;
	}
	/*
	 * Reserved here, so that no new domain gets it while the hardware
	 * may cache translations tagged with it (the copy's own reservation
	 * then fails, harmlessly).
	 */
	did = context_domain_id(ce);
	refs = xa_to_value(xa_load(&unit->dids, did));
	if (!refs && ida_alloc_range(&iommu->domain_ida, did, did,
				     GFP_KERNEL) < 0)
		return false;
	if (xa_err(xa_store(&unit->dids, did, xa_mk_value(refs + 1),
			    GFP_KERNEL))) {
		if (!refs)
			ida_free(&iommu->domain_ida, did);
		return false;
	}
	top = PHYS_PFN(ce->lo & VTD_PAGE_MASK);
	tops = xa_to_value(xa_load(&vtd_lu_tops, top));
	if (xa_err(xa_store(&vtd_lu_tops, top, xa_mk_value(tops + 1),
			    GFP_KERNEL)))
		goto put_did;
	if (xa_err(xa_store(&unit->kept, rid, xa_mk_value(did), GFP_KERNEL)))
		goto put_top;
	return true;

put_top:
	if (tops)
		xa_store(&vtd_lu_tops, top, xa_mk_value(tops), GFP_KERNEL);
	else
		xa_erase(&vtd_lu_tops, top);
put_did:
	vtd_lu_put_did(iommu, unit, did);
	return false;
}

/**
 * intel_iommu_lu_root_switched() - the unit walks its own root table now
 * @iommu: the unit
 *
 * Free the previous kernel's root and context tables, which the hardware
 * no longer reads; hold the devices whose translation was kept for their
 * owners, stop the others; say what was kept.
 */
void __init intel_iommu_lu_root_switched(struct intel_iommu *iommu)
{
	struct vtd_lu_unit *unit = xa_load(&vtd_lu_units, iommu->seq_id);
	unsigned long rid, nr = 0;
	struct pci_dev *pdev;
	void *entry;

	if (!unit)
		return;
	/* Whether adopted or not, the hardware reads only the new ones now. */
	vtd_lu_put_old(unit);
	/*
	 * A kept device is held for its owner; one that is blocked instead
	 * (its entry could not be kept) is stopped: its DMA would only fault,
	 * and its owner gets it as at any boot.
	 */
	xa_for_each(&unit->held, rid, entry) {
		if (xa_load(&unit->kept, rid)) {
			iommu_liveupdate_hold_device(iommu->segment, rid);
			nr++;
			continue;
		}
		pdev = pci_get_domain_bus_and_slot(iommu->segment,
						   PCI_BUS_NUM(rid), rid & 0xff);
		if (pdev)
			pci_clear_master(pdev);
		pci_dev_put(pdev);
	}
	if (!unit->adopting)
		return;
	pr_info("%s: translation kept for %lu device(s) preserved by the previous kernel\n",
		iommu->name, nr);
}

/**
 * intel_iommu_lu_disabled() - the IOMMU is off in this kernel
 *
 * Called before translation is turned off for good.  After a live update
 * it is on only for the devices the previous kernel kept doing DMA: those
 * stop first, or their DMA would reach memory untranslated.
 */
void __init intel_iommu_lu_disabled(void)
{
	struct dmar_drhd_unit *drhd;
	struct intel_iommu *iommu;

	if (!is_kho_boot())
		return;
	for_each_iommu(iommu, drhd) {
		if (iommu->gcmd & DMA_GCMD_TE) {
			iommu_liveupdate_stop_devices();
			return;
		}
	}
}

/**
 * intel_iommu_lu_blocked() - the copy failed: block instead
 * @iommu: the unit
 *
 * Return: true if translation must stay on, with nothing copied.
 */
bool __init intel_iommu_lu_blocked(struct intel_iommu *iommu)
{
	struct vtd_lu_unit *unit = xa_load(&vtd_lu_units, iommu->seq_id);

	if (!vtd_lu_in_mode || !unit)
		return false;
	pr_err("%s: the preserved devices' tables could not be copied: DMA stays blocked\n",
	       iommu->name);
	unit->adopting = false;
	unit->blocking = true;
	return true;
}

static int vtd_lu_restore_table(struct vtd_lu_walk *w, phys_addr_t table)
{
	/* A table KHO does not know is not read: that subtree is left. */
	if (!kho_restore_folio(table)) {
		w->count++;
		return 1;
	}
	return 0;
}

static void vtd_lu_free_table(struct vtd_lu_walk *w, phys_addr_t table)
{
	folio_put(virt_to_folio(phys_to_virt(table)));
}

static struct intel_iommu *vtd_lu_find_unit(const struct iommu_preserve_dev *rec)
{
	struct dmar_drhd_unit *drhd;
	struct intel_iommu *iommu;

	guard(rcu)();
	for_each_active_iommu(iommu, drhd)
		if (vtd_lu_rec_of(rec, iommu))
			return iommu;
	return NULL;
}

/*
 * The live update is over for the device of @rec: if its context entry is
 * still the copied one, nobody took it over; tear it down (the device is
 * blocked from here on) and free its domain ID.  Then free its page
 * table, which the hardware no longer walks.
 */
static void vtd_lu_finish(const struct iommu_preserve_dev *rec)
{
	struct intel_iommu *iommu = vtd_lu_find_unit(rec);
	struct vtd_lu_walk w = {
		.pre = vtd_lu_restore_table,
		.post = vtd_lu_free_table,
	};
	u8 bus = PCI_BUS_NUM(rec->rid), devfn = rec->rid & 0xff;
	phys_addr_t top = rec->data[2] & VTD_PAGE_MASK;
	int level = vtd_lu_top_level(rec->data[3]);
	struct vtd_lu_unit *unit = NULL;
	unsigned long refs;
	void *kept = NULL;

	if (iommu)
		unit = xa_load(&vtd_lu_units, iommu->seq_id);
	if (unit) {
		kept = xa_erase(&unit->kept, rec->rid);
		xa_erase(&unit->held, rec->rid);
	}
	if (kept) {
		intel_iommu_drop_copied_context(iommu, bus, devfn);
		vtd_lu_put_did(iommu, unit, xa_to_value(kept));
	}

	/*
	 * Only a page table the hardware was found using, through a context
	 * entry that matched its record, is freed: a record alone could name
	 * any preserved page.  Devices that shared it may still use it.
	 */
	if (!kept) {
		pr_warn("%04x:%02x:%02x.%d: its translation was not adopted; its page table stays reserved\n",
			rec->segment, bus, PCI_SLOT(devfn), PCI_FUNC(devfn));
		return;
	}
	refs = xa_to_value(xa_load(&vtd_lu_tops, PHYS_PFN(top)));
	if (refs > 1) {
		xa_store(&vtd_lu_tops, PHYS_PFN(top), xa_mk_value(refs - 1),
			 GFP_KERNEL);
		return;
	}
	xa_erase(&vtd_lu_tops, PHYS_PFN(top));
	vtd_lu_walk(&w, top, level);
	if (w.count)
		pr_warn("%s: %02x:%02x.%d: %lu page table page(s) were not preserved; left as they are\n",
			iommu->name, bus, PCI_SLOT(devfn), PCI_FUNC(devfn),
			w.count);
}
