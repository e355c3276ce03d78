//! The DaemonSet controller inside `skiff server`, driven by the real kubectl 1.32 against
//! hollow nodes (`common/hollow.rs`: Node objects plus a hollow kubelet that reports bound pods
//! Running and Ready). Checks one pod per fitting node (a NoSchedule taint keeps pods away
//! unless tolerated), a node added later, `rollout status`, a RollingUpdate by `set image`
//! within maxUnavailable 1, `rollout history` and `rollout undo` over ControllerRevisions, and
//! the garbage collector taking the pods along with the DaemonSet. One server for every check.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use common::hollow::{apply, get, node_yaml, node_yaml_with_taints, pods_of, start_hollow_kubelet};
use common::{wait_until, ServerProcess};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};

fn daemonset_yaml(name: &str, image: &str, tolerate_dedicated: bool) -> String {
    let tolerations = if tolerate_dedicated {
        "\n      tolerations:\n      - {key: dedicated, operator: Exists, effect: NoSchedule}"
    } else {
        ""
    };
    format!(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: {name}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  updateStrategy: {{type: RollingUpdate, rollingUpdate: {{maxUnavailable: 1}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:{tolerations}
      containers:
      - {{name: c, image: "{image}", resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}}}
"#
    )
}

/// node → pod names of the DaemonSet `app` (pods not being deleted).
fn pods_by_node(s: &ServerProcess, app: &str) -> BTreeMap<String, Vec<String>> {
    let out = get(
        s,
        &["pods", "-l", &format!("app={app}")],
        "{range .items[*]}{.metadata.name} {.spec.nodeName} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    );
    let mut by_node: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in out.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() == 2 {
            by_node
                .entry(fields[1].to_string())
                .or_default()
                .push(fields[0].to_string());
        } else if fields.len() == 1 {
            by_node
                .entry(String::new())
                .or_default()
                .push(fields[0].to_string());
        }
    }
    by_node
}

/// One pod on each of `nodes` and nowhere else.
fn one_pod_on_each(s: &ServerProcess, app: &str, nodes: &[&str]) -> bool {
    let by_node = pods_by_node(s, app);
    by_node.len() == nodes.len()
        && nodes
            .iter()
            .all(|n| by_node.get(*n).is_some_and(|pods| pods.len() == 1))
}

fn rollout_status(s: &ServerProcess, ds: &str) -> String {
    s.kubectl_ok(&[
        "rollout",
        "status",
        &format!("daemonset/{ds}"),
        "--timeout=60s",
    ])
}

/// The REVISION column of `kubectl rollout history`.
fn revisions(s: &ServerProcess, ds: &str) -> Vec<i64> {
    s.kubectl_ok(&["rollout", "history", &format!("daemonset/{ds}")])
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

fn images(s: &ServerProcess, app: &str) -> Vec<String> {
    let mut images: Vec<String> = get(
        s,
        &["pods", "-l", &format!("app={app}")],
        "{range .items[*]}{.spec.containers[0].image}{\"\\n\"}{end}",
    )
    .lines()
    .map(str::to_string)
    .collect();
    images.sort();
    images.dedup();
    images
}

/// The fewest ready pods (not being deleted) a watch saw while armed.
#[derive(Default)]
struct Observed {
    armed: bool,
    min_ready: usize,
}

async fn observe(client: kube::Client, app: &'static str, seen: Arc<Mutex<Observed>>) {
    let api: Api<Pod> = Api::namespaced(client, "default");
    let config = watcher::Config::default().labels(&format!("app={app}"));
    let mut events = watcher::watcher(api, config).boxed();
    // name → ready and not being deleted
    let mut pods: HashMap<String, bool> = HashMap::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(pod)) | Ok(Event::InitApply(pod)) => {
                let ready = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                pods.insert(
                    pod.metadata.name.clone().unwrap_or_default(),
                    ready && pod.metadata.deletion_timestamp.is_none(),
                );
            }
            Ok(Event::Delete(pod)) => {
                pods.remove(&pod.metadata.name.clone().unwrap_or_default());
            }
            _ => continue,
        }
        let mut seen = seen.lock().expect("not poisoned");
        if seen.armed {
            let ready = pods.values().filter(|r| **r).count();
            seen.min_ready = seen.min_ready.min(ready);
        }
    }
}

/// One pod per fitting node; the tainted node only for a DaemonSet tolerating its taint; the
/// pods' node affinity, default tolerations and labels; a node added later gets its pod.
fn placement(s: &ServerProcess) {
    apply(s, &daemonset_yaml("agent", "nginx:1.25", false));
    wait_until("agent on n1 and n2 only", || {
        one_pod_on_each(s, "agent", &["n1", "n2"])
    });
    let out = rollout_status(s, "agent");
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(
        get(s, &["ds", "agent"], "{.status.desiredNumberScheduled} {.status.numberAvailable} {.status.updatedNumberScheduled}"),
        "2 2 2"
    );

    // The pods as upstream stamps them.
    let pod = &pods_of(s, "app=agent")[0];
    let affinity = get(
        s,
        &["pod", pod],
        "{.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].key}",
    );
    assert_eq!(affinity, "metadata.name");
    let tolerations = get(s, &["pod", pod], "{.spec.tolerations[*].key}");
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/unschedulable",
    ] {
        assert!(tolerations.contains(key), "{key} missing: {tolerations}");
    }
    let hash = get(
        s,
        &["pod", pod],
        "{.metadata.labels.controller-revision-hash}",
    );
    assert!(!hash.is_empty());
    assert!(!get(
        s,
        &["pod", pod],
        "{.metadata.labels.pod-template-generation}"
    )
    .is_empty());
    assert_eq!(
        get(
            s,
            &["controllerrevision", &format!("agent-{hash}")],
            "{.revision}"
        ),
        "1"
    );
    wait_until("SuccessfulCreate events from daemonset-controller", || {
        get(
            s,
            &["events", "--field-selector", "involvedObject.name=agent"],
            "{range .items[*]}{.reason} {.source.component}{\"\\n\"}{end}",
        )
        .contains("SuccessfulCreate daemonset-controller")
    });

    // Tolerating the taint: the tainted node too.
    apply(s, &daemonset_yaml("infra", "nginx:1.25", true));
    wait_until("infra on every node", || {
        one_pod_on_each(s, "infra", &["n1", "n2", "n3"])
    });
    rollout_status(s, "infra");
    s.kubectl_ok(&["delete", "daemonset", "infra"]);

    // A node added later gets its pod.
    apply(s, &node_yaml("n4"));
    wait_until("agent on n4", || {
        one_pod_on_each(s, "agent", &["n1", "n2", "n4"])
    });
    let out = rollout_status(s, "agent");
    assert!(out.contains("successfully rolled out"), "{out}");
}

/// `set image` rolls every pod within maxUnavailable 1; history has two revisions; undo goes
/// back to the first template (as revision 3).
fn rolling_update_history_undo(s: &ServerProcess, seen: &Arc<Mutex<Observed>>) {
    {
        let mut seen = seen.lock().expect("not poisoned");
        *seen = Observed {
            armed: true,
            min_ready: 3,
        };
    }
    s.kubectl_ok(&["set", "image", "daemonset/agent", "c=nginx:1.26"]);
    let out = rollout_status(s, "agent");
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_until("every agent pod on nginx:1.26", || {
        images(s, "agent") == ["nginx:1.26"] && one_pod_on_each(s, "agent", &["n1", "n2", "n4"])
    });
    let min_ready = {
        let mut seen = seen.lock().expect("not poisoned");
        seen.armed = false;
        seen.min_ready
    };
    assert!(
        min_ready >= 2,
        "more than maxUnavailable=1 pods down: {min_ready} ready"
    );

    assert_eq!(revisions(s, "agent"), [1, 2]);
    let detail = s.kubectl_ok(&["rollout", "history", "daemonset/agent", "--revision=1"]);
    assert!(detail.contains("nginx:1.25"), "{detail}");

    let out = s.kubectl_ok(&["rollout", "undo", "daemonset/agent"]);
    assert!(out.contains("rolled back"), "{out}");
    let out = rollout_status(s, "agent");
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_until("every agent pod back on nginx:1.25", || {
        images(s, "agent") == ["nginx:1.25"] && one_pod_on_each(s, "agent", &["n1", "n2", "n4"])
    });
    // The first revision came back as the third.
    wait_until("revisions 2 and 3", || revisions(s, "agent") == [2, 3]);
    // Undoing to what runs already changes nothing. kubectl prints "skipped rollback" when
    // the revision's data equals, byte for byte, its own Go-marshalled patch of the live
    // DaemonSet (that depends on the API server's encoding too); either way no new revision.
    let out = s.kubectl_ok(&["rollout", "undo", "daemonset/agent", "--to-revision=3"]);
    assert!(
        out.contains("rolled back") || out.contains("skipped rollback"),
        "{out}"
    );
    assert_eq!(revisions(s, "agent"), [2, 3]);
}

#[test]
fn daemonset_controller_with_kubectl() {
    // Hollow nodes post no heartbeats: the node lifecycle controller must not declare them
    // unreachable during the test.
    let s = ServerProcess::start_with(&["--node-monitor-grace-period=1h"]);
    apply(&s, &node_yaml("n1"));
    apply(&s, &node_yaml("n2"));
    apply(
        &s,
        &node_yaml_with_taints("n3", &[("dedicated", "infra", "NoSchedule")]),
    );
    let (runtime, client) = start_hollow_kubelet(&s);
    let seen = Arc::new(Mutex::new(Observed::default()));
    runtime.spawn(observe(client.clone(), "agent", seen.clone()));

    placement(&s);
    rolling_update_history_undo(&s, &seen);

    // Deleting the DaemonSet takes its pods and revisions along (garbage collector).
    s.kubectl_ok(&["delete", "daemonset", "agent"]);
    wait_until("agent's pods gone", || pods_of(&s, "app=agent").is_empty());
    wait_until("agent's revisions gone", || {
        get(
            &s,
            &["controllerrevisions", "-l", "app=agent"],
            "{.items[*].metadata.name}",
        )
        .is_empty()
    });
    drop(runtime);
}
