//! Fixed-length durations of the plan file: `90s`, `15m`, `1h30m`, `2d`,
//! `1w`. Schedules and targets are elapsed time, not calendar periods, so
//! there are no months here (retention has its own calendar durations).

use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    pub secs: u64,
}

impl Interval {
    pub const fn secs(secs: u64) -> Self {
        Interval { secs }
    }

    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(format!(
                "'{s}' is not a duration such as 90s, 15m, 1h30m, 2d or 1w"
            ))
        };
        let mut total: u64 = 0;
        let mut number = String::new();
        let mut any = false;
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 7 * 86_400,
                _ => return Err(bad()),
            };
            let n: u64 = number.parse().map_err(|_| bad())?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
            number.clear();
            any = true;
        }
        if !any || !number.is_empty() || total == 0 {
            return Err(bad());
        }
        Ok(Interval { secs: total })
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
