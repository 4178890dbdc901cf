#!/usr/bin/env bash
# Physical base backups and point-in-time restore, end to end, on a
# throwaway cluster of pgbench scale $SCALE archiving through
# `vault wal push --key-file`:
#   1. `pg_basebackup -Ft -D - -X none > /dev/null` (the floor: reading the
#      cluster over the replication protocol and nothing else);
#   2. `vault snapshot pg --physical`, first (everything new) and again after
#      $WRITE seconds of pgbench (unchanged relation segments dedup);
#   3. repository growth over one stretch of steady traffic ($HOUR seconds of
#      pgbench at $RATE transactions per second, standing in for an hour):
#      the WAL archive's growth, against what a logical `vault snapshot pg`
#      and a physical one taken at each end of the stretch add;
#   4. restore to a time T taken between two pgbench runs: `vault restore pg
#      --physical --to-time T`, start the server, wait until it promotes.
#
#   VAULT_BIN=target/debug/vault SCALE=20 WRITE=20 HOUR=60 RATE=50 benches/pitr.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/benches/setup.sh"
BENCH_DIR=${BENCH_DIR:-/var/tmp/vault-bench}
SCALE=${SCALE:-20}
WRITE=${WRITE:-20}
HOUR=${HOUR:-60}
RATE=${RATE:-50}
WORK=$BENCH_DIR/pitr
export VAULT_PASSWORD=bench

vault_binary
V=("$VAULT_BIN" -q -r "$WORK/repo" --no-cache)

rm -rf "$WORK"; mkdir -p "$WORK"
"${V[@]}" init
"${V[@]}" wal key-file "$WORK/key"
chown -R postgres "$WORK"
CLUSTER=$WORK/pg
RESTORED=$WORK/restored
"${AS_PG[@]}" mkdir "$CLUSTER"
"${AS_PG[@]}" "$BIN/initdb" -D "$CLUSTER/data" -A trust -U postgres >/dev/null
"${AS_PG[@]}" "$BIN/pg_ctl" -D "$CLUSTER/data" -l "$CLUSTER/log" -w \
    -o "-k $CLUSTER -c listen_addresses= -c archive_mode=on -c archive_timeout=5 -c archive_command='$VAULT_BIN -q -r $WORK/repo wal push --key-file $WORK/key %p'" start >/dev/null
stop_all() {
    "${AS_PG[@]}" "$BIN/pg_ctl" -D "$CLUSTER/data" -m immediate -w stop >/dev/null 2>&1 || true
    "${AS_PG[@]}" "$BIN/pg_ctl" -D "$RESTORED" -m immediate -w stop >/dev/null 2>&1 || true
}
trap stop_all EXIT
export PGHOST=$CLUSTER PGUSER=postgres
sql() { "$BIN/psql" -XAtqc "$1" "${2:-postgres}"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

"$BIN/pgbench" -q -i -s "$SCALE" postgres >/dev/null 2>&1
size=$(sql "SELECT pg_size_pretty(pg_database_size('postgres'))")
echo "cluster: pgbench scale $SCALE, database $size"

t0=$(date +%s.%N)
"$BIN/pg_basebackup" -Ft -D - -X none -c fast 2>/dev/null >/dev/null
echo "pg_basebackup -Ft -D - > /dev/null: $(elapsed "$t0")s"

t0=$(date +%s.%N)
"$VAULT_BIN" -r "$WORK/repo" --no-cache snapshot pg --physical
echo "vault snapshot pg --physical (first): $(elapsed "$t0")s"

"$BIN/pgbench" -T "$WRITE" -c 2 postgres >/dev/null 2>&1
t0=$(date +%s.%N)
"$VAULT_BIN" -r "$WORK/repo" --no-cache snapshot pg --physical
echo "vault snapshot pg --physical (after ${WRITE}s of pgbench): $(elapsed "$t0")s"

# Growth over one stretch: every byte of the repository is counted, so
# compression and encryption count the same for all three.
repo_bytes() { du -sb "$WORK/repo/$1" | cut -f1; }
# Everything but the archive: packs, index, snapshot objects.
snap_bytes() { echo $(( $(repo_bytes .) - $(repo_bytes wal) )); }
"$VAULT_BIN" -q -r "$WORK/repo" --no-cache snapshot pg -d postgres
wal0=$(repo_bytes wal); data0=$(snap_bytes)
"$BIN/pgbench" -T "$HOUR" -R "$RATE" -c 2 postgres >/dev/null 2>&1
seg=$(sql "SELECT pg_walfile_name(pg_switch_wal())")
while [ "$(sql "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")" \< "$seg" ]; do sleep 0.2; done
wal1=$(repo_bytes wal)
"$VAULT_BIN" -q -r "$WORK/repo" --no-cache snapshot pg -d postgres
data1=$(snap_bytes)
"$VAULT_BIN" -q -r "$WORK/repo" --no-cache snapshot pg --physical
data2=$(snap_bytes)
echo "growth over ${HOUR}s of pgbench at ${RATE} tps: WAL archive $((wal1 - wal0)) B, logical snapshot pg $((data1 - data0)) B, physical snapshot $((data2 - data1)) B"

"$BIN/pgbench" -T "$WRITE" -c 2 postgres >/dev/null 2>&1
sql "CREATE TABLE marker AS SELECT 1 AS x"
sleep 1
target=$(sql "SELECT clock_timestamp()::text")
sleep 1
"$BIN/pgbench" -T "$WRITE" -c 2 postgres >/dev/null 2>&1
sql "CREATE TABLE too_late AS SELECT 1 AS x"
seg=$(sql "SELECT pg_walfile_name(pg_switch_wal())")
while [ "$(sql "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")" \< "$seg" ]; do sleep 0.2; done
"${AS_PG[@]}" "$BIN/pg_ctl" -D "$CLUSTER/data" -m immediate -w stop >/dev/null
wal=$(ls "$WORK/repo/wal" | wc -l)

t0=$(date +%s.%N)
"${V[@]}" restore pg --physical latest --target "$RESTORED" --wal-key-file "$WORK/key" --to-time "$target"
restored_at=$(elapsed "$t0")
chown -R postgres "$RESTORED"
"${AS_PG[@]}" "$BIN/pg_ctl" -D "$RESTORED" -l "$WORK/restored.log" -t 3600 -w \
    -o "-k $WORK -c listen_addresses=" start >/dev/null
export PGHOST=$WORK
until [ "$(sql "SELECT pg_is_in_recovery()")" = f ]; do sleep 0.1; done
total=$(elapsed "$t0")
[ "$(sql "SELECT count(*) FROM pg_class WHERE relname = 'marker'")" = 1 ]
[ "$(sql "SELECT count(*) FROM pg_class WHERE relname = 'too_late'")" = 0 ]
echo "restore to a time ($wal WAL files archived): data directory written in ${restored_at}s, promoted after ${total}s"
