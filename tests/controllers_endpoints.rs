//! The EndpointSlice and Endpoints controllers on a real cluster (`skiff up`, two nodes: pods
//! run on the worker and become Ready through their readiness probes), read with the real
//! kubectl: a Deployment behind a Service with a named targetPort, scaling, a pod that is not
//! ready (and the same pod published by a `publishNotReadyAddresses` service), a headless
//! service whose pods get hostnames, and the Service's deletion taking its slices (garbage
//! collection through the ownerReference) and its Endpoints. Slicing at 100 endpoints is
//! covered by the unit tests (`endpointslice/plan.rs`). Needs root; prints a skip line
//! otherwise.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{web_image, Cluster};
use common::lab;

/// What these checks read from the cluster.
trait EndpointChecks {
    fn eventually(&self, what: &str, f: impl FnMut() -> Result<(), String>);
    fn slice_endpoints(&self, service: &str) -> (Vec<String>, String);
    fn pod_ips(&self, selector: &str) -> Vec<(String, String)>;
}

impl EndpointChecks for Cluster {
    /// Polls `f` (given kubectl output) until it holds, for up to 60 s.
    fn eventually(&self, what: &str, mut f: impl FnMut() -> Result<(), String>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match f() {
                Ok(()) => return,
                Err(last) if Instant::now() > deadline => {
                    panic!("timed out waiting for {what}; last seen:\n{last}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(300)),
            }
        }
    }

    /// `ip ready serving terminating hostname nodeName targetRef.name` per endpoint of the
    /// service's slices, sorted, and the slices' ports.
    fn slice_endpoints(&self, service: &str) -> (Vec<String>, String) {
        let selector = format!("kubernetes.io/service-name={service}");
        let endpoints = self.jsonpath(
            &["get", "endpointslices", "-l", &selector],
            "{range .items[*].endpoints[*]}{.addresses[0]} {.conditions.ready} {.conditions.serving} {.conditions.terminating} {.hostname} {.nodeName} {.targetRef.name}{\"\\n\"}{end}",
        );
        let mut lines: Vec<String> = endpoints.lines().map(str::to_string).collect();
        lines.sort();
        let ports = self.jsonpath(
            &["get", "endpointslices", "-l", &selector],
            "{range .items[*].ports[*]}{.name}:{.port}/{.protocol} {end}",
        );
        (lines, ports)
    }

    fn pod_ips(&self, selector: &str) -> Vec<(String, String)> {
        let out = self.jsonpath(
            &["get", "pods", "-l", selector],
            "{range .items[*]}{.metadata.name} {.status.podIP}{\"\\n\"}{end}",
        );
        let mut pods: Vec<(String, String)> = out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        pods.sort();
        pods
    }
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: skiff.local/web:1
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {port: http, path: /}, periodSeconds: 1}
"#;

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, labels: {team: blue}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-all}
spec:
  selector: {app: web}
  publishNotReadyAddresses: true
  ports: [{name: http, port: 80, targetPort: http}]
"#;

/// A pod of the same app whose readiness never passes.
const LAZY: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: lazy, labels: {app: web}}
spec:
  containers:
  - name: web
    image: skiff.local/web:1
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {exec: {command: [cat, /tmp/ready]}, periodSeconds: 1}
"#;

const HEADLESS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, labels: {app: db}}
spec:
  hostname: db-0
  subdomain: db
  containers:
  - {name: db, image: skiff.local/web:1}
"#;

#[test]
fn services_get_endpointslices_and_endpoints_that_follow_their_pods() {
    if let Some(why) = lab::missing() {
        eprintln!("skipping controllers_endpoints: {why}");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let archive = web_image(work.path(), "$(hostname)");
    let name = format!("e{}", std::process::id());
    let kubeconfig = work.path().join("admin.kubeconfig");
    let (cluster, _) = Cluster::up(&name, 2, "192.168.88.0/24", &archive, &kubeconfig);
    let dir = work.path();
    let worker = format!("{name}-worker");

    // A Deployment behind a Service with a named targetPort.
    cluster.apply(dir, "web", DEPLOYMENT);
    cluster.apply(dir, "services", SERVICES);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let pods = cluster.pod_ips("app=web");
    assert_eq!(pods.len(), 2, "{pods:?}");
    let expect_ready = |pods: &[(String, String)]| -> Vec<String> {
        let mut v: Vec<String> = pods
            .iter()
            .map(|(pod, ip)| format!("{ip} true true false  {worker} {pod}"))
            .collect();
        v.sort();
        v
    };
    cluster.eventually("the web slice with both ready pods", || {
        let (endpoints, ports) = cluster.slice_endpoints("web");
        if endpoints == expect_ready(&pods) && ports == "http:8080/TCP " {
            Ok(())
        } else {
            Err(format!("{endpoints:?} {ports}"))
        }
    });

    // One slice, labelled and owned as upstream's, listed as upstream's kubectl shows it.
    let meta = cluster.jsonpath(
        &["get", "endpointslices", "-l", "kubernetes.io/service-name=web"],
        "{range .items[*]}{.metadata.generateName} {.metadata.labels.endpointslice\\.kubernetes\\.io/managed-by} {.metadata.labels.team} {.addressType} {.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.metadata.ownerReferences[0].controller} {.metadata.ownerReferences[0].blockOwnerDeletion}{\"\\n\"}{end}",
    );
    assert_eq!(
        meta,
        "web- endpointslice-controller.k8s.io blue IPv4 Service/web true true\n"
    );
    let trigger = cluster.jsonpath(
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
        ],
        "{.items[0].metadata.annotations.endpoints\\.kubernetes\\.io/last-change-trigger-time}",
    );
    assert!(
        trigger.ends_with('Z') && trigger.contains('T'),
        "trigger time: {trigger:?}"
    );
    let table = cluster.ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
    ]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
        "{table}"
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert!(
        row[0].starts_with("web-") && row[1] == "IPv4" && row[2] == "8080",
        "{table}"
    );
    let mut shown: Vec<&str> = row[3].split(',').collect();
    shown.sort();
    let mut ips: Vec<&str> = pods.iter().map(|(_, ip)| ip.as_str()).collect();
    ips.sort();
    assert_eq!(shown, ips, "{table}");

    // The Endpoints object: `kubectl get endpoints` and `kubectl describe service`.
    let endpoints_table = cluster.ok(&["get", "endpoints", "web"]);
    let row: Vec<&str> = endpoints_table
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    let mut shown: Vec<&str> = row[1].split(',').collect();
    shown.sort();
    let mut want: Vec<String> = pods.iter().map(|(_, ip)| format!("{ip}:8080")).collect();
    want.sort();
    assert_eq!(shown, want, "{endpoints_table}");
    let labels = cluster.jsonpath(&["get", "endpoints", "web"], "{.metadata.labels}");
    assert_eq!(labels, r#"{"team":"blue"}"#);
    let describe = cluster.ok(&["describe", "service", "web"]);
    let line = describe
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap_or_else(|| panic!("{describe}"));
    for (_, ip) in &pods {
        assert!(line.contains(&format!("{ip}:8080")), "{describe}");
    }

    // Scaling up: the new pod joins the same slice.
    cluster.ok(&["scale", "deployment/web", "--replicas=3"]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    let pods = cluster.pod_ips("app=web");
    assert_eq!(pods.len(), 3);
    cluster.eventually("three ready endpoints in one slice", || {
        let (endpoints, _) = cluster.slice_endpoints("web");
        let slices = cluster.jsonpath(
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
            ],
            "{.items[*].metadata.name}",
        );
        if endpoints == expect_ready(&pods) && !slices.contains(' ') {
            Ok(())
        } else {
            Err(format!("{slices}: {endpoints:?}"))
        }
    });

    // Nothing changes: nothing is rewritten (no churn from resyncs or unrelated pod updates).
    let versions = || {
        cluster.jsonpath(
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
            ],
            "{.items[*].metadata.resourceVersion}",
        ) + &cluster.jsonpath(&["get", "endpoints", "web"], "{.metadata.resourceVersion}")
    };
    let before = versions();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        versions(),
        before,
        "a steady service's slice and Endpoints were rewritten"
    );

    // A pod that never turns ready: ready=false in the slice, notReadyAddresses in Endpoints;
    // published anyway (ready=true) by the publishNotReadyAddresses service.
    cluster.apply(dir, "lazy", LAZY);
    cluster.eventually("the lazy pod's address", || {
        let ip = cluster.jsonpath(&["get", "pod", "lazy"], "{.status.podIP}");
        let (endpoints, _) = cluster.slice_endpoints("web");
        let not_ready = cluster.jsonpath(
            &["get", "endpoints", "web"],
            "{.subsets[*].notReadyAddresses[*].ip}",
        );
        let (all, _) = cluster.slice_endpoints("web-all");
        let ok = !ip.is_empty()
            && endpoints.contains(&format!("{ip} false false false  {worker} lazy"))
            && not_ready == ip
            && all.contains(&format!("{ip} true false false  {worker} lazy"))
            && all.len() == 4;
        if ok {
            Ok(())
        } else {
            Err(format!("{ip}: {endpoints:?} / {not_ready} / {all:?}"))
        }
    });
    let published = cluster.jsonpath(
        &["get", "endpoints", "web-all"],
        "{.subsets[*].addresses[*].ip}",
    );
    assert_eq!(published.split(' ').count(), 4, "{published}");

    // Scaling down: the slice and the Endpoints shrink.
    cluster.ok(&["delete", "pod", "lazy", "--wait=true"]);
    cluster.ok(&["scale", "deployment/web", "--replicas=1"]);
    cluster.eventually("one endpoint left", || {
        let (endpoints, _) = cluster.slice_endpoints("web");
        let addresses = cluster.jsonpath(
            &["get", "endpoints", "web"],
            "{.subsets[*].addresses[*].ip}",
        );
        let pods = cluster.pod_ips("app=web");
        if pods.len() == 1 && endpoints == expect_ready(&pods) && addresses == pods[0].1 {
            Ok(())
        } else {
            Err(format!("{pods:?}: {endpoints:?} / {addresses}"))
        }
    });

    // A headless service: hostnames from spec.hostname under the matching subdomain.
    cluster.apply(dir, "db", HEADLESS);
    cluster.ok(&["wait", "pod/db-0", "--for=condition=Ready", "--timeout=90s"]);
    cluster.eventually("db-0's hostname", || {
        let (endpoints, ports) = cluster.slice_endpoints("db");
        let hostname = cluster.jsonpath(
            &["get", "endpoints", "db"],
            "{.subsets[0].addresses[0].hostname}",
        );
        let headless = cluster.jsonpath(
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=db,service.kubernetes.io/headless",
            ],
            "{.items[*].metadata.name}",
        );
        if endpoints.len() == 1
            && endpoints[0].ends_with(&format!("true true false db-0 {worker} db-0"))
            && ports == ":8080/TCP "
            && hostname == "db-0"
            && !headless.is_empty()
        {
            Ok(())
        } else {
            Err(format!("{endpoints:?} {ports} / {hostname} / {headless}"))
        }
    });

    // Deleting the Service: the garbage collector takes its slices, the controller its
    // Endpoints; the API server's own `kubernetes` Endpoints stay untouched.
    cluster.ok(&["delete", "service", "web"]);
    cluster.eventually("web's slices and Endpoints gone", || {
        let slices = cluster.jsonpath(
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
            ],
            "{.items[*].metadata.name}",
        );
        let endpoints = cluster.kubectl(&["get", "endpoints", "web"]);
        if slices.is_empty() && !endpoints.status.success() {
            Ok(())
        } else {
            Err(format!("slices {slices:?}, endpoints still there"))
        }
    });
    let kubernetes = cluster.jsonpath(
        &["get", "endpoints", "kubernetes"],
        "{.subsets[0].ports[0].port}",
    );
    assert_eq!(kubernetes, "6443");
    drop(cluster);
}
