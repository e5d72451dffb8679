#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# build-tests.sh SRC HDR ROOT: fill the test rootfs ROOT: busybox, /init,
# the kexec loader, the suite list and the test programs (static binaries,
# built against the uAPI headers installed from the assembled tree in HDR).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$1
HDR=$2
ROOT=$3
CC=${CC:-gcc}
CFLAGS="-static -s -O2 -Wall -Wextra -Werror"

mkdir -p "$ROOT/bin" "$ROOT/sbin" "$ROOT/etc" "$ROOT/tests" "$ROOT/boot" \
	 "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" "$ROOT/run" "$ROOT/tmp"
cp -u /bin/busybox "$ROOT/bin/busybox"
# Debian's busybox-static runs its applets from the shell without links
# (FEATURE_SH_STANDALONE); 270 links cost 2-3 s of each debug boot under
# TCG, whether busybox --install makes them or the kernel unpacks them.
if ! env -i PATH=/nonexistent /bin/busybox sh -c 'true | cut -c1' 2>/dev/null; then
	echo "build-tests: /bin/busybox cannot run applets without links" >&2
	exit 1
fi
ln -sf busybox "$ROOT/bin/sh"
cp -u "$HERE/initramfs/init" "$ROOT/init"
cp -u "$HERE/initramfs/luo-next-stage" "$ROOT/sbin/luo-next-stage"
cp "$HERE/suite" "$ROOT/etc/suite"
if [ ! -x "$ROOT/sbin/luo-kexec" ] ||
   [ "$HERE/initramfs/luo-kexec.c" -nt "$ROOT/sbin/luo-kexec" ]; then
	$CC $CFLAGS -o "$ROOT/sbin/luo-kexec" "$HERE/initramfs/luo-kexec.c"
fi
for t in "$HERE"/tests/*.sh; do
	cp -u "$t" "$ROOT/tests/"
done

# kselftests: every program of tools/testing/selftests/liveupdate, plus a
# 32-bit build of the uAPI test for the compat path.
ST=$SRC/tools/testing/selftests
STFLAGS="$CFLAGS -isystem $HDR/include -I$ST"
newer() {	# newer OUT FILE...: is a FILE newer than OUT (or OUT missing)?
	out=$1
	shift
	[ -x "$out" ] || return 0
	for f; do
		[ "$f" -nt "$out" ] && return 0
	done
	return 1
}
build() {	# build OUT SRC [FLAGS]
	out=$1 src=$2
	shift 2
	if newer "$out" "$src" "$ST"/liveupdate/*.h \
		 "$HDR/include/linux/liveupdate.h"; then
		echo "  CC      tests/$(basename "$out")"
		$CC $STFLAGS "$@" -o "$out" "$src"
	fi
}
for src in "$ST"/liveupdate/*.c; do
	[ -f "$src" ] || continue
	build "$ROOT/tests/$(basename "$src" .c)" "$src"
done
if [ -f "$ST/liveupdate/liveupdate_uapi.c" ]; then
	build "$ROOT/tests/liveupdate_uapi_32" "$ST/liveupdate/liveupdate_uapi.c" -m32
fi

# The userspace tools (tools/liveupdate): luod, luoctl and the demo VMM in
# /bin, their test in /tests.
TOOLS=$(dirname "$ROOT")/tools
make -s -C "$SRC/tools/liveupdate" UAPI="$HDR/include" OUTPUT="$TOOLS" \
	CFLAGS="-O2 -s"
for t in luod luoctl luo-demo-vmm; do
	cp -u "$TOOLS/$t" "$ROOT/bin/$t"
done
cp -u "$TOOLS/luo_tools_test" "$ROOT/tests/luo_tools_test"

# The upstream liveupdate kselftests (compatibility check), built unchanged
# against our uAPI header; see harness/base.sh.
UP=${LUO_CACHE:-$HOME/.cache/luo}/upstream-selftests-7.2.11
if [ -d "$UP" ]; then
	mkdir -p "$ROOT/tests/upstream"
	for t in liveupdate luo_kexec_simple luo_multi_session \
		 luo_stress_sessions luo_stress_files; do
		out=$ROOT/tests/upstream/$t
		if [ ! -x "$out" ] || [ "$HDR/include/linux/liveupdate.h" -nt "$out" ]; then
			echo "  CC      tests/upstream/$t"
			$CC -static -s -O2 -D_GNU_SOURCE= -isystem "$HDR/include" \
				-I"$ST/liveupdate" -I"$ST" -o "$out" \
				"$UP/$t.c" "$UP/luo_test_utils.c"
		fi
	done
fi
