//! `skiff up` end to end (issue 16's list): a 3-node cluster of network-namespace nodes, an
//! image loaded with `--load`, a Deployment spread over the workers and answering from the
//! `<name>-host` namespace; Services by DNS name and ClusterIP, NodePort and LoadBalancer from
//! outside and through `--publish`; a DaemonSet, a Job, a StatefulSet by stable names; pods
//! across nodes by IP; logs, exec and port-forward on each worker's pods; a rolling update
//! under load that drops no request; a lost worker whose pods move; and `skiff down` leaving
//! nothing behind. Needs root (CI is root); prints a skip line otherwise.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::cluster::{web_image, Cluster};
use common::{lab, skiff_bin};

#[test]
fn skiff_up_runs_a_deployment_across_workers_and_down_removes_everything() {
    if let Some(why) = lab::missing() {
        eprintln!("skipping skiff up: {why}");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let archive = web_image(work.path(), "hello from pod $(hostname) on node $NODE_NAME");
    let name = format!("up{}", std::process::id());
    let kubeconfig = work.path().join("admin.kubeconfig");
    let publish = common::free_port();
    let (cluster, text) = Cluster::up_with(
        &name,
        3,
        "192.168.77.0/24",
        &archive,
        &kubeconfig,
        &["--publish", &format!("{publish}:30080")],
    );
    assert!(text.contains("✓ every node Ready"), "{text}");
    // Each kubelet serves a certificate the cluster issued; skiff up approved the requests
    // (and the API server verifies it: exec and logs below go through that check).
    assert!(
        text.contains("✓ kubelet serving certificates approved"),
        "{text}"
    );
    assert!(
        text.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{text}"
    );

    let nodes = cluster.ok(&["get", "nodes", "-o", "wide"]);
    for (node, ip) in [
        ("control-plane", "192.168.77.10"),
        ("worker", "192.168.77.11"),
        ("worker2", "192.168.77.12"),
    ] {
        let line = nodes
            .lines()
            .find(|l| l.starts_with(&format!("{name}-{node} ")))
            .unwrap_or_else(|| panic!("{node}:\n{nodes}"));
        assert!(line.contains(" Ready ") && line.contains(ip), "{line}");
    }
    assert!(
        nodes.contains("control-plane   "),
        "the control plane's role:\n{nodes}"
    );

    // The workers joined as kubeadm's do: a bootstrap token, then a client certificate from
    // a CSR the controller manager approved and signed.
    let csrs = cluster.ok(&[
        "get",
        "csr",
        "-o",
        "jsonpath={range .items[*]}{.spec.signerName} {.spec.username} {.status.conditions[0].type}{\"\\n\"}{end}",
    ]);
    let joined = csrs
        .lines()
        .filter(|l| {
            l.starts_with("kubernetes.io/kube-apiserver-client-kubelet system:bootstrap:")
                && l.ends_with(" Approved")
        })
        .count();
    assert_eq!(joined, 2, "{csrs}");

    let deployment = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: skiff.local/web:1
        ports: [{containerPort: 8080}]
        env: [{name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
        readinessProbe: {httpGet: {port: 8080, path: /}, periodSeconds: 1}
        # Leave the Service's endpoints before the server stops (a rolling update drops no
        # request).
        lifecycle: {preStop: {exec: {command: [sleep, "2"]}}}
      # Leave a lost node after 2 s instead of upstream's default 300 s.
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
"#;
    let manifest = work.path().join("web.yaml");
    std::fs::write(&manifest, deployment).unwrap();
    cluster.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);

    let pods = cluster.ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP}{\"\\n\"}{end}",
    ]);
    let mut used = BTreeSet::new();
    for line in pods.lines() {
        let [pod, node, ip] = line.split(' ').collect::<Vec<_>>()[..] else {
            panic!("{line}")
        };
        used.insert(node.to_string());
        // From where a Vagrant host sits: straight to the pod.
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &format!("{name}-host"),
                "curl",
                "-sS",
                "--max-time",
                "5",
                &format!("http://{ip}:8080/"),
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("hello from pod {pod} on node {node}\n")
        );
    }
    let workers: BTreeSet<String> = [format!("{name}-worker"), format!("{name}-worker2")].into();
    assert_eq!(
        used, workers,
        "the replicas spread over both workers and skip the tainted control plane"
    );

    // Services by name: the DNS addon (kube-system/skiff-dns behind kube-dns 10.96.0.10)
    // answers, and the name's ClusterIP reaches the Deployment through the eBPF proxy.
    let dns = cluster.ok(&[
        "get",
        "svc",
        "-n",
        "kube-system",
        "kube-dns",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert_eq!(dns, "10.96.0.10");
    cluster.ok(&[
        "expose",
        "deployment",
        "web",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let cluster_ip = cluster.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let mut answer = String::new();
    for _ in 0..50 {
        answer = cluster.ok(&[
            "exec",
            "deploy/web",
            "--",
            "nslookup",
            "web.default.svc.cluster.local",
        ]);
        if answer.contains(&cluster_ip) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        answer.contains(&format!("Address: {cluster_ip}")),
        "{answer}"
    );
    // The addon is a workload like any other: a deleted replica is replaced, and names keep
    // resolving through the other one meanwhile.
    let dns_pods = cluster.ok(&[
        "get",
        "pods",
        "-n",
        "kube-system",
        "-l",
        "k8s-app=kube-dns",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let first = dns_pods
        .split_whitespace()
        .next()
        .expect("a DNS pod")
        .to_string();
    cluster.ok(&["delete", "pod", "-n", "kube-system", &first, "--wait=false"]);
    let mut again = String::new();
    for _ in 0..50 {
        let out = cluster.kubectl(&[
            "exec",
            "deploy/web",
            "--",
            "nslookup",
            "web.default.svc.cluster.local",
        ]);
        again = String::from_utf8_lossy(&out.stdout).into_owned();
        if again.contains(&cluster_ip) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        again.contains(&cluster_ip),
        "after deleting {first}: {again}"
    );
    cluster.ok(&[
        "rollout",
        "status",
        "-n",
        "kube-system",
        "deployment/skiff-dns",
        "--timeout=60s",
    ]);

    // Short names are the resolver's search path (busybox nslookup does not walk it).
    let resolv = cluster.ok(&["exec", "deploy/web", "--", "cat", "/etc/resolv.conf"]);
    assert!(
        resolv.contains("nameserver 10.96.0.10")
            && resolv.contains("search default.svc.cluster.local svc.cluster.local cluster.local")
            && resolv.contains("ndots:5"),
        "{resolv}"
    );
    let through = cluster.ok(&[
        "exec",
        "deploy/web",
        "--",
        "sh",
        "-c",
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {cluster_ip} 80"),
    ]);
    assert!(through.contains("hello from pod web-"), "{through}");

    // From outside: a LoadBalancer IP from skiff up's pool (.220–.254 of the node network),
    // announced on the node network by one node, and its NodePort on every node's address.
    cluster.ok(&[
        "expose",
        "deployment",
        "web",
        "--name",
        "web-lb",
        "--type",
        "LoadBalancer",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let mut lb_ip = String::new();
    for _ in 0..100 {
        lb_ip = cluster.ok(&[
            "get",
            "svc",
            "web-lb",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ]);
        if !lb_ip.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        lb_ip.starts_with("192.168.77.2"),
        "LoadBalancer IP: {lb_ip:?}"
    );
    let node_port = cluster.ok(&[
        "get",
        "svc",
        "web-lb",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let from_host = |url: &str| -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &format!("{name}-host"), "curl", "-sS"])
            .args(["--max-time", "3", "--retry", "15", "--retry-delay", "1"])
            .args(["--retry-all-errors", url])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for ip in ["192.168.77.10", "192.168.77.11", "192.168.77.12"] {
        let answer = from_host(&format!("http://{ip}:{node_port}/"));
        assert!(
            answer.starts_with("hello from pod web-"),
            "NodePort on {ip}: {answer:?}"
        );
    }
    let answer = from_host(&format!("http://{lb_ip}/"));
    assert!(
        answer.starts_with("hello from pod web-"),
        "LoadBalancer {lb_ip}: {answer:?}"
    );

    let hostname = cluster.ok(&["exec", "deploy/web", "--", "hostname"]);
    assert!(hostname.starts_with("web-"), "{hostname}");

    // `--publish`: the machine's loopback port reaches the NodePort on the nodes.
    cluster.apply(
        work.path(),
        "web-np",
        r#"
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
"#,
    );
    let published = get_retrying(&format!("127.0.0.1:{publish}"));
    assert!(
        published.contains("hello from pod web-"),
        "127.0.0.1:{publish}: {published:?}"
    );

    workloads(&cluster, work.path(), &name);
    rolling_update_drops_nothing(&cluster, publish);

    let status = Command::new(skiff_bin())
        .args(["status", "--name", &name])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    // server, two forwards (API server, --publish), and a kubelet and a netd per node.
    assert_eq!(status.matches(" running ").count(), 9, "{status}");

    lose_a_worker(&cluster, &name, &status, publish);

    let pids: Vec<i32> = status
        .lines()
        .filter(|l| l.contains(" running "))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.parse().ok()))
        .collect();
    drop(cluster);
    let left: Vec<String> = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.starts_with(&format!("{name}-")))
                .map(str::to_string)
                .collect()
        })
        .unwrap();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&format!("/var/lib/skiff/{name}/")),
        "mounts left"
    );
    assert!(
        !Path::new(&format!("/var/lib/skiff/{name}")).exists(),
        "state left"
    );
    assert!(
        !Path::new(&format!("/sys/fs/cgroup/memory/skiff/{name}")).exists(),
        "cgroups left"
    );
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_default()
                    .contains(") Z"),
            "process {pid} left"
        );
    }
}

/// One HTTP/1.0 GET of `/` at `addr` from this process; the body, or "" on any failure.
fn get(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let timeout = Some(std::time::Duration::from_secs(3));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    if stream.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return String::new();
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

fn get_retrying(addr: &str) -> String {
    for _ in 0..50 {
        let body = get(addr);
        if !body.is_empty() {
            return body;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    String::new()
}

/// `kubectl exec <pod> -- <sh -c script>`'s stdout.
fn exec_sh(cluster: &Cluster, pod: &str, script: &str) -> String {
    cluster.ok(&["exec", pod, "--", "sh", "-c", script])
}

fn fetch_from(cluster: &Cluster, pod: &str, host: &str) -> String {
    exec_sh(
        cluster,
        pod,
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {host} 8080"),
    )
}

/// (pod, node, IP) of the running pods with `label` that are not being deleted (a lost
/// node's pods stay Running, marked for deletion, until their kubelet comes back).
fn pods_of(cluster: &Cluster, label: &str) -> Vec<(String, String, String)> {
    cluster
        .ok(&[
            "get",
            "pods",
            "-l",
            label,
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ])
        .lines()
        .filter(|l| l.split(' ').nth(3).unwrap_or_default().is_empty())
        .map(|l| {
            let mut words = l.split(' ').map(str::to_string);
            (
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
            )
        })
        .collect()
}

/// Upstream-style manifests of every workload kind, and the cluster's paths between nodes:
/// a DaemonSet on both workers, a Job that completes, a StatefulSet behind a headless Service
/// reached by its pods' stable names, pods on the other node by pod IP, and logs, exec and
/// port-forward on pods of each worker.
fn workloads(cluster: &Cluster, dir: &Path, name: &str) {
    cluster.apply(
        dir,
        "workloads",
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: skiff.local/web:1, command: [sleep, "3600"]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: job, image: skiff.local/web:1, command: [sh, -c, "echo done on $(hostname)"]}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: web
        image: skiff.local/web:1
        env: [{name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
        readinessProbe: {httpGet: {port: 8080, path: /}, periodSeconds: 1}
"#,
    );
    cluster.ok(&["rollout", "status", "daemonset/agent", "--timeout=90s"]);
    let agents = pods_of(cluster, "app=agent");
    let agent_nodes: BTreeSet<&str> = agents.iter().map(|(_, n, _)| n.as_str()).collect();
    let workers: BTreeSet<String> = [format!("{name}-worker"), format!("{name}-worker2")].into();
    assert_eq!(
        agent_nodes,
        workers.iter().map(String::as_str).collect(),
        "one agent per worker, none on the tainted control plane: {agents:?}"
    );
    cluster.ok(&[
        "wait",
        "--for=condition=complete",
        "job/once",
        "--timeout=90s",
    ]);
    let job_log = cluster.ok(&["logs", "job/once"]);
    assert!(job_log.starts_with("done on once-"), "{job_log}");
    cluster.ok(&["rollout", "status", "statefulset/db", "--timeout=90s"]);

    // From a web pod on each worker: both StatefulSet pods by their stable DNS names, and the
    // web pod on the other worker by its pod IP.
    let web = pods_of(cluster, "app=web");
    for (pod, node, _) in &web {
        for ordinal in 0..2 {
            let host = format!("db-{ordinal}.db.default.svc.cluster.local");
            let mut answer = String::new();
            // The name resolves once the DNS addon has seen the pod's endpoint: retry until.
            for _ in 0..50 {
                let out = cluster.kubectl(&[
                    "exec",
                    pod,
                    "--",
                    "sh",
                    "-c",
                    &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {host} 8080"),
                ]);
                answer = String::from_utf8_lossy(&out.stdout).into_owned();
                if answer.contains("hello from pod") {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            assert!(
                answer.contains(&format!(
                    "hello from pod db-{ordinal} on node {name}-worker"
                )),
                "{pod} → {host}: {answer}"
            );
        }
        let (other, other_node, other_ip) = web
            .iter()
            .find(|(_, n, _)| n != node)
            .expect("web pods on both workers");
        let answer = fetch_from(cluster, pod, other_ip);
        assert!(
            answer.contains(&format!("hello from pod {other} on node {other_node}")),
            "{pod} on {node} → {other_ip}: {answer}"
        );
    }

    // logs, exec and port-forward on a pod of each worker.
    let mut seen_nodes = BTreeSet::new();
    for (pod, node, _) in &web {
        if !seen_nodes.insert(node.clone()) {
            continue;
        }
        let log = cluster.ok(&["logs", pod]);
        assert!(log.contains("serving on :8080"), "logs of {pod}: {log}");
        assert_eq!(exec_sh(cluster, pod, "hostname").trim(), pod.as_str());
        let port = common::free_port();
        let mut forward = Command::new("kubectl")
            .env("KUBECONFIG", &cluster.kubeconfig)
            .args([
                "port-forward",
                &format!("pod/{pod}"),
                &format!("{port}:8080"),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let answer = get_retrying(&format!("127.0.0.1:{port}"));
        let _ = forward.kill();
        let _ = forward.wait();
        assert_eq!(
            answer,
            format!("hello from pod {pod} on node {node}\n"),
            "port-forward to {pod}"
        );
    }
    assert_eq!(seen_nodes, workers);

    // A static pod: a manifest in the node's directory runs there and shows as a mirror pod.
    let manifests = format!("/var/lib/skiff/{name}/{name}-worker/manifests");
    std::fs::write(
        format!("{manifests}/static-web.yaml"),
        r#"
apiVersion: v1
kind: Pod
metadata: {name: static-web}
spec:
  containers:
  - name: web
    image: skiff.local/web:1
    env: [{name: NODE_NAME, value: static}]
"#,
    )
    .unwrap();
    let mirror = format!("static-web-{name}-worker");
    common::wait_until_for(
        "the static pod's mirror pod Running",
        std::time::Duration::from_secs(60),
        || cluster.jsonpath(&["get", "pod", &mirror], "{.status.phase}") == "Running",
    );
    let source = cluster.jsonpath(
        &["get", "pod", &mirror],
        "{.metadata.annotations.kubernetes\\.io/config\\.source}",
    );
    assert_eq!(source, "file");
    std::fs::remove_file(format!("{manifests}/static-web.yaml")).unwrap();
    common::wait_until_for(
        "the mirror pod gone with its manifest",
        std::time::Duration::from_secs(60),
        || !cluster.kubectl(&["get", "pod", &mirror]).status.success(),
    );
}

/// A rolling update while a client keeps requesting the Service through `--publish`: every
/// request is answered (readiness gates the new pods, preStop lets the old ones leave the
/// endpoints first).
fn rolling_update_drops_nothing(cluster: &Cluster, publish: u16) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let client = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if get(&format!("127.0.0.1:{publish}")).contains("hello from pod web-") {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    cluster.ok(&["set", "env", "deployment/web", "ROLLOUT=2"]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!("rolling update: {ok} requests answered, {failed} failed");
    assert!(ok > 20, "the client ran: {ok} answered");
    assert_eq!(
        failed, 0,
        "requests failed during the rolling update ({ok} answered)"
    );
}

/// A worker is lost (its kubelet and netd killed, its network cut off): its pods are recreated
/// on the other worker and the Service keeps answering through `--publish`.
fn lose_a_worker(cluster: &Cluster, name: &str, status: &str, publish: u16) {
    let lost = format!("{name}-worker2");
    let web_before = pods_of(cluster, "app=web");
    assert!(
        web_before.iter().any(|(_, n, _)| *n == lost),
        "{web_before:?}"
    );
    for line in status
        .lines()
        .filter(|l| l.contains(&lost) && l.contains(" running "))
    {
        if let Some(pid) = line.split_whitespace().find_map(|w| w.parse::<i32>().ok()) {
            // The kubelet and netd `skiff status` recorded for this node, by pid.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
    let cut = Command::new("ip")
        .args(["netns", "exec", &lost, "ip", "link", "set", "eth0", "down"])
        .status()
        .unwrap();
    assert!(cut.success());
    // Upstream's timers: the node is Unknown after the 50 s grace period, its pods evicted
    // after their 2 s toleration.
    let limit = std::time::Duration::from_secs(150);
    common::wait_until_for(
        "the lost worker's web pods recreated on the other worker",
        limit,
        || {
            let web = pods_of(cluster, "app=web");
            web.len() == 3
                && web.iter().all(|(_, n, _)| *n == format!("{name}-worker"))
                && cluster
                    .jsonpath(&["get", "deployment", "web"], "{.status.readyReplicas}")
                    .trim()
                    == "3"
        },
    );
    let node = cluster.jsonpath(
        &["get", "node", &lost],
        "{.status.conditions[?(@.type==\"Ready\")].status}",
    );
    assert_eq!(node, "Unknown");
    for _ in 0..5 {
        let answer = get_retrying(&format!("127.0.0.1:{publish}"));
        assert!(
            answer.contains(&format!("on node {name}-worker\n")),
            "after losing {lost}: {answer:?}"
        );
    }
}
