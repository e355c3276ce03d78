//! Leader election through a coordination.k8s.io/v1 Lease (`skiff-leaderelection`) against a
//! real `skiff server`: the server's controller manager holds `kube-system/kube-controller-manager`;
//! two kube-rs candidates on a lease of their own never both lead; a leader that dies without
//! releasing (its task aborted, as by kill -9) is replaced only once its lease has expired; a
//! leader that shuts down cleanly releases the lease and its standby takes over at once.
//!
//! No timing thresholds: waits are "eventually, within a generous bound", and the expiry is
//! checked on the Lease's own record (the new holder's acquireTime against the old holder's
//! last renewTime).

mod common;

use std::time::Duration;

use common::{wait_until, ServerProcess};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use skiff_leaderelection::{LeaderElector, LeaseConfig};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

const NS: &str = "kube-system";
/// Far beyond anything the elections here need, even on a loaded machine.
const GENEROUS: Duration = Duration::from_secs(60);

struct Candidate {
    identity: String,
    leader: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Candidate {
    /// A candidate whose work runs until it is stopped (released) or aborted (not released).
    fn start(client: &kube::Client, config: LeaseConfig) -> Candidate {
        let identity = config.identity.clone();
        let elector = LeaderElector::new(client.clone(), config);
        let leader = elector.subscribe();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(elector.run_until(
            || async {
                std::future::pending::<()>().await;
                Ok(())
            },
            async {
                let _ = stopped.await;
            },
        ));
        Candidate {
            identity,
            leader,
            stop: Some(stop),
            task,
        }
    }

    fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Dies without releasing its lease: the task (and the election with it) is dropped.
    async fn kill(self) {
        self.task.abort();
        assert!(self.task.await.unwrap_err().is_cancelled());
    }

    /// Shuts down cleanly: the work stops and the lease is released.
    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.await.unwrap().unwrap();
        assert!(!*self.leader.borrow());
    }
}

fn config(name: &str, identity: &str, lease: Duration) -> LeaseConfig {
    let mut c = LeaseConfig::new(NS, name, identity);
    c.lease_duration = lease;
    c.renew_deadline = Duration::from_secs(2);
    c.retry_period = Duration::from_millis(500);
    c
}

fn holder(lease: &Lease) -> &str {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .unwrap_or_default()
}

fn renew_time(lease: &Lease) -> Timestamp {
    lease.spec.as_ref().unwrap().renew_time.as_ref().unwrap().0
}

fn acquire_time(lease: &Lease) -> Timestamp {
    lease
        .spec
        .as_ref()
        .unwrap()
        .acquire_time
        .as_ref()
        .unwrap()
        .0
}

fn transitions(lease: &Lease) -> i32 {
    lease.spec.as_ref().unwrap().lease_transitions.unwrap()
}

/// Polls `f` every 100 ms until it gives a value; fails after `GENEROUS`.
async fn eventually<T, Fut: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> Fut,
) -> T {
    let deadline = tokio::time::Instant::now() + GENEROUS;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_elect_one_leader_and_hand_over() {
    let s = ServerProcess::start();

    // The server's controller manager holds its Lease, under an identity `<hostname>_<uuid>`.
    wait_until("the controller manager to hold its lease", || {
        !s.kubectl_ok(&[
            "get",
            "lease",
            "-n",
            NS,
            "kube-controller-manager",
            "--ignore-not-found",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .trim()
        .is_empty()
    });
    let cm_holder = s.kubectl_ok(&[
        "get",
        "lease",
        "-n",
        NS,
        "kube-controller-manager",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(cm_holder.contains('_'), "identity {cm_holder:?}");

    let client = skiff_controllers::client_from_kubeconfig(&s.kubeconfig)
        .await
        .unwrap();
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);

    // Two candidates: exactly one leads, and the Lease names it.
    let name = "leader-election-test";
    let lease = Duration::from_secs(3);
    let a = Candidate::start(&client, config(name, "candidate-a", lease));
    let b = Candidate::start(&client, config(name, "candidate-b", lease));
    eventually("a leader", || {
        let one = a.is_leader() || b.is_leader();
        async move { one.then_some(()) }
    })
    .await;
    // Across several renewals, never both, and the Lease always names the one that leads.
    for _ in 0..20 {
        assert!(!(a.is_leader() && b.is_leader()), "two leaders");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (leader, standby) = if a.is_leader() { (a, b) } else { (b, a) };
    assert!(leader.is_leader() && !standby.is_leader());
    let before = leases.get(name).await.unwrap();
    assert_eq!(holder(&before), leader.identity);
    assert_eq!(
        before.spec.as_ref().unwrap().lease_duration_seconds,
        Some(3)
    );

    // The leader dies without releasing: the Lease keeps naming it until it expires, then the
    // standby takes it, counting one more transition.
    let dead = leader.identity.clone();
    leader.kill().await;
    let deadline = tokio::time::Instant::now() + GENEROUS;
    let mut last_by_dead = leases.get(name).await.unwrap();
    let taken = loop {
        // Read before the Lease: a standby leading by then has already written its record.
        let standby_led = standby.is_leader();
        let now = leases.get(name).await.unwrap();
        if holder(&now) != dead {
            break now;
        }
        assert!(
            !standby_led,
            "the standby leads while the Lease still names the old leader"
        );
        last_by_dead = now;
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the standby to take the expired lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(holder(&last_by_dead), dead);
    assert_eq!(holder(&taken), standby.identity);
    eventually("the standby to know it leads", || {
        let leads = standby.is_leader();
        async move { leads.then_some(()) }
    })
    .await;
    assert_eq!(transitions(&taken), transitions(&last_by_dead) + 1);
    // Taken only after the old lease expired: at least leaseDurationSeconds after the old
    // holder's last renewal (both candidates share this machine's clock).
    let expired_at = renew_time(&last_by_dead) + SignedDuration::from_secs(3);
    assert!(
        acquire_time(&taken) >= expired_at,
        "the standby took the lease before it expired: {last_by_dead:?} -> {taken:?}"
    );

    // A clean shutdown releases the Lease and the standby takes it at once. A long lease (60 s)
    // makes "at once" unmistakable: without the release the standby would wait out the lease.
    standby.stop().await;
    let name = "leader-election-release-test";
    let lease = Duration::from_secs(60);
    let first = Candidate::start(&client, config(name, "candidate-c", lease));
    eventually("the first candidate to lead", || {
        let leads = first.is_leader();
        async move { leads.then_some(()) }
    })
    .await;
    let second = Candidate::start(&client, config(name, "candidate-d", lease));
    // Let the second candidate see the held lease (it then waits on it).
    for _ in 0..20 {
        assert!(!second.is_leader());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let held = leases.get(name).await.unwrap();
    assert_eq!(holder(&held), first.identity);
    first.stop().await;
    let released = leases.get(name).await.unwrap();
    assert!(
        holder(&released).is_empty() || holder(&released) == second.identity,
        "not released: {released:?}"
    );
    let handed_over = Duration::from_secs(30);
    let deadline = tokio::time::Instant::now() + handed_over;
    let taken = loop {
        let now = leases.get(name).await.unwrap();
        if holder(&now) == second.identity {
            break now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the standby did not take the released lease well before its 60 s duration"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        acquire_time(&taken) < renew_time(&held) + SignedDuration::from_secs(60),
        "taken only after the lease would have expired: {held:?} -> {taken:?}"
    );
    assert_eq!(transitions(&taken), transitions(&held) + 1);
    eventually("the second candidate to know it leads", || {
        let leads = second.is_leader();
        async move { leads.then_some(()) }
    })
    .await;
    second.stop().await;
    // Released on its clean shutdown too.
    assert_eq!(holder(&leases.get(name).await.unwrap()), "");
}
