//! ComponentStatuses (`pkg/registry/core/componentstatus`, deprecated since 1.19 and still
//! served): nothing is stored; each get or list probes, as upstream's does, the store
//! (`etcd-0`, one per storage backend — skiff has one) and the scheduler's and controller
//! manager's `/healthz` over HTTPS on 127.0.0.1 at upstream's default ports (10259, 10257),
//! without verifying their certificates. Answers carry upstream's deprecation warning.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{json, Value};

use crate::registry::{Probes, Strategy};
use crate::table::prelude::*;

pub struct ComponentStatuses;

pub static STRATEGY: ComponentStatuses = ComponentStatuses;

/// The `Warning` upstream's deprecation filter sends for every request on the resource.
pub const DEPRECATED: &str = "v1 ComponentStatus is deprecated in v1.19+";

/// Upstream's probe timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// (name, port) of the components upstream probes over HTTPS.
const SERVERS: &[(&str, u16)] = &[("controller-manager", 10257), ("scheduler", 10259)];

impl Strategy for ComponentStatuses {
    fn computed<'a>(&'a self, probes: &'a Probes) -> Option<BoxFuture<'a, Vec<Value>>> {
        Some(Box::pin(async move {
            let etcd = async {
                let result = tokio::time::timeout(PROBE_TIMEOUT, probes.storage.revision()).await;
                match result {
                    Ok(Ok(_)) => status("etcd-0", "True", "ok", ""),
                    Ok(Err(e)) => status("etcd-0", "False", "", &e.message),
                    Err(_) => status("etcd-0", "False", "", "context deadline exceeded"),
                }
            };
            let servers = futures::future::join_all(
                SERVERS
                    .iter()
                    .map(|(name, port)| probe_https(name, *port, probes)),
            );
            let (etcd, mut servers) = tokio::join!(etcd, servers);
            servers.push(etcd);
            servers
        }))
    }

    fn deprecated(&self) -> Option<&'static str> {
        Some(DEPRECATED)
    }

    fn printer(&self) -> &'static Printer {
        &COMPONENT_STATUS_PRINTER
    }
}

fn status(name: &str, healthy: &str, message: &str, error: &str) -> Value {
    let mut condition = json!({"type": "Healthy", "status": healthy});
    if !message.is_empty() {
        condition["message"] = json!(message);
    }
    if !error.is_empty() {
        condition["error"] = json!(error);
    }
    json!({
        "kind": "ComponentStatus",
        "apiVersion": "v1",
        "metadata": {"name": name},
        "conditions": [condition],
    })
}

/// Upstream's HTTP prober: a GET; 2xx and 3xx are healthy with the body as message, other codes
/// unhealthy, a failed request Unknown with Go's error text.
async fn probe_https(name: &str, port: u16, probes: &Probes) -> Value {
    let url = format!("https://127.0.0.1:{port}/healthz");
    let attempt = async {
        let mut sender =
            crate::kubelet_proxy::connect("127.0.0.1", port, Some(probes.insecure_tls.clone()))
                .await
                .map_err(|e| match e {
                    crate::kubelet_proxy::DialError::Connect(_, io) => {
                        format!("dial tcp 127.0.0.1:{port}: connect: {}", io_text(&io))
                    }
                    other => other.to_string(),
                })?;
        let request = axum::http::Request::get("/healthz")
            .header("host", format!("127.0.0.1:{port}"))
            .header("user-agent", "kube-probe/1.37")
            .body(axum::body::Body::empty())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let code = response.status().as_u16();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((code, String::from_utf8_lossy(&body).into_owned()))
    };
    match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
        Ok(Ok((code, body))) if (200..400).contains(&code) => status(name, "True", &body, ""),
        Ok(Ok((code, body))) => status(
            name,
            "False",
            &body,
            &format!("HTTP probe failed with statuscode: {code}"),
        ),
        Ok(Err(e)) => status(name, "Unknown", "", &format!("Get \"{url}\": {e}")),
        Err(_) => status(
            name,
            "Unknown",
            "",
            &format!("Get \"{url}\": context deadline exceeded"),
        ),
    }
}

/// Go's text for the common dial errors.
fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        _ => e.to_string(),
    }
}

pub const COMPONENT_STATUS_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "Status of the component conditions"),
    col("Message", "string", "Message of the component conditions"),
    col("Error", "string", "Error of the component conditions"),
];

pub static COMPONENT_STATUS_PRINTER: Printer =
    Printer::new(COMPONENT_STATUS_COLUMNS, component_status_cells);

fn component_status_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let healthy = obj["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Healthy");
    let (state, message, error) = match healthy {
        Some(c) => (
            if c["status"] == "True" {
                "Healthy"
            } else {
                "Unhealthy"
            },
            text(c, &["message"]),
            text(c, &["error"]),
        ),
        None => ("Unknown", "", ""),
    };
    vec![name(obj), state.into(), message.into(), error.into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_as_upstream() {
        let ok = status("etcd-0", "True", "ok", "");
        assert_eq!(
            component_status_cells(&ok, Timestamp::now()),
            vec![json!("etcd-0"), json!("Healthy"), json!("ok"), json!("")]
        );
        let down = status(
            "scheduler",
            "Unknown",
            "",
            "Get \"https://127.0.0.1:10259/healthz\": x",
        );
        assert_eq!(
            component_status_cells(&down, Timestamp::now())[1],
            json!("Unhealthy")
        );
    }
}
