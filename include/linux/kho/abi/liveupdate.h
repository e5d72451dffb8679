/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Live Update Orchestrator: the format handed from one kernel to the next.
 */
#ifndef _LINUX_KHO_ABI_LIVEUPDATE_H
#define _LINUX_KHO_ABI_LIVEUPDATE_H

#include <linux/types.h>

/**
 * DOC: Live Update Orchestrator handover format
 *
 * The outgoing kernel publishes one KHO subtree, named
 * %LUO_ABI_SUBTREE_NAME, whose blob is a single preserved page holding a
 * &struct luo_abi_header.  The page is allocated and published when LUO
 * starts; it stays zero (so the next kernel finds nothing) until a reboot
 * with live update fills it in, after every file has been frozen.
 *
 * The header lists chunks: preserved, physically contiguous, naturally
 * aligned blocks of 2^order pages.  Each chunk holds a sequence of records,
 * each starting with a &struct luo_abi_record and padded to 8 bytes; records
 * never cross a chunk.  A session record is followed by the records of its
 * files.  A handler record gives a compatible string an id that file
 * records refer to; it comes before the first file that uses it.  An FLB
 * record describes global state that files depend on (see struct
 * liveupdate_flb); every FLB record comes before the first session record.
 * A file's file-FLB records (its dependencies on FLBs) and file-dep records
 * (the earlier files of its session that its state refers to) directly
 * follow its file record.  A reader must honour file-dep records, so they
 * are not optional: a reader that does not know them fails the session.
 *
 * Fields are in the CPU's native byte order (both kernels run on the same
 * machine); the format is versioned by
 * &luo_abi_header.version.  A reader accepts every version up to its own:
 * newer versions may only add record types, which older readers skip if
 * they are marked %LUO_ABI_RECORD_OPTIONAL and otherwise take as damage
 * of the session they are in (file-dep records are of that kind), or grow
 * records (readers use the fields they know and check that a record is at
 * least as large as its first version).
 * Everything is validated by the reader: a damaged record fails its own
 * session or file, never the kernel.
 */

#define LUO_ABI_SUBTREE_NAME	"liveupdate"
#define LUO_ABI_MAGIC		0x4c55505354415445ULL	/* "LUPSTATE" */
#define LUO_ABI_VERSION		1

/**
 * struct luo_abi_chunk - a block of records
 * @phys: physical address, aligned to the chunk's size
 * @order: the chunk is 2^@order pages
 * @used: bytes of records in the chunk
 */
struct luo_abi_chunk {
	__u64 phys;
	__u32 order;
	__u32 used;
};

/**
 * struct luo_abi_header - root of the handover state
 * @magic: %LUO_ABI_MAGIC once the state is complete, else 0
 * @version: format version, %LUO_ABI_VERSION when written by this kernel
 * @header_size: sizeof(struct luo_abi_header) of the writer
 * @nr_chunks: number of entries in @chunks
 * @nr_sessions: number of session records
 * @nr_files: number of file records
 * @reserved: zero
 * @chunks: the chunks, in record order
 */
struct luo_abi_header {
	__u64 magic;
	__u32 version;
	__u32 header_size;
	__u32 nr_chunks;
	__u32 nr_sessions;
	__u64 nr_files;
	__u64 reserved;
	struct luo_abi_chunk chunks[];
};

/* How many chunks fit in the header page. */
#define LUO_ABI_MAX_CHUNKS(page_size)					\
	(((page_size) - sizeof(struct luo_abi_header)) /		\
	 sizeof(struct luo_abi_chunk))

/**
 * struct luo_abi_record - common start of every record
 * @type: LUO_ABI_RECORD_*, optionally or'ed with %LUO_ABI_RECORD_OPTIONAL
 * @size: bytes of the record including this header, multiple of 8
 * @reserved: zero
 */
struct luo_abi_record {
	__u16 type;
	__u16 size;
	__u32 reserved;
};

#define LUO_ABI_RECORD_HANDLER		1
#define LUO_ABI_RECORD_SESSION		2
#define LUO_ABI_RECORD_FILE		3
#define LUO_ABI_RECORD_FLB		4
#define LUO_ABI_RECORD_FILE_FLB		5
#define LUO_ABI_RECORD_FILE_DEP		6
/* A reader that does not know the type may skip the record. */
#define LUO_ABI_RECORD_OPTIONAL		0x8000

#define LUO_ABI_COMPATIBLE_LENGTH	48
#define LUO_ABI_NAME_LENGTH		64

/**
 * struct luo_abi_handler - a file handler's format name
 * @hdr: type %LUO_ABI_RECORD_HANDLER
 * @id: id the file records use, unique in the state
 * @reserved: zero
 * @compatible: NUL-terminated compatible string
 */
struct luo_abi_handler {
	struct luo_abi_record hdr;
	__u32 id;
	__u32 reserved;
	char compatible[LUO_ABI_COMPATIBLE_LENGTH];
};

/**
 * struct luo_abi_session - a session; its files follow
 * @hdr: type %LUO_ABI_RECORD_SESSION
 * @nr_files: number of file records that follow
 * @reserved: zero
 * @name: NUL-terminated session name
 */
struct luo_abi_session {
	struct luo_abi_record hdr;
	__u32 nr_files;
	__u32 reserved;
	char name[LUO_ABI_NAME_LENGTH];
};

/**
 * struct luo_abi_file - a preserved file
 * @hdr: type %LUO_ABI_RECORD_FILE
 * @handler_id: id of the handler record of its format
 * @version: the handler's format version
 * @token: the token userspace named the file with, unique in its session
 * @data: the handler's handle to its own serialized state
 */
struct luo_abi_file {
	struct luo_abi_record hdr;
	__u32 handler_id;
	__u32 version;
	__u64 token;
	__u64 data;
};

/**
 * struct luo_abi_flb - file-lifecycle-bound global state
 * @hdr: type %LUO_ABI_RECORD_FLB
 * @id: id the file-FLB records use, unique in the state
 * @version: the FLB's format version
 * @data: the FLB's handle to its own serialized state
 * @nr_files: number of files that depend on it; a cross-check only, the
 *	reader counts the file-FLB records
 * @compatible: NUL-terminated compatible string
 */
struct luo_abi_flb {
	struct luo_abi_record hdr;
	__u32 id;
	__u32 version;
	__u64 data;
	__u64 nr_files;
	char compatible[LUO_ABI_COMPATIBLE_LENGTH];
};

/**
 * struct luo_abi_file_flb - the file record before this one depends on an FLB
 * @hdr: type %LUO_ABI_RECORD_FILE_FLB
 * @flb_id: id of the FLB record
 * @reserved: zero
 */
struct luo_abi_file_flb {
	struct luo_abi_record hdr;
	__u32 flb_id;
	__u32 reserved;
};

/**
 * struct luo_abi_file_dep - the file record before this one refers to a file
 * @hdr: type %LUO_ABI_RECORD_FILE_DEP
 * @token: the token of that file, an earlier one of the same session
 *
 * What the referring file's state describes (a device's DMA through the
 * IOMMU tables its iommufd set up) may use what the named file's state
 * describes (the pages of a memfd); the next kernel keeps the latter in
 * place until the former is retrieved or finished.
 */
struct luo_abi_file_dep {
	struct luo_abi_record hdr;
	__u64 token;
};

/**
 * DOC: Live Update Orchestrator blackout timeline
 *
 * A second KHO subtree, named %LUO_ABI_TIMELINE_NAME, carries what the
 * outgoing kernel measured of its reboot path, so that the next kernel can
 * show one timeline of the update across both kernels.  Its blob is one
 * preserved page holding a &struct luo_abi_timeline, allocated and
 * published when LUO starts and filled in by the reboot path, up to the
 * kexec jump.  It is independent of the handover state: a reader that does
 * not know it loses nothing but the timeline.
 *
 * Times are the writer's local_clock() in nanoseconds.  The writer also
 * records, at the jump, a cycle counter that runs on across a kexec at one
 * rate (the TSC on x86), which the reader relates to its own to place both
 * kernels on one axis; 0 means the writer has no such counter.  The page
 * is versioned by &luo_abi_timeline.version.  Unlike the handover state,
 * a reader accepts every version: newer ones may only grow the header (by
 * &luo_abi_timeline.header_size) or the steps (by
 * &luo_abi_timeline.step_size), or add step ids, which readers skip.
 */

#define LUO_ABI_TIMELINE_NAME		"liveupdate-timeline"
#define LUO_ABI_TIMELINE_MAGIC		0x4c5554494d454c4eULL
#define LUO_ABI_TIMELINE_VERSION	1

/**
 * struct luo_abi_timeline_step - one step of the reboot path
 * @start_ns: when it started
 * @end_ns: when it ended; @start_ns for an instant
 * @step: what it is, a LIVEUPDATE_TL_* id of include/uapi/linux/liveupdate.h
 * @count: how many files or FLBs it covered, if it says
 * @label: NUL-terminated: the handler's compatible string for a freeze,
 *	else empty
 */
struct luo_abi_timeline_step {
	__u64 start_ns;
	__u64 end_ns;
	__u32 step;
	__u32 count;
	char label[LUO_ABI_COMPATIBLE_LENGTH];
};

/**
 * struct luo_abi_timeline - root of the timeline page
 * @magic: %LUO_ABI_TIMELINE_MAGIC once a reboot wrote it, else 0
 * @version: %LUO_ABI_TIMELINE_VERSION when written by this kernel
 * @step_size: sizeof(struct luo_abi_timeline_step) of the writer
 * @nr_steps: number of entries in @steps
 * @header_size: sizeof(struct luo_abi_timeline) of the writer: where the
 *	steps start
 * @jump_ns: local_clock() right before the jump to the next kernel
 * @jump_cycles: the cycle counter at the same point, or 0
 * @steps: the steps, in the order they started
 */
struct luo_abi_timeline {
	__u64 magic;
	__u32 version;
	__u32 step_size;
	__u32 nr_steps;
	__u32 header_size;
	__u64 jump_ns;
	__u64 jump_cycles;
	struct luo_abi_timeline_step steps[];
};

/* How many steps fit in the timeline page. */
#define LUO_ABI_TIMELINE_MAX_STEPS(page_size)				\
	(((page_size) - sizeof(struct luo_abi_timeline)) /		\
	 sizeof(struct luo_abi_timeline_step))

#endif /* _LINUX_KHO_ABI_LIVEUPDATE_H */
