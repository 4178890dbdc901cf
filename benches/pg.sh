#!/usr/bin/env bash
# PostgreSQL dumps side by side, paired in one run, on this machine. A
# throwaway cluster (made once, cached in $BENCH_DIR) holds a `shop`
# database whose largest table, `events` ($EVENTS rows, default 2 million:
# text, JSON, numbers, timestamps), is most of its size, beside two smaller
# tables (customers, orders). Each run times, in alternating order:
#   vault         vault snapshot pg --jobs $JOBS            (large tables split)
#   vault_whole   the same with --split-size 0              (one stream per table)
#   pg_dump_dir   pg_dump -Fd -j $JOBS -Z0 -f DIR           (local disk)
#   pg_dump_plain pg_dump -Fp > /dev/null                   (the server's floor)
# each vault run into a fresh repository. Medians of RUNS runs and the ratio of
# each to pg_dump -Fd -j; raw rows (name, run, seconds, peak KiB, user+sys CPU
# seconds of the client side) in $RESULTS. Then the hourly case: 1% of the
# events updated, 0.2% inserted, and a second split snapshot into the last run's
# repositories (split and whole): the bytes each grew by.
#
#   benches/pg.sh
#   RUNS=5 EVENTS=1000000 VAULT_BIN=target/release/vault benches/pg.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/benches/setup.sh"
BENCH_DIR=${BENCH_DIR:-/var/tmp/vault-bench}
RUNS=${RUNS:-5}
EVENTS=${EVENTS:-2000000}
JOBS=${JOBS:-2}
WORK=$BENCH_DIR/pg-work
CLUSTER=$BENCH_DIR/pg-shop-$EVENTS
RESULTS=${RESULTS:-$BENCH_DIR/pg-results.tsv}
export VAULT_PASSWORD=bench

vault_binary
mkdir -p "$BENCH_DIR"

make_cluster() {
    [ -d "$CLUSTER/data" ] && return
    rm -rf "$CLUSTER.tmp"; mkdir -p "$CLUSTER.tmp"; chown postgres "$CLUSTER.tmp"
    "${AS_PG[@]}" "$BIN/initdb" -D "$CLUSTER.tmp/data" -A trust -U postgres >/dev/null
    mv "$CLUSTER.tmp" "$CLUSTER"
    pg_start
    sql -d postgres -c "CREATE DATABASE shop"
    shop_sql $((EVENTS / 20)) $((EVENTS / 10)) "$EVENTS" | sql -d shop
}

trap pg_stop EXIT
make_cluster
pg_stop
pg_start
[ "${SETUP_ONLY:-}" = 1 ] && exit 0
export PGHOST=$CLUSTER PGUSER=postgres PGDATABASE=shop

# measure NAME RUN COMMAND...: wall seconds, peak RSS and the client side's
# CPU seconds (user + system of the command and its children; the server's
# backends are not its children).
measure() {
    local name=$1 run=$2; shift 2
    local t0 t1
    sync
    echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    t0=$(date +%s.%N)
    /usr/bin/time -f '%M %U %S' -o "$WORK/time" bash -c '"$@"' _ "$@"
    t1=$(date +%s.%N)
    read -r rss user sys < <(tail -1 "$WORK/time")
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$run" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
        "$rss" "$(awk -v a="$user" -v b="$sys" 'BEGIN { printf "%.2f", a + b }')" >> "$RESULTS"
}

vault_in() { "$VAULT_BIN" -r "$WORK/$1" --cache-dir "$WORK/cache-$1" -q "${@:2}"; }
vault_split() { vault_in split snapshot pg --jobs "$JOBS"; }
vault_whole() { vault_in whole snapshot pg --jobs "$JOBS" --split-size 0; }
dir_dump() { rm -rf "$WORK/dir"; "$BIN/pg_dump" -Fd -j "$JOBS" -Z0 -f "$WORK/dir"; }
plain_dump() { "$BIN/pg_dump" -Fp > /dev/null; }
export -f vault_in vault_split vault_whole dir_dump plain_dump
export VAULT_BIN WORK BIN JOBS

echo "shop: $(sql -d shop -c "SELECT pg_size_pretty(pg_database_size('shop'))"), events $(sql -d shop -c "SELECT pg_size_pretty(pg_relation_size('events'))"), runs: $RUNS" >&2
: > "$RESULTS"
steps=(vault vault_whole pg_dump_dir pg_dump_plain)
for run in $(seq 1 "$RUNS"); do
    rm -rf "$WORK"; mkdir -p "$WORK"
    vault_in split init; vault_in whole init
    # Alternate the order, so neither side always runs first on a
    # machine whose load changes.
    order=("${steps[@]}")
    [ $((run % 2)) = 0 ] && order=(pg_dump_plain pg_dump_dir vault_whole vault)
    for step in "${order[@]}"; do
        case $step in
            vault) measure vault "$run" vault_split ;;
            vault_whole) measure vault_whole "$run" vault_whole ;;
            pg_dump_dir) measure pg_dump_dir "$run" dir_dump ;;
            pg_dump_plain) measure pg_dump_plain "$run" plain_dump ;;
        esac
    done
done
# The hourly case, into the last run's repositories.
split_first=$(du -sb "$WORK/split" | cut -f1)
whole_first=$(du -sb "$WORK/whole" | cut -f1)
sql -d shop <<SQL
UPDATE events SET payload = payload || jsonb_build_object('seen', 1) WHERE id % 100 = 7;
INSERT INTO events SELECT m + g, now(), 1 + g % 1000, 'buy', jsonb_build_object('page', '/checkout'), NULL
FROM (SELECT max(id) AS m FROM events) s, generate_series(1, $EVENTS / 500) g;
SQL
vault_split
vault_whole
printf 'hourly_added_bytes\t-\t%s\t%s\t-\n' "$(( $(du -sb "$WORK/split" | cut -f1) - split_first ))" \
    "$(( $(du -sb "$WORK/whole" | cut -f1) - whole_first ))" >> "$RESULTS"
printf 'first_repo_bytes\t-\t%s\t%s\t-\n' "$split_first" "$whole_first" >> "$RESULTS"
# Undo the hour, so the next run of this script starts from the same rows.
sql -d shop -c "DELETE FROM events WHERE id > $EVENTS" -c "UPDATE events SET payload = payload - 'seen' WHERE id % 100 = 7" -c "VACUUM events"

python3 - "$RESULTS" <<'PY'
import statistics, sys, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
secs, rss, cpu = collections.defaultdict(list), collections.defaultdict(list), collections.defaultdict(list)
pairs = collections.defaultdict(dict)
for name, run, a, b, c in rows:
    if run != "-":
        secs[name].append(float(a)); rss[name].append(int(b)); cpu[name].append(float(c))
        pairs[run][name] = float(a)
ref = statistics.median(secs["pg_dump_dir"])
print("| dump | median time | client CPU | peak RSS | median of paired time / pg_dump -Fd -j |")
print("|---|---|---|---|---|")
for name, label in [("vault", "vault snapshot pg --jobs 2"), ("vault_whole", "vault snapshot pg --jobs 2 --split-size 0"),
                    ("pg_dump_dir", "pg_dump -Fd -j 2 -Z0 -f DIR"), ("pg_dump_plain", "pg_dump -Fp > /dev/null")]:
    m = statistics.median(secs[name])
    ratio = statistics.median(p[name] / p["pg_dump_dir"] for p in pairs.values())
    print(f"| {label} | {m:.2f} s | {statistics.median(cpu[name]):.2f} s | {statistics.median(rss[name]) / 1024:.0f} MiB | {ratio:.2f}x |")
for name, run, a, b, c in rows:
    if run == "-":
        print(f"| {name} | split {int(a):,} B | whole {int(b):,} B | |")
PY
