//! How a PostgreSQL snapshot read its large tables in parts (snapshot meta
//! key `pg.parts`, format-spec/README.md, "PostgreSQL snapshots"): for each
//! table read in block ranges, the range size and the byte length of each
//! part's rows in the table's data file. Readers of the data file do not
//! need it (the file is the parts joined in order); the next snapshot uses
//! it to store each part as a delta against the same part of this one.
//!
//! ```text
//! version u8 (=1) | count varint | count × (database bytes | schema bytes | table bytes
//!   | part_blocks u64 LE | parts varint | parts × bytes u64 LE)
//! ```

use super::codec::{Reader, Writer};
use crate::error::Result;

pub const PG_PARTS_VERSION: u8 = 1;
/// The snapshot meta key holding the encoded list.
pub const PG_PARTS_KEY: &str = "pg.parts";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableParts {
    pub database: String,
    pub schema: String,
    pub table: String,
    /// Heap blocks per part: part k holds the rows of blocks
    /// `[k * part_blocks, (k + 1) * part_blocks)`, the last part every
    /// block from its start on.
    pub part_blocks: u64,
    /// Each part's length in the data file, in order; they sum to its size.
    pub parts: Vec<u64>,
}

impl TableParts {
    /// Where part `k` lies in the data file.
    pub fn range(&self, k: usize) -> Option<std::ops::Range<u64>> {
        let len = *self.parts.get(k)?;
        let start = self.parts[..k]
            .iter()
            .try_fold(0u64, |a, b| a.checked_add(*b))?;
        Some(start..start.checked_add(len)?)
    }
}

pub fn encode(tables: &[TableParts]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(PG_PARTS_VERSION);
    w.list(tables, |w, t| {
        w.str(&t.database);
        w.str(&t.schema);
        w.str(&t.table);
        w.u64(t.part_blocks);
        w.list(&t.parts, |w, p| w.u64(*p));
    });
    w.into_bytes()
}

pub fn decode(bytes: &[u8]) -> Result<Vec<TableParts>> {
    let mut r = Reader::new(bytes, "pg part list");
    r.expect_version(PG_PARTS_VERSION)?;
    // Three length bytes, the range size and the part count at least.
    let tables = r.list(3 + 8 + 1, |r| {
        Ok(TableParts {
            database: r.string()?,
            schema: r.string()?,
            table: r.string()?,
            part_blocks: r.u64()?,
            parts: r.list(8, |r| r.u64())?,
        })
    })?;
    r.finish()?;
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TableParts {
        TableParts {
            database: "shop".into(),
            schema: "public".into(),
            table: "events".into(),
            part_blocks: 8192,
            parts: vec![100, 50, 7],
        }
    }

    #[test]
    fn round_trips_and_rejects_damage() {
        let list = vec![sample()];
        let bytes = encode(&list);
        assert_eq!(decode(&bytes).unwrap(), list);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        let mut future = bytes;
        future[0] = 2;
        assert_eq!(
            decode(&future).unwrap_err().kind(),
            crate::error::ErrorKind::Unsupported
        );
    }

    #[test]
    fn parts_lie_end_to_end() {
        let t = sample();
        assert_eq!(t.range(0), Some(0..100));
        assert_eq!(t.range(2), Some(150..157));
        assert_eq!(t.range(3), None);
        let huge = TableParts {
            parts: vec![u64::MAX, 1],
            ..sample()
        };
        assert_eq!(huge.range(1), None);
    }
}
