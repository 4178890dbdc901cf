# Sourced by the bench scripts: what each needs before it measures anything.
# Expects ROOT (the checkout) to be set.

# The vault binary to time: $VAULT_BIN if given (a dev build, say), else a
# release build made now.
vault_binary() {
    if [ -z "${VAULT_BIN:-}" ]; then
        (cd "$ROOT" && cargo build --release --quiet)
        VAULT_BIN=$ROOT/target/release/vault
    fi
    VAULT_BIN=$(readlink -f "$VAULT_BIN")
}

# restic and borg from Debian's packages, rustic from crates.io (a long
# build), for those of them named in $TOOLS that are missing.
install_peers() {
    local tool
    for tool in restic borg; do
        if [[ " $TOOLS " == *" $tool "* ]] && ! command -v "$tool" >/dev/null; then
            echo "installing $tool from Debian's packages" >&2
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic borgbackup >/dev/null
        fi
    done
    if [[ " $TOOLS " == *" rustic "* ]] && ! command -v rustic >/dev/null; then
        echo "installing rustic from crates.io (cargo install --locked rustic-rs)" >&2
        cargo install --locked rustic-rs >/dev/null
    fi
}

# The newest installed PostgreSQL's programs, run as its own account, and a
# throwaway cluster in $CLUSTER (set by the script that starts one) reached
# over its unix socket only.
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
AS_PG=(runuser -u postgres --)
pg_start() { "${AS_PG[@]}" "$BIN/pg_ctl" -D "$CLUSTER/data" -o "-k $CLUSTER -c listen_addresses=" -l "$CLUSTER/log" -w start >/dev/null; }
pg_stop() { "${AS_PG[@]}" "$BIN/pg_ctl" -D "$CLUSTER/data" -m fast -w stop >/dev/null 2>&1 || true; }
sql() { "${AS_PG[@]}" "$BIN/psql" -h "$CLUSTER" -XAtq -v ON_ERROR_STOP=1 "$@"; }

# shop_sql CUSTOMERS ORDERS EVENTS: the SQL that fills a realistic shop
# database (text, JSON, numbers and timestamps, not pgbench's filler), the
# same for every script that needs one: deltas.sh and pg.sh size it
# differently, so their tables differ only in row counts.
shop_sql() {
    local customers=$1 orders=$2 events=$3
    cat <<SQL
SELECT setseed(0.42);
CREATE TABLE customers (id bigint PRIMARY KEY, name text, email text, city text,
    balance numeric(12,2), prefs jsonb);
INSERT INTO customers
SELECT g, initcap(md5(g::text)), 'user' || g || '@example.com',
       (ARRAY['Berlin','Lyon','Porto','Oslo','Austin','Osaka'])[1 + g % 6],
       round((random() * 10000)::numeric, 2),
       jsonb_build_object('lang', (ARRAY['de','fr','pt','no','en','ja'])[1 + g % 6],
                          'newsletter', g % 3 = 0, 'theme', md5((g * 7)::text))
FROM generate_series(1::bigint, $customers) g;
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, total numeric(12,2),
    status text, items jsonb, placed timestamptz);
INSERT INTO orders
SELECT g, 1 + (g * 7919) % $customers, round((random() * 500)::numeric, 2),
       (ARRAY['new','paid','shipped','returned'])[1 + g % 4],
       jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (g * 31) % 9973, 'qty', 1 + g % 5,
                                            'price', round((random() * 100)::numeric, 2)),
                         jsonb_build_object('sku', 'SKU-' || (g * 17) % 9973, 'qty', 1 + g % 3)),
       timestamptz '2026-01-01' + g * interval '37 seconds'
FROM generate_series(1::bigint, $orders) g;
CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz, user_id bigint, kind text,
    payload jsonb, note text);
INSERT INTO events
SELECT g, timestamptz '2026-01-01' + g * interval '3 seconds', 1 + (g * 104729) % $customers,
       (ARRAY['view','click','cart','buy','search','login'])[1 + g % 6],
       jsonb_build_object('page', '/p/' || (g * 13) % 5000, 'ms', (random() * 900)::int,
                          'ref', md5((g * 3)::text), 'score', round(random()::numeric, 4)),
       CASE WHEN g % 4 = 0 THEN 'note ' || md5(g::text) || ' ' || md5((g + 1)::text) END
FROM generate_series(1::bigint, $events) g;
VACUUM ANALYZE;
SQL
}
