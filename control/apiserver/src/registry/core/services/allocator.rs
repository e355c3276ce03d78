//! Service ClusterIP (10.96.0.0/12, the `kubernetes` ServiceCIDR) and NodePort (30000–32767,
//! also `healthCheckNodePort` of a LoadBalancer with `externalTrafficPolicy: Local`) allocation.
//! Each allocation is a key created and deleted in the same transaction as the Service, so
//! concurrent creates on any number of API servers can never hand out one address twice, and a
//! deleted Service releases its addresses. A ClusterIP's key is its IPAddress object
//! (networking.k8s.io/v1, `/registry/networking.k8s.io/ipaddresses/<ip>`, parentRef = the
//! Service), as upstream's allocator keeps it since 1.33, so `kubectl get ipaddresses` is the
//! allocator's real state; node ports are `/registry/ranges/servicenodeports/<port>`.

use std::net::Ipv4Addr;

use rand::Rng;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult, FieldError, Kind};
use crate::storage::{Extra, Storage};

/// The default ServiceCIDR (`kubernetes`) the addresses come from.
pub const SERVICE_CIDR: &str = "10.96.0.0/12";
pub const SERVICE_CIDR_BASE: u32 = u32::from_be_bytes([10, 96, 0, 0]);
pub const SERVICE_CIDR_SIZE: u32 = 1 << 20; // /12
pub const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";
pub const NODE_PORT_MIN: i64 = 30000;
pub const NODE_PORT_MAX: i64 = 32767;

/// What allocation errors name.
const SERVICES: Kind<'static> = Kind {
    group: "",
    resource: "services",
    kind: "Service",
};

fn ip_key(ip: &str) -> String {
    format!("/registry/networking.k8s.io/ipaddresses/{ip}")
}

/// The IPAddress object that holds `ip` for the Service `namespace/name` (upstream's
/// `ipallocator` labels and parentRef).
fn ip_address(ip: &str, namespace: &str, name: &str) -> Vec<u8> {
    let object = json!({
        "kind": "IPAddress",
        "apiVersion": "networking.k8s.io/v1",
        "metadata": {
            "name": ip,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": crate::timestamps::now_rfc3339(),
            "labels": {
                "ipaddress.kubernetes.io/ip-family": "IPv4",
                "ipaddress.kubernetes.io/managed-by": "ipallocator.k8s.io",
            },
        },
        "spec": {"parentRef": {"group": "", "resource": "services", "namespace": namespace, "name": name}},
    });
    crate::storage::encode_value(&object)
}

fn port_key(port: i64) -> String {
    format!("/registry/ranges/servicenodeports/{port}")
}

fn in_range(ip: Ipv4Addr) -> bool {
    let n = u32::from(ip);
    n > SERVICE_CIDR_BASE && n < SERVICE_CIDR_BASE + SERVICE_CIDR_SIZE - 1
}

fn cluster_ip(spec: &Value) -> Option<&str> {
    spec.get("clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn node_ports(spec: &Value) -> Vec<i64> {
    spec.get("ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                .filter(|n| *n != 0)
                .collect()
        })
        .unwrap_or_default()
}

fn health_check_node_port(spec: &Value) -> Option<i64> {
    spec.get("healthCheckNodePort")
        .and_then(Value::as_i64)
        .filter(|n| *n != 0)
}

/// Everything a service holds, for release on delete.
pub fn held_keys(service: &Value) -> Vec<String> {
    let spec = &service["spec"];
    let mut keys = Vec::new();
    if let Some(ip) = cluster_ip(spec).filter(|ip| *ip != "None") {
        keys.push(ip_key(ip));
    }
    keys.extend(node_ports(spec).into_iter().map(port_key));
    keys.extend(health_check_node_port(spec).map(port_key));
    keys
}

/// Fills in `spec.clusterIP(s)` and node ports of `new` (keeping those of `old` on update) and
/// returns the keys to create and delete with the write.
pub async fn allocate(
    storage: &Storage,
    old: Option<&Value>,
    new: &mut Value,
    owner: &str,
) -> ApiResult<Extra> {
    let info = SERVICES;
    let name = new["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let namespace = new["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut extra = Extra::default();
    let kind = new["spec"]["type"]
        .as_str()
        .unwrap_or("ClusterIP")
        .to_string();
    let old_spec = old.map(|o| o["spec"].clone()).unwrap_or(Value::Null);

    // Cluster IP.
    let old_ip = cluster_ip(&old_spec).map(str::to_string);
    if kind == "ExternalName" {
        if let Some(spec) = new["spec"].as_object_mut() {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        if let Some(ip) = old_ip.filter(|ip| ip != "None") {
            extra.deletes.push(ip_key(&ip));
        }
    } else {
        let wanted = cluster_ip(&new["spec"]).map(str::to_string);
        let ip = match (wanted, old_ip) {
            (_, Some(old)) => old,
            (Some(w), None) if w == "None" => w,
            (Some(w), None) => {
                let parsed: Option<Ipv4Addr> = w.parse().ok();
                let why = match parsed {
                    None => Some("must be a valid IP address"),
                    Some(ip) if !in_range(ip) => Some("provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12"),
                    Some(_) if storage.get_raw(&ip_key(&w)).await?.is_some() => Some("provided IP is already allocated"),
                    Some(_) => None,
                };
                if let Some(why) = why {
                    return Err(ApiError::invalid(
                        info,
                        &name,
                        vec![FieldError::invalid(
                            "spec.clusterIPs",
                            &json!([w]),
                            format!("failed to allocate IP {w}: {why}"),
                        )],
                    ));
                }
                extra
                    .creates
                    .push((ip_key(&w), ip_address(&w, &namespace, &name)));
                w
            }
            (None, None) => {
                let ip = free_ip(storage).await?;
                extra
                    .creates
                    .push((ip_key(&ip), ip_address(&ip, &namespace, &name)));
                ip
            }
        };
        new["spec"]["clusterIP"] = json!(ip);
        new["spec"]["clusterIPs"] = json!([ip]);
    }

    // Node ports.
    let old_ports = node_ports(&old_spec);
    let wants_node_ports = kind == "NodePort"
        || (kind == "LoadBalancer"
            && new["spec"]["allocateLoadBalancerNodePorts"].as_bool() != Some(false));
    let mut kept = Vec::new();
    if let Some(ports) = new["spec"]["ports"].as_array_mut() {
        for (i, port) in ports.iter_mut().enumerate() {
            if !wants_node_ports {
                if let Some(p) = port.as_object_mut() {
                    p.remove("nodePort");
                }
                continue;
            }
            let requested = port
                .get("nodePort")
                .and_then(Value::as_i64)
                .filter(|n| *n != 0);
            let previous = old_spec["ports"]
                .get(i)
                .and_then(|p| p.get("nodePort"))
                .and_then(Value::as_i64);
            let chosen = match requested.or(previous) {
                Some(n) if old_ports.contains(&n) => n,
                Some(n) => {
                    let field = format!("spec.ports[{i}].nodePort");
                    claim_port(storage, &kept, n, &name, &field).await?;
                    extra.creates.push((port_key(n), owner.as_bytes().to_vec()));
                    n
                }
                None => {
                    let n = free_port(storage, &kept).await?;
                    extra.creates.push((port_key(n), owner.as_bytes().to_vec()));
                    n
                }
            };
            kept.push(chosen);
            port["nodePort"] = json!(chosen);
        }
    }
    for p in old_ports {
        if !kept.contains(&p) {
            extra.deletes.push(port_key(p));
        }
    }

    // The health-check node port: LoadBalancer with externalTrafficPolicy Local only; dropped
    // (and released) when the Service stops being one, as upstream's strategy does.
    let old_health = health_check_node_port(&old_spec);
    let requested = health_check_node_port(&new["spec"]);
    let wants_health =
        kind == "LoadBalancer" && new["spec"]["externalTrafficPolicy"].as_str() == Some("Local");
    if !wants_health {
        if let (Some(n), true) = (requested, requested != old_health) {
            return Err(ApiError::invalid(
                info,
                &name,
                vec![FieldError::invalid(
                    "spec.healthCheckNodePort",
                    &json!(n),
                    "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
                )],
            ));
        }
        if let Some(spec) = new["spec"].as_object_mut() {
            spec.remove("healthCheckNodePort");
        }
        if let Some(n) = old_health {
            extra.deletes.push(port_key(n));
        }
        return Ok(extra);
    }
    let chosen = match requested.or(old_health) {
        Some(n) if Some(n) == old_health => n,
        Some(n) => {
            claim_port(storage, &kept, n, &name, "spec.healthCheckNodePort").await?;
            extra.creates.push((port_key(n), owner.as_bytes().to_vec()));
            n
        }
        None => {
            let n = free_port(storage, &kept).await?;
            extra.creates.push((port_key(n), owner.as_bytes().to_vec()));
            n
        }
    };
    if let Some(old) = old_health.filter(|o| *o != chosen) {
        extra.deletes.push(port_key(old));
    }
    new["spec"]["healthCheckNodePort"] = json!(chosen);
    Ok(extra)
}

/// Checks that a requested node port `n` (for `field`) is in range and free (neither held in
/// storage nor in `taken` by this write).
async fn claim_port(
    storage: &Storage,
    taken: &[i64],
    n: i64,
    name: &str,
    field: &str,
) -> ApiResult<()> {
    let why = if !(NODE_PORT_MIN..=NODE_PORT_MAX).contains(&n) {
        format!("provided port is not in the valid range. The range of valid ports is {NODE_PORT_MIN}-{NODE_PORT_MAX}")
    } else if taken.contains(&n) || storage.get_raw(&port_key(n)).await?.is_some() {
        "provided port is already allocated".to_string()
    } else {
        return Ok(());
    };
    Err(ApiError::invalid(
        SERVICES,
        name,
        vec![FieldError::invalid(field, &json!(n), why)],
    ))
}

async fn free_ip(storage: &Storage) -> ApiResult<String> {
    for _ in 0..64 {
        // .0 is the network, .1 the kubernetes service, the last address the broadcast.
        let offset = rand::rng().random_range(2..SERVICE_CIDR_SIZE - 1);
        let ip = Ipv4Addr::from(SERVICE_CIDR_BASE + offset).to_string();
        if storage.get_raw(&ip_key(&ip)).await?.is_none() {
            return Ok(ip);
        }
    }
    Err(ApiError::internal(
        "failed to allocate a service IP: range is full",
    ))
}

async fn free_port(storage: &Storage, taken: &[i64]) -> ApiResult<i64> {
    for _ in 0..256 {
        let n = rand::rng().random_range(NODE_PORT_MIN..=NODE_PORT_MAX);
        if !taken.contains(&n) && storage.get_raw(&port_key(n)).await?.is_none() {
            return Ok(n);
        }
    }
    Err(ApiError::internal(
        "failed to allocate a node port: range is full",
    ))
}
