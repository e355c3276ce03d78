//! `skiff bench-failover`: what the loss of a control-plane machine costs a highly available
//! `skiff up --control-planes 3` cluster, against upstream's numbers — the leader-election lease
//! (15 s duration, 10 s renew deadline, 2 s retry: the most a standby waits) and etcd's election
//! timeout (1 s) — and the goal (no request fails for more than 2 s of one member's
//! loss). One run brings up the cluster and measures, in order:
//!
//! 1. write throughput through the API server on the 3-member etcd (ConfigMap creates from
//!    concurrent clients), and the same on a one-control-plane cluster on the embedded store
//!    (brought up afterwards), with their ratio;
//! 2. kill -9 of the API server that leads the controller manager's Lease: reads through the
//!    admin kubeconfig sent every 20 ms, each on a new connection as kubectl makes them — how
//!    many fail, the longest span of send times in which none succeeded, the slowest; then how
//!    long until the scheduler's and the controller manager's Leases name a surviving control
//!    plane (client-go's rule, which skiff's leader election follows: a standby takes the
//!    Lease 15 s after it last saw it renewed, trying every 2 s — 13 to 19 s after a kill);
//! 3. kill -9 of the etcd leader: writes sent every 20 ms from one client, the same numbers.
//!
//! Both clusters are removed with `skiff down` at the end, also on failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// ConfigMaps created for the throughput comparison, on each cluster.
    #[arg(long, default_value_t = 2_000)]
    pub writes: usize,
    /// Concurrent clients creating them.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// The node network of the HA cluster (4 nodes, 3 of them control planes).
    #[arg(long, default_value = "192.168.86.0/24")]
    pub ha_node_cidr: String,
    /// The node network of the one-control-plane cluster (2 nodes).
    #[arg(long, default_value = "192.168.87.0/24")]
    pub single_node_cidr: String,
}

const HA: &str = "failover-ha";
const SINGLE: &str = "failover-one";
/// How often the probes ask.
const PROBE_EVERY: Duration = Duration::from_millis(20);
/// How long a probe watches after a kill.
const PROBE_FOR: Duration = Duration::from_secs(8);
/// Upstream's leader-election lease duration (kube-scheduler, kube-controller-manager).
const LEASE_DURATION: Duration = Duration::from_secs(15);
/// etcd's default election timeout.
const ETCD_ELECTION: Duration = Duration::from_secs(1);

/// `skiff down --name` when dropped.
struct Down(&'static str);

impl Drop for Down {
    fn drop(&mut self) {
        if let Ok(skiff) = std::env::current_exe() {
            let _ = Command::new(skiff)
                .args(["down", "--name", self.0])
                .output();
        }
    }
}

fn up(name: &'static str, nodes: usize, cidr: &str, extra: &[&str]) -> anyhow::Result<Down> {
    let down = Down(name);
    eprintln!(
        "bench-failover: skiff up --name {name} --nodes {nodes} {}",
        extra.join(" ")
    );
    let out = Command::new(std::env::current_exe()?)
        .args([
            "up",
            "--name",
            name,
            "--nodes",
            &nodes.to_string(),
            "--node-cidr",
            cidr,
        ])
        .args(extra)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "skiff up --name {name}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(down)
}

fn kubeconfig(name: &str) -> anyhow::Result<PathBuf> {
    Ok(skiff_cluster::state::Recorded::read(name)?.kubeconfig)
}

async fn config(name: &str) -> anyhow::Result<kube::Config> {
    skiff_controllers::config_from_kubeconfig(&kubeconfig(name)?).await
}

/// Creates `writes` ConfigMaps from `clients` concurrent tasks on one client; creates per second.
async fn throughput(config: &kube::Config, writes: usize, clients: usize) -> anyhow::Result<f64> {
    let client = kube::Client::try_from(config.clone())?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let started = Instant::now();
    let results: Vec<kube::Result<ConfigMap>> = futures::stream::iter(0..writes)
        .map(|i| {
            let api = api.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("load-{i}")},
                    "data": {"k": "v".repeat(64)},
                }))
                .expect("configmap JSON");
                api.create(&PostParams::default(), &cm).await
            }
        })
        .buffer_unordered(clients)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let failed = results.iter().filter(|r| r.is_err()).count();
    anyhow::ensure!(failed == 0, "{failed} of {writes} creates failed");
    Ok(writes as f64 / elapsed)
}

/// What a probe saw after a kill.
struct Outage {
    requests: usize,
    failed: usize,
    /// The longest span of send times in which no request succeeded: from the first of a run
    /// of failed requests to the next request that succeeded.
    unavailable: Duration,
    /// The slowest request, answered or not.
    slowest: Duration,
}

/// Sends `request` every PROBE_EVERY for PROBE_FOR after `kill` runs, each on its own task
/// (a request that hangs does not hold the next ones back, as with many clients).
async fn probe<F, Fut>(
    kill: impl FnOnce() -> anyhow::Result<()>,
    mut request: F,
) -> anyhow::Result<Outage>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    kill()?;
    let started = Instant::now();
    let mut sent = Vec::new();
    let mut ticks = tokio::time::interval(PROBE_EVERY);
    while started.elapsed() < PROBE_FOR {
        ticks.tick().await;
        let at = started.elapsed();
        let answer = request(sent.len());
        sent.push(tokio::spawn(async move {
            let ok = answer.await;
            (at, ok, started.elapsed() - at)
        }));
    }
    let mut answers = Vec::new();
    for task in sent {
        answers.push(task.await?);
    }
    Ok(outage(&answers, PROBE_FOR))
}

/// `answers` in send order: (sent at, succeeded, took); `end`: when sending stopped.
fn outage(answers: &[(Duration, bool, Duration)], end: Duration) -> Outage {
    let mut unavailable = Duration::ZERO;
    let mut first_failure: Option<Duration> = None;
    for &(at, ok, _) in answers {
        match (ok, first_failure) {
            (true, Some(since)) => {
                unavailable = unavailable.max(at - since);
                first_failure = None;
            }
            (false, None) => first_failure = Some(at),
            _ => {}
        }
    }
    if let Some(since) = first_failure {
        // Nothing sent after it succeeded.
        unavailable = unavailable.max(end - since);
    }
    Outage {
        requests: answers.len(),
        failed: answers.iter().filter(|a| !a.1).count(),
        unavailable,
        slowest: answers.iter().map(|a| a.2).max().unwrap_or_default(),
    }
}

/// The pid `skiff up` recorded for a component ("server", "server <node>", "etcd <node>").
fn pid_of(name: &str, component: &str) -> anyhow::Result<i32> {
    let recorded = skiff_cluster::state::Recorded::read(name)?;
    recorded
        .processes
        .iter()
        .find(|p| p.component == component)
        .map(|p| p.pid)
        .with_context(|| format!("no {component} in {name}'s processes"))
}

fn kill(pid: i32) -> anyhow::Result<()> {
    // SAFETY: kill(2) of a pid that `skiff up` recorded for this bench's own cluster.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    anyhow::ensure!(rc == 0, "kill {pid}: {}", std::io::Error::last_os_error());
    Ok(())
}

/// The control-plane node a Lease's holder runs on (`<hostname>_<uuid>`; each server's
/// hostname is its node's name).
async fn lease_node(leases: &Api<Lease>, name: &str) -> Option<String> {
    let lease = leases.get(name).await.ok()?;
    let holder = lease.spec?.holder_identity?;
    holder.rsplit_once('_').map(|(host, _)| host.to_string())
}

/// The etcd member that leads, from `skiff status`'s member table.
fn etcd_leader(name: &str) -> anyhow::Result<String> {
    let out = Command::new(std::env::current_exe()?)
        .args(["status", "--name", name])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .skip_while(|l| !l.starts_with("ETCD MEMBER"))
        .skip(1)
        .find_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            (words.get(2) == Some(&"healthy") && words.get(3) == Some(&"yes"))
                .then(|| words[0].to_string())
        })
        .with_context(|| format!("no etcd leader in `skiff status`:\n{text}"))
}

fn server_component(first_control_plane: &str, node: &str) -> String {
    if node == first_control_plane {
        "server".into()
    } else {
        format!("server {node}")
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        Path::new(skiff_cluster::etcd::ETCD).exists(),
        "bench-failover runs an etcd cluster: {} is missing (scripts/setup.sh installs it)",
        skiff_cluster::etcd::ETCD
    );
    let ha_down = up(HA, 4, &args.ha_node_cidr, &["--control-planes", "3"])?;
    let ha = config(HA).await?;
    eprintln!(
        "bench-failover: {} creates, {} clients, 3-member etcd",
        args.writes, args.clients
    );
    let ha_rate = throughput(&ha, args.writes, args.clients).await?;

    // The API server whose process leads the controller manager.
    let client = kube::Client::try_from(ha.clone())?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let first = format!("{HA}-control-plane");
    let leader = lease_node(&leases, "kube-controller-manager")
        .await
        .context("no controller manager leader")?;
    let scheduler_leader = lease_node(&leases, "kube-scheduler").await;
    let server = pid_of(HA, &server_component(&first, &leader))?;
    eprintln!("bench-failover: kill -9 the API server on {leader}");
    let killed_at = Instant::now();
    let reads = probe(
        || kill(server),
        |_| {
            let config = ha.clone();
            async move {
                // A new connection per request, as kubectl makes them.
                let Ok(client) = kube::Client::try_from(config) else {
                    return false;
                };
                Api::<ConfigMap>::namespaced(client, "default")
                    .get("load-0")
                    .await
                    .is_ok()
            }
        },
    )
    .await?;
    // The Leases the killed server held move to a surviving control plane (asked through the
    // kubeconfig); one held elsewhere has no reason to move.
    let names = ["kube-scheduler", "kube-controller-manager"];
    let held = [scheduler_leader.as_deref() == Some(leader.as_str()), true];
    let mut moved: [Option<Duration>; 2] = [None, None];
    let waiting = |moved: &[Option<Duration>; 2]| (0..2).any(|i| held[i] && moved[i].is_none());
    while waiting(&moved) && killed_at.elapsed() < LEASE_DURATION * 3 {
        for i in 0..2 {
            if !held[i] || moved[i].is_some() {
                continue;
            }
            if lease_node(&leases, names[i])
                .await
                .is_some_and(|now| now != leader)
            {
                moved[i] = Some(killed_at.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let member = etcd_leader(HA)?;
    eprintln!("bench-failover: kill -9 the etcd leader {member}");
    let etcd = pid_of(HA, &format!("etcd {member}"))?;
    let writer: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let writes = probe(
        || kill(etcd),
        |i| {
            let api = writer.clone();
            async move {
                let cm: ConfigMap = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("after-etcd-{i}")},
                }))
                .expect("configmap JSON");
                api.create(&PostParams::default(), &cm).await.is_ok()
            }
        },
    )
    .await?;
    drop(ha_down);

    let single_down = up(SINGLE, 2, &args.single_node_cidr, &[])?;
    let single = config(SINGLE).await?;
    eprintln!(
        "bench-failover: {} creates, {} clients, embedded store",
        args.writes, args.clients
    );
    let single_rate = throughput(&single, args.writes, args.clients).await?;
    drop(single_down);

    let secs = |i: usize| match (held[i], moved[i]) {
        (false, _) => "led elsewhere".to_string(),
        (true, None) => "did not move in 45 s".to_string(),
        (true, Some(d)) => format!("{:.2} s", d.as_secs_f64()),
    };
    let ratio = |d: Option<Duration>, anchor: Duration| {
        d.map_or_else(
            || "-".to_string(),
            |d| format!("{:.2}", d.as_secs_f64() / anchor.as_secs_f64()),
        )
    };
    println!("| measurement | skiff | anchor | ratio |");
    println!("|---|---|---|---|");
    let outage_rows = |what: &str, o: &Outage, anchor: &str, anchor_secs: f64| {
        println!(
            "| {what}: requests failed | {} of {} | goal: none past 2 s | |",
            o.failed, o.requests
        );
        println!(
            "| {what}: longest unavailability | {:.3} s | {anchor} | {:.2} |",
            o.unavailable.as_secs_f64(),
            o.unavailable.as_secs_f64() / anchor_secs
        );
        println!(
            "| {what}: slowest request | {:.3} s | | |",
            o.slowest.as_secs_f64()
        );
    };
    outage_rows(
        "reads, kill -9 of the leading API server",
        &reads,
        "goal ≤ 2 s",
        2.0,
    );
    println!(
        "| scheduler Lease on a survivor after the kill | {} | lease duration 15 s | {} |",
        secs(0),
        ratio(moved[0], LEASE_DURATION)
    );
    println!(
        "| controller manager Lease on a survivor after the kill | {} | lease duration 15 s | {} |",
        secs(1),
        ratio(moved[1], LEASE_DURATION)
    );
    outage_rows(
        "writes, kill -9 of the etcd leader",
        &writes,
        "etcd election timeout 1 s",
        ETCD_ELECTION.as_secs_f64(),
    );
    println!(
        "| creates/s, {} clients: 3-member etcd (TLS) vs embedded store | {ha_rate:.0} | {single_rate:.0} | {:.2} |",
        args.clients,
        ha_rate / single_rate
    );
    Ok(())
}
