//! API discovery: legacy (`APIVersions`, `APIGroupList`, `APIResourceList`, for Python and kube-rs)
//! and aggregated v2 (`APIGroupDiscoveryList`, what kubectl asks for first), both built from the
//! resource registry: the built-in table, then the custom resources of Established CRDs
//! (`customresource::Registry`), which change while the server runs — discovery is built per
//! request, so a new CRD shows up in the next discovery read. Group versions served by
//! extension API servers (`aggregator::Routes`) follow the local groups, by their APIServices'
//! priorities; their resources come from each backend's last resource list.

use serde_json::{json, Value};

use crate::aggregator::Routes;
use crate::customresource::Registry;
use crate::resources::{group_versions, ResourceInfo, RESOURCES};

pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// kubectl offers aggregated discovery in its Accept header; others get the legacy documents.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        part.contains("g=apidiscovery.k8s.io")
            && part.contains("as=APIGroupDiscoveryList")
            && part.contains("v=v2")
            && !part.contains("v=v2beta1")
    })
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// Every served group version: built-ins in their order, then custom groups (versions by
/// Kubernetes' priority, the preferred first).
fn all_group_versions(custom: &Registry) -> Vec<(&'static str, &'static str)> {
    let mut out = group_versions();
    for r in custom.all() {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// Whether this server serves `group/version` itself (built in, or a custom resource's).
pub fn served_locally(custom: &Registry, group: &str, version: &str) -> bool {
    RESOURCES
        .iter()
        .chain(custom.all())
        .any(|r| r.group == group && r.version == version)
}

fn group_entry(custom: &Registry, group: &str) -> Value {
    let versions: Vec<Value> = all_group_versions(custom)
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": versions.clone(), "preferredVersion": versions[0].clone()})
}

fn groups(custom: &Registry) -> Vec<&'static str> {
    let mut out = Vec::new();
    for (g, _) in all_group_versions(custom) {
        if !g.is_empty() && !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

/// The groups only extension servers serve, in their order.
fn remote_groups(custom: &Registry, remote: &Routes) -> Vec<String> {
    let local = groups(custom);
    remote
        .groups()
        .into_iter()
        .filter(|g| !local.contains(&g.as_str()))
        .collect()
}

/// A remote group's discovery entry (upstream's `convertToDiscoveryAPIGroup`).
fn remote_group_entry(remote: &Routes, group: &str) -> Value {
    let versions: Vec<Value> = remote
        .versions_of(group)
        .into_iter()
        .map(|r| json!({"groupVersion": format!("{group}/{}", r.version), "version": r.version}))
        .collect();
    json!({"name": group, "versions": versions.clone(), "preferredVersion": versions[0].clone()})
}

pub fn api_group_list(custom: &Registry, remote: &Routes) -> Value {
    let mut groups: Vec<Value> = groups(custom)
        .into_iter()
        .map(|g| group_entry(custom, g))
        .collect();
    for g in remote_groups(custom, remote) {
        groups.push(remote_group_entry(remote, &g));
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(custom: &Registry, remote: &Routes, group: &str) -> Option<Value> {
    let mut g = if groups(custom).contains(&group) {
        group_entry(custom, group)
    } else if remote_groups(custom, remote).iter().any(|g| g == group) {
        remote_group_entry(remote, group)
    } else {
        return None;
    };
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    Some(g)
}

fn in_gv(custom: &Registry, group: &str, version: &str) -> Vec<&'static ResourceInfo> {
    RESOURCES
        .iter()
        .chain(custom.all())
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

pub fn resource_list(custom: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in in_gv(custom, group, version) {
        let mut entry = json!({
            "name": r.resource,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for sub in r.subresources {
            let (g, v, kind, verbs) = sub.discovery(r);
            let mut e = json!({"name": format!("{}/{}", r.resource, sub.name()), "singularName": "", "namespaced": r.namespaced, "kind": kind, "verbs": verbs});
            if g != r.group || v != r.version {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            resources.push(e);
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn aggregated_group(custom: &Registry, group: &str) -> Value {
    let versions: Vec<Value> = all_group_versions(custom)
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| {
            let resources: Vec<Value> = in_gv(custom, g, v)
                .into_iter()
                .map(|r| {
                    let subs: Vec<Value> = r
                        .subresources
                        .iter()
                        .map(|s| {
                            let (sg, sv, kind, verbs) = s.discovery(r);
                            json!({"subresource": s.name(), "responseKind": {"group": sg, "version": sv, "kind": kind}, "verbs": verbs})
                        })
                        .collect();
                    let mut e = json!({
                        "resource": r.resource,
                        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular,
                        "verbs": r.verbs,
                    });
                    if !r.short_names.is_empty() {
                        e["shortNames"] = json!(r.short_names);
                    }
                    if !r.categories.is_empty() {
                        e["categories"] = json!(r.categories);
                    }
                    if !subs.is_empty() {
                        e["subresources"] = json!(subs);
                    }
                    e
                })
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
}

/// A remote group in aggregated form, from the backends' resource lists (upstream's discovery
/// aggregator converts legacy answers the same way). A version whose backend never answered
/// is left out; one whose APIService is no longer Available is `Stale`.
fn remote_aggregated_group(remote: &Routes, group: &str) -> Option<Value> {
    let versions: Vec<Value> = remote
        .versions_of(group)
        .into_iter()
        .filter_map(|r| {
            let list = r.resources.as_ref()?;
            let entries = list["resources"].as_array().cloned().unwrap_or_default();
            let mut resources: Vec<Value> = Vec::new();
            for e in entries.iter() {
                let name = e["name"].as_str().unwrap_or_default();
                let kind = |e: &Value| json!({
                    "group": e["group"].as_str().unwrap_or(group),
                    "version": e["version"].as_str().unwrap_or(&r.version),
                    "kind": e["kind"],
                });
                if let Some((parent, sub)) = name.split_once('/') {
                    let entry = json!({"subresource": sub, "responseKind": kind(e), "verbs": e["verbs"]});
                    if let Some(p) = resources.iter_mut().find(|p| p["resource"] == parent) {
                        match p["subresources"].as_array_mut() {
                            Some(subs) => subs.push(entry),
                            None => p["subresources"] = json!([entry]),
                        }
                    }
                    continue;
                }
                let mut out = json!({
                    "resource": name,
                    "responseKind": kind(e),
                    "scope": if e["namespaced"].as_bool().unwrap_or(false) { "Namespaced" } else { "Cluster" },
                    "singularResource": e["singularName"],
                    "verbs": e["verbs"],
                });
                for key in ["shortNames", "categories"] {
                    if e[key].as_array().is_some_and(|a| !a.is_empty()) {
                        out[key] = e[key].clone();
                    }
                }
                resources.push(out);
            }
            let freshness = if r.available { "Current" } else { "Stale" };
            Some(json!({"version": r.version, "resources": resources, "freshness": freshness}))
        })
        .collect();
    (!versions.is_empty()).then(
        || json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions}),
    )
}

/// `GET /api` (core only) or `GET /apis` (every other group) in aggregated form.
pub fn aggregated(custom: &Registry, remote: &Routes, core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group(custom, "")]
    } else {
        let local = groups(custom)
            .into_iter()
            .map(|g| aggregated_group(custom, g));
        let others = remote_groups(custom, remote)
            .into_iter()
            .filter_map(|g| remote_aggregated_group(remote, &g));
        local.chain(others).collect()
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_scale_is_autoscaling() {
        let list = resource_list(&Registry::default(), "apps", "v1").unwrap();
        let scale = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["kind"], "Scale");
        assert!(resource_list(&Registry::default(), "nope", "v1").is_none());
    }

    #[test]
    fn aggregated_has_all_category() {
        let agg = aggregated(&Registry::default(), &Routes::default(), true);
        let pods = agg["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "pods")
            .unwrap()
            .clone();
        assert_eq!(pods["categories"][0], "all");
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json"));
    }
}
