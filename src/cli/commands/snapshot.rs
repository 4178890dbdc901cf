use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde_json::json;
use vault::ops::snapshot::{self, ParentChoice, SnapshotOptions, SnapshotOutcome};
use vault::ops::Progress;
use vault::repo::SnapshotFilter;

use super::{open, print_json, snapshot_db};
use crate::cli::args::*;
use crate::cli::exit;
use crate::cli::output::{human_bytes, rfc3339_utc, ProgressGuard};

pub(super) fn snapshot_options(meta: &SnapshotMeta, parent: ParentChoice) -> SnapshotOptions {
    SnapshotOptions {
        host: meta.host.clone(),
        tags: meta.tags.clone(),
        compression: meta.compression,
        parent,
        meta: vec![],
    }
}

pub(super) fn snapshot(g: &Global, a: SnapshotArgs) -> Result<i32> {
    if let Some(SnapshotSource::Pg(pg)) = &a.source {
        return super::snapshot_pg::snapshot_pg_cmd(g, pg);
    }
    let repo = open(g)?;
    repo.set_lock_wait(super::unlock::env_lock_wait()?);
    let progress = Arc::new(Progress::default());
    let outcome = {
        let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "snapshot");
        match (&a.source, a.stdin) {
            (Some(SnapshotSource::Pg(_)), _) => unreachable!("dispatched above"),
            (Some(SnapshotSource::Cmd(c)), _) => {
                let opts = snapshot_options(&c.meta, ParentChoice::None);
                let (program, args) = c
                    .command
                    .split_first()
                    .context("no program given after --")?;
                snapshot::snapshot_command(&repo, &c.name, program, args, &opts, &progress)?
            }
            (Some(SnapshotSource::Redis(r)), _) => snapshot_db::redis(&repo, r, &progress)?,
            (Some(SnapshotSource::Mysql(m)), _) => snapshot_db::mysql(&repo, m, &progress)?,
            (Some(SnapshotSource::Sqlite(s)), _) => snapshot_db::sqlite(&repo, s, &progress)?,
            (None, true) => {
                if !a.paths.is_empty() {
                    bail!(vault::Error::invalid("--stdin takes no paths"));
                }
                let name = a
                    .name
                    .as_deref()
                    .ok_or_else(|| vault::Error::invalid("--stdin needs --name NAME"))?;
                let opts = snapshot_options(&a.meta, ParentChoice::None);
                // The descriptor itself, unbuffered: the chunker reads in
                // large blocks, and reads on another thread.
                use std::os::fd::AsFd;
                let stdin = std::io::stdin()
                    .as_fd()
                    .try_clone_to_owned()
                    .map(std::fs::File::from)
                    .context("reading standard input")?;
                snapshot::snapshot_stream(&repo, name, stdin, "stdin", &opts, &progress)?
            }
            (None, false) => {
                if a.paths.is_empty() {
                    bail!(vault::Error::invalid(
                        "nothing to snapshot: give paths, --stdin --name NAME, or 'cmd'"
                    ));
                }
                let parent = match (&a.parent, a.force) {
                    (_, true) => ParentChoice::None,
                    (Some(p), false) => {
                        ParentChoice::Id(repo.find_snapshot(p, &SnapshotFilter::default())?.0)
                    }
                    (None, false) => ParentChoice::Auto,
                };
                snapshot::snapshot_files(
                    &repo,
                    &a.paths,
                    &snapshot_options(&a.meta, parent),
                    &progress,
                )?
            }
        }
    };
    report_snapshot(g, &outcome)?;
    Ok(if outcome.warnings.is_empty() {
        exit::OK
    } else {
        exit::WARNINGS
    })
}

pub(super) fn report_snapshot(g: &Global, o: &SnapshotOutcome) -> Result<()> {
    for w in &o.warnings {
        eprintln!("warning: {w}");
    }
    let s = &o.snapshot.summary;
    if g.json {
        print_json(&json!({
            "snapshot": o.id.to_hex(),
            "time": rfc3339_utc(o.snapshot.time),
            "files": s.files,
            "dirs": s.dirs,
            "bytes_read": s.bytes_read,
            "bytes_added": s.bytes_added,
            "raw_bytes_added": o.stats.raw_bytes_added,
            "blobs_added": s.blobs_added,
            "packs_written": o.stats.packs_written,
            "duration_ms": s.duration_ms,
            "requests": o.requests.to_json(),
            "warnings": o.warnings,
        }))?;
    } else if !g.quiet {
        println!(
            "snapshot {} saved: {} files, {} read, {} added ({} stored) in {:.1}s{}",
            o.id.short(),
            s.files,
            human_bytes(s.bytes_read),
            human_bytes(o.stats.raw_bytes_added),
            human_bytes(s.bytes_added),
            s.duration_ms as f64 / 1000.0,
            if o.warnings.is_empty() {
                String::new()
            } else {
                format!(", {} warnings", o.warnings.len())
            }
        );
    }
    Ok(())
}
