//! x509 client-certificate authentication (upstream `apiserver/pkg/authentication/request/x509`
//! with `CommonNameUserConversion`): a client that presents a certificate issued by the cluster
//! CA is the user named by its subject's CommonName, in the groups named by its Organizations,
//! with the uid of its `UID` attribute (0.9.2342.19200300.100.1.1, upstream's
//! AllowParsingUserUIDFromCertAuth, on by default since 1.33) and the credential id
//! `X509SHA256=<hex of the certificate's SHA-256>` as the extra
//! `authentication.kubernetes.io/credential-id`.
//!
//! How the certificate gets here, as upstream's `tls.RequestClientCert`: the TLS server asks
//! every client for a certificate and requires none ([`ClientCertificates`] is the rustls
//! verifier). The handshake accepts any certificate whose key signs the handshake (the client
//! proves it holds the key), and the accept loop (`server::start`) then verifies the chain
//! against the cluster CA with webpki ([`ClientCertificates::verified_leaf`]), client-auth
//! usage included. Only a verified leaf is attached to the connection's requests, as the
//! extension [`ClientCertificate`]; a certificate that does not verify (another CA, expired,
//! not for client auth) is not a handshake failure but the extension
//! [`RefusedClientCertificate`]: as upstream's x509 authenticator fails and its union
//! authenticator moves on, a request carrying one may still authenticate with a bearer token,
//! and is otherwise a 401 — never the anonymous user.
//!
//! Authentication order, as upstream's: this first, then bearer tokens (the static token file,
//! bootstrap tokens, service-account tokens).

use std::sync::{Arc, OnceLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::Digest;

use crate::auth::UserInfo;

/// The extra attribute naming the credential a request authenticated with.
pub const CREDENTIAL_ID_KEY: &str = "authentication.kubernetes.io/credential-id";

/// The verified leaf certificate a connection's client presented: an extension on every
/// request of that connection (`req.extensions().get::<ClientCertificate>()`), present only when
/// the chain verified against the cluster CA. Its identity is worked out once per connection;
/// the validity period is checked on every request.
#[derive(Clone, Debug)]
pub struct ClientCertificate {
    der: Arc<Vec<u8>>,
    identity: Arc<OnceLock<Option<Identity>>>,
}

#[derive(Debug)]
struct Identity {
    user: UserInfo,
    not_before: i64,
    not_after: i64,
}

impl ClientCertificate {
    pub fn new(der: Vec<u8>) -> ClientCertificate {
        ClientCertificate {
            der: Arc::new(der),
            identity: Arc::default(),
        }
    }

    /// The certificate's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// [`authenticate`], parsing the certificate only the first time.
    pub fn user(&self) -> Option<UserInfo> {
        let identity = self.identity.get_or_init(|| identity(&self.der));
        user_at(identity.as_ref()?, now())
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The user a verified client certificate names: CN → name, O → groups (in order), UID →
/// uid, plus `system:authenticated` (as `token_file::Tokens::authenticate` adds it) and the
/// credential id. None when the certificate cannot be parsed, has no CommonName, is outside
/// its validity period (a connection may outlive its certificate) or carries more than one
/// or an empty UID.
pub fn authenticate(cert_der: &[u8]) -> Option<UserInfo> {
    user_at(&identity(cert_der)?, now())
}

/// The extension on every request of a connection whose client presented a certificate that
/// did not verify against the cluster CA (see the module doc).
#[derive(Clone, Copy, Debug)]
pub struct RefusedClientCertificate;

/// What a request's client certificate says of its sender.
#[derive(Debug, PartialEq)]
pub enum CertificateIdentity {
    /// No certificate, or a verified one that names no user (no CommonName, as upstream's
    /// `CommonNameUserConversion`): the bearer token, if any, decides.
    None,
    User(UserInfo),
    /// A certificate that did not verify, or is outside its validity period now: upstream's
    /// authentication error, a 401 unless a bearer token authenticates.
    Refused,
}

/// The identity of the client certificate attached to a request (the extensions
/// [`ClientCertificate`] and [`RefusedClientCertificate`]): what the request authenticates as
/// first.
pub fn authenticate_request(extensions: &axum::http::Extensions) -> CertificateIdentity {
    if extensions.get::<RefusedClientCertificate>().is_some() {
        return CertificateIdentity::Refused;
    }
    let Some(certificate) = extensions.get::<ClientCertificate>() else {
        return CertificateIdentity::None;
    };
    let identity = certificate
        .identity
        .get_or_init(|| identity(&certificate.der));
    match identity.as_ref().map(|i| user_at(i, now())) {
        None => CertificateIdentity::None,
        Some(None) => CertificateIdentity::Refused,
        Some(Some(user)) => CertificateIdentity::User(user),
    }
}

fn user_at(identity: &Identity, now: i64) -> Option<UserInfo> {
    if now < identity.not_before || now > identity.not_after {
        tracing::debug!(
            user = %identity.user.name,
            not_after = identity.not_after,
            "client certificate outside its validity period"
        );
        return None;
    }
    Some(identity.user.clone())
}

fn identity(cert_der: &[u8]) -> Option<Identity> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let subject = cert.subject();
    // Go's pkix.Name keeps the last CommonName.
    let name = subject
        .iter_common_name()
        .last()?
        .as_str()
        .ok()?
        .to_string();
    if name.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .map(|o| o.as_str().map(str::to_string))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let uids = subject
        .iter_by_oid(&x509_parser::oid_registry::OID_USERID)
        .map(|u| u.as_str().map(str::to_string))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let uid = match &uids[..] {
        [] => String::new(),
        [uid] if !uid.is_empty() => uid.clone(),
        _ => {
            tracing::debug!(%name, "client certificate: expected at most one non-empty UID");
            return None;
        }
    };
    let mut groups = groups;
    if !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    let fingerprint: String = sha2::Sha256::digest(cert_der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(Identity {
        user: UserInfo {
            name,
            uid,
            groups,
            extra: [(
                CREDENTIAL_ID_KEY.to_string(),
                vec![format!("X509SHA256={fingerprint}")],
            )]
            .into(),
        },
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// The server's client-certificate verifier: requests a certificate from every client (hinting
/// the cluster CA), requires none, and checks only the handshake signature; the chain is
/// verified after the handshake by [`ClientCertificates::verified_leaf`] (see the module doc).
#[derive(Debug)]
pub struct ClientCertificates {
    webpki: Arc<dyn ClientCertVerifier>,
}

impl ClientCertificates {
    /// A verifier trusting the CA certificates in `ca_pem`.
    pub fn new(ca_pem: &str) -> anyhow::Result<Arc<ClientCertificates>> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            roots.add(cert?)?;
        }
        anyhow::ensure!(
            !roots.is_empty(),
            "the client CA bundle holds no certificate"
        );
        let webpki = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .allow_unauthenticated()
        .build()?;
        Ok(Arc::new(ClientCertificates { webpki }))
    }

    /// The leaf of `chain` (as the client sent it: leaf first, then intermediates) when the
    /// chain verifies against the CA now, for the client-auth usage.
    pub fn verified_leaf(&self, chain: &[CertificateDer<'_>]) -> Option<ClientCertificate> {
        let (leaf, intermediates) = chain.split_first()?;
        match self
            .webpki
            .verify_client_cert(leaf, intermediates, UnixTime::now())
        {
            Ok(_) => Some(ClientCertificate::new(leaf.to_vec())),
            Err(e) => {
                tracing::debug!("client certificate not accepted: {e}");
                None
            }
        }
    }
}

impl ClientCertVerifier for ClientCertificates {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Go's RequestClientCert: the chain is judged by the authenticator, not the handshake.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, IsCa, KeyPair};

    struct Ca {
        cert: rcgen::Certificate,
        params: CertificateParams,
        key: KeyPair,
    }

    fn ca() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "test-ca");
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, params, key }
    }

    fn client(
        ca: &Ca,
        dn: DistinguishedName,
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
    ) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn;
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let issuer = rcgen::Issuer::new(ca.params.clone(), &ca.key);
        params.signed_by(&key, &issuer).unwrap().der().to_vec()
    }

    fn dn(entries: &[(DnType, &str)]) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        for (t, v) in entries {
            dn.push(t.clone(), *v);
        }
        dn
    }

    #[test]
    fn common_name_and_organization_make_the_user() {
        let ca = ca();
        let der = client(
            &ca,
            dn(&[
                (DnType::CommonName, "system:node:worker"),
                (DnType::OrganizationName, "system:nodes"),
            ]),
            (2020, 1, 1),
            (2099, 1, 1),
        );
        let user = authenticate(&der).unwrap();
        assert_eq!(user.name, "system:node:worker");
        assert_eq!(user.uid, "");
        assert_eq!(user.groups, ["system:nodes", "system:authenticated"]);
        let id = &user.extra[CREDENTIAL_ID_KEY][0];
        assert!(id.starts_with("X509SHA256=") && id.len() == 11 + 64, "{id}");
    }

    #[test]
    fn uid_attribute_is_the_uid() {
        let ca = ca();
        let uid = DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 1]);
        let der = client(
            &ca,
            dn(&[(DnType::CommonName, "jane"), (uid, "1234")]),
            (2020, 1, 1),
            (2099, 1, 1),
        );
        let user = authenticate(&der).unwrap();
        assert_eq!((user.name.as_str(), user.uid.as_str()), ("jane", "1234"));
        assert_eq!(user.groups, ["system:authenticated"]);
    }

    #[test]
    fn no_common_name_or_outside_validity_is_no_user() {
        let ca = ca();
        let nameless = client(
            &ca,
            dn(&[(DnType::OrganizationName, "system:masters")]),
            (2020, 1, 1),
            (2099, 1, 1),
        );
        assert!(authenticate(&nameless).is_none());
        let expired = client(
            &ca,
            dn(&[(DnType::CommonName, "old")]),
            (2020, 1, 1),
            (2021, 1, 1),
        );
        assert!(authenticate(&expired).is_none());
        let future = client(
            &ca,
            dn(&[(DnType::CommonName, "new")]),
            (2090, 1, 1),
            (2099, 1, 1),
        );
        assert!(authenticate(&future).is_none());
        assert!(authenticate(b"not a certificate").is_none());
        // A connection's cached identity stops working when the certificate expires.
        let valid = client(
            &ca,
            dn(&[(DnType::CommonName, "now")]),
            (2020, 1, 1),
            (2099, 1, 1),
        );
        let identity = identity(&valid).unwrap();
        assert!(user_at(&identity, now()).is_some());
        assert!(user_at(&identity, identity.not_after + 1).is_none());
        assert!(user_at(&identity, identity.not_before - 1).is_none());
    }

    #[test]
    fn only_chains_to_the_ca_are_attached() {
        let ca = ca();
        let other = self::ca();
        let verifier = ClientCertificates::new(&ca.cert.pem()).unwrap();
        let good = client(
            &ca,
            dn(&[(DnType::CommonName, "a")]),
            (2020, 1, 1),
            (2099, 1, 1),
        );
        let foreign = client(
            &other,
            dn(&[(DnType::CommonName, "a")]),
            (2020, 1, 1),
            (2099, 1, 1),
        );
        let leaf = verifier
            .verified_leaf(&[CertificateDer::from(good.clone())])
            .unwrap();
        assert_eq!(leaf.der(), &good[..]);
        assert!(verifier
            .verified_leaf(&[CertificateDer::from(foreign)])
            .is_none());
        assert!(verifier.verified_leaf(&[]).is_none());
        // The handshake itself never rejects a certificate.
        assert!(verifier.offer_client_auth() && !verifier.client_auth_mandatory());
        assert_eq!(verifier.root_hint_subjects().len(), 1);
    }

    /// A client (with `certificate`: chain DER, key PEM) completes a handshake with the serving
    /// configuration; the server's view of the verified leaf.
    async fn handshake(
        server: Arc<rustls::ServerConfig>,
        verifier: &ClientCertificates,
        ca_pem: &str,
        certificate: Option<(Vec<u8>, String)>,
    ) -> Option<ClientCertificate> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let client = match certificate {
            None => builder.with_no_client_auth(),
            Some((der, key)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from(der)],
                    rustls_pemfile::private_key(&mut key.as_bytes())
                        .unwrap()
                        .unwrap(),
                )
                .unwrap(),
        };
        let (a, b) = tokio::io::duplex(1 << 16);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let (accepted, connected) = tokio::join!(acceptor.accept(a), connector.connect(name, b));
        connected.expect("the client completes the handshake");
        let accepted = accepted.expect("the server completes the handshake");
        accepted
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| verifier.verified_leaf(chain))
    }

    #[tokio::test]
    async fn the_server_asks_for_a_certificate_and_requires_none() {
        let ca = ca();
        let issuer = rcgen::Issuer::new(ca.params.clone(), &ca.key);
        let serving_key = KeyPair::generate().unwrap();
        let serving = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&serving_key, &issuer)
            .unwrap();
        let pki = crate::tls::Pki {
            ca_pem: ca.cert.pem(),
            cert_pem: serving.pem(),
            key_pem: serving_key.serialize_pem(),
        };
        let verifier = ClientCertificates::new(&pki.ca_pem).unwrap();
        let config = crate::tls::server_config(&pki, verifier.clone()).unwrap();
        let client_cert = |ca: &Ca| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name = dn(&[(DnType::CommonName, "alice")]);
            let issuer = rcgen::Issuer::new(ca.params.clone(), &ca.key);
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.der().to_vec(), key.serialize_pem())
        };
        // No certificate: the handshake succeeds, no identity.
        assert!(handshake(config.clone(), &verifier, &pki.ca_pem, None)
            .await
            .is_none());
        // One from the cluster CA: its leaf is the connection's identity.
        let (der, key) = client_cert(&ca);
        let leaf = handshake(
            config.clone(),
            &verifier,
            &pki.ca_pem,
            Some((der.clone(), key)),
        )
        .await
        .unwrap();
        assert_eq!(leaf.der(), &der[..]);
        assert_eq!(leaf.user().unwrap().name, "alice");
        // One from another CA: the handshake still succeeds (Go's RequestClientCert), no identity.
        let other = self::ca();
        let foreign = client_cert(&other);
        assert!(handshake(config, &verifier, &pki.ca_pem, Some(foreign))
            .await
            .is_none());
    }

    #[test]
    fn the_extension_authenticates_a_request() {
        let ca = ca();
        let der = client(
            &ca,
            dn(&[(DnType::CommonName, "bob")]),
            (2020, 1, 1),
            (2099, 1, 1),
        );
        let name = |ext: &axum::http::Extensions| match authenticate_request(ext) {
            CertificateIdentity::User(user) => user.name,
            other => panic!("expected a user, got {other:?}"),
        };
        let mut ext = axum::http::Extensions::new();
        assert_eq!(authenticate_request(&ext), CertificateIdentity::None);
        ext.insert(ClientCertificate::new(der));
        assert_eq!(name(&ext), "bob");
        // Parsed once, checked each time.
        assert_eq!(name(&ext), "bob");
        // A verified certificate without a CommonName names no one.
        let nameless = client(
            &ca,
            dn(&[(DnType::OrganizationName, "system:masters")]),
            (2020, 1, 1),
            (2099, 1, 1),
        );
        let mut ext = axum::http::Extensions::new();
        ext.insert(ClientCertificate::new(nameless));
        assert_eq!(authenticate_request(&ext), CertificateIdentity::None);
    }

    #[test]
    fn a_refused_or_expired_certificate_is_an_authentication_failure() {
        let ca = ca();
        // The accept loop marks a connection whose certificate did not verify.
        let mut ext = axum::http::Extensions::new();
        ext.insert(RefusedClientCertificate);
        assert_eq!(authenticate_request(&ext), CertificateIdentity::Refused);
        // A certificate that verified when the connection opened but has expired since.
        let expired = client(
            &ca,
            dn(&[(DnType::CommonName, "old")]),
            (2020, 1, 1),
            (2021, 1, 1),
        );
        let mut ext = axum::http::Extensions::new();
        ext.insert(ClientCertificate::new(expired));
        assert_eq!(authenticate_request(&ext), CertificateIdentity::Refused);
    }
}
