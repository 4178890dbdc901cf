//! The table list a PostgreSQL snapshot records at dump time (snapshot meta
//! key `pg.tables`, format-spec/README.md, "PostgreSQL snapshot facts"):
//! which tables were dumped, under their real names, with their row counts.
//! Restores find each table's data file from it; drills compare against it.
//!
//! ```text
//! version u8 (=1) | count varint | count × (database bytes | schema bytes | table bytes | rows u64 LE)
//! ```

use super::codec::{Reader, Writer};
use crate::error::Result;

pub const PG_TABLES_VERSION: u8 = 1;
/// The snapshot meta key holding the encoded list.
pub const PG_TABLES_KEY: &str = "pg.tables";
/// The snapshot meta key holding `server_version` as text.
pub const PG_SERVER_VERSION_KEY: &str = "pg.server_version";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableRows {
    pub database: String,
    pub schema: String,
    pub table: String,
    pub rows: u64,
}

pub fn encode(tables: &[TableRows]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(PG_TABLES_VERSION);
    w.list(tables, |w, t| {
        w.str(&t.database);
        w.str(&t.schema);
        w.str(&t.table);
        w.u64(t.rows);
    });
    w.into_bytes()
}

pub fn decode(bytes: &[u8]) -> Result<Vec<TableRows>> {
    let mut r = Reader::new(bytes, "pg table list");
    r.expect_version(PG_TABLES_VERSION)?;
    // Three length bytes and the row count at least.
    let tables = r.list(3 + 8, |r| {
        Ok(TableRows {
            database: r.string()?,
            schema: r.string()?,
            table: r.string()?,
            rows: r.u64()?,
        })
    })?;
    r.finish()?;
    Ok(tables)
}
