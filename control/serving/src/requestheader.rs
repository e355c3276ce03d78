//! Authentication by client certificate, as k8s.io/apiserver's `DelegatingAuthenticationOptions`
//! sets it up for a server behind the aggregator (metrics-server) and for the control-plane
//! components:
//!
//! - **request headers** (the `requestheader` authenticator): a client certificate that
//!   verifies against `requestheader-client-ca-file`, whose CommonName is in
//!   `requestheader-allowed-names` (an empty list allows any), is the API server's front
//!   proxy speaking for a user it already authenticated: the user is the first non-empty
//!   header of `requestheader-username-headers` (`X-Remote-User`), the groups every value of
//!   `requestheader-group-headers`, the uid the first of `requestheader-uid-headers`, and each
//!   header starting with a prefix of `requestheader-extra-headers-prefix` an extra (its key the
//!   rest of the header name, lowercased and %-unescaped, as upstream's `unescapeExtraKey`).
//!   A proxy certificate without a user header authenticates no one (the next authenticator
//!   decides).
//! - **x509** (`client-ca-file`): a certificate from the client CA is the user of its
//!   CommonName, in the groups of its Organizations.
//!
//! In that order, as upstream's union: the first that names a user wins, and a certificate
//! that none accepted (another CA, a proxy name not allowed) is an error, a 401 unless a bearer
//! token authenticates. Both CAs and the header names come from the ConfigMap
//! `kube-system/extension-apiserver-authentication` that the API server publishes (watched,
//! so a rotated CA applies without a restart), or are given by flags.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use parking_lot::RwLock;
use rustls::pki_types::CertificateDer;

use crate::delegated::User;
use crate::x509::{subject, CaBundle};

pub const CONFIGMAP_NAMESPACE: &str = "kube-system";
pub const CONFIGMAP_NAME: &str = "extension-apiserver-authentication";

/// The front proxy's settings (upstream's `RequestHeaderConfig`).
#[derive(Clone, Debug)]
pub struct RequestHeaderConfig {
    pub ca: CaBundle,
    pub allowed_names: Vec<String>,
    pub username_headers: Vec<String>,
    pub group_headers: Vec<String>,
    pub extra_headers_prefix: Vec<String>,
    pub uid_headers: Vec<String>,
}

/// Which client certificates are accepted, and as whom.
#[derive(Clone, Debug, Default)]
pub struct ClientCertConfig {
    pub client_ca: Option<CaBundle>,
    pub request_header: Option<RequestHeaderConfig>,
}

/// A list-valued key of the ConfigMap: a JSON array in a string; absent or empty is none.
fn strings(data: &BTreeMap<String, String>, key: &str) -> anyhow::Result<Vec<String>> {
    match data.get(key).map(String::as_str) {
        None | Some("") => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("{key}: not a JSON list of strings: {e}")),
    }
}

impl ClientCertConfig {
    /// From the ConfigMap's data (keys as upstream's API server writes them).
    pub fn from_configmap(data: &BTreeMap<String, String>) -> anyhow::Result<ClientCertConfig> {
        let client_ca = match data.get("client-ca-file").filter(|p| !p.is_empty()) {
            Some(pem) => {
                Some(CaBundle::from_pem(pem).map_err(|e| anyhow::anyhow!("client-ca-file: {e}"))?)
            }
            None => None,
        };
        let request_header = match data
            .get("requestheader-client-ca-file")
            .filter(|p| !p.is_empty())
        {
            Some(pem) => Some(RequestHeaderConfig {
                ca: CaBundle::from_pem(pem)
                    .map_err(|e| anyhow::anyhow!("requestheader-client-ca-file: {e}"))?,
                allowed_names: strings(data, "requestheader-allowed-names")?,
                username_headers: strings(data, "requestheader-username-headers")?,
                group_headers: strings(data, "requestheader-group-headers")?,
                extra_headers_prefix: strings(data, "requestheader-extra-headers-prefix")?,
                uid_headers: strings(data, "requestheader-uid-headers")?,
            }),
            None => None,
        };
        Ok(ClientCertConfig {
            client_ca,
            request_header,
        })
    }

    /// The user `chain` (the client's certificates, leaf first) and `headers` name: `Ok(None)`
    /// when no certificate was sent or none names a user, `Err` when a certificate was sent
    /// and no authenticator accepted it (the reasons, joined as upstream's aggregate error).
    pub fn authenticate(
        &self,
        chain: Option<&[CertificateDer<'_>]>,
        headers: &HeaderMap,
    ) -> Result<Option<User>, String> {
        let Some(chain) = chain.filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let mut errors = Vec::new();
        if let Some(proxy) = &self.request_header {
            match proxy.authenticate(chain, headers) {
                Ok(Some(user)) => return Ok(Some(user)),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        if let Some(ca) = &self.client_ca {
            match ca.verify(chain) {
                Ok(()) => {
                    let (cn, organizations) =
                        subject(&chain[0]).ok_or("x509: unparsable certificate")?;
                    // Upstream's CommonNameUserConversion: no CommonName, no user.
                    if !cn.is_empty() {
                        return Ok(Some(User {
                            name: cn,
                            uid: String::new(),
                            groups: organizations,
                            extra: BTreeMap::new(),
                        }));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(None)
        } else {
            Err(errors.join(", "))
        }
    }
}

impl RequestHeaderConfig {
    fn authenticate(
        &self,
        chain: &[CertificateDer<'_>],
        headers: &HeaderMap,
    ) -> Result<Option<User>, String> {
        self.ca.verify(chain)?;
        let (cn, _) = subject(&chain[0]).ok_or("x509: unparsable certificate")?;
        if !self.allowed_names.is_empty() && !self.allowed_names.contains(&cn) {
            return Err(format!(
                "x509: subject with cn={cn} is not in the allowed list"
            ));
        }
        Ok(self.user(headers))
    }

    /// The user the headers name (upstream's `requestheader` authenticator, after the
    /// certificate is accepted); None without a user name.
    pub fn user(&self, headers: &HeaderMap) -> Option<User> {
        let name = first_value(headers, &self.username_headers)?;
        let uid = first_value(headers, &self.uid_headers).unwrap_or_default();
        let groups = self
            .group_headers
            .iter()
            .flat_map(|h| headers.get_all(h.as_str()))
            .filter_map(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect();
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for prefix in &self.extra_headers_prefix {
            let prefix = prefix.to_ascii_lowercase();
            for header in headers.keys() {
                // http's names are lowercase already.
                let Some(key) = header.as_str().strip_prefix(prefix.as_str()) else {
                    continue;
                };
                let values = headers
                    .get_all(header)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .map(str::to_string);
                extra
                    .entry(unescape_extra_key(key))
                    .or_default()
                    .extend(values);
            }
        }
        Some(User {
            name,
            uid,
            groups,
            extra,
        })
    }
}

fn first_value(headers: &HeaderMap, names: &[String]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| headers.get(n.as_str()))
        .filter_map(|v| v.to_str().ok())
        .find(|v| !v.is_empty())
        .map(str::to_string)
}

/// `%XX` decoded as Go's `url.PathUnescape`; a malformed escape keeps the key as sent
/// (upstream: "always record extra strings, even if malformed/unencoded").
pub fn unescape_extra_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) if bytes[i + 1].is_ascii_hexdigit() => {
                    out.push(b);
                    i += 3;
                }
                _ => return key.to_string(),
            }
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| key.to_string())
}

/// Where the client-certificate settings come from.
#[derive(Clone, Debug, Default)]
pub enum ClientCertSource {
    /// No client certificates (the components' serving until the API server publishes the
    /// ConfigMap for them).
    #[default]
    None,
    /// Fixed by flags.
    Fixed(ClientCertConfig),
    /// The ConfigMap `kube-system/extension-apiserver-authentication`, watched.
    Cluster,
}

/// The current settings, replaced when the ConfigMap changes.
#[derive(Clone, Default)]
pub struct DynamicClientCerts(Arc<RwLock<Arc<ClientCertConfig>>>);

impl DynamicClientCerts {
    pub fn fixed(config: ClientCertConfig) -> DynamicClientCerts {
        DynamicClientCerts(Arc::new(RwLock::new(Arc::new(config))))
    }

    pub fn current(&self) -> Arc<ClientCertConfig> {
        self.0.read().clone()
    }

    fn set(&self, config: ClientCertConfig) {
        *self.0.write() = Arc::new(config);
    }

    /// Settings that follow the ConfigMap through `client` (a watch, retried with backoff; a
    /// missing ConfigMap or one that cannot be read leaves client certificates unaccepted and
    /// is logged, as upstream's tolerated in-cluster lookup failure).
    pub fn watch_cluster(client: kube::Client) -> DynamicClientCerts {
        let certs = DynamicClientCerts::default();
        let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, CONFIGMAP_NAMESPACE);
        let config = kube::runtime::watcher::Config::default()
            .fields(&format!("metadata.name={CONFIGMAP_NAME}"));
        let target = certs.clone();
        tokio::spawn(async move {
            use kube::runtime::watcher::Event;
            use kube::runtime::WatchStreamExt;
            let mut events = kube::runtime::watcher(api, config)
                .default_backoff()
                .boxed();
            let mut seen = false;
            while let Some(event) = events.next().await {
                match event {
                    Ok(Event::Apply(cm) | Event::InitApply(cm)) => {
                        seen = true;
                        match ClientCertConfig::from_configmap(&cm.data.unwrap_or_default()) {
                            Ok(config) => {
                                tracing::info!(
                                    client_ca = config.client_ca.is_some(),
                                    requestheader = config.request_header.is_some(),
                                    "client certificate settings from {CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}"
                                );
                                target.set(config);
                            }
                            Err(e) => tracing::warn!(
                                "{CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME}: {e}; keeping the previous settings"
                            ),
                        }
                    }
                    Ok(Event::Delete(_)) => {
                        tracing::warn!("{CONFIGMAP_NAMESPACE}/{CONFIGMAP_NAME} deleted: client certificates are no longer accepted");
                        target.set(ClientCertConfig::default());
                    }
                    Ok(Event::InitDone) if !seen => tracing::warn!(
                        "unable to get configmap/{CONFIGMAP_NAME} in {CONFIGMAP_NAMESPACE}: not found; client certificates are not accepted until it exists"
                    ),
                    Ok(Event::Init | Event::InitDone) => {}
                    Err(e) => tracing::warn!(
                        "watching configmap/{CONFIGMAP_NAME} in {CONFIGMAP_NAMESPACE}: {e}"
                    ),
                }
            }
        });
        certs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::x509::tests::{ca, client};
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn configmap(front_pem: &str, client_pem: &str, allowed: &str) -> BTreeMap<String, String> {
        [
            ("client-ca-file", client_pem),
            ("requestheader-client-ca-file", front_pem),
            ("requestheader-allowed-names", allowed),
            ("requestheader-username-headers", r#"["X-Remote-User"]"#),
            ("requestheader-group-headers", r#"["X-Remote-Group"]"#),
            (
                "requestheader-extra-headers-prefix",
                r#"["X-Remote-Extra-"]"#,
            ),
            ("requestheader-uid-headers", r#"["X-Remote-Uid"]"#),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn headers_as_upstreams_requestheader_reads_them() {
        let front = ca("front");
        let config =
            ClientCertConfig::from_configmap(&configmap(&front.cert.pem(), "", "")).unwrap();
        let proxy = config.request_header.unwrap();
        let user = proxy
            .user(&headers(&[
                ("x-remote-user", "jane"),
                ("x-remote-group", "dev"),
                ("x-remote-group", "ops"),
                ("x-remote-group", ""),
                ("x-remote-uid", "1234"),
                ("x-remote-extra-scopes", "a"),
                ("x-remote-extra-scopes", "b"),
                ("x-remote-extra-example.com%2fkey", "v"),
                ("x-remote-extra-bad%zz", "w"),
            ]))
            .unwrap();
        assert_eq!(user.name, "jane");
        assert_eq!(user.uid, "1234");
        assert_eq!(user.groups, ["dev", "ops"]);
        assert_eq!(user.extra["scopes"], ["a", "b"]);
        assert_eq!(user.extra["example.com/key"], ["v"]);
        assert_eq!(
            user.extra["bad%zz"],
            ["w"],
            "malformed escapes kept as sent"
        );
        assert!(proxy.user(&headers(&[("x-remote-user", "")])).is_none());
        assert!(proxy.user(&headers(&[("x-remote-group", "g")])).is_none());
    }

    #[test]
    fn unescaping_as_go_path_unescape() {
        assert_eq!(unescape_extra_key("a%2Fb"), "a/b");
        assert_eq!(unescape_extra_key("a+b"), "a+b");
        assert_eq!(unescape_extra_key("a%2"), "a%2");
        assert_eq!(unescape_extra_key("%e2%9c%93"), "✓");
    }

    #[test]
    fn the_union_of_front_proxy_and_client_ca() {
        let front = ca("front");
        let clients = ca("clients");
        let other = ca("other");
        let config = ClientCertConfig::from_configmap(&configmap(
            &front.cert.pem(),
            &clients.cert.pem(),
            r#"["front-proxy-client"]"#,
        ))
        .unwrap();
        let proxy_cert = client("front-proxy-client", &[], &front);
        let as_jane = headers(&[("x-remote-user", "jane"), ("x-remote-group", "dev")]);
        let user = config
            .authenticate(Some(std::slice::from_ref(&proxy_cert)), &as_jane)
            .unwrap()
            .unwrap();
        assert_eq!(
            (user.name.as_str(), user.groups.clone()),
            ("jane", vec!["dev".to_string()])
        );

        // A proxy certificate with a name not allowed: an error.
        let stranger = client("someone-else", &[], &front);
        let err = config
            .authenticate(Some(std::slice::from_ref(&stranger)), &as_jane)
            .unwrap_err();
        assert!(
            err.contains("x509: subject with cn=someone-else is not in the allowed list"),
            "{err}"
        );

        // A client-CA certificate: its CN and O; the user headers mean nothing to it.
        let bob = client("bob", &["team"], &clients);
        let user = config
            .authenticate(Some(std::slice::from_ref(&bob)), &as_jane)
            .unwrap()
            .unwrap();
        assert_eq!(
            (user.name.as_str(), user.groups.clone()),
            ("bob", vec!["team".to_string()])
        );

        // Another CA: an error; no certificate: nothing.
        let mallory = client("front-proxy-client", &[], &other);
        assert!(config
            .authenticate(Some(std::slice::from_ref(&mallory)), &as_jane)
            .is_err());
        assert_eq!(config.authenticate(None, &as_jane), Ok(None));

        // The proxy's certificate without a user header: no user, and (not from the client
        // CA) an error from the x509 authenticator, as upstream's union gives.
        assert!(config
            .authenticate(Some(std::slice::from_ref(&proxy_cert)), &HeaderMap::new())
            .is_err());

        // An empty allowed list allows any name from the proxy CA.
        let any =
            ClientCertConfig::from_configmap(&configmap(&front.cert.pem(), "", "[]")).unwrap();
        let user = any
            .authenticate(Some(std::slice::from_ref(&stranger)), &as_jane)
            .unwrap()
            .unwrap();
        assert_eq!(user.name, "jane");
    }

    #[test]
    fn bad_configmaps_are_errors() {
        let front = ca("front");
        let mut data = configmap(&front.cert.pem(), "", "");
        data.insert(
            "requestheader-username-headers".into(),
            "X-Remote-User".into(),
        );
        assert!(ClientCertConfig::from_configmap(&data).is_err());
        let empty = ClientCertConfig::from_configmap(&BTreeMap::new()).unwrap();
        assert!(empty.client_ca.is_none() && empty.request_header.is_none());
    }
}
