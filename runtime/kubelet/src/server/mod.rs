//! The kubelet API (upstream's `pkg/kubelet/server`): HTTPS on `<node-ip>:10250`, and a plain
//! `/healthz` on 127.0.0.1:10248.
//!
//! Every request on :10250 — `/healthz` included, as upstream's — is authenticated
//! (`authn.rs`: a client certificate from `--client-ca-file`, else a bearer token checked with
//! a TokenReview, else anonymous when `--anonymous-auth` allows it; otherwise 401) and then
//! authorized (`authz.rs`: a SubjectAccessReview on the Node's subresource the path maps to,
//! with `--authorization-mode Webhook`; a denial is upstream's 403). Both answers are cached
//! (`cache.rs`), so a `kubectl logs -f` or a scrape does not cost a review per request. A
//! pod's service-account token therefore reaches nothing here unless RBAC grants its account
//! `nodes/proxy` (or the subresource asked for), while the API server, with its client
//! certificate `kube-apiserver-kubelet-client` (bound to `system:kubelet-api-admin`), may
//! serve `kubectl logs/exec/attach/port-forward`.
//!
//! The serving certificate is self-signed, or issued by the cluster with
//! `--rotate-server-certificates` (`certificate/serving.rs`, swapped in without a restart).

pub mod authn;
pub mod authz;
pub mod cache;
pub mod exec;
pub mod logs;
pub mod metrics;
pub mod portforward;
pub mod spdy;
pub mod stats;
pub mod tty;

use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;

use crate::certificate::serving::ServingCertificate;
use crate::Kubelet;
use authn::{Authenticator, ClientCertificates, PeerCertificate};
use authz::Authorizer;

struct ServerState {
    k: Arc<Kubelet>,
    authn: Authenticator,
    authz: Authorizer,
    /// The last CPU sample of every cgroup, for `usageNanoCores` (`stats.rs`).
    stats: Arc<stats::Sampler>,
}

type Shared = Arc<ServerState>;

/// Starts both listeners; the returned future ends only if the HTTPS listener fails.
/// `serving` is the certificate TLS presents (read at each handshake).
pub async fn serve(
    k: Arc<Kubelet>,
    serving: Arc<ServingCertificate>,
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    let client_certs = match &k.args.client_ca_file {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Some(
                ClientCertificates::new(&pem)
                    .with_context(|| format!("--client-ca-file {}", path.display()))?,
            )
        }
        None => {
            tracing::warn!("no --client-ca-file: client certificates do not authenticate to the kubelet API (the API server's included)");
            None
        }
    };
    let state = Arc::new(ServerState {
        k: k.clone(),
        authn: Authenticator::new(k.client.clone(), k.args.anonymous_auth),
        authz: Authorizer::new(
            k.args.authorization_mode,
            k.client.clone(),
            k.args.node_name.clone(),
        ),
        stats: Arc::new(stats::Sampler::default()),
    });
    tokio::spawn(stats::housekeeping(k.clone(), state.stats.clone()));
    let api = Router::new()
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .route("/exec/{namespace}/{pod}/{container}", get(exec).post(exec))
        .route(
            "/attach/{namespace}/{pod}/{container}",
            get(attach).post(attach),
        )
        .route(
            "/portForward/{namespace}/{pod}",
            get(port_forward).post(port_forward),
        )
        .route("/pods", get(pods))
        .route("/stats/summary", get(stats_summary))
        .route("/metrics/resource", get(resource_metrics))
        .route("/metrics", get(kubelet_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state.clone());
    let tls = tls_config(serving, client_certs.clone())?;
    let address = std::net::SocketAddr::new(k.args.node_ip, k.args.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding the kubelet API to {address}"))?;
    if k.args.healthz_port != 0 {
        let health = tokio::net::TcpListener::bind(("127.0.0.1", k.args.healthz_port))
            .await
            .with_context(|| format!("binding /healthz to 127.0.0.1:{}", k.args.healthz_port))?;
        let app = Router::new().route("/healthz", get(|| async { "ok" }));
        tokio::spawn(async move {
            let _ = axum::serve(health, app).await;
        });
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    Ok(async move {
        loop {
            let (tcp, peer) = listener.accept().await.context("accepting")?;
            let acceptor = acceptor.clone();
            let client_certs = client_certs.clone();
            let api = api.clone();
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                };
                // The client certificate, judged once per connection, goes with each request.
                let certificate = client_certs
                    .as_ref()
                    .and_then(|c| c.peer(tls.get_ref().1.peer_certificates()));
                let service = TowerToHyperService::new(with_certificate(api, certificate));
                let builder = auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await;
            });
        }
    })
}

/// `service` with the connection's client certificate (if it sent one) attached to each
/// request as the extension [`PeerCertificate`].
fn with_certificate<S, B>(
    service: S,
    certificate: Option<PeerCertificate>,
) -> tower::util::MapRequest<S, impl FnMut(http::Request<B>) -> http::Request<B> + Clone>
where
    S: tower::Service<http::Request<B>>,
{
    use tower::ServiceExt;
    service.map_request(move |mut request: http::Request<B>| {
        if let Some(certificate) = &certificate {
            request.extensions_mut().insert(certificate.clone());
        }
        request
    })
}

/// TLS with `serving`'s certificate (whichever is current at the handshake), asking clients
/// for a certificate when there is a client CA.
fn tls_config(
    serving: Arc<ServingCertificate>,
    client_certs: Option<Arc<ClientCertificates>>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?;
    let builder = match client_certs {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(serving);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Authentication, then authorization, for every request (upstream's auth filter).
async fn guard(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<PeerCertificate>();
    let user = match state.authn.authenticate(request.headers(), peer).await {
        Ok(user) => user,
        Err(why) => {
            tracing::debug!(path = %request.uri().path(), "unauthorized: {}", why.0);
            return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
        }
    };
    if let Err(refusal) = state
        .authz
        .authorize(&user, request.method(), request.uri().path())
        .await
    {
        return (refusal.status, refusal.message).into_response();
    }
    next.run(request).await
}

async fn container_logs(
    State(state): State<Shared>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    logs::serve(&state.k, &namespace, &pod, &container, &query).await
}

async fn exec(
    State(state): State<Shared>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    upgrade: Result<
        axum::extract::ws::WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Response {
    exec::serve(&state.k, &namespace, &pod, &container, &query, upgrade).await
}

async fn attach(
    State(state): State<Shared>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    upgrade: Result<
        axum::extract::ws::WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Response {
    exec::serve_attach(&state.k, &namespace, &pod, &container, &query, upgrade).await
}

async fn port_forward(
    State(state): State<Shared>,
    Path((namespace, pod)): Path<(String, String)>,
    upgrade: Result<
        axum::extract::ws::WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
) -> Response {
    portforward::serve(&state.k, &namespace, &pod, upgrade).await
}

/// The Summary, read in a blocking task.
async fn summary(state: &Shared, only_cpu_and_memory: bool) -> Result<stats::Summary, Response> {
    let (k, sampler) = (state.k.clone(), state.stats.clone());
    tokio::task::spawn_blocking(move || stats::summary(&k, &sampler, only_cpu_and_memory))
        .await
        .map_err(|e| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Internal Error: failed to get node info: {e}"),
            )
                .into_response()
        })
}

/// `/stats/summary` (`?only_cpu_and_memory=true` for CPU and memory alone).
async fn stats_summary(
    State(state): State<Shared>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let only = query
        .iter()
        .any(|(k, v)| k == "only_cpu_and_memory" && v == "true");
    match summary(&state, only).await {
        Ok(summary) => axum::Json(summary).into_response(),
        Err(response) => response,
    }
}

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `/metrics/resource`: CPU and memory for metrics-server.
async fn resource_metrics(State(state): State<Shared>) -> Response {
    let text = match summary(&state, true).await {
        Ok(summary) => metrics::resource_metrics(&summary),
        Err(_) => metrics::resource_scrape_failed(),
    };
    ([(http::header::CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response()
}

/// `/metrics`: the kubelet's own metrics.
async fn kubelet_metrics(State(state): State<Shared>) -> Response {
    let views: Vec<crate::PodView> = state
        .k
        .views
        .lock()
        .expect("not poisoned")
        .values()
        .cloned()
        .collect();
    let text = metrics::kubelet_metrics(&state.k.args.node_name, &views);
    ([(http::header::CONTENT_TYPE, PROMETHEUS_TEXT)], text).into_response()
}

/// `/pods`: the pods this kubelet runs (names, uids, IPs, containers) as a v1 PodList.
async fn pods(State(state): State<Shared>) -> Response {
    let views: Vec<crate::PodView> = state
        .k
        .views
        .lock()
        .expect("not poisoned")
        .values()
        .cloned()
        .collect();
    let items: Vec<serde_json::Value> = views
        .iter()
        .map(|v| {
            serde_json::json!({
                "metadata": {"name": v.name, "namespace": v.namespace, "uid": v.uid},
                "spec": {"nodeName": state.k.args.node_name, "containers": v.containers.iter().map(|c| serde_json::json!({"name": c.name})).collect::<Vec<_>>()},
                "status": {"podIP": v.pod_ip},
            })
        })
        .collect();
    axum::Json(
        serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}),
    )
    .into_response()
}
