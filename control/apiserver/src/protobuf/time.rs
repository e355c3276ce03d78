//! Times and durations as Go's JSON encoder writes them for metav1.Time,
//! metav1.MicroTime and metav1.Duration.

use jiff::civil::DateTime;
use jiff::SignedDuration;

/// Unix seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z).
pub(super) const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// RFC 3339 in UTC as metav1.Time (whole seconds) or MicroTime (6 digits)
/// marshal it; `None` outside the years Go's JSON encoder accepts.
///
/// Civil time rather than `jiff::Timestamp`: a Timestamp stops a day short
/// of the end of year 9999 (it leaves room for any UTC offset), which Go's
/// encoder still writes.
pub(super) fn format_time(seconds: i64, nanos: i64, micro: bool) -> Option<String> {
    let since_epoch =
        SignedDuration::from_secs(seconds).checked_add(SignedDuration::from_nanos(nanos))?;
    let time = DateTime::constant(1970, 1, 1, 0, 0, 0, 0)
        .checked_add(since_epoch)
        .ok()?;
    if time.year() < 0 {
        return None;
    }
    // Go's "2006-01-02T15:04:05.000000Z07:00" truncates, and so does %.6f.
    let format = if micro {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    } else {
        "%Y-%m-%dT%H:%M:%SZ"
    };
    Some(time.strftime(format).to_string())
}

/// Go's time.Duration.String(): "1h0m0s", "1.5s", "300ms", "0s".
pub(super) fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_string();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        // Below a second Go switches to the largest unit that keeps an
        // integer part: ns, µs or ms.
        let (unit, scale) = if n < 1_000 {
            ("ns", 1)
        } else if n < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{}{unit}", n / scale, fraction(n % scale, scale));
    }
    let seconds = n / 1_000_000_000;
    let frac = fraction(n % 1_000_000_000, 1_000_000_000);
    let (hours, minutes, secs) = (seconds / 3600, (seconds / 60) % 60, seconds % 60);
    if hours > 0 {
        format!("{sign}{hours}h{minutes}m{secs}{frac}s")
    } else if minutes > 0 {
        format!("{sign}{minutes}m{secs}{frac}s")
    } else {
        format!("{sign}{secs}{frac}s")
    }
}

/// ".5" for 500 of 1000: the decimal fraction without trailing zeros, or ""
/// when it is zero.
fn fraction(remainder: u64, scale: u64) -> String {
    if remainder == 0 {
        return String::new();
    }
    let width = scale.ilog10() as usize;
    let digits = format!("{remainder:0width$}");
    format!(".{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_go_writes_them() {
        assert_eq!(
            format_time(1_704_164_645, 0, false).as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(
            format_time(951_782_400, 0, false).as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
        assert_eq!(
            format_time(-1, 0, false).as_deref(),
            Some("1969-12-31T23:59:59Z")
        );
        assert_eq!(
            format_time(253_402_300_799, 0, false).as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        assert_eq!(format_time(253_402_300_800, 0, false), None);
        assert_eq!(
            format_time(GO_ZERO_TIME_UNIX, 0, false).as_deref(),
            Some("0001-01-01T00:00:00Z")
        );
        // MicroTime keeps six digits, truncated.
        assert_eq!(
            format_time(1_704_164_705, 123_456_789, true).as_deref(),
            Some("2024-01-02T03:05:05.123456Z")
        );
        assert_eq!(
            format_time(0, 0, true).as_deref(),
            Some("1970-01-01T00:00:00.000000Z")
        );
        assert_eq!(
            format_time(253_402_300_799, 999_999_999, true).as_deref(),
            Some("9999-12-31T23:59:59.999999Z")
        );
        assert_eq!(
            format_time(-62_167_219_200, 0, false).as_deref(),
            Some("0000-01-01T00:00:00Z")
        );
        assert_eq!(format_time(-62_167_219_201, 0, false), None);
        assert_eq!(format_time(i64::MIN, 0, false), None);
        assert_eq!(format_time(i64::MAX, 0, true), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1), "1ns");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(300_000_000), "300ms");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(60_000_000_000), "1m0s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(5_430_100_000_000), "1h30m30.1s");
        assert_eq!(go_duration(-90_000_000_000), "-1m30s");
        assert_eq!(go_duration(i64::MIN), "-2562047h47m16.854775808s");
    }
}
