//! Ctrl-C or SIGTERM during a snapshot: vault stops reading, keeps and
//! indexes the packs it stored, records no snapshot, says so in one line
//! and exits 128 + the signal; the next snapshot reuses what was kept.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{self, Gen, Vault};

const SEED: u64 = 0x5167;
/// Far more than the test lets through: the stream never ends on its own.
const ENDLESS: u64 = 1 << 40;
/// Packs stored before the signal is sent.
const PACKS_BEFORE_SIGNAL: usize = 3;

struct Interrupted {
    code: i32,
    stderr: String,
    /// Bytes of the stream vault accepted before it stopped reading.
    fed: u64,
}

fn pack_bytes(v: &Vault) -> u64 {
    v.objects("data")
        .iter()
        .map(|p| {
            std::fs::metadata(v.repo.join("data").join(p))
                .unwrap()
                .len()
        })
        .sum()
}

/// Feed an endless stream to `snapshot --stdin`, and send `signal` once
/// packs are stored.
fn snapshot_stopped_by(v: &Vault, signal: libc::c_int) -> Interrupted {
    let mut child: Child = v
        .cmd(&["--json", "snapshot", "--stdin", "--name", "big"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vault");
    let watchdog = common::Watchdog::start(&child);
    let mut stdin = child.stdin.take().unwrap();
    let fed = Arc::new(AtomicU64::new(0));
    let feeder = {
        let fed = fed.clone();
        std::thread::spawn(move || {
            // The pipe stays open until vault stops reading and exits.
            let mut data = Gen::random(SEED, ENDLESS);
            let mut buf = vec![0u8; 64 << 10];
            loop {
                data.read_exact(&mut buf).unwrap();
                if stdin.write_all(&buf).is_err() {
                    return;
                }
                fed.fetch_add(buf.len() as u64, Ordering::SeqCst);
            }
        })
    };
    let deadline = Instant::now() + common::RUN_LIMIT;
    while v.objects("data").len() < PACKS_BEFORE_SIGNAL {
        assert!(Instant::now() < deadline, "no packs were stored");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: the child has not been reaped, so its pid is still its own.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    watchdog.stop();
    Interrupted {
        code: common::code(&out),
        stderr: common::stderr(&out),
        fed: fed.load(Ordering::SeqCst),
    }
}

fn assert_stop_keeps_stored_packs(signal: libc::c_int, expected_code: i32) {
    let v = Vault::init_with(&["--pack-size-mib", "4"]);
    let stopped = snapshot_stopped_by(&v, signal);
    assert_eq!(stopped.code, expected_code, "stderr: {}", stopped.stderr);

    let packs = v.objects("data").len();
    assert!(packs >= PACKS_BEFORE_SIGNAL, "{packs} packs left");
    let s = if packs == 1 { "" } else { "s" };
    let verb = if packs == 1 { "is" } else { "are" };
    let expected = format!("vault: interrupted; {packs} pack{s} (");
    let line = stopped.stderr.trim_end();
    assert!(
        line.starts_with(&expected)
            && line.ends_with(&format!(
                "already stored {verb} kept and indexed: the next snapshot reuses them"
            ))
            && !line.contains('\n'),
        "stderr: {line}"
    );

    assert!(
        v.snapshots().is_empty(),
        "an interrupted run recorded a snapshot"
    );
    let check = v.run(&["check", "--read-data"]);
    common::assert_success(&check, "check --read-data after the interrupted snapshot");

    // The same stream in full, up to where the feeder got: everything the
    // stopped run stored is reused through the index.
    let kept = pack_bytes(&v);
    let second = v.snapshot_stdin("big", Gen::random(SEED, stopped.fed));
    let added = common::json_u64(&second, "bytes_added");
    assert!(
        added + kept / 2 < stopped.fed && added < stopped.fed / 4,
        "the second snapshot added {added} of {} bytes fed; {kept} bytes were kept",
        stopped.fed
    );
    v.assert_dump_matches(
        common::json_str(&second, "snapshot"),
        None,
        Gen::random(SEED, stopped.fed),
    );
}

#[test]
fn ctrl_c_keeps_and_indexes_stored_packs_and_records_no_snapshot() {
    assert_stop_keeps_stored_packs(libc::SIGINT, 130);
}

#[test]
fn sigterm_keeps_and_indexes_stored_packs_and_records_no_snapshot() {
    assert_stop_keeps_stored_packs(libc::SIGTERM, 143);
}

/// Ctrl-C at a terminal signals the whole foreground group: the producer
/// dies of it too, and that is not a failed source (exit 8).
#[test]
fn ctrl_c_that_also_kills_the_producer_is_an_interruption_not_a_source_failure() {
    let v = Vault::init_with(&["--pack-size-mib", "4"]);
    let child = v
        .cmd(&[
            "snapshot",
            "cmd",
            "--name",
            "big",
            "--",
            "cat",
            "/dev/urandom",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn vault");
    let watchdog = common::Watchdog::start(&child);
    let deadline = Instant::now() + common::RUN_LIMIT;
    while v.objects("data").len() < PACKS_BEFORE_SIGNAL {
        assert!(Instant::now() < deadline, "no packs were stored");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: the group is led by the child, which has not been reaped.
    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    watchdog.stop();
    common::assert_code(&out, 130, "snapshot cmd stopped by Ctrl-C");
    let line = common::one_line_error(&out);
    assert!(line.starts_with("vault: interrupted; "), "{line}");
    assert!(
        v.snapshots().is_empty(),
        "an interrupted run recorded a snapshot"
    );
    common::assert_success(&v.run(&["check", "--read-data"]), "check --read-data");
}
