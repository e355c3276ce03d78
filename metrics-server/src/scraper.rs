//! Scraping the kubelets, as upstream's `pkg/scraper`: every resolution, each Node known to the
//! cache is asked for `GET https://<address>:<port>/metrics/resource`, all at once, each with a
//! timeout of 90 % of the resolution (upstream's `ScrapeTimeout`), with the server's own
//! credential from its kubeconfig (the kubelet checks `get nodes/metrics` for it). The address
//! is the first of the Node's addresses of a preferred type (`--kubelet-preferred-address-types`);
//! the kubelet's certificate is checked against `--kubelet-certificate-authority`, the
//! kubeconfig's CA, or not at all (`--kubelet-insecure-tls`). A node that fails is logged and
//! left out of the round.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;
use parking_lot::Mutex;

use crate::decode::{decode, Batch};

/// How the kubelets are reached.
pub struct KubeletOptions {
    pub port: u16,
    pub use_node_status_port: bool,
    pub address_types: Vec<String>,
    /// CA certificates (DER) for the kubelets' serving certificates; None: the kubeconfig's.
    pub ca: Option<Vec<Vec<u8>>>,
    pub insecure: bool,
    pub timeout: Duration,
}

pub struct Scraper {
    base: kube::Config,
    options: KubeletOptions,
    /// One client per kubelet URL, kept across rounds (its connections too).
    clients: Mutex<HashMap<String, kube::Client>>,
}

/// The outcome of a round: the batches, the nodes that failed with why, and every request
/// made (node, success, seconds, start in seconds since the epoch).
pub struct Round {
    pub batches: BTreeMap<String, Batch>,
    pub failures: Vec<(String, String)>,
    pub requests: Vec<(String, bool, f64, f64)>,
}

/// The URL of `node`'s kubelet: its first address of a preferred type.
pub fn kubelet_url(node: &Node, options: &KubeletOptions) -> Option<String> {
    let addresses = node.status.as_ref()?.addresses.as_ref()?;
    let address = options.address_types.iter().find_map(|kind| {
        addresses
            .iter()
            .find(|a| &a.type_ == kind && !a.address.is_empty())
    })?;
    let port = options
        .use_node_status_port
        .then(|| {
            node.status
                .as_ref()?
                .daemon_endpoints
                .as_ref()?
                .kubelet_endpoint
                .as_ref()
                .map(|e| e.port)
        })
        .flatten()
        .filter(|p| *p > 0)
        .map_or(options.port, |p| p as u16);
    let host = if address.address.contains(':') {
        format!("[{}]", address.address)
    } else {
        address.address.clone()
    };
    Some(format!("https://{host}:{port}"))
}

impl Scraper {
    pub fn new(base: kube::Config, options: KubeletOptions) -> Scraper {
        Scraper {
            base,
            options,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, url: &str) -> anyhow::Result<kube::Client> {
        if let Some(client) = self.clients.lock().get(url) {
            return Ok(client.clone());
        }
        let mut config = self.base.clone();
        config.cluster_url = url.parse().context("the kubelet's URL")?;
        config.default_namespace = "default".into();
        config.connect_timeout = Some(self.options.timeout);
        config.read_timeout = Some(self.options.timeout);
        if self.options.insecure {
            config.accept_invalid_certs = true;
            config.root_cert = None;
        } else if let Some(ca) = &self.options.ca {
            config.root_cert = Some(ca.clone());
        }
        let client = kube::Client::try_from(config)?;
        self.clients.lock().insert(url.to_string(), client.clone());
        Ok(client)
    }

    async fn scrape(&self, url: &str) -> anyhow::Result<Batch> {
        let client = self.client(url)?;
        let request = http::Request::get("/metrics/resource")
            .body(Vec::new())
            .context("the request")?;
        let started = now_ns();
        let text = tokio::time::timeout(self.options.timeout, client.request_text(request))
            .await
            .map_err(|_| anyhow::anyhow!("timed out after {:?}", self.options.timeout))??;
        Ok(decode(&text, started)?)
    }

    /// One round over `nodes`.
    pub async fn round(&self, nodes: Vec<Arc<Node>>) -> Round {
        let scrapes = nodes.iter().map(|node| async move {
            let name = node.metadata.name.clone().unwrap_or_default();
            let Some(url) = kubelet_url(node, &self.options) else {
                let why = format!("node {name}: no address of a preferred type");
                return (name, Err(why), None);
            };
            let at = now_ns() as f64 / 1e9;
            let started = std::time::Instant::now();
            let result = self
                .scrape(&url)
                .await
                .map_err(|e| format!("unable to fetch metrics from node {name} ({url}): {e:#}"));
            let request = (
                name.clone(),
                result.is_ok(),
                started.elapsed().as_secs_f64(),
                at,
            );
            (name, result, Some(request))
        });
        let mut round = Round {
            batches: BTreeMap::new(),
            failures: Vec::new(),
            requests: Vec::new(),
        };
        for (name, result, request) in futures::future::join_all(scrapes).await {
            round.requests.extend(request);
            match result {
                Ok(batch) => {
                    round.batches.insert(name, batch);
                }
                Err(e) => round.failures.push((name, e)),
            }
        }
        // Forget clients of kubelets no longer in the list.
        let urls: Vec<String> = nodes
            .iter()
            .filter_map(|n| kubelet_url(n, &self.options))
            .collect();
        self.clients.lock().retain(|url, _| urls.contains(url));
        round
    }
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(addresses: &[(&str, &str)], status_port: i32) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"},
            "status": {
                "addresses": addresses.iter().map(|(t, a)| serde_json::json!({"type": t, "address": a})).collect::<Vec<_>>(),
                "daemonEndpoints": {"kubeletEndpoint": {"Port": status_port}},
            },
        }))
        .unwrap()
    }

    fn options(types: &[&str], use_status: bool) -> KubeletOptions {
        KubeletOptions {
            port: 10250,
            use_node_status_port: use_status,
            address_types: types.iter().map(|t| t.to_string()).collect(),
            ca: None,
            insecure: false,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn addresses_by_preference() {
        let n = node(&[("Hostname", "n1"), ("InternalIP", "192.168.79.2")], 10255);
        let o = options(&["InternalIP", "Hostname"], false);
        assert_eq!(
            kubelet_url(&n, &o).as_deref(),
            Some("https://192.168.79.2:10250")
        );
        let o = options(&["Hostname", "InternalIP"], true);
        assert_eq!(kubelet_url(&n, &o).as_deref(), Some("https://n1:10255"));
        let o = options(&["ExternalIP"], false);
        assert_eq!(kubelet_url(&n, &o), None);
        let v6 = node(&[("InternalIP", "fd00::2")], 0);
        let o = options(&["InternalIP"], true);
        assert_eq!(
            kubelet_url(&v6, &o).as_deref(),
            Some("https://[fd00::2]:10250")
        );
    }
}
