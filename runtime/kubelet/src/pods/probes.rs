//! Probes and lifecycle hooks (upstream's `prober` and `lifecycle` packages): exec in the
//! container, HTTP GET and TCP connect to the pod's IP from the node (which routes to its
//! pods), each bounded by its timeout.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::runtime::Runtime;

/// Which probe; also the index into a slot's probe counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Liveness = 0,
    Readiness = 1,
    Startup = 2,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Liveness, Kind::Readiness, Kind::Startup];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }

    pub fn of(self, c: &Container) -> Option<Probe> {
        match self {
            Kind::Liveness => c.liveness_probe.clone(),
            Kind::Readiness => c.readiness_probe.clone(),
            Kind::Startup => c.startup_probe.clone(),
        }
    }
}

/// A probe's timing with upstream's defaults.
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

pub fn timing(p: &Probe) -> Timing {
    let secs =
        |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default).max(0) as u64);
    Timing {
        initial_delay: secs(p.initial_delay_seconds, 0),
        period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
        timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
        success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
        failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
    }
}

/// Ok(()) on success, Err(why) on failure — the text upstream puts after "probe failed: ".
pub async fn run(
    probe: &Probe,
    container: &Container,
    container_id: &str,
    pod_ip: &str,
    runtime: &Runtime,
) -> Result<(), String> {
    let timeout = timing(probe).timeout;
    if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        return exec_in(runtime, container_id, &command, timeout).await;
    }
    if let Some(http) = &probe.http_get {
        return http_get(http, container, pod_ip, timeout).await;
    }
    if let Some(tcp) = &probe.tcp_socket {
        let host = tcp
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_string());
        let port = resolve_port(&tcp.port, container)?;
        return match tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port))).await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: connect: {e}")),
            Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
        };
    }
    if let Some(grpc) = &probe.grpc {
        let service = grpc.service.clone().unwrap_or_default();
        return super::grpc_health::check(pod_ip, grpc.port as u16, &service, timeout).await;
    }
    Err("no probe handler specified".into())
}

/// A lifecycle hook (postStart, preStop).
pub async fn hook(
    handler: &LifecycleHandler,
    container: &Container,
    container_id: &str,
    pod_ip: &str,
    runtime: &Runtime,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        return exec_in(runtime, container_id, &command, timeout).await;
    }
    if let Some(http) = &handler.http_get {
        return http_get(http, container, pod_ip, timeout).await;
    }
    if let Some(sleep) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64).min(timeout)).await;
        return Ok(());
    }
    Ok(())
}

async fn exec_in(
    runtime: &Runtime,
    id: &str,
    command: &[String],
    timeout: Duration,
) -> Result<(), String> {
    match runtime.exec(id, command, timeout).await {
        Ok(out) if out.exit_code == 0 => Ok(()),
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.output).trim().to_string();
            if text.is_empty() {
                Err(format!("command {command:?} exited with {}", out.exit_code))
            } else {
                Err(text)
            }
        }
        Err(crate::runtime::RuntimeError::Timeout(_)) => {
            Err(format!("command {command:?} timed out"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// A named port resolves through the container's ports, as upstream.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) if (1..=65535).contains(p) => Ok(*p as u16),
        IntOrString::Int(p) => Err(format!("invalid port number: {p}")),
        IntOrString::String(name) => {
            if let Ok(p) = name.parse::<u16>() {
                return Ok(p);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .map(|p| p.container_port as u16)
                .ok_or_else(|| {
                    format!(
                        "couldn't find port {name:?} in container {:?}",
                        container.name
                    )
                })
        }
    }
}

async fn http_get(
    http: &HTTPGetAction,
    container: &Container,
    pod_ip: &str,
    timeout: Duration,
) -> Result<(), String> {
    let host = http
        .host
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod_ip.to_string());
    let port = resolve_port(&http.port, container)?;
    let path = http
        .path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    let scheme = http.scheme.clone().unwrap_or_else(|| "HTTP".into());
    if scheme.eq_ignore_ascii_case("HTTPS") {
        // Upstream skips certificate checks for probes; skiff's probes connect and send a
        // TLS ClientHello-less TCP check for HTTPS (no TLS client in the probe path yet).
        return match tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port))).await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "Get \"https://{host}:{port}{path}\": dial tcp {host}:{port}: connect: {e}"
            )),
            Err(_) => Err(format!(
                "Get \"https://{host}:{port}{path}\": context deadline exceeded"
            )),
        };
    }
    let url = format!("http://{host}:{port}{path}");
    let request = async {
        let mut stream = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("Get \"{url}\": dial tcp {host}:{port}: connect: {e}"))?;
        let mut head = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\nConnection: close\r\n"
        );
        for h in http.http_headers.iter().flatten() {
            head.push_str(&format!("{}: {}\r\n", h.name, h.value));
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        let mut buf = vec![0u8; 1024];
        let mut read = 0;
        while read < 12 {
            let n = stream
                .read(&mut buf[read..])
                .await
                .map_err(|e| format!("Get \"{url}\": {e}"))?;
            if n == 0 {
                break;
            }
            read += n;
        }
        let line = String::from_utf8_lossy(&buf[..read]).to_string();
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("Get \"{url}\": malformed HTTP response"))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    match tokio::time::timeout(timeout, request).await {
        Ok(r) => r,
        Err(_) => Err(format!("Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn named_ports_and_defaults() {
        let c: Container = serde_json::from_value(
            json!({"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}),
        )
        .unwrap();
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
        let e = resolve_port(&IntOrString::String("nope".into()), &c).unwrap_err();
        assert!(e.contains("couldn't find port \"nope\""), "{e}");
        let t = timing(&Probe::default());
        assert_eq!(t.period, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!(t.failure_threshold, 3);
    }

    #[tokio::test]
    async fn http_and_tcp_probes_against_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for status in ["200 OK", "500 Internal Server Error"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await.unwrap();
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let c: Container = serde_json::from_value(json!({"name": "web"})).unwrap();
        let get = HTTPGetAction {
            port: IntOrString::Int(port as i32),
            path: Some("/healthz".into()),
            ..HTTPGetAction::default()
        };
        assert_eq!(
            http_get(&get, &c, "127.0.0.1", Duration::from_secs(2)).await,
            Ok(())
        );
        let e = http_get(&get, &c, "127.0.0.1", Duration::from_secs(2))
            .await
            .unwrap_err();
        assert_eq!(e, "HTTP probe failed with statuscode: 500");
    }
}
