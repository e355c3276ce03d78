//! pods/log, pods/exec, pods/attach and pods/portforward: served by the pod's kubelet, which
//! the API server reaches at the Node's InternalIP and `daemonEndpoints.kubeletEndpoint.Port`
//! (upstream's `pkg/registry/core/pod/rest/subresources.go` + the upgrade-aware proxy).
//!
//! Logs are streamed through as they come (`kubectl logs -f`). Exec, attach and port-forward
//! are connection upgrades (WebSocket `v5.channel.k8s.io` from kubectl 1.32, or SPDY): the
//! request goes to the kubelet with its upgrade headers, and once the kubelet answers 101 the
//! two connections are spliced byte for byte, so the protocol is the kubelet's business.
//!
//! The kubelet's serving certificate is self-signed, so it is not verified (upstream's default
//! without `--kubelet-certificate-authority`); the API server authenticates with its own
//! token (`kube-apiserver-kubelet-client`), which the kubelet checks with a TokenReview.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::handlers::{ApiServer, Ctx, Target};
use crate::resources::{self, Sub};

/// The user the API server is toward kubelets.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// Serves one of the proxied subresources.
pub async fn proxy(
    server: &Arc<ApiServer>,
    target: &Target,
    ctx: &Ctx,
    request: Request<Body>,
) -> ApiResult<Response<Body>> {
    let pod_target = Target {
        sub: None,
        ..target.clone()
    };
    let pod = server.get(&pod_target, ctx).await?;
    let pod_name = target.name.clone().unwrap_or_default();
    let namespace = target.namespace.clone().unwrap_or_else(|| "default".into());
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {pod_name} does not have a host assigned"
        )));
    }
    let nodes = resources::find("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let node = server
        .get(
            &Target {
                info: nodes,
                namespace: None,
                name: Some(node_name.to_string()),
                sub: None,
            },
            ctx,
        )
        .await?;
    let address = node_address(&node).ok_or_else(|| {
        ApiError::bad_request(format!("node {node_name:?} has no InternalIP address"))
    })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .filter(|p| *p > 0)
        .unwrap_or(10250);
    let sub = target
        .sub
        .ok_or_else(|| ApiError::internal("no subresource"))?;
    let path = kubelet_path(sub, &namespace, &pod_name, &pod, &ctx.query)?;
    let token = server
        .tokens
        .as_ref()
        .and_then(|t| t.token_of(KUBELET_CLIENT_USER));
    forward(request, &address, port as u16, &path, token.as_deref()).await
}

/// The node's InternalIP (else its first address).
fn node_address(node: &Value) -> Option<String> {
    let addresses = node.pointer("/status/addresses")?.as_array()?;
    addresses
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .or_else(|| addresses.first())
        .and_then(|a| a["address"].as_str())
        .map(str::to_string)
}

/// The container a request is for: the `container` parameter, or the pod's only container.
fn container_of(pod: &Value, query: &[(String, String)], pod_name: &str) -> ApiResult<String> {
    if let Some((_, c)) = query
        .iter()
        .find(|(k, _)| k == "container")
        .filter(|(_, v)| !v.is_empty())
    {
        let known = [
            "/spec/containers",
            "/spec/initContainers",
            "/spec/ephemeralContainers",
        ]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_array))
        .flatten()
        .any(|x| x["name"] == c.as_str());
        if !known {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {pod_name}"
            )));
        }
        return Ok(c.clone());
    }
    let names = |p: &str| -> Vec<String> {
        pod.pointer(p)
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("/spec/containers");
    if containers.len() == 1 {
        return Ok(containers[0].clone());
    }
    let inits = names("/spec/initContainers");
    let mut message = format!(
        "a container name must be specified for pod {pod_name}, choose one of: [{}]",
        containers.join(" ")
    );
    if !inits.is_empty() {
        message.push_str(&format!(
            " or one of the init containers: [{}]",
            inits.join(" ")
        ));
    }
    Err(ApiError::bad_request(message))
}

fn kubelet_path(
    sub: Sub,
    namespace: &str,
    pod_name: &str,
    pod: &Value,
    query: &[(String, String)],
) -> ApiResult<String> {
    let mut out = form_urlencoded::Serializer::new(String::new());
    let pass = |out: &mut form_urlencoded::Serializer<String>, keys: &[(&str, &str)]| {
        for (k, v) in query {
            if let Some((_, to)) = keys.iter().find(|(from, _)| from == k) {
                out.append_pair(to, v);
            }
        }
    };
    let base = match sub {
        Sub::Log => {
            let c = container_of(pod, query, pod_name)?;
            pass(
                &mut out,
                &[
                    ("follow", "follow"),
                    ("previous", "previous"),
                    ("timestamps", "timestamps"),
                    ("tailLines", "tailLines"),
                    ("sinceSeconds", "sinceSeconds"),
                    ("sinceTime", "sinceTime"),
                    ("limitBytes", "limitBytes"),
                ],
            );
            format!("/containerLogs/{namespace}/{pod_name}/{c}")
        }
        Sub::Exec | Sub::Attach => {
            let c = container_of(pod, query, pod_name)?;
            // kubectl's names → the kubelet's (upstream renames stdin → input and so on).
            pass(
                &mut out,
                &[
                    ("command", "command"),
                    ("stdin", "input"),
                    ("stdout", "output"),
                    ("stderr", "error"),
                    ("tty", "tty"),
                ],
            );
            let verb = if sub == Sub::Exec { "exec" } else { "attach" };
            format!("/{verb}/{namespace}/{pod_name}/{c}")
        }
        Sub::PortForward => {
            pass(&mut out, &[("ports", "port")]);
            format!("/portForward/{namespace}/{pod_name}")
        }
        _ => return Err(ApiError::internal("not a kubelet subresource")),
    };
    let query = out.finish();
    Ok(if query.is_empty() {
        base
    } else {
        format!("{base}?{query}")
    })
}

/// Headers that make an upgrade, passed to the kubelet as they came.
const UPGRADE_HEADERS: [&str; 7] = [
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

async fn forward(
    mut request: Request<Body>,
    address: &str,
    port: u16,
    path: &str,
    token: Option<&str>,
) -> ApiResult<Response<Body>> {
    let unreachable = |e: &dyn std::fmt::Display| {
        ApiError::internal(format!(
            "error dialing backend: dial tcp {address}:{port}: {e}"
        ))
    };
    let tcp = tokio::net::TcpStream::connect((address, port))
        .await
        .map_err(|e| unreachable(&e))?;
    let _ = tcp.set_nodelay(true);
    let connector = tokio_rustls::TlsConnector::from(insecure_client_config());
    let server_name = rustls::pki_types::ServerName::try_from(address.to_string())
        .map_err(|e| ApiError::internal(format!("kubelet address {address:?}: {e}")))?;
    let tls = connector
        .connect(server_name, tcp)
        .await
        .map_err(|e| unreachable(&e))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| unreachable(&e))?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    let mut upstream = Request::builder()
        .method(request.method().clone())
        .uri(path)
        .header(header::HOST, format!("{address}:{port}"));
    let is_upgrade = request.headers().contains_key(header::UPGRADE);
    for name in UPGRADE_HEADERS {
        for value in request.headers().get_all(name) {
            upstream = upstream.header(name, value.clone());
        }
    }
    if let Some(token) = token {
        upstream = upstream.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let upstream = upstream
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let client_upgrade = if is_upgrade {
        Some(hyper::upgrade::on(&mut request))
    } else {
        None
    };
    let mut response = sender
        .send_request(upstream)
        .await
        .map_err(|e| ApiError::internal(format!("proxying to the kubelet: {e}")))?;
    let status = response.status();
    let mut reply = Response::builder().status(status);
    for (name, value) in response.headers() {
        if name != header::TRANSFER_ENCODING && name != header::CONTENT_LENGTH {
            reply = reply.header(name, value.clone());
        }
    }
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            return Err(ApiError::internal(
                "the kubelet switched protocols on a plain request",
            ));
        };
        let kubelet_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            let (client, kubelet) = match tokio::try_join!(client_upgrade, kubelet_upgrade) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!("kubelet proxy upgrade: {e}");
                    return;
                }
            };
            let mut client = TokioIo::new(client);
            let mut kubelet = TokioIo::new(kubelet);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await;
        });
        return reply
            .body(Body::empty())
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    if !status.is_success() {
        // The kubelet's plain-text reason becomes a Status, as upstream's proxy reports it.
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let message = String::from_utf8_lossy(&bytes).trim().to_string();
        return Err(match status.as_u16() {
            400 => ApiError::bad_request(message),
            404 => ApiError::bad_request(message),
            401 | 403 => {
                ApiError::internal(format!("the kubelet refused the API server: {message}"))
            }
            _ => ApiError::internal(message),
        });
    }
    let body = Body::new(response.into_body());
    let mut built = reply
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if !built.headers().contains_key(header::CONTENT_TYPE) {
        built
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    Ok(built)
}

/// TLS to kubelets without verifying their self-signed certificates.
fn insecure_client_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}

#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn paths_as_upstream_maps_them() {
        let pod = json!({"spec": {"containers": [{"name": "web"}]}});
        assert_eq!(
            kubelet_path(
                Sub::Log,
                "ns",
                "p",
                &pod,
                &q(&[("follow", "true"), ("tailLines", "10")])
            )
            .unwrap(),
            "/containerLogs/ns/p/web?follow=true&tailLines=10"
        );
        assert_eq!(
            kubelet_path(
                Sub::Exec,
                "ns",
                "p",
                &pod,
                &q(&[
                    ("command", "sh"),
                    ("command", "-c"),
                    ("stdin", "true"),
                    ("stdout", "true")
                ])
            )
            .unwrap(),
            "/exec/ns/p/web?command=sh&command=-c&input=true&output=true"
        );
        assert_eq!(
            kubelet_path(Sub::PortForward, "ns", "p", &pod, &q(&[("ports", "8080")])).unwrap(),
            "/portForward/ns/p?port=8080"
        );
    }

    #[test]
    fn container_must_be_named_when_there_are_several() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        let e = container_of(&pod, &[], "p").unwrap_err();
        assert_eq!(e.message, "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]");
        assert_eq!(
            container_of(&pod, &q(&[("container", "i")]), "p").unwrap(),
            "i"
        );
        assert!(container_of(&pod, &q(&[("container", "zz")]), "p").is_err());
    }
}
