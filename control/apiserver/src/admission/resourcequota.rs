//! The ResourceQuota admission plugin (upstream
//! `k8s.io/apiserver/pkg/admission/plugin/resourcequota`): a write that would take a namespace
//! past one of its quotas is refused with upstream's messages, and one that fits is charged to
//! every quota that counts it.
//!
//! Upstream charges the quotas (an update of each quota's `status.used`) before the object is
//! stored, so a write that fails later leaves the quota over-charged until the controller
//! recounts. skiff writes the new `status.used` in the same store transaction as the object
//! (`storage::Extra::updates`, conditional on each quota's revision): an object exists exactly
//! when it was charged, and two writers racing for the last unit cannot both win — the second
//! transaction fails its comparison, the write handler runs admission again from the quotas'
//! new state, and the second writer is refused. Upstream serializes evaluations per namespace
//! in a queue for the same reason.

use serde_json::Value;

use super::{forbidden, Request};
use crate::auth::admission::Operation;
use crate::error::{ApiError, ApiResult};
use crate::quota::{self, Evaluator, Quota, ResourceList};
use crate::registry::Lookup;

/// Resources quota never counts (upstream `install.DefaultIgnoredResources`: virtual kinds and
/// events).
const IGNORED: &[(&str, &str)] = &[
    ("", "bindings"),
    ("", "componentstatuses"),
    ("authentication.k8s.io", "tokenreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "localsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("", "events"),
    ("events.k8s.io", "events"),
];

/// One quota to store with the admitted object: its storage key, its new bytes and the
/// revision it must still be at.
pub type Charge = (String, Vec<u8>, i64);

/// What an admitted write is charged, and the namespace's quota lock, to hold until the write
/// is done.
#[derive(Default)]
pub struct Charges {
    pub charges: Vec<Charge>,
    pub guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

/// Checks the write against the namespace's quotas and returns what to charge (nothing when
/// no quota counts it). `old` is the stored object on an update.
pub async fn admit(
    lookup: &dyn Lookup,
    req: &Request<'_>,
    object: &Value,
    old: Option<&Value>,
) -> ApiResult<Charges> {
    let Some(namespace) = req.namespace else {
        return Ok(Charges::default());
    };
    let mut current = Charges::default();
    current.charges = charge(lookup, req, namespace, object, old, &mut current.guard).await?;
    Ok(current)
}

async fn charge(
    lookup: &dyn Lookup,
    req: &Request<'_>,
    namespace: &str,
    object: &Value,
    old: Option<&Value>,
    guard: &mut Option<tokio::sync::OwnedMutexGuard<()>>,
) -> ApiResult<Vec<Charge>> {
    if req.sub.is_some()
        || !lookup.admission_enabled("ResourceQuota")
        || IGNORED.contains(&(req.info.group, req.info.resource))
    {
        return Ok(vec![]);
    }
    let operation = match req.operation {
        Operation::Create => quota::Operation::Create,
        Operation::Update => quota::Operation::Update,
        _ => return Ok(vec![]),
    };
    let evaluator = Evaluator::for_resource(req.info.group, req.info.resource);
    if !evaluator.handles(operation, old, object) {
        return Ok(vec![]);
    }
    let current = lookup.list_current("", "resourcequotas", namespace).await?;
    *guard = current.guard;
    let quotas = current.items;
    if quotas.is_empty() {
        return Ok(vec![]);
    }
    let now = jiff::Timestamp::now();
    let quotas: Vec<(Quota, &Value, i64)> = quotas
        .iter()
        .map(|(q, rev)| (Quota::from_json(q), q.as_ref(), *rev))
        .collect();
    let refuse = |why: String| forbidden(req.info.group, req.info.resource, req.name, &why);

    // The quotas that count this object (upstream `CheckRequest`'s first loop).
    let mut interesting: Vec<usize> = Vec::new();
    for (i, (quota, _, _)) in quotas.iter().enumerate() {
        if !quota::matches(quota, &evaluator, object) {
            continue;
        }
        let limited = evaluator.matching_resources(&quota.hard_names());
        if let Err(why) = evaluator.constraints(&limited, object) {
            return Err(refuse(format!("failed quota: {}: {why}", quota.name)));
        }
        if limited.iter().any(|r| !quota.used.contains_key(r)) {
            return Err(refuse(format!(
                "status unknown for quota: {}, resources: {}",
                quota.name,
                quota::pretty_names(&limited)
            )));
        }
        interesting.push(i);
    }
    if interesting.is_empty() {
        return Ok(vec![]);
    }
    let usage = evaluator.usage(object, now);
    let negative = quota::negative(&usage);
    if !negative.is_empty() {
        return Err(refuse(format!(
            "quota usage is negative for resource(s): {}",
            quota::pretty_names(&negative)
        )));
    }
    let mut charges = Vec::new();
    for i in interesting {
        let (quota, stored, revision) = &quotas[i];
        // On an update, only what grows is charged, and only if the old object counted here
        // too (otherwise all of it is new to this quota).
        let delta: ResourceList = match old {
            Some(old) if quota::matches(quota, &evaluator, old) => {
                quota::subtract_non_negative(&usage, &evaluator.usage(old, now))
            }
            _ => usage.clone(),
        };
        let delta = quota::remove_zeros(&delta);
        if delta.is_empty() {
            continue;
        }
        let requested = quota::mask(&delta, &quota.hard_names());
        if requested.is_empty() {
            continue;
        }
        let new_used = quota::add(&quota.used, &requested);
        let requested_names: Vec<String> = requested.keys().cloned().collect();
        let (allowed, exceeded) =
            quota::less_than_or_equal(&quota::mask(&new_used, &requested_names), &quota.hard);
        if !allowed {
            return Err(refuse(format!(
                "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                quota.name,
                quota::pretty(&quota::mask(&requested, &exceeded)),
                quota::pretty(&quota::mask(&quota.used, &exceeded)),
                quota::pretty(&quota::mask(&quota.hard, &exceeded)),
            )));
        }
        let mut updated: Value = (*stored).clone();
        updated["status"]["used"] = quota::to_json(&new_used);
        let key = crate::resources::RESOURCES
            .iter()
            .find(|r| r.group.is_empty() && r.resource == "resourcequotas")
            .ok_or_else(|| ApiError::internal("resourcequotas are not served"))?
            .key(Some(namespace), &quota.name);
        charges.push((key, crate::storage::encode_value(&updated), *revision));
    }
    Ok(charges)
}
