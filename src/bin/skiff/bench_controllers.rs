//! `skiff controllers bench`: convergence of the workload controllers with hollow nodes through
//! the real API server. A `skiff server` runs without controllers (its scheduler binds pods);
//! N Deployments of R replicas are created at once; then a controller manager process starts,
//! and the clock runs until every ReplicaSet exists and all N×R pods are created and bound.
//! Prints that time, the controller manager's CPU seconds and peak RSS. Upstream's
//! kube-controller-manager runs as the anchor on a fresh namespace when its binary is present;
//! otherwise its default client rate limit (QPS 20, burst 30) is printed as context.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::watcher::{self, watcher};
use serde_json::json;

use crate::bench::{self, cpu_seconds, memory_kib};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 1_000)]
    pub deployments: usize,
    #[arg(long, default_value_t = 10)]
    pub replicas: usize,
    /// Hollow nodes (110 pods each).
    #[arg(long, default_value_t = 200)]
    pub nodes: usize,
    /// Concurrent clients creating the nodes and Deployments.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Upstream's kube-controller-manager, run as the anchor when present.
    #[arg(long, default_value = "/opt/anchors/bin/kube-controller-manager")]
    pub anchor: std::path::PathBuf,
}

fn node(i: usize) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": format!("hollow-{i}"), "labels": {"kubernetes.io/hostname": format!("hollow-{i}")}},
        "status": {
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "110"},
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }))
    .expect("node JSON")
}

fn deployment(i: usize, replicas: usize) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": format!("d{i}")},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": format!("d{i}")}},
            "template": {
                "metadata": {"labels": {"app": format!("d{i}")}},
                "spec": {"containers": [{"name": "c", "image": "registry.local/app:1.0",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
            },
        },
    }))
    .expect("deployment JSON")
}

async fn create_namespace(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}}))?,
        )
        .await?;
    Ok(())
}

async fn create_deployments(
    client: &kube::Client,
    ns: &str,
    args: &BenchArgs,
) -> anyhow::Result<Duration> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    futures::stream::iter(0..args.deployments)
        .map(|i| {
            let api = api.clone();
            let replicas = args.replicas;
            async move {
                api.create(&PostParams::default(), &deployment(i, replicas))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(args.clients)
        .try_collect::<()>()
        .await?;
    Ok(started.elapsed())
}

/// What one controller manager run measured.
struct Run {
    replica_sets: Duration,
    pods_created: Duration,
    pods_bound: Duration,
    cpu_seconds: f64,
    rss_mib: u64,
}

#[derive(Default)]
struct Progress {
    replica_sets: HashSet<String>,
    created: HashSet<String>,
    bound: HashSet<String>,
    rs_done: Option<Instant>,
    created_done: Option<Instant>,
    bound_done: Option<Instant>,
}

/// Starts `manager` (a command line), waits until `ns` has every ReplicaSet and every pod
/// created and bound, and measures.
async fn measure(
    client: &kube::Client,
    ns: &str,
    args: &BenchArgs,
    mut manager: std::process::Command,
) -> anyhow::Result<Run> {
    let pods_wanted = args.deployments * args.replicas;
    let progress = Arc::new(Mutex::new(Progress::default()));
    let rs_watch = {
        let progress = progress.clone();
        let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
        let wanted = args.deployments;
        tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = stream.next().await {
                let rs = match ev {
                    Ok(watcher::Event::Apply(rs)) | Ok(watcher::Event::InitApply(rs)) => rs,
                    _ => continue,
                };
                let mut p = progress.lock().expect("not poisoned");
                p.replica_sets
                    .insert(rs.metadata.name.clone().unwrap_or_default());
                if p.replica_sets.len() == wanted && p.rs_done.is_none() {
                    p.rs_done = Some(Instant::now());
                }
            }
        })
    };
    let pod_watch = {
        let progress = progress.clone();
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = stream.next().await {
                let pod = match ev {
                    Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => p,
                    _ => continue,
                };
                let name = pod.metadata.name.clone().unwrap_or_default();
                let on_node = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_some_and(|n| !n.is_empty());
                let mut p = progress.lock().expect("not poisoned");
                p.created.insert(name.clone());
                if p.created.len() == pods_wanted && p.created_done.is_none() {
                    p.created_done = Some(Instant::now());
                }
                if on_node {
                    p.bound.insert(name);
                    if p.bound.len() == pods_wanted && p.bound_done.is_none() {
                        p.bound_done = Some(Instant::now());
                    }
                }
            }
        })
    };
    let started = Instant::now();
    let mut child = ChildGuard(manager.spawn().context("starting the controller manager")?);
    let pid = child.0.id();
    let deadline = started + Duration::from_secs(1800);
    let mut peak_rss = 0;
    let result = loop {
        let (rs_done, created_done, bound_done, counts) = {
            let p = progress.lock().expect("not poisoned");
            (
                p.rs_done,
                p.created_done,
                p.bound_done,
                (p.replica_sets.len(), p.created.len(), p.bound.len()),
            )
        };
        peak_rss = peak_rss.max(memory_kib(pid, "VmRSS:"));
        if let (Some(rs), Some(created), Some(bound)) = (rs_done, created_done, bound_done) {
            break Ok((rs, created, bound));
        }
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "after 1800 s: {} ReplicaSets, {} pods created, {} bound",
                counts.0,
                counts.1,
                counts.2
            ));
        }
        if let Some(status) = child.0.try_wait()? {
            break Err(anyhow::anyhow!("the controller manager exited: {status}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cpu = cpu_seconds(&pid.to_string());
    drop(child);
    rs_watch.abort();
    pod_watch.abort();
    let (rs, created, bound) = result?;
    Ok(Run {
        replica_sets: rs.duration_since(started),
        pods_created: created.duration_since(started),
        pods_bound: bound.duration_since(started),
        cpu_seconds: cpu,
        rss_mib: peak_rss / 1024,
    })
}

/// Kills the controller manager when the measurement ends, also on error.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn print_run(who: &str, run: &Run) {
    println!(
        "| {who}: all ReplicaSets / all pods created / all pods bound | {:.1} s / {:.1} s / {:.1} s |",
        run.replica_sets.as_secs_f64(),
        run.pods_created.as_secs_f64(),
        run.pods_bound.as_secs_f64()
    );
    println!(
        "| {who}: CPU seconds / peak RSS | {:.1} s / {} MiB |",
        run.cpu_seconds, run.rss_mib
    );
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (dir, server) = bench::start_server(&["--disable-controllers"]).await?;
    let admin = dir.path().join("admin.kubeconfig");
    let client = skiff_controllers::client_from_kubeconfig(&admin).await?;
    let pods = args.deployments * args.replicas;
    println!(
        "## skiff controllers bench: {} Deployments × {} replicas = {pods} pods on {} hollow nodes (2 cores shared by API server, scheduler, controllers and clients)\n",
        args.deployments, args.replicas, args.nodes
    );
    let nodes: Api<Node> = Api::all(client.clone());
    futures::stream::iter(0..args.nodes)
        .map(|i| {
            let nodes = nodes.clone();
            async move {
                nodes
                    .create(&PostParams::default(), &node(i))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(args.clients)
        .try_collect::<()>()
        .await?;

    create_namespace(&client, "bench").await?;
    let create_time = create_deployments(&client, "bench", &args).await?;
    let mut skiff = std::process::Command::new(std::env::current_exe()?);
    skiff
        .arg("controllers")
        .arg("--kubeconfig")
        .arg(dir.path().join("controller-manager.kubeconfig"))
        // No fixed port (10257) that another process may hold; nothing scrapes it here.
        .arg("--secure-port=0")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null());
    let ours = measure(&client, "bench", &args, skiff).await?;

    println!("| | |");
    println!("|---|---|");
    println!(
        "| setup: {} Deployments created by {} clients | {:.1} s |",
        args.deployments,
        args.clients,
        create_time.as_secs_f64()
    );
    print_run("skiff controllers", &ours);
    println!(
        "| skiff controllers: pods created and bound per second | {:.0} |",
        pods as f64 / ours.pods_bound.as_secs_f64().max(1e-9)
    );
    if args.anchor.exists() {
        // The skiff controllers are gone (killed): their Lease expires after 15 s, then the
        // anchor may lead. It gets a namespace of its own.
        create_namespace(&client, "anchor").await?;
        create_deployments(&client, "anchor", &args).await?;
        let mut upstream = std::process::Command::new(&args.anchor);
        upstream
            .arg(format!("--kubeconfig={}", admin.display()))
            .arg("--leader-elect=false")
            .arg("--controllers=deployment,replicaset")
            // Equal footing: its default client limit (QPS 20, burst 30 per controller) would
            // bound it, skiff's controllers have none.
            .args(["--kube-api-qps=5000", "--kube-api-burst=5000"])
            .stderr(std::process::Stdio::null());
        match measure(&client, "anchor", &args, upstream).await {
            Ok(theirs) => {
                print_run("anchor kube-controller-manager", &theirs);
                println!(
                    "| ratio anchor/skiff, time to all pods bound | {:.2}× |",
                    theirs.pods_bound.as_secs_f64() / ours.pods_bound.as_secs_f64()
                );
            }
            Err(e) => println!("| anchor kube-controller-manager | did not finish: {e} |"),
        }
    } else {
        // Each of kube-controller-manager's controllers has its own client limited to 20
        // requests/s (burst 30): the ReplicaSet controller alone must POST every pod.
        println!(
            "| anchor kube-controller-manager | not run: {} is missing. Context: its default client rate limit is QPS 20 / burst 30 per controller, so the ReplicaSet controller's {pods} pod creations alone take ≥ {:.0} s |",
            args.anchor.display(),
            (pods as f64 - 30.0).max(0.0) / 20.0
        );
    }
    drop(server);
    Ok(())
}
