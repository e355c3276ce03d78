//! Resource quantities as admission compares and prints them (apimachinery's
//! `resource.Quantity`): exact to the nano, `Value()`/`MilliValue()` rounded up, and `String()`
//! in canonical form (`1000m` prints as `1`, `1024Mi` as `1Gi`, `1500` as `1500`, `2000` as `2k`).

use std::cmp::Ordering;
use std::fmt;

const NANO: i128 = 1_000_000_000;

/// How a quantity prints: the suffix family it was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    DecimalSI,
    BinarySI,
    DecimalExponent,
}

#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    /// The amount in billionths of a unit (rounded up past that precision, as upstream).
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Quantity) -> bool {
        self.nanos == other.nanos
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Quantity) -> Option<Ordering> {
        Some(self.nanos.cmp(&other.nanos))
    }
}

/// Upstream `resource.MaxMilliValue`.
pub const MAX_MILLI_VALUE: i64 = i64::MAX / 1000;

fn ceil_div(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d != 0 && (n > 0) == (d > 0) {
        q + 1
    } else {
        q
    }
}

impl Quantity {
    pub const ZERO: Quantity = Quantity {
        nanos: 0,
        format: Format::DecimalSI,
    };

    /// Upstream `ParseQuantity`; None for text that is not a quantity.
    pub fn parse(text: &str) -> Option<Quantity> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(text.len());
        let (number, suffix) = text.split_at(split);
        let (base2_shift, exponent, format): (u32, i32, Format) = match suffix {
            "" => (0, 0, Format::DecimalSI),
            "n" => (0, -9, Format::DecimalSI),
            "u" => (0, -6, Format::DecimalSI),
            "m" => (0, -3, Format::DecimalSI),
            "k" => (0, 3, Format::DecimalSI),
            "M" => (0, 6, Format::DecimalSI),
            "G" => (0, 9, Format::DecimalSI),
            "T" => (0, 12, Format::DecimalSI),
            "P" => (0, 15, Format::DecimalSI),
            "E" => (0, 18, Format::DecimalSI),
            "Ki" => (10, 0, Format::BinarySI),
            "Mi" => (20, 0, Format::BinarySI),
            "Gi" => (30, 0, Format::BinarySI),
            "Ti" => (40, 0, Format::BinarySI),
            "Pi" => (50, 0, Format::BinarySI),
            "Ei" => (60, 0, Format::BinarySI),
            s if s.starts_with(['e', 'E']) => (0, s[1..].parse().ok()?, Format::DecimalExponent),
            _ => return None,
        };
        let negative = number.starts_with('-');
        let digits = number.strip_prefix(['+', '-']).unwrap_or(number);
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if (whole.is_empty() && fraction.is_empty())
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut n: i128 = 0;
        for b in whole.bytes().chain(fraction.bytes()) {
            n = n.checked_mul(10)?.checked_add((b - b'0') as i128)?;
        }
        // nanos = n × 2^shift × 10^(exponent − len(fraction) + 9), rounded up.
        let mut numerator = n.checked_mul(1i128.checked_shl(base2_shift)?)?;
        let power = exponent - fraction.len() as i32 + 9;
        let mut denominator = 1i128;
        if power >= 0 {
            numerator = numerator.checked_mul(10i128.checked_pow(power as u32)?)?;
        } else {
            denominator = 10i128.checked_pow(power.unsigned_abs())?;
        }
        let nanos = ceil_div(numerator, denominator);
        Some(Quantity {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }

    /// A quantity from JSON (a string, or a bare number as some clients send).
    pub fn from_json(v: &serde_json::Value) -> Option<Quantity> {
        match v {
            serde_json::Value::String(s) => Quantity::parse(s),
            serde_json::Value::Number(n) => Quantity::parse(&n.to_string()),
            _ => None,
        }
    }

    /// Upstream `Value()`: whole units, rounded up.
    pub fn value(&self) -> i64 {
        ceil_div(self.nanos, NANO).clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    /// Upstream `MilliValue()`: thousandths, rounded up.
    pub fn milli_value(&self) -> i64 {
        ceil_div(self.nanos, 1_000_000).clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// Upstream `Add`: the sum keeps this quantity's format, or takes the other's when this
    /// one is zero (so `0` plus `512Mi` prints `512Mi`).
    pub fn add(&mut self, other: &Quantity) {
        if self.nanos == 0 {
            self.format = other.format;
        }
        self.nanos += other.nanos;
    }

    /// Upstream `Sub`: the difference keeps this quantity's format.
    pub fn sub(&mut self, other: &Quantity) {
        self.nanos -= other.nanos;
    }

    /// Upstream `RoundUp(0)`: whole units, keeping the format (`1Gi` stays `1Gi`).
    pub fn rounded_up(&self) -> Quantity {
        Quantity {
            nanos: ceil_div(self.nanos, NANO) * NANO,
            format: self.format,
        }
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// Upstream `NewMilliQuantity(milli, format)`: `milli` thousandths of a unit.
    pub fn from_milli(milli: i64, format: Format) -> Quantity {
        Quantity {
            nanos: milli as i128 * 1_000_000,
            format,
        }
    }

    /// A whole number of units (upstream `NewQuantity(n, DecimalSI)`), as object counts are.
    pub fn from_count(n: i64) -> Quantity {
        Quantity {
            nanos: n as i128 * NANO,
            format: Format::DecimalSI,
        }
    }
}

fn decimal_suffix(exponent: i32, format: Format) -> String {
    if format == Format::DecimalExponent {
        return if exponent == 0 {
            String::new()
        } else {
            format!("e{exponent}")
        };
    }
    match exponent {
        -9 => "n".into(),
        -6 => "u".into(),
        -3 => "m".into(),
        0 => String::new(),
        3 => "k".into(),
        6 => "M".into(),
        9 => "G".into(),
        12 => "T".into(),
        15 => "P".into(),
        18 => "E".into(),
        e => format!("e{e}"),
    }
}

impl fmt::Display for Quantity {
    /// Upstream `String()`: the canonical form in the quantity's format.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let mut format = self.format;
        if format == Format::BinarySI && (self.nanos.abs() < 1024 * NANO || self.nanos % NANO != 0)
        {
            format = Format::DecimalSI;
        }
        if format == Format::BinarySI {
            let mut amount = self.nanos / NANO;
            let mut exponent = 0;
            while amount % 1024 == 0 && exponent < 60 {
                amount /= 1024;
                exponent += 10;
            }
            let suffix = match exponent {
                10 => "Ki",
                20 => "Mi",
                30 => "Gi",
                40 => "Ti",
                50 => "Pi",
                60 => "Ei",
                _ => "",
            };
            return write!(f, "{amount}{suffix}");
        }
        let mut amount = self.nanos;
        let mut exponent: i32 = -9;
        while amount % 10 == 0 {
            amount /= 10;
            exponent += 1;
        }
        match exponent.rem_euclid(3) {
            1 => {
                amount *= 10;
                exponent -= 1;
            }
            2 => {
                amount *= 100;
                exponent -= 2;
            }
            _ => {}
        }
        write!(f, "{amount}{}", decimal_suffix(exponent, format))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        Quantity::parse(text).unwrap().to_string()
    }

    #[test]
    fn canonical_forms_are_upstreams() {
        for (given, shown) in [
            ("1", "1"),
            ("1000m", "1"),
            ("1500m", "1500m"),
            ("0.5", "500m"),
            ("1500", "1500"),
            ("2000", "2k"),
            ("100Mi", "100Mi"),
            ("1024Mi", "1Gi"),
            ("1.5Gi", "1536Mi"),
            ("512", "512"),
            ("1536", "1536"),
            ("1Ki", "1Ki"),
            ("0.5Ki", "512"),
            ("1e3", "1e3"),
            ("1G", "1G"),
            ("0", "0"),
            ("0Mi", "0"),
            ("10n", "10n"),
        ] {
            assert_eq!(canonical(given), shown, "{given}");
        }
        assert!(Quantity::parse("1x").is_none());
        assert!(Quantity::parse("").is_none());
        assert!(Quantity::parse("a1").is_none());
    }

    #[test]
    fn values_round_up() {
        let q = |s| Quantity::parse(s).unwrap();
        assert_eq!(q("100m").value(), 1);
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("1.5").milli_value(), 1500);
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("1n").milli_value(), 1);
        assert!(q("1") > q("999m"));
        let mut sum = q("1Gi");
        sum.add(&q("512Mi"));
        assert_eq!(sum.to_string(), "1536Mi");
    }
}
