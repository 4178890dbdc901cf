//! What the WAL archive holds, per timeline: its first and last segment,
//! the gaps between them and the recovery targets each gap breaks, and the
//! newest file with its age (the current recovery point). The continuity
//! check is pure: it works on names and one segment size.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Result;
use crate::format::wal::WalFile;
use crate::format::Timestamp;
use crate::ops::wal_retention::KeptBase;
use crate::repo::WalArchive;

/// A segment's place in the WAL: its number counted from LSN 0.
fn segment_number(log: u32, seg: u32, per_log: u64) -> u64 {
    u64::from(log) * per_log + u64::from(seg)
}

/// LSN where segment number `n` starts, as PostgreSQL prints it (`X/Y`).
pub fn lsn_of(n: u64, segment_size: u64) -> String {
    let lsn = n.saturating_mul(segment_size);
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Segment file name of number `n` on `timeline`.
pub fn segment_name(timeline: u32, n: u64, per_log: u64) -> String {
    let log = n / per_log;
    let seg = n % per_log;
    format!("{timeline:08X}{log:08X}{seg:08X}")
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Gap {
    /// First and last missing segment.
    pub first_missing: String,
    pub last_missing: String,
    /// Recovery on this timeline cannot pass this LSN from a base backup
    /// that started before it...
    pub breaks_after: String,
    /// ...and base backups that started at or after this LSN are not
    /// affected.
    pub whole_again_from: String,
}

impl Gap {
    /// One line naming the gap and the recovery targets it breaks.
    pub fn describe(&self, timeline: u32) -> String {
        format!(
            "WAL timeline {timeline}: {} to {} missing: recovery past {} on timeline {timeline} needs a base backup taken at or after {}",
            self.first_missing, self.last_missing, self.breaks_after, self.whole_again_from
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Timeline {
    pub timeline: u32,
    pub first: String,
    pub last: String,
    pub segments: u64,
    pub gaps: Vec<Gap>,
}

/// Continuity per timeline. A `.partial` file holds its segment's
/// position like the full segment would (it ends its timeline).
pub fn timelines(files: &[WalFile], segment_size: u64) -> Vec<Timeline> {
    let per_log = (1u64 << 32) / segment_size.max(1);
    let mut by_timeline: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for f in files {
        if let WalFile::Segment { timeline, log, seg } | WalFile::Partial { timeline, log, seg } =
            *f
        {
            by_timeline
                .entry(timeline)
                .or_default()
                .push(segment_number(log, seg, per_log));
        }
    }
    by_timeline
        .into_iter()
        .filter_map(|(timeline, mut numbers)| {
            numbers.sort_unstable();
            numbers.dedup();
            let (&first, &last) = (numbers.first()?, numbers.last()?);
            let gaps = numbers
                .windows(2)
                .filter(|w| w[1] > w[0] + 1)
                .map(|w| Gap {
                    first_missing: segment_name(timeline, w[0] + 1, per_log),
                    last_missing: segment_name(timeline, w[1] - 1, per_log),
                    breaks_after: lsn_of(w[0] + 1, segment_size),
                    whole_again_from: lsn_of(w[1], segment_size),
                })
                .collect();
            Some(Timeline {
                timeline,
                first: segment_name(timeline, first, per_log),
                last: segment_name(timeline, last, per_log),
                segments: numbers.len() as u64,
                gaps,
            })
        })
        .collect()
}

/// Every gap of the archive, described.
pub fn gap_lines(timelines: &[Timeline]) -> Vec<String> {
    timelines
        .iter()
        .flat_map(|t| t.gaps.iter().map(|g| g.describe(t.timeline)))
        .collect()
}

/// Segment numbers present per timeline (`.partial` files included).
fn present(files: &[WalFile], per_log: u64) -> BTreeMap<u32, BTreeSet<u64>> {
    let mut out: BTreeMap<u32, BTreeSet<u64>> = BTreeMap::new();
    for f in files {
        if let WalFile::Segment { timeline, log, seg } | WalFile::Partial { timeline, log, seg } =
            *f
        {
            out.entry(timeline)
                .or_default()
                .insert(segment_number(log, seg, per_log));
        }
    }
    out
}

fn when(t: Timestamp) -> String {
    let (y, mo, d, h, mi, _) = t.utc();
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
}

fn name_base(b: &KeptBase) -> String {
    format!("{} ({})", b.id.short(), when(b.time))
}

/// The damage of the archive as the kept base backups see it, one line
/// each. Per timeline, every gap from the oldest kept base backup's start
/// segment (on that timeline or an earlier one) to the newest segment,
/// with the base backups that cannot recover across it; and every base
/// backup missing a segment between its start and its stop, which cannot
/// be restored at all. With no base backup kept, every gap counts.
pub fn damage(files: &[WalFile], bases: &[KeptBase]) -> Vec<String> {
    let Some(size) = bases.first().map(|b| b.base.wal_segment_size) else {
        return gap_lines(&timelines(files, 16 << 20));
    };
    let per_log = (1u64 << 32) / size;
    let start = |b: &KeptBase| b.base.start_lsn / size;
    let present = present(files, per_log);
    let mut lines = Vec::new();
    for (&timeline, numbers) in &present {
        let reaching: Vec<&KeptBase> = bases
            .iter()
            .filter(|b| b.base.start_timeline <= timeline)
            .collect();
        let Some(floor) = reaching.iter().map(|b| start(b)).min() else {
            continue;
        };
        let numbers: Vec<u64> = numbers.iter().copied().collect();
        for w in numbers.windows(2).filter(|w| w[1] > w[0] + 1) {
            let (first, last) = ((w[0] + 1).max(floor), w[1] - 1);
            if last < first {
                continue;
            }
            let broken: Vec<String> = reaching
                .iter()
                .filter(|b| start(b) < first)
                .map(|b| name_base(b))
                .collect();
            let who = if broken.is_empty() {
                "no kept base backup started before it".to_string()
            } else {
                format!("base backups {}", broken.join(", "))
            };
            lines.push(format!(
                "WAL timeline {timeline}: {} to {} missing: {who} cannot recover past {} on timeline {timeline}; recovery past it needs a base backup taken at or after {}",
                segment_name(timeline, first, per_log),
                segment_name(timeline, last, per_log),
                lsn_of(first, size),
                lsn_of(last + 1, size),
            ));
        }
    }
    for b in bases {
        let (from, to) = (start(b), b.base.stop_lsn / size);
        let timelines = b.base.start_timeline..=b.base.stop_timeline.max(b.base.start_timeline);
        let mut missing = (from..=to).filter(|n| {
            !present
                .range(timelines.clone())
                .any(|(_, numbers)| numbers.contains(n))
        });
        if let Some(first) = missing.next() {
            lines.push(format!(
                "snapshot {}: physical base backup of {} cannot be restored: {} of the WAL segments from {} to {} it needs to be consistent are missing (first: {})",
                b.id.short(),
                when(b.time),
                1 + missing.count(),
                b.base.start_segment().name(),
                b.base.stop_segment().name(),
                segment_name(b.base.start_timeline, first, per_log),
            ));
        }
    }
    lines
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct WalStatus {
    pub files: u64,
    pub timelines: Vec<Timeline>,
    /// The newest file by position (highest timeline, then LSN).
    pub newest: Option<String>,
    /// When it was pushed, and how long ago: the commits younger than this
    /// are not in the archive yet.
    pub newest_pushed: Option<String>,
    pub newest_age_secs: Option<i64>,
}

/// Read the archive's listing and the newest file's header.
pub fn wal_status(archive: &WalArchive<'_>, now: Timestamp) -> Result<WalStatus> {
    let files = archive.list()?;
    let newest_segment = files
        .iter()
        .filter(|f| matches!(f, WalFile::Segment { .. } | WalFile::Partial { .. }))
        .max_by_key(|f| match **f {
            WalFile::Segment { timeline, log, seg } | WalFile::Partial { timeline, log, seg } => {
                (timeline, log, seg)
            }
            _ => (0, 0, 0),
        });
    let header = match newest_segment {
        Some(f) => archive.header(f)?,
        None => None,
    };
    let segment_size = header
        .as_ref()
        .map(|h| h.size)
        .filter(|s| s.is_power_of_two() && *s >= 1 << 20)
        .unwrap_or(16 << 20);
    Ok(WalStatus {
        files: files.len() as u64,
        timelines: timelines(&files, segment_size),
        newest: newest_segment.map(WalFile::name),
        newest_pushed: header.as_ref().map(|h| {
            let (y, mo, d, h_, mi, s) = h.pushed.utc();
            format!("{y:04}-{mo:02}-{d:02}T{h_:02}:{mi:02}:{s:02}Z")
        }),
        newest_age_secs: header.map(|h| now.secs - h.pushed.secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(name: &str) -> WalFile {
        WalFile::parse(name).unwrap()
    }

    #[test]
    fn a_gap_is_named_with_the_lsns_it_breaks() {
        let files = [
            seg("000000010000000000000001"),
            seg("000000010000000000000002"),
            seg("000000010000000000000005"),
            seg("000000010000000100000000"),
            seg("0000000100000000000000FF"),
            seg("00000001000000000000000A.00000028.backup"),
        ];
        let t = timelines(&files, 16 << 20);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].segments, 5);
        assert_eq!(t[0].first, "000000010000000000000001");
        assert_eq!(t[0].last, "000000010000000100000000");
        assert_eq!(
            t[0].gaps[0],
            Gap {
                first_missing: "000000010000000000000003".into(),
                last_missing: "000000010000000000000004".into(),
                breaks_after: "0/3000000".into(),
                whole_again_from: "0/5000000".into(),
            }
        );
        // Across the log boundary FF -> 1/00 there is no gap.
        assert_eq!(t[0].gaps.len(), 2);
        assert_eq!(t[0].gaps[1].last_missing, "0000000100000000000000FE");
    }

    fn base(n: u8, timeline: u32, start: u64, stop: u64) -> KeptBase {
        let size = 16u64 << 20;
        KeptBase {
            id: crate::format::Id::from_bytes([n; 32]),
            time: Timestamp { secs: 0, nanos: 0 },
            base: crate::format::pg_base::BaseBackup {
                system_identifier: 1,
                wal_segment_size: size,
                start_timeline: timeline,
                start_lsn: start * size + 0x28,
                stop_timeline: timeline,
                stop_lsn: stop * size,
            },
        }
    }

    #[test]
    fn damage_counts_from_the_oldest_base_backup_and_names_whom_it_breaks() {
        let files: Vec<WalFile> = [1, 2, 4, 5, 6, 9, 10]
            .iter()
            .map(|n| seg(&format!("0000000100000000000000{n:02X}")))
            .collect();
        let older = base(1, 1, 4, 5);
        let newer = base(2, 1, 7, 8);
        let lines = damage(&files, &[older, newer]);
        // The gap at 3 lies before the oldest base backup: no damage. The
        // gap 7..8 breaks the older backup past 0/7000000 and leaves the
        // newer one unrestorable.
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with(
            "WAL timeline 1: 000000010000000000000007 to 000000010000000000000008 missing: base backups 01010101"
        ));
        assert!(lines[0].contains("past 0/7000000") && !lines[0].contains("02020202"));
        assert!(lines[1].starts_with("snapshot 02020202"));
        assert!(
            lines[1].contains("2 of the WAL segments")
                && lines[1].contains("(first: 000000010000000000000007)")
        );
        // Without a base backup every gap is damage.
        assert_eq!(damage(&files, &[]).len(), 2);
    }

    #[test]
    fn timelines_are_checked_apart_and_partials_count() {
        let files = [
            seg("000000010000000000000003"),
            seg("000000010000000000000004.partial"),
            seg("000000020000000000000004"),
            seg("000000020000000000000005"),
            seg("00000002.history"),
        ];
        let t = timelines(&files, 16 << 20);
        assert_eq!(t.len(), 2);
        assert!(t.iter().all(|t| t.gaps.is_empty()));
        assert_eq!(t[1].first, "000000020000000000000004");
    }
}
