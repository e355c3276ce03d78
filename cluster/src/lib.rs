//! The local cluster (`skiff up`, `skiff down`, `skiff status`, `skiff load`): kind's and
//! k3d's job without Docker — every node a network namespace on this machine, laid out like
//! the Vagrant cluster (DESIGN.md), running the same `skiff server` and `skiff kubelet` a VM
//! runs.
//!
//! ```text
//!  machine's namespace: only 127.0.0.1:6443 → skiff forward → control plane's :6443
//!  <name>-host (192.168.56.1, bridge br0) ── veth ── <name>-control-plane (.10): server + kubelet + netd
//!                                          ├─ veth ── <name>-worker (.11): kubelet + netd
//!                                          └─ veth ── <name>-worker2 (.12): kubelet + netd
//! ```
//!
//! Pods get their ranges from the controllers' node IPAM and their network from `skiff netd`
//! (skiff-cni, the VXLAN overlay `skiff.1` between nodes, egress NAT, the eBPF service proxy
//! for ClusterIPs); the cluster DNS runs as the kube-system Deployment `skiff-dns` behind
//! `kube-dns` (10.96.0.10), see [`addons`].

pub mod addons;
pub mod etcd;
pub mod forward;
pub mod metrics_server;
pub mod network;
pub mod serving;
pub mod state;
pub mod topology;
pub mod up;

use std::path::PathBuf;

pub use topology::Topology;

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The cluster's name (prefix of its namespaces).
    #[arg(long, default_value = "skiff")]
    pub name: String,
    /// Nodes in all.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// How many of them are control planes.
    #[arg(long = "control-planes", default_value_t = 1)]
    pub control_planes: usize,
    /// The node network.
    #[arg(long = "node-cidr", default_value = "192.168.56.0/24")]
    pub node_cidr: String,
    /// Where to write the admin kubeconfig (default /var/lib/skiff/<name>/admin.kubeconfig).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Image archives (OCI layout or docker save) loaded into every node before pods start.
    #[arg(long = "load")]
    pub load: Vec<PathBuf>,
    /// Leave whatever was made in place when a step fails (for debugging).
    #[arg(long = "keep-on-failure")]
    pub keep_on_failure: bool,
    /// `HOSTPORT:NODEPORT`: 127.0.0.1:HOSTPORT on this machine forwards to that NodePort on
    /// the nodes (k3d's `-p`); repeatable.
    #[arg(long = "publish", value_parser = parse_publish)]
    pub publish: Vec<(u16, u16)>,
    /// The nodes' resolv.conf (k3s's `--resolv-conf`, handed to every kubelet): pods with
    /// dnsPolicy Default get it, the cluster DNS among them, which forwards names outside the
    /// cluster to its nameservers. Default: this machine's /etc/resolv.conf.
    #[arg(long = "resolv-conf")]
    pub resolv_conf: Option<PathBuf>,
    /// Start the control plane's store from a backup (`skiff backup create`, or `etcdctl
    /// snapshot save` of any etcd): every object with its resourceVersion, and the cluster's
    /// keys, so kubeconfigs and tokens issued before keep working. With `--control-planes 3`
    /// every etcd member is made from it (`etcdctl snapshot restore`). Checked before anything
    /// is made.
    #[arg(long)]
    pub restore: Option<PathBuf>,
    /// Install the metrics-server addon (`kubectl top`, the Metrics API behind the aggregation
    /// layer), as upstream's components.yaml. Off by default: it is a pod and a scrape of
    /// every kubelet every 15 s that most clusters here (the tests among them) never use.
    #[arg(long = "metrics-server")]
    pub metrics_server: bool,
}

/// `8080:30080` → (8080, 30080).
fn parse_publish(text: &str) -> Result<(u16, u16), String> {
    let (host, node) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected HOSTPORT:NODEPORT, e.g. 8080:30080"))?;
    let port = |p: &str, what: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("{text:?}: {what} {p:?} is not a port number"))
    };
    Ok((port(host, "HOSTPORT")?, port(node, "NODEPORT")?))
}

#[derive(Debug, clap::Args)]
pub struct NameArgs {
    #[arg(long, default_value = "skiff")]
    pub name: String,
}

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    #[arg(long, default_value = "skiff")]
    pub name: String,
    /// OCI-layout or docker-archive tars.
    #[arg(required = true)]
    pub archives: Vec<PathBuf>,
}

/// `skiff load`: the archives into every node's image store (kind's `load`).
pub fn load(args: LoadArgs) -> anyhow::Result<()> {
    let recorded = state::Recorded::read(&args.name)?;
    for node in &recorded.topology.nodes {
        let store = skiff_image::Store::open(recorded.topology.node_dir(node).join("images"))?;
        for archive in &args.archives {
            for info in skiff_image::archive::import(&store, archive, None)? {
                println!("{}: {}", node.name, info.name);
            }
        }
    }
    Ok(())
}

/// `skiff status`: components and their processes.
pub fn status(args: NameArgs) -> anyhow::Result<()> {
    let recorded = state::Recorded::read(&args.name)?;
    println!(
        "cluster {} (state {})",
        args.name,
        recorded.topology.state_dir().display()
    );
    println!("{:<32} {:<10} {:<8} LOG", "COMPONENT", "PID", "STATE");
    for p in &recorded.processes {
        let alive = state::alive(p.pid);
        println!(
            "{:<32} {:<10} {:<8} {}",
            p.component,
            p.pid,
            if alive { "running" } else { "stopped" },
            p.log.display()
        );
    }
    if etcd::control_planes(&recorded.topology).count() > 1 {
        // Leaders first (through the API, from this namespace), then the etcd members (from
        // a control plane's namespace, which this thread enters for good).
        if let Err(e) = print_leaders(&recorded.kubeconfig) {
            println!("leaders: {e:#}");
        }
        if let Err(e) = etcd::print_members(&recorded.topology) {
            println!("etcd: {e:#}");
        }
    }
    println!("export KUBECONFIG={}", recorded.kubeconfig.display());
    Ok(())
}

/// Who holds the scheduler's and the controller manager's Leases.
fn print_leaders(kubeconfig: &std::path::Path) -> anyhow::Result<()> {
    use k8s_openapi::api::coordination::v1::Lease;
    up::with_admin(kubeconfig, |client| async move {
        let leases: kube::Api<Lease> = kube::Api::namespaced(client, "kube-system");
        println!("{:<32} LEADER", "LEASE");
        for name in ["kube-scheduler", "kube-controller-manager"] {
            let holder = leases
                .get_opt(name)
                .await?
                .and_then(|l| l.spec?.holder_identity)
                .unwrap_or_else(|| "-".into());
            // `<hostname>_<uuid>`: the control plane's name.
            let node = holder.rsplit_once('_').map_or(holder.as_str(), |(h, _)| h);
            println!("{name:<32} {node}");
        }
        anyhow::Ok(())
    })
}

/// `skiff down`: everything `up` made, by name and pid.
pub fn down(args: NameArgs) -> anyhow::Result<()> {
    match state::Recorded::read(&args.name) {
        Ok(recorded) => {
            up::teardown(&recorded);
            println!("cluster {} removed", args.name);
            Ok(())
        }
        Err(e) => Err(e.context(format!("no cluster named {:?} is up", args.name))),
    }
}
