//! The tar stream `pg_basebackup -Ft -D -` writes, read member by member
//! as it arrives: each regular file's bytes are handed on without being
//! held in memory. Only what PostgreSQL writes is understood (ustar
//! headers, octal or base-256 sizes, files, folders and symlinks);
//! anything else is refused rather than guessed at.

use std::io::{self, Read};

use crate::error::{Error, ErrorKind, Result};

const BLOCK: u64 = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberKind {
    File,
    Dir,
    Symlink(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The path inside the archive, without a trailing `/`.
    pub path: String,
    pub kind: MemberKind,
    pub size: u64,
}

fn bad(what: impl Into<String>) -> Error {
    Error::new(
        ErrorKind::SourceFailed,
        format!("base backup stream: {}", what.into()),
    )
}

/// A NUL-terminated (or full-width) text field.
fn text(field: &[u8]) -> Result<String> {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8(field[..end].to_vec()).map_err(|_| bad("a member name is not UTF-8"))
}

/// A numeric field: octal digits (space or NUL padded), or base-256 when
/// the top bit of its first byte is set (sizes of 8 GiB and more).
fn number(field: &[u8]) -> Result<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            n = n
                .checked_mul(256)
                .and_then(|n| n.checked_add(u64::from(b)))
                .ok_or_else(|| bad("a size does not fit in 64 bits"))?;
        }
        return Ok(n);
    }
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if digits.is_empty() {
        return Ok(0);
    }
    let s = std::str::from_utf8(&digits).map_err(|_| bad("a numeric field is not octal"))?;
    u64::from_str_radix(s, 8).map_err(|_| bad(format!("'{s}' is not an octal number")))
}

/// Parse one 512-byte header; `None` for the all-zero blocks that end the
/// archive.
pub fn parse_header(block: &[u8; 512]) -> Result<Option<Member>> {
    if block.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let stored = number(&block[148..156])?;
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    if stored != sum {
        return Err(bad("a header's checksum does not match"));
    }
    let mut path = text(&block[0..100])?;
    if &block[257..262] == b"ustar" {
        let prefix = text(&block[345..500])?;
        if !prefix.is_empty() {
            path = format!("{prefix}/{path}");
        }
    }
    // Some members are written as `./pg_wal/...`, most without the `./`.
    let path = path.trim_end_matches('/');
    let path = path.strip_prefix("./").unwrap_or(path).to_string();
    let size = number(&block[124..136])?;
    let kind = match block[156] {
        b'0' | 0 => MemberKind::File,
        b'5' => MemberKind::Dir,
        b'2' => MemberKind::Symlink(text(&block[157..257])?),
        other => {
            return Err(bad(format!(
                "member '{path}' has type '{}', which a base backup never holds",
                char::from(other)
            )))
        }
    };
    // Only regular files carry bytes after their header.
    let size = if kind == MemberKind::File { size } else { 0 };
    Ok(Some(Member { path, kind, size }))
}

/// Padding after a member's bytes, up to the next block.
fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

pub struct TarReader<R> {
    inner: R,
    /// Bytes of the current member's content and padding not read yet.
    pending: u64,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader { inner, pending: 0 }
    }

    /// The next member, skipping what was left of the one before.
    pub fn next_member(&mut self) -> Result<Option<Member>> {
        let skip = self.pending;
        self.pending = 0;
        let skipped = io::copy(&mut (&mut self.inner).take(skip), &mut io::sink())
            .map_err(|e| Error::io("reading the base backup stream", e))?;
        if skipped != skip {
            return Err(bad("the stream ended inside a member"));
        }
        let mut block = [0u8; 512];
        match self.inner.read_exact(&mut block) {
            Ok(()) => {}
            // pg_basebackup ends with zero blocks; an archive cut at a
            // member boundary is still truncated.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(bad("the stream ended without its end marker"))
            }
            Err(e) => return Err(Error::io("reading the base backup stream", e)),
        }
        let member = parse_header(&block)?;
        if let Some(m) = &member {
            self.pending = m.size + padding(m.size);
        }
        Ok(member)
    }

    /// The current member's bytes (exactly `size` of them; a short read is
    /// reported by the next `next_member`).
    pub fn content(&mut self, size: u64) -> impl Read + Send + '_
    where
        R: Send,
    {
        let take = size.min(self.pending);
        self.pending -= take;
        (&mut self.inner).take(take)
    }

    /// Drain whatever follows the end marker, so the producer never blocks
    /// on a full pipe.
    pub fn finish(mut self) -> Result<()> {
        io::copy(&mut self.inner, &mut io::sink())
            .map(|_| ())
            .map_err(|e| Error::io("reading the base backup stream", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, type_flag: u8, size: u64, link: &str) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000600");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = type_flag;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    fn archive(members: &[(&str, u8, &[u8], &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, flag, data, link) in members {
            out.extend_from_slice(&header(name, *flag, data.len() as u64, link));
            out.extend_from_slice(data);
            out.resize(out.len() + padding(data.len() as u64) as usize, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    #[test]
    fn reads_files_folders_and_links_in_order() {
        let bytes = archive(&[
            ("global/", b'5', b"", ""),
            ("global/pg_control", b'0', &[7u8; 700], ""),
            ("pg_tblspc/16384", b'2', b"", "/srv/ts"),
            ("PG_VERSION", b'0', b"15\n", ""),
        ]);
        let mut r = TarReader::new(&bytes[..]);
        let m = r.next_member().unwrap().unwrap();
        assert_eq!((m.path.as_str(), &m.kind), ("global", &MemberKind::Dir));
        let m = r.next_member().unwrap().unwrap();
        assert_eq!(m.size, 700);
        let mut data = Vec::new();
        r.content(m.size).read_to_end(&mut data).unwrap();
        assert_eq!(data, vec![7u8; 700]);
        let m = r.next_member().unwrap().unwrap();
        assert_eq!(m.kind, MemberKind::Symlink("/srv/ts".into()));
        // An unread member is skipped.
        let m = r.next_member().unwrap().unwrap();
        assert_eq!((m.path.as_str(), m.size), ("PG_VERSION", 3));
        assert_eq!(r.next_member().unwrap(), None);
        r.finish().unwrap();
    }

    #[test]
    fn refuses_damage_and_truncation() {
        let mut bytes = archive(&[("a", b'0', b"hello", "")]);
        bytes[0] = b'b';
        assert!(TarReader::new(&bytes[..]).next_member().is_err());
        let bytes = archive(&[("a", b'0', b"hello", "")]);
        let mut r = TarReader::new(&bytes[..600]);
        r.next_member().unwrap();
        assert!(r.next_member().is_err(), "cut inside a member");
        let mut r = TarReader::new(&bytes[..1024]);
        r.next_member().unwrap();
        assert!(r.next_member().is_err(), "no end marker");
        let bytes = archive(&[("dev", b'3', b"", "")]);
        assert!(TarReader::new(&bytes[..]).next_member().is_err());
    }

    #[test]
    fn reads_base_256_sizes() {
        let mut field = [0u8; 12];
        field[0] = 0x80;
        field[7] = 0x02; // 2 << 32
        assert_eq!(number(&field).unwrap(), 2u64 << 32);
        assert_eq!(number(b"00000001750\0").unwrap(), 1000);
    }
}
