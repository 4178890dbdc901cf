//! A folder chain far deeper than any real tree (which any local user can
//! plant in a backed-up folder) goes through every command that walks
//! trees: snapshot, ls, find, diff, check, copy, restore. It used to
//! overflow the stack and abort the run.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

/// Deep enough to abort every walker before (600 levels did), shallow
/// enough that the chain's path fits PATH_MAX under a restore target.
const LEVELS: usize = 1500;

fn chain(root: &Path) -> PathBuf {
    let mut deepest = root.to_path_buf();
    for _ in 0..LEVELS {
        deepest.push("d");
    }
    deepest
}

#[test]
fn a_folder_chain_1500_levels_deep_snapshots_lists_checks_copies_and_restores() {
    let v = Vault::init();
    let src = v.dir("src");
    let deepest = chain(&src);
    fs::create_dir_all(&deepest).unwrap();
    fs::write(deepest.join("leaf.txt"), b"at the bottom\n").unwrap();
    v.snapshot_paths(&[&src]);
    fs::write(deepest.join("leaf.txt"), b"changed at the bottom\n").unwrap();
    v.snapshot_paths(&[&src]);
    let snaps = v.snapshots();
    let (first, second) = (json_str(&snaps[0], "id"), json_str(&snaps[1], "id"));

    let ls = v.ok(&["ls", "-R", "latest"]);
    let listing = String::from_utf8_lossy(&ls.stdout);
    assert!(
        listing.lines().any(|l| l.ends_with("/d/leaf.txt")),
        "ls -R lists the leaf"
    );

    let found = v.ok(&["find", "leaf.txt"]);
    assert!(String::from_utf8_lossy(&found.stdout).contains("leaf.txt"));

    let diff = v.ok(&["diff", first, second]);
    let diff = String::from_utf8_lossy(&diff.stdout);
    assert!(diff.contains("leaf.txt"), "{diff}");

    v.ok(&["check", "--read-data"]);

    let other = Vault::init();
    v.ok(&["copy", "--to", other.repo.to_str().unwrap()]);
    assert_eq!(other.snapshots().len(), 2);
    other.ok(&["check", "--read-data"]);

    for (repo, name) in [(&v, "restored"), (&other, "restored-copy")] {
        let target = v.dir(name);
        repo.restore("latest", &target, &[]);
        let restored = chain(&target.join(src.strip_prefix("/").unwrap()));
        assert_eq!(
            fs::read(restored.join("leaf.txt")).unwrap(),
            b"changed at the bottom\n"
        );
    }
}
