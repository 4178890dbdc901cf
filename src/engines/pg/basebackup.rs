//! Physical base backups: what the server must allow before one is taken,
//! the `pg_basebackup` run that streams it (tar to standard output, no
//! WAL: the WAL comes from the archive), and the WAL range its backup
//! manifest names.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use super::session::Session;
use super::{program, PgConn, CLIENT_ENV, MAINTENANCE_DB};
use crate::error::{Error, ErrorKind, Result};

/// What a base backup records about the server it came from, and what
/// decides whether one can be taken at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    pub wal_level: String,
    pub max_wal_senders: u32,
    /// The connecting role is a superuser or has REPLICATION.
    pub may_replicate: bool,
    pub role: String,
    /// Tablespaces besides pg_default and pg_global.
    pub tablespaces: Vec<String>,
    pub system_identifier: u64,
    pub wal_segment_size: u64,
    pub server_version: String,
}

const FACTS_SQL: &str = "SELECT current_setting('wal_level'), \
     current_setting('max_wal_senders'), \
     coalesce((SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user), false), \
     encode(convert_to(current_user, 'UTF8'), 'hex'), \
     (SELECT system_identifier FROM pg_control_system()), \
     (SELECT bytes_per_wal_segment FROM pg_control_init()), \
     current_setting('server_version')";

const TABLESPACES_SQL: &str = "SELECT encode(convert_to(spcname, 'UTF8'), 'hex') \
     FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY 1";

fn unexpected(what: &str, row: &str) -> Error {
    Error::new(
        ErrorKind::SourceFailed,
        format!("unexpected {what} from the server: '{row}'"),
    )
}

/// Ask the server over an ordinary connection.
pub fn server_facts(conn: &PgConn) -> Result<ServerFacts> {
    let database = conn.dbname.is_none().then_some(MAINTENANCE_DB);
    let mut s = Session::open(conn, database)?;
    let row = s.value(FACTS_SQL)?;
    let f: Vec<&str> = row.split('|').collect();
    let [wal_level, senders, may, role, sysid, segment, version] = f[..] else {
        return Err(unexpected("facts", &row));
    };
    let tablespaces = s
        .query(TABLESPACES_SQL)?
        .iter()
        .map(|h| super::from_hex(h))
        .collect::<Result<_>>()?;
    s.close()?;
    Ok(ServerFacts {
        wal_level: wal_level.to_string(),
        max_wal_senders: senders
            .parse()
            .map_err(|_| unexpected("max_wal_senders", senders))?,
        may_replicate: may == "t",
        role: super::from_hex(role)?,
        tablespaces,
        system_identifier: sysid
            .parse()
            .map_err(|_| unexpected("system identifier", sysid))?,
        wal_segment_size: segment
            .parse()
            .map_err(|_| unexpected("segment size", segment))?,
        server_version: version.to_string(),
    })
}

/// Why no base backup can be taken from this server, as one line.
pub fn refusal(f: &ServerFacts) -> Option<String> {
    if f.wal_level == "minimal" {
        return Some(
            "the server's wal_level is minimal: a base backup needs wal_level = replica \
             (set it and restart the server)"
                .into(),
        );
    }
    if f.max_wal_senders == 0 {
        return Some(
            "the server's max_wal_senders is 0: a base backup needs a WAL sender \
             (set max_wal_senders = 10 and restart the server)"
                .into(),
        );
    }
    if !f.may_replicate {
        return Some(format!(
            "role '{}' may not take base backups: it needs the REPLICATION attribute \
             (ALTER ROLE ... REPLICATION) and a 'replication' line in pg_hba.conf",
            f.role
        ));
    }
    None
}

/// pg_basebackup writing tar, without WAL, after a fast checkpoint, into
/// `target`: `-` for one stream (the data directory, its backup label and
/// manifest) on standard output, which only a cluster without tablespaces
/// allows; else a new folder, where it writes `base.tar`, one `OID.tar`
/// per tablespace and `backup_manifest`. `-d` is passed on only when it
/// carries connection options (a URI or `key=value` string): a base
/// backup has no database.
pub fn basebackup_command(conn: &PgConn, target: &Path) -> Result<Command> {
    let mut cmd = Command::new(program("pg_basebackup")?);
    let mut args: Vec<OsString> = vec![
        "-Ft".into(),
        "-D".into(),
        target.as_os_str().to_owned(),
        "-X".into(),
        "none".into(),
        "-c".into(),
        "fast".into(),
        "-w".into(),
        "-l".into(),
        "vault base backup".into(),
    ];
    let with_options = conn
        .dbname
        .as_deref()
        .is_some_and(|d| d.contains('=') || d.starts_with("postgres"));
    let trimmed = PgConn {
        dbname: if with_options {
            conn.dbname.clone()
        } else {
            None
        },
        ..conn.clone()
    };
    args.extend(trimmed.args(None));
    cmd.args(args).envs(CLIENT_ENV.iter().copied());
    Ok(cmd)
}

/// The cluster's size on disk, every tablespace included, when the role
/// may ask (pg_tablespace_size needs CREATE on each tablespace or
/// pg_read_all_stats); `None` when it may not.
pub fn cluster_bytes(conn: &PgConn) -> Result<Option<u64>> {
    let database = conn.dbname.is_none().then_some(MAINTENANCE_DB);
    let mut s = Session::open(conn, database)?;
    let size = s
        .value("SELECT sum(pg_tablespace_size(oid))::bigint FROM pg_tablespace")
        .ok()
        .and_then(|v| v.parse().ok());
    let _ = s.close();
    Ok(size)
}

/// `X/Y` as PostgreSQL prints an LSN: two hex halves.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// Where a backup starts and stops: (timeline, LSN) each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalRange {
    pub start: (u32, u64),
    pub stop: (u32, u64),
}

/// The WAL range a backup manifest names ("WAL-Ranges": one entry per
/// timeline the backup spans). The start is the earliest start, the stop
/// the latest end.
pub fn manifest_wal_range(manifest: &[u8]) -> Result<WalRange> {
    let bad = |what: &str| {
        Error::new(
            ErrorKind::SourceFailed,
            format!("the backup manifest {what}"),
        )
    };
    let v: serde_json::Value = serde_json::from_slice(manifest).map_err(|_| bad("is not JSON"))?;
    let ranges = v
        .get("WAL-Ranges")
        .and_then(|r| r.as_array())
        .ok_or_else(|| bad("has no WAL-Ranges"))?;
    let mut found: Option<WalRange> = None;
    for r in ranges {
        let timeline = r
            .get("Timeline")
            .and_then(|t| t.as_u64())
            .and_then(|t| u32::try_from(t).ok())
            .ok_or_else(|| bad("has a WAL range without a timeline"))?;
        let lsn = |key: &str| {
            r.get(key)
                .and_then(|l| l.as_str())
                .and_then(parse_lsn)
                .ok_or_else(|| bad(&format!("has a WAL range without a valid {key}")))
        };
        let (start, end) = (lsn("Start-LSN")?, lsn("End-LSN")?);
        let this = WalRange {
            start: (timeline, start),
            stop: (timeline, end),
        };
        found = Some(match found {
            None => this,
            Some(f) => WalRange {
                start: if start < f.start.1 {
                    this.start
                } else {
                    f.start
                },
                stop: if end > f.stop.1 { this.stop } else { f.stop },
            },
        });
    }
    let range = found.ok_or_else(|| bad("has no WAL range"))?;
    if range.stop.1 < range.start.1 {
        return Err(bad("ends before it starts"));
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> ServerFacts {
        ServerFacts {
            wal_level: "replica".into(),
            max_wal_senders: 10,
            may_replicate: true,
            role: "backup".into(),
            tablespaces: vec![],
            system_identifier: 1,
            wal_segment_size: 16 << 20,
            server_version: "15.8".into(),
        }
    }

    #[test]
    fn refuses_servers_that_cannot_stream_a_backup() {
        assert_eq!(refusal(&facts()), None);
        let mut f = facts();
        f.wal_level = "minimal".into();
        assert!(refusal(&f).unwrap().contains("wal_level"));
        let mut f = facts();
        f.max_wal_senders = 0;
        assert!(refusal(&f).unwrap().contains("max_wal_senders"));
        let mut f = facts();
        f.may_replicate = false;
        assert!(refusal(&f).unwrap().contains("REPLICATION"));
        let mut f = facts();
        f.tablespaces = vec!["fast".into()];
        assert_eq!(refusal(&f), None, "tablespaces are backed up too");
    }

    #[test]
    fn lsns_read_and_print_as_postgresql_does() {
        assert_eq!(parse_lsn("0/2000028"), Some(0x200_0028));
        assert_eq!(parse_lsn("1A/FF"), Some((0x1a << 32) | 0xff));
        assert_eq!(format_lsn(0x1_0000_00FF), "1/FF");
        for bad in ["", "12", "x/1", "1/", "100000000/0"] {
            assert_eq!(parse_lsn(bad), None, "{bad}");
        }
    }

    #[test]
    fn manifest_ranges_span_every_timeline() {
        let one = br#"{"WAL-Ranges": [{ "Timeline": 1, "Start-LSN": "0/2000028", "End-LSN": "0/2000100" }]}"#;
        assert_eq!(
            manifest_wal_range(one).unwrap(),
            WalRange {
                start: (1, 0x200_0028),
                stop: (1, 0x200_0100)
            }
        );
        let two = br#"{"WAL-Ranges": [
            { "Timeline": 3, "Start-LSN": "0/5000000", "End-LSN": "0/6000100" },
            { "Timeline": 2, "Start-LSN": "0/4000028", "End-LSN": "0/5000000" }]}"#;
        let r = manifest_wal_range(two).unwrap();
        assert_eq!((r.start, r.stop), ((2, 0x400_0028), (3, 0x600_0100)));
        for bad in [
            &br#"{}"#[..],
            br#"{"WAL-Ranges": []}"#,
            br#"{"WAL-Ranges": [{"Timeline": 1, "Start-LSN": "0/5", "End-LSN": "0/4"}]}"#,
            br#"{"WAL-Ranges": [{"Timeline": 1, "Start-LSN": "zz", "End-LSN": "0/4"}]}"#,
            b"not json",
        ] {
            assert!(manifest_wal_range(bad).is_err());
        }
    }
}
