//! Fixed-length durations of the plan file: `90s`, `15m`, `1h30m`, `2d`,
//! `1w`. Schedules and targets are elapsed time, not calendar periods, so
//! there are no months here (retention has its own calendar durations).

use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};
use crate::units;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    pub secs: u64,
}

impl Interval {
    pub const fn secs(secs: u64) -> Self {
        Interval { secs }
    }

    /// Elapsed time as everywhere else (`crate::units::parse_elapsed`),
    /// except that it must be more than nothing and carry a unit: a bare
    /// `5` in a plan file is more likely a slip than five seconds.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(format!(
                "'{s}' is not a duration such as 90s, 15m, 1h30m, 2d or 1w"
            ))
        };
        if s.trim().bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        match units::parse_elapsed(s) {
            Ok(secs) if secs > 0 => Ok(Interval { secs }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.secs;
        for (unit, name) in [(86_400, 'd'), (3600, 'h'), (60, 'm'), (1, 's')] {
            if rest >= unit {
                write!(f, "{}{name}", rest / unit)?;
                rest %= unit;
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Interval::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_and_print() {
        for (text, secs, shown) in [
            ("90s", 90, "1m30s"),
            ("15m", 900, "15m"),
            ("1h30m", 5400, "1h30m"),
            ("2d", 172_800, "2d"),
            ("1w", 604_800, "7d"),
        ] {
            let i = Interval::parse(text).unwrap();
            assert_eq!(i.secs, secs, "{text}");
            assert_eq!(i.to_string(), shown);
        }
        for bad in ["", "0s", "5", "h", "1y", "-1h", "99999999999999999999w"] {
            assert!(Interval::parse(bad).is_err(), "{bad}");
        }
    }
}
