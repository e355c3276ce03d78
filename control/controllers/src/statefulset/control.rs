//! What a sync does to the pods (upstream `updateStatefulSet`, `processReplica`,
//! `processCondemned`): the set's ordinals are laid out in a row, missing ones filled with the
//! pod that would be created, and walked in order.
//!
//! - **OrderedReady** (upstream's "monotonic"): ascending, the first ordinal that needs waiting
//!   ends the walk — a pod created now, a failed pod deleted (it is recreated once gone), a pod
//!   terminating, not Running and Ready, or not available after `minReadySeconds`. So `web-1` is
//!   created only once `web-0` is Ready, and nothing is removed while any wanted pod is
//!   unhealthy. Scale down then deletes the highest condemned ordinal first, one per sync,
//!   waiting for it to go; an unhealthy condemned pod blocks unless it is the first unhealthy
//!   one (deleting it cannot make things worse).
//! - **Parallel** (upstream's "burst"): every wanted ordinal is handled at once (slow-start
//!   batches), every condemned pod is deleted at once, and nothing waits for readiness.
//!
//! On the way, pods with a wrong identity (a lost pod-name label, missing claim volumes) are
//! fixed, pending pods get any missing claims, and claim owners are set as the retention policy
//! says. The rolling update (`update.rs`) runs only when the walk was not stopped.
//!
//! Pure: the sync hands in the set, its pods and a claim lookup, and carries out the plan.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};

use super::identity::{self, end_ordinal, ordinal, start_ordinal};
use super::pvc;
use crate::pods::{is_available, is_ready};

/// A revision's name and template.
pub struct Revision<'a> {
    pub name: &'a str,
    pub template: &'a PodTemplateSpec,
}

/// What one request does.
#[derive(Clone, Debug)]
pub enum Step {
    /// Create the pod, its claims first.
    Create(Arc<Pod>),
    /// Delete a pod (finished, condemned or — from `update.rs` — outdated).
    Delete(Arc<Pod>),
    /// Create the claims a pending pod lacks.
    CreateClaims(Arc<Pod>),
    /// Patch the pod's identity and storage — (the pod, the pod fixed) — and put its claims'
    /// owners right.
    Fix(Arc<Pod>, Arc<Pod>),
    /// Put the owners of a condemned pod's claims right.
    FixClaims(Arc<Pod>),
}

/// The walk's outcome: phases run one after the other; within a phase the steps run in order
/// (OrderedReady) or at once (Parallel); a failed step ends the plan.
#[derive(Debug, Default)]
pub struct Plan {
    pub phases: Vec<Vec<Step>>,
    /// The walk stopped (OrderedReady): no rolling update this sync.
    pub blocked: bool,
}

pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// Upstream `isCreated`: the API server has it (the pods the sync made up have no phase).
pub fn is_created(pod: &Pod) -> bool {
    !phase(pod).is_empty()
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Upstream `isRunningAndReady`.
pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_ready(pod)
}

/// Upstream `isUnavailable`: not available after minReadySeconds, or terminating.
pub fn is_unavailable(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    !is_available(pod, min_ready_seconds, now) || is_terminating(pod)
}

pub fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec.min_ready_seconds.unwrap_or(0)
}

/// Upstream `allowsBurst`.
pub fn is_parallel(set: &StatefulSet) -> bool {
    set.spec.pod_management_policy.as_deref() == Some("Parallel")
}

pub fn is_on_delete(set: &StatefulSet) -> bool {
    set.spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        == Some("OnDelete")
}

/// RollingUpdate's partition (0 without one).
pub fn partition(set: &StatefulSet) -> i32 {
    set.spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
}

/// Upstream `newVersionedStatefulSetPod`: below the partition a missing pod comes back at the
/// current revision, otherwise at the update revision.
fn new_versioned_pod(
    set: &StatefulSet,
    current: &Revision<'_>,
    update: &Revision<'_>,
    ordinal: i32,
) -> Pod {
    let rolling = !is_on_delete(set);
    let has_rolling = set
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .is_some();
    let current_replicas = set
        .status
        .as_ref()
        .and_then(|s| s.current_replicas)
        .unwrap_or(0);
    let start = start_ordinal(set);
    let at_current = (rolling && !has_rolling && ordinal < start + current_replicas)
        || (has_rolling && ordinal < start + partition(set));
    let revision = if at_current { current } else { update };
    identity::new_pod(set, revision.template, revision.name, ordinal)
}

/// The set's pods laid out by ordinal.
#[derive(Debug)]
pub struct Layout {
    /// One pod per wanted ordinal, ascending; made-up pods (not created) where none exists.
    pub replicas: Vec<Arc<Pod>>,
    /// Pods with an ordinal outside the range, highest ordinal first.
    pub condemned: Vec<Arc<Pod>>,
}

/// Upstream's split into replicas and condemned; pods without an ordinal are ignored.
pub fn layout(
    set: &StatefulSet,
    pods: &[Arc<Pod>],
    current: &Revision<'_>,
    update: &Revision<'_>,
) -> Layout {
    let (start, end) = (start_ordinal(set), end_ordinal(set));
    let mut by_ordinal: BTreeMap<i32, Arc<Pod>> = BTreeMap::new();
    let mut condemned = Vec::new();
    for pod in pods {
        match ordinal(pod) {
            Some(o) if o >= start && o <= end => {
                by_ordinal.insert(o, pod.clone());
            }
            Some(_) => condemned.push(pod.clone()),
            None => {}
        }
    }
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(p)));
    let replicas = (start..=end)
        .map(|o| {
            by_ordinal
                .remove(&o)
                .unwrap_or_else(|| Arc::new(new_versioned_pod(set, current, update, o)))
        })
        .collect();
    Layout {
        replicas,
        condemned,
    }
}

/// What the walk reads besides the pods.
pub struct Input<'a> {
    pub set: &'a StatefulSet,
    pub now: jiff::Timestamp,
    /// A claim by name, from the cache.
    pub claim: &'a dyn Fn(&str) -> Option<Arc<PersistentVolumeClaim>>,
}

impl Input<'_> {
    fn claims_match_policy(&self, pod: &Pod) -> bool {
        pvc::claims_for(self.set, pod).iter().all(|wanted| {
            match (self.claim)(wanted.metadata.name.as_deref().unwrap_or_default()) {
                None => true,
                Some(claim) => {
                    pvc::has_unexpected_controller(&claim, self.set, pod)
                        || pvc::owners_match(&claim, self.set, pod)
                }
            }
        })
    }

    /// Upstream `PodClaimIsStale`: with `whenScaled: Retain` claims are meant for reuse.
    fn claim_is_stale(&self, pod: &Pod) -> bool {
        if !pvc::policy(self.set).delete_when_scaled {
            return false;
        }
        pvc::claims_for(self.set, pod).iter().any(|wanted| {
            (self.claim)(wanted.metadata.name.as_deref().unwrap_or_default())
                .is_some_and(|claim| pvc::has_stale_owner(&claim, pod))
        })
    }
}

/// What one wanted ordinal needs (upstream `processReplica`): the steps, and whether the walk
/// must stop here (OrderedReady only).
fn process_replica(input: &Input<'_>, pod: &Arc<Pod>, monotonic: bool) -> (Vec<Step>, bool) {
    let set = input.set;
    let mut steps = Vec::new();
    if matches!(phase(pod), "Failed" | "Succeeded") {
        if !is_terminating(pod) {
            steps.push(Step::Delete(pod.clone()));
        }
        return (steps, true);
    }
    if !is_created(pod) {
        if input.claim_is_stale(pod) {
            return (steps, true);
        }
        steps.push(Step::Create(pod.clone()));
        if monotonic {
            return (steps, true);
        }
        // Parallel: a made-up pod has nothing else to fix.
        return (steps, false);
    }
    if phase(pod) == "Pending" && !identity::claim_templates(set).is_empty() {
        let missing = pvc::claims_for(set, pod)
            .iter()
            .any(|c| (input.claim)(c.metadata.name.as_deref().unwrap_or_default()).is_none());
        if missing {
            steps.push(Step::CreateClaims(pod.clone()));
        }
    }
    if monotonic
        && (is_terminating(pod)
            || !is_running_and_ready(pod)
            || !is_available(pod, min_ready_seconds(set), input.now))
    {
        return (steps, true);
    }
    if !identity::identity_matches(set, pod)
        || !identity::storage_matches(set, pod)
        || !input.claims_match_policy(pod)
    {
        let mut fixed = (**pod).clone();
        identity::update_identity(set, &mut fixed);
        identity::update_storage(set, &mut fixed);
        steps.push(Step::Fix(pod.clone(), Arc::new(fixed)));
    }
    (steps, false)
}

/// Upstream `processCondemned`: `(steps, stop)`.
fn process_condemned(
    input: &Input<'_>,
    pod: &Arc<Pod>,
    first_unhealthy: Option<&Arc<Pod>>,
    monotonic: bool,
) -> (Vec<Step>, bool) {
    if is_terminating(pod) {
        return (Vec::new(), monotonic);
    }
    let first = first_unhealthy.is_some_and(|f| Arc::ptr_eq(f, pod));
    let min_ready = min_ready_seconds(input.set);
    if monotonic
        && !first
        && (!is_running_and_ready(pod) || !is_available(pod, min_ready, input.now))
    {
        return (Vec::new(), true);
    }
    (vec![Step::Delete(pod.clone())], true)
}

/// The walk over the layout (upstream `updateStatefulSet` up to the rolling update).
pub fn plan(input: &Input<'_>, layout: &Layout) -> Plan {
    let set = input.set;
    let monotonic = !is_parallel(set);
    let min_ready = min_ready_seconds(set);
    let mut plan = Plan::default();

    // The first unavailable pod: wanted ones in order, then condemned from the lowest ordinal.
    let first_unhealthy = layout
        .replicas
        .iter()
        .chain(layout.condemned.iter().rev())
        .find(|p| is_unavailable(p, min_ready, input.now));

    let mut replica_steps = Vec::new();
    for pod in &layout.replicas {
        let (steps, stop) = process_replica(input, pod, monotonic);
        replica_steps.extend(steps);
        if stop && monotonic {
            plan.phases.push(replica_steps);
            plan.blocked = true;
            return plan;
        }
    }
    plan.phases.push(replica_steps);

    let fix_claims: Vec<Step> = layout
        .condemned
        .iter()
        .filter(|p| !identity::claim_templates(set).is_empty() && !input.claims_match_policy(p))
        .map(|p| Step::FixClaims(p.clone()))
        .collect();
    plan.phases.push(fix_claims);

    let mut deletes = Vec::new();
    for pod in &layout.condemned {
        let (steps, stop) = process_condemned(input, pod, first_unhealthy, monotonic);
        deletes.extend(steps);
        if stop && monotonic {
            plan.phases.push(deletes);
            plan.blocked = true;
            return plan;
        }
    }
    plan.phases.push(deletes);
    plan
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::statefulset::identity::testing::set;
    use crate::statefulset::identity::REVISION_LABEL;
    use k8s_openapi::api::apps::v1::StatefulSetSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    pub const NOW: i64 = 1000;

    /// A pod of `web` with the ordinal, phase, readiness and revision given.
    pub fn member(s: &StatefulSet, ordinal: i32, phase: &str, ready: bool, rev: &str) -> Arc<Pod> {
        let template = s.spec.template.clone();
        let mut p = identity::new_pod(s, &template, rev, ordinal);
        let status = crate::pods::testing::pod("x", "n1", phase, ready.then_some(0)).status;
        p.status = status;
        p.metadata.uid = Some(format!("uid-{ordinal}"));
        p.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(REVISION_LABEL.into(), rev.into());
        Arc::new(p)
    }

    pub fn no_claims(_: &str) -> Option<Arc<PersistentVolumeClaim>> {
        None
    }

    fn run(s: &StatefulSet, pods: &[Arc<Pod>]) -> (Plan, Layout) {
        let template = s.spec.template.clone();
        let rev = Revision {
            name: "web-1",
            template: &template,
        };
        let layout = layout(s, pods, &rev, &rev);
        let input = Input {
            set: s,
            now: jiff::Timestamp::from_second(NOW).expect("valid"),
            claim: &no_claims,
        };
        (plan(&input, &layout), layout)
    }

    /// The plan as `verb pod` strings.
    pub fn describe(plan: &Plan) -> Vec<String> {
        plan.phases
            .iter()
            .flatten()
            .map(|s| {
                let (verb, p) = match s {
                    Step::Create(p) => ("create", p),
                    Step::Delete(p) => ("delete", p),
                    Step::CreateClaims(p) => ("claims", p),
                    Step::Fix(p, _) => ("fix", p),
                    Step::FixClaims(p) => ("fixclaims", p),
                };
                format!("{verb} {}", p.metadata.name.as_deref().unwrap_or_default())
            })
            .collect()
    }

    fn parallel(mut s: StatefulSet) -> StatefulSet {
        s.spec = StatefulSetSpec {
            pod_management_policy: Some("Parallel".into()),
            ..s.spec
        };
        s
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time() {
        let s = set("web", 3, None);
        let (p, layout) = run(&s, &[]);
        assert_eq!(describe(&p), ["create web-0"]);
        assert!(p.blocked);
        assert_eq!(layout.replicas.len(), 3);
        assert!(!is_created(&layout.replicas[0]));

        // web-0 exists but is not ready yet: wait.
        let (p, _) = run(&s, &[member(&s, 0, "Pending", false, "web-1")]);
        assert!(describe(&p).is_empty() && p.blocked);
        let (p, _) = run(&s, &[member(&s, 0, "Running", false, "web-1")]);
        assert!(describe(&p).is_empty() && p.blocked);

        // web-0 Running and Ready: web-1 next.
        let (p, _) = run(&s, &[member(&s, 0, "Running", true, "web-1")]);
        assert_eq!(describe(&p), ["create web-1"]);

        // All there and ready: nothing, and the update step may run.
        let all: Vec<_> = (0..3)
            .map(|o| member(&s, o, "Running", true, "web-1"))
            .collect();
        let (p, _) = run(&s, &all);
        assert!(describe(&p).is_empty() && !p.blocked);
    }

    #[test]
    fn ordered_ready_waits_for_min_ready_seconds() {
        let mut s = set("web", 2, None);
        s.spec.min_ready_seconds = Some(NOW as i32 + 10);
        let (p, _) = run(&s, &[member(&s, 0, "Running", true, "web-1")]);
        assert!(
            describe(&p).is_empty() && p.blocked,
            "ready but not yet available"
        );
    }

    #[test]
    fn failed_pods_are_deleted_and_recreated_later() {
        let s = set("web", 2, None);
        let (p, _) = run(
            &s,
            &[
                member(&s, 0, "Failed", false, "web-1"),
                member(&s, 1, "Running", true, "web-1"),
            ],
        );
        assert_eq!(describe(&p), ["delete web-0"]);
        assert!(p.blocked);
    }

    #[test]
    fn scale_down_deletes_the_highest_ordinal_first_one_at_a_time() {
        let s = set("web", 1, None);
        let pods: Vec<_> = (0..3)
            .map(|o| member(&s, o, "Running", true, "web-1"))
            .collect();
        let (p, layout) = run(&s, &pods);
        let condemned: Vec<_> = layout
            .condemned
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(condemned, ["web-2", "web-1"]);
        assert_eq!(describe(&p), ["delete web-2"]);

        // web-2 terminating: wait for it to go before web-1.
        let mut going = (*pods[2]).clone();
        going.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let (p, _) = run(&s, &[pods[0].clone(), pods[1].clone(), Arc::new(going)]);
        assert!(describe(&p).is_empty() && p.blocked);

        // A wanted pod that is not ready blocks scale down altogether.
        let (p, _) = run(
            &s,
            &[
                member(&s, 0, "Running", false, "web-1"),
                pods[1].clone(),
                pods[2].clone(),
            ],
        );
        assert!(describe(&p).is_empty() && p.blocked);

        // An unready condemned pod is deleted only if it is the first unhealthy one.
        let (p, _) = run(
            &s,
            &[
                pods[0].clone(),
                member(&s, 1, "Running", false, "web-1"),
                pods[2].clone(),
            ],
        );
        assert_eq!(describe(&p), ["delete web-2"], "web-2 is healthy");
        let (p, _) = run(
            &s,
            &[
                pods[0].clone(),
                pods[1].clone(),
                member(&s, 2, "Running", false, "web-1"),
            ],
        );
        assert_eq!(
            describe(&p),
            ["delete web-2"],
            "the first unhealthy pod may go"
        );
        // An unhealthy condemned pod above the first unhealthy one waits.
        let (p, _) = run(
            &s,
            &[
                pods[0].clone(),
                member(&s, 1, "Running", false, "web-1"),
                member(&s, 2, "Running", false, "web-1"),
            ],
        );
        assert!(describe(&p).is_empty() && p.blocked);
    }

    #[test]
    fn parallel_creates_and_deletes_at_once() {
        let s = parallel(set("web", 3, None));
        let (p, _) = run(&s, &[]);
        assert_eq!(
            describe(&p),
            ["create web-0", "create web-1", "create web-2"]
        );
        assert!(!p.blocked);
        let s = parallel(set("web", 1, None));
        let pods: Vec<_> = (0..3)
            .map(|o| member(&s, o, "Running", false, "web-1"))
            .collect();
        let (p, _) = run(&s, &pods);
        assert_eq!(describe(&p), ["delete web-2", "delete web-1"]);
    }

    #[test]
    fn wrong_identity_is_fixed_and_the_walk_goes_on() {
        let s = set("web", 2, Some(3));
        let mut lost = (*member(&s, 3, "Running", true, "web-1")).clone();
        lost.metadata
            .labels
            .as_mut()
            .expect("labels")
            .remove(identity::POD_NAME_LABEL);
        let (p, _) = run(
            &s,
            &[Arc::new(lost), member(&s, 4, "Running", true, "web-1")],
        );
        assert_eq!(describe(&p), ["fix web-3"]);
        let Step::Fix(_, fixed) = &p.phases[0][0] else {
            panic!("a fix");
        };
        assert!(identity::identity_matches(&s, fixed));
        // A pod named for another set, or without an ordinal, is not laid out.
        let mut stray = (*member(&s, 3, "Running", true, "web-1")).clone();
        stray.metadata.name = Some("web".into());
        let (_, layout) = run(&s, &[Arc::new(stray)]);
        assert!(layout.replicas.iter().all(|p| !is_created(p)));
        assert!(layout.condemned.is_empty());
    }
}
