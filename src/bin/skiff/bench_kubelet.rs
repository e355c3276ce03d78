//! `skiff kubelet bench`: pod startup latency on one node with a cached image, as the
//! Kubernetes pod-startup SLO measures it — from the create request to the pod observed
//! Running with every container started, through a watch. A one-node `skiff up` cluster (the
//! control plane untainted) runs the pods; the kubelet's CPU time and memory are read from
//! /proc at the end. Anchor: the SLO's p99 ≤ 5 s (upstream publishes no kubelet-only number
//! to run beside it here: it needs containerd, which this machine does not have).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;

use crate::bench::{memory_kib, summary};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Pods per phase.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Creation rate of the paced phase (pods per second).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
}

const CLUSTER: &str = "kbench";

fn image_archive(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let ctx = dir.join("ctx/bin");
    std::fs::create_dir_all(&ctx)?;
    std::fs::copy("/bin/busybox", ctx.join("busybox"))
        .context("busybox-static is needed (/bin/busybox)")?;
    std::os::unix::fs::symlink("busybox", ctx.join("sleep"))?;
    let skiff = std::env::current_exe()?;
    let store = dir.join("store");
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let out = std::process::Command::new(&skiff)
            .arg("image")
            .arg("--root")
            .arg(&store)
            .args(args)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "skiff image {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    run(&[
        "build",
        "skiff.local/sleep:1",
        "--from",
        &dir.join("ctx").display().to_string(),
        "--entrypoint",
        "sleep",
        "--cmd",
        "3600",
    ])?;
    let archive = dir.join("sleep.tar");
    run(&[
        "export",
        "-o",
        &archive.display().to_string(),
        "skiff.local/sleep:1",
    ])?;
    Ok(archive)
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"bench": "startup"}},
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "skiff.local/sleep:1"}]}
    }))
    .expect("static pod")
}

fn started(p: &Pod) -> bool {
    let status = p.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                !cs.is_empty()
                    && cs
                        .iter()
                        .all(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()))
            })
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let archive = image_archive(work.path())?;
    let kubeconfig = work.path().join("admin.kubeconfig");
    let skiff = std::env::current_exe()?;
    let _ = std::process::Command::new(&skiff)
        .args(["down", "--name", CLUSTER])
        .output();
    let up = std::process::Command::new(&skiff)
        .args([
            "up",
            "--name",
            CLUSTER,
            "--nodes",
            "1",
            "--node-cidr",
            "192.168.99.0/24",
            "--load",
        ])
        .arg(&archive)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .output()?;
    anyhow::ensure!(
        up.status.success(),
        "skiff up: {}{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    let result = measure(&args, &kubeconfig).await;
    let _ = std::process::Command::new(&skiff)
        .args(["down", "--name", CLUSTER])
        .output();
    result
}

async fn measure(args: &BenchArgs, kubeconfig: &std::path::Path) -> anyhow::Result<()> {
    let client = skiff_controllers::client_from_kubeconfig(kubeconfig).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // name → when it was first seen started.
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watch_seen = seen.clone();
    let watch = tokio::spawn(async move {
        let mut events = watcher(
            pods_of(client),
            watcher::Config::default().labels("bench=startup"),
        )
        .boxed();
        while let Some(Ok(event)) = events.next().await {
            if let watcher::Event::Apply(p) | watcher::Event::InitApply(p) = event {
                if started(&p) {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    watch_seen
                        .lock()
                        .expect("not poisoned")
                        .entry(name)
                        .or_insert_with(Instant::now);
                }
            }
        }
    });
    let kubelet_pid = kubelet_pid()?;

    // Paced: one pod every 1/rate s; latency per pod.
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.1));
    let mut created = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    for i in 0..args.pods {
        tick.tick().await;
        let name = format!("paced-{i}");
        created.insert(name.clone(), Instant::now());
        pods.create(&PostParams::default(), &pod(&name)).await?;
    }
    wait_all(&seen, created.keys(), Duration::from_secs(120)).await?;
    let latencies: Vec<f64> = {
        let seen = seen.lock().expect("not poisoned");
        created
            .iter()
            .map(|(n, at)| seen[n].duration_since(*at).as_secs_f64())
            .collect()
    };
    let (p50, p99, max) = summary(latencies);
    clear(&pods).await?;

    // Burst: all at once (16 requests in flight), time until every one is started.
    let start = Instant::now();
    let names: Vec<String> = (0..args.pods).map(|i| format!("burst-{i}")).collect();
    futures::stream::iter(names.clone())
        .for_each_concurrent(16, |name| {
            let pods = pods.clone();
            async move {
                if let Err(e) = pods.create(&PostParams::default(), &pod(&name)).await {
                    eprintln!("create {name}: {e}");
                }
            }
        })
        .await;
    wait_all(&seen, names.iter(), Duration::from_secs(180)).await?;
    let burst = {
        let seen = seen.lock().expect("not poisoned");
        names
            .iter()
            .map(|n| seen[n])
            .max()
            .map(|last| last.duration_since(start))
            .unwrap_or_default()
    };
    let rss_running = memory_kib(kubelet_pid as u32, "VmRSS");
    let hwm = memory_kib(kubelet_pid as u32, "VmHWM");
    let cpu = crate::bench::cpu_seconds(&kubelet_pid.to_string());
    clear(&pods).await?;
    watch.abort();

    println!("pod startup on one node, cached image, create → Running observed through a watch:");
    println!(
        "  {} pods at {:.0}/s:   p50 {:.3} s   p99 {:.3} s   max {:.3} s",
        args.pods, args.rate, p50, p99, max
    );
    println!(
        "  {} pods at once:      all Running after {:.2} s",
        args.pods,
        burst.as_secs_f64()
    );
    println!(
        "  anchor (Kubernetes pod-startup SLO): p99 ≤ 5 s → skiff's p99 is {:.1}× under it",
        5.0 / p99
    );
    println!(
        "  kubelet: {:.1} MiB RSS with {} pods running (peak {:.1} MiB), {:.2} s CPU over the run; upstream's kubelet ~100 MB",
        rss_running as f64 / 1024.0,
        args.pods,
        hwm as f64 / 1024.0,
        cpu
    );
    Ok(())
}

fn pods_of(client: kube::Client) -> Api<Pod> {
    Api::namespaced(client, "default")
}

async fn wait_all<'a>(
    seen: &Mutex<HashMap<String, Instant>>,
    names: impl Iterator<Item = &'a String> + Clone,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let missing = {
            let seen = seen.lock().expect("not poisoned");
            names.clone().filter(|n| !seen.contains_key(*n)).count()
        };
        if missing == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{missing} pods not Running after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn clear(pods: &Api<Pod>) -> anyhow::Result<()> {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    pods.delete_collection(&params, &ListParams::default().labels("bench=startup"))
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pods
        .list(&ListParams::default().labels("bench=startup"))
        .await?
        .items
        .is_empty()
    {
        anyhow::ensure!(Instant::now() < deadline, "pods not gone after 120 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

fn kubelet_pid() -> anyhow::Result<i32> {
    let text = std::fs::read_to_string(format!("/var/lib/skiff/{CLUSTER}/cluster.json"))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    v["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["component"]
                .as_str()
                .is_some_and(|c| c.starts_with("kubelet"))
        })
        .and_then(|p| p["pid"].as_i64())
        .map(|p| p as i32)
        .context("no kubelet in the bench cluster")
}
