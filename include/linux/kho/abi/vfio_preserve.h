/* SPDX-License-Identifier: GPL-2.0 */
/*
 * VFIO devices preserved across a live update: the format handed from one
 * kernel to the next.
 */
#ifndef _LINUX_KHO_ABI_VFIO_PRESERVE_H
#define _LINUX_KHO_ABI_VFIO_PRESERVE_H

#include <linux/types.h>

/**
 * DOC: VFIO device preservation format
 *
 * A VFIO device cdev (/dev/vfio/devices/vfioN) bound to an iommufd and
 * attached to one of its page tables can be preserved, once that iommufd
 * is preserved in the same session.  The device keeps doing DMA through
 * the kexec: its bus master bit is left on, and its IOMMU keeps
 * translating (see <linux/kho/abi/iommu_preserve.h>, the FLB every file
 * of this handler depends on).
 *
 * The LUO file handle is the physical address of a &struct
 * vfio_preserve_device, allocated with kho_alloc_preserve().
 */

#define VFIO_PRESERVE_COMPATIBLE	"vfio-pci"
#define VFIO_PRESERVE_VERSION		1

/**
 * struct vfio_preserve_device - a preserved vfio-pci device
 * @iommufd_token: token of the iommufd the device is bound to, in the
 *	same session
 * @segment: PCI segment of the device
 * @rid: PCI requester ID, bus << 8 | devfn
 * @vendor: PCI vendor ID, checked against the device found at @rid
 * @device: PCI device ID, likewise
 * @devid: the device's object ID in that iommufd
 * @pt_id: the object ID of the page table it is attached to
 */
struct vfio_preserve_device {
	__u64 iommufd_token;
	__u16 segment;
	__u16 rid;
	__u16 vendor;
	__u16 device;
	__u32 devid;
	__u32 pt_id;
} __packed;

#endif /* _LINUX_KHO_ABI_VFIO_PRESERVE_H */
