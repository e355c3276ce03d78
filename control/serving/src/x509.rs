//! Client certificates, as k8s.io/apiserver's secure serving takes them: the TLS server asks
//! every client for one and requires none (Go's `tls.RequestClientCert`), the handshake only
//! checks that the client holds the certificate's key, and the chain is judged afterwards by
//! the authenticators ([`crate::requestheader`]): against the front proxy's CA
//! (`requestheader-client-ca-file`) or the client CA (`client-ca-file`), which can change
//! while serving (both come from the ConfigMap `kube-system/extension-apiserver-authentication`).
//!
//! The certificates a connection's client sent travel with each of its requests as the
//! extension [`PeerCertificates`].

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// The chain a connection's client presented (leaf first), unverified; an extension on every
/// request of that connection.
#[derive(Clone, Debug)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

/// A set of CA certificates a client chain is verified against (a `*-ca-file` bundle).
#[derive(Clone, Debug)]
pub struct CaBundle {
    webpki: Arc<dyn ClientCertVerifier>,
    /// The PEM it was made from, to tell a changed bundle from the same one.
    pub pem: String,
}

impl CaBundle {
    /// The CA certificates in `pem` (at least one).
    pub fn from_pem(pem: &str) -> anyhow::Result<CaBundle> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
            roots.add(cert?)?;
        }
        anyhow::ensure!(!roots.is_empty(), "the CA bundle holds no certificate");
        let webpki = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .allow_unauthenticated()
        .build()?;
        Ok(CaBundle {
            webpki,
            pem: pem.to_string(),
        })
    }

    /// Whether `chain` (leaf first) verifies against this bundle now, for client auth; the
    /// error as Go's x509 would word its gist.
    pub fn verify(&self, chain: &[CertificateDer<'_>]) -> Result<(), String> {
        let (leaf, intermediates) = chain.split_first().ok_or("no certificate")?;
        self.webpki
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| format!("verifying certificate: {e}"))
    }
}

/// The subject of a certificate: its last CommonName (Go's `pkix.Name` keeps the last) and its
/// Organizations in order. None when it cannot be parsed.
pub fn subject(cert_der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .last()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let organizations = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((cn, organizations))
}

/// The server side of the handshake: asks for a certificate, requires none, accepts any chain
/// whose key signs the handshake (see the module doc).
#[derive(Debug)]
pub struct RequestClientCert {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl RequestClientCert {
    pub fn new() -> Arc<RequestClientCert> {
        Arc::new(RequestClientCert {
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        })
    }
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The CAs change while serving; clients (curl, Go) send their certificate without a
        // matching hint.
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) struct TestCa {
        pub params: rcgen::CertificateParams,
        pub key: rcgen::KeyPair,
        pub cert: rcgen::Certificate,
    }

    pub(crate) fn ca(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa { params, key, cert }
    }

    pub(crate) fn client(cn: &str, orgs: &[&str], issuer: &TestCa) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        for o in orgs {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *o);
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::from_params(&issuer.params, &issuer.key);
        params.signed_by(&key, &issuer).unwrap().der().clone()
    }

    #[test]
    fn chains_verify_against_their_own_ca_only() {
        let front = ca("front-proxy-ca");
        let other = ca("other-ca");
        let bundle = CaBundle::from_pem(&front.cert.pem()).unwrap();
        let good = client("front-proxy-client", &[], &front);
        let bad = client("front-proxy-client", &[], &other);
        assert!(bundle.verify(std::slice::from_ref(&good)).is_ok());
        assert!(bundle.verify(std::slice::from_ref(&bad)).is_err());
        assert!(bundle.verify(&[]).is_err());
        assert!(CaBundle::from_pem("not pem").is_err());
    }

    #[test]
    fn subjects_as_go_reads_them() {
        let issuer = ca("ca");
        // (rcgen writes one value per attribute type.)
        let cert = client("jane", &["dev"], &issuer);
        assert_eq!(
            subject(&cert),
            Some(("jane".to_string(), vec!["dev".to_string()]))
        );
    }
}
