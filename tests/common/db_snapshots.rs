//! Checks shared by the database tests: what a failed snapshot must look
//! like from outside, and the facts a snapshot recorded about its source.

use std::collections::BTreeMap;
use std::process::Output;

use vault::format::snapshot::TOTAL_BYTES_KEY;
use vault::repo::SnapshotFilter;

use super::{assert_code, one_line_error, Vault};

/// The run failed with `code`, said why (`cause`) in one line, and
/// recorded no snapshot.
pub fn assert_nothing_recorded(v: &Vault, out: &Output, code: i32, what: &str, cause: &str) {
    assert_code(out, code, what);
    let line = one_line_error(out);
    assert!(
        line.contains(cause),
        "{what}: error does not say why: {line}"
    );
    assert!(v.snapshots().is_empty(), "{what}: a snapshot was recorded");
}

/// The facts (`meta`) recorded with the newest snapshot, as text.
pub fn latest_meta(v: &Vault) -> BTreeMap<String, String> {
    let repo = v.library();
    let (_, snap) = repo
        .find_snapshot("latest", &SnapshotFilter::default())
        .unwrap();
    snap.meta
        .into_iter()
        .filter(|(k, _)| k != TOTAL_BYTES_KEY)
        .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
        .collect()
}
