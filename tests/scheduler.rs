//! The scheduler inside `skiff server`, driven with the real kubectl against hollow nodes: Node
//! objects created through the API with their status (allocatable, Ready), as kubemark does.
//! One server for every check.

mod common;

use common::{wait_until, ServerProcess};

fn node_yaml(name: &str, cpu: &str, extra_spec: &str, labels: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels: {{kubernetes.io/hostname: {name}{labels}}}
spec: {{{extra_spec}}}
status:
  capacity: {{cpu: "{cpu}", memory: 8Gi, pods: "110"}}
  allocatable: {{cpu: "{cpu}", memory: 8Gi, pods: "110"}}
  conditions:
  - {{type: Ready, status: "True", reason: KubeletReady, message: hollow node}}
"#
    )
}

fn pod_yaml(name: &str, cpu: &str, extra_spec: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  {extra_spec}
  containers:
  - name: c
    image: busybox
    resources: {{requests: {{cpu: "{cpu}", memory: 64Mi}}}}
"#
    )
}

fn apply(s: &ServerProcess, yaml: &str) {
    let out = s.kubectl_stdin(&["apply", "-f", "-"], yaml);
    assert!(
        out.status.success(),
        "kubectl apply failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn node_of(s: &ServerProcess, pod: &str) -> String {
    s.kubectl_ok(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"])
}

fn wait_bound(s: &ServerProcess, pod: &str) -> String {
    wait_until(&format!("pod {pod} bound"), || !node_of(s, pod).is_empty());
    node_of(s, pod)
}

/// Replicas of one owner land on different nodes; nodeSelector and a required node affinity
/// pick the matching node; a tainted node takes only tolerating pods.
fn placement(s: &ServerProcess) {
    for (i, name) in ["n1", "n2", "n3"].iter().enumerate() {
        apply(s, &node_yaml(name, "4", "", &format!(", zone: z{i}")));
    }
    // The ReplicaSet controller creates the replicas; the scheduler spreads them.
    apply(
        s,
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: web}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: c, image: busybox, resources: {requests: {cpu: 100m, memory: 64Mi}}}]}\n",
    );
    let nodes_of_web = || {
        s.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.nodeName}",
        ])
    };
    wait_until("3 web replicas bound", || {
        nodes_of_web().split_whitespace().count() == 3
    });
    let mut nodes: Vec<String> = nodes_of_web()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["n1", "n2", "n3"], "replicas spread over the nodes");

    apply(s, &pod_yaml("picky", "100m", "nodeSelector: {zone: z1}"));
    assert_eq!(wait_bound(s, "picky"), "n2");
    apply(
        s,
        &pod_yaml(
            "affine",
            "100m",
            "affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [z2]}]}]}}}",
        ),
    );
    assert_eq!(wait_bound(s, "affine"), "n3");

    // Cordon two nodes; an untolerating pod goes to the third, a tolerating one may use a
    // tainted node.
    s.kubectl_ok(&["taint", "node", "n1", "dedicated=db:NoSchedule"]);
    s.kubectl_ok(&["cordon", "n2"]);
    apply(s, &pod_yaml("plain", "100m", ""));
    assert_eq!(wait_bound(s, "plain"), "n3");
    apply(
        s,
        &pod_yaml(
            "db",
            "100m",
            "nodeSelector: {zone: z0}\n  tolerations: [{key: dedicated, operator: Equal, value: db, effect: NoSchedule}]",
        ),
    );
    assert_eq!(wait_bound(s, "db"), "n1");
    s.kubectl_ok(&["uncordon", "n2"]);
    s.kubectl_ok(&["taint", "node", "n1", "dedicated-"]);
}

/// A pod too big for every node stays Pending with upstream's reason and message, then
/// schedules once a node that fits is added.
fn unschedulable_until_a_node_fits(s: &ServerProcess) {
    apply(s, &pod_yaml("huge", "16", ""));
    let want = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.";
    wait_until("FailedScheduling for huge", || {
        let describe = s.kubectl_ok(&["describe", "pod", "huge"]);
        describe.contains("FailedScheduling") && describe.contains(want)
    });
    let condition = s.kubectl_ok(&[
        "get",
        "pod",
        "huge",
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="PodScheduled")].reason}"#,
    ]);
    assert_eq!(condition, "Unschedulable");
    assert_eq!(node_of(s, "huge"), "");
    // A node change sends the pod round again; the same failure is one event counted twice,
    // as upstream's event aggregation shows it (`x2`), not a second event.
    s.kubectl_ok(&["label", "node", "n1", "touched=yes"]);
    let counts = || {
        s.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=huge,reason=FailedScheduling",
            "-o",
            "jsonpath={.items[*].count}",
        ])
    };
    wait_until("the FailedScheduling event counted twice", || {
        counts() == "2"
    });
    apply(s, &node_yaml("big", "32", "", ", zone: z9"));
    assert_eq!(wait_bound(s, "huge"), "big");
    let describe = s.kubectl_ok(&["describe", "pod", "huge"]);
    assert!(
        describe.contains("Successfully assigned default/huge to big"),
        "{describe}"
    );
}

/// Two pods asking for one host port never share a node.
fn host_ports(s: &ServerProcess) {
    let with_port = |name: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeSelector: {{zone: z9}}
  containers:
  - name: c
    image: busybox
    ports: [{{containerPort: 80, hostPort: 8080}}]
"#
        )
    };
    apply(s, &with_port("port-a"));
    assert_eq!(wait_bound(s, "port-a"), "big");
    apply(s, &with_port("port-b"));
    wait_until("FailedScheduling for port-b", || {
        s.kubectl_ok(&["describe", "pod", "port-b"])
            .contains("1 node(s) didn't have free ports for the requested pod ports")
    });
    // No kubelet finishes a graceful deletion here: delete at once.
    s.kubectl_ok(&["delete", "pod", "port-a", "--grace-period=0", "--force"]);
    assert_eq!(wait_bound(s, "port-b"), "big");
}

/// A high-priority pod that fits nowhere evicts a lower-priority one and takes its place.
fn preemption(s: &ServerProcess) {
    apply(s, &node_yaml("small", "1", "", ", zone: z7"));
    // Priorities come from PriorityClasses (Priority admission fills in spec.priority).
    s.kubectl_ok(&["create", "priorityclass", "low-priority", "--value=10"]);
    s.kubectl_ok(&[
        "create",
        "priorityclass",
        "high-priority",
        "--value=1000",
        "--description=preempts",
    ]);
    apply(
        s,
        &pod_yaml(
            "low",
            "800m",
            "nodeSelector: {zone: z7}\n  priorityClassName: low-priority",
        ),
    );
    assert_eq!(wait_bound(s, "low"), "small");
    apply(
        s,
        &pod_yaml(
            "high",
            "800m",
            "nodeSelector: {zone: z7}\n  priorityClassName: high-priority",
        ),
    );
    // The victim has no kubelet to finish its graceful deletion: once it is marked, finish it.
    wait_until("the low-priority pod is evicted", || {
        let out = s.kubectl(&[
            "get",
            "pod",
            "low",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ]);
        !out.status.success() || !out.stdout.is_empty()
    });
    let _ = s.kubectl(&["delete", "pod", "low", "--grace-period=0", "--force"]);
    assert_eq!(wait_bound(s, "high"), "small");
    let nominated = s.kubectl_ok(&[
        "get",
        "pod",
        "high",
        "-o",
        "jsonpath={.status.nominatedNodeName}",
    ]);
    assert_eq!(nominated, "small");
}

/// PriorityClasses and Priority admission, as upstream: the built-in classes, a class's value in
/// spec.priority, unknown classes and hand-set priorities refused, the global default.
fn priority_classes(s: &ServerProcess) {
    let table = s.kubectl_ok(&["get", "priorityclasses"]);
    assert!(table.starts_with("NAME"), "{table}");
    for want in [
        "VALUE",
        "GLOBAL-DEFAULT",
        "PREEMPTIONPOLICY",
        "system-cluster-critical",
        "2000000000",
        "system-node-critical",
        "2000001000",
    ] {
        assert!(table.contains(want), "{want} in {table}");
    }
    let err = s.kubectl_err(&["create", "priorityclass", "system-mine", "--value=5"]);
    assert!(
        err.contains("priority class names with 'system-' prefix are reserved"),
        "{err}"
    );
    let err = s.kubectl_err(&["create", "priorityclass", "too-high", "--value=2000000000"]);
    assert!(
        err.contains("maximum allowed value of a user defined priority is 1000000000"),
        "{err}"
    );

    apply(
        s,
        &pod_yaml(
            "classy",
            "10m",
            "nodeSelector: {zone: z9}\n  priorityClassName: high-priority",
        ),
    );
    let priority = s.kubectl_ok(&["get", "pod", "classy", "-o", "jsonpath={.spec.priority}"]);
    assert_eq!(priority, "1000");
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod_yaml("unknown-class", "10m", "priorityClassName: nope"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            r#"pods "unknown-class" is forbidden: no PriorityClass with name nope was found"#
        ),
        "{err}"
    );
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod_yaml("hand-set", "10m", "priority: 7"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the integer value of priority (7) must not be provided in pod spec"),
        "{err}"
    );

    s.kubectl_ok(&[
        "create",
        "priorityclass",
        "everyday",
        "--value=5",
        "--global-default",
    ]);
    apply(s, &pod_yaml("defaulted", "10m", "nodeSelector: {zone: z9}"));
    let got = s.kubectl_ok(&[
        "get",
        "pod",
        "defaulted",
        "-o",
        "jsonpath={.spec.priorityClassName}/{.spec.priority}",
    ]);
    assert_eq!(got, "everyday/5");
    s.kubectl_ok(&["delete", "priorityclass", "everyday"]);
}

/// A DoNotSchedule topology spread constraint over zones, and required pod anti-affinity.
fn spread_and_anti_affinity(s: &ServerProcess) {
    // Zones z0..z2 hold n1..n3; each pod may make its zone at most one ahead of the others.
    let constrained = |name: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: spread}}}}
spec:
  nodeSelector: {{zone-group: abc}}
  topologySpreadConstraints:
  - {{maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule, labelSelector: {{matchLabels: {{app: spread}}}}}}
  containers: [{{name: c, image: busybox, resources: {{requests: {{cpu: 10m}}}}}}]
"#
        )
    };
    for n in ["n1", "n2", "n3"] {
        s.kubectl_ok(&["label", "node", n, "zone-group=abc"]);
    }
    let mut zones: Vec<String> = (0..6)
        .map(|i| {
            let name = format!("spread-{i}");
            apply(s, &constrained(&name));
            let node = wait_bound(s, &name);
            s.kubectl_ok(&[
                "get",
                "node",
                &node,
                "-o",
                "jsonpath={.metadata.labels.zone}",
            ])
        })
        .collect();
    zones.sort();
    assert_eq!(
        zones,
        ["z0", "z0", "z1", "z1", "z2", "z2"],
        "two pods per zone"
    );

    // Anti-affinity on the hostname: at most one `solo` pod per node of the group.
    let solo = |name: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: solo}}}}
spec:
  nodeSelector: {{zone-group: abc}}
  affinity:
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - {{labelSelector: {{matchLabels: {{app: solo}}}}, topologyKey: kubernetes.io/hostname}}
  containers: [{{name: c, image: busybox}}]
"#
        )
    };
    let mut nodes: Vec<String> = (0..3)
        .map(|i| {
            let name = format!("solo-{i}");
            apply(s, &solo(&name));
            wait_bound(s, &name)
        })
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["n1", "n2", "n3"]);
    apply(s, &solo("solo-3"));
    wait_until("FailedScheduling for solo-3", || {
        s.kubectl_ok(&["describe", "pod", "solo-3"])
            .contains("3 node(s) didn't match pod anti-affinity rules")
    });
}

/// Pods for another scheduler are left alone.
fn other_schedulers(s: &ServerProcess) {
    apply(
        s,
        &pod_yaml(
            "gated",
            "100m",
            "schedulingGates: [{name: example.com/quota}]",
        ),
    );
    apply(
        s,
        &pod_yaml("elsewhere", "100m", "schedulerName: my-scheduler"),
    );
    // Give the scheduler a pod of its own after it, so its silence about the first is observed.
    apply(s, &pod_yaml("after", "100m", ""));
    wait_bound(s, "after");
    assert_eq!(node_of(s, "elsewhere"), "");
    assert_eq!(node_of(s, "gated"), "");
    s.kubectl_ok(&[
        "patch",
        "pod",
        "gated",
        "--type=json",
        "-p",
        r#"[{"op": "remove", "path": "/spec/schedulingGates"}]"#,
    ]);
    wait_bound(s, "gated");
}

/// The scheduler acts as system:kube-scheduler, and its metrics count what it did.
fn identity_and_metrics(s: &ServerProcess, metrics: &str) {
    let kubeconfig = s.dir.path().join("scheduler.kubeconfig");
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(text.contains("user: system:kube-scheduler"), "{text}");
    let out = s
        .kubectl_cmd(&["get", "nodes", "-o", "name"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = http_get(metrics, "/metrics");
    let scheduled = body
        .lines()
        .find(|l| l.starts_with(r#"scheduler_schedule_attempts_total{result="scheduled""#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no scheduled attempts in {body}"));
    assert!(scheduled >= 10, "{body}");
    assert!(
        body.contains(r#"scheduler_schedule_attempts_total{result="unschedulable""#),
        "{body}"
    );
    assert!(
        body.contains("scheduler_pod_scheduling_sli_duration_seconds_bucket"),
        "{body}"
    );
    assert_eq!(http_get(metrics, "/healthz"), "ok");
}

/// A plain HTTP GET on loopback; the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_string()
}

#[test]
fn scheduler_with_hollow_nodes() {
    let metrics = format!("127.0.0.1:{}", common::free_port());
    let s = ServerProcess::start_with(&[
        "--scheduler-metrics-address",
        &metrics,
        // Hollow nodes post no heartbeats.
        "--node-monitor-grace-period=1h",
    ]);
    placement(&s);
    spread_and_anti_affinity(&s);
    unschedulable_until_a_node_fits(&s);
    host_ports(&s);
    preemption(&s);
    priority_classes(&s);
    other_schedulers(&s);
    identity_and_metrics(&s, &metrics);
}

/// A scheduler process that is killed with SIGKILL when dropped.
struct Scheduler(std::process::Child);

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_scheduler(s: &ServerProcess) -> Scheduler {
    let child = std::process::Command::new(common::skiff_bin())
        .arg("scheduler")
        .arg("--kubeconfig")
        .arg(s.dir.path().join("scheduler.kubeconfig"))
        .args(["--metrics-address", ""])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    Scheduler(child)
}

fn lease_holder(s: &ServerProcess) -> String {
    let out = s.kubectl(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-scheduler",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Two `skiff scheduler` processes: one holds kube-system/kube-scheduler and schedules; when it
/// is killed (no release), the other takes the Lease once it expires and schedules.
#[test]
fn two_schedulers_one_leader() {
    let s = ServerProcess::start_with(&["--disable-scheduler", "--node-monitor-grace-period=1h"]);
    apply(&s, &node_yaml("n1", "4", "", ""));
    let first = start_scheduler(&s);
    wait_until("the first scheduler holds the lease", || {
        !lease_holder(&s).is_empty()
    });
    let leader = lease_holder(&s);
    let _second = start_scheduler(&s);
    apply(&s, &pod_yaml("before", "100m", ""));
    assert_eq!(wait_bound(&s, "before"), "n1");
    assert_eq!(
        lease_holder(&s),
        leader,
        "the standby did not take over a live lease"
    );
    drop(first);
    apply(&s, &pod_yaml("after", "100m", ""));
    // The standby waits out the 15 s lease, then schedules.
    wait_until("the standby holds the lease", || {
        let holder = lease_holder(&s);
        !holder.is_empty() && holder != leader
    });
    assert_eq!(wait_bound(&s, "after"), "n1");
    let transitions = s.kubectl_ok(&[
        "get",
        "lease",
        "-n",
        "kube-system",
        "kube-scheduler",
        "-o",
        "jsonpath={.spec.leaseTransitions}",
    ]);
    assert_eq!(transitions, "1");
}
