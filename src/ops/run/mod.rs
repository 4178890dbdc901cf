//! `vault run` and what reads its results: the planner (what is due, pure),
//! the execution of each task, the run records, and the status, alerts and
//! metrics computed from them.

pub mod alerts;
pub mod deliver;
pub mod execute;
pub mod metrics;
pub mod plan;
pub mod records;
pub mod state;
pub mod status;
pub mod verify;

use std::path::Path;

use crate::config::Plan;
use crate::error::Result;
use crate::format::run::RunRecord;
use crate::format::Timestamp;
use crate::repo::Repository;
use crate::storage::Location;

pub use self::execute::Context;
pub use self::plan::Task;
pub use self::status::Status;

/// The tag that marks a snapshot as the plan source `name`'s: retention,
/// copies and the RPO look at these snapshots only.
pub fn source_tag(name: &str) -> String {
    format!("plan:{name}")
}

#[derive(Debug, Default)]
pub struct RunOutcome {
    pub records: Vec<RunRecord>,
    /// Run records that could not be stored or expired, and unreadable ones.
    pub warnings: Vec<String>,
}

/// Do what is due (or the sources in `only`), record each task's outcome,
/// and expire old run records.
pub fn run_due(ctx: &Context<'_>, only: &[String]) -> Result<RunOutcome> {
    for name in only {
        if ctx.plan.source(name).is_none() {
            return Err(crate::Error::invalid(format!(
                "the plan has no source named '{name}'"
            )));
        }
    }
    let (existing, mut warnings) = records::load(ctx.repo)?;
    let history: Vec<RunRecord> = existing.iter().map(|(_, r)| r.clone()).collect();
    let tasks = plan::due(ctx.plan, &history, Timestamp::now(), only);
    let mut out = RunOutcome::default();
    let mut first_error = None;
    for task in &tasks {
        let record = execute::run_task(ctx, task);
        if let Err(e) = records::save(ctx.repo, &record) {
            warnings.push(format!("{}: run record not stored: {e}", record.task));
            first_error.get_or_insert(e);
        }
        out.records.push(record);
    }
    let old = plan::expired(&existing, Timestamp::now(), ctx.plan.keep_runs);
    if let Err(e) = records::delete(ctx.repo, &old) {
        warnings.push(format!("expiring old run records: {e}"));
    }
    out.warnings = warnings;
    // A run whose outcome cannot be recorded has not done its job.
    match first_error {
        Some(e) if out.records.iter().all(|r| r.passed) => Err(e),
        _ => Ok(out),
    }
}

/// Everything status needs, read from the repository now.
pub fn gather(plan: &Plan, repo: &Repository, now: Timestamp) -> Result<Status> {
    let (records, warnings) = records::load(repo)?;
    let records: Vec<RunRecord> = records.into_iter().map(|(_, r)| r).collect();
    let snapshots = repo.snapshots()?;
    let drills = repo.drills()?;
    let size_bytes = repo.indexed_packs()?.iter().map(|(_, size)| size).sum();
    let free = match Location::parse(&plan.repository.location) {
        Ok(Location::Local(path)) => crate::system::free_bytes(&path),
        _ => None,
    };
    Ok(status::status(status::Inputs {
        plan,
        records: &records,
        snapshots: &snapshots,
        drills: &drills,
        space: status::Space {
            location: repo.backend().describe(),
            size_bytes,
            free_bytes: free,
        },
        now,
        warnings,
    }))
}

/// After a run: send the alerts that are news and rewrite the metrics
/// file. Returns what could not be done, as warnings.
pub fn notify(plan: &Plan, status: &Status, state_dir: &Path) -> Vec<String> {
    let mut warnings = Vec::new();
    let now = Timestamp::now();
    let host = crate::system::hostname();
    if plan.alerts.command.is_some()
        || plan.alerts.webhook.is_some()
        || plan.alerts.webhook_file.is_some()
    {
        let mut state = state::load_alerts(state_dir);
        let notices = alerts::evaluate(&state, &alerts::conditions(status), now);
        for n in &notices {
            match deliver::deliver(&plan.alerts, n, &host, now) {
                Ok(()) => alerts::record_sent(&mut state, n),
                Err(e) => warnings.push(format!("alert not delivered: {e}")),
            }
        }
        if let Err(e) = state::save_alerts(state_dir, &state) {
            warnings.push(format!("alert state not saved: {e}"));
        }
    }
    if let Some(path) = &plan.metrics.textfile {
        if let Err(e) = state::write_atomically(path, metrics::render(status).as_bytes()) {
            warnings.push(format!("metrics file not written: {e}"));
        }
    }
    warnings
}
