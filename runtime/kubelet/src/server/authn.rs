//! Who is calling the kubelet API: upstream's delegating authenticator as the kubelet builds it
//! (`cmd/kubelet/app/auth.go`), tried in upstream's order:
//!
//! 1. an x509 client certificate that verifies against `--client-ca-file`, for the client-auth
//!    usage: the user is the subject's CommonName, its Organizations are the groups (the API
//!    server comes this way, as `kube-apiserver-kubelet-client`);
//! 2. a bearer token — the `Authorization: Bearer` header, or for a WebSocket the
//!    `base64url.bearer.authorization.k8s.io.<token>` subprotocol — that the API server
//!    accepts in a TokenReview (a pod's service-account token, a node's token);
//! 3. with `--anonymous-auth`, nothing at all: `system:anonymous` in `system:unauthenticated`.
//!
//! Authenticated users also get `system:authenticated`. Credentials that are presented and
//! fail — a certificate from another CA, a token the API server rejects — are a 401 even with
//! anonymous access on: upstream's union authenticator stops at the error before anonymous is
//! tried, so a caller with a bad credential is told so instead of quietly becoming nobody.
//!
//! How the certificate gets here: the TLS server asks every client for a certificate and
//! requires none (Go's `tls.RequestClientCert`, upstream's setting); the handshake only checks
//! that the client holds the key ([`ClientCertificates`] is the rustls verifier), and the
//! accept loop verifies the chain against the CA with webpki
//! ([`ClientCertificates::peer`]) and attaches the outcome to every request of the
//! connection as a [`PeerCertificate`].
//!
//! TokenReview answers are cached, keyed by the token's SHA-256 (never the token itself): an
//! accepted token for 2 minutes (upstream's `authentication.webhook.cacheTTL`), a rejected one
//! for 30 seconds. Upstream's kubelet keeps rejections as long as acceptances; skiff keeps
//! them shorter so a token that was refused for a passing reason (its ServiceAccount or pod
//! was being recreated) works again soon, while a client retrying a bad token in a loop still
//! costs one review per 30 s. Errors (the API server unreachable) are not cached: the caller
//! gets a 401 and the next request asks again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use base64::Engine;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::Digest;

use super::cache::TtlCache;

/// How long an accepted token is trusted without asking again.
pub const TOKEN_ACCEPTED_TTL: Duration = Duration::from_secs(120);
/// How long a rejected token stays rejected without asking again.
pub const TOKEN_REJECTED_TTL: Duration = Duration::from_secs(30);
/// The WebSocket subprotocol prefix that carries a bearer token (browsers cannot set headers).
const WEBSOCKET_TOKEN_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";
/// The extra attribute naming the certificate a request authenticated with, as upstream's x509
/// authenticator sets it.
pub const CREDENTIAL_ID_KEY: &str = "authentication.kubernetes.io/credential-id";

/// An authenticated caller, as the SubjectAccessReview names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// Adds `system:authenticated` unless the user has it (upstream's AuthenticatedGroupAdder).
    fn authenticated(mut self) -> User {
        if !self.groups.iter().any(|g| g == "system:authenticated") {
            self.groups.push("system:authenticated".into());
        }
        self
    }

    fn anonymous() -> User {
        User {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            ..User::default()
        }
    }
}

/// What a connection's client certificate amounts to; an extension on each of its requests.
#[derive(Debug, Clone)]
pub enum PeerCertificate {
    /// It verified against the client CA: who it names, and until when.
    Verified(Arc<CertificateIdentity>),
    /// It did not verify (another CA, wrong usage, unparsable): a failed credential.
    Rejected,
}

/// The identity in a verified client certificate, with its validity (a connection may outlive
/// its certificate, so each request checks the time).
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateIdentity {
    pub user: User,
    pub not_before: i64,
    pub not_after: i64,
}

impl CertificateIdentity {
    /// The user, while the certificate is valid at `now` (Unix seconds).
    pub fn user_at(&self, now: i64) -> Option<&User> {
        (self.not_before <= now && now <= self.not_after).then_some(&self.user)
    }
}

/// Upstream's `CommonNameUserConversion`: CN → name (Go keeps the last CN), O → groups, the
/// `UID` attribute (0.9.2342.19200300.100.1.1) → uid, and the credential id
/// `X509SHA256=<hex>`. None without a CommonName, or with several or an empty UID.
pub fn certificate_identity(der: &[u8]) -> Option<CertificateIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
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
        _ => return None,
    };
    let fingerprint: String = sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(CertificateIdentity {
        user: User {
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

/// The TLS server's client-certificate verifier for `--client-ca-file`: asks every client for
/// a certificate (hinting the CA), requires none, and checks only the handshake signature; the
/// chain is verified after the handshake by [`ClientCertificates::peer`].
#[derive(Debug)]
pub struct ClientCertificates {
    webpki: Arc<dyn ClientCertVerifier>,
}

impl ClientCertificates {
    /// A verifier trusting the CA certificates in `ca_pem`.
    pub fn new(ca_pem: &[u8]) -> anyhow::Result<Arc<ClientCertificates>> {
        let mut roots = rustls::RootCertStore::empty();
        for der in crate::certificate::certificates(ca_pem) {
            roots.add(CertificateDer::from(der))?;
        }
        anyhow::ensure!(!roots.is_empty(), "the client CA file holds no certificate");
        let webpki = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .allow_unauthenticated()
        .build()?;
        Ok(Arc::new(ClientCertificates { webpki }))
    }

    /// What the client's `chain` (leaf first, as sent) amounts to: None when it sent none.
    pub fn peer(&self, chain: Option<&[CertificateDer<'_>]>) -> Option<PeerCertificate> {
        let (leaf, intermediates) = chain?.split_first()?;
        if let Err(e) = self
            .webpki
            .verify_client_cert(leaf, intermediates, UnixTime::now())
        {
            tracing::debug!("client certificate not accepted: {e}");
            return Some(PeerCertificate::Rejected);
        }
        Some(match certificate_identity(leaf) {
            Some(identity) => PeerCertificate::Verified(Arc::new(identity)),
            None => PeerCertificate::Rejected,
        })
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

/// Upstream's bearer-token parsing: `Authorization: Bearer <token>`, the scheme in any case,
/// the token the second space-separated word; an empty token is no token.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let mut parts = value.splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return None;
    }
    Some(token.to_string())
}

/// A token carried as a WebSocket subprotocol on an upgrade request: None when there is none,
/// an error when it is not base64url of UTF-8 text.
pub fn websocket_token(headers: &HeaderMap) -> Result<Option<String>, String> {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let connection = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("upgrade"))
        });
    if !upgrade || !connection {
        return Ok(None);
    }
    let encoded = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| p.strip_prefix(WEBSOCKET_TOKEN_PREFIX));
    let Some(encoded) = encoded else {
        return Ok(None);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| "invalid bearer token in the WebSocket protocol".to_string())?;
    let token = String::from_utf8(bytes)
        .map_err(|_| "invalid bearer token in the WebSocket protocol".to_string())?;
    if token.is_empty() {
        return Err("empty bearer token in the WebSocket protocol".into());
    }
    Ok(Some(token))
}

/// Why a request is a 401 (logged; the caller only reads "Unauthorized").
#[derive(Debug, PartialEq)]
pub struct Unauthenticated(pub String);

pub struct Authenticator {
    client: kube::Client,
    anonymous: bool,
    /// SHA-256 of the token → the user the API server said it is (None: rejected).
    tokens: TtlCache<[u8; 32], Option<User>>,
}

impl Authenticator {
    pub fn new(client: kube::Client, anonymous: bool) -> Authenticator {
        Authenticator {
            client,
            anonymous,
            tokens: TtlCache::new(4096),
        }
    }

    /// The caller of a request with `headers`, on a connection whose client certificate (if
    /// it sent one) came to `peer`.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        peer: Option<&PeerCertificate>,
    ) -> Result<User, Unauthenticated> {
        let mut failures = Vec::new();
        match peer {
            Some(PeerCertificate::Verified(identity)) => {
                match identity.user_at(crate::certificate::now()) {
                    Some(user) => return Ok(user.clone().authenticated()),
                    None => failures.push("the client certificate has expired".to_string()),
                }
            }
            Some(PeerCertificate::Rejected) => {
                failures.push("the client certificate did not verify".to_string())
            }
            None => {}
        }
        let tokens = [Ok(bearer_token(headers)), websocket_token(headers)];
        for token in tokens {
            match token {
                Ok(None) => {}
                Ok(Some(token)) => match self.review(&token).await {
                    Ok(Some(user)) => return Ok(user.authenticated()),
                    Ok(None) => failures.push("invalid bearer token".into()),
                    Err(e) => failures.push(e),
                },
                Err(e) => failures.push(e),
            }
        }
        if !failures.is_empty() {
            return Err(Unauthenticated(failures.join("; ")));
        }
        if self.anonymous {
            return Ok(User::anonymous());
        }
        Err(Unauthenticated("no credentials".into()))
    }

    /// The user `token` belongs to (None: rejected), from the cache or a TokenReview.
    async fn review(&self, token: &str) -> Result<Option<User>, String> {
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some(known) = self.tokens.get(&key, Instant::now()) {
            return Ok(known);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("token review: {e}"))?;
        let user = answer
            .status
            .filter(|s| s.authenticated == Some(true))
            .and_then(|s| s.user)
            .and_then(|u| {
                Some(User {
                    name: u.username.filter(|n| !n.is_empty())?,
                    uid: u.uid.unwrap_or_default(),
                    groups: u.groups.unwrap_or_default(),
                    extra: u.extra.unwrap_or_default(),
                })
            });
        let ttl = if user.is_some() {
            TOKEN_ACCEPTED_TTL
        } else {
            TOKEN_REJECTED_TTL
        };
        self.tokens.insert(key, user.clone(), ttl, Instant::now());
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use rcgen::{CertificateParams, DnType, KeyPair};

    struct Ca {
        cert: rcgen::Certificate,
        params: CertificateParams,
        key: KeyPair,
    }

    fn ca() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "test-ca");
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, params, key }
    }

    fn client(
        ca: &Ca,
        subject: &[(DnType, &str)],
        usage: rcgen::ExtendedKeyUsagePurpose,
    ) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in subject {
            params.distinguished_name.push(t.clone(), *v);
        }
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        params.extended_key_usages = vec![usage];
        let issuer = rcgen::Issuer::new(ca.params.clone(), &ca.key);
        params.signed_by(&key, &issuer).unwrap().der().to_vec()
    }

    #[test]
    fn certificates_name_user_and_groups() {
        let ca = ca();
        let der = client(
            &ca,
            &[
                (DnType::CommonName, "kube-apiserver-kubelet-client"),
                (DnType::OrganizationName, "kubeadm:cluster-admins"),
            ],
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        );
        let identity = certificate_identity(&der).unwrap();
        assert_eq!(identity.user.name, "kube-apiserver-kubelet-client");
        assert_eq!(identity.user.groups, ["kubeadm:cluster-admins"]);
        assert!(identity.user.extra[CREDENTIAL_ID_KEY][0].starts_with("X509SHA256="));
        assert_eq!(
            identity.user.clone().authenticated().groups,
            ["kubeadm:cluster-admins", "system:authenticated"]
        );
        // Valid now; not before or after.
        let now = crate::certificate::now();
        assert!(identity.user_at(now).is_some());
        assert!(identity.user_at(identity.not_after + 1).is_none());
        assert!(identity.user_at(identity.not_before - 1).is_none());
        let nameless = client(
            &ca,
            &[(DnType::OrganizationName, "system:masters")],
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        );
        assert!(certificate_identity(&nameless).is_none());
        assert!(certificate_identity(b"junk").is_none());
    }

    #[test]
    fn only_chains_to_the_client_ca_for_client_auth_verify() {
        let ca = ca();
        let other = self::ca();
        let verifier = ClientCertificates::new(ca.cert.pem().as_bytes()).unwrap();
        let subject = [(DnType::CommonName, "a")];
        let good = client(&ca, &subject, rcgen::ExtendedKeyUsagePurpose::ClientAuth);
        let foreign = client(&other, &subject, rcgen::ExtendedKeyUsagePurpose::ClientAuth);
        let server_only = client(&ca, &subject, rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        let judge = |der: Vec<u8>| verifier.peer(Some(&[CertificateDer::from(der)]));
        assert!(matches!(judge(good), Some(PeerCertificate::Verified(i)) if i.user.name == "a"));
        assert!(matches!(judge(foreign), Some(PeerCertificate::Rejected)));
        assert!(matches!(
            judge(server_only),
            Some(PeerCertificate::Rejected)
        ));
        assert!(verifier.peer(None).is_none());
        assert!(verifier.peer(Some(&[])).is_none());
        assert!(verifier.offer_client_auth() && !verifier.client_auth_mandatory());
        assert!(ClientCertificates::new(b"no certificates").is_err());
    }

    #[test]
    fn bearer_tokens_as_upstream_parses_them() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            bearer_token(&headers)
        };
        assert_eq!(with("Bearer abc"), Some("abc".into()));
        assert_eq!(with("bearer abc"), Some("abc".into()));
        assert_eq!(with("  Bearer abc  "), Some("abc".into()));
        assert_eq!(with("Bearer abc def"), Some("abc".into()));
        assert_eq!(with("Bearer  abc"), None);
        assert_eq!(with("Bearer"), None);
        assert_eq!(with("Basic abc"), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn websocket_subprotocol_tokens() {
        let upgrade = |protocols: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(protocols).unwrap(),
            );
            headers
        };
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("tok");
        assert_eq!(
            websocket_token(&upgrade(&format!(
                "v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.{encoded}"
            ))),
            Ok(Some("tok".into()))
        );
        assert_eq!(websocket_token(&upgrade("v5.channel.k8s.io")), Ok(None));
        assert!(websocket_token(&upgrade("base64url.bearer.authorization.k8s.io.!!")).is_err());
        assert!(websocket_token(&upgrade("base64url.bearer.authorization.k8s.io.")).is_err());
        // Only on a WebSocket upgrade.
        let mut plain = upgrade(&format!("base64url.bearer.authorization.k8s.io.{encoded}"));
        plain.remove(header::UPGRADE);
        assert_eq!(websocket_token(&plain), Ok(None));
    }

    /// A client whose every request fails, so a test notices any TokenReview.
    fn unreachable() -> kube::Client {
        let service = tower::service_fn(|_req: http::Request<kube::client::Body>| async move {
            Err::<http::Response<kube::client::Body>, _>(std::io::Error::other(
                "no API server in this test",
            ))
        });
        kube::Client::new(service, "default")
    }

    fn certificate_user(name: &str) -> PeerCertificate {
        PeerCertificate::Verified(Arc::new(CertificateIdentity {
            user: User {
                name: name.into(),
                groups: vec!["g".into()],
                ..User::default()
            },
            not_before: 0,
            not_after: i64::MAX,
        }))
    }

    #[tokio::test]
    async fn certificates_first_then_tokens_then_anonymous() {
        let strict = Authenticator::new(unreachable(), false);
        let open = Authenticator::new(unreachable(), true);
        let none = HeaderMap::new();
        let mut with_token = HeaderMap::new();
        with_token.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));

        // A verified certificate wins, token or not (no review is asked for).
        let peer = certificate_user("kube-apiserver-kubelet-client");
        let user = strict.authenticate(&with_token, Some(&peer)).await.unwrap();
        assert_eq!(user.name, "kube-apiserver-kubelet-client");
        assert_eq!(user.groups, ["g", "system:authenticated"]);

        // Nothing: 401, or anonymous when allowed.
        assert_eq!(
            strict.authenticate(&none, None).await,
            Err(Unauthenticated("no credentials".into()))
        );
        let anonymous = open.authenticate(&none, None).await.unwrap();
        assert_eq!(
            (anonymous.name.as_str(), anonymous.groups.as_slice()),
            (
                "system:anonymous",
                &["system:unauthenticated".to_string()][..]
            )
        );

        // A credential that fails is a 401 even with anonymous access on.
        assert!(open
            .authenticate(&none, Some(&PeerCertificate::Rejected))
            .await
            .is_err());
        assert!(open.authenticate(&with_token, None).await.is_err());

        // Cached answers: an accepted and a rejected token, without the API server.
        let key = |t: &str| -> [u8; 32] { sha2::Sha256::digest(t.as_bytes()).into() };
        let now = Instant::now();
        let pod = User {
            name: "system:serviceaccount:default:default".into(),
            groups: vec!["system:serviceaccounts".into()],
            ..User::default()
        };
        strict
            .tokens
            .insert(key("t"), Some(pod), TOKEN_ACCEPTED_TTL, now);
        let user = strict.authenticate(&with_token, None).await.unwrap();
        assert_eq!(user.name, "system:serviceaccount:default:default");
        assert_eq!(
            user.groups,
            ["system:serviceaccounts", "system:authenticated"]
        );
        open.tokens.insert(key("t"), None, TOKEN_REJECTED_TTL, now);
        assert_eq!(
            open.authenticate(&with_token, None).await,
            Err(Unauthenticated("invalid bearer token".into()))
        );
        assert!(TOKEN_REJECTED_TTL < TOKEN_ACCEPTED_TTL);
    }
}
