#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# lint.sh SRC BUILD: the series' static checks, each counted, non-zero exit
# if any finds something.
#  - checkpatch --strict on every file of ours and on every patch;
#  - kernel-doc -Wall on every kernel file of ours;
#  - a W=1 build of our kernel objects in BUILD (the fast kernel's tree),
#    any warning in them counts;
#  - sparse (C=2) when the installed sparse can parse this kernel.
# The test programs are always built with -Wall -Wextra -Werror
# (build-tests.sh, tools/liveupdate/Makefile), so they need no pass here.
set -u
SRC=$1
BUILD=$2
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
fail=0
checks=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

report() {	# report NAME FILE: print FILE's findings, count them
	n=$(grep -c . "$2")
	checks=$((checks + 1))
	if [ "$n" -ne 0 ]; then
		sed "s|^|  |" "$2"
		echo "lint: $1: $n finding(s)"
		fail=$((fail + 1))
	else
		echo "lint: $1: clean"
	fi
}

OURS_KERNEL=$(git ls-files 'kernel/*.[ch]' 'mm/*.[ch]' 'drivers/*.[ch]' 'include/*.h')
OURS_TOOLS=$(git ls-files 'tools/*.[ch]')
CP="$SRC/scripts/checkpatch.pl --strict --no-tree --terse --show-types"

# Trace headers are written in the TRACE_EVENT() layout the whole tree
# uses, which --strict's alignment checks do not understand.
# Userspace (tools/) rules that only fit the kernel:
#  ENOSYS: the tools pass on a syscall's own ENOSYS (no kexec_file_load);
#  LONG_LINE_STRING: user-visible strings stay whole (coding-style), but
#	checkpatch only knows the kernel's log calls, not printf & co;
#  VOLATILE: no READ_ONCE here; C wants volatile sig_atomic_t flags.
# tools/liveupdate/tools.h defines __printf and __noreturn themselves.
UIGN=ENOSYS,LONG_LINE_STRING,VOLATILE
: > "$TMP/cp"
for f in $OURS_KERNEL $OURS_TOOLS; do
	case $f in
	include/trace/*) ign=--ignore=PARENTHESIS_ALIGNMENT,OPEN_ENDED_LINE ;;
	tools/liveupdate/tools.h)
		ign=--ignore=$UIGN,PREFER_DEFINED_ATTRIBUTE_MACRO ;;
	tools/*) ign=--ignore=$UIGN ;;
	*) ign= ;;
	esac
	$CP $ign -f "$f" | grep -v '^total: ' >> "$TMP/cp"
done
report "checkpatch --strict, $(echo $OURS_KERNEL $OURS_TOOLS | wc -w) files" "$TMP/cp"

# Our patches are plain diffs; checkpatch wants git's header to parse them.
# Labels such as Unlock are the base tree's own names.
: > "$TMP/cpp"
for p in $(grep -v '^#' patches/series | grep .); do
	sed -E 's|^--- a/(.*)$|diff --git a/\1 b/\1\n--- a/\1|' "patches/$p" \
		> "$TMP/$p"
	$CP --no-signoff --ignore=CAMELCASE "$TMP/$p" | grep -v '^total: ' |
		sed "s|$TMP/||" >> "$TMP/cpp"
done
report "checkpatch --strict, $(grep -v '^#' patches/series | grep -c .) patches" "$TMP/cpp"

: > "$TMP/kd"
for f in $OURS_KERNEL; do
	"$SRC/scripts/kernel-doc" -none -Wall "$f" >> "$TMP/kd" 2>&1
done
report "kernel-doc -Wall, $(echo $OURS_KERNEL | wc -w) files" "$TMP/kd"

# W=1: rebuild our objects with the extra warnings; only ours count.
OBJS=$(git ls-files 'kernel/liveupdate/*.c' 'mm/*.c' 'drivers/*.c' | sed 's/\.c$/.o/')
make -s -C "$SRC" O="$BUILD" CC="ccache gcc" -j"$(nproc)" W=1 $OBJS \
	> "$TMP/w1.log" 2>&1
grep -E 'warning:|error:' "$TMP/w1.log" > "$TMP/w1"
report "W=1 build, $(echo $OBJS | wc -w) objects" "$TMP/w1"

# Debian's sparse (0.6.4, the latest release) predates __typeof_unqual__,
# which this kernel's headers use under __CHECKER__; as plain typeof it
# keeps qualifiers, which changes nothing sparse checks (address spaces,
# endianness, locking contexts).
SPARSE_FLAGS=-D__typeof_unqual__=__typeof__
if [ "$("$SRC/scripts/checker-valid.sh" sparse -m64 $SPARSE_FLAGS 2>/dev/null)" = 1 ]; then
	make -s -C "$SRC" O="$BUILD" CC="ccache gcc" -j"$(nproc)" C=2 \
		CHECKFLAGS="$SPARSE_FLAGS" $OBJS > "$TMP/sp.log" 2>&1
	grep -E 'warning:|error:' "$TMP/sp.log" > "$TMP/sp"
	report "sparse, $(echo $OBJS | wc -w) objects" "$TMP/sp"
else
	echo "lint: sparse: skipped: $(sparse --version 2>/dev/null || echo none) cannot parse this kernel"
fi

echo "lint: $checks checks, $fail with findings"
[ "$fail" -eq 0 ]
