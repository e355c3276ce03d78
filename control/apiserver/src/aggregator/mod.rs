//! The aggregation layer (upstream's kube-aggregator, which fronts every kube-apiserver): an
//! APIService either names a group version this server serves itself (`Local`) or hands it to
//! an extension API server behind a Service — metrics-server's `v1beta1.metrics.k8s.io`, the
//! sample-apiserver. For the latter, requests under `/apis/<group>/<version>` are authenticated
//! and authorized here, then proxied ([`proxy`]) with the front-proxy client certificate and
//! the caller's identity in `X-Remote-*` headers, which the extension server trusts because
//! the certificate chains to the `requestheader-client-ca-file` this server publishes in
//! `kube-system/extension-apiserver-authentication` ([`front_proxy`]).
//!
//! One loop ([`controller`]) keeps it all current from the APIService watch cache: it
//! registers a local APIService for each built-in and custom group version (upstream's
//! autoregister and crdregistration controllers), writes every APIService's `Available`
//! condition (the local and remote availability controllers, with upstream's reasons), and
//! fetches each remote group version's resource list, which discovery ([`crate::discovery`])
//! merges into `/apis` — legacy and aggregated — as upstream's discovery aggregator does.
//!
//! Backends are reached at a ready endpoint of their Service (upstream's
//! `--enable-aggregator-routing`), as admission webhooks are: `skiff server` alone runs no
//! service proxy, and the control plane reaches pod IPs through the overlay.

pub mod controller;
pub mod front_proxy;
pub mod proxy;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

/// An APIService served elsewhere, as the last pass of the controller saw it.
#[derive(Clone, Debug)]
pub struct Remote {
    pub name: String,
    pub group: String,
    pub version: String,
    pub group_priority: i64,
    pub version_priority: i64,
    /// The Service reference (`{namespace, name, port}`), as the APIService holds it.
    pub service: Value,
    /// Base64 of the PEM bundle the backend's certificate must chain to.
    pub ca_bundle: String,
    pub insecure_skip_tls_verify: bool,
    /// The `Available` condition is True: requests go through; otherwise they are 503s.
    pub available: bool,
    /// The backend's `APIResourceList` for this group version, from its last good answer.
    pub resources: Option<Value>,
}

/// Every remote group version, by (group, version).
#[derive(Default, Debug)]
pub struct Routes {
    pub remote: BTreeMap<(String, String), Remote>,
}

impl Routes {
    pub fn find(&self, group: &str, version: &str) -> Option<&Remote> {
        self.remote.get(&(group.to_string(), version.to_string()))
    }

    /// The remote versions of `group`, the preferred first: upstream's order within a group
    /// (`versionPriority` descending, then Kubernetes' version order).
    pub fn versions_of(&self, group: &str) -> Vec<&Remote> {
        let mut out: Vec<&Remote> = self.remote.values().filter(|r| r.group == group).collect();
        out.sort_by(|a, b| {
            b.version_priority
                .cmp(&a.version_priority)
                .then_with(|| crate::customresource::version_order(&a.version, &b.version))
        });
        out
    }

    /// The remote groups, highest `groupPriorityMinimum` first, then by name.
    pub fn groups(&self) -> Vec<String> {
        let mut best: BTreeMap<&str, i64> = BTreeMap::new();
        for r in self.remote.values() {
            let entry = best.entry(&r.group).or_insert(r.group_priority);
            *entry = (*entry).max(r.group_priority);
        }
        let mut groups: Vec<(&str, i64)> = best.into_iter().collect();
        groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        groups.into_iter().map(|(g, _)| g.to_string()).collect()
    }
}

/// The aggregator's state in the API server.
pub struct Aggregator {
    routes: parking_lot::RwLock<Arc<Routes>>,
    /// The client identity toward extension servers (`--proxy-client-cert-file`).
    pub identity: front_proxy::ProxyClient,
}

impl Aggregator {
    pub fn new(identity: front_proxy::ProxyClient) -> Aggregator {
        Aggregator {
            routes: Default::default(),
            identity,
        }
    }

    /// The routes now (cheap: one `Arc` clone).
    pub fn routes(&self) -> Arc<Routes> {
        self.routes.read().clone()
    }

    pub(crate) fn publish(&self, routes: Routes) {
        *self.routes.write() = Arc::new(routes);
    }
}
