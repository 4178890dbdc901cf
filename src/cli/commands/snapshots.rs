use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use vault::format::drill::Drill;
use vault::format::snapshot::Snapshot;
use vault::Id;

use super::filter::Filter;
use super::{filter, open, print_json};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::{human_bytes, local_time, lossy_paths, rfc3339_utc};

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: Filter,
}

pub(super) fn snapshot_json(id: &Id, s: &Snapshot) -> serde_json::Value {
    json!({
        "id": id.to_hex(),
        "time": rfc3339_utc(s.time),
        "host": s.host,
        "user": s.user,
        "tags": s.tags,
        "source": s.source,
        "paths": lossy_paths(&s.paths),
        "root": s.root.to_hex(),
        "parent": s.parent.map(|p| p.to_hex()),
        "summary": {
            "files": s.summary.files,
            "dirs": s.summary.dirs,
            "total_bytes": s.total_bytes(),
            "bytes_read": s.summary.bytes_read,
            "bytes_added": s.summary.bytes_added,
            "blobs_added": s.summary.blobs_added,
            "duration_ms": s.summary.duration_ms,
            "warnings": s.summary.warnings,
        },
    })
}

/// Each snapshot's newest drill, passed or failed: a failed drill after a
/// passing one means the snapshot is no longer known to restore.
fn last_drill(drills: &[(Id, Drill)]) -> HashMap<Id, &Drill> {
    let mut out = HashMap::new();
    // Oldest first, so the newest drill wins.
    for (_, d) in drills {
        out.insert(d.snapshot, d);
    }
    out
}

pub(super) fn snapshots(g: &Global, a: SnapshotsArgs) -> Result<i32> {
    let repo = open(g)?;
    let drills = repo.drills()?;
    let proven = last_drill(&drills);
    let f = filter(&a.filter);
    let list: Vec<_> = repo
        .snapshots()?
        .into_iter()
        .filter(|(_, s)| f.matches(s))
        .collect();
    if g.json {
        print_json(&serde_json::Value::Array(
            list.iter()
                .map(|(id, s)| {
                    let mut v = snapshot_json(id, s);
                    let last = proven.get(id);
                    v["proven"] = match last.filter(|d| d.passed) {
                        Some(d) => json!({"time": rfc3339_utc(d.time), "restore_ms": d.restore_ms}),
                        None => serde_json::Value::Null,
                    };
                    v["last_drill"] = match last {
                        Some(d) => json!({"time": rfc3339_utc(d.time), "passed": d.passed}),
                        None => serde_json::Value::Null,
                    };
                    v
                })
                .collect(),
        ))?;
        return Ok(exit::OK);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<8}  {:<19}  {:<12}  {:<8}  {:>10}  {:>10}  {:>10}  {:<26}  {:<10}  paths",
        "id", "time", "host", "source", "size", "read", "added", "proven", "tags"
    )?;
    for (id, s) in &list {
        let paths = lossy_paths(&s.paths);
        writeln!(
            out,
            "{:<8}  {:<19}  {:<12}  {:<8}  {:>10}  {:>10}  {:>10}  {:<26}  {:<10}  {}",
            id.short(),
            local_time(s.time),
            s.host,
            s.source,
            s.total_bytes().map_or("-".to_string(), human_bytes),
            human_bytes(s.summary.bytes_read),
            human_bytes(s.summary.bytes_added),
            proven.get(id).map_or("-".to_string(), |d| if d.passed {
                local_time(d.time)
            } else {
                format!("FAILED {}", local_time(d.time))
            }),
            s.tags.join(","),
            paths.join(" ")
        )?;
    }
    writeln!(out, "{} snapshots", list.len())?;
    Ok(exit::OK)
}
