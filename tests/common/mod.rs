//! Helpers shared by the integration tests: start `skiff store` as a real process on a free
//! loopback port, and stop it by its own pid (SIGKILL or SIGTERM) — never by pattern.

#![allow(dead_code)]

pub mod cluster;
pub mod hollow;
pub mod lab;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Polls `f` every 100 ms until it holds; fails the test after 30 s.
pub fn wait_until(what: &str, f: impl FnMut() -> bool) {
    wait_until_for(what, Duration::from_secs(30), f)
}

/// `wait_until` with its own deadline (for what upstream's timers make slow, e.g. a node
/// declared lost after its 50 s grace period).
pub fn wait_until_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

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

    /// Also serving on the Unix socket `socket` (`unix://` URL).
    pub fn start_with_socket(data_dir: &Path, socket: &Path) -> StoreProcess {
        Self::start_listening(data_dir, free_port(), &[], Some(socket))
    }

    pub fn start_with(data_dir: &Path, port: u16, extra: &[&str]) -> StoreProcess {
        Self::start_listening(data_dir, port, extra, None)
    }

    fn start_listening(
        data_dir: &Path,
        port: u16,
        extra: &[&str],
        socket: Option<&Path>,
    ) -> StoreProcess {
        let endpoint = format!("http://127.0.0.1:{port}");
        let mut urls = endpoint.clone();
        if let Some(socket) = socket {
            urls.push_str(&format!(",unix://{}", socket.display()));
        }
        let mut child = Command::new(skiff_bin())
            .args(["store", "--data-dir"])
            .arg(data_dir)
            .args(["--listen-client-urls", &urls])
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

/// Runs `cmd` with `input` on its stdin; its output.
pub fn run_with_stdin(mut cmd: Command, input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Spawns `cmd` with stdout piped and waits until it prints a line starting with `ready`.
pub fn spawn_until_ready(mut cmd: Command, ready: &'static str, what: &str) -> Child {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with(ready) {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        let status = child.wait().unwrap();
        panic!("{what} did not become ready ({status})");
    }
    child
}

/// A running control plane (`skiff server`, or `skiff apiserver` on an external etcd) in its
/// own temporary directory, with kubectl wired to it. Killed by pid when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub kubeconfig: PathBuf,
}

impl ServerProcess {
    /// `skiff server` with its embedded store.
    pub fn start() -> ServerProcess {
        ServerProcess::start_with(&[])
    }

    /// `skiff server` with its embedded store and extra flags.
    pub fn start_with(extra: &[&str]) -> ServerProcess {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new(skiff_bin());
        cmd.arg("server")
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
                &format!("http://127.0.0.1:{}", free_port()),
            ])
            .args(extra)
            .env("RUST_LOG", "warn");
        // The controller manager's default port (10257) would collide between tests running
        // side by side: none unless the test asks for one.
        if !extra
            .iter()
            .any(|a| a.starts_with("--controllers-secure-port"))
        {
            cmd.arg("--controllers-secure-port=0");
        }
        let child = spawn_until_ready(cmd, "skiff server ready", "skiff server");
        let kubeconfig = dir.path().join("admin.kubeconfig");
        ServerProcess {
            child,
            dir,
            port,
            kubeconfig,
        }
    }

    /// `skiff apiserver` alone on `etcd` (skiff's store or real etcd). `pki_from` shares another
    /// server's CA and tokens (two API servers of one cluster).
    pub fn start_apiserver(etcd: &str, pki_from: Option<&Path>) -> ServerProcess {
        ServerProcess::start_apiserver_with(etcd, pki_from, &[])
    }

    /// `skiff apiserver` alone with extra flags.
    pub fn start_apiserver_with(
        etcd: &str,
        pki_from: Option<&Path>,
        extra: &[&str],
    ) -> ServerProcess {
        let dir = tempfile::tempdir().unwrap();
        if let Some(src) = pki_from {
            std::fs::create_dir_all(dir.path().join("tls")).unwrap();
            for f in [
                "ca.crt",
                "ca.key",
                "apiserver.crt",
                "apiserver.key",
                "sa.key",
                "sa.pub",
                "front-proxy-ca.crt",
                "front-proxy-ca.key",
                "front-proxy-client.crt",
                "front-proxy-client.key",
            ] {
                std::fs::copy(src.join("tls").join(f), dir.path().join("tls").join(f)).unwrap();
            }
            std::fs::copy(src.join("tokens.csv"), dir.path().join("tokens.csv")).unwrap();
        }
        let port = free_port();
        let mut cmd = Command::new(skiff_bin());
        cmd.arg("apiserver")
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                &port.to_string(),
                "--etcd-servers",
                etcd,
            ])
            .args(extra)
            .env("RUST_LOG", "warn");
        let child = spawn_until_ready(cmd, "skiff apiserver ready", "skiff apiserver");
        let kubeconfig = dir.path().join("admin.kubeconfig");
        ServerProcess {
            child,
            dir,
            port,
            kubeconfig,
        }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn token(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("tokens.csv")).unwrap();
        text.lines()
            .find(|l| l.contains(",admin,"))
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .to_string()
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("tls/ca.crt")
    }

    /// kubectl with its own HOME (the dispatcher caches /version there) and discovery cache.
    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = Command::new("kubectl");
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &home)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .args(args);
        cmd
    }

    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        self.kubectl_cmd(args).output().expect("run kubectl")
    }

    /// Runs kubectl, asserts success, returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    /// kubectl with `input` on stdin (`-f -`).
    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> std::process::Output {
        run_with_stdin(self.kubectl_cmd(args), input)
    }

    /// curl against the API server with the admin token and the cluster CA.
    pub fn curl(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
        use std::io::Write;
        let mut child = Command::new("curl")
            .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method])
            .arg("--cacert")
            .arg(self.ca())
            .args(["-H", &format!("Authorization: Bearer {}", self.token())])
            .args(["-H", &format!("Content-Type: {content_type}")])
            .args(["--data-binary", "@-"])
            .arg(format!("{}{path}", self.url()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(body).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.trim().parse().unwrap(), body.to_string())
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Real etcd 3.4 (Debian etcd-server) on free loopback ports in a temporary directory.
pub struct EtcdProcess {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub endpoint: String,
}

impl EtcdProcess {
    pub fn start() -> EtcdProcess {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("etcd");
        EtcdProcess::start_on(dir, &data, free_port())
    }

    /// Real etcd on `data`, which may hold a member made beforehand (`etcdctl snapshot restore
    /// --name default --initial-cluster default=http://127.0.0.1:PEER`).
    pub fn start_on(dir: tempfile::TempDir, data: &Path, peer: u16) -> EtcdProcess {
        let client = free_port();
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("/usr/bin/etcd")
            .arg("--data-dir")
            .arg(data)
            .args([
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn /usr/bin/etcd (Debian etcd-server)");
        let etcd = EtcdProcess {
            child,
            dir,
            endpoint,
        };
        for _ in 0..100 {
            let ok = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &etcd.endpoint, "endpoint", "health"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return etcd;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("etcd did not become healthy");
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
