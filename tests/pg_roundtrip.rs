//! `snapshot pg` and `restore pg` against a real PostgreSQL server: a
//! pgbench database with JSON and large text/bytea tables survives a
//! snapshot, a drop and a restore byte for byte; single tables restore into
//! another database; an hourly second snapshot adds little.

use crate::common;

use common::postgres::Postgres;
use common::Vault;

/// pgbench tables plus JSON, large text and bytea values, and a table whose
/// name needs escaping.
fn fill(pg: &Postgres, db: &str) {
    pg.createdb(db);
    pg.pgbench(db, &["-i", "-s", "2", "-q"]);
    pg.sql(
        db,
        "CREATE TABLE docs (id serial PRIMARY KEY, body jsonb NOT NULL); \
         INSERT INTO docs (body) SELECT jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g % 7), 'note', E'line\\nbreak\\ttab') FROM generate_series(1, 5000) g; \
         CREATE INDEX docs_n ON docs ((body->>'n')); \
         CREATE TABLE blobs (id int PRIMARY KEY, txt text, bin bytea); \
         INSERT INTO blobs SELECT g, repeat(md5(g::text), 2000), decode(repeat(md5((g * 7)::text), 3000), 'hex') FROM generate_series(1, 60) g; \
         CREATE SCHEMA \"odd.schema\"; \
         CREATE TABLE \"odd.schema\".\"we/ird \"\"name\"\"\" (v text); \
         INSERT INTO \"odd.schema\".\"we/ird \"\"name\"\"\" VALUES ('x'), (NULL), (E'back\\\\slash');",
    );
}

#[test]
fn database_round_trips_and_single_tables_restore_elsewhere() {
    let Some(pg) = Postgres::start() else { return };
    let v = Vault::init();
    fill(&pg, "shop");
    let before_dump = pg.pg_dump("shop");
    let before_sums = pg.table_checksums("shop");

    let first = pg.vault_json(&v, &["snapshot", "pg", "--dbname", "shop", "--jobs", "2"]);
    let snap = first["snapshot"].as_str().unwrap().to_string();

    // Browsable: one folder per database, a file per table.
    let ls = String::from_utf8(v.ok(&["ls", &snap, "/shop/data"]).stdout).unwrap();
    for f in [
        "public.pgbench_accounts",
        "public.docs",
        "public.blobs",
        "odd%2Eschema.we%2Fird%20%22name%22",
    ] {
        assert!(ls.contains(f), "{f} missing from:\n{ls}");
    }

    pg.dropdb("shop");
    let restored = pg.vault_json(
        &v,
        &[
            "restore", "pg", &snap, "--dbname", "shop", "--create", "--jobs", "2",
        ],
    );
    assert_eq!(
        restored["tables"].as_array().unwrap().len(),
        7,
        "{restored}"
    );
    assert_eq!(pg.table_checksums("shop"), before_sums);
    Postgres::assert_same_dump(&before_dump, &pg.pg_dump("shop"));
    // The serial sequence continues where it was.
    assert_eq!(pg.sql("shop", "SELECT nextval('docs_id_seq')"), "5001");

    // A non-empty target is refused; --clean replaces it.
    let refused = pg
        .vault(&v, &["restore", "pg", &snap, "--dbname", "shop"])
        .output()
        .unwrap();
    assert_eq!(
        refused.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not empty"));
    pg.sql("shop", "DELETE FROM docs WHERE id < 100");
    pg.vault_json(&v, &["restore", "pg", &snap, "--dbname", "shop", "--clean"]);
    assert_eq!(pg.table_checksums("shop"), before_sums);

    // One table, with its index and sequence, into another database.
    pg.createdb("other");
    let docs_into_other = [
        "restore",
        "pg",
        &snap,
        "--dbname",
        "other",
        "--table",
        "public.docs",
    ];
    pg.vault_json(&v, &docs_into_other);
    let other = pg.table_checksums("other");
    assert_eq!(other.len(), 1, "{other:?}");
    assert_eq!(other["public.docs"], before_sums["public.docs"]);
    assert_eq!(
        pg.sql(
            "other",
            "SELECT indexname FROM pg_indexes WHERE tablename = 'docs' ORDER BY 1"
        ),
        "docs_n\ndocs_pkey"
    );
    assert_eq!(pg.sql("other", "SELECT nextval('docs_id_seq')"), "5001");
    // Again without --clean is refused, with it replaces.
    let again = pg.vault(&v, &docs_into_other).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    pg.vault_json(
        &v,
        &[
            "restore", "pg", &snap, "--dbname", "other", "--table", "docs", "--clean",
        ],
    );
    assert_eq!(
        pg.table_checksums("other")["public.docs"],
        before_sums["public.docs"]
    );

    // The hourly snapshot after a few thousand transactions: pgbench
    // updates random rows all over pgbench_accounts, so most of its chunks
    // change; the other tables are stored again for free.
    pg.pgbench("shop", &["-n", "-t", "2000", "-c", "2"]);
    let second = pg.vault_json(&v, &["snapshot", "pg", "--dbname", "shop"]);
    let read = second["bytes_read"].as_u64().unwrap();
    let raw_added = second["raw_bytes_added"].as_u64().unwrap();
    let added = second["bytes_added"].as_u64().unwrap();
    eprintln!(
        "second snapshot: read {read} bytes, {raw_added} new before compression, {added} stored (first stored {})",
        first["bytes_added"]
    );
    assert!(added > 0, "pgbench changed rows, yet nothing was added");
    // The untouched blobs table alone is 60 rows of 64 KB text and 96 KB
    // of bytea hex: over 9 MB that must not be stored again.
    assert!(
        raw_added + 9_000_000 < read,
        "{raw_added} of {read} bytes stored again"
    );
    // Nothing changed: nothing but the folder listings is new.
    let third = pg.vault_json(&v, &["snapshot", "pg", "--dbname", "shop"]);
    assert!(
        third["raw_bytes_added"].as_u64().unwrap() < 16 * 1024,
        "{third}"
    );
}

#[test]
fn all_databases_with_globals_restore_one_by_one() {
    let Some(pg) = Postgres::start() else { return };
    let v = Vault::init();
    pg.sql("postgres", "CREATE ROLE reporter LOGIN");
    for (db, n) in [("alpha", 10), ("beta", 20)] {
        pg.createdb(db);
        pg.sql(
            db,
            &format!("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, {n})"),
        );
    }
    let snap = pg.vault_json(&v, &["snapshot", "pg", "--all"]);
    let snap = snap["snapshot"].as_str().unwrap();
    let globals = String::from_utf8(v.ok(&["dump", snap, "/globals.sql"]).stdout).unwrap();
    assert!(globals.contains("CREATE ROLE reporter"), "{globals}");
    let listed = &v.snapshots()[0]["paths"];
    assert_eq!(listed, &serde_json::json!(["alpha", "beta", "postgres"]));

    // Several databases: the one to restore must be named.
    let ambiguous = pg
        .vault(&v, &["restore", "pg", snap, "-d", "x", "--create"])
        .output()
        .unwrap();
    assert_eq!(ambiguous.status.code(), Some(2));
    let plan = pg.vault_json(
        &v,
        &[
            "restore",
            "pg",
            snap,
            "-d",
            "beta2",
            "--from",
            "beta",
            "--create",
            "--dry-run",
        ],
    );
    assert_eq!(plan["tables"][0]["rows"], 20);
    assert!(
        !pg.sql("postgres", "SELECT datname FROM pg_database")
            .contains("beta2"),
        "--dry-run created the database"
    );
    pg.vault_json(
        &v,
        &[
            "restore", "pg", snap, "-d", "beta2", "--from", "beta", "--create",
        ],
    );
    assert_eq!(pg.sql("beta2", "SELECT sum(x) FROM t"), "210");
}

/// `cmd` run on a terminal (through `script`), so the progress bar shows;
/// everything it wrote there.
fn on_a_terminal(pg: &Postgres, v: &Vault, args: &[&str]) -> String {
    let line = std::iter::once(common::BIN)
        .chain(["-r", v.repo.to_str().unwrap()])
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut c = std::process::Command::new("script");
    v.configure(&mut c, &v.password);
    c.envs(pg.env()).args(["-qec", &line, "/dev/null"]);
    let out = c.output().unwrap();
    common::assert_success(&out, &line);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn progress_names_the_table_being_dumped_and_the_restore_phase() {
    let Some(pg) = Postgres::start() else { return };
    let v = Vault::init();
    pg.createdb("big");
    // Big enough that dumping it and indexing it each outlast a refresh.
    pg.sql(
        "big",
        "CREATE TABLE events AS SELECT g AS id, md5(g::text) AS body \
         FROM generate_series(1, 1500000) g; \
         ALTER TABLE events ADD PRIMARY KEY (id); \
         CREATE INDEX events_body ON events (body);",
    );
    let shown = on_a_terminal(&pg, &v, &["snapshot", "pg", "--dbname", "big"]);
    assert!(shown.contains(r#"table "public"."events""#), "{shown}");

    pg.dropdb("big");
    let shown = on_a_terminal(
        &pg,
        &v,
        &["restore", "pg", "latest", "--dbname", "big", "--create"],
    );
    assert!(
        shown.contains("building indexes and constraints"),
        "{shown}"
    );
}
