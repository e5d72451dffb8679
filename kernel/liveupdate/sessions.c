// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: sessions.
 *
 * Sessions are kept in one rbtree by name (names are unique among incoming
 * and outgoing sessions alike, so a finished incoming session can turn
 * outgoing under its own name).  Each session keeps its files in
 * preservation order and in an rbtree by token.
 */
#define pr_fmt(fmt) "liveupdate: " fmt

#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/sched/clock.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "internal.h"

/* Protects luo_sessions and the kind and open state of every session. */
DEFINE_MUTEX(luo_sessions_lock);
struct rb_root luo_sessions = RB_ROOT;

static const struct file_operations luo_session_fops;
static void luo_session_preload(struct work_struct *work);
static struct workqueue_struct *luo_preload_wq;

struct luo_session *luo_session_alloc(const char *name,
				      enum luo_session_kind kind)
{
	struct luo_session *session;

	session = kzalloc_obj(*session, GFP_KERNEL_ACCOUNT);
	if (!session)
		return NULL;
	strscpy(session->name, name);
	session->kind = kind;
	mutex_init(&session->mutex);
	INIT_LIST_HEAD(&session->files);
	session->by_token = RB_ROOT;
	RB_CLEAR_NODE(&session->node);
	INIT_WORK(&session->preload_work, luo_session_preload);
	return session;
}

void luo_session_free(struct luo_session *session)
{
	/* The work never takes luo_state_rwsem, which the caller may hold. */
	cancel_work_sync(&session->preload_work);
	mutex_destroy(&session->mutex);
	kfree(session);
}

static struct luo_session *luo_session_find(const char *name)
{
	struct rb_node *node = luo_sessions.rb_node;

	lockdep_assert_held(&luo_sessions_lock);
	while (node) {
		struct luo_session *s = rb_entry(node, struct luo_session, node);
		int cmp = strcmp(name, s->name);

		if (!cmp)
			return s;
		node = cmp < 0 ? node->rb_left : node->rb_right;
	}
	return NULL;
}

/* Returns -EEXIST if a session of that name exists. */
int luo_session_insert(struct luo_session *session)
{
	struct rb_node **link = &luo_sessions.rb_node, *parent = NULL;

	lockdep_assert_held(&luo_sessions_lock);
	while (*link) {
		struct luo_session *s = rb_entry(*link, struct luo_session, node);
		int cmp = strcmp(session->name, s->name);

		if (!cmp)
			return -EEXIST;
		parent = *link;
		link = cmp < 0 ? &parent->rb_left : &parent->rb_right;
	}
	rb_link_node(&session->node, parent, link);
	rb_insert_color(&session->node, &luo_sessions);
	return 0;
}

static void luo_session_remove(struct luo_session *session)
{
	guard(mutex)(&luo_sessions_lock);
	rb_erase(&session->node, &luo_sessions);
	RB_CLEAR_NODE(&session->node);
}

struct luo_file *luo_session_find_file(struct luo_session *session, u64 token)
{
	struct rb_node *node = session->by_token.rb_node;

	lockdep_assert_held(&session->mutex);
	while (node) {
		struct luo_file *f = rb_entry(node, struct luo_file, token_node);

		if (token == f->lf.token)
			return f;
		node = token < f->lf.token ? node->rb_left : node->rb_right;
	}
	return NULL;
}

/* Appends @lfile; returns -EEXIST if its token is taken. */
int luo_session_add_file(struct luo_session *session, struct luo_file *lfile)
{
	struct rb_node **link = &session->by_token.rb_node, *parent = NULL;
	u64 token = lfile->lf.token;

	lockdep_assert_held(&session->mutex);
	while (*link) {
		struct luo_file *f = rb_entry(*link, struct luo_file, token_node);

		if (token == f->lf.token)
			return -EEXIST;
		parent = *link;
		link = token < f->lf.token ? &parent->rb_left : &parent->rb_right;
	}
	rb_link_node(&lfile->token_node, parent, link);
	rb_insert_color(&lfile->token_node, &session->by_token);
	list_add_tail(&lfile->list, &session->files);
	lfile->session = session;
	lfile->seq = session->next_seq++;
	session->nr_files++;
	return 0;
}

static struct file *luo_session_file(struct luo_session *session)
{
	return anon_inode_getfile("[liveupdate_session]", &luo_session_fops,
				  session, O_RDWR);
}

/**
 * luo_session_create() - create an outgoing session and its file
 * @name: validated, NUL-terminated name
 * @filep: output: the session file
 *
 * Return: 0, -EEXIST if the name is taken, or -ENOMEM.
 */
int luo_session_create(const char *name, struct file **filep)
{
	struct luo_session *session;
	struct file *file;
	int err;

	session = luo_session_alloc(name, LUO_SESSION_OUTGOING);
	if (!session)
		return -ENOMEM;
	session->open = true;

	scoped_guard(mutex, &luo_sessions_lock)
		err = luo_session_insert(session);
	if (err) {
		luo_session_free(session);
		return err;
	}

	file = luo_session_file(session);
	if (IS_ERR(file)) {
		luo_session_remove(session);
		luo_session_free(session);
		return PTR_ERR(file);
	}
	*filep = file;
	return 0;
}

/**
 * luo_session_retrieve() - open an incoming session
 * @name: validated, NUL-terminated name
 * @filep: output: the session file
 *
 * Return: 0, -ENOENT if there is no such incoming session, -EBUSY if it is
 * open already, the session's own error if it was damaged, or -ENOMEM.
 */
int luo_session_retrieve(const char *name, struct file **filep)
{
	struct luo_session *session;
	u64 start = local_clock();
	struct file *file;

	scoped_guard(mutex, &luo_sessions_lock) {
		session = luo_session_find(name);
		if (!session || session->kind != LUO_SESSION_INCOMING)
			return -ENOENT;
		if (session->error)
			return session->error;
		if (session->open)
			return -EBUSY;
		session->open = true;
	}

	file = luo_session_file(session);
	if (IS_ERR(file)) {
		guard(mutex)(&luo_sessions_lock);
		session->open = false;
		return PTR_ERR(file);
	}
	*filep = file;
	luo_tl_span(LIVEUPDATE_TL_RETRIEVE_SESSION, start, 1);
	return 0;
}

/* An incoming session that RETRIEVE_SESSION would hand out. */
static bool luo_session_listable(const struct luo_session *s)
{
	return s->kind == LUO_SESSION_INCOMING && !s->open && !s->error;
}

/**
 * luo_session_list() - names of the incoming sessions that can be retrieved
 * @count: input: the most names wanted; output: number of such sessions
 * @namesp: output: the first of them, as many as both counts allow, each
 *	in LIVEUPDATE_SESSION_NAME_LENGTH bytes, in a kvmalloc()ed buffer the
 *	caller frees (NULL if there are none)
 *
 * The names are gathered here and copied to userspace by the caller once
 * the locks are dropped.
 *
 * Return: 0 or -ENOMEM.
 */
int luo_session_list(u32 *count, char **namesp)
{
	const size_t len = LIVEUPDATE_SESSION_NAME_LENGTH;
	char *names = NULL;
	u32 room, n = 0;
	struct rb_node *node;

	guard(mutex)(&luo_sessions_lock);
	for (node = rb_first(&luo_sessions); node; node = rb_next(node))
		if (luo_session_listable(rb_entry(node, struct luo_session,
						  node)))
			n++;
	room = min(*count, n);
	if (room) {
		names = kvmalloc_array(room, len, GFP_KERNEL);
		if (!names)
			return -ENOMEM;
	}
	n = 0;
	for (node = rb_first(&luo_sessions); node; node = rb_next(node)) {
		struct luo_session *s = rb_entry(node, struct luo_session, node);

		if (!luo_session_listable(s))
			continue;
		if (n < room)
			memcpy(names + n * len, s->name, len);
		n++;
	}
	*count = n;
	*namesp = names;
	return 0;
}

/*
 * Preloads the files of an incoming session one at a time.  The handler's
 * @preload runs without the session's mutex: a retrieve or finish waits
 * for the one file being preloaded, if any, not for the session.  While
 * the session is incoming no file leaves it; once finished (which waited
 * for the preload in progress) its files are gone, and nothing is left to
 * preload.
 *
 * The work never takes luo_state_rwsem (see luo_session_free()): it may
 * run while the reboot freezes the outgoing files, and after it.  It only
 * touches incoming files, which the reboot leaves alone.
 */
static void luo_session_preload(struct work_struct *work)
{
	struct luo_session *s = container_of(work, struct luo_session,
					     preload_work);
	struct liveupdate_file_handler *h;
	struct luo_file *lfile;

	mutex_lock(&s->mutex);
	if (s->kind != LUO_SESSION_INCOMING)
		goto out;
	list_for_each_entry(lfile, &s->files, list) {
		u64 start;

		h = luo_file_preload_begin(lfile);
		if (!h)
			continue;
		mutex_unlock(&s->mutex);
		start = local_clock();
		h->ops->preload(&lfile->lf);
		luo_tl_span(LIVEUPDATE_TL_PRELOAD, start, 1);
		/* A finish may free @lfile from here: the kind tells. */
		luo_file_preload_end(lfile);
		mutex_lock(&s->mutex);
		if (s->kind != LUO_SESSION_INCOMING)
			break;
	}
out:
	mutex_unlock(&s->mutex);
}

/**
 * luo_sessions_preload() - preload the incoming files in the background
 *
 * Called once, when the initcalls are done: the incoming sessions are in
 * place and the built-in handlers registered.  The work is what
 * RETRIEVE_FD would otherwise do while the VMM waits; it overlaps with the
 * end of the boot and with userspace starting up.  One session at a time,
 * in name order, so that it takes one CPU at most.
 */
void luo_sessions_preload(void)
{
	struct rb_node *node;

	luo_preload_wq = alloc_ordered_workqueue("liveupdate_preload", 0);
	if (!luo_preload_wq) {
		pr_warn("no workqueue: the retrieves restore the files\n");
		return;
	}
	guard(mutex)(&luo_sessions_lock);
	for (node = rb_first(&luo_sessions); node; node = rb_next(node)) {
		struct luo_session *s = rb_entry(node, struct luo_session, node);

		if (s->kind == LUO_SESSION_INCOMING && !s->error)
			queue_work(luo_preload_wq, &s->preload_work);
	}
}

static int luo_session_release(struct inode *inode, struct file *file)
{
	struct luo_session *session = file->private_data;
	struct luo_file *lfile, *tmp;

	guard(rwsem_read)(&luo_state_rwsem);
	if (session->kind == LUO_SESSION_INCOMING) {
		/* Kept, with everything in it, until finished or next update. */
		guard(mutex)(&luo_sessions_lock);
		session->open = false;
		return 0;
	}

	scoped_guard(mutex, &session->mutex) {
		/* Last preserved, first unpreserved. */
		list_for_each_entry_safe_reverse(lfile, tmp, &session->files, list)
			luo_file_unpreserve(lfile);
	}
	luo_session_remove(session);
	luo_session_free(session);
	return 0;
}

static const struct file_operations luo_session_fops = {
	.owner		= THIS_MODULE,
	.release	= luo_session_release,
	.unlocked_ioctl	= luo_session_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};
