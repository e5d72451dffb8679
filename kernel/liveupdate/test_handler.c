// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator test handler.
 *
 * A test-only file type, /dev/liveupdate_test, preserved by two file
 * handlers, so that kselftests can drive every path of the LUO core and
 * check the outcome: failure injection in every callback that can fail, a
 * log of the callbacks in the order they ran, and counters for leak checks.
 * The ghost handler is registered only on request, so a test can make a
 * file's handler disappear across an update.  Interface, all in
 * /sys/kernel/debug/liveupdate_test/ besides the device:
 *
 * /dev/liveupdate_test: each open() is a new test file.  read() gives
 *	"value=N\n"; write() takes one command: "value=N", "version=N",
 *	"ghost=0|1", "settling=0|1" (what the settling callback reports;
 *	freeze does not wait), "fail=OP,ERRNO,COUNT" (OP: preserve, freeze,
 *	retrieve or can_finish; COUNT 0: fail every time), "fail=none", or
 *	"dep=FD": the file refers to test file FD (holds it), as an iommufd
 *	does the memfds it maps; it is preserved with a reference to it (its
 *	preserve logs "dep_error ERRNO" if that fails, before a preserve
 *	failure is injected) and its retrieve gets it back (logs "dep VALUE").
 *	In the next kernel the file referred to logs "held VALUE" when it
 *	is retrieved while the other is pending, "dependents_done VALUE"
 *	when that one is retrieved or finished, and "kept VALUE" instead of
 *	freeing its page at finish if that one cannot be released.
 * ghost: 0 or 1, registers or unregisters the ghost handler.
 * events: one "OP VALUE" line per callback; any write clears it.
 * live: preserved pages this kernel holds (outgoing and incoming).
 * objects: test files in existence.
 *
 * Both handlers are bound to one FLB, "liveupdate-test-flb", whose state is
 * a preserved page carrying a value.  Its callbacks log "flb_OP VALUE"
 * events, and it is driven through debugfs:
 * flb: write "value=N", "fail=OP,ERRNO,COUNT" (OP: preserve, freeze or
 *	retrieve) or "fail=none"; "get" asks for the incoming object, as a
 *	subsystem would (the write fails with the error).  read() gives
 *	"out=VALUE" while the FLB is preserved, else "out=none".
 * flb_live: preserved pages of the FLB this kernel holds.
 *
 * With "liveupdate_test_flb_early=1" on the command line, the FLB is asked
 * for at early_initcall, before the incoming state is read (logs
 * "flb_too_early ERRNO"), and at rootfs_initcall, where an IOMMU driver
 * adopts its tables (logs "flb_early VALUE", or "flb_early_error ERRNO"):
 * before any handler exists.
 *
 * With "liveupdate_test_preload_hold=1" on the command line (and debugfs),
 * the handlers have a preload, which logs "preload VALUE", waits until
 * VALUE (or 18446744073709551615, for all) is written to debugfs
 * preload_release, and logs "preload_end VALUE": tests can then retrieve
 * or finish a file while it, or another, is being preloaded.  Each write
 * replaces the one before; a preload not released within a minute ends
 * anyway, with a warning, so that a test that died does not hang LUO.
 */

#define pr_fmt(fmt) "liveupdate_test: " fmt

#include <linux/anon_inodes.h>
#include <linux/atomic.h>
#include <linux/build_bug.h>
#include <linux/cleanup.h>
#include <linux/debugfs.h>
#include <linux/err.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/io.h>
#include <linux/kexec_handover.h>
#include <linux/kstrtox.h>
#include <linux/liveupdate.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/wait_bit.h>

#define LUT_MAGIC		0x4c554f5445535431ULL	/* "LUOTEST1" */
#define LUT_VERSION		1
#define LUT_FLAG_GHOST		BIT(0)
#define LUT_FLAG_DEP		BIT(1)
#define LUT_CMD_MAX		64
#define LUT_NR_EVENTS		256
#define LUT_EVENT_LEN		40
#define LUT_FLB_MAGIC		0x4c554f54464c4231ULL	/* "LUOTFLB1" */
#define LUT_FLB_VERSION		1

enum lut_op {
	LUT_PRESERVE,
	LUT_FREEZE,
	LUT_RETRIEVE,
	LUT_CAN_FINISH,
	LUT_NR_OPS,
};

static const char * const lut_op_names[LUT_NR_OPS] = {
	[LUT_PRESERVE]		= "preserve",
	[LUT_FREEZE]		= "freeze",
	[LUT_RETRIEVE]		= "retrieve",
	[LUT_CAN_FINISH]	= "can_finish",
};

/**
 * struct lut_fail - failure injection for one callback
 * @err: positive errno to fail with, 0 when disarmed
 * @count: failures left before disarming, 0 to fail every time
 */
struct lut_fail {
	u32 err;
	u32 count;
};

/**
 * struct lut_obj - a test file
 * @value: the payload carried across the update
 * @fail: failure injection, indexed by enum lut_op
 * @version: format version to preserve with, 0 for the handler's
 * @ghost: preserve through the ghost handler instead of the main one
 * @settling: what lut_settling() reports
 * @dep: a test file this one refers to, with a reference, or NULL
 * @dep_token: while preserved, the token of @dep
 * @ser: the preserved state while the file is preserved, else NULL
 *
 * Everything is protected by lut_lock.
 */
struct lut_obj {
	u64 value;
	struct lut_fail fail[LUT_NR_OPS];
	u32 version;
	bool ghost;
	bool settling;
	struct file *dep;
	u64 dep_token;
	struct lut_ser *ser;
};

/**
 * struct lut_ser - serialized state of a test file, in one preserved page
 * @magic: LUT_MAGIC
 * @value: the file's value at freeze time
 * @fail_retrieve_errno: retrieve failure injection, as in struct lut_fail
 * @fail_retrieve_count: see @fail_retrieve_errno
 * @fail_can_finish_errno: can_finish failure injection, as in struct lut_fail
 * @fail_can_finish_count: see @fail_can_finish_errno
 * @flags: LUT_FLAG_*
 * @reserved: zero
 * @dep_token: with LUT_FLAG_DEP, the token of the file this one refers to;
 *	else zero
 *
 * Read by the next kernel, possibly another build: fixed-width fields, no
 * implicit padding.
 */
struct lut_ser {
	u64 magic;
	u64 value;
	u32 fail_retrieve_errno;
	u32 fail_retrieve_count;
	u32 fail_can_finish_errno;
	u32 fail_can_finish_count;
	u32 flags;
	u32 reserved;
	u64 dep_token;
};

static_assert(sizeof(struct lut_ser) == 48);

enum lut_flb_op {
	LUT_FLB_PRESERVE,
	LUT_FLB_FREEZE,
	LUT_FLB_RETRIEVE,
	LUT_FLB_NR_OPS,
};

static const char * const lut_flb_op_names[LUT_FLB_NR_OPS] = {
	[LUT_FLB_PRESERVE]	= "preserve",
	[LUT_FLB_FREEZE]	= "freeze",
	[LUT_FLB_RETRIEVE]	= "retrieve",
};

/**
 * struct lut_flb_ser - serialized state of the test FLB, one preserved page
 * @magic: LUT_FLB_MAGIC
 * @value: lut_flb_value at freeze time
 * @fail_retrieve_errno: retrieve failure injection, as in struct lut_fail
 * @fail_retrieve_count: see @fail_retrieve_errno
 */
struct lut_flb_ser {
	u64 magic;
	u64 value;
	u32 fail_retrieve_errno;
	u32 fail_retrieve_count;
};

static_assert(sizeof(struct lut_flb_ser) == 24);

/* Protects every struct lut_obj and the contents of every struct lut_ser. */
static DEFINE_MUTEX(lut_lock);

static atomic_t lut_nr_live = ATOMIC_INIT(0);
static atomic_t lut_nr_objects = ATOMIC_INIT(0);

static DEFINE_MUTEX(lut_events_lock);
static char lut_events[LUT_NR_EVENTS][LUT_EVENT_LEN];
static unsigned int lut_events_first;
static unsigned int lut_events_nr;

/* Serializes ghost handler (un)registration with lut_ghost_registered. */
static DEFINE_MUTEX(lut_ghost_lock);
static bool lut_ghost_registered;

/* The test FLB's settings and outgoing object, under lut_lock. */
static u64 lut_flb_value;
static struct lut_flb_ser *lut_flb_out;
static struct lut_fail lut_flb_fail[LUT_FLB_NR_OPS];
/* Incoming: the restored page, kept so that a failed retrieve is retried. */
static struct folio *lut_flb_in_folio;
static atomic_t lut_flb_live = ATOMIC_INIT(0);

static const struct file_operations liveupdate_test_fops;
static struct liveupdate_file_handler lut_ghost_handler;
static struct liveupdate_flb lut_flb;

static void lut_log(const char *op, u64 value)
{
	unsigned int i;

	guard(mutex)(&lut_events_lock);
	i = (lut_events_first + lut_events_nr) % LUT_NR_EVENTS;
	snprintf(lut_events[i], LUT_EVENT_LEN, "%s %llu\n", op, value);
	/* Full: drop the oldest line. */
	if (lut_events_nr < LUT_NR_EVENTS)
		lut_events_nr++;
	else
		lut_events_first = (lut_events_first + 1) % LUT_NR_EVENTS;
}

/* Return the injected error, if any, and count the failure. */
static int lut_inject(u32 *err, u32 *count)
{
	int ret = -(int)*err;

	if (*err && *count && !--*count)
		*err = 0;
	return ret;
}

static bool lut_is_ghost(const struct liveupdate_file_handler *handler)
{
	return handler == &lut_ghost_handler;
}

static struct lut_obj *lut_obj_alloc(void)
{
	struct lut_obj *obj = kzalloc_obj(*obj);

	if (obj)
		atomic_inc(&lut_nr_objects);
	return obj;
}

static void lut_obj_free(struct lut_obj *obj)
{
	if (obj->dep)
		fput(obj->dep);
	kfree(obj);
	atomic_dec(&lut_nr_objects);
}

static int lut_open(struct inode *inode, struct file *file)
{
	struct lut_obj *obj = lut_obj_alloc();

	if (!obj)
		return -ENOMEM;
	file->private_data = obj;
	return 0;
}

static int lut_release(struct inode *inode, struct file *file)
{
	struct lut_obj *obj = file->private_data;

	/* LUO holds a reference while the file is preserved. */
	if (WARN_ON_ONCE(obj->ser))
		return 0;
	lut_obj_free(obj);
	return 0;
}

static ssize_t lut_read(struct file *file, char __user *ubuf, size_t count,
			loff_t *ppos)
{
	struct lut_obj *obj = file->private_data;
	char buf[32];
	int len;

	scoped_guard(mutex, &lut_lock)
		len = scnprintf(buf, sizeof(buf), "value=%llu\n", obj->value);
	return simple_read_from_buffer(ubuf, count, ppos, buf, len);
}

/*
 * Set @fail (indexed by the position in @names) from "OP,ERRNO,COUNT", or
 * clear it for "none".
 */
static int lut_set_fail(struct lut_fail *fail, const char * const *names,
			size_t nr, char *arg)
{
	char *op, *err_str;
	u32 err, count;
	int i, ret;

	if (!strcmp(arg, "none")) {
		guard(mutex)(&lut_lock);
		memset(fail, 0, nr * sizeof(*fail));
		return 0;
	}

	op = strsep(&arg, ",");
	err_str = strsep(&arg, ",");
	if (!arg)
		return -EINVAL;
	i = match_string(names, nr, op);
	if (i < 0)
		return i;
	ret = kstrtou32(err_str, 10, &err);
	if (ret)
		return ret;
	if (!err || err > MAX_ERRNO)
		return -EINVAL;
	ret = kstrtou32(arg, 10, &count);
	if (ret)
		return ret;

	guard(mutex)(&lut_lock);
	fail[i].err = err;
	fail[i].count = count;
	return 0;
}

static const struct file_operations liveupdate_test_fops;

/*
 * "dep=FD": a file that refers to another cannot be referred to: the last
 * reference of a cycle would be to such a file, so none can form.
 */
static int lut_set_dep(struct lut_obj *obj, const char *arg)
{
	struct lut_obj *other;
	struct file *dep;
	int fd, ret;

	ret = kstrtoint(arg, 10, &fd);
	if (ret)
		return ret;
	dep = fget(fd);
	if (!dep)
		return -EBADF;
	guard(mutex)(&lut_lock);
	other = dep->f_op == &liveupdate_test_fops ? dep->private_data : NULL;
	if (!other) {
		ret = -EINVAL;
	} else if (obj->dep || obj->ser) {
		ret = -EBUSY;
	} else if (other == obj || other->dep) {
		ret = -ELOOP;
	} else {
		obj->dep = dep;
		return 0;
	}
	fput(dep);
	return ret;
}

static int lut_cmd(struct lut_obj *obj, char *cmd)
{
	char *key = strsep(&cmd, "=");
	bool ghost, settling;
	u64 value;
	u32 version;
	int ret;

	if (!cmd)
		return -EINVAL;

	if (!strcmp(key, "value")) {
		ret = kstrtou64(cmd, 10, &value);
		if (ret)
			return ret;
		guard(mutex)(&lut_lock);
		obj->value = value;
	} else if (!strcmp(key, "fail")) {
		return lut_set_fail(obj->fail, lut_op_names, LUT_NR_OPS, cmd);
	} else if (!strcmp(key, "version")) {
		ret = kstrtou32(cmd, 10, &version);
		if (ret)
			return ret;
		guard(mutex)(&lut_lock);
		obj->version = version;
	} else if (!strcmp(key, "ghost")) {
		ret = kstrtobool(cmd, &ghost);
		if (ret)
			return ret;
		guard(mutex)(&lut_lock);
		/* Read locklessly by lut_can_preserve(). */
		WRITE_ONCE(obj->ghost, ghost);
	} else if (!strcmp(key, "dep")) {
		return lut_set_dep(obj, cmd);
	} else if (!strcmp(key, "settling")) {
		ret = kstrtobool(cmd, &settling);
		if (ret)
			return ret;
		guard(mutex)(&lut_lock);
		/* Read locklessly by lut_settling(). */
		WRITE_ONCE(obj->settling, settling);
	} else {
		return -EINVAL;
	}
	return 0;
}

static ssize_t lut_write(struct file *file, const char __user *ubuf,
			 size_t count, loff_t *ppos)
{
	char *cmd __free(kfree) = NULL;
	size_t len;
	int ret;

	if (!count || count >= LUT_CMD_MAX)
		return -EINVAL;
	cmd = memdup_user_nul(ubuf, count);
	if (IS_ERR(cmd))
		return PTR_ERR(cmd);
	len = strlen(cmd);
	if (len && cmd[len - 1] == '\n')
		cmd[len - 1] = '\0';

	ret = lut_cmd(file->private_data, cmd);
	return ret ? ret : count;
}

static const struct file_operations liveupdate_test_fops = {
	.owner		= THIS_MODULE,
	.open		= lut_open,
	.release	= lut_release,
	.read		= lut_read,
	.write		= lut_write,
	.llseek		= default_llseek,
};

static void lut_ser_fill(struct lut_ser *ser, const struct lut_obj *obj,
			 bool ghost)
{
	ser->magic = LUT_MAGIC;
	ser->value = obj->value;
	ser->fail_retrieve_errno = obj->fail[LUT_RETRIEVE].err;
	ser->fail_retrieve_count = obj->fail[LUT_RETRIEVE].count;
	ser->fail_can_finish_errno = obj->fail[LUT_CAN_FINISH].err;
	ser->fail_can_finish_count = obj->fail[LUT_CAN_FINISH].count;
	ser->flags = ghost ? LUT_FLAG_GHOST : 0;
	ser->reserved = 0;
	ser->dep_token = 0;
	if (obj->dep) {
		ser->flags |= LUT_FLAG_DEP;
		ser->dep_token = obj->dep_token;
	}
}

static bool lut_can_preserve(struct liveupdate_file_handler *handler,
			     struct file *file)
{
	struct lut_obj *obj;

	if (file->f_op != &liveupdate_test_fops)
		return false;
	obj = file->private_data;
	return READ_ONCE(obj->ghost) == lut_is_ghost(handler);
}

static int lut_preserve(struct liveupdate_file *lf)
{
	struct lut_obj *obj = lf->file->private_data;
	struct lut_ser *ser;
	int ret;

	guard(mutex)(&lut_lock);
	lut_log("preserve", obj->value);
	/* The core must refuse to preserve a file twice. */
	if (WARN_ON_ONCE(obj->ser))
		return -EBUSY;
	if (obj->dep) {
		ret = liveupdate_file_dep_outgoing(lf, obj->dep, &obj->dep_token);
		if (ret) {
			lut_log("dep_error", -ret);
			return ret;
		}
	}
	/* After the reference: the core must drop it when preserve fails. */
	ret = lut_inject(&obj->fail[LUT_PRESERVE].err,
			 &obj->fail[LUT_PRESERVE].count);
	if (ret)
		return ret;

	ser = kho_alloc_preserve(PAGE_SIZE);
	if (IS_ERR(ser))
		return PTR_ERR(ser);
	lut_ser_fill(ser, obj, lut_is_ghost(lf->handler));
	obj->ser = ser;
	lf->data = virt_to_phys(ser);
	lf->private = obj;
	/*
	 * Lets tests write a version the next kernel rejects; the core must
	 * keep what preserve leaves in @lf->version.
	 */
	if (obj->version)
		lf->version = obj->version;
	atomic_inc(&lut_nr_live);
	return 0;
}

static void lut_unpreserve(struct liveupdate_file *lf)
{
	struct lut_obj *obj = lf->private;

	guard(mutex)(&lut_lock);
	lut_log("unpreserve", obj->value);
	kho_unpreserve_free(obj->ser);
	obj->ser = NULL;
	atomic_dec(&lut_nr_live);
}

static int lut_freeze(struct liveupdate_file *lf)
{
	struct lut_obj *obj = lf->private;
	int ret;

	guard(mutex)(&lut_lock);
	lut_log("freeze", obj->value);
	ret = lut_inject(&obj->fail[LUT_FREEZE].err,
			 &obj->fail[LUT_FREEZE].count);
	if (ret)
		return ret;
	/* The object may have changed since preserve. */
	lut_ser_fill(obj->ser, obj, lut_is_ghost(lf->handler));
	return 0;
}

static bool lut_settling(struct liveupdate_file *lf)
{
	struct lut_obj *obj = lf->private;

	return READ_ONCE(obj->settling);
}

static void lut_unfreeze(struct liveupdate_file *lf)
{
	struct lut_obj *obj = lf->private;

	guard(mutex)(&lut_lock);
	lut_log("unfreeze", obj->value);
}

/*
 * Incoming: the preserved page, restored on first use and kept in
 * @lf->private until finish, because KHO restores a page only once and a
 * failed retrieve must be retryable.  A failed restore is remembered as an
 * error pointer so that it is not attempted (and warned about) again.
 */
static struct folio *lut_in_folio(struct liveupdate_file *lf)
{
	bool first = !lf->private;
	struct folio *folio = liveupdate_file_in_folio(lf);

	if (first && !IS_ERR(folio))
		atomic_inc(&lut_nr_live);
	return folio;
}

/* Incoming: the validated serialized state. */
static struct lut_ser *lut_in_ser(struct liveupdate_file *lf)
{
	struct folio *folio;
	struct lut_ser *ser;
	bool ghost;

	if (lf->version != LUT_VERSION)
		return ERR_PTR(-EOPNOTSUPP);

	folio = lut_in_folio(lf);
	if (IS_ERR(folio))
		return ERR_CAST(folio);
	if (folio_order(folio))
		return ERR_PTR(-EBADMSG);

	ser = folio_address(folio);
	ghost = ser->flags & LUT_FLAG_GHOST;
	if (ser->magic != LUT_MAGIC || ser->reserved ||
	    (ser->flags & ~(LUT_FLAG_GHOST | LUT_FLAG_DEP)) ||
	    (!(ser->flags & LUT_FLAG_DEP) && ser->dep_token) ||
	    ser->fail_retrieve_errno > MAX_ERRNO ||
	    ghost != lut_is_ghost(lf->handler))
		return ERR_PTR(-EBADMSG);
	return ser;
}

/*
 * The file @lf refers to, if any, retrieved: not under lut_lock, which
 * that file's own retrieve takes.  NULL if none; an ERR_PTR on failure.
 */
static struct file *lut_retrieve_dep(struct liveupdate_file *lf)
{
	struct lut_obj *other;
	struct lut_ser *ser;
	struct file *dep;
	u64 token;
	int ret;

	scoped_guard(mutex, &lut_lock) {
		ser = lut_in_ser(lf);
		if (IS_ERR(ser) || !(ser->flags & LUT_FLAG_DEP))
			return NULL;	/* the retrieve reports it */
		token = ser->dep_token;
	}
	ret = liveupdate_file_dep_incoming(lf, token, &dep);
	guard(mutex)(&lut_lock);
	if (ret) {
		lut_log("dep_error", -ret);
		return ERR_PTR(ret);
	}
	if (dep->f_op != &liveupdate_test_fops) {
		fput(dep);
		return ERR_PTR(-EBADMSG);
	}
	other = dep->private_data;
	lut_log("dep", other->value);
	return dep;
}

static int lut_retrieve(struct liveupdate_file *lf)
{
	struct lut_ser *ser;
	struct lut_obj *obj;
	struct file *file;
	void *flb_obj;
	int ret;

	/*
	 * Every test file depends on the FLB: its first retrieve retrieves
	 * the FLB, and an FLB failure fails the file's retrieve.  Not under
	 * lut_lock, which the FLB's callbacks take.
	 */
	ret = liveupdate_flb_get_incoming(&lut_flb, &flb_obj);
	if (ret)
		return ret;
	struct file *dep __free(fput) = lut_retrieve_dep(lf);

	if (IS_ERR(dep))
		return PTR_ERR(dep);

	guard(mutex)(&lut_lock);
	ser = lut_in_ser(lf);
	lut_log("retrieve", IS_ERR(ser) ? 0 : ser->value);
	if (IS_ERR(ser))
		return PTR_ERR(ser);
	ret = lut_inject(&ser->fail_retrieve_errno, &ser->fail_retrieve_count);
	if (ret)
		return ret;
	/* Its page stays until finish anyway: the log is the hold. */
	if (liveupdate_file_has_dependents(lf))
		lut_log("held", ser->value);

	obj = lut_obj_alloc();
	if (!obj)
		return -ENOMEM;
	obj->value = ser->value;
	obj->ghost = ser->flags & LUT_FLAG_GHOST;
	obj->dep = no_free_ptr(dep);
	/* Tests can still change it through the retrieved file. */
	obj->fail[LUT_CAN_FINISH].err = ser->fail_can_finish_errno;
	obj->fail[LUT_CAN_FINISH].count = ser->fail_can_finish_count;

	/* A fresh inode, so that the file is a distinct object to the core. */
	file = anon_inode_create_getfile("[liveupdate_test]",
					 &liveupdate_test_fops, obj, O_RDWR,
					 NULL);
	if (IS_ERR(file)) {
		lut_obj_free(obj);
		return PTR_ERR(file);
	}
	lf->file = file;
	return 0;
}

static void lut_dependents_done(struct liveupdate_file *lf)
{
	struct lut_obj *obj = lf->file->private_data;

	guard(mutex)(&lut_lock);
	lut_log("dependents_done", obj->value);
}

static bool lut_can_finish(struct liveupdate_file *lf)
{
	struct lut_obj *obj;
	struct lut_ser *ser;

	guard(mutex)(&lut_lock);
	if (lf->file) {
		obj = lf->file->private_data;
		lut_log("can_finish", obj->value);
		return !lut_inject(&obj->fail[LUT_CAN_FINISH].err,
				   &obj->fail[LUT_CAN_FINISH].count);
	}

	ser = lut_in_ser(lf);
	lut_log("can_finish", IS_ERR(ser) ? 0 : ser->value);
	/* Unreadable state has nothing to wait for: finish releases it. */
	if (IS_ERR(ser))
		return true;
	return !lut_inject(&ser->fail_can_finish_errno,
			   &ser->fail_can_finish_count);
}

static void lut_finish(struct liveupdate_file *lf)
{
	struct folio *folio;
	struct lut_ser *ser;
	u64 value;

	guard(mutex)(&lut_lock);
	if (lf->file) {
		value = ((struct lut_obj *)lf->file->private_data)->value;
	} else {
		ser = lut_in_ser(lf);
		value = IS_ERR(ser) ? 0 : ser->value;
	}
	lut_log("finish", value);

	/* Restores the page if nothing did yet, e.g. on a version mismatch. */
	folio = lut_in_folio(lf);
	if (!IS_ERR(folio) && liveupdate_file_has_dependents(lf)) {
		/* A file that refers to it cannot be released: left in place. */
		lut_log("kept", value);
	} else if (!IS_ERR(folio)) {
		folio_put(folio);
		atomic_dec(&lut_nr_live);
	}
	lf->private = NULL;
}

static bool lut_preload_hold;
/* The value of the file whose preload may end; U64_MAX: every file's. */
static u64 lut_preload_released;

static int __init lut_parse_preload_hold(char *str)
{
	if (!str) {
		lut_preload_hold = true;
		return 0;
	}
	return kstrtobool(str, &lut_preload_hold);
}
early_param("liveupdate_test_preload_hold", lut_parse_preload_hold);

static bool lut_preload_may_end(u64 value)
{
	u64 released = READ_ONCE(lut_preload_released);

	return released == value || released == U64_MAX;
}

static void lut_preload(struct liveupdate_file *lf)
{
	struct lut_ser *ser;
	u64 value;

	scoped_guard(mutex, &lut_lock) {
		ser = lut_in_ser(lf);
		value = IS_ERR(ser) ? 0 : ser->value;
	}
	lut_log("preload", value);
	if (!wait_var_event_timeout(&lut_preload_released,
				    lut_preload_may_end(value), 60 * HZ))
		pr_warn("preload of %llu: not released in 60 s\n", value);
	lut_log("preload_end", value);
}

static ssize_t lut_preload_release_write(struct file *file,
					 const char __user *ubuf,
					 size_t count, loff_t *ppos)
{
	u64 value;
	int ret;

	ret = kstrtou64_from_user(ubuf, count, 0, &value);
	if (ret)
		return ret;
	store_release_wake_up(&lut_preload_released, value);
	return count;
}

static const struct file_operations lut_preload_release_fops = {
	.owner		= THIS_MODULE,
	.write		= lut_preload_release_write,
	.llseek		= noop_llseek,
};

/* Not const: liveupdate_test_preload_hold= adds the preload. */
static struct liveupdate_file_ops lut_ops = {
	/* Outgoing, before the reboot. */
	.can_preserve	= lut_can_preserve,
	.preserve	= lut_preserve,
	.settling	= lut_settling,
	.unpreserve	= lut_unpreserve,
	/* At the reboot. */
	.freeze		= lut_freeze,
	.unfreeze	= lut_unfreeze,
	/* Incoming, in the next kernel. */
	.retrieve	= lut_retrieve,
	.dependents_done = lut_dependents_done,
	.can_finish	= lut_can_finish,
	.finish		= lut_finish,
};

static struct liveupdate_file_handler lut_handler = {
	.compatible	= "liveupdate-test",
	.version	= LUT_VERSION,
	.ops		= &lut_ops,
	.owner		= THIS_MODULE,
};

static struct liveupdate_file_handler lut_ghost_handler = {
	.compatible	= "liveupdate-test-ghost",
	.version	= LUT_VERSION,
	.ops		= &lut_ops,
	.owner		= THIS_MODULE,
};

/* ---- the test FLB ---- */

static void lut_flb_ser_fill(struct lut_flb_ser *ser)
{
	ser->magic = LUT_FLB_MAGIC;
	ser->value = lut_flb_value;
	ser->fail_retrieve_errno = lut_flb_fail[LUT_FLB_RETRIEVE].err;
	ser->fail_retrieve_count = lut_flb_fail[LUT_FLB_RETRIEVE].count;
}

static int lut_flb_preserve(struct liveupdate_flb *flb,
			    struct liveupdate_flb_state *out)
{
	struct lut_flb_ser *ser;
	int ret;

	guard(mutex)(&lut_lock);
	lut_log("flb_preserve", lut_flb_value);
	ret = lut_inject(&lut_flb_fail[LUT_FLB_PRESERVE].err,
			 &lut_flb_fail[LUT_FLB_PRESERVE].count);
	if (ret)
		return ret;
	ser = kho_alloc_preserve(PAGE_SIZE);
	if (IS_ERR(ser))
		return PTR_ERR(ser);
	lut_flb_ser_fill(ser);
	out->data = virt_to_phys(ser);
	out->obj = ser;
	lut_flb_out = ser;
	atomic_inc(&lut_flb_live);
	return 0;
}

static void lut_flb_unpreserve(struct liveupdate_flb *flb,
			       struct liveupdate_flb_state *out)
{
	struct lut_flb_ser *ser = out->obj;

	guard(mutex)(&lut_lock);
	lut_log("flb_unpreserve", ser->value);
	lut_flb_out = NULL;
	kho_unpreserve_free(ser);
	atomic_dec(&lut_flb_live);
}

static int lut_flb_freeze(struct liveupdate_flb *flb,
			  struct liveupdate_flb_state *out)
{
	int ret;

	guard(mutex)(&lut_lock);
	lut_log("flb_freeze", lut_flb_value);
	ret = lut_inject(&lut_flb_fail[LUT_FLB_FREEZE].err,
			 &lut_flb_fail[LUT_FLB_FREEZE].count);
	if (ret)
		return ret;
	/* The settings may have changed since preserve. */
	lut_flb_ser_fill(out->obj);
	return 0;
}

static void lut_flb_unfreeze(struct liveupdate_flb *flb,
			     struct liveupdate_flb_state *out)
{
	guard(mutex)(&lut_lock);
	lut_log("flb_unfreeze", lut_flb_value);
}

/* Incoming: the validated page, restored once; lut_lock held. */
static struct lut_flb_ser *lut_flb_in_ser(struct liveupdate_flb_state *in)
{
	struct lut_flb_ser *ser;

	if (!lut_flb_in_folio) {
		if (in->version != LUT_FLB_VERSION || !in->data ||
		    !PAGE_ALIGNED(in->data))
			return ERR_PTR(-EBADMSG);
		lut_flb_in_folio = kho_restore_folio(in->data);
		if (!lut_flb_in_folio)
			return ERR_PTR(-EBADMSG);
		atomic_inc(&lut_flb_live);
	}
	ser = folio_address(lut_flb_in_folio);
	if (folio_order(lut_flb_in_folio) || ser->magic != LUT_FLB_MAGIC ||
	    ser->fail_retrieve_errno > MAX_ERRNO)
		return ERR_PTR(-EBADMSG);
	return ser;
}

static int lut_flb_retrieve(struct liveupdate_flb *flb,
			    struct liveupdate_flb_state *in)
{
	struct lut_flb_ser *ser;
	int ret;

	guard(mutex)(&lut_lock);
	ser = lut_flb_in_ser(in);
	lut_log("flb_retrieve", IS_ERR(ser) ? 0 : ser->value);
	if (IS_ERR(ser))
		return PTR_ERR(ser);
	ret = lut_inject(&ser->fail_retrieve_errno, &ser->fail_retrieve_count);
	if (ret)
		return ret;
	in->obj = ser;
	return 0;
}

static void lut_flb_finish(struct liveupdate_flb *flb,
			   struct liveupdate_flb_state *in, bool retrieved)
{
	struct lut_flb_ser *ser;

	guard(mutex)(&lut_lock);
	/* Never retrieved: the page is restored here to be released. */
	ser = lut_flb_in_ser(in);
	lut_log(retrieved ? "flb_finish" : "flb_finish_unretrieved",
		IS_ERR(ser) ? 0 : ser->value);
	if (WARN_ON_ONCE(retrieved && in->obj != ser))
		return;
	if (lut_flb_in_folio) {
		folio_put(lut_flb_in_folio);
		lut_flb_in_folio = NULL;
		atomic_dec(&lut_flb_live);
	}
}

static const struct liveupdate_flb_ops lut_flb_ops = {
	.preserve	= lut_flb_preserve,
	.unpreserve	= lut_flb_unpreserve,
	.freeze		= lut_flb_freeze,
	.unfreeze	= lut_flb_unfreeze,
	.retrieve	= lut_flb_retrieve,
	.finish		= lut_flb_finish,
};

static struct liveupdate_flb lut_flb = {
	.compatible	= "liveupdate-test-flb",
	.version	= LUT_FLB_VERSION,
	.ops		= &lut_flb_ops,
	.owner		= THIS_MODULE,
};

static ssize_t lut_flb_write(struct file *file, const char __user *ubuf,
			     size_t count, loff_t *ppos)
{
	char *cmd __free(kfree) = NULL;
	char *arg;
	void *obj;
	u64 value;
	int ret;

	if (!count || count >= LUT_CMD_MAX)
		return -EINVAL;
	cmd = memdup_user_nul(ubuf, count);
	if (IS_ERR(cmd))
		return PTR_ERR(cmd);
	arg = strim(cmd);

	if (!strcmp(arg, "get")) {
		ret = liveupdate_flb_get_incoming(&lut_flb, &obj);
	} else if (str_has_prefix(arg, "fail=")) {
		ret = lut_set_fail(lut_flb_fail, lut_flb_op_names,
				   LUT_FLB_NR_OPS, arg + strlen("fail="));
	} else if (str_has_prefix(arg, "value=")) {
		ret = kstrtou64(arg + strlen("value="), 10, &value);
		if (!ret) {
			guard(mutex)(&lut_lock);
			lut_flb_value = value;
		}
	} else {
		ret = -EINVAL;
	}
	return ret ? ret : count;
}

static ssize_t lut_flb_read(struct file *file, char __user *ubuf,
			    size_t count, loff_t *ppos)
{
	struct lut_flb_ser *ser;
	char buf[32];
	int len;

	/*
	 * The accessor, checked against our own record under lut_lock (which
	 * we may not hold while calling it): @ser may be unpreserved meanwhile.
	 */
	if (liveupdate_flb_get_outgoing(&lut_flb, (void **)&ser))
		ser = NULL;
	scoped_guard(mutex, &lut_lock) {
		if (ser && ser == lut_flb_out)
			len = scnprintf(buf, sizeof(buf), "out=%llu\n",
					ser->value);
		else
			len = scnprintf(buf, sizeof(buf), "out=none\n");
	}
	return simple_read_from_buffer(ubuf, count, ppos, buf, len);
}

static const struct file_operations lut_flb_fops = {
	.owner		= THIS_MODULE,
	.open		= simple_open,
	.read		= lut_flb_read,
	.write		= lut_flb_write,
	.llseek		= default_llseek,
};

static int lut_events_show(struct seq_file *m, void *v)
{
	unsigned int i;

	guard(mutex)(&lut_events_lock);
	for (i = 0; i < lut_events_nr; i++)
		seq_puts(m, lut_events[(lut_events_first + i) % LUT_NR_EVENTS]);
	return 0;
}

static int lut_events_open(struct inode *inode, struct file *file)
{
	return single_open(file, lut_events_show, NULL);
}

static ssize_t lut_events_write(struct file *file, const char __user *ubuf,
				size_t count, loff_t *ppos)
{
	guard(mutex)(&lut_events_lock);
	lut_events_first = 0;
	lut_events_nr = 0;
	return count;
}

static const struct file_operations lut_events_fops = {
	.owner		= THIS_MODULE,
	.open		= lut_events_open,
	.read		= seq_read,
	.write		= lut_events_write,
	.llseek		= seq_lseek,
	.release	= single_release,
};

static ssize_t lut_ghost_read(struct file *file, char __user *ubuf,
			      size_t count, loff_t *ppos)
{
	char buf[4];
	int len;

	scoped_guard(mutex, &lut_ghost_lock)
		len = scnprintf(buf, sizeof(buf), "%d\n", lut_ghost_registered);
	return simple_read_from_buffer(ubuf, count, ppos, buf, len);
}

static ssize_t lut_ghost_write(struct file *file, const char __user *ubuf,
			       size_t count, loff_t *ppos)
{
	bool on;
	int ret;

	ret = kstrtobool_from_user(ubuf, count, &on);
	if (ret)
		return ret;

	/*
	 * Not under lut_lock: the core may hold its own locks around the
	 * callbacks, which take lut_lock.
	 */
	guard(mutex)(&lut_ghost_lock);
	if (on == lut_ghost_registered)
		return count;
	if (on) {
		ret = liveupdate_register_file_handler(&lut_ghost_handler);
		/* The FLB is shared by both handlers. */
		if (!ret) {
			ret = liveupdate_register_flb(&lut_ghost_handler,
						      &lut_flb);
			if (ret)
				liveupdate_unregister_file_handler(&lut_ghost_handler);
		}
	} else {
		/* Unbinds the FLB too. */
		ret = liveupdate_unregister_file_handler(&lut_ghost_handler);
	}
	if (ret)
		return ret;
	lut_ghost_registered = on;
	return count;
}

static const struct file_operations lut_ghost_fops = {
	.owner		= THIS_MODULE,
	.open		= simple_open,
	.read		= lut_ghost_read,
	.write		= lut_ghost_write,
	.llseek		= default_llseek,
};

static struct miscdevice lut_misc = {
	.minor		= MISC_DYNAMIC_MINOR,
	.name		= "liveupdate_test",
	.fops		= &liveupdate_test_fops,
};

static bool lut_flb_early_use;

static int __init lut_parse_flb_early(char *str)
{
	if (!str) {
		lut_flb_early_use = true;
		return 0;
	}
	return kstrtobool(str, &lut_flb_early_use);
}
early_param("liveupdate_test_flb_early", lut_parse_flb_early);

static int __init lut_flb_too_early(void)
{
	void *obj;
	int ret;

	if (lut_flb_early_use) {
		ret = liveupdate_flb_get_incoming(&lut_flb, &obj);
		lut_log("flb_too_early", -ret);
	}
	return 0;
}
early_initcall(lut_flb_too_early);

/* Where the IOMMU drivers run: after PCI, before any handler. */
static int __init lut_flb_early(void)
{
	struct lut_flb_ser *ser;
	void *obj;
	int ret;

	if (!lut_flb_early_use)
		return 0;
	ret = liveupdate_flb_get_incoming(&lut_flb, &obj);
	if (ret) {
		lut_log("flb_early_error", -ret);
		return 0;
	}
	ser = obj;
	lut_log("flb_early", ser->value);
	return 0;
}
rootfs_initcall(lut_flb_early);

static int __init lut_init(void)
{
	struct dentry *dir;
	int ret;

	/* Released through debugfs only. */
	if (lut_preload_hold && IS_ENABLED(CONFIG_DEBUG_FS))
		lut_ops.preload = lut_preload;
	ret = liveupdate_register_file_handler(&lut_handler);
	if (ret) {
		pr_err("cannot register the file handler: %d\n", ret);
		return ret;
	}
	ret = liveupdate_register_flb(&lut_handler, &lut_flb);
	if (ret) {
		pr_err("cannot bind the FLB: %d\n", ret);
		liveupdate_unregister_file_handler(&lut_handler);
		return ret;
	}
	ret = misc_register(&lut_misc);
	if (ret) {
		pr_err("cannot register the device: %d\n", ret);
		liveupdate_unregister_file_handler(&lut_handler);
		return ret;
	}

	/* debugfs failures are not fatal: the tests then skip. */
	dir = debugfs_create_dir("liveupdate_test", NULL);
	debugfs_create_file("ghost", 0600, dir, NULL, &lut_ghost_fops);
	debugfs_create_file("preload_release", 0200, dir, NULL,
			    &lut_preload_release_fops);
	debugfs_create_file("events", 0600, dir, NULL, &lut_events_fops);
	debugfs_create_atomic_t("live", 0400, dir, &lut_nr_live);
	debugfs_create_atomic_t("objects", 0400, dir, &lut_nr_objects);
	debugfs_create_file("flb", 0600, dir, NULL, &lut_flb_fops);
	debugfs_create_atomic_t("flb_live", 0400, dir, &lut_flb_live);
	return 0;
}
late_initcall(lut_init);
