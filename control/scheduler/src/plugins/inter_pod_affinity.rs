//! InterPodAffinity: pods that want (affinity) or refuse (anti-affinity) to share a topology
//! domain — the value of the node label `topologyKey` — with pods matching a term.
//!
//! Filter: every required affinity term of the pod must be matched by a pod in the node's
//! domain (all terms by the same pod, as upstream counts it), except for the first pod of a
//! group: when no pod anywhere matches the terms and the pod matches them itself, any node with
//! the topology labels will do. No pod in the node's domain may match a required anti-affinity
//! term of the pod, and the pod may not match a required anti-affinity term of a pod in the
//! node's domain (symmetry).
//!
//! Score: each pod in the node's domains matching a preferred affinity term of the pod adds the
//! term's weight, one matching a preferred anti-affinity term subtracts it; existing pods whose
//! preferred affinity (anti-affinity) terms the pod matches add (subtract) their weights, and
//! their required affinity terms add 1 (upstream's `hardPodAffinityWeight`); normalised min–max.
//!
//! A term's namespaces are its `namespaces`, or the owning pod's when it names none and has no
//! `namespaceSelector`. Namespace labels are not known here, so an empty `namespaceSelector`
//! (`{}`) matches every namespace and a non-empty one none (besides the listed `namespaces`).
//! `matchLabelKeys` / `mismatchLabelKeys` add `key In` / `key NotIn` the owning pod's value to
//! the term's selector (upstream 1.32 does this at admission; doing it again changes nothing).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};

use super::{FilterContext, ScoreContext};
use crate::framework::{pod_labels, FilterResult, NodeInfo, Operator, Selector, Unfit};

pub const AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// The weight of an existing pod's required affinity term when scoring.
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

/// A pod affinity term ready to match pods (upstream's `framework.AffinityTerm`).
#[derive(Clone, Debug)]
struct Term {
    namespaces: Vec<String>,
    all_namespaces: bool,
    selector: Selector,
    topology_key: String,
    weight: i64,
}

impl Term {
    fn new(owner: &Pod, t: &PodAffinityTerm, weight: i64) -> Term {
        let mut selector = Selector::new(t.label_selector.as_ref());
        if !selector.is_nothing() {
            let labels = pod_labels(owner);
            for (keys, operator) in [
                (&t.match_label_keys, Operator::In),
                (&t.mismatch_label_keys, Operator::NotIn),
            ] {
                for key in keys.iter().flatten() {
                    if let Some(v) = labels.get(key) {
                        selector.require(key, operator, std::slice::from_ref(v));
                    }
                }
            }
        }
        let listed = t.namespaces.clone().unwrap_or_default();
        let namespaces = if listed.is_empty() && t.namespace_selector.is_none() {
            owner.metadata.namespace.iter().cloned().collect()
        } else {
            listed
        };
        let all_namespaces = t.namespace_selector.as_ref().is_some_and(|s| {
            s.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
                && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
        });
        Term {
            namespaces,
            all_namespaces,
            selector,
            topology_key: t.topology_key.clone(),
            weight,
        }
    }

    fn matches(&self, pod: &Pod) -> bool {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        (self.all_namespaces || self.namespaces.iter().any(|n| n == ns))
            && self.selector.matches(pod_labels(pod))
    }
}

/// A pod's terms: required affinity, required anti-affinity, preferred affinity, preferred
/// anti-affinity.
#[derive(Clone, Debug, Default)]
struct Terms {
    affinity: Vec<Term>,
    anti_affinity: Vec<Term>,
    preferred_affinity: Vec<Term>,
    preferred_anti_affinity: Vec<Term>,
}

impl Terms {
    fn of(pod: &Pod) -> Terms {
        let Some(a) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
            return Terms::default();
        };
        let required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<Term> {
            terms
                .into_iter()
                .flatten()
                .map(|t| Term::new(pod, t, HARD_POD_AFFINITY_WEIGHT))
                .collect()
        };
        let preferred = |terms: Option<&Vec<WeightedPodAffinityTerm>>| -> Vec<Term> {
            terms
                .into_iter()
                .flatten()
                .map(|t| Term::new(pod, &t.pod_affinity_term, i64::from(t.weight)))
                .collect()
        };
        let pa = a.pod_affinity.as_ref();
        let paa = a.pod_anti_affinity.as_ref();
        Terms {
            affinity: required(pa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            anti_affinity: required(paa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: preferred(pa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity: preferred(paa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
        }
    }
}

/// Topology key → value → count (or score).
#[derive(Clone, Debug, Default)]
struct TopologyCounts(HashMap<String, HashMap<String, i64>>);

impl TopologyCounts {
    /// Adds `delta` to the node's domain for `key`, if the node has that label; entries that
    /// drop to 0 go away.
    fn add(&mut self, key: &str, labels: &BTreeMap<String, String>, delta: i64) {
        let Some(value) = labels.get(key) else {
            return;
        };
        let values = self.0.entry(key.to_string()).or_default();
        let n = values.entry(value.clone()).or_insert(0);
        *n += delta;
        if *n == 0 {
            values.remove(value);
            if values.is_empty() {
                self.0.remove(key);
            }
        }
    }

    fn get(&self, key: &str, value: &str) -> i64 {
        self.0
            .get(key)
            .and_then(|v| v.get(value))
            .copied()
            .unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The pod's required terms and the pods matching them per domain (upstream's PreFilter state).
#[derive(Clone, Debug, Default)]
pub struct FilterState {
    affinity: Vec<Term>,
    anti_affinity: Vec<Term>,
    /// Domains of the pods that match every required affinity term of the pod.
    affinity_counts: TopologyCounts,
    /// Domains of the pods that match a required anti-affinity term of the pod.
    anti_affinity_counts: TopologyCounts,
    /// Domains of the pods with a required anti-affinity term the pod matches.
    existing_anti_affinity_counts: TopologyCounts,
    /// The pod matches all its own required affinity terms.
    self_match: bool,
}

impl FilterState {
    pub fn new(pod: &Pod, all_nodes: &[&NodeInfo]) -> FilterState {
        let terms = Terms::of(pod);
        let mut s = FilterState {
            self_match: terms.affinity.iter().all(|t| t.matches(pod)),
            affinity: terms.affinity,
            anti_affinity: terms.anti_affinity,
            ..FilterState::default()
        };
        let own_terms = !s.affinity.is_empty() || !s.anti_affinity.is_empty();
        for node in all_nodes {
            if own_terms {
                for existing in &node.pods {
                    s.count_own_terms(existing, node, 1);
                }
            }
            for existing in &node.pods_with_required_anti_affinity {
                s.count_existing_terms(pod, existing, node, 1);
            }
        }
        s
    }

    fn count_own_terms(&mut self, existing: &Pod, node: &NodeInfo, delta: i64) {
        let labels = node.labels();
        if !self.affinity.is_empty() && self.affinity.iter().all(|t| t.matches(existing)) {
            for t in &self.affinity {
                self.affinity_counts.add(&t.topology_key, labels, delta);
            }
        }
        for t in &self.anti_affinity {
            if t.matches(existing) {
                self.anti_affinity_counts
                    .add(&t.topology_key, labels, delta);
            }
        }
    }

    fn count_existing_terms(&mut self, pod: &Pod, existing: &Pod, node: &NodeInfo, delta: i64) {
        for t in Terms::of(existing).anti_affinity {
            if t.matches(pod) {
                self.existing_anti_affinity_counts
                    .add(&t.topology_key, node.labels(), delta);
            }
        }
    }

    /// `placed` was added to (`delta` 1) or taken off (−1) `node` (upstream's `updateWithPod`).
    pub fn update(&mut self, pod: &Pod, placed: &Pod, node: &NodeInfo, delta: i64) {
        self.count_own_terms(placed, node, delta);
        self.count_existing_terms(pod, placed, node, delta);
    }
}

pub fn filter(_pod: &Pod, node: &NodeInfo, ctx: &FilterContext) -> FilterResult {
    let s = &ctx.affinity;
    let labels = node.labels();
    if !s.affinity.is_empty() {
        let mut pods_exist = true;
        for t in &s.affinity {
            let Some(value) = labels.get(&t.topology_key) else {
                return Err(Unfit::unresolvable(AFFINITY));
            };
            if s.affinity_counts.get(&t.topology_key, value) <= 0 {
                pods_exist = false;
            }
        }
        // The first pod of a group with affinity to itself: nothing matches anywhere yet.
        let first_of_group = s.affinity_counts.is_empty() && s.self_match;
        if !pods_exist && !first_of_group {
            return Err(Unfit::unresolvable(AFFINITY));
        }
    }
    for t in &s.anti_affinity {
        if let Some(value) = labels.get(&t.topology_key) {
            if s.anti_affinity_counts.get(&t.topology_key, value) > 0 {
                return Err(Unfit::resolvable(ANTI_AFFINITY));
            }
        }
    }
    if !s.existing_anti_affinity_counts.is_empty()
        && labels
            .iter()
            .any(|(k, v)| s.existing_anti_affinity_counts.get(k, v) > 0)
    {
        return Err(Unfit::resolvable(EXISTING_ANTI_AFFINITY));
    }
    Ok(())
}

/// Weights per topology domain from the pod's preferred terms and the existing pods' terms
/// toward the pod (upstream's PreScore state).
#[derive(Debug, Default)]
pub struct ScoreState {
    scores: TopologyCounts,
}

impl ScoreState {
    pub fn new(pod: &Pod, all_nodes: &[&NodeInfo]) -> ScoreState {
        let own = Terms::of(pod);
        let has_preferred =
            !own.preferred_affinity.is_empty() || !own.preferred_anti_affinity.is_empty();
        let mut scores = TopologyCounts::default();
        for node in all_nodes {
            // Without preferred terms of its own only pods with affinity can matter.
            let pods = if has_preferred {
                &node.pods
            } else {
                &node.pods_with_affinity
            };
            if pods.is_empty() {
                continue;
            }
            let labels = node.labels();
            if labels.is_empty() {
                continue;
            }
            for existing in pods {
                let mut add = |terms: &[Term], target: &Pod, sign: i64| {
                    for t in terms {
                        if t.matches(target) {
                            scores.add(&t.topology_key, labels, sign * t.weight);
                        }
                    }
                };
                add(&own.preferred_affinity, existing, 1);
                add(&own.preferred_anti_affinity, existing, -1);
                let theirs = Terms::of(existing);
                add(&theirs.affinity, pod, 1);
                add(&theirs.preferred_affinity, pod, 1);
                add(&theirs.preferred_anti_affinity, pod, -1);
            }
        }
        ScoreState { scores }
    }
}

/// The summed weights of the node's domains (normalised min–max).
pub fn score(_pod: &Pod, node: &NodeInfo, ctx: &ScoreContext) -> i64 {
    let labels = node.labels();
    ctx.affinity
        .scores
        .0
        .iter()
        .filter_map(|(key, values)| values.get(labels.get(key)?))
        .sum()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::plugins::testing::{node, pod};
    use crate::plugins::{normalize, Normalize};
    use serde_json::{json, Value};

    const ZONE: &str = "topology.kubernetes.io/zone";
    const HOSTNAME: &str = "kubernetes.io/hostname";

    fn zoned(name: &str, zone: &str) -> NodeInfo {
        node(
            name,
            "4",
            "8Gi",
            json!({"metadata": {"labels": {ZONE: zone}}}),
        )
    }

    fn labelled(name: &str, labels: Value) -> Arc<Pod> {
        Arc::new(pod(name, json!({"metadata": {"labels": labels}})))
    }

    fn term(key: &str, selector: Value) -> Value {
        json!({"topologyKey": key, "labelSelector": {"matchLabels": selector}})
    }

    /// A pod with labels and an `affinity` (podAffinity / podAntiAffinity).
    fn with_affinity(name: &str, labels: Value, affinity: Value) -> Pod {
        pod(
            name,
            json!({"metadata": {"labels": labels}, "spec": {"affinity": affinity}}),
        )
    }

    fn required(kind: &str, terms: Value) -> Value {
        json!({kind: {"requiredDuringSchedulingIgnoredDuringExecution": terms}})
    }

    fn check(p: &Pod, node: &NodeInfo, all: &[&NodeInfo]) -> FilterResult {
        filter(p, node, &FilterContext::new(p, all))
    }

    #[test]
    fn required_affinity_needs_a_matching_pod_in_the_domain() {
        let mut n1 = zoned("n1", "a");
        n1.add_pod(labelled("db", json!({"app": "db"})));
        let n2 = zoned("n2", "a");
        let n3 = zoned("n3", "b");
        let bare = node("n4", "4", "8Gi", json!({}));
        let all = [&n1, &n2, &n3, &bare];
        let p = with_affinity(
            "p",
            json!({"app": "web"}),
            required("podAffinity", json!([term(ZONE, json!({"app": "db"}))])),
        );
        assert!(check(&p, &n1, &all).is_ok());
        assert!(check(&p, &n2, &all).is_ok(), "same zone as the db pod");
        let err = check(&p, &n3, &all).unwrap_err();
        assert_eq!(err.reasons, ["node(s) didn't match pod affinity rules"]);
        assert!(err.unresolvable);
        assert!(check(&p, &bare, &all).is_err(), "no topology label");
        // By hostname only the db pod's node.
        let p = with_affinity(
            "p",
            json!({}),
            required("podAffinity", json!([term(HOSTNAME, json!({"app": "db"}))])),
        );
        assert!(check(&p, &n1, &all).is_ok());
        assert!(check(&p, &n2, &all).is_err());
    }

    #[test]
    fn the_first_pod_of_a_group_may_go_anywhere() {
        let n1 = zoned("n1", "a");
        let n2 = zoned("n2", "b");
        let bare = node("n3", "4", "8Gi", json!({}));
        let all = [&n1, &n2, &bare];
        let self_affine = with_affinity(
            "web-1",
            json!({"app": "web"}),
            required("podAffinity", json!([term(ZONE, json!({"app": "web"}))])),
        );
        assert!(check(&self_affine, &n1, &all).is_ok());
        assert!(check(&self_affine, &n2, &all).is_ok());
        assert_eq!(
            check(&self_affine, &bare, &all).unwrap_err().reasons,
            [AFFINITY],
            "the topology label is still required"
        );
        // Not a group member itself: nothing to follow, nowhere to go.
        let follower = with_affinity(
            "p",
            json!({"app": "cache"}),
            required("podAffinity", json!([term(ZONE, json!({"app": "web"}))])),
        );
        assert_eq!(check(&follower, &n1, &all).unwrap_err().reasons, [AFFINITY]);
        // Once one runs, the group follows it.
        let mut n1 = n1;
        n1.add_pod(labelled("web-0", json!({"app": "web"})));
        let all = [&n1, &n2];
        assert!(check(&self_affine, &n1, &all).is_ok());
        assert!(check(&self_affine, &n2, &all).is_err());
    }

    #[test]
    fn required_anti_affinity_keeps_away_from_matching_pods() {
        let mut n1 = zoned("n1", "a");
        n1.add_pod(labelled("web-1", json!({"app": "web"})));
        let n2 = zoned("n2", "a");
        let n3 = zoned("n3", "b");
        let all = [&n1, &n2, &n3];
        let p = with_affinity(
            "web-2",
            json!({"app": "web"}),
            required(
                "podAntiAffinity",
                json!([term(HOSTNAME, json!({"app": "web"}))]),
            ),
        );
        let err = check(&p, &n1, &all).unwrap_err();
        assert_eq!(
            err.reasons,
            ["node(s) didn't match pod anti-affinity rules"]
        );
        assert!(!err.unresolvable);
        assert!(check(&p, &n2, &all).is_ok());
        let by_zone = with_affinity(
            "web-2",
            json!({"app": "web"}),
            required(
                "podAntiAffinity",
                json!([term(ZONE, json!({"app": "web"}))]),
            ),
        );
        assert!(check(&by_zone, &n2, &all).is_err());
        assert!(check(&by_zone, &n3, &all).is_ok());
    }

    #[test]
    fn existing_pods_anti_affinity_is_symmetric() {
        let mut n1 = zoned("n1", "a");
        n1.add_pod(Arc::new(with_affinity(
            "loner",
            json!({"app": "loner"}),
            required(
                "podAntiAffinity",
                json!([term(ZONE, json!({"app": "web"}))]),
            ),
        )));
        let n2 = zoned("n2", "a");
        let n3 = zoned("n3", "b");
        let all = [&n1, &n2, &n3];
        // The incoming pod has no affinity at all.
        let web = pod("web", json!({"metadata": {"labels": {"app": "web"}}}));
        let err = check(&web, &n2, &all).unwrap_err();
        assert_eq!(
            err.reasons,
            ["node(s) didn't satisfy existing pods anti-affinity rules"]
        );
        assert!(!err.unresolvable);
        assert!(check(&web, &n1, &all).is_err());
        assert!(check(&web, &n3, &all).is_ok());
        assert!(check(&pod("db", json!({})), &n1, &all).is_ok());
        // Taking the loner off the node (a preemption trial) lifts it.
        let mut ctx = FilterContext::new(&web, &all);
        let loner = n1.pods[0].clone();
        let mut trial = n1.clone();
        trial.remove_pod("uid-loner");
        ctx.remove_pod(&web, &loner, &trial);
        assert!(filter(&web, &trial, &ctx).is_ok());
        assert!(filter(&web, &n2, &ctx).is_ok());
    }

    #[test]
    fn namespaces_and_label_keys() {
        let mut n1 = zoned("n1", "a");
        let mut other_ns = pod("db", json!({"metadata": {"labels": {"app": "db"}}}));
        other_ns.metadata.namespace = Some("data".into());
        n1.add_pod(Arc::new(other_ns));
        n1.add_pod(labelled(
            "web-old",
            json!({"app": "web", "pod-template-hash": "old"}),
        ));
        let all = [&n1];
        let affinity = |t: Value| {
            with_affinity(
                "p",
                json!({"app": "web", "pod-template-hash": "new"}),
                required("podAffinity", json!([t])),
            )
        };
        let mut t = term(ZONE, json!({"app": "db"}));
        assert!(check(&affinity(t.clone()), &n1, &all).is_err(), "own ns");
        t["namespaces"] = json!(["data"]);
        assert!(check(&affinity(t.clone()), &n1, &all).is_ok());
        let mut t = term(ZONE, json!({"app": "db"}));
        t["namespaceSelector"] = json!({});
        assert!(check(&affinity(t.clone()), &n1, &all).is_ok(), "{{}}: all");
        t["namespaceSelector"] = json!({"matchLabels": {"team": "data"}});
        assert!(
            check(&affinity(t), &n1, &all).is_err(),
            "labels unknown: none"
        );

        // Anti-affinity to other revisions of the same app only.
        let anti = |keys: Value| {
            let mut t = term(HOSTNAME, json!({"app": "web"}));
            t["matchLabelKeys"] = keys;
            with_affinity(
                "p",
                json!({"app": "web", "pod-template-hash": "new"}),
                required("podAntiAffinity", json!([t])),
            )
        };
        assert!(check(&anti(json!(null)), &n1, &all).is_err());
        assert!(check(&anti(json!(["pod-template-hash"])), &n1, &all).is_ok());
        let mut t = term(HOSTNAME, json!({"app": "web"}));
        t["mismatchLabelKeys"] = json!(["pod-template-hash"]);
        let mismatch = with_affinity(
            "p",
            json!({"app": "web", "pod-template-hash": "old"}),
            required("podAntiAffinity", json!([t])),
        );
        assert!(check(&mismatch, &n1, &all).is_ok(), "only other hashes");
    }

    fn scores(p: &Pod, all: &[&NodeInfo]) -> Vec<i64> {
        let ctx = ScoreContext::new(p, all, all);
        let mut raw: Vec<i64> = all.iter().map(|n| score(p, n, &ctx)).collect();
        normalize(&mut raw, Normalize::MinMax);
        raw
    }

    fn preferred(kind: &str, weight: i32, t: Value) -> Value {
        json!({kind: {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": weight, "podAffinityTerm": t}]}})
    }

    #[test]
    fn preferred_terms_score_by_domain() {
        let mut n1 = zoned("n1", "a");
        n1.add_pod(labelled("db", json!({"app": "db"})));
        let n2 = zoned("n2", "a");
        let mut n3 = zoned("n3", "b");
        n3.add_pod(labelled("web", json!({"app": "web"})));
        let all = [&n1, &n2, &n3];
        let mut affinity = preferred("podAffinity", 10, term(ZONE, json!({"app": "db"})));
        let anti = preferred("podAntiAffinity", 5, term(HOSTNAME, json!({"app": "db"})));
        affinity["podAntiAffinity"] = anti["podAntiAffinity"].clone();
        let p = with_affinity("p", json!({}), affinity);
        let ctx = ScoreContext::new(&p, &all, &all);
        assert_eq!(score(&p, &n1, &ctx), 10 - 5);
        assert_eq!(score(&p, &n2, &ctx), 10);
        assert_eq!(score(&p, &n3, &ctx), 0);
        assert_eq!(scores(&p, &all), [50, 100, 0]);
        // No terms anywhere: every node the same.
        assert_eq!(scores(&pod("q", json!({})), &all), [0, 0, 0]);
    }

    #[test]
    fn existing_pods_terms_toward_the_pod_score_too() {
        let mut n1 = zoned("n1", "a");
        n1.add_pod(Arc::new(with_affinity(
            "likes-web",
            json!({}),
            preferred("podAffinity", 20, term(ZONE, json!({"app": "web"}))),
        )));
        let mut n2 = zoned("n2", "b");
        n2.add_pod(Arc::new(with_affinity(
            "hates-web",
            json!({}),
            preferred("podAntiAffinity", 20, term(ZONE, json!({"app": "web"}))),
        )));
        let mut n3 = zoned("n3", "c");
        n3.add_pod(Arc::new(with_affinity(
            "needs-web",
            json!({}),
            required("podAffinity", json!([term(ZONE, json!({"app": "web"}))])),
        )));
        let n4 = zoned("n4", "d");
        let all = [&n1, &n2, &n3, &n4];
        let web = pod("web", json!({"metadata": {"labels": {"app": "web"}}}));
        let ctx = ScoreContext::new(&web, &all, &all);
        let raw: Vec<i64> = all.iter().map(|n| score(&web, n, &ctx)).collect();
        assert_eq!(raw, [20, -20, 1, 0], "hardPodAffinityWeight 1");
        let s = scores(&web, &all);
        assert_eq!(s[0], 100);
        assert_eq!(s[1], 0);
        assert!(s[2] > s[3]);
        // A pod they do not select is indifferent.
        assert_eq!(scores(&pod("db", json!({})), &all), [0, 0, 0, 0]);
    }
}
