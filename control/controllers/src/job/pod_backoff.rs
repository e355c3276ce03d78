//! The delay before a Job replaces failed pods (upstream `backoff_utils.go`): 10 s after the
//! first failure since the last success, doubling per failure up to 6 minutes, measured from
//! when the last failed pod finished. A success resets it.
//!
//! Why per Job and in memory, as upstream: the record is rebuilt from what each sync newly
//! sees (pods not yet counted in the status), so a restart of the controller manager starts
//! from no delay, never from a longer one.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use parking_lot::Mutex;

pub const BASE: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(360);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record {
    pub failures_after_last_success: u32,
    pub last_failure: Option<jiff::Timestamp>,
}

impl Record {
    /// How long pod creation must still wait at `now`.
    pub fn remaining(&self, now: jiff::Timestamp) -> Duration {
        let Some(last) = self.last_failure else {
            return Duration::ZERO;
        };
        if self.failures_after_last_success == 0 {
            return Duration::ZERO;
        }
        let exponent = (self.failures_after_last_success - 1).min(16);
        let backoff = BASE.saturating_mul(1 << exponent).min(MAX);
        let elapsed = Duration::try_from(now.duration_since(last)).unwrap_or(Duration::ZERO);
        backoff.saturating_sub(elapsed)
    }
}

/// When the pod finished: its containers' latest finish, else its deletion time.
pub fn finish_time(pod: &Pod) -> Option<jiff::Timestamp> {
    let status = pod.status.as_ref();
    let finished = status
        .into_iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    finished.or_else(|| pod.metadata.deletion_timestamp.as_ref().map(|t| t.0))
}

#[derive(Default)]
pub struct Store {
    by_job: Mutex<HashMap<String, Record>>,
}

impl Store {
    /// The record after this sync's newly finished pods (upstream `newBackoffRecord`); stored
    /// by [`Store::update`] once the status that counts them is written.
    pub fn next(
        &self,
        job: &str,
        succeeded: &[&Pod],
        failed: &[&Pod],
        now: jiff::Timestamp,
    ) -> Record {
        let mut record = self.by_job.lock().get(job).copied().unwrap_or_default();
        if !succeeded.is_empty() {
            record = Record::default();
        }
        if !failed.is_empty() {
            record.failures_after_last_success += failed.len() as u32;
            let last = failed
                .iter()
                .map(|p| finish_time(p).unwrap_or(now))
                .max()
                .unwrap_or(now);
            record.last_failure = Some(record.last_failure.map_or(last, |t| t.max(last)));
        }
        record
    }

    pub fn update(&self, job: &str, record: Record) {
        self.by_job.lock().insert(job.to_string(), record);
    }

    pub fn remove(&self, job: &str) {
        self.by_job.lock().remove(job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_ten_seconds_up_to_six_minutes() {
        let t0 = jiff::Timestamp::from_second(1000).expect("valid");
        let record = |n| Record {
            failures_after_last_success: n,
            last_failure: Some(t0),
        };
        assert_eq!(record(0).remaining(t0), Duration::ZERO);
        assert_eq!(record(1).remaining(t0), Duration::from_secs(10));
        assert_eq!(record(3).remaining(t0), Duration::from_secs(40));
        assert_eq!(record(30).remaining(t0), MAX);
        let later = jiff::Timestamp::from_second(1015).expect("valid");
        assert_eq!(record(2).remaining(later), Duration::from_secs(5));
        assert_eq!(record(1).remaining(later), Duration::ZERO);
    }

    #[test]
    fn a_success_resets_the_count() {
        let store = Store::default();
        let now = jiff::Timestamp::from_second(1000).expect("valid");
        let pod = Pod::default();
        let r = store.next("j", &[], &[&pod, &pod], now);
        assert_eq!(r.failures_after_last_success, 2);
        store.update("j", r);
        let r = store.next("j", &[&pod], &[], now);
        assert_eq!(r, Record::default());
    }
}
