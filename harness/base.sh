#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# Provide the stripped base tree: Debian's Linux 7.2.11 source with the
# upstream LUO removed.  Unpacked once into $LUO_CACHE (outside the git tree);
# later calls only check the stamp.  Prints the tree's path.
#
# base.sh --upstream: the unmodified tree instead, with its upstream LUO,
# for the benchmark's yardstick kernel (built, never read).
#
# The tarball comes from ../shared/base when it is there, else from Debian's
# linux-source-7.2 package (trixie-backports, added to apt with the mirror
# this machine already uses).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
CACHE=${LUO_CACHE:-$HOME/.cache/luo}
VERSION=7.2.11
DEB_VERSION=7.2.11-1~bpo13+1
TARBALL_SHA256=4d5236387c51a225c59ed8e98e8ef350baf6f38e3f66b2bb66cf347826a80b33
STRIP_SUM=$(sha256sum "$HERE/strip-upstream-luo.py" | cut -c1-16)
BASE=$CACHE/base-$VERSION
STAMP=$BASE/.luo-stripped-$STRIP_SUM

log() { echo "base: $*" >&2; }

UPSTREAM_ST=$CACHE/upstream-selftests-$VERSION
UPSTREAM=$CACHE/upstream-$VERSION
want_upstream=
[ "${1:-}" = --upstream ] && want_upstream=1

if [ -n "$want_upstream" ] && [ -f "$UPSTREAM/.luo-unpacked" ]; then
	echo "$UPSTREAM"
	exit 0
fi
if [ -z "$want_upstream" ] && [ -f "$STAMP" ] && [ -d "$UPSTREAM_ST" ]; then
	echo "$BASE"
	exit 0
fi
mkdir -p "$CACHE"

find_tarball() {
	shared=${LUO_SHARED_BASE:-$REPO/../shared/base}/linux-source-7.2.tar.xz
	if [ -f "$shared" ]; then
		echo "$TARBALL_SHA256  $shared" | sha256sum -c --quiet >&2 ||
			{ log "$shared: sha256 mismatch"; exit 1; }
		echo "$shared"
		return
	fi
	deb_tar=$CACHE/deb/usr/src/linux-source-7.2.tar.xz
	if [ ! -f "$deb_tar" ]; then
		log "no $shared; fetching Debian's linux-source-7.2"
		fetch_deb
	fi
	echo "$deb_tar"
}

# Debian's own mirror, as configured on this machine, for the suite that
# carries linux-source-7.2.
fetch_deb() {
	list=/etc/apt/sources.list.d/luo-trixie-backports.sources
	if ! apt-cache policy linux-source-7.2 2>/dev/null | grep -q Candidate; then
		uri=$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p' \
			/etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
		[ -n "$uri" ] || uri=$(sed -n 's/^deb \([^ ]*debian\) .*/\1/p' \
			/etc/apt/sources.list 2>/dev/null | head -n1)
		[ -n "$uri" ] || { log "cannot find the Debian mirror in apt's sources"; exit 1; }
		printf 'Types: deb\nURIs: %s\nSuites: trixie-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
			"$uri" > "$list"
		apt-get update -qq >&2
	fi
	rm -rf "$CACHE/deb" && mkdir -p "$CACHE/deb"
	(cd "$CACHE/deb" &&
	 { apt-get download "linux-source-7.2=$DEB_VERSION" >&2 ||
	   apt-get download linux-source-7.2 >&2; } &&
	 dpkg-deb -x linux-source-7.2_*.deb .)
}

tarball=$(find_tarball)
# The upstream liveupdate kselftests, kept apart for the compatibility check
# (built against our uAPI header and run as a black box; never part of our
# tree).
if [ ! -d "$UPSTREAM_ST" ]; then
	log "extracting the upstream liveupdate kselftests into $UPSTREAM_ST"
	rm -rf "$UPSTREAM_ST.tmp" && mkdir -p "$UPSTREAM_ST.tmp"
	tar -C "$UPSTREAM_ST.tmp" -xJf "$tarball" \
		linux-source-7.2/tools/testing/selftests/liveupdate
	mv "$UPSTREAM_ST.tmp/linux-source-7.2/tools/testing/selftests/liveupdate" \
		"$UPSTREAM_ST"
	rm -rf "$UPSTREAM_ST.tmp"
fi
if [ -n "$want_upstream" ]; then
	log "unpacking $tarball into $UPSTREAM (unmodified)"
	rm -rf "$UPSTREAM" "$UPSTREAM.tmp"
	mkdir -p "$UPSTREAM.tmp"
	tar -C "$UPSTREAM.tmp" -xJf "$tarball"
	mv "$UPSTREAM.tmp/linux-source-7.2" "$UPSTREAM"
	rmdir "$UPSTREAM.tmp"
	touch "$UPSTREAM/.luo-unpacked"
	echo "$UPSTREAM"
	exit 0
fi
if [ -f "$STAMP" ]; then
	echo "$BASE"
	exit 0
fi
log "unpacking $tarball into $BASE"
rm -rf "$BASE" "$BASE.tmp"
mkdir -p "$BASE.tmp"
tar -C "$BASE.tmp" -xJf "$tarball"
mv "$BASE.tmp/linux-source-7.2" "$BASE"
rmdir "$BASE.tmp"
have=$(make -s -C "$BASE" kernelversion)
[ "$have" = "$VERSION" ] || log "warning: base says $have, expected $VERSION"
log "removing the upstream LUO"
python3 "$HERE/strip-upstream-luo.py" strip "$BASE"
touch "$STAMP"
echo "$BASE"
