//! `vault run [SOURCE...]`: do what the plan file says is due. Also the
//! plan file options and repository opening that status, serve and
//! schedule share.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use serde_json::json;
use vault::config::{CopyTarget, Plan};
use vault::ops::run::{self, state, Context};
use vault::repo::OpenOptions;
use vault::Repository;

use super::{data_home, open, print_json};
use crate::cli::args::Global;
use crate::cli::exit;

#[derive(Args, Debug, Clone)]
pub struct PlanFileArgs {
    /// The plan file [default: $XDG_CONFIG_HOME/vault/plan.toml, else /etc/vault/plan.toml]
    #[arg(long = "config", env = "VAULT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl PlanFileArgs {
    pub fn path(&self) -> Result<PathBuf> {
        if let Some(p) = &self.config {
            return Ok(p.clone());
        }
        let user = data_home("XDG_CONFIG_HOME", ".config").map(|d| d.join("vault/plan.toml"));
        let system = PathBuf::from("/etc/vault/plan.toml");
        match user {
            Some(u) if u.exists() || !system.exists() => Ok(u),
            _ => Ok(system),
        }
    }

    pub fn load(&self) -> Result<(PathBuf, Plan)> {
        let path = self.path()?;
        let plan = Plan::load(&path)?;
        Ok((path, plan))
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub plan: PlanFileArgs,
    /// Run these sources now, whatever their schedule (and nothing else)
    pub sources: Vec<String>,
}

/// The global options with a repository and its password source.
fn with_repo(
    g: &Global,
    location: &str,
    password_file: Option<&PathBuf>,
    password_command: Option<&String>,
) -> Global {
    let mut out = g.clone();
    out.repo = Some(location.to_string());
    if password_file.is_some() || password_command.is_some() {
        out.password_file = password_file.cloned();
        out.password_command = password_command.cloned();
    }
    out
}

pub(super) fn plan_global(g: &Global, plan: &Plan) -> Global {
    let r = &plan.repository;
    let mut out = with_repo(
        g,
        &r.location,
        r.password_file.as_ref(),
        r.password_command.as_ref(),
    );
    if r.cache_dir.is_some() {
        out.cache_dir = r.cache_dir.clone();
    }
    out
}

pub(super) fn open_plan_repo(g: &Global, plan: &Plan) -> Result<Arc<Repository>> {
    let pg = plan_global(g, plan);
    let options = OpenOptions {
        // Tasks run one after another; waiting for another process's lock
        // beats recording a failure for it.
        lock_wait: PLAN_LOCK_WAIT,
        ..super::open_options(&pg, super::WaitFor::Other)
    };
    super::open_with(&pg, &options).with_context(|| format!("opening {}", plan.repository.location))
}

/// How long the tasks of a plan wait for another process's lock.
const PLAN_LOCK_WAIT: Duration = Duration::from_secs(300);

fn state_dir(plan: &Plan) -> Result<PathBuf> {
    if let Some(d) = &plan.state_dir {
        return Ok(d.clone());
    }
    data_home("XDG_STATE_HOME", ".local/state")
        .map(|d| d.join("vault"))
        .context("no state_dir in the plan and no home folder")
}

fn to_lib(e: anyhow::Error) -> vault::Error {
    match e.chain().find_map(|c| c.downcast_ref::<vault::Error>()) {
        Some(inner) => vault::Error::new(inner.kind(), format!("{e:#}")),
        None => vault::Error::new(vault::ErrorKind::Io, format!("{e:#}")),
    }
}

pub(super) fn run_cmd(g: &Global, a: RunArgs) -> Result<i32> {
    let (_, plan) = a.plan.load()?;
    let dir = state_dir(&plan)?;
    let _lock = state::lock(&dir)?;
    let repo = open_plan_repo(g, &plan)?;
    let open_target = |t: &CopyTarget| -> vault::Result<Arc<Repository>> {
        let side = with_repo(
            g,
            &t.location,
            t.password_file.as_ref(),
            t.password_command.as_ref(),
        );
        open(&side).map_err(to_lib)
    };
    let pg = plan_global(g, &plan);
    let open_for_check = |_: &()| super::check::open_unsynced(&pg).map_err(to_lib);
    let ctx = Context {
        plan: &plan,
        repo: &repo,
        open_target: &open_target,
        open_for_check: &open_for_check,
        staging: std::env::temp_dir(),
    };
    let outcome = run::run_due(&ctx, &a.sources)?;
    let status = run::gather(&plan, &repo, vault::format::Timestamp::now())?;
    let mut warnings = outcome.warnings.clone();
    warnings.extend(run::notify(&plan, &status, &dir));
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let failed = outcome.records.iter().filter(|r| !r.passed).count();
    if g.json {
        print_json(&json!({
            "tasks": outcome.records.iter().map(|r| json!({
                "task": r.task,
                "passed": r.passed,
                "duration_ms": r.duration_ms,
                "message": r.message,
                "snapshot": r.snapshot.map(|id| id.to_hex()),
                "bytes": r.bytes,
                "steps": r.steps.iter().map(|s| json!({"name": s.name, "passed": s.passed, "detail": s.detail})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "failed": failed,
            "healthy": status.healthy,
            "warnings": warnings,
        }))?;
    } else if !g.quiet {
        if outcome.records.is_empty() {
            println!("nothing due");
        }
        for r in &outcome.records {
            let verdict = if r.passed { "ok" } else { "FAILED" };
            println!(
                "{}: {verdict} in {:.1}s{}",
                r.task,
                r.duration_ms as f64 / 1000.0,
                if r.passed {
                    String::new()
                } else {
                    format!(" ({})", r.message)
                }
            );
        }
    }
    Ok(if failed == 0 { exit::OK } else { exit::FAILURE })
}
