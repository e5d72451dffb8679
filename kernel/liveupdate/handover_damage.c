// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: damage the handover state on purpose, for the
 * tests of the next kernel's reader.  Test kernels only
 * (CONFIG_LIVEUPDATE_TEST).
 *
 * Lines written to debugfs liveupdate/damage are kept and applied, in
 * order, to the state written by the next live update reboot, after it is
 * complete:
 *
 *	header version|magic|nr-sessions|chunk-dup|chunk-wild|chunk-truncate
 *	session NAME nr-files|name-nul|rename=NEW|size
 *	file SESSION TOKEN handler-id|version|token=N|data=PHYS|data=zero-page|
 *			   type|size|flb-id|poke=OFF,VAL,WIDTH|loop=OFF
 *	handler COMPATIBLE name-nul|rename=NEW
 *	flb COMPATIBLE name-nul|nr-files=N
 *	clear
 *
 * "poke" writes WIDTH (1, 2, 4 or 8) bytes of VAL at OFF bytes into the
 * file's own serialized state (at its data address); "loop" makes the
 * object whose address is the u64 at OFF there point to itself through its
 * first u64, a cycle in a chain.  Reading the file lists the pending lines.
 */
#define pr_fmt(fmt) "liveupdate: " fmt

#include <linux/debugfs.h>
#include <linux/io.h>
#include <linux/kho/abi/liveupdate.h>
#include <linux/mm.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "internal.h"

#define LUO_DAMAGE_MAX		64
#define LUO_DAMAGE_LINE		160

static DEFINE_MUTEX(luo_damage_lock);
static char *luo_damage_lines[LUO_DAMAGE_MAX];
static unsigned int luo_damage_nr;

/* A physical address far beyond any test machine's memory. */
#define LUO_DAMAGE_WILD_PHYS	BIT_ULL(44)

struct luo_damage_walk {
	const char *kind;	/* "session", "file", "handler" or "flb" */
	const char *name;
	u64 token;
	const char *op;
	bool done;
};

/* Write @width bytes of @val at physical address @phys, if it is RAM. */
static int luo_damage_poke_phys(u64 phys, u64 val, unsigned int width)
{
	void *p;

	if (!pfn_valid(PHYS_PFN(phys)) ||
	    offset_in_page(phys) + width > PAGE_SIZE ||
	    !IS_ALIGNED(phys, width))
		return -EINVAL;
	p = phys_to_virt(phys);
	switch (width) {
	case 1:
		*(u8 *)p = val;
		return 0;
	case 2:
		*(u16 *)p = val;
		return 0;
	case 4:
		*(u32 *)p = val;
		return 0;
	case 8:
		*(u64 *)p = val;
		return 0;
	}
	return -EINVAL;
}

static int luo_damage_file(struct luo_abi_file *rec, const char *op,
			   struct luo_abi_record *next)
{
	unsigned int off, width;
	u64 val;

	if (!strcmp(op, "handler-id")) {
		rec->handler_id = 0xdeadbeef;
	} else if (!strcmp(op, "version")) {
		rec->version = 0xdead;
	} else if (sscanf(op, "token=%llu", &val) == 1) {
		rec->token = val;
	} else if (!strcmp(op, "data=zero-page")) {
		/* RAM, but never preserved. */
		rec->data = page_to_phys(ZERO_PAGE(0));
	} else if (!strcmp(op, "data=wild")) {
		rec->data = LUO_DAMAGE_WILD_PHYS;
	} else if (!strcmp(op, "type")) {
		rec->hdr.type = 0x7f;
	} else if (!strcmp(op, "size")) {
		rec->hdr.size += 8;
	} else if (!strcmp(op, "flb-id")) {
		if (!next || next->type != LUO_ABI_RECORD_FILE_FLB)
			return -ENOENT;
		((struct luo_abi_file_flb *)next)->flb_id = 0xdead;
	} else if (sscanf(op, "poke=%u,%llx,%u", &off, &val, &width) == 3) {
		return luo_damage_poke_phys(rec->data + off, val, width);
	} else if (sscanf(op, "loop=%u", &off) == 1) {
		if (!pfn_valid(PHYS_PFN(rec->data + off)))
			return -EINVAL;
		val = *(u64 *)phys_to_virt(rec->data + off);
		return luo_damage_poke_phys(val, val, 8);
	} else {
		return -EINVAL;
	}
	return 0;
}

static int luo_damage_string(char *s, size_t len, const char *op)
{
	if (!strcmp(op, "name-nul"))
		memset(s, 'x', len);
	else if (!strncmp(op, "rename=", 7))
		strscpy_pad(s, op + 7, len);
	else
		return -EINVAL;
	return 0;
}

static int luo_damage_record(struct luo_abi_record *rec,
			     struct luo_abi_record *next,
			     const struct luo_abi_session *session,
			     struct luo_damage_walk *dw)
{
	const char *kind = dw->kind;
	u64 val;

	switch (rec->type) {
	case LUO_ABI_RECORD_SESSION: {
		struct luo_abi_session *s = (void *)rec;

		if (strcmp(kind, "session") ||
		    strncmp(s->name, dw->name, sizeof(s->name)))
			return -ENOENT;
		if (!strcmp(dw->op, "nr-files"))
			s->nr_files++;
		else if (!strcmp(dw->op, "size"))
			s->hdr.size += 8;
		else
			return luo_damage_string(s->name, sizeof(s->name),
						 dw->op);
		return 0;
	}
	case LUO_ABI_RECORD_FILE: {
		struct luo_abi_file *f = (void *)rec;

		if (strcmp(kind, "file") || !session || f->token != dw->token ||
		    strncmp(session->name, dw->name, sizeof(session->name)))
			return -ENOENT;
		return luo_damage_file(f, dw->op, next);
	}
	case LUO_ABI_RECORD_HANDLER: {
		struct luo_abi_handler *h = (void *)rec;

		if (strcmp(kind, "handler") ||
		    strncmp(h->compatible, dw->name, sizeof(h->compatible)))
			return -ENOENT;
		return luo_damage_string(h->compatible, sizeof(h->compatible),
					 dw->op);
	}
	case LUO_ABI_RECORD_FLB: {
		struct luo_abi_flb *flb = (void *)rec;

		if (strcmp(kind, "flb") ||
		    strncmp(flb->compatible, dw->name, sizeof(flb->compatible)))
			return -ENOENT;
		if (sscanf(dw->op, "nr-files=%llu", &val) == 1) {
			flb->nr_files = val;
			return 0;
		}
		return luo_damage_string(flb->compatible,
					 sizeof(flb->compatible), dw->op);
	}
	}
	return -ENOENT;
}

/* Find the record @dw names in @nr_chunks chunks of @hdr and damage it. */
static int luo_damage_records(struct luo_abi_header *hdr, u32 nr_chunks,
			      struct luo_damage_walk *dw)
{
	const struct luo_abi_session *session = NULL;
	u32 i, off;
	int err;

	for (i = 0; i < nr_chunks; i++) {
		void *chunk = phys_to_virt(hdr->chunks[i].phys);
		u32 used = hdr->chunks[i].used;

		for (off = 0; off < used; ) {
			struct luo_abi_record *rec = chunk + off;
			struct luo_abi_record *next = NULL;
			u16 size = rec->size;

			/* An earlier line may have broken the framing. */
			if (size < sizeof(*rec) || size > used - off)
				break;
			if (off + size < used)
				next = chunk + off + size;
			else if (i + 1 < nr_chunks && hdr->chunks[i + 1].used)
				next = phys_to_virt(hdr->chunks[i + 1].phys);
			if (rec->type == LUO_ABI_RECORD_SESSION)
				session = chunk + off;
			err = luo_damage_record(rec, next, session, dw);
			if (err != -ENOENT)
				return err;
			off += size;
		}
	}
	return -ENOENT;
}

static int luo_damage_header(struct luo_abi_header *hdr, u32 nr_chunks,
			     const char *op)
{
	struct luo_abi_chunk *last;

	if (!strcmp(op, "version")) {
		hdr->version = LUO_ABI_VERSION + 1;
	} else if (!strcmp(op, "magic")) {
		hdr->magic ^= 1;
	} else if (!strcmp(op, "nr-sessions")) {
		hdr->nr_sessions++;
	} else if (!strcmp(op, "chunk-truncate")) {
		/* Cut the last record in half. */
		if (!nr_chunks)
			return -ENOENT;
		last = &hdr->chunks[nr_chunks - 1];
		if (last->used < 8)
			return -ENOENT;
		last->used -= 8;
	} else if (!strcmp(op, "chunk-dup") || !strcmp(op, "chunk-wild")) {
		struct luo_abi_chunk *c = &hdr->chunks[hdr->nr_chunks];

		if (!nr_chunks || hdr->nr_chunks >= LUO_ABI_MAX_CHUNKS(PAGE_SIZE))
			return -ENOSPC;
		*c = hdr->chunks[0];
		if (!strcmp(op, "chunk-wild"))
			c->phys = LUO_DAMAGE_WILD_PHYS;
		hdr->nr_chunks++;
	} else {
		return -EINVAL;
	}
	return 0;
}

static int luo_damage_one(struct luo_abi_header *hdr, u32 nr_chunks,
			  char *line)
{
	struct luo_damage_walk dw = {};
	char *arg[4];
	int n = 0;

	while (n < ARRAY_SIZE(arg) && (arg[n] = strsep(&line, " ")))
		n++;
	if (n == 2 && !strcmp(arg[0], "header"))
		return luo_damage_header(hdr, nr_chunks, arg[1]);
	dw.kind = arg[0];
	dw.name = arg[1];
	if (n == 4 && !strcmp(arg[0], "file")) {
		if (kstrtou64(arg[2], 0, &dw.token))
			return -EINVAL;
		dw.op = arg[3];
	} else if (n == 3) {
		dw.op = arg[2];
	} else {
		return -EINVAL;
	}
	return luo_damage_records(hdr, nr_chunks, &dw);
}

/**
 * luo_handover_damage() - apply the pending damage to the written state
 * @hdr: the complete handover state
 *
 * Consumes the pending lines; each one that cannot be applied is logged.
 */
void luo_handover_damage(struct luo_abi_header *hdr)
{
	u32 nr_chunks = hdr->nr_chunks;
	unsigned int i;
	int err;

	guard(mutex)(&luo_damage_lock);
	for (i = 0; i < luo_damage_nr; i++) {
		char *line = luo_damage_lines[i];

		pr_warn("damaging the handover state: %s\n", line);
		err = luo_damage_one(hdr, nr_chunks, line);
		if (err)
			pr_warn("damage not applied: %pe\n", ERR_PTR(err));
		kfree(line);
	}
	luo_damage_nr = 0;
}

static void luo_damage_clear(void)
{
	while (luo_damage_nr)
		kfree(luo_damage_lines[--luo_damage_nr]);
}

static ssize_t luo_damage_write(struct file *file, const char __user *ubuf,
				size_t len, loff_t *ppos)
{
	char *line __free(kfree) = NULL;

	if (len >= LUO_DAMAGE_LINE)
		return -EINVAL;
	line = memdup_user_nul(ubuf, len);
	if (IS_ERR(line))
		return PTR_ERR(line);
	strim(line);
	guard(mutex)(&luo_damage_lock);
	if (!strcmp(line, "clear")) {
		luo_damage_clear();
		return len;
	}
	if (luo_damage_nr == LUO_DAMAGE_MAX)
		return -ENOSPC;
	luo_damage_lines[luo_damage_nr++] = no_free_ptr(line);
	return len;
}

static int luo_damage_show(struct seq_file *m, void *unused)
{
	unsigned int i;

	guard(mutex)(&luo_damage_lock);
	for (i = 0; i < luo_damage_nr; i++)
		seq_printf(m, "%s\n", luo_damage_lines[i]);
	return 0;
}

static int luo_damage_open(struct inode *inode, struct file *file)
{
	return single_open(file, luo_damage_show, NULL);
}

static const struct file_operations luo_damage_fops = {
	.owner		= THIS_MODULE,
	.open		= luo_damage_open,
	.read		= seq_read,
	.write		= luo_damage_write,
	.llseek		= seq_lseek,
	.release	= single_release,
};

/**
 * luo_damage_debugfs_init() - create debugfs liveupdate/damage
 * @dir: the liveupdate debugfs directory
 */
void luo_damage_debugfs_init(struct dentry *dir)
{
	debugfs_create_file("damage", 0600, dir, NULL, &luo_damage_fops);
}
