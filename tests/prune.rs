//! `vault prune`, `vault forget` and locks through the real binary.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::held::Held;
use common::prune::*;
use common::*;

/// Total bytes of the objects that make a repository's content.
fn stored_bytes(v: &Vault) -> u64 {
    ["data", "index", "snapshots"]
        .iter()
        .flat_map(|d| {
            v.objects(d)
                .into_iter()
                .map(move |p| v.repo.join(d).join(p))
        })
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// Ten files of 256 KiB; snapshot `round` rewrites two of them.
fn change_files(dir: &Path, round: u64) {
    for f in 0..10u64 {
        let changed_at = if f == round % 10 || f == (round * 3 + 1) % 10 {
            round
        } else {
            0
        };
        if round == 0 || changed_at == round {
            write_gen(
                &dir.join(format!("f{f}")),
                Gen::random(1000 * f + round, 256 << 10),
            );
        }
    }
}

/// A snapshot fed 64 KiB of `data` and then held: it holds its lock.
fn held_snapshot(v: &Vault, args: &[&str], data: Gen) -> Held {
    let held = Held::start(v, args, data, 64 << 10);
    wait_until("the snapshot's lock", Duration::from_secs(30), || {
        !v.objects("locks").is_empty()
    });
    held
}

#[test]
fn prune_after_forgetting_all_but_the_last_of_20_snapshots_reclaims_the_space() {
    let v = Vault::init_with(SMALL_REPO);
    let src = v.dir("src");
    for round in 0..20 {
        change_files(&src, round);
        v.snapshot_paths(&[&src]);
    }
    let before = stored_bytes(&v);

    let forget = v.json(&[
        "forget",
        "--keep-last",
        "1",
        "--prune",
        "--exclusive",
        "--max-unused",
        "5%",
    ]);
    assert_eq!(json_u64(&forget, "removed"), 19, "{forget}");
    assert_eq!(json_u64(&forget, "kept"), 1);
    assert_eq!(forget["groups"][0]["keep"][0]["reasons"][0], "last 1");
    let prune = &forget["prune"];
    assert!(json_u64(prune, "packs_to_delete") > 0, "{prune}");
    assert!(
        json_u64(prune, "packs_to_repack") > 0,
        "nothing was repacked: {prune}"
    );
    assert_eq!(v.snapshots().len(), 1);

    // The same files in a fresh repository are the yardstick.
    let fresh = Vault::init_with(SMALL_REPO);
    fresh.snapshot_paths(&[&src]);
    let (after, yardstick) = (stored_bytes(&v), stored_bytes(&fresh));
    assert!(
        after * 10 <= yardstick * 11,
        "pruned repository holds {after} bytes, a fresh one {yardstick} (before prune: {before})"
    );
    eprintln!(
        "stored bytes: {before} before prune, {after} after, {yardstick} in a fresh repository"
    );
    assert!(
        before > 2 * after,
        "prune freed too little: {before} -> {after}"
    );

    let target = v.path().join("restored");
    v.restore("latest", &target, &[]);
    assert_same_tree(&src, &restored_at(&target, &src));
    assert_every_used_blob_is_stored(&v);
    v.ok(&["check"]);

    // Nothing is left to do, and the next snapshot still deduplicates.
    let again = v.json(&["prune", "--exclusive", "--max-unused", "5%"]);
    assert_eq!(json_u64(&again, "packs_to_delete"), 0, "{again}");
    assert_eq!(json_u64(&again, "unindexed_packs"), 0, "{again}");
    let next = v.snapshot_paths(&[&src]);
    assert!(
        json_u64(&next, "raw_bytes_added") < 4096,
        "only trees may change: {next}"
    );
}

#[test]
fn dry_runs_print_the_plan_and_change_nothing() {
    let v = Vault::init_with(SMALL_REPO);
    for seed in 1..=4 {
        v.snapshot_stdin(&format!("s{seed}"), Gen::random(seed, 600 << 10));
    }
    let files = v.repo_files();
    let plan = v.json(&["forget", "--group-by", "", "--keep-last", "2", "--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(json_u64(&plan, "removed"), 2, "{plan}");
    let human = stdout(&v.ok(&["forget", "--group-by", "", "--keep-last", "2", "-n"]));
    assert!(
        human.contains("keep") && human.contains("remove") && human.contains("last 1"),
        "{human}"
    );
    v.ok(&["forget", "--group-by", "", "--keep-last", "2"]);
    let files_after_forget = v.repo_files();
    assert_eq!(
        files_after_forget.len(),
        files.len() - 2,
        "forget deletes only snapshot objects"
    );

    let plan = v.json(&["prune", "--exclusive", "--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    assert!(json_u64(&plan, "bytes_freed") >= 1 << 20, "{plan}");
    let human = stdout(&v.ok(&["prune", "--exclusive", "-n"]));
    assert!(human.contains("would"), "{human}");
    assert_eq!(
        v.repo_files(),
        files_after_forget,
        "a dry run changed the repository"
    );
    assert!(v.objects("locks").is_empty());
}

#[test]
fn prune_refuses_to_delete_anything_when_snapshots_cannot_be_read() {
    let v = Vault::init_with(SMALL_REPO);
    v.snapshot_stdin("s1", Gen::random(1, 300 << 10));
    v.snapshot_stdin("s2", Gen::random(2, 300 << 10));
    v.ok(&["forget", "--group-by", "", "--keep-last", "1"]);
    // Lose the packs of the snapshot that stays: its tree is unreadable.
    let kept = v.snapshots()[0]["root"].as_str().unwrap().to_string();
    let repo = open_library(&v);
    let root: vault::Id = kept.parse().unwrap();
    let loc = repo
        .blob_location(vault::format::BlobKind::Tree, &root)
        .unwrap()
        .unwrap();
    drop(repo);
    std::fs::remove_file(v.repo.join(vault::format::layout::pack(&loc.pack))).unwrap();
    let files = v.repo_files();
    let out = v.run(&["prune", "--exclusive"]);
    assert_code(&out, 4, "prune over damage");
    let line = one_line_error(&out);
    assert!(line.contains("refusing to delete anything"), "{line}");
    assert_eq!(
        v.repo_files(),
        files,
        "prune deleted something despite the damage"
    );
}

#[test]
fn a_running_snapshot_makes_prune_exit_5_naming_it() {
    let v = Vault::init_with(SMALL_REPO);
    let held = held_snapshot(
        &v,
        &["--json", "snapshot", "--stdin", "--name", "slow"],
        Gen::random(7, 1 << 20),
    );

    let out = v.run(&["prune", "--exclusive"]);
    assert_code(&out, 5, "prune beside a snapshot");
    let line = one_line_error(&out);
    assert!(
        line.contains("snapshot (shared)") && line.contains(&format!("pid {}", held.pid())),
        "{line}"
    );
    let out = v.run(&["forget", "--keep-last", "1", "--prune", "--exclusive"]);
    assert_code(&out, 5, "forget --prune beside a snapshot");

    // Shared locks coexist: a second snapshot runs meanwhile.
    v.snapshot_stdin("beside", Gen::random(8, 100 << 10));

    let out = held.finish();
    assert_success(&out, "the held snapshot");
    assert!(
        v.objects("locks").is_empty(),
        "a finished run left its lock"
    );
    v.ok(&["prune", "--exclusive"]);
    let id = json_str(&parse_json(&out), "snapshot").to_string();
    v.assert_dump_matches(&id, None, Gen::random(7, 1 << 20));
}

#[test]
fn a_killed_holder_leaves_a_stale_lock_that_is_ignored_and_unlock_removes() {
    let v = Vault::init_with(SMALL_REPO);
    let held = held_snapshot(
        &v,
        &["snapshot", "--stdin", "--name", "doomed"],
        Gen::random(7, 1 << 20),
    );
    held.kill9();
    assert_eq!(v.objects("locks").len(), 1);

    // The holder is gone from this host, so prune goes ahead, saying so.
    let out = v.ok(&["prune", "--exclusive"]);
    assert!(
        stderr(&out).contains("ignoring stale lock"),
        "{}",
        stderr(&out)
    );
    let unlocked = v.json(&["unlock"]);
    let removed = unlocked["removed"].as_array().unwrap();
    assert_eq!(removed.len(), 1, "{unlocked}");
    assert!(
        removed[0]["reason"].as_str().unwrap().contains("gone"),
        "{unlocked}"
    );
    assert!(v.objects("locks").is_empty());
    let again = v.json(&["unlock"]);
    assert!(again["removed"].as_array().unwrap().is_empty());
}

#[test]
fn unlock_all_removes_a_live_lock_and_its_holder_then_records_nothing() {
    let v = Vault::init_with(SMALL_REPO);
    let held = held_snapshot(
        &v,
        &["snapshot", "--stdin", "--name", "orphaned"],
        Gen::random(7, 1 << 20),
    );
    let plain = v.json(&["unlock"]);
    assert_eq!(
        plain["live"].as_array().unwrap().len(),
        1,
        "a live lock was taken for stale: {plain}"
    );
    let all = v.json(&["unlock", "--all"]);
    assert_eq!(all["removed"].as_array().unwrap().len(), 1, "{all}");

    // Its lock is gone, so a prune may have run: it must not commit.
    let out = held.finish();
    assert_code(&out, 5, "a snapshot whose lock was removed");
    assert!(stderr(&out).contains("removed"), "{}", stderr(&out));
    assert!(v.snapshots().is_empty());
}

#[test]
fn lock_wait_lets_a_blocked_command_wait_its_turn() {
    let v = Vault::init_with(SMALL_REPO);
    v.snapshot_stdin("s1", Gen::random(1, 200 << 10));
    let held = held_snapshot(
        &v,
        &["snapshot", "--stdin", "--name", "s2"],
        Gen::random(2, 400 << 10),
    );
    let waiting = std::thread::spawn({
        let cmd = v.cmd(&["prune", "--exclusive", "--lock-wait", "60"]);
        move || output(cmd)
    });
    std::thread::sleep(Duration::from_millis(800));
    assert_success(&held.finish(), "the held snapshot");
    assert_success(&waiting.join().unwrap(), "prune --lock-wait 60");
}

#[test]
fn every_forget_rule_reaches_the_policy() {
    let v = Vault::init_with(SMALL_REPO);
    v.snapshot_stdin("s1", Gen::random(1, 10 << 10));
    let tagged = v.snapshot_stdin_output("s1", Gen::random(2, 10 << 10), &["--tag", "keep"]);
    assert_success(&tagged, "tagged snapshot");
    for (flags, reason) in [
        (&["--keep-last", "1"][..], "last 1"),
        (&["--keep-hourly", "1"], "hourly "),
        (&["--keep-daily", "1"], "daily "),
        (&["--keep-weekly", "1"], "weekly "),
        (&["--keep-monthly", "1"], "monthly "),
        (&["--keep-yearly", "1"], "yearly "),
        (&["--keep-within", "1h"], "within 1h"),
        (&["--keep-within-hourly", "1d"], "hourly "),
        (&["--keep-within-daily", "1d"], "daily "),
        (&["--keep-within-weekly", "1d"], "weekly "),
        (&["--keep-within-monthly", "1d"], "monthly "),
        (&["--keep-within-yearly", "1d"], "yearly "),
        (&["--keep-tag", "keep"], "tag keep"),
    ] {
        for utc in [false, true] {
            let mut args = vec!["forget", "--dry-run"];
            args.extend_from_slice(flags);
            if utc {
                args.push("--utc");
            }
            let plan = v.json(&args);
            let reasons = &plan["groups"][0]["keep"][0]["reasons"];
            let first = reasons[0].as_str().unwrap_or_default();
            assert!(first.starts_with(reason), "{flags:?}: reasons {reasons}");
            let within = flags[0].starts_with("--keep-within-");
            assert_eq!(first.contains(" within "), within, "{flags:?}: {first}");
        }
    }
    // Filters: another host's snapshots are not considered at all.
    let plan = v.json(&[
        "forget",
        "--dry-run",
        "--keep-last",
        "1",
        "--host",
        "elsewhere",
    ]);
    assert_eq!(
        json_u64(&plan, "kept") + json_u64(&plan, "removed"),
        0,
        "{plan}"
    );
    let plan = v.json(&[
        "forget",
        "--dry-run",
        "--keep-last",
        "1",
        "--source",
        "s1",
        "--tag",
        "keep",
    ]);
    assert_eq!(json_u64(&plan, "kept"), 1, "{plan}");
    let bad = v.run(&["forget", "--keep-within", "3 weeks"]);
    assert_code(&bad, 2, "forget with a bad duration");
}

#[test]
fn forget_removes_exactly_the_snapshots_named_as_restic_does() {
    let v = Vault::init();
    let ids: Vec<String> = (0..4)
        .map(|i| {
            let s = v.snapshot_stdin("t", std::io::Cursor::new(vec![i as u8; 1000]));
            json_str(&s, "snapshot").to_string()
        })
        .collect();
    // A unique prefix and a full id; a dry run first changes nothing.
    let prefix = &ids[1][..12];
    let dry = v.json(&["forget", "--dry-run", prefix, &ids[2]]);
    assert_eq!(json_u64(&dry, "removed"), 2, "{dry}");
    assert_eq!(v.snapshots().len(), 4);
    let done = v.json(&["forget", prefix, &ids[2]]);
    assert_eq!(json_u64(&done, "removed"), 2, "{done}");
    let left: Vec<String> = v
        .snapshots()
        .iter()
        .map(|s| json_str(s, "id").to_string())
        .collect();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&ids[0]) && left.contains(&ids[3]), "{left:?}");

    let mixed = v.run(&["forget", "--keep-last", "1", &ids[0]]);
    assert_code(&mixed, 2, "naming snapshots beside keep rules");
    let unknown = v.run(&["forget", "ffffffffffff"]);
    assert_code(&unknown, 1, "a snapshot that does not exist");
    assert_eq!(v.snapshots().len(), 2, "refusals remove nothing");
}
