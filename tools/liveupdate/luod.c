// SPDX-License-Identifier: GPL-2.0
/*
 * luod: reference Live Update Orchestrator agent.
 *
 *   luod [-s SOCKET] [-t SECONDS]
 *
 * luod owns /dev/liveupdate (only one process can) and hands sessions to
 * its clients (VMMs) over a unix stream socket, SOCKET (default
 * /run/luod.sock, mode 0600; only root or luod's own uid may talk to it).
 * It keeps an fd of every session it handed out: sessions survive a kexec
 * only if some process holds them, and that way a client that crashes or
 * exits does not lose its preserved files.  It runs in the foreground and
 * logs to stdout; on SIGTERM/SIGINT it removes its socket and exits, which
 * drops every session no client holds any more.
 *
 * Protocol: lines of text, '\n'-terminated, at most 511 bytes with the
 * newline (a longer request is refused and its connection closed), fields
 * separated by blanks.  A request holding a control character (other than
 * a tab, or a '\r' just before the newline) is refused.  A connection
 * carries any number of requests, answered in order, each by one line
 * starting with "OK" or "ERR" (the rest of an ERR line is a message for
 * humans).  No reply spans lines: in free text, every byte outside
 * 0x20..0x7e, and the backslash, is sent as \xHH.  Requests:
 *
 *   PING                 -> OK luod PID
 *   SESSION NAME [MODE]  -> OK outgoing|incoming, with the session fd
 *                           attached to the reply (SCM_RIGHTS)
 *	MODE "any" (default): the incoming session NAME if the previous
 *	kernel preserved one, else luod's outgoing session NAME, created if
 *	needed.  "incoming": only an incoming one.  "outgoing": never an
 *	incoming one.  NAME is 1..63 bytes of printable ASCII other than the
 *	space (0x21..0x7e).  A session held by another connected client is
 *	refused.  The connection becomes a *client*: it takes part in
 *	updates (below) until it closes.
 *   RELEASE NAME         -> OK released: luod closes its fd of NAME (the
 *                           session goes away once nobody holds it)
 *   STATUS               -> OK N, then N lines:
 *	luod pid=P socket=PATH clients=C sessions=S kexec=loaded|not-loaded|
 *	     unknown update=idle|syncing|settling|preparing|final-sync
 *	     connections=N
 *	session NAME kind=outgoing|incoming|error files=F client=PID|none
 *		[error=ERRNO]
 *	  file token=T state=STATE compatible=STRING [error=ERRNO]
 *	timeline previous=yes|no one-clock=yes|no
 *	  step name=STEP start_us=S end_us=E count=C label=STRING|-
 *	Values are escaped as above, spaces too (PATH, STRING, NAME: an
 *	incoming session's name is whatever bytes the previous kernel had;
 *	one a request cannot carry is dropped by the next update); ERRNO is
 *	a name such as EIO.  Logs show names escaped the same way.
 *   UPDATE               -> ERR MESSAGE, or never answers: the machine
 *                           kexecs into the loaded kernel
 *	luod refuses at once if no kernel is loaded.  Otherwise it first
 *	syncs the file systems, in a child process and for at most -t
 *	SECONDS: a sync() that hangs (a dead NFS server) fails the update
 *	before any client was paused.  Then it waits, up to -t SECONDS,
 *	while the kernel is still settling a preserved file (QUERY state
 *	"settling": a memfd moving pages out of the memory the next kernel
 *	boots from), which the reboot would wait for with every client
 *	paused.  Then it sends "PREPARE" to every client (except the
 *	connection asking), and waits up to -t SECONDS (default 10) for
 *	each to answer "READY": a client must then be quiescent, its state
 *	in its preserved files.  When all are ready it syncs again, as
 *	before and for at most -t SECONDS (what the clients wrote while
 *	quiescing), then calls reboot(LINUX_REBOOT_CMD_KEXEC), which does
 *	not sync.  If a client answers "NOTREADY [WHY]", does not answer in
 *	time, cannot be sent PREPARE, or disconnects, or if the final sync
 *	times out, or the reboot fails, or the requester disconnects or an
 *	operator sends CANCEL, luod sends "CANCEL" to the clients it asked
 *	and replies ERR to the requester.
 *   CANCEL               -> OK cancelled: the update in progress fails
 *   READY, NOTREADY [WHY] are a client's answers to PREPARE: no reply.
 *
 * luod never blocks on a client: replies wait in a per-connection queue
 * that is sent as the client reads.  While more than OUT_PAUSE bytes wait,
 * luod reads no more requests from that connection; a connection with
 * more than OUT_MAX bytes waiting is closed.  Every refused request is
 * logged with its reason (at most LOG_BURST a second; the rest counted).
 *
 * After a kexec luod retrieves every incoming session at start and hands
 * each back to the first client that asks for its name.  A session whose
 * client never comes back stays held (and unfinished) by luod until the
 * next update, which drops it (the kernel logs it); RELEASE drops it
 * earlier.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tools.h"
#include "libluo.h"

#define DEFAULT_SOCKET	"/run/luod.sock"
#define LINE_SIZE	512		/* a line with its newline */
#define OUT_PAUSE	(64 * 1024)	/* queued: stop reading requests */
#define OUT_MAX		(1024 * 1024)	/* queued: drop the connection */
#define FDS_PAUSE	8		/* fds queued: stop reading requests */
/* Kept free of connections, for pipe2(), dup() and new sessions. */
#define FD_RESERVE	16
#define ACCEPT_BATCH	64		/* accepts per round, to stay fair */
#define LOG_BURST	20		/* refusals logged per second */
/* Out of fds with no spare to refuse with: stop accepting for this long. */
#define ACCEPT_PAUSE_MS	100

enum prep {
	PREP_NONE,	/* not part of the update in progress */
	PREP_ASKED,	/* sent PREPARE, waiting */
	PREP_READY,
	PREP_REFUSED,	/* answered NOTREADY */
};

#define NO_PREPARE	SIZE_MAX

/* out_add() flags */
#define OUT_OWN		1	/* a line luod initiates: no OUT_MAX limit */
#define OUT_PREPARE	2	/* it is PREPARE: remember where */

/* An fd to pass with the queued byte at @pos. */
struct out_fd {
	size_t pos;
	int fd;
};

struct conn {
	int fd;
	uint64_t id;		/* never reused (nor 0), unlike fds */
	pid_t pid;
	char in[LINE_SIZE];
	size_t len;
	/* Not sent yet: out[head..tail), with fds[] attached in order. */
	char *out;
	size_t head, tail, size;
	struct out_fd *fds;
	size_t nr_fds;
	size_t prepare_at;	/* where an unsent PREPARE is, or NO_PREPARE */
	bool client;		/* was handed a session */
	bool dead;		/* to be closed at the end of this round */
	enum prep prep;
	char why[128];		/* NOTREADY reason */
};

struct session {
	char name[LUO_NAME_SIZE];
	/*
	 * @name escaped as a STATUS field, for every message: an incoming
	 * session's name is any bytes the previous kernel had, '\n' and
	 * blanks included, and must not break a line.
	 */
	char shown[4 * LUO_NAME_SIZE];
	int fd;
	uint64_t owner;		/* id of the client holding it, 0 if none */
};

enum update_phase {
	UPD_IDLE,
	UPD_SYNCING,	/* sync() running in a child */
	UPD_SETTLING,	/* waiting for preserved files to settle */
	UPD_PREPARING,	/* PREPARE sent, waiting for READY */
	UPD_FINAL_SYNC,	/* all READY: sync() again, in a child */
};

static const char * const phase_names[] = {
	[UPD_IDLE] = "idle",
	[UPD_SYNCING] = "syncing",
	[UPD_SETTLING] = "settling",
	[UPD_PREPARING] = "preparing",
	[UPD_FINAL_SYNC] = "final-sync",
};

static int dev = -1, lsock = -1;
/* Kept open to accept-and-close a connection when out of fds. */
static int spare_fd = -1;
/* Signals luod handles: blocked but while it waits in ppoll(). */
static sigset_t wait_mask;
static long long accept_paused_until;
/*
 * Open fds: base_fds (stdio, the device, the listener, the spare...,
 * counted at start), and one per connection, session, fd in a reply
 * queue, and the sync pipe.  Never let them reach nofile - FD_RESERVE.
 */
static unsigned long long base_fds, queued_fds, nofile = 1024;
static const char *sock_path = DEFAULT_SOCKET;
static int timeout_ms = 10000;
/* Every connection, allocated one by one: pointers stay valid. */
static struct conn **conns;
static size_t nr_conns, conns_size;
static struct session *sessions;
static size_t nr_sessions;
static uint64_t next_id = 1;
/* Update in progress: id of the connection that asked, 0 if none. */
static uint64_t updater;
static enum update_phase phase;
static long long deadline;
/* The sync() child: its pid, and a pipe that reads EOF when it is done. */
static pid_t sync_pid;
static int sync_pipe = -1;
/* How often to ask the kernel whether the preserved files have settled. */
#define SETTLE_POLL_MS	20
static volatile sig_atomic_t stop;

static __printf(1, 2) void logmsg(const char *fmt, ...)
{
	va_list ap;

	fputs("luod: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/*
 * A flood of bad requests must neither drown the log nor block luod on a
 * slow stdout: LOG_BURST refusals a second, then only a count.
 */
static long long log_window;
static unsigned int log_count, log_suppressed;
/* Connections refused for lack of fds, not logged yet. */
static unsigned int fd_refusals;

static void log_window_roll(void)
{
	long long now = now_ms();

	if (now - log_window < 1000)
		return;
	if (log_suppressed)
		logmsg("%u more refusal(s) in the last second, not logged",
		       log_suppressed);
	if (fd_refusals)
		logmsg("out of file descriptors: refused %u connection(s) in the last second",
		       fd_refusals);
	fd_refusals = 0;
	log_window = now;
	log_count = 0;
	log_suppressed = 0;
}

static bool log_allowed(void)
{
	log_window_roll();
	if (log_count < LOG_BURST) {
		log_count++;
		return true;
	}
	log_suppressed++;
	return false;
}

/*
 * Copy @src into @dst (@size bytes, NUL-terminated) so that it cannot
 * break a line of the protocol: a byte outside 0x20..0x7e, or a backslash,
 * becomes \xHH, and so does a space if @field (a STATUS key=value).  Stops
 * before an escape that would not fit.
 */
static void escape(char *dst, size_t size, const char *src, bool field)
{
	size_t len = 0;

	for (; *src; src++) {
		unsigned char c = *src;
		bool plain = c > 0x20 && c < 0x7f && c != '\\';

		if (c == ' ' && !field)
			plain = true;
		if (len + (plain ? 1 : 4) >= size)
			break;
		if (plain)
			dst[len++] = c;
		else
			len += sprintf(dst + len, "\\x%02x", c);
	}
	dst[len] = '\0';
}

static bool fds_short(void)
{
	unsigned long long open = base_fds + nr_conns + nr_sessions +
				  queued_fds + (sync_pipe >= 0);

	return open + FD_RESERVE >= nofile;
}

static struct conn *conn_by_id(uint64_t id)
{
	size_t i;

	for (i = 0; id && i < nr_conns; i++)
		if (conns[i]->id == id && !conns[i]->dead)
			return conns[i];
	return NULL;
}

/* ---- output queues ---- */

static size_t queued(const struct conn *c)
{
	return c->tail - c->head;
}

static void conn_drop(struct conn *c, const char *why)
{
	if (c->dead)
		return;
	logmsg("pid %d: %s: dropping its connection", (int)c->pid, why);
	c->dead = true;
}

/*
 * Send what the kernel takes of @c's queue, never blocking.  An fd goes
 * with the first byte of its reply, so a send stops before each fd.
 */
static void out_flush(struct conn *c)
{
	while (!c->dead && c->head < c->tail) {
		size_t end = c->tail;
		int fd = -1;
		ssize_t n;

		if (c->nr_fds && c->fds[0].pos == c->head) {
			fd = c->fds[0].fd;
			if (c->nr_fds > 1)
				end = c->fds[1].pos;
		} else if (c->nr_fds) {
			end = c->fds[0].pos;
		}
		n = luo_send_fd_some(c->fd, fd, c->out + c->head,
				     end - c->head, MSG_DONTWAIT);
		if (n == -EAGAIN)
			return;		/* poll() says when it drains */
		if (n < 0) {
			if (n != -EPIPE && n != -ECONNRESET)
				logmsg("pid %d: send: %s", (int)c->pid,
				       strerror(-n));
			c->dead = true;
			return;
		}
		if (fd >= 0) {
			close(fd);
			queued_fds--;
			memmove(c->fds, c->fds + 1,
				--c->nr_fds * sizeof(*c->fds));
		}
		c->head += n;
		if (c->prepare_at != NO_PREPARE && c->head > c->prepare_at)
			c->prepare_at = NO_PREPARE;	/* sent, at least some */
	}
	if (c->head == c->tail) {
		c->head = 0;
		c->tail = 0;
		/* Give back what a burst (a long STATUS) took. */
		if (c->size > OUT_PAUSE) {
			free(c->out);
			c->out = NULL;
			c->size = 0;
		}
	}
}

/* Make room for @len more bytes in @c's queue. */
static bool out_room(struct conn *c, size_t len)
{
	size_t i, need;
	char *buf;

	if (c->head && c->tail + len > c->size) {
		memmove(c->out, c->out + c->head, queued(c));
		for (i = 0; i < c->nr_fds; i++)
			c->fds[i].pos -= c->head;
		if (c->prepare_at != NO_PREPARE)
			c->prepare_at -= c->head;
		c->tail -= c->head;
		c->head = 0;
	}
	need = c->tail + len;
	if (need <= c->size)
		return true;
	if (need < 2 * c->size)
		need = 2 * c->size;
	if (need < 1024)
		need = 1024;
	buf = realloc(c->out, need);
	if (!buf)
		return false;
	c->out = buf;
	c->size = need;
	return true;
}

/*
 * Queue @len bytes for @c, with @fd (owned by the queue from now on: it is
 * closed once sent or dropped) attached to the first, and send what can
 * be sent.  A client that lets too much pile up is dropped, unless the
 * line is luod's own (@flags OUT_OWN): it did not ask for those.
 */
static bool out_add(struct conn *c, const char *data, size_t len, int fd,
		    unsigned int flags)
{
	struct out_fd *fds;
	bool ok = false;

	if (c->dead)
		goto out;
	if (!(flags & OUT_OWN) && queued(c) > OUT_MAX) {
		conn_drop(c, "does not read its replies (over 1 MiB waiting)");
		goto out;
	}
	if (!out_room(c, len))
		goto nomem;
	if (fd >= 0) {
		fds = realloc(c->fds, (c->nr_fds + 1) * sizeof(*fds));
		if (!fds)
			goto nomem;
		c->fds = fds;
		fds[c->nr_fds].pos = c->tail;
		fds[c->nr_fds++].fd = fd;
		queued_fds++;
		fd = -1;
	}
	if (flags & OUT_PREPARE)
		c->prepare_at = c->tail;
	memcpy(c->out + c->tail, data, len);
	c->tail += len;
	out_flush(c);
	ok = !c->dead;
	goto out;
nomem:
	conn_drop(c, "out of memory for its replies");
out:
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Queue one line, escaped, with @fd (owned, as for out_add()) attached. */
static __printf(3, 4) bool send_fd_line(struct conn *c, int fd,
					 const char *fmt, ...)
{
	char raw[LINE_SIZE], line[LINE_SIZE];
	va_list ap;
	size_t len;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	escape(line, sizeof(line) - 1, raw, false);
	len = strlen(line);
	line[len++] = '\n';
	return out_add(c, line, len, fd, 0);
}

#define reply(c, ...)	send_fd_line(c, -1, __VA_ARGS__)

/*
 * Send @c PREPARE, or CANCEL if !@prepare.  A CANCEL takes back a PREPARE
 * still wholly queued instead: a client that reads slowly must not find
 * a PREPARE/CANCEL pair per update another client started and cancelled.
 */
static bool notify(struct conn *c, bool prepare)
{
	static const char prep[] = "PREPARE\n", cancel[] = "CANCEL\n";
	size_t at = c->prepare_at, len = sizeof(prep) - 1, i;

	if (prepare)
		return out_add(c, prep, len, -1, OUT_OWN | OUT_PREPARE);
	if (at == NO_PREPARE || c->dead)
		return out_add(c, cancel, sizeof(cancel) - 1, -1, OUT_OWN);
	memmove(c->out + at, c->out + at + len, c->tail - at - len);
	c->tail -= len;
	for (i = 0; i < c->nr_fds; i++)
		if (c->fds[i].pos > at)
			c->fds[i].pos -= len;
	c->prepare_at = NO_PREPARE;
	return true;
}

/* Refuse a request: ERR MESSAGE to @c, and the reason in the log. */
static __printf(2, 3) void reject(struct conn *c, const char *fmt, ...)
{
	char msg[LINE_SIZE], esc[LINE_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_allowed()) {
		escape(esc, sizeof(esc), msg, false);
		logmsg("pid %d: refused: %s", (int)c->pid, esc);
	}
	reply(c, "ERR %s", msg);
}

/* The names of the sessions @c holds, for messages. */
static const char *held_by(const struct conn *c)
{
	static char buf[256];
	size_t i, len = 0;

	buf[0] = '\0';
	for (i = 0; i < nr_sessions; i++) {
		if (sessions[i].owner != c->id)
			continue;
		len += snprintf(buf + len, sizeof(buf) - len, "%s%s",
				len ? "," : "", sessions[i].shown);
		if (len >= sizeof(buf) - 1)
			break;
	}
	return len ? buf : "none";
}

static struct session *find_session(const char *name)
{
	size_t i;

	for (i = 0; i < nr_sessions; i++)
		if (!strcmp(sessions[i].name, name))
			return &sessions[i];
	return NULL;
}

static struct session *add_session(const char *name, int fd)
{
	struct session *s = realloc(sessions,
				    (nr_sessions + 1) * sizeof(*sessions));

	if (!s)
		return NULL;
	sessions = s;
	s = &sessions[nr_sessions++];
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	escape(s->shown, sizeof(s->shown), s->name, true);
	s->fd = fd;
	return s;
}

static void remove_session(struct session *s)
{
	size_t i = s - sessions;

	close(s->fd);
	memmove(s, s + 1, (nr_sessions - i - 1) * sizeof(*s));
	nr_sessions--;
}

/* ---- updates ---- */

/* Give up the update in progress: CANCEL the clients, tell the requester. */
static __printf(1, 2) void update_fail(const char *fmt, ...)
{
	struct conn *req = conn_by_id(updater);
	char msg[LINE_SIZE - 8];
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	logmsg("update cancelled: %s", msg);
	for (i = 0; i < nr_conns; i++) {
		struct conn *c = conns[i];

		if (c->prep == PREP_NONE)
			continue;
		c->prep = PREP_NONE;
		notify(c, false);
	}
	updater = 0;
	phase = UPD_IDLE;
	if (req)
		reply(req, "ERR %s", msg);
}

static const char *reboot_error(int err)
{
	switch (err) {
	case -EINVAL:
	case -ENOENT:
		return "no kernel is loaded: load one with 'luoctl load KERNEL [INITRD]'";
	case -EOPNOTSUPP:
		return "the loaded image cannot carry the handover state: use 'luoctl load'";
	case -EPERM:
		return "not permitted (luod needs CAP_SYS_BOOT)";
	case -EBUSY:
		return "kexec is busy (another reboot in progress?)";
	}
	return "could not freeze a preserved file or write the handover state (see the kernel log)";
}

static void do_reboot(void)
{
	size_t i;
	int ret;

	for (i = 0; i < nr_sessions; i++) {
		unsigned int kind = 0;

		if (!luo_query(sessions[i].fd, &kind, NULL, 0, NULL) &&
		    kind == LIVEUPDATE_SESSION_INCOMING)
			logmsg("warning: incoming session %s was never finished: this update drops it",
			       sessions[i].shown);
	}
	logmsg("synced: rebooting into the loaded kernel");
	fflush(stdout);
	/* Synced in a child, with a time limit: never here, uninterruptibly. */
	ret = luo_kexec_jump();
	update_fail("the kexec reboot failed: %s (%s)", reboot_error(ret),
		    strerror(-ret));
}

/*
 * QUERY @s: its kind, its number of files in *@count, and in *@files
 * (allocated, or NULL) the first *@filled of them.  The count can change
 * between two calls: retry a few times.  Returns 0 or -errno.
 */
static int query_files(const struct session *s, unsigned int *kind,
		       unsigned int *count,
		       struct liveupdate_file_info **files,
		       unsigned int *filled)
{
	unsigned int n = 0, i;
	int ret;

	*files = NULL;
	for (i = 0; i < 4; i++) {
		ret = luo_query(s->fd, kind, *files, n, count);
		if (ret || *count <= n)
			break;
		free(*files);
		n = *count + 4;
		*files = calloc(n, sizeof(**files));
		if (!*files) {
			ret = -ENOMEM;
			break;
		}
	}
	if (ret) {
		free(*files);
		*files = NULL;
		n = 0;
	}
	*filled = *count < n ? *count : n;
	return ret;
}

/* How many outgoing files the kernel is still settling. */
static int files_settling(void)
{
	struct liveupdate_file_info *files;
	unsigned int kind, count, filled, j;
	int n = 0;
	size_t i;

	for (i = 0; i < nr_sessions; i++) {
		if (query_files(&sessions[i], &kind, &count, &files, &filled))
			continue;
		for (j = 0; kind == LIVEUPDATE_SESSION_OUTGOING && j < filled;
		     j++)
			n += files[j].state == LIVEUPDATE_FILE_SETTLING;
		free(files);
	}
	return n;
}

/*
 * Ask every client but the requester @req to prepare.  One that cannot be
 * sent PREPARE (out of memory, a send error) counts as refusing: else it
 * would not be waited for, and the reboot would catch it running.
 */
static void send_prepare(struct conn *req)
{
	int asked = 0;
	size_t i;

	phase = UPD_PREPARING;
	for (i = 0; i < nr_conns; i++) {
		struct conn *o = conns[i];

		if (o == req || !o->client || o->dead)
			continue;
		o->why[0] = '\0';
		if (notify(o, true)) {
			o->prep = PREP_ASKED;
			asked++;
		} else {
			snprintf(o->why, sizeof(o->why),
				 "it could not be sent PREPARE");
			o->prep = PREP_REFUSED;
		}
	}
	deadline = now_ms() + timeout_ms;
	logmsg("update requested by pid %d: asked %d client(s) to prepare",
	       (int)req->pid, asked);
}

/* Synced: wait for settling files first if there are any, else PREPARE. */
static void start_settling(struct conn *req)
{
	int left = files_settling();

	if (!left) {
		send_prepare(req);
		return;
	}
	phase = UPD_SETTLING;
	deadline = now_ms() + timeout_ms;
	logmsg("update requested by pid %d: waiting for %d preserved file(s) to settle first",
	       (int)req->pid, left);
}

/*
 * While settling: PREPARE once nothing is left to settle, or at the
 * deadline anyway (the reboot then waits for the rest in the kernel).
 */
static void settle_check(struct conn *req)
{
	int left = files_settling();

	if (left && now_ms() < deadline)
		return;
	if (left)
		logmsg("%d preserved file(s) still settling after %g s: going on, the reboot waits for them",
		       left, timeout_ms / 1000.0);
	send_prepare(req);
}

/*
 * Reap the sync() child if it is done; true if it is (or none runs).
 * Called every round: an update that gave up on it still reaps it.
 */
static bool sync_reap(void)
{
	char c;

	if (!sync_pid)
		return true;
	if (read(sync_pipe, &c, 1) < 0)
		return false;	/* EAGAIN: still syncing */
	/* EOF: the child closed its end by exiting, so this does not wait. */
	close(sync_pipe);
	sync_pipe = -1;
	waitpid(sync_pid, NULL, 0);
	sync_pid = 0;
	return true;
}

/*
 * In the sync() child: close every fd but @keep.  A child stuck in sync()
 * must not hold /dev/liveupdate (a restarted luod could not open it), nor
 * sessions (RELEASE and luod's exit would not drop them), nor clients'
 * sockets (their peers would never see EOF).
 */
static void close_all_but(int keep)
{
	struct rlimit rl;
	long fd, max = 65536;

	if ((!keep || !close_range(0, keep - 1, 0)) &&
	    !close_range(keep + 1, ~0U, 0))
		return;
	/* No close_range() (before Linux 5.9): every fd up to the limit. */
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY)
		max = (long)rl.rlim_cur;
	for (fd = 0; fd < max; fd++)
		if (fd != keep)
			close(fd);
}

/*
 * sync() in a child, so that luod keeps serving and can give up: a sync
 * stuck on a dead file system is uninterruptible.  The child holds the
 * write end of sync_pipe, which reads EOF when it exits.
 */
static int sync_start(void)
{
	int pfd[2], err;

	if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK))
		return -errno;
	fflush(stdout);
	sync_pid = fork();
	if (sync_pid < 0) {
		err = -errno;
		sync_pid = 0;
		close(pfd[0]);
		close(pfd[1]);
		return err;
	}
	if (!sync_pid) {
		close_all_but(pfd[1]);
		sync();
		_exit(0);
	}
	close(pfd[1]);
	sync_pipe = pfd[0];
	return 0;
}

/* While syncing: go on once sync() is done, fail at the deadline. */
static void sync_check(struct conn *req)
{
	if (sync_reap()) {
		start_settling(req);
		return;
	}
	if (now_ms() >= deadline)
		update_fail("sync() of the file systems did not finish in %g s (a hung file system?); no client was asked to prepare",
			    timeout_ms / 1000.0);
}

/*
 * Every client is READY: sync again, for what they wrote while quiescing
 * (the first sync ran before PREPARE), again in a child and for at most
 * -t: the clients are paused meanwhile.
 */
static void final_sync_start(void)
{
	int ret = sync_pid ? -EBUSY : sync_start();

	if (ret) {
		update_fail("cannot start the final sync(): %s", strerror(-ret));
		return;
	}
	phase = UPD_FINAL_SYNC;
	deadline = now_ms() + timeout_ms;
	logmsg("all clients ready: syncing what they wrote while quiescing");
}

/* While syncing the last time: reboot once sync() is done. */
static void final_sync_check(void)
{
	if (sync_reap())
		do_reboot();
	else if (now_ms() >= deadline)
		update_fail("the final sync() of the file systems, after every client was ready, did not finish in %g s (a hung file system?); the clients resume",
			    timeout_ms / 1000.0);
}

/* Has a client refused, or gone away? Then fail the update: true. */
static bool client_refused(void)
{
	size_t i;

	for (i = 0; i < nr_conns; i++) {
		struct conn *c = conns[i];

		if (c->prep != PREP_REFUSED)
			continue;
		update_fail("client pid %d (sessions %s) is not ready: %s",
			    (int)c->pid, held_by(c),
			    c->why[0] ? c->why : "no reason given");
		return true;
	}
	return false;
}

/* Called after each round of events: has the update succeeded or failed? */
static void update_check(void)
{
	char late[LINE_SIZE / 2];
	struct conn *req;
	size_t i, len = 0;
	int waiting = 0;

	if (!updater)
		return;
	req = conn_by_id(updater);
	if (!req) {
		update_fail("the requester went away");
		return;
	}
	if (phase == UPD_SYNCING) {
		sync_check(req);
		return;
	}
	if (phase == UPD_SETTLING) {
		settle_check(req);
		return;
	}
	if (client_refused())
		return;
	if (phase == UPD_FINAL_SYNC) {
		final_sync_check();
		return;
	}
	late[0] = '\0';
	for (i = 0; i < nr_conns; i++) {
		struct conn *c = conns[i];

		if (c->prep != PREP_ASKED)
			continue;
		waiting++;
		if (len < sizeof(late))
			len += snprintf(late + len, sizeof(late) - len,
					"%spid %d (sessions %s)",
					len ? ", " : "", (int)c->pid,
					held_by(c));
	}
	if (!waiting)
		final_sync_start();
	else if (now_ms() >= deadline)
		update_fail("timed out after %g s waiting for %d client(s) to get ready: %s",
			    timeout_ms / 1000.0,
			    waiting, late);
}

static void req_update(struct conn *c)
{
	int ret;

	if (updater) {
		reject(c, "an update is in progress already");
		return;
	}
	if (!sync_reap()) {
		reject(c, "the sync() of an earlier update is still running (a hung file system?)");
		return;
	}
	if (!luo_kexec_loaded()) {
		reject(c, "no kernel is loaded: load the next kernel with 'luoctl load KERNEL [INITRD]' first");
		return;
	}
	ret = sync_start();
	if (ret) {
		reject(c, "cannot start sync(): %s", strerror(-ret));
		return;
	}
	updater = c->id;
	phase = UPD_SYNCING;
	deadline = now_ms() + timeout_ms;
	logmsg("update requested by pid %d: syncing file systems first",
	       (int)c->pid);
}

static void req_cancel(struct conn *c)
{
	if (!updater) {
		reject(c, "no update in progress");
		return;
	}
	logmsg("pid %d: cancels the update", (int)c->pid);
	update_fail("cancelled by pid %d", (int)c->pid);
	reply(c, "OK cancelled");
}

/* ---- requests ---- */

/* 1..63 bytes of printable ASCII but the space: never needs escaping. */
static bool valid_name(const char *name)
{
	size_t len = strlen(name), i;

	if (!len || len >= LUO_NAME_SIZE)
		return false;
	for (i = 0; i < len; i++)
		if (name[i] <= 0x20 || name[i] >= 0x7f)
			return false;
	return true;
}

static bool check_name(struct conn *c, const char *name)
{
	if (valid_name(name))
		return true;
	reject(c, "bad session name '%.80s': 1 to %d printable ASCII characters, no space",
	       name, LUO_NAME_SIZE - 1);
	return false;
}

static void hand_session(struct conn *c, struct session *s, unsigned int kind)
{
	/* The queue owns its copy: the session may go before it is sent. */
	int fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);

	if (fd < 0) {
		reject(c, "cannot pass session %s: %s", s->name,
		       strerror(errno));
		return;
	}
	if (send_fd_line(c, fd, "OK %s", luo_kind_str(kind))) {
		s->owner = c->id;
		c->client = true;
		logmsg("pid %d: handed %s session %s", (int)c->pid,
		       luo_kind_str(kind), s->shown);
	}
}

/* A session luod holds already: hand it if @c may have it in @mode. */
static void hand_held(struct conn *c, struct session *s, bool incoming,
		      bool outgoing)
{
	struct conn *holder = conn_by_id(s->owner);
	unsigned int kind;
	int ret;

	if (holder && holder != c) {
		reject(c, "session %s is held by client pid %d", s->name,
		       (int)holder->pid);
		return;
	}
	ret = luo_query(s->fd, &kind, NULL, 0, NULL);
	if (ret) {
		reject(c, "cannot query session %s: %s", s->name,
		       strerror(-ret));
		return;
	}
	if (incoming && kind != LIVEUPDATE_SESSION_INCOMING) {
		reject(c, "session %s is not incoming (finished already, or created in this kernel)",
		       s->name);
		return;
	}
	if (outgoing && kind != LIVEUPDATE_SESSION_OUTGOING) {
		reject(c, "session %s is an incoming session from the previous kernel (ask for it with mode incoming)",
		       s->name);
		return;
	}
	hand_session(c, s, kind);
}

static void req_session(struct conn *c, const char *name, const char *mode)
{
	bool incoming = !strcmp(mode, "incoming");
	bool outgoing = !strcmp(mode, "outgoing");
	struct session *s;
	unsigned int kind;
	int ret, fd;

	if (!incoming && !outgoing && strcmp(mode, "any")) {
		reject(c, "bad mode '%.40s': any, incoming or outgoing", mode);
		return;
	}
	if (updater) {
		reject(c, "an update is in progress: try again later");
		return;
	}
	/* Each SESSION takes an fd, maybe two: keep the reserve. */
	if (fds_short()) {
		reject(c, "luod is short of file descriptors: try again later");
		return;
	}
	if (!check_name(c, name))
		return;
	s = find_session(name);
	if (s) {
		hand_held(c, s, incoming, outgoing);
		return;
	}

	/* Not retrieved at start (it was busy then?): try now. */
	kind = LIVEUPDATE_SESSION_INCOMING;
	ret = outgoing ? -ENOENT : luo_retrieve_session(dev, name, &fd);
	if (ret == -ENOENT && !incoming) {
		kind = LIVEUPDATE_SESSION_OUTGOING;
		ret = luo_create_session(dev, name, &fd);
		if (ret == -EEXIST) {
			reject(c, "session %s exists but luod does not hold it (another process does%s)",
			       name, outgoing ? ", or it is incoming" : "");
			return;
		}
	}
	if (ret == -ENOENT) {
		reject(c, "no incoming session %s", name);
		return;
	}
	if (ret) {
		reject(c, "cannot %s session %s: %s",
		       kind == LIVEUPDATE_SESSION_INCOMING ? "retrieve" : "create",
		       name, strerror(-ret));
		return;
	}
	s = add_session(name, fd);
	if (!s) {
		close(fd);
		reject(c, "out of memory");
		return;
	}
	hand_session(c, s, kind);
}

static void req_release(struct conn *c, const char *name)
{
	struct session *s;
	struct conn *holder;

	if (!check_name(c, name))
		return;
	s = find_session(name);
	if (!s) {
		reject(c, "luod holds no session %s", name);
		return;
	}
	holder = conn_by_id(s->owner);
	if (holder && holder != c) {
		reject(c, "session %s is held by client pid %d", name,
		       (int)holder->pid);
		return;
	}
	logmsg("pid %d: released session %s", (int)c->pid, name);
	remove_session(s);
	reply(c, "OK released");
}

/* A growing text buffer for STATUS. */
struct text {
	char *buf;
	size_t len, size;
	unsigned int lines;
	bool failed;
};

static __printf(2, 3) void text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	char *buf;
	int n;

	while (!t->failed) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf ? t->buf + t->len : NULL,
			      t->buf ? t->size - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (t->buf && t->len + n + 1 < t->size)
			break;
		t->size = (t->size + n + 1) * 2;
		buf = realloc(t->buf, t->size);
		if (!buf) {
			t->failed = true;
			return;
		}
		t->buf = buf;
	}
	if (t->failed)
		return;
	t->len += n;
	t->buf[t->len++] = '\n';
	t->buf[t->len] = '\0';
	t->lines++;
}

/* "EIO" for EIO: a STATUS value has no spaces. */
static const char *errno_name(int err)
{
	const char *name = strerrorname_np(err);

	return name ? name : "EUNKNOWN";
}

static void status_file(struct text *t, struct liveupdate_file_info *f)
{
	char compat[4 * sizeof(f->compatible)];

	f->compatible[sizeof(f->compatible) - 1] = '\0';
	escape(compat, sizeof(compat), (char *)f->compatible, true);
	if (f->state == LIVEUPDATE_FILE_BROKEN)
		text_add(t, "  file token=%llu state=%s compatible=%s error=%s",
			 (unsigned long long)f->token,
			 luo_file_state_str(f->state), compat,
			 errno_name(f->error));
	else
		text_add(t, "  file token=%llu state=%s compatible=%s",
			 (unsigned long long)f->token,
			 luo_file_state_str(f->state), compat);
}

static void status_session(struct text *t, const struct session *s)
{
	struct liveupdate_file_info *files;
	struct conn *holder = conn_by_id(s->owner);
	unsigned int kind = 0, count = 0, n, i;
	char client[16];
	int ret;

	if (holder)
		snprintf(client, sizeof(client), "%d", (int)holder->pid);
	else
		snprintf(client, sizeof(client), "none");
	ret = query_files(s, &kind, &count, &files, &n);
	if (ret) {
		text_add(t, "session %s kind=error files=0 client=%s error=%s",
			 s->shown, client, errno_name(-ret));
		return;
	}
	text_add(t, "session %s kind=%s files=%u client=%s", s->shown,
		 luo_kind_str(kind), count, client);
	for (i = 0; i < n; i++)
		status_file(t, &files[i]);
	free(files);
}

/*
 * The kernel's timeline of the last update, if it has one: a header line,
 * then a line per step, times in microseconds (see the README).
 */
static void status_timeline(struct text *t)
{
	struct liveupdate_timeline_step steps[64];
	unsigned int n = 0, flags = 0, i;
	char label[4 * sizeof(steps[0].label)];

	if (luo_get_timeline(dev, steps, 64, &n, &flags) || !n)
		return;
	text_add(t, "timeline previous=%s one-clock=%s",
		 flags & LIVEUPDATE_TIMELINE_PREVIOUS ? "yes" : "no",
		 flags & LIVEUPDATE_TIMELINE_ONE_CLOCK ? "yes" : "no");
	for (i = 0; i < n && i < 64; i++) {
		steps[i].label[sizeof(steps[i].label) - 1] = '\0';
		escape(label, sizeof(label), (char *)steps[i].label, true);
		text_add(t, "  step name=%s start_us=%lld end_us=%lld count=%u label=%s",
			 luo_timeline_step_str(steps[i].step),
			 (long long)steps[i].start_ns / 1000,
			 (long long)steps[i].end_ns / 1000, steps[i].count,
			 label[0] ? label : "-");
	}
}

static void req_status(struct conn *c)
{
	int clients = 0, loaded = luo_kexec_loaded();
	char head[32], path[4 * sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct text t = { 0 };
	size_t j;

	for (j = 0; j < nr_conns; j++)
		if (conns[j]->client && !conns[j]->dead)
			clients++;
	escape(path, sizeof(path), sock_path, true);
	text_add(&t, "luod pid=%d socket=%s clients=%d sessions=%zu kexec=%s update=%s connections=%zu",
		 (int)getpid(), path, clients, nr_sessions,
		 loaded < 0 ? "unknown" : loaded ? "loaded" : "not-loaded",
		 phase_names[phase], nr_conns);
	for (j = 0; j < nr_sessions; j++)
		status_session(&t, &sessions[j]);
	status_timeline(&t);
	if (t.failed) {
		free(t.buf);
		reject(c, "out of memory");
		return;
	}
	snprintf(head, sizeof(head), "OK %u\n", t.lines);
	/* Head and body in one go: the body is many lines, not escaped again. */
	if (out_add(c, head, strlen(head), -1, 0))
		out_add(c, t.buf, t.len, -1, 0);
	free(t.buf);
}

/* A client's answer to PREPARE. */
static void prep_answer(struct conn *c, const char *cmd, const char *why)
{
	size_t i;

	if (c->prep != PREP_ASKED) {
		if (log_allowed())
			logmsg("pid %d: %s with no PREPARE pending: ignored",
			       (int)c->pid, cmd);
		return;
	}
	if (cmd[0] == 'R') {
		c->prep = PREP_READY;
		logmsg("pid %d (sessions %s): ready", (int)c->pid,
		       held_by(c));
		return;
	}
	/* Goes to the log as is, and escaped into a reply: keep it plain. */
	snprintf(c->why, sizeof(c->why), "%s", why ? why : "");
	for (i = 0; c->why[i]; i++)
		if (c->why[i] < 0x20 || c->why[i] >= 0x7f)
			c->why[i] = '?';
	c->prep = PREP_REFUSED;
}

/* A control character in @line (a tab is a blank), or -1 if none. */
static int control_char(const char *line, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (((unsigned char)line[i] < 0x20 && line[i] != '\t') ||
		    line[i] == 0x7f)
			return (unsigned char)line[i];
	return -1;
}

static void handle_line(struct conn *c, char *line, size_t len)
{
	char *save = NULL, *cmd, *a1, *a2;
	int bad = control_char(line, len);

	if (bad >= 0) {
		/* A NUL would cut the request short: refuse all of it. */
		reject(c, "request holds control character 0x%02x", bad);
		return;
	}
	cmd = strtok_r(line, " \t", &save);
	if (!cmd)
		return;		/* empty lines are ignored */
	if (!strcmp(cmd, "READY") || !strcmp(cmd, "NOTREADY")) {
		prep_answer(c, cmd, strtok_r(NULL, "", &save));
		return;
	}
	a1 = strtok_r(NULL, " \t", &save);
	a2 = strtok_r(NULL, " \t", &save);
	if (!strcmp(cmd, "PING") && !a1) {
		reply(c, "OK luod %d", (int)getpid());
	} else if (!strcmp(cmd, "SESSION") && a1 &&
		   !strtok_r(NULL, " \t", &save)) {
		req_session(c, a1, a2 ? a2 : "any");
	} else if (!strcmp(cmd, "RELEASE") && a1 && !a2) {
		req_release(c, a1);
	} else if (!strcmp(cmd, "STATUS") && !a1) {
		req_status(c);
	} else if (!strcmp(cmd, "UPDATE") && !a1) {
		req_update(c);
	} else if (!strcmp(cmd, "CANCEL") && !a1) {
		req_cancel(c);
	} else {
		reject(c, "bad request '%.40s': expected PING, SESSION NAME [any|incoming|outgoing], RELEASE NAME, STATUS, UPDATE or CANCEL",
		       cmd);
	}
}

/* ---- connections ---- */

static struct conn *conn_add(int fd, const struct ucred *cred)
{
	struct conn *c, **grown;

	if (nr_conns == conns_size) {
		size_t size = conns_size ? 2 * conns_size : 64;

		grown = realloc(conns, size * sizeof(*conns));
		if (!grown)
			return NULL;
		conns = grown;
		conns_size = size;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->fd = fd;
	c->id = next_id++;
	c->prepare_at = NO_PREPARE;
	c->pid = cred->pid;
	conns[nr_conns++] = c;
	return c;
}

static void conn_free(struct conn *c)
{
	size_t i;

	for (i = 0; i < c->nr_fds; i++)
		close(c->fds[i].fd);
	queued_fds -= c->nr_fds;
	free(c->fds);
	free(c->out);
	close(c->fd);
	free(c);
}

/* Say why on a connection luod will not serve, then close it. */
static void refuse_fd(int fd, const char *why)
{
	char line[128];
	int len;

	len = snprintf(line, sizeof(line), "ERR %s\n", why);
	/* A new socket's buffer is empty: this does not block, or is lost. */
	luo_send_fd_some(fd, -1, line, len, MSG_DONTWAIT);
	close(fd);
}

/* O_PATH: needs no device, no permission, only a free fd. */
static void spare_open(void)
{
	if (spare_fd < 0)
		spare_fd = open("/", O_PATH | O_CLOEXEC);
}

/* Stop polling the listener for a moment: it would stay readable. */
static void accept_pause(void)
{
	accept_paused_until = now_ms() + ACCEPT_PAUSE_MS;
}

/*
 * Out of fds (EMFILE, ENFILE): a pending connection would keep the
 * listener readable and poll() spinning.  Give up the spare fd to accept
 * and refuse it; with no spare, stop listening for a moment.
 */
static bool accept_no_fds(int err)
{
	int fd = -1;

	if (!fd_refusals)	/* once a second, then a count */
		logmsg("out of file descriptors (%s) with %zu connections: refusing new ones",
		       strerror(err), nr_conns);
	if (spare_fd >= 0) {
		close(spare_fd);
		spare_fd = -1;
		fd = accept4(lsock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0) {
			refuse_fd(fd, "luod is out of file descriptors: try again later");
			fd_refusals++;
		}
		spare_open();
	}
	if (fd < 0 || spare_fd < 0) {
		accept_pause();
		return false;
	}
	return true;
}

/* Accept a new connection; false when there is none left to accept. */
static bool conn_accept_one(void)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	char why[80];
	int fd;

	fd = accept4(lsock, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE)
			return accept_no_fds(errno);
		if (errno == EINTR || errno == ECONNABORTED)
			return true;
		if (errno == EAGAIN)
			return false;
		/* ENOMEM, ENOBUFS, EPERM...: retrying at once would spin. */
		if (log_allowed())
			logmsg("accept: %s: pausing for %d ms", strerror(errno),
			       ACCEPT_PAUSE_MS);
		accept_pause();
		return false;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
		logmsg("refused a connection: SO_PEERCRED: %s",
		       strerror(errno));
		close(fd);
		return true;
	}
	/* The reserve is for what luod must do, not for more peers. */
	if (fds_short()) {
		if (!fd_refusals)	/* once a second, then a count */
			logmsg("out of file descriptors (limit %llu, %d kept in reserve) with %zu connections: refusing new ones",
			       nofile, FD_RESERVE, nr_conns);
		fd_refusals++;
		refuse_fd(fd, "luod is out of file descriptors: try again later");
		return true;
	}
	if (cred.uid != 0 && cred.uid != geteuid()) {
		snprintf(why, sizeof(why), "uid %u is neither root nor luod's",
			 (unsigned int)cred.uid);
		if (log_allowed())
			logmsg("refused a connection from pid %d: %s",
			       (int)cred.pid, why);
		refuse_fd(fd, "permission denied");
		return true;
	}
	if (!conn_add(fd, &cred)) {
		logmsg("refused a connection from pid %d: out of memory",
		       (int)cred.pid);
		refuse_fd(fd, "luod is out of memory");
	}
	return true;
}

static void conn_accept(void)
{
	int i;

	spare_open();	/* if reopening it failed last time */
	for (i = 0; i < ACCEPT_BATCH && conn_accept_one(); i++)
		;
}

/*
 * Too much waits for @c to read: take no more of its requests.  Fds count
 * apart: SESSION over and over would have luod dup one per reply.
 */
static bool conn_paused(const struct conn *c)
{
	return queued(c) > OUT_PAUSE || c->nr_fds > FDS_PAUSE;
}

/* Can luod take @c's next request now? */
static bool conn_readable(const struct conn *c)
{
	return !c->dead && !conn_paused(c) && c->len < sizeof(c->in);
}

/* Handle the whole lines waiting in @c's input, while its replies flow. */
/*
 * Take @c's next request, if whole.  One a call: a connection with many
 * requests waiting (a burst of STATUS, which costs ioctls) is served a
 * request per round like every other, so no client waits behind it; the
 * rest are taken in the next rounds, which poll without waiting meanwhile.
 */
static void conn_process(struct conn *c)
{
	char *nl = NULL;

	if (!c->dead && !conn_paused(c))
		nl = memchr(c->in, '\n', c->len);
	if (nl) {
		size_t used = nl - c->in + 1, len = used - 1;

		if (len && c->in[len - 1] == '\r')
			len--;
		c->in[len] = '\0';
		handle_line(c, c->in, len);
		memmove(c->in, c->in + used, c->len - used);
		c->len -= used;
	}
	if (!c->dead && c->len == sizeof(c->in) &&
	    !memchr(c->in, '\n', c->len)) {
		reject(c, "request longer than %d bytes", LINE_SIZE - 1);
		conn_drop(c, "sent an over-long line");
	}
}

static void conn_read(struct conn *c)
{
	ssize_t n;

	if (!conn_readable(c))
		return;
	n = recv(c->fd, c->in + c->len, sizeof(c->in) - c->len,
		 MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (c->len && log_allowed())
			logmsg("pid %d: closed with %zu bytes of an unfinished request: ignored",
			       (int)c->pid, c->len);
		c->dead = true;
		return;
	}
	c->len += n;
	conn_process(c);
}

/*
 * Whole requests wait in @c's input, and it may take them: reading paused
 * while its queue was long, and the queue drained.  POLLIN or POLLOUT may
 * not come to say so (its input is full, its queue empty).
 */
static bool conn_has_lines(const struct conn *c)
{
	return !c->dead && !conn_paused(c) && memchr(c->in, '\n', c->len);
}

/* @c's socket is writable (or hung up): send, then take its next lines. */
static void conn_write(struct conn *c)
{
	out_flush(c);
	conn_process(c);
}

/*
 * A client that goes away while it is part of an update fails the update:
 * mark it so that update_check() says why, and close it only after.
 */
static void conn_mark_gone(void)
{
	size_t i;

	for (i = 0; updater && i < nr_conns; i++) {
		struct conn *c = conns[i];

		if (!c->dead || c->prep == PREP_NONE ||
		    c->prep == PREP_REFUSED)
			continue;
		snprintf(c->why, sizeof(c->why), "it disconnected %s",
			 c->prep == PREP_READY ? "after READY" :
			 "before answering PREPARE");
		c->prep = PREP_REFUSED;
	}
}

static void conn_reap(void)
{
	size_t i, j, kept = 0;

	for (i = 0; i < nr_conns; i++) {
		struct conn *c = conns[i];

		if (!c->dead || (updater && c->prep != PREP_NONE)) {
			conns[kept++] = c;
			continue;
		}
		if (c->client && strcmp(held_by(c), "none"))
			logmsg("client pid %d gone; luod keeps its sessions (%s)",
			       (int)c->pid, held_by(c));
		for (j = 0; j < nr_sessions; j++)
			if (sessions[j].owner == c->id)
				sessions[j].owner = 0;
		conn_free(c);
	}
	nr_conns = kept;
}

/* ---- setup ---- */

static int adopt(const char *name, void *arg)
{
	char shown[4 * LUO_NAME_SIZE];
	int ret, fd;

	(void)arg;
	ret = luo_retrieve_session(dev, name, &fd);
	if (ret) {
		escape(shown, sizeof(shown), name, true);
		logmsg("cannot retrieve incoming session %s: %s", shown,
		       strerror(-ret));
		return 0;
	}
	if (!add_session(name, fd)) {
		close(fd);
		return -ENOMEM;
	}
	return 0;
}

static int listen_on(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd, ret;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "luod: socket path too long: %s\n", path);
		return -1;
	}
	memcpy(addr.sun_path, path, strlen(path) + 1);
	if (!lstat(path, &st)) {
		if (!S_ISSOCK(st.st_mode)) {
			fprintf(stderr, "luod: %s exists and is not a socket\n",
				path);
			return -1;
		}
		/* A luod with a full backlog makes connect() wait: bound it. */
		fd = luo_connect_timeout(path, 1000);
		if (fd >= 0 || fd == -ETIMEDOUT) {
			if (fd >= 0)
				close(fd);
			fprintf(stderr, "luod: another luod is listening on %s\n",
				path);
			return -1;
		}
		unlink(path);	/* stale, from a luod that died */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		perror("luod: socket");
		return -1;
	}
	old = umask(077);
	ret = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old);
	if (ret || listen(fd, SOMAXCONN)) {
		fprintf(stderr, "luod: cannot listen on %s: %s\n", path,
			strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void print_usage(FILE *f)
{
	fprintf(f,
		"usage: luod [-s SOCKET] [-t SECONDS]\n"
		"  -s SOCKET   listen on SOCKET (default %s)\n"
		"  -t SECONDS  how long UPDATE waits for sync(), for settling files\n"
		"              and for clients to get ready, each (default 10)\n",
		DEFAULT_SOCKET);
}

/* Every connection costs an fd: take all the fds the hard limit allows. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl)) {
		logmsg("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			logmsg("cannot raise RLIMIT_NOFILE to %llu: %s",
			       (unsigned long long)rl.rlim_max,
			       strerror(errno));
	}
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	nofile = rl.rlim_cur == RLIM_INFINITY ? ~0ULL >> 1 : rl.rlim_cur;
	logmsg("up to %llu open files", nofile);
}

/*
 * The fds open before serving, but the sessions (counted apart): stdio,
 * the device, the listener, the spare, and whatever luod inherited.
 */
static void count_base_fds(void)
{
	struct dirent *d;
	DIR *dir;

	base_fds = 6;	/* stdio, dev, lsock, spare_fd: a guess if no /proc */
	dir = opendir("/proc/self/fd");
	if (!dir)
		return;
	base_fds = 0;
	while ((d = readdir(dir)))
		base_fds += d->d_name[0] != '.';
	closedir(dir);
	base_fds -= 1 + nr_sessions;	/* the directory's own fd */
}

static int parse_args(int argc, char **argv)
{
	int opt;

	while ((opt = getopt(argc, argv, "s:t:h")) != -1) {
		char *end;
		double t;

		switch (opt) {
		case 's':
			sock_path = optarg;
			break;
		case 't':
			t = strtod(optarg, &end);
			/* Written so that NaN fails too; 0 would mean no wait. */
			if (end == optarg || *end || !(t >= 0.001 && t <= 86400))
				return 2;
			timeout_ms = (int)(t * 1000 + 0.5);
			break;
		case 'h':
			print_usage(stdout);
			exit(0);
		default:
			return 2;
		}
	}
	return optind == argc ? 0 : 2;
}

static int open_device(void)
{
	dev = luo_open();
	if (dev >= 0)
		return 0;
	if (dev == -ENOENT)
		fprintf(stderr, "luod: %s does not exist: live update is off (boot with liveupdate=on and KHO enabled)\n",
			LUO_DEVICE);
	else if (dev == -EBUSY)
		fprintf(stderr, "luod: %s is busy: another agent (luod?) has it open\n",
			LUO_DEVICE);
	else
		fprintf(stderr, "luod: cannot open %s: %s%s\n", LUO_DEVICE,
			strerror(-dev), dev == -EPERM || dev == -EACCES ?
			" (needs CAP_SYS_ADMIN)" : "");
	return -1;
}

static void adopt_incoming(void)
{
	char names[256];
	size_t j, len = 0;
	int ret;

	ret = luo_walk_sessions(dev, adopt, NULL);
	if (ret == -ENOTTY)
		logmsg("this kernel cannot list incoming sessions: they are retrieved when asked for");
	else if (ret)
		logmsg("cannot list incoming sessions: %s", strerror(-ret));
	if (!nr_sessions)
		return;
	names[0] = '\0';
	for (j = 0; j < nr_sessions && len < sizeof(names); j++)
		len += snprintf(names + len, sizeof(names) - len, " %s",
				sessions[j].shown);
	logmsg("%zu incoming session(s) from the previous kernel:%s",
	       nr_sessions, names);
}

/* Fill @pfds (room for nr_conns + 2) for this round; returns the count. */
static int poll_setup(struct pollfd *pfds, int *wait)
{
	long long now = now_ms();
	size_t i;
	int n = 0;

	*wait = -1;
	/* Slot 0: the listener, unless paused for lack of fds. */
	pfds[n].fd = now < accept_paused_until ? -1 : lsock;
	pfds[n++].events = POLLIN;
	if (now < accept_paused_until)
		*wait = (int)(accept_paused_until - now);
	/* Slot 1: the sync() child's pipe. */
	pfds[n].fd = sync_pipe;
	pfds[n++].events = POLLIN;
	for (i = 0; i < nr_conns; i++) {
		struct conn *c = conns[i];

		pfds[n].fd = c->dead ? -1 : c->fd;
		pfds[n].events = (conn_readable(c) ? POLLIN : 0) |
				 (queued(c) ? POLLOUT : 0);
		n++;
		if (conn_has_lines(c))
			*wait = 0;	/* serve() takes them after polling */
	}
	if (updater && *wait) {
		long long left = deadline - now;
		int w = left > 0 ? (int)left : 0;

		if (phase == UPD_SETTLING && w > SETTLE_POLL_MS)
			w = SETTLE_POLL_MS;
		if (*wait < 0 || w < *wait)
			*wait = w;
	}
	/* To say how many refusals were not logged. */
	if ((log_suppressed || fd_refusals) && (*wait < 0 || *wait > 1000))
		*wait = 1000;
	return n;
}

static void serve(void)
{
	struct pollfd *pfds = NULL, *grown;
	size_t room = 0, i, polled;
	struct timespec ts;
	int n, wait, ret;

	while (!stop) {
		if (room < nr_conns + 2) {
			room = 2 * (nr_conns + 2);
			grown = realloc(pfds, room * sizeof(*pfds));
			if (!grown) {
				logmsg("out of memory for %zu connections",
				       nr_conns);
				break;
			}
			pfds = grown;
		}
		n = poll_setup(pfds, &wait);
		/* Connections accepted in this round are polled in the next. */
		polled = nr_conns;
		ts.tv_sec = wait / 1000;
		ts.tv_nsec = wait % 1000 * 1000000L;
		/* Signals are unblocked only in there: none is missed. */
		ret = ppoll(pfds, n, wait < 0 ? NULL : &ts, &wait_mask);
		if (ret < 0 && errno != EINTR) {
			perror("luod: poll");
			break;
		}
		for (i = 0; ret > 0 && i < polled; i++) {
			short ev = pfds[i + 2].revents;

			if (ev & (POLLIN | POLLHUP | POLLERR))
				conn_read(conns[i]);
			if (ev & (POLLOUT | POLLHUP | POLLERR))
				conn_write(conns[i]);
		}
		for (i = 0; i < polled; i++)
			if (conn_has_lines(conns[i]))
				conn_process(conns[i]);
		if (ret > 0 && pfds[0].revents)
			conn_accept();
		log_window_roll();
		sync_reap();
		conn_mark_gone();
		update_check();
		conn_reap();
	}
	free(pfds);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t block;
	size_t j;

	if (parse_args(argc, argv)) {
		print_usage(stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: ppoll() returns */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* Delivered only in ppoll(), after the check of stop. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &wait_mask);
	sigdelset(&wait_mask, SIGTERM);
	sigdelset(&wait_mask, SIGINT);
	raise_nofile();
	if (open_device())
		return 1;
	adopt_incoming();
	spare_open();
	lsock = listen_on(sock_path);
	if (lsock < 0)
		return 1;
	count_base_fds();
	logmsg("listening on %s (update timeout %g s)", sock_path,
	       timeout_ms / 1000.0);

	serve();

	logmsg("exiting: sessions no client holds are dropped");
	unlink(sock_path);
	for (j = 0; j < nr_conns; j++)
		conn_free(conns[j]);
	free(conns);
	for (j = 0; j < nr_sessions; j++)
		close(sessions[j].fd);
	free(sessions);
	if (spare_fd >= 0)
		close(spare_fd);
	close(lsock);
	close(dev);
	return 0;
}
