//! What vault asks a database at dump time, and a drill asks the restored
//! copy: the roles its objects need, its large objects, its materialized
//! views, and a fingerprint of its schema. The same queries serve both
//! sides, so a difference means the restore lost something.

use super::session::Session;
use super::{from_hex, quote_ident, quote_literal};
use crate::error::{Error, ErrorKind, Result};

/// Schemas that hold the database's own objects.
const USER_SCHEMA: &str = "n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'";

/// Every role that owns something in the database, is granted something,
/// or is named by a policy, user mapping or default privilege (all
/// recorded in pg_shdepend), and the database's owner. The bootstrap
/// superuser, which owns what initdb made, is recorded nowhere: added.
const ROLES_SQL: &str = "WITH db AS (SELECT oid, datdba FROM pg_database WHERE datname = current_database()) \
     SELECT encode(convert_to(r.rolname, 'UTF8'), 'hex'), r.rolsuper, r.rolinherit, r.rolcreaterole, \
       r.rolcreatedb, r.rolcanlogin, r.rolreplication, r.rolbypassrls, r.rolconnlimit \
     FROM pg_roles r WHERE r.oid IN ( \
       SELECT d.refobjid FROM pg_shdepend d, db WHERE d.refclassid = 'pg_authid'::regclass \
         AND (d.dbid = db.oid OR (d.dbid = 0 AND d.classid = 'pg_database'::regclass AND d.objid = db.oid)) \
       UNION SELECT datdba FROM db UNION SELECT 10) \
     ORDER BY r.rolname";

/// SQL that creates each role the database needs where it is missing, with
/// the attributes it had (never a password, which only a superuser could
/// read; never superuser, replication or RLS bypass). Existing roles are
/// left as they are.
pub fn roles_sql(session: &mut Session) -> Result<String> {
    let mut out = String::new();
    for row in session.query(ROLES_SQL)? {
        let f: Vec<&str> = row.split('|').collect();
        let [name, _super, inherit, createrole, createdb, login, _replication, _bypassrls, connlimit] =
            f[..]
        else {
            return Err(unexpected(&row));
        };
        let name = from_hex(name)?;
        let flag = |v: &str, yes: &str| {
            if v == "t" {
                yes.to_string()
            } else {
                format!("NO{yes}")
            }
        };
        // A restore never makes a role more powerful than an ordinary
        // one: superuser, replication and RLS bypass are for an
        // administrator to grant (`--all` carries them in globals.sql).
        let attributes = [
            "NOSUPERUSER".to_string(),
            flag(inherit, "INHERIT"),
            flag(createrole, "CREATEROLE"),
            flag(createdb, "CREATEDB"),
            flag(login, "LOGIN"),
            "NOREPLICATION NOBYPASSRLS".to_string(),
            format!("CONNECTION LIMIT {connlimit}"),
        ]
        .join(" ");
        // psql runs the statement the query returns, if any (`\gexec`).
        out.push_str(&format!(
            "SELECT format('CREATE ROLE %I WITH {attributes}', {lit}) \
             WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = {lit})\\gexec\n",
            lit = quote_literal(&name),
        ));
    }
    Ok(out)
}

/// The large objects' oids, in order.
pub fn large_objects(session: &mut Session) -> Result<Vec<u32>> {
    session
        .query("SELECT oid FROM pg_catalog.pg_largeobject_metadata ORDER BY oid")?
        .iter()
        .map(|o| o.parse().map_err(|_| unexpected(o)))
        .collect()
}

/// How many large objects the database holds and their total size.
pub fn large_object_totals(session: &mut Session) -> Result<(u64, u64)> {
    // INV_READ (0x40000); descriptors close when the statement's
    // transaction ends.
    let row = session.value(
        "SELECT count(*) || '|' || coalesce(sum(pg_catalog.lo_lseek64(pg_catalog.lo_open(oid, 262144), 0, 2)), 0) \
         FROM pg_catalog.pg_largeobject_metadata",
    )?;
    let (count, bytes) = row.split_once('|').ok_or_else(|| unexpected(&row))?;
    Ok((
        count.parse().map_err(|_| unexpected(&row))?,
        bytes.parse().map_err(|_| unexpected(&row))?,
    ))
}

/// The materialized views holding data, as (schema, name).
pub fn populated_matviews(session: &mut Session) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for row in session.query(&format!(
        "SELECT encode(convert_to(n.nspname, 'UTF8'), 'hex'), encode(convert_to(c.relname, 'UTF8'), 'hex') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'm' AND c.relispopulated AND {USER_SCHEMA} ORDER BY 1, 2"
    ))? {
        let (s, t) = row.split_once('|').ok_or_else(|| unexpected(&row))?;
        out.push((from_hex(s)?, from_hex(t)?));
    }
    Ok(out)
}

/// Whether a materialized view holds data (None: it does not exist).
pub fn matview_populated(session: &mut Session, schema: &str, name: &str) -> Result<Option<bool>> {
    let rows = session.query(&format!(
        "SELECT c.relispopulated FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'm' AND n.nspname = {} AND c.relname = {}",
        quote_literal(schema),
        quote_literal(name)
    ))?;
    Ok(rows.first().map(|v| v == "t"))
}

/// Tables whose rows pg_dump would store but vault does not: the
/// configuration tables extensions mark for dumping (their rows are user
/// data, but the table belongs to the extension), named with their
/// extension, when they hold rows.
pub fn uncarried(session: &mut Session) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for row in session.query(
        "SELECT encode(convert_to(format('%I.%I', n.nspname, c.relname), 'UTF8'), 'hex'), \
           encode(convert_to(e.extname, 'UTF8'), 'hex') \
         FROM pg_extension e CROSS JOIN LATERAL unnest(e.extconfig) AS cfg(oid) \
         JOIN pg_class c ON c.oid = cfg.oid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' ORDER BY 1",
    )? {
        let (t, e) = row.split_once('|').ok_or_else(|| unexpected(&row))?;
        let (table, extension) = (from_hex(t)?, from_hex(e)?);
        let rows = session.value(&format!(
            "SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1) x"
        ))?;
        if rows != "0" {
            out.push(format!(
                "rows of table {table}, configuration of extension {}, are not stored",
                quote_ident(&extension)
            ));
        }
    }
    Ok(out)
}

/// Lines describing the schema by names and definitions (never oids),
/// whose md5 is the fingerprint. Sorted on the server, so the order of
/// creation does not matter.
const FINGERPRINT_SQL: &str = "SELECT md5(coalesce(string_agg(x, E'\\n' ORDER BY x), '')) FROM ( \
  SELECT format('rel %I.%I %s %s %s %s %s %s %s', n.nspname, c.relname, c.relkind, c.relpersistence, \
      c.relrowsecurity, c.relforcerowsecurity, c.relacl, obj_description(c.oid, 'pg_class'), \
      CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END) \
      || coalesce(' ' || pg_get_expr(c.relpartbound, c.oid), '') \
      || coalesce(' ' || CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END, '') AS x \
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'c') AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' \
  UNION ALL SELECT format('col %I.%I %s %s %s %s %s %s %s', n.nspname, c.relname, a.attname, \
      format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity, a.attgenerated, \
      pg_get_expr(d.adbin, d.adrelid), col_description(c.oid, a.attnum)) \
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
    WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') \
      AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' \
  UNION ALL SELECT format('con %I %s %s', n.nspname, co.conname, pg_get_constraintdef(co.oid)) \
      || coalesce(' on ' || co.conrelid::regclass::text, '') || coalesce(' type ' || co.contypid::regtype::text, '') \
    FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace \
    WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' \
  UNION ALL SELECT 'idx ' || pg_get_indexdef(i.indexrelid) FROM pg_index i \
    JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' \
  UNION ALL SELECT 'trg ' || pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text FROM pg_trigger t \
    JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE NOT t.tgisinternal AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' \
  UNION ALL SELECT format('fn %I.%I(%s) %s %s %s', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), \
      p.prokind, md5(coalesce(p.prosrc, '')), p.proacl) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
    WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' \
  UNION ALL SELECT format('type %I.%I %s %s', n.nspname, t.typname, t.typtype, \
      (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid)) \
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
    WHERE t.typtype IN ('e', 'd', 'r', 'c') AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' \
  UNION ALL SELECT format('pol %s %s %s %s %s', po.polrelid::regclass, po.polname, po.polcmd, \
      pg_get_expr(po.polqual, po.polrelid), pg_get_expr(po.polwithcheck, po.polrelid)) FROM pg_policy po \
  UNION ALL SELECT format('inh %s %s %s', i.inhrelid::regclass, i.inhparent::regclass, i.inhseqno) FROM pg_inherits i \
  UNION ALL SELECT format('nsp %I %s %s', n.nspname, pg_get_userbyid(n.nspowner), n.nspacl) FROM pg_namespace n \
    WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' \
  UNION ALL SELECT format('ext %I %s', extname, extversion) FROM pg_extension \
  UNION ALL SELECT format('evt %I %s %s %s', evtname, evtevent, evtenabled, evtfoid::regproc) FROM pg_event_trigger \
  UNION ALL SELECT format('pub %I %s %s', p.pubname, p.puballtables, \
      (SELECT string_agg(t.schemaname || '.' || t.tablename, ',' ORDER BY 1) FROM pg_publication_tables t WHERE t.pubname = p.pubname)) \
    FROM pg_publication p \
  UNION ALL SELECT format('fdw %I %s', srvname, srvoptions) FROM pg_foreign_server \
  UNION ALL SELECT format('dacl %s %s %s %s', pg_get_userbyid(defaclrole), defaclnamespace::regnamespace, defaclobjtype, defaclacl) FROM pg_default_acl \
) facts";

/// The schema's fingerprint: equal for a database and a faithful restore.
pub fn fingerprint(session: &mut Session) -> Result<String> {
    session.value(FINGERPRINT_SQL)
}

fn unexpected(row: &str) -> Error {
    Error::new(
        ErrorKind::SourceFailed,
        format!("unexpected reply from the server: '{row}'"),
    )
}
