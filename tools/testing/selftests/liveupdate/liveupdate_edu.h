/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A userspace driver for QEMU's "edu" PCI device, as a VMM would own a
 * passthrough device: bound to vfio-pci, opened through its device cdev,
 * bound to an iommufd and attached to an IOAS whose IOVAs map memfd
 * memory, BAR0 mmap'ed to drive the device's DMA engine.
 *
 * edu (QEMU's docs/specs/edu.rst) is PCI 1234:11e8 with one 1 MiB MMIO
 * BAR: an identification register, a liveness register that reads back
 * the inverse of what was written, and a DMA engine that copies up to
 * 4 KiB between guest memory and a buffer inside the device (at device
 * address 0x40000).  A transfer runs about 100 ms of virtual time after it
 * is started, through the IOMMU, and clears the RUN bit of its command
 * register when it is done.  The device clamps DMA addresses to 28 bits:
 * IOVAs stay below 256 MiB.
 *
 * The test machine (harness/run-suite.py, "edu") adds -device intel-iommu
 * and -device edu to QEMU, and intel_iommu=on to the kernel command line.
 */
#ifndef __LIVEUPDATE_EDU_H
#define __LIVEUPDATE_EDU_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <linux/iommufd.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#define EDU_VENDOR		0x1234
#define EDU_DEVICE		0x11e8

#define EDU_REG_ID		0x00	/* 0xRRrr00ed: major, minor, 00, ed */
#define EDU_REG_LIVENESS	0x04	/* reads back ~value */
#define EDU_REG_DMA_SRC		0x80
#define EDU_REG_DMA_DST		0x88
#define EDU_REG_DMA_COUNT	0x90
#define EDU_REG_DMA_CMD		0x98
#define EDU_DMA_RUN		0x1
#define EDU_DMA_TO_RAM		0x2	/* device buffer -> guest memory */
#define EDU_BUF			0x40000	/* the device's buffer, 4 KiB */
#define EDU_BUF_SIZE		4096
/*
 * Some QEMU versions refuse a transfer that reaches the end of the buffer
 * (an off-by-one in their range check), and a refused range stops the
 * whole machine: transfers stay strictly inside it.
 */
#define EDU_DMA_MAX		(EDU_BUF_SIZE / 2)
#define EDU_IOVA_LIMIT		0x10000000ULL	/* 256 MiB */

#define EDU_PCI_DIR		"/sys/bus/pci/devices"

/**
 * struct edu - one edu device owned through vfio-pci and iommufd
 * @bdf: its PCI address, "0000:00:03.0"
 * @iommufd: /dev/iommu, or -1
 * @devfd: the vfio device cdev, or -1
 * @ioas_id: the IOAS the device is attached to
 * @dev_id: the iommufd device object of the binding
 * @hwpt_id: the hardware page table ATTACH picked for the IOAS
 * @bar: BAR0, mapped through the device cdev
 * @bar_size: its size
 */
struct edu {
	char bdf[32];
	int iommufd;
	int devfd;
	__u32 ioas_id;
	__u32 dev_id;
	__u32 hwpt_id;
	volatile void *bar;
	size_t bar_size;
};

static inline long edu_sysfs_hex(const char *bdf, const char *attr)
{
	char path[128], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), EDU_PCI_DIR "/%s/%s", bdf, attr);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	return strtol(buf, NULL, 16);
}

/* The PCI address of the first edu device into @e->bdf: 0 or -ENODEV. */
static inline int edu_find(struct edu *e)
{
	DIR *d = opendir(EDU_PCI_DIR);
	struct dirent *de;
	int ret = -ENODEV;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (edu_sysfs_hex(de->d_name, "vendor") == EDU_VENDOR &&
		    edu_sysfs_hex(de->d_name, "device") == EDU_DEVICE) {
			snprintf(e->bdf, sizeof(e->bdf), "%.31s", de->d_name);
			ret = 0;
			break;
		}
	}
	closedir(d);
	return ret;
}

static inline int edu_write_attr(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	close(fd);
	return n == (ssize_t)strlen(val) ? 0 : (n < 0 ? -errno : -EIO);
}

#define EDU_DRV_LEN	64

/* The driver bound to @bdf into @drv ("" if none): 0 or -errno. */
static inline int edu_driver(const char *bdf, char drv[EDU_DRV_LEN])
{
	char path[128], link[128];
	ssize_t n;

	snprintf(path, sizeof(path), EDU_PCI_DIR "/%s/driver", bdf);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0) {
		drv[0] = 0;
		return errno == ENOENT ? 0 : -errno;
	}
	link[n] = 0;
	snprintf(drv, EDU_DRV_LEN, "%.63s",
		 strrchr(link, '/') ? strrchr(link, '/') + 1 : link);
	return 0;
}

/* Bind @bdf to vfio-pci, as an administrator hands a device to a VMM. */
static inline int edu_bind_vfio(const char *bdf)
{
	char path[128], drv[EDU_DRV_LEN];
	int ret = edu_driver(bdf, drv);

	if (ret)
		return ret;
	if (!strcmp(drv, "vfio-pci"))
		return 0;
	if (drv[0]) {
		snprintf(path, sizeof(path), EDU_PCI_DIR "/%s/driver/unbind",
			 bdf);
		ret = edu_write_attr(path, bdf);
		if (ret)
			return ret;
	}
	snprintf(path, sizeof(path), EDU_PCI_DIR "/%s/driver_override", bdf);
	ret = edu_write_attr(path, "vfio-pci");
	if (ret)
		return ret;
	ret = edu_write_attr("/sys/bus/pci/drivers_probe", bdf);
	if (ret)
		return ret;
	ret = edu_driver(bdf, drv);
	return ret ? ret : strcmp(drv, "vfio-pci") ? -ENXIO : 0;
}

/* Open the vfio device cdev of @bdf (/dev/vfio/devices/vfioN). */
static inline int edu_open_cdev(const char *bdf)
{
	char path[128];
	struct dirent *de;
	int fd = -ENODEV;
	DIR *d;

	snprintf(path, sizeof(path), EDU_PCI_DIR "/%s/vfio-dev", bdf);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "vfio", 4))
			continue;
		snprintf(path, sizeof(path), "/dev/vfio/devices/%.32s",
			 de->d_name);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			fd = -errno;
		break;
	}
	closedir(d);
	return fd;
}

static inline int edu_ioas_alloc(int iommufd, __u32 *ioas_id)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };

	if (ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc))
		return -errno;
	*ioas_id = alloc.out_ioas_id;
	return 0;
}

/* Map @len bytes of @memfd from @offset at @iova, readable and writable. */
static inline int edu_map_file(int iommufd, __u32 ioas_id, int memfd,
			       __u64 offset, __u64 len, __u64 iova)
{
	struct iommu_ioas_map_file map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = ioas_id,
		.fd = memfd,
		.start = offset,
		.length = len,
		.iova = iova,
	};

	return ioctl(iommufd, IOMMU_IOAS_MAP_FILE, &map) ? -errno : 0;
}

/* IOMMU_IOAS_UNMAP of [@iova, @iova + @len): the bytes unmapped, or -errno. */
static inline long long edu_unmap_len(int iommufd, __u32 ioas_id, __u64 iova,
				      __u64 len)
{
	struct iommu_ioas_unmap unmap = {
		.size = sizeof(unmap),
		.ioas_id = ioas_id,
		.iova = iova,
		.length = len,
	};

	return ioctl(iommufd, IOMMU_IOAS_UNMAP, &unmap) ? -errno :
							  (long long)unmap.length;
}

static inline int edu_unmap(int iommufd, __u32 ioas_id, __u64 iova,
			    __u64 len)
{
	long long ret = edu_unmap_len(iommufd, ioas_id, iova, len);

	return ret < 0 ? ret : 0;
}

/* IOMMU_DESTROY of object @id: 0 or -errno. */
static inline int edu_destroy(int iommufd, __u32 id)
{
	struct iommu_destroy arg = { .size = sizeof(arg), .id = id };

	return ioctl(iommufd, IOMMU_DESTROY, &arg) ? -errno : 0;
}

/*
 * Map @len bytes of user memory at @va at @iova (IOMMU_IOAS_MAP): memory
 * no file backs, which an iommufd cannot carry across a live update.
 */
static inline int edu_map_user(int iommufd, __u32 ioas_id, void *va,
			       __u64 len, __u64 iova)
{
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = ioas_id,
		.user_va = (uintptr_t)va,
		.length = len,
		.iova = iova,
	};

	return ioctl(iommufd, IOMMU_IOAS_MAP, &map) ? -errno : 0;
}

/* The number of usable IOVA ranges of @ioas_id (IOMMU_IOAS_IOVA_RANGES). */
static inline int edu_iova_ranges(int iommufd, __u32 ioas_id)
{
	struct iommu_iova_range ranges[16];
	struct iommu_ioas_iova_ranges arg = {
		.size = sizeof(arg),
		.ioas_id = ioas_id,
		.num_iovas = 16,
		.allowed_iovas = (uintptr_t)ranges,
	};

	return ioctl(iommufd, IOMMU_IOAS_IOVA_RANGES, &arg) ? -errno :
							     (int)arg.num_iovas;
}

/* A paging HWPT for device @dev_id over @pt_id (IOMMU_HWPT_ALLOC). */
static inline int edu_hwpt_alloc(int iommufd, __u32 dev_id, __u32 pt_id,
				 __u32 *hwpt_id)
{
	struct iommu_hwpt_alloc alloc = {
		.size = sizeof(alloc),
		.dev_id = dev_id,
		.pt_id = pt_id,
		.data_type = IOMMU_HWPT_DATA_NONE,
	};

	if (ioctl(iommufd, IOMMU_HWPT_ALLOC, &alloc))
		return -errno;
	*hwpt_id = alloc.out_hwpt_id;
	return 0;
}

/* Attach the bound device to @pt_id (IOAS or HWPT), or move it there. */
static inline int edu_attach(struct edu *e, __u32 pt_id)
{
	struct vfio_device_attach_iommufd_pt attach = {
		.argsz = sizeof(attach),
		.pt_id = pt_id,
	};

	if (ioctl(e->devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
		return -errno;
	e->hwpt_id = attach.pt_id;
	return 0;
}

static inline int edu_detach(struct edu *e)
{
	struct vfio_device_detach_iommufd_pt detach = {
		.argsz = sizeof(detach),
	};

	return ioctl(e->devfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &detach) ?
	       -errno : 0;
}

/* Bind the device to @e->iommufd and attach it to @pt_id (IOAS or HWPT). */
static inline int edu_bind_attach(struct edu *e, __u32 pt_id)
{
	struct vfio_device_bind_iommufd bind = {
		.argsz = sizeof(bind),
		.iommufd = e->iommufd,
	};

	if (ioctl(e->devfd, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		return -errno;
	e->dev_id = bind.out_devid;
	return edu_attach(e, pt_id);
}

/* mmap BAR0 of the device through its cdev. */
static inline int edu_map_bar(struct edu *e)
{
	struct vfio_region_info info = {
		.argsz = sizeof(info),
		.index = VFIO_PCI_BAR0_REGION_INDEX,
	};
	void *p;

	if (ioctl(e->devfd, VFIO_DEVICE_GET_REGION_INFO, &info))
		return -errno;
	if (!(info.flags & VFIO_REGION_INFO_FLAG_MMAP) || !info.size)
		return -EOPNOTSUPP;
	p = mmap(NULL, info.size, PROT_READ | PROT_WRITE, MAP_SHARED,
		 e->devfd, info.offset);
	if (p == MAP_FAILED)
		return -errno;
	e->bar = p;
	e->bar_size = info.size;
	return 0;
}

/*
 * mmap BAR0 of @e->bdf through sysfs (resource0), with no driver involved:
 * a device no driver owns, such as one a previous kernel handed over
 * still running.  edu_close() unmaps it.
 */
static inline int edu_map_resource(struct edu *e)
{
	char path[128];
	struct stat st;
	void *p;
	int fd;

	snprintf(path, sizeof(path), EDU_PCI_DIR "/%s/resource0", e->bdf);
	fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !st.st_size) {
		close(fd);
		return -EIO;
	}
	p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	e->bar = p;
	e->bar_size = st.st_size;
	return 0;
}

static inline __u32 edu_rd32(struct edu *e, unsigned int reg)
{
	return *(volatile __u32 *)((volatile char *)e->bar + reg);
}

static inline void edu_wr32(struct edu *e, unsigned int reg, __u32 val)
{
	*(volatile __u32 *)((volatile char *)e->bar + reg) = val;
}

static inline __u64 edu_rd64(struct edu *e, unsigned int reg)
{
	return *(volatile __u64 *)((volatile char *)e->bar + reg);
}

static inline void edu_wr64(struct edu *e, unsigned int reg, __u64 val)
{
	*(volatile __u64 *)((volatile char *)e->bar + reg) = val;
}

/* The identification register reads 0x....00ed and liveness inverts. */
static inline bool edu_alive(struct edu *e)
{
	edu_wr32(e, EDU_REG_LIVENESS, 0x5a5aa5a5);
	return (edu_rd32(e, EDU_REG_ID) & 0xffff) == 0x00ed &&
	       edu_rd32(e, EDU_REG_LIVENESS) == ~0x5a5aa5a5U;
}

/*
 * Start a DMA of @len bytes between the device buffer (at @buf_off in it)
 * and @iova: into guest memory if @to_ram, else from it.  0, or -EINVAL
 * for a range of the buffer QEMU could refuse.
 */
static inline int edu_dma_start(struct edu *e, __u64 iova,
				unsigned int buf_off, unsigned int len,
				bool to_ram)
{
	if (!len || len > EDU_DMA_MAX || buf_off > EDU_BUF_SIZE - 1 - len ||
	    iova + len > EDU_IOVA_LIMIT)
		return -EINVAL;
	edu_wr64(e, EDU_REG_DMA_SRC, to_ram ? EDU_BUF + buf_off : iova);
	edu_wr64(e, EDU_REG_DMA_DST, to_ram ? iova : EDU_BUF + buf_off);
	edu_wr64(e, EDU_REG_DMA_COUNT, len);
	edu_wr64(e, EDU_REG_DMA_CMD, EDU_DMA_RUN | (to_ram ? EDU_DMA_TO_RAM : 0));
	return 0;
}

static inline bool edu_dma_busy(struct edu *e)
{
	return edu_rd64(e, EDU_REG_DMA_CMD) & EDU_DMA_RUN;
}

/* Wait up to @ms for the transfer to end: 0, or -ETIMEDOUT. */
static inline int edu_dma_wait(struct edu *e, int ms)
{
	struct timespec ts = { .tv_nsec = 1000000 };

	for (int i = 0; i < ms; i++) {
		if (!edu_dma_busy(e))
			return 0;
		nanosleep(&ts, NULL);
	}
	return edu_dma_busy(e) ? -ETIMEDOUT : 0;
}

static inline int edu_dma(struct edu *e, __u64 iova, unsigned int buf_off,
			  unsigned int len, bool to_ram)
{
	int ret = edu_dma_start(e, iova, buf_off, len, to_ram);

	return ret ? ret : edu_dma_wait(e, 5000);
}

/*
 * Set or clear bus mastering in the device's command register, through
 * the config space region of its cdev as a VMM passes a guest's write on.
 */
static inline int edu_set_master(struct edu *e, bool on)
{
	struct vfio_region_info info = {
		.argsz = sizeof(info),
		.index = VFIO_PCI_CONFIG_REGION_INDEX,
	};
	__u16 cmd;

	if (ioctl(e->devfd, VFIO_DEVICE_GET_REGION_INFO, &info))
		return -errno;
	if (pread(e->devfd, &cmd, 2, info.offset + PCI_COMMAND) != 2)
		return -EIO;
	cmd = on ? cmd | PCI_COMMAND_MASTER : cmd & ~PCI_COMMAND_MASTER;
	if (pwrite(e->devfd, &cmd, 2, info.offset + PCI_COMMAND) != 2)
		return -EIO;
	return 0;
}

/* The PCI command register, read from config space through sysfs. */
static inline int edu_pci_command(const char *bdf)
{
	char path[128];
	__u16 cmd;
	int fd;

	snprintf(path, sizeof(path), EDU_PCI_DIR "/%s/config", bdf);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	if (pread(fd, &cmd, 2, PCI_COMMAND) != 2) {
		close(fd);
		return -EIO;
	}
	close(fd);
	return cmd;
}

/*
 * Set or clear bus mastering through sysfs, with no driver involved (as
 * setpci does): 0 or -errno.
 */
static inline int edu_sysfs_set_master(const char *bdf, bool on)
{
	int cmd = edu_pci_command(bdf), fd;
	char path[128];
	__u16 val;

	if (cmd < 0)
		return cmd;
	val = on ? cmd | PCI_COMMAND_MASTER : cmd & ~PCI_COMMAND_MASTER;
	snprintf(path, sizeof(path), EDU_PCI_DIR "/%s/config", bdf);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	cmd = pwrite(fd, &val, 2, PCI_COMMAND) == 2 ? 0 : -EIO;
	close(fd);
	return cmd;
}

/*
 * Own the edu device as a VMM does: bind it to vfio-pci, open its cdev and
 * /dev/iommu, allocate an IOAS, bind and attach to it, map BAR0.  The
 * caller maps memory into @e->ioas_id.  0, or -errno with what was opened
 * closed again.
 */
static inline int edu_open(struct edu *e)
{
	int ret;

	*e = (struct edu){ .iommufd = -1, .devfd = -1 };
	ret = edu_find(e);
	if (!ret)
		ret = edu_bind_vfio(e->bdf);
	if (ret)
		return ret;
	e->devfd = edu_open_cdev(e->bdf);
	if (e->devfd < 0)
		return e->devfd;
	e->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (e->iommufd < 0) {
		ret = -errno;
		goto err;
	}
	ret = edu_ioas_alloc(e->iommufd, &e->ioas_id);
	if (!ret)
		ret = edu_bind_attach(e, e->ioas_id);
	if (!ret)
		ret = edu_map_bar(e);
	if (!ret)
		return 0;
err:
	if (e->iommufd >= 0)
		close(e->iommufd);
	close(e->devfd);
	e->iommufd = -1;
	e->devfd = -1;
	return ret;
}

static inline void edu_close(struct edu *e)
{
	if (e->bar)
		munmap((void *)e->bar, e->bar_size);
	if (e->devfd >= 0)
		close(e->devfd);
	if (e->iommufd >= 0)
		close(e->iommufd);
	e->bar = NULL;
	e->devfd = -1;
	e->iommufd = -1;
}

#endif /* __LIVEUPDATE_EDU_H */
