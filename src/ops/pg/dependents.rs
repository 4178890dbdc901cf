//! What a table restore with `--clean` must drop besides the tables asked
//! for: views and materialized views built on them (and views on those),
//! foreign keys of other tables pointing at them, and constraint triggers
//! of other tables naming them. Dropping a table with CASCADE would remove
//! these silently; instead they are found in the target, dropped by name,
//! and re-created from the snapshot's schema after the tables are back. A
//! dependent the snapshot does not hold makes the restore refuse, naming
//! it, before anything is dropped.

use std::collections::BTreeSet;

use crate::engines::pg::session::Session;
use crate::engines::pg::toc::{blocks, Name};
use crate::engines::pg::{from_hex, qualified, quote_ident, quote_literal};
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dependent {
    /// A view or materialized view; `depth` 1 is built on a restored
    /// table, 2 on such a view, ...
    View {
        depth: u32,
        schema: String,
        name: String,
        materialized: bool,
    },
    /// A foreign key (or constraint trigger) of another table.
    Constraint {
        schema: String,
        table: String,
        name: String,
        trigger: bool,
    },
}

impl std::fmt::Display for Dependent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dependent::View {
                schema,
                name,
                materialized,
                ..
            } => write!(
                f,
                "{} {schema}.{name}",
                if *materialized {
                    "materialized view"
                } else {
                    "view"
                }
            ),
            Dependent::Constraint {
                schema,
                table,
                name,
                trigger,
            } => write!(
                f,
                "{} {name} on {schema}.{table}",
                if *trigger {
                    "constraint trigger"
                } else {
                    "foreign key"
                }
            ),
        }
    }
}

/// The views on `tables` (recursively) and the constraints of other
/// tables pointing at them, as they are in the target database.
pub fn find(session: &mut Session, tables: &BTreeSet<Name>) -> Result<Vec<Dependent>> {
    let mut present = Vec::new();
    for (schema, table) in tables {
        let q = quote_literal(&qualified(schema, table));
        if session.value(&format!("SELECT to_regclass({q}) IS NOT NULL"))? == "t" {
            present.push(format!("to_regclass({q})"));
        }
    }
    if present.is_empty() {
        return Ok(vec![]);
    }
    let roots = present.join(", ");
    let hex = |col: &str| format!("encode(convert_to({col}, 'UTF8'), 'hex')");
    let mut out = Vec::new();
    let views = format!(
        "WITH RECURSIVE dep(oid, depth) AS ( \
           SELECT unnest(ARRAY[{roots}]::oid[]), 0 \
           UNION SELECT r.ev_class, dep.depth + 1 FROM dep \
             JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = dep.oid \
               AND d.classid = 'pg_rewrite'::regclass \
             JOIN pg_rewrite r ON r.oid = d.objid \
             WHERE r.ev_class <> dep.oid AND dep.depth < 100) \
         SELECT {}, {}, c.relkind = 'm', max(dep.depth) FROM dep \
           JOIN pg_class c ON c.oid = dep.oid JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE dep.depth > 0 AND c.relkind IN ('v', 'm') \
             AND c.oid <> ALL (ARRAY[{roots}]::oid[]) \
           GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2",
        hex("n.nspname"),
        hex("c.relname")
    );
    for row in session.query(&views)? {
        let f: Vec<&str> = row.split('|').collect();
        let [s, n, m, depth] = f[..] else {
            return Err(unexpected(&row));
        };
        out.push(Dependent::View {
            depth: depth.parse().map_err(|_| unexpected(&row))?,
            schema: from_hex(s)?,
            name: from_hex(n)?,
            materialized: m == "t",
        });
    }
    let constraints = format!(
        "SELECT {}, {}, {}, false FROM pg_constraint co \
           JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE co.contype = 'f' AND co.confrelid = ANY (ARRAY[{roots}]::oid[]) \
             AND co.conrelid <> ALL (ARRAY[{roots}]::oid[]) \
         UNION SELECT {}, {}, {}, true FROM pg_trigger t \
           JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE NOT t.tgisinternal AND t.tgconstrrelid = ANY (ARRAY[{roots}]::oid[]) \
             AND t.tgrelid <> ALL (ARRAY[{roots}]::oid[]) \
         ORDER BY 1, 2, 3",
        hex("n.nspname"),
        hex("c.relname"),
        hex("co.conname"),
        hex("n.nspname"),
        hex("c.relname"),
        hex("t.tgname"),
    );
    for row in session.query(&constraints)? {
        let f: Vec<&str> = row.split('|').collect();
        let [s, t, n, trigger] = f[..] else {
            return Err(unexpected(&row));
        };
        out.push(Dependent::Constraint {
            schema: from_hex(s)?,
            table: from_hex(t)?,
            name: from_hex(n)?,
            trigger: trigger == "t",
        });
    }
    Ok(out)
}

fn unexpected(row: &str) -> Error {
    Error::new(
        crate::ErrorKind::SourceFailed,
        format!("unexpected reply from the server: '{row}'"),
    )
}

/// Whether a schema block re-creates (part of) `dependent`.
fn recreates(kind: &str, block_schema: &str, block_name: &str, dependent: &Dependent) -> bool {
    match dependent {
        Dependent::View { schema, name, .. } => {
            block_schema == schema
                && match kind {
                    "VIEW" | "MATERIALIZED VIEW" | "MATERIALIZED VIEW DATA" => block_name == name,
                    "COMMENT" | "ACL" => {
                        ["VIEW", "MATERIALIZED VIEW", "TABLE"]
                            .iter()
                            .any(|k| block_name == format!("{k} {name}"))
                            || block_name.starts_with(&format!("COLUMN {name}."))
                    }
                    _ => false,
                }
        }
        Dependent::Constraint {
            schema,
            table,
            name,
            ..
        } => {
            block_schema == schema
                && matches!(kind, "FK CONSTRAINT" | "TRIGGER")
                && block_name == format!("{table} {name}")
        }
    }
}

/// The preamble (session settings) and the blocks of `sql` that re-create
/// `dependents`, in the dump's order (which respects their dependencies).
/// Indexes of a materialized view come with it. pg_dump's `\restrict`
/// pairs are left out: picked blocks would not keep them paired.
pub fn recreate(sql: &str, dependents: &[Dependent]) -> String {
    let (preamble, all) = blocks(sql);
    let mut out = String::new();
    if dependents.is_empty() {
        return out;
    }
    out.push_str(preamble);
    for b in all {
        let wanted = dependents.iter().any(|d| {
            recreates(b.kind, b.schema, b.name, d)
                || match d {
                    Dependent::View {
                        schema,
                        name,
                        materialized: true,
                        ..
                    } => {
                        b.kind == "INDEX"
                            && b.schema == schema
                            && (b.text.contains(&format!(
                                " ON {}.{} ",
                                quote_ident(schema),
                                quote_ident(name)
                            )) || b.text.contains(&format!(" ON {schema}.{name} ")))
                    }
                    _ => false,
                }
        });
        if wanted {
            out.push_str(b.text);
        }
    }
    out.split_inclusive('\n')
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .collect()
}

/// The dependents the snapshot's schema (`pre_data` and `post_data`)
/// cannot re-create.
pub fn missing<'a>(
    dependents: &'a [Dependent],
    pre_data: &str,
    post_data: &str,
) -> Vec<&'a Dependent> {
    let (_, pre) = blocks(pre_data);
    let (_, post) = blocks(post_data);
    dependents
        .iter()
        .filter(|d| {
            !pre.iter().chain(post.iter()).any(|b| {
                recreates(b.kind, b.schema, b.name, d)
                    && !matches!(b.kind, "COMMENT" | "ACL" | "MATERIALIZED VIEW DATA")
            })
        })
        .collect()
}

/// SQL dropping the dependents by name, deepest views first, so that
/// dropping the tables afterwards needs no CASCADE.
pub fn drop_sql(dependents: &[Dependent]) -> String {
    let mut out = String::new();
    for d in dependents {
        out.push_str(&match d {
            Dependent::View {
                schema,
                name,
                materialized,
                ..
            } => format!(
                "DROP {} {};\n",
                if *materialized {
                    "MATERIALIZED VIEW"
                } else {
                    "VIEW"
                },
                qualified(schema, name)
            ),
            Dependent::Constraint {
                schema,
                table,
                name,
                trigger: false,
            } => format!(
                "ALTER TABLE {} DROP CONSTRAINT {};\n",
                qualified(schema, table),
                quote_ident(name)
            ),
            Dependent::Constraint {
                schema,
                table,
                name,
                trigger: true,
            } => format!(
                "DROP TRIGGER {} ON {};\n",
                quote_ident(name),
                qualified(schema, table)
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const POST: &str = "SET x = 1;\n\n--\n-- Name: orders orders_person_fkey; Type: FK CONSTRAINT; Schema: public; Owner: o\n--\n\nALTER TABLE ONLY public.orders ADD CONSTRAINT orders_person_fkey FOREIGN KEY (person) REFERENCES public.people(id);\n\n--\n-- Name: stats_k; Type: INDEX; Schema: public; Owner: o\n--\n\nCREATE INDEX stats_k ON public.stats USING btree (k);\n\n--\n-- Name: stats; Type: MATERIALIZED VIEW DATA; Schema: public; Owner: o\n--\n\nREFRESH MATERIALIZED VIEW public.stats;\n";
    const PRE: &str = "SET x = 1;\n\n--\n-- Name: stats; Type: MATERIALIZED VIEW; Schema: public; Owner: o\n--\n\nCREATE MATERIALIZED VIEW public.stats AS SELECT 1 AS k WITH NO DATA;\n\n--\n-- Name: TABLE stats; Type: ACL; Schema: public; Owner: o\n--\n\nGRANT SELECT ON TABLE public.stats TO r;\n";

    fn view(name: &str) -> Dependent {
        Dependent::View {
            depth: 1,
            schema: "public".into(),
            name: name.into(),
            materialized: true,
        }
    }

    fn fk(name: &str) -> Dependent {
        Dependent::Constraint {
            schema: "public".into(),
            table: "orders".into(),
            name: name.into(),
            trigger: false,
        }
    }

    #[test]
    fn picks_the_blocks_that_recreate_each_dependent() {
        let deps = [view("stats"), fk("orders_person_fkey")];
        let pre = recreate(PRE, &deps);
        assert!(pre.contains("CREATE MATERIALIZED VIEW") && pre.contains("GRANT SELECT"));
        let post = recreate(POST, &deps);
        assert!(post.contains("orders_person_fkey") && post.contains("stats_k"));
        assert!(post.contains("REFRESH MATERIALIZED VIEW public.stats"));
        assert!(missing(&deps, PRE, POST).is_empty());
    }

    #[test]
    fn a_dependent_the_snapshot_lacks_is_named() {
        let deps = [view("stats"), view("newer"), fk("other_fkey")];
        let names: Vec<String> = missing(&deps, PRE, POST)
            .iter()
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "materialized view public.newer",
                "foreign key other_fkey on public.orders"
            ]
        );
        assert_eq!(
            drop_sql(&deps[..1]),
            "DROP MATERIALIZED VIEW \"public\".\"stats\";\n"
        );
    }
}
