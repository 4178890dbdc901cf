//! `vault find` and `vault diff` on snapshots with known changes between
//! them: exactly the expected entries, no more.

use crate::common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use common::*;
use serde_json::Value;

fn abs(src: &Path, rel: &str) -> String {
    format!("{}/{rel}", src.display())
}

/// Three snapshots of one folder: the second changes it in every way a
/// diff reports, the third only adds a table.
fn three_snapshots(v: &Vault) -> (std::path::PathBuf, Vec<String>) {
    let src = v.dir("src");
    write(&src.join("keep.txt"), b"unchanged");
    write(&src.join("grows.dat"), &[1u8; 1000]);
    write(&src.join("chmod.sh"), b"#!/bin/sh\n");
    write(&src.join("old/inside.log"), b"old log");
    write(&src.join("app/today.log"), b"log 1");
    write(&src.join("db/users.table"), &[7u8; 5000]);
    write(&src.join("db/orders.table"), &[8u8; 3000]);
    write(&src.join("becomes_dir"), b"a file for now");
    let mut ids = Vec::new();
    let snap = |v: &Vault| json_str(&v.snapshot_paths(&[&src]), "snapshot").to_string();
    ids.push(snap(v));

    write(&src.join("grows.dat"), &[1u8; 1500]);
    chmod(&src.join("chmod.sh"), 0o755);
    fs::remove_dir_all(src.join("old")).unwrap();
    write(&src.join("new/fresh.log"), b"fresh");
    write(&src.join("db/orders.table"), &[9u8; 3500]);
    fs::remove_file(src.join("becomes_dir")).unwrap();
    write(&src.join("becomes_dir/x"), b"x");
    ids.push(snap(v));

    write(&src.join("db/items.table"), &[3u8; 100]);
    ids.push(snap(v));
    (src, ids)
}

fn changes(v: &Value) -> BTreeSet<(String, String)> {
    v["changes"]
        .as_array()
        .expect("changes array")
        .iter()
        .map(|c| {
            (
                json_str(c, "path").to_string(),
                json_str(c, "change").to_string(),
            )
        })
        .collect()
}

fn set(src: &Path, items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(p, c)| (abs(src, p), c.to_string()))
        .collect()
}

#[test]
fn diff_reports_exactly_the_known_changes() {
    let v = Vault::init();
    let (src, ids) = three_snapshots(&v);
    let d = v.json(&["diff", &ids[0], &ids[1]]);
    // The folder holding everything gets new mtimes but no entry of its own.
    let expected = set(
        &src,
        &[
            ("grows.dat", "modified"),
            ("chmod.sh", "modified"),
            ("old", "removed"),
            ("old/inside.log", "removed"),
            ("new", "added"),
            ("new/fresh.log", "added"),
            ("db/orders.table", "modified"),
            ("becomes_dir", "type changed"),
            ("becomes_dir/x", "added"),
        ],
    );
    assert_eq!(changes(&d), expected);
    let by_path = |p: &str| {
        d["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| json_str(c, "path") == abs(&src, p))
            .unwrap()
            .clone()
    };
    let grows = by_path("grows.dat");
    assert_eq!(json_u64(&grows, "size_before"), 1000);
    assert_eq!(json_u64(&grows, "size_after"), 1500);
    assert_eq!(grows["size_delta"], 500);
    let chmod = by_path("chmod.sh");
    assert_eq!(chmod["content_changed"], false);
    assert_eq!(chmod["metadata_changed"], true);

    // Limited to the database folder: which tables changed, by how much.
    let db = v.json(&["diff", &ids[1], &ids[2], &abs(&src, "db")]);
    assert_eq!(changes(&db), set(&src, &[("db/items.table", "added")]));
    assert_eq!(db["summary"]["size_delta"], 100);
    let db = v.json(&["diff", &ids[0], &ids[2], &abs(&src, "db")]);
    assert_eq!(
        changes(&db),
        set(
            &src,
            &[("db/items.table", "added"), ("db/orders.table", "modified")]
        )
    );
    assert_eq!(db["summary"]["size_delta"], 100 + 500);

    // Same snapshot: nothing. Human output names the change and the sizes.
    assert!(changes(&v.json(&["diff", &ids[1], &ids[1]])).is_empty());
    let text = stdout(&v.ok(&["diff", &ids[0], &ids[1]]));
    assert!(
        text.contains(&format!(
            "M  {}  1000 B -> 1.5 KiB (+500 B)",
            abs(&src, "grows.dat")
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("-  {}", abs(&src, "old/inside.log"))),
        "{text}"
    );

    // A path in neither snapshot is an error, not an empty diff.
    let out = v.run(&["diff", &ids[0], &ids[1], "/no/such/path"]);
    assert_code(&out, 1, "diff of a missing path");
    one_line_error(&out);
}

fn found(v: &Value) -> Vec<(String, BTreeSet<String>)> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| {
            let paths = s["matches"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| json_str(m, "path").to_string())
                .collect();
            (json_str(s, "snapshot").to_string(), paths)
        })
        .collect()
}

#[test]
fn find_names_the_snapshots_holding_matching_paths() {
    let v = Vault::init();
    let (src, ids) = three_snapshots(&v);
    let paths =
        |items: &[&str]| -> BTreeSet<String> { items.iter().map(|p| abs(&src, p)).collect() };

    let logs = v.json(&["find", "*.log"]);
    assert_eq!(
        found(&logs),
        vec![
            (ids[0].clone(), paths(&["app/today.log", "old/inside.log"])),
            (ids[1].clone(), paths(&["app/today.log", "new/fresh.log"])),
            (ids[2].clone(), paths(&["app/today.log", "new/fresh.log"])),
        ]
    );
    let m = &logs[0]["matches"][0];
    assert_eq!(json_u64(m, "size"), 5);
    assert!(json_str(m, "mtime").ends_with('Z'));

    // Only the snapshots that still had it.
    let old = v.json(&["find", "inside.log"]);
    assert_eq!(
        found(&old),
        vec![(ids[0].clone(), paths(&["old/inside.log"]))]
    );

    // A pattern with a slash matches whole paths; --newest narrows.
    let pattern = format!("{}/db/*.table", src.display());
    let tables = v.json(&["find", &pattern, "--newest", "1"]);
    assert_eq!(
        found(&tables),
        vec![(
            ids[2].clone(),
            paths(&["db/items.table", "db/orders.table", "db/users.table"])
        )]
    );
    let chosen = v.json(&["find", "*.table", "--snapshot", &ids[0][..10]]);
    assert_eq!(
        found(&chosen),
        vec![(
            ids[0].clone(),
            paths(&["db/orders.table", "db/users.table"])
        )]
    );

    // No match is an empty answer, not an error; a bad glob is a usage error.
    assert_eq!(found(&v.json(&["find", "*.nothing"])), vec![]);
    let out = v.run(&["find", "a[b"]);
    assert_code(&out, 2, "find with a bad glob");
    one_line_error(&out);
    let text = stdout(&v.ok(&["find", "fresh.log"]));
    assert!(text.contains("2 matches in 2 of 3 snapshots"), "{text}");
}
