//! Picking one table's objects out of a plain pg_dump schema, for restoring
//! single tables. pg_dump heads every object with a comment block:
//!
//! ```text
//! --
//! -- Name: pgbench_accounts pgbench_accounts_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres
//! --
//! ```
//!
//! Objects that belong to a table carry its name first (`<table> <name>`),
//! except indexes, recognised by `ON <schema>.<table>` in their statement.
//! The preamble before the first object (the `SET` lines) is always kept.
//!
//! The sequences file vault writes has one `setval` line per sequence,
//! ending with `-- vault: <seq> <owner>` (hex `schema.name` pairs, `-` when
//! no table owns the sequence), so a table's sequences can be picked too.

use std::collections::BTreeSet;

use super::{from_hex, quote_ident};

pub type Name = (String, String);

pub struct Block<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub schema: &'a str,
    pub text: &'a str,
}

/// Split a dump into its preamble and object blocks.
pub fn blocks(sql: &str) -> (&str, Vec<Block<'_>>) {
    let mut starts = Vec::new();
    let mut offset = 0;
    let mut previous: Option<(usize, &str)> = None;
    for line in sql.split_inclusive('\n') {
        if let (Some((prev_at, "--\n")), Some(header)) = (previous, line.strip_prefix("-- Name: "))
        {
            starts.push((prev_at, header.trim_end()));
        }
        previous = Some((offset, line));
        offset += line.len();
    }
    let preamble_end = starts.first().map_or(sql.len(), |s| s.0);
    let mut out = Vec::new();
    for (i, &(at, header)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(sql.len(), |s| s.0);
        let (name, kind, schema) = parse_header(header);
        out.push(Block {
            name,
            kind,
            schema,
            text: &sql[at..end],
        });
    }
    (&sql[..preamble_end], out)
}

/// `X; Type: T; Schema: S; Owner: O` into (X, T, S), reading from the right
/// so a name holding `; ` still parses.
fn parse_header(header: &str) -> (&str, &str, &str) {
    let rest = header.rsplit_once("; Owner: ").map_or(header, |(r, _)| r);
    let (rest, schema) = rest.rsplit_once("; Schema: ").unwrap_or((rest, ""));
    let (name, kind) = rest.rsplit_once("; Type: ").unwrap_or((rest, ""));
    (name, kind, schema)
}

/// The ways pg_dump may write `schema.table`: each part quoted only when
/// it must be, which we cannot always tell, so all four.
fn qualified_forms(schema: &str, table: &str) -> Vec<String> {
    let mut out = Vec::new();
    for s in [schema.to_string(), quote_ident(schema)] {
        for t in [table.to_string(), quote_ident(table)] {
            out.push(format!("{s}.{t}"));
        }
    }
    out
}

fn belongs_to_table(block: &Block<'_>, schema: &str, table: &str) -> bool {
    if block.schema != schema {
        return false;
    }
    let owned_prefix = format!("{table} ");
    match block.kind {
        "TABLE" | "ROW SECURITY" => block.name == table,
        "DEFAULT" | "CONSTRAINT" | "FK CONSTRAINT" | "TRIGGER" | "RULE" | "POLICY" => {
            block.name.starts_with(&owned_prefix)
        }
        "COMMENT" | "ACL" => {
            block.name == format!("TABLE {table}")
                || block.name.starts_with(&format!("COLUMN {table}."))
        }
        "INDEX" => qualified_forms(schema, table).iter().any(|q| {
            block.text.contains(&format!(" ON {q} "))
                || block.text.contains(&format!(" ON ONLY {q} "))
        }),
        _ => false,
    }
}

/// The preamble and the blocks of `sql` that belong to `tables` or are
/// one of `sequences`.
pub fn select(sql: &str, tables: &BTreeSet<Name>, sequences: &BTreeSet<Name>) -> String {
    let (preamble, all) = blocks(sql);
    let mut out = preamble.to_string();
    for b in all {
        let is_sequence = matches!(b.kind, "SEQUENCE" | "SEQUENCE OWNED BY")
            && sequences.contains(&(b.schema.to_string(), b.name.to_string()));
        if is_sequence || tables.iter().any(|(s, t)| belongs_to_table(&b, s, t)) {
            out.push_str(b.text);
        }
    }
    out
}

/// The blocks of `sql` that create the large objects: `lo_create`, owner,
/// comments, grants.
pub fn select_large_objects(sql: &str) -> String {
    let (_, all) = blocks(sql);
    all.iter()
        .filter(|b| match b.kind {
            "BLOB" => true,
            "COMMENT" | "ACL" | "SECURITY LABEL" => b.name.starts_with("LARGE OBJECT "),
            _ => false,
        })
        .map(|b| b.text)
        .collect()
}

/// The `-- vault:` trailer of a sequences line.
pub fn sequence_trailer(sequence: &(String, String), owner: Option<&(String, String)>) -> String {
    let hex = |(s, n): &(String, String)| format!("{}.{}", hex::encode(s), hex::encode(n));
    format!(
        " -- vault: {} {}",
        hex(sequence),
        owner.map_or("-".to_string(), hex)
    )
}

fn parse_pair(s: &str) -> Option<Name> {
    let (a, b) = s.split_once('.')?;
    Some((from_hex(a).ok()?, from_hex(b).ok()?))
}

/// The lines of a sequences file for sequences `tables` own, and the names
/// of those sequences.
pub fn select_sequences(sequences_sql: &str, tables: &BTreeSet<Name>) -> (String, BTreeSet<Name>) {
    let mut out = String::new();
    let mut names = BTreeSet::new();
    for line in sequences_sql.lines() {
        let Some((_, trailer)) = line.rsplit_once(" -- vault: ") else {
            continue;
        };
        let Some((seq, owner)) = trailer.split_once(' ') else {
            continue;
        };
        let (Some(seq), Some(owner)) = (parse_pair(seq), parse_pair(owner)) else {
            continue;
        };
        if tables.contains(&owner) {
            out.push_str(line);
            out.push('\n');
            names.insert(seq);
        }
    }
    (out, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRE: &str = "SET statement_timeout = 0;\n\n--\n-- Name: t; Type: TABLE; Schema: public; Owner: postgres\n--\n\nCREATE TABLE public.t (id integer NOT NULL);\n\n--\n-- Name: t_id_seq; Type: SEQUENCE; Schema: public; Owner: postgres\n--\n\nCREATE SEQUENCE public.t_id_seq;\n\n--\n-- Name: t_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: postgres\n--\n\nALTER SEQUENCE public.t_id_seq OWNED BY public.t.id;\n\n--\n-- Name: u; Type: TABLE; Schema: public; Owner: postgres\n--\n\nCREATE TABLE public.u (x text);\n\n--\n-- Name: t id; Type: DEFAULT; Schema: public; Owner: postgres\n--\n\nALTER TABLE ONLY public.t ALTER COLUMN id SET DEFAULT nextval('public.t_id_seq');\n";
    const POST: &str = "SET x = 1;\n\n--\n-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: postgres\n--\n\nALTER TABLE ONLY public.t ADD CONSTRAINT t_pkey PRIMARY KEY (id);\n\n--\n-- Name: u_x; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE INDEX u_x ON public.u USING btree (x);\n\n--\n-- Name: t_i; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE INDEX t_i ON public.t USING btree (id);\n";

    fn set(items: &[(&str, &str)]) -> BTreeSet<Name> {
        items
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn header_parts_read_from_the_right() {
        assert_eq!(
            parse_header("a; Type: b; Type: TABLE; Schema: s; Owner: o"),
            ("a; Type: b", "TABLE", "s")
        );
    }

    #[test]
    fn picks_a_table_its_sequence_default_constraint_and_index() {
        let tables = set(&[("public", "t")]);
        let pre = select(PRE, &tables, &set(&[("public", "t_id_seq")]));
        assert!(pre.starts_with("SET statement_timeout"));
        assert!(pre.contains("CREATE TABLE public.t "));
        assert!(pre.contains("CREATE SEQUENCE public.t_id_seq"));
        assert!(pre.contains("OWNED BY public.t.id"));
        assert!(pre.contains("SET DEFAULT nextval"));
        assert!(!pre.contains("public.u"));
        let post = select(POST, &tables, &BTreeSet::new());
        assert!(post.contains("t_pkey") && post.contains("CREATE INDEX t_i"));
        assert!(!post.contains("u_x"));
    }

    #[test]
    fn large_objects_come_with_their_owner_and_grants() {
        let pre = "SET x = 1;\n\n--\n-- Name: 16400; Type: BLOB; Schema: -; Owner: app\n--\n\nSELECT pg_catalog.lo_create('16400');\n\n--\n-- Name: LARGE OBJECT 16400; Type: ACL; Schema: -; Owner: app\n--\n\nGRANT SELECT ON LARGE OBJECT 16400 TO r;\n\n--\n-- Name: TABLE t; Type: ACL; Schema: public; Owner: app\n--\n\nGRANT SELECT ON TABLE public.t TO r;\n";
        let picked = select_large_objects(pre);
        assert!(picked.contains("lo_create('16400')") && picked.contains("ON LARGE OBJECT 16400"));
        assert!(!picked.contains("SET x") && !picked.contains("public.t"));
    }

    #[test]
    fn sequences_follow_their_owner() {
        let t = ("public".to_string(), "t".to_string());
        let s = ("public".to_string(), "t_id_seq".to_string());
        let file = format!(
            "SELECT 1;{}\nSELECT 2;{}\n",
            sequence_trailer(&s, Some(&t)),
            sequence_trailer(&("public".into(), "free".into()), None)
        );
        let (lines, names) = select_sequences(&file, &set(&[("public", "t")]));
        assert!(lines.starts_with("SELECT 1;") && !lines.contains("SELECT 2"));
        assert_eq!(names, set(&[("public", "t_id_seq")]));
    }
}
