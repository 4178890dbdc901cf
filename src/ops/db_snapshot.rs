//! Snapshots of Redis, MariaDB/MySQL and SQLite: each source's streams go
//! into one stream set, facts about the server into the snapshot's meta.
//! The connection is checked (and the server's version read) before any
//! dump starts, and a failed dump leaves no snapshot.

use std::path::Path;
use std::sync::Arc;

use super::snapshot::{add_process_output, SnapshotOptions, SnapshotOutcome};
use super::stream_set::StreamSet;
use super::Progress;
use crate::error::Result;
use crate::repo::Repository;
use crate::sources::command::Stderr;
use crate::sources::mysql::{self, MysqlConnection};
use crate::sources::redis::{RedisConnection, RDB_NAME};
use crate::sources::sqlite;

fn with_meta(opts: &SnapshotOptions, facts: &[(&str, String)]) -> SnapshotOptions {
    let mut opts = opts.clone();
    opts.meta.extend(
        facts
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())),
    );
    opts
}

/// What each database source records as the snapshot's source.
pub const REDIS_SOURCE: &str = "redis";
pub const MYSQL_SOURCE: &str = "mysql";
pub const SQLITE_SOURCE: &str = "sqlite";

/// The server's RDB file, stored as `dump.rdb`.
pub fn snapshot_redis(
    repo: &Arc<Repository>,
    conn: &RedisConnection,
    opts: &SnapshotOptions,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    let version = conn.server_version()?;
    let opts = with_meta(opts, &[("redis_version", version)]);
    let set = StreamSet::begin(
        repo,
        REDIS_SOURCE,
        vec![RDB_NAME.as_bytes().to_vec()],
        &opts,
    )?;
    add_process_output(
        &set,
        RDB_NAME,
        conn.rdb_command(),
        Stderr::Capture,
        progress,
    )?;
    set.commit(&opts)
}

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
pub fn snapshot_mysql(
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
    let opts = with_meta(
        opts,
        &[
            ("server_version", listing.version),
            ("databases", chosen.join("\n")),
        ],
    );
    let labels = chosen.iter().map(|d| d.as_bytes().to_vec()).collect();
    let set = StreamSet::begin(repo, MYSQL_SOURCE, labels, &opts)?;
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

/// A consistent copy of the database file `db`, stored under its own file
/// name; the copy is staged under `staging` while it is stored.
pub fn snapshot_sqlite(
    repo: &Arc<Repository>,
    db: &Path,
    staging: &Path,
    opts: &SnapshotOptions,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    let name = sqlite::stream_name(db)?;
    StreamSet::check_path(&name)?;
    let absolute =
        std::path::absolute(db).map_err(|e| crate::Error::io(db.display().to_string(), e))?;
    let (copy, facts) = sqlite::consistent_copy(db, staging)?;
    let opts = with_meta(
        opts,
        &[
            ("sqlite_version", facts.sqlite_version),
            ("page_size", facts.page_size.to_string()),
            ("pages", facts.pages.to_string()),
        ],
    );
    use std::os::unix::ffi::OsStrExt;
    let label = absolute.as_os_str().as_bytes().to_vec();
    let set = StreamSet::begin(repo, SQLITE_SOURCE, vec![label], &opts)?;
    set.add(&name, copy, progress)?;
    set.commit(&opts)
}
