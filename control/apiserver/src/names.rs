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
    s.len() <= 63 && matches_name_part(s)
}

/// The name-part regex alone, without the length limit.
fn matches_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
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

/// Upstream's messages for qualified names (label keys, taint keys, provisioners) and label
/// values that fail their regex.
pub const QUALIFIED_NAME_PART_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const QUALIFIED_NAME_MSG: &str = "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
/// What a bad label key (or other qualified name) gets in metadata validation.
pub const LABEL_KEY_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
pub const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Upstream's `IsQualifiedName` messages, empty when `s` is a qualified name.
pub fn qualified_name_messages(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let name = match s.split('/').collect::<Vec<_>>()[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                out.push("prefix part must be non-empty".to_string());
            } else if !is_dns1123_subdomain(prefix) {
                out.push(format!("prefix part {DNS1123_SUBDOMAIN_MSG}"));
            }
            name
        }
        _ => return vec![QUALIFIED_NAME_MSG.to_string()],
    };
    if name.is_empty() {
        out.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        out.push("name part must be no more than 63 characters".to_string());
    }
    if !matches_name_part(name) {
        out.push(QUALIFIED_NAME_PART_MSG.to_string());
    }
    out
}

/// Upstream's `IsValidLabelValue` messages, empty when `s` is a label value.
pub fn label_value_messages(s: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if s.len() > 63 {
        out.push("must be no more than 63 characters");
    }
    if !s.is_empty() && !matches_name_part(s) {
        out.push(LABEL_VALUE_MSG);
    }
    out
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
        assert!(qualified_name_messages("example.com/unhealthy").is_empty());
        assert_eq!(
            qualified_name_messages(""),
            ["name part must be non-empty", QUALIFIED_NAME_PART_MSG]
        );
        assert_eq!(
            qualified_name_messages("Bad Key"),
            [QUALIFIED_NAME_PART_MSG]
        );
        assert_eq!(
            qualified_name_messages("/x"),
            ["prefix part must be non-empty"]
        );
        assert_eq!(qualified_name_messages("a/b/c"), [QUALIFIED_NAME_MSG]);
        assert!(label_value_messages("").is_empty());
        assert_eq!(label_value_messages("-x"), [LABEL_VALUE_MSG]);
    }
}
