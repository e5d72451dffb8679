#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Remove the upstream Live Update Orchestrator from a Linux 7.2 tree.

The list of files and references comes from ../shared/base/README.md.  Files
are deleted; references in files that stay are cut out by matching their
structure (a Kconfig entry, a Makefile line, a documentation section), so no
upstream text is carried in this repository.  Every edit must match exactly
once: a base tree that differs from the one we know makes this fail loudly
instead of leaving half of the incumbent behind.
"""
import os
import re
import shutil
import subprocess
import sys

REMOVED_FILES = [
    "kernel/liveupdate/luo_core.c",
    "kernel/liveupdate/luo_session.c",
    "kernel/liveupdate/luo_file.c",
    "kernel/liveupdate/luo_flb.c",
    "kernel/liveupdate/luo_internal.h",
    "kernel/liveupdate/kho_block.c",
    "include/linux/liveupdate.h",
    "include/uapi/linux/liveupdate.h",
    "include/linux/kho_block.h",
    "include/linux/kho/abi/luo.h",
    "include/linux/kho/abi/memfd.h",
    "include/linux/kho/abi/block.h",
    "mm/memfd_luo.c",
    "lib/tests/liveupdate.c",
    "Documentation/core-api/liveupdate.rst",
    "Documentation/userspace-api/liveupdate.rst",
    "Documentation/mm/memfd_preservation.rst",
]
REMOVED_DIRS = ["tools/testing/selftests/liveupdate"]


def edit(root, path, pattern, flags=re.M):
    """Delete the single match of @pattern from @path."""
    full = os.path.join(root, path)
    with open(full, encoding="utf-8") as f:
        text = f.read()
    matches = list(re.finditer(pattern, text, flags))
    if len(matches) != 1:
        sys.exit(f"strip: {path}: expected one match of {pattern!r}, got {len(matches)}")
    m = matches[0]
    with open(full, "w", encoding="utf-8") as f:
        f.write(text[:m.start()] + text[m.end():])


def kconfig_entry(sym):
    # From "config SYM" up to (not including) the next top-level keyword.
    return (rf"^config {sym}\n(?:(?!(?:config|menuconfig|endmenu|menu|choice|"
            rf"endchoice|if|endif|source|comment)\b).*\n|\n)*")


def rst_section(title):
    # A section: title, underline, body, up to the next title.
    return rf"^{re.escape(title)}\n=+\n(?:(?!.*\n=+\n).*\n)*"


def strip(root):
    for f in REMOVED_FILES:
        os.remove(os.path.join(root, f))
    for d in REMOVED_DIRS:
        shutil.rmtree(os.path.join(root, d))

    edit(root, "kernel/liveupdate/Kconfig", kconfig_entry("LIVEUPDATE"))
    edit(root, "kernel/liveupdate/Kconfig", kconfig_entry("LIVEUPDATE_MEMFD"))
    edit(root, "kernel/liveupdate/Makefile", r"^luo-y :=.*\n(?:\t.*\n)+\n")
    edit(root, "kernel/liveupdate/Makefile", r"^\nobj-\$\(CONFIG_LIVEUPDATE\)\s.*\n")
    edit(root, "lib/Kconfig.debug", kconfig_entry("LIVEUPDATE_TEST"))
    edit(root, "mm/Makefile", r"^.*memfd_luo\.o\n")
    edit(root, "lib/tests/Makefile", r"^obj-\$\(CONFIG_LIVEUPDATE_TEST\).*\n")
    edit(root, "kernel/kexec_core.c", r"^#include <linux/liveupdate\.h>\n")
    edit(root, "kernel/kexec_core.c",
         r"^\tif \(!kexec_image->preserve_context\) \{\n\t\terror = liveupdate_reboot\(\);\n(?:\t\t.*\n)*\t\}\n\n")
    edit(root, "MAINTAINERS", r"^LIVE UPDATE\n(?:.+\n)*\n")
    edit(root, "MAINTAINERS", r"^F:\tinclude/linux/kho_block\.h\n")
    edit(root, "Documentation/core-api/kho/index.rst", rst_section("KHO Serialization Blocks API"))
    edit(root, "Documentation/core-api/kho/abi.rst", rst_section("KHO serialization block ABI"))
    edit(root, "Documentation/core-api/index.rst", r"^   liveupdate\n")
    edit(root, "Documentation/userspace-api/index.rst", r"^   liveupdate\n")
    edit(root, "Documentation/mm/index.rst", r"^   memfd_preservation\n")
    edit(root, "Documentation/userspace-api/ioctl/ioctl-number.rst",
         r"^0xBA .*liveupdate\.h.*\n(?: {20,}.*\n)*")
    edit(root, "Documentation/admin-guide/kernel-parameters.txt",
         r"^\tliveupdate=.*\n(?:\t\t.*\n)*\n")
    edit(root, "tools/testing/selftests/Makefile", r"^TARGETS \+= liveupdate\n")


# Anything matching these after stripping is a leftover of the incumbent.
LEFTOVER = (r"liveupdate|LIVEUPDATE|kho_block|kho/abi/(luo|memfd|block)\.h|"
            r"memfd_luo|memfd_preservation|luo_")
# What legitimately stays: KHO lives in kernel/liveupdate/ and its git tree is
# named after it; XFS documents an unrelated "live update hook".
ALLOWED = re.compile(r"kernel/liveupdate/|obj-y \+= liveupdate/|"
                     r"git/liveupdate/linux\.git|"
                     r"^Documentation/filesystems/xfs/")


def verify(root):
    out = subprocess.run(["grep", "-rnIE", LEFTOVER, "."], cwd=root,
                         capture_output=True, text=True, errors="replace")
    bad = []
    for line in out.stdout.splitlines():
        rel, _, text = line[2:].partition(":")
        if ALLOWED.search(rel):
            continue
        if re.search(LEFTOVER, ALLOWED.sub("", text.partition(":")[2])):
            bad.append(line[2:])
    bad += [f"{f}: still present" for f in REMOVED_FILES
            if os.path.exists(os.path.join(root, f))]
    bad += [f"{d}/: still present" for d in REMOVED_DIRS
            if os.path.exists(os.path.join(root, d))]
    if bad:
        sys.exit("strip: upstream LUO leftovers:\n" + "\n".join(bad[:50]))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("strip", "verify"):
        sys.exit("usage: strip-upstream-luo.py strip|verify TREE")
    if sys.argv[1] == "strip":
        strip(sys.argv[2])
    verify(sys.argv[2])
