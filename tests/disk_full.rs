//! A full disk, under the repository or under a restore's target: one line
//! naming the place and "no space left", exit 12, and a restore that stops
//! at the first full write instead of failing every file after it.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A small tmpfs, unmounted when dropped. Mounting needs root: without it
/// the tests say so and skip, unless services are required.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Option<SmallDisk> {
        if !is_root() {
            assert!(
                std::env::var_os("VAULT_REQUIRE_SERVICES").is_none(),
                "disk-full tests need root to mount a tmpfs"
            );
            eprintln!("SKIPPED: disk-full tests need root to mount a tmpfs");
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs failed");
        Some(SmallDisk {
            path: at.to_path_buf(),
        })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

#[test]
fn full_repository_disk_is_one_line_naming_the_repository() {
    let v = Vault::empty();
    let Some(_disk) = SmallDisk::mount(&v.repo, "3m") else {
        return;
    };
    assert_success(&v.init_here(&[]), "init on the small disk");
    let src = v.dir("src");
    write_gen(&src.join("big"), Gen::random(7, 8 * MIB));
    let out = v.run(&["snapshot", "files", src.to_str().unwrap()]);
    assert_code(&out, 12, "snapshot onto a full repository disk");
    let line = one_line_error(&out);
    assert!(line.contains("no space left"), "{line}");
    assert!(line.contains(v.repo.to_str().unwrap()), "{line}");
    assert!(!line.contains("Unexpected"), "raw library text: {line}");
    assert!(v.snapshots().is_empty(), "a snapshot was recorded");
}

#[test]
fn restore_onto_full_disk_stops_at_first_enospc() {
    let v = Vault::init();
    let src = v.dir("src");
    for i in 0..60 {
        write_gen(&src.join(format!("f{i:02}")), Gen::random(i, 200 << 10));
    }
    v.ok(&["snapshot", "files", src.to_str().unwrap()]);
    let target = v.path().join("target");
    let Some(_disk) = SmallDisk::mount(&target, "2m") else {
        return;
    };
    let out = v.run(&[
        "-q",
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_code(&out, 12, "restore onto a full disk");
    let line = one_line_error(&out);
    assert!(line.contains("no space left"), "{line}");
    assert!(line.contains(target.to_str().unwrap()), "{line}");
    let errors = stderr(&out).lines().filter(|l| l.contains("error")).count();
    assert!(errors <= 1, "one error per file: {}", stderr(&out));
}
