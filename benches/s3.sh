#!/usr/bin/env bash
# vault vs restic's s3 backend, both against one local S3 server (moto), in
# one run: snapshot of the pg_dump stream (benches/lib.sh) into a fresh
# repository, then its restore to a file (checked byte-identical). Prints
# medians of RUNS runs of wall time and of HTTP requests the server saw
# (counted in its request log), and restic/vault ratios.
#
#   benches/s3.sh                 # 3 runs
#   RUNS=1 SCALE=20 benches/s3.sh
set -euo pipefail

TOOLS="vault restic"
WORK=${WORK:-/var/tmp/vault-bench/s3-work}
RESULTS=${RESULTS:-/var/tmp/vault-bench/s3-results.tsv}
# shellcheck source=benches/lib.sh
source "$(dirname "$0")/lib.sh"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true

command -v moto_server >/dev/null || { echo "moto_server missing: pip install 'moto[server]'" >&2; exit 1; }
make_dump

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ENDPOINT=http://127.0.0.1:$PORT
export AWS_ENDPOINT_URL=$ENDPOINT
rm -rf "$WORK"; mkdir -p "$WORK"
LOG=$WORK/moto.log
moto_server -H 127.0.0.1 -p "$PORT" 2> "$LOG" > /dev/null &
MOTO=$!
trap 'kill $MOTO 2>/dev/null || true' EXIT
until curl -s -o /dev/null "$ENDPOINT"; do sleep 0.2; done

# Each request is one line in the server's log: "METHOD /path HTTP/1.1" status.
requests() { grep -c '"[A-Z]* /.* HTTP/1.[01]" [0-9]' "$LOG" || true; }

# measure NAME TOOL RUN CMD...: wall seconds and requests of one command.
measure() {
    local name=$1 tool=$2 run=$3; shift 3
    local before t0 t1
    before=$(requests)
    t0=$(date +%s.%N)
    "$@"
    t1=$(date +%s.%N)
    sleep 0.2 # the server logs a request after answering it
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$tool" "$run" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
        "$(( $(requests) - before ))" >> "$RESULTS"
}

vault_() { "$VAULT" --cache-dir "$WORK/cache-vault" -q "$@"; }
restic_() { restic -q --cache-dir "$WORK/cache-restic" "$@"; }

echo "dump: $(du -h "$DUMP" | cut -f1), server: moto $(python3 -c 'import moto; print(moto.__version__)'), runs: $RUNS" >&2
: > "$RESULTS"
for run in $(seq 1 "$RUNS"); do
    bucket=bench-$run
    curl -s -X PUT "$ENDPOINT/$bucket" > /dev/null
    rm -rf "$WORK/cache-vault" "$WORK/cache-restic"
    vault_ -r "s3://$bucket/vault" init
    restic_ -r "s3:$ENDPOINT/$bucket/restic" init > /dev/null
    measure snapshot vault "$run" bash -c '"$0" --cache-dir "$1" -q -r "s3://$2/vault" snapshot --stdin --name dump.sql < "$3"' "$VAULT" "$WORK/cache-vault" "$bucket" "$DUMP"
    measure snapshot restic "$run" bash -c 'restic -q --cache-dir "$0" -r "s3:$1/$2/restic" backup --stdin --stdin-filename dump.sql < "$3" > /dev/null' "$WORK/cache-restic" "$ENDPOINT" "$bucket" "$DUMP"
    measure restore vault "$run" bash -c '"$0" --cache-dir "$1" -q -r "s3://$2/vault" dump latest dump.sql > "$3"' "$VAULT" "$WORK/cache-vault" "$bucket" "$WORK/restored"
    cmp -s "$DUMP" "$WORK/restored" || { echo "vault restored a different dump" >&2; exit 1; }
    measure restore restic "$run" bash -c 'restic -q --cache-dir "$0" -r "s3:$1/$2/restic" dump latest dump.sql > "$3"' "$WORK/cache-restic" "$ENDPOINT" "$bucket" "$WORK/restored"
    cmp -s "$DUMP" "$WORK/restored" || { echo "restic restored a different dump" >&2; exit 1; }
    rm -f "$WORK/restored"
done

python3 - "$RESULTS" <<'PY'
import statistics, sys, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
secs, reqs = collections.defaultdict(list), collections.defaultdict(list)
for name, tool, run, s, r in rows:
    secs[(name, tool)].append(float(s)); reqs[(name, tool)].append(int(r))
print("| measure | vault | restic | restic/vault |")
print("|---|---|---|---|")
for n in ["snapshot", "restore"]:
    v, r = statistics.median(secs[(n, "vault")]), statistics.median(secs[(n, "restic")])
    print(f"| {n}: wall time | {v:.2f} s | {r:.2f} s | {r / v:.2f}x |")
    v, r = statistics.median(reqs[(n, "vault")]), statistics.median(reqs[(n, "restic")])
    print(f"| {n}: requests | {v:.0f} | {r:.0f} | {r / max(v, 1):.2f}x |")
PY
