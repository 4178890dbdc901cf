//! Bytes in, snapshots out: the tree saver walks file trees, `stream` cuts
//! any byte stream into deduplicated chunks, `stream_set` gathers named
//! streams (stdin, command output, database dumps) into one snapshot, and
//! `draft` stores the snapshot object once everything it references is
//! safe. Sources of bytes (`system::process`, `engines`) stand below; the
//! commands that choose what to ingest (`ops`) stand above.

pub mod draft;
pub mod stream;
pub mod stream_set;
pub mod tree;
