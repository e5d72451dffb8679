/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Live Update Orchestrator (LUO) userspace interface.
 *
 * /dev/liveupdate (one opener at a time, CAP_SYS_ADMIN) creates outgoing
 * sessions and retrieves incoming ones; each returns a session fd.  Files
 * preserved into an outgoing session survive a kexec reboot and are
 * retrieved by token from the incoming session of the same name.
 *
 * Every command is _IO(LIVEUPDATE_IOCTL_TYPE, nr): the argument is a pointer
 * to a struct whose first member, @size, is the caller's sizeof() of it.  A
 * larger struct is accepted if its extra bytes are zero (else E2BIG), a
 * smaller one than the first version is rejected (EINVAL).  Reserved
 * members must be zero (EINVAL).  Returned fds are close-on-exec.
 *
 * Every command also fails with EFAULT when its struct cannot be read or its
 * reply cannot be written, and with ENOTTY when it is unknown.  The struct
 * is read first, then its size, tail and reserved members are checked, then
 * the command's own errors; a failed command writes nothing back.  A reply
 * that cannot be written is found before anything changes, except that a
 * file retrieved by RETRIEVE_FD stays retrieved if no fd can be allocated
 * (EMFILE) or the struct becomes unwritable meanwhile: retrieving it again
 * returns it.
 */
#ifndef _UAPI_LINUX_LIVEUPDATE_H
#define _UAPI_LINUX_LIVEUPDATE_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define LIVEUPDATE_IOCTL_TYPE		0xBA

/* Session names are 1..63 bytes plus the NUL. */
#define LIVEUPDATE_SESSION_NAME_LENGTH	64
/* Handler compatible strings, as reported by LIVEUPDATE_SESSION_QUERY. */
#define LIVEUPDATE_COMPATIBLE_LENGTH	48

/* Commands on /dev/liveupdate. */
enum {
	LIVEUPDATE_CMD_CREATE_SESSION		= 0x00,
	LIVEUPDATE_CMD_RETRIEVE_SESSION		= 0x01,
	/* Extensions (not in the first LUO interface). */
	LIVEUPDATE_CMD_LIST_SESSIONS		= 0x20,
	LIVEUPDATE_CMD_GET_TIMELINE		= 0x21,
};

/* Commands on a session fd. */
enum {
	LIVEUPDATE_CMD_SESSION_PRESERVE_FD	= 0x40,
	LIVEUPDATE_CMD_SESSION_RETRIEVE_FD	= 0x41,
	LIVEUPDATE_CMD_SESSION_FINISH		= 0x42,
	LIVEUPDATE_CMD_SESSION_GET_NAME		= 0x43,
	/* Extensions (not in the first LUO interface). */
	LIVEUPDATE_CMD_SESSION_UNPRESERVE_FD	= 0x60,
	LIVEUPDATE_CMD_SESSION_QUERY		= 0x61,
};

/**
 * struct liveupdate_ioctl_create_session - LIVEUPDATE_IOCTL_CREATE_SESSION
 * @size: sizeof(struct liveupdate_ioctl_create_session)
 * @fd: output: the new session fd
 * @name: NUL-terminated name, unique among all sessions (incoming and
 *	outgoing) of this kernel
 *
 * Creates an empty outgoing session.  Closing its fd unpreserves every file
 * in it (last preserved, first unpreserved) and frees the name.
 *
 * Errors: EINVAL (empty name or no NUL in the name), EEXIST (name in use),
 * ENOMEM, EMFILE.
 */
struct liveupdate_ioctl_create_session {
	__u32	size;
	__s32	fd;
	__u8	name[LIVEUPDATE_SESSION_NAME_LENGTH];
};

#define LIVEUPDATE_IOCTL_CREATE_SESSION \
	_IO(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_CREATE_SESSION)

/**
 * struct liveupdate_ioctl_retrieve_session - LIVEUPDATE_IOCTL_RETRIEVE_SESSION
 * @size: sizeof(struct liveupdate_ioctl_retrieve_session)
 * @fd: output: the session fd
 * @name: NUL-terminated name of a session the previous kernel preserved
 *
 * Opens an incoming session.  Closing its fd without
 * LIVEUPDATE_SESSION_FINISH keeps the session and everything in it
 * (retrieved files included) until the next live update; it can be
 * retrieved again meanwhile, for example by a restarted agent.  An incoming
 * session that is still unfinished when the next live update happens is not
 * carried over: its resources are released by that update, and the
 * kernel logs it.
 *
 * Errors: EINVAL (bad name), ENOENT (no such incoming session), EBUSY (the
 * session is open already), EBADMSG (its serialized state was damaged).
 */
struct liveupdate_ioctl_retrieve_session {
	__u32	size;
	__s32	fd;
	__u8	name[LIVEUPDATE_SESSION_NAME_LENGTH];
};

#define LIVEUPDATE_IOCTL_RETRIEVE_SESSION \
	_IO(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_RETRIEVE_SESSION)

/**
 * struct liveupdate_ioctl_list_sessions - LIVEUPDATE_IOCTL_LIST_SESSIONS
 * @size: sizeof(struct liveupdate_ioctl_list_sessions)
 * @count: input: number of names @names has room for; output: number of
 *	incoming sessions that can be retrieved (may exceed the input, then
 *	only the first ones are written)
 * @names: pointer to @count arrays of LIVEUPDATE_SESSION_NAME_LENGTH bytes
 *	(may be 0 when @count is 0, to ask for the number)
 *
 * Extension: lists the incoming sessions not finished and not currently
 * open, in name order.
 *
 * Errors: EFAULT (a name could not be written).
 */
struct liveupdate_ioctl_list_sessions {
	__u32	size;
	__u32	count;
	__aligned_u64 names;
};

#define LIVEUPDATE_IOCTL_LIST_SESSIONS \
	_IO(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_LIST_SESSIONS)

/**
 * struct liveupdate_session_preserve_fd - LIVEUPDATE_SESSION_PRESERVE_FD
 * @size: sizeof(struct liveupdate_session_preserve_fd)
 * @fd: the file to preserve
 * @token: the name of the file across the update, unique in the session
 *
 * Hands @fd's file to the handler that supports its type.  The file stays
 * usable; what a handler allows meanwhile is its own (a preserved memfd
 * cannot change size, for example).
 *
 * Errors: EINVAL (incoming session), EBADF (not an open fd, or an O_PATH
 * one), EEXIST (token in use in this session), EBUSY (the file is preserved
 * already, in any session), ENOENT (no handler supports this type of file,
 * or the file refers to one not preserved in this session: an iommufd to a
 * memfd it maps), or the handler's error.
 */
struct liveupdate_session_preserve_fd {
	__u32	size;
	__s32	fd;
	__aligned_u64 token;
};

#define LIVEUPDATE_SESSION_PRESERVE_FD \
	_IO(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_SESSION_PRESERVE_FD)

/**
 * struct liveupdate_session_retrieve_fd - LIVEUPDATE_SESSION_RETRIEVE_FD
 * @size: sizeof(struct liveupdate_session_retrieve_fd)
 * @fd: output: a new fd for the restored file
 * @token: the token the file was preserved with
 *
 * Restores the file (the first time) and returns a new fd for it.  Asking
 * again for a retrieved token returns another fd for the same file.  A
 * failed retrieve leaves the file in the session and can be retried.
 *
 * Errors: EINVAL (outgoing session), ENOENT (unknown token), EOPNOTSUPP (no
 * handler for the file's format or format version in this kernel), EBADMSG
 * (the file's serialized state was damaged), or the handler's error.
 */
struct liveupdate_session_retrieve_fd {
	__u32	size;
	__s32	fd;
	__aligned_u64 token;
};

#define LIVEUPDATE_SESSION_RETRIEVE_FD \
	_IO(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_SESSION_RETRIEVE_FD)

/**
 * struct liveupdate_session_finish - LIVEUPDATE_SESSION_FINISH
 * @size: sizeof(struct liveupdate_session_finish)
 * @reserved: must be zero
 *
 * Ends the live update for an incoming session: first every file's handler
 * is asked whether it can finish (if one refuses, nothing changes and the
 * call can be retried), then each file is finished, last first; files never
 * retrieved are released.  The session becomes an empty outgoing session of
 * the same name, ready for the next update.
 *
 * Errors: EINVAL (outgoing session or non-zero @reserved), EBUSY (a handler
 * refused; retry later).
 */
struct liveupdate_session_finish {
	__u32	size;
	__u32	reserved;
};

#define LIVEUPDATE_SESSION_FINISH \
	_IO(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_SESSION_FINISH)

/**
 * struct liveupdate_session_get_name - LIVEUPDATE_SESSION_GET_NAME
 * @size: sizeof(struct liveupdate_session_get_name)
 * @reserved: must be zero
 * @name: output: the session's NUL-terminated name
 */
struct liveupdate_session_get_name {
	__u32	size;
	__u32	reserved;
	__u8	name[LIVEUPDATE_SESSION_NAME_LENGTH];
};

#define LIVEUPDATE_SESSION_GET_NAME \
	_IO(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_SESSION_GET_NAME)

/**
 * struct liveupdate_session_unpreserve_fd - LIVEUPDATE_SESSION_UNPRESERVE_FD
 * @size: sizeof(struct liveupdate_session_unpreserve_fd)
 * @reserved: must be zero
 * @token: the token of the file to give back
 *
 * Extension: removes one file from an outgoing session; the file is an
 * ordinary file again.  A file that another preserved file of the session
 * refers to (a memfd an iommufd maps) can only go after that one.
 *
 * Errors: EINVAL (incoming session), ENOENT (unknown token), EBUSY
 * (another preserved file refers to it).
 */
struct liveupdate_session_unpreserve_fd {
	__u32	size;
	__u32	reserved;
	__aligned_u64 token;
};

#define LIVEUPDATE_SESSION_UNPRESERVE_FD \
	_IO(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_SESSION_UNPRESERVE_FD)

/**
 * enum liveupdate_file_state - state of a file, LIVEUPDATE_SESSION_QUERY
 * @LIVEUPDATE_FILE_PRESERVED: outgoing, preserved
 * @LIVEUPDATE_FILE_INCOMING: incoming, not retrieved yet
 * @LIVEUPDATE_FILE_RETRIEVED: incoming, retrieved
 * @LIVEUPDATE_FILE_BROKEN: incoming, cannot be restored (see @error)
 * @LIVEUPDATE_FILE_SETTLING: outgoing, preserved, its handler still doing
 *	in the background part of the work (a memfd: moving pages out of
 *	the memory the next kernel boots from); a reboot now waits for it
 */
enum liveupdate_file_state {
	LIVEUPDATE_FILE_PRESERVED	= 1,
	LIVEUPDATE_FILE_INCOMING	= 2,
	LIVEUPDATE_FILE_RETRIEVED	= 3,
	LIVEUPDATE_FILE_BROKEN		= 4,
	LIVEUPDATE_FILE_SETTLING	= 5,
};

/**
 * struct liveupdate_file_info - one file, LIVEUPDATE_SESSION_QUERY
 * @token: its token
 * @state: enum liveupdate_file_state
 * @error: for LIVEUPDATE_FILE_BROKEN, the (positive) errno a retrieve gets
 * @compatible: NUL-terminated compatible string of its handler (format)
 */
struct liveupdate_file_info {
	__aligned_u64 token;
	__u32	state;
	__u32	error;
	__u8	compatible[LIVEUPDATE_COMPATIBLE_LENGTH];
};

/* Session kinds, LIVEUPDATE_SESSION_QUERY. */
#define LIVEUPDATE_SESSION_OUTGOING	1
#define LIVEUPDATE_SESSION_INCOMING	2

/**
 * struct liveupdate_session_query - LIVEUPDATE_SESSION_QUERY
 * @size: sizeof(struct liveupdate_session_query)
 * @kind: output: LIVEUPDATE_SESSION_OUTGOING or LIVEUPDATE_SESSION_INCOMING
 * @count: input: number of entries @files has room for; output: number of
 *	files in the session (only the first ones are written if larger)
 * @reserved: must be zero
 * @files: pointer to @count struct liveupdate_file_info, in preservation
 *	order (may be 0 when @count is 0)
 *
 * Extension: describes the session and its files.
 */
struct liveupdate_session_query {
	__u32	size;
	__u32	kind;
	__u32	count;
	__u32	reserved;
	__aligned_u64 files;
};

#define LIVEUPDATE_SESSION_QUERY \
	_IO(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_SESSION_QUERY)

/**
 * enum liveupdate_timeline_step_id - steps of LIVEUPDATE_IOCTL_GET_TIMELINE
 * @LIVEUPDATE_TL_REBOOT: the kernel that rebooted: reboot(KEXEC) reached
 *	LUO, until every other LUO operation is done and held off
 * @LIVEUPDATE_TL_PREPARE: the handover state sized and allocated
 * @LIVEUPDATE_TL_FREEZE: one file handler's freezes, from the first to the
 *	last; @count files, @label the handler's compatible string
 * @LIVEUPDATE_TL_FREEZE_FLB: the FLBs frozen; @count FLBs
 * @LIVEUPDATE_TL_WRITE: the handover state written; @count files
 * @LIVEUPDATE_TL_SHUTDOWN: from LUO's part done to the jump: devices and
 *	CPUs shut down
 * @LIVEUPDATE_TL_JUMP: the jump to the next kernel (an instant)
 * @LIVEUPDATE_TL_BOOT: the kernel that booted: from the jump to the start
 *	of its clock (purgatory, decompression, early setup); only with
 *	%LIVEUPDATE_TIMELINE_ONE_CLOCK
 * @LIVEUPDATE_TL_KHO_RESERVE: KHO reserved the preserved memory, early in
 *	the boot
 * @LIVEUPDATE_TL_RESTORE: LUO read the handover state and rebuilt the
 *	incoming sessions; @count files
 * @LIVEUPDATE_TL_READY: /dev/liveupdate can be opened (an instant)
 * @LIVEUPDATE_TL_OPEN: the first open of /dev/liveupdate (an instant)
 * @LIVEUPDATE_TL_PRELOAD: the background preload of incoming files, from
 *	the first start to the last end; @count files
 * @LIVEUPDATE_TL_RETRIEVE_SESSION: RETRIEVE_SESSION of incoming sessions,
 *	first to last; @count sessions
 * @LIVEUPDATE_TL_RETRIEVE_FD: RETRIEVE_FD of incoming files, from the
 *	first start to the last end; @count files
 * @LIVEUPDATE_TL_FINISH: FINISH of incoming sessions, from the first
 *	start to the last end; @count sessions
 *
 * The steps describe how this implementation works, for telling where time
 * goes: they are informational, new ids may be added and old ones may no
 * longer be reported.  A reader skips the ids it does not know.
 */
enum liveupdate_timeline_step_id {
	LIVEUPDATE_TL_REBOOT		= 1,
	LIVEUPDATE_TL_PREPARE		= 2,
	LIVEUPDATE_TL_FREEZE		= 3,
	LIVEUPDATE_TL_FREEZE_FLB	= 4,
	LIVEUPDATE_TL_WRITE		= 5,
	LIVEUPDATE_TL_SHUTDOWN		= 6,
	LIVEUPDATE_TL_JUMP		= 7,
	LIVEUPDATE_TL_BOOT		= 8,
	LIVEUPDATE_TL_KHO_RESERVE	= 9,
	LIVEUPDATE_TL_RESTORE		= 10,
	LIVEUPDATE_TL_READY		= 11,
	LIVEUPDATE_TL_OPEN		= 12,
	LIVEUPDATE_TL_PRELOAD		= 13,
	LIVEUPDATE_TL_RETRIEVE_SESSION	= 14,
	LIVEUPDATE_TL_RETRIEVE_FD	= 15,
	LIVEUPDATE_TL_FINISH		= 16,
};

/**
 * struct liveupdate_timeline_step - one step, LIVEUPDATE_IOCTL_GET_TIMELINE
 * @start_ns: when it started, in ns on the timeline's axis (see
 *	struct liveupdate_ioctl_get_timeline)
 * @end_ns: when it ended; @start_ns for an instant
 * @step: enum liveupdate_timeline_step_id
 * @count: how many files, sessions or FLBs it covered, as the id says
 * @label: NUL-terminated; the handler's compatible string for
 *	%LIVEUPDATE_TL_FREEZE, else empty
 */
struct liveupdate_timeline_step {
	__s64	start_ns;
	__s64	end_ns;
	__u32	step;
	__u32	count;
	__u8	label[LIVEUPDATE_COMPATIBLE_LENGTH];
};

/* The steps of the kernel that rebooted into this one are included. */
#define LIVEUPDATE_TIMELINE_PREVIOUS	(1U << 0)
/* Both kernels' steps are on one axis (a cycle counter crossed the jump). */
#define LIVEUPDATE_TIMELINE_ONE_CLOCK	(1U << 1)

/**
 * struct liveupdate_ioctl_get_timeline - LIVEUPDATE_IOCTL_GET_TIMELINE
 * @size: sizeof(struct liveupdate_ioctl_get_timeline)
 * @count: input: number of entries @steps has room for; output: number of
 *	steps (only the first ones are written if larger)
 * @flags: output: LIVEUPDATE_TIMELINE_* (ignored on input)
 * @reserved: must be zero
 * @steps: pointer to @count struct liveupdate_timeline_step, in the order
 *	they started (may be 0 when @count is 0)
 *
 * Extension: where the blackout of the last update went, measured by both
 * kernels.  The axis starts (0 ns) at the start of %LIVEUPDATE_TL_REBOOT
 * when %LIVEUPDATE_TIMELINE_PREVIOUS is set, else at the start of this
 * kernel's clock.  With %LIVEUPDATE_TIMELINE_PREVIOUS but not
 * %LIVEUPDATE_TIMELINE_ONE_CLOCK, this kernel's own steps are relative to
 * the start of its clock: they follow the previous kernel's steps in
 * @steps, and cannot be compared with them.
 */
struct liveupdate_ioctl_get_timeline {
	__u32	size;
	__u32	count;
	__u32	flags;
	__u32	reserved;
	__aligned_u64 steps;
};

#define LIVEUPDATE_IOCTL_GET_TIMELINE \
	_IO(LIVEUPDATE_IOCTL_TYPE, LIVEUPDATE_CMD_GET_TIMELINE)

#endif /* _UAPI_LINUX_LIVEUPDATE_H */
