//! Delta payloads (encoding 2, format-spec "Payload"): a zstd frame that
//! decompresses only with the base blob's plaintext referenced as a prefix
//! (a raw-content dictionary). Whether a delta is worth storing is the
//! writer's choice (`worth_it`); readers only need `decode`.

use super::payload::ENCODING_DELTA;
use crate::error::{Error, ErrorKind, Result};
use zstd::zstd_safe::{self, CParameter, DCtx};

/// Deltas are never compressed below this level: a delta is only useful
/// when the match finder searches the base.
const MIN_LEVEL: i32 = 1;

/// Window large enough to reach from the end of `raw` back to the start of
/// `base`, within zstd's limits for a 32-bit reader.
fn window_log(base: usize, raw: usize) -> u32 {
    let span = (base + raw).max(1) as u64;
    (64 - (span - 1).leading_zeros()).clamp(10, 27)
}

fn zstd_error(what: &str, code: usize) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        format!("{what}: {}", zstd_safe::get_error_name(code)),
    )
}

/// Encode `raw` as a delta payload against `base`; `None` if zstd fails.
pub fn encode(raw: &[u8], base: &[u8], level: i32) -> Option<Vec<u8>> {
    let mut cctx = zstd_safe::CCtx::create();
    cctx.set_parameter(CParameter::CompressionLevel(level.max(MIN_LEVEL)))
        .ok()?;
    cctx.set_parameter(CParameter::WindowLog(window_log(base.len(), raw.len())))
        .ok()?;
    cctx.set_parameter(CParameter::ContentSizeFlag(true)).ok()?;
    cctx.ref_prefix(base).ok()?;
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(raw.len()) + 1);
    out.push(ENCODING_DELTA);
    let mut frame = Vec::with_capacity(zstd_safe::compress_bound(raw.len()));
    cctx.compress2(&mut frame, raw).ok()?;
    out.extend_from_slice(&frame);
    Some(out)
}

/// Decode a delta body (the payload after its encoding byte) against the
/// base's plaintext; the result must be exactly `raw_len` bytes long.
pub fn decode(body: &[u8], base: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    let mut dctx = DCtx::create();
    dctx.ref_prefix(base)
        .map_err(|c| zstd_error("delta base", c))?;
    let mut out = Vec::with_capacity(raw_len);
    dctx.decompress(&mut out, body)
        .map_err(|c| zstd_error("delta frame", c))?;
    if out.len() != raw_len {
        return Err(Error::corrupt(
            "delta decodes to another length than recorded",
        ));
    }
    Ok(out)
}

/// The length a delta body's frame header claims, if it records one (a
/// claim only: `decode` checks the real length against the index).
pub fn recorded_len(body: &[u8]) -> Option<u64> {
    zstd_safe::get_frame_content_size(body).ok().flatten()
}

/// A delta is kept only while it costs at most a quarter of the blob
/// stored whole: beyond that the blob is stored whole and becomes a base
/// itself (format-spec "Deltas", re-basing).
pub fn worth_it(delta_len: usize, whole_len: usize) -> bool {
    delta_len.saturating_mul(4) <= whole_len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(format!("{}\t{{\"k\":{}}}\n", x >> 40, x >> 50).as_bytes());
        }
        out.truncate(n);
        out
    }

    #[test]
    fn a_small_change_costs_little_and_round_trips() {
        let base = text(256 << 10, 1);
        let mut raw = base.clone();
        raw[1000..1010].copy_from_slice(b"0123456789");
        raw[200_000..200_004].copy_from_slice(b"abcd");
        let whole = crate::format::payload::encode(&raw, 3);
        let delta = encode(&raw, &base, 3).unwrap();
        assert!(
            delta.len() * 50 < whole.len(),
            "{} vs {}",
            delta.len(),
            whole.len()
        );
        assert!(worth_it(delta.len(), whole.len()));
        assert_eq!(decode(&delta[1..], &base, raw.len()).unwrap(), raw);
    }

    #[test]
    fn a_wrong_base_or_length_is_an_error() {
        let base = text(64 << 10, 2);
        let raw = text(64 << 10, 3);
        let delta = encode(&raw, &base, 3).unwrap();
        assert_eq!(decode(&delta[1..], &base, raw.len()).unwrap(), raw);
        assert!(decode(&delta[1..], &base, raw.len() - 1).is_err());
        // A different base decodes to garbage or fails; the caller's hash check
        // catches garbage.
        if let Ok(other) = decode(&delta[1..], &text(64 << 10, 9), raw.len()) {
            assert_ne!(other, raw);
        }
    }
}
