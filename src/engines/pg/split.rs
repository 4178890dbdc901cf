//! Reading one large table in parts, in parallel, from the one exported
//! snapshot: part k holds the rows stored in heap blocks
//! `[k * part_blocks, (k + 1) * part_blocks)`, the last part every block from
//! its start on (rows a concurrent writer adds past the end are invisible to
//! the snapshot, but the table may have grown). A TID range scan (PostgreSQL
//! 14 and later) reads only a part's blocks, in physical order, so the parts
//! joined in order are exactly what `COPY table TO STDOUT` writes.
//!
//! Fixed block ranges keep a part's bytes where they were between hourly
//! snapshots: a table growing at its end, or a row updated in place, changes
//! only its own part, and each part is stored as a delta against the same
//! part of the parent snapshot.

use std::ops::Range;

use super::quote_literal;
use crate::format::pg_parts::TableParts;

/// The first server version with TID range scans: before it a part's
/// `ctid` condition would read the whole table.
pub const MIN_SERVER_VERSION_NUM: u32 = 140000;

/// Heap blocks per part for parts of `split_size` bytes, or None when
/// tables are read whole (`split_size` 0, or a server without TID range
/// scans).
pub fn part_blocks(split_size: u64, block_size: u64, server_version_num: u32) -> Option<u64> {
    if split_size == 0 || block_size == 0 || server_version_num < MIN_SERVER_VERSION_NUM {
        return None;
    }
    Some((split_size / block_size).max(1))
}

/// How many parts a table of `blocks` heap blocks is read in (1: whole).
pub fn part_count(blocks: u64, part_blocks: u64) -> u64 {
    if part_blocks == 0 {
        return 1;
    }
    blocks.div_ceil(part_blocks).max(1)
}

/// The statements reading part `k` of `count`: the table's own rows (not
/// its children's), the columns `COPY table TO` writes (`columns`, quoted
/// and comma-separated: every column but generated ones), without a
/// parallel plan (its workers would return rows out of order).
pub fn part_query(table: &str, columns: &str, part_blocks: u64, k: u64, count: u64) -> [String; 2] {
    let tid = |block: u64| quote_literal(&format!("({block},0)"));
    let start = k.saturating_mul(part_blocks);
    let mut query = format!(
        "COPY (SELECT {columns} FROM ONLY {table} WHERE ctid >= {}::tid",
        tid(start)
    );
    if k + 1 < count {
        query.push_str(&format!(
            " AND ctid < {}::tid",
            tid(start.saturating_add(part_blocks))
        ));
    }
    query.push_str(") TO STDOUT");
    ["SET max_parallel_workers_per_gather = 0".to_string(), query]
}

/// Where the parent snapshot's version of part `k` lies in its data file:
/// the same part when the parent read the table in parts of the same size;
/// for the first part, the whole file when the parent read it whole; else
/// nothing (an empty range).
pub fn parent_range(parent: Option<&TableParts>, part_blocks: u64, k: usize) -> Range<u64> {
    match parent {
        Some(p) if p.part_blocks == part_blocks => p.range(k).unwrap_or(0..0),
        Some(_) => 0..0,
        None if k == 0 => 0..u64::MAX,
        None => 0..0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_follow_the_split_size_and_the_server() {
        assert_eq!(part_blocks(64 << 20, 8192, 150004), Some(8192));
        assert_eq!(part_blocks(1000, 8192, 150004), Some(1));
        assert_eq!(part_blocks(0, 8192, 150004), None);
        assert_eq!(part_blocks(64 << 20, 8192, 130011), None);
        assert_eq!(part_count(0, 8), 1);
        assert_eq!(part_count(8, 8), 1);
        assert_eq!(part_count(9, 8), 2);
    }

    #[test]
    fn the_last_part_reads_to_the_end() {
        let [_, q] = part_query("\"public\".\"t\"", "\"a\", \"b\"", 8, 0, 3);
        assert_eq!(q, "COPY (SELECT \"a\", \"b\" FROM ONLY \"public\".\"t\" WHERE ctid >= '(0,0)'::tid AND ctid < '(8,0)'::tid) TO STDOUT");
        let [setting, last] = part_query("\"public\".\"t\"", "\"a\"", 8, 2, 3);
        assert!(last.ends_with("WHERE ctid >= '(16,0)'::tid) TO STDOUT"));
        assert_eq!(setting, "SET max_parallel_workers_per_gather = 0");
    }

    #[test]
    fn parts_align_with_the_parents_same_part() {
        let p = TableParts {
            database: "d".into(),
            schema: "s".into(),
            table: "t".into(),
            part_blocks: 8,
            parts: vec![10, 20],
        };
        assert_eq!(parent_range(Some(&p), 8, 1), 10..30);
        assert_eq!(parent_range(Some(&p), 8, 2), 0..0, "a new part");
        assert_eq!(parent_range(Some(&p), 16, 0), 0..0, "other boundaries");
        assert_eq!(parent_range(None, 8, 0), 0..u64::MAX, "read whole before");
        assert_eq!(parent_range(None, 8, 1), 0..0);
    }
}
