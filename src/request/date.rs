//! HTTP dates: the IMF-fixdate that is sent, and the forms that are accepted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Why a date header could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unrecognised HTTP date {0:?} (expected e.g. \"Fri, 05 May 2023 08:09:10 GMT\")")]
pub struct DateError(pub String);

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats `t` as an RFC 1123 / IMF-fixdate with a two-digit day, in GMT:
/// `Fri, 05 May 2023 08:09:10 GMT`. Sub-second parts are dropped.
pub fn format_http_date(t: SystemTime) -> String {
    let dt = OffsetDateTime::from(t);
    let weekday = WEEKDAYS[dt.weekday().number_days_from_monday() as usize];
    let month = MONTHS[dt.month() as usize - 1];
    format!(
        "{weekday}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
        dt.day(),
        dt.year(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Parses the HTTP date forms that real clients send:
///
/// - IMF-fixdate `Fri, 05 May 2023 08:09:10 GMT` (one-digit day accepted),
/// - RFC 850 `Friday, 05-May-23 08:09:10 GMT`,
/// - asctime `Fri May  5 08:09:10 2023`,
/// - the form one Azure SDK sends, `May, 05 2023 08:09:10.123456 GMT`
///   (month name first, fractional seconds).
///
/// `GMT` and `UTC` are accepted as the zone. The weekday, when present, must
/// be a weekday name but is not cross-checked against the date.
///
/// # Errors
/// [`DateError`] for anything else.
pub fn parse_http_date(text: &str) -> Result<SystemTime, DateError> {
    parse_imf_fixdate(text)
        .or_else(|| parse_tokens(text))
        .ok_or_else(|| DateError(text.to_owned()))
}

/// The exact 29-byte IMF-fixdate form (`Fri, 05 May 2023 08:09:10 GMT`) that
/// nearly every client sends, without allocating. Anything else is left to
/// the general parser.
fn parse_imf_fixdate(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || b[7] != b' ' || b[11] != b' ' || b[16] != b' ' {
        return None;
    }
    if b[19] != b':' || b[22] != b':' || &b[25..] != b" GMT" {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    if !WEEKDAYS.iter().any(|w| w.as_bytes() == &b[..3]) {
        return None;
    }
    let month = MONTHS.iter().position(|m| m.as_bytes() == &b[8..11])?;
    let date = Date::from_calendar_date(
        i32::try_from(num(12..16)?).ok()?,
        Month::try_from(u8::try_from(month + 1).ok()?).ok()?,
        u8::try_from(num(5..7)?).ok()?,
    )
    .ok()?;
    let clock = Time::from_hms(
        u8::try_from(num(17..19)?).ok()?,
        u8::try_from(num(20..22)?).ok()?,
        u8::try_from(num(23..25)?).ok()?,
    )
    .ok()?;
    let secs = PrimitiveDateTime::new(date, clock)
        .assume_utc()
        .unix_timestamp();
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

fn parse_tokens(text: &str) -> Option<SystemTime> {
    let mut tokens: Vec<&str> = text
        .split([' ', ',', '\t'])
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.first().is_some_and(|t| is_weekday(t)) {
        tokens.remove(0);
    }
    // RFC 850 joins the date with dashes: 05-May-23.
    if tokens.len() == 3 && tokens[0].matches('-').count() == 2 {
        let mut parts = tokens[0].split('-');
        let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
        tokens.splice(0..1, [d, m, y]);
    }
    let (day, month, year, clock, zone) = match tokens.as_slice() {
        // 05 May 2023 08:09:10 GMT
        [d, m, y, t, z] if d.bytes().all(|b| b.is_ascii_digit()) => (*d, *m, *y, *t, Some(*z)),
        // May 5 08:09:10 2023 (asctime)
        [m, d, t, y] if t.contains(':') => (*d, *m, *y, *t, None),
        // May 05 2023 08:09:10.123 GMT (SDK form)
        [m, d, y, t, z] => (*d, *m, *y, *t, Some(*z)),
        _ => return None,
    };
    if let Some(zone) = zone {
        if !(zone.eq_ignore_ascii_case("GMT") || zone.eq_ignore_ascii_case("UTC")) {
            return None;
        }
    }
    let day: u8 = parse_digits(day, 1, 2)?;
    let month = month_from_name(month)?;
    let year = match year.len() {
        // RFC 9110: a two-digit year more than 50 years ahead is in the past century.
        2 => {
            let y: i32 = parse_digits(year, 2, 2)?;
            if y < 70 {
                2000 + y
            } else {
                1900 + y
            }
        }
        _ => parse_digits(year, 4, 4)?,
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((hms, frac)) => (hms, Some(frac)),
        None => (clock, None),
    };
    let mut hms = hms.split(':');
    let h: u8 = parse_digits(hms.next()?, 1, 2)?;
    let mi: u8 = parse_digits(hms.next()?, 2, 2)?;
    let s: u8 = parse_digits(hms.next()?, 2, 2)?;
    if hms.next().is_some() {
        return None;
    }
    let nanos = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let padded = format!("{f:0<9}");
            padded.parse::<u32>().ok()?
        }
        Some(_) => return None,
    };
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let clock = Time::from_hms_nano(h, mi, s, nanos).ok()?;
    let at = PrimitiveDateTime::new(date, clock).assume_utc();
    let secs = at.unix_timestamp();
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, at.nanosecond()))
}

fn parse_digits<T: std::str::FromStr>(s: &str, min: usize, max: usize) -> Option<T> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn is_weekday(token: &str) -> bool {
    const LONG: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    WEEKDAYS
        .iter()
        .chain(LONG.iter())
        .any(|w| w.eq_ignore_ascii_case(token))
}

fn month_from_name(token: &str) -> Option<Month> {
    let index = MONTHS.iter().position(|m| {
        token.get(..3).is_some_and(|p| p.eq_ignore_ascii_case(m))
            && (token.len() == 3 || full_month_name(m).eq_ignore_ascii_case(token))
    })?;
    Month::try_from(u8::try_from(index + 1).ok()?).ok()
}

fn full_month_name(short: &str) -> &'static str {
    match short {
        "Jan" => "January",
        "Feb" => "February",
        "Mar" => "March",
        "Apr" => "April",
        "May" => "May",
        "Jun" => "June",
        "Jul" => "July",
        "Aug" => "August",
        "Sep" => "September",
        "Oct" => "October",
        "Nov" => "November",
        _ => "December",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    // `date -u -d @1526064516 -R` → Fri, 11 May 2018 18:48:36 +0000
    const MAY_2018: u64 = 1_526_064_516;

    #[test]
    fn formats_with_two_digit_day() {
        assert_eq!(
            format_http_date(at(MAY_2018)),
            "Fri, 11 May 2018 18:48:36 GMT"
        );
        // `date -u -d @1683274150 -R` → Fri, 05 May 2023 08:09:10 +0000
        assert_eq!(
            format_http_date(at(1_683_274_150)),
            "Fri, 05 May 2023 08:09:10 GMT"
        );
        assert_eq!(format_http_date(at(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn round_trips() {
        for secs in [0, MAY_2018, 1_683_274_150, 4_102_444_799] {
            assert_eq!(
                parse_http_date(&format_http_date(at(secs))).unwrap(),
                at(secs)
            );
        }
    }

    #[test]
    fn accepts_the_forms_clients_send() {
        let expect = at(1_683_274_150);
        for text in [
            "Fri, 05 May 2023 08:09:10 GMT",
            "Fri, 5 May 2023 08:09:10 GMT",
            "Friday, 05-May-23 08:09:10 GMT",
            "Fri May  5 08:09:10 2023",
            "May, 05 2023 08:09:10 GMT",
            "fri, 05 may 2023 08:09:10 utc",
        ] {
            assert_eq!(parse_http_date(text), Ok(expect), "{text}");
        }
        // The SDK's form keeps microseconds.
        assert_eq!(
            parse_http_date("Nov, 22 2026 17:21:39.290031 GMT").unwrap(),
            // `date -u -d '2026-11-22 17:21:39' +%s` → 1795368099
            at(1_795_368_099) + Duration::from_micros(290_031)
        );
        assert_eq!(
            parse_http_date("November, 22 2026 17:21:39.290031 GMT").unwrap(),
            at(1_795_368_099) + Duration::from_micros(290_031)
        );
    }

    #[test]
    fn rejects_garbage() {
        for text in [
            "",
            "yesterday",
            "Fri, 32 May 2023 08:09:10 GMT",
            "Fri, 05 Mai 2023 08:09:10 GMT",
            "Fri, 05 May 2023 25:09:10 GMT",
            "Fri, 05 May 2023 08:09:10 CET",
            "Fri, 05 May 2023 08:09 GMT",
            "Fri, 05 May 23 08:09:10 GMT GMT",
            "2023-05-05T08:09:10Z",
            "Fri, 05 ab\u{20ac} 2023 08:09:10 GMT",
            "Fri, 05 May 1969 08:09:10 GMT",
        ] {
            assert!(parse_http_date(text).is_err(), "{text}");
        }
    }
}
