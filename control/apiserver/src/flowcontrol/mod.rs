//! API Priority and Fairness (`k8s.io/apiserver/pkg/util/flowcontrol` and the filter
//! `pkg/server/filters/priority-and-fairness.go`): every authenticated request is classified by
//! the FlowSchemas into a priority level and a flow, and waits for a seat of that level, fairly
//! among flows, so one client's flood cannot starve the others.
//!
//! The pieces, one per file: `request_info` (upstream's RequestInfo: what a request is before
//! routing), `matching` (does a schema match), `config` (the objects compiled into matching
//! order and seat limits), `shuffle_sharding` (a flow's queues), `queueset` (fair queuing in
//! virtual time), `width` (how many seats a request takes), `retry_after` (the 429's `Retry-After`), `filter` (the HTTP side: long-running
//! requests, the wait limit, the headers and the 429), `max_in_flight` (the older limits used
//! with `--enable-priority-and-fairness=false`), `status` (the configuration controller's
//! `Dangling` conditions), `metrics` and `debug` (`/debug/api_priority_and_fairness/*`).
//!
//! The configuration is read from the watch cache: the compiled snapshot is rebuilt when either
//! resource's cache has changed since it was built (a counter compare per request). Priority
//! levels keep their queues across rebuilds; a level that goes away keeps serving what it
//! already accepted (upstream's quiescing) through the requests that hold it.

pub mod config;
pub mod debug;
pub mod filter;
pub mod matching;
pub mod max_in_flight;
pub mod metrics;
pub mod queueset;
pub mod request_info;
pub mod retry_after;
pub mod shuffle_sharding;
pub mod status;
pub mod width;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use self::config::{Compiled, Distinguisher, LevelSpec};
use self::queueset::{Dispatched, Execution, QueueSet, Reject, RequestMeta, Start};
use self::request_info::RequestInfo;
use crate::auth::UserInfo;
use crate::cache::Cacher;

/// The flags that size flow control (kube-apiserver's names and defaults).
#[derive(Debug, Clone)]
pub struct Options {
    pub enabled: bool,
    pub max_requests_inflight: usize,
    pub max_mutating_requests_inflight: usize,
    pub request_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            enabled: true,
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// A priority level as served: its queues (exempt levels have an unbounded set without queues,
/// which only counts).
pub struct Level {
    pub spec: Mutex<LevelSpec>,
    queues: Mutex<QueueSet>,
}

impl Level {
    fn new(spec: LevelSpec, metrics: Arc<metrics::Counters>) -> Level {
        let (queuing, limit) = shape(&spec);
        metrics.set_limits(&spec.name, spec.limits);
        Level {
            queues: Mutex::new(QueueSet::new(&spec.name, queuing, limit, metrics)),
            spec: Mutex::new(spec),
        }
    }

    fn update(&self, spec: LevelSpec, metrics: &metrics::Counters) {
        let (queuing, limit) = shape(&spec);
        metrics.set_limits(&spec.name, spec.limits);
        self.queues.lock().configure(queuing, limit, Instant::now());
        *self.spec.lock() = spec;
    }

    pub fn name(&self) -> String {
        self.spec.lock().name.clone()
    }
}

fn shape(spec: &LevelSpec) -> (queueset::QueuingConfig, usize) {
    if spec.exempt {
        (queueset::QueuingConfig::REJECT, usize::MAX / 2)
    } else {
        (spec.queuing, spec.limits.current)
    }
}

/// What the filter needs of a compiled configuration.
pub struct Config {
    pub compiled: Compiled,
    pub levels: HashMap<String, Arc<Level>>,
}

struct Snapshot {
    /// The caches' change counters the configuration was built from.
    changes: Option<(u64, u64)>,
    config: Arc<Config>,
}

/// Which schema and level a request fell into (the response headers carry the UIDs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Classification {
    pub flow_schema: String,
    pub flow_schema_uid: String,
    pub priority_level: String,
    pub priority_level_uid: String,
    pub distinguisher: String,
}

/// Seats held until dropped.
pub struct Seat {
    level: Arc<Level>,
    execution: Option<Execution>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(execution) = self.execution.take() {
            self.level.queues.lock().finish(Instant::now(), execution);
        }
    }
}

/// A request queued in a level; dropping it before it is dispatched (its client went away)
/// takes it out of its queue, or gives back the seat it was just dispatched to.
struct Waiting {
    level: Arc<Level>,
    id: u64,
    rx: tokio::sync::oneshot::Receiver<Dispatched>,
    settled: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut queues = self.level.queues.lock();
        if !queues.abandon(self.id, Reject::Cancelled) {
            if let Ok(Dispatched(execution)) = self.rx.try_recv() {
                queues.finish(Instant::now(), execution);
            }
        }
    }
}

pub enum Decision {
    Execute(Classification, Seat),
    Reject(Classification, Reject),
}

pub struct FlowControl {
    pub options: Options,
    snapshot: Mutex<Snapshot>,
    caches: OnceLock<(Arc<Cacher>, Arc<Cacher>)>,
    pub metrics: Arc<metrics::Counters>,
    pub dropped: retry_after::DroppedRequests,
    pub max_in_flight: max_in_flight::MaxInFlight,
}

impl FlowControl {
    pub fn new(options: Options, metrics: Arc<metrics::Counters>) -> FlowControl {
        let max_in_flight = max_in_flight::MaxInFlight::new(
            options.max_requests_inflight,
            options.max_mutating_requests_inflight,
        );
        let flow_control = FlowControl {
            options,
            snapshot: Mutex::new(Snapshot {
                changes: None,
                config: Arc::new(Config {
                    compiled: Compiled::default(),
                    levels: HashMap::new(),
                }),
            }),
            caches: OnceLock::new(),
            metrics,
            dropped: Default::default(),
            max_in_flight,
        };
        // Until the caches answer: the mandatory objects alone.
        if flow_control.options.enabled {
            flow_control.install(config::compile(&[], &[], flow_control.server_limit()), None);
        }
        flow_control
    }

    /// The seats all levels share.
    pub fn server_limit(&self) -> usize {
        self.options.max_requests_inflight + self.options.max_mutating_requests_inflight
    }

    /// The configuration now, rebuilt first when the stored objects changed.
    pub async fn config(&self, caches: &crate::cache::Caches) -> Arc<Config> {
        let cachers = match self.caches.get() {
            Some(c) => Some(c.clone()),
            None => {
                let group = "flowcontrol.apiserver.k8s.io";
                let fs = crate::resources::find(group, "v1", "flowschemas");
                let pl = crate::resources::find(group, "v1", "prioritylevelconfigurations");
                match (fs, pl) {
                    (Some(fs), Some(pl)) => match (caches.get(fs).await, caches.get(pl).await) {
                        (Ok(fs), Ok(pl)) => Some(self.caches.get_or_init(|| (fs, pl)).clone()),
                        _ => None,
                    },
                    _ => None,
                }
            }
        };
        let Some((fs, pl)) = cachers else {
            return self.snapshot.lock().config.clone();
        };
        let changes = (fs.changes(), pl.changes());
        if self.snapshot.lock().changes == Some(changes) {
            return self.snapshot.lock().config.clone();
        }
        let (schemas, _) = fs.snapshot("");
        let (levels, _) = pl.snapshot("");
        let compiled = config::compile(&schemas, &levels, self.server_limit());
        self.install(compiled, Some(changes))
    }

    fn install(&self, compiled: Compiled, changes: Option<(u64, u64)>) -> Arc<Config> {
        let mut snapshot = self.snapshot.lock();
        let mut levels = HashMap::new();
        for spec in &compiled.levels {
            let level = match snapshot.config.levels.get(&spec.name) {
                Some(level) => {
                    if *level.spec.lock() != *spec {
                        level.update(spec.clone(), &self.metrics);
                    }
                    level.clone()
                }
                None => Arc::new(Level::new(spec.clone(), self.metrics.clone())),
            };
            levels.insert(spec.name.clone(), level);
        }
        let config = Arc::new(Config { compiled, levels });
        snapshot.config = config.clone();
        snapshot.changes = changes;
        config
    }

    /// Classifies the request (upstream's `startRequest`): the first schema that matches, else
    /// `catch-all`.
    pub fn classify(
        config: &Config,
        info: &RequestInfo,
        user: &UserInfo,
    ) -> Option<(Classification, Arc<Level>, u64)> {
        let schemas = &config.compiled.schemas;
        let schema = schemas
            .iter()
            .find(|s| matching::matches_flow_schema(&s.object, info, user))
            .or_else(|| schemas.iter().find(|s| s.name == "catch-all"))?;
        let level = config.levels.get(&schema.level)?.clone();
        let spec = level.spec.lock().clone();
        let mut distinguisher = String::new();
        let mut hash = 0;
        if !spec.exempt && spec.queuing.queues > 1 {
            distinguisher = match schema.distinguisher {
                Distinguisher::ByUser => user.name.clone(),
                Distinguisher::ByNamespace => info.namespace.clone(),
                Distinguisher::None => String::new(),
            };
            hash = shuffle_sharding::hash_flow_id(&schema.name, &distinguisher);
        }
        let classification = Classification {
            flow_schema: schema.name.clone(),
            flow_schema_uid: schema.uid.clone(),
            priority_level: spec.name.clone(),
            priority_level_uid: spec.uid.clone(),
            distinguisher,
        };
        Some((classification, level, hash))
    }

    /// Waits (at most `wait_limit`) for the seats of the request's level it needs: one, or for
    /// a list one per hundred of the `stored` objects (`width`).
    pub async fn admit(
        &self,
        config: &Config,
        info: &RequestInfo,
        user: &UserInfo,
        stored: Option<usize>,
        wait_limit: Duration,
    ) -> Option<Decision> {
        let (classification, level, hash) = FlowControl::classify(config, info, user)?;
        let seats = width::seats(stored, width::max_seats(&level.spec.lock()));
        let meta = RequestMeta {
            flow_schema: classification.flow_schema.clone(),
            distinguisher: classification.distinguisher.clone(),
            details: vec![
                user.name.clone(),
                info.verb.clone(),
                info.path.clone(),
                info.namespace.clone(),
                info.name.clone(),
                if info.api_group.is_empty() {
                    info.api_version.clone()
                } else {
                    format!("{}/{}", info.api_group, info.api_version)
                },
                info.resource.clone(),
                info.subresource.clone(),
            ],
        };
        let start = level.queues.lock().start(Instant::now(), hash, seats, meta);
        let (id, rx) = match start {
            Start::Execute(execution) => {
                let seat = Seat {
                    level,
                    execution: Some(execution),
                };
                return Some(Decision::Execute(classification, seat));
            }
            Start::Reject(why) => return Some(Decision::Reject(classification, why)),
            Start::Wait { id, rx } => (id, rx),
        };
        let mut waiting = Waiting {
            level: level.clone(),
            id,
            rx,
            settled: false,
        };
        let outcome = tokio::time::timeout(wait_limit, &mut waiting.rx).await;
        let execution = match outcome {
            Ok(Ok(Dispatched(execution))) => Some(execution),
            // The set is never dropped while requests wait in it; as a time-out if it were.
            Ok(Err(_)) => None,
            Err(_) => {
                let mut queues = level.queues.lock();
                if queues.abandon(id, Reject::TimeOut) {
                    None
                } else {
                    waiting.rx.try_recv().ok().map(|Dispatched(e)| e)
                }
            }
        };
        waiting.settled = true;
        Some(match execution {
            Some(execution) => Decision::Execute(
                classification,
                Seat {
                    level,
                    execution: Some(execution),
                },
            ),
            None => Decision::Reject(classification, Reject::TimeOut),
        })
    }

    /// The levels, by name (the debug dumps).
    pub fn levels(&self) -> Vec<Arc<Level>> {
        let config = self.snapshot.lock().config.clone();
        let mut levels: Vec<(String, Arc<Level>)> = config
            .levels
            .iter()
            .map(|(n, l)| (n.clone(), l.clone()))
            .collect();
        levels.sort_by(|a, b| a.0.cmp(&b.0));
        levels.into_iter().map(|(_, l)| l).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::flowcontrol as bootstrap;
    use axum::http::Method;
    use serde_json::{json, Value};

    fn objects(values: Vec<Value>) -> Vec<Arc<Value>> {
        values
            .into_iter()
            .map(|mut v| {
                let n = v["metadata"]["name"].as_str().unwrap().to_string();
                v["metadata"]["uid"] = json!(format!("uid-{n}"));
                Arc::new(v)
            })
            .collect()
    }

    fn flow_control(extra_levels: Vec<Value>, extra_schemas: Vec<Value>) -> FlowControl {
        let fc = FlowControl::new(Options::default(), Default::default());
        let levels = objects(
            bootstrap::mandatory_priority_levels()
                .into_iter()
                .chain(bootstrap::suggested_priority_levels())
                .chain(extra_levels)
                .collect(),
        );
        let schemas = objects(
            bootstrap::mandatory_flow_schemas()
                .into_iter()
                .chain(bootstrap::suggested_flow_schemas())
                .chain(extra_schemas)
                .collect(),
        );
        fc.install(config::compile(&schemas, &levels, fc.server_limit()), None);
        fc
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    fn classify(fc: &FlowControl, method: Method, path: &str, u: &UserInfo) -> (String, String) {
        let config = fc.snapshot.lock().config.clone();
        let info = RequestInfo::new(&method, path, &[]);
        let (c, _, _) = FlowControl::classify(&config, &info, u).unwrap();
        (c.flow_schema, c.priority_level)
    }

    /// The bootstrap configuration sorts requests as kube-apiserver's does.
    #[test]
    fn bootstrap_classification() {
        let fc = flow_control(vec![], vec![]);
        let admin = user("admin", &["system:masters", "system:authenticated"]);
        let alice = user("alice", &["system:authenticated"]);
        let anonymous = user("system:anonymous", &["system:unauthenticated"]);
        let nobody = user("nobody", &[]);
        let node = user("system:node:n1", &["system:nodes", "system:authenticated"]);
        let sa = user(
            "system:serviceaccount:team:builder",
            &["system:serviceaccounts", "system:authenticated"],
        );
        let cases = [
            (Method::GET, "/api/v1/pods", &admin, "exempt", "exempt"),
            (Method::GET, "/healthz", &anonymous, "probes", "exempt"),
            (
                Method::GET,
                "/api/v1/namespaces/a/pods",
                &alice,
                "global-default",
                "global-default",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/a/pods",
                &sa,
                "service-accounts",
                "workload-low",
            ),
            (
                Method::GET,
                "/api/v1/nodes/n1",
                &node,
                "system-node-high",
                "node-high",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/a/configmaps",
                &node,
                "system-nodes",
                "system",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/a/pods",
                &anonymous,
                "global-default",
                "global-default",
            ),
            // In neither system:authenticated nor system:unauthenticated: only catch-all.
            (
                Method::GET,
                "/api/v1/namespaces/a/pods",
                &nobody,
                "catch-all",
                "catch-all",
            ),
        ];
        for (method, path, u, schema, level) in cases {
            assert_eq!(
                classify(&fc, method, path, u),
                (schema.to_string(), level.to_string()),
                "{} {path}",
                u.name
            );
        }
    }

    fn tiny_level() -> (Value, Value) {
        (
            json!({"metadata": {"name": "tiny"}, "spec": {"type": "Limited", "limited": {
                "nominalConcurrencyShares": 1, "lendablePercent": 0, "borrowingLimitPercent": 0,
                "limitResponse": {"type": "Queue", "queuing": {"queues": 1, "handSize": 1, "queueLengthLimit": 1}}}}}),
            json!({"metadata": {"name": "tiny"}, "spec": {
                "priorityLevelConfiguration": {"name": "tiny"}, "matchingPrecedence": 100,
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [{"subjects": [{"kind": "User", "user": {"name": "flood"}}],
                           "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "namespaces": ["*"], "clusterScope": true}]}]}}),
        )
    }

    /// Installs the mandatory configuration and [`tiny_level`] with a server limit of one seat.
    fn install_tiny(fc: &FlowControl) -> Arc<Config> {
        let (pl, fs) = tiny_level();
        let levels = objects(
            bootstrap::mandatory_priority_levels()
                .into_iter()
                .chain([pl])
                .collect(),
        );
        let schemas = objects(
            bootstrap::mandatory_flow_schemas()
                .into_iter()
                .chain([fs])
                .collect(),
        );
        fc.install(config::compile(&schemas, &levels, 1), None)
    }

    /// One seat, one queue of one: the first request executes, the second waits, the third is
    /// refused; the waiter gets the seat when the first finishes, another level is untouched.
    #[tokio::test]
    async fn a_full_level_queues_then_rejects() {
        let options = Options {
            max_requests_inflight: 1,
            max_mutating_requests_inflight: 0,
            ..Options::default()
        };
        let fc = Arc::new(FlowControl::new(options, Default::default()));
        let config = install_tiny(&fc);
        let flood = user("flood", &["system:authenticated"]);
        let info = RequestInfo::new(&Method::GET, "/api/v1/namespaces/a/configmaps", &[]);
        let wait = Duration::from_secs(3600);
        let Some(Decision::Execute(c, first)) = fc.admit(&config, &info, &flood, None, wait).await
        else {
            panic!("first executes");
        };
        assert_eq!(
            (c.flow_schema.as_str(), c.priority_level_uid.as_str()),
            ("tiny", "uid-tiny")
        );
        let waiter = tokio::spawn({
            let (fc, config, info, flood) =
                (fc.clone(), config.clone(), info.clone(), flood.clone());
            async move {
                matches!(
                    fc.admit(&config, &info, &flood, None, wait).await,
                    Some(Decision::Execute(..))
                )
            }
        });
        // Wait (without a time bound on the outcome) until the second request is queued.
        while fc.metrics.series("tiny", "tiny").inqueue == 0 {
            tokio::task::yield_now().await;
        }
        let third = fc.admit(&config, &info, &flood, None, wait).await;
        assert!(matches!(
            third,
            Some(Decision::Reject(_, Reject::QueueFull))
        ));
        // Another user falls in catch-all and is served meanwhile.
        let other = user("other", &["system:authenticated"]);
        assert!(matches!(
            fc.admit(&config, &info, &other, None, wait).await,
            Some(Decision::Execute(..))
        ));
        drop(first);
        assert!(waiter.await.unwrap(), "the queued request got the seat");
        let series = fc.metrics.series("tiny", "tiny");
        assert_eq!(series.dispatched, 2);
        assert_eq!(series.rejected.get("queue-full"), Some(&1));
        assert_eq!((series.inqueue, series.executing), (0, 0));
    }

    /// A request whose wait limit passes leaves its queue with `time-out`.
    #[tokio::test]
    async fn waiting_too_long_is_a_time_out() {
        let fc = FlowControl::new(Options::default(), Default::default());
        let config = install_tiny(&fc);
        let flood = user("flood", &[]);
        let info = RequestInfo::new(&Method::GET, "/api/v1/configmaps", &[]);
        let Some(Decision::Execute(_, _seat)) = fc
            .admit(&config, &info, &flood, None, Duration::from_millis(50))
            .await
        else {
            panic!("first executes");
        };
        let second = fc
            .admit(&config, &info, &flood, None, Duration::from_millis(50))
            .await;
        assert!(matches!(second, Some(Decision::Reject(_, Reject::TimeOut))));
        let series = fc.metrics.series("tiny", "tiny");
        assert_eq!(series.rejected.get("time-out"), Some(&1));
        assert_eq!(series.inqueue, 0);
    }
}
