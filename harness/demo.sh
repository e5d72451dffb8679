#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# make demo: a live kernel update in QEMU.  Kernel A runs luod and a demo
# VMM whose guest RAM and device state live in preserved memfds; luoctl
# updates into kernel B (another build); the VMM resumes there exactly
# where it stopped.  The full serial log is in out/logs/demo/demo.log.
#
#   demo.sh [--hugetlb]: the VMM's guest RAM in 2 MiB hugetlb pages
#   (make demo HUGETLB=1); the log is then out/logs/demo/demo-hugetlb.log.
#   demo.sh --device: the VMM also owns a passthrough device, QEMU's edu
#   behind its VT-d, whose DMA crosses the update (make demo DEVICE=1);
#   the log is out/logs/demo/demo-device.log.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
test=demo
case "${1:-}" in
--hugetlb) test=demo-hugetlb ;;
--device) test=demo-device ;;
"") ;;
*) echo "usage: $0 [--hugetlb|--device]" >&2; exit 2 ;;
esac
log=$(dirname "$HERE")/out/logs/demo/$test.log
echo "demo: booting kernel A (out/bzImage) in QEMU (TCG), kernel B in its initramfs"
status=0
"$HERE/run-suite.py" --variant demo $test > /tmp/luo-demo.$$ 2>&1 || status=$?
grep -E "^(demo|vmm|luoctl|luod): |^(not )?ok |luo-kexec: " "$log" |
	grep -vE "^vmm: step [0-9]*[1-9]00," |
	sed -e 's/Linux version \([^ ]*\) (\([^)]*\)) (.*) \(#[0-9]*\) .*/Linux \1, built by \2, build \3/'
grep -E "FAIL|passed" /tmp/luo-demo.$$
rm -f /tmp/luo-demo.$$
if [ $status -eq 0 ]; then
	echo "demo: live update done: the VMM's memory and state crossed into kernel B intact"
else
	echo "demo: FAILED, see $log"
fi
exit $status
