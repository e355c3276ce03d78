//! The `skiff store` command line: serve (default), `restore`, `bench`.

use std::path::PathBuf;

use anyhow::Context;

use crate::datadir::Disk;
use crate::server::{run, StoreArgs};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct StoreCommand {
    #[command(subcommand)]
    pub action: Option<StoreAction>,
    #[command(flatten)]
    pub serve: StoreArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum StoreAction {
    /// Write a new data dir holding exactly the state in SNAPSHOT (from `etcdctl snapshot save`).
    Restore {
        snapshot: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Run the same etcd v3 workload against real etcd and skiff's store; print both and the ratio.
    Bench(crate::bench::BenchArgs),
    /// Run etcd's own load generators (`etcdctl check perf`, etcd's `benchmark`) against real
    /// etcd and skiff's store, one after the other; print both and the ratio.
    BenchTools(crate::bench::tools::ToolsArgs),
}

pub fn main(cmd: StoreCommand) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    match cmd.action {
        None => runtime.block_on(run(cmd.serve)),
        Some(StoreAction::Restore { snapshot, data_dir }) => {
            let data = std::fs::read(&snapshot)
                .with_context(|| format!("reading {}", snapshot.display()))?;
            let state = Disk::restore(&data, &data_dir)
                .with_context(|| format!("restoring {}", snapshot.display()))?;
            println!(
                "restored {} keys at revision {} (compacted at {}) into {}",
                state
                    .keys
                    .iter()
                    .filter(|k| k.versions.last().is_some_and(|v| v.version != 0))
                    .count(),
                state.revision,
                state.compact_revision,
                data_dir.display()
            );
            Ok(())
        }
        Some(StoreAction::Bench(args)) => runtime.block_on(crate::bench::run(args)),
        Some(StoreAction::BenchTools(args)) => runtime.block_on(crate::bench::tools::run(args)),
    }
}
