#!/usr/bin/env bash
# Side-by-side: `vault check --read-data` against `restic check --read-data`
# and `rustic check --read-data` (and `borg check --verify-data` with
# TOOLS="vault restic rustic borg") on the same
# data, in one run, on this machine. Each tool stores the data sets of
# compare.sh (the pgbench dump as a stream and $TREE as files) once into a
# fresh repository; then every tool's full data check is timed, RUNS times,
# page caches dropped before each. Prints medians and ratios against vault.
#
#   benches/check.sh
#   RUNS=1 TREE=/usr/share benches/check.sh
set -euo pipefail

TOOLS=${TOOLS:-"vault restic rustic"}
BENCH_DIR=${BENCH_DIR:-/var/tmp/vault-bench}
RESULTS=${RESULTS:-$BENCH_DIR/check-results.tsv}
WORK=${WORK:-$BENCH_DIR/check-work}
source "$(dirname "$0")/lib.sh"

check_data() {
    local tool=$1 repo=$2
    case $tool in
        vault|vault-base) "$(vault_of "$tool")" -r "$repo" -q check --read-data ;;
        restic) restic -q -r "$repo" --cache-dir "$WORK/cache-restic" check --read-data >/dev/null ;;
        borg) borg check --verify-data "$repo" ;;
        rustic) rustic -r "$repo" --no-cache check --read-data >/dev/null 2>&1 ;;
    esac
}
export -f check_data

make_dump
echo "dump: $(du -h "$DUMP" | cut -f1), tree: $TREE $(du -sh "$TREE" 2>/dev/null | cut -f1), runs: $RUNS" >&2
rm -rf "$WORK"; mkdir -p "$WORK"
: > "$RESULTS"
for tool in $TOOLS; do
    repo_init "$tool" "$WORK/repo-$tool"
    snapshot_dump "$tool" "$WORK/repo-$tool"
    snapshot_tree "$tool" "$WORK/repo-$tool"
    printf 'repo_bytes\t%s\t1\t%s\t0\n' "$tool" "$(du -sb "$WORK/repo-$tool" | cut -f1)" >> "$RESULTS"
done
for run in $(seq 1 "$RUNS"); do
    for tool in $TOOLS; do
        measure check_read_data "$tool" "$run" check_data "$tool" "$WORK/repo-$tool"
    done
done
rm -rf "$WORK"
summarize "check_read_data repo_bytes"
