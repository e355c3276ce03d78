//! What a PodDisruptionBudget allows (upstream `disruption.go`: `getExpectedPodCount`,
//! `countHealthyPods`, `updatePdbStatus`), as pure functions of its spec, its pods and the
//! scale of their controllers.
//!
//! - `minAvailable: N` — N pods must stay healthy; the expected count is the pods found.
//! - `minAvailable: P%` — ⌈P% × the controllers' scale⌉ must stay healthy.
//! - `maxUnavailable: N|P%` — scale − N (P% rounded up) must stay healthy.
//!
//! Healthy: Ready and not being deleted, and not evicted in the last two minutes (the
//! `disruptedPods` the API server records when it grants an eviction, so two evictions in a
//! row cannot both spend the same allowance before the pod is gone from the cache).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::deployment::util::scaled_value;
use crate::pods;

/// How long an eviction the API server granted keeps its pod out of the healthy count
/// (upstream's `DeletionTimeout`).
pub const DELETION_TIMEOUT: jiff::SignedDuration = jiff::SignedDuration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    pub expected: i32,
    pub desired_healthy: i32,
    pub current_healthy: i32,
    pub disruptions_allowed: i32,
}

/// Whether the budget needs the controllers' scale (anything but a plain `minAvailable` int).
pub fn needs_scale(spec: &PodDisruptionBudgetSpec) -> bool {
    spec.max_unavailable.is_some() || matches!(spec.min_available, Some(IntOrString::String(_)))
}

/// `(expected, desired healthy)` from the spec, the number of pods found and — when
/// [`needs_scale`] — the summed scale of their controllers.
pub fn expected_and_desired(
    spec: &PodDisruptionBudgetSpec,
    pods_found: i32,
    scale: i32,
) -> (i32, i32) {
    if let Some(max_unavailable) = &spec.max_unavailable {
        let unavailable = scaled_value(Some(max_unavailable), scale, true);
        return (scale, (scale - unavailable).max(0));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => (pods_found, *n),
        Some(value @ IntOrString::String(_)) => (scale, scaled_value(Some(value), scale, true)),
        None => (pods_found, 0),
    }
}

/// The disrupted pods still recent at `now` and still present and not being deleted.
pub fn live_disruptions(
    disrupted: &BTreeMap<String, Time>,
    pods: &[&Pod],
    now: jiff::Timestamp,
) -> BTreeMap<String, Time> {
    disrupted
        .iter()
        .filter(|(name, at)| {
            at.0 + DELETION_TIMEOUT > now
                && pods.iter().any(|p| {
                    p.metadata.name.as_deref() == Some(name.as_str())
                        && p.metadata.deletion_timestamp.is_none()
                })
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub fn current_healthy(pods: &[&Pod], disrupted: &BTreeMap<String, Time>) -> i32 {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default()))
        .filter(|p| pods::is_ready(p))
        .count() as i32
}

pub fn counts(expected: i32, desired_healthy: i32, current_healthy: i32) -> Counts {
    Counts {
        expected,
        desired_healthy,
        current_healthy,
        disruptions_allowed: (current_healthy - desired_healthy).max(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::testing::pod;

    fn spec(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudgetSpec {
        PodDisruptionBudgetSpec {
            min_available: min,
            max_unavailable: max,
            ..PodDisruptionBudgetSpec::default()
        }
    }

    #[test]
    fn min_available_and_max_unavailable() {
        let int = |n| Some(IntOrString::Int(n));
        let pct = |p: &str| Some(IntOrString::String(p.into()));
        assert_eq!(expected_and_desired(&spec(int(2), None), 3, 0), (3, 2));
        assert!(!needs_scale(&spec(int(2), None)));
        assert_eq!(expected_and_desired(&spec(pct("50%"), None), 3, 5), (5, 3));
        assert_eq!(expected_and_desired(&spec(None, int(1)), 3, 4), (4, 3));
        assert_eq!(
            expected_and_desired(&spec(None, pct("30%")), 3, 10),
            (10, 7)
        );
        assert_eq!(counts(4, 3, 4).disruptions_allowed, 1);
        assert_eq!(counts(4, 3, 2).disruptions_allowed, 0);
    }

    #[test]
    fn recently_evicted_pods_are_not_healthy() {
        let now = jiff::Timestamp::from_second(1_000).expect("valid");
        let a = pod("a", "n1", "Running", Some(0));
        let b = pod("b", "n1", "Running", Some(0));
        let list = [&a, &b];
        let disrupted = BTreeMap::from([
            (
                "a".to_string(),
                Time(jiff::Timestamp::from_second(990).expect("valid")),
            ),
            (
                "gone".to_string(),
                Time(jiff::Timestamp::from_second(990).expect("valid")),
            ),
            (
                "b".to_string(),
                Time(jiff::Timestamp::from_second(800).expect("valid")),
            ),
        ]);
        let live = live_disruptions(&disrupted, &list, now);
        assert_eq!(live.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(current_healthy(&list, &live), 1);
    }
}
