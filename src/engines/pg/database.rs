//! The database itself as `pg_dump --create` writes it: `CREATE DATABASE`
//! with its encoding and locale, its owner, `ALTER DATABASE ... SET`, its
//! comment, security labels and grants. They sit in the pre-data schema
//! among the other objects, each followed by a `\connect` to the database;
//! a restore runs them separately, under the target's name, so they are
//! split off here.

use super::quote_ident;
use super::toc::{blocks, Block};

/// The database's statements, split by when a restore runs them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DatabaseSql {
    /// `CREATE DATABASE` and `ALTER DATABASE ... OWNER TO`: before anything
    /// else, and only when the restore creates the database.
    pub create: String,
    /// Settings, comment, security labels and grants: after everything
    /// else, so a setting such as `default_transaction_read_only` cannot
    /// get in the restore's way.
    pub properties: String,
}

fn is_database_block(b: &Block<'_>) -> bool {
    match b.kind {
        "DATABASE" | "DATABASE PROPERTIES" => b.schema == "-",
        "COMMENT" | "ACL" | "SECURITY LABEL" => b.schema == "-" && b.name.starts_with("DATABASE "),
        _ => false,
    }
}

/// A block's statements, and from its first psql meta-command on
/// (`\unrestrict`, `\connect`, then the session settings pg_dump repeats
/// after a `\connect`) what belongs to the session rather than the block.
fn statements(text: &str) -> (&str, &str) {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with('\\') {
            break;
        }
        at += line.len();
    }
    text.split_at(at)
}

/// Split a pre-data schema into the database's statements and the rest
/// (everything a restore runs inside the database, without `\connect`).
/// A schema dumped without `--create` has no database statements.
pub fn split(pre_data: &str) -> (DatabaseSql, String) {
    let (preamble, all) = blocks(pre_data);
    let mut database = DatabaseSql::default();
    let mut rest = String::with_capacity(pre_data.len());
    rest.push_str(preamble);
    for b in all {
        if !is_database_block(&b) {
            rest.push_str(b.text);
            continue;
        }
        let (sql, session) = statements(b.text);
        if b.kind == "DATABASE" {
            database.create.push_str(sql);
        } else {
            database.properties.push_str(sql);
        }
        rest.push_str(session);
    }
    let rest = rest
        .split_inclusive('\n')
        .filter(|l| !l.starts_with("\\connect "))
        .collect();
    (database, rest)
}

/// The ways pg_dump may have written the database's name: quoted only when
/// it must be, which we cannot always tell.
fn name_forms(name: &str) -> Vec<String> {
    let mut forms = vec![quote_ident(name)];
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if plain {
        forms.push(name.to_string());
    }
    forms
}

/// `sql` with every `DATABASE <from>` naming `to` instead.
pub fn rename(sql: &str, from: &str, to: &str) -> String {
    let target = format!("DATABASE {}", quote_ident(to));
    let mut out = sql.to_string();
    for form in name_forms(from) {
        let needle = format!("DATABASE {form}");
        let mut result = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(&needle) {
            let after = &rest[at + needle.len()..];
            let ends_name = after
                .chars()
                .next()
                .is_none_or(|c| c == ' ' || c == ';' || c == '\n');
            result.push_str(&rest[..at]);
            result.push_str(if ends_name { &target } else { &needle });
            rest = after;
        }
        result.push_str(rest);
        out = result;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRE: &str = "SET statement_timeout = 0;\n\\restrict K\n\n--\n-- Name: zoo; Type: DATABASE; Schema: -; Owner: app\n--\n\nCREATE DATABASE zoo WITH TEMPLATE = template0 ENCODING = 'UTF8';\n\n\nALTER DATABASE zoo OWNER TO app;\n\n\\unrestrict K\n\\connect zoo\n\\restrict K\n\nSET statement_timeout = 0;\n\n--\n-- Name: DATABASE zoo; Type: COMMENT; Schema: -; Owner: app\n--\n\nCOMMENT ON DATABASE zoo IS 'x;\ny';\n\n\n--\n-- Name: zoo; Type: DATABASE PROPERTIES; Schema: -; Owner: app\n--\n\nALTER DATABASE zoo SET work_mem TO '64MB';\n\n\n\\unrestrict K\n\\connect zoo\n\\restrict K\n\nSET statement_timeout = 0;\n\n--\n-- Name: t; Type: TABLE; Schema: public; Owner: app\n--\n\nCREATE TABLE public.t (id integer);\n\n--\n-- Name: DATABASE zoo; Type: ACL; Schema: -; Owner: app\n--\n\nGRANT CONNECT ON DATABASE zoo TO reader;\n\n\\unrestrict K\n";

    #[test]
    fn database_statements_are_split_off_in_order() {
        let (db, rest) = split(PRE);
        assert!(db.create.contains("CREATE DATABASE zoo WITH"));
        assert!(db.create.contains("OWNER TO app"));
        assert!(!db.create.contains('\\') && !db.create.contains("SET "));
        assert!(db.properties.contains("COMMENT ON DATABASE"));
        assert!(db.properties.contains("SET work_mem"));
        assert!(db.properties.contains("GRANT CONNECT"));
        assert!(rest.contains("CREATE TABLE public.t"));
        assert!(!rest.contains("DATABASE") && !rest.contains("\\connect"));
        assert_eq!(rest.matches("\\restrict K").count(), 3);
        assert_eq!(rest.matches("\\unrestrict K").count(), 3);
    }

    #[test]
    fn a_schema_without_create_has_no_database_part() {
        let plain = "SET x = 1;\n\n--\n-- Name: t; Type: TABLE; Schema: public; Owner: app\n--\n\nCREATE TABLE public.t ();\n";
        let (db, rest) = split(plain);
        assert_eq!(db, DatabaseSql::default());
        assert_eq!(rest, plain);
    }

    #[test]
    fn renaming_touches_only_the_database_name() {
        let (db, _) = split(PRE);
        let renamed = rename(&db.properties, "zoo", "zoo copy");
        assert!(renamed.contains("COMMENT ON DATABASE \"zoo copy\" IS 'x;\ny'"));
        assert!(renamed.contains("ALTER DATABASE \"zoo copy\" SET work_mem"));
        assert_eq!(
            rename("ALTER DATABASE zoo2 SET x;", "zoo", "y"),
            "ALTER DATABASE zoo2 SET x;"
        );
        assert_eq!(
            rename("ALTER DATABASE \"Z z\" OWNER TO a;", "Z z", "n"),
            "ALTER DATABASE \"n\" OWNER TO a;"
        );
    }
}
