//! Redis: the server's RDB file, taken with `redis-cli --rdb`, stored as
//! `dump.rdb`. The connection is checked (and the server's version read)
//! before the dump starts, and a failed dump leaves no snapshot.

use std::sync::Arc;

use super::snapshot::{add_process_output, SnapshotOptions, SnapshotOutcome};
use crate::engines::redis::{RedisConnection, RDB_NAME};
use crate::error::Result;
use crate::ingest::stream_set::StreamSet;
use crate::progress::Progress;
use crate::repo::Repository;
use crate::system::process::Stderr;

/// What a Redis snapshot records as its source.
pub const SOURCE: &str = "redis";

/// The server's RDB file, stored as `dump.rdb`.
pub fn snapshot(
    repo: &Arc<Repository>,
    conn: &RedisConnection,
    opts: &SnapshotOptions,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    let version = conn.server_version()?;
    let opts = opts.with_facts(&[("redis_version", version)]);
    let set = StreamSet::begin(repo, SOURCE, vec![RDB_NAME.as_bytes().to_vec()], &opts)?;
    add_process_output(
        &set,
        RDB_NAME,
        conn.rdb_command(),
        Stderr::Capture,
        progress,
    )?;
    set.commit(&opts)
}
