//! `vault drill pg`: restore a snapshot into a throwaway server, check it,
//! and record the outcome in the repository.

use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use vault::engines::pg::PgConn;
use vault::ops::pg::drill::{drill_pg, DrillOptions};
use vault::progress::Progress;

use super::filter::Filter;
use super::{open, postgres_only, print_json, resolve_snapshot};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::{rfc3339_utc, ProgressGuard};

#[derive(Args, Debug)]
pub struct DrillArgs {
    #[command(subcommand)]
    pub kind: DrillKind,
}

#[derive(Subcommand, Debug)]
pub enum DrillKind {
    /// Restore a PostgreSQL snapshot into a scratch server and check it
    Pg(DrillPgArgs),
}

#[derive(Args, Debug)]
pub struct DrillPgArgs {
    /// Snapshot id (or unique prefix), or 'latest' (the newest pg snapshot)
    #[arg(default_value = "latest")]
    pub snapshot: String,
    /// Restore into this server (a postgresql:// URI or key=value string
    /// naming a database to connect to) instead of starting a scratch one
    #[arg(long, value_name = "URL")]
    pub scratch_url: Option<String>,
    /// SQL that must return true after the restore (repeatable)
    #[arg(long = "assert", value_name = "SQL")]
    pub asserts: Vec<String>,
    /// The snapshot's database the assertions run in [default: the first]
    #[arg(long, value_name = "DB")]
    pub assert_db: Option<String>,
    /// Tables loaded at once
    #[arg(short, long, default_value_t = 2)]
    pub jobs: usize,
    /// Do not create the roles the snapshot's objects need
    #[arg(long)]
    pub no_roles: bool,
    #[command(flatten)]
    pub filter: Filter,
    #[command(flatten)]
    pub physical: super::pg::physical::PhysicalDrillArgs,
}

pub(super) fn drill(g: &Global, a: DrillArgs) -> Result<i32> {
    let DrillKind::Pg(a) = a.kind;
    if a.physical.physical {
        return super::pg::physical::drill_physical_cmd(g, &a);
    }
    let repo = open(g)?;
    let (id, snap) = resolve_snapshot(g, &repo, &a.snapshot, &postgres_only(&a.filter))?;
    let opts = DrillOptions {
        server: a.scratch_url.map(|url| PgConn {
            dbname: Some(url),
            ..PgConn::default()
        }),
        asserts: a.asserts,
        assert_database: a.assert_db,
        jobs: a.jobs.max(1),
        roles: !a.no_roles,
    };
    let progress = Arc::new(Progress::default());
    let (drill_id, d) = {
        let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "drill");
        drill_pg(&repo, &id, &snap, &opts, &progress)?
    };
    report_drill(g, &id, &drill_id, &d)
}

/// Print a drill's outcome; its exit code (9 when a check failed).
pub(crate) fn report_drill(
    g: &Global,
    id: &vault::Id,
    drill_id: &vault::Id,
    d: &vault::format::drill::Drill,
) -> Result<i32> {
    if g.json {
        print_json(&json!({
            "drill": drill_id.to_hex(),
            "snapshot": id.to_hex(),
            "time": rfc3339_utc(d.time),
            "passed": d.passed,
            "restore_ms": d.restore_ms,
            "checks": d.checks.iter().map(|c| json!({"name": c.name, "passed": c.passed, "detail": c.detail})).collect::<Vec<_>>(),
        }))?;
    } else if !g.quiet {
        for c in d.checks.iter().filter(|c| !c.passed) {
            println!("FAILED {}: {}", c.name, c.detail);
        }
        println!(
            "drill of snapshot {} {}: {} checks, restore took {:.1}s",
            id.short(),
            if d.passed { "passed" } else { "FAILED" },
            d.checks.len(),
            d.restore_ms as f64 / 1000.0
        );
    }
    Ok(if d.passed {
        exit::OK
    } else {
        exit::DRILL_FAILED
    })
}
