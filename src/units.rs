//! Quantities as people write them on a command line or in the plan file:
//! sizes, percentages and elapsed time. One grammar each, so an option
//! accepts what every other option of its kind accepts. Pure.

use crate::error::{Error, Result};

/// A size in bytes: a number, optionally with a decimal fraction, and a unit
/// `B`, `K`/`KB`/`KiB`, `M`/`MB`/`MiB`, `G`/`GB`/`GiB` or `T`/`TB`/`TiB`, in
/// any case. Every unit is a power of 1024 (`1K`, `1KB` and `1KiB` are all
/// 1024 bytes), as sizes have always been read here. No unit means bytes; a
/// fraction of a byte is dropped.
pub fn parse_size(s: &str) -> Result<u64> {
    let bad = || {
        Error::invalid(format!(
            "'{s}' is not a size such as 500M, 1.5G or 2GiB (units are powers of 1024)"
        ))
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let (whole, fraction) = decimal(number).ok_or_else(bad)?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(bad()),
    };
    // At most 18 fraction digits and 64 + 40 bits before the point: all
    // of it fits in u128.
    let scale = 10u128.pow(fraction.len() as u32);
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| bad())?
    };
    let bytes = (u128::from(whole) << shift) + (fraction << shift) / scale;
    u64::try_from(bytes).map_err(|_| bad())
}

/// A percentage from 0 to 100, with or without `%`, optionally with a
/// decimal fraction (`5%`, `2.5`). Returned as the number before the `%`.
pub fn parse_percent(s: &str) -> Result<f64> {
    let bad = || Error::invalid(format!("'{s}' is not a percentage from 0% to 100%"));
    let t = s.trim();
    let number = t.strip_suffix('%').unwrap_or(t).trim();
    decimal(number).ok_or_else(bad)?;
    match number.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(bad()),
    }
}

/// Elapsed time in seconds: a number of seconds (`90`), or numbers with
/// units `s`, `m` (minutes), `h`, `d` and `w`, in any case and combined
/// (`1h30m`). Calendar months and years are not elapsed time: retention
/// has its own durations for them.
pub fn parse_elapsed(s: &str) -> Result<u64> {
    let bad = || {
        Error::invalid(format!(
            "'{s}' is not a duration such as 90s, 10m, 1h30m, 2d or 1w (a plain number is seconds)"
        ))
    };
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| bad());
    }
    let mut total: u64 = 0;
    for (n, unit) in terms(t).map_err(|_| bad())? {
        let unit = match unit.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            other => {
                return Err(Error::invalid(format!(
                    "'{s}': unknown unit '{other}' (use s, m, h, d or w)"
                )))
            }
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// Why a run of numbers and units did not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TermsError {
    Empty,
    /// A unit with no number before it, or a number too large for u64.
    UnitWithoutNumber,
    NumberWithoutUnit,
}

/// `1h30m` as `[(1, 'h'), (30, 'm')]`: whole numbers, each followed by a
/// one-letter unit the caller interprets.
pub fn terms(s: &str) -> std::result::Result<Vec<(u64, char)>, TermsError> {
    let mut out = Vec::new();
    let mut digits = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n = digits.parse().map_err(|_| TermsError::UnitWithoutNumber)?;
        digits.clear();
        out.push((n, c));
    }
    if !digits.is_empty() {
        return Err(TermsError::NumberWithoutUnit);
    }
    if out.is_empty() {
        return Err(TermsError::Empty);
    }
    Ok(out)
}

/// Digits with an optional decimal fraction (`12`, `1.5`): the whole part
/// and the fraction's digits.
fn decimal(s: &str) -> Option<(u64, &str)> {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (s.contains('.') && !digits(fraction)) || fraction.len() > 18 {
        return None;
    }
    Some((whole.parse().ok()?, fraction))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_every_unit_spelling_as_powers_of_1024() {
        for (text, bytes) in [
            ("123", 123),
            ("0", 0),
            ("7B", 7),
            ("1k", 1 << 10),
            ("1KB", 1 << 10),
            ("1KiB", 1 << 10),
            ("500M", 500 << 20),
            ("500 MB", 500 << 20),
            ("2g", 2 << 30),
            ("2GiB", 2 << 30),
            ("1.5G", 3 << 29),
            ("0.5k", 512),
            ("1.0001K", 1024),
            ("3t", 3 << 40),
            ("1tib", 1 << 40),
            ("16777215T", 16_777_215 << 40),
        ] {
            assert_eq!(parse_size(text).unwrap(), bytes, "{text}");
        }
    }

    #[test]
    fn sizes_refuse_what_is_not_one() {
        for bad in [
            "",
            "M",
            "1X",
            "1 X",
            "1KK",
            "-1",
            "+1",
            "1.",
            ".5G",
            "1.2.3G",
            "1e3",
            "1 5M",
            "99999999999T",
            "16777216T",
            "18446744073709551616",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert!(err.to_string().contains("is not a size"), "{bad}: {err}");
        }
    }

    #[test]
    fn percentages_take_an_optional_sign_and_fraction() {
        for (text, percent) in [
            ("5%", 5.0),
            ("5", 5.0),
            ("0", 0.0),
            ("0%", 0.0),
            ("2.5 %", 2.5),
            ("100%", 100.0),
        ] {
            assert_eq!(parse_percent(text).unwrap(), percent, "{text}");
        }
        for bad in [
            "", "%", "101%", "100.1", "-1%", "x", "5%%", "1e1", "NaN", "inf",
        ] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn elapsed_time_reads_seconds_units_and_combinations() {
        for (text, secs) in [
            ("0", 0),
            ("90", 90),
            ("90s", 90),
            ("30m", 1800),
            ("1H", 3600),
            ("1h30m", 5400),
            ("2d", 172_800),
            ("1w", 604_800),
            (" 10m ", 600),
        ] {
            assert_eq!(parse_elapsed(text).unwrap(), secs, "{text}");
        }
        for bad in ["", "-1", "h", "1y", "1h30", "1.5h", "99999999999999999999w"] {
            assert!(parse_elapsed(bad).is_err(), "{bad}");
        }
        let unknown = parse_elapsed("3x").unwrap_err().to_string();
        assert!(unknown.contains("unknown unit 'x'"), "{unknown}");
    }

    #[test]
    fn terms_split_numbers_from_units() {
        assert_eq!(terms("1y6m"), Ok(vec![(1, 'y'), (6, 'm')]));
        assert_eq!(terms(""), Err(TermsError::Empty));
        assert_eq!(terms("d"), Err(TermsError::UnitWithoutNumber));
        assert_eq!(terms("30"), Err(TermsError::NumberWithoutUnit));
        assert_eq!(
            terms("99999999999999999999d"),
            Err(TermsError::UnitWithoutNumber)
        );
    }
}
