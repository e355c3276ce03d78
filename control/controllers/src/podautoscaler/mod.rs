//! The horizontal pod autoscaler controller (upstream `pkg/controller/podautoscaler`): every
//! `--horizontal-pod-autoscaler-sync-period` (15 s) each HorizontalPodAutoscaler reads its
//! target's `scale` subresource, asks the metrics APIs about the pods the scale's selector
//! picks (`metrics.rs`), turns each metric into a replica count (`replicas.rs`), takes the
//! largest, stabilizes and limits it (`normalize.rs`) and writes it to the target's scale
//! (`scale.rs`). Status, conditions (`AbleToScale`, `ScalingActive`, `ScalingLimited`,
//! `ScaledToZero`) and events carry upstream's reasons and messages, so `kubectl get hpa` and
//! `kubectl describe hpa` read as on upstream.
//!
//! As upstream's, a sync is triggered by a new autoscaler or a spec change (a new
//! `metadata.generation`) and otherwise only by the period: the controller's own status writes
//! do not re-run it, which would double-count recommendations.

pub mod metrics;
pub mod normalize;
pub mod replicas;
pub mod scale;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, CrossVersionObjectReference, ExternalMetricStatus,
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
    MetricIdentifier, MetricSpec, MetricStatus, MetricTarget, MetricValueStatus,
    ObjectMetricStatus, PodsMetricStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector;
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{predicates, WatchStreamExt};
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use skiff_apiserver::admission::quantity::{Format, Quantity};
use skiff_apiserver::selectors::LabelSelector;

use crate::events::{Recorder, NORMAL, WARNING};
use crate::informer::Informer;
use crate::workqueue::{self, names};
use normalize::{Behavior, History};
use replicas::{Inputs, Readiness, Tolerances};

const COMPONENT: &str = "horizontal-pod-autoscaler";

/// The controller's flags (upstream kube-controller-manager's `--horizontal-pod-autoscaler-*`).
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub sync_period: Duration,
    pub downscale_stabilization: Duration,
    pub tolerance: f64,
    pub cpu_initialization_period: Duration,
    pub initial_readiness_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sync_period: Duration::from_secs(15),
            downscale_stabilization: Duration::from_secs(300),
            tolerance: 0.1,
            cpu_initialization_period: Duration::from_secs(300),
            initial_readiness_delay: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

struct Context {
    client: Client,
    pods: Arc<Informer<Pod>>,
    recorder: Recorder,
    metrics: metrics::MetricsClient,
    mapper: scale::Mapper,
    config: Config,
    /// Recommendations and scale events per autoscaler (`namespace/name`).
    histories: Mutex<HashMap<String, History>>,
    /// The pod selector each autoscaler last synced with, to refuse two autoscalers on the
    /// same pods (upstream's selector tracker).
    selectors: Mutex<HashMap<String, (String, LabelSelector)>>,
}

fn key_of(hpa: &HorizontalPodAutoscaler) -> String {
    format!("{}/{}", hpa.namespace().unwrap_or_default(), hpa.name_any())
}

/// Builds the controller; it runs once the pod cache is synced.
pub fn controller(
    client: Client,
    pods: Arc<Informer<Pod>>,
    recorder: &Recorder,
    config: Config,
) -> impl std::future::Future<Output = ()> + Send {
    let ctx = Arc::new(Context {
        client: client.clone(),
        pods: pods.clone(),
        recorder: recorder.for_component(COMPONENT),
        metrics: metrics::MetricsClient::new(client.clone()),
        mapper: scale::Mapper::default(),
        config,
        histories: Mutex::default(),
        selectors: Mutex::default(),
    });
    let (reader, writer) = reflector::store();
    let forget = ctx.clone();
    let autoscalers = watcher(
        Api::<HorizontalPodAutoscaler>::all(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .inspect_ok(move |event| {
        if let watcher::Event::Delete(hpa) = event {
            let key = key_of(hpa);
            forget.histories.lock().remove(&key);
            forget.selectors.lock().remove(&key);
        }
    })
    .applied_objects()
    // New autoscalers and spec changes; status writes wait for the period.
    .predicate_filter(predicates::generation, Default::default());
    let controller = Controller::for_stream(autoscalers, reader);
    async move {
        pods.wait_synced().await;
        workqueue::run(
            names::HORIZONTAL_POD_AUTOSCALER,
            controller,
            reconcile,
            error_policy,
            ctx,
        )
        .await;
    }
}

async fn reconcile(hpa: Arc<HorizontalPodAutoscaler>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.reconcile(&hpa).await?;
    Ok(Action::requeue(ctx.config.sync_period))
}

/// Upstream's queue retries every autoscaler at the sync period, failed or not.
fn error_policy(hpa: Arc<HorizontalPodAutoscaler>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::debug!(hpa = %key_of(&hpa), "horizontal pod autoscaler sync: {error}");
    Action::requeue(ctx.config.sync_period)
}

/// Upstream `setCondition`: the transition time moves only when the status does.
fn set_condition(
    hpa: &mut HorizontalPodAutoscaler,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) {
    let conditions = hpa
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new);
    let index = match conditions.iter().position(|c| c.type_ == type_) {
        Some(i) => i,
        None => {
            conditions.push(HorizontalPodAutoscalerCondition {
                type_: type_.into(),
                ..Default::default()
            });
            conditions.len() - 1
        }
    };
    let condition = &mut conditions[index];
    if condition.status != status {
        condition.last_transition_time = Some(Time(jiff::Timestamp::now()));
    }
    condition.status = status.into();
    condition.reason = Some(reason.into());
    condition.message = Some(message);
}

fn condition_is_true(hpa: &HorizontalPodAutoscaler, type_: &str) -> bool {
    hpa.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

fn milli_quantity(value: i64, format: Format) -> ApiQuantity {
    ApiQuantity(Quantity::from_milli(value, format).to_string())
}

/// Upstream `buildQuantity`: memory prints in binary units.
fn resource_quantity(resource: &str, value: i64) -> ApiQuantity {
    milli_quantity(
        value,
        if resource == "memory" {
            Format::BinarySI
        } else {
            Format::DecimalSI
        },
    )
}

fn target_milli(q: Option<&ApiQuantity>) -> Option<i64> {
    q.and_then(|q| Quantity::parse(&q.0))
        .map(|q| q.milli_value())
}

/// One metric's failure: the `ScalingActive` condition it sets if every metric fails, and the
/// error text.
struct MetricFailure {
    reason: &'static str,
    message: String,
}

/// One metric's proposal.
struct Proposal {
    replicas: i32,
    metric: String,
    status: MetricStatus,
}

/// What every metric of one sync shares.
struct MetricInputs<'a> {
    namespace: &'a str,
    selector: &'a str,
    pods: &'a [Arc<Pod>],
    inputs: Inputs,
    spec_replicas: i32,
    status_replicas: i32,
}

impl Context {
    fn tolerances(&self, hpa: &HorizontalPodAutoscaler) -> Tolerances {
        let behavior = hpa.spec.behavior.as_ref();
        let of = |rules: Option<&k8s_openapi::api::autoscaling::v2::HPAScalingRules>| {
            rules
                .and_then(|r| r.tolerance.as_ref())
                .and_then(|t| Quantity::parse(&t.0))
                .map(|q| q.milli_value() as f64 / 1000.0)
                .unwrap_or(self.config.tolerance)
        };
        Tolerances {
            scale_down: of(behavior.and_then(|b| b.scale_down.as_ref())),
            scale_up: of(behavior.and_then(|b| b.scale_up.as_ref())),
        }
    }

    /// Records the warning upstream's `getUnableComputeReplicaCountCondition` records.
    fn unable(
        &self,
        hpa: &HorizontalPodAutoscaler,
        reason: &'static str,
        error: &str,
    ) -> MetricFailure {
        self.recorder
            .publish(hpa, WARNING, reason, error.to_string());
        MetricFailure {
            reason,
            message: format!("the HPA was unable to compute the replica count: {error}"),
        }
    }

    /// Parses the scale's selector and refuses pods another autoscaler already scales
    /// (upstream `validateAndParseSelector`).
    fn selector(
        &self,
        hpa: &mut HorizontalPodAutoscaler,
        selector: &str,
    ) -> Result<(LabelSelector, Vec<Arc<Pod>>), String> {
        if selector.is_empty() {
            let message = "selector is required";
            self.recorder
                .publish(hpa, WARNING, "SelectorRequired", message.into());
            set_condition(
                hpa,
                "ScalingActive",
                "False",
                "InvalidSelector",
                "the HPA target's scale is missing a selector".into(),
            );
            return Err(message.into());
        }
        let parsed = LabelSelector::parse(selector).map_err(|e| {
            let message = format!(
                "couldn't convert selector into a corresponding internal selector object: {}",
                e.message
            );
            self.recorder
                .publish(hpa, WARNING, "InvalidSelector", message.clone());
            set_condition(
                hpa,
                "ScalingActive",
                "False",
                "InvalidSelector",
                message.clone(),
            );
            message
        })?;
        let namespace = hpa.namespace().unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .pods
            .read()
            .in_namespace(&namespace)
            .into_iter()
            .filter(|p| parsed.matches_map(p.metadata.labels.as_ref()))
            .collect();
        let key = key_of(hpa);
        let mut selecting: Vec<String> = {
            let mut selectors = self.selectors.lock();
            selectors.insert(key.clone(), (namespace.clone(), parsed.clone()));
            selectors
                .iter()
                .filter(|(_, (ns, s))| {
                    *ns == namespace
                        && pods
                            .iter()
                            .any(|p| s.matches_map(p.metadata.labels.as_ref()))
                })
                .map(|(k, _)| k.clone())
                .collect()
        };
        if selecting.len() > 1 {
            selecting.sort();
            selecting.truncate(2);
            let message = format!(
                "pods by selector {selector} are controlled by more than one HPA (e.g. [{}])",
                selecting.join(" ")
            );
            self.recorder
                .publish(hpa, WARNING, "AmbiguousSelector", message.clone());
            set_condition(
                hpa,
                "ScalingActive",
                "False",
                "AmbiguousSelector",
                message.clone(),
            );
            return Err(message);
        }
        Ok((parsed, pods))
    }

    /// A resource's usage against a target (Utilization or AverageValue), for Resource and
    /// ContainerResource metrics (upstream `computeStatusForResourceMetricGeneric`).
    async fn resource_metric(
        &self,
        m: &MetricInputs<'_>,
        target: &MetricTarget,
        resource: &str,
        container: &str,
    ) -> Result<(i32, MetricValueStatus, String), String> {
        let fetch = |e: String| format!("unable to get metrics for resource {resource}: {e}");
        if let Some(average) = target_milli(target.average_value.as_ref()) {
            let (samples, _) = self
                .metrics
                .resource(resource, m.namespace, m.selector, container)
                .await
                .map_err(|e| format!("failed to get {resource} usage: {}", fetch(e)))?;
            let (replicas, usage) =
                replicas::plain_replicas(&m.inputs, average, Some(resource), m.pods, samples)
                    .map_err(|e| format!("failed to get {resource} usage: {e}"))?;
            let status = MetricValueStatus {
                average_value: Some(resource_quantity(resource, usage)),
                ..Default::default()
            };
            return Ok((replicas, status, format!("{resource} resource")));
        }
        let Some(utilization) = target.average_utilization else {
            return Err("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".into());
        };
        let (samples, _) = self
            .metrics
            .resource(resource, m.namespace, m.selector, container)
            .await
            .map_err(|e| format!("failed to get {resource} utilization: {}", fetch(e)))?;
        let (replicas, current, raw) = replicas::resource_replicas(
            &m.inputs,
            utilization,
            resource,
            container,
            m.pods,
            samples,
        )
        .map_err(|e| format!("failed to get {resource} utilization: {e}"))?;
        let status = MetricValueStatus {
            average_utilization: Some(current),
            average_value: Some(resource_quantity(resource, raw)),
            value: None,
        };
        let name = if container.is_empty() {
            format!("{resource} resource utilization (percentage of request)")
        } else {
            format!("{resource} container resource utilization (percentage of request)")
        };
        Ok((replicas, status, name))
    }

    /// The `resource.group` a custom-metrics object reference names (upstream's custom metrics
    /// client maps the kind through discovery); None for a Namespace.
    async fn qualified_resource(
        &self,
        object: &CrossVersionObjectReference,
    ) -> Result<Option<String>, String> {
        let api_version = object.api_version.clone().unwrap_or_default();
        let (group, version) = scale::parse_group_version(&api_version)?;
        if group.is_empty() && object.kind == "Namespace" {
            return Ok(None);
        }
        let gvk = kube::api::GroupVersionKind::gvk(&group, &version, &object.kind);
        let (resource, _) =
            kube::discovery::pinned_kind(&self.client, &gvk)
                .await
                .map_err(|_| {
                    format!(
                    "unable to map kind {}{} to resource: no matches for kind {:?} in group {:?}",
                    object.kind,
                    if group.is_empty() { String::new() } else { format!(".{group}") },
                    object.kind,
                    group
                )
                })?;
        Ok(Some(if group.is_empty() {
            resource.plural
        } else {
            format!("{}.{group}", resource.plural)
        }))
    }

    /// One metric's proposal (upstream `computeReplicasForMetric`).
    async fn metric(
        &self,
        hpa: &HorizontalPodAutoscaler,
        spec: &MetricSpec,
        m: &MetricInputs<'_>,
    ) -> Result<Proposal, (MetricFailure, String)> {
        let identifier = |name: &str, selector| MetricIdentifier {
            name: name.to_string(),
            selector,
        };
        match (spec.type_.as_str(), spec) {
            (
                "Resource",
                MetricSpec {
                    resource: Some(source),
                    ..
                },
            ) => {
                match self
                    .resource_metric(m, &source.target, &source.name, "")
                    .await
                {
                    Ok((replicas, current, metric)) => Ok(Proposal {
                        replicas,
                        metric,
                        status: MetricStatus {
                            type_: "Resource".into(),
                            resource: Some(ResourceMetricStatus {
                                name: source.name.clone(),
                                current,
                            }),
                            ..Default::default()
                        },
                    }),
                    Err(e) => Err((
                        self.unable(hpa, "FailedGetResourceMetric", &e),
                        format!("failed to get {} resource metric value: {e}", source.name),
                    )),
                }
            }
            (
                "ContainerResource",
                MetricSpec {
                    container_resource: Some(source),
                    ..
                },
            ) => {
                let result = self
                    .resource_metric(m, &source.target, &source.name, &source.container)
                    .await;
                match result {
                    Ok((replicas, current, metric)) => Ok(Proposal {
                        replicas,
                        metric,
                        status: MetricStatus {
                            type_: "ContainerResource".into(),
                            container_resource: Some(ContainerResourceMetricStatus {
                                name: source.name.clone(),
                                container: source.container.clone(),
                                current,
                            }),
                            ..Default::default()
                        },
                    }),
                    Err(e) => Err((
                        self.unable(hpa, "FailedGetContainerResourceMetric", &e),
                        format!(
                            "failed to get {} container metric value: {e}",
                            source.container
                        ),
                    )),
                }
            }
            (
                "Pods",
                MetricSpec {
                    pods: Some(source), ..
                },
            ) => {
                let name = &source.metric.name;
                let wrap = |e: String| format!("failed to get pods metric value: {e}");
                let result = async {
                    let target = target_milli(source.target.average_value.as_ref()).unwrap_or(0);
                    let metric_selector = metrics::selector_string(source.metric.selector.as_ref());
                    let (samples, _) = self
                        .metrics
                        .pods_metric(name, m.namespace, m.selector, &metric_selector)
                        .await
                        .map_err(|e| format!("unable to get metric {name}: {e}"))?;
                    replicas::plain_replicas(&m.inputs, target, None, m.pods, samples)
                }
                .await;
                match result {
                    Ok((replicas, usage)) => Ok(Proposal {
                        replicas,
                        metric: format!("pods metric {name}"),
                        status: MetricStatus {
                            type_: "Pods".into(),
                            pods: Some(PodsMetricStatus {
                                metric: identifier(name, source.metric.selector.clone()),
                                current: MetricValueStatus {
                                    average_value: Some(milli_quantity(usage, Format::DecimalSI)),
                                    ..Default::default()
                                },
                            }),
                            ..Default::default()
                        },
                    }),
                    Err(e) => Err((self.unable(hpa, "FailedGetPodsMetric", &e), wrap(e))),
                }
            }
            (
                "Object",
                MetricSpec {
                    object: Some(source),
                    ..
                },
            ) => {
                let name = &source.metric.name;
                let object = &source.described_object;
                let wrap = |e: String| format!("failed to get object metric value: {e}");
                let value = target_milli(source.target.value.as_ref())
                    .filter(|_| source.target.type_ == "Value");
                let average = target_milli(source.target.average_value.as_ref())
                    .filter(|_| source.target.type_ == "AverageValue");
                if value.is_none() && average.is_none() {
                    let e = "invalid object metric source: neither a value target nor an average value target was set".to_string();
                    return Err((self.unable(hpa, "FailedGetObjectMetric", &e), wrap(e)));
                }
                let metric_selector = metrics::selector_string(source.metric.selector.as_ref());
                let fetched = async {
                    let resource = self.qualified_resource(object).await?;
                    self.metrics
                        .object_metric(
                            name,
                            m.namespace,
                            resource.as_deref(),
                            &object.name,
                            &metric_selector,
                        )
                        .await
                }
                .await
                .map_err(|e| {
                    format!(
                        "unable to get metric {name} on {} {}/{}: {e}",
                        object.kind, m.namespace, object.name
                    )
                });
                let mut status = ObjectMetricStatus {
                    described_object: object.clone(),
                    metric: identifier(name, source.metric.selector.clone()),
                    current: MetricValueStatus::default(),
                };
                let proposal = match (fetched, value, average) {
                    (Err(e), _, None) => Err(e),
                    (Err(e), _, Some(_)) => Err(format!("failed to get {name} object metric: {e}")),
                    (Ok((usage, _)), Some(target), _) => {
                        replicas::ratio_replicas(&m.inputs, usage as f64 / target as f64, m.pods)
                            .map(|r| {
                                status.current.value =
                                    Some(milli_quantity(usage, Format::DecimalSI));
                                (r, format!("{} metric {name}", object.kind))
                            })
                    }
                    (Ok((usage, _)), None, Some(target)) => {
                        let (r, average) = replicas::per_pod_replicas(
                            m.inputs.tolerances,
                            m.status_replicas,
                            usage,
                            target,
                        );
                        status.current.average_value =
                            Some(milli_quantity(average, Format::DecimalSI));
                        Ok((
                            r,
                            format!(
                                "external metric {name}({})",
                                metrics::selector_debug(source.metric.selector.as_ref())
                            ),
                        ))
                    }
                    (Ok(_), None, None) => unreachable!("checked above"),
                };
                match proposal {
                    Ok((replicas, metric)) => Ok(Proposal {
                        replicas,
                        metric,
                        status: MetricStatus {
                            type_: "Object".into(),
                            object: Some(status),
                            ..Default::default()
                        },
                    }),
                    Err(e) => Err((self.unable(hpa, "FailedGetObjectMetric", &e), wrap(e))),
                }
            }
            (
                "External",
                MetricSpec {
                    external: Some(source),
                    ..
                },
            ) => {
                let name = &source.metric.name;
                let selector = source.metric.selector.as_ref();
                let metric = format!(
                    "external metric {name}({})",
                    metrics::selector_debug(selector)
                );
                let fetched = self
                    .metrics
                    .external(name, m.namespace, &metrics::selector_string(selector))
                    .await
                    .map(|(values, _)| {
                        values
                            .iter()
                            .fold(0i64, |total, v| total.saturating_add(*v))
                    })
                    .map_err(|e| {
                        format!(
                            "unable to get external metric {}/{name}/{}: {e}",
                            m.namespace,
                            metrics::selector_debug(selector)
                        )
                    });
                let mut status = ExternalMetricStatus {
                    metric: identifier(name, source.metric.selector.clone()),
                    current: MetricValueStatus::default(),
                };
                let proposal = if let Some(target) =
                    target_milli(source.target.average_value.as_ref())
                {
                    fetched
                        .map(|usage| {
                            let (r, average) = replicas::per_pod_replicas(
                                m.inputs.tolerances,
                                m.status_replicas,
                                usage,
                                target,
                            );
                            status.current.average_value =
                                Some(milli_quantity(average, Format::DecimalSI));
                            r
                        })
                        .map_err(|e| format!("failed to get {name} external metric: {e}"))
                } else if let Some(target) = target_milli(source.target.value.as_ref()) {
                    let spec_inputs = Inputs {
                        current_replicas: m.spec_replicas,
                        ..m.inputs
                    };
                    fetched
                        .and_then(|usage| {
                            status.current.value = Some(milli_quantity(usage, Format::DecimalSI));
                            replicas::ratio_replicas(
                                &spec_inputs,
                                usage as f64 / target as f64,
                                m.pods,
                            )
                        })
                        .map_err(|e| format!("failed to get external metric {name}: {e}"))
                } else {
                    Err("invalid external metric source: neither a value target nor an average value target was set".into())
                };
                match proposal {
                    Ok(replicas) => Ok(Proposal {
                        replicas,
                        metric,
                        status: MetricStatus {
                            type_: "External".into(),
                            external: Some(status),
                            ..Default::default()
                        },
                    }),
                    Err(e) => Err((
                        self.unable(hpa, "FailedGetExternalMetric", &e),
                        format!("failed to get {name} external metric value: {e}"),
                    )),
                }
            }
            (other, _) => {
                let e = format!("unknown metric source type {other:?}");
                Err((self.unable(hpa, "InvalidMetricSourceType", &e), e))
            }
        }
    }

    /// Every metric's proposal, the largest winning (upstream `computeReplicasForMetrics`).
    /// Err carries the statuses computed and the error; Ok a partial error too when some metrics
    /// failed but the valid ones ask for no fewer replicas than now.
    async fn metrics_replicas(
        &self,
        hpa: &mut HorizontalPodAutoscaler,
        scale: &Scale,
        inputs: Inputs,
    ) -> Result<(i32, String, Vec<MetricStatus>, Option<String>), (Vec<MetricStatus>, String)> {
        let selector_text = scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let (_, pods) = self
            .selector(hpa, &selector_text)
            .map_err(|e| (Vec::new(), e))?;
        let specs = hpa.spec.metrics.clone().unwrap_or_default();
        let m = MetricInputs {
            namespace: &hpa.namespace().unwrap_or_default(),
            selector: &selector_text,
            pods: &pods,
            inputs,
            spec_replicas: scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
            status_replicas: scale.status.as_ref().map(|s| s.replicas).unwrap_or(0),
        };
        let mut statuses = vec![MetricStatus::default(); specs.len()];
        let (mut replicas, mut metric) = (0, String::new());
        let mut first_failure: Option<(MetricFailure, String)> = None;
        let mut invalid = 0;
        for (i, spec) in specs.iter().enumerate() {
            match self.metric(hpa, spec, &m).await {
                Ok(p) => {
                    if replicas == 0 || p.replicas > replicas {
                        replicas = p.replicas;
                        metric = p.metric;
                    }
                    statuses[i] = p.status;
                }
                Err(failure) => {
                    invalid += 1;
                    first_failure.get_or_insert(failure);
                }
            }
        }
        let error = first_failure.map(|(condition, e)| {
            let text = format!(
                "invalid metrics ({invalid} invalid out of {}), first error is: {e}",
                specs.len()
            );
            (condition, text)
        });
        if let Some((condition, text)) = &error {
            if invalid >= specs.len() || replicas < m.spec_replicas {
                set_condition(
                    hpa,
                    "ScalingActive",
                    "False",
                    condition.reason,
                    condition.message.clone(),
                );
                return Err((statuses, text.clone()));
            }
        }
        set_condition(
            hpa,
            "ScalingActive",
            "True",
            "ValidMetricFound",
            format!("the HPA was able to successfully calculate a replica count from {metric}"),
        );
        Ok((replicas, metric, statuses, error.map(|(_, text)| text)))
    }

    /// Writes the status when it changed (upstream `updateStatusIfNeeded`).
    async fn update_status(
        &self,
        original: &Option<HorizontalPodAutoscalerStatus>,
        hpa: &HorizontalPodAutoscaler,
    ) -> Result<(), Error> {
        if *original == hpa.status {
            return Ok(());
        }
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(self.client.clone(), &hpa.namespace().unwrap_or_default());
        match api
            .replace_status(&hpa.name_any(), &PostParams::default(), hpa)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let message = match e {
                    kube::Error::Api(status) => status.message.clone(),
                    other => other.to_string(),
                };
                self.recorder
                    .publish(hpa, WARNING, "FailedUpdateStatus", message.clone());
                Err(Error(format!(
                    "failed to update status for {}: {message}",
                    hpa.name_any()
                )))
            }
        }
    }

    /// Upstream `reconcileAutoscaler`.
    async fn reconcile(&self, shared: &HorizontalPodAutoscaler) -> Result<(), Error> {
        let mut hpa = shared.clone();
        let original = hpa.status.clone();
        let key = key_of(&hpa);
        let namespace = hpa.namespace().unwrap_or_default();
        let spec = hpa.spec.clone();
        let target = &spec.scale_target_ref;
        let reference = format!("{}/{namespace}/{}", target.kind, target.name);
        let unable_to_get_scale = |hpa: &mut HorizontalPodAutoscaler, e: &str| {
            self.recorder
                .publish(hpa, WARNING, "FailedGetScale", e.to_string());
            set_condition(
                hpa,
                "AbleToScale",
                "False",
                "FailedGetScale",
                format!("the HPA controller was unable to get the target's current scale: {e}"),
            );
        };
        let resource = match self.mapper.resource(&self.client, target).await {
            Ok(r) => r,
            Err(e) => {
                unable_to_get_scale(&mut hpa, &e.message);
                let _ = self.update_status(&original, &hpa).await;
                return Err(Error(format!(
                    "unable to determine resource for scale target reference: {e}"
                )));
            }
        };
        let scale = match scale::get(&self.client, &resource, &namespace, &target.name).await {
            Ok(s) => s,
            Err(e) => {
                self.mapper.forget(target);
                unable_to_get_scale(&mut hpa, &e);
                let _ = self.update_status(&original, &hpa).await;
                return Err(Error(format!(
                    "failed to query scale subresource for {reference}: {e}"
                )));
            }
        };
        set_condition(
            &mut hpa,
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale".into(),
        );
        let now = Instant::now();
        let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        self.histories
            .lock()
            .entry(key.clone())
            .or_default()
            .record_initial(current, now);

        let min = spec.min_replicas.unwrap_or(1);
        let max = spec.max_replicas;
        let metrics = spec.metrics.as_deref().unwrap_or_default();
        let object_or_external = metrics
            .iter()
            .any(|m| m.type_ == "Object" || m.type_ == "External");
        let scaled_to_zero = condition_is_true(&hpa, "ScaledToZero");
        let mut desired = 0;
        let mut reason = String::new();
        let mut rescale = true;
        let mut compute = true;
        if current == 0 {
            // Upstream's `shouldComputeMetricsForZeroReplicas`: only a target this controller
            // scaled to zero is brought back (to minReplicas, or by Object/External metrics).
            let from_zero = scaled_to_zero && (min != 0 || object_or_external);
            if !from_zero {
                compute = false;
                rescale = false;
                set_condition(
                    &mut hpa,
                    "ScalingActive",
                    "False",
                    "ScalingDisabled",
                    "scaling is disabled since the replica count of the target is zero".into(),
                );
            }
        } else if current > max {
            reason = "Current number of replicas above Spec.MaxReplicas".into();
            desired = max;
            compute = false;
        } else if current < min {
            reason = "Current number of replicas below Spec.MinReplicas".into();
            desired = min;
            compute = false;
        }

        let mut statuses: Option<Vec<MetricStatus>> = None;
        let mut partial_error = None;
        if compute {
            let inputs = Inputs {
                current_replicas: current,
                tolerances: self.tolerances(&hpa),
                readiness: Readiness {
                    cpu_initialization_period: self.config.cpu_initialization_period,
                    initial_readiness_delay: self.config.initial_readiness_delay,
                },
                now: jiff::Timestamp::now(),
            };
            match self.metrics_replicas(&mut hpa, &scale, inputs).await {
                Err((computed, e)) => {
                    // A sync that failed before any metric leaves currentMetrics unset.
                    let computed = Some(computed).filter(|c| !c.is_empty());
                    set_status(&mut hpa, current, None, computed, false);
                    let _ = self.update_status(&original, &hpa).await;
                    self.recorder
                        .publish(&hpa, WARNING, "FailedComputeMetricsReplicas", e.clone());
                    return Err(Error(format!(
                        "failed to compute desired number of replicas based on listed metrics for {reference}: {e}"
                    )));
                }
                Ok((proposed, metric, computed, partial)) => {
                    statuses = Some(computed);
                    partial_error = partial;
                    let mut rescale_metric = String::new();
                    if proposed > desired {
                        desired = proposed;
                        rescale_metric = metric;
                    }
                    if desired > current {
                        reason = format!("{rescale_metric} above target");
                    }
                    if desired < current {
                        reason = "All metrics below target".into();
                    }
                    desired = self.normalize(&mut hpa, &key, current, desired, min, now);
                    if current == 0 && min != 0 && scaled_to_zero && desired < min {
                        desired = min;
                        if reason.is_empty() {
                            reason = "Current number of replicas below Spec.MinReplicas".into();
                        }
                    }
                    rescale = desired != current;
                }
            }
        }

        if rescale {
            if let Err(e) = scale::update(&self.client, &resource, &namespace, scale, desired).await
            {
                self.recorder.publish(
                    &hpa,
                    WARNING,
                    "FailedRescale",
                    format!("New size: {desired}; reason: {reason}; error: {e}"),
                );
                set_condition(
                    &mut hpa,
                    "AbleToScale",
                    "False",
                    "FailedUpdateScale",
                    format!("the HPA controller was unable to update the target scale: {e}"),
                );
                set_status(&mut hpa, current, None, statuses, false);
                let _ = self.update_status(&original, &hpa).await;
                return Err(Error(format!("failed to rescale {reference}: {e}")));
            }
            set_condition(
                &mut hpa,
                "AbleToScale",
                "True",
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {desired}"),
            );
            self.recorder.publish(
                &hpa,
                NORMAL,
                "SuccessfulRescale",
                format!("New size: {desired}; reason: {reason}"),
            );
            if let Some(behavior) = &spec.behavior {
                let behavior = Behavior::from_spec(behavior, self.config.downscale_stabilization);
                if let Some(history) = self.histories.lock().get_mut(&key) {
                    history.record_scale(&behavior, current, desired, now);
                }
            }
            if current > 0 && desired == 0 && min == 0 && object_or_external {
                set_condition(
                    &mut hpa,
                    "ScaledToZero",
                    "True",
                    "ScaledToZero",
                    "the HPA controller scaled the workload to zero".into(),
                );
            } else {
                set_condition(
                    &mut hpa,
                    "ScaledToZero",
                    "False",
                    "NotScaledToZero",
                    "the HPA controller did not scale the workload to zero".into(),
                );
            }
            tracing::info!(hpa = %key, current, desired, reason, "successfully rescaled");
        } else {
            desired = current;
        }
        set_status(&mut hpa, current, Some(desired), statuses, rescale);
        self.update_status(&original, &hpa).await?;
        match partial_error {
            Some(e) => Err(Error(e)),
            None => Ok(()),
        }
    }

    /// Stabilization and limits, with or without `spec.behavior`, and the `AbleToScale` and
    /// `ScalingLimited` conditions that explain them.
    fn normalize(
        &self,
        hpa: &mut HorizontalPodAutoscaler,
        key: &str,
        current: i32,
        desired: i32,
        min: i32,
        now: Instant,
    ) -> i32 {
        let spec = hpa.spec.clone();
        let max = spec.max_replicas;
        let (stabilized, limited) = {
            let mut histories = self.histories.lock();
            let history = histories.entry(key.to_string()).or_default();
            match &spec.behavior {
                None => {
                    let s = history.stabilize(desired, self.config.downscale_stabilization, now);
                    let limited = normalize::limit_with_rules(current, s.replicas, min, max);
                    (s, limited)
                }
                Some(behavior) => {
                    let behavior =
                        Behavior::from_spec(behavior, self.config.downscale_stabilization);
                    let s = history.stabilize_with_behavior(&behavior, current, desired, now);
                    let limited =
                        history.limit_with_behavior(&behavior, current, s.replicas, min, max, now);
                    (s, limited)
                }
            }
        };
        set_condition(
            hpa,
            "AbleToScale",
            "True",
            stabilized.reason,
            stabilized.message.into(),
        );
        let (replicas, reason, message) = limited;
        let status = if replicas == stabilized.replicas {
            "False"
        } else {
            "True"
        };
        set_condition(hpa, "ScalingLimited", status, reason, message.into());
        replicas
    }
}

/// Upstream `setStatus`: `desired` None keeps the last desired count (a failed sync).
fn set_status(
    hpa: &mut HorizontalPodAutoscaler,
    current: i32,
    desired: Option<i32>,
    metrics: Option<Vec<MetricStatus>>,
    rescale: bool,
) {
    let generation = hpa.metadata.generation;
    let status = hpa.status.get_or_insert_with(Default::default);
    status.current_replicas = Some(current);
    if let Some(desired) = desired {
        status.desired_replicas = desired;
    }
    status.current_metrics = metrics;
    status.observed_generation = generation;
    if rescale {
        status.last_scale_time = Some(Time(jiff::Timestamp::now()));
    }
}
