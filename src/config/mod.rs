//! The plan file: the whole backup plan (repositories, sources with their
//! schedules, retention and RPO/RTO targets, checks, drills, alerts) in one
//! TOML file. Parsing and validation only; `ops::run` acts on it.
//!
//! Secrets never live here: a repository names a password file or command,
//! and database clients take theirs from their own mechanisms (`~/.pgpass`,
//! `REDISCLI_AUTH`, option files).

pub mod duration;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use self::duration::Interval;
use crate::error::{Error, Result};
use crate::policy::{KeepDuration, KeepRules};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub repository: RepositoryConfig,
    #[serde(default, rename = "copy")]
    pub copies: Vec<CopyTarget>,
    #[serde(default, rename = "source")]
    pub sources: Vec<Source>,
    #[serde(default)]
    pub check: Option<ScheduledCheck>,
    #[serde(default)]
    pub alerts: Alerts,
    #[serde(default)]
    pub metrics: Metrics,
    #[serde(default)]
    pub serve: Serve,
    /// Where `vault run` keeps its lock and the alert state.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// How long run records are kept (default 35d; status needs 30).
    #[serde(default = "default_keep_runs")]
    pub keep_runs: Interval,
}

fn default_keep_runs() -> Interval {
    Interval::secs(35 * 86_400)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    /// A local path or a URL, as `--repo` takes it.
    pub location: String,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyTarget {
    pub name: String,
    pub location: String,
    pub password_file: Option<PathBuf>,
    pub password_command: Option<String>,
}

/// Unknown keys are refused by `SourceKind`, which sees every key the
/// source itself does not take (serde cannot deny them through `flatten`).
#[derive(Debug, Clone, Deserialize)]
pub struct Source {
    pub name: String,
    #[serde(flatten)]
    pub kind: SourceKind,
    /// How often a backup is due.
    pub schedule: Interval,
    /// The newest good snapshot must never be older than this.
    pub rpo: Interval,
    /// A drill's measured restore must take no longer than this.
    pub rto: Option<Interval>,
    #[serde(default)]
    pub keep: Option<Keep>,
    /// Verify the new snapshot's data after each backup.
    #[serde(default = "yes")]
    pub verify: bool,
    /// Copy targets by name; all of them when left out.
    pub copy_to: Option<Vec<String>>,
    pub drill: Option<DrillPlan>,
    /// Host recorded in the snapshots [default: this machine's name].
    pub host: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceKind {
    Files {
        paths: Vec<PathBuf>,
    },
    Pg {
        /// Database name, or a postgresql:// URI or key=value string.
        database: Option<String>,
        /// Every database, with roles and tablespaces.
        #[serde(default)]
        all: bool,
        pg_host: Option<String>,
        pg_port: Option<u16>,
        pg_user: Option<String>,
        #[serde(default = "two")]
        jobs: usize,
    },
    Redis {
        redis_host: Option<String>,
        redis_port: Option<u16>,
        socket: Option<PathBuf>,
        user: Option<String>,
    },
    Mysql {
        #[serde(default)]
        databases: Vec<String>,
        #[serde(default)]
        all: bool,
        mysql_host: Option<String>,
        mysql_port: Option<u16>,
        socket: Option<PathBuf>,
        user: Option<String>,
        defaults_extra_file: Option<PathBuf>,
    },
    Sqlite {
        file: PathBuf,
    },
    Cmd {
        /// The program and its arguments; its standard output is stored.
        command: Vec<String>,
        /// The stream's name in the snapshot [default: the source's name].
        stream: Option<String>,
    },
}

fn two() -> usize {
    2
}

impl SourceKind {
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Files { .. } => "files",
            SourceKind::Pg { .. } => "pg",
            SourceKind::Redis { .. } => "redis",
            SourceKind::Mysql { .. } => "mysql",
            SourceKind::Sqlite { .. } => "sqlite",
            SourceKind::Cmd { .. } => "cmd",
        }
    }
}

/// Retention, as `vault forget` takes it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keep {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    pub within: Option<String>,
    /// `--keep-wal-within`: keep the WAL archive's files pushed within
    /// this elapsed time (`7d`); the archive is the repository's, so the
    /// shortest window any source gives wins.
    pub wal_within: Option<String>,
}

impl Keep {
    /// The WAL window in seconds, if one is given.
    pub fn wal_within_secs(&self) -> Result<Option<u64>> {
        self.wal_within
            .as_deref()
            .map(crate::units::parse_elapsed)
            .transpose()
    }

    pub fn rules(&self) -> Result<KeepRules> {
        let within = match &self.within {
            Some(w) => Some(w.parse::<KeepDuration>()?),
            None => None,
        };
        Ok(KeepRules {
            last: self.last,
            periods: [
                self.hourly,
                self.daily,
                self.weekly,
                self.monthly,
                self.yearly,
            ],
            within,
            within_periods: [None; 5],
            tags: vec![],
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillPlan {
    pub every: Interval,
    /// SQL that must return true after the restore.
    #[serde(default)]
    pub asserts: Vec<String>,
    pub assert_database: Option<String>,
}

/// A repository-wide check on its own schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledCheck {
    pub every: Interval,
    /// `1/7`, `5%` or `500M`: read that share of the packs, least recently
    /// verified first; structure only when left out.
    pub read_data_subset: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    /// Run with `sh -c`; the alert is on standard input as JSON and in
    /// `VAULT_ALERT_*` variables.
    pub command: Option<String>,
    /// POST the alert as JSON here.
    pub webhook: Option<String>,
    /// A file holding the webhook URL, for URLs that are credentials
    /// themselves (Slack's are).
    pub webhook_file: Option<PathBuf>,
    #[serde(default)]
    pub format: WebhookFormat,
    /// The size trend's band, in percent of the recent average.
    #[serde(default = "default_low")]
    pub size_low_percent: u32,
    #[serde(default = "default_high")]
    pub size_high_percent: u32,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            command: None,
            webhook: None,
            webhook_file: None,
            format: WebhookFormat::default(),
            size_low_percent: default_low(),
            size_high_percent: default_high(),
        }
    }
}

fn default_low() -> u32 {
    50
}

fn default_high() -> u32 {
    200
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// vault's own JSON object.
    #[default]
    Json,
    /// `{"text": ...}`, which Slack, Mattermost and Rocket.Chat accept.
    Slack,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// A node_exporter textfile-collector file, rewritten after every run.
    pub textfile: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serve {
    #[serde(default = "default_listen")]
    pub listen: String,
}

impl Default for Serve {
    fn default() -> Self {
        Serve {
            listen: default_listen(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:9797".to_string()
}

/// Keys that would put a secret into the file.
const SECRET_KEYS: [&str; 4] = ["password", "passwd", "secret", "token"];

impl Plan {
    pub fn parse(text: &str) -> Result<Plan> {
        if let Ok(raw) = text.parse::<toml::Table>() {
            if let Some(key) = find_secret(&raw) {
                return Err(Error::invalid(format!(
                    "'{key}' looks like a secret: the plan file names password files or commands (password_file, password_command), never passwords"
                )));
            }
        }
        let plan: Plan = toml::from_str(text).map_err(|e| {
            Error::invalid(format!("plan file: {}", e.to_string().replace('\n', " ")))
        })?;
        plan.validate()?;
        Ok(plan)
    }

    pub fn load(path: &Path) -> Result<Plan> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("plan file {}", path.display()), e))?;
        Plan::parse(&text).map_err(|e| e.at(path.display().to_string()))
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The copy targets a source's snapshots go to.
    pub fn copies_of<'a>(&'a self, source: &'a Source) -> impl Iterator<Item = &'a CopyTarget> {
        self.copies.iter().filter(move |c| {
            source
                .copy_to
                .as_ref()
                .is_none_or(|names| names.contains(&c.name))
        })
    }

    fn validate(&self) -> Result<()> {
        let mut names = BTreeSet::new();
        for s in &self.sources {
            if !valid_name(&s.name) {
                return Err(Error::invalid(format!(
                    "source name '{}': use letters, digits, '-', '_' and '.'",
                    s.name
                )));
            }
            if !names.insert(s.name.as_str()) {
                return Err(Error::invalid(format!(
                    "source '{}' is defined twice",
                    s.name
                )));
            }
            if let Some(keep) = &s.keep {
                let rules = keep
                    .rules()
                    .map_err(|e| e.at(format!("source {}", s.name)))?;
                keep.wal_within_secs()
                    .map_err(|e| e.at(format!("source {}: wal_within", s.name)))?;
                if rules.is_empty() {
                    return Err(Error::invalid(format!(
                        "source {}: [keep] has no rule",
                        s.name
                    )));
                }
            }
            for target in s.copy_to.iter().flatten() {
                if !self.copies.iter().any(|c| c.name == *target) {
                    return Err(Error::invalid(format!(
                        "source {}: no [[copy]] target named '{target}'",
                        s.name
                    )));
                }
            }
            match &s.kind {
                SourceKind::Files { paths } if paths.is_empty() => {
                    return Err(Error::invalid(format!("source {}: no paths", s.name)))
                }
                SourceKind::Cmd { command, .. } if command.is_empty() => {
                    return Err(Error::invalid(format!("source {}: empty command", s.name)))
                }
                SourceKind::Mysql { databases, all, .. } if databases.is_empty() && !all => {
                    return Err(Error::invalid(format!(
                        "source {}: give databases or all = true",
                        s.name
                    )))
                }
                _ => {}
            }
            if s.drill.is_some() && !matches!(s.kind, SourceKind::Pg { .. }) {
                return Err(Error::invalid(format!(
                    "source {}: drills exist for pg sources only",
                    s.name
                )));
            }
        }
        let mut copies = BTreeSet::new();
        for c in &self.copies {
            if !copies.insert(c.name.as_str()) {
                return Err(Error::invalid(format!(
                    "copy target '{}' is defined twice",
                    c.name
                )));
            }
        }
        if self.alerts.size_low_percent >= self.alerts.size_high_percent {
            return Err(Error::invalid(
                "alerts: size_low_percent must be below size_high_percent",
            ));
        }
        Ok(())
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('@')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn find_secret(table: &toml::Table) -> Option<String> {
    for (key, value) in table {
        if SECRET_KEYS.contains(&key.as_str()) {
            return Some(key.clone());
        }
        let nested: Vec<&toml::Table> = match value {
            toml::Value::Table(t) => vec![t],
            toml::Value::Array(a) => a.iter().filter_map(|v| v.as_table()).collect(),
            _ => vec![],
        };
        if let Some(found) = nested.into_iter().find_map(find_secret) {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests;
