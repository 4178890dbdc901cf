//! Carrying out one due task. Every failure ends up in the task's run
//! record, never as an early return, so one failing source cannot stop the
//! others and every outcome is recorded.

use std::ffi::OsString;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::plan::{Task, DRILL_STEP};
use super::source_tag;
use super::verify::verify_snapshot;
use crate::config::{CopyTarget, Plan, Source, SourceKind};
use crate::engines::mysql::MysqlConnection;
use crate::engines::pg::PgConn;
use crate::engines::redis::RedisConnection;
use crate::error::{Error, Result};
use crate::format::run::{RunRecord, Step};
use crate::format::snapshot::Snapshot;
use crate::format::{Id, Timestamp};
use crate::ops::check::{check, CheckOptions, DataCheck};
use crate::ops::mysql::MysqlSelection;
use crate::ops::pg::drill::{drill_pg, DrillOptions};
use crate::ops::pg::snapshot::{snapshot_pg, Databases, PgSnapshotOptions};
use crate::ops::prune::{self, PruneRules};
use crate::ops::snapshot::{self, ParentChoice, SnapshotOptions, SnapshotOutcome};
use crate::ops::wal_retention::{WalRules, DEFAULT_WAL_GRACE_SECS};
use crate::ops::{copy, forget};
use crate::ops::{mysql, redis, sqlite};
use crate::policy::{self, Selection};
use crate::progress::Progress;
use crate::repo::Repository;

type Opener<'a, T> = &'a (dyn Fn(&T) -> Result<Arc<Repository>> + Sync);

/// What a run needs from the caller: the open repository, and how to open
/// copy targets and a repository for checking (the caller knows where
/// passwords and caches are).
pub struct Context<'a> {
    pub plan: &'a Plan,
    pub repo: &'a Arc<Repository>,
    pub open_target: Opener<'a, CopyTarget>,
    pub open_for_check: Opener<'a, ()>,
    /// Where sqlite copies are staged.
    pub staging: std::path::PathBuf,
}

/// Steps of one task, stopping at the first failure that makes the rest
/// pointless (no snapshot: nothing to verify or copy).
struct Steps {
    steps: Vec<Step>,
    message: String,
}

impl Steps {
    fn step<T>(&mut self, name: &str, result: Result<(T, String)>) -> Option<T> {
        match result {
            Ok((value, detail)) => {
                self.steps.push(Step {
                    name: name.to_string(),
                    passed: true,
                    detail,
                });
                Some(value)
            }
            Err(e) => {
                let detail = e.to_string();
                if self.message.is_empty() {
                    self.message = format!("{name}: {detail}");
                }
                self.steps.push(Step {
                    name: name.to_string(),
                    passed: false,
                    detail,
                });
                None
            }
        }
    }
}

pub fn run_task(ctx: &Context<'_>, task: &Task) -> RunRecord {
    let time = Timestamp::now();
    let started = Instant::now();
    let mut s = Steps {
        steps: Vec::new(),
        message: String::new(),
    };
    let mut stored: Option<(Id, u64)> = None;
    match task {
        Task::Backup { source, drill } => match ctx.plan.source(source) {
            Some(src) => {
                stored = backup(ctx, src, &mut s);
                if *drill {
                    if let Some((id, _)) = stored {
                        drill_step(ctx, src, Some(id), &mut s);
                    }
                }
            }
            None => {
                s.step::<()>(
                    "plan",
                    Err(Error::invalid(format!("no source named {source}"))),
                );
            }
        },
        Task::Drill { source } => {
            if let Some(src) = ctx.plan.source(source) {
                drill_step(ctx, src, None, &mut s);
            }
        }
        Task::Check => {
            let result = scheduled_check(ctx);
            s.step("check", result);
        }
    }
    RunRecord {
        time,
        host: crate::system::hostname(),
        task: task.name().to_string(),
        passed: s.message.is_empty() && !s.steps.is_empty(),
        duration_ms: started.elapsed().as_millis() as u64,
        message: s.message,
        snapshot: stored.map(|(id, _)| id),
        bytes: stored.map(|(_, b)| b).unwrap_or(0),
        steps: s.steps,
    }
}

fn backup(ctx: &Context<'_>, src: &Source, s: &mut Steps) -> Option<(Id, u64)> {
    let progress = Progress::default();
    let outcome = s.step(
        "snapshot",
        take_snapshot(ctx.repo, src, &ctx.staging, &progress).map(|o| {
            let detail = format!(
                "snapshot {}: {} files, {} bytes added{}",
                o.id.short(),
                o.snapshot.summary.files,
                o.snapshot.summary.bytes_added,
                if o.warnings.is_empty() {
                    String::new()
                } else {
                    format!(", {} entries unreadable", o.warnings.len())
                }
            );
            (o, detail)
        }),
    )?;
    let bytes = progress.bytes_read.load(Ordering::Relaxed)
        + progress.bytes_skipped.load(Ordering::Relaxed);
    let id = outcome.id;
    if src.verify {
        let verified = verify_snapshot(ctx.repo, &outcome.snapshot.root).map(|v| {
            (
                (),
                format!(
                    "{} trees, {} data blobs, {} bytes read back",
                    v.trees, v.blobs, v.bytes
                ),
            )
        });
        if s.step("verify", verified).is_none() {
            // A snapshot that does not read back is not copied anywhere.
            return Some((id, bytes));
        }
    }
    for target in ctx.plan.copies_of(src) {
        let result = copy_to(ctx, src, target);
        s.step(&format!("copy {}", target.name), result);
    }
    if let Some(keep) = &src.keep {
        let result = keep
            .rules()
            .and_then(|rules| retain(ctx.repo, src, &rules, keep.wal_within_secs()?));
        s.step("forget", result);
    }
    Some((id, bytes))
}

fn options(src: &Source) -> SnapshotOptions {
    SnapshotOptions {
        host: src.host.clone(),
        tags: vec![source_tag(&src.name)],
        compression: None,
        parent: ParentChoice::Auto,
        meta: vec![],
    }
}

fn take_snapshot(
    repo: &Arc<Repository>,
    src: &Source,
    staging: &std::path::Path,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    let opts = options(src);
    let streams = SnapshotOptions {
        parent: ParentChoice::None,
        ..opts.clone()
    };
    match &src.kind {
        SourceKind::Files { paths } => snapshot::snapshot_files(repo, paths, &opts, progress),
        SourceKind::Pg {
            database,
            all,
            pg_host,
            pg_port,
            pg_user,
            jobs,
        } => {
            let pg = PgSnapshotOptions {
                conn: PgConn {
                    host: pg_host.clone(),
                    port: *pg_port,
                    user: pg_user.clone(),
                    dbname: database.clone(),
                },
                databases: if *all { Databases::All } else { Databases::One },
                jobs: (*jobs).max(1),
                lock_wait_timeout: "30s".to_string(),
                split_size: crate::ops::pg::snapshot::DEFAULT_SPLIT_SIZE,
            };
            snapshot_pg(repo, &pg, &streams, progress)
        }
        SourceKind::Redis {
            redis_host,
            redis_port,
            socket,
            user,
        } => {
            let conn = RedisConnection {
                program: None,
                host: redis_host.clone(),
                port: *redis_port,
                socket: socket.clone().map(OsString::from),
                user: user.clone(),
            };
            redis::snapshot(repo, &conn, &streams, progress)
        }
        SourceKind::Mysql {
            databases,
            all,
            mysql_host,
            mysql_port,
            socket,
            user,
            defaults_extra_file,
        } => {
            let conn = MysqlConnection {
                client: None,
                dump_program: None,
                defaults_extra_file: defaults_extra_file.clone(),
                host: mysql_host.clone(),
                port: *mysql_port,
                socket: socket.clone(),
                user: user.clone(),
            };
            let selection = MysqlSelection {
                all: *all,
                databases: databases.clone(),
                users: *all,
            };
            mysql::snapshot(repo, &conn, &selection, &streams, progress)
        }
        SourceKind::Sqlite { file } => sqlite::snapshot(repo, file, staging, &streams, progress),
        SourceKind::Cmd { command, stream } => {
            let Some((program, args)) = command.split_first() else {
                return Err(Error::invalid("empty command"));
            };
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            let name = stream.as_deref().unwrap_or(&src.name);
            snapshot::snapshot_command(
                repo,
                name,
                &OsString::from(program),
                &args,
                &streams,
                progress,
            )
        }
    }
}

fn tagged(repo: &Repository, src: &Source) -> Result<Vec<(Id, Snapshot)>> {
    let tag = source_tag(&src.name);
    Ok(repo
        .snapshots()?
        .into_iter()
        .filter(|(_, s)| s.tags.contains(&tag))
        .collect())
}

/// Every snapshot of the source the target does not hold yet, so a copy
/// that failed once catches up on the next run.
fn copy_to(ctx: &Context<'_>, src: &Source, target: &CopyTarget) -> Result<((), String)> {
    let to = (ctx.open_target)(target)?;
    let plan = copy::plan(ctx.repo, &to, tagged(ctx.repo, src)?)?;
    let outcome = copy::execute(ctx.repo, &to, &plan, &Progress::default())?;
    Ok((
        (),
        format!(
            "{} snapshots copied, {} already there, {} bytes stored",
            outcome.copied.len(),
            plan.already_copied.len(),
            outcome.stats.stored_bytes_added
        ),
    ))
}

/// Forget by the source's rules, then prune if that removed anything.
/// WAL retention follows, since the window moves on even when no
/// snapshot goes.
fn retain(
    repo: &Arc<Repository>,
    src: &Source,
    rules: &policy::KeepRules,
    wal_within: Option<u64>,
) -> Result<((), String)> {
    let selection = Selection {
        tags: vec![source_tag(&src.name)],
        ..Selection::default()
    };
    let one_group = "".parse::<policy::GroupBy>()?;
    let removed = {
        let lock = repo.lock_shared("run: forget")?;
        let plan = policy::apply(
            &repo.snapshots()?,
            rules,
            &selection,
            one_group,
            Timestamp::now(),
            &jiff::tz::TimeZone::system(),
        )?;
        forget::remove_snapshots(repo, &lock, &plan)?
    };
    if removed == 0 && wal_within.is_none() {
        return Ok(((), "0 snapshots removed".to_string()));
    }
    let lock = repo.lock_exclusive("run: prune")?;
    let mut message = format!("{removed} snapshots removed");
    if removed > 0 {
        let rules = PruneRules {
            max_unused: 0.05,
            max_repack_bytes: None,
        };
        let plan = prune::plan_prune(repo, &rules)?;
        let outcome = prune::execute(repo, &lock, &plan, &Progress::default())?;
        message += &format!(
            "; prune deleted {} packs, freed {} bytes",
            outcome.packs_deleted,
            plan.freed_bytes()
        );
    }
    let wal_rules = WalRules {
        keep_within_secs: wal_within,
        grace_secs: DEFAULT_WAL_GRACE_SECS,
    };
    if let Some(plan) = prune::plan_wal(repo, &wal_rules, Timestamp::now())? {
        let deleted = prune::execute_wal(repo, &lock, &plan)?;
        if deleted > 0 {
            message += &format!("; {deleted} WAL files deleted");
        }
    }
    Ok(((), message))
}

fn drill_step(ctx: &Context<'_>, src: &Source, snapshot: Option<Id>, s: &mut Steps) {
    let Some(drill) = &src.drill else { return };
    let result = (|| {
        let all = tagged(ctx.repo, src)?;
        let (id, snap) = match snapshot {
            Some(id) => all.into_iter().find(|(i, _)| *i == id),
            None => all.into_iter().last(),
        }
        .ok_or_else(|| Error::invalid(format!("no snapshot of {} to drill", src.name)))?;
        let opts = DrillOptions {
            server: None,
            asserts: drill.asserts.clone(),
            assert_database: drill.assert_database.clone(),
            jobs: 2,
            roles: true,
        };
        let (_, d) = drill_pg(ctx.repo, &id, &snap, &opts, &Progress::default())?;
        let failed: Vec<String> = d
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        if !d.passed {
            return Err(Error::new(
                crate::ErrorKind::SourceFailed,
                format!(
                    "drill of snapshot {} failed: {}",
                    id.short(),
                    failed.join("; ")
                ),
            ));
        }
        Ok((
            (),
            format!(
                "snapshot {} restored in {} ms, {} checks passed",
                id.short(),
                d.restore_ms,
                d.checks.len()
            ),
        ))
    })();
    s.step(DRILL_STEP, result);
}

fn scheduled_check(ctx: &Context<'_>) -> Result<((), String)> {
    let Some(plan) = &ctx.plan.check else {
        return Err(Error::invalid("the plan has no [check]"));
    };
    let data = match &plan.read_data_subset {
        Some(s) => DataCheck::Subset(s.parse()?),
        None => DataCheck::Headers,
    };
    let repo = (ctx.open_for_check)(&())?;
    let opts = CheckOptions {
        data,
        rotate: plan.read_data_subset.is_some(),
        seed: rand::random(),
        now: Timestamp::now(),
    };
    let report = check(&repo, &opts, &Progress::default())?;
    if let Some(p) = report.problems.first() {
        return Err(Error::corrupt(format!(
            "{} problems, the first: {} {}: {}",
            report.problems.len(),
            p.object,
            p.id.short(),
            p.message
        )));
    }
    Ok((
        (),
        format!(
            "{} snapshots, {} packs read in full",
            report.stats.snapshots, report.stats.packs_read
        ),
    ))
}
