use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use vault::format::Timestamp;

use super::{open, print_json};
use crate::cli::args::Global;
use crate::cli::exit;

#[derive(Args, Debug)]
pub struct UnlockArgs {
    /// Remove every lock, also those of processes that may still be running
    #[arg(long)]
    pub all: bool,
}

/// Say which stale locks a command is about to ignore: they name a run that
/// crashed, which someone may want to know about.
pub(super) fn warn_stale_locks(g: &Global, repo: &vault::Repository) -> Result<()> {
    if g.quiet {
        return Ok(());
    }
    let now = Timestamp::now();
    for info in repo.locks()?.iter().filter(|l| l.is_stale()) {
        eprintln!(
            "warning: ignoring stale lock {}: {} ({}); `vault unlock` removes it",
            info.id.short(),
            info.describe(now),
            info.stale.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}

/// Say what a command is about to wait for, and for how long, when a live
/// lock conflicts with the one it needs: a scheduled backup that sits
/// silent behind a prune looks hung.
pub(super) fn announce_lock_wait(
    g: &Global,
    repo: &vault::Repository,
    mode: vault::format::lock::LockMode,
    wait: std::time::Duration,
) -> Result<()> {
    if g.quiet || wait.is_zero() {
        return Ok(());
    }
    let now = Timestamp::now();
    let blocker = repo.locks()?.into_iter().find(|l| {
        !l.is_stale()
            && l.lock
                .as_ref()
                .is_none_or(|other| mode.conflicts_with(other.mode))
    });
    if let Some(l) = blocker {
        eprintln!(
            "waiting up to {} for the lock held by {} to go away (--lock-wait)",
            crate::cli::output::human_duration(wait),
            l.describe(now)
        );
    }
    Ok(())
}

pub(super) fn unlock(g: &Global, a: UnlockArgs) -> Result<i32> {
    let repo = open(g)?;
    let now = Timestamp::now();
    let mut removed = Vec::new();
    let mut live = Vec::new();
    for info in repo.locks()? {
        let holder = info.describe(now);
        if a.all || info.is_stale() {
            repo.remove_lock(&info.id)
                .with_context(|| format!("removing lock {}", info.id.short()))?;
            let why = info.stale.clone().unwrap_or_else(|| "--all".into());
            removed.push((info.id, holder, why));
        } else {
            live.push((info.id, holder));
        }
    }
    if g.json {
        print_json(&json!({
            "removed": removed.iter().map(|(id, holder, why)| json!({"id": id.to_hex(), "holder": holder, "reason": why})).collect::<Vec<_>>(),
            "live": live.iter().map(|(id, holder)| json!({"id": id.to_hex(), "holder": holder})).collect::<Vec<_>>(),
        }))?;
    } else if !g.quiet {
        for (id, holder, why) in &removed {
            println!("removed lock {}: {holder} ({why})", id.short());
        }
        for (id, holder) in &live {
            println!("kept live lock {}: {holder}", id.short());
        }
        if removed.is_empty() && live.is_empty() {
            println!("no locks");
        }
    }
    Ok(exit::OK)
}
