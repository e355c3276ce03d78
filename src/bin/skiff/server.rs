//! `skiff server`: the control plane in one process (k3s-style) — the store, the API server on
//! top of it (through the etcd v3 API on loopback, as with a separate etcd), the scheduler and
//! the controllers.

use std::path::PathBuf;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// State directory: `store/` (the store's data), `tls/`, `tokens.csv`, `admin.kubeconfig`.
    #[arg(long, default_value = "/var/lib/skiff/server")]
    pub data_dir: PathBuf,
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: String,
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    pub advertise_address: String,
    /// Where the embedded store serves the etcd v3 API.
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    pub store_listen_url: String,
    /// Use this etcd cluster instead of the embedded store.
    #[arg(long)]
    pub etcd_servers: Option<String>,
    #[arg(long = "tls-san")]
    pub tls_sans: Vec<String>,
    /// Run no scheduler (another one, e.g. upstream's kube-scheduler, binds the pods).
    #[arg(long)]
    pub disable_scheduler: bool,
    /// Where the scheduler serves `/metrics` and `/healthz` (plain HTTP); empty: nowhere.
    #[arg(long, default_value = "")]
    pub scheduler_metrics_address: String,
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let etcd_servers = match &args.etcd_servers {
        Some(servers) => servers.clone(),
        None => {
            let store_args = skiff_store::server::StoreArgs::for_embedded(
                args.data_dir.join("store"),
                &args.store_listen_url,
            );
            tokio::spawn(async move {
                if let Err(e) = skiff_store::server::run(store_args).await {
                    eprintln!("skiff server: the store stopped: {e:#}");
                    std::process::exit(1);
                }
            });
            args.store_listen_url.clone()
        }
    };
    let started = skiff_apiserver::start(skiff_apiserver::ApiServerArgs {
        etcd_servers,
        bind_address: args.bind_address.clone(),
        secure_port: args.secure_port,
        advertise_address: args.advertise_address.clone(),
        data_dir: args.data_dir.clone(),
        tls_sans: args.tls_sans.clone(),
    })
    .await?;
    let controllers = skiff_controllers::start(&started.kubeconfig).await?;
    let scheduler = if args.disable_scheduler {
        None
    } else {
        // The scheduler acts as system:kube-scheduler, not as the admin.
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
        Some(tokio::spawn(skiff_scheduler::run(client, metrics)))
    };
    println!(
        "skiff server ready: https://{} kubeconfig={}",
        started.addr,
        started.kubeconfig.display()
    );
    let scheduler = async {
        match scheduler {
            Some(task) => task.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = skiff_apiserver::server::wait_for_signal() => {}
        r = controllers => r.context("controllers")??,
        r = scheduler => r.context("scheduler")??,
    }
    Ok(())
}
