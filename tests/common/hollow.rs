//! Hollow nodes for the controller tests, as kubemark's: Node objects registered through
//! kubectl, and a hollow kubelet that reports every pod bound to a node Running and Ready
//! (`pods/status`) and removes a pod being deleted at once (grace 0). Plus the kubectl
//! one-liners these tests share.

#![allow(dead_code)]

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};

use super::ServerProcess;

/// A Ready hollow Node with room for 110 pods.
pub fn node_yaml(name: &str) -> String {
    node_yaml_with_taints(name, &[])
}

/// A hollow Node with `spec.taints` given as (key, value, effect).
pub fn node_yaml_with_taints(name: &str, taints: &[(&str, &str, &str)]) -> String {
    let spec = if taints.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = taints
            .iter()
            .map(|(key, value, effect)| {
                format!("  - {{key: {key}, value: \"{value}\", effect: {effect}}}\n")
            })
            .collect();
        format!("spec:\n  taints:\n{}", list.concat())
    };
    format!(
        r#"
apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels: {{kubernetes.io/hostname: {name}}}
{spec}status:
  capacity: {{cpu: "8", memory: 16Gi, pods: "110"}}
  allocatable: {{cpu: "8", memory: 16Gi, pods: "110"}}
  conditions:
  - {{type: Ready, status: "True", reason: KubeletReady, message: hollow node}}
"#
    )
}

pub fn apply(s: &ServerProcess, yaml: &str) {
    let out = s.kubectl_stdin(&["apply", "-f", "-"], yaml);
    assert!(
        out.status.success(),
        "kubectl apply failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn get(s: &ServerProcess, args: &[&str], jsonpath: &str) -> String {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    let path = format!("jsonpath={jsonpath}");
    all.extend_from_slice(&["-o", &path]);
    s.kubectl_ok(&all)
}

pub fn pods_of(s: &ServerProcess, selector: &str) -> Vec<String> {
    get(
        s,
        &["pods", "-l", selector],
        "{range .items[*]}{.metadata.name}{\"\\n\"}{end}",
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// A tokio runtime with a hollow kubelet running on it for `s`, and the admin client (for
/// the test's own watchers). The kubelet stops when the runtime is dropped.
pub fn start_hollow_kubelet(s: &ServerProcess) -> (tokio::runtime::Runtime, kube::Client) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let client = runtime
        .block_on(skiff_controllers::client_from_kubeconfig(&s.kubeconfig))
        .expect("client");
    runtime.spawn(hollow_kubelet(client.clone()));
    (runtime, client)
}

/// The hollow kubelet: pods bound to a node become Running and Ready; pods being deleted go.
pub async fn hollow_kubelet(client: kube::Client) {
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
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        if pod.metadata.deletion_timestamp.is_some() {
            let _ = pods
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
            continue;
        }
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if !bound || phase == Some("Running") {
            continue;
        }
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let containers: Vec<serde_json::Value> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .map(|c| {
                serde_json::json!({"name": c.name, "image": c.image, "imageID": "", "ready": true,
                    "restartCount": 0, "started": true, "state": {"running": {"startedAt": now}}})
            })
            .collect();
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
            "containerStatuses": containers,
        }});
        let _ = pods
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
            .await;
    }
}
