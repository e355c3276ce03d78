//! The Metrics API (`metrics.k8s.io/v1beta1`) as upstream's metrics-server serves it through
//! k8s.io/apiserver:
//!
//! - discovery: `/apis` (`APIGroupList`, or the aggregated `APIGroupDiscoveryList` v2 when
//!   asked, as the aggregator and kubectl do), `/apis/metrics.k8s.io` (`APIGroup`),
//!   `/apis/metrics.k8s.io/v1beta1` (`APIResourceList`: `nodes` → `NodeMetrics`, `pods` →
//!   `PodMetrics`, namespaced; verbs get and list);
//! - `nodes`, `nodes/{name}`, `pods`, `namespaces/{ns}/pods`, `namespaces/{ns}/pods/{name}`:
//!   the objects known to the Node and Pod caches that have usage, with `labelSelector` (the
//!   node's or pod's labels) and `fieldSelector` (`metadata.name`, `metadata.namespace`);
//!   sorted as the API sorts (name; namespace then name); `creationTimestamp` is now, the
//!   labels are the object's, as upstream's;
//! - not found as upstream words it: a node or pod that does not exist is the lister's
//!   `node "x" not found` / `pods "x" not found`, one without usage `nodemetrics.metrics.k8s.io
//!   "x" not found` / `podmetrics.metrics.k8s.io "ns/x" not found`;
//! - `Accept: application/json;as=Table;…;g=meta.k8s.io` (kubectl get): upstream's table
//!   (Name, one column per resource, Window; a pod's usage is its containers' sum); other
//!   media types than JSON are 406; `watch` is 405, as upstream's storage without a watcher.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::reflector::{ObjectRef, Store};
use parking_lot::RwLock;
use serde_json::{json, Value};
use skiff_apiserver::error::ApiError;
use skiff_apiserver::selectors::{FieldSelector, LabelSelector};

use crate::format::{cpu_quantity, go_duration, memory_quantity, rfc3339};
use crate::storage::{Storage, Usage};

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// What the API answers from.
#[derive(Clone)]
pub struct Sources {
    pub storage: Arc<RwLock<Storage>>,
    pub nodes: Store<Node>,
    pub pods: Store<Pod>,
}

/// The routes, for `skiff_serving::Options::routes`.
pub fn router(sources: Sources) -> Router {
    Router::new()
        .route("/apis", any(apis))
        .route("/apis/", any(apis))
        .route("/apis/metrics.k8s.io", any(group))
        .route("/apis/metrics.k8s.io/", any(group))
        .route("/apis/metrics.k8s.io/v1beta1", any(resources))
        .route("/apis/metrics.k8s.io/v1beta1/", any(resources))
        .route("/apis/metrics.k8s.io/v1beta1/nodes", any(list_nodes))
        .route("/apis/metrics.k8s.io/v1beta1/nodes/{name}", any(get_node))
        .route("/apis/metrics.k8s.io/v1beta1/pods", any(list_all_pods))
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods",
            any(list_pods),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}",
            any(get_pod),
        )
        .route("/apis/metrics.k8s.io/v1beta1/{*rest}", any(unknown))
        .with_state(sources)
}

fn error(e: ApiError) -> Response {
    (
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, "application/json")],
        e.to_status().to_string(),
    )
        .into_response()
}

fn json_response(body: Value, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body.to_string()).into_response()
}

/// How the answer is to be written, from `Accept` (upstream's negotiation, reduced to what
/// this server writes: JSON, and tables of it).
#[derive(Debug, PartialEq, Eq)]
enum Media {
    Json,
    /// `meta.k8s.io` Table of this version (`v1` or `v1beta1`).
    Table(&'static str),
}

fn negotiate(headers: &HeaderMap) -> Result<Media, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.trim().is_empty() {
        return Ok(Media::Json);
    }
    for clause in accept.split(',') {
        let mut parts = clause.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |k: &str| params.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        if !matches!(media, "application/json" | "application/*" | "*/*") {
            continue;
        }
        match (param("as"), param("g"), param("v")) {
            (None, _, _) => return Ok(Media::Json),
            (Some("Table"), Some("meta.k8s.io"), Some("v1")) => return Ok(Media::Table("v1")),
            (Some("Table"), Some("meta.k8s.io"), Some("v1beta1")) => {
                return Ok(Media::Table("v1beta1"))
            }
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable())
}

fn only_get(method: &Method) -> Result<(), ApiError> {
    if method == Method::GET || method == Method::HEAD {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed())
    }
}

fn version_entry() -> Value {
    json!({"groupVersion": GROUP_VERSION, "version": VERSION})
}

fn api_group() -> Value {
    json!({"name": GROUP, "versions": [version_entry()], "preferredVersion": version_entry()})
}

/// The two resources: (name, kind, namespaced).
const RESOURCES: [(&str, &str, bool); 2] = [
    ("nodes", "NodeMetrics", false),
    ("pods", "PodMetrics", true),
];

async fn apis(method: Method, headers: HeaderMap) -> Response {
    if let Err(e) = only_get(&method) {
        return error(e);
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if skiff_apiserver::discovery::wants_aggregated(accept) {
        let resources: Vec<Value> = RESOURCES
            .iter()
            .map(|(name, kind, namespaced)| {
                json!({
                    "resource": name,
                    "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
                    "scope": if *namespaced { "Namespaced" } else { "Cluster" },
                    "singularResource": "",
                    "verbs": ["get", "list"],
                })
            })
            .collect();
        let body = json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": [{
                "metadata": {"name": GROUP, "creationTimestamp": null},
                "versions": [{"version": VERSION, "resources": resources, "freshness": "Current"}],
            }],
        });
        let mut response = json_response(body, AGGREGATED);
        response
            .headers_mut()
            .insert(header::VARY, header::HeaderValue::from_static("Accept"));
        return response;
    }
    json_response(
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [api_group()]}),
        "application/json",
    )
}

async fn group(method: Method) -> Response {
    if let Err(e) = only_get(&method) {
        return error(e);
    }
    let mut body = json!({"kind": "APIGroup", "apiVersion": "v1"});
    if let (Some(body), Value::Object(group)) = (body.as_object_mut(), api_group()) {
        body.extend(group);
    }
    json_response(body, "application/json")
}

async fn resources(method: Method) -> Response {
    if let Err(e) = only_get(&method) {
        return error(e);
    }
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(name, kind, namespaced)| {
            json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": ["get", "list"]})
        })
        .collect();
    json_response(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION, "resources": resources}),
        "application/json",
    )
}

async fn unknown() -> Response {
    error(ApiError::path_not_found())
}

/// The query's value of `key`, decoded.
fn query_value(query: &Option<String>, key: &str) -> Option<String> {
    form_urlencoded::parse(query.as_deref()?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The request's selectors, and a 405 for a watch.
struct ListOptions {
    labels: LabelSelector,
    fields: FieldSelector,
}

fn list_options(query: &Option<String>, kind: &str) -> Result<ListOptions, ApiError> {
    if query_value(query, "watch").is_some_and(|w| w == "true" || w == "1") {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("watch is not supported on resources of kind {kind:?}"),
        ));
    }
    let labels = match query_value(query, "labelSelector") {
        Some(s) => LabelSelector::parse(&s)?,
        None => LabelSelector::everything(),
    };
    let fields = match query_value(query, "fieldSelector") {
        Some(s) => FieldSelector::parse(&s, &[])?,
        None => FieldSelector::default(),
    };
    Ok(ListOptions { labels, fields })
}

/// The metadata selectors see: name, namespace (pods) and labels.
fn selectable(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Value {
    let mut metadata = json!({"name": meta.name.clone().unwrap_or_default()});
    if let Some(ns) = &meta.namespace {
        metadata["namespace"] = json!(ns);
    }
    if let Some(labels) = &meta.labels {
        metadata["labels"] = json!(labels);
    }
    json!({ "metadata": metadata })
}

fn usage(u: &Usage) -> Value {
    json!({"cpu": cpu_quantity(u.cpu_nanocores), "memory": memory_quantity(u.memory)})
}

fn time_of(ns: i64) -> String {
    rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns.max(0) as u64))
}

fn metadata(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Value {
    let mut out = json!({"name": meta.name.clone().unwrap_or_default()});
    if let Some(ns) = &meta.namespace {
        out["namespace"] = json!(ns);
    }
    out["creationTimestamp"] = json!(rfc3339(std::time::SystemTime::now()));
    if let Some(labels) = meta.labels.as_ref().filter(|l| !l.is_empty()) {
        out["labels"] = json!(labels);
    }
    out
}

/// A node's NodeMetrics (without kind and apiVersion, as list items are), if it has usage.
fn node_metrics(storage: &Storage, node: &Node) -> Option<Value> {
    let u = storage.node(node.metadata.name.as_deref()?)?;
    Some(json!({
        "metadata": metadata(&node.metadata),
        "timestamp": time_of(u.timestamp_ns),
        "window": go_duration(u.window_ns),
        "usage": usage(&u),
    }))
}

fn pod_metrics(storage: &Storage, pod: &Pod) -> Option<Value> {
    let key = (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    let u = storage.pod(&key)?;
    let containers: Vec<Value> = u
        .containers
        .iter()
        .map(|(name, c)| json!({"name": name, "usage": usage(c)}))
        .collect();
    Some(json!({
        "metadata": metadata(&pod.metadata),
        "timestamp": time_of(u.timestamp_ns),
        "window": go_duration(u.window_ns),
        "containers": containers,
    }))
}

/// A single object or a list, as JSON or a Table.
fn answer(media: Media, kind: &str, items: Vec<Value>, single: bool) -> Response {
    match media {
        Media::Table(version) => json_response(table(version, &items), "application/json"),
        Media::Json if single => {
            let mut object = json!({"kind": kind, "apiVersion": GROUP_VERSION});
            if let (Some(object), Some(Value::Object(item))) =
                (object.as_object_mut(), items.into_iter().next())
            {
                object.extend(item);
            }
            json_response(object, "application/json")
        }
        Media::Json => json_response(
            json!({"kind": format!("{kind}List"), "apiVersion": GROUP_VERSION, "metadata": {}, "items": items}),
            "application/json",
        ),
    }
}

/// Upstream's `addNodeMetricsToTable`/`addPodMetricsToTable`: Name, the usage's resources in
/// order, Window; a pod's usage summed over its containers. Row objects are the items'
/// metadata (`PartialObjectMetadata`, the apiserver's default `includeObject=Metadata`).
fn table(version: &str, items: &[Value]) -> Value {
    let mut columns = Value::Null;
    let mut rows = Vec::new();
    for item in items {
        let (cpu, memory) = match item.get("containers").and_then(Value::as_array) {
            None => (
                item["usage"]["cpu"].as_str().unwrap_or("0").to_string(),
                item["usage"]["memory"].as_str().unwrap_or("0").to_string(),
            ),
            Some(containers) => {
                let (mut cpu, mut memory) = (0u64, 0u64);
                for c in containers {
                    cpu += parse_cpu(c["usage"]["cpu"].as_str().unwrap_or("0"));
                    memory += parse_memory(c["usage"]["memory"].as_str().unwrap_or("0"));
                }
                (cpu_quantity(cpu), memory_quantity(memory))
            }
        };
        if columns.is_null() {
            columns = json!([
                {"name": "Name", "type": "string", "format": "name", "description": "Name of the resource", "priority": 0},
                {"name": "cpu", "type": "string", "format": "quantity", "description": "", "priority": 0},
                {"name": "memory", "type": "string", "format": "quantity", "description": "", "priority": 0},
                {"name": "Window", "type": "string", "format": "duration", "description": "", "priority": 0},
            ]);
        }
        rows.push(json!({
            "cells": [item["metadata"]["name"], cpu, memory, item["window"]],
            "object": {"kind": "PartialObjectMetadata", "apiVersion": format!("meta.k8s.io/{version}"), "metadata": item["metadata"]},
        }));
    }
    json!({
        "kind": "Table",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": {},
        "columnDefinitions": columns,
        "rows": if rows.is_empty() { Value::Null } else { Value::Array(rows) },
    })
}

/// Back from [`cpu_quantity`]'s forms to nanocores.
fn parse_cpu(q: &str) -> u64 {
    let (digits, scale) = match q.char_indices().last() {
        Some((i, 'n')) => (&q[..i], 1),
        Some((i, 'u')) => (&q[..i], 1_000),
        Some((i, 'm')) => (&q[..i], 1_000_000),
        Some((i, 'k')) => (&q[..i], 1_000_000_000_000),
        _ => (q, 1_000_000_000),
    };
    digits.parse::<u64>().unwrap_or(0).saturating_mul(scale)
}

/// Back from [`memory_quantity`]'s forms to bytes.
fn parse_memory(q: &str) -> u64 {
    for (i, suffix) in ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"].iter().enumerate() {
        if let Some(digits) = q.strip_suffix(suffix) {
            return digits.parse::<u64>().unwrap_or(0) << (10 * (i + 1));
        }
    }
    q.parse().unwrap_or(0)
}

fn not_found(group: &str, resource: &str, name: &str) -> ApiError {
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let mut e = ApiError::new(404, "NotFound", format!("{qualified} {name:?} not found"));
    e.details = Some(Box::new(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
            name: Some(name.to_string()),
            group: (!group.is_empty()).then(|| group.to_string()),
            kind: Some(resource.to_string()),
            ..Default::default()
        },
    ));
    e
}

async fn list_nodes(
    State(s): State<Sources>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let run = || -> Result<Response, ApiError> {
        only_get(&method)?;
        let media = negotiate(&headers)?;
        let options = list_options(&query, "nodemetrics.metrics.k8s.io")?;
        let mut nodes: Vec<Arc<Node>> = s
            .nodes
            .state()
            .into_iter()
            .filter(|n| {
                let object = selectable(&n.metadata);
                options.labels.matches(&object) && options.fields.matches(&object)
            })
            .collect();
        nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let storage = s.storage.read();
        let items = nodes
            .iter()
            .filter_map(|n| node_metrics(&storage, n))
            .collect();
        Ok(answer(media, "NodeMetrics", items, false))
    };
    run().unwrap_or_else(error)
}

async fn get_node(
    State(s): State<Sources>,
    method: Method,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let run = || -> Result<Response, ApiError> {
        only_get(&method)?;
        let media = negotiate(&headers)?;
        let node = s
            .nodes
            .get(&ObjectRef::new(&name))
            .ok_or_else(|| not_found("", "node", &name))?;
        let item = node_metrics(&s.storage.read(), &node)
            .ok_or_else(|| not_found(GROUP, "nodemetrics", &name))?;
        Ok(answer(media, "NodeMetrics", vec![item], true))
    };
    run().unwrap_or_else(error)
}

fn pods_in(
    s: &Sources,
    namespace: Option<&str>,
    method: &Method,
    headers: &HeaderMap,
    query: &Option<String>,
) -> Result<Response, ApiError> {
    only_get(method)?;
    let media = negotiate(headers)?;
    let options = list_options(query, "podmetrics.metrics.k8s.io")?;
    let mut pods: Vec<Arc<Pod>> = s
        .pods
        .state()
        .into_iter()
        .filter(|p| namespace.is_none_or(|ns| p.metadata.namespace.as_deref() == Some(ns)))
        .filter(|p| {
            let object = selectable(&p.metadata);
            options.labels.matches(&object) && options.fields.matches(&object)
        })
        .collect();
    pods.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    let storage = s.storage.read();
    let items = pods
        .iter()
        .filter_map(|p| pod_metrics(&storage, p))
        .collect();
    Ok(answer(media, "PodMetrics", items, false))
}

async fn list_all_pods(
    State(s): State<Sources>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    pods_in(&s, None, &method, &headers, &query).unwrap_or_else(error)
}

async fn list_pods(
    State(s): State<Sources>,
    method: Method,
    headers: HeaderMap,
    Path(namespace): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    pods_in(&s, Some(&namespace), &method, &headers, &query).unwrap_or_else(error)
}

async fn get_pod(
    State(s): State<Sources>,
    method: Method,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let run = || -> Result<Response, ApiError> {
        only_get(&method)?;
        let media = negotiate(&headers)?;
        let pod = s
            .pods
            .get(&ObjectRef::new(&name).within(&namespace))
            .ok_or_else(|| not_found("", "pods", &name))?;
        let item = pod_metrics(&s.storage.read(), &pod)
            .ok_or_else(|| not_found(GROUP, "podmetrics", &format!("{namespace}/{name}")))?;
        Ok(answer(media, "PodMetrics", vec![item], true))
    };
    run().unwrap_or_else(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn negotiation_as_kubectl_asks() {
        assert_eq!(negotiate(&HeaderMap::new()).unwrap(), Media::Json);
        assert_eq!(
            negotiate(&accept("application/json, */*")).unwrap(),
            Media::Json
        );
        assert_eq!(
            negotiate(&accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")).unwrap(),
            Media::Table("v1")
        );
        assert_eq!(
            negotiate(&accept(
                "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json"
            ))
            .unwrap(),
            Media::Json
        );
        assert_eq!(
            negotiate(&accept("application/yaml")).unwrap_err().code,
            406
        );
        assert_eq!(
            negotiate(&accept("application/json;as=Foo;g=x;v=v1"))
                .unwrap_err()
                .code,
            406
        );
    }

    #[test]
    fn not_found_in_upstreams_words() {
        let e = not_found(GROUP, "nodemetrics", "x");
        assert_eq!(e.message, r#"nodemetrics.metrics.k8s.io "x" not found"#);
        let status = e.to_status();
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["details"]["kind"], "nodemetrics");
        assert_eq!(not_found("", "node", "x").message, r#"node "x" not found"#);
        assert_eq!(
            not_found(GROUP, "podmetrics", "default/web").message,
            r#"podmetrics.metrics.k8s.io "default/web" not found"#
        );
    }

    #[test]
    fn selectors_on_labels_name_and_namespace() {
        let mut meta = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            ..Default::default()
        };
        meta.labels = Some([("app".to_string(), "web".to_string())].into());
        let object = selectable(&meta);
        let q = |s: &str| Some(s.to_string());
        let o = list_options(
            &q("labelSelector=app%3Dweb&fieldSelector=metadata.namespace%3Ddefault"),
            "k",
        )
        .unwrap();
        assert!(o.labels.matches(&object) && o.fields.matches(&object));
        let o = list_options(&q("labelSelector=app+in+%28db%29"), "k").unwrap();
        assert!(!o.labels.matches(&object));
        let o = list_options(&q("fieldSelector=metadata.name!%3Dweb"), "k").unwrap();
        assert!(!o.fields.matches(&object));
        let e = list_options(&q("fieldSelector=spec.nodeName%3Dx"), "k")
            .err()
            .unwrap();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "field label not supported: spec.nodeName")
        );
        assert_eq!(
            list_options(&q("labelSelector=%3D%3D"), "k")
                .err()
                .unwrap()
                .code,
            400
        );
        assert_eq!(list_options(&q("watch=true"), "k").err().unwrap().code, 405);
    }

    #[test]
    fn tables_sum_a_pods_containers() {
        let pod = json!({
            "metadata": {"name": "web", "namespace": "default"},
            "window": "15s",
            "containers": [
                {"name": "a", "usage": {"cpu": "1500u", "memory": "1Mi"}},
                {"name": "b", "usage": {"cpu": "12345678n", "memory": "1024"}},
            ],
        });
        let t = table("v1", &[pod]);
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["columnDefinitions"][1]["name"], "cpu");
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["web", "13845678n", "1025Ki", "15s"])
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        let empty = table("v1", &[]);
        assert!(empty["rows"].is_null() && empty["columnDefinitions"].is_null());
        assert_eq!(parse_cpu("15m"), 15_000_000);
        assert_eq!(parse_cpu("2"), 2_000_000_000);
        assert_eq!(parse_memory("3Gi"), 3 << 30);
    }
}
