//! The replica calculator (upstream `podautoscaler/replica_calculator.go`): from the pods an
//! autoscaler's target selects and what the metrics APIs said of them, the replica count one
//! metric asks for. Pure arithmetic on what the caller fetched, so every rule is tested here.
//!
//! The rules that make it more than `ceil(ratio × pods)`:
//! - pods being deleted or failed are ignored; pending pods, and (for cpu) pods still starting
//!   whose sample may predate readiness, are *unready*; pods without a sample are *missing*;
//! - a ratio within the tolerance (10% by default) changes nothing;
//! - when pods are unready or missing, the ratio is recomputed assuming the worst for the
//!   proposed direction (missing pods use 100% of their request on a scale-down and 0 on a
//!   scale-up; unready pods 0 on a scale-up), and a recomputation that flips the direction or
//!   lands within the tolerance keeps the current count.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use skiff_apiserver::admission::quantity::Quantity;

/// One pod's sample: the value in thousandths of a unit (millicores, millibytes), when it was
/// taken and over what window.
#[derive(Clone, Debug, PartialEq)]
pub struct PodMetric {
    pub timestamp: Timestamp,
    pub window: Duration,
    pub value: i64,
}

impl PodMetric {
    /// A value the calculator substitutes for a pod without a usable sample.
    fn assumed(value: i64) -> PodMetric {
        PodMetric {
            timestamp: Timestamp::UNIX_EPOCH,
            window: Duration::ZERO,
            value,
        }
    }
}

/// Samples by pod name.
pub type PodMetrics = HashMap<String, PodMetric>;

/// How far the usage ratio may be from 1 before the count changes, per direction
/// (`--horizontal-pod-autoscaler-tolerance`, or `behavior.scaleUp/scaleDown.tolerance`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerances {
    pub scale_down: f64,
    pub scale_up: f64,
}

impl Tolerances {
    pub fn is_within(&self, ratio: f64) -> bool {
        1.0 - self.scale_down <= ratio && ratio <= 1.0 + self.scale_up
    }
}

/// The readiness rules for cpu samples (`--horizontal-pod-autoscaler-cpu-initialization-period`
/// and `--horizontal-pod-autoscaler-initial-readiness-delay`).
#[derive(Clone, Copy, Debug)]
pub struct Readiness {
    pub cpu_initialization_period: Duration,
    pub initial_readiness_delay: Duration,
}

/// What a calculation needs beside the pods and samples.
#[derive(Clone, Copy, Debug)]
pub struct Inputs {
    pub current_replicas: i32,
    pub tolerances: Tolerances,
    pub readiness: Readiness,
    pub now: Timestamp,
}

pub const NO_PODS: &str = "no pods returned by selector while calculating replica count";
const NO_METRICS: &str = "did not receive metrics for targeted pods (pods might be unready)";

#[derive(Debug, Default)]
struct Groups {
    ready: usize,
    unready: HashSet<String>,
    missing: HashSet<String>,
    ignored: HashSet<String>,
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// Upstream `groupPods`.
fn group_pods(
    pods: &[Arc<Pod>],
    metrics: &PodMetrics,
    resource: Option<&str>,
    readiness: Readiness,
    now: Timestamp,
) -> Groups {
    let mut groups = Groups::default();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref());
        if pod.metadata.deletion_timestamp.is_some() || phase == Some("Failed") {
            groups.ignored.insert(name);
            continue;
        }
        if phase == Some("Pending") {
            groups.unready.insert(name);
            continue;
        }
        let Some(metric) = metrics.get(&name) else {
            groups.missing.insert(name);
            continue;
        };
        if resource == Some("cpu") {
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
            let start = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
            let unready = match (ready, start) {
                (Some(ready), Some(start)) => {
                    let transition = ready
                        .last_transition_time
                        .as_ref()
                        .map(|t| t.0)
                        .unwrap_or(Timestamp::UNIX_EPOCH);
                    if add(start, readiness.cpu_initialization_period) > now {
                        // Still initializing: a sample must postdate readiness by a window.
                        ready.status == "False" || metric.timestamp < add(transition, metric.window)
                    } else {
                        // Pods that were never ready after starting are unready.
                        ready.status == "False"
                            && add(start, readiness.initial_readiness_delay) > transition
                    }
                }
                _ => true,
            };
            if unready {
                groups.unready.insert(name);
                continue;
            }
        }
        groups.ready += 1;
    }
    groups
}

fn quantity_milli(q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity) -> Option<i64> {
    Quantity::parse(&q.0).map(|q| q.milli_value())
}

/// Each pod's request of `resource` in thousandths (upstream `calculateRequests`): the pod-level
/// request when the pod sets one and no container is named, else the sum over its containers
/// (restartable init containers, the sidecars, included), or the named container's.
pub fn requests(
    pods: &[Arc<Pod>],
    container: &str,
    resource: &str,
) -> Result<HashMap<String, i64>, String> {
    let mut out = HashMap::with_capacity(pods.len());
    for pod in pods {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let pod_level = spec
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .filter(|r| r.contains_key("cpu") || r.contains_key("memory"));
        let request = match pod_level {
            Some(requests) if container.is_empty() => requests
                .get(resource)
                .and_then(quantity_milli)
                .ok_or_else(|| format!("missing pod-level request for {resource} in Pod {name}"))?,
            _ => container_requests(pod, name, container, resource)?,
        };
        out.insert(name.to_string(), request);
    }
    Ok(out)
}

fn container_requests(
    pod: &Pod,
    pod_name: &str,
    container: &str,
    resource: &str,
) -> Result<i64, String> {
    let spec = pod.spec.as_ref();
    let sidecars = spec
        .and_then(|s| s.init_containers.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    let containers = spec.map(|s| s.containers.iter()).into_iter().flatten();
    let mut request = 0;
    for c in containers.chain(sidecars) {
        if container.is_empty() || container == c.name {
            let value = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .and_then(quantity_milli)
                .ok_or_else(|| {
                    format!(
                        "missing request for {resource} in container {} of Pod {pod_name}",
                        c.name
                    )
                })?;
            request += value;
        }
        if container == c.name {
            return Ok(request);
        }
    }
    if !container.is_empty() {
        return Err(format!("container {container} not found in Pod {pod_name}"));
    }
    Ok(request)
}

/// Upstream `GetResourceUtilizationRatio`: (usage ratio, utilization in percent of the
/// requests, average raw value).
fn utilization_ratio(
    metrics: &PodMetrics,
    requests: &HashMap<String, i64>,
    target_utilization: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut used, mut requested, mut entries) = (0i64, 0i64, 0i64);
    for (pod, metric) in metrics {
        let Some(request) = requests.get(pod) else {
            continue;
        };
        used += metric.value;
        requested += request;
        entries += 1;
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = (used * 100 / requested) as i32;
    Ok((
        f64::from(utilization) / f64::from(target_utilization),
        utilization,
        used / entries,
    ))
}

/// Upstream `GetMetricUsageRatio`: (usage ratio, average value).
fn usage_ratio(metrics: &PodMetrics, target: i64) -> (f64, i64) {
    let total: i64 = metrics.values().map(|m| m.value).sum();
    let average = total / metrics.len().max(1) as i64;
    (average as f64 / target as f64, average)
}

fn ceil_i32(x: f64) -> i32 {
    let c = x.ceil();
    if c >= f64::from(i32::MAX) {
        i32::MAX
    } else {
        c as i32
    }
}

/// A target utilization of a resource (percent of the pods' requests): (replicas,
/// utilization, average raw value). Upstream `GetResourceReplicas` after the metrics fetch.
pub fn resource_replicas(
    inputs: &Inputs,
    target_utilization: i32,
    resource: &str,
    container: &str,
    pods: &[Arc<Pod>],
    mut metrics: PodMetrics,
) -> Result<(i32, i32, i64), String> {
    if pods.is_empty() {
        return Err(NO_PODS.into());
    }
    let groups = group_pods(pods, &metrics, Some(resource), inputs.readiness, inputs.now);
    metrics.retain(|pod, _| !groups.ignored.contains(pod) && !groups.unready.contains(pod));
    if metrics.is_empty() {
        return Err(NO_METRICS.into());
    }
    let requests = requests(pods, container, resource)?;
    let (ratio, utilization, raw) = utilization_ratio(&metrics, &requests, target_utilization)?;
    // On a scale-down, a missing pod is assumed at the target (at least its request).
    let fallback = i64::from(target_utilization.max(100));
    let assumed = |pod: &str| requests.get(pod).copied().unwrap_or(0) * fallback / 100;
    let replicas = propose(inputs, &groups, metrics, ratio, assumed, |m| {
        utilization_ratio(m, &requests, target_utilization).map(|(r, _, _)| r)
    })?;
    Ok((replicas, utilization, raw))
}

/// The count a ratio asks for, given what was grouped: `ceil(ratio × ready pods)` (or the
/// current count within the tolerance) when every pod is ready and sampled; otherwise the
/// ratio recomputed with missing pods at `scale_down_assumption` on a scale-down (0 on a
/// scale-up) and unready pods at 0 on a scale-up, then [`settle`]d.
fn propose(
    inputs: &Inputs,
    groups: &Groups,
    mut metrics: PodMetrics,
    ratio: f64,
    scale_down_assumption: impl Fn(&str) -> i64,
    ratio_of: impl Fn(&PodMetrics) -> Result<f64, String>,
) -> Result<i32, String> {
    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        if inputs.tolerances.is_within(ratio) {
            return Ok(inputs.current_replicas);
        }
        return Ok(ceil_i32(ratio * groups.ready as f64));
    }
    if ratio < 1.0 {
        for pod in &groups.missing {
            metrics.insert(pod.clone(), PodMetric::assumed(scale_down_assumption(pod)));
        }
    } else if ratio > 1.0 {
        for pod in &groups.missing {
            metrics.insert(pod.clone(), PodMetric::assumed(0));
        }
    }
    if scale_up_with_unready {
        for pod in &groups.unready {
            metrics.insert(pod.clone(), PodMetric::assumed(0));
        }
    }
    let new_ratio = ratio_of(&metrics)?;
    Ok(settle(inputs, ratio, new_ratio, metrics.len()))
}

/// After the worst-case recomputation: the current count when it flips the direction, lands
/// within the tolerance or would move against the ratio; else `ceil(ratio × samples)`.
fn settle(inputs: &Inputs, ratio: f64, new_ratio: f64, samples: usize) -> i32 {
    let current = inputs.current_replicas;
    if inputs.tolerances.is_within(new_ratio)
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return current;
    }
    let proposed = ceil_i32(new_ratio * samples as f64);
    if (new_ratio < 1.0 && proposed > current) || (new_ratio > 1.0 && proposed < current) {
        return current;
    }
    proposed
}

/// A target average value per pod (a resource's AverageValue, or a Pods metric): (replicas,
/// average usage). Upstream `calcPlainMetricReplicas`.
pub fn plain_replicas(
    inputs: &Inputs,
    target: i64,
    resource: Option<&str>,
    pods: &[Arc<Pod>],
    mut metrics: PodMetrics,
) -> Result<(i32, i64), String> {
    if pods.is_empty() {
        return Err(NO_PODS.into());
    }
    let groups = group_pods(pods, &metrics, resource, inputs.readiness, inputs.now);
    metrics.retain(|pod, _| !groups.ignored.contains(pod) && !groups.unready.contains(pod));
    if metrics.is_empty() {
        return Err(NO_METRICS.into());
    }
    let (ratio, usage) = usage_ratio(&metrics, target);
    let replicas = propose(
        inputs,
        &groups,
        metrics,
        ratio,
        |_| target,
        |m| Ok(usage_ratio(m, target).0),
    )?;
    Ok((replicas, usage))
}

/// A usage ratio of one value for the whole target (an Object metric's Value, an External
/// metric's Value): the ready pods scaled by it. Upstream `getUsageRatioReplicaCount`.
pub fn ratio_replicas(inputs: &Inputs, ratio: f64, pods: &[Arc<Pod>]) -> Result<i32, String> {
    if inputs.current_replicas == 0 {
        return Ok(ceil_i32(ratio));
    }
    if inputs.tolerances.is_within(ratio) {
        return Ok(inputs.current_replicas);
    }
    if pods.is_empty() {
        return Err(format!("unable to calculate ready pods: {NO_PODS}"));
    }
    let ready = pods
        .iter()
        .filter(|p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && crate::pods::is_ready(p)
        })
        .count();
    Ok(ceil_i32(ratio * ready as f64))
}

/// A target average per pod of one total value (an Object or External metric's AverageValue):
/// (replicas, average usage). Upstream `GetObjectPerPodMetricReplicas` and
/// `GetExternalPerPodMetricReplicas`.
pub fn per_pod_replicas(
    tolerances: Tolerances,
    status_replicas: i32,
    usage: i64,
    target_per_pod: i64,
) -> (i32, i64) {
    let mut replicas = status_replicas;
    let ratio = usage as f64 / (target_per_pod as f64 * f64::from(status_replicas));
    if !tolerances.is_within(ratio) {
        replicas = ceil_i32(usage as f64 / target_per_pod as f64);
    }
    let average = if status_replicas == 0 {
        usage
    } else {
        (usage as f64 / f64::from(status_replicas)).ceil() as i64
    };
    (replicas, average)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, PodCondition, PodSpec, PodStatus, ResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    const TOLERANCE: Tolerances = Tolerances {
        scale_down: 0.1,
        scale_up: 0.1,
    };
    const READINESS: Readiness = Readiness {
        cpu_initialization_period: Duration::from_secs(300),
        initial_readiness_delay: Duration::from_secs(30),
    };

    fn now() -> Timestamp {
        "2026-12-04T12:00:00Z".parse().unwrap()
    }

    fn ago(seconds: i64) -> Timestamp {
        now() - jiff::SignedDuration::from_secs(seconds)
    }

    /// A running pod started 10 minutes ago, ready for 9, with one container requesting
    /// `cpu` millicores.
    fn pod(name: &str, cpu: i64) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some([("cpu".to_string(), Q(format!("{cpu}m")))].into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                start_time: Some(Time(ago(600))),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(ago(540))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn with_phase(pod: Arc<Pod>, phase: &str) -> Arc<Pod> {
        let mut pod = (*pod).clone();
        pod.status.as_mut().unwrap().phase = Some(phase.into());
        Arc::new(pod)
    }

    fn sample(value: i64) -> PodMetric {
        PodMetric {
            timestamp: ago(10),
            window: Duration::from_secs(30),
            value,
        }
    }

    fn metrics(values: &[(&str, i64)]) -> PodMetrics {
        values
            .iter()
            .map(|(n, v)| (n.to_string(), sample(*v)))
            .collect()
    }

    fn inputs(current: i32) -> Inputs {
        Inputs {
            current_replicas: current,
            tolerances: TOLERANCE,
            readiness: READINESS,
            now: now(),
        }
    }

    #[test]
    fn scales_by_the_usage_ratio_of_the_requests() {
        // Upstream's TestReplicaCalcScaleUp: 3 pods at 300, 500, 700 of 1000m, target 30%.
        let pods = [pod("a", 1000), pod("b", 1000), pod("c", 1000)];
        let m = metrics(&[("a", 300), ("b", 500), ("c", 700)]);
        assert_eq!(
            resource_replicas(&inputs(3), 30, "cpu", "", &pods, m),
            Ok((5, 50, 500))
        );
        // ... and down: 100, 300, 500, 250, 250 of 1000m at 50% → 3.
        let pods: Vec<_> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|n| pod(n, 1000))
            .collect();
        let m = metrics(&[("a", 100), ("b", 300), ("c", 500), ("d", 250), ("e", 250)]);
        assert_eq!(
            resource_replicas(&inputs(5), 50, "cpu", "", &pods, m),
            Ok((3, 28, 280))
        );
    }

    #[test]
    fn a_ratio_within_the_tolerance_keeps_the_count() {
        let pods = [pod("a", 1000), pod("b", 1000), pod("c", 1000)];
        let m = metrics(&[("a", 1010), ("b", 1030), ("c", 1020)]);
        assert_eq!(
            resource_replicas(&inputs(3), 100, "cpu", "", &pods, m),
            Ok((3, 102, 1020))
        );
    }

    #[test]
    fn unready_pods_count_as_idle_on_a_scale_up() {
        // Upstream's TestReplicaCalcScaleUpUnreadyLessScale: one pending pod of three.
        let pods = [
            with_phase(pod("a", 1000), "Pending"),
            pod("b", 1000),
            pod("c", 1000),
        ];
        let m = metrics(&[("a", 300), ("b", 500), ("c", 700)]);
        // Ready usage 600 of 1000 at 30% → ratio 2; with the pending pod at 0: 400/30%.
        assert_eq!(
            resource_replicas(&inputs(3), 30, "cpu", "", &pods, m),
            Ok((4, 60, 600))
        );
    }

    #[test]
    fn missing_samples_assume_the_worst_for_the_direction() {
        // Scale-down with a pod without a sample: it is assumed at its request (100%).
        let pods = [
            pod("a", 1000),
            pod("b", 1000),
            pod("c", 1000),
            pod("d", 1000),
        ];
        let m = metrics(&[("a", 100), ("b", 100), ("c", 100)]);
        // Ratio 10/50 = 0.2; with d at 1000: (1300/4000)=32% / 50 = 0.64 → ceil(0.64×4) = 3.
        assert_eq!(
            resource_replicas(&inputs(4), 50, "cpu", "", &pods, m),
            Ok((3, 10, 100))
        );
        // A scale-up the assumption would flip keeps the count.
        let m = metrics(&[("a", 600), ("b", 600), ("c", 600)]);
        assert_eq!(
            resource_replicas(&inputs(4), 50, "cpu", "", &pods, m),
            Ok((4, 60, 600))
        );
    }

    #[test]
    fn deleted_and_failed_pods_are_ignored_and_no_samples_is_an_error() {
        let pods = [with_phase(pod("a", 1000), "Failed")];
        let m = metrics(&[("a", 900)]);
        assert_eq!(
            resource_replicas(&inputs(1), 50, "cpu", "", &pods, m),
            Err(NO_METRICS.to_string())
        );
        assert_eq!(
            resource_replicas(&inputs(1), 50, "cpu", "", &[], PodMetrics::new()),
            Err(NO_PODS.to_string())
        );
    }

    #[test]
    fn a_pod_without_a_request_is_upstreams_error() {
        let mut p = (*pod("a", 1000)).clone();
        p.spec.as_mut().unwrap().containers[0].resources = None;
        let pods = [Arc::new(p)];
        assert_eq!(
            resource_replicas(&inputs(1), 50, "cpu", "", &pods, metrics(&[("a", 5)])),
            Err("missing request for cpu in container app of Pod a".to_string())
        );
        assert_eq!(
            resource_replicas(&inputs(1), 50, "cpu", "web", &pods, metrics(&[("a", 5)])),
            Err("container web not found in Pod a".to_string())
        );
    }

    #[test]
    fn cpu_samples_from_before_readiness_are_unready() {
        // Started a minute ago, ready 5 s ago: a 30 s sample taken 10 s ago predates readiness.
        let mut p = (*pod("a", 1000)).clone();
        let status = p.status.as_mut().unwrap();
        status.start_time = Some(Time(ago(60)));
        status.conditions.as_mut().unwrap()[0].last_transition_time = Some(Time(ago(5)));
        let pods = [Arc::new(p), pod("b", 1000)];
        let m = metrics(&[("a", 1000), ("b", 1000)]);
        // Only b counts at first (ratio 2); with a at 0 the ratio is 1 → within tolerance.
        assert_eq!(
            resource_replicas(&inputs(2), 50, "cpu", "", &pods, m),
            Ok((2, 100, 1000))
        );
    }

    #[test]
    fn average_values_and_object_metrics() {
        let pods = [pod("a", 1000), pod("b", 1000)];
        // Pods metric: 20 and 40 per pod at a target of 10 → 3× → 6.
        assert_eq!(
            plain_replicas(
                &inputs(2),
                10,
                None,
                &pods,
                metrics(&[("a", 20), ("b", 40)])
            ),
            Ok((6, 30))
        );
        // An object's value at twice the target doubles the ready pods.
        assert_eq!(ratio_replicas(&inputs(2), 2.0, &pods), Ok(4));
        assert_eq!(ratio_replicas(&inputs(0), 2.5, &[]), Ok(3));
        // 100 in total at 30 per pod over 2 replicas → 4 replicas, 50 each.
        assert_eq!(per_pod_replicas(TOLERANCE, 2, 100, 30), (4, 50));
        assert_eq!(per_pod_replicas(TOLERANCE, 2, 62, 30), (2, 31));
    }
}
