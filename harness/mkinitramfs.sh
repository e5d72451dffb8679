#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# mkinitramfs.sh ROOT OUT.cpio: pack the test rootfs (newc, uncompressed:
# unpacking is cheaper than gunzip under TCG).
# mkinitramfs.sh --kernel BZIMAGE BASE.cpio OUT.cpio: BASE plus /boot/bzImage,
# the kernel the tests kexec into.  The kernel unpacks concatenated archives.
set -eu
if [ "$1" = --kernel ]; then
	kernel=$2 base=$3 out=$4
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	mkdir -p "$tmp/boot"
	cp "$kernel" "$tmp/boot/bzImage"
	(cd "$tmp" && printf 'boot\nboot/bzImage\n' | cpio -o -H newc --quiet) > "$out.tmp"
	cat "$base" "$out.tmp" > "$out"
	rm -f "$out.tmp"
	exit 0
fi
root=$1 out=$2
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$out.tmp"
mv "$out.tmp" "$out"
