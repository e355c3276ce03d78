//! The root CA publisher (upstream `pkg/controller/certificates/rootcacertpublisher`): a
//! ConfigMap `kube-root-ca.crt` in every namespace holding the cluster CA (`ca.crt`), kept
//! equal to it — recreated if deleted, rewritten if edited. Pods read it (the projected
//! service-account volume) to verify the API server at `kubernetes.default.svc`.
//!
//! The CA comes from `--root-ca-file`, else from the controller manager's own kubeconfig, as
//! upstream's falls back to its client's CA.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::backoff::Backoffs;
use crate::workqueue::{self, names};

pub const NAME: &str = "kube-root-ca.crt";
pub const KEY: &str = "ca.crt";
/// Upstream's description annotation, word for word.
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
}

struct Context {
    /// Reads (upstream's listers) with the controller manager's own credential.
    informers: Client,
    /// Writes as `root-ca-cert-publisher`.
    client: Client,
    ca: String,
    backoffs: Backoffs,
}

/// The CA bundle to publish: the file, else the kubeconfig's cluster CA (inline or by path).
pub fn load_ca(root_ca_file: Option<&Path>, kubeconfig: &Path) -> anyhow::Result<String> {
    if let Some(path) = root_ca_file {
        return std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()));
    }
    let config = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let current = config.current_context.clone().unwrap_or_default();
    let cluster_name = config
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .unwrap_or_default();
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .or_else(|| config.clusters.first())
        .and_then(|c| c.cluster.as_ref())
        .context("the kubeconfig names no cluster")?;
    if let Some(data) = &cluster.certificate_authority_data {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .context("certificate-authority-data is not base64")?;
        return String::from_utf8(pem).context("certificate-authority-data is not PEM text");
    }
    if let Some(path) = &cluster.certificate_authority {
        let path = kubeconfig.parent().unwrap_or(Path::new(".")).join(path);
        return std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()));
    }
    anyhow::bail!("no --root-ca-file and the kubeconfig has no certificate authority")
}

/// `informers` (the controller manager's own client) watches and reads, as upstream's shared
/// informers do; `client` (the controller's) writes: upstream's
/// `system:controller:root-ca-cert-publisher` may only create and update ConfigMaps.
pub async fn run(informers: Client, client: Client, ca: String) {
    let ctx = Arc::new(Context {
        informers: informers.clone(),
        client,
        ca,
        backoffs: Backoffs::default(),
    });
    let controller = Controller::new(
        Api::<Namespace>::all(informers.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<ConfigMap>::all(informers),
        watcher::Config::default().fields(&format!("metadata.name={NAME}")),
        |cm| {
            cm.metadata
                .namespace
                .as_deref()
                .map(ObjectRef::<Namespace>::new)
        },
    );
    workqueue::run(
        names::ROOT_CA_CERT_PUBLISHER,
        controller,
        reconcile,
        error_policy,
        ctx,
    )
    .await;
}

fn error_policy(ns: Arc<Namespace>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoffs.next(&ns.name_any());
    tracing::debug!(namespace = %ns.name_any(), "root CA publish failed: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

fn desired(namespace: &str, ca: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(namespace.into()),
            annotations: Some(BTreeMap::from([(
                "kubernetes.io/description".to_string(),
                DESCRIPTION.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(KEY.to_string(), ca.to_string())])),
        ..ConfigMap::default()
    }
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &name);
    let want = desired(&name, &ctx.ca);
    let read: Api<ConfigMap> = Api::namespaced(ctx.informers.clone(), &name);
    match read.get_opt(NAME).await? {
        None => match api.create(&PostParams::default(), &want).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 => {}
            Err(e) => return Err(e.into()),
        },
        Some(mut current) => {
            let ok = current
                .data
                .as_ref()
                .and_then(|d| d.get(KEY))
                .is_some_and(|v| *v == ctx.ca)
                && current.data.as_ref().map_or(0, |d| d.len()) == 1;
            if !ok {
                current.data = want.data;
                current.binary_data = None;
                current
                    .metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert("kubernetes.io/description".into(), DESCRIPTION.into());
                match api.replace(NAME, &PostParams::default(), &current).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
                        return Ok(Action::requeue(std::time::Duration::from_secs(1)))
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    ctx.backoffs.reset(&name);
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_from_inline_kubeconfig_data() {
        let dir = std::env::temp_dir().join(format!("skiff-rootca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let data = base64::engine::general_purpose::STANDARD.encode(pem);
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters:\n- name: k\n  cluster: {{server: 'https://127.0.0.1:6443', certificate-authority-data: {data}}}\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\nusers:\n- name: u\n  user: {{token: t}}\n"
            ),
        )
        .expect("write");
        assert_eq!(load_ca(None, &kubeconfig).expect("loads"), pem);
        let file = dir.join("ca.crt");
        std::fs::write(&file, "other").expect("write");
        assert_eq!(load_ca(Some(&file), &kubeconfig).expect("loads"), "other");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
