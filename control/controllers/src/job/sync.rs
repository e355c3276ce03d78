//! One Job's sync (upstream `syncJob`, `manageJob` and `trackJobStatusAndRemoveFinalizers`):
//!
//! 1. claim pods (release those that stopped matching, adopt matching orphans with the
//!    tracking finalizer);
//! 2. count: finished pods not yet in the status are "new"; succeeded/failed = the status's
//!    counters + the uncounted uids + the new ones (failures the podFailurePolicy ignores
//!    left out);
//! 3. decide whether the Job is done: an interim condition already written, a FailJob rule,
//!    backoffLimit, activeDeadlineSeconds, the successPolicy, or enough completions;
//! 4. a Job that is done has its running pods deleted; otherwise (expectations met) pods are
//!    created up to `min(parallelism, completions − succeeded)` after the failure backoff, or
//!    the surplus deleted, or all of them when suspended;
//! 5. finished pods are counted with the uncounted → finalizer → counter protocol (see
//!    `mod.rs`), and the terminal condition is added once no pod is left running or uncounted.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::ResourceExt;
use parking_lot::Mutex;

use super::conditions as cond;
use super::failure_policy::{self, Outcome};
use super::indexes::{self, Indexes, COMPLETION_INDEX};
use super::{
    has_tracking_finalizer, remove_finalizer, success_policy, Context, Error, MANAGED_BY,
    MAX_PODS_PER_SYNC, MAX_UNCOUNTED, TRACKING_FINALIZER,
};
use crate::controller_ref::{self, owner_ref};
use crate::events::{NORMAL, WARNING};
use crate::pods;
use crate::replicaset::{api_message, slow_start, victims};
use crate::selector::Selector;

pub fn selector(job: &Job) -> Selector {
    job.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .map(Selector::from_label_selector)
        .unwrap_or_default()
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// Only failed pods are replaced (not merely terminating ones): podReplacementPolicy Failed,
/// which a podFailurePolicy implies.
fn only_replace_failed(spec: &JobSpec) -> bool {
    spec.pod_replacement_policy.as_deref() == Some("Failed") || spec.pod_failure_policy.is_some()
}

/// Upstream `isPodFailed`: Failed, or (unless only failed pods are replaced) being deleted
/// without having succeeded — a pod deleted by a user or a node's eviction counts as failed.
fn is_failed(pod: &Pod, spec: &JobSpec) -> bool {
    match phase(pod) {
        Some("Failed") => true,
        Some("Succeeded") => false,
        _ => !only_replace_failed(spec) && pod.metadata.deletion_timestamp.is_some(),
    }
}

fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
        && !matches!(phase(pod), Some("Succeeded") | Some("Failed"))
}

/// With restartPolicy OnFailure the kubelet restarts containers in place; their restarts
/// count against backoffLimit (upstream `pastBackoffLimitOnFailure`).
fn past_backoff_limit_on_failure(spec: &JobSpec, pods: &[Arc<Pod>]) -> bool {
    let restart_policy = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref());
    if restart_policy != Some("OnFailure") {
        return false;
    }
    let restarts: i32 = pods
        .iter()
        .filter(|p| matches!(phase(p), Some("Running") | Some("Pending")))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|c| c.restart_count)
        .sum();
    let limit = spec.backoff_limit.unwrap_or(6);
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

fn suspended(spec: &JobSpec) -> bool {
    spec.suspend == Some(true)
}

/// A finished condition in the making: its type is the interim one (`FailureTarget`,
/// `SuccessCriteriaMet`) or, when the interim one is already written, the terminal one.
fn failure_target(reason: &str, message: &str, now: jiff::Timestamp) -> JobCondition {
    cond::new(cond::FAILURE_TARGET, "True", reason, message, now)
}

pub(super) async fn reconcile(shared: Arc<Job>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = shared.uid().ok_or(Error::Incomplete)?;
    let namespace = shared.namespace().ok_or(Error::Incomplete)?;
    let spec = shared.spec.clone().ok_or(Error::Incomplete)?;
    if spec.managed_by.as_deref().is_some_and(|m| m != MANAGED_BY) {
        return Ok(Action::await_change());
    }
    if cond::is_finished(&shared) {
        ctx.pod_backoff.remove(&uid);
        ctx.finalizers.forget(&uid);
        ctx.expectations.forget(&uid);
        return Ok(Action::await_change());
    }
    let mode = spec.completion_mode.as_deref().unwrap_or("NonIndexed");
    if mode != "NonIndexed" && mode != "Indexed" {
        ctx.recorder.publish(
            shared.as_ref(),
            WARNING,
            "UnknownCompletionMode",
            "Skipped Job sync because completion mode is unknown".into(),
        );
        return Ok(Action::await_change());
    }
    let indexed = mode == "Indexed";
    let completions = spec.completions;
    let now = jiff::Timestamp::now();
    let mut job: Job = (*shared).clone();
    let status = job.status.get_or_insert_with(JobStatus::default);
    let uncounted = status
        .uncounted_terminated_pods
        .get_or_insert_with(UncountedTerminatedPods::default);
    let uncounted_succeeded: HashSet<String> =
        uncounted.succeeded.iter().flatten().cloned().collect();
    let uncounted_failed: HashSet<String> = uncounted.failed.iter().flatten().cloned().collect();

    // Expectations are read before the pods, so a pod that appears in between only defers
    // the next change.
    let satisfied = ctx.expectations.satisfied(&uid);
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let pods = claim(&ctx, &shared, &uid, &namespace, &pod_api).await?;
    let active: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| pods::is_active(p))
        .cloned()
        .collect();
    let mut terminating = pods.iter().filter(|p| is_terminating(p)).count() as i32;
    let mut ready = active.iter().filter(|p| pods::is_ready(p)).count() as i32;
    let expected_removed = ctx.finalizers.pending(&uid);

    let valid_index =
        |pod: &Pod| !indexed || indexes::of_pod(pod).is_some_and(|i| i < completions.unwrap_or(0));
    let not_counted_yet = |pod: &&Arc<Pod>| {
        has_tracking_finalizer(pod)
            && !expected_removed.contains(&pod.uid().unwrap_or_default())
            && valid_index(pod)
    };
    let new_succeeded: Vec<&Pod> = pods
        .iter()
        .filter(not_counted_yet)
        .filter(|p| phase(p) == Some("Succeeded"))
        .filter(|p| !uncounted_succeeded.contains(&p.uid().unwrap_or_default()))
        .map(|p| p.as_ref())
        .collect();
    let new_failed: Vec<&Pod> = pods
        .iter()
        .filter(not_counted_yet)
        .filter(|p| is_failed(p, &spec))
        .filter(|p| !uncounted_failed.contains(&p.uid().unwrap_or_default()))
        .map(|p| p.as_ref())
        .collect();
    let counted_new_failures = new_failed
        .iter()
        .filter(|p| {
            spec.pod_failure_policy
                .as_ref()
                .is_none_or(|policy| failure_policy::evaluate(policy, p).counts())
        })
        .count() as i32;
    let status = job.status.get_or_insert_with(JobStatus::default);
    let mut succeeded = status.succeeded.unwrap_or(0)
        + new_succeeded.len() as i32
        + uncounted_succeeded.len() as i32;
    let failed = status.failed.unwrap_or(0) + counted_new_failures + uncounted_failed.len() as i32;
    if status.start_time.is_none() && !suspended(&spec) {
        status.start_time = Some(Time(now));
    }
    let start_time = status.start_time.as_ref().map(|t| t.0);
    let backoff_record = ctx.pod_backoff.next(&uid, &new_succeeded, &new_failed, now);

    let mut requeue: Option<Duration> = None;
    let mut finished: Option<JobCondition> = cond::find(&job, cond::SUCCESS_CRITERIA_MET)
        .filter(|c| c.status == "True")
        .cloned();
    if finished.is_none() {
        if let Some(target) = cond::find(&job, cond::FAILURE_TARGET).filter(|c| c.status == "True")
        {
            finished = Some(cond::new(
                cond::FAILED,
                "True",
                target.reason.as_deref().unwrap_or_default(),
                target.message.as_deref().unwrap_or_default(),
                now,
            ));
        } else if let Some(policy) = &spec.pod_failure_policy {
            finished = pods.iter().filter(|p| is_failed(p, &spec)).find_map(|p| {
                match failure_policy::evaluate(policy, p) {
                    Outcome::FailJob(message) => Some(failure_target(
                        cond::REASON_POD_FAILURE_POLICY,
                        &message,
                        now,
                    )),
                    _ => None,
                }
            });
        }
    }
    if finished.is_none() {
        let deadline = spec
            .active_deadline_seconds
            .filter(|_| !suspended(&spec))
            .zip(start_time)
            .map(|(seconds, start)| start + jiff::SignedDuration::from_secs(seconds));
        if failed > spec.backoff_limit.unwrap_or(6) || past_backoff_limit_on_failure(&spec, &pods) {
            finished = Some(failure_target(
                cond::REASON_BACKOFF_LIMIT,
                cond::MESSAGE_BACKOFF_LIMIT,
                now,
            ));
        } else if let Some(deadline) = deadline {
            if now >= deadline {
                finished = Some(failure_target(
                    cond::REASON_DEADLINE,
                    cond::MESSAGE_DEADLINE,
                    now,
                ));
            } else {
                requeue = Some(
                    Duration::try_from(deadline.duration_since(now)).unwrap_or(Duration::ZERO),
                );
            }
        }
    }

    let mut succeeded_indexes = Indexes::default();
    let mut previous_indexes = Indexes::default();
    if indexed {
        let total = completions.unwrap_or(0);
        let written = job
            .status
            .as_ref()
            .and_then(|s| s.completed_indexes.as_deref())
            .unwrap_or_default();
        previous_indexes = Indexes::parse(written, total);
        succeeded_indexes = previous_indexes.with(
            pods.iter()
                .filter(|p| phase(p) == Some("Succeeded"))
                .filter_map(|p| indexes::of_pod(p))
                .filter(|i| *i < total),
        );
        succeeded = succeeded_indexes.total();
        if finished.is_none() {
            if let Some(message) =
                success_policy::matched(spec.success_policy.as_ref(), total, &succeeded_indexes)
            {
                finished = Some(cond::new(
                    cond::SUCCESS_CRITERIA_MET,
                    "True",
                    cond::REASON_SUCCESS_POLICY,
                    &message,
                    now,
                ));
            }
        }
    }

    let mut active_count = active.len() as i32;
    let mut suspend_changed = false;
    let mut manage_error: Option<Error> = None;
    if finished.is_some() {
        let (deleted_ready, deleted, error) = delete_active(&ctx, &job, &pod_api, &active).await;
        if deleted != active.len() as i32 || !satisfied {
            // Pods may remain that the cache has not shown yet: not finished this time.
            finished = None;
        }
        active_count -= deleted;
        terminating += deleted;
        ready -= deleted_ready;
        manage_error = error;
    } else {
        let mut managed = false;
        if satisfied && job.metadata.deletion_timestamp.is_none() {
            let outcome = manage(
                &ctx,
                &job,
                &uid,
                &namespace,
                &pod_api,
                &active,
                ManageInput {
                    succeeded,
                    terminating,
                    indexes: &succeeded_indexes,
                    backoff: backoff_record.remaining(now),
                },
            )
            .await;
            active_count = outcome.active;
            terminating += outcome.removed;
            ready -= outcome.removed_ready;
            if let Some(delay) = outcome.requeue {
                requeue = Some(requeue.map_or(delay, |r| r.min(delay)));
            }
            manage_error = outcome.error;
            managed = true;
        }
        let complete = match completions {
            None => succeeded > 0 && active_count == 0,
            Some(c) => succeeded >= c && active_count == 0,
        };
        if complete {
            finished = Some(cond::new(
                cond::SUCCESS_CRITERIA_MET,
                "True",
                cond::REASON_COMPLETIONS_REACHED,
                cond::MESSAGE_COMPLETIONS_REACHED,
                now,
            ));
        } else if managed {
            let status = job.status.get_or_insert_with(JobStatus::default);
            let list = status.conditions.get_or_insert_with(Vec::new);
            if suspended(&spec) {
                if cond::ensure(
                    list,
                    cond::SUSPENDED,
                    "True",
                    "JobSuspended",
                    "Job suspended",
                    now,
                ) {
                    suspend_changed = true;
                    ctx.recorder
                        .publish(&job, NORMAL, "Suspended", "Job suspended".into());
                }
            } else if cond::ensure(
                list,
                cond::SUSPENDED,
                "False",
                "JobResumed",
                "Job resumed",
                now,
            ) {
                suspend_changed = true;
                // activeDeadlineSeconds counts continuous activity: it restarts on resume.
                status.start_time = Some(Time(now));
                ctx.recorder
                    .publish(&job, NORMAL, "Resumed", "Job resumed".into());
            }
        }
    }

    let status = job.status.get_or_insert_with(JobStatus::default);
    let needs_update = suspend_changed
        || status.active.unwrap_or(0) != active_count
        || status.ready != Some(ready)
        || status.terminating != Some(terminating);
    status.active = Some(active_count);
    status.ready = Some(ready);
    status.terminating = Some(terminating);
    let tracking = Tracking {
        pods: &pods,
        expected_removed: &expected_removed,
        uncounted_succeeded: &uncounted_succeeded,
        uncounted_failed: &uncounted_failed,
        previous_indexes: &previous_indexes,
        succeeded_indexes,
        finished,
        terminating,
        backoff_record,
    };
    track(&ctx, job, &uid, &spec, tracking, needs_update).await?;
    if let Some(e) = manage_error {
        return Err(e);
    }
    ctx.backoffs.reset(&uid);
    Ok(match requeue {
        Some(delay) => Action::requeue(delay.max(Duration::from_millis(100))),
        None => Action::await_change(),
    })
}

/// The Job's pods: controlled and matching, plus orphans it adopts (with the tracking
/// finalizer, as upstream's claim adds it); controlled pods that stopped matching are released.
async fn claim(
    ctx: &Context,
    job: &Arc<Job>,
    uid: &str,
    namespace: &str,
    pod_api: &Api<Pod>,
) -> Result<Vec<Arc<Pod>>, Error> {
    let claim = {
        let cache = ctx.pods.read();
        controller_ref::classify(
            cache.controlled_by(uid),
            cache.orphans_in(namespace),
            &selector(job),
            job.metadata.deletion_timestamp.is_some(),
        )
    };
    for pod in &claim.release {
        controller_ref::release(pod_api, pod.as_ref(), uid).await?;
    }
    let mut owned = claim.owned;
    if !claim.adopt.is_empty() {
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
        if controller_ref::can_adopt(&api, job.as_ref()).await? {
            for pod in claim.adopt {
                let patch = serde_json::json!({
                    "metadata": {
                        "ownerReferences": [owner_ref(job.as_ref())],
                        "finalizers": [TRACKING_FINALIZER],
                        "uid": pod.metadata.uid,
                    }
                });
                match pod_api
                    .patch(
                        &pod.name_any(),
                        &PatchParams::default(),
                        &Patch::Strategic(patch),
                    )
                    .await
                {
                    Ok(adopted) => owned.push(Arc::new(adopted)),
                    Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409 | 422) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(owned)
}

/// Deletes the running pods of a Job that is done, keeping their finalizers (they are counted
/// as failed and released by the tracking step). Returns (ready deleted, deleted, error).
async fn delete_active(
    ctx: &Context,
    job: &Job,
    pod_api: &Api<Pod>,
    active: &[Arc<Pod>],
) -> (i32, i32, Option<Error>) {
    let results = futures::future::join_all(active.iter().map(|pod| async move {
        let result = delete_pod(ctx, job, pod_api, pod).await;
        (pods::is_ready(pod), result)
    }))
    .await;
    let (deleted, deleted_ready, error) = tally(results);
    (deleted_ready, deleted, error)
}

/// `(removed, of which ready, last error)` from per-pod `(was ready, result)` pairs.
fn tally(results: Vec<(bool, Result<(), kube::Error>)>) -> (i32, i32, Option<Error>) {
    let mut removed = 0;
    let mut removed_ready = 0;
    let mut error = None;
    for (was_ready, result) in results {
        match result {
            Ok(()) => {
                removed += 1;
                if was_ready {
                    removed_ready += 1;
                }
            }
            Err(e) => error = Some(Error::Manage(api_message(&e))),
        }
    }
    (removed, removed_ready, error)
}

async fn delete_pod(
    ctx: &Context,
    job: &Job,
    pod_api: &Api<Pod>,
    pod: &Pod,
) -> Result<(), kube::Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match pod_api.delete(&pod.name_any(), &params).await {
        Ok(_) => {
            ctx.recorder.publish(
                job,
                NORMAL,
                "SuccessfulDelete",
                format!("Deleted pod: {}", pod.name_any()),
            );
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => {
            ctx.recorder.publish(
                job,
                WARNING,
                "FailedDelete",
                format!("Error deleting: {}", api_message(&e)),
            );
            Err(e)
        }
    }
}

struct ManageInput<'a> {
    succeeded: i32,
    terminating: i32,
    indexes: &'a Indexes,
    backoff: Duration,
}

#[derive(Default)]
struct ManageOutcome {
    active: i32,
    removed: i32,
    removed_ready: i32,
    requeue: Option<Duration>,
    error: Option<Error>,
}

/// Active pods to remove first: for Indexed Jobs those with a duplicate or out-of-range
/// index; then, if more must go, the least advanced (upstream `activePodsForRemoval`).
fn pods_for_removal(
    active: &[Arc<Pod>],
    at_least: usize,
    indexed: bool,
    completions: i32,
) -> Vec<Arc<Pod>> {
    let mut remove = Vec::new();
    let mut left = Vec::new();
    if indexed {
        let mut seen = HashSet::new();
        let mut sorted: Vec<&Arc<Pod>> = active.iter().collect();
        sorted.sort_by_key(|p| indexes::of_pod(p));
        for pod in sorted {
            match indexes::of_pod(pod) {
                Some(i) if i < completions && seen.insert(i) => left.push(pod.clone()),
                _ => remove.push(pod.clone()),
            }
        }
    } else {
        left = active.to_vec();
    }
    if remove.len() < at_least {
        let more = at_least - remove.len();
        remove.extend(victims::choose(&left, &left, more, jiff::Timestamp::now()));
    }
    remove
}

/// The pod a Job creates: the template with the tracking finalizer, and for an Indexed Job
/// the index (annotation, label, hostname `<job>-<index>`, `JOB_COMPLETION_INDEX` in every
/// container) and the name prefix `<job>-<index>-`.
fn pod_for(job: &Job, namespace: &str, index: Option<i32>) -> Pod {
    let spec = job.spec.as_ref();
    let mut template: PodTemplateSpec = spec.map(|s| s.template.clone()).unwrap_or_default();
    let meta = template.metadata.get_or_insert_with(Default::default);
    let finalizers = meta.finalizers.get_or_insert_with(Vec::new);
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.into());
    }
    let name = job.name_any();
    let mut prefix = name.clone();
    if let Some(index) = index {
        meta.annotations
            .get_or_insert_with(Default::default)
            .insert(COMPLETION_INDEX.into(), index.to_string());
        meta.labels
            .get_or_insert_with(Default::default)
            .insert(COMPLETION_INDEX.into(), index.to_string());
        if let Some(pod_spec) = template.spec.as_mut() {
            pod_spec.hostname = Some(format!("{name}-{index}"));
            let env = EnvVar {
                name: "JOB_COMPLETION_INDEX".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                    }),
                    ..EnvVarSource::default()
                }),
            };
            for container in pod_spec
                .containers
                .iter_mut()
                .chain(pod_spec.init_containers.iter_mut().flatten())
            {
                let list = container.env.get_or_insert_with(Vec::new);
                if !list.iter().any(|e| e.name == env.name) {
                    list.push(env.clone());
                }
            }
        }
        prefix = format!("{name}-{index}");
    }
    pods::from_template(&template, namespace, &prefix, owner_ref(job))
}

/// Creates or deletes pods toward the active count the Job wants (upstream `manageJob`).
async fn manage(
    ctx: &Context,
    job: &Job,
    uid: &str,
    namespace: &str,
    pod_api: &Api<Pod>,
    active: &[Arc<Pod>],
    input: ManageInput<'_>,
) -> ManageOutcome {
    let spec = job.spec.as_ref().expect("checked by the caller");
    let mut outcome = ManageOutcome {
        active: active.len() as i32,
        ..ManageOutcome::default()
    };
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions.unwrap_or(0);
    let parallelism = spec.parallelism.unwrap_or(1);

    let remove = |pods: Vec<Arc<Pod>>| async move {
        ctx.expectations
            .expect_deletions(uid, pods.iter().filter_map(|p| p.uid()));
        let results = futures::future::join_all(pods.iter().map(|pod| async move {
            let result = async {
                if has_tracking_finalizer(pod) {
                    remove_finalizer(&ctx.client, pod).await?;
                }
                delete_pod(ctx, job, pod_api, pod).await
            }
            .await;
            if result.is_err() {
                ctx.expectations
                    .deletion_observed(uid, &pod.uid().unwrap_or_default());
            }
            (pods::is_ready(pod), result)
        }))
        .await;
        tally(results)
    };

    if suspended(spec) {
        let victims = pods_for_removal(active, active.len(), indexed, completions);
        let (removed, removed_ready, error) = remove(victims).await;
        outcome.active -= removed;
        outcome.removed = removed;
        outcome.removed_ready = removed_ready;
        outcome.error = error;
        return outcome;
    }

    let want = match spec.completions {
        None if input.succeeded > 0 => outcome.active,
        None => parallelism,
        Some(c) => (c - input.succeeded).min(parallelism).max(0),
    };
    let surplus = (outcome.active - want).max(0) as usize;
    let mut victims = pods_for_removal(active, surplus, indexed, completions);
    victims.truncate(MAX_PODS_PER_SYNC);
    if !victims.is_empty() {
        let (removed, removed_ready, error) = remove(victims).await;
        outcome.active -= removed;
        outcome.removed = removed;
        outcome.removed_ready = removed_ready;
        outcome.error = error;
        return outcome;
    }

    let terminating = if only_replace_failed(spec) {
        input.terminating
    } else {
        0
    };
    let mut missing = (want - terminating - outcome.active).max(0) as usize;
    if missing == 0 {
        return outcome;
    }
    if !input.backoff.is_zero() {
        outcome.requeue = Some(input.backoff);
        return outcome;
    }
    missing = missing.min(MAX_PODS_PER_SYNC);
    let pending_indexes: Mutex<std::vec::IntoIter<i32>> = if indexed {
        let running: BTreeSet<i32> = active.iter().filter_map(|p| indexes::of_pod(p)).collect();
        let list = input.indexes.first_pending(&running, missing, completions);
        missing = list.len();
        Mutex::new(list.into_iter())
    } else {
        Mutex::new(Vec::new().into_iter())
    };
    if missing == 0 {
        return outcome;
    }
    ctx.expectations.expect_creations(uid, missing);
    let (created, error) = slow_start::run(missing, 1, || async {
        let index = if indexed {
            pending_indexes.lock().next()
        } else {
            None
        };
        let pod = pod_for(job, namespace, index);
        match pod_api.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                ctx.recorder.publish(
                    job,
                    NORMAL,
                    "SuccessfulCreate",
                    format!("Created pod: {}", created.name_any()),
                );
                Ok(())
            }
            Err(e) => {
                ctx.recorder.publish(
                    job,
                    WARNING,
                    "FailedCreate",
                    format!("Error creating: {}", api_message(&e)),
                );
                Err(e)
            }
        }
    })
    .await;
    for _ in created..missing {
        ctx.expectations.creation_observed(uid);
    }
    outcome.active += created as i32;
    if let Some(e) = error {
        outcome.error = Some(Error::Manage(api_message(&e)));
    }
    outcome
}

struct Tracking<'a> {
    pods: &'a [Arc<Pod>],
    expected_removed: &'a HashSet<String>,
    uncounted_succeeded: &'a HashSet<String>,
    uncounted_failed: &'a HashSet<String>,
    previous_indexes: &'a Indexes,
    succeeded_indexes: Indexes,
    finished: Option<JobCondition>,
    terminating: i32,
    backoff_record: super::pod_backoff::Record,
}

/// Moves uncounted uids whose pods lost their finalizer into the counters (upstream
/// `cleanUncountedPodsWithoutFinalizers`). Returns whether anything moved.
fn settle_uncounted(status: &mut JobStatus, with_finalizer: &HashSet<String>) -> bool {
    let uncounted = status
        .uncounted_terminated_pods
        .get_or_insert_with(UncountedTerminatedPods::default);
    let mut changed = false;
    for (list, counter) in [
        (&mut uncounted.succeeded, &mut status.succeeded),
        (&mut uncounted.failed, &mut status.failed),
    ] {
        let before = list.as_ref().map_or(0, Vec::len);
        let kept: Vec<String> = list
            .iter()
            .flatten()
            .filter(|uid| with_finalizer.contains(*uid))
            .cloned()
            .collect();
        if kept.len() != before {
            changed = true;
            *counter = Some(counter.unwrap_or(0) + (before - kept.len()) as i32);
            *list = (!kept.is_empty()).then_some(kept);
        }
    }
    changed
}

async fn write_status(ctx: &Context, job: &Job) -> Result<Job, Error> {
    let api: Api<Job> = Api::namespaced(
        ctx.client.clone(),
        job.metadata.namespace.as_deref().unwrap_or_default(),
    );
    Ok(api
        .replace_status(&job.name_any(), &PostParams::default(), job)
        .await?)
}

/// Counts finished pods and removes their finalizers, then adds the terminal condition when
/// nothing is left running or uncounted (upstream `trackJobStatusAndRemoveFinalizers`).
async fn track(
    ctx: &Context,
    mut job: Job,
    uid: &str,
    spec: &JobSpec,
    t: Tracking<'_>,
    mut needs_flush: bool,
) -> Result<(), Error> {
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions.unwrap_or(0);
    let mut pods: Vec<&Arc<Pod>> = t.pods.iter().collect();
    if indexed {
        pods.sort_by_key(|p| indexes::of_pod(p));
    }
    let mut with_finalizer: HashSet<String> = pods
        .iter()
        .filter(|p| has_tracking_finalizer(p))
        .filter_map(|p| p.uid())
        .filter(|u| !t.expected_removed.contains(u))
        .collect();
    let status = job.status.get_or_insert_with(JobStatus::default);
    if settle_uncounted(status, &with_finalizer) {
        needs_flush = true;
    }
    let mut finished = t.finished;
    let job_deleting = job.metadata.deletion_timestamp.is_some();
    let mut to_release: Vec<&Pod> = Vec::new();
    let mut new_indexes = Vec::new();
    let mut reached_max = false;
    let uncounted = status
        .uncounted_terminated_pods
        .get_or_insert_with(UncountedTerminatedPods::default);
    for pod in pods {
        let pod_uid = pod.uid().unwrap_or_default();
        if !has_tracking_finalizer(pod) || t.expected_removed.contains(&pod_uid) {
            continue;
        }
        let considered_failed = is_failed(pod, spec);
        let can_release = job_deleting
            || finished.is_some()
            || phase(pod) == Some("Succeeded")
            || considered_failed;
        if !can_release {
            continue;
        }
        to_release.push(pod);
        let index = indexes::of_pod(pod).filter(|i| *i < completions);
        if phase(pod) == Some("Succeeded") && !t.uncounted_failed.contains(&pod_uid) {
            if indexed {
                if let Some(i) = index.filter(|i| !t.previous_indexes.contains(*i)) {
                    new_indexes.push(i);
                    needs_flush = true;
                }
            } else if !t.uncounted_succeeded.contains(&pod_uid) {
                uncounted
                    .succeeded
                    .get_or_insert_with(Vec::new)
                    .push(pod_uid.clone());
                needs_flush = true;
            }
        } else if considered_failed
            || finished
                .as_ref()
                .is_some_and(|c| c.type_ != cond::SUCCESS_CRITERIA_MET)
        {
            // A Job that failed counts every pod it stops as failed.
            if !t.uncounted_failed.contains(&pod_uid) && (!indexed || index.is_some()) {
                let counts = spec
                    .pod_failure_policy
                    .as_ref()
                    .is_none_or(|policy| failure_policy::evaluate(policy, pod).counts());
                if counts {
                    uncounted
                        .failed
                        .get_or_insert_with(Vec::new)
                        .push(pod_uid.clone());
                    needs_flush = true;
                }
            }
        }
        let pending = new_indexes.len()
            + uncounted.succeeded.as_ref().map_or(0, Vec::len)
            + uncounted.failed.as_ref().map_or(0, Vec::len);
        if pending >= MAX_UNCOUNTED {
            reached_max = true;
            break;
        }
    }
    if indexed {
        let all = t.succeeded_indexes.with(new_indexes);
        let text = all.to_string();
        if status.completed_indexes.as_deref().unwrap_or_default() != text {
            needs_flush = true;
        }
        status.succeeded = Some(all.total());
        status.completed_indexes = Some(text);
    }
    let now = jiff::Timestamp::now();
    if let Some(c) = finished.clone() {
        let list = status.conditions.get_or_insert_with(Vec::new);
        if c.type_ == cond::FAILURE_TARGET {
            list.push(c.clone());
            needs_flush = true;
            finished = Some(cond::new(
                cond::FAILED,
                "True",
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default(),
                now,
            ));
        } else if c.type_ == cond::SUCCESS_CRITERIA_MET {
            if !list.iter().any(|x| x.type_ == cond::SUCCESS_CRITERIA_MET) {
                list.push(c.clone());
                needs_flush = true;
            }
            finished = Some(cond::new(
                cond::COMPLETE,
                "True",
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default(),
                now,
            ));
        }
    }

    // 1. Write the uncounted uids (and interim condition) before touching a finalizer.
    if needs_flush {
        job = write_status(ctx, &job).await?;
        ctx.pod_backoff.update(uid, t.backoff_record);
        needs_flush = false;
    }
    // 2. Release the pods.
    let mut release_error = None;
    if !to_release.is_empty() {
        ctx.finalizers
            .expect(uid, to_release.iter().filter_map(|p| p.uid()));
        let results = futures::future::join_all(
            to_release
                .iter()
                .map(|pod| remove_finalizer(&ctx.client, pod)),
        )
        .await;
        for (pod, result) in to_release.iter().zip(results) {
            let pod_uid = pod.uid().unwrap_or_default();
            match result {
                Ok(()) => {
                    with_finalizer.remove(&pod_uid);
                }
                Err(e) => {
                    ctx.finalizers.observed(uid, &pod_uid);
                    release_error = Some(Error::Manage(format!(
                        "removing tracking finalizer: {}",
                        api_message(&e)
                    )));
                }
            }
        }
    }
    // 3. Count the released pods.
    let status = job.status.get_or_insert_with(JobStatus::default);
    if settle_uncounted(status, &with_finalizer) {
        needs_flush = true;
    }
    if let Some(e) = release_error {
        if needs_flush {
            write_status(ctx, &job).await?;
        }
        return Err(e);
    }
    // 4. The terminal condition, once no pod runs or waits to be counted.
    let mut job_finished = false;
    if let Some(c) = finished.as_ref().filter(|_| !reached_max) {
        let uncounted = status.uncounted_terminated_pods.as_ref().map_or(0, |u| {
            u.succeeded.as_ref().map_or(0, Vec::len) + u.failed.as_ref().map_or(0, Vec::len)
        });
        if uncounted == 0 && t.terminating == 0 {
            let list = status.conditions.get_or_insert_with(Vec::new);
            cond::ensure(
                list,
                &c.type_,
                "True",
                c.reason.as_deref().unwrap_or_default(),
                c.message.as_deref().unwrap_or_default(),
                now,
            );
            if c.type_ == cond::COMPLETE {
                status.completion_time = Some(Time(now));
            }
            job_finished = true;
            needs_flush = true;
        }
    }
    if needs_flush {
        let written = write_status(ctx, &job).await?;
        if job_finished {
            record_finished(ctx, &written, finished.as_ref().expect("finished"));
        }
    }
    Ok(())
}

fn record_finished(ctx: &Context, job: &Job, condition: &JobCondition) {
    if condition.type_ == cond::COMPLETE {
        let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
        if job
            .spec
            .as_ref()
            .and_then(|s| s.completions)
            .is_some_and(|c| succeeded > c)
        {
            ctx.recorder.publish(
                job,
                WARNING,
                "TooManySucceededPods",
                "Too many succeeded pods running after completion count reached".into(),
            );
        }
        ctx.recorder
            .publish(job, NORMAL, "Completed", "Job completed".into());
    } else {
        let reason: &'static str = match condition.reason.as_deref() {
            Some(cond::REASON_BACKOFF_LIMIT) => cond::REASON_BACKOFF_LIMIT,
            Some(cond::REASON_DEADLINE) => cond::REASON_DEADLINE,
            Some(cond::REASON_POD_FAILURE_POLICY) => cond::REASON_POD_FAILURE_POLICY,
            _ => "Failed",
        };
        ctx.recorder.publish(
            job,
            WARNING,
            reason,
            condition.message.clone().unwrap_or_default(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::testing::pod;
    use k8s_openapi::api::batch::v1::JobSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn indexed_pod(name: &str, index: &str) -> Arc<Pod> {
        let mut p = pod(name, "n1", "Running", Some(0));
        p.metadata.annotations = Some([(COMPLETION_INDEX.to_string(), index.to_string())].into());
        Arc::new(p)
    }

    #[test]
    fn duplicate_and_out_of_range_indexes_go_first() {
        let active = vec![
            indexed_pod("a", "0"),
            indexed_pod("b", "0"),
            indexed_pod("c", "7"),
            indexed_pod("d", "1"),
        ];
        let names: BTreeSet<String> = pods_for_removal(&active, 0, true, 3)
            .iter()
            .map(|p| p.name_any())
            .collect();
        assert_eq!(names.len(), 2);
        assert!(names.contains("c"));
        assert!(names.contains("a") || names.contains("b"));
    }

    #[test]
    fn settling_moves_released_uids_into_the_counters() {
        let mut status = JobStatus {
            succeeded: Some(2),
            failed: Some(1),
            uncounted_terminated_pods: Some(UncountedTerminatedPods {
                succeeded: Some(vec!["s1".into(), "s2".into()]),
                failed: Some(vec!["f1".into()]),
            }),
            ..JobStatus::default()
        };
        let still_held = HashSet::from(["s2".to_string()]);
        assert!(settle_uncounted(&mut status, &still_held));
        assert_eq!(status.succeeded, Some(3));
        assert_eq!(status.failed, Some(2));
        let uncounted = status.uncounted_terminated_pods.as_ref().expect("set");
        assert_eq!(uncounted.succeeded, Some(vec!["s2".to_string()]));
        assert_eq!(uncounted.failed, None);
        assert!(!settle_uncounted(&mut status, &still_held));
    }

    #[test]
    fn indexed_pods_carry_their_index() {
        let job = Job {
            metadata: ObjectMeta {
                name: Some("pi".into()),
                uid: Some("u".into()),
                ..ObjectMeta::default()
            },
            spec: Some(JobSpec {
                template: PodTemplateSpec {
                    metadata: None,
                    spec: Some(k8s_openapi::api::core::v1::PodSpec {
                        containers: vec![k8s_openapi::api::core::v1::Container {
                            name: "c".into(),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                },
                ..JobSpec::default()
            }),
            status: None,
        };
        let p = pod_for(&job, "default", Some(3));
        assert_eq!(p.metadata.generate_name.as_deref(), Some("pi-3-"));
        assert_eq!(
            p.metadata.finalizers,
            Some(vec![TRACKING_FINALIZER.to_string()])
        );
        assert_eq!(indexes::of_pod(&p), Some(3));
        let spec = p.spec.expect("spec");
        assert_eq!(spec.hostname.as_deref(), Some("pi-3"));
        assert_eq!(
            spec.containers[0].env.as_ref().expect("env")[0].name,
            "JOB_COMPLETION_INDEX"
        );
        let plain = pod_for(&job, "default", None);
        assert_eq!(plain.metadata.generate_name.as_deref(), Some("pi-"));
        assert!(plain.metadata.annotations.is_none());
    }

    #[test]
    fn deleted_pods_count_as_failed_unless_only_failed_are_replaced() {
        let mut p = pod("a", "n1", "Running", None);
        p.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let mut spec = JobSpec::default();
        assert!(is_failed(&p, &spec));
        assert!(is_terminating(&p));
        spec.pod_replacement_policy = Some("Failed".into());
        assert!(!is_failed(&p, &spec));
    }
}
