// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: enablement, /dev/liveupdate and the reboot hook.
 */
#define pr_fmt(fmt) "liveupdate: " fmt

#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/init.h>
#include <linux/kexec.h>
#include <linux/kexec_handover.h>
#include <linux/miscdevice.h>
#include <linux/sched/clock.h>
#include <linux/string.h>

#include "internal.h"

DECLARE_RWSEM(luo_state_rwsem);

static bool luo_cmdline __ro_after_init;
static bool luo_on __ro_after_init;

static int __init luo_parse_cmdline(char *str)
{
	return kstrtobool(str, &luo_cmdline);
}
early_param("liveupdate", luo_parse_cmdline);

/* Incoming files are preloaded in the background unless this is off. */
static bool luo_preload __ro_after_init = true;

static int __init luo_parse_preload(char *str)
{
	return kstrtobool(str, &luo_preload);
}
early_param("liveupdate_preload", luo_parse_preload);

/**
 * liveupdate_enabled() - is live update on in this kernel
 *
 * Return: true if "liveupdate=on" was given, KHO is on, and LUO started.
 */
bool liveupdate_enabled(void)
{
	return luo_on;
}
EXPORT_SYMBOL_GPL(liveupdate_enabled);

/**
 * liveupdate_reboot() - hand the sessions over, right before a kexec jump
 * @image: the kexec image about to be started
 *
 * Called by kernel_kexec().  Freezes every file of every outgoing session
 * and writes the handover state.  If anything fails, what was frozen is
 * unfrozen and the error is returned: the reboot does not happen and
 * everything keeps working.  On success LUO stays locked: nothing can
 * change the state between here and the jump.
 *
 * Waiting for the operations in progress is killable: none of them waits
 * for userspace with the lock held, and a fatal signal still ends the wait.
 *
 * Return: 0, -EINTR if the caller got a fatal signal while it waited,
 * -EOPNOTSUPP if files are preserved but @image cannot carry KHO state, or
 * the error of a handler's freeze or of the serialization.
 */
int liveupdate_reboot(struct kimage *image)
{
	u64 start;
	int err;

	if (!luo_on)
		return 0;

	start = luo_tl_reboot_begin();
	err = down_write_killable(&luo_state_rwsem);
	if (err)
		return err;
	start = luo_tl_out_step(LIVEUPDATE_TL_REBOOT, start, 0);
	err = luo_handover_write(image, start);
	if (err) {
		up_write(&luo_state_rwsem);
		return err;
	}
	luo_tl_reboot_done();
	return 0;
}

static atomic_t luo_dev_busy = ATOMIC_INIT(0);

static int luo_dev_open(struct inode *inode, struct file *file)
{
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	/* Not before the incoming sessions are in place (see luo_init()). */
	if (!smp_load_acquire(&luo_on))
		return -ENODEV;
	/* One agent owns the device at a time. */
	if (atomic_cmpxchg(&luo_dev_busy, 0, 1))
		return -EBUSY;
	luo_tl_instant(LIVEUPDATE_TL_OPEN);
	return 0;
}

static int luo_dev_release(struct inode *inode, struct file *file)
{
	atomic_set(&luo_dev_busy, 0);
	return 0;
}

static const struct file_operations luo_dev_fops = {
	.owner		= THIS_MODULE,
	.open		= luo_dev_open,
	.release	= luo_dev_release,
	.unlocked_ioctl	= luo_dev_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
};

static struct miscdevice luo_miscdev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "liveupdate",
	.fops	= &luo_dev_fops,
};

/* Set once the incoming state is read, or known to be absent. */
static bool luo_in_read __ro_after_init;
/* Files read from the previous kernel's state. */
static u64 luo_in_files __ro_after_init;

/**
 * luo_incoming_pending() - is the previous kernel's state still unread
 *
 * Return: true before luo_read_incoming() ran in a kernel that has state
 * to read: a caller asking for it is too early, not told "none".
 */
bool luo_incoming_pending(void)
{
	/* Pairs with the release in luo_read_incoming(). */
	return !smp_load_acquire(&luo_in_read) && luo_cmdline &&
	       kho_is_enabled() && is_kho_boot();
}

/*
 * The incoming state is read at core_initcall, before PCI enumeration
 * (subsys_initcall) and the IOMMU drivers (rootfs_initcall): the code that
 * must adopt preserved devices and translation tables finds its FLBs there
 * (liveupdate_flb_get_incoming()).  Nothing here needs more than the
 * allocator and KHO's incoming tree, both ready before any initcall.
 */
static int __init luo_read_incoming(void)
{
	u64 start, nr_files;

	if (luo_cmdline && kho_is_enabled()) {
		luo_tl_init();
		start = local_clock();
		nr_files = luo_handover_restore();
		if (is_kho_boot())
			luo_tl_span(LIVEUPDATE_TL_RESTORE, start,
				    min_t(u64, nr_files, U32_MAX));
		luo_in_files = nr_files;
	}
	/* Work started by earlier initcalls may be asking already. */
	smp_store_release(&luo_in_read, true);
	return 0;
}
core_initcall(luo_read_incoming);

/* LUO cannot start after it read the incoming state: say what is lost. */
static void __init luo_in_unreachable(void)
{
	if (luo_in_files)
		pr_err("the %llu incoming files cannot be retrieved or finished, nor the FLBs they depend on\n",
		       luo_in_files);
}

/*
 * Publishing the outgoing state needs KHO's outgoing tree (fs_initcall),
 * and /dev/liveupdate the misc class (subsys_initcall).
 */
static int __init luo_init(void)
{
	int err;

	if (!luo_cmdline)
		return 0;
	/* KHO turns itself off if it cannot set up its outgoing tree. */
	if (!kho_is_enabled()) {
		pr_info("KHO is disabled: live update is off\n");
		luo_in_unreachable();
		return 0;
	}

	err = luo_handover_init();
	if (err) {
		pr_err("cannot publish the handover state: %pe\n",
		       ERR_PTR(err));
		luo_in_unreachable();
		return err;
	}
	err = misc_register(&luo_miscdev);
	if (err) {
		pr_err("cannot register /dev/liveupdate: %pe\n", ERR_PTR(err));
		luo_handover_fini();
		luo_in_unreachable();
		return err;
	}
	/* Best effort: live update works without a timeline. */
	luo_tl_publish();
	/* Opens /dev/liveupdate: the restored sessions are visible. */
	smp_store_release(&luo_on, true);
	luo_tl_instant(LIVEUPDATE_TL_READY);
	luo_debugfs_init();
	return 0;
}
late_initcall(luo_init);

/* After luo_init() and every built-in handler's late_initcall. */
static int __init luo_preload_init(void)
{
	if (luo_on && luo_preload)
		luo_sessions_preload();
	return 0;
}
late_initcall_sync(luo_preload_init);
