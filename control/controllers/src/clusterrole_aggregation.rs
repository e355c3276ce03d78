//! The ClusterRole aggregation controller (upstream `pkg/controller/clusterroleaggregation`):
//! a ClusterRole with an `aggregationRule` gets, as its rules, the rules of every other
//! ClusterRole its selectors match — how `admin`, `edit` and `view` grow when a CRD's
//! `rbac.authorization.k8s.io/aggregate-to-view: "true"` role appears.
//!
//! Any ClusterRole change can change any aggregate, and aggregates are few (upstream's default
//! policy has five), so each change re-derives every aggregate from the reflector's store; an
//! aggregate is written only when its rules differ. Rules are collected in name order of the
//! source roles, duplicates dropped, as upstream does.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};

use crate::selector::Selector;

/// The rules `role`'s aggregation rule selects from `all`, or None if it has no such rule.
pub fn aggregated_rules(role: &ClusterRole, all: &[Arc<ClusterRole>]) -> Option<Vec<PolicyRule>> {
    let selectors: Vec<Selector> = role
        .aggregation_rule
        .as_ref()?
        .cluster_role_selectors
        .iter()
        .flatten()
        .map(Selector::from_label_selector)
        .collect();
    let mut sources: Vec<&Arc<ClusterRole>> = all
        .iter()
        .filter(|other| other.name_any() != role.name_any())
        .filter(|other| {
            selectors
                .iter()
                .any(|s| !s.is_empty() && s.matches(other.metadata.labels.as_ref()))
        })
        .collect();
    sources.sort_by_key(|r| r.name_any());
    let mut rules: Vec<PolicyRule> = Vec::new();
    for source in sources {
        for rule in source.rules.iter().flatten() {
            if !rules.contains(rule) {
                rules.push(rule.clone());
            }
        }
    }
    Some(rules)
}

async fn sync(api: &Api<ClusterRole>, store: &Store<ClusterRole>) {
    let all = store.state();
    for role in all.iter().filter(|r| r.aggregation_rule.is_some()) {
        let Some(rules) = aggregated_rules(role, &all) else {
            continue;
        };
        if role.rules.clone().unwrap_or_default() == rules {
            continue;
        }
        let patch = serde_json::json!({"rules": rules});
        if let Err(e) = api
            .patch(
                &role.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            tracing::warn!(role = %role.name_any(), "aggregating ClusterRole rules: {e}");
        }
    }
}

pub async fn run(client: Client) {
    let api: Api<ClusterRole> = Api::all(client);
    let (store, writer) = reflector::store();
    let mut changes =
        reflector::reflector(writer, watcher(api.clone(), watcher::Config::default()))
            .default_backoff()
            .touched_objects()
            .boxed();
    // The reflector fills the store as the stream is polled: each change (after coalescing a
    // burst, such as the initial list or a policy reconcile) re-derives the aggregates.
    while let Some(event) = changes.next().await {
        if event.is_ok() {
            while let Some(Some(_)) = futures::FutureExt::now_or_never(changes.next()) {}
            sync(&api, &store).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role(v: serde_json::Value) -> Arc<ClusterRole> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn aggregates_matching_roles_in_name_order_without_duplicates() {
        let view = role(json!({"metadata": {"name": "view"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"aggregate-to-view": "true"}}]}}));
        let b = role(
            json!({"metadata": {"name": "b", "labels": {"aggregate-to-view": "true"}},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
        );
        let a = role(
            json!({"metadata": {"name": "a", "labels": {"aggregate-to-view": "true"}},
            "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get"]},
                      {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
        );
        let other = role(json!({"metadata": {"name": "c"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}));
        let all = vec![view.clone(), b, a, other];
        let rules = aggregated_rules(&view, &all).unwrap();
        let resources: Vec<String> = rules
            .iter()
            .map(|r| r.resources.clone().unwrap()[0].clone())
            .collect();
        assert_eq!(resources, ["services", "pods"]);
        assert!(aggregated_rules(&all[3], &all).is_none());
    }
}
