//! `%START_TIME(...)%`: Envoy's date formatter, a strftime subset in UTC.
//!
//! A format is parsed once into [`TimePart`]s. Besides the strftime
//! specifiers, Envoy's own `%s` (epoch seconds), `%f` and `%1f`..`%9f`
//! (fractional seconds, 9 digits by default) and absl's `%E#S`, `%E*S`,
//! `%E#f`, `%E*f` are understood. Unset, the format is Envoy's
//! `%Y-%m-%dT%H:%M:%E3SZ` (`2024-01-01T00:00:00.000Z`).
//!
//! Deviation: an unknown specifier is a config error (strftime would print
//! something platform-defined).

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// One piece of a compiled time format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TimePart {
    Literal(String),
    /// `%Y`.
    Year,
    /// `%C`.
    Century,
    /// `%y`.
    Year2,
    /// `%m`.
    Month,
    /// `%d`.
    Day,
    /// `%e`: day padded with a space.
    DaySpace,
    /// `%H`.
    Hour,
    /// `%I`.
    Hour12,
    /// `%M`.
    Minute,
    /// `%S`.
    Second,
    /// `%j`.
    DayOfYear,
    /// `%a`.
    WeekdayShort,
    /// `%A`.
    WeekdayLong,
    /// `%b`, `%h`.
    MonthShort,
    /// `%B`.
    MonthLong,
    /// `%p`.
    AmPm,
    /// `%u`: 1 (Monday) to 7.
    WeekdayMon1,
    /// `%w`: 0 (Sunday) to 6.
    WeekdaySun0,
    /// `%z`: always `+0000` (UTC).
    UtcOffset,
    /// `%Z`: always `UTC`.
    ZoneName,
    /// `%s`: seconds since the epoch.
    Epoch,
    /// `%f`, `%Nf`, `%E#f`: this many fractional digits, truncated.
    Fraction(u8),
    /// `%E*f`: fractional digits without trailing zeros (at least one digit).
    FractionAll,
    /// `%E#S`: seconds, a dot and this many fractional digits.
    SecondFraction(u8),
    /// `%E*S`: seconds and, when not whole, a dot and the digits without trailing zeros.
    SecondFractionAll,
}

/// A compiled `%START_TIME%` format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFormat {
    parts: Vec<TimePart>,
}

const WEEKDAYS: [&str; 7] =
    ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

impl TimeFormat {
    /// Envoy's default: `%Y-%m-%dT%H:%M:%E3SZ`.
    pub fn envoy_default() -> Self {
        use TimePart::*;
        let lit = |s: &str| Literal(s.to_string());
        Self {
            parts: vec![
                Year,
                lit("-"),
                Month,
                lit("-"),
                Day,
                lit("T"),
                Hour,
                lit(":"),
                Minute,
                lit(":"),
                SecondFraction(3),
                lit("Z"),
            ],
        }
    }

    /// Parses a strftime-like format; the error names the bad specifier.
    pub fn parse(spec: &str) -> Result<Self, String> {
        use TimePart::*;
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = spec.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                literal.push(c);
                continue;
            }
            let Some(spec_char) = chars.next() else {
                return Err("the time format ends with a lone %".into());
            };
            let mut push = |p: TimePart, literal: &mut String| {
                if !literal.is_empty() {
                    parts.push(Literal(std::mem::take(literal)));
                }
                parts.push(p);
            };
            let part = match spec_char {
                '%' => {
                    literal.push('%');
                    continue;
                }
                'n' => {
                    literal.push('\n');
                    continue;
                }
                't' => {
                    literal.push('\t');
                    continue;
                }
                'Y' => Year,
                'C' => Century,
                'y' => Year2,
                'm' => Month,
                'd' => Day,
                'e' => DaySpace,
                'H' => Hour,
                'I' => Hour12,
                'M' => Minute,
                'S' => Second,
                'j' => DayOfYear,
                'a' => WeekdayShort,
                'A' => WeekdayLong,
                'b' | 'h' => MonthShort,
                'B' => MonthLong,
                'p' => AmPm,
                'u' => WeekdayMon1,
                'w' => WeekdaySun0,
                'z' => UtcOffset,
                'Z' => ZoneName,
                's' => Epoch,
                'f' => Fraction(9),
                'T' | 'F' | 'D' | 'R' => {
                    let expansion: &[TimePart] = match spec_char {
                        'T' => &[Hour, Minute, Second],
                        'R' => &[Hour, Minute],
                        'F' => &[Year, Month, Day],
                        _ => &[Month, Day, Year2],
                    };
                    let sep = match spec_char {
                        'T' | 'R' => ":",
                        'F' => "-",
                        _ => "/",
                    };
                    for (i, p) in expansion.iter().enumerate() {
                        if i > 0 {
                            literal.push_str(sep);
                        }
                        push(p.clone(), &mut literal);
                    }
                    continue;
                }
                d @ '1'..='9' => match chars.next() {
                    Some('f') => Fraction(d as u8 - b'0'),
                    _ => return Err(format!("unsupported time specifier %{d} (expected %{d}f)")),
                },
                'E' => match (chars.next(), chars.next()) {
                    (Some('*'), Some('S')) => SecondFractionAll,
                    (Some('*'), Some('f')) => FractionAll,
                    (Some(d @ '0'..='9'), Some('S')) => SecondFraction(d as u8 - b'0'),
                    (Some(d @ '0'..='9'), Some('f')) => Fraction(d as u8 - b'0'),
                    _ => {
                        return Err(
                            "unsupported time specifier %E (expected %E#S, %E*S, %E#f or %E*f)"
                                .into(),
                        );
                    }
                },
                other => return Err(format!("unsupported time specifier %{other}")),
            };
            push(part, &mut literal);
        }
        if !literal.is_empty() {
            parts.push(Literal(literal));
        }
        Ok(Self { parts })
    }

    /// Appends `t`, in UTC, to `out`.
    pub fn write(&self, t: SystemTime, out: &mut Vec<u8>) {
        let (secs, nanos) = epoch_parts(t);
        let days = secs.div_euclid(86_400);
        let second_of_day = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let (hour, minute, second) =
            (second_of_day / 3600, (second_of_day / 60) % 60, second_of_day % 60);
        let weekday = (days + 4).rem_euclid(7) as usize; // 1970-01-01 was a Thursday.
        for part in &self.parts {
            // Writing to a Vec cannot fail.
            let _ = match part {
                TimePart::Literal(s) => out.write_all(s.as_bytes()),
                TimePart::Year => write!(out, "{year:04}"),
                TimePart::Century => write!(out, "{:02}", year.div_euclid(100)),
                TimePart::Year2 => write!(out, "{:02}", year.rem_euclid(100)),
                TimePart::Month => write!(out, "{month:02}"),
                TimePart::Day => write!(out, "{day:02}"),
                TimePart::DaySpace => write!(out, "{day:2}"),
                TimePart::Hour => write!(out, "{hour:02}"),
                TimePart::Hour12 => write!(out, "{:02}", (hour + 11) % 12 + 1),
                TimePart::Minute => write!(out, "{minute:02}"),
                TimePart::Second => write!(out, "{second:02}"),
                TimePart::DayOfYear => {
                    write!(out, "{:03}", days - days_from_civil(year, 1, 1) + 1)
                }
                TimePart::WeekdayShort => out.write_all(&WEEKDAYS[weekday].as_bytes()[..3]),
                TimePart::WeekdayLong => out.write_all(WEEKDAYS[weekday].as_bytes()),
                TimePart::MonthShort => out.write_all(&MONTHS[month as usize - 1].as_bytes()[..3]),
                TimePart::MonthLong => out.write_all(MONTHS[month as usize - 1].as_bytes()),
                TimePart::AmPm => out.write_all(if hour < 12 { b"AM" } else { b"PM" }),
                TimePart::WeekdayMon1 => write!(out, "{}", (weekday + 6) % 7 + 1),
                TimePart::WeekdaySun0 => write!(out, "{weekday}"),
                TimePart::UtcOffset => out.write_all(b"+0000"),
                TimePart::ZoneName => out.write_all(b"UTC"),
                TimePart::Epoch => write!(out, "{secs}"),
                TimePart::Fraction(digits) => write_fraction(out, nanos, *digits),
                TimePart::FractionAll => {
                    let trimmed = trimmed_fraction(nanos);
                    out.write_all(if trimmed.is_empty() { b"0" } else { trimmed.as_bytes() })
                }
                TimePart::SecondFraction(digits) => {
                    let _ = write!(out, "{second:02}");
                    if *digits > 0 {
                        out.push(b'.');
                    }
                    write_fraction(out, nanos, *digits)
                }
                TimePart::SecondFractionAll => {
                    let trimmed = trimmed_fraction(nanos);
                    if trimmed.is_empty() {
                        write!(out, "{second:02}")
                    } else {
                        write!(out, "{second:02}.{trimmed}")
                    }
                }
            };
        }
    }
}

/// The first `digits` digits of the nanoseconds, truncated.
fn write_fraction(out: &mut Vec<u8>, nanos: u32, digits: u8) -> std::io::Result<()> {
    let digits = digits.min(9);
    if digits == 0 {
        return Ok(());
    }
    let value = nanos / 10u32.pow(9 - u32::from(digits));
    write!(out, "{value:0width$}", width = usize::from(digits))
}

/// The nanoseconds as 9 digits without trailing zeros (empty when zero).
fn trimmed_fraction(nanos: u32) -> String {
    let s = format!("{nanos:09}");
    s.trim_end_matches('0').to_string()
}

/// Seconds since the epoch (negative before it) and the non-negative nanoseconds.
fn epoch_parts(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (i64::try_from(d.as_secs()).unwrap_or(i64::MAX), d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (secs, 0),
                n => (secs - 1, 1_000_000_000 - n),
            }
        }
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// (year, month, day) to days since 1970-01-01 (Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn render(f: &TimeFormat, t: SystemTime) -> String {
        let mut out = Vec::new();
        f.write(t, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn default_format_is_envoys() {
        let f = TimeFormat::envoy_default();
        assert_eq!(render(&f, at(1_704_067_200, 0)), "2024-01-01T00:00:00.000Z");
        // 2016-04-15T20:17:00.310Z is the example in Envoy's docs.
        assert_eq!(render(&f, at(1_460_751_420, 310_999_999)), "2016-04-15T20:17:00.310Z");
        assert_eq!(render(&f, at(951_825_599, 0)), "2000-02-29T11:59:59.000Z");
    }

    #[test]
    fn envoy_specifiers() {
        let t = at(1_527_590_590, 528_123_456);
        let f = TimeFormat::parse("%s.%3f").unwrap();
        assert_eq!(render(&f, t), "1527590590.528");
        let f = TimeFormat::parse("%f|%1f|%9f|%E6S|%E*S|%E*f|%E0S").unwrap();
        assert_eq!(render(&f, t), "528123456|5|528123456|10.528123|10.528123456|528123456|10");
        let f = TimeFormat::parse("%E*S %E*f").unwrap();
        assert_eq!(render(&f, at(10, 500_000_000)), "10.5 5");
        assert_eq!(render(&f, at(10, 0)), "10 0");
    }

    #[test]
    fn strftime_specifiers() {
        // Tuesday 2018-05-29 10:43:10 UTC.
        let t = at(1_527_590_590, 0);
        let f = TimeFormat::parse("%Y/%y/%C %m %d %e %H %I %p %M %S %j %a %A %b %h %B %u %w %z %Z")
            .unwrap();
        assert_eq!(
            render(&f, t),
            "2018/18/20 05 29 29 10 10 AM 43 10 149 Tue Tuesday May May May 2 2 +0000 UTC"
        );
        let f = TimeFormat::parse("%F %T %D %R %%%n%t").unwrap();
        assert_eq!(render(&f, t), "2018-05-29 10:43:10 05/29/18 10:43 %\n\t");
        assert_eq!(render(&TimeFormat::parse("%I %p").unwrap(), at(0, 0)), "12 AM");
        assert_eq!(render(&TimeFormat::parse("%j").unwrap(), at(1_704_067_200, 0)), "001");
    }

    #[test]
    fn before_the_epoch() {
        let t = UNIX_EPOCH - Duration::from_millis(1);
        assert_eq!(render(&TimeFormat::envoy_default(), t), "1969-12-31T23:59:59.999Z");
        assert_eq!(render(&TimeFormat::parse("%s %a").unwrap(), t), "-1 Wed");
    }

    #[test]
    fn unknown_specifiers_are_errors() {
        assert!(TimeFormat::parse("%Q").unwrap_err().contains("%Q"));
        assert!(TimeFormat::parse("%").is_err());
        assert!(TimeFormat::parse("%3").is_err());
        assert!(TimeFormat::parse("%Ex").is_err());
    }

    #[test]
    fn calendar_round_trips() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
