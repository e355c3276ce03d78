//! RollingUpdate (upstream `rolling.go`): grow the new ReplicaSet while the total stays within
//! replicas + maxSurge, shrink the old ones while at least replicas − maxUnavailable pods stay
//! available. Each sync takes one step; the ReplicaSets' status changes bring the next sync.
//!
//! Example, 10 replicas at 25 %: maxSurge 3 (rounded up), maxUnavailable 2 (rounded down), so
//! never more than 13 pods and never fewer than 8 available.

use k8s_openapi::api::apps::v1::ReplicaSet;

use super::sync::{new_rs_replicas, Rollout};
use super::{progress, util, Error};

pub async fn rollout(
    r: &mut Rollout<'_>,
    list: &[ReplicaSet],
) -> Result<Option<std::time::Duration>, Error> {
    let (new, mut old) = r.new_and_old(list, true).await?;
    let Some(mut new) = new else {
        return r.sync_rollout_status(None, &old).await;
    };
    if reconcile_new(r, &mut new, &old).await? {
        return r.sync_rollout_status(Some(&new), &old).await;
    }
    if reconcile_old(r, &new, &mut old).await? {
        return r.sync_rollout_status(Some(&new), &old).await;
    }
    let all: Vec<&ReplicaSet> = old.iter().chain(Some(&new)).collect();
    let status = progress::calculate_status(&r.d, &all, Some(&new), jiff::Timestamp::now());
    if progress::complete(&r.d, &status) {
        r.cleanup(&old).await?;
    }
    r.sync_rollout_status(Some(&new), &old).await
}

/// Upstream `reconcileNewReplicaSet`: true if it scaled.
async fn reconcile_new(
    r: &Rollout<'_>,
    new: &mut ReplicaSet,
    old: &[ReplicaSet],
) -> Result<bool, Error> {
    let desired = util::replicas(&r.d);
    let current = util::spec_replicas(new);
    if current == desired {
        return Ok(false);
    }
    if current > desired {
        return r.scale(new, desired).await;
    }
    let all: Vec<&ReplicaSet> = old.iter().chain(Some(&*new)).collect();
    let target = new_rs_replicas(&r.d, &all, Some(new));
    r.scale(new, target).await
}

/// Upstream `reconcileOldReplicaSets`: true if it scaled anything down.
async fn reconcile_old(
    r: &Rollout<'_>,
    new: &ReplicaSet,
    old: &mut [ReplicaSet],
) -> Result<bool, Error> {
    let old_refs: Vec<&ReplicaSet> = old.iter().collect();
    if util::sum_spec(&old_refs) == 0 {
        return Ok(false);
    }
    let all_pods = util::sum_spec(&old_refs) + util::spec_replicas(new);
    let min_available = util::replicas(&r.d) - util::max_unavailable(&r.d);
    let new_unavailable = util::spec_replicas(new) - util::available_replicas(new);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(false);
    }
    old.sort_by(util::by_creation);
    let cleaned = cleanup_unhealthy(r, old, max_scaled_down).await?;
    let scaled = scale_down_old(r, new, old).await?;
    Ok(cleaned + scaled > 0)
}

/// Old ReplicaSets lose their unavailable pods first, up to `max` (upstream
/// `cleanupUnhealthyReplicas`; `old` is sorted oldest first).
async fn cleanup_unhealthy(
    r: &Rollout<'_>,
    old: &mut [ReplicaSet],
    max: i32,
) -> Result<i32, Error> {
    let mut total = 0;
    for rs in old.iter_mut() {
        if total >= max {
            break;
        }
        let spec = util::spec_replicas(rs);
        let available = util::available_replicas(rs);
        if spec == 0 || spec == available {
            continue;
        }
        let down = (max - total).min(spec - available);
        r.scale(rs, spec - down).await?;
        total += down;
    }
    Ok(total)
}

/// Old ReplicaSets shrink, oldest first, as long as enough pods stay available (upstream
/// `scaleDownOldReplicaSetsForRollingUpdate`).
async fn scale_down_old(
    r: &Rollout<'_>,
    new: &ReplicaSet,
    old: &mut [ReplicaSet],
) -> Result<i32, Error> {
    let min_available = util::replicas(&r.d) - util::max_unavailable(&r.d);
    let available: i32 = old
        .iter()
        .chain(Some(new))
        .map(util::available_replicas)
        .sum();
    if available <= min_available {
        return Ok(0);
    }
    let to_scale_down = available - min_available;
    let mut total = 0;
    for rs in old.iter_mut() {
        if total >= to_scale_down {
            break;
        }
        let spec = util::spec_replicas(rs);
        if spec == 0 {
            continue;
        }
        let down = spec.min(to_scale_down - total);
        r.scale(rs, spec - down).await?;
        total += down;
    }
    Ok(total)
}
