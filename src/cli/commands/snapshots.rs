use std::io::Write;

use anyhow::Result;
use serde_json::json;
use vault::format::snapshot::Snapshot;
use vault::Id;

use super::{filter, open, print_json};
use crate::cli::args::*;
use crate::cli::exit;
use crate::cli::output::{human_bytes, local_time, lossy_paths, rfc3339_utc};

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
            "bytes_read": s.summary.bytes_read,
            "bytes_added": s.summary.bytes_added,
            "blobs_added": s.summary.blobs_added,
            "duration_ms": s.summary.duration_ms,
            "warnings": s.summary.warnings,
        },
    })
}

pub(super) fn snapshots(g: &Global, a: SnapshotsArgs) -> Result<i32> {
    let repo = open(g)?;
    let f = filter(&a.filter);
    let list: Vec<_> = repo
        .snapshots()?
        .into_iter()
        .filter(|(_, s)| f.matches(s))
        .collect();
    if g.json {
        print_json(&serde_json::Value::Array(
            list.iter().map(|(id, s)| snapshot_json(id, s)).collect(),
        ))?;
        return Ok(exit::OK);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<8}  {:<19}  {:<12}  {:<7}  {:>10}  {:>10}  {:<10}  paths",
        "id", "time", "host", "source", "size", "added", "tags"
    )?;
    for (id, s) in &list {
        let paths = lossy_paths(&s.paths);
        writeln!(
            out,
            "{:<8}  {:<19}  {:<12}  {:<7}  {:>10}  {:>10}  {:<10}  {}",
            id.short(),
            local_time(s.time),
            s.host,
            s.source,
            human_bytes(s.summary.bytes_read),
            human_bytes(s.summary.bytes_added),
            s.tags.join(","),
            paths.join(" ")
        )?;
    }
    writeln!(out, "{} snapshots", list.len())?;
    Ok(exit::OK)
}
