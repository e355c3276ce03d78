//! The workload controllers (ReplicaSet, ReplicationController, Deployment) inside
//! `skiff server`, driven by the real kubectl 1.32 against hollow nodes. No kubelet exists yet,
//! so the test plays a hollow one (as kubemark does): every pod bound to a node is reported
//! Running and Ready through `pods/status`, and a pod being deleted is removed (grace 0). One
//! server for every check.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::hollow::{apply, get, node_yaml, pods_of, start_hollow_kubelet};
use common::{wait_until, ServerProcess};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};

fn deployment_yaml(name: &str, replicas: i32, image: &str, strategy: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  strategy: {strategy}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - {{name: c, image: "{image}", resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}}}
"#
    )
}

/// `kubectl rollout status` until done (it waits on a watch, as upstream's does).
fn rollout_status(s: &ServerProcess, deployment: &str) -> String {
    s.kubectl_ok(&[
        "rollout",
        "status",
        &format!("deployment/{deployment}"),
        "--timeout=60s",
    ])
}

/// What a watch on one Deployment's pods saw while armed: the most pods at once (not being
/// deleted), the fewest ready ones, and whether two templates ever had pods at the same time.
#[derive(Default)]
struct Observed {
    armed: bool,
    max_pods: usize,
    min_ready: usize,
    mixed: bool,
}

async fn observe(client: kube::Client, app: &'static str, seen: Arc<Mutex<Observed>>) {
    let api: Api<Pod> = Api::namespaced(client, "default");
    let config = watcher::Config::default().labels(&format!("app={app}"));
    let mut events = watcher::watcher(api, config).boxed();
    // name → (being deleted, ready, template hash)
    let mut pods: HashMap<String, (bool, bool, String)> = HashMap::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(pod)) | Ok(Event::InitApply(pod)) => {
                let ready = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                let hash = pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("pod-template-hash").cloned())
                    .unwrap_or_default();
                pods.insert(
                    pod.metadata.name.clone().unwrap_or_default(),
                    (pod.metadata.deletion_timestamp.is_some(), ready, hash),
                );
            }
            Ok(Event::Delete(pod)) => {
                pods.remove(&pod.metadata.name.clone().unwrap_or_default());
            }
            _ => continue,
        }
        let mut seen = seen.lock().expect("not poisoned");
        if !seen.armed {
            continue;
        }
        let live = pods.values().filter(|(deleting, ..)| !deleting).count();
        let ready = pods
            .values()
            .filter(|(deleting, ready, _)| !deleting && *ready)
            .count();
        let hashes: std::collections::HashSet<&String> = pods.values().map(|(.., h)| h).collect();
        seen.max_pods = seen.max_pods.max(live);
        seen.min_ready = seen.min_ready.min(ready);
        seen.mixed |= hashes.len() > 1;
    }
}

fn arm(seen: &Arc<Mutex<Observed>>, ready_now: usize) {
    let mut seen = seen.lock().expect("not poisoned");
    *seen = Observed {
        armed: true,
        max_pods: 0,
        min_ready: ready_now,
        mixed: false,
    };
}

fn disarm(seen: &Arc<Mutex<Observed>>) -> (usize, usize, bool) {
    let mut seen = seen.lock().expect("not poisoned");
    seen.armed = false;
    (seen.max_pods, seen.min_ready, seen.mixed)
}

/// Apply → ReplicaSet and pods; scale up and down (victims by deletion cost); set image with
/// the surge/unavailable bounds held; history; undo; pause/resume.
fn deployment_lifecycle(s: &ServerProcess, seen: &Arc<Mutex<Observed>>) {
    let rolling = "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}";
    apply(s, &deployment_yaml("web", 3, "nginx:1.25", rolling));
    let out = rollout_status(s, "web");
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    let rs_name = get(s, &["rs", "-l", "app=web"], "{.items[*].metadata.name}");
    let hash = get(s, &["rs", &rs_name], "{.metadata.labels.pod-template-hash}");
    assert_eq!(rs_name, format!("web-{hash}"));
    assert!(
        hash.chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{hash}"
    );
    let pods = pods_of(s, "app=web");
    assert_eq!(pods.len(), 3, "{pods:?}");
    for pod in &pods {
        assert!(pod.starts_with(&format!("{rs_name}-")), "{pod}");
        assert_eq!(pod.len(), rs_name.len() + 6, "5 random characters: {pod}");
        let owner = get(
            s,
            &["pod", pod],
            "{.metadata.ownerReferences[0].name}/{.metadata.ownerReferences[0].controller}",
        );
        assert_eq!(owner, format!("{rs_name}/true"));
        assert!(!get(s, &["pod", pod], "{.spec.nodeName}").is_empty());
    }

    // kubectl's columns, as upstream's.
    let table = s.kubectl_ok(&["get", "deploy,rs", "-l", "app=web"]);
    let table = if table.contains("deployment.apps/web") {
        table
    } else {
        s.kubectl_ok(&["get", "deploy,rs"])
    };
    assert!(
        table.contains("NAME                  READY   UP-TO-DATE   AVAILABLE   AGE"),
        "{table}"
    );
    assert!(
        table.contains("deployment.apps/web   3/3     3            3"),
        "{table}"
    );
    assert!(
        table.contains("DESIRED   CURRENT   READY   AGE")
            && table.contains(&format!(
                "replicaset.apps/{rs_name}   3         3         3"
            )),
        "{table}"
    );
    let described = s.kubectl_ok(&["describe", "deployment", "web"]);
    assert!(
        described.contains(&format!(
            "NewReplicaSet:   {rs_name} (3/3 replicas created)"
        )) && described.contains("Available      True    MinimumReplicasAvailable")
            && described.contains("Progressing    True    NewReplicaSetAvailable")
            && described.contains(&format!("Scaled up replica set {rs_name} from 0 to 3")),
        "{described}"
    );
    let described = s.kubectl_ok(&["describe", "rs", &rs_name]);
    assert!(
        described.contains("SuccessfulCreate")
            && described.contains("replicaset-controller")
            && described.contains(&format!("Created pod: {rs_name}-")),
        "{described}"
    );

    // Scale up to 5, then down to 2: the pod marked cheap goes, the expensive one stays.
    assert_eq!(
        s.kubectl_ok(&["scale", "deployment", "web", "--replicas=5"])
            .trim(),
        "deployment.apps/web scaled"
    );
    rollout_status(s, "web");
    wait_until("5 pods", || pods_of(s, "app=web").len() == 5);
    s.kubectl_ok(&[
        "annotate",
        "pod",
        &pods[0],
        "controller.kubernetes.io/pod-deletion-cost=-100",
    ]);
    s.kubectl_ok(&[
        "annotate",
        "pod",
        &pods[1],
        "controller.kubernetes.io/pod-deletion-cost=100",
    ]);
    s.kubectl_ok(&["scale", "deployment", "web", "--replicas=2"]);
    wait_until("2 pods", || pods_of(s, "app=web").len() == 2);
    let left = pods_of(s, "app=web");
    assert!(
        !left.contains(&pods[0]),
        "the cheap pod was deleted: {left:?}"
    );
    assert!(
        left.contains(&pods[1]),
        "the expensive pod stayed: {left:?}"
    );
    let events = s.kubectl_ok(&["describe", "deployment", "web"]);
    assert!(
        events.contains(&format!("Scaled up replica set {rs_name} from 3 to 5"))
            && events.contains(&format!("Scaled down replica set {rs_name} from 5 to 2")),
        "{events}"
    );
    s.kubectl_ok(&["scale", "deployment", "web", "--replicas=4"]);
    rollout_status(s, "web");
    wait_until("4 ready pods", || {
        get(s, &["deploy", "web"], "{.status.availableReplicas}") == "4"
    });

    // A new image: a new ReplicaSet, never more than 4 + 1 pods, never fewer than 4 ready.
    arm(seen, 4);
    s.kubectl_ok(&["set", "image", "deployment/web", "c=nginx:1.26"]);
    s.kubectl_ok(&[
        "annotate",
        "deployment",
        "web",
        "kubernetes.io/change-cause=image 1.26",
    ]);
    let out = rollout_status(s, "web");
    assert!(out.contains("successfully rolled out"), "{out}");
    wait_until("old pods gone", || pods_of(s, "app=web").len() == 4);
    let (max_pods, min_ready, _) = disarm(seen);
    assert!(max_pods <= 5, "maxSurge 1 exceeded: {max_pods} pods");
    assert_eq!(min_ready, 4, "maxUnavailable 0 violated: {min_ready} ready");
    let new_rs = get(
        s,
        &["deploy", "web"],
        "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
    );
    assert_eq!(new_rs, "2");
    let rs_list = get(
        s,
        &["rs", "-l", "app=web"],
        "{range .items[*]}{.metadata.name}={.spec.replicas}{\"\\n\"}{end}",
    );
    assert_eq!(rs_list.lines().count(), 2, "{rs_list}");
    assert!(rs_list.contains(&format!("{rs_name}=0")), "{rs_list}");

    let history = s.kubectl_ok(&["rollout", "history", "deployment/web"]);
    let rows: Vec<&str> = history
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert_eq!(rows.len(), 2, "{history}");
    assert!(
        rows[0].starts_with("1 ") && rows[1].starts_with("2 "),
        "{history}"
    );
    assert!(
        history.contains("image 1.26"),
        "change-cause copied: {history}"
    );

    // Undo: back to the first template; the old ReplicaSet scales up again as revision 3.
    assert_eq!(
        s.kubectl_ok(&["rollout", "undo", "deployment/web"]).trim(),
        "deployment.apps/web rolled back"
    );
    rollout_status(s, "web");
    assert_eq!(
        get(
            s,
            &["deploy", "web"],
            "{.spec.template.spec.containers[0].image}"
        ),
        "nginx:1.25"
    );
    wait_until("the first ReplicaSet back at 4", || {
        get(
            s,
            &["rs", &rs_name],
            "{.spec.replicas}/{.status.availableReplicas}",
        ) == "4/4"
    });
    assert_eq!(
        get(
            s,
            &["rs", &rs_name],
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision} {.metadata.annotations.deployment\\.kubernetes\\.io/revision-history}"
        ),
        "3 1"
    );
    assert_eq!(
        get(
            s,
            &["deploy", "web"],
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "3"
    );
    let history = s.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert!(
        history.lines().any(|l| l.starts_with("2 "))
            && history.lines().any(|l| l.starts_with("3 ")),
        "{history}"
    );

    // Pause: a template change waits; resume rolls it out.
    s.kubectl_ok(&["rollout", "pause", "deployment/web"]);
    wait_until("Progressing DeploymentPaused", || {
        get(
            s,
            &["deploy", "web"],
            "{.status.conditions[?(@.type==\"Progressing\")].reason}",
        ) == "DeploymentPaused"
    });
    s.kubectl_ok(&["set", "image", "deployment/web", "c=nginx:1.27"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        get(s, &["rs", "-l", "app=web"], "{.items[*].metadata.name}")
            .split_whitespace()
            .count(),
        2,
        "no new ReplicaSet while paused"
    );
    s.kubectl_ok(&["rollout", "resume", "deployment/web"]);
    let out = rollout_status(s, "web");
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(
        get(s, &["rs", "-l", "app=web"], "{.items[*].metadata.name}")
            .split_whitespace()
            .count(),
        3
    );
    let described = s.kubectl_ok(&["describe", "deployment", "web"]);
    assert!(described.contains("nginx:1.27"), "{described}");

    // Restart: same image, a new template annotation, a fourth ReplicaSet.
    assert_eq!(
        s.kubectl_ok(&["rollout", "restart", "deployment/web"])
            .trim(),
        "deployment.apps/web restarted"
    );
    let out = rollout_status(s, "web");
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(
        get(s, &["rs", "-l", "app=web"], "{.items[*].metadata.name}")
            .split_whitespace()
            .count(),
        4
    );
    assert_eq!(
        get(
            s,
            &["deploy", "web"],
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "5"
    );
}

/// Recreate: old pods are all gone before a new one exists.
fn recreate(s: &ServerProcess, seen: &Arc<Mutex<Observed>>) {
    apply(
        s,
        &deployment_yaml("batch", 2, "busybox:1.35", "{type: Recreate}"),
    );
    rollout_status(s, "batch");
    wait_until("2 batch pods", || pods_of(s, "app=batch").len() == 2);
    arm(seen, 0);
    s.kubectl_ok(&["set", "image", "deployment/batch", "c=busybox:1.36"]);
    let out = rollout_status(s, "batch");
    assert!(out.contains("successfully rolled out"), "{out}");
    let (max_pods, _, mixed) = disarm(seen);
    assert!(!mixed, "old and new pods existed at the same time");
    assert!(max_pods <= 2, "{max_pods}");
    let images = get(
        s,
        &["pods", "-l", "app=batch"],
        "{.items[*].spec.containers[0].image}",
    );
    assert_eq!(images, "busybox:1.36 busybox:1.36");
}

/// A ReplicaSet adopts a matching orphan (creating one pod less) and releases a pod relabelled
/// away (then replaces it).
fn adoption_and_release(s: &ServerProcess) {
    apply(
        s,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: stray, labels: {app: adopt}}\nspec: {containers: [{name: c, image: busybox}]}\n",
    );
    apply(
        s,
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: adopt}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: adopt}}\n  template:\n    metadata: {labels: {app: adopt}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
    );
    wait_until("stray adopted", || {
        get(s, &["pod", "stray"], "{.metadata.ownerReferences[0].name}") == "adopt"
    });
    wait_until("2 pods", || pods_of(s, "app=adopt").len() == 2);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        pods_of(s, "app=adopt").len(),
        2,
        "one created beside the orphan"
    );
    let uid = get(s, &["rs", "adopt"], "{.metadata.uid}");
    assert_eq!(
        get(s, &["pod", "stray"], "{.metadata.ownerReferences[0].uid}/{.metadata.ownerReferences[0].controller}/{.metadata.ownerReferences[0].blockOwnerDeletion}"),
        format!("{uid}/true/true")
    );
    s.kubectl_ok(&["label", "pod", "stray", "app=elsewhere", "--overwrite"]);
    // (skiff's API server keeps an emptied list as `[]`; upstream's omits it.)
    wait_until("stray released", || {
        matches!(
            get(s, &["pod", "stray"], "{.metadata.ownerReferences}").as_str(),
            "" | "[]"
        )
    });
    wait_until("a replacement", || pods_of(s, "app=adopt").len() == 2);
    wait_until("status counts 2 ready", || {
        get(s, &["rs", "adopt"], "{.status.replicas}/{.status.readyReplicas}/{.status.availableReplicas}/{.status.fullyLabeledReplicas}") == "2/2/2/2"
    });
    s.kubectl_ok(&["delete", "pod", "stray"]);
}

/// A ReplicationController keeps its count; `kubectl scale rc` works through it.
fn replication_controller(s: &ServerProcess) {
    apply(
        s,
        "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: legacy}\nspec:\n  replicas: 2\n  template:\n    metadata: {labels: {app: legacy}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
    );
    wait_until("2 legacy pods", || pods_of(s, "app=legacy").len() == 2);
    s.kubectl_ok(&["scale", "rc", "legacy", "--replicas=3"]);
    wait_until("3 ready legacy pods", || {
        get(
            s,
            &["rc", "legacy"],
            "{.status.replicas}/{.status.readyReplicas}",
        ) == "3/3"
    });
    let table = s.kubectl_ok(&["get", "rc", "legacy"]);
    assert!(table.contains("legacy   3         3         3"), "{table}");
    let owner = get(
        s,
        &["pods", "-l", "app=legacy"],
        "{.items[0].metadata.ownerReferences[0].kind}",
    );
    assert_eq!(owner, "ReplicationController");
    let described = s.kubectl_ok(&["describe", "rc", "legacy"]);
    assert!(described.contains("replication-controller"), "{described}");
}

/// A template the API server refuses (an unknown PriorityClass): ReplicaFailure with the
/// server's message, FailedCreate events, and retries that back off instead of looping.
fn bad_template(s: &ServerProcess) {
    apply(
        s,
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: bad}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: bad}}\n  template:\n    metadata: {labels: {app: bad}}\n    spec: {priorityClassName: no-such-class, containers: [{name: c, image: busybox}]}\n",
    );
    wait_until("ReplicaFailure", || {
        get(
            s,
            &["rs", "bad"],
            "{.status.conditions[?(@.type==\"ReplicaFailure\")].reason}",
        ) == "FailedCreate"
    });
    let message = get(
        s,
        &["rs", "bad"],
        "{.status.conditions[?(@.type==\"ReplicaFailure\")].message}",
    );
    assert!(message.contains("no-such-class"), "{message}");
    let described = s.kubectl_ok(&["describe", "rs", "bad"]);
    assert!(
        described.contains("FailedCreate") && described.contains("Error creating:"),
        "{described}"
    );
    assert!(pods_of(s, "app=bad").is_empty());
    // Slow start sends one create per attempt; the backoff keeps attempts few.
    std::thread::sleep(Duration::from_secs(6));
    let count: i32 = get(
        s,
        &[
            "events",
            "--field-selector",
            "involvedObject.name=bad,reason=FailedCreate",
        ],
        "{.items[0].count}",
    )
    .parse()
    .unwrap_or(0);
    assert!(
        (1..=8).contains(&count),
        "FailedCreate repeated {count} times in ~6 s"
    );
    // Fixing the template clears the condition.
    s.kubectl_ok(&[
        "patch",
        "rs",
        "bad",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/template/spec/priorityClassName"}]"#,
    ]);
    wait_until("bad recovers", || {
        get(s, &["rs", "bad"], "{.status.readyReplicas}") == "3"
    });
    wait_until("ReplicaFailure cleared", || {
        matches!(
            get(s, &["rs", "bad"], "{.status.conditions}").as_str(),
            "" | "[]"
        )
    });
}

/// A PodDisruptionBudget gets its status from the disruption controller, and the eviction
/// subresource honours it: refused with upstream's 429 while the budget allows nothing,
/// granted once it allows one. (The hollow kubelet readies a replacement within milliseconds,
/// so the budget is back before a second eviction could be refused by the spent allowance.)
fn disruption_budget(s: &ServerProcess) {
    apply(
        s,
        &deployment_yaml("guarded", 3, "nginx:1.25", "{type: RollingUpdate}"),
    );
    rollout_status(s, "guarded");
    let budget = |spec: &str| {
        format!("apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: guard}}\nspec: {{{spec}, selector: {{matchLabels: {{app: guarded}}}}}}\n")
    };
    let status = |s: &ServerProcess| {
        get(s, &["pdb", "guard"], "{.status.expectedPods} {.status.desiredHealthy} {.status.currentHealthy} {.status.disruptionsAllowed}")
    };
    apply(s, &budget("minAvailable: 3"));
    wait_until("guard's status", || status(s) == "3 3 3 0");
    assert_eq!(
        get(s, &["pdb", "guard"], "{.status.conditions[0].type} {.status.conditions[0].status} {.status.conditions[0].reason}"),
        "DisruptionAllowed False InsufficientPods"
    );
    let table = s.kubectl_ok(&["get", "pdb", "guard"]);
    assert!(table.contains("ALLOWED DISRUPTIONS"), "{table}");
    let pods = pods_of(s, "app=guarded");
    // kubectl's raw POST: kube-rs's client would retry a 429 for minutes, as a drain does.
    let evict = |pod: &str| {
        s.kubectl_stdin(
            &[
                "create",
                "--raw",
                &format!("/api/v1/namespaces/default/pods/{pod}/eviction"),
                "-f",
                "-",
            ],
            &format!(
                r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}"}}}}"#
            ),
        )
    };
    let refused = evict(&pods[0]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "the budget allows nothing");
    assert!(
        stderr.contains("Error from server (TooManyRequests): Cannot evict pod as it would violate the pod's disruption budget."),
        "{stderr}"
    );
    assert!(pods_of(s, "app=guarded").contains(&pods[0]), "not evicted");
    apply(s, &budget("maxUnavailable: 1"));
    wait_until("guard allows one", || status(s) == "3 2 3 1");
    let granted = evict(&pods[0]);
    assert!(
        granted.status.success(),
        "{}",
        String::from_utf8_lossy(&granted.stderr)
    );
    wait_until("evicted and replaced", || {
        let now = pods_of(s, "app=guarded");
        !now.contains(&pods[0]) && now.len() == 3 && status(s) == "3 2 3 1"
    });
    s.kubectl_ok(&["delete", "pdb", "guard"]);
    s.kubectl_ok(&["delete", "deployment", "guarded"]);
}

/// curl against the controller manager's HTTPS port (self-signed: `-k`): status and body.
fn curl_controller_manager(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sSk", "-o", "-", "-w", "\n%{http_code}"]);
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let out = cmd
        .arg(format!("https://127.0.0.1:{port}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A sample's value in Prometheus text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `/healthz` and `/metrics` as upstream's kube-controller-manager serves them on 10257:
/// health open to anyone, metrics for whoever the API server authorizes (`system:monitoring`,
/// checked by SubjectAccessReview), the work queue metrics under upstream's names.
fn controller_manager_endpoints(s: &ServerProcess, port: u16) {
    assert_eq!(
        curl_controller_manager(port, "/healthz", None),
        (200, "ok".into())
    );
    let (code, verbose) = curl_controller_manager(port, "/healthz?verbose", None);
    assert_eq!(code, 200, "{verbose}");
    assert!(verbose.starts_with("[+]leaderElection ok\n"), "{verbose}");
    assert!(
        verbose.contains("[+]deployment-controller ok\n"),
        "{verbose}"
    );
    assert!(verbose.ends_with("healthz check passed\n"), "{verbose}");
    let (code, body) = curl_controller_manager(port, "/metrics", None);
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains(r#"forbidden: User \"system:anonymous\" cannot get path \"/metrics\""#),
        "{body}"
    );
    assert_eq!(
        curl_controller_manager(port, "/metrics", Some("nope")).0,
        401
    );
    // A service account bound to system:monitoring may scrape; one without may not.
    s.kubectl_ok(&["create", "serviceaccount", "prometheus"]);
    s.kubectl_ok(&["create", "serviceaccount", "nobody"]);
    s.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "prometheus-monitoring",
        "--clusterrole=system:monitoring",
        "--serviceaccount=default:prometheus",
    ]);
    let nobody = s.kubectl_ok(&["create", "token", "nobody"]);
    let (code, body) = curl_controller_manager(port, "/metrics", Some(nobody.trim()));
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("system:serviceaccount:default:nobody"),
        "{body}"
    );
    let token = s.kubectl_ok(&["create", "token", "prometheus"]);
    let (code, metrics) = curl_controller_manager(port, "/metrics", Some(token.trim()));
    assert_eq!(code, 200, "{metrics}");
    let adds = sample(&metrics, r#"workqueue_adds_total{name="deployment"}"#);
    assert!(adds.is_some_and(|n| n > 0.0), "{metrics}");
    let synced = sample(
        &metrics,
        r#"workqueue_work_duration_seconds_count{name="deployment"}"#,
    );
    assert!(synced.is_some_and(|n| n > 0.0), "{metrics}");
    assert!(
        sample(&metrics, r#"workqueue_adds_total{name="replicaset"}"#).is_some_and(|n| n > 0.0)
    );
    // The refused template (`bad_template`) failed syncs that went back with a delay.
    let retries = sample(&metrics, r#"workqueue_retries_total{name="replicaset"}"#);
    assert!(retries.is_some_and(|n| n > 0.0), "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            r#"leader_election_master_status{name="kube-controller-manager"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(sample(&metrics, "process_resident_memory_bytes").is_some_and(|n| n > 0.0));
    s.kubectl_ok(&["delete", "clusterrolebinding", "prometheus-monitoring"]);
}

#[test]
fn workload_controllers_with_kubectl() {
    // Hollow nodes post no heartbeats: the node lifecycle controller must not declare them
    // unreachable during the test.
    let kcm_port = common::free_port();
    let s = ServerProcess::start_with(&[
        "--node-monitor-grace-period=1h",
        &format!("--controllers-secure-port={kcm_port}"),
    ]);
    for name in ["n1", "n2", "n3"] {
        apply(&s, &node_yaml(name));
    }
    let (runtime, client) = start_hollow_kubelet(&s);
    let web = Arc::new(Mutex::new(Observed::default()));
    runtime.spawn(observe(client.clone(), "web", web.clone()));
    let batch = Arc::new(Mutex::new(Observed::default()));
    runtime.spawn(observe(client.clone(), "batch", batch.clone()));

    deployment_lifecycle(&s, &web);
    recreate(&s, &batch);
    adoption_and_release(&s);
    replication_controller(&s);
    bad_template(&s);
    disruption_budget(&s);
    controller_manager_endpoints(&s, kcm_port);

    // Deleting the Deployment takes its ReplicaSets and pods along (garbage collector).
    s.kubectl_ok(&["delete", "deployment", "web"]);
    wait_until("web's pods gone", || pods_of(&s, "app=web").is_empty());
    drop(runtime);
}
