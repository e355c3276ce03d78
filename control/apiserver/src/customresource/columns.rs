//! `additionalPrinterColumns`: the Table `kubectl get` prints for a custom resource (upstream's
//! `registry/customresource/tableconvertor`). Name first, then one column per definition, its
//! cell the first value the column's JSONPath finds (none: a null cell, which kubectl shows as
//! `<none>`), converted by the column's type — `date` cells are ages (`5m`), as upstream's. A
//! version without columns gets upstream's default, Age from `.metadata.creationTimestamp`.
//!
//! The JSONPath subset is what CRDs use: `.a.b`, `['a.b']`, `[0]`, `[-1]`, `[*]`, and filters
//! `[?(@.type=="Ready")]` (`==`, `!=`); a path this does not understand was refused with the
//! CRD (`is_valid`).

use jiff::Timestamp;
use serde_json::{json, Value};

use crate::table::{format, Convertor, CREATED_DESC, NAME_DESC};

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub kind: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub path: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Field(String),
    Index(i64),
    All,
    /// `[?(@.<path> == value)]` or `!=`.
    Filter(Vec<String>, bool, Value),
}

/// A custom resource version's printer.
#[derive(Debug, Clone)]
pub struct Columns(pub Vec<Column>);

impl Columns {
    /// From a version's `additionalPrinterColumns` (the CRD's top-level ones for old CRDs).
    pub fn from_definitions(definitions: Option<&Value>) -> Columns {
        let list = definitions
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty());
        let Some(list) = list else {
            return Columns(vec![Column {
                name: "Age".into(),
                kind: "date".into(),
                format: String::new(),
                description: CREATED_DESC.into(),
                priority: 0,
                path: parse(".metadata.creationTimestamp").unwrap_or_default(),
            }]);
        };
        Columns(
            list.iter()
                .filter_map(|c| {
                    let path = c.get("jsonPath").and_then(Value::as_str)?;
                    Some(Column {
                        name: c["name"].as_str().unwrap_or_default().to_string(),
                        kind: c["type"].as_str().unwrap_or("string").to_string(),
                        format: c["format"].as_str().unwrap_or_default().to_string(),
                        description: c["description"]
                            .as_str()
                            .filter(|d| !d.is_empty())
                            .map(str::to_string)
                            .unwrap_or_else(|| {
                                format!(
                                    "Custom resource definition column (in JSONPath format): {path}"
                                )
                            }),
                        priority: c["priority"].as_i64().unwrap_or(0),
                        path: parse(path)?,
                    })
                })
                .collect(),
        )
    }
}

impl Convertor for Columns {
    fn column_definitions(&self) -> Value {
        let mut out = vec![
            json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESC, "priority": 0}),
        ];
        for c in &self.0 {
            out.push(json!({"name": c.name, "type": c.kind, "format": c.format, "description": c.description, "priority": c.priority}));
        }
        Value::Array(out)
    }

    fn cells(&self, object: &Value, now: Timestamp) -> Vec<Value> {
        let mut cells = vec![format::name(object)];
        for c in &self.0 {
            let found = eval(&c.path, object).into_iter().next();
            cells.push(match found {
                None | Some(Value::Null) => Value::Null,
                Some(v) => cell(&c.kind, v, now),
            });
        }
        cells
    }
}

fn cell(kind: &str, v: &Value, now: Timestamp) -> Value {
    match kind {
        "string" => match v {
            Value::String(s) => Value::from(s.as_str()),
            other => Value::from(other.to_string()),
        },
        "integer" => match v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)) {
            Some(i) => Value::from(i),
            None => Value::Null,
        },
        "number" => v.as_f64().map(Value::from).unwrap_or(Value::Null),
        "boolean" => v.as_bool().map(Value::from).unwrap_or(Value::Null),
        "date" => match v.as_str() {
            Some(s) => match s.parse::<Timestamp>() {
                Ok(ts) => Value::from(format::since(Some(ts), now)),
                Err(_) => Value::from("<invalid>"),
            },
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

/// Whether upstream's JSONPath parser would take `path` as a column or selectable field path.
pub fn is_valid(path: &str) -> bool {
    parse(path).is_some()
}

/// Parses a JSONPath without its braces (`.status.conditions[?(@.type=="Ready")].status`).
pub fn parse(path: &str) -> Option<Vec<Step>> {
    let path = path.trim();
    let path = path
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(path);
    let path = path.strip_prefix('$').unwrap_or(path);
    let path = if path.starts_with(|c: char| c.is_ascii_alphabetic()) {
        format!(".{path}")
    } else {
        path.to_string()
    };
    let chars: Vec<char> = path.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && chars[end] != '.' && chars[end] != '[' {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                if name.is_empty() {
                    return None;
                }
                if name == "*" {
                    steps.push(Step::All);
                } else {
                    steps.push(Step::Field(name));
                }
                i = end;
            }
            '[' => {
                let close = find_close(&chars, i)?;
                let inner: String = chars[i + 1..close].iter().collect();
                steps.push(bracket(inner.trim())?);
                i = close + 1;
            }
            _ => return None,
        }
    }
    if steps.is_empty() {
        return None;
    }
    Some(steps)
}

fn find_close(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (j, &c) in chars.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    if s.len() >= 2
        && ((s.starts_with('\'') && s.ends_with('\'')) || (s.starts_with('"') && s.ends_with('"')))
    {
        return Some(s[1..s.len() - 1].to_string());
    }
    None
}

fn bracket(inner: &str) -> Option<Step> {
    if inner == "*" {
        return Some(Step::All);
    }
    if let Ok(n) = inner.parse::<i64>() {
        return Some(Step::Index(n));
    }
    if let Some(name) = unquote(inner) {
        return Some(Step::Field(name));
    }
    let filter = inner.strip_prefix("?(")?.strip_suffix(')')?;
    let (lhs, rhs, equal) = if let Some((l, r)) = filter.split_once("==") {
        (l, r, true)
    } else if let Some((l, r)) = filter.split_once("!=") {
        (l, r, false)
    } else {
        return None;
    };
    let lhs = lhs.trim().strip_prefix('@')?;
    let fields: Vec<String> = lhs
        .split('.')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let value = match unquote(rhs) {
        Some(s) => Value::from(s),
        None => serde_json::from_str(rhs.trim()).ok()?,
    };
    Some(Step::Filter(fields, equal, value))
}

/// Every value the path finds in `v`, in document order.
pub fn eval<'a>(steps: &[Step], v: &'a Value) -> Vec<&'a Value> {
    let mut current = vec![v];
    for step in steps {
        let mut next = Vec::new();
        for node in current {
            match step {
                Step::Field(name) => {
                    if let Some(child) = node.get(name) {
                        next.push(child);
                    }
                }
                Step::Index(i) => {
                    if let Some(items) = node.as_array() {
                        let idx = if *i < 0 { items.len() as i64 + i } else { *i };
                        if let Some(child) = usize::try_from(idx).ok().and_then(|i| items.get(i)) {
                            next.push(child);
                        }
                    }
                }
                Step::All => match node {
                    Value::Array(items) => next.extend(items.iter()),
                    Value::Object(map) => next.extend(map.values()),
                    _ => {}
                },
                Step::Filter(fields, equal, expected) => {
                    if let Some(items) = node.as_array() {
                        for item in items {
                            let mut here = Some(item);
                            for f in fields {
                                here = here.and_then(|h| h.get(f));
                            }
                            let matches = here.is_some_and(|h| h == expected);
                            if matches == *equal && here.is_some() {
                                next.push(item);
                            }
                        }
                    }
                }
            }
        }
        current = next;
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_cells() {
        let obj = json!({
            "metadata": {"name": "w", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"replicas": 3, "image": "nginx", "tags": ["a", "b"], "dotted.key": "x"},
            "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}
        });
        let columns = Columns::from_definitions(Some(&json!([
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Image", "type": "string", "jsonPath": ".spec.image", "priority": 1},
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
            {"name": "Tag", "type": "string", "jsonPath": ".spec.tags[-1]"},
            {"name": "Dotted", "type": "string", "jsonPath": ".spec['dotted.key']"},
            {"name": "Missing", "type": "string", "jsonPath": ".status.nothing"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
        ])));
        let now: Timestamp = "2024-01-01T00:05:00Z".parse().unwrap();
        assert_eq!(
            columns.cells(&obj, now),
            vec![
                json!("w"),
                json!(3),
                json!("nginx"),
                json!("True"),
                json!("b"),
                json!("x"),
                Value::Null,
                json!("5m")
            ]
        );
        let defs = columns.column_definitions();
        assert_eq!(defs[0]["name"], "Name");
        assert_eq!(defs[2]["priority"], 1);
        assert_eq!(
            defs[1]["description"],
            "Custom resource definition column (in JSONPath format): .spec.replicas"
        );
        let default = Columns::from_definitions(None);
        assert_eq!(default.cells(&obj, now), vec![json!("w"), json!("5m")]);
        assert!(!is_valid("spec.replicas["));
        assert!(is_valid(".spec.replicas"));
    }
}
