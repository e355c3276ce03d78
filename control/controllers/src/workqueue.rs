//! Upstream's work queue metrics (client-go's `workqueue` package, exported by
//! component-base as `workqueue_*{name="<queue>"}`) for skiff's controllers, and the
//! kube-runtime wiring every controller shares ([`run`]).
//!
//! A kube-runtime `Controller` keeps its queue to itself (the applier's scheduler), so the
//! metrics are taken around the reconciler instead:
//! - `workqueue_adds_total`: a reconcile starts. client-go counts an add when a key becomes
//!   dirty, and every dirty key is processed exactly once, so the two counts differ only by the
//!   keys still waiting;
//! - `workqueue_work_duration_seconds`: how long the reconcile took;
//! - `workqueue_retries_total`: a reconcile failed and the error policy requeued it
//!   (client-go's `AddRateLimited`).
//!
//! `workqueue_depth` (and the queue-time, unfinished-work and longest-running gauges) would
//! need the applier's pending set, which kube-runtime does not expose: not exported.
//!
//! Queue names are upstream's (`Name:` of each controller's queue in pkg/controller), so
//! dashboards written for kube-controller-manager read skiff's.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use futures::{Stream, StreamExt};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Upstream's queue names (the `name` label).
pub mod names {
    pub const DEPLOYMENT: &str = "deployment";
    pub const REPLICASET: &str = "replicaset";
    pub const REPLICATION: &str = "replicationmanager";
    pub const DAEMONSET: &str = "daemonset";
    pub const STATEFULSET: &str = "statefulset";
    pub const JOB: &str = "job";
    pub const CRONJOB: &str = "cronjob";
    pub const DISRUPTION: &str = "disruption";
    pub const ENDPOINT: &str = "endpoint";
    pub const ENDPOINTSLICE: &str = "endpoint_slice";
    pub const NAMESPACE: &str = "namespace";
    pub const SERVICEACCOUNT: &str = "serviceaccount";
    /// Upstream names both of its token queues so.
    pub const SERVICEACCOUNT_TOKENS: &str = "serviceaccount_tokens_service";
    pub const ROOT_CA_CERT_PUBLISHER: &str = "root_ca_cert_publisher";
    /// The CSR approver's and the signer's (upstream's share it too).
    pub const CERTIFICATE: &str = "certificate";
    pub const TTL_AFTER_FINISHED: &str = "ttl_jobs_to_delete";
    pub const RESOURCEQUOTA: &str = "resourcequota_primary";
    pub const HORIZONTAL_POD_AUTOSCALER: &str = "horizontalpodautoscaler";
    pub const GARBAGE_COLLECTOR_ATTEMPT_TO_DELETE: &str = "garbage_collector_attempt_to_delete";
    pub const GARBAGE_COLLECTOR_GRAPH_CHANGES: &str = "garbage_collector_graph_changes";
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    name: &'static str,
}

/// The `workqueue_*` families of every queue.
pub struct Workqueues {
    adds: Family<QueueLabels, Counter>,
    retries: Family<QueueLabels, Counter>,
    work_duration: Family<QueueLabels, Histogram>,
}

/// client-go's buckets: 10 ns to 10 s, ×10.
fn work_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-8, 10.0, 10))
}

impl Default for Workqueues {
    fn default() -> Workqueues {
        Workqueues {
            adds: Family::default(),
            retries: Family::default(),
            work_duration: Family::new_with_constructor(
                work_duration_histogram as fn() -> Histogram,
            ),
        }
    }
}

static GLOBAL: LazyLock<Workqueues> = LazyLock::new(Workqueues::default);

impl Workqueues {
    /// The process's queues (upstream's global metrics provider: one controller manager per
    /// process).
    pub fn global() -> &'static Workqueues {
        &GLOBAL
    }

    /// Adds the families to `registry` (they stay shared with `self`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "workqueue_adds",
            "[BETA] Total number of adds handled by workqueue",
            self.adds.clone(),
        );
        registry.register(
            "workqueue_retries",
            "[BETA] Total number of retries handled by workqueue",
            self.retries.clone(),
        );
        registry.register(
            "workqueue_work_duration_seconds",
            "[BETA] How long in seconds processing an item from workqueue takes",
            self.work_duration.clone(),
        );
    }

    /// The queue `name`; its series exist (at 0) from now on, as upstream's from the queue's
    /// creation.
    pub fn queue(&self, name: &'static str) -> Queue {
        let labels = QueueLabels { name };
        Queue {
            adds: self.adds.get_or_create(&labels).clone(),
            retries: self.retries.get_or_create(&labels).clone(),
            work_duration: self.work_duration.get_or_create(&labels).clone(),
        }
    }
}

/// One queue's metrics.
#[derive(Clone, Debug)]
pub struct Queue {
    adds: Counter,
    retries: Counter,
    work_duration: Histogram,
}

impl Queue {
    /// An item is being processed; pass the result to [`done`](Self::done).
    pub fn started(&self) -> Instant {
        self.adds.inc();
        Instant::now()
    }

    pub fn done(&self, started: Instant) {
        self.work_duration.observe(started.elapsed().as_secs_f64());
    }

    /// A failed item goes back with a delay.
    pub fn retried(&self) {
        self.retries.inc();
    }
}

/// `controller.run(reconcile, error_policy, ctx)` with the metrics of the queue `name`: each
/// result is left to the caller.
pub fn instrumented<K, Ctx, Fut, E>(
    name: &'static str,
    controller: Controller<K>,
    mut reconcile: impl FnMut(Arc<K>, Arc<Ctx>) -> Fut,
    error_policy: impl Fn(Arc<K>, &E, Arc<Ctx>) -> Action,
    ctx: Arc<Ctx>,
) -> impl Stream<Item = Result<(ObjectRef<K>, Action), controller::Error<E, watcher::Error>>>
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + std::fmt::Debug + Unpin,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: std::error::Error + Send + 'static,
{
    let queue = Workqueues::global().queue(name);
    let retries = queue.clone();
    controller.run(
        move |object, ctx| {
            let started = queue.started();
            let work = reconcile(object, ctx);
            let queue = queue.clone();
            async move {
                let result = work.await;
                queue.done(started);
                result
            }
        },
        move |object, error, ctx| {
            retries.retried();
            error_policy(object, error, ctx)
        },
        ctx,
    )
}

/// What every controller does with kube-runtime's `Controller`: runs it with the metrics of
/// the queue `name` ([`instrumented`]) and logs each failed reconcile (at debug: the error
/// policy already logged it and requeued).
pub async fn run<K, Ctx, Fut, E>(
    name: &'static str,
    controller: Controller<K>,
    reconcile: impl FnMut(Arc<K>, Arc<Ctx>) -> Fut,
    error_policy: impl Fn(Arc<K>, &E, Arc<Ctx>) -> Action,
    ctx: Arc<Ctx>,
) where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + std::fmt::Debug + Unpin,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: std::error::Error + Send + 'static,
{
    instrumented(name, controller, reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(queue = name, "sync: {e}");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_upstreams_names() {
        let queues = Workqueues::default();
        let mut registry = Registry::default();
        queues.register(&mut registry);
        let idle = queues.queue(names::NAMESPACE);
        let deployment = queues.queue(names::DEPLOYMENT);
        let started = deployment.started();
        deployment.done(started);
        deployment.started();
        deployment.retried();
        let _ = idle;
        let text = skiff_serving::metrics::render(&registry);
        for line in [
            "# TYPE workqueue_adds_total counter",
            r#"workqueue_adds_total{name="deployment"} 2"#,
            r#"workqueue_adds_total{name="namespace"} 0"#,
            r#"workqueue_retries_total{name="deployment"} 1"#,
            "# TYPE workqueue_work_duration_seconds histogram",
            r#"workqueue_work_duration_seconds_bucket{name="deployment",le="10"} 1"#,
            r#"workqueue_work_duration_seconds_bucket{name="deployment",le="+Inf"} 1"#,
            r#"workqueue_work_duration_seconds_count{name="deployment"} 1"#,
            r#"workqueue_work_duration_seconds_count{name="namespace"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        let buckets = text
            .lines()
            .filter(|l| l.starts_with(r#"workqueue_work_duration_seconds_bucket{name="namespace""#))
            .count();
        assert_eq!(buckets, 11, "10 buckets and +Inf, as client-go's");
    }
}
