//! TLS bootstrap and client-certificate rotation (upstream `pkg/kubelet/certificate/bootstrap`
//! and the kubelet's client certificate manager).
//!
//! With `--bootstrap-kubeconfig`: when `--kubeconfig` is missing or its client certificate has
//! expired, the kubelet makes a key (kept in `<cert-dir>/kubelet-client.key.tmp` until a
//! certificate for it arrives, so a restart does not ask again with another key), asks for a
//! certificate with the bootstrap credentials — a CertificateSigningRequest
//! `node-csr-<digest>` for `kubernetes.io/kube-apiserver-client-kubelet`, CN
//! `system:node:<node-name>`, O `system:nodes`, usages digital signature and client auth —
//! waits (at most an hour) until it is issued (approved by the controller manager's approver,
//! signed by its signer), stores certificate and key as `<cert-dir>/kubelet-client-<time>.pem`
//! behind the link `kubelet-client-current.pem`, and writes `--kubeconfig` pointing at that
//! link with the bootstrap kubeconfig's cluster. `--cert-dir` defaults to `<root-dir>/pki`.
//!
//! With `--rotate-certificates`: at a random point between 70 % and 90 % of the certificate's
//! lifetime (upstream's jittered deadline) the kubelet asks again with a new key — with its
//! current certificate, or the bootstrap credentials once that has expired — and switches its
//! API client over ([`Rotating`]): new requests use the new certificate, and the old client's
//! connections close once their requests (watches) end.
//!
//! The request, the wait and the store are shared with the serving certificate (`mod.rs`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use base64::Engine;
use kube::config::{AuthInfo, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};

use super::{
    create_private_dir, now, request_certificate, write_private, Naming, Store, Template,
    BOOTSTRAP_WAIT, KUBELET_CLIENT, RENEWAL_WAIT,
};
use crate::config::KubeletArgs;

/// The directory of the kubelet's certificates.
pub fn cert_dir(args: &KubeletArgs) -> PathBuf {
    args.cert_dir
        .clone()
        .unwrap_or_else(|| args.root_dir.join("pki"))
}

/// Where the client certificates are kept (`kubelet-client-*.pem`).
pub fn store(args: &KubeletArgs) -> Store {
    Store::new(cert_dir(args), "kubelet-client")
}

/// The client certificate a kubeconfig authenticates with (PEM), if it uses one.
fn client_certificate(kubeconfig: &Kubeconfig, base: &Path) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(auth) = current_auth_info(kubeconfig) else {
        return Ok(None);
    };
    if let Some(data) = &auth.client_certificate_data {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .context("client-certificate-data is not base64")?;
        return Ok(Some(pem));
    }
    if let Some(path) = &auth.client_certificate {
        let path = base.join(path);
        let pem = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(Some(pem));
    }
    Ok(None)
}

fn current_auth_info(kubeconfig: &Kubeconfig) -> Option<&AuthInfo> {
    let current = kubeconfig.current_context.as_deref()?;
    let user = &kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == current)?
        .context
        .as_ref()?
        .user;
    kubeconfig
        .auth_infos
        .iter()
        .find(|a| Some(&a.name) == user.as_ref())?
        .auth_info
        .as_ref()
}

/// Upstream's `isClientConfigStillValid`: the kubeconfig exists and loads, and its client
/// certificate, if it has one, has not expired.
pub fn still_valid(path: &Path, now: i64) -> bool {
    if !path.exists() {
        return false;
    }
    let Ok(kubeconfig) = Kubeconfig::read_from(path) else {
        tracing::warn!("{}: unreadable; bootstrapping a new one", path.display());
        return false;
    };
    let base = path.parent().unwrap_or(Path::new("."));
    match client_certificate(&kubeconfig, base) {
        Ok(None) => true,
        Ok(Some(pem)) => match super::validity(&pem) {
            Ok((not_before, not_after)) => now >= not_before && now < not_after,
            Err(e) => {
                tracing::warn!("{}: client certificate: {e:#}", path.display());
                false
            }
        },
        Err(e) => {
            tracing::warn!("{}: {e:#}", path.display());
            false
        }
    }
}

/// Upstream's `writeKubeconfigFromBootstrapping`: the bootstrap kubeconfig's cluster (relative
/// CA paths made absolute) and a user authenticating with `pem` (certificate and key).
pub fn kubeconfig_from_bootstrap(bootstrap: &Path, pem: &Path) -> anyhow::Result<String> {
    let config = Kubeconfig::read_from(bootstrap)
        .with_context(|| format!("reading {}", bootstrap.display()))?;
    let current = config.current_context.clone().unwrap_or_default();
    let cluster_name = config
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone());
    let mut cluster = config
        .clusters
        .iter()
        .find(|c| Some(&c.name) == cluster_name.as_ref())
        .or_else(|| config.clusters.first())
        .and_then(|c| c.cluster.clone())
        .with_context(|| format!("{} names no cluster", bootstrap.display()))?;
    if let Some(ca) = &cluster.certificate_authority {
        let base = bootstrap.parent().unwrap_or(Path::new("."));
        cluster.certificate_authority = Some(base.join(ca).to_string_lossy().into_owned());
    }
    let pem = pem.to_string_lossy().into_owned();
    let kubeconfig = Kubeconfig {
        clusters: vec![NamedCluster {
            name: "default-cluster".into(),
            cluster: Some(cluster),
            ..Default::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: "default-auth".into(),
            auth_info: Some(AuthInfo {
                client_certificate: Some(pem.clone()),
                client_key: Some(pem),
                ..Default::default()
            }),
            ..Default::default()
        }],
        contexts: vec![NamedContext {
            name: "default-context".into(),
            context: Some(Context {
                cluster: "default-cluster".into(),
                user: Some("default-auth".into()),
                namespace: Some("default".into()),
                ..Default::default()
            }),
            ..Default::default()
        }],
        current_context: Some("default-context".into()),
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        ..Default::default()
    };
    Ok(serde_yaml::to_string(&kubeconfig)?)
}

/// TLS bootstrap: makes sure `--kubeconfig` holds valid credentials, asking for a client
/// certificate with `--bootstrap-kubeconfig` when it does not.
pub async fn bootstrap(args: &KubeletArgs) -> anyhow::Result<()> {
    let Some(bootstrap) = &args.bootstrap_kubeconfig else {
        return Ok(());
    };
    if still_valid(&args.kubeconfig, now()) {
        return Ok(());
    }
    tracing::info!(
        kubeconfig = %args.kubeconfig.display(),
        "no valid client credentials: requesting a client certificate with {}",
        bootstrap.display()
    );
    let store = store(args);
    create_private_dir(&store.dir)?;
    let client = crate::client_from_kubeconfig(bootstrap).await?;
    let key = store.pending_key()?;
    let certificate = request_certificate(
        client,
        &Template::node_client(&args.node_name),
        &KUBELET_CLIENT,
        &key,
        Naming::Digested,
        BOOTSTRAP_WAIT,
    )
    .await?;
    let current = store.store(&certificate, &key)?;
    if let Some(parent) = args.kubeconfig.parent() {
        std::fs::create_dir_all(parent)?;
    }
    write_private(
        &args.kubeconfig,
        kubeconfig_from_bootstrap(bootstrap, &current)?.as_bytes(),
    )?;
    tracing::info!(kubeconfig = %args.kubeconfig.display(), "client certificate issued");
    Ok(())
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An API client whose requests go through whichever client is current: rotation swaps in one
/// with the new certificate; the old one (and its connections) goes once its last request
/// ends.
#[derive(Clone)]
pub struct Rotating(Arc<RwLock<kube::Client>>);

impl Rotating {
    pub fn new(client: kube::Client) -> Rotating {
        Rotating(Arc::new(RwLock::new(client)))
    }

    /// A client that always sends through the current one.
    pub fn client(&self) -> kube::Client {
        let namespace = self.current().default_namespace().to_string();
        kube::Client::new(self.clone(), namespace)
    }

    fn current(&self) -> kube::Client {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn replace(&self, client: kube::Client) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = client;
    }
}

impl tower::Service<http::Request<kube::client::Body>> for Rotating {
    type Response = http::Response<kube::client::Body>;
    type Error = BoxError;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, BoxError>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<kube::client::Body>) -> Self::Future {
        let client = self.current();
        Box::pin(async move {
            client
                .send(request)
                .await
                .map_err(|e| Box::new(e) as BoxError)
        })
    }
}

/// Keeps the client certificate fresh (`--rotate-certificates`): renews it at its rotation
/// deadline and swaps `rotating` over to the new one. Never returns.
pub async fn rotate(args: Arc<KubeletArgs>, rotating: Rotating) {
    let store = store(&args);
    super::keep_renewed("client certificate", &store, None, || {
        renew(&args, &store, &rotating)
    })
    .await
}

async fn renew(args: &KubeletArgs, store: &Store, rotating: &Rotating) -> anyhow::Result<()> {
    // With the current certificate while it is valid, else with the bootstrap credentials.
    let client = if still_valid(&args.kubeconfig, now()) {
        rotating.current()
    } else {
        let bootstrap = args
            .bootstrap_kubeconfig
            .as_deref()
            .context("the client certificate expired and there is no --bootstrap-kubeconfig")?;
        crate::client_from_kubeconfig(bootstrap).await?
    };
    let key = store.pending_key()?;
    let certificate = request_certificate(
        client,
        &Template::node_client(&args.node_name),
        &KUBELET_CLIENT,
        &key,
        Naming::Digested,
        RENEWAL_WAIT,
    )
    .await?;
    store.store(&certificate, &key)?;
    if let Some(bootstrap) = &args.bootstrap_kubeconfig {
        if !still_valid(&args.kubeconfig, now()) {
            write_private(
                &args.kubeconfig,
                kubeconfig_from_bootstrap(bootstrap, &store.current())?.as_bytes(),
            )?;
        }
    }
    rotating.replace(crate::client_from_kubeconfig(&args.kubeconfig).await?);
    Ok(())
}

/// Whether `kubeconfig` authenticates with the certificate store in `dir` (what rotation
/// renews).
pub fn uses_store(kubeconfig: &Path, dir: &Path) -> bool {
    let Ok(config) = Kubeconfig::read_from(kubeconfig) else {
        return false;
    };
    let base = kubeconfig.parent().unwrap_or(Path::new("."));
    let current = Store::new(dir.to_path_buf(), "kubelet-client").current();
    current_auth_info(&config)
        .and_then(|a| a.client_certificate.as_ref())
        .is_some_and(|c| base.join(c) == current)
}

#[cfg(test)]
mod tests {
    use super::super::tests::cert_pem;
    use super::*;
    use std::time::Duration;

    #[test]
    fn stored_certificate_backs_a_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        let store = Store::new(pki.clone(), "kubelet-client");
        let bootstrap = dir.path().join("bootstrap.kubeconfig");
        std::fs::write(
            &bootstrap,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://192.168.56.10:6443\n    certificate-authority: ca.crt\n\
             users:\n- name: u\n  user:\n    token: abcdef.0123456789abcdef\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n",
        )
        .unwrap();
        let kubeconfig = dir.path().join("kubelet.kubeconfig");
        // Missing: not valid.
        assert!(!still_valid(&kubeconfig, now()));

        let (cert, key) = cert_pem((2020, 1, 1), (2099, 1, 1));
        let current = store.store(cert.as_bytes(), &key).unwrap();
        assert_eq!(current, pki.join("kubelet-client-current.pem"));
        let text = kubeconfig_from_bootstrap(&bootstrap, &current).unwrap();
        std::fs::write(&kubeconfig, &text).unwrap();
        let parsed = Kubeconfig::read_from(&kubeconfig).unwrap();
        let cluster = parsed.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(
            cluster.server.as_deref(),
            Some("https://192.168.56.10:6443")
        );
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some(dir.path().join("ca.crt").to_str().unwrap())
        );
        let auth = current_auth_info(&parsed).unwrap();
        assert_eq!(auth.client_key.as_deref(), current.to_str());
        assert!(still_valid(&kubeconfig, now()));
        assert!(uses_store(&kubeconfig, &pki));

        // Expired: not valid any more.
        let (old, key) = cert_pem((2020, 1, 1), (2021, 1, 1));
        std::thread::sleep(Duration::from_millis(1100)); // a new file name
        store.store(old.as_bytes(), &key).unwrap();
        assert!(!still_valid(&kubeconfig, now()));
        // A token kubeconfig is valid as long as it loads.
        assert!(still_valid(&bootstrap, now()));
        assert!(!uses_store(&bootstrap, &pki));
    }

    /// A client answering every request with `body`, standing in for a connection.
    fn canned(body: &'static str) -> kube::Client {
        let service =
            tower::service_fn(move |_req: http::Request<kube::client::Body>| async move {
                Ok::<_, std::convert::Infallible>(http::Response::new(kube::client::Body::from(
                    body.as_bytes().to_vec(),
                )))
            });
        kube::Client::new(service, "default")
    }

    #[tokio::test]
    async fn rotation_swaps_the_client_under_its_users() {
        let rotating = Rotating::new(canned("old"));
        let client = rotating.client();
        let get = || http::Request::get("/version").body(Vec::new()).unwrap();
        assert_eq!(client.request_text(get()).await.unwrap(), "old");
        rotating.replace(canned("new"));
        // The same client handle, now through the new certificate's client.
        assert_eq!(client.request_text(get()).await.unwrap(), "new");
        assert_eq!(client.default_namespace(), "default");
    }
}
