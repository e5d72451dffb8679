#!/bin/sh
# The demo's guest side: a live kernel update with a VMM's whole state
# surviving it.  Kernel A (this boot) runs luod and a demo VMM whose guest
# RAM (256 MiB) and device state live in memfds preserved through luod;
# luoctl asks for the update into kernel B (/boot/bzImage, another build);
# in B the VMM gets its memory back, checks every byte and carries on.
# KTAP results, like every multi-stage test: the hop is stage 0's last
# planned result, printed only if it failed.
#
#   demo.sh [--hugetlb]: guest RAM in 2 MiB hugetlb pages
#   demo.sh --device: the VMM also owns QEMU's edu device (machine "edu"),
#   through vfio-pci and an iommufd, and a DMA of it crosses the update
RAM_MIB=256
VMM_RAM=
VMM_DEV=
FILES=2
POOL=/sys/kernel/mm/hugepages/hugepages-2048kB
case "${1:-}" in
--hugetlb) VMM_RAM=-H ;;
--device) VMM_DEV=-d; FILES=4 ;;
esac

# One line on the 2 MiB hugetlb pool.
pool() {
	echo "demo: 2 MiB hugetlb pool: $(cat $POOL/nr_hugepages) pages, $(cat $POOL/free_hugepages) free"
}

ok() {	# ok N DESCRIPTION: report the last command's status
	if [ $? -eq 0 ]; then echo "ok $1 $2"; else echo "not ok $1 $2"; fail=1; fi
}

# Wait up to $1 seconds for $2 (a command) to succeed.
wait_for() {
	n=$(($1 * 10))
	while [ $n -gt 0 ]; do
		eval "$2" >/dev/null 2>&1 && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

fail=0
echo "TAP version 13"
case "$LUO_STAGE" in
0)
	echo "1..4"
	echo "demo: kernel A: $(cat /proc/version)"
	luod -t 20 &
	wait_for 10 "luoctl status"
	ok 1 "luod is up"
	if [ -n "$VMM_RAM" ]; then
		echo $((RAM_MIB / 2)) > $POOL/nr_hugepages
		pool
		echo "demo: the VMM's guest RAM: a hugetlb memfd of $RAM_MIB MiB in 2 MiB pages"
	fi
	[ -z "$VMM_DEV" ] ||
		echo "demo: the VMM owns QEMU's edu device through vfio-pci and iommufd"
	luo-demo-vmm start -m $RAM_MIB $VMM_RAM $VMM_DEV -n 2000 -r 50 -p 500 &
	wait_for 120 "luoctl status | grep -q 'session demo-vmm .*files=$FILES'"
	ok 2 "the VMM's guest RAM and device state are preserved"
	luoctl status | sed 's/^/demo: /'
	if [ -n "$VMM_RAM" ]; then
		# Kernel B's boot pool covers all of guest RAM: the preserved
		# pages count toward it, fresh ones fill the VMM's holes.
		echo "demo: kernel B boots with hugepages=$((RAM_MIB / 2))"
		luo-next-stage -l -a "hugepages=$((RAM_MIB / 2))"
	else
		luo-next-stage -l
	fi
	ok 3 "kernel B loaded with kexec_file_load"
	[ $fail -eq 0 ] || exit 1
	echo "demo: luoctl update: luod asks the VMM to get ready, then reboots into kernel B"
	luoctl update
	echo "demo: luoctl update returned $?"
	echo "not ok 4 live update into kernel B"
	exit 1
	;;
*)
	echo "1..3"
	echo "demo: kernel B: $(cat /proc/version)"
	dmesg | grep -E "liveupdate: restored|HugeTLB: .* previous kernel" |
		sed 's/^/demo: kernel log: /'
	luod -t 20 &
	wait_for 10 "luoctl status"
	ok 1 "luod is up, with the incoming session"
	luoctl status | sed 's/^/demo: /'
	[ -z "$VMM_RAM" ] || pool
	luo-demo-vmm resume $VMM_DEV -n 1000 -p 500
	ok 2 "the VMM resumed where it stopped, every byte intact, and ran on"
	[ -z "$VMM_RAM" ] || pool
	echo "demo: the update's blackout, as both kernels timed it (us from reboot() reaching LUO):"
	sed 's/^/demo: timeline: /' /sys/kernel/debug/liveupdate/timeline
	! luoctl status | grep -q "session demo-vmm"
	ok 3 "its session is finished and released"
	[ $fail -eq 0 ] && echo "demo: the VMM's whole state survived the live update"
	exit $fail
	;;
esac
