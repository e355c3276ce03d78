//! The two servers a benchmark compares: real etcd and `skiff store`, each a child process on
//! free loopback ports with its own data dir, killed by its own pid when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use etcd_client::Client;

/// A server process owned by the benchmark, killed (by its own pid) when dropped.
pub struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub async fn connect_when_ready(endpoint: &str, server: &mut Server) -> anyhow::Result<Client> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.child.try_wait()? {
            bail!("{endpoint}: server exited during start-up ({status})");
        }
        if let Ok(mut c) = Client::connect([endpoint], None).await {
            if c.status().await.is_ok() {
                return Ok(c);
            }
        }
        if Instant::now() > deadline {
            bail!("{endpoint}: not ready after 30s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn start_etcd(bin: &Path, dir: &Path) -> anyhow::Result<(Server, String)> {
    let (client, peer) = (free_port()?, free_port()?);
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let child = Command::new(bin)
        .args(["--name", "bench", "--data-dir"])
        .arg(dir)
        .args(["--listen-client-urls", &client_url])
        .args(["--advertise-client-urls", &client_url])
        .args(["--listen-peer-urls", &peer_url])
        .args(["--initial-advertise-peer-urls", &peer_url])
        .args(["--initial-cluster", &format!("bench={peer_url}")])
        .args(["--log-level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} (apt-get install etcd-server)", bin.display()))?;
    Ok((Server { child }, client_url))
}

pub fn start_skiff(dir: &Path) -> anyhow::Result<(Server, String)> {
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let child = Command::new(std::env::current_exe()?)
        .args(["store", "--data-dir"])
        .arg(dir)
        .args(["--listen-client-urls", &url])
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting skiff store")?;
    Ok((Server { child }, url))
}
