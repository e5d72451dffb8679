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
 * Protocol: lines of text, '\n'-terminated, at most 511 bytes.  A
 * connection carries any number of requests, answered in order, each by one
 * line starting with "OK" or "ERR" (the rest of an ERR line is a message for
 * humans).  Requests:
 *
 *   PING                 -> OK luod PID
 *   SESSION NAME [MODE]  -> OK outgoing|incoming, with the session fd
 *                           attached to the reply (SCM_RIGHTS)
 *	MODE "any" (default): the incoming session NAME if the previous
 *	kernel preserved one, else luod's outgoing session NAME, created if
 *	needed.  "incoming": only an incoming one.  "outgoing": never an
 *	incoming one.  NAME is 1..63 non-blank bytes.  A session held by
 *	another connected client is refused.  The connection becomes a
 *	*client*: it takes part in updates (below) until it closes.
 *   RELEASE NAME         -> OK released: luod closes its fd of NAME (the
 *                           session goes away once nobody holds it)
 *   STATUS               -> OK N, then N lines:
 *	luod pid=P socket=PATH clients=C sessions=S kexec=loaded|not-loaded|
 *	     unknown update=idle|settling|preparing
 *	session NAME kind=outgoing|incoming|error files=F client=PID|none
 *	  file token=T state=STATE compatible=STRING [error=ERRNO]
 *   UPDATE               -> ERR MESSAGE, or never answers: the machine
 *                           kexecs into the loaded kernel
 *	luod refuses at once if no kernel is loaded.  Otherwise it first
 *	waits, up to -t SECONDS, while the kernel is still settling a
 *	preserved file (QUERY state "settling": a memfd moving pages out of
 *	the memory the next kernel boots from), which the reboot would wait
 *	for with every client paused.  Then it sends
 *	"PREPARE" to every client (except the connection asking), and waits
 *	up to -t SECONDS (default 10) for each to answer "READY": a client
 *	must then be quiescent, its state in its preserved files.  When all
 *	are ready it calls reboot(LINUX_REBOOT_CMD_KEXEC).  If a client
 *	answers "NOTREADY [WHY]", does not answer in time, or disconnects,
 *	or if the reboot fails, or the requester disconnects, luod sends
 *	"CANCEL" to the clients it asked and replies ERR to the requester.
 *   READY, NOTREADY [WHY] are a client's answers to PREPARE: no reply.
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
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tools.h"
#include "libluo.h"

#define DEFAULT_SOCKET	"/run/luod.sock"
#define MAX_CONNS	64
#define LINE_SIZE	512

enum prep {
	PREP_NONE,	/* not part of the update in progress */
	PREP_ASKED,	/* sent PREPARE, waiting */
	PREP_READY,
	PREP_REFUSED,	/* answered NOTREADY */
};

struct conn {
	int fd;			/* -1: free slot */
	unsigned int id;	/* never reused, unlike fds and slots */
	pid_t pid;
	char in[LINE_SIZE];
	size_t len;
	bool client;		/* was handed a session */
	bool dead;		/* to be closed at the end of this round */
	enum prep prep;
	char why[128];		/* NOTREADY reason */
};

struct session {
	char name[LUO_NAME_SIZE];
	int fd;
	unsigned int owner;	/* id of the client holding it, 0 if none */
};

static int dev = -1, lsock = -1;
static const char *sock_path = DEFAULT_SOCKET;
static int timeout_ms = 10000;
static struct conn conns[MAX_CONNS];
static struct session *sessions;
static size_t nr_sessions;
static unsigned int next_id = 1;
/* Update in progress: id of the connection that asked, 0 if none. */
static unsigned int updater;
/* The update waits for preserved files to settle before PREPARE. */
static bool settling;
static long long deadline;
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

static struct conn *conn_by_id(unsigned int id)
{
	int i;

	for (i = 0; id && i < MAX_CONNS; i++)
		if (conns[i].fd >= 0 && conns[i].id == id && !conns[i].dead)
			return &conns[i];
	return NULL;
}

/* Send one line, with @fd attached if >= 0; a client that fails is dropped. */
static __printf(3, 4) bool send_fd_line(struct conn *c, int fd,
					 const char *fmt, ...)
{
	char buf[LINE_SIZE];
	va_list ap;
	int len, ret;

	if (c->dead)
		return false;
	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (len < 0)
		len = 0;
	if ((size_t)len > sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';
	ret = luo_send_fd(c->fd, fd, buf, len);
	if (ret) {
		logmsg("pid %d: send failed (%s): dropping it", (int)c->pid,
		       strerror(-ret));
		c->dead = true;
		return false;
	}
	return true;
}

#define reply(c, ...)	send_fd_line(c, -1, __VA_ARGS__)

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
				len ? "," : "", sessions[i].name);
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
	int i;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	logmsg("update cancelled: %s", msg);
	for (i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &conns[i];

		if (c->fd < 0 || c->prep == PREP_NONE)
			continue;
		c->prep = PREP_NONE;
		reply(c, "CANCEL");
	}
	updater = 0;
	settling = false;
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
			       sessions[i].name);
	}
	logmsg("all clients ready: rebooting into the loaded kernel");
	fflush(stdout);
	ret = luo_kexec_reboot();
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

/* Ask every client but the requester @req to prepare. */
static void send_prepare(struct conn *req)
{
	int i, asked = 0;

	for (i = 0; i < MAX_CONNS; i++) {
		struct conn *o = &conns[i];

		if (o->fd < 0 || o == req || !o->client || o->dead)
			continue;
		o->why[0] = '\0';
		if (reply(o, "PREPARE")) {
			o->prep = PREP_ASKED;
			asked++;
		}
	}
	deadline = now_ms() + timeout_ms;
	logmsg("update requested by pid %d: asked %d client(s) to prepare",
	       (int)req->pid, asked);
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
		logmsg("%d preserved file(s) still settling after %d.%d s: going on, the reboot waits for them",
		       left, timeout_ms / 1000, timeout_ms % 1000 / 100);
	settling = false;
	send_prepare(req);
}

/* Called after each round of events: has the update succeeded or failed? */
static void update_check(void)
{
	char late[LINE_SIZE / 2];
	struct conn *req;
	size_t len = 0;
	int i, waiting = 0;

	if (!updater)
		return;
	req = conn_by_id(updater);
	if (!req) {
		update_fail("the requester went away");
		return;
	}
	if (settling) {
		settle_check(req);
		return;
	}
	late[0] = '\0';
	for (i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &conns[i];

		if (c->fd < 0 || c->prep == PREP_NONE)
			continue;
		if (c->prep == PREP_REFUSED) {
			update_fail("client pid %d (sessions %s) is not ready: %s",
				    (int)c->pid, held_by(c),
				    c->why[0] ? c->why : "no reason given");
			return;
		}
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
		do_reboot();
	else if (now_ms() >= deadline)
		update_fail("timed out after %d.%d s waiting for %d client(s) to get ready: %s",
			    timeout_ms / 1000, timeout_ms % 1000 / 100,
			    waiting, late);
}

static void req_update(struct conn *c)
{
	int loaded, left;

	if (updater) {
		reply(c, "ERR an update is in progress already");
		return;
	}
	loaded = luo_kexec_loaded();
	if (!loaded) {
		reply(c, "ERR no kernel is loaded: load the next kernel with 'luoctl load KERNEL [INITRD]' first");
		return;
	}
	updater = c->id;
	left = files_settling();
	if (!left) {
		send_prepare(c);
		return;
	}
	settling = true;
	deadline = now_ms() + timeout_ms;
	logmsg("update requested by pid %d: waiting for %d preserved file(s) to settle first",
	       (int)c->pid, left);
}

/* ---- requests ---- */

static bool valid_name(const char *name)
{
	size_t len = strlen(name), i;

	if (!len || len >= LUO_NAME_SIZE)
		return false;
	for (i = 0; i < len; i++)
		if (!isgraph((unsigned char)name[i]))
			return false;
	return true;
}

static void hand_session(struct conn *c, struct session *s, unsigned int kind)
{
	if (send_fd_line(c, s->fd, "OK %s", luo_kind_str(kind))) {
		s->owner = c->id;
		c->client = true;
		logmsg("pid %d: handed %s session %s", (int)c->pid,
		       luo_kind_str(kind), s->name);
	}
}

static void req_session(struct conn *c, const char *name, const char *mode)
{
	bool incoming = !strcmp(mode, "incoming");
	bool outgoing = !strcmp(mode, "outgoing");
	struct session *s;
	unsigned int kind;
	int ret, fd;

	if (!incoming && !outgoing && strcmp(mode, "any")) {
		reply(c, "ERR bad mode '%s': any, incoming or outgoing", mode);
		return;
	}
	if (updater) {
		reply(c, "ERR an update is in progress: try again later");
		return;
	}
	if (!valid_name(name)) {
		reply(c, "ERR bad session name: 1 to %d non-blank bytes",
		      LUO_NAME_SIZE - 1);
		return;
	}
	s = find_session(name);
	if (s) {
		struct conn *holder = conn_by_id(s->owner);

		if (holder && holder != c) {
			reply(c, "ERR session %s is held by client pid %d",
			      name, (int)holder->pid);
			return;
		}
		ret = luo_query(s->fd, &kind, NULL, 0, NULL);
		if (ret) {
			reply(c, "ERR cannot query session %s: %s", name,
			      strerror(-ret));
			return;
		}
		if (incoming && kind != LIVEUPDATE_SESSION_INCOMING) {
			reply(c, "ERR session %s is not incoming (finished already, or created in this kernel)",
			      name);
			return;
		}
		if (outgoing && kind != LIVEUPDATE_SESSION_OUTGOING) {
			reply(c, "ERR session %s is an incoming session from the previous kernel (ask for it with mode incoming)",
			      name);
			return;
		}
		hand_session(c, s, kind);
		return;
	}

	/* Not retrieved at start (it was busy then?): try now. */
	kind = LIVEUPDATE_SESSION_INCOMING;
	ret = outgoing ? -ENOENT : luo_retrieve_session(dev, name, &fd);
	if (ret == -ENOENT && !incoming) {
		kind = LIVEUPDATE_SESSION_OUTGOING;
		ret = luo_create_session(dev, name, &fd);
		if (ret == -EEXIST) {
			reply(c, "ERR session %s exists but luod does not hold it (another process does%s)",
			      name, outgoing ? ", or it is incoming" : "");
			return;
		}
	}
	if (ret == -ENOENT) {
		reply(c, "ERR no incoming session %s", name);
		return;
	}
	if (ret) {
		reply(c, "ERR cannot %s session %s: %s",
		      kind == LIVEUPDATE_SESSION_INCOMING ? "retrieve" : "create",
		      name, strerror(-ret));
		return;
	}
	s = add_session(name, fd);
	if (!s) {
		close(fd);
		reply(c, "ERR out of memory");
		return;
	}
	hand_session(c, s, kind);
}

static void req_release(struct conn *c, const char *name)
{
	struct session *s = find_session(name);
	struct conn *holder;

	if (!s) {
		reply(c, "ERR luod holds no session %s", name);
		return;
	}
	holder = conn_by_id(s->owner);
	if (holder && holder != c) {
		reply(c, "ERR session %s is held by client pid %d", name,
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
};

static __printf(2, 3) void text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf ? t->buf + t->len : NULL,
			      t->buf ? t->size - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (t->buf && t->len + n + 1 < t->size)
			break;
		t->size = (t->size + n + 1) * 2;
		t->buf = realloc(t->buf, t->size);
		if (!t->buf) {
			t->size = 0;
			t->len = 0;
			return;
		}
	}
	t->len += n;
	t->buf[t->len++] = '\n';
	t->buf[t->len] = '\0';
	t->lines++;
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
			 s->name, client, strerror(-ret));
		return;
	}
	text_add(t, "session %s kind=%s files=%u client=%s", s->name,
		 luo_kind_str(kind), count, client);
	for (i = 0; i < n; i++) {
		struct liveupdate_file_info *f = &files[i];

		f->compatible[sizeof(f->compatible) - 1] = '\0';
		if (f->state == LIVEUPDATE_FILE_BROKEN)
			text_add(t, "  file token=%llu state=%s compatible=%s error=%s",
				 (unsigned long long)f->token,
				 luo_file_state_str(f->state),
				 (char *)f->compatible, strerror(f->error));
		else
			text_add(t, "  file token=%llu state=%s compatible=%s",
				 (unsigned long long)f->token,
				 luo_file_state_str(f->state),
				 (char *)f->compatible);
	}
	free(files);
}

static void req_status(struct conn *c)
{
	struct text t = { 0 };
	int clients = 0, loaded = luo_kexec_loaded(), i;
	size_t j;
	char head[32];

	for (i = 0; i < MAX_CONNS; i++)
		if (conns[i].fd >= 0 && conns[i].client && !conns[i].dead)
			clients++;
	text_add(&t, "luod pid=%d socket=%s clients=%d sessions=%zu kexec=%s update=%s",
		 (int)getpid(), sock_path, clients, nr_sessions,
		 loaded < 0 ? "unknown" : loaded ? "loaded" : "not-loaded",
		 !updater ? "idle" : settling ? "settling" : "preparing");
	for (j = 0; j < nr_sessions; j++)
		status_session(&t, &sessions[j]);
	if (!t.buf) {
		reply(c, "ERR out of memory");
		return;
	}
	snprintf(head, sizeof(head), "OK %u\n", t.lines);
	/* The body can exceed a line: send it in one go after the head. */
	if (luo_send_fd(c->fd, -1, head, strlen(head)) ||
	    luo_send_fd(c->fd, -1, t.buf, t.len))
		c->dead = true;
	free(t.buf);
}

static void handle_line(struct conn *c, char *line)
{
	char *save = NULL, *cmd, *a1, *a2, *rest;

	cmd = strtok_r(line, " \t", &save);
	if (!cmd)
		return;		/* empty lines are ignored */
	if (!strcmp(cmd, "READY") || !strcmp(cmd, "NOTREADY")) {
		if (c->prep != PREP_ASKED) {
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
		rest = strtok_r(NULL, "", &save);
		snprintf(c->why, sizeof(c->why), "%s", rest ? rest : "");
		c->prep = PREP_REFUSED;
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
	} else {
		reply(c, "ERR bad request '%.40s': expected PING, SESSION NAME [any|incoming|outgoing], RELEASE NAME, STATUS or UPDATE",
		      cmd);
	}
}

/* ---- connections ---- */

static void conn_accept(void)
{
	struct timeval tv = { .tv_sec = 2 };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct conn *c = NULL;
	int fd, i;

	fd = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len)) {
		close(fd);
		return;
	}
	if (cred.uid != 0 && cred.uid != geteuid()) {
		luo_send_line(fd, "ERR permission denied");
		close(fd);
		return;
	}
	/* A client that stops reading is dropped instead of blocking luod. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	for (i = 0; i < MAX_CONNS; i++) {
		if (conns[i].fd < 0) {
			c = &conns[i];
			break;
		}
	}
	if (!c) {
		luo_send_line(fd, "ERR too many connections");
		close(fd);
		return;
	}
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->id = next_id++;
	c->pid = cred.pid;
}

static void conn_read(struct conn *c)
{
	ssize_t n;
	char *nl;

	n = recv(c->fd, c->in + c->len, sizeof(c->in) - c->len,
		 MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		c->dead = true;
		return;
	}
	c->len += n;
	while (!c->dead && (nl = memchr(c->in, '\n', c->len))) {
		size_t used = nl - c->in + 1;

		*nl = '\0';
		if (nl > c->in && nl[-1] == '\r')
			nl[-1] = '\0';
		handle_line(c, c->in);
		memmove(c->in, c->in + used, c->len - used);
		c->len -= used;
	}
	if (c->len == sizeof(c->in)) {
		reply(c, "ERR request too long");
		c->dead = true;
	}
}

/*
 * A client that goes away while it is part of an update fails the update:
 * mark it so that update_check() says why, and close it only after.
 */
static void conn_mark_gone(void)
{
	int i;

	for (i = 0; updater && i < MAX_CONNS; i++) {
		struct conn *c = &conns[i];

		if (c->fd < 0 || !c->dead || c->prep == PREP_NONE ||
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
	size_t j;
	int i;

	for (i = 0; i < MAX_CONNS; i++) {
		struct conn *c = &conns[i];

		if (c->fd < 0 || !c->dead || (updater && c->prep != PREP_NONE))
			continue;
		if (c->client && strcmp(held_by(c), "none"))
			logmsg("client pid %d gone; luod keeps its sessions (%s)",
			       (int)c->pid, held_by(c));
		for (j = 0; j < nr_sessions; j++)
			if (sessions[j].owner == c->id)
				sessions[j].owner = 0;
		close(c->fd);
		c->fd = -1;
	}
}

/* ---- setup ---- */

static int adopt(const char *name, void *arg)
{
	int ret, fd;

	(void)arg;
	ret = luo_retrieve_session(dev, name, &fd);
	if (ret) {
		logmsg("cannot retrieve incoming session %s: %s", name,
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
		fd = luo_connect(path);
		if (fd >= 0) {
			close(fd);
			fprintf(stderr, "luod: another luod is listening on %s\n",
				path);
			return -1;
		}
		unlink(path);	/* stale, from a luod that died */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		perror("luod: socket");
		return -1;
	}
	old = umask(077);
	ret = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old);
	if (ret || listen(fd, 16)) {
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

static __noreturn void print_usage(void)
{
	fprintf(stderr,
		"usage: luod [-s SOCKET] [-t SECONDS]\n"
		"  -s SOCKET   listen on SOCKET (default %s)\n"
		"  -t SECONDS  how long UPDATE waits for clients (default 10)\n",
		DEFAULT_SOCKET);
	exit(2);
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct pollfd pfds[MAX_CONNS + 1];
	int slot[MAX_CONNS + 1];
	size_t j;
	int opt, ret, i;

	while ((opt = getopt(argc, argv, "s:t:h")) != -1) {
		char *end;
		double t;

		switch (opt) {
		case 's':
			sock_path = optarg;
			break;
		case 't':
			t = strtod(optarg, &end);
			if (*end || t <= 0 || t > 86400)
				print_usage();
			timeout_ms = (int)(t * 1000);
			break;
		default:
			print_usage();
		}
	}
	if (optind != argc)
		print_usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;	/* no SA_RESTART: poll() returns */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	for (i = 0; i < MAX_CONNS; i++)
		conns[i].fd = -1;

	dev = luo_open();
	if (dev < 0) {
		if (dev == -ENOENT)
			fprintf(stderr, "luod: %s does not exist: live update is off (boot with liveupdate=on and KHO enabled)\n",
				LUO_DEVICE);
		else if (dev == -EBUSY)
			fprintf(stderr, "luod: %s is busy: another agent (luod?) has it open\n",
				LUO_DEVICE);
		else
			fprintf(stderr, "luod: cannot open %s: %s%s\n",
				LUO_DEVICE, strerror(-dev),
				dev == -EPERM || dev == -EACCES ?
				" (needs CAP_SYS_ADMIN)" : "");
		return 1;
	}
	ret = luo_walk_sessions(dev, adopt, NULL);
	if (ret == -ENOTTY)
		logmsg("this kernel cannot list incoming sessions: they are retrieved when asked for");
	else if (ret)
		logmsg("cannot list incoming sessions: %s", strerror(-ret));
	if (nr_sessions) {
		char names[256];
		size_t len = 0;

		names[0] = '\0';
		for (j = 0; j < nr_sessions && len < sizeof(names); j++)
			len += snprintf(names + len, sizeof(names) - len,
					" %s", sessions[j].name);
		logmsg("%zu incoming session(s) from the previous kernel:%s",
		       nr_sessions, names);
	}
	lsock = listen_on(sock_path);
	if (lsock < 0)
		return 1;
	logmsg("listening on %s (update timeout %d.%d s)", sock_path,
	       timeout_ms / 1000, timeout_ms % 1000 / 100);

	while (!stop) {
		int n = 0, wait = -1;

		pfds[n].fd = lsock;
		pfds[n++].events = POLLIN;
		for (i = 0; i < MAX_CONNS; i++) {
			if (conns[i].fd < 0 || conns[i].dead)
				continue;
			slot[n] = i;
			pfds[n].fd = conns[i].fd;
			pfds[n++].events = POLLIN;
		}
		if (updater) {
			long long left = deadline - now_ms();

			wait = left > 0 ? (int)left : 0;
			if (settling && wait > SETTLE_POLL_MS)
				wait = SETTLE_POLL_MS;
		}
		ret = poll(pfds, n, wait);
		if (ret < 0 && errno != EINTR) {
			perror("luod: poll");
			break;
		}
		for (i = 1; ret > 0 && i < n; i++)
			if (pfds[i].revents)
				conn_read(&conns[slot[i]]);
		if (ret > 0 && pfds[0].revents)
			conn_accept();
		conn_mark_gone();
		update_check();
		conn_reap();
	}

	logmsg("exiting: sessions no client holds are dropped");
	unlink(sock_path);
	for (i = 0; i < MAX_CONNS; i++)
		if (conns[i].fd >= 0)
			close(conns[i].fd);
	for (j = 0; j < nr_sessions; j++)
		close(sessions[j].fd);
	free(sessions);
	close(dev);
	return 0;
}
