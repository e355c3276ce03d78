//! controllerRef ownership (upstream `controller_ref_manager.go`): which dependents an owner
//! claims, adoption of matching orphans and release of dependents that stopped matching.
//!
//! Both patches are strategic merge patches on `metadata.ownerReferences` (a list merged on
//! `uid`) carrying the dependent's own uid, so a patch never lands on a dependent that was
//! deleted and recreated under the same name in between.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::selector::Selector;

/// The ownerReference a controller puts on what it creates or adopts.
pub fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The owner's view of its candidate dependents.
pub struct Claim<D> {
    /// Controlled and matching: the owner's.
    pub owned: Vec<Arc<D>>,
    /// Orphans that match: the owner's once adopted.
    pub adopt: Vec<Arc<D>>,
    /// Controlled but no longer matching: to be let go.
    pub release: Vec<Arc<D>>,
}

/// Sorts `controlled` (dependents whose controllerRef is the owner) and `orphans` (dependents of
/// the namespace with no controller) by the owner's selector. An owner being deleted neither
/// adopts nor releases (upstream: the garbage collector is about to act on it).
pub fn classify<D: Resource>(
    controlled: Vec<Arc<D>>,
    orphans: Vec<Arc<D>>,
    selector: &Selector,
    owner_deleting: bool,
) -> Claim<D> {
    let mut claim = Claim {
        owned: Vec::new(),
        adopt: Vec::new(),
        release: Vec::new(),
    };
    for d in controlled {
        if selector.matches(d.meta().labels.as_ref()) {
            claim.owned.push(d);
        } else if !owner_deleting {
            claim.release.push(d);
        }
    }
    if !owner_deleting {
        for d in orphans {
            if d.meta().deletion_timestamp.is_none() && selector.matches(d.meta().labels.as_ref()) {
                claim.adopt.push(d);
            }
        }
    }
    claim
}

/// Adopts `dependent`; `Ok(false)` when it is gone.
pub async fn adopt<D>(
    api: &Api<D>,
    dependent: &D,
    owner: OwnerReference,
) -> Result<bool, kube::Error>
where
    D: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    let patch = serde_json::json!({
        "metadata": {"ownerReferences": [owner], "uid": dependent.meta().uid}
    });
    match api
        .patch(
            &dependent.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 || e.code == 422 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes the owner from `dependent`'s ownerReferences; a dependent that is gone is fine.
pub async fn release<D>(api: &Api<D>, dependent: &D, owner_uid: &str) -> Result<(), kube::Error>
where
    D: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    let patch = serde_json::json!({
        "metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": owner_uid}],
            "uid": dependent.meta().uid,
        }
    });
    match api
        .patch(
            &dependent.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 || e.code == 422 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Upstream's `RecheckDeletionTimestamp`: before adopting, a live read confirms the owner still
/// exists under the same uid and is not being deleted (the cache may be behind).
pub async fn can_adopt<K>(api: &Api<K>, owner: &K) -> Result<bool, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
{
    match api.get_opt(&owner.name_any()).await? {
        Some(fresh) => {
            Ok(fresh.meta().uid == owner.meta().uid && fresh.meta().deletion_timestamp.is_none())
        }
        None => Ok(false),
    }
}
