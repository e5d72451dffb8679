#!/bin/sh
# upstream-kexec.sh TEST: one upstream kexec kselftest, run as a black box
# across one kexec: its stage 1 in the first kernel (it leaves a child
# holding the sessions), its stage 2 in the next.
t=./upstream/$1
case "$LUO_STAGE" in
0)
	"$t" --stage 1 || exit
	exec luo-next-stage
	;;
*)
	exec "$t" --stage 2
	;;
esac
