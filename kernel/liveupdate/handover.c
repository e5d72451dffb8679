// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: writing the handover state at reboot and
 * reading it back in the next kernel.  The format is described in
 * include/linux/kho/abi/liveupdate.h.
 */
#define pr_fmt(fmt) "liveupdate: " fmt

#include <linux/kexec.h>
#include <linux/kexec_handover.h>
#include <linux/kho/abi/liveupdate.h>
#include <linux/mm.h>
#include <linux/sched/clock.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/xarray.h>

#include "internal.h"

/* Chunks of 1 MiB: large enough to be few, small enough to allocate. */
#define LUO_CHUNK_ORDER		min(8, MAX_PAGE_ORDER)
/* No record is larger than this, so each chunk wastes less. */
#define LUO_RECORD_MAX		sizeof(struct luo_abi_session)
/* A handler counted in the state whose record is not written yet. */
#define LUO_NO_ID		U32_MAX

static_assert(sizeof(struct luo_abi_record) == 8);
static_assert(sizeof(struct luo_abi_chunk) == 16);
static_assert(sizeof(struct luo_abi_header) == 40);
static_assert(sizeof(struct luo_abi_handler) == 64);
static_assert(sizeof(struct luo_abi_session) == 80);
static_assert(sizeof(struct luo_abi_file) == 32);
static_assert(sizeof(struct luo_abi_flb) == 80);
static_assert(sizeof(struct luo_abi_file_flb) == 16);
static_assert(sizeof(struct luo_abi_file_dep) == 16);
static_assert(sizeof(struct luo_abi_flb) <= LUO_RECORD_MAX);
static_assert(LUO_ABI_COMPATIBLE_LENGTH == LIVEUPDATE_COMPATIBLE_LENGTH);
static_assert(LUO_ABI_NAME_LENGTH == LIVEUPDATE_SESSION_NAME_LENGTH);

/* The page published to KHO at boot, filled in at reboot. */
static struct luo_abi_header *luo_header;

/**
 * luo_handover_init() - publish the (empty) handover state
 *
 * Return: 0 or a negative errno.
 */
int luo_handover_init(void)
{
	struct luo_abi_header *hdr;
	int err;

	hdr = kho_alloc_preserve(PAGE_SIZE);
	if (IS_ERR(hdr))
		return PTR_ERR(hdr);
	err = kho_add_subtree(LUO_ABI_SUBTREE_NAME, hdr, PAGE_SIZE);
	if (err) {
		kho_unpreserve_free(hdr);
		return err;
	}
	luo_header = hdr;
	return 0;
}

/**
 * luo_handover_fini() - withdraw what luo_handover_init() published
 */
void luo_handover_fini(void)
{
	kho_remove_subtree(luo_header);
	kho_unpreserve_free(luo_header);
	luo_header = NULL;
}

/* ---- writing ---- */

struct luo_writer {
	struct luo_abi_header *hdr;
	void **chunks;
	unsigned int nr_chunks;
	unsigned int chunk;
	/* Handlers already given an id in this state, by pointer. */
	struct xarray handler_ids;
	u32 next_handler_id;
};

static void luo_writer_free_chunks(struct luo_writer *w)
{
	unsigned int i;

	for (i = 0; i < w->nr_chunks; i++)
		kho_unpreserve_free(w->chunks[i]);
	kfree(w->chunks);
	w->chunks = NULL;
	w->nr_chunks = 0;
}

/*
 * Chunks for @bytes of records: 1 MiB ones, the last one only as large as
 * needed.  Each holds its size less LUO_RECORD_MAX at least, as a record
 * that does not fit starts the next chunk.
 */
static int luo_writer_alloc(struct luo_writer *w, size_t bytes)
{
	unsigned int max = LUO_ABI_MAX_CHUNKS(PAGE_SIZE);
	size_t room = 0;

	w->chunks = kzalloc_objs(*w->chunks, max);
	if (!w->chunks)
		return -ENOMEM;
	do {
		unsigned int order = min(LUO_CHUNK_ORDER,
					 get_order(bytes - room + LUO_RECORD_MAX));
		struct luo_abi_chunk *c = &w->hdr->chunks[w->nr_chunks];
		void *chunk;

		if (w->nr_chunks == max) {
			luo_writer_free_chunks(w);
			return -E2BIG;
		}
		chunk = kho_alloc_preserve(PAGE_SIZE << order);
		if (IS_ERR(chunk)) {
			luo_writer_free_chunks(w);
			return PTR_ERR(chunk);
		}
		w->chunks[w->nr_chunks++] = chunk;
		c->phys = virt_to_phys(chunk);
		c->order = order;
		c->used = 0;
		room += (PAGE_SIZE << order) - LUO_RECORD_MAX;
	} while (room < bytes);
	return 0;
}

/* Room for a record of @size bytes; the chunks were sized for all of them. */
static void *luo_writer_record(struct luo_writer *w, u16 type, size_t size)
{
	struct luo_abi_chunk *c = &w->hdr->chunks[w->chunk];
	struct luo_abi_record *rec;

	if (c->used + size > PAGE_SIZE << c->order) {
		w->chunk++;
		c++;
	}
	rec = w->chunks[w->chunk] + c->used;
	memset(rec, 0, size);
	rec->type = type;
	rec->size = size;
	c->used += size;
	return rec;
}

static u32 luo_writer_handler_id(struct luo_writer *w,
				 struct liveupdate_file_handler *h)
{
	struct luo_abi_handler *rec;
	void *entry;

	entry = xa_load(&w->handler_ids, (unsigned long)h);
	if (xa_to_value(entry) != LUO_NO_ID)
		return xa_to_value(entry);

	rec = luo_writer_record(w, LUO_ABI_RECORD_HANDLER, sizeof(*rec));
	rec->id = w->next_handler_id++;
	strscpy(rec->compatible, h->compatible);
	/* Cannot fail: it replaces the entry stored before freezing. */
	xa_store(&w->handler_ids, (unsigned long)h, xa_mk_value(rec->id),
		 GFP_NOWAIT);
	return rec->id;
}

/*
 * Size the state, and reserve the per-handler ids so that nothing can fail
 * once files are frozen.
 */
static int luo_writer_prepare(struct luo_writer *w, u32 *nr_sessions,
			      u64 *nr_files, u32 *nr_flbs)
{
	size_t bytes = 0;
	struct rb_node *node;
	struct luo_file *lfile;
	int err;

	*nr_sessions = 0;
	*nr_files = 0;
	*nr_flbs = luo_flbs_prepare();
	bytes += *nr_flbs * sizeof(struct luo_abi_flb);
	for (node = rb_first(&luo_sessions); node; node = rb_next(node)) {
		struct luo_session *s = rb_entry(node, struct luo_session, node);

		if (s->kind != LUO_SESSION_OUTGOING)
			continue;
		(*nr_sessions)++;
		bytes += sizeof(struct luo_abi_session);
		list_for_each_entry(lfile, &s->files, list) {
			unsigned long key = (unsigned long)lfile->lf.handler;
			struct luo_flb_link *link;

			(*nr_files)++;
			bytes += sizeof(struct luo_abi_file);
			list_for_each_entry(link, &lfile->lf.handler->flbs, node) {
				bytes += sizeof(struct luo_abi_file_flb);
				link->flb->out_files++;
			}
			bytes += lfile->nr_deps * sizeof(struct luo_abi_file_dep);
			if (xa_load(&w->handler_ids, key))
				continue;
			err = xa_err(xa_store(&w->handler_ids, key,
					      xa_mk_value(LUO_NO_ID), GFP_KERNEL));
			if (err)
				return err;
			bytes += sizeof(struct luo_abi_handler);
		}
	}
	return luo_writer_alloc(w, bytes);
}

static void luo_writer_flb(void *arg, struct liveupdate_flb *flb)
{
	struct luo_abi_flb *rec;

	rec = luo_writer_record(arg, LUO_ABI_RECORD_FLB, sizeof(*rec));
	rec->id = flb->out_id;
	rec->version = flb->out.version;
	rec->data = flb->out.data;
	rec->nr_files = flb->out_files;
	strscpy(rec->compatible, flb->compatible);
}

/* The dependencies of the file just written on its handler's FLBs. */
static void luo_writer_file_flbs(struct luo_writer *w, struct luo_file *lfile)
{
	struct luo_flb_link *link;

	list_for_each_entry(link, &lfile->lf.handler->flbs, node) {
		struct luo_abi_file_flb *rec;

		rec = luo_writer_record(w, LUO_ABI_RECORD_FILE_FLB,
					sizeof(*rec));
		rec->flb_id = link->flb->out_id;
	}
}

/* The earlier files of its session the file just written refers to. */
static void luo_writer_file_deps(struct luo_writer *w, struct luo_file *lfile)
{
	unsigned int i;

	for (i = 0; i < lfile->nr_deps; i++) {
		struct luo_abi_file_dep *rec;

		rec = luo_writer_record(w, LUO_ABI_RECORD_FILE_DEP,
					sizeof(*rec));
		rec->token = lfile->deps[i]->lf.token;
	}
}

static void luo_writer_write(struct luo_writer *w)
{
	struct rb_node *node;
	struct luo_file *lfile;

	/* FLBs before every file that refers to them. */
	luo_flbs_write(luo_writer_flb, w);
	for (node = rb_first(&luo_sessions); node; node = rb_next(node)) {
		struct luo_session *s = rb_entry(node, struct luo_session, node);
		struct luo_abi_session *srec;

		if (s->kind != LUO_SESSION_OUTGOING)
			continue;
		/* Handler records go before the session that uses them. */
		list_for_each_entry(lfile, &s->files, list)
			luo_writer_handler_id(w, lfile->lf.handler);

		srec = luo_writer_record(w, LUO_ABI_RECORD_SESSION,
					 sizeof(*srec));
		srec->nr_files = s->nr_files;
		strscpy(srec->name, s->name);
		list_for_each_entry(lfile, &s->files, list) {
			struct luo_abi_file *frec;
			u32 id = luo_writer_handler_id(w, lfile->lf.handler);

			frec = luo_writer_record(w, LUO_ABI_RECORD_FILE,
						 sizeof(*frec));
			frec->handler_id = id;
			frec->version = lfile->lf.version;
			frec->token = lfile->lf.token;
			frec->data = lfile->lf.data;
			luo_writer_file_flbs(w, lfile);
			luo_writer_file_deps(w, lfile);
		}
	}
}

static size_t luo_state_bytes(const struct luo_abi_header *hdr)
{
	size_t bytes = PAGE_SIZE;
	u32 i;

	for (i = 0; i < hdr->nr_chunks; i++)
		bytes += PAGE_SIZE << hdr->chunks[i].order;
	return bytes;
}

/* Incoming state that this update drops: say so, once per session. */
static void luo_report_dropped(void)
{
	struct rb_node *node;

	for (node = rb_first(&luo_sessions); node; node = rb_next(node)) {
		struct luo_session *s = rb_entry(node, struct luo_session, node);

		if (s->kind == LUO_SESSION_INCOMING)
			pr_warn("incoming session '%s' (%lu files) was not finished: released by this update\n",
				s->name, s->nr_files);
	}
}

/**
 * luo_handover_write() - freeze the files and write the handover state
 * @image: the kexec image about to be started
 * @start_ns: local_clock() when LUO got hold of the state, for the timeline
 *
 * Called with luo_state_rwsem held for writing.  Everything that can fail
 * (sizing and allocating the state) happens before the first freeze, so
 * the only failures after it are the handlers' own.
 *
 * Return: 0 or a negative errno, with nothing frozen or allocated left.
 */
int luo_handover_write(struct kimage *image, u64 start_ns)
{
	struct luo_writer w = { .hdr = luo_header };
	u64 t = start_ns;
	u32 nr_sessions, nr_flbs;
	u64 nr_files;
	int err;

	lockdep_assert_held_write(&luo_state_rwsem);
	xa_init(&w.handler_ids);
	err = luo_writer_prepare(&w, &nr_sessions, &nr_files, &nr_flbs);
	if (err)
		goto out;
	t = luo_tl_out_step(LIVEUPDATE_TL_PREPARE, t, 0);
	if (nr_files && !image->kho.fdt) {
		pr_err("%llu preserved files but the kexec image carries no KHO state (load it with kexec_file_load and KHO on)\n",
		       nr_files);
		err = -EOPNOTSUPP;
		goto out_free;
	}

	err = luo_files_freeze();
	if (err)
		goto out_free;
	/* The FLBs after the files that depend on them. */
	t = local_clock();
	err = luo_flbs_freeze();
	if (err) {
		luo_files_unfreeze();
		goto out_free;
	}
	t = luo_tl_out_step(LIVEUPDATE_TL_FREEZE_FLB, t, nr_flbs);

	luo_writer_write(&w);
	w.hdr->version = LUO_ABI_VERSION;
	w.hdr->header_size = sizeof(*w.hdr);
	w.hdr->nr_chunks = w.nr_chunks;
	w.hdr->nr_sessions = nr_sessions;
	w.hdr->nr_files = nr_files;
	w.hdr->magic = LUO_ABI_MAGIC;
	luo_tl_out_step(LIVEUPDATE_TL_WRITE, t, min_t(u64, nr_files, U32_MAX));
	luo_report_dropped();
	pr_info("handing over %u sessions, %llu files (%zu bytes of state, %llu us)\n",
		nr_sessions, nr_files, luo_state_bytes(w.hdr),
		div_u64(local_clock() - start_ns, NSEC_PER_USEC));
	luo_handover_damage(w.hdr);
	kfree(w.chunks);
	goto out;

out_free:
	luo_writer_free_chunks(&w);
	memset(w.hdr, 0, PAGE_SIZE);
out:
	xa_destroy(&w.handler_ids);
	return err;
}

/* ---- reading ---- */

struct luo_reader {
	/* Handler id -> compatible string (pointing into a chunk copy). */
	struct xarray handlers;
	/* FLB id -> struct luo_flb_in. */
	struct xarray flbs;
	/* The file record just read, for the file-FLB records after it. */
	struct luo_file *file;
	struct luo_session *session;
	u32 session_files;
	bool session_damaged;
	u32 nr_sessions;
	u64 nr_files;
};

static bool luo_string_ok(const char *s, size_t len)
{
	size_t n = strnlen(s, len);

	return n && n < len;
}

static void luo_reader_end_session(struct luo_reader *r)
{
	struct luo_session *s = r->session;

	if (!s)
		return;
	if (r->session_damaged || s->nr_files != r->session_files) {
		pr_err("session '%s': damaged state (%lu of %u files readable); it cannot be retrieved\n",
		       s->name, s->nr_files, r->session_files);
		s->error = -EBADMSG;
	}
	r->session = NULL;
}

static void luo_reader_session(struct luo_reader *r,
			       const struct luo_abi_session *rec)
{
	struct luo_session *s;
	int err;

	luo_reader_end_session(r);
	r->session_damaged = false;
	if (rec->hdr.size < sizeof(*rec) ||
	    !luo_string_ok(rec->name, sizeof(rec->name))) {
		pr_err("damaged session record: skipped with its files\n");
		return;
	}
	s = luo_session_alloc(rec->name, LUO_SESSION_INCOMING);
	if (!s) {
		pr_err("session '%s': out of memory: skipped\n", rec->name);
		return;
	}
	scoped_guard(mutex, &luo_sessions_lock)
		err = luo_session_insert(s);
	if (err) {
		pr_err("session '%s': duplicate name: skipped\n", s->name);
		luo_session_free(s);
		return;
	}
	r->session = s;
	r->session_files = rec->nr_files;
	r->nr_sessions++;
}

static void luo_reader_file(struct luo_reader *r,
			    const struct luo_abi_file *rec)
{
	struct luo_session *s = r->session;
	struct luo_file *lfile;
	const char *compatible;

	if (!s)
		return;		/* its session was skipped, and said so */
	if (rec->hdr.size < sizeof(*rec)) {
		r->session_damaged = true;
		return;
	}
	lfile = kzalloc_obj(*lfile);
	if (!lfile) {
		r->session_damaged = true;
		return;
	}
	lfile->lf.token = rec->token;
	lfile->lf.data = rec->data;
	lfile->lf.version = rec->version;
	lfile->state = LIVEUPDATE_FILE_INCOMING;
	compatible = xa_load(&r->handlers, rec->handler_id);
	if (compatible) {
		strscpy(lfile->compatible, compatible);
	} else {
		pr_err("session '%s': token %llu: unknown handler id %u\n",
		       s->name, rec->token, rec->handler_id);
		lfile->state = LIVEUPDATE_FILE_BROKEN;
		lfile->error = -EBADMSG;
	}
	guard(mutex)(&s->mutex);
	if (luo_session_add_file(s, lfile)) {
		pr_err("session '%s': duplicate token %llu: skipped\n",
		       s->name, rec->token);
		kfree(lfile);
		r->session_damaged = true;
		return;
	}
	r->file = lfile;
	r->nr_files++;
}

static void luo_reader_flb(struct luo_reader *r, const struct luo_abi_flb *rec)
{
	struct luo_flb_in *in;

	if (rec->hdr.size < sizeof(*rec) ||
	    !luo_string_ok(rec->compatible, sizeof(rec->compatible))) {
		pr_err("damaged FLB record %u\n", rec->id);
		return;
	}
	in = kzalloc_obj(*in);
	if (!in) {
		pr_err("FLB %s: out of memory: skipped\n", rec->compatible);
		return;
	}
	strscpy(in->compatible, rec->compatible);
	in->state.data = rec->data;
	in->state.version = rec->version;
	in->claimed_files = rec->nr_files;
	if (xa_insert(&r->flbs, rec->id, in, GFP_KERNEL)) {
		pr_err("duplicate or unstorable FLB record %u\n", rec->id);
		kfree(in);
		return;
	}
	luo_flb_in_add(in);
}

static void luo_reader_file_flb(struct luo_reader *r,
				const struct luo_abi_file_flb *rec)
{
	struct luo_file *lfile = r->file;
	struct luo_flb_in *in;
	int err = -EBADMSG;

	if (!lfile)
		return;		/* its file was skipped, and said so */
	in = xa_load(&r->flbs, rec->flb_id);
	if (rec->hdr.size >= sizeof(*rec) && in)
		err = luo_file_add_flb(lfile, in);
	if (err) {
		/* Its FLB will not be finished: better known than silent. */
		pr_err("session '%s': token %llu: FLB dependency %u: %pe\n",
		       r->session->name, lfile->lf.token, rec->flb_id,
		       ERR_PTR(err));
		lfile->state = LIVEUPDATE_FILE_BROKEN;
		lfile->error = err;
	}
}

/*
 * Unlike a lost FLB, a lost dependency hides which state a file may still
 * use: the whole session is kept in place, unretrievable.
 */
static void luo_reader_file_dep(struct luo_reader *r,
				const struct luo_abi_file_dep *rec)
{
	struct luo_session *s = r->session;
	struct luo_file *lfile = r->file, *dep = NULL;
	int err = -EBADMSG;

	if (!lfile) {
		/* Not after a file record, or after one that was skipped. */
		if (s)
			r->session_damaged = true;
		return;
	}
	guard(mutex)(&s->mutex);
	/* Only files read before are in the session yet: no cycle. */
	if (rec->hdr.size >= sizeof(*rec))
		dep = luo_session_find_file(s, rec->token);
	if (dep && dep != lfile)
		err = luo_file_add_dep(lfile, dep);
	if (err) {
		pr_err("session '%s': token %llu: dependency on token %llu: %pe\n",
		       s->name, lfile->lf.token, rec->token, ERR_PTR(err));
		r->session_damaged = true;
	}
}

static void luo_reader_handler(struct luo_reader *r,
			       const struct luo_abi_handler *rec)
{
	char *compatible;

	if (rec->hdr.size < sizeof(*rec) ||
	    !luo_string_ok(rec->compatible, sizeof(rec->compatible))) {
		pr_err("damaged handler record %u\n", rec->id);
		return;
	}
	compatible = kstrdup(rec->compatible, GFP_KERNEL);
	if (!compatible)
		return;
	if (xa_insert(&r->handlers, rec->id, compatible, GFP_KERNEL)) {
		pr_err("duplicate or unstorable handler record %u\n", rec->id);
		kfree(compatible);
	}
}

/* Returns false if the rest of the chunk cannot be trusted. */
static bool luo_reader_chunk(struct luo_reader *r, const void *chunk,
			     u32 used)
{
	u32 off = 0;

	while (off < used) {
		const struct luo_abi_record *rec = chunk + off;

		if (used - off < sizeof(*rec) || rec->size < sizeof(*rec) ||
		    rec->size % 8 || rec->size > used - off)
			return false;
		if (rec->type != LUO_ABI_RECORD_FILE_FLB &&
		    rec->type != LUO_ABI_RECORD_FILE_DEP)
			r->file = NULL;
		switch (rec->type) {
		case LUO_ABI_RECORD_HANDLER:
			luo_reader_handler(r, chunk + off);
			break;
		case LUO_ABI_RECORD_SESSION:
			luo_reader_session(r, chunk + off);
			break;
		case LUO_ABI_RECORD_FILE:
			luo_reader_file(r, chunk + off);
			break;
		case LUO_ABI_RECORD_FLB:
			luo_reader_flb(r, chunk + off);
			break;
		case LUO_ABI_RECORD_FILE_FLB:
			luo_reader_file_flb(r, chunk + off);
			break;
		case LUO_ABI_RECORD_FILE_DEP:
			luo_reader_file_dep(r, chunk + off);
			break;
		default:
			if (!(rec->type & LUO_ABI_RECORD_OPTIONAL)) {
				pr_err("unknown record type %#x\n", rec->type);
				r->session_damaged = true;
			}
			break;
		}
		off += rec->size;
	}
	return true;
}

static void luo_reader_chunks(struct luo_reader *r,
			      const struct luo_abi_header *hdr)
{
	u32 i, nr = hdr->nr_chunks;
	bool truncated = nr > LUO_ABI_MAX_CHUNKS(PAGE_SIZE);

	if (truncated) {
		pr_err("handover state lists %u chunks, at most %lu fit: truncated\n",
		       nr, LUO_ABI_MAX_CHUNKS(PAGE_SIZE));
		nr = LUO_ABI_MAX_CHUNKS(PAGE_SIZE);
	}
	for (i = 0; i < nr; i++) {
		const struct luo_abi_chunk *c = &hdr->chunks[i];
		size_t size = PAGE_SIZE << min_t(u32, c->order, MAX_PAGE_ORDER);
		struct folio *folio = NULL;

		if (c->order > MAX_PAGE_ORDER || !IS_ALIGNED(c->phys, size) ||
		    c->used > size || c->used % 8)
			goto damaged;
		folio = kho_restore_folio(c->phys);
		if (!folio || folio_size(folio) != size)
			goto damaged;
		if (!luo_reader_chunk(r, folio_address(folio), c->used))
			goto damaged;
		folio_put(folio);
		continue;
damaged:
		pr_err("handover chunk %u is damaged: its records are lost\n",
		       i);
		r->session_damaged = true;
		if (folio)
			folio_put(folio);
	}
	/* The last file's records may go on in a chunk that is cut off. */
	if (truncated)
		r->session_damaged = true;
	luo_reader_end_session(r);
}

/**
 * luo_handover_restore() - rebuild the incoming sessions
 *
 * Reads what the previous kernel handed over, validating every field.
 * What is damaged fails only its own session or file, with a log line;
 * the rest stays retrievable.
 *
 * Return: the number of files restored.
 */
u64 luo_handover_restore(void)
{
	struct luo_reader r = {};
	const struct luo_abi_header *hdr;
	struct folio *folio;
	unsigned long id;
	phys_addr_t phys;
	size_t size;
	char *compatible;

	if (kho_retrieve_subtree(LUO_ABI_SUBTREE_NAME, &phys, &size))
		return 0;	/* not a live update boot */
	if (size != PAGE_SIZE || !PAGE_ALIGNED(phys)) {
		pr_err("handover state has a bad size or address: ignored\n");
		return 0;
	}
	folio = kho_restore_folio(phys);
	if (!folio || folio_size(folio) != PAGE_SIZE) {
		pr_err("handover state page was not preserved: ignored\n");
		if (folio)
			folio_put(folio);
		return 0;
	}
	hdr = folio_address(folio);
	if (!hdr->magic) {
		/* Kexec without a live update reboot (or nothing to hand). */
		goto out;
	}
	if (hdr->magic != LUO_ABI_MAGIC || !hdr->version ||
	    hdr->header_size < sizeof(*hdr) || hdr->header_size > PAGE_SIZE) {
		pr_err("handover state has a bad header: ignored\n");
		goto out;
	}
	if (hdr->version > LUO_ABI_VERSION) {
		pr_err("handover state format %u is newer than this kernel's %u: ignored\n",
		       hdr->version, LUO_ABI_VERSION);
		goto out;
	}

	xa_init(&r.handlers);
	xa_init(&r.flbs);
	luo_reader_chunks(&r, hdr);
	xa_for_each(&r.handlers, id, compatible)
		kfree(compatible);
	xa_destroy(&r.handlers);
	/* The incoming FLBs are on their own list now. */
	xa_destroy(&r.flbs);
	luo_flbs_in_check();
	if (r.nr_sessions != hdr->nr_sessions || r.nr_files != hdr->nr_files)
		pr_err("restored %u of %u sessions, %llu of %llu files\n",
		       r.nr_sessions, hdr->nr_sessions, r.nr_files,
		       hdr->nr_files);
	else
		pr_info("restored %u sessions, %llu files\n", r.nr_sessions,
			r.nr_files);
out:
	folio_put(folio);
	return r.nr_files;
}
