//! A request's events end to end: `Auditor::begin` → `Context::authenticated` → the body read
//! → `Context::finish`, against a queue the test reads.

use std::sync::mpsc::Receiver;

use axum::http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::*;

fn auditor(policy: &str) -> (Auditor, Receiver<writer::Msg>, Arc<Counters>) {
    let (policy, _) = Policy::parse(policy.as_bytes()).unwrap();
    let counters = Arc::new(Counters::default());
    let (sink, rx) = Sink::for_tests(100, counters.clone());
    (Auditor::new(policy, sink, counters.clone()), rx, counters)
}

const CONFIGMAPS_IN_FULL: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: RequestResponse
  resources: [{group: "", resources: [configmaps]}]
- level: None
  users: [quiet]
- level: Metadata
"#;

fn admin() -> UserInfo {
    UserInfo {
        name: "admin".into(),
        uid: "admin".into(),
        groups: vec!["system:masters".into()],
        ..Default::default()
    }
}

fn request(method: &str, uri: &str, body: &'static str) -> Request {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("user-agent", "kubectl/v1.32.4 (linux/amd64)")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    req.extensions_mut().insert(ConnectInfo::<SocketAddr>(
        "127.0.0.1:50000".parse().unwrap(),
    ));
    req
}

/// As `http::json_response` builds it.
fn json_response(code: u16, value: &Value) -> Response {
    let mut resp = Response::new(Body::from(serde_json::to_vec(value).unwrap()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap();
    resp.extensions_mut().insert(ApiObject::of(value));
    resp
}

fn events(rx: &Receiver<writer::Msg>) -> Vec<Value> {
    rx.try_iter()
        .filter_map(|msg| match msg {
            writer::Msg::Event(mut e) => {
                e.resolve_bodies();
                Some(serde_json::to_value(&e).unwrap())
            }
            writer::Msg::Flush(_) => None,
        })
        .collect()
}

const CONFIGMAP: &str = r#"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"settings","creationTimestamp":null},"data":{"a":"b"}}"#;

#[tokio::test]
async fn a_create_at_request_response() {
    let (auditor, rx, counters) = auditor(CONFIGMAPS_IN_FULL);
    let mut req = request(
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create",
        CONFIGMAP,
    );
    let ctx = auditor.begin(&mut req);
    let (parts, body) = req.into_parts();
    // What route and the authorizer do.
    let seen = Context::of(&parts.extensions);
    assert_eq!(seen.audit_id(), ctx.audit_id());
    seen.authenticated(&admin());
    assert_eq!(seen.level(), Some(Level::RequestResponse));
    seen.authorization_decision(true, "");
    let read = body.collect().await.unwrap().to_bytes();
    assert_eq!(read, CONFIGMAP.as_bytes());
    let created = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "settings", "namespace": "default", "uid": "u-1", "resourceVersion": "42"}, "data": {"a": "b"}});
    let resp = ctx.finish(json_response(201, &created)).await;

    // The client gets the same body, and the audit ID.
    assert_eq!(
        resp.headers().get("audit-id").unwrap().to_str().unwrap(),
        ctx.audit_id()
    );
    uuid::Uuid::parse_str(ctx.audit_id()).unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), created);

    let events = events(&rx);
    assert_eq!(events.len(), 2);
    let (received, complete) = (&events[0], &events[1]);
    assert_eq!(received["stage"], "RequestReceived");
    assert_eq!(
        received["requestReceivedTimestamp"],
        received["stageTimestamp"]
    );
    assert!(received.get("responseStatus").is_none());
    assert!(received.get("requestObject").is_none());
    assert!(
        received.get("annotations").is_none(),
        "the authorizer runs after it"
    );
    assert_eq!(
        received["objectRef"],
        json!({"resource": "configmaps", "namespace": "default", "apiVersion": "v1"})
    );

    assert_eq!(complete["kind"], "Event");
    assert_eq!(complete["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(complete["level"], "RequestResponse");
    assert_eq!(complete["stage"], "ResponseComplete");
    assert_eq!(complete["auditID"], ctx.audit_id());
    assert_eq!(complete["verb"], "create");
    assert_eq!(
        complete["requestURI"],
        "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create"
    );
    assert_eq!(
        complete["user"],
        json!({"username": "admin", "uid": "admin", "groups": ["system:masters"]})
    );
    assert_eq!(complete["sourceIPs"], json!(["127.0.0.1"]));
    assert_eq!(complete["userAgent"], "kubectl/v1.32.4 (linux/amd64)");
    // The name comes from the request body.
    assert_eq!(
        complete["objectRef"],
        json!({"resource": "configmaps", "namespace": "default", "name": "settings", "apiVersion": "v1"})
    );
    assert_eq!(
        complete["responseStatus"],
        json!({"metadata": {}, "code": 201})
    );
    assert_eq!(
        complete["requestObject"],
        serde_json::from_str::<Value>(CONFIGMAP).unwrap()
    );
    assert_eq!(complete["responseObject"], created);
    assert_eq!(
        complete["annotations"],
        json!({"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""})
    );
    let ts = complete["stageTimestamp"].as_str().unwrap();
    assert_eq!(ts.len(), "2026-03-01T10:20:30.123456Z".len(), "{ts}");
    assert_eq!(counters.events.load(Ordering::Relaxed), 2);
    assert_eq!(
        counters.levels[Level::RequestResponse as usize].load(Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn metadata_level_keeps_no_bodies_and_records_failures() {
    let (auditor, rx, _) = auditor(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n",
    );
    let mut req = request(
        "PUT",
        "/api/v1/namespaces/default/secrets/s",
        r#"{"metadata":{"name":"s","resourceVersion":"9","uid":"u-9"},"data":{"k":"c2VjcmV0"}}"#,
    );
    let ctx = auditor.begin(&mut req);
    let (parts, body) = req.into_parts();
    Context::of(&parts.extensions).authenticated(&admin());
    Context::of(&parts.extensions).authorization_decision(false, "no RBAC policy matched");
    body.collect().await.unwrap();
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "secrets \"s\" is forbidden: User \"admin\" cannot update resource \"secrets\"",
        "reason": "Forbidden", "details": {"name": "s", "kind": "secrets"}, "code": 403});
    ctx.finish(json_response(403, &status)).await;
    let events = events(&rx);
    assert_eq!(events.len(), 1, "RequestReceived is omitted: {events:?}");
    let e = &events[0];
    assert_eq!(e["stage"], "ResponseComplete");
    assert_eq!(e["level"], "Metadata");
    assert!(e.get("requestObject").is_none() && e.get("responseObject").is_none());
    // The body still names the object: resourceVersion and uid come from it.
    assert_eq!(
        e["objectRef"],
        json!({"resource": "secrets", "namespace": "default", "name": "s", "uid": "u-9", "apiVersion": "v1", "resourceVersion": "9"})
    );
    assert_eq!(
        e["responseStatus"],
        json!({"metadata": {}, "status": "Failure", "message": status["message"], "reason": "Forbidden",
               "details": {"name": "s", "kind": "secrets"}, "code": 403})
    );
    assert_eq!(e["annotations"]["authorization.k8s.io/decision"], "forbid");
}

#[tokio::test]
async fn level_none_writes_nothing() {
    let (auditor, rx, counters) = auditor(CONFIGMAPS_IN_FULL);
    let mut req = request("GET", "/api/v1/pods", "");
    let ctx = auditor.begin(&mut req);
    let quiet = UserInfo {
        name: "quiet".into(),
        ..Default::default()
    };
    Context::of(req.extensions()).authenticated(&quiet);
    let resp = ctx
        .finish(json_response(200, &json!({"kind": "PodList", "items": []})))
        .await;
    assert!(
        resp.headers().contains_key("audit-id"),
        "the ID is given out all the same"
    );
    assert!(events(&rx).is_empty());
    assert_eq!(
        counters.levels[Level::None as usize].load(Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn failed_authentication_is_one_response_started_event() {
    let (auditor, rx, _) = auditor(CONFIGMAPS_IN_FULL);
    let mut req = request("GET", "/api/v1/namespaces/default/pods", "");
    let ctx = auditor.begin(&mut req);
    let unauthorized = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401});
    ctx.finish(json_response(401, &unauthorized)).await;
    let events = events(&rx);
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e["stage"], "ResponseStarted");
    assert_eq!(e["level"], "Metadata");
    assert_eq!(e["user"], json!({}));
    assert_eq!(e["verb"], "list");
    assert_eq!(
        e["responseStatus"],
        json!({"metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
    );
}

#[tokio::test]
async fn long_running_requests_complete_when_the_stream_ends() {
    let (auditor, rx, _) = auditor(CONFIGMAPS_IN_FULL);
    let mut req = request(
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=true",
        "",
    );
    req.headers_mut()
        .insert("audit-id", HeaderValue::from_static("client-chosen-id"));
    let ctx = auditor.begin(&mut req);
    Context::of(req.extensions()).authenticated(&admin());
    let (tx, rx_body) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let stream = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx_body));
    let resp = ctx.finish(Response::new(stream)).await;
    assert_eq!(resp.headers().get("audit-id").unwrap(), "client-chosen-id");
    let started = events(&rx);
    assert_eq!(started.len(), 2);
    assert_eq!(started[0]["stage"], "RequestReceived");
    assert_eq!(started[1]["stage"], "ResponseStarted");
    assert_eq!(started[1]["verb"], "watch");
    assert_eq!(started[1]["auditID"], "client-chosen-id");
    assert_eq!(
        started[1]["responseStatus"],
        json!({"metadata": {}, "code": 200})
    );
    // Streamed: no response object, even at RequestResponse.
    tx.send(Ok(Bytes::from_static(b"{\"type\":\"ADDED\"}\n")))
        .await
        .unwrap();
    drop(tx);
    let mut body = resp.into_body();
    while body.frame().await.is_some() {}
    assert!(events(&rx).is_empty(), "not before the body goes");
    drop(body);
    let done = events(&rx);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["stage"], "ResponseComplete");
    assert!(done[0].get("responseObject").is_none());
}

#[tokio::test]
async fn panics_are_audited_and_go_on() {
    use futures::FutureExt;
    let (auditor, rx, _) = auditor(CONFIGMAPS_IN_FULL);
    let mut req = request("GET", "/api/v1/namespaces/default/configmaps/c", "");
    let ctx = auditor.begin(&mut req);
    Context::of(req.extensions()).authenticated(&admin());
    let outcome = std::panic::AssertUnwindSafe(ctx.guard(async {
        panic!("boom");
    }))
    .catch_unwind()
    .await;
    assert!(outcome.is_err());
    let events = events(&rx);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["stage"], "Panic");
    assert_eq!(
        events[1]["responseStatus"],
        json!({"metadata": {}, "status": "Failure", "message": "APIServer panic'd: boom", "reason": "InternalError", "code": 500})
    );
}

#[tokio::test]
async fn without_auditing_only_the_id() {
    let auditor = Auditor::disabled();
    let mut req = request("GET", "/api/v1/pods", "");
    let ctx = auditor.begin(&mut req);
    assert!(!Context::of(req.extensions()).is_enabled());
    Context::of(req.extensions()).authenticated(&admin());
    Context::of(req.extensions()).annotate("k", "v");
    let resp = ctx.finish(json_response(200, &json!({}))).await;
    let id = resp.headers().get("audit-id").unwrap().to_str().unwrap();
    uuid::Uuid::parse_str(id).unwrap();
    // No context at all (a request that never went through begin).
    assert_eq!(Context::of(&Extensions::new()).audit_id(), "");
}

#[test]
fn annotations_keep_their_first_value() {
    let (auditor, rx, _) = auditor(CONFIGMAPS_IN_FULL);
    let mut req = request("GET", "/healthz", "");
    let ctx = auditor.begin(&mut req);
    ctx.annotate("example.com/a", "1");
    ctx.annotate("example.com/a", "2");
    ctx.authorization_error();
    ctx.authenticated(&admin());
    let e = &events(&rx)[0];
    assert_eq!(e["objectRef"], Value::Null);
    // RequestReceived carries what was annotated before it.
    assert_eq!(
        e["annotations"],
        json!({"example.com/a": "1", "authorization.k8s.io/reason": "internal error"})
    );
}

#[derive(clap::Parser)]
struct Flags {
    #[command(flatten)]
    audit: AuditOptions,
}

#[test]
fn flags_parse_as_kube_apiservers() {
    use clap::Parser;
    let defaults = Flags::try_parse_from(["apiserver"]).unwrap().audit;
    assert_eq!(defaults, AuditOptions::default());
    let f = Flags::try_parse_from([
        "apiserver",
        "--audit-policy-file",
        "/etc/audit/policy.yaml",
        "--audit-log-path=-",
        "--audit-log-compress",
        "--audit-log-maxsize",
        "5",
        "--audit-log-maxbackup=0",
        "--audit-log-maxage=-1",
        "--audit-log-format=legacy",
        "--audit-log-batch-buffer-size=10",
    ])
    .unwrap()
    .audit;
    assert_eq!(
        f,
        AuditOptions {
            audit_policy_file: Some("/etc/audit/policy.yaml".into()),
            audit_log_path: Some("-".into()),
            audit_log_compress: true,
            audit_log_maxsize: 5,
            audit_log_maxbackup: 0,
            audit_log_maxage: -1,
            audit_log_format: "legacy".into(),
            audit_log_batch_buffer_size: 10,
            ..Default::default()
        }
    );
    let f = Flags::try_parse_from(["apiserver", "--audit-log-compress=false"])
        .unwrap()
        .audit;
    assert!(!f.audit_log_compress);
}

#[test]
fn flags_are_checked() {
    let mut o = AuditOptions::default();
    assert_eq!(o.validate(), Ok(()));
    o.audit_log_path = Some("/tmp/x".into());
    o.audit_log_maxage = -1;
    o.audit_log_format = "xml".into();
    assert_eq!(
        o.validate().unwrap_err(),
        "[invalid audit log format xml, allowed formats are \"legacy,json\", --audit-log-maxage -1 can't be a negative number]"
    );
    let o = AuditOptions {
        audit_log_path: Some("-".into()),
        audit_log_mode: "blocking-strict".into(),
        ..Default::default()
    };
    assert!(o
        .validate()
        .unwrap_err()
        .contains("blocking-strict is not supported"));
}

#[test]
fn an_invalid_policy_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n",
    )
    .unwrap();
    let options = AuditOptions {
        audit_policy_file: Some(policy.clone()),
        audit_log_path: Some(dir.path().join("audit.log").display().to_string()),
        ..Default::default()
    };
    let err = Auditor::from_options(&options, Default::default())
        .err()
        .unwrap();
    assert_eq!(
        format!("{err:#}"),
        format!(
            "loading audit policy file: rules[0].level: Unsupported value: \"Loud\": supported values: \"None\", \"Metadata\", \"Request\", \"RequestResponse\": from file {}",
            policy.display()
        )
    );
    // A policy without a log: nothing is audited, but the policy is still checked.
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
    )
    .unwrap();
    let options = AuditOptions {
        audit_policy_file: Some(policy),
        ..Default::default()
    };
    assert!(!Auditor::from_options(&options, Default::default())
        .unwrap()
        .is_enabled());
}

#[test]
fn metrics_text() {
    let c = Counters::default();
    c.events.fetch_add(3, Ordering::Relaxed);
    c.buffered_errors.fetch_add(1, Ordering::Relaxed);
    c.levels[Level::Metadata as usize].fetch_add(2, Ordering::Relaxed);
    let mut out = String::new();
    c.render(&mut out);
    assert!(out.contains("\napiserver_audit_event_total 3\n"), "{out}");
    assert!(
        out.contains("\napiserver_audit_error_total{plugin=\"buffered\"} 1\n"),
        "{out}"
    );
    assert!(!out.contains("plugin=\"log\""), "{out}");
    assert!(
        out.contains("\napiserver_audit_level_total{level=\"Metadata\"} 2\n"),
        "{out}"
    );
}
