#!/bin/sh
# Reloads one certctl lab's HAProxy and waits for the outcome: exit 0 once the new worker
# serves and the old ones are gone, exit 1 (log tail on stderr) when HAProxy refuses the
# new configuration or nothing happens within a minute (3000 polls, 20 ms apart at least).
# A SIGUSR2 that reaches the master while it is still re-executing itself for the previous
# reload is lost (it blocks the signal then), so wait until it catches SIGUSR2 again.
set -u
master=@MASTER@
log='@LOG@'
exec 9>'@LOCK@'
flock -w 60 9 || { echo "reload: lock busy" >&2; exit 1; }

mask() { sed -n "s/^$1:[[:space:]]*//p" "/proc/$master/status" 2>/dev/null; }
catches_usr2() {
    blocked=$(mask SigBlk) caught=$(mask SigCgt)
    [ -n "$blocked" ] && [ -n "$caught" ] || return 1
    # SIGUSR2 is signal 12: bit 0x800. Only the low 32 bits, to stay within sh arithmetic.
    [ $(( 0x${caught#????????} & 0x800 )) -ne 0 ] && [ $(( 0x${blocked#????????} & 0x800 )) -eq 0 ]
}
workers() {
    for stat in /proc/[0-9]*/stat; do
        { read -r line < "$stat"; } 2>/dev/null || continue
        set -- ${line##*) }
        [ "$2" = "$master" ] && [ "$1" != Z ] && echo "${stat#/proc/}" | cut -d/ -f1
    done
}
outcomes() { grep -c -e 'Loading success\.' -e 'Loading failure!' "$log"; }
fail() { echo "reload: $1" >&2; tail -n 20 "$log" >&2; exit 1; }

tries=0
until catches_usr2; do
    kill -0 "$master" 2>/dev/null || fail "haproxy master $master is gone"
    tries=$((tries + 1)); [ $tries -lt 3000 ] || fail "master $master never ready for SIGUSR2"
    sleep 0.02
done
old_workers=$(workers)
before=$(outcomes)
kill -USR2 "$master" || fail "cannot signal master $master"
tries=0
while [ "$(outcomes)" -le "$before" ]; do
    tries=$((tries + 1)); [ $tries -lt 3000 ] || fail "no reload outcome after a minute"
    sleep 0.02
done
grep -e 'Loading success\.' -e 'Loading failure!' "$log" | tail -n 1 | grep -q 'Loading success\.' \
    || fail "haproxy refused the new configuration"
# Old workers stop accepting at once and exit when their connections end (hard-stop-after).
tries=0
for pid in $old_workers; do
    while [ -e "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; do
        tries=$((tries + 1)); [ $tries -lt 3000 ] || fail "old worker $pid still running"
        sleep 0.02
    done
done
exit 0
