//! `skiff scheduler`: the scheduler alone, against any API server, leader-elected (several may
//! run, one schedules), with its metrics and health endpoints (upstream's kube-scheduler serves
//! them on port 10259).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use skiff_scheduler::metrics::Metrics;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SchedulerCommand {
    #[command(subcommand)]
    pub action: Option<SchedulerAction>,
    #[command(flatten)]
    pub serve: SchedulerArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum SchedulerAction {
    /// Hollow nodes and pending pods through a real API server: pods/s, latency, CPU, memory.
    Bench(crate::bench_scheduler::BenchArgs),
}

#[derive(Debug, clap::Args)]
pub struct SchedulerArgs {
    /// The API server to schedule for, and the credentials to use.
    #[arg(long, required = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Where `/metrics` and `/healthz` are served (plain HTTP); empty: nowhere.
    #[arg(long, default_value = "127.0.0.1:10259")]
    pub metrics_address: String,
}

pub async fn run(command: SchedulerCommand) -> anyhow::Result<()> {
    let args = match command.action {
        Some(SchedulerAction::Bench(bench)) => return crate::bench_scheduler::run(bench).await,
        None => command.serve,
    };
    let kubeconfig = args.kubeconfig.context("--kubeconfig is required")?;
    let client = skiff_controllers::client_from_kubeconfig(&kubeconfig).await?;
    let metrics = Arc::new(Metrics::default());
    if !args.metrics_address.is_empty() {
        let addr: SocketAddr = args
            .metrics_address
            .parse()
            .with_context(|| format!("--metrics-address {}", args.metrics_address))?;
        serve_metrics(addr, metrics.clone()).await?;
    }
    skiff_scheduler::run_leader_elected(client, metrics, skiff_apiserver::server::wait_for_signal())
        .await
}

/// Serves `/metrics` and `/healthz` on `addr` in the background.
pub async fn serve_metrics(addr: SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { metrics.render() }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr} for metrics"))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("scheduler metrics: {e}");
        }
    });
    Ok(())
}
