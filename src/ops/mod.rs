//! Commands as library calls. Each takes an open repository and option
//! structs; the command-line layer only parses and prints.

pub mod check;
pub mod content;
pub mod copy;
pub mod diff;
pub mod find;
pub mod forget;
pub mod jobs;
pub mod mysql;
pub mod pattern;
pub mod pg;
pub mod prune;
pub mod reachable;
pub mod redis;
pub mod repair;
pub mod restore;
pub mod run;
pub mod snapshot;
pub mod sqlite;
pub mod upgrade;
pub mod wal_ahead;
pub mod wal_retention;
pub mod wal_status;
pub mod walk;
