//! The integration tests: one binary, one module per concern (see
//! ARCHITECTURE.md). Filter with `cargo test --test tests MODULE::`.

#[path = "../fuzz/checks.rs"]
mod checks;
mod common;

mod architecture;
mod check;
mod cli_errors;
mod cli_habits;
mod cli_roundtrip;
mod crash;
mod damage;
mod db_mariadb;
mod db_redis;
mod db_sqlite;
mod dedup;
mod deep_trees;
mod delta_sources;
mod deltas;
mod disk_full;
mod effective_index;
mod find_diff;
mod format_pg;
mod format_roundtrip;
mod format_spec_vectors;
mod fuzz_corpus;
mod hostile_objects;
mod interrupt;
mod library;
mod lock_format;
mod lock_loss;
mod mount;
mod password_secrecy;
mod pg_dependents;
mod pg_drill;
mod pg_failures;
mod pg_physical;
mod pg_roles;
mod pg_roundtrip;
mod pg_split;
mod pg_wal;
mod pg_zoo;
mod plan_run;
mod prune;
mod prune_concurrency;
mod prune_crash;
mod prune_faults;
mod prune_model;
mod prune_plan;
mod prune_two_phase;
mod restore_plan;
mod restore_safety;
mod retention;
mod s3;
mod verified_record;
mod wal_retention;
