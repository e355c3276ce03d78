//! `skiff controllers`: the controller manager alone (kube-controller-manager), against any API
//! server, leader-elected through the Lease `kube-system/kube-controller-manager`: several may
//! run, one acts, a standby takes over when the leader's lease runs out.

use std::path::PathBuf;

use anyhow::Context;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ControllersCommand {
    #[command(subcommand)]
    pub action: Option<ControllersAction>,
    #[command(flatten)]
    pub serve: ControllersArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum ControllersAction {
    /// 1,000 Deployments × 10 replicas on hollow nodes through a real API server: time until
    /// every pod exists and is bound, CPU and memory of the controller manager.
    Bench(crate::bench_controllers::BenchArgs),
}

#[derive(Debug, clap::Args)]
pub struct ControllersArgs {
    /// The API server to act on, and the credentials to use (for example the
    /// `controller-manager.kubeconfig` that `skiff server` writes).
    #[arg(long, required = true)]
    pub kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    pub options: skiff_controllers::Options,
    #[command(flatten)]
    pub serving: ServingArgs,
}

/// Where `/healthz` and `/metrics` are served (upstream's flags and defaults): HTTPS with a
/// self-signed certificate, every request authenticated and authorized by the API server
/// (TokenReview, SubjectAccessReview), so listening on every address is as safe as upstream's
/// — `/metrics` needs a token allowed `get` on it (`system:monitoring`), and only the health
/// paths are open.
#[derive(Debug, Clone, clap::Args)]
pub struct ServingArgs {
    /// The HTTPS port; 0 serves nothing.
    #[arg(long, default_value_t = 10257)]
    pub secure_port: u16,
    /// The address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: std::net::IpAddr,
    /// Paths served without authorization (a trailing `*` matches a prefix).
    #[arg(long, value_delimiter = ',', default_value = "/healthz,/readyz,/livez")]
    pub authorization_always_allow_paths: Vec<String>,
}

impl ServingArgs {
    pub fn serving(&self) -> skiff_serving::SecureServing {
        skiff_serving::SecureServing {
            bind_address: self.bind_address,
            port: self.secure_port,
            always_allow_paths: self.authorization_always_allow_paths.clone(),
            port_flag: "--secure-port",
        }
    }
}

pub async fn run(command: ControllersCommand) -> anyhow::Result<()> {
    let args = match command.action {
        Some(ControllersAction::Bench(bench)) => return crate::bench_controllers::run(bench).await,
        None => command.serve,
    };
    let kubeconfig = args.kubeconfig.context("--kubeconfig is required")?;
    let handle = skiff_controllers::start(
        &kubeconfig,
        args.options,
        &args.serving.serving(),
        skiff_apiserver::server::wait_for_signal(),
    )
    .await?;
    println!("skiff controllers ready: {}", kubeconfig.display());
    handle.await.context("the controller manager task")?
}
