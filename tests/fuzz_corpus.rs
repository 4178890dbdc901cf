//! Replays every file of `fuzz/corpus/<target>/` through the same check its
//! fuzz target runs (`fuzz/checks.rs`), so the corpora run on stable in CI.
//!
//! Seed files are named for what they must do: `valid-*` must be accepted,
//! `invalid-*` must be rejected (without a panic); any other file (one the
//! fuzzer found and someone kept) only has to pass the check. Regenerate the
//! seeds after a format change with
//!
//! ```text
//! cargo test --test tests -- --ignored --exact fuzz_corpus::write_seed_corpora
//! ```

use crate::checks;

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn check_for(target: &str) -> fn(&[u8]) -> bool {
    checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no check named {target} in fuzz/checks.rs"))
        .1
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

fn hex_prefix(data: &[u8]) -> String {
    const SHOWN: usize = 256;
    let mut s: String = data
        .iter()
        .take(SHOWN)
        .map(|b| format!("{b:02x}"))
        .collect();
    if data.len() > SHOWN {
        s.push_str(&format!("... ({} bytes)", data.len()));
    }
    s
}

fn replay(target: &str) {
    let check = check_for(target);
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()))
        .map(|entry| entry.expect("readable corpus directory").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());

    let mut failures = Vec::new();
    let mut accepted_count = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match panic::catch_unwind(AssertUnwindSafe(|| check(&data))) {
            Err(p) => failures.push(format!(
                "{name}: panicked: {}\n    input: {}",
                panic_message(&*p),
                hex_prefix(&data)
            )),
            Ok(accepted) => {
                if accepted {
                    accepted_count += 1;
                }
                if name.starts_with("valid-") && !accepted {
                    failures.push(format!("{name}: a valid seed is rejected"));
                }
                if name.starts_with("invalid-") && accepted {
                    failures.push(format!("{name}: an invalid seed is accepted"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs in {} fail:\n  {}",
        failures.len(),
        files.len(),
        dir.display(),
        failures.join("\n  ")
    );
    assert!(
        accepted_count > 0,
        "no input in {} is accepted: the corpus no longer reaches past the parser's first checks",
        dir.display()
    );
}

macro_rules! corpus_tests {
    ($($target:ident),* $(,)?) => {
        const TESTED: &[&str] = &[$(stringify!($target)),*];
        $(
            #[test]
            fn $target() {
                replay(stringify!($target));
            }
        )*
    };
}

corpus_tests!(
    config,
    key,
    pack_header,
    index,
    tree,
    snapshot,
    sealed,
    payload,
    marks,
    lock,
    drill,
    verified,
    pg_tables,
    pg_base,
    pg_parts,
    run_record,
    wal
);

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn names_in(dir: &Path, want_dirs: bool, suffix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() != want_dirs {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(suffix) {
            out.push(stem.to_string());
        }
    }
    sorted(out)
}

/// A target added on one side only (a check, a fuzz binary, a corpus or a
/// test here) is caught.
#[test]
fn targets_checks_corpora_and_tests_agree() {
    let checks = sorted(checks::TARGETS.iter().map(|(n, _)| n.to_string()).collect());
    let tested = sorted(TESTED.iter().map(|n| n.to_string()).collect());
    assert_eq!(tested, checks, "tests here vs fuzz/checks.rs TARGETS");
    let binaries = names_in(&fuzz_dir().join("fuzz_targets"), false, ".rs");
    assert_eq!(
        binaries, checks,
        "fuzz/fuzz_targets/*.rs vs fuzz/checks.rs TARGETS"
    );
    let corpora = names_in(&fuzz_dir().join("corpus"), true, "");
    assert_eq!(corpora, checks, "fuzz/corpus/* vs fuzz/checks.rs TARGETS");
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for name in &checks {
        assert!(
            manifest.contains(&format!("path = \"fuzz_targets/{name}.rs\"")),
            "fuzz/Cargo.toml has no [[bin]] for {name}"
        );
    }
}

/// Writes the `valid-*` and `invalid-*` seeds (deterministic: fixed keys,
/// nonces and times). Other files in the corpus directories are left alone.
#[test]
#[ignore = "writes fuzz/corpus; run by hand after a format change"]
fn write_seed_corpora() {
    for (target, files) in seeds::all() {
        let dir = fuzz_dir().join("corpus").join(target);
        fs::create_dir_all(&dir).unwrap();
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("valid-") || name.starts_with("invalid-") {
                fs::remove_file(&path).unwrap();
            }
        }
        for (name, bytes) in files {
            assert!(
                name.starts_with("valid-") || name.starts_with("invalid-"),
                "{name}"
            );
            fs::write(dir.join(&name), bytes).unwrap();
        }
    }
}

mod seeds {
    use super::checks;
    use vault::crypto::seal_with;
    use vault::format::config::{ChunkerParams, Config, CHUNKER_FASTCDC_2020};
    use vault::format::index::{IndexBlob, IndexBody, IndexPack};
    use vault::format::keyfile::{KdfParams, KeyHeader, KeySet};
    use vault::format::pack::{self, PackEntry};
    use vault::format::payload;
    use vault::format::run::{RunRecord, Step as RunStep};
    use vault::format::sealed::BoxKind;
    use vault::format::snapshot::{Snapshot, Summary};
    use vault::format::tree::{ChunkRef, Content, Entry, EntryKind, Tree, FLAG_DAMAGED};
    use vault::format::{BlobKind, Id, Timestamp, REPO_VERSION};
    use zeroize::Zeroizing;

    type Files = Vec<(String, Vec<u8>)>;

    const T: Timestamp = Timestamp {
        secs: 1_700_000_000,
        nanos: 123_456_789,
    };

    fn id(b: u8) -> Id {
        Id::from_bytes([b; 32])
    }

    /// Deterministic filler bytes (xorshift), for garbage inputs.
    fn garbage(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn half(v: &[u8]) -> Vec<u8> {
        v[..v.len() / 2].to_vec()
    }

    fn with_byte(mut v: Vec<u8>, pos: usize, b: u8) -> Vec<u8> {
        v[pos] = b;
        v
    }

    /// The seeds every target gets besides its own: nothing, and noise.
    fn common(files: &mut Files) {
        files.push(("invalid-empty".into(), Vec::new()));
        files.push(("invalid-garbage".into(), garbage(1, 300)));
    }

    pub fn all() -> Vec<(&'static str, Files)> {
        vec![
            ("config", config()),
            ("key", key()),
            ("pack_header", pack_header()),
            ("index", index()),
            ("tree", tree()),
            ("snapshot", snapshot()),
            ("sealed", sealed()),
            ("payload", payload()),
            ("marks", marks()),
            ("lock", lock()),
            ("drill", drill()),
            ("verified", verified()),
            ("pg_tables", pg_tables()),
            ("pg_base", pg_base()),
            ("pg_parts", pg_parts()),
            ("run_record", run_record()),
            ("wal", wal()),
        ]
    }

    fn marks() -> Files {
        use vault::format::marks::{Holder, Marks};
        let sealed = Marks::new(
            T,
            vec![id(6)],
            Some(vec![Holder {
                host: "db1".into(),
                pid: 4242,
                created: T,
            }]),
            vec![id(5), id(7)],
        );
        let unsealed = Marks::new(T, vec![], None, vec![id(5)]);
        let mut unsorted = Marks::new(T, vec![], None, vec![id(5), id(7)]).encode();
        let n = unsorted.len();
        unsorted[n - 64..n - 32].copy_from_slice(id(7).as_bytes());
        unsorted[n - 32..].copy_from_slice(id(5).as_bytes());
        let mut bad_flag = unsealed.encode();
        // version, time (12 bytes), empty supersedes, then the flag.
        bad_flag[1 + 12 + 1] = 2;
        let mut files: Files = vec![
            ("valid-sealed".into(), sealed.encode()),
            ("valid-unsealed".into(), unsealed.encode()),
            ("invalid-truncated".into(), half(&sealed.encode())),
            ("invalid-unsorted".into(), unsorted),
            ("invalid-flag".into(), bad_flag),
        ];
        common(&mut files);
        files
    }

    fn sample_config() -> Config {
        Config {
            repo_version: REPO_VERSION,
            repo_id: id(0x11),
            chunker: ChunkerParams::default(),
            pack_target: 32 << 20,
            compression: 3,
            created: T,
        }
    }

    fn config() -> Files {
        let default = sample_config();
        let smallest = Config {
            chunker: ChunkerParams {
                kind: CHUNKER_FASTCDC_2020,
                min: 64,
                avg: 256,
                max: 1024,
            },
            pack_target: 1 << 20,
            compression: 0,
            ..sample_config()
        };
        let largest = Config {
            chunker: ChunkerParams {
                kind: CHUNKER_FASTCDC_2020,
                min: 1 << 20,
                avg: 4 << 20,
                max: 16 << 20,
            },
            pack_target: 1 << 30,
            compression: 22,
            created: Timestamp {
                secs: -1,
                nanos: 999_999_999,
            },
            ..sample_config()
        };
        let not_power_of_two = Config {
            chunker: ChunkerParams {
                avg: (1 << 20) + 1,
                ..ChunkerParams::default()
            },
            ..sample_config()
        };
        let bad_level = Config {
            compression: -1,
            ..sample_config()
        };
        let mut files: Files = vec![
            ("valid-default".into(), default.encode()),
            ("valid-smallest".into(), smallest.encode()),
            ("valid-largest".into(), largest.encode()),
            ("invalid-truncated".into(), half(&default.encode())),
            (
                "invalid-avg-not-power-of-two".into(),
                not_power_of_two.encode(),
            ),
            ("invalid-compression-level".into(), bad_level.encode()),
            (
                "invalid-version-2".into(),
                with_byte(default.encode(), 0, 2),
            ),
        ];
        let mut trailing = default.encode();
        trailing.push(0);
        files.push(("invalid-trailing-byte".into(), trailing));
        common(&mut files);
        files
    }

    fn keyset(first: u32, more: &[u32]) -> KeySet {
        let data_key = |e: u32| Zeroizing::new([e as u8 ^ 0x5a; 32]);
        let mut set = KeySet::new(
            Zeroizing::new([0x21; 32]),
            Zeroizing::new([0x22; 32]),
            (first, data_key(first)),
        );
        for &e in more {
            set.add_data_key(e, data_key(e));
        }
        set
    }

    /// A key set whose list of data keys is empty, which `KeySet` cannot
    /// hold: its encoding with the list's length set to zero.
    fn empty_keyset() -> Vec<u8> {
        let one = keyset(0, &[]).encode();
        let mut bytes = one[..1 + 2 * 32].to_vec();
        bytes.push(0);
        bytes
    }

    fn key() -> Files {
        let header = KeyHeader {
            kdf: KdfParams {
                memory_kib: 64 << 10,
                iterations: 3,
                parallelism: 1,
            },
            salt: [0x33; 32],
            created: T,
            host: "backup-host".into(),
            user: "root".into(),
        };
        let header_bytes = header.encode();
        let wrapping = Zeroizing::new([0x44; 32]);
        let sealed = seal_with(
            &wrapping,
            0,
            BoxKind::KeySet,
            Some(&Id::of_object(&header_bytes)),
            &keyset(0, &[]).encode(),
            [0x55; 24],
        );
        let mut key_object = header_bytes.clone();
        key_object.extend_from_slice(&sealed);
        let odd_header = KeyHeader {
            kdf: KdfParams {
                memory_kib: 128,
                iterations: 16,
                parallelism: 16,
            },
            host: String::new(),
            user: "ünïcödé".into(),
            ..header.clone()
        };
        let bad_kdf = KeyHeader {
            kdf: KdfParams {
                memory_kib: 8,
                iterations: 1,
                parallelism: 2,
            },
            ..header.clone()
        };
        let mut files: Files = vec![
            ("valid-key-object".into(), key_object.clone()),
            ("valid-header-only".into(), header_bytes),
            ("valid-header-limits".into(), odd_header.encode()),
            ("valid-keyset-one".into(), keyset(0, &[]).encode().to_vec()),
            (
                "valid-keyset-rotated".into(),
                keyset(0, &[1, 7]).encode().to_vec(),
            ),
            ("invalid-truncated-header".into(), key_object[..40].to_vec()),
            ("invalid-kdf-memory".into(), bad_kdf.encode()),
            ("invalid-wrong-magic".into(), with_byte(key_object, 0, b'X')),
            ("invalid-keyset-empty".into(), empty_keyset()),
            (
                "invalid-keyset-truncated".into(),
                half(&keyset(0, &[1]).encode()),
            ),
        ];
        common(&mut files);
        files
    }

    fn entries() -> Vec<PackEntry> {
        vec![
            PackEntry {
                kind: BlobKind::Data,
                id: id(1),
                stored_len: 1000,
                raw_len: 4000,
                base: None,
            },
            PackEntry {
                kind: BlobKind::Tree,
                id: id(2),
                stored_len: 77,
                raw_len: 36,
                base: None,
            },
            PackEntry {
                kind: BlobKind::Data,
                id: id(3),
                stored_len: u32::MAX,
                raw_len: 0,
                base: None,
            },
        ]
    }

    /// A whole pack as the repository writes it, sealed under the fixed keys.
    fn whole_pack() -> Vec<u8> {
        let keys = checks::master_keys();
        let mut data = Vec::new();
        let mut entries = Vec::new();
        for (i, plain) in [b"first blob".to_vec(), vec![b'z'; 5000]]
            .iter()
            .enumerate()
        {
            let blob_id = keys.blob_id(plain);
            let boxed = keys.seal(
                BoxKind::DataBlob,
                Some(&blob_id),
                &payload::encode(plain, 3),
                [i as u8; 24],
            );
            entries.push(PackEntry {
                kind: BlobKind::Data,
                id: blob_id,
                stored_len: boxed.len() as u32,
                raw_len: plain.len() as u32,
                base: None,
            });
            data.extend_from_slice(&boxed);
        }
        let header = keys.seal(
            BoxKind::PackHeader,
            None,
            &payload::encode(&pack::encode_header(&entries), 3),
            [0x66; 24],
        );
        data.extend_from_slice(&header);
        data.extend_from_slice(&pack::trailer(header.len() as u32));
        data
    }

    fn pack_header() -> Files {
        let pack = whole_pack();
        let mut bad_kind = pack::encode_header(&entries()[..1]);
        bad_kind[2] = 9;
        let mut too_long = pack::trailer(100).to_vec();
        too_long.splice(0..0, [0u8; 50]);
        let mut files: Files = vec![
            ("valid-empty-header".into(), pack::encode_header(&[])),
            (
                "valid-one-entry".into(),
                pack::encode_header(&entries()[..1]),
            ),
            (
                "valid-three-entries".into(),
                pack::encode_header(&entries()),
            ),
            ("valid-whole-pack".into(), pack),
            (
                "valid-delta-entry".into(),
                pack::encode_header(&[PackEntry {
                    base: Some(id(2)),
                    ..entries()[0]
                }]),
            ),
            (
                "invalid-truncated".into(),
                half(&pack::encode_header(&entries())),
            ),
            ("invalid-blob-kind".into(), bad_kind),
            ("invalid-header-longer-than-pack".into(), too_long),
        ];
        common(&mut files);
        files
    }

    fn sample_index() -> IndexBody {
        let blob = |kind, b, offset, stored_len, raw_len| IndexBlob {
            kind,
            id: id(b),
            offset,
            stored_len,
            raw_len,
            base: None,
        };
        IndexBody {
            supersedes: vec![id(0xa1), id(0xa2)],
            packs: vec![
                IndexPack {
                    id: id(0xb1),
                    size: 2000,
                    blobs: vec![
                        blob(BlobKind::Data, 1, 0, 1000, 4000),
                        blob(BlobKind::Tree, 2, 1000, 900, 3000),
                    ],
                },
                IndexPack {
                    id: id(0xb2),
                    size: 0,
                    blobs: vec![],
                },
                IndexPack {
                    id: id(0xb4),
                    size: 100,
                    blobs: vec![IndexBlob {
                        base: Some(id(1)),
                        ..blob(BlobKind::Data, 4, 0, 100, 5000)
                    }],
                },
                IndexPack {
                    id: id(0xb3),
                    size: u64::MAX,
                    blobs: vec![blob(BlobKind::Data, 3, u32::MAX, u32::MAX, u32::MAX)],
                },
            ],
        }
    }

    fn index() -> Files {
        let full = sample_index();
        let mut beyond = sample_index();
        beyond.packs[0].size = 1899;
        let mut files: Files = vec![
            ("valid-empty".into(), IndexBody::default().encode()),
            ("valid-three-packs".into(), full.encode()),
            ("invalid-truncated".into(), half(&full.encode())),
            ("invalid-blob-beyond-pack".into(), beyond.encode()),
        ];
        // A pack count far larger than the bytes that follow.
        files.push((
            "invalid-huge-count".into(),
            vec![1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f],
        ));
        common(&mut files);
        files
    }

    fn entry(name: &[u8], kind: EntryKind, content: Content) -> Entry {
        let size = match &content {
            Content::File { chunks } => chunks.iter().map(|c| u64::from(c.len)).sum(),
            _ => 0,
        };
        Entry {
            name: name.to_vec(),
            kind,
            flags: 0,
            mode: 0o100644,
            uid: 1000,
            gid: 1000,
            user: "alice".into(),
            group: "staff".into(),
            mtime: T,
            ctime: Timestamp {
                secs: -86_400,
                nanos: 0,
            },
            inode: 42,
            dev: 7,
            size,
            content,
        }
    }

    fn sample_tree() -> Tree {
        let chunks = vec![
            ChunkRef {
                id: id(1),
                len: 100,
            },
            ChunkRef { id: id(2), len: 23 },
        ];
        let mut damaged = entry(
            b"damaged",
            EntryKind::File,
            Content::File { chunks: vec![] },
        );
        damaged.flags = FLAG_DAMAGED;
        damaged.size = 999;
        let mut entries = vec![
            entry(b"a.txt", EntryKind::File, Content::File { chunks }),
            entry(b"empty", EntryKind::File, Content::File { chunks: vec![] }),
            damaged,
            entry(b"dir", EntryKind::Dir, Content::Dir { subtree: id(3) }),
            entry(
                b"link",
                EntryKind::Symlink,
                Content::Symlink {
                    target: b"../x".to_vec(),
                },
            ),
            entry(b"fifo", EntryKind::Fifo, Content::Other),
            entry(b"sock", EntryKind::Socket, Content::Other),
            entry(
                b"tty",
                EntryKind::CharDevice,
                Content::Device { rdev: 0x0401 },
            ),
            entry(
                b"sda",
                EntryKind::BlockDevice,
                Content::Device { rdev: 0x0800 },
            ),
            entry(b"\xff\xfe latin-1 \xe9", EntryKind::Fifo, Content::Other),
        ];
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Tree { entries }
    }

    fn tree() -> Files {
        let full = sample_tree();
        let mut dotdot = sample_tree();
        dotdot.entries[0].name = b"..".to_vec();
        let mut slash = sample_tree();
        slash.entries[0].name = b"a/b".to_vec();
        let mut unsorted = sample_tree();
        unsorted.entries.swap(0, 1);
        let mut duplicate = sample_tree();
        duplicate.entries[1].name = duplicate.entries[0].name.clone();
        let mut wrong_size = Tree {
            entries: vec![sample_tree().entries[0].clone()],
        };
        wrong_size.entries[0].size += 1;
        let mut files: Files = vec![
            ("valid-empty".into(), Tree::default().encode()),
            ("valid-every-kind".into(), full.encode()),
            (
                "valid-one-file".into(),
                Tree {
                    entries: vec![full.entries[0].clone()],
                }
                .encode(),
            ),
            ("invalid-truncated".into(), half(&full.encode())),
            ("invalid-name-dotdot".into(), dotdot.encode()),
            ("invalid-name-slash".into(), slash.encode()),
            ("invalid-unsorted".into(), unsorted.encode()),
            ("invalid-duplicate-name".into(), duplicate.encode()),
            ("invalid-chunks-do-not-add-up".into(), wrong_size.encode()),
        ];
        common(&mut files);
        files
    }

    fn sample_snapshot() -> Snapshot {
        Snapshot {
            time: T,
            host: "db-1".into(),
            user: "postgres".into(),
            tags: vec!["nightly".into(), "pg".into()],
            source: "files".into(),
            paths: vec![b"/var/lib/postgresql".to_vec(), b"/etc/\xff".to_vec()],
            root: id(0xc1),
            parent: Some(id(0xc0)),
            summary: Summary {
                files: 10,
                dirs: 2,
                bytes_read: 1 << 30,
                bytes_added: 12345,
                blobs_added: 17,
                duration_ms: 61_000,
                warnings: 1,
            },
            program_version: "0.1.0".into(),
            meta: vec![
                ("server_version".into(), b"16.2".to_vec()),
                ("rows".into(), vec![0; 8]),
            ],
        }
    }

    fn wal() -> Files {
        use vault::format::wal::{join, WalHeader};
        let header = WalHeader {
            name: "000000010000000A000000FF".into(),
            size: 16 << 20,
            content: id(0x57),
            pushed: T,
            content_box_len: 4242,
        };
        let encoded = header.encode();
        let mut trailing = encoded.clone();
        trailing.push(0);
        let mut version = encoded.clone();
        version[0] = 2;
        // The name's length byte follows the version; lower-case hex is not
        // PostgreSQL's spelling.
        let lower = with_byte(encoded.clone(), 2 + 17, b'a');
        let mut huge = header.clone();
        huge.size = (1 << 30) + 1;
        vec![
            ("valid-segment".into(), encoded.clone()),
            (
                "valid-history".into(),
                WalHeader {
                    name: "00000002.history".into(),
                    size: 41,
                    ..header.clone()
                }
                .encode(),
            ),
            ("invalid-object".into(), join(&[1; 60], &[2; 70]).unwrap()),
            (
                "invalid-name".into(),
                b"00000001000000000000000A.00000028.backup".to_vec(),
            ),
            ("invalid-lower-case".into(), lower),
            ("invalid-size".into(), huge.encode()),
            ("invalid-trailing".into(), trailing),
            ("invalid-version".into(), version),
            ("invalid-truncated".into(), half(&encoded)),
            ("invalid-garbage".into(), garbage(14, 200)),
        ]
    }

    fn run_record() -> Files {
        let full = RunRecord {
            time: T,
            host: "db1".into(),
            task: "app-db".into(),
            passed: false,
            duration_ms: 1234,
            message: "copy offsite: unreachable".into(),
            snapshot: Some(id(0x44)),
            bytes: 5 << 20,
            steps: vec![
                RunStep {
                    name: "snapshot".into(),
                    passed: true,
                    detail: "snapshot 44444444".into(),
                },
                RunStep {
                    name: "copy offsite".into(),
                    passed: false,
                    detail: "unreachable".into(),
                },
            ],
        };
        let minimal = RunRecord {
            time: Timestamp::default(),
            host: String::new(),
            task: "@check".into(),
            passed: true,
            duration_ms: 0,
            message: String::new(),
            snapshot: None,
            bytes: 0,
            steps: vec![],
        };
        let encoded = full.encode();
        // The passed flag follows version, time, host and task (all short).
        let flag_pos = 1 + 12 + 1 + full.host.len() + 1 + full.task.len();
        let mut bad_flag = encoded.clone();
        bad_flag[flag_pos] = 2;
        let mut trailing = encoded.clone();
        trailing.push(0);
        let mut version = encoded.clone();
        version[0] = 2;
        vec![
            ("valid-full".into(), encoded.clone()),
            ("valid-minimal".into(), minimal.encode()),
            ("invalid-empty".into(), vec![]),
            ("invalid-flag".into(), bad_flag),
            ("invalid-trailing".into(), trailing),
            ("invalid-version".into(), version),
            ("invalid-truncated".into(), half(&encoded)),
            ("invalid-garbage".into(), garbage(13, 200)),
        ]
    }

    fn snapshot() -> Files {
        let full = sample_snapshot();
        let minimal = Snapshot {
            time: Timestamp::default(),
            host: String::new(),
            user: String::new(),
            tags: vec![],
            source: "stdin".into(),
            paths: vec![],
            root: id(0),
            parent: None,
            summary: Summary::default(),
            program_version: String::new(),
            meta: vec![],
        };
        let mut bad_option = full.encode();
        // The parent's option tag follows the root id. The sample's lengths
        // and counts are all below 128, so every varint is one byte.
        let strings = |v: &[&[u8]]| v.iter().map(|s| 1 + s.len()).sum::<usize>();
        let tags: Vec<&[u8]> = full.tags.iter().map(|t| t.as_bytes()).collect();
        let paths: Vec<&[u8]> = full.paths.iter().map(|p| p.as_slice()).collect();
        let tag_pos = 1
            + 12
            + strings(&[full.host.as_bytes(), full.user.as_bytes()])
            + 1
            + strings(&tags)
            + strings(&[full.source.as_bytes()])
            + 1
            + strings(&paths)
            + 32;
        assert_eq!(bad_option[tag_pos], 1);
        assert_eq!(
            bad_option[tag_pos + 1..tag_pos + 33],
            full.parent.unwrap().as_bytes()[..]
        );
        bad_option[tag_pos] = 2;
        let mut bad_nanos = full.encode();
        bad_nanos[9..13].copy_from_slice(&1_000_000_000u32.to_le_bytes());
        let mut files: Files = vec![
            ("valid-full".into(), full.encode()),
            ("valid-minimal".into(), minimal.encode()),
            ("invalid-truncated".into(), half(&full.encode())),
            ("invalid-option-tag".into(), bad_option),
            ("invalid-nanoseconds".into(), bad_nanos),
        ];
        common(&mut files);
        files
    }

    fn sealed() -> Files {
        let keys = checks::master_keys();
        let config_box = keys.seal(
            BoxKind::Config,
            None,
            &payload::encode(&sample_config().encode(), 3),
            [1; 24],
        );
        let blob = b"some file content";
        let blob_box = keys.seal(
            BoxKind::DataBlob,
            Some(&checks::BLOB_ID),
            &payload::encode(blob, 0),
            [2; 24],
        );
        let tree_box = keys.seal(
            BoxKind::TreeBlob,
            Some(&checks::BLOB_ID),
            &payload::encode(&sample_tree().encode(), 3),
            [3; 24],
        );
        let empty_box = keys.seal(BoxKind::Lock, None, &[], [4; 24]);
        let mut flipped = blob_box.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        let mut other_epoch = config_box.clone();
        other_epoch[1] = 1;
        let mut files: Files = vec![
            ("valid-config".into(), config_box.clone()),
            ("valid-data-blob".into(), blob_box.clone()),
            ("valid-tree-blob".into(), tree_box),
            ("valid-empty-lock".into(), empty_box),
            ("invalid-flipped-tag-bit".into(), flipped),
            ("invalid-truncated".into(), half(&blob_box)),
            ("invalid-unknown-epoch".into(), other_epoch),
            ("invalid-version-2".into(), with_byte(config_box, 0, 2)),
        ];
        common(&mut files);
        files
    }

    fn payload() -> Files {
        let text = b"the quick brown fox jumps over the lazy dog. ".repeat(100);
        let compressed = payload::encode(&text, 3);
        assert_eq!(compressed[0], payload::ENCODING_ZSTD);
        let mut two_frames = compressed.clone();
        two_frames.extend_from_slice(&compressed[1..]);
        let mut bad_frame = compressed.clone();
        bad_frame[5] ^= 0xff;
        let mut changed = checks::DELTA_BASE.to_vec();
        changed[10..14].copy_from_slice(b"EDIT");
        let delta =
            vault::format::delta::encode(&changed, checks::DELTA_BASE, 3, None).expect("delta");
        let chained =
            vault::format::delta::encode(&changed, checks::DELTA_BASE, 3, Some(6)).expect("delta");
        let mut generation_0 = chained.clone();
        generation_0[1..5].copy_from_slice(&[0; 4]);
        let mut files: Files = vec![
            ("valid-raw-empty".into(), vec![payload::ENCODING_RAW]),
            (
                "valid-raw".into(),
                payload::encode(b"short, not worth compressing", 3),
            ),
            ("valid-zstd".into(), compressed.clone()),
            ("valid-zstd-two-frames".into(), two_frames),
            ("invalid-zstd-truncated".into(), half(&compressed)),
            ("invalid-zstd-corrupt-frame".into(), bad_frame),
            ("invalid-unknown-encoding".into(), vec![4, 1, 2, 3]),
            ("valid-delta".into(), delta.clone()),
            ("invalid-delta-truncated".into(), half(&delta)),
            ("valid-delta-chained".into(), chained.clone()),
            (
                "invalid-delta-chained-truncated".into(),
                chained[..3].to_vec(),
            ),
            ("invalid-delta-generation-0".into(), generation_0),
        ];
        common(&mut files);
        files
    }
    fn lock() -> Files {
        use vault::format::lock::{Lock, LockMode};
        let lock = Lock {
            mode: LockMode::Exclusive,
            host: "backup-host".into(),
            user: "root".into(),
            pid: 4242,
            purpose: "prune".into(),
            created: T,
            refreshed: T,
        };
        let good = lock.encode();
        let mut files: Files = vec![
            ("valid-exclusive".into(), good.clone()),
            ("invalid-truncated".into(), half(&good)),
            ("invalid-version".into(), with_byte(good.clone(), 0, 99)),
        ];
        let mut trailing = good;
        trailing.push(0);
        files.push(("invalid-trailing-byte".into(), trailing));
        common(&mut files);
        files
    }

    fn drill() -> Files {
        use vault::format::drill::{Check, Drill};
        let drill = Drill {
            snapshot: id(7),
            time: T,
            host: "drill-host".into(),
            source: "postgres".into(),
            passed: false,
            restore_ms: 1234,
            checks: vec![
                Check {
                    name: "rows app.public.users".into(),
                    passed: true,
                    detail: "3 rows".into(),
                },
                Check {
                    name: "assert SELECT 1".into(),
                    passed: false,
                    detail: "got 2".into(),
                },
            ],
        };
        let good = drill.encode();
        let mut files: Files = vec![
            ("valid-two-checks".into(), good.clone()),
            ("invalid-truncated".into(), half(&good)),
            ("invalid-version".into(), with_byte(good.clone(), 0, 99)),
        ];
        let mut trailing = good;
        trailing.push(0);
        files.push(("invalid-trailing-byte".into(), trailing));
        common(&mut files);
        files
    }

    fn verified() -> Files {
        use vault::format::verified::VerifiedRecord;
        let record = VerifiedRecord::new(vec![id(1)], vec![(id(2), T), (id(3), T)]);
        let good = record.encode();
        let mut files: Files = vec![
            ("valid-two-packs".into(), good.clone()),
            ("valid-empty".into(), VerifiedRecord::default().encode()),
            ("invalid-truncated".into(), half(&good)),
            ("invalid-version".into(), with_byte(good.clone(), 0, 99)),
        ];
        let mut trailing = good;
        trailing.push(0);
        files.push(("invalid-trailing-byte".into(), trailing));
        common(&mut files);
        files
    }

    fn pg_tables() -> Files {
        use vault::format::pg_tables::{encode, TableRows};
        let tables = vec![
            TableRows {
                database: "app".into(),
                schema: "public".into(),
                table: "users".into(),
                rows: 3,
            },
            TableRows {
                database: "app".into(),
                schema: "sales".into(),
                table: "orders".into(),
                rows: 1 << 40,
            },
        ];
        let good = encode(&tables);
        let mut files: Files = vec![
            ("valid-two-tables".into(), good.clone()),
            ("valid-none".into(), encode(&[])),
            ("invalid-truncated".into(), half(&good)),
            ("invalid-version".into(), with_byte(good.clone(), 0, 99)),
        ];
        let mut trailing = good;
        trailing.push(0);
        files.push(("invalid-trailing-byte".into(), trailing));
        common(&mut files);
        files
    }

    fn pg_base() -> Files {
        use vault::format::pg_base::BaseBackup;
        let base = BaseBackup {
            system_identifier: 7_300_000_000_000_000_001,
            wal_segment_size: 16 << 20,
            start_timeline: 1,
            start_lsn: 0x2_0000_0028,
            stop_timeline: 2,
            stop_lsn: 0x3_0100_0100,
        };
        let good = base.encode();
        let odd_size = BaseBackup {
            wal_segment_size: 3 << 20,
            ..base
        };
        let backwards = BaseBackup {
            stop_lsn: 1,
            ..base
        };
        let mut files: Files = vec![
            ("valid-base".into(), good.clone()),
            ("invalid-truncated".into(), half(&good)),
            ("invalid-version".into(), with_byte(good.clone(), 0, 99)),
            ("invalid-segment-size".into(), odd_size.encode()),
            ("invalid-stops-before-start".into(), backwards.encode()),
        ];
        let mut trailing = good;
        trailing.push(0);
        files.push(("invalid-trailing-byte".into(), trailing));
        common(&mut files);
        files
    }

    fn pg_parts() -> Files {
        use vault::format::pg_parts::{encode, TableParts};
        let tables = vec![TableParts {
            database: "app".into(),
            schema: "public".into(),
            table: "events".into(),
            part_blocks: 8192,
            parts: vec![67_108_864, 12],
        }];
        let good = encode(&tables);
        let mut files: Files = vec![
            ("valid-one-table".into(), good.clone()),
            ("valid-none".into(), encode(&[])),
            ("invalid-truncated".into(), half(&good)),
            ("invalid-version".into(), with_byte(good.clone(), 0, 99)),
        ];
        let mut trailing = good;
        trailing.push(0);
        files.push(("invalid-trailing-byte".into(), trailing));
        common(&mut files);
        files
    }
}
