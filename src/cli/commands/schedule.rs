//! `vault schedule --systemd | --cron`: what drives `vault run`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::run::PlanFileArgs;
use crate::cli::args::Global;
use crate::cli::exit;

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("kind").required(true))]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub plan: PlanFileArgs,
    /// A systemd service and timer (every minute)
    #[arg(long, group = "kind")]
    pub systemd: bool,
    /// A crontab line (every minute)
    #[arg(long, group = "kind")]
    pub cron: bool,
    /// Write vault-run.service and vault-run.timer into this folder
    /// instead of printing them (--systemd only)
    #[arg(long, value_name = "DIR", requires = "systemd")]
    pub output_dir: Option<PathBuf>,
}

/// Quote for systemd's and sh's word splitting alike.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:@".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn absolute(p: &Path) -> Result<String> {
    let abs = std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))?;
    abs.to_str()
        .map(String::from)
        .with_context(|| format!("{} is not UTF-8", abs.display()))
}

pub fn service(vault: &str, plan: &str) -> String {
    format!(
        "[Unit]\n\
Description=vault: run the backup plan {plan}\n\
Wants=network-online.target\n\
After=network-online.target\n\
\n\
[Service]\n\
Type=oneshot\n\
ExecStart={} --quiet run --config {}\n\
Nice=10\n\
IOSchedulingClass=idle\n",
        quote(vault),
        quote(plan)
    )
}

pub fn timer() -> String {
    "[Unit]\n\
Description=vault: run the backup plan every minute\n\
\n\
[Timer]\n\
OnCalendar=minutely\n\
AccuracySec=1s\n\
Persistent=true\n\
\n\
[Install]\n\
WantedBy=timers.target\n"
        .to_string()
}

pub(super) fn schedule_cmd(_g: &Global, a: ScheduleArgs) -> Result<i32> {
    let plan = absolute(&a.plan.path()?)?;
    let exe = std::env::current_exe().context("locating the vault program")?;
    let vault = absolute(&exe)?;
    if a.cron {
        // flock keeps runs from piling up if one takes longer than a minute
        // (vault run refuses to overlap anyway, and says so).
        println!(
            "* * * * * {} --quiet run --config {}",
            quote(&vault),
            quote(&plan)
        );
        return Ok(exit::OK);
    }
    let (svc, tmr) = (service(&vault, &plan), timer());
    match &a.output_dir {
        Some(dir) => {
            for (name, body) in [("vault-run.service", &svc), ("vault-run.timer", &tmr)] {
                let path = dir.join(name);
                std::fs::write(&path, body)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("{}", path.display());
            }
        }
        None => {
            if !a.systemd {
                bail!("give --systemd or --cron");
            }
            print!("# /etc/systemd/system/vault-run.service\n{svc}\n# /etc/systemd/system/vault-run.timer\n{tmr}");
        }
    }
    Ok(exit::OK)
}
