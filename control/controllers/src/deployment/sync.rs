//! The parts of a Deployment sync both strategies share (upstream `sync.go`): finding or
//! creating the new ReplicaSet and keeping revisions in step, scaling a ReplicaSet (with its
//! event), proportional scaling when the Deployment is resized mid-rollout, cleanup of old
//! ReplicaSets beyond revisionHistoryLimit, and writing the status.
//!
//! A [`Rollout`] holds this sync's copy of the Deployment; ReplicaSets are copies too, updated
//! in place with what the API server returned, so each step sees the previous step's writes
//! without waiting for the watch.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::ResourceExt;

use super::history;
use super::progress;
use super::util;
use super::{hash, Context, Error};
use crate::controller_ref::owner_ref;
use crate::events::{NORMAL, WARNING};
use crate::informer::controller_uid;
use crate::replicaset::api_message;

pub struct Rollout<'a> {
    pub ctx: &'a Context,
    pub d: Deployment,
    pub namespace: String,
    pub name: String,
}

impl<'a> Rollout<'a> {
    pub fn rs_api(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.ctx.client.clone(), &self.namespace)
    }

    fn deployment_api(&self) -> Api<Deployment> {
        Api::namespaced(self.ctx.client.clone(), &self.namespace)
    }

    fn template(&self) -> k8s_openapi::api::core::v1::PodTemplateSpec {
        self.d.spec.template.clone()
    }

    /// The new ReplicaSet (the oldest whose template is the Deployment's, ignoring the hash
    /// label) and the others (upstream `FindNewReplicaSet`/`FindOldReplicaSets`).
    pub fn split(&self, list: &[ReplicaSet]) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
        let template = self.template();
        let mut sorted: Vec<&ReplicaSet> = list.iter().collect();
        sorted.sort_by(|a, b| util::by_creation(a, b));
        let new = sorted
            .iter()
            .find(|rs| {
                rs.spec
                    .template
                    .as_ref()
                    .is_some_and(|t| hash::equal_ignore_hash(t, &template))
            })
            .map(|rs| (*rs).clone());
        let new_uid = new.as_ref().and_then(|rs| rs.metadata.uid.clone());
        let old = list
            .iter()
            .filter(|rs| rs.metadata.uid != new_uid || new_uid.is_none())
            .cloned()
            .collect();
        (new, old)
    }

    /// Upstream `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (created when `create`
    /// and missing) with revisions brought up to date, and the old ones.
    pub async fn new_and_old(
        &mut self,
        list: &[ReplicaSet],
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), Error> {
        let (existing, old) = self.split(list);
        let new = self.new_replica_set(existing, &old, create).await?;
        Ok((new, old))
    }

    async fn new_replica_set(
        &mut self,
        existing: Option<ReplicaSet>,
        old: &[ReplicaSet],
        create: bool,
    ) -> Result<Option<ReplicaSet>, Error> {
        let new_revision = history::max_revision(old) + 1;
        let now = jiff::Timestamp::now();
        let min_ready = self.d.spec.min_ready_seconds;
        if let Some(rs) = existing {
            let mut copy = rs.clone();
            let annotations_changed =
                history::set_new_rs_annotations(&self.d, &mut copy, new_revision, true);
            let rs_min_ready = copy.spec.min_ready_seconds;
            if annotations_changed || rs_min_ready.unwrap_or(0) != min_ready.unwrap_or(0) {
                let patch = serde_json::json!({
                    "metadata": {"annotations": copy.metadata.annotations},
                    "spec": {"minReadySeconds": min_ready.unwrap_or(0)},
                });
                copy = self
                    .rs_api()
                    .patch(
                        &copy.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await?;
            }
            let revision = history::revision(&copy).to_string();
            let mut needs_update = history::set_deployment_revision(&mut self.d, &revision);
            let has_deadline = progress::progress_deadline(&self.d).is_some();
            let status = self.d.status.get_or_insert_with(DeploymentStatus::default);
            if has_deadline && progress::condition(status, progress::PROGRESSING).is_none() {
                let message = format!("Found new replica set \"{}\"", copy.name_any());
                progress::set_condition(
                    status,
                    progress::new_condition(
                        progress::PROGRESSING,
                        "True",
                        progress::FOUND_NEW_RS,
                        message,
                        now,
                    ),
                );
                needs_update = true;
            }
            if needs_update {
                self.write_revision().await?;
                self.write_status().await?;
            }
            return Ok(Some(copy));
        }
        if !create {
            return Ok(None);
        }

        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let template = self.template();
        let hash = hash::compute(&template, collision_count);
        let mut template = template;
        template
            .metadata
            .get_or_insert_with(ObjectMeta::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(hash::LABEL.into(), hash.clone());
        let mut selector = self.d.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(hash::LABEL.into(), hash.clone());
        let name = format!("{}-{}", self.name, hash);
        let old_refs: Vec<&ReplicaSet> = old.iter().collect();
        let replicas = new_rs_replicas(&self.d, &old_refs, None);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.namespace.clone()),
                owner_references: Some(vec![owner_ref(&self.d)]),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..ObjectMeta::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: min_ready,
                selector,
                template: Some(template),
            },
            status: None,
        };
        history::set_new_rs_annotations(&self.d, &mut rs, new_revision, false);
        let created = match self.rs_api().create(&PostParams::default(), &rs).await {
            Ok(created) => created,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Either our cache is behind (the ReplicaSet is ours and current: use it) or
                // another object holds the name: bump collisionCount, and the next sync hashes
                // to another name.
                if let Some(found) = self.rs_api().get_opt(&name).await? {
                    let ours = controller_uid(&found) == self.d.metadata.uid.as_deref();
                    let same = found
                        .spec
                        .template
                        .as_ref()
                        .is_some_and(|t| hash::equal_ignore_hash(t, &self.template()));
                    if ours && same {
                        return Ok(Some(found));
                    }
                }
                let status = self.d.status.get_or_insert_with(DeploymentStatus::default);
                status.collision_count = Some(collision_count.unwrap_or(0) + 1);
                self.write_status().await?;
                return Err(Error::Collision(name));
            }
            Err(e) => {
                let message = format!(
                    "Failed to create new replica set \"{name}\": {}",
                    api_message(&e)
                );
                if progress::progress_deadline(&self.d).is_some() {
                    let status = self.d.status.get_or_insert_with(DeploymentStatus::default);
                    progress::set_condition(
                        status,
                        progress::new_condition(
                            progress::PROGRESSING,
                            "False",
                            progress::RS_CREATE_ERROR,
                            message.clone(),
                            now,
                        ),
                    );
                    self.write_status().await?;
                }
                self.ctx
                    .recorder
                    .publish(&self.d, WARNING, progress::RS_CREATE_ERROR, message);
                return Err(e.into());
            }
        };
        if replicas > 0 {
            self.ctx.recorder.publish(
                &self.d,
                NORMAL,
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {replicas}"),
            );
        }
        history::set_deployment_revision(&mut self.d, &new_revision.to_string());
        if progress::progress_deadline(&self.d).is_some() {
            let status = self.d.status.get_or_insert_with(DeploymentStatus::default);
            progress::set_condition(
                status,
                progress::new_condition(
                    progress::PROGRESSING,
                    "True",
                    progress::NEW_RS_CREATED,
                    format!("Created new replica set \"{name}\""),
                    now,
                ),
            );
        }
        self.write_revision().await?;
        self.write_status().await?;
        Ok(Some(created))
    }

    /// Writes the Deployment's revision annotation (a metadata change: no new generation).
    async fn write_revision(&self) -> Result<(), Error> {
        let revision = self
            .d
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(history::REVISION));
        let Some(revision) = revision else {
            return Ok(());
        };
        let patch = serde_json::json!({"metadata": {"annotations": {history::REVISION: revision}}});
        self.deployment_api()
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }

    /// Writes this sync's status through the status subresource.
    pub async fn write_status(&self) -> Result<(), Error> {
        let status = self.d.status.clone().unwrap_or_default();
        let patch = serde_json::json!({"status": status});
        self.deployment_api()
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }

    /// Writes `status` if it differs from the one on record.
    pub async fn set_status(&mut self, status: DeploymentStatus) -> Result<(), Error> {
        if self.d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        self.d.status = Some(status);
        self.write_status().await
    }

    /// Scales `rs` to `replicas` and stamps the Deployment's current size on it; records
    /// `ScalingReplicaSet` when the size changed. Returns whether it did.
    pub async fn scale(&self, rs: &mut ReplicaSet, replicas: i32) -> Result<bool, Error> {
        let current = util::spec_replicas(rs);
        let size_changed = current != replicas;
        let mut copy = rs.clone();
        let desired = util::replicas(&self.d);
        let annotations_changed = history::set_replicas_annotations(
            &mut copy,
            desired,
            desired + util::max_surge(&self.d),
        );
        if !size_changed && !annotations_changed {
            return Ok(false);
        }
        let patch = serde_json::json!({
            "metadata": {"annotations": {
                history::DESIRED_REPLICAS: desired.to_string(),
                history::MAX_REPLICAS: (desired + util::max_surge(&self.d)).to_string(),
            }},
            "spec": {"replicas": replicas},
        });
        *rs = self
            .rs_api()
            .patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await?;
        if size_changed {
            let direction = if replicas > current { "up" } else { "down" };
            self.ctx.recorder.publish(
                &self.d,
                NORMAL,
                "ScalingReplicaSet",
                format!(
                    "Scaled {direction} replica set {} from {current} to {replicas}",
                    rs.name_any()
                ),
            );
        }
        Ok(size_changed)
    }

    /// Upstream `scale`: a resize of the Deployment outside a template change. One active
    /// ReplicaSet takes the whole size; otherwise (mid-rollout) the change is spread over the
    /// active ReplicaSets in proportion to their size.
    pub async fn scale_all(
        &self,
        new: &mut Option<ReplicaSet>,
        old: &mut [ReplicaSet],
    ) -> Result<(), Error> {
        let desired = util::replicas(&self.d);
        // One active ReplicaSet (or none: the newest) takes the full count.
        let mut actives: Vec<String> = old
            .iter()
            .chain(new.iter())
            .filter(|rs| util::is_active(rs))
            .map(|rs| rs.name_any())
            .collect();
        if actives.len() <= 1 {
            let target = match actives.pop() {
                Some(name) => Some(name),
                None => match new {
                    Some(rs) => Some(rs.name_any()),
                    None => old
                        .iter()
                        .max_by(|a, b| util::by_creation(a, b))
                        .map(|rs| rs.name_any()),
                },
            };
            let Some(target) = target else {
                return Ok(());
            };
            let rs = match new.as_mut().filter(|rs| rs.name_any() == target) {
                Some(rs) => rs,
                None => match old.iter_mut().find(|rs| rs.name_any() == target) {
                    Some(rs) => rs,
                    None => return Ok(()),
                },
            };
            if util::spec_replicas(rs) != desired {
                self.scale(rs, desired).await?;
            }
            return Ok(());
        }
        // The new ReplicaSet is complete: the old ones go to zero.
        if let Some(rs) = new.as_ref() {
            let saturated = util::spec_replicas(rs) == desired
                && history::desired_replicas_annotation(rs) == Some(desired)
                && util::available_replicas(rs) == desired;
            if saturated {
                for rs in old.iter_mut().filter(|rs| util::is_active(rs)) {
                    self.scale(rs, 0).await?;
                }
                return Ok(());
            }
        }
        if !util::is_rolling(&self.d) {
            return Ok(());
        }
        let all: Vec<&ReplicaSet> = old
            .iter()
            .chain(new.iter())
            .filter(|rs| util::is_active(rs))
            .collect();
        let sizes = proportional_sizes(&self.d, &all);
        for rs in old.iter_mut().chain(new.iter_mut()) {
            if let Some(size) = sizes.get(&rs.name_any()) {
                if *size != util::spec_replicas(rs) {
                    self.scale(rs, *size).await?;
                }
            }
        }
        Ok(())
    }

    /// Deletes old ReplicaSets beyond revisionHistoryLimit, oldest revision first, only those
    /// scaled to zero with no pods left (upstream `cleanupDeployment`).
    pub async fn cleanup(&self, old: &[ReplicaSet]) -> Result<(), Error> {
        let limit = self.d.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        if cleanable.len() <= limit {
            return Ok(());
        }
        let excess = cleanable.len() - limit;
        cleanable.sort_by(|a, b| {
            history::revision(a)
                .cmp(&history::revision(b))
                .then_with(|| util::by_creation(a, b))
        });
        for rs in cleanable.into_iter().take(excess) {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if util::status_replicas(rs) != 0
                || util::spec_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: rs.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match self.rs_api().delete(&rs.name_any(), &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Counters and Available only (upstream `syncDeploymentStatus`).
    pub async fn sync_status(
        &mut self,
        new: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<(), Error> {
        let all: Vec<&ReplicaSet> = old.iter().chain(new).collect();
        let status = progress::calculate_status(&self.d, &all, new, jiff::Timestamp::now());
        self.set_status(status).await
    }

    /// Counters and conditions, then when to look again (upstream `syncRolloutStatus`).
    pub async fn sync_rollout_status(
        &mut self,
        new: Option<&ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<Option<std::time::Duration>, Error> {
        let now = jiff::Timestamp::now();
        let all: Vec<&ReplicaSet> = old.iter().chain(new).collect();
        let status = progress::rollout_status(&self.d, &all, new, now);
        let after = progress::requeue_after(&self.d, &status, now);
        self.set_status(status).await?;
        Ok(after)
    }

    /// Upstream `sync`: scaling (and cleanup when paused) without rolling anything out.
    pub async fn sync(&mut self, list: &[ReplicaSet]) -> Result<(), Error> {
        let (mut new, mut old) = self.new_and_old(list, false).await?;
        self.scale_all(&mut new, &mut old).await?;
        if progress::is_paused(&self.d) {
            self.cleanup(&old).await?;
        }
        self.sync_status(new.as_ref(), &old).await
    }

    /// Upstream `isScalingEvent`: an active ReplicaSet was sized for another replica count.
    pub async fn is_scaling_event(&mut self, list: &[ReplicaSet]) -> Result<bool, Error> {
        let (new, old) = self.new_and_old(list, false).await?;
        let desired = util::replicas(&self.d);
        Ok(old
            .iter()
            .chain(new.iter())
            .filter(|rs| util::is_active(rs))
            .any(|rs| history::desired_replicas_annotation(rs).is_some_and(|n| n != desired)))
    }
}

/// Upstream `NewRSNewReplicas`: how big the new ReplicaSet may be now. RollingUpdate: up to
/// replicas + maxSurge pods in total; Recreate: the full count at once.
pub fn new_rs_replicas(d: &Deployment, all: &[&ReplicaSet], new: Option<&ReplicaSet>) -> i32 {
    let desired = util::replicas(d);
    let new_spec = new.map(util::spec_replicas).unwrap_or(0);
    if !util::is_rolling(d) {
        return desired;
    }
    let current: i32 = util::sum_spec(all);
    let max_total = desired + util::max_surge(d);
    if current >= max_total {
        return new_spec;
    }
    let up = (max_total - current).min(desired - new_spec).max(0);
    new_spec + up
}

/// Upstream's proportional scaling: each active ReplicaSet grows or shrinks by its share of
/// the change (its size over the total it was sized for, from `max-replicas`), leftovers go to
/// the largest (newest on growth, oldest on shrink).
pub fn proportional_sizes(d: &Deployment, active: &[&ReplicaSet]) -> HashMap<String, i32> {
    let desired = util::replicas(d);
    let allowed = if desired > 0 {
        desired + util::max_surge(d)
    } else {
        0
    };
    let total = util::sum_spec(active);
    let to_add = allowed - total;
    let mut sorted: Vec<&ReplicaSet> = active.to_vec();
    if to_add > 0 {
        sorted.sort_by(|a, b| util::by_size_newer(a, b));
    } else {
        sorted.sort_by(|a, b| util::by_size_older(a, b));
    }
    let mut sizes = HashMap::new();
    let mut added = 0;
    for rs in &sorted {
        let size = util::spec_replicas(rs);
        let proportion = if to_add != 0 {
            proportion(d, rs, to_add, added)
        } else {
            0
        };
        added += proportion;
        sizes.insert(rs.name_any(), size + proportion);
    }
    if let Some(first) = sorted.first() {
        if to_add != 0 {
            let entry = sizes.entry(first.name_any()).or_insert(0);
            *entry = (*entry + to_add - added).max(0);
        }
    }
    sizes
}

fn proportion(d: &Deployment, rs: &ReplicaSet, to_add: i32, added: i32) -> i32 {
    let size = util::spec_replicas(rs);
    if size == 0 || to_add == added {
        return 0;
    }
    let fraction = {
        let desired = util::replicas(d);
        if desired == 0 {
            -size
        } else {
            let target = desired + util::max_surge(d);
            let annotated = history::max_replicas_annotation(rs)
                .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
            if annotated == 0 {
                0
            } else {
                let scaled = f64::from(size) * f64::from(target) / f64::from(annotated);
                scaled.round() as i32 - size
            }
        }
    };
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// The pods of the old ReplicaSets that still run (Recreate waits for them to be gone,
/// terminating ones included).
pub fn old_pods_running(ctx: &Context, new: Option<&ReplicaSet>, old: &[ReplicaSet]) -> bool {
    if old.iter().any(|rs| util::status_replicas(rs) > 0) {
        return true;
    }
    let new_uid = new.and_then(|rs| rs.metadata.uid.as_deref());
    let cache = ctx.pods.read();
    old.iter()
        .filter(|rs| rs.metadata.uid.as_deref() != new_uid)
        .filter_map(|rs| rs.metadata.uid.as_deref())
        .flat_map(|uid| cache.controlled_by(uid))
        .any(|pod: Arc<k8s_openapi::api::core::v1::Pod>| {
            !matches!(
                pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Failed") | Some("Succeeded")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{
        DeploymentSpec, DeploymentStrategy, ReplicaSetStatus, RollingUpdateDeployment,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn deployment(replicas: i32, surge: i32, unavailable: i32) -> Deployment {
        Deployment {
            spec: DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(IntOrString::Int(surge)),
                        max_unavailable: Some(IntOrString::Int(unavailable)),
                    }),
                }),
                ..DeploymentSpec::default()
            },
            ..Deployment::default()
        }
    }

    fn rs(name: &str, spec: i32, max_replicas: Option<i32>, created: i64) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    jiff::Timestamp::from_second(created).expect("valid"),
                )),
                annotations: max_replicas
                    .map(|m| [(history::MAX_REPLICAS.to_string(), m.to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(spec),
                ..ReplicaSetSpec::default()
            },
            status: Some(ReplicaSetStatus::default()),
        }
    }

    #[test]
    fn new_replica_set_grows_within_surge() {
        let d = deployment(10, 3, 2);
        let old = rs("old", 10, None, 1);
        // 10 old pods, 13 allowed: the new ReplicaSet may take 3.
        assert_eq!(new_rs_replicas(&d, &[&old], None), 3);
        let new = rs("new", 3, None, 2);
        assert_eq!(new_rs_replicas(&d, &[&old, &new], Some(&new)), 3);
        let old = rs("old", 8, None, 1);
        assert_eq!(new_rs_replicas(&d, &[&old, &new], Some(&new)), 5);
    }

    #[test]
    fn resize_mid_rollout_is_proportional() {
        // 10 → 20 replicas with maxSurge 3: old 8 + new 5 = 13 (sized for 13) grow to 23.
        let d = deployment(20, 3, 2);
        let old = rs("old", 8, Some(13), 1);
        let new = rs("new", 5, Some(13), 2);
        let sizes = proportional_sizes(&d, &[&old, &new]);
        assert_eq!(sizes.get("old"), Some(&14));
        assert_eq!(sizes.get("new"), Some(&9));
        assert_eq!(sizes.values().sum::<i32>(), 23);
    }
}
