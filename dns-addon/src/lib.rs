//! The cluster DNS addon (CoreDNS's role in a Kubernetes cluster): answers `cluster.local`
//! from the API and forwards every other name to upstream resolvers.
//!
//! - [`args`]: the `skiff dns` flags.
//! - [`snapshot`]: the records, built from trimmed objects by one pure function.
//! - [`watch`]: kube-runtime watchers feeding the snapshot, swapped atomically.
//! - [`handler`]: the hickory-server request handler: answers, flags, EDNS, metrics.
//! - [`forward`]: upstreams, stub domains, the cache, loop protection.
//! - [`metrics`], [`http`]: CoreDNS's metric names; `/health`, `/ready`, `/metrics`.

pub mod args;
pub mod forward;
pub mod handler;
pub mod http;
pub mod metrics;
pub mod snapshot;
pub mod watch;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use hickory_proto::rr::Name;
use hickory_server::Server;
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use args::DnsArgs;

/// Idle TCP connections are closed after this long.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);

async fn client_from_kubeconfig(path: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// The zone name from `--cluster-domain`: absolute and lowercase.
pub fn zone_name(domain: &str) -> anyhow::Result<Name> {
    let domain = domain.trim().trim_end_matches('.');
    anyhow::ensure!(!domain.is_empty(), "--cluster-domain is empty");
    Name::from_ascii(format!("{domain}."))
        .map(|n| n.to_lowercase())
        .map_err(|e| anyhow::anyhow!("--cluster-domain {domain:?} is not a domain name: {e}"))
}

/// The upstreams: `--upstream`, else resolv.conf's non-loopback nameservers.
fn upstreams(args: &DnsArgs) -> Vec<SocketAddr> {
    if !args.upstream.is_empty() {
        return args.upstream.clone();
    }
    let text = std::fs::read_to_string(&args.resolv_conf).unwrap_or_else(|error| {
        tracing::warn!(path = %args.resolv_conf.display(), %error, "cannot read resolv.conf");
        String::new()
    });
    let (keep, skipped) = forward::resolv_conf_upstreams(&text);
    if !skipped.is_empty() {
        tracing::warn!(
            path = %args.resolv_conf.display(),
            ?skipped,
            "skipping loopback nameservers (they would loop back to the node's resolver)"
        );
    }
    if keep.is_empty() {
        tracing::warn!(
            "no upstream resolvers: names outside the cluster answer SERVFAIL (give --upstream)"
        );
    }
    keep
}

/// The receive buffer asked for on UDP sockets (the kernel caps it at net.core.rmem_max).
const UDP_RECEIVE_BUFFER: usize = 4 << 20;

/// A UDP socket with a large receive buffer: the default (~208 KiB, ~170 small datagrams)
/// overflows under a burst such as many pods walking their ndots:5 search list at once, and
/// the kernel then drops queries (RcvbufErrors) before the server sees them.
fn udp_socket(addr: SocketAddr) -> anyhow::Result<tokio::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if let Err(error) = socket.set_recv_buffer_size(UDP_RECEIVE_BUFFER) {
        tracing::debug!(%error, "keeping the default UDP receive buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(tokio::net::UdpSocket::from_std(socket.into())?)
}

/// A DNS server for `handler` on UDP and TCP at each address (the tests use it without an API
/// server).
pub async fn bind(
    listen: &[SocketAddr],
    handler: handler::Handler,
) -> anyhow::Result<Server<handler::Handler>> {
    let mut server = Server::new(handler);
    for addr in listen {
        let udp = udp_socket(*addr).with_context(|| format!("binding UDP {addr}"))?;
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding TCP {addr}"))?;
        server.register_socket(udp);
        server.register_listener(tcp, TCP_TIMEOUT, 64);
    }
    Ok(server)
}

/// SIGTERM or ctrl-c.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Runs the DNS server until SIGTERM/ctrl-c or a fatal error. Prints `skiff dns listening …`
/// once the sockets are bound and `skiff dns ready` after the first sync with the API.
pub async fn run(args: DnsArgs) -> anyhow::Result<()> {
    let zone = zone_name(&args.cluster_domain)?;
    let config = snapshot::ZoneConfig {
        zone: zone.clone(),
        ttl: args.ttl,
    };
    let forwarder = Arc::new(forward::Forwarder::new(
        &upstreams(&args),
        &args.stub_domain,
        &args.listen,
        args.cache_size,
    )?);
    let server_label = args
        .listen
        .first()
        .map(|a| {
            if a.ip().is_unspecified() {
                format!("dns://:{}", a.port())
            } else {
                format!("dns://{a}")
            }
        })
        .unwrap_or_default();
    let metrics = Arc::new(metrics::Metrics::new(server_label));
    let snapshot = Arc::new(ArcSwap::from_pointee(snapshot::Snapshot::unsynced(&config)));
    let ready = Arc::new(AtomicBool::new(false));

    let client = client_from_kubeconfig(&args.kubeconfig).await?;

    let handler = handler::Handler {
        snapshot: snapshot.clone(),
        forwarder: forwarder.clone(),
        metrics: metrics.clone(),
    };
    let mut server = bind(&args.listen, handler).await?;
    http::serve(
        args.health_listen,
        args.ready_listen,
        args.metrics_listen,
        ready.clone(),
        metrics.clone(),
    )
    .await?;
    let listen: Vec<String> = args.listen.iter().map(|a| a.to_string()).collect();
    println!(
        "skiff dns listening on {} (zone {zone}, upstreams: {})",
        listen.join(", "),
        forwarder.describe()
    );

    {
        let forwarder = forwarder.clone();
        tokio::spawn(async move { forwarder.probe_for_loops().await });
    }

    let watch = watch::run(client, config, snapshot, move |snap| {
        ready.store(true, Ordering::Release);
        println!(
            "skiff dns ready ({} names, serial {})",
            snap.len(),
            snap.serial()
        );
        tracing::info!(names = snap.len(), "synced with the API");
    });
    tokio::select! {
        r = watch => r.context("watching the API"),
        r = server.block_until_done() => r.context("DNS server stopped"),
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    }
}
