/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Live Update Orchestrator: definitions shared by the core's files.
 */
#ifndef _KERNEL_LIVEUPDATE_INTERNAL_H
#define _KERNEL_LIVEUPDATE_INTERNAL_H

#include <linux/liveupdate.h>
#include <linux/mutex.h>
#include <linux/rbtree.h>
#include <linux/rwsem.h>
#include <linux/workqueue.h>

enum luo_session_kind {
	LUO_SESSION_OUTGOING = LIVEUPDATE_SESSION_OUTGOING,
	LUO_SESSION_INCOMING = LIVEUPDATE_SESSION_INCOMING,
};

/**
 * struct luo_session - a named set of preserved files
 * @node: in the global tree of sessions, by name
 * @name: NUL-terminated name
 * @kind: outgoing (files are preserved into it) or incoming (files are
 *	retrieved from it); changed under both luo_sessions_lock and @mutex,
 *	so either is enough to read it
 * @open: a session fd refers to the session
 * @error: incoming: why the session cannot be retrieved, or 0
 * @mutex: protects @files and @by_token
 * @files: files in preservation order
 * @by_token: the same files, by token
 * @nr_files: number of files
 * @preload_work: incoming: preloads the files in the background
 * @next_seq: the position the next file added gets
 * @retrieve_depth: incoming: retrieves running, one inside the other
 *	(liveupdate_file_dep_incoming())
 *
 * An outgoing session lives as long as its fd.  An incoming session lives
 * until it is finished (it then becomes outgoing) or until the next update.
 */
struct luo_session {
	struct rb_node node;
	char name[LIVEUPDATE_SESSION_NAME_LENGTH];
	enum luo_session_kind kind;
	bool open;
	int error;
	struct mutex mutex;	/* protects files, by_token, nr_files */
	struct list_head files;
	struct rb_root by_token;
	unsigned long nr_files;
	struct work_struct preload_work;
	u64 next_seq;
	unsigned int retrieve_depth;
};

/* How deep files may refer to files that refer to files (and so on). */
#define LUO_MAX_DEP_DEPTH	8

/**
 * struct luo_file - a file in a session
 * @lf: what the handler sees
 * @session: the session the file is in
 * @list: in @session->files
 * @token_node: in @session->by_token
 * @object_node: outgoing: in the global tree of preserved objects
 * @object: outgoing: the preserved object (the struct file; handlers whose
 *	objects can be reached through several files guard them themselves)
 * @state: enum liveupdate_file_state
 * @error: LIVEUPDATE_FILE_BROKEN: the negative errno a retrieve gets
 * @frozen: outgoing: frozen for the reboot in progress
 * @preloaded: incoming: the handler's @preload ran; the file stays bound to
 *	the handler, whose state it may hold, until finished
 * @preloading: incoming: @preload is running, without the session's mutex
 * @compatible: incoming: the handler's format name from the old kernel
 * @flbs: incoming: the FLBs the file depends on, one reference on each
 * @nr_flbs: incoming: entries in @flbs
 * @seq: its position in @session->files, which only grows
 * @deps: the files of the session its state refers to, each once
 *	(liveupdate_file_dep_outgoing(), or the handover), all before it in
 *	@session->files
 * @nr_deps: entries in @deps
 * @nr_dependents: outgoing: files whose @deps name this one; incoming:
 *	those of them not settled yet (see luo_file_settle())
 * @dep_depth: 0, or one more than the deepest of @deps
 * @settled: incoming: see luo_file_settle()
 * @not_released: incoming: its handler's finish could not release its state
 * @preserving: outgoing: its handler's @preserve is running
 * @retrieving: incoming: its handler's @retrieve is running
 */
struct luo_file {
	struct liveupdate_file lf;
	struct luo_session *session;
	struct list_head list;
	struct rb_node token_node;
	struct rb_node object_node;
	const void *object;
	u32 state;
	int error;
	bool frozen;
	bool preloaded;
	bool preloading;
	char compatible[LIVEUPDATE_COMPATIBLE_LENGTH];
	struct luo_flb_in **flbs;
	unsigned int nr_flbs;
	u64 seq;
	struct luo_file **deps;
	unsigned int nr_deps;
	unsigned int nr_dependents;
	unsigned int dep_depth;
	bool settled;
	bool not_released;
	bool preserving;
	bool retrieving;
};

/**
 * struct luo_flb_link - an FLB bound to a file handler
 * @node: in the handler's list of FLBs
 * @flb: the FLB
 */
struct luo_flb_link {
	struct list_head node;
	struct liveupdate_flb *flb;
};

/**
 * struct luo_flb_in - an FLB handed over by the previous kernel
 * @list: in the list of incoming FLBs
 * @lock: serializes retrieve and finish, protects the fields below
 * @state: what the previous kernel left, and the retrieved object
 * @flb: the FLB of this kernel that took the state over, once one did
 * @nr_files: dependent files not finished yet
 * @claimed_files: dependent files the previous kernel says it handed over
 * @retrieved: @state.obj is live, and the FLB's module pinned for it
 * @finished: released, never used again
 * @compatible: the FLB's format name
 */
struct luo_flb_in {
	struct list_head list;
	struct mutex lock;	/* see the kernel-doc above */
	struct liveupdate_flb_state state;
	struct liveupdate_flb *flb;
	unsigned long nr_files;
	u64 claimed_files;
	bool retrieved;
	bool finished;
	char compatible[LIVEUPDATE_COMPATIBLE_LENGTH];
};

/* Taken for reading by every operation, for writing by the reboot. */
extern struct rw_semaphore luo_state_rwsem;

/* orchestrator.c */
bool luo_incoming_pending(void);

/* sessions.c; the lock protects the tree and the sessions' kind and open */
extern struct mutex luo_sessions_lock;
extern struct rb_root luo_sessions;
struct luo_session *luo_session_alloc(const char *name,
				      enum luo_session_kind kind);
void luo_session_free(struct luo_session *session);
int luo_session_insert(struct luo_session *session);
int luo_session_create(const char *name, struct file **filep);
int luo_session_retrieve(const char *name, struct file **filep);
int luo_session_list(u32 *count, char **namesp);
struct luo_file *luo_session_find_file(struct luo_session *session, u64 token);
int luo_session_add_file(struct luo_session *session, struct luo_file *lfile);
void luo_sessions_preload(void);

/* files.c */
int luo_file_preserve(struct luo_session *session, int fd, u64 token);
void luo_file_unpreserve(struct luo_file *lfile);
struct liveupdate_file_handler *luo_file_preload_begin(struct luo_file *lfile);
void luo_file_preload_end(struct luo_file *lfile);
void luo_files_wait_preload(struct luo_session *session);
int luo_file_retrieve(struct luo_file *lfile, struct file **filep);
int luo_file_add_dep(struct luo_file *lfile, struct luo_file *dep);
int luo_files_finish(struct luo_session *session);
int luo_files_freeze(void);
void luo_files_unfreeze(void);
struct liveupdate_file_handler *luo_handler_get(const char *compatible);
void luo_handler_put(struct liveupdate_file_handler *handler);
/* Protects the handler and FLB registries and their bindings. */
extern struct mutex luo_handlers_lock;
bool luo_handler_registered(struct liveupdate_file_handler *handler);

/* flb.c */
void luo_flbs_unbind_all(struct liveupdate_file_handler *h);
int luo_flbs_get(struct liveupdate_file_handler *h);
void luo_flbs_put(struct liveupdate_file_handler *h);
u32 luo_flbs_prepare(void);
int luo_flbs_freeze(void);
void luo_flbs_write(void (*fn)(void *arg, struct liveupdate_flb *flb),
		    void *arg);
void luo_flb_in_add(struct luo_flb_in *in);
void luo_flbs_in_check(void);
int luo_file_add_flb(struct luo_file *lfile, struct luo_flb_in *in);
void luo_file_put_flbs(struct luo_file *lfile);
struct seq_file;
void luo_flbs_show(struct seq_file *m);

/* handover.c */
int luo_handover_init(void);
void luo_handover_fini(void);
int luo_handover_write(struct kimage *image, u64 start_ns);
u64 luo_handover_restore(void);

/* handover_damage.c: test kernels only */
struct dentry;
struct luo_abi_header;
struct luo_abi_timeline;
#if defined(CONFIG_LIVEUPDATE_TEST) && defined(CONFIG_DEBUG_FS)
void luo_handover_damage(struct luo_abi_header *hdr);
void luo_timeline_damage(struct luo_abi_timeline *tl);
void luo_damage_debugfs_init(struct dentry *dir);
#else
static inline void luo_handover_damage(struct luo_abi_header *hdr) { }
static inline void luo_timeline_damage(struct luo_abi_timeline *tl) { }
static inline void luo_damage_debugfs_init(struct dentry *dir) { }
#endif

/* timeline.c */
u64 luo_tl_reboot_begin(void);
u64 luo_tl_out_step(u32 step, u64 start_ns, u32 count);
void luo_tl_out_freeze(const char *compatible, u64 start_ns);
void luo_tl_reboot_done(void);
void luo_tl_span(u32 step, u64 start_ns, u32 count);
void luo_tl_instant(u32 step);
void luo_tl_init(void);
void luo_tl_publish(void);
u32 luo_tl_get(struct liveupdate_timeline_step *out, u32 room, u32 *flags);
int luo_tl_show(struct seq_file *m);

/* ioctl.c */
long luo_dev_ioctl(struct file *file, unsigned int cmd, unsigned long arg);
long luo_session_ioctl(struct file *file, unsigned int cmd, unsigned long arg);

/* debugfs.c */
#ifdef CONFIG_DEBUG_FS
void luo_debugfs_init(void);
#else
static inline void luo_debugfs_init(void) { }
#endif

#endif /* _KERNEL_LIVEUPDATE_INTERNAL_H */
