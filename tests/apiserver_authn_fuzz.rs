//! Bad credentials against the API server's authentication, fuzz-style. Each case POSTs a
//! ConfigMap over raw HTTP/1.1 on TLS (so any header bytes and any client certificate can be
//! sent) and must get kube-apiserver's answer:
//!
//! - credentials that do not check out — a bearer token no authenticator accepts (static,
//!   bootstrap, service-account JWT), a client certificate that does not verify against the
//!   cluster CA — are a 401 with upstream's bare `Unauthorized` Status, whatever was wrong;
//! - no credentials, or a scheme no authenticator reads (`Basic`, `Token`, `Bearer` without a
//!   token), are the anonymous user, whom RBAC refuses with upstream's 403;
//! - bytes HTTP forbids in a header (NUL, CR, LF, DEL) are the HTTP layer's 400;
//! - control cases (the admin token, a cluster-CA certificate, a live bootstrap or
//!   service-account token) authenticate, so the failures above are not the client's doing.
//!
//! The table holds named cases (headers, JWTs, bootstrap tokens, certificates) and a few hundred
//! random headers from a fixed seed. Afterwards the server is still up and healthy, and the only
//! ConfigMaps written are the control cases'. One server for all.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use common::ServerProcess;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{json, Value};
use skiff_apiserver::auth::serviceaccount::keys::SigningKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The seed of the random headers; a failure names the case, and the same seed replays it.
const SEED: u64 = 0x5eed_a0e7;
const RANDOM_CASES: usize = 300;
const NAMESPACE: &str = "default";

/// What kube-apiserver answers.
#[derive(Clone, Debug, PartialEq)]
enum Expect {
    /// 401, upstream's bare Status: nothing about why.
    Unauthorized,
    /// 403 for `system:anonymous`.
    Anonymous,
    /// 403 naming this user (authenticated, but RBAC gives it no configmaps).
    Forbidden(String),
    /// 201: the admin.
    Created,
    /// The HTTP layer refuses the request before anything reads it (400, 431).
    HttpError(u16),
}

struct Case {
    name: String,
    /// The `Authorization` header's value, raw bytes (a CRLF in it starts another header).
    authorization: Option<Vec<u8>>,
    cert: Option<Arc<ClientCert>>,
    expect: Expect,
}

fn case(name: impl Into<String>, authorization: impl AsRef<[u8]>, expect: Expect) -> Case {
    Case {
        name: name.into(),
        authorization: Some(authorization.as_ref().to_vec()),
        cert: None,
        expect,
    }
}

fn bearer(token: impl AsRef<[u8]>) -> Vec<u8> {
    [b"Bearer ", token.as_ref()].concat()
}

// ------------------------------------------------------------------ the raw HTTPS client

struct ClientCert {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

struct Response {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

struct Client {
    port: u16,
    roots: Arc<rustls::RootCertStore>,
}

impl Client {
    fn new(s: &ServerProcess) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(s.ca()).unwrap();
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots.add(cert.unwrap()).unwrap();
        }
        Client {
            port: s.port,
            roots: Arc::new(roots),
        }
    }

    /// Sends `request` on a new TLS connection (with `cert` as the client certificate) and
    /// reads the answer until the server closes.
    async fn send(&self, cert: Option<&ClientCert>, request: &[u8]) -> Result<Response, String> {
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(self.roots.clone());
        let mut config = match cert {
            Some(c) => builder
                .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let tls = connector
                .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            let (mut rd, mut wr) = tokio::io::split(tls);
            // Write and read at once: a server that answers early (431) and closes must not
            // leave the answer unread behind a failed write.
            let write = async move {
                let _ = wr.write_all(request).await;
                let _ = wr.flush().await;
                wr
            };
            let read = async move {
                let mut buf = Vec::new();
                // A close without close_notify is an error after the data: keep the data.
                let _ = rd.read_to_end(&mut buf).await;
                buf
            };
            let (_wr, buf) = tokio::join!(write, read);
            parse_response(&buf)
        };
        tokio::time::timeout(Duration::from_secs(20), exchange)
            .await
            .map_err(|_| "no answer within 20 s".to_string())?
    }
}

impl Client {
    /// Lists ConfigMaps with `token` until the answer is `status`.
    async fn wait_for_status(&self, token: &str, status: u16, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let request = get_request(self.port, "/api/v1/namespaces/default/configmaps", token);
        while !self
            .send(None, &request)
            .await
            .is_ok_and(|r| r.status == status)
        {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn parse_response(buf: &[u8]) -> Result<Response, String> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete response ({} bytes)", buf.len()))?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line: {head:?}"))?;
    let mut body = buf[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body)?;
    }
    Ok(Response {
        status,
        headers: head,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .map_err(|e| format!("chunk size {size_text:?}: {e}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("truncated chunk")?);
        data = data.get(size + 2..).ok_or("truncated chunk")?;
    }
}

/// A POST of ConfigMap `name` (labelled `fuzz=true`) with the raw `Authorization` value.
fn create_configmap_request(port: u16, name: &str, authorization: Option<&[u8]>) -> Vec<u8> {
    let body = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"fuzz": "true"}},
        "data": {"k": "v"},
    })
    .to_string();
    let mut request = format!(
        "POST /api/v1/namespaces/{NAMESPACE}/configmaps HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    )
    .into_bytes();
    if let Some(value) = authorization {
        request.extend_from_slice(b"Authorization: ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    request
}

fn get_request(port: u16, path: &str, token: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\
         Connection: close\r\n\r\n"
    )
    .into_bytes()
}

/// Whether `response` is what `expect` says; an error says what came instead.
fn check(expect: &Expect, authorization: Option<&[u8]>, response: &Response) -> Result<(), String> {
    let got = || {
        format!(
            "got {} {}",
            response.status,
            String::from_utf8_lossy(&response.body[..response.body.len().min(400)])
        )
    };
    let forbidden = |user: &str| {
        format!(
            "configmaps is forbidden: User {user:?} cannot create resource \"configmaps\" in API \
             group \"\" in the namespace \"{NAMESPACE}\""
        )
    };
    match expect {
        Expect::Unauthorized => {
            let status = json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "Unauthorized",
                "reason": "Unauthorized",
                "code": 401,
            });
            if response.status != 401 || response.json() != status {
                return Err(format!("expected upstream's bare 401 Status, {}", got()));
            }
            if !response
                .headers
                .to_ascii_lowercase()
                .contains("content-type: application/json")
            {
                return Err(format!(
                    "401 without a JSON content type: {}",
                    response.headers
                ));
            }
        }
        Expect::Anonymous | Expect::Forbidden(_) => {
            let user = match expect {
                Expect::Forbidden(user) => user.as_str(),
                _ => "system:anonymous",
            };
            let status = response.json();
            if response.status != 403
                || status["reason"] != "Forbidden"
                || status["message"] != forbidden(user)
            {
                return Err(format!("expected {user:?}'s 403, {}", got()));
            }
        }
        Expect::Created => {
            if response.status != 201 {
                return Err(format!("expected 201 (the admin), {}", got()));
            }
        }
        Expect::HttpError(code) => {
            if response.status != *code {
                return Err(format!("expected the HTTP layer's {code}, {}", got()));
            }
        }
    }
    // Whatever the answer, it never repeats the credential.
    if let Some(value) = authorization {
        let token = value.strip_prefix(b"Bearer ").unwrap_or(value);
        if token.len() >= 8 && response.body.windows(token.len()).any(|w| w == token) {
            return Err("the answer repeats the credential".into());
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ credentials to break

fn jwt_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWS: {token}");
    let decode = |p: &str| serde_json::from_slice(&B64URL.decode(p).unwrap()).unwrap();
    (decode(parts[0]), decode(parts[1]))
}

fn b64json(value: &Value) -> String {
    B64URL.encode(value.to_string())
}

/// `header.payload.` signed with HMAC-SHA256 under `secret` (the old key-confusion attack:
/// the public key as an HMAC secret).
fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64json(header), b64json(claims));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64URL.encode(tag.as_ref()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `claims` with the value at `pointer` replaced.
fn with(claims: &Value, pointer: &str, value: Value) -> Value {
    let mut claims = claims.clone();
    *claims
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = value;
    claims
}

/// `claims` without the claim `name`.
fn without(claims: &Value, name: &str) -> Value {
    let mut claims = claims.clone();
    claims.as_object_mut().unwrap().remove(name);
    claims
}

/// Service-account tokens: a live one (control), and ones that must not verify.
#[rustfmt::skip] // a table: one case a line
fn jwt_cases(s: &ServerProcess, live: &str, revoked: &str, other_audience: &str) -> Vec<Case> {
    let user = "system:serviceaccount:default:fuzz-sa".to_string();
    let key = SigningKey::from_file(&s.dir.path().join("tls/sa.key")).unwrap();
    let (foreign, _) = SigningKey::generate().unwrap();
    let (header, claims) = jwt_parts(live);
    let sign = |claims: &Value| key.sign(claims).unwrap();
    let t = now();
    let parts: Vec<&str> = live.split('.').collect();
    let (h, p, sig) = (parts[0], parts[1], parts[2]);
    let unauthorized = |name: &str, token: String| case(name, bearer(token), Expect::Unauthorized);
    let mut flipped = p.as_bytes().to_vec();
    let i = flipped.len() / 2;
    flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let mut alg_none = header.clone();
    alg_none["alg"] = json!("none");
    let mut hs = header.clone();
    hs["alg"] = json!("HS256");
    let public_pem = std::fs::read(s.dir.path().join("tls/sa.pub"))
        .unwrap_or_else(|_| key.public.to_pem().into_bytes());

    vec![
        case("jwt: live TokenRequest token (control)", bearer(live), Expect::Forbidden(user.clone())),
        case("jwt: live claims re-signed with the server's key (control)", bearer(sign(&claims)), Expect::Forbidden(user.clone())),
        // Upstream's jwt.go: a token without audiences is taken for the API's own (legacy).
        case("jwt: no audience (control: the API's own)", bearer(sign(&with(&claims, "/aud", json!([])))), Expect::Forbidden(user)),
        unauthorized("jwt: account deleted (revoked)", revoked.to_string()),
        unauthorized("jwt: TokenRequest for another audience", other_audience.to_string()),
        unauthorized("jwt: expired an hour ago", sign(&with(&claims, "/exp", json!(t - 3600)))),
        unauthorized("jwt: exp -1", sign(&with(&claims, "/exp", json!(-1)))),
        unauthorized("jwt: exp a string", sign(&with(&claims, "/exp", json!("tomorrow")))),
        unauthorized("jwt: not valid for an hour (nbf)", sign(&with(&claims, "/nbf", json!(t + 3600)))),
        unauthorized("jwt: another issuer", sign(&with(&claims, "/iss", json!("https://issuer.invalid")))),
        unauthorized("jwt: another audience", sign(&with(&claims, "/aud", json!(["not-the-api"])))),
        unauthorized("jwt: wrong account uid", sign(&with(&claims, "/kubernetes.io/serviceaccount/uid", json!("00000000-0000-0000-0000-000000000000")))),
        unauthorized("jwt: another account's name, this uid", sign(&with(&claims, "/kubernetes.io/serviceaccount/name", json!("default")))),
        unauthorized("jwt: another namespace", sign(&with(&claims, "/kubernetes.io/namespace", json!("kube-system")))),
        unauthorized("jwt: no kubernetes.io claim", sign(&without(&claims, "kubernetes.io"))),
        unauthorized("jwt: payload a JSON string", sign(&json!("just a string"))),
        unauthorized("jwt: payload an empty object", sign(&json!({}))),
        unauthorized("jwt: legacy shape, no such secret", sign(&json!({
            "iss": "kubernetes/serviceaccount",
            "sub": "system:serviceaccount:default:fuzz-sa",
            "kubernetes.io/serviceaccount/namespace": "default",
            "kubernetes.io/serviceaccount/service-account.name": "fuzz-sa",
            "kubernetes.io/serviceaccount/service-account.uid": claims["kubernetes.io"]["serviceaccount"]["uid"],
            "kubernetes.io/serviceaccount/secret.name": "fuzz-sa-token-nope",
        }))),
        unauthorized("jwt: signed by another key", foreign.sign(&claims).unwrap()),
        unauthorized("jwt: alg none, no signature", format!("{}.{p}.", b64json(&alg_none))),
        unauthorized("jwt: alg none, the live signature", format!("{}.{p}.{sig}", b64json(&alg_none))),
        unauthorized("jwt: HS256 keyed with the public key", hs256(&hs, &claims, &public_pem)),
        unauthorized("jwt: payload tampered", format!("{h}.{flipped}.{sig}")),
        unauthorized("jwt: signature truncated", format!("{h}.{p}.{}", &sig[..sig.len() - 2])),
        unauthorized("jwt: signature not base64", format!("{h}.{p}.!!!!$$$$")),
        unauthorized("jwt: header not base64", format!("%%%.{p}.{sig}")),
        unauthorized("jwt: header not JSON", format!("{}.{p}.{sig}", B64URL.encode("{not json"))),
        unauthorized("jwt: payload with base64 padding", format!("{h}.{p}==.{sig}")),
        unauthorized("jwt: two segments", format!("{h}.{p}")),
        unauthorized("jwt: four segments", format!("{live}.{sig}")),
        unauthorized("jwt: empty segments", "..".to_string()),
        unauthorized("jwt: 96 KiB payload", sign(&json!({"iss": claims["iss"], "pad": "x".repeat(96 * 1024)}))),
    ]
}

/// Bootstrap tokens: `abc123` is live (control); `old123` expired; `noa123` is not for
/// authentication.
#[rustfmt::skip] // a table: one case a line
fn bootstrap_cases() -> Vec<Case> {
    let unauthorized = |name: &str, token: &str| case(name, bearer(token), Expect::Unauthorized);
    vec![
        case("bootstrap: live token (control)", bearer("abc123.0123456789abcdef"), Expect::Forbidden("system:bootstrap:abc123".into())),
        unauthorized("bootstrap: wrong secret", "abc123.0123456789abcdee"),
        unauthorized("bootstrap: expired", "old123.0123456789abcdef"),
        unauthorized("bootstrap: not marked for authentication", "noa123.0123456789abcdef"),
        unauthorized("bootstrap: no such token id", "zzz999.0123456789abcdef"),
        unauthorized("bootstrap: upper case", "ABC123.0123456789ABCDEF"),
        unauthorized("bootstrap: short id", "abc12.0123456789abcdef"),
        unauthorized("bootstrap: long secret", "abc123.0123456789abcdef0"),
        unauthorized("bootstrap: colon for the dot", "abc123:0123456789abcdef"),
        unauthorized("bootstrap: trailing dot part", "abc123.0123456789abcdef.x"),
        unauthorized("bootstrap: secret only", "0123456789abcdef"),
    ]
}

/// Headers: schemes, spacing, sizes, bytes HTTP forbids, and the static admin token broken.
#[rustfmt::skip] // a table: one case a line
fn header_cases(admin: &str) -> Vec<Case> {
    let mut wrong_last = admin.as_bytes().to_vec();
    *wrong_last.last_mut().unwrap() ^= 1;
    let mut rng = StdRng::seed_from_u64(SEED ^ 1);
    let random_b64 = B64.encode(rng.random::<[u8; 48]>());
    vec![
        case("static: admin token (control)", bearer(admin), Expect::Created),
        case("static: admin token, lower-case scheme", format!("bearer {admin}"), Expect::Created),
        case("static: admin token, upper-case scheme", format!("BEARER {admin}"), Expect::Created),
        case("static: admin token, then a space and more", format!("Bearer {admin} trailing"), Expect::Created),
        case("static: admin token, spaces around the value", format!("  Bearer {admin}  "), Expect::Created),
        case("static: admin token, two spaces after the scheme", format!("Bearer  {admin}"), Expect::Anonymous),
        case("static: admin token, a tab after the scheme", format!("Bearer\t{admin}"), Expect::Anonymous),
        case("static: admin token without a scheme", admin, Expect::Anonymous),
        case("static: admin token as Basic", format!("Basic {admin}"), Expect::Anonymous),
        case("static: admin token as Basic user:password", format!("Basic {}", B64.encode(format!("admin:{admin}"))), Expect::Anonymous),
        case("static: admin token as Token", format!("Token {admin}"), Expect::Anonymous),
        case("static: last bit flipped", bearer(&wrong_last), Expect::Unauthorized),
        case("static: one character short", bearer(&admin[..admin.len() - 1]), Expect::Unauthorized),
        case("static: one character more", bearer(format!("{admin}0")), Expect::Unauthorized),
        case("static: upper case", bearer(admin.to_uppercase()), Expect::Unauthorized),
        case("static: admin token twice", bearer(format!("{admin}{admin}")), Expect::Unauthorized),
        case("no Authorization header", b"", Expect::Anonymous).without_header(),
        case("empty value", b"", Expect::Anonymous),
        case("Bearer alone", b"Bearer", Expect::Anonymous),
        case("Bearer and a space", b"Bearer ", Expect::Anonymous),
        case("Bearer and spaces", b"Bearer    ", Expect::Anonymous),
        case("Bearer and a tab", b"Bearer\t", Expect::Anonymous),
        case("Bearer x", b"Bearer x", Expect::Unauthorized),
        case("Bearer random base64", bearer(&random_b64), Expect::Unauthorized),
        case("Basic random base64", format!("Basic {random_b64}"), Expect::Anonymous),
        case("Negotiate", b"Negotiate YIIJvwYGKwYBBQUCoIIJszCCCa+gJDAi", Expect::Anonymous),
        case("Bearer, Latin-1 bytes", bearer(b"\xff\xfe\xfd\xfc\xe9t\xe9"), Expect::Unauthorized),
        case("Bearer, UTF-8 non-ASCII", bearer("caf\u{e9}-\u{1F511}-token"), Expect::Unauthorized),
        case("Bearer, invalid UTF-8 then ASCII", bearer(b"\xc3\x28abcdefgh"), Expect::Unauthorized),
        case("Latin-1 bytes alone", b"\xff\xfe\xfd\xfc", Expect::Anonymous),
        case("Bearer, 64 KiB token", bearer("A".repeat(64 * 1024)), Expect::Unauthorized),
        case("Bearer, 64 KiB + 1 token", bearer("B".repeat(64 * 1024 + 1)), Expect::Unauthorized),
        case("Bearer, 1 MiB token", bearer("C".repeat(1024 * 1024)), Expect::HttpError(431)),
        case("Bearer, NUL inside", b"Bearer abc\x00def", Expect::HttpError(400)),
        case("Bearer, NUL alone", b"Bearer \x00", Expect::HttpError(400)),
        case("Bearer, DEL inside", b"Bearer abc\x7fdef", Expect::HttpError(400)),
        case("Bearer, control byte inside", b"Bearer abc\x01def", Expect::HttpError(400)),
        case("Bearer, escape sequence", b"Bearer \x1b[31mred", Expect::HttpError(400)),
        case("Bearer, LF inside", b"Bearer abc\ndef", Expect::HttpError(400)),
        case("Bearer, CR inside", b"Bearer abc\rdef", Expect::HttpError(400)),
        case("Bearer, CRLF then another header", b"Bearer not-a-token\r\nX-Injected: yes", Expect::Unauthorized),
        case("two Authorization headers, the bad one first", [bearer("not-a-token").as_slice(), b"\r\nAuthorization: ", &bearer(admin)].concat(), Expect::Unauthorized),
        case("Bearer, JSON", bearer(r#"{"user":"admin","groups":["system:masters"]}"#), Expect::Unauthorized),
        case("Bearer, a path", bearer("../../etc/passwd"), Expect::Unauthorized),
        case("Bearer, quotes and backslashes", bearer(r#""\"\\'`$(id)"#), Expect::Unauthorized),
    ]
}

impl Case {
    fn without_header(mut self) -> Case {
        self.authorization = None;
        self
    }

    fn with_cert(mut self, cert: &Arc<ClientCert>) -> Case {
        self.cert = Some(cert.clone());
        self
    }
}

// ------------------------------------------------------------------ certificates

fn dn(common_name: &str, organizations: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if !common_name.is_empty() {
        dn.push(DnType::CommonName, common_name);
    }
    for o in organizations {
        dn.push(DnType::OrganizationName, *o);
    }
    dn
}

struct Validity {
    not_before: (i32, u8, u8),
    not_after: (i32, u8, u8),
}

const VALID: Validity = Validity {
    not_before: (2020, 1, 1),
    not_after: (2099, 1, 1),
};

/// A client certificate for `subject`, issued by `issuer` (self-signed when None).
fn client_cert(
    subject: DistinguishedName,
    issuer: Option<&Issuer<'_, &KeyPair>>,
    validity: Validity,
    usage: ExtendedKeyUsagePurpose,
) -> Arc<ClientCert> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = subject;
    let (y, m, d) = validity.not_before;
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = validity.not_after;
    params.not_after = rcgen::date_time_ymd(y, m, d);
    params.extended_key_usages = vec![usage];
    let cert = match issuer {
        Some(issuer) => params.signed_by(&key, issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    Arc::new(ClientCert {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    })
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = dn(common_name, &[]);
    params
}

/// Client certificates: one from the cluster CA (control), and ones that must not identify.
#[rustfmt::skip] // a table: one case a line
fn cert_cases(s: &ServerProcess, admin: &str) -> Vec<Case> {
    use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    // The cluster CA (its subject as `tls::ensure_pki` writes it) and another CA of that name.
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(s.dir.path().join("tls/ca.key")).unwrap())
            .unwrap();
    let cluster = Issuer::new(ca_params("skiff-ca"), &ca_key);
    let other_key = KeyPair::generate().unwrap();
    let other = Issuer::new(ca_params("skiff-ca"), &other_key);
    let masters = || dn("admin", &["system:masters"]);
    let user = || dn("fuzz-cert-user", &[]);
    let control = client_cert(user(), Some(&cluster), VALID, ClientAuth);
    let foreign = client_cert(masters(), Some(&other), VALID, ClientAuth);
    let expired = Validity {
        not_before: (2020, 1, 1),
        not_after: (2021, 1, 1),
    };
    let future = Validity {
        not_before: (2090, 1, 1),
        not_after: (2095, 1, 1),
    };
    let cert_case = |name: &str, cert: &Arc<ClientCert>, expect: Expect| {
        case(name, b"", expect).without_header().with_cert(cert)
    };
    vec![
        cert_case("cert: cluster CA (control)", &control, Expect::Forbidden("fuzz-cert-user".into())),
        case("cert: cluster CA and a bad token: the certificate wins", bearer("not-a-token"), Expect::Forbidden("fuzz-cert-user".into())).with_cert(&control),
        cert_case("cert: cluster CA, no CommonName", &client_cert(dn("", &["system:masters"]), Some(&cluster), VALID, ClientAuth), Expect::Anonymous),
        cert_case("cert: self-signed, claims system:masters", &client_cert(masters(), None, VALID, ClientAuth), Expect::Unauthorized),
        cert_case("cert: another CA of the same name, claims system:masters", &foreign, Expect::Unauthorized),
        cert_case("cert: cluster CA, expired", &client_cert(masters(), Some(&cluster), expired, ClientAuth), Expect::Unauthorized),
        cert_case("cert: cluster CA, not yet valid", &client_cert(masters(), Some(&cluster), future, ClientAuth), Expect::Unauthorized),
        cert_case("cert: cluster CA, server-auth usage only", &client_cert(masters(), Some(&cluster), VALID, ServerAuth), Expect::Unauthorized),
        case("cert: another CA and the admin token: the token wins", bearer(admin), Expect::Created).with_cert(&foreign),
        case("cert: another CA and a bad token", bearer("not-a-token"), Expect::Unauthorized).with_cert(&foreign),
        case("cert: another CA and Basic", format!("Basic {}", B64.encode("admin:admin")), Expect::Unauthorized).with_cert(&foreign),
    ]
}

// ------------------------------------------------------------------ random headers

/// A random `Authorization` value and kube-apiserver's answer to it. Values never contain CR
/// or LF (they would change the request's framing) and their tokens never begin or end with
/// whitespace; other control bytes are drawn now and then, and are the HTTP layer's 400.
fn random_case(rng: &mut StdRng, i: usize) -> Case {
    const SCHEMES: &[&[u8]] = &[
        b"Bearer ",
        b"Bearer ",
        b"Bearer ",
        b"bearer ",
        b"BEARER ",
        b"Bearer  ",
        b"Bearer",
        b"Basic ",
        b"Token ",
        b"",
        b"Bearer\t",
    ];
    const B64CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const BOOTSTRAP: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let scheme = SCHEMES[rng.random_range(0..SCHEMES.len())];
    let len = match rng.random_range(0..4) {
        0 => rng.random_range(0..4),
        1 => rng.random_range(4..40),
        2 => rng.random_range(40..1200),
        _ => rng.random_range(1200..20_000),
    };
    fn pick(rng: &mut StdRng, alphabet: &[u8], n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect()
    }
    let kind = rng.random_range(0..6);
    let mut token = match kind {
        0 => pick(rng, B64CHARS, len),
        // JWT-shaped: three base64url parts.
        1 => [
            pick(rng, B64CHARS, len / 3 + 1),
            pick(rng, B64CHARS, len / 3 + 1),
            pick(rng, B64CHARS, len / 3),
        ]
        .join(&b'.'),
        // Bootstrap-shaped: [a-z0-9]{6}.[a-z0-9]{16}.
        2 => [pick(rng, BOOTSTRAP, 6), pick(rng, BOOTSTRAP, 16)].join(&b'.'),
        // Printable ASCII, spaces included.
        3 => (0..len).map(|_| rng.random_range(0x20..0x7f)).collect(),
        // Bytes above 0x7f (obs-text) mixed with ASCII.
        4 => (0..len)
            .map(|_| rng.random_range(0x21..=0xff))
            .filter(|&b| b != 0x7f)
            .collect(),
        // Anything but CR and LF.
        _ => (0..len)
            .map(|_| rng.random::<u8>())
            .filter(|&b| b != b'\r' && b != b'\n')
            .collect(),
    };
    // No whitespace or non-ASCII at the token's ends: HTTP parsers trim the value's ends, so
    // the expected answer would depend on more than the model below.
    if !token.is_empty() {
        token[0] = B64CHARS[rng.random_range(0..B64CHARS.len())];
        let last = token.len() - 1;
        token[last] = B64CHARS[rng.random_range(0..B64CHARS.len())];
    }
    let value = [scheme, &token].concat();
    let expect = upstream_answer(&value);
    Case {
        name: format!("random #{i} (seed {SEED:#x}, {} bytes)", value.len()),
        authorization: Some(value),
        cert: None,
        expect,
    }
}

/// kube-apiserver's answer to an `Authorization` value no authenticator accepts: Go's HTTP
/// server refuses control bytes (400); `bearertoken.Authenticator` trims the value, splits it
/// on spaces into at most three parts, and reads a token only when the first is `bearer` in any
/// case and the second is not empty — a token is a 401, anything else anonymous.
fn upstream_answer(value: &[u8]) -> Expect {
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Expect::HttpError(400);
    }
    let trimmed = value.trim_ascii();
    let mut parts = trimmed.splitn(3, |&b| b == b' ');
    let scheme = parts.next().unwrap_or_default();
    match parts.next() {
        Some(token) if scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty() => {
            Expect::Unauthorized
        }
        _ => Expect::Anonymous,
    }
}

// ------------------------------------------------------------------ the test

/// kubectl as the admin, asserting success.
fn admin(s: &ServerProcess, args: &[&str]) -> String {
    s.kubectl_ok(args).trim().to_string()
}

#[tokio::test]
async fn bad_credentials_are_refused_and_nothing_is_written() {
    let started = Instant::now();
    let mut s = ServerProcess::start();
    let client = Client::new(&s);
    let token = s.token();

    // Service accounts: fuzz-sa lives; gone-sa's token outlives its account.
    admin(&s, &["create", "serviceaccount", "fuzz-sa"]);
    admin(&s, &["create", "serviceaccount", "gone-sa"]);
    let live = admin(&s, &["create", "token", "fuzz-sa"]);
    let other_audience = admin(
        &s,
        &["create", "token", "fuzz-sa", "--audience", "not-the-api"],
    );
    let revoked = admin(&s, &["create", "token", "gone-sa"]);
    admin(&s, &["delete", "serviceaccount", "gone-sa"]);
    client
        .wait_for_status(&revoked, 401, "the deleted account's token to be refused")
        .await;
    // Bootstrap tokens: live, expired, not for authentication.
    let bootstrap = |id: &str, extra: &str| {
        format!(
            "{{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"type\": \"bootstrap.kubernetes.io/token\",
              \"metadata\": {{\"name\": \"bootstrap-token-{id}\", \"namespace\": \"kube-system\"}},
              \"stringData\": {{\"token-id\": \"{id}\", \"token-secret\": \"0123456789abcdef\"{extra}}}}}"
        )
    };
    let secrets = [
        bootstrap(
            "abc123",
            r#", "usage-bootstrap-authentication": "true", "expiration": "2099-01-01T00:00:00Z""#,
        ),
        bootstrap(
            "old123",
            r#", "usage-bootstrap-authentication": "true", "expiration": "2020-01-01T00:00:00Z""#,
        ),
        bootstrap("noa123", ""),
    ];
    for secret in &secrets {
        let out = s.kubectl_stdin(&["create", "-f", "-"], secret);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    client
        .wait_for_status(
            "abc123.0123456789abcdef",
            403,
            "the bootstrap token to authenticate",
        )
        .await;

    let mut cases = header_cases(&token);
    cases.extend(bootstrap_cases());
    cases.extend(jwt_cases(&s, &live, &revoked, &other_audience));
    cases.extend(cert_cases(&s, &token));
    let mut rng = StdRng::seed_from_u64(SEED);
    cases.extend((0..RANDOM_CASES).map(|i| random_case(&mut rng, i)));

    let mut failures = Vec::new();
    let mut created = BTreeSet::new();
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    for (i, case) in cases.iter().enumerate() {
        let name = format!("fuzz-{i}");
        if case.expect == Expect::Created {
            created.insert(name.clone());
        }
        let request = create_configmap_request(s.port, &name, case.authorization.as_deref());
        let outcome = client
            .send(case.cert.as_deref(), &request)
            .await
            .and_then(|r| check(&case.expect, case.authorization.as_deref(), &r));
        *tally.entry(format!("{:?}", case.expect)).or_default() += 1;
        if let Err(e) = outcome {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    println!("{} cases: {tally:?}", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Still up and healthy, and the admin still works.
    assert!(s.child.try_wait().unwrap().is_none(), "the server exited");
    let ready = client
        .send(None, &get_request(s.port, "/readyz", &token))
        .await
        .unwrap();
    assert_eq!((ready.status, ready.body.as_slice()), (200, &b"ok"[..]));
    // Nothing was written but the admin's.
    let list = client
        .send(
            None,
            &get_request(
                s.port,
                "/api/v1/namespaces/default/configmaps?labelSelector=fuzz%3Dtrue",
                &token,
            ),
        )
        .await
        .unwrap();
    assert_eq!(list.status, 200);
    let written: BTreeSet<String> = list.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|cm| cm["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(written, created, "only the admin's ConfigMaps exist");
    println!("authn fuzz: OK in {:.1?}", started.elapsed());
}
