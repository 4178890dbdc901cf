# Shared by the benchmark scripts (sourced, not run): the pg_dump data set.
# make_dump writes a plain pg_dump of a pgbench -s $SCALE database (about
# 560 MiB at the default scale) to $DUMP, once, with a throwaway PostgreSQL.
# Needs BENCH_DIR, SCALE and DUMP set by the caller.

make_dump() {
    [ -s "$DUMP" ] && return
    local bin; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    local pgdir; pgdir=$(mktemp -d "$BENCH_DIR/pg.XXXX")
    chown postgres "$pgdir"
    local as_pg=(runuser -u postgres --)
    "${as_pg[@]}" "$bin/initdb" -D "$pgdir/data" -A trust >/dev/null
    "${as_pg[@]}" "$bin/pg_ctl" -D "$pgdir/data" -o "-k $pgdir -h ''" -l "$pgdir/log" -w start >/dev/null
    "${as_pg[@]}" "$bin/pgbench" -h "$pgdir" -i -s "$SCALE" -q postgres 2>/dev/null
    "${as_pg[@]}" "$bin/pg_dump" -h "$pgdir" postgres > "$DUMP.tmp"
    "${as_pg[@]}" "$bin/pg_ctl" -D "$pgdir/data" -m fast stop >/dev/null
    rm -rf "$pgdir"
    mv "$DUMP.tmp" "$DUMP"
}
