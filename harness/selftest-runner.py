#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Checks of run-suite.py's verdicts on synthetic serial logs: a failing
KTAP result, a kernel warning, a crash or a timeout must each turn a test red
with a message that points at the cause."""
import importlib.util
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "run_suite", os.path.join(HERE, "run-suite.py"))
rs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rs)

TEST = dict(name="t", timeout=60)
GOOD = """[    0.000000] Linux version 7.2.11
luotest: start t stage 0
TAP version 13
1..2
ok 1 first
ok 2 second # SKIP not here
luotest: done t stage 0 rc=0
""".splitlines()


def verdicts(lines, timed_out=False):
    return {case: (ok, detail) for case, ok, detail in
            rs.analyse(TEST, lines, timed_out, 1.0, "LOG")}


class Verdicts(unittest.TestCase):
    def test_clean(self):
        v = verdicts(GOOD)
        self.assertEqual(v["t/0/first"][0], True)
        self.assertIsNone(v["t/0/second"][0])
        self.assertTrue(v["t: completed"][0])
        self.assertTrue(v["t: kernel log clean"][0])

    def test_failing_result(self):
        lines = GOOD[:4] + ["not ok 1 first"] + GOOD[5:]
        v = verdicts(lines)
        self.assertFalse(v["t/0/first"][0])
        self.assertIn("not ok 1 first", v["t/0/first"][1])

    def test_warning(self):
        lines = GOOD[:3] + [
            "[   12.345678] WARNING: CPU: 1 PID: 77 at kernel/liveupdate/files.c:42 luo_x+0x1/0x2",
            "[   12.345679] Call Trace:"] + GOOD[3:]
        v = verdicts(lines)
        ok, detail = v["t: kernel log clean"]
        self.assertFalse(ok)
        self.assertIn("kernel/liveupdate/files.c:42", detail)

    def test_kmemleak(self):
        lines = GOOD[:-1] + ["unreferenced object 0xffff888004a1c000 (size 64):"] + GOOD[-1:]
        self.assertFalse(verdicts(lines)["t: kernel log clean"][0])

    def test_crash(self):
        v = verdicts(GOOD[:-1] + ["[    3.0] Kernel panic - not syncing: Oops"])
        self.assertFalse(v["t: completed"][0])
        self.assertIn("no final marker", v["t: completed"][1])
        self.assertFalse(v["t: kernel log clean"][0])

    def test_timeout(self):
        v = verdicts(GOOD[:-1], timed_out=True)
        self.assertFalse(v["t: completed"][0])
        self.assertIn("timed out", v["t: completed"][1])

    def test_exit_status(self):
        v = verdicts(GOOD[:-1] + ["luotest: done t stage 0 rc=1"])
        self.assertFalse(v["t: completed"][0])
        self.assertIn("exited 1", v["t: completed"][1])

    def test_stage_skip(self):
        lines = GOOD[:3] + ["1..0 # SKIP no clock"] + \
            ["luotest: done t stage 0 rc=4"]
        v = verdicts(lines)
        self.assertIsNone(v["t: completed"][0])
        self.assertIn("no clock", v["t: completed"][1])
        # Status 4 without kselftest's skip plan is a failure.
        v = verdicts(GOOD[:-1] + ["luotest: done t stage 0 rc=4"])
        self.assertFalse(v["t: completed"][0])


if __name__ == "__main__":
    sys.exit(0 if unittest.main(exit=False, verbosity=0).result.wasSuccessful() else 1)
