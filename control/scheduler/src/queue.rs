//! The scheduling queue (upstream's `PriorityQueue`): pods waiting to be scheduled, in three
//! places — active (highest priority first, then oldest), backing off after a failed attempt
//! (1 s doubling to 10 s), and unschedulable (waiting for a cluster change that could make them
//! fit: a node added or changed, a pod deleted; flushed after 5 minutes regardless).

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::time::Instant;

use crate::framework::priority;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a pod stays unschedulable without a cluster event before it is tried again.
pub const UNSCHEDULABLE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, PartialEq, Eq)]
struct ActiveKey {
    priority: i32,
    /// When the pod entered the queue (kept across attempts, as upstream's Timestamp).
    since: Instant,
    uid: String,
}

impl Ord for ActiveKey {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .priority
            .cmp(&self.priority)
            .then(self.since.cmp(&other.since))
            .then(self.uid.cmp(&other.uid))
    }
}

impl PartialOrd for ActiveKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug)]
enum Place {
    Active(ActiveKey),
    Backoff(Instant),
    Unschedulable(Instant),
    /// Popped and being scheduled or bound.
    InFlight,
}

#[derive(Debug)]
struct Entry {
    pod: Arc<Pod>,
    attempts: u32,
    since: Instant,
    place: Place,
}

/// A pod handed out for scheduling.
pub struct Popped {
    pub pod: Arc<Pod>,
    pub attempts: u32,
    /// When the pod entered the queue.
    pub since: Instant,
}

#[derive(Default)]
pub struct Queue {
    entries: HashMap<String, Entry>,
    active: BTreeSet<ActiveKey>,
    /// (ready at, uid): pods backing off, soonest first.
    backing_off: BTreeSet<(Instant, String)>,
    /// (attempted at, uid): unschedulable pods, oldest first.
    unschedulable: BTreeSet<(Instant, String)>,
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

impl Queue {
    /// Moves the entry of `uid` to `place`, keeping the ordered sets in step, so that taking the
    /// next pod never scans the whole queue.
    fn set_place(&mut self, uid: &str, place: Place) {
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        match std::mem::replace(&mut e.place, Place::InFlight) {
            Place::Active(key) => {
                self.active.remove(&key);
            }
            Place::Backoff(at) => {
                self.backing_off.remove(&(at, uid.to_string()));
            }
            Place::Unschedulable(at) => {
                self.unschedulable.remove(&(at, uid.to_string()));
            }
            Place::InFlight => {}
        }
        match &place {
            Place::Active(key) => {
                self.active.insert(key.clone());
            }
            Place::Backoff(at) => {
                self.backing_off.insert((*at, uid.to_string()));
            }
            Place::Unschedulable(at) => {
                self.unschedulable.insert((*at, uid.to_string()));
            }
            Place::InFlight => {}
        }
        e.place = place;
    }

    fn activate(&mut self, uid: &str) {
        let Some(e) = self.entries.get(uid) else {
            return;
        };
        let key = ActiveKey {
            priority: priority(&e.pod),
            since: e.since,
            uid: uid.to_string(),
        };
        self.set_place(uid, Place::Active(key));
    }

    /// A new or changed pending pod. A pod already queued keeps its place, with the newer object.
    pub fn add_or_update(&mut self, pod: Arc<Pod>, now: Instant) {
        let uid = uid(&pod);
        if let Some(e) = self.entries.get_mut(&uid) {
            // A change to what scheduling looks at may let an unschedulable pod fit: try it again
            // after its backoff. Status updates (our own PodScheduled condition among them) do
            // not count, as upstream's `isPodUpdated` ignores them.
            let relevant = e.pod.spec != pod.spec
                || e.pod.metadata.labels != pod.metadata.labels
                || e.pod.metadata.annotations != pod.metadata.annotations;
            e.pod = pod;
            if let (true, Place::Unschedulable(attempted)) = (relevant, &e.place) {
                let ready = *attempted + backoff(e.attempts);
                self.set_place(&uid, Place::Backoff(ready));
            }
            return;
        }
        self.entries.insert(
            uid.clone(),
            Entry {
                pod,
                attempts: 0,
                since: now,
                place: Place::InFlight,
            },
        );
        self.activate(&uid);
    }

    /// The pod is gone, bound by someone else, or no longer ours.
    pub fn remove(&mut self, uid: &str) {
        self.set_place(uid, Place::InFlight);
        self.entries.remove(uid);
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    /// The next pod to schedule, moving pods whose backoff has ended into the active queue first.
    pub fn pop(&mut self, now: Instant) -> Option<Popped> {
        self.flush(now);
        let key = self.active.first()?.clone();
        self.set_place(&key.uid, Place::InFlight);
        let e = self.entries.get_mut(&key.uid)?;
        e.attempts += 1;
        Some(Popped {
            pod: e.pod.clone(),
            attempts: e.attempts,
            since: e.since,
        })
    }

    /// The attempt failed for a reason a cluster change may fix.
    pub fn unschedulable(&mut self, uid: &str, now: Instant) {
        self.set_place(uid, Place::Unschedulable(now));
    }

    /// The attempt failed for another reason (an API error): try again after the backoff.
    pub fn backoff(&mut self, uid: &str, now: Instant) {
        if let Some(e) = self.entries.get(uid) {
            let ready = now + backoff(e.attempts);
            self.set_place(uid, Place::Backoff(ready));
        }
    }

    /// The pod was bound: it leaves the queue.
    pub fn done(&mut self, uid: &str) {
        self.remove(uid);
    }

    /// A cluster event that may make unschedulable pods fit: they go back, once the backoff
    /// from their last attempt has passed.
    pub fn move_all_unschedulable(&mut self) {
        let waiting: Vec<(Instant, String)> = std::mem::take(&mut self.unschedulable)
            .into_iter()
            .collect();
        for (attempted, uid) in waiting {
            if let Some(e) = self.entries.get_mut(&uid) {
                // Already out of the ordered set; only the entry's place changes here.
                let ready = attempted + backoff(e.attempts);
                e.place = Place::Backoff(ready);
                self.backing_off.insert((ready, uid));
            }
        }
    }

    /// Backoffs that ended go to the active queue; pods unschedulable for too long too.
    fn flush(&mut self, now: Instant) {
        while let Some((at, uid)) = self.backing_off.first().cloned() {
            if at > now {
                break;
            }
            self.activate(&uid);
        }
        while let Some((at, uid)) = self.unschedulable.first().cloned() {
            if at + UNSCHEDULABLE_TIMEOUT > now {
                break;
            }
            self.activate(&uid);
        }
    }

    /// When the next backing-off or timed-out pod becomes ready, if any.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let backoff = self.backing_off.first().map(|(at, _)| *at);
        let timeout = self
            .unschedulable
            .first()
            .map(|(at, _)| *at + UNSCHEDULABLE_TIMEOUT);
        backoff.into_iter().chain(timeout).min()
    }

    /// (active, backoff, unschedulable) sizes, for metrics.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (
            self.active.len(),
            self.backing_off.len(),
            self.unschedulable.len(),
        )
    }
}

/// 1 s doubling per attempt, at most 10 s.
pub fn backoff(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(4);
    (INITIAL_BACKOFF * (1 << shift)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, priority: i32) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "uid": name}, "spec": {"containers": [], "priority": priority}}))
                .unwrap(),
        )
    }

    #[test]
    fn priority_then_age() {
        let mut q = Queue::default();
        let t = Instant::now();
        q.add_or_update(pod("old-low", 0), t);
        q.add_or_update(pod("new-high", 100), t + Duration::from_millis(1));
        q.add_or_update(pod("new-low", 0), t + Duration::from_millis(2));
        let order: Vec<String> = std::iter::from_fn(|| q.pop(t + Duration::from_millis(3)))
            .map(|p| p.pod.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(order, ["new-high", "old-low", "new-low"]);
    }

    #[test]
    fn sizes_follow_the_pods() {
        let mut q = Queue::default();
        let t = Instant::now();
        for name in ["a", "b", "c"] {
            q.add_or_update(pod(name, 0), t);
        }
        assert_eq!(q.sizes(), (3, 0, 0));
        let a = q.pop(t).unwrap();
        q.unschedulable(&a.pod.metadata.uid.clone().unwrap(), t);
        let b = q.pop(t).unwrap();
        q.backoff(&b.pod.metadata.uid.clone().unwrap(), t);
        assert_eq!(q.sizes(), (1, 1, 1));
        assert_eq!(q.next_wakeup(), Some(t + INITIAL_BACKOFF));
        q.move_all_unschedulable();
        assert_eq!(q.sizes(), (1, 2, 0));
        q.remove("c");
        q.remove("a");
        assert_eq!(q.sizes(), (0, 1, 0));
        assert_eq!(
            q.pop(t + INITIAL_BACKOFF)
                .unwrap()
                .pod
                .metadata
                .name
                .as_deref(),
            Some("b")
        );
        assert_eq!(q.sizes(), (0, 0, 0));
        assert_eq!(q.next_wakeup(), None);
    }

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(9), Duration::from_secs(10));
    }

    #[test]
    fn status_updates_do_not_wake_unschedulable_pods() {
        let mut q = Queue::default();
        let t = Instant::now();
        q.add_or_update(pod("p", 0), t);
        q.pop(t).unwrap();
        q.unschedulable("p", t);
        // Our own PodScheduled condition comes back as an update: the pod keeps waiting.
        let mut with_status = (*pod("p", 0)).clone();
        with_status.status = Some(Default::default());
        q.add_or_update(Arc::new(with_status), t);
        assert!(q.pop(t + Duration::from_secs(60)).is_none());
        // A label change may make it fit (affinity, spreading): it is tried again.
        let mut relabeled = (*pod("p", 0)).clone();
        relabeled.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        q.add_or_update(Arc::new(relabeled), t);
        assert!(q.pop(t + Duration::from_secs(60)).is_some());
    }

    #[test]
    fn unschedulable_pods_wait_for_an_event() {
        let mut q = Queue::default();
        let t = Instant::now();
        q.add_or_update(pod("p", 0), t);
        let popped = q.pop(t).unwrap();
        assert_eq!(popped.attempts, 1);
        q.unschedulable("p", t);
        assert!(q.pop(t + Duration::from_secs(60)).is_none());
        q.move_all_unschedulable();
        assert!(
            q.pop(t + Duration::from_secs(60)).is_some(),
            "first backoff is 1 s, already over"
        );
        q.unschedulable("p", t);
        assert!(
            q.pop(t + UNSCHEDULABLE_TIMEOUT).is_some(),
            "flushed after the timeout"
        );
        q.backoff("p", t);
        assert!(
            q.pop(t + Duration::from_secs(1)).is_none(),
            "third attempt backs off 4 s"
        );
        assert!(q.pop(t + Duration::from_secs(4)).is_some());
        q.done("p");
        assert!(!q.contains("p"));
    }
}
