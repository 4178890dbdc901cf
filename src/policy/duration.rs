//! Durations for `--keep-within`: `30d`, `12h`, `1y6m`, `2w`. Months and
//! years are calendar months and years, counted back in the policy's time
//! zone, so `1m` on 31 March reaches back to the last day of February.
//! That is why they are not elapsed time (`crate::units::parse_elapsed`,
//! where `m` is a minute), though both are written as numbers and units.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::units::{self, TermsError};

/// Years, months, weeks, days and hours, each bounded so arithmetic on any
/// stored timestamp cannot overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct KeepDuration {
    pub years: u32,
    pub months: u32,
    pub weeks: u32,
    pub days: u32,
    pub hours: u32,
}

/// Each unit stays far below what jiff's spans accept.
const MAX_YEARS: u32 = 1000;

impl KeepDuration {
    pub fn to_span(self) -> Result<jiff::Span> {
        let out_of_range = |e: jiff::Error| Error::invalid(format!("duration {self}: {e}"));
        jiff::Span::new()
            .try_years(i64::from(self.years))
            .and_then(|s| s.try_months(i64::from(self.months)))
            .and_then(|s| s.try_weeks(i64::from(self.weeks)))
            .and_then(|s| s.try_days(i64::from(self.days)))
            .and_then(|s| s.try_hours(i64::from(self.hours)))
            .map_err(out_of_range)
    }
}

impl FromStr for KeepDuration {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::invalid(format!(
                "duration '{s}': {why} (use a number and a unit y, m, w, d or h, such as 30d or 1y6m)"
            ))
        };
        let too_large = "a unit without a number, or a number too large";
        let terms = units::terms(s).map_err(|e| match e {
            TermsError::Empty => bad("empty"),
            TermsError::UnitWithoutNumber => bad(too_large),
            TermsError::NumberWithoutUnit => bad("a number without a unit"),
        })?;
        let mut out = KeepDuration::default();
        for (n, c) in terms {
            let n = u32::try_from(n).map_err(|_| bad(too_large))?;
            let slot = match c {
                'y' => &mut out.years,
                'm' => &mut out.months,
                'w' => &mut out.weeks,
                'd' => &mut out.days,
                'h' => &mut out.hours,
                _ => return Err(bad(&format!("unknown unit '{c}'"))),
            };
            *slot = slot
                .checked_add(n)
                .filter(|v| *v <= MAX_YEARS * 12 * 31 * 24)
                .ok_or_else(|| bad("too large"))?;
        }
        if out.years > MAX_YEARS {
            return Err(bad("too large"));
        }
        out.to_span().map_err(|_| bad("too large"))?;
        Ok(out)
    }
}

impl fmt::Display for KeepDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.weeks, 'w'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ];
        let mut wrote = false;
        for (n, unit) in parts.into_iter().filter(|(n, _)| *n > 0) {
            write!(f, "{n}{unit}")?;
            wrote = true;
        }
        if !wrote {
            f.write_str("0h")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_back() {
        for (text, printed) in [
            ("30d", "30d"),
            ("1y6m", "1y6m"),
            ("2w3d12h", "2w3d12h"),
            ("0d", "0h"),
        ] {
            let d: KeepDuration = text.parse().unwrap();
            assert_eq!(d.to_string(), printed, "{text}");
        }
        for bad in ["", "d", "30", "3x", "-1d", "99999999999d", "5000y"] {
            assert!(bad.parse::<KeepDuration>().is_err(), "{bad:?} parsed");
        }
    }
}
