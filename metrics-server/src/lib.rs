//! `skiff metrics-server`: the Metrics API (`metrics.k8s.io/v1beta1`) that `kubectl top` and
//! the HorizontalPodAutoscaler read, in the role of kubernetes-sigs/metrics-server.
//!
//! It runs as an extension API server behind the API server's aggregation layer: the API
//! server proxies `/apis/metrics.k8s.io/v1beta1/...` to it with its front-proxy client
//! certificate and the user in `X-Remote-*` headers. One file per role:
//!
//! - [`scraper`]: every `--metric-resolution` (15 s), each Node's kubelet
//!   `/metrics/resource`, concurrently, with a timeout; [`decode`] reads the Prometheus text;
//! - [`storage`]: the last two points per node and container, CPU as the counter's rate;
//! - [`api`]: discovery and the `nodes` and `pods` resources, with selectors and tables;
//! - [`args`]: the flags, as upstream's.
//!
//! Serving (TLS, authentication by front-proxy certificate or token, authorization by
//! SubjectAccessReview, `/healthz`, `/livez`, `/readyz`, `/metrics`) is `skiff-serving`'s, as
//! upstream's is k8s.io/apiserver's. `/readyz` passes once some usage can be answered (two
//! scrapes), `/livez` while scrape rounds keep happening (upstream's
//! `metric-collection-timely`: the last round began less than 1.5 resolutions ago).

pub mod api;
pub mod args;
pub mod decode;
pub mod format;
pub mod metrics;
pub mod scraper;
pub mod storage;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::reflector::{self, reflector};
use kube::runtime::{watcher, WatchStreamExt};
use parking_lot::RwLock;

pub use args::MetricsServerArgs;
use skiff_serving::{Check, Healthz};

async fn client_config(args: &MetricsServerArgs) -> anyhow::Result<kube::Config> {
    match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("--kubeconfig {}", path.display()))?;
            Ok(kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await?)
        }
        None => Ok(kube::Config::incluster().context("no --kubeconfig and not in a cluster")?),
    }
}

/// The client-certificate settings: from the flags when the front proxy's CA is given, else
/// the cluster's ConfigMap.
fn client_certs(args: &MetricsServerArgs) -> anyhow::Result<skiff_serving::ClientCertSource> {
    use skiff_serving::requestheader::{ClientCertConfig, RequestHeaderConfig};
    use skiff_serving::x509::CaBundle;
    let Some(ca) = &args.requestheader_client_ca_file else {
        return Ok(skiff_serving::ClientCertSource::Cluster);
    };
    let read = |path: &std::path::Path, flag: &str| -> anyhow::Result<CaBundle> {
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("{flag} {}", path.display()))?;
        CaBundle::from_pem(&pem).with_context(|| format!("{flag} {}", path.display()))
    };
    Ok(skiff_serving::ClientCertSource::Fixed(ClientCertConfig {
        client_ca: match &args.client_ca_file {
            Some(path) => Some(read(path, "--client-ca-file")?),
            None => None,
        },
        request_header: Some(RequestHeaderConfig {
            ca: read(ca, "--requestheader-client-ca-file")?,
            allowed_names: args.requestheader_allowed_names.clone(),
            username_headers: args.requestheader_username_headers.clone(),
            group_headers: args.requestheader_group_headers.clone(),
            extra_headers_prefix: args.requestheader_extra_headers_prefix.clone(),
            uid_headers: args.requestheader_uid_headers.clone(),
        }),
    }))
}

/// A reflector on `api`: the store, filled in the background.
fn cache<K>(api: kube::Api<K>) -> reflector::Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!("watching {}: {e}", K::plural(&()));
            }
        }
    });
    reader
}

/// Whether `store` has its first list, as a watch channel any number of readers may poll.
///
/// kube-runtime's `Store::wait_until_ready` sits on a oneshot receiver, which keeps one waker:
/// with two pollers — the scrape loop awaiting it and a health check polling it on each
/// `/readyz` — the loop's wake-up could be lost and no scrape ever ran (seen in
/// tests/metrics_server.rs about one run in three). One task awaits it per store.
fn readiness<K>(store: reflector::Store<K>) -> tokio::sync::watch::Receiver<bool>
where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if store.wait_until_ready().await.is_ok() {
            let _ = tx.send(true);
        }
    });
    rx
}

/// A check that passes once a store has its first list (upstream's informer-sync checks).
fn synced<K>(name: &str, ready: tokio::sync::watch::Receiver<bool>) -> Check
where
    K: kube::Resource<DynamicType = ()>,
{
    let plural = K::plural(&()).to_string();
    Check::new(name, move || {
        if *ready.borrow() {
            Ok(())
        } else {
            Err(format!("the {plural} cache has not synced"))
        }
    })
}

/// Reads the certificate files of `--kubelet-certificate-authority` as DER.
fn kubelet_ca(args: &MetricsServerArgs) -> anyhow::Result<Option<Vec<Vec<u8>>>> {
    let Some(path) = &args.kubelet_certificate_authority else {
        return Ok(None);
    };
    let pem = std::fs::read(path)
        .with_context(|| format!("--kubelet-certificate-authority {}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("--kubelet-certificate-authority {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "--kubelet-certificate-authority {}: no certificate",
        path.display()
    );
    Ok(Some(certs))
}

/// Runs until SIGTERM or ctrl-c.
pub async fn run(args: MetricsServerArgs) -> anyhow::Result<()> {
    let config = client_config(&args).await?;
    let client = kube::Client::try_from(config.clone())?;
    let resolution = args.metric_resolution;
    let scraper = scraper::Scraper::new(
        config,
        scraper::KubeletOptions {
            port: args.kubelet_port,
            use_node_status_port: args.kubelet_use_node_status_port,
            address_types: args.kubelet_preferred_address_types.clone(),
            ca: kubelet_ca(&args)?,
            insecure: args.kubelet_insecure_tls,
            timeout: resolution.mul_f64(0.9),
        },
    );
    let nodes = cache(kube::Api::<Node>::all(client.clone()));
    let pods = cache(kube::Api::<Pod>::all(client.clone()));
    let mut nodes_ready = readiness(nodes.clone());
    let pods_ready = readiness(pods.clone());
    let storage = Arc::new(RwLock::new(storage::Storage::new(resolution)));
    let last_tick = Arc::new(AtomicI64::new(scraper::now_ns()));

    // Health, as upstream's checks are named.
    let healthz = Arc::new(Healthz::new(vec![
        {
            let last_tick = last_tick.clone();
            let limit = resolution.mul_f64(1.5).as_nanos() as i64;
            Check::new("metric-collection-timely", move || {
                let since = scraper::now_ns() - last_tick.load(Ordering::Relaxed);
                if since > limit {
                    Err(format!(
                        "metric collection didn't finish on time: {since} ns since the last round"
                    ))
                } else {
                    Ok(())
                }
            })
        },
        synced::<Pod>("metadata-informer-sync", pods_ready),
    ]));
    let readyz = Arc::new(Healthz::new(vec![
        {
            let storage = storage.clone();
            Check::new("metric-storage-ready", move || {
                if storage.read().ready() {
                    Ok(())
                } else {
                    Err("no metrics to serve".into())
                }
            })
        },
        synced::<Node>("metric-informer-sync", nodes_ready.clone()),
    ]));
    let mut registry = skiff_serving::metrics::component_registry(None);
    let server_metrics = metrics::ServerMetrics::register(&mut registry);
    let routes = api::router(api::Sources {
        storage: storage.clone(),
        nodes: nodes.clone(),
        pods,
    });
    let serving = skiff_serving::SecureServing {
        bind_address: args.bind_address,
        port: args.secure_port,
        always_allow_paths: args.authorization_always_allow_paths.clone(),
        port_flag: "--secure-port",
    };
    let tls_files = args
        .tls_cert_file
        .clone()
        .zip(args.tls_private_key_file.clone());
    let address = skiff_serving::serve_with(
        &serving,
        client,
        skiff_serving::Endpoints {
            healthz,
            metrics: Arc::new(move || skiff_serving::metrics::render(&registry)),
        },
        skiff_serving::Options {
            tls_files,
            client_certs: client_certs(&args)?,
            routes: Some(routes),
            readyz: Some(readyz),
        },
    )
    .await?;
    if let Some(address) = address {
        tracing::info!(%address, "skiff metrics-server serving metrics.k8s.io/v1beta1");
    }

    let scrape_loop = async move {
        let mut ticker = tokio::time::interval(resolution);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let _ = nodes_ready.wait_for(|ready| *ready).await;
        loop {
            ticker.tick().await;
            last_tick.store(scraper::now_ns(), Ordering::Relaxed);
            let started = std::time::Instant::now();
            let round = scraper.round(nodes.state()).await;
            for (node, success, seconds, at) in &round.requests {
                server_metrics.kubelet_request(node, *success, *seconds, *at);
            }
            for (_, why) in &round.failures {
                tracing::warn!("{why}");
            }
            let scraped = round.batches.len();
            storage.write().store(round.batches);
            let (node_points, container_points) = storage.read().points();
            server_metrics.round(
                started.elapsed().as_secs_f64(),
                node_points,
                container_points,
            );
            tracing::debug!(
                scraped,
                failed = round.failures.len(),
                node_points,
                container_points,
                "scrape round"
            );
        }
    };
    tokio::select! {
        _ = scrape_loop => Ok(()),
        _ = shutdown() => Ok(()),
    }
}

async fn shutdown() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
