//! Where a PostgreSQL dump's streams live in a snapshot (README, "snapshot
//! pg"): `/<db>/pre-data.sql`, `/<db>/sequences.sql`, `/<db>/post-data.sql`,
//! `/<db>/data/<schema>.<table>`, `/<db>/roles.sql`,
//! `/<db>/large-objects/<oid>`, and `/globals.sql` for `--all`.
//!
//! Database, schema and table names may hold any character, but a file name
//! may not hold `/` and the dot separates schema from table. Every byte
//! outside `[A-Za-z0-9_-]` is written `%XX` (two uppercase hex digits), so
//! the mapping is reversible and a name is never empty, `.` or `..`.

pub const PRE_DATA: &str = "pre-data.sql";
pub const POST_DATA: &str = "post-data.sql";
pub const SEQUENCES: &str = "sequences.sql";
pub const DATA_DIR: &str = "data";
pub const GLOBALS: &str = "globals.sql";
pub const ROLES: &str = "roles.sql";
pub const LARGE_OBJECTS_DIR: &str = "large-objects";

pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The name `escape` made `escaped` from, if it is one of its outputs.
pub fn unescape(escaped: &str) -> Option<String> {
    let bytes = escaped.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = escaped.get(i + 1..i + 3)?;
            if hex.bytes().any(|c| c.is_ascii_lowercase()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The folder of one database.
pub fn database_dir(database: &str) -> String {
    escape(database)
}

/// A file of a database's folder (`PRE_DATA`, ...).
pub fn database_file(database: &str, file: &str) -> String {
    format!("{}/{file}", database_dir(database))
}

/// The file holding a table's rows in COPY text format.
pub fn table_data(database: &str, schema: &str, table: &str) -> String {
    format!(
        "{}/{DATA_DIR}/{}.{}",
        database_dir(database),
        escape(schema),
        escape(table)
    )
}

/// The file holding one large object's bytes, named by its oid.
pub fn large_object(database: &str, oid: u32) -> String {
    format!("{}/{LARGE_OBJECTS_DIR}/{oid}", database_dir(database))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(escape("public"), "public");
        assert_eq!(escape("a.b/c"), "a%2Eb%2Fc");
        assert_eq!(escape("é"), "%C3%A9");
        assert_eq!(table_data("db", "s", "t.1"), "db/data/s.t%2E1");
        assert_eq!(large_object("d b", 16384), "d%20b/large-objects/16384");
        assert_eq!(unescape("a%2e"), None);
        assert_eq!(unescape("a%2"), None);
    }

    proptest! {
        #[test]
        fn escaping_round_trips_and_is_a_safe_name(name in "\\PC{1,20}") {
            let e = escape(&name);
            prop_assert!(!e.contains('/') && !e.contains('.') && !e.is_empty());
            prop_assert_eq!(unescape(&e), Some(name));
        }
    }
}
