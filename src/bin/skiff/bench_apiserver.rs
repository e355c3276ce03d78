//! `skiff apiserver bench`: the API server under the load the issue names — concurrent clients
//! create 10,000 pods, list them, update them, while 1,000 watchers receive every event. Prints
//! creates/s, latency percentiles of single-object calls and lists, watch delivery latency, and
//! the server process's memory, next to the Kubernetes SLOs (there is no kube-apiserver on this
//! machine to run beside it; the SLOs are the published anchor).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::bench::{self, cpu_seconds, memory_kib, now_nanos, summary};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 10_000)]
    pub pods: usize,
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    #[arg(long, default_value_t = 1_000)]
    pub watchers: usize,
    /// Watchers that parse every event to measure delivery latency (the rest count events).
    #[arg(long, default_value_t = 20)]
    pub sampled_watchers: usize,
    #[arg(long, default_value_t = 10)]
    pub lists: usize,
}

fn pod(i: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("bench-{i}"), "labels": {"app": "bench", "shard": (i % 10).to_string()},
                     "annotations": {"bench/sent": now_nanos().to_string()}},
        "spec": {"containers": [{"name": "c", "image": "registry.local/app:1.0", "ports": [{"containerPort": 8080}],
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
    }))
    .expect("pod JSON")
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (dir, server) = bench::start_server(&[]).await?;
    let pid = server.pid();
    let kubeconfig = dir.path().join("admin.kubeconfig");
    let client = skiff_controllers::client_from_kubeconfig(&kubeconfig).await?;
    let ns = "bench";
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await?;
    let rss_idle = memory_kib(pid, "VmRSS:");
    let (server_cpu_start, client_cpu_start) = (cpu_seconds(&pid.to_string()), cpu_seconds("self"));
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let start_rv = pods
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();

    // Watchers, spread over connections of 100 streams each.
    let expected_events = (args.pods * 2) as u64;
    let delivered = Arc::new(AtomicU64::new(0));
    let mut watcher_tasks = Vec::new();
    let mut conn = client.clone();
    for w in 0..args.watchers {
        if w % 100 == 0 {
            conn = skiff_controllers::client_from_kubeconfig(&kubeconfig).await?;
        }
        let sampled = w < args.sampled_watchers;
        let req = http::Request::get(format!("/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={start_rv}&timeoutSeconds=3600"))
            .body(Vec::new())?;
        let stream = conn.request_stream(req).await?;
        let delivered = delivered.clone();
        watcher_tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut count = 0u64;
            if sampled {
                // Parses every event to time its delivery.
                let mut lines = stream.lines();
                while let Some(Ok(line)) = lines.next().await {
                    count += 1;
                    let received = now_nanos();
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        if let Some(sent) = v
                            .pointer("/object/metadata/annotations/bench~1sent")
                            .and_then(|s| s.as_str())
                            .and_then(|s| s.parse::<u64>().ok())
                        {
                            latencies.push((received.saturating_sub(sent)) as f64 / 1e6);
                        }
                    }
                    delivered.fetch_add(1, Ordering::Relaxed);
                    if count == expected_events {
                        break;
                    }
                }
            } else {
                // Counts events (one per line) without decoding them, so the load generator
                // spends its CPU on receiving, not on parsing 20 million pods.
                let mut stream = stream;
                let mut buf = vec![0u8; 64 * 1024];
                while count < expected_events {
                    let n = match futures::AsyncReadExt::read(&mut stream, &mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let lines = buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
                    count += lines;
                    delivered.fetch_add(lines, Ordering::Relaxed);
                }
            }
            (count, latencies)
        }));
    }

    // Creates.
    let mut create_lat = Vec::new();
    let began = Instant::now();
    let per_client = args.pods.div_ceil(args.clients);
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let pods = pods.clone();
        let range = (c * per_client)..((c + 1) * per_client).min(args.pods);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in range {
                let t = Instant::now();
                pods.create(&PostParams::default(), &pod(i)).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            anyhow::Ok(lat)
        }));
    }
    for t in tasks {
        create_lat.extend(t.await??);
    }
    let create_secs = began.elapsed().as_secs_f64();
    let rss_after_create = memory_kib(pid, "VmRSS:");

    // Lists of all pods (consistent reads from the store) and from the watch cache (RV=0).
    let mut list_lat = Vec::new();
    let mut list_cache_lat = Vec::new();
    for _ in 0..args.lists {
        let t = Instant::now();
        let l = pods.list(&ListParams::default()).await?;
        list_lat.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(
            l.items.len() == args.pods,
            "list returned {} pods",
            l.items.len()
        );
        let t = Instant::now();
        let l = pods.list(&ListParams::default().match_any()).await?;
        list_cache_lat.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(
            l.items.len() == args.pods,
            "cached list returned {} pods",
            l.items.len()
        );
    }

    // Updates (a merge patch per pod) with single-object reads interleaved.
    let began = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let pods = pods.clone();
        let range = (c * per_client)..((c + 1) * per_client).min(args.pods);
        tasks.push(tokio::spawn(async move {
            let (mut upd, mut get) = (Vec::new(), Vec::new());
            for i in range {
                let name = format!("bench-{i}");
                let patch = json!({"metadata": {"labels": {"updated": "yes"}, "annotations": {"bench/sent": now_nanos().to_string()}}});
                let t = Instant::now();
                pods.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await?;
                upd.push(t.elapsed().as_secs_f64() * 1e3);
                if i % 4 == 0 {
                    let t = Instant::now();
                    pods.get(&name).await?;
                    get.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
            anyhow::Ok((upd, get))
        }));
    }
    let (mut update_lat, mut get_lat) = (Vec::new(), Vec::new());
    for t in tasks {
        let (u, g) = t.await??;
        update_lat.extend(u);
        get_lat.extend(g);
    }
    let update_secs = began.elapsed().as_secs_f64();

    // Every watcher must receive every event.
    let mut watch_lat = Vec::new();
    let mut complete = 0;
    for t in watcher_tasks {
        let (count, lat) = tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .context("a watcher did not get every event")??;
        if count == expected_events {
            complete += 1;
        }
        watch_lat.extend(lat);
    }
    let rss_peak = memory_kib(pid, "VmHWM:");
    let server_cpu = cpu_seconds(&pid.to_string()) - server_cpu_start;
    let client_cpu = cpu_seconds("self") - client_cpu_start;

    let (c50, c99, cmax) = summary(create_lat);
    let (u50, u99, umax) = summary(update_lat);
    let (g50, g99, gmax) = summary(get_lat);
    let (l50, l99, _) = summary(list_lat);
    let (lc50, lc99, _) = summary(list_cache_lat);
    let (w50, w99, wmax) = summary(watch_lat);
    println!("## skiff apiserver bench: {} pods, {} clients, {} watchers (2 cores shared by server and clients)\n", args.pods, args.clients, args.watchers);
    println!("| metric | skiff | anchor / goal |");
    println!("|---|---|---|");
    println!(
        "| creates/s | {:.0} | goal ≥ 2,000 |",
        args.pods as f64 / create_secs
    );
    println!("| create latency p50 / p99 / max (ms) | {c50:.1} / {c99:.1} / {cmax:.1} | SLO p99 ≤ 1000; goal p99 ≤ 50 |");
    println!("| updates/s | {:.0} | |", args.pods as f64 / update_secs);
    println!("| update (merge patch) latency p50 / p99 / max (ms) | {u50:.1} / {u99:.1} / {umax:.1} | SLO p99 ≤ 1000; goal p99 ≤ 50 |");
    println!("| get latency under update load p50 / p99 / max (ms) | {g50:.1} / {g99:.1} / {gmax:.1} | SLO p99 ≤ 1000; goal p99 ≤ 50 |");
    println!("| list {} pods, consistent (ms) p50 / p99 | {l50:.0} / {l99:.0} | SLO p99 ≤ 30000 (cluster-scope list) |", args.pods);
    println!(
        "| list {} pods, resourceVersion=0 (ms) p50 / p99 | {lc50:.0} / {lc99:.0} | |",
        args.pods
    );
    println!("| watch delivery latency p50 / p99 / max (ms) | {w50:.1} / {w99:.1} / {wmax:.1} | |");
    println!(
        "| watchers that received all {expected_events} events | {complete} / {} | all |",
        args.watchers
    );
    println!(
        "| events delivered | {} | {} |",
        delivered.load(Ordering::Relaxed),
        expected_events * args.watchers as u64
    );
    println!(
        "| server RSS idle / after creates / peak (MiB) | {} / {} / {} | k3s server ~500–1600 |",
        rss_idle / 1024,
        rss_after_create / 1024,
        rss_peak / 1024
    );
    println!(
        "| CPU seconds during the run: server / benchmark clients and watchers | {server_cpu:.1} / {client_cpu:.1} | |"
    );
    drop(server);
    Ok(())
}
