//! `skiff store`: flags in etcd's style and the daemon that serves the etcd v3 API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tonic::transport::server::TcpIncoming;

use futures::TryStreamExt;

use crate::authority::AuthorityFix;
use crate::grpc::{ApiConfig, EtcdApi};
use crate::mvcc::Limits;
use crate::store::{Store, StoreConfig};

#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// Human-readable name of this member.
    #[arg(long, default_value = "default", env = "ETCD_NAME")]
    pub name: String,
    /// Where the store keeps its WAL and snapshots.
    #[arg(long, default_value = "/var/lib/skiff/store", env = "ETCD_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Comma-separated URLs to serve clients on (http://host:port).
    #[arg(
        long,
        default_value = "http://127.0.0.1:2379",
        env = "ETCD_LISTEN_CLIENT_URLS"
    )]
    pub listen_client_urls: String,
    /// Comma-separated client URLs to advertise (MemberList); defaults to the listen URLs.
    #[arg(long, env = "ETCD_ADVERTISE_CLIENT_URLS")]
    pub advertise_client_urls: Option<String>,
    /// Peer URLs reported by MemberList (the store has no peers; kept for etcd tooling).
    #[arg(long, default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,
    /// Refuse writes (ResourceExhausted) once retained data exceeds this many bytes.
    #[arg(long, default_value_t = 2 * 1024 * 1024 * 1024)]
    pub quota_backend_bytes: u64,
    /// Largest request accepted (InvalidArgument above it).
    #[arg(long, default_value_t = 1536 * 1024)]
    pub max_request_bytes: usize,
    /// Most operations in one branch of a transaction.
    #[arg(long, default_value_t = 128)]
    pub max_txn_ops: usize,
    /// Seconds between progress notifications to idle watchers that asked for them.
    #[arg(long = "experimental-watch-progress-notify-interval", default_value = "600s", value_parser = parse_duration)]
    pub progress_notify_interval: Duration,
    /// Automatic compaction: keep this much history ("1h", "30m"; 0 disables), like etcd's
    /// periodic --auto-compaction-retention.
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub auto_compaction_retention: Duration,
    /// Write a checkpoint once the WAL exceeds this many bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub snapshot_wal_bytes: u64,
}

impl StoreArgs {
    /// The defaults of `skiff store` with another data dir and listen URL (for `skiff server`).
    pub fn for_embedded(data_dir: PathBuf, listen_client_urls: &str) -> StoreArgs {
        StoreArgs {
            name: "default".into(),
            data_dir,
            listen_client_urls: listen_client_urls.to_string(),
            advertise_client_urls: None,
            initial_advertise_peer_urls: "http://localhost:2380".into(),
            quota_backend_bytes: 2 * 1024 * 1024 * 1024,
            max_request_bytes: 1536 * 1024,
            max_txn_ops: 128,
            progress_notify_interval: Duration::from_secs(600),
            // History beyond an hour is compacted, as kube-apiserver asks etcd to every 5 min.
            auto_compaction_retention: Duration::from_secs(3600),
            snapshot_wal_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Parses "10s", "5m", "1h", "250ms" or a bare number of hours (etcd's retention style).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    Ok(match unit {
        "" | "h" => Duration::from_secs(n * 3600),
        "m" => Duration::from_secs(n * 60),
        "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m or h)"
            ))
        }
    })
}

/// Where the store serves: a TCP address (`http://IP:PORT`) or a Unix socket (`unix://PATH`,
/// etcd's form; `unix:///run/x.sock` is absolute). Over the socket the embedded store's API
/// server skips the TCP stack (see `skiff server --store-listen-url`).
#[derive(Debug, Clone, PartialEq)]
enum ListenUrl {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

fn parse_listen_url(url: &str) -> anyhow::Result<ListenUrl> {
    if let Some(path) = url.strip_prefix("unix://") {
        if path.is_empty() {
            bail!("{url}: expected unix://PATH");
        }
        return Ok(ListenUrl::Unix(PathBuf::from(path)));
    }
    let Some(rest) = url.strip_prefix("http://") else {
        if url.starts_with("https://") {
            bail!("{url}: TLS client URLs are not supported by skiff store yet; listen on http:// (loopback or a private network) or unix://");
        }
        bail!("{url}: expected a client URL like http://127.0.0.1:2379 or unix:///run/skiff/store.sock");
    };
    let rest = rest.trim_end_matches('/');
    let rest = if let Some(port) = rest.strip_prefix("localhost:") {
        format!("127.0.0.1:{port}")
    } else {
        rest.to_string()
    };
    rest.parse()
        .map(ListenUrl::Tcp)
        .with_context(|| format!("{url}: expected http://IP:PORT"))
}

/// A listener of either kind.
enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, PathBuf),
}

impl Listener {
    async fn bind(url: &ListenUrl) -> anyhow::Result<Listener> {
        match url {
            ListenUrl::Tcp(addr) => Ok(Listener::Tcp(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening on {addr}"))?,
            )),
            ListenUrl::Unix(path) => {
                // A socket left by a store that was killed is replaced; any other file is not.
                if let Ok(meta) = std::fs::symlink_metadata(path) {
                    use std::os::unix::fs::FileTypeExt;
                    if !meta.file_type().is_socket() {
                        bail!("{}: exists and is not a socket", path.display());
                    }
                    std::fs::remove_file(path)
                        .with_context(|| format!("removing the stale socket {}", path.display()))?;
                }
                let listener = tokio::net::UnixListener::bind(path)
                    .with_context(|| format!("listening on {}", path.display()))?;
                // Like the data dir: the store has no authentication, so only root may connect.
                std::fs::set_permissions(
                    path,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )?;
                Ok(Listener::Unix(listener, path.clone()))
            }
        }
    }

    fn url(&self) -> String {
        match self {
            Listener::Tcp(l) => format!("http://{}", l.local_addr().expect("bound")),
            Listener::Unix(_, path) => format!("unix://{}", path.display()),
        }
    }
}

fn split_urls(s: &str) -> Vec<String> {
    s.split(',')
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect()
}

/// Runs the store until SIGINT/SIGTERM.
pub async fn run(args: StoreArgs) -> anyhow::Result<()> {
    run_until(args, async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    })
    .await
}

/// Runs the store until `shutdown` completes (`skiff server` embeds it so and stops it last,
/// after the components that still write through it on their way out).
pub async fn run_until(
    args: StoreArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listen = split_urls(&args.listen_client_urls);
    let addrs: Vec<ListenUrl> = listen
        .iter()
        .map(|u| parse_listen_url(u))
        .collect::<Result<_, _>>()?;
    if addrs.is_empty() {
        bail!("--listen-client-urls is empty");
    }
    let store = Store::open(
        &args.data_dir,
        StoreConfig {
            limits: Limits {
                max_txn_ops: args.max_txn_ops,
                quota_bytes: args.quota_backend_bytes,
            },
            checkpoint_wal_bytes: args.snapshot_wal_bytes,
        },
    )
    .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
    let mut listeners = Vec::new();
    for addr in &addrs {
        listeners.push(Listener::bind(addr).await?);
    }
    let bound: Vec<String> = listeners.iter().map(Listener::url).collect();
    let advertise = args
        .advertise_client_urls
        .as_deref()
        .map(split_urls)
        .unwrap_or_else(|| bound.clone());
    let api = EtcdApi::new(
        store.clone(),
        ApiConfig {
            name: args.name.clone(),
            client_urls: advertise,
            peer_urls: split_urls(&args.initial_advertise_peer_urls),
            max_request_bytes: args.max_request_bytes,
            progress_notify_interval: args.progress_notify_interval,
        },
    );
    tokio::spawn(expire_leases(store.clone()));
    if !args.auto_compaction_retention.is_zero() {
        tokio::spawn(auto_compact(store.clone(), args.auto_compaction_retention));
    }

    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let mut servers = tokio::task::JoinSet::new();
    let mut sockets = Vec::new();
    for listener in listeners {
        let server = tonic::transport::Server::builder()
            .layer(tower::util::MapResponseLayer::new(
                oversized_is_resource_exhausted,
            ))
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .add_routes(api.routes());
        let stop = shutdown.clone();
        match listener {
            Listener::Tcp(listener) => servers.spawn(
                server.serve_with_incoming_shutdown(
                    TcpIncoming::from(listener)
                        .with_nodelay(Some(true))
                        .map_ok(AuthorityFix::new),
                    stop,
                ),
            ),
            Listener::Unix(listener, path) => {
                sockets.push(path);
                servers.spawn(
                    server.serve_with_incoming_shutdown(
                        tokio_stream::wrappers::UnixListenerStream::new(listener)
                            .map_ok(AuthorityFix::new),
                        stop,
                    ),
                )
            }
        };
    }
    println!(
        "skiff store ready: name={} data-dir={} revision={} client-urls={}",
        args.name,
        args.data_dir.display(),
        store.visible_revision(),
        bound.join(",")
    );
    let mut failed = store.subscribe();
    tokio::select! {
        _ = shutdown.clone() => tracing::info!("shutting down"),
        _ = failed.wait_for(|d| d.failed) => bail!("the WAL could not be written; stopping (see the error above)"),
        Some(res) = servers.join_next() => {
            res.context("server task")?.context("gRPC server")?;
        }
    }
    store.shutdown();
    for path in sockets {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// grpc-go (and so etcd) rejects a request above the receive limit with ResourceExhausted;
/// tonic uses OutOfRange, which etcd clients read as "revision compacted/future". Report the
/// code etcd clients expect.
fn oversized_is_resource_exhausted<B>(
    mut resp: tonic::codegen::http::Response<B>,
) -> tonic::codegen::http::Response<B> {
    let headers = resp.headers_mut();
    let oversized = headers.get("grpc-status").is_some_and(|v| v == "11")
        && headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| {
                m.contains("decoded%20message%20length%20too%20large")
                    || m.contains("decoded message length too large")
            });
    if oversized {
        headers.insert(
            "grpc-status",
            tonic::codegen::http::HeaderValue::from_static("8"),
        );
    }
    resp
}

async fn expire_leases(store: Arc<Store>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        store.expire_leases().await;
    }
}

/// etcd's periodic auto-compaction: every retention/10 (at least 1s), compact to the revision
/// the store had one retention period ago.
async fn auto_compact(store: Arc<Store>, retention: Duration) {
    let step = (retention / 10).max(Duration::from_secs(1));
    let mut history: std::collections::VecDeque<(tokio::time::Instant, i64)> = Default::default();
    let mut tick = tokio::time::interval(step);
    loop {
        tick.tick().await;
        let now = tokio::time::Instant::now();
        history.push_back((now, store.visible_revision()));
        let mut target = None;
        while let Some((at, rev)) = history.front().copied() {
            if now.duration_since(at) < retention {
                break;
            }
            target = Some(rev);
            history.pop_front();
        }
        if let Some(rev) = target {
            if rev > store.compact_revision() {
                match store.compact(rev).await {
                    Ok(_) => tracing::info!(revision = rev, "auto-compacted"),
                    Err(e) => {
                        tracing::debug!(revision = rev, error = %e, "auto-compaction skipped")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_urls() {
        assert_eq!(
            parse_listen_url("http://127.0.0.1:2379").unwrap(),
            ListenUrl::Tcp("127.0.0.1:2379".parse().unwrap())
        );
        assert_eq!(
            parse_listen_url("http://localhost:2379/").unwrap(),
            ListenUrl::Tcp("127.0.0.1:2379".parse().unwrap())
        );
        assert_eq!(
            parse_listen_url("unix:///run/skiff/store.sock").unwrap(),
            ListenUrl::Unix("/run/skiff/store.sock".into())
        );
        // etcd's own form: a socket named after host:port in the working directory.
        assert_eq!(
            parse_listen_url("unix://localhost:2379").unwrap(),
            ListenUrl::Unix("localhost:2379".into())
        );
        for bad in [
            "unix://",
            "https://127.0.0.1:2379",
            "127.0.0.1:2379",
            "http://x:y",
        ] {
            assert!(parse_listen_url(bad).is_err(), "{bad}");
        }
    }
}
