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

# A second kind of change: 100 lines edited at scattered places (a few
# rows updated in place in a table whose order does not change).
D3=$BENCH_DIR/chunk-s$SCALE-edits.sql
if [ ! -s "$D3" ]; then
    python3 - "$D1" "$D3" <<'PY'
import random, sys
lines = open(sys.argv[1], "rb").read().split(b"\n")
rng = random.Random(42)
for i in rng.sample(range(len(lines)), 100):
    lines[i] = lines[i] + b" edited"
open(sys.argv[2], "wb").write(b"\n".join(lines))
PY
fi

echo "dump: $(du -h "$D1" | cut -f1); pgbench: $TXNS transactions between two dumps; edits: 100 scattered lines changed"
echo "| avg chunk | chunks in first | first snapshot | pgbench second adds (raw / stored) | edits second adds (raw / stored) |"
echo "|---|---|---|---|---|"
for avg in $AVGS; do
    repo=$(mktemp -d "$BENCH_DIR/repo.XXXX")
    cache=$(mktemp -d "$BENCH_DIR/cache.XXXX")
    max=$((avg * 4)); [ $max -gt 16777216 ] && max=16777216
    "$VAULT" -r "$repo" --cache-dir "$cache" -q init --chunk-min $((avg / 4)) --chunk-avg "$avg" --chunk-max "$max"
    first=$("$VAULT" -r "$repo" --cache-dir "$cache" --json snapshot --stdin --name dump.sql < "$D1")
    second=$("$VAULT" -r "$repo" --cache-dir "$cache" --json snapshot --stdin --name dump.sql < "$D2")
    edits=$("$VAULT" -r "$repo" --cache-dir "$cache" --json snapshot --stdin --name dump.sql < "$D3")
    python3 - "$avg" "$first" "$second" "$edits" <<'PY'
import json, sys
avg, a, b, c = int(sys.argv[1]), *(json.loads(x) for x in sys.argv[2:])
mib = lambda n: f"{n / 2**20:.1f} MiB"
print(f"| {avg // 1024} KiB | {a['blobs_added']} | {a['duration_ms'] / 1000:.2f} s "
      f"| {mib(b['raw_bytes_added'])} / {mib(b['bytes_added'])} | {mib(c['raw_bytes_added'])} / {mib(c['bytes_added'])} |")
PY
    rm -rf "$repo" "$cache"
done
