//! PodTopologySpread: `spec.topologySpreadConstraints`. For each constraint the pods matching
//! its `labelSelector` (with `matchLabelKeys` taken from the pod's own labels; same namespace;
//! not terminating) are counted per topology domain — the value of the node label
//! `topologyKey` — over the nodes the pod could go to (`nodeAffinityPolicy` Honor: those
//! matching its nodeSelector and required node affinity; `nodeTaintsPolicy` Honor: those whose
//! NoSchedule/NoExecute taints it tolerates).
//!
//! Filter (`whenUnsatisfiable: DoNotSchedule`): a node fails when the skew — the count in its
//! domain, plus one when the pod matches the selector itself, minus the smallest count of any
//! domain (0 while there are fewer domains than `minDomains`) — exceeds `maxSkew`; a node
//! without the topology label fails for good.
//!
//! Score (`ScheduleAnyway`): each constraint adds the count in the node's domain times
//! ln(number of domains + 2) plus `maxSkew − 1`; fewer is better (see
//! [`Normalize::TopologySpread`](super::Normalize::TopologySpread)). Feasible nodes without
//! every topology label are ignored (scored 0), as upstream.
//!
//! A pod without constraints gets upstream's system defaults when a ReplicationController,
//! ReplicaSet or StatefulSet controls it: `kubernetes.io/hostname` maxSkew 3 and
//! `topology.kubernetes.io/zone` maxSkew 5, both ScheduleAnyway. Upstream's selector for them is
//! the selectors of the Services, RCs, RSs and StatefulSets that select the pod; the scheduler
//! has no listers for those, so pods with the same controller (`ownerReferences`,
//! `controller: true`) stand in for it, and a pod selected only by a Service gets no defaults.

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};

use super::taint_toleration::{effective_taints, tolerated};
use super::{node_affinity, FilterContext, ScoreContext};
use crate::framework::{pod_labels, FilterResult, NodeInfo, Operator, Selector, Unfit};

pub const HOSTNAME: &str = "kubernetes.io/hostname";
pub const ZONE: &str = "topology.kubernetes.io/zone";

pub const NOT_MATCH: &str = "node(s) didn't match pod topology spread constraints";
pub const MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// The raw score of a node the plugin ignores (it lacks a topology label).
pub const IGNORED: i64 = -1;

/// Which pods a constraint counts.
#[derive(Clone, Debug)]
enum Matcher {
    Selector(Selector),
    /// The system defaults' stand-in: pods controlled by the controller with this uid.
    Controller(String),
}

#[derive(Clone, Debug)]
struct Constraint {
    max_skew: i64,
    min_domains: i64,
    topology_key: String,
    matcher: Matcher,
    honor_node_affinity: bool,
    honor_taints: bool,
}

impl Constraint {
    fn new(pod: &Pod, c: &TopologySpreadConstraint) -> Constraint {
        let mut selector = Selector::new(c.label_selector.as_ref());
        // matchLabelKeys: `key In (the pod's value)` for each key the pod has; not on a
        // missing selector, which matches nothing either way.
        if !selector.is_nothing() {
            let labels = pod_labels(pod);
            for key in c.match_label_keys.iter().flatten() {
                if let Some(v) = labels.get(key) {
                    selector.require(key, Operator::In, std::slice::from_ref(v));
                }
            }
        }
        Constraint {
            max_skew: i64::from(c.max_skew),
            min_domains: i64::from(c.min_domains.unwrap_or(1)),
            topology_key: c.topology_key.clone(),
            matcher: Matcher::Selector(selector),
            honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        }
    }

    fn system_default(key: &str, max_skew: i64, controller: &str) -> Constraint {
        Constraint {
            max_skew,
            min_domains: 1,
            topology_key: key.to_string(),
            matcher: Matcher::Controller(controller.to_string()),
            honor_node_affinity: true,
            honor_taints: false,
        }
    }

    /// Whether an existing pod counts (upstream's `countPodsMatchSelector`: an empty selector
    /// counts nothing).
    fn counts(&self, existing: &Pod, namespace: Option<&str>) -> bool {
        if existing.metadata.deletion_timestamp.is_some()
            || existing.metadata.namespace.as_deref() != namespace
        {
            return false;
        }
        match &self.matcher {
            Matcher::Selector(s) => !s.is_everything() && s.matches(pod_labels(existing)),
            Matcher::Controller(uid) => controller_uid(existing) == Some(uid),
        }
    }

    fn count_on(&self, node: &NodeInfo, namespace: Option<&str>) -> i64 {
        node.pods
            .iter()
            .filter(|p| self.counts(p, namespace))
            .count() as i64
    }

    /// Whether the pod itself matches the selector.
    fn self_match(&self, pod: &Pod) -> bool {
        match &self.matcher {
            Matcher::Selector(s) => s.matches(pod_labels(pod)),
            Matcher::Controller(uid) => controller_uid(pod) == Some(uid),
        }
    }

    /// Whether the node's domain takes part (`nodeAffinityPolicy`, `nodeTaintsPolicy`).
    fn includes(&self, pod: &Pod, node: &NodeInfo) -> bool {
        if self.honor_node_affinity && !node_affinity::matches_required(pod, node) {
            return false;
        }
        if self.honor_taints {
            let tolerations = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.as_deref())
                .unwrap_or_default();
            let untolerated = effective_taints(node).iter().any(|t| {
                (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(t, tolerations)
            });
            if untolerated {
                return false;
            }
        }
        true
    }
}

fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

fn explicit(pod: &Pod) -> &[TopologySpreadConstraint] {
    pod.spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default()
}

/// The pod's constraints with this `whenUnsatisfiable`, and whether they are the system
/// defaults.
fn constraints(pod: &Pod, when: &str) -> (Vec<Constraint>, bool) {
    let explicit = explicit(pod);
    if !explicit.is_empty() {
        let cs = explicit
            .iter()
            .filter(|c| c.when_unsatisfiable == when)
            .map(|c| Constraint::new(pod, c))
            .collect();
        return (cs, false);
    }
    if when != "ScheduleAnyway" {
        return (Vec::new(), false);
    }
    let controller = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .filter(|o| {
            matches!(
                o.kind.as_str(),
                "ReplicationController" | "ReplicaSet" | "StatefulSet"
            )
        });
    match controller {
        Some(o) => (
            vec![
                Constraint::system_default(HOSTNAME, 3, &o.uid),
                Constraint::system_default(ZONE, 5, &o.uid),
            ],
            true,
        ),
        None => (Vec::new(), false),
    }
}

/// Whether the node has every constraint's topology label.
fn has_all_keys(node: &NodeInfo, constraints: &[Constraint]) -> bool {
    let labels = node.labels();
    constraints
        .iter()
        .all(|c| labels.contains_key(&c.topology_key))
}

/// The DoNotSchedule constraints with their counts per domain (upstream's PreFilter state).
#[derive(Clone, Debug, Default)]
pub struct FilterState {
    constraints: Vec<Constraint>,
    /// Per constraint: domain → matching pods, for every eligible domain (0 included).
    counts: Vec<HashMap<String, i64>>,
    /// Per constraint: the smallest count of a domain (`i64::MAX` when there is none).
    minimum: Vec<i64>,
}

impl FilterState {
    pub fn new(pod: &Pod, all_nodes: &[&NodeInfo]) -> FilterState {
        let (constraints, _) = constraints(pod, "DoNotSchedule");
        if constraints.is_empty() {
            return FilterState::default();
        }
        let namespace = pod.metadata.namespace.as_deref();
        let mut counts = vec![HashMap::new(); constraints.len()];
        for node in all_nodes {
            if !has_all_keys(node, &constraints) {
                continue;
            }
            for (c, counts) in constraints.iter().zip(counts.iter_mut()) {
                if !c.includes(pod, node) {
                    continue;
                }
                let domain = node.labels()[&c.topology_key].clone();
                *counts.entry(domain).or_insert(0) += c.count_on(node, namespace);
            }
        }
        let minimum = counts.iter().map(minimum).collect();
        FilterState {
            constraints,
            counts,
            minimum,
        }
    }

    /// `placed` was added to (`delta` 1) or taken off (−1) `node` (upstream's `updateWithPod`).
    pub fn update(&mut self, pod: &Pod, placed: &Pod, node: &NodeInfo, delta: i64) {
        if self.constraints.is_empty() || !has_all_keys(node, &self.constraints) {
            return;
        }
        let namespace = pod.metadata.namespace.as_deref();
        for (i, c) in self.constraints.iter().enumerate() {
            if !c.counts(placed, namespace) || !c.includes(pod, node) {
                continue;
            }
            let domain = node.labels()[&c.topology_key].clone();
            *self.counts[i].entry(domain).or_insert(0) += delta;
            self.minimum[i] = minimum(&self.counts[i]);
        }
    }
}

fn minimum(counts: &HashMap<String, i64>) -> i64 {
    counts.values().copied().min().unwrap_or(i64::MAX)
}

pub fn filter(pod: &Pod, node: &NodeInfo, ctx: &FilterContext) -> FilterResult {
    let s = &ctx.spread;
    let labels = node.labels();
    for (i, c) in s.constraints.iter().enumerate() {
        let Some(domain) = labels.get(&c.topology_key) else {
            return Err(Unfit::unresolvable(MISSING_LABEL));
        };
        let min = if (s.counts[i].len() as i64) < c.min_domains {
            0
        } else {
            s.minimum[i]
        };
        let matching = s.counts[i].get(domain).copied().unwrap_or(0);
        let skew = matching
            .saturating_add(i64::from(c.self_match(pod)))
            .saturating_sub(min);
        if skew > c.max_skew {
            return Err(Unfit::resolvable(NOT_MATCH));
        }
    }
    Ok(())
}

/// The ScheduleAnyway constraints (or the system defaults) with their counts per domain over
/// every node, the feasible nodes ignored and each constraint's weight (upstream's PreScore).
#[derive(Debug, Default)]
pub struct ScoreState {
    constraints: Vec<Constraint>,
    ignored: HashSet<String>,
    /// Per constraint: domain of a feasible node → matching pods on every eligible node
    /// (empty for `kubernetes.io/hostname`: that is counted on the node itself).
    counts: Vec<HashMap<String, i64>>,
    /// Per constraint: ln(number of domains among the feasible nodes + 2).
    weights: Vec<f64>,
}

impl ScoreState {
    pub fn new(pod: &Pod, all_nodes: &[&NodeInfo], feasible: &[&NodeInfo]) -> ScoreState {
        let (constraints, system_default) = constraints(pod, "ScheduleAnyway");
        if constraints.is_empty() || feasible.is_empty() {
            return ScoreState::default();
        }
        // With explicit constraints a node needs every topology label to count at all; the
        // system defaults count nodes without a zone as the domain "".
        let require_all = !system_default;
        let mut ignored = HashSet::new();
        let mut counts = vec![HashMap::new(); constraints.len()];
        for node in feasible {
            if require_all && !has_all_keys(node, &constraints) {
                ignored.insert(node.name().to_string());
                continue;
            }
            for (c, counts) in constraints.iter().zip(counts.iter_mut()) {
                if c.topology_key != HOSTNAME {
                    let domain = node.labels().get(&c.topology_key).cloned();
                    counts.entry(domain.unwrap_or_default()).or_insert(0);
                }
            }
        }
        let weights = constraints
            .iter()
            .zip(&counts)
            .map(|(c, counts)| {
                let domains = if c.topology_key == HOSTNAME {
                    feasible.len() - ignored.len()
                } else {
                    counts.len()
                };
                ((domains + 2) as f64).ln()
            })
            .collect();
        let namespace = pod.metadata.namespace.as_deref();
        for node in all_nodes {
            if require_all && !has_all_keys(node, &constraints) {
                continue;
            }
            for (c, counts) in constraints.iter().zip(counts.iter_mut()) {
                if !c.includes(pod, node) {
                    continue;
                }
                let domain = node.labels().get(&c.topology_key);
                let domain = domain.map(String::as_str).unwrap_or_default();
                if let Some(n) = counts.get_mut(domain) {
                    *n += c.count_on(node, namespace);
                }
            }
        }
        ScoreState {
            constraints,
            ignored,
            counts,
            weights,
        }
    }
}

/// Matching pods in the node's domains, weighted per constraint (fewer is better); [`IGNORED`]
/// for a node without every topology label.
pub fn score(pod: &Pod, node: &NodeInfo, ctx: &ScoreContext) -> i64 {
    let s = &ctx.spread;
    if s.constraints.is_empty() {
        return 0;
    }
    if s.ignored.contains(node.name()) {
        return IGNORED;
    }
    let namespace = pod.metadata.namespace.as_deref();
    let labels = node.labels();
    let mut score = 0.0;
    for (i, c) in s.constraints.iter().enumerate() {
        let Some(domain) = labels.get(&c.topology_key) else {
            continue;
        };
        let count = if c.topology_key == HOSTNAME {
            c.count_on(node, namespace)
        } else {
            s.counts[i].get(domain).copied().unwrap_or(0)
        };
        score += count as f64 * s.weights[i] + (c.max_skew - 1) as f64;
    }
    score.round() as i64
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::plugins::normalize;
    use crate::plugins::testing::{merge, node, pod};
    use serde_json::{json, Value};

    fn zoned(name: &str, zone: &str, extra: Value) -> NodeInfo {
        let mut e = json!({"metadata": {"labels": {ZONE: zone}}});
        merge(&mut e, extra);
        node(name, "4", "8Gi", e)
    }

    fn web(name: &str, labels: Value) -> Arc<Pod> {
        Arc::new(pod(name, json!({"metadata": {"labels": labels}})))
    }

    /// A pod labelled app=web with one constraint (merged over the defaults given).
    fn spreading(constraint: Value) -> Pod {
        let mut c = json!({"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}});
        for (k, v) in constraint.as_object().unwrap() {
            c[k] = v.clone();
        }
        pod(
            "p",
            json!({"metadata": {"labels": {"app": "web", "version": "v2"}}, "spec": {"topologySpreadConstraints": [c]}}),
        )
    }

    fn check(p: &Pod, node: &NodeInfo, all: &[&NodeInfo]) -> FilterResult {
        filter(p, node, &FilterContext::new(p, all))
    }

    #[test]
    fn skew_over_max_fails_and_a_missing_label_is_unresolvable() {
        let mut n1 = zoned("n1", "a", json!({}));
        n1.add_pod(web("w1", json!({"app": "web"})));
        n1.add_pod(web("w2", json!({"app": "web"})));
        n1.add_pod(web("other", json!({"app": "db"})));
        let n2 = zoned("n2", "a", json!({}));
        let n3 = zoned("n3", "b", json!({}));
        let bare = node("n4", "4", "8Gi", json!({}));
        let all = [&n1, &n2, &n3, &bare];
        let p = spreading(json!({}));
        // zone a: 2 + 1 − 0 > 1; zone b: 0 + 1 − 0.
        let err = check(&p, &n1, &all).unwrap_err();
        assert_eq!(err.reasons, [NOT_MATCH]);
        assert!(!err.unresolvable);
        assert!(check(&p, &n2, &all).is_err());
        assert!(check(&p, &n3, &all).is_ok());
        let err = check(&p, &bare, &all).unwrap_err();
        assert_eq!(
            err.reasons,
            ["node(s) didn't match pod topology spread constraints (missing required label)"]
        );
        assert!(err.unresolvable);
        // Zone a would hold 3 against zone b's 0.
        assert!(check(&spreading(json!({"maxSkew": 2})), &n1, &all).is_err());
        assert!(check(&spreading(json!({"maxSkew": 3})), &n1, &all).is_ok());
        // A pod that does not match the selector itself does not add to the skew.
        let mut outsider = spreading(json!({"maxSkew": 2}));
        outsider.metadata.labels = None;
        assert!(check(&outsider, &n1, &all).is_ok());
        // ScheduleAnyway constraints do not filter.
        let anyway = spreading(json!({"whenUnsatisfiable": "ScheduleAnyway"}));
        assert!(check(&anyway, &n1, &all).is_ok());
        assert!(check(&anyway, &bare, &all).is_ok());
    }

    #[test]
    fn min_domains_treats_the_minimum_as_zero() {
        let mut n1 = zoned("n1", "a", json!({}));
        let mut n2 = zoned("n2", "b", json!({}));
        n1.add_pod(web("w1", json!({"app": "web"})));
        n2.add_pod(web("w2", json!({"app": "web"})));
        let all = [&n1, &n2];
        assert!(check(&spreading(json!({})), &n1, &all).is_ok());
        let p = spreading(json!({"minDomains": 3}));
        assert_eq!(check(&p, &n1, &all).unwrap_err().reasons, [NOT_MATCH]);
        assert!(check(&p, &n2, &all).is_err());
    }

    #[test]
    fn match_label_keys_and_namespaces_narrow_the_count() {
        let mut n1 = zoned("n1", "a", json!({}));
        let n2 = zoned("n2", "b", json!({}));
        n1.add_pod(web("old", json!({"app": "web", "version": "v1"})));
        let mut elsewhere = pod("ns", json!({"metadata": {"labels": {"app": "web"}}}));
        elsewhere.metadata.namespace = Some("other".into());
        n1.add_pod(Arc::new(elsewhere));
        let all = [&n1, &n2];
        let p = spreading(json!({}));
        assert!(check(&p, &n1, &all).is_err(), "v1 counts without the keys");
        let p = spreading(json!({"matchLabelKeys": ["version"]}));
        assert!(check(&p, &n1, &all).is_ok(), "only version v2 counts");
    }

    #[test]
    fn node_inclusion_policies() {
        // Zone b has no ssd node, so with nodeAffinityPolicy Honor it is no domain at all.
        let mut n1 = zoned("n1", "a", json!({"metadata": {"labels": {"disk": "ssd"}}}));
        n1.add_pod(web("w1", json!({"app": "web"})));
        let n2 = zoned("n2", "b", json!({"metadata": {"labels": {"disk": "hdd"}}}));
        let all = [&n1, &n2];
        let with_selector = |c: Value| {
            let mut p = spreading(c);
            p.spec.as_mut().unwrap().node_selector =
                Some([("disk".to_string(), "ssd".to_string())].into());
            p
        };
        assert!(check(&with_selector(json!({})), &n1, &all).is_ok());
        let ignore = with_selector(json!({"nodeAffinityPolicy": "Ignore"}));
        assert!(check(&ignore, &n1, &all).is_err());

        // A tainted zone counts unless nodeTaintsPolicy is Honor.
        let mut n1 = zoned("n1", "a", json!({}));
        n1.add_pod(web("w1", json!({"app": "web"})));
        let n2 = zoned(
            "n2",
            "b",
            json!({"spec": {"taints": [{"key": "dedicated", "effect": "NoSchedule"}]}}),
        );
        let all = [&n1, &n2];
        assert!(check(&spreading(json!({})), &n1, &all).is_err());
        let honor = spreading(json!({"nodeTaintsPolicy": "Honor"}));
        assert!(check(&honor, &n1, &all).is_ok());
    }

    #[test]
    fn preemption_updates_keep_the_counts_true() {
        let mut n1 = zoned("n1", "a", json!({}));
        let w1 = web("w1", json!({"app": "web"}));
        n1.add_pod(w1.clone());
        let n2 = zoned("n2", "b", json!({}));
        let all = [&n1, &n2];
        let p = spreading(json!({"maxSkew": 1}));
        let mut ctx = FilterContext::new(&p, &all);
        assert!(filter(&p, &n1, &ctx).is_err());
        let mut trial = n1.clone();
        trial.remove_pod("uid-w1");
        ctx.remove_pod(&p, &w1, &trial);
        assert!(filter(&p, &trial, &ctx).is_ok());
        trial.add_pod(w1.clone());
        ctx.add_pod(&p, &w1, &trial);
        assert!(filter(&p, &trial, &ctx).is_err());
    }

    fn scores(p: &Pod, all: &[&NodeInfo]) -> Vec<i64> {
        let ctx = ScoreContext::new(p, all, all);
        let mut raw: Vec<i64> = all.iter().map(|n| score(p, n, &ctx)).collect();
        normalize(&mut raw, super::super::Normalize::TopologySpread);
        raw
    }

    #[test]
    fn schedule_anyway_prefers_emptier_domains() {
        let mut n1 = zoned("n1", "a", json!({}));
        n1.add_pod(web("w1", json!({"app": "web"})));
        n1.add_pod(web("w2", json!({"app": "web"})));
        let mut n2 = zoned("n2", "b", json!({}));
        n2.add_pod(web("w3", json!({"app": "web"})));
        let n3 = zoned("n3", "c", json!({}));
        let bare = node("n4", "4", "8Gi", json!({}));
        let p = spreading(json!({"whenUnsatisfiable": "ScheduleAnyway"}));
        let s = scores(&p, &[&n1, &n2, &n3, &bare]);
        assert!(s[2] > s[1] && s[1] > s[0], "{s:?}");
        assert_eq!(s[2], 100);
        assert_eq!(s[3], 0, "a node without the topology label is ignored");
        // Raw: count · ln(domains + 2) + maxSkew − 1, domains {a, b, c}.
        let all = [&n1, &n2, &n3, &bare];
        let ctx = ScoreContext::new(&p, &all, &all);
        assert_eq!(score(&p, &n1, &ctx), (2.0 * 5f64.ln()).round() as i64);
        assert_eq!(score(&p, &bare, &ctx), IGNORED);
        // DoNotSchedule constraints do not score.
        let strict = spreading(json!({}));
        assert_eq!(scores(&strict, &[&n1, &n3]), [100, 100]);
    }

    fn replica(name: &str, kind: &str) -> Arc<Pod> {
        Arc::new(pod(
            name,
            json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": "web", "uid": "rs-1", "controller": true}]}}),
        ))
    }

    #[test]
    fn system_defaults_spread_a_controllers_replicas() {
        // What the old controller spreading did: siblings count against a node.
        let mut a = node("a", "1", "1Gi", json!({}));
        a.add_pod(replica("web-1", "ReplicaSet"));
        a.add_pod(Arc::new(pod("other", json!({}))));
        let mut b = node("b", "1", "1Gi", json!({}));
        b.add_pod(Arc::new(pod("other-2", json!({}))));
        let all = [&a, &b];
        let s = scores(&replica("web-2", "ReplicaSet"), &all);
        assert!(s[1] > s[0], "{s:?}");
        let ctx = ScoreContext::new(&replica("web-2", "ReplicaSet"), &all, &all);
        // hostname: 1 · ln(2 + 2) + 2; zone: no node has one, so none is added.
        assert_eq!(
            score(&replica("web-2", "ReplicaSet"), &a, &ctx),
            (4f64.ln() + 2.0).round() as i64
        );
        // Zones count too, with the larger maxSkew.
        let mut z1 = zoned("z1", "a", json!({}));
        z1.add_pod(replica("web-1", "StatefulSet"));
        let z2 = zoned("z2", "a", json!({}));
        let z3 = zoned("z3", "b", json!({}));
        let s = scores(&replica("web-2", "StatefulSet"), &[&z1, &z2, &z3]);
        assert!(s[2] > s[1] && s[1] > s[0], "{s:?}");
        // Pods without a controller, or with one that is not an RC/RS/StatefulSet, get none.
        for p in [Arc::new(pod("lonely", json!({}))), replica("job-1", "Job")] {
            let ctx = ScoreContext::new(&p, &all, &all);
            assert_eq!(score(&p, &a, &ctx), 0);
            assert_eq!(score(&p, &b, &ctx), 0);
        }
        // Defaults never filter.
        let p = replica("web-3", "ReplicaSet");
        assert!(check(&p, &a, &all).is_ok());
    }
}
