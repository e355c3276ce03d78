//! Helpers shared by the integration tests: start `skiff store` as a real process on a free
//! loopback port, and stop it by its own pid (SIGKILL or SIGTERM) — never by pattern.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub fn skiff_bin() -> &'static str {
    env!("CARGO_BIN_EXE_skiff")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `skiff store`; killed when dropped.
pub struct StoreProcess {
    pub child: Child,
    pub endpoint: String,
    pub data_dir: PathBuf,
    pub port: u16,
}

impl StoreProcess {
    pub fn start(data_dir: &Path) -> StoreProcess {
        Self::start_with(data_dir, free_port(), &[])
    }

    pub fn start_with(data_dir: &Path, port: u16, extra: &[&str]) -> StoreProcess {
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut child = Command::new(skiff_bin())
            .args(["store", "--data-dir"])
            .arg(data_dir)
            .args(["--listen-client-urls", &endpoint])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn skiff store");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("skiff store ready") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            let _ = child.kill();
            let status = child.wait().unwrap();
            panic!("skiff store did not become ready ({status})");
        }
        StoreProcess {
            child,
            endpoint,
            data_dir: data_dir.to_path_buf(),
            port,
        }
    }

    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([&self.endpoint], None)
            .await
            .expect("connect to skiff store")
    }

    /// kill -9, as a crash.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Restarts on the same data dir and port.
    pub fn restart_after_kill9(self) -> StoreProcess {
        let (dir, port) = (self.data_dir.clone(), self.port);
        self.kill9();
        StoreProcess::start_with(&dir, port, &[])
    }
}

impl Drop for StoreProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn grpc_code(err: &etcd_client::Error) -> tonic::Code {
    match err {
        etcd_client::Error::GRpcStatus(s) => s.code(),
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

/// `skiff store restore SNAPSHOT --data-dir DIR`.
pub fn restore(snapshot: &Path, data_dir: &Path) -> std::process::Output {
    Command::new(skiff_bin())
        .args(["store", "restore"])
        .arg(snapshot)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

/// Starts `skiff store` on `data_dir` expecting it to refuse to start; returns its stderr.
pub fn start_refused(data_dir: &Path) -> String {
    let out = Command::new(skiff_bin())
        .args(["store", "--data-dir"])
        .arg(data_dir)
        .args([
            "--listen-client-urls",
            &format!("http://127.0.0.1:{}", free_port()),
        ])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "skiff store started but should have refused"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}
