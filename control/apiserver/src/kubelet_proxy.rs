//! pods/log, pods/exec, pods/attach and pods/portforward: served by the pod's kubelet, which
//! the API server reaches at the Node's InternalIP and `daemonEndpoints.kubeletEndpoint.Port`
//! (upstream's `pkg/registry/core/pod/rest/subresources.go` + the upgrade-aware proxy).
//!
//! Logs are streamed through as they come (`kubectl logs -f`). Exec, attach and port-forward
//! are connection upgrades (WebSocket `v5.channel.k8s.io` from kubectl 1.32, or SPDY): the
//! request goes to the kubelet with its upgrade headers, and once the kubelet answers 101 the
//! two connections are spliced byte for byte, so the protocol is the kubelet's business.
//!
//! Toward kubelets the API server is `kube-apiserver-kubelet-client`, proven by a client
//! certificate (upstream's `--kubelet-client-certificate`/`--kubelet-client-key`; by default
//! one the API server makes at start, signed by the cluster CA: `tls.rs`), which a kubelet
//! with `--client-ca-file` accepts and then asks RBAC about (`system:kubelet-api-admin`). No
//! bearer token is sent: a token would go to whatever answers at the node's address — with an
//! unverified kubelet certificate that may be anyone who took the address — and would then
//! work against every kubelet; a certificate's key never leaves the API server. A kubelet
//! without `--client-ca-file` therefore refuses the API server (401).
//!
//! The kubelet's serving certificate is verified against `--kubelet-certificate-authority`
//! when that is given (kubelets serving with certificates issued by the cluster,
//! `--rotate-server-certificates`), for the address dialled; without it, as upstream, it is
//! not verified (kubelets' default certificates are self-signed).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::handlers::{ApiServer, Ctx, Target};
use crate::resources::{self, Sub};

/// The user the API server is toward kubelets (its client certificate's CN).
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// How the API server connects to kubelets (kube-apiserver's flag names).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KubeletClientArgs {
    /// The client certificate (PEM) presented to kubelets. Default:
    /// `<data-dir>/tls/apiserver-kubelet-client.crt`, made at start and signed by the cluster
    /// CA (CN `kube-apiserver-kubelet-client`).
    #[arg(long, requires = "kubelet_client_key")]
    pub kubelet_client_certificate: Option<PathBuf>,
    /// The key of --kubelet-client-certificate (PEM).
    #[arg(long, requires = "kubelet_client_certificate")]
    pub kubelet_client_key: Option<PathBuf>,
    /// CA bundle (PEM) the kubelets' serving certificates are verified against, e.g. the
    /// cluster CA when kubelets run with --rotate-server-certificates. Default: not verified.
    #[arg(long)]
    pub kubelet_certificate_authority: Option<PathBuf>,
}

/// The TLS the API server dials kubelets with, and the one for `https:` proxy targets.
pub struct KubeletClient {
    tls: Arc<rustls::ClientConfig>,
    /// For pods, services and node ports other than the kubelet's reached over `https:` by
    /// the proxy subresources: no client certificate, the server's not verified (upstream's
    /// proxy transport, `InsecureSkipVerify`).
    insecure: Arc<rustls::ClientConfig>,
}

impl KubeletClient {
    /// From the flags, or the certificate made in `data_dir` (whose CA must exist: after
    /// `tls::ensure_pki`).
    pub fn new(args: &KubeletClientArgs, data_dir: &Path) -> anyhow::Result<KubeletClient> {
        let (cert_pem, key_pem) = match (&args.kubelet_client_certificate, &args.kubelet_client_key)
        {
            (Some(cert), Some(key)) => (
                std::fs::read_to_string(cert)
                    .with_context(|| format!("--kubelet-client-certificate {}", cert.display()))?,
                std::fs::read_to_string(key)
                    .with_context(|| format!("--kubelet-client-key {}", key.display()))?,
            ),
            _ => crate::tls::ensure_kubelet_client_certificate(data_dir)?,
        };
        let ca_pem =
            match &args.kubelet_certificate_authority {
                Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                    format!("--kubelet-certificate-authority {}", path.display())
                })?),
                None => None,
            };
        let tls = client_config(&cert_pem, &key_pem, ca_pem.as_deref())?;
        Ok(KubeletClient {
            tls,
            insecure: insecure_config()?,
        })
    }

    /// TLS toward kubelets (the client certificate; verified with
    /// --kubelet-certificate-authority).
    pub fn kubelet_tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// TLS toward other `https:` proxy targets.
    pub fn insecure_tls(&self) -> Arc<rustls::ClientConfig> {
        self.insecure.clone()
    }
}

/// TLS without a client certificate that accepts any server certificate.
fn insecure_config() -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// TLS toward kubelets: presenting `cert_pem`/`key_pem`, verifying the kubelet against the
/// CAs in `ca_pem` when given.
pub(crate) fn client_config(
    cert_pem: &str,
    key_pem: &str,
    ca_pem: Option<&str>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let chain: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .context("reading the kubelet client certificate")?;
    anyhow::ensure!(
        !chain.is_empty(),
        "the kubelet client certificate file holds no certificate"
    );
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .context("reading the kubelet client key")?
        .context("the kubelet client key file holds no private key")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match ca_pem {
        Some(ca_pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
                roots.add(cert.context("reading --kubelet-certificate-authority")?)?;
            }
            anyhow::ensure!(
                !roots.is_empty(),
                "--kubelet-certificate-authority holds no certificate"
            );
            builder.with_root_certificates(roots)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider))),
    };
    let mut config = builder
        .with_client_auth_cert(chain, key)
        .context("the kubelet client certificate and key do not go together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

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
    forward(
        request,
        &address,
        port as u16,
        &path,
        server.kubelet_client.tls.clone(),
    )
    .await
}

/// The node's InternalIP (else its first address).
pub(crate) fn node_address(node: &Value) -> Option<String> {
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
    tls: Arc<rustls::ClientConfig>,
) -> ApiResult<Response<Body>> {
    // A certificate that does not verify against --kubelet-certificate-authority ends here.
    let mut sender = connect(address, port, Some(tls))
        .await
        .map_err(|e| ApiError::internal(format!("error dialing backend: {e}")))?;
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
        splice(client_upgrade, hyper::upgrade::on(&mut response));
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

/// Why a backend could not be reached, worded as Go's dialer words it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    #[error("dial tcp {0}: connect: {1}")]
    Connect(String, std::io::Error),
    #[error("tls: {0}")]
    Tls(std::io::Error),
    #[error("address {0:?}: {1}")]
    Name(String, String),
    #[error("{0}")]
    Http(hyper::Error),
}

/// An HTTP/1.1 connection to `address:port` (over TLS with `tls`), ready for one exchange,
/// upgrades included.
pub(crate) async fn connect(
    address: &str,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<hyper::client::conn::http1::SendRequest<Body>, DialError> {
    connect_as(address, port, tls, address).await
}

/// [`connect`], with TLS verifying the server as `server_name` rather than the address dialled
/// (an admission webhook's Service endpoint proves `<service>.<namespace>.svc`).
pub(crate) async fn connect_as(
    address: &str,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    server_name: &str,
) -> Result<hyper::client::conn::http1::SendRequest<Body>, DialError> {
    let host = if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    };
    let tcp = tokio::net::TcpStream::connect((address, port))
        .await
        .map_err(|e| DialError::Connect(host.clone(), e))?;
    let _ = tcp.set_nodelay(true);
    let Some(tls) = tls else {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(DialError::Http)?;
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        return Ok(sender);
    };
    let server_name = rustls::pki_types::ServerName::try_from(server_name.to_string())
        .map_err(|e| DialError::Name(server_name.to_string(), e.to_string()))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(server_name, tcp)
        .await
        .map_err(DialError::Tls)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(DialError::Http)?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    Ok(sender)
}

/// Once both sides have switched protocols, copies bytes both ways until either closes.
pub(crate) fn splice(client: hyper::upgrade::OnUpgrade, backend: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        let (client, backend) = match tokio::try_join!(client, backend) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!("proxied upgrade: {e}");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut backend = TokioIo::new(backend);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
    });
}

/// Accepts any kubelet certificate (no --kubelet-certificate-authority); the handshake
/// signatures are still checked.
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

    /// A kubelet at 192.168.56.11 serving `serving` (certificate, key) and trusting client
    /// certificates from `client_ca`, checked by a client
    /// made by `client_config` over an in-memory pipe: the handshake's outcome and whether the
    /// kubelet saw a client certificate.
    async fn handshake(
        serving: (String, String),
        client_ca: &str,
        client: Arc<rustls::ClientConfig>,
    ) -> Result<bool, String> {
        let chain: Vec<_> = rustls_pemfile::certs(&mut serving.0.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut serving.1.as_bytes())
            .unwrap()
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in rustls_pemfile::certs(&mut client_ca.as_bytes()) {
            roots.add(ca.unwrap()).unwrap();
        }
        // The kubelet only requests a certificate; whether one arrived is what matters here.
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .allow_unauthenticated()
                .build()
                .unwrap(),
            )
            .with_single_cert(chain, key)
            .unwrap();
        let server = Arc::new(server);
        let (near, far) = tokio::io::duplex(1 << 16);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let accepted = tokio::spawn(async move {
            acceptor
                .accept(far)
                .await
                .map(|tls| tls.get_ref().1.peer_certificates().is_some())
        });
        let name = rustls::pki_types::ServerName::try_from("192.168.56.11").unwrap();
        let connected = tokio_rustls::TlsConnector::from(client)
            .connect(name, near)
            .await;
        match connected {
            Ok(_) => accepted.await.unwrap().map_err(|e| format!("server: {e}")),
            Err(e) => Err(format!("client: {e}")),
        }
    }

    #[tokio::test]
    async fn kubelets_are_verified_only_against_the_given_authority() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::tls::ensure_pki(dir.path(), &[]).unwrap();
        let (cert, key) = crate::tls::ensure_kubelet_client_certificate(dir.path()).unwrap();
        // A kubelet certificate from the cluster CA for its IP, and a self-signed one.
        let ca_key = rcgen::KeyPair::from_pem(
            &std::fs::read_to_string(dir.path().join("tls/ca.key")).unwrap(),
        )
        .unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(&pki.ca_pem, ca_key).unwrap();
        let kubelet_key = rcgen::KeyPair::generate().unwrap();
        let issued = rcgen::CertificateParams::new(vec!["192.168.56.11".to_string()])
            .unwrap()
            .signed_by(&kubelet_key, &issuer)
            .unwrap();
        let issued = (issued.pem(), kubelet_key.serialize_pem());
        let own = rcgen::generate_simple_self_signed(vec!["192.168.56.11".to_string()]).unwrap();
        let own = (own.cert.pem(), own.signing_key.serialize_pem());

        let verifying = client_config(&cert, &key, Some(&pki.ca_pem)).unwrap();
        assert_eq!(
            handshake(issued.clone(), &pki.ca_pem, verifying.clone()).await,
            Ok(true)
        );
        let refused = handshake(own.clone(), &pki.ca_pem, verifying)
            .await
            .unwrap_err();
        assert!(refused.starts_with("client: "), "{refused}");
        // Without --kubelet-certificate-authority anything goes (upstream's default); the
        // client certificate is presented either way.
        let trusting = client_config(&cert, &key, None).unwrap();
        assert_eq!(
            handshake(own, &pki.ca_pem, trusting.clone()).await,
            Ok(true)
        );
        assert_eq!(handshake(issued, &pki.ca_pem, trusting).await, Ok(true));
        // A key that is not the certificate's is refused at start.
        assert!(client_config(
            &cert,
            &rcgen::KeyPair::generate().unwrap().serialize_pem(),
            None
        )
        .is_err());
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
