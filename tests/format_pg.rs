//! Property tests for the PostgreSQL-related bytes: drill records, the
//! table list and the database facts a snapshot records round trip, reject trailing bytes and
//! never panic on arbitrary input.

use proptest::collection::vec;
use proptest::prelude::*;
use vault::format::drill::{Check, Drill};
use vault::format::pg_facts::{self, DatabaseFacts};
use vault::format::pg_tables::{self, TableRows};
use vault::format::{Id, Timestamp};

fn table() -> impl Strategy<Value = TableRows> {
    (".{0,12}", ".{0,12}", ".{1,20}", any::<u64>()).prop_map(|(database, schema, table, rows)| {
        TableRows {
            database,
            schema,
            table,
            rows,
        }
    })
}

fn facts() -> impl Strategy<Value = DatabaseFacts> {
    (
        ".{0,12}",
        "[0-9a-f]{32}",
        any::<u64>(),
        any::<u64>(),
        vec((".{0,8}", ".{1,8}"), 0..4),
    )
        .prop_map(
            |(database, fingerprint, large_objects, large_object_bytes, matviews)| DatabaseFacts {
                database,
                fingerprint,
                large_objects,
                large_object_bytes,
                matviews,
            },
        )
}

fn drill() -> impl Strategy<Value = Drill> {
    (
        any::<[u8; 32]>(),
        any::<i64>(),
        0u32..1_000_000_000,
        ".{0,10}",
        any::<bool>(),
        any::<u64>(),
        vec((".{0,30}", any::<bool>(), ".{0,30}"), 0..8),
    )
        .prop_map(
            |(id, secs, nanos, host, passed, restore_ms, checks)| Drill {
                snapshot: Id::from_bytes(id),
                time: Timestamp { secs, nanos },
                host,
                source: "postgres".to_string(),
                passed,
                restore_ms,
                checks: checks
                    .into_iter()
                    .map(|(name, passed, detail)| Check {
                        name,
                        passed,
                        detail,
                    })
                    .collect(),
            },
        )
}

proptest! {
    #[test]
    fn table_list_round_trips(tables in vec(table(), 0..10)) {
        let bytes = pg_tables::encode(&tables);
        prop_assert_eq!(pg_tables::decode(&bytes).unwrap(), tables);
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(pg_tables::decode(&longer).is_err());
        prop_assert!(pg_tables::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn database_facts_round_trip(databases in vec(facts(), 0..5)) {
        let bytes = pg_facts::encode(&databases);
        prop_assert_eq!(pg_facts::decode(&bytes).unwrap(), databases);
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(pg_facts::decode(&longer).is_err());
        prop_assert!(pg_facts::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn drill_round_trips(d in drill()) {
        let bytes = d.encode();
        prop_assert_eq!(Drill::decode(&bytes).unwrap(), d);
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert!(Drill::decode(&longer).is_err());
        prop_assert!(Drill::decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn decoders_never_panic(bytes in vec(any::<u8>(), 0..300)) {
        let _ = Drill::decode(&bytes);
        let _ = pg_tables::decode(&bytes);
        let _ = pg_facts::decode(&bytes);
    }

    #[test]
    fn mutated_drills_never_panic(d in drill(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = d.encode();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let _ = Drill::decode(&bytes);
    }
}

#[test]
fn unknown_versions_are_unsupported() {
    let d = Drill::decode(&[2]).unwrap_err();
    assert_eq!(d.kind(), vault::ErrorKind::Unsupported);
    let t = pg_tables::decode(&[2, 0]).unwrap_err();
    assert_eq!(t.kind(), vault::ErrorKind::Unsupported);
    let f = pg_facts::decode(&[2, 0]).unwrap_err();
    assert_eq!(f.kind(), vault::ErrorKind::Unsupported);
}

#[test]
fn flags_other_than_zero_and_one_are_corrupt() {
    let d = Drill {
        snapshot: Id::from_bytes([1; 32]),
        time: Timestamp { secs: 5, nanos: 0 },
        host: "h".into(),
        source: "postgres".into(),
        passed: true,
        restore_ms: 7,
        checks: vec![],
    };
    let mut bytes = d.encode();
    // version, id, time (12), host (2), source (9): then the passed flag
    let flag_at = 1 + 32 + 12 + 2 + 9;
    assert_eq!(bytes[flag_at], 1);
    bytes[flag_at] = 2;
    assert_eq!(
        Drill::decode(&bytes).unwrap_err().kind(),
        vault::ErrorKind::Corrupt
    );
}
