//! Verifying one pack against what the index says about it: its size and
//! header (two ranged reads), or, reading it in full, also its name and
//! every blob in it.

use rayon::prelude::*;

use crate::error::{Error, ErrorKind, Result};
use crate::format::index::{IndexBlob, IndexPack};
use crate::format::pack::{self, TRAILER_LEN};
use crate::format::{layout, BlobKind, Id};
use crate::repo::Repository;

#[derive(Debug, Default)]
pub struct PackVerdict {
    /// Storage has no such pack.
    pub missing: bool,
    /// What is wrong with the pack as a whole.
    pub faults: Vec<String>,
    /// The pack cannot be trusted for any blob the index puts in it (gone,
    /// wrong size, unreadable header), as opposed to some blobs proven bad.
    pub unusable: bool,
    /// Blobs read in full that failed to open or to match their id.
    pub bad_blobs: Vec<(BlobKind, Id, String)>,
    /// Bytes downloaded.
    pub bytes_read: u64,
    /// Read in full and found intact.
    pub verified: bool,
}

impl PackVerdict {
    fn unusable(fault: String) -> Self {
        PackVerdict {
            faults: vec![fault],
            unusable: true,
            ..Default::default()
        }
    }

    fn missing() -> Self {
        PackVerdict {
            missing: true,
            ..PackVerdict::unusable("the pack is missing".into())
        }
    }
}

/// Size and header only. An I/O failure other than a missing pack is an
/// error: the check could not run, which is not the same as damage.
pub fn verify_header(repo: &Repository, indexed: &IndexPack) -> Result<PackVerdict> {
    let size = match repo.backend().size(&layout::pack(&indexed.id)) {
        Ok(size) => size,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(PackVerdict::missing()),
        Err(e) => return Err(e),
    };
    if size != indexed.size {
        return Ok(PackVerdict::unusable(wrong_size(indexed.size, size)));
    }
    let header = match repo.read_pack_header(&indexed.id, size) {
        Ok(h) => h,
        Err(e) if is_damage(&e) => return Ok(PackVerdict::unusable(e.to_string())),
        Err(e) => return Err(e),
    };
    // Entries the header confirms stay usable; the others are suspect.
    let mut verdict = PackVerdict::default();
    if let Some((fault, unconfirmed)) = disagreement(indexed, &header) {
        verdict.faults.push(fault);
        verdict.bad_blobs = unconfirmed
            .into_iter()
            .map(|b| {
                let why = "the pack header does not confirm where the index puts it";
                (b.kind, b.id, why.to_string())
            })
            .collect();
    }
    Ok(verdict)
}

/// Bytes of a pack held at once while it is verified in full: memory stays
/// near this per pack in flight, whatever the pack size, and a remote pack
/// still costs only a few requests.
const PIECE: u64 = 4 << 20;

/// Download the pack, check its name, header and every blob it holds.
/// Blobs are judged one by one, so a flipped byte costs one blob, not the
/// pack. The pack streams past in pieces read into `buf`, which the caller
/// keeps from pack to pack (fresh pages cost a fault each): each piece is
/// hashed into the pack's name while the pool's threads open its blobs, so
/// even the last pack of a check keeps every core busy.
pub fn verify_full(
    repo: &Repository,
    indexed: &IndexPack,
    buf: &mut Vec<u8>,
) -> Result<PackVerdict> {
    let path = layout::pack(&indexed.id);
    let missing_or = |e: Error| match e.kind() {
        ErrorKind::NotFound => Ok(PackVerdict::missing()),
        _ => Err(e),
    };
    let size = match repo.backend().size(&path) {
        Ok(size) => size,
        Err(e) => return missing_or(e),
    };
    // The rest of the pack comes in while its first pieces are verified.
    repo.backend().prefetch(&path);
    let mut verdict = PackVerdict {
        bytes_read: size,
        ..Default::default()
    };
    if size != indexed.size {
        verdict.faults.push(wrong_size(indexed.size, size));
    }
    // The header's place, from the trailer, so that the header arrives
    // whole in the last piece; a bad trailer is reported below.
    let header_start = match trailer_at(repo, &path, size) {
        Ok(start) => start,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(PackVerdict::missing()),
        Err(e) if is_damage(&e) => None,
        Err(e) => return Err(e),
    };
    let mut blobs: Vec<&IndexBlob> = indexed.blobs.iter().collect();
    blobs.sort_by_key(|b| b.offset);
    let spans: Vec<(u64, u64)> = blobs
        .iter()
        .map(|b| (u64::from(b.offset), u64::from(b.stored_len)))
        .collect();
    // A piece stretched by an outsized blob is not kept for the packs after.
    if buf.len() > 4 * PIECE as usize {
        *buf = Vec::new();
    }
    let mut name = blake3::Hasher::new();
    let mut next_blob = 0;
    let mut last = (0u64, 0usize);
    for (at, end) in pieces(size, &spans, header_start, PIECE) {
        let len = usize::try_from(end - at)
            .map_err(|_| Error::invalid(format!("a piece of {} bytes", end - at)))?;
        if buf.len() < len {
            buf.try_reserve_exact(len - buf.len())
                .map_err(|_| Error::invalid(format!("{len} bytes do not fit in memory")))?;
            buf.resize(len, 0);
        }
        let piece = &mut buf[..len];
        if let Err(e) = repo.backend().read_range_into(&path, at, piece) {
            return missing_or(e);
        }
        let piece = &*piece;
        let first = next_blob;
        while blobs
            .get(next_blob)
            .is_some_and(|b| u64::from(b.offset) < end)
        {
            next_blob += 1;
        }
        let in_piece = &blobs[first..next_blob];
        let ((), bad) = rayon::join(
            || {
                name.update(piece);
            },
            || {
                in_piece
                    .par_iter()
                    .filter_map(|blob| {
                        let start = (u64::from(blob.offset) - at) as usize;
                        open_blob(repo, piece, start, blob)
                            .err()
                            .map(|e| (blob.kind, blob.id, e.to_string()))
                    })
                    .collect::<Vec<_>>()
            },
        );
        verdict.bad_blobs.extend(bad);
        last = (at, len);
    }
    // Entries the pack cannot hold.
    for blob in &blobs[next_blob..] {
        let why = "lies beyond the end of the pack".to_string();
        verdict.bad_blobs.push((blob.kind, blob.id, why));
    }
    if Id::from_bytes(*name.finalize().as_bytes()) != indexed.id {
        verdict
            .faults
            .push("content does not match its name".to_string());
    }
    let in_last = |start: u64| {
        let from = usize::try_from(start.checked_sub(last.0)?).ok()?;
        buf.get(from..last.1)
    };
    let header = match header_start.and_then(|start| Some((start, in_last(start)?))) {
        Some((start, tail)) => repo.pack_header_in(&indexed.id, size, start, tail),
        // A header longer than a piece, or a bad trailer: read it apart.
        None => repo.read_pack_header(&indexed.id, size),
    };
    match header {
        // Each blob was opened above: that, not the header, decides.
        Ok(header) => verdict
            .faults
            .extend(disagreement(indexed, &header).map(|(fault, _)| fault)),
        Err(e) if is_damage(&e) => verdict.faults.push(e.to_string()),
        Err(e) => return missing_or(e),
    }
    verdict.verified = verdict.faults.is_empty() && verdict.bad_blobs.is_empty();
    Ok(verdict)
}

/// Where a pack's header starts, by its trailer.
fn trailer_at(repo: &Repository, path: &str, size: u64) -> Result<Option<u64>> {
    let Some(at) = size.checked_sub(TRAILER_LEN as u64) else {
        return Ok(None);
    };
    let trailer = repo.backend().read_range(path, at, TRAILER_LEN as u64)?;
    Ok(Some(pack::header_location(size, &trailer)?.0))
}

/// Cut `0..size` into consecutive pieces of about `piece` bytes. A piece
/// holds whole every blob (`spans`: offset and length by the index, sorted
/// by offset) that starts in it, as far as the pack reaches; and a piece
/// starts at `cut` (the header) unless a blob crosses it.
fn pieces(size: u64, spans: &[(u64, u64)], cut: Option<u64>, piece: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut at = 0u64;
    let mut next = 0;
    while at < size {
        let mut end = at.saturating_add(piece).min(size);
        if let Some(cut) = cut.filter(|&c| at < c && c < end) {
            end = cut;
        }
        while let Some(&(start, len)) = spans.get(next).filter(|(start, _)| *start < end) {
            end = end.max(start.saturating_add(len).min(size));
            next += 1;
        }
        out.push((at, end));
        at = end;
    }
    out
}

/// Open the blob lying at `start` in `piece`.
fn open_blob(repo: &Repository, piece: &[u8], start: usize, blob: &IndexBlob) -> Result<()> {
    let boxed = piece
        .get(start..start + blob.stored_len as usize)
        .ok_or_else(|| Error::corrupt("lies beyond the end of the pack"))?;
    repo.open_blob(blob.kind, &blob.id, boxed, blob.raw_len, blob.base.as_ref())
        .map(drop)
}

fn is_damage(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Corrupt | ErrorKind::Tampered | ErrorKind::Unsupported
    )
}

fn wrong_size(expected: u64, actual: u64) -> String {
    format!("the pack has {actual} bytes, the index says {expected}")
}

/// Where the header and the index disagree, if they do, and the index
/// entries the header does not confirm.
fn disagreement(indexed: &IndexPack, header: &IndexPack) -> Option<(String, Vec<IndexBlob>)> {
    let key = |b: &IndexBlob| (b.offset, b.kind, b.id, b.stored_len, b.raw_len);
    let confirmed: std::collections::HashSet<_> = header.blobs.iter().map(key).collect();
    let unconfirmed: Vec<IndexBlob> = indexed
        .blobs
        .iter()
        .filter(|b| !confirmed.contains(&key(b)))
        .copied()
        .collect();
    if unconfirmed.is_empty() && indexed.blobs.len() == header.blobs.len() {
        return None;
    }
    let fault = if indexed.blobs.len() != header.blobs.len() {
        format!(
            "the pack header lists {} blobs, the index {}",
            header.blobs.len(),
            indexed.blobs.len()
        )
    } else {
        format!(
            "the pack header and the index disagree about {} blobs",
            unconfirmed.len()
        )
    };
    Some((fault, unconfirmed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_pieces(size: u64, spans: &[(u64, u64)], cut: Option<u64>, piece: u64) {
        let out = pieces(size, spans, cut, piece);
        // Consecutive, from 0 to the end.
        let mut at = 0;
        for &(start, end) in &out {
            assert_eq!(start, at);
            assert!(end > start);
            at = end;
        }
        assert_eq!(at, size);
        // Every blob starting inside the pack lies whole in one piece, as
        // far as the pack reaches.
        for &(start, len) in spans.iter().filter(|(s, _)| *s < size) {
            let (_, end) = out.iter().find(|(s, e)| *s <= start && start < *e).unwrap();
            assert!(*end >= (start + len).min(size), "{start}+{len} in {out:?}");
        }
        // The header starts a piece when no blob crosses it.
        if let Some(cut) = cut.filter(|&c| c < size) {
            let crossed = spans.iter().any(|&(s, l)| s < cut && s + l > cut);
            assert!(crossed || out.iter().any(|(s, _)| *s == cut), "{out:?}");
        }
    }

    #[test]
    fn pieces_cover_the_pack_and_hold_each_blob_whole() {
        let spans: Vec<(u64, u64)> = (0..40).map(|i| (i * 300, 300)).collect();
        check_pieces(12_100, &spans, Some(12_000), 1000);
        check_pieces(12_100, &spans, Some(12_000), 1 << 20);
        check_pieces(12_100, &spans, None, 1);
        // A blob larger than a piece, one crossing the header, one past the
        // end, overlapping ones (a hostile index).
        check_pieces(
            5000,
            &[(0, 3000), (2500, 100), (4000, 2000)],
            Some(4500),
            1000,
        );
        check_pieces(5000, &[(10, 20), (15, 4000), (9000, 10)], Some(4990), 512);
        check_pieces(1, &[], None, 4 << 20);
        assert!(pieces(0, &[(0, 10)], None, 100).is_empty());
    }

    #[test]
    fn pieces_are_about_the_piece_size() {
        let spans: Vec<(u64, u64)> = (0..1000).map(|i| (i * 1000, 1000)).collect();
        let out = pieces(1_000_100, &spans, Some(1_000_000), 64_000);
        assert!(out.iter().all(|(s, e)| e - s <= 64_000), "{out:?}");
        assert_eq!(out.last(), Some(&(1_000_000, 1_000_100)));
    }
}
