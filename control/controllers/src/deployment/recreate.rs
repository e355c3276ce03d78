//! Recreate (upstream `recreate.go`): scale every old ReplicaSet to zero, wait until none of
//! their pods runs (terminating pods included: two versions must never run side by side),
//! then create or scale up the new ReplicaSet to the full count.

use k8s_openapi::api::apps::v1::ReplicaSet;

use super::sync::{old_pods_running, Rollout};
use super::{progress, util, Error};

/// How often to look again while old pods are still terminating (their deletion is not a
/// ReplicaSet change, so nothing else would wake this Deployment).
const WAIT_FOR_OLD_PODS: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn rollout(
    r: &mut Rollout<'_>,
    list: &[ReplicaSet],
) -> Result<Option<std::time::Duration>, Error> {
    let (new, mut old) = r.new_and_old(list, false).await?;
    let mut scaled_down = false;
    for rs in old.iter_mut().filter(|rs| util::is_active(rs)) {
        if r.scale(rs, 0).await? {
            scaled_down = true;
        }
    }
    if scaled_down {
        return r.sync_rollout_status(new.as_ref(), &old).await;
    }
    if old_pods_running(r.ctx, new.as_ref(), &old) {
        r.sync_rollout_status(new.as_ref(), &old).await?;
        return Ok(Some(WAIT_FOR_OLD_PODS));
    }
    let (new, old) = match new {
        Some(new) => (Some(new), old),
        None => r.new_and_old(list, true).await?,
    };
    let Some(mut new) = new else {
        return r.sync_rollout_status(None, &old).await;
    };
    let desired = util::replicas(&r.d);
    if util::spec_replicas(&new) != desired {
        r.scale(&mut new, desired).await?;
    }
    let all: Vec<&ReplicaSet> = old.iter().chain(Some(&new)).collect();
    let status = progress::calculate_status(&r.d, &all, Some(&new), jiff::Timestamp::now());
    if progress::complete(&r.d, &status) {
        r.cleanup(&old).await?;
    }
    r.sync_rollout_status(Some(&new), &old).await
}
