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
//! the pods as a Secret. `skiff up --metrics-server` installs it after the DNS addon without
//! waiting for it:
//! the server is Ready (and the APIService Available) after its second scrape, about 30 s
//! later, when `kubectl top` starts answering.

use std::path::{Path, PathBuf};

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
    crate::addons::service_account_kubeconfig(skiff, server_dir, server, USER, out)
}

/// What is installed, in order: (kind, object).
pub fn manifests(kubeconfig: &str) -> Vec<(&'static str, serde_json::Value)> {
    let labels = json!({"k8s-app": NAME});
    let user = json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}]);
    let mut out = vec![
        (
            "ClusterRole",
            json!({"metadata": {"name": "system:aggregated-metrics-reader",
                            "labels": {"k8s-app": NAME,
                                       "rbac.authorization.k8s.io/aggregate-to-admin": "true",
                                       "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                                       "rbac.authorization.k8s.io/aggregate-to-view": "true"}},
               "rules": [{"apiGroups": ["metrics.k8s.io"], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}]}),
        ),
        (
            "ClusterRole",
            json!({"metadata": {"name": "system:metrics-server", "labels": labels},
               "rules": [{"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                         {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}]}),
        ),
    ];
    for (name, role) in [
        ("system:metrics-server", "system:metrics-server"),
        (
            "metrics-server:system:auth-delegator",
            "system:auth-delegator",
        ),
    ] {
        out.push(("ClusterRoleBinding", json!({"metadata": {"name": name, "labels": labels},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                   "subjects": user})));
    }
    out.push(("RoleBinding", json!({"metadata": {"name": "metrics-server-auth-reader", "namespace": NAMESPACE, "labels": labels},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "extension-apiserver-authentication-reader"},
               "subjects": user})));
    out.push(("Secret", json!({"metadata": {"name": "metrics-server-kubeconfig", "namespace": NAMESPACE, "labels": labels},
               "stringData": {"kubeconfig": kubeconfig}})));
    out.push(("Service", json!({"metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
               "spec": {"selector": labels,
                        "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"}]}})));
    out.push(("Deployment", json!({"metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
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
                   "volumes": [{"name": "kubeconfig", "secret": {"secretName": "metrics-server-kubeconfig"}}]}}}})));
    // Its serving certificate is self-signed, as upstream's components.yaml leaves it.
    out.push((
        "APIService",
        json!({"metadata": {"name": "v1beta1.metrics.k8s.io", "labels": labels},
               "spec": {"group": "metrics.k8s.io", "version": "v1beta1",
                        "service": {"name": NAME, "namespace": NAMESPACE, "port": 443},
                        "insecureSkipTLSVerify": true,
                        "groupPriorityMinimum": 100, "versionPriority": 100}}),
    ));
    out
}

/// Creates [`manifests`] (what exists already is kept).
pub async fn install_metrics_server(
    client: kube::Client,
    addon_kubeconfig: &Path,
) -> anyhow::Result<()> {
    let kubeconfig = std::fs::read_to_string(addon_kubeconfig)?;
    for (kind, object) in manifests(&kubeconfig) {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let created = match kind {
            "ClusterRole" => create(&Api::<ClusterRole>::all(client.clone()), object).await,
            "ClusterRoleBinding" => {
                create(&Api::<ClusterRoleBinding>::all(client.clone()), object).await
            }
            "RoleBinding" => {
                create(
                    &Api::<RoleBinding>::namespaced(client.clone(), NAMESPACE),
                    object,
                )
                .await
            }
            "Secret" => {
                create(
                    &Api::<Secret>::namespaced(client.clone(), NAMESPACE),
                    object,
                )
                .await
            }
            "Service" => {
                create(
                    &Api::<Service>::namespaced(client.clone(), NAMESPACE),
                    object,
                )
                .await
            }
            "Deployment" => {
                create(
                    &Api::<Deployment>::namespaced(client.clone(), NAMESPACE),
                    object,
                )
                .await
            }
            _ => create(&Api::<APIService>::all(client.clone()), object).await,
        };
        created.with_context(|| format!("the {kind} {name}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every manifest is a valid object of its kind (k8s-openapi's types), and with its
    /// apiVersion and kind a document `kubectl apply` takes.
    #[test]
    fn manifests_are_objects_of_their_kinds() {
        let mut documents = Vec::new();
        for (kind, object) in manifests("apiVersion: v1\nkind: Config\n") {
            let api_version = match kind {
                "ClusterRole" => {
                    serde_json::from_value::<ClusterRole>(object.clone())
                        .map(|_| ())
                        .unwrap();
                    "rbac.authorization.k8s.io/v1"
                }
                "ClusterRoleBinding" => {
                    serde_json::from_value::<ClusterRoleBinding>(object.clone())
                        .map(|_| ())
                        .unwrap();
                    "rbac.authorization.k8s.io/v1"
                }
                "RoleBinding" => {
                    serde_json::from_value::<RoleBinding>(object.clone())
                        .map(|_| ())
                        .unwrap();
                    "rbac.authorization.k8s.io/v1"
                }
                "Secret" => {
                    serde_json::from_value::<Secret>(object.clone())
                        .map(|_| ())
                        .unwrap();
                    "v1"
                }
                "Service" => {
                    serde_json::from_value::<Service>(object.clone())
                        .map(|_| ())
                        .unwrap();
                    "v1"
                }
                "Deployment" => {
                    serde_json::from_value::<Deployment>(object.clone())
                        .map(|_| ())
                        .unwrap();
                    "apps/v1"
                }
                "APIService" => {
                    serde_json::from_value::<APIService>(object.clone())
                        .map(|_| ())
                        .unwrap();
                    "apiregistration.k8s.io/v1"
                }
                other => panic!("unexpected kind {other}"),
            };
            let mut document = object;
            document["apiVersion"] = json!(api_version);
            document["kind"] = json!(kind);
            documents.push(document);
        }
        assert_eq!(documents.len(), 9);
        // `cargo test -p skiff-cluster metrics_server -- --nocapture` prints the List.
        println!(
            "{}",
            json!({"apiVersion": "v1", "kind": "List", "items": documents})
        );
    }
}
