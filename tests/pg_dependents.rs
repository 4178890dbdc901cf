//! `restore pg --table X --clean` replaces X and nothing else: views built
//! on it and foreign keys of other tables pointing at it are listed by the
//! dry-run, dropped by name and re-created from the snapshot; one the
//! snapshot cannot re-create makes the restore refuse before anything is
//! dropped.

use crate::common;

use common::postgres::Postgres;
use common::*;

#[test]
fn table_restore_with_clean_keeps_other_tables_views_and_foreign_keys() {
    let Some(pg) = Postgres::start() else { return };
    let v = Vault::init();
    pg.createdb("shop");
    pg.sql(
        "shop",
        "CREATE TABLE people (id int PRIMARY KEY, name text); \
         INSERT INTO people SELECT g, 'p' || g FROM generate_series(1, 20) g; \
         CREATE TABLE orders (id int PRIMARY KEY, person int REFERENCES people(id)); \
         INSERT INTO orders SELECT g, g FROM generate_series(1, 10) g; \
         CREATE VIEW named AS SELECT id, name FROM people WHERE name IS NOT NULL; \
         CREATE MATERIALIZED VIEW named_count AS SELECT count(*) AS n FROM named; \
         GRANT SELECT ON named TO PUBLIC",
    );
    let before = pg.pg_dump("shop");
    let snap = pg.vault_json(&v, &["snapshot", "pg", "--dbname", "shop"])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    pg.sql("shop", "UPDATE people SET name = 'changed'");

    let args = [
        "restore", "pg", &snap, "--dbname", "shop", "--table", "people", "--clean",
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let plan = stdout(&pg.vault(&v, &dry).output().unwrap());
    for named in [
        "view public.named",
        "materialized view public.named_count",
        "foreign key orders_person_fkey on public.orders",
    ] {
        assert!(plan.contains(named), "{named} missing from:\n{plan}");
    }
    pg.vault_json(&v, &args);
    Postgres::assert_same_dump(&before, &pg.pg_dump("shop"));
    assert_eq!(pg.sql("shop", "SELECT n FROM named_count"), "20");

    // A view made after the snapshot cannot be re-created from it.
    pg.sql("shop", "CREATE VIEW newer AS SELECT id FROM people");
    let refused = pg.vault(&v, &args).output().unwrap();
    assert_code(&refused, 2, "restore over a view the snapshot lacks");
    assert!(
        stderr(&refused).contains("view public.newer"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(pg.sql("shop", "SELECT count(*) FROM newer"), "20");
    assert_eq!(pg.sql("shop", "SELECT count(*) FROM orders"), "10");
}
