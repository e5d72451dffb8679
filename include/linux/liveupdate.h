/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Live Update Orchestrator: the interface for subsystems that preserve files
 * across a kexec live update.
 */
#ifndef _LINUX_LIVEUPDATE_H
#define _LINUX_LIVEUPDATE_H

#include <linux/err.h>
#include <linux/errno.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/types.h>
#include <uapi/linux/liveupdate.h>

struct file;
struct folio;
struct kimage;
struct module;
struct liveupdate_file;
struct liveupdate_file_handler;
struct liveupdate_flb;
struct luo_flb_in;

/**
 * struct liveupdate_file_ops - what a file handler implements
 * @can_preserve: return true if this handler can preserve @file.  Called
 *	with no LUO lock that the handler could deadlock on; must not sleep
 *	for long.  Required.
 * @preserve: take over @lf->file: pin what must survive, and set
 *	@lf->data (the handle the next kernel gets back) and optionally
 *	@lf->private.  Return 0 or a negative errno; on error nothing may be
 *	left behind.  Required.
 * @unpreserve: undo @preserve; @lf->file is an ordinary file again.
 *	Required.
 * @freeze: last call before the kexec jump, with every LUO operation
 *	blocked: make @lf->data final.  May fail (the reboot then fails and
 *	@unfreeze is called for every file already frozen).  Must not do work
 *	proportional to the amount of preserved memory, other than waiting
 *	for what @settling reports.  Optional.
 * @unfreeze: undo @freeze after a later freeze failed.  Optional.
 * @settling: return true while work @preserve left to the background is
 *	under way, which @freeze would wait for; LIVEUPDATE_SESSION_QUERY
 *	then reports the file as LIVEUPDATE_FILE_SETTLING, so that an agent
 *	can wait for it before pausing its workloads.  Must be quick: it
 *	is asked for every file QUERY lists.  Optional.
 * @preload: in the new kernel, from a worker started once the initcalls
 *	are done: do ahead of time what @retrieve would otherwise do while
 *	the VMM waits and that does not depend on the caller, such as taking
 *	the preserved memory back from KHO.  Called at most once per file,
 *	never after its @retrieve or @finish; not for a handler registered
 *	after the boot's initcalls, nor with "liveupdate_preload=off".
 *	Called without any LUO lock, possibly while the reboot freezes
 *	outgoing files; a retrieve or finish of the file waits for it, with
 *	LUO locks held, so it must not wait for userspace.  The file
 *	stays bound to the handler (its module pinned) until finished, so
 *	that @lf->private can keep what was done.  Errors are for @retrieve
 *	to report: nothing may be left that @retrieve, a retry of it, or
 *	@finish would not handle.  Optional.
 * @retrieve: in the new kernel, rebuild the file from @lf->data and
 *	@lf->version and set @lf->file (with a reference the core owns).  On
 *	error nothing may be consumed: the retrieve can be retried.  If
 *	liveupdate_file_has_dependents(), keep in place what the state
 *	describes (hold the memory) until @dependents_done.  Required.
 * @dependents_done: the files that refer to this retrieved one, and that
 *	made liveupdate_file_has_dependents() true at its @retrieve, are
 *	all retrieved or finished now: release what @retrieve kept for
 *	them.  Never called if one of them cannot be released.  Optional:
 *	for a handler that keeps nothing in place for them.
 * @can_finish: return false to refuse LIVEUPDATE_SESSION_FINISH for now
 *	(the whole finish is refused, and can be retried).  Optional.
 * @finish: the live update is over for this file.  If @lf->file is NULL the
 *	file was never retrieved and everything preserved for it must be
 *	released.  Either way, if liveupdate_file_has_dependents(), a file
 *	that refers to it could not be released, and what its state
 *	describes stays allocated (only the handler's bookkeeping is freed).
 *	If what the state describes may still be in use (a device it could
 *	not find or stop), call liveupdate_file_not_released().  Required.
 *
 * All callbacks run in process context and may sleep.
 */
struct liveupdate_file_ops {
	bool (*can_preserve)(struct liveupdate_file_handler *handler,
			     struct file *file);
	int (*preserve)(struct liveupdate_file *lf);
	void (*unpreserve)(struct liveupdate_file *lf);
	int (*freeze)(struct liveupdate_file *lf);
	void (*unfreeze)(struct liveupdate_file *lf);
	bool (*settling)(struct liveupdate_file *lf);
	void (*preload)(struct liveupdate_file *lf);
	int (*retrieve)(struct liveupdate_file *lf);
	void (*dependents_done)(struct liveupdate_file *lf);
	bool (*can_finish)(struct liveupdate_file *lf);
	void (*finish)(struct liveupdate_file *lf);
};

/**
 * struct liveupdate_file_handler - a type of file that can be preserved
 * @compatible: name of the serialization format, matched between the old
 *	and the new kernel (at most LIVEUPDATE_COMPATIBLE_LENGTH - 1 bytes)
 * @version: format version this kernel writes; stored with every file and
 *	given back to @ops->retrieve in the next kernel, which decides what
 *	versions it reads
 * @ops: the callbacks
 * @owner: module implementing @ops (THIS_MODULE), pinned while any file it
 *	preserved or restored is live
 */
struct liveupdate_file_handler {
	const char *compatible;
	u32 version;
	const struct liveupdate_file_ops *ops;
	struct module *owner;

	/* private: registry linkage, files and FLBs bound to the handler */
	struct list_head list;
	unsigned long nr_files;
	struct list_head flbs;
};

/**
 * struct liveupdate_file - a preserved file, as its handler sees it
 * @handler: the handler the file is bound to
 * @file: outgoing: the preserved file (LUO holds a reference);
 *	incoming: the restored file once retrieved, else NULL
 * @token: the token userspace named the file with
 * @data: the handler's handle to its serialized state, passed unchanged
 *	to the next kernel (typically the physical address of preserved
 *	metadata)
 * @version: incoming: the format version the previous kernel wrote;
 *	outgoing: @handler->version
 * @private: the handler's runtime state, never serialized
 */
struct liveupdate_file {
	struct liveupdate_file_handler *handler;
	struct file *file;
	u64 token;
	u64 data;
	u32 version;
	void *private;
};

/**
 * struct liveupdate_flb_state - one kernel's side of an FLB
 * @data: handle to the serialized state, passed unchanged to the next
 *	kernel (typically the physical address of preserved memory).
 *	Outgoing: set by @preserve, final after @freeze.  Incoming: what the
 *	previous kernel left.
 * @version: format version.  Outgoing: the FLB's @version.  Incoming: the
 *	one the previous kernel wrote.
 * @obj: the live object.  Outgoing: set by @preserve.  Incoming: set by
 *	@retrieve, NULL until then.
 */
struct liveupdate_flb_state {
	u64 data;
	u32 version;
	void *obj;
};

/**
 * struct liveupdate_flb_ops - what the owner of an FLB implements
 * @preserve: the first dependent file is being preserved: preserve the
 *	global state and fill in @out->data and @out->obj.  On error nothing
 *	may be left behind; the file's preserve then fails with this error.
 *	Required.
 * @unpreserve: the last dependent file was unpreserved (or its preserve
 *	failed): undo @preserve.  Required.
 * @freeze: at reboot, after every file that depends on the FLB was frozen:
 *	make @out->data final.  A failure fails the reboot, as a file's does.
 *	Optional.
 * @unfreeze: undo @freeze after a later freeze failed.  Optional.
 * @retrieve: in the new kernel, on first use: rebuild the object from
 *	@in->data and @in->version and set @in->obj.  On error nothing may be
 *	consumed: the next use retries.  For a built-in FLB this may be as
 *	early as core_initcall, before debugfs, the misc class and the file
 *	handlers exist.  Required.
 * @finish: the last dependent file was finished: release everything.  If
 *	@retrieved is false @retrieve never succeeded and the object must be
 *	released from @in->data alone.  Called exactly once, unless LUO
 *	fails to start after reading the incoming state (it says so).
 *	Required.
 *
 * Callbacks run in process context, may sleep, and are serialized per FLB;
 * they must not bind or unbind FLBs or file handlers.
 */
struct liveupdate_flb_ops {
	int (*preserve)(struct liveupdate_flb *flb,
			struct liveupdate_flb_state *out);
	void (*unpreserve)(struct liveupdate_flb *flb,
			   struct liveupdate_flb_state *out);
	int (*freeze)(struct liveupdate_flb *flb,
		      struct liveupdate_flb_state *out);
	void (*unfreeze)(struct liveupdate_flb *flb,
			 struct liveupdate_flb_state *out);
	int (*retrieve)(struct liveupdate_flb *flb,
			struct liveupdate_flb_state *in);
	void (*finish)(struct liveupdate_flb *flb,
		       struct liveupdate_flb_state *in, bool retrieved);
};

/**
 * struct liveupdate_flb - file-lifecycle-bound global state
 * @compatible: name of the serialization format, matched between the old
 *	and the new kernel (at most LIVEUPDATE_COMPATIBLE_LENGTH - 1 bytes),
 *	unique among FLBs
 * @version: format version this kernel writes
 * @ops: the callbacks
 * @owner: module implementing @ops, pinned while the FLB is preserved or
 *	its incoming state is live; NULL for built-in code, whose FLB can be
 *	retrieved before any handler binds it
 *
 * Global state that several preserved files depend on, for example an
 * IOMMU's tables that every preserved iommufd refers to.  Bound to one or
 * more file handlers with liveupdate_register_flb(): every preserved file of
 * those handlers holds a reference on it.  It is preserved with the first
 * of them and unpreserved with the last; in the next kernel it is
 * retrieved on first use (liveupdate_flb_get_incoming()) and finished after
 * the last file that depended on it is finished.
 */
struct liveupdate_flb {
	const char *compatible;
	u32 version;
	const struct liveupdate_flb_ops *ops;
	struct module *owner;

	/* private: the core's state, set up by the first binding */
	struct list_head list;
	unsigned int nr_handlers;
	struct mutex lock;	/* serializes the callbacks */
	unsigned long nr_files;
	struct liveupdate_flb_state out;
	bool frozen;
	u32 out_id;
	u64 out_files;
	struct luo_flb_in *in;
};

#ifdef CONFIG_LIVEUPDATE

bool liveupdate_enabled(void);
int liveupdate_reboot(struct kimage *image);
void liveupdate_jump(void);
int liveupdate_register_file_handler(struct liveupdate_file_handler *handler);
int liveupdate_unregister_file_handler(struct liveupdate_file_handler *handler);
int liveupdate_register_flb(struct liveupdate_file_handler *handler,
			    struct liveupdate_flb *flb);
int liveupdate_unregister_flb(struct liveupdate_file_handler *handler,
			      struct liveupdate_flb *flb);
int liveupdate_flb_get_outgoing(struct liveupdate_flb *flb, void **objp);
int liveupdate_flb_get_incoming(struct liveupdate_flb *flb, void **objp);
int liveupdate_file_dep_outgoing(struct liveupdate_file *lf,
				 struct file *file, u64 *token);
int liveupdate_file_dep_incoming(struct liveupdate_file *lf, u64 token,
				 struct file **filep);
bool liveupdate_file_has_dependents(struct liveupdate_file *lf);
void liveupdate_file_not_released(struct liveupdate_file *lf);
struct folio *liveupdate_file_in_folio(struct liveupdate_file *lf);

#else

static inline bool liveupdate_enabled(void)
{
	return false;
}

static inline int liveupdate_reboot(struct kimage *image)
{
	return 0;
}

static inline void liveupdate_jump(void)
{
}

static inline int
liveupdate_register_file_handler(struct liveupdate_file_handler *handler)
{
	return 0;
}

static inline int
liveupdate_unregister_file_handler(struct liveupdate_file_handler *handler)
{
	return 0;
}

static inline int liveupdate_register_flb(struct liveupdate_file_handler *handler,
					  struct liveupdate_flb *flb)
{
	return 0;
}

static inline int
liveupdate_unregister_flb(struct liveupdate_file_handler *handler,
			  struct liveupdate_flb *flb)
{
	return 0;
}

static inline int liveupdate_flb_get_outgoing(struct liveupdate_flb *flb,
					      void **objp)
{
	return -EOPNOTSUPP;
}

static inline int liveupdate_flb_get_incoming(struct liveupdate_flb *flb,
					      void **objp)
{
	return -EOPNOTSUPP;
}

static inline int liveupdate_file_dep_outgoing(struct liveupdate_file *lf,
					       struct file *file, u64 *token)
{
	return -EOPNOTSUPP;
}

static inline int liveupdate_file_dep_incoming(struct liveupdate_file *lf,
					       u64 token, struct file **filep)
{
	return -EOPNOTSUPP;
}

static inline bool liveupdate_file_has_dependents(struct liveupdate_file *lf)
{
	return false;
}

static inline void liveupdate_file_not_released(struct liveupdate_file *lf)
{
}

static inline struct folio *
liveupdate_file_in_folio(struct liveupdate_file *lf)
{
	return ERR_PTR(-EOPNOTSUPP);
}

#endif /* CONFIG_LIVEUPDATE */
#endif /* _LINUX_LIVEUPDATE_H */
