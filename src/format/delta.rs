//! Delta payloads (encodings 2 and 3, format-spec "Payload"): a zstd frame
//! that decompresses only with the base blob's plaintext referenced as a
//! prefix (a raw-content dictionary). Encoding 3 also records the delta's
//! generation, which only writers use, to pick bases so that chains stay
//! short while each delta spans few versions (`choose_base`). Whether a
//! delta is worth storing is the writer's choice too (`worth_it`); readers
//! only need `parse` and `decode`.

use super::payload::{ENCODING_DELTA, ENCODING_DELTA_CHAINED};
use crate::error::{Error, ErrorKind, Result};

/// The most links a reader follows from a blob to the whole blob its
/// chain ends at (repository format 3; format 2 allows one).
pub const MAX_LINKS: usize = 8;
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

/// Encode `raw` as a delta payload against `base`: encoding 3 recording
/// `generation` when given, else encoding 2. `None` if zstd fails.
pub fn encode(raw: &[u8], base: &[u8], level: i32, generation: Option<u32>) -> Option<Vec<u8>> {
    let mut cctx = zstd_safe::CCtx::create();
    cctx.set_parameter(CParameter::CompressionLevel(level.max(MIN_LEVEL)))
        .ok()?;
    cctx.set_parameter(CParameter::WindowLog(window_log(base.len(), raw.len())))
        .ok()?;
    cctx.set_parameter(CParameter::ContentSizeFlag(true)).ok()?;
    cctx.ref_prefix(base).ok()?;
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(raw.len()) + 5);
    match generation {
        Some(g) => {
            out.push(ENCODING_DELTA_CHAINED);
            out.extend_from_slice(&g.to_le_bytes());
        }
        None => out.push(ENCODING_DELTA),
    }
    let mut frame = Vec::with_capacity(zstd_safe::compress_bound(raw.len()));
    cctx.compress2(&mut frame, raw).ok()?;
    out.extend_from_slice(&frame);
    Some(out)
}

/// A delta payload's generation and zstd frame, given its encoding byte and
/// the rest. Encoding 2 predates generations and counts as generation 1 (a
/// delta against a whole blob); generation 0 is a whole blob's, never a
/// delta's.
pub fn parse(encoding: u8, body: &[u8]) -> Result<(u32, &[u8])> {
    match encoding {
        ENCODING_DELTA => Ok((1, body)),
        ENCODING_DELTA_CHAINED => {
            let (g, frame) = body
                .split_first_chunk::<4>()
                .ok_or_else(|| Error::corrupt("delta payload shorter than its generation"))?;
            match u32::from_le_bytes(*g) {
                0 => Err(Error::corrupt("a delta of generation 0")),
                g => Ok((g, frame)),
            }
        }
        other => Err(Error::corrupt(format!(
            "payload encoding {other} is not a delta"
        ))),
    }
}

/// The generation of a blob from its payload: 0 for a blob stored whole.
pub fn generation(payload: &[u8]) -> Result<u32> {
    match payload.split_first() {
        Some((&e, body)) if e == ENCODING_DELTA || e == ENCODING_DELTA_CHAINED => {
            Ok(parse(e, body)?.0)
        }
        Some(_) => Ok(0),
        None => Err(Error::corrupt("empty payload")),
    }
}

/// Which link of a chain a new version's delta is stored against, and the
/// new delta's generation. `generations[0]` is the counterpart the new
/// version resembles, each next one the base of the one before, the last a
/// whole blob; a chain may hold at most `max_links` links.
///
/// Skip-deltas: version `g` is stored against version `g & (g - 1)` of its
/// lineage (its number with the lowest set bit cleared), so a chain has as
/// many links as `g` has bits set, about log2(g), while half the deltas
/// span one version, a quarter two, and so on. That version is on the
/// counterpart's chain, which is how it is found without a lineage table;
/// where a history is irregular (re-based, or chains written by a writer
/// that counted otherwise) the nearest older link serves. `None` when no
/// link may be a base (`max_links` 0).
pub fn choose_base(generations: &[u32], max_links: usize) -> Option<(usize, u32)> {
    let newest = *generations.first()?;
    let g = newest.saturating_add(1);
    let target = g & (g - 1);
    let links_below = |i: usize| generations.len() - 1 - i;
    (0..generations.len())
        .find(|&i| generations[i] <= target && links_below(i) < max_links)
        .map(|i| (i, g))
}

/// Decode a delta's zstd frame against the base's plaintext; the result
/// must be exactly `raw_len` bytes long.
pub fn decode(frame: &[u8], base: &[u8], raw_len: usize) -> Result<Vec<u8>> {
    let mut dctx = DCtx::create();
    dctx.ref_prefix(base)
        .map_err(|c| zstd_error("delta base", c))?;
    let mut out = Vec::with_capacity(raw_len);
    dctx.decompress(&mut out, frame)
        .map_err(|c| zstd_error("delta frame", c))?;
    if out.len() != raw_len {
        return Err(Error::corrupt(
            "delta decodes to another length than recorded",
        ));
    }
    Ok(out)
}

/// The length a delta frame's header claims, if it records one (a claim
/// only: `decode` checks the real length against the index).
pub fn recorded_len(frame: &[u8]) -> Option<u64> {
    zstd_safe::get_frame_content_size(frame).ok().flatten()
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
        let delta = encode(&raw, &base, 3, None).unwrap();
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
        let delta = encode(&raw, &base, 3, Some(5)).unwrap();
        let (generation, frame) = parse(delta[0], &delta[1..]).unwrap();
        assert_eq!(generation, 5);
        assert_eq!(decode(frame, &base, raw.len()).unwrap(), raw);
        assert!(decode(frame, &base, raw.len() - 1).is_err());
        // A different base decodes to garbage or fails; the caller's hash check
        // catches garbage.
        if let Ok(other) = decode(frame, &text(64 << 10, 9), raw.len()) {
            assert_ne!(other, raw);
        }
    }

    #[test]
    fn generations_are_read_from_the_payload() {
        assert_eq!(generation(&[0, 1, 2]).unwrap(), 0);
        assert_eq!(generation(&[ENCODING_DELTA, 0x28]).unwrap(), 1);
        assert_eq!(
            generation(&[ENCODING_DELTA_CHAINED, 7, 0, 0, 0]).unwrap(),
            7
        );
        assert!(generation(&[ENCODING_DELTA_CHAINED, 0, 0, 0, 0]).is_err());
        assert!(generation(&[ENCODING_DELTA_CHAINED, 7, 0]).is_err());
        assert!(generation(&[]).is_err());
    }

    /// Replays a lineage of `versions` versions through `choose_base`,
    /// returning each version's chain length and how many versions its
    /// delta spans.
    fn replay(versions: u32, max_links: usize) -> Vec<(usize, u32)> {
        // chains[v] = (generation, version number) of each link, newest first.
        let mut chains: Vec<Vec<(u32, u32)>> = vec![vec![(0, 0)]];
        let mut out = Vec::new();
        for v in 1..=versions {
            let parent = &chains[v as usize - 1];
            let gens: Vec<u32> = parent.iter().map(|l| l.0).collect();
            let (i, g) = choose_base(&gens, max_links).unwrap();
            let mut chain = vec![(g, v)];
            chain.extend_from_slice(&parent[i..]);
            out.push((chain.len() - 1, v - parent[i].1));
            chains.push(chain);
        }
        out
    }

    #[test]
    fn skip_deltas_keep_chains_logarithmic_and_spans_short() {
        let runs = replay(24, MAX_LINKS);
        // Version 15 = 0b1111: four links; version 16 goes back to the root.
        assert_eq!(runs[14], (4, 1));
        assert_eq!(runs[15], (1, 16));
        assert!(runs.iter().all(|&(links, _)| links <= 4));
        let ones = runs.iter().filter(|r| r.1 == 1).count();
        assert_eq!(
            ones, 12,
            "every odd version is a delta against the one before"
        );
        let mean_span = runs.iter().map(|r| r.1).sum::<u32>() as f64 / 24.0;
        assert!(mean_span < 3.0, "{mean_span}");
    }

    #[test]
    fn chains_never_exceed_the_limit() {
        for max in 1..=MAX_LINKS {
            let runs = replay(600, max);
            assert!(runs.iter().all(|&(links, _)| links <= max), "max {max}");
        }
        // One link: every version is a delta against the whole blob.
        assert!(replay(10, 1)
            .iter()
            .enumerate()
            .all(|(i, r)| *r == (1, i as u32 + 1)));
        assert_eq!(choose_base(&[3, 2, 0], 0), None);
    }
}
