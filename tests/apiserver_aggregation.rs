//! The aggregation layer driven by the real kubectl against one `skiff server`: an extension
//! API server (`tests/python/extension_server.py`, which trusts only the front proxy's client
//! certificate, as k8s.io/apiserver's request-header authenticator does) registered with an
//! APIService behind a Service whose EndpointSlice names it; discovery, proxying with the
//! caller's identity, RBAC in front, streaming, availability conditions with upstream's
//! reasons, the published `extension-apiserver-authentication`, validation, and the local
//! APIServices registered for built-in and custom group versions.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use common::{wait_until, wait_until_for, ServerProcess};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::Value;

const SERVICE_DNS: &str = "wardle.wardle-system.svc";

/// The extension server process; killed (by its own pid) when dropped.
struct ExtensionServer {
    child: Child,
    port: u16,
}

impl ExtensionServer {
    fn start(dir: &std::path::Path, front_proxy_ca: &str) -> (ExtensionServer, String) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.clone().self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, &ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![SERVICE_DNS.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join("tls.crt"), cert.pem()).unwrap();
        std::fs::write(dir.join("tls.key"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("front-proxy-ca.crt"), front_proxy_ca).unwrap();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/extension_server.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .arg(dir.join("tls.crt"))
            .arg(dir.join("tls.key"))
            .arg(dir.join("front-proxy-ca.crt"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the extension server's port");
        let bundle = base64::engine::general_purpose::STANDARD.encode(ca_cert.pem());
        (ExtensionServer { child, port }, bundle)
    }
}

impl Drop for ExtensionServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn apply(s: &ServerProcess, manifest: &str) {
    let out = s.kubectl_stdin(&["apply", "-f", "-"], manifest);
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `Available` condition of an APIService: (status, reason, message).
fn availability(s: &ServerProcess, name: &str) -> (String, String, String) {
    let out = s.kubectl(&["get", "apiservice", name, "-o", "json"]);
    let object: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let conditions = object
        .pointer("/status/conditions")
        .and_then(Value::as_array);
    let available = conditions
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Available");
    match available {
        Some(c) => (
            c["status"].as_str().unwrap_or_default().into(),
            c["reason"].as_str().unwrap_or_default().into(),
            c["message"].as_str().unwrap_or_default().into(),
        ),
        None => Default::default(),
    }
}

fn wait_for_reason(s: &ServerProcess, name: &str, reason: &str) -> (String, String, String) {
    let mut last = Default::default();
    wait_until_for(
        &format!("APIService {name} to become {reason}"),
        Duration::from_secs(40),
        || {
            last = availability(s, name);
            last.1 == reason
        },
    );
    last
}

fn endpoints(port: u16) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: wardle, namespace: wardle-system}}
spec: {{ports: [{{name: https, port: 443, targetPort: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: wardle-1, namespace: wardle-system, labels: {{kubernetes.io/service-name: wardle}}}}
addressType: IPv4
ports: [{{name: https, port: {port}, protocol: TCP}}]
endpoints: [{{addresses: ["127.0.0.1"], conditions: {{ready: true}}}}]
"#
    )
}

fn api_service(bundle: &str) -> String {
    format!(
        r#"
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1alpha1.wardle.example.com}}
spec:
  group: wardle.example.com
  version: v1alpha1
  groupPriorityMinimum: 1000
  versionPriority: 15
  service: {{name: wardle, namespace: wardle-system}}
  caBundle: {bundle}
"#
    )
}

#[test]
fn extension_servers_behind_the_aggregator() {
    let s = ServerProcess::start();
    let dir = tempfile::tempdir().unwrap();

    // Built-in group versions are Local APIServices, Available once the controller's first
    // pass wrote their conditions.
    let mut table = String::new();
    wait_until("every APIService to be Available", || {
        table = s.kubectl_ok(&["get", "apiservices"]);
        table.contains("v1.apps") && !table.contains("Unknown")
    });
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SERVICE", "AVAILABLE", "AGE"]);
    for name in [
        "v1.",
        "v1.apps",
        "v2.autoscaling",
        "v1.apiregistration.k8s.io",
    ] {
        let line = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no APIService {name} in\n{table}"));
        assert!(line.contains("Local") && line.contains("True"), "{line}");
    }
    let apps: Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "apiservice", "v1.apps", "-o", "json"]))
            .unwrap();
    assert_eq!(apps["spec"]["groupPriorityMinimum"], 17800);
    assert_eq!(
        apps["metadata"]["labels"]["kube-aggregator.kubernetes.io/automanaged"],
        "onstart"
    );
    assert_eq!(
        availability(&s, "v1.apps").2,
        "Local APIServices are always available"
    );

    // What extension servers are told to trust.
    let published: Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "extension-apiserver-authentication",
        "-o",
        "json",
    ]))
    .unwrap();
    let data = &published["data"];
    assert_eq!(
        data["requestheader-username-headers"],
        "[\"X-Remote-User\"]"
    );
    assert_eq!(
        data["requestheader-allowed-names"],
        "[\"front-proxy-client\"]"
    );
    assert_eq!(
        data["client-ca-file"].as_str().unwrap(),
        std::fs::read_to_string(s.ca()).unwrap()
    );
    let front_proxy_ca = data["requestheader-client-ca-file"].as_str().unwrap();
    assert_ne!(front_proxy_ca, data["client-ca-file"].as_str().unwrap());

    // Validation, with upstream's messages.
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1.wrong.example.com}\n\
         spec: {group: wardle.example.com, version: v1, groupPriorityMinimum: 0, versionPriority: 10, insecureSkipTLSVerify: true}\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(r#"metadata.name: Invalid value: "v1.wrong.example.com": must be `spec.version+"."+spec.group`: "v1.wardle.example.com""#),
        "{err}"
    );
    assert!(
        err.contains(
            "spec.groupPriorityMinimum: Invalid value: 0: must be positive and less than 20000"
        ),
        "{err}"
    );
    assert!(
        err.contains("spec.insecureSkipTLSVerify: Invalid value: true: local APIServices may not have insecureSkipTLSVerify"),
        "{err}"
    );

    // An APIService whose Service does not exist yet.
    s.kubectl_ok(&["create", "namespace", "wardle-system"]);
    let (extension, bundle) = ExtensionServer::start(dir.path(), front_proxy_ca);
    apply(&s, &api_service(&bundle));
    let (status, _, message) =
        wait_for_reason(&s, "v1alpha1.wardle.example.com", "ServiceNotFound");
    assert_eq!(status, "False");
    assert_eq!(
        message,
        r#"service/wardle in "wardle-system" is not present"#
    );
    // Not available: upstream's plain 503.
    let (code, body) = s.curl(
        "GET",
        "/apis/wardle.example.com/v1alpha1/namespaces/default/echoes/x",
        "application/json",
        b"",
    );
    assert_eq!((code, body.as_str()), (503, "service unavailable\n"));

    // The Service and its endpoint: the discovery check passes.
    apply(&s, &endpoints(extension.port));
    let (status, _, message) = wait_for_reason(&s, "v1alpha1.wardle.example.com", "Passed");
    assert_eq!(
        (status.as_str(), message.as_str()),
        ("True", "all checks passed")
    );
    let row = s.kubectl_ok(&[
        "get",
        "apiservice",
        "v1alpha1.wardle.example.com",
        "--no-headers",
    ]);
    assert!(
        row.contains("wardle-system/wardle") && row.contains("True"),
        "{row}"
    );

    // Discovery: legacy and aggregated (what kubectl 1.32 reads) both have the group.
    let groups: Value = serde_json::from_str(&s.kubectl_ok(&["get", "--raw", "/apis"])).unwrap();
    let wardle = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "wardle.example.com")
        .expect("the wardle group in /apis");
    assert_eq!(
        wardle["preferredVersion"]["groupVersion"],
        "wardle.example.com/v1alpha1"
    );
    let group: Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "--raw", "/apis/wardle.example.com"])).unwrap();
    assert_eq!(group["kind"], "APIGroup");
    let mut resources = String::new();
    wait_until("kubectl to discover echoes", || {
        resources = s.kubectl_ok(&["api-resources", "--api-group", "wardle.example.com"]);
        resources.contains("echoes")
    });
    let echoes = resources.lines().find(|l| l.starts_with("echoes")).unwrap();
    let columns: Vec<&str> = echoes.split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "echoes",
            "ec",
            "wardle.example.com/v1alpha1",
            "true",
            "Echo"
        ]
    );

    // A request goes through with the caller's identity, from the front proxy.
    let path = "/apis/wardle.example.com/v1alpha1/namespaces/default/echoes/hello";
    let echo: Value = serde_json::from_str(&s.kubectl_ok(&["get", "--raw", path])).unwrap();
    assert_eq!(echo["who"]["proxy"], "front-proxy-client");
    assert_eq!(echo["who"]["user"], "admin");
    assert!(echo["who"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g == "system:masters"));
    assert_eq!(echo["path"], path);
    assert_eq!(
        echo["authorization"], "",
        "the caller's token stays with skiff"
    );
    // Impersonation: the extension server sees whom the caller acts as.
    let echo: Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "--raw",
        path,
        "--as",
        "alice",
        "--as-group",
        "system:masters",
        "--as-group",
        "dev",
    ]))
    .unwrap();
    assert_eq!(echo["who"]["user"], "alice");
    assert_eq!(
        echo["who"]["groups"],
        serde_json::json!(["system:masters", "dev", "system:authenticated"])
    );
    // Identity headers a caller sends itself are dropped.
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(s.ca())
        .args(["-H", &format!("Authorization: Bearer {}", s.token())])
        .args(["-H", "X-Remote-User: mallory", "-H", "X-Remote-Group: evil"])
        .arg(format!("{}{path}?x=1", s.url()))
        .output()
        .unwrap();
    let echo: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(echo["who"]["user"], "admin");
    assert!(!echo["who"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g == "evil"));
    assert_eq!(echo["query"], "x=1");
    // A body reaches the backend.
    let created = s.kubectl_stdin(
        &["create", "-f", "-", "-o", "json"],
        "apiVersion: wardle.example.com/v1alpha1\nkind: Echo\nmetadata: {name: posted, namespace: default}\n",
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    assert_eq!(created["body"]["metadata"]["name"], "posted");
    assert_eq!(created["method"], "POST");
    // kubectl get on the resource.
    let listed = s.kubectl_ok(&["get", "echoes", "-o", "name"]);
    assert_eq!(listed.trim(), "echo.wardle.example.com/listed");

    // RBAC here first: a user with no role is refused before the backend is asked.
    let err = s.kubectl_err(&["get", "--raw", path, "--as", "bob"]);
    assert!(
        err.contains(r#"echoes.wardle.example.com "hello" is forbidden: User "bob" cannot get resource "echoes" in API group "wardle.example.com" in the namespace "default""#),
        "{err}"
    );

    // A watch streams through as the backend writes it.
    let out = Command::new("curl")
        .args(["-sSN", "--cacert"])
        .arg(s.ca())
        .args(["-H", &format!("Authorization: Bearer {}", s.token())])
        .arg(format!(
            "{}/apis/wardle.example.com/v1alpha1/namespaces/default/echoes?watch=true",
            s.url()
        ))
        .output()
        .unwrap();
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["object"]["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["e0", "e1", "e2"]);

    // The backend goes away: FailedDiscoveryCheck, and requests are 503s again.
    let port = extension.port;
    drop(extension);
    let (status, _, message) =
        wait_for_reason(&s, "v1alpha1.wardle.example.com", "FailedDiscoveryCheck");
    assert_eq!(status, "False");
    assert!(
        message.starts_with("failing or missing response from https://wardle.wardle-system.svc:443/apis/wardle.example.com/v1alpha1"),
        "{message}"
    );
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    let (code, _) = s.curl("GET", path, "application/json", b"");
    assert_eq!(code, 503);
    // No ready endpoint left: MissingEndpoints.
    s.kubectl_ok(&[
        "patch",
        "endpointslice",
        "-n",
        "wardle-system",
        "wardle-1",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/endpoints/0/conditions/ready","value":false}]"#,
    ]);
    let (_, _, message) = wait_for_reason(&s, "v1alpha1.wardle.example.com", "MissingEndpoints");
    assert_eq!(
        message,
        r#"endpointslices for service/wardle in "wardle-system" have no addresses with port name "https""#
    );
    // Deleting the APIService takes the group out of discovery.
    s.kubectl_ok(&["delete", "apiservice", "v1alpha1.wardle.example.com"]);
    wait_until("the wardle group to leave /apis", || {
        !s.kubectl_ok(&["get", "--raw", "/apis"])
            .contains("wardle.example.com")
    });

    // A custom group version gets its own local APIService, which goes with the CRD.
    apply(
        &s,
        r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.stuff.example.com}
spec:
  group: stuff.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
"#,
    );
    wait_until("the CRD's APIService", || {
        s.kubectl(&["get", "apiservice", "v1.stuff.example.com"])
            .status
            .success()
    });
    let crd_service: Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "apiservice",
        "v1.stuff.example.com",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(crd_service["spec"]["groupPriorityMinimum"], 1000);
    assert_eq!(
        crd_service["metadata"]["labels"]["kube-aggregator.kubernetes.io/automanaged"],
        "true"
    );
    s.kubectl_ok(&["delete", "crd", "widgets.stuff.example.com"]);
    wait_until("the CRD's APIService to go", || {
        !s.kubectl(&["get", "apiservice", "v1.stuff.example.com"])
            .status
            .success()
    });
}
