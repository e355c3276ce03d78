//! The API server's audit log (`--audit-policy-file`, `--audit-log-path`) as upstream's
//! kube-apiserver 1.37 writes it: one `audit.k8s.io/v1` Event per line and stage, at the level
//! the first matching policy rule gives, against `skiff server` driven by kubectl and curl.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, skiff_bin, wait_until, ServerProcess};
use serde_json::{json, Value};

/// RequestResponse for configmaps, Metadata for everything else.
const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: RequestResponse
  resources:
  - group: ""
    resources: ["configmaps"]
- level: Metadata
"#;

fn events(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    // Only whole lines: the writer may be in the middle of one.
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON event: {e}: {l}")))
        .collect()
}

/// The first event that `pred` picks, once the writer has written it.
fn wait_for_event(log: &Path, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut found = None;
    wait_until(what, || {
        found = events(log).into_iter().find(|e| pred(e));
        found.is_some()
    });
    found.unwrap()
}

fn is_microtime(v: &Value) -> bool {
    // 2026-03-01T10:20:30.123456Z
    v.as_str()
        .is_some_and(|s| s.len() == 27 && s.ends_with('Z') && s.as_bytes()[19] == b'.')
}

#[test]
fn configmap_create_is_audited_in_full() {
    let audit_dir = tempfile::tempdir().unwrap();
    let policy = audit_dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    // The log's directory does not exist yet: the server makes it.
    let log = audit_dir.path().join("logs/audit.log");
    let s = ServerProcess::start_with(&[
        "--audit-policy-file",
        policy.to_str().unwrap(),
        "--audit-log-path",
        log.to_str().unwrap(),
    ]);

    assert_eq!(
        s.kubectl_ok(&["create", "configmap", "audited", "--from-literal=a=b"])
            .trim(),
        "configmap/audited created"
    );
    let create = wait_for_event(&log, "the create's ResponseComplete event", |e| {
        e["stage"] == "ResponseComplete"
            && e["verb"] == "create"
            && e["objectRef"]["resource"] == "configmaps"
            && e["objectRef"]["name"] == "audited"
    });
    assert_eq!(create["kind"], "Event");
    assert_eq!(create["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(create["level"], "RequestResponse");
    assert_eq!(create["user"]["username"], "admin");
    assert_eq!(
        create["objectRef"],
        json!({"resource": "configmaps", "namespace": "default", "name": "audited", "apiVersion": "v1"})
    );
    assert_eq!(create["responseStatus"]["code"], 201);
    assert!(create["requestURI"]
        .as_str()
        .unwrap()
        .starts_with("/api/v1/namespaces/default/configmaps"));
    assert_eq!(create["requestObject"]["kind"], "ConfigMap");
    assert_eq!(create["requestObject"]["metadata"]["name"], "audited");
    assert_eq!(create["requestObject"]["data"], json!({"a": "b"}));
    assert_eq!(create["responseObject"]["metadata"]["name"], "audited");
    assert!(create["responseObject"]["metadata"]["uid"].is_string());
    assert!(create["sourceIPs"]
        .as_array()
        .is_some_and(|ips| ips.contains(&json!("127.0.0.1"))));
    assert!(create["userAgent"].as_str().unwrap().starts_with("kubectl"));
    assert!(
        is_microtime(&create["requestReceivedTimestamp"]),
        "{create}"
    );
    assert!(is_microtime(&create["stageTimestamp"]), "{create}");
    // The same request's RequestReceived event came first.
    let id = create["auditID"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let stages: Vec<Value> = events(&log)
        .into_iter()
        .filter(|e| e["auditID"] == id.as_str())
        .map(|e| e["stage"].clone())
        .collect();
    assert_eq!(
        stages,
        vec![json!("RequestReceived"), json!("ResponseComplete")]
    );

    // Everything else at Metadata: no bodies.
    s.kubectl_ok(&["get", "namespaces"]);
    let list = wait_for_event(&log, "the namespace list's event", |e| {
        e["stage"] == "ResponseComplete"
            && e["verb"] == "list"
            && e["objectRef"]["resource"] == "namespaces"
    });
    assert_eq!(list["level"], "Metadata");
    assert_eq!(list["responseStatus"], json!({"metadata": {}, "code": 200}));
    assert!(list.get("responseObject").is_none() && list.get("requestObject").is_none());

    // The client's Audit-ID is used and returned.
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-D", "-", "--cacert"])
        .arg(s.ca())
        .args(["-H", &format!("Authorization: Bearer {}", s.token())])
        .args(["-H", "Audit-ID: audit-test-get"])
        .arg(format!(
            "{}/api/v1/namespaces/default/configmaps/audited",
            s.url()
        ))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(headers.contains("audit-id: audit-test-get"), "{headers}");
    let get = wait_for_event(&log, "the curl get's event", |e| {
        e["auditID"] == "audit-test-get" && e["stage"] == "ResponseComplete"
    });
    assert_eq!(get["verb"], "get");
    assert_eq!(get["responseObject"]["data"], json!({"a": "b"}));
    assert!(get["userAgent"].as_str().unwrap().starts_with("curl/"));

    // A missing object: the failure's Status in responseStatus.
    s.kubectl_err(&["get", "configmap", "nope"]);
    let missing = wait_for_event(&log, "the failed get's event", |e| {
        e["stage"] == "ResponseComplete" && e["objectRef"]["name"] == "nope"
    });
    assert_eq!(missing["responseStatus"]["code"], 404);
    assert_eq!(missing["responseStatus"]["reason"], "NotFound");
    assert_eq!(missing["responseStatus"]["status"], "Failure");
}

#[test]
fn an_invalid_policy_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Everything\n",
    )
    .unwrap();
    let mut child = Command::new(skiff_bin())
        .arg("apiserver")
        .arg("--data-dir")
        .arg(dir.path().join("server"))
        .args([
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &free_port().to_string(),
            "--etcd-servers",
            &format!("http://127.0.0.1:{}", free_port()),
            "--audit-log-path",
            dir.path().join("audit.log").to_str().unwrap(),
            "--audit-policy-file",
            policy.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("skiff apiserver did not refuse the policy");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains(&format!(
            "loading audit policy file: rules[0].level: Unsupported value: \"Everything\": supported values: \"None\", \"Metadata\", \"Request\", \"RequestResponse\": from file {}",
            policy.display()
        )),
        "{stderr}"
    );
}
