//! `skiff metrics-server` on a `skiff up` cluster: it runs inside the control plane's network
//! namespace with an identity of its own (upstream's RBAC for `system:metrics-server`) and
//! scrapes both kubelets. First the addon `skiff up --metrics-server` installs (the same binary as a kube-system
//! Deployment, `cluster/src/metrics_server.rs`) through the API server's aggregation layer
//! (the APIService `v1beta1.metrics.k8s.io`, the front-proxy credentials the API server
//! published): `kubectl top node`, `kubectl top pod`, `kubectl get nodes.metrics.k8s.io`.
//! Then a server this test runs, straight over HTTPS with a front-proxy client certificate from a CA this test makes
//! and publishes in `kube-system/extension-apiserver-authentication` (replacing the API
//! server's) and `X-Remote-*` headers:
//!
//! - node and pod metrics appear with non-zero usage (a pod that burns a little CPU), single
//!   objects, label and field selectors, a Table, discovery, NotFound in upstream's words;
//! - a user without RBAC is 403 (by header and by token), a certificate from another CA or a
//!   token the API server does not know is 401, no credential is the anonymous user (403, as
//!   upstream's metrics-server with anonymous authentication on); `/readyz` passes only once
//!   usage can be answered;
//! - a new front-proxy CA published in the ConfigMap applies while the server runs (watched).
//!
//! Needs root; prints a skip line otherwise. One cluster, `skiff down` at the end (also when
//! the test fails: `Cluster`'s drop), the server stopped by its pid before.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use common::cluster::{web_image, Cluster};
use common::{lab, skiff_bin, wait_until_for};

const NAME: &str = "ms";
const NODE_CIDR: &str = "192.168.79.0/24";
const CONTROL_PLANE_IP: &str = "192.168.79.10";
const BASE: &str = "https://127.0.0.1:4443";

/// The metrics server, stopped (SIGTERM, then waited for) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill on the pid of our own child, which has not been waited for yet.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// A CA and a certificate it signs for client auth, PEM files in `dir`.
fn certificates(dir: &Path, ca_name: &str, client_cn: &str) -> (String, String, String) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, ca_name);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let mut client = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    client
        .distinguished_name
        .push(rcgen::DnType::CommonName, client_cn);
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let cert = client.signed_by(&key, &issuer).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    (
        write(&format!("{ca_name}.crt"), ca_cert.pem()),
        write(&format!("{client_cn}-{ca_name}.crt"), cert.pem()),
        write(&format!("{client_cn}-{ca_name}.key"), key.serialize_pem()),
    )
}

/// A request to the metrics server from inside the control plane's namespace: (status, body).
fn curl(args: &[&str], path: &str) -> (u16, String) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{NAME}-control-plane"),
            "curl",
            "-sk",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
        ])
        .args(args)
        .arg(format!("{BASE}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Nanocores from a CPU quantity as the server writes it.
fn nanocores(q: &str) -> u64 {
    let (digits, scale) = match q.chars().last() {
        Some('n') => (&q[..q.len() - 1], 1),
        Some('u') => (&q[..q.len() - 1], 1_000),
        Some('m') => (&q[..q.len() - 1], 1_000_000),
        _ => (q, 1_000_000_000),
    };
    digits.parse::<u64>().unwrap() * scale
}

/// Bytes from a memory quantity as the server writes it.
fn bytes(q: &str) -> u64 {
    for (i, suffix) in ["Ki", "Mi", "Gi"].iter().enumerate() {
        if let Some(d) = q.strip_suffix(suffix) {
            return d.parse::<u64>().unwrap() << (10 * (i + 1));
        }
    }
    q.parse().unwrap()
}

fn token_of(kubeconfig: &Path) -> String {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .map(|t| t.trim().trim_matches('"').to_string())
        .expect("a token in the kubeconfig")
}

fn issue(name: &str, groups: &[&str], out: &Path) {
    let mut cmd = Command::new(skiff_bin());
    cmd.args(["token", "user", name]);
    for g in groups {
        cmd.args(["--group", g]);
    }
    let status = cmd
        .args(["--data-dir", &format!("/var/lib/skiff/{NAME}/server")])
        .args([
            "--server",
            &format!("https://{CONTROL_PLANE_IP}:6443"),
            "--output",
        ])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
}

const RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:metrics-server"}
rules:
- apiGroups: [""]
  resources: [nodes/metrics]
  verbs: [get]
- apiGroups: [""]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:metrics-server"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:metrics-server"}
subjects: [{kind: User, name: "system:serviceaccount:kube-system:metrics-server"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "metrics-server:system:auth-delegator"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{kind: User, name: "system:serviceaccount:kube-system:metrics-server"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: "metrics-server-auth-reader", namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{kind: User, name: "system:serviceaccount:kube-system:metrics-server"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:aggregated-metrics-reader"}
rules:
- apiGroups: [metrics.k8s.io]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "metrics-reader-jane"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:aggregated-metrics-reader"}
subjects: [{kind: User, name: jane}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: busy}
spec:
  replicas: 1
  selector: {matchLabels: {app: busy}}
  template:
    metadata: {labels: {app: busy}}
    spec:
      containers:
      - name: loop
        image: skiff.local/web:1
        command: ["sh", "-c", "while true; do i=0; while [ $i -lt 3000 ]; do i=$((i+1)); done; sleep 1; done"]
"#;

#[test]
fn node_and_pod_metrics_through_front_proxy_authentication() {
    if let Some(why) = lab::missing() {
        eprintln!("skipping metrics_server: {why}");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let archive = web_image(dir, "metrics");
    let kubeconfig = dir.join("admin.kubeconfig");
    let (cluster, _) = Cluster::up_with(
        NAME,
        2,
        NODE_CIDR,
        &archive,
        &kubeconfig,
        &["--metrics-server"],
    );
    cluster.apply(dir, "setup", RBAC);

    // The server's identity, and a user the cluster knows but RBAC grants nothing.
    let server_kubeconfig = dir.join("metrics-server.kubeconfig");
    issue(
        "system:serviceaccount:kube-system:metrics-server",
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:kube-system",
        ],
        &server_kubeconfig,
    );
    let tom_kubeconfig = dir.join("tom.kubeconfig");
    issue("tom", &[], &tom_kubeconfig);
    let tom = token_of(&tom_kubeconfig);

    // The front proxy's CA and certificate, published as the API server publishes them
    // (create or replace: a server that already made the ConfigMap keeps its name).
    let (proxy_ca, proxy_cert, proxy_key) =
        certificates(dir, "front-proxy-ca", "front-proxy-client");
    let (other_ca, stranger_cert, stranger_key) =
        certificates(dir, "other-ca", "front-proxy-client");
    // Create or replace (`apply`): the API server may have made it already.
    let publish = |requestheader_ca: &str| {
        let configmap = cluster.ok(&[
            "create",
            "configmap",
            "extension-apiserver-authentication",
            "-n",
            "kube-system",
            &format!("--from-file=client-ca-file=/var/lib/skiff/{NAME}/server/tls/ca.crt"),
            &format!("--from-file=requestheader-client-ca-file={requestheader_ca}"),
            r#"--from-literal=requestheader-allowed-names=["front-proxy-client"]"#,
            r#"--from-literal=requestheader-username-headers=["X-Remote-User"]"#,
            r#"--from-literal=requestheader-group-headers=["X-Remote-Group"]"#,
            r#"--from-literal=requestheader-extra-headers-prefix=["X-Remote-Extra-"]"#,
            r#"--from-literal=requestheader-uid-headers=["X-Remote-Uid"]"#,
            "--dry-run=client",
            "-o",
            "yaml",
        ]);
        let file = dir.join("configmap.yaml");
        std::fs::write(&file, configmap).unwrap();
        cluster.ok(&["apply", "-f", file.to_str().unwrap()]);
    };
    cluster.ok(&["rollout", "status", "deployment/busy", "--timeout=90s"]);

    let log = std::fs::File::create(dir.join("metrics-server.log")).unwrap();
    let _server = Server(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &format!("{NAME}-control-plane"),
                skiff_bin(),
                "metrics-server",
            ])
            .arg("--kubeconfig")
            .arg(&server_kubeconfig)
            .args([
                "--metric-resolution",
                "5s",
                "--kubelet-certificate-authority",
            ])
            .arg(format!("/var/lib/skiff/{NAME}/server/tls/ca.crt"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let server_log = || std::fs::read_to_string(dir.join("metrics-server.log")).unwrap_or_default();

    let as_user = |user: &str| -> Vec<String> {
        vec![
            "--cert".into(),
            proxy_cert.clone(),
            "--key".into(),
            proxy_key.clone(),
            "-H".into(),
            format!("X-Remote-User: {user}"),
            "-H".into(),
            "X-Remote-Group: system:authenticated".into(),
        ]
    };
    let jane = as_user("jane");
    let jane: Vec<&str> = jane.iter().map(String::as_str).collect();

    // Ready only once usage can be answered (two scrapes).
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    wait_until_for("/readyz", Duration::from_secs(100), || {
        let (code, body) = curl(&[], "/readyz");
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never passed ({code}: {body}); the server's log:\n{}",
            server_log()
        );
        code == 200
    });

    // Through the API server's aggregation layer, with the front-proxy credentials it
    // published, to the addon `skiff up` installed (the kube-system Deployment behind the
    // Service `metrics-server` and the APIService `v1beta1.metrics.k8s.io`): `kubectl top`
    // and `kubectl get` of the metrics.
    wait_until_for("the APIService Available", Duration::from_secs(60), || {
        cluster.jsonpath(
            &["get", "apiservice", "v1beta1.metrics.k8s.io"],
            "{.status.conditions[?(@.type==\"Available\")].status}",
        ) == "True"
    });
    let mut top = String::new();
    wait_until_for("kubectl top node", Duration::from_secs(60), || {
        top = String::from_utf8_lossy(&cluster.kubectl(&["top", "node"]).stdout).into_owned();
        top.contains(&format!("{NAME}-control-plane")) && top.contains(&format!("{NAME}-worker"))
    });
    assert!(
        top.starts_with("NAME") && top.contains("CPU(cores)"),
        "{top}"
    );
    let mut top_pod = String::new();
    wait_until_for("kubectl top pod", Duration::from_secs(60), || {
        top_pod =
            String::from_utf8_lossy(&cluster.kubectl(&["top", "pod", "-l", "app=busy"]).stdout)
                .into_owned();
        top_pod.contains("busy-")
    });
    let table = cluster.ok(&["get", "nodes.metrics.k8s.io"]);
    assert!(
        table.starts_with("NAME") && table.contains("WINDOW"),
        "{table}"
    );

    // The horizontal pod autoscaler on the addon's metrics (before the front-proxy CA below is
    // replaced, which the addon trusts too).
    autoscaling(&cluster, dir);

    // From here on, a front proxy this test makes (create or replace the ConfigMap), and
    // requests straight to the server.
    publish(&proxy_ca);
    let probe = [
        "--cert",
        proxy_cert.as_str(),
        "--key",
        proxy_key.as_str(),
        "-H",
        "X-Remote-User: jane",
    ];
    wait_until_for("the test's front-proxy CA", Duration::from_secs(30), || {
        curl(&probe, "/apis/metrics.k8s.io/v1beta1").0 == 200
    });

    // Both nodes, with usage.
    let mut nodes = serde_json::Value::Null;
    wait_until_for("both nodes' metrics", Duration::from_secs(60), || {
        let (code, body) = curl(&jane, "/apis/metrics.k8s.io/v1beta1/nodes");
        nodes = if code == 200 {
            json(&body)
        } else {
            serde_json::Value::Null
        };
        nodes["items"].as_array().is_some_and(|i| i.len() == 2)
    });
    assert_eq!(nodes["kind"], "NodeMetricsList", "{nodes}");
    assert_eq!(nodes["apiVersion"], "metrics.k8s.io/v1beta1");
    let names: Vec<&str> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [format!("{NAME}-control-plane"), format!("{NAME}-worker")]
    );
    for node in nodes["items"].as_array().unwrap() {
        assert!(
            bytes(node["usage"]["memory"].as_str().unwrap()) > 0,
            "{node}"
        );
        assert!(
            nanocores(node["usage"]["cpu"].as_str().unwrap()) > 0,
            "{node}"
        );
        assert!(node["window"].as_str().unwrap().ends_with('s'), "{node}");
        assert!(node["timestamp"].as_str().unwrap().ends_with('Z'), "{node}");
        assert!(node["metadata"]["creationTimestamp"].is_string(), "{node}");
    }

    // The busy pod, with CPU and memory.
    let busy_pod = cluster.ok(&[
        "get",
        "pods",
        "-l",
        "app=busy",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let mut pod = serde_json::Value::Null;
    wait_until_for("the busy pod's metrics", Duration::from_secs(60), || {
        let (code, body) = curl(
            &jane,
            &format!("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/{busy_pod}"),
        );
        pod = if code == 200 {
            json(&body)
        } else {
            serde_json::Value::Null
        };
        pod["containers"].is_array()
    });
    assert_eq!(pod["kind"], "PodMetrics", "{pod}");
    assert_eq!(pod["metadata"]["labels"]["app"], "busy", "{pod}");
    let container = &pod["containers"][0];
    assert_eq!(container["name"], "loop", "{pod}");
    assert!(
        nanocores(container["usage"]["cpu"].as_str().unwrap()) > 0,
        "{pod}"
    );
    assert!(
        bytes(container["usage"]["memory"].as_str().unwrap()) > 0,
        "{pod}"
    );

    // Selectors: pods by label and name, nodes by label.
    let (code, body) = curl(
        &jane,
        "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Dbusy",
    );
    let list = json(&body);
    assert_eq!(code, 200, "{body}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(list["items"][0]["metadata"]["name"], busy_pod.as_str());
    let (_, body) = curl(
        &jane,
        "/apis/metrics.k8s.io/v1beta1/namespaces/kube-system/pods?labelSelector=app%3Dbusy",
    );
    assert_eq!(json(&body)["items"].as_array().unwrap().len(), 0, "{body}");
    let (_, body) = curl(
        &jane,
        &format!("/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.name%3D{busy_pod}"),
    );
    assert_eq!(json(&body)["items"].as_array().unwrap().len(), 1, "{body}");
    let (_, body) = curl(
        &jane,
        "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.namespace%3Dkube-system",
    );
    let in_kube_system = json(&body);
    assert!(
        in_kube_system["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["metadata"]["namespace"] == "kube-system"),
        "{body}"
    );
    let (_, body) = curl(
        &jane,
        "/apis/metrics.k8s.io/v1beta1/nodes?labelSelector=node-role.kubernetes.io%2Fcontrol-plane",
    );
    let control_planes = json(&body);
    assert_eq!(
        control_planes["items"].as_array().unwrap().len(),
        1,
        "{body}"
    );
    assert_eq!(
        control_planes["items"][0]["metadata"]["name"],
        format!("{NAME}-control-plane")
    );
    let (code, body) = curl(
        &jane,
        "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=spec.nodeName%3Dx",
    );
    assert_eq!(
        (code, json(&body)["message"].as_str()),
        (400, Some("field label not supported: spec.nodeName"))
    );

    // NotFound in upstream's words.
    let (code, body) = curl(&jane, "/apis/metrics.k8s.io/v1beta1/nodes/nope");
    assert_eq!(
        (code, json(&body)["message"].as_str()),
        (404, Some(r#"node "nope" not found"#))
    );
    let (code, body) = curl(
        &jane,
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/nope",
    );
    assert_eq!(
        (code, json(&body)["reason"].as_str()),
        (404, Some("NotFound"))
    );

    // kubectl get's Table, and discovery.
    let mut table_args = jane.clone();
    table_args.extend([
        "-H",
        "Accept: application/json;as=Table;v=v1;g=meta.k8s.io, application/json",
    ]);
    let (code, body) = curl(&table_args, "/apis/metrics.k8s.io/v1beta1/nodes");
    let table = json(&body);
    assert_eq!(
        (code, table["kind"].as_str()),
        (200, Some("Table")),
        "{body}"
    );
    assert_eq!(table["rows"].as_array().unwrap().len(), 2, "{body}");
    let (_, body) = curl(&jane, "/apis/metrics.k8s.io/v1beta1");
    let resources = json(&body);
    assert_eq!(resources["kind"], "APIResourceList");
    assert_eq!(resources["resources"][0]["kind"], "NodeMetrics");
    assert_eq!(resources["resources"][1]["namespaced"], true);

    // Who may not: a user RBAC grants nothing (by header, by token), the anonymous user;
    // who is not anyone: a certificate from another CA, a token the cluster does not know.
    let bob = as_user("bob");
    let bob: Vec<&str> = bob.iter().map(String::as_str).collect();
    let (code, body) = curl(&bob, "/apis/metrics.k8s.io/v1beta1/nodes");
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        json(&body)["message"],
        r#"nodes.metrics.k8s.io is forbidden: User "bob" cannot list resource "nodes" in API group "metrics.k8s.io" at the cluster scope"#
    );
    let tom_header = format!("Authorization: Bearer {tom}");
    let (code, body) = curl(
        &["-H", &tom_header],
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
    );
    assert_eq!(code, 403, "{body}");
    assert!(
        json(&body)["message"]
            .as_str()
            .unwrap()
            .contains(r#"User "tom" cannot list resource "pods""#),
        "{body}"
    );
    let (code, body) = curl(&[], "/apis/metrics.k8s.io/v1beta1/nodes");
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("system:anonymous"), "{body}");
    let (code, body) = curl(
        &[
            "--cert",
            &stranger_cert,
            "--key",
            &stranger_key,
            "-H",
            "X-Remote-User: jane",
        ],
        "/apis/metrics.k8s.io/v1beta1/nodes",
    );
    assert_eq!(code, 401, "{body}");
    let (code, body) = curl(
        &["-H", "Authorization: Bearer not-a-token"],
        "/apis/metrics.k8s.io/v1beta1/nodes",
    );
    assert_eq!(code, 401, "{body}");
    // The front proxy with no user header is no one (and not from the client CA): 401.
    let (code, body) = curl(
        &["--cert", &proxy_cert, "--key", &proxy_key],
        "/apis/metrics.k8s.io/v1beta1/nodes",
    );
    assert_eq!(code, 401, "{body}");
    // A member of system:masters reads /metrics.
    let mut admin = as_user("admin");
    admin.extend(["-H".into(), "X-Remote-Group: system:masters".into()]);
    let admin: Vec<&str> = admin.iter().map(String::as_str).collect();
    let (code, body) = curl(&admin, "/metrics");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("process_cpu_seconds_total"), "{body}");
    assert!(
        body.contains("metrics_server_kubelet_request_total{success=\"true\"}"),
        "{body}"
    );
    assert!(
        body.contains("metrics_server_storage_points{type=\"node\"} 2"),
        "{body}"
    );
    // Everyone else may not.
    let (code, _) = curl(&jane, "/metrics");
    assert_eq!(code, 403);

    // A new front-proxy CA in the ConfigMap applies without a restart: the other CA's
    // certificate now speaks for users, the first one's no longer.
    publish(&other_ca);
    let stranger_as_jane = [
        "--cert",
        stranger_cert.as_str(),
        "--key",
        stranger_key.as_str(),
        "-H",
        "X-Remote-User: jane",
    ];
    wait_until_for(
        "the rotated front-proxy CA",
        Duration::from_secs(30),
        || curl(&stranger_as_jane, "/apis/metrics.k8s.io/v1beta1/nodes").0 == 200,
    );
    assert_eq!(curl(&jane, "/apis/metrics.k8s.io/v1beta1/nodes").0, 401);
    assert!(!server_log().contains("panicked"), "{}", server_log());
}

const AUTOSCALED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: burn}
spec:
  replicas: 1
  selector: {matchLabels: {app: burn}}
  template:
    metadata: {labels: {app: burn}}
    spec:
      containers:
      - name: spin
        image: skiff.local/web:1
        command: ["sh", "-c", "while true; do :; done"]
        resources:
          requests: {cpu: 10m}
          limits: {cpu: 50m}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: idle}
spec:
  replicas: 3
  selector: {matchLabels: {app: idle}}
  template:
    metadata: {labels: {app: idle}}
    spec:
      containers:
      - name: rest
        image: skiff.local/web:1
        command: ["sleep", "3600"]
        resources:
          requests: {cpu: 100m}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: idle}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: idle}
  minReplicas: 1
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 0
      policies: [{type: Pods, value: 1, periodSeconds: 15}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: nowhere}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: nope}
  maxReplicas: 3
"#;

/// `kubectl autoscale` and autoscaling/v2 manifests against the addon's metrics: a
/// Deployment spinning past its cpu request grows to its maximum (the ×2-or-4 rule and
/// `maxReplicas` bounding it), an idle one shrinks one pod per period as its `behavior` says,
/// and the failures read as upstream's conditions and events.
fn autoscaling(cluster: &Cluster, dir: &Path) {
    cluster.apply(dir, "autoscaled", AUTOSCALED);
    cluster.ok(&[
        "autoscale",
        "deployment",
        "burn",
        "--cpu-percent=50",
        "--min=1",
        "--max=3",
    ]);
    // The busy Deployment's container asks for no cpu: utilization cannot be computed.
    cluster.ok(&[
        "autoscale",
        "deployment",
        "busy",
        "--cpu-percent=50",
        "--max=2",
    ]);
    let replicas = |name: &str| cluster.jsonpath(&["get", "deployment", name], "{.spec.replicas}");
    let condition = |hpa: &str, type_: &str| {
        cluster.jsonpath(
            &["get", "hpa", hpa],
            &format!("{{.status.conditions[?(@.type==\"{type_}\")]['status','reason','message']}}"),
        )
    };
    let events = |hpa: &str| {
        cluster.jsonpath(
            &[
                "get",
                "events",
                "--field-selector",
                &format!("involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name={hpa}"),
            ],
            "{range .items[*]}{.type} {.reason} {.message}{\"\\n\"}{end}",
        )
    };
    let describe = |hpa: &str| cluster.ok(&["describe", "hpa", hpa]);

    wait_until_for(
        "burn scaled to its maximum",
        Duration::from_secs(150),
        || replicas("burn") == "3",
    );
    let burn = events("burn");
    assert!(
        burn.contains("Normal SuccessfulRescale New size: 3; reason: cpu resource utilization (percentage of request) above target"),
        "{burn}\n{}",
        describe("burn")
    );
    assert_eq!(
        condition("burn", "ScalingActive"),
        "True ValidMetricFound the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"
    );
    let table = cluster.ok(&["get", "hpa", "burn"]);
    let row = table.lines().nth(1).unwrap_or_default().to_string();
    assert!(
        table.starts_with("NAME") && table.contains("TARGETS") && row.contains("Deployment/burn"),
        "{table}"
    );
    // Far above its 10m request: hundreds of percent against a target of 50%.
    let utilization: i64 = cluster
        .jsonpath(
            &["get", "hpa", "burn"],
            "{.status.currentMetrics[0].resource.current.averageUtilization}",
        )
        .parse()
        .unwrap_or(0);
    assert!(utilization > 100, "{table}\n{}", describe("burn"));
    // kubectl's TARGETS column: the current utilization over the target.
    assert!(
        row.contains("cpu: ") && row.contains("%/50%") && !row.contains("<unknown>"),
        "{table}"
    );

    wait_until_for(
        "idle scaled down to its minimum",
        Duration::from_secs(150),
        || replicas("idle") == "1",
    );
    let idle = events("idle");
    assert!(
        idle.contains("Normal SuccessfulRescale New size: 2; reason: All metrics below target")
            && idle
                .contains("Normal SuccessfulRescale New size: 1; reason: All metrics below target"),
        "one pod per period, as the behavior says:\n{idle}\n{}",
        describe("idle")
    );

    wait_until_for("the failures reported", Duration::from_secs(60), || {
        condition("busy", "ScalingActive").starts_with("False FailedGetResourceMetric")
            && condition("nowhere", "AbleToScale").starts_with("False FailedGetScale")
    });
    let busy = condition("busy", "ScalingActive");
    assert!(
        busy.contains("the HPA was unable to compute the replica count: failed to get cpu utilization: missing request for cpu in container loop of Pod busy-"),
        "{busy}"
    );
    assert!(
        events("busy").contains("Warning FailedComputeMetricsReplicas invalid metrics (1 invalid out of 1), first error is: failed to get cpu resource metric value: failed to get cpu utilization: missing request for cpu"),
        "{}",
        events("busy")
    );
    assert_eq!(
        condition("nowhere", "AbleToScale"),
        "False FailedGetScale the HPA controller was unable to get the target's current scale: deployments.apps \"nope\" not found"
    );
    let described = describe("nowhere");
    assert!(described.contains("FailedGetScale"), "{described}");
    cluster.ok(&["delete", "hpa", "burn", "idle", "busy", "nowhere"]);
    cluster.ok(&["delete", "deployment", "burn", "idle"]);
}
