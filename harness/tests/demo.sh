#!/bin/sh
# The demo's guest side: a session with three preserved test files crosses
# a kexec; the new kernel restores it and gives the files back.
case "$LUO_STAGE" in
0)
	echo "demo: kernel A: $(uname -r) $(cat /proc/sys/kernel/version)"
	echo "demo: preserving session 'simple' (3 files) and kexec'ing"
	exec ./liveupdate_kexec simple
	;;
*)
	echo "demo: kernel B: $(uname -r) $(cat /proc/sys/kernel/version)"
	dmesg | grep -E "KHO: found|liveupdate: restored" | sed 's/^/demo: kernel log: /'
	echo "demo: sessions handed over:"
	sed 's/^/demo:   /' /sys/kernel/debug/liveupdate/sessions
	exec ./liveupdate_kexec simple
	;;
esac
