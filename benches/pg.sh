#!/usr/bin/env bash
# PostgreSQL side by side, in one run, on this machine: a pgbench -s $SCALE
# database (made once in a throwaway cluster cached in $BENCH_DIR) dumped by
#   vault snapshot pg --jobs 2
#   pg_dump -Fc | restic backup --stdin
#   pg_dump -Fd -j 2 -f DIR          (plain parallel dump to local disk)
# Medians of RUNS runs. Then the hourly case: $TXNS pgbench transactions,
# and a second snapshot by vault and by restic: bytes each repository grew.
#
#   benches/pg.sh
#   RUNS=1 SCALE=10 benches/pg.sh
#   VAULT_INIT_ARGS="--chunk-min 4096 --chunk-avg 16384 --chunk-max 65536" benches/pg.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/benches/setup.sh"
BENCH_DIR=${BENCH_DIR:-/var/tmp/vault-bench}
RUNS=${RUNS:-3}
SCALE=${SCALE:-40}
TXNS=${TXNS:-5000}
JOBS=${JOBS:-2}
WORK=$BENCH_DIR/pg-work
CLUSTER=$BENCH_DIR/pg-s$SCALE
RESULTS=$BENCH_DIR/pg-results.tsv
export VAULT_PASSWORD=bench RESTIC_PASSWORD=bench

vault_binary
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
AS_PG=(runuser -u postgres --)
mkdir -p "$BENCH_DIR"

# The cluster lives in $CLUSTER; the socket folder is the cluster folder.
start_cluster() {
    if [ ! -d "$CLUSTER/data" ]; then
        rm -rf "$CLUSTER.tmp"; mkdir -p "$CLUSTER.tmp"; chown postgres "$CLUSTER.tmp"
        "${AS_PG[@]}" "$BIN/initdb" -D "$CLUSTER.tmp/data" -A trust -U postgres >/dev/null
        mv "$CLUSTER.tmp" "$CLUSTER"
        "${AS_PG[@]}" "$BIN/pg_ctl" -D "$CLUSTER/data" -o "-k $CLUSTER -c listen_addresses=" -l "$CLUSTER/log" -w start >/dev/null
        "${AS_PG[@]}" "$BIN/createdb" -h "$CLUSTER" bench
        "${AS_PG[@]}" "$BIN/pgbench" -h "$CLUSTER" -i -s "$SCALE" -q bench 2>/dev/null
    else
        "${AS_PG[@]}" "$BIN/pg_ctl" -D "$CLUSTER/data" -o "-k $CLUSTER -c listen_addresses=" -l "$CLUSTER/log" -w start >/dev/null
    fi
}
stop_cluster() { "${AS_PG[@]}" "$BIN/pg_ctl" -D "$CLUSTER/data" -m fast -w stop >/dev/null || true; }
trap stop_cluster EXIT
start_cluster
export PGHOST=$CLUSTER PGUSER=postgres PGDATABASE=bench

measure() {
    local name=$1 run=$2; shift 2
    local t0 t1
    sync
    echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    t0=$(date +%s.%N)
    /usr/bin/time -f %M -o "$WORK/rss" bash -c '"$@"' _ "$@"
    t1=$(date +%s.%N)
    printf '%s\t%s\t%s\t%s\n' "$name" "$run" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "$(tail -1 "$WORK/rss")" >> "$RESULTS"
}

vault_snapshot() { "$VAULT_BIN" -r "$WORK/vault" --cache-dir "$WORK/cache-vault" -q snapshot pg --jobs "$JOBS"; }
restic_snapshot() {
    "$BIN/pg_dump" -Fc bench | restic -q -r "$WORK/restic" --cache-dir "$WORK/cache-restic" backup --stdin --stdin-filename bench.dump
}
dir_dump() { rm -rf "$WORK/dir"; "$BIN/pg_dump" -Fd -j "$JOBS" -f "$WORK/dir" bench; }
export -f vault_snapshot restic_snapshot dir_dump
export VAULT_BIN WORK BIN JOBS

echo "pgbench -s $SCALE: $("$BIN/psql" -XAtc "SELECT pg_size_pretty(pg_database_size('bench'))"), runs: $RUNS" >&2
: > "$RESULTS"
for run in $(seq 1 "$RUNS"); do
    rm -rf "$WORK"; mkdir -p "$WORK"
    # shellcheck disable=SC2086 # options, split on purpose
    "$VAULT_BIN" -r "$WORK/vault" --cache-dir "$WORK/cache-vault" -q init ${VAULT_INIT_ARGS:-}
    restic -q init -r "$WORK/restic" >/dev/null
    measure vault "$run" vault_snapshot
    measure restic "$run" restic_snapshot
    measure pg_dump_dir "$run" dir_dump
done
vault_first=$(du -sb "$WORK/vault" | cut -f1)
restic_first=$(du -sb "$WORK/restic" | cut -f1)
"$BIN/pgbench" -n -t "$TXNS" -c 2 bench >/dev/null 2>&1
vault_snapshot
restic_snapshot
vault_added=$(( $(du -sb "$WORK/vault" | cut -f1) - vault_first ))
restic_added=$(( $(du -sb "$WORK/restic" | cut -f1) - restic_first ))
printf 'first_repo_bytes\t-\t%s\t%s\n' "$vault_first" "$restic_first" >> "$RESULTS"
printf 'hourly_added_bytes\t-\t%s\t%s\n' "$vault_added" "$restic_added" >> "$RESULTS"

python3 - "$RESULTS" <<'PY'
import statistics, sys, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
secs, rss = collections.defaultdict(list), collections.defaultdict(list)
for name, run, a, b in rows:
    if run != "-":
        secs[name].append(float(a)); rss[name].append(int(b))
v = statistics.median(secs["vault"])
print("| dump | median time | peak RSS | time / vault's |")
print("|---|---|---|---|")
for name, label in [("vault", "vault snapshot pg --jobs 2"), ("restic", "pg_dump -Fc \\| restic backup --stdin"), ("pg_dump_dir", "pg_dump -Fd -j 2 -f DIR")]:
    m = statistics.median(secs[name])
    print(f"| {label} | {m:.2f} s | {statistics.median(rss[name]) / 1024:.0f} MiB | {m / v:.2f}x |")
for name, run, a, b in rows:
    if run == "-":
        print(f"| {name} | vault {int(a):,} B | restic {int(b):,} B | restic/vault {int(b) / max(int(a), 1):.1f}x |")
PY
