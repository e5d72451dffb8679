/* SPDX-License-Identifier: GPL-2.0 */
/*
 * IOMMU translation kept across a live update, for devices that keep doing
 * DMA while the kernel is replaced.
 */
#ifndef _LINUX_IOMMU_LIVEUPDATE_H
#define _LINUX_IOMMU_LIVEUPDATE_H

#include <linux/errno.h>
#include <linux/types.h>

struct device;
struct iommu_preserve_dev;
struct liveupdate_flb;

/**
 * struct iommu_liveupdate_driver - an IOMMU driver's side of the next kernel
 * @id: the %IOMMU_PRESERVE_DRIVER_* its entries carry
 * @finish: the live update is over for the device of @rec: tear down the
 *	translation kept for it if nobody took it over, and free what was
 *	preserved for it.  Process context.
 */
struct iommu_liveupdate_driver {
	u32 id;
	void (*finish)(const struct iommu_preserve_dev *rec);
};

#if IS_ENABLED(CONFIG_IOMMU_API) && IS_ENABLED(CONFIG_LIVEUPDATE)

extern struct liveupdate_flb iommu_liveupdate_flb;

int iommu_liveupdate_preserve_device(struct device *dev);
void iommu_liveupdate_unpreserve_device(struct device *dev);
bool iommu_liveupdate_committed(void);
bool iommu_liveupdate_rid_preserved(u16 segment, u16 rid);

int iommu_liveupdate_incoming(const struct iommu_liveupdate_driver *drv);
const struct iommu_preserve_dev *
iommu_liveupdate_incoming_find(u16 segment, u16 rid);
int iommu_liveupdate_incoming_for_each(u32 driver,
				       int (*fn)(const struct iommu_preserve_dev *rec,
						 void *arg),
				       void *arg);
void iommu_liveupdate_finish_device(struct device *dev);
void iommu_liveupdate_hold_device(u16 segment, u16 rid);
void iommu_liveupdate_stop_devices(void);

#else

static inline int iommu_liveupdate_preserve_device(struct device *dev)
{
	return -EOPNOTSUPP;
}

static inline void iommu_liveupdate_unpreserve_device(struct device *dev)
{
}

static inline bool iommu_liveupdate_committed(void)
{
	return false;
}

static inline bool iommu_liveupdate_rid_preserved(u16 segment, u16 rid)
{
	return false;
}

static inline int
iommu_liveupdate_incoming(const struct iommu_liveupdate_driver *drv)
{
	return -ENOENT;
}

static inline const struct iommu_preserve_dev *
iommu_liveupdate_incoming_find(u16 segment, u16 rid)
{
	return NULL;
}

static inline int
iommu_liveupdate_incoming_for_each(u32 driver,
				   int (*fn)(const struct iommu_preserve_dev *rec,
					     void *arg),
				   void *arg)
{
	return 0;
}

static inline void iommu_liveupdate_finish_device(struct device *dev)
{
}

static inline void iommu_liveupdate_hold_device(u16 segment, u16 rid)
{
}

static inline void iommu_liveupdate_stop_devices(void)
{
}

#endif

#endif /* _LINUX_IOMMU_LIVEUPDATE_H */
