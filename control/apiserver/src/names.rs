//! Name predicates (apimachinery/pkg/util/validation): DNS-1123 labels and subdomains, DNS-1035
//! labels, qualified names. A leaf module: label selectors and every resource's validation use it.

pub const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
pub const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
pub const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// The name part of a qualified name or a label value: `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, ≤ 63.
pub fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

pub fn is_qualified_name(s: &str) -> bool {
    match s.rsplit_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(s),
    }
}

/// How a resource's names are checked (upstream's per-resource `ValidateName` funcs): the
/// predicate and the message a failing name gets.
#[derive(Clone, Copy)]
pub struct NameRule {
    pub check: fn(&str) -> bool,
    pub message: &'static str,
}

/// Most resources: a DNS-1123 subdomain.
pub const SUBDOMAIN: NameRule = NameRule {
    check: is_dns1123_subdomain,
    message: DNS1123_SUBDOMAIN_MSG,
};

/// Namespaces: a DNS-1123 label.
pub const LABEL: NameRule = NameRule {
    check: is_dns1123_label,
    message: DNS1123_LABEL_MSG,
};

/// Services: a DNS-1035 label (the name becomes a DNS name that must not start with a digit).
pub const DNS1035: NameRule = NameRule {
    check: is_dns1035_label,
    message: DNS1035_LABEL_MSG,
};

/// RBAC objects: any path segment name (`ValidateRBACName`).
pub const PATH_SEGMENT: NameRule = NameRule {
    check: |s| !s.is_empty() && !s.contains('/') && s != "." && s != "..",
    message: "may not contain '/'",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns1123_label("blue"));
        assert!(!is_dns1123_label("Blue"));
        assert!(!is_dns1123_label("-a"));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(!is_qualified_name("/x"));
    }
}
