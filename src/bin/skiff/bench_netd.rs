//! `skiff netd bench`: the overlay's cost, measured side by side in one run — iperf3 between
//! two pods on two nodes across skiff's datapath (the `skiff-cni` veth + bridge, the VXLAN
//! device and entries `skiff netd` programs) against the same between the two nodes directly,
//! single stream and 4 streams, and TCP round trips (1-byte ping-pong, TCP_NODELAY) pod↔pod
//! against node↔node. Then the service proxy: iperf3 through a ClusterIP (socket programs on a
//! cgroup of the run) and through a NodePort from outside (tc on the node's interface: backend
//! on that node, and on the other node through SNAT over VXLAN), each against the backend's pod
//! IP from the same client through the same node.
//!
//! The lab is two node namespaces on a switch namespace, laid out like `skiff up`'s, with no
//! API server: the overlay is programmed by the same library calls the agent makes and the pods
//! are plumbed by the real plugin binary, so what is measured is exactly the datapath a cluster
//! gets. Everything is removed at the end, by name. Anchors: flannel's published 0.62×
//! single-stream ratio, the plain veth + bridge + VXLAN lab of ../shared (0.70×).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use skiff_netd::overlay::{self, Peer};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Seconds per iperf3 run.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Runs of each measurement, node and pod interleaved; the median is printed.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Round trips per latency run.
    #[arg(long, default_value_t = 20_000)]
    round_trips: usize,
}

/// The namespaces of the run, deleted on drop.
struct Lab {
    prefix: String,
    created: Vec<String>,
    dir: tempfile::TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    anyhow::ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

impl Lab {
    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn add(&mut self, name: &str) -> anyhow::Result<String> {
        let ns = self.ns(name);
        ip(&["netns", "add", &ns])?;
        self.created.push(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }
}

fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 57, 10 + i as u8)
}

fn pod_cidr(i: usize) -> ipnetwork::Ipv4Network {
    ipnetwork::Ipv4Network::new(Ipv4Addr::new(10, 250, i as u8, 0), 24).expect("a /24")
}

/// Builds the two nodes, the overlay between them and one pod on each; the pods' addresses.
fn build(lab: &mut Lab) -> anyhow::Result<(Vec<Ipv4Addr>, Vec<overlay::Vtep>)> {
    let switch = lab.add("sw")?;
    ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", &switch, "link", "set", "br0", "up"])?;
    let plugin = lab.dir.path().join(skiff_netd::cni::PLUGIN_TYPE);
    std::os::unix::fs::symlink(std::env::current_exe()?, &plugin)?;
    let mut vteps = Vec::new();
    for i in 0..2 {
        let node = lab.add(&format!("n{i}"))?;
        let peer = format!("v{i}");
        ip(&[
            "-n", &switch, "link", "add", &peer, "type", "veth", "peer", "name", "eth0", "netns",
            &node,
        ])?;
        ip(&["-n", &switch, "link", "set", &peer, "master", "br0", "up"])?;
        ip(&[
            "-n",
            &node,
            "addr",
            "add",
            &format!("{}/24", node_ip(i)),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &node, "link", "set", "eth0", "up"])?;
        let path = std::path::PathBuf::from(format!("/run/netns/{node}"));
        let vtep = skiff_netd::netlink::in_netns(&path, move |h| async move {
            overlay::ensure_vtep(&h, "eth0", node_ip(i), None, pod_cidr(i)).await
        })?;
        vteps.push(vtep);
    }
    program_peers(lab, &vteps, false)?;
    for i in 0..2 {
        let node = lab.ns(&format!("n{i}"));
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &node,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ])
            .output()?;
    }
    let mut pods = Vec::new();
    for (i, vtep) in vteps.iter().enumerate() {
        let pod = lab.add(&format!("p{i}"))?;
        let conf = json!({
            "cniVersion": "1.0.0", "name": "bench", "type": skiff_netd::cni::PLUGIN_TYPE,
            "mtu": vtep.mtu, "subnet": pod_cidr(i).to_string(),
            "dataDir": lab.dir.path().join(format!("ipam{i}")),
        });
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", lab.ns(&format!("n{i}"))))
            .arg(&plugin)
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", format!("bench{i}"))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_NETNS", format!("/run/netns/{pod}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(conf.to_string().as_bytes())?;
        let out = child.wait_with_output()?;
        let result: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        anyhow::ensure!(out.status.success(), "skiff-cni ADD: {result}");
        let address = result["ips"][0]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .and_then(|a| a.parse().ok())
            .context("no address in the CNI result")?;
        pods.push(address);
    }
    Ok((pods, vteps))
}

/// Each node's peer entry for the other: through VXLAN, or routed directly (`direct`).
fn program_peers(lab: &Lab, vteps: &[overlay::Vtep], direct: bool) -> anyhow::Result<()> {
    for i in 0..2 {
        let other = 1 - i;
        let node = lab.ns(&format!("n{i}"));
        let path = std::path::PathBuf::from(format!("/run/netns/{node}"));
        let underlay = skiff_netd::netlink::in_netns(&path, |h| async move {
            Ok(skiff_netd::netlink::link(&h, "eth0")
                .await?
                .context("eth0")?
                .header
                .index)
        })?;
        let peers = vec![Peer {
            node: format!("n{other}"),
            subnet: pod_cidr(other),
            public_ip: node_ip(other),
            vtep_mac: vteps[other].mac,
            direct: direct.then_some(underlay),
        }];
        let vtep = vteps[i].clone();
        skiff_netd::netlink::in_netns(&path, move |h| async move {
            overlay::reconcile(&h, &vtep, &peers).await
        })?;
    }
    Ok(())
}

/// iperf3 from `client` to `server_ip` in `server`: Gbit/s received.
fn iperf(
    server: &str,
    client: &str,
    server_ip: Ipv4Addr,
    streams: u32,
    seconds: u32,
) -> anyhow::Result<f64> {
    iperf_to(server, client, None, server_ip, 5299, streams, seconds)
}

/// iperf3 from `client` (inside `cgroup` when given: the socket programs' subtree) to
/// `address:port`, served in `server` on 5299.
fn iperf_to(
    server: &str,
    client: &str,
    cgroup: Option<&std::path::Path>,
    address: Ipv4Addr,
    port: u16,
    streams: u32,
    seconds: u32,
) -> anyhow::Result<f64> {
    let mut daemon = Command::new("ip")
        .args(["netns", "exec", server, "iperf3", "-s", "-1", "-p", "5299"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("running iperf3 (package iperf3)")?;
    std::thread::sleep(Duration::from_millis(300));
    let join = match cgroup {
        Some(c) => format!("echo $$ > {}/cgroup.procs && ", c.display()),
        None => String::new(),
    };
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{join}exec ip netns exec {client} iperf3 -c {address} -p {port} -t {seconds} -P {streams} -J"
        ))
        .output()?;
    let _ = daemon.wait();
    let report: Value = serde_json::from_slice(&out.stdout).context("iperf3's JSON")?;
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 1e9)
        .with_context(|| format!("iperf3 failed: {}", report["error"]))
}

/// Runs `f` on a thread inside `ns`.
fn on_thread_in<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<T>>> {
    let file = std::fs::File::open(format!("/run/netns/{ns}"))?;
    Ok(std::thread::spawn(move || {
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
        f()
    }))
}

/// 1-byte TCP ping-pong from `client` to `server_ip` in `server`: (p50, p99) microseconds.
fn round_trips(
    server: &str,
    client: &str,
    server_ip: Ipv4Addr,
    n: usize,
) -> anyhow::Result<(f64, f64)> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let echo = on_thread_in(server, move || {
        let listener = TcpListener::bind((server_ip, 5298))?;
        ready_tx.send(()).ok();
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut b = [0u8; 1];
        while s.read_exact(&mut b).is_ok() {
            s.write_all(&b)?;
        }
        Ok(())
    })?;
    ready_rx.recv_timeout(Duration::from_secs(5))?;
    let pinger = on_thread_in(client, move || {
        let mut s = TcpStream::connect((server_ip, 5298))?;
        s.set_nodelay(true)?;
        let mut b = [7u8; 1];
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            s.write_all(&b)?;
            s.read_exact(&mut b)?;
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        samples.sort_by(f64::total_cmp);
        Ok((samples[n / 2], samples[n * 99 / 100]))
    })?;
    let result = pinger
        .join()
        .map_err(|_| anyhow::anyhow!("pinger panicked"))??;
    let _ = echo.join();
    Ok(result)
}

/// The service proxy on both nodes (socket programs on a cgroup of the run, tc on eth0 and
/// skiff.1), serving a ClusterIP and a NodePort in front of pod 1's iperf3; the datapaths and
/// the cgroup, removed on drop.
struct Proxies {
    pins: Vec<std::path::PathBuf>,
    cgroups: Vec<std::path::PathBuf>,
    bpffs: std::path::PathBuf,
    _datapaths: Vec<skiff_netd::proxy::datapath::Datapath>,
}

impl Drop for Proxies {
    fn drop(&mut self) {
        for pin in &self.pins {
            let _ = skiff_netd::proxy::datapath::remove(pin);
        }
        let _ = Command::new("umount").arg(&self.bpffs).output();
        for cgroup in self.cgroups.iter().rev() {
            let _ = std::fs::remove_dir(cgroup);
        }
    }
}

const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 100);
const NODE_PORT: u16 = 30299;

fn proxies(lab: &Lab, backend: Ipv4Addr) -> anyhow::Result<Proxies> {
    use skiff_netd::proxy::{datapath, maps, model::Frontend};
    let bpffs = lab.dir.path().join("bpf");
    std::fs::create_dir_all(&bpffs)?;
    let out = Command::new("mount")
        .args(["-t", "bpf", "bpf"])
        .arg(&bpffs)
        .output()?;
    anyhow::ensure!(out.status.success(), "mounting a bpffs for the run");
    let root = datapath::cgroup2_dir(&format!("/{}", lab.prefix))?;
    let mut proxies = Proxies {
        pins: Vec::new(),
        cgroups: vec![root.clone()],
        bpffs: bpffs.clone(),
        _datapaths: Vec::new(),
    };
    let frontend = |address, port, flags| Frontend {
        service: "bench/iperf".into(),
        address,
        port,
        proto: maps::IPPROTO_TCP,
        scope: maps::SCOPE_ALL,
        flags,
        backends: vec![(backend, 5299)],
        affinity_timeout: 0,
    };
    let frontends = vec![
        frontend(CLUSTER_IP, 5299, 0),
        frontend(
            Ipv4Addr::UNSPECIFIED,
            NODE_PORT,
            maps::F_EXTERNAL | maps::F_NODEPORT,
        ),
    ];
    for i in 0..2 {
        let pin = bpffs.join(format!("n{i}"));
        let cgroup = root.join(format!("n{i}"));
        proxies.pins.push(pin.clone());
        proxies.cgroups.push(cgroup.clone());
        let node = lab.ns(&format!("n{i}"));
        let path = std::path::PathBuf::from(format!("/run/netns/{node}"));
        let mac = skiff_netd::netlink::in_netns(&path, |h| async move {
            skiff_netd::netlink::link(&h, "eth0")
                .await?
                .as_ref()
                .and_then(skiff_netd::netlink::mac_of)
                .context("eth0's MAC")
        })?;
        let setup = datapath::TcSetup {
            iface: "eth0".into(),
            overlay: Some(overlay::device_name()),
            config: maps::Lb4Config {
                node_ip: maps::addr(node_ip(i)),
                snat_ip: maps::addr(pod_cidr(i).network()),
                pod_net: maps::addr(pod_cidr(i).network()),
                pod_mask: maps::addr(pod_cidr(i).mask()),
                nat_port_min: 61000,
                nat_port_max: 65000,
                mac,
                ..Default::default()
            },
        };
        let frontends = frontends.clone();
        let datapath = on_thread_in(&node, move || {
            let mut dp = datapath::Datapath::load(&pin, &cgroup, Some(&setup))?;
            dp.set_node_addrs(&[node_ip(0), node_ip(1)].into())?;
            dp.apply(&frontends)?;
            Ok(dp)
        })?
        .join()
        .map_err(|_| anyhow::anyhow!("loading the datapath panicked"))??;
        proxies._datapaths.push(datapath);
    }
    Ok(proxies)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut lab = Lab {
        prefix: format!("sknb{}", std::process::id()),
        created: Vec::new(),
        dir: tempfile::tempdir()?,
    };
    let (pods, vteps) = build(&mut lab)?;
    let (n0, n1, p0, p1) = (lab.ns("n0"), lab.ns("n1"), lab.ns("p0"), lab.ns("p1"));
    println!(
        "skiff netd bench: pod {} on n0 → pod {} on n1 over skiff.1 (MTU {}), against n0 → n1 ({}), iperf3 {} s, median of {}",
        pods[0],
        pods[1],
        1500 - overlay::OVERHEAD,
        node_ip(1),
        args.seconds,
        args.runs
    );
    for (mode, direct) in [("VXLAN (default)", false), ("direct routing", true)] {
        program_peers(&lab, &vteps, direct)?;
        println!(
            "\n{:<34} {:>12} {:>12} {:>8}",
            format!("pod→pod via {mode}"),
            "node→node",
            "pod→pod",
            "ratio"
        );
        for streams in [1, 4] {
            let mut nodes = Vec::new();
            let mut pod = Vec::new();
            for _ in 0..args.runs.max(1) {
                nodes.push(iperf(&n1, &n0, node_ip(1), streams, args.seconds)?);
                pod.push(iperf(&p1, &p0, pods[1], streams, args.seconds)?);
            }
            let (nodes, pod) = (median(nodes), median(pod));
            println!(
                "{:<34} {:>10.2} G {:>10.2} G {:>7.2}×",
                format!("iperf3 TCP, {streams} stream(s)"),
                nodes,
                pod,
                pod / nodes
            );
        }
        let (node_p50, node_p99) = round_trips(&n1, &n0, node_ip(1), args.round_trips)?;
        let (pod_p50, pod_p99) = round_trips(&p1, &p0, pods[1], args.round_trips)?;
        println!(
            "{:<34} {:>9.1} µs {:>9.1} µs {:>7.2}×",
            "TCP round trip p50",
            node_p50,
            pod_p50,
            pod_p50 / node_p50
        );
        println!(
            "{:<34} {:>9.1} µs {:>9.1} µs {:>7.2}×",
            "TCP round trip p99",
            node_p99,
            pod_p99,
            pod_p99 / node_p99
        );
    }

    // The service proxy: a ClusterIP from pod 0 (socket programs, no per-packet work) and a
    // NodePort from outside (tc), each against the backend's pod IP from the same place.
    program_peers(&lab, &vteps, false)?;
    let proxy = proxies(&lab, pods[1])?;
    let switch = lab.ns("sw");
    ip(&[
        "-n",
        &switch,
        "addr",
        "add",
        "192.168.57.1/24",
        "dev",
        "br0",
    ])?;
    let cgroup0 = proxy.cgroups[1].clone();
    println!(
        "\n{:<34} {:>12} {:>12} {:>8}",
        "service proxy, 1 stream", "pod IP", "service", "ratio"
    );
    // (what, client, its cgroup, service address and port, the node the direct path goes via)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a std::path::Path>,
        Ipv4Addr,
        u16,
        usize,
    );
    let cases: [Case; 3] = [
        (
            "ClusterIP from pod 0 (socket LB)",
            &p0,
            Some(cgroup0.as_path()),
            CLUSTER_IP,
            5299,
            1,
        ),
        (
            "NodePort on n1, backend local",
            &switch,
            None,
            node_ip(1),
            NODE_PORT,
            1,
        ),
        (
            "NodePort on n0, backend on n1",
            &switch,
            None,
            node_ip(0),
            NODE_PORT,
            0,
        ),
    ];
    for (name, client, cgroup, address, port, via) in cases {
        // Outside → pod IP through the same node the NodePort is on (n0 forwards over VXLAN).
        ip(&[
            "-n",
            &switch,
            "route",
            "replace",
            &pod_cidr(1).to_string(),
            "via",
            &node_ip(via).to_string(),
        ])?;
        let mut direct = Vec::new();
        let mut service = Vec::new();
        for _ in 0..args.runs.max(1) {
            direct.push(iperf_to(
                &p1,
                client,
                cgroup,
                pods[1],
                5299,
                1,
                args.seconds,
            )?);
            service.push(iperf_to(
                &p1,
                client,
                cgroup,
                address,
                port,
                1,
                args.seconds,
            )?);
        }
        let (direct, service) = (median(direct), median(service));
        println!(
            "{name:<34} {direct:>10.2} G {service:>10.2} G {:>7.2}×",
            service / direct
        );
    }
    drop(proxy);
    Ok(())
}
