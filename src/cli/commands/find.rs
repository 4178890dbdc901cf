use std::io::Write;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use vault::ops::find::find;
use vault::ops::pattern::Patterns;

use super::filter::Filter;
use super::ls::entry_json;
use super::{filter, open, print_json, resolve_snapshot};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::{human_bytes, local_time};

#[derive(Args, Debug)]
pub struct FindArgs {
    /// Glob: with a `/` it matches whole paths (`/srv/**/*.php`), without
    /// one any single name (`*.sql`); several patterns match any of them
    #[arg(required = true)]
    pub patterns: Vec<String>,
    /// Search only this snapshot (id, unique prefix or 'latest'; repeatable)
    #[arg(long = "snapshot")]
    pub snapshots: Vec<String>,
    /// Search only the N newest snapshots (after the other filters)
    #[arg(long)]
    pub newest: Option<usize>,
    #[command(flatten)]
    pub filter: Filter,
}

pub(super) fn find_cmd(g: &Global, a: FindArgs) -> Result<i32> {
    let repo = open(g)?;
    let patterns = Patterns::new(&a.patterns)?;
    let f = filter(&a.filter);
    let mut chosen = if a.snapshots.is_empty() {
        repo.snapshots()?
            .into_iter()
            .filter(|(_, s)| f.matches(s))
            .collect()
    } else {
        let mut chosen = Vec::new();
        for spec in &a.snapshots {
            let found = resolve_snapshot(g, &repo, spec, &f)?;
            if !chosen.iter().any(|(id, _)| *id == found.0) {
                chosen.push(found);
            }
        }
        chosen.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        chosen
    };
    if let Some(n) = a.newest {
        let skip = chosen.len().saturating_sub(n);
        chosen.drain(..skip);
    }
    let searched = chosen.len();
    let results = find(&repo, chosen, &patterns)?;
    if g.json {
        let v: Vec<_> = results
            .iter()
            .map(|m| {
                json!({
                    "snapshot": m.id.to_hex(),
                    "time": crate::cli::output::rfc3339_utc(m.snapshot.time),
                    "host": m.snapshot.host,
                    "matches": m.found.iter().map(|f| entry_json(&f.path, &f.entry)).collect::<Vec<_>>(),
                })
            })
            .collect();
        print_json(&serde_json::Value::Array(v))?;
        return Ok(exit::OK);
    }
    let mut out = std::io::stdout().lock();
    let mut total = 0;
    for m in &results {
        writeln!(
            out,
            "snapshot {} of {} ({}):",
            m.id.short(),
            local_time(m.snapshot.time),
            m.snapshot.host
        )?;
        for f in m.found.iter() {
            writeln!(
                out,
                "  {:>10}  {}  {}",
                human_bytes(f.entry.size),
                local_time(f.entry.mtime),
                String::from_utf8_lossy(&f.path)
            )?;
        }
        total += m.found.len();
    }
    if !g.quiet {
        writeln!(
            out,
            "{total} matches in {} of {searched} snapshots",
            results.len()
        )?;
    }
    Ok(exit::OK)
}
