//! `skiff netd bench-proxy`: the service proxy's programming time and first-packet latency
//! against kube-proxy's, side by side in one run.
//!
//! 1. Programming: N Services with E endpoints each (10,000 × 10 by default) go into skiff's
//!    maps (`Datapath::apply`, what netd runs after a watch event), then one Service changes;
//!    the same set goes into the kernel as kube-proxy writes it — `iptables-restore` of its
//!    iptables-mode chains (KUBE-SERVICES → KUBE-SVC-* with `statistic` → KUBE-SEP-* DNAT) and
//!    `nft -f` of its nftables-mode table (a `service-ips` verdict map, `numgen` per service,
//!    an endpoint chain each). kube-proxy itself is not run: its sync time is dominated by
//!    these restores, and the fallback anchor is exactly them. After each, a connect to
//!    the last Service shows that the set answers.
//! 2. First-packet latency: connect() to a ClusterIP with 10 and with 30,000 Services
//!    programmed (one endpoint each, the probe Service last in KUBE-SERVICES, the worst case of
//!    the iptables chain walk), for skiff's socket programs and for iptables; median of 2,000
//!    connects from Python in the same namespace.
//!
//! Everything runs in a scratch network namespace (the backend listens on a loopback address
//! there), a cgroup of its own and a bpffs mounted for the run; all are removed at the end.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use skiff_netd::proxy::datapath::{self, Datapath};
use skiff_netd::proxy::maps::{IPPROTO_TCP, SCOPE_ALL};
use skiff_netd::proxy::model::Frontend;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Services for the programming measurement.
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// Endpoints per Service for the programming measurement.
    #[arg(long, default_value_t = 10)]
    endpoints: usize,
    /// Services for the large latency measurement (the small one has 10).
    #[arg(long, default_value_t = 30_000)]
    latency_services: usize,
    /// connect() calls per latency measurement.
    #[arg(long, default_value_t = 2_000)]
    connects: usize,
}

const BACKEND: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
const BACKEND_PORT: u16 = 8080;

/// The run's namespace, cgroup, bpffs and listener, removed on drop.
struct Scratch {
    netns: String,
    cgroup: PathBuf,
    bpffs: PathBuf,
    listener: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(mut l) = self.listener.take() {
            let _ = l.kill();
            let _ = l.wait();
        }
        let _ = datapath::remove(&self.bpffs.join("proxy"));
        let _ = Command::new("umount").arg(&self.bpffs).output();
        let _ = std::fs::remove_dir(&self.cgroup);
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}

fn sh(netns: &str, cmd: &str) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "sh", "-c", cmd])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Feeds `input` to `cmd` in the namespace; returns how long it took.
fn timed_stdin(netns: &str, cmd: &[&str], input: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns])
        .args(cmd)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", cmd[0]))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "{}: {}",
        cmd.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(started.elapsed())
}

fn service_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 16, 0)) + i as u32)
}

fn endpoint_ip(i: usize, j: usize, per: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + (i * per + j) as u32)
}

/// Service i's endpoints; the last Service's is the real backend.
fn endpoints(i: usize, n: usize, per: usize) -> Vec<(Ipv4Addr, u16)> {
    if i == n - 1 {
        return vec![(BACKEND, BACKEND_PORT)];
    }
    (0..per)
        .map(|j| (endpoint_ip(i, j, per), BACKEND_PORT))
        .collect()
}

fn frontends(n: usize, per: usize) -> Vec<Frontend> {
    (0..n)
        .map(|i| {
            let mut backends = endpoints(i, n, per);
            backends.sort();
            Frontend {
                service: format!("bench/svc-{i}:80"),
                address: service_ip(i),
                port: 80,
                proto: IPPROTO_TCP,
                scope: SCOPE_ALL,
                flags: 0,
                backends,
                affinity_timeout: 0,
            }
        })
        .collect()
}

/// kube-proxy's iptables-mode NAT table for the set (its chain names, comments and matches).
fn iptables_rules(n: usize, per: usize) -> String {
    let mut chains = String::new();
    let mut rules = String::new();
    let _ = writeln!(
        chains,
        "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]"
    );
    let _ = writeln!(
        rules,
        "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A KUBE-MARK-MASQ -j MARK --or-mark 0x4000"
    );
    for i in 0..n {
        let svc = format!("KUBE-SVC-{:016X}", i);
        let _ = writeln!(chains, ":{svc} - [0:0]");
        let _ = writeln!(
            rules,
            "-A KUBE-SERVICES -d {}/32 -p tcp -m comment --comment \"bench/svc-{i}:http cluster IP\" -m tcp --dport 80 -j {svc}",
            service_ip(i)
        );
        let eps = endpoints(i, n, per);
        for (j, (ip, port)) in eps.iter().enumerate() {
            let sep = format!("KUBE-SEP-{:08X}{:08X}", i, j);
            let _ = writeln!(chains, ":{sep} - [0:0]");
            let left = eps.len() - j;
            if left > 1 {
                let _ = writeln!(
                    rules,
                    "-A {svc} -m comment --comment \"bench/svc-{i}:http -> {ip}:{port}\" -m statistic --mode random --probability {:.10} -j {sep}",
                    1.0 / left as f64
                );
            } else {
                let _ = writeln!(
                    rules,
                    "-A {svc} -m comment --comment \"bench/svc-{i}:http -> {ip}:{port}\" -j {sep}"
                );
            }
            let _ = writeln!(
                rules,
                "-A {sep} -s {ip}/32 -m comment --comment \"bench/svc-{i}:http\" -j KUBE-MARK-MASQ\n\
                 -A {sep} -p tcp -m comment --comment \"bench/svc-{i}:http\" -m tcp -j DNAT --to-destination {ip}:{port}"
            );
        }
    }
    chains + &rules + "COMMIT\n"
}

/// kube-proxy's nftables-mode table for the set (its map and chain layout).
fn nft_rules(n: usize, per: usize) -> String {
    let mut out = String::from(
        "add table ip kube-proxy\nflush table ip kube-proxy\n\
         add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }\n\
         add chain ip kube-proxy services\n\
         add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }\n\
         add rule ip kube-proxy nat-output jump services\n\
         add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips\n",
    );
    for i in 0..n {
        let svc = format!("service-{i:08X}-bench/svc-{i}/tcp/http");
        let _ = writeln!(out, "add chain ip kube-proxy {svc}");
        let eps = endpoints(i, n, per);
        let mut vmap = Vec::new();
        for (j, (ip, port)) in eps.iter().enumerate() {
            let ep = format!("endpoint-{i:08X}{j:04X}-bench/svc-{i}/tcp/http__{ip}/{port}");
            let _ = writeln!(
                out,
                "add chain ip kube-proxy {ep}\n\
                 add rule ip kube-proxy {ep} ip saddr {ip} mark set mark or 0x4000\n\
                 add rule ip kube-proxy {ep} meta l4proto tcp dnat to {ip}:{port}"
            );
            vmap.push(format!("{j} : goto {ep}"));
        }
        let _ = writeln!(
            out,
            "add rule ip kube-proxy {svc} numgen random mod {} vmap {{ {} }}\n\
             add element ip kube-proxy service-ips {{ {} . tcp . 80 : goto {svc} }}",
            eps.len(),
            vmap.join(" , "),
            service_ip(i)
        );
    }
    out
}

/// Median and 99th percentile of `connects` connect() calls to `ip:80`, in microseconds, from
/// Python in the namespace (and in `cgroup` when given, where the socket programs are).
fn connect_latency(
    netns: &str,
    cgroup: Option<&Path>,
    ip: Ipv4Addr,
    connects: usize,
) -> anyhow::Result<(f64, f64)> {
    let script = format!(
        "import socket, time\n\
         t = []\n\
         for _ in range({connects}):\n\
         \x20   s = socket.socket(); a = time.perf_counter(); s.connect(('{ip}', 80)); t.append(time.perf_counter() - a); s.close()\n\
         t.sort(); print(t[len(t)//2] * 1e6, t[len(t)*99//100] * 1e6)\n"
    );
    let join = match cgroup {
        Some(c) => format!("echo $$ > {}/cgroup.procs && ", c.display()),
        None => String::new(),
    };
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{join}exec ip netns exec {netns} python3 -c \"$0\""
        ))
        .arg(&script)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "the connect loop: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>());
    match (it.next(), it.next()) {
        (Some(Ok(p50)), Some(Ok(p99))) => Ok((p50, p99)),
        _ => anyhow::bail!("the connect loop printed {text:?}"),
    }
}

fn flush_iptables(netns: &str) -> anyhow::Result<()> {
    sh(netns, "iptables -t nat -F && iptables -t nat -X")?;
    Ok(())
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.services >= 2 && args.endpoints >= 1 && args.latency_services >= 10,
        "--services ≥ 2, --endpoints ≥ 1, --latency-services ≥ 10"
    );
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    anyhow::ensure!(euid == 0, "the bench needs root (namespaces, BPF)");
    let pid = std::process::id();
    let dir = tempfile::Builder::new()
        .prefix("skiff-bench-proxy")
        .tempdir()?;
    let mut scratch = Scratch {
        netns: format!("skbp{pid}"),
        cgroup: datapath::cgroup2_dir(&format!("/skiff-bench-proxy-{pid}"))?,
        bpffs: dir.path().join("bpf"),
        listener: None,
        _dir: dir,
    };
    let netns = scratch.netns.clone();
    let out = Command::new("ip").args(["netns", "add", &netns]).output()?;
    anyhow::ensure!(out.status.success(), "ip netns add {netns}");
    sh(
        &netns,
        &format!("ip link set lo up && ip addr add {BACKEND}/32 dev lo && ip route add 10.96.0.0/12 dev lo"),
    )?;
    std::fs::create_dir_all(&scratch.bpffs)?;
    let out = Command::new("mount")
        .args(["-t", "bpf", "bpf"])
        .arg(&scratch.bpffs)
        .output()?;
    anyhow::ensure!(out.status.success(), "mounting a bpffs for the run");
    let mut listener = Command::new("ip")
        .args(["netns", "exec", &netns, "python3", "-c"])
        .arg(format!(
            "import socket\n\
             s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('{BACKEND}', {BACKEND_PORT})); s.listen(4096); print('ready', flush=True)\n\
             while True:\n\
             \x20   c, _ = s.accept(); c.close()\n"
        ))
        .stdout(Stdio::piped())
        .spawn()?;
    let mut ready = String::new();
    BufReader::new(listener.stdout.take().expect("piped")).read_line(&mut ready)?;
    scratch.listener = Some(listener);
    anyhow::ensure!(ready.trim() == "ready", "the backend did not start");

    let (n, per) = (args.services, args.endpoints);
    println!(
        "service proxy programming: {n} Services × {per} endpoints ({} endpoints)",
        (n - 1) * per + 1
    );
    // skiff: the maps.
    let mut dp = Datapath::load(&scratch.bpffs.join("proxy"), &scratch.cgroup, None)?;
    dp.set_node_addrs(&BTreeSet::new())?;
    let mut set = frontends(n, per);
    let started = Instant::now();
    dp.apply(&set)?;
    let skiff_full = started.elapsed();
    set[n / 2].backends.pop();
    let started = Instant::now();
    let changed = dp.apply(&set)?;
    let skiff_one = started.elapsed();
    anyhow::ensure!(changed == 1, "one Service changed, {changed} rewritten");
    let (answer, _) = connect_latency(&netns, Some(&scratch.cgroup), service_ip(n - 1), 10)?;
    println!(
        "  skiff (BPF maps)         whole set {:>9.1} ms   one Service {:>8.3} ms   (last Service answers: connect {answer:.0} µs)",
        skiff_full.as_secs_f64() * 1e3,
        skiff_one.as_secs_f64() * 1e3
    );
    dp.apply(&[])?;

    // kube-proxy, iptables mode.
    let rules = iptables_rules(n, per);
    let ipt_full = timed_stdin(&netns, &["iptables-restore", "--noflush"], &rules)?;
    let one = {
        // kube-proxy ≥ 1.28's partial sync (MinimizeIPTablesRestore): KUBE-SERVICES in full,
        // plus the changed Service's chains.
        let svc = format!("KUBE-SVC-{:016X}", n / 2);
        let sep = format!("KUBE-SEP-{:08X}", n / 2);
        let partial: String = rules
            .lines()
            .filter(|l| {
                *l == "*nat"
                    || *l == "COMMIT"
                    || l.starts_with(":KUBE-SERVICES ")
                    || l.starts_with(&format!(":{svc} "))
                    || l.starts_with(&format!(":{sep}"))
                    || l.starts_with("-A KUBE-SERVICES ")
                    || l.starts_with(&format!("-A {svc} "))
                    || l.starts_with(&format!("-A {sep}"))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        timed_stdin(&netns, &["iptables-restore", "--noflush"], &partial)?
    };
    let (answer, _) = connect_latency(&netns, None, service_ip(n - 1), 10)?;
    println!(
        "  kube-proxy iptables      whole set {:>9.1} ms   one Service {:>8.1} ms   (last Service answers: connect {answer:.0} µs)",
        ipt_full.as_secs_f64() * 1e3,
        one.as_secs_f64() * 1e3
    );
    flush_iptables(&netns)?;

    // kube-proxy, nftables mode.
    let nft = nft_rules(n, per);
    let nft_full = timed_stdin(&netns, &["nft", "-f", "-"], &nft)?;
    let nft_one = timed_stdin(
        &netns,
        &["nft", "-f", "-"],
        &format!(
            "flush chain ip kube-proxy service-{0:08X}-bench/svc-{0}/tcp/http\n\
             add rule ip kube-proxy service-{0:08X}-bench/svc-{0}/tcp/http numgen random mod 1 vmap {{ 0 : goto endpoint-{0:08X}0000-bench/svc-{0}/tcp/http__{1}/8080 }}\n",
            n / 2,
            endpoint_ip(n / 2, 0, per)
        ),
    )?;
    let (answer, _) = connect_latency(&netns, None, service_ip(n - 1), 10)?;
    println!(
        "  kube-proxy nftables      whole set {:>9.1} ms   one Service {:>8.3} ms   (last Service answers: connect {answer:.0} µs)",
        nft_full.as_secs_f64() * 1e3,
        nft_one.as_secs_f64() * 1e3
    );
    sh(&netns, "nft delete table ip kube-proxy")?;
    println!(
        "  ratio (whole set): iptables/skiff {:.0}×, nftables/skiff {:.0}×",
        ipt_full.as_secs_f64() / skiff_full.as_secs_f64(),
        nft_full.as_secs_f64() / skiff_full.as_secs_f64()
    );

    // First-packet latency, 10 vs many Services (one endpoint each).
    let big = args.latency_services;
    println!(
        "connect() latency to a ClusterIP, median / p99 of {} (µs)",
        args.connects
    );
    let mut rows = Vec::new();
    for count in [10, big] {
        dp.apply(&frontends(count, 1))?;
        let s = connect_latency(
            &netns,
            Some(&scratch.cgroup),
            service_ip(count - 1),
            args.connects,
        )?;
        dp.apply(&[])?;
        timed_stdin(&netns, &["iptables-restore"], &iptables_rules(count, 1))?;
        let i = connect_latency(&netns, None, service_ip(count - 1), args.connects)?;
        flush_iptables(&netns)?;
        println!(
            "  {count:>6} Services: skiff {:>7.1} / {:>7.1}   iptables {:>8.1} / {:>8.1}",
            s.0, s.1, i.0, i.1
        );
        rows.push((s.0, i.0));
    }
    println!(
        "  growth 10 → {big}: skiff {:.2}×, iptables {:.2}×",
        rows[1].0 / rows[0].0,
        rows[1].1 / rows[0].1
    );
    drop(dp);
    Ok(())
}
