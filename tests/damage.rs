//! Damaged repositories: a flipped byte in stored data is found on restore
//! and dump, reported against the file that uses it (exit 4), and does not
//! stop the other files from being restored.

use crate::common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use common::*;
use vault::format::{layout, BlobKind};
use vault::ops::walk::{resolve, Resolved};
use vault::repo::SnapshotFilter;
use vault::Repository;

fn open_repo(v: &Vault) -> Repository {
    v.library()
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

/// How many chunks a file of a snapshot has.
fn chunk_count(v: &Vault, snapshot: &str, file: &Path) -> usize {
    file_entry(&open_repo(v), snapshot, file).chunks().len()
}

fn file_entry(repo: &Repository, snapshot: &str, file: &Path) -> vault::format::tree::Entry {
    let (_, snap) = repo
        .find_snapshot(snapshot, &SnapshotFilter::default())
        .unwrap();
    match resolve(repo, &snap.root, file.as_os_str().as_bytes()).unwrap() {
        Resolved::Entry { entry, .. } => entry,
        Resolved::Root(_) => panic!("{} resolved to the root", file.display()),
    }
}

/// Where a file's chunk `n` is stored: (pack file, offset of the sealed
/// blob in it, its stored length, the chunk's byte range in the file).
fn locate_chunk(
    v: &Vault,
    snapshot: &str,
    file: &Path,
    n: Option<usize>,
) -> (PathBuf, u64, u64, (u64, u64)) {
    let repo = open_repo(v);
    let entry = file_entry(&repo, snapshot, file);
    let chunks = entry.chunks();
    assert!(!chunks.is_empty());
    let n = n.unwrap_or(chunks.len() / 2);
    let start: u64 = chunks[..n].iter().map(|c| u64::from(c.len)).sum();
    let loc = repo
        .blob_location(BlobKind::Data, &chunks[n].id)
        .unwrap()
        .expect("chunk is indexed");
    (
        v.repo.join(layout::pack(&loc.pack)),
        u64::from(loc.offset),
        u64::from(loc.stored_len),
        (start, start + u64::from(chunks[n].len)),
    )
}

#[test]
fn damaged_first_and_last_chunks_leave_holes_of_their_size_and_the_first_is_named() {
    let v = Vault::init();
    let src = v.dir("src");
    let victim = src.join("victim.bin");
    // Many chunks: restored by several threads, in no fixed order.
    write_gen(&victim, Gen::random(41, 8 * MIB));
    let id = json_str(&v.snapshot_paths(&[&src]), "snapshot").to_string();
    let original = fs::read(&victim).unwrap();
    let last = chunk_count(&v, &id, &victim) - 1;
    assert!(last > 16, "{last}");
    let (pack, offset, len, early) = locate_chunk(&v, &id, &victim, Some(1));
    flip_byte(&pack, offset + len / 2);
    let (pack, offset, len, late) = locate_chunk(&v, &id, &victim, Some(last));
    flip_byte(&pack, offset + len / 2);

    let target = v.path().join("restored");
    let out = v
        .cmd(&["restore", &format!("{id}:{}", src.display()), "--target"])
        .arg(&target)
        .watched_output();
    assert_code(&out, 4, "restore over two flipped bytes");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("bytes {}..{}", early.0, early.1)),
        "the first damaged range is named: {err}"
    );
    let restored = fs::read(target.join("victim.bin")).unwrap();
    // The damaged end is a hole, not a shorter file.
    assert_eq!(restored.len(), original.len());
    let (a, b, c, d) = (
        early.0 as usize,
        early.1 as usize,
        late.0 as usize,
        late.1 as usize,
    );
    assert_eq!(d, original.len());
    assert!(restored[..a] == original[..a], "before the first hole");
    assert!(restored[b..c] == original[b..c], "between the holes");
    assert!(restored[a..b].iter().all(|&x| x == 0), "first hole");
    assert!(restored[c..d].iter().all(|&x| x == 0), "last hole");

    let out = v.cmd(&["dump", &id]).arg(&victim).watched_output();
    assert_code(&out, 4, "dump of the damaged file");
}

#[test]
fn flipped_byte_in_a_pack_fails_only_the_file_that_uses_it() {
    let v = Vault::init();
    let src = v.dir("src");
    let victim = src.join("victim.bin");
    write_gen(&victim, Gen::random(31, 6 * MIB));
    write_gen(&src.join("other.bin"), Gen::random(32, 3 * MIB));
    write(&src.join("a.txt"), b"alpha\n");
    write(&src.join("nested/b.txt"), b"bravo\n");
    let id = json_str(&v.snapshot_paths(&[&src]), "snapshot").to_string();
    let original = fs::read(&victim).unwrap();

    let (pack, offset, len, (start, end)) = locate_chunk(&v, &id, &victim, None);
    flip_byte(&pack, offset + len / 2);

    // restore: exit 4, the error names the damaged file and only it.
    let target = v.path().join("restored");
    let out = v
        .cmd(&[
            "--json",
            "restore",
            &format!("{id}:{}", src.display()),
            "--target",
        ])
        .arg(&target)
        .watched_output();
    assert_code(&out, 4, "restore over a flipped byte");
    let err = stderr(&out);
    // The snapshot restore chose is named first; the one damage line follows.
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("using snapshot "))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("victim.bin"), "{err}");
    assert!(
        lines[0].contains(&format!("bytes {start}..{end}")),
        "the damaged range is named: {err}"
    );
    let summary = parse_json(&out);
    assert_eq!(summary["errors"].as_array().unwrap().len(), 1, "{summary}");

    // Everything else is intact, and the damaged file is whole except for
    // the one chunk.
    for name in ["other.bin", "a.txt", "nested/b.txt"] {
        assert_eq!(
            fs::read(target.join(name)).unwrap(),
            fs::read(src.join(name)).unwrap(),
            "{name}"
        );
    }
    let restored = fs::read(target.join("victim.bin")).unwrap();
    assert_eq!(restored.len(), original.len());
    let (s, e) = (start as usize, end as usize);
    assert!(
        restored[..s] == original[..s],
        "bytes before the damaged chunk differ"
    );
    assert!(
        restored[e..] == original[e..],
        "bytes after the damaged chunk differ"
    );
    assert!(
        restored[s..e] != original[s..e],
        "the damaged chunk was restored as if intact"
    );

    // dump of the damaged file fails the same way; of another file, works.
    let out = v.cmd(&["dump", &id]).arg(&victim).watched_output();
    assert_code(&out, 4, "dump of the damaged file");
    assert!(one_line_error(&out).contains("victim.bin"));
    v.assert_dump_matches(&id, Some(&src.join("other.bin")), Gen::random(32, 3 * MIB));

    // Leaving the damaged file out gives a clean restore.
    let clean = v.path().join("clean");
    v.restore(
        &format!("{id}:{}", src.display()),
        &clean,
        &["--exclude", "victim.bin"],
    );
    assert_eq!(
        listing(&clean),
        vec!["a.txt", "nested/", "nested/b.txt", "other.bin"]
    );
}

#[test]
fn damaged_metadata_is_reported_as_damage() {
    let v = Vault::init();
    let src = v.dir("src");
    write(&src.join("f.txt"), b"file\n");
    let id = json_str(&v.snapshot_paths(&[&src]), "snapshot").to_string();
    let second = json_str(&v.snapshot_stdin("s", Gen::random(5, 1000)), "snapshot").to_string();

    // A flipped byte inside the first snapshot's root tree blob.
    let repo = open_repo(&v);
    let (_, snap) = repo.find_snapshot(&id, &SnapshotFilter::default()).unwrap();
    let loc = repo
        .blob_location(BlobKind::Tree, &snap.root)
        .unwrap()
        .unwrap();
    drop(repo);
    flip_byte(
        &v.repo.join(layout::pack(&loc.pack)),
        u64::from(loc.offset) + u64::from(loc.stored_len) / 2,
    );
    let out = v.run(&["ls", "-R", &id]);
    assert_code(&out, 4, "ls over a damaged tree");
    one_line_error(&out);
    let out = v
        .cmd(&["restore", &id, "--target"])
        .arg(v.path().join("t"))
        .watched_output();
    assert_code(&out, 4, "restore over a damaged tree");
    // The other snapshot does not use that blob.
    v.assert_dump_matches(&second, None, Gen::random(5, 1000));

    // A snapshot object whose bytes no longer match its name.
    let snap_file = v.repo.join("snapshots").join(&second);
    let len = fs::metadata(&snap_file).unwrap().len();
    flip_byte(&snap_file, len - 3);
    let out = v.run(&["snapshots"]);
    assert_code(&out, 4, "snapshots with a damaged snapshot object");
    assert!(one_line_error(&out).contains(&second[..8]));
}
