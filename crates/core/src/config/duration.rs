//! Go-style durations (`300s`, `1m`, `1h30m`, `1.5h`, `250ms`), flow-config.md 3.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("must be a duration such as 300s, 1m or 1h30m (units ms, s, m, h)")]
    Malformed,
    #[error("must be a duration greater than 0")]
    NotPositive,
    #[error("duration too large")]
    Overflow,
}

/// Parses `<decimal><unit>` parts with units `ms`, `s`, `m`, `h`; the sum must be > 0.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let mut rest = text;
    if rest.is_empty() {
        return Err(DurationError::Malformed);
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let (nanos, tail) = parse_part(rest)?;
        total_nanos = total_nanos
            .checked_add(nanos)
            .ok_or(DurationError::Overflow)?;
        rest = tail;
    }
    if total_nanos == 0 {
        return Err(DurationError::NotPositive);
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| DurationError::Overflow)?;
    Ok(Duration::new(secs, (total_nanos % 1_000_000_000) as u32))
}

/// One `<decimal><unit>` part: its length in nanoseconds and the remaining text.
fn parse_part(text: &str) -> Result<(u128, &str), DurationError> {
    let num_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, tail) = text.split_at(num_len);
    let unit_len = tail
        .find(|c: char| c.is_ascii_digit() || c == '.')
        .unwrap_or(tail.len());
    let (unit, rest) = tail.split_at(unit_len);
    let unit_nanos: u128 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        _ => return Err(DurationError::Malformed),
    };
    Ok((scale_decimal(number, unit_nanos)?, rest))
}

/// `number × unit_nanos` for a decimal like `1.5`, exact to the nanosecond.
fn scale_decimal(number: &str, unit_nanos: u128) -> Result<u128, DurationError> {
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(DurationError::Malformed);
    }
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok(int_part) || !digits_ok(frac_part) {
        return Err(DurationError::Malformed);
    }
    let int: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().map_err(|_| DurationError::Overflow)?
    };
    let mut nanos = int.checked_mul(unit_nanos).ok_or(DurationError::Overflow)?;
    let mut scale = unit_nanos;
    for digit in frac_part.bytes() {
        scale /= 10;
        nanos += u128::from(digit - b'0') * scale;
    }
    Ok(nanos)
}

/// Formats a duration the way the config writes it (`1h30m`, `300ms`), for messages.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let secs = ms / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(
            parse_duration("2160h"),
            Ok(Duration::from_secs(2160 * 3600))
        );
        assert_eq!(
            parse_duration("1m30s500ms"),
            Ok(Duration::from_millis(90_500))
        );
    }

    #[test]
    fn rejects_bad_durations() {
        for bad in ["", "10", "s", "1d", "1 m", "-1s", "1..5s", "m1"] {
            assert_eq!(parse_duration(bad), Err(DurationError::Malformed), "{bad}");
        }
        assert_eq!(parse_duration("0s"), Err(DurationError::NotPositive));
    }

    #[test]
    fn formats_durations() {
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(300)), "300ms");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
    }
}
