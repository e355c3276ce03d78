//! The autoscaler's target through its `scale` subresource (upstream's scale client and
//! RESTMapper): any kind that serves `/scale` — Deployments, ReplicaSets, StatefulSets,
//! ReplicationControllers, custom resources with a scale subresource — is found by discovery
//! from `scaleTargetRef`'s apiVersion and kind. Mappings are kept until a scale request for
//! them fails, so a steady autoscaler costs one GET per sync.

use std::collections::HashMap;

use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::CrossVersionObjectReference;
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::{ApiResource, Scope};
use kube::Client;
use parking_lot::Mutex;

#[derive(Default)]
pub struct Mapper {
    known: Mutex<HashMap<(String, String), ApiResource>>,
}

/// What a scale request failed with, in upstream's words, and whether the reference itself is
/// malformed (a spec error: no retry will fix it).
#[derive(Debug)]
pub struct ScaleError {
    pub message: String,
}

impl std::fmt::Display for ScaleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn api_message(e: kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// The group of an apiVersion ("apps/v1" → "apps", "v1" → ""), refusing what upstream's
/// `schema.ParseGroupVersion` refuses.
pub fn parse_group_version(api_version: &str) -> Result<(String, String), String> {
    match api_version.split('/').collect::<Vec<_>>().as_slice() {
        [""] => Ok((String::new(), String::new())),
        [version] => Ok((String::new(), version.to_string())),
        [group, version] => Ok((group.to_string(), version.to_string())),
        _ => Err(format!("unexpected GroupVersion string: {api_version}")),
    }
}

impl Mapper {
    /// The resource of `reference` (namespaced; a cluster-scoped kind has no namespaced scale).
    pub async fn resource(
        &self,
        client: &Client,
        reference: &CrossVersionObjectReference,
    ) -> Result<ApiResource, ScaleError> {
        let api_version = reference.api_version.clone().unwrap_or_default();
        let key = (api_version.clone(), reference.kind.clone());
        if let Some(found) = self.known.lock().get(&key) {
            return Ok(found.clone());
        }
        let (group, version) =
            parse_group_version(&api_version).map_err(|message| ScaleError { message })?;
        let no_match = || ScaleError {
            message: format!(
                "no matches for kind {:?} in group {:?}",
                reference.kind, group
            ),
        };
        let gvk = kube::api::GroupVersionKind::gvk(&group, &version, &reference.kind);
        let (resource, capabilities) = match kube::discovery::pinned_kind(client, &gvk).await {
            Ok(found) => found,
            Err(kube::Error::Discovery(_)) => return Err(no_match()),
            Err(kube::Error::Api(status)) if status.code == 404 => return Err(no_match()),
            Err(e) => {
                return Err(ScaleError {
                    message: api_message(e),
                })
            }
        };
        if capabilities.scope != Scope::Namespaced {
            return Err(no_match());
        }
        self.known.lock().insert(key, resource.clone());
        Ok(resource)
    }

    pub fn forget(&self, reference: &CrossVersionObjectReference) {
        let key = (
            reference.api_version.clone().unwrap_or_default(),
            reference.kind.clone(),
        );
        self.known.lock().remove(&key);
    }
}

/// `GET …/<name>/scale`.
pub async fn get(
    client: &Client,
    resource: &ApiResource,
    namespace: &str,
    name: &str,
) -> Result<Scale, String> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    api.get_scale(name).await.map_err(api_message)
}

/// `PUT …/<name>/scale` with `replicas`, re-reading the scale on a conflict (upstream's
/// `RetryOnConflict` with `DefaultRetry`: five tries).
pub async fn update(
    client: &Client,
    resource: &ApiResource,
    namespace: &str,
    mut scale: Scale,
    replicas: i32,
) -> Result<(), String> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    let name = scale.metadata.name.clone().unwrap_or_default();
    let mut last = String::new();
    for _ in 0..5 {
        scale.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
        match api
            .replace_scale(&name, &PostParams::default(), &scale)
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                last = status.message.clone();
                scale = api.get_scale(&name).await.map_err(api_message)?;
            }
            Err(e) => return Err(api_message(e)),
        }
    }
    Err(last)
}
