//! `skiff backup create`: an online, consistent snapshot of a cluster's store — etcd's format
//! (a bbolt database and its sha256), so `etcdctl snapshot status|restore` read it too — taken
//! through `Maintenance/Snapshot` from the local cluster's embedded store (its Unix socket) or
//! from `--etcd-servers`, or from the etcd cluster of `skiff up --control-planes 3` (from a
//! control plane's namespace, with the API servers' etcd client certificate). The cluster's
//! keys are in the store (`skiff_apiserver::cluster_keys`), so the one file is the whole
//! backup; `skiff up --restore FILE` brings it back (one control plane or an etcd cluster).
//!
//! `skiff server` takes the same snapshots on a schedule (`--etcd-snapshot-interval`, keeping
//! the newest `--etcd-snapshot-retention`, as k3s's server does).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};

#[derive(Debug, clap::Args)]
pub struct BackupCommand {
    #[command(subcommand)]
    action: BackupAction,
}

#[derive(Debug, clap::Subcommand)]
enum BackupAction {
    /// Snapshot the cluster's store into a file (written whole or not at all).
    Create {
        /// The local cluster (`skiff up --name`) whose store to snapshot.
        #[arg(long, default_value = "skiff")]
        name: String,
        /// etcd endpoints to snapshot instead (`http://HOST:PORT` or `unix://PATH`; the first
        /// answering member is used).
        #[arg(long = "etcd-servers", value_delimiter = ',')]
        etcd_servers: Vec<String>,
        /// Where to write it (default `<name>-<UTC time>.db` here).
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

pub fn main(cmd: BackupCommand) -> anyhow::Result<()> {
    let BackupAction::Create {
        name,
        etcd_servers,
        output,
    } = cmd.action;
    let mut tls = skiff_apiserver::storage::EtcdTlsArgs::default();
    // The local cluster's first control plane: its key files, which the snapshot must hold.
    let mut data_dir = None;
    let endpoints = if etcd_servers.is_empty() {
        let recorded = skiff_cluster::state::Recorded::read(&name)
            .with_context(|| format!("no cluster named {name:?} is up (or give --etcd-servers)"))?;
        let t = &recorded.topology;
        // A running server's data dir ("server", or "server-<node>" for the further control
        // planes): the one that keeps its files in the store.
        data_dir = recorded
            .processes
            .iter()
            .filter(|p| skiff_cluster::state::alive(p.pid))
            .find_map(|p| match p.component.as_str() {
                "server" => Some(t.state_dir().join("server")),
                other => other
                    .strip_prefix("server ")
                    .map(|node| t.state_dir().join(format!("server-{node}"))),
            });
        let control_planes: Vec<_> = skiff_cluster::etcd::control_planes(t).collect();
        if control_planes.len() > 1 {
            // The etcd cluster of `skiff up --control-planes N`: its members listen on the node
            // network, reached from a control plane's namespace (entered before any thread
            // starts: setns moves the calling thread, and threads made later inherit it) with
            // the API servers' client certificate.
            let netns = std::fs::File::open(format!("/run/netns/{}", control_planes[0].name))
                .context("the control plane's network namespace")?;
            nix::sched::setns(
                std::os::fd::AsFd::as_fd(&netns),
                nix::sched::CloneFlags::CLONE_NEWNET,
            )
            .context("entering the control plane's network namespace")?;
            let pki = skiff_cluster::etcd::Pki {
                dir: t.state_dir().join("etcd-pki"),
            };
            tls.etcd_cafile = Some(pki.ca());
            tls.etcd_certfile = Some(pki.client_cert());
            tls.etcd_keyfile = Some(pki.client_key());
            skiff_cluster::etcd::client_urls(t)
                .split(',')
                .map(str::to_string)
                .collect()
        } else {
            let socket = t.state_dir().join("server/store.sock");
            vec![format!("unix://{}", socket.display())]
        }
    } else {
        etcd_servers
    };
    let output = output.unwrap_or_else(|| {
        let now = k8s_openapi::jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
        PathBuf::from(format!("{name}-{now}.db"))
    });
    let runtime = tokio::runtime::Runtime::new()?;
    let taken = runtime.block_on(async {
        let storage = skiff_apiserver::storage::Storage::connect_with(&endpoints, &tls).await?;
        if let Some(dir) = &data_dir {
            keys_in_store(&storage, dir).await?;
        }
        take(&storage)
            .await
            .with_context(|| format!("snapshot from {}", endpoints.join(",")))
    })?;
    write(&output, &taken.data)?;
    println!("{}", taken.describe(&output));
    Ok(())
}

/// Waits until the store holds the control plane's current key files: the API server copies
/// them there every few seconds, so a credential issued just now (`skiff token`, the addons'
/// by `skiff up`) would otherwise be missing from the backup — and refused after a restore.
async fn keys_in_store(
    storage: &skiff_apiserver::storage::Storage,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + KEYS_WAIT;
    loop {
        let behind = skiff_apiserver::cluster_keys::behind(storage, data_dir).await?;
        if behind.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the API server has not copied {} into the store within {KEYS_WAIT:?} (is it running?); a backup now would lack them",
            behind.join(", ")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long `keys_in_store` waits (the API server's round is 5 s).
const KEYS_WAIT: Duration = Duration::from_secs(20);

/// A snapshot received and read back.
pub struct Snapshot {
    pub data: Vec<u8>,
    pub revision: i64,
    /// Keys that exist at `revision`.
    pub keys: usize,
}

impl Snapshot {
    /// `FILE: revision R, K keys, B bytes, sha256 H` (what `skiff backup create` prints).
    pub fn describe(&self, file: &Path) -> String {
        format!(
            "{}: revision {}, {} keys, {} bytes, sha256 {:x}",
            file.display(),
            self.revision,
            self.keys,
            self.data.len(),
            Sha256::digest(&self.data)
        )
    }
}

/// An online, consistent snapshot through `Maintenance/Snapshot` (etcd's format), checked by
/// reading it back as `skiff up --restore` will.
pub async fn take(storage: &skiff_apiserver::storage::Storage) -> anyhow::Result<Snapshot> {
    let mut stream = storage.client().maintenance_client().snapshot().await?;
    let mut data = Vec::new();
    while let Some(chunk) = stream.message().await? {
        data.extend_from_slice(chunk.blob());
    }
    let state = skiff_store::snapshot::etcd::decode(&data)
        .map_err(|e| anyhow::anyhow!("the snapshot received does not read back: {e}"))?;
    let keys = state
        .keys
        .iter()
        .filter(|k| k.versions.last().is_some_and(|v| v.version != 0))
        .count();
    Ok(Snapshot {
        data,
        revision: state.revision,
        keys,
    })
}

/// Writes `data` whole or not at all: a `.partial` file, synced, renamed into place, and the
/// directory synced so the name survives a crash too.
pub fn write(output: &Path, data: &[u8]) -> anyhow::Result<()> {
    let tmp = output.with_extension("partial");
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, output).with_context(|| format!("writing {}", output.display()))?;
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))?;
    Ok(())
}

/// `skiff server`'s scheduled snapshots (k3s's `--etcd-snapshot-*` role): every interval a
/// snapshot of the store (embedded or etcd) into a directory, keeping the newest `retention`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScheduleArgs {
    /// How often `skiff server` snapshots the cluster state (Go duration, as k3s's default
    /// schedule: every 12 hours); 0 turns it off.
    #[arg(
        long = "etcd-snapshot-interval",
        default_value = "12h",
        value_parser = skiff_apiserver::server::parse_go_duration
    )]
    pub interval: Duration,
    /// How many scheduled snapshots to keep (the oldest go first; k3s's default).
    #[arg(long = "etcd-snapshot-retention", default_value_t = 5)]
    pub retention: usize,
    /// Where scheduled snapshots go (default `<data-dir>/snapshots`).
    #[arg(long = "etcd-snapshot-dir")]
    pub dir: Option<PathBuf>,
}

/// The scheduled snapshots' names: `skiff-snapshot-<UTC time to the millisecond>.db`, so that
/// name order is time order.
const SCHEDULED_PREFIX: &str = "skiff-snapshot-";

/// Runs forever (a spawned task): a snapshot every interval, then the oldest beyond the
/// retention removed. A failed round is logged and retried at the next.
pub async fn schedule(
    storage: skiff_apiserver::storage::Storage,
    interval: Duration,
    retention: usize,
    dir: PathBuf,
) {
    if interval.is_zero() || retention == 0 {
        return;
    }
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match scheduled_round(&storage, retention, &dir).await {
            Ok(line) => tracing::info!("scheduled snapshot {line}"),
            Err(e) => tracing::warn!("scheduled snapshot into {}: {e:#}", dir.display()),
        }
    }
}

async fn scheduled_round(
    storage: &skiff_apiserver::storage::Storage,
    retention: usize,
    dir: &Path,
) -> anyhow::Result<String> {
    let snapshot = take(storage).await?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let now = k8s_openapi::jiff::Timestamp::now();
    let name = format!(
        "{SCHEDULED_PREFIX}{}{:03}Z.db",
        now.strftime("%Y%m%dT%H%M%S."),
        now.subsec_millisecond()
    );
    let file = dir.join(name);
    write(&file, &snapshot.data)?;
    prune(dir, retention)?;
    Ok(snapshot.describe(&file))
}

/// Removes the oldest scheduled snapshots in `dir` beyond the newest `retention` (only files
/// named as this schedule names them; anything else there is left alone).
fn prune(dir: &Path, retention: usize) -> anyhow::Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(SCHEDULED_PREFIX) && n.ends_with(".db"))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(retention);
    for name in &names[..excess] {
        std::fs::remove_file(dir.join(name))
            .with_context(|| format!("removing {}", dir.join(name).display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_the_newest_scheduled_snapshots_only() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "skiff-snapshot-20261205T010000.000Z.db",
            "skiff-snapshot-20261205T020000.000Z.db",
            "skiff-snapshot-20261205T030000.000Z.db",
            "skiff-snapshot-20261205T030000.000Z.partial",
            "by-hand.db",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        prune(dir.path(), 2).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "by-hand.db",
                "skiff-snapshot-20261205T020000.000Z.db",
                "skiff-snapshot-20261205T030000.000Z.db",
                "skiff-snapshot-20261205T030000.000Z.partial",
            ]
        );
    }
}
