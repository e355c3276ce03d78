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
    let ca_keypair = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "skiff-ca");
    ca_params.distinguished_name = dn;
    ca_params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let ca_cert = ca_params.self_signed(&ca_keypair)?;
    let issuer = rcgen::Issuer::new(ca_params, &ca_keypair);

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

    write_private(&ca_key, &ca_keypair.serialize_pem())?;
    write_private(&key, &server_key.serialize_pem())?;
    write_private(&crt, &cert.pem())?;
    write_private(&ca_crt, &ca_cert.pem())?;
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: server_key.serialize_pem(),
    })
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
