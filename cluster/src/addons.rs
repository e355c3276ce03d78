//! The cluster's addons, installed by `skiff up` the way kubeadm installs CoreDNS: as a
//! kube-system Deployment behind the Service `kube-dns` at 10.96.0.10 (the address every
//! kubelet writes into pods' resolv.conf), managed by the controllers like any workload.
//!
//! The addon runs the `skiff` binary itself (`skiff dns`) from an image built offline out of
//! this binary and the shared libraries it links (found with ldd), so no registry is needed.
//! Its credential is an identity of its own (`system:serviceaccount:kube-system:skiff-dns`),
//! handed to the pods as a Secret.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use crate::topology::Topology;

pub const DNS_IMAGE: &str = concat!("skiff.local/skiff:", env!("CARGO_PKG_VERSION"));
pub const DNS_SERVICE_IP: &str = "10.96.0.10";
const NAMESPACE: &str = "kube-system";
const NAME: &str = "skiff-dns";
const USER: &str = "system:serviceaccount:kube-system:skiff-dns";

/// A root filesystem holding `binary` and every library `ldd` says it loads.
fn rootfs(binary: &Path, dir: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("bin"))?;
    std::fs::copy(binary, dir.join("bin/skiff"))
        .with_context(|| format!("copying {}", binary.display()))?;
    // Debug information is most of a debug build (720 MB → ~90 MB); the image needs none.
    let _ = Command::new("strip")
        .arg("--strip-debug")
        .arg(dir.join("bin/skiff"))
        .status();
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("running ldd")?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        let path = line
            .split("=>")
            .last()
            .and_then(|r| r.split_whitespace().next())
            .filter(|p| p.starts_with('/'));
        if let Some(path) = path {
            let target = dir.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(target.parent().expect("a file path"))?;
            std::fs::copy(path, &target).with_context(|| format!("copying {path}"))?;
        }
    }
    std::fs::create_dir_all(dir.join("etc"))?;
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/:/bin/skiff\nnobody:x:65534:65534:nobody:/:/bin/skiff\n",
    )?;
    Ok(())
}

/// Builds the addon image into every node's image store.
pub fn build_image(t: &Topology, binary: &Path) -> anyhow::Result<()> {
    let dir = t.state_dir().join("addons/rootfs");
    rootfs(binary, &dir)?;
    let config = skiff_image::build::BuildConfig {
        cmd: vec!["/bin/skiff".into()],
        ..Default::default()
    };
    for node in &t.nodes {
        let store = Arc::new(skiff_image::Store::open(t.node_dir(node).join("images"))?);
        skiff_image::build::build(&store, DNS_IMAGE, &dir, &config)
            .with_context(|| format!("building {DNS_IMAGE} for {}", node.name))?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Issues the DNS addon's kubeconfig (`skiff token user`) for `server`.
pub fn kubeconfig(
    skiff: &str,
    server_dir: &Path,
    server: &str,
    out: &Path,
) -> anyhow::Result<PathBuf> {
    service_account_kubeconfig(skiff, server_dir, server, USER, out)
}

/// Issues a kubeconfig for the kube-system service account `user` (with its service-account
/// groups) through `skiff token user`: the credential each addon runs with.
pub fn service_account_kubeconfig(
    skiff: &str,
    server_dir: &Path,
    server: &str,
    user: &str,
    out: &Path,
) -> anyhow::Result<PathBuf> {
    let status = Command::new(skiff)
        .args([
            "token",
            "user",
            user,
            "--group",
            "system:serviceaccounts",
            "--group",
            "system:serviceaccounts:kube-system",
            "--data-dir",
        ])
        .arg(server_dir)
        .args(["--server", server, "--output"])
        .arg(out)
        .output()?;
    anyhow::ensure!(
        status.status.success(),
        "issuing {user}'s credential: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    Ok(out.to_path_buf())
}

pub(crate) async fn create<K>(api: &Api<K>, object: serde_json::Value) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(object)?;
    // Already there (a restored cluster): keep it. A Service's create would not say 409 but
    // 422, as upstream's: its ClusterIP is allocated before the name is checked.
    if let Some(name) = object.meta().name.as_deref() {
        if api.get_opt(name).await?.is_some() {
            return Ok(());
        }
    }
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Creates the Secret, the Service and the Deployment, then waits until a replica is ready.
pub async fn install_dns(
    client: kube::Client,
    addon_kubeconfig: &Path,
    replicas: i32,
) -> anyhow::Result<()> {
    let kubeconfig = std::fs::read_to_string(addon_kubeconfig)?;
    // What it may read, as CoreDNS's manifests grant `system:coredns`.
    create(
        &Api::<ClusterRole>::all(client.clone()),
        json!({"metadata": {"name": "system:skiff-dns", "labels": {"k8s-app": "kube-dns"}},
               "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"]},
                         {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]}),
    )
    .await
    .context("the DNS addon's ClusterRole")?;
    create(
        &Api::<ClusterRoleBinding>::all(client.clone()),
        json!({"metadata": {"name": "system:skiff-dns", "labels": {"k8s-app": "kube-dns"}},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:skiff-dns"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}]}),
    )
    .await
    .context("the DNS addon's ClusterRoleBinding")?;
    create(
        &Api::<Secret>::namespaced(client.clone(), NAMESPACE),
        json!({"metadata": {"name": "skiff-dns-kubeconfig", "namespace": NAMESPACE},
               "stringData": {"kubeconfig": kubeconfig}}),
    )
    .await
    .context("the DNS addon's Secret")?;
    create(
        &Api::<Service>::namespaced(client.clone(), NAMESPACE),
        json!({"metadata": {"name": "kube-dns", "namespace": NAMESPACE,
                            "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
               "spec": {"selector": {"k8s-app": "kube-dns"}, "clusterIP": DNS_SERVICE_IP,
                        "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                                  {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                                  {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]}}),
    )
    .await
    .context("the kube-dns Service")?;
    let deployments = Api::<Deployment>::namespaced(client, NAMESPACE);
    create(
        &deployments,
        json!({"metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"k8s-app": "kube-dns"}},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}},
                 "spec": {
                   "dnsPolicy": "Default",
                   // The addon authenticates with its own kubeconfig: no service-account token.
                   "automountServiceAccountToken": false,
                   "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                   "containers": [{
                     "name": "dns", "image": DNS_IMAGE,
                     "command": ["/bin/skiff", "dns", "--kubeconfig", "/etc/skiff-dns/kubeconfig", "--listen", "0.0.0.0:53"],
                     "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                               {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                               {"name": "metrics", "containerPort": 9153, "protocol": "TCP"}],
                     "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 1},
                     "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10},
                     "volumeMounts": [{"name": "kubeconfig", "mountPath": "/etc/skiff-dns", "readOnly": true}]}],
                   "volumes": [{"name": "kubeconfig", "secret": {"secretName": "skiff-dns-kubeconfig"}}]}}}}),
    )
    .await
    .context("the DNS addon's Deployment")?;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ready = deployments
            .get(NAME)
            .await
            .ok()
            .and_then(|d| d.status)
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        if ready >= 1 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let pods = Api::<Pod>::namespaced(deployments.into_client(), NAMESPACE);
            anyhow::bail!(
                "no DNS replica Ready after 90 s:\n{}",
                describe_pods(&pods, "k8s-app=kube-dns").await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What keeps the pods matching `selector` from being Ready — node, phase, conditions that are
/// not True, each container's state — for the error `skiff up` prints.
async fn describe_pods(pods: &Api<Pod>, selector: &str) -> String {
    let list = match pods.list(&ListParams::default().labels(selector)).await {
        Ok(list) => list,
        Err(e) => return format!("(listing the pods failed: {e})"),
    };
    if list.items.is_empty() {
        return format!("no pod matches {selector}");
    }
    let mut lines = Vec::new();
    for pod in list.items {
        let name = pod.metadata.name.unwrap_or_default();
        let node = pod.spec.and_then(|s| s.node_name).unwrap_or_default();
        let status = pod.status.unwrap_or_default();
        let conditions: Vec<String> = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.status != "True")
            .map(|c| {
                format!(
                    "{}={} {}",
                    c.type_,
                    c.status,
                    c.message.or(c.reason).unwrap_or_default()
                )
            })
            .collect();
        let containers: Vec<String> = status
            .container_statuses
            .unwrap_or_default()
            .into_iter()
            .map(|c| format!("{} ready={} {:?}", c.name, c.ready, c.state))
            .collect();
        lines.push(format!(
            "  {name} on {node:?}: {} [{}] [{}]",
            status.phase.unwrap_or_default(),
            conditions.join("; "),
            containers.join("; ")
        ));
    }
    lines.join("\n")
}
