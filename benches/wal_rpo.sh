#!/usr/bin/env bash
# The recovery point a WAL archive gives: a throwaway cluster archives
# through `vault wal push --key-file` with archive_timeout=$TIMEOUT; $SAMPLES
# times, a commit is made and the time until the segment holding it is in
# the repository is measured. That time is what a crash right after the
# commit would lose. Median and maximum.
#
#   VAULT_BIN=target/debug/vault TIMEOUT=5 benches/wal_rpo.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/benches/setup.sh"
BENCH_DIR=${BENCH_DIR:-/var/tmp/vault-bench}
TIMEOUT=${TIMEOUT:-5}
SAMPLES=${SAMPLES:-7}
WORK=$BENCH_DIR/wal-rpo
export VAULT_PASSWORD=bench

vault_binary

rm -rf "$WORK"; mkdir -p "$WORK"
"$VAULT_BIN" -q -r "$WORK/repo" --no-cache init
"$VAULT_BIN" -q -r "$WORK/repo" --no-cache wal key-file "$WORK/key"
chown -R postgres "$WORK"
CLUSTER=$WORK/pg
"${AS_PG[@]}" mkdir "$CLUSTER"
"${AS_PG[@]}" "$BIN/initdb" -D "$CLUSTER/data" -A trust -U postgres >/dev/null
"${AS_PG[@]}" "$BIN/pg_ctl" -D "$CLUSTER/data" -l "$CLUSTER/log" -w \
    -o "-k $CLUSTER -c listen_addresses= -c archive_mode=on -c archive_timeout=$TIMEOUT -c archive_command='$VAULT_BIN -q -r $WORK/repo wal push --key-file $WORK/key %p'" start >/dev/null
trap '"${AS_PG[@]}" "$BIN/pg_ctl" -D "$CLUSTER/data" -m immediate -w stop >/dev/null || true' EXIT
sql() { "${AS_PG[@]}" "$BIN/psql" -h "$CLUSTER" -XAtqc "$1" postgres; }
sql "CREATE TABLE t (at timestamptz)"
# A fresh cluster switches on archive_timeout only after its first switch.
sql "SELECT pg_switch_wal()" >/dev/null
sleep $((TIMEOUT + 2))

samples=()
for _ in $(seq "$SAMPLES"); do
    seg=$(sql "INSERT INTO t VALUES (now()); SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
    t0=$(date +%s.%N)
    while [ ! -e "$WORK/repo/wal/$seg" ]; do sleep 0.05; done
    samples+=("$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')")
    sleep 1
done
printf '%s\n' "${samples[@]}" | sort -g | awk -v t="$TIMEOUT" '{ v[NR] = $1 } END {
    printf "archive_timeout=%ss: commit to archived, median %ss, max %ss over %d commits\n", t, v[int((NR + 1) / 2)], v[NR], NR }'
