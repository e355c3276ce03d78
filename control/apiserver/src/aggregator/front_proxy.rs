//! The front proxy's credentials and what extension servers are told about them.
//!
//! kubeadm's layout: a CA of its own (`front-proxy-ca.crt`), separate from the cluster CA so
//! that no ordinary client certificate can pass for the proxy, and a client certificate
//! `front-proxy-client.crt` (CN `front-proxy-client`) signed by it, made under `<data-dir>/tls`
//! on first start unless `--proxy-client-cert-file`/`--proxy-client-key-file` and
//! `--requestheader-client-ca-file` name others. An extension server learns whom to trust from
//! the ConfigMap `kube-system/extension-apiserver-authentication`, which the API server keeps
//! current at start as upstream's `ClientCARegistrationHook` does: the cluster CA for client
//! certificates, the front-proxy CA, the allowed common names and the header names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, KeyUsagePurpose};
use serde_json::{json, Value};

use crate::tls::write_private;

/// The common name of the client certificate skiff makes (kubeadm's).
pub const CLIENT_COMMON_NAME: &str = "front-proxy-client";

/// kube-apiserver's request-header and proxy-client flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AggregatorArgs {
    /// The CA that signs the front proxy's client certificate, published to extension servers.
    /// Default: `<data-dir>/tls/front-proxy-ca.crt`, made on first start.
    #[arg(long)]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// Common names a front-proxy certificate may carry (comma-separated; empty: any).
    /// Default when skiff makes the certificate: `front-proxy-client`.
    #[arg(long, value_delimiter = ',')]
    pub requestheader_allowed_names: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-User")]
    pub requestheader_username_headers: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-Uid")]
    pub requestheader_uid_headers: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-Group")]
    pub requestheader_group_headers: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "X-Remote-Extra-")]
    pub requestheader_extra_headers_prefix: Vec<String>,
    /// The client certificate presented to extension servers (with its key).
    #[arg(long, requires = "proxy_client_key_file")]
    pub proxy_client_cert_file: Option<PathBuf>,
    #[arg(long, requires = "proxy_client_cert_file")]
    pub proxy_client_key_file: Option<PathBuf>,
}

/// The front proxy's identity and the TLS configurations built from it, one per CA bundle.
pub struct ProxyClient {
    cert_pem: String,
    key_pem: String,
    /// The `extension-apiserver-authentication` data.
    pub published: Value,
    configs: parking_lot::Mutex<HashMap<String, Arc<rustls::ClientConfig>>>,
}

impl ProxyClient {
    /// Reads (or makes) the front proxy's CA and client certificate under `data_dir`.
    pub fn ensure(
        args: &AggregatorArgs,
        data_dir: &Path,
        cluster_ca_pem: &str,
    ) -> anyhow::Result<ProxyClient> {
        let tls = data_dir.join("tls");
        let made = args.proxy_client_cert_file.is_none();
        let (ca_pem, cert_pem, key_pem) =
            match (&args.proxy_client_cert_file, &args.proxy_client_key_file) {
                (Some(cert), Some(key)) => {
                    let read = |p: &Path| {
                        std::fs::read_to_string(p)
                            .with_context(|| format!("reading {}", p.display()))
                    };
                    let ca = match &args.requestheader_client_ca_file {
                        Some(path) => read(path)?,
                        None => anyhow::bail!(
                            "--proxy-client-cert-file needs --requestheader-client-ca-file: \
                         extension servers must be told which CA signed it"
                        ),
                    };
                    (ca, read(cert)?, read(key)?)
                }
                _ => ensure_files(&tls)?,
            };
        let allowed: Vec<String> = if args.requestheader_allowed_names.is_empty() && made {
            vec![CLIENT_COMMON_NAME.into()]
        } else {
            args.requestheader_allowed_names
                .iter()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect()
        };
        let list = |v: &[String]| serde_json::to_string(v).expect("strings serialise");
        let published = json!({
            "client-ca-file": cluster_ca_pem,
            "requestheader-client-ca-file": ca_pem,
            "requestheader-allowed-names": list(&allowed),
            "requestheader-username-headers": list(&args.requestheader_username_headers),
            "requestheader-uid-headers": list(&args.requestheader_uid_headers),
            "requestheader-group-headers": list(&args.requestheader_group_headers),
            "requestheader-extra-headers-prefix": list(&args.requestheader_extra_headers_prefix),
        });
        let client = ProxyClient {
            cert_pem,
            key_pem,
            published,
            configs: Default::default(),
        };
        // A certificate and key that do not go together stop the server now, not the first proxy.
        client.tls_for("", true)?;
        Ok(client)
    }

    /// TLS toward a backend: presenting the front-proxy certificate, verifying the server
    /// against `ca_bundle` (base64 of PEM, as the APIService holds it) or not at all.
    pub fn tls_for(
        &self,
        ca_bundle: &str,
        insecure: bool,
    ) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let key = if insecure {
            String::new()
        } else {
            ca_bundle.to_string()
        };
        if let Some(config) = self.configs.lock().get(&key) {
            return Ok(config.clone());
        }
        let ca_pem = if insecure {
            None
        } else {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(ca_bundle)
                .context("spec.caBundle is not base64")?;
            Some(String::from_utf8(pem).context("spec.caBundle is not PEM")?)
        };
        let config =
            crate::kubelet_proxy::client_config(&self.cert_pem, &self.key_pem, ca_pem.as_deref())?;
        self.configs.lock().insert(key, config.clone());
        Ok(config)
    }
}

/// `tls/front-proxy-ca.{crt,key}` and `tls/front-proxy-client.{crt,key}`, made when missing;
/// returns (CA PEM, client certificate PEM, client key PEM).
fn ensure_files(tls: &Path) -> anyhow::Result<(String, String, String)> {
    std::fs::create_dir_all(tls).with_context(|| format!("creating {}", tls.display()))?;
    let (ca_crt, ca_key, crt, key) = (
        tls.join("front-proxy-ca.crt"),
        tls.join("front-proxy-ca.key"),
        tls.join("front-proxy-client.crt"),
        tls.join("front-proxy-client.key"),
    );
    if let (Ok(ca), Ok(cert), Ok(key)) = (
        std::fs::read_to_string(&ca_crt),
        std::fs::read_to_string(&crt),
        std::fs::read_to_string(&key),
    ) {
        return Ok((ca, cert, key));
    }
    let (ca_keypair, ca_params, ca_cert) = crate::tls::new_ca("front-proxy-ca")?;
    let issuer = rcgen::Issuer::new(ca_params, &ca_keypair);
    let client_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CLIENT_COMMON_NAME);
    params.distinguished_name = dn;
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&client_key, &issuer)?;
    write_private(&ca_key, &ca_keypair.serialize_pem())?;
    write_private(&key, &client_key.serialize_pem())?;
    write_private(&crt, &cert.pem())?;
    write_private(&ca_crt, &ca_cert.pem())?;
    Ok((ca_cert.pem(), cert.pem(), client_key.serialize_pem()))
}

/// A header-name-safe form of an extra's key (client-go's `headerKeyEscape`): bytes legal in
/// a header name stay, everything else (and `%`) is percent-encoded.
pub fn escape_extra_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        let legal = b.is_ascii_alphanumeric() || b"!#$&'*+-.^_`|~".contains(&b);
        if legal {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: AggregatorArgs,
    }

    #[test]
    fn made_once_and_published_with_upstreams_header_names() {
        let dir = tempfile::tempdir().unwrap();
        let args = Command::parse_from(["x"]).args;
        let client = ProxyClient::ensure(&args, dir.path(), "CLUSTER CA").unwrap();
        let p = &client.published;
        assert_eq!(p["client-ca-file"], "CLUSTER CA");
        assert_eq!(p["requestheader-allowed-names"], "[\"front-proxy-client\"]");
        assert_eq!(p["requestheader-username-headers"], "[\"X-Remote-User\"]");
        assert_eq!(p["requestheader-group-headers"], "[\"X-Remote-Group\"]");
        assert_eq!(
            p["requestheader-extra-headers-prefix"],
            "[\"X-Remote-Extra-\"]"
        );
        let ca = p["requestheader-client-ca-file"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(ca.contains("BEGIN CERTIFICATE"));
        // The client certificate chains to the published CA, as `front-proxy-client`.
        let cert = std::fs::read_to_string(dir.path().join("tls/front-proxy-client.crt")).unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&block.contents).unwrap();
        let (_, ca_block) = x509_parser::pem::parse_x509_pem(ca.as_bytes()).unwrap();
        let (_, ca_parsed) = x509_parser::parse_x509_certificate(&ca_block.contents).unwrap();
        assert!(parsed
            .verify_signature(Some(ca_parsed.public_key()))
            .is_ok());
        let cn: Vec<_> = parsed
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cn, [CLIENT_COMMON_NAME]);
        // A second start keeps them.
        let again = ProxyClient::ensure(&args, dir.path(), "CLUSTER CA").unwrap();
        assert_eq!(again.published, client.published);
        // A bundle that is not base64 is a clear error.
        assert!(client.tls_for("%%%", false).is_err());
        assert!(client.tls_for("", true).is_ok());
    }

    #[test]
    fn extra_keys_are_escaped_for_headers() {
        assert_eq!(escape_extra_key("scopes"), "scopes");
        assert_eq!(
            escape_extra_key("authentication.kubernetes.io/pod-name"),
            "authentication.kubernetes.io%2Fpod-name"
        );
        assert_eq!(escape_extra_key("a b%"), "a%20b%25");
    }
}
