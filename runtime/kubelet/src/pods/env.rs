//! A container's environment (upstream's `makeEnvironmentVariables`): `envFrom`, then `env`
//! with `$(VAR)` expansion and `valueFrom`, then the service links the container did not set.
//! Also the expansion of `$(VAR)` in command and args.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::{Api, ListParams};
use kube::Client;

use crate::node::machine::{quantity_bytes, quantity_millicpu};

/// Why a container's configuration cannot be made (upstream: CreateContainerConfigError).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The facts `fieldRef` and `resourceFieldRef` read besides the pod itself.
pub struct Facts<'a> {
    pub host_ip: &'a str,
    pub pod_ips: &'a [String],
    pub node_allocatable_millicpu: u64,
    pub node_allocatable_memory: u64,
}

pub async fn environment(
    client: &Client,
    pod: &Pod,
    container: &Container,
    facts: &Facts<'_>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(slot) = vars.iter_mut().find(|(n, _)| *n == k) {
            slot.1 = v;
        } else {
            vars.push((k, v));
        }
    };
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        if let Some(r) = &source.config_map_ref {
            let optional = r.optional.unwrap_or(false);
            match get::<ConfigMap>(client, &namespace, &r.name).await? {
                Some(cm) => {
                    for (k, v) in cm.data.unwrap_or_default() {
                        set(&mut vars, format!("{prefix}{k}"), v);
                    }
                }
                None if optional => {}
                None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &source.secret_ref {
            let optional = r.optional.unwrap_or(false);
            match get::<Secret>(client, &namespace, &r.name).await? {
                Some(secret) => {
                    for (k, v) in secret.data.unwrap_or_default() {
                        set(
                            &mut vars,
                            format!("{prefix}{k}"),
                            String::from_utf8_lossy(&v.0).into_owned(),
                        );
                    }
                }
                None if optional => {}
                None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    // Service links come last but `$(VAR)` in env may refer to them.
    let services = service_env(client, pod, &namespace).await;
    for var in container.env.iter().flatten() {
        let value = if let Some(value) = &var.value {
            let mut lookup: BTreeMap<String, String> = services.iter().cloned().collect();
            lookup.extend(vars.iter().cloned());
            expand(value, &lookup)
        } else if let Some(from) = &var.value_from {
            if let Some(field) = &from.field_ref {
                field_value(pod, &field.field_path, facts).ok_or_else(|| {
                    ConfigError(format!("unsupported fieldPath {:?}", field.field_path))
                })?
            } else if let Some(resource) = &from.resource_field_ref {
                let target = match &resource.container_name {
                    Some(name) if !name.is_empty() => all_containers(pod)
                        .find(|c| &c.name == name)
                        .ok_or_else(|| {
                            ConfigError(format!(
                                "container {name:?} not found for resourceFieldRef"
                            ))
                        })?,
                    _ => container.clone(),
                };
                resource_value(
                    &target,
                    &resource.resource,
                    resource.divisor.as_ref().map(|d| d.0.as_str()),
                    facts,
                )
                .ok_or_else(|| {
                    ConfigError(format!("unsupported resource {:?}", resource.resource))
                })?
            } else if let Some(key) = &from.config_map_key_ref {
                let optional = key.optional.unwrap_or(false);
                match get::<ConfigMap>(client, &namespace, &key.name).await? {
                    Some(cm) => match cm.data.unwrap_or_default().get(&key.key) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(ConfigError(format!(
                                "couldn't find key {} in ConfigMap {namespace}/{}",
                                key.key, key.name
                            )))
                        }
                    },
                    None if optional => continue,
                    None => {
                        return Err(ConfigError(format!("configmap \"{}\" not found", key.name)))
                    }
                }
            } else if let Some(key) = &from.secret_key_ref {
                let optional = key.optional.unwrap_or(false);
                match get::<Secret>(client, &namespace, &key.name).await? {
                    Some(secret) => match secret.data.unwrap_or_default().get(&key.key) {
                        Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(ConfigError(format!(
                                "couldn't find key {} in Secret {namespace}/{}",
                                key.key, key.name
                            )))
                        }
                    },
                    None if optional => continue,
                    None => return Err(ConfigError(format!("secret \"{}\" not found", key.name))),
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut vars, var.name.clone(), value);
    }
    for (k, v) in services {
        if !vars.iter().any(|(n, _)| *n == k) {
            vars.push((k, v));
        }
    }
    Ok(vars)
}

fn all_containers(pod: &Pod) -> impl Iterator<Item = Container> + '_ {
    let spec = pod.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        })
        .cloned()
}

async fn get<K>(client: &Client, namespace: &str, name: &str) -> Result<Option<K>, ConfigError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| ConfigError(format!("reading {} {namespace}/{name}: {e}", K::kind(&()))))
}

/// `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`, anything else stays
/// as written (upstream's third_party/forked/golang/expansion).
pub fn expand(input: &str, vars: &BTreeMap<String, String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(close) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + close];
                        match vars.get(name) {
                            Some(v) => out.push_str(v),
                            None => out.push_str(&input[i..i + 3 + close]),
                        }
                        i += 3 + close;
                        continue;
                    }
                }
                _ => {}
            }
        }
        let ch = input[i..].chars().next().unwrap_or_default();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn field_value(pod: &Pod, path: &str, facts: &Facts) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let bracket = |prefix: &str| -> Option<String> {
        let rest = path
            .strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")?;
        Some(rest.to_string())
    };
    if let Some(key) = bracket("metadata.labels") {
        return Some(meta.labels.as_ref()?.get(&key).cloned().unwrap_or_default());
    }
    if let Some(key) = bracket("metadata.annotations") {
        return Some(
            meta.annotations
                .as_ref()?
                .get(&key)
                .cloned()
                .unwrap_or_default(),
        );
    }
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec?.node_name.clone().unwrap_or_default(),
        "spec.serviceAccountName" => spec?.service_account_name.clone().unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.to_string(),
        "status.podIP" => facts.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => facts.pod_ips.join(","),
        _ => return None,
    })
}

fn resource_value(
    c: &Container,
    resource: &str,
    divisor: Option<&str>,
    facts: &Facts,
) -> Option<String> {
    let resources = c.resources.clone().unwrap_or_default();
    let limits = resources.limits.unwrap_or_default();
    let requests = resources.requests.unwrap_or_default();
    let (map, name) = resource.split_once('.')?;
    let source = if map == "limits" {
        &limits
    } else if map == "requests" {
        &requests
    } else {
        return None;
    };
    match name {
        "cpu" => {
            let millis = source
                .get("cpu")
                .and_then(|q| quantity_millicpu(&q.0))
                .unwrap_or(if map == "limits" {
                    facts.node_allocatable_millicpu
                } else {
                    0
                });
            let divisor = divisor
                .and_then(quantity_millicpu)
                .filter(|d| *d > 0)
                .unwrap_or(1000);
            Some(millis.div_ceil(divisor).to_string())
        }
        "memory" | "ephemeral-storage" => {
            let bytes = source
                .get(name)
                .and_then(|q| quantity_bytes(&q.0))
                .unwrap_or(if map == "limits" && name == "memory" {
                    facts.node_allocatable_memory
                } else {
                    0
                });
            let divisor = divisor
                .and_then(quantity_bytes)
                .filter(|d| *d > 0)
                .unwrap_or(1);
            Some(bytes.div_ceil(divisor).to_string())
        }
        _ => None,
    }
}

/// Docker-link-style variables for the namespace's services (and `kubernetes` from default,
/// which every pod gets); only `kubernetes` when enableServiceLinks is false.
async fn service_env(client: &Client, pod: &Pod, namespace: &str) -> Vec<(String, String)> {
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut services: Vec<Service> = Vec::new();
    if links {
        if let Ok(list) = Api::<Service>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await
        {
            services.extend(list.items);
        }
    }
    if namespace != "default" || !links {
        if let Ok(Some(k)) = Api::<Service>::namespaced(client.clone(), "default")
            .get_opt("kubernetes")
            .await
        {
            services.retain(|s| s.metadata.name.as_deref() != Some("kubernetes"));
            services.push(k);
        }
    }
    services.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut vars = Vec::new();
    for service in services {
        vars.extend(service_vars(&service));
    }
    vars
}

pub fn service_vars(service: &Service) -> Vec<(String, String)> {
    let spec = service.spec.clone().unwrap_or_default();
    let ip = match spec.cluster_ip.as_deref() {
        Some(ip) if !ip.is_empty() && ip != "None" => ip.to_string(),
        _ => return Vec::new(),
    };
    let ports = spec.ports.unwrap_or_default();
    let Some(first) = ports.first() else {
        return Vec::new();
    };
    let name = service
        .metadata
        .name
        .clone()
        .unwrap_or_default()
        .to_uppercase()
        .replace('-', "_");
    let mut vars = vec![
        (format!("{name}_SERVICE_HOST"), ip.clone()),
        (format!("{name}_SERVICE_PORT"), first.port.to_string()),
    ];
    for p in &ports {
        if let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            vars.push((
                format!(
                    "{name}_SERVICE_PORT_{}",
                    port_name.to_uppercase().replace('-', "_")
                ),
                p.port.to_string(),
            ));
        }
    }
    let proto = |p: &k8s_openapi::api::core::v1::ServicePort| {
        p.protocol.clone().unwrap_or_else(|| "TCP".into())
    };
    vars.push((
        format!("{name}_PORT"),
        format!("{}://{ip}:{}", proto(first).to_lowercase(), first.port),
    ));
    for p in &ports {
        let protocol = proto(p);
        let prefix = format!("{name}_PORT_{}_{}", p.port, protocol.to_uppercase());
        vars.push((
            prefix.clone(),
            format!("{}://{ip}:{}", protocol.to_lowercase(), p.port),
        ));
        vars.push((format!("{prefix}_PROTO"), protocol.to_lowercase()));
        vars.push((format!("{prefix}_PORT"), p.port.to_string()));
        vars.push((format!("{prefix}_ADDR"), ip.clone()));
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expansion_as_upstream() {
        let vars = BTreeMap::from([
            ("A".to_string(), "x".to_string()),
            ("B".to_string(), "$(A)".to_string()),
        ]);
        assert_eq!(expand("$(A)-$(B)", &vars), "x-$(A)");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("$(MISSING) $(A", &vars), "$(MISSING) $(A");
        assert_eq!(expand("é$(A)$", &vars), "éx$");
    }

    #[test]
    fn service_link_variables() {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "web-api"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}, {"port": 53, "protocol": "UDP"}]}
        }))
        .unwrap();
        let vars: BTreeMap<String, String> = service_vars(&service).into_iter().collect();
        assert_eq!(vars["WEB_API_SERVICE_HOST"], "10.96.0.20");
        assert_eq!(vars["WEB_API_SERVICE_PORT"], "80");
        assert_eq!(vars["WEB_API_SERVICE_PORT_HTTP"], "80");
        assert_eq!(vars["WEB_API_PORT"], "tcp://10.96.0.20:80");
        assert_eq!(vars["WEB_API_PORT_53_UDP"], "udp://10.96.0.20:53");
        assert_eq!(vars["WEB_API_PORT_53_UDP_ADDR"], "10.96.0.20");
        let headless: Service = serde_json::from_value(json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}})).unwrap();
        assert!(service_vars(&headless).is_empty());
    }

    #[test]
    fn field_and_resource_refs() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}}]}
        }))
        .unwrap();
        let facts = Facts {
            host_ip: "192.168.56.11",
            pod_ips: &["10.244.1.5".to_string()],
            node_allocatable_millicpu: 2000,
            node_allocatable_memory: 1 << 30,
        };
        assert_eq!(
            field_value(&pod, "metadata.labels['app']", &facts).unwrap(),
            "web"
        );
        assert_eq!(
            field_value(&pod, "status.podIP", &facts).unwrap(),
            "10.244.1.5"
        );
        assert_eq!(field_value(&pod, "spec.nodeName", &facts).unwrap(), "n1");
        let c = &pod.spec.as_ref().unwrap().containers[0];
        assert_eq!(
            resource_value(c, "limits.memory", Some("1Mi"), &facts).unwrap(),
            "64"
        );
        assert_eq!(
            resource_value(c, "requests.cpu", Some("1m"), &facts).unwrap(),
            "250"
        );
        assert_eq!(
            resource_value(c, "requests.cpu", None, &facts).unwrap(),
            "1"
        );
        assert_eq!(resource_value(c, "limits.cpu", None, &facts).unwrap(), "2");
    }
}
