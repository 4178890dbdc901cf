//! Verifying one pack against what the index says about it: its size and
//! header (two ranged reads), or, reading it in full, also its name and
//! every blob in it.

use crate::error::{Error, ErrorKind, Result};
use crate::format::index::{IndexBlob, IndexPack};
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

/// Download the pack, check its name, header and every blob it holds.
/// Blobs are judged one by one, so a flipped byte costs one blob, not the
/// pack.
pub fn verify_full(repo: &Repository, indexed: &IndexPack) -> Result<PackVerdict> {
    let bytes = match repo.backend().read(&layout::pack(&indexed.id)) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(PackVerdict::missing()),
        Err(e) => return Err(e),
    };
    let mut verdict = PackVerdict {
        bytes_read: bytes.len() as u64,
        ..Default::default()
    };
    if Id::of_object(&bytes) != indexed.id {
        verdict
            .faults
            .push("content does not match its name".to_string());
    }
    if bytes.len() as u64 != indexed.size {
        verdict
            .faults
            .push(wrong_size(indexed.size, bytes.len() as u64));
    }
    match repo.pack_header_of(&indexed.id, &bytes) {
        // Each blob is opened below: that, not the header, decides.
        Ok(header) => verdict
            .faults
            .extend(disagreement(indexed, &header).map(|(fault, _)| fault)),
        Err(e) => verdict.faults.push(e.to_string()),
    }
    for blob in &indexed.blobs {
        if let Err(e) = open_blob(repo, &bytes, blob) {
            verdict.bad_blobs.push((blob.kind, blob.id, e.to_string()));
        }
    }
    verdict.verified = verdict.faults.is_empty() && verdict.bad_blobs.is_empty();
    Ok(verdict)
}

fn open_blob(repo: &Repository, pack: &[u8], blob: &IndexBlob) -> Result<()> {
    let start = blob.offset as usize;
    let boxed = pack
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
