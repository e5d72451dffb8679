#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# build-tests.sh SRC ROOT: fill the test rootfs ROOT: busybox, /init, the
# kexec loader, the suite list and the test programs (static binaries, built
# against the assembled tree's uAPI headers).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$1
ROOT=$2
CC=${CC:-gcc}
CFLAGS="-static -O2 -Wall -Wextra -Werror"

mkdir -p "$ROOT/bin" "$ROOT/sbin" "$ROOT/etc" "$ROOT/tests" "$ROOT/boot" \
	 "$ROOT/proc" "$ROOT/sys" "$ROOT/dev" "$ROOT/run" "$ROOT/tmp"
cp -u /bin/busybox "$ROOT/bin/busybox"
ln -sf busybox "$ROOT/bin/sh"
cp -u "$HERE/initramfs/init" "$ROOT/init"
cp -u "$HERE/initramfs/luo-next-stage" "$ROOT/sbin/luo-next-stage"
cp -u "$HERE/suite" "$ROOT/etc/suite"
if [ ! -x "$ROOT/sbin/luo-kexec" ] ||
   [ "$HERE/initramfs/luo-kexec.c" -nt "$ROOT/sbin/luo-kexec" ]; then
	$CC $CFLAGS -o "$ROOT/sbin/luo-kexec" "$HERE/initramfs/luo-kexec.c"
fi
for t in "$HERE"/tests/*.sh; do
	cp -u "$t" "$ROOT/tests/"
done
