//! The proxy subresources: `nodes/proxy`, `pods/proxy` and `services/proxy` (upstream's
//! `pkg/registry/core/node/rest/proxy.go`, `pkg/registry/core/pod/rest/subresources.go` and
//! `pkg/registry/core/service/proxy.go`, served by apimachinery's upgrade-aware proxy handler).
//!
//! `…/{name}/proxy/{path}` sends the request — any method, its body and headers, its query —
//! to `{path}` on the backend and streams the answer back; a connection upgrade (WebSocket) is
//! passed on and, once the backend switches protocols, the two connections are spliced. The
//! name may carry a scheme and a port, as upstream's `SplitSchemeNamePort`: `name`,
//! `name:port`, `https:name:port` (`http` when none is given).
//!
//! - **nodes**: the kubelet at the Node's InternalIP and `daemonEndpoints.kubeletEndpoint.Port`
//!   over HTTPS with the API server's kubelet client certificate (`kubelet_proxy.rs`), when no
//!   port or the kubelet's is named; another port is dialled at the node's address, plainly or
//!   (`https:`) over TLS without verification. `kubectl get --raw
//!   /api/v1/nodes/<node>/proxy/stats/summary` is the kubelet's Summary API.
//! - **pods**: the pod IP, at the named port, else the first declared container port, else 80.
//! - **services**: a ready endpoint from the Service's EndpointSlices (a random one, as
//!   upstream's `RandomEndpoint`), for the service port named (a port number is first turned
//!   into its port's name), that belongs to a pod of the namespace with that IP.
//!
//! Backends are dialled from the API server's network namespace: in skiff's local cluster
//! the control plane reaches pod IPs through the overlay, as a kube-apiserver on a node does.
//!
//! What upstream's handler does around the exchange is done here too: `…/proxy` without a
//! path redirects GET and HEAD to `…/proxy/`; the caller's `Authorization` and
//! `Impersonate-*` headers and the hop-by-hop ones are not passed on; `X-Forwarded-For` gains
//! the caller's address and `X-Forwarded-Uri` names the path on the API server; a redirect's
//! `Location` on the backend is rewritten to stay under `…/proxy`; CORS headers from the
//! backend are dropped; a backend that cannot be reached is a 503 "error trying to reach
//! service". (Upstream also rewrites links inside HTML pages; skiff passes HTML unchanged.)
//! RBAC is asked about `get`/`create`/`update`/`patch`/`delete` on the subresource, by method
//! (HEAD is `get`), with the name as written in the path (`web:8080`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode,
};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::handlers::{ApiServer, Ctx, Target};
use crate::kubelet_proxy::{connect_as, node_address, splice};
use crate::resources;

/// Where a proxied request goes.
#[derive(Debug, Clone)]
pub(crate) struct Location {
    pub host: String,
    pub port: u16,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The name TLS verifies the backend as, when not `host` (an aggregated API server's
    /// Service: `<service>.<namespace>.svc`).
    pub server_name: Option<String>,
}

impl Location {
    fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// RBAC's verb for a proxied method (upstream's RequestInfo; OPTIONS and others have none).
pub fn verb(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
}

/// Splits `path` after its first `segments` non-empty segments: (the part up to them, the
/// rest as written, starting with `/` or empty).
pub fn split_after_segments(path: &str, segments: usize) -> (&str, &str) {
    let bytes = path.as_bytes();
    let mut i = 0;
    let mut seen = 0;
    while seen < segments && i < bytes.len() {
        while i < bytes.len() && bytes[i] == b'/' {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        while i < bytes.len() && bytes[i] != b'/' {
            i += 1;
        }
        seen += 1;
    }
    (&path[..i], &path[i..])
}

/// Upstream's `SplitSchemeNamePort`: `name`, `name:port` or `scheme:name:port`, the scheme
/// "", `http` or `https`, the name not empty.
pub fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme, name, port] => (*scheme, *name, *port),
        _ => return None,
    };
    (!name.is_empty() && matches!(scheme, "" | "http" | "https")).then_some((scheme, name, port))
}

/// Go's `IP.IsGlobalUnicast`: not unspecified, loopback, multicast, link-local or broadcast
/// (private ranges are global unicast).
pub fn is_global_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || a.is_link_local()
                || a.is_broadcast())
        }
        IpAddr::V6(a) => {
            !(a.is_unspecified()
                || a.is_loopback()
                || a.is_multicast()
                || (a.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Serves a proxy request for `target` (whose name is the path's, port and scheme included).
/// `prefix` is the request path up to and including `/proxy`, `path` what follows it.
pub async fn serve(
    server: &Arc<ApiServer>,
    target: &Target,
    ctx: &Ctx,
    request: Request<Body>,
    prefix: &str,
    path: &str,
) -> ApiResult<Response<Body>> {
    let id = target.name.clone().unwrap_or_default();
    let namespace = target.namespace.clone().unwrap_or_else(|| "default".into());
    let location = match target.info.resource {
        "nodes" => node_location(server, ctx, &id).await?,
        "pods" => pod_location(server, ctx, &namespace, &id).await?,
        "services" => service_location(server, ctx, &namespace, &id).await?,
        _ => return Err(ApiError::path_not_found()),
    };
    let upgrade = request.headers().contains_key(header::UPGRADE);
    if path.is_empty() && !upgrade && matches!(*request.method(), Method::GET | Method::HEAD) {
        // Upstream's fix for issue 4958: relative links on the backend's root page need the
        // trailing slash.
        let query = request
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        return Response::builder()
            .status(StatusCode::MOVED_PERMANENTLY)
            .header(header::LOCATION, format!("{prefix}/{query}"))
            .body(Body::empty())
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    forward(request, &location, prefix, path).await
}

async fn node_location(server: &Arc<ApiServer>, ctx: &Ctx, id: &str) -> ApiResult<Location> {
    let (scheme, name, port) = split_scheme_name_port(id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid node request {id:?}")))?;
    let nodes = resources::find("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let node = server
        .get(
            &Target {
                info: nodes,
                namespace: None,
                name: Some(name.to_string()),
                sub: None,
            },
            ctx,
        )
        .await?;
    let host = node_address(&node)
        .ok_or_else(|| ApiError::bad_request(format!("node {name:?} has no InternalIP address")))?;
    proxyable(&host)?;
    let kubelet_port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .filter(|p| *p > 0 && *p <= u16::MAX as u64)
        .unwrap_or(10250) as u16;
    if port.is_empty() || port == kubelet_port.to_string() {
        return Ok(Location {
            host,
            port: kubelet_port,
            tls: Some(server.kubelet_client.kubelet_tls()),
            server_name: None,
        });
    }
    let port = parse_port(port, id)?;
    Ok(Location {
        host,
        port,
        tls: (scheme == "https").then(|| server.kubelet_client.insecure_tls()),
        server_name: None,
    })
}

async fn pod_location(
    server: &Arc<ApiServer>,
    ctx: &Ctx,
    namespace: &str,
    id: &str,
) -> ApiResult<Location> {
    let (scheme, name, port) = split_scheme_name_port(id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid pod request {id:?}")))?;
    let pod = get_pod(server, ctx, namespace, name).await?;
    let mut port = port.to_string();
    if port.is_empty() {
        // The first declared port of the first container that declares one.
        if let Some(p) = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find_map(|c| c.pointer("/ports/0/containerPort").and_then(Value::as_u64))
        {
            port = p.to_string();
        }
    }
    let host = pod_ip(&pod).unwrap_or_default();
    proxyable(&host)?;
    let port = if port.is_empty() {
        if scheme == "https" {
            443
        } else {
            80
        }
    } else {
        parse_port(&port, id)?
    };
    Ok(Location {
        host,
        port,
        tls: (scheme == "https").then(|| server.kubelet_client.insecure_tls()),
        server_name: None,
    })
}

async fn service_location(
    server: &Arc<ApiServer>,
    ctx: &Ctx,
    namespace: &str,
    id: &str,
) -> ApiResult<Location> {
    let (scheme, name, port) = split_scheme_name_port(id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid service request {id:?}")))?;
    let mut port_name = port.to_string();
    if let Ok(number) = port.parse::<i64>() {
        // A port number stands for the service port that has it, by that port's name.
        let services = resources::find("", "v1", "services")
            .ok_or_else(|| ApiError::internal("services are not served"))?;
        let service = server
            .get(
                &Target {
                    info: services,
                    namespace: Some(namespace.to_string()),
                    name: Some(name.to_string()),
                    sub: None,
                },
                ctx,
            )
            .await?;
        port_name = service
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p["port"].as_i64() == Some(number))
            .map(|p| p["name"].as_str().unwrap_or_default().to_string())
            .ok_or_else(|| {
                ApiError::unavailable(format!(
                    "no service port {number} found for service {name:?}"
                ))
            })?;
    }
    let slices = endpoint_slices(server, namespace, name).await?;
    let no_endpoints =
        || ApiError::unavailable(format!("no endpoints available for service {name:?}"));
    if slices.is_empty() {
        return Err(no_endpoints());
    }
    for (address, port) in candidates(&slices, &port_name, rand::random()) {
        if !endpoint_is_pod(server, ctx, namespace, &address.1, &address.0).await {
            continue;
        }
        return Ok(Location {
            host: address.0,
            port,
            tls: (scheme == "https").then(|| server.kubelet_client.insecure_tls()),
            server_name: None,
        });
    }
    Err(no_endpoints())
}

/// The EndpointSlices of service `name` (label `kubernetes.io/service-name`).
async fn endpoint_slices(
    server: &Arc<ApiServer>,
    namespace: &str,
    name: &str,
) -> ApiResult<Vec<Value>> {
    let info = resources::find("discovery.k8s.io", "v1", "endpointslices")
        .ok_or_else(|| ApiError::internal("endpointslices are not served"))?;
    let page = server
        .storage
        .list(&info.namespace_prefix(Some(namespace)), None, 0, 0)
        .await?;
    Ok(page
        .items
        .into_iter()
        .map(|s| s.object)
        .filter(|s| {
            s.pointer("/metadata/labels/kubernetes.io~1service-name")
                .and_then(Value::as_str)
                == Some(name)
        })
        .collect())
}

/// The endpoints that may serve service port `port_name`, in the order to try them: IPv4
/// slices first (upstream prefers the primary family), each slice's endpoints from an offset
/// chosen by `seed`, endpoints known not to be ready left out. Each is ((address, pod name),
/// port).
fn candidates(slices: &[Value], port_name: &str, seed: u64) -> Vec<((String, String), u16)> {
    let mut ordered: Vec<&Value> = slices.iter().collect();
    let n = ordered.len().max(1);
    ordered.rotate_left((seed as usize) % n);
    ordered.sort_by_key(|s| s["addressType"].as_str() != Some("IPv4"));
    let mut out = Vec::new();
    for slice in ordered {
        let ports = slice["ports"].as_array().cloned().unwrap_or_default();
        let Some(port) = ports
            .iter()
            .find(|p| p["name"].as_str().unwrap_or_default() == port_name)
            .and_then(|p| p["port"].as_u64())
            .filter(|p| *p > 0 && *p <= u16::MAX as u64)
        else {
            continue;
        };
        let endpoints = slice["endpoints"].as_array().cloned().unwrap_or_default();
        if endpoints.is_empty() {
            continue;
        }
        let offset = (seed as usize / n) % endpoints.len();
        for i in 0..endpoints.len() {
            let endpoint = &endpoints[(i + offset) % endpoints.len()];
            if endpoint.pointer("/conditions/ready") == Some(&Value::Bool(false)) {
                continue;
            }
            let Some(address) = endpoint.pointer("/addresses/0").and_then(Value::as_str) else {
                continue;
            };
            let pod = if endpoint.pointer("/targetRef/kind").and_then(Value::as_str) == Some("Pod")
            {
                endpoint
                    .pointer("/targetRef/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            } else {
                ""
            };
            out.push(((address.to_string(), pod.to_string()), port as u16));
        }
    }
    out
}

/// Upstream's `isValidAddress`: the endpoint names a pod of the namespace that has its IP.
async fn endpoint_is_pod(
    server: &Arc<ApiServer>,
    ctx: &Ctx,
    namespace: &str,
    pod: &str,
    address: &str,
) -> bool {
    if pod.is_empty() {
        return false;
    }
    let Ok(pod) = get_pod(server, ctx, namespace, pod).await else {
        return false;
    };
    pod_ips(&pod).iter().any(|ip| ip == address)
}

async fn get_pod(
    server: &Arc<ApiServer>,
    ctx: &Ctx,
    namespace: &str,
    name: &str,
) -> ApiResult<Value> {
    let pods = resources::find("", "v1", "pods")
        .ok_or_else(|| ApiError::internal("pods are not served"))?;
    server
        .get(
            &Target {
                info: pods,
                namespace: Some(namespace.to_string()),
                name: Some(name.to_string()),
                sub: None,
            },
            ctx,
        )
        .await
}

fn pod_ips(pod: &Value) -> Vec<String> {
    let mut ips: Vec<String> = pod
        .pointer("/status/podIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p["ip"].as_str().map(str::to_string))
        .collect();
    if ips.is_empty() {
        if let Some(ip) = pod.pointer("/status/podIP").and_then(Value::as_str) {
            ips.push(ip.to_string());
        }
    }
    ips
}

fn pod_ip(pod: &Value) -> Option<String> {
    pod_ips(pod).into_iter().next()
}

/// Upstream refuses addresses that are not global unicast (loopback, link-local, …).
fn proxyable(host: &str) -> ApiResult<()> {
    match host.parse::<IpAddr>() {
        Ok(ip) if is_global_unicast(ip) => Ok(()),
        _ => Err(ApiError::bad_request("address not allowed")),
    }
}

fn parse_port(port: &str, id: &str) -> ApiResult<u16> {
    port.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid port in {id:?}")))
}

/// Request and response headers that belong to one connection (Go's `httputil.ReverseProxy`
/// list), never passed on as they are.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The headers of `headers` that go on: not hop-by-hop (nor named in `Connection`), not the
/// caller's credentials or impersonation (upstream's filters take those off after using
/// them). An upgrade keeps `Connection: Upgrade` and its `Upgrade`.
fn forwarded_headers(headers: &HeaderMap, upgrade: bool) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect();
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n)
            || named.iter().any(|c| c == n)
            || n == "authorization"
            || n.starts_with("impersonate-")
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if upgrade {
        if let Some(value) = headers.get(header::UPGRADE) {
            out.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            out.insert(header::UPGRADE, value.clone());
        }
    }
    out
}

/// Upstream's `rewriteURL` for a backend's redirect: a `Location` on the backend itself (or
/// on the host the caller used) with an absolute path moves under `prefix`; another host or
/// a relative path stays as it is.
pub fn rewrite_location(location: &str, backend: &str, request_host: &str, prefix: &str) -> String {
    let (host, rest) = if let Some(after) = location
        .strip_prefix("http://")
        .or_else(|| location.strip_prefix("https://"))
        .or_else(|| location.strip_prefix("//"))
    {
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        (&after[..end], &after[end..])
    } else if location.contains("://") {
        return location.to_string();
    } else {
        ("", location)
    };
    if !host.is_empty() && host != backend && host != request_host {
        return location.to_string();
    }
    if !rest.starts_with('/') {
        return location.to_string();
    }
    // Upstream keeps the caller's own host on the URL; the backend's is dropped.
    let keep = if !host.is_empty() && host == request_host {
        &location[..location.len() - rest.len()]
    } else {
        ""
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let (path, tail) = rest.split_at(end);
    if path.starts_with(prefix) {
        return format!("{keep}{rest}");
    }
    format!("{keep}{}{path}{tail}", prefix.trim_end_matches('/'))
}

pub(crate) async fn forward(
    mut request: Request<Body>,
    location: &Location,
    prefix: &str,
    path: &str,
) -> ApiResult<Response<Body>> {
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::unavailable(format!("error trying to reach service: {e}"))
    };
    let backend_path = if path.is_empty() { "/" } else { path };
    let uri = match request.uri().query() {
        Some(query) => format!("{backend_path}?{query}"),
        None => backend_path.to_string(),
    };
    let upgrade = request.headers().contains_key(header::UPGRADE);
    let mut headers = forwarded_headers(request.headers(), upgrade);
    let request_host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    if !headers.contains_key(header::HOST) {
        // HTTP/2 callers give the authority in the URI; the backend speaks HTTP/1.1.
        let host = if request_host.is_empty() {
            location.host_port()
        } else {
            request_host.clone()
        };
        if let Ok(value) = HeaderValue::from_str(&host) {
            headers.insert(header::HOST, value);
        }
    }
    if let Some(peer) = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        let ip = peer.0.ip().to_string();
        let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prior) => format!("{prior}, {ip}"),
            None => ip,
        };
        if let Ok(value) = HeaderValue::from_str(&chain) {
            headers.insert(HeaderName::from_static("x-forwarded-for"), value);
        }
    }
    if let Ok(value) =
        HeaderValue::from_str(&format!("{}{backend_path}", prefix.trim_end_matches('/')))
    {
        headers.insert(HeaderName::from_static("x-forwarded-uri"), value);
    }
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let mut upstream = Request::builder()
        .method(request.method().clone())
        .uri(uri)
        .body(Body::new(request.into_body()))
        .map_err(|e| ApiError::bad_request(format!("proxying: {e}")))?;
    *upstream.headers_mut() = headers;
    let server_name = location.server_name.as_deref().unwrap_or(&location.host);
    let mut sender = connect_as(
        &location.host,
        location.port,
        location.tls.clone(),
        server_name,
    )
    .await
    .map_err(|e| unreachable(&e))?;
    let mut response = sender
        .send_request(upstream)
        .await
        .map_err(|e| unreachable(&e))?;
    let status = response.status();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let mut reply = Response::builder().status(status);
        for (name, value) in response.headers() {
            reply = reply.header(name, value.clone());
        }
        match client_upgrade {
            Some(client) => splice(client, hyper::upgrade::on(&mut response)),
            None => {
                return Err(ApiError::internal(
                    "the backend switched protocols on a plain request",
                ))
            }
        }
        return reply
            .body(Body::empty())
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    let mut reply = Response::builder().status(status);
    let backend = location.host_port();
    for (name, value) in &forwarded_headers(response.headers(), false) {
        if name.as_str().starts_with("access-control-allow-") {
            continue;
        }
        if name == header::LOCATION {
            if let Ok(text) = value.to_str() {
                let rewritten = rewrite_location(text, &backend, &request_host, prefix);
                if let Ok(value) = HeaderValue::from_str(&rewritten) {
                    reply = reply.header(name, value);
                }
                continue;
            }
        }
        reply = reply.header(name, value.clone());
    }
    // Proxied bodies are the backend's, not API objects: the audit log keeps its metadata.
    reply
        .body(Body::new(response.into_body()))
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_with_schemes_and_ports() {
        assert_eq!(split_scheme_name_port("web"), Some(("", "web", "")));
        assert_eq!(
            split_scheme_name_port("web:8080"),
            Some(("", "web", "8080"))
        );
        assert_eq!(
            split_scheme_name_port("https:web:443"),
            Some(("https", "web", "443"))
        );
        assert_eq!(
            split_scheme_name_port("http:web:"),
            Some(("http", "web", ""))
        );
        assert_eq!(split_scheme_name_port("ftp:web:21"), None);
        assert_eq!(split_scheme_name_port(":8080"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
    }

    #[test]
    fn the_path_after_proxy_is_kept_as_written() {
        let path = "/api/v1/namespaces/ns/pods/web:8080/proxy/a//b/";
        assert_eq!(
            split_after_segments(path, 7),
            ("/api/v1/namespaces/ns/pods/web:8080/proxy", "/a//b/")
        );
        assert_eq!(
            split_after_segments("/api/v1/nodes/n/proxy", 5),
            ("/api/v1/nodes/n/proxy", "")
        );
        assert_eq!(
            split_after_segments("/api/v1/nodes/n/proxy/", 5),
            ("/api/v1/nodes/n/proxy", "/")
        );
    }

    #[test]
    fn only_global_unicast_addresses() {
        for ok in ["10.244.0.5", "192.168.56.11", "8.8.8.8", "fd00::1"] {
            assert!(is_global_unicast(ok.parse().unwrap()), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "0.0.0.0",
            "169.254.1.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
        ] {
            assert!(!is_global_unicast(bad.parse().unwrap()), "{bad}");
        }
        assert!(proxyable("not an ip").is_err());
    }

    #[test]
    fn verbs_by_method() {
        assert_eq!(verb(&Method::GET), "get");
        assert_eq!(verb(&Method::HEAD), "get");
        assert_eq!(verb(&Method::POST), "create");
        assert_eq!(verb(&Method::PUT), "update");
        assert_eq!(verb(&Method::PATCH), "patch");
        assert_eq!(verb(&Method::DELETE), "delete");
        assert_eq!(verb(&Method::OPTIONS), "");
    }

    #[test]
    fn credentials_and_hop_by_hop_headers_stay_here() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer secret"));
        h.insert("impersonate-user", HeaderValue::from_static("bob"));
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("accept", HeaderValue::from_static("text/plain"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        let out = forwarded_headers(&h, false);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out["accept"], "text/plain");
        let out = forwarded_headers(&h, true);
        assert_eq!(out["connection"], "Upgrade");
        assert_eq!(out["upgrade"], "websocket");
        assert!(!out.contains_key("authorization"));
    }

    #[test]
    fn redirects_stay_under_the_proxy() {
        let prefix = "/api/v1/namespaces/ns/services/web/proxy";
        let backend = "10.244.0.5:8080";
        let host = "127.0.0.1:6443";
        assert_eq!(
            rewrite_location("/login?next=/", backend, host, prefix),
            format!("{prefix}/login?next=/")
        );
        assert_eq!(
            rewrite_location("http://10.244.0.5:8080/a/", backend, host, prefix),
            format!("{prefix}/a/")
        );
        assert_eq!(
            rewrite_location("https://127.0.0.1:6443/x", backend, host, prefix),
            format!("https://127.0.0.1:6443{prefix}/x")
        );
        assert_eq!(
            rewrite_location(&format!("{prefix}/already"), backend, host, prefix),
            format!("{prefix}/already")
        );
        // Elsewhere, or relative: untouched.
        assert_eq!(
            rewrite_location("https://example.com/x", backend, host, prefix),
            "https://example.com/x"
        );
        assert_eq!(rewrite_location("next", backend, host, prefix), "next");
    }

    #[test]
    fn service_endpoints_ready_for_the_named_port() {
        let slices = vec![
            json!({"addressType": "IPv6", "ports": [{"name": "http", "port": 80}],
                   "endpoints": [{"addresses": ["fd00::5"], "targetRef": {"kind": "Pod", "name": "v6"}}]}),
            json!({"addressType": "IPv4", "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}],
                   "endpoints": [
                       {"addresses": ["10.244.0.5"], "conditions": {"ready": false}, "targetRef": {"kind": "Pod", "name": "a"}},
                       {"addresses": ["10.244.0.6"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "b"}},
                       {"addresses": ["10.244.0.7"], "targetRef": {"kind": "Pod", "name": "c"}}]}),
        ];
        for seed in 0..6 {
            let found = candidates(&slices, "http", seed);
            assert_eq!(found.len(), 3, "{found:?}");
            // IPv4 first; the endpoint that is not ready never.
            assert!(found[..2]
                .iter()
                .all(|((ip, _), port)| ip.starts_with("10.") && *port == 8080));
            assert!(found.iter().all(|((ip, _), _)| ip != "10.244.0.5"));
        }
        let metrics = candidates(&slices, "metrics", 0);
        assert_eq!(metrics.len(), 2);
        assert_eq!(metrics[0].1, 9090);
        assert!(candidates(&slices, "", 0).is_empty());
        // An unnamed port is "".
        let unnamed = vec![json!({"addressType": "IPv4", "ports": [{"port": 80}],
                                  "endpoints": [{"addresses": ["10.0.0.1"]}]})];
        assert_eq!(
            candidates(&unnamed, "", 0),
            vec![(("10.0.0.1".to_string(), String::new()), 80)]
        );
    }
}
