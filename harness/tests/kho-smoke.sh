#!/bin/sh
# The loop's own smoke test: the stripped base kexecs with kexec_file_load
# and the second kernel finds the KHO handover data.
case "$LUO_STAGE" in
0)
	echo "TAP version 13"
	echo "1..2"
	if [ -d /sys/kernel/debug/kho ]; then
		echo "ok 1 kho enabled"
	else
		echo "not ok 1 kho enabled # no /sys/kernel/debug/kho"
		exit 1
	fi
	luo-next-stage
	echo "not ok 2 kexec_file_load and reboot(KEXEC)"
	exit 1
	;;
1)
	echo "TAP version 13"
	echo "1..2"
	echo "ok 1 booted by kexec"
	if dmesg | grep -q "KHO: found kexec handover data"; then
		echo "ok 2 second kernel found the KHO handover data"
	else
		echo "not ok 2 second kernel found the KHO handover data"
		exit 1
	fi
	;;
*)
	echo "not ok 1 unexpected stage $LUO_STAGE"
	exit 1
	;;
esac
