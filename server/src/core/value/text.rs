//! Values as text, written once: hex, exact decimals, and the date and time forms every engine
//! and file format here reads (RFC 3339 timestamps in UTC, `YYYY-MM-DD` dates, `HH:MM:SS[.f]`
//! times). Output forms that differ on purpose (CSV's microseconds, SQLite's trimmed
//! nanoseconds) stay with their formats.

use time::{
    Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset,
    format_description::well_known::Rfc3339, macros::format_description,
};

/// Lowercase hex, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// `[+-]digits[.digits]` with at least one digit, optionally with an exponent: the text of an
/// exact decimal.
pub fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exp) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (s, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    !(int.is_empty() && frac.is_empty()) && digits(int) && digits(frac) && exp_ok
}

/// A timestamp: RFC 3339, or `YYYY-MM-DD HH:MM:SS[.f]` (or with `T`) without an offset, taken as
/// UTC, as engines print it (SQLite's `CURRENT_TIMESTAMP`, MySQL's DATETIME).
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let fmt = format_description!(
        version = 2,
        "[year]-[month]-[day][first [ ][T]][hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    PrimitiveDateTime::parse(s, fmt)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// A date, `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, format_description!("[year]-[month]-[day]")).ok()
}

/// A time of day, `HH:MM:SS[.f]`.
pub fn parse_time(s: &str) -> Option<Time> {
    let fmt = format_description!(
        version = 2,
        "[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    Time::parse(s, fmt).ok()
}

/// A timestamp as RFC 3339 in UTC; fails only for years RFC 3339 cannot write (before 0 or
/// after 9999).
pub fn timestamp(t: &OffsetDateTime) -> Result<String, time::error::Format> {
    t.to_offset(UtcOffset::UTC).format(&Rfc3339)
}

/// A time of day as `HH:MM:SS[.fraction]`, the fraction without trailing zeros: the form
/// SQLite's time functions and PostgreSQL's `time` input read.
pub fn time(t: &Time) -> String {
    let base = format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    match t.nanosecond() {
        0 => base,
        n => format!("{base}.{}", format!("{n:09}").trim_end_matches('0')),
    }
}

/// A date as `YYYY-MM-DD`.
pub fn date(d: &Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_and_padded() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn decimals_are_recognized() {
        for ok in ["0", "-1.5", "+.5", "5.", "1e10", "1.2E-3"] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in ["", ".", "-", "1e", "1.2.3", "abc", "1 2", "NaN"] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }

    #[test]
    fn timestamps_read_every_form_engines_print() {
        let want = time::macros::datetime!(2024-02-29 13:45:01.5 UTC);
        for s in [
            "2024-02-29T13:45:01.5Z",
            "2024-02-29T14:45:01.5+01:00",
            "2024-02-29 13:45:01.5",
            "2024-02-29T13:45:01.5",
        ] {
            assert_eq!(parse_timestamp(s), Some(want), "{s}");
        }
        assert_eq!(timestamp(&want).expect("format"), "2024-02-29T13:45:01.5Z");
        assert_eq!(
            parse_date("2024-02-29").map(|d| date(&d)).as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(
            parse_time("13:45:01.25"),
            Some(time::macros::time!(13:45:01.25))
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
