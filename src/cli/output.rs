//! Human output: progress bars on a terminal, sizes and times in tables.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use vault::format::Timestamp;
use vault::progress::Progress;

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `30m`, `90s`, `2h`: a wait as people write it.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s >= 3600 && s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s >= 60 && s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// `1 table`, `2 tables`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Snapshot paths (raw bytes) for display.
pub fn lossy_paths(paths: &[Vec<u8>]) -> Vec<String> {
    paths
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

/// One line naming a snapshot a command chose: id, time, host, source and
/// what it holds.
pub fn describe_snapshot(id: &vault::Id, s: &vault::format::snapshot::Snapshot) -> String {
    format!(
        "using snapshot {} of {} from {}, {}: {}",
        id.short(),
        local_time(s.time),
        s.host,
        s.source,
        lossy_paths(&s.paths).join(" ")
    )
}

/// Local time as `YYYY-MM-DD HH:MM:SS`.
pub fn local_time(t: Timestamp) -> String {
    let secs = t.secs as libc::time_t;
    // SAFETY: tm is plain data filled by localtime_r from a valid time_t.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return t.secs.to_string();
        }
        tm
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

pub fn rfc3339_utc(t: Timestamp) -> String {
    let (year, month, day, hour, minute, second) = t.utc();
    format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{:09}Z",
        t.nanos
    )
}

pub fn mode_string(kind: vault::format::tree::EntryKind, mode: u32) -> String {
    use vault::format::tree::EntryKind::*;
    let first = match kind {
        Dir => 'd',
        Symlink => 'l',
        Fifo => 'p',
        CharDevice => 'c',
        BlockDevice => 'b',
        Socket => 's',
        File => '-',
    };
    let mut s = String::from(first);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// A progress bar fed from `progress` while the guard lives; nothing when
/// stderr is not a terminal or output is quiet.
pub struct ProgressGuard {
    bar: Option<ProgressBar>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressGuard {
    pub fn start(progress: Arc<Progress>, quiet: bool, verb: &'static str) -> Self {
        Self::counting(progress, quiet, verb, "files")
    }

    /// Like `start`, counting `unit` (packs, objects) instead of files.
    pub fn counting(
        progress: Arc<Progress>,
        quiet: bool,
        verb: &'static str,
        unit: &'static str,
    ) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if quiet || !std::io::stderr().is_terminal() {
            return ProgressGuard {
                bar: None,
                stop,
                thread: None,
            };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let thread = {
            let bar = bar.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let files = progress.files.load(Ordering::Relaxed);
                    let read = progress.bytes_read.load(Ordering::Relaxed);
                    let skipped = progress.bytes_skipped.load(Ordering::Relaxed);
                    let written = progress.bytes_written.load(Ordering::Relaxed);
                    let total = progress.bytes_total.load(Ordering::Relaxed);
                    let msg = if total == 0 && read == 0 && skipped == 0 && written == 0 {
                        format!("{verb} {files} {unit}")
                    } else if total > 0 {
                        format!(
                            "{verb} {files} {unit}, {} of {}",
                            human_bytes(written),
                            human_bytes(total)
                        )
                    } else {
                        format!(
                            "{verb} {files} {unit}, {} read, {} unchanged",
                            human_bytes(read),
                            human_bytes(skipped)
                        )
                    };
                    let stage = progress.stage();
                    if stage.is_empty() {
                        bar.set_message(msg);
                    } else {
                        bar.set_message(format!("{msg}: {stage}"));
                    }
                    bar.tick();
                    std::thread::sleep(Duration::from_millis(120));
                }
            })
        };
        ProgressGuard {
            bar: Some(bar),
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ProgressGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting_matches_known_dates() {
        assert_eq!(
            rfc3339_utc(Timestamp { secs: 0, nanos: 0 }),
            "1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            rfc3339_utc(Timestamp {
                secs: 951_782_400,
                nanos: 5
            }),
            "2000-02-29T00:00:00.000000005Z"
        );
        assert_eq!(
            rfc3339_utc(Timestamp { secs: -1, nanos: 0 }),
            "1969-12-31T23:59:59.000000000Z"
        );
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
