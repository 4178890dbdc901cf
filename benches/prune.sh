#!/usr/bin/env bash
# Prune side by side: vault vs restic (Debian's package) on the same data,
# in one run. Each tool snapshots a folder $ROUNDS times, rewriting a tenth
# of its files between snapshots, forgets all but the last snapshot and
# prunes with 5% unused space allowed. Prints medians of RUNS runs of the
# prune: wall time, peak RSS, and the repository size left.
#
#   benches/prune.sh                          # 256 files of 256 KiB, 20 rounds, 3 runs
#   RUNS=1 FILES=64 VAULT_BIN=target/debug/vault benches/prune.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/vault-bench}
RUNS=${RUNS:-3}
FILES=${FILES:-256}
ROUNDS=${ROUNDS:-20}
TOOLS=${TOOLS:-"vault restic"}
WORK=$BENCH_DIR/prune-work
RESULTS=$BENCH_DIR/prune-results.tsv
export VAULT_PASSWORD=bench RESTIC_PASSWORD=bench

if [[ " $TOOLS " == *" restic "* ]] && ! command -v restic >/dev/null; then
    echo "installing restic from Debian's packages" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null
fi
if [ -z "${VAULT_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
    VAULT_BIN=$ROOT/target/release/vault
fi
mkdir -p "$BENCH_DIR"

# change ROUND: (re)write the files ROUND picks (all of them in round 0).
change() {
    local round=$1 f
    for f in $(seq 0 $((FILES - 1))); do
        if [ "$round" = 0 ] || [ $(((f + round) % 10)) = 0 ]; then
            head -c $((256 << 10)) /dev/urandom > "$WORK/src/f$f"
        fi
    done
}

vault() { "$VAULT_BIN" -r "$WORK/repo-vault" --cache-dir "$WORK/cache-vault" -q "$@"; }
restic_() { restic -q -r "$WORK/repo-restic" --cache-dir "$WORK/cache-restic" "$@" >/dev/null; }

prune() {
    case $1 in
        vault) vault prune --max-unused 5% ;;
        restic) restic_ prune --max-unused 5% ;;
    esac
}
export -f prune vault restic_
export VAULT_BIN WORK

: > "$RESULTS"
for run in $(seq 1 "$RUNS"); do
    rm -rf "$WORK"; mkdir -p "$WORK/src"
    vault init; restic -q init -r "$WORK/repo-restic" >/dev/null
    for round in $(seq 0 $((ROUNDS - 1))); do
        change "$round"
        [[ " $TOOLS " == *" vault "* ]] && vault snapshot "$WORK/src"
        [[ " $TOOLS " == *" restic "* ]] && restic_ backup "$WORK/src"
    done
    vault forget --keep-last 1
    restic_ forget --keep-last 1
    for tool in $TOOLS; do
        sync
        echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
        t0=$(date +%s.%N)
        /usr/bin/time -f %M -o "$WORK/rss" bash -c 'prune "$1"' _ "$tool"
        t1=$(date +%s.%N)
        printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$run" \
            "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
            "$(tail -1 "$WORK/rss")" "$(du -sb "$WORK/repo-$tool" | cut -f1)" >> "$RESULTS"
    done
done

python3 - "$RESULTS" "$TOOLS" <<'PY'
import statistics, sys, collections
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
tools = sys.argv[2].split()
col = collections.defaultdict(list)
for tool, run, secs, rss, size in rows:
    col[(tool, "s")].append(float(secs)); col[(tool, "rss")].append(int(rss) / 1024); col[(tool, "size")].append(int(size) / 2**20)
print("| measure | " + " | ".join(tools) + " | " + " | ".join(f"{t}/vault" for t in tools if t != "vault") + " |")
print("|---" * (2 * len(tools)) + "|")
for key, label, fmt in [("s", "prune", "{:.2f} s"), ("rss", "prune, peak RSS", "{:.0f} MiB"), ("size", "repository after prune", "{:.1f} MiB")]:
    med = {t: statistics.median(col[(t, key)]) for t in tools}
    ratios = [f"{med[t] / med['vault']:.2f}x" for t in tools if t != "vault"]
    print(f"| {label} | " + " | ".join(fmt.format(med[t]) for t in tools) + " | " + " | ".join(ratios) + " |")
PY
