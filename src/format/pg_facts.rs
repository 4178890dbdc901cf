//! What a PostgreSQL snapshot recorded about each database at dump time
//! (snapshot meta key `pg.databases`, format-spec/README.md, "PostgreSQL
//! snapshots"), for drills to compare the restored copy against: the
//! schema's fingerprint, the large objects' count and total size, and the
//! materialized views that held data.
//!
//! ```text
//! version u8 (=1) | count varint | count × (database bytes | fingerprint bytes
//!   | large_objects u64 LE | large_object_bytes u64 LE
//!   | matviews: count varint | count × (schema bytes | name bytes))
//! ```

use super::codec::{Reader, Writer};
use crate::error::Result;

pub const PG_FACTS_VERSION: u8 = 1;
/// The snapshot meta key holding the encoded list.
pub const PG_FACTS_KEY: &str = "pg.databases";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseFacts {
    pub database: String,
    /// md5 (hex) of the schema's description, `engines::pg::facts`.
    pub fingerprint: String,
    pub large_objects: u64,
    pub large_object_bytes: u64,
    /// Materialized views that held data, as (schema, name).
    pub matviews: Vec<(String, String)>,
}

pub fn encode(databases: &[DatabaseFacts]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(PG_FACTS_VERSION);
    w.list(databases, |w, d| {
        w.str(&d.database);
        w.str(&d.fingerprint);
        w.u64(d.large_objects);
        w.u64(d.large_object_bytes);
        w.list(&d.matviews, |w, (schema, name)| {
            w.str(schema);
            w.str(name);
        });
    });
    w.into_bytes()
}

pub fn decode(bytes: &[u8]) -> Result<Vec<DatabaseFacts>> {
    let mut r = Reader::new(bytes, "pg database facts");
    r.expect_version(PG_FACTS_VERSION)?;
    // Two length bytes, two counts and a list length at least.
    let databases = r.list(2 + 16 + 1, |r| {
        Ok(DatabaseFacts {
            database: r.string()?,
            fingerprint: r.string()?,
            large_objects: r.u64()?,
            large_object_bytes: r.u64()?,
            matviews: r.list(2, |r| Ok((r.string()?, r.string()?)))?,
        })
    })?;
    r.finish()?;
    Ok(databases)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_trailing_bytes() {
        let facts = vec![DatabaseFacts {
            database: "zoo".into(),
            fingerprint: "0123abcd".into(),
            large_objects: 3,
            large_object_bytes: 13003,
            matviews: vec![("public".into(), "stats".into())],
        }];
        let bytes = encode(&facts);
        assert_eq!(decode(&bytes).unwrap(), facts);
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
