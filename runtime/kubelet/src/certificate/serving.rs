//! The kubelet API's serving certificate (upstream `NewKubeletServerCertificateManager`).
//!
//! Without `--rotate-server-certificates` the kubelet serves with a self-signed certificate made
//! at start for its name and IP, as upstream's does without `--tls-cert-file`. Nobody can
//! verify it, so an API server dialling it cannot tell the kubelet from anyone who took the
//! node's address.
//!
//! With `--rotate-server-certificates` (upstream's `serverTLSBootstrap`) the certificate comes
//! from the cluster: a CertificateSigningRequest `csr-<random>` (client-go's manager names its
//! requests so) for the signer `kubernetes.io/kubelet-serving`, CN `system:node:<name>`, O
//! `system:nodes`, subject alternative names the node name (upstream: the Hostname address,
//! which is the node name here) and the node IP, usages digital signature and server auth
//! (client-go's for an ECDSA key; key encipherment is only asked for RSA keys). The kubelet
//! asks with its own credentials, waits for the request to be approved and issued, keeps
//! certificate and key as `<cert-dir>/kubelet-server-<time>.pem` behind
//! `kubelet-server-current.pem` and serves with them; a restart reuses the stored certificate
//! while it still names the node and its address. It renews at 70–90 % of the lifetime, and
//! TLS picks up the new certificate for the next handshake ([`ServingCertificate`] is the
//! rustls `ResolvesServerCert`). Until a certificate is issued every handshake fails, as
//! upstream's "no serving certificate available for the kubelet": a client that checks the
//! certificate has nothing to check yet.
//!
//! **Who approves.** Upstream's controller manager never approves `kubelet-serving` requests:
//! a kubelet may put any name or address in its request, and the approver cannot know which
//! the node really answers at, so an administrator (`kubectl certificate approve`) or a
//! third-party approver that checks the names against the Node's addresses does it. skiff keeps
//! that split. `skiff up` is the administrator of the cluster it makes and knows which name and
//! address it gave each node, so it approves exactly the requests that ask for those, from
//! that node's own identity (`cluster/src/serving.rs`), and nothing else; its controller manager
//! approves nothing here. Renewals (at 70–90 % of `--cluster-signing-duration`, a year by
//! default) wait for `kubectl certificate approve` like any other request, while the kubelet
//! keeps serving with the certificate it has.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{request_certificate, Naming, Store, Template, KUBELET_SERVING, RENEWAL_WAIT};
use crate::config::KubeletArgs;

/// The certificate TLS handshakes present; replaced in place when renewed. Empty until the
/// first certificate is issued (handshakes fail meanwhile).
#[derive(Debug, Default)]
pub struct ServingCertificate {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl ServingCertificate {
    /// A self-signed certificate for the node's name and IP, made now.
    pub fn self_signed(node: &str, ip: IpAddr) -> anyhow::Result<ServingCertificate> {
        let names = vec![node.to_string(), ip.to_string()];
        let certified = rcgen::generate_simple_self_signed(names)
            .context("making the kubelet's serving certificate")?;
        let chain = vec![certified.cert.der().clone()];
        let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der())
            .map_err(|e| anyhow::anyhow!("the kubelet's key: {e}"))?;
        let serving = ServingCertificate::default();
        serving.set(chain, key)?;
        Ok(serving)
    }

    /// Serves from now on with the certificate chain and key in `pem` (a store's file).
    pub fn set_from_pem(&self, pem: &[u8]) -> anyhow::Result<()> {
        let (chain, key) = chain_and_key(pem)?;
        self.set(chain, key)
    }

    fn set(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> anyhow::Result<()> {
        let provider = rustls::crypto::ring::default_provider();
        let certified = CertifiedKey::from_der(chain, key, &provider)
            .context("the serving certificate and its key do not go together")?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(certified));
        Ok(())
    }

    /// Whether there is a certificate to serve with.
    pub fn is_set(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }
}

impl ResolvesServerCert for ServingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if current.is_none() {
            tracing::debug!("no serving certificate available for the kubelet");
        }
        current
    }
}

/// The certificates (leaf first) and the private key of a store's PEM file.
fn chain_and_key(
    pem: &[u8],
) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let mut chain = Vec::new();
    let mut key = None;
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.context("reading PEM")?;
        match block.label.as_str() {
            "CERTIFICATE" => chain.push(CertificateDer::from(block.contents)),
            "PRIVATE KEY" if key.is_none() => {
                key = Some(PrivateKeyDer::Pkcs8(block.contents.into()));
            }
            "EC PRIVATE KEY" if key.is_none() => {
                key = Some(PrivateKeyDer::Sec1(block.contents.into()));
            }
            "RSA PRIVATE KEY" if key.is_none() => {
                key = Some(PrivateKeyDer::Pkcs1(block.contents.into()));
            }
            _ => {}
        }
    }
    anyhow::ensure!(!chain.is_empty(), "no CERTIFICATE PEM block");
    let key = key.context("no private key PEM block")?;
    Ok((chain, key))
}

/// Where the serving certificates are kept (`kubelet-server-*.pem`).
pub fn store(args: &KubeletArgs) -> Store {
    Store::new(super::cert_dir(args), "kubelet-server")
}

/// What this node's serving certificate must say.
pub fn template(args: &KubeletArgs) -> Template {
    Template::node_serving(&args.node_name, args.node_ip)
}

/// The certificate the kubelet API starts with: the stored one when
/// `--rotate-server-certificates` is on and it still names this node and its address (else
/// none yet: [`keep`] asks for one), or a self-signed one.
pub fn initial(args: &KubeletArgs) -> anyhow::Result<Arc<ServingCertificate>> {
    if !args.rotate_server_certificates {
        return Ok(Arc::new(ServingCertificate::self_signed(
            &args.node_name,
            args.node_ip,
        )?));
    }
    let serving = ServingCertificate::default();
    let current = store(args).current();
    if let Ok(pem) = std::fs::read(&current) {
        if template(args).satisfied_by(&pem) {
            match serving.set_from_pem(&pem) {
                Ok(()) => {
                    tracing::info!(path = %current.display(), "serving with the stored certificate")
                }
                Err(e) => tracing::warn!("{}: {e:#}", current.display()),
            }
        }
    }
    Ok(Arc::new(serving))
}

/// Keeps the serving certificate issued and fresh (`--rotate-server-certificates`): asks for
/// one now when there is none (or it no longer names the node and its address), else at its
/// rotation deadline, and swaps it into `serving`. Never returns.
pub async fn keep(args: Arc<KubeletArgs>, client: kube::Client, serving: Arc<ServingCertificate>) {
    let store = store(&args);
    let template = template(&args);
    super::keep_renewed("serving certificate", &store, Some(&template), || {
        renew(&client, &store, &template, &serving)
    })
    .await
}

async fn renew(
    client: &kube::Client,
    store: &Store,
    template: &Template,
    serving: &ServingCertificate,
) -> anyhow::Result<()> {
    // A new key for each request, as client-go's manager makes one per rotation.
    let key = rcgen::KeyPair::generate()?;
    let certificate = request_certificate(
        client.clone(),
        template,
        &KUBELET_SERVING,
        &key,
        Naming::Generated,
        RENEWAL_WAIT,
    )
    .await?;
    let current = store.store(&certificate, &key)?;
    let pem = std::fs::read(&current).with_context(|| format!("reading {}", current.display()))?;
    serving.set_from_pem(&pem)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_certificate_is_served() {
        let ip: IpAddr = "192.168.56.11".parse().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["worker".to_string(), ip.to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_path_buf(), "kubelet-server");
        let current = store.store(cert.pem().as_bytes(), &key).unwrap();
        let serving = ServingCertificate::default();
        assert!(!serving.is_set());
        serving
            .set_from_pem(&std::fs::read(current).unwrap())
            .unwrap();
        assert!(serving.is_set());
        let served = serving.current.read().unwrap().clone().unwrap();
        assert_eq!(served.cert[0].as_ref(), cert.der().as_ref());
        // A key that is not the certificate's is refused; the served one stays.
        let other = rcgen::KeyPair::generate().unwrap();
        let mut mismatched = cert.pem();
        mismatched.push_str(&other.serialize_pem());
        assert!(serving.set_from_pem(mismatched.as_bytes()).is_err());
        assert!(serving.set_from_pem(b"nothing").is_err());
        assert!(serving.is_set());
    }

    #[test]
    fn self_signed_names_the_node() {
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let serving = ServingCertificate::self_signed("n1", ip).unwrap();
        let served = serving.current.read().unwrap().clone().unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(served.cert[0].as_ref()).unwrap();
        let names = format!("{:?}", cert.subject_alternative_name().unwrap().unwrap());
        assert!(names.contains("n1"), "{names}");
    }
}
