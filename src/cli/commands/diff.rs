use std::io::Write;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use vault::format::tree::EntryKind;
use vault::ops::diff::{diff_snapshots, summarize, Change, ChangeKind};

use super::filter::Filter;
use super::{filter, open, print_json, resolve_snapshot};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::human_bytes;

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The earlier snapshot (id, unique prefix or 'latest')
    pub old: String,
    /// The later snapshot
    pub new: String,
    /// Compare only this path inside both snapshots
    pub path: Option<String>,
    #[command(flatten)]
    pub filter: Filter,
}

fn signed_bytes(delta: i128) -> String {
    let sign = if delta < 0 { "-" } else { "+" };
    format!(
        "{sign}{}",
        human_bytes(u64::try_from(delta.unsigned_abs()).unwrap_or(u64::MAX))
    )
}

/// `+`, `-`, `M` (content), `m` (metadata only), `T` (type), as in a
/// version-control status.
fn marker(c: &Change) -> char {
    match c.kind {
        ChangeKind::Added => '+',
        ChangeKind::Removed => '-',
        ChangeKind::TypeChanged => 'T',
        ChangeKind::Modified if c.content => 'M',
        ChangeKind::Modified => 'm',
    }
}

fn describe(c: &Change) -> String {
    let is_file = |e: &Option<vault::format::tree::Entry>| {
        e.as_ref().is_some_and(|e| e.kind == EntryKind::File)
    };
    let size = |e: &Option<vault::format::tree::Entry>| e.as_ref().map_or(0, |e| e.size);
    match c.kind {
        ChangeKind::Modified if c.content && is_file(&c.old) => format!(
            "{} -> {} ({})",
            human_bytes(size(&c.old)),
            human_bytes(size(&c.new)),
            signed_bytes(c.size_delta())
        ),
        ChangeKind::Added if is_file(&c.new) => human_bytes(size(&c.new)),
        ChangeKind::Removed if is_file(&c.old) => human_bytes(size(&c.old)),
        _ => String::new(),
    }
}

fn change_json(c: &Change) -> serde_json::Value {
    let kind = |e: &Option<vault::format::tree::Entry>| e.as_ref().map(|e| e.kind.as_str());
    let size = |e: &Option<vault::format::tree::Entry>| e.as_ref().map(|e| e.size);
    json!({
        "path": String::from_utf8_lossy(&c.path),
        "change": c.kind.as_str(),
        "type_before": kind(&c.old),
        "type_after": kind(&c.new),
        "size_before": size(&c.old),
        "size_after": size(&c.new),
        "size_delta": c.size_delta() as i64,
        "content_changed": c.content,
        "metadata_changed": c.metadata,
    })
}

pub(super) fn diff_cmd(g: &Global, a: DiffArgs) -> Result<i32> {
    let repo = open(g)?;
    let f = filter(&a.filter);
    let (old_id, old) = resolve_snapshot(g, &repo, &a.old, &f)?;
    let (new_id, new) = resolve_snapshot(g, &repo, &a.new, &f)?;
    let path = a.path.as_deref().unwrap_or("/");
    let changes = diff_snapshots(&repo, &old.root, &new.root, path.as_bytes())?;
    let sum = summarize(&changes);
    if g.json {
        print_json(&json!({
            "old": old_id.to_hex(),
            "new": new_id.to_hex(),
            "changes": changes.iter().map(change_json).collect::<Vec<_>>(),
            "summary": {
                "added": sum.added,
                "removed": sum.removed,
                "modified": sum.modified,
                "type_changed": sum.type_changed,
                "size_delta": sum.size_delta as i64,
            },
        }))?;
        return Ok(exit::OK);
    }
    let mut out = std::io::stdout().lock();
    for c in &changes {
        let what = describe(c);
        let path = String::from_utf8_lossy(&c.path);
        if what.is_empty() {
            writeln!(out, "{}  {path}", marker(c))?;
        } else {
            writeln!(out, "{}  {path}  {what}", marker(c))?;
        }
    }
    if !g.quiet {
        writeln!(
            out,
            "{} added, {} removed, {} modified, {} changed type; files {}",
            sum.added,
            sum.removed,
            sum.modified,
            sum.type_changed,
            signed_bytes(sum.size_delta)
        )?;
    }
    Ok(exit::OK)
}
