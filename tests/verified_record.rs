//! The verification record (`verified/`, format version 2): every record
//! round trips, one encoding per record, and hostile bytes never panic.

use proptest::collection::vec;
use proptest::prelude::*;
use vault::format::verified::VerifiedRecord;
use vault::format::{Id, Timestamp};

fn id() -> impl Strategy<Value = Id> {
    any::<[u8; 32]>().prop_map(Id::from_bytes)
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (any::<i64>(), 0u32..1_000_000_000).prop_map(|(secs, nanos)| Timestamp { secs, nanos })
}

fn record() -> impl Strategy<Value = VerifiedRecord> {
    (vec(id(), 0..4), vec((id(), timestamp()), 0..40))
        .prop_map(|(supersedes, entries)| VerifiedRecord::new(supersedes, entries))
}

proptest! {
    #[test]
    fn round_trip(r in record()) {
        prop_assert_eq!(VerifiedRecord::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn trailing_bytes_are_rejected(r in record(), extra in vec(any::<u8>(), 1..8)) {
        let mut bytes = r.encode();
        bytes.extend_from_slice(&extra);
        prop_assert!(VerifiedRecord::decode(&bytes).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..400)) {
        let _ = VerifiedRecord::decode(&bytes);
    }

    #[test]
    fn mutations_never_panic(r in record(), at in any::<usize>(), to in any::<u8>()) {
        let mut bytes = r.encode();
        let i = at % bytes.len();
        bytes[i] = to;
        if let Ok(decoded) = VerifiedRecord::decode(&bytes) {
            // Whatever decodes has exactly the encoding it was read from.
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }
}

#[test]
fn the_latest_time_of_a_pack_wins_and_entries_are_sorted() {
    let a = Id::from_bytes([1; 32]);
    let b = Id::from_bytes([2; 32]);
    let t = |secs| Timestamp { secs, nanos: 0 };
    let r = VerifiedRecord::new(vec![], vec![(b, t(5)), (a, t(1)), (b, t(9)), (b, t(7))]);
    assert_eq!(r.entries, vec![(a, t(1)), (b, t(9))]);
}

#[test]
fn unsorted_or_repeated_entries_are_rejected() {
    let a = Id::from_bytes([1; 32]);
    let t = Timestamp { secs: 1, nanos: 0 };
    let mut r = VerifiedRecord::new(vec![], vec![(a, t)]);
    r.entries.push((a, t));
    assert!(VerifiedRecord::decode(&r.encode()).is_err());
    let vector = VerifiedRecord::new(vec![Id::from_bytes([7; 32])], vec![(a, t)]).encode();
    let mut want = vec![1u8, 1];
    want.extend_from_slice(&[7; 32]);
    want.push(1);
    want.extend_from_slice(&[1; 32]);
    want.extend_from_slice(&1i64.to_le_bytes());
    want.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(vector, want, "the byte layout format-spec documents");
}
