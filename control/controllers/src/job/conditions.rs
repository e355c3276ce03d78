//! Job conditions (upstream `ensureJobConditionStatus` and friends). Since 1.31 the controller
//! first records the *interim* condition — `SuccessCriteriaMet` or `FailureTarget` — and adds
//! the terminal `Complete` or `Failed` (same reason and message) only once every pod has
//! stopped and been counted, so a client that sees `Complete` knows no pod of the Job still
//! runs.

use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
pub const FAILURE_TARGET: &str = "FailureTarget";
pub const SUSPENDED: &str = "Suspended";

pub const REASON_COMPLETIONS_REACHED: &str = "CompletionsReached";
pub const MESSAGE_COMPLETIONS_REACHED: &str = "Reached expected number of succeeded pods";
pub const REASON_BACKOFF_LIMIT: &str = "BackoffLimitExceeded";
pub const MESSAGE_BACKOFF_LIMIT: &str = "Job has reached the specified backoff limit";
pub const REASON_DEADLINE: &str = "DeadlineExceeded";
pub const MESSAGE_DEADLINE: &str = "Job was active longer than specified deadline";
pub const REASON_POD_FAILURE_POLICY: &str = "PodFailurePolicy";
pub const REASON_SUCCESS_POLICY: &str = "SuccessPolicy";

pub fn new(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

pub fn find<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

pub fn is_true(job: &Job, type_: &str) -> bool {
    find(job, type_).is_some_and(|c| c.status == "True")
}

/// Complete or Failed: nothing more to do for the Job (upstream `IsJobFinished`).
pub fn is_finished(job: &Job) -> bool {
    is_true(job, COMPLETE) || is_true(job, FAILED)
}

/// When the Job finished, if it did (the transition time of its terminal condition).
pub fn finished_at(job: &Job) -> Option<jiff::Timestamp> {
    [COMPLETE, FAILED]
        .iter()
        .filter_map(|t| find(job, t))
        .find(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Sets the condition of `type_` to the given state; a condition that does not exist yet is
/// not added as False. Returns whether anything changed.
pub fn ensure(
    list: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> bool {
    if let Some(existing) = list.iter_mut().find(|c| c.type_ == type_) {
        if existing.status != status
            || existing.reason.as_deref() != Some(reason)
            || existing.message.as_deref() != Some(message)
        {
            *existing = new(type_, status, reason, message, now);
            return true;
        }
        return false;
    }
    if status != "False" {
        list.push(new(type_, status, reason, message, now));
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_adds_true_updates_and_never_adds_false() {
        let now = jiff::Timestamp::UNIX_EPOCH;
        let mut list = Vec::new();
        assert!(!ensure(
            &mut list,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert!(list.is_empty());
        assert!(ensure(
            &mut list,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(!ensure(
            &mut list,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(ensure(
            &mut list,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].status, "False");
    }
}
