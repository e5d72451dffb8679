/* SPDX-License-Identifier: GPL-2.0 */
/*
 * IOMMU state preserved across a live update: the format handed from one
 * kernel to the next.
 */
#ifndef _LINUX_KHO_ABI_IOMMU_PRESERVE_H
#define _LINUX_KHO_ABI_IOMMU_PRESERVE_H

#include <linux/types.h>

/**
 * DOC: IOMMU preservation format
 *
 * A device preserved across a live update (a VFIO device a VMM keeps) goes
 * on doing DMA while the kernel is replaced, so the IOMMU that translates
 * it must go on translating: the IOMMU driver leaves translation on for
 * it at the kexec, and the next kernel's driver adopts the translation
 * structures of that device instead of resetting them.
 *
 * What the next kernel's IOMMU driver needs is an FLB (see struct
 * liveupdate_flb), %IOMMU_PRESERVE_COMPATIBLE, owned by the IOMMU core and
 * built in, so that the driver can read it from its initcall, before any
 * file handler exists.  Its handle is the physical address of a &struct
 * iommu_preserve_table, allocated with kho_alloc_preserve(), that lists
 * one &struct iommu_preserve_dev per preserved device.  The file handlers
 * that preserve devices bind the FLB; it is finished after the last of
 * their files, and the IOMMU driver then tears down and frees whatever
 * nobody took over.
 *
 * An entry names the device by PCI segment and requester ID, the driver
 * that wrote it, and gives four words that belong to that driver.
 *
 * %IOMMU_PRESERVE_DRIVER_VTD, Intel VT-d in legacy (not scalable) mode:
 *
 * - @data[0]: the physical address of the remapping unit's registers, which
 *   names the unit (its "dmarN" name can change from one boot to the next);
 * - @data[1]: the physical address of the root table the unit used;
 * - @data[2], @data[3]: the device's context entry, low and high word as
 *   the hardware reads them: the second-stage page table's address,
 *   translation type and present bit; the domain ID and address width.
 *
 * The root table, the context table of the device's bus and every page of
 * the second-stage page table the context entry points to are preserved
 * order-0 folios.  At the kexec the previous kernel cleared every context
 * entry of the unit that belongs to no preserved device, and every root
 * entry of a bus without one, so the hardware reaches nothing else.
 */

#define IOMMU_PRESERVE_COMPATIBLE	"iommu"
#define IOMMU_PRESERVE_VERSION		1

#define IOMMU_PRESERVE_MAGIC		0x494f4d4d55505245ULL	/* "IOMMUPRE" */

/* Which IOMMU driver wrote an entry, and so what its @data means. */
#define IOMMU_PRESERVE_DRIVER_VTD	1

/**
 * struct iommu_preserve_dev - a preserved device, as its IOMMU sees it
 * @driver: the IOMMU driver that wrote @data, %IOMMU_PRESERVE_DRIVER_*
 * @segment: PCI segment (domain) of the device
 * @rid: PCI requester ID: bus << 8 | devfn
 * @data: the driver's description of the device's translation
 */
struct iommu_preserve_dev {
	__u32 driver;
	__u16 segment;
	__u16 rid;
	__u64 data[4];
} __packed;

/**
 * struct iommu_preserve_table - every preserved device
 * @magic: %IOMMU_PRESERVE_MAGIC
 * @nr_devs: number of entries in @devs
 * @reserved: zero
 * @devs: the devices, in no particular order, each at most once
 */
struct iommu_preserve_table {
	__u64 magic;
	__u32 nr_devs;
	__u32 reserved;
	struct iommu_preserve_dev devs[];
} __packed;

#endif /* _LINUX_KHO_ABI_IOMMU_PRESERVE_H */
