//! `repair`: rebuild the index from pack headers, and rewrite snapshots
//! that reference lost data so they restore everything that survives and
//! mark what did not. Each builds a plan first (printed by `--dry-run`),
//! then writes new objects before removing anything they replace.

pub mod index;
pub mod snapshots;
