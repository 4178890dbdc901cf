//! Prune through a backend whose writes start failing (a full disk, a lost
//! connection) after each possible number of writes: whatever step fails,
//! every snapshot still restores, and a later prune finishes the job.

use crate::common;

use std::io::Read;
use std::process::Command;
use std::sync::Arc;

use common::prune::*;
use common::*;
use vault::ops::prune::{execute, plan_prune, PruneRules};
use vault::progress::Progress;
use vault::repo::OpenOptions;
use vault::storage::{Backend, FaultyBackend, Location, OpendalBackend};
use vault::Repository;

fn stream(n: u64) -> impl Read + Send + 'static {
    Gen::random(n.saturating_sub(1), 300 << 10).chain(Gen::random(n, 300 << 10))
}

fn prune_with_writes(v: &Vault, allowed: u64) -> vault::Result<()> {
    let inner: Arc<dyn Backend> = Arc::new(OpendalBackend::open(
        &Location::Local(v.repo.clone()),
        false,
    )?);
    let faulty = Arc::new(FaultyBackend::failing_writes_after(inner, allowed));
    let repo = Arc::new(Repository::open(
        faulty,
        v.password.as_bytes(),
        &OpenOptions::default(),
    )?);
    let lock = repo.lock_exclusive("prune")?;
    let rules = PruneRules {
        max_unused: 0.0,
        max_repack_bytes: None,
    };
    let plan = plan_prune(&repo, &rules)?;
    execute(&repo, &lock, &plan, &Progress::default())?;
    Ok(())
}

fn copy_repo(from: &std::path::Path, to: &std::path::Path) {
    let _ = std::fs::remove_dir_all(to);
    let out = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn prune_failing_at_every_write_leaves_every_snapshot_whole() {
    within_limit("prune with failing writes", body);
}

fn body() {
    let v = Vault::init_with(SMALL_REPO);
    for n in 1..=5 {
        v.snapshot_stdin(&format!("s{n}"), stream(n));
    }
    v.ok(&["forget", "--group-by", "", "--keep-last", "2"]);
    let pristine = v.path().join("pristine");
    copy_repo(&v.repo, &pristine);
    let mut failures = 0;
    for allowed in 0u64.. {
        assert!(allowed < 200, "prune never succeeded");
        copy_repo(&pristine, &v.repo);
        let result = prune_with_writes(&v, allowed);
        for s in v.snapshots() {
            let name = s["paths"][0].as_str().unwrap();
            v.assert_dump_matches(json_str(&s, "id"), None, stream(name[1..].parse().unwrap()));
        }
        assert_every_used_blob_is_stored(&v);
        v.ok(&["check"]);
        assert!(
            v.objects("locks").is_empty(),
            "a failed prune left its lock"
        );
        match result {
            Err(e) => {
                assert!(
                    e.to_string().contains("injected failure"),
                    "unexpected error: {e}"
                );
                failures += 1;
                // The next prune, with a working disk, finishes the job.
                v.ok(&["prune", "--exclusive", "--max-unused", "0%"]);
                let left = v.json(&["prune", "--exclusive", "--max-unused", "0%", "--dry-run"]);
                assert_eq!(json_u64(&left, "packs_to_delete"), 0, "{left}");
                assert_eq!(json_u64(&left, "unindexed_packs"), 0, "{left}");
            }
            Ok(()) => break,
        }
    }
    eprintln!("prune failed cleanly at {failures} write points before succeeding");
    assert!(failures >= 3, "only {failures} write points were tried");
}
