//! Upstream defaulting (pkg/apis/*/v1/defaults.go) plus the admission defaults every cluster
//! runs (ServiceAccount, DefaultTolerationSeconds, Priority), applied to JSON before validation,
//! so stored objects look like the ones a real cluster returns.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::resources::ResourceInfo;

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

/// Sets `key` when missing or null.
fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

/// The object at `key`, created empty when missing.
fn child<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    if !map.get(key).is_some_and(Value::is_object) {
        map.insert(key.to_string(), Value::Object(Map::new()));
    }
    map.get_mut(key)
        .and_then(Value::as_object_mut)
        .expect("just inserted an object")
}

fn each<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    map.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn default_probe(probe: Option<&mut Value>) {
    if let Some(p) = probe.and_then(obj) {
        default(p, "timeoutSeconds", json!(1));
        default(p, "periodSeconds", json!(10));
        default(p, "successThreshold", json!(1));
        default(p, "failureThreshold", json!(3));
        if let Some(h) = p.get_mut("httpGet").and_then(obj) {
            default(h, "path", json!("/"));
            default(h, "scheme", json!("HTTP"));
        }
    }
}

fn default_container(c: &mut Map<String, Value>) {
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    default(c, "resources", json!({}));
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    // `:latest` or no tag (and no digest) pulls every time, as upstream decides.
    let last = image.rsplit('/').next().unwrap_or_default();
    let always = !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"));
    default(
        c,
        "imagePullPolicy",
        json!(if always { "Always" } else { "IfNotPresent" }),
    );
    for p in each(c, "ports") {
        default(p, "protocol", json!("TCP"));
    }
    for env in each(c, "env") {
        if let Some(fr) = env
            .get_mut("valueFrom")
            .and_then(obj)
            .and_then(|v| v.get_mut("fieldRef"))
            .and_then(obj)
        {
            default(fr, "apiVersion", json!("v1"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        default_probe(c.get_mut(probe));
    }
}

pub fn default_pod_spec(spec: &mut Map<String, Value>) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        for c in each(spec, list) {
            default_container(c);
        }
    }
    for v in each(spec, "volumes") {
        for source in ["configMap", "secret"] {
            if let Some(s) = v.get_mut(source).and_then(obj) {
                default(s, "defaultMode", json!(420));
            }
        }
    }
}

fn default_template(spec: &mut Map<String, Value>) {
    let template = child(spec, "template");
    default(template, "metadata", json!({}));
    default_pod_spec(child(template, "spec"));
}

/// QoS class from requests/limits (upstream `GetPodQOS`, simplified to cpu and memory).
fn qos_class(spec: &Value) -> &'static str {
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        for r in ["cpu", "memory"] {
            let l = limits.and_then(|m| m.get(r));
            let q = requests.and_then(|m| m.get(r)).or(l);
            if l.is_some() || q.is_some() {
                any = true;
            }
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if guaranteed && any {
        "Guaranteed"
    } else if any {
        "Burstable"
    } else {
        "BestEffort"
    }
}

/// Defaults applied on create and on update (upstream defaulting runs on every decode).
pub fn apply(info: &ResourceInfo, object: &mut Value) {
    let Some(root) = object.as_object_mut() else {
        return;
    };
    match (info.group, info.resource) {
        ("", "pods") => {
            let spec = child(root, "spec");
            default_pod_spec(spec);
            default(spec, "enableServiceLinks", json!(true));
        }
        ("", "podtemplates") => default_template(root),
        ("", "services") => {
            let spec = child(root, "spec");
            default(spec, "type", json!("ClusterIP"));
            let kind = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
            default(spec, "sessionAffinity", json!("None"));
            if kind != "ExternalName" {
                default(spec, "ipFamilies", json!(["IPv4"]));
                default(spec, "ipFamilyPolicy", json!("SingleStack"));
                default(spec, "internalTrafficPolicy", json!("Cluster"));
            }
            if kind == "NodePort" || kind == "LoadBalancer" {
                default(spec, "externalTrafficPolicy", json!("Cluster"));
            }
            if kind == "LoadBalancer" {
                default(spec, "allocateLoadBalancerNodePorts", json!(true));
            }
            for p in each(spec, "ports") {
                default(p, "protocol", json!("TCP"));
                // Protobuf bodies carry an unset targetPort as 0.
                if p.get("targetPort").is_some_and(|t| t == 0) {
                    p.remove("targetPort");
                }
                if let Some(port) = p.get("port").cloned() {
                    default(p, "targetPort", port);
                }
            }
            let status = child(root, "status");
            default(status, "loadBalancer", json!({}));
        }
        ("", "endpoints") => {
            for subset in each(root, "subsets") {
                for p in each(subset, "ports") {
                    default(p, "protocol", json!("TCP"));
                }
            }
        }
        ("discovery.k8s.io", "endpointslices") => {
            for p in each(root, "ports") {
                default(p, "protocol", json!("TCP"));
            }
        }
        ("", "secrets") => {
            default(root, "type", json!("Opaque"));
            // stringData is write-only: merged into data (base64) and never stored.
            if let Some(Value::Object(string_data)) = root.remove("stringData") {
                let data = child(root, "data");
                for (k, v) in string_data {
                    let text = v.as_str().unwrap_or_default();
                    data.insert(
                        k,
                        json!(base64::engine::general_purpose::STANDARD.encode(text)),
                    );
                }
            }
        }
        ("", "namespaces") => {
            let spec = child(root, "spec");
            default(spec, "finalizers", json!(["kubernetes"]));
            let status = child(root, "status");
            default(status, "phase", json!("Active"));
        }
        ("apps", "deployments") => {
            let spec = child(root, "spec");
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            let strategy = child(spec, "strategy");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = child(strategy, "rollingUpdate");
                default(ru, "maxUnavailable", json!("25%"));
                default(ru, "maxSurge", json!("25%"));
            }
            default_template(spec);
        }
        ("apps", "replicasets") => {
            let spec = child(root, "spec");
            default(spec, "replicas", json!(1));
            default_template(spec);
        }
        ("apps", "daemonsets") => {
            let spec = child(root, "spec");
            default(spec, "revisionHistoryLimit", json!(10));
            let strategy = child(spec, "updateStrategy");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = child(strategy, "rollingUpdate");
                default(ru, "maxUnavailable", json!(1));
                default(ru, "maxSurge", json!(0));
            }
            default_template(spec);
        }
        ("apps", "statefulsets") => {
            let spec = child(root, "spec");
            default(spec, "replicas", json!(1));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            default(spec, "revisionHistoryLimit", json!(10));
            default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            let strategy = child(spec, "updateStrategy");
            default(strategy, "type", json!("RollingUpdate"));
            if strategy["type"] == "RollingUpdate" {
                let ru = child(strategy, "rollingUpdate");
                default(ru, "partition", json!(0));
            }
            default_template(spec);
        }
        ("batch", "jobs") => {
            let spec = child(root, "spec");
            if spec.get("completions").is_none_or(Value::is_null)
                && spec.get("parallelism").is_none_or(Value::is_null)
            {
                spec.insert("completions".into(), json!(1));
                spec.insert("parallelism".into(), json!(1));
            }
            default(spec, "parallelism", json!(1));
            default(spec, "backoffLimit", json!(6));
            default(spec, "completionMode", json!("NonIndexed"));
            default(spec, "suspend", json!(false));
            default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
            default_template(spec);
        }
        ("batch", "cronjobs") => {
            let spec = child(root, "spec");
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
            let job_template = child(spec, "jobTemplate");
            let job_spec = child(job_template, "spec");
            default(job_spec, "backoffLimit", json!(6));
            default(job_spec, "completionMode", json!("NonIndexed"));
            default(job_spec, "suspend", json!(false));
            default_template(job_spec);
        }
        _ => {}
    }
}

/// Create-time admission defaults (upstream admission plugins and `PrepareForCreate`).
pub fn on_create(info: &ResourceInfo, object: &mut Value, uid: &str) {
    let Some(root) = object.as_object_mut() else {
        return;
    };
    match (info.group, info.resource) {
        ("", "pods") => {
            let spec = child(root, "spec");
            // ServiceAccount admission.
            default(spec, "serviceAccountName", json!("default"));
            let sa = spec["serviceAccountName"].clone();
            default(spec, "serviceAccount", sa);
            // Priority admission.
            default(spec, "priority", json!(0));
            default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
            // DefaultTolerationSeconds admission: 300 s for not-ready and unreachable.
            let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
            if let Some(list) = tolerations.as_array_mut() {
                for key in [
                    "node.kubernetes.io/not-ready",
                    "node.kubernetes.io/unreachable",
                ] {
                    let present = list
                        .iter()
                        .any(|t| t.get("key").and_then(Value::as_str) == Some(key));
                    if !present {
                        list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
                    }
                }
            }
            let qos = qos_class(&root["spec"]);
            // A new pod's status is the server's, not the client's.
            root.insert(
                "status".into(),
                json!({"phase": "Pending", "qosClass": qos}),
            );
        }
        ("", "namespaces") => {
            let name = root
                .get("metadata")
                .and_then(|m| m.get("name"))
                .cloned()
                .unwrap_or(Value::Null);
            let meta = child(root, "metadata");
            let labels = child(meta, "labels");
            labels.insert("kubernetes.io/metadata.name".into(), name);
        }
        ("batch", "jobs") => {
            // The job controller's selector: a label only this job's pods carry.
            let name = root
                .get("metadata")
                .and_then(|m| m.get("name"))
                .cloned()
                .unwrap_or(Value::Null);
            let spec = child(root, "spec");
            let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
            if !manual {
                spec.insert(
                    "selector".into(),
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
                );
                let template = child(spec, "template");
                let meta = child(template, "metadata");
                let labels = child(meta, "labels");
                labels.insert("batch.kubernetes.io/controller-uid".into(), json!(uid));
                labels.insert("batch.kubernetes.io/job-name".into(), name.clone());
                labels.insert("controller-uid".into(), json!(uid));
                labels.insert("job-name".into(), name);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults() {
        let info = crate::resources::find("apps", "v1", "deployments").unwrap();
        let mut d = json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        apply(info, &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
    }

    #[test]
    fn pull_policy_follows_tag() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.26", "IfNotPresent"),
            ("localhost:5000/busybox", "Always"),
            ("r/x@sha256:ab", "IfNotPresent"),
        ] {
            let mut c = Map::new();
            c.insert("image".into(), json!(image));
            default_container(&mut c);
            assert_eq!(c["imagePullPolicy"], want, "{image}");
        }
    }

    #[test]
    fn pod_admission() {
        let mut p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        apply(crate::resources::pods(), &mut p);
        on_create(crate::resources::pods(), &mut p, "u");
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(p["status"]["qosClass"], "Guaranteed");
        assert_eq!(p["status"]["phase"], "Pending");
    }

    #[test]
    fn secret_string_data_merges() {
        let info = crate::resources::find("", "v1", "secrets").unwrap();
        let mut s = json!({"metadata": {"name": "s"}, "stringData": {"a": "hi"}});
        apply(info, &mut s);
        assert_eq!(s["data"]["a"], "aGk=");
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
    }
}
