//! The database engines vault backs up and restores, one module each: how
//! to reach the server, and how to drive its own client programs (pg_dump
//! and psql, mariadb-dump and mariadb, redis-cli) or library (SQLite's
//! backup API) in either direction. What becomes of the bytes is `ops`'s
//! business.

pub mod mysql;
pub mod pg;
pub mod redis;
pub mod sqlite;
