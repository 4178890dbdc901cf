//! `vault restore pg`: a database or single tables from a snapshot into a
//! PostgreSQL server.

use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use vault::engines::pg::basebackup::format_lsn;
use vault::engines::pg::parse_table;
use vault::ops::pg::dependents::Dependent;
use vault::ops::pg::physical::restore::RecoveryTarget;
use vault::ops::pg::restore::{
    plan, plan_dependents, restore_pg, Parts, PgRestoreOptions, RestorePlan,
};
use vault::ops::pg::table_at::{
    self, restore_table_at, target_instant, TableAtOptions, TableAtPlan,
};
use vault::progress::Progress;
use vault::ErrorKind;

use super::conn::PgConnArgs;
use super::physical;
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
    if wants_point_in_time(a) {
        return restore_table_at_cmd(g, a, dbname);
    }
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

/// A recovery target or WAL key file with `-d`: tables as they were at a
/// point in time, from a base backup and the WAL archive.
fn wants_point_in_time(a: &PgRestoreArgs) -> bool {
    let p = &a.physical;
    p.to_time.is_some() || p.to_lsn.is_some() || p.to_xid.is_some() || p.wal_key_file.is_some()
}

fn restore_table_at_cmd(g: &Global, a: &PgRestoreArgs, dbname: &str) -> Result<i32> {
    if a.tables.is_empty() {
        anyhow::bail!(vault::Error::invalid(
            "--to-time, --to-lsn, --to-xid and --wal-key-file restore a whole cluster \
             (--physical --target DIR) or single tables (--table SCHEMA.TABLE -d DB)"
        ));
    }
    if a.create || a.schema_only || a.data_only || a.large_objects {
        anyhow::bail!(vault::Error::invalid(
            "a table at a point in time is restored whole into an existing database: \
             not with --create, --schema-only, --data-only or --large-objects"
        ));
    }
    let p = &a.physical;
    let opts = TableAtOptions {
        live: a.conn.conn(None)?,
        target: dbname.to_string(),
        from: a.from.clone(),
        tables: a.tables.iter().map(|t| parse_table(t)).collect(),
        to: physical::recovery_target(p.to_time.as_ref(), p.to_lsn.as_ref(), p.to_xid)?,
        restore_command: physical::server_restore_command(
            g,
            p.wal_key_file.as_ref(),
            "restore pg --table at a point in time",
        )?,
        clean: a.clean,
    };
    // Only a base backup taken before the target time can recover to it.
    let before = target_instant(&opts.live, &opts.target, &opts.to)?;
    let mut scope = physical::physical_only(&a.filter);
    scope.at = match (scope.at, before) {
        (Some(x), Some(y)) if x <= y => Some(x),
        (x, None) => x,
        (_, y) => y,
    };
    let repo = open(g)?;
    let (id, snap) = physical::resolve_base_backup(g, &repo, &a.snapshot, &scope, &opts.to)
        .map_err(|e| {
            let kind = e.downcast_ref::<vault::Error>().map(vault::Error::kind);
            match (kind, &opts.to) {
                (Some(ErrorKind::NotFound), RecoveryTarget::Time(t)) => {
                    anyhow::Error::from(vault::Error::new(
                        ErrorKind::NotFound,
                        format!(
                            "no physical base backup (`snapshot pg --physical`) was taken before {t}"
                        ),
                    ))
                }
                _ => e,
            }
        })?;
    if a.dry_run {
        let plan = table_at::plan(&opts)?;
        if g.json {
            print_json(&table_at_json(&id, &plan))?;
        } else {
            print_table_at_plan(&id, &opts, &plan);
        }
        return Ok(exit::OK);
    }
    let progress = Arc::new(Progress::default());
    let outcome = {
        let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "restore pg --table");
        restore_table_at(&repo, &snap, &opts, &progress)?
    };
    if g.json {
        let mut v = table_at_json(&id, &outcome.plan);
        v["bytes"] = json!(outcome.bytes);
        v["duration_ms"] = json!(outcome.duration_ms);
        print_json(&v)?;
    } else if !g.quiet {
        println!(
            "restored {} ({}) as of {} into {} in {:.1}s",
            crate::cli::output::count(opts.tables.len(), "table", "tables"),
            human_bytes(outcome.bytes),
            describe_target(&opts.to),
            opts.target,
            outcome.duration_ms as f64 / 1000.0
        );
    }
    Ok(exit::OK)
}

fn describe_target(to: &RecoveryTarget) -> String {
    match to {
        RecoveryTarget::End => "the end of the WAL archive".to_string(),
        RecoveryTarget::Time(t) => t.clone(),
        RecoveryTarget::Lsn(l) => format!("LSN {}", format_lsn(*l)),
        RecoveryTarget::Xid(x) => format!("transaction {x}"),
    }
}

fn table_at_json(base: &vault::Id, p: &TableAtPlan) -> serde_json::Value {
    let names = |ts: &[(String, String)]| -> Vec<String> {
        ts.iter().map(|(s, t)| format!("{s}.{t}")).collect()
    };
    json!({
        "base_backup": base.to_hex(),
        "replaced": names(&p.replaced),
        "created": names(&p.created),
        "recreated": p.recreated.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
    })
}

fn print_table_at_plan(base: &vault::Id, opts: &TableAtOptions, p: &TableAtPlan) {
    println!(
        "recover base backup {} to {} in a scratch server, then into {}:",
        base.short(),
        describe_target(&opts.to),
        opts.target
    );
    for (s, t) in &p.replaced {
        println!("  {s}.{t}: replaced (dropped and loaded in one transaction)");
    }
    for (s, t) in &p.created {
        println!("  {s}.{t}: created");
    }
    print_dependents(&p.recreated);
}
