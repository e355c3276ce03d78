//! The namespace controller (upstream pkg/controller/namespace): a namespace being deleted has
//! everything in it deleted — its pods first, and the rest only once no pod is left (upstream's
//! OrderedNamespaceDeletion, on by default since 1.34: a pod never outlives the policies,
//! secrets or config it runs with) — then its `kubernetes` finalizer removed through
//! `/finalize`, at which point the API server removes it. Meanwhile the namespace carries
//! upstream's five deletion conditions (`kubectl describe namespace`: what remains, which
//! finalizers hold it, which groups could not be discovered). A group whose discovery fails —
//! an aggregated API whose backend is down — does not stop the deletion of everything else,
//! but the namespace is finalized only once every group has answered, as upstream.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, NamespaceCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::{verbs, ApiCapabilities, ApiResource, Scope};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::discovery;
use crate::workqueue::{self, names};

const FINALIZER: &str = "kubernetes";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    /// Some content could not be found or deleted: the namespace is not finalized yet.
    #[error("{0}")]
    Incomplete(String),
}

struct Context {
    client: Client,
}

/// What one deletion pass saw, for the namespace's conditions (upstream's
/// `namespaceConditionUpdater`).
#[derive(Default)]
struct Pass {
    discovery_failure: Option<String>,
    delete_failures: Vec<String>,
    /// `resource.group` → instances still there.
    remaining: BTreeMap<String, usize>,
    /// Finalizer → instances it holds.
    finalizers: BTreeMap<String, usize>,
}

/// The condition types upstream keeps on a terminating namespace, with the reason and message
/// each has while nothing is wrong.
const CONDITIONS: [(&str, &str, &str); 5] = [
    (
        "NamespaceDeletionDiscoveryFailure",
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        "NamespaceDeletionGroupVersionParsingFailure",
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        "NamespaceDeletionContentFailure",
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    (
        "NamespaceContentRemaining",
        "ContentRemoved",
        "All content successfully removed",
    ),
    (
        "NamespaceFinalizersRemaining",
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
];

fn counted(counts: &BTreeMap<String, usize>, each: impl Fn(&str, usize) -> String) -> String {
    counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| each(k, *n))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Pass {
    /// (type, status, reason, message) of each condition after this pass.
    fn conditions(&self) -> Vec<(&'static str, &'static str, &'static str, String)> {
        CONDITIONS
            .iter()
            .map(|(type_, ok_reason, ok_message)| {
                let failed: Option<(&'static str, String)> = match *type_ {
                    "NamespaceDeletionDiscoveryFailure" => self
                        .discovery_failure
                        .clone()
                        .map(|m| ("DiscoveryFailed", m)),
                    "NamespaceDeletionContentFailure" if !self.delete_failures.is_empty() => {
                        let mut each = self.delete_failures.clone();
                        each.sort();
                        Some((
                            "ContentDeletionFailed",
                            format!(
                                "Failed to delete all resource types, {} remaining: {}",
                                each.len(),
                                each.join(", ")
                            ),
                        ))
                    }
                    "NamespaceContentRemaining" if self.remaining.values().any(|n| *n > 0) => {
                        Some((
                            "SomeResourcesRemain",
                            format!(
                                "Some resources are remaining: {}",
                                counted(&self.remaining, |r, n| format!(
                                    "{r} has {n} resource instances"
                                ))
                            ),
                        ))
                    }
                    "NamespaceFinalizersRemaining" if self.finalizers.values().any(|n| *n > 0) => {
                        Some((
                            "SomeFinalizersRemain",
                            format!(
                                "Some content in the namespace has finalizers remaining: {}",
                                counted(&self.finalizers, |f, n| format!(
                                    "{f} in {n} resource instances"
                                ))
                            ),
                        ))
                    }
                    _ => None,
                };
                match failed {
                    Some((reason, message)) => (*type_, "True", reason, message),
                    None => (*type_, "False", *ok_reason, ok_message.to_string()),
                }
            })
            .collect()
    }
}

/// Upstream `updateConditions`: true when `status` changed.
fn update_conditions(ns: &mut Namespace, pass: &Pass) -> bool {
    let conditions = ns
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    let mut changed = false;
    for (type_, status, reason, message) in pass.conditions() {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            None => {
                conditions.push(NamespaceCondition {
                    type_: type_.into(),
                    status: status.into(),
                    reason: Some(reason.into()),
                    message: Some(message),
                    last_transition_time: Some(Time(jiff::Timestamp::now())),
                });
                changed = true;
            }
            Some(old) => {
                if old.status != status
                    || old.reason.as_deref() != Some(reason)
                    || old.message.as_deref() != Some(message.as_str())
                {
                    if old.status != status {
                        old.last_transition_time = Some(Time(jiff::Timestamp::now()));
                    }
                    old.status = status.into();
                    old.reason = Some(reason.into());
                    old.message = Some(message);
                    changed = true;
                }
            }
        }
    }
    changed
}

/// Namespaced resources that can be listed and deleted as a collection, and the discovery
/// failure, if any group did not answer.
async fn namespaced_resources(
    client: &Client,
) -> Result<(Vec<(ApiResource, ApiCapabilities)>, Option<String>), Error> {
    let resources = discovery::preferred_resources(client).await?;
    let failure = resources.failure().map(|f| {
        format!(
            "Discovery failed for some groups, {} failing: {f}",
            resources.failed.len()
        )
    });
    let found = resources
        .found
        .into_iter()
        .filter(|(_, caps)| {
            caps.scope == Scope::Namespaced
                && caps.supports_operation(verbs::LIST)
                && caps.supports_operation(verbs::DELETE_COLLECTION)
        })
        .collect();
    Ok((found, failure))
}

/// Deletes what is left of one resource in the namespace and counts what remains.
async fn delete_content(
    client: &Client,
    namespace: &str,
    ar: &ApiResource,
    pass: &mut Pass,
) -> Result<usize, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, ar);
    let left = api.list_metadata(&ListParams::default()).await?;
    if left.items.is_empty() {
        return Ok(0);
    }
    api.delete_collection(&DeleteParams::background(), &ListParams::default())
        .await?;
    let left = api.list_metadata(&ListParams::default()).await?;
    if !left.items.is_empty() {
        tracing::info!(namespace, resource = %ar.plural, count = left.items.len(), "waiting for deletion");
        *pass
            .remaining
            .entry(format!("{}.{}", ar.plural, ar.group))
            .or_default() += left.items.len();
        for item in &left.items {
            for finalizer in item.metadata.finalizers.iter().flatten() {
                *pass.finalizers.entry(finalizer.clone()).or_default() += 1;
            }
        }
    }
    Ok(left.items.len())
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let finalizers = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    // Discovery runs per pass so resources added later are covered too. A group that does not
    // answer does not stop the others; the namespace waits for it before it is finalized.
    let (resources, discovery_failure) = namespaced_resources(&ctx.client).await?;
    let mut pass = Pass {
        discovery_failure,
        ..Pass::default()
    };
    let (pods, rest): (Vec<_>, Vec<_>) = resources
        .into_iter()
        .partition(|(ar, _)| ar.group.is_empty() && ar.plural == "pods");
    let mut remaining = 0usize;
    for (i, (ar, _)) in pods.into_iter().chain(rest).enumerate() {
        if i > 0 && remaining > 0 {
            // Pods are still going: nothing else is deleted yet.
            break;
        }
        match delete_content(&ctx.client, &name, &ar, &mut pass).await {
            Ok(left) => remaining += left,
            Err(e) => pass.delete_failures.push(format!(
                "{}.{}: {}",
                ar.plural,
                ar.group,
                match e {
                    kube::Error::Api(status) => status.message.clone(),
                    other => other.to_string(),
                }
            )),
        }
    }
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let mut current = (*ns).clone();
    if update_conditions(&mut current, &pass) {
        match namespaces
            .replace_status(&name, &PostParams::default(), &current)
            .await
        {
            // Finalized below from what was just written (its resourceVersion).
            Ok(written) => current = written,
            Err(e) => tracing::debug!(namespace = %name, "namespace conditions not written: {e}"),
        }
    }
    if let Some(failure) = pass.discovery_failure {
        return Err(Error::Incomplete(failure));
    }
    if !pass.delete_failures.is_empty() {
        return Err(Error::Incomplete(pass.delete_failures.join(", ")));
    }
    if remaining > 0 {
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    let mut finalized = current;
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers = Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
    }
    namespaces
        .replace_subresource("finalize", &name, &PostParams::default(), &finalized)
        .await?;
    tracing::info!(namespace = %name, "finalized");
    Ok(Action::await_change())
}

fn error_policy(_ns: Arc<Namespace>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!("namespace controller: {error}");
    Action::requeue(Duration::from_secs(2))
}

pub async fn run(client: Client) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ctx = Arc::new(Context { client });
    let controller = Controller::new(namespaces, watcher::Config::default());
    workqueue::run(names::NAMESPACE, controller, reconcile, error_policy, ctx).await;
}
