#!/usr/bin/env bash
# MariaDB side by side, in one run, on this machine: `vault snapshot mysql`
# against `mariadb-dump > file` (a plain dump to local disk) and
# `mariadb-dump | restic backup --stdin`; then an "hourly" change (updates
# of recent rows, new rows appended) and the bytes each tool's second
# snapshot adds to its repository on disk (`du`, so compression counts the
# same for both). Prints medians of RUNS runs.
#
#   benches/db_sources.sh             # ROWS=400000 (a ~100 MiB dump), RUNS=3
#   RUNS=1 ROWS=100000 benches/db_sources.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/vault-bench-db}
RUNS=${RUNS:-3}
ROWS=${ROWS:-400000}
export VAULT_PASSWORD=bench RESTIC_PASSWORD=bench

(cd "$ROOT" && cargo build --release --quiet)
VAULT=$ROOT/target/release/vault
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
WORK=$BENCH_DIR
RESULTS=$WORK/results.tsv
: > "$RESULTS"

SOCK=$WORK/mysqld.sock
mariadb-install-db --no-defaults --datadir="$WORK/data" --auth-root-authentication-method=normal \
    --skip-test-db --user=root >/dev/null 2>&1
mariadbd --no-defaults --datadir="$WORK/data" --socket="$SOCK" --skip-networking --user=root \
    --pid-file="$WORK/mysqld.pid" --log-error="$WORK/error.log" --innodb-buffer-pool-size=256M >/dev/null 2>&1 &
trap 'kill "$(cat "$WORK/mysqld.pid")" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.2; done
sql() { mariadb --no-defaults --socket="$SOCK" --user=root -e "$1"; }
conn=(--socket="$SOCK" --user=root)

sql "CREATE DATABASE bench; USE bench;
     CREATE TABLE orders (id INT PRIMARY KEY, customer INT, placed DATETIME, note VARCHAR(255));
     INSERT INTO orders SELECT seq, seq % 9973, TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq MINUTE,
                               REPEAT(MD5(seq), 6) FROM seq_1_to_$ROWS;"

# One hour of traffic: 2000 updates among the newest 5% of rows, and 1% new rows.
hourly_change() {
    local run=$1 recent=$((ROWS * 95 / 100)) new=$((ROWS / 100))
    local last; last=$(mariadb --no-defaults "${conn[@]}" -N -e "SELECT MAX(id) FROM bench.orders")
    sql "USE bench;
         UPDATE orders SET note = REPEAT(MD5(id + $run * 1000003), 6)
           WHERE id > $recent AND id % $(( (ROWS - recent) / 2000 )) = 0;
         INSERT INTO orders SELECT $last + seq, seq % 9973, NOW(), REPEAT(MD5(seq + $last), 6)
           FROM seq_1_to_$new;"
}

# record NAME TOOL RUN SECONDS BYTES
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$RESULTS"; }
seconds() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }

for run in $(seq "$RUNS"); do
    t0=$(date +%s.%N)
    mariadb-dump --no-defaults "${conn[@]}" --single-transaction --skip-dump-date --routines \
        --events --triggers --databases bench > "$WORK/dump.sql"
    record first dump-to-file "$run" "$(seconds "$t0")" "$(stat -c %s "$WORK/dump.sql")"

    rm -rf "$WORK/vault" "$WORK/restic" "$WORK/cache-"*
    "$VAULT" -r "$WORK/vault" --cache-dir "$WORK/cache-vault" -q init
    restic -q init -r "$WORK/restic" >/dev/null

    for phase in first hourly; do
        [ "$phase" = hourly ] && hourly_change "$run"
        before=$(du -sb "$WORK/vault" | cut -f1)
        t0=$(date +%s.%N)
        "$VAULT" -r "$WORK/vault" --cache-dir "$WORK/cache-vault" -q snapshot mysql \
            --database bench "${conn[@]}"
        record "$phase" vault "$run" "$(seconds "$t0")" $(($(du -sb "$WORK/vault" | cut -f1) - before))

        before=$(du -sb "$WORK/restic" | cut -f1)
        t0=$(date +%s.%N)
        mariadb-dump --no-defaults "${conn[@]}" --single-transaction --skip-dump-date --routines \
            --events --triggers --databases bench |
            restic -q -r "$WORK/restic" --cache-dir "$WORK/cache-restic" backup --stdin \
                --stdin-filename bench.sql >/dev/null
        record "$phase" restic "$run" "$(seconds "$t0")" $(($(du -sb "$WORK/restic" | cut -f1) - before))
    done
done

echo "medians of $RUNS runs ($ROWS rows; dump $(numfmt --to=iec "$(stat -c %s "$WORK/dump.sql")"))"
printf '%-8s %-14s %10s %14s\n' snapshot tool seconds "bytes added"
for name in first hourly; do
    for tool in dump-to-file vault restic; do
        rows=$(awk -F'\t' -v n="$name" -v t="$tool" '$1 == n && $2 == t' "$RESULTS")
        [ -z "$rows" ] && continue
        s=$(cut -f4 <<<"$rows" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
        b=$(cut -f5 <<<"$rows" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
        printf '%-8s %-14s %10s %14s\n' "$name" "$tool" "$s" "$(numfmt --to=iec "$b")"
    done
done
