//! Calling a webhook: where its `clientConfig` points, TLS verified against its `caBundle`,
//! one POST of the AdmissionReview under the webhook's timeout, connections kept for the next
//! call (upstream keeps them in its REST clients' transports).
//!
//! A `url` is dialled at its host, whose certificate must name that host. A `service` is
//! reached at one of its ready endpoints (upstream's endpoint routing, kube-apiserver
//! `--enable-aggregator-routing`), not its ClusterIP: the API server's host need not run a
//! service proxy (`skiff server` alone does not), and an endpoint is what the ClusterIP would
//! lead to anyway. The certificate must name `<service>.<namespace>.svc`, as upstream's.
//!
//! The API server presents no client certificate and no token (upstream's default: webhook
//! credentials come only from an admission kubeconfig, which skiff does not read). Errors read
//! as Go's HTTP client's (`Post "<url>": dial tcp …: connect: connection refused`,
//! `… context deadline exceeded`), which upstream wraps into `failed calling webhook`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use base64::Engine;
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use serde_json::Value;

use crate::kubelet_proxy::{connect_as, DialError};
use crate::registry::Lookup;

/// Where one call goes.
pub struct Endpoint {
    /// The URL as upstream's errors print it (with `?timeout=`).
    pub url: String,
    pub(crate) address: String,
    pub(crate) port: u16,
    pub(crate) server_name: String,
    path: String,
}

/// Resolves `clientConfig` (url or service) to an endpoint; the error is upstream's text.
pub async fn resolve(
    lookup: &dyn Lookup,
    client_config: &Value,
    timeout: Duration,
) -> Result<Endpoint, String> {
    let query = format!("?timeout={}s", timeout.as_secs());
    if let Some(url) = client_config["url"].as_str() {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| format!("webhook url {url:?} is not https"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = split_host_port(authority)?;
        return Ok(Endpoint {
            url: format!("{url}{query}"),
            address: host.clone(),
            port,
            server_name: host,
            path: format!("{path}{query}"),
        });
    }
    let service = &client_config["service"];
    let name = service["name"].as_str().unwrap_or_default();
    let namespace = service["namespace"].as_str().unwrap_or_default();
    let port = service["port"].as_u64().unwrap_or(443) as u16;
    let mut path = service["path"].as_str().unwrap_or("/").to_string();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let host = format!("{name}.{namespace}.svc");
    let url = format!("https://{host}:{port}{path}{query}");
    let svc = lookup
        .get("", "services", Some(namespace), name)
        .await
        .map_err(|e| e.message)?
        .ok_or_else(|| format!("Post {url:?}: service \"{name}\" not found"))?;
    let ports = svc.pointer("/spec/ports").and_then(Value::as_array);
    let svc_port = ports
        .into_iter()
        .flatten()
        .find(|p| p["port"].as_u64() == Some(port.into()))
        .ok_or_else(|| {
            format!("Post {url:?}: no service port {port} found for service \"{name}\"")
        })?;
    let port_name = svc_port["name"].as_str().unwrap_or_default();
    let slices = lookup
        .list_in("discovery.k8s.io", "endpointslices", namespace)
        .await
        .map_err(|e| e.message)?;
    let mut ready = Vec::new();
    for slice in slices.iter().filter(|s| {
        s.pointer("/metadata/labels/kubernetes.io~1service-name")
            .and_then(Value::as_str)
            == Some(name)
    }) {
        let Some(target) = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
        else {
            continue;
        };
        let Some(target_port) = target["port"].as_u64() else {
            continue;
        };
        for endpoint in slice["endpoints"].as_array().into_iter().flatten() {
            if endpoint.pointer("/conditions/ready") == Some(&Value::Bool(false)) {
                continue;
            }
            if let Some(address) = endpoint["addresses"][0].as_str() {
                ready.push((address.to_string(), target_port as u16));
            }
        }
    }
    if ready.is_empty() {
        return Err(format!(
            "Post {url:?}: no endpoints available for service \"{name}\""
        ));
    }
    let (address, port) = ready.swap_remove(rand::random_range(0..ready.len()));
    Ok(Endpoint {
        url,
        address,
        port,
        server_name: host,
        path: format!("{path}{query}"),
    })
}

fn split_host_port(authority: &str) -> Result<(String, u16), String> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, port) = rest.split_once(']').ok_or("invalid IPv6 host")?;
        let port = port.strip_prefix(':').map(str::parse).unwrap_or(Ok(443));
        return Ok((host.to_string(), port.map_err(|_| "invalid port")?));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((
            host.to_string(),
            port.parse().map_err(|_| format!("invalid port {port:?}"))?,
        )),
        None => Ok((authority.to_string(), 443)),
    }
}

/// TLS configurations by CA bundle, and idle connections by (address, port, name, CA).
#[derive(Default)]
struct Clients {
    tls: HashMap<String, Arc<rustls::ClientConfig>>,
    idle: HashMap<(String, u16, String, String), Vec<SendRequest<Body>>>,
}

fn clients() -> &'static parking_lot::Mutex<Clients> {
    static CLIENTS: OnceLock<parking_lot::Mutex<Clients>> = OnceLock::new();
    CLIENTS.get_or_init(Default::default)
}

/// The TLS verifying servers against `ca_bundle` (base64 of PEM, as the API holds it); with
/// none, against nothing — upstream would use the system's roots, which skiff does not read.
fn tls_for(ca_bundle: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    if let Some(tls) = clients().lock().tls.get(ca_bundle) {
        return Ok(tls.clone());
    }
    let pem = base64::engine::general_purpose::STANDARD
        .decode(ca_bundle)
        .map_err(|e| format!("invalid caBundle: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("invalid caBundle: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("invalid caBundle: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    clients()
        .lock()
        .tls
        .insert(ca_bundle.to_string(), config.clone());
    Ok(config)
}

fn dial_error(e: DialError) -> String {
    match e {
        DialError::Connect(host, io) => {
            let why = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
                _ => io.to_string(),
            };
            format!("dial tcp {host}: connect: {why}")
        }
        DialError::Tls(io) => format!("tls: failed to verify certificate: {io}"),
        other => other.to_string(),
    }
}

/// POSTs `body` to the endpoint and answers the decoded response; the error is Go's text
/// (`Post "<url>": …`).
pub async fn post(
    endpoint: &Endpoint,
    ca_bundle: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Value, String> {
    let url = &endpoint.url;
    match tokio::time::timeout(timeout, exchange(endpoint, ca_bundle, body)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(format!("Post {url:?}: {e}")),
        Err(_) => Err(format!("Post {url:?}: context deadline exceeded")),
    }
}

async fn exchange(endpoint: &Endpoint, ca_bundle: &str, body: Vec<u8>) -> Result<Value, String> {
    let tls = tls_for(ca_bundle)?;
    let key = (
        endpoint.address.clone(),
        endpoint.port,
        endpoint.server_name.clone(),
        ca_bundle.to_string(),
    );
    let idle = {
        let mut clients = clients().lock();
        let list = clients.idle.entry(key.clone()).or_default();
        loop {
            match list.pop() {
                Some(sender) if !sender.is_closed() => break Some(sender),
                Some(_) => continue,
                None => break None,
            }
        }
    };
    let mut sender = match idle {
        Some(sender) => sender,
        None => connect_as(
            &endpoint.address,
            endpoint.port,
            Some(tls),
            &endpoint.server_name,
        )
        .await
        .map_err(dial_error)?,
    };
    sender.ready().await.map_err(|e| e.to_string())?;
    let request = hyper::Request::post(&endpoint.path)
        .header(
            hyper::header::HOST,
            format!("{}:{}", endpoint.server_name, endpoint.port),
        )
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::ACCEPT, "application/json, */*")
        .header(hyper::header::USER_AGENT, "kube-apiserver-admission")
        .body(Body::from(body))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    clients().lock().idle.entry(key).or_default().push(sender);
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(status) = serde_json::from_slice::<Value>(&bytes) {
            if status["kind"] == "Status" {
                return Err(status["message"].as_str().unwrap_or_default().to_string());
            }
        }
        return Err(match status.as_u16() {
            404 => "the server could not find the requested resource".into(),
            code => format!(
                "an error on the server ({:?}) has prevented the request from succeeding (post {code})",
                text.trim()
            ),
        });
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("invalid JSON in the webhook's response: {e}"))
}
