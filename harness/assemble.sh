#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# assemble.sh BASE SRC: make SRC = stripped BASE + our in-tree files +
# patches/series applied.  Incremental: a file is written only when its
# content changes, so make and ccache rebuild only what changed; files we
# stopped providing get the base version back (or disappear).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
BASE=$1
SRC=$2
# Top-level directories of the repo that mirror the kernel tree.
TREE_DIRS="Documentation arch drivers fs include kernel lib mm samples scripts tools"

log() { echo "assemble: $*" >&2; }

if [ ! -f "$SRC/.luo-assembled" ]; then
	log "copying base into $SRC"
	rm -rf "$SRC"
	mkdir -p "$(dirname "$SRC")"
	cp -a "$BASE" "$SRC.tmp"
	mv "$SRC.tmp" "$SRC"
	: > "$SRC/.luo-assembled"
fi

# Install $1 (a file) as $SRC/$2 if the content differs.
install_file() {
	if ! cmp -s "$1" "$SRC/$2"; then
		mkdir -p "$(dirname "$SRC/$2")"
		rm -f "$SRC/$2"
		cp "$1" "$SRC/$2"
		log "updated $2"
	fi
}

manifest_new=$(mktemp)
stage=$(mktemp -d)
trap 'rm -rf "$manifest_new" "$manifest_new".* "$stage"' EXIT

# 1. Our files.
cd "$REPO"
for d in $TREE_DIRS; do
	[ -d "$d" ] && find "$d" -type f ! -name '*.orig' ! -name '*.rej' ! -name '*~'
done | sort > "$manifest_new.ours"
while read -r f; do
	install_file "$REPO/$f" "$f"
done < "$manifest_new.ours"

# 2. Patched base files: apply the series to pristine copies in $stage.
: > "$manifest_new.patched"
if [ -f patches/series ]; then
	grep -v '^#' patches/series | grep . | while read -r p; do
		sed -n 's|^+++ b/\([^	]*\).*|\1|p' "patches/$p"
	done | sort -u > "$manifest_new.patched"
	while read -r f; do
		if grep -qx "$f" "$manifest_new.ours"; then
			log "$f is both our file and patched"; exit 1
		fi
		if [ -f "$BASE/$f" ]; then
			mkdir -p "$(dirname "$stage/$f")"
			cp "$BASE/$f" "$stage/$f"
		fi
	done < "$manifest_new.patched"
	grep -v '^#' patches/series | grep . | while read -r p; do
		patch -s -p1 -F0 -N --no-backup-if-mismatch -d "$stage" \
			< "patches/$p" || { log "patches/$p does not apply"; exit 1; }
	done
	while read -r f; do
		if [ -f "$stage/$f" ]; then
			install_file "$stage/$f" "$f"
		fi
	done < "$manifest_new.patched"
fi

# 3. Files we installed last time and no longer provide.
sort -u "$manifest_new.ours" "$manifest_new.patched" > "$manifest_new"
rm -f "$manifest_new.ours" "$manifest_new.patched"
old=$SRC/.luo-manifest
if [ -f "$old" ]; then
	comm -23 "$old" "$manifest_new" | while read -r f; do
		if [ -f "$BASE/$f" ]; then
			install_file "$BASE/$f" "$f"
		else
			rm -f "$SRC/$f"
			log "removed $f"
		fi
	done
fi
cp "$manifest_new" "$old"
