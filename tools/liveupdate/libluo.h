/* SPDX-License-Identifier: GPL-2.0 */
/*
 * libluo: a small C library over the Live Update Orchestrator (LUO) uAPI.
 *
 * Thin wrappers around the ioctls of <linux/liveupdate.h> (so that agents
 * and VMMs do not each get the size-versioned structs wrong), plus the few
 * helpers every LUO agent needs: passing fds over a unix socket, and loading
 * and starting the next kernel with kexec_file_load(), the only loader that
 * carries Kexec HandOver (KHO) state.
 *
 * Conventions: every function returns 0 (or a non-negative value where
 * documented) on success and a negative errno on failure; errno itself is
 * not meaningful afterwards.  No function keeps global state, so the library
 * is safe to use from several threads on different fds.  All fds it returns
 * are close-on-exec.
 */
#ifndef LIBLUO_H
#define LIBLUO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/liveupdate.h>

#define LUO_DEVICE	"/dev/liveupdate"
/* Room for a session name and its NUL (names are 1..63 bytes). */
#define LUO_NAME_SIZE	LIVEUPDATE_SESSION_NAME_LENGTH

/* ---- /dev/liveupdate ---- */

/**
 * luo_open() - open /dev/liveupdate
 *
 * Only one process can have it open at a time: that process is the agent.
 *
 * Return: the device fd, or -ENOENT (live update is off: no "liveupdate=on"
 * on the command line, or KHO disabled), -EBUSY (another agent has it open),
 * -EPERM (needs CAP_SYS_ADMIN).
 */
int luo_open(void);

/**
 * luo_create_session() - create an empty outgoing session
 * @dev: fd from luo_open()
 * @name: 1..63 bytes
 * @sfd: output: the session fd
 *
 * The session lives as long as some process holds an fd of it; closing the
 * last one unpreserves everything in it.
 *
 * Return: 0, -EINVAL (empty name), -ENAMETOOLONG (64 bytes or more),
 * -EEXIST (name in use by an incoming or outgoing session), -ENOMEM, -EMFILE.
 */
int luo_create_session(int dev, const char *name, int *sfd);

/**
 * luo_retrieve_session() - open a session preserved by the previous kernel
 * @dev: fd from luo_open()
 * @name: 1..63 bytes
 * @sfd: output: the (incoming) session fd
 *
 * Closing it without luo_finish() keeps the session until the next live
 * update, which then drops it: it can be retrieved again meanwhile.
 *
 * Return: 0, -ENOENT (no such incoming session), -EBUSY (open already),
 * -EBADMSG (its handover state was damaged), -EINVAL, -ENAMETOOLONG.
 */
int luo_retrieve_session(int dev, const char *name, int *sfd);

/**
 * luo_list_sessions() - names of the incoming sessions not yet retrieved
 * @dev: fd from luo_open()
 * @names: room for @max names (may be NULL if @max is 0)
 * @max: number of entries of @names
 * @count: output: number of such sessions, which may exceed @max (then
 *	only the first @max are written, in name order)
 *
 * Return: 0, -EFAULT, or -ENOTTY on a kernel without this extension.
 */
int luo_list_sessions(int dev, char names[][LUO_NAME_SIZE], unsigned int max,
		      unsigned int *count);

/**
 * luo_walk_sessions() - call @fn for each incoming session not retrieved
 * @dev: fd from luo_open()
 * @fn: called with each name; a non-zero return stops the walk and is
 *	returned
 * @arg: passed to @fn
 *
 * Allocates the list itself, so it copes with any number of sessions.
 *
 * Return: 0, what @fn returned, or a luo_list_sessions() error or -ENOMEM.
 */
int luo_walk_sessions(int dev, int (*fn)(const char *name, void *arg),
		      void *arg);

/**
 * luo_get_timeline() - where the last update's blackout went
 * @dev: fd from luo_open()
 * @steps: room for @max steps (may be NULL if @max is 0)
 * @max: number of entries of @steps
 * @count: output: number of steps, which may exceed @max (then only the
 *	first @max are written)
 * @flags: output: LIVEUPDATE_TIMELINE_* (linux/liveupdate.h)
 *
 * Return: 0, -EFAULT, or -ENOTTY on a kernel without this extension.
 */
int luo_get_timeline(int dev, struct liveupdate_timeline_step *steps,
		     unsigned int max, unsigned int *count,
		     unsigned int *flags);

/* A step's name ("reboot", "freeze", "retrieve-fd"...) or "unknown". */
const char *luo_timeline_step_str(unsigned int step);

/* ---- session fds ---- */

/**
 * luo_preserve_fd() - preserve @fd's file in an outgoing session
 * @sfd: session fd
 * @fd: the file; it stays usable (a preserved memfd cannot change size)
 * @token: its name across the update, unique in the session
 *
 * Return: 0, -EINVAL (incoming session), -EBADF, -EEXIST (token in use),
 * -EBUSY (file preserved already, in any session), -ENOENT (no handler for
 * this type of file), or the handler's error.
 */
int luo_preserve_fd(int sfd, int fd, uint64_t token);

/**
 * luo_unpreserve_fd() - take one file out of an outgoing session
 * @sfd: session fd
 * @token: its token
 *
 * Return: 0, -EINVAL (incoming session), -ENOENT (unknown token).
 */
int luo_unpreserve_fd(int sfd, uint64_t token);

/**
 * luo_retrieve_fd() - get a preserved file back in the new kernel
 * @sfd: incoming session fd
 * @token: the token it was preserved with
 * @fd: output: a new fd of the restored file
 *
 * Retrieving a token again gives another fd of the same file; a failed
 * retrieve can be retried.
 *
 * Return: 0, -EINVAL (outgoing session), -ENOENT (unknown token),
 * -EOPNOTSUPP (this kernel cannot restore that format), -EBADMSG (damaged
 * state), or the handler's error.
 */
int luo_retrieve_fd(int sfd, uint64_t token, int *fd);

/**
 * luo_finish() - end the live update of an incoming session
 * @sfd: incoming session fd
 *
 * Files never retrieved are released; the session becomes an empty
 * outgoing session of the same name, ready for the next update.
 *
 * Return: 0, -EINVAL (outgoing session), -EBUSY (a handler refused; nothing
 * changed, retry later).
 */
int luo_finish(int sfd);

/**
 * luo_session_name() - name of a session
 * @sfd: session fd
 * @name: output, LUO_NAME_SIZE bytes, NUL-terminated
 *
 * Return: 0 or -errno.
 */
int luo_session_name(int sfd, char name[LUO_NAME_SIZE]);

/**
 * luo_query() - kind of a session and state of its files
 * @sfd: session fd
 * @kind: output: LIVEUPDATE_SESSION_OUTGOING or LIVEUPDATE_SESSION_INCOMING
 * @files: room for @max entries, filled in preservation order (may be NULL
 *	if @max is 0)
 * @max: number of entries of @files
 * @count: output: number of files in the session, which may exceed @max
 *
 * Return: 0, or -ENOTTY on a kernel without this extension.
 */
int luo_query(int sfd, unsigned int *kind, struct liveupdate_file_info *files,
	      unsigned int max, unsigned int *count);

/**
 * luo_file_count() - number of files in a session
 * @sfd: session fd
 * @kind: output: the session's kind, or NULL
 *
 * Return: the count, or -errno as for luo_query().
 */
int luo_file_count(int sfd, unsigned int *kind);

/* "outgoing", "incoming" or "unknown". */
const char *luo_kind_str(unsigned int kind);
/* "preserved", "incoming", "retrieved", "broken", "settling" or "unknown". */
const char *luo_file_state_str(unsigned int state);

/* ---- passing fds over unix sockets ---- */

/**
 * luo_connect() - connect to a unix stream socket
 * @path: its path
 *
 * Return: the socket fd, or -ENOENT / -ECONNREFUSED (nobody listening),
 * -ENAMETOOLONG, or another connect() error.
 */
int luo_connect(const char *path);

/**
 * luo_connect_timeout() - luo_connect(), waiting at most @timeout_ms
 * @path: the socket's path
 * @timeout_ms: how long connect() may wait (while the listener's backlog is
 *	full), or -1 for ever
 *
 * The timeout stays on the socket as its SO_SNDTIMEO, so that a send on it
 * does not block for longer either (it then fails with -EAGAIN).
 *
 * Return: as luo_connect(), or -ETIMEDOUT.
 */
int luo_connect_timeout(const char *path, int timeout_ms);

/**
 * luo_send_fd() - send @len bytes of @msg, and @fd with them
 * @sock: a connected unix socket
 * @fd: the fd to pass (SCM_RIGHTS), or -1 for plain data
 * @msg: the data; @len must not be 0 when passing an fd, because a stream
 *	socket carries fds only along with data
 * @len: its length
 *
 * The fd is attached to the first byte, so the receiver gets it with the
 * first luo_recv_fd() that reads any of @msg.  Never raises SIGPIPE.
 *
 * Return: 0, -EINVAL, -EPIPE (peer gone), -EAGAIN (non-blocking socket
 * full), or another sendmsg() error.
 */
int luo_send_fd(int sock, int fd, const void *msg, size_t len);

/**
 * luo_send_fd_some() - one sendmsg() of up to @len bytes of @msg, with @fd
 * @sock: a connected unix socket
 * @fd: the fd to pass with the first byte, or -1
 * @msg: the data (see luo_send_fd())
 * @len: its length
 * @flags: sendmsg() flags, such as MSG_DONTWAIT; MSG_NOSIGNAL is added
 *
 * For an event loop that must never block: a full socket sends part of
 * @msg, or nothing.  When it returns a count, @fd went with those bytes.
 *
 * Return: the number of bytes sent, or -EAGAIN (nothing sent, the socket
 * is full), -EPIPE, or another sendmsg() error.
 */
ssize_t luo_send_fd_some(int sock, int fd, const void *msg, size_t len,
			 int flags);

/**
 * luo_recv_fd() - receive data, and an fd if one comes with it
 * @sock: a connected unix socket
 * @fd: output: the fd received (close-on-exec), or -1; may be NULL to
 *	close any fd received
 * @buf: where the data goes
 * @len: size of @buf
 *
 * One recvmsg(): returns what is there, which is not necessarily a whole
 * message.  Extra fds beyond the first are closed.
 *
 * Return: the number of bytes received (0 when the peer closed the
 * connection), or -errno; -EMSGSIZE if fds were lost for lack of room.
 */
ssize_t luo_recv_fd(int sock, int *fd, void *buf, size_t len);

/**
 * luo_recv_line() - receive one line, and an fd if one comes with it
 * @sock: a connected unix socket
 * @line: output: the line without its newline, NUL-terminated
 * @size: size of @line
 * @fd: output as for luo_recv_fd() (-1 on error)
 * @timeout_ms: how long to wait for the whole line, or -1 for ever
 *
 * Reads one byte at a time, so that nothing after the line is consumed and
 * the caller can poll() the socket for the next one.  Meant for the short
 * lines of the luod protocol.
 *
 * Return: the length of the line, -ECONNRESET (peer closed the connection
 * before a whole line), -ETIMEDOUT, -EMSGSIZE (line does not fit), or
 * another error.
 */
int luo_recv_line(int sock, char *line, size_t size, int *fd, int timeout_ms);

/**
 * luo_send_line() - send one line (a newline is added)
 * @sock: a connected unix socket
 * @line: the text, without newline
 *
 * Return: as luo_send_fd().
 */
int luo_send_line(int sock, const char *line);

/* ---- kexec ---- */

/**
 * luo_kexec_cmdline() - @cmdline with KHO and live update kept on
 * @cmdline: a kernel command line, or NULL for an empty one
 *
 * LUO hands state over only to a kernel booted with "liveupdate=on", and
 * KHO only with "kho=on" (unless built on by default): for each, if its
 * last option in the kernel's part of @cmdline (before any " -- ") does
 * not turn it on, "kho=on" or "liveupdate=on" is added there.
 *
 * Return: a malloc()ed string, or NULL (out of memory).
 */
char *luo_kexec_cmdline(const char *cmdline);

/**
 * luo_next_cmdline() - the command line for the next kernel
 * @current: the running kernel's command line (/proc/cmdline), or NULL
 * @append: options to add, or NULL; anything after a "--" in it goes to
 *	init, after @current's own init arguments
 *
 * The kernel's part of @current without the boot loader's BOOT_IMAGE=
 * (the path of the image running now, not of the next one), then the
 * kernel's part of @append, then "kho=on" and "liveupdate=on" unless
 * already on (as luo_kexec_cmdline()), then " -- " and init's arguments
 * if there are any.  Blanks are normalised to single spaces; quoted
 * values stay whole.
 *
 * Return: a malloc()ed string, or NULL (out of memory).
 */
char *luo_next_cmdline(const char *current, const char *append);

/**
 * luo_cmdline_has_liveupdate() - does @cmdline turn live update on
 * @cmdline: a kernel command line (such as /proc/cmdline)
 *
 * Return: 1 or 0.
 */
int luo_cmdline_has_liveupdate(const char *cmdline);

/**
 * luo_kexec_load() - load the next kernel with kexec_file_load()
 * @kernel: path of the kernel image (bzImage, Image...)
 * @initrd: path of its initramfs, or NULL for none
 * @cmdline: its command line; "liveupdate=on" is added if missing (see
 *	luo_kexec_cmdline())
 *
 * kexec_file_load() is required: the kernel adds the KHO state to the image
 * it loads itself, which the older kexec_load() cannot do.  Replaces any
 * image loaded before.
 *
 * Return: 0, -ENOENT/-EACCES (opening a file), -EPERM (no CAP_SYS_BOOT, or
 * kexec disabled by kernel.kexec_load_disabled or lockdown), -ENOEXEC (not
 * a kernel image this kernel can load), -EINVAL (bad image or command line
 * too long), -EKEYREJECTED/-EBADMSG (signature check), -EBUSY (a kexec is
 * under way), -ENOSYS (no kexec_file_load()), -ENOMEM.
 */
int luo_kexec_load(const char *kernel, const char *initrd,
		   const char *cmdline);

/**
 * luo_kexec_unload() - unload the kernel loaded by kexec_file_load()
 *
 * Return: 0, -EPERM, -EBUSY, -ENOSYS.
 */
int luo_kexec_unload(void);

/**
 * luo_kexec_loaded() - is a kexec kernel loaded
 *
 * Return: 1, 0, or -errno if /sys/kernel/kexec_loaded cannot be read.
 */
int luo_kexec_loaded(void);

/**
 * luo_kexec_reboot() - jump into the loaded kernel, handing sessions over
 *
 * Syncs file systems, then reboot(LINUX_REBOOT_CMD_KEXEC).  LUO freezes
 * every file of every outgoing session first; if that fails the jump is
 * cancelled and everything keeps working.  Sessions survive only if some
 * process holds an fd of them now.
 *
 * Return: only on failure: -EINVAL (no kernel loaded), -EOPNOTSUPP (files
 * are preserved but the loaded image cannot carry KHO state: load it with
 * luo_kexec_load()), -EPERM (no CAP_SYS_BOOT), -EBUSY (kexec under way), or
 * the error of a file's freeze or of writing the handover state.
 */
int luo_kexec_reboot(void);

/**
 * luo_kexec_jump() - luo_kexec_reboot() without its sync()
 *
 * For an agent that syncs by itself, in a child it can give up on: a
 * sync() that hangs (a dead NFS server) must not keep every paused VM
 * waiting.  luod syncs before pausing its clients and again once they are
 * all ready, for what they wrote while quiescing.
 *
 * Return: as luo_kexec_reboot().
 */
int luo_kexec_jump(void);

#endif /* LIBLUO_H */
