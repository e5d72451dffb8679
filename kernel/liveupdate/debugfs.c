// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: read-only debugfs view of the sessions and
 * their files, incoming ones included (an incoming session closed without
 * FINISH stays visible here until the next update), and of the FLBs.
 */
#include <linux/debugfs.h>
#include <linux/seq_file.h>

#include "internal.h"

static const char *const luo_file_states[] = {
	[LIVEUPDATE_FILE_PRESERVED]	= "preserved",
	[LIVEUPDATE_FILE_INCOMING]	= "incoming",
	[LIVEUPDATE_FILE_RETRIEVED]	= "retrieved",
	[LIVEUPDATE_FILE_BROKEN]	= "broken",
	[LIVEUPDATE_FILE_SETTLING]	= "settling",
};

static int luo_sessions_show(struct seq_file *m, void *unused)
{
	struct rb_node *node;
	struct luo_file *lfile;

	/* The writer side excludes every operation: a consistent snapshot. */
	guard(rwsem_write)(&luo_state_rwsem);
	for (node = rb_first(&luo_sessions); node; node = rb_next(node)) {
		struct luo_session *s = rb_entry(node, struct luo_session, node);

		seq_printf(m, "session %s %s%s files=%lu",
			   s->name,
			   s->kind == LUO_SESSION_OUTGOING ? "outgoing" :
							     "incoming",
			   s->open ? " open" : "", s->nr_files);
		if (s->error)
			seq_printf(m, " error=%d", s->error);
		seq_putc(m, '\n');
		list_for_each_entry(lfile, &s->files, list) {
			seq_printf(m, "  token=%llu %s %s", lfile->lf.token,
				   lfile->compatible,
				   luo_file_states[lfile->state]);
			if (lfile->error)
				seq_printf(m, " error=%d", lfile->error);
			seq_putc(m, '\n');
		}
	}
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(luo_sessions);

static int luo_flbs_dbg_show(struct seq_file *m, void *unused)
{
	luo_flbs_show(m);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(luo_flbs_dbg);

static int luo_timeline_show(struct seq_file *m, void *unused)
{
	return luo_tl_show(m);
}
DEFINE_SHOW_ATTRIBUTE(luo_timeline);

void luo_debugfs_init(void)
{
	struct dentry *dir = debugfs_create_dir("liveupdate", NULL);

	debugfs_create_file("sessions", 0400, dir, NULL, &luo_sessions_fops);
	debugfs_create_file("flbs", 0400, dir, NULL, &luo_flbs_dbg_fops);
	debugfs_create_file("timeline", 0400, dir, NULL, &luo_timeline_fops);
	luo_damage_debugfs_init(dir);
}
