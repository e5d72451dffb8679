/* SPDX-License-Identifier: GPL-2.0 */
/*
 * iommufd preservation across a live update: the format handed from one
 * kernel to the next.
 */
#ifndef _LINUX_KHO_ABI_IOMMUFD_PRESERVE_H
#define _LINUX_KHO_ABI_IOMMUFD_PRESERVE_H

#include <linux/types.h>

/**
 * DOC: iommufd preservation format
 *
 * An iommufd (a file opened on /dev/iommu) preserved into a LUO session,
 * handler %IOMMUFD_PRESERVE_COMPATIBLE, describes the I/O address spaces
 * (IOAS) of its context, what is mapped in them, their page tables
 * (HWPT_PAGING) and the devices bound to it, so that the next kernel can
 * build the same context again; object IDs are recorded so that the IDs
 * userspace holds can stay valid.  It describes
 * no memory: every mapping is of a file (IOMMU_IOAS_MAP_FILE) preserved in
 * the same session before the iommufd, which it names by its token (see
 * liveupdate_file_dep_outgoing()), and the next kernel maps that file
 * again.  The page tables themselves, which the hardware keeps using
 * across the kexec, are the IOMMU driver's (see iommu_preserve.h).
 *
 * In every version, the LUO file handle (&liveupdate_file.data) is the
 * physical address of one block from kho_alloc_preserve(), so that a
 * kernel can release what it cannot read.  In version 1 the block starts
 * with a &struct iommufd_preserve_header; four arrays of records follow,
 * each at the offset the header gives, 8-byte aligned, within @size:
 *
 * - &struct iommufd_preserve_ioas, one per IOAS, by increasing ID;
 * - &struct iommufd_preserve_area, one per mapping, the mappings of each
 *   IOAS consecutive and by increasing IOVA; an IOAS names its slice, and
 *   the slices follow each other in the order of the IOAS, from the first
 *   record to the last;
 * - &struct iommufd_preserve_hwpt, one per HWPT_PAGING, by increasing ID;
 * - &struct iommufd_preserve_device, one per device, by increasing ID.
 *
 * The arrays do not overlap.  Object IDs are between 1 and INT_MAX, and
 * no two records have the same.  A mapping that a partial unmap split is
 * two records.  Nothing else can be in a preserved context: the previous
 * kernel refused to preserve one with other objects (nested page tables,
 * vIOMMUs, fault queues, in-kernel accesses), with mappings of user memory
 * or dma-bufs, with allowed IOVA ranges (IOMMU_IOAS_ALLOW_IOVAS), or with
 * a HWPT that is a nesting parent, delivers faults or tracks dirty pages.
 * From the preserve on, the context refused every change (EBUSY), so the
 * records are what the kexec found, except that a device that was not
 * itself preserved may have been unbound, and a page table allocated
 * automatically for it then freed.
 *
 * Fields are in the CPU's byte order.  Unknown flags, non-zero reserved
 * fields, records out of bounds, overlapping or out of order, IDs out of
 * range or repeated, and references to IDs not described make the next
 * kernel fail the file with -EBADMSG; a version it does not know, with
 * -EOPNOTSUPP.  A reader accepts any @header_size of at least its own,
 * ignoring what follows; a change that cannot be ignored takes a new
 * version.
 */

#define IOMMUFD_PRESERVE_COMPATIBLE	"iommufd"
#define IOMMUFD_PRESERVE_VERSION	1
#define IOMMUFD_PRESERVE_MAGIC		0x494f4d4d46445031ULL	/* "IOMMFDP1" */

/* &iommufd_preserve_header.flags */
/* IOMMU_OPTION_RLIMIT_MODE was set to 1: pinned pages count per process */
#define IOMMUFD_PRESERVE_CTX_ACCOUNT_MM		0x1
#define IOMMUFD_PRESERVE_CTX_FLAGS		0x1

/* &iommufd_preserve_ioas.flags */
/* IOMMU_OPTION_HUGE_PAGES was set to 0: map with PAGE_SIZE pages only. */
#define IOMMUFD_PRESERVE_IOAS_NO_LARGE_PAGES	0x1
#define IOMMUFD_PRESERVE_IOAS_FLAGS		0x1

/* &iommufd_preserve_area.prot: what the IOMMU lets the device do */
#define IOMMUFD_PRESERVE_PROT_READ		0x1
#define IOMMUFD_PRESERVE_PROT_WRITE		0x2
/* Cache coherent DMA (the mapping's IOMMU_CACHE) */
#define IOMMUFD_PRESERVE_PROT_CACHE		0x4
#define IOMMUFD_PRESERVE_PROT_ALL		0x7

/* &iommufd_preserve_hwpt.flags */
/*
 * Allocated by iommufd when a device was attached to the IOAS (rather than
 * by IOMMU_HWPT_ALLOC), and freed with the last device attached to it.
 */
#define IOMMUFD_PRESERVE_HWPT_AUTO_DOMAIN	0x1
/* The IOMMU enforces cache coherency: no device can bypass IOMMU_CACHE */
#define IOMMUFD_PRESERVE_HWPT_ENFORCE_CC	0x2
#define IOMMUFD_PRESERVE_HWPT_FLAGS		0x3

/**
 * struct iommufd_preserve_header - start of a preserved iommufd
 * @magic: %IOMMUFD_PRESERVE_MAGIC
 * @header_size: sizeof(struct iommufd_preserve_header) of the writer, a
 *	multiple of 8
 * @size: bytes of the block in use, this header included; the block may
 *	be larger
 * @flags: %IOMMUFD_PRESERVE_CTX_ACCOUNT_MM
 * @nr_ioas: number of &struct iommufd_preserve_ioas at @ioas_offset
 * @nr_areas: number of &struct iommufd_preserve_area at @area_offset
 * @nr_hwpts: number of &struct iommufd_preserve_hwpt at @hwpt_offset
 * @nr_devices: number of &struct iommufd_preserve_device at @device_offset
 * @ioas_offset: offset of the IOAS records from the start of the block
 * @area_offset: offset of the mapping records
 * @hwpt_offset: offset of the page table records
 * @device_offset: offset of the device records
 * @reserved: zero
 */
struct iommufd_preserve_header {
	__u64 magic;
	__u32 header_size;
	__u32 size;
	__u32 flags;
	__u32 nr_ioas;
	__u32 nr_areas;
	__u32 nr_hwpts;
	__u32 nr_devices;
	__u32 ioas_offset;
	__u32 area_offset;
	__u32 hwpt_offset;
	__u32 device_offset;
	__u32 reserved;
};

/**
 * struct iommufd_preserve_ioas - an I/O address space
 * @id: its object ID
 * @flags: %IOMMUFD_PRESERVE_IOAS_NO_LARGE_PAGES
 * @first_area: index of its first mapping in the mapping records
 * @nr_areas: number of its mappings, which follow @first_area
 * @iova_alignment: the alignment every IOVA and length in it had to have
 *	(IOMMU_IOAS_IOVA_RANGES' out_iova_alignment), a power of 2
 */
struct iommufd_preserve_ioas {
	__u32 id;
	__u32 flags;
	__u32 first_area;
	__u32 nr_areas;
	__u64 iova_alignment;
};

/**
 * struct iommufd_preserve_area - a mapping of a preserved file
 * @iova: first IOVA of the mapping
 * @length: bytes mapped, not zero
 * @file_token: LUO token of the mapped file, in the same session
 * @file_offset: byte offset in the file that @iova maps
 * @prot: %IOMMUFD_PRESERVE_PROT_READ, ..._WRITE, ..._CACHE
 * @reserved: zero
 */
struct iommufd_preserve_area {
	__u64 iova;
	__u64 length;
	__u64 file_token;
	__u64 file_offset;
	__u32 prot;
	__u32 reserved;
};

/**
 * struct iommufd_preserve_hwpt - a paging HWPT
 * @id: its object ID
 * @ioas_id: ID of the IOAS whose mappings it holds
 * @flags: %IOMMUFD_PRESERVE_HWPT_AUTO_DOMAIN, ..._ENFORCE_CC
 * @reserved: zero
 */
struct iommufd_preserve_hwpt {
	__u32 id;
	__u32 ioas_id;
	__u32 flags;
	__u32 reserved;
};

/**
 * struct iommufd_preserve_device - a device bound to the iommufd
 * @id: its object ID
 * @reserved: zero
 *
 * The device's own handler (VFIO's) binds it again and says what it is
 * attached to; this record only reserves its ID.
 */
struct iommufd_preserve_device {
	__u32 id;
	__u32 reserved;
};

#endif /* _LINUX_KHO_ABI_IOMMUFD_PRESERVE_H */
