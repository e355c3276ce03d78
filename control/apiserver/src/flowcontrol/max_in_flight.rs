//! The limits kube-apiserver applies when API Priority and Fairness is off
//! (`--enable-priority-and-fairness=false`; upstream's `WithMaxInFlightLimit`): at most
//! `--max-requests-inflight` read-only and `--max-mutating-requests-inflight` mutating requests
//! at once (0: no limit), no queuing, a 429 with `Retry-After: 1` beyond them. Long-running
//! requests and `system:masters` are not counted.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::request_info::RequestInfo;
use crate::auth::UserInfo;

pub struct MaxInFlight {
    read_only: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
}

/// A request over its kind's limit.
#[derive(Debug, PartialEq, Eq)]
pub struct TooMany;

impl MaxInFlight {
    pub fn new(read_only: usize, mutating: usize) -> MaxInFlight {
        let semaphore = |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n)));
        MaxInFlight {
            read_only: semaphore(read_only),
            mutating: semaphore(mutating),
        }
    }

    /// The permit to hold while the request runs (`None`: not counted).
    pub fn try_acquire(
        &self,
        info: &RequestInfo,
        user: &UserInfo,
    ) -> Result<Option<OwnedSemaphorePermit>, TooMany> {
        if info.is_long_running() || user.in_group("system:masters") {
            return Ok(None);
        }
        let semaphore = if info.is_mutating() {
            &self.mutating
        } else {
            &self.read_only
        };
        match semaphore {
            None => Ok(None),
            Some(s) => s.clone().try_acquire_owned().map(Some).map_err(|_| TooMany),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn counts_reads_and_writes_apart() {
        let limits = MaxInFlight::new(1, 1);
        let alice = UserInfo {
            name: "alice".into(),
            ..Default::default()
        };
        let list = RequestInfo::new(&Method::GET, "/api/v1/pods", &[]);
        let create = RequestInfo::new(&Method::POST, "/api/v1/namespaces/a/pods", &[]);
        let held = limits.try_acquire(&list, &alice).unwrap();
        assert!(held.is_some());
        assert_eq!(limits.try_acquire(&list, &alice).unwrap_err(), TooMany);
        let write = limits.try_acquire(&create, &alice).unwrap();
        assert!(write.is_some());
        drop(held);
        assert!(limits.try_acquire(&list, &alice).is_ok());
        let watch = RequestInfo::new(
            &Method::GET,
            "/api/v1/pods",
            &[("watch".into(), "1".into())],
        );
        assert!(limits.try_acquire(&watch, &alice).unwrap().is_none());
        let admin = UserInfo {
            name: "admin".into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        };
        let _held = limits.try_acquire(&list, &alice).unwrap();
        assert!(limits.try_acquire(&list, &admin).unwrap().is_none());
    }
}
