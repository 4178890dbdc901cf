//! Lock objects: the body's round trip and what a reader rejects, and the
//! rule that decides when a lock is stale.

use proptest::prelude::*;
use vault::format::lock::{Lock, LockMode};
use vault::format::Timestamp;
use vault::repo::{staleness, STALE_AFTER};
use vault::ErrorKind;

fn lock(host: &str, pid: u32, refreshed: i64) -> Lock {
    Lock {
        mode: LockMode::Shared,
        host: host.into(),
        user: "u".into(),
        pid,
        purpose: "snapshot".into(),
        created: Timestamp {
            secs: refreshed - 10,
            nanos: 0,
        },
        refreshed: Timestamp {
            secs: refreshed,
            nanos: 0,
        },
    }
}

fn arb_ts() -> impl Strategy<Value = Timestamp> {
    (any::<i64>(), 0u32..1_000_000_000).prop_map(|(secs, nanos)| Timestamp { secs, nanos })
}

proptest! {
    #[test]
    fn locks_round_trip(
        exclusive in any::<bool>(), host in ".{0,40}", user in ".{0,20}", pid in any::<u32>(),
        purpose in ".{0,20}", created in arb_ts(), refreshed in arb_ts(),
    ) {
        let l = Lock {
            mode: if exclusive { LockMode::Exclusive } else { LockMode::Shared },
            host, user, pid, purpose, created, refreshed,
        };
        let bytes = l.encode();
        prop_assert_eq!(Lock::decode(&bytes).unwrap(), l);
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert_eq!(Lock::decode(&longer).unwrap_err().kind(), ErrorKind::Corrupt);
        for cut in 0..bytes.len() {
            prop_assert!(Lock::decode(&bytes[..cut]).is_err());
        }
    }

    #[test]
    fn lock_decoding_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Lock::decode(&bytes);
    }
}

#[test]
fn lock_bytes_are_as_specified() {
    let l = Lock {
        mode: LockMode::Exclusive,
        host: "h".into(),
        user: "u".into(),
        pid: 0x0102_0304,
        purpose: "prune".into(),
        created: Timestamp { secs: 1, nanos: 2 },
        refreshed: Timestamp { secs: 3, nanos: 4 },
    };
    let expected: Vec<u8> = [
        &[1u8, 2][..],       // version, mode exclusive
        &[1, b'h', 1, b'u'], // host, user
        &[4, 3, 2, 1],       // pid
        &[5, b'p', b'r', b'u', b'n', b'e'],
        &[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0],
        &[3, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0],
    ]
    .concat();
    assert_eq!(l.encode(), expected);
    let mut prune = expected.clone();
    prune[1] = 3;
    assert_eq!(Lock::decode(&prune).unwrap().mode, LockMode::Prune);
    let mut bad_mode = expected.clone();
    bad_mode[1] = 4;
    assert_eq!(
        Lock::decode(&bad_mode).unwrap_err().kind(),
        ErrorKind::Corrupt
    );
    let mut newer = expected.clone();
    newer[0] = 2;
    assert_eq!(
        Lock::decode(&newer).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}

#[test]
fn exclusive_conflicts_with_everything_shared_only_with_exclusive() {
    use LockMode::*;
    assert!(!Shared.conflicts_with(Shared));
    assert!(Shared.conflicts_with(Exclusive));
    assert!(Exclusive.conflicts_with(Shared));
    assert!(Exclusive.conflicts_with(Exclusive));
    // The prune lock (format version 3) lets backups run beside it.
    assert!(!Prune.conflicts_with(Shared));
    assert!(!Shared.conflicts_with(Prune));
    assert!(Prune.conflicts_with(Prune));
    assert!(Prune.conflicts_with(Exclusive));
    assert!(Exclusive.conflicts_with(Prune));
}

#[test]
fn a_lock_is_stale_when_its_process_is_gone_or_it_went_silent() {
    let now = Timestamp {
        secs: 1_000_000,
        nanos: 0,
    };
    let alive = |_| true;
    let dead = |_| false;
    let fresh = 1_000_000 - 60;
    // Same host: the process decides, whatever the refresh time.
    assert!(staleness(&lock("here", 5, fresh), now, "here", &dead)
        .unwrap()
        .contains("gone"));
    assert!(staleness(&lock("here", 5, fresh), now, "here", &alive).is_none());
    // Another host: only silence counts; its processes are not ours to see.
    assert!(staleness(&lock("there", 5, fresh), now, "here", &dead).is_none());
    let limit = STALE_AFTER.as_secs() as i64;
    assert!(staleness(&lock("there", 5, now.secs - limit), now, "here", &dead).is_none());
    assert!(
        staleness(&lock("there", 5, now.secs - limit - 1), now, "here", &alive)
            .unwrap()
            .contains("not refreshed")
    );
}
