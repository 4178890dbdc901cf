//! `restore --dry-run` prints what the restore would do and changes
//! nothing; the restore then does what the plan said.

use crate::common;

use std::fs;
use std::os::unix::fs::symlink;

use common::*;
use serde_json::Value;

/// Every name under `dir` with what it is: bytes, a link target, a folder.
fn state(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let what = if m.file_type().is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                todo.push(p.clone());
                "dir".to_string()
            } else {
                String::from_utf8_lossy(&fs::read(&p).unwrap()).into_owned()
            };
            out.push((p.strip_prefix(dir).unwrap().display().to_string(), what));
        }
    }
    out.sort();
    out
}

fn actions(plan: &Value, base: &std::path::Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = plan["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let path = std::path::PathBuf::from(e["path"].as_str().unwrap());
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            let mut action = e["action"].as_str().unwrap().to_string();
            if let Some(r) = e["replaces"].as_str() {
                action = format!("{action} {r}");
            }
            (rel, action)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn restore_dry_run_lists_the_plan_and_changes_nothing() {
    let v = Vault::init();
    let outside = v.dir("outside");
    let src = v.dir("src");
    write(&src.join("a/same.txt"), b"from the snapshot\n");
    write(&src.join("a/new.txt"), b"new\n");
    write(&src.join("b/inner.txt"), b"inner\n");
    let id = json_str(&v.snapshot_paths(&[&src]), "snapshot").to_string();
    let spec = format!("{id}:{}", src.display());

    let target = v.dir("target");
    write(&target.join("a/same.txt"), b"local edit\n");
    write(&target.join("a/extra.txt"), b"not in the snapshot\n");
    symlink(&outside, target.join("b")).unwrap();
    let before = state(&target);

    let plan = v.json(&["restore", &spec, "--target", target.to_str().unwrap(), "-n"]);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(
        actions(&plan, &target),
        vec![
            ("a".into(), "keep".into()),
            ("a/new.txt".into(), "create".into()),
            ("a/same.txt".into(), "overwrite".into()),
            ("b".into(), "replace symlink".into()),
            ("b/inner.txt".into(), "create".into()),
        ]
    );
    assert_eq!(
        (json_u64(&plan, "created"), json_u64(&plan, "overwritten")),
        (2, 1)
    );
    assert_eq!(json_u64(&plan, "replaced"), 1);
    assert_eq!(state(&target), before, "a dry run changed the target");

    let human = v.ok(&[
        "restore",
        &spec,
        "--target",
        target.to_str().unwrap(),
        "--dry-run",
    ]);
    let text = stdout(&human);
    assert!(
        text.contains("overwrite") && text.contains("a/same.txt"),
        "{text}"
    );
    assert!(
        text.contains("replace symlink") && text.contains("dry run: nothing changed"),
        "{text}"
    );
    assert_eq!(state(&target), before, "a dry run changed the target");

    let missing = v.path().join("not-yet");
    let plan = v.json(&[
        "restore",
        &spec,
        "--target",
        missing.to_str().unwrap(),
        "-n",
    ]);
    assert_eq!(json_u64(&plan, "created"), 5);
    assert!(!missing.exists(), "a dry run created the target");

    // The restore does what the plan said, and leaves what it did not name.
    v.restore(&spec, &target, &[]);
    assert_eq!(
        fs::read(target.join("a/same.txt")).unwrap(),
        b"from the snapshot\n"
    );
    assert_eq!(fs::read(target.join("a/new.txt")).unwrap(), b"new\n");
    assert_eq!(
        fs::read(target.join("a/extra.txt")).unwrap(),
        b"not in the snapshot\n"
    );
    assert!(fs::symlink_metadata(target.join("b")).unwrap().is_dir());
    assert_eq!(fs::read(target.join("b/inner.txt")).unwrap(), b"inner\n");
    assert!(listing(&outside).is_empty());
}
