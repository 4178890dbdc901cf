//! `vault snapshot pg` and `vault restore pg`, with the connection options
//! they share: psql's and pg_dump's own spellings (`-h`, `-p`, `-U`, `-d`).

pub(crate) mod conn;
pub(crate) mod physical;
pub(crate) mod restore;
pub(crate) mod snapshot;
