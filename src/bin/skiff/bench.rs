//! What the benchmark commands share: a `skiff server` child process of their own, percentiles,
//! and a process's CPU time and memory from /proc.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;

pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

pub fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN),
    )
}

pub fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat.
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub struct ServerChild(pub std::process::Child);

impl Drop for ServerChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl ServerChild {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

/// Starts `skiff server` (this binary) with `extra` flags in a temporary directory and waits
/// until it is ready; the server stops when the returned child is dropped.
pub async fn start_server(extra: &[&str]) -> anyhow::Result<(tempfile::TempDir, ServerChild)> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .arg("server")
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &port.to_string(),
        ])
        .args([
            "--store-listen-url",
            &format!("http://127.0.0.1:{}", free_port()?),
        ])
        // Not the controller manager's fixed port: benches may run beside other servers.
        .arg("--controllers-secure-port=0")
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting skiff server")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let server = ServerChild(child);
    let ready = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.starts_with("skiff server ready"))
    });
    anyhow::ensure!(
        tokio::time::timeout(Duration::from_secs(60), ready).await??,
        "skiff server did not start"
    );
    Ok((dir, server))
}
