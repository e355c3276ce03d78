//! The metrics-server addon (`skiff metrics-server`), installed as upstream's
//! `components.yaml` installs kubernetes-sigs/metrics-server: a kube-system Deployment behind
//! the Service `metrics-server` (443 → 4443), registered with the aggregation layer by the
//! APIService `v1beta1.metrics.k8s.io`, with upstream's RBAC (`system:metrics-server`: the
//! kubelets' `nodes/metrics`, pods and nodes; `system:auth-delegator` for token and access
//! reviews; `extension-apiserver-authentication-reader` for the front proxy's CA;
//! `system:aggregated-metrics-reader`, aggregated into view, edit and admin).
//!
//! It runs the same image as the DNS addon (this `skiff` binary, [`crate::addons::DNS_IMAGE`])
//! with an identity of its own (`system:serviceaccount:kube-system:metrics-server`), handed to
//! the pods as a Secret. Not called by `skiff up` yet: the API server has to serve APIServices
//! and proxy to them first.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::Api;
use serde_json::json;

use crate::addons::{create, DNS_IMAGE};

const NAMESPACE: &str = "kube-system";
const NAME: &str = "metrics-server";
pub const USER: &str = "system:serviceaccount:kube-system:metrics-server";

/// Issues the addon's kubeconfig (`skiff token user`) for `server`.
pub fn kubeconfig(
    skiff: &str,
    server_dir: &Path,
    server: &str,
    out: &Path,
) -> anyhow::Result<PathBuf> {
    let status = Command::new(skiff)
        .args([
            "token",
            "user",
            USER,
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
        "issuing the metrics server's credential: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    Ok(out.to_path_buf())
}

/// The RBAC, the Secret, the Service, the Deployment and the APIService.
pub async fn install_metrics_server(
    client: kube::Client,
    addon_kubeconfig: &Path,
) -> anyhow::Result<()> {
    let kubeconfig = std::fs::read_to_string(addon_kubeconfig)?;
    let labels = json!({"k8s-app": NAME});
    let user = json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}]);
    let roles = Api::<ClusterRole>::all(client.clone());
    create(
        &roles,
        json!({"metadata": {"name": "system:aggregated-metrics-reader",
                            "labels": {"k8s-app": NAME,
                                       "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                                       "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                                       "rbac.authorization.k8s.io/aggregate-to-view": "true"}},
               "rules": [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}]}),
    )
    .await
    .context("the ClusterRole system:aggregated-metrics-reader")?;
    create(
        &roles,
        json!({"metadata": {"name": "system:metrics-server", "labels": labels},
               "rules": [{"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                         {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}]}),
    )
    .await
    .context("the ClusterRole system:metrics-server")?;
    let bindings = Api::<ClusterRoleBinding>::all(client.clone());
    for (name, role) in [
        ("system:metrics-server", "system:metrics-server"),
        (
            "metrics-server:system:auth-delegator",
            "system:auth-delegator",
        ),
    ] {
        create(
            &bindings,
            json!({"metadata": {"name": name, "labels": labels},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                   "subjects": user}),
        )
        .await
        .with_context(|| format!("the ClusterRoleBinding {name}"))?;
    }
    create(
        &Api::<RoleBinding>::namespaced(client.clone(), NAMESPACE),
        json!({"metadata": {"name": "metrics-server-auth-reader", "namespace": NAMESPACE, "labels": labels},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "extension-apiserver-authentication-reader"},
               "subjects": user}),
    )
    .await
    .context("the RoleBinding metrics-server-auth-reader")?;
    create(
        &Api::<Secret>::namespaced(client.clone(), NAMESPACE),
        json!({"metadata": {"name": "metrics-server-kubeconfig", "namespace": NAMESPACE, "labels": labels},
               "stringData": {"kubeconfig": kubeconfig}}),
    )
    .await
    .context("the metrics server's Secret")?;
    create(
        &Api::<Service>::namespaced(client.clone(), NAMESPACE),
        json!({"metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
               "spec": {"selector": labels,
                        "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"}]}}),
    )
    .await
    .context("the metrics-server Service")?;
    create(
        &Api::<Deployment>::namespaced(client.clone(), NAMESPACE),
        json!({"metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
               "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                "strategy": {"rollingUpdate": {"maxUnavailable": 0}},
                "template": {"metadata": {"labels": labels},
                 "spec": {
                   "priorityClassName": "system-cluster-critical",
                   // It authenticates with its own kubeconfig: no service-account token.
                   "automountServiceAccountToken": false,
                   "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                   "containers": [{
                     "name": NAME, "image": DNS_IMAGE,
                     "command": ["/bin/skiff", "metrics-server",
                                 "--kubeconfig", "/etc/metrics-server/kubeconfig",
                                 "--secure-port", "4443",
                                 "--kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname",
                                 "--kubelet-use-node-status-port",
                                 "--metric-resolution", "15s"],
                     "ports": [{"name": "https", "containerPort": 4443, "protocol": "TCP"}],
                     "readinessProbe": {"httpGet": {"path": "/readyz", "port": "https", "scheme": "HTTPS"},
                                        "periodSeconds": 10, "failureThreshold": 3, "initialDelaySeconds": 20},
                     "livenessProbe": {"httpGet": {"path": "/livez", "port": "https", "scheme": "HTTPS"},
                                       "periodSeconds": 10, "failureThreshold": 3},
                     "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}},
                     "volumeMounts": [{"name": "kubeconfig", "mountPath": "/etc/metrics-server", "readOnly": true}]}],
                   "volumes": [{"name": "kubeconfig", "secret": {"secretName": "metrics-server-kubeconfig"}}]}}}}),
    )
    .await
    .context("the metrics-server Deployment")?;
    // Its serving certificate is self-signed, as upstream's components.yaml leaves it.
    create(
        &Api::<APIService>::all(client),
        json!({"metadata": {"name": "v1beta1.metrics.k8s.io", "labels": labels},
               "spec": {"group": "metrics.k8s.io", "version": "v1beta1",
                        "service": {"name": NAME, "namespace": NAMESPACE, "port": 443},
                        "insecureSkipTLSVerify": true,
                        "groupPriorityMinimum": 100, "versionPriority": 100}}),
    )
    .await
    .context("the APIService v1beta1.metrics.k8s.io")?;
    Ok(())
}
