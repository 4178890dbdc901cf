//! The first byte inside every sealed box says how the rest is encoded:
//! 0 = stored as is, 1 = zstd frame, 2 and 3 = delta against a base blob
//! (`format::delta`, blobs only; 3 records the delta's generation). Compression is skipped when zstd does not
//! shrink the data (already compressed dumps, media).

use crate::error::{Error, Result};

pub const ENCODING_RAW: u8 = 0;
pub const ENCODING_ZSTD: u8 = 1;
pub const ENCODING_DELTA: u8 = 2;
pub const ENCODING_DELTA_CHAINED: u8 = 3;

/// Objects other than blobs carry no raw length outside the box, so their
/// decompressed size is capped to stop a hostile frame from exhausting memory.
pub const MAX_OBJECT_PLAINTEXT: usize = 1 << 30;

/// Up to this length a payload is decompressed into a buffer allocated up
/// front; beyond it (objects capped at 1 GiB) it grows as it streams.
const BULK_LIMIT: usize = 64 << 20;

/// `level` 0 disables compression.
pub fn encode(raw: &[u8], level: i32) -> Vec<u8> {
    if level != 0 {
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()) + 1);
        out.push(ENCODING_ZSTD);
        if let Ok(len) = bulk_compress(raw, level, &mut out) {
            if len < raw.len() {
                return out;
            }
        }
    }
    let mut out = Vec::with_capacity(raw.len() + 1);
    out.push(ENCODING_RAW);
    out.extend_from_slice(raw);
    out
}

/// Decode a payload whose raw length must not exceed `max_len`.
pub fn decode(payload: &[u8], max_len: usize) -> Result<Vec<u8>> {
    decode_with_base(payload, max_len, None)
}

/// Decode a blob's payload; a delta needs its base's plaintext, and then
/// decodes to exactly `max_len` bytes.
pub fn decode_with_base(payload: &[u8], max_len: usize, base: Option<&[u8]>) -> Result<Vec<u8>> {
    let (&encoding, body) = payload
        .split_first()
        .ok_or_else(|| Error::corrupt("empty payload"))?;
    match encoding {
        ENCODING_DELTA | ENCODING_DELTA_CHAINED => match base {
            Some(base) => {
                super::delta::decode(super::delta::parse(encoding, body)?.1, base, max_len)
            }
            None => Err(Error::corrupt("a delta payload where no base is recorded")),
        },
        ENCODING_RAW => {
            if body.len() > max_len {
                return Err(Error::corrupt("payload longer than recorded"));
            }
            Ok(body.to_vec())
        }
        // A blob's length is known and small: one allocation of exactly
        // that, decompressed in one call (a quarter faster than streaming).
        ENCODING_ZSTD if max_len <= BULK_LIMIT => bulk_decompress(body, max_len)
            .map_err(|e| Error::with_source(crate::error::ErrorKind::Corrupt, "zstd frame", e)),
        ENCODING_ZSTD => {
            use std::io::Read;
            let decoder = zstd::stream::read::Decoder::new(body).map_err(|e| {
                Error::with_source(crate::error::ErrorKind::Corrupt, "zstd frame", e)
            })?;
            let mut out = Vec::new();
            decoder
                .take((max_len as u64).saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| {
                    Error::with_source(crate::error::ErrorKind::Corrupt, "zstd frame", e)
                })?;
            if out.len() > max_len {
                return Err(Error::corrupt(
                    "payload decompresses beyond its recorded length",
                ));
            }
            Ok(out)
        }
        other => Err(Error::corrupt(format!("unknown payload encoding {other}"))),
    }
}

thread_local! {
    /// One decompression context per thread, reused: making one for every
    /// blob cost a few percent of a restore.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
    /// One compression context per thread and level, reused: a fresh one
    /// for every chunk allocated and cleared a few MiB of match tables per
    /// chunk, on the sealing threads of every snapshot.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Compress `raw` into `out` after the bytes it already holds (its capacity
/// must allow the frame's bound); returns the frame's length.
fn bulk_compress(raw: &[u8], level: i32, out: &mut Vec<u8>) -> std::io::Result<usize> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match &mut *slot {
            Some((l, c)) if *l == level => c,
            other => &mut other.insert((level, zstd::bulk::Compressor::new(level)?)).1,
        };
        let mut tail = std::io::Cursor::new(out);
        tail.set_position(tail.get_ref().len() as u64);
        compressor.compress_to_buffer(raw, &mut tail)
    })
}

fn bulk_decompress(body: &[u8], max_len: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let decompressor = match &mut *slot {
            Some(d) => d,
            empty => empty.insert(zstd::bulk::Decompressor::new()?),
        };
        decompressor.decompress(body, max_len)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(raw: Vec<u8>, level in 0i32..4) {
            let p = encode(&raw, level);
            prop_assert_eq!(decode(&p, raw.len()).unwrap(), raw);
        }
    }

    /// The frames a reused context makes are those a fresh one makes, so
    /// the repository's bytes do not depend on what a thread compressed
    /// before.
    #[test]
    fn a_reused_context_compresses_as_a_fresh_one() {
        let mut x = 7u64;
        let mut text = |len: usize| -> Vec<u8> {
            (0..len)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if i % 3 == 0 {
                        b'a' + (x % 20) as u8
                    } else {
                        b' '
                    }
                })
                .collect()
        };
        let inputs = [
            text(300_000),
            text(1 << 20),
            text(70_000),
            text(5),
            text(1 << 20),
        ];
        for level in [3, 1, 3, 19] {
            for raw in &inputs {
                let fresh = zstd::bulk::compress(raw, level).unwrap();
                let p = encode(raw, level);
                if fresh.len() < raw.len() {
                    assert_eq!(p[0], ENCODING_ZSTD);
                    assert_eq!(&p[1..], &fresh[..], "level {level}, {} bytes", raw.len());
                } else {
                    assert_eq!((p[0], &p[1..]), (ENCODING_RAW, &raw[..]));
                }
            }
        }
    }

    #[test]
    fn compressible_data_shrinks() {
        let raw = vec![b'a'; 10_000];
        let p = encode(&raw, 3);
        assert_eq!(p[0], ENCODING_ZSTD);
        assert!(p.len() < 100);
        assert!(decode(&p, 9_999).is_err(), "length cap enforced");
    }
}
