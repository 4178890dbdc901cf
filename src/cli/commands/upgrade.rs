use anyhow::Result;
use clap::Args;
use serde_json::json;
use vault::ops::upgrade::{self, UpgradePlan};

use super::{open, print_json};
use crate::cli::args::Global;
use crate::cli::exit;

#[derive(Args, Debug)]
pub struct UpgradeArgs {
    /// Print what would change, and change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

pub(super) fn upgrade_cmd(g: &Global, a: UpgradeArgs) -> Result<i32> {
    let repo = open(g)?;
    let plan = if a.dry_run {
        upgrade::plan(&repo)?
    } else {
        upgrade::upgrade(&repo)?
    };
    report(g, &plan, a.dry_run)?;
    Ok(exit::OK)
}

fn report(g: &Global, plan: &UpgradePlan, dry_run: bool) -> Result<()> {
    if g.json {
        return print_json(&json!({
            "from": plan.from,
            "to": plan.to,
            "upgraded": !dry_run && !plan.is_empty(),
            "dry_run": dry_run,
            "changes": plan.changes(),
        }));
    }
    if g.quiet {
        return Ok(());
    }
    if plan.is_empty() {
        println!(
            "repository format version {} is the newest: nothing to do",
            plan.from
        );
        return Ok(());
    }
    let verb = if dry_run { "would upgrade" } else { "upgraded" };
    println!(
        "{verb} the repository from format version {} to {}",
        plan.from, plan.to
    );
    for change in plan.changes() {
        println!("  {change}");
    }
    if !dry_run {
        println!("  clients of an older vault can no longer open it");
    }
    Ok(())
}
