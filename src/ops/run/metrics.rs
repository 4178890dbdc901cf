//! The status in Prometheus' text format (version 0.0.4), for a
//! node_exporter textfile collector and for `/metrics`.

use std::fmt::Write;

use super::status::Status;

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        let _ = writeln!(self.out, "{name}{labels} {value}");
    }
}

type Getter = fn(&super::status::SourceStatus) -> Option<f64>;

const PER_SOURCE: [(&str, &str, &str, Getter); 12] = [
    (
        "vault_last_success_timestamp_seconds",
        "gauge",
        "Start of the newest successful run.",
        |s| s.last_success.as_ref().map(|r| r.time_seconds as f64),
    ),
    (
        "vault_last_failure_timestamp_seconds",
        "gauge",
        "Start of the newest failed run.",
        |s| s.last_failure.as_ref().map(|r| r.time_seconds as f64),
    ),
    (
        "vault_last_success_duration_seconds",
        "gauge",
        "How long the newest successful run took.",
        |s| {
            s.last_success
                .as_ref()
                .map(|r| r.duration_ms as f64 / 1000.0)
        },
    ),
    (
        "vault_source_failing",
        "gauge",
        "1 if the newest run failed.",
        |s| Some(f64::from(u8::from(s.failing))),
    ),
    (
        "vault_rpo_age_seconds",
        "gauge",
        "Age of the newest snapshot.",
        |s| s.rpo.age_seconds.map(|a| a as f64),
    ),
    (
        "vault_rpo_target_seconds",
        "gauge",
        "The plan's RPO target.",
        |s| Some(s.rpo.target_seconds as f64),
    ),
    (
        "vault_rto_target_seconds",
        "gauge",
        "The plan's RTO target.",
        |s| s.rto.target_seconds.map(|t| t as f64),
    ),
    (
        "vault_restore_duration_seconds",
        "gauge",
        "Restore time the newest drill measured.",
        |s| s.rto.drill.as_ref().map(|d| d.restore_ms as f64 / 1000.0),
    ),
    (
        "vault_snapshot_size_bytes",
        "gauge",
        "Bytes the newest snapshot's source held.",
        |s| s.size.latest_bytes.map(|b| b as f64),
    ),
    (
        "vault_size_anomaly",
        "gauge",
        "1 if the newest size left the plan's band around the recent average.",
        |s| Some(f64::from(u8::from(s.size.anomaly))),
    ),
    (
        "vault_target_breached",
        "gauge",
        "1 if a target of the source is breached (RPO, RTO, failing).",
        |s| Some(f64::from(u8::from(!s.healthy))),
    ),
    (
        "vault_runs_30d",
        "gauge",
        "Runs recorded in the last 30 days.",
        |s| Some(s.success.runs_30d as f64),
    ),
];

pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let mut f = Family { out: &mut out };
    for (name, kind, help, get) in PER_SOURCE {
        f.head(name, kind, help);
        for s in &status.sources {
            if let Some(v) = get(s) {
                f.sample(name, &[("source", &s.name)], v);
            }
        }
    }
    f.head(
        "vault_success_ratio",
        "gauge",
        "Share of runs that succeeded in the window.",
    );
    for s in &status.sources {
        for (window, rate) in [("7d", s.success.rate_7d), ("30d", s.success.rate_30d)] {
            if let Some(r) = rate {
                f.sample(
                    "vault_success_ratio",
                    &[("source", &s.name), ("window", window)],
                    r,
                );
            }
        }
    }
    f.head(
        "vault_repository_size_bytes",
        "gauge",
        "Bytes of packs the index names.",
    );
    f.sample(
        "vault_repository_size_bytes",
        &[],
        status.repository.size_bytes as f64,
    );
    if let Some(free) = status.repository.free_bytes {
        f.head(
            "vault_repository_free_bytes",
            "gauge",
            "Free bytes on the local repository's disk.",
        );
        f.sample("vault_repository_free_bytes", &[], free as f64);
    }
    f.head(
        "vault_healthy",
        "gauge",
        "1 if no target of the plan is breached.",
    );
    f.sample("vault_healthy", &[], f64::from(u8::from(status.healthy)));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_are_escaped() {
        assert_eq!(super::escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
