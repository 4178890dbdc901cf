//! WAL retention and continuity: prune keeps exactly the WAL the kept
//! physical base backups and the window need, prints it under --dry-run,
//! deletes nothing without a policy and loses nothing needed when killed;
//! check names a missing segment with the base backups it breaks; status
//! shows the archive's newest segment and its age.
//!
//! The last test takes real base backups of a real PostgreSQL archiving
//! through `vault wal push`. The others make base backups through the library: a small stream committed
//! with source `pg-physical` and a `pg.base` record, as
//! `vault snapshot pg --physical` writes them. Segments are synthetic and
//! small, pushed through the library so their push time can be set.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vault::format::pg_base::{BaseBackup, PG_BASE_KEY, PG_PHYSICAL_SOURCE};
use vault::format::wal::WalFile;
use vault::format::Timestamp;
use vault::ops::snapshot::{snapshot_stream, SnapshotOptions};
use vault::progress::Progress;
use vault::repo::WalArchive;

use crate::common::{self, Rng, Vault};
use crate::pg_physical::{recover, Archive};
use crate::pg_wal::{archive_current, count};

const SEGMENT: u64 = 16 << 20;
const DAY: i64 = 86_400;

/// Store a physical base backup snapshot starting and stopping in the
/// given segments of `timeline`; returns its short id.
fn base_backup(v: &Vault, timeline: u32, start_seg: u64, stop_seg: u64) -> String {
    let repo = Arc::new(v.library());
    let base = BaseBackup {
        system_identifier: 7_000_000_000_000_000_042,
        wal_segment_size: SEGMENT,
        start_timeline: timeline,
        start_lsn: start_seg * SEGMENT + 0x28,
        stop_timeline: timeline,
        stop_lsn: stop_seg * SEGMENT + 0x100,
    };
    let data = format!("base backup on timeline {timeline} from segment {start_seg}").into_bytes();
    let opts = SnapshotOptions {
        meta: vec![(PG_BASE_KEY.to_string(), base.encode())],
        ..SnapshotOptions::default()
    };
    let out = snapshot_stream(
        &repo,
        "base.tar",
        &data[..],
        PG_PHYSICAL_SOURCE,
        &opts,
        &Progress::default(),
    )
    .unwrap();
    out.id.short()
}

/// Push `names` as pushed `days_ago` days ago.
fn push(v: &Vault, names: &[String], days_ago: i64) {
    let repo = v.library();
    let archive = WalArchive::of(&repo).unwrap();
    let when = Timestamp {
        secs: Timestamp::now().secs - days_ago * DAY,
        nanos: 0,
    };
    for (i, name) in names.iter().enumerate() {
        let mut bytes = vec![0u8; 4096];
        Rng::new(i as u64 + name.len() as u64).fill(&mut bytes[..512]);
        bytes.extend_from_slice(name.as_bytes());
        archive
            .push(&WalFile::parse(name).unwrap(), &bytes, when)
            .unwrap();
    }
}

fn seg(timeline: u32, n: u64) -> String {
    format!("{timeline:08X}{:08X}{:08X}", n >> 8, n & 0xFF)
}

fn archived(v: &Vault) -> BTreeSet<String> {
    match std::fs::read_dir(v.repo.join("wal")) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

fn set(names: &[String]) -> BTreeSet<String> {
    names.iter().cloned().collect()
}

/// Timeline 1 segments 1..=10 with two `.backup` files, timeline 2 from
/// segment 8 to 12 with its history and a `.backup` file, all pushed a
/// month ago except timeline 1's segment 5, pushed two days ago.
fn two_timelines(v: &Vault) -> (Vec<String>, Vec<String>) {
    let mut old: Vec<String> = (1..=10).filter(|n| *n != 5).map(|n| seg(1, n)).collect();
    old.push(format!("{}.00000028.backup", seg(1, 3)));
    old.push(format!("{}.00000028.backup", seg(1, 6)));
    old.push("00000002.history".into());
    old.extend((8..=12).map(|n| seg(2, n)));
    old.push(format!("{}.00000028.backup", seg(2, 9)));
    let recent = vec![seg(1, 5)];
    push(v, &old, 30);
    push(v, &recent, 2);
    (old, recent)
}

#[test]
fn prune_keeps_exactly_the_wal_kept_base_backups_and_the_window_need() {
    let v = Vault::init();
    base_backup(&v, 1, 3, 4);
    base_backup(&v, 1, 6, 7);
    base_backup(&v, 2, 9, 9);
    let (old, recent) = two_timelines(&v);
    let everything: BTreeSet<String> = old.iter().chain(&recent).cloned().collect();
    v.ok(&["forget", "--group-by", "", "--keep-last", "2"]);

    // The dry run prints the plan and deletes nothing.
    let out = v.ok(&["prune", "--dry-run", "--keep-wal-within", "7d"]);
    let text = common::stdout(&out);
    assert!(
        text.contains("WAL archive: would delete 5 files")
            && text.contains(&format!(
                "timeline 1: {} to {} (5 files",
                seg(1, 1),
                seg(1, 4)
            )),
        "{text}"
    );
    let plan = v.json(&["prune", "--dry-run", "--keep-wal-within", "7d"]);
    assert_eq!(plan["wal"]["files_to_delete"], 5);
    assert_eq!(plan["wal"]["timelines"][0]["first"], seg(1, 1).as_str());
    let doomed = [
        seg(1, 1),
        seg(1, 2),
        seg(1, 3),
        format!("{}.00000028.backup", seg(1, 3)),
        seg(1, 4),
    ];
    let doomed_bytes: u64 = doomed
        .iter()
        .map(|n| std::fs::metadata(v.repo.join("wal").join(n)).unwrap().len())
        .sum();
    assert_eq!(plan["wal"]["bytes_to_delete"], doomed_bytes);
    assert_eq!(archived(&v), everything);

    v.ok(&["prune", "--keep-wal-within", "7d"]);
    // Base backups from segment 6 on timeline 1 and 9 on timeline 2 keep
    // everything from segment 6 on (timeline 2 from its first segment, 8),
    // their .backup files and the history; the window keeps segment 5.
    let mut expected: Vec<String> = (5..=10).map(|n| seg(1, n)).collect();
    expected.push(format!("{}.00000028.backup", seg(1, 6)));
    expected.push("00000002.history".into());
    expected.extend((8..=12).map(|n| seg(2, n)));
    expected.push(format!("{}.00000028.backup", seg(2, 9)));
    assert_eq!(archived(&v), set(&expected));
    v.ok(&["check"]);

    // Without the window, segment 5 goes too; the base backups' WAL stays.
    v.ok(&["prune"]);
    expected.retain(|n| *n != seg(1, 5));
    assert_eq!(archived(&v), set(&expected));
}

#[test]
fn without_a_base_backup_or_a_window_prune_deletes_no_wal() {
    let v = Vault::init();
    let files = v.dir("files");
    std::fs::write(files.join("a"), "a logical backup is no base backup").unwrap();
    v.snapshot_paths(&[&files]);
    let (old, recent) = two_timelines(&v);
    let everything: BTreeSet<String> = old.iter().chain(&recent).cloned().collect();
    let out = v.ok(&["prune"]);
    assert!(
        common::stdout(&out).contains("WAL archive left as it is: no physical base backup"),
        "{}",
        common::stdout(&out)
    );
    assert_eq!(archived(&v), everything);
    let plan = v.json(&["prune", "--dry-run"]);
    assert_eq!(plan["wal"]["files_to_delete"], 0);
    assert!(plan["wal"]["held"].is_string(), "{plan}");
}

#[test]
fn check_names_a_missing_segment_and_the_base_backups_it_breaks() {
    let v = Vault::init();
    let older = base_backup(&v, 1, 3, 4);
    let newer = base_backup(&v, 1, 6, 7);
    two_timelines(&v);
    v.ok(&["check"]);

    // Segment 8 lies after both backups stopped: both can no longer be
    // recovered past it; neither is unrestorable.
    std::fs::remove_file(v.repo.join("wal").join(seg(1, 8))).unwrap();
    let out = v.run(&["check"]);
    common::assert_code(&out, 4, "check with a segment missing");
    let text = common::stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("{} to {} missing", seg(1, 8), seg(1, 8))))
        .unwrap_or_else(|| panic!("no gap named: {text}"));
    assert!(
        line.contains(&older) && line.contains(&newer) && line.contains("past 0/8000000"),
        "{line}"
    );
    assert!(!text.contains("cannot be restored"), "{text}");

    // Segment 7 lies between the newer backup's start and stop: that
    // backup cannot be restored at all.
    std::fs::remove_file(v.repo.join("wal").join(seg(1, 7))).unwrap();
    let out = v.run(&["--json", "check"]);
    common::assert_code(&out, 4, "check with a base backup's WAL missing");
    let report = common::parse_json(&out);
    let lines: Vec<&str> = report["wal_gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("snapshot {newer}"))
                && l.contains("cannot be restored")
                && l.contains(&format!("(first: {})", seg(1, 7)))),
        "{lines:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with(&format!("snapshot {older}"))),
        "{lines:?}"
    );
}

#[test]
fn a_killed_prune_never_loses_wal_a_kept_base_backup_needs() {
    let v = Vault::init();
    base_backup(&v, 1, 200, 201);
    let needed: Vec<String> = (200..=210).map(|n| seg(1, n)).collect();
    let unneeded: Vec<String> = (1..200).map(|n| seg(1, n)).collect();
    push(&v, &needed, 30);
    let mut rng = Rng::new(12);
    let mut full = Duration::from_millis(400);
    let mut mid_work = 0;
    for round in 0..8 {
        push(&v, &unneeded, 30);
        let mut child = v
            .cmd(&["prune", "--exclusive"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_micros(rng.below(full.as_micros() as u64 + 1));
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() >= delay {
                child.kill().unwrap();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        let left = archived(&v);
        assert!(
            needed.iter().all(|n| left.contains(n)),
            "round {round}: a needed segment is gone"
        );
        // Deleted oldest first: what is left of the unneeded is a suffix.
        let kept_unneeded: Vec<&String> = unneeded.iter().filter(|n| left.contains(*n)).collect();
        if let Some(first) = kept_unneeded.first() {
            let from = unneeded.iter().position(|n| n == *first).unwrap();
            assert_eq!(kept_unneeded.len(), unneeded.len() - from, "round {round}");
        }
        if status.signal() == Some(libc::SIGKILL) {
            if !kept_unneeded.is_empty() && kept_unneeded.len() < unneeded.len() {
                mid_work += 1;
            }
        } else {
            assert!(status.success(), "round {round}: prune failed: {status}");
            full = started.elapsed();
        }
        v.ok(&["check"]);
    }
    eprintln!("kills in the middle of the WAL deletions: {mid_work}");
    v.ok(&["prune", "--exclusive"]);
    assert_eq!(archived(&v), set(&needed));
}

#[test]
fn status_shows_the_archives_newest_segment_and_its_age() {
    let v = Vault::init();
    push(&v, &[seg(1, 1), seg(1, 2)], 1);
    let password = v.path().join("password");
    std::fs::write(&password, &v.password).unwrap();
    let files = v.dir("files");
    std::fs::write(files.join("a"), "a").unwrap();
    let plan = v.path().join("plan.toml");
    std::fs::write(
        &plan,
        format!(
            "state_dir = \"{}\"\n[repository]\nlocation = \"{}\"\npassword_file = \"{}\"\n\n[[source]]\nname = \"files\"\nkind = \"files\"\npaths = [\"{}\"]\nschedule = \"1h\"\nrpo = \"2h\"\nkeep = {{ last = 3, wal_within = \"7d\" }}\n",
            v.path().join("state").display(),
            v.repo.display(),
            password.display(),
            files.display()
        ),
    )
    .unwrap();
    let out = v.run(&["--json", "status", "--config", plan.to_str().unwrap()]);
    let st = common::parse_json(&out);
    assert_eq!(st["wal"]["newest"], seg(1, 2).as_str());
    let age = st["wal"]["newest_age_secs"].as_i64().unwrap();
    assert!((DAY..DAY + 600).contains(&age), "{age}");
    let out = v.run(&["status", "--config", plan.to_str().unwrap()]);
    let text = common::stdout(&out);
    assert!(
        text.contains(&format!("WAL archive: newest {}", seg(1, 2)))
            && text.contains("the current RPO"),
        "{text}"
    );
}

/// The WAL segment (or `.backup` file) a name starts with, on `timeline`.
fn segment_of(name: &str, timeline: u32) -> Option<u64> {
    let tl = u32::from_str_radix(name.get(..8)?, 16).ok()?;
    let hi = u64::from_str_radix(name.get(8..16)?, 16).ok()?;
    let lo = u64::from_str_radix(name.get(16..24)?, 16).ok()?;
    (tl == timeline).then_some((hi << 8) | lo)
}

/// Three real base backups, the oldest forgotten, prune with a short
/// window: the WAL before the oldest kept backup is gone, what it needs is
/// there (check finds no gap), and a restore to a time after it recovers.
#[test]
fn prune_after_real_base_backups_keeps_what_the_oldest_kept_one_needs() {
    let a = Archive::new();
    let Some(pg) = a.server() else {
        return;
    };
    pg.createdb("app");
    pg.sql(
        "app",
        "CREATE TABLE t (id serial PRIMARY KEY, phase text);
         INSERT INTO t (phase) SELECT 'one' FROM generate_series(1, 500)",
    );
    for phase in ["two", "three"] {
        pg.vault_json(&a.v, &["snapshot", "pg", "--physical"]);
        pg.sql(
            "app",
            &format!("INSERT INTO t (phase) SELECT '{phase}' FROM generate_series(1, 500)"),
        );
        archive_current(&pg);
    }
    pg.vault_json(&a.v, &["snapshot", "pg", "--physical"]);
    pg.sql("app", "INSERT INTO t (phase) VALUES ('marker')");
    let target = pg.moment_apart();
    pg.sql("app", "INSERT INTO t (phase) VALUES ('later')");
    archive_current(&pg);

    let repo = a.v.library();
    let snaps = repo.snapshots().unwrap();
    assert_eq!(snaps.len(), 3);
    let base_of = |i: usize| BaseBackup::from_meta(&snaps[i].1.meta).unwrap().unwrap();
    let (oldest, kept) = (base_of(0), base_of(1));
    let first_kept = kept.start_lsn / SEGMENT;
    let before = archived(&a.v);
    let older: Vec<&String> = before
        .iter()
        .filter(|n| segment_of(n, 1).is_some_and(|s| s < first_kept))
        .collect();
    assert!(
        older
            .iter()
            .any(|n| segment_of(n, 1) == Some(oldest.start_lsn / SEGMENT)),
        "the forgotten backup's WAL was archived: {before:?}"
    );

    a.v.ok(&["forget", "--group-by", "", "--keep-last", "2"]);
    // Everything archived so far is more than a second old: outside the
    // window and the grace period (which keeps the WAL of a backup running
    // right now).
    std::thread::sleep(Duration::from_secs(2));
    a.v.ok(&["prune", "--keep-wal-within", "1", "--grace", "1"]);
    let after = archived(&a.v);
    for name in &older {
        assert!(
            !after.contains(*name),
            "{name} is older than every kept backup"
        );
    }
    let newest = before
        .iter()
        .filter_map(|n| segment_of(n, 1))
        .max()
        .unwrap();
    for segment in first_kept..=newest {
        let name = format!("{:08X}{:08X}{:08X}", 1, segment >> 8, segment & 0xFF);
        assert!(after.contains(&name), "{name} is needed by a kept backup");
    }
    let report = a.v.json(&["check"]);
    assert_eq!(report["wal_gaps"], serde_json::json!([]), "{report}");

    let restored = a.restore(&pg, "at-t", &["--to-time", &target]);
    let at_t = recover(&pg, &restored, &[]);
    assert_eq!(count(&at_t, "phase = 'marker'"), 1);
    assert_eq!(count(&at_t, "phase = 'three'"), 500);
    assert_eq!(count(&at_t, "phase = 'later'"), 0);
}
