#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# static-checks.sh SRC BUILD RESULTS: make test's static part.  Runs
# make lint's checks and make series (patches, checkpatch, a build after
# every patch), shows their output, and writes one "PASS|FAIL|SKIP what"
# line per check to RESULTS for the suite runner to count with the tests,
# and a "TIME name seconds" line per step for its time line.
set -u
SRC=$1
BUILD=$2
RESULTS=$3
H=$(cd "$(dirname "$0")" && pwd)
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
: > "$RESULTS"

# check NAME CMD...: run CMD, turn its "NAME: what: verdict" lines into
# results; a failure that printed no verdict is a result of its own.
check() {
	name=$1
	shift
	t0=$(date +%s)
	"$@" > "$LOG" 2>&1
	rc=$?
	echo "TIME $name $(($(date +%s) - t0))" >> "$RESULTS"
	cat "$LOG"
	sed -n -E "
		s/^$name: (.*): (clean|ok.*)\$/PASS $name: \\1/p
		s/^$name: (.*): skipped: (.*)\$/SKIP $name: \\1: \\2/p
		s/^$name: (.*): ([0-9]+ finding.*|FAILED.*|does not apply.*)\$/FAIL $name: \\1: \\2/p
	" "$LOG" > "$LOG.r"
	if [ "$rc" -ne 0 ] && ! grep -q '^FAIL' "$LOG.r"; then
		echo "FAIL $name: exit status $rc: $(tail -n 1 "$LOG")" >> "$LOG.r"
	fi
	cat "$LOG.r" >> "$RESULTS"
	rm -f "$LOG.r"
}

check lint "$H/lint.sh" "$SRC" "$BUILD"
check series "$H/series.py"
