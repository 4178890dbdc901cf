//! Large tables read in parts (`snapshot pg --split-size`) against a real
//! PostgreSQL server: the parts joined are exactly the table's COPY output,
//! the table restores whole and alone, concurrent writers cannot make the
//! parts disagree about which transactions happened, and an hourly second
//! snapshot stores each changed part as deltas against the same part.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common;

use common::postgres::Postgres;
use common::{json_str, json_u64, Vault, SMALL_CHUNKS};
use vault::format::pg_parts::{self, TableParts, PG_PARTS_KEY};

/// How the snapshot `snap` read its tables in parts.
fn recorded_parts(v: &Vault, snap: &str) -> Vec<TableParts> {
    let repo = v.library();
    let (_, snapshot) = repo
        .snapshots()
        .unwrap()
        .into_iter()
        .find(|(id, _)| id.to_hex().starts_with(snap))
        .expect("the snapshot");
    let (_, bytes) = snapshot
        .meta
        .iter()
        .find(|(k, _)| k == PG_PARTS_KEY)
        .expect("a part list");
    pg_parts::decode(bytes).unwrap()
}

/// A table's rows as `COPY table TO STDOUT` writes them.
fn copy_out(pg: &Postgres, db: &str, table: &str) -> Vec<u8> {
    let out = pg
        .client("psql", db)
        .args(["-X", "-q", "-c", &format!("COPY {table} TO STDOUT")])
        .output()
        .unwrap();
    common::assert_success(&out, "COPY TO STDOUT");
    out.stdout
}

#[test]
fn a_table_read_in_parts_round_trips_byte_for_byte_and_alone() {
    let Some(pg) = Postgres::start() else { return };
    let v = Vault::init();
    pg.createdb("shop");
    // Text, JSON, numbers, NULLs and escapes; a dropped and a generated
    // column (COPY leaves generated ones out); a child table whose rows the
    // parent's parts must not include; updated rows, moved to later blocks.
    pg.sql(
        "shop",
        "CREATE TABLE events (id int PRIMARY KEY, gone int, kind text, body jsonb, \
           score numeric, note text, doubled numeric GENERATED ALWAYS AS (score * 2) STORED); \
         INSERT INTO events (id, gone, kind, body, score, note) SELECT g, g, \
           (ARRAY['view','click','buy'])[1 + g % 3], \
           jsonb_build_object('page', '/p/' || g % 997, 'ref', md5(g::text)), g * 1.5, \
           CASE WHEN g % 5 = 0 THEN E'tab\\there\\nnewline \\\\ ' || md5(g::text) END \
         FROM generate_series(1, 30000) g; \
         ALTER TABLE events DROP COLUMN gone; \
         UPDATE events SET score = score + 1 WHERE id % 50 = 3; \
         DELETE FROM events WHERE id % 97 = 0; \
         CREATE TABLE events_old () INHERITS (events); \
         INSERT INTO events_old (id, kind, score) VALUES (-1, 'old', 1); \
         CREATE TABLE small (k text); INSERT INTO small VALUES ('a'), ('b');",
    );
    let expected_rows = copy_out(&pg, "shop", "public.events");
    let sums = pg.table_checksums("shop");

    let snap = pg.vault_json(
        &v,
        &[
            "snapshot",
            "pg",
            "--dbname",
            "shop",
            "--jobs",
            "2",
            "--split-size",
            "128KiB",
        ],
    );
    let snap = json_str(&snap, "snapshot").to_string();
    let parts = recorded_parts(&v, &snap);
    assert_eq!(parts.len(), 1, "only events is large: {parts:?}");
    let events = &parts[0];
    assert_eq!(
        (events.schema.as_str(), events.table.as_str()),
        ("public", "events")
    );
    assert_eq!(events.part_blocks, 16);
    assert!(events.parts.len() >= 10, "{events:?}");
    assert_eq!(events.parts.iter().sum::<u64>(), expected_rows.len() as u64);

    // The stored file is the table's COPY output, one file as ever.
    let stored = v.ok(&["dump", &snap, "/shop/data/public.events"]).stdout;
    assert!(
        stored == expected_rows,
        "the joined parts differ from COPY's output"
    );

    pg.dropdb("shop");
    pg.vault_json(
        &v,
        &[
            "restore", "pg", &snap, "--dbname", "shop", "--create", "--jobs", "2",
        ],
    );
    // Rows, not their order: COPY FROM fills gaps in earlier pages with
    // small rows, so a restored table's physical order may differ.
    assert_eq!(pg.table_checksums("shop"), sums);

    pg.createdb("other");
    pg.vault_json(
        &v,
        &[
            "restore",
            "pg",
            &snap,
            "--dbname",
            "other",
            "--table",
            "public.events",
        ],
    );
    let other = pg.table_checksums("other");
    assert_eq!(other.len(), 1, "{other:?}");
    // Without the child table its rows stay behind.
    assert_eq!(other["public.events"], own_rows(&pg, "shop"));
}

/// `events`' own rows (not its children's) as `table_checksums` sums them.
fn own_rows(pg: &Postgres, db: &str) -> String {
    pg.sql(
        db,
        "SELECT count(*) || ':' || md5(string_agg(x::text, ',' ORDER BY x::text)) FROM ONLY events x",
    )
}

#[test]
fn concurrent_writers_cannot_make_the_parts_disagree() {
    let Some(pg) = Postgres::start() else { return };
    let v = Vault::init();
    pg.createdb("bank");
    // Every transaction moves one unit between two accounts, counts itself
    // in account 1 and adds a row: a consistent copy has the starting sum,
    // no row twice (updates move rows to other blocks, other parts), and
    // as many added rows as account 1 counted.
    pg.sql(
        "bank",
        "CREATE TABLE acc (id bigint PRIMARY KEY, balance int, n int, pad text); \
         INSERT INTO acc SELECT g, 100, 0, repeat(md5(g::text), 3) FROM generate_series(1, 20000) g; \
         CREATE SEQUENCE extra START 100001;",
    );
    let script = v.dir("work").join("txn.sql");
    std::fs::File::create(&script)
        .unwrap()
        .write_all(
            b"\\set a random(2, 20000)\n\\set b random(2, 20000)\nBEGIN;\n\
              UPDATE acc SET balance = balance - 1 WHERE id = :a;\n\
              UPDATE acc SET balance = balance + 1 WHERE id = :b;\n\
              UPDATE acc SET n = n + 1 WHERE id = 1;\n\
              INSERT INTO acc VALUES (nextval('extra'), 0, 0, 'added');\nEND;\n",
        )
        .unwrap();
    let mut writers = pg
        .client("pgbench", "bank")
        .args(["-n", "-c", "2", "-T", "120", "-f"])
        .arg(&script)
        .arg("bank")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let counted = || -> u64 {
        pg.sql("bank", "SELECT n FROM acc WHERE id = 1")
            .parse()
            .unwrap()
    };
    while counted() < 50 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let snap = pg.vault(
        &v,
        &[
            "--json",
            "snapshot",
            "pg",
            "--dbname",
            "bank",
            "--jobs",
            "2",
            "--split-size",
            "64KiB",
        ],
    );
    let out = common::output(snap);
    let after = counted();
    stop(&mut writers);
    common::assert_success(&out, "snapshot pg during writes");
    let snap = json_str(&common::parse_json(&out), "snapshot").to_string();
    assert!(recorded_parts(&v, &snap)[0].parts.len() > 10);

    pg.vault_json(
        &v,
        &[
            "restore", "pg", &snap, "--dbname", "copy", "--create", "--jobs", "2",
        ],
    );
    let facts = pg.sql(
        "copy",
        "SELECT sum(balance), count(*) - count(DISTINCT id), \
           (SELECT n FROM acc WHERE id = 1), count(*) FILTER (WHERE id > 100000) FROM acc",
    );
    let f: Vec<u64> = facts.split('|').map(|x| x.parse().unwrap()).collect();
    assert_eq!(f[0], 2_000_000, "money appeared or vanished: {facts}");
    assert_eq!(f[1], 0, "rows stored twice: {facts}");
    assert_eq!(f[2], f[3], "account 1 and the added rows disagree: {facts}");
    assert!(
        f[2] >= 50,
        "the writers' early transactions are missing: {facts}"
    );
    assert!(
        f[2] < after,
        "the writers made no transaction during the dump ({facts}, {after} after it)"
    );
}

fn stop(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn hourly_snapshots_store_each_changed_part_as_deltas_against_the_same_part() {
    let Some(pg) = Postgres::start() else { return };
    let v = Vault::init_with(SMALL_CHUNKS);
    pg.createdb("shop");
    pg.sql(
        "shop",
        "CREATE TABLE events (id int PRIMARY KEY, kind text, body jsonb, score numeric); \
         INSERT INTO events SELECT g, (ARRAY['view','click','buy'])[1 + g % 3], \
           jsonb_build_object('page', '/p/' || g % 997, 'ref', md5(g::text)), g * 1.5 \
         FROM generate_series(1, 60000) g;",
    );
    let snap = || {
        pg.vault_json(
            &v,
            &[
                "snapshot",
                "pg",
                "--dbname",
                "shop",
                "--split-size",
                "512KiB",
            ],
        )
    };
    let first = snap();
    // An hour: 1% of the rows, spread over the whole table, change (the
    // new versions land at the table's end) and new rows arrive.
    pg.sql(
        "shop",
        "UPDATE events SET score = score + 1, body = body || '{\"seen\": 1}' WHERE id % 100 = 7; \
         INSERT INTO events SELECT g, 'buy', '{}', 0 FROM generate_series(60001, 60300) g;",
    );
    let sums = pg.table_checksums("shop");
    let expected_rows = copy_out(&pg, "shop", "public.events");
    let second = snap();
    let parts = recorded_parts(&v, json_str(&second, "snapshot"));
    assert!(parts[0].parts.len() >= 8, "{parts:?}");
    let deltas = json_u64(&second, "delta_blobs");
    let added = json_u64(&second, "bytes_added");
    assert!(
        deltas >= 8,
        "every changed part found its parent part: {second}"
    );
    assert!(
        added * 3 < json_u64(&first, "bytes_added"),
        "the hour costs a fraction of the first snapshot: {second} vs {first}"
    );
    pg.dropdb("shop");
    pg.vault_json(
        &v,
        &[
            "restore",
            "pg",
            json_str(&second, "snapshot"),
            "--dbname",
            "shop",
            "--create",
        ],
    );
    assert_eq!(pg.table_checksums("shop"), sums);
    let stored = v
        .ok(&[
            "dump",
            json_str(&second, "snapshot"),
            "/shop/data/public.events",
        ])
        .stdout;
    assert!(
        stored == expected_rows,
        "the parts stored as deltas differ from COPY's output"
    );
    let report = v.json(&["check", "--read-data"]);
    assert_eq!(report["clean"], serde_json::Value::Bool(true), "{report}");
}
