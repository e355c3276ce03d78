//! The StatefulSet controller inside `skiff server`, driven by the real kubectl 1.32 against
//! hollow nodes (`common/hollow.rs`: Node objects plus a hollow kubelet that reports bound pods
//! Running and Ready and removes deleted pods at once). Checks OrderedReady creation in ordinal
//! order (a watch records when each pod appears and turns Ready), the pods' identity, `rollout
//! status`, scale down from the highest ordinal one at a time, a RollingUpdate staged by a
//! partition, `rollout history` and `rollout undo` over ControllerRevisions, Parallel creation,
//! claims from volumeClaimTemplates (with `whenDeleted: Delete`), and the garbage collector
//! taking the pods along with the StatefulSet. One server for every check.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use common::hollow::{apply, get, node_yaml, pods_of, start_hollow_kubelet};
use common::{wait_until, ServerProcess};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80, name: web}]
"#;

fn statefulset_yaml(name: &str, replicas: i32, image: &str, extra_spec: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {name}}}
spec:
  serviceName: nginx
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}{extra_spec}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - {{name: nginx, image: "{image}", resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}}}
"#
    )
}

/// What the watch saw, in order: `add web-0`, `ready web-0`, `terminating web-2`, `gone web-2`.
#[derive(Default)]
struct Log {
    /// The watch's first list is in: pods created from now on are seen in order.
    synced: bool,
    entries: Vec<String>,
}

impl Log {
    fn position(&self, entry: &str) -> Option<usize> {
        self.entries.iter().position(|e| e == entry)
    }
}

async fn record(client: kube::Client, app: &'static str, log: Arc<Mutex<Log>>) {
    let api: Api<Pod> = Api::namespaced(client, "default");
    let config = watcher::Config::default().labels(&format!("app={app}"));
    let mut events = watcher::watcher(api, config).boxed();
    // (name, uid) pairs already logged per kind, so a recreated pod is logged again.
    let mut seen: HashSet<(String, String, &'static str)> = HashSet::new();
    while let Some(event) = events.next().await {
        let (pod, gone) = match event {
            Ok(Event::Apply(pod)) | Ok(Event::InitApply(pod)) => (pod, false),
            Ok(Event::Delete(pod)) => (pod, true),
            Ok(Event::InitDone) => {
                log.lock().expect("not poisoned").synced = true;
                continue;
            }
            _ => continue,
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let mut kinds = vec!["add"];
        if ready && !gone {
            kinds.push("ready");
        }
        if gone || pod.metadata.deletion_timestamp.is_some() {
            kinds.push("terminating");
        }
        if gone {
            kinds.push("gone");
        }
        let mut log = log.lock().expect("not poisoned");
        for kind in kinds {
            if seen.insert((name.clone(), uid.clone(), kind)) {
                log.entries.push(format!("{kind} {name}"));
            }
        }
    }
}

fn rollout_status(s: &ServerProcess, sts: &str) -> String {
    s.kubectl_ok(&[
        "rollout",
        "status",
        &format!("statefulset/{sts}"),
        "--timeout=60s",
    ])
}

/// The REVISION column of `kubectl rollout history`.
fn revisions(s: &ServerProcess, sts: &str) -> Vec<i64> {
    s.kubectl_ok(&["rollout", "history", &format!("statefulset/{sts}")])
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Pod names of `app` (sorted), not counting pods being deleted.
fn live_pods(s: &ServerProcess, app: &str) -> Vec<String> {
    let out = get(
        s,
        &["pods", "-l", &format!("app={app}")],
        "{range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    );
    let mut names: Vec<String> = out
        .lines()
        .filter(|l| l.split_whitespace().count() == 1)
        .map(|l| l.trim().to_string())
        .collect();
    names.sort();
    names
}

/// The pod's image; empty while the pod is gone (between a rolling update's delete and the
/// replacement).
fn image_of(s: &ServerProcess, pod: &str) -> String {
    let out = s.kubectl(&[
        "get",
        "pod",
        pod,
        "-o",
        "jsonpath={.spec.containers[0].image}",
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn events_of(s: &ServerProcess, name: &str) -> String {
    get(
        s,
        &[
            "events",
            "--field-selector",
            &format!("involvedObject.name={name}"),
        ],
        "{range .items[*]}{.reason}|{.source.component}|{.message}{\"\\n\"}{end}",
    )
}

/// OrderedReady: web-0, web-1, web-2 in order, each created only once the one before is Ready;
/// the pods' identity; rollout status.
fn ordered_creation(s: &ServerProcess, log: &Arc<Mutex<Log>>) {
    apply(s, SERVICE);
    apply(s, &statefulset_yaml("web", 3, "nginx:1.25", ""));
    wait_until("web-0, web-1, web-2", || {
        live_pods(s, "web") == ["web-0", "web-1", "web-2"]
    });
    let out = rollout_status(s, "web");
    assert!(
        out.contains("roll out complete") || out.contains("update complete"),
        "{out}"
    );
    assert_eq!(get(s, &["sts", "web"], "{.status.readyReplicas}"), "3");
    {
        let log = log.lock().expect("not poisoned");
        let at = |e: &str| {
            log.position(e)
                .unwrap_or_else(|| panic!("{e} not seen: {:?}", log.entries))
        };
        assert!(at("add web-0") < at("add web-1"), "{:?}", log.entries);
        assert!(at("add web-1") < at("add web-2"), "{:?}", log.entries);
        assert!(
            at("ready web-0") < at("add web-1"),
            "web-1 before web-0 was Ready: {:?}",
            log.entries
        );
        assert!(
            at("ready web-1") < at("add web-2"),
            "web-2 before web-1 was Ready: {:?}",
            log.entries
        );
    }

    // Identity: hostname, subdomain, labels, revision.
    assert_eq!(
        get(s, &["pod", "web-1"], "{.spec.hostname} {.spec.subdomain}"),
        "web-1 nginx"
    );
    assert_eq!(
        get(
            s,
            &["pod", "web-1"],
            "{.metadata.labels.statefulset\\.kubernetes\\.io/pod-name} {.metadata.labels.apps\\.kubernetes\\.io/pod-index}"
        ),
        "web-1 1"
    );
    let update_revision = get(s, &["sts", "web"], "{.status.updateRevision}");
    assert!(update_revision.starts_with("web-"), "{update_revision}");
    assert_eq!(
        get(
            s,
            &["pod", "web-2"],
            "{.metadata.labels.controller-revision-hash}"
        ),
        update_revision
    );
    assert_eq!(
        get(s, &["sts", "web"], "{.status.currentRevision}"),
        update_revision
    );
    let hash = get(
        s,
        &["controllerrevision", &update_revision],
        "{.metadata.labels.controller\\.kubernetes\\.io/hash}",
    );
    assert_eq!(format!("web-{hash}"), update_revision);
    let owner = get(
        s,
        &["pod", "web-0"],
        "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
    );
    assert_eq!(owner, "StatefulSet/web");
    wait_until(
        "SuccessfulCreate events from statefulset-controller",
        || {
            events_of(s, "web").contains(
            "SuccessfulCreate|statefulset-controller|create Pod web-0 in StatefulSet web successful",
        )
        },
    );
}

/// Scale to 1: web-2 goes first, and web-1 only once web-2 is gone.
fn ordered_scale_down(s: &ServerProcess, log: &Arc<Mutex<Log>>) {
    s.kubectl_ok(&["scale", "statefulset/web", "--replicas=1"]);
    wait_until("only web-0", || pods_of(s, "app=web") == ["web-0"]);
    {
        let log = log.lock().expect("not poisoned");
        let at = |e: &str| {
            log.position(e)
                .unwrap_or_else(|| panic!("{e} not seen: {:?}", log.entries))
        };
        assert!(
            at("gone web-2") < at("terminating web-1"),
            "web-1 deleted before web-2 was gone: {:?}",
            log.entries
        );
    }
    wait_until("SuccessfulDelete event", || {
        events_of(s, "web").contains(
            "SuccessfulDelete|statefulset-controller|delete Pod web-2 in StatefulSet web successful",
        )
    });
    s.kubectl_ok(&["scale", "statefulset/web", "--replicas=3"]);
    wait_until("web back to 3", || {
        live_pods(s, "web") == ["web-0", "web-1", "web-2"]
    });
    rollout_status(s, "web");
}

/// With partition 1, `set image` updates web-2 then web-1 and leaves web-0; partition 0 updates
/// web-0; history and undo.
fn partitioned_update_history_undo(s: &ServerProcess) {
    s.kubectl_ok(&[
        "patch",
        "statefulset/web",
        "-p",
        r#"{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":1}}}}"#,
    ]);
    s.kubectl_ok(&["set", "image", "statefulset/web", "nginx=nginx:1.26"]);
    let out = rollout_status(s, "web");
    assert!(out.contains("partitioned roll out complete"), "{out}");
    wait_until("web-1 and web-2 on nginx:1.26", || {
        image_of(s, "web-2") == "nginx:1.26" && image_of(s, "web-1") == "nginx:1.26"
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        image_of(s, "web-0"),
        "nginx:1.25",
        "web-0 is below the partition"
    );
    assert_eq!(get(s, &["sts", "web"], "{.status.updatedReplicas}"), "2");
    assert_ne!(
        get(s, &["sts", "web"], "{.status.currentRevision}"),
        get(s, &["sts", "web"], "{.status.updateRevision}")
    );

    s.kubectl_ok(&[
        "patch",
        "statefulset/web",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#,
    ]);
    wait_until("web-0 on nginx:1.26", || {
        image_of(s, "web-0") == "nginx:1.26"
    });
    rollout_status(s, "web");
    wait_until("the update revision became current", || {
        let current = get(s, &["sts", "web"], "{.status.currentRevision}");
        current == get(s, &["sts", "web"], "{.status.updateRevision}")
            && get(s, &["sts", "web"], "{.status.currentReplicas}") == "3"
    });

    assert_eq!(revisions(s, "web"), [1, 2]);
    let detail = s.kubectl_ok(&["rollout", "history", "statefulset/web", "--revision=1"]);
    assert!(detail.contains("nginx:1.25"), "{detail}");

    let out = s.kubectl_ok(&["rollout", "undo", "statefulset/web"]);
    assert!(out.contains("rolled back"), "{out}");
    wait_until("every web pod back on nginx:1.25", || {
        ["web-0", "web-1", "web-2"]
            .iter()
            .all(|p| image_of(s, p) == "nginx:1.25")
    });
    rollout_status(s, "web");
    // The first revision came back as the third.
    wait_until("revisions 2 and 3", || revisions(s, "web") == [2, 3]);
}

/// Parallel: every pod at once, even though none can become Ready (no node matches).
fn parallel_creation(s: &ServerProcess) {
    let extra = "\n  podManagementPolicy: Parallel";
    let yaml = statefulset_yaml("par", 3, "nginx:1.25", extra).replace(
        "    spec:\n      containers:",
        "    spec:\n      nodeSelector: {nowhere: \"true\"}\n      containers:",
    );
    apply(s, &yaml);
    wait_until("par-0, par-1, par-2 without any Ready", || {
        live_pods(s, "par") == ["par-0", "par-1", "par-2"]
    });
    let ready = get(s, &["sts", "par"], "{.status.readyReplicas}");
    assert!(ready.is_empty() || ready == "0", "{ready}");
    // The same with OrderedReady stops at the first pod.
    let ordered = statefulset_yaml("ord", 3, "nginx:1.25", "").replace(
        "    spec:\n      containers:",
        "    spec:\n      nodeSelector: {nowhere: \"true\"}\n      containers:",
    );
    apply(s, &ordered);
    wait_until("ord-0", || live_pods(s, "ord") == ["ord-0"]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(live_pods(s, "ord"), ["ord-0"]);
    s.kubectl_ok(&["delete", "statefulset", "par", "ord"]);
    wait_until("par's and ord's pods gone", || {
        pods_of(s, "app=par").is_empty() && pods_of(s, "app=ord").is_empty()
    });
}

/// volumeClaimTemplates: `www-db-<n>` made before the pods, mounted by them, owned by the set
/// (`whenDeleted: Delete`) and gone with it.
fn claims(s: &ServerProcess) {
    let extra = r#"
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Retain}
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}"#;
    apply(s, &statefulset_yaml("db", 2, "nginx:1.25", extra));
    wait_until("db-0 and db-1", || live_pods(s, "db") == ["db-0", "db-1"]);
    let claims = get(
        s,
        &["pvc", "-l", "app=db"],
        "{range .items[*]}{.metadata.name}{\"\\n\"}{end}",
    );
    let mut names: Vec<&str> = claims.lines().collect();
    names.sort();
    assert_eq!(names, ["www-db-0", "www-db-1"]);
    assert_eq!(
        get(
            s,
            &["pod", "db-1"],
            "{.spec.volumes[0].name} {.spec.volumes[0].persistentVolumeClaim.claimName}"
        ),
        "www www-db-1"
    );
    wait_until("the claim owned by the set", || {
        get(
            s,
            &["pvc", "www-db-0"],
            "{.metadata.ownerReferences[0].kind}",
        ) == "StatefulSet"
    });
    wait_until("claim events", || {
        events_of(s, "db").contains(
            "SuccessfulCreate|statefulset-controller|create Claim www-db-0 Pod db-0 in StatefulSet db success",
        )
    });
    s.kubectl_ok(&["delete", "statefulset", "db"]);
    wait_until("db's pods and claims gone", || {
        pods_of(s, "app=db").is_empty()
            && get(s, &["pvc", "-l", "app=db"], "{.items[*].metadata.name}").is_empty()
    });
}

#[test]
fn statefulset_controller_with_kubectl() {
    // Hollow nodes post no heartbeats: the node lifecycle controller must not declare them
    // unreachable during the test.
    let s = ServerProcess::start_with(&["--node-monitor-grace-period=1h"]);
    apply(&s, &node_yaml("n1"));
    apply(&s, &node_yaml("n2"));
    let (runtime, client) = start_hollow_kubelet(&s);
    let log = Arc::new(Mutex::new(Log::default()));
    runtime.spawn(record(client.clone(), "web", log.clone()));
    wait_until("the watch listed", || {
        log.lock().expect("not poisoned").synced
    });

    ordered_creation(&s, &log);
    ordered_scale_down(&s, &log);
    partitioned_update_history_undo(&s);
    parallel_creation(&s);
    claims(&s);

    // Deleting the StatefulSet takes its pods along (garbage collector).
    s.kubectl_ok(&["delete", "statefulset", "web"]);
    wait_until("web's pods gone", || pods_of(&s, "app=web").is_empty());
    drop(runtime);
}
