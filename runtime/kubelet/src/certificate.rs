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

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{AuthInfo, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext};
use sha2::Digest;

use crate::config::KubeletArgs;

pub const SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The usages of an ECDSA key's client certificate (no key encipherment), as upstream asks.
pub const USAGES: &[&str] = &["digital signature", "client auth"];
const CURRENT: &str = "kubelet-client-current.pem";
const PENDING_KEY: &str = "kubelet-client.key.tmp";
/// How long the kubelet waits for its request to be issued, as upstream.
const WAIT: Duration = Duration::from_secs(3600);

/// The directory of the kubelet's client certificates.
pub fn cert_dir(args: &KubeletArgs) -> PathBuf {
    args.cert_dir
        .clone()
        .unwrap_or_else(|| args.root_dir.join("pki"))
}

/// A certificate's validity (Unix seconds) from its PEM (the first CERTIFICATE block).
pub fn validity(pem: &[u8]) -> anyhow::Result<(i64, i64)> {
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.context("reading PEM")?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        let (_, cert) = x509_parser::parse_x509_certificate(&block.contents)
            .map_err(|e| anyhow::anyhow!("malformed certificate: {e}"))?;
        return Ok((
            cert.validity().not_before.timestamp(),
            cert.validity().not_after.timestamp(),
        ));
    }
    anyhow::bail!("no CERTIFICATE PEM block")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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
        Ok(Some(pem)) => match validity(&pem) {
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

/// Upstream's `digestedName`: `node-csr-` and the unpadded base64url SHA-512/256 of the public
/// key, the subject's CN and Os and the usages, each base64url-encoded and `|`-terminated, so a
/// kubelet restarted with the same key finds its request again.
pub fn request_name(
    public_key_info: &[u8],
    common_name: &str,
    organizations: &[&str],
    usages: &[&str],
) -> String {
    let encode = |data: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data);
    let mut hash = sha2::Sha512_256::new();
    let mut write = |data: &[u8]| {
        hash.update(encode(data).as_bytes());
        hash.update(b"|");
    };
    write(public_key_info);
    write(common_name.as_bytes());
    for o in organizations {
        write(o.as_bytes());
    }
    for u in usages {
        write(u.as_bytes());
    }
    format!("node-csr-{}", encode(&hash.finalize()))
}

/// The PEM request (and its name) for `node`'s client certificate with `key`.
pub fn certificate_request(node: &str, key: &rcgen::KeyPair) -> anyhow::Result<(String, String)> {
    let common_name = format!("system:node:{node}");
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "system:nodes");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name.as_str());
    let pem = params.serialize_request(key)?.pem()?;
    let name = request_name(
        &rcgen::PublicKeyData::subject_public_key_info(key),
        &common_name,
        &["system:nodes"],
        USAGES,
    );
    Ok((pem, name))
}

/// The key waiting for a certificate, or a new one (ECDSA P-256, as upstream's).
fn pending_key(dir: &Path) -> anyhow::Result<rcgen::KeyPair> {
    let path = dir.join(PENDING_KEY);
    if let Ok(pem) = std::fs::read_to_string(&path) {
        match rcgen::KeyPair::from_pem(&pem) {
            Ok(key) => return Ok(key),
            Err(e) => tracing::warn!("{}: {e}; making a new key", path.display()),
        }
    }
    let key = rcgen::KeyPair::generate()?;
    write_private(&path, key.serialize_pem().as_bytes())?;
    Ok(key)
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("writing");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Asks for a certificate for `key` through `client` and waits until it is issued: its PEM.
pub async fn request_certificate(
    client: kube::Client,
    node: &str,
    key: &rcgen::KeyPair,
) -> anyhow::Result<Vec<u8>> {
    let (request, name) = certificate_request(node, key)?;
    let api: Api<CertificateSigningRequest> = Api::all(client);
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.clone().into_bytes()),
            signer_name: SIGNER.into(),
            usages: Some(USAGES.iter().map(|u| u.to_string()).collect()),
            ..Default::default()
        },
        status: None,
    };
    match api.create(&PostParams::default(), &csr).await {
        Ok(_) => tracing::info!(csr = %name, "asked for a client certificate"),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Our own earlier request (the name is the digest of key, subject and usages).
            let existing = api.get(&name).await?;
            anyhow::ensure!(
                existing.spec.request.0 == request.as_bytes()
                    && existing.spec.signer_name == SIGNER,
                "the CertificateSigningRequest {name} exists and is not this kubelet's request"
            );
            tracing::info!(csr = %name, "waiting for the earlier request for a client certificate");
        }
        Err(e) => return Err(e).context("creating the CertificateSigningRequest"),
    }
    let issued = kube::runtime::wait::await_condition(
        api,
        &name,
        |csr: Option<&CertificateSigningRequest>| {
            csr.and_then(|c| c.status.as_ref()).is_some_and(|s| {
                s.certificate.as_ref().is_some_and(|c| !c.0.is_empty())
                    || s.conditions
                        .iter()
                        .flatten()
                        .any(|c| (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True")
            })
        },
    );
    let csr = tokio::time::timeout(WAIT, issued)
        .await
        .with_context(|| format!("timed out after {WAIT:?} waiting for {name} to be issued"))?
        .with_context(|| format!("watching {name}"))?
        .with_context(|| format!("the CertificateSigningRequest {name} was deleted"))?;
    let status = csr.status.unwrap_or_default();
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True")
    {
        anyhow::bail!(
            "the CertificateSigningRequest {name} is {}: {}",
            c.type_,
            c.message
                .as_deref()
                .or(c.reason.as_deref())
                .unwrap_or_default()
        );
    }
    let certificate = status.certificate.map(|c| c.0).unwrap_or_default();
    validity(&certificate).with_context(|| format!("the certificate issued for {name}"))?;
    Ok(certificate)
}

/// Stores `certificate` with `key` as `<dir>/kubelet-client-<time>.pem` and points
/// `kubelet-client-current.pem` at it; the pending key goes.
pub fn store(dir: &Path, certificate: &[u8], key: &rcgen::KeyPair) -> anyhow::Result<PathBuf> {
    let stamp = jiff::Timestamp::now()
        .strftime("%Y-%m-%d-%H-%M-%S")
        .to_string();
    let file = dir.join(format!("kubelet-client-{stamp}.pem"));
    let mut contents = certificate.to_vec();
    if !contents.ends_with(b"\n") {
        contents.push(b'\n');
    }
    contents.extend_from_slice(key.serialize_pem().as_bytes());
    write_private(&file, &contents)?;
    let current = dir.join(CURRENT);
    let link = dir.join(format!("{CURRENT}.updating"));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(file.file_name().unwrap_or_default(), &link)
        .with_context(|| format!("linking {}", link.display()))?;
    std::fs::rename(&link, &current).with_context(|| format!("updating {}", current.display()))?;
    let _ = std::fs::remove_file(dir.join(PENDING_KEY));
    Ok(current)
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
    let dir = cert_dir(args);
    create_private_dir(&dir)?;
    let client = crate::client_from_kubeconfig(bootstrap).await?;
    let key = pending_key(&dir)?;
    let certificate = request_certificate(client, &args.node_name, &key).await?;
    let current = store(&dir, &certificate, &key)?;
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

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Upstream's rotation deadline: a random point between 70 % and 90 % of the validity.
pub fn rotation_deadline(not_before: i64, not_after: i64, jitter: f64) -> i64 {
    let lifetime = (not_after - not_before).max(0) as f64;
    not_before + (lifetime * (0.7 + 0.2 * jitter.clamp(0.0, 1.0))).round() as i64
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
    let dir = cert_dir(&args);
    let mut failures = 0u32;
    loop {
        let pem = match std::fs::read(dir.join(CURRENT)) {
            Ok(pem) => pem,
            Err(e) => {
                tracing::warn!("no client certificate to rotate in {}: {e}", dir.display());
                return std::future::pending().await;
            }
        };
        let wait = match validity(&pem) {
            Ok((not_before, not_after)) => {
                let deadline = rotation_deadline(not_before, not_after, rand::random());
                tracing::info!(
                    expires = %jiff::Timestamp::from_second(not_after).map(|t| t.to_string()).unwrap_or_default(),
                    rotation_in_seconds = (deadline - now()).max(0),
                    "client certificate rotation scheduled"
                );
                Duration::from_secs((deadline - now()).max(0) as u64)
            }
            Err(e) => {
                tracing::warn!("{}: {e:#}; renewing now", dir.join(CURRENT).display());
                Duration::ZERO
            }
        };
        if failures == 0 {
            tokio::time::sleep(wait).await;
        }
        match renew(&args, &dir, &rotating).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                let delay = Duration::from_secs((5u64 << failures.min(6)).min(300));
                tracing::warn!("client certificate rotation failed: {e:#}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn renew(args: &KubeletArgs, dir: &Path, rotating: &Rotating) -> anyhow::Result<()> {
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
    let key = pending_key(dir)?;
    let certificate = request_certificate(client, &args.node_name, &key).await?;
    store(dir, &certificate, &key)?;
    if let Some(bootstrap) = &args.bootstrap_kubeconfig {
        if !still_valid(&args.kubeconfig, now()) {
            write_private(
                &args.kubeconfig,
                kubeconfig_from_bootstrap(bootstrap, &dir.join(CURRENT))?.as_bytes(),
            )?;
        }
    }
    rotating.replace(crate::client_from_kubeconfig(&args.kubeconfig).await?);
    tracing::info!("client certificate rotated");
    Ok(())
}

/// Whether `kubeconfig` authenticates with the certificate store in `dir` (what rotation
/// renews).
pub fn uses_store(kubeconfig: &Path, dir: &Path) -> bool {
    let Ok(config) = Kubeconfig::read_from(kubeconfig) else {
        return false;
    };
    let base = kubeconfig.parent().unwrap_or(Path::new("."));
    current_auth_info(&config)
        .and_then(|a| a.client_certificate.as_ref())
        .is_some_and(|c| base.join(c) == dir.join(CURRENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_pem(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> (String, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        (params.self_signed(&key).unwrap().pem(), key)
    }

    #[test]
    fn request_is_a_kubelet_client_request() {
        let key = rcgen::KeyPair::generate().unwrap();
        let (pem, name) = certificate_request("worker", &key).unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        assert_eq!(block.label, "CERTIFICATE REQUEST");
        use x509_parser::prelude::FromDer;
        let (_, csr) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
                .unwrap();
        csr.verify_signature().unwrap();
        let subject = &csr.certification_request_info.subject;
        let cn: Vec<_> = subject
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        let o: Vec<_> = subject
            .iter_organization()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!((cn, o), (vec!["system:node:worker"], vec!["system:nodes"]));
        assert!(csr
            .requested_extensions()
            .is_none_or(|mut e| e.next().is_none()));
        // The same key asks under the same name; another key under another.
        assert!(
            name.starts_with("node-csr-") && name.len() == 9 + 43,
            "{name}"
        );
        assert_eq!(certificate_request("worker", &key).unwrap().1, name);
        let other = rcgen::KeyPair::generate().unwrap();
        assert_ne!(certificate_request("worker", &other).unwrap().1, name);
    }

    #[test]
    fn digested_name_as_upstream() {
        // Upstream's digestedName over fixed inputs (SHA-512/256 of the base64url parts).
        let a = request_name(b"key", "system:node:a", &["system:nodes"], USAGES);
        let b = request_name(b"key", "system:node:b", &["system:nodes"], USAGES);
        assert_ne!(a, b);
        let mut hash = sha2::Sha512_256::new();
        hash.update(
            b"a2V5|c3lzdGVtOm5vZGU6YQ|c3lzdGVtOm5vZGVz|ZGlnaXRhbCBzaWduYXR1cmU|Y2xpZW50IGF1dGg|",
        );
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.finalize());
        assert_eq!(a, format!("node-csr-{expected}"));
    }

    #[test]
    fn stored_certificate_backs_a_kubeconfig() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path().join("pki");
        create_private_dir(&pki).unwrap();
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
        let current = store(&pki, cert.as_bytes(), &key).unwrap();
        assert_eq!(current, pki.join(CURRENT));
        assert!(std::fs::symlink_metadata(&current)
            .unwrap()
            .file_type()
            .is_symlink());
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
        // The stored file holds the certificate and the key.
        let pem = std::fs::read_to_string(&current).unwrap();
        assert!(pem.contains("BEGIN CERTIFICATE") && pem.contains("BEGIN PRIVATE KEY"));

        // Expired: not valid any more.
        let (old, key) = cert_pem((2020, 1, 1), (2021, 1, 1));
        std::thread::sleep(Duration::from_millis(1100)); // a new file name
        store(&pki, old.as_bytes(), &key).unwrap();
        assert!(!still_valid(&kubeconfig, now()));
        // A token kubeconfig is valid as long as it loads.
        assert!(still_valid(&bootstrap, now()));
        assert!(!uses_store(&bootstrap, &pki));
    }

    #[test]
    fn the_pending_key_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = pending_key(dir.path()).unwrap();
        let again = pending_key(dir.path()).unwrap();
        assert_eq!(first.serialize_pem(), again.serialize_pem());
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

    #[test]
    fn rotation_between_70_and_90_percent() {
        assert_eq!(rotation_deadline(0, 1000, 0.0), 700);
        assert_eq!(rotation_deadline(0, 1000, 1.0), 900);
        assert_eq!(rotation_deadline(100, 1100, 0.5), 900);
        let (cert, _) = cert_pem((2020, 1, 1), (2030, 1, 1));
        let (nb, na) = validity(cert.as_bytes()).unwrap();
        assert!(nb < na);
    }
}
