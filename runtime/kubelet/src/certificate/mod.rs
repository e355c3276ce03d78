//! Certificates from the cluster (upstream `pkg/kubelet/certificate` and client-go's
//! `util/certificate`): the kubelet asks the API server for a certificate with a
//! CertificateSigningRequest, waits until it is approved and issued, keeps it on disk
//! (`<cert-dir>/<prefix>-<time>.pem`, certificate and key, behind the link
//! `<prefix>-current.pem`) and renews it at a random point between 70 % and 90 % of its
//! lifetime. Two certificates go this way:
//!
//! - `client.rs`: the client certificate the kubelet talks to the API server with (TLS
//!   bootstrap with `--bootstrap-kubeconfig`, renewal with `--rotate-certificates`); signer
//!   `kubernetes.io/kube-apiserver-client-kubelet`, approved by the controller manager.
//! - `serving.rs`: the certificate the kubelet API (:10250) serves with
//!   (`--rotate-server-certificates`, upstream's `serverTLSBootstrap`); signer
//!   `kubernetes.io/kubelet-serving`, approved by an administrator (see there why).
//!
//! What differs between the two is a [`Template`] (subject and names), a [`Signer`] (its name
//! and the usages asked for), the [`Store`]'s file prefix and how a request is named
//! ([`Naming`]). Making the request, waiting for it, storing the answer and the renewal
//! schedule ([`keep_renewed`]) are written once, here.

pub mod client;
pub mod serving;

pub use client::{bootstrap, cert_dir, rotate, uses_store, Rotating};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use sha2::Digest;

/// A signer and the key usages asked of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signer {
    pub name: &'static str,
    pub usages: &'static [&'static str],
}

/// The kubelet's client certificate: an ECDSA key's usages (no key encipherment), as upstream
/// asks.
pub const KUBELET_CLIENT: Signer = Signer {
    name: "kubernetes.io/kube-apiserver-client-kubelet",
    usages: &["digital signature", "client auth"],
};

/// The kubelet's serving certificate: client-go's `DefaultKubeletServingGetUsages` for an
/// ECDSA key (key encipherment is only asked for RSA keys).
pub const KUBELET_SERVING: Signer = Signer {
    name: "kubernetes.io/kubelet-serving",
    usages: &["digital signature", "server auth"],
};

/// How long the TLS bootstrap waits for its first client certificate, as upstream.
pub const BOOTSTRAP_WAIT: Duration = Duration::from_secs(3600);
/// How long a renewal waits for its request to be issued (client-go's certificate manager's
/// `certificateWaitTimeout`); then it asks again, with backoff.
pub const RENEWAL_WAIT: Duration = Duration::from_secs(15 * 60);

/// What a requested certificate says: its subject and subject alternative names (upstream's
/// `x509.CertificateRequest` template).
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
}

impl Template {
    /// `system:node:<node>` in `system:nodes`: both kubelet certificates' subject.
    fn node(node: &str) -> Template {
        Template {
            common_name: format!("system:node:{node}"),
            organizations: vec!["system:nodes".into()],
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
        }
    }

    /// The client certificate's: the subject, no names.
    pub fn node_client(node: &str) -> Template {
        Template::node(node)
    }

    /// The serving certificate's: the subject, and the node's name (upstream: its Hostname
    /// address, which is the node name here) and IP as the names clients dial.
    pub fn node_serving(node: &str, ip: IpAddr) -> Template {
        Template {
            dns_names: vec![node.to_string()],
            ip_addresses: vec![ip],
            ..Template::node(node)
        }
    }

    /// The PEM PKCS#10 request for this template, signed with `key`.
    pub fn request_pem(&self, key: &rcgen::KeyPair) -> anyhow::Result<String> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for o in &self.organizations {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, o.as_str());
        }
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, self.common_name.as_str());
        for name in &self.dns_names {
            let name = rcgen::string::Ia5String::try_from(name.as_str())
                .with_context(|| format!("{name:?} is not a DNS name"))?;
            params.subject_alt_names.push(rcgen::SanType::DnsName(name));
        }
        for ip in &self.ip_addresses {
            params
                .subject_alt_names
                .push(rcgen::SanType::IpAddress(*ip));
        }
        Ok(params.serialize_request(key)?.pem()?)
    }

    /// Upstream's `certSatisfiesTemplate`: the certificate `pem` has this common name and at
    /// least these organizations, DNS names and IP addresses (more do not matter). A
    /// certificate that does not (the node's address changed) is renewed at once.
    pub fn satisfied_by(&self, pem: &[u8]) -> bool {
        let Some(der) = certificates(pem).into_iter().next() else {
            return false;
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
            return false;
        };
        let subject = cert.subject();
        let common_name = subject
            .iter_common_name()
            .last()
            .and_then(|a| a.as_str().ok());
        if common_name != Some(self.common_name.as_str()) {
            return false;
        }
        let organizations: Vec<&str> = subject
            .iter_organization()
            .filter_map(|a| a.as_str().ok())
            .collect();
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Ok(Some(names)) = cert.subject_alternative_name() {
            for name in &names.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::DNSName(n) => dns_names.push(*n),
                    x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_bytes(bytes) {
                            ip_addresses.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        self.organizations
            .iter()
            .all(|o| organizations.contains(&o.as_str()))
            && self
                .dns_names
                .iter()
                .all(|n| dns_names.contains(&n.as_str()))
            && self.ip_addresses.iter().all(|ip| ip_addresses.contains(ip))
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        return Some(IpAddr::V6(Ipv6Addr::from(v6)));
    }
    None
}

/// The DER of every CERTIFICATE block in `pem`, in order.
pub fn certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .filter(|block| block.label == "CERTIFICATE")
        .map(|block| block.contents)
        .collect()
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

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How a request is named.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Naming {
    /// Upstream bootstrap's `digestedName` ([`request_name`]): a kubelet restarted with the
    /// same pending key finds its earlier request again instead of asking twice.
    Digested,
    /// `generateName: csr-`, as client-go's certificate manager names its requests: each
    /// attempt, with a new key, is a new request.
    Generated,
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

/// The PEM request for `template` with `key`, and its digested name.
pub fn certificate_request(
    template: &Template,
    signer: &Signer,
    key: &rcgen::KeyPair,
) -> anyhow::Result<(String, String)> {
    let pem = template.request_pem(key)?;
    let organizations: Vec<&str> = template.organizations.iter().map(String::as_str).collect();
    let name = request_name(
        &rcgen::PublicKeyData::subject_public_key_info(key),
        &template.common_name,
        &organizations,
        signer.usages,
    );
    Ok((pem, name))
}

/// Asks `signer` through `client` for a certificate of `template` with `key` and waits (at
/// most `wait`) until it is issued: its PEM. A request that is denied or failed is an error.
pub async fn request_certificate(
    client: kube::Client,
    template: &Template,
    signer: &Signer,
    key: &rcgen::KeyPair,
    naming: Naming,
    wait: Duration,
) -> anyhow::Result<Vec<u8>> {
    let (request, digested) = certificate_request(template, signer, key)?;
    let api: Api<CertificateSigningRequest> = Api::all(client);
    let metadata = match naming {
        Naming::Digested => ObjectMeta {
            name: Some(digested.clone()),
            ..Default::default()
        },
        Naming::Generated => ObjectMeta {
            generate_name: Some("csr-".into()),
            ..Default::default()
        },
    };
    let csr = CertificateSigningRequest {
        metadata,
        spec: CertificateSigningRequestSpec {
            request: ByteString(request.clone().into_bytes()),
            signer_name: signer.name.into(),
            usages: Some(signer.usages.iter().map(|u| u.to_string()).collect()),
            ..Default::default()
        },
        status: None,
    };
    let name = match api.create(&PostParams::default(), &csr).await {
        Ok(created) => {
            let name = created.metadata.name.unwrap_or(digested);
            tracing::info!(csr = %name, signer = signer.name, "asked for a certificate");
            name
        }
        Err(kube::Error::Api(e)) if e.code == 409 && naming == Naming::Digested => {
            // Our own earlier request (the name is the digest of key, subject and usages).
            let existing = api.get(&digested).await?;
            anyhow::ensure!(
                existing.spec.request.0 == request.as_bytes()
                    && existing.spec.signer_name == signer.name,
                "the CertificateSigningRequest {digested} exists and is not this kubelet's request"
            );
            tracing::info!(csr = %digested, "waiting for the earlier request for a certificate");
            digested
        }
        Err(e) => return Err(e).context("creating the CertificateSigningRequest"),
    };
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
    let csr = tokio::time::timeout(wait, issued)
        .await
        .with_context(|| format!("timed out after {wait:?} waiting for {name} to be issued"))?
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

/// Certificates and keys of one kind in the certificate directory, as client-go's file store
/// keeps them: `<prefix>-<time>.pem` (certificate, then key), the link `<prefix>-current.pem`
/// to the newest, and `<prefix>.key.tmp`, the key of a request not yet answered.
#[derive(Debug, Clone)]
pub struct Store {
    pub dir: PathBuf,
    pub prefix: &'static str,
}

impl Store {
    pub fn new(dir: PathBuf, prefix: &'static str) -> Store {
        Store { dir, prefix }
    }

    /// The link to the newest certificate and key.
    pub fn current(&self) -> PathBuf {
        self.dir.join(format!("{}-current.pem", self.prefix))
    }

    fn pending_key_path(&self) -> PathBuf {
        self.dir.join(format!("{}.key.tmp", self.prefix))
    }

    /// The key waiting for a certificate, or a new one (ECDSA P-256, as upstream's), kept
    /// until a certificate for it is stored.
    pub fn pending_key(&self) -> anyhow::Result<rcgen::KeyPair> {
        let path = self.pending_key_path();
        if let Ok(pem) = std::fs::read_to_string(&path) {
            match rcgen::KeyPair::from_pem(&pem) {
                Ok(key) => return Ok(key),
                Err(e) => tracing::warn!("{}: {e}; making a new key", path.display()),
            }
        }
        let key = rcgen::KeyPair::generate()?;
        create_private_dir(&self.dir)?;
        write_private(&path, key.serialize_pem().as_bytes())?;
        Ok(key)
    }

    /// Stores `certificate` with `key` as `<prefix>-<time>.pem` and points the current link at
    /// it; the pending key goes. Returns the link.
    pub fn store(&self, certificate: &[u8], key: &rcgen::KeyPair) -> anyhow::Result<PathBuf> {
        create_private_dir(&self.dir)?;
        let stamp = jiff::Timestamp::now()
            .strftime("%Y-%m-%d-%H-%M-%S")
            .to_string();
        let file = self.dir.join(format!("{}-{stamp}.pem", self.prefix));
        let mut contents = certificate.to_vec();
        if !contents.ends_with(b"\n") {
            contents.push(b'\n');
        }
        contents.extend_from_slice(key.serialize_pem().as_bytes());
        write_private(&file, &contents)?;
        let current = self.current();
        let link = self
            .dir
            .join(format!("{}-current.pem.updating", self.prefix));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(file.file_name().unwrap_or_default(), &link)
            .with_context(|| format!("linking {}", link.display()))?;
        std::fs::rename(&link, &current)
            .with_context(|| format!("updating {}", current.display()))?;
        let _ = std::fs::remove_file(self.pending_key_path());
        Ok(current)
    }
}

pub(crate) fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
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

pub(crate) fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
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

/// How long to wait before renewing the certificate `pem` (the current one of a store):
/// until its rotation deadline; nothing when there is none, it cannot be read, or it does
/// not satisfy `template`.
fn renewal_wait(what: &str, pem: Option<&[u8]>, template: Option<&Template>) -> Duration {
    let Some(pem) = pem else {
        tracing::info!("no {what} yet: asking for one");
        return Duration::ZERO;
    };
    if let Some(template) = template {
        if !template.satisfied_by(pem) {
            tracing::info!(
                "the {what} does not name {} with {:?} {:?}: renewing now",
                template.common_name,
                template.dns_names,
                template.ip_addresses
            );
            return Duration::ZERO;
        }
    }
    match validity(pem) {
        Ok((not_before, not_after)) => {
            let deadline = rotation_deadline(not_before, not_after, rand::random());
            tracing::info!(
                expires = %jiff::Timestamp::from_second(not_after).map(|t| t.to_string()).unwrap_or_default(),
                rotation_in_seconds = (deadline - now()).max(0),
                "{what} rotation scheduled"
            );
            Duration::from_secs((deadline - now()).max(0) as u64)
        }
        Err(e) => {
            tracing::warn!("{what}: {e:#}; renewing now");
            Duration::ZERO
        }
    }
}

/// Keeps the current certificate of `store` fresh: waits until its rotation deadline (see
/// [`renewal_wait`]), then runs `renew`; a failed renewal is retried after 10 s, doubling to
/// 5 min. Never returns.
pub async fn keep_renewed<F, Fut>(
    what: &str,
    store: &Store,
    template: Option<&Template>,
    mut renew: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut failures = 0u32;
    loop {
        if failures == 0 {
            let pem = std::fs::read(store.current()).ok();
            tokio::time::sleep(renewal_wait(what, pem.as_deref(), template)).await;
        }
        match renew().await {
            Ok(()) => {
                tracing::info!("{what} rotated");
                failures = 0;
            }
            Err(e) => {
                failures += 1;
                let delay = Duration::from_secs((5u64 << failures.min(6)).min(300));
                tracing::warn!("{what} rotation failed: {e:#}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn cert_pem(
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
    ) -> (String, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        (params.self_signed(&key).unwrap().pem(), key)
    }

    /// A certificate as the signer would issue for `template`'s request.
    fn issued_for(template: &Template) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(template.dns_names.clone()).unwrap();
        for ip in &template.ip_addresses {
            params
                .subject_alt_names
                .push(rcgen::SanType::IpAddress(*ip));
        }
        params.distinguished_name = rcgen::DistinguishedName::new();
        for o in &template.organizations {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, o.as_str());
        }
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, template.common_name.as_str());
        params.self_signed(&key).unwrap().pem()
    }

    fn parse_request(pem: &str) -> Vec<u8> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        assert_eq!(block.label, "CERTIFICATE REQUEST");
        block.contents
    }

    #[test]
    fn client_request_is_a_kubelet_client_request() {
        let key = rcgen::KeyPair::generate().unwrap();
        let template = Template::node_client("worker");
        let (pem, name) = certificate_request(&template, &KUBELET_CLIENT, &key).unwrap();
        let der = parse_request(&pem);
        use x509_parser::prelude::FromDer;
        let (_, csr) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
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
        assert_eq!(
            certificate_request(&template, &KUBELET_CLIENT, &key)
                .unwrap()
                .1,
            name
        );
        let other = rcgen::KeyPair::generate().unwrap();
        assert_ne!(
            certificate_request(&template, &KUBELET_CLIENT, &other)
                .unwrap()
                .1,
            name
        );
    }

    #[test]
    fn serving_request_names_the_node_and_its_ip() {
        let key = rcgen::KeyPair::generate().unwrap();
        let ip: IpAddr = "192.168.56.11".parse().unwrap();
        let template = Template::node_serving("worker", ip);
        let der = parse_request(&template.request_pem(&key).unwrap());
        use x509_parser::prelude::FromDer;
        let (_, csr) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
        csr.verify_signature().unwrap();
        let cn: Vec<_> = csr
            .certification_request_info
            .subject
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["system:node:worker"]);
        let mut names = Vec::new();
        for extension in csr.requested_extensions().unwrap() {
            if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = extension
            {
                for name in &san.general_names {
                    names.push(format!("{name}"));
                }
            }
        }
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names[0].contains("worker"), "{names:?}");
        assert!(
            names[1].contains("192.168.56.11") || names[1].contains("c0:a8:38:0b"),
            "{names:?}"
        );
        assert_eq!(
            KUBELET_SERVING.usages,
            ["digital signature", "server auth"],
            "an ECDSA key's serving usages, as client-go asks"
        );
    }

    #[test]
    fn digested_name_as_upstream() {
        // Upstream's digestedName over fixed inputs (SHA-512/256 of the base64url parts).
        let usages = KUBELET_CLIENT.usages;
        let a = request_name(b"key", "system:node:a", &["system:nodes"], usages);
        let b = request_name(b"key", "system:node:b", &["system:nodes"], usages);
        assert_ne!(a, b);
        let mut hash = sha2::Sha512_256::new();
        hash.update(
            b"a2V5|c3lzdGVtOm5vZGU6YQ|c3lzdGVtOm5vZGVz|ZGlnaXRhbCBzaWduYXR1cmU|Y2xpZW50IGF1dGg|",
        );
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.finalize());
        assert_eq!(a, format!("node-csr-{expected}"));
    }

    #[test]
    fn a_certificate_satisfies_its_template_or_is_renewed() {
        let ip: IpAddr = "192.168.56.11".parse().unwrap();
        let template = Template::node_serving("worker", ip);
        let pem = issued_for(&template);
        assert!(template.satisfied_by(pem.as_bytes()));
        // Extra names do not matter.
        let mut more = template.clone();
        more.dns_names.push("worker.example".into());
        more.ip_addresses.push("10.0.0.1".parse().unwrap());
        assert!(template.satisfied_by(issued_for(&more).as_bytes()));
        // A new address, another name or a missing group: renew.
        let moved = Template::node_serving("worker", "192.168.56.12".parse().unwrap());
        assert!(!moved.satisfied_by(pem.as_bytes()));
        assert!(!Template::node_serving("other", ip).satisfied_by(pem.as_bytes()));
        let mut grouped = template.clone();
        grouped.organizations.push("extra".into());
        assert!(!grouped.satisfied_by(pem.as_bytes()));
        assert!(!template.satisfied_by(b"not a certificate"));
        assert_eq!(
            renewal_wait("test", Some(pem.as_bytes()), Some(&moved)),
            Duration::ZERO
        );
        assert_eq!(renewal_wait("test", None, None), Duration::ZERO);
        assert_eq!(renewal_wait("test", Some(b"garbage"), None), Duration::ZERO);
    }

    #[test]
    fn stores_keep_certificate_and_key_behind_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("pki"), "kubelet-server");
        let first = store.pending_key().unwrap();
        // The pending key survives a restart.
        assert_eq!(
            store.pending_key().unwrap().serialize_pem(),
            first.serialize_pem()
        );
        let (cert, _) = cert_pem((2020, 1, 1), (2099, 1, 1));
        let current = store.store(cert.as_bytes(), &first).unwrap();
        assert_eq!(current, dir.path().join("pki/kubelet-server-current.pem"));
        assert!(std::fs::symlink_metadata(&current)
            .unwrap()
            .file_type()
            .is_symlink());
        let pem = std::fs::read_to_string(&current).unwrap();
        assert!(pem.contains("BEGIN CERTIFICATE") && pem.contains("BEGIN PRIVATE KEY"));
        assert_eq!(certificates(pem.as_bytes()).len(), 1);
        // The pending key went with the stored certificate.
        assert_ne!(
            store.pending_key().unwrap().serialize_pem(),
            first.serialize_pem()
        );
    }

    #[test]
    fn rotation_between_70_and_90_percent() {
        assert_eq!(rotation_deadline(0, 1000, 0.0), 700);
        assert_eq!(rotation_deadline(0, 1000, 1.0), 900);
        assert_eq!(rotation_deadline(100, 1100, 0.5), 900);
        let (cert, _) = cert_pem((2020, 1, 1), (2030, 1, 1));
        let (nb, na) = validity(cert.as_bytes()).unwrap();
        assert!(nb < na);
        // A certificate far from its deadline waits; an expired one renews now.
        let (fresh, _) = cert_pem((2020, 1, 1), (2099, 1, 1));
        assert!(renewal_wait("test", Some(fresh.as_bytes()), None) > Duration::from_secs(86400));
        let (old, _) = cert_pem((2020, 1, 1), (2021, 1, 1));
        assert_eq!(
            renewal_wait("test", Some(old.as_bytes()), None),
            Duration::ZERO
        );
    }
}
