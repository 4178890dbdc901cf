use super::*;
use crate::format::run::Step;

const PLAN: &str = r#"
[repository]
location = "/r"
password_file = "/p"

[[source]]
name = "db"
kind = "pg"
database = "app"
schedule = "1h"
rpo = "2h"
drill = { every = "1d" }

[[source]]
name = "files"
kind = "files"
paths = ["/srv"]
schedule = "1d"
rpo = "2d"

[check]
every = "1w"
"#;

const H: i64 = 3600;
const T0: i64 = 1_800_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp { secs, nanos: 0 }
}

fn record(task: &str, time: i64, passed: bool, steps: &[&str]) -> RunRecord {
    RunRecord {
        time: at(time),
        host: "h".into(),
        task: task.into(),
        passed,
        duration_ms: 1,
        message: String::new(),
        snapshot: (!steps.is_empty() && steps[0] == "snapshot")
            .then(|| crate::Id::from_bytes([1; 32])),
        bytes: 0,
        steps: steps
            .iter()
            .map(|s| Step {
                name: s.to_string(),
                passed,
                detail: String::new(),
            })
            .collect(),
    }
}

fn backup(source: &str, drill: bool) -> Task {
    Task::Backup {
        source: source.into(),
        drill,
    }
}

#[test]
fn due_tasks_follow_schedules_failures_and_drills() {
    let plan = Plan::parse(PLAN).unwrap();
    let drill = |s: &str| Task::Drill { source: s.into() };
    type Case<'a> = (&'a str, Vec<RunRecord>, i64, Vec<&'a str>, Vec<Task>);
    let cases: Vec<Case> = vec![
        (
            "nothing ever ran: everything is due",
            vec![],
            T0,
            vec![],
            vec![backup("db", true), backup("files", false), Task::Check],
        ),
        (
            "a minute after a full run nothing is due",
            vec![
                record("db", T0, true, &["snapshot", "drill"]),
                record("files", T0, true, &["snapshot"]),
                record(CHECK_TASK, T0, true, &["check"]),
            ],
            T0 + 60,
            vec![],
            vec![],
        ),
        (
            "an hour later the hourly source is due, not its daily drill",
            vec![
                record("db", T0, true, &["snapshot", "drill"]),
                record("files", T0, true, &["snapshot"]),
                record(CHECK_TASK, T0, true, &["check"]),
            ],
            T0 + H,
            vec![],
            vec![backup("db", false)],
        ),
        (
            "a failed daily backup is retried after 15 minutes",
            vec![
                record("db", T0, true, &["snapshot", "drill"]),
                record("files", T0, false, &["snapshot"]),
                record(CHECK_TASK, T0, true, &["check"]),
            ],
            T0 + 15 * 60,
            vec![],
            vec![backup("files", false)],
        ),
        (
            "a failed backup is not retried within 15 minutes",
            vec![
                record("db", T0, true, &["snapshot", "drill"]),
                record("files", T0, false, &["snapshot"]),
                record(CHECK_TASK, T0, true, &["check"]),
            ],
            T0 + 14 * 60,
            vec![],
            vec![],
        ),
        (
            "a drill falls due between backups",
            vec![
                record("db", T0, true, &["snapshot", "drill"]),
                record("db", T0 + 24 * H - 60, true, &["snapshot"]),
                record("files", T0 + 24 * H - 60, true, &["snapshot"]),
                record(CHECK_TASK, T0, true, &["check"]),
            ],
            T0 + 24 * H,
            vec![],
            vec![drill("db")],
        ),
        (
            "a named source runs now and alone",
            vec![
                record("db", T0, true, &["snapshot", "drill"]),
                record("files", T0, true, &["snapshot"]),
            ],
            T0 + 60,
            vec!["files"],
            vec![backup("files", false)],
        ),
        (
            "a drill-only record does not count as a backup",
            vec![
                record("db", T0, true, &["snapshot"]),
                record("db", T0 + 2 * H, true, &["drill"]),
                record("files", T0, true, &["snapshot"]),
                record(CHECK_TASK, T0, true, &["check"]),
            ],
            T0 + 2 * H + 60,
            vec![],
            vec![backup("db", false)],
        ),
        (
            "the check is due a week later",
            vec![
                record("db", T0 + 7 * 24 * H, true, &["snapshot", "drill"]),
                record("files", T0 + 7 * 24 * H, true, &["snapshot"]),
                record(CHECK_TASK, T0, true, &["check"]),
            ],
            T0 + 7 * 24 * H,
            vec![],
            vec![Task::Check],
        ),
    ];
    for (what, records, now, only, expected) in cases {
        let only: Vec<String> = only.into_iter().map(String::from).collect();
        assert_eq!(due(&plan, &records, at(now), &only), expected, "{what}");
    }
}

#[test]
fn expired_records_keep_each_tasks_newest_pass_and_failure() {
    let keep = Interval::secs(10 * 24 * H as u64);
    let id = |n: u8| crate::Id::from_bytes([n; 32]);
    let records = vec![
        (id(1), record("db", T0, false, &["snapshot"])),
        (id(2), record("db", T0 + H, true, &["snapshot"])),
        (id(3), record("db", T0 + 2 * H, true, &["snapshot"])),
        (id(4), record("db", T0 + 20 * 24 * H, true, &["snapshot"])),
        (id(5), record("files", T0, true, &["snapshot"])),
    ];
    let now = at(T0 + 20 * 24 * H);
    let mut gone = expired(&records, now, keep);
    gone.sort();
    // 1 is db's only failure, 5 files' only record, 4 is recent.
    assert_eq!(gone, vec![id(2), id(3)]);
}
