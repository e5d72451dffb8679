#!/bin/sh
# The liveupdate tracepoints fire (kernels with tracing: the debug one).
echo "TAP version 13"
echo "1..3"
T=/sys/kernel/tracing
mount -t tracefs tracefs $T 2>/dev/null
if [ ! -d $T/events/liveupdate ]; then
	echo "not ok 1 liveupdate trace events exist"
	exit 1
fi
echo "ok 1 liveupdate trace events exist"
echo 1 > $T/events/liveupdate/enable
# Creates a session, preserves a test file into it, closes the session.
./liveupdate_uapi -t preserve_fd > /tmp/uapi.out 2>&1 || cat /tmp/uapi.out
echo 0 > $T/events/liveupdate/enable
rc=0
for ev in liveupdate_preserve liveupdate_unpreserve; do
	n=$((${n:-1} + 1))
	if grep -q "$ev: session=.* token=.* compatible=liveupdate-test" $T/trace; then
		echo "ok $n $ev fired"
	else
		echo "not ok $n $ev fired"
		rc=1
	fi
done
[ $rc = 0 ] || cat $T/trace
exit $rc
