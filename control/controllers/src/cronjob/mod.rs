//! The CronJob controller (upstream `pkg/controller/cronjob`, the v2 controller): creates a
//! Job for each scheduled time (`schedule.rs`), named `<cronjob>-<minutes since the epoch>` so
//! a time is never run twice, keeps `status.active` / `lastScheduleTime` /
//! `lastSuccessfulTime`, applies `concurrencyPolicy` (Allow, Forbid, Replace),
//! `startingDeadlineSeconds` and `suspend`, and deletes finished Jobs beyond the history limits.
//!
//! Why a requeue per CronJob instead of upstream's 10-second poll: each sync computes the next
//! scheduled time and asks kube-runtime to come back then, so a CronJob runs within
//! milliseconds of its time and an idle cluster does no work. Changes of its Jobs (the shared
//! Job informer) trigger a sync too, so completions show in the status at once.

pub mod schedule;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::{unbounded, UnboundedSender};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};

use crate::backoff::Backoffs;
use crate::controller_ref::owner_ref;
use crate::events::{Recorder, NORMAL, WARNING};
use crate::informer::Informer;
use crate::job::conditions;
use crate::replicaset::api_message;
use crate::workqueue::{self, names};
use schedule::Schedule;

const COMPONENT: &str = "cronjob-controller";
/// The annotation with the time a Job was scheduled for (in the CronJob's time zone).
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Missed start times beyond which the controller warns (upstream's 100).
const TOO_MANY_MISSED: usize = 100;
/// Upstream waits this long past the scheduled time before syncing, so the clock has passed it.
const NEXT_SYNC_SLACK: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("the object has no uid, namespace or spec")]
    Incomplete,
}

struct Context {
    client: Client,
    jobs: Arc<Informer<Job>>,
    recorder: Recorder,
    backoffs: Backoffs,
}

/// `(name)` of the CronJob controlling the Job.
fn cronjob_of(job: &Job) -> Option<String> {
    job.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true) && r.kind == "CronJob" && r.api_version == "batch/v1")
        .map(|r| r.name.clone())
}

fn job_handler(queue: UnboundedSender<ObjectRef<CronJob>>) -> crate::informer::Handler<Job> {
    Box::new(move |old, new| {
        for job in [old, new].into_iter().flatten() {
            if let Some(name) = cronjob_of(job) {
                let namespace = job.metadata.namespace.as_deref().unwrap_or_default();
                let _ = queue.unbounded_send(ObjectRef::new(&name).within(namespace));
            }
        }
    })
}

/// Builds the CronJob controller: registers its handler on `jobs` at once (call this before
/// the informer runs) and returns the future that runs it once the Job cache is synced.
pub fn controller(
    client: Client,
    jobs: Arc<Informer<Job>>,
    recorder: &Recorder,
) -> impl std::future::Future<Output = ()> + Send {
    let api: Api<CronJob> = Api::all(client.clone());
    let controller = Controller::new(api, watcher::Config::default())
        .with_config(Config::default().concurrency(5));
    let (queue, triggers) = unbounded();
    jobs.on_change(job_handler(queue));
    let ctx = Arc::new(Context {
        client,
        jobs: jobs.clone(),
        recorder: recorder.for_component(COMPONENT),
        backoffs: Backoffs::default(),
    });
    async move {
        jobs.wait_synced().await;
        let controller = controller.reconcile_on(triggers);
        workqueue::run(names::CRONJOB, controller, reconcile, error_policy, ctx).await;
    }
}

fn error_policy(cj: Arc<CronJob>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoffs.next(&cj.uid().unwrap_or_default());
    tracing::debug!(name = %cj.name_any(), "cronjob sync failed: {error}; retrying in {delay:?}");
    Action::requeue(delay)
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// The scheduled times between `earliest` and `now`: the most recent one and how many there
/// were (upstream `mostRecentScheduleTime`).
pub fn missed_times(
    schedule: &Schedule,
    earliest: jiff::Timestamp,
    now: jiff::Timestamp,
    tz: &jiff::tz::TimeZone,
) -> (Option<jiff::Timestamp>, usize) {
    let mut most_recent = None;
    let mut count = 0;
    let mut t = earliest;
    // A cap keeps a schedule that fires every minute over years of downtime bounded.
    while count < 1_000_000 {
        match schedule.next(t, tz) {
            Some(next) if next <= now => {
                most_recent = Some(next);
                count += 1;
                t = next;
            }
            _ => break,
        }
    }
    (most_recent, count)
}

fn time_zone(cj: &CronJob) -> Result<jiff::tz::TimeZone, String> {
    match cj.spec.time_zone.as_deref() {
        None => Ok(jiff::tz::TimeZone::system()),
        Some(name) => jiff::tz::TimeZone::get(name).map_err(|e| e.to_string()),
    }
}

fn requeue_at(next: Option<jiff::Timestamp>, now: jiff::Timestamp) -> Action {
    match next {
        Some(at) => {
            let wait = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
            Action::requeue(wait + NEXT_SYNC_SLACK)
        }
        None => Action::await_change(),
    }
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Context>) -> Result<Action, Error> {
    let uid = cj.uid().ok_or(Error::Incomplete)?;
    let namespace = cj.namespace().ok_or(Error::Incomplete)?;
    let spec = cj.spec.clone();
    let now = jiff::Timestamp::now();
    let cj_api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &namespace);
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut updated: CronJob = (*cj).clone();
    let status = updated.status.get_or_insert_with(CronJobStatus::default);
    let before = status.clone();
    let mut jobs: Vec<Arc<Job>> = ctx.jobs.read().controlled_by(&uid);

    // 1. The active list follows the Jobs: finished ones leave it, vanished ones too.
    let mut active: Vec<ObjectReference> = status.active.clone().unwrap_or_default();
    for job in &jobs {
        let listed = active.iter().any(|r| r.uid == job.metadata.uid);
        let finished = conditions::is_finished(job);
        if !listed && !finished {
            ctx.recorder.publish(
                cj.as_ref(),
                WARNING,
                "UnexpectedJob",
                format!(
                    "Saw a job that the controller did not create or forgot: {}",
                    job.name_any()
                ),
            );
        }
        if listed && finished {
            let condition = if conditions::is_true(job, conditions::COMPLETE) {
                conditions::COMPLETE
            } else {
                conditions::FAILED
            };
            active.retain(|r| r.uid != job.metadata.uid);
            ctx.recorder.publish(
                cj.as_ref(),
                NORMAL,
                "SawCompletedJob",
                format!(
                    "Saw completed job: {}, condition: {condition}",
                    job.name_any()
                ),
            );
        }
        if finished && conditions::is_true(job, conditions::COMPLETE) {
            let done = conditions::finished_at(job);
            let last = status.last_successful_time.as_ref().map(|t| t.0);
            if let Some(done) = done.filter(|d| last.is_none_or(|l| *d > l)) {
                status.last_successful_time = Some(Time(done));
            }
        }
    }
    let mut missing = Vec::new();
    for reference in &active {
        if !jobs.iter().any(|j| j.metadata.uid == reference.uid) {
            // Not in the cache: ask the API server before declaring it gone.
            let name = reference.name.clone().unwrap_or_default();
            match job_api.get_opt(&name).await? {
                Some(job) if job.metadata.uid == reference.uid => {}
                _ => missing.push(name),
            }
        }
    }
    for name in &missing {
        ctx.recorder.publish(
            cj.as_ref(),
            NORMAL,
            "MissingJob",
            format!("Active job went missing: {name}"),
        );
        active.retain(|r| r.name.as_deref() != Some(name));
    }
    status.active = (!active.is_empty()).then(|| active.clone());

    let action = if cj.metadata.deletion_timestamp.is_some() || spec.suspend == Some(true) {
        Action::await_change()
    } else {
        schedule_next(&cj, &ctx, &job_api, &mut updated, &mut jobs, now).await?
    };

    let status = updated.status.get_or_insert_with(CronJobStatus::default);
    if *status != before {
        match cj_api
            .replace_status(&cj.name_any(), &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    clean_up_history(&cj, &ctx, &job_api, &jobs).await;
    ctx.backoffs.reset(&uid);
    Ok(action)
}

/// Starts the Job for the most recent missed time, if one is due (upstream `syncCronJob`'s
/// scheduling half). Returns when to come back.
async fn schedule_next(
    cj: &CronJob,
    ctx: &Context,
    job_api: &Api<Job>,
    updated: &mut CronJob,
    jobs: &mut Vec<Arc<Job>>,
    now: jiff::Timestamp,
) -> Result<Action, Error> {
    let spec = &cj.spec;
    let tz = match time_zone(cj) {
        Ok(tz) => tz,
        Err(e) => {
            ctx.recorder.publish(
                cj,
                WARNING,
                "UnknownTimeZone",
                format!(
                    "invalid timeZone: {:?}: {e}",
                    spec.time_zone.as_deref().unwrap_or_default()
                ),
            );
            return Ok(Action::await_change());
        }
    };
    let schedule = match Schedule::parse(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            ctx.recorder.publish(
                cj,
                WARNING,
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {e}", spec.schedule),
            );
            return Ok(Action::await_change());
        }
    };
    let status = updated.status.get_or_insert_with(CronJobStatus::default);
    let created = cj.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    let mut earliest = status.last_schedule_time.as_ref().map_or(created, |t| t.0);
    if let Some(deadline) = spec.starting_deadline_seconds {
        let cutoff = now - jiff::SignedDuration::from_secs(deadline);
        if cutoff > earliest {
            earliest = cutoff;
        }
    }
    let (most_recent, missed) = missed_times(&schedule, earliest, now, &tz);
    if missed > TOO_MANY_MISSED {
        ctx.recorder.publish(
            cj,
            WARNING,
            "TooManyMissedTimes",
            format!("too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"),
        );
    }
    let next_after_now = schedule.next(now, &tz);
    let Some(scheduled) = most_recent else {
        return Ok(requeue_at(next_after_now, now));
    };
    if let Some(deadline) = spec.starting_deadline_seconds {
        if scheduled + jiff::SignedDuration::from_secs(deadline) < now {
            ctx.recorder.publish(
                cj,
                WARNING,
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    scheduled
                        .to_zoned(tz.clone())
                        .strftime("%a, %d %b %Y %H:%M:%S %z")
                ),
            );
            return Ok(requeue_at(next_after_now, now));
        }
    }
    let name = format!("{}-{}", cj.name_any(), scheduled.as_second() / 60);
    let active = status.active.clone().unwrap_or_default();
    if active
        .iter()
        .any(|r| r.name.as_deref() == Some(name.as_str()))
    {
        return Ok(requeue_at(next_after_now, now));
    }
    match spec.concurrency_policy.as_deref().unwrap_or("Allow") {
        "Forbid" if !active.is_empty() => {
            ctx.recorder.publish(
                cj,
                NORMAL,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            );
            return Ok(requeue_at(next_after_now, now));
        }
        "Replace" => {
            for reference in &active {
                let job_name = reference.name.clone().unwrap_or_default();
                let params = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Background),
                    ..DeleteParams::default()
                };
                match job_api.delete(&job_name, &params).await {
                    Ok(_) => ctx.recorder.publish(
                        cj,
                        NORMAL,
                        "SuccessfulDelete",
                        format!("Deleted job {job_name}"),
                    ),
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => {
                        ctx.recorder.publish(
                            cj,
                            WARNING,
                            "FailedDelete",
                            format!("Deleted job: {}", api_message(&e)),
                        );
                        return Err(e.into());
                    }
                }
            }
            status.active = None;
        }
        _ => {}
    }
    let job = job_from_template(cj, &name, scheduled, &tz);
    let created = match job_api.create(&PostParams::default(), &job).await {
        Ok(created) => {
            ctx.recorder.publish(
                cj,
                NORMAL,
                "SuccessfulCreate",
                format!("Created job {}", created.name_any()),
            );
            created
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Created by an earlier sync whose status write was lost: adopt it into the
            // active list if it is ours.
            let existing = job_api.get(&name).await?;
            if existing
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == cj.uid().unwrap_or_default())
            {
                existing
            } else {
                return Ok(requeue_at(next_after_now, now));
            }
        }
        Err(e) => {
            ctx.recorder.publish(
                cj,
                WARNING,
                "FailedCreate",
                format!("Error creating job: {}", api_message(&e)),
            );
            return Err(e.into());
        }
    };
    if !conditions::is_finished(&created) {
        status
            .active
            .get_or_insert_with(Vec::new)
            .push(reference(&created));
    }
    status.last_schedule_time = Some(Time(scheduled));
    jobs.push(Arc::new(created));
    Ok(requeue_at(next_after_now, now))
}

/// The Job for `scheduled` (upstream `getJobFromTemplate2`).
fn job_from_template(
    cj: &CronJob,
    name: &str,
    scheduled: jiff::Timestamp,
    tz: &jiff::tz::TimeZone,
) -> Job {
    let template = cj.spec.job_template.clone();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations: BTreeMap<String, String> = meta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP.into(),
        scheduled
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: cj.meta().namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![owner_ref(cj)]),
            ..ObjectMeta::default()
        },
        spec: Some(template.spec.unwrap_or_default()),
        status: None,
    }
}

/// Deletes finished Jobs beyond `successfulJobsHistoryLimit` (default 3) and
/// `failedJobsHistoryLimit` (default 1), oldest first.
async fn clean_up_history(cj: &CronJob, ctx: &Context, job_api: &Api<Job>, jobs: &[Arc<Job>]) {
    let spec = &cj.spec;
    for (condition, limit) in [
        (
            conditions::COMPLETE,
            spec.successful_jobs_history_limit.unwrap_or(3),
        ),
        (
            conditions::FAILED,
            spec.failed_jobs_history_limit.unwrap_or(1),
        ),
    ] {
        let mut finished: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| j.metadata.deletion_timestamp.is_none())
            .filter(|j| conditions::is_true(j, condition))
            .collect();
        let limit = limit.max(0) as usize;
        if finished.len() <= limit {
            continue;
        }
        finished.sort_by_key(|j| {
            j.status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0)
                .or_else(|| j.metadata.creation_timestamp.as_ref().map(|t| t.0))
        });
        let excess = finished.len() - limit;
        for job in finished.into_iter().take(excess) {
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..DeleteParams::default()
            };
            match job_api.delete(&job.name_any(), &params).await {
                Ok(_) => ctx.recorder.publish(
                    cj,
                    NORMAL,
                    "SuccessfulDelete",
                    format!("Deleted job {}", job.name_any()),
                ),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => ctx.recorder.publish(
                    cj,
                    WARNING,
                    "FailedDelete",
                    format!("Deleted job: {}", api_message(&e)),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_times_counts_and_keeps_the_latest() {
        let s = Schedule::parse("*/10 * * * *").expect("parses");
        let tz = jiff::tz::TimeZone::UTC;
        let earliest: jiff::Timestamp = "2026-01-01T10:00:00Z".parse().expect("ts");
        let now: jiff::Timestamp = "2026-01-01T10:35:00Z".parse().expect("ts");
        let (latest, count) = missed_times(&s, earliest, now, &tz);
        assert_eq!(count, 3);
        assert_eq!(latest.expect("one").to_string(), "2026-01-01T10:30:00Z");
        let (none, zero) = missed_times(&s, now, now, &tz);
        assert_eq!((none, zero), (None, 0));
    }

    #[test]
    fn jobs_are_named_by_minute_and_carry_the_scheduled_time() {
        let cj = CronJob {
            metadata: ObjectMeta {
                name: Some("hello".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                ..ObjectMeta::default()
            },
            ..CronJob::default()
        };
        let at: jiff::Timestamp = "2026-01-01T10:30:00Z".parse().expect("ts");
        let job = job_from_template(&cj, "hello-29454390", at, &jiff::tz::TimeZone::UTC);
        assert_eq!(
            job.metadata.annotations.as_ref().expect("set")[SCHEDULED_TIMESTAMP],
            "2026-01-01T10:30:00+00:00"
        );
        assert_eq!(at.as_second() / 60, 29454390);
        let owner = &job.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("CronJob", Some(true))
        );
    }
}
