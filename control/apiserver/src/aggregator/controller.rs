//! The aggregator's controllers as one loop fed by the APIService watch cache:
//!
//! - **autoregister** (upstream's `autoregister` and `crdregistration` controllers): a local
//!   APIService for every built-in group version, with upstream's group and version priorities
//!   (label `kube-aggregator.kubernetes.io/automanaged: onstart`, created when missing), and
//!   one for every custom group version (`automanaged: true`, priority 1000/100, deleted when
//!   its CRD goes);
//! - **availability** (`status/local` and `status/remote`): a local APIService is `Available`
//!   (`Local`, "Local APIServices are always available"); a remote one is checked as upstream
//!   checks it — the Service exists and has the port, its EndpointSlices have a ready address
//!   for that port, and `GET /apis/<group>/<version>` answers 2xx within five seconds, sent
//!   as `system:kube-aggregator` in `system:masters` — and gets upstream's reasons
//!   (`ServiceNotFound`, `ServicePortError`, `EndpointsNotFound`, `MissingEndpoints`,
//!   `FailedDiscoveryCheck`, `Passed`);
//! - the discovery document of each Available remote group version is kept for `/apis`.
//!
//! A pass runs on every APIService event, and every ten seconds (upstream resyncs its remote
//! checks every 30 s and also reacts to Service and EndpointSlice events, which skiff's loop
//! stands in for with the shorter period).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::{Remote, Routes};
use crate::handlers::{Shared, Target};
use crate::resources::{self, ResourceInfo, Sub};

pub const AUTOMANAGED_LABEL: &str = "kube-aggregator.kubernetes.io/automanaged";

/// Upstream's `apiVersionPriorities` (kube-apiserver's and the generic control plane's):
/// (group, version, groupPriorityMinimum, versionPriority) for the built-in versions skiff
/// serves. The aggregator's own group comes first, as upstream lists it.
const PRIORITIES: &[(&str, &str, i64, i64)] = &[
    ("", "v1", 18000, 1),
    ("apiregistration.k8s.io", "v1", 18000, 15),
    ("apps", "v1", 17800, 15),
    ("events.k8s.io", "v1", 17750, 15),
    ("authentication.k8s.io", "v1", 17700, 15),
    ("authorization.k8s.io", "v1", 17600, 15),
    ("autoscaling", "v2", 17500, 30),
    ("autoscaling", "v1", 17500, 15),
    ("batch", "v1", 17400, 15),
    ("certificates.k8s.io", "v1", 17300, 15),
    ("networking.k8s.io", "v1", 17200, 15),
    ("policy", "v1", 17100, 15),
    ("rbac.authorization.k8s.io", "v1", 17000, 15),
    ("storage.k8s.io", "v1", 16800, 15),
    ("apiextensions.k8s.io", "v1", 16700, 15),
    ("admissionregistration.k8s.io", "v1", 16700, 15),
    ("scheduling.k8s.io", "v1", 16600, 15),
    ("coordination.k8s.io", "v1", 16500, 15),
    ("node.k8s.io", "v1", 16300, 15),
    ("discovery.k8s.io", "v1", 16200, 15),
    ("resource.k8s.io", "v1", 16200, 21),
    ("flowcontrol.apiserver.k8s.io", "v1", 16100, 21),
    ("storagemigration.k8s.io", "v1", 15800, 15),
];

/// Custom resources' APIServices (`crdregistration_controller.go`).
const CRD_GROUP_PRIORITY: i64 = 1000;
const CRD_VERSION_PRIORITY: i64 = 100;

const PERIOD: Duration = Duration::from_secs(10);
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

fn api_services() -> &'static ResourceInfo {
    resources::find("apiregistration.k8s.io", "v1", "apiservices").expect("apiservices are served")
}

/// The APIService name of a group version (`v1.` for the core group).
pub fn name_of(group: &str, version: &str) -> String {
    format!("{version}.{group}")
}

/// Runs for as long as the server runs.
pub async fn run(server: Shared) {
    let info = api_services();
    let prefix = info.key_prefix();
    loop {
        let cacher = match server.caches.get(info).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("APIService controller: {}", e.message);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut rx = match cacher.start_watch(None, &prefix) {
            Ok(start) => start.rx,
            Err(e) => {
                tracing::warn!("APIService controller: {}", e.message);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            let (objects, _) = cacher.snapshot(&prefix);
            let objects: Vec<Value> = objects.iter().map(|o| (**o).clone()).collect();
            if register(&server, &objects).await {
                // What was created or deleted comes back as events: the next pass sees it.
                continue_after_events(&mut rx).await;
                continue;
            }
            let routes = reconcile(&server, &objects).await;
            server.aggregator.publish(routes);
            tokio::select! {
                event = rx.recv() => match event {
                    Ok(_) | Err(RecvError::Lagged(_)) => while rx.try_recv().is_ok() {},
                    Err(RecvError::Closed) => break,
                },
                _ = tokio::time::sleep(PERIOD) => {}
            }
        }
    }
}

async fn continue_after_events(
    rx: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<crate::cache::WatchEvent>>,
) {
    let _ = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await;
    while rx.try_recv().is_ok() {}
}

/// The local APIServices there should be: (name, group, version, priorities, automanaged).
fn wanted(server: &Shared) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let served = resources::group_versions();
    for (group, version, group_priority, version_priority) in PRIORITIES {
        if !served.contains(&(*group, *version)) {
            continue;
        }
        out.push((
            name_of(group, version),
            json!({"metadata": {"name": name_of(group, version), "labels": {AUTOMANAGED_LABEL: "onstart"}},
                   "spec": {"group": group, "version": version, "groupPriorityMinimum": group_priority,
                            "versionPriority": version_priority}}),
        ));
    }
    let mut custom: Vec<(&str, &str)> = Vec::new();
    for r in server.custom.all() {
        if !custom.contains(&(r.group, r.version)) && !served.contains(&(r.group, r.version)) {
            custom.push((r.group, r.version));
        }
    }
    for (group, version) in custom {
        out.push((
            name_of(group, version),
            json!({"metadata": {"name": name_of(group, version), "labels": {AUTOMANAGED_LABEL: "true"}},
                   "spec": {"group": group, "version": version, "groupPriorityMinimum": CRD_GROUP_PRIORITY,
                            "versionPriority": CRD_VERSION_PRIORITY}}),
        ));
    }
    out
}

/// Creates the missing local APIServices and deletes the custom ones whose CRD is gone;
/// returns whether anything changed.
async fn register(server: &Shared, existing: &[Value]) -> bool {
    let info = api_services();
    let ctx = crate::server::system_ctx();
    let wanted = wanted(server);
    let name_of_object = |o: &Value| {
        o.pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let have: Vec<String> = existing.iter().filter_map(name_of_object).collect();
    let mut changed = false;
    for (name, object) in &wanted {
        if have.contains(name) {
            continue;
        }
        let target = Target {
            info,
            namespace: None,
            name: None,
            sub: None,
        };
        match server.create(&target, &ctx, object.clone()).await {
            Ok(_) => changed = true,
            Err(e) if e.code == 409 => {}
            Err(e) => tracing::warn!("registering APIService {name}: {}", e.message),
        }
    }
    for object in existing {
        let continuous = object
            .pointer("/metadata/labels")
            .and_then(|l| l.get(AUTOMANAGED_LABEL))
            .and_then(Value::as_str)
            == Some("true");
        let Some(name) = name_of_object(object) else {
            continue;
        };
        if !continuous || wanted.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let target = Target {
            info,
            namespace: None,
            name: Some(name.clone()),
            sub: None,
        };
        match server.delete(&target, &ctx, &json!({})).await {
            Ok(_) => changed = true,
            Err(e) if e.code == 404 => {}
            Err(e) => tracing::warn!("removing APIService {name}: {}", e.message),
        }
    }
    changed
}

/// An `Available` condition: (status, reason, message).
type Availability = (&'static str, &'static str, String);

/// Checks every APIService, writes the conditions that changed, and returns the routes.
async fn reconcile(server: &Shared, objects: &[Value]) -> Routes {
    let mut remote = BTreeMap::new();
    let previous = server.aggregator.routes();
    for object in objects {
        let spec = &object["spec"];
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let group = spec["group"].as_str().unwrap_or_default().to_string();
        let version = spec["version"].as_str().unwrap_or_default().to_string();
        let service = spec.get("service").filter(|s| !s.is_null());
        let Some(service) = service else {
            let local = (
                "True",
                "Local",
                "Local APIServices are always available".to_string(),
            );
            write_condition(server, object, local).await;
            continue;
        };
        let mut entry = Remote {
            name: name.to_string(),
            group: group.clone(),
            version: version.clone(),
            group_priority: spec["groupPriorityMinimum"].as_i64().unwrap_or(0),
            version_priority: spec["versionPriority"].as_i64().unwrap_or(0),
            service: service.clone(),
            ca_bundle: spec["caBundle"].as_str().unwrap_or_default().to_string(),
            insecure_skip_tls_verify: spec["insecureSkipTLSVerify"].as_bool().unwrap_or(false),
            available: false,
            // A backend that stops answering keeps its last discovery (upstream marks it Stale).
            resources: previous
                .find(&group, &version)
                .and_then(|r| r.resources.clone()),
        };
        let (availability, resources) = check(server, &entry).await;
        entry.available = availability.0 == "True";
        if resources.is_some() {
            entry.resources = resources;
        }
        write_condition(server, object, availability).await;
        remote.insert((group, version), entry);
    }
    Routes { remote }
}

/// Upstream's remote availability check; with a good answer, the backend's resource list.
async fn check(server: &Shared, remote: &Remote) -> (Availability, Option<Value>) {
    let namespace = remote.service["namespace"].as_str().unwrap_or_default();
    let name = remote.service["name"].as_str().unwrap_or_default();
    let port = remote.service["port"].as_i64().unwrap_or(443);
    let lookup: &dyn crate::registry::Lookup = server.as_ref();
    let service = match lookup.get("", "services", Some(namespace), name).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            let message = format!("service/{name} in {namespace:?} is not present");
            return (("False", "ServiceNotFound", message), None);
        }
        Err(e) => {
            let message = format!(
                "service/{name} in {namespace:?} cannot be checked due to: {}",
                e.message
            );
            return (("Unknown", "ServiceAccessError", message), None);
        }
    };
    if service
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        == "ClusterIP"
    {
        let ports = service.pointer("/spec/ports").and_then(Value::as_array);
        let Some(port_name) = ports
            .into_iter()
            .flatten()
            .find(|p| p["port"].as_i64() == Some(port))
            .map(|p| p["name"].as_str().unwrap_or_default().to_string())
        else {
            let message =
                format!("service/{name} in {namespace:?} is not listening on port {port}");
            return (("False", "ServicePortError", message), None);
        };
        let slices = match lookup
            .list_in("discovery.k8s.io", "endpointslices", namespace)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                let message = format!(
                    "service/{name} in {namespace:?} cannot be checked due to: {}",
                    e.message
                );
                return (("Unknown", "EndpointsAccessError", message), None);
            }
        };
        let slices: Vec<&Value> = slices
            .iter()
            .map(|s| s.as_ref())
            .filter(|s| {
                s.pointer("/metadata/labels/kubernetes.io~1service-name")
                    .and_then(Value::as_str)
                    == Some(name)
            })
            .collect();
        if slices.is_empty() {
            let message = format!("cannot find endpointslices for service/{name} in {namespace:?}");
            return (("False", "EndpointsNotFound", message), None);
        }
        if !slices.iter().any(|s| has_ready_address(s, &port_name)) {
            let message = format!(
                "endpointslices for service/{name} in {namespace:?} have no addresses with port name {port_name:?}"
            );
            return (("False", "MissingEndpoints", message), None);
        }
    }
    let url = format!(
        "https://{name}.{namespace}.svc:{port}/apis/{}/{}",
        remote.group, remote.version
    );
    match tokio::time::timeout(CHECK_TIMEOUT, fetch_discovery(server, remote)).await {
        Ok(Ok(list)) => (
            ("True", "Passed", "all checks passed".to_string()),
            Some(list),
        ),
        Ok(Err(e)) => {
            let message = format!("failing or missing response from {url}: {e}");
            (("False", "FailedDiscoveryCheck", message), None)
        }
        Err(_) => {
            let message = format!(
                "failing or missing response from {url}: Get {url:?}: context deadline exceeded"
            );
            (("False", "FailedDiscoveryCheck", message), None)
        }
    }
}

/// Upstream's `hasAvailableEndpoint`: a ready endpoint with an address, in a slice that has
/// the port.
fn has_ready_address(slice: &Value, port_name: &str) -> bool {
    let has_port = slice["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["name"].as_str().unwrap_or_default() == port_name);
    has_port
        && slice["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| {
                e.pointer("/conditions/ready") != Some(&Value::Bool(false))
                    && e["addresses"].as_array().is_some_and(|a| !a.is_empty())
            })
}

/// `GET /apis/<group>/<version>` on the backend as the aggregator itself.
async fn fetch_discovery(server: &Shared, remote: &Remote) -> Result<Value, String> {
    let location = super::proxy::location(server, remote).await?;
    let path = format!("/apis/{}/{}", remote.group, remote.version);
    let mut request = axum::http::Request::get(&path)
        .header(axum::http::header::ACCEPT, "application/json")
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let aggregator = crate::auth::UserInfo {
        name: "system:kube-aggregator".into(),
        groups: vec!["system:masters".into()],
        ..Default::default()
    };
    super::proxy::set_identity(request.headers_mut(), &aggregator);
    let response = crate::proxy::forward(request, &location, "", &path)
        .await
        .map_err(|e| e.message)?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "bad status from https://{}:{}{path}: {}",
            location.host,
            location.port,
            status.as_u16()
        ));
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let list: Value =
        serde_json::from_slice(&body).map_err(|e| format!("decoding the discovery answer: {e}"))?;
    if list["kind"] != "APIResourceList" {
        return Err("the discovery answer is not an APIResourceList".into());
    }
    Ok(list)
}

/// Writes `availability` as the object's `Available` condition when it differs from what is
/// there (the transition time moves only when the status does).
async fn write_condition(server: &Shared, object: &Value, (status, reason, message): Availability) {
    let conditions = object
        .pointer("/status/conditions")
        .and_then(Value::as_array);
    let current = conditions
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Available");
    if let Some(c) = current {
        if c["status"] == status && c["reason"] == reason && c["message"] == message.as_str() {
            return;
        }
    }
    let transition = match current {
        Some(c) if c["status"] == status => c["lastTransitionTime"].clone(),
        _ => json!(crate::timestamps::now_rfc3339()),
    };
    let mut updated = object.clone();
    let mut others: Vec<Value> = conditions
        .into_iter()
        .flatten()
        .filter(|c| c["type"] != "Available")
        .cloned()
        .collect();
    others.push(
        json!({"type": "Available", "status": status, "lastTransitionTime": transition,
                       "reason": reason, "message": message}),
    );
    updated["status"] = json!({"conditions": others});
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let target = Target {
        info: api_services(),
        namespace: None,
        name: Some(name.to_string()),
        sub: Some(Sub::Status),
    };
    if let Err(e) = server
        .update(&target, &crate::server::system_ctx(), updated)
        .await
    {
        // A conflict means a newer object: the event it made brings another pass.
        if e.code != 409 && e.code != 404 {
            tracing::warn!("APIService {name} status: {}", e.message);
        }
    }
}
