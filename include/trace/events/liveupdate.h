/* SPDX-License-Identifier: GPL-2.0 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM liveupdate

#if !defined(_TRACE_LIVEUPDATE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TRACE_LIVEUPDATE_H

#include <linux/tracepoint.h>

DECLARE_EVENT_CLASS(liveupdate_file_op,
	TP_PROTO(const char *session, u64 token, const char *compatible,
		 int err),
	TP_ARGS(session, token, compatible, err),
	TP_STRUCT__entry(
		__string(session, session)
		__string(compatible, compatible)
		__field(u64, token)
		__field(int, err)
	),
	TP_fast_assign(
		__assign_str(session);
		__assign_str(compatible);
		__entry->token = token;
		__entry->err = err;
	),
	TP_printk("session=%s token=%llu compatible=%s err=%d",
		  __get_str(session), __entry->token, __get_str(compatible),
		  __entry->err)
);

DEFINE_EVENT(liveupdate_file_op, liveupdate_preserve,
	TP_PROTO(const char *session, u64 token, const char *compatible,
		 int err),
	TP_ARGS(session, token, compatible, err));

DEFINE_EVENT(liveupdate_file_op, liveupdate_freeze,
	TP_PROTO(const char *session, u64 token, const char *compatible,
		 int err),
	TP_ARGS(session, token, compatible, err));

DEFINE_EVENT(liveupdate_file_op, liveupdate_retrieve,
	TP_PROTO(const char *session, u64 token, const char *compatible,
		 int err),
	TP_ARGS(session, token, compatible, err));

DEFINE_EVENT(liveupdate_file_op, liveupdate_finish,
	TP_PROTO(const char *session, u64 token, const char *compatible,
		 int err),
	TP_ARGS(session, token, compatible, err));

/* File operations that cannot fail. */
DECLARE_EVENT_CLASS(liveupdate_file_nofail,
	TP_PROTO(const char *session, u64 token, const char *compatible),
	TP_ARGS(session, token, compatible),
	TP_STRUCT__entry(
		__string(session, session)
		__string(compatible, compatible)
		__field(u64, token)
	),
	TP_fast_assign(
		__assign_str(session);
		__assign_str(compatible);
		__entry->token = token;
	),
	TP_printk("session=%s token=%llu compatible=%s",
		  __get_str(session), __entry->token, __get_str(compatible))
);

DEFINE_EVENT(liveupdate_file_nofail, liveupdate_unpreserve,
	TP_PROTO(const char *session, u64 token, const char *compatible),
	TP_ARGS(session, token, compatible));

/* The handler's preload of an incoming file returned. */
DEFINE_EVENT(liveupdate_file_nofail, liveupdate_preload,
	TP_PROTO(const char *session, u64 token, const char *compatible),
	TP_ARGS(session, token, compatible));

#endif /* _TRACE_LIVEUPDATE_H */

#include <trace/define_trace.h>
