//! Built-in resources served in more than one version, and the legacy and subresource gaps
//! closed with them, against real clients on one shared `skiff server`: kubectl 1.32 and the
//! Python `kubernetes` package (`tests/python/versions_test.py`).
//!
//! - events: core v1 and events.k8s.io/v1 are one store — written through either, read, listed
//!   with field selectors and watched through the other, converted; events.k8s.io's validation.
//! - HorizontalPodAutoscalers: `kubectl autoscale` (which writes autoscaling/v1), `kubectl get
//!   hpa`, the object read as v2; a v2 HPA's extra metrics kept through v1 in upstream's
//!   annotations.
//! - `kubectl get cs` (componentstatuses, with upstream's deprecation warning).
//! - csinodes/status.
//! - pods/ephemeralcontainers (`kubectl debug --target`, a change refused) and pods/resize.

mod common;

use common::ServerProcess;
use serde_json::Value;

fn json(s: &ServerProcess, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&s.kubectl_ok(&all)).expect("kubectl -o json")
}

fn raw(s: &ServerProcess, path: &str) -> Value {
    serde_json::from_str(&s.kubectl_ok(&["get", "--raw", path])).expect("JSON")
}

/// The objects of a finite watch (`timeoutSeconds`), as (type, object) pairs.
fn watch_events(s: &ServerProcess, path: &str) -> Vec<(String, Value)> {
    s.kubectl_ok(&["get", "--raw", path])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("watch line");
            (
                v["type"].as_str().unwrap_or_default().to_string(),
                v["object"].clone(),
            )
        })
        .collect()
}

fn apply(s: &ServerProcess, yaml: &str) {
    let out = s.kubectl_stdin(&["apply", "-f", "-"], yaml);
    assert!(
        out.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn events(s: &ServerProcess) {
    let rv = raw(s, "/apis/events.k8s.io/v1/namespaces/default/events")["metadata"]
        ["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // Written through core v1 ...
    apply(
        s,
        "apiVersion: v1\nkind: Event\nmetadata:\n  name: core-ev\n  namespace: default\n\
         involvedObject:\n  kind: Pod\n  name: web-0\n  namespace: default\n\
         reason: Started\nmessage: started the container\ntype: Normal\ncount: 2\n\
         source:\n  component: kubelet\n  host: node-1\n\
         firstTimestamp: \"2026-01-01T00:00:00Z\"\nlastTimestamp: \"2026-01-01T00:01:00Z\"\n",
    );
    // ... read through events.k8s.io/v1.
    let e = json(s, &["get", "events.v1.events.k8s.io", "core-ev"]);
    assert_eq!(e["apiVersion"], "events.k8s.io/v1");
    assert_eq!(e["note"], "started the container");
    assert_eq!(e["regarding"]["name"], "web-0");
    assert_eq!(e["deprecatedSource"]["component"], "kubelet");
    assert_eq!(e["deprecatedCount"], 2);
    assert_eq!(e["deprecatedFirstTimestamp"], "2026-01-01T00:00:00Z");
    assert!(e.get("message").is_none() && e.get("involvedObject").is_none());

    // Written through events.k8s.io/v1 ...
    apply(
        s,
        "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: new-ev\n  namespace: default\n\
         eventTime: \"2026-01-01T00:00:00.000000Z\"\nreportingController: example.com/ctl\n\
         reportingInstance: ctl-1\naction: Scale\nreason: Scaled\nnote: scaled up\ntype: Normal\n\
         regarding:\n  kind: Deployment\n  name: web\n  namespace: default\n",
    );
    // ... read through core v1, one object under one key.
    let e = raw(s, "/api/v1/namespaces/default/events/new-ev");
    assert_eq!(e["apiVersion"], "v1");
    assert_eq!(e["message"], "scaled up");
    assert_eq!(e["involvedObject"]["kind"], "Deployment");
    assert_eq!(e["reportingComponent"], "example.com/ctl");

    // Field selectors name each version's fields.
    let names = s.kubectl_ok(&[
        "get",
        "events.v1.events.k8s.io",
        "--field-selector",
        "regarding.name=web",
        "-o",
        "name",
    ]);
    assert_eq!(names.trim(), "event.events.k8s.io/new-ev");
    let names = s.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web-0",
        "-o",
        "name",
    ]);
    assert_eq!(names.trim(), "event/core-ev");
    let err = s.kubectl_err(&[
        "get",
        "events.v1.events.k8s.io",
        "--field-selector",
        "involvedObject.name=web",
    ]);
    assert!(
        err.contains("field label not supported: involvedObject.name"),
        "{err}"
    );

    // The table, printed from the stored event as upstream prints its internal type.
    let table = s.kubectl_ok(&["get", "events.v1.events.k8s.io"]);
    let header = table.lines().next().unwrap();
    for column in ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"] {
        assert!(header.contains(column), "{table}");
    }
    assert!(
        table.contains("deployment/web") && table.contains("scaled up"),
        "{table}"
    );

    // A watch through each version sees the writes made through the other, converted.
    let seen = watch_events(
        s,
        &format!("/apis/events.k8s.io/v1/namespaces/default/events?watch=1&resourceVersion={rv}&timeoutSeconds=1"),
    );
    let core_ev = seen
        .iter()
        .find(|(_, o)| o["metadata"]["name"] == "core-ev")
        .expect("the core write in the events.k8s.io watch");
    assert_eq!(core_ev.0, "ADDED");
    assert_eq!(core_ev.1["apiVersion"], "events.k8s.io/v1");
    assert_eq!(core_ev.1["note"], "started the container");
    let seen = watch_events(
        s,
        &format!("/api/v1/namespaces/default/events?watch=1&resourceVersion={rv}&timeoutSeconds=1"),
    );
    let new_ev = seen
        .iter()
        .find(|(_, o)| o["metadata"]["name"] == "new-ev")
        .expect("the events.k8s.io write in the core watch");
    assert_eq!(new_ev.1["apiVersion"], "v1");
    assert_eq!(new_ev.1["message"], "scaled up");

    // events.k8s.io/v1's own validation (upstream's ValidateEventCreate for v1).
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: bad-ev\n  namespace: default\n\
         type: Odd\ndeprecatedCount: 3\n",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "eventTime: Required value",
        "type: Invalid value: \"\": has invalid value: Odd",
        "count: Invalid value: \"\": needs to be unset",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    // An update may not change what the event says.
    let err = s.kubectl_err(&[
        "patch",
        "events.v1.events.k8s.io",
        "new-ev",
        "--type=merge",
        "-p",
        r#"{"note":"something else"}"#,
    ]);
    assert!(err.contains("message: Invalid value"), "{err}");
    assert!(err.contains("field is immutable"), "{err}");
}

fn autoscalers(s: &ServerProcess) {
    s.kubectl_ok(&["create", "deployment", "web", "--image=nginx"]);
    s.kubectl_ok(&[
        "autoscale",
        "deployment",
        "web",
        "--min=2",
        "--max=5",
        "--cpu-percent=80",
    ]);
    let table = s.kubectl_ok(&["get", "hpa"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..5],
        ["web", "Deployment/web", "cpu:", "<unknown>/80%", "2"],
        "{table}"
    );

    let v2 = json(
        s,
        &["get", "horizontalpodautoscalers.v2.autoscaling", "web"],
    );
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2["spec"]["metrics"],
        serde_json::json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
    let v1 = json(
        s,
        &["get", "horizontalpodautoscalers.v1.autoscaling", "web"],
    );
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 80);
    assert_eq!(v1["spec"]["minReplicas"], 2);

    // A v2 HPA with more than v1 can say: read through v1 the rest travels in upstream's
    // annotations, and a v1 write (a label) keeps it.
    apply(
        s,
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: many\n  namespace: default\n\
         spec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: web\n\
         \x20 maxReplicas: 9\n  metrics:\n\
         \x20 - type: Pods\n    pods:\n      metric:\n        name: qps\n      target:\n        type: AverageValue\n        averageValue: \"10\"\n\
         \x20 - type: Resource\n    resource:\n      name: cpu\n      target:\n        type: Utilization\n        averageUtilization: 50\n",
    );
    let v1 = json(
        s,
        &["get", "horizontalpodautoscalers.v1.autoscaling", "many"],
    );
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
    let metrics: Value = serde_json::from_str(
        v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"]
            .as_str()
            .expect("the metrics annotation"),
    )
    .unwrap();
    assert_eq!(metrics[0]["pods"]["metricName"], "qps");
    s.kubectl_ok(&[
        "label",
        "horizontalpodautoscalers.v1.autoscaling",
        "many",
        "team=a",
    ]);
    let v2 = json(
        s,
        &["get", "horizontalpodautoscalers.v2.autoscaling", "many"],
    );
    assert_eq!(v2["metadata"]["labels"]["team"], "a");
    let annotations = v2["metadata"]["annotations"].as_object().unwrap();
    assert!(
        annotations
            .keys()
            .all(|k| !k.starts_with("autoscaling.alpha.kubernetes.io/")),
        "{v2}"
    );
    let names: Vec<&str> = v2["spec"]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Pods", "Resource"]);
}

fn component_statuses(s: &ServerProcess) {
    let out = s.kubectl(&["get", "cs"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Warning: v1 ComponentStatus is deprecated in v1.19+"),
        "{stderr}"
    );
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATUS", "MESSAGE", "ERROR"]);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert!(
        rows.iter().any(|r| r[..] == ["etcd-0", "Healthy", "ok"]),
        "{stdout}"
    );
    for name in ["scheduler", "controller-manager"] {
        assert!(rows.iter().any(|r| r[0] == name), "{stdout}");
    }
    let one = json(s, &["get", "componentstatus", "etcd-0"]);
    assert_eq!(one["conditions"][0]["type"], "Healthy");
    assert_eq!(one["conditions"][0]["status"], "True");
    let err = s.kubectl_err(&["get", "cs", "nope"]);
    assert!(err.contains("componentstatus \"nope\" not found"), "{err}");
}

fn csinode_status(s: &ServerProcess) {
    apply(
        s,
        "apiVersion: storage.k8s.io/v1\nkind: CSINode\nmetadata:\n  name: node-1\n\
         spec:\n  drivers:\n  - name: csi.example.com\n    nodeID: node-1\n",
    );
    let status = raw(s, "/apis/storage.k8s.io/v1/csinodes/node-1/status");
    assert_eq!(status["kind"], "CSINode");
    // A write through status changes no spec; storageHealth is behind an alpha gate (off).
    s.kubectl_ok(&[
        "patch",
        "csinode",
        "node-1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"spec":{"drivers":[{"name":"other","nodeID":"n"}]},"status":{"storageHealth":[{"name":"x"}]},"metadata":{"labels":{"via":"status"}}}"#,
    ]);
    let node = json(s, &["get", "csinode", "node-1"]);
    assert_eq!(node["spec"]["drivers"][0]["name"], "csi.example.com");
    assert_eq!(node["metadata"]["labels"]["via"], "status");
    assert!(node["status"]["storageHealth"].is_null(), "{node}");
}

fn ephemeral_containers(s: &ServerProcess) {
    apply(
        s,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: dbg\n  namespace: default\n\
         spec:\n  containers:\n  - name: app\n    image: nginx\n",
    );
    // kubectl debug adds the container through a strategic merge patch on the subresource.
    s.kubectl_ok(&[
        "debug",
        "dbg",
        "--image=busybox",
        "--target=app",
        "-c",
        "debugger",
    ]);
    let pod = json(s, &["get", "pod", "dbg"]);
    let added = &pod["spec"]["ephemeralContainers"][0];
    assert_eq!(added["name"], "debugger");
    assert_eq!(added["image"], "busybox");
    assert_eq!(added["targetContainerName"], "app");
    assert_eq!(pod["spec"]["containers"].as_array().unwrap().len(), 1);
    let sub = raw(s, "/api/v1/namespaces/default/pods/dbg/ephemeralcontainers");
    assert_eq!(sub["kind"], "Pod");

    // Existing ephemeral containers may not change.
    let path = "/api/v1/namespaces/default/pods/dbg/ephemeralcontainers";
    let (code, body) = s.curl(
        "PATCH",
        path,
        "application/json-patch+json",
        br#"[{"op":"replace","path":"/spec/ephemeralContainers/0/image","value":"alpine"}]"#,
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains(r#"spec.ephemeralContainers: Forbidden: existing ephemeral containers \"debugger\" may not be changed"#),
        "{body}"
    );
    // A second one with a name already taken and ports is refused (the patch puts it first).
    let (code, body) = s.curl(
        "PATCH",
        path,
        "application/strategic-merge-patch+json",
        br#"{"spec":{"ephemeralContainers":[{"name":"app","image":"busybox","ports":[{"containerPort":80}]}]}}"#,
    );
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains(r#"spec.ephemeralContainers[0].name: Duplicate value: \"app\""#),
        "{body}"
    );
    assert!(
        body.contains("spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container"),
        "{body}"
    );
    // Only this subresource adds them: not a create.
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: dbg2\n  namespace: default\n\
         spec:\n  containers:\n  - name: app\n    image: nginx\n\
         \x20 ephemeralContainers:\n  - name: e\n    image: busybox\n",
    );
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("spec.ephemeralContainers: Forbidden: cannot be set on create"));
}

fn resize(s: &ServerProcess) {
    apply(
        s,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: rs\n  namespace: default\n\
         spec:\n  containers:\n  - name: app\n    image: nginx\n    resources:\n\
         \x20     requests:\n        cpu: 100m\n        memory: 64Mi\n      limits:\n        memory: 128Mi\n",
    );
    // Resources change in place; anything else in the request is ignored.
    s.kubectl_ok(&[
        "patch",
        "pod",
        "rs",
        "--subresource=resize",
        "-p",
        r#"{"spec":{"containers":[{"name":"app","image":"httpd","resources":{"requests":{"cpu":"200m"}}}]}}"#,
    ]);
    let pod = json(s, &["get", "pod", "rs"]);
    let app = &pod["spec"]["containers"][0];
    assert_eq!(app["resources"]["requests"]["cpu"], "200m");
    assert_eq!(app["resources"]["requests"]["memory"], "64Mi");
    assert_eq!(app["image"], "nginx");
    // The main resource still refuses resource changes; resize refuses removing a limit.
    let err = s.kubectl_err(&[
        "patch",
        "pod",
        "rs",
        "-p",
        r#"{"spec":{"containers":[{"name":"app","resources":{"requests":{"cpu":"300m"}}}]}}"#,
    ]);
    assert!(err.contains("pod updates may not change fields"), "{err}");
    let err = s.kubectl_err(&[
        "patch",
        "pod",
        "rs",
        "--subresource=resize",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/spec/containers/0/resources/limits"}]"#,
    ]);
    assert!(
        err.contains(
            "spec.containers[0].resources.limits: Forbidden: resource limits cannot be removed"
        ),
        "{err}"
    );
    let err = s.kubectl_err(&[
        "patch",
        "pod",
        "rs",
        "--subresource=resize",
        "-p",
        r#"{"spec":{"containers":[{"name":"app","resources":{"limits":{"memory":"128Mi","cpu":"1"},"requests":{"cpu":"1","memory":"128Mi"}}}]}}"#,
    ]);
    assert!(
        err.contains("Pod QOS Class may not change as a result of resizing"),
        "{err}"
    );
}

fn python(s: &ServerProcess) {
    let python =
        std::env::var("SKIFF_PYTHON").unwrap_or_else(|_| "/opt/skiff/venv/bin/python".into());
    let out = std::process::Command::new(&python)
        .arg(format!(
            "{}/tests/python/versions_test.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .env("KUBECONFIG", &s.kubeconfig)
        .output()
        .unwrap_or_else(|e| panic!("run {python} (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("python versions: OK"),
        "versions_test.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn versions() {
    let s = ServerProcess::start();
    events(&s);
    autoscalers(&s);
    component_statuses(&s);
    csinode_status(&s);
    ephemeral_containers(&s);
    resize(&s);
    python(&s);
}
