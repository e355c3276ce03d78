//! `skiff server`: the control plane in one process (k3s-style) — the store, the API server on
//! top of it (through the etcd v3 API on loopback, as with a separate etcd), the scheduler and
//! the controllers.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::oneshot;

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// State directory: `store/` (the store's data), `tls/` (also the service-account signing
    /// key `sa.key`), `tokens.csv`, `admin.kubeconfig`.
    #[arg(long, default_value = "/var/lib/skiff/server")]
    pub data_dir: PathBuf,
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: String,
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    pub advertise_address: String,
    /// Where the embedded store serves the etcd v3 API: comma-separated `http://IP:PORT` and
    /// `unix://PATH` URLs (a second server on one machine needs another port). The store also
    /// listens on `<data-dir>/store.sock` unless a `unix://` URL is given; the API server
    /// reaches the store through the socket.
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    pub store_listen_url: String,
    /// Use this etcd cluster instead of the embedded store.
    #[arg(long)]
    pub etcd_servers: Option<String>,
    #[command(flatten)]
    pub etcd_tls: skiff_apiserver::storage::EtcdTlsArgs,
    #[arg(long = "tls-san")]
    pub tls_sans: Vec<String>,
    /// Authorizers in order (upstream's flag): `Node`, `RBAC`, or `AlwaysAllow` (no checks).
    #[arg(long, default_value = "Node,RBAC")]
    pub authorization_mode: String,
    /// An AdmissionConfiguration file (upstream's flag): Pod Security defaults and exemptions.
    #[arg(long)]
    pub admission_control_config_file: Option<PathBuf>,
    /// Run no scheduler (another one, e.g. upstream's kube-scheduler, binds the pods).
    #[arg(long)]
    pub disable_scheduler: bool,
    /// Run no controller manager (another one, e.g. `skiff controllers` or upstream's
    /// kube-controller-manager, reconciles).
    #[arg(long)]
    pub disable_controllers: bool,
    #[command(flatten)]
    pub service_accounts: skiff_apiserver::server::ServiceAccountArgs,
    /// Admission plugins to turn off (upstream's names, comma-separated; `ServiceAccount`,
    /// `LimitRanger` and `PodSecurity` can be).
    #[arg(long, value_delimiter = ',')]
    pub disable_admission_plugins: Vec<String>,
    #[command(flatten)]
    pub controllers: skiff_controllers::Options,
    /// The controller manager's HTTPS port for `/healthz` and `/metrics` (`skiff controllers
    /// --secure-port`, upstream's 10257); 0 serves nothing. Two servers on one network
    /// namespace need different ports (the tests give 0 or a free one).
    #[arg(long, default_value_t = 10257)]
    pub controllers_secure_port: u16,
    /// The address the controller manager listens on. Loopback, as k3s binds its controller
    /// manager: the health checks of a control-plane node are local, and `--bind-address`
    /// (the API server's, 0.0.0.0) is no guide here. 0.0.0.0 lets an in-cluster Prometheus
    /// scrape it (requests are authenticated either way).
    #[arg(long, default_value = "127.0.0.1")]
    pub controllers_bind_address: std::net::IpAddr,
    /// Where the scheduler serves `/metrics` and `/healthz` (plain HTTP); empty: nowhere.
    #[arg(long, default_value = "")]
    pub scheduler_metrics_address: String,
    #[command(flatten)]
    pub audit: skiff_apiserver::audit::AuditOptions,
    #[command(flatten)]
    pub kubelet: skiff_apiserver::kubelet_proxy::KubeletClientArgs,
    #[command(flatten)]
    pub aggregator: skiff_apiserver::aggregator::front_proxy::AggregatorArgs,
    /// How often the store's history is compacted (kube-apiserver's flag and default; 0 turns
    /// it off).
    #[arg(
        long = "etcd-compaction-interval",
        default_value = "5m",
        value_parser = skiff_apiserver::server::parse_go_duration
    )]
    pub etcd_compaction_interval: Duration,
    /// API Priority and Fairness and the in-flight limits (kube-apiserver's flags).
    #[command(flatten)]
    pub flow_control: skiff_apiserver::server::FlowControlArgs,
    #[command(flatten)]
    pub snapshots: crate::backup::ScheduleArgs,
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    // A bad audit policy stops the server before the store starts.
    args.audit.load_policy()?;
    // The embedded store stops last, on our word: the controllers still write (their Lease
    // release) after the signal.
    let mut store = None;
    let etcd_servers = match &args.etcd_servers {
        Some(servers) => servers.clone(),
        None => {
            // The API server reaches its embedded store through a Unix socket in the data dir
            // (unless one is given): 17-37% more round trips per second than loopback TCP for
            // one client (etcd's benchmark, serializable range; docs/benchmarks.md). The TCP
            // URL stays for etcdctl and other clients.
            let mut listen = args.store_listen_url.clone();
            let socket = args.data_dir.join("store.sock");
            if !listen.contains("unix://") && socket.as_os_str().len() < 100 {
                listen.push_str(&format!(",unix://{}", socket.display()));
            }
            let store_args =
                skiff_store::server::StoreArgs::for_embedded(args.data_dir.join("store"), &listen);
            let (stop, stopped) = oneshot::channel::<()>();
            let task = tokio::spawn(async move {
                let until = async move {
                    let _ = stopped.await;
                };
                if let Err(e) = skiff_store::server::run_until(store_args, until).await {
                    eprintln!("skiff server: the store stopped: {e:#}");
                    std::process::exit(1);
                }
            });
            store = Some((stop, task));
            // A Unix socket among the store's URLs is the API server's way in (no TCP stack).
            listen
                .split(',')
                .map(str::trim)
                .find(|u| u.starts_with("unix://"))
                .map_or_else(|| listen.clone(), str::to_string)
        }
    };
    let started = skiff_apiserver::start(skiff_apiserver::ApiServerArgs {
        etcd_servers,
        etcd_tls: args.etcd_tls.clone(),
        bind_address: args.bind_address.clone(),
        secure_port: args.secure_port,
        advertise_address: args.advertise_address.clone(),
        data_dir: args.data_dir.clone(),
        tls_sans: args.tls_sans.clone(),
        authorization_mode: args.authorization_mode.clone(),
        admission_control_config_file: args.admission_control_config_file.clone(),
        audit: args.audit.clone(),
        service_accounts: args.service_accounts.clone(),
        disable_admission_plugins: args.disable_admission_plugins.clone(),
        kubelet: args.kubelet.clone(),
        aggregator: args.aggregator.clone(),
        etcd_compaction_interval: args.etcd_compaction_interval,
        flow_control: args.flow_control.clone(),
    })
    .await?;
    tokio::spawn(crate::backup::schedule(
        started.server.storage.clone(),
        args.snapshots.interval,
        args.snapshots.retention,
        args.snapshots
            .dir
            .clone()
            .unwrap_or_else(|| args.data_dir.join("snapshots")),
    ));
    // The token controller signs legacy tokens with the API server's key.
    let mut controller_options = args.controllers.clone();
    if controller_options
        .service_account_private_key_file
        .is_none()
    {
        controller_options.service_account_private_key_file =
            Some(started.service_account_key_file.clone());
    }
    // On SIGTERM/ctrl-c the controllers and the scheduler stop and release their Leases (so a
    // standby takes over at once), then the store stops. Each acts with its own identity.
    let (stop, stopped) = oneshot::channel::<()>();
    let mut controllers = if args.disable_controllers {
        None
    } else {
        // The controller manager signs CSRs with the cluster CA (k3s and kubeadm do the same).
        let mut options = controller_options;
        if options.cluster_signing_cert_file.is_none() && options.cluster_signing_key_file.is_none()
        {
            let tls = args.data_dir.join("tls");
            options.cluster_signing_cert_file = Some(tls.join("ca.crt"));
            options.cluster_signing_key_file = Some(tls.join("ca.key"));
        }
        let serving = skiff_serving::SecureServing {
            bind_address: args.controllers_bind_address,
            port: args.controllers_secure_port,
            always_allow_paths: skiff_serving::ALWAYS_ALLOW_PATHS.map(String::from).to_vec(),
            port_flag: "--controllers-secure-port",
        };
        Some(
            skiff_controllers::start(
                &started.component_kubeconfig("controller-manager"),
                options,
                &serving,
                async move {
                    let _ = stopped.await;
                },
            )
            .await?,
        )
    };
    let (stop_scheduler, scheduler_stopped) = oneshot::channel::<()>();
    let mut scheduler = if args.disable_scheduler {
        None
    } else {
        let kubeconfig = started.component_kubeconfig("scheduler");
        let client = skiff_controllers::client_from_kubeconfig(&kubeconfig).await?;
        let metrics = std::sync::Arc::new(skiff_scheduler::metrics::Metrics::default());
        if !args.scheduler_metrics_address.is_empty() {
            let addr = args
                .scheduler_metrics_address
                .parse()
                .context("--scheduler-metrics-address")?;
            crate::scheduler::serve_metrics(addr, metrics.clone()).await?;
        }
        Some(tokio::spawn(skiff_scheduler::run_leader_elected(
            client,
            metrics,
            async move {
                let _ = scheduler_stopped.await;
            },
        )))
    };
    println!(
        "skiff server ready: https://{} kubeconfig={}",
        started.addr,
        started.kubeconfig.display()
    );
    tokio::select! {
        _ = skiff_apiserver::server::wait_for_signal() => {}
        r = join_optional(&mut controllers) => return r.context("controllers")?,
        r = join_optional(&mut scheduler) => return r.context("scheduler")?,
    }
    // Clients of the `kubernetes` Service stop being sent here before anything else stops.
    started.remove_endpoint().await;
    let _ = stop.send(());
    let _ = stop_scheduler.send(());
    if let Some(task) = controllers {
        match tokio::time::timeout(STOP_TIMEOUT, task).await {
            Ok(Ok(Err(e))) => tracing::warn!("controllers: {e:#}"),
            Ok(_) => {}
            Err(_) => tracing::warn!("the controllers did not stop in time"),
        }
    }
    if let Some(task) = scheduler {
        match tokio::time::timeout(STOP_TIMEOUT, task).await {
            Ok(Ok(Err(e))) => tracing::warn!("scheduler: {e:#}"),
            Ok(_) => {}
            Err(_) => tracing::warn!("the scheduler did not stop in time"),
        }
    }
    // The components' last requests are in the audit log before the process ends.
    started.server.audit.flush(STOP_TIMEOUT).await;
    if let Some((stop, task)) = store {
        let _ = stop.send(());
        let _ = tokio::time::timeout(STOP_TIMEOUT, task).await;
    }
    Ok(())
}

/// How long each component gets to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Waits for a task that may not exist (then forever).
async fn join_optional(
    task: &mut Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
) -> Result<anyhow::Result<()>, tokio::task::JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}
