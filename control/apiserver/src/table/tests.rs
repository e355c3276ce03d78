//! The printers against upstream's output for the same objects, through the same Table
//! assembly the server uses (`response.rs`).

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{json, Value};

use super::format::{human_duration, human_duration_seconds};
use super::{Printer, NAME_DESC};
use crate::registry::{self, Strategy};
use crate::response::{self, IncludeObject};

/// The printer for a resource: served ones through the resource table, ones not served yet from
/// their registry files, anything else upstream's fallback.
fn printer_for(group: &str, resource: &str) -> &'static Printer {
    if let Some(info) = crate::resources::RESOURCES
        .iter()
        .find(|r| r.group == group && r.resource == resource)
    {
        return info.strategy.printer();
    }
    match (group, resource) {
        ("", "replicationcontrollers") => {
            registry::core::replicationcontrollers::STRATEGY.printer()
        }
        ("storage.k8s.io", "storageclasses") => &registry::storage::STORAGE_CLASS_PRINTER,
        ("storage.k8s.io", "csidrivers") => &registry::storage::CSI_DRIVER_PRINTER,
        ("storage.k8s.io", "csinodes") => &registry::storage::CSI_NODE_PRINTER,
        ("storage.k8s.io", "volumeattachments") => &registry::storage::VOLUME_ATTACHMENT_PRINTER,
        ("scheduling.k8s.io", "priorityclasses") => &registry::scheduling::PRIORITY_CLASS_PRINTER,
        ("node.k8s.io", "runtimeclasses") => &registry::node::RUNTIME_CLASS_PRINTER,
        ("apiregistration.k8s.io", "apiservices") => {
            &registry::apiregistration::API_SERVICE_PRINTER
        }
        _ => super::fallback(group),
    }
}

fn column_definitions(group: &str, resource: &str) -> Value {
    printer_for(group, resource).column_definitions()
}

fn row(
    group: &str,
    resource: &str,
    object: &Value,
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    response::row(printer_for(group, resource), object, include, now)
}

fn table(
    group: &str,
    resource: &str,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    response::table(
        printer_for(group, resource),
        objects,
        resource_version,
        continue_token,
        include,
        now,
    )
}

fn now() -> Timestamp {
    "2025-01-10T12:00:00Z".parse().unwrap()
}

/// `now` minus that many seconds, as a Kubernetes timestamp.
fn ago(seconds: i64) -> String {
    let ts = Timestamp::from_second(now().as_second() - seconds).unwrap();
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn cells_of(group: &str, resource: &str, object: &Value) -> Vec<Value> {
    row(group, resource, object, IncludeObject::None, now())["cells"]
        .as_array()
        .unwrap()
        .clone()
}

fn column_names(group: &str, resource: &str) -> Vec<String> {
    column_definitions(group, resource)
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn human_duration_matches_upstream() {
    let cases: &[(u64, &str)] = &[
        (0, "0s"),
        (1, "1s"),
        (45, "45s"),
        (119, "119s"),
        (120, "2m"),
        (200, "3m20s"),
        (599, "9m59s"),
        (600, "10m"),
        (125 * 60, "125m"),
        (179 * 60 + 59, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (7 * 3600 + 59 * 60, "7h59m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (7 * 86400 + 23 * 3600, "7d23h"),
        (8 * 86400, "8d"),
        (400 * 86400, "400d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (770 * 86400, "2y40d"),
        (365 * 8 * 86400, "8y"),
        (365 * 10 * 86400 + 100 * 86400, "10y"),
    ];
    for (seconds, want) in cases {
        assert_eq!(
            human_duration(Duration::from_secs(*seconds)),
            *want,
            "{seconds}s"
        );
    }
    // Sub-second parts are dropped, like Go's int(d.Seconds()).
    assert_eq!(human_duration(Duration::from_millis(1999)), "1s");
    // Clock skew: slightly in the future is "0s", further is "<invalid>".
    assert_eq!(human_duration_seconds(-1), "0s");
    assert_eq!(human_duration_seconds(-2), "<invalid>");
}

#[test]
fn age_is_unknown_without_creation_timestamp() {
    let cells = cells_of("", "configmaps", &json!({"metadata": {"name": "c"}}));
    assert_eq!(cells[2], json!("<unknown>"));
    let cells = cells_of(
        "",
        "configmaps",
        &json!({"metadata": {"name": "c", "creationTimestamp": null}}),
    );
    assert_eq!(cells[2], json!("<unknown>"));
}

fn running_pod() -> Value {
    json!({
        "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": ago(300)},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "nginx"}, {"name": "sidecar", "image": "envoy"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "podIPs": [{"ip": "10.0.0.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": ago(290)}}},
                {"name": "sidecar", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": ago(290)}}}
            ]
        }
    })
}

#[test]
fn pod_running() {
    let cells = cells_of("", "pods", &running_pod());
    assert_eq!(
        cells,
        vec![
            json!("web-1"),
            json!("2/2"),
            json!("Running"),
            json!("0"),
            json!("5m"),
            json!("10.0.0.5"),
            json!("node-a"),
            json!("<none>"),
            json!("<none>")
        ]
    );
}

#[test]
fn pod_pending_container_creating() {
    let pod = json!({
        "metadata": {"name": "p", "creationTimestamp": ago(5)},
        "spec": {"containers": [{"name": "app", "image": "nginx"}]},
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}
            ]
        }
    });
    let cells = cells_of("", "pods", &pod);
    assert_eq!(cells[1], json!("0/1"));
    assert_eq!(cells[2], json!("ContainerCreating"));
    assert_eq!(cells[3], json!("0"));
    assert_eq!(cells[4], json!("5s"));
    assert_eq!(cells[5], json!("<none>"));
    assert_eq!(cells[6], json!("<none>"));
}

#[test]
fn pod_crash_loop_with_restarts() {
    let pod = json!({
        "metadata": {"name": "p", "creationTimestamp": ago(3600)},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [{
                "name": "app", "ready": false, "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300)}}
            }]
        }
    });
    let cells = cells_of("", "pods", &pod);
    assert_eq!(cells[1], json!("0/1"));
    assert_eq!(cells[2], json!("CrashLoopBackOff"));
    assert_eq!(cells[3], json!("3 (5m ago)"));
    assert_eq!(cells[4], json!("60m"));
}

#[test]
fn pod_image_pull_error_and_terminated_reasons() {
    let mut pod = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "app"}]},
        "status": {"phase": "Pending", "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "ErrImagePull"}}}]}
    });
    assert_eq!(cells_of("", "pods", &pod)[2], json!("ErrImagePull"));
    pod["status"]["containerStatuses"][0]["state"] =
        json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}});
    assert_eq!(cells_of("", "pods", &pod)[2], json!("OOMKilled"));
    pod["status"]["containerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 2}});
    assert_eq!(cells_of("", "pods", &pod)[2], json!("ExitCode:2"));
    pod["status"]["containerStatuses"][0]["state"] =
        json!({"terminated": {"exitCode": 0, "signal": 9}});
    assert_eq!(cells_of("", "pods", &pod)[2], json!("Signal:9"));
}

#[test]
fn pod_terminating() {
    let mut pod = running_pod();
    pod["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(cells_of("", "pods", &pod)[2], json!("Terminating"));
    pod["status"]["reason"] = json!("NodeLost");
    assert_eq!(cells_of("", "pods", &pod)[2], json!("Unknown"));
}

#[test]
fn pod_completed() {
    let pod = json!({
        "metadata": {"name": "job-x", "creationTimestamp": ago(600), "deletionTimestamp": ago(1)},
        "spec": {"containers": [{"name": "main"}]},
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [{"name": "main", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]
        }
    });
    let r = row("", "pods", &pod, IncludeObject::None, now());
    // A terminal pod being deleted keeps its final status.
    assert_eq!(r["cells"][1], json!("0/1"));
    assert_eq!(r["cells"][2], json!("Completed"));
    assert_eq!(r["conditions"][0]["type"], json!("Completed"));
    assert_eq!(r["conditions"][0]["reason"], json!("Succeeded"));
}

#[test]
fn pod_completed_container_but_another_running() {
    let pod = json!({
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {"name": "a", "ready": false, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                {"name": "b", "ready": true, "state": {"running": {}}}
            ]
        }
    });
    assert_eq!(cells_of("", "pods", &pod)[2], json!("NotReady"));
}

#[test]
fn pod_init_containers() {
    let mut pod = json!({
        "metadata": {"name": "p"},
        "spec": {"initContainers": [{"name": "init"}], "containers": [{"name": "app"}]},
        "status": {
            "phase": "Pending",
            "initContainerStatuses": [{"name": "init", "ready": false, "restartCount": 0, "state": {"running": {}}}],
            "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}]
        }
    });
    assert_eq!(cells_of("", "pods", &pod)[2], json!("Init:0/1"));
    pod["status"]["initContainerStatuses"][0]["state"] =
        json!({"waiting": {"reason": "CrashLoopBackOff"}});
    assert_eq!(
        cells_of("", "pods", &pod)[2],
        json!("Init:CrashLoopBackOff")
    );
    pod["status"]["initContainerStatuses"][0]["state"] =
        json!({"terminated": {"exitCode": 1, "reason": "Error"}});
    assert_eq!(cells_of("", "pods", &pod)[2], json!("Init:Error"));
    pod["status"]["initContainerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 3}});
    assert_eq!(cells_of("", "pods", &pod)[2], json!("Init:ExitCode:3"));
    // Done: the app container's state decides.
    pod["status"]["initContainerStatuses"][0]["state"] =
        json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
    assert_eq!(cells_of("", "pods", &pod)[2], json!("PodInitializing"));
}

#[test]
fn pod_sidecar_counts_as_container() {
    let pod = json!({
        "metadata": {"name": "p"},
        "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "app"}]},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "started": true, "ready": true, "restartCount": 2, "state": {"running": {}}}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 1, "state": {"running": {}}}]
        }
    });
    let cells = cells_of("", "pods", &pod);
    assert_eq!(cells[1], json!("2/2"));
    assert_eq!(cells[2], json!("Running"));
    assert_eq!(cells[3], json!("3"));
}

#[test]
fn pod_without_status_does_not_panic() {
    let cells = cells_of("", "pods", &json!({"metadata": {"name": "bare"}}));
    assert_eq!(cells.len(), 9);
    assert_eq!(cells[1], json!("0/0"));
    assert_eq!(cells[2], json!(""));
    assert_eq!(cells[3], json!("0"));
    // Absurd numbers saturate instead of overflowing.
    let huge = json!({"status": {"phase": "Running", "containerStatuses": [
        {"name": "a", "restartCount": i64::MAX}, {"name": "b", "restartCount": i64::MAX}]}});
    assert_eq!(cells_of("", "pods", &huge)[3], json!(i64::MAX.to_string()));
    // Not even an object.
    assert_eq!(cells_of("", "pods", &json!(null)).len(), 9);
    assert_eq!(
        cells_of(
            "",
            "pods",
            &json!({"spec": {"containers": "oops"}, "status": 7})
        )
        .len(),
        9
    );
}

#[test]
fn pod_readiness_gates_and_nominated_node() {
    let mut pod = running_pod();
    pod["spec"]["readinessGates"] =
        json!([{"conditionType": "example.com/lb"}, {"conditionType": "example.com/x"}]);
    pod["status"]["conditions"] =
        json!([{"type": "Ready", "status": "True"}, {"type": "example.com/lb", "status": "True"}]);
    pod["status"]["nominatedNodeName"] = json!("node-b");
    let cells = cells_of("", "pods", &pod);
    assert_eq!(cells[7], json!("node-b"));
    assert_eq!(cells[8], json!("1/2"));
}

#[test]
fn node_ready_with_roles() {
    let node = json!({
        "metadata": {"name": "cp-1", "creationTimestamp": ago(86400 * 3), "labels": {
            "node-role.kubernetes.io/control-plane": "",
            "node-role.kubernetes.io/etcd": "",
            "kubernetes.io/hostname": "cp-1"
        }},
        "spec": {"unschedulable": true},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}, {"type": "Hostname", "address": "cp-1"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.0"}
        }
    });
    assert_eq!(
        cells_of("", "nodes", &node),
        vec![
            json!("cp-1"),
            json!("Ready,SchedulingDisabled"),
            json!("control-plane,etcd"),
            json!("3d"),
            json!("v1.32.0"),
            json!("192.168.1.10"),
            json!("<none>"),
            json!("Debian GNU/Linux 12"),
            json!("6.1.0"),
            json!("containerd://1.7.0")
        ]
    );
}

#[test]
fn node_not_ready_and_unknown() {
    let node = json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    let cells = cells_of("", "nodes", &node);
    assert_eq!(cells[1], json!("NotReady"));
    assert_eq!(cells[2], json!("<none>"));
    assert_eq!(cells[7], json!("<unknown>"));
    let cells = cells_of(
        "",
        "nodes",
        &json!({"metadata": {"name": "n", "labels": {"kubernetes.io/role": "worker"}}}),
    );
    assert_eq!(cells[1], json!("Unknown"));
    assert_eq!(cells[2], json!("worker"));
}

#[test]
fn services_of_each_type() {
    let cluster_ip = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(60)},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}], "selector": {"tier": "web", "app": "x"}}
    });
    assert_eq!(
        cells_of("", "services", &cluster_ip),
        vec![
            json!("web"),
            json!("ClusterIP"),
            json!("10.96.0.10"),
            json!("<none>"),
            json!("80/TCP,53/UDP"),
            json!("60s"),
            json!("app=x,tier=web")
        ]
    );

    let node_port = json!({
        "metadata": {"name": "np"},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.11", "externalIPs": ["1.2.3.4"],
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]}
    });
    let cells = cells_of("", "services", &node_port);
    assert_eq!(cells[3], json!("1.2.3.4"));
    assert_eq!(cells[4], json!("80:30080/TCP,443/TCP"));
    assert_eq!(cells[6], json!("<none>"));

    let mut load_balancer = json!({
        "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.12", "ports": [{"port": 80, "nodePort": 31000}]}
    });
    assert_eq!(
        cells_of("", "services", &load_balancer)[3],
        json!("<pending>")
    );
    load_balancer["status"] = json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}, {"ip": "203.0.113.1"}]}});
    assert_eq!(
        cells_of("", "services", &load_balancer)[3],
        json!("203.0.113.1,203.0.113.9,lb.example.com")
    );
    assert_eq!(
        cells_of("", "services", &load_balancer)[4],
        json!("80:31000/TCP")
    );

    let external = json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    let cells = cells_of("", "services", &external);
    assert_eq!(cells[2], json!("<none>"));
    assert_eq!(cells[3], json!("db.example.com"));
    assert_eq!(cells[4], json!("<none>"));

    let headless = json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}});
    let cells = cells_of("", "services", &headless);
    assert_eq!(cells[1], json!("ClusterIP"));
    assert_eq!(cells[2], json!("None"));
    assert_eq!(cells[4], json!("5432/TCP"));
}

#[test]
fn endpoints_and_slices() {
    let endpoints = json!({
        "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "fd00::3"}, {"ip": "10.0.0.4"}],
                     "ports": [{"port": 8080}]}]
    });
    assert_eq!(
        cells_of("", "endpoints", &endpoints)[1],
        json!("10.0.0.1:8080,10.0.0.2:8080,[fd00::3]:8080 + 1 more...")
    );
    assert_eq!(
        cells_of("", "endpoints", &json!({"metadata": {"name": "e"}}))[1],
        json!("<none>")
    );

    let slice = json!({
        "metadata": {"name": "web-abc"},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80}, {"name": "named"}, {}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]
    });
    let cells = cells_of("discovery.k8s.io", "endpointslices", &slice);
    assert_eq!(cells[1], json!("IPv4"));
    assert_eq!(cells[2], json!("80,named,*"));
    assert_eq!(cells[3], json!("10.0.0.1,10.0.0.2"));
    let empty = cells_of(
        "discovery.k8s.io",
        "endpointslices",
        &json!({"metadata": {"name": "e"}}),
    );
    assert_eq!(empty[2], json!("<unset>"));
    assert_eq!(empty[3], json!("<unset>"));
}

#[test]
fn deployment() {
    let deployment = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(7200)},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "canary"]}]},
            "template": {"spec": {"containers": [{"name": "app", "image": "nginx:1.27"}, {"name": "log", "image": "fluentbit"}]}}
        },
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    });
    assert_eq!(
        cells_of("apps", "deployments", &deployment),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("120m"),
            json!("app,log"),
            json!("nginx:1.27,fluentbit"),
            json!("app=web,env in (canary,prod)")
        ]
    );
    // Fresh object, no status; replicas default to 1.
    let bare = cells_of("apps", "deployments", &json!({"metadata": {"name": "d"}}));
    assert_eq!(bare[1], json!("0/1"));
    assert_eq!(bare[2], json!(0));
    assert_eq!(bare[7], json!(""));
}

#[test]
fn replica_set_daemon_set_stateful_set() {
    let rs = json!({
        "metadata": {"name": "web-5d"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d"}},
                 "template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}},
        "status": {"replicas": 2, "readyReplicas": 1}
    });
    let cells = cells_of("apps", "replicasets", &rs);
    assert_eq!(cells[1..4], [json!(2), json!(2), json!(1)]);
    assert_eq!(cells[7], json!("app=web,pod-template-hash=5d"));

    let ds = json!({
        "metadata": {"name": "agent"},
        "spec": {"selector": {}, "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}, "containers": []}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}
    });
    let cells = cells_of("apps", "daemonsets", &ds);
    assert_eq!(
        cells[1..6],
        [json!(3), json!(3), json!(2), json!(3), json!(2)]
    );
    assert_eq!(cells[6], json!("kubernetes.io/os=linux"));
    assert_eq!(cells[10], json!("<none>"));

    let sts = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 3}});
    assert_eq!(cells_of("apps", "statefulsets", &sts)[1], json!("3/3"));
}

#[test]
fn job_complete() {
    let job = json!({
        "metadata": {"name": "pi", "creationTimestamp": ago(600)},
        "spec": {"completions": 1, "parallelism": 1, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
                 "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
        "status": {"succeeded": 1, "startTime": ago(600), "completionTime": ago(555),
                   "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}
    });
    assert_eq!(
        cells_of("batch", "jobs", &job),
        vec![
            json!("pi"),
            json!("Complete"),
            json!("1/1"),
            json!("45s"),
            json!("10m"),
            json!("pi"),
            json!("perl"),
            json!("batch.kubernetes.io/controller-uid=u1")
        ]
    );
}

#[test]
fn job_states() {
    let mut job = json!({"metadata": {"name": "j"}, "spec": {"parallelism": 3}, "status": {"startTime": ago(90)}});
    let cells = cells_of("batch", "jobs", &job);
    assert_eq!(cells[1], json!("Running"));
    assert_eq!(cells[2], json!("0/1 of 3"));
    assert_eq!(cells[3], json!("90s"));
    job["status"]["conditions"] = json!([{"type": "Suspended", "status": "True"}]);
    assert_eq!(cells_of("batch", "jobs", &job)[1], json!("Suspended"));
    job["metadata"]["deletionTimestamp"] = json!(ago(1));
    assert_eq!(cells_of("batch", "jobs", &job)[1], json!("Terminating"));
    job["status"]["conditions"] = json!([{"type": "Failed", "status": "True"}]);
    assert_eq!(cells_of("batch", "jobs", &job)[1], json!("Failed"));
    let bare = cells_of("batch", "jobs", &json!({"metadata": {"name": "j"}}));
    assert_eq!(bare[2], json!("0/1"));
    assert_eq!(bare[3], json!(""));
}

#[test]
fn cron_job() {
    let cron = json!({
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(3600 * 9)}
    });
    assert_eq!(
        cells_of("batch", "cronjobs", &cron)[..7],
        [
            json!("nightly"),
            json!("0 3 * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("9h"),
            json!("<unknown>")
        ]
    );
}

#[test]
fn event_row() {
    let event = json!({
        "metadata": {"name": "web-1.17a", "creationTimestamp": ago(120)},
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
        "reason": "Pulled",
        "message": "Successfully pulled image \"nginx\"\n",
        "source": {"component": "kubelet", "host": "node-a"},
        "firstTimestamp": ago(600),
        "lastTimestamp": ago(120),
        "count": 4,
        "type": "Normal"
    });
    assert_eq!(
        cells_of("", "events", &event),
        vec![
            json!("2m"),
            json!("Normal"),
            json!("Pulled"),
            json!("pod/web-1"),
            json!("spec.containers{app}"),
            json!("kubelet, node-a"),
            json!("Successfully pulled image \"nginx\""),
            json!("10m"),
            json!(4),
            json!("web-1.17a")
        ]
    );
    let columns = column_definitions("", "events");
    let names = column_names("", "events");
    assert_eq!(names[..4], ["Last Seen", "Type", "Reason", "Object"]);
    let default_names: Vec<&str> = columns
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["priority"] == json!(0))
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        default_names,
        ["Last Seen", "Type", "Reason", "Object", "Message"]
    );
}

#[test]
fn event_new_style_series_and_events_v1_group() {
    let core = json!({
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "Node", "name": ""},
        "eventTime": ago(300),
        "series": {"count": 7, "lastObservedTime": ago(30)},
        "reportingComponent": "scheduler",
        "firstTimestamp": null,
        "lastTimestamp": null
    });
    let cells = cells_of("", "events", &core);
    assert_eq!(cells[0], json!("30s"));
    assert_eq!(cells[3], json!("node"));
    assert_eq!(cells[5], json!("scheduler"));
    assert_eq!(cells[7], json!("5m"));
    assert_eq!(cells[8], json!(7));

    let v1 = json!({
        "metadata": {"name": "e2"},
        "regarding": {"kind": "Deployment", "name": "web"},
        "note": "Scaled up",
        "reason": "ScalingReplicaSet",
        "type": "Normal",
        "eventTime": ago(10),
        "reportingController": "deployment-controller",
        "reportingInstance": "cm-1"
    });
    // Tables print the stored (core) form, as upstream prints its internal type.
    let mut stored = v1.clone();
    (registry::core::events::EVENTS_V1.to_storage)(&mut stored);
    let cells = cells_of("events.k8s.io", "events", &stored);
    assert_eq!(cells[0], json!("10s"));
    assert_eq!(cells[3], json!("deployment/web"));
    assert_eq!(cells[5], json!("deployment-controller, cm-1"));
    assert_eq!(cells[6], json!("Scaled up"));
    assert_eq!(cells[8], json!(1));
}

#[test]
fn config_secret_service_account_namespace_lease() {
    let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(cells_of("", "configmaps", &cm)[1], json!(3));
    let secret = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}});
    assert_eq!(
        cells_of("", "secrets", &secret)[1..3],
        [json!("kubernetes.io/tls"), json!(2)]
    );
    assert_eq!(
        cells_of("", "secrets", &json!({"metadata": {"name": "s"}}))[1],
        json!("Opaque")
    );
    let sa = json!({"metadata": {"name": "default"}, "secrets": [{"name": "t"}]});
    assert_eq!(cells_of("", "serviceaccounts", &sa)[1], json!(1));
    let ns = json!({"metadata": {"name": "kube-system"}, "status": {"phase": "Terminating"}});
    assert_eq!(cells_of("", "namespaces", &ns)[1], json!("Terminating"));
    assert_eq!(
        cells_of("", "namespaces", &json!({"metadata": {"name": "x"}}))[1],
        json!("Active")
    );
    let lease =
        json!({"metadata": {"name": "kube-scheduler"}, "spec": {"holderIdentity": "cp-1_abc"}});
    assert_eq!(
        cells_of("coordination.k8s.io", "leases", &lease)[1],
        json!("cp-1_abc")
    );
}

#[test]
fn rbac_and_builtin_default() {
    let binding = json!({
        "metadata": {"name": "admins"},
        "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "Group", "name": "ops"},
            {"kind": "ServiceAccount", "name": "robot", "namespace": "ci"},
            {"kind": "User", "name": "bob"}
        ]
    });
    let cells = cells_of("rbac.authorization.k8s.io", "clusterrolebindings", &binding);
    assert_eq!(cells[1], json!("ClusterRole/cluster-admin"));
    assert_eq!(
        cells[3..],
        [json!("alice, bob"), json!("ops"), json!("ci/robot")]
    );
    assert_eq!(
        column_names("rbac.authorization.k8s.io", "rolebindings"),
        ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
    );

    // Roles have no printer upstream: the generic Name / Created At.
    let role = json!({"metadata": {"name": "reader", "creationTimestamp": "2024-03-01T10:20:30Z"}});
    assert_eq!(
        column_names("rbac.authorization.k8s.io", "clusterroles"),
        ["Name", "Created At"]
    );
    assert_eq!(
        column_definitions("rbac.authorization.k8s.io", "roles")[1]["type"],
        json!("date")
    );
    assert_eq!(
        cells_of("rbac.authorization.k8s.io", "roles", &role),
        vec![json!("reader"), json!("2024-03-01T10:20:30Z")]
    );
    let precise =
        json!({"metadata": {"name": "r", "creationTimestamp": "2024-03-01T10:20:30.987654Z"}});
    assert_eq!(
        cells_of("rbac.authorization.k8s.io", "roles", &precise)[1],
        json!("2024-03-01T10:20:30Z")
    );
    assert_eq!(column_names("", "limitranges"), ["Name", "Created At"]);
    assert_eq!(
        cells_of("", "limitranges", &json!({"metadata": {"name": "l"}}))[1],
        json!("0001-01-01T00:00:00Z")
    );
}

#[test]
fn unknown_resource_is_name_and_age() {
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1", "creationTimestamp": ago(45)}});
    assert_eq!(column_names("example.com", "widgets"), ["Name", "Age"]);
    let columns = column_definitions("example.com", "widgets");
    assert_eq!(columns[0]["format"], json!("name"));
    assert_eq!(
        cells_of("example.com", "widgets", &widget),
        vec![json!("w1"), json!("45s")]
    );
}

#[test]
fn resource_quota_ingress_controller_revision_pvc() {
    let quota = json!({
        "metadata": {"name": "q"},
        "status": {"hard": {"limits.cpu": "2", "requests.cpu": "1", "pods": "10", "limits.memory": "2Gi"},
                   "used": {"requests.cpu": "500m", "pods": "3", "limits.cpu": "1"}}
    });
    assert_eq!(
        column_names("", "resourcequotas"),
        ["Name", "Age", "Request", "Limit"]
    );
    let cells = cells_of("", "resourcequotas", &quota);
    assert_eq!(cells[2], json!("pods: 3/10, requests.cpu: 500m/1"));
    assert_eq!(cells[3], json!("limits.cpu: 1/2, limits.memory: 0/2Gi"));

    let ingress = json!({
        "metadata": {"name": "web"},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example.com"}, {}, {"host": "b.example.com"}], "tls": [{}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}
    });
    assert_eq!(
        cells_of("networking.k8s.io", "ingresses", &ingress)[..5],
        [
            json!("web"),
            json!("nginx"),
            json!("a.example.com,b.example.com"),
            json!("192.0.2.1"),
            json!("80, 443")
        ]
    );
    let bare = cells_of(
        "networking.k8s.io",
        "ingresses",
        &json!({"metadata": {"name": "i"}}),
    );
    assert_eq!(
        bare[1..5],
        [json!("<none>"), json!("*"), json!(""), json!("80")]
    );

    let revision = json!({
        "metadata": {"name": "agent-7f", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "controller": true}]},
        "revision": 2
    });
    assert_eq!(
        cells_of("apps", "controllerrevisions", &revision)[1..3],
        [json!("daemonset.apps/agent"), json!(2)]
    );

    let pvc = json!({
        "metadata": {"name": "data"},
        "spec": {"volumeName": "pv-1", "storageClassName": "standard", "volumeMode": "Filesystem"},
        "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"]}
    });
    assert_eq!(
        cells_of("", "persistentvolumeclaims", &pvc),
        vec![
            json!("data"),
            json!("Bound"),
            json!("pv-1"),
            json!("1Gi"),
            json!("RWO,RWX"),
            json!("standard"),
            json!("<unset>"),
            json!("<unknown>"),
            json!("Filesystem")
        ]
    );
}

#[test]
fn wide_priority_flags() {
    let priorities = |group: &str, resource: &str| -> Vec<(String, u64)> {
        column_definitions(group, resource)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["priority"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let pods = priorities("", "pods");
    let wide_pods: Vec<&str> = pods
        .iter()
        .filter(|(_, p)| *p == 1)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        wide_pods,
        ["IP", "Node", "Nominated Node", "Readiness Gates"]
    );
    let wide_deployments: Vec<String> = priorities("apps", "deployments")
        .into_iter()
        .filter(|(_, p)| *p == 1)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(wide_deployments, ["Containers", "Images", "Selector"]);
    let wide_nodes: Vec<String> = priorities("", "nodes")
        .into_iter()
        .filter(|(_, p)| *p == 1)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        wide_nodes,
        [
            "Internal-IP",
            "External-IP",
            "OS-Image",
            "Kernel-Version",
            "Container-Runtime"
        ]
    );

    // Every column definition has all five fields; Name carries format "name".
    let first = &column_definitions("", "pods")[0];
    assert_eq!(
        *first,
        json!({"name": "Name", "type": "string", "format": "name", "description": NAME_DESC, "priority": 0})
    );
    assert_eq!(column_definitions("", "pods")[3]["type"], json!("string"));
    assert_eq!(
        column_definitions("apps", "replicasets")[1]["type"],
        json!("integer")
    );
    assert_eq!(
        column_names("batch", "jobs"),
        [
            "Name",
            "Status",
            "Completions",
            "Duration",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
}

#[test]
fn every_printer_has_one_cell_per_column() {
    let resources = [
        ("", "pods"),
        ("", "podtemplates"),
        ("", "replicationcontrollers"),
        ("", "services"),
        ("", "endpoints"),
        ("", "nodes"),
        ("", "namespaces"),
        ("", "events"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "serviceaccounts"),
        ("", "persistentvolumes"),
        ("", "persistentvolumeclaims"),
        ("", "resourcequotas"),
        ("", "limitranges"),
        ("apps", "replicasets"),
        ("apps", "daemonsets"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("apps", "controllerrevisions"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("policy", "poddisruptionbudgets"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("discovery.k8s.io", "endpointslices"),
        ("networking.k8s.io", "ingresses"),
        ("networking.k8s.io", "ingressclasses"),
        ("networking.k8s.io", "networkpolicies"),
        ("events.k8s.io", "events"),
        ("storage.k8s.io", "storageclasses"),
        ("storage.k8s.io", "csidrivers"),
        ("storage.k8s.io", "csinodes"),
        ("storage.k8s.io", "volumeattachments"),
        ("storage.k8s.io", "csistoragecapacities"),
        ("storage.k8s.io", "volumeattributesclasses"),
        ("resource.k8s.io", "deviceclasses"),
        ("resource.k8s.io", "resourceclaims"),
        ("resource.k8s.io", "resourceclaimtemplates"),
        ("resource.k8s.io", "resourceslices"),
        ("resource.k8s.io", "devicetaintrules"),
        ("scheduling.k8s.io", "priorityclasses"),
        ("node.k8s.io", "runtimeclasses"),
        ("coordination.k8s.io", "leases"),
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        (
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
        ),
        (
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
        ),
        (
            "admissionregistration.k8s.io",
            "validatingadmissionpolicies",
        ),
        (
            "admissionregistration.k8s.io",
            "validatingadmissionpolicybindings",
        ),
        ("admissionregistration.k8s.io", "mutatingadmissionpolicies"),
        (
            "admissionregistration.k8s.io",
            "mutatingadmissionpolicybindings",
        ),
        ("flowcontrol.apiserver.k8s.io", "flowschemas"),
        (
            "flowcontrol.apiserver.k8s.io",
            "prioritylevelconfigurations",
        ),
        ("certificates.k8s.io", "certificatesigningrequests"),
        ("apiregistration.k8s.io", "apiservices"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("example.com", "widgets"),
    ];
    let objects = [
        json!({}),
        json!(null),
        json!({"metadata": {"name": "x"}, "spec": null, "status": null}),
        json!([1, 2]),
    ];
    for (group, resource) in resources {
        let width = column_definitions(group, resource)
            .as_array()
            .unwrap()
            .len();
        for object in &objects {
            let cells = cells_of(group, resource, object);
            assert_eq!(cells.len(), width, "{group}/{resource} with {object}");
        }
    }
}

#[test]
fn other_printers() {
    let hpa = json!({
        "apiVersion": "autoscaling/v2",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 10,
                 "metrics": [
                     {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                     {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}},
                     {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "100"}}}
                 ]},
        "status": {"currentReplicas": 3, "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40, "averageValue": "200m"}}}]}
    });
    assert_eq!(
        cells_of("autoscaling", "horizontalpodautoscalers", &hpa)[..6],
        [
            json!("web"),
            json!("Deployment/web"),
            json!("cpu: 40%/80%, memory: <unknown>/1Gi + 1 more..."),
            json!("2"),
            json!(10),
            json!(3)
        ]
    );
    let v1 = json!({"apiVersion": "autoscaling/v1", "metadata": {"name": "h"}, "spec": {"targetCPUUtilizationPercentage": 50}});
    assert_eq!(
        cells_of("autoscaling", "horizontalpodautoscalers", &v1)[2],
        json!("cpu: <unknown>/50%")
    );

    let pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
    assert_eq!(
        cells_of("policy", "poddisruptionbudgets", &pdb)[1..4],
        [json!("50%"), json!("N/A"), json!(1)]
    );

    let sc = json!({"metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                    "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"});
    assert_eq!(
        cells_of("storage.k8s.io", "storageclasses", &sc)[..5],
        [
            json!("standard (default)"),
            json!("rancher.io/local-path"),
            json!("Delete"),
            json!("WaitForFirstConsumer"),
            json!(false)
        ]
    );

    let csr = json!({"metadata": {"name": "c"}, "spec": {"signerName": "kubernetes.io/kube-apiserver-client", "username": "alice", "expirationSeconds": 86400},
                     "status": {"conditions": [{"type": "Approved"}], "certificate": "LS0t"}});
    assert_eq!(
        cells_of("certificates.k8s.io", "certificatesigningrequests", &csr)[2..],
        [
            json!("kubernetes.io/kube-apiserver-client"),
            json!("alice"),
            json!("24h"),
            json!("Approved,Issued")
        ]
    );

    let np = json!({"metadata": {"name": "deny"}, "spec": {"podSelector": {}}});
    assert_eq!(
        cells_of("networking.k8s.io", "networkpolicies", &np)[1],
        json!("<none>")
    );
    let bad = json!({"metadata": {"name": "rs"}, "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}}});
    assert_eq!(cells_of("apps", "replicasets", &bad)[7], json!("<error>"));
    let bad_deployment = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}});
    assert_eq!(
        cells_of("apps", "deployments", &bad_deployment)[7],
        json!("<invalid>")
    );
    let exists = json!({"metadata": {"name": "rs"}, "spec": {"selector": {"matchExpressions": [
        {"key": "b", "operator": "DoesNotExist"}, {"key": "a", "operator": "Exists"}, {"key": "c", "operator": "NotIn", "values": ["y", "x"]}]}}});
    assert_eq!(
        cells_of("apps", "replicasets", &exists)[7],
        json!("a,!b,c notin (x,y)")
    );

    let pv = json!({"metadata": {"name": "pv-1"}, "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce"],
                    "claimRef": {"namespace": "default", "name": "data"}, "storageClassName": "standard"},
                    "status": {"phase": "Bound"}});
    assert_eq!(
        cells_of("", "persistentvolumes", &pv)[1..9],
        [
            json!("5Gi"),
            json!("RWO"),
            json!("Retain"),
            json!("Bound"),
            json!("default/data"),
            json!("standard"),
            json!("<unset>"),
            json!("")
        ]
    );

    let api_service = json!({"metadata": {"name": "v1beta1.metrics.k8s.io"}, "spec": {"service": {"namespace": "kube-system", "name": "metrics-server"}},
                             "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints"}]}});
    assert_eq!(
        cells_of("apiregistration.k8s.io", "apiservices", &api_service)[1..3],
        [
            json!("kube-system/metrics-server"),
            json!("False (MissingEndpoints)")
        ]
    );
}

#[test]
fn include_object_variants() {
    assert_eq!(IncludeObject::from_query(None), IncludeObject::Metadata);
    assert_eq!(
        IncludeObject::from_query(Some("Metadata")),
        IncludeObject::Metadata
    );
    assert_eq!(
        IncludeObject::from_query(Some("Object")),
        IncludeObject::Object
    );
    assert_eq!(IncludeObject::from_query(Some("None")), IncludeObject::None);
    assert_eq!(
        IncludeObject::from_query(Some("bogus")),
        IncludeObject::Metadata
    );

    let pod = running_pod();
    let none = row("", "pods", &pod, IncludeObject::None, now());
    assert!(none.get("object").is_none());
    let metadata = row("", "pods", &pod, IncludeObject::Metadata, now());
    assert_eq!(
        metadata["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": pod["metadata"]})
    );
    let full = row("", "pods", &pod, IncludeObject::Object, now());
    assert_eq!(full["object"], pod);
    // Running pods carry no row conditions.
    assert!(full.get("conditions").is_none());
}

#[test]
fn whole_table() {
    let pods = [running_pod(), json!({"metadata": {"name": "other"}})];
    let t = table(
        "",
        "pods",
        &pods,
        "42",
        Some("next-page"),
        IncludeObject::Metadata,
        now(),
    );
    assert_eq!(t["kind"], json!("Table"));
    assert_eq!(t["apiVersion"], json!("meta.k8s.io/v1"));
    assert_eq!(
        t["metadata"],
        json!({"resourceVersion": "42", "continue": "next-page"})
    );
    assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
    assert_eq!(t["rows"].as_array().unwrap().len(), 2);
    assert_eq!(t["rows"][1]["cells"][0], json!("other"));
    assert_eq!(
        t["rows"][1]["object"]["kind"],
        json!("PartialObjectMetadata")
    );

    let empty = table(
        "apps",
        "deployments",
        &[],
        "",
        None,
        IncludeObject::None,
        now(),
    );
    assert_eq!(empty["metadata"], json!({}));
    assert_eq!(empty["rows"], json!([]));
    let no_continue = table(
        "apps",
        "deployments",
        &[],
        "7",
        Some(""),
        IncludeObject::None,
        now(),
    );
    assert_eq!(no_continue["metadata"], json!({"resourceVersion": "7"}));
}
