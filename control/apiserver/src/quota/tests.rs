use serde_json::json;

use super::*;

fn q(s: &str) -> Quantity {
    Quantity::parse(s).unwrap()
}

fn now() -> jiff::Timestamp {
    "2026-12-04T12:00:00Z".parse().unwrap()
}

fn pod(spec: Value) -> Value {
    json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
}

#[test]
fn a_pods_usage_counts_containers_sidecars_and_the_largest_init_container() {
    let p = pod(json!({
        "initContainers": [
            {"name": "setup", "resources": {"requests": {"cpu": "2", "memory": "64Mi"}}},
            {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m"}}},
        ],
        "containers": [
            {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}}},
            {"name": "b", "resources": {"requests": {"cpu": "250m", "example.com/gpu": "1", "hugepages-2Mi": "4Mi"}}},
        ],
        "overhead": {"cpu": "10m"},
    }));
    let u = Evaluator::Pods.usage(&p, now());
    // containers 500m + sidecar 100m = 600m < init 2 (no sidecar before it) → 2, + 10m overhead.
    assert_eq!(u["requests.cpu"], q("2010m"));
    assert_eq!(u["cpu"], q("2010m"));
    assert_eq!(u["requests.memory"], q("128Mi"));
    // limits: 500m + 200m, + overhead (a cpu limit is set).
    assert_eq!(u["limits.cpu"], q("710m"));
    assert_eq!(u["limits.memory"], q("128Mi"));
    assert_eq!(u["pods"], q("1"));
    assert_eq!(u["count/pods"], q("1"));
    assert_eq!(u["requests.example.com/gpu"], q("1"));
    assert_eq!(u["requests.hugepages-2Mi"], q("4Mi"));
    assert_eq!(u["hugepages-2Mi"], q("4Mi"));
    assert!(!u.contains_key("example.com/gpu"));
}

#[test]
fn finished_pods_and_pods_past_their_grace_period_only_count_as_objects() {
    let mut p =
        pod(json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}));
    p["status"] = json!({"phase": "Succeeded"});
    let u = Evaluator::Pods.usage(&p, now());
    assert_eq!(u.keys().collect::<Vec<_>>(), ["count/pods"]);
    p["status"] = json!({"phase": "Running"});
    p["metadata"]["deletionTimestamp"] = json!("2026-12-04T11:59:00Z");
    p["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    assert!(!Evaluator::Pods.usage(&p, now()).contains_key("pods"));
    p["metadata"]["deletionGracePeriodSeconds"] = json!(120);
    assert!(Evaluator::Pods.usage(&p, now()).contains_key("pods"));
}

#[test]
fn quotaing_cpu_makes_every_container_state_it() {
    let p = pod(json!({
        "initContainers": [{"name": "init"}],
        "containers": [
            {"name": "web", "resources": {"requests": {"cpu": "1"}}},
            {"name": "log"},
        ],
    }));
    let required = vec![
        "requests.cpu".to_string(),
        "limits.memory".into(),
        "pods".into(),
    ];
    assert_eq!(
        Evaluator::Pods.constraints(&required, &p).unwrap_err(),
        "must specify limits.memory for: init,log,web; requests.cpu for: init,log"
    );
    assert!(Evaluator::Pods
        .constraints(&["pods".to_string()], &p)
        .is_ok());
}

#[test]
fn pod_scopes() {
    let sel = |name: &str, op: &str, values: &[&str]| ScopeSelector {
        scope_name: name.into(),
        operator: op.into(),
        values: values.iter().map(|v| v.to_string()).collect(),
    };
    let best_effort = pod(json!({"containers": [{"name": "a"}]}));
    let burstable = pod(
        json!({"containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}],
        "activeDeadlineSeconds": 60, "priorityClassName": "high"}),
    );
    let e = Evaluator::Pods;
    assert!(e.matches_scope(&sel("BestEffort", "Exists", &[]), &best_effort));
    assert!(!e.matches_scope(&sel("BestEffort", "Exists", &[]), &burstable));
    assert!(e.matches_scope(&sel("NotBestEffort", "Exists", &[]), &burstable));
    assert!(e.matches_scope(&sel("Terminating", "Exists", &[]), &burstable));
    assert!(e.matches_scope(&sel("NotTerminating", "Exists", &[]), &best_effort));
    assert!(e.matches_scope(&sel("PriorityClass", "In", &["high", "mid"]), &burstable));
    assert!(!e.matches_scope(&sel("PriorityClass", "In", &["high"]), &best_effort));
    assert!(e.matches_scope(&sel("PriorityClass", "NotIn", &["high"]), &best_effort));
    assert!(e.matches_scope(&sel("PriorityClass", "DoesNotExist", &[]), &best_effort));
    // Only pods have scopes: a scoped quota never counts a Service.
    assert!(!Evaluator::Services.matches_scope(&sel("BestEffort", "Exists", &[]), &best_effort));
    let cross = pod(
        json!({"containers": [{"name": "a"}], "affinity": {"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "k", "namespaces": ["other"]}]}}}),
    );
    assert!(e.matches_scope(&sel("CrossNamespacePodAffinity", "Exists", &[]), &cross));
    assert!(!e.matches_scope(
        &sel("CrossNamespacePodAffinity", "Exists", &[]),
        &best_effort
    ));
}

#[test]
fn services_count_node_ports_and_load_balancers() {
    let svc = |spec: Value| json!({"spec": spec});
    let ports = json!([{"port": 80}, {"port": 443, "nodePort": 30443}]);
    let u = Evaluator::Services.usage(&svc(json!({"type": "ClusterIP", "ports": ports})), now());
    assert_eq!(u["services"], q("1"));
    assert_eq!(u["services.nodeports"], q("0"));
    let u = Evaluator::Services.usage(&svc(json!({"type": "NodePort", "ports": ports})), now());
    assert_eq!(u["services.nodeports"], q("2"));
    let u = Evaluator::Services.usage(
        &svc(
            json!({"type": "LoadBalancer", "ports": ports, "allocateLoadBalancerNodePorts": false}),
        ),
        now(),
    );
    assert_eq!(u["services.nodeports"], q("1"));
    assert_eq!(u["services.loadbalancers"], q("1"));
}

#[test]
fn claims_charge_storage_to_their_class_in_whole_bytes() {
    let claim = json!({"spec": {"storageClassName": "gold", "resources": {"requests": {"storage": "1.5Gi"}}},
        "status": {"allocatedResources": {"storage": "2Gi"}}});
    let u = Evaluator::Claims.usage(&claim, now());
    assert_eq!(u["requests.storage"].to_string(), "2Gi");
    assert_eq!(
        u["gold.storageclass.storage.k8s.io/requests.storage"],
        q("2Gi")
    );
    assert_eq!(
        u["gold.storageclass.storage.k8s.io/persistentvolumeclaims"],
        q("1")
    );
    let u = Evaluator::Claims.usage(
        &json!({"spec": {"resources": {"requests": {"storage": "1500m"}}}}),
        now(),
    );
    assert_eq!(u["requests.storage"], q("2"));
}

#[test]
fn other_resources_count_objects_with_upstreams_names() {
    let e = Evaluator::for_resource("apps", "deployments");
    assert_eq!(
        e.usage(&json!({}), now()).keys().collect::<Vec<_>>(),
        ["count/deployments.apps"]
    );
    let e = Evaluator::for_resource("", "configmaps");
    let u = e.usage(&json!({}), now());
    assert_eq!(
        u.keys().collect::<Vec<_>>(),
        ["configmaps", "count/configmaps"]
    );
    assert!(e.handles(Operation::Create, None, &json!({})));
    assert!(!e.handles(Operation::Update, Some(&json!({})), &json!({})));
    assert_eq!(
        counted_by("count/widgets.example.com"),
        Some(("example.com".into(), "widgets".into()))
    );
    assert_eq!(
        counted_by("requests.storage"),
        Some(("".into(), "persistentvolumeclaims".into()))
    );
    assert_eq!(counted_by("limits.cpu"), Some(("".into(), "pods".into())));
    assert_eq!(
        counted_by("services.nodeports"),
        Some(("".into(), "services".into()))
    );
    assert_eq!(counted_by("secrets"), Some(("".into(), "secrets".into())));
    assert_eq!(
        counted_by("requests.example.com/gpu"),
        Some(("".into(), "pods".into()))
    );
    assert_eq!(counted_by("bogus"), None);
}

#[test]
fn arithmetic_and_printing() {
    let list = |pairs: &[(&str, &str)]| -> ResourceList {
        pairs.iter().map(|(k, v)| (k.to_string(), q(v))).collect()
    };
    let used = list(&[("pods", "2"), ("requests.cpu", "1500m")]);
    let hard = list(&[("pods", "2"), ("requests.cpu", "2")]);
    let delta = list(&[("pods", "1"), ("requests.cpu", "250m")]);
    let (ok, exceeded) = less_than_or_equal(&add(&used, &delta), &hard);
    assert!(!ok);
    assert_eq!(exceeded, ["pods"]);
    assert_eq!(pretty(&add(&used, &delta)), "pods=3,requests.cpu=1750m");
    assert_eq!(
        subtract_non_negative(
            &list(&[("a", "1"), ("b", "3")]),
            &list(&[("a", "2"), ("b", "1")])
        ),
        list(&[("a", "0"), ("b", "2")])
    );
    assert_eq!(
        remove_zeros(&list(&[("a", "0"), ("b", "1")])),
        list(&[("b", "1")])
    );
    assert_eq!(
        to_json(&list(&[("memory", "1024Mi")])),
        json!({"memory": "1Gi"})
    );
}

#[test]
fn a_quota_applies_when_it_limits_something_counted_and_the_object_is_in_scope() {
    let quota = Quota::from_json(&json!({
        "metadata": {"name": "q", "namespace": "ns"},
        "spec": {"hard": {"pods": "2"}, "scopes": ["BestEffort"]},
        "status": {"hard": {"pods": "2"}, "used": {"pods": "0"}},
    }));
    let best_effort = pod(json!({"containers": [{"name": "a"}]}));
    let burstable =
        pod(json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}));
    assert!(matches(&quota, &Evaluator::Pods, &best_effort));
    assert!(!matches(&quota, &Evaluator::Pods, &burstable));
    assert!(!matches(&quota, &Evaluator::Services, &json!({})));
    let objects = [best_effort.clone(), burstable, best_effort];
    assert_eq!(
        usage_of(&quota, &Evaluator::Pods, &objects, now())["pods"],
        q("2")
    );
    // No status yet: the quota does not apply (upstream matches on status.hard).
    let fresh = Quota::from_json(&json!({"spec": {"hard": {"pods": "2"}}}));
    assert!(!matches(&fresh, &Evaluator::Pods, &pod(json!({}))));
}
