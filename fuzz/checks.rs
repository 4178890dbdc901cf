//! The checks behind each fuzz target, shared with `tests/fuzz_corpus.rs` so
//! the seed corpora also run under a plain `cargo test` (no nightly needed).
//!
//! Every check takes arbitrary bytes. A parser must return `Ok` or `Err` and
//! never panic; when it returns `Ok` for a type that has an encoder, encoding
//! the value and decoding it again must give an equal value. A check panics
//! only when one of those rules is broken.
//!
//! Each check returns whether the input was accepted as a whole object. The
//! fuzz targets ignore that; the corpus test uses it to make sure the
//! `valid-*` seeds still parse (and the `invalid-*` ones still do not) after
//! a format change.
//!
//! Included with `#[path]` from the fuzz targets and from the test, so keep it
//! free of dependencies other than `vault` and `rand`.

#![allow(dead_code)]

use std::sync::OnceLock;

use rand::SeedableRng;
use vault::crypto::MasterKeys;
use vault::format::config::Config;
use vault::format::drill::Drill;
use vault::format::index::IndexBody;
use vault::format::keyfile::{KeyFile, KeySet};
use vault::format::lock::Lock;
use vault::format::marks::Marks;
use vault::format::pack::{self, TRAILER_LEN};
use vault::format::payload::{self, ENCODING_RAW};
use vault::format::pg_base::BaseBackup;
use vault::format::pg_parts;
use vault::format::pg_tables;
use vault::format::run::RunRecord;
use vault::format::sealed::{self, BoxKind, HEADER_LEN, OVERHEAD, SEALED_VERSION};
use vault::format::snapshot::Snapshot;
use vault::format::tree::{self, Content, Tree, FLAG_DAMAGED};
use vault::format::verified::VerifiedRecord;
use vault::format::wal::{self as wal_format, WalFile, WalHeader};
use vault::format::wal_key::WalKey;
use vault::format::Id;

/// A check: arbitrary bytes in, whether they were accepted out.
pub type Check = fn(&[u8]) -> bool;

/// Every fuzz target, by the name of its binary and of its corpus directory.
pub const TARGETS: &[(&str, Check)] = &[
    ("config", config),
    ("key", key),
    ("pack_header", pack_header),
    ("index", index),
    ("tree", tree),
    ("snapshot", snapshot),
    ("sealed", sealed),
    ("payload", payload),
    ("marks", marks),
    ("lock", lock),
    ("drill", drill),
    ("verified", verified),
    ("pg_tables", pg_tables),
    ("pg_base", pg_base),
    ("pg_parts", pg_parts),
    ("run_record", run_record),
    ("wal", wal),
];

/// Seed of the master keys the `sealed` target opens boxes with. The seed
/// corpus holds boxes sealed under these keys, so changing the seed (or the
/// way `MasterKeys::generate` draws from the rng) needs a new corpus.
pub const KEY_SEED: u64 = 0x7661_756c_7446_757a;

/// The blob id the `sealed` target tries besides "no id".
pub const BLOB_ID: Id = Id::from_bytes([0xb1; 32]);

pub const BOX_KINDS: [BoxKind; 13] = [
    BoxKind::Config,
    BoxKind::KeySet,
    BoxKind::Index,
    BoxKind::Snapshot,
    BoxKind::PackHeader,
    BoxKind::DataBlob,
    BoxKind::TreeBlob,
    BoxKind::Lock,
    BoxKind::Drill,
    BoxKind::CheckState,
    BoxKind::Marks,
    BoxKind::RunRecord,
    BoxKind::Wal,
];

/// Largest decoded payload the `payload` target allows (a decompression bomb
/// must stop here, not exhaust memory).
pub const PAYLOAD_CAP: usize = 1 << 20;

pub fn master_keys() -> &'static MasterKeys {
    static KEYS: OnceLock<MasterKeys> = OnceLock::new();
    KEYS.get_or_init(|| MasterKeys::generate(&mut rand::rngs::StdRng::seed_from_u64(KEY_SEED)))
}

pub fn config(data: &[u8]) -> bool {
    let Ok(config) = Config::decode(data) else {
        return false;
    };
    let again = Config::decode(&config.encode())
        .unwrap_or_else(|e| panic!("re-encoded config does not decode: {e:?}"));
    assert_eq!(again, config, "config changed through encode/decode");
    true
}

/// Key objects (plaintext header + sealed key set) and the key set itself
/// (what the sealed part holds once opened).
pub fn key(data: &[u8]) -> bool {
    let mut accepted = false;
    if let Ok(file) = KeyFile::decode(data) {
        let header_len = file.header_bytes.len();
        assert_eq!(
            file.header_bytes,
            &data[..header_len],
            "header bytes are not a prefix"
        );
        assert_eq!(
            file.sealed_keyset,
            &data[header_len..],
            "sealed part is not the rest"
        );
        let _ = sealed::split(file.sealed_keyset);

        let encoded = file.header.encode();
        let again = KeyFile::decode(&encoded)
            .unwrap_or_else(|e| panic!("re-encoded key header does not decode: {e:?}"));
        assert_eq!(
            again.header, file.header,
            "key header changed through encode/decode"
        );
        assert_eq!(again.header_bytes, &encoded[..]);
        assert!(again.sealed_keyset.is_empty());
        accepted = true;
    }
    if let Ok(set) = KeySet::decode(data) {
        let encoded = set.encode();
        let again = KeySet::decode(&encoded)
            .unwrap_or_else(|e| panic!("re-encoded key set does not decode: {e:?}"));
        assert_eq!(again.id_key()[..], set.id_key()[..]);
        assert_eq!(again.chunker_key()[..], set.chunker_key()[..]);
        let keys = |s: &KeySet| -> Vec<(u32, [u8; 32])> {
            s.data_keys().map(|(epoch, key)| (*epoch, **key)).collect()
        };
        assert_eq!(
            keys(&again),
            keys(&set),
            "data keys changed through encode/decode"
        );
        accepted = true;
    }
    accepted
}

/// The decrypted pack header body, and the pack trailer.
pub fn pack_header(data: &[u8]) -> bool {
    let mut accepted = false;
    if let Ok(entries) = pack::decode_header(data) {
        let again = pack::decode_header(&pack::encode_header(&entries))
            .unwrap_or_else(|e| panic!("re-encoded pack header does not decode: {e:?}"));
        assert_eq!(again, entries, "pack header changed through encode/decode");
        let blob_area: u64 = entries.iter().map(|e| u64::from(e.stored_len)).sum();
        let offsets = pack::entry_offsets(&entries, blob_area)
            .unwrap_or_else(|e| panic!("offsets rejected for the header's own blob area: {e:?}"));
        assert_eq!(offsets.len(), entries.len());
        let _ = pack::entry_offsets(&entries, data.len() as u64);
        accepted = true;
    }
    if data.len() >= TRAILER_LEN {
        // The input as the tail of a pack exactly as long as the input.
        let size = data.len() as u64;
        if let Ok((start, len)) = pack::header_location(size, &data[data.len() - TRAILER_LEN..]) {
            assert_eq!(start + u64::from(len) + TRAILER_LEN as u64, size);
            accepted = true;
        }
        // The first 8 bytes as a pack size, the rest as a trailer of any length.
        let size = u64::from_le_bytes(data[..8].try_into().unwrap());
        if let Ok((start, len)) = pack::header_location(size, &data[8..]) {
            assert_eq!(
                data.len() - 8,
                TRAILER_LEN,
                "trailer of the wrong length accepted"
            );
            assert_eq!(
                u128::from(start) + u128::from(len) + TRAILER_LEN as u128,
                u128::from(size)
            );
        }
    }
    accepted
}

pub fn index(data: &[u8]) -> bool {
    let Ok(body) = IndexBody::decode(data) else {
        return false;
    };
    for p in &body.packs {
        for b in &p.blobs {
            assert!(u64::from(b.offset) + u64::from(b.stored_len) <= p.size);
        }
    }
    let again = IndexBody::decode(&body.encode())
        .unwrap_or_else(|e| panic!("re-encoded index does not decode: {e:?}"));
    assert_eq!(again, body, "index changed through encode/decode");
    true
}

pub fn tree(data: &[u8]) -> bool {
    let Ok(t) = Tree::decode(data) else {
        return false;
    };
    // What decode promises restore: safe names, sorted, unique; file sizes
    // match their chunks unless the entry is marked damaged.
    for e in &t.entries {
        assert!(
            tree::valid_name(&e.name),
            "unsafe name accepted: {:?}",
            e.name
        );
        if let Content::File { chunks } = &e.content {
            let total: u64 = chunks.iter().map(|c| u64::from(c.len)).sum();
            assert!(total == e.size || e.flags & FLAG_DAMAGED != 0);
        }
    }
    assert!(
        t.entries.windows(2).all(|w| w[0].name < w[1].name),
        "names not sorted and unique"
    );
    let again = Tree::decode(&t.encode())
        .unwrap_or_else(|e| panic!("re-encoded tree does not decode: {e:?}"));
    assert_eq!(again, t, "tree changed through encode/decode");
    true
}

pub fn snapshot(data: &[u8]) -> bool {
    let Ok(s) = Snapshot::decode(data) else {
        return false;
    };
    let again = Snapshot::decode(&s.encode())
        .unwrap_or_else(|e| panic!("re-encoded snapshot does not decode: {e:?}"));
    assert_eq!(again, s, "snapshot changed through encode/decode");
    true
}

/// Deletion marks: packs and holders come back sorted and unique.
pub fn marks(data: &[u8]) -> bool {
    let Ok(m) = Marks::decode(data) else {
        return false;
    };
    assert!(
        m.packs.windows(2).all(|w| w[0] < w[1]),
        "marks packs not strictly increasing"
    );
    if let Some(h) = &m.holders {
        assert!(
            h.windows(2).all(|w| w[0] < w[1]),
            "marks holders not strictly increasing"
        );
    }
    let again = Marks::decode(&m.encode())
        .unwrap_or_else(|e| panic!("re-encoded marks do not decode: {e:?}"));
    assert_eq!(again, m, "marks changed through encode/decode");
    true
}

/// Bodies with an encoder: whatever decodes must encode to a body that
/// decodes to the same value.
macro_rules! round_trip {
    ($name:literal, $decode:expr, $encode:expr, $data:expr) => {{
        let Ok(value) = $decode($data) else {
            return false;
        };
        let again = $decode(&$encode(&value))
            .unwrap_or_else(|e| panic!("re-encoded {} does not decode: {e:?}", $name));
        assert_eq!(again, value, "{} changed through encode/decode", $name);
        true
    }};
}

pub fn lock(data: &[u8]) -> bool {
    round_trip!("lock", Lock::decode, Lock::encode, data)
}

pub fn drill(data: &[u8]) -> bool {
    round_trip!("drill record", Drill::decode, Drill::encode, data)
}

pub fn verified(data: &[u8]) -> bool {
    round_trip!(
        "verification record",
        VerifiedRecord::decode,
        VerifiedRecord::encode,
        data
    )
}

pub fn pg_tables(data: &[u8]) -> bool {
    round_trip!(
        "pg table list",
        pg_tables::decode,
        |t: &Vec<pg_tables::TableRows>| pg_tables::encode(t),
        data
    )
}

pub fn pg_base(data: &[u8]) -> bool {
    round_trip!(
        "pg base backup",
        BaseBackup::decode,
        BaseBackup::encode,
        data
    )
}

pub fn pg_parts(data: &[u8]) -> bool {
    round_trip!(
        "pg part list",
        pg_parts::decode,
        |t: &Vec<pg_parts::TableParts>| pg_parts::encode(t),
        data
    )
}

pub fn run_record(data: &[u8]) -> bool {
    let Ok(r) = RunRecord::decode(data) else {
        return false;
    };
    let again = RunRecord::decode(&r.encode())
        .unwrap_or_else(|e| panic!("re-encoded run record does not decode: {e:?}"));
    assert_eq!(again, r, "run record changed through encode/decode");
    true
}

/// Everything of the WAL archive a reader parses: the object's split, the
/// header body, the name inside it, and the local key file. Accepted means
/// a header body that decodes (and encodes back to the same value).
pub fn wal(data: &[u8]) -> bool {
    if let Ok((header_box, content_box)) = wal_format::split(data) {
        assert_eq!(
            wal_format::PREFIX_LEN + header_box.len() + content_box.len(),
            data.len(),
            "split lost bytes"
        );
    }
    if let Ok(name) = std::str::from_utf8(data) {
        if let Ok(file) = WalFile::parse(name) {
            assert_eq!(file.name(), name, "a WAL name has one spelling");
        }
    }
    if let Ok(key) = WalKey::decode(data) {
        let again = WalKey::decode(&key.encode())
            .unwrap_or_else(|e| panic!("re-encoded wal key file does not decode: {e:?}"));
        assert_eq!(again.repo_id, key.repo_id);
        assert_eq!(&*again.keys.encode(), &*key.keys.encode());
    }
    round_trip!("wal header", WalHeader::decode, WalHeader::encode, data)
}

/// Sealed boxes: split, then open under fixed master keys as every kind, with
/// and without a blob id. Anything that opens must seal back to the same bytes.
pub fn sealed(data: &[u8]) -> bool {
    let Ok(parts) = sealed::split(data) else {
        assert!(
            data.len() < OVERHEAD || data[0] != SEALED_VERSION,
            "a well-formed box was refused"
        );
        return false;
    };
    assert_eq!(
        sealed::header(parts.epoch, &parts.nonce)[..],
        data[..HEADER_LEN]
    );
    assert_eq!(parts.ciphertext, &data[HEADER_LEN..]);
    let keys = master_keys();
    let mut opened = 0;
    for kind in BOX_KINDS {
        for id in [None, Some(&BLOB_ID)] {
            if let Ok(plain) = keys.open(kind, id, data) {
                assert_eq!(plain.len() + OVERHEAD, data.len());
                assert_eq!(
                    keys.seal(kind, id, &plain, parts.nonce),
                    data,
                    "box does not seal back"
                );
                opened += 1;
            }
        }
    }
    assert!(
        opened <= 1,
        "one box opened as {opened} different kinds or blobs"
    );
    opened == 1
}

/// Payload encodings (raw or zstd) under a few length caps: 0, the input's
/// length and `PAYLOAD_CAP`. Whatever decodes must respect the cap exactly.
/// The base the `payload` target decodes delta payloads against.
pub const DELTA_BASE: &[u8] = b"the base blob of every delta payload the payload target decodes; \
      deltas against it are short, anything else fails or decodes to other bytes";

pub fn payload(data: &[u8]) -> bool {
    if matches!(
        data.first(),
        Some(&payload::ENCODING_DELTA | &payload::ENCODING_DELTA_CHAINED)
    ) {
        return delta_payload(data);
    }
    let mut accepted = false;
    for cap in [0, data.len(), PAYLOAD_CAP] {
        let Ok(raw) = payload::decode(data, cap) else {
            continue;
        };
        assert!(
            raw.len() <= cap,
            "{} bytes decoded under a cap of {cap}",
            raw.len()
        );
        if data[0] == ENCODING_RAW {
            assert_eq!(raw, &data[1..]);
        }
        let exact = payload::decode(data, raw.len())
            .unwrap_or_else(|e| panic!("refused under a cap of its own length: {e:?}"));
        assert_eq!(exact, raw);
        if !raw.is_empty() {
            assert!(
                payload::decode(data, raw.len() - 1).is_err(),
                "cap not enforced"
            );
        }
        for level in [0, 1] {
            let encoded = payload::encode(&raw, level);
            assert_eq!(
                payload::decode(&encoded, raw.len()).expect("re-encoded payload"),
                raw
            );
        }
        accepted = true;
    }
    accepted
}

/// A delta decodes to exactly the length it is given, only with a base,
/// and a delta of what it decoded to decodes back.
fn delta_payload(data: &[u8]) -> bool {
    assert!(
        payload::decode(data, PAYLOAD_CAP).is_err(),
        "a delta decoded without its base"
    );
    let Ok((generation, frame)) = vault::format::delta::parse(data[0], &data[1..]) else {
        assert!(payload::decode_with_base(data, PAYLOAD_CAP, Some(DELTA_BASE)).is_err());
        return false;
    };
    assert!(generation > 0, "a delta of generation 0 parsed");
    assert_eq!(
        vault::format::delta::generation(data).ok(),
        Some(generation)
    );
    // Writers record the length in the frame; a blob's comes from its index entry.
    let recorded = vault::format::delta::recorded_len(frame)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n <= PAYLOAD_CAP)
        .unwrap_or(0);
    let mut accepted = false;
    for cap in [0, data.len(), recorded] {
        let Ok(raw) = payload::decode_with_base(data, cap, Some(DELTA_BASE)) else {
            continue;
        };
        assert_eq!(
            raw.len(),
            cap,
            "a delta decoded to another length than asked"
        );
        let chained = (data[0] == payload::ENCODING_DELTA_CHAINED).then_some(generation);
        let again = vault::format::delta::encode(&raw, DELTA_BASE, 1, chained).expect("delta");
        assert_eq!(
            payload::decode_with_base(&again, raw.len(), Some(DELTA_BASE))
                .expect("re-encoded delta"),
            raw
        );
        assert_eq!(
            vault::format::delta::generation(&again).ok(),
            Some(generation)
        );
        accepted = true;
    }
    accepted
}
