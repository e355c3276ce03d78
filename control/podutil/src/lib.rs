//! What the API server and the kubelet must read the same way in a pod spec (upstream's
//! `pkg/api/v1/pod` helpers). One place, so NodeRestriction's check of a mirror pod and the
//! kubelet's check of the static pod behind it can never disagree.

use serde_json::Value;

/// What API object a pod references, if any (upstream's `HasAPIObjectReference`), named as
/// upstream's messages name it: a static pod may not reference one (the kubelet refuses the
/// manifest) and a node may not create a mirror pod that does (NodeRestriction), since that
/// would let the node read objects it could not otherwise.
pub fn api_object_reference(pod: &Value) -> Option<&'static str> {
    let spec = &pod["spec"];
    let named = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    let list = |v: &Value, key: &str| -> Vec<Value> {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if named(spec, "serviceAccountName") || named(spec, "serviceAccount") {
        return Some("serviceaccounts");
    }
    let containers: Vec<Value> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| list(spec, k))
        .collect();
    let volumes = list(spec, "volumes");
    let sources = |v: &Value| list(&v["projected"], "sources");
    let env_refers = |from: &str, key_ref: &str| {
        containers.iter().any(|c| {
            list(c, "envFrom")
                .iter()
                .any(|e| e.get(from).is_some_and(|r| named(r, "name")))
                || list(c, "env").iter().any(|e| {
                    e.get("valueFrom")
                        .and_then(|v| v.get(key_ref))
                        .is_some_and(|r| named(r, "name"))
                })
        })
    };
    let secrets = list(spec, "imagePullSecrets")
        .iter()
        .any(|r| named(r, "name"))
        || env_refers("secretRef", "secretKeyRef")
        || volumes.iter().any(|v| {
            v.get("azureFile").is_some_and(|a| named(a, "secretName"))
                || v.get("secret").is_some_and(|s| named(s, "secretName"))
                || v.pointer("/csi/nodePublishSecretRef")
                    .is_some_and(|r| named(r, "name"))
                || [
                    "cephfs",
                    "cinder",
                    "flexVolume",
                    "rbd",
                    "scaleIO",
                    "iscsi",
                    "storageos",
                ]
                .iter()
                .any(|k| {
                    v.get(*k)
                        .and_then(|s| s.get("secretRef"))
                        .is_some_and(|r| named(r, "name"))
                })
                || sources(v)
                    .iter()
                    .any(|s| s.get("secret").is_some_and(|r| named(r, "name")))
        });
    if secrets {
        return Some("secrets");
    }
    let config_maps = env_refers("configMapRef", "configMapKeyRef")
        || volumes.iter().any(|v| {
            v.get("configMap").is_some_and(|c| named(c, "name"))
                || sources(v)
                    .iter()
                    .any(|s| s.get("configMap").is_some_and(|r| named(r, "name")))
        });
    if config_maps {
        return Some("configmaps");
    }
    if !list(spec, "resourceClaims").is_empty() {
        return Some("resourceclaims");
    }
    for v in &volumes {
        let has = |k: &str| v.get(k).is_some_and(|x| !x.is_null());
        let refers = [
            ("configMap", "configmaps (via configmap volumes)"),
            ("secret", "secrets (via secret volumes)"),
            ("csi", "csidrivers (via CSI volumes)"),
            ("glusterfs", "endpoints (via glusterFS volumes)"),
            ("persistentVolumeClaim", "persistentvolumeclaims"),
            (
                "ephemeral",
                "persistentvolumeclaims (via ephemeral volumes)",
            ),
            ("azureFile", "secrets (via azureFile volumes)"),
        ];
        if let Some((_, what)) = refers.iter().find(|(k, _)| has(k)) {
            return Some(what);
        }
        for s in sources(v) {
            let refers = [
                ("configMap", "configmaps (via projected volumes)"),
                ("secret", "secrets (via projected volumes)"),
                (
                    "serviceAccountToken",
                    "serviceaccounts (via projected volumes)",
                ),
                ("clusterTrustBundle", "clustertrustbundles"),
                ("podCertificate", "podcertificates"),
            ];
            if let Some((_, what)) = refers
                .iter()
                .find(|(k, _)| s.get(*k).is_some_and(|x| !x.is_null()))
            {
                return Some(what);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn references_are_named_as_upstream_names_them() {
        let pod = |spec: Value| json!({"spec": spec});
        assert_eq!(
            api_object_reference(&pod(json!({"containers": [{"name": "c"}]}))),
            None
        );
        assert_eq!(
            api_object_reference(&pod(json!({"serviceAccountName": "x"}))),
            Some("serviceaccounts")
        );
        assert_eq!(
            api_object_reference(&pod(json!({"serviceAccount": "x"}))),
            Some("serviceaccounts")
        );
        assert_eq!(
            api_object_reference(&pod(json!({"containers": [{"name": "c",
                "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]}))),
            Some("secrets")
        );
        assert_eq!(
            api_object_reference(&pod(json!({"volumes": [{"name": "v",
                "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]}))),
            Some("serviceaccounts (via projected volumes)")
        );
    }
}
