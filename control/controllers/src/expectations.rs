//! Controller expectations (upstream `controller_utils.go` ControllerExpectations): what a
//! controller is still waiting to see in its watch after it created or deleted pods.
//!
//! Why: a sync reads the pod cache, which lags the API server. Without expectations, a
//! ReplicaSet that just created 3 pods and syncs again before the watch delivered them would
//! see 0 and create 3 more. While expectations are pending a controller updates status but does
//! not create or delete. Creations are counted (pod names come from generateName, so they are
//! unknown until the reply, and the watch event may beat the reply); deletions are tracked by
//! pod uid. Expectations older than 5 minutes count as met, as upstream's TTL, so a lost event
//! cannot wedge a controller.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

const TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Default)]
pub struct Expectations {
    by_controller: Mutex<HashMap<String, Expectation>>,
}

struct Expectation {
    adds: i64,
    deletes: HashSet<String>,
    set_at: Instant,
}

impl Expectations {
    /// True when the controller (by uid) may create or delete again.
    pub fn satisfied(&self, controller: &str) -> bool {
        match self.by_controller.lock().get(controller) {
            None => true,
            Some(e) => (e.adds <= 0 && e.deletes.is_empty()) || e.set_at.elapsed() > TTL,
        }
    }

    /// About to create `count` pods.
    pub fn expect_creations(&self, controller: &str, count: usize) {
        self.by_controller.lock().insert(
            controller.to_string(),
            Expectation {
                adds: count as i64,
                deletes: HashSet::new(),
                set_at: Instant::now(),
            },
        );
    }

    /// About to delete these pods (by uid).
    pub fn expect_deletions(&self, controller: &str, pods: impl IntoIterator<Item = String>) {
        self.by_controller.lock().insert(
            controller.to_string(),
            Expectation {
                adds: 0,
                deletes: pods.into_iter().collect(),
                set_at: Instant::now(),
            },
        );
    }

    /// About to create `adds` pods and delete these (by uid) in one go (the DaemonSet
    /// controller does both in one sync, as upstream's `SetExpectations`).
    pub fn expect(&self, controller: &str, adds: usize, deletes: impl IntoIterator<Item = String>) {
        self.by_controller.lock().insert(
            controller.to_string(),
            Expectation {
                adds: adds as i64,
                deletes: deletes.into_iter().collect(),
                set_at: Instant::now(),
            },
        );
    }

    /// A pod of this controller appeared (or a create failed, so it never will).
    pub fn creation_observed(&self, controller: &str) {
        if let Some(e) = self.by_controller.lock().get_mut(controller) {
            e.adds -= 1;
        }
    }

    /// A pod of this controller is being deleted or is gone (or its delete failed).
    pub fn deletion_observed(&self, controller: &str, pod_uid: &str) {
        if let Some(e) = self.by_controller.lock().get_mut(controller) {
            e.deletes.remove(pod_uid);
        }
    }

    /// The controller is gone.
    pub fn forget(&self, controller: &str) {
        self.by_controller.lock().remove(controller);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_and_deletions_are_waited_for() {
        let e = Expectations::default();
        assert!(e.satisfied("rs"));
        e.expect_creations("rs", 2);
        assert!(!e.satisfied("rs"));
        e.creation_observed("rs");
        assert!(!e.satisfied("rs"));
        e.creation_observed("rs");
        assert!(e.satisfied("rs"));
        e.expect_deletions("rs", ["a".to_string(), "b".to_string()]);
        e.deletion_observed("rs", "a");
        e.deletion_observed("rs", "a");
        assert!(!e.satisfied("rs"));
        e.deletion_observed("rs", "b");
        assert!(e.satisfied("rs"));
        // Observations for controllers without expectations change nothing.
        e.creation_observed("other");
        assert!(e.satisfied("other"));
    }
}
