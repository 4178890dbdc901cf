//! Roles travel with a per-database snapshot: a database owned by and
//! granted to roles the target server lacks restores and drills there, and
//! a restore that fails leaves nothing behind that would block the retry.

use crate::common;

use common::postgres::Postgres;
use common::*;

fn owned_by_appuser(pg: &Postgres) {
    pg.sql(
        "postgres",
        "CREATE ROLE appuser LOGIN CREATEDB; CREATE ROLE reader",
    );
    pg.sql("postgres", "CREATE DATABASE app OWNER appuser");
    pg.sql(
        "app",
        "CREATE TABLE items (id int PRIMARY KEY, name text); \
         INSERT INTO items SELECT g, 'i' || g FROM generate_series(1, 50) g; \
         ALTER TABLE items OWNER TO appuser; \
         GRANT SELECT ON items TO reader",
    );
}

#[test]
fn restore_and_drill_onto_a_fresh_server_create_the_roles_the_database_needs() {
    let Some(source) = Postgres::start() else {
        return;
    };
    let Some(fresh) = Postgres::start() else {
        return;
    };
    let v = Vault::init();
    owned_by_appuser(&source);
    let snap = source.vault_json(&v, &["snapshot", "pg", "--dbname", "app"])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();

    // Without the roles the restore fails, and the database it created is
    // gone again.
    let without = fresh
        .vault(
            &v,
            &[
                "restore",
                "pg",
                &snap,
                "--dbname",
                "app",
                "--create",
                "--no-roles",
            ],
        )
        .output()
        .unwrap();
    assert_ne!(code(&without), 0);
    assert!(stderr(&without).contains("appuser"), "{}", stderr(&without));
    assert_eq!(
        fresh.sql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'app'"
        ),
        "0"
    );

    // The retry with --create works, and makes the roles it needs.
    fresh.vault_json(&v, &["restore", "pg", &snap, "--dbname", "app", "--create"]);
    assert_eq!(
        fresh.sql(
            "app",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'"
        ),
        "appuser"
    );
    assert_eq!(
        fresh.sql(
            "app",
            "SELECT tableowner FROM pg_tables WHERE tablename = 'items'"
        ),
        "appuser"
    );
    assert_eq!(
        fresh.sql(
            "app",
            "SELECT has_table_privilege('reader', 'items', 'SELECT')"
        ),
        "t"
    );
    assert_eq!(
        fresh.sql(
            "postgres",
            "SELECT rolcanlogin AND rolcreatedb FROM pg_roles WHERE rolname = 'appuser'"
        ),
        "t"
    );
    assert_eq!(fresh.table_checksums("app"), source.table_checksums("app"));

    // A drill's scratch server has none of the roles either.
    let drill = source.vault_json(&v, &["drill", "pg", &snap]);
    assert_eq!(drill["passed"], true, "{drill}");
}
