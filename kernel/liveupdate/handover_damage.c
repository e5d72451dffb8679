// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: damage the handover state on purpose, for the
 * tests of the next kernel's reader.  Test kernels only
 * (CONFIG_LIVEUPDATE_TEST and CONFIG_DEBUG_FS).
 *
 * Lines written to debugfs liveupdate/damage are kept and applied to the
 * state written by the next live update reboot, after it is complete:
 *
 *	header version|magic|nr-sessions|chunk-dup|chunk-wild|chunk-truncate
 *	session NAME nr-files|name-nul|rename=NEW|size
 *	file SESSION TOKEN handler-id|version|token=N|data=wild|data=zero-page|
 *			   type|size|flb-id|poke=PATH,VAL,WIDTH|loop=PATH
 *	handler COMPATIBLE name-nul|rename=NEW
 *	flb COMPATIBLE name-nul|nr-files=N
 *	timeline jump-cycles|step-size|nr-steps|header-size|first-step|grow
 *	clear
 *
 * "poke" and "loop" damage a file's own serialized state, which starts at
 * the address its handler put in the file record (&luo_abi_file.data).
 * PATH is OFF or OFF:OFF:... (at most four): every OFF but the last is
 * where the address of the next object is read, a u64; the last is an
 * offset into the object reached.  "poke" writes WIDTH (1, 2, 4 or 8)
 * bytes of VAL (hex) there: "poke=48:12,0,4" clears the u32 12 bytes into
 * the object whose address is the u64 48 bytes into the state.  "loop"
 * reads one more address there and makes the object at that address
 * point to itself through its first u64, a cycle in a chain: "loop=48".
 *
 * Every address "poke" and "loop" read or write is checked first: it must
 * lie in a metadata page of this handover, that is a page that KHO
 * preserves for the next kernel, that is in no page cache and on no LRU
 * (so no file's contents), neither reserved nor typed (slab, page tables),
 * and neither KHO's FDT nor a blob of another KHO user.  Anything
 * else is refused, however the address was arrived at: a value in the
 * state (a file's size, say) is never a way to write elsewhere.  These
 * lines are applied first, in order, to the records as the handlers wrote
 * them, so that no data= or token= line moves them; then the other lines,
 * in order.  A line that cannot be applied is logged and skipped, and the
 * others still apply.  Reading the file lists the pending lines.
 *
 * "timeline" lines damage the blackout timeline page instead, once it is
 * complete at the jump: the jump's cycle count zeroed, a step size or a
 * header size too small, more steps than fit, an unknown first step, or
 * "grow": the header and every step 8 bytes larger, as a later version of
 * the format would write them.
 */
#define pr_fmt(fmt) "liveupdate: " fmt

#include <linux/debugfs.h>
#include <linux/kexec.h>
#include <linux/kho/abi/kexec_handover.h>
#include <linux/kho/abi/liveupdate.h>
#include <linux/kho_radix_tree.h>
#include <linux/libfdt.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "internal.h"

#define LUO_DAMAGE_MAX		64
#define LUO_DAMAGE_LINE		160
#define LUO_DAMAGE_PATH_MAX	4

static DEFINE_MUTEX(luo_damage_lock);
static char *luo_damage_lines[LUO_DAMAGE_MAX];
static unsigned int luo_damage_nr;

/* The timeline damage of this reboot, applied at the jump without locks. */
enum {
	LUO_DAMAGE_TL_JUMP_CYCLES	= BIT(0),
	LUO_DAMAGE_TL_STEP_SIZE		= BIT(1),
	LUO_DAMAGE_TL_NR_STEPS		= BIT(2),
	LUO_DAMAGE_TL_HEADER_SIZE	= BIT(3),
	LUO_DAMAGE_TL_FIRST_STEP	= BIT(4),
	LUO_DAMAGE_TL_GROW		= BIT(5),
};

static u32 luo_damage_tl;

/*
 * What KHO hands over with this reboot, for the checks of "poke" and
 * "loop": the outgoing KHO tree (its root found in the image's KHO FDT, as
 * the next kernel finds it), and the address being looked up in it.  All
 * under luo_damage_lock.
 */
static const void *luo_damage_fdt;
static struct kho_radix_tree luo_damage_kho = {
	.lock = __MUTEX_INITIALIZER(luo_damage_kho.lock),
};

static phys_addr_t luo_damage_probe;

/* A physical address far beyond any test machine's memory. */
#define LUO_DAMAGE_WILD_PHYS	BIT_ULL(44)

struct luo_damage_walk {
	const char *kind;	/* "session", "file", "handler" or "flb" */
	const char *name;
	u64 token;
	const char *op;
	bool done;
};

/* A u64 FDT property, which need not be aligned. */
static u64 luo_damage_prop_u64(const void *prop)
{
	u64 val;

	memcpy(&val, prop, sizeof(val));
	return val;
}

/* Find the KHO state of the image about to be started. */
static void luo_damage_kho_init(void)
{
	const void *fdt, *prop;
	u64 root = 0;
	int len;

	luo_damage_fdt = NULL;
	luo_damage_kho.root = NULL;
	/* luo_handover_write() runs in kernel_kexec(), for kexec_image. */
	if (!kexec_image || !kexec_image->kho.fdt)
		return;
	fdt = phys_to_virt(kexec_image->kho.fdt);
	prop = fdt_getprop(fdt, 0, KHO_FDT_MEMORY_MAP_PROP_NAME, &len);
	if (prop && len == sizeof(u64))
		root = luo_damage_prop_u64(prop);
	if (!root)
		return;
	luo_damage_fdt = fdt;
	luo_damage_kho.root = phys_to_virt(root);
}

static int luo_damage_kho_match(phys_addr_t phys, unsigned int order)
{
	return luo_damage_probe - phys < (PAGE_SIZE << order);
}

/*
 * Whether KHO preserves the page at @phys.  The walk reads the tree without
 * KHO's lock, as the next kernel will: nodes are only ever added, and are
 * zeroed before they are linked in.
 */
static bool luo_damage_kho_preserved(phys_addr_t phys)
{
	if (!luo_damage_kho.root)
		return false;
	luo_damage_probe = phys;
	return kho_radix_walk_tree(&luo_damage_kho, luo_damage_kho_match) > 0;
}

/* Whether @phys is in KHO's FDT or in another KHO user's blob. */
static bool luo_damage_foreign_blob(phys_addr_t phys)
{
	const void *fdt = luo_damage_fdt;
	int node, len;

	if (PHYS_PFN(phys) == PHYS_PFN(kexec_image->kho.fdt))
		return true;
	fdt_for_each_subnode(node, fdt, 0) {
		const void *blob, *size;
		u64 start, end;

		if (!strcmp(fdt_get_name(fdt, node, NULL) ?: "",
			    LUO_ABI_SUBTREE_NAME))
			continue;
		blob = fdt_getprop(fdt, node, KHO_SUB_TREE_PROP_NAME, &len);
		if (!blob || len != sizeof(u64))
			return true;
		size = fdt_getprop(fdt, node, KHO_SUB_TREE_SIZE_PROP_NAME, &len);
		if (!size || len != sizeof(u64))
			return true;
		start = luo_damage_prop_u64(blob);
		end = start + luo_damage_prop_u64(size);
		if (phys >= round_down(start, PAGE_SIZE) &&
		    phys < round_up(end, PAGE_SIZE))
			return true;
	}
	return false;
}

/* Whether the page at @phys holds anything but plain kernel metadata. */
static bool luo_damage_not_metadata(phys_addr_t phys)
{
	struct page *page = pfn_to_online_page(PHYS_PFN(phys));
	struct folio *folio;

	if (!page)
		return true;
	folio = page_folio(page);
	/* A page cache or anonymous folio: some file's contents. */
	return page_has_type(&folio->page) || folio->mapping ||
	       folio_test_lru(folio) || folio_test_reserved(folio);
}

/*
 * Whether @len bytes at @phys, naturally aligned, lie in a metadata page of
 * this handover (see the top of this file).  The KHO walk goes last: it
 * is the slow one.
 */
static bool luo_damage_ours(phys_addr_t phys, unsigned int len)
{
	return luo_damage_fdt && IS_ALIGNED(phys, len) &&
	       offset_in_page(phys) + len <= PAGE_SIZE &&
	       !luo_damage_foreign_blob(phys) &&
	       !luo_damage_not_metadata(phys) &&
	       luo_damage_kho_preserved(phys);
}

static int luo_damage_refused(phys_addr_t phys)
{
	pr_warn_ratelimited("damage refused: %pa is not in a metadata page of this handover\n",
			    &phys);
	return -EPERM;
}

static int luo_damage_load(phys_addr_t phys, u64 *val)
{
	if (!luo_damage_ours(phys, sizeof(*val)))
		return luo_damage_refused(phys);
	*val = *(u64 *)phys_to_virt(phys);
	return 0;
}

/* Write @width bytes of @val at @phys, in this handover's metadata only. */
static int luo_damage_store(phys_addr_t phys, u64 val, unsigned int width)
{
	void *p;

	if (width > sizeof(val) || !is_power_of_2(width))
		return -EINVAL;
	if (!luo_damage_ours(phys, width))
		return luo_damage_refused(phys);
	p = phys_to_virt(phys);
	switch (width) {
	case 1:
		*(u8 *)p = val;
		break;
	case 2:
		*(u16 *)p = val;
		break;
	case 4:
		*(u32 *)p = val;
		break;
	default:
		*(u64 *)p = val;
		break;
	}
	return 0;
}

/*
 * Follow PATH at *@s from the state at @data: the address it leads to, in
 * *@phys.  *@s is left after PATH.
 */
static int luo_damage_path(u64 data, const char **s, phys_addr_t *phys)
{
	u64 addr = data;
	unsigned int i, off;
	int len, err;

	for (i = 0; ; i++) {
		if (i == LUO_DAMAGE_PATH_MAX ||
		    sscanf(*s, "%u%n", &off, &len) != 1)
			return -EINVAL;
		*s += len;
		addr += off;
		if (**s != ':')
			break;
		(*s)++;
		err = luo_damage_load(addr, &addr);
		if (err)
			return err;
	}
	*phys = addr;
	return 0;
}

/* poke=PATH,VAL,WIDTH; @s is after "poke=". */
static int luo_damage_poke(u64 data, const char *s)
{
	unsigned int width;
	phys_addr_t phys;
	int len = 0, err;
	u64 val;

	err = luo_damage_path(data, &s, &phys);
	if (err)
		return err;
	if (sscanf(s, ",%llx,%u%n", &val, &width, &len) != 2 || s[len])
		return -EINVAL;
	return luo_damage_store(phys, val, width);
}

/* loop=PATH; @s is after "loop=". */
static int luo_damage_loop(u64 data, const char *s)
{
	phys_addr_t phys;
	u64 obj;
	int err;

	err = luo_damage_path(data, &s, &phys);
	if (err)
		return err;
	if (*s)
		return -EINVAL;
	return luo_damage_load(phys, &obj) ?:
	       luo_damage_store(obj, obj, sizeof(obj));
}

static int luo_damage_file(struct luo_abi_file *rec, const char *op,
			   struct luo_abi_record *next)
{
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
	} else if (!strncmp(op, "poke=", 5)) {
		return luo_damage_poke(rec->data, op + 5);
	} else if (!strncmp(op, "loop=", 5)) {
		return luo_damage_loop(rec->data, op + 5);
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

static int luo_damage_timeline_op(const char *op)
{
	static const char * const ops[] = {
		"jump-cycles", "step-size", "nr-steps", "header-size",
		"first-step", "grow",
	};
	int i = match_string(ops, ARRAY_SIZE(ops), op);

	if (i < 0)
		return -EINVAL;
	WRITE_ONCE(luo_damage_tl, luo_damage_tl | BIT(i));
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
	if (n == 2 && !strcmp(arg[0], "timeline"))
		return luo_damage_timeline_op(arg[1]);
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

/* A line that writes a file's own state: applied first (see the top). */
static bool luo_damage_state_line(const char *line)
{
	return str_has_prefix(line, "file ") &&
	       (strstr(line, " poke=") || strstr(line, " loop="));
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
	unsigned int pass, i;
	int err;

	guard(mutex)(&luo_damage_lock);
	luo_damage_kho_init();
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < luo_damage_nr; i++) {
			char *line = luo_damage_lines[i];

			if (!line || luo_damage_state_line(line) != !pass)
				continue;
			pr_warn("damaging the handover state: %s\n", line);
			err = luo_damage_one(hdr, nr_chunks, line);
			if (err)
				pr_warn_ratelimited("damage not applied: %pe\n",
						    ERR_PTR(err));
			kfree(line);
			luo_damage_lines[i] = NULL;
		}
	}
	luo_damage_nr = 0;
}

/* Every step 8 bytes larger, and the header too, zeros in the new bytes. */
static void luo_damage_timeline_grow(struct luo_abi_timeline *tl)
{
	u32 old = tl->step_size, new = old + 8, i = tl->nr_steps;
	void *base = (void *)tl + tl->header_size;

	if (tl->header_size + 8 + (size_t)i * new > PAGE_SIZE)
		return;
	/* Last first: each step moves up, over where it was. */
	while (i--) {
		memmove(base + 8 + i * new, base + i * old, old);
		memset(base + 8 + i * new + old, 0, 8);
	}
	memset(base, 0, 8);
	tl->header_size += 8;
	tl->step_size = new;
}

/**
 * luo_timeline_damage() - apply the pending timeline damage
 * @tl: the timeline page, complete
 *
 * Called at the jump, with the other CPUs stopped: takes no lock.
 */
void luo_timeline_damage(struct luo_abi_timeline *tl)
{
	u32 damage = READ_ONCE(luo_damage_tl);

	if (!damage)
		return;
	WRITE_ONCE(luo_damage_tl, 0);
	if (damage & LUO_DAMAGE_TL_JUMP_CYCLES)
		tl->jump_cycles = 0;
	if (damage & LUO_DAMAGE_TL_FIRST_STEP)
		tl->steps[0].step = 999;
	if (damage & LUO_DAMAGE_TL_GROW)
		luo_damage_timeline_grow(tl);
	if (damage & LUO_DAMAGE_TL_STEP_SIZE)
		tl->step_size = 8;
	if (damage & LUO_DAMAGE_TL_NR_STEPS)
		tl->nr_steps = 1000;
	if (damage & LUO_DAMAGE_TL_HEADER_SIZE)
		tl->header_size = 4;
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
		WRITE_ONCE(luo_damage_tl, 0);
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
