//! Alerts: which conditions hold now (from the status), and which of them
//! are news. An outage alerts once when it starts and once when it ends,
//! however often `vault run` looks, because the open alerts are kept in a
//! state file between runs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::status::Status;
use crate::format::Timestamp;

/// Something wrong with one source (or the repository check) now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub source: String,
    /// failure, check, copy, drill, rpo, rto, size
    pub kind: &'static str,
    pub message: String,
}

impl Condition {
    pub fn key(&self) -> String {
        format!("{}/{}", self.source, self.kind)
    }
}

/// What kind of alert a failed step raises.
pub fn step_kind(step: &str) -> &'static str {
    match step.split(' ').next().unwrap_or_default() {
        "verify" | "check" => "check",
        "copy" => "copy",
        "drill" => "drill",
        _ => "failure",
    }
}

pub fn conditions(status: &Status) -> Vec<Condition> {
    let mut out = Vec::new();
    for s in &status.sources {
        let mut add = |kind, message: String| {
            out.push(Condition {
                source: s.name.clone(),
                kind,
                message,
            })
        };
        if s.failing {
            let message = s
                .last_failure
                .as_ref()
                .map(|f| f.message.clone())
                .unwrap_or_default();
            add(step_kind(s.failed_step.as_deref().unwrap_or("")), message);
        }
        if s.rpo.breached {
            add(
                "rpo",
                match s.rpo.age_seconds {
                    Some(a) => format!(
                        "newest snapshot is {a}s old, RPO target {}s",
                        s.rpo.target_seconds
                    ),
                    None => "no snapshot yet".to_string(),
                },
            );
        }
        if s.rto.breached {
            add(
                "rto",
                "the newest drill failed or restored slower than the RTO target".to_string(),
            );
        }
        if s.size.anomaly {
            add(
                "size",
                format!(
                    "size {} bytes is {}% of the recent average {} bytes",
                    s.size.latest_bytes.unwrap_or(0),
                    s.size.percent.unwrap_or(0),
                    s.size.average_bytes.unwrap_or(0)
                ),
            );
        }
        for c in s.copies.iter().filter(|c| c.passed == Some(false)) {
            add("copy", format!("copy to {} failed: {}", c.target, c.detail));
        }
    }
    if let Some(check) = status.check.as_ref().filter(|c| c.failing) {
        out.push(Condition {
            source: super::plan::CHECK_TASK.to_string(),
            kind: "check",
            message: check
                .last_failure
                .as_ref()
                .map(|f| f.message.clone())
                .unwrap_or_default(),
        });
    }
    out.dedup_by_key(|c| c.key());
    out
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenAlert {
    pub since: i64,
    pub message: String,
}

/// The alerts sent and not yet recovered, by condition key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    pub open: BTreeMap<String, OpenAlert>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Alert,
    Recovery,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub event: Event,
    pub key: String,
    pub source: String,
    pub kind: String,
    pub message: String,
    /// When the outage began.
    pub since: i64,
}

/// The notices to send: new conditions alert, conditions gone recover.
/// Ongoing ones send nothing.
pub fn evaluate(state: &AlertState, now: &[Condition], time: Timestamp) -> Vec<Notice> {
    let mut out = Vec::new();
    for c in now {
        let key = c.key();
        if !state.open.contains_key(&key) {
            out.push(Notice {
                event: Event::Alert,
                source: c.source.clone(),
                kind: c.kind.to_string(),
                message: c.message.clone(),
                since: time.secs,
                key,
            });
        }
    }
    for (key, open) in &state.open {
        if !now.iter().any(|c| c.key() == *key) {
            let (source, kind) = key.rsplit_once('/').unwrap_or((key.as_str(), ""));
            out.push(Notice {
                event: Event::Recovery,
                key: key.clone(),
                source: source.to_string(),
                kind: kind.to_string(),
                message: format!("recovered (was: {})", open.message),
                since: open.since,
            });
        }
    }
    out
}

/// The state once `notice` was delivered.
pub fn record_sent(state: &mut AlertState, notice: &Notice) {
    match notice.event {
        Event::Alert => {
            state.open.insert(
                notice.key.clone(),
                OpenAlert {
                    since: notice.since,
                    message: notice.message.clone(),
                },
            );
        }
        Event::Recovery => {
            state.open.remove(&notice.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(source: &str, kind: &'static str) -> Condition {
        Condition {
            source: source.into(),
            kind,
            message: format!("{kind} of {source}"),
        }
    }

    #[test]
    fn an_outage_alerts_once_and_recovers_once() {
        let t = |secs| Timestamp { secs, nanos: 0 };
        let mut state = AlertState::default();
        type Step<'a> = (Vec<Condition>, Vec<(Event, &'a str)>);
        let steps: Vec<Step> = vec![
            (
                vec![cond("db", "failure")],
                vec![(Event::Alert, "db/failure")],
            ),
            (vec![cond("db", "failure")], vec![]),
            (
                vec![cond("db", "failure"), cond("db", "size")],
                vec![(Event::Alert, "db/size")],
            ),
            (
                vec![cond("db", "size")],
                vec![(Event::Recovery, "db/failure")],
            ),
            (vec![], vec![(Event::Recovery, "db/size")]),
            (vec![], vec![]),
        ];
        for (i, (now, expected)) in steps.into_iter().enumerate() {
            let notices = evaluate(&state, &now, t(i as i64));
            let got: Vec<(Event, &str)> = notices
                .iter()
                .map(|n| (n.event.clone(), n.key.as_str()))
                .collect();
            assert_eq!(got, expected, "step {i}");
            for n in &notices {
                record_sent(&mut state, n);
            }
        }
        assert!(state.open.is_empty());
    }

    #[test]
    fn undelivered_alerts_are_sent_again() {
        let state = AlertState::default();
        let now = [cond("files", "rpo")];
        assert_eq!(evaluate(&state, &now, Timestamp::default()).len(), 1);
        // Not recorded as sent: the next run tries again.
        assert_eq!(evaluate(&state, &now, Timestamp::default()).len(), 1);
    }
}
