//! A "schema zoo": a database holding the PostgreSQL features applications
//! use, snapshotted and restored onto a fresh server (which has none of its
//! roles), must come back as `pg_dump --create` would bring it back:
//! the dumps of both agree line for line. A drill of it passes, and the
//! drill's checks fail when a large object or a materialized view's data
//! is missing from a restored copy.

use crate::common;

use common::postgres::Postgres;
use common::*;
use vault::engines::pg::session::Session;
use vault::ops::pg::drill::verify_database;
use vault::ops::pg::recorded_facts;
use vault::repo::SnapshotFilter;
use vault::Repository;

const ROLES: &str = "CREATE ROLE appuser LOGIN; CREATE ROLE reader";

const ZOO: &str = r#"
ALTER DATABASE zoo SET work_mem TO '64MB';
ALTER DATABASE zoo SET search_path TO public, extra;
GRANT CONNECT, TEMPORARY ON DATABASE zoo TO reader;
COMMENT ON DATABASE zoo IS 'the schema zoo';
CREATE EXTENSION pg_trgm;
CREATE EXTENSION hstore;
CREATE EXTENSION postgres_fdw;
CREATE SCHEMA extra AUTHORIZATION appuser;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE people (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL,
  feeling mood, age posint, name_len int GENERATED ALWAYS AS (length(name)) STORED, tags hstore);
CREATE INDEX people_name_trgm ON people USING gin (name gin_trgm_ops);
COMMENT ON TABLE people IS 'who';
COMMENT ON COLUMN people.name IS 'their name';
INSERT INTO people (name, feeling, age, tags) SELECT 'p' || g, 'ok', g, 'a=>1' FROM generate_series(1, 100) g;
CREATE TABLE measurements (at date NOT NULL, v numeric) PARTITION BY RANGE (at);
CREATE TABLE measurements_2025 PARTITION OF measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO measurements SELECT '2025-06-01'::date + g, g FROM generate_series(1, 400) g;
CREATE TABLE animal (name text);
CREATE TABLE dog (bark text) INHERITS (animal);
INSERT INTO animal VALUES ('generic');
INSERT INTO dog VALUES ('rex', 'woof');
CREATE TABLE secrets (owner_name text, secret text);
ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;
CREATE POLICY own ON secrets USING (owner_name = current_user);
INSERT INTO secrets VALUES ('appuser', 's1');
CREATE PUBLICATION pub FOR TABLE people;
CREATE UNLOGGED TABLE cache (k text PRIMARY KEY, v text);
INSERT INTO cache VALUES ('a', 'b');
CREATE MATERIALIZED VIEW people_stats AS SELECT feeling, count(*) AS n FROM people GROUP BY feeling;
CREATE MATERIALIZED VIEW people_total AS SELECT sum(n) AS total FROM people_stats;
CREATE UNIQUE INDEX people_stats_feeling ON people_stats (feeling);
CREATE TABLE documents (id int PRIMARY KEY, body oid);
INSERT INTO documents VALUES
  (1, lo_from_bytea(0, convert_to(repeat('document one ', 100000), 'UTF8'))),
  (2, lo_from_bytea(0, '\x00ff00'::bytea)),
  (3, lo_from_bytea(0, ''::bytea));
ALTER LARGE OBJECT 16900 OWNER TO appuser;
CREATE FUNCTION noop_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$;
CREATE EVENT TRIGGER on_ddl ON ddl_command_end EXECUTE FUNCTION noop_ddl();
CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw OPTIONS (dbname 'zoo');
CREATE USER MAPPING FOR postgres SERVER loopback OPTIONS (user 'postgres');
CREATE FOREIGN TABLE remote_people (id int, name text) SERVER loopback OPTIONS (table_name 'people');
ALTER DEFAULT PRIVILEGES IN SCHEMA extra GRANT SELECT ON TABLES TO reader;
CREATE TABLE extra.owned (x int);
ALTER TABLE extra.owned OWNER TO appuser;
GRANT SELECT ON people TO reader;
CREATE VIEW people_view AS SELECT id, name FROM people;
CREATE TABLE orders (id serial PRIMARY KEY, person int REFERENCES people(id));
INSERT INTO orders (person) VALUES (1), (2);
"#;

fn build_zoo(pg: &Postgres) {
    pg.sql("postgres", ROLES);
    pg.sql("postgres", "CREATE DATABASE zoo OWNER appuser");
    // The large object owned by appuser gets a known oid.
    pg.sql("zoo", "SELECT lo_create(16900)");
    pg.sql("zoo", ZOO);
}

fn open_repo(v: &Vault) -> Repository {
    v.library()
}

#[test]
fn schema_zoo_restores_onto_a_fresh_server_as_pg_dump_would() {
    let Some(source) = Postgres::start() else {
        return;
    };
    let Some(fresh) = Postgres::start() else {
        return;
    };
    let v = Vault::init();
    build_zoo(&source);
    let expected = source.pg_dump_create("zoo");

    let out = source
        .vault(&v, &["--json", "snapshot", "pg", "--dbname", "zoo"])
        .output()
        .unwrap();
    assert_success(&out, "snapshot pg");
    let snap = parse_json(&out)["snapshot"].as_str().unwrap().to_string();

    // Large objects are files of their own, restorable alone.
    let ls = stdout(&v.ok(&["ls", &snap, "/zoo/large-objects"]));
    assert_eq!(ls.lines().count(), 4, "{ls}");
    let restored = fresh
        .vault(&v, &["restore", "pg", &snap, "--dbname", "zoo", "--create"])
        .output()
        .unwrap();
    assert_success(&restored, "restore pg --create onto a fresh server");
    Postgres::assert_same_dump(&expected, &fresh.pg_dump_create("zoo"));
    assert_eq!(
        fresh.sql("zoo", "SELECT total FROM people_total"),
        "100",
        "materialized views hold their data"
    );
    assert_eq!(
        fresh.sql(
            "zoo",
            "SELECT length(lo_get(body)) FROM documents ORDER BY id"
        ),
        "1300000\n3\n0"
    );

    // The drill's own scratch server lacks the roles too; it passes.
    let drill = source.vault_json(&v, &["drill", "pg", &snap]);
    assert_eq!(drill["passed"], true, "{drill}");
    let names: Vec<&str> = drill["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for wanted in [
        "schema zoo",
        "large objects zoo",
        "materialized view zoo.public.people_stats",
    ] {
        assert!(names.contains(&wanted), "{wanted} not among {names:?}");
    }

    // What the drill checks catches a lost large object and a lost
    // materialized view's data.
    let repo = open_repo(&v);
    let (_, snapshot) = repo
        .find_snapshot(&snap, &SnapshotFilter::default())
        .unwrap();
    let facts = recorded_facts(&snapshot).unwrap();
    let mut session = Session::open(&fresh.conn(), Some("zoo")).unwrap();
    let failed = |session: &mut Session| -> Vec<String> {
        verify_database(session, &facts[0])
            .into_iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect()
    };
    assert_eq!(failed(&mut session), Vec::<String>::new());
    session
        .query("SELECT lo_unlink(body) FROM documents WHERE id = 2")
        .unwrap();
    assert_eq!(failed(&mut session), ["large objects zoo"]);
    session
        .query("REFRESH MATERIALIZED VIEW people_total WITH NO DATA")
        .unwrap();
    assert_eq!(
        failed(&mut session),
        [
            "large objects zoo",
            "materialized view zoo.public.people_total"
        ]
    );
    session
        .query("ALTER TABLE people ADD COLUMN extra int")
        .unwrap();
    assert!(failed(&mut session).contains(&"schema zoo".to_string()));
    session.close().unwrap();

    // Large objects restore on their own, with their owner.
    fresh.vault_json(
        &v,
        &[
            "restore",
            "pg",
            &snap,
            "--dbname",
            "docs",
            "--create",
            "--large-objects",
        ],
    );
    assert_eq!(
        fresh.sql(
            "docs",
            "SELECT count(*), sum(length(lo_get(oid))) FROM pg_largeobject_metadata"
        ),
        "4|1300003"
    );
    assert_eq!(
        fresh.sql(
            "docs",
            "SELECT pg_get_userbyid(lomowner) FROM pg_largeobject_metadata WHERE oid = 16900"
        ),
        "appuser"
    );
    assert_eq!(
        fresh.sql(
            "docs",
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );
}

#[test]
fn rows_vault_cannot_carry_are_named_and_the_snapshot_exits_3() {
    let Some(pg) = Postgres::start() else { return };
    let v = Vault::init();
    pg.createdb("app");
    // What pg_extension_config_dump() records for an extension's
    // configuration table, whose rows pg_dump stores.
    pg.sql(
        "app",
        "CREATE EXTENSION hstore; \
         CREATE TABLE ext_settings (k text); INSERT INTO ext_settings VALUES ('x'); \
         ALTER EXTENSION hstore ADD TABLE ext_settings; \
         UPDATE pg_extension SET extconfig = ARRAY['ext_settings'::regclass::oid], \
           extcondition = ARRAY[''] WHERE extname = 'hstore'",
    );
    let out = pg
        .vault(&v, &["snapshot", "pg", "--dbname", "app"])
        .output()
        .unwrap();
    assert_code(
        &out,
        3,
        "snapshot of a database with extension configuration rows",
    );
    assert!(
        stderr(&out).contains("public.ext_settings") && stderr(&out).contains("hstore"),
        "{}",
        stderr(&out)
    );
}
