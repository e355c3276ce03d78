//! `skiff forward`: the loopback forwards from the machine's own namespace into the cluster's
//! (the only things `skiff up` puts in the machine's namespace, per DESIGN.md's safety rule):
//! the API server's, and one per `--publish HOSTPORT:NODEPORT`, which connects from the
//! `<name>-host` namespace to the NodePort on every node in turn.
//!
//! The listener is bound in the namespace the process starts in; then the process enters the
//! node's network namespace, so every connection it makes from then on starts there. One
//! process, no routes, nothing that could reach beyond the machine.

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::Context;

#[derive(Debug, Clone, clap::Args)]
pub struct ForwardArgs {
    /// Where to listen, in the namespace this starts in (e.g. 127.0.0.1:6443).
    #[arg(long)]
    pub listen: SocketAddr,
    /// The network namespace to connect from (e.g. /run/netns/skiff-control-plane).
    #[arg(long)]
    pub netns: PathBuf,
    /// The address to connect to from there; given several (a NodePort on every node), each
    /// connection goes to the next in turn, and to the one after it if that refuses or does not
    /// answer within a second (a node that is down).
    #[arg(long, required = true)]
    pub to: Vec<SocketAddr>,
}

/// How long one target may take to accept before the next is tried.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// The first of `targets`, starting at `first` and wrapping around, that accepts.
async fn connect(targets: &[SocketAddr], first: usize) -> Option<tokio::net::TcpStream> {
    for i in 0..targets.len() {
        let to = targets[(first + i) % targets.len()];
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(to)).await {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(e)) => tracing::warn!("forward to {to}: {e}"),
            Err(_) => tracing::warn!("forward to {to}: no answer within {CONNECT_TIMEOUT:?}"),
        }
    }
    None
}

/// Runs the forward; never returns unless the listener fails. Must be called before any
/// thread is started (`setns` changes the calling thread only; threads made afterwards
/// inherit it).
pub fn main(args: ForwardArgs) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("listening on {}", args.listen))?;
    let netns = std::fs::File::open(&args.netns)
        .with_context(|| format!("opening {}", args.netns.display()))?;
    nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .context("entering the node's network namespace")?;
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let targets = std::sync::Arc::new(args.to);
        let mut next = 0usize;
        loop {
            let (mut inbound, _) = listener.accept().await?;
            let targets = targets.clone();
            let first = next;
            next = next.wrapping_add(1);
            tokio::spawn(async move {
                if let Some(mut outbound) = connect(&targets, first).await {
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    })
}
