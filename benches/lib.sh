# Shared by the side-by-side benchmarks (compare.sh, check.sh): settings,
# tool installation, the release build, the pg_dump data set, measuring one
# run, and the commands each tool uses to create repositories and snapshots.
# Sourced, not run; the caller sets `set -euo pipefail` and may preset TOOLS.

ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/benches/setup.sh"
BENCH_DIR=${BENCH_DIR:-/var/tmp/vault-bench}
RUNS=${RUNS:-3}
SCALE=${SCALE:-40}
# Rows of JSON events added to the pgbench tables: text that compresses like
# real data (about 3:1), unlike pgbench's blank filler (100:1).
JSON_ROWS=${JSON_ROWS:-1500000}
TREE=${TREE:-/usr/lib}
TOOLS=${TOOLS:-"vault restic borg rustic"}
DUMP=$BENCH_DIR/pgbench-s$SCALE-json$JSON_ROWS.sql
WORK=${WORK:-$BENCH_DIR/work}
RESULTS=${RESULTS:-$BENCH_DIR/results.tsv}
export VAULT_PASSWORD=bench RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench RUSTIC_PASSWORD=bench
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

install_peers

vault_binary
VAULT=$VAULT_BIN
# VAULT_BASE=/path/to/an/older/vault adds it as the tool "vault-base", run
# beside the current one, for before/after ratios from the same run.
if [ -n "${VAULT_BASE:-}" ] && [[ " $TOOLS " != *" vault-base "* ]]; then
    TOOLS="$TOOLS vault-base"
fi
mkdir -p "$BENCH_DIR"

make_dump() {
    [ -s "$DUMP" ] && return
    local bin; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    local pgdir; pgdir=$(mktemp -d "$BENCH_DIR/pg.XXXX")
    chown postgres "$pgdir"
    local as_pg=(runuser -u postgres --)
    "${as_pg[@]}" "$bin/initdb" -D "$pgdir/data" -A trust >/dev/null
    "${as_pg[@]}" "$bin/pg_ctl" -D "$pgdir/data" -o "-k $pgdir -h ''" -l "$pgdir/log" -w start >/dev/null
    "${as_pg[@]}" "$bin/pgbench" -h "$pgdir" -i -s "$SCALE" -q postgres 2>/dev/null
    "${as_pg[@]}" "$bin/psql" -q -h "$pgdir" -d postgres -v ON_ERROR_STOP=1 >/dev/null <<SQL
SELECT setseed(0.42);
CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz, user_id bigint, kind text,
    payload jsonb);
INSERT INTO events
SELECT g, timestamptz '2026-01-01' + g * interval '3 seconds', 1 + (g * 104729) % 300000,
       (ARRAY['view','click','cart','buy','search','login'])[1 + g % 6],
       jsonb_build_object('page', '/p/' || (g * 13) % 5000, 'ms', (random() * 900)::int,
                          'ref', md5((g * 3)::text), 'score', round(random()::numeric, 4),
                          'agent', (ARRAY['firefox','chrome','safari','curl'])[1 + g % 4])
FROM generate_series(1::bigint, $JSON_ROWS) g;
SQL
    "${as_pg[@]}" "$bin/pg_dump" -h "$pgdir" postgres > "$DUMP.tmp"
    "${as_pg[@]}" "$bin/pg_ctl" -D "$pgdir/data" -m fast stop >/dev/null
    rm -rf "$pgdir"
    mv "$DUMP.tmp" "$DUMP"
}

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

# The binary a vault tool name runs.
vault_of() {
    if [ "$1" = vault-base ]; then echo "$VAULT_BASE"; else echo "$VAULT"; fi
}

repo_init() {
    local tool=$1 repo=$2
    case $tool in
        vault|vault-base) "$(vault_of "$tool")" -r "$repo" --cache-dir "$WORK/cache-vault" -q init ;;
        restic) restic -q init -r "$repo" >/dev/null ;;
        borg) borg init -e repokey "$repo" ;;
        rustic) rustic -r "$repo" --cache-dir "$WORK/cache-rustic" init >/dev/null 2>&1 ;;
    esac
}

snapshot_dump() {
    local tool=$1 repo=$2
    case $tool in
        vault|vault-base) "$(vault_of "$tool")" -r "$repo" --cache-dir "$WORK/cache-vault" -q snapshot --stdin --name dump.sql < "$DUMP" ;;
        restic) restic -q -r "$repo" --cache-dir "$WORK/cache-restic" backup --stdin --stdin-filename dump.sql < "$DUMP" ;;
        borg) borg create --compression zstd,3 "$repo::dump-$RANDOM$RANDOM" - < "$DUMP" ;;
        rustic) rustic -r "$repo" --cache-dir "$WORK/cache-rustic" backup --stdin-filename dump.sql - < "$DUMP" >/dev/null 2>&1 ;;
    esac
}

restore_dump() {
    local tool=$1 repo=$2
    case $tool in
        vault|vault-base) "$(vault_of "$tool")" -r "$repo" --cache-dir "$WORK/cache-vault" -q dump latest > "$WORK/restored" ;;
        restic) restic -q -r "$repo" --cache-dir "$WORK/cache-restic" dump latest dump.sql > "$WORK/restored" ;;
        borg) borg extract --stdout "$repo::$(borg list --short --last 1 "$repo")" > "$WORK/restored" ;;
        rustic) rustic -r "$repo" --cache-dir "$WORK/cache-rustic" dump latest:dump.sql > "$WORK/restored" 2>/dev/null ;;
    esac
}

snapshot_tree() {
    local tool=$1 repo=$2
    case $tool in
        vault|vault-base) "$(vault_of "$tool")" -r "$repo" --cache-dir "$WORK/cache-vault" -q snapshot "$TREE" ;;
        restic) restic -q -r "$repo" --cache-dir "$WORK/cache-restic" backup "$TREE" >/dev/null ;;
        borg) borg create --compression zstd,3 "$repo::tree-$RANDOM$RANDOM" "$TREE" ;;
        rustic) rustic -r "$repo" --cache-dir "$WORK/cache-rustic" backup "$TREE" >/dev/null 2>&1 ;;
    esac
}

export -f vault_of snapshot_dump restore_dump snapshot_tree
export VAULT VAULT_BASE WORK DUMP TREE


# summarize "NAME...": a markdown table of the medians of each measure in
# $RESULTS, per tool, with every tool's ratio against vault and vault's
# against the best peer (the fastest, the smallest repository, the least
# memory), which is what issue-style goals ("half the fastest peer") read.
summarize() {
    python3 - "$RESULTS" "$TOOLS" "$1" <<'PY'
import statistics, sys, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
tools = sys.argv[2].split()
# "floor" is what no tool can beat (compare.sh), shown beside them.
peers = [t for t in tools if not t.startswith("vault") and t != "floor"]
secs, rss = collections.defaultdict(list), collections.defaultdict(list)
for name, tool, run, value, peak in rows:
    secs[(name, tool)].append(float(value)); rss[(name, tool)].append(int(peak))
names = sys.argv[3].split()
others = [t for t in tools if t != "vault"]
print("| measure | " + " | ".join(tools) + " | " + " | ".join(f"{t}/vault" for t in others) + " | vault/best peer |")
print("|---" * (2 + len(tools) + len(others)) + "|")
def row(label, med, fmt):
    if "vault" not in med or not med["vault"]:
        return
    cells = [fmt(med[t]) if t in med else "-" for t in tools]
    ratios = [f"{med[t] / med['vault']:.2f}x" if t in med else "-" for t in others]
    best = min((med[t] for t in peers if t in med), default=None)
    vs_best = f"{med['vault'] / best:.2f}" if best else "-"
    print(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + f" | {vs_best} |")
for n in names:
    med = {t: statistics.median(secs[(n, t)]) for t in tools if secs[(n, t)]}
    if not med: continue
    if n.endswith("bytes"):
        row(n, med, lambda v: f"{v:.0f} B")
        continue
    row(n, med, lambda v: f"{v:.2f} s")
    peaks = {t: statistics.median(rss[(n, t)]) / 1024 for t in tools if rss[(n, t)]}
    row(f"{n} peak RSS", peaks, lambda v: f"{v:.0f} MiB")
PY
}
