//! `skiff up --control-planes 3`: a highly available control plane on one machine — a real
//! 3-member etcd cluster (Debian's etcd, TLS with kubeadm's etcd PKI), an API server with its
//! scheduler and controller manager on each control plane, every node's agents behind a local
//! load balancer over the three API servers, the admin kubeconfig through a forward that fails
//! over too. With kubectl, unchanged:
//!
//! - the `kubernetes` Service's endpoints list the three API servers (the lease endpoint
//!   reconciler), and etcd lists three started members;
//! - kill -9 of the first API server (the leader of both leases, the first to take them): the
//!   API keeps answering through the kubeconfig without one failed request, its address leaves
//!   the endpoints, and a Deployment scaled meanwhile converges (the standby controller manager
//!   took over the Lease);
//! - kill -9 of an etcd member: after its leader election, every write succeeds and is there
//!   to read (the storage client stops sending to the dead member);
//! - `skiff status` names the leading control plane and each etcd member's health;
//! - `skiff backup create` snapshots the etcd cluster (`etcdctl snapshot status` reads it),
//!   and `skiff up --control-planes 3 --restore` brings the cluster back from it: every member
//!   made from the snapshot, objects with their resourceVersions, the workload running again;
//! - an API server stopped with SIGTERM is out of the endpoints when it has exited.
//!
//! Needs root and Debian's etcd (scripts/setup.sh installs it); prints a skip line otherwise.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{web_image, Cluster};
use common::{lab, wait_until_for};

const NAME: &str = "ha";
const NODE_CIDR: &str = "192.168.83.0/24";

/// The pid `skiff up` recorded for `component` ("server", "etcd ha-control-plane2", …).
fn pid_of(component: &str) -> i32 {
    let recorded = skiff_cluster::state::Recorded::read(NAME).expect("the cluster's state");
    recorded
        .processes
        .iter()
        .find(|p| p.component == component)
        .unwrap_or_else(|| panic!("no {component} in {:?}", recorded.processes))
        .pid
}

fn kill(pid: i32) {
    // SAFETY: a plain kill(2) of a pid `skiff up` recorded for this test's cluster.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill {pid}");
}

/// `skiff status`: the controller manager's leader and the etcd members' (name → health, and
/// whether it leads).
fn status() -> (String, Vec<(String, String, bool)>) {
    let out = std::process::Command::new(common::skiff_bin())
        .args(["status", "--name", NAME])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let leader = text
        .lines()
        .find(|l| l.starts_with("kube-controller-manager "))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_string();
    let members = text
        .lines()
        .skip_while(|l| !l.starts_with("ETCD MEMBER"))
        .skip(1)
        .filter(|l| l.starts_with(NAME))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (
                words[0].to_string(),
                words.get(2).unwrap_or(&"").to_string(),
                words.get(3) == Some(&"yes"),
            )
        })
        .collect();
    (leader, members)
}

/// A kube-rs watcher (kube-runtime's, as controllers use it) of the ConfigMaps in `default`,
/// on a thread of its own: the names of the objects it reports after its first list, and how
/// many lists it made.
struct Watch {
    seen: Arc<Mutex<Vec<String>>>,
    lists: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Watch {
    fn start(kubeconfig: &Path) -> Watch {
        use futures::StreamExt;
        use kube::runtime::watcher::{self, Event};
        use kube::runtime::WatchStreamExt;
        let (seen, lists, stop) = (
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let ready = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, lists, stop, ready) =
                (seen.clone(), lists.clone(), stop.clone(), ready.clone());
            let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let config = kube::Config::from_custom_kubeconfig(
                        kubeconfig,
                        &kube::config::KubeConfigOptions::default(),
                    )
                    .await
                    .unwrap();
                    let client = kube::Client::try_from(config).unwrap();
                    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
                        kube::Api::namespaced(client, "default");
                    let mut events = watcher::watcher(api, watcher::Config::default())
                        .default_backoff()
                        .boxed();
                    while !stop.load(Ordering::SeqCst) {
                        let next = tokio::time::timeout(Duration::from_millis(200), events.next());
                        match next.await {
                            Ok(Some(Ok(Event::Init))) => {
                                lists.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(Some(Ok(Event::InitDone))) => ready.store(true, Ordering::SeqCst),
                            // After the first list: what a relist would repeat, too.
                            Ok(Some(Ok(Event::Apply(cm) | Event::InitApply(cm))))
                                if ready.load(Ordering::SeqCst) =>
                            {
                                seen.lock()
                                    .unwrap()
                                    .push(cm.metadata.name.unwrap_or_default());
                            }
                            // Errors (the server gone) are retried by the watcher itself.
                            _ => {}
                        }
                    }
                })
            })
        };
        wait_until_for("the watch listed", Duration::from_secs(30), || {
            ready.load(Ordering::SeqCst)
        });
        Watch {
            seen,
            lists,
            stop,
            thread,
        }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Stops the watcher: what it saw, and how many lists it made.
    fn stop(self) -> (Vec<String>, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        let seen = self.seen.lock().unwrap().clone();
        (seen, self.lists.load(Ordering::SeqCst))
    }
}

fn addresses(cluster: &Cluster) -> Vec<String> {
    let text = cluster.jsonpath(
        &["get", "endpoints", "kubernetes"],
        "{.subsets[*].addresses[*].ip}",
    );
    text.split_whitespace().map(str::to_string).collect()
}

#[test]
fn three_control_planes_survive_the_loss_of_an_api_server_and_an_etcd_member() {
    if let Some(why) = lab::missing() {
        eprintln!("skipping cluster_ha: {why}");
        return;
    }
    if !Path::new("/usr/bin/etcd").exists() {
        eprintln!("skipping cluster_ha: no /usr/bin/etcd (scripts/setup.sh installs etcd-server)");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let archive = web_image(dir, "ha");
    let kubeconfig = dir.join("admin.kubeconfig");
    let (cluster, printed) = Cluster::up_with(
        NAME,
        4,
        NODE_CIDR,
        &archive,
        &kubeconfig,
        &["--control-planes", "3"],
    );
    assert!(
        printed.contains("etcd cluster (3 members, TLS)"),
        "{printed}"
    );
    let ips = ["192.168.83.10", "192.168.83.12", "192.168.83.13"];
    wait_until_for(
        "three API servers in the endpoints",
        Duration::from_secs(30),
        || addresses(&cluster) == ips,
    );

    // etcd, asked with the API servers' client certificate from a control plane.
    let pki = format!("/var/lib/skiff/{NAME}/etcd-pki");
    let etcdctl = |args: &[&str]| {
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &format!("{NAME}-control-plane3"),
                "etcdctl",
            ])
            .arg(format!("--endpoints=https://{}:2379", ips[2]))
            .arg(format!("--cacert={pki}/ca.crt"))
            .arg(format!("--cert={pki}/apiserver-etcd-client.crt"))
            .arg(format!("--key={pki}/apiserver-etcd-client.key"))
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .unwrap()
    };
    let members = etcdctl(&["member", "list"]);
    let members = String::from_utf8_lossy(&members.stdout).into_owned();
    assert_eq!(members.matches(", started, ").count(), 3, "{members}");
    // Without a client certificate the members refuse.
    let anonymous = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("{NAME}-control-plane3"),
            "etcdctl",
        ])
        .arg(format!("--endpoints=https://{}:2379", ips[2]))
        .arg(format!("--cacert={pki}/ca.crt"))
        .args([
            "--dial-timeout=2s",
            "--command-timeout=3s",
            "get",
            "/",
            "--prefix",
            "--keys-only",
        ])
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap();
    assert!(
        !anonymous.status.success(),
        "etcd served a client without a certificate"
    );

    // `skiff status`: who leads, and every member healthy.
    let (leader, members) = status();
    assert_eq!(
        leader,
        format!("{NAME}-control-plane"),
        "the first server leads"
    );
    let names: Vec<String> = members.iter().map(|m| m.0.clone()).collect();
    assert_eq!(
        names,
        ["", "2", "3"].map(|i| format!("{NAME}-control-plane{i}"))
    );
    assert!(members.iter().all(|m| m.1 == "healthy"), "{members:?}");
    assert_eq!(members.iter().filter(|m| m.2).count(), 1, "{members:?}");

    cluster.ok(&[
        "create",
        "deployment",
        "web",
        "--image=skiff.local/web:1",
        "--replicas=2",
    ]);
    cluster.ok(&["rollout", "status", "deployment/web", "--timeout=90s"]);

    // A kube-rs watch through the kubeconfig, open across the loss of the API server it
    // reaches: it resumes on another server from its last resourceVersion.
    let watch = Watch::start(&kubeconfig);
    for i in 0..3 {
        cluster.ok(&["create", "configmap", &format!("w-before-{i}")]);
    }

    // The first API server goes.
    kill(pid_of("server"));
    for i in 0..10 {
        let out = cluster.kubectl(&["get", "--raw", "/readyz"]);
        assert!(
            out.status.success(),
            "request {i} after the API server died: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for i in 0..3 {
        cluster.ok(&["create", "configmap", &format!("w-after-{i}")]);
    }
    // Every ConfigMap made around the kill arrives once, and the watcher never listed again
    // (it resumed; a relist would repeat every object).
    let expected: Vec<String> = ["before", "after"]
        .iter()
        .flat_map(|when| (0..3).map(move |i| format!("w-{when}-{i}")))
        .collect();
    wait_until_for("the watch saw all six", Duration::from_secs(30), || {
        let seen = watch.seen();
        expected.iter().all(|n| seen.contains(n))
    });
    let (seen, lists) = watch.stop();
    let mut made: Vec<&String> = seen.iter().filter(|n| n.starts_with("w-")).collect();
    made.sort();
    let mut want: Vec<&String> = expected.iter().collect();
    want.sort();
    assert_eq!(made, want, "each once");
    assert_eq!(lists, 1, "the watcher listed again instead of resuming");
    cluster.ok(&["scale", "deployment", "web", "--replicas=3"]);
    wait_until_for(
        "the dead API server out of the endpoints",
        Duration::from_secs(40),
        || addresses(&cluster) == ips[1..],
    );
    wait_until_for(
        "the Deployment scaled by the standby controllers",
        Duration::from_secs(90),
        || cluster.jsonpath(&["get", "deployment", "web"], "{.status.readyReplicas}") == "3",
    );

    let (leader, _) = status();
    assert!(
        leader == format!("{NAME}-control-plane2") || leader == format!("{NAME}-control-plane3"),
        "{leader}"
    );

    // The etcd leader goes while writes go on (kubectl, one after another). Every write that
    // was acknowledged is there to read; past the first 2 s (etcd's election, 1 s, and the
    // storage clients' next probe of the member, every 0.5 s) none fails.
    let (_, members) = status();
    let lost = members
        .iter()
        .find(|m| m.2)
        .expect("an etcd leader")
        .0
        .clone();
    let load = {
        let kubeconfig = kubeconfig.clone();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let mut writes = Vec::new();
            while started.elapsed() < Duration::from_secs(8) {
                let name = format!("load-{}", writes.len());
                let sent = started.elapsed();
                let ok = std::process::Command::new("kubectl")
                    .env("KUBECONFIG", &kubeconfig)
                    .args(["create", "configmap", &name])
                    .output()
                    .unwrap()
                    .status
                    .success();
                writes.push((name, sent, ok));
            }
            (started, writes)
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    kill(pid_of(&format!("etcd {lost}")));
    let killed = std::time::Instant::now();
    let (started, writes) = load.join().unwrap();
    let kill_at = killed - started;
    let stored = cluster.ok(&["get", "configmaps", "-o", "name"]);
    for (name, sent, ok) in &writes {
        if *ok {
            let want = format!("configmap/{name}");
            assert!(
                stored.lines().any(|l| l == want),
                "{name} was acknowledged and is gone"
            );
        } else {
            assert!(
                *sent < kill_at + Duration::from_secs(2),
                "{name}, sent {:?} after the kill, failed",
                *sent - kill_at
            );
        }
    }
    let late = writes.iter().filter(|w| w.1 > kill_at).count();
    assert!(late > 3, "only {late} writes after the kill: {writes:?}");
    for i in 0..10 {
        let name = format!("after-{i}");
        let out = cluster.kubectl(&["create", "configmap", &name, "--from-literal=k=v"]);
        assert!(
            out.status.success(),
            "write {i} with one etcd member down: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (_, members) = status();
    for (name, health, _) in &members {
        let want = if *name == lost {
            "unhealthy"
        } else {
            "healthy"
        };
        assert_eq!(health, want, "{members:?}");
    }
    let stored = cluster.ok(&["get", "configmaps", "-o", "name"]);
    assert_eq!(stored.matches("configmap/after-").count(), 10, "{stored}");
    assert_eq!(
        cluster.jsonpath(&["get", "deployment", "web"], "{.status.readyReplicas}"),
        "3"
    );

    cluster.ok(&["expose", "deployment", "web", "--port=80"]);
    let web_ip = cluster.jsonpath(&["get", "service", "web"], "{.spec.clusterIP}");
    // A backup of the etcd cluster (from the surviving members), in etcd's snapshot format.
    let backup = dir.join("ha.db");
    let out = std::process::Command::new(common::skiff_bin())
        .args(["backup", "create", "--name", NAME, "--output"])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skiff backup create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = std::process::Command::new("etcdctl")
        .args(["snapshot", "status", "-w", "json"])
        .arg(&backup)
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    let keys: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    assert!(keys["totalKey"].as_u64().unwrap_or(0) > 100, "{text}");
    let kept_rv = cluster.jsonpath(
        &["get", "configmap", "after-3"],
        "{.metadata.resourceVersion}",
    );

    // Changes after the backup, which the restore takes back; then the whole cluster goes.
    cluster.ok(&["delete", "configmap", "after-3"]);
    drop(cluster);
    let (cluster, printed) = Cluster::up_with(
        NAME,
        4,
        NODE_CIDR,
        &archive,
        &kubeconfig,
        &[
            "--control-planes",
            "3",
            "--restore",
            backup.to_str().unwrap(),
        ],
    );
    assert!(printed.contains("✓ store restored from"), "{printed}");
    // Every member was made from the snapshot: three started members of a new cluster.
    let members = etcdctl(&["member", "list"]);
    let members = String::from_utf8_lossy(&members.stdout).into_owned();
    assert_eq!(members.matches(", started, ").count(), 3, "{members}");
    // The object is back with the resourceVersion clients saw, the Service with its address.
    assert_eq!(
        cluster.jsonpath(
            &["get", "configmap", "after-3"],
            "{.metadata.resourceVersion}"
        ),
        kept_rv
    );
    assert_eq!(
        cluster.jsonpath(&["get", "service", "web"], "{.spec.clusterIP}"),
        web_ip
    );
    // The workload runs again on the restored cluster's nodes.
    wait_until_for(
        "the restored Deployment ready",
        Duration::from_secs(180),
        || cluster.jsonpath(&["get", "deployment", "web"], "{.status.readyReplicas}") == "3",
    );
    wait_until_for(
        "three API servers in the restored endpoints",
        Duration::from_secs(40),
        || addresses(&cluster) == ips,
    );

    // An API server stopped with SIGTERM takes its address out of the endpoints before it
    // exits (its lease would keep it there for up to 25 s).
    let third = pid_of(&format!("server {NAME}-control-plane3"));
    // SAFETY: a plain kill(2) of a pid `skiff up` recorded for this test's cluster.
    assert_eq!(unsafe { libc::kill(third, libc::SIGTERM) }, 0);
    wait_until_for("the third API server gone", Duration::from_secs(30), || {
        !skiff_cluster::state::alive(third)
    });
    assert_eq!(addresses(&cluster), ips[..2]);
}
