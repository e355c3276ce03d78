//! What a control-plane component serves beside its work, as upstream's kube-controller-manager
//! (port 10257) and kube-scheduler (10259) do through k8s.io/apiserver's secure serving:
//!
//! - HTTPS only, with a self-signed certificate for `localhost` and `127.0.0.1` made at start
//!   (upstream's `MaybeDefaultWithSelfSignedCerts` when no certificate is given), HTTP/2 and
//!   HTTP/1.1;
//! - every request authenticated and authorized by the API server ([`delegated`]): a bearer
//!   token through a TokenReview, a non-resource `get /metrics` through a SubjectAccessReview;
//!   `/healthz`, `/livez` and `/readyz` are open to anyone (upstream's
//!   `--authorization-always-allow-paths` default);
//! - `/healthz` with named checks ([`healthz`]), and the same answer at `/livez` and `/readyz`
//!   (upstream's controller manager 1.37 serves only `/healthz` and answers 404 there);
//! - `/metrics` in the Prometheus text format ([`metrics`]: process and leader election
//!   metrics, plus whatever the component registers).
//!
//! A server behind the API server's aggregation layer (metrics-server) serves more through
//! [`serve_with`] ([`Options`]): its own routes (an API group) behind the same authentication
//! and authorization, a certificate from files (`--tls-cert-file`), and client certificates
//! ([`requestheader`]: the front proxy's, from `extension-apiserver-authentication`).

pub mod delegated;
pub mod healthz;
pub mod metrics;
pub mod requestheader;
pub mod x509;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;

pub use delegated::{Attributes, User, ALWAYS_ALLOW_PATHS};
pub use healthz::{Check, Healthz};
pub use requestheader::ClientCertSource;

/// Where and how to serve (upstream's `--bind-address`, `--secure-port`,
/// `--authorization-always-allow-paths`).
#[derive(Clone, Debug)]
pub struct SecureServing {
    pub bind_address: IpAddr,
    /// 0: serve nothing.
    pub port: u16,
    pub always_allow_paths: Vec<String>,
    /// The flag that sets the port, for error messages (`--secure-port`).
    pub port_flag: &'static str,
}

/// What is served.
pub struct Endpoints {
    pub healthz: Arc<Healthz>,
    /// The `/metrics` text (see [`metrics::render`]).
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
}

struct Shared {
    endpoints: Endpoints,
    readyz: Option<Arc<Healthz>>,
    auth: delegated::Delegated,
}

/// What a server serves beyond health and metrics, and how it takes clients.
#[derive(Default)]
pub struct Options {
    /// The serving certificate chain and key (PEM; upstream's `--tls-cert-file`,
    /// `--tls-private-key-file`). None: a self-signed one made at start.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// Which client certificates authenticate (none by default).
    pub client_certs: ClientCertSource,
    /// More routes, authenticated and authorized as the rest (the handlers find the
    /// [`User`] in the request's extensions). Without a fallback of their own: unknown paths
    /// are the plain `404 page not found`.
    pub routes: Option<Router>,
    /// Checks only `/readyz` runs, after the endpoints' own (metrics-server's
    /// `metric-storage-ready`: not ready before it can answer).
    pub readyz: Option<Arc<Healthz>>,
}

/// How long a client gets to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `serving`'s address and serves in the background (a bind failure is the caller's
/// error, as upstream's components exit on it). `client` reviews tokens and access. Returns
/// the address bound, or None when the port is 0.
pub async fn serve(
    serving: &SecureServing,
    client: kube::Client,
    endpoints: Endpoints,
) -> anyhow::Result<Option<SocketAddr>> {
    serve_with(serving, client, endpoints, Options::default()).await
}

/// [`serve`] with more ([`Options`]).
pub async fn serve_with(
    serving: &SecureServing,
    client: kube::Client,
    endpoints: Endpoints,
    options: Options,
) -> anyhow::Result<Option<SocketAddr>> {
    if serving.port == 0 {
        return Ok(None);
    }
    let address = SocketAddr::new(serving.bind_address, serving.port);
    let client_certs = match options.client_certs {
        ClientCertSource::None => None,
        ClientCertSource::Fixed(config) => Some(requestheader::DynamicClientCerts::fixed(config)),
        ClientCertSource::Cluster => Some(requestheader::DynamicClientCerts::watch_cluster(
            client.clone(),
        )),
    };
    let tls = tls_config(
        serving.bind_address,
        options.tls_files.as_ref(),
        client_certs.is_some(),
    )?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| {
            format!(
                "listening on {address} for /healthz and /metrics (another port with {}, or 0 to serve nothing)",
                serving.port_flag
            )
        })?;
    let bound = listener.local_addr()?;
    let state = Arc::new(Shared {
        endpoints,
        readyz: options.readyz,
        auth: delegated::Delegated::with_client_certs(
            client,
            serving.always_allow_paths.clone(),
            client_certs.unwrap_or_default(),
        ),
    });
    let app = router(state, options.routes);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let tcp = match listener.accept().await {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!("accepting on {bound}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                else {
                    return;
                };
                // The client's certificates ride along with each of its requests.
                let peer = tls.get_ref().1.peer_certificates().map(|chain| {
                    x509::PeerCertificates(Arc::new(
                        chain.iter().map(|c| c.clone().into_owned()).collect(),
                    ))
                });
                let service = TowerToHyperService::new(tower::util::MapRequest::new(
                    app,
                    move |mut request: axum::http::Request<hyper::body::Incoming>| {
                        if let Some(peer) = &peer {
                            request.extensions_mut().insert(peer.clone());
                        }
                        request
                    },
                ));
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Ok(Some(bound))
}

fn router(state: Arc<Shared>, routes: Option<Router>) -> Router {
    let base = Router::new()
        .route("/healthz", any(healthz_endpoint))
        .route("/livez", any(livez_endpoint))
        .route("/readyz", any(readyz_endpoint))
        .route("/metrics", any(metrics_endpoint))
        .fallback(not_found)
        .with_state(state.clone());
    let app = match routes {
        Some(routes) => base.merge(routes),
        None => base,
    };
    app.layer(middleware::from_fn_with_state(state, guard))
}

/// The serving configuration: the certificate from `files` or a self-signed one, and client
/// certificates asked for (not required) when `client_certs`.
fn tls_config(
    bind_address: IpAddr,
    files: Option<&(PathBuf, PathBuf)>,
    client_certs: bool,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let (chain, key) = match files {
        Some((cert, key)) => certificate_files(cert, key)?,
        None => self_signed(bind_address)?,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?;
    let builder = if client_certs {
        builder.with_client_cert_verifier(x509::RequestClientCert::new())
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

type CertifiedKey = (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

fn certificate_files(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<CertifiedKey> {
    let pem = std::fs::read(cert).with_context(|| format!("--tls-cert-file {}", cert.display()))?;
    let chain = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("--tls-cert-file {}", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "--tls-cert-file {}: no certificate",
        cert.display()
    );
    let pem =
        std::fs::read(key).with_context(|| format!("--tls-private-key-file {}", key.display()))?;
    let key = rustls_pemfile::private_key(&mut pem.as_slice())
        .with_context(|| format!("--tls-private-key-file {}", key.display()))?
        .ok_or_else(|| {
            anyhow::anyhow!("--tls-private-key-file {}: no private key", key.display())
        })?;
    Ok((chain, key))
}

/// A self-signed serving certificate (upstream's in-memory default: `localhost`, `127.0.0.1`;
/// here also the bind address when it is a specific one).
fn self_signed(bind_address: IpAddr) -> anyhow::Result<CertifiedKey> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !bind_address.is_unspecified() && !bind_address.is_loopback() {
        names.push(bind_address.to_string());
    }
    let certified = rcgen::generate_simple_self_signed(names)
        .context("making the self-signed serving certificate")?;
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("the serving key: {e}"))?;
    Ok((vec![cert], key))
}

/// A `Status` body as the API machinery writes it.
pub fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    status_with_details(code, reason, message, None)
}

/// [`status`] with `details`.
pub fn status_with_details(
    code: StatusCode,
    reason: &str,
    message: &str,
    details: Option<serde_json::Value>,
) -> Response {
    let mut body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(details) = details {
        body["details"] = details;
    } else if code == StatusCode::FORBIDDEN {
        body["details"] = serde_json::json!({});
    }
    let mut response = (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if code == StatusCode::FORBIDDEN {
        nosniff(&mut response);
    }
    response
}

fn nosniff(response: &mut Response) {
    response.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
}

/// Authentication, then authorization, before any routing (upstream's handler chain).
async fn guard(State(state): State<Arc<Shared>>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let attributes = Attributes::of(request.method().as_str(), &path, request.uri().query());
    let peer = request
        .extensions()
        .get::<x509::PeerCertificates>()
        .cloned();
    let (verdict, user) = state
        .auth
        .check_request(
            request.headers(),
            peer.as_ref().map(|p| p.0.as_slice()),
            &attributes,
        )
        .await;
    let mut response = match verdict {
        delegated::Verdict::Allow => {
            if let Some(user) = user {
                request.extensions_mut().insert(user);
            }
            next.run(request).await
        }
        delegated::Verdict::Unauthorized => {
            status(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
        }
        delegated::Verdict::Forbidden(message, details) => status_with_details(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &message,
            details.map(|d| {
                let mut details = serde_json::json!({"group": d.group, "kind": d.resource});
                if !d.name.is_empty() {
                    details["name"] = d.name.into();
                }
                details
            }),
        ),
        delegated::Verdict::Error(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Internal Server Error: {path:?}: {e}\n"),
        ),
    };
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache, private"));
    response
}

/// A plain-text answer as Go's `http.Error` writes it.
pub fn text(code: StatusCode, body: String) -> Response {
    let mut response = (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response();
    nosniff(&mut response);
    response
}

fn health(state: &Shared, endpoint: &str, query: Option<String>) -> Response {
    let answer = state.endpoints.healthz.answer(endpoint, query.as_deref());
    let code = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    text(code, answer.body)
}

async fn healthz_endpoint(State(state): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    health(&state, "healthz", q)
}

async fn livez_endpoint(State(state): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    health(&state, "livez", q)
}

async fn readyz_endpoint(State(state): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let Some(more) = &state.readyz else {
        return health(&state, "readyz", q);
    };
    let mut checks = state.endpoints.healthz.checks();
    checks.extend(more.checks());
    let answer = Healthz::new(checks).answer("readyz", q.as_deref());
    let code = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    text(code, answer.body)
}

async fn metrics_endpoint(State(state): State<Arc<Shared>>) -> Response {
    let body = (state.endpoints.metrics)();
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response()
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "404 page not found\n".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    /// A client for an API server that is not there: reviews fail at once.
    fn unreachable_client() -> kube::Client {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    fn app(checks: Vec<Check>) -> Router {
        let registry = metrics::component_registry(None);
        router(
            Arc::new(Shared {
                readyz: None,
                endpoints: Endpoints {
                    healthz: Arc::new(Healthz::new(checks)),
                    metrics: Arc::new(move || metrics::render(&registry)),
                },
                auth: delegated::Delegated::new(
                    unreachable_client(),
                    ALWAYS_ALLOW_PATHS.map(String::from).to_vec(),
                ),
            }),
            None,
        )
    }

    async fn get(app: &Router, uri: &str, token: Option<&str>) -> (StatusCode, String, Response) {
        let mut request = axum::http::Request::get(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let status = parts.status;
        (status, text, Response::from_parts(parts, Body::empty()))
    }

    /// The health paths need no credentials and answer as upstream's (headers included).
    #[tokio::test]
    async fn health_is_open() {
        let app = app(vec![Check::ping("leaderElection")]);
        let (status, body, response) = get(&app, "/healthz?verbose", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "[+]leaderElection ok\nhealthz check passed\n");
        let headers = response.headers();
        assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["cache-control"], "no-cache, private");
        assert_eq!(get(&app, "/livez", None).await.1, "ok");
        assert_eq!(get(&app, "/readyz", None).await.1, "ok");
    }

    /// Anything else is reviewed by the API server: a token it cannot review is 401 (also on
    /// the open paths, as upstream authenticates first), an access review that cannot be made
    /// is upstream's 500.
    #[tokio::test]
    async fn everything_else_is_reviewed() {
        let app = app(vec![]);
        let (status, body, response) = get(&app, "/healthz", Some("t")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let status_object: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status_object["reason"], "Unauthorized");
        assert_eq!(status_object["code"], 401);
        assert_eq!(response.headers()["content-type"], "application/json");
        let (status, body, _) = get(&app, "/metrics", None).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body.starts_with("Internal Server Error: \"/metrics\": subject access review:"),
            "{body}"
        );
    }
}
