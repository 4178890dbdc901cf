#!/usr/bin/env bash
# Hourly snapshots of a database where about 1% of the rows change, spread
# over every large table: what each hour costs with deltas against the
# parent, against the zstd-compressed true change, and beside restic and borg.
#
# A throwaway PostgreSQL cluster (made once, cached in $BENCH_DIR) holds a
# `shop` database: events (text, JSON, numbers), customers and orders, about
# $ROWS events (default 400000; ~150 MB of table data). Each simulated hour
# updates ~1% of the rows of every table (spread by id), inserts 0.2% new
# events and deletes 0.1%, then:
#   - vault snapshot pg       into a repository with delta chains (format 3)
#   - vault snapshot pg       into one with one-link deltas (--format-version 2)
#   - vault snapshot pg       into one without deltas (--format-version 1)
#   - pg_dump > plain dump;   vault --stdin, restic --stdin, borg - on it
#   - the true change: lines that differ between this and the last plain
#     dump, compressed with zstd -3
# Bytes added are the growth of each repository on disk (du -sb). After
# $HOURS hours (default 24) it restores hour 0 and the last hour from the
# vault repositories and compares the times. Medians where repeated; the
# machine may be shared, so the times are indicative.
#
#   benches/deltas.sh
#   ROWS=100000 HOURS=6 benches/deltas.sh
#   TOOLS="vault" benches/deltas.sh        (skip restic and borg)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/benches/setup.sh"
BENCH_DIR=${BENCH_DIR:-/var/tmp/vault-bench}
ROWS=${ROWS:-400000}
HOURS=${HOURS:-24}
JOBS=${JOBS:-2}
TOOLS=${TOOLS:-"vault restic borg"}
CLUSTER=$BENCH_DIR/deltas-pg-$ROWS
WORK=$BENCH_DIR/deltas-work
RESULTS=${RESULTS:-$BENCH_DIR/deltas-results.tsv}
export VAULT_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

install_peers
vault_binary
mkdir -p "$BENCH_DIR"

# The database as of hour 0, made once and copied for each run, so every
# run starts from the same rows.
make_cluster() {
    [ -d "$CLUSTER/base" ] && return
    rm -rf "$CLUSTER"; mkdir -p "$CLUSTER"; chown postgres "$CLUSTER"
    "${AS_PG[@]}" "$BIN/initdb" -D "$CLUSTER/data" -A trust -U postgres >/dev/null
    pg_start
    sql -d postgres -c "CREATE DATABASE shop"
    shop_sql $((ROWS / 5)) $((ROWS / 2)) "$ROWS" | sql -d shop
    pg_stop
    cp -a "$CLUSTER/data" "$CLUSTER/base"
}

# One hour of traffic: ~1% of each table's rows updated, spread by id.
hour_of_traffic() {
    local h=$1
    sql -d shop <<SQL
UPDATE events SET payload = payload || jsonb_build_object('seen', $h, 'ms', (random() * 900)::int)
 WHERE id % 100 = $h % 100;
UPDATE customers SET balance = balance + $h, prefs = prefs || jsonb_build_object('last', $h)
 WHERE id % 100 = ($h * 7) % 100;
UPDATE orders SET status = 'shipped', total = total + 1 WHERE id % 100 = ($h * 13) % 100;
INSERT INTO events
SELECT m + g, now(), 1 + g % ($ROWS / 5), 'buy',
       jsonb_build_object('page', '/checkout', 'hour', $h, 'ref', md5(g::text)), NULL
FROM (SELECT max(id) AS m FROM events) s, generate_series(1, $ROWS / 500) g;
DELETE FROM events WHERE id % 1000 = ($h * 37) % 1000 AND id < $ROWS / 2;
VACUUM;
SQL
}

grow() { # du -sb of a folder
    du -sb "$1" | cut -f1
}

# timed NAME HOUR COMMAND...: wall seconds and peak RSS of one command.
timed() {
    local name=$1 hour=$2; shift 2
    local t0 t1
    t0=$(date +%s.%N)
    /usr/bin/time -f %M -o "$WORK/rss" "$@"
    t1=$(date +%s.%N)
    printf '%s\t%s\tseconds\t%s\n' "$name" "$hour" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" >> "$RESULTS"
    printf '%s\t%s\tpeak_kib\t%s\n' "$name" "$hour" "$(tail -1 "$WORK/rss")" >> "$RESULTS"
}

# bytes NAME HOUR FOLDER BEFORE: what a repository grew by.
bytes() {
    printf '%s\t%s\tbytes\t%s\n' "$1" "$2" "$(( $(grow "$3") - $4 ))" >> "$RESULTS"
}

vault_in() { "$VAULT_BIN" -r "$WORK/$1" --cache-dir "$WORK/cache-$1" -q "${@:2}"; }

snapshot_all() {
    local h=$1 before
    export PGHOST=$CLUSTER PGUSER=postgres
    for repo in deltas onelink plain; do
        before=$(grow "$WORK/$repo")
        timed "pg-$repo" "$h" "$VAULT_BIN" -r "$WORK/$repo" --cache-dir "$WORK/cache-$repo" -q \
            snapshot pg --jobs "$JOBS" -d shop
        bytes "pg-$repo" "$h" "$WORK/$repo" "$before"
    done
    "${AS_PG[@]}" "$BIN/pg_dump" -h "$CLUSTER" shop > "$WORK/dump.sql"
    before=$(grow "$WORK/stream")
    timed stream-vault "$h" "$VAULT_BIN" -r "$WORK/stream" --cache-dir "$WORK/cache-stream" -q \
        snapshot --stdin --name shop.sql < "$WORK/dump.sql"
    bytes stream-vault "$h" "$WORK/stream" "$before"
    if [[ " $TOOLS " == *" restic "* ]]; then
        before=$(grow "$WORK/restic")
        timed stream-restic "$h" restic -q -r "$WORK/restic" --cache-dir "$WORK/cache-restic" \
            backup --stdin --stdin-filename shop.sql < "$WORK/dump.sql"
        bytes stream-restic "$h" "$WORK/restic" "$before"
    fi
    if [[ " $TOOLS " == *" borg "* ]]; then
        before=$(grow "$WORK/borg")
        timed stream-borg "$h" borg create --compression zstd,3 "$WORK/borg::h$h" - < "$WORK/dump.sql"
        bytes stream-borg "$h" "$WORK/borg" "$before"
    fi
    if [ -f "$WORK/last.sql" ]; then
        # The true change: the lines of this dump that the last one lacks.
        printf 'true-change\t%s\tbytes\t%s\n' "$h" \
            "$(diff --speed-large-files "$WORK/last.sql" "$WORK/dump.sql" | grep '^>' | zstd -3 -q -c | wc -c)" >> "$RESULTS"
    fi
    printf 'dump\t%s\tbytes\t%s\n' "$h" "$(stat -c %s "$WORK/dump.sql")" >> "$RESULTS"
    mv "$WORK/dump.sql" "$WORK/last.sql"
}

restore_time() {
    local repo=$1 snap=$2 name=$3
    rm -rf "$WORK/restored"
    timed "$name" restore "$VAULT_BIN" -r "$WORK/$repo" --cache-dir "$WORK/cache-$repo" -q \
        restore "$snap" --target "$WORK/restored"
}

trap pg_stop EXIT
make_cluster
pg_stop
rm -rf "$WORK" "$CLUSTER/data"; mkdir -p "$WORK"
cp -a "$CLUSTER/base" "$CLUSTER/data"
pg_start
: > "$RESULTS"
vault_in deltas init
vault_in onelink init --format-version 2
vault_in plain init --format-version 1
vault_in stream init
[[ " $TOOLS " == *" restic "* ]] && restic -q init -r "$WORK/restic" >/dev/null
[[ " $TOOLS " == *" borg "* ]] && borg init -e repokey "$WORK/borg"

echo "shop: $(sql -d shop -c "SELECT pg_size_pretty(pg_database_size('shop'))"), $HOURS hours" >&2
for h in $(seq 0 "$HOURS"); do
    [ "$h" -gt 0 ] && hour_of_traffic "$h"
    snapshot_all "$h"
    echo "hour $h done" >&2
done

first=$(vault_in deltas snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
for repo in deltas onelink plain; do
    restore_time "$repo" latest "restore-last-$repo"
done
restore_time deltas "$first" restore-first-deltas

python3 - "$RESULTS" "$HOURS" <<'PY'
import collections, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
hours = int(sys.argv[2])
v = collections.defaultdict(dict)
for name, hour, what, value in rows:
    v[(name, what)][hour] = float(value)
def hourly(name, what="bytes"):
    return [v[(name, what)][str(h)] for h in range(1, hours + 1) if str(h) in v[(name, what)]]
def med(xs): return statistics.median(xs) if xs else float("nan")
mb = lambda b: f"{b / 1e6:.2f} MB"
true = med(hourly("true-change"))
print(f"dump size (hour 0): {mb(v[('dump', 'bytes')]['0'])}; true change per hour (zstd -3 of the changed lines), median: {mb(true)}")
print()
print("| per hour (median of hours 1..N) | bytes added | x true change | snapshot time | peak RSS |")
print("|---|---|---|---|---|")
for name in ["pg-deltas", "pg-onelink", "pg-plain", "stream-vault", "stream-restic", "stream-borg"]:
    b = hourly(name)
    if not b: continue
    t = hourly(name, "seconds"); r = hourly(name, "peak_kib")
    print(f"| {name} | {mb(med(b))} | {med(b) / true:.1f}x | {med(t):.2f} s | {med(r) / 1024:.0f} MiB |")
print()
print(f"first snapshot: pg-deltas {mb(v[('pg-deltas', 'bytes')]['0'])} in {v[('pg-deltas', 'seconds')]['0']:.2f} s, "
      f"pg-plain {mb(v[('pg-plain', 'bytes')]['0'])} in {v[('pg-plain', 'seconds')]['0']:.2f} s")
print("bytes per hour, pg-deltas: " + " ".join(f"{b / 1e6:.2f}" for b in hourly("pg-deltas")) + " MB")
print("bytes per hour, pg-onelink: " + " ".join(f"{b / 1e6:.2f}" for b in hourly("pg-onelink")) + " MB")
print("bytes per hour, pg-plain:  " + " ".join(f"{b / 1e6:.2f}" for b in hourly("pg-plain")) + " MB")
late = lambda n: sum(hourly(n)[hours // 2:]) / max(1, len(hourly(n)[hours // 2:]))
print(f"mean of the second half of the day: pg-deltas {mb(late('pg-deltas'))} ({late('pg-deltas') / true:.1f}x true change), "
      f"pg-onelink {mb(late('pg-onelink'))} ({late('pg-onelink') / true:.1f}x)")
ts = lambda n: v[(n, "seconds")]["restore"]
print(f"restore of the last hour: with delta chains {ts('restore-last-deltas'):.2f} s, one-link {ts('restore-last-onelink'):.2f} s, "
      f"without {ts('restore-last-plain'):.2f} s ({ts('restore-last-deltas') / ts('restore-last-plain'):.2f}x); "
      f"hour 0 from the delta repository {ts('restore-first-deltas'):.2f} s")
print(f"snapshot time with/without deltas (median per hour): {med(hourly('pg-deltas', 'seconds')) / med(hourly('pg-plain', 'seconds')):.2f}x")
PY
