//! Decoding messages into the JSON form of the same object, guided by the
//! message table: envelopes, plain messages, maps, repeated fields and the
//! apimachinery types whose JSON is not an object.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use super::schema::{Kind, MapValue, Message, Scalar, Special, Table};
use super::time::{format_time, go_duration, GO_ZERO_TIME_UNIX};
use super::wire::{all_bytes, last_bytes, last_varint, malformed, scan, utf8, Reader, Wire};
use super::{Decoded, ProtobufError, MAGIC, MAX_DEPTH};

pub(super) struct Decoder<'t> {
    pub(super) table: &'t Table,
}

impl Decoder<'_> {
    /// `k8s\0` + runtime.Unknown { typeMeta, raw, contentEncoding, contentType }.
    pub(super) fn envelope(&self, body: &[u8], depth: usize) -> Result<Decoded, ProtobufError> {
        const UNKNOWN: &str = "runtime.Unknown";
        let rest = body
            .strip_prefix(MAGIC.as_slice())
            .ok_or(ProtobufError::MissingMagic)?;
        let fields = scan(UNKNOWN, &[rest])?;

        let type_meta = scan("runtime.TypeMeta", &all_bytes(UNKNOWN, &fields, 1)?)?;
        let api_version = match last_bytes("runtime.TypeMeta", &type_meta, 1)? {
            Some(b) => utf8("runtime.TypeMeta", b)?,
            None => "",
        };
        let kind = match last_bytes("runtime.TypeMeta", &type_meta, 2)? {
            Some(b) => utf8("runtime.TypeMeta", b)?,
            None => "",
        };
        let raw = last_bytes(UNKNOWN, &fields, 2)?.unwrap_or(&[]);
        let encoding = match last_bytes(UNKNOWN, &fields, 3)? {
            Some(b) => utf8(UNKNOWN, b)?,
            None => "",
        };
        if !encoding.is_empty() {
            return Err(ProtobufError::UnsupportedContentEncoding(
                encoding.to_string(),
            ));
        }
        if api_version.is_empty() || kind.is_empty() {
            return Err(ProtobufError::MissingTypeMeta);
        }
        let message = self.table.message_for(api_version, kind).ok_or_else(|| {
            ProtobufError::UnknownKind {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            }
        })?;

        let mut object = match self.message_value(message, &[raw], depth + 1)? {
            Some(Value::Object(object)) => object,
            _ => {
                return Err(ProtobufError::UnknownKind {
                    api_version: api_version.to_string(),
                    kind: kind.to_string(),
                })
            }
        };
        object.insert(
            "apiVersion".to_string(),
            Value::String(api_version.to_string()),
        );
        object.insert("kind".to_string(), Value::String(kind.to_string()));
        Ok(Decoded {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            object: Value::Object(object),
        })
    }

    fn message(&self, name: &str) -> Result<&Message, ProtobufError> {
        // Table::parse checked every reference, so this only fails if the
        // table and the code disagree; an error beats a panic all the same.
        self.table
            .get(name)
            .ok_or_else(|| ProtobufError::Table(format!("unknown message {name}")))
    }

    /// The JSON of one message value given as chunks; `None` where Go's JSON
    /// would be `null` (zero Time, empty RawExtension), so the field is left out.
    fn message_value(
        &self,
        message: &Message,
        chunks: &[&[u8]],
        depth: usize,
    ) -> Result<Option<Value>, ProtobufError> {
        if depth > MAX_DEPTH {
            return Err(ProtobufError::TooDeep(MAX_DEPTH));
        }
        let name = message.name;
        match message.special {
            Some(Special::Time) => self.time(name, chunks, false),
            Some(Special::MicroTime) => self.time(name, chunks, true),
            Some(Special::Duration) => {
                let fields = scan(name, chunks)?;
                let nanos = last_varint(name, &fields, 1)?.unwrap_or(0) as i64;
                Ok(Some(Value::String(go_duration(nanos))))
            }
            Some(Special::Quantity) => {
                let fields = scan(name, chunks)?;
                let text = match last_bytes(name, &fields, 1)? {
                    Some(b) => utf8(name, b)?,
                    None => "",
                };
                // Go's zero Quantity marshals as "0".
                let text = if text.is_empty() { "0" } else { text };
                Ok(Some(Value::String(text.to_string())))
            }
            Some(Special::IntOrString) => {
                let fields = scan(name, chunks)?;
                let kind = last_varint(name, &fields, 1)?.unwrap_or(0) as i64;
                match kind {
                    0 => {
                        let int = last_varint(name, &fields, 2)?.unwrap_or(0) as i64 as i32;
                        Ok(Some(Value::Number(Number::from(int))))
                    }
                    1 => {
                        let text = match last_bytes(name, &fields, 3)? {
                            Some(b) => utf8(name, b)?,
                            None => "",
                        };
                        Ok(Some(Value::String(text.to_string())))
                    }
                    other => Err(malformed(
                        name,
                        format!("IntOrString type {other} is neither 0 (int) nor 1 (string)"),
                    )),
                }
            }
            Some(Special::RawExtension) | Some(Special::RawJson) => {
                let fields = scan(name, chunks)?;
                let raw = last_bytes(name, &fields, 1)?.unwrap_or(&[]);
                if raw.is_empty() {
                    return Ok(None);
                }
                if message.special == Some(Special::RawExtension)
                    && raw.starts_with(MAGIC.as_slice())
                {
                    // An embedded object in Kubernetes protobuf form.
                    return Ok(Some(self.envelope(raw, depth + 1)?.object));
                }
                let value: Value = serde_json::from_slice(raw)
                    .map_err(|e| malformed(name, format!("embedded raw data is not JSON: {e}")))?;
                Ok(Some(value))
            }
            Some(Special::JsonSchemaPropsOrArray) => {
                // Go: the array when it has items, else the single schema.
                let fields = scan(name, chunks)?;
                let props = self.field_message(message, 1)?;
                let items = all_bytes(name, &fields, 2)?;
                if !items.is_empty() {
                    let mut array = Vec::new();
                    for item in items {
                        array.push(
                            self.message_value(props, &[item], depth + 1)?
                                .unwrap_or(Value::Null),
                        );
                    }
                    return Ok(Some(Value::Array(array)));
                }
                let schema = all_bytes(name, &fields, 1)?;
                if schema.is_empty() {
                    return Ok(None);
                }
                self.message_value(props, &schema, depth + 1)
            }
            Some(Special::JsonSchemaPropsOrBool) => {
                // Go: the schema when set, else the boolean.
                let fields = scan(name, chunks)?;
                let schema = all_bytes(name, &fields, 2)?;
                if !schema.is_empty() {
                    let props = self.field_message(message, 2)?;
                    return self.message_value(props, &schema, depth + 1);
                }
                let allows = last_varint(name, &fields, 1)?.unwrap_or(0) != 0;
                Ok(Some(Value::Bool(allows)))
            }
            Some(Special::JsonSchemaPropsOrStringArray) => {
                // Go: the strings when there are any, else the schema.
                let fields = scan(name, chunks)?;
                let strings = all_bytes(name, &fields, 2)?;
                if !strings.is_empty() {
                    let mut array = Vec::new();
                    for s in strings {
                        array.push(Value::String(utf8(name, s)?.to_string()));
                    }
                    return Ok(Some(Value::Array(array)));
                }
                let schema = all_bytes(name, &fields, 1)?;
                if schema.is_empty() {
                    return Ok(None);
                }
                let props = self.field_message(message, 1)?;
                self.message_value(props, &schema, depth + 1)
            }
            None => {
                let object = self.object(message, chunks, depth)?;
                if message.wrapper {
                    // The single repeated field is the whole JSON value.
                    let items = message
                        .fields
                        .first()
                        .and_then(|f| object.get(f.json))
                        .cloned();
                    return Ok(Some(items.unwrap_or_else(|| Value::Array(Vec::new()))));
                }
                Ok(Some(Value::Object(object)))
            }
        }
    }

    /// The message type of field `tag` of `message`.
    fn field_message(&self, message: &Message, tag: u32) -> Result<&Message, ProtobufError> {
        match message.field(tag).map(|f| f.kind) {
            Some(Kind::Message(name)) => self.message(name),
            _ => Err(ProtobufError::Table(format!(
                "{} field {tag} is not a message",
                message.name
            ))),
        }
    }

    /// meta.v1.Time / MicroTime { seconds, nanos } as Go's JSON writes them.
    fn time(
        &self,
        name: &str,
        chunks: &[&[u8]],
        micro: bool,
    ) -> Result<Option<Value>, ProtobufError> {
        let fields = scan(name, chunks)?;
        let seconds = last_varint(name, &fields, 1)?.map(|v| v as i64);
        let nanos = last_varint(name, &fields, 2)?.map(|v| v as i64 as i32);
        if seconds.is_none() && nanos.is_none() {
            // Go writes the zero time as an empty message.
            return Ok(None);
        }
        let nanos = i64::from(nanos.unwrap_or(0));
        // Go's time.Unix accepts nanos outside [0, 1e9) and carries them.
        let seconds = seconds
            .unwrap_or(0)
            .checked_add(nanos.div_euclid(1_000_000_000))
            .ok_or_else(|| malformed(name, "time out of range"))?;
        let nanos = nanos.rem_euclid(1_000_000_000);
        if seconds == GO_ZERO_TIME_UNIX && nanos == 0 {
            return Ok(None);
        }
        let text = format_time(seconds, nanos, micro)
            .ok_or_else(|| malformed(name, "time outside years 0 to 9999"))?;
        Ok(Some(Value::String(text)))
    }

    /// A plain message as a JSON object.
    fn object(
        &self,
        message: &Message,
        chunks: &[&[u8]],
        depth: usize,
    ) -> Result<Map<String, Value>, ProtobufError> {
        let name = message.name;
        // Occurrences of each known field, in wire order; unknown fields
        // (newer than the table) are skipped like Go's decoder does.
        let mut found: Vec<Vec<Wire<'_>>> = message.fields.iter().map(|_| Vec::new()).collect();
        for chunk in chunks {
            let mut reader = Reader::new(chunk);
            while !reader.at_end() {
                let (tag, value) = reader.field().map_err(|e| malformed(name, e))?;
                if let Ok(index) = message.fields.binary_search_by_key(&tag, |f| f.tag) {
                    found[index].push(value);
                }
            }
        }

        let mut object = Map::new();
        for (field, values) in message.fields.iter().zip(found) {
            if values.is_empty() {
                continue;
            }
            let at = || format!("{name}.{}", field.json);
            let value = match field.kind {
                Kind::Map { key, value } => {
                    let mut map = Map::new();
                    for entry in values {
                        let Wire::Bytes(entry) = entry else {
                            return Err(malformed(&at(), "map entry has the wrong wire type"));
                        };
                        let (k, v) = self.map_entry(&at(), key, value, entry, depth)?;
                        // Later entries win, like assigning into a Go map.
                        map.insert(k, v);
                    }
                    Value::Object(map)
                }
                Kind::Scalar(scalar) if field.repeated => {
                    let mut array = Vec::new();
                    for value in values {
                        match value {
                            Wire::Bytes(packed) if scalar.packable() => {
                                unpack(&at(), scalar, packed, &mut array)?
                            }
                            other => array.push(scalar_value(&at(), scalar, other)?),
                        }
                    }
                    Value::Array(array)
                }
                Kind::Scalar(scalar) => {
                    // values is not empty: checked above.
                    let last = values[values.len() - 1];
                    let value = scalar_value(&at(), scalar, last)?;
                    let empty = matches!(&value, Value::String(s) if s.is_empty());
                    if empty && !field.required {
                        // An empty omitempty string/bytes field: absent in Go's JSON.
                        continue;
                    }
                    value
                }
                Kind::Message(child) if field.repeated => {
                    let child = self.message(child)?;
                    let mut array = Vec::new();
                    for value in values {
                        let Wire::Bytes(bytes) = value else {
                            return Err(malformed(&at(), "message field has the wrong wire type"));
                        };
                        array.push(
                            self.message_value(child, &[bytes], depth + 1)?
                                .unwrap_or(Value::Null),
                        );
                    }
                    Value::Array(array)
                }
                Kind::Message(child) => {
                    let child = self.message(child)?;
                    let mut chunks = Vec::with_capacity(values.len());
                    for value in values {
                        let Wire::Bytes(bytes) = value else {
                            return Err(malformed(&at(), "message field has the wrong wire type"));
                        };
                        chunks.push(bytes);
                    }
                    let Some(value) = self.message_value(child, &chunks, depth + 1)? else {
                        continue;
                    };
                    if field.inline {
                        let Value::Object(inner) = value else {
                            return Err(ProtobufError::Table(format!(
                                "{} inlines a non-object",
                                at()
                            )));
                        };
                        // The parent's own fields win over embedded ones, as
                        // in Go's JSON.
                        for (k, v) in inner {
                            object.entry(k).or_insert(v);
                        }
                        continue;
                    }
                    value
                }
            };
            object.insert(field.json.to_string(), value);
        }
        Ok(object)
    }

    /// One map entry message { 1: key, 2: value } as a JSON key and value.
    fn map_entry(
        &self,
        at: &str,
        key_kind: Scalar,
        value_kind: MapValue,
        entry: &[u8],
        depth: usize,
    ) -> Result<(String, Value), ProtobufError> {
        let fields = scan(at, &[entry])?;
        let key = match fields.iter().rev().find(|(t, _)| *t == 1) {
            Some((_, wire)) => scalar_value(at, key_kind, *wire)?,
            None => scalar_default(key_kind),
        };
        // JSON object keys are strings; Go writes numeric keys as text.
        let key = match key {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let value = match value_kind {
            MapValue::Scalar(scalar) => match fields.iter().rev().find(|(t, _)| *t == 2) {
                Some((_, wire)) => scalar_value(at, scalar, *wire)?,
                None => scalar_default(scalar),
            },
            MapValue::Message(name) => {
                let message = self.message(name)?;
                let chunks = all_bytes(at, &fields, 2)?;
                self.message_value(message, &chunks, depth + 1)?
                    .unwrap_or(Value::Null)
            }
        };
        Ok((key, value))
    }
}

/// The value proto gives a map key or value that is missing from its entry.
fn scalar_default(scalar: Scalar) -> Value {
    match scalar {
        Scalar::String | Scalar::Bytes => Value::String(String::new()),
        Scalar::Bool => Value::Bool(false),
        _ => Value::Number(Number::from(0)),
    }
}

fn scalar_value(at: &str, scalar: Scalar, wire: Wire<'_>) -> Result<Value, ProtobufError> {
    let wrong = || malformed(at, format!("{scalar:?} field has the wrong wire type"));
    let value = match (scalar, wire) {
        (Scalar::String, Wire::Bytes(b)) => Value::String(utf8(at, b)?.to_string()),
        // Go's encoding/json writes []byte as standard base64.
        (Scalar::Bytes, Wire::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Scalar::Bool, Wire::Varint(v)) => Value::Bool(v != 0),
        // Truncation matches Go's int32(v) of the 64-bit varint.
        (Scalar::Int32, Wire::Varint(v)) => Value::Number(Number::from(v as i64 as i32)),
        (Scalar::Int64, Wire::Varint(v)) => Value::Number(Number::from(v as i64)),
        (Scalar::Uint32, Wire::Varint(v)) => Value::Number(Number::from(v as u32)),
        (Scalar::Uint64, Wire::Varint(v)) => Value::Number(Number::from(v)),
        (Scalar::Sint32, Wire::Varint(v)) => Value::Number(Number::from(zigzag(v) as i32)),
        (Scalar::Sint64, Wire::Varint(v)) => Value::Number(Number::from(zigzag(v))),
        (Scalar::Fixed64, Wire::Fixed64(v)) => Value::Number(Number::from(v)),
        (Scalar::Sfixed64, Wire::Fixed64(v)) => Value::Number(Number::from(v as i64)),
        (Scalar::Fixed32, Wire::Fixed32(v)) => Value::Number(Number::from(v)),
        (Scalar::Sfixed32, Wire::Fixed32(v)) => Value::Number(Number::from(v as i32)),
        (Scalar::Double, Wire::Fixed64(v)) => float(at, f64::from_bits(v))?,
        (Scalar::Float, Wire::Fixed32(v)) => float(at, f64::from(f32::from_bits(v)))?,
        _ => return Err(wrong()),
    };
    Ok(value)
}

fn float(at: &str, value: f64) -> Result<Value, ProtobufError> {
    // JSON has no NaN or infinity; Go's encoder refuses them too.
    Number::from_f64(value)
        .map(Value::Number)
        .ok_or_else(|| malformed(at, "floating point value is not finite"))
}

fn zigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends the values of a packed repeated numeric field.
fn unpack(
    at: &str,
    scalar: Scalar,
    packed: &[u8],
    out: &mut Vec<Value>,
) -> Result<(), ProtobufError> {
    let mut reader = Reader::new(packed);
    while !reader.at_end() {
        let wire = match scalar {
            Scalar::Double | Scalar::Fixed64 | Scalar::Sfixed64 => {
                let bytes = reader.fixed().map_err(|e| malformed(at, e))?;
                Wire::Fixed64(u64::from_le_bytes(bytes))
            }
            Scalar::Float | Scalar::Fixed32 | Scalar::Sfixed32 => {
                let bytes = reader.fixed().map_err(|e| malformed(at, e))?;
                Wire::Fixed32(u32::from_le_bytes(bytes))
            }
            _ => Wire::Varint(reader.varint().map_err(|e| malformed(at, e))?),
        };
        out.push(scalar_value(at, scalar, wire)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use k8s_pb::api::core::v1 as pb_core;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
    use prost::Message as _;
    use serde_json::json;

    use crate::protobuf::decode;
    use crate::protobuf::schema::TABLE;
    use crate::protobuf::testing::{
        deployment, envelope, go_meta, labels, push_field, s, wrap_raw,
    };

    #[test]
    fn wire_details() {
        // Unknown fields of every wire type are skipped.
        let mut meta = go_meta("n", "").encode_to_vec();
        push_field(&mut meta, 900, 0, &[0x96, 0x01]);
        push_field(&mut meta, 901, 1, &[0; 8]);
        push_field(&mut meta, 902, 2, &[2, b'h', b'i']);
        push_field(&mut meta, 903, 5, &[0; 4]);
        // A repeated message field's second occurrence merges into the first.
        let mut raw = Vec::new();
        push_field(&mut raw, 1, 2, &[meta.len() as u8]);
        raw.extend(&meta);
        let more = pb_meta::ObjectMeta {
            labels: labels(&[("a", "b")]),
            ..Default::default()
        }
        .encode_to_vec();
        push_field(&mut raw, 1, 2, &[more.len() as u8]);
        raw.extend(&more);
        let object = decode(&wrap_raw("v1", "Namespace", raw))
            .expect("decodes")
            .object;
        assert_eq!(
            object["metadata"],
            json!({"name": "n", "generation": 0, "labels": {"a": "b"}})
        );

        // Packed repeated int64 (Go writes them unpacked, both are accepted).
        let mut context = Vec::new();
        let mut packed = Vec::new();
        prost::encoding::encode_varint(1000, &mut packed);
        prost::encoding::encode_varint(2000, &mut packed);
        let tag = 4; // PodSecurityContext.supplementalGroups
        assert_eq!(
            TABLE
                .as_ref()
                .unwrap()
                .get("api.core.v1.PodSecurityContext")
                .unwrap()
                .field(tag)
                .unwrap()
                .json,
            "supplementalGroups"
        );
        push_field(&mut context, tag, 2, &[packed.len() as u8]);
        context.extend(&packed);
        push_field(&mut context, tag, 0, &[0x05]);
        let spec = {
            let mut spec = Vec::new();
            push_field(&mut spec, 14, 2, &[context.len() as u8]); // PodSpec.securityContext
            spec.extend(&context);
            spec
        };
        let mut pod = Vec::new();
        push_field(&mut pod, 2, 2, &[spec.len() as u8]);
        pod.extend(&spec);
        let object = decode(&wrap_raw("v1", "Pod", pod)).expect("decodes").object;
        assert_eq!(
            object["spec"]["securityContext"]["supplementalGroups"],
            json!([1000, 2000, 5])
        );

        // Negative int32 travels as a ten-byte varint.
        let probe = pb_core::Probe {
            period_seconds: Some(-1),
            ..Default::default()
        };
        let container = pb_core::Container {
            liveness_probe: Some(probe),
            ..Default::default()
        };
        let pod = pb_core::Pod {
            spec: Some(pb_core::PodSpec {
                containers: vec![container],
                ..Default::default()
            }),
            ..Default::default()
        };
        let object = decode(&envelope("v1", "Pod", &pod))
            .expect("decodes")
            .object;
        assert_eq!(
            object["spec"]["containers"][0]["livenessProbe"]["periodSeconds"],
            json!(-1)
        );
    }

    #[test]
    fn errors_are_reported() {
        let message = |body: &[u8]| decode(body).unwrap_err().to_string();

        assert!(message(b"{\"kind\":\"Namespace\"}").contains("magic"));
        assert_eq!(
            message(&wrap_raw("example.com/v1", "Widget", Vec::new())),
            "no protobuf decoding known for example.com/v1, Kind=Widget"
        );
        assert_eq!(
            message(&wrap_raw("v1", "Widget", Vec::new())),
            "no protobuf decoding known for v1, Kind=Widget"
        );
        assert!(message(&wrap_raw("", "", Vec::new())).contains("no apiVersion"));

        let mut gzip = MAGIC.to_vec();
        gzip.extend(
            k8s_pb::apimachinery::pkg::runtime::Unknown {
                type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                    api_version: s("v1"),
                    kind: s("Pod"),
                }),
                raw: Some(vec![]),
                content_encoding: s("gzip"),
                content_type: None,
            }
            .encode_to_vec(),
        );
        assert!(message(&gzip).contains("gzip"));

        // Truncated varint, length past the end, wrong wire type, bad UTF-8.
        assert!(
            message(&wrap_raw("v1", "Namespace", vec![0x0a, 0x05, 0x0a]))
                .contains("length past the end")
        );
        assert!(
            message(&wrap_raw("v1", "Namespace", vec![0x08, 0x80])).contains("truncated varint")
        );
        let wrong_wire = {
            let mut meta = Vec::new();
            push_field(&mut meta, 1, 0, &[0x01]); // ObjectMeta.name as a varint
            let mut raw = Vec::new();
            push_field(&mut raw, 1, 2, &[meta.len() as u8]);
            raw.extend(meta);
            raw
        };
        let text = message(&wrap_raw("v1", "Namespace", wrong_wire));
        assert!(
            text.contains("ObjectMeta.name") && text.contains("wrong wire type"),
            "{text}"
        );
        let bad_utf8 = {
            let mut meta = Vec::new();
            push_field(&mut meta, 1, 2, &[2, 0xff, 0xfe]);
            let mut raw = Vec::new();
            push_field(&mut raw, 1, 2, &[meta.len() as u8]);
            raw.extend(meta);
            raw
        };
        assert!(message(&wrap_raw("v1", "Namespace", bad_utf8)).contains("UTF-8"));
        assert!(message(&wrap_raw("v1", "Namespace", vec![0x0b])).contains("groups"));
        assert!(message(&wrap_raw("v1", "Namespace", vec![0x00])).contains("field number"));
    }

    #[test]
    fn deep_nesting_is_refused() {
        use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as ext;
        let mut schema = ext::JsonSchemaProps {
            r#type: s("string"),
            ..Default::default()
        };
        for _ in 0..MAX_DEPTH {
            schema = ext::JsonSchemaProps {
                not: Some(Box::new(schema)),
                ..Default::default()
            };
        }
        let crd = ext::CustomResourceDefinition {
            spec: Some(ext::CustomResourceDefinitionSpec {
                versions: vec![ext::CustomResourceDefinitionVersion {
                    schema: Some(ext::CustomResourceValidation {
                        open_apiv3_schema: Some(schema),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let error = decode(&envelope(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            &crd,
        ))
        .unwrap_err();
        assert!(matches!(error, ProtobufError::TooDeep(_)), "{error}");

        // Far deeper, built by hand (prost would refuse to encode it):
        // JSONSchemaProps.not (tag 28) inside JSONSchemaProps, 10,000 times.
        let mut nested: Vec<u8> = Vec::new();
        for _ in 0..10_000 {
            let mut outer = Vec::new();
            push_field(&mut outer, 28, 2, &[]);
            prost::encoding::encode_varint(nested.len() as u64, &mut outer);
            outer.extend(&nested);
            nested = outer;
        }
        let table = TABLE.as_ref().expect("table parses");
        let props = table
            .get("apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps")
            .expect("props");
        let error = Decoder { table }
            .message_value(props, &[&nested], 0)
            .unwrap_err();
        assert!(matches!(error, ProtobufError::TooDeep(_)), "{error}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

        #[test]
        fn random_bodies_never_panic(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode(&raw);
            let mut body = MAGIC.to_vec();
            body.extend(&raw);
            let _ = decode(&body);
            for (api_version, kind) in [("apps/v1", "Deployment"), ("v1", "Service"), ("apiextensions.k8s.io/v1", "CustomResourceDefinition")] {
                let _ = decode(&wrap_raw(api_version, kind, raw.clone()));
            }
        }

        #[test]
        fn mutated_deployments_never_panic(
            edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..8),
            cut in proptest::prelude::any::<usize>(),
        ) {
            let mut body = envelope("apps/v1", "Deployment", &deployment());
            for (at, byte) in edits {
                let index = 4 + at % (body.len() - 4);
                body[index] = byte;
            }
            let _ = decode(&body);
            body.truncate(4 + cut % (body.len() - 3));
            let _ = decode(&body);
        }
    }
}
