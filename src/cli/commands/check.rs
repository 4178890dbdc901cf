use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};
use vault::format::layout;
use vault::format::Timestamp;
use vault::ops::check::attribute::DamagedPath;
use vault::ops::check::plan::{coverage, Subset};
use vault::ops::check::{check, rotation, CheckOptions, CheckReport, DataCheck, SnapshotDamage};
use vault::progress::Progress;
use vault::repo::{IndexView, OpenOptions};
use vault::storage::Backend;
use vault::Repository;

use super::{open, print_json, Meanwhile};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::{human_bytes, local_time, lossy_paths, rfc3339_utc, ProgressGuard};

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Also download every pack and verify every blob in it
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Verify part of the data: N/M (1/7), a percentage (5%) or a size (500M)
    #[arg(long, value_name = "SUBSET")]
    pub read_data_subset: Option<String>,
    /// Verify the least recently verified packs first, and record this run
    #[arg(long, requires = "read_data_subset")]
    pub rotate: bool,
    /// Report how much of the data recent checks verified, and exit
    #[arg(long, conflicts_with_all = ["read_data", "read_data_subset", "rotate"])]
    pub status: bool,
    /// With --status: what counts as recent, in days
    #[arg(long, default_value_t = 7, value_name = "N")]
    pub days: u64,
}

/// Lines of a list shown before "... and N more" (--json shows all).
const SHOWN: usize = 20;

/// Open for check and repair: no index read yet (they read it themselves,
/// damaged objects and all) and no local cache, which could hide a loss.
pub(super) fn open_unsynced(g: &Global) -> Result<Arc<Repository>> {
    open_unsynced_deriving(g, None)
}

fn open_unsynced_deriving(g: &Global, meanwhile: Option<Meanwhile>) -> Result<Arc<Repository>> {
    let options = OpenOptions {
        cache_dir: None,
        index: IndexView::Unread,
        ..super::open_options(g, super::WaitFor::Other)
    };
    super::open_deriving(g, &options, meanwhile)
}

/// Bytes of packs asked into the page cache while the key is derived: about
/// what a disk reads meanwhile, and few enough that they are still cached
/// when the check reaches them.
const PREFETCH_BYTES: u64 = 256 << 20;

/// A check of all data reads every pack, in the order of their ids: while
/// the key is derived, the first of them start coming in from a local disk.
fn prefetch_packs(backend: &dyn Backend, derived: &AtomicBool) {
    if !backend.is_local() {
        return;
    }
    let Ok(mut packs) = backend.list(layout::DATA) else {
        return;
    };
    // A pack's path ends in its id under a folder named by the id's first
    // byte: sorted paths are sorted ids.
    packs.sort_unstable();
    let mut budget = PREFETCH_BYTES;
    for path in packs {
        if derived.load(Ordering::Relaxed) {
            break;
        }
        let Some(left) = backend.size(&path).ok().and_then(|s| budget.checked_sub(s)) else {
            break;
        };
        budget = left;
        backend.prefetch(&path);
    }
}

pub(super) fn check_cmd(g: &Global, a: CheckArgs) -> Result<i32> {
    if a.status {
        return status(g, a.days);
    }
    let data = match (&a.read_data_subset, a.read_data) {
        (Some(s), _) => DataCheck::Subset(s.parse::<Subset>()?),
        (None, true) => DataCheck::All,
        (None, false) => DataCheck::Headers,
    };
    let meanwhile: Meanwhile = prefetch_packs;
    let repo = open_unsynced_deriving(g, (data == DataCheck::All).then_some(meanwhile))?;
    let opts = CheckOptions {
        data,
        rotate: a.rotate,
        seed: rand::random(),
        now: Timestamp::now(),
    };
    let progress = Arc::new(Progress::default());
    let started = std::time::Instant::now();
    let report = {
        let _bar = ProgressGuard::counting(progress.clone(), g.quiet || g.json, "check", "packs");
        check(&repo, &opts, &progress)?
    };
    let elapsed = started.elapsed();
    let read = report
        .untouched
        .iter()
        .map(|(id, s)| (id, s))
        .chain(report.damaged.iter().map(|d| (&d.id, &d.snapshot)));
    let wal = super::wal::check_archive(&repo, read)?;
    if g.json {
        let mut value = report_json(&report, elapsed.as_millis() as u64);
        value["requests"] = repo.backend().requests().to_json();
        value["wal_gaps"] = json!(wal);
        print_json(&value)?;
    } else if !g.quiet || !report.is_clean() || !wal.is_empty() {
        print_report(&report, elapsed.as_secs_f64())?;
        for line in &wal {
            println!("damage: {line}");
        }
    }
    Ok(if report.is_clean() && wal.is_empty() {
        exit::OK
    } else {
        exit::DAMAGE
    })
}

pub(super) fn path_string(p: &DamagedPath) -> String {
    if p.path.is_empty() {
        "/".to_string()
    } else {
        String::from_utf8_lossy(&p.path).into_owned()
    }
}

pub(super) fn damage_json(d: &SnapshotDamage) -> Value {
    json!({
        "id": d.id.to_hex(),
        "time": rfc3339_utc(d.snapshot.time),
        "host": d.snapshot.host,
        "source": d.snapshot.source,
        "paths": lossy_paths(&d.snapshot.paths),
        "damaged": d.paths.iter().map(|p| json!({"path": path_string(p), "reason": p.reason})).collect::<Vec<_>>(),
    })
}

fn report_json(r: &CheckReport, duration_ms: u64) -> Value {
    json!({
        "clean": r.is_clean(),
        "problems": r.problems.iter().map(|p| json!({
            "object": p.object.as_str(),
            "id": p.id.to_hex(),
            "message": p.message,
        })).collect::<Vec<_>>(),
        "warnings": r.warnings,
        "damaged_snapshots": r.damaged.iter().map(damage_json).collect::<Vec<_>>(),
        "untouched_snapshots": r.untouched.iter().map(|(id, _)| id.to_hex()).collect::<Vec<_>>(),
        "stats": {
            "keys": r.stats.keys,
            "index_objects": r.stats.index_objects,
            "packs": r.stats.packs,
            "packs_read": r.stats.packs_read,
            "bytes_read": r.stats.bytes_read,
            "packs_verified": r.verified.len(),
            "snapshots": r.stats.snapshots,
            "trees": r.stats.trees,
            "data_blobs": r.stats.data_blobs,
        },
        "duration_ms": duration_ms,
    })
}

/// Write up to `SHOWN` lines, then say how many were left out.
pub(super) fn capped<T>(
    out: &mut impl Write,
    items: &[T],
    line: impl Fn(&T) -> String,
) -> std::io::Result<()> {
    for item in items.iter().take(SHOWN) {
        writeln!(out, "{}", line(item))?;
    }
    if items.len() > SHOWN {
        writeln!(
            out,
            "    ... and {} more (--json lists all)",
            items.len() - SHOWN
        )?;
    }
    Ok(())
}

pub(super) fn print_damage(
    out: &mut impl Write,
    damaged: &[SnapshotDamage],
) -> std::io::Result<()> {
    for d in damaged {
        let paths = lossy_paths(&d.snapshot.paths);
        writeln!(
            out,
            "  snapshot {}  {}  {}  {}",
            d.id.short(),
            local_time(d.snapshot.time),
            d.snapshot.host,
            paths.join(" ")
        )?;
        capped(out, &d.paths, |p| {
            format!("    {}: {}", path_string(p), p.reason)
        })?;
    }
    Ok(())
}

fn print_report(r: &CheckReport, secs: f64) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let s = &r.stats;
    writeln!(
        out,
        "checked {} keys, {} index objects, {} packs ({} read in full, {}), {} snapshots, {} trees, {} data blobs in {secs:.1}s",
        s.keys,
        s.index_objects,
        s.packs,
        s.packs_read,
        human_bytes(s.bytes_read),
        s.snapshots,
        s.trees,
        s.data_blobs
    )?;
    if !r.warnings.is_empty() {
        writeln!(out, "warnings:")?;
        capped(&mut out, &r.warnings, |w| format!("  {w}"))?;
    }
    if r.is_clean() {
        writeln!(out, "no damage found")?;
        return Ok(());
    }
    writeln!(out, "damage:")?;
    capped(&mut out, &r.problems, |p| {
        format!("  {} {}: {}", p.object, p.id.short(), p.message)
    })?;
    if !r.damaged.is_empty() {
        writeln!(out, "snapshots that lost data ({}):", r.damaged.len())?;
        print_damage(&mut out, &r.damaged)?;
    }
    let untouched: Vec<String> = r.untouched.iter().map(|(id, _)| id.short()).collect();
    writeln!(
        out,
        "untouched snapshots ({}): {}",
        untouched.len(),
        untouched.join(" ")
    )?;
    writeln!(out, "{} problems found", r.problems.len())?;
    Ok(())
}

fn status(g: &Global, days: u64) -> Result<i32> {
    let repo = open(g)?;
    let state = rotation::load(&repo)?;
    let packs = repo.indexed_packs()?;
    let c = coverage(&packs, &state.last, Timestamp::now(), days);
    if g.json {
        print_json(&json!({
            "days": days,
            "packs": c.packs,
            "bytes": c.bytes,
            "recent_packs": c.recent_packs,
            "recent_bytes": c.recent_bytes,
            "never_verified_packs": c.never_verified_packs,
            "oldest_verification": c.oldest.map(rfc3339_utc),
            "newest_verification": c.newest.map(rfc3339_utc),
            "records": state.records.len(),
            "unreadable_records": state.unreadable.len(),
        }))?;
    } else {
        let percent = |part: u64, whole: u64| {
            if whole == 0 {
                100.0
            } else {
                part as f64 * 100.0 / whole as f64
            }
        };
        println!(
            "verified in the last {days} days: {} of {} packs, {} of {} ({:.1}%)",
            c.recent_packs,
            c.packs,
            human_bytes(c.recent_bytes),
            human_bytes(c.bytes),
            percent(c.recent_bytes, c.bytes)
        );
        println!("never verified: {} packs", c.never_verified_packs);
        match c.oldest {
            Some(t) => println!("oldest verification: {}", local_time(t)),
            None => println!("oldest verification: none yet"),
        }
    }
    Ok(exit::OK)
}
