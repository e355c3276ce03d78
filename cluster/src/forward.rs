//! `skiff forward`: the loopback forward from the machine's own namespace to a node's (the
//! only thing `skiff up` puts in the machine's namespace, per DESIGN.md's safety rule).
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
    /// The address to connect to from there.
    #[arg(long)]
    pub to: SocketAddr,
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
        loop {
            let (mut inbound, _) = listener.accept().await?;
            let to = args.to;
            tokio::spawn(async move {
                match tokio::net::TcpStream::connect(to).await {
                    Ok(mut outbound) => {
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                    Err(e) => tracing::warn!("forward to {to}: {e}"),
                }
            });
        }
    })
}
