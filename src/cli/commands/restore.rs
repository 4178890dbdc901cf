use std::sync::Arc;

use anyhow::{bail, Result};
use serde_json::json;
use vault::ops::restore::{execute, plan, Action, RestoreOptions, RestorePlan};
use vault::ops::Progress;

use vault::repo::SnapshotFilter;

use super::{filter, open, print_json, resolve_snapshot, restore_db};
use crate::cli::args::*;
use crate::cli::exit;
use crate::cli::output::{human_bytes, ProgressGuard};

/// `SNAP:PATH` splits at the first colon; a snapshot id never holds one.
pub(super) fn split_snapshot_path(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((snap, path)) => (snap, Some(path)),
        None => (spec, None),
    }
}

pub(super) fn restore_cmd(g: &Global, a: RestoreArgs) -> Result<i32> {
    match a.source {
        Some(RestoreSource::Mysql(m)) => return restore_db::mysql(g, m),
        Some(RestoreSource::Sqlite(s)) => return restore_db::sqlite(g, s),
        Some(RestoreSource::Pg(pg)) => return super::restore_pg::restore_pg_cmd(g, &pg),
        None => {}
    }
    // clap insists on both when no subcommand is given.
    let (Some(spec), Some(target)) = (&a.snapshot, &a.target) else {
        bail!(vault::Error::invalid("give a snapshot and --target DIR"));
    };
    let repo = open(g)?;
    let (snap_spec, sub_path) = split_snapshot_path(spec);
    let scope = SnapshotFilter {
        holding: sub_path.map(|p| p.as_bytes().to_vec()),
        ..filter(&a.filter)
    };
    let (id, snap) = resolve_snapshot(g, &repo, snap_spec, &scope)?;
    let opts = RestoreOptions {
        target: target.clone(),
        include: a.include.clone(),
        exclude: a.exclude.clone(),
        sub_path: sub_path.map(|p| p.as_bytes().to_vec()),
    };
    let plan = plan(&repo, &snap.root, &opts)?;
    if a.dry_run {
        show_plan(g, &id, &plan)?;
        return Ok(exit::OK);
    }
    let progress = Arc::new(Progress::default());
    let started = std::time::Instant::now();
    let outcome = {
        let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "restore");
        execute(&repo, &plan, &progress)?
    };
    for e in &outcome.errors {
        eprintln!("error: {e}");
    }
    if g.json {
        print_json(&json!({
            "snapshot": id.to_hex(),
            "target": target.to_string_lossy(),
            "files": outcome.files,
            "dirs": outcome.dirs,
            "bytes": outcome.bytes,
            "errors": outcome.errors,
            "duration_ms": started.elapsed().as_millis() as u64,
            "requests": repo.backend().requests().to_json(),
        }))?;
    } else if !g.quiet {
        println!(
            "restored snapshot {} to {}: {} files, {} folders, {} in {:.1}s{}",
            id.short(),
            target.display(),
            outcome.files,
            outcome.dirs,
            human_bytes(outcome.bytes),
            started.elapsed().as_secs_f64(),
            if outcome.errors.is_empty() {
                String::new()
            } else {
                format!(", {} errors", outcome.errors.len())
            }
        );
    }
    Ok(match (outcome.errors.is_empty(), outcome.damaged) {
        (true, _) => exit::OK,
        (false, true) => exit::DAMAGE,
        (false, false) => exit::FAILURE,
    })
}

fn show_plan(g: &Global, id: &vault::format::Id, plan: &RestorePlan) -> Result<()> {
    let c = plan.counts();
    let what = |action: Action| match action {
        Action::Replace(existing) => format!("replace {existing:?}").to_lowercase(),
        other => other.name().to_string(),
    };
    if g.json {
        let entries: Vec<_> = plan
            .entries
            .iter()
            .map(|p| {
                json!({
                    "path": plan.target.join(&p.rel).to_string_lossy(),
                    "kind": format!("{:?}", p.entry.kind).to_lowercase(),
                    "size": p.entry.size,
                    "action": p.action.name(),
                    "replaces": match p.action {
                        Action::Replace(e) => Some(format!("{e:?}").to_lowercase()),
                        _ => None,
                    },
                })
            })
            .collect();
        return print_json(&json!({
            "dry_run": true,
            "snapshot": id.to_hex(),
            "target": plan.target.to_string_lossy(),
            "files": c.files,
            "dirs": c.dirs,
            "bytes": c.bytes,
            "created": c.created,
            "kept": c.kept,
            "overwritten": c.overwritten,
            "replaced": c.replaced,
            "entries": entries,
        }));
    }
    if g.quiet {
        return Ok(());
    }
    for p in plan.entries.iter().filter(|p| p.action != Action::Keep) {
        println!(
            "  {:<16} {}",
            what(p.action),
            plan.target.join(&p.rel).display()
        );
    }
    println!(
        "would restore {} files, {} folders, {} to {}: {} created, {} overwritten, {} replaced (dry run: nothing changed)",
        c.files,
        c.dirs,
        human_bytes(c.bytes),
        plan.target.display(),
        c.created,
        c.overwritten,
        c.replaced
    );
    Ok(())
}
