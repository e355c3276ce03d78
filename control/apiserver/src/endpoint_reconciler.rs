//! The `kubernetes` Service's endpoints list every live API server (upstream's lease endpoint
//! reconciler, kube-apiserver's default `--endpoint-reconciler-type=lease`): every 10 s each
//! server puts `/registry/masterleases/<advertise-address>` under an etcd lease of 15 s, reads
//! every such key back, and writes the set — sorted — into the Endpoints and EndpointSlice
//! `default/kubernetes` when they differ. A server that dies stops renewing; its key expires
//! with its lease and the next pass of any live server drops its address (within 25 s), so pods
//! that reach the API through the Service's ClusterIP are not sent to it for long; one that
//! stops on SIGTERM takes its address away at once (`remove`). With one server this keeps its
//! own address there, as before.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{GetOptions, PutOptions};
use serde_json::{json, Value};

use crate::handlers::{ApiServer, Target};
use crate::resources;
use crate::server::system_ctx;
use crate::storage::prefix_end;

const PREFIX: &str = "/registry/masterleases/";
/// Upstream's `DefaultEndpointReconcilerTTL`.
const TTL_SECONDS: i64 = 15;
/// Upstream's `DefaultEndpointReconcilerInterval`.
const INTERVAL: Duration = Duration::from_secs(10);

/// Renews this server's lease and reconciles the endpoints until the process ends.
pub async fn run(server: Arc<ApiServer>, advertise: String, port: u16) {
    loop {
        if let Err(e) = pass(&server, &advertise, port).await {
            tracing::warn!("endpoint reconciler: {e:#}");
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

async fn pass(server: &ApiServer, advertise: &str, port: u16) -> anyhow::Result<()> {
    let mut client = server.storage.client();
    let lease = client.lease_grant(TTL_SECONDS, None).await?.id();
    let key = format!("{PREFIX}{advertise}");
    let record = json!({"kind": "Endpoints", "apiVersion": "v1",
        "subsets": [{"addresses": [{"ip": advertise}], "ports": [{"port": port, "protocol": "TCP"}]}]});
    client
        .put(
            key,
            serde_json::to_vec(&record)?,
            Some(PutOptions::new().with_lease(lease)),
        )
        .await?;
    let mut addresses = live_addresses(&mut client).await?;
    if !addresses.iter().any(|a| a == advertise) {
        addresses.push(advertise.to_string());
    }
    addresses.sort();
    reconcile(server, &addresses, port).await
}

/// Takes this server's lease key away and writes the endpoints without its address (upstream's
/// `RemoveEndpoints`). The last server's address stays: upstream refuses to erase every
/// endpoint of the `kubernetes` Service.
pub async fn remove(server: &ApiServer, advertise: &str, port: u16) -> anyhow::Result<()> {
    let mut client = server.storage.client();
    client.delete(format!("{PREFIX}{advertise}"), None).await?;
    let mut addresses = live_addresses(&mut client).await?;
    addresses.retain(|a| a != advertise);
    if addresses.is_empty() {
        return Ok(());
    }
    addresses.sort();
    reconcile(server, &addresses, port).await
}

/// The addresses of every server whose lease key is there.
async fn live_addresses(client: &mut etcd_client::Client) -> anyhow::Result<Vec<String>> {
    let live = client
        .get(
            PREFIX,
            Some(
                GetOptions::new()
                    .with_range(prefix_end(PREFIX))
                    .with_keys_only(),
            ),
        )
        .await?;
    Ok(live
        .kvs()
        .iter()
        .filter_map(|kv| kv.key_str().ok()?.strip_prefix(PREFIX).map(str::to_string))
        .collect())
}

/// Writes `addresses` into the `kubernetes` Endpoints and EndpointSlice where they differ.
async fn reconcile(server: &ApiServer, addresses: &[String], port: u16) -> anyhow::Result<()> {
    let endpoints = json!([{
        "addresses": addresses.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }]);
    update(server, "", "endpoints", |object| {
        (object["subsets"] != endpoints).then(|| object["subsets"] = endpoints.clone())
    })
    .await?;
    let slice_endpoints: Vec<Value> = addresses
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    let slice_endpoints = Value::Array(slice_endpoints);
    update(server, "discovery.k8s.io", "endpointslices", |object| {
        (object["endpoints"] != slice_endpoints)
            .then(|| object["endpoints"] = slice_endpoints.clone())
    })
    .await
}

/// Applies `change` to `default/kubernetes` of `resource` and writes it if it changed
/// anything (a conflict with another server's write waits for the next pass).
async fn update(
    server: &ApiServer,
    group: &str,
    resource: &str,
    change: impl Fn(&mut Value) -> Option<()>,
) -> anyhow::Result<()> {
    let info = resources::find(group, "v1", resource)
        .ok_or_else(|| anyhow::anyhow!("{resource} are not registered"))?;
    let Some(stored) = server
        .storage
        .get(&info.key(Some("default"), "kubernetes"))
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?
    else {
        return Ok(());
    };
    let mut object = stored.object;
    if change(&mut object).is_none() {
        return Ok(());
    }
    let target = Target {
        info,
        namespace: Some("default".into()),
        name: Some("kubernetes".into()),
        sub: None,
    };
    server
        .update(&target, &system_ctx(), object)
        .await
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("updating {resource} default/kubernetes: {}", e.message))
}
