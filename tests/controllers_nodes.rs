//! The node controllers (node lifecycle, taint eviction, pod GC) inside `skiff server`, with
//! node failure played by the test: two hollow nodes whose "kubelet" (a task of the test, as
//! kubemark's hollow nodes) renews the Lease `kube-node-lease/<node>`, posts a Ready heartbeat
//! and runs the pods bound to its node (Running and Ready; a pod being deleted goes). Stopping a
//! node's kubelet is a node failure; the server runs with a short `--node-monitor-grace-period`
//! so the test takes seconds, not minutes.
//!
//! A Deployment of 2 with a 5 s toleration of `unreachable` is spread over both nodes; node b
//! goes quiet → Ready Unknown, `NotReady` in kubectl, the NoExecute taint, its pod not ready,
//! evicted after ~5 s (`TaintManagerEviction`) and replaced on a; b comes back → taints gone;
//! Node b deleted → the pod GC force-deletes the pod still terminating there.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::hollow::{apply, get, node_yaml};
use common::{wait_until, ServerProcess};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};

const GRACE: &str = "6s";

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
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway,
         labelSelector: {matchLabels: {app: web}}}
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
      containers:
      - {name: c, image: "nginx:1.25", resources: {requests: {cpu: 10m, memory: 16Mi}}}
"#;

/// Like `wait_until`, with a deadline of its own (the pod GC needs over a minute).
fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `name node deleting` of every web pod.
fn web_pods(s: &ServerProcess) -> Vec<(String, String, bool)> {
    get(
        s,
        &["pods", "-l", "app=web"],
        "{range .items[*]}{.metadata.name} {.spec.nodeName} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    )
    .lines()
    .filter_map(|l| {
        let mut f = l.split_whitespace();
        let name = f.next()?.to_string();
        let node = f.next().unwrap_or_default().to_string();
        Some((name, node, f.next().is_some()))
    })
    .collect()
}

type Alive = Arc<Mutex<HashSet<String>>>;

fn is_alive(set: &Alive, node: &str) -> bool {
    set.lock().expect("not poisoned").contains(node)
}

/// The nodes' heartbeats while alive: Lease renewed and Ready posted every second.
async fn heartbeats(client: kube::Client, nodes: Vec<&'static str>, alive: Alive) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let node_api: Api<Node> = Api::all(client);
    let mut was_alive: HashSet<&str> = HashSet::new();
    loop {
        for node in &nodes {
            let up = is_alive(&alive, node);
            if !up {
                was_alive.remove(node);
                continue;
            }
            let now = k8s_openapi::jiff::Timestamp::now();
            // Back from the dead (or new): Ready again since now.
            let transition = !was_alive.contains(node);
            was_alive.insert(node);
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(node.to_string()),
                    ..ObjectMeta::default()
                },
                spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                    holder_identity: Some(node.to_string()),
                    lease_duration_seconds: Some(40),
                    renew_time: Some(MicroTime(now)),
                    ..Default::default()
                }),
            };
            if leases.get_opt(node).await.ok().flatten().is_none() {
                let _ = leases.create(&PostParams::default(), &lease).await;
            } else {
                let patch = serde_json::json!({"spec": {"renewTime": MicroTime(now)}});
                let _ = leases
                    .patch(node, &PatchParams::default(), &Patch::Merge(patch))
                    .await;
            }
            let condition = |type_: &str, status: &str, reason: &str| {
                let mut c = serde_json::json!({
                    "type": type_, "status": status, "reason": reason,
                    "message": "hollow node", "lastHeartbeatTime": Time(now),
                });
                if transition {
                    c["lastTransitionTime"] = serde_json::to_value(Time(now)).unwrap();
                }
                c
            };
            let status = serde_json::json!({"status": {"conditions": [
                condition("Ready", "True", "KubeletReady"),
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID"),
            ]}});
            let _ = node_api
                .patch_status(node, &PatchParams::default(), &Patch::Strategic(status))
                .await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The hollow kubelets' pod side: on a live node, bound pods become Running and Ready and pods
/// being deleted go (grace 0); on a dead one nothing happens.
async fn hollow_kubelet(client: kube::Client, alive: Alive) {
    let api: Api<Pod> = Api::all(client.clone());
    let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
    while let Some(event) = events.next().await {
        let pod = match event {
            Ok(Event::Apply(pod)) | Ok(Event::InitApply(pod)) => pod,
            _ => continue,
        };
        let (Some(name), Some(namespace)) =
            (pod.metadata.name.clone(), pod.metadata.namespace.clone())
        else {
            continue;
        };
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        if node.is_empty() || !is_alive(&alive, &node) {
            continue;
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        if pod.metadata.deletion_timestamp.is_some() {
            let _ = pods
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
            continue;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase == Some("Running") {
            continue;
        }
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let status = serde_json::json!({"status": {
            "phase": "Running",
            "podIP": "10.244.0.10",
            "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
            ],
        }});
        let _ = pods
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
            .await;
    }
}

fn taints_of(s: &ServerProcess, node: &str) -> String {
    get(
        s,
        &["node", node],
        "{range .spec.taints[*]}{.key}:{.effect}{\"\\n\"}{end}",
    )
}

fn events(s: &ServerProcess, selector: &str) -> String {
    get(
        s,
        &["events", "--field-selector", selector],
        "{range .items[*]}{.source.component}|{.message}{\"\\n\"}{end}",
    )
}

#[test]
fn a_failed_node_is_tainted_and_its_pods_move() {
    let s = ServerProcess::start_with(&[
        "--node-monitor-period=1s",
        &format!("--node-monitor-grace-period={GRACE}"),
    ]);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let client = runtime
        .block_on(skiff_controllers::client_from_kubeconfig(&s.kubeconfig))
        .expect("client");
    let live: Alive = Arc::new(Mutex::new(["a".to_string(), "b".to_string()].into()));
    for node in ["a", "b"] {
        apply(&s, &node_yaml(node));
    }
    runtime.spawn(heartbeats(client.clone(), vec!["a", "b"], live.clone()));
    runtime.spawn(hollow_kubelet(client.clone(), live.clone()));

    // Healthy nodes stay Ready, untainted, well past the grace period.
    std::thread::sleep(Duration::from_secs(8));
    for node in ["a", "b"] {
        assert_eq!(
            get(
                &s,
                &["node", node],
                "{.status.conditions[?(@.type==\"Ready\")].status}"
            ),
            "True"
        );
        assert_eq!(taints_of(&s, node), "", "node {node}");
    }
    assert!(events(&s, "involvedObject.name=a,reason=RegisteredNode")
        .contains("node-controller|Node a event: Registered Node a in Controller"));

    apply(&s, DEPLOYMENT);
    wait_until("2 web pods running, one per node", || {
        let pods = web_pods(&s);
        let nodes: HashSet<&str> = pods.iter().map(|(_, n, _)| n.as_str()).collect();
        pods.len() == 2
            && nodes == HashSet::from(["a", "b"])
            && get(&s, &["deploy", "web"], "{.status.availableReplicas}") == "2"
    });
    let on_b = web_pods(&s)
        .into_iter()
        .find(|(_, n, _)| n == "b")
        .expect("a pod on b")
        .0;

    // Node b fails.
    live.lock().expect("not poisoned").remove("b");
    wait_for("b Ready Unknown", Duration::from_secs(30), || {
        get(
            &s,
            &["node", "b"],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "Unknown"
    });
    assert_eq!(
        get(
            &s,
            &["node", "b"],
            "{.status.conditions[?(@.type==\"Ready\")].reason}"
        ),
        "NodeStatusUnknown"
    );
    assert_eq!(
        get(
            &s,
            &["node", "b"],
            "{.status.conditions[?(@.type==\"Ready\")].message}"
        ),
        "Kubelet stopped posting node status."
    );
    let table = s.kubectl_ok(&["get", "node", "b", "--no-headers"]);
    assert!(
        table.split_whitespace().nth(1) == Some("NotReady"),
        "{table}"
    );
    wait_until("b tainted unreachable", || {
        let taints = taints_of(&s, "b");
        taints.contains("node.kubernetes.io/unreachable:NoExecute")
            && taints.contains("node.kubernetes.io/unreachable:NoSchedule")
    });
    assert!(!get(
        &s,
        &["node", "b"],
        "{.spec.taints[?(@.effect==\"NoExecute\")].timeAdded}"
    )
    .is_empty());
    assert!(events(&s, "involvedObject.name=b,reason=NodeNotReady")
        .contains("node-controller|Node b status is now: NodeNotReady"));
    assert_eq!(taints_of(&s, "a"), "", "a stays untainted");
    let tainted_at = Instant::now();

    // b's pod: not ready at once, deleted after its 5 s toleration.
    wait_until("b's pod deleted", || {
        web_pods(&s)
            .iter()
            .any(|(n, _, deleting)| *n == on_b && *deleting)
    });
    let waited = tainted_at.elapsed();
    assert!(
        waited >= Duration::from_secs(3),
        "deleted {waited:?} after the taint, before its 5 s toleration"
    );
    assert_eq!(
        get(
            &s,
            &["pod", &on_b],
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "False"
    );
    assert_eq!(
        get(
            &s,
            &["pod", &on_b],
            "{.status.conditions[?(@.type==\"DisruptionTarget\")].reason}"
        ),
        "DeletionByTaintManager"
    );
    let evictions = events(
        &s,
        &format!("involvedObject.name={on_b},reason=TaintManagerEviction"),
    );
    assert!(
        evictions.contains(&format!(
            "taint-eviction-controller|Marking for deletion Pod default/{on_b}"
        )),
        "{evictions}"
    );
    assert!(events(
        &s,
        &format!("involvedObject.name={on_b},reason=NodeNotReady")
    )
    .contains("node-controller|Node is not ready"));

    // The ReplicaSet replaces it, and the scheduler puts the replacement on a.
    wait_until("a replacement running on a", || {
        let pods = web_pods(&s);
        let live_on_a = pods.iter().filter(|(_, n, d)| n == "a" && !d).count();
        live_on_a == 2 && get(&s, &["deploy", "web"], "{.status.availableReplicas}") == "2"
    });

    // b comes back (its pods' side stays down, so the evicted pod stays terminating there).
    runtime.block_on(async {
        let heartbeat_only = Arc::new(Mutex::new(HashSet::from(["b".to_string()])));
        tokio::spawn(heartbeats(client.clone(), vec!["b"], heartbeat_only));
    });
    wait_until("b Ready and untainted", || {
        get(
            &s,
            &["node", "b"],
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "True"
            && taints_of(&s, "b").is_empty()
    });
    let table = s.kubectl_ok(&["get", "node", "b", "--no-headers"]);
    assert!(table.split_whitespace().nth(1) == Some("Ready"), "{table}");
    assert!(web_pods(&s).iter().any(|(n, _, _)| *n == on_b));

    // Node b is deleted: the pod GC force-deletes what is left on it (40 s quarantine, 20 s
    // period).
    s.kubectl_ok(&["delete", "node", "b"]);
    wait_for(
        "the pod GC removes b's pod",
        Duration::from_secs(120),
        || !web_pods(&s).iter().any(|(n, _, _)| *n == on_b),
    );
    assert_eq!(
        get(&s, &["deploy", "web"], "{.status.availableReplicas}"),
        "2"
    );
    drop(runtime);
}
