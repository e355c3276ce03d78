//! Keeps the datapath equal to the API: reflectors of Services and EndpointSlices (one way
//! to watch), a full recompute of the wanted frontends on every batch of events (cheap: a
//! join of two in-memory stores), and an incremental apply that writes only the frontends
//! that changed — one Service's update never touches another's entries.
//!
//! Beside the frontends it keeps the node-address map (every Node's addresses: a NodePort
//! dialled on any of them is translated) and the announce map (the LoadBalancer IPs this node
//! is elected to answer ARP for, see [`super::announce`]), and serves the health-check node
//! ports ([`super::health`]) when the node serves outside traffic.
//!
//! `--proxy-metrics-address` (kube-proxy's 10249) serves `/metrics` (sync latency, frontends,
//! backends, syncs and failures) and `/services` (the programmed frontends and backends).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Client;

use super::announce::{self, Liveness};
use super::datapath::Datapath;
use super::{health, model};

/// Where this node announces LoadBalancer IPs: its interface and that interface's MAC.
#[derive(Debug, Clone)]
pub struct Announcer {
    pub iface: String,
    pub mac: [u8; 6],
}

/// Every Node's InternalIP and ExternalIP.
fn node_addresses<'a>(nodes: impl IntoIterator<Item = &'a Node>) -> BTreeSet<Ipv4Addr> {
    nodes
        .into_iter()
        .filter_map(|n| n.status.as_ref()?.addresses.as_ref())
        .flatten()
        .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

#[derive(Default)]
struct Stats {
    syncs: u64,
    failures: u64,
    last_sync_seconds: f64,
    frontends: usize,
    backends: usize,
    /// Frontend lines (without counters) and their counter index.
    listing: Vec<(String, u16)>,
    announced: String,
}

/// Runs the proxy for `node` until the watches end.
pub async fn run(
    client: Client,
    node: String,
    mut datapath: Datapath,
    metrics: Option<SocketAddr>,
    announcer: Option<Announcer>,
) -> anyhow::Result<()> {
    let stats = Arc::new(Mutex::new(Stats::default()));
    if let Some(addr) = metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the proxy's metrics address {addr}"))?;
        tokio::spawn(serve(listener, stats.clone(), datapath.take_counters()));
    }
    let (services, services_writer) = reflector::store::<Service>();
    let (slices, slices_writer) = reflector::store::<EndpointSlice>();
    let (nodes, nodes_writer) = reflector::store::<Node>();
    let (leases, leases_writer) = reflector::store::<Lease>();
    let node_events = reflector(
        nodes_writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .map(|e| {
        e.map(|e| (2usize, matches!(e, watcher::Event::InitDone)))
            .map_err(|e| e.to_string())
    });
    let lease_events = reflector(
        leases_writer,
        watcher(
            Api::<Lease>::namespaced(client.clone(), announce::LEASE_NAMESPACE),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .map(|e| {
        e.map(|e| (3usize, matches!(e, watcher::Event::InitDone)))
            .map_err(|e| e.to_string())
    });
    if announcer.is_some() {
        tokio::spawn(announce::heartbeat(client.clone(), node.clone()));
    }
    let service_events = reflector(
        services_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .map(|e| {
        e.map(|e| (0usize, matches!(e, watcher::Event::InitDone)))
            .map_err(|e| e.to_string())
    });
    let slice_events = reflector(
        slices_writer,
        watcher(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .map(|e| {
        e.map(|e| (1usize, matches!(e, watcher::Event::InitDone)))
            .map_err(|e| e.to_string())
    });
    let mut events = futures::stream::select_all([
        service_events.boxed(),
        slice_events.boxed(),
        node_events.boxed(),
        lease_events.boxed(),
    ])
    .ready_chunks(1024)
    .boxed();
    let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
    // Nothing is programmed before every list is complete (a partial list would remove
    // frontends a restarted agent left in place).
    let mut synced = [false; 4];
    let mut liveness = Liveness::default();
    let mut health_servers = health::Servers::default();
    let recorder = skiff_events::Recorder::new("skiff-netd", Some(&node));
    let mut announced: BTreeSet<Ipv4Addr> = BTreeSet::new();
    // Heartbeats are judged by when they stop changing: looked at every second.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let objects_changed = tokio::select! {
            batch = events.next() => match batch {
                Some(batch) => {
                    for e in batch {
                        match e {
                            Ok((source, true)) => synced[source] = true,
                            Ok(_) => {}
                            Err(e) => tracing::warn!("watching the service proxy's objects: {e}"),
                        }
                    }
                    true
                }
                None => anyhow::bail!("the service watches ended"),
            },
            _ = tick.tick() => false,
        };
        if !synced.iter().all(|s| *s) {
            continue;
        }
        if let Some(announcer) = &announcer {
            liveness.observe(leases.state().iter().map(|l| l.as_ref()));
            let services = services.state();
            let slices = slices.state();
            let mine = announce::elected(
                services.iter().map(|s| s.as_ref()),
                slices.iter().map(|s| s.as_ref()),
                &liveness.alive(),
                &node,
            );
            if mine != announced {
                match datapath.set_announced(&mine) {
                    Ok(()) => {
                        for ip in mine.difference(&announced) {
                            tracing::info!(%ip, "announcing the LoadBalancer IP from this node");
                            if let Err(e) =
                                announce::gratuitous_arp(&announcer.iface, announcer.mac, *ip)
                            {
                                tracing::warn!("{e:#}");
                            }
                        }
                        for ip in announced.difference(&mine) {
                            tracing::info!(%ip, "no longer announcing the LoadBalancer IP");
                        }
                        stats.lock().expect("not poisoned").announced = mine
                            .iter()
                            .map(|ip| format!("{ip} announced (ARP) by this node\n"))
                            .collect();
                        announced = mine;
                    }
                    Err(e) => tracing::error!("{e:#}"),
                }
            }
        }
        if !objects_changed {
            continue;
        }
        if let Err(e) =
            datapath.set_node_addrs(&node_addresses(nodes.state().iter().map(|n| n.as_ref())))
        {
            tracing::error!("{e:#}");
        }
        let started = Instant::now();
        let services = services.state();
        let slices = slices.state();
        let mut skipped = Vec::new();
        let desired = model::all_frontends(
            services.iter().map(|s| s.as_ref()),
            slices.iter().map(|s| s.as_ref()),
            &node,
            &mut skipped,
        );
        for s in skipped {
            if reported.insert((s.service.clone(), s.reason.clone())) {
                tracing::warn!(service = %s.service, "not programmed: {}", s.reason);
                let message = format!(
                    "port {} is not served on node {node}: {}",
                    s.service, s.reason
                );
                if let Err(e) = recorder
                    .record(
                        &client,
                        &s.object,
                        skiff_events::WARNING,
                        "UnsupportedProtocol",
                        "Programming",
                        &message,
                    )
                    .await
                {
                    tracing::warn!("recording an event for {}: {e}", s.service);
                }
            }
        }
        let result = datapath.apply(&desired);
        if announcer.is_some() {
            health_servers.sync(&health::wanted(
                services.iter().map(|s| s.as_ref()),
                slices.iter().map(|s| s.as_ref()),
                &node,
            ));
        }
        let mut stats = stats.lock().expect("not poisoned");
        stats.syncs += 1;
        stats.last_sync_seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(changed) => {
                if changed > 0 {
                    tracing::info!(
                        changed,
                        frontends = desired.len(),
                        "service proxy synced in {:.1} ms",
                        stats.last_sync_seconds * 1e3
                    );
                }
            }
            Err(e) => {
                stats.failures += 1;
                tracing::error!("programming the service proxy: {e:#}");
            }
        }
        let listing = datapath.listing();
        stats.frontends = listing.len();
        stats.backends = listing.iter().map(|(f, _)| f.backends.len()).sum();
        stats.listing = listing
            .iter()
            .map(|(f, index)| {
                let (service, ip, port, kind) = (&f.service, f.address, f.port, f.kind());
                let scope = if f.scope == super::maps::SCOPE_EXT {
                    " (externalTrafficPolicy: Local)"
                } else {
                    ""
                };
                let proto = if f.proto == super::maps::IPPROTO_UDP {
                    "UDP"
                } else {
                    "TCP"
                };
                let backends: Vec<String> = f
                    .backends
                    .iter()
                    .map(|(ip, port)| format!("{ip}:{port}"))
                    .collect();
                let line = format!(
                    "{ip}:{port}/{proto} {kind} {service}{scope} -> {}",
                    if backends.is_empty() {
                        "(no endpoints: refused)".to_string()
                    } else {
                        backends.join(" ")
                    }
                );
                (line, *index)
            })
            .collect();
    }
}

/// `/metrics`, `/services` (with each frontend's counters, read when asked) and `/healthz`
/// (axum).
async fn serve(
    listener: tokio::net::TcpListener,
    stats: Arc<Mutex<Stats>>,
    counters: Option<super::datapath::Counters>,
) {
    use axum::routing::get;
    let metrics = {
        let stats = stats.clone();
        move || async move {
            let s = stats.lock().expect("not poisoned");
            format!(
                "# HELP skiff_proxy_sync_duration_seconds How long the last sync of the datapath took.\n\
                 # TYPE skiff_proxy_sync_duration_seconds gauge\n\
                 skiff_proxy_sync_duration_seconds {}\n\
                 # HELP skiff_proxy_syncs_total Syncs of the datapath.\n\
                 # TYPE skiff_proxy_syncs_total counter\n\
                 skiff_proxy_syncs_total {}\n\
                 # HELP skiff_proxy_sync_failures_total Syncs that failed (e.g. a full map).\n\
                 # TYPE skiff_proxy_sync_failures_total counter\n\
                 skiff_proxy_sync_failures_total {}\n\
                 # HELP skiff_proxy_frontends Service frontends in the datapath.\n\
                 # TYPE skiff_proxy_frontends gauge\n\
                 skiff_proxy_frontends {}\n\
                 # HELP skiff_proxy_backends Backend slots in the datapath.\n\
                 # TYPE skiff_proxy_backends gauge\n\
                 skiff_proxy_backends {}\n",
                s.last_sync_seconds, s.syncs, s.failures, s.frontends, s.backends
            )
        }
    };
    let counters = Arc::new(counters);
    let listing = move || async move {
        let s = stats.lock().expect("not poisoned");
        let mut out = String::new();
        for (line, index) in &s.listing {
            let c = counters
                .as_ref()
                .as_ref()
                .map(|c| c.get(*index))
                .unwrap_or_default();
            out.push_str(&format!(
                "{line}  [connects {}, refused {}, flows {}, dropped {}]\n",
                c.connects, c.refused, c.flows, c.dropped
            ));
        }
        out + &s.announced
    };
    let app = axum::Router::new()
        .route("/metrics", get(metrics))
        .route("/services", get(listing))
        .route("/healthz", get(|| async { "ok\n" }));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("the proxy's metrics server stopped: {e}");
    }
}
