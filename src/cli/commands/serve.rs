//! `vault serve`: /health, /metrics, /api/status and a status page.

use anyhow::Result;
use clap::Args;
use vault::format::Timestamp;
use vault::ops::run;

use super::run::{open_plan_repo, PlanFileArgs};
use crate::cli::args::Global;
use crate::cli::exit;

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub plan: PlanFileArgs,
    /// Address to listen on [default: the plan's [serve] listen, 127.0.0.1:9797]
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
}

pub(super) fn serve_cmd(g: &Global, a: ServeArgs) -> Result<i32> {
    let (_, plan) = a.plan.load()?;
    let repo = open_plan_repo(g, &plan)?;
    let listen = a.listen.unwrap_or_else(|| plan.serve.listen.clone());
    let status = || {
        // Other processes add index objects; the repository size needs them.
        repo.sync_index()?;
        run::gather(&plan, &repo, Timestamp::now())
    };
    let quiet = g.quiet;
    vault::serve::serve(&listen, &status, &mut |addr| {
        if !quiet {
            // Tests and scripts read the port from this line.
            println!("serving http://{addr}/");
        }
    })?;
    Ok(exit::OK)
}
