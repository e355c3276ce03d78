//! Per-node health (upstream `tryUpdateNodeHealth`): when did this controller last see a sign of
//! life from the node's kubelet, and is that longer ago than the grace period?
//!
//! A sign of life is a new `lastHeartbeatTime` on the Node's Ready condition **or** a renewal of
//! its Lease `kube-node-lease/<node>`. The kubelet renews the Lease every 10 s but posts an
//! unchanged status only every few minutes, so judging by the condition alone would call healthy
//! nodes dead (pitfall 10 of the reference). The times compared are this controller's own clock
//! at the moment it *observed* a change ("probe timestamp"), never the kubelet's timestamps, so
//! clock skew between machines does not matter — as upstream.
//!
//! Past the grace period (`--node-monitor-grace-period`; `--node-startup-grace-period` for a node
//! that never posted a Ready condition) Ready, MemoryPressure, DiskPressure and PIDPressure turn
//! `Unknown` with upstream's reasons and messages. NetworkUnavailable is left alone (the network
//! plugin owns it). The caller writes the new conditions; this module only decides.

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

/// The conditions the controller turns Unknown when the kubelet goes quiet.
pub const MONITORED: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// The two grace periods (upstream flag names in `lib.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Grace {
    pub monitor: Duration,
    pub startup: Duration,
}

/// What the controller last saw of one node (upstream `nodeHealthData`).
#[derive(Debug, Clone)]
struct Saved {
    ready: Option<NodeCondition>,
    probe: Timestamp,
    ready_transition: Timestamp,
    lease_renew: Option<Timestamp>,
}

/// One look at a node.
#[derive(Debug, Clone)]
pub struct Observation {
    pub grace: Duration,
    /// The Ready condition as the kubelet left it (a made-up Unknown one if it never posted).
    pub observed_ready: NodeCondition,
    /// The Ready condition after this look (Unknown if the node went quiet); None if the node
    /// has none and this look did not add one.
    pub current_ready: Option<NodeCondition>,
    /// The node's new `status.conditions`, if they must be written.
    pub update: Option<Vec<NodeCondition>>,
}

#[derive(Debug, Default)]
pub struct Tracker {
    by_node: HashMap<String, Saved>,
}

pub fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn creation(node: &Node) -> Timestamp {
    node.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn heartbeat(c: &NodeCondition) -> Option<Timestamp> {
    c.last_heartbeat_time.as_ref().map(|t| t.0)
}

fn transition(c: &NodeCondition) -> Option<Timestamp> {
    c.last_transition_time.as_ref().map(|t| t.0)
}

impl Tracker {
    /// Looks at `node` at `now`; `lease_renew` is its Lease's `spec.renewTime`, if it has one.
    pub fn observe(
        &mut self,
        node: &Node,
        lease_renew: Option<Timestamp>,
        now: Timestamp,
        grace: Grace,
    ) -> Observation {
        let name = node.name_any();
        let created = creation(node);
        let current = condition(node, "Ready").cloned();
        let (observed_ready, grace) = match &current {
            Some(c) => (c.clone(), grace.monitor),
            // Never posted: pretend it posted Unknown at creation, and give it the startup grace.
            None => (
                NodeCondition {
                    type_: "Ready".into(),
                    status: "Unknown".into(),
                    last_heartbeat_time: Some(Time(created)),
                    last_transition_time: Some(Time(created)),
                    ..NodeCondition::default()
                },
                grace.startup,
            ),
        };
        let fresh = |ready: Option<NodeCondition>, lease_renew| Saved {
            ready,
            probe: now,
            ready_transition: now,
            lease_renew,
        };
        let saved = self.by_node.get(&name).cloned();
        let mut health = match (saved, &current) {
            (None, None) => Saved {
                ready: None,
                probe: created,
                ready_transition: created,
                lease_renew: None,
            },
            // First sight (or the controller restarted): assume it was alive just now.
            (None, Some(c)) => fresh(Some(c.clone()), None),
            (Some(s), None) if s.ready.is_some() => {
                tracing::warn!(node = %name, "the Ready condition was removed from the node's status");
                fresh(None, s.lease_renew)
            }
            (Some(s), None) => s,
            (Some(s), Some(c)) => match &s.ready {
                None => fresh(Some(c.clone()), s.lease_renew),
                Some(old) if heartbeat(old) != heartbeat(c) => Saved {
                    ready: Some(c.clone()),
                    probe: now,
                    ready_transition: if transition(old) != transition(c) {
                        now
                    } else {
                        s.ready_transition
                    },
                    lease_renew: s.lease_renew,
                },
                Some(_) => s,
            },
        };
        // A renewed Lease is a heartbeat too (a node that renews its Lease but never posted
        // status counts as healthy, as upstream).
        if let Some(renew) = lease_renew {
            if health.lease_renew.is_none_or(|saved| saved < renew) {
                health.lease_renew = Some(renew);
                health.probe = now;
            }
        }

        let mut observation = Observation {
            grace,
            observed_ready: observed_ready.clone(),
            current_ready: current.clone(),
            update: None,
        };
        let grace_signed = SignedDuration::try_from(grace).unwrap_or(SignedDuration::MAX);
        if now
            > health
                .probe
                .saturating_add(grace_signed)
                .unwrap_or(Timestamp::MAX)
        {
            let mut conditions: Vec<NodeCondition> = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            for type_ in MONITORED {
                match conditions.iter_mut().find(|c| c.type_ == type_) {
                    None => conditions.push(NodeCondition {
                        type_: type_.into(),
                        status: "Unknown".into(),
                        reason: Some("NodeStatusNeverUpdated".into()),
                        message: Some("Kubelet never posted node status.".into()),
                        last_heartbeat_time: Some(Time(created)),
                        last_transition_time: Some(Time(now)),
                    }),
                    Some(c) if c.status != "Unknown" => {
                        c.status = "Unknown".into();
                        c.reason = Some("NodeStatusUnknown".into());
                        c.message = Some("Kubelet stopped posting node status.".into());
                        c.last_transition_time = Some(Time(now));
                    }
                    Some(_) => {}
                }
            }
            let ready = conditions.iter().find(|c| c.type_ == "Ready").cloned();
            if ready.as_ref() != Some(&observed_ready) {
                observation.current_ready = ready;
                observation.update = Some(conditions);
            }
        }
        self.by_node.insert(name, health);
        observation
    }

    /// The conditions of `observe` were written: remember them as the node's status.
    pub fn written(&mut self, node: &str, ready: Option<NodeCondition>, now: Timestamp) {
        if let Some(saved) = self.by_node.get_mut(node) {
            saved.ready = ready;
            saved.ready_transition = now;
        }
    }

    /// Leaving full-disruption mode: every node gets a fresh grace period (upstream does this so
    /// that nodes cut off by a control-plane outage are not all evicted at once afterwards).
    pub fn reset_probes(&mut self, now: Timestamp) {
        for saved in self.by_node.values_mut() {
            saved.probe = now;
            saved.ready_transition = now;
        }
    }

    pub fn forget(&mut self, node: &str) {
        self.by_node.remove(node);
    }
}

#[cfg(test)]
pub mod testing {
    //! Nodes for the unit tests.
    use super::*;
    use k8s_openapi::api::core::v1::NodeStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("valid time")
    }

    /// A node created at 0 whose Ready condition (if any) has this status and heartbeat.
    pub fn node(name: &str, ready: Option<(&str, i64)>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(at(0))),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(NodeStatus {
                conditions: ready.map(|(status, beat)| {
                    vec![
                        NodeCondition {
                            type_: "Ready".into(),
                            status: status.into(),
                            reason: Some("KubeletReady".into()),
                            last_heartbeat_time: Some(Time(at(beat))),
                            last_transition_time: Some(Time(at(0))),
                            ..NodeCondition::default()
                        },
                        NodeCondition {
                            type_: "MemoryPressure".into(),
                            status: "False".into(),
                            last_heartbeat_time: Some(Time(at(beat))),
                            last_transition_time: Some(Time(at(0))),
                            ..NodeCondition::default()
                        },
                    ]
                }),
                ..NodeStatus::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{at, node};
    use super::*;

    const GRACE: Grace = Grace {
        monitor: Duration::from_secs(50),
        startup: Duration::from_secs(60),
    };

    fn status_of<'a>(conditions: &'a [NodeCondition], type_: &str) -> &'a NodeCondition {
        conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn a_quiet_node_turns_unknown_after_the_grace_period() {
        let mut t = Tracker::default();
        let n = node("a", Some(("True", 100)));
        // First sight at 100: alive now.
        assert!(t.observe(&n, None, at(100), GRACE).update.is_none());
        // Same heartbeat, no Lease: still within grace at 150.
        assert!(t.observe(&n, None, at(150), GRACE).update.is_none());
        let o = t.observe(&n, None, at(151), GRACE);
        let conditions = o.update.expect("past grace");
        let ready = status_of(&conditions, "Ready");
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        // The heartbeat stays the kubelet's; the transition is now.
        assert_eq!(ready.last_heartbeat_time, Some(Time(at(100))));
        assert_eq!(ready.last_transition_time, Some(Time(at(151))));
        assert_eq!(status_of(&conditions, "MemoryPressure").status, "Unknown");
        // Never posted by this kubelet: added with the never-updated reason.
        let disk = status_of(&conditions, "DiskPressure");
        assert_eq!(disk.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(disk.last_heartbeat_time, Some(Time(at(0))));
        assert_eq!(o.observed_ready.status, "True");
        assert_eq!(o.current_ready.unwrap().status, "Unknown");
    }

    #[test]
    fn a_renewed_lease_keeps_a_node_with_an_old_status_healthy() {
        let mut t = Tracker::default();
        let n = node("a", Some(("True", 100)));
        t.observe(&n, Some(at(100)), at(100), GRACE);
        for now in (110..400).step_by(10) {
            let o = t.observe(&n, Some(at(now)), at(now), GRACE);
            assert!(o.update.is_none(), "renewed at {now}");
        }
        // The Lease stops at 390: unknown once 50 s have passed since the last renewal seen.
        assert!(t
            .observe(&n, Some(at(390)), at(440), GRACE)
            .update
            .is_none());
        assert!(t
            .observe(&n, Some(at(390)), at(441), GRACE)
            .update
            .is_some());
    }

    #[test]
    fn a_new_heartbeat_restarts_the_grace_period() {
        let mut t = Tracker::default();
        t.observe(&node("a", Some(("True", 100))), None, at(100), GRACE);
        t.observe(&node("a", Some(("True", 140))), None, at(140), GRACE);
        let n = node("a", Some(("True", 140)));
        assert!(t.observe(&n, None, at(185), GRACE).update.is_none());
        assert!(t.observe(&n, None, at(191), GRACE).update.is_some());
    }

    #[test]
    fn an_unknown_node_is_written_once() {
        let mut t = Tracker::default();
        let n = node("a", Some(("True", 100)));
        t.observe(&n, None, at(100), GRACE);
        let o = t.observe(&n, None, at(200), GRACE);
        let conditions = o.update.unwrap();
        t.written("a", o.current_ready.clone(), at(200));
        // The API now holds the Unknown conditions (heartbeat unchanged).
        let mut written = n.clone();
        written.status.as_mut().unwrap().conditions = Some(conditions);
        let o = t.observe(&written, None, at(205), GRACE);
        assert!(o.update.is_none());
        assert_eq!(o.observed_ready.status, "Unknown");
    }

    #[test]
    fn a_node_that_never_posted_gets_the_startup_grace_from_its_creation() {
        let mut t = Tracker::default();
        let n = node("a", None);
        assert!(t.observe(&n, None, at(60), GRACE).update.is_none());
        let o = t.observe(&n, None, at(61), GRACE);
        assert_eq!(o.grace, GRACE.startup);
        let conditions = o.update.unwrap();
        let ready = status_of(&conditions, "Ready");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet never posted node status.")
        );
        assert_eq!(conditions.len(), 4);
        // A Lease alone counts as life, even without status.
        let mut t = Tracker::default();
        assert!(t
            .observe(&n, Some(at(100)), at(100), GRACE)
            .update
            .is_none());
    }

    #[test]
    fn a_node_not_ready_by_its_own_word_is_left_as_it_said() {
        let mut t = Tracker::default();
        let n = node("a", Some(("False", 100)));
        let o = t.observe(&n, Some(at(100)), at(100), GRACE);
        assert!(o.update.is_none());
        assert_eq!(o.current_ready.unwrap().status, "False");
    }
}
