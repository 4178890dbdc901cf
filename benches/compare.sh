#!/usr/bin/env bash
# Side-by-side: vault vs restic vs borg (Debian's packages) on the same data,
# in one run, on this machine. Prints medians of RUNS runs and vault's ratios.
#
#   benches/compare.sh                 # all data sets, 3 runs
#   RUNS=1 TREE=/usr/share benches/compare.sh
#
# Data sets: DUMP, a plain pg_dump of a pgbench -s $SCALE database (made once
# with a throwaway PostgreSQL, cached in $BENCH_DIR), stored as a stdin
# stream; TREE, a folder (default /usr/lib, several GB), stored as files.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/vault-bench}
RUNS=${RUNS:-3}
SCALE=${SCALE:-60}
TREE=${TREE:-/usr/lib}
TOOLS=${TOOLS:-"vault restic borg"}
DUMP=$BENCH_DIR/pgbench-s$SCALE.sql
WORK=$BENCH_DIR/work
RESULTS=$BENCH_DIR/results.tsv
export VAULT_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

for tool in restic borg; do
    if [[ " $TOOLS " == *" $tool "* ]] && ! command -v "$tool" >/dev/null; then
        echo "installing $tool from Debian's packages" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic borgbackup >/dev/null
    fi
done

(cd "$ROOT" && cargo build --release --quiet)
VAULT=$ROOT/target/release/vault
mkdir -p "$BENCH_DIR"

# shellcheck source=benches/dump.sh
source "$ROOT/benches/dump.sh"

# measure NAME TOOL RUN FUNCTION ARGS...: wall seconds and peak RSS (KiB) of
# the tool run by FUNCTION (in a child shell, so /usr/bin/time can watch it).
measure() {
    local name=$1 tool=$2 run=$3; shift 3
    local t0 t1 rss
    sync
    echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    t0=$(date +%s.%N)
    /usr/bin/time -f %M -o "$WORK/rss" bash -c '"$@"' _ "$@"
    t1=$(date +%s.%N)
    rss=$(tail -1 "$WORK/rss")
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$tool" "$run" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" "$rss" >> "$RESULTS"
}

repo_init() {
    local tool=$1 repo=$2
    case $tool in
        vault) "$VAULT" -r "$repo" --cache-dir "$WORK/cache-vault" -q init ;;
        restic) restic -q init -r "$repo" >/dev/null ;;
        borg) borg init -e repokey "$repo" ;;
    esac
}

snapshot_dump() {
    local tool=$1 repo=$2
    case $tool in
        vault) "$VAULT" -r "$repo" --cache-dir "$WORK/cache-vault" -q snapshot --stdin --name dump.sql < "$DUMP" ;;
        restic) restic -q -r "$repo" --cache-dir "$WORK/cache-restic" backup --stdin --stdin-filename dump.sql < "$DUMP" ;;
        borg) borg create --compression zstd,3 "$repo::dump-$RANDOM$RANDOM" - < "$DUMP" ;;
    esac
}

restore_dump() {
    local tool=$1 repo=$2
    case $tool in
        vault) "$VAULT" -r "$repo" --cache-dir "$WORK/cache-vault" -q dump latest > "$WORK/restored" ;;
        restic) restic -q -r "$repo" --cache-dir "$WORK/cache-restic" dump latest dump.sql > "$WORK/restored" ;;
        borg) borg extract --stdout "$repo::$(borg list --short --last 1 "$repo")" > "$WORK/restored" ;;
    esac
}

snapshot_tree() {
    local tool=$1 repo=$2
    case $tool in
        vault) "$VAULT" -r "$repo" --cache-dir "$WORK/cache-vault" -q snapshot "$TREE" ;;
        restic) restic -q -r "$repo" --cache-dir "$WORK/cache-restic" backup "$TREE" >/dev/null ;;
        borg) borg create --compression zstd,3 "$repo::tree-$RANDOM$RANDOM" "$TREE" ;;
    esac
}

export -f snapshot_dump restore_dump snapshot_tree
export VAULT WORK DUMP TREE

make_dump
echo "dump: $(du -h "$DUMP" | cut -f1), tree: $TREE $(du -sh "$TREE" 2>/dev/null | cut -f1), runs: $RUNS" >&2
: > "$RESULTS"
for run in $(seq 1 "$RUNS"); do
    for tool in $TOOLS; do
        rm -rf "$WORK"; mkdir -p "$WORK"
        repo_init "$tool" "$WORK/repo-dump"
        measure dump_first "$tool" "$run" snapshot_dump "$tool" "$WORK/repo-dump"
        measure dump_restore "$tool" "$run" restore_dump "$tool" "$WORK/repo-dump"
        cmp -s "$DUMP" "$WORK/restored" || { echo "$tool restored a different dump" >&2; exit 1; }
        printf 'dump_repo_bytes\t%s\t%s\t%s\t0\n' "$tool" "$run" "$(du -sb "$WORK/repo-dump" | cut -f1)" >> "$RESULTS"
        rm -rf "$WORK/repo-dump" "$WORK/restored"
        repo_init "$tool" "$WORK/repo-tree"
        measure tree_first "$tool" "$run" snapshot_tree "$tool" "$WORK/repo-tree"
        measure tree_unchanged "$tool" "$run" snapshot_tree "$tool" "$WORK/repo-tree"
        rm -rf "$WORK/repo-tree"
    done
done

python3 - "$RESULTS" "$TOOLS" <<'PY'
import statistics, sys, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
tools = sys.argv[2].split()
secs, rss = collections.defaultdict(list), collections.defaultdict(list)
for name, tool, run, value, peak in rows:
    secs[(name, tool)].append(float(value)); rss[(name, tool)].append(int(peak))
names = ["dump_first", "dump_restore", "tree_first", "tree_unchanged", "dump_repo_bytes"]
print("| measure | " + " | ".join(tools) + " | " + " | ".join(f"{t}/vault" for t in tools if t != "vault") + " |")
print("|---" * (1 + len(tools) + len(tools) - 1) + "|")
for n in names:
    med = {t: statistics.median(secs[(n, t)]) for t in tools if secs[(n, t)]}
    if not med: continue
    unit = "B" if n.endswith("bytes") else "s"
    cells = [f"{med[t]:.0f} {unit}" if unit == "B" else f"{med[t]:.2f} s" for t in tools]
    ratios = [f"{med[t] / med['vault']:.2f}x" for t in tools if t != "vault" and "vault" in med and med['vault'] > 0]
    print(f"| {n} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    if unit == "s":
        peaks = {t: statistics.median(rss[(n, t)]) / 1024 for t in tools}
        print(f"| {n} peak RSS | " + " | ".join(f"{peaks[t]:.0f} MiB" for t in tools) + " | " + " | ".join(f"{peaks[t] / peaks['vault']:.2f}x" for t in tools if t != "vault") + " |")
PY
