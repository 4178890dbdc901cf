//! Delta chains (repository format 3): a day of hourly versions in which
//! changes accumulate is stored as skip-delta chains, whose length stays
//! within the format's limit and whose hourly cost does not grow with the
//! distance to the last whole copy; every hour restores, prune keeps every
//! link a kept hour needs, damage to a link is damage to every hour that
//! reads through it, and format 2 repositories keep one-link chains until
//! upgraded.

use crate::common;
use crate::deltas::{check_clean, dump, rows_with, stats, touched};

use std::io::Cursor;
use std::path::Path;

use common::faults::{blob_place, file_chunks, flip, open_library};
use common::*;
use serde_json::Value;
use vault::format::delta::MAX_LINKS;
use vault::format::{BlobKind, Id};

const ROWS: usize = 40_000;

/// Hour `hour` of a table in which each hour changes another 1% of the
/// rows and keeps the earlier changes, as real traffic does.
fn hour(hour: u64) -> Vec<u8> {
    rows_with(ROWS, |i| {
        (1..=hour).rev().find(|&h| touched(i, h)).unwrap_or(0)
    })
}

/// Snapshots hours `hours` of stream "t", returning each one's summary.
fn snapshot_hours(v: &Vault, hours: std::ops::RangeInclusive<u64>) -> Vec<Value> {
    hours
        .map(|h| v.snapshot_stdin("t", Cursor::new(hour(h))))
        .collect()
}

/// The chunks of stream "t" in snapshot `snap`.
fn chunks(v: &Vault, snap: &str) -> Vec<Id> {
    file_chunks(v, snap, Path::new("t"))
}

/// The links from `id` to the whole blob its chain ends at, `id` first.
fn chain(v: &Vault, id: &Id) -> Vec<Id> {
    let repo = open_library(v);
    let mut out = vec![*id];
    while let Some(base) = repo
        .blob_location(BlobKind::Data, out.last().unwrap())
        .unwrap()
        .expect("every link is indexed")
        .base
    {
        assert!(out.len() <= MAX_LINKS, "a chain beyond the limit");
        out.push(base);
    }
    out
}

fn longest_chain(v: &Vault, snap: &Value) -> usize {
    chunks(v, json_str(snap, "snapshot"))
        .iter()
        .map(|c| chain(v, c).len() - 1)
        .max()
        .unwrap_or(0)
}

fn init(format: &str) -> Vault {
    let mut args = SMALL_CHUNKS.to_vec();
    args.extend(["--format-version", format]);
    Vault::init_with(&args)
}

#[test]
fn a_day_of_hours_is_stored_as_skip_delta_chains_that_stay_cheap() {
    let chained = init("3");
    let flat = init("2");
    let hours = snapshot_hours(&chained, 0..=16);
    let flat_hours = snapshot_hours(&flat, 0..=16);

    // Hour 15 = 0b1111 sits four links from the whole blob; hour 16 goes
    // back to it in one.
    let links: Vec<usize> = hours.iter().map(|s| longest_chain(&chained, s)).collect();
    assert!(links.iter().all(|&n| n <= MAX_LINKS), "{links:?}");
    assert!(links[15] >= 3, "hour 15 reads through a chain: {links:?}");
    assert!(
        flat_hours.iter().all(|s| longest_chain(&flat, s) <= 1),
        "format 2 keeps one-link chains"
    );

    // Each repository keys its chunker, so chunk boundaries and the odd
    // chunk stored whole again differ from run to run: compare sums.
    // One-link deltas span every hour since the first and grow; chained
    // ones span few hours, so the day costs less and its second half no
    // more than the first half of the one-link day's.
    let sum =
        |s: &[Value], r: std::ops::Range<usize>| -> u64 { s[r].iter().map(|s| stats(s).0).sum() };
    let (chained_day, flat_day) = (sum(&hours, 1..17), sum(&flat_hours, 1..17));
    assert!(
        chained_day * 10 < flat_day * 8,
        "chains {chained_day} bytes vs one link {flat_day}"
    );
    let (chained_late, flat_late) = (sum(&hours, 9..16), sum(&flat_hours, 9..16));
    assert!(
        chained_late * 4 < flat_late * 3,
        "hours 9-15: chains {chained_late} bytes vs one link {flat_late}"
    );

    for (h, s) in hours.iter().enumerate() {
        assert_eq!(
            dump(&chained, json_str(s, "snapshot"), "t"),
            hour(h as u64),
            "hour {h}"
        );
    }
    check_clean(&chained);
}

#[test]
fn prune_keeps_every_link_that_a_kept_hour_reads_through() {
    let v = init("3");
    let hours = snapshot_hours(&v, 0..=7);
    // Hour 7 = 0b111 is stored against 6, 6 against 4, 4 against 0.
    assert!(longest_chain(&v, &hours[7]) >= 3);
    let ids: Vec<&str> = hours.iter().map(|s| json_str(s, "snapshot")).collect();
    v.ok(&["forget", ids[0], ids[4], ids[5]]);
    v.ok(&["prune", "--exclusive", "--max-unused", "0%"]);
    for h in [1, 2, 3, 6, 7] {
        assert_eq!(dump(&v, ids[h], "t"), hour(h as u64), "hour {h}");
    }
    check_clean(&v);
    v.ok(&["forget", "--keep-last", "1"]);
    v.ok(&["prune", "--exclusive", "--max-unused", "0%"]);
    assert_eq!(dump(&v, ids[7], "t"), hour(7));
    check_clean(&v);
    // The next hour still finds its chain.
    let next = v.snapshot_stdin("t", Cursor::new(hour(8)));
    assert!(stats(&next).1 > 0, "{next}");
    assert_eq!(dump(&v, json_str(&next, "snapshot"), "t"), hour(8));
}

#[test]
fn a_flipped_byte_at_the_end_of_a_chain_is_damage_to_every_hour_through_it() {
    let v = init("3");
    let hours = snapshot_hours(&v, 0..=3);
    // The first chunk of hour 3 (rows change from the start): 3 -> 2 -> 0.
    let first = chunks(&v, json_str(&hours[3], "snapshot"))[0];
    let links = chain(&v, &first);
    assert!(links.len() >= 3, "a chain of two links: {links:?}");
    let root = *links.last().unwrap();
    let (pack, offset, len) = blob_place(&v, BlobKind::Data, &root);
    flip(&pack, offset + len / 2);

    let out = v.run(&["--json", "check", "--read-data"]);
    assert_code(
        &out,
        4,
        "check over a damaged whole blob at the end of chains",
    );
    let report = parse_json(&out);
    let damaged = report["damaged_snapshots"].as_array().unwrap();
    assert_eq!(damaged.len(), 4, "every hour reads through it: {report}");
    let of_last = damaged
        .iter()
        .find(|d| d["id"] == json_str(&hours[3], "snapshot"))
        .expect("hour 3 is damaged");
    // The file is named, with the blob at the end of its chain as the cause.
    assert!(
        of_last["damaged"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["reason"]
                .as_str()
                .unwrap()
                .contains(&format!("base {}", root.short()))),
        "named through the chain {:?}: {of_last}",
        links.iter().map(|l| l.short()).collect::<Vec<_>>()
    );
    let dumped = v.run(&["dump", json_str(&hours[3], "snapshot"), "t"]);
    assert_code(&dumped, 4, "dump of an hour whose chain is damaged");
}

#[test]
fn a_format_2_repository_upgrades_and_then_chains() {
    let v = init("2");
    assert_eq!(open_library(&v).config().repo_version, 2);
    let before = snapshot_hours(&v, 0..=3);
    assert!(before.iter().all(|s| longest_chain(&v, s) <= 1));
    let plan = v.json(&["upgrade", "--dry-run"]);
    assert_eq!(
        (json_u64(&plan, "from"), json_u64(&plan, "to")),
        (2, 3),
        "{plan}"
    );
    let done = v.json(&["upgrade"]);
    assert_eq!(done["upgraded"], Value::Bool(true), "{done}");
    let after = snapshot_hours(&v, 4..=7);
    assert!(
        after.iter().any(|s| longest_chain(&v, s) >= 2),
        "chains once upgraded"
    );
    for (h, s) in before.iter().chain(&after).enumerate() {
        assert_eq!(
            dump(&v, json_str(s, "snapshot"), "t"),
            hour(h as u64),
            "hour {h}"
        );
    }
    check_clean(&v);
}
