//! `vault snapshot mysql` against a real MariaDB: one file per database,
//! restored with the documented pipeline (`vault dump SNAP DB.sql |
//! mariadb`) after the databases are dropped, compares equal to the
//! source (a dump of each, before and after); failures record nothing.
//! Users and grants travel with `--all` and are restored on request.

use crate::common;

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Output};

use common::db_snapshots::{assert_nothing_recorded, latest_meta};
use common::mariadb::{programs, MariaDb, Programs, ROOT_PASSWORD};
use common::*;

const SCHEMA: &str = "
CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE shop;
CREATE TABLE customers (
  id INT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  note TEXT,
  balance DECIMAL(12,2) NOT NULL DEFAULT 0,
  photo LONGBLOB,
  joined DATETIME(6) NOT NULL,
  prefs JSON
);
INSERT INTO customers
  SELECT seq, CONCAT('Kundin ', seq, ' Åsa-Ødegård 🚲'), IF(seq % 7 = 0, NULL, REPEAT('n\\'ote\\n', seq % 13)),
         seq * 1.25, IF(seq % 50 = 0, RANDOM_BYTES(1024), NULL),
         TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND,
         JSON_OBJECT('seq', seq, 'tags', JSON_ARRAY('a', 'b'))
  FROM seq_1_to_5000;
CREATE TABLE orders (
  id INT AUTO_INCREMENT PRIMARY KEY,
  customer INT NOT NULL,
  total DECIMAL(12,2) NOT NULL,
  FOREIGN KEY (customer) REFERENCES customers(id)
);
INSERT INTO orders (customer, total) SELECT 1 + seq % 5000, seq / 3 FROM seq_1_to_20000;
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(50));
CREATE TRIGGER orders_audit AFTER INSERT ON orders
  FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('order ', NEW.id));
CREATE VIEW big_spenders AS
  SELECT customer, SUM(total) AS spent FROM orders GROUP BY customer HAVING spent > 1000;
CREATE PROCEDURE add_order(c INT, t DECIMAL(12,2)) INSERT INTO orders (customer, total) VALUES (c, t);
CALL add_order(42, 9.99);
CREATE DATABASE crm;
CREATE TABLE crm.contacts (email VARCHAR(200) PRIMARY KEY, since DATE);
INSERT INTO crm.contacts SELECT CONCAT('c', seq, '@example.org'), DATE '2020-01-01' + INTERVAL seq DAY FROM shop.seq_1_to_300;
";

fn snapshot_mysql(
    v: &Vault,
    p: &Programs,
    socket: &Path,
    password: &str,
    select: &[&str],
) -> Output {
    let mut cmd = v.cmd(&["--json", "snapshot", "mysql", "--client"]);
    cmd.arg(&p.client).arg("--dump-program").arg(&p.dump);
    cmd.arg("-S").arg(socket).args(["-u", "root"]).args(select);
    cmd.env("MYSQL_PWD", password);
    output(cmd)
}

/// `vault restore mysql latest [extra]` into the server at `socket`.
fn restore_mysql(v: &Vault, p: &Programs, socket: &Path, password: &str, extra: &[&str]) -> Output {
    let mut cmd = v.cmd(&["restore", "mysql", "latest", "--client"]);
    cmd.arg(&p.client)
        .arg("-S")
        .arg(socket)
        .args(["-u", "root"]);
    cmd.args(extra).env("MYSQL_PWD", password);
    output(cmd)
}

/// The README's restore: `vault dump SNAP DB.sql | mariadb`, as one shell
/// pipeline that fails if either side fails.
fn restore_database(v: &Vault, db: &MariaDb, file: &str) {
    let mut sh = Command::new("bash");
    v.configure(&mut sh, &v.password);
    sh.arg("-c")
        .arg(r#"set -o pipefail; "$1" -r "$2" dump latest "$3" | "$4" --no-defaults --socket="$5" --user=root"#)
        .arg("restore")
        .args([
            OsString::from(BIN),
            v.repo.clone().into_os_string(),
            file.into(),
            db.client.clone().into_os_string(),
            db.socket().as_os_str().to_owned(),
        ])
        .env("MYSQL_PWD", ROOT_PASSWORD);
    let out = sh.watched_output();
    assert!(
        out.status.success(),
        "restoring {file} failed: {}",
        stderr(&out)
    );
}

#[test]
fn every_database_round_trips_through_drop_and_restore() {
    let Some(p) = programs() else {
        return;
    };
    let db = MariaDb::start(&p);
    db.sql(SCHEMA);
    let before = [db.dump("crm"), db.dump("shop")];

    let v = Vault::init();
    let out = snapshot_mysql(&v, &p, db.socket(), ROOT_PASSWORD, &["--all"]);
    assert_success(&out, "snapshot mysql --all");
    assert!(stderr(&out).is_empty(), "client chatter: {}", stderr(&out));
    let snaps = v.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(json_str(&snaps[0], "source"), "mysql");
    assert_eq!(snaps[0]["paths"], serde_json::json!(["crm", "shop"]));
    let meta = latest_meta(&v);
    assert_eq!(meta["databases"], "crm\nshop");
    assert!(meta["server_version"].contains("MariaDB"), "{meta:?}");
    let listed = stdout(&v.ok(&["ls", "latest"]));
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        ["/crm.sql", "/shop.sql", "/system"]
    );

    // Stored bytes are exactly a dump of the source.
    v.assert_dump_matches("latest", Some("crm.sql".as_ref()), &before[0][..]);
    v.assert_dump_matches("latest", Some("shop.sql".as_ref()), &before[1][..]);

    let assert_restored = |how: &str| {
        let after = [db.dump("crm"), db.dump("shop")];
        for (b, a) in before.iter().zip(&after) {
            if let Err(e) = compare_streams(&b[..], &a[..]) {
                panic!("database restored by {how} differs from its source: {e}");
            }
        }
    };
    // Every database in one command...
    db.sql("DROP DATABASE shop; DROP DATABASE crm;");
    assert_success(
        &restore_mysql(&v, &p, db.socket(), ROOT_PASSWORD, &[]),
        "restore mysql latest",
    );
    assert_restored("restore mysql");
    // ...or one by one, through the documented pipeline.
    db.sql("DROP DATABASE shop; DROP DATABASE crm;");
    restore_database(&v, &db, "crm.sql");
    restore_database(&v, &db, "shop.sql");
    assert_restored("the pipeline");
    assert_eq!(db.sql("SELECT COUNT(*) FROM shop.audit").trim(), "1");
    assert_eq!(
        db.sql("SELECT name FROM shop.customers WHERE id = 7")
            .trim(),
        "Kundin 7 Åsa-Ødegård 🚲"
    );
}

#[test]
fn refused_login_unknown_database_and_missing_server_record_nothing() {
    let Some(p) = programs() else {
        return;
    };
    let db = MariaDb::start(&p);
    db.sql("CREATE DATABASE shop");
    let v = Vault::init();

    let out = snapshot_mysql(&v, &p, db.socket(), "wrong", &["--all"]);
    assert_nothing_recorded(&v, &out, 8, "wrong password", "Access denied");

    let out = snapshot_mysql(&v, &p, db.socket(), ROOT_PASSWORD, &["--database", "nope"]);
    assert_nothing_recorded(&v, &out, 2, "unknown database", "'nope'");

    let socket = db.socket().to_path_buf();
    drop(db);
    let out = snapshot_mysql(&v, &p, &socket, ROOT_PASSWORD, &["--all"]);
    assert_nothing_recorded(&v, &out, 8, "server down", "Can't connect");
}

#[test]
fn restore_into_a_refusing_server_fails_naming_the_database() {
    let Some(p) = programs() else {
        return;
    };
    let db = MariaDb::start(&p);
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.t (x INT); INSERT INTO shop.t VALUES (1)");
    let v = Vault::init();
    assert_success(
        &snapshot_mysql(&v, &p, db.socket(), ROOT_PASSWORD, &["--database", "shop"]),
        "snapshot mysql --database shop",
    );
    let restore =
        |password: &str, extra: &[&str]| restore_mysql(&v, &p, db.socket(), password, extra);
    let out = restore("wrong", &[]);
    assert_code(&out, 8, "restore mysql with a wrong password");
    let line = one_line_error(&out);
    assert!(
        line.contains("restoring database shop") && line.contains("Access denied"),
        "{line}"
    );
    let out = restore(ROOT_PASSWORD, &["--database", "crm"]);
    assert_code(&out, 2, "restore mysql of a database not in the snapshot");
    assert!(one_line_error(&out).contains("the snapshot has no database 'crm'"));
    let out = restore(ROOT_PASSWORD, &["--dry-run"]);
    assert_success(&out, "restore mysql --dry-run");
    assert!(stdout(&out).contains("would restore database shop from shop.sql"));
}

const USERS: &str = "
CREATE DATABASE shop;
CREATE TABLE shop.t (x INT);
CREATE ROLE auditor;
GRANT SELECT ON shop.* TO auditor;
CREATE USER 'clerk'@'%' IDENTIFIED BY 'clerk secret';
GRANT SELECT, INSERT ON shop.* TO 'clerk'@'%';
GRANT UPDATE (x) ON shop.t TO 'clerk'@'%';
GRANT auditor TO 'clerk'@'%';
";

fn grants(db: &MariaDb) -> String {
    db.sql("SHOW GRANTS FOR 'clerk'@'%'; SHOW GRANTS FOR auditor")
}

fn has_clerk(db: &MariaDb) -> bool {
    db.sql("SELECT COUNT(*) FROM mysql.user WHERE user = 'clerk'")
        .trim()
        == "1"
}

#[test]
fn users_and_grants_survive_a_round_trip_only_when_asked() {
    let Some(p) = programs() else {
        return;
    };
    let source = MariaDb::start(&p);
    source.sql(USERS);
    let before = grants(&source);
    assert!(
        before.contains("GRANT SELECT, INSERT ON `shop`.*"),
        "{before}"
    );
    let v = Vault::init();
    assert_success(
        &snapshot_mysql(&v, &p, source.socket(), ROOT_PASSWORD, &["--all"]),
        "snapshot mysql --all",
    );
    drop(source);

    let target = MariaDb::start(&p);
    let restore = |extra: &[&str]| restore_mysql(&v, &p, target.socket(), ROOT_PASSWORD, extra);
    let out = restore(&["--users", "--dry-run"]);
    assert_success(&out, "restore mysql --users --dry-run");
    assert!(stdout(&out).contains("would restore users and grants from system/users.sql"));
    assert!(!has_clerk(&target), "a dry run created users");

    assert_success(&restore(&[]), "restore mysql without --users");
    assert_eq!(target.sql("SHOW TABLES FROM shop").trim(), "t");
    assert!(!has_clerk(&target), "users restored without --users");

    assert_success(&restore(&["--users"]), "restore mysql --users");
    assert!(has_clerk(&target), "--users did not create the user");
    assert_eq!(grants(&target), before);
    // root exists on both servers: its CREATE USER must not stop the restore.
    assert_eq!(target.sql("SELECT 1").trim(), "1");
    let login = target
        .client_command("clerk secret")
        .args(["--user=clerk", "--batch", "--skip-column-names"])
        .arg("--execute=SELECT COUNT(*) FROM shop.t")
        .watched_output();
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
}

#[test]
fn users_left_out_are_refused_on_restore_not_skipped() {
    let Some(p) = programs() else {
        return;
    };
    let db = MariaDb::start(&p);
    db.sql("CREATE DATABASE shop");
    let v = Vault::init();
    assert_success(
        &snapshot_mysql(&v, &p, db.socket(), ROOT_PASSWORD, &["--all", "--no-users"]),
        "snapshot mysql --all --no-users",
    );
    assert_eq!(stdout(&v.ok(&["ls", "latest"])).trim(), "/shop.sql");
    let out = restore_mysql(&v, &p, db.socket(), ROOT_PASSWORD, &["--users"]);
    assert_code(&out, 2, "restore mysql --users of a snapshot without users");
    assert!(one_line_error(&out).contains("this snapshot holds no users"));
}
