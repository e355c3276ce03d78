//! The taints the node lifecycle controller owns (upstream `core/v1/well_known_taints.go`) and
//! how a node's conditions map onto them.
//!
//! Two families, as upstream:
//! * **NoExecute** `node.kubernetes.io/unreachable` (Ready Unknown) and
//!   `node.kubernetes.io/not-ready` (Ready False): mutually exclusive, like the Ready condition
//!   they mirror; swapped in one write when the state changes; removed when Ready turns True.
//!   They drive eviction (`tainteviction.rs`), so they are added at a rate-limited pace per zone
//!   (`zones.rs`). `timeAdded` is the time of the write.
//! * **NoSchedule** (TaintNodesByCondition): not-ready, unreachable, memory-pressure,
//!   disk-pressure, pid-pressure, network-unavailable from the conditions and unschedulable from
//!   `spec.unschedulable`; kept equal to what the node's current state implies on every node
//!   change. They only keep new pods away, so they are not rate-limited.
//!
//! Taints this controller does not own (a user's, the control plane's) are never touched.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

pub const NO_EXECUTE: &str = "NoExecute";
pub const NO_SCHEDULE: &str = "NoSchedule";

/// Condition type and status → taint key (upstream `nodeConditionToTaintKeyStatusMap`).
const CONDITION_TAINTS: [(&str, &str, &str); 6] = [
    ("Ready", "False", NOT_READY),
    ("Ready", "Unknown", UNREACHABLE),
    ("MemoryPressure", "True", MEMORY_PRESSURE),
    ("DiskPressure", "True", DISK_PRESSURE),
    ("NetworkUnavailable", "True", NETWORK_UNAVAILABLE),
    ("PIDPressure", "True", PID_PRESSURE),
];

pub fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        ..Taint::default()
    }
}

/// Same key and effect (upstream `Taint.MatchTaint`): the identity of a taint on a node.
pub fn matches(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect == b.effect
}

pub fn taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

pub fn has(node: &Node, wanted: &Taint) -> bool {
    taints(node).iter().any(|t| matches(t, wanted))
}

/// The NoSchedule taints the node's conditions and `spec.unschedulable` call for (upstream
/// `doNoScheduleTaintingPass`).
pub fn no_schedule_wanted(node: &Node) -> Vec<Taint> {
    let mut wanted = Vec::new();
    for condition in node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
    {
        for (type_, status, key) in CONDITION_TAINTS {
            if condition.type_ == type_ && condition.status == status {
                wanted.push(taint(key, NO_SCHEDULE));
            }
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.push(taint(UNSCHEDULABLE, NO_SCHEDULE));
    }
    wanted
}

fn owned_no_schedule(t: &Taint) -> bool {
    t.effect == NO_SCHEDULE
        && (t.key == UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|(_, _, key)| *key == t.key))
}

/// What to add and remove so the node's NoSchedule condition taints match its state.
pub fn no_schedule_diff(node: &Node) -> (Vec<Taint>, Vec<Taint>) {
    let wanted = no_schedule_wanted(node);
    let have: Vec<&Taint> = taints(node)
        .iter()
        .filter(|t| owned_no_schedule(t))
        .collect();
    let add = wanted
        .iter()
        .filter(|w| !have.iter().any(|h| matches(h, w)))
        .cloned()
        .collect();
    let remove = have
        .into_iter()
        .filter(|h| !wanted.iter().any(|w| matches(h, w)))
        .cloned()
        .collect();
    (add, remove)
}

/// The NoExecute taint a Ready condition status calls for, and the one it excludes.
pub fn no_execute_for(ready_status: &str) -> Option<(Taint, Taint)> {
    let not_ready = taint(NOT_READY, NO_EXECUTE);
    let unreachable = taint(UNREACHABLE, NO_EXECUTE);
    match ready_status {
        "False" => Some((not_ready, unreachable)),
        "Unknown" => Some((unreachable, not_ready)),
        _ => None,
    }
}

/// The node's taints after adding `add` (stamped `timeAdded: now`, replacing a taint with the
/// same key and effect) and removing `remove` (upstream `SwapNodeControllerTaint`); None if
/// nothing changes.
pub fn swap(
    current: &[Taint],
    add: &[Taint],
    remove: &[Taint],
    now: Timestamp,
) -> Option<Vec<Taint>> {
    let mut next: Vec<Taint> = current
        .iter()
        .filter(|t| !remove.iter().any(|r| matches(t, r)))
        .cloned()
        .collect();
    for wanted in add {
        // Already there with the same value: left as it is (its timeAdded too).
        if current
            .iter()
            .any(|t| matches(t, wanted) && t.value == wanted.value)
        {
            continue;
        }
        next.retain(|t| !matches(t, wanted));
        next.push(Taint {
            time_added: Some(Time(now)),
            ..wanted.clone()
        });
    }
    (next != current).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodelifecycle::health::testing::{at, node};
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec};

    fn with_conditions(conditions: &[(&str, &str)]) -> Node {
        let mut n = node("a", None);
        n.status.as_mut().unwrap().conditions = Some(
            conditions
                .iter()
                .map(|(t, s)| NodeCondition {
                    type_: (*t).into(),
                    status: (*s).into(),
                    ..NodeCondition::default()
                })
                .collect(),
        );
        n
    }

    fn keys(taints: &[Taint]) -> Vec<&str> {
        taints.iter().map(|t| t.key.as_str()).collect()
    }

    #[test]
    fn conditions_map_to_no_schedule_taints() {
        let mut n = with_conditions(&[
            ("Ready", "Unknown"),
            ("MemoryPressure", "True"),
            ("DiskPressure", "False"),
            ("PIDPressure", "True"),
            ("NetworkUnavailable", "True"),
        ]);
        n.spec = Some(NodeSpec {
            unschedulable: Some(true),
            ..NodeSpec::default()
        });
        assert_eq!(
            keys(&no_schedule_wanted(&n)),
            [
                UNREACHABLE,
                MEMORY_PRESSURE,
                PID_PRESSURE,
                NETWORK_UNAVAILABLE,
                UNSCHEDULABLE
            ]
        );
        assert!(no_schedule_wanted(&with_conditions(&[("Ready", "True")])).is_empty());
        assert_eq!(
            keys(&no_schedule_wanted(&with_conditions(&[("Ready", "False")]))),
            [NOT_READY]
        );
    }

    #[test]
    fn the_no_schedule_diff_leaves_foreign_taints_alone() {
        let mut n = with_conditions(&[("Ready", "True"), ("DiskPressure", "True")]);
        n.spec = Some(NodeSpec {
            taints: Some(vec![
                taint(NOT_READY, NO_SCHEDULE),
                taint("example.com/dedicated", NO_SCHEDULE),
                taint(UNREACHABLE, NO_EXECUTE),
            ]),
            ..NodeSpec::default()
        });
        let (add, remove) = no_schedule_diff(&n);
        assert_eq!(keys(&add), [DISK_PRESSURE]);
        assert_eq!(keys(&remove), [NOT_READY]);
    }

    #[test]
    fn swapping_stamps_time_added_and_replaces_the_opposite_taint() {
        let (add, remove) = no_execute_for("False").unwrap();
        let current = vec![
            taint("example.com/x", NO_SCHEDULE),
            Taint {
                time_added: Some(Time(at(5))),
                ..taint(UNREACHABLE, NO_EXECUTE)
            },
        ];
        let next = swap(&current, std::slice::from_ref(&add), &[remove], at(10)).unwrap();
        assert_eq!(keys(&next), ["example.com/x", NOT_READY]);
        assert_eq!(next[1].time_added, Some(Time(at(10))));
        assert_eq!(next[1].effect, NO_EXECUTE);
        // Already present: nothing to write, the first timeAdded stands.
        assert_eq!(swap(&next, &[add], &[], at(20)), None);
        // Ready again: both NoExecute taints go.
        let cleared = swap(
            &next,
            &[],
            &[taint(NOT_READY, NO_EXECUTE), taint(UNREACHABLE, NO_EXECUTE)],
            at(30),
        )
        .unwrap();
        assert_eq!(keys(&cleared), ["example.com/x"]);
        assert!(no_execute_for("True").is_none());
    }
}
