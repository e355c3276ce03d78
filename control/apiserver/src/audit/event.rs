//! The audit event, `audit.k8s.io/v1` `Event` (`apiserver/pkg/apis/audit/v1/types.go`), with
//! upstream's JSON field names, order and omissions, and the one-line `legacy` text format
//! (`audit/format.go`).
//!
//! Bodies are not decoded on the request's path: an event carries the request body's bytes and
//! the response's already-serialised JSON (`Bodies`), and the log's writer thread turns them
//! into `requestObject`/`responseObject` (`Event::resolve_bodies`) just before writing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::Bytes;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;

use super::policy::{Level, Stage, API_VERSION};
use crate::auth::UserInfo;

impl Serialize for Level {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Serialize for Stage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// metav1.MicroTime: RFC 3339 in UTC with microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MicroTime(pub jiff::Timestamp);

impl MicroTime {
    pub fn now() -> MicroTime {
        MicroTime(jiff::Timestamp::now())
    }
}

impl Default for MicroTime {
    fn default() -> MicroTime {
        MicroTime(jiff::Timestamp::UNIX_EPOCH)
    }
}

impl Serialize for MicroTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
    }
}

/// authentication/v1 `UserInfo`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct User {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

impl From<&UserInfo> for User {
    fn from(u: &UserInfo) -> User {
        User {
            username: u.name.clone(),
            uid: u.uid.clone(),
            groups: u.groups.clone(),
            extra: u.extra.clone(),
        }
    }
}

/// The object a request is about (`ObjectReference`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EmptyListMeta {}

/// The response's metav1.Status: the code alone for a success, or the Status object the
/// server answered with (failures, and deletes answered with a Status).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ResponseStatus {
    pub metadata: EmptyListMeta,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(skip_serializing_if = "is_zero")]
    pub code: i32,
}

fn is_zero(code: &i32) -> bool {
    *code == 0
}

impl ResponseStatus {
    pub fn code(code: u16) -> ResponseStatus {
        ResponseStatus {
            code: code.into(),
            ..Default::default()
        }
    }

    /// The status of a response body that is a `Status` object.
    pub fn from_status_object(v: &Value) -> Option<ResponseStatus> {
        if v.get("kind").and_then(Value::as_str) != Some("Status") {
            return None;
        }
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Some(ResponseStatus {
            metadata: EmptyListMeta {},
            status: text("status"),
            message: text("message"),
            reason: text("reason"),
            details: v.get("details").filter(|d| !d.is_null()).cloned(),
            code: v.get("code").and_then(Value::as_i64).unwrap_or(0) as i32,
        })
    }
}

/// One audit event.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub level: Level,
    #[serde(rename = "auditID")]
    pub audit_id: String,
    pub stage: Stage,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub verb: String,
    pub user: User,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<User>,
    #[serde(rename = "sourceIPs", skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_ref: Option<ObjectReference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<ResponseStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_object: Option<Box<RawValue>>,
    pub request_received_timestamp: MicroTime,
    pub stage_timestamp: MicroTime,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Bodies still to be turned into `requestObject`/`responseObject`.
    #[serde(skip)]
    pub(crate) bodies: Option<Box<Bodies>>,
}

impl Default for Event {
    fn default() -> Event {
        Event {
            kind: "Event",
            api_version: API_VERSION,
            level: Level::None,
            audit_id: String::new(),
            stage: Stage::RequestReceived,
            request_uri: String::new(),
            verb: String::new(),
            user: User::default(),
            impersonated_user: None,
            source_ips: Vec::new(),
            user_agent: String::new(),
            object_ref: None,
            response_status: None,
            request_object: None,
            response_object: None,
            request_received_timestamp: MicroTime::default(),
            stage_timestamp: MicroTime::default(),
            annotations: BTreeMap::new(),
            bodies: None,
        }
    }
}

/// A request body kept for the event.
#[derive(Clone, Debug)]
pub(crate) struct RequestBody {
    /// The body's frames as they were read (joined on the writer thread).
    pub chunks: Vec<Bytes>,
    pub content_type: String,
    /// Log it as `requestObject` (level Request and up).
    pub log_object: bool,
    /// Fill the object reference's name, namespace, uid and resourceVersion from it (create
    /// and update, at any level, as upstream's `LogRequestObject` does).
    pub fill_object_ref: bool,
}

/// The bodies of a completed request, resolved on the writer thread.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bodies {
    pub request: Option<RequestBody>,
    /// The response's JSON (level RequestResponse).
    pub response: Option<Bytes>,
    pub omit_managed_fields: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetaOnly {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
}

#[derive(Deserialize, Default)]
struct WithMeta {
    #[serde(default)]
    metadata: Option<MetaOnly>,
}

/// Drops `metadata.managedFields` from an object, a list's items or a Table's rows.
fn strip_managed_fields(v: &mut Value) {
    fn strip(o: &mut Value) {
        if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
    }
    strip(v);
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(strip);
    }
    if v.get("kind").and_then(Value::as_str) == Some("Table") {
        if let Some(rows) = v.get_mut("rows").and_then(Value::as_array_mut) {
            for row in rows {
                if let Some(o) = row.get_mut("object") {
                    strip(o);
                }
            }
        }
    }
}

/// JSON text as one line: in valid JSON a line break can only be whitespace between tokens.
fn raw_json(text: &str) -> Option<Box<RawValue>> {
    let raw: Box<RawValue> = serde_json::from_str(text).ok()?;
    if raw.get().contains(['\n', '\r']) {
        let one_line: String = raw
            .get()
            .chars()
            .filter(|c| !matches!(c, '\n' | '\r'))
            .collect();
        return RawValue::from_string(one_line).ok();
    }
    Some(raw)
}

fn value_json(v: &Value) -> Option<Box<RawValue>> {
    serde_json::value::to_raw_value(v).ok()
}

/// A decoded request body: JSON text kept as sent where it can be, else the decoded value.
enum Decoded<'a> {
    Json(&'a str),
    Value(Value),
}

fn decode_request<'a>(content_type: &str, bytes: &'a [u8]) -> Option<Decoded<'a>> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/yaml"
        | "application/x-yaml"
        | "text/yaml"
        | "application/apply-patch+yaml" => serde_yaml::from_slice::<Value>(bytes)
            .ok()
            .map(Decoded::Value),
        crate::protobuf::MEDIA_TYPE => crate::protobuf::decode(bytes)
            .ok()
            .map(|d| Decoded::Value(d.object)),
        m if m.is_empty() || m.ends_with("json") => {
            std::str::from_utf8(bytes).ok().map(Decoded::Json)
        }
        _ => None,
    }
}

impl Event {
    /// Turns the kept bodies into `requestObject`, `responseObject` and the object reference's
    /// fields. Bodies that do not decode are left out, as upstream leaves out objects it could
    /// not decode.
    pub fn resolve_bodies(&mut self) {
        let Some(bodies) = self.bodies.take() else {
            return;
        };
        let omit = bodies.omit_managed_fields;
        if let Some(body) = &bodies.request {
            let joined: Bytes = match body.chunks.as_slice() {
                [one] => one.clone(),
                many => many.concat().into(),
            };
            if let Some(decoded) = decode_request(&body.content_type, &joined) {
                let meta = if body.fill_object_ref {
                    match &decoded {
                        Decoded::Json(text) => serde_json::from_str::<WithMeta>(text)
                            .ok()
                            .and_then(|w| w.metadata),
                        Decoded::Value(v) => serde_json::from_value::<WithMeta>(v.clone())
                            .ok()
                            .and_then(|w| w.metadata),
                    }
                } else {
                    None
                };
                if let (Some(meta), Some(r)) = (meta, self.object_ref.as_mut()) {
                    let fill = |field: &mut String, value: Option<String>| {
                        if field.is_empty() {
                            *field = value.unwrap_or_default();
                        }
                    };
                    fill(&mut r.namespace, meta.namespace);
                    fill(&mut r.name, meta.name);
                    fill(&mut r.uid, meta.uid);
                    fill(&mut r.resource_version, meta.resource_version);
                }
                if body.log_object {
                    self.request_object = match decoded {
                        Decoded::Json(text) if !omit => raw_json(text),
                        Decoded::Json(text) => {
                            serde_json::from_str::<Value>(text).ok().and_then(|mut v| {
                                strip_managed_fields(&mut v);
                                value_json(&v)
                            })
                        }
                        Decoded::Value(mut v) => {
                            if omit {
                                strip_managed_fields(&mut v);
                            }
                            value_json(&v)
                        }
                    };
                }
            }
        }
        if let Some(bytes) = &bodies.response {
            if let Ok(text) = std::str::from_utf8(bytes) {
                self.response_object = if omit {
                    serde_json::from_str::<Value>(text).ok().and_then(|mut v| {
                        strip_managed_fields(&mut v);
                        value_json(&v)
                    })
                } else {
                    raw_json(text)
                };
            }
        }
    }

    /// The event as one JSON line (with its newline).
    pub fn to_json_line(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        out.push(b'\n');
        Ok(())
    }

    /// upstream's `legacy` one-line text format (`EventString`), with its newline.
    pub fn to_legacy_line(&self, out: &mut Vec<u8>) {
        let mut username = "<none>".to_string();
        let mut groups = "<none>".to_string();
        if !self.user.username.is_empty() {
            username = self.user.username.clone();
            if !self.user.groups.is_empty() {
                groups = quoted_list(&self.user.groups);
            }
        }
        let (mut as_user, mut as_groups) = ("<self>".to_string(), "<lookup>".to_string());
        if let Some(imp) = &self.impersonated_user {
            as_user = imp.username.clone();
            as_groups = quoted_list(&imp.groups);
        }
        let namespace = self
            .object_ref
            .as_ref()
            .map(|r| r.namespace.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or("<none>");
        let response = self
            .response_status
            .as_ref()
            .map(|s| s.code.to_string())
            .unwrap_or_else(|| "<deferred>".into());
        let ip = self
            .source_ips
            .first()
            .map(String::as_str)
            .unwrap_or("<unknown>");
        let mut line = String::new();
        let _ = writeln!(
            line,
            "{} AUDIT: id={} stage={} ip={} method={} user={} groups={} as={} asgroups={} user-agent={} namespace={} uri={} response=\"{}\"",
            self.request_received_timestamp
                .0
                .strftime("%Y-%m-%dT%H:%M:%S%.fZ"),
            go_quote(&self.audit_id),
            go_quote(self.stage.as_str()),
            go_quote(ip),
            go_quote(&self.verb),
            go_quote(&username),
            go_quote(&groups),
            go_quote(&as_user),
            go_quote(&as_groups),
            go_quote(&self.user_agent),
            go_quote(namespace),
            go_quote(&self.request_uri),
            response,
        );
        out.extend_from_slice(line.as_bytes());
    }
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| go_quote(s))
        .collect::<Vec<_>>()
        .join(",")
}

/// Go's `%q`: a double-quoted string with Go escapes.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Event {
        let t = "2026-03-01T10:20:30.123456789Z".parse().unwrap();
        Event {
            level: Level::RequestResponse,
            audit_id: "6f2b4f0e-8d8e-4a3c-9c5e-0b1f8f7d2a11".into(),
            stage: Stage::ResponseComplete,
            request_uri: "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create".into(),
            verb: "create".into(),
            user: User {
                username: "admin".into(),
                uid: "admin".into(),
                groups: vec!["system:masters".into()],
                extra: BTreeMap::new(),
            },
            source_ips: vec!["127.0.0.1".into()],
            user_agent: "kubectl/v1.32.0 (linux/amd64) kubernetes/abc".into(),
            object_ref: Some(ObjectReference {
                resource: "configmaps".into(),
                namespace: "default".into(),
                api_version: "v1".into(),
                ..Default::default()
            }),
            response_status: Some(ResponseStatus::code(201)),
            request_received_timestamp: MicroTime(t),
            stage_timestamp: MicroTime(t + jiff::SignedDuration::from_millis(5)),
            annotations: [("authorization.k8s.io/decision".to_string(), "allow".to_string())].into(),
            bodies: Some(Box::new(Bodies {
                request: Some(RequestBody {
                    chunks: vec![
                        Bytes::from_static(b"{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\n \"metadata\""),
                        Bytes::from_static(b":{\"name\":\"cm\",\"creationTimestamp\":null},\"data\":{\"a\":\"b\"}}"),
                    ],
                    content_type: "application/json".into(),
                    log_object: true,
                    fill_object_ref: true,
                }),
                response: Some(Bytes::from_static(
                    b"{\"apiVersion\":\"v1\",\"data\":{\"a\":\"b\"},\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cm\",\"namespace\":\"default\",\"uid\":\"u1\",\"resourceVersion\":\"7\",\"managedFields\":[{\"manager\":\"kubectl\"}]}}",
                )),
                omit_managed_fields: false,
            })),
            ..Default::default()
        }
    }

    /// Field names, order and omissions as upstream's JSON encoding of `audit.k8s.io/v1`.
    #[test]
    fn json_shape() {
        let mut e = sample();
        e.resolve_bodies();
        let mut line = Vec::new();
        e.to_json_line(&mut line).unwrap();
        let text = String::from_utf8(line).unwrap();
        assert!(
            text.ends_with("}\n") && text.matches('\n').count() == 1,
            "{text}"
        );
        assert_eq!(
            text.trim_end(),
            concat!(
                r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","#,
                r#""auditID":"6f2b4f0e-8d8e-4a3c-9c5e-0b1f8f7d2a11","stage":"ResponseComplete","#,
                r#""requestURI":"/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create","verb":"create","#,
                r#""user":{"username":"admin","uid":"admin","groups":["system:masters"]},"#,
                r#""sourceIPs":["127.0.0.1"],"userAgent":"kubectl/v1.32.0 (linux/amd64) kubernetes/abc","#,
                r#""objectRef":{"resource":"configmaps","namespace":"default","name":"cm","apiVersion":"v1"},"#,
                r#""responseStatus":{"metadata":{},"code":201},"#,
                r#""requestObject":{"kind":"ConfigMap","apiVersion":"v1", "metadata":{"name":"cm","creationTimestamp":null},"data":{"a":"b"}},"#,
                r#""responseObject":{"apiVersion":"v1","data":{"a":"b"},"kind":"ConfigMap","metadata":{"name":"cm","namespace":"default","uid":"u1","resourceVersion":"7","managedFields":[{"manager":"kubectl"}]}},"#,
                r#""requestReceivedTimestamp":"2026-03-01T10:20:30.123456Z","stageTimestamp":"2026-03-01T10:20:30.128456Z","#,
                r#""annotations":{"authorization.k8s.io/decision":"allow"}}"#,
            )
        );
    }

    #[test]
    fn metadata_level_and_failures() {
        let mut e = sample();
        e.level = Level::Metadata;
        if let Some(b) = e.bodies.as_mut() {
            b.response = None;
            if let Some(r) = b.request.as_mut() {
                r.log_object = false;
            }
        }
        e.response_status = ResponseStatus::from_status_object(&json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "configmaps \"cm\" already exists", "reason": "AlreadyExists",
            "details": {"name": "cm", "kind": "configmaps"}, "code": 409
        }));
        e.annotations.clear();
        e.resolve_bodies();
        let v: Value = serde_json::to_value(&e).unwrap();
        assert!(v.get("requestObject").is_none() && v.get("responseObject").is_none());
        assert!(v.get("annotations").is_none());
        // The name still comes from the request body.
        assert_eq!(v["objectRef"]["name"], "cm");
        assert_eq!(
            serde_json::to_string(&v["responseStatus"]).unwrap(),
            r#"{"code":409,"details":{"kind":"configmaps","name":"cm"},"message":"configmaps \"cm\" already exists","metadata":{},"reason":"AlreadyExists","status":"Failure"}"#
        );
        // Unauthenticated: an empty user.
        let anon = Event::default();
        let v = serde_json::to_value(&anon).unwrap();
        assert_eq!(v["user"], json!({}));
        assert!(ResponseStatus::from_status_object(&json!({"kind": "Pod"})).is_none());
    }

    #[test]
    fn managed_fields_can_be_omitted() {
        let mut e = sample();
        if let Some(b) = e.bodies.as_mut() {
            b.omit_managed_fields = true;
        }
        e.resolve_bodies();
        let v = serde_json::to_value(&e).unwrap();
        assert!(v["responseObject"]["metadata"]
            .get("managedFields")
            .is_none());
        assert_eq!(v["responseObject"]["metadata"]["uid"], "u1");
        let mut list = json!({"kind": "ConfigMapList", "items": [{"metadata": {"name": "a", "managedFields": []}}]});
        strip_managed_fields(&mut list);
        assert_eq!(list["items"][0]["metadata"], json!({"name": "a"}));
        let mut table = json!({"kind": "Table", "rows": [{"cells": [], "object": {"metadata": {"managedFields": [], "name": "x"}}}]});
        strip_managed_fields(&mut table);
        assert_eq!(table["rows"][0]["object"]["metadata"], json!({"name": "x"}));
    }

    #[test]
    fn request_bodies_in_other_formats() {
        let mut e = sample();
        e.bodies = Some(Box::new(Bodies {
            request: Some(RequestBody {
                chunks: vec![Bytes::from_static(
                    b"metadata:\n  name: from-yaml\n  resourceVersion: \"12\"\ndata: {a: b}\n",
                )],
                content_type: "application/yaml".into(),
                log_object: true,
                fill_object_ref: true,
            }),
            ..Default::default()
        }));
        e.resolve_bodies();
        assert_eq!(
            e.request_object.as_ref().unwrap().get(),
            r#"{"data":{"a":"b"},"metadata":{"name":"from-yaml","resourceVersion":"12"}}"#
        );
        let r = e.object_ref.as_ref().unwrap();
        assert_eq!(
            (r.name.as_str(), r.resource_version.as_str()),
            ("from-yaml", "12")
        );
        // A body that does not decode is left out.
        let mut e = sample();
        e.bodies = Some(Box::new(Bodies {
            request: Some(RequestBody {
                chunks: vec![Bytes::from_static(b"{not json")],
                content_type: "application/json".into(),
                log_object: true,
                fill_object_ref: true,
            }),
            ..Default::default()
        }));
        e.resolve_bodies();
        assert!(e.request_object.is_none());
        assert_eq!(e.object_ref.as_ref().unwrap().name, "");
    }

    #[test]
    fn legacy_line() {
        let mut out = Vec::new();
        let mut e = sample();
        e.user_agent = "curl/8 \"x\"".into();
        e.to_legacy_line(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            concat!(
                "2026-03-01T10:20:30.123456789Z AUDIT: id=\"6f2b4f0e-8d8e-4a3c-9c5e-0b1f8f7d2a11\" stage=\"ResponseComplete\" ",
                "ip=\"127.0.0.1\" method=\"create\" user=\"admin\" groups=\"\\\"system:masters\\\"\" as=\"<self>\" asgroups=\"<lookup>\" ",
                "user-agent=\"curl/8 \\\"x\\\"\" namespace=\"default\" uri=\"/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create\" response=\"201\"\n"
            )
        );
    }
}
