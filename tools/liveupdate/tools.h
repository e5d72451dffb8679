/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel's names for the few compiler attributes and helpers the tools
 * use.  tools/include has them too, but putting it on the include path
 * would shadow the installed uAPI headers (its own <linux/types.h>, ...).
 */
#ifndef LUO_TOOLS_H
#define LUO_TOOLS_H

/* luod's and luoctl's version (--version). */
#define LUO_TOOLS_VERSION	"0.2"

#ifndef __printf
#define __printf(a, b)	__attribute__((format(printf, a, b)))
#endif
#ifndef __noreturn
#define __noreturn	__attribute__((__noreturn__))
#endif
#ifndef ARRAY_SIZE
#define ARRAY_SIZE(arr)	(sizeof(arr) / sizeof((arr)[0]))
#endif

#endif /* LUO_TOOLS_H */
