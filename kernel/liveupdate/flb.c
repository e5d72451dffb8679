// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: file-lifecycle-bound global state (FLB).
 */

/**
 * DOC: File-lifecycle-bound global state
 *
 * Some state is not a file's own but is shared by many preserved files: an
 * IOMMU's translation tables that every preserved iommufd refers to, a pool
 * of huge pages, the metadata pool of the memfd handler.  Such state is an
 * FLB (&struct liveupdate_flb), bound with liveupdate_register_flb() to
 * each file handler whose files depend on it; a handler may depend on any
 * number of FLBs and an FLB may be shared by any number of handlers.
 *
 * Outgoing, every preserved file holds a reference on each FLB bound to its
 * handler: the first reference preserves the FLB (before the file's own
 * preserve, which may use it through liveupdate_flb_get_outgoing()), the
 * last one dropped unpreserves it.  Bindings cannot change while a handler
 * has live files, so a file's references are always those of its handler's
 * current list.  At reboot the FLBs are frozen after every file, a failure
 * failing the reboot like a file's, and each FLB is handed over with a
 * dependency record after every file that holds a reference on it.
 * References the owning subsystem holds itself are never counted.
 *
 * Incoming, each FLB handed over is counted by the dependency records
 * actually read, never by a number the previous kernel claims, so no order
 * of retrieves, finishes and first uses can make the count underflow.  It
 * is retrieved on first use, by its subsystem or by a dependent file's
 * retrieve (liveupdate_flb_get_incoming()), and finished exactly once, when
 * the last file that depended on it is finished, retrieved or not.
 *
 * The incoming records are read at core_initcall.  A built-in subsystem
 * that must take its state over before the handlers that depend on it
 * exist (an IOMMU driver adopting translation tables at rootfs_initcall,
 * long before iommufd registers its handler) retrieves its FLB from then
 * on, bound or not: the FLB is linked to its record on that first use, and
 * the handlers bind it later as usual.
 * Finished records are kept (they are small) until the next update, so that
 * a late user gets -ENOENT rather than a dangling pointer.
 */
#define pr_fmt(fmt) "liveupdate: " fmt

#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "internal.h"

/* Bound FLBs, protected by luo_handlers_lock. */
static LIST_HEAD(luo_flbs);

/* Incoming FLBs; the lock protects the list and the records' @flb links. */
static LIST_HEAD(luo_flbs_in);
static DEFINE_MUTEX(luo_flbs_in_lock);

static struct liveupdate_flb *luo_flb_find(const char *compatible)
{
	struct liveupdate_flb *flb;

	lockdep_assert_held(&luo_handlers_lock);
	list_for_each_entry(flb, &luo_flbs, list)
		if (!strcmp(flb->compatible, compatible))
			return flb;
	return NULL;
}

static struct luo_flb_link *luo_flb_link_find(struct liveupdate_file_handler *h,
					      struct liveupdate_flb *flb)
{
	struct luo_flb_link *link;

	list_for_each_entry(link, &h->flbs, node)
		if (link->flb == flb)
			return link;
	return NULL;
}

/*
 * Built in, so never freed: such an FLB may be retrieved before any handler
 * binds it, and stays linked to its incoming record when unbound.
 */
static bool luo_flb_builtin(const struct liveupdate_flb *flb)
{
	return !flb->owner && !is_module_address((unsigned long)flb);
}

/* The FLB an incoming record of @compatible is linked to, bound or not. */
static struct liveupdate_flb *luo_flb_in_linked(const char *compatible)
{
	struct luo_flb_in *in;

	lockdep_assert_held(&luo_flbs_in_lock);
	list_for_each_entry(in, &luo_flbs_in, list)
		if (in->flb && !strcmp(in->compatible, compatible))
			return in->flb;
	return NULL;
}

/* The incoming record @flb is linked to, or NULL. */
static struct luo_flb_in *luo_flb_in_of(const struct liveupdate_flb *flb)
{
	struct luo_flb_in *in;

	lockdep_assert_held(&luo_flbs_in_lock);
	list_for_each_entry(in, &luo_flbs_in, list)
		if (in->flb == flb)
			return in;
	return NULL;
}

static bool luo_flb_valid(const struct liveupdate_flb *flb)
{
	const struct liveupdate_flb_ops *ops = flb->ops;

	return flb->compatible && *flb->compatible &&
	       strlen(flb->compatible) < LIVEUPDATE_COMPATIBLE_LENGTH &&
	       ops && ops->preserve && ops->unpreserve && ops->retrieve &&
	       ops->finish;
}

/**
 * liveupdate_register_flb() - bind an FLB to a file handler
 * @handler: a registered file handler
 * @flb: the FLB; its compatible string must be unique among FLBs
 *
 * From now on every file preserved through @handler depends on @flb.  An
 * FLB can be bound to any number of handlers, and a handler to any number
 * of FLBs; the binding ends with liveupdate_unregister_flb() or when
 * @handler is unregistered.
 *
 * Return: 0; -EINVAL for an incomplete FLB; -ENOENT if @handler is not
 * registered; -EBUSY while @handler has live files; -EEXIST if @flb is
 * bound to @handler already or another FLB has its compatible string;
 * -ENOMEM.
 */
int liveupdate_register_flb(struct liveupdate_file_handler *handler,
			    struct liveupdate_flb *flb)
{
	struct luo_flb_link *link __free(kfree) = NULL;
	struct liveupdate_flb *other;

	if (!luo_flb_valid(flb))
		return -EINVAL;
	link = kzalloc_obj(*link);
	if (!link)
		return -ENOMEM;

	guard(mutex)(&luo_handlers_lock);
	guard(mutex)(&luo_flbs_in_lock);
	if (!luo_handler_registered(handler))
		return -ENOENT;
	if (handler->nr_files)
		return -EBUSY;
	other = luo_flb_find(flb->compatible) ?:
		luo_flb_in_linked(flb->compatible);
	if ((other && other != flb) || luo_flb_link_find(handler, flb))
		return -EEXIST;
	if (!flb->nr_handlers++) {
		mutex_init(&flb->lock);
		flb->nr_files = 0;
		flb->frozen = false;
		/* Early code may have retrieved a built-in FLB already. */
		flb->in = luo_flb_in_of(flb);
		list_add_tail(&flb->list, &luo_flbs);
	}
	link->flb = flb;
	list_add_tail(&no_free_ptr(link)->node, &handler->flbs);
	return 0;
}
EXPORT_SYMBOL_GPL(liveupdate_register_flb);

/* Drop one binding; luo_handlers_lock held, the handler has no live file. */
static void luo_flb_unbind(struct luo_flb_link *link)
{
	struct liveupdate_flb *flb = link->flb;

	list_del(&link->node);
	kfree(link);
	if (--flb->nr_handlers)
		return;
	list_del(&flb->list);
	/* A module's FLB may go away; a built-in one keeps its record. */
	if (!luo_flb_builtin(flb)) {
		scoped_guard(mutex, &luo_flbs_in_lock) {
			if (flb->in)
				flb->in->flb = NULL;
			flb->in = NULL;
		}
	}
	mutex_destroy(&flb->lock);
}

/**
 * liveupdate_unregister_flb() - unbind an FLB from a file handler
 * @handler: the handler
 * @flb: an FLB bound to it
 *
 * Return: 0; -ENOENT if @flb is not bound to @handler; -EBUSY while
 * @handler has live files, or if this is the last binding and the incoming
 * object of @flb is retrieved and not finished.
 */
int liveupdate_unregister_flb(struct liveupdate_file_handler *handler,
			      struct liveupdate_flb *flb)
{
	struct luo_flb_link *link;

	guard(mutex)(&luo_handlers_lock);
	link = luo_handler_registered(handler) ?
	       luo_flb_link_find(handler, flb) : NULL;
	if (!link)
		return -ENOENT;
	if (handler->nr_files)
		return -EBUSY;
	if (flb->nr_handlers == 1 && flb->in &&
	    READ_ONCE(flb->in->retrieved))
		return -EBUSY;
	luo_flb_unbind(link);
	return 0;
}
EXPORT_SYMBOL_GPL(liveupdate_unregister_flb);

/**
 * luo_flbs_unbind_all() - drop every FLB binding of a handler
 * @h: a handler being unregistered, with no live file
 */
void luo_flbs_unbind_all(struct liveupdate_file_handler *h)
{
	struct luo_flb_link *link, *tmp;

	lockdep_assert_held(&luo_handlers_lock);
	list_for_each_entry_safe(link, tmp, &h->flbs, node)
		luo_flb_unbind(link);
}

/* ---- outgoing ---- */

static int luo_flb_get(struct liveupdate_flb *flb)
{
	int err;

	guard(mutex)(&flb->lock);
	if (flb->nr_files) {
		flb->nr_files++;
		return 0;
	}
	if (!try_module_get(flb->owner))
		return -ENODEV;
	flb->out = (struct liveupdate_flb_state){ .version = flb->version };
	err = flb->ops->preserve(flb, &flb->out);
	if (err) {
		flb->out = (struct liveupdate_flb_state){};
		module_put(flb->owner);
		return err;
	}
	flb->nr_files = 1;
	return 0;
}

static void luo_flb_put(struct liveupdate_flb *flb)
{
	guard(mutex)(&flb->lock);
	if (WARN_ON_ONCE(!flb->nr_files) || --flb->nr_files)
		return;
	flb->ops->unpreserve(flb, &flb->out);
	flb->out = (struct liveupdate_flb_state){};
	module_put(flb->owner);
}

/**
 * luo_flbs_get() - take the FLB references of a file being preserved
 * @h: the file's handler, bound to the file (so its FLB list is fixed)
 *
 * Return: 0, or the error of the first FLB that could not be preserved,
 * with every reference taken dropped again.
 */
int luo_flbs_get(struct liveupdate_file_handler *h)
{
	struct luo_flb_link *link;
	int err;

	list_for_each_entry(link, &h->flbs, node) {
		err = luo_flb_get(link->flb);
		if (err) {
			list_for_each_entry_continue_reverse(link, &h->flbs,
							     node)
				luo_flb_put(link->flb);
			return err;
		}
	}
	return 0;
}

/**
 * luo_flbs_put() - drop the FLB references of a file no longer preserved
 * @h: the file's handler
 */
void luo_flbs_put(struct liveupdate_file_handler *h)
{
	struct luo_flb_link *link;

	list_for_each_entry_reverse(link, &h->flbs, node)
		luo_flb_put(link->flb);
}

/**
 * liveupdate_flb_get_outgoing() - the live object of a preserved FLB
 * @flb: a bound FLB
 * @objp: output: the object its @preserve set
 *
 * The object stays valid as long as a file that depends on @flb stays
 * preserved, for example during that file's own callbacks.
 *
 * Return: 0, or -ENOENT if no file that depends on @flb is preserved.
 */
int liveupdate_flb_get_outgoing(struct liveupdate_flb *flb, void **objp)
{
	guard(mutex)(&flb->lock);
	if (!flb->nr_files)
		return -ENOENT;
	*objp = flb->out.obj;
	return 0;
}
EXPORT_SYMBOL_GPL(liveupdate_flb_get_outgoing);

/*
 * Called from here to the jump with luo_state_rwsem held for writing: no
 * file can be preserved or unpreserved, so which FLBs are preserved, and
 * their lists of handlers, cannot change.
 */

/**
 * luo_flbs_prepare() - number the preserved FLBs for the handover
 *
 * Return: how many FLBs are preserved.
 */
u32 luo_flbs_prepare(void)
{
	struct liveupdate_flb *flb;
	u32 nr = 0;

	lockdep_assert_held_write(&luo_state_rwsem);
	guard(mutex)(&luo_handlers_lock);
	list_for_each_entry(flb, &luo_flbs, list) {
		if (!flb->nr_files)
			continue;
		flb->out_id = nr++;
		flb->out_files = 0;
	}
	return nr;
}

static void luo_flbs_unfreeze_from(struct liveupdate_flb *last)
{
	struct liveupdate_flb *flb = last;

	list_for_each_entry_continue_reverse(flb, &luo_flbs, list) {
		if (!flb->frozen)
			continue;
		if (flb->ops->unfreeze)
			flb->ops->unfreeze(flb, &flb->out);
		flb->frozen = false;
	}
}

/**
 * luo_flbs_freeze() - freeze every preserved FLB, after the files
 *
 * Return: 0, or the first error, with every FLB frozen unfrozen again.
 */
int luo_flbs_freeze(void)
{
	struct liveupdate_flb *flb;
	int err;

	lockdep_assert_held_write(&luo_state_rwsem);
	guard(mutex)(&luo_handlers_lock);
	list_for_each_entry(flb, &luo_flbs, list) {
		if (!flb->nr_files)
			continue;
		err = flb->ops->freeze ? flb->ops->freeze(flb, &flb->out) : 0;
		if (err) {
			pr_err("FLB %s failed to freeze: %pe\n",
			       flb->compatible, ERR_PTR(err));
			luo_flbs_unfreeze_from(flb);
			return err;
		}
		flb->frozen = true;
	}
	return 0;
}

/**
 * luo_flbs_write() - emit the record of every preserved FLB
 * @fn: writes one record
 * @arg: passed to @fn
 */
void luo_flbs_write(void (*fn)(void *arg, struct liveupdate_flb *flb),
		    void *arg)
{
	struct liveupdate_flb *flb;

	lockdep_assert_held_write(&luo_state_rwsem);
	guard(mutex)(&luo_handlers_lock);
	list_for_each_entry(flb, &luo_flbs, list)
		if (flb->nr_files)
			fn(arg, flb);
}

/* ---- incoming ---- */

/**
 * luo_flb_in_add() - keep an FLB the previous kernel handed over
 * @in: the record, with no dependent file yet
 */
void luo_flb_in_add(struct luo_flb_in *in)
{
	mutex_init(&in->lock);
	guard(mutex)(&luo_flbs_in_lock);
	list_add_tail(&in->list, &luo_flbs_in);
}

/**
 * luo_flbs_in_check() - report incoming FLBs that do not add up
 *
 * Called once the handover state is read.  An FLB no file depends on can
 * never be finished: its state stays reserved until the next update.
 */
void luo_flbs_in_check(void)
{
	struct luo_flb_in *in;

	guard(mutex)(&luo_flbs_in_lock);
	list_for_each_entry(in, &luo_flbs_in, list) {
		if (in->nr_files != in->claimed_files)
			pr_err("FLB %s: %llu dependent files handed over, %lu found\n",
			       in->compatible, in->claimed_files,
			       in->nr_files);
		if (!in->nr_files)
			pr_warn("FLB %s: no file depends on it, it cannot be finished\n",
				in->compatible);
	}
}

/* A built-in FLB no handler has bound yet, which early code may use. */
static bool luo_flb_early(struct liveupdate_flb *flb, const char *compatible)
{
	lockdep_assert_held(&luo_handlers_lock);
	return flb && luo_flb_builtin(flb) && !flb->nr_handlers &&
	       luo_flb_valid(flb) && !strcmp(flb->compatible, compatible);
}

/*
 * The FLB of this kernel for @in, with its module pinned; links the two on
 * first use.  @caller is the FLB asked for, or NULL.  ERR_PTR(-ENOENT) if
 * there is none (or a module's FLB that is not bound), ERR_PTR(-ENODEV) if
 * its module is going away.
 */
static struct liveupdate_flb *luo_flb_in_owner(struct luo_flb_in *in,
					       struct liveupdate_flb *caller)
{
	struct liveupdate_flb *flb;

	guard(mutex)(&luo_handlers_lock);
	guard(mutex)(&luo_flbs_in_lock);
	flb = in->flb;
	if (!flb) {
		flb = luo_flb_find(in->compatible);
		if (!flb && luo_flb_early(caller, in->compatible))
			flb = caller;
		if (!flb || luo_flb_in_of(flb))
			return ERR_PTR(-ENOENT);
		flb->in = in;
		in->flb = flb;
	}
	return try_module_get(flb->owner) ? flb : ERR_PTR(-ENODEV);
}

/*
 * @flb's record, or the free one of its format.  Never through @flb->in:
 * an FLB that is not bound may not have it set.
 */
static struct luo_flb_in *luo_flb_in_find(struct liveupdate_flb *flb)
{
	struct luo_flb_in *in;

	guard(mutex)(&luo_flbs_in_lock);
	in = luo_flb_in_of(flb);
	if (in)
		return in;
	list_for_each_entry(in, &luo_flbs_in, list)
		if (!in->flb && !strcmp(in->compatible, flb->compatible))
			return in;
	return NULL;
}

/**
 * liveupdate_flb_get_incoming() - the object of an FLB handed over
 * @flb: the FLB: bound to a handler, or built in
 * @objp: output: the object its @retrieve set
 *
 * The first call retrieves the object; later ones return the same one,
 * until the last file that depended on @flb is finished.  Called by the
 * subsystem that owns @flb, or by a dependent file's @retrieve or
 * @preload (from a worker).  Works once LUO's core_initcall has run; a
 * built-in @flb (@owner NULL) need not be bound to a handler yet, so that
 * code running before the handlers exist can take its state over.
 *
 * Return: 0; -EAGAIN if asked before the incoming state is read; -ENOENT
 * if the previous kernel handed no such FLB over or it is finished, or if
 * @flb is a module's and not bound; -ENODEV if the FLB's module is going
 * away; or the error of @retrieve (the next call retries).
 */
int liveupdate_flb_get_incoming(struct liveupdate_flb *flb, void **objp)
{
	struct liveupdate_flb *owner;
	struct luo_flb_in *in;
	int err;

	if (luo_incoming_pending())
		return -EAGAIN;
	in = luo_flb_in_find(flb);
	if (!in)
		return -ENOENT;
	owner = luo_flb_in_owner(in, flb);
	if (IS_ERR(owner))
		return PTR_ERR(owner);
	if (owner != flb) {
		module_put(owner->owner);
		return -ENOENT;
	}

	guard(mutex)(&in->lock);
	err = -ENOENT;
	if (in->finished)
		goto out_put;
	if (!in->retrieved) {
		in->state.obj = NULL;
		err = flb->ops->retrieve(flb, &in->state);
		if (err)
			goto out_put;
		/* The module stays pinned while the object is live. */
		WRITE_ONCE(in->retrieved, true);
		*objp = in->state.obj;
		return 0;
	}
	*objp = in->state.obj;
	err = 0;
out_put:
	module_put(flb->owner);
	return err;
}
EXPORT_SYMBOL_GPL(liveupdate_flb_get_incoming);

/* A file that depended on @in is finished; the last one finishes @in. */
static void luo_flb_in_put(struct luo_flb_in *in)
{
	struct liveupdate_flb *flb;

	guard(mutex)(&in->lock);
	if (WARN_ON_ONCE(!in->nr_files) || --in->nr_files)
		return;
	flb = luo_flb_in_owner(in, NULL);
	if (IS_ERR(flb)) {
		pr_warn("FLB %s: no FLB of that format in this kernel, its state cannot be released\n",
			in->compatible);
		return;
	}
	flb->ops->finish(flb, &in->state, in->retrieved);
	if (in->retrieved)
		module_put(flb->owner);
	WRITE_ONCE(in->retrieved, false);
	in->finished = true;
	in->state.obj = NULL;
	module_put(flb->owner);
}

/**
 * luo_file_add_flb() - record that an incoming file depends on an FLB
 * @lfile: the incoming file
 * @in: the FLB
 *
 * Return: 0 or -ENOMEM.
 */
int luo_file_add_flb(struct luo_file *lfile, struct luo_flb_in *in)
{
	struct luo_flb_in **flbs;

	flbs = krealloc_array(lfile->flbs, lfile->nr_flbs + 1, sizeof(*flbs),
			      GFP_KERNEL);
	if (!flbs)
		return -ENOMEM;
	flbs[lfile->nr_flbs++] = in;
	lfile->flbs = flbs;
	guard(mutex)(&in->lock);
	in->nr_files++;
	return 0;
}

/**
 * luo_file_put_flbs() - an incoming file is finished: release its FLBs
 * @lfile: the file
 */
void luo_file_put_flbs(struct luo_file *lfile)
{
	while (lfile->nr_flbs)
		luo_flb_in_put(lfile->flbs[--lfile->nr_flbs]);
	kfree(lfile->flbs);
	lfile->flbs = NULL;
}

/**
 * luo_flbs_show() - list the FLBs, for debugfs
 * @m: the seq_file
 *
 * One line per bound FLB: "outgoing COMPATIBLE handlers=N files=N", and
 * one per incoming FLB: "incoming COMPATIBLE files=N STATE" where STATE is
 * pending, retrieved or finished.
 */
void luo_flbs_show(struct seq_file *m)
{
	struct liveupdate_flb *flb;
	struct luo_flb_in *in;

	scoped_guard(mutex, &luo_handlers_lock) {
		list_for_each_entry(flb, &luo_flbs, list) {
			guard(mutex)(&flb->lock);
			seq_printf(m, "outgoing %s handlers=%u files=%lu\n",
				   flb->compatible, flb->nr_handlers,
				   flb->nr_files);
		}
	}
	guard(mutex)(&luo_flbs_in_lock);
	list_for_each_entry(in, &luo_flbs_in, list)
		seq_printf(m, "incoming %s files=%lu %s\n", in->compatible,
			   READ_ONCE(in->nr_files),
			   in->finished ? "finished" :
			   READ_ONCE(in->retrieved) ? "retrieved" : "pending");
}
