//! `skiff backup create`: an online, consistent snapshot of a cluster's store — etcd's format
//! (a bbolt database and its sha256), so `etcdctl snapshot status|restore` read it too — taken
//! through `Maintenance/Snapshot` from the local cluster's embedded store (its Unix socket) or
//! from `--etcd-servers`, or from the etcd cluster of `skiff up --control-planes 3` (from a
//! control plane's namespace, with the API servers' etcd client certificate). The cluster's keys are in the store (`skiff_apiserver::cluster_keys`),
//! so the one file is the whole backup; `skiff up --restore FILE` brings it back.

use std::io::Write;
use std::path::PathBuf;

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
    let endpoints = if etcd_servers.is_empty() {
        let recorded = skiff_cluster::state::Recorded::read(&name)
            .with_context(|| format!("no cluster named {name:?} is up (or give --etcd-servers)"))?;
        let t = &recorded.topology;
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
    let data = runtime.block_on(async {
        let storage = skiff_apiserver::storage::Storage::connect_with(&endpoints, &tls).await?;
        let mut stream = storage
            .client()
            .maintenance_client()
            .snapshot()
            .await
            .with_context(|| format!("snapshot from {}", endpoints.join(",")))?;
        let mut data = Vec::new();
        while let Some(chunk) = stream.message().await? {
            data.extend_from_slice(chunk.blob());
        }
        anyhow::Ok(data)
    })?;
    // What is written must restore: read it back as `skiff up --restore` will.
    let state = skiff_store::snapshot::etcd::decode(&data)
        .map_err(|e| anyhow::anyhow!("the snapshot received does not read back: {e}"))?;
    let tmp = output.with_extension("partial");
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(&data)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &output).with_context(|| format!("writing {}", output.display()))?;
    let live = state
        .keys
        .iter()
        .filter(|k| k.versions.last().is_some_and(|v| v.version != 0))
        .count();
    println!(
        "{}: revision {}, {live} keys, {} bytes, sha256 {:x}",
        output.display(),
        state.revision,
        data.len(),
        Sha256::digest(&data)
    );
    Ok(())
}
