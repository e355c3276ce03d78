//! The cluster's PKI and credentials, created on first start: a CA, the API server's serving
//! certificate (SANs: 127.0.0.1, the node addresses, kubernetes.default.svc…) and kubeconfigs.
//! Bearer tokens live in `auth::token_file`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

pub(crate) fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A new self-signed CA named `common_name` (valid until 2036): its key, the parameters it
/// issues with, and its certificate.
pub fn new_ca(
    common_name: &str,
) -> anyhow::Result<(KeyPair, CertificateParams, rcgen::Certificate)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert = params.self_signed(&key)?;
    Ok((key, params, cert))
}

/// Loads the PKI from `dir/tls`, creating it (and a serving certificate for `sans`) when missing.
pub fn ensure_pki(dir: &Path, sans: &[String]) -> anyhow::Result<Pki> {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).with_context(|| format!("creating {}", tls.display()))?;
    let (ca_crt, ca_key, crt, key) = (
        tls.join("ca.crt"),
        tls.join("ca.key"),
        tls.join("apiserver.crt"),
        tls.join("apiserver.key"),
    );
    if ca_crt.exists() && crt.exists() && key.exists() {
        return Ok(Pki {
            ca_pem: std::fs::read_to_string(&ca_crt)?,
            cert_pem: std::fs::read_to_string(&crt)?,
            key_pem: std::fs::read_to_string(&key)?,
        });
    }
    // A CA put in place before the first start (kubeadm's external CA: `ca.crt` and `ca.key`,
    // e.g. made by the Vagrantfile so that nodes can pin it before the cluster exists) signs
    // the serving certificate; otherwise one is made and written first.
    if !(ca_crt.exists() && ca_key.exists()) {
        let (ca_keypair, _, ca_cert) = new_ca("skiff-ca")?;
        write_private(&ca_key, &ca_keypair.serialize_pem())?;
        write_private(&ca_crt, &ca_cert.pem())?;
    }
    let ca_pem = std::fs::read_to_string(&ca_crt)?;
    let ca_keypair = KeyPair::from_pem(&std::fs::read_to_string(&ca_key)?)
        .with_context(|| format!("{}: not a private key rcgen can use", ca_key.display()))?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_keypair)
        .with_context(|| format!("{}: not a CA certificate", ca_crt.display()))?;

    let server_key = KeyPair::generate()?;
    let mut names: Vec<String> = vec![
        "localhost".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        "127.0.0.1".into(),
        "10.96.0.1".into(),
    ];
    for s in sans {
        if !names.contains(s) {
            names.push(s.clone());
        }
    }
    let mut params = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kube-apiserver");
    params.distinguished_name = dn;
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&server_key, &issuer)?;

    write_private(&key, &server_key.serialize_pem())?;
    write_private(&crt, &cert.pem())?;
    Ok(Pki {
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: server_key.serialize_pem(),
    })
}

/// The API server's client certificate toward kubelets (upstream's
/// `--kubelet-client-certificate`/`--kubelet-client-key`, which kubeadm makes as
/// `apiserver-kubelet-client.crt`): `dir/tls/apiserver-kubelet-client.{crt,key}`, signed by the
/// cluster CA, CN `kube-apiserver-kubelet-client` (the user skiff's RBAC policy binds to
/// `system:kubelet-api-admin`), client-auth usage. Made when missing, expired or not signed by
/// the current CA; returns (certificate PEM, key PEM).
///
/// kubeadm also puts it in the group `kubeadm:cluster-admins`, which kubeadm binds to
/// `cluster-admin`; skiff leaves the group out, so the certificate, should it be presented to
/// the API server itself, is worth no more than the kubelet API.
pub fn ensure_kubelet_client_certificate(dir: &Path) -> anyhow::Result<(String, String)> {
    let tls = dir.join("tls");
    let (crt, key) = (
        tls.join("apiserver-kubelet-client.crt"),
        tls.join("apiserver-kubelet-client.key"),
    );
    let ca_pem = std::fs::read_to_string(tls.join("ca.crt"))
        .with_context(|| format!("reading {}", tls.join("ca.crt").display()))?;
    if let (Ok(cert_pem), Ok(key_pem)) =
        (std::fs::read_to_string(&crt), std::fs::read_to_string(&key))
    {
        if issued_by(&cert_pem, &ca_pem) {
            return Ok((cert_pem, key_pem));
        }
        tracing::info!(
            "{} is expired or not signed by the cluster CA: making a new one",
            crt.display()
        );
    }
    let ca_key_pem = std::fs::read_to_string(tls.join("ca.key")).with_context(|| {
        format!(
            "reading {} to sign the API server's kubelet client certificate (or pass \
             --kubelet-client-certificate and --kubelet-client-key)",
            tls.join("ca.key").display()
        )
    })?;
    let ca_key = KeyPair::from_pem(&ca_key_pem).context("the cluster CA's key")?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).context("the cluster CA")?;
    let client_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        crate::kubelet_proxy::KUBELET_CLIENT_USER,
    );
    params.distinguished_name = dn;
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&client_key, &issuer)?;
    write_private(&key, &client_key.serialize_pem())?;
    write_private(&crt, &cert.pem())?;
    Ok((cert.pem(), client_key.serialize_pem()))
}

/// Whether `cert_pem` is valid now and its signature verifies with the key of `ca_pem`.
fn issued_by(cert_pem: &str, ca_pem: &str) -> bool {
    let parse = |pem: &str| {
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .ok()
            .map(|(_, block)| block.contents)
    };
    let (Some(cert_der), Some(ca_der)) = (parse(cert_pem), parse(ca_pem)) else {
        return false;
    };
    let (Ok((_, cert)), Ok((_, ca))) = (
        x509_parser::parse_x509_certificate(&cert_der),
        x509_parser::parse_x509_certificate(&ca_der),
    ) else {
        return false;
    };
    cert.validity().is_valid() && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// The serving TLS configuration: the serving certificate, and a request (never a demand) for a
/// client certificate, judged by `client_certs` (see `auth::x509`).
pub fn server_config(
    pki: &Pki,
    client_certs: Arc<crate::auth::x509::ClientCertificates>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs: Vec<_> =
        rustls_pemfile::certs(&mut pki.cert_pem.as_bytes()).collect::<Result<_, _>>()?;
    let key = rustls_pemfile::private_key(&mut pki.key_pem.as_bytes())?
        .context("no private key in apiserver.key")?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_client_cert_verifier(client_certs)
    .with_single_cert(certs, key)?;
    // kubectl speaks HTTP/2 when offered; exec/attach upgrades need HTTP/1.1.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Writes a kubeconfig for `server` that trusts the cluster CA and authenticates as `user`
/// with `token`.
pub fn write_kubeconfig(
    path: &Path,
    server: &str,
    ca_pem: &str,
    user: &str,
    token: &str,
) -> anyhow::Result<()> {
    write_private(
        path,
        &kubeconfig_text(server, ca_pem, user, &format!("token: {token}")),
    )
}

/// Writes a kubeconfig for `server` that trusts the cluster CA and authenticates as `user` with
/// a client certificate (`client-certificate-data`/`client-key-data`, both PEM).
pub fn write_cert_kubeconfig(
    path: &Path,
    server: &str,
    ca_pem: &str,
    user: &str,
    cert_pem: &str,
    key_pem: &str,
) -> anyhow::Result<()> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let credentials = format!(
        "client-certificate-data: {}\n    client-key-data: {}",
        b64(cert_pem),
        b64(key_pem)
    );
    write_private(path, &kubeconfig_text(server, ca_pem, user, &credentials))
}

/// A kubeconfig with one cluster, user and context; `credentials` are the user's fields
/// (indented by four spaces when several).
fn kubeconfig_text(server: &str, ca_pem: &str, user: &str, credentials: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n- name: {user}\n  user:\n    {credentials}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: {user}\n\
         current-context: skiff\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kubeadm's external CA: `ca.crt` and `ca.key` made elsewhere (here by the openssl CLI)
    /// before the first start sign the serving certificate and are kept as they are.
    #[test]
    fn a_ca_put_in_place_beforehand_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        let made = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
            ])
            .args(["-nodes", "-days", "30", "-subj", "/CN=external-ca"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args([
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            ])
            .arg("-keyout")
            .arg(tls.join("ca.key"))
            .arg("-out")
            .arg(tls.join("ca.crt"))
            .output()
            .unwrap();
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let given = std::fs::read_to_string(tls.join("ca.crt")).unwrap();
        let pki = ensure_pki(dir.path(), &["192.168.56.10".into()]).unwrap();
        assert_eq!(pki.ca_pem, given);
        assert!(issued_by(&pki.cert_pem, &given));
        assert_eq!(std::fs::read_to_string(tls.join("ca.crt")).unwrap(), given);
        // Loaded as it is at the next start.
        assert_eq!(ensure_pki(dir.path(), &[]).unwrap().cert_pem, pki.cert_pem);
    }

    #[test]
    fn the_kubelet_client_certificate_is_signed_by_the_ca_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let pki = ensure_pki(dir.path(), &[]).unwrap();
        let (cert, key) = ensure_kubelet_client_certificate(dir.path()).unwrap();
        assert!(issued_by(&cert, &pki.ca_pem));
        let (_, block) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&block.contents).unwrap();
        let cn: Vec<_> = parsed
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["kube-apiserver-kubelet-client"]);
        assert_eq!(parsed.subject().iter_organization().count(), 0);
        let usage = parsed.extended_key_usage().unwrap().unwrap().value;
        assert!(usage.client_auth && !usage.server_auth);
        // The auth layer reads it as the user RBAC binds to system:kubelet-api-admin.
        let user = crate::auth::x509::authenticate(&block.contents).unwrap();
        assert_eq!(user.name, "kube-apiserver-kubelet-client");
        // A second start keeps it.
        assert_eq!(
            ensure_kubelet_client_certificate(dir.path()).unwrap(),
            (cert.clone(), key)
        );
        // One not signed by the CA is replaced.
        let stranger = rcgen::generate_simple_self_signed(vec!["x".to_string()]).unwrap();
        write_private(
            &dir.path().join("tls/apiserver-kubelet-client.crt"),
            &stranger.cert.pem(),
        )
        .unwrap();
        let (renewed, _) = ensure_kubelet_client_certificate(dir.path()).unwrap();
        assert_ne!(renewed, cert);
        assert!(issued_by(&renewed, &pki.ca_pem));
        assert!(!issued_by(&stranger.cert.pem(), &pki.ca_pem));
    }

    #[test]
    fn kubeconfigs_with_a_token_or_a_certificate() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let token = kubeconfig_text("https://127.0.0.1:6443", "CA", "admin", "token: t0k");
        let parsed: serde_yaml::Value = serde_yaml::from_str(&token).unwrap();
        assert_eq!(parsed["users"][0]["user"]["token"], "t0k");
        assert_eq!(
            parsed["clusters"][0]["cluster"]["certificate-authority-data"],
            b64("CA").as_str()
        );
        let dir = std::env::temp_dir().join(format!("skiff-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.kubeconfig");
        write_cert_kubeconfig(
            &path,
            "https://h:6443",
            "CA",
            "system:node:w",
            "CERT",
            "KEY",
        )
        .unwrap();
        let parsed: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let user = &parsed["users"][0];
        assert_eq!(user["name"], "system:node:w");
        assert_eq!(
            user["user"]["client-certificate-data"],
            b64("CERT").as_str()
        );
        assert_eq!(user["user"]["client-key-data"], b64("KEY").as_str());
        assert_eq!(parsed["current-context"], "skiff");
    }
}
