#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Boot each test of harness/suite in QEMU and report.

A test is one boot of a kernel with the test initramfs; the test itself may
kexec any number of times (each hop is a new stage on the same serial line).
The serial log of each run goes to out/logs/<variant>/<test>.log.  A test
passes when its last stage exits 0, every KTAP result it printed is "ok", and
the kernel log holds no warning, BUG, oops, panic, KASAN, UBSAN, lockdep or
kmemleak report.
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "out")

# The kernel each variant boots, and the one its initramfs carries as
# /boot/bzImage to kexec into: the demo boots the fast kernel (A) and
# updates into kernel B.
KERNELS = {"fast": "bzImage", "debug": "bzImage-debug", "demo": "bzImage"}
TARGETS = {"fast": "bzImage", "debug": "bzImage-debug",
           "demo": "bzImage-demo-b"}
ROOT = os.path.join(OUT, "initramfs", "root")

# Kernel reports that fail a test wherever they appear.
SPLAT = re.compile(
    r"WARNING:|BUG:|kernel BUG|Oops|Kernel panic|general protection fault|"
    r"KASAN|UBSAN|unreferenced object|possible (recursive|circular) locking|"
    r"inconsistent lock state|list_(add|del) corruption|refcount_t:|"
    r"INFO: task .* blocked|Call Trace:")
KTAP = re.compile(r"^\s*(not ok|ok) (\d+)\s*(?:-\s*)?([^#]*?)\s*(#\s*(.*))?$")
STAGE = re.compile(r"luotest: start (\S+) stage (\d+)")
DONE = re.compile(r"luotest: done (\S+) stage (\d+) rc=(\d+)")
# A stage that skips as a whole: kselftest's ksft_exit_skip(), status 4.
PLAN_SKIP = re.compile(r"^1\.\.0\s*#\s*SKIP\s*(.*)$")
KSFT_SKIP = 4
# Serial lines carry a printk timestamp prefix only for kernel messages.
CONSOLE_PREFIX = re.compile(r"^\[\s*\d+\.\d+\]\s?")

# Machines a test can ask for in its memory column, as SIZE+MACHINE: kernel
# arguments for the first boot, which luo-next-stage keeps for every kexec
# hop (it reuses /proc/cmdline).
#  mm: two NUMA nodes (numa=fake works without ACPI firmware tables, which
#      the debug kernel lacks) and a ZONE_MOVABLE that memory offline can
#      empty (movablecore= takes it from the top of each node).
#  numa: two NUMA nodes, no ZONE_MOVABLE.
MACHINES = {"mm": ["numa=fake=2", "movablecore=50%"],
            "numa": ["numa=fake=2"],
            # ZONE_MOVABLE at the top of one node: 2 MiB pool pages land
            # there, and 1 GiB pages still fit below it.
            "hugemm": ["movablecore=25%"],
            # 1 GiB pages allocated at the first boot, from memblock: at run
            # time the debug kernel's early allocations have left no free
            # 1 GiB range in one guest out of a few.  KHO's default scratch
            # size counts them as kernel memory (twice their size, which
            # does not fit): fixed sizes, which the debug kernel's own
            # replace.
            "giant": ["kho_scratch=64M,512M,128M", "luotest.first",
                      "hugepagesz=1G", "hugepages=1", "luotest.first_end"],
            "giant4": ["kho_scratch=64M,512M,128M", "luotest.first",
                       "hugepagesz=1G", "hugepages=4", "luotest.first_end"],
            # The global scratch area, placed top-down below the top 1 GiB,
            # is larger than what the top 1 GiB has left: it begins inside
            # the 1 GiB range under it, the rest of which is free.  Large
            # enough for the debug kernel in a 10G guest (see cmdline()).
            "straddle": ["kho_scratch=64M,1408M,128M"],
            # Passthrough devices: QEMU's VT-d and its "edu" PCI device
            # (MACHINE_DEVICES).  Without interrupt remapping in the test
            # kernels, iommufd refuses to bind a device unless told that
            # the rig's interrupts are trusted.
            "edu": ["intel_iommu=on", "iommufd.allow_unsafe_interrupts=1"],
            # A clock that starts early and stays (the timeline tests): the
            # TSC rate given (see cmdline()), and the HPET (ACPI) in the
            # debug kernel too, for the refined calibration.
            "clock": []}

# The QEMU devices a machine adds; the IOMMU comes before the devices
# behind it.
MACHINE_DEVICES = {"edu": ["-device", "intel-iommu", "-device", "edu"]}


def load_suite(path):
    tests = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, kernels, mem, timeout, cmd = line.split(None, 4)
            mem, _, machine = mem.partition("+")
            if machine and machine not in MACHINES:
                sys.exit(f"run-suite: {name}: unknown machine '{machine}'")
            tests.append(dict(name=name, kernels=kernels.split(","),
                              mem=mem, args=MACHINES.get(machine, []),
                              devices=MACHINE_DEVICES.get(machine, []),
                              acpi=machine in ("edu", "clock"),
                              clock=machine == "clock",
                              timeout=int(timeout), cmd=cmd))
    return tests


def test_entries(test):
    """The entries of /tests a test needs: those its command names, and
    those named by the scripts of /tests it runs."""
    entries = sorted(os.listdir(os.path.join(ROOT, "tests")))

    def named(e, text):
        return re.search(rf"(?<![\w.-]){re.escape(e)}(?![\w.-])", text)
    text = test["cmd"]
    for e in entries:
        if e.endswith(".sh") and named(e, test["cmd"]):
            with open(os.path.join(ROOT, "tests", e)) as f:
                text += "\n" + f.read()
    return [e for e in entries if named(e, text)]


def make_initrds(runs):
    """Write an initramfs for each (variant, /tests entries) the runs need:
    the test rootfs with only those entries in /tests, and the kernel to
    kexec into.  Every boot unpacks it and every kexec hop checksums and
    copies it again; under TCG, with the debug kernel, the whole rootfs
    cost seconds per boot.  Returns the initramfs path of each run."""
    # One directory per runner: two runners at a time must not overwrite
    # each other's archives.
    runs_dir = os.path.join(OUT, "initramfs", "run")
    os.makedirs(runs_dir, exist_ok=True)
    for old in os.listdir(runs_dir):
        if not old.isdigit() or not os.path.exists(f"/proc/{old}"):
            shutil.rmtree(os.path.join(runs_dir, old), ignore_errors=True)
    rundir = os.path.join(runs_dir, str(os.getpid()))
    os.makedirs(rundir, exist_ok=True)
    core = subprocess.run("find . -path ./tests -prune -o -print | "
                          "LC_ALL=C sort", shell=True, cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    built = {}
    paths = []
    for test, variant, _ in runs:
        entries = test_entries(test)
        key = (variant, tuple(entries))
        if key not in built:
            path = os.path.join(rundir, f"{variant}-{len(built)}.cpio")
            listing = core + "./tests\n" + subprocess.run(
                ["find"] + [f"./tests/{e}" for e in entries], cwd=ROOT,
                check=True, capture_output=True, text=True).stdout
            with open(path, "wb") as f:
                subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"],
                               cwd=ROOT, input=listing.encode(), stdout=f,
                               check=True)
            # The kernel to kexec into, as a second archive: the kernel
            # unpacks concatenated archives.
            subprocess.run([os.path.join(REPO, "harness", "mkinitramfs.sh"),
                            "--kernel", os.path.join(OUT, TARGETS[variant]),
                            path, path + ".k"], check=True)
            os.replace(path + ".k", path)
            built[key] = path
        paths.append(built[key])
    return paths


def kvm_works():
    """Use KVM only if a probe shows it can start a VM here."""
    if os.environ.get("LUO_ACCEL") in ("tcg", "kvm"):
        return os.environ["LUO_ACCEL"] == "kvm"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    try:
        # Let the firmware run: a VM that cannot even reset its vCPUs
        # (nested KVM without MSR support, seen here) dies within a second.
        p = subprocess.run(["qemu-system-x86_64", "-accel", "kvm", "-cpu",
                            "host", "-M", "q35", "-nodefaults", "-display",
                            "none"], capture_output=True, timeout=3)
        return False if p.returncode else True
    except subprocess.TimeoutExpired:
        return True      # still running after 3 s: KVM works


def host_tsc_khz():
    """The host's TSC rate in kHz, if it has a constant TSC, else None."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return None
    flags = next((l for l in info.splitlines() if l.startswith("flags")), "")
    mhz = next((l for l in info.splitlines() if l.startswith("cpu MHz")),
               None)
    if "constant_tsc" not in flags.split() or not mhz:
        return None
    return int(float(mhz.split(":")[1]) * 1000)


def cmdline(test, variant, accel=None):
    args = ["console=ttyS0", "earlyprintk=serial", "panic=-1", "oops=panic",
            "kho=on", "liveupdate=on", f"luotest.name={test['name']}",
            "luotest.stage=0"] + test["args"]
    if variant == "debug":
        # KASAN eats memory: give KHO explicit scratch sizes (BRIEF).  The
        # next kernel allocates its KASAN shadow, an eighth of memory, from
        # scratch alone: the global area grows with the guest.
        mem_mb = int(test["mem"][:-1]) * (1024 if test["mem"][-1] == "G"
                                          else 1)
        need = max(256, mem_mb // 8 + 128)
        # A machine's own sizes stay if they are large enough.
        own = [a for a in test["args"] if a.startswith("kho_scratch=")]
        if not own or int(own[0].split(",")[1].rstrip("M")) < need:
            args += [f"kho_scratch=64M,{need}M,128M"]
    if variant == "debug" and not test.get("acpi"):
        # Under KASAN, reading the ACPI tables and the PCI root costs about
        # 7 s per boot: the debug kernel has it for the machines that need
        # it (the DMAR table, the HPET) only.  Without it the kernel takes
        # the CPUs from the MP table, as it did before it had ACPI.
        args.append("acpi=off")
    if test.get("clock") and accel == "tcg" and host_tsc_khz():
        # The guest's TSC runs at the host's rate: calibrating it against
        # the emulated PIT fails now and then on a loaded host, and the
        # early clock then restarts, which the timeline tests check.
        args.append(f"tsc_early_khz={host_tsc_khz()}")
    extra = os.environ.get("LUO_APPEND")
    if extra:
        args.append(extra)
    return " ".join(args)


def qemu_cmd(kernel, initrd, mem, append, accel, devices=()):
    """The QEMU command line every test and benchmark boot uses."""
    cmd = ["qemu-system-x86_64", "-M", "q35", "-m", mem, "-smp", "2",
           "-nodefaults", "-nographic", "-no-reboot", "-serial", "stdio",
           "-kernel", kernel, "-initrd", initrd, "-append", append,
           *devices]
    if accel == "kvm":
        cmd[1:1] = ["-accel", "kvm", "-cpu", "host"]
    else:
        # 4-level paging, as on the hosts LUO targets; with "max"'s LA57,
        # a KASAN kernel booted by kexec reports wild accesses at early
        # interrupts (seen in 1 of 40 debug boots of the base kernel).
        cmd[1:1] = ["-accel", "tcg", "-cpu", "max,la57=off"]
    return cmd


def timeout_of(test, variant):
    """The suite's timeouts are for the fast kernel; sanitizers under TCG
    are several times slower."""
    return test["timeout"] * (3 if variant == "debug" else 1)


def run_one(test, variant, accel, logdir, initrd):
    kernel = os.path.join(OUT, KERNELS[variant])
    log = os.path.join(logdir, test["name"] + ".log")
    cmd = qemu_cmd(kernel, initrd, test["mem"], cmdline(test, variant, accel),
                   accel, test["devices"])
    timeout = timeout_of(test, variant)
    start = time.monotonic()
    timed_out = False
    with open(log, "wb") as f:
        f.write((" ".join(cmd) + "\n").encode())
        f.flush()
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            timed_out = True
    elapsed = time.monotonic() - start
    with open(log, "rb") as f:
        lines = f.read().decode("utf-8", "replace").splitlines()
    return elapsed, analyse(dict(test, timeout=timeout), lines, timed_out,
                            elapsed, log)


def minsec(seconds):
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"


def time_line(since, static, qemu, wall, jobs):
    """Where make test's time went: the build (from make's start, less
    the static checks), the static checks, and the suite (wall clock, and
    QEMU time per kernel)."""
    parts = []
    checks = sum(static.values())
    if since is not None:
        parts.append("build " + minsec(time.time() - wall - since - checks))
    if static:
        each = ", ".join(f"{k} {minsec(v)}" for k, v in static.items())
        parts.append(f"static checks {minsec(checks)} ({each})")
    each = ", ".join(f"{v} {minsec(s)}" for v, s in qemu.items())
    parts.append(f"tests {minsec(wall)} (up to {jobs} at a time; QEMU time: "
                 f"{each})")
    return "time: " + ", ".join(parts)


def analyse(test, lines, timed_out, elapsed, log):
    """Turn a serial log into a list of (name, ok, detail) results."""
    name = test["name"]
    results = []
    splats = []
    stage = None
    last_done = None
    skip = None
    for i, line in enumerate(lines):
        m = STAGE.search(line)
        if m:
            stage = int(m.group(2))
            continue
        m = DONE.search(line)
        if m:
            last_done = (int(m.group(2)), int(m.group(3)))
            continue
        if SPLAT.search(line):
            splats.append(i)
            continue
        body = CONSOLE_PREFIX.sub("", line)
        m = PLAN_SKIP.match(body)
        if m and stage is not None and not line.startswith("["):
            skip = (stage, m.group(1).strip())
            continue
        m = KTAP.match(body)
        if m and stage is not None and not line.startswith("["):
            status, num, desc, _, directive = m.groups()
            directive = (directive or "").strip()
            case = f"{name}/{stage}/{desc or num}"
            if directive.upper().startswith("SKIP"):
                results.append((case, None, directive))
            else:
                results.append((case, status == "ok",
                                "" if status == "ok" else body.strip()))
    verdict = f"{name}: completed"
    if timed_out:
        results.append((verdict, False, f"timed out after {test['timeout']}s "
                        f"(stage {stage}); see {log}"))
    elif last_done is None:
        results.append((verdict, False, f"no final marker (crash or reboot "
                        f"in stage {stage}); see {log}"))
    elif (last_done[1] == KSFT_SKIP and skip and skip[0] == last_done[0]):
        # Skipped, with its reason; never counted as a pass.
        results.append((verdict, None, f"stage {skip[0]} skipped: "
                        f"{skip[1]}"))
    elif last_done[1] != 0:
        results.append((verdict, False, f"stage {last_done[0]} exited "
                        f"{last_done[1]}; see {log}"))
    else:
        results.append((verdict, True, f"{elapsed:.1f}s, "
                        f"{last_done[0] + 1} boot(s)"))
    if splats:
        ctx = []
        for i in splats[:3]:
            ctx += lines[max(0, i - 2):i + 12] + ["..."]
        results.append((f"{name}: kernel log clean", False,
                        "kernel report in " + log + ":\n    " +
                        "\n    ".join(ctx)))
    else:
        results.append((f"{name}: kernel log clean", True, ""))
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", action="append", choices=KERNELS,
                    help="kernel variant to run (repeatable; default fast)")
    ap.add_argument("--suite", default=os.path.join(REPO, "harness", "suite"))
    ap.add_argument("-j", "--jobs", type=int,
                    default=int(os.environ.get("LUO_JOBS", "2")),
                    help="QEMU instances at a time (default 2)")
    ap.add_argument("--results", action="append", default=[],
                    help="a file of 'PASS|FAIL|SKIP what' lines from checks "
                    "run before the suite, counted with it")
    ap.add_argument("--since", type=float,
                    help="when make started (seconds since the epoch), for "
                    "the time line")
    ap.add_argument("tests", nargs="*", help="test names (default: all)")
    args = ap.parse_args()
    variants = args.variant or ["fast"]
    accel = "kvm" if kvm_works() else "tcg"
    print(f"run-suite: QEMU accelerator {accel}")
    suite = load_suite(args.suite)
    if args.tests:
        unknown = set(args.tests) - {t["name"] for t in suite}
        if unknown:
            sys.exit(f"run-suite: unknown tests: {' '.join(sorted(unknown))}")
        suite = [t for t in suite if t["name"] in args.tests]
    runs = []
    for variant in variants:
        logdir = os.path.join(OUT, "logs", variant)
        os.makedirs(logdir, exist_ok=True)
        runs += [(t, variant, logdir) for t in suite if variant in t["kernels"]]
    passed = failed = skipped = 0
    static = {}
    for path in args.results:
        for line in open(path):
            tag = line.split(" ", 1)[0]
            if tag == "TIME":
                _, name, seconds = line.split()
                static[name] = float(seconds)
                continue
            if tag not in ("PASS", "FAIL", "SKIP"):
                continue
            print(line.rstrip(), flush=True)
            passed += tag == "PASS"
            failed += tag == "FAIL"
            skipped += tag == "SKIP"
    initrds = make_initrds(runs)
    # Longest first (the timeout is the estimate), so that no long test is
    # left running alone at the end.
    order = sorted(range(len(runs)), key=lambda k: -timeout_of(*runs[k][:2]))
    futures = [None] * len(runs)
    qemu = {v: 0.0 for v in variants}
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        for k in order:
            t, v, d = runs[k]
            futures[k] = pool.submit(run_one, t, v, accel, d, initrds[k])
        # Report in suite order, each test as soon as it and those before
        # it are done.
        for (test, variant, _), future in zip(runs, futures):
            elapsed, results = future.result()
            qemu[variant] += elapsed
            for case, ok, detail in results:
                tag = {True: "PASS", False: "FAIL", None: "SKIP"}[ok]
                line = f"{tag} [{variant}] {case}"
                if detail and ok is not True:
                    line += f": {detail}"
                elif detail:
                    line += f" ({detail})"
                print(line, flush=True)
                if ok is None:
                    skipped += 1
                elif ok:
                    passed += 1
                else:
                    failed += 1
    print(time_line(args.since, static, qemu, time.monotonic() - start,
                    max(1, args.jobs)))
    summary = f"{passed} passed, {failed} failed"
    if skipped:
        summary += f", {skipped} skipped"
    print(summary)
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
