// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: ioctl dispatch for /dev/liveupdate and session
 * fds.
 *
 * Every argument struct starts with its size.  A table gives each command
 * its struct and the size of the struct's first version: a caller with an
 * older, smaller struct (down to that size) or a newer, larger one (whose
 * tail we do not know must be zero) works.
 */
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/sched/clock.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "internal.h"

union luo_ucmd_buffer {
	struct liveupdate_ioctl_create_session create;
	struct liveupdate_ioctl_retrieve_session retrieve;
	struct liveupdate_ioctl_list_sessions list;
	struct liveupdate_ioctl_get_timeline timeline;
	struct liveupdate_session_preserve_fd preserve;
	struct liveupdate_session_retrieve_fd retrieve_fd;
	struct liveupdate_session_finish finish;
	struct liveupdate_session_get_name get_name;
	struct liveupdate_session_unpreserve_fd unpreserve;
	struct liveupdate_session_query query;
};

/**
 * struct luo_ucmd - one ioctl call
 * @user: the caller's argument
 * @user_size: the caller's idea of the struct size
 * @cmd: the copied-in argument
 * @private: the device's or the session's state
 */
struct luo_ucmd {
	void __user *user;
	u32 user_size;
	void *cmd;
	void *private;
};

struct luo_ioctl_op {
	unsigned int size;
	unsigned int min_size;
	int (*execute)(struct luo_ucmd *ucmd);
};

/* Indexed by command number; the commands carry no size or direction. */
#define LUO_IOCTL_OP(_nr, _fn, _struct, _last)				\
	[(_nr) - LUO_IOCTL_BASE] = {					\
		.size = sizeof(_struct) +				\
			BUILD_BUG_ON_ZERO(sizeof(union luo_ucmd_buffer) < \
					  sizeof(_struct)),		\
		.min_size = offsetofend(_struct, _last),		\
		.execute = _fn,						\
	}

/* Copy the result back, as much of it as the caller's struct holds. */
static int luo_ucmd_respond(struct luo_ucmd *ucmd, size_t size)
{
	if (copy_to_user(ucmd->user, ucmd->cmd, min_t(size_t, ucmd->user_size,
						      size)))
		return -EFAULT;
	return 0;
}

/*
 * Copy @nr entries of @size bytes out to @dst.  Replies are gathered under
 * the LUO locks and copied with none held: a write to userspace can fault
 * and wait for userspace itself (userfaultfd), and a lock held meanwhile
 * would stall the session, or the reboot waiting for luo_state_rwsem.
 */
static int luo_copy_out(void __user *dst, const void *src, u32 nr,
			size_t size)
{
	if (nr && copy_to_user(dst, src, (size_t)nr * size))
		return -EFAULT;
	return 0;
}

/* A name must be non-empty and NUL-terminated within the array. */
static int luo_check_name(const u8 *name)
{
	size_t len = strnlen(name, LIVEUPDATE_SESSION_NAME_LENGTH);

	if (!len || len == LIVEUPDATE_SESSION_NAME_LENGTH)
		return -EINVAL;
	return 0;
}

/*
 * Hands @file to userspace through @ucmd's fd field at @fd_out: the fd is
 * installed only once the reply is copied, so a fault leaves nothing
 * behind but what fput() of the unused file undoes.
 */
static int luo_ucmd_install(struct luo_ucmd *ucmd, struct file *file,
			    s32 *fd_out, size_t size)
{
	int fd, err;

	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0) {
		fput(file);
		return fd;
	}
	*fd_out = fd;
	err = luo_ucmd_respond(ucmd, size);
	if (err) {
		put_unused_fd(fd);
		fput(file);
		return err;
	}
	fd_install(fd, file);
	return 0;
}

/* ---- /dev/liveupdate ---- */

/* CREATE and RETRIEVE_SESSION share one layout: a name in, an fd out. */
static_assert(sizeof(struct liveupdate_ioctl_create_session) ==
	      sizeof(struct liveupdate_ioctl_retrieve_session));
static_assert(offsetof(struct liveupdate_ioctl_create_session, name) ==
	      offsetof(struct liveupdate_ioctl_retrieve_session, name));

static int luo_ioctl_open_session(struct luo_ucmd *ucmd,
				  int (*open)(const char *name,
					      struct file **filep))
{
	struct liveupdate_ioctl_create_session *cmd = ucmd->cmd;
	struct file *file;
	int err;

	err = luo_check_name(cmd->name);
	if (err)
		return err;
	scoped_guard(rwsem_read, &luo_state_rwsem)
		err = open(cmd->name, &file);
	if (err)
		return err;
	return luo_ucmd_install(ucmd, file, &cmd->fd, sizeof(*cmd));
}

static int luo_ioctl_create_session(struct luo_ucmd *ucmd)
{
	return luo_ioctl_open_session(ucmd, luo_session_create);
}

static int luo_ioctl_retrieve_session(struct luo_ucmd *ucmd)
{
	return luo_ioctl_open_session(ucmd, luo_session_retrieve);
}

static int luo_ioctl_list_sessions(struct luo_ucmd *ucmd)
{
	char *names __free(kvfree) = NULL;
	struct liveupdate_ioctl_list_sessions *cmd = ucmd->cmd;
	u32 room = cmd->count;
	int err;

	scoped_guard(rwsem_read, &luo_state_rwsem)
		err = luo_session_list(&cmd->count, &names);
	if (err)
		return err;
	/* With no lock held: see luo_copy_out(). */
	err = luo_copy_out(u64_to_user_ptr(cmd->names), names,
			   min(room, cmd->count), LIVEUPDATE_SESSION_NAME_LENGTH);
	if (err)
		return err;
	return luo_ucmd_respond(ucmd, sizeof(*cmd));
}

static int luo_ioctl_get_timeline(struct luo_ucmd *ucmd)
{
	struct liveupdate_timeline_step *steps __free(kfree) = NULL;
	struct liveupdate_ioctl_get_timeline *cmd = ucmd->cmd;
	u32 room, n;
	int err;

	if (cmd->reserved)
		return -EINVAL;
	/* A few dozen steps at most, whatever room the caller has. */
	room = min(cmd->count, luo_tl_get(NULL, 0, &cmd->flags));
	if (room) {
		steps = kzalloc_objs(*steps, room);
		if (!steps)
			return -ENOMEM;
	}
	n = luo_tl_get(steps, room, &cmd->flags);
	err = luo_copy_out(u64_to_user_ptr(cmd->steps), steps, min(room, n),
			   sizeof(*steps));
	if (err)
		return err;
	cmd->count = n;
	return luo_ucmd_respond(ucmd, sizeof(*cmd));
}

#define LUO_IOCTL_BASE LIVEUPDATE_CMD_CREATE_SESSION

static const struct luo_ioctl_op luo_dev_ops[] = {
	LUO_IOCTL_OP(LIVEUPDATE_CMD_CREATE_SESSION, luo_ioctl_create_session,
		     struct liveupdate_ioctl_create_session, name),
	LUO_IOCTL_OP(LIVEUPDATE_CMD_RETRIEVE_SESSION,
		     luo_ioctl_retrieve_session,
		     struct liveupdate_ioctl_retrieve_session, name),
	LUO_IOCTL_OP(LIVEUPDATE_CMD_LIST_SESSIONS, luo_ioctl_list_sessions,
		     struct liveupdate_ioctl_list_sessions, names),
	LUO_IOCTL_OP(LIVEUPDATE_CMD_GET_TIMELINE, luo_ioctl_get_timeline,
		     struct liveupdate_ioctl_get_timeline, steps),
};

#undef LUO_IOCTL_BASE

/* ---- session fds ---- */

static int luo_ioctl_preserve_fd(struct luo_ucmd *ucmd)
{
	struct liveupdate_session_preserve_fd *cmd = ucmd->cmd;
	struct luo_session *session = ucmd->private;

	guard(rwsem_read)(&luo_state_rwsem);
	guard(mutex)(&session->mutex);
	if (session->kind != LUO_SESSION_OUTGOING)
		return -EINVAL;
	return luo_file_preserve(session, cmd->fd, cmd->token);
}

/*
 * The file of @token in @session; retrieved if @filep is given, else only
 * looked up.
 */
static int luo_retrieve_token(struct luo_session *session, u64 token,
			      struct file **filep)
{
	struct luo_file *lfile;

	guard(rwsem_read)(&luo_state_rwsem);
	guard(mutex)(&session->mutex);
	if (session->kind != LUO_SESSION_INCOMING)
		return -EINVAL;
	lfile = luo_session_find_file(session, token);
	if (!lfile)
		return -ENOENT;
	return filep ? luo_file_retrieve(lfile, filep) : 0;
}

static int luo_ioctl_retrieve_fd(struct luo_ucmd *ucmd)
{
	struct liveupdate_session_retrieve_fd *cmd = ucmd->cmd;
	struct luo_session *session = ucmd->private;
	struct file *file;
	int err;

	/* The command's own errors come before a fault on the reply. */
	err = luo_retrieve_token(session, cmd->token, NULL);
	if (err)
		return err;
	/*
	 * A retrieve cannot be undone: write back the caller's own bytes
	 * first, so that a reply that cannot be written fails before the file
	 * changes state.  No lock is held (see luo_copy_out()); the session
	 * may change meanwhile, so the lookup is done again.
	 */
	err = luo_ucmd_respond(ucmd, sizeof(*cmd));
	if (err)
		return err;
	err = luo_retrieve_token(session, cmd->token, &file);
	if (err)
		return err;
	return luo_ucmd_install(ucmd, file, &cmd->fd, sizeof(*cmd));
}

static int luo_ioctl_finish(struct luo_ucmd *ucmd)
{
	struct liveupdate_session_finish *cmd = ucmd->cmd;
	struct luo_session *session = ucmd->private;
	u64 start = local_clock();
	int err;

	if (cmd->reserved)
		return -EINVAL;
	guard(rwsem_read)(&luo_state_rwsem);
	guard(mutex)(&session->mutex);
	if (session->kind != LUO_SESSION_INCOMING)
		return -EINVAL;
	err = luo_files_finish(session);
	if (err)
		return err;
	/* Ready for the next update under the same name. */
	scoped_guard(mutex, &luo_sessions_lock)
		session->kind = LUO_SESSION_OUTGOING;
	luo_tl_span(LIVEUPDATE_TL_FINISH, start, 1);
	return 0;
}

static int luo_ioctl_get_name(struct luo_ucmd *ucmd)
{
	struct liveupdate_session_get_name *cmd = ucmd->cmd;
	struct luo_session *session = ucmd->private;

	if (cmd->reserved)
		return -EINVAL;
	/* The name never changes while the session has an fd. */
	memcpy(cmd->name, session->name, sizeof(cmd->name));
	return luo_ucmd_respond(ucmd, sizeof(*cmd));
}

static int luo_ioctl_unpreserve_fd(struct luo_ucmd *ucmd)
{
	struct liveupdate_session_unpreserve_fd *cmd = ucmd->cmd;
	struct luo_session *session = ucmd->private;
	struct luo_file *lfile;

	if (cmd->reserved)
		return -EINVAL;
	guard(rwsem_read)(&luo_state_rwsem);
	guard(mutex)(&session->mutex);
	if (session->kind != LUO_SESSION_OUTGOING)
		return -EINVAL;
	lfile = luo_session_find_file(session, cmd->token);
	if (!lfile)
		return -ENOENT;
	/* Another preserved file's state refers to it. */
	if (lfile->nr_dependents)
		return -EBUSY;
	luo_file_unpreserve(lfile);
	return 0;
}

static void luo_file_info(struct luo_file *lfile,
			  struct liveupdate_file_info *info)
{
	int err = lfile->error;

	memset(info, 0, sizeof(*info));
	info->token = lfile->lf.token;
	info->state = lfile->state;
	strscpy(info->compatible, lfile->compatible);
	if (lfile->state == LIVEUPDATE_FILE_PRESERVED &&
	    lfile->lf.handler->ops->settling &&
	    lfile->lf.handler->ops->settling(&lfile->lf))
		info->state = LIVEUPDATE_FILE_SETTLING;
	if (lfile->state == LIVEUPDATE_FILE_INCOMING && !err) {
		struct liveupdate_file_handler *h;

		/* No handler for its format (yet) is worth saying. */
		h = luo_handler_get(lfile->compatible);
		if (h)
			luo_handler_put(h);
		else
			err = -EOPNOTSUPP;
	}
	/*
	 * A missing handler or format version, or damaged state, will not go
	 * away by retrying; other retrieve errors may.
	 */
	if (err == -EOPNOTSUPP || err == -EBADMSG)
		info->state = LIVEUPDATE_FILE_BROKEN;
	if (info->state == LIVEUPDATE_FILE_BROKEN)
		info->error = -err;
}

static int luo_ioctl_query(struct luo_ucmd *ucmd)
{
	struct liveupdate_session_query *cmd = ucmd->cmd;
	struct luo_session *session = ucmd->private;
	struct liveupdate_file_info *info __free(kvfree) = NULL;
	struct luo_file *lfile;
	u32 room = 0, n = 0;
	int err;

	if (cmd->reserved)
		return -EINVAL;

	scoped_guard(rwsem_read, &luo_state_rwsem) {
		guard(mutex)(&session->mutex);
		cmd->kind = session->kind;
		room = min_t(unsigned long, cmd->count, session->nr_files);
		if (room) {
			info = kvmalloc_objs(*info, room);
			if (!info)
				return -ENOMEM;
		}
		list_for_each_entry(lfile, &session->files, list) {
			if (n < room)
				luo_file_info(lfile, &info[n]);
			n++;
		}
	}
	/* With no lock held: see luo_copy_out(). */
	err = luo_copy_out(u64_to_user_ptr(cmd->files), info, min(room, n),
			   sizeof(*info));
	if (err)
		return err;
	cmd->count = n;
	return luo_ucmd_respond(ucmd, sizeof(*cmd));
}

#define LUO_IOCTL_BASE LIVEUPDATE_CMD_SESSION_PRESERVE_FD

static const struct luo_ioctl_op luo_session_ops[] = {
	LUO_IOCTL_OP(LIVEUPDATE_CMD_SESSION_PRESERVE_FD, luo_ioctl_preserve_fd,
		     struct liveupdate_session_preserve_fd, token),
	LUO_IOCTL_OP(LIVEUPDATE_CMD_SESSION_RETRIEVE_FD, luo_ioctl_retrieve_fd,
		     struct liveupdate_session_retrieve_fd, token),
	LUO_IOCTL_OP(LIVEUPDATE_CMD_SESSION_FINISH, luo_ioctl_finish,
		     struct liveupdate_session_finish, reserved),
	LUO_IOCTL_OP(LIVEUPDATE_CMD_SESSION_GET_NAME, luo_ioctl_get_name,
		     struct liveupdate_session_get_name, name),
	LUO_IOCTL_OP(LIVEUPDATE_CMD_SESSION_UNPRESERVE_FD, luo_ioctl_unpreserve_fd,
		     struct liveupdate_session_unpreserve_fd, token),
	LUO_IOCTL_OP(LIVEUPDATE_CMD_SESSION_QUERY, luo_ioctl_query,
		     struct liveupdate_session_query, files),
};

#undef LUO_IOCTL_BASE

static long luo_ioctl(const struct luo_ioctl_op *ops, size_t nr_ops,
		      unsigned int base, unsigned int cmd, unsigned long arg,
		      void *private)
{
	union luo_ucmd_buffer buf;
	const struct luo_ioctl_op *op;
	struct luo_ucmd ucmd = {
		.user = (void __user *)arg,
		.cmd = &buf,
		.private = private,
	};
	unsigned int nr = _IOC_NR(cmd);
	int err;

	if (cmd != _IO(LIVEUPDATE_IOCTL_TYPE, nr) || nr < base ||
	    nr - base >= nr_ops)
		return -ENOTTY;
	op = &ops[nr - base];
	if (!op->execute)
		return -ENOTTY;

	if (get_user(ucmd.user_size, (u32 __user *)ucmd.user))
		return -EFAULT;
	if (ucmd.user_size < op->min_size)
		return -EINVAL;
	err = copy_struct_from_user(&buf, op->size, ucmd.user, ucmd.user_size);
	if (err)
		return err;
	return op->execute(&ucmd);
}

long luo_dev_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	return luo_ioctl(luo_dev_ops, ARRAY_SIZE(luo_dev_ops),
			 LIVEUPDATE_CMD_CREATE_SESSION, cmd, arg, NULL);
}

long luo_session_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	return luo_ioctl(luo_session_ops, ARRAY_SIZE(luo_session_ops),
			 LIVEUPDATE_CMD_SESSION_PRESERVE_FD, cmd, arg,
			 file->private_data);
}
