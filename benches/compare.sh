#!/usr/bin/env bash
# Side-by-side: vault vs restic and borg (Debian's packages) and rustic
# (crates.io) on the same data, in one run, on this machine. Prints medians
# of RUNS runs, each peer's ratio to vault and vault's to the fastest (or
# smallest) peer.
#
#   benches/compare.sh                 # all data sets, 3 runs
#   RUNS=1 TREE=/usr/share benches/compare.sh
#   SETS=dump TOOLS="vault rustic" benches/compare.sh
#
# Data sets (SETS, default "dump tree"): DUMP, a plain pg_dump of a pgbench
# -s $SCALE database plus $JSON_ROWS rows of JSON events (made once with a
# throwaway PostgreSQL, cached in $BENCH_DIR), stored as a stdin stream;
# TREE, a folder (default /usr/lib, several GB), stored as files.
set -euo pipefail

source "$(dirname "$0")/lib.sh"

SETS=${SETS:-"dump tree"}

# What no tool can beat, measured as the tool "floor" in the same runs:
# writing the dump's bytes into a file (the kernel's share of any restore
# to a file), and reading the metadata an unchanged re-snapshot must compare
# (one `find` over the tree, caches dropped like every other measure).
write_floor() {
    dd if=/dev/zero of="$WORK/restored" bs=1M count="$(stat -c %s "$DUMP")" iflag=count_bytes status=none
}
stat_floor() { find "$TREE" -printf '%s %T@ %C@ %i\n' > /dev/null; }
export -f write_floor stat_floor

make_dump
echo "dump: $(du -h "$DUMP" | cut -f1), tree: $TREE $(du -sh "$TREE" 2>/dev/null | cut -f1), runs: $RUNS" >&2
: > "$RESULTS"
for run in $(seq 1 "$RUNS"); do
    for tool in $TOOLS; do
        rm -rf "$WORK"; mkdir -p "$WORK"
        if [[ " $SETS " == *" dump "* ]]; then
            repo_init "$tool" "$WORK/repo-dump"
            measure dump_first "$tool" "$run" snapshot_dump "$tool" "$WORK/repo-dump"
            measure dump_restore "$tool" "$run" restore_dump "$tool" "$WORK/repo-dump"
            cmp -s "$DUMP" "$WORK/restored" || { echo "$tool restored a different dump" >&2; exit 1; }
            printf 'dump_repo_bytes\t%s\t%s\t%s\t0\n' "$tool" "$run" "$(du -sb "$WORK/repo-dump" | cut -f1)" >> "$RESULTS"
            rm -rf "$WORK/repo-dump" "$WORK/restored"
        fi
        if [[ " $SETS " == *" tree "* ]]; then
            repo_init "$tool" "$WORK/repo-tree"
            measure tree_first "$tool" "$run" snapshot_tree "$tool" "$WORK/repo-tree"
            measure tree_unchanged "$tool" "$run" snapshot_tree "$tool" "$WORK/repo-tree"
            printf 'tree_repo_bytes\t%s\t%s\t%s\t0\n' "$tool" "$run" "$(du -sb "$WORK/repo-tree" | cut -f1)" >> "$RESULTS"
            rm -rf "$WORK/repo-tree"
        fi
    done
    rm -rf "$WORK"; mkdir -p "$WORK"
    if [[ " $SETS " == *" dump "* ]]; then
        measure dump_restore floor "$run" write_floor
    fi
    if [[ " $SETS " == *" tree "* ]]; then
        measure tree_unchanged floor "$run" stat_floor
    fi
done

TOOLS="$TOOLS floor"
summarize "dump_first dump_restore tree_first tree_unchanged dump_repo_bytes tree_repo_bytes"
