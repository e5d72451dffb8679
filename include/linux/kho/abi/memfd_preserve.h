/* SPDX-License-Identifier: GPL-2.0 */
/*
 * memfd preservation across a live update: the format handed from one
 * kernel to the next.
 */
#ifndef _LINUX_KHO_ABI_MEMFD_PRESERVE_H
#define _LINUX_KHO_ABI_MEMFD_PRESERVE_H

#include <linux/types.h>

/**
 * DOC: memfd preservation format
 *
 * Small things live in a metadata pool shared by every preserved memfd, so
 * that a small memfd costs tens of bytes rather than a page: the pool is an
 * FLB (see struct liveupdate_flb), %MEMFD_PRESERVE_POOL_COMPATIBLE, bound
 * to both memfd handlers.  Its handle is the physical address of the first
 * pool page; pool pages are preserved order-0 pages, each starting with a
 * &struct memfd_preserve_pool_page that links it to the next.  Objects in
 * the pool are 8-byte aligned and never cross a pool page.
 *
 * The LUO file handle (&liveupdate_file.data) of a memfd is the physical
 * address of its &struct memfd_preserve_file, in the pool.  Its entries
 * are in a chain of chunks, each starting with a &struct
 * memfd_preserve_chunk: chunks smaller than a page live in the pool,
 * larger ones are preserved, naturally aligned blocks of 2^order pages of
 * their own (kho_alloc_preserve()).  Entries are 8-byte aligned and never
 * cross a chunk.
 *
 * The file's contents are described by entries of two kinds:
 *
 * - %MEMFD_PRESERVE_ENTRY_RUN (&struct memfd_preserve_run, 24 bytes): one
 *   large folio (order > 0), or a run of order-0 folios that are at
 *   consecutive indices and physically contiguous (order 0).  KHO is asked
 *   once per run (kho_preserve_folio() or kho_preserve_pages()).
 * - %MEMFD_PRESERVE_ENTRY_PAGES (&struct memfd_preserve_pages): scattered
 *   order-0 folios, 8 bytes each: bits 0-39 of a word are the PFN, bits
 *   40-63 the number of holes between the previous page of the entry (or
 *   @index - 1 for the first page) and this one.  Each page is preserved on
 *   its own with kho_preserve_folio().
 *
 * Entries are not ordered and never overlap.  Indices that no entry covers
 * are holes: nothing is allocated for them, here or in the next kernel.
 *
 * A hugetlb memfd (memfd_create(MFD_HUGETLB)) is a file of its own
 * handler, %MEMFD_PRESERVE_HUGETLB_COMPATIBLE, in the same format and the
 * same pool, with these differences: @huge_shift gives its huge page
 * size, and every entry is a %MEMFD_PRESERVE_ENTRY_RUN of one huge page,
 * @order being @huge_shift - PAGE_SHIFT (a 1 GiB page is one 24-byte
 * entry).  The next kernel makes these pages hugetlb pages of its pool
 * again, in use by the new memfd; a kernel without that huge page size
 * fails the file with -EOPNOTSUPP.  Huge pages are never in a KHO scratch
 * area, not even in part: the previous kernel moved them out, or refused
 * to preserve the file.
 *
 * The next kernel's hugetlb sizes its boot pool (``hugepages=``) before
 * any file is retrieved, so it learns early how many huge pages of each
 * size will join the pool: once a hugetlb memfd is preserved, the KHO
 * subtree %MEMFD_PRESERVE_HUGETLB_POOL_NODE holds a &struct
 * memfd_preserve_hugetlb_pool, filled in at freeze.
 *
 * What is held: from PRESERVE_FD until unpreserve or the kexec, every
 * folio an entry describes holds a folio reference the handler took while
 * the folio was locked and in the page cache, so that reclaim, migration,
 * compaction, collapse and splitting leave it where it is.  The size of a
 * preserved memfd cannot change, so no folio leaves the page cache.
 * Folios added after PRESERVE_FD (writes into holes, userfaultfd fills)
 * are held and preserved as they are added, and described at freeze, so
 * the blackout costs nothing for memory that was already described; once
 * frozen, adding a folio fails (the write gets an error rather than being
 * silently lost).  Folios in CMA (the KHO scratch areas) are migrated out
 * after PRESERVE_FD, then held and described.
 *
 * Fields are in the CPU's byte order.  The format is versioned by the LUO
 * file version (%MEMFD_PRESERVE_VERSION, %MEMFD_PRESERVE_HUGETLB_VERSION)
 * and the pool's FLB version
 * (%MEMFD_PRESERVE_POOL_VERSION); &memfd_preserve_file.header_size lets
 * later versions grow the header: a reader accepts any @header_size of
 * at least its own, a multiple of 8, ignores the fields it does not know
 * and finds the name at @header_size; a change that cannot be ignored
 * takes a new version.  The next kernel validates every field and fails
 * the file with -EBADMSG on anything inconsistent.
 */

#define MEMFD_PRESERVE_COMPATIBLE	"memfd"
#define MEMFD_PRESERVE_VERSION		1
#define MEMFD_PRESERVE_MAGIC		0x4d454d4644505231ULL	/* "MEMFDPR1" */
#define MEMFD_PRESERVE_NAME_LENGTH	256
#define MEMFD_PRESERVE_HUGETLB_COMPATIBLE	"memfd-hugetlb"
#define MEMFD_PRESERVE_HUGETLB_VERSION		1
#define MEMFD_PRESERVE_POOL_COMPATIBLE	"memfd-metadata"
#define MEMFD_PRESERVE_POOL_VERSION	1
#define MEMFD_PRESERVE_HUGETLB_POOL_NODE	"memfd-hugetlb-pool"
#define MEMFD_PRESERVE_HUGETLB_POOL_MAGIC	0x4d46444850315631ULL	/* "MFDHP1V1" */
#define MEMFD_PRESERVE_HUGE_SHIFTS	64

/* &memfd_preserve_file.flags: the open file's mode and status flags. */
#define MEMFD_PRESERVE_F_READ		0x1
#define MEMFD_PRESERVE_F_WRITE		0x2
#define MEMFD_PRESERVE_F_APPEND		0x4
#define MEMFD_PRESERVE_F_NONBLOCK	0x8
#define MEMFD_PRESERVE_F_ALL		0xf

#define MEMFD_PRESERVE_ENTRY_RUN	1
#define MEMFD_PRESERVE_ENTRY_PAGES	2

#define MEMFD_PRESERVE_PFN_BITS		40
#define MEMFD_PRESERVE_PFN_MASK		((1ULL << MEMFD_PRESERVE_PFN_BITS) - 1)
#define MEMFD_PRESERVE_SKIP_MAX		((1ULL << (64 - MEMFD_PRESERVE_PFN_BITS)) - 1)

/**
 * struct memfd_preserve_pool_page - start of a page of the metadata pool
 * @next: physical address of the next pool page, 0 for the last one
 * @reserved: zero
 */
struct memfd_preserve_pool_page {
	__u64 next;
	__u64 reserved;
};

/**
 * struct memfd_preserve_hugetlb_pool - preserved huge pages, by size
 * @magic: %MEMFD_PRESERVE_HUGETLB_POOL_MAGIC, which versions this
 *	structure: a change takes a new magic
 * @pages: @pages[s] is the number of preserved huge pages of 2^s bytes,
 *	in every session, of the hugetlb memfds frozen for the kexec
 *
 * It is the one page of a kho_alloc_preserve(), which the next kernel
 * restores with kho_restore_folio() and frees once its boot pools are
 * allocated.  A kernel that does not read it leaves that page reserved.
 */
struct memfd_preserve_hugetlb_pool {
	__u64 magic;
	__u64 pages[MEMFD_PRESERVE_HUGE_SHIFTS];
};

/**
 * struct memfd_preserve_chunk - start of every chunk
 * @next: physical address of the next chunk, 0 for the last one
 * @size: bytes of the chunk, this structure included: below PAGE_SIZE a
 *	chunk lives in the pool, else it is a block of its own of that size
 * @used: bytes of entries that follow this structure
 */
struct memfd_preserve_chunk {
	__u64 next;
	__u32 size;
	__u32 used;
};

/**
 * struct memfd_preserve_file - a preserved memfd, in the pool
 * @magic: %MEMFD_PRESERVE_MAGIC
 * @header_size: sizeof(struct memfd_preserve_file) of the writer, a
 *	multiple of 8; the name starts there (at @name for this version)
 * @seals: the memfd's seals (F_SEAL_*)
 * @size: i_size in bytes
 * @pos: the file position
 * @nr_folios: number of folios described by all entries
 * @nr_pages: number of pages in those folios
 * @chunks: physical address of the first chunk, 0 if there is none
 * @nr_chunks: number of chunks
 * @mode: permission bits of the inode (07777)
 * @uid: owner, in the initial user namespace
 * @gid: group, in the initial user namespace
 * @flags: how the file was open: %MEMFD_PRESERVE_F_READ, ..._WRITE,
 *	..._APPEND, ..._NONBLOCK
 * @name_len: length of @name, less than %MEMFD_PRESERVE_NAME_LENGTH
 * @huge_shift: %MEMFD_PRESERVE_HUGETLB_COMPATIBLE: log2 of the memfd's
 *	huge page size in bytes (21 for 2 MiB, 30 for 1 GiB);
 *	%MEMFD_PRESERVE_COMPATIBLE: zero
 * @reserved: zero
 * @name: the memfd's name ("memfd:" and the user's name), @name_len
 *	bytes and a NUL
 */
struct memfd_preserve_file {
	__u64 magic;
	__u32 header_size;
	__u32 seals;
	__u64 size;
	__u64 pos;
	__u64 nr_folios;
	__u64 nr_pages;
	__u64 chunks;
	__u32 nr_chunks;
	__u32 mode;
	__u32 uid;
	__u32 gid;
	__u32 flags;
	__u16 name_len;
	__u8 huge_shift;
	__u8 reserved;
	char name[];
};

/**
 * struct memfd_preserve_entry - start of every entry
 * @type: %MEMFD_PRESERVE_ENTRY_RUN or %MEMFD_PRESERVE_ENTRY_PAGES
 * @order: RUN: folio order (0 for a run of order-0 folios); PAGES: 0
 * @reserved: zero
 * @nr: RUN: number of pages; PAGES: number of words that follow
 * @index: page index of the first page
 */
struct memfd_preserve_entry {
	__u8 type;
	__u8 order;
	__u16 reserved;
	__u32 nr;
	__u64 index;
};

/**
 * struct memfd_preserve_run - a large folio or a physically contiguous run
 * @hdr: type %MEMFD_PRESERVE_ENTRY_RUN; @hdr.nr is 2^@hdr.order for a
 *	large folio, whose @hdr.index is aligned to it
 * @pfn: PFN of the first page
 */
struct memfd_preserve_run {
	struct memfd_preserve_entry hdr;
	__u64 pfn;
};

/**
 * struct memfd_preserve_pages - scattered order-0 pages
 * @hdr: type %MEMFD_PRESERVE_ENTRY_PAGES
 * @words: @hdr.nr words: PFN in bits 0-39, holes skipped in bits 40-63
 */
struct memfd_preserve_pages {
	struct memfd_preserve_entry hdr;
	__u64 words[];
};

#endif /* _LINUX_KHO_ABI_MEMFD_PRESERVE_H */
