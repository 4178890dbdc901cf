//! `vault mount` through real FUSE mounts: contents and metadata match the
//! sources, random reads fetch only the chunks they need, big folders
//! list without data reads, new snapshots appear, and the process leaves
//! nothing behind.

use crate::common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::mount::{fuse_available, is_mounted, Mount};
use common::*;

fn only_snapshot_dir(mount: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(mount.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Each snapshot's folder in the mount, oldest snapshot first (names sort
/// by time only to the second).
fn snapshot_dirs_oldest_first(v: &Vault, mount: &Path) -> Vec<PathBuf> {
    let dirs = only_snapshot_dir(mount);
    assert_eq!(dirs.len(), v.snapshots().len(), "{dirs:?}");
    v.snapshots()
        .iter()
        .map(|s| {
            let suffix = format!("_{}", &json_str(s, "id")[..8]);
            dirs.iter()
                .find(|d| d.to_string_lossy().ends_with(&suffix))
                .unwrap_or_else(|| panic!("no folder for snapshot {s} in {dirs:?}"))
                .clone()
        })
        .collect()
}

/// Where a files snapshot of `src` appears inside a snapshot folder.
fn inside(snapshot_dir: &Path, src: &Path) -> PathBuf {
    snapshot_dir.join(src.strip_prefix("/").unwrap())
}

fn build_tree(src: &Path) {
    write(&src.join("top.txt"), b"top level\n");
    write_gen(&src.join("data/mixed.bin"), Gen::mixed(1, 3 * MIB + 17));
    write_gen(&src.join("data/random.bin"), Gen::random(2, 700_001));
    write(&src.join("data/empty"), b"");
    write(&src.join("deep/a/b/c/leaf.txt"), b"leaf");
    chmod(&src.join("deep/a/b/c/leaf.txt"), 0o600);
    chmod(&src.join("deep/a"), 0o750);
    std::os::unix::fs::symlink("../top.txt", src.join("data/link-to-top")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", src.join("dangling")).unwrap();
    set_mtime(&src.join("top.txt"), 1_600_000_000, 123_456_789);
}

fn cp_a(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a failed");
}

#[test]
fn mounted_snapshots_match_sources_and_new_snapshots_appear() {
    if !fuse_available("mounted_snapshots_match_sources_and_new_snapshots_appear") {
        return;
    }
    let v = Vault::init();
    let src = v.dir("src");
    build_tree(&src);
    v.ok(&[
        "snapshot",
        src.to_str().unwrap(),
        "--tag",
        "nightly",
        "--record-host",
        "web1",
    ]);
    // Keep what the first snapshot saw, then change the source.
    let first = v.path().join("first");
    cp_a(&src, &first);
    write_gen(&src.join("data/mixed.bin"), Gen::mixed(3, 2 * MIB));
    fs::remove_file(src.join("top.txt")).unwrap();
    write(&src.join("added.txt"), b"added later");
    v.ok(&["snapshot", src.to_str().unwrap(), "--record-host", "web1"]);

    let mp = v.dir("mnt");
    let mount = Mount::start(&v, &mp, &[]);
    let snaps = snapshot_dirs_oldest_first(&v, &mp);
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    // Same content, modes, owners, mtimes and symlink targets, both times.
    assert_same_tree(&first, &inside(&snaps[0], &src));
    assert_same_tree(&src, &inside(&snaps[1], &src));
    let diff = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(&src)
        .arg(inside(&snaps[1], &src))
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "diff -r: {}",
        stdout_of(&diff.stdout)
    );

    // The made-up folders point into snapshots/ and resolve there.
    let name = |p: &Path| p.file_name().unwrap().to_owned();
    let latest = mp.join("latest/web1/files");
    assert_eq!(
        fs::read_link(&latest).unwrap(),
        Path::new("../../snapshots").join(name(&snaps[1]))
    );
    assert_eq!(
        fs::read(inside(&latest, &src).join("added.txt")).unwrap(),
        b"added later"
    );
    let tagged: Vec<_> = fs::read_dir(mp.join("tags/nightly"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(tagged, vec![name(&snaps[0])]);
    assert_eq!(fs::read_dir(mp.join("hosts/web1")).unwrap().count(), 2);
    // A relative symlink in a snapshot resolves inside it.
    assert_eq!(
        fs::read(inside(&snaps[0], &src).join("data/link-to-top")).unwrap(),
        b"top level\n"
    );
    // Read-only.
    let err = fs::write(inside(&snaps[1], &src).join("added.txt"), b"x").unwrap_err();
    assert!(
        matches!(err.raw_os_error(), Some(libc::EROFS) | Some(libc::EACCES)),
        "{err}"
    );

    // A second mount on the same folder is refused clearly.
    let busy = v.run(&["mount", mp.to_str().unwrap()]);
    assert_code(&busy, 1, "mount on a busy mount point");
    assert!(one_line_error(&busy).contains("busy"), "{}", stderr(&busy));

    // A snapshot taken while mounted shows up without remounting.
    write(&src.join("third.txt"), b"third");
    v.ok(&["snapshot", src.to_str().unwrap(), "--record-host", "web1"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while only_snapshot_dir(&mp).len() < 3 {
        assert!(Instant::now() < deadline, "new snapshot did not appear");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        fs::read(inside(&latest, &src).join("third.txt")).unwrap(),
        b"third"
    );

    let pid = mount.pid();
    let status = mount.stop();
    assert!(status.success(), "vault mount exited with {status}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "vault mount process still exists"
    );
    assert!(!is_mounted(&mp));
}

fn stdout_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn bad_mount_points_are_clear_errors() {
    if !fuse_available("bad_mount_points_are_clear_errors") {
        return;
    }
    let v = Vault::init();
    let missing = v.path().join("missing");
    let out = v.run(&["mount", missing.to_str().unwrap()]);
    assert_code(&out, 1, "mount on a missing folder");
    assert!(one_line_error(&out).contains("missing"));

    let full = v.dir("full");
    write(&full.join("x"), b"x");
    let out = v.run(&["mount", full.to_str().unwrap()]);
    assert_code(&out, 2, "mount on a non-empty folder");
    assert!(one_line_error(&out).contains("not empty"));

    let file = v.path().join("file");
    write(&file, b"x");
    let out = v.run(&["mount", file.to_str().unwrap()]);
    assert_code(&out, 2, "mount on a file");
    assert!(one_line_error(&out).contains("not a folder"));
    assert!(!is_mounted(&full));
}

/// A repository with one snapshot of a folder that `fill` writes.
fn snapshot_of(fill: impl FnOnce(&Path)) -> (Vault, PathBuf) {
    let v = Vault::init();
    let src = v.dir("src");
    fill(&src);
    v.ok(&["snapshot", src.to_str().unwrap()]);
    (v, src)
}

/// Chunk lengths of a file in the latest snapshot, read through the library.
fn chunk_lengths(v: &Vault, path: &Path) -> Vec<u64> {
    use vault::ops::walk::{resolve, Resolved};
    let repo = v.library();
    let (_, snap) = repo
        .find_snapshot("latest", &vault::repo::SnapshotFilter::default())
        .unwrap();
    match resolve(&repo, &snap.root, path.as_os_str().as_encoded_bytes()).unwrap() {
        Resolved::Entry { entry, .. } => entry.chunks().iter().map(|c| u64::from(c.len)).collect(),
        Resolved::Root(_) => panic!("not a file"),
    }
}

#[test]
fn random_reads_fetch_only_the_chunks_covering_them() {
    if !fuse_available("random_reads_fetch_only_the_chunks_covering_them") {
        return;
    }
    let size = 24 * MIB;
    let (v, src) = snapshot_of(|src| write_gen(&src.join("big.bin"), Gen::random(7, size)));
    let big = src.join("big.bin");
    let lengths = chunk_lengths(&v, &big);
    assert!(
        lengths.len() > 20,
        "expected many chunks, got {}",
        lengths.len()
    );
    let mut starts = vec![0u64];
    for l in &lengths {
        starts.push(starts.last().unwrap() + l);
    }
    let covering = |from: u64, to: u64| -> Vec<usize> {
        (0..lengths.len())
            .filter(|&i| starts[i] < to && starts[i + 1] > from)
            .collect()
    };

    let mp = v.dir("mnt");
    let mount = Mount::start(&v, &mp, &["--json"]);
    let file_in_mount = inside(&only_snapshot_dir(&mp)[0], &big);
    let expected = fs::read(&big).unwrap();
    // O_DIRECT: the kernel passes each read through as asked, without its
    // own read-ahead, so the counts are exactly what the reads need.
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&file_in_mount)
        .unwrap();
    assert_eq!(mount.stat("chunks_fetched"), 0, "opening fetched data");
    let mut rng = Rng::new(42);
    let mut needed = BTreeSet::new();
    for n in 0..12 {
        // Never at 0 and never where the last read ended: those count as
        // sequential reading, which reads ahead.
        let len = 1 + rng.below(60_000);
        let offset = 1 + rng.below(size - len - 1);
        let mut buf = vec![0u8; len as usize];
        let got = f.read_at(&mut buf, offset).unwrap();
        assert_eq!(got, len as usize, "read {n}: short read");
        assert!(
            buf == expected[offset as usize..(offset + len) as usize],
            "read {n} at {offset}+{len}: wrong bytes"
        );
        needed.extend(covering(offset, offset + len));
        assert_eq!(
            mount.stat("chunks_fetched"),
            needed.len() as u64,
            "after read {n} at {offset}+{len}: fetched chunks differ from those covering the reads"
        );
    }
    // A read across a chunk boundary needs exactly the two chunks there.
    let boundary = starts[lengths.len() / 2];
    let mut buf = vec![0u8; 2000];
    f.read_at(&mut buf, boundary - 1000).unwrap();
    assert_eq!(
        buf,
        expected[(boundary - 1000) as usize..(boundary + 1000) as usize]
    );
    needed.extend(covering(boundary - 1000, boundary + 1000));
    assert_eq!(mount.stat("chunks_fetched"), needed.len() as u64);
    assert!(
        needed.len() < lengths.len() / 2,
        "reads should not touch most chunks"
    );
    drop(f);
    // The whole file read through the page cache is right too.
    assert_file_matches(&file_in_mount, &expected[..]);
    let (status, out) = mount.stop_with_output();
    assert!(status.success());
    // With --json, the counters come out on stdout at the end.
    let summary: serde_json::Value = serde_json::from_str(&out).expect("JSON summary");
    assert_eq!(summary["stopped_by"], "signal");
    assert_eq!(summary["stats"]["chunks_fetched"], lengths.len() as u64);
}

#[test]
fn a_folder_of_ten_thousand_entries_lists_from_one_tree_without_data() {
    if !fuse_available("a_folder_of_ten_thousand_entries_lists_from_one_tree_without_data") {
        return;
    }
    let (v, src) = snapshot_of(|src| {
        fs::create_dir(src.join("many")).unwrap();
        for i in 0..10_000u32 {
            fs::write(src.join(format!("many/f{i:05}")), i.to_string()).unwrap();
        }
    });
    let many = src.join("many");
    let mp = v.dir("mnt");
    let mount = Mount::start(&v, &mp, &[]);
    let folder = inside(&only_snapshot_dir(&mp)[0], &many);
    let trees_before = mount.stat("trees_loaded");
    let started = Instant::now();
    let mut seen = 0;
    for e in fs::read_dir(&folder).unwrap() {
        let e = e.unwrap();
        let meta = e.path().symlink_metadata().unwrap();
        let i: u32 = e.file_name().to_str().unwrap()[1..].parse().unwrap();
        assert_eq!(meta.len(), i.to_string().len() as u64);
        seen += 1;
    }
    let took = started.elapsed();
    eprintln!("listed and stat'ed {seen} entries in {took:?}");
    assert_eq!(seen, 10_000);
    assert_eq!(mount.stat("chunks_fetched"), 0, "listing read file data");
    // The folders on the way down and the big one itself, each once.
    let depth = many.components().count() as u64 + 1;
    let trees = mount.stat("trees_loaded") - trees_before;
    assert!(
        trees <= depth,
        "{trees} trees loaded for one listing (path depth {depth})"
    );
    assert!(mount.stop().success());
}

#[test]
fn open_files_and_outside_unmounts_leave_nothing_behind() {
    if !fuse_available("open_files_and_outside_unmounts_leave_nothing_behind") {
        return;
    }
    let (v, src) = snapshot_of(|src| write(&src.join("f.txt"), b"content"));
    let mp = v.dir("mnt");

    // Stopped while a file is open: detached, the process still ends.
    let mount = Mount::start(&v, &mp, &[]);
    let open_file = fs::File::open(inside(&only_snapshot_dir(&mp)[0], &src).join("f.txt")).unwrap();
    let pid = mount.pid();
    assert!(mount.stop().success());
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    drop(open_file);

    // Unmounted from outside: the process notices and ends by itself.
    let mut mount = Mount::start(&v, &mp, &[]);
    let status = Command::new("fusermount3")
        .arg("-u")
        .arg(&mp)
        .status()
        .unwrap();
    assert!(status.success(), "fusermount3 -u failed");
    assert!(mount.wait_for_exit().success(), "{}", mount.log_text());
    assert!(!is_mounted(&mp));
}

/// `cat PATH` as uid/gid 65534: whether another, unprivileged user could
/// read the file through the mount.
fn other_user_reads(path: &Path) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "cat",
        ])
        .arg(path)
        .output()
        .expect("run setpriv")
}

#[test]
fn allow_other_mounts_keep_file_permissions_for_other_users() {
    let test = "allow_other_mounts_keep_file_permissions_for_other_users";
    if !fuse_available(test) {
        return;
    }
    let have_setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !is_root() || !have_setpriv {
        eprintln!("SKIPPED {test}: needs root and setpriv (util-linux) to act as a second user");
        return;
    }
    let (v, src) = snapshot_of(|src| {
        write(&src.join("secret.txt"), b"root only\n");
        chmod(&src.join("secret.txt"), 0o600);
        write(&src.join("public.txt"), b"anyone\n");
        chmod(&src.join("public.txt"), 0o644);
        chmod(src, 0o755);
    });
    // The other user must reach the mount point itself.
    chmod(v.path(), 0o755);
    for (extra, secret_readable) in [
        (&["--allow-other"][..], false),
        (&["--allow-other", "--no-default-permissions"][..], true),
    ] {
        let dir = v.dir(&format!("mnt-{}", extra.len()));
        let m = Mount::start(&v, &dir, extra);
        let snap = inside(&only_snapshot_dir(&m.dir)[0], &src);
        let public = other_user_reads(&snap.join("public.txt"));
        assert!(public.status.success(), "{extra:?}: {public:?}");
        assert_eq!(public.stdout, b"anyone\n");
        let secret = other_user_reads(&snap.join("secret.txt"));
        assert_eq!(
            secret.status.success(),
            secret_readable,
            "{extra:?}: another user reading a 0600 root file: {secret:?}"
        );
        if !secret_readable {
            assert!(secret.stdout.is_empty());
            assert!(
                String::from_utf8_lossy(&secret.stderr).contains("Permission denied"),
                "{secret:?}"
            );
        }
        m.stop();
    }
}

#[test]
fn a_device_number_over_32_bits_is_eoverflow_not_a_truncated_number() {
    if !fuse_available("a_device_number_over_32_bits_is_eoverflow_not_a_truncated_number") {
        return;
    }
    let v = Vault::init();
    let s = v.snapshot_stdin("stream", &b"data"[..]);
    let planted = common::faults::plant_edited_snapshot(&v, json_str(&s, "snapshot"), |root| {
        let mut dev = root.entries[0].clone();
        dev.name = b"dev".to_vec();
        dev.kind = vault::format::tree::EntryKind::CharDevice;
        dev.size = 0;
        // Major 1, minor 3 (/dev/null) once truncated to 32 bits.
        dev.content = vault::format::tree::Content::Device {
            rdev: (1 << 32) | 0x0103,
        };
        root.entries.insert(0, dev);
    });
    let mp = v.dir("mnt");
    let mount = Mount::start(&v, &mp, &[]);
    let suffix = format!("_{}", &planted.to_hex()[..8]);
    let dir = only_snapshot_dir(&mp)
        .into_iter()
        .find(|d| d.to_string_lossy().ends_with(&suffix))
        .expect("the planted snapshot is mounted");
    let err = fs::symlink_metadata(dir.join("dev")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EOVERFLOW), "{err}");
    // Its neighbour is unaffected.
    assert_eq!(fs::read(dir.join("stream")).unwrap(), b"data");
    mount.stop();
}
