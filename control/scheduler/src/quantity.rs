//! Resource quantities (apimachinery's `resource.Quantity`) as the scheduler counts them: cpu in
//! millicores, everything else in whole units (bytes for memory and storage), rounded up as
//! upstream's `MilliValue()`/`Value()` do.

/// `quantity` in thousandths of a unit (cpu millicores); None when it does not parse.
pub fn milli_value(quantity: &str) -> Option<i64> {
    scaled(quantity, 1000)
}

/// `quantity` in whole units, rounded up; None when it does not parse.
pub fn value(quantity: &str) -> Option<i64> {
    scaled(quantity, 1)
}

/// The quantity times `multiplier`, rounded up to an integer.
fn scaled(quantity: &str, multiplier: i128) -> Option<i64> {
    let q = quantity.trim();
    if q.is_empty() {
        return None;
    }
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    // A decimal exponent ("1e3", "12E-2") is a suffix of its own.
    let (mantissa_scale, exponent): (i128, i32) = match suffix {
        "" => (1, 0),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        s if s.starts_with(['e', 'E']) => (1, s[1..].parse().ok()?),
        _ => return None,
    };
    let negative = number.starts_with('-');
    let digits = number.trim_start_matches(['+', '-']);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let mut n: i128 = 0;
    for c in whole.chars().chain(fraction.chars()) {
        n = n.checked_mul(10)?.checked_add(c.to_digit(10)? as i128)?;
    }
    // value = n × 10^(exponent − len(fraction)) × mantissa_scale × multiplier
    let mut numerator = n.checked_mul(mantissa_scale)?.checked_mul(multiplier)?;
    let mut denominator: i128 = 1;
    let power = exponent - fraction.len() as i32;
    if power >= 0 {
        numerator = numerator.checked_mul(10i128.checked_pow(power as u32)?)?;
    } else {
        denominator = 10i128.checked_pow((-power) as u32)?;
    }
    let rounded_up = (numerator + denominator - 1) / denominator;
    let v = if negative { -rounded_up } else { rounded_up };
    i64::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory() {
        assert_eq!(milli_value("100m"), Some(100));
        assert_eq!(milli_value("1"), Some(1000));
        assert_eq!(milli_value("0.5"), Some(500));
        assert_eq!(milli_value("2.25"), Some(2250));
        assert_eq!(milli_value("1500u"), None);
        assert_eq!(value("1Gi"), Some(1 << 30));
        assert_eq!(value("128Mi"), Some(128 << 20));
        assert_eq!(value("1G"), Some(1_000_000_000));
        assert_eq!(value("1e3"), Some(1000));
        assert_eq!(value("100m"), Some(1), "rounded up like Value()");
        assert_eq!(value("512"), Some(512));
        assert_eq!(value("1.5Ki"), Some(1536));
        assert_eq!(value(""), None);
        assert_eq!(value("lots"), None);
    }
}
