//! Fault injection on a real repository: flip, truncate, delete or replace
//! stored objects, and find where a file's chunks and folders are stored.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use vault::format::index::IndexBody;
use vault::format::{layout, BlobKind, Id};
use vault::ops::walk::{resolve, Resolved};
use vault::repo::{ObjectKind, SnapshotFilter};
use vault::Repository;

use super::{code, Vault};

/// The ways a stored object is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Flip,
    Truncate,
    Delete,
    /// Overwritten with another valid object of the same kind.
    Replace,
}

pub const FAULTS: [Fault; 4] = [Fault::Flip, Fault::Truncate, Fault::Delete, Fault::Replace];

/// Apply `fault` to the file at `path`; `other` is the valid object of the
/// same kind `Replace` copies over it.
pub fn damage_file(path: &Path, fault: Fault, other: &Path) {
    let bytes = fs::read(path).unwrap();
    match fault {
        Fault::Flip => flip(path, bytes.len() as u64 / 2),
        Fault::Truncate => truncate(path, bytes.len() as u64 / 2),
        Fault::Delete => fs::remove_file(path).unwrap(),
        Fault::Replace => {
            assert_ne!(path, other);
            fs::copy(other, path).unwrap();
        }
    }
}

pub fn flip(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

pub fn truncate(path: &Path, len: u64) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len).unwrap();
}

/// The repository opened through the library, index read from storage.
pub fn open_library(v: &Vault) -> Repository {
    v.library()
}

/// Where a blob is stored: (pack file, offset, stored length).
pub fn blob_place(v: &Vault, kind: BlobKind, id: &Id) -> (PathBuf, u64, u64) {
    let repo = open_library(v);
    let loc = repo
        .blob_location(kind, id)
        .unwrap()
        .expect("blob is indexed");
    (
        v.repo.join(layout::pack(&loc.pack)),
        u64::from(loc.offset),
        u64::from(loc.stored_len),
    )
}

/// The first chunk of a file in a snapshot.
pub fn first_chunk(v: &Vault, snapshot: &str, file: &Path) -> Id {
    file_chunks(v, snapshot, file)[0]
}

/// The chunks of a file (or stream) in a snapshot, in order.
pub fn file_chunks(v: &Vault, snapshot: &str, file: &Path) -> Vec<Id> {
    match resolve_path(v, snapshot, file) {
        Resolved::Entry { entry, .. } => entry.chunks().iter().map(|c| c.id).collect(),
        Resolved::Root(_) => panic!("{} is the root", file.display()),
    }
}

/// The tree listing a folder of a snapshot.
pub fn folder_tree(v: &Vault, snapshot: &str, folder: &Path) -> Id {
    resolve_path(v, snapshot, folder).tree().expect("a folder")
}

fn resolve_path(v: &Vault, snapshot: &str, path: &Path) -> Resolved {
    let repo = open_library(v);
    let (_, snap) = repo
        .find_snapshot(snapshot, &SnapshotFilter::default())
        .unwrap();
    resolve(&repo, &snap.root, path.as_os_str().as_bytes()).unwrap()
}

/// The index object naming `pack`.
pub fn index_naming(v: &Vault, pack: &Path) -> PathBuf {
    let repo = open_library(v);
    let pack_id: Id = pack.file_name().unwrap().to_str().unwrap().parse().unwrap();
    for id in repo.list_objects(ObjectKind::Index).unwrap() {
        if repo
            .read_index(&id)
            .unwrap()
            .packs
            .iter()
            .any(|p| p.id == pack_id)
        {
            return v.repo.join(layout::index(&id));
        }
    }
    panic!("no index names pack {pack_id}");
}

/// Rewrite the index so that `edit` has changed it: one new index object
/// replaces all others (as repair or prune would write it).
pub fn rewrite_index(v: &Vault, edit: impl FnOnce(&mut IndexBody)) {
    let repo = open_library(v);
    let old = repo.list_objects(ObjectKind::Index).unwrap();
    let mut all = IndexBody::default();
    for id in &old {
        all.packs.extend(repo.read_index(id).unwrap().packs);
    }
    edit(&mut all);
    repo.write_object(ObjectKind::Index, &all.encode()).unwrap();
    for id in &old {
        repo.delete_object(ObjectKind::Index, id).unwrap();
    }
}

/// `vault --json check ARGS`: the exit code and the report (Null when the
/// check stopped with an error, whose line is then in stderr).
pub fn check_json(v: &Vault, args: &[&str]) -> (i32, Value, Output) {
    let mut all = vec!["--json", "check"];
    all.extend_from_slice(args);
    let out = v.run(&all);
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code(&out), report, out)
}

/// Ids of the snapshots a report says lost data, and of those untouched.
pub fn damaged_and_untouched(report: &Value) -> (Vec<String>, Vec<String>) {
    let damaged = report["damaged_snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    let untouched = report["untouched_snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    (damaged, untouched)
}

/// Every damaged path a report names, across snapshots.
pub fn damaged_paths(report: &Value) -> Vec<String> {
    report["damaged_snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["damaged"].as_array().unwrap().iter())
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect()
}

/// Store, as someone holding the password could, a copy of snapshot
/// `snapshot` whose root listing `edit` changed; returns the copy's id.
pub fn plant_edited_snapshot(
    v: &Vault,
    snapshot: &str,
    edit: impl FnOnce(&mut vault::format::tree::Tree),
) -> Id {
    let repo = std::sync::Arc::new(open_library(v));
    let mut snap = repo.load_snapshot(&snapshot.parse().unwrap()).unwrap();
    let mut root = repo.read_tree(&snap.root).unwrap();
    edit(&mut root);
    let writer = vault::repo::BlobWriter::new(repo.clone(), None);
    snap.root = writer.save(BlobKind::Tree, root.encode()).unwrap();
    writer.finish().unwrap();
    repo.save_snapshot(&snap).unwrap()
}
