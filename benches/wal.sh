#!/usr/bin/env bash
# WAL archiving throughput on this machine:
#   1. the WAL rate of pgbench (-c $CLIENTS for $SECS s) on a throwaway
#      cluster, whose segments are collected with `cp` as archive_command;
#   2. `vault wal push --key-file` over those real segments, one process per
#      segment as PostgreSQL runs it: segments per second;
#   3. the same with --ahead 2 from a pg_wal whose segments are all ready;
#   4. the same push opened by password (argon2id at the default 64 MiB,
#      3 passes) for the first $PW_SEGMENTS segments, for comparison.
# Medians of RUNS runs of 2 to 4; one pgbench run (its -i bulk load and a
# -c $CLIENTS run with synchronous_commit=off, the busiest WAL writers here).
#
#   benches/wal.sh
#   VAULT_BIN=target/debug/vault RUNS=3 SECS=30 benches/wal.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/benches/setup.sh"
BENCH_DIR=${BENCH_DIR:-/var/tmp/vault-bench}
RUNS=${RUNS:-3}
SECS=${SECS:-30}
CLIENTS=${CLIENTS:-4}
SCALE=${SCALE:-10}
PW_SEGMENTS=${PW_SEGMENTS:-5}
WORK=$BENCH_DIR/wal-work
RESULTS=$BENCH_DIR/wal-results.tsv
export VAULT_PASSWORD=bench

vault_binary

rm -rf "$WORK"; mkdir -p "$WORK/segments"; chown -R postgres "$WORK"
CLUSTER=$WORK/pg
"${AS_PG[@]}" mkdir "$CLUSTER"
"${AS_PG[@]}" "$BIN/initdb" -D "$CLUSTER/data" -A trust -U postgres >/dev/null
"${AS_PG[@]}" "$BIN/pg_ctl" -D "$CLUSTER/data" -l "$CLUSTER/log" -w \
    -o "-k $CLUSTER -c listen_addresses= -c archive_mode=on -c archive_command='cp %p $WORK/segments/%f'" start >/dev/null
trap '"${AS_PG[@]}" "$BIN/pg_ctl" -D "$CLUSTER/data" -m immediate -w stop >/dev/null || true' EXIT
export PGHOST=$CLUSTER PGUSER=postgres
lsn() { "${AS_PG[@]}" "$BIN/psql" -h "$CLUSTER" -XAtc "SELECT pg_current_wal_lsn()" postgres; }
since() { "${AS_PG[@]}" "$BIN/psql" -h "$CLUSTER" -XAtc "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$1')" postgres; }
start_lsn=$(lsn); t0=$(date +%s.%N)
"${AS_PG[@]}" "$BIN/pgbench" -h "$CLUSTER" -i -s "$SCALE" -q postgres 2>/dev/null
init_secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }')
init_bytes=$(since "$start_lsn")
start_lsn=$(lsn)
"${AS_PG[@]}" env PGOPTIONS="-c synchronous_commit=off" "$BIN/pgbench" -h "$CLUSTER" -c "$CLIENTS" -T "$SECS" -n postgres >/dev/null 2>&1
wal_bytes=$(since "$start_lsn")
"${AS_PG[@]}" "$BIN/psql" -h "$CLUSTER" -XAtc "SELECT pg_switch_wal()" postgres >/dev/null
sleep 3
mapfile -t SEGS < <(ls "$WORK/segments" | grep -E '^[0-9A-F]{24}$' | sort)
echo "pgbench: $wal_bytes bytes of WAL in $SECS s; ${#SEGS[@]} segments collected" >&2

: > "$RESULTS"
printf 'pgbench_wal_segments_per_s\t-\t%s\n' "$(awk -v b="$wal_bytes" -v s="$SECS" 'BEGIN { printf "%.2f", b / 16777216 / s }')" >> "$RESULTS"
printf 'pgbench_init_wal_segments_per_s\t-\t%s\n' "$(awk -v b="$init_bytes" -v s="$init_secs" 'BEGIN { printf "%.2f", b / 16777216 / s }')" >> "$RESULTS"
# A pg_wal as PostgreSQL leaves it for the archiver: every segment ready.
mkdir -p "$WORK/pg_wal/archive_status"
for s in "${SEGS[@]}"; do cp "$WORK/segments/$s" "$WORK/pg_wal/"; : > "$WORK/pg_wal/archive_status/$s.ready"; done

push_all() { # REPO ARGS...: push every segment, one process each
    local repo=$1; shift
    for s in "${SEGS[@]}"; do "$VAULT_BIN" -q -r "$repo" wal push "$WORK/segments/$s" "$@"; done
}
push_some() {
    local repo=$1; shift
    for s in "${SEGS[@]:0:$PW_SEGMENTS}"; do "$VAULT_BIN" -q -r "$repo" wal push "$WORK/segments/$s" "$@"; done
}
push_ahead() { # as PostgreSQL calls it: in order, from pg_wal
    local repo=$1; shift
    for s in "${SEGS[@]}"; do "$VAULT_BIN" -q -r "$repo" wal push "$WORK/pg_wal/$s" "$@"; done
}
seconds() { local t0 t1; t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'; }

for run in $(seq "$RUNS"); do
    repo=$WORK/repo-$run
    rm -rf "$repo" "$WORK/key-$run"
    "$VAULT_BIN" -q -r "$repo" --no-cache init
    "$VAULT_BIN" -q -r "$repo" --no-cache wal key-file "$WORK/key-$run"
    sync
    t=$(seconds push_all "$repo" --key-file "$WORK/key-$run")
    printf 'key_file_segments_per_s\t%s\t%s\n' "$run" "$(awk -v n="${#SEGS[@]}" -v t="$t" 'BEGIN { printf "%.2f", n / t }')" >> "$RESULTS"
    printf 'stored_bytes_per_segment\t%s\t%s\n' "$run" "$(du -sb "$repo/wal" | awk -v n="${#SEGS[@]}" '{ printf "%d", $1 / n }')" >> "$RESULTS"
    rm -rf "$repo/wal" "$WORK/spool"
    t=$(seconds push_ahead "$repo" --key-file "$WORK/key-$run" --ahead 2 --spool "$WORK/spool")
    printf 'ahead2_segments_per_s\t%s\t%s\n' "$run" "$(awk -v n="${#SEGS[@]}" -v t="$t" 'BEGIN { printf "%.2f", n / t }')" >> "$RESULTS"
    rm -rf "$repo/wal"
    t=$(seconds push_some "$repo" --no-cache)
    printf 'password_segments_per_s\t%s\t%s\n' "$run" "$(awk -v n="$PW_SEGMENTS" -v t="$t" 'BEGIN { printf "%.2f", n / t }')" >> "$RESULTS"
done

echo "median of $RUNS runs (the machine may be loaded by other work):"
for name in key_file_segments_per_s ahead2_segments_per_s password_segments_per_s stored_bytes_per_segment pgbench_wal_segments_per_s pgbench_init_wal_segments_per_s; do
    grep "^$name	" "$RESULTS" | cut -f3 | sort -g | awk -v n="$name" '{ v[NR] = $1 } END { printf "%-28s %s\n", n, v[int((NR + 1) / 2)] }'
done
