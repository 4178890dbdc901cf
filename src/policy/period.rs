//! Calendar periods in a time zone: the hour, day, ISO week, month or year
//! a moment falls in, as the local clock and calendar show them.
//!
//! Days, weeks, months and years are civil dates, so a 23- or 25-hour day
//! at a DST change is still one day. Hours carry the UTC offset as well as
//! the clock hour, so the hour a clock repeats when it falls back counts as
//! the two real hours it is, and the hour it skips simply never occurs.

use std::fmt;

use jiff::tz::TimeZone;

use crate::format::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Period {
    pub const ALL: [Period; 5] = [
        Period::Hourly,
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Yearly,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Period::Hourly => "hourly",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
        }
    }
}

/// One period: equal keys mean the same period.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeriodKey {
    period: Period,
    year: i16,
    /// Month, or ISO week for weekly periods.
    part: i8,
    day: i8,
    hour: i8,
    /// UTC offset in seconds (hourly periods only).
    offset: i32,
}

/// The period of `period` kind that `time` falls in, in `tz`.
pub fn period_of(period: Period, time: Timestamp, tz: &TimeZone) -> PeriodKey {
    let ts = to_jiff(time);
    let dt = tz.to_datetime(ts);
    let mut key = PeriodKey {
        period,
        year: dt.year(),
        part: 0,
        day: 0,
        hour: 0,
        offset: 0,
    };
    match period {
        Period::Yearly => {}
        Period::Monthly => key.part = dt.month(),
        Period::Weekly => {
            let week = dt.date().iso_week_date();
            key.year = week.year();
            key.part = week.week();
        }
        Period::Daily | Period::Hourly => {
            key.part = dt.month();
            key.day = dt.day();
            if period == Period::Hourly {
                key.hour = dt.hour();
                key.offset = tz.to_offset(ts).seconds();
            }
        }
    }
    key
}

/// Stored times outside jiff's range (years beyond ±9999) are clamped:
/// they still sort and group, only not meaningfully, as such times aren't.
pub(crate) fn to_jiff(time: Timestamp) -> jiff::Timestamp {
    let secs = time.secs.clamp(
        jiff::Timestamp::MIN.as_second(),
        jiff::Timestamp::MAX.as_second() - 1,
    );
    jiff::Timestamp::from_second(secs).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

impl fmt::Display for PeriodKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.period {
            Period::Yearly => write!(f, "{:04}", self.year),
            Period::Monthly => write!(f, "{:04}-{:02}", self.year, self.part),
            Period::Weekly => write!(f, "{:04}-W{:02}", self.year, self.part),
            Period::Daily => write!(f, "{:04}-{:02}-{:02}", self.year, self.part, self.day),
            Period::Hourly => {
                let off = self.offset;
                let sign = if off < 0 { '-' } else { '+' };
                let abs = off.unsigned_abs();
                write!(
                    f,
                    "{:04}-{:02}-{:02} {:02}h {sign}{:02}:{:02}",
                    self.year,
                    self.part,
                    self.day,
                    self.hour,
                    abs / 3600,
                    abs % 3600 / 60
                )
            }
        }
    }
}

impl PeriodKey {
    pub fn period(&self) -> Period {
        self.period
    }
}
