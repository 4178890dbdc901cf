//! The folders the mount makes up from the snapshot list (no I/O):
//!
//! ```text
//! snapshots/<time>_<shortid>/   the snapshot's files
//! hosts/<host>/<snapshot>       -> ../../snapshots/<snapshot>
//! tags/<tag>/<snapshot>         -> ../../snapshots/<snapshot>
//! latest/<host>/<source>        -> ../../snapshots/<newest of them>
//! ```
//!
//! Everything but `snapshots/` is a symlink into it, so each snapshot's
//! files have one set of inodes and every link resolves inside the mount.

use std::collections::BTreeMap;

use crate::format::snapshot::Snapshot;
use crate::format::{Id, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    /// The root folder of a snapshot: its id, root tree and time.
    Snapshot {
        id: Id,
        root: Id,
        time: Timestamp,
    },
    /// A symlink with this target.
    Link(String),
}

/// Folder path (`""` for the root, `"hosts/web1"`) to its children by name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Layout {
    dirs: BTreeMap<String, BTreeMap<String, Node>>,
}

/// `2026-11-22T053000Z_ab12cd34`: sorts by time, no characters a shell or
/// `scp` treats specially.
pub fn snapshot_name(id: &Id, time: Timestamp) -> String {
    let (year, month, day, hour, minute, second) = time.utc();
    format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}{minute:02}{second:02}Z_{}",
        id.short()
    )
}

/// A host, tag or source as one safe file name.
fn safe_name(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    match cleaned.as_str() {
        "" | "." | ".." => format!("_{cleaned}"),
        _ => cleaned,
    }
}

impl Layout {
    /// `snapshots` oldest first (as `Repository::snapshots` returns them).
    pub fn build(snapshots: &[(Id, Snapshot)]) -> Layout {
        let mut layout = Layout::default();
        for top in ["snapshots", "hosts", "tags", "latest"] {
            layout.add("", top, Node::Dir);
        }
        for (id, s) in snapshots {
            let mut name = snapshot_name(id, s.time);
            if layout.child("snapshots", &name).is_some() {
                // Same second and same 8-digit prefix: the full id tells them apart.
                name = format!("{}_{}", &name[..name.len() - 9], id.to_hex());
            }
            layout.add(
                "snapshots",
                &name,
                Node::Snapshot {
                    id: *id,
                    root: s.root,
                    time: s.time,
                },
            );
            let link = Node::Link(format!("../../snapshots/{name}"));
            let host = safe_name(&s.host);
            layout.add_under("hosts", &host, &name, link.clone());
            for tag in &s.tags {
                layout.add_under("tags", &safe_name(tag), &name, link.clone());
            }
            // Oldest first, so the last one written wins.
            layout.add_under("latest", &host, &safe_name(&s.source), link);
        }
        layout
    }

    fn add(&mut self, dir: &str, name: &str, node: Node) {
        if node == Node::Dir {
            let path = if dir.is_empty() {
                name.to_string()
            } else {
                format!("{dir}/{name}")
            };
            self.dirs.entry(path).or_default();
        }
        self.dirs
            .entry(dir.to_string())
            .or_default()
            .insert(name.to_string(), node);
    }

    /// Add `name` inside `top/group`, creating the group folder.
    fn add_under(&mut self, top: &str, group: &str, name: &str, node: Node) {
        if self.child(top, group).is_none() {
            self.add(top, group, Node::Dir);
        }
        self.add(&format!("{top}/{group}"), name, node);
    }

    /// The children of a made-up folder, or None if there is no such
    /// folder (a snapshot's children are its tree, not in the layout).
    pub fn children(&self, dir: &str) -> Option<&BTreeMap<String, Node>> {
        self.dirs.get(dir)
    }

    pub fn child(&self, dir: &str, name: &str) -> Option<&Node> {
        self.dirs.get(dir)?.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::Summary;

    fn snap(secs: i64, host: &str, source: &str, tags: &[&str]) -> Snapshot {
        Snapshot {
            time: Timestamp { secs, nanos: 0 },
            host: host.to_string(),
            user: String::new(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            source: source.to_string(),
            paths: vec![],
            root: Id::default(),
            parent: None,
            summary: Summary::default(),
            program_version: String::new(),
            meta: vec![],
        }
    }

    #[test]
    fn names_sort_by_time_and_end_in_the_short_id() {
        let id = Id::from_bytes([0xab; 32]);
        let t = Timestamp {
            secs: 1_795_325_400,
            nanos: 0,
        };
        assert_eq!(snapshot_name(&id, t), "2026-11-22T053000Z_abababab");
    }

    #[test]
    fn hosts_tags_and_latest_link_into_snapshots() {
        let a = Id::from_bytes([1; 32]);
        let b = Id::from_bytes([2; 32]);
        let c = Id::from_bytes([3; 32]);
        let layout = Layout::build(&[
            (a, snap(100, "web1", "files", &["daily"])),
            (b, snap(200, "web1", "files", &[])),
            (c, snap(300, "db/1", "pg", &["daily", ".."])),
        ]);
        let names: Vec<_> = layout.children("snapshots").unwrap().keys().collect();
        assert_eq!(names.len(), 3);
        let name_b = snapshot_name(
            &b,
            Timestamp {
                secs: 200,
                nanos: 0,
            },
        );
        assert_eq!(
            layout.child("latest/web1", "files"),
            Some(&Node::Link(format!("../../snapshots/{name_b}")))
        );
        assert!(layout.child("latest", "db_1").is_some());
        assert_eq!(layout.children("tags/daily").unwrap().len(), 2);
        assert!(layout.child("tags", "_..").is_some());
        assert_eq!(layout.children("hosts/web1").unwrap().len(), 2);
        assert_eq!(
            layout.child("snapshots", &name_b),
            Some(&Node::Snapshot {
                id: b,
                root: Id::default(),
                time: Timestamp {
                    secs: 200,
                    nanos: 0
                }
            })
        );
    }

    #[test]
    fn colliding_names_fall_back_to_the_full_id() {
        let mut one = [7u8; 32];
        let mut two = [7u8; 32];
        one[31] = 1;
        two[31] = 2;
        let layout = Layout::build(&[
            (Id::from_bytes(one), snap(5, "h", "files", &[])),
            (Id::from_bytes(two), snap(5, "h", "files", &[])),
        ]);
        assert_eq!(layout.children("snapshots").unwrap().len(), 2);
    }
}
