//! The HTTP side, on CoreDNS's ports: `/health` (:8080, 200 while the process serves),
//! `/ready` (:8181, 503 until the first sync with the API, as CoreDNS's `ready` plugin) and
//! `/metrics` (:9153). Paths that share an address share one listener.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;

/// Binds the HTTP listeners and serves them in the background.
pub async fn serve(
    health: SocketAddr,
    ready_addr: SocketAddr,
    metrics_addr: SocketAddr,
    ready: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let mut routers: BTreeMap<SocketAddr, Router> = BTreeMap::new();
    let add = |routers: &mut BTreeMap<SocketAddr, Router>, addr, r: Router| {
        let merged = routers.remove(&addr).unwrap_or_default().merge(r);
        routers.insert(addr, merged);
    };
    add(
        &mut routers,
        health,
        Router::new().route("/health", get(|| async { "OK" })),
    );
    add(
        &mut routers,
        ready_addr,
        Router::new().route(
            "/ready",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::Acquire) {
                        (StatusCode::OK, "OK").into_response()
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "kubernetes").into_response()
                    }
                }
            }),
        ),
    );
    add(
        &mut routers,
        metrics_addr,
        Router::new().route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        metrics.render(),
                    )
                }
            }),
        ),
    );
    for (addr, router) in routers {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding HTTP on {addr}"))?;
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                tracing::error!(%addr, %error, "HTTP server failed");
            }
        });
    }
    Ok(())
}
