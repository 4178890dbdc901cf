//! The status page: one HTML document with inline CSS and SVG, no scripts
//! and no external assets, so it works offline and under a strict CSP.
//! Each number also sits in a `data-value` attribute, raw, as in
//! `/api/status`.

use std::fmt::Write;

use crate::ops::run::status::{human_duration as duration, Point, SourceStatus, Status};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// A cell showing `shown`, carrying the raw `value` for machines.
fn cell(field: &str, value: Option<String>, shown: String, class: &str) -> String {
    let value = value.unwrap_or_default();
    format!(
        "<td class=\"{class}\" data-field=\"{field}\" data-value=\"{}\">{}</td>",
        esc(&value),
        esc(&shown)
    )
}

fn rate(r: Option<f64>) -> (Option<String>, String) {
    match r {
        Some(r) => (Some(format!("{r}")), format!("{:.0}%", r * 100.0)),
        None => (None, "-".into()),
    }
}

fn row(s: &SourceStatus) -> String {
    let mut out = format!(
        "<tr data-source=\"{}\" class=\"{}\">",
        esc(&s.name),
        if s.healthy { "ok" } else { "bad" }
    );
    out += &format!(
        "<th>{}<br><small>{}</small></th>",
        esc(&s.name),
        esc(&s.kind)
    );
    out += &cell(
        "healthy",
        Some(s.healthy.to_string()),
        if s.healthy {
            "OK".into()
        } else {
            "BREACH".into()
        },
        if s.healthy { "ok" } else { "bad" },
    );
    out += &cell(
        "last_success",
        s.last_success.as_ref().map(|r| r.time_seconds.to_string()),
        s.last_success
            .as_ref()
            .map(|r| r.time.clone())
            .unwrap_or("never".into()),
        "",
    );
    out += &cell(
        "last_failure",
        s.last_failure.as_ref().map(|r| r.time_seconds.to_string()),
        s.last_failure
            .as_ref()
            .map(|r| format!("{} {}", r.time, r.message))
            .unwrap_or("-".into()),
        if s.failing { "bad" } else { "" },
    );
    out += &cell(
        "rpo_age_seconds",
        s.rpo.age_seconds.map(|a| a.to_string()),
        format!(
            "{} / {}",
            s.rpo.age_seconds.map(duration).unwrap_or("none".into()),
            duration(s.rpo.target_seconds)
        ),
        if s.rpo.breached { "bad" } else { "ok" },
    );
    out += &cell(
        "restore_ms",
        s.rto.drill.as_ref().map(|d| d.restore_ms.to_string()),
        match (&s.rto.drill, s.rto.target_seconds) {
            (Some(d), t) => format!(
                "{:.1}s{}{}",
                d.restore_ms as f64 / 1000.0,
                t.map(|t| format!(" / {}", duration(t))).unwrap_or_default(),
                if d.passed { "" } else { " FAILED" }
            ),
            (None, _) => "no drill".into(),
        },
        if s.rto.breached { "bad" } else { "" },
    );
    out += &cell(
        "size_bytes",
        s.size.latest_bytes.map(|b| b.to_string()),
        match (s.size.latest_bytes, s.size.percent) {
            (Some(b), Some(p)) => format!("{} ({p}% of avg)", bytes(b)),
            (Some(b), None) => bytes(b),
            _ => "-".into(),
        },
        if s.size.anomaly { "bad" } else { "" },
    );
    let (v7, s7) = rate(s.success.rate_7d);
    out += &cell("success_rate_7d", v7, s7, "");
    let (v30, s30) = rate(s.success.rate_30d);
    out += &cell("success_rate_30d", v30, s30, "");
    let copies: Vec<String> = s
        .copies
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c.target,
                match c.passed {
                    Some(true) => "ok",
                    Some(false) => "FAILED",
                    None => "never",
                }
            )
        })
        .collect();
    out += &cell(
        "copies",
        Some(
            s.copies
                .iter()
                .filter(|c| c.passed == Some(true))
                .count()
                .to_string(),
        ),
        if copies.is_empty() {
            "-".into()
        } else {
            copies.join(", ")
        },
        if s.copies.iter().any(|c| c.passed == Some(false)) {
            "bad"
        } else {
            ""
        },
    );
    out += &format!(
        "<td>{}</td></tr>\n",
        chart(&s.history, s.rpo.target_seconds)
    );
    out
}

/// Snapshot size (line) and RPO age before each run (bars) over time.
fn chart(points: &[Point], rpo_target: u64) -> String {
    const W: f64 = 300.0;
    const H: f64 = 60.0;
    if points.is_empty() {
        return "no runs".into();
    }
    let t0 = points.first().map(|p| p.time_seconds).unwrap_or(0);
    let t1 = points
        .last()
        .map(|p| p.time_seconds)
        .unwrap_or(0)
        .max(t0 + 1);
    let x = |t: i64| (t - t0) as f64 / (t1 - t0) as f64 * (W - 4.0) + 2.0;
    let max_bytes = points.iter().map(|p| p.bytes).max().unwrap_or(0).max(1) as f64;
    let max_age = points
        .iter()
        .filter_map(|p| p.rpo_age_seconds)
        .max()
        .unwrap_or(0)
        .max(rpo_target)
        .max(1) as f64;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"snapshot size and RPO age over time\">"
    );
    for p in points {
        if let Some(age) = p.rpo_age_seconds {
            let h = age as f64 / max_age * (H - 4.0);
            let _ = write!(
                svg,
                "<rect class=\"age\" x=\"{:.1}\" y=\"{:.1}\" width=\"3\" height=\"{h:.1}\"/>",
                x(p.time_seconds) - 1.5,
                H - 2.0 - h
            );
        }
    }
    let target_y = H - 2.0 - rpo_target as f64 / max_age * (H - 4.0);
    let _ = write!(
        svg,
        "<line class=\"target\" x1=\"0\" x2=\"{W}\" y1=\"{target_y:.1}\" y2=\"{target_y:.1}\"/>"
    );
    let line: Vec<String> = points
        .iter()
        .filter(|p| p.passed)
        .map(|p| {
            format!(
                "{:.1},{:.1}",
                x(p.time_seconds),
                H - 2.0 - p.bytes as f64 / max_bytes * (H - 12.0)
            )
        })
        .collect();
    let _ = write!(
        svg,
        "<polyline class=\"size\" points=\"{}\"/>",
        line.join(" ")
    );
    for p in points.iter().filter(|p| !p.passed) {
        let _ = write!(
            svg,
            "<circle class=\"fail\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"/>",
            x(p.time_seconds),
            H / 2.0
        );
    }
    svg + "</svg>"
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.4em;text-align:left;vertical-align:top}\
td.ok{color:#176b2c}td.bad{color:#b00020;font-weight:600}tr.bad th{border-left:4px solid #b00020}\
.chart .size{fill:none;stroke:#1f5fbf;stroke-width:2}.chart .age{fill:#f0b429}.chart .target{stroke:#b00020;stroke-dasharray:4 3}\
.chart .fail{fill:#b00020}small{color:#666}.legend span{margin-right:1.5em}";

pub fn render(st: &Status) -> String {
    let mut html =
        String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    html += "<meta name=\"viewport\" content=\"width=device-width\"><title>vault status</title>";
    // An inline icon: without one the browser asks for /favicon.ico.
    html += "<link rel=\"icon\" href=\"data:,\">";
    let _ = write!(html, "<style>{STYLE}</style></head><body>");
    let _ = write!(
        html,
        "<h1>vault: <span id=\"overall\" data-value=\"{}\">{}</span></h1>",
        st.healthy,
        if st.healthy {
            "all targets met"
        } else {
            "targets breached"
        }
    );
    let _ = write!(
        html,
        "<p>As of {}. Repository {}: <span id=\"repo-size\" data-value=\"{}\">{}</span>{}</p>",
        esc(&st.time),
        esc(&st.repository.location),
        st.repository.size_bytes,
        bytes(st.repository.size_bytes),
        st.repository
            .free_bytes
            .map(|f| format!(
                ", <span id=\"repo-free\" data-value=\"{f}\">{}</span> free on its disk",
                bytes(f)
            ))
            .unwrap_or_default()
    );
    if !st.breaches.is_empty() {
        html += "<ul id=\"breaches\">";
        for b in &st.breaches {
            let _ = write!(html, "<li>{}</li>", esc(b));
        }
        html += "</ul>";
    }
    html += "<table><thead><tr><th>source</th><th>state</th><th>last success</th><th>last failure</th>\
<th>RPO age / target</th><th>newest drill / RTO</th><th>size</th><th>success 7d</th><th>success 30d</th>\
<th>copies</th><th>size and RPO age, 30 days</th></tr></thead><tbody>\n";
    for s in &st.sources {
        html += &row(s);
    }
    html += "</tbody></table><p class=\"legend\"><span>blue line: snapshot size</span>\
<span>bars: RPO age before each run</span><span>dashed: RPO target</span><span>red dots: failed runs</span></p>";
    html += "</body></html>\n";
    html
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            super::esc("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }
}
