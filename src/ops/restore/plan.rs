//! What a file restore will do to its target, decided before anything is
//! written: which names it creates, which files it overwrites, and which
//! entries of another kind it deletes to make room. Pure: the state of the
//! target comes in through a probe.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::target_fs::Existing;
use crate::format::tree::{Entry, EntryKind};
use crate::ops::pattern::Patterns;

/// One entry of the snapshot on its way into the target.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Where it goes, relative to the target.
    pub rel: PathBuf,
    /// Where it was, inside the snapshot (for messages).
    pub shown: String,
    pub entry: Entry,
    pub action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing holds the name yet.
    Create,
    /// A folder already there is used as it is (its other contents stay).
    Keep,
    /// An entry of the same kind is replaced by the snapshot's.
    Overwrite,
    /// An entry of another kind (a symlink where a folder goes, say) is
    /// deleted first. A folder is deleted only when empty.
    Replace(Existing),
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Keep => "keep",
            Action::Overwrite => "overwrite",
            Action::Replace(_) => "replace",
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PlanCounts {
    pub files: u64,
    pub dirs: u64,
    /// Bytes of the files to be written.
    pub bytes: u64,
    pub created: u64,
    pub kept: u64,
    pub overwritten: u64,
    pub replaced: u64,
}

#[derive(Debug, Clone)]
pub struct RestorePlan {
    pub target: PathBuf,
    /// Walk order: every folder before what it holds.
    pub entries: Vec<Planned>,
}

impl RestorePlan {
    pub fn counts(&self) -> PlanCounts {
        let mut c = PlanCounts::default();
        for p in &self.entries {
            match p.entry.kind {
                EntryKind::Dir => c.dirs += 1,
                EntryKind::File => {
                    c.files += 1;
                    c.bytes += p.entry.size;
                }
                _ => {}
            }
            match p.action {
                Action::Create => c.created += 1,
                Action::Keep => c.kept += 1,
                Action::Overwrite => c.overwritten += 1,
                Action::Replace(_) => c.replaced += 1,
            }
        }
        c
    }
}

/// Drop folders that were walked only to look for wanted entries but hold
/// none. One pass marks every ancestor of a wanted entry; the climb stops at
/// the first ancestor already marked, so each folder is marked once.
pub fn prune_unwanted_dirs(items: &mut Vec<(PathBuf, String, Entry)>, include: &Patterns) {
    let wanted: Vec<bool> = items
        .iter()
        .map(|(_, shown, _)| include.matches_path_or_ancestor(shown.as_bytes()))
        .collect();
    let mut needed: HashSet<&Path> = HashSet::new();
    for ((rel, _, _), w) in items.iter().zip(&wanted) {
        if !*w {
            continue;
        }
        for ancestor in rel.ancestors().skip(1) {
            if !needed.insert(ancestor) {
                break;
            }
        }
    }
    let keep: Vec<bool> = items
        .iter()
        .zip(&wanted)
        .map(|((rel, _, _), w)| *w || needed.contains(rel.as_path()))
        .collect();
    let mut k = keep.into_iter();
    items.retain(|_| k.next().unwrap_or(false));
}

/// Decide each entry's action. `probe` tells what the target holds at a
/// relative path (without following symlinks); it is not asked below a
/// folder the restore creates or replaces, where nothing can exist yet.
pub fn decide(
    target: PathBuf,
    items: Vec<(PathBuf, String, Entry)>,
    probe: &mut dyn FnMut(&Path) -> Option<Existing>,
) -> RestorePlan {
    // Folders whose contents are all new: created, or replacing a non-folder.
    let mut fresh: HashSet<PathBuf> = HashSet::new();
    let mut entries = Vec::with_capacity(items.len());
    for (rel, shown, entry) in items {
        let under_fresh = rel.parent().is_some_and(|p| fresh.contains(p));
        let existing = if under_fresh { None } else { probe(&rel) };
        let action = match (entry.kind, existing) {
            (_, None) => Action::Create,
            (EntryKind::Dir, Some(Existing::Dir)) => Action::Keep,
            (EntryKind::File, Some(Existing::File))
            | (EntryKind::Symlink, Some(Existing::Symlink)) => Action::Overwrite,
            (_, Some(other)) => Action::Replace(other),
        };
        if entry.kind == EntryKind::Dir && action != Action::Keep {
            fresh.insert(rel.clone());
        }
        entries.push(Planned {
            rel,
            shown,
            entry,
            action,
        });
    }
    RestorePlan { target, entries }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn entry(kind: EntryKind, size: u64) -> Entry {
        Entry {
            name: Vec::new(),
            kind,
            flags: 0,
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime: Default::default(),
            ctime: Default::default(),
            inode: 0,
            dev: 0,
            size,
            content: crate::format::tree::Content::Other,
        }
    }

    fn item(rel: &str, kind: EntryKind) -> (PathBuf, String, Entry) {
        (PathBuf::from(rel), format!("/{rel}"), entry(kind, 3))
    }

    #[test]
    fn the_plan_names_what_is_created_overwritten_and_replaced() {
        let target: HashMap<PathBuf, Existing> = [
            ("a", Existing::Dir),
            ("a/same.txt", Existing::File),
            ("a/link", Existing::Dir),
            ("b", Existing::Symlink),
            ("b/never-asked", Existing::File),
        ]
        .into_iter()
        .map(|(p, e)| (PathBuf::from(p), e))
        .collect();
        let mut asked = Vec::new();
        let plan = decide(
            PathBuf::from("/t"),
            vec![
                item("a", EntryKind::Dir),
                item("a/same.txt", EntryKind::File),
                item("a/new.txt", EntryKind::File),
                item("a/link", EntryKind::Symlink),
                item("b", EntryKind::Dir),
                item("b/never-asked", EntryKind::File),
            ],
            &mut |rel| {
                asked.push(rel.to_path_buf());
                target.get(rel).copied()
            },
        );
        let actions: Vec<(&str, Action)> = plan
            .entries
            .iter()
            .map(|p| (p.rel.to_str().unwrap(), p.action))
            .collect();
        assert_eq!(
            actions,
            vec![
                ("a", Action::Keep),
                ("a/same.txt", Action::Overwrite),
                ("a/new.txt", Action::Create),
                ("a/link", Action::Replace(Existing::Dir)),
                ("b", Action::Replace(Existing::Symlink)),
                ("b/never-asked", Action::Create),
            ]
        );
        assert!(
            !asked.contains(&PathBuf::from("b/never-asked")),
            "probed below a symlink the restore replaces"
        );
        let c = plan.counts();
        assert_eq!((c.files, c.dirs, c.bytes), (3, 2, 9));
        assert_eq!((c.created, c.kept, c.overwritten, c.replaced), (2, 1, 1, 2));
    }

    #[test]
    fn unwanted_folders_go_and_ancestors_of_wanted_entries_stay() {
        let include = Patterns::new(&["/keep/**/wanted.txt".to_string()]).unwrap();
        let mut items = vec![
            item("keep", EntryKind::Dir),
            item("keep/deep", EntryKind::Dir),
            item("keep/deep/er", EntryKind::Dir),
            item("keep/deep/er/wanted.txt", EntryKind::File),
            item("keep/empty", EntryKind::Dir),
            item("other", EntryKind::Dir),
        ];
        prune_unwanted_dirs(&mut items, &include);
        let left: Vec<&str> = items.iter().map(|(r, _, _)| r.to_str().unwrap()).collect();
        assert_eq!(
            left,
            vec![
                "keep",
                "keep/deep",
                "keep/deep/er",
                "keep/deep/er/wanted.txt"
            ]
        );
    }
}
