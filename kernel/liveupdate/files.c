// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: file handlers and preserved files.
 */
#define pr_fmt(fmt) "liveupdate: " fmt

#include <linux/file.h>
#include <linux/fs.h>
#include <linux/kexec_handover.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched/clock.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "internal.h"

#define CREATE_TRACE_POINTS
#include <trace/events/liveupdate.h>

/*
 * Few handlers and FLBs exist (one per file type or subsystem): lists are
 * the right structure.
 */
static LIST_HEAD(luo_handlers);
/* Protects luo_handlers, the FLB registry and every binding. */
DEFINE_MUTEX(luo_handlers_lock);

/*
 * Every preserved file, across sessions, so that none is preserved twice.
 */
static struct rb_root luo_objects = RB_ROOT;
static DEFINE_MUTEX(luo_objects_lock);

static struct liveupdate_file_handler *luo_handler_find(const char *compatible)
{
	struct liveupdate_file_handler *h;

	lockdep_assert_held(&luo_handlers_lock);
	list_for_each_entry(h, &luo_handlers, list)
		if (!strcmp(h->compatible, compatible))
			return h;
	return NULL;
}

/**
 * luo_handler_registered() - is a handler in the registry
 * @handler: the handler
 *
 * Return: true if @handler is registered; luo_handlers_lock must be held.
 */
bool luo_handler_registered(struct liveupdate_file_handler *handler)
{
	struct liveupdate_file_handler *h;

	lockdep_assert_held(&luo_handlers_lock);
	list_for_each_entry(h, &luo_handlers, list)
		if (h == handler)
			return true;
	return false;
}

/**
 * liveupdate_register_file_handler() - make a type of file preservable
 * @handler: the handler; its compatible string names its format and must
 *	be unique
 *
 * Files of the new type can be preserved right away, and incoming files of
 * its format can be retrieved.
 *
 * Return: 0, -EINVAL for an incomplete handler, or -EEXIST if a handler
 * with the same compatible string is registered.
 */
int liveupdate_register_file_handler(struct liveupdate_file_handler *handler)
{
	const struct liveupdate_file_ops *ops = handler->ops;

	if (!handler->compatible || !ops || !ops->can_preserve ||
	    !ops->preserve || !ops->unpreserve || !ops->retrieve ||
	    !ops->finish)
		return -EINVAL;
	if (!*handler->compatible ||
	    strlen(handler->compatible) >= LIVEUPDATE_COMPATIBLE_LENGTH)
		return -EINVAL;

	guard(mutex)(&luo_handlers_lock);
	if (luo_handler_find(handler->compatible))
		return -EEXIST;
	handler->nr_files = 0;
	INIT_LIST_HEAD(&handler->flbs);
	list_add_tail(&handler->list, &luo_handlers);
	return 0;
}
EXPORT_SYMBOL_GPL(liveupdate_register_file_handler);

/**
 * liveupdate_unregister_file_handler() - withdraw a file handler
 * @handler: a registered handler
 *
 * Its FLB bindings go with it.
 *
 * Return: 0, -ENOENT if @handler is not registered, or -EBUSY while files
 * bound to the handler are live (preserved, or restored and not finished).
 */
int liveupdate_unregister_file_handler(struct liveupdate_file_handler *handler)
{
	guard(mutex)(&luo_handlers_lock);
	if (!luo_handler_registered(handler))
		return -ENOENT;
	if (handler->nr_files)
		return -EBUSY;
	luo_flbs_unbind_all(handler);
	list_del_init(&handler->list);
	return 0;
}
EXPORT_SYMBOL_GPL(liveupdate_unregister_file_handler);

/* Bind a file to @h: pins the handler and its module. */
static bool luo_handler_bind(struct liveupdate_file_handler *h)
{
	lockdep_assert_held(&luo_handlers_lock);
	if (!try_module_get(h->owner))
		return false;
	h->nr_files++;
	return true;
}

/**
 * luo_handler_get() - find and pin the handler of a format
 * @compatible: the format's name
 *
 * Return: the handler, or NULL if none is registered (or it is going away).
 */
struct liveupdate_file_handler *luo_handler_get(const char *compatible)
{
	struct liveupdate_file_handler *h;

	guard(mutex)(&luo_handlers_lock);
	h = luo_handler_find(compatible);
	return h && luo_handler_bind(h) ? h : NULL;
}

void luo_handler_put(struct liveupdate_file_handler *handler)
{
	scoped_guard(mutex, &luo_handlers_lock)
		handler->nr_files--;
	module_put(handler->owner);
}

static struct liveupdate_file_handler *luo_handler_for(struct file *file)
{
	struct liveupdate_file_handler *h;

	guard(mutex)(&luo_handlers_lock);
	list_for_each_entry(h, &luo_handlers, list)
		if (h->ops->can_preserve(h, file))
			return luo_handler_bind(h) ? h : NULL;
	return NULL;
}

/* Claims @lfile->object; -EBUSY if it is preserved already. */
static int luo_object_claim(struct luo_file *lfile)
{
	struct rb_node **link = &luo_objects.rb_node, *parent = NULL;

	guard(mutex)(&luo_objects_lock);
	while (*link) {
		struct luo_file *f = rb_entry(*link, struct luo_file, object_node);

		if (lfile->object == f->object)
			return -EBUSY;
		parent = *link;
		link = lfile->object < f->object ? &parent->rb_left :
						   &parent->rb_right;
	}
	rb_link_node(&lfile->object_node, parent, link);
	rb_insert_color(&lfile->object_node, &luo_objects);
	return 0;
}

static void luo_object_release(struct luo_file *lfile)
{
	guard(mutex)(&luo_objects_lock);
	rb_erase(&lfile->object_node, &luo_objects);
}

/* The outgoing file that preserves @object, or NULL. */
static struct luo_file *luo_object_find(const void *object)
{
	struct rb_node *node = luo_objects.rb_node;

	lockdep_assert_held(&luo_objects_lock);
	while (node) {
		struct luo_file *f = rb_entry(node, struct luo_file, object_node);

		if (object == f->object)
			return f;
		node = object < f->object ? node->rb_left : node->rb_right;
	}
	return NULL;
}

/* Forget what @lfile's state referred to: its preserve failed or is undone. */
static void luo_file_drop_deps(struct luo_file *lfile)
{
	unsigned int i;

	for (i = 0; i < lfile->nr_deps; i++)
		lfile->deps[i]->nr_dependents--;
	kfree(lfile->deps);
	lfile->deps = NULL;
	lfile->nr_deps = 0;
	lfile->dep_depth = 0;
}

/**
 * liveupdate_file_in_folio() - the folio an incoming file's handle names
 * @lf: an incoming file whose @lf->data is the physical address of a folio
 *	its handler preserved (one block from kho_alloc_preserve(), say)
 *
 * For handlers whose state is one such block: the folio, taken back from
 * KHO on the first call and kept in @lf->private, because KHO gives a page
 * back only once and a failed retrieve must be retryable.  A failure is
 * kept too, so that it is not tried (and logged) again.  The handler's
 * finish puts the folio and clears @lf->private.
 *
 * Return: the folio, or ERR_PTR(-EBADMSG) if @lf->data names no folio KHO
 * preserved.
 */
struct folio *liveupdate_file_in_folio(struct liveupdate_file *lf)
{
	struct folio *folio = lf->private;

	if (folio)
		return folio;
	/* The handle comes from the previous kernel: checked before use. */
	if (!lf->data || !PAGE_ALIGNED(lf->data))
		folio = ERR_PTR(-EBADMSG);
	else
		folio = kho_restore_folio(lf->data) ?: ERR_PTR(-EBADMSG);
	lf->private = folio;
	return folio;
}
EXPORT_SYMBOL_GPL(liveupdate_file_in_folio);

static bool luo_file_refers_to(struct luo_file *lfile, struct luo_file *dep)
{
	unsigned int i;

	for (i = 0; i < lfile->nr_deps; i++)
		if (lfile->deps[i] == dep)
			return true;
	return false;
}

/**
 * luo_file_add_dep() - record that @lfile's state refers to @dep
 * @lfile: a file being preserved, or read from the handover
 * @dep: a file before it in the same session, whose mutex is held
 *
 * Return: 0 (also if @dep is named already); -ELOOP if files would refer
 * to files more than LUO_MAX_DEP_DEPTH deep; -ENOMEM.
 */
int luo_file_add_dep(struct luo_file *lfile, struct luo_file *dep)
{
	struct luo_file **deps;

	lockdep_assert_held(&lfile->session->mutex);
	if (luo_file_refers_to(lfile, dep))
		return 0;
	if (dep->dep_depth >= LUO_MAX_DEP_DEPTH)
		return -ELOOP;
	deps = krealloc_array(lfile->deps, lfile->nr_deps + 1, sizeof(*deps),
			      GFP_KERNEL_ACCOUNT);
	if (!deps)
		return -ENOMEM;
	deps[lfile->nr_deps++] = dep;
	lfile->deps = deps;
	lfile->dep_depth = max(lfile->dep_depth, dep->dep_depth + 1);
	dep->nr_dependents++;
	return 0;
}

/**
 * liveupdate_file_dep_outgoing() - refer to another file of the session
 * @lf: the file being preserved, from its handler's @preserve
 * @file: a file that @lf's state refers to (the memory an iommufd maps,
 *	the iommufd a device is bound to)
 * @token: output: @file's token, for @lf's serialized state
 *
 * @file itself (the open file, not another one of the same object) must
 * be preserved already, in the same session: it is then before
 * @lf in the session, so it is frozen before @lf and unfrozen after, and
 * the next kernel restores it before @lf (liveupdate_file_dep_incoming())
 * and finishes it after.  Until @lf is unpreserved, @file cannot be
 * (LIVEUPDATE_SESSION_UNPRESERVE_FD fails with EBUSY).  The reference is
 * dropped with @lf's own preserve if that fails.
 *
 * Context: from @preserve only, with the session's lock held (LUO holds
 * it around the callback).
 *
 * Return: 0; -ENOENT if @file is not preserved in @lf's session; -ELOOP if
 * files would refer to files more than LUO_MAX_DEP_DEPTH (8) deep;
 * -ENOMEM; -EINVAL if not called from @preserve.
 */
int liveupdate_file_dep_outgoing(struct liveupdate_file *lf,
				 struct file *file, u64 *token)
{
	struct luo_file *lfile = container_of(lf, struct luo_file, lf);
	struct luo_file *dep;
	int err;

	if (WARN_ON_ONCE(!lfile->preserving))
		return -EINVAL;
	lockdep_assert_held(&lfile->session->mutex);
	scoped_guard(mutex, &luo_objects_lock) {
		dep = luo_object_find(file);
		/* Another session's file may go away once the lock drops. */
		if (dep && (dep == lfile || dep->session != lfile->session))
			dep = NULL;
	}
	/* Ours cannot: the session's lock is held. */
	if (!dep)
		return -ENOENT;
	err = luo_file_add_dep(lfile, dep);
	if (!err)
		*token = dep->lf.token;
	return err;
}
EXPORT_SYMBOL_GPL(liveupdate_file_dep_outgoing);

/**
 * luo_file_preserve() - preserve a file into an outgoing session
 * @session: outgoing session, its mutex held
 * @fd: the file
 * @token: its name across the update
 *
 * Return: 0, -EBADF, -ENOENT (no handler), -EEXIST (token taken), -EBUSY
 * (object preserved already), -ENOMEM or the handler's error.  On error
 * nothing is left behind.
 */
int luo_file_preserve(struct luo_session *session, int fd, u64 token)
{
	struct liveupdate_file_handler *h;
	struct luo_file *lfile;
	struct file *file;
	int err;

	lockdep_assert_held(&session->mutex);
	file = fget(fd);
	if (!file)
		return -EBADF;

	err = -EEXIST;
	if (luo_session_find_file(session, token))
		goto err_fput;
	err = -ENOENT;
	h = luo_handler_for(file);
	if (!h)
		goto err_fput;
	err = -ENOMEM;
	lfile = kzalloc_obj(*lfile, GFP_KERNEL_ACCOUNT);
	if (!lfile)
		goto err_put_handler;

	lfile->lf.handler = h;
	lfile->lf.file = file;
	lfile->lf.token = token;
	lfile->lf.version = h->version;
	/* Its preserve may look up the files it refers to. */
	lfile->session = session;
	lfile->object = file;
	lfile->state = LIVEUPDATE_FILE_PRESERVED;
	strscpy(lfile->compatible, h->compatible);

	err = luo_object_claim(lfile);
	if (err)
		goto err_free;
	/* The FLBs first: the file's preserve may use them. */
	err = luo_flbs_get(h);
	if (!err) {
		lfile->preserving = true;
		err = h->ops->preserve(&lfile->lf);
		lfile->preserving = false;
		if (err)
			luo_flbs_put(h);
	}
	trace_liveupdate_preserve(session->name, token, h->compatible, err);
	if (err) {
		luo_file_drop_deps(lfile);
		goto err_release;
	}
	/* Cannot fail: the token was checked under the same mutex. */
	WARN_ON(luo_session_add_file(session, lfile));
	return 0;

err_release:
	luo_object_release(lfile);
err_free:
	kfree(lfile);
err_put_handler:
	luo_handler_put(h);
err_fput:
	fput(file);
	return err;
}

static void luo_file_remove(struct luo_file *lfile)
{
	struct luo_session *session = lfile->session;

	lockdep_assert_held(&session->mutex);
	list_del(&lfile->list);
	rb_erase(&lfile->token_node, &session->by_token);
	session->nr_files--;
}

/**
 * luo_file_unpreserve() - give a preserved file back and forget it
 * @lfile: an outgoing file, its session's mutex held
 */
void luo_file_unpreserve(struct luo_file *lfile)
{
	struct liveupdate_file_handler *h = lfile->lf.handler;

	/* Unpreserved in reverse order, so its dependents are gone. */
	WARN_ON_ONCE(lfile->nr_dependents);
	h->ops->unpreserve(&lfile->lf);
	luo_file_drop_deps(lfile);
	luo_flbs_put(h);
	trace_liveupdate_unpreserve(lfile->session->name, lfile->lf.token,
				    h->compatible);
	luo_file_remove(lfile);
	luo_object_release(lfile);
	fput(lfile->lf.file);
	luo_handler_put(h);
	kfree(lfile);
}

/**
 * luo_file_preload_begin() - bind an incoming file for its handler's preload
 * @lfile: an incoming file, its session's mutex held
 *
 * A file whose handler has a @preload is bound to it from here on, as a
 * retrieved file is: the handler's module stays pinned while the file may
 * hold its state.  The caller runs @preload without the session's mutex,
 * and then calls luo_file_preload_end(); retrieve and finish of the file
 * wait for that (luo_files_wait_preload()).
 *
 * Return: the handler whose @preload to call, or NULL if there is none or
 * the file is past preloading (retrieved, broken, or a retrieve was tried).
 */
struct liveupdate_file_handler *luo_file_preload_begin(struct luo_file *lfile)
{
	struct liveupdate_file_handler *h;

	lockdep_assert_held(&lfile->session->mutex);
	if (lfile->state != LIVEUPDATE_FILE_INCOMING || lfile->error ||
	    lfile->lf.handler)
		return NULL;
	h = luo_handler_get(lfile->compatible);
	if (!h)
		return NULL;
	if (!h->ops->preload) {
		luo_handler_put(h);
		return NULL;
	}
	lfile->lf.handler = h;
	lfile->preloaded = true;
	lfile->preloading = true;
	return h;
}

/**
 * luo_file_preload_end() - the handler's preload of @lfile is done
 * @lfile: a file luo_file_preload_begin() returned a handler for
 *
 * Called without the session's mutex: a retrieve or finish may be waiting
 * for this, holding it.  The file may be freed as soon as this returns.
 */
void luo_file_preload_end(struct luo_file *lfile)
{
	trace_liveupdate_preload(lfile->session->name, lfile->lf.token,
				 lfile->compatible);
	store_release_wake_up(&lfile->preloading, false);
}

static void luo_file_wait_preload(struct luo_file *lfile)
{
	/* Pairs with luo_file_preload_end(): the handler's state after it. */
	wait_var_event(&lfile->preloading, !smp_load_acquire(&lfile->preloading));
}

/**
 * luo_files_wait_preload() - wait until no file of @session is preloading
 * @session: an incoming session, its mutex held
 *
 * At most one file of a session preloads at a time, and its preload does
 * not need the mutex to end.
 */
void luo_files_wait_preload(struct luo_session *session)
{
	struct luo_file *lfile;

	lockdep_assert_held(&session->mutex);
	list_for_each_entry(lfile, &session->files, list)
		luo_file_wait_preload(lfile);
}

/**
 * luo_file_settle() - @lfile no longer needs the files it refers to
 * @lfile: an incoming file, its session's mutex held
 *
 * In the new kernel, what a file's state describes may still use what the
 * files it refers to describe: a device's DMA goes on through the IOMMU
 * tables its iommufd set up, into the pages of the memfds those map.  So
 * a file stays needed while a file that refers to it is not settled, and
 * its handler keeps its state in place (liveupdate_file_has_dependents()).
 * A file is settled once finished, or retrieved with nothing that needs
 * it: its handler then holds what it uses itself (a retrieved device's
 * iommufd pins the memfds it maps).  A file that cannot be released (no
 * handler, broken, or its handler said so with
 * liveupdate_file_not_released()) is never settled, nor what it refers
 * to.
 */
static void luo_file_settle(struct luo_file *lfile)
{
	unsigned int i;

	lockdep_assert_held(&lfile->session->mutex);
	if (lfile->settled || lfile->nr_dependents)
		return;
	lfile->settled = true;
	/* Recurses at most LUO_MAX_DEP_DEPTH deep: the reader checked. */
	for (i = 0; i < lfile->nr_deps; i++) {
		struct luo_file *dep = lfile->deps[i];
		const struct liveupdate_file_ops *ops;

		if (WARN_ON_ONCE(!dep->nr_dependents) || --dep->nr_dependents ||
		    dep->state != LIVEUPDATE_FILE_RETRIEVED)
			continue;
		ops = dep->lf.handler->ops;
		if (ops->dependents_done)
			ops->dependents_done(&dep->lf);
		luo_file_settle(dep);
	}
}

/**
 * liveupdate_file_not_released() - @finish could not release @lf's state
 * @lf: an incoming file, from its handler's @finish
 *
 * For a handler that cannot tell what its file's state still does (a
 * device it cannot find, or whose record it cannot read, may still be
 * doing DMA): the files @lf refers to are then kept in place until the
 * next update, as for a file no handler can take.
 */
void liveupdate_file_not_released(struct liveupdate_file *lf)
{
	struct luo_file *lfile = container_of(lf, struct luo_file, lf);

	lockdep_assert_held(&lfile->session->mutex);
	pr_warn("session '%s': token %llu (%s) could not be released\n",
		lfile->session->name, lf->token, lfile->compatible);
	lfile->not_released = true;
}
EXPORT_SYMBOL_GPL(liveupdate_file_not_released);

/**
 * liveupdate_file_has_dependents() - does a file still need @lf's state?
 * @lf: an incoming file, from its handler's @retrieve or @finish
 *
 * True while a file of the session that refers to @lf (directly, or
 * through retrieved files) is neither retrieved nor finished, because its
 * state may still use what @lf's describes.  Then @retrieve must keep
 * that in place (a memfd's pages held, whatever userspace does to the
 * memfd) until its handler's @dependents_done; and @finish must not free
 * it: a file that needs it could not be released, and it stays allocated
 * until the next update.
 *
 * Return: true if @lf's state must stay in place.
 */
bool liveupdate_file_has_dependents(struct liveupdate_file *lf)
{
	struct luo_file *lfile = container_of(lf, struct luo_file, lf);

	lockdep_assert_held(&lfile->session->mutex);
	return lfile->nr_dependents;
}
EXPORT_SYMBOL_GPL(liveupdate_file_has_dependents);

/**
 * luo_file_retrieve() - restore an incoming file
 * @lfile: an incoming file, its session's mutex held
 * @filep: output: a new reference to the restored file
 *
 * The first successful call restores the file through its handler; later
 * calls return the same file.  A failure leaves the file retrievable.
 *
 * Return: 0, -EOPNOTSUPP (no handler for the format), the file's damage
 * error, or the handler's error.
 */
int luo_file_retrieve(struct luo_file *lfile, struct file **filep)
{
	struct liveupdate_file_handler *h;
	u64 start = local_clock();
	int err;

	lockdep_assert_held(&lfile->session->mutex);
	switch (lfile->state) {
	case LIVEUPDATE_FILE_RETRIEVED:
		*filep = get_file(lfile->lf.file);
		return 0;
	case LIVEUPDATE_FILE_BROKEN:
		return lfile->error;
	}

	/* A preloaded file is bound already, and stays bound. */
	luo_file_wait_preload(lfile);
	h = lfile->lf.handler ?: luo_handler_get(lfile->compatible);
	if (!h) {
		err = -EOPNOTSUPP;
		goto out;
	}
	lfile->lf.handler = h;
	lfile->retrieving = true;
	lfile->session->retrieve_depth++;
	err = h->ops->retrieve(&lfile->lf);
	lfile->session->retrieve_depth--;
	lfile->retrieving = false;
	if (!err && WARN_ON_ONCE(!lfile->lf.file))
		err = -EIO;
	if (err) {
		if (!lfile->preloaded) {
			lfile->lf.handler = NULL;
			luo_handler_put(h);
		}
		goto out;
	}
	lfile->state = LIVEUPDATE_FILE_RETRIEVED;
	*filep = get_file(lfile->lf.file);
	luo_file_settle(lfile);
	luo_tl_span(LIVEUPDATE_TL_RETRIEVE_FD, start, 1);
out:
	lfile->error = err;
	trace_liveupdate_retrieve(lfile->session->name, lfile->lf.token,
				  lfile->compatible, err);
	return err;
}

/**
 * liveupdate_file_dep_incoming() - the file another one referred to
 * @lf: the file being retrieved, from its handler's @retrieve
 * @token: a token liveupdate_file_dep_outgoing() gave the previous kernel
 * @filep: output: a new reference to that file of @lf's session
 *
 * Retrieves the file if userspace has not yet, as RETRIEVE_FD would; it
 * stays retrievable by its token, as the same file.  If @lf's retrieve then
 * fails, that one is not undone.
 *
 * Context: from @retrieve only, with the session's lock held (LUO holds it
 * around the callback); may wait for that file's @preload, so no lock the
 * handler's @preload takes may be held.
 *
 * Return: 0; -EBADMSG if the session has no file @token before @lf, or
 * files refer to files too deep: only damaged state names one; the error
 * that file's retrieve returns; -EINVAL if not called from @retrieve.
 */
int liveupdate_file_dep_incoming(struct liveupdate_file *lf, u64 token,
				 struct file **filep)
{
	struct luo_file *lfile = container_of(lf, struct luo_file, lf);
	struct luo_file *dep;

	if (WARN_ON_ONCE(!lfile->retrieving))
		return -EINVAL;
	lockdep_assert_held(&lfile->session->mutex);
	dep = luo_session_find_file(lfile->session, token);
	/*
	 * Earlier only, as the old kernel preserved them: no cycle.  And one
	 * the handover says @lf refers to, so that it is held meanwhile.
	 */
	if (!dep || dep->seq >= lfile->seq || !luo_file_refers_to(lfile, dep) ||
	    lfile->session->retrieve_depth > LUO_MAX_DEP_DEPTH)
		return -EBADMSG;
	return luo_file_retrieve(dep, filep);
}
EXPORT_SYMBOL_GPL(liveupdate_file_dep_incoming);

/* Bind every unretrieved file to its handler, so that it can be finished. */
static void luo_files_bind_all(struct luo_session *session)
{
	struct luo_file *lfile;

	list_for_each_entry(lfile, &session->files, list) {
		if (lfile->lf.handler || lfile->state == LIVEUPDATE_FILE_BROKEN)
			continue;
		lfile->lf.handler = luo_handler_get(lfile->compatible);
	}
}

static void luo_files_unbind_unretrieved(struct luo_session *session)
{
	struct luo_file *lfile;

	list_for_each_entry(lfile, &session->files, list) {
		if (!lfile->lf.handler || lfile->preloaded ||
		    lfile->state == LIVEUPDATE_FILE_RETRIEVED)
			continue;
		luo_handler_put(lfile->lf.handler);
		lfile->lf.handler = NULL;
	}
}

/**
 * luo_files_finish() - finish every file of an incoming session
 * @session: incoming session, its mutex held
 *
 * Asks every handler first; if one refuses nothing changes.  Then finishes
 * the files last first and frees them.  A file no handler can take (broken,
 * or of a format this kernel lacks) cannot be released: its memory stays
 * reserved until the next update, and we say so; so does what the files
 * it refers to describe (see luo_file_settle()).
 *
 * Return: 0 or -EBUSY.
 */
int luo_files_finish(struct luo_session *session)
{
	struct luo_file *lfile, *tmp;

	lockdep_assert_held(&session->mutex);
	luo_files_wait_preload(session);
	luo_files_bind_all(session);
	list_for_each_entry(lfile, &session->files, list) {
		struct liveupdate_file_handler *h = lfile->lf.handler;

		if (h && h->ops->can_finish && !h->ops->can_finish(&lfile->lf)) {
			luo_files_unbind_unretrieved(session);
			trace_liveupdate_finish(session->name, lfile->lf.token,
						lfile->compatible, -EBUSY);
			return -EBUSY;
		}
	}

	list_for_each_entry_safe_reverse(lfile, tmp, &session->files, list) {
		struct liveupdate_file_handler *h = lfile->lf.handler;

		if (h && lfile->nr_dependents)
			pr_warn("session '%s': token %llu (%s) stays in place until the next update: a file that refers to it cannot be released\n",
				session->name, lfile->lf.token,
				lfile->compatible);
		if (h) {
			h->ops->finish(&lfile->lf);
			luo_handler_put(h);
		} else {
			pr_warn("session '%s': token %llu (%s) cannot be released: %pe\n",
				session->name, lfile->lf.token,
				lfile->compatible,
				ERR_PTR(lfile->error ?: -EOPNOTSUPP));
		}
		/* Its FLBs after it, retrieved or not, broken or not. */
		luo_file_put_flbs(lfile);
		/* Then what it refers to, unless it may still use that. */
		if (h && !lfile->not_released)
			luo_file_settle(lfile);
		trace_liveupdate_finish(session->name, lfile->lf.token,
					lfile->compatible, 0);
		if (lfile->state == LIVEUPDATE_FILE_RETRIEVED)
			fput(lfile->lf.file);
		luo_file_remove(lfile);
		kfree(lfile->deps);
		kfree(lfile);
	}
	return 0;
}

/* Unfreeze, last first, every file frozen so far. */
void luo_files_unfreeze(void)
{
	struct rb_node *node;
	struct luo_file *lfile;

	lockdep_assert_held_write(&luo_state_rwsem);
	for (node = rb_last(&luo_sessions); node; node = rb_prev(node)) {
		struct luo_session *s = rb_entry(node, struct luo_session, node);

		if (s->kind != LUO_SESSION_OUTGOING)
			continue;
		list_for_each_entry_reverse(lfile, &s->files, list) {
			const struct liveupdate_file_ops *ops;

			if (!lfile->frozen)
				continue;
			ops = lfile->lf.handler->ops;
			if (ops->unfreeze)
				ops->unfreeze(&lfile->lf);
			lfile->frozen = false;
		}
	}
}

/**
 * luo_files_freeze() - freeze every outgoing file for the reboot
 *
 * Return: 0, or the first error (everything frozen is unfrozen again).
 */
int luo_files_freeze(void)
{
	struct rb_node *node;
	struct luo_file *lfile;
	int err;

	lockdep_assert_held_write(&luo_state_rwsem);
	for (node = rb_first(&luo_sessions); node; node = rb_next(node)) {
		struct luo_session *s = rb_entry(node, struct luo_session, node);

		if (s->kind != LUO_SESSION_OUTGOING)
			continue;
		list_for_each_entry(lfile, &s->files, list) {
			const struct liveupdate_file_ops *ops;
			u64 start = local_clock();

			ops = lfile->lf.handler->ops;
			err = ops->freeze ? ops->freeze(&lfile->lf) : 0;
			trace_liveupdate_freeze(s->name, lfile->lf.token,
						lfile->compatible, err);
			if (err) {
				pr_err("session '%s': token %llu (%s) failed to freeze: %pe\n",
				       s->name, lfile->lf.token,
				       lfile->compatible, ERR_PTR(err));
				luo_files_unfreeze();
				return err;
			}
			lfile->frozen = true;
			luo_tl_out_freeze(lfile->lf.handler->compatible, start);
		}
	}
	return 0;
}
