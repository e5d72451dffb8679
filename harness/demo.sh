#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# make demo: boot our kernel in QEMU, preserve a session, kexec, and show
# the new kernel handing it back.  The full serial log is in
# out/logs/fast/demo.log.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
echo "demo: booting out/bzImage in QEMU (TCG); this takes a few seconds"
status=0
"$HERE/run-suite.py" demo > /tmp/luo-demo.$$ 2>&1 || status=$?
log=$(dirname "$HERE")/out/logs/fast/demo.log
grep -E "^demo:|^(not )?ok |luo-kexec: reboot|Linux version" "$log" |
	sed -e 's/^.*Linux version/kernel: Linux version/' -e 's/ (luo@luo).*#/ #/'
cat /tmp/luo-demo.$$ | grep -E "FAIL|passed"
rm -f /tmp/luo-demo.$$
if [ $status -eq 0 ]; then
	echo "demo: the session survived the kexec and every file came back intact"
else
	echo "demo: FAILED, see $log"
fi
exit $status
