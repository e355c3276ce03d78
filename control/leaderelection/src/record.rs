//! The pure part of the election: what a candidate makes of the Lease it read, and the records
//! it writes (client-go's `tryAcquireOrRenew` steps 3–4, `release`, and the `LeaseLock`'s
//! record ↔ LeaseSpec mapping). No I/O, no clock reads: every time comes in as an argument.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

/// The record a candidate last saw, and when *it* saw that record change.
///
/// As in client-go, expiry is judged on the observer's own monotonic clock — `at` plus the
/// record's `leaseDurationSeconds` — never on the holder's `renewTime`, so clock skew between
/// candidates does not matter: a holder that keeps renewing keeps changing the record, which
/// keeps moving `at` forward.
#[derive(Clone, Debug)]
pub(crate) struct Observed {
    pub spec: LeaseSpec,
    pub at: Instant,
}

impl Observed {
    /// `spec`, read at `now`: the observation time moves only when the record changed.
    pub fn observe(previous: Option<&Observed>, spec: LeaseSpec, now: Instant) -> Observed {
        match previous {
            Some(p) if p.spec == spec => p.clone(),
            _ => Observed { spec, at: now },
        }
    }

    pub fn holder(&self) -> &str {
        self.spec.holder_identity.as_deref().unwrap_or_default()
    }

    /// client-go's `IsLeader`: the last record seen names us.
    pub fn is_held_by(&self, identity: &str) -> bool {
        !identity.is_empty() && self.holder() == identity
    }

    /// client-go's `isLeaseValid`: the record was seen changing less than its
    /// `leaseDurationSeconds` ago.
    pub fn is_valid(&self, now: Instant) -> bool {
        let seconds = self.spec.lease_duration_seconds.unwrap_or(0).max(0) as u64;
        self.at + Duration::from_secs(seconds) > now
    }
}

/// What to do with the current record.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Decision {
    /// Someone else holds an unexpired lease: wait.
    HeldByOther,
    /// Write this record (conditionally on the resourceVersion read).
    Write(LeaseSpec),
}

/// client-go's `tryAcquireOrRenew` after the Get: another holder's unexpired lease is left
/// alone; our own lease is renewed (same acquireTime and transitions); an expired or released
/// lease is taken, counting one more transition.
pub(crate) fn decide(
    observed: &Observed,
    identity: &str,
    lease_duration_seconds: i32,
    now: Instant,
    wall_now: Timestamp,
) -> Decision {
    let ours = observed.is_held_by(identity);
    if !observed.holder().is_empty() && observed.is_valid(now) && !ours {
        return Decision::HeldByOther;
    }
    if ours {
        Decision::Write(renewed(&observed.spec, lease_duration_seconds, wall_now))
    } else {
        let mut spec = fresh(identity, lease_duration_seconds, wall_now);
        spec.lease_transitions = Some(observed.spec.lease_transitions.unwrap_or(0) + 1);
        spec.strategy = observed.spec.strategy.clone();
        spec.preferred_holder = observed.spec.preferred_holder.clone();
        Decision::Write(spec)
    }
}

/// The record of a Lease created by its first holder.
pub(crate) fn fresh(identity: &str, lease_duration_seconds: i32, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(lease_duration_seconds),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(0),
        ..LeaseSpec::default()
    }
}

/// Our record again with a new renewTime (acquireTime and transitions kept).
pub(crate) fn renewed(
    previous: &LeaseSpec,
    lease_duration_seconds: i32,
    now: Timestamp,
) -> LeaseSpec {
    LeaseSpec {
        lease_duration_seconds: Some(lease_duration_seconds),
        renew_time: Some(MicroTime(now)),
        ..previous.clone()
    }
}

/// client-go's `release`: no holder, a one-second lease, transitions kept — the next candidate
/// to look takes it at once.
pub(crate) fn released(previous: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(String::new()),
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: previous.lease_transitions,
        ..previous.clone()
    }
}

/// `leaseDurationSeconds` for a duration: whole seconds, rounded up, at least one.
pub(crate) fn duration_seconds(d: Duration) -> i32 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.clamp(1, i32::MAX as u64) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "me";
    const OTHER: &str = "other";

    fn wall() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    fn held_by(holder: &str, duration: i32, transitions: i32) -> LeaseSpec {
        let mut spec = fresh(holder, duration, wall());
        spec.lease_transitions = Some(transitions);
        spec
    }

    #[test]
    fn validity_is_judged_on_the_observers_clock() {
        let t0 = Instant::now();
        let seen = Observed::observe(None, held_by(OTHER, 15, 0), t0);
        assert!(seen.is_valid(t0));
        assert!(seen.is_valid(t0 + Duration::from_secs(14)));
        assert!(!seen.is_valid(t0 + Duration::from_secs(15)));
        assert!(!seen.is_valid(t0 + Duration::from_secs(60)));

        // The remote renewTime is not looked at: a record stamped long ago (a skewed clock)
        // is still valid for a full lease duration after we first saw it.
        let mut old = held_by(OTHER, 15, 0);
        old.renew_time = Some(MicroTime(Timestamp::from_second(0).unwrap()));
        let seen = Observed::observe(None, old, t0);
        assert!(seen.is_valid(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn observation_time_moves_only_when_the_record_changes() {
        let t0 = Instant::now();
        let first = Observed::observe(None, held_by(OTHER, 15, 0), t0);
        let same = Observed::observe(
            Some(&first),
            held_by(OTHER, 15, 0),
            t0 + Duration::from_secs(10),
        );
        assert_eq!(
            same.at, t0,
            "an unchanged record keeps its first observation time"
        );
        assert!(!same.is_valid(t0 + Duration::from_secs(16)));

        let mut renewed_spec = held_by(OTHER, 15, 0);
        renewed_spec.renew_time = Some(MicroTime(wall() + Duration::from_secs(2)));
        let later = t0 + Duration::from_secs(10);
        let changed = Observed::observe(Some(&first), renewed_spec, later);
        assert_eq!(changed.at, later);
        assert!(changed.is_valid(t0 + Duration::from_secs(16)));
    }

    #[test]
    fn another_holders_unexpired_lease_is_left_alone() {
        let t0 = Instant::now();
        let seen = Observed::observe(None, held_by(OTHER, 15, 3), t0);
        assert_eq!(
            decide(&seen, ME, 15, t0 + Duration::from_secs(5), wall()),
            Decision::HeldByOther
        );
    }

    #[test]
    fn an_expired_lease_is_taken_with_one_more_transition() {
        let t0 = Instant::now();
        let seen = Observed::observe(None, held_by(OTHER, 15, 3), t0);
        let now = wall() + Duration::from_secs(20);
        let Decision::Write(spec) = decide(&seen, ME, 15, t0 + Duration::from_secs(15), now) else {
            panic!("an expired lease is taken");
        };
        assert_eq!(spec.holder_identity.as_deref(), Some(ME));
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        assert_eq!(spec.lease_duration_seconds, Some(15));
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let t0 = Instant::now();
        let spec = released(&held_by(OTHER, 15, 2), wall());
        assert_eq!(spec.holder_identity.as_deref(), Some(""));
        assert_eq!(spec.lease_transitions, Some(2));
        let seen = Observed::observe(None, spec, t0);
        let Decision::Write(spec) = decide(&seen, ME, 15, t0, wall()) else {
            panic!("a released lease is taken");
        };
        assert_eq!(spec.holder_identity.as_deref(), Some(ME));
        assert_eq!(spec.lease_transitions, Some(3));
    }

    #[test]
    fn our_own_lease_is_renewed_keeping_acquire_time_and_transitions() {
        let t0 = Instant::now();
        let mine = held_by(ME, 15, 5);
        let acquired = mine.acquire_time.clone();
        let seen = Observed::observe(None, mine, t0);
        let now = wall() + Duration::from_secs(2);
        // Even past its expiry on our clock (a slow renewal), our own record is renewed.
        for at in [t0 + Duration::from_secs(2), t0 + Duration::from_secs(30)] {
            let Decision::Write(spec) = decide(&seen, ME, 15, at, now) else {
                panic!("our own lease is renewed");
            };
            assert_eq!(spec.holder_identity.as_deref(), Some(ME));
            assert_eq!(spec.lease_transitions, Some(5));
            assert_eq!(spec.acquire_time, acquired);
            assert_eq!(spec.renew_time, Some(MicroTime(now)));
        }
    }

    #[test]
    fn an_empty_identity_is_never_the_holder() {
        let seen = Observed::observe(
            None,
            released(&held_by(OTHER, 15, 0), wall()),
            Instant::now(),
        );
        assert!(!seen.is_held_by(""));
    }

    #[test]
    fn lease_duration_seconds_round_up() {
        assert_eq!(duration_seconds(Duration::from_secs(15)), 15);
        assert_eq!(duration_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(duration_seconds(Duration::from_millis(10)), 1);
        assert_eq!(duration_seconds(Duration::ZERO), 1);
    }
}
