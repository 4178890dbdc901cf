//! Trees: one directory's entries, stored as a blob of kind Tree. Entry names
//! are raw bytes (any non-UTF-8 name survives) and are checked on decode so a
//! hostile repository cannot name `..`, `/x` or `a/b` and steer a restore
//! outside its target.

use super::codec::{Reader, Writer};
use super::id::{Id, ID_LEN};
use super::Timestamp;
use crate::error::{Error, Result};

pub const TREE_VERSION: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EntryKind {
    File = 1,
    Dir = 2,
    Symlink = 3,
    Fifo = 4,
    CharDevice = 5,
    BlockDevice = 6,
    Socket = 7,
}

impl EntryKind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => EntryKind::File,
            2 => EntryKind::Dir,
            3 => EntryKind::Symlink,
            4 => EntryKind::Fifo,
            5 => EntryKind::CharDevice,
            6 => EntryKind::BlockDevice,
            7 => EntryKind::Socket,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Fifo => "fifo",
            EntryKind::CharDevice => "chardev",
            EntryKind::BlockDevice => "blockdev",
            EntryKind::Socket => "socket",
        }
    }
}

/// Flag bit: some of this file's content was lost and the entry was
/// rewritten by repair (restore reports it instead of silently truncating).
pub const FLAG_DAMAGED: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    pub id: Id,
    pub len: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    File { chunks: Vec<ChunkRef> },
    Dir { subtree: Id },
    Symlink { target: Vec<u8> },
    Device { rdev: u64 },
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    pub kind: EntryKind,
    pub flags: u8,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: String,
    pub group: String,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub inode: u64,
    pub dev: u64,
    pub size: u64,
    pub content: Content,
}

impl Entry {
    pub fn chunks(&self) -> &[ChunkRef] {
        match &self.content {
            Content::File { chunks } => chunks,
            _ => &[],
        }
    }

    pub fn subtree(&self) -> Option<Id> {
        match &self.content {
            Content::Dir { subtree } => Some(*subtree),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    /// Sorted by name, bytewise, no duplicates.
    pub entries: Vec<Entry>,
}

/// A name that is safe as one path component.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

impl Tree {
    pub fn find(&self, name: &[u8]) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(TREE_VERSION);
        w.list(&self.entries, |w, e| {
            w.bytes(&e.name);
            w.u8(e.kind as u8);
            w.u8(e.flags);
            w.u32(e.mode);
            w.u32(e.uid);
            w.u32(e.gid);
            w.str(&e.user);
            w.str(&e.group);
            e.mtime.write(w);
            e.ctime.write(w);
            w.u64(e.inode);
            w.u64(e.dev);
            w.u64(e.size);
            match &e.content {
                Content::File { chunks } => w.list(chunks, |w, c| {
                    w.id(&c.id);
                    w.u32(c.len);
                }),
                Content::Dir { subtree } => w.id(subtree),
                Content::Symlink { target } => w.bytes(target),
                Content::Device { rdev } => w.u64(*rdev),
                Content::Other => {}
            }
        });
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "tree");
        r.expect_version(TREE_VERSION)?;
        let entries = r.list(64, |r| {
            let name = r.bytes()?.to_vec();
            if !valid_name(&name) {
                return Err(r.error(&format!(
                    "unsafe entry name {:?}",
                    String::from_utf8_lossy(&name)
                )));
            }
            let kind = EntryKind::from_u8(r.u8()?).ok_or_else(|| r.error("unknown entry kind"))?;
            let flags = r.u8()?;
            if flags & !FLAG_DAMAGED != 0 {
                return Err(r.error("unknown entry flags"));
            }
            let mode = r.u32()?;
            let uid = r.u32()?;
            let gid = r.u32()?;
            let user = r.string()?;
            let group = r.string()?;
            let mtime = Timestamp::read(r)?;
            let ctime = Timestamp::read(r)?;
            let inode = r.u64()?;
            let dev = r.u64()?;
            let size = r.u64()?;
            let content = match kind {
                EntryKind::File => {
                    let chunks = r.list(ID_LEN + 4, |r| {
                        Ok(ChunkRef {
                            id: r.id()?,
                            len: r.u32()?,
                        })
                    })?;
                    let total: u64 = chunks.iter().map(|c| u64::from(c.len)).sum();
                    if total != size && flags & FLAG_DAMAGED == 0 {
                        return Err(r.error("file chunks do not add up to its size"));
                    }
                    Content::File { chunks }
                }
                EntryKind::Dir => Content::Dir { subtree: r.id()? },
                EntryKind::Symlink => Content::Symlink {
                    target: r.bytes()?.to_vec(),
                },
                EntryKind::CharDevice | EntryKind::BlockDevice => {
                    Content::Device { rdev: r.u64()? }
                }
                EntryKind::Fifo | EntryKind::Socket => Content::Other,
            };
            Ok(Entry {
                name,
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
            })
        })?;
        r.finish()?;
        if entries.windows(2).any(|w| w[0].name >= w[1].name) {
            return Err(Error::corrupt(
                "tree entries are not sorted by name or repeat a name",
            ));
        }
        Ok(Tree { entries })
    }
}
