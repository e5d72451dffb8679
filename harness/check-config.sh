#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# check-config.sh CONFIG FRAGMENT...: every option a fragment asks for must be
# in the final config (Kconfig silently drops options whose dependencies are
# not met; a test kernel missing one would fail obscurely later).
set -eu
config=$1
shift
bad=0
for frag in "$@"; do
	sed -n -e 's/^\(CONFIG_[A-Za-z0-9_]*=.*\)/\1/p' \
	       -e 's/^# \(CONFIG_[A-Za-z0-9_]*\) is not set/\1 unset/p' "$frag" |
	while read -r want rest; do
		if [ "$rest" = unset ]; then
			! grep -q "^$want=" "$config" && continue
		else
			grep -qx "$want" "$config" && continue
		fi
		echo "check-config: $frag: $want ${rest:-} not in the final config" >&2
		exit 1
	done || bad=1
done
exit $bad
