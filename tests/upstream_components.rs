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
