//! What every failed database snapshot must look like from outside.

use std::process::Output;

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
