//! `skiff scheduler bench`: scheduling throughput with hollow nodes through the real API server
//! (upstream's scheduler_perf shape): N nodes and M pending pods are created in a `skiff server`
//! that runs no scheduler, then a scheduler process starts and binds them all. Prints pods/s
//! from the first to the last binding, the latency from the scheduler's start to each pod's
//! binding, the scheduler's CPU and memory, and — beside it — the API server's own ceiling for
//! bindings (clients posting `pods/binding` with no decisions), so the figure shows which of the
//! two bounds the other. Upstream's kube-scheduler runs as the anchor when it is built and can
//! run against this API server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::watcher::{self, watcher};
use serde_json::json;

use crate::bench::{self, cpu_seconds, memory_kib, summary};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 5_000)]
    pub nodes: usize,
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    /// Concurrent clients creating objects and posting bindings.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Bindings posted directly to measure the API server's ceiling.
    #[arg(long, default_value_t = 3_000)]
    pub ceiling_pods: usize,
    /// Upstream's kube-scheduler, run as the anchor when present.
    #[arg(long, default_value = "/opt/anchors/bin/kube-scheduler")]
    pub anchor: std::path::PathBuf,
}

fn node(i: usize) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": format!("hollow-{i}"), "labels": {
            "kubernetes.io/hostname": format!("hollow-{i}"),
            "topology.kubernetes.io/zone": format!("zone-{}", i % 3)}},
        "status": {
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }))
    .expect("node JSON")
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "registry.local/app:1.0",
                                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
    }))
    .expect("pod JSON")
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

/// Creates `count` pods named `<prefix>-<i>` in `ns` with `clients` requests in flight.
async fn create_pods(
    client: &kube::Client,
    ns: &str,
    prefix: &str,
    count: usize,
    clients: usize,
) -> anyhow::Result<Duration> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &pod(&format!("{prefix}-{i}")))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(clients)
        .try_collect::<()>()
        .await?;
    Ok(started.elapsed())
}

/// Posts `pods/binding` for every pod of `ns`, round-robin over the nodes: the API server's
/// ceiling for bindings, with no scheduling decisions in the way.
async fn binding_ceiling(
    client: &kube::Client,
    ns: &str,
    count: usize,
    nodes: usize,
    clients: usize,
) -> anyhow::Result<f64> {
    create_pods(client, ns, "ceiling", count, clients).await?;
    let started = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| {
            let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
            async move {
                let body = json!({"apiVersion": "v1", "kind": "Binding",
                    "metadata": {"name": format!("ceiling-{i}")},
                    "target": {"kind": "Node", "name": format!("hollow-{}", i % nodes)}});
                pods.create_subresource::<_, serde_json::Value>(
                    "binding",
                    &format!("ceiling-{i}"),
                    &PostParams::default(),
                    &body,
                )
                .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(clients)
        .try_collect::<()>()
        .await?;
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// What one scheduler run measured.
struct Run {
    pods_per_second: f64,
    latency: (f64, f64, f64),
    cpu_seconds: f64,
    rss_mib: u64,
}

/// Starts `scheduler` (a command line), waits until every pod of `ns` is bound, and measures.
async fn measure(
    client: &kube::Client,
    ns: &str,
    count: usize,
    mut scheduler: std::process::Command,
) -> anyhow::Result<Run> {
    let bound = Arc::new(AtomicUsize::new(0));
    let times = Arc::new(Times::default());
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let watch = {
        let bound = bound.clone();
        let times = times.clone();
        tokio::spawn(async move {
            let mut seen = std::collections::HashSet::new();
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = stream.next().await {
                let pod = match ev {
                    Ok(watcher::Event::Apply(p)) | Ok(watcher::Event::InitApply(p)) => p,
                    _ => continue,
                };
                let on_node = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_some_and(|n| !n.is_empty());
                if on_node && seen.insert(pod.metadata.name.clone().unwrap_or_default()) {
                    times.push(Instant::now());
                    if bound.fetch_add(1, Ordering::Relaxed) + 1 == count {
                        return;
                    }
                }
            }
        })
    };
    let started = Instant::now();
    let mut child = ChildGuard(scheduler.spawn().context("starting the scheduler")?);
    let pid = child.0.id().to_string();
    let deadline = started + Duration::from_secs(900);
    let mut peak_rss = 0;
    while bound.load(Ordering::Relaxed) < count {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {count} pods were bound in 900 s",
            bound.load(Ordering::Relaxed)
        );
        if let Some(status) = child.0.try_wait()? {
            anyhow::bail!("the scheduler exited: {status}");
        }
        peak_rss = peak_rss.max(memory_kib(child.0.id(), "VmRSS:"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cpu = cpu_seconds(&pid);
    peak_rss = peak_rss.max(memory_kib(child.0.id(), "VmRSS:"));
    drop(child);
    watch.abort();
    let times = times.take();
    let first = times.first().copied().unwrap_or(started);
    let last = times.last().copied().unwrap_or(started);
    let latencies: Vec<f64> = times
        .iter()
        .map(|t| t.duration_since(started).as_secs_f64())
        .collect();
    Ok(Run {
        pods_per_second: count as f64 / last.duration_since(first).as_secs_f64().max(1e-9),
        latency: summary(latencies),
        cpu_seconds: cpu,
        rss_mib: peak_rss / 1024,
    })
}

/// Binding times, pushed by the watch task.
#[derive(Default)]
struct Times(std::sync::Mutex<Vec<Instant>>);

impl Times {
    fn push(&self, t: Instant) {
        self.0.lock().expect("not poisoned").push(t);
    }
    fn take(&self) -> Vec<Instant> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

/// Kills the scheduler process when the measurement ends, also on error.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    // Hollow nodes post no heartbeats: the node lifecycle controller must not taint them
    // unreachable while the anchor runs (it starts a minute or more after they were created).
    let (dir, server) =
        bench::start_server(&["--disable-scheduler", "--node-monitor-grace-period=1h"]).await?;
    let admin = dir.path().join("admin.kubeconfig");
    let client = skiff_controllers::client_from_kubeconfig(&admin).await?;
    println!(
        "## skiff scheduler bench: {} hollow nodes, {} pending pods, {} clients (2 cores shared by API server, scheduler and clients)\n",
        args.nodes, args.pods, args.clients
    );
    let nodes: Api<Node> = Api::all(client.clone());
    let t = Instant::now();
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
    let nodes_time = t.elapsed();

    create_namespace(&client, "ceiling").await?;
    let ceiling = binding_ceiling(
        &client,
        "ceiling",
        args.ceiling_pods,
        args.nodes,
        args.clients,
    )
    .await?;

    create_namespace(&client, "bench").await?;
    let create_time = create_pods(&client, "bench", "pod", args.pods, args.clients).await?;
    let mut skiff = std::process::Command::new(std::env::current_exe()?);
    skiff
        .arg("scheduler")
        .arg("--kubeconfig")
        .arg(dir.path().join("scheduler.kubeconfig"))
        .args(["--metrics-address", ""])
        .env("RUST_LOG", "warn");
    let ours = measure(&client, "bench", args.pods, skiff).await?;

    println!("| | skiff |");
    println!("|---|---|");
    println!(
        "| setup: {} nodes / {} pods created | {:.1} s / {:.1} s |",
        args.nodes,
        args.pods,
        nodes_time.as_secs_f64(),
        create_time.as_secs_f64()
    );
    println!(
        "| API server ceiling: `pods/binding` posted by {} clients, no decisions | {:.0} bindings/s |",
        args.clients, ceiling
    );
    println!(
        "| skiff scheduler: pods/s, first to last binding | {:.0} |",
        ours.pods_per_second
    );
    println!(
        "| latency from the scheduler's start to a pod's binding, p50 / p99 / max | {:.2} / {:.2} / {:.2} s |",
        ours.latency.0, ours.latency.1, ours.latency.2
    );
    println!(
        "| scheduler CPU seconds / peak RSS | {:.1} s / {} MiB |",
        ours.cpu_seconds, ours.rss_mib
    );
    println!(
        "| ratio of the API server's binding ceiling to the scheduler's rate | {:.2} |",
        ceiling / ours.pods_per_second
    );
    if args.anchor.exists() {
        create_namespace(&client, "anchor").await?;
        create_pods(&client, "anchor", "pod", args.pods, args.clients).await?;
        let mut upstream = std::process::Command::new(&args.anchor);
        upstream
            .arg(format!("--kubeconfig={}", admin.display()))
            .arg("--leader-elect=false")
            // Its default client limit (QPS 50, burst 100) would cap it at ~50 bindings/s;
            // skiff's scheduler has none, so the anchor gets upstream scheduler_perf's 5000.
            .args(["--kube-api-qps=5000", "--kube-api-burst=5000"])
            .stderr(std::process::Stdio::null());
        match measure(&client, "anchor", args.pods, upstream).await {
            Ok(theirs) => println!(
                "| anchor kube-scheduler: pods/s, p99 latency, CPU s, RSS MiB | {:.0}, {:.2} s, {:.1}, {} — skiff/anchor {:.2}× |",
                theirs.pods_per_second,
                theirs.latency.1,
                theirs.cpu_seconds,
                theirs.rss_mib,
                ours.pods_per_second / theirs.pods_per_second
            ),
            Err(e) => println!("| anchor kube-scheduler | did not finish: {e} |"),
        }
    } else {
        println!(
            "| anchor kube-scheduler | not run: {} is missing (../shared/tools/build-anchors.sh builds it) |",
            args.anchor.display()
        );
    }
    drop(server);
    Ok(())
}
