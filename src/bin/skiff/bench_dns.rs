//! `skiff dns bench`: the cluster DNS addon under dnsperf. A `skiff server` gets N Services
//! (10,000 by default); a test upstream (a second `skiff dns` serving the zone `upstream.test`
//! from the same API, on another loopback port) answers forwarded names; `skiff dns` under test
//! listens on loopback. dnsperf (Debian's, 2.10) replays a query file of 60 % A hits, 10 % SRV,
//! 20 % NXDOMAIN and 10 % forwarded names. Prints qps, average and p99 latency (from dnsperf's
//! per-query `-v` lines), qps per server CPU-second (/proc/<pid>/stat) and RSS. When
//! /opt/anchors/bin/coredns exists it runs beside it with the kubernetes plugin against the same
//! API server and the ratio is printed; otherwise the published anchor (CoreDNS ≈ 17k qps per
//! vCPU, Scaling_CoreDNS.md) is printed for context.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::bench::{self, cpu_seconds, free_port, memory_kib, ServerChild};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Services in the API.
    #[arg(long, default_value_t = 10_000)]
    pub services: usize,
    /// Seconds dnsperf runs per server and mode.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// dnsperf clients (-c).
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Queries outstanding (-q) in the saturation run.
    #[arg(long, default_value_t = 200)]
    pub outstanding: usize,
    /// Queries per second (dnsperf -Q) of the fixed-rate run, below both servers'
    /// saturation; 0 skips it.
    #[arg(long, default_value_t = 5_000)]
    pub rate: u64,
    /// Concurrent API clients creating the services.
    #[arg(long, default_value_t = 32)]
    pub create_clients: usize,
    /// CoreDNS, run as the anchor when present.
    #[arg(long, default_value = "/opt/anchors/bin/coredns")]
    pub anchor: PathBuf,
}

/// The published CoreDNS figure: 33,669 qps pegging 2 vCPUs (coredns/deployment
/// kubernetes/Scaling_CoreDNS.md).
const PUBLISHED_QPS_PER_VCPU: f64 = 17_000.0;

/// One dnsperf run against one server.
struct Run {
    qps: f64,
    avg_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// p99 of the cluster names (hits, SRV and NXDOMAIN) and of the forwarded names.
    p99_cluster_ms: f64,
    p99_forwarded_ms: f64,
    lost: u64,
    cpu: f64,
    qps_per_cpu: f64,
    rss_mib: f64,
}

/// Resident memory: (total, anonymous, file-backed) MiB.
fn rss(pid: u32) -> (f64, f64, f64) {
    let mib = |field| memory_kib(pid, field) as f64 / 1024.0;
    (mib("VmRSS:"), mib("RssAnon:"), mib("RssFile:"))
}

/// A server's whole measurement: memory after the sync, and the runs.
struct Measured {
    synced_rss_mib: f64,
    synced_anon_mib: f64,
    synced_file_mib: f64,
    saturated: Run,
    fixed: Option<Run>,
}

fn query_file(path: &Path, services: usize) -> anyhow::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    // A fixed xorshift: the same file every run.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..100_000u64 {
        let n = next() as usize % services;
        match i % 10 {
            0..=5 => writeln!(f, "svc-{n}.default.svc.cluster.local A")?,
            6 => writeln!(f, "_http._tcp.svc-{n}.default.svc.cluster.local SRV")?,
            7 | 8 => writeln!(f, "missing-{n}.default.svc.cluster.local A")?,
            _ => writeln!(f, "svc-{}.default.svc.upstream.test A", n % 100)?,
        }
    }
    Ok(())
}

fn spawn_ready(mut cmd: Command, ready: &'static str, what: &str) -> anyhow::Result<ServerChild> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let stdout = child.stdout.take().context("stdout")?;
    let child = ServerChild(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
        {
            if line.starts_with(ready) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120))
        .with_context(|| format!("{what} did not become ready"))?;
    Ok(child)
}

fn skiff_dns(
    kubeconfig: &Path,
    zone: &str,
    port: u16,
    upstream: &str,
) -> anyhow::Result<ServerChild> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("dns")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--cluster-domain", zone])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", upstream])
        .args(["--health-listen", &format!("127.0.0.1:{}", free_port()?)])
        .args(["--ready-listen", &format!("127.0.0.1:{}", free_port()?)])
        .args(["--metrics-listen", &format!("127.0.0.1:{}", free_port()?)])
        .env("RUST_LOG", "warn");
    spawn_ready(cmd, "skiff dns ready", "skiff dns")
}

/// dnsperf against `port` (saturation with -q, or a fixed rate with -Q); `pid` is the server
/// whose CPU and memory are counted.
fn dnsperf(
    args: &BenchArgs,
    queries: &Path,
    port: u16,
    pid: u32,
    rate: Option<u64>,
) -> anyhow::Result<Run> {
    let pid_s = pid.to_string();
    let cpu_before = cpu_seconds(&pid_s);
    let mut cmd = Command::new("dnsperf");
    cmd.args(["-s", "127.0.0.1", "-p", &port.to_string()])
        .args(["-l", &args.seconds.to_string()])
        .args(["-c", &args.clients.to_string()])
        .args(["-T", "1", "-v"]);
    match rate {
        Some(qps) => cmd.args(["-q", "1000", "-Q", &qps.to_string()]),
        None => cmd.args(["-q", &args.outstanding.to_string()]),
    };
    let out = cmd
        .arg("-d")
        .arg(queries)
        .stderr(Stdio::null())
        .output()
        .context("running dnsperf (Debian package dnsperf; scripts/setup.sh installs it)")?;
    let cpu = cpu_seconds(&pid_s) - cpu_before;
    let rss_mib = memory_kib(pid, "VmRSS:") as f64 / 1024.0;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let qps = field("Queries per second:");
    let avg_ms = field("Average Latency (s):") * 1e3;
    let lost = field("Queries lost:") as u64;
    // `-v`: one line per response, "> NOERROR name type latency".
    let mut latencies = Vec::new();
    let mut cluster = Vec::new();
    let mut forwarded = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("> ")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(name), Some(Ok(latency))) =
            (fields.get(2), fields.last().map(|l| l.parse::<f64>()))
        else {
            continue;
        };
        latencies.push(latency);
        if name.trim_end_matches('.').ends_with(".cluster.local") {
            cluster.push(latency);
        } else {
            forwarded.push(latency);
        }
    }
    let p99 = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        bench::percentile(&v, 0.99) * 1e3
    };
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let p50_ms = bench::percentile(&latencies, 0.50) * 1e3;
    let p99_ms = bench::percentile(&latencies, 0.99) * 1e3;
    let p99_cluster_ms = p99(cluster);
    let p99_forwarded_ms = p99(forwarded);
    anyhow::ensure!(qps.is_finite(), "dnsperf printed no result:\n{text}");
    Ok(Run {
        qps,
        avg_ms,
        p50_ms,
        p99_ms,
        p99_cluster_ms,
        p99_forwarded_ms,
        lost,
        cpu,
        qps_per_cpu: qps * args.seconds as f64 / cpu.max(1e-9),
        rss_mib,
    })
}

/// Warms the server (1 s: the forwarder's cache fills, as in a running cluster), then the
/// saturation run and the fixed-rate run.
fn measure(args: &BenchArgs, queries: &Path, port: u16, pid: u32) -> anyhow::Result<Measured> {
    let (synced_rss_mib, synced_anon_mib, synced_file_mib) = rss(pid);
    let _ = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port.to_string()])
        .args(["-l", "1", "-c", "2", "-q", "50"])
        .arg("-d")
        .arg(queries)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let saturated = dnsperf(args, queries, port, pid, None)?;
    let fixed = if args.rate > 0 {
        Some(dnsperf(args, queries, port, pid, Some(args.rate))?)
    } else {
        None
    };
    Ok(Measured {
        synced_rss_mib,
        synced_anon_mib,
        synced_file_mib,
        saturated,
        fixed,
    })
}

fn print(name: &str, m: &Measured) {
    println!(
        "{name}: RSS {:.1} MiB after the sync ({:.1} anonymous, {:.1} file-backed)",
        m.synced_rss_mib, m.synced_anon_mib, m.synced_file_mib
    );
    let line = |mode: &str, r: &Run| {
        println!(
            "  {mode:<10} {:>7.0} qps  avg {:>5.2} ms  p50 {:>5.2} ms  p99 {:>6.2} ms (cluster {:>6.2}, forwarded {:>6.2})  lost {:>5}  CPU {:>5.2} s  {:>7.0} qps/CPU-s  RSS {:>6.1} MiB",
            r.qps, r.avg_ms, r.p50_ms, r.p99_ms, r.p99_cluster_ms, r.p99_forwarded_ms, r.lost, r.cpu, r.qps_per_cpu, r.rss_mib
        )
    };
    line("saturation", &m.saturated);
    if let Some(r) = &m.fixed {
        line("fixed rate", r);
    }
}

fn last_rss(m: &Measured) -> f64 {
    m.fixed.as_ref().unwrap_or(&m.saturated).rss_mib
}

/// A Corefile shaped like kubeadm's (kubernetes with `pods insecure` and fallthrough for the
/// reverse zones, prometheus, health, ready, forward, cache with the cluster zone excluded),
/// on loopback, forwarding to the same test upstream as skiff dns.
fn corefile(dir: &Path, kubeconfig: &Path, port: u16, upstream: u16) -> anyhow::Result<PathBuf> {
    let path = dir.join("Corefile");
    std::fs::write(
        &path,
        format!(
            ".:{port} {{\n  bind 127.0.0.1\n  errors\n  health 127.0.0.1:{health}\n  ready 127.0.0.1:{ready}\n  kubernetes cluster.local in-addr.arpa ip6.arpa {{\n    kubeconfig {kubeconfig}\n    pods insecure\n    fallthrough in-addr.arpa ip6.arpa\n    ttl 5\n  }}\n  prometheus 127.0.0.1:{metrics}\n  forward . 127.0.0.1:{upstream} {{\n    max_concurrent 1000\n  }}\n  cache 30 {{\n    disable success cluster.local\n    disable denial cluster.local\n  }}\n}}\n",
            kubeconfig = kubeconfig.display(),
            health = free_port()?,
            ready = free_port()?,
            metrics = free_port()?,
        ),
    )?;
    Ok(path)
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (dir, _server) = bench::start_server(&[]).await?;
    let kubeconfig = dir.path().join("admin.kubeconfig");
    let client = skiff_controllers::client_from_kubeconfig(&kubeconfig).await?;
    let api: Api<Service> = Api::namespaced(client, "default");
    let started = Instant::now();
    futures::stream::iter(0..args.services)
        .map(|i| {
            let api = api.clone();
            async move {
                let svc: Service = serde_json::from_value(json!({
                    "metadata": {"name": format!("svc-{i}")},
                    "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
                }))?;
                api.create(&PostParams::default(), &svc).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(args.create_clients)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    println!(
        "created {} services in {:.1} s",
        args.services,
        started.elapsed().as_secs_f64()
    );

    let queries = dir.path().join("queries.txt");
    query_file(&queries, args.services)?;

    let upstream_port = free_port()?;
    let dead = format!("127.0.0.1:{}", free_port()?);
    let upstream = skiff_dns(&kubeconfig, "upstream.test", upstream_port, &dead)?;
    let port = free_port()?;
    let sync = Instant::now();
    let dns = skiff_dns(
        &kubeconfig,
        "cluster.local",
        port,
        &format!("127.0.0.1:{upstream_port}"),
    )?;
    println!(
        "skiff dns synced {} services in {:.2} s",
        args.services,
        sync.elapsed().as_secs_f64(),
    );
    println!(
        "dnsperf -c {} -T 1 -l {}, saturation -q {}, fixed rate -Q {}: 60% A, 10% SRV, 20% NXDOMAIN, 10% forwarded",
        args.clients, args.seconds, args.outstanding, args.rate
    );
    let ours = measure(&args, &queries, port, dns.pid())?;
    print("skiff dns", &ours);
    drop(dns);

    if args.anchor.exists() {
        let port = free_port()?;
        let corefile = corefile(dir.path(), &kubeconfig, port, upstream_port)?;
        let mut cmd = Command::new(&args.anchor);
        cmd.arg("-conf")
            .arg(&corefile)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let sync = Instant::now();
        let coredns = ServerChild(cmd.spawn().context("starting coredns")?);
        // CoreDNS has no ready line on stdout here: wait until it answers a cluster name.
        let deadline = Instant::now() + Duration::from_secs(60);
        let last = format!("svc-{}.default.svc.cluster.local", args.services - 1);
        loop {
            let ok = Command::new("dig")
                .args(["@127.0.0.1", "-p", &port.to_string()])
                .args(["+short", "+tries=1", "+time=1"])
                .arg(&last)
                .output()
                .is_ok_and(|o| !o.stdout.is_empty());
            if ok {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "coredns never answered");
            std::thread::sleep(Duration::from_millis(100));
        }
        println!(
            "coredns synced {} services in {:.2} s",
            args.services,
            sync.elapsed().as_secs_f64()
        );
        let theirs = measure(&args, &queries, port, coredns.pid())?;
        print("coredns", &theirs);
        let ratio = |mode: &str, a: &Run, b: &Run| {
            println!(
                "ratio skiff/coredns, {mode:<10}: {:.2}× qps per CPU-second, p99 {:.2} ms vs {:.2} ms ({:.2}×)",
                a.qps_per_cpu / b.qps_per_cpu,
                a.p99_ms,
                b.p99_ms,
                a.p99_ms / b.p99_ms
            )
        };
        ratio("saturation", &ours.saturated, &theirs.saturated);
        if let (Some(a), Some(b)) = (&ours.fixed, &theirs.fixed) {
            ratio("fixed rate", a, b);
        }
        println!(
            "ratio skiff/coredns, RSS at {} services: {:.1} MiB vs {:.1} MiB after the sync ({:.2}×), {:.1} MiB vs {:.1} MiB after the runs ({:.2}×)",
            args.services,
            ours.synced_rss_mib,
            theirs.synced_rss_mib,
            ours.synced_rss_mib / theirs.synced_rss_mib,
            last_rss(&ours),
            last_rss(&theirs),
            last_rss(&ours) / last_rss(&theirs)
        );
    } else {
        println!(
            "anchor: {} not found; published CoreDNS: ≈{:.0} qps per vCPU (33,669 qps on 2 vCPUs, GCE n1-standard-2, Scaling_CoreDNS.md); skiff dns here: {:.2}× that per CPU-second",
            args.anchor.display(),
            PUBLISHED_QPS_PER_VCPU,
            ours.saturated.qps_per_cpu / PUBLISHED_QPS_PER_VCPU
        );
    }
    drop(upstream);
    Ok(())
}
