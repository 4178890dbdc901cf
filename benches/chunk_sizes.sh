#!/usr/bin/env bash
# Measures how the average chunk size trades dedup against object count:
# two plain pg_dumps of a pgbench database an "hour" apart (a few thousand
# transactions between them), snapshotted one after the other, for several
# chunker settings (min = avg/4, max = avg*4). The numbers chose the
# defaults recorded in format-spec/README.md ("Chunking").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/vault-bench}
SCALE=${SCALE:-10}
TXNS=${TXNS:-2000}
AVGS=${AVGS:-"131072 262144 524288 1048576 2097152"}
export VAULT_PASSWORD=bench
(cd "$ROOT" && cargo build --release --quiet)
VAULT=$ROOT/target/release/vault
D1=$BENCH_DIR/chunk-s$SCALE-a.sql
D2=$BENCH_DIR/chunk-s$SCALE-b.sql
mkdir -p "$BENCH_DIR"

if [ ! -s "$D2" ]; then
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    pgdir=$(mktemp -d "$BENCH_DIR/pg.XXXX"); chown postgres "$pgdir"
    pg() { runuser -u postgres -- "$@"; }
    pg "$bin/initdb" -D "$pgdir/data" -A trust >/dev/null
    pg "$bin/pg_ctl" -D "$pgdir/data" -o "-k $pgdir -h ''" -l "$pgdir/log" -w start >/dev/null
    pg "$bin/pgbench" -h "$pgdir" -i -s "$SCALE" -q postgres 2>/dev/null
    pg "$bin/pg_dump" -h "$pgdir" postgres > "$D1"
    pg "$bin/pgbench" -h "$pgdir" -c 2 -t $((TXNS / 2)) postgres >/dev/null 2>&1
    pg "$bin/pg_dump" -h "$pgdir" postgres > "$D2"
    pg "$bin/pg_ctl" -D "$pgdir/data" -m fast stop >/dev/null
    rm -rf "$pgdir"
fi

echo "dump: $(du -h "$D1" | cut -f1), $TXNS transactions between the two dumps"
echo "| avg chunk | chunks in first | first snapshot | second adds (raw) | second adds (stored) |"
echo "|---|---|---|---|---|"
for avg in $AVGS; do
    repo=$(mktemp -d "$BENCH_DIR/repo.XXXX")
    cache=$(mktemp -d "$BENCH_DIR/cache.XXXX")
    max=$((avg * 4)); [ $max -gt 16777216 ] && max=16777216
    "$VAULT" -r "$repo" --cache-dir "$cache" -q init --chunk-min $((avg / 4)) --chunk-avg "$avg" --chunk-max "$max"
    first=$("$VAULT" -r "$repo" --cache-dir "$cache" --json snapshot --stdin --name dump.sql < "$D1")
    second=$("$VAULT" -r "$repo" --cache-dir "$cache" --json snapshot --stdin --name dump.sql < "$D2")
    python3 - "$avg" "$first" "$second" <<'PY'
import json, sys
avg, a, b = int(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
mib = lambda n: f"{n / 2**20:.1f} MiB"
print(f"| {avg // 1024} KiB | {a['blobs_added']} | {a['duration_ms'] / 1000:.2f} s | {mib(b['raw_bytes_added'])} | {mib(b['bytes_added'])} |")
PY
    rm -rf "$repo" "$cache"
done
