//! `vault status`: the plan's targets against what the repository holds.

use anyhow::Result;
use clap::Args;
use vault::format::Timestamp;
use vault::ops::run::{self, Status};
use vault::ops::wal_status::{gap_lines, wal_status, WalStatus};
use vault::repo::WalArchive;

use super::run::{open_plan_repo, PlanFileArgs};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::human_bytes;
use vault::ops::run::status::human_duration as age;

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub plan: PlanFileArgs,
}

pub(super) fn status_cmd(g: &Global, a: StatusArgs) -> Result<i32> {
    let (_, plan) = a.plan.load()?;
    let repo = open_plan_repo(g, &plan)?;
    let now = Timestamp::now();
    let st = run::gather(&plan, &repo, now)?;
    let wal = archive_status(&repo, now)?;
    if g.json {
        let mut value = serde_json::to_value(&st)?;
        value["wal"] = serde_json::to_value(&wal)?;
        super::print_json(&value)?;
    } else if !g.quiet {
        print(&st);
        if let Some(w) = &wal {
            print_wal(w);
        }
    }
    for w in &st.warnings {
        eprintln!("warning: {w}");
    }
    Ok(if st.healthy {
        exit::OK
    } else {
        exit::TARGET_BREACHED
    })
}

/// The WAL archive's newest segment and its age, when there is an
/// archive with files in it.
fn archive_status(repo: &vault::Repository, now: Timestamp) -> Result<Option<WalStatus>> {
    let Ok(archive) = WalArchive::of(repo) else {
        return Ok(None);
    };
    let st = wal_status(&archive, now)?;
    Ok((st.files > 0).then_some(st))
}

fn print_wal(w: &WalStatus) {
    if let (Some(name), Some(pushed), Some(secs)) = (&w.newest, &w.newest_pushed, w.newest_age_secs)
    {
        println!(
            "WAL archive: newest {name}, pushed {pushed}, {} ago (the current RPO of point-in-time recovery)",
            age(secs.max(0) as u64)
        );
    }
    let gaps = gap_lines(&w.timelines);
    if !gaps.is_empty() {
        println!(
            "WAL archive: {} gaps (vault check names the base backups they break)",
            gaps.len()
        );
    }
}

fn percent(r: Option<f64>) -> String {
    r.map(|r| format!("{:.0}%", r * 100.0))
        .unwrap_or("-".into())
}

fn print(st: &Status) {
    for s in &st.sources {
        println!(
            "{} ({}): {}",
            s.name,
            s.kind,
            if s.healthy { "ok" } else { "BREACHED" }
        );
        match &s.last_success {
            Some(r) => println!(
                "  last success  {} ({:.1}s)",
                r.time,
                r.duration_ms as f64 / 1000.0
            ),
            None => println!("  last success  never"),
        }
        if let Some(r) = &s.last_failure {
            println!("  last failure  {}: {}", r.time, r.message);
        }
        println!(
            "  RPO           {} old, target {}{}",
            s.rpo.age_seconds.map(age).unwrap_or("no snapshot".into()),
            age(s.rpo.target_seconds),
            if s.rpo.breached { "  BREACHED" } else { "" }
        );
        if let Some(d) = &s.rto.drill {
            println!(
                "  drill         {} {}, restore {:.1}s{}{}",
                d.time,
                if d.passed { "passed" } else { "FAILED" },
                d.restore_ms as f64 / 1000.0,
                s.rto
                    .target_seconds
                    .map(|t| format!(", RTO target {}", age(t)))
                    .unwrap_or_default(),
                if s.rto.breached { "  BREACHED" } else { "" }
            );
        }
        if let Some(b) = s.size.latest_bytes {
            println!(
                "  size          {}{}{}",
                human_bytes(b),
                s.size
                    .percent
                    .map(|p| format!(", {p}% of the recent average"))
                    .unwrap_or_default(),
                if s.size.anomaly { "  ANOMALY" } else { "" }
            );
        }
        println!(
            "  success       {} of 7 days' runs ({}), {} of 30 days' ({})",
            percent(s.success.rate_7d),
            s.success.runs_7d,
            percent(s.success.rate_30d),
            s.success.runs_30d
        );
        for c in &s.copies {
            println!(
                "  copy {:<8} {}{}",
                c.target,
                match c.passed {
                    Some(true) => "ok",
                    Some(false) => "FAILED",
                    None => "never run",
                },
                c.time
                    .as_ref()
                    .map(|t| format!(" at {t}"))
                    .unwrap_or_default()
            );
        }
    }
    if let Some(c) = &st.check {
        println!(
            "repository check: {}",
            match (&c.last_success, c.failing) {
                (_, true) => "FAILED".to_string(),
                (Some(r), false) => format!("ok at {}", r.time),
                (None, false) => "never run".to_string(),
            }
        );
    }
    println!(
        "repository {}: {}{}",
        st.repository.location,
        human_bytes(st.repository.size_bytes),
        st.repository
            .free_bytes
            .map(|f| format!(", {} free on its disk", human_bytes(f)))
            .unwrap_or_default()
    );
    if !st.healthy {
        println!("{} targets breached", st.breaches.len());
    }
}
