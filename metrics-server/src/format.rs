//! Numbers and times as upstream's metrics-server writes them: usage as apimachinery's
//! `resource.Quantity` canonical strings (CPU at scale -9 in DecimalSI: `12345678n`, `1230u`,
//! `15m`; memory in BinarySI: `12345Ki`, `512`), windows as Go's `time.Duration.String`
//! (`15.003s`, `1m0s`), timestamps as `metav1.Time` (RFC 3339, seconds).

/// CPU in nanocores as `resource.NewScaledQuantity(n, -9)` with DecimalSI prints it: trailing
/// zeros folded into the exponent, the exponent a multiple of 3, its SI suffix.
pub fn cpu_quantity(nanocores: u64) -> String {
    if nanocores == 0 {
        return "0".into();
    }
    // uint64Quantity: above int64, one digit of precision is dropped.
    let (mut mantissa, mut exponent) = if nanocores > i64::MAX as u64 {
        (nanocores / 10, -8i32)
    } else {
        (nanocores, -9i32)
    };
    while mantissa.is_multiple_of(10) {
        mantissa /= 10;
        exponent += 1;
    }
    match exponent.rem_euclid(3) {
        1 => {
            mantissa *= 10;
            exponent -= 1;
        }
        2 => {
            mantissa *= 100;
            exponent -= 2;
        }
        _ => {}
    }
    let suffix = match exponent {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        _ => "E",
    };
    format!("{mantissa}{suffix}")
}

/// Bytes as a BinarySI quantity prints them: below 1024, plain; else divided by 1024 while it
/// divides evenly, with its binary suffix (`Ki`, `Mi`, …).
pub fn memory_quantity(bytes: u64) -> String {
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut value = bytes;
    let mut power = 0;
    while value.is_multiple_of(1024) && power < 6 {
        value /= 1024;
        power += 1;
    }
    let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][power];
    format!("{value}{suffix}")
}

/// A duration as Go's `time.Duration.String`: `1h2m3.5s`, `15.003s`, `500ms`, `0s`.
pub fn go_duration(nanos: u64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (unit, scale) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(nanos, scale));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = fraction(nanos % 60_000_000_000, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `value / scale` with the fraction's trailing zeros dropped.
fn fraction(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let frac = format!("{rest:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// A time as `metav1.Time` marshals it: RFC 3339 in UTC, whole seconds.
pub fn rfc3339(at: std::time::SystemTime) -> String {
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    jiff::Timestamp::from_second(secs)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `resource.Quantity.String()` gives for these (worked through apimachinery's
    /// `AsCanonicalBytes` and `AsCanonicalBase1024Bytes`).
    #[test]
    fn quantities_as_apimachinery_prints_them() {
        assert_eq!(cpu_quantity(0), "0");
        assert_eq!(cpu_quantity(12_345_678), "12345678n");
        assert_eq!(cpu_quantity(1_230_000), "1230u");
        assert_eq!(cpu_quantity(15_000_000), "15m");
        assert_eq!(cpu_quantity(1_500_000_000), "1500m");
        assert_eq!(cpu_quantity(2_000_000_000), "2");
        assert_eq!(cpu_quantity(100), "100n");
        assert_eq!(cpu_quantity(10), "10n");
        assert_eq!(memory_quantity(0), "0");
        assert_eq!(memory_quantity(512), "512");
        assert_eq!(memory_quantity(12_345), "12345");
        assert_eq!(memory_quantity(4096), "4Ki");
        assert_eq!(memory_quantity(12_642_304), "12346Ki");
        assert_eq!(memory_quantity(1 << 20), "1Mi");
        assert_eq!(memory_quantity(3 << 30), "3Gi");
    }

    #[test]
    fn durations_as_go_prints_them() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(15_000_000_000), "15s");
        assert_eq!(go_duration(15_003_000_000), "15.003s");
        assert_eq!(go_duration(14_999_999_999), "14.999999999s");
        assert_eq!(go_duration(60_000_000_000), "1m0s");
        assert_eq!(go_duration(90_500_000_000), "1m30.5s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(500_000_000), "500ms");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(7), "7ns");
    }

    #[test]
    fn times_as_metav1_time() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_876_116_789);
        assert_eq!(rfc3339(at), "2025-12-04T19:21:56Z");
    }
}
