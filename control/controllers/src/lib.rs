//! skiff's kube-controller-manager. Controllers are kube-rs controllers (watcher → reflector →
//! reconcile) talking to the API server like any other client.
//!
//! Today: the namespace controller (ships with the API server so `kubectl delete namespace`
//! completes) and the garbage collector (ownerReferences; foreground and orphan deletion, so
//! every `propagationPolicy` the API server accepts completes). The workload controllers
//! arrive with their issue.

pub mod garbage_collector;
pub mod namespace;

use std::path::Path;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A client for the API server from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Starts every controller; the handle ends only if one of them fails.
pub async fn start(
    kubeconfig: &Path,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let client = client_from_kubeconfig(kubeconfig).await?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = namespace::run(client.clone()) => anyhow::bail!("the namespace controller stopped"),
            _ = garbage_collector::run(client) => anyhow::bail!("the garbage collector stopped"),
        }
    }))
}
