//! Property tests for the on-disk formats: every encoder round trips through
//! its decoder, decoders never panic on arbitrary or mutated bytes, and a
//! sealed box opens only as it was sealed.

use crate::checks;

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use vault::crypto::{open_with, seal_with, MasterKeys, SecretKey};
use vault::format::codec::{Reader, Writer};
use vault::format::config::{
    ChunkerParams, Config, CHUNKER_FASTCDC_2020, CHUNK_AVG_RANGE, CHUNK_MAX_RANGE, CHUNK_MIN_RANGE,
    PACK_TARGET_RANGE,
};
use vault::format::index::{IndexBlob, IndexBody, IndexPack};
use vault::format::keyfile::{
    KdfParams, KeyFile, KeyHeader, KeySet, MAX_KDF_ITERATIONS, MAX_KDF_MEMORY_KIB,
    MAX_KDF_PARALLELISM,
};
use vault::format::pack::{self, PackEntry, TRAILER_LEN};
use vault::format::payload;
use vault::format::sealed::{self, BoxKind, HEADER_LEN, NONCE_LEN, OVERHEAD};
use vault::format::snapshot::{Snapshot, Summary};
use vault::format::tree::{self, ChunkRef, Content, Entry, EntryKind, Tree, FLAG_DAMAGED};
use vault::format::{BlobKind, Id, Timestamp, REPO_VERSION, SUPPORTED_REPO_VERSIONS};
use vault::ErrorKind;
use zeroize::Zeroizing;

// ---------------------------------------------------------------- strategies

fn id() -> impl Strategy<Value = Id> {
    any::<[u8; 32]>().prop_map(Id::from_bytes)
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (any::<i64>(), 0u32..1_000_000_000).prop_map(|(secs, nanos)| Timestamp { secs, nanos })
}

fn blob_kind() -> impl Strategy<Value = BlobKind> {
    prop_oneof![Just(BlobKind::Data), Just(BlobKind::Tree)]
}

fn box_kind() -> impl Strategy<Value = BoxKind> {
    proptest::sample::select(checks::BOX_KINDS.to_vec())
}

/// A value in `lo..=hi`, biased towards the bounds.
fn within(lo: u32, hi: u32) -> BoxedStrategy<u32> {
    prop_oneof![Just(lo), Just(hi), lo..=hi].boxed()
}

/// A value around the bounds of `lo..=hi` (just inside and just outside) or
/// anything at all.
fn near(lo: u32, hi: u32) -> BoxedStrategy<u32> {
    prop_oneof![
        Just(lo),
        Just(hi),
        Just(lo.saturating_sub(1)),
        Just(hi.saturating_add(1)),
        lo..=hi,
        any::<u32>(),
    ]
    .boxed()
}

fn valid_config() -> impl Strategy<Value = Config> {
    let chunker = (8u32..=22).prop_flat_map(|avg_bits| {
        let avg = 1u32 << avg_bits;
        assert!(avg >= CHUNK_AVG_RANGE.0 && avg <= CHUNK_AVG_RANGE.1);
        (
            within(CHUNK_MIN_RANGE.0, CHUNK_MIN_RANGE.1.min(avg)),
            within(CHUNK_MAX_RANGE.0.max(avg), CHUNK_MAX_RANGE.1),
        )
            .prop_map(move |(min, max)| ChunkerParams {
                kind: CHUNKER_FASTCDC_2020,
                min,
                avg,
                max,
            })
    });
    (
        id(),
        chunker,
        within(PACK_TARGET_RANGE.0, PACK_TARGET_RANGE.1),
        0i32..=22,
        timestamp(),
    )
        .prop_map(
            |(repo_id, chunker, pack_target, compression, created)| Config {
                repo_version: REPO_VERSION,
                repo_id,
                chunker,
                pack_target,
                compression,
                created,
            },
        )
}

/// Any field values, valid or not (timestamps stay valid so the config's own
/// checks decide).
fn any_config() -> impl Strategy<Value = Config> {
    let chunker = (
        prop_oneof![Just(CHUNKER_FASTCDC_2020), any::<u8>()],
        near(CHUNK_MIN_RANGE.0, CHUNK_MIN_RANGE.1),
        prop_oneof![
            (8u32..=22).prop_map(|b| 1u32 << b),
            near(CHUNK_AVG_RANGE.0, CHUNK_AVG_RANGE.1)
        ],
        near(CHUNK_MAX_RANGE.0, CHUNK_MAX_RANGE.1),
    )
        .prop_map(|(kind, min, avg, max)| ChunkerParams {
            kind,
            min,
            avg,
            max,
        });
    (
        prop_oneof![Just(REPO_VERSION), any::<u32>()],
        id(),
        chunker,
        near(PACK_TARGET_RANGE.0, PACK_TARGET_RANGE.1),
        prop_oneof![-1i32..=23, any::<i32>()],
        timestamp(),
    )
        .prop_map(
            |(repo_version, repo_id, chunker, pack_target, compression, created)| Config {
                repo_version,
                repo_id,
                chunker,
                pack_target,
                compression,
                created,
            },
        )
}

fn kdf_params() -> impl Strategy<Value = KdfParams> {
    (1u32..=MAX_KDF_PARALLELISM, 1u32..=MAX_KDF_ITERATIONS).prop_flat_map(
        |(parallelism, iterations)| {
            within(8 * parallelism, MAX_KDF_MEMORY_KIB).prop_map(move |memory_kib| KdfParams {
                memory_kib,
                iterations,
                parallelism,
            })
        },
    )
}

fn key_header() -> impl Strategy<Value = KeyHeader> {
    (
        kdf_params(),
        any::<[u8; 32]>(),
        timestamp(),
        any::<String>(),
        any::<String>(),
    )
        .prop_map(|(kdf, salt, created, host, user)| KeyHeader {
            kdf,
            salt,
            created,
            host,
            user,
        })
}

/// A key set as plain arrays: id key, chunker key, (epoch, data key)s.
type KeySetParts = ([u8; 32], [u8; 32], Vec<(u32, [u8; 32])>);

fn keyset_parts() -> impl Strategy<Value = KeySetParts> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        vec((any::<u32>(), any::<[u8; 32]>()), 1..6),
    )
}

/// `data_keys` is never empty (the strategies make at least one).
fn keyset((id_key, chunker_key, data_keys): &KeySetParts) -> KeySet {
    let (first, more) = data_keys.split_first().expect("at least one data key");
    let mut set = KeySet::new(
        Zeroizing::new(*id_key),
        Zeroizing::new(*chunker_key),
        (first.0, Zeroizing::new(first.1)),
    );
    for (e, k) in more {
        set.add_data_key(*e, Zeroizing::new(*k));
    }
    set
}

fn pack_entry() -> impl Strategy<Value = PackEntry> {
    (
        blob_kind(),
        id(),
        any::<u32>(),
        any::<u32>(),
        option::of(id()),
    )
        .prop_map(|(kind, id, stored_len, raw_len, base)| PackEntry {
            kind,
            id,
            stored_len,
            raw_len,
            base: base.filter(|b| kind == BlobKind::Data && *b != id),
        })
}

fn index_pack() -> impl Strategy<Value = IndexPack> {
    // Blobs lie one after another (gaps allowed, no overlap), listed in any
    // order; offsets stay within u32.
    let blob = (
        blob_kind(),
        id(),
        prop_oneof![Just(0u32), 0u32..1000, any::<u32>()],
        prop_oneof![Just(0u32), 1u32..10_000, any::<u32>()],
        any::<u32>(),
        option::of(id()),
    );
    (
        id(),
        vec(blob, 0..6),
        any::<u64>(),
        prop_oneof![Just(0u64), 0u64..1000, any::<u64>()],
    )
        .prop_map(|(id, parts, seed, extra)| {
            let mut blobs = Vec::new();
            let mut pos = 0u64;
            for (kind, id, gap, stored_len, raw_len, base) in parts {
                let offset = pos + u64::from(gap);
                let Ok(offset) = u32::try_from(offset) else {
                    break;
                };
                blobs.push(IndexBlob {
                    kind,
                    id,
                    offset,
                    stored_len,
                    raw_len,
                    base: base.filter(|b| kind == BlobKind::Data && *b != id),
                });
                pos = u64::from(offset) + u64::from(stored_len);
            }
            // Any listing order: rotate by a seed-chosen amount.
            if !blobs.is_empty() {
                let k = (seed % blobs.len() as u64) as usize;
                blobs.rotate_left(k);
            }
            // The pack is at least as long as its furthest blob.
            IndexPack {
                id,
                size: pos.saturating_add(extra),
                blobs,
            }
        })
}

fn index_body() -> impl Strategy<Value = IndexBody> {
    (vec(id(), 0..4), vec(index_pack(), 0..4))
        .prop_map(|(supersedes, packs)| IndexBody { supersedes, packs })
}

fn entry_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-zA-Z0-9._ -]{1,12}".prop_map(String::into_bytes),
        vec(
            any::<u8>().prop_filter("no NUL or slash", |b| *b != 0 && *b != b'/'),
            1..12
        ),
    ]
    .prop_filter("not . or ..", |n| tree::valid_name(n))
}

fn kind_and_content() -> impl Strategy<Value = (EntryKind, Content)> {
    let chunk = (id(), any::<u32>()).prop_map(|(id, len)| ChunkRef { id, len });
    prop_oneof![
        vec(chunk, 0..5).prop_map(|chunks| (EntryKind::File, Content::File { chunks })),
        id().prop_map(|subtree| (EntryKind::Dir, Content::Dir { subtree })),
        vec(any::<u8>(), 0..40)
            .prop_map(|target| (EntryKind::Symlink, Content::Symlink { target })),
        (any::<bool>(), any::<u64>()).prop_map(|(block, rdev)| {
            let kind = if block {
                EntryKind::BlockDevice
            } else {
                EntryKind::CharDevice
            };
            (kind, Content::Device { rdev })
        }),
        any::<bool>().prop_map(|socket| {
            (
                if socket {
                    EntryKind::Socket
                } else {
                    EntryKind::Fifo
                },
                Content::Other,
            )
        }),
    ]
}

/// Everything of an entry but its name.
fn entry_body() -> impl Strategy<Value = Entry> {
    (
        kind_and_content(),
        prop_oneof![Just(0u8), Just(FLAG_DAMAGED)],
        (any::<u32>(), any::<u32>(), any::<u32>()),
        (any::<String>(), any::<String>()),
        (timestamp(), timestamp()),
        (any::<u64>(), any::<u64>(), any::<u64>()),
    )
        .prop_map(
            |(
                (kind, content),
                flags,
                (mode, uid, gid),
                (user, group),
                (mtime, ctime),
                (inode, dev, size),
            )| {
                let size = match &content {
                    // Damaged files may claim any size; whole ones add up.
                    Content::File { chunks } if flags & FLAG_DAMAGED == 0 => {
                        chunks.iter().map(|c| u64::from(c.len)).sum()
                    }
                    _ => size,
                };
                Entry {
                    name: Vec::new(),
                    kind,
                    flags,
                    mode,
                    uid,
                    gid,
                    user,
                    group,
                    mtime,
                    ctime,
                    inode,
                    dev,
                    size,
                    content,
                }
            },
        )
}

fn valid_tree() -> impl Strategy<Value = Tree> {
    btree_map(entry_name(), entry_body(), 0..8).prop_map(|m: BTreeMap<Vec<u8>, Entry>| Tree {
        // BTreeMap order is bytewise order of the names: sorted and unique.
        entries: m.into_iter().map(|(name, e)| Entry { name, ..e }).collect(),
    })
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    let summary = vec(any::<u64>(), 7).prop_map(|v| Summary {
        files: v[0],
        dirs: v[1],
        bytes_read: v[2],
        bytes_added: v[3],
        blobs_added: v[4],
        duration_ms: v[5],
        warnings: v[6],
    });
    (
        (
            timestamp(),
            any::<String>(),
            any::<String>(),
            vec(any::<String>(), 0..4),
        ),
        (any::<String>(), vec(vec(any::<u8>(), 0..40), 0..4)),
        (id(), proptest::option::of(id()), summary),
        (
            any::<String>(),
            vec((any::<String>(), vec(any::<u8>(), 0..40)), 0..4),
        ),
    )
        .prop_map(
            |(
                (time, host, user, tags),
                (source, paths),
                (root, parent, summary),
                (program_version, meta),
            )| {
                Snapshot {
                    time,
                    host,
                    user,
                    tags,
                    source,
                    paths,
                    root,
                    parent,
                    summary,
                    program_version,
                    meta,
                }
            },
        )
}

/// A valid encoding of some object, as fed to the matching fuzz check.
fn valid_encoding() -> impl Strategy<Value = (&'static str, Vec<u8>)> {
    prop_oneof![
        valid_config().prop_map(|c| ("config", c.encode())),
        key_header().prop_map(|h| ("key", h.encode())),
        keyset_parts().prop_map(|p| ("key", keyset(&p).encode().to_vec())),
        vec(pack_entry(), 0..5).prop_map(|e| ("pack_header", pack::encode_header(&e))),
        index_body().prop_map(|i| ("index", i.encode())),
        valid_tree().prop_map(|t| ("tree", t.encode())),
        snapshot().prop_map(|s| ("snapshot", s.encode())),
        (vec(any::<u8>(), 0..200), 0i32..4)
            .prop_map(|(raw, level)| ("payload", payload::encode(&raw, level))),
        (
            box_kind(),
            vec(any::<u8>(), 0..100),
            any::<[u8; NONCE_LEN]>()
        )
            .prop_map(|(kind, plain, nonce)| {
                (
                    "sealed",
                    checks::master_keys().seal(kind, None, &plain, nonce),
                )
            }),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    SetByte(usize, u8),
    Truncate(usize),
    Insert(usize, u8),
    Remove(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(p, b)| Mutation::FlipBit(p, b)),
        (
            any::<usize>(),
            prop_oneof![
                Just(0u8),
                Just(1),
                Just(0x7f),
                Just(0x80),
                Just(0xff),
                any::<u8>()
            ]
        )
            .prop_map(|(p, b)| Mutation::SetByte(p, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Insert(p, b)),
        any::<usize>().prop_map(Mutation::Remove),
    ]
}

fn apply(data: &mut Vec<u8>, m: &Mutation) {
    let len = data.len();
    match *m {
        Mutation::Insert(p, b) => data.insert(p % (len + 1), b),
        _ if len == 0 => {}
        Mutation::FlipBit(p, bit) => data[p % len] ^= 1 << bit,
        Mutation::SetByte(p, b) => data[p % len] = b,
        Mutation::Truncate(p) => data.truncate(p % len),
        Mutation::Remove(p) => {
            data.remove(p % len);
        }
    }
}

// ------------------------------------------------------------- round trips

proptest! {
    #[test]
    fn config_round_trip(c in valid_config()) {
        prop_assert!(c.validate().is_ok());
        prop_assert_eq!(Config::decode(&c.encode()).unwrap(), c);
    }

    /// Decode accepts exactly the configs `validate` accepts (and this
    /// build's repository version).
    #[test]
    fn config_decode_agrees_with_validate(c in any_config()) {
        let expected_ok = SUPPORTED_REPO_VERSIONS.contains(&c.repo_version) && c.validate().is_ok();
        match Config::decode(&c.encode()) {
            Ok(decoded) => {
                prop_assert!(expected_ok, "accepted {:?}", c);
                prop_assert_eq!(decoded, c);
            }
            Err(e) => {
                prop_assert!(!expected_ok, "rejected {:?}: {}", c, e);
                prop_assert!(matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Unsupported), "{:?}", e);
            }
        }
    }

    #[test]
    fn key_header_round_trip(h in key_header(), rest in vec(any::<u8>(), 0..100)) {
        let encoded = h.encode();
        let mut bytes = encoded.clone();
        bytes.extend_from_slice(&rest);
        let file = KeyFile::decode(&bytes).unwrap();
        prop_assert_eq!(&file.header, &h);
        prop_assert_eq!(file.header_bytes, &encoded[..]);
        prop_assert_eq!(file.sealed_keyset, &rest[..]);
    }

    #[test]
    fn key_header_rejects_out_of_range_kdf(
        h in key_header(),
        memory_kib in any::<u32>(),
        iterations in any::<u32>(),
        parallelism in any::<u32>(),
    ) {
        let kdf = KdfParams { memory_kib, iterations, parallelism };
        let h = KeyHeader { kdf, ..h };
        let encoded = h.encode();
        let decoded = KeyFile::decode(&encoded);
        prop_assert_eq!(decoded.is_ok(), kdf.validate().is_ok());
    }

    #[test]
    fn keyset_round_trip(parts in keyset_parts()) {
        let set = keyset(&parts);
        let decoded = KeySet::decode(&set.encode()).unwrap();
        prop_assert_eq!(**decoded.id_key(), parts.0);
        prop_assert_eq!(**decoded.chunker_key(), parts.1);
        let keys: Vec<(u32, [u8; 32])> = decoded.data_keys().map(|(e, k)| (*e, **k)).collect();
        prop_assert_eq!(keys, parts.2);
    }

    #[test]
    fn pack_header_round_trip(entries in vec(pack_entry(), 0..20)) {
        prop_assert_eq!(pack::decode_header(&pack::encode_header(&entries)).unwrap(), entries);
    }

    #[test]
    fn pack_trailer_round_trip(blob_area in 0u64..1 << 40, header_len in any::<u32>()) {
        let size = blob_area + u64::from(header_len) + TRAILER_LEN as u64;
        let trailer = pack::trailer(header_len);
        prop_assert_eq!(pack::header_location(size, &trailer).unwrap(), (blob_area, header_len));
        // One byte short of holding the header and the trailer.
        prop_assert!(pack::header_location(u64::from(header_len) + TRAILER_LEN as u64 - 1, &trailer).is_err());
    }

    #[test]
    fn pack_entry_offsets_are_prefix_sums(entries in vec(pack_entry(), 0..20), off_by in 1u64..1000) {
        let total: u64 = entries.iter().map(|e| u64::from(e.stored_len)).sum();
        let offsets = pack::entry_offsets(&entries, total).unwrap();
        let mut pos = 0;
        for (e, off) in entries.iter().zip(&offsets) {
            prop_assert_eq!(*off, pos);
            pos += u64::from(e.stored_len);
        }
        prop_assert!(pack::entry_offsets(&entries, total + off_by).is_err());
        if total >= off_by {
            prop_assert!(pack::entry_offsets(&entries, total - off_by).is_err());
        }
    }

    #[test]
    fn index_round_trip(body in index_body()) {
        prop_assert_eq!(IndexBody::decode(&body.encode()).unwrap(), body);
    }

    #[test]
    fn index_rejects_blob_beyond_its_pack(body in index_body(), short_by in 1u64..1000) {
        let with_blob = body.packs.iter().position(|p| p.blobs.iter().any(|b| b.stored_len > 0 || b.offset > 0));
        prop_assume!(with_blob.is_some());
        let mut body = body;
        let p = &mut body.packs[with_blob.unwrap()];
        let end = p.blobs.iter().map(|b| u64::from(b.offset) + u64::from(b.stored_len)).max().unwrap();
        p.size = end.saturating_sub(short_by);
        prop_assert!(IndexBody::decode(&body.encode()).is_err());
    }

    /// Two blobs of one pack may not share bytes.
    #[test]
    fn index_rejects_overlapping_blobs(body in index_body(), into in any::<u32>()) {
        let target = body.packs.iter().position(|p| p.blobs.iter().any(|b| b.stored_len > 0));
        prop_assume!(target.is_some());
        let mut body = body;
        let p = &mut body.packs[target.unwrap()];
        let host = *p.blobs.iter().find(|b| b.stored_len > 0).unwrap();
        // One byte somewhere inside another blob.
        let offset = host.offset.saturating_add(into % host.stored_len);
        p.blobs.push(IndexBlob { offset, stored_len: 1, ..host });
        p.size = p.size.max(u64::from(offset) + 1);
        prop_assert!(IndexBody::decode(&body.encode()).is_err());
    }

    #[test]
    fn tree_round_trip(t in valid_tree()) {
        prop_assert_eq!(Tree::decode(&t.encode()).unwrap(), t);
    }

    #[test]
    fn tree_rejects_unsafe_names(t in valid_tree(), which in any::<usize>(), bad in prop_oneof![
        Just(b"".to_vec()), Just(b".".to_vec()), Just(b"..".to_vec()), Just(b"a/b".to_vec()),
        Just(b"/etc".to_vec()), Just(b"nul\0".to_vec()),
    ]) {
        prop_assume!(!t.entries.is_empty());
        let mut t = t;
        let i = which % t.entries.len();
        t.entries[i].name = bad;
        prop_assert!(Tree::decode(&t.encode()).is_err());
    }

    #[test]
    fn tree_rejects_unknown_flags(t in valid_tree(), which in any::<usize>(), flags in any::<u8>()) {
        prop_assume!(!t.entries.is_empty() && flags & !FLAG_DAMAGED != 0);
        let mut t = t;
        let i = which % t.entries.len();
        t.entries[i].flags = flags;
        prop_assert!(Tree::decode(&t.encode()).is_err());
    }

    #[test]
    fn tree_rejects_unsorted_or_repeated_names(t in valid_tree(), which in any::<usize>(), repeat in any::<bool>()) {
        prop_assume!(t.entries.len() >= 2);
        let mut t = t;
        let i = which % (t.entries.len() - 1);
        if repeat {
            t.entries[i + 1].name = t.entries[i].name.clone();
        } else {
            t.entries.swap(i, i + 1);
        }
        prop_assert!(Tree::decode(&t.encode()).is_err());
    }

    #[test]
    fn tree_rejects_files_whose_chunks_do_not_add_up(t in valid_tree(), off_by in 1u64..1000) {
        let file = t.entries.iter().position(|e| e.kind == EntryKind::File && e.flags & FLAG_DAMAGED == 0);
        prop_assume!(file.is_some());
        let mut t = t;
        let e = &mut t.entries[file.unwrap()];
        e.size = e.size.wrapping_add(off_by);
        prop_assert!(Tree::decode(&t.encode()).is_err());
    }

    #[test]
    fn snapshot_round_trip(s in snapshot()) {
        prop_assert_eq!(Snapshot::decode(&s.encode()).unwrap(), s);
    }

    #[test]
    fn payload_round_trip(raw in vec(any::<u8>(), 0..2000), level in 0i32..6, repeat in 1usize..20) {
        let raw = raw.repeat(repeat);
        let encoded = payload::encode(&raw, level);
        prop_assert_eq!(payload::decode(&encoded, raw.len()).unwrap(), raw.clone());
        if !raw.is_empty() {
            prop_assert!(payload::decode(&encoded, raw.len() - 1).is_err());
        }
    }

    #[test]
    fn varint_round_trip(v in prop_oneof![any::<u64>(), 0u64..300, Just(u64::MAX)]) {
        let mut w = Writer::new();
        w.varint(v);
        let bytes = w.into_bytes();
        // Canonical LEB128: 7 bits a byte, no more bytes than needed.
        let bits = 64 - v.leading_zeros() as usize;
        prop_assert_eq!(bytes.len(), bits.div_ceil(7).max(1));
        let mut r = Reader::new(&bytes, "test");
        prop_assert_eq!(r.varint().unwrap(), v);
        prop_assert!(r.finish().is_ok());
        // Any strict prefix is truncated.
        for cut in 0..bytes.len() {
            prop_assert!(Reader::new(&bytes[..cut], "test").varint().is_err());
        }
    }

    #[test]
    fn codec_fields_round_trip(
        values in vec(any::<u64>(), 0..10),
        blob in vec(any::<u8>(), 0..300),
        s in any::<String>(),
        opt in proptest::option::of(id()),
        n in (any::<u8>(), any::<u32>(), any::<i64>()),
    ) {
        let mut w = Writer::new();
        w.list(&values, |w, v| w.varint(*v));
        w.bytes(&blob);
        w.str(&s);
        w.opt_id(opt.as_ref());
        w.u8(n.0);
        w.u32(n.1);
        w.i64(n.2);
        let bytes = w.into_bytes();
        let mut r = Reader::new(&bytes, "test");
        prop_assert_eq!(r.list(1, |r| r.varint()).unwrap(), values);
        prop_assert_eq!(r.bytes().unwrap(), &blob[..]);
        prop_assert_eq!(r.string().unwrap(), s);
        prop_assert_eq!(r.opt_id().unwrap(), opt);
        prop_assert_eq!((r.u8().unwrap(), r.u32().unwrap(), r.i64().unwrap()), n);
        prop_assert!(r.finish().is_ok());
    }

    /// One encoding per value: a trailing zero group is refused.
    #[test]
    fn varint_rejects_padding(v in prop_oneof![any::<u64>(), 0u64..300], pad in 1usize..3) {
        let mut w = Writer::new();
        w.varint(v);
        let mut bytes = w.into_bytes();
        for _ in 0..pad {
            *bytes.last_mut().unwrap() |= 0x80;
            bytes.push(0);
        }
        prop_assert!(Reader::new(&bytes, "test").varint().is_err(), "{:02x?}", bytes);
    }

    #[test]
    fn varint_rejects_overflow(extra in 2u8..0x80, continuation in any::<bool>()) {
        // Nine full bytes carry 63 bits; a tenth may only add the top bit.
        let mut bytes = vec![0xff; 9];
        bytes.push(if continuation { 0x80 | extra } else { extra });
        bytes.push(0);
        prop_assert!(Reader::new(&bytes, "test").varint().is_err());
        bytes[9] = 1;
        prop_assert_eq!(Reader::new(&bytes, "test").varint().unwrap(), u64::MAX);
    }
}

// ------------------------------------------------------- decoders never panic

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Every parser, on arbitrary bytes: Ok or Err, and what is accepted
    /// round trips (the checks the fuzz targets run).
    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(data in vec(any::<u8>(), 0..400)) {
        for (_, check) in checks::TARGETS {
            check(&data);
        }
    }

    /// Valid encodings with a few bytes changed reach deeper than noise does.
    #[test]
    fn decoders_never_panic_on_mutated_encodings(
        (_target, data) in valid_encoding(),
        mutations in vec(mutation(), 1..4),
    ) {
        let mut data = data;
        for m in &mutations {
            apply(&mut data, m);
        }
        for (_, check) in checks::TARGETS {
            check(&data);
        }
    }

    /// Reader primitives on arbitrary bytes.
    #[test]
    fn reader_never_panics(data in vec(any::<u8>(), 0..64), min_item in 0usize..64) {
        let mut r = Reader::new(&data, "test");
        let _ = r.varint();
        let _ = r.count(min_item);
        let _ = r.string();
        let _ = r.opt_id();
        let _ = r.list(min_item, |r| r.u32());
        let _ = r.expect_version(1);
        let _ = r.finish();
    }
}

// ------------------------------------------------------------- seal and open

fn secret(bytes: [u8; 32]) -> SecretKey {
    Zeroizing::new(bytes)
}

proptest! {
    #[test]
    fn seal_open_round_trip(
        key in any::<[u8; 32]>(),
        epoch in any::<u32>(),
        kind in box_kind(),
        blob_id in proptest::option::of(id()),
        plain in vec(any::<u8>(), 0..300),
        nonce in any::<[u8; NONCE_LEN]>(),
    ) {
        let key = secret(key);
        let boxed = seal_with(&key, epoch, kind, blob_id.as_ref(), &plain, nonce);
        prop_assert_eq!(boxed.len(), plain.len() + OVERHEAD);
        let parts = sealed::split(&boxed).unwrap();
        prop_assert_eq!(parts.epoch, epoch);
        prop_assert_eq!(parts.nonce, nonce);
        prop_assert_eq!(&boxed[..HEADER_LEN], &sealed::header(epoch, &nonce)[..]);
        prop_assert_eq!(open_with(&key, kind, blob_id.as_ref(), &boxed).unwrap(), plain);
    }

    /// A box opens only with its key, as its kind, for its blob.
    #[test]
    fn box_opens_only_as_sealed(
        key in any::<[u8; 32]>(),
        other_key in any::<[u8; 32]>(),
        kind in box_kind(),
        other_kind in box_kind(),
        blob_id in proptest::option::of(id()),
        other_id in proptest::option::of(id()),
        plain in vec(any::<u8>(), 0..100),
        nonce in any::<[u8; NONCE_LEN]>(),
    ) {
        let boxed = seal_with(&secret(key), 0, kind, blob_id.as_ref(), &plain, nonce);
        let opened = |k: [u8; 32], kind, id: Option<&Id>| open_with(&secret(k), kind, id, &boxed);
        prop_assert_eq!(opened(other_key, kind, blob_id.as_ref()).is_ok(), other_key == key);
        prop_assert_eq!(opened(key, other_kind, blob_id.as_ref()).is_ok(), other_kind == kind);
        // No id and the all-zero id are the same associated data.
        let zero = Id::from_bytes([0; 32]);
        let same_id = other_id.unwrap_or(zero) == blob_id.unwrap_or(zero);
        let err = opened(key, kind, other_id.as_ref());
        prop_assert_eq!(err.is_ok(), same_id);
        if let Err(e) = err {
            prop_assert_eq!(e.kind(), ErrorKind::Tampered);
        }
    }

    /// Through the master keys (which pick the key by the box's epoch), any
    /// single flipped bit anywhere in the box is rejected.
    #[test]
    fn master_keys_reject_any_flipped_bit(
        parts in keyset_parts(),
        kind in box_kind(),
        blob_id in proptest::option::of(id()),
        plain in vec(any::<u8>(), 0..100),
        nonce in any::<[u8; NONCE_LEN]>(),
        pos in any::<usize>(),
        bit in 0u8..8,
    ) {
        // Distinct epochs: the master keys require them to pick one key.
        let mut parts = parts;
        parts.2.sort_by_key(|(e, _)| *e);
        parts.2.dedup_by_key(|(e, _)| *e);
        let keys = MasterKeys::from_keyset(keyset(&parts));
        let mut boxed = keys.seal(kind, blob_id.as_ref(), &plain, nonce);
        prop_assert_eq!(keys.open(kind, blob_id.as_ref(), &boxed).unwrap(), plain);
        let pos = pos % boxed.len();
        boxed[pos] ^= 1 << bit;
        prop_assert!(keys.open(kind, blob_id.as_ref(), &boxed).is_err(), "flip at byte {} bit {}", pos, bit);
    }

    /// With the key given directly (as key objects are opened), any single
    /// flipped bit is rejected too: the header's version and epoch are part
    /// of the associated data.
    #[test]
    fn open_with_rejects_any_flipped_bit(
        key in any::<[u8; 32]>(),
        epoch in any::<u32>(),
        kind in box_kind(),
        blob_id in proptest::option::of(id()),
        plain in vec(any::<u8>(), 0..100),
        nonce in any::<[u8; NONCE_LEN]>(),
        pos in prop_oneof![0usize..HEADER_LEN, any::<usize>()],
        bit in 0u8..8,
    ) {
        let key = secret(key);
        let mut boxed = seal_with(&key, epoch, kind, blob_id.as_ref(), &plain, nonce);
        let pos = pos % boxed.len();
        boxed[pos] ^= 1 << bit;
        prop_assert!(open_with(&key, kind, blob_id.as_ref(), &boxed).is_err(), "flip at byte {} bit {}", pos, bit);
    }

    /// A key set either refuses repeated epochs or, if it decodes, what its
    /// master keys seal they can open again.
    #[test]
    fn decoded_keyset_seals_and_opens(
        id_key in any::<[u8; 32]>(),
        chunker_key in any::<[u8; 32]>(),
        data_keys in vec((0u32..3, any::<[u8; 32]>()), 1..5),
        kind in box_kind(),
        plain in vec(any::<u8>(), 0..50),
    ) {
        let set = keyset(&(id_key, chunker_key, data_keys));
        let Ok(decoded) = KeySet::decode(&set.encode()) else { return Ok(()) };
        let keys = MasterKeys::from_keyset(decoded);
        let boxed = keys.seal(kind, None, &plain, [5; NONCE_LEN]);
        prop_assert_eq!(keys.open(kind, None, &boxed).unwrap(), plain);
    }

    /// Truncating a box, or appending to it, is rejected.
    #[test]
    fn open_rejects_resized_boxes(
        key in any::<[u8; 32]>(),
        plain in vec(any::<u8>(), 0..100),
        cut in any::<usize>(),
        extra in vec(any::<u8>(), 1..20),
    ) {
        let key = secret(key);
        let boxed = seal_with(&key, 0, BoxKind::Index, None, &plain, [7; NONCE_LEN]);
        let cut = cut % boxed.len();
        prop_assert!(open_with(&key, BoxKind::Index, None, &boxed[..cut]).is_err());
        let mut longer = boxed.clone();
        longer.extend_from_slice(&extra);
        prop_assert!(open_with(&key, BoxKind::Index, None, &longer).is_err());
    }
}

/// A changed epoch reads as tampering even with the key in hand.
#[test]
fn open_with_rejects_a_changed_epoch() {
    let key = secret([3; 32]);
    let mut boxed = seal_with(&key, 0, BoxKind::KeySet, None, b"key set", [1; NONCE_LEN]);
    boxed[1] ^= 1;
    let err = open_with(&key, BoxKind::KeySet, None, &boxed).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tampered);
}

/// Two data keys for one epoch would make sealing and opening pick
/// different keys; such a key set is refused.
#[test]
fn keyset_with_repeated_epoch_is_rejected() {
    let mut set = KeySet::new(
        Zeroizing::new([1; 32]),
        Zeroizing::new([2; 32]),
        (5, Zeroizing::new([3; 32])),
    );
    set.add_data_key(5, Zeroizing::new([4; 32]));
    let err = KeySet::decode(&set.encode())
        .err()
        .expect("repeated epoch accepted");
    assert_eq!(err.kind(), ErrorKind::Corrupt);
}
