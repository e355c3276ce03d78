//! The cluster's keys kept in the store, so that a snapshot of the store is a whole backup (k3s
//! keeps its "bootstrap data" in its datastore for the same reason): the CA, the API server's
//! serving and kubelet-client certificates, the service-account signing key and `tokens.csv`.
//! A control plane restored from a snapshot onto an empty data dir gets them back before it
//! would make new ones, so node certificates, service-account tokens and the admin kubeconfig
//! issued before the backup keep working.
//!
//! They live under `/skiff/cluster-keys/`, outside `/registry/`, so the API never serves them;
//! whoever can read the store can read them — as with Secrets, the store is the cluster's most
//! sensitive part (upstream keeps its CA key on the control plane's disk, which a backup of
//! the data dir carries just the same).

use std::path::Path;

use anyhow::Context;

use crate::storage::{prefix_end, Storage};

const PREFIX: &str = "/skiff/cluster-keys/";

/// The files, relative to the data dir.
const FILES: &[&str] = &[
    "tls/ca.crt",
    "tls/ca.key",
    "tls/apiserver.crt",
    "tls/apiserver.key",
    "tls/apiserver-kubelet-client.crt",
    "tls/apiserver-kubelet-client.key",
    "tls/sa.key",
    "tls/sa.pub",
    "tls/front-proxy-ca.crt",
    "tls/front-proxy-ca.key",
    "tls/front-proxy-client.crt",
    "tls/front-proxy-client.key",
    "tokens.csv",
];

/// When the data dir has no CA yet and the store holds keys (a restored snapshot), writes them
/// (private files 0600) before anything would generate new ones. Returns how many were written.
pub async fn restore(storage: &Storage, data_dir: &Path) -> anyhow::Result<usize> {
    if data_dir.join("tls/ca.crt").exists() {
        return Ok(0);
    }
    let resp = storage
        .client()
        .kv_client()
        .get(
            PREFIX,
            Some(etcd_client::GetOptions::new().with_range(prefix_end(PREFIX))),
        )
        .await
        .context("reading the cluster keys from the store")?;
    let mut written = 0;
    for kv in resp.kvs() {
        let Some(name) = kv
            .key_str()
            .ok()
            .and_then(|k| k.strip_prefix(PREFIX))
            .filter(|n| FILES.contains(n))
        else {
            continue;
        };
        let path = data_dir.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        crate::tls::write_private(&path, &String::from_utf8_lossy(kv.value()))?;
        written += 1;
    }
    Ok(written)
}

/// The file several API servers on one etcd add to while they run: each takes the others'
/// additions from the store.
const SHARED: &str = "tokens.csv";

/// Keeps the store's copies current: tokens are added to `tokens.csv` while the server runs
/// (`skiff token node|user`), so the files are read again every `every`; only a file that
/// changed since the last round costs a store request.
/// With several API servers on one etcd (`skiff up --control-planes 3`), credentials are issued
/// through one of them: the others take `tokens.csv` from the store when it changed there and
/// not here, and their token authenticator reloads the file on its next unknown token.
pub async fn keep(storage: Storage, data_dir: std::path::PathBuf, every: std::time::Duration) {
    // What [`save`] has just made the store hold: a file is pushed again only once it changes
    // here (pushing the start's copy later would undo another server's additions).
    let mut last: Vec<Option<Vec<u8>>> = FILES
        .iter()
        .map(|name| std::fs::read(data_dir.join(name)).ok())
        .collect();
    loop {
        tokio::time::sleep(every).await;
        for (name, known) in FILES.iter().zip(last.iter_mut()) {
            let path = data_dir.join(name);
            let Ok(content) = std::fs::read(&path) else {
                continue;
            };
            let key = format!("{PREFIX}{name}");
            if known.as_deref() == Some(&content[..]) {
                if *name == SHARED {
                    if let Err(e) = take_from_store(&storage, &key, &path, known).await {
                        tracing::warn!("taking {name} from the store: {e:#}");
                    }
                }
                continue;
            }
            match storage
                .client()
                .kv_client()
                .put(key, content.clone(), None)
                .await
            {
                Ok(_) => *known = Some(content),
                Err(e) => tracing::warn!("keeping {name} in the store: {e}"),
            }
        }
    }
}

/// The key files of `data_dir` whose copy in the store differs (or is missing): what a
/// snapshot taken now would lack until the server's next round of [`keep`].
pub async fn behind(storage: &Storage, data_dir: &Path) -> anyhow::Result<Vec<&'static str>> {
    let mut out = Vec::new();
    for name in FILES {
        let Ok(content) = std::fs::read(data_dir.join(name)) else {
            continue;
        };
        let stored = storage
            .client()
            .kv_client()
            .get(format!("{PREFIX}{name}"), None)
            .await
            .with_context(|| format!("reading the store's copy of {name}"))?;
        if stored.kvs().first().map(|kv| kv.value()) != Some(&content[..]) {
            out.push(*name);
        }
    }
    Ok(out)
}

/// Writes the store's copy of a file this server did not change when another server changed it.
async fn take_from_store(
    storage: &Storage,
    key: &str,
    path: &Path,
    known: &mut Option<Vec<u8>>,
) -> anyhow::Result<()> {
    let current = storage.client().kv_client().get(key, None).await?;
    let Some(stored) = current.kvs().first().map(|kv| kv.value().to_vec()) else {
        return Ok(());
    };
    if known.as_deref() == Some(&stored[..]) {
        return Ok(());
    }
    // Whole or not at all: the token authenticator may read it at any moment.
    let partial = path.with_extension("partial");
    crate::tls::write_private(&partial, &String::from_utf8_lossy(&stored))?;
    std::fs::rename(&partial, path)?;
    tracing::info!(
        "{} taken from the store (changed by another API server)",
        path.display()
    );
    *known = Some(stored);
    Ok(())
}

/// Puts every key file that exists into the store where the store's copy differs.
pub async fn save(storage: &Storage, data_dir: &Path) -> anyhow::Result<()> {
    let mut kv = storage.client().kv_client();
    for name in FILES {
        let Ok(content) = std::fs::read(data_dir.join(name)) else {
            continue;
        };
        let key = format!("{PREFIX}{name}");
        let current = kv.get(key.as_str(), None).await?;
        if current.kvs().first().map(|k| k.value()) != Some(&content[..]) {
            kv.put(key, content, None)
                .await
                .with_context(|| format!("keeping {name} in the store"))?;
        }
    }
    Ok(())
}
