// SPDX-License-Identifier: GPL-2.0
/*
 * Live Update Orchestrator: the /dev/liveupdate and session fd interface,
 * within one boot (no kexec).  Every ioctl and every errno of
 * include/uapi/linux/liveupdate.h that can be reached without a live update
 * is exercised here; liveupdate_kexec.c covers the incoming side.
 *
 * The file tests need the liveupdate test module (CONFIG_LIVEUPDATE_TEST)
 * and are skipped without it.  Built both 64-bit and 32-bit (compat_ioctl).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <termios.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/magic.h>

#include "liveupdate_test.h"
#include "kselftest_harness.h"

/* A name of exactly 63 bytes, the longest allowed. */
#define NAME_63 \
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"

static int new_session(struct __test_metadata *_metadata, int dev,
		       const char *name)
{
	int ret, sfd = -1;

	ret = luo_create_session(dev, name, &sfd);
	ASSERT_EQ(0, ret) TH_LOG("create session %s: %s", name,
				 strerror(-ret));
	return sfd;
}

static int new_object(struct __test_metadata *_metadata,
		      unsigned long long value)
{
	int fd = luo_test_new(value);

	ASSERT_GE(fd, 0) TH_LOG("new test object: %s", strerror(-fd));
	return fd;
}

static int live_count(struct __test_metadata *_metadata)
{
	int live = luo_test_live();

	ASSERT_GE(live, 0) TH_LOG("read %s: %s", LUO_TEST_LIVE,
				  strerror(-live));
	return live;
}

static char *read_events(struct __test_metadata *_metadata)
{
	char *events = luo_test_events();

	/* A truth value: the harness casts to uintmax_t, a pointer fails -m32. */
	ASSERT_TRUE(!!events) TH_LOG("read %s", LUO_TEST_EVENTS);
	return events;
}

/*
 * Issue @cmd with the struct @arg (@len bytes) but claim @size bytes in its
 * first member: a smaller @size truncates it, a larger one appends zero
 * bytes, the last of which is set to @last.  The struct is copied back.
 */
static int ioctl_sized(int fd, unsigned long cmd, void *arg, size_t len,
		       __u32 size, __u8 last)
{
	__u64 buf[64];
	int ret;

	if (len > sizeof(buf) || size > sizeof(buf))
		return -EOVERFLOW;
	memset(buf, 0, sizeof(buf));
	memcpy(buf, arg, len);
	memcpy(buf, &size, sizeof(size));
	if (size > len)
		((__u8 *)buf)[size - 1] = last;
	ret = ioctl(fd, cmd, buf) ? -errno : 0;
	memcpy(arg, buf, len);
	return ret;
}

/*
 * The size rules every command shares: sizes below the struct are EINVAL,
 * a longer struct is E2BIG if its tail is not zero.  Neither may have any
 * effect, which the caller checks by issuing the right call afterwards.
 */
static void check_size_errors(struct __test_metadata *_metadata, int fd,
			      unsigned long cmd, const void *arg, size_t len)
{
	__u64 copy[16];

	ASSERT_LE(len, sizeof(copy));
	memcpy(copy, arg, len);
	EXPECT_EQ(-EINVAL, ioctl_sized(fd, cmd, copy, len, 0, 0));
	memcpy(copy, arg, len);
	EXPECT_EQ(-EINVAL, ioctl_sized(fd, cmd, copy, len, sizeof(__u32), 0));
	memcpy(copy, arg, len);
	EXPECT_EQ(-EINVAL, ioctl_sized(fd, cmd, copy, len, len - 1, 0));
	memcpy(copy, arg, len);
	EXPECT_EQ(-E2BIG, ioctl_sized(fd, cmd, copy, len, len + 8, 1));
	memcpy(copy, arg, len);
	EXPECT_EQ(-E2BIG, ioctl_sized(fd, cmd, copy, len, len + 1, 0xff));
}

/* A regular file on a tmpfs mount, or -1 if there is no tmpfs around. */
static int open_tmpfs_file(char *path, size_t len)
{
	static const char * const dirs[] = { "/run", "/dev/shm", "/tmp" };
	struct statfs st;
	unsigned int i;
	int fd;

	for (i = 0; i < ARRAY_SIZE(dirs); i++) {
		if (statfs(dirs[i], &st) || st.f_type != TMPFS_MAGIC)
			continue;
		snprintf(path, len, "%s/luo-uapi-XXXXXX", dirs[i]);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0)
			return fd;
	}
	return -1;
}

/*
 * Open the device for a test; skip if there is no LUO, or (@files) no test
 * module to make preservable files with.
 */
static void open_device(struct __test_metadata *_metadata, int *dev,
			bool files)
{
	*dev = -1;
	if (access(LUO_DEVICE, F_OK))
		SKIP(return, "%s missing (no LUO, or liveupdate=off)",
		     LUO_DEVICE);
	if (files && !luo_test_available())
		SKIP(return, "%s missing (CONFIG_LIVEUPDATE_TEST)",
		     LUO_TEST_DEVICE);
	*dev = luo_open_device();
	ASSERT_GE(*dev, 0) TH_LOG("open %s: %s", LUO_DEVICE, strerror(-*dev));
}

/* Sessions only. */
FIXTURE(liveupdate) {
	int dev;
};

FIXTURE_SETUP(liveupdate)
{
	open_device(_metadata, &self->dev, false);
}

FIXTURE_TEARDOWN(liveupdate)
{
	if (self->dev >= 0)
		close(self->dev);
}

/* Sessions and test files. */
FIXTURE(liveupdate_files) {
	int dev;
};

FIXTURE_SETUP(liveupdate_files)
{
	open_device(_metadata, &self->dev, true);
}

FIXTURE_TEARDOWN(liveupdate_files)
{
	if (self->dev >= 0)
		close(self->dev);
}

/* One opener at a time; closing the device lets the next one in. */
TEST_F(liveupdate, device_single_opener)
{
	int fd, dupfd, sfd;

	EXPECT_EQ(-EBUSY, luo_open_device());

	/* A dup of the opener's fd is the same open file: it works. */
	dupfd = dup(self->dev);
	ASSERT_GE(dupfd, 0);
	close(self->dev);
	self->dev = -1;
	EXPECT_EQ(-EBUSY, luo_open_device());
	sfd = new_session(_metadata, dupfd, "single-opener");
	close(sfd);
	close(dupfd);

	fd = luo_open_device();
	ASSERT_GE(fd, 0) TH_LOG("reopen: %s", strerror(-fd));
	EXPECT_TRUE(luo_has_cloexec(fd));
	self->dev = fd;
	EXPECT_EQ(-EBUSY, luo_open_device());
	sfd = new_session(_metadata, self->dev, "single-opener");
	close(sfd);
}

/* Without CAP_SYS_ADMIN the device cannot be used. */
TEST_F(liveupdate, device_needs_cap_sys_admin)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	const int idx = CAP_TO_INDEX(CAP_SYS_ADMIN);
	const __u32 mask = CAP_TO_MASK(CAP_SYS_ADMIN);
	int fd, sfd = -1, ret;

	/* Only one opener: give the device back first. */
	close(self->dev);
	self->dev = -1;

	ASSERT_EQ(0, syscall(SYS_capget, &hdr, data));
	ASSERT_TRUE(!!(data[idx].effective & mask))
		TH_LOG("the tests need CAP_SYS_ADMIN");
	data[idx].effective &= ~mask;
	ASSERT_EQ(0, syscall(SYS_capset, &hdr, data));

	/* Refused at open, or at the first command. */
	fd = luo_open_device();
	if (fd >= 0) {
		ret = luo_create_session(fd, "no-cap", &sfd);
		EXPECT_EQ(-EPERM, ret);
		if (!ret)
			close(sfd);
		close(fd);
	} else {
		EXPECT_EQ(-EPERM, fd);
	}

	data[idx].effective |= mask;
	ASSERT_EQ(0, syscall(SYS_capset, &hdr, data));
	self->dev = luo_open_device();
	ASSERT_GE(self->dev, 0);
	sfd = new_session(_metadata, self->dev, "no-cap");
	close(sfd);
}

TEST_F(liveupdate, create_session)
{
	char name[LUO_NAME_LEN];
	int sfd;

	sfd = new_session(_metadata, self->dev, "create");
	EXPECT_TRUE(luo_has_cloexec(sfd));
	memset(name, 0x5a, sizeof(name));
	ASSERT_EQ(0, luo_get_name(sfd, name));
	EXPECT_STREQ("create", name);
	EXPECT_EQ(0, luo_file_count(sfd));
	close(sfd);
}

/* Names are unique; closing the session frees its name. */
TEST_F(liveupdate, create_session_duplicate)
{
	int sfd, sfd2 = -1;

	sfd = new_session(_metadata, self->dev, "dup");
	EXPECT_EQ(-EEXIST, luo_create_session(self->dev, "dup", &sfd2));
	/* Names compare as whole strings. */
	sfd2 = new_session(_metadata, self->dev, "dup2");
	close(sfd2);
	sfd2 = new_session(_metadata, self->dev, "du");
	close(sfd2);

	close(sfd);
	sfd = new_session(_metadata, self->dev, "dup");
	close(sfd);
}

TEST_F(liveupdate, create_session_names)
{
	char long_name[LUO_NAME_LEN + 1], name[LUO_NAME_LEN];
	int sfd = -1;

	EXPECT_EQ(-EINVAL, luo_create_session(self->dev, "", &sfd));

	/* 64 bytes without a NUL. */
	memset(long_name, 'x', LUO_NAME_LEN);
	long_name[LUO_NAME_LEN] = '\0';
	EXPECT_EQ(-EINVAL, luo_create_session(self->dev, long_name, &sfd));

	/* 63 bytes plus the NUL: the longest name. */
	ASSERT_EQ(63U, strlen(NAME_63));
	sfd = new_session(_metadata, self->dev, NAME_63);
	memset(name, 0x5a, sizeof(name));
	ASSERT_EQ(0, luo_get_name(sfd, name));
	EXPECT_EQ(0, memcmp(name, NAME_63, sizeof(NAME_63)));
	close(sfd);

	/* The rejected 64-byte name was not created under a cut name. */
	long_name[63] = '\0';
	sfd = new_session(_metadata, self->dev, long_name);
	close(sfd);
}

TEST_F(liveupdate, size_create_session)
{
	struct liveupdate_ioctl_create_session arg = {
		.size = sizeof(arg),
		.fd = -1,
	};
	int sfd;

	luo_set_name(arg.name, "sized");
	check_size_errors(_metadata, self->dev, LIVEUPDATE_IOCTL_CREATE_SESSION,
			  &arg, sizeof(arg));

	/* A longer struct with a zero tail is fine. */
	ASSERT_EQ(0, ioctl_sized(self->dev, LIVEUPDATE_IOCTL_CREATE_SESSION,
				 &arg, sizeof(arg), sizeof(arg) + 8, 0));
	ASSERT_GE(arg.fd, 0);
	close(arg.fd);
	ASSERT_EQ(0, ioctl_sized(self->dev, LIVEUPDATE_IOCTL_CREATE_SESSION,
				 &arg, sizeof(arg), sizeof(arg) + 64, 0));
	ASSERT_GE(arg.fd, 0);
	close(arg.fd);

	/* None of the failures above created the session. */
	sfd = new_session(_metadata, self->dev, "sized");
	close(sfd);
}

TEST_F(liveupdate, size_retrieve_session)
{
	struct liveupdate_ioctl_retrieve_session arg = {
		.size = sizeof(arg),
		.fd = -1,
	};

	/* No incoming session on a fresh boot: the right call is ENOENT. */
	luo_set_name(arg.name, "sized");
	check_size_errors(_metadata, self->dev,
			  LIVEUPDATE_IOCTL_RETRIEVE_SESSION, &arg, sizeof(arg));
	EXPECT_EQ(-ENOENT, ioctl_sized(self->dev,
				       LIVEUPDATE_IOCTL_RETRIEVE_SESSION,
				       &arg, sizeof(arg), sizeof(arg) + 8, 0));
	EXPECT_EQ(-ENOENT, ioctl_sized(self->dev,
				       LIVEUPDATE_IOCTL_RETRIEVE_SESSION,
				       &arg, sizeof(arg), sizeof(arg), 0));
}

TEST_F(liveupdate, size_get_timeline)
{
	struct liveupdate_ioctl_get_timeline arg = {
		.size = sizeof(arg),
		.count = 0,
	};

	check_size_errors(_metadata, self->dev, LIVEUPDATE_IOCTL_GET_TIMELINE,
			  &arg, sizeof(arg));
	ASSERT_EQ(0, ioctl_sized(self->dev, LIVEUPDATE_IOCTL_GET_TIMELINE,
				 &arg, sizeof(arg), sizeof(arg) + 8, 0));
	/* This kernel's own steps at least: the device is ready and open. */
	EXPECT_LE(2U, arg.count);
	arg.reserved = 1;
	EXPECT_EQ(-EINVAL, ioctl_sized(self->dev, LIVEUPDATE_IOCTL_GET_TIMELINE,
				       &arg, sizeof(arg), sizeof(arg), 0));
}

TEST_F(liveupdate, size_list_sessions)
{
	struct liveupdate_ioctl_list_sessions arg = {
		.size = sizeof(arg),
		.count = 0,
	};

	check_size_errors(_metadata, self->dev, LIVEUPDATE_IOCTL_LIST_SESSIONS,
			  &arg, sizeof(arg));
	arg.count = 7;
	ASSERT_EQ(0, ioctl_sized(self->dev, LIVEUPDATE_IOCTL_LIST_SESSIONS,
				 &arg, sizeof(arg), sizeof(arg) + 8, 0));
	EXPECT_EQ(0U, arg.count);
}

TEST_F(liveupdate_files, size_preserve_fd)
{
	struct liveupdate_session_preserve_fd arg = {
		.size = sizeof(arg),
		.token = 1,
	};
	int sfd, obj;

	sfd = new_session(_metadata, self->dev, "sized");
	obj = new_object(_metadata, 1);
	arg.fd = obj;
	check_size_errors(_metadata, sfd, LIVEUPDATE_SESSION_PRESERVE_FD,
			  &arg, sizeof(arg));
	EXPECT_EQ(0, luo_file_count(sfd));

	ASSERT_EQ(0, ioctl_sized(sfd, LIVEUPDATE_SESSION_PRESERVE_FD,
				 &arg, sizeof(arg), sizeof(arg) + 8, 0));
	EXPECT_EQ(1, luo_file_count(sfd));
	close(sfd);
	close(obj);
}

TEST_F(liveupdate_files, size_unpreserve_fd)
{
	struct liveupdate_session_unpreserve_fd arg = {
		.size = sizeof(arg),
		.token = 3,
	};
	int sfd, obj;

	sfd = new_session(_metadata, self->dev, "sized");
	obj = new_object(_metadata, 3);
	ASSERT_EQ(0, luo_preserve_fd(sfd, obj, 3));
	check_size_errors(_metadata, sfd, LIVEUPDATE_SESSION_UNPRESERVE_FD,
			  &arg, sizeof(arg));
	EXPECT_EQ(1, luo_file_count(sfd));

	ASSERT_EQ(0, ioctl_sized(sfd, LIVEUPDATE_SESSION_UNPRESERVE_FD,
				 &arg, sizeof(arg), sizeof(arg) + 8, 0));
	EXPECT_EQ(0, luo_file_count(sfd));
	close(sfd);
	close(obj);
}

TEST_F(liveupdate, size_get_name)
{
	struct liveupdate_session_get_name arg = { .size = sizeof(arg) };
	int sfd;

	sfd = new_session(_metadata, self->dev, "sized");
	check_size_errors(_metadata, sfd, LIVEUPDATE_SESSION_GET_NAME,
			  &arg, sizeof(arg));
	memset(arg.name, 0x5a, sizeof(arg.name));
	ASSERT_EQ(0, ioctl_sized(sfd, LIVEUPDATE_SESSION_GET_NAME,
				 &arg, sizeof(arg), sizeof(arg) + 8, 0));
	EXPECT_STREQ("sized", (char *)arg.name);
	close(sfd);
}

TEST_F(liveupdate, size_query)
{
	struct liveupdate_session_query arg = { .size = sizeof(arg) };
	int sfd;

	sfd = new_session(_metadata, self->dev, "sized");
	check_size_errors(_metadata, sfd, LIVEUPDATE_SESSION_QUERY,
			  &arg, sizeof(arg));
	arg.kind = 0;
	arg.count = 0;
	ASSERT_EQ(0, ioctl_sized(sfd, LIVEUPDATE_SESSION_QUERY,
				 &arg, sizeof(arg), sizeof(arg) + 8, 0));
	EXPECT_EQ((__u32)LIVEUPDATE_SESSION_OUTGOING, arg.kind);
	EXPECT_EQ(0U, arg.count);
	close(sfd);
}

/*
 * RETRIEVE_FD and FINISH fail with EINVAL on an outgoing session anyway,
 * so only the E2BIG half of the size rules tells anything here.
 */
TEST_F(liveupdate, size_retrieve_fd_finish)
{
	struct liveupdate_session_retrieve_fd rfd = {
		.size = sizeof(rfd),
		.fd = -1,
		.token = 1,
	};
	struct liveupdate_session_finish fin = { .size = sizeof(fin) };
	int sfd;

	sfd = new_session(_metadata, self->dev, "sized");
	EXPECT_EQ(-E2BIG, ioctl_sized(sfd, LIVEUPDATE_SESSION_RETRIEVE_FD,
				      &rfd, sizeof(rfd), sizeof(rfd) + 8, 1));
	EXPECT_EQ(-EINVAL, ioctl_sized(sfd, LIVEUPDATE_SESSION_RETRIEVE_FD,
				       &rfd, sizeof(rfd), sizeof(rfd) + 8, 0));
	EXPECT_EQ(-E2BIG, ioctl_sized(sfd, LIVEUPDATE_SESSION_FINISH,
				      &fin, sizeof(fin), sizeof(fin) + 8, 1));
	EXPECT_EQ(-EINVAL, ioctl_sized(sfd, LIVEUPDATE_SESSION_FINISH,
				       &fin, sizeof(fin), sizeof(fin) + 8, 0));
	close(sfd);
}

/* Only the exact command values are known, each on its own kind of fd. */
TEST_F(liveupdate, unknown_ioctl_device)
{
	struct liveupdate_ioctl_create_session arg = { .size = sizeof(arg) };
	struct termios tio;
	int sfd;

	luo_set_name(arg.name, "unknown");
	EXPECT_EQ(-1, ioctl(self->dev, _IO(LIVEUPDATE_IOCTL_TYPE, 0x02), &arg));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(self->dev, _IO(LIVEUPDATE_IOCTL_TYPE, 0x1f), &arg));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(self->dev, _IO(LIVEUPDATE_IOCTL_TYPE, 0x22), &arg));
	EXPECT_EQ(ENOTTY, errno);
	/* Session commands are not device commands. */
	EXPECT_EQ(-1, ioctl(self->dev, LIVEUPDATE_SESSION_GET_NAME, &arg));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(self->dev, LIVEUPDATE_SESSION_QUERY, &arg));
	EXPECT_EQ(ENOTTY, errno);
	/* Another type, or the right number with direction bits. */
	EXPECT_EQ(-1, ioctl(self->dev, _IO(LIVEUPDATE_IOCTL_TYPE + 1, 0x00),
			    &arg));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(self->dev,
			    _IOWR(LIVEUPDATE_IOCTL_TYPE, 0x00, arg), &arg));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(self->dev, TCGETS, &tio));
	EXPECT_EQ(ENOTTY, errno);

	/* None of them created the session. */
	sfd = new_session(_metadata, self->dev, "unknown");
	close(sfd);
}

TEST_F(liveupdate, unknown_ioctl_session)
{
	struct liveupdate_ioctl_create_session arg = { .size = sizeof(arg) };
	struct termios tio;
	int sfd, sfd2;

	sfd = new_session(_metadata, self->dev, "unknown");
	luo_set_name(arg.name, "unknown2");
	EXPECT_EQ(-1, ioctl(sfd, _IO(LIVEUPDATE_IOCTL_TYPE, 0x44), &arg));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(sfd, _IO(LIVEUPDATE_IOCTL_TYPE, 0x5f), &arg));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(sfd, _IO(LIVEUPDATE_IOCTL_TYPE, 0x62), &arg));
	EXPECT_EQ(ENOTTY, errno);
	/* Device commands are not session commands. */
	EXPECT_EQ(-1, ioctl(sfd, LIVEUPDATE_IOCTL_CREATE_SESSION, &arg));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(sfd, LIVEUPDATE_IOCTL_LIST_SESSIONS, &arg));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(sfd, _IO(LIVEUPDATE_IOCTL_TYPE + 1, 0x43), &arg));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(sfd, _IOR(LIVEUPDATE_IOCTL_TYPE, 0x43, arg),
			    &arg));
	EXPECT_EQ(ENOTTY, errno);
	EXPECT_EQ(-1, ioctl(sfd, TCGETS, &tio));
	EXPECT_EQ(ENOTTY, errno);

	sfd2 = new_session(_metadata, self->dev, "unknown2");
	close(sfd2);
	close(sfd);
}

/* An argument pointer the kernel cannot read. */
TEST_F(liveupdate, bad_argument_pointer)
{
	int sfd;

	EXPECT_EQ(-1, ioctl(self->dev, LIVEUPDATE_IOCTL_CREATE_SESSION, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(self->dev, LIVEUPDATE_IOCTL_LIST_SESSIONS, NULL));
	EXPECT_EQ(EFAULT, errno);
	sfd = new_session(_metadata, self->dev, "efault");
	EXPECT_EQ(-1, ioctl(sfd, LIVEUPDATE_SESSION_GET_NAME, NULL));
	EXPECT_EQ(EFAULT, errno);
	EXPECT_EQ(-1, ioctl(sfd, LIVEUPDATE_SESSION_QUERY, NULL));
	EXPECT_EQ(EFAULT, errno);
	close(sfd);
}

TEST_F(liveupdate, retrieve_session_errors)
{
	char long_name[LUO_NAME_LEN + 1];
	int sfd, rfd = -1;

	EXPECT_EQ(-ENOENT, luo_retrieve_session(self->dev, "nonexistent",
						&rfd));
	EXPECT_EQ(-EINVAL, luo_retrieve_session(self->dev, "", &rfd));
	memset(long_name, 'y', LUO_NAME_LEN);
	long_name[LUO_NAME_LEN] = '\0';
	EXPECT_EQ(-EINVAL, luo_retrieve_session(self->dev, long_name, &rfd));

	/* Outgoing sessions are not incoming ones. */
	sfd = new_session(_metadata, self->dev, "outgoing");
	EXPECT_EQ(-ENOENT, luo_retrieve_session(self->dev, "outgoing", &rfd));
	close(sfd);
}

/* A fresh boot has no incoming session; outgoing ones are not listed. */
TEST_F(liveupdate, list_sessions_fresh_boot)
{
	char names[4][LUO_NAME_LEN], untouched[4][LUO_NAME_LEN];
	__u32 count = 0;
	int sfd;

	ASSERT_EQ(0, luo_list_sessions(self->dev, NULL, &count));
	EXPECT_EQ(0U, count);

	sfd = new_session(_metadata, self->dev, "listed");
	memset(names, 0xa5, sizeof(names));
	memset(untouched, 0xa5, sizeof(untouched));
	count = ARRAY_SIZE(names);
	ASSERT_EQ(0, luo_list_sessions(self->dev, names, &count));
	EXPECT_EQ(0U, count);
	EXPECT_EQ(0, memcmp(names, untouched, sizeof(names)));
	close(sfd);
}

TEST_F(liveupdate_files, preserve_fd)
{
	struct liveupdate_file_info info[2];
	__u32 kind, count = ARRAY_SIZE(info);
	int sfd, obj;

	sfd = new_session(_metadata, self->dev, "preserve");
	obj = new_object(_metadata, 42);
	ASSERT_EQ(0, luo_preserve_fd(sfd, obj, 7));

	ASSERT_EQ(0, luo_query(sfd, &kind, info, &count));
	ASSERT_EQ(1U, count);
	EXPECT_EQ(7ULL, info[0].token);
	EXPECT_EQ((__u32)LIVEUPDATE_FILE_PRESERVED, info[0].state);

	/* The file stays usable. */
	EXPECT_TRUE(luo_test_has_value(obj, 42));
	ASSERT_EQ(0, luo_test_cmd(obj, "value=43"));
	EXPECT_TRUE(luo_test_has_value(obj, 43));

	/* Token 0 and the largest token are tokens like any other. */
	close(obj);
	obj = new_object(_metadata, 44);
	EXPECT_EQ(0, luo_preserve_fd(sfd, obj, 0));
	close(obj);
	obj = new_object(_metadata, 45);
	EXPECT_EQ(0, luo_preserve_fd(sfd, obj, ~0ULL));
	close(obj);
	EXPECT_EQ(3, luo_file_count(sfd));
	close(sfd);
}

/* QUERY says SETTLING while the handler says it is still settling. */
TEST_F(liveupdate_files, query_settling)
{
	struct liveupdate_file_info info[1];
	__u32 kind, count = ARRAY_SIZE(info);
	int sfd, obj;

	sfd = new_session(_metadata, self->dev, "settling");
	obj = new_object(_metadata, 46);
	ASSERT_EQ(0, luo_test_cmd(obj, "settling=1"));
	ASSERT_EQ(0, luo_preserve_fd(sfd, obj, 1));
	ASSERT_EQ(0, luo_query(sfd, &kind, info, &count));
	ASSERT_EQ(1U, count);
	EXPECT_EQ((__u32)LIVEUPDATE_FILE_SETTLING, info[0].state);

	ASSERT_EQ(0, luo_test_cmd(obj, "settling=0"));
	ASSERT_EQ(0, luo_query(sfd, &kind, info, &count));
	EXPECT_EQ((__u32)LIVEUPDATE_FILE_PRESERVED, info[0].state);
	EXPECT_EQ(-EINVAL, luo_test_cmd(obj, "settling=maybe"));
	close(obj);
	close(sfd);
}

TEST_F(liveupdate, preserve_fd_ebadf)
{
	int sfd, fd;

	sfd = new_session(_metadata, self->dev, "ebadf");
	EXPECT_EQ(-EBADF, luo_preserve_fd(sfd, -1, 1));
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	close(fd);
	EXPECT_EQ(-EBADF, luo_preserve_fd(sfd, fd, 1));
	EXPECT_EQ(-EBADF, luo_preserve_fd(sfd, INT_MAX, 1));
	EXPECT_EQ(0, luo_file_count(sfd));
	close(sfd);
}

/* Files that no handler supports. */
TEST_F(liveupdate, preserve_fd_unsupported)
{
	char path[64];
	int sfd, sfd2, fds[2], efd, tfd, nfd;

	sfd = new_session(_metadata, self->dev, "unsupported");
	sfd2 = new_session(_metadata, self->dev, "unsupported2");

	ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
	EXPECT_EQ(-ENOENT, luo_preserve_fd(sfd, fds[0], 1));
	EXPECT_EQ(-ENOENT, luo_preserve_fd(sfd, fds[1], 2));
	close(fds[0]);
	close(fds[1]);

	efd = eventfd(0, EFD_CLOEXEC);
	ASSERT_GE(efd, 0);
	EXPECT_EQ(-ENOENT, luo_preserve_fd(sfd, efd, 3));
	close(efd);

	nfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	ASSERT_GE(nfd, 0);
	EXPECT_EQ(-ENOENT, luo_preserve_fd(sfd, nfd, 4));
	close(nfd);

	tfd = open_tmpfs_file(path, sizeof(path));
	if (tfd >= 0) {
		EXPECT_EQ(-ENOENT, luo_preserve_fd(sfd, tfd, 5));
		unlink(path);
		close(tfd);
	} else {
		TH_LOG("no tmpfs mount: regular tmpfs file not tried");
	}

	/* LUO's own files. */
	EXPECT_EQ(-ENOENT, luo_preserve_fd(sfd, self->dev, 6));
	EXPECT_EQ(-ENOENT, luo_preserve_fd(sfd, sfd, 7));
	EXPECT_EQ(-ENOENT, luo_preserve_fd(sfd, sfd2, 8));

	EXPECT_EQ(0, luo_file_count(sfd));
	close(sfd2);
	close(sfd);
}

TEST_F(liveupdate_files, preserve_fd_duplicate_token)
{
	int sfd, sfd2, a, b;

	sfd = new_session(_metadata, self->dev, "token");
	sfd2 = new_session(_metadata, self->dev, "token2");
	a = new_object(_metadata, 1);
	b = new_object(_metadata, 2);
	ASSERT_EQ(0, luo_preserve_fd(sfd, a, 5));
	EXPECT_EQ(-EEXIST, luo_preserve_fd(sfd, b, 5));
	EXPECT_EQ(1, luo_file_count(sfd));
	/* Tokens are per session. */
	EXPECT_EQ(0, luo_preserve_fd(sfd2, b, 5));
	close(sfd2);
	EXPECT_EQ(0, luo_preserve_fd(sfd, b, 6));
	EXPECT_EQ(2, luo_file_count(sfd));
	close(sfd);
	close(a);
	close(b);
}

/* A file can be in one session, under one token, at a time. */
TEST_F(liveupdate_files, preserve_fd_busy)
{
	int sfd, sfd2, a, dupa, fresh;

	sfd = new_session(_metadata, self->dev, "busy");
	sfd2 = new_session(_metadata, self->dev, "busy2");
	a = new_object(_metadata, 1);
	ASSERT_EQ(0, luo_preserve_fd(sfd, a, 1));
	EXPECT_EQ(-EBUSY, luo_preserve_fd(sfd2, a, 1));
	EXPECT_EQ(-EBUSY, luo_preserve_fd(sfd, a, 2));
	dupa = dup(a);
	ASSERT_GE(dupa, 0);
	EXPECT_EQ(-EBUSY, luo_preserve_fd(sfd2, dupa, 3));
	EXPECT_EQ(1, luo_file_count(sfd));
	EXPECT_EQ(0, luo_file_count(sfd2));

	/* A new open of the device is a new file: it is not busy. */
	fresh = new_object(_metadata, 1);
	EXPECT_EQ(0, luo_preserve_fd(sfd2, fresh, 1));
	close(fresh);
	close(dupa);
	close(sfd2);
	close(sfd);
	close(a);
}

/* Closing a session gives its files back: they can be preserved again. */
TEST_F(liveupdate_files, preserve_after_session_close)
{
	int sfd, a;

	sfd = new_session(_metadata, self->dev, "first");
	a = new_object(_metadata, 17);
	ASSERT_EQ(0, luo_preserve_fd(sfd, a, 1));
	close(sfd);

	sfd = new_session(_metadata, self->dev, "second");
	EXPECT_EQ(0, luo_preserve_fd(sfd, a, 1));
	EXPECT_EQ(1, luo_file_count(sfd));
	close(sfd);
	close(a);
}

TEST_F(liveupdate_files, unpreserve_fd)
{
	struct liveupdate_session_unpreserve_fd arg = {
		.size = sizeof(arg),
		.reserved = 1,
		.token = 1,
	};
	struct liveupdate_file_info info[3];
	__u32 kind, count = ARRAY_SIZE(info);
	unsigned long long vals[4];
	int sfd, a, b, c, live;
	char *events;

	live = live_count(_metadata);
	sfd = new_session(_metadata, self->dev, "unpreserve");
	a = new_object(_metadata, 201);
	b = new_object(_metadata, 202);
	c = new_object(_metadata, 203);
	ASSERT_EQ(0, luo_preserve_fd(sfd, a, 1));
	ASSERT_EQ(0, luo_preserve_fd(sfd, b, 2));
	ASSERT_EQ(0, luo_preserve_fd(sfd, c, 3));
	EXPECT_EQ(live + 3, live_count(_metadata));
	ASSERT_EQ(0, luo_test_clear_events());

	/* From the middle, not only last-first. */
	EXPECT_EQ(0, luo_unpreserve_fd(sfd, 2));
	ASSERT_EQ(0, luo_query(sfd, &kind, info, &count));
	ASSERT_EQ(2U, count);
	EXPECT_EQ(1ULL, info[0].token);
	EXPECT_EQ(3ULL, info[1].token);
	EXPECT_EQ(live + 2, live_count(_metadata));
	events = read_events(_metadata);
	EXPECT_EQ(1, luo_event_values(events, "unpreserve", vals, 4));
	EXPECT_EQ(202ULL, vals[0]);
	free(events);

	EXPECT_EQ(-ENOENT, luo_unpreserve_fd(sfd, 2));
	EXPECT_EQ(-ENOENT, luo_unpreserve_fd(sfd, 99));
	EXPECT_EQ(-1, ioctl(sfd, LIVEUPDATE_SESSION_UNPRESERVE_FD, &arg));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(2, luo_file_count(sfd));

	/* b is an ordinary file again: usable, preservable, token free. */
	EXPECT_TRUE(luo_test_has_value(b, 202));
	EXPECT_EQ(0, luo_preserve_fd(sfd, b, 2));
	EXPECT_EQ(3, luo_file_count(sfd));

	close(sfd);
	EXPECT_EQ(live, live_count(_metadata));
	close(a);
	close(b);
	close(c);
}

/* RETRIEVE_FD and FINISH are for incoming sessions. */
TEST_F(liveupdate_files, outgoing_rejects_retrieve_and_finish)
{
	int sfd, a, fd = -1;

	sfd = new_session(_metadata, self->dev, "outgoing");
	a = new_object(_metadata, 5);
	ASSERT_EQ(0, luo_preserve_fd(sfd, a, 1));
	EXPECT_EQ(-EINVAL, luo_retrieve_fd(sfd, 1, &fd));
	EXPECT_EQ(-EINVAL, luo_finish(sfd));
	/* Nothing changed. */
	EXPECT_EQ(1, luo_file_count(sfd));
	EXPECT_EQ(0, luo_unpreserve_fd(sfd, 1));
	close(sfd);
	close(a);
}

TEST_F(liveupdate, get_name)
{
	struct liveupdate_session_get_name arg = {
		.size = sizeof(arg),
		.reserved = 1,
	};
	char name[LUO_NAME_LEN];
	int sfd, sfd2;

	sfd = new_session(_metadata, self->dev, "name-one");
	sfd2 = new_session(_metadata, self->dev, "name-two");
	memset(name, 0x5a, sizeof(name));
	ASSERT_EQ(0, luo_get_name(sfd, name));
	EXPECT_STREQ("name-one", name);
	memset(name, 0x5a, sizeof(name));
	ASSERT_EQ(0, luo_get_name(sfd2, name));
	EXPECT_STREQ("name-two", name);

	memset(arg.name, 0x5a, sizeof(arg.name));
	EXPECT_EQ(-1, ioctl(sfd, LIVEUPDATE_SESSION_GET_NAME, &arg));
	EXPECT_EQ(EINVAL, errno);
	close(sfd2);
	close(sfd);
}

TEST_F(liveupdate_files, query)
{
	struct liveupdate_session_query arg = {
		.size = sizeof(arg),
		.reserved = 1,
	};
	struct liveupdate_file_info info[4], untouched;
	__u32 kind, count;
	int sfd, obj[3], i;

	sfd = new_session(_metadata, self->dev, "query");

	kind = 0;
	count = 0;
	ASSERT_EQ(0, luo_query(sfd, &kind, NULL, &count));
	EXPECT_EQ((__u32)LIVEUPDATE_SESSION_OUTGOING, kind);
	EXPECT_EQ(0U, count);

	for (i = 0; i < 3; i++) {
		obj[i] = new_object(_metadata, 100 + i);
		ASSERT_EQ(0, luo_preserve_fd(sfd, obj[i], 30 - 10 * i));
	}

	/* Count 0 asks for the number only. */
	count = 0;
	ASSERT_EQ(0, luo_query(sfd, &kind, NULL, &count));
	EXPECT_EQ(3U, count);

	/* Room for more: all three, in preservation order. */
	memset(info, 0xa5, sizeof(info));
	memset(&untouched, 0xa5, sizeof(untouched));
	count = ARRAY_SIZE(info);
	ASSERT_EQ(0, luo_query(sfd, &kind, info, &count));
	EXPECT_EQ(3U, count);
	for (i = 0; i < 3; i++) {
		EXPECT_EQ((__u64)(30 - 10 * i), info[i].token);
		EXPECT_EQ((__u32)LIVEUPDATE_FILE_PRESERVED, info[i].state);
		EXPECT_EQ(0U, info[i].error);
		EXPECT_STREQ(LUO_TEST_COMPATIBLE, (char *)info[i].compatible);
	}
	EXPECT_EQ(0, memcmp(&info[3], &untouched, sizeof(untouched)));

	/* Room for fewer: the first ones, and the full count. */
	memset(info, 0xa5, sizeof(info));
	count = 2;
	ASSERT_EQ(0, luo_query(sfd, &kind, info, &count));
	EXPECT_EQ(3U, count);
	EXPECT_EQ(30ULL, info[0].token);
	EXPECT_EQ(20ULL, info[1].token);
	EXPECT_EQ(0, memcmp(&info[2], &untouched, sizeof(untouched)));

	EXPECT_EQ(-1, ioctl(sfd, LIVEUPDATE_SESSION_QUERY, &arg));
	EXPECT_EQ(EINVAL, errno);

	close(sfd);
	for (i = 0; i < 3; i++)
		close(obj[i]);
}

/* A QUERY for one file, into @files. */
struct query_call {
	int sfd;
	void *files;
	__u32 kind;
	__u32 count;
};

static int query_call(void *arg)
{
	struct query_call *q = arg;

	q->count = 1;
	return luo_query(q->sfd, &q->kind, q->files, &q->count);
}

/*
 * QUERY writes to userspace with no LUO lock held: while its write of the
 * files stalls in a userfaultfd fault, what a reboot takes (the state lock
 * for writing, as the debugfs view does) and the session (another QUERY)
 * are free.  Each probe must end within LUO_STALL_PROBE_MS.
 */
TEST_F(liveupdate_files, query_reply_fault_holds_no_lock)
{
	struct liveupdate_file_info info;
	struct query_call q = {}, probe_q = { .files = &info };
	const struct {
		const char *desc;
		int (*fn)(void *arg);
		void *arg;
	} probes[] = {
		{ "state lock for writing", luo_probe_write_side, NULL },
		{ "QUERY of the same session", query_call, &probe_q },
	};
	struct liveupdate_file_info *out;
	int sfd, obj, ret, cmd_ret, probe_ret;
	struct luo_stall st;
	unsigned int i;

	/*
	 * 32-bit glibc waits for a thread with the 32-bit time futex, which
	 * the test kernels leave out (no CONFIG_COMPAT_32BIT_TIME); the
	 * 64-bit build runs this, through the same command code.
	 */
	if (sizeof(long) == 4)
		SKIP(return, "needs threads: no 32-bit time futex in the test kernels");
	if (access(LUO_DEBUGFS_SESSIONS, R_OK))
		SKIP(return, "%s missing (CONFIG_DEBUG_FS)", LUO_DEBUGFS_SESSIONS);
	ret = luo_stall_init(&st, false, NULL, 0);
	if (ret)
		SKIP(return, "no userfaultfd (CONFIG_USERFAULTFD): %s",
		     strerror(-ret));
	luo_stall_fini(&st);

	sfd = new_session(_metadata, self->dev, "query-fault");
	obj = new_object(_metadata, 701);
	ASSERT_EQ(0, luo_preserve_fd(sfd, obj, 7));
	q.sfd = sfd;
	probe_q.sfd = sfd;

	for (i = 0; i < ARRAY_SIZE(probes); i++) {
		ASSERT_EQ(0, luo_stall_init(&st, false, NULL, 0));
		q.files = st.page;
		ret = luo_stall_check(&st, query_call, &q, probes[i].fn,
				      probes[i].arg, &cmd_ret, &probe_ret);
		EXPECT_EQ(1, ret) TH_LOG("%s while QUERY's write stalls: %s",
					 probes[i].desc,
					 ret < 0 ? strerror(-ret) : "blocked");
		EXPECT_EQ(0, probe_ret) TH_LOG("%s: %s", probes[i].desc,
					       strerror(-probe_ret));
		EXPECT_EQ(0, cmd_ret) TH_LOG("QUERY: %s", strerror(-cmd_ret));
		EXPECT_EQ(1U, q.count);
		out = st.page;
		EXPECT_EQ(7ULL, out->token);
		luo_stall_fini(&st);
	}

	close(sfd);
	close(obj);
}

/* Closing a session unpreserves its files, last preserved first. */
TEST_F(liveupdate_files, close_session_unpreserves_last_first)
{
	unsigned long long vals[4];
	int sfd, obj[3], i, live;
	char *events;

	live = live_count(_metadata);
	sfd = new_session(_metadata, self->dev, "closing");
	for (i = 0; i < 3; i++) {
		obj[i] = new_object(_metadata, 301 + i);
		ASSERT_EQ(0, luo_preserve_fd(sfd, obj[i], i + 1));
	}
	EXPECT_EQ(live + 3, live_count(_metadata));
	ASSERT_EQ(0, luo_test_clear_events());

	close(sfd);
	events = read_events(_metadata);
	ASSERT_EQ(3, luo_event_values(events, "unpreserve", vals, 4))
		TH_LOG("events:\n%s", events);
	EXPECT_EQ(303ULL, vals[0]);
	EXPECT_EQ(302ULL, vals[1]);
	EXPECT_EQ(301ULL, vals[2]);
	free(events);
	EXPECT_EQ(live, live_count(_metadata));

	/* The name is free again, and so are the files. */
	sfd = new_session(_metadata, self->dev, "closing");
	for (i = 0; i < 3; i++) {
		EXPECT_EQ(0, luo_preserve_fd(sfd, obj[i], i + 1));
		close(obj[i]);
	}
	close(sfd);
}

/* The session holds its files: closing their fds does not drop them. */
TEST_F(liveupdate_files, session_holds_files)
{
	unsigned long long vals[2];
	int sfd, obj, live;
	char *events;

	live = live_count(_metadata);
	sfd = new_session(_metadata, self->dev, "holds");
	obj = new_object(_metadata, 401);
	ASSERT_EQ(0, luo_preserve_fd(sfd, obj, 1));
	ASSERT_EQ(0, luo_test_clear_events());
	close(obj);
	EXPECT_EQ(live + 1, live_count(_metadata));
	EXPECT_EQ(1, luo_file_count(sfd));
	events = read_events(_metadata);
	EXPECT_EQ(0, luo_event_values(events, "unpreserve", vals, 2));
	free(events);

	close(sfd);
	EXPECT_EQ(live, live_count(_metadata));
	events = read_events(_metadata);
	EXPECT_EQ(1, luo_event_values(events, "unpreserve", vals, 2));
	EXPECT_EQ(401ULL, vals[0]);
	free(events);
}

/* A session belongs to its fd, not to the device fd it came from. */
TEST_F(liveupdate, session_outlives_device_fd)
{
	char name[LUO_NAME_LEN];
	int sfd, sfd2 = -1;

	sfd = new_session(_metadata, self->dev, "outlives");
	close(self->dev);
	self->dev = luo_open_device();
	ASSERT_GE(self->dev, 0);

	memset(name, 0x5a, sizeof(name));
	ASSERT_EQ(0, luo_get_name(sfd, name));
	EXPECT_STREQ("outlives", name);
	EXPECT_EQ(-EEXIST, luo_create_session(self->dev, "outlives", &sfd2));
	close(sfd);
	sfd2 = new_session(_metadata, self->dev, "outlives");
	close(sfd2);
}

/* A handler's preserve error is returned as is and leaves nothing. */
TEST_F(liveupdate_files, preserve_failure_injection)
{
	struct liveupdate_file_info info[2];
	__u32 kind, count = ARRAY_SIZE(info);
	int sfd, a, b, live;

	live = live_count(_metadata);
	sfd = new_session(_metadata, self->dev, "inject");
	a = new_object(_metadata, 501);
	ASSERT_EQ(0, luo_test_set_fail(a, "preserve", EINVAL, 1));
	EXPECT_EQ(-EINVAL, luo_preserve_fd(sfd, a, 1));
	EXPECT_EQ(live, live_count(_metadata));
	EXPECT_EQ(0, luo_file_count(sfd));

	/* The token and the file are free: the retry works. */
	EXPECT_EQ(0, luo_preserve_fd(sfd, a, 1));
	EXPECT_EQ(live + 1, live_count(_metadata));

	/* Any errno passes through; "always" keeps failing until reset. */
	b = new_object(_metadata, 502);
	ASSERT_EQ(0, luo_test_set_fail(b, "preserve", ENOSPC, 0));
	EXPECT_EQ(-ENOSPC, luo_preserve_fd(sfd, b, 2));
	EXPECT_EQ(-ENOSPC, luo_preserve_fd(sfd, b, 2));
	EXPECT_EQ(live + 1, live_count(_metadata));
	ASSERT_EQ(0, luo_test_cmd(b, "fail=none"));
	EXPECT_EQ(0, luo_preserve_fd(sfd, b, 2));
	EXPECT_EQ(live + 2, live_count(_metadata));

	ASSERT_EQ(0, luo_query(sfd, &kind, info, &count));
	ASSERT_EQ(2U, count);
	EXPECT_EQ(1ULL, info[0].token);
	EXPECT_EQ(2ULL, info[1].token);

	close(sfd);
	EXPECT_EQ(live, live_count(_metadata));
	close(a);
	close(b);
}

/* A handler cannot go away while files it preserved are live. */
TEST_F(liveupdate_files, unregister_busy_handler)
{
	int sfd, obj;

	ASSERT_EQ(0, luo_test_enable_ghost());
	sfd = new_session(_metadata, self->dev, "ghostly");
	obj = new_object(_metadata, 601);
	ASSERT_EQ(0, luo_test_cmd(obj, "ghost=1"));
	ASSERT_EQ(0, luo_preserve_fd(sfd, obj, 1));
	EXPECT_EQ(-EBUSY, luo_write_file(LUO_TEST_GHOST, "0"));

	/* Unpreserved: the handler is free to go, and new files with it. */
	ASSERT_EQ(0, luo_unpreserve_fd(sfd, 1));
	EXPECT_EQ(0, luo_write_file(LUO_TEST_GHOST, "0"));
	EXPECT_EQ(-ENOENT, luo_preserve_fd(sfd, obj, 1));
	close(sfd);
	close(obj);
}

TEST_HARNESS_MAIN
