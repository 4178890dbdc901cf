use anyhow::Result;
use clap::Args;
use serde_json::json;
use vault::format::Timestamp;
use vault::ops::forget::remove_snapshots;
use vault::policy::{self, GroupBy, KeepDuration, KeepRules, Plan, Selection};

use super::prune::{self, PruneOptions};
use super::{open, print_json};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::{local_time, rfc3339_utc};

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// Remove exactly these snapshots (ids, unique prefixes or `latest`)
    /// instead of applying keep rules
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Keep the newest N snapshots
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// ... of each of the last N days
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// ... of each of the last N ISO weeks
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// ... of each of the last N months
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// ... of each of the last N years
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot taken within DURATION before now (30d, 1y6m, 12h)
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<KeepDuration>,
    /// Keep the newest snapshot of every hour within DURATION before now
    #[arg(long, value_name = "DURATION")]
    pub keep_within_hourly: Option<KeepDuration>,
    /// ... of every day within DURATION
    #[arg(long, value_name = "DURATION")]
    pub keep_within_daily: Option<KeepDuration>,
    /// ... of every week within DURATION
    #[arg(long, value_name = "DURATION")]
    pub keep_within_weekly: Option<KeepDuration>,
    /// ... of every month within DURATION
    #[arg(long, value_name = "DURATION")]
    pub keep_within_monthly: Option<KeepDuration>,
    /// ... of every year within DURATION
    #[arg(long, value_name = "DURATION")]
    pub keep_within_yearly: Option<KeepDuration>,
    /// Keep every snapshot with this tag (repeatable)
    #[arg(long = "keep-tag", value_name = "TAG")]
    pub keep_tags: Vec<String>,
    /// Only consider snapshots from this host (repeatable)
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Only consider snapshots with this tag (repeatable; all must match)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only consider snapshots of this source: a kind (files, stdin,
    /// command), a path or a stream name (repeatable)
    #[arg(long = "source")]
    pub sources: Vec<String>,
    /// Group snapshots by these fields (host, source, tags; '' for one group)
    #[arg(long, default_value = "host,source")]
    pub group_by: GroupBy,
    /// Count hours, days, weeks, months and years in UTC, not local time
    #[arg(long)]
    pub utc: bool,
    /// Print what would be kept (and why) and removed; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Prune afterwards, deleting the data only removed snapshots used
    #[arg(long)]
    pub prune: bool,
    #[command(flatten)]
    pub prune_options: PruneOptions,
}

impl ForgetArgs {
    fn rules(&self) -> KeepRules {
        KeepRules {
            last: self.keep_last,
            periods: [
                self.keep_hourly,
                self.keep_daily,
                self.keep_weekly,
                self.keep_monthly,
                self.keep_yearly,
            ],
            within: self.keep_within,
            within_periods: [
                self.keep_within_hourly,
                self.keep_within_daily,
                self.keep_within_weekly,
                self.keep_within_monthly,
                self.keep_within_yearly,
            ],
            tags: self.keep_tags.clone(),
        }
    }

    fn selection(&self) -> Selection {
        Selection {
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            sources: self.sources.clone(),
        }
    }
}

pub(super) fn forget(g: &Global, a: ForgetArgs) -> Result<i32> {
    let repo = open(g)?;
    let tz = if a.utc {
        jiff::tz::TimeZone::UTC
    } else {
        jiff::tz::TimeZone::system()
    };
    let rules = a.rules();
    let selection = a.selection();
    let rules_given = !rules.is_empty() || !selection.is_empty();
    if !a.snapshots.is_empty() && rules_given {
        return Err(vault::Error::invalid(
            "name snapshots to remove or give keep rules and filters, not both",
        )
        .into());
    }
    let plan_now = |repo: &vault::Repository| -> Result<Plan> {
        let snapshots = repo.snapshots()?;
        if !a.snapshots.is_empty() {
            let named = a
                .snapshots
                .iter()
                .map(|spec| Ok(repo.find_snapshot(spec, &Default::default())?.0))
                .collect::<Result<Vec<_>>>()?;
            return Ok(policy::remove_named(&snapshots, &named, a.group_by));
        }
        let now = Timestamp::now();
        Ok(policy::apply(
            &snapshots, &rules, &selection, a.group_by, now, &tz,
        )?)
    };
    if a.dry_run {
        let plan = plan_now(&repo)?;
        show(g, &plan, true, None)?;
        return Ok(exit::OK);
    }
    super::unlock::warn_stale_locks(g, &repo)?;
    // Planned under the lock, so the list it judges is the list it edits.
    let lock = if a.prune {
        a.prune_options.take_lock(&repo, "forget --prune")?
    } else {
        repo.lock_shared("forget")?
    };
    let plan = plan_now(&repo)?;
    remove_snapshots(&repo, &lock, &plan)?;
    if !g.json {
        show(g, &plan, false, None)?;
    }
    let pruned = if a.prune {
        Some(prune::run(g, &repo, &lock, &a.prune_options)?)
    } else {
        None
    };
    if g.json {
        show(g, &plan, false, pruned)?;
    }
    Ok(exit::OK)
}

fn show(g: &Global, plan: &Plan, dry_run: bool, pruned: Option<serde_json::Value>) -> Result<()> {
    if g.json {
        let groups: Vec<_> = plan
            .groups
            .iter()
            .map(|grp| {
                json!({
                    "group": grp.key.to_string(),
                    "host": grp.key.host,
                    "keep": grp.keep.iter().map(|k| json!({
                        "id": k.id.to_hex(),
                        "time": rfc3339_utc(k.time),
                        "reasons": k.reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                    "remove": grp.remove.iter().map(|r| json!({
                        "id": r.id.to_hex(),
                        "time": rfc3339_utc(r.time),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        return print_json(&json!({
            "dry_run": dry_run,
            "groups": groups,
            "kept": plan.kept().count(),
            "removed": plan.removed().count(),
            "prune": pruned,
        }));
    }
    if g.quiet {
        return Ok(());
    }
    for grp in &plan.groups {
        println!(
            "{}: keep {}, remove {}",
            grp.key,
            grp.keep.len(),
            grp.remove.len()
        );
        for k in &grp.keep {
            let reasons: Vec<_> = k.reasons.iter().map(|r| r.to_string()).collect();
            println!(
                "  keep    {}  {}  {}",
                k.id.short(),
                local_time(k.time),
                reasons.join(", ")
            );
        }
        for r in &grp.remove {
            println!("  remove  {}  {}", r.id.short(), local_time(r.time));
        }
    }
    let n = plan.removed().count();
    if dry_run {
        println!("would remove {n} snapshots (dry run: nothing changed)");
    } else {
        println!("removed {n} snapshots");
    }
    Ok(())
}
