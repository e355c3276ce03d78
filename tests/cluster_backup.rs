//! Disaster recovery of a `skiff up` cluster: `skiff backup create` takes an online snapshot of
//! the store (etcd's format, read by the real `etcdctl snapshot status`), the cluster is torn
//! down, and `skiff up --restore` brings it back: objects with their resourceVersions, the
//! Service's ClusterIP, the admin credentials issued before the backup, and the workload
//! running again on its node. A damaged backup is refused before anything is made.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::cluster::{web_image, Cluster};
use common::{lab, skiff_bin};

#[test]
fn a_cluster_comes_back_from_its_backup() {
    if let Some(why) = lab::missing() {
        eprintln!("skipping skiff backup: {why}");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let archive = web_image(work.path(), "restored $(hostname)");
    let name = format!("bk{}", std::process::id());
    let cidr = "192.168.81.0/24";
    let kubeconfig = work.path().join("admin.kubeconfig");
    let (cluster, _) = Cluster::up(&name, 2, cidr, &archive, &kubeconfig);
    cluster.apply(
        work.path(),
        "state",
        r#"
apiVersion: v1
kind: Namespace
metadata: {name: keep}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg, namespace: keep}
data: {answer: "42"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: keep}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: skiff.local/web:1, command: [/bin/web]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: keep}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"#,
    );
    cluster.ok(&[
        "-n",
        "keep",
        "rollout",
        "status",
        "deploy/web",
        "--timeout=180s",
    ]);
    let cluster_ip = cluster.jsonpath(&["-n", "keep", "get", "svc", "web"], "{.spec.clusterIP}");
    let cfg_rv = cluster.jsonpath(
        &["-n", "keep", "get", "cm", "cfg"],
        "{.metadata.resourceVersion}",
    );
    // The admin credentials issued before the backup.
    let old_kubeconfig = work.path().join("before.kubeconfig");
    std::fs::copy(&kubeconfig, &old_kubeconfig).unwrap();

    let backup = work.path().join("cluster.db");
    let out = Command::new(skiff_bin())
        .args(["backup", "create", "--name", &name, "--output"])
        .arg(&backup)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && said.contains("revision") && said.contains("sha256"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "json"])
        .arg(&backup)
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(
        status["revision"].as_i64().unwrap() >= cfg_rv.parse::<i64>().unwrap(),
        "{status}"
    );

    // Changes after the backup, which the restore takes back.
    cluster.ok(&["-n", "keep", "delete", "cm", "cfg"]);
    cluster.ok(&["-n", "keep", "scale", "deploy/web", "--replicas=0"]);
    drop(cluster);

    // A damaged copy is refused before any namespace exists.
    let mut bytes = std::fs::read(&backup).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    let bad = work.path().join("bad.db");
    std::fs::write(&bad, &bytes).unwrap();
    let out = Command::new(skiff_bin())
        .args(["up", "--name", &name, "--node-cidr", cidr, "--restore"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("sha256 mismatch") && err.contains("nothing"),
        "{err}"
    );
    let netns = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(!netns.contains(&format!("{name}-")), "{netns}");

    let (cluster, text) = Cluster::up_with(
        &name,
        2,
        cidr,
        &archive,
        &kubeconfig,
        &["--restore", backup.to_str().unwrap()],
    );
    assert!(text.contains("✓ store restored from"), "{text}");
    // The object is back with the resourceVersion clients saw, the Service keeps its address.
    assert_eq!(
        cluster.jsonpath(
            &["-n", "keep", "get", "cm", "cfg"],
            "{.metadata.resourceVersion} {.data.answer}"
        ),
        format!("{cfg_rv} 42")
    );
    assert_eq!(
        cluster.jsonpath(&["-n", "keep", "get", "svc", "web"], "{.spec.clusterIP}"),
        cluster_ip
    );
    // The kubeconfig from before the backup still authenticates (same CA, same token).
    let server = cluster.jsonpath(
        &["config", "view", "--minify"],
        "{.clusters[0].cluster.server}",
    );
    let old = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&old_kubeconfig)
        .args([
            "--server", &server, "-n", "keep", "get", "cm", "cfg", "-o", "name",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&old.stdout).trim(),
        "configmap/cfg",
        "{}",
        String::from_utf8_lossy(&old.stderr)
    );
    // The workload runs again: its container answers, on the restored cluster's node.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let out = cluster.kubectl(&[
            "-n",
            "keep",
            "exec",
            "deploy/web",
            "--",
            "cat",
            "/tmp/www/index.html",
        ]);
        if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("restored web-") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the workload did not come back: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    drop(cluster);
}

/// `skiff server --etcd-snapshot-interval`: snapshots on a schedule into `<data-dir>/snapshots`,
/// the newest `--etcd-snapshot-retention` kept, each one a whole etcd snapshot with the writes
/// made before it.
#[test]
fn scheduled_snapshots_keep_the_newest() {
    let s = common::ServerProcess::start_with(&[
        "--etcd-snapshot-interval",
        "1s",
        "--etcd-snapshot-retention",
        "2",
    ]);
    let dir = s.dir.path().join("snapshots");
    let scheduled = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.starts_with("skiff-snapshot-") && n.ends_with(".db"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    common::wait_until("two scheduled snapshots", || scheduled().len() == 2);
    let first = scheduled();
    s.kubectl_ok(&["create", "configmap", "scheduled", "--from-literal=k=v"]);
    let rv: i64 = s
        .kubectl_ok(&[
            "get",
            "configmap",
            "scheduled",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .parse()
        .unwrap();
    // Later rounds replace the first two; the newest holds the write.
    common::wait_until("the first snapshots pruned", || {
        let now = scheduled();
        now.len() == 2 && now.iter().all(|n| !first.contains(n))
    });
    let newest = dir.join(scheduled().last().unwrap());
    let status = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "json"])
        .arg(&newest)
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    assert!(
        status["revision"].as_i64().unwrap_or(0) >= rv,
        "{} at revision {rv}: {status}",
        newest.display()
    );
}
