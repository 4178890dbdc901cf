//! Objects planted in a repository by someone with write access to its
//! storage but without the password: each is refused by what can be known
//! before it costs memory or time (its size, its KDF parameters), and the
//! key this host opened with last time is tried first.

use crate::common;

use std::fs;
use std::path::Path;

use common::faults::{blob_place, flip, open_library, plant_edited_snapshot};
use common::*;
use vault::format::keyfile::{KdfParams, KeyFile};
use vault::format::tree::Content;
use vault::format::BlobKind;
use vault::repo::{open_key, OpenedKey};
use vault::storage::{Location, OpendalBackend};
use vault::Id;

fn key_ids(v: &Vault) -> Vec<Id> {
    let mut ids: Vec<Id> = fs::read_dir(v.repo.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    ids.sort();
    ids
}

fn open(v: &Vault, password: &str, cache: Option<&Path>) -> vault::Result<OpenedKey> {
    let backend = OpendalBackend::open(&Location::Local(v.repo.clone()), false).unwrap();
    open_key(&backend, password.as_bytes(), cache)
}

/// A copy of the repository's key with other KDF parameters in its header,
/// stored under its new name, as someone with write access could. The
/// passes are raised from `kdf`'s until the name falls in the lower half of
/// the id space, so a key added later sorts after it by even odds each try.
fn plant_key(v: &Vault, kdf: KdfParams) -> (Id, KdfParams) {
    let keys: Vec<Vec<u8>> = key_ids(v)
        .iter()
        .map(|id| fs::read(v.repo.join("keys").join(id.to_hex())).unwrap())
        .collect();
    // The first key that still decodes: an earlier planted one may not.
    let file = keys
        .iter()
        .find_map(|bytes| KeyFile::decode(bytes).ok())
        .unwrap();
    for extra_passes in 0..64 {
        let mut header = file.header.clone();
        header.kdf = KdfParams {
            iterations: kdf.iterations + extra_passes,
            ..kdf
        };
        let mut planted = header.encode();
        planted.extend_from_slice(file.sealed_keyset);
        let id = Id::of_object(&planted);
        if id.as_bytes()[0] < 0x80 {
            fs::write(v.repo.join("keys").join(id.to_hex()), planted).unwrap();
            return (id, header.kdf);
        }
    }
    panic!("64 key names all in the upper half of the id space");
}

#[test]
fn planted_expensive_keys_are_refused_before_any_kdf_runs() {
    let v = Vault::init();
    v.snapshot_stdin("a", &b"data"[..]);
    // What the format used to allow: 4 GiB and 64 passes.
    let (over_ceiling, _) = plant_key(
        &v,
        KdfParams {
            memory_kib: 4 << 20,
            iterations: 64,
            parallelism: 1,
        },
    );
    // Within the format's ceiling, over this host's limit.
    let (over_limit, limit_kdf) = plant_key(
        &v,
        KdfParams {
            memory_kib: 512 << 10,
            iterations: 4,
            parallelism: 1,
        },
    );
    // With a damaged key in the way a wrong password may be a right one.
    let err = open(&v, "not the password", None).unwrap_err();
    assert_eq!(err.kind(), vault::ErrorKind::Corrupt, "{err}");
    // A key that sorts after both planted ones sees every key's fate.
    let password = (0..64)
        .map(|i| format!("late {i}"))
        .find(|p| {
            let out = v
                .cmd(&[
                    "key",
                    "add",
                    "--kdf-memory-kib",
                    "64",
                    "--kdf-iterations",
                    "1",
                ])
                .env("VAULT_NEW_PASSWORD", p)
                .watched_output();
            assert_success(&out, "key add");
            open(&v, p, None).unwrap().id > over_ceiling.max(over_limit)
        })
        .expect("a key sorting last");
    let opened = open(&v, &password, None).unwrap();
    let refused = |id: &Id| {
        opened
            .refused
            .iter()
            .find(|(r, _)| r == id)
            .map(|(_, why)| why.clone())
            .unwrap_or_else(|| panic!("key {id} was not refused: {opened:?}"))
    };
    assert!(
        refused(&over_ceiling).contains("out of range"),
        "{opened:?}"
    );
    assert!(
        refused(&over_limit).contains(&format!(
            "512 MiB and {} passes, over this host's limit",
            limit_kdf.iterations
        )),
        "{opened:?}"
    );
    assert!(!opened.tried.contains(&over_ceiling));
    assert!(!opened.tried.contains(&over_limit));

    // The command line opens the repository past both.
    let listed = v.snapshots();
    assert_eq!(listed.len(), 1);
}

#[test]
fn the_key_this_host_opened_with_last_is_tried_first() {
    let v = Vault::init();
    for (i, password) in ["second", "third", "fourth"].iter().enumerate() {
        let out = v
            .cmd(&[
                "key",
                "add",
                "--kdf-memory-kib",
                "64",
                "--kdf-iterations",
                "1",
            ])
            .env("VAULT_NEW_PASSWORD", password)
            .watched_output();
        assert_success(&out, &format!("key add {i}"));
    }
    let ids = key_ids(&v);
    assert_eq!(ids.len(), 4);
    // Find the password of the key that sorts last: without a note every
    // other key is tried before it.
    let last = *ids.last().unwrap();
    let password = [PASSWORD, "second", "third", "fourth"]
        .into_iter()
        .find(|p| open(&v, p, None).unwrap().id == last)
        .unwrap();
    let cold = open(&v, password, None).unwrap();
    assert_eq!(
        cold.tried, ids,
        "without a cache every key is tried in turn"
    );

    let cache = v.dir("key-cache");
    open(&v, password, Some(&cache)).unwrap();
    let warm = open(&v, password, Some(&cache)).unwrap();
    assert_eq!(warm.tried, vec![last]);

    // The note only orders the keys: garbage in it, or a note naming a key
    // this password does not open, changes nothing else.
    let notes: Vec<_> = fs::read_dir(cache.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(notes.len(), 1);
    fs::write(&notes[0], "not an id\n").unwrap();
    assert_eq!(open(&v, password, Some(&cache)).unwrap().tried, ids);
    fs::write(&notes[0], format!("{}\n", ids[0])).unwrap();
    let other = open(&v, password, Some(&cache)).unwrap();
    assert_eq!(other.id, last);
    assert_eq!(other.tried, ids);
}

#[test]
fn a_huge_file_planted_among_snapshots_is_refused_by_its_size() {
    let v = Vault::init();
    v.snapshot_stdin("a", &b"data"[..]);
    let planted = v.repo.join("snapshots").join("ab".repeat(32));
    let f = fs::File::create(&planted).unwrap();
    // Sparse: 3 GiB that cost no disk space, and must cost no memory.
    f.set_len(3 << 30).unwrap();
    drop(f);
    let out = v.run(&["snapshots"]);
    assert_code(&out, 4, "snapshots with a planted 3 GiB object");
    let err = one_line_error(&out);
    assert!(
        err.contains("is 3221225472 bytes, over the 67108864 bytes such an object may have"),
        "{err}"
    );
}

#[test]
fn a_planted_chunk_length_is_refused_before_repair_allocates_it() {
    let v = Vault::init();
    let s = v.snapshot_stdin("a", Gen::random(7, 100 << 10));
    let original = json_str(&s, "snapshot").to_string();
    let chunk = {
        let repo = open_library(&v);
        let snap = repo.load_snapshot(&original.parse().unwrap()).unwrap();
        repo.read_tree(&snap.root).unwrap().entries[0].chunks()[0].id
    };
    plant_edited_snapshot(&v, &original, |root| {
        // The chunker is keyed per repository, so the file may have been
        // cut in two: its size must still add up, or the tree is refused
        // before any length is read.
        let file = &mut root.entries[0];
        if let Content::File { chunks } = &mut file.content {
            chunks[0].len = u32::MAX;
            file.size = chunks.iter().map(|c| u64::from(c.len)).sum();
        }
    });
    let (pack, offset, len) = blob_place(&v, BlobKind::Data, &chunk);
    flip(&pack, offset + len / 2);
    let before = v.snapshots();

    let out = v.run(&["repair", "snapshots", "--read-data"]);
    assert_code(&out, 4, "repair snapshots over a planted chunk length");
    let err = one_line_error(&out);
    assert!(
        err.contains(&format!(
            "is recorded as {} bytes, but its index entry says",
            u32::MAX
        )),
        "{err}"
    );
    assert_eq!(
        v.snapshots(),
        before,
        "a failed repair changed the snapshots"
    );
}
