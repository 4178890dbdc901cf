//! `drill pg` restores into a scratch server it starts itself, passes on a
//! good snapshot (and `snapshots` then shows it proven), and fails with
//! exit code 9 on a failing assertion or on tampered snapshot data.

use crate::common;

use common::postgres::Postgres;
use common::Vault;
use serde_json::Value;

fn snapshot(v: &Vault, pg: &Postgres, db: &str) -> String {
    pg.vault_json(v, &["snapshot", "pg", "-d", db])["snapshot"]
        .as_str()
        .unwrap()
        .to_string()
}

fn drill(v: &Vault, pg: &Postgres, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["--json", "drill", "pg"];
    all.extend_from_slice(args);
    let out = pg.vault(v, &all).output().expect("run vault");
    (out.status.code(), common::parse_json(&out))
}

fn bench_db(pg: &Postgres) {
    pg.createdb("bench");
    pg.pgbench("bench", &["-i", "-s", "1", "-q"]);
}

#[test]
fn drill_passes_on_a_good_snapshot_and_fails_on_a_false_assertion() {
    let Some(pg) = Postgres::start() else { return };
    let v = Vault::init();
    bench_db(&pg);
    let snap = snapshot(&v, &pg, "bench");
    assert!(v.snapshots()[0]["proven"].is_null());

    let (code, report) = drill(
        &v,
        &pg,
        &[
            &snap,
            "--assert",
            "SELECT count(*) = 100000 FROM pgbench_accounts",
            "--assert",
            "SELECT sum(abalance) = 0 FROM pgbench_accounts",
        ],
    );
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["passed"], true);
    let checks = report["checks"].as_array().unwrap();
    // restore, four row counts, schema, large objects, two assertions
    assert_eq!(checks.len(), 9, "{report}");
    assert!(checks
        .iter()
        .any(|c| c["name"] == "rows bench.public.pgbench_accounts"
            && c["detail"] == "expected 100000, found 100000"));
    assert!(
        v.snapshots()[0]["proven"]["time"].is_string(),
        "snapshots does not show the drill"
    );

    let (code, report) = drill(
        &v,
        &pg,
        &[
            &snap,
            "--assert",
            "SELECT count(*) = 5 FROM pgbench_branches",
        ],
    );
    assert_eq!(code, Some(9), "{report}");
    assert_eq!(report["passed"], false);
    // A failed drill after a passing one is what `snapshots` shows: the
    // snapshot is no longer known to restore.
    let listed = &v.snapshots()[0];
    assert_eq!(listed["last_drill"]["passed"], false, "{listed}");
    assert!(listed["proven"].is_null(), "{listed}");
    let table = common::stdout(&v.ok(&["snapshots"]));
    assert!(table.contains("FAILED"), "{table}");
}

#[test]
fn drill_fails_on_tampered_data() {
    let Some(pg) = Postgres::start() else { return };
    let v = Vault::init();
    bench_db(&pg);
    let snap = snapshot(&v, &pg, "bench");
    // Flip a byte in the middle of the largest pack: table data.
    let mut packs: Vec<_> = walk(&v.repo.join("data"));
    packs.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let pack = packs.last().expect("a pack");
    let mut bytes = std::fs::read(pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(pack, bytes).unwrap();

    let (code, report) = drill(&v, &pg, &[&snap]);
    assert_eq!(code, Some(9), "{report}");
    assert_eq!(report["passed"], false);
    let failed: Vec<_> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .collect();
    assert!(
        !failed.is_empty() && failed[0]["name"].as_str().unwrap().starts_with("restore"),
        "{report}"
    );
    assert!(
        v.snapshots()[0]["proven"].is_null(),
        "a failed drill proved the snapshot"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn drill_into_a_given_server_by_uri_cleans_up_after_itself() {
    let Some(pg) = Postgres::start() else { return };
    let v = Vault::init();
    pg.createdb("small");
    pg.sql(
        "small",
        "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 42)",
    );
    let uri = format!(
        "postgresql:///small?host={}&user=postgres",
        pg.socket_dir().display()
    );
    let snap = pg.vault_json(&v, &["snapshot", "pg", "-d", &uri])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let server = format!(
        "postgresql:///postgres?host={}&user=postgres",
        pg.socket_dir().display()
    );
    let (code, report) = drill(
        &v,
        &pg,
        &[
            &snap,
            "--scratch-url",
            &server,
            "--assert",
            "SELECT max(x) = 42 FROM t",
        ],
    );
    assert_eq!(code, Some(0), "{report}");
    let left = pg.sql(
        "postgres",
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'vault_drill_%'",
    );
    assert_eq!(left, "0", "drill databases left behind");
}
