#!/bin/bash
# How long a backup waits when it starts while prune runs on a repository of
# 12 x 16 MB streams, 6 of them forgotten: prune --exclusive (the old
# behaviour) against two-phase prune (marking run, then deleting run).
set -e
B=${B:-target/release/vault}
W=$(mktemp -d); cd $W
export VAULT_PASSWORD=pw VAULT_LOCK_WAIT=600
$B -r repo init --pack-size-mib 4 --chunk-min 4096 --chunk-avg 16384 --chunk-max 65536 >/dev/null
for i in $(seq 1 12); do head -c 16000000 /dev/urandom > f$i; $B -q -r repo snapshot --host h$i f$i; done
head -c 1000000 /dev/urandom > small
churn() {
  for i in $(seq 1 6); do head -c 16000000 /dev/urandom > f$i; $B -q -r repo snapshot --host h$i f$i; done
  $B -q -r repo forget --keep-last 1 >/dev/null
}
timed_backup() {
  local s=$(date +%s.%N); $B -q -r repo snapshot --host b small; local e=$(date +%s.%N)
  echo "$e - $s" | bc
}
beside() {
  $B -r repo prune $1 --max-unused 0% > prune.out &
  local P=$!; sleep 0.5
  local t=$(timed_backup)
  wait $P
  echo "prune $1 [$(tr '\n' ' ' < prune.out)]: backup took $t s"
}
echo "no prune: backup took $(timed_backup) s"
churn; beside "--exclusive"
churn; beside "--grace 0"
beside "--grace 0"
echo "no prune: backup took $(timed_backup) s"
rm -rf $W
