//! The ServiceAccount admission plugin (upstream `plugin/pkg/admission/serviceaccount`), on pod
//! create:
//! - a pod that names no account runs as `default`, which must exist (a brand-new namespace's
//!   `default` is created by the ServiceAccount controller a moment later: it is looked up
//!   again for up to about 1.5 s, as upstream does; after that the pod is refused and the client
//!   retries, as workload controllers do);
//! - unless `automountServiceAccountToken` is false on the pod (or, when the pod does not say,
//!   on the account), every container and init container mounts the projected volume
//!   `kube-api-access-<random>` — a bound token the kubelet requests (3607 s, which the
//!   TokenRequest API extends), the cluster CA from `kube-root-ca.crt`, and the namespace — at
//!   `/var/run/secrets/kubernetes.io/serviceaccount`, read-only, unless it already mounts
//!   something there;
//! - the account's `imagePullSecrets` are copied into a pod that has none;
//! - an account annotated `kubernetes.io/enforce-mountable-secrets: "true"` limits the secrets
//!   the pod may use to the account's.
//!
//! Mirror pods (the kubelet's copies of static pods) are not changed, and may reference no
//! service account, secret or token projection.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails;
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::auth::serviceaccount::WARN_ONLY_EXPIRATION_SECONDS;
use crate::error::{ApiError, ApiResult};
use crate::registry::Lookup;

/// The plugin's name in `--disable-admission-plugins`.
pub const PLUGIN: &str = "ServiceAccount";
pub const DEFAULT_ACCOUNT: &str = "default";
/// The token volume's name prefix.
pub const VOLUME_PREFIX: &str = "kube-api-access-";
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
const ENFORCE_MOUNTABLE_SECRETS: &str = "kubernetes.io/enforce-mountable-secrets";
/// How often the `default` account is looked for before the pod is refused.
const DEFAULT_ACCOUNT_ATTEMPTS: usize = 10;

pub fn is_mirror(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION))
}

/// The pod's name for messages: its generateName while the name is the generated one (upstream
/// admission runs before names are generated).
fn admission_name(pod: &Value) -> String {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let generate = pod["metadata"]["generateName"].as_str().unwrap_or_default();
    if !generate.is_empty() && name.starts_with(generate) && name.len() == generate.len() + 5 {
        generate.to_string()
    } else {
        name.to_string()
    }
}

/// Upstream's `admission.NewForbidden` for a pod.
fn forbidden(pod_name: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError {
        continue_token: None,
        details: Some(Box::new(StatusDetails {
            name: Some(pod_name.to_string()),
            group: Some(String::new()),
            kind: Some("pods".into()),
            ..StatusDetails::default()
        })),
        ..ApiError::forbidden(format!("pods \"{pod_name}\" is forbidden: {why}"))
    }
}

/// The plugin, on a pod being created (defaulted; its namespace and name set).
pub async fn admit(lookup: &dyn Lookup, pod: &mut Value) -> ApiResult<()> {
    if !lookup.admission_enabled(PLUGIN) {
        return Ok(());
    }
    let name = admission_name(pod);
    if is_mirror(pod) {
        return validate_mirror(pod).map_err(|why| forbidden(&name, why));
    }
    let namespace = pod["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !pod["spec"].is_object() {
        pod["spec"] = json!({});
    }
    let account_name = match pod["spec"]["serviceAccountName"].as_str() {
        Some(a) if !a.is_empty() => a.to_string(),
        _ => DEFAULT_ACCOUNT.to_string(),
    };
    pod["spec"]["serviceAccountName"] = json!(account_name);
    pod["spec"]["serviceAccount"] = json!(account_name);
    let account = find_account(lookup, &namespace, &account_name)
        .await
        .map_err(|why| {
            forbidden(
                &name,
                format!("error looking up service account {namespace}/{account_name}: {why}"),
            )
        })?;
    let spec = pod["spec"]
        .as_object_mut()
        .expect("the spec was made an object above");
    if should_automount(spec, &account) {
        mount_token(spec, &generate_volume_name());
    }
    let pull_secrets = account["imagePullSecrets"]
        .as_array()
        .filter(|s| !s.is_empty());
    let has_pull_secrets = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    if let (Some(secrets), false) = (pull_secrets, has_pull_secrets) {
        let names: Vec<Value> = secrets
            .iter()
            .map(|s| json!({"name": s["name"].as_str().unwrap_or_default()}))
            .collect();
        spec.insert("imagePullSecrets".into(), Value::Array(names));
    }
    if enforces_mountable_secrets(&account) {
        limit_secret_references(&account, spec).map_err(|why| forbidden(&name, why))?;
    }
    Ok(())
}

/// The account, from the watch cache or the store; `default` is looked for again for a while
/// (the ServiceAccount controller creates it just after the namespace).
async fn find_account(lookup: &dyn Lookup, namespace: &str, name: &str) -> Result<Value, String> {
    let attempts = if name == DEFAULT_ACCOUNT {
        DEFAULT_ACCOUNT_ATTEMPTS
    } else {
        1
    };
    let interval = Duration::from_millis(rand::rng().random_range(100..200));
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(interval).await;
        }
        let found = lookup
            .get("", "serviceaccounts", Some(namespace), name)
            .await
            .map_err(|e| e.message)?;
        if let Some(account) = found {
            return Ok((*account).clone());
        }
    }
    Err(format!("serviceaccount \"{name}\" not found"))
}

/// The pod's choice wins, then the account's; by default tokens are mounted.
fn should_automount(spec: &Map<String, Value>, account: &Value) -> bool {
    spec.get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| account["automountServiceAccountToken"].as_bool())
        .unwrap_or(true)
}

/// `kube-api-access-` and five characters of upstream's name generator alphabet.
fn generate_volume_name() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{VOLUME_PREFIX}{suffix}")
}

/// The projected token volume (upstream `TokenVolumeSource`).
pub fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": WARN_ONLY_EXPIRATION_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ],
        },
    })
}

/// Mounts the token volume (an existing `kube-api-access-*` one, else a new `volume_name`) in
/// every init container and container that mounts nothing at the token path; adds the volume
/// when one of them needed it.
fn mount_token(spec: &mut Map<String, Value>, volume_name: &str) {
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .find(|n| n.starts_with(VOLUME_PREFIX))
        .map(str::to_string);
    let name = existing.clone().unwrap_or_else(|| volume_name.to_string());
    let mount = json!({"name": name, "readOnly": true, "mountPath": MOUNT_PATH});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers.iter_mut().filter(|c| c.is_object()) {
            let mounted = container["volumeMounts"]
                .as_array()
                .is_some_and(|ms| ms.iter().any(|m| m["mountPath"] == MOUNT_PATH));
            if mounted {
                continue;
            }
            if !container["volumeMounts"].is_array() {
                container["volumeMounts"] = json!([]);
            }
            if let Some(mounts) = container["volumeMounts"].as_array_mut() {
                mounts.push(mount.clone());
            }
            needed = true;
        }
    }
    if existing.is_none() && needed {
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if !volumes.is_array() {
            *volumes = json!([]);
        }
        if let Some(list) = volumes.as_array_mut() {
            list.push(token_volume(&name));
        }
    }
}

/// Go's `strconv.ParseBool` on the annotation.
fn enforces_mountable_secrets(account: &Value) -> bool {
    account
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(ENFORCE_MOUNTABLE_SECRETS))
        .and_then(Value::as_str)
        .is_some_and(|v| matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True"))
}

fn names_of(list: &Value) -> Vec<&str> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str())
        .collect()
}

/// Every secret the pod uses must be one of the account's `secrets` (image pull secrets: one
/// of its `imagePullSecrets`), with upstream's messages.
fn limit_secret_references(account: &Value, spec: &Map<String, Value>) -> Result<(), String> {
    let account_name = account["metadata"]["name"].as_str().unwrap_or_default();
    let mountable = names_of(&account["secrets"]);
    let allowed = |name: &str| mountable.contains(&name);
    let empty = Vec::new();
    let list = |key: &str| spec.get(key).and_then(Value::as_array).unwrap_or(&empty);
    for volume in list("volumes") {
        if let Some(secret) = volume["secret"]["secretName"].as_str() {
            if !allowed(secret) {
                return Err(format!("volume with secret.secretName=\"{secret}\" is not allowed because service account {account_name} does not reference that secret"));
            }
        }
    }
    for (key, what) in [
        ("initContainers", "init container"),
        ("containers", "container"),
    ] {
        for container in list(key) {
            let container_name = container["name"].as_str().unwrap_or_default();
            for env in container["env"].as_array().into_iter().flatten() {
                if let Some(secret) = env
                    .pointer("/valueFrom/secretKeyRef/name")
                    .and_then(Value::as_str)
                {
                    if !allowed(secret) {
                        let env_name = env["name"].as_str().unwrap_or_default();
                        return Err(format!("{what} {container_name} with envVar {env_name} referencing secret.secretName=\"{secret}\" is not allowed because service account {account_name} does not reference that secret"));
                    }
                }
            }
            for from in container["envFrom"].as_array().into_iter().flatten() {
                if let Some(secret) = from.pointer("/secretRef/name").and_then(Value::as_str) {
                    if !allowed(secret) {
                        return Err(format!("{what} {container_name} with envFrom referencing secret.secretName=\"{secret}\" is not allowed because service account {account_name} does not reference that secret"));
                    }
                }
            }
        }
    }
    let pull = names_of(&account["imagePullSecrets"]);
    for (i, reference) in list("imagePullSecrets").iter().enumerate() {
        let name = reference["name"].as_str().unwrap_or_default();
        if !pull.contains(&name) {
            return Err(format!("imagePullSecrets[{i}].name=\"{name}\" is not allowed because service account {account_name} does not reference that imagePullSecret"));
        }
    }
    Ok(())
}

/// Whether the pod names a secret anywhere (upstream `VisitPodSecretNames`).
fn references_secrets(spec: &Value) -> bool {
    if !names_of(&spec["imagePullSecrets"]).is_empty() {
        return true;
    }
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        for container in spec[key].as_array().into_iter().flatten() {
            let env = container["env"].as_array().into_iter().flatten();
            if env
                .into_iter()
                .any(|e| e.pointer("/valueFrom/secretKeyRef/name").is_some())
            {
                return true;
            }
            let from = container["envFrom"].as_array().into_iter().flatten();
            if from
                .into_iter()
                .any(|e| e.pointer("/secretRef/name").is_some())
            {
                return true;
            }
        }
    }
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        let Some(sources) = volume.as_object() else {
            continue;
        };
        for (kind, source) in sources {
            let secret = match kind.as_str() {
                "secret" => source.get("secretName").is_some(),
                "projected" => source["sources"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|s| s.get("secret").is_some()),
                "csi" => source.pointer("/nodePublishSecretRef/name").is_some(),
                "azureFile" => source.get("secretName").is_some(),
                _ => source.pointer("/secretRef/name").is_some(),
            };
            if secret {
                return true;
            }
        }
    }
    false
}

fn validate_mirror(pod: &Value) -> Result<(), &'static str> {
    let spec = &pod["spec"];
    if spec["serviceAccountName"]
        .as_str()
        .is_some_and(|s| !s.is_empty())
    {
        return Err("a mirror pod may not reference service accounts");
    }
    if references_secrets(spec) {
        return Err("a mirror pod may not reference secrets");
    }
    let projects_token = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|v| v.pointer("/projected/sources").and_then(Value::as_array))
        .flatten()
        .any(|s| s.get("serviceAccountToken").is_some());
    if projects_token {
        return Err("a mirror pod may not use ServiceAccountToken volume projections");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use futures::future::BoxFuture;

    use super::*;

    /// Admission's view of the cluster: a fixed set of ServiceAccounts.
    struct Accounts(HashMap<(String, String), Value>, Vec<String>);

    impl Lookup for Accounts {
        fn list<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, ApiResult<Vec<Arc<Value>>>> {
            Box::pin(async { Ok(Vec::new()) })
        }
        fn get<'a>(
            &'a self,
            _group: &'a str,
            resource: &'a str,
            namespace: Option<&'a str>,
            name: &'a str,
        ) -> BoxFuture<'a, ApiResult<Option<Arc<Value>>>> {
            assert_eq!(resource, "serviceaccounts");
            let key = (namespace.unwrap_or_default().to_string(), name.to_string());
            let found = self.0.get(&key).cloned().map(Arc::new);
            Box::pin(async move { Ok(found) })
        }
        fn admission_enabled(&self, name: &str) -> bool {
            !self.1.iter().any(|p| p == name)
        }
    }

    fn accounts(list: &[Value]) -> Accounts {
        let map = list
            .iter()
            .map(|a| {
                let ns = a["metadata"]["namespace"].as_str().unwrap().to_string();
                let name = a["metadata"]["name"].as_str().unwrap().to_string();
                ((ns, name), a.clone())
            })
            .collect();
        Accounts(map, Vec::new())
    }

    fn default_account() -> Value {
        json!({"metadata": {"name": "default", "namespace": "ns", "uid": "sa-uid"}})
    }

    fn pod() -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns"},
               "spec": {"initContainers": [{"name": "init", "image": "i"}],
                        "containers": [{"name": "a", "image": "i"},
                                       {"name": "b", "image": "i", "volumeMounts": [{"name": "own", "mountPath": MOUNT_PATH}]}],
                        "volumes": [{"name": "own", "emptyDir": {}}]}})
    }

    fn run(lookup: &Accounts, pod: &mut Value) -> ApiResult<()> {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(admit(lookup, pod))
    }

    #[test]
    fn injects_the_token_volume_and_mounts() {
        let lookup = accounts(&[default_account()]);
        let mut p = pod();
        run(&lookup, &mut p).unwrap();
        let spec = &p["spec"];
        assert_eq!(spec["serviceAccountName"], "default");
        assert_eq!(spec["serviceAccount"], "default");
        let volumes = spec["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 2);
        let name = volumes[1]["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        assert_eq!(volumes[1], token_volume(name));
        assert_eq!(
            volumes[1],
            json!({"name": name, "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}})
        );
        let mount = json!({"name": name, "readOnly": true, "mountPath": MOUNT_PATH});
        assert_eq!(spec["initContainers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(spec["containers"][0]["volumeMounts"], json!([mount]));
        // A container with its own mount at the path keeps it alone.
        assert_eq!(
            spec["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(spec["containers"][1]["volumeMounts"][0]["name"], "own");
        // The result decodes as a Pod.
        serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(p.clone()).unwrap();
    }

    #[test]
    fn an_existing_token_volume_is_reused() {
        let lookup = accounts(&[default_account()]);
        let mut p = pod();
        p["spec"]["volumes"] = json!([{"name": "kube-api-access-abcde", "emptyDir": {}}]);
        run(&lookup, &mut p).unwrap();
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(
            p["spec"]["containers"][0]["volumeMounts"][0]["name"],
            "kube-api-access-abcde"
        );
    }

    #[test]
    fn automount_false_on_pod_or_account() {
        let mut p = pod();
        p["spec"]["automountServiceAccountToken"] = json!(false);
        run(&accounts(&[default_account()]), &mut p).unwrap();
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
        assert!(p["spec"]["containers"][0]["volumeMounts"].is_null());

        let mut account = default_account();
        account["automountServiceAccountToken"] = json!(false);
        let mut p = pod();
        run(&accounts(&[account.clone()]), &mut p).unwrap();
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
        // The pod's own true wins over the account's false.
        let mut p = pod();
        p["spec"]["automountServiceAccountToken"] = json!(true);
        run(&accounts(&[account]), &mut p).unwrap();
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_missing_account_is_forbidden() {
        let mut p = pod();
        let err = run(&accounts(&[]), &mut p).unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            "pods \"p\" is forbidden: error looking up service account ns/default: serviceaccount \"default\" not found"
        );
        let mut p = pod();
        p["metadata"]["generateName"] = json!("web-");
        p["metadata"]["name"] = json!("web-x2x4z");
        p["spec"]["serviceAccountName"] = json!("builder");
        let err = run(&accounts(&[default_account()]), &mut p).unwrap_err();
        assert_eq!(
            err.message,
            "pods \"web-\" is forbidden: error looking up service account ns/builder: serviceaccount \"builder\" not found"
        );
        // Turned off: nothing is looked up or added.
        let mut p = pod();
        let lookup = Accounts(HashMap::new(), vec![PLUGIN.to_string()]);
        run(&lookup, &mut p).unwrap();
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn image_pull_secrets_come_from_the_account() {
        let mut account = default_account();
        account["imagePullSecrets"] = json!([{"name": "registry"}]);
        let mut p = pod();
        run(&accounts(&[account.clone()]), &mut p).unwrap();
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "registry"}]));
        let mut p = pod();
        p["spec"]["imagePullSecrets"] = json!([{"name": "mine"}]);
        run(&accounts(&[account]), &mut p).unwrap();
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "mine"}]));
    }

    #[test]
    fn mountable_secrets_are_enforced_when_asked() {
        let mut account = default_account();
        account["metadata"]["annotations"] = json!({ENFORCE_MOUNTABLE_SECRETS: "true"});
        account["secrets"] = json!([{"name": "ok"}]);
        let mut p = pod();
        p["spec"]["containers"][0]["env"] = json!([{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}]);
        let err = run(&accounts(&[account.clone()]), &mut p).unwrap_err();
        assert!(err.message.ends_with("container a with envVar PASSWORD referencing secret.secretName=\"db\" is not allowed because service account default does not reference that secret"), "{}", err.message);
        let mut p = pod();
        p["spec"]["volumes"] = json!([{"name": "s", "secret": {"secretName": "ok"}}]);
        run(&accounts(&[account]), &mut p).unwrap();
    }

    #[test]
    fn mirror_pods_are_left_alone_but_checked() {
        let lookup = accounts(&[]);
        let mirror = |spec: Value| {
            json!({"metadata": {"name": "static-web-node1", "namespace": "ns",
                                "annotations": {MIRROR_ANNOTATION: "hash"}},
                   "spec": spec})
        };
        let mut p = mirror(json!({"containers": [{"name": "c", "image": "i"}]}));
        let before = p.clone();
        run(&lookup, &mut p).unwrap();
        assert_eq!(p, before);
        for (spec, why) in [
            (
                json!({"serviceAccountName": "x"}),
                "a mirror pod may not reference service accounts",
            ),
            (
                json!({"volumes": [{"name": "s", "secret": {"secretName": "x"}}]}),
                "a mirror pod may not reference secrets",
            ),
            (
                json!({"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "x"}}]}]}),
                "a mirror pod may not reference secrets",
            ),
            (
                json!({"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]}),
                "a mirror pod may not use ServiceAccountToken volume projections",
            ),
        ] {
            let err = run(&lookup, &mut mirror(spec)).unwrap_err();
            assert_eq!(
                err.message,
                format!("pods \"static-web-node1\" is forbidden: {why}")
            );
        }
    }
}
