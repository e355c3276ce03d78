//! Label and field selectors (apimachinery/pkg/labels and pkg/fields), parsed from query strings
//! and matched against stored JSON objects.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    reqs: Vec<LabelReq>,
}

fn valid_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() || p.len() > 253 || !crate::names::is_dns1123_subdomain(p) {
            return false;
        }
    }
    crate::names::is_qualified_name_part(name)
}

fn valid_label_value(v: &str) -> bool {
    v.is_empty() || crate::names::is_qualified_name_part(v)
}

impl LabelSelector {
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Parses upstream's selector syntax: `a=b,c!=d,e,!f,g in (x,y),h notin (z),i>3`.
    pub fn parse(input: &str) -> ApiResult<LabelSelector> {
        let bad = |why: &str| ApiError::bad_request(format!("unable to parse requirement: {why}"));
        let mut reqs = Vec::new();
        let chars: Vec<char> = input.chars().collect();
        let mut i = 0;
        let skip_ws = |i: &mut usize| {
            while *i < chars.len() && chars[*i].is_whitespace() {
                *i += 1;
            }
        };
        loop {
            skip_ws(&mut i);
            if i >= chars.len() {
                break;
            }
            let negated = chars[i] == '!';
            if negated {
                i += 1;
                skip_ws(&mut i);
            }
            let start = i;
            while i < chars.len()
                && !matches!(chars[i], '=' | '!' | ',' | '(' | ')' | '<' | '>')
                && !chars[i].is_whitespace()
            {
                i += 1;
            }
            let key: String = chars[start..i].iter().collect();
            if key.is_empty() {
                return Err(bad(&format!(
                    "found '{}', expected: identifier",
                    chars.get(i).copied().unwrap_or(' ')
                )));
            }
            if !valid_label_key(&key) {
                return Err(bad(&format!("invalid label key {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")));
            }
            skip_ws(&mut i);
            if negated {
                reqs.push(LabelReq::NotExists(key));
            } else if i >= chars.len() || chars[i] == ',' {
                reqs.push(LabelReq::Exists(key));
            } else if chars[i] == '=' || chars[i] == '!' || chars[i] == '<' || chars[i] == '>' {
                let op: String = if chars[i] == '=' && chars.get(i + 1) == Some(&'=') {
                    i += 2;
                    "=".into()
                } else if chars[i] == '!' {
                    if chars.get(i + 1) != Some(&'=') {
                        return Err(bad("found '!', expected: '!='"));
                    }
                    i += 2;
                    "!=".into()
                } else {
                    i += 1;
                    chars[i - 1].to_string()
                };
                skip_ws(&mut i);
                let vstart = i;
                while i < chars.len() && chars[i] != ',' && !chars[i].is_whitespace() {
                    i += 1;
                }
                let value: String = chars[vstart..i].iter().collect();
                match op.as_str() {
                    "=" | "!=" => {
                        if !valid_label_value(&value) {
                            return Err(bad(&format!("invalid label value: {value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'")));
                        }
                        reqs.push(if op == "=" {
                            LabelReq::Eq(key, value)
                        } else {
                            LabelReq::NotEq(key, value)
                        });
                    }
                    _ => {
                        let n: i64 = value.parse().map_err(|_| bad(&format!("for 'Gt', 'Lt' operators, the value must be an integer, got {value:?}")))?;
                        reqs.push(if op == ">" {
                            LabelReq::Gt(key, n)
                        } else {
                            LabelReq::Lt(key, n)
                        });
                    }
                }
            } else {
                // `in (...)` / `notin (...)`
                let wstart = i;
                while i < chars.len() && chars[i].is_alphabetic() {
                    i += 1;
                }
                let word: String = chars[wstart..i].iter().collect();
                if word != "in" && word != "notin" {
                    return Err(bad(&format!(
                        "found '{word}', expected: in, notin, =, ==, !=, gt, lt"
                    )));
                }
                skip_ws(&mut i);
                if chars.get(i) != Some(&'(') {
                    return Err(bad("found end of input, expected: '('"));
                }
                i += 1;
                let vstart = i;
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(bad("found end of input, expected: ')'"));
                }
                let values: Vec<String> = chars[vstart..i]
                    .iter()
                    .collect::<String>()
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect();
                for v in &values {
                    if !valid_label_value(v) {
                        return Err(bad(&format!("invalid label value: {v:?}")));
                    }
                }
                i += 1;
                reqs.push(if word == "in" {
                    LabelReq::In(key, values)
                } else {
                    LabelReq::NotIn(key, values)
                });
            }
            skip_ws(&mut i);
            if i < chars.len() {
                if chars[i] != ',' {
                    return Err(bad(&format!(
                        "found '{}', expected: ',' or end of string",
                        chars[i]
                    )));
                }
                i += 1;
            }
        }
        Ok(LabelSelector { reqs })
    }

    /// From a `metav1.LabelSelector` object (matchLabels + matchExpressions).
    pub fn from_object(selector: &Value) -> Result<LabelSelector, String> {
        let mut reqs = Vec::new();
        if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in labels {
                reqs.push(LabelReq::Eq(
                    k.clone(),
                    v.as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        if let Some(exprs) = selector.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                reqs.push(match e.get("operator").and_then(Value::as_str) {
                    Some("In") => LabelReq::In(key, values),
                    Some("NotIn") => LabelReq::NotIn(key, values),
                    Some("Exists") => LabelReq::Exists(key),
                    Some("DoesNotExist") => LabelReq::NotExists(key),
                    other => {
                        return Err(format!("{other:?} is not a valid label selector operator"))
                    }
                });
            }
        }
        Ok(LabelSelector { reqs })
    }

    pub fn matches_labels(&self, labels: Option<&serde_json::Map<String, Value>>) -> bool {
        self.matches_with(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
    }

    /// Matches a typed object's labels (`metadata.labels` of a k8s-openapi type).
    pub fn matches_map(&self, labels: Option<&std::collections::BTreeMap<String, String>>) -> bool {
        self.matches_with(|k| labels.and_then(|l| l.get(k)).map(String::as_str))
    }

    fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.reqs.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.reqs.is_empty()
            || self.matches_labels(
                object
                    .pointer("/metadata/labels")
                    .and_then(Value::as_object),
            )
    }
}

#[derive(Debug, Clone, Default)]
pub struct FieldSelector {
    /// (field path, expected value, equal?)
    reqs: Vec<(String, String, bool)>,
}

/// The string value upstream compares for a field path.
fn field_value(object: &Value, path: &str) -> String {
    if path == "source" {
        // Events: `source` means source.component.
        return field_value(object, "source.component");
    }
    let pointer = format!("/{}", path.replace('.', "/"));
    match object.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => String::new(),
        None if path == "spec.hostNetwork" || path == "spec.unschedulable" => "false".into(),
        None => String::new(),
    }
}

impl FieldSelector {
    /// `selectable`: the field paths the resource supports beyond metadata.name and
    /// metadata.namespace (its strategy's `selectable_fields`).
    pub fn parse(input: &str, selectable: &[&str]) -> ApiResult<FieldSelector> {
        let mut reqs = Vec::new();
        for part in split_unescaped(input, ',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, true)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{input}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if field != "metadata.name"
                && field != "metadata.namespace"
                && !selectable.contains(&field)
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            reqs.push((field.to_string(), unescape(value.trim()), equal));
        }
        Ok(FieldSelector { reqs })
    }

    /// The `fieldSelector` of a request on `info`: its strategy's fields, or for a version
    /// served through a conversion, that version's labels read as the storage version's.
    pub fn for_resource(
        info: &crate::resources::ResourceInfo,
        input: &str,
    ) -> ApiResult<FieldSelector> {
        let Some(conversion) = info.conversion.filter(|c| !c.field_labels.is_empty()) else {
            return FieldSelector::parse(input, info.strategy.selectable_fields());
        };
        let labels: Vec<&str> = conversion.field_labels.iter().map(|(l, _)| *l).collect();
        let mut selector = FieldSelector::parse(input, &labels)?;
        for (field, _, _) in &mut selector.reqs {
            if let Some((_, stored)) = conversion.field_labels.iter().find(|(l, _)| l == field) {
                *field = stored.to_string();
            }
        }
        Ok(selector)
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.reqs
            .iter()
            .all(|(f, v, eq)| (field_value(object, f) == *v) == *eq)
    }

    /// `metadata.name=x` lets a list read one key instead of the whole prefix.
    pub fn exact_name(&self) -> Option<&str> {
        self.reqs
            .iter()
            .find(|(f, _, eq)| f == "metadata.name" && *eq)
            .map(|(_, v, _)| v.as_str())
    }
}

fn split_unescaped(input: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in input.chars() {
        if escaped {
            parts.last_mut().unwrap().push('\\');
            parts.last_mut().unwrap().push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(String::new());
        } else {
            parts.last_mut().unwrap().push(c);
        }
    }
    parts
}

fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in v.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "labels": labels}})
    }

    #[test]
    fn label_selector_forms() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("tier in (back)", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("n>3", true),
            ("n<3", false),
            ("", true),
        ] {
            assert_eq!(
                LabelSelector::parse(sel).unwrap().matches(&o),
                want,
                "{sel}"
            );
        }
    }

    #[test]
    fn bad_label_selectors_are_400() {
        for sel in [
            "app in (web",
            "=web",
            "a b",
            "app!web",
            "bad key!=x",
            "n>x",
            "-x=y",
        ] {
            let err = LabelSelector::parse(sel).unwrap_err();
            assert_eq!(err.code, 400, "{sel}");
        }
    }

    #[test]
    fn field_selectors() {
        let pods = crate::resources::pods().strategy.selectable_fields();
        let pod = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert!(FieldSelector::parse("spec.nodeName=n1", pods)
            .unwrap()
            .matches(&pod));
        assert!(!FieldSelector::parse("spec.nodeName!=n1", pods)
            .unwrap()
            .matches(&pod));
        assert!(
            FieldSelector::parse("metadata.name==p,status.phase=Running", pods)
                .unwrap()
                .matches(&pod)
        );
        assert!(FieldSelector::parse("spec.nodeName=", pods)
            .unwrap()
            .matches(&json!({"metadata": {"name": "q"}})));
        let err = FieldSelector::parse("spec.foo=1", pods).unwrap_err();
        assert_eq!(err.message, "field label not supported: spec.foo");
        assert!(FieldSelector::parse("nonsense", pods).is_err());
    }
}
