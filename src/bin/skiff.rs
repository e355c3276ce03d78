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
}

fn main() -> anyhow::Result<()> {
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
    }
}
