//! The kubelet API (upstream's `pkg/kubelet/server`): HTTPS on `<node-ip>:10250` with a
//! self-signed serving certificate, and a plain `/healthz` on 127.0.0.1:10248.
//!
//! Every request but `/healthz` needs a bearer token, checked with a TokenReview against the
//! API server (upstream's webhook authentication); the answer is cached for two minutes so a
//! `kubectl logs -f` does not cost a review per request. Anonymous requests get 401.

pub mod exec;
pub mod logs;
pub mod portforward;
pub mod spdy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};

use crate::Kubelet;

struct ServerState {
    k: Arc<Kubelet>,
    /// token → (authenticated user, when checked)
    reviewed: Mutex<HashMap<String, (Option<String>, Instant)>>,
}

type Shared = Arc<ServerState>;

const REVIEW_CACHE: Duration = Duration::from_secs(120);

/// Starts both listeners; the returned future ends only if the HTTPS listener fails.
pub async fn serve(
    k: Arc<Kubelet>,
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    let state = Arc::new(ServerState {
        k: k.clone(),
        reviewed: Mutex::new(HashMap::new()),
    });
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
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state.clone());
    let tls = tls_config(&k)?;
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
            let (tcp, _peer) = listener.accept().await.context("accepting")?;
            let acceptor = acceptor.clone();
            let service = TowerToHyperService::new(api.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let builder = auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await;
            });
        }
    })
}

/// A self-signed serving certificate for the node's IP and name, made at start (upstream's
/// kubelet does the same without --tls-cert-file).
fn tls_config(k: &Kubelet) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let names = vec![k.args.node_name.clone(), k.args.node_ip.to_string()];
    let certified = rcgen::generate_simple_self_signed(names)
        .context("making the kubelet's serving certificate")?;
    let cert = certified.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("the kubelet's key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn authenticate(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let Some(token) = token else {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    };
    let cached = state
        .reviewed
        .lock()
        .expect("not poisoned")
        .get(&token)
        .filter(|(_, at)| at.elapsed() < REVIEW_CACHE)
        .map(|(user, _)| user.clone());
    let user = match cached {
        Some(user) => user,
        None => {
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: token.clone(),
                    audiences: None,
                },
                ..TokenReview::default()
            };
            let api: Api<TokenReview> = Api::all(state.k.client.clone());
            let user = match api.create(&PostParams::default(), &review).await {
                Ok(answer) => answer
                    .status
                    .filter(|s| s.authenticated == Some(true))
                    .and_then(|s| s.user)
                    .and_then(|u| u.username),
                Err(e) => {
                    tracing::warn!("token review: {e}");
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the API server could not review the token",
                    )
                        .into_response();
                }
            };
            let mut reviewed = state.reviewed.lock().expect("not poisoned");
            if reviewed.len() > 1000 {
                reviewed.clear();
            }
            reviewed.insert(token, (user.clone(), Instant::now()));
            user
        }
    };
    if user.is_none() {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
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
