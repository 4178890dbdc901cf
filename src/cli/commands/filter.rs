//! The options that pick snapshots, shared by the commands that read them.

use clap::Args;

#[derive(Args, Debug, Clone, Default)]
pub struct Filter {
    /// Only snapshots recorded from this host (repeatable)
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// Only snapshots with this tag (repeatable; all must match)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only snapshots of this path or stream name (repeatable)
    #[arg(long = "path")]
    pub paths: Vec<String>,
    /// Only snapshots taken at or before this time (`2026-12-01T03:00`,
    /// `2026-12-01`, local time unless an offset is given)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<vault::format::Timestamp>,
}

/// A point in time as people write it: RFC 3339, or a local date and time
/// (`2026-12-01T03:00`, `2026-12-01 03:00`, `2026-12-01` for its end).
pub fn parse_time(s: &str) -> Result<vault::format::Timestamp, String> {
    let bad = || format!("'{s}' is not a time (e.g. 2026-12-01T03:00 or 2026-12-01)");
    let t = s.trim();
    let ts = if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        ts
    } else if let Ok(dt) = t.replacen(' ', "T", 1).parse::<jiff::civil::DateTime>() {
        dt.to_zoned(jiff::tz::TimeZone::system())
            .map_err(|_| bad())?
            .timestamp()
    } else if let Ok(d) = t.parse::<jiff::civil::Date>() {
        // A day means the whole day: its last second.
        d.at(23, 59, 59, 999_999_999)
            .to_zoned(jiff::tz::TimeZone::system())
            .map_err(|_| bad())?
            .timestamp()
    } else {
        return Err(bad());
    };
    Ok(vault::format::Timestamp {
        secs: ts.as_second(),
        nanos: ts.subsec_nanosecond().max(0) as u32,
    })
}
