//! The TTL-after-finished controller (upstream `pkg/controller/ttlafterfinished`): a finished
//! Job with `spec.ttlSecondsAfterFinished` is deleted that many seconds after its Complete or
//! Failed condition, with foreground propagation (its pods go first).
//!
//! Before deleting, the Job is read again from the API server (not the cache) and the delete
//! carries its resourceVersion as a precondition, as upstream: a user who just raised the TTL
//! or restarted the Job must not lose it to a stale cache.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use crate::backoff::Backoffs;
use crate::job::conditions;
use crate::workqueue::{self, names};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
}

struct Context {
    client: Client,
    backoffs: Backoffs,
}

/// When the Job expires, if it is finished and has a TTL.
pub fn expires_at(job: &Job) -> Option<jiff::Timestamp> {
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let finished = conditions::finished_at(job)?;
    Some(finished + jiff::SignedDuration::from_secs(i64::from(ttl)))
}

fn remaining(job: &Job, now: jiff::Timestamp) -> Option<Duration> {
    let at = expires_at(job)?;
    Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
}

pub async fn run(client: Client) {
    let api: Api<Job> = Api::all(client.clone());
    let ctx = Arc::new(Context {
        client,
        backoffs: Backoffs::default(),
    });
    let controller = Controller::new(api, watcher::Config::default());
    workqueue::run(
        names::TTL_AFTER_FINISHED,
        controller,
        reconcile,
        error_policy,
        ctx,
    )
    .await;
}

fn error_policy(job: Arc<Job>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoffs.next(&job.uid().unwrap_or_default());
    tracing::debug!(name = %job.name_any(), "ttl-after-finished failed: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Context>) -> Result<Action, Error> {
    let now = jiff::Timestamp::now();
    match remaining(&job, now) {
        None => return Ok(Action::await_change()),
        Some(wait) if !wait.is_zero() => return Ok(Action::requeue(wait)),
        Some(_) => {}
    }
    let api: Api<Job> = Api::namespaced(
        ctx.client.clone(),
        job.metadata.namespace.as_deref().unwrap_or_default(),
    );
    let Some(fresh) = api.get_opt(&job.name_any()).await? else {
        return Ok(Action::await_change());
    };
    if fresh.metadata.uid != job.metadata.uid {
        return Ok(Action::await_change());
    }
    match remaining(&fresh, now) {
        None => return Ok(Action::await_change()),
        Some(wait) if !wait.is_zero() => return Ok(Action::requeue(wait)),
        Some(_) => {}
    }
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: fresh.metadata.uid.clone(),
            resource_version: fresh.metadata.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    match api.delete(&fresh.name_any(), &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Changed since the read: look again.
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        Err(e) => return Err(e.into()),
    }
    ctx.backoffs.reset(&job.uid().unwrap_or_default());
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn expires_ttl_seconds_after_the_terminal_condition() {
        let done: jiff::Timestamp = "2026-01-01T10:00:00Z".parse().expect("ts");
        let mut job = Job {
            spec: Some(JobSpec {
                ttl_seconds_after_finished: Some(30),
                ..JobSpec::default()
            }),
            status: Some(JobStatus {
                conditions: Some(vec![conditions::new(
                    conditions::COMPLETE,
                    "True",
                    "CompletionsReached",
                    "",
                    done,
                )]),
                ..JobStatus::default()
            }),
            ..Job::default()
        };
        let later: jiff::Timestamp = "2026-01-01T10:00:10Z".parse().expect("ts");
        assert_eq!(remaining(&job, later), Some(Duration::from_secs(20)));
        let much_later: jiff::Timestamp = "2026-01-01T11:00:00Z".parse().expect("ts");
        assert_eq!(remaining(&job, much_later), Some(Duration::ZERO));
        job.metadata.deletion_timestamp = Some(Time(done));
        assert_eq!(remaining(&job, later), None);
        job.metadata.deletion_timestamp = None;
        job.spec.as_mut().expect("spec").ttl_seconds_after_finished = None;
        assert_eq!(remaining(&job, later), None);
    }
}
