#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Install (from Debian) what the build, the tests and the demo need.
set -eu
PKGS="make gcc libc6-dev gcc-multilib bc flex bison libelf-dev libssl-dev
      perl patch python3 cpio xz-utils ccache busybox-static qemu-system-x86
      sparse rsync gnuplot-nox"
missing=
for p in $PKGS; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps:$missing"
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
