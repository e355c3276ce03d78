//! JSON request bodies parsed in one pass that also finds duplicate fields.
//!
//! `serde_json::Value` keeps the last of two equal keys silently; upstream's strict decoder
//! reports each as `duplicate field "<path>"` (an error under `fieldValidation=Strict`, a
//! warning under `Warn`, the default). The path uses the same dotted form as unknown fields.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// Where the parser is, as path segments, and the duplicates found so far.
#[derive(Default)]
struct Walk {
    path: Vec<String>,
    duplicates: Vec<String>,
}

impl Walk {
    fn current(&self, last: &str) -> String {
        let mut out = String::new();
        for segment in self.path.iter().map(String::as_str).chain([last]) {
            if !out.is_empty() && !segment.starts_with('[') {
                out.push('.');
            }
            out.push_str(segment);
        }
        out
    }
}

struct ValueSeed<'a>(&'a RefCell<Walk>);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let index = format!("[{}]", items.len());
            self.0.borrow_mut().path.push(index);
            let next = seq.next_element_seed(ValueSeed(self.0));
            self.0.borrow_mut().path.pop();
            match next? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.0.borrow_mut().path.push(key.clone());
            let value = map.next_value_seed(ValueSeed(self.0));
            let mut walk = self.0.borrow_mut();
            walk.path.pop();
            let value = value?;
            if object.insert(key.clone(), value).is_some() {
                let path = walk.current(&key);
                if !walk.duplicates.contains(&path) {
                    walk.duplicates.push(path);
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// Parses JSON like `serde_json::from_slice::<Value>` (the last duplicate wins) and returns
/// the paths of duplicated fields.
pub fn parse_with_duplicates(bytes: &[u8]) -> serde_json::Result<(Value, Vec<String>)> {
    let walk = RefCell::new(Walk::default());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = ValueSeed(&walk).deserialize(&mut de)?;
    de.end()?;
    Ok((value, walk.into_inner().duplicates))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn duplicates_are_found_with_their_paths_and_the_last_value_wins() {
        let (v, dups) = parse_with_duplicates(
            br#"{"metadata":{"name":"a","name":"b"},"spec":{"containers":[{"image":"x","image":"y"}]},"kind":"Pod","kind":"Pod"}"#,
        )
        .unwrap();
        assert_eq!(v["metadata"]["name"], "b");
        assert_eq!(v["spec"]["containers"][0]["image"], "y");
        assert_eq!(
            dups,
            vec!["metadata.name", "spec.containers[0].image", "kind"]
        );
    }

    #[test]
    fn same_result_as_serde_json_without_duplicates() {
        let text = br#"{"a":[1,-2,3.5,null,true,"s",{"b":{}}],"c":18446744073709551615}"#;
        let (v, dups) = parse_with_duplicates(text).unwrap();
        assert!(dups.is_empty());
        assert_eq!(v, serde_json::from_slice::<Value>(text).unwrap());
        assert_eq!(v["c"], json!(u64::MAX));
    }

    #[test]
    fn malformed_json_is_an_error() {
        for bad in [&b"{"[..], b"[1,", b"{\"a\":1} x", b""] {
            assert!(parse_with_duplicates(bad).is_err());
        }
    }
}
