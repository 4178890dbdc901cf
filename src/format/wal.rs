//! Archived PostgreSQL WAL files (`wal/<name>`, format-spec/README.md,
//! "WAL archive"): the names PostgreSQL gives them, and the bytes of the
//! object that holds one.
//!
//! ```text
//! object: "VLTW" | header box length u32 LE | header box | content box
//! header: version u8 (=1) | name string | size u64 | content [32]
//!         | pushed timestamp | content box length u64
//! ```
//! The header box is sealed with BLAKE3(name) in its id slot, the content
//! box with the content's keyed hash, so neither opens under another name
//! or beside another header.

use super::codec::{Reader, Writer};
use super::id::Id;
use super::Timestamp;
use crate::error::{Error, Result};

pub const WAL_HEADER_VERSION: u8 = 1;
/// Bytes before the header box: the magic and the header box's length.
pub const PREFIX_LEN: usize = 8;
/// A header box is a few hundred bytes; anything longer is corrupt.
pub const MAX_HEADER_BOX: u32 = 64 << 10;
/// PostgreSQL's largest segment (`wal_segment_size` = 1 GiB).
pub const MAX_WAL_FILE: u64 = 1 << 30;

/// What PostgreSQL archives, by the shape of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WalFile {
    /// `TTTTTTTTXXXXXXXXYYYYYYYY`: timeline, then the segment number split
    /// in two 32-bit halves (log and segment within it).
    Segment { timeline: u32, log: u32, seg: u32 },
    /// The same with `.partial`: the last, incomplete segment of a timeline
    /// a standby left when it was promoted.
    Partial { timeline: u32, log: u32, seg: u32 },
    /// `TTTTTTTT.history`: how a timeline branched from its parents.
    History { timeline: u32 },
    /// `<segment>.OOOOOOOO.backup`: a base backup's label, written when the
    /// backup ended.
    Backup {
        timeline: u32,
        log: u32,
        seg: u32,
        offset: u32,
    },
}

fn hex8(s: &str) -> Option<u32> {
    // PostgreSQL writes upper-case hex; one name has one spelling.
    if s.len() == 8
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        u32::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

fn segment_parts(s: &str) -> Option<(u32, u32, u32)> {
    if s.len() != 24 {
        return None;
    }
    Some((hex8(&s[..8])?, hex8(&s[8..16])?, hex8(&s[16..])?))
}

impl WalFile {
    /// Parse a file name as PostgreSQL passes it (`%f`). Anything else is
    /// refused: the name becomes a path in the repository.
    pub fn parse(name: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(format!(
                "'{name}' is not the name of a WAL segment, .partial, .history or .backup file"
            ))
        };
        if !name.is_ascii() {
            return Err(bad());
        }
        if let Some(tl) = name.strip_suffix(".history") {
            return hex8(tl)
                .map(|timeline| WalFile::History { timeline })
                .ok_or_else(bad);
        }
        if let Some(seg) = name.strip_suffix(".partial") {
            let (timeline, log, seg) = segment_parts(seg).ok_or_else(bad)?;
            return Ok(WalFile::Partial { timeline, log, seg });
        }
        if let Some(rest) = name.strip_suffix(".backup") {
            let (seg, offset) = rest.split_once('.').ok_or_else(bad)?;
            let (timeline, log, seg) = segment_parts(seg).ok_or_else(bad)?;
            let offset = hex8(offset).ok_or_else(bad)?;
            return Ok(WalFile::Backup {
                timeline,
                log,
                seg,
                offset,
            });
        }
        let (timeline, log, seg) = segment_parts(name).ok_or_else(bad)?;
        Ok(WalFile::Segment { timeline, log, seg })
    }

    pub fn name(&self) -> String {
        match *self {
            WalFile::Segment { timeline, log, seg } => format!("{timeline:08X}{log:08X}{seg:08X}"),
            WalFile::Partial { timeline, log, seg } => {
                format!("{timeline:08X}{log:08X}{seg:08X}.partial")
            }
            WalFile::History { timeline } => format!("{timeline:08X}.history"),
            WalFile::Backup {
                timeline,
                log,
                seg,
                offset,
            } => format!("{timeline:08X}{log:08X}{seg:08X}.{offset:08X}.backup"),
        }
    }

    pub fn timeline(&self) -> u32 {
        match *self {
            WalFile::Segment { timeline, .. }
            | WalFile::Partial { timeline, .. }
            | WalFile::History { timeline }
            | WalFile::Backup { timeline, .. } => timeline,
        }
    }
}

/// Where a WAL file is stored: by its name, which PostgreSQL asks for.
pub fn path(file: &WalFile) -> String {
    format!("{}{}", super::layout::WAL, file.name())
}

/// The id slot of a header box: binds the box to the name it is stored under.
pub fn name_slot(name: &str) -> Id {
    Id::from_bytes(*blake3::hash(name.as_bytes()).as_bytes())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalHeader {
    pub name: String,
    /// Bytes of the file as PostgreSQL wrote it.
    pub size: u64,
    /// Keyed BLAKE3 (the id key) of those bytes: what an identical push
    /// is recognised by, and the content box's id slot.
    pub content: Id,
    /// When it was pushed (the pushing host's clock).
    pub pushed: Timestamp,
    /// Stored bytes of the content box, to the end of the object.
    pub content_box_len: u64,
}

impl WalHeader {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(WAL_HEADER_VERSION);
        w.str(&self.name);
        w.u64(self.size);
        w.id(&self.content);
        self.pushed.write(&mut w);
        w.u64(self.content_box_len);
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "wal header");
        r.expect_version(WAL_HEADER_VERSION)?;
        let name = r.string()?;
        let size = r.u64()?;
        let content = r.id()?;
        let pushed = Timestamp::read(&mut r)?;
        let content_box_len = r.u64()?;
        r.finish()?;
        WalFile::parse(&name).map_err(|_| Error::corrupt("wal header: not a WAL file name"))?;
        if size > MAX_WAL_FILE {
            return Err(Error::corrupt(format!(
                "wal header: size {size} is above the limit"
            )));
        }
        Ok(WalHeader {
            name,
            size,
            content,
            pushed,
            content_box_len,
        })
    }
}

/// `"VLTW" | header box length | header box | content box`.
pub fn join(header_box: &[u8], content_box: &[u8]) -> Result<Vec<u8>> {
    let len = u32::try_from(header_box.len())
        .ok()
        .filter(|l| *l <= MAX_HEADER_BOX)
        .ok_or_else(|| Error::invalid("wal header box is too long"))?;
    let mut out = Vec::with_capacity(PREFIX_LEN + header_box.len() + content_box.len());
    out.extend_from_slice(super::magic::WAL);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(header_box);
    out.extend_from_slice(content_box);
    Ok(out)
}

/// From the first bytes of an object: the header box's length.
pub fn header_box_len(prefix: &[u8]) -> Result<usize> {
    let mut r = Reader::new(prefix, "wal object");
    r.expect_magic(super::magic::WAL)?;
    let len = r.u32()?;
    if len > MAX_HEADER_BOX {
        return Err(Error::corrupt(format!(
            "wal object: header box of {len} bytes is above the limit"
        )));
    }
    usize::try_from(len).map_err(|_| Error::corrupt("wal object: header box length"))
}

/// The header box and the rest (the content box) of a whole object.
pub fn split(object: &[u8]) -> Result<(&[u8], &[u8])> {
    let len = header_box_len(object)?;
    let end = PREFIX_LEN
        .checked_add(len)
        .filter(|end| *end <= object.len())
        .ok_or_else(|| Error::corrupt("wal object: shorter than its header box"))?;
    Ok((&object[PREFIX_LEN..end], &object[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_strangers_are_refused() {
        for name in [
            "000000010000000000000001",
            "00000002000000A1000000FF.partial",
            "00000002.history",
            "000000010000000000000002.00000028.backup",
        ] {
            assert_eq!(WalFile::parse(name).unwrap().name(), name);
        }
        for name in [
            "",
            "../../config",
            "00000001000000000000000",
            "0000000100000000000000001",
            "000000010000000000000001.gz",
            "00000001000000000000000a",
            "0000000g.history",
            "000000010000000000000002.28.backup",
            "000000010000000000000002..backup",
        ] {
            assert!(WalFile::parse(name).is_err(), "{name}");
        }
    }

    #[test]
    fn segments_order_by_timeline_then_position() {
        let a = WalFile::parse("000000010000000100000000").unwrap();
        let b = WalFile::parse("0000000100000000000000FF").unwrap();
        let c = WalFile::parse("000000020000000000000000").unwrap();
        assert!(b < a && a < c);
    }
}
