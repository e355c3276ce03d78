//! Deployment status and conditions (upstream `progress.go`, `sync.go` calculateStatus and
//! `deployment_util.go`): the counters summed over the ReplicaSets, `Available` from
//! maxUnavailable, and `Progressing` — created/found/updated a ReplicaSet, finished
//! (`NewReplicaSetAvailable`), paused/resumed, or stuck past progressDeadlineSeconds
//! (`ProgressDeadlineExceeded`, which `kubectl rollout status` turns into an error).
//!
//! Everything here is pure: the sync decides when to write.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::util;

pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";
pub const RS_CREATE_ERROR: &str = "ReplicaSetCreateError";
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

pub fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some(type_))
}

pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: jiff::Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status.into()),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Upstream `SetDeploymentCondition`: same status and reason → unchanged; same status → the
/// transition time is kept.
pub fn set_condition(status: &mut DeploymentStatus, mut c: DeploymentCondition) {
    let type_ = c.type_.clone().unwrap_or_default();
    if let Some(current) = condition(status, &type_) {
        if current.status == c.status && current.reason == c.reason {
            return;
        }
        if current.status == c.status {
            c.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &type_);
    status.conditions.get_or_insert_with(Vec::new).push(c);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_.as_deref() != Some(type_));
    }
}

pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec.progress_deadline_seconds.filter(|s| *s != i32::MAX)
}

pub fn is_paused(d: &Deployment) -> bool {
    d.spec.paused.unwrap_or(false)
}

/// The counters over all ReplicaSets and the Available condition (upstream `calculateStatus`).
pub fn calculate_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: jiff::Timestamp,
) -> DeploymentStatus {
    let current = d.status.clone().unwrap_or_default();
    let available: i32 = all.iter().map(|rs| util::available_replicas(rs)).sum();
    let total_spec = util::sum_spec(all);
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(all.iter().map(|rs| util::status_replicas(rs)).sum()),
        updated_replicas: Some(new.map(util::status_replicas).unwrap_or(0)),
        ready_replicas: Some(all.iter().map(|rs| util::ready_replicas(rs)).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((total_spec - available).max(0)),
        collision_count: current.collision_count,
        conditions: current.conditions.clone(),
        terminating_replicas: None,
    };
    if available >= util::replicas(d) - util::max_unavailable(d) {
        set_condition(
            &mut status,
            new_condition(
                AVAILABLE,
                "True",
                MIN_AVAILABLE,
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                AVAILABLE,
                "False",
                MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    status
}

/// All replicas updated and available, and the latest spec observed (upstream
/// `DeploymentComplete`).
pub fn complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let want = util::replicas(d);
    status.updated_replicas == Some(want)
        && status.replicas == Some(want)
        && status.available_replicas == Some(want)
        && status.observed_generation >= d.metadata.generation
}

/// Some counter moved forward since the status on record (upstream `DeploymentProgressing`).
fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// The Progressing condition's last update is older than the deadline (upstream
/// `DeploymentTimedOut`).
pub fn timed_out(d: &Deployment, status: &DeploymentStatus, now: jiff::Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = condition(status, PROGRESSING) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => match &c.last_update_time {
            Some(t) => t.0 + jiff::SignedDuration::from_secs(i64::from(deadline)) < now,
            None => false,
        },
    }
}

fn rs_or_deployment(new: Option<&ReplicaSet>, d: &Deployment) -> String {
    match new {
        Some(rs) => format!(
            "ReplicaSet \"{}\"",
            rs.metadata.name.as_deref().unwrap_or_default()
        ),
        None => format!(
            "Deployment \"{}\"",
            d.metadata.name.as_deref().unwrap_or_default()
        ),
    }
}

/// The status `syncRolloutStatus` writes: counters plus the Progressing condition, and the
/// ReplicaFailure condition carried over from the ReplicaSets.
pub fn rollout_status(
    d: &Deployment,
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    now: jiff::Timestamp,
) -> DeploymentStatus {
    let mut status = calculate_status(d, all, new, now);
    if progress_deadline(d).is_none() {
        remove_condition(&mut status, PROGRESSING);
    }
    let current = condition(&status, PROGRESSING).cloned();
    let is_complete = status.replicas == status.updated_replicas
        && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE);
    if progress_deadline(d).is_some() && !is_complete {
        let who = rs_or_deployment(new, d);
        if complete(d, &status) {
            set_condition(
                &mut status,
                new_condition(
                    PROGRESSING,
                    "True",
                    NEW_RS_AVAILABLE,
                    format!("{who} has successfully progressed."),
                    now,
                ),
            );
        } else if progressing(d, &status) {
            let mut c = new_condition(
                PROGRESSING,
                "True",
                RS_UPDATED,
                format!("{who} is progressing."),
                now,
            );
            if let Some(current) = &current {
                if current.status.as_deref() == Some("True") {
                    c.last_transition_time = current.last_transition_time.clone();
                }
                remove_condition(&mut status, PROGRESSING);
            }
            set_condition(&mut status, c);
        } else if timed_out(d, &status, now) {
            set_condition(
                &mut status,
                new_condition(
                    PROGRESSING,
                    "False",
                    TIMED_OUT,
                    format!("{who} has timed out progressing."),
                    now,
                ),
            );
        }
    }
    match replica_failure(all, new) {
        Some(c) => set_condition(&mut status, c),
        None => remove_condition(&mut status, REPLICA_FAILURE),
    }
    status
}

fn to_deployment_condition(c: &ReplicaSetCondition) -> DeploymentCondition {
    DeploymentCondition {
        type_: Some(REPLICA_FAILURE.into()),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_transition_time: c.last_transition_time.clone(),
        last_update_time: c.last_transition_time.clone(),
    }
}

/// The first ReplicaFailure of the new ReplicaSet, else of an old one.
fn replica_failure(all: &[&ReplicaSet], new: Option<&ReplicaSet>) -> Option<DeploymentCondition> {
    let failure = |rs: &ReplicaSet| {
        rs.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.type_.as_deref() == Some(REPLICA_FAILURE))
            })
            .map(to_deployment_condition)
    };
    if let Some(c) = new.and_then(failure) {
        return Some(c);
    }
    all.iter().find_map(|rs| failure(rs))
}

/// When to look again at a rollout that may run into its deadline (upstream
/// `requeueStuckDeployment`).
pub fn requeue_after(
    d: &Deployment,
    status: &DeploymentStatus,
    now: jiff::Timestamp,
) -> Option<std::time::Duration> {
    let deadline = progress_deadline(d)?;
    let c = condition(status, PROGRESSING)?;
    if matches!(
        c.reason.as_deref(),
        Some(NEW_RS_AVAILABLE) | Some(TIMED_OUT)
    ) || complete(d, status)
    {
        return None;
    }
    let at = c.last_update_time.as_ref()?.0 + jiff::SignedDuration::from_secs(i64::from(deadline));
    let left = at.duration_since(now).as_secs();
    Some(std::time::Duration::from_secs(left.max(1) as u64))
}

/// Upstream `checkPausedConditions`: Progressing Unknown `DeploymentPaused` while paused,
/// `DeploymentResumed` once resumed; a timed-out rollout keeps its condition. True if the
/// status changed.
pub fn paused_conditions(d: &mut Deployment, now: jiff::Timestamp) -> bool {
    if progress_deadline(d).is_none() {
        return false;
    }
    let status = d.status.get_or_insert_with(DeploymentStatus::default);
    let reason = condition(status, PROGRESSING).and_then(|c| c.reason.clone());
    if reason.as_deref() == Some(TIMED_OUT) {
        return false;
    }
    let paused_recorded = reason.as_deref() == Some(PAUSED);
    let paused = d.spec.paused.unwrap_or(false);
    let status = d.status.get_or_insert_with(DeploymentStatus::default);
    if paused && !paused_recorded {
        set_condition(
            status,
            new_condition(
                PROGRESSING,
                "Unknown",
                PAUSED,
                "Deployment is paused".into(),
                now,
            ),
        );
        true
    } else if !paused && paused_recorded {
        set_condition(
            status,
            new_condition(
                PROGRESSING,
                "Unknown",
                RESUMED,
                "Deployment is resumed".into(),
                now,
            ),
        );
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, ReplicaSetSpec, ReplicaSetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deployment(replicas: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                generation: Some(2),
                ..ObjectMeta::default()
            },
            spec: DeploymentSpec {
                replicas: Some(replicas),
                progress_deadline_seconds: Some(600),
                ..DeploymentSpec::default()
            },
            status: None,
        }
    }

    fn rs(name: &str, spec: i32, status: i32, available: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(spec),
                ..ReplicaSetSpec::default()
            },
            status: Some(ReplicaSetStatus {
                replicas: status,
                ready_replicas: Some(available),
                available_replicas: Some(available),
                ..ReplicaSetStatus::default()
            }),
        }
    }

    #[test]
    fn rollout_conditions_follow_progress() {
        let now = jiff::Timestamp::from_second(1_000).expect("valid");
        let mut d = deployment(3);
        let new = rs("web-new", 3, 3, 1);
        let old = rs("web-old", 1, 1, 1);
        let status = rollout_status(&d, &[&new, &old], Some(&new), now);
        assert_eq!(status.replicas, Some(4));
        assert_eq!(status.updated_replicas, Some(3));
        assert_eq!(status.unavailable_replicas, Some(2));
        let p = condition(&status, PROGRESSING).expect("progressing");
        assert_eq!(p.reason.as_deref(), Some(RS_UPDATED));
        assert_eq!(
            p.message.as_deref(),
            Some("ReplicaSet \"web-new\" is progressing.")
        );
        // 3 replicas, 25 %: maxUnavailable 0, so 2 available is not enough.
        let a = condition(&status, AVAILABLE).expect("available");
        assert_eq!(a.reason.as_deref(), Some(MIN_UNAVAILABLE));

        d.status = Some(status);
        let done = rs("web-new", 3, 3, 3);
        let status = rollout_status(&d, &[&done], Some(&done), now);
        assert!(complete(&d, &status));
        let p = condition(&status, PROGRESSING).expect("progressing");
        assert_eq!(p.reason.as_deref(), Some(NEW_RS_AVAILABLE));
        assert_eq!(
            condition(&status, AVAILABLE).and_then(|c| c.reason.as_deref()),
            Some(MIN_AVAILABLE)
        );

        // No progress for longer than the deadline.
        let later = jiff::Timestamp::from_second(2_000).expect("valid");
        let stuck = rs("web-new", 3, 3, 1);
        let mut d = deployment(3);
        d.status = Some(rollout_status(&d, &[&stuck], Some(&stuck), now));
        let status = rollout_status(&d, &[&stuck], Some(&stuck), later);
        assert_eq!(
            condition(&status, PROGRESSING).and_then(|c| c.reason.as_deref()),
            Some(TIMED_OUT)
        );
    }

    #[test]
    fn pause_and_resume() {
        let now = jiff::Timestamp::from_second(1_000).expect("valid");
        let mut d = deployment(1);
        d.spec.paused = Some(true);
        assert!(paused_conditions(&mut d, now));
        assert!(!paused_conditions(&mut d, now));
        d.spec.paused = Some(false);
        assert!(paused_conditions(&mut d, now));
        let status = d.status.as_ref().expect("status");
        assert_eq!(
            condition(status, PROGRESSING).and_then(|c| c.message.as_deref()),
            Some("Deployment is resumed")
        );
    }
}
