#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Benchmark our LUO against the upstream 7.2.11 one, side by side.

Both kernels are built from the same base with the same config fragments
and booted in the same QEMU setup with the same initramfs contents; only
the kernel differs.  Each scenario runs liveupdate_bench (common uAPI only)
across one kexec, alternating kernels within every repetition.  The guest
prints "luobench: KEY VALUE" lines; the host timestamps serial lines as they
arrive to measure the blackout: from "luo-kexec: reboot" (printed just before
reboot(LINUX_REBOOT_CMD_KEXEC)) to the new kernel's first userspace line and
to "luobench: retrieved".

Guest RAM is allocated up front (-mem-prealloc).  Otherwise the host backs
it on first touch, with transparent huge pages and, when memory is
fragmented, compaction: a cost a real host does not have, that lands in
whichever kernel first touches a range, and that varies by hundreds of
milliseconds between runs.  The first kernel of a scenario that preserves
4 GiB touches 4 GiB more than one that preserves nothing, so without this
the blackouts of the two compare host page faults as much as kernels.

Under TCG every boot gets tsc_early_khz= from the host's /proc/cpuinfo (the
guest's TSC runs at the host's rate).  Otherwise the guest calibrates its
TSC against the emulated PIT, which fails now and then on a loaded host;
the fallback costs 0.2 to 1.1 s of early boot, in one boot out of four or
five, whatever is preserved: the kernel's own timeline showed it all in
the step from the jump to the new kernel's clock starting.

Writes out/bench/results.md (medians, min-max, ours/upstream), raw.json,
the serial logs, and PNG plots of the size and count sweeps (gnuplot).

Scenarios that only our kernel can run (hugetlb memfds: upstream's
PRESERVE_FD fails on them), and their baselines, run on ours only; the
tables say "n/a" for upstream there, and their goals are absolute.
"""
import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(REPO, "out")
BENCH = os.path.join(OUT, "bench")

spec = importlib.util.spec_from_file_location(
    "run_suite", os.path.join(HERE, "run-suite.py"))
rs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rs)

KERNELS = {
    "ours": ("bzImage", "initramfs-fast.cpio"),
    "upstream": ("bzImage-upstream", "initramfs-upstream.cpio"),
}

# name, liveupdate_bench arguments, guest memory, timeout (s)[, kernels it
# runs on, if not all of KERNELS[, machine of harness/suite, for its QEMU
# devices and command line]]
OURS = ("ours",)
# A VM with a passthrough device (QEMU's VT-d and edu device), against the
# same machine and guest RAM with the device not preserved; ours only.
DEVICE = [
    ("passthrough device, 240 MiB guest RAM", "device,240", "2G", 600, OURS,
     "edu"),
    ("240 MiB guest RAM, the device not preserved", "device,240,nodev", "2G",
     600, OURS, "edu"),
]
FULL = [
    ("memfd 16 MiB", "memfd,16", "2G", 300),
    ("memfd 256 MiB", "memfd,256", "2G", 300),
    ("memfd 1 GiB", "memfd,1024", "3G", 600),
    ("memfd 4 GiB", "memfd,4096", "7G", 1200),
    # The blackout goal compares "memfd 4 GiB" with this: same guest size,
    # since booting a larger guest takes longer whatever is preserved.  A
    # baseline runs right after the scenario it is the baseline of, so
    # that the two see the same load on a shared machine.
    ("nothing preserved, 7G guest", "none", "7G", 300),
    ("memfd 1 GiB THP", "memfd,1024,thp", "3G", 600),
    # Upstream cannot preserve hugetlb memfds.  The guest sets up the pool at
    # runtime, right after boot: four free 1 GiB ranges need a 10G guest
    # (see kexec-hugetlb-big in harness/suite).  Their baselines are ours
    # only too.
    ("hugetlb 1 GiB in 2 MiB pages", "hugetlb,1024,2048", "3G", 600, OURS),
    ("nothing preserved, 3G guest", "none", "3G", 300, OURS),
    ("hugetlb 4 GiB in 1 GiB pages", "hugetlb,4096,1048576", "10G", 900,
     OURS),
    ("nothing preserved, 10G guest", "none", "10G", 300, OURS),
    # The trend with size: twice the memory preserved, in a guest twice
    # as large, against the same guest with nothing preserved.
    ("memfd 8 GiB, 16G guest", "memfd,8192", "16G", 2400),
    ("nothing preserved, 16G guest", "none", "16G", 300),
    ("sparse 4 GiB 1%", "sparse,4,1", "7G", 900),
    ("sparse 64 GiB 1%", "sparse,64,1", "4G", 900),
    ("sessions 1000", "sessions,1000", "2G", 600),
    ("sessions 10000", "sessions,10000", "2G", 900),
    ("files 1000", "files,1000", "2G", 600),
    ("files 10000", "files,10000", "2G", 900),
    ("files 100000 in 100 sessions", "spread,100000,100", "4G", 1800),
    ("nothing preserved, 4G guest", "none", "4G", 300),
    ("nothing preserved", "none", "2G", 300),
] + DEVICE
# A few minutes: the small sizes and counts, and a sparse memfd that fits
# the yardstick's hole-filling in a small guest.
QUICK = [s for s in FULL if s[0] in ("memfd 16 MiB", "memfd 256 MiB",
                                     "sessions 1000", "files 1000",
                                     "nothing preserved")]
QUICK.insert(2, ("sparse 1 GiB 1%", "sparse,1,1", "2G", 300))
QUICK += DEVICE

# Metrics worth a row, in table order: key -> (label, unit)
METRICS = {
    "preserve_us": ("PRESERVE_FD", "ms"),
    "moved_after_us": ("moving out of KHO scratch after PRESERVE_FD", "ms"),
    "create_preserve_us": ("create + preserve all", "ms"),
    "preserve_only_us": ("CREATE_SESSION + PRESERVE_FD ioctls", "ms"),
    "preserve_kb": ("MemFree consumed by PRESERVE_FD", "kB"),
    "cma_moved_kb": ("moved out of KHO scratch (CmaFree gained)", "kB"),
    "meta_used_bytes": ("metadata, header and entries (ours: debugfs)", "B"),
    "meta_alloc_bytes": ("metadata, chunks allocated (ours: debugfs)", "B"),
    "open_us": ("first open of /dev/liveupdate", "ms"),
    "retrieve_session_us": ("RETRIEVE_SESSION", "ms"),
    "retrieve_fd_us": ("RETRIEVE_FD", "ms"),
    "retrieve_all_us": ("retrieve all", "ms"),
    "first_read_us": ("first read of every page", "ms"),
    "first_read_faults": ("minor faults in that first read", ""),
    "first_touch_us": ("first touch: read one word of every huge page",
                       "ms"),
    "first_touch_faults": ("minor faults in that first touch", ""),
    "retrieve_kb": ("MemFree consumed by RETRIEVE_FD", "kB"),
    "check_us": ("read every written page", "ms"),
    "finish_us": ("FINISH", "ms"),
    "shmem_huge_kb": ("ShmemHugePages after retrieve", "kB"),
    # The kernel's own timeline (ours only), old kernel then new.
    "tl_to_jump_us": ("timeline: reboot() in LUO to the jump", "ms"),
    "tl_reboot_us": ("timeline: waiting for LUO operations", "ms"),
    "tl_prepare_us": ("timeline: sizing the handover state", "ms"),
    "tl_freeze_us": ("timeline: freezing the files", "ms"),
    "tl_freeze_flb_us": ("timeline: freezing the FLBs", "ms"),
    "tl_write_us": ("timeline: writing the handover state", "ms"),
    "tl_shutdown_us": ("timeline: shutdown to the jump", "ms"),
    "tl_boot_us": ("timeline: jump to the new kernel's clock", "ms"),
    "tl_kho_reserve_us": ("timeline: KHO reserving preserved memory", "ms"),
    "tl_restore_us": ("timeline: reading the handover state", "ms"),
    "tl_jump_to_ready_us": ("timeline: jump to /dev/liveupdate ready", "ms"),
    "tl_jump_to_open_us": ("timeline: jump to its first open", "ms"),
    "tl_preload_us": ("timeline: background preload", "ms"),
    "tl_retrieve_fd_us": ("timeline: first to last RETRIEVE_FD", "ms"),
    "tl_jump_to_retrieved_us": ("timeline: jump to the last RETRIEVE_FD",
                                "ms"),
    "retrieve_device_us": ("RETRIEVE_FD of the device (and its iommufd and "
                           "memfd)", "ms"),
    "dma_gap_us": ("DMA gap: last DMA done before the kexec to first after "
                   "(edu takes 100 ms per DMA)", "ms"),
    "blocks_pages": ("pages allocated after retrieve", ""),
    "blackout_user_us": ("blackout to new userspace", "ms"),
    "blackout_retrieved_us": ("blackout to all fds retrieved", "ms"),
}


def kernels_of(name):
    """The kernels scenario @name runs on: all but where FULL says."""
    for s in FULL + QUICK:
        if s[0] == name and len(s) > 4:
            return s[4]
    return tuple(KERNELS)


def machine_of(name):
    """The harness/suite machine scenario @name runs on, or None."""
    for s in FULL + QUICK:
        if s[0] == name and len(s) > 5:
            return s[5]
    return None


def run(kernel, scenario, mem, timeout, accel, log, append="", machine=None):
    """One boot + kexec, @append added to the kernel command line, on
    @machine; returns (metrics, error)."""
    image, initrd = KERNELS[kernel]
    append = " ".join(["console=ttyS0 quiet panic=-1 oops=panic kho=on "
                       "liveupdate=on luotest.name=bench luotest.stage=0 "
                       f"luotest.bench={scenario}",
                       *rs.MACHINES.get(machine, []), *append.split()])
    khz = rs.host_tsc_khz() if accel == "tcg" else None
    if khz:
        append += f" tsc_early_khz={khz}"
    cmd = rs.qemu_cmd(os.path.join(OUT, image), os.path.join(OUT, initrd),
                      mem, append, accel, rs.MACHINE_DEVICES.get(machine, []))
    cmd.insert(cmd.index("-m"), "-mem-prealloc")
    metrics, stamps, error = {}, {}, None
    stage = 0
    deadline = time.monotonic() + timeout
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n")
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        for raw in p.stdout:
            now = time.monotonic()
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            f.write(f"{now:.6f} {line}\n")
            if now > deadline:
                error = f"timed out after {timeout}s"
                break
            if "luo-kexec: reboot" in line:
                stamps["reboot"] = now
            elif "luotest: start" in line:
                stage = int(line.split()[-1])
                if stage == 1:
                    stamps["user"] = now
            elif line.startswith("luobench: "):
                words = line.split()
                if words[1] == "error":
                    error = " ".join(words[2:])
                elif words[1] == "retrieved":
                    stamps["retrieved"] = now
                elif words[1] == "done":
                    stamps["done"] = now
                elif len(words) == 3:
                    # A key printed in both stages keeps stage 1's value.
                    metrics[words[1]] = int(words[2])
            elif "luotest: done" in line and not line.endswith("rc=0"):
                error = error or line.split("luotest: ")[1]
        p.kill()
        p.wait()
    if "reboot" in stamps:
        for k in ("user", "retrieved"):
            if k in stamps:
                metrics[f"blackout_{k}_us"] = int(
                    (stamps[k] - stamps["reboot"]) * 1e6)
    if not error and "done" not in stamps:
        error = "no 'luobench: done' (crash or hang?)"
    return metrics, error


def summarize(samples):
    """samples: list of ints -> (median, min, max)."""
    return statistics.median(samples), min(samples), max(samples)


def fmt(value, unit):
    if unit == "ms":
        return f"{value / 1000:.1f}"
    return f"{value:.0f}"


def table(results, scenarios):
    out = ["| scenario | metric | ours: median (min-max) "
           "| upstream: median (min-max) | ours/upstream |",
           "| --- | --- | --- | --- | --- |"]
    for name, *_ in scenarios:
        r = results[name]
        runs_on = kernels_of(name)
        runs = r["ours"]["runs"] + r["upstream"]["runs"]
        keys = [k for k in METRICS if any(k in m for m in runs)]
        for kern in ("ours", "upstream"):
            if r[kern]["errors"]:
                out.append(f"| {name} | **{kern} failed** | "
                           f"{'; '.join(sorted(set(r[kern]['errors'])))} "
                           "| | |")
        for key in keys:
            label, unit = METRICS[key]
            cells, meds = [], []
            for kern in ("ours", "upstream"):
                vals = [m[key] for m in r[kern]["runs"] if key in m]
                if not vals:
                    cells.append("-" if kern in runs_on else "n/a")
                    meds.append(None)
                    continue
                med, lo, hi = summarize(vals)
                meds.append(med)
                cells.append(f"{fmt(med, unit)} ({fmt(lo, unit)}-"
                             f"{fmt(hi, unit)})")
            ratio = "-"
            if None not in meds and meds[1]:
                ratio = f"{meds[0] / meds[1]:.2f}"
            u = f" [{unit}]" if unit else ""
            out.append(f"| {name} | {label}{u} | {cells[0]} | {cells[1]} "
                       f"| {ratio} |")
    return "\n".join(out) + "\n"


def med(results, name, kern, key, plus=None):
    """Median of @key (+ @plus, per run) over @kern's runs of @name."""
    runs = results.get(name, {}).get(kern, {}).get("runs", [])
    vals = [m[key] + (m[plus] if plus else 0) for m in runs
            if key in m and (not plus or plus in m)]
    return statistics.median(vals) if vals else None


def paired(results, name, base, kern, key):
    """Median over repetitions of @name's @key / @base's, for @kern: each
    pair ran back to back, so drift between repetitions cancels out."""
    def by_rep(n):
        runs = results.get(n, {}).get(kern, {}).get("runs", [])
        return {m.get("rep"): m[key] for m in runs if key in m}
    a, b = by_rep(name), by_rep(base)
    ratios = [a[r] / b[r] for r in a if r is not None and b.get(r)]
    return statistics.median(ratios) if ratios else None


def blackout_ratio(results, name, base, kern, key):
    """@name's blackout over @base's: (fastest / fastest, median of the
    back-to-back pairs).  A shared machine only ever adds time to a run
    (another guest, a TSC calibration gone slow: up to +60% here), so the
    fastest run of each is the estimate of what the kernel costs, and the
    goal is judged on it; the pairs' median is shown next to it."""
    def fastest(n):
        runs = results.get(n, {}).get(kern, {}).get("runs", [])
        vals = [m[key] for m in runs if key in m]
        return min(vals) if vals else None
    a, b = fastest(name), fastest(base)
    return (a / b if a and b else None,
            paired(results, name, base, kern, key))


# The README's table: (scenario, label, key, second key added per run).
SUMMARY = [
    ("memfd 256 MiB", "PRESERVE_FD", "preserve_us", None),
    ("memfd 256 MiB", "RETRIEVE_FD", "retrieve_fd_us", None),
    ("memfd 1 GiB", "PRESERVE_FD", "preserve_us", None),
    ("memfd 1 GiB", "PRESERVE_FD + moving out of KHO scratch after it",
     "preserve_us", "moved_after_us"),
    ("memfd 1 GiB", "moved out of KHO scratch (kB)", "cma_moved_kb", None),
    ("memfd 1 GiB", "RETRIEVE_FD", "retrieve_fd_us", None),
    ("memfd 1 GiB", "RETRIEVE_FD + first read of every page",
     "retrieve_fd_us", "first_read_us"),
    ("memfd 4 GiB", "PRESERVE_FD", "preserve_us", None),
    ("memfd 4 GiB", "PRESERVE_FD + moving out of KHO scratch after it",
     "preserve_us", "moved_after_us"),
    ("memfd 4 GiB", "RETRIEVE_FD", "retrieve_fd_us", None),
    ("memfd 4 GiB", "blackout to new userspace", "blackout_user_us", None),
    ("memfd 1 GiB THP", "PRESERVE_FD", "preserve_us", None),
    ("memfd 1 GiB THP", "RETRIEVE_FD", "retrieve_fd_us", None),
    ("sparse 4 GiB 1%", "PRESERVE_FD", "preserve_us", None),
    ("sparse 4 GiB 1%", "memory PRESERVE_FD consumed (kB)", "preserve_kb",
     None),
    ("sparse 64 GiB 1%", "PRESERVE_FD", "preserve_us", None),
    ("sparse 64 GiB 1%", "memory PRESERVE_FD consumed (kB)", "preserve_kb",
     None),
    ("sessions 10000", "create + preserve all", "create_preserve_us", None),
    ("sessions 10000", "retrieve all", "retrieve_all_us", None),
    ("files 10000", "create + preserve all", "create_preserve_us", None),
    ("files 10000", "retrieve all", "retrieve_all_us", None),
    ("files 100000 in 100 sessions", "blackout to all fds retrieved",
     "blackout_retrieved_us", None),
    ("nothing preserved", "blackout to new userspace", "blackout_user_us",
     None),
    ("nothing preserved, 7G guest", "blackout to new userspace",
     "blackout_user_us", None),
    ("hugetlb 1 GiB in 2 MiB pages", "PRESERVE_FD", "preserve_us", None),
    ("hugetlb 1 GiB in 2 MiB pages", "RETRIEVE_FD", "retrieve_fd_us", None),
    ("hugetlb 1 GiB in 2 MiB pages",
     "RETRIEVE_FD + first touch of every huge page", "retrieve_fd_us",
     "first_touch_us"),
    ("hugetlb 1 GiB in 2 MiB pages", "blackout to new userspace",
     "blackout_user_us", None),
    ("nothing preserved, 3G guest", "blackout to new userspace",
     "blackout_user_us", None),
    ("hugetlb 4 GiB in 1 GiB pages", "PRESERVE_FD", "preserve_us", None),
    ("hugetlb 4 GiB in 1 GiB pages", "RETRIEVE_FD", "retrieve_fd_us", None),
    ("hugetlb 4 GiB in 1 GiB pages",
     "RETRIEVE_FD + first touch of every huge page", "retrieve_fd_us",
     "first_touch_us"),
    ("hugetlb 4 GiB in 1 GiB pages", "metadata, header and entries (B)",
     "meta_used_bytes", None),
    ("hugetlb 4 GiB in 1 GiB pages", "blackout to new userspace",
     "blackout_user_us", None),
    ("nothing preserved, 10G guest", "blackout to new userspace",
     "blackout_user_us", None),
    (DEVICE[0][0], "blackout to new userspace", "blackout_user_us", None),
    (DEVICE[0][0], "blackout to all fds retrieved", "blackout_retrieved_us",
     None),
    (DEVICE[0][0], "RETRIEVE_FD of the device", "retrieve_device_us", None),
    (DEVICE[0][0], "DMA gap (edu takes 100 ms per DMA)", "dma_gap_us", None),
    (DEVICE[1][0], "blackout to new userspace", "blackout_user_us", None),
    (DEVICE[1][0], "blackout to all fds retrieved", "blackout_retrieved_us",
     None),
]


def human(value, key):
    """@value of @key for the summary: times in ms or s, sizes in kB."""
    if value is None:
        return "failed"
    if key.endswith("_kb") or key.endswith("_bytes"):
        return f"{value:,.0f}"
    ms = value / 1000
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


def summary(results):
    """The headline numbers: medians of both kernels and their ratio."""
    rows = ["| scenario | metric | ours | upstream | ours/upstream |",
            "| --- | --- | --- | --- | --- |"]
    for name, label, key, plus in SUMMARY:
        if name not in results:
            continue
        ours = med(results, name, "ours", key, plus)
        up = med(results, name, "upstream", key, plus)
        ratio = f"{ours / up:.3g}" if ours is not None and up else "-"
        shown = [human(v, key) if kern in kernels_of(name) else "n/a"
                 for kern, v in (("ours", ours), ("upstream", up))]
        rows.append(f"| {name} | {label} | {shown[0]} | {shown[1]} | "
                    f"{ratio} |")
    return "\n".join(rows) + "\n"


def goals(results):
    """The issue's goals, each with what this run measured."""
    rows = ["| goal | measured | target | met |",
            "| --- | --- | --- | --- |"]

    def row(goal, ours, ref, target, unit="ratio"):
        if ours is None or not ref:
            rows.append(f"| {goal} | not measured | {target} | - |")
            return
        value = ours / ref
        limit = float(target.split()[-1])
        rows.append(f"| {goal} | {value:.3g} | {target} | "
                    f"{'yes' if value <= limit else '**no**'} |")

    def ratio_row(goal, values, target):
        """@values: (fastest / fastest, median of pairs), see
        blackout_ratio()."""
        value, pairs = values
        if value is None:
            rows.append(f"| {goal} | not measured | {target} | - |")
            return
        limit = float(target.split()[-1])
        rows.append(f"| {goal} | {value:.3g} (pairs: {pairs:.3g}) | "
                    f"{target} | {'yes' if value <= limit else '**no**'} |")

    def absolute(goal, value, limit, unit):
        """@value below @limit, in @unit (values in us for ms)."""
        target = f"< {limit} {unit}"
        if value is None:
            rows.append(f"| {goal} | not measured | {target} | - |")
            return
        if unit == "ms":
            value /= 1000
        rows.append(f"| {goal} | {value:.3g} {unit} | {target} | "
                    f"{'yes' if value < limit else '**no**'} |")

    g = "memfd 1 GiB"
    for key, label in (("preserve_us", "PRESERVE_FD"),
                       ("retrieve_fd_us", "RETRIEVE_FD")):
        row(f"{g}: {label}, ours/upstream", med(results, g, "ours", key),
            med(results, g, "upstream", key), "<= 0.2")
    row(f"{g}: RETRIEVE_FD + first read of every page, ours/upstream",
        med(results, g, "ours", "retrieve_fd_us", "first_read_us"),
        med(results, g, "upstream", "retrieve_fd_us", "first_read_us"),
        "<= 1.0")
    for sp in ("sparse 64 GiB 1%", "sparse 4 GiB 1%"):
        if med(results, sp, "upstream", "preserve_kb"):
            row(f"{sp}: memory consumed by preserving, ours/upstream",
                max(med(results, sp, "ours", "preserve_kb") or 0, 0) or 0,
                med(results, sp, "upstream", "preserve_kb"), "<= 0.02")
            break
    for sc in ("sessions 10000", "files 10000"):
        row(f"{sc}: create+preserve and retrieve all, ours/upstream",
            med(results, sc, "ours", "create_preserve_us",
                "retrieve_all_us"),
            med(results, sc, "upstream", "create_preserve_us",
                "retrieve_all_us"), "<= 0.5")
    # Blackouts: fastest over fastest (see blackout_ratio()).
    for key, label in (("blackout_user_us", "new userspace"),
                       ("blackout_retrieved_us", "all fds retrieved")):
        ratio_row(f"ours: blackout to {label}, 4 GiB preserved / nothing "
                  "preserved (7G guest each)",
                  blackout_ratio(results, "memfd 4 GiB",
                                 "nothing preserved, 7G guest", "ours", key),
                  "<= 1.05")
    ratio_row("ours: blackout to new userspace, 8 GiB preserved / nothing "
              "preserved (16G guest each)",
              blackout_ratio(results, "memfd 8 GiB, 16G guest",
                             "nothing preserved, 16G guest", "ours",
                             "blackout_user_us"), "<= 1.05")
    ratio_row("ours: blackout to all fds retrieved, 100,000 files / nothing "
              "preserved (4G guest each)",
              blackout_ratio(results, "files 100000 in 100 sessions",
                             "nothing preserved, 4G guest", "ours",
                             "blackout_retrieved_us"), "<= 1.10")
    # Upstream keeps no statistics: its bytes per page are MemFree
    # consumed across PRESERVE_FD, in a memfd too small to touch CMA.
    g = "memfd 256 MiB"
    pages = 256 * 256
    ours = med(results, g, "ours", "meta_used_bytes")
    up = med(results, g, "upstream", "preserve_kb")
    row(f"{g}: metadata bytes per page, ours (debugfs) / upstream "
        "(MemFree)", ours and ours / pages, up and up * 1024 / pages,
        "<= 0.5")
    # hugetlb memfds: ours only (upstream cannot preserve them), so
    # absolute goals, and blackouts against nothing preserved in a guest of
    # the same size.
    g = "hugetlb 4 GiB in 1 GiB pages"
    used = med(results, g, "ours", "meta_used_bytes")
    pages = med(results, g, "ours", "huge_pages")
    absolute(f"{g}: metadata bytes per 1 GiB page, ours (debugfs)",
             used / pages if used is not None and pages else None, 64, "B")
    for key, label in (("preserve_us", "PRESERVE_FD"),
                       ("retrieve_fd_us", "RETRIEVE_FD")):
        absolute(f"{g}: {label}, ours", med(results, g, "ours", key), 10,
                 "ms")
    for g, mem in (("hugetlb 1 GiB in 2 MiB pages", "3G"),
                   ("hugetlb 4 GiB in 1 GiB pages", "10G")):
        for key, label in (("blackout_user_us", "new userspace"),
                           ("blackout_retrieved_us", "all fds retrieved")):
            ratio_row(f"ours: blackout to {label}, {g} / nothing "
                      f"preserved ({mem} guest each)",
                      blackout_ratio(results, g,
                                     f"nothing preserved, {mem} guest",
                                     "ours", key), "<= 1.05")
    # A passthrough device: the blackout against the same VM without it.
    for key, label in (("blackout_user_us", "new userspace"),
                       ("blackout_retrieved_us", "all fds retrieved")):
        ratio_row(f"ours: blackout to {label}, {DEVICE[0][0]} / "
                  f"{DEVICE[1][0]}",
                  blackout_ratio(results, DEVICE[0][0], DEVICE[1][0], "ours",
                                 key), "<= 1.05")
    return "\n".join(rows) + "\n"


def plot(results, scenarios, prefix, xlabel, keys, png):
    """A gnuplot PNG of @keys against the sweep parameter, both kernels."""
    points = []
    for name, args, *_ in scenarios:
        if not args.startswith(prefix + ","):
            continue
        parts = args.split(",")
        if len(parts) != 2:
            continue
        x = int(parts[1])
        row = [x]
        for key in keys:
            for kern in ("ours", "upstream"):
                vals = [m[key] for m in results[name][kern]["runs"]
                        if key in m]
                row.append(statistics.median(vals) / 1000 if vals else "NaN")
        points.append(row)
    if len(points) < 2:
        return False
    data = png + ".dat"
    with open(data, "w") as f:
        for row in sorted(points):
            f.write(" ".join(str(v) for v in row) + "\n")
    lines = []
    col = 2
    for color, key in enumerate(keys, 1):
        # One colour per metric; ours filled points, upstream open ones.
        for kern, point in (("ours", 7), ("upstream", 6)):
            lines.append(f"'{data}' using 1:{col} with linespoints "
                         f"lc {color} pt {point} "
                         f"title '{kern} {METRICS[key][0]}'")
            col += 1
    script = (f"set terminal png size 900,600 noenhanced; "
              f"set output '{png}'; "
              "set logscale xy; set key left top; "
              f"set xlabel '{xlabel}'; set ylabel 'ms (median)'; "
              f"plot {', '.join(lines)}\n")
    subprocess.run(["gnuplot"], input=script.encode(), check=True)
    return True


def run_all(args, scenarios, reps):
    """Every scenario on both kernels, @reps times; -> results, accel, min."""
    accel = "kvm" if rs.kvm_works() else "tcg"
    os.makedirs(os.path.join(BENCH, "logs"), exist_ok=True)
    print(f"bench: {len(scenarios)} scenarios x {reps} repetitions x 2 "
          f"kernels, QEMU {accel}", flush=True)
    results = {s[0]: {k: {"runs": [], "errors": []} for k in KERNELS}
               for s in scenarios}
    start = time.monotonic()
    for rep in range(reps):
        for name, scenario, mem, timeout, *_ in scenarios:
            # Alternate which kernel goes first, against drift on a shared
            # machine.
            order = list(KERNELS) if rep % 2 == 0 else list(KERNELS)[::-1]
            order = [k for k in order if (not args.kernel or
                                          k in args.kernel) and
                     k in kernels_of(name)]
            for kern in order:
                slug = name.replace(" ", "_").replace("%", "pc")
                slug = slug.replace(",", "")
                log = os.path.join(BENCH, "logs", f"{slug}.{kern}.{rep}.log")
                metrics, error = run(kern, scenario, mem, timeout, accel, log,
                                     args.append, machine_of(name))
                metrics["rep"] = rep
                r = results[name][kern]
                if error:
                    r["errors"].append(error)
                else:
                    r["runs"].append(metrics)
                shown = ", ".join(f"{k}={v}" for k, v in metrics.items())
                print(f"bench: [{rep + 1}/{reps}] {name} {kern}: "
                      f"{'FAILED: ' + error if error else shown}", flush=True)
    return results, accel, (time.monotonic() - start) / 60


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="small sizes, one repetition: a few minutes")
    ap.add_argument("-r", "--reps", type=int, help="repetitions")
    ap.add_argument("--report", action="store_true",
                    help="no runs: write results.md and the plots again "
                    "from raw.json")
    ap.add_argument("-k", "--kernel", choices=list(KERNELS), action="append",
                    help="run only this kernel (default: both)")
    ap.add_argument("--append", default="",
                    help="kernel command-line arguments added to every boot "
                    "of both kernels (experiments: liveupdate_preload=off...)")
    ap.add_argument("only", nargs="*", help="scenario names (default: all)")
    args = ap.parse_args()
    scenarios = QUICK if args.quick else FULL
    if args.only:
        scenarios = [s for s in scenarios if s[0] in args.only]
    reps = args.reps or (1 if args.quick else 3)
    raw = os.path.join(BENCH, "raw.json")
    if args.report:
        with open(raw) as f:
            results = json.load(f)
        meta = results.pop("_meta", {})
        scenarios = [s for s in FULL + QUICK if s[0] in results]
        reps = meta.get("reps", max(len(r[k]["runs"]) for r in
                                    results.values() for k in r))
        accel, minutes = meta.get("accel", "tcg"), meta.get("minutes")
        date = meta.get("date", time.strftime("%Y-%m-%d %H:%M",
                                              time.localtime(
                                                  os.path.getmtime(raw))))
    else:
        results, accel, minutes = run_all(args, scenarios, reps)
        date = time.strftime("%Y-%m-%d %H:%M")
        with open(raw, "w") as f:
            json.dump(dict(results, _meta={
                "reps": reps, "accel": accel, "minutes": minutes,
                "date": date}), f, indent=1)
    md = [f"# LUO benchmark: ours / upstream 7.2.11\n",
          f"{reps} repetition(s) per kernel, QEMU {accel}, {date}"
          f"{f', {minutes:.0f} min' if minutes else ''}.  "
          "Medians, min-max.\n",
          "\n## Summary\n",
          summary(results),
          "\n## Goals\n",
          goals(results),
          "\n## All metrics\n",
          table(results, scenarios)]
    plots = [("memfd", "memfd size (MiB)", ["preserve_us", "retrieve_fd_us",
                                            "first_read_us"], "memfd.png"),
             ("sessions", "sessions", ["preserve_only_us", "retrieve_all_us"],
              "sessions.png"),
             ("files", "files in one session",
              ["preserve_only_us", "retrieve_all_us"], "files.png")]
    for prefix, xlabel, keys, png in plots:
        if plot(results, scenarios, prefix, xlabel, keys,
                os.path.join(BENCH, png)):
            md.append(f"\n![{prefix}]({png})\n")
    with open(os.path.join(BENCH, "results.md"), "w") as f:
        f.write("\n".join(md))
    print("".join(md[2:6]))
    print(f"bench: results in {os.path.relpath(BENCH, REPO)}/results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
