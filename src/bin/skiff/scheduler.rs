//! `skiff scheduler`: the scheduler alone, against any API server.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct SchedulerArgs {
    /// The API server to schedule for, and the credentials to use.
    #[arg(long)]
    pub kubeconfig: PathBuf,
}

pub async fn run(args: SchedulerArgs) -> anyhow::Result<()> {
    let client = skiff_controllers::client_from_kubeconfig(&args.kubeconfig).await?;
    skiff_scheduler::run(client).await
}
