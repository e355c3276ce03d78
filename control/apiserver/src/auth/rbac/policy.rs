//! The default RBAC policy, bootstrapped and reconciled on every start as upstream's
//! `rbac/bootstrap-roles` post-start hook does: missing roles and bindings are created; existing
//! ones annotated `rbac.authorization.kubernetes.io/autoupdate: "true"` get back any rule,
//! subject, label or aggregation selector they lost (additions by users are kept); ones a user
//! marked `autoupdate: "false"` are left alone.
//!
//! The policy itself is upstream's, dumped from kube-apiserver 1.37.2 by
//! `gen/upstream_rbac.py` into `gen/upstream-rbac.json` — the same roles kubectl, upstream's
//! scheduler and controller manager and every RBAC-aware manifest expect. `SKIFF_BINDINGS` adds
//! the bindings for skiff's own components, as kubeadm adds its own.

use std::sync::OnceLock;

use anyhow::Context;
use serde_json::{json, Value};

use crate::handlers::{ApiServer, Target};

const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

/// The group of every node's network agent credential (`skiff token netd`).
pub const NETD_GROUP: &str = "system:skiff-netds";

/// Roles and bindings skiff's own components need beyond upstream's defaults (kubeadm's and
/// flannel's equivalents), as (resource, object): the API server's client toward kubelets,
/// joining nodes' bootstrap bindings, and the node network agent (`skiff netd`: flannel's node
/// annotations and status, kube-proxy's reads, its announcement Leases). The controller
/// manager's user holds only upstream's `system:kube-controller-manager` role, and each
/// controller acts as its service account `kube-system/<name>`
/// (`--use-service-account-credentials`), which upstream's policy binds to
/// `system:controller:<name>` — plus one difference, `skiff:controller-patches`: five of
/// skiff's workload controllers write status (and the Deployment revision annotation and
/// StatefulSet claims' owner references) with a merge patch where upstream's use update, so
/// their accounts may also `patch` exactly those.
fn skiff_policy() -> Vec<(&'static str, Value)> {
    let labels = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    let annotations = json!({AUTOUPDATE: "true"});
    let patchers: Vec<Value> = [
        "replicaset-controller",
        "replication-controller",
        "deployment-controller",
        "daemon-set-controller",
        "statefulset-controller",
    ]
    .iter()
    .map(|sa| json!({"kind": "ServiceAccount", "name": sa, "namespace": "kube-system"}))
    .collect();
    let mut out = vec![
        (
            "clusterroles",
            json!({
                "metadata": {"name": "skiff:controller-patches", "labels": labels, "annotations": annotations},
                "rules": [
                    {"apiGroups": ["apps"], "resources": ["replicasets/status", "deployments/status", "daemonsets/status", "statefulsets/status", "deployments"], "verbs": ["patch"]},
                    {"apiGroups": [""], "resources": ["replicationcontrollers/status", "persistentvolumeclaims"], "verbs": ["patch"]},
                ],
            }),
        ),
        (
            "clusterrolebindings",
            json!({
                "metadata": {"name": "skiff:controller-patches", "labels": labels, "annotations": annotations},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "skiff:controller-patches"},
                "subjects": patchers,
            }),
        ),
        (
            "clusterroles",
            json!({
                "metadata": {"name": "system:skiff-netd", "labels": labels, "annotations": annotations},
                "rules": [
                    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch", "patch"]},
                    {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch", "update"]},
                    {"apiGroups": [""], "resources": ["services", "endpoints"], "verbs": ["list", "watch"]},
                    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
                    {"apiGroups": ["networking.k8s.io"], "resources": ["servicecidrs"], "verbs": ["list", "watch"]},
                    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
                ],
            }),
        ),
        (
            "clusterrolebindings",
            json!({
                "metadata": {"name": "system:skiff-netd", "labels": labels, "annotations": annotations},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:skiff-netd"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": NETD_GROUP}],
            }),
        ),
        (
            "roles",
            json!({
                "metadata": {"name": "system:skiff-netd", "namespace": "kube-node-lease", "labels": labels, "annotations": annotations},
                "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "list", "watch", "create", "update", "patch"]}],
            }),
        ),
        (
            "rolebindings",
            json!({
                "metadata": {"name": "system:skiff-netd", "namespace": "kube-node-lease", "labels": labels, "annotations": annotations},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "system:skiff-netd"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": NETD_GROUP}],
            }),
        ),
    ];
    // Joining nodes (kubeadm's bindings): bootstrap tokens may ask for a client certificate,
    // which the approver grants them, and nodes may renew their own.
    for (name, role, group) in [
        (
            "skiff:kubelet-bootstrap",
            "system:node-bootstrapper",
            crate::auth::bootstrap_token::DEFAULT_NODE_GROUP,
        ),
        (
            "skiff:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            crate::auth::bootstrap_token::DEFAULT_NODE_GROUP,
        ),
        (
            "skiff:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            "system:nodes",
        ),
    ] {
        out.push(("clusterrolebindings", json!({
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
        })));
    }
    // kubeadm's: anyone may read the token-discovery ConfigMap (its signatures are what a
    // joining node trusts).
    let clusterinfo = crate::auth::cluster_info::ANONYMOUS_ROLE;
    let public = crate::auth::cluster_info::NAMESPACE;
    out.push(("roles", json!({
        "metadata": {"name": clusterinfo, "namespace": public, "labels": labels, "annotations": annotations},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [crate::auth::cluster_info::NAME], "verbs": ["get"]}],
    })));
    out.push(("rolebindings", json!({
        "metadata": {"name": clusterinfo, "namespace": public, "labels": labels, "annotations": annotations},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": clusterinfo},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}],
    })));
    out.push(("clusterrolebindings", json!({
        "metadata": {"name": "skiff:apiserver-kubelet-client", "annotations": {AUTOUPDATE: "true"},
                     "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kubelet-api-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "kube-apiserver-kubelet-client"}],
    })));
    out
}

/// Upstream's default policy (`gen/upstream-rbac.json`).
pub fn upstream() -> &'static Value {
    static POLICY: OnceLock<Value> = OnceLock::new();
    POLICY.get_or_init(|| {
        serde_json::from_str(include_str!("../../../gen/upstream-rbac.json"))
            .expect("gen/upstream-rbac.json is valid JSON")
    })
}

/// Adds to `existing[field]` (a list) what `wanted[field]` has and it lacks; true if it changed.
fn add_missing(existing: &mut Value, wanted: &Value, field: &str) -> bool {
    let Some(wanted) = wanted[field].as_array() else {
        return false;
    };
    if !existing[field].is_array() {
        existing[field] = json!([]);
    }
    let list = existing[field].as_array_mut().expect("just made a list");
    let mut changed = false;
    for item in wanted {
        if !list.contains(item) {
            list.push(item.clone());
            changed = true;
        }
    }
    changed
}

/// Adds missing labels and annotations; true if it changed.
fn add_missing_metadata(existing: &mut Value, wanted: &Value) -> bool {
    let mut changed = false;
    for field in ["labels", "annotations"] {
        let Some(wanted) = wanted["metadata"][field].as_object() else {
            continue;
        };
        let meta = &mut existing["metadata"];
        if !meta[field].is_object() {
            meta[field] = json!({});
        }
        let map = meta[field].as_object_mut().expect("just made an object");
        for (k, v) in wanted {
            if !map.contains_key(k) {
                map.insert(k.clone(), v.clone());
                changed = true;
            }
        }
    }
    changed
}

/// The reconciled object, or None when `existing` needs nothing.
fn reconcile_one(existing: &Value, wanted: &Value, is_role: bool) -> Option<Value> {
    if existing["metadata"]["annotations"][AUTOUPDATE].as_str() == Some("false") {
        return None;
    }
    let mut next = existing.clone();
    let mut changed = add_missing_metadata(&mut next, wanted);
    if is_role {
        if wanted.get("aggregationRule").is_some() {
            // The aggregation controller owns the rules; only the selectors are ours.
            if !next["aggregationRule"].is_object() {
                next["aggregationRule"] = json!({"clusterRoleSelectors": []});
            }
            changed |= add_missing(
                &mut next["aggregationRule"],
                &wanted["aggregationRule"],
                "clusterRoleSelectors",
            );
        } else {
            changed |= add_missing(&mut next, wanted, "rules");
        }
    } else {
        changed |= add_missing(&mut next, wanted, "subjects");
    }
    changed.then_some(next)
}

async fn ensure(server: &ApiServer, resource: &str, wanted: &Value) -> anyhow::Result<()> {
    let info = crate::resources::find("rbac.authorization.k8s.io", "v1", resource)
        .context("RBAC resources are registered")?;
    let namespace = wanted["metadata"]["namespace"].as_str();
    let name = wanted["metadata"]["name"].as_str().unwrap_or_default();
    let target = Target {
        info,
        namespace: namespace.map(str::to_string),
        name: Some(name.to_string()),
        sub: None,
    };
    let ctx = crate::server::system_ctx();
    let is_role = resource.ends_with("roles");
    let existing = server
        .storage
        .get(&info.key(namespace, name))
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let result = match existing {
        None => {
            let collection = Target {
                name: None,
                ..target
            };
            server
                .create(&collection, &ctx, wanted.clone())
                .await
                .map(|_| ())
        }
        Some(stored) => match reconcile_one(&stored.object, wanted, is_role) {
            Some(next) => server.update(&target, &ctx, next).await.map(|_| ()),
            None => Ok(()),
        },
    };
    match result {
        // Another API server reconciling at the same time: it did the same.
        Err(e) if e.code == 409 => Ok(()),
        r => r.map_err(|e| anyhow::anyhow!("reconciling {resource} {name}: {}", e.message)),
    }
}

/// Creates or reconciles every default role and binding (roles before the bindings that name
/// them).
pub async fn reconcile(server: &ApiServer) -> anyhow::Result<()> {
    let policy = upstream();
    for resource in [
        "clusterroles",
        "roles",
        "clusterrolebindings",
        "rolebindings",
    ] {
        for wanted in policy[resource].as_array().into_iter().flatten() {
            ensure(server, resource, wanted).await?;
        }
    }
    for (resource, object) in skiff_policy() {
        ensure(server, resource, &object).await?;
    }
    remove_retired(server).await
}

/// Deletes the bindings earlier versions made that the policy no longer has: every controller
/// role bound to the controller manager's own user (before each controller had its own
/// account).
async fn remove_retired(server: &ApiServer) -> anyhow::Result<()> {
    let info = crate::resources::find("rbac.authorization.k8s.io", "v1", "clusterrolebindings")
        .context("RBAC resources are registered")?;
    let page = server
        .storage
        .list(&info.key_prefix(), None, 0, 0)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    for item in page.items {
        let name = item.object["metadata"]["name"].as_str().unwrap_or_default();
        if !name.starts_with("skiff:controller-manager:") {
            continue;
        }
        let target = Target {
            info,
            namespace: None,
            name: Some(name.to_string()),
            sub: None,
        };
        match server
            .delete(&target, &crate::server::system_ctx(), &json!({}))
            .await
        {
            Ok(_) => {}
            Err(e) if e.code == 404 => {}
            Err(e) => anyhow::bail!("removing the retired binding {name}: {}", e.message),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_policy_has_the_roles_kubectl_users_expect() {
        let names: Vec<&str> = upstream()["clusterroles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["metadata"]["name"].as_str().unwrap())
            .collect();
        for want in [
            "cluster-admin",
            "admin",
            "edit",
            "view",
            "system:kube-scheduler",
            "system:node",
        ] {
            assert!(names.contains(&want), "{want} missing");
        }
    }

    #[test]
    fn reconcile_adds_lost_rules_and_keeps_user_additions() {
        let wanted = json!({"metadata": {"name": "r", "annotations": {AUTOUPDATE: "true"}},
                            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]});
        let existing = json!({"metadata": {"name": "r", "annotations": {AUTOUPDATE: "true"}},
                              "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]});
        let next = reconcile_one(&existing, &wanted, true).unwrap();
        assert_eq!(next["rules"].as_array().unwrap().len(), 2);
        assert!(reconcile_one(&next, &wanted, true).is_none());
        let opted_out =
            json!({"metadata": {"name": "r", "annotations": {AUTOUPDATE: "false"}}, "rules": []});
        assert!(reconcile_one(&opted_out, &wanted, true).is_none());
    }
}
