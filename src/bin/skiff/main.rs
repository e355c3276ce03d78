//! `skiff`: the multi-call binary for skiff's daemons and tools (k3s-style).

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "skiff",
    version,
    about = "skiff: a Kubernetes-compatible cluster built from scratch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The etcd-compatible store (etcd v3 gRPC API).
    Store(skiff_store::cli::StoreCommand),
    /// The Kubernetes API server alone (storage through --etcd-servers); `bench` loads one.
    Apiserver(Box<ApiserverCommand>),
    /// The image service: pull, list, inspect, rm, gc, import, export, bundle.
    Image(skiff_image::cli::ImageCommand),
    /// The control plane in one process: store + API server + scheduler + controllers.
    Server(Box<server::ServerArgs>),
    /// The scheduler alone: binds pending pods to nodes; `bench` measures it.
    Scheduler(scheduler::SchedulerCommand),
    /// The controller manager alone (ReplicaSet, Deployment, garbage collector, …); `bench`
    /// measures it.
    Controllers(controllers::ControllersCommand),
    /// The node agent: registers the Node and runs the pods bound to it; `bench` measures pod
    /// startup.
    Kubelet(Box<KubeletCommand>),
    /// The cluster DNS addon (CoreDNS's role): answers cluster.local from the API, forwards the
    /// rest; `bench` measures it with dnsperf.
    Dns(Box<DnsCommand>),
    /// The Metrics API (metrics.k8s.io/v1beta1, metrics-server's role): scrapes the kubelets'
    /// /metrics/resource for `kubectl top` and the HorizontalPodAutoscaler.
    MetricsServer(Box<skiff_metrics_server::MetricsServerArgs>),
    /// A multi-node cluster of network-namespace nodes on this machine, in one command.
    Up(skiff_cluster::UpArgs),
    /// Remove everything `skiff up` made.
    Down(skiff_cluster::NameArgs),
    /// `skiff backup create`: a snapshot of the cluster's store in etcd's format (objects,
    /// revisions, the cluster's keys); `skiff up --restore FILE` brings a cluster back from it.
    Backup(backup::BackupCommand),
    /// The local cluster's components and their processes.
    Status(skiff_cluster::NameArgs),
    /// Failover of `skiff up --control-planes 3` (a killed API server, a killed etcd leader)
    /// against upstream's lease and etcd's election, and its write throughput against the
    /// embedded store; brings up and removes clusters of its own.
    BenchFailover(bench_failover::BenchArgs),
    /// Put image archives into every node of the local cluster.
    Load(skiff_cluster::LoadArgs),
    /// The loopback forward to a node's namespace, started by `skiff up` (not for people).
    #[command(hide = true)]
    Forward(skiff_cluster::forward::ForwardArgs),
    /// Credentials: `skiff token create|list|delete` for bootstrap tokens (as `kubeadm token`),
    /// `skiff token node NAME` for a node's own static kubeconfig.
    Token(token::TokenCommand),
    /// The node's pod network (flannel's role): VXLAN overlay, egress NAT, the `skiff-cni`
    /// plugin's configuration.
    Netd(Box<NetdCommand>),
    /// A container's monitor, started by the kubelet (not for people).
    #[command(hide = true)]
    Shim(skiff_kubelet::shim::ShimArgs),
}

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's C API (linked through the `mimalloc` crate), for the two settings below.
extern "C" {
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc v2's `mi_option_e` (libmimalloc-sys 0.1.49,
/// c_src/mimalloc/v2/include/mimalloc.h); its default is 10 (ms).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// `skiff dns` is a long-lived pod whose memory is what its users compare with CoreDNS's.
/// Measured with 10,000 services (docs/benchmarks.md): transparent huge pages (mimalloc asks
/// for them on its arenas) held ~10 MiB of mostly empty 2 MiB pages, and mimalloc's delayed
/// purge kept the sync's transient allocations (the list of full objects) resident until the
/// thread allocated again — an idle addon never does. With both, the RSS right after the sync
/// went from 86–88 MiB to 71 MiB in the bench run of 2026-12-04 (42 MiB anonymous; the rest is
/// the binary's pages); throughput did not change measurably.
fn dns_memory_settings() {
    // SAFETY: prctl(PR_SET_THP_DISABLE) takes integer arguments and only sets a flag of this
    // process; mi_option_get/set read and write one of mimalloc's option slots, the index
    // checked against its documented default first.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        if mi_option_get(MI_OPTION_PURGE_DELAY) == 10 {
            mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

mod backup;
mod bench;
mod bench_apf;
mod bench_apiserver;
mod bench_authz;
mod bench_controllers;
mod bench_crd;
mod bench_dns;
mod bench_failover;
mod bench_kubelet;
mod bench_netd;
mod bench_proxy;
mod bench_scheduler;
mod controllers;
mod discover;
mod scheduler;
mod server;
mod token;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
struct ApiserverCommand {
    #[command(subcommand)]
    action: Option<ApiserverAction>,
    #[command(flatten)]
    serve: skiff_apiserver::ApiServerArgs,
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct KubeletCommand {
    #[command(subcommand)]
    action: Option<KubeletAction>,
    #[command(flatten)]
    serve: Option<skiff_kubelet::KubeletArgs>,
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct DnsCommand {
    #[command(subcommand)]
    action: Option<DnsAction>,
    #[command(flatten)]
    serve: Option<skiff_dns::DnsArgs>,
}

#[derive(Subcommand)]
enum DnsAction {
    /// dnsperf against `skiff dns` with 10,000 services (and CoreDNS beside it when installed):
    /// qps, latency, qps per server CPU-second, memory.
    Bench(bench_dns::BenchArgs),
}

#[derive(Subcommand)]
enum KubeletAction {
    /// Pod startup latency on a one-node `skiff up` cluster (paced and burst), and the
    /// kubelet's memory.
    Bench(bench_kubelet::BenchArgs),
}

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct NetdCommand {
    #[command(subcommand)]
    action: Option<NetdAction>,
    #[command(flatten)]
    serve: Option<skiff_netd::agent::NetdArgs>,
}

#[derive(Subcommand)]
enum NetdAction {
    /// iperf3 and TCP round trips pod↔pod across the overlay against node↔node, side by side.
    Bench(bench_netd::BenchArgs),
    /// The service proxy's programming time and connect latency against kube-proxy's
    /// iptables and nftables rules, side by side.
    BenchProxy(bench_proxy::BenchArgs),
}

#[derive(Subcommand)]
enum ApiserverAction {
    /// Create, list and update 10,000 pods with 1,000 watchers; print rates, latencies, memory.
    Bench(bench_apiserver::BenchArgs),
    /// The cost of authorization: one load with checks off and with RBAC (1,000 roles and
    /// bindings), as a non-admin user; prints the throughput ratio.
    BenchAuthz(bench_authz::BenchArgs),
    /// What custom resources cost: 10,000 objects of a CRD created and watched, beside as many
    /// ConfigMaps; prints both and the ratio.
    BenchCrd(bench_crd::BenchArgs),
    /// API Priority and Fairness: one user's latency alone and under another user's flood of
    /// lists, on skiff with and without it and on kube-apiserver; prints the ratios.
    BenchApf(bench_apf::BenchArgs),
}

/// SIGTERM or ctrl-c.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn main() -> anyhow::Result<()> {
    // Called as `skiff-cni` (a link in the CNI bin dir): the CNI plugin, whose stdout is the
    // protocol, so before anything else prints.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if std::path::Path::new(&argv0).file_name()
        == Some(std::ffi::OsStr::new(skiff_netd::cni::PLUGIN_TYPE))
    {
        std::process::exit(skiff_netd::cni::main());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Store(cmd) => skiff_store::cli::main(cmd),
        Command::Apiserver(cmd) => {
            let runtime = tokio::runtime::Runtime::new()?;
            match cmd.action {
                None => runtime.block_on(skiff_apiserver::run(cmd.serve)),
                Some(ApiserverAction::Bench(args)) => runtime.block_on(bench_apiserver::run(args)),
                Some(ApiserverAction::BenchAuthz(args)) => runtime.block_on(bench_authz::run(args)),
                Some(ApiserverAction::BenchCrd(args)) => runtime.block_on(bench_crd::run(args)),
                Some(ApiserverAction::BenchApf(args)) => runtime.block_on(bench_apf::run(args)),
            }
        }
        Command::Image(cmd) => skiff_image::cli::main(cmd),
        Command::Server(args) => tokio::runtime::Runtime::new()?.block_on(server::run(*args)),
        Command::Scheduler(args) => tokio::runtime::Runtime::new()?.block_on(scheduler::run(args)),
        Command::Controllers(args) => {
            tokio::runtime::Runtime::new()?.block_on(controllers::run(args))
        }
        // Single-threaded and before any runtime: the shim forks.
        Command::Shim(args) => skiff_kubelet::shim::main(args),
        Command::Token(cmd) => token::run(cmd),
        Command::Netd(cmd) => match (cmd.action, cmd.serve) {
            (Some(NetdAction::Bench(args)), _) => bench_netd::run(args),
            (Some(NetdAction::BenchProxy(args)), _) => bench_proxy::run(args),
            (None, Some(args)) => {
                tokio::runtime::Runtime::new()?.block_on(skiff_netd::agent::run(args))
            }
            (None, None) => anyhow::bail!("skiff netd needs --kubeconfig and --node-name"),
        },
        Command::MetricsServer(args) => {
            tokio::runtime::Runtime::new()?.block_on(skiff_metrics_server::run(*args))
        }
        Command::Up(args) => skiff_cluster::up::up(args),
        Command::Down(args) => skiff_cluster::down(args),
        Command::Backup(cmd) => backup::main(cmd),
        Command::Status(args) => skiff_cluster::status(args),
        Command::BenchFailover(args) => {
            tokio::runtime::Runtime::new()?.block_on(bench_failover::run(args))
        }
        Command::Load(args) => skiff_cluster::load(args),
        // Before any thread: it enters the node's network namespace.
        Command::Forward(args) => skiff_cluster::forward::main(args),
        Command::Dns(cmd) => {
            let runtime = tokio::runtime::Runtime::new()?;
            let cmd = *cmd;
            match (cmd.action, cmd.serve) {
                (Some(DnsAction::Bench(args)), _) => runtime.block_on(bench_dns::run(args)),
                (None, Some(args)) => {
                    dns_memory_settings();
                    runtime.block_on(skiff_dns::run(args))
                }
                (None, None) => anyhow::bail!("skiff dns needs --kubeconfig"),
            }
        }
        Command::Kubelet(cmd) => {
            let runtime = tokio::runtime::Runtime::new()?;
            let cmd = *cmd;
            match (cmd.action, cmd.serve) {
                (Some(KubeletAction::Bench(args)), _) => runtime.block_on(bench_kubelet::run(args)),
                (None, Some(args)) => runtime.block_on(skiff_kubelet::run(args, shutdown_signal())),
                (None, None) => {
                    anyhow::bail!("skiff kubelet needs --kubeconfig, --node-name and --node-ip")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    /// clap's own checks over every command (no two flags of one command share a name, …),
    /// which otherwise only a run of that command would hit.
    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from([
            "skiff",
            "server",
            "--kubelet-certificate-authority=/ca.crt",
            "--authorization-mode=Node,RBAC",
        ]);
        let Command::Server(args) = cli.command else {
            panic!("not skiff server");
        };
        assert_eq!(
            args.kubelet.kubelet_certificate_authority,
            Some(std::path::PathBuf::from("/ca.crt"))
        );
        let cli = Cli::parse_from([
            "skiff",
            "kubelet",
            "--kubeconfig=k",
            "--node-name=n",
            "--node-ip=10.0.0.1",
            "--client-ca-file=/ca.crt",
            "--rotate-server-certificates",
            "--authorization-mode=Webhook",
        ]);
        let Command::Kubelet(cmd) = cli.command else {
            panic!("not skiff kubelet");
        };
        let args = cmd.serve.expect("kubelet flags");
        assert!(args.rotate_server_certificates && !args.anonymous_auth);
    }
}
