//! `skiff up` end to end: a 3-node cluster of network-namespace nodes, an image loaded with
//! `--load`, a Deployment spread over the workers and answering from the `<name>-host`
//! namespace, kubectl exec and logs through the loopback forward, and `skiff down` leaving
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
    let (cluster, text) = Cluster::up(&name, 3, "192.168.77.0/24", &archive, &kubeconfig);
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
    let status = Command::new(skiff_bin())
        .args(["status", "--name", &name])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    // server, forward, and a kubelet and a netd per node.
    assert_eq!(status.matches(" running ").count(), 8, "{status}");

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
