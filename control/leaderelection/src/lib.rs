//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection`
//! package with its `LeaseLock` does it for kube-scheduler and kube-controller-manager.
//!
//! Every candidate runs [`LeaderElector::run`] (or [`run_leader_elected`]) on the same Lease
//! with its own identity ([`default_identity`]: `<hostname>_<uuid>`):
//!
//! - it waits until it holds the Lease: it creates the Lease when there is none, and takes it
//!   when the holder is empty (released) or the record has not changed for
//!   `leaseDurationSeconds` *as measured by the candidate's own clock* since it last saw it
//!   change (client-go's observed time, so clock skew between candidates does not matter);
//!   taking it from another holder counts one more `leaseTransitions`;
//! - then it runs the work and renews the Lease (a new `renewTime`) every retry period;
//! - if it cannot renew within the renew deadline it stops the work (the work's future is
//!   dropped) and returns [`LeaderElectionError::LeaseLost`]. Upstream's components exit when
//!   that happens (`klog.Fatal("leaderelection lost")`); callers should likewise stop
//!   everything the work started — the simplest way is to exit the process;
//! - when the work returns, or the shutdown future given to [`LeaderElector::run_until`]
//!   completes, it releases the Lease (empty `holderIdentity`, client-go's `ReleaseOnCancel`)
//!   so a standby takes over at once instead of after a lease duration. Dropping the returned
//!   future does not release (there is no one left to write): the standby then waits out the
//!   lease, as after a crash.
//!
//! Every write is an update conditional on the resourceVersion read (or a create, which fails
//! when the Lease exists), so two candidates can never both win.

mod record;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;
use tokio::sync::watch;
use tokio::time::Instant;

use record::{Decision, Observed};

/// client-go's jitter on the acquire loop's retry period (`wait.JitterUntil(…, 1.2, …)`).
const JITTER_FACTOR: f64 = 1.2;

/// Which Lease, who we are, and the timings (client-go's `LeaderElectionConfig`).
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This candidate's identity, unique among the candidates (see [`default_identity`]).
    pub identity: String,
    /// How long a lease lasts without renewal before another candidate may take it.
    pub lease_duration: Duration,
    /// How long the leader keeps retrying a renewal before it gives up leadership.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire, and the leader to renew.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Upstream's defaults (kube-scheduler, kube-controller-manager): a 15 s lease, a 10 s
    /// renew deadline, a 2 s retry period.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> LeaseConfig {
        LeaseConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// client-go's checks in `NewLeaderElector`.
    pub fn validate(&self) -> Result<(), LeaderElectionError> {
        let invalid = |why: &str| Err(LeaderElectionError::InvalidConfig(why.to_string()));
        if self.name.is_empty() || self.namespace.is_empty() {
            return invalid("the lease needs a namespace and a name");
        }
        if self.identity.is_empty() {
            return invalid("the identity must not be empty");
        }
        if self.retry_period.is_zero() {
            return invalid("the retry period must be greater than zero");
        }
        if self.lease_duration <= self.renew_deadline {
            return invalid("the lease duration must be greater than the renew deadline");
        }
        if self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64() {
            return invalid("the renew deadline must be greater than 1.2 × the retry period");
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderElectionError {
    #[error("invalid leader election config: {0}")]
    InvalidConfig(String),
    #[error("lost lease {namespace}/{name} (identity {identity}): not renewed within the renew deadline")]
    LeaseLost {
        namespace: String,
        name: String,
        identity: String,
    },
}

/// Upstream's identity for a component: `<hostname>_<uuid>`, unique per process.
pub fn default_identity() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// Runs `work` only while holding the Lease of `config` (see the crate's documentation):
/// waits to acquire it, runs the work while renewing it, releases it when the work returns
/// (and returns the work's result), or stops the work and returns
/// [`LeaderElectionError::LeaseLost`] when a renewal misses the renew deadline.
pub async fn run_leader_elected<F, Fut>(
    client: kube::Client,
    config: LeaseConfig,
    work: F,
) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    LeaderElector::new(client, config).run(work).await
}

/// One candidate (client-go's `LeaderElector`).
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The last record read or written, and when we saw it change.
    observed: Option<Observed>,
    /// The Lease object behind `observed`: its resourceVersion guards the next update.
    lease: Option<Lease>,
    leader: watch::Sender<bool>,
    /// When the record last seen naming us was observed (None: the last record seen names
    /// someone else, or nobody), shared with [`LeaderHealth`].
    held: Arc<Mutex<Option<Instant>>>,
}

/// What a health check may ask about a candidate, also after [`LeaderElector::run_until`]
/// took the elector (client-go's `HealthzAdaptor` reads the same from its `LeaderElector`).
#[derive(Clone, Debug)]
pub struct LeaderHealth {
    name: String,
    lease_duration: Duration,
    leader: watch::Receiver<bool>,
    held: Arc<Mutex<Option<Instant>>>,
}

impl LeaderHealth {
    /// Whether the candidate leads (runs the work) now.
    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// The Lease's name (the `name` label of upstream's `leader_election_master_status`).
    pub fn lease_name(&self) -> &str {
        &self.name
    }

    /// client-go's `LeaderElector.Check`: fails when the last record seen names this candidate
    /// but was observed more than the lease duration plus `max_tolerable_expired` ago — it
    /// holds the Lease yet has not renewed it, and should have stopped (a stuck process). A
    /// standby is always healthy.
    pub fn check(&self, max_tolerable_expired: Duration) -> Result<(), String> {
        let held = *self.held.lock().unwrap_or_else(|e| e.into_inner());
        match held {
            Some(at) if at.elapsed() > self.lease_duration + max_tolerable_expired => Err(format!(
                "failed election to renew leadership on lease {}",
                self.name
            )),
            _ => Ok(()),
        }
    }
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> LeaderElector {
        LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            lease: None,
            leader: watch::Sender::new(false),
            held: Arc::default(),
        }
    }

    /// A handle for health checks and metrics (see [`LeaderHealth`]).
    pub fn health(&self) -> LeaderHealth {
        LeaderHealth {
            name: self.config.name.clone(),
            lease_duration: self.config.lease_duration,
            leader: self.leader.subscribe(),
            held: self.held.clone(),
        }
    }

    /// Whether this candidate currently leads (true from acquiring until it stops the work).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leader.subscribe()
    }

    pub fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// [`run_until`](Self::run_until) without a shutdown signal.
    pub async fn run<F, Fut>(self, work: F) -> anyhow::Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        self.run_until(work, std::future::pending()).await
    }

    /// Waits to acquire the Lease, then runs `work` while renewing it. Returns
    /// - `Ok(())` when `shutdown` completes (before or during the work), after releasing the
    ///   Lease if held;
    /// - the work's result when it returns, after releasing the Lease;
    /// - [`LeaderElectionError::LeaseLost`] when a renewal misses the renew deadline; the work
    ///   has been dropped.
    pub async fn run_until<F, Fut, S>(mut self, work: F, shutdown: S) -> anyhow::Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
        S: Future<Output = ()>,
    {
        self.config.validate()?;
        tokio::pin!(shutdown);
        tokio::select! {
            _ = self.acquire() => {}
            _ = &mut shutdown => return Ok(()),
        }
        self.leader.send_replace(true);
        tracing::info!(lease = %self.lease_name(), identity = %self.config.identity, "became leader");

        enum End {
            Work(anyhow::Result<()>),
            Shutdown,
            Lost,
        }
        let end = {
            let work = work();
            tokio::pin!(work);
            let renewing = self.keep_renewing();
            tokio::pin!(renewing);
            tokio::select! {
                r = &mut work => End::Work(r),
                _ = &mut shutdown => End::Shutdown,
                _ = &mut renewing => End::Lost,
            }
        };
        self.leader.send_replace(false);
        let result = match end {
            End::Lost => {
                tracing::error!(lease = %self.lease_name(), identity = %self.config.identity,
                    "lost lease: not renewed within the renew deadline, the work is stopped");
                return Err(LeaderElectionError::LeaseLost {
                    namespace: self.config.namespace.clone(),
                    name: self.config.name.clone(),
                    identity: self.config.identity.clone(),
                }
                .into());
            }
            End::Work(r) => r,
            End::Shutdown => Ok(()),
        };
        self.release().await;
        result
    }

    fn lease_name(&self) -> String {
        format!("{}/{}", self.config.namespace, self.config.name)
    }

    /// client-go's `acquire`: try every retry period (jittered) until we hold the Lease.
    async fn acquire(&mut self) {
        loop {
            let deadline = self.config.renew_deadline;
            let attempt = self.try_acquire_or_renew();
            if let Ok(true) = tokio::time::timeout(deadline, attempt).await {
                return;
            }
            let jitter = 1.0 + rand::random::<f64>() * JITTER_FACTOR;
            tokio::time::sleep(self.config.retry_period.mul_f64(jitter)).await;
        }
    }

    /// client-go's `renew`: every retry period, renew, retrying until the renew deadline;
    /// returns when a renewal missed it.
    async fn keep_renewing(&mut self) {
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            let deadline = Instant::now() + self.config.renew_deadline;
            let retry = self.config.retry_period;
            let renewed = tokio::time::timeout_at(deadline, async {
                while !self.try_acquire_or_renew().await {
                    tokio::time::sleep(retry).await;
                }
            })
            .await;
            if renewed.is_err() {
                return;
            }
        }
    }

    /// client-go's `tryAcquireOrRenew`: true when we hold the Lease with a record just written.
    async fn try_acquire_or_renew(&mut self) -> bool {
        let now = Instant::now();
        let wall_now = Timestamp::now();
        let seconds = record::duration_seconds(self.config.lease_duration);
        let identity = self.config.identity.clone();

        // 1. The leader's fast path: update the record it wrote last, assuming it is current.
        let fast = match (&self.observed, &self.lease) {
            (Some(observed), Some(lease))
                if observed.is_held_by(&identity) && observed.is_valid(now) =>
            {
                let mut next = lease.clone();
                next.spec = Some(record::renewed(&observed.spec, seconds, wall_now));
                Some(next)
            }
            _ => None,
        };
        if let Some(next) = fast {
            match self.replace(&next).await {
                Ok(written) => {
                    self.written(written, now);
                    return true;
                }
                Err(e) => tracing::debug!(lease = %self.lease_name(), error = %e,
                    "optimistic renewal failed, reading the lease again"),
            }
        }

        // 2. Read the Lease, or create it.
        let current = match self.api.get_opt(&self.config.name).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(record::fresh(&identity, seconds, wall_now)),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(created) => {
                        self.written(created, now);
                        true
                    }
                    Err(e) => {
                        log_write_error(&self.lease_name(), "creating", &e);
                        false
                    }
                };
            }
            Err(e) => {
                tracing::warn!(lease = %self.lease_name(), error = %e, "reading the lease failed");
                return false;
            }
        };

        // 3. What the record says (its observation time moves only when it changed).
        let previous_holder = self.observed.as_ref().map(|o| o.holder().to_string());
        let observed = Observed::observe(
            self.observed.as_ref(),
            current.spec.clone().unwrap_or_default(),
            Instant::now(),
        );
        if previous_holder.as_deref() != Some(observed.holder()) && !observed.is_held_by(&identity)
        {
            tracing::info!(lease = %self.lease_name(), holder = %observed.holder(), "observed a new leader");
        }
        let decision = record::decide(&observed, &identity, seconds, now, wall_now);
        self.observe(observed);
        self.lease = Some(current.clone());

        // 4. Take or renew it, conditionally on the resourceVersion just read.
        let Decision::Write(spec) = decision else {
            return false;
        };
        let mut next = current;
        next.spec = Some(spec);
        match self.replace(&next).await {
            Ok(written) => {
                self.written(written, now);
                true
            }
            Err(e) => {
                log_write_error(&self.lease_name(), "updating", &e);
                false
            }
        }
    }

    /// client-go's `release`: clear the holder if the Lease is still ours, so a standby takes
    /// over at once. Best effort, bounded by the renew deadline.
    async fn release(&mut self) {
        let deadline = self.config.renew_deadline;
        let attempt = async {
            let current = self.api.get_opt(&self.config.name).await?;
            let Some(current) = current else {
                return Ok::<_, kube::Error>(false);
            };
            let spec = current.spec.clone().unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(false);
            }
            let mut next = current;
            next.spec = Some(record::released(&spec, Timestamp::now()));
            let written = self.replace(&next).await?;
            self.written(written, Instant::now());
            Ok(true)
        };
        let outcome = tokio::time::timeout(deadline, attempt).await;
        match outcome {
            Ok(Ok(true)) => {
                tracing::info!(lease = %self.lease_name(), identity = %self.config.identity, "released lease")
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::warn!(lease = %self.lease_name(), error = %e, "releasing the lease failed")
            }
            Err(_) => tracing::warn!(lease = %self.lease_name(), "releasing the lease timed out"),
        }
    }

    async fn replace(&self, lease: &Lease) -> Result<Lease, kube::Error> {
        self.api
            .replace(&self.config.name, &PostParams::default(), lease)
            .await
    }

    /// A record we wrote: as client-go's `setObservedRecord`, observed at the attempt's start
    /// (the conservative end for the holder).
    fn written(&mut self, lease: Lease, at: Instant) {
        self.observe(Observed {
            spec: lease.spec.clone().unwrap_or_default(),
            at,
        });
        self.lease = Some(lease);
    }

    /// The record last seen (client-go's `setObservedRecord`), also told to [`LeaderHealth`].
    fn observe(&mut self, observed: Observed) {
        let held = observed
            .is_held_by(&self.config.identity)
            .then_some(observed.at);
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = held;
        self.observed = Some(observed);
    }
}

/// Losing a race (409: someone else wrote first) is routine; anything else is worth a warning.
fn log_write_error(lease: &str, what: &str, e: &kube::Error) {
    match e {
        kube::Error::Api(status) if status.code == 409 => {
            tracing::debug!(lease, error = %e, "{what} the lease lost a race")
        }
        _ => tracing::warn!(lease, error = %e, "{what} the lease failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_defaults_are_valid() {
        let c = LeaseConfig::new("kube-system", "kube-scheduler", "me");
        assert_eq!(
            (c.lease_duration, c.renew_deadline, c.retry_period),
            (
                Duration::from_secs(15),
                Duration::from_secs(10),
                Duration::from_secs(2)
            )
        );
        c.validate().unwrap();
    }

    #[test]
    fn inconsistent_timings_are_refused() {
        let mut c = LeaseConfig::new("kube-system", "x", "me");
        c.renew_deadline = c.lease_duration;
        assert!(c.validate().is_err());
        let mut c = LeaseConfig::new("kube-system", "x", "me");
        c.retry_period = Duration::from_secs(9);
        assert!(c.validate().is_err(), "renew deadline ≤ 1.2 × retry period");
        assert!(LeaseConfig::new("kube-system", "x", "").validate().is_err());
    }

    /// client-go's `Check` with kube-controller-manager's 20 s tolerance: a holder that renewed
    /// recently, and any standby, are healthy; a holder whose last renewal is older than the
    /// lease duration plus the tolerance is not.
    #[test]
    fn health_fails_only_for_a_holder_that_stopped_renewing() {
        let elector_config = LeaseConfig::new("kube-system", "kube-controller-manager", "me");
        let held = Arc::new(Mutex::new(None));
        let (_leader, leader_rx) = watch::channel(true);
        let health = LeaderHealth {
            name: elector_config.name.clone(),
            lease_duration: elector_config.lease_duration,
            leader: leader_rx,
            held: held.clone(),
        };
        let tolerance = Duration::from_secs(20);
        assert!(health.check(tolerance).is_ok(), "standby");
        *held.lock().unwrap() = Some(Instant::now() - Duration::from_secs(30));
        assert!(health.check(tolerance).is_ok(), "within 15 s + 20 s");
        *held.lock().unwrap() = Some(Instant::now() - Duration::from_secs(36));
        assert_eq!(
            health.check(tolerance).unwrap_err(),
            "failed election to renew leadership on lease kube-controller-manager"
        );
        assert!(health.is_leader());
        assert_eq!(health.lease_name(), "kube-controller-manager");
    }

    #[test]
    fn default_identity_is_hostname_and_uuid() {
        let a = default_identity();
        let (host, id) = a.rsplit_once('_').unwrap();
        assert!(!host.is_empty());
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{a}");
        assert_ne!(a, default_identity(), "unique per call");
    }
}
