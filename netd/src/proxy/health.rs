//! The health-check node ports (kube-proxy's `pkg/proxy/healthcheck`): for every LoadBalancer
//! Service with `externalTrafficPolicy: Local`, an HTTP server on `spec.healthCheckNodePort`
//! of this node answers 200 while the node has a ready endpoint of the Service and 503 when it
//! has none — so an outside load balancer sends traffic only to nodes that can serve it. The
//! body is upstream's JSON (`service`, `localEndpoints`, `serviceProxyHealthy`).
//!
//! One listener per port, started and stopped as Services come and go; the counts they report
//! are swapped in place on every sync.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// What one health-check port reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub namespace: String,
    pub name: String,
    pub local_endpoints: usize,
}

/// Health-check ports of this node's view: port → what it reports (pure: unit-tested).
pub fn wanted<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    node: &str,
) -> BTreeMap<u16, Health> {
    let endpoints = super::model::ready_endpoints_by_node(slices);
    let mut out = BTreeMap::new();
    for service in services {
        let Some(spec) = service.spec.as_ref() else {
            continue;
        };
        let Some(port) = spec
            .health_check_node_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
        else {
            continue;
        };
        if spec.type_.as_deref() != Some("LoadBalancer")
            || spec.external_traffic_policy.as_deref() != Some("Local")
        {
            continue;
        }
        let namespace = service.metadata.namespace.clone().unwrap_or_default();
        let name = service.metadata.name.clone().unwrap_or_default();
        let count = endpoints
            .get(&(namespace.clone(), name.clone()))
            .map_or(0, |e| e.iter().filter(|(n, _)| n == node).count());
        out.insert(
            port,
            Health {
                namespace,
                name,
                local_endpoints: count,
            },
        );
    }
    out
}

/// The running listeners.
#[derive(Default)]
pub struct Servers {
    running: HashMap<u16, (Arc<Mutex<Health>>, tokio::task::JoinHandle<()>)>,
}

impl Servers {
    /// Starts, updates and stops listeners so exactly `wanted` are served.
    pub fn sync(&mut self, wanted: &BTreeMap<u16, Health>) {
        self.running.retain(|port, (_, task)| {
            let keep = wanted.contains_key(port) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for (port, health) in wanted {
            if let Some((shared, _)) = self.running.get(port) {
                *shared.lock().expect("not poisoned") = health.clone();
                continue;
            }
            let shared = Arc::new(Mutex::new(health.clone()));
            let task = tokio::spawn(serve(*port, shared.clone()));
            self.running.insert(*port, (shared, task));
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for (_, task) in self.running.values() {
            task.abort();
        }
    }
}

async fn serve(port: u16, health: Arc<Mutex<Health>>) {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", port)).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(port, "serving the health-check node port: {e}");
            return;
        }
    };
    let handler = move || async move {
        let h = health.lock().expect("not poisoned").clone();
        let body = serde_json::to_string_pretty(&serde_json::json!({
            "service": {"namespace": h.namespace, "name": h.name},
            "localEndpoints": h.local_endpoints,
            "serviceProxyHealthy": true,
        }))
        .unwrap_or_default();
        let status = if h.local_endpoints > 0 {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (
            status,
            [
                (header::CONTENT_TYPE, "application/json".to_string()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
                (
                    header::HeaderName::from_static("x-load-balancing-endpoint-weight"),
                    h.local_endpoints.to_string(),
                ),
            ],
            body,
        )
            .into_response()
    };
    let app = axum::Router::new().fallback(handler);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(port, "the health-check node port stopped: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_local_load_balancers_get_a_port_and_count_this_nodes_ready_endpoints() {
        let svc = |name: &str, policy: &str, port: i32| -> Service {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy, "healthCheckNodePort": port},
            }))
            .unwrap()
        };
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.244.1.2"], "nodeName": "n1", "conditions": {"ready": true}},
                {"addresses": ["10.244.1.3"], "nodeName": "n1", "conditions": {"ready": false}},
                {"addresses": ["10.244.2.2"], "nodeName": "n2"},
            ],
        }))
        .unwrap();
        let services = [
            svc("web", "Local", 32000),
            svc("other", "Local", 32001),
            svc("cluster", "Cluster", 32002),
        ];
        let got = wanted(&services, [&slice], "n1");
        assert_eq!(got.len(), 2);
        assert_eq!(got[&32000].local_endpoints, 1);
        assert_eq!(got[&32001].local_endpoints, 0);
        assert_eq!(wanted(&services, [&slice], "n3")[&32000].local_endpoints, 0);
    }
}
