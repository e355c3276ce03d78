//! LimitRange defaults on pods (and the annotation), the min/max/ratio rules with upstream's
//! messages, claims, and the defaulting of LimitRanges themselves.

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;

fn limit_range(limits: Value) -> Arc<Value> {
    let mut lr = json!({"metadata": {"name": "lr", "namespace": "ns"}, "spec": {"limits": limits}});
    default_limit_range(&mut lr);
    Arc::new(lr)
}

fn pod(containers: Value) -> Value {
    let mut p =
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": containers}});
    default_requests_from_limits(&mut p);
    p
}

#[test]
fn limit_ranges_default_their_items() {
    let lr = limit_range(json!([
        {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}, "default": {"memory": "256Mi"}},
        {"type": "Pod", "max": {"cpu": "4"}}]));
    assert_eq!(
        lr["spec"]["limits"],
        json!([
            {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"},
             "default": {"cpu": "2", "memory": "256Mi"},
             "defaultRequest": {"cpu": "2", "memory": "256Mi"}},
            {"type": "Pod", "max": {"cpu": "4"}}])
    );
    let only_min = limit_range(json!([{"type": "Container", "min": {"cpu": "100m"}}]));
    assert_eq!(
        only_min["spec"]["limits"][0],
        json!({"type": "Container", "min": {"cpu": "100m"}, "defaultRequest": {"cpu": "100m"}})
    );
}

#[test]
fn requests_default_from_limits_on_pods() {
    let p = pod(
        json!([{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}}]),
    );
    assert_eq!(
        p["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}})
    );
}

#[test]
fn defaults_fill_what_containers_lack_and_are_annotated() {
    let lr = limit_range(json!([{"type": "Container",
        "default": {"cpu": "500m", "memory": "512Mi"},
        "defaultRequest": {"cpu": "100m", "memory": "256Mi"}}]));
    let mut p = pod(json!([
        {"name": "c", "image": "nginx", "resources": {}},
        {"name": "d", "image": "nginx", "resources": {"limits": {"cpu": "1"}}}]));
    p["spec"]["initContainers"] = json!([{"name": "i", "image": "busybox"}]);
    mutate_pod(&[lr], &mut p);
    assert_eq!(
        p["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}})
    );
    // d's cpu request came from its own limit (pod defaulting), not the LimitRange.
    assert_eq!(
        p["spec"]["containers"][1]["resources"],
        json!({"limits": {"cpu": "1", "memory": "512Mi"}, "requests": {"cpu": "1", "memory": "256Mi"}})
    );
    assert_eq!(
        p["metadata"]["annotations"][ANNOTATION],
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c; memory request for container d; memory limit for container d; cpu, memory request for init container i; cpu, memory limit for init container i"
    );
    // Nothing to set: no annotation.
    let mut full =
        pod(json!([{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]));
    mutate_pod(
        &[limit_range(
            json!([{"type": "Container", "default": {"cpu": "1"}}]),
        )],
        &mut full,
    );
    assert!(full["metadata"].get("annotations").is_none());
}

fn forbidden(lr: Arc<Value>, p: &Value) -> String {
    validate_pod(&[lr], p).unwrap_err()
}

#[test]
fn container_max_min_and_ratio() {
    let lr = limit_range(json!([{"type": "Container",
        "max": {"cpu": "1", "memory": "1Gi"}, "min": {"cpu": "100m"}}]));
    let ok = pod(
        json!([{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "512Mi"}, "requests": {"cpu": "200m"}}}]),
    );
    assert_eq!(validate_pod(std::slice::from_ref(&lr), &ok), Ok(()));
    let big = pod(json!([{"name": "c", "resources": {"limits": {"cpu": "2", "memory": "2Gi"}}}]));
    assert_eq!(
        forbidden(lr.clone(), &big),
        "[maximum cpu usage per Container is 1, but limit is 2, maximum memory usage per Container is 1Gi, but limit is 2Gi]"
    );
    let small = pod(
        json!([{"name": "c", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "50m"}}}]),
    );
    assert_eq!(
        forbidden(lr.clone(), &small),
        "minimum cpu usage per Container is 100m, but request is 50m"
    );
    let unset = pod(json!([{"name": "c", "resources": {}}]));
    assert_eq!(
        forbidden(lr, &unset),
        "[minimum cpu usage per Container is 100m.  No request is specified, maximum cpu usage per Container is 1.  No limit is specified, maximum memory usage per Container is 1Gi.  No limit is specified]"
    );
    let ratio = limit_range(json!([{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}]));
    let wide = pod(
        json!([{"name": "c", "resources": {"limits": {"cpu": "1500m"}, "requests": {"cpu": "500m"}}}]),
    );
    assert_eq!(
        forbidden(ratio.clone(), &wide),
        "cpu max limit to request ratio per Container is 2, but provided ratio is 3.000000"
    );
    let narrow = pod(
        json!([{"name": "c", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "500m"}}}]),
    );
    assert_eq!(validate_pod(std::slice::from_ref(&ratio), &narrow), Ok(()));
    let no_limit = pod(json!([{"name": "c", "resources": {"requests": {"cpu": "500m"}}}]));
    assert_eq!(
        forbidden(ratio, &no_limit),
        "cpu max limit to request ratio per Container is 2, but no limit is specified or limit is 0"
    );
}

#[test]
fn defaults_then_limits_as_a_create_sees_them() {
    // The LimitRange's max becomes the default limit: a container without resources passes.
    let lr = limit_range(json!([{"type": "Container", "max": {"cpu": "1"}}]));
    let mut p = pod(json!([{"name": "c", "resources": {}}]));
    mutate_pod(std::slice::from_ref(&lr), &mut p);
    assert_eq!(validate_pod(&[lr], &p), Ok(()));
    assert_eq!(
        p["metadata"]["annotations"][ANNOTATION],
        "LimitRanger plugin set: cpu request for container c; cpu limit for container c"
    );
}

#[test]
fn pod_totals_count_sidecars_and_init_containers() {
    let lr = limit_range(json!([{"type": "Pod", "max": {"cpu": "2"}}]));
    let two = pod(json!([
        {"name": "a", "resources": {"limits": {"cpu": "1500m"}}},
        {"name": "b", "resources": {"limits": {"cpu": "1"}}}]));
    assert_eq!(
        forbidden(lr.clone(), &two),
        "maximum cpu usage per Pod is 2, but limit is 2500m"
    );
    // An init container bigger than the containers sets the pod's total.
    let mut init = pod(json!([{"name": "a", "resources": {"limits": {"cpu": "1"}}}]));
    init["spec"]["initContainers"] =
        json!([{"name": "i", "resources": {"limits": {"cpu": "3"}, "requests": {"cpu": "3"}}}]);
    assert_eq!(
        forbidden(lr.clone(), &init),
        "maximum cpu usage per Pod is 2, but limit is 3"
    );
    // A sidecar adds to the containers.
    let mut sidecar = pod(json!([{"name": "a", "resources": {"limits": {"cpu": "1500m"}}}]));
    sidecar["spec"]["initContainers"] = json!([{"name": "s", "restartPolicy": "Always", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}]);
    assert_eq!(
        forbidden(lr.clone(), &sidecar),
        "maximum cpu usage per Pod is 2, but limit is 2500m"
    );
    // Requests alone over the bound (limits within it) are named as requests.
    let lr = limit_range(json!([{"type": "Pod", "max": {"cpu": "2"}}]));
    let mut requests = pod(
        json!([{"name": "a", "resources": {"limits": {"cpu": "2"}, "requests": {"cpu": "1"}}}]),
    );
    requests["spec"]["initContainers"] =
        json!([{"name": "i", "resources": {"requests": {"cpu": "3"}}}]);
    assert_eq!(
        forbidden(lr, &requests),
        "maximum cpu usage per Pod is 2, but request is 3"
    );
}

#[test]
fn claims_stay_within_storage_bounds() {
    let lr = limit_range(
        json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]),
    );
    let claim = |size: &str| json!({"spec": {"resources": {"requests": {"storage": size}}}});
    assert_eq!(
        validate_pvc(std::slice::from_ref(&lr), &claim("5Gi")),
        Ok(())
    );
    assert_eq!(
        validate_pvc(std::slice::from_ref(&lr), &claim("20Gi")),
        Err("maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi".into())
    );
    assert_eq!(
        validate_pvc(std::slice::from_ref(&lr), &claim("500Mi")),
        Err("minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi".into())
    );
    assert_eq!(
        validate_pvc(&[lr], &json!({"spec": {}})),
        Err("[minimum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified, maximum storage usage per PersistentVolumeClaim is 10Gi.  No request is specified]".into())
    );
}

#[test]
fn the_first_limit_range_broken_answers() {
    let a = limit_range(json!([{"type": "Container", "max": {"cpu": "1"}}]));
    let b = limit_range(json!([{"type": "Container", "max": {"memory": "1Gi"}}]));
    let p = pod(json!([{"name": "c", "resources": {"limits": {"cpu": "2", "memory": "2Gi"}}}]));
    assert_eq!(
        validate_pod(&[a, b], &p),
        Err("maximum cpu usage per Container is 1, but limit is 2".into())
    );
}
