//! String formats a CRD schema may name (upstream's `apiserver/validation/formats.go` list) and
//! the checks kube-openapi's strfmt registry makes for them. Formats outside the list are not
//! checked, as upstream ignores them.

/// Formats upstream's CRD validation accepts in `format`.
pub const SUPPORTED: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "date-time",
    "int32",
    "int64",
    "float",
    "double",
];

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_date(s: &str) -> bool {
    s.parse::<jiff::civil::Date>().is_ok() && s.len() == 10
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Go's `time.ParseDuration` forms (`1h30m`, `250ms`) and ISO 8601 ones kube-openapi also takes.
fn is_duration(s: &str) -> bool {
    let re = regex::Regex::new(r"^[-+]?([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h|d|w))+$")
        .expect("duration pattern compiles");
    s == "0" || re.is_match(s) || s.parse::<jiff::Span>().is_ok()
}

/// Whether `value` is a valid `format`; unknown formats always are.
pub fn is_valid(format: &str, value: &str) -> bool {
    use base64::Engine;
    match format {
        "date-time" | "datetime" => value.parse::<jiff::Timestamp>().is_ok(),
        "date" => is_date(value),
        "byte" => base64::engine::general_purpose::STANDARD
            .decode(value)
            .is_ok(),
        "uuid" | "uuid3" | "uuid4" | "uuid5" => is_uuid(value),
        "ipv4" => value.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => value.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => value.parse::<ipnetwork::IpNetwork>().is_ok() && value.contains('/'),
        "mac" => {
            let parts: Vec<&str> = value.split([':', '-']).collect();
            matches!(parts.len(), 6 | 8 | 20)
                && parts
                    .iter()
                    .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
        }
        "hostname" => is_hostname(value),
        "email" => value
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && is_hostname(host)),
        "duration" => is_duration(value),
        "hexcolor" => {
            value.starts_with('#')
                && matches!(value.len(), 4 | 7)
                && value[1..].chars().all(|c| c.is_ascii_hexdigit())
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert!(is_valid("date-time", "2024-01-02T03:04:05Z"));
        assert!(!is_valid("date-time", "yesterday"));
        assert!(is_valid("date", "2024-01-02"));
        assert!(!is_valid("date", "2024-13-02"));
        assert!(is_valid("byte", "aGVsbG8="));
        assert!(!is_valid("byte", "***"));
        assert!(is_valid("uuid", "123e4567-e89b-12d3-a456-426614174000"));
        assert!(is_valid("ipv4", "10.0.0.1") && !is_valid("ipv4", "10.0.0.300"));
        assert!(is_valid("cidr", "10.0.0.0/8") && !is_valid("cidr", "10.0.0.0"));
        assert!(is_valid("duration", "1h30m") && !is_valid("duration", "soon"));
        assert!(is_valid("whatever", "anything"));
    }
}
