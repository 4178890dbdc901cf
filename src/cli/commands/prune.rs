use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use vault::ops::prune::{self, PruneOutcome, PrunePlan, PruneRules};
use vault::ops::Progress;
use vault::repo::LockGuard;
use vault::Repository;

use super::{open, print_json};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::{human_bytes, ProgressGuard};

#[derive(Args, Debug, Clone)]
pub struct PruneOptions {
    /// Unused space to tolerate in packs rather than repack them: a
    /// percentage of the repository (`5%`), or `unlimited`
    #[arg(long, default_value = "5%", value_parser = parse_max_unused)]
    pub max_unused: f64,
    /// Repack at most this much per run (`500M`, `2G`; bytes without a unit)
    #[arg(long, value_parser = parse_size)]
    pub max_repack_size: Option<u64>,
}

impl PruneOptions {
    pub(super) fn rules(&self) -> PruneRules {
        PruneRules {
            max_unused: self.max_unused,
            max_repack_bytes: self.max_repack_size,
        }
    }
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Print what would be deleted and repacked, and change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub options: PruneOptions,
}

fn parse_max_unused(s: &str) -> Result<f64, String> {
    if s == "unlimited" {
        return Ok(1.0);
    }
    let number = s.strip_suffix('%').unwrap_or(s).trim();
    match number.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!(
            "'{s}' is not a percentage from 0% to 100% or 'unlimited'"
        )),
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (number, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("'{s}': unknown unit '{c}' (use K, M, G or T)")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    number
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("'{s}' is not a size such as 500M or 2G"))
}

pub(super) fn prune_cmd(g: &Global, a: PruneArgs) -> Result<i32> {
    let repo = open(g)?;
    if a.dry_run {
        let plan = prune::plan_prune(&repo, &a.options.rules())?;
        let value = report(g, &plan, None);
        if g.json {
            print_json(&value)?;
        }
        return Ok(exit::OK);
    }
    super::unlock::warn_stale_locks(g, &repo)?;
    super::unlock::announce_lock_wait(
        g,
        &repo,
        vault::format::lock::LockMode::Exclusive,
        super::lock_wait(g, super::WaitFor::Other),
    )?;
    let lock = repo.lock_exclusive("prune")?;
    let value = run(g, &repo, &lock, &a.options.rules())?;
    if g.json {
        print_json(&value)?;
    }
    Ok(exit::OK)
}

/// Plan and carry out a prune under `lock` (also used by `forget --prune`).
pub(super) fn run(
    g: &Global,
    repo: &Arc<Repository>,
    lock: &LockGuard,
    rules: &PruneRules,
) -> Result<serde_json::Value> {
    let plan = prune::plan_prune(repo, rules)?;
    let progress = Arc::new(Progress::default());
    let outcome = {
        let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "prune");
        prune::execute(repo, lock, &plan, &progress)?
    };
    Ok(report(g, &plan, Some(&outcome)))
}

/// Print the plan (and what was done) for people; returns the JSON form.
pub(super) fn report(
    g: &Global,
    plan: &PrunePlan,
    done: Option<&PruneOutcome>,
) -> serde_json::Value {
    let total = plan.used_bytes + plan.unused_kept_bytes;
    let value = json!({
        "dry_run": done.is_none(),
        "packs_to_delete": plan.delete.len(),
        "packs_to_repack": plan.repack.len(),
        "unindexed_packs": plan.unindexed.len(),
        "vanished_packs": plan.vanished.len(),
        "index_objects_replaced": if plan.rewrite_index { plan.supersede.len() } else { 0 },
        "repack_bytes": plan.repack_bytes(),
        "repack_keep_bytes": plan.repack_keep_bytes(),
        "bytes_freed": plan.freed_bytes(),
        "used_bytes": plan.used_bytes,
        "unused_bytes_left": plan.unused_kept_bytes,
        "packs_deleted": done.map(|d| d.packs_deleted),
        "packs_written": done.map(|d| d.repack.packs_written),
        "index_objects_written": done.map(|d| d.index_objects_written),
    });
    if g.json || g.quiet {
        return value;
    }
    let verb = if done.is_some() { "" } else { "would " };
    if plan.is_empty() {
        println!(
            "prune: nothing to do ({} used)",
            human_bytes(plan.used_bytes)
        );
        return value;
    }
    println!(
        "prune: {verb}delete {} unused packs and {} packs no index names; {verb}repack {} packs ({} of which {} still used)",
        plan.delete.len(),
        plan.unindexed.len(),
        plan.repack.len(),
        human_bytes(plan.repack_bytes()),
        human_bytes(plan.repack_keep_bytes()),
    );
    if plan.rewrite_index {
        println!(
            "prune: {verb}replace {} index objects",
            plan.supersede.len()
        );
    }
    let unused_share = if total == 0 {
        0.0
    } else {
        plan.unused_kept_bytes as f64 * 100.0 / total as f64
    };
    println!(
        "prune: {} {}; {} used, {} unused left ({unused_share:.1}%)",
        human_bytes(plan.freed_bytes()),
        if done.is_some() {
            "freed"
        } else {
            "would be freed"
        },
        human_bytes(plan.used_bytes),
        human_bytes(plan.unused_kept_bytes),
    );
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        assert_eq!(parse_max_unused("5%"), Ok(0.05));
        assert_eq!(parse_max_unused("0"), Ok(0.0));
        assert_eq!(parse_max_unused("unlimited"), Ok(1.0));
        assert!(parse_max_unused("101%").is_err());
        assert!(parse_max_unused("x").is_err());
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert!(parse_size("").is_err());
    }
}
