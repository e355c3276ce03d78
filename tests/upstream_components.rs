//! Upstream's kube-scheduler and kube-controller-manager (1.37, built by
//! `../shared/tools/build-anchors.sh`) run against `skiff server` unchanged, with skiff's own
//! scheduler and controllers off: every informer they start syncs (no "could not find the
//! requested resource" in their logs), they take their leader leases, and with hollow nodes
//! registered through the API (kubemark's idea; a hollow kubelet reports bound pods Ready) a
//! Deployment's ReplicaSet is made by upstream's controller manager, its pods are bound by
//! upstream's scheduler, and the rollout completes.
//!
//! Skipped, with a message, where the binaries have not been built (they come from the Go module
//! proxy: about 15 minutes for these two on two cores).

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::hollow::{apply, get, node_yaml, pods_of, start_hollow_kubelet};
use common::{wait_until, ServerProcess};

const ANCHORS: &str = "/opt/anchors/bin";

/// An upstream component, killed (by its own pid) when the test ends.
struct Component {
    child: Child,
    log: std::path::PathBuf,
}

impl Component {
    fn start(name: &'static str, args: &[String], dir: &Path) -> Component {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(Path::new(ANCHORS).join(name))
            .args(args)
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Component { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn upstream_scheduler_and_controller_manager_run_on_skiff() {
    let missing: Vec<&str> = ["kube-scheduler", "kube-controller-manager"]
        .into_iter()
        .filter(|b| !Path::new(ANCHORS).join(b).exists())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "skipping: {} not built; run TARGETS=\"kube-scheduler kube-controller-manager\" ../shared/tools/build-anchors.sh",
            missing.join(" and ")
        );
        return;
    }
    let s = ServerProcess::start_with(&["--disable-scheduler", "--disable-controllers"]);
    let kubeconfig = s.kubeconfig.display().to_string();
    let common_flags = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "--kubeconfig",
            "--authentication-kubeconfig",
            "--authorization-kubeconfig",
        ]
        .iter()
        .map(|f| format!("{f}={kubeconfig}"))
        .collect();
        args.push("--secure-port=0".into());
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let scheduler = Component::start("kube-scheduler", &common_flags(&[]), s.dir.path());
    // Hollow nodes post no heartbeats: the node lifecycle controller must not taint them
    // unreachable during the test. Each controller acts as its own service account (TokenRequest
    // tokens, upstream's `system:controller:<name>` roles), as skiff's controller manager does:
    // the controller manager's own identity holds only `system:kube-controller-manager`.
    let controller_manager = Component::start(
        "kube-controller-manager",
        &common_flags(&[
            "--node-monitor-grace-period=1h",
            "--use-service-account-credentials=true",
        ]),
        s.dir.path(),
    );
    let logs = || format!("{}\n{}", scheduler.log(), controller_manager.log());

    for name in ["n1", "n2"] {
        apply(&s, &node_yaml(name));
    }
    let (runtime, _client) = start_hollow_kubelet(&s);

    for lease in ["kube-scheduler", "kube-controller-manager"] {
        wait_until(&format!("upstream {lease} holds its lease"), || {
            !get(
                &s,
                &["lease", "-n", "kube-system", lease, "--ignore-not-found"],
                "{.spec.holderIdentity}",
            )
            .is_empty()
        });
    }
    apply(
        &s,
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx:1.25, resources: {requests: {cpu: 100m}}}]
"#,
    );
    let started = Instant::now();
    let out = s.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(
        out.status.success(),
        "rollout did not complete: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        logs()
    );
    eprintln!("rollout of 3 replicas took {:?}", started.elapsed());
    let pods = pods_of(&s, "app=web");
    assert_eq!(pods.len(), 3, "{pods:?}");
    for pod in &pods {
        let node = get(&s, &["pod", pod], "{.spec.nodeName}");
        assert!(node == "n1" || node == "n2", "{pod} bound to {node:?}");
    }
    // The events of the binding come from upstream's scheduler.
    let events = s.kubectl_ok(&["get", "events", "--field-selector", "reason=Scheduled"]);
    assert!(
        events.contains("Successfully assigned default/web-"),
        "{events}"
    );

    // Give the informers of controllers that start late a moment, then read the logs.
    std::thread::sleep(Duration::from_secs(5));
    let all = logs();
    let missing: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("could not find the requested resource"))
        .collect();
    assert!(
        missing.is_empty(),
        "resources upstream's components could not list:\n{}",
        missing.join("\n")
    );
    drop(runtime);
}

/// Upstream's sample-apiserver (k8s.io/sample-apiserver 1.37, the extension server of the
/// conformance suite's Aggregator spec) behind skiff's aggregator: it reads skiff's
/// `extension-apiserver-authentication` to trust the front proxy, delegates authentication and
/// authorization to skiff, keeps its Flunders in etcd 3.6 (the anchor), and kubectl uses it
/// through skiff — discovery, create, a server-side Table, RBAC, delete.
///
/// Skipped where the binaries are not built: `TARGETS=etcd ../shared/tools/build-anchors.sh`,
/// then `cd /opt/anchors/src/k8s && go build -mod=mod -o /opt/anchors/bin/sample-apiserver
/// k8s.io/sample-apiserver` (the module is in the same build's module graph; about 4 minutes).
#[test]
fn upstream_sample_apiserver_serves_through_the_aggregator() {
    let missing: Vec<&str> = ["sample-apiserver", "etcd"]
        .into_iter()
        .filter(|b| !Path::new(ANCHORS).join(b).exists())
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "skipping: {} not built (see this test's doc for the commands)",
            missing.join(" and ")
        );
        return;
    }
    let s = ServerProcess::start();
    let dir = tempfile::tempdir().unwrap();
    let (client, peer, port) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let etcd_url = format!("http://127.0.0.1:{client}");
    let _etcd = Component::start(
        "etcd",
        &[
            format!("--data-dir={}", dir.path().join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
            format!("--initial-cluster=default=http://127.0.0.1:{peer}"),
        ],
        dir.path(),
    );
    let kubeconfig = s.kubeconfig.display().to_string();
    let sample = Component::start(
        "sample-apiserver",
        &[
            format!("--etcd-servers={etcd_url}"),
            format!("--secure-port={port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            format!("--cert-dir={}", dir.path().join("certs").display()),
        ],
        dir.path(),
    );
    apply(
        &s,
        &format!(
            r#"
apiVersion: v1
kind: Service
metadata: {{name: api, namespace: default}}
spec: {{ports: [{{name: https, port: 443, targetPort: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: api-1, namespace: default, labels: {{kubernetes.io/service-name: api}}}}
addressType: IPv4
ports: [{{name: https, port: {port}, protocol: TCP}}]
endpoints: [{{addresses: ["127.0.0.1"], conditions: {{ready: true}}}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {{name: v1alpha1.wardle.example.com}}
spec: {{group: wardle.example.com, version: v1alpha1, groupPriorityMinimum: 2000, versionPriority: 200,
        service: {{name: api, namespace: default}}, insecureSkipTLSVerify: true}}
"#
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    wait_until("the sample-apiserver's APIService to be Available", || {
        assert!(
            Instant::now() < deadline,
            "never Available; the sample-apiserver's log:\n{}",
            sample.log()
        );
        s.kubectl_ok(&[
            "get",
            "apiservice",
            "v1alpha1.wardle.example.com",
            "--no-headers",
        ])
        .contains("True")
    });
    let mut resources = String::new();
    wait_until("kubectl to discover flunders", || {
        resources = s.kubectl_ok(&["api-resources", "--api-group", "wardle.example.com"]);
        resources.contains("flunders")
    });
    assert!(resources.contains("fischers"), "{resources}");
    // Its OpenAPI v3 document, through /openapi/v3: kubectl explain reads extension types.
    let mut explained = String::new();
    wait_until("kubectl explain flunders", || {
        let out = s.kubectl(&["explain", "flunders.spec"]);
        explained = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success()
    });
    for line in [
        "GROUP:      wardle.example.com",
        "KIND:       Flunder",
        "VERSION:    v1alpha1",
        "FIELD: spec <FlunderSpec>",
    ] {
        assert!(explained.contains(line), "{explained}");
    }
    apply(
        &s,
        "apiVersion: wardle.example.com/v1alpha1\nkind: Flunder\nmetadata: {name: my-flunder, namespace: default}\nspec: {}\n",
    );
    // The backend's own Table columns, through the proxy.
    let table = s.kubectl_ok(&["get", "flunders"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "CREATED", "AT"]);
    assert!(table.contains("my-flunder"), "{table}");
    // RBAC here (bob has no role) before the backend is asked.
    let err = s.kubectl_err(&["get", "flunders", "--as", "bob"]);
    assert!(
        err.contains(r#"User "bob" cannot list resource "flunders" in API group "wardle.example.com" in the namespace "default""#),
        "{err}"
    );
    s.kubectl_ok(&["delete", "flunder", "my-flunder"]);
    assert_eq!(s.kubectl_ok(&["get", "flunders", "-o", "name"]).trim(), "");
}
