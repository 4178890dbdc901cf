#!/usr/bin/env bash
# Paired before/after runs of the read-side rows: two vault binaries run
# alternately on the same repositories, page caches dropped before each.
# Reports wall time, CPU (user + sys) and peak RSS medians and the paired
# after/before ratio; raw rows in $OUT.
#
#   BEFORE=/tmp/vault-before AFTER=target/release/vault \
#     DUMP_REPO=... DUMP=... DELTA_REPO=... DELTA_DUMP=... CHECK_REPO=... \
#     benches/read_side.sh
#
# DUMP_REPO holds one stdin snapshot of the file DUMP (benches/lib.sh makes
# it); DELTA_REPO a stdin snapshot stored mostly as deltas whose latest is
# DELTA_DUMP (the stream repository of a benches/deltas.sh run and its
# last.sql); CHECK_REPO any repository for `check --read-data`; TREE a
# folder whose first snapshot is measured (TREE_RUNS times).
set -euo pipefail
export VAULT_PASSWORD=${VAULT_PASSWORD:-bench}
OUT=${OUT:-/var/tmp/vault-bench/read-side-results.tsv}
RUNS=${RUNS:-3}
TREE_RUNS=${TREE_RUNS:-3}
TREE=${TREE:-/usr/lib/x86_64-linux-gnu}
WORK=$(mktemp -d /var/tmp/read-side.XXXX)
trap 'rm -rf "$WORK"' EXIT
: > "$OUT"

one() { # NAME TOOL RUN COMMAND...
    local name=$1 tool=$2 run=$3; shift 3
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    /usr/bin/time -f "%e\t%M\t%U\t%S" -o "$WORK/time" "$@"
    printf '%s\t%s\t%s\t%s\n' "$name" "$tool" "$run" "$(tail -1 "$WORK/time")" >> "$OUT"
}
bin() { if [ "$1" = before ]; then echo "$BEFORE"; else echo "$AFTER"; fi; }

for run in $(seq 1 "$RUNS"); do
    for tool in before after; do
        b=$(bin $tool)
        one dump_restore $tool "$run" sh -c "'$b' -r '$DUMP_REPO' --cache-dir '$WORK/cache' -q dump latest > '$WORK/out'"
        cmp -s "$WORK/out" "$DUMP" || { echo "$tool dumped different bytes" >&2; exit 1; }
        one dump_restore_deltas $tool "$run" sh -c "'$b' -r '$DELTA_REPO' --cache-dir '$WORK/cache-d' -q dump latest > '$WORK/out'"
        cmp -s "$WORK/out" "$DELTA_DUMP" || { echo "$tool dumped different delta bytes" >&2; exit 1; }
        one check_read_data $tool "$run" "$b" -r "$CHECK_REPO" -q check --read-data
    done
done
for run in $(seq 1 "$TREE_RUNS"); do
    for tool in before after; do
        b=$(bin $tool)
        rm -rf "$WORK/tree" "$WORK/cache-t"
        "$b" -r "$WORK/tree" --cache-dir "$WORK/cache-t" -q init
        one tree_first $tool "$run" "$b" -r "$WORK/tree" --cache-dir "$WORK/cache-t" -q snapshot "$TREE"
    done
done

python3 - "$OUT" <<'PY'
import collections, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
d = collections.defaultdict(list)
for name, tool, run, sec, rss, user, sys_ in rows:
    d[(name, tool)].append((float(sec), int(rss), float(user) + float(sys_)))
print("| measure | before | after | after/before (paired) | CPU before | CPU after | peak RSS before | after |")
print("|---|---|---|---|---|---|---|---|")
for name in ["dump_restore", "dump_restore_deltas", "check_read_data", "tree_first"]:
    b, a = d[(name, "before")], d[(name, "after")]
    if not b or not a:
        continue
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    paired = statistics.median(x[0] / y[0] for x, y in zip(a, b))
    print(f"| {name} | {med(b, 0):.2f} s | {med(a, 0):.2f} s | {paired:.2f}x | {med(b, 2):.2f} s | "
          f"{med(a, 2):.2f} s | {med(b, 1) / 1024:.0f} MiB | {med(a, 1) / 1024:.0f} MiB |")
PY
