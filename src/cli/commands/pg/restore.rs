//! `vault restore pg`: a database or single tables from a snapshot into a
//! PostgreSQL server.

use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use vault::engines::pg::parse_table;
use vault::ops::pg::dependents::Dependent;
use vault::ops::pg::restore::{
    plan, plan_dependents, restore_pg, Parts, PgRestoreOptions, RestorePlan,
};
use vault::progress::Progress;

use super::conn::PgConnArgs;
use crate::cli::args::Global;
use crate::cli::commands::filter::Filter;
use crate::cli::commands::{open, postgres_only, print_json, resolve_snapshot};
use crate::cli::exit;
use crate::cli::output::{human_bytes, ProgressGuard};

#[derive(Args, Debug)]
pub struct PgRestoreArgs {
    /// Snapshot id (or unique prefix), or 'latest'
    pub snapshot: String,
    /// Database to restore into
    #[arg(short = 'd', long, required_unless_present = "physical")]
    pub dbname: Option<String>,
    /// Create the target database first
    #[arg(long)]
    pub create: bool,
    /// Replace what the target holds (every schema; with --table, those tables)
    #[arg(long)]
    pub clean: bool,
    /// Restore only this table, with its indexes and constraints (SCHEMA.TABLE; repeatable)
    #[arg(short, long = "table", value_name = "SCHEMA.TABLE")]
    pub tables: Vec<String>,
    /// Tables, indexes and constraints, no rows
    #[arg(long, conflicts_with = "data_only")]
    pub schema_only: bool,
    /// Rows only, into existing tables
    #[arg(long)]
    pub data_only: bool,
    /// Restore the large objects (alone, or with --table)
    #[arg(long)]
    pub large_objects: bool,
    /// Do not create the roles the snapshot's objects need
    #[arg(long)]
    pub no_roles: bool,
    /// The snapshot's database to restore, when it holds several
    #[arg(long, value_name = "DB")]
    pub from: Option<String>,
    /// Tables loaded at once
    #[arg(short, long, default_value_t = 2)]
    pub jobs: usize,
    /// Print what would be done, change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub conn: PgConnArgs,
    #[command(flatten)]
    pub filter: Filter,
    #[command(flatten)]
    pub physical: Box<super::physical::PhysicalRestoreArgs>,
}

fn plan_json(p: &RestorePlan) -> serde_json::Value {
    json!({
        "from": p.source_database,
        "target": p.target,
        "create": p.create,
        "clean": p.clean,
        "parts": format!("{:?}", p.parts),
        "partial": p.partial,
        "tables": p.tables.iter().map(|t| json!({"schema": t.schema, "table": t.table, "rows": t.rows})).collect::<Vec<_>>(),
        "large_objects": p.large_objects.len(),
        "roles": p.roles,
    })
}

fn print_plan(p: &RestorePlan) {
    println!(
        "restore database {} into {}{}{}",
        p.source_database,
        p.target,
        if p.create { " (created)" } else { "" },
        if p.clean { " (cleaned first)" } else { "" }
    );
    for t in &p.tables {
        println!("  {}.{}: {} rows", t.schema, t.table, t.rows);
    }
    if !p.large_objects.is_empty() {
        println!("  {} large objects", p.large_objects.len());
    }
}

fn print_dependents(dependents: &[Dependent]) {
    if !dependents.is_empty() {
        println!("dropped and re-created from the snapshot:");
    }
    for d in dependents {
        println!("  {d}");
    }
}

pub(crate) fn restore_pg_cmd(g: &Global, a: &PgRestoreArgs) -> Result<i32> {
    let Some(dbname) = &a.dbname else {
        return super::physical::restore_physical_cmd(g, &a.snapshot, &a.physical, &a.filter);
    };
    let repo = open(g)?;
    let (_, snap) = resolve_snapshot(g, &repo, &a.snapshot, &postgres_only(&a.filter))?;
    let opts = PgRestoreOptions {
        conn: a.conn.conn(None)?,
        target: dbname.clone(),
        from: a.from.clone(),
        create: a.create,
        clean: a.clean,
        tables: a.tables.iter().map(|t| parse_table(t)).collect(),
        parts: match (a.schema_only, a.data_only) {
            (true, _) => Parts::SchemaOnly,
            (_, true) => Parts::DataOnly,
            _ => Parts::All,
        },
        large_objects: a.large_objects,
        roles: !a.no_roles,
        jobs: a.jobs.max(1),
    };
    if a.dry_run {
        let p = plan(&repo, &snap, &opts)?;
        let dependents = plan_dependents(&repo, &snap, &p, &opts.conn)?;
        if g.json {
            let mut v = plan_json(&p);
            v["recreated"] = json!(dependents.iter().map(|d| d.to_string()).collect::<Vec<_>>());
            print_json(&v)?;
        } else {
            print_plan(&p);
            print_dependents(&dependents);
        }
        return Ok(exit::OK);
    }
    let progress = Arc::new(Progress::default());
    let outcome = {
        let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "restore pg");
        restore_pg(&repo, &snap, &opts, &progress)?
    };
    if g.json {
        let mut v = plan_json(&outcome.plan);
        v["bytes"] = json!(outcome.bytes);
        v["duration_ms"] = json!(outcome.duration_ms);
        print_json(&v)?;
    } else if !g.quiet {
        println!(
            "restored {} ({}) into {} in {:.1}s",
            crate::cli::output::count(outcome.plan.tables.len(), "table", "tables"),
            human_bytes(outcome.bytes),
            outcome.plan.target,
            outcome.duration_ms as f64 / 1000.0
        );
    }
    Ok(exit::OK)
}
