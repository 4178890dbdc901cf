#!/usr/bin/env bash
# vault mount vs restic mount on the same data, in one run, on this machine:
#   seq   sequential read of a SIZE_MIB file (default 1 GiB) through the mount
#   ttfb  time to the first byte of a 4 KiB read at a random offset in it,
#         on a fresh mount with cold caches (includes the path lookups)
# Prints medians of RUNS runs and restic/vault ratios (above 1: vault faster).
#
#   benches/mount.sh
#   RUNS=1 SIZE_MIB=256 benches/mount.sh
#   VAULT=target/debug/vault benches/mount.sh     # skip the release build
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/vault-bench}
RUNS=${RUNS:-3}
SIZE_MIB=${SIZE_MIB:-1024}
WORK=$BENCH_DIR/mount
DATA=$WORK/data
FILE=$DATA/big.bin
RESULTS=$WORK/results.tsv
export VAULT_PASSWORD=bench RESTIC_PASSWORD=bench

if ! command -v restic >/dev/null; then
    echo "installing restic from Debian's packages" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic fuse3 >/dev/null
fi
if [ -z "${VAULT:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
    VAULT=$ROOT/target/release/vault
fi
vault() { "$VAULT" -r "$WORK/repo-vault" --cache-dir "$WORK/cache-vault" "$@"; }
restic_() { restic -r "$WORK/repo-restic" --cache-dir "$WORK/cache-restic" "$@"; }

mkdir -p "$DATA" "$WORK/mnt"
if [ "$(stat -c %s "$FILE" 2>/dev/null || echo 0)" != $((SIZE_MIB << 20)) ]; then
    rm -rf "$WORK/repo-vault" "$WORK/repo-restic"
    # Incompressible, so neither tool wins by compressing.
    head -c $((SIZE_MIB << 20)) /dev/urandom > "$FILE"
fi
if [ ! -d "$WORK/repo-vault" ]; then
    vault -q init
    vault -q snapshot "$DATA"
fi
if [ ! -d "$WORK/repo-restic" ]; then
    restic_ -q init
    restic_ -q backup "$DATA" >/dev/null
fi

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

# mount_tool TOOL: start the mount in the background (the tool itself, not
# a subshell, so $! is its pid), wait for the file to show.
mount_tool() {
    local tool=$1 path path_glob
    case $tool in
        vault) "$VAULT" -r "$WORK/repo-vault" --cache-dir "$WORK/cache-vault" -q \
                   mount "$WORK/mnt" 2>>"$WORK/mount.log" &
               path_glob="$WORK/mnt/snapshots/*/${FILE#/}" ;;
        restic) restic -r "$WORK/repo-restic" --cache-dir "$WORK/cache-restic" \
                    mount "$WORK/mnt" >>"$WORK/mount.log" 2>&1 &
                path_glob="$WORK/mnt/snapshots/latest/${FILE#/}" ;;
    esac
    MOUNT_PID=$!
    for _ in $(seq 1 600); do
        path=$(compgen -G "$path_glob" | head -1 || true)
        [ -n "$path" ] && { MOUNTED_FILE=$path; return; }
        sleep 0.1
    done
    echo "$tool mount did not come up" >&2; exit 1
}

# Both tools end when their file system is unmounted.
unmount_tool() {
    [ -n "${MOUNT_PID:-}" ] || return 0
    for _ in $(seq 1 100); do
        mountpoint -q "$WORK/mnt" || break
        fusermount3 -u "$WORK/mnt" 2>/dev/null || sleep 0.1
    done
    wait "$MOUNT_PID" 2>/dev/null || true
    MOUNT_PID=
}
trap unmount_tool EXIT

seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

: > "$RESULTS"
for run in $(seq 1 "$RUNS"); do
    offset=$(( (RANDOM * 32768 + RANDOM) % ((SIZE_MIB << 20) / 4096) ))
    for tool in vault restic; do
        drop_caches
        mount_tool "$tool"
        # Time to first byte: a fresh mount, cold caches, one 4 KiB read.
        t0=$(date +%s.%N)
        dd if="$MOUNTED_FILE" of=/dev/null bs=4096 count=1 skip="$offset" status=none
        t1=$(date +%s.%N)
        printf 'ttfb\t%s\t%s\t%s\n' "$tool" "$run" "$(seconds "$t0" "$t1")" >> "$RESULTS"
        unmount_tool
        drop_caches
        mount_tool "$tool"
        t0=$(date +%s.%N)
        dd if="$MOUNTED_FILE" of=/dev/null bs=1M status=none
        t1=$(date +%s.%N)
        printf 'seq\t%s\t%s\t%s\n' "$tool" "$run" "$(seconds "$t0" "$t1")" >> "$RESULTS"
        if [ "$run" = 1 ]; then
            cmp "$FILE" "$MOUNTED_FILE" || { echo "$tool mount reads different bytes" >&2; exit 1; }
        fi
        unmount_tool
    done
done

python3 - "$RESULTS" "$SIZE_MIB" <<'PY'
import collections, statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
size = int(sys.argv[2])
t = collections.defaultdict(list)
for name, tool, run, secs in rows:
    t[(name, tool)].append(float(secs))
print("| measure | vault | restic | restic/vault |")
print("|---|---|---|---|")
for name, label in [("seq", f"sequential read, {size} MiB"), ("ttfb", "first byte of a random 4 KiB read")]:
    v, r = statistics.median(t[(name, "vault")]), statistics.median(t[(name, "restic")])
    if name == "seq":
        cells = f"{v:.2f} s ({size / v:.0f} MiB/s) | {r:.2f} s ({size / r:.0f} MiB/s)"
    else:
        cells = f"{v * 1000:.0f} ms | {r * 1000:.0f} ms"
    print(f"| {label} | {cells} | {r / v:.2f}x |")
PY
