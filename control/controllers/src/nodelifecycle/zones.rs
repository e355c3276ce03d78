//! Zones and the pace of NoExecute tainting (upstream's `zoneNoExecuteTainter`,
//! `ComputeZoneState` and `handleDisruption`).
//!
//! A NoExecute taint evicts pods, so a burst of unhealthy nodes must not empty the cluster:
//! each zone (`topology.kubernetes.io/region` + `zone` labels) taints at most
//! `--node-eviction-rate` nodes a second (0.1, burst 1). When a large zone is mostly unhealthy
//! (> 2 nodes and ≥ `--unhealthy-zone-threshold` of them) the rate drops to
//! `--secondary-node-eviction-rate`, or to nothing in a zone of at most
//! `--large-cluster-size-threshold` nodes; and when *every* node of *every* zone is unhealthy
//! the likeliest cause is the control plane itself (its network, the API server), so all
//! NoExecute taints are lifted and nothing is tainted until some node is healthy again.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, NodeCondition};

pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The zone a node belongs to (upstream `GetZoneKey`: region and zone, "" for neither).
pub fn zone_key(node: &Node) -> String {
    let labels = node.metadata.labels.as_ref();
    let get = |k: &str| labels.and_then(|l| l.get(k)).cloned().unwrap_or_default();
    let (region, zone) = (get(REGION_LABEL), get(ZONE_LABEL));
    if region.is_empty() && zone.is_empty() {
        return String::new();
    }
    format!("{region}:\x00:{zone}")
}

/// The rate settings (upstream flag names in `lib.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub eviction_rate: f64,
    pub secondary_eviction_rate: f64,
    pub large_cluster_size_threshold: usize,
    pub unhealthy_zone_threshold: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Initial,
    Normal,
    PartialDisruption,
    FullDisruption,
}

/// A zone's state from its nodes' Ready conditions (None: a node without one, counted
/// not ready as upstream).
pub fn zone_state(ready: &[Option<NodeCondition>], unhealthy_threshold: f64) -> State {
    let ready_count = ready
        .iter()
        .filter(|c| c.as_ref().is_some_and(|c| c.status == "True"))
        .count();
    let not_ready = ready.len() - ready_count;
    if ready_count == 0 && not_ready > 0 {
        State::FullDisruption
    } else if not_ready > 2 && not_ready as f64 / ready.len() as f64 >= unhealthy_threshold {
        State::PartialDisruption
    } else {
        State::Normal
    }
}

impl Rates {
    /// Nodes per second a zone in `state` of `size` nodes may taint.
    pub fn rate(&self, state: State, size: usize) -> f64 {
        match state {
            State::Initial | State::Normal | State::FullDisruption => self.eviction_rate,
            State::PartialDisruption if size <= self.large_cluster_size_threshold => 0.0,
            State::PartialDisruption => self.secondary_eviction_rate,
        }
    }
}

/// A token bucket of burst 1 (client-go's `NewTokenBucketRateLimiter(qps, 1)`); rate 0 never
/// admits.
#[derive(Debug, Clone)]
pub struct Limiter {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Limiter {
    pub fn new(rate: f64, now: Instant) -> Limiter {
        Limiter {
            rate,
            tokens: 1.0,
            last: now,
        }
    }

    pub fn set_rate(&mut self, rate: f64, now: Instant) {
        if rate != self.rate {
            *self = Limiter::new(rate, now);
        }
    }

    pub fn try_take(&mut self, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(1.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One zone's tainting queue (upstream `RateLimitedTimedQueue` over a `UniqueQueue`): a node is
/// queued once per unhealthy spell — after it is tainted it stays "seen" until `remove` (it
/// became healthy), so the monitor can mark it on every pass without re-tainting it.
#[derive(Debug)]
pub struct Queue {
    pub state: State,
    pub limiter: Limiter,
    pending: VecDeque<String>,
    seen: HashSet<String>,
}

impl Queue {
    pub fn new(rate: f64, now: Instant) -> Queue {
        Queue {
            state: State::Initial,
            limiter: Limiter::new(rate, now),
            pending: VecDeque::new(),
            seen: HashSet::new(),
        }
    }

    /// Queues `node` unless it is already queued or was tainted this spell.
    pub fn add(&mut self, node: &str) -> bool {
        if !self.seen.insert(node.to_string()) {
            return false;
        }
        self.pending.push_back(node.to_string());
        true
    }

    /// The node is healthy again: forget it.
    pub fn remove(&mut self, node: &str) {
        self.seen.remove(node);
        self.pending.retain(|n| n != node);
    }

    /// The next node to taint, if the rate allows one now.
    pub fn pop(&mut self, now: Instant) -> Option<String> {
        if self.pending.is_empty() || !self.limiter.try_take(now) {
            return None;
        }
        self.pending.pop_front()
    }

    /// Tainting failed: try again later (still "seen").
    pub fn retry(&mut self, node: String) {
        self.pending.push_back(node);
    }
}

/// What the disruption check decided (upstream `handleDisruption`).
#[derive(Debug, PartialEq, Eq)]
pub enum Disruption {
    /// Rates follow each zone's state.
    Zones,
    /// Every node of every zone is unhealthy: lift all NoExecute taints, taint nothing.
    EnterFull,
    /// Some node is healthy again after a full disruption: fresh grace periods for everyone.
    LeaveFull,
    /// Still fully disrupted: nothing changes.
    StayFull,
}

/// Updates the zones' states and rates from this pass's Ready conditions per zone.
pub fn handle_disruption(
    queues: &mut BTreeMap<String, Queue>,
    ready_by_zone: &BTreeMap<String, Vec<Option<NodeCondition>>>,
    rates: &Rates,
    now: Instant,
) -> Disruption {
    let new_states: BTreeMap<&String, State> = ready_by_zone
        .iter()
        .map(|(zone, ready)| (zone, zone_state(ready, rates.unhealthy_zone_threshold)))
        .collect();
    let all_are_full =
        !new_states.is_empty() && new_states.values().all(|s| *s == State::FullDisruption);
    // Zones without nodes any more are dropped.
    queues.retain(|zone, _| ready_by_zone.contains_key(zone));
    let all_were_full =
        !queues.is_empty() && queues.values().all(|q| q.state == State::FullDisruption);
    let size = |zone: &String| ready_by_zone.get(zone).map_or(0, Vec::len);
    if all_are_full && all_were_full {
        return Disruption::StayFull;
    }
    if all_are_full {
        tracing::info!(
            "Controller detected that all Nodes are not-Ready. Entering master disruption mode"
        );
        for queue in queues.values_mut() {
            queue.limiter.set_rate(0.0, now);
            queue.state = State::FullDisruption;
        }
        return Disruption::EnterFull;
    }
    let leaving = all_were_full;
    if leaving {
        tracing::info!(
            "Controller detected that some Nodes are Ready. Exiting master disruption mode"
        );
    }
    for (zone, queue) in queues.iter_mut() {
        let Some(new_state) = new_states.get(zone).copied() else {
            continue;
        };
        if queue.state != new_state || leaving {
            if !leaving {
                tracing::info!(zone = %zone, ?new_state, "Controller detected that zone is now in new state");
            }
            queue
                .limiter
                .set_rate(rates.rate(new_state, size(zone)), now);
            queue.state = new_state;
        }
    }
    if leaving {
        Disruption::LeaveFull
    } else {
        Disruption::Zones
    }
}

/// How often the tainting queues are worked (upstream `nodeEvictionPeriod`).
pub const TAINT_PASS_PERIOD: Duration = Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;

    const RATES: Rates = Rates {
        eviction_rate: 0.1,
        secondary_eviction_rate: 0.01,
        large_cluster_size_threshold: 50,
        unhealthy_zone_threshold: 0.55,
    };

    fn ready(status: &str) -> Option<NodeCondition> {
        Some(NodeCondition {
            type_: "Ready".into(),
            status: status.into(),
            ..NodeCondition::default()
        })
    }

    #[test]
    fn zone_states_follow_upstream_thresholds() {
        let t = RATES.unhealthy_zone_threshold;
        assert_eq!(
            zone_state(&[ready("True"), ready("Unknown")], t),
            State::Normal
        );
        assert_eq!(
            zone_state(&[ready("Unknown"), None], t),
            State::FullDisruption
        );
        // Two of three unhealthy: not "more than two", still normal.
        assert_eq!(
            zone_state(&[ready("True"), ready("False"), ready("Unknown")], t),
            State::Normal
        );
        assert_eq!(
            zone_state(&[ready("True"), ready("False"), ready("Unknown"), None], t),
            State::PartialDisruption
        );
        assert_eq!(RATES.rate(State::PartialDisruption, 4), 0.0);
        assert_eq!(RATES.rate(State::PartialDisruption, 51), 0.01);
    }

    #[test]
    fn the_limiter_admits_one_node_per_ten_seconds() {
        let t0 = Instant::now();
        let mut q = Queue::new(0.1, t0);
        assert!(q.add("a"));
        assert!(q.add("b"));
        assert!(!q.add("a"));
        assert_eq!(q.pop(t0).as_deref(), Some("a"));
        assert_eq!(q.pop(t0 + Duration::from_secs(5)), None);
        assert_eq!(q.pop(t0 + Duration::from_secs(10)).as_deref(), Some("b"));
        // Tainted this spell: not queued again until it recovers.
        assert!(!q.add("a"));
        q.remove("a");
        assert!(q.add("a"));
    }

    #[test]
    fn a_whole_cluster_down_stops_tainting_until_a_node_returns() {
        let t0 = Instant::now();
        let mut queues = BTreeMap::new();
        queues.insert(String::new(), Queue::new(0.1, t0));
        let mut by_zone = BTreeMap::new();
        by_zone.insert(String::new(), vec![ready("Unknown"), ready("Unknown")]);
        assert_eq!(
            handle_disruption(&mut queues, &by_zone, &RATES, t0),
            Disruption::EnterFull
        );
        assert_eq!(
            handle_disruption(&mut queues, &by_zone, &RATES, t0),
            Disruption::StayFull
        );
        let q = queues.get_mut("").unwrap();
        q.add("a");
        assert_eq!(q.pop(t0 + Duration::from_secs(60)), None);
        by_zone.insert(String::new(), vec![ready("True"), ready("Unknown")]);
        assert_eq!(
            handle_disruption(&mut queues, &by_zone, &RATES, t0),
            Disruption::LeaveFull
        );
        let q = queues.get_mut("").unwrap();
        assert_eq!(q.state, State::Normal);
        assert_eq!(q.pop(t0).as_deref(), Some("a"));
    }
}
