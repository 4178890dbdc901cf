//! MariaDB/MySQL: one `<database>.sql` dump per database (and the users in
//! `system/users.sql` when asked) in one snapshot, and the restore that
//! feeds them to the client one database after another. Connection first,
//! then dumps; a failed dump leaves no snapshot. The restore plans first,
//! so `--dry-run` can show the plan.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::content::feed_command;
use super::snapshot::{add_process_output, SnapshotOptions, SnapshotOutcome};
use super::walk::file_entry;
use crate::engines::mysql::{self, MysqlConnection};
use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{Entry, EntryKind, Tree};
use crate::format::Id;
use crate::ingest::stream_set::StreamSet;
use crate::progress::Progress;
use crate::repo::Repository;
use crate::system::process::Stderr;

/// What a MariaDB/MySQL snapshot records as its source.
pub const SOURCE: &str = "mysql";

/// Which MariaDB/MySQL databases to dump.
#[derive(Debug, Clone, Default)]
pub struct MysqlSelection {
    pub all: bool,
    pub databases: Vec<String>,
    /// Also store the server's users, roles and grants.
    pub users: bool,
}

/// One `<database>.sql` per chosen database, and the users in
/// `system/users.sql` when asked.
pub fn snapshot(
    repo: &Arc<Repository>,
    conn: &MysqlConnection,
    selection: &MysqlSelection,
    opts: &SnapshotOptions,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    let listing = conn.listing()?;
    let chosen = mysql::choose_databases(
        &listing.databases,
        &selection.databases,
        selection.all,
        "the server",
    )?;
    for db in &chosen {
        StreamSet::check_path(&mysql::stream_name(db))?;
    }
    let opts = opts.with_facts(&[
        ("server_version", listing.version),
        ("databases", chosen.join("\n")),
    ]);
    let labels = chosen.iter().map(|d| d.as_bytes().to_vec()).collect();
    let set = StreamSet::begin(repo, SOURCE, labels, &opts)?;
    for db in &chosen {
        let name = mysql::stream_name(db);
        add_process_output(
            &set,
            &name,
            conn.dump_command(db),
            Stderr::Capture,
            progress,
        )?;
    }
    if selection.users {
        add_process_output(
            &set,
            mysql::USERS_STREAM,
            conn.users_dump_command(),
            Stderr::Capture,
            progress,
        )
        .map_err(|e| e.at("dumping the users (--system=users)"))?;
    }
    set.commit(&opts)
}

/// One database to restore from its dump file.
#[derive(Debug, Clone)]
pub struct MysqlRestoreStep {
    pub database: String,
    pub entry: Entry,
}

/// The databases stored in a snapshot's root (`<db>.sql` files), and the
/// ones to restore: `wanted`, or all of them.
pub fn plan_restore(root: &Tree, wanted: &[String]) -> Result<Vec<MysqlRestoreStep>> {
    let stored: Vec<(String, &Entry)> = root
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .filter_map(|e| {
            let name = std::str::from_utf8(&e.name).ok()?;
            Some((mysql::database_of(name)?.to_string(), e))
        })
        .collect();
    if stored.is_empty() {
        return Err(Error::invalid(
            "this snapshot holds no database dumps (<database>.sql)",
        ));
    }
    let names: Vec<String> = stored.iter().map(|(d, _)| d.clone()).collect();
    let chosen = if wanted.is_empty() {
        names
    } else {
        mysql::choose_databases(&names, wanted, false, "the snapshot")?
    };
    Ok(chosen
        .into_iter()
        .filter_map(|d| {
            stored
                .iter()
                .find(|(name, _)| *name == d)
                .map(|(_, e)| MysqlRestoreStep {
                    database: d.clone(),
                    entry: (*e).clone(),
                })
        })
        .collect())
}

/// The stored users, roles and grants of a snapshot taken with them.
pub fn users_entry(repo: &Repository, root: &Id) -> Result<Entry> {
    file_entry(repo, root, Some(mysql::USERS_STREAM.as_bytes())).map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            Error::invalid(format!(
                "this snapshot holds no users ({}): it was taken without --all, or with --no-users",
                mysql::USERS_STREAM
            ))
        } else {
            e
        }
    })
}

/// Feed the users (when given) and then each planned dump to the client;
/// stops at the first failure, naming what failed (what came before it is
/// restored). Users go first, so the accounts named as views' and
/// routines' definers exist when those are created.
pub fn restore(
    repo: &Repository,
    conn: &MysqlConnection,
    users: Option<&Entry>,
    plan: &[MysqlRestoreStep],
    progress: &Progress,
) -> Result<u64> {
    let sizes: u64 = plan.iter().map(|s| s.entry.size).sum::<u64>() + users.map_or(0, |u| u.size);
    progress.bytes_total.store(sizes, Ordering::Relaxed);
    let mut total = 0;
    if let Some(users) = users {
        total += feed_command(repo, users, conn.restore_command(), progress)
            .map_err(|e| e.at("restoring the users"))?;
    }
    for step in plan {
        total += feed_command(repo, &step.entry, conn.restore_command(), progress)
            .map_err(|e| e.at(format!("restoring database {}", step.database)))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tree::Content;
    use crate::format::Timestamp;

    fn file(name: &str) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            kind: EntryKind::File,
            flags: 0,
            mode: 0o600,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime: Timestamp { secs: 0, nanos: 0 },
            ctime: Timestamp { secs: 0, nanos: 0 },
            inode: 0,
            dev: 0,
            size: 0,
            content: Content::File { chunks: vec![] },
        }
    }

    #[test]
    fn mysql_plan_takes_all_or_the_named_databases() {
        let root = Tree {
            entries: vec![file("crm.sql"), file("notes.txt"), file("shop.sql")],
        };
        let all: Vec<String> = plan_restore(&root, &[])
            .unwrap()
            .into_iter()
            .map(|s| s.database)
            .collect();
        assert_eq!(all, ["crm", "shop"]);
        let one = plan_restore(&root, &["shop".to_string()]).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].entry.name, b"shop.sql");
        let err = plan_restore(&root, &["nope".to_string()]).unwrap_err();
        assert!(
            err.to_string().contains("snapshot has no database 'nope'"),
            "{err}"
        );
        let empty = Tree {
            entries: vec![file("dump.rdb")],
        };
        assert!(plan_restore(&empty, &[]).is_err());
    }
}
