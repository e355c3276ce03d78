//! get and list: one object from the store; a list from the watch cache (resourceVersion=0 or
//! NotOlderThan) or from the store with label and field selectors, limit and continue tokens.

use base64::Engine;
use serde_json::{json, Value};

use super::{parse_rv, ApiServer, Ctx, Target};
use crate::error::{ApiError, ApiResult};
use crate::response::List;
use crate::selectors::{FieldSelector, LabelSelector};

impl ApiServer {
    pub async fn get(&self, target: &Target, ctx: &Ctx) -> ApiResult<Value> {
        if let Some(objects) = self.computed(target.info, ctx).await {
            let name = target.name();
            return objects
                .into_iter()
                .find(|o| o["metadata"]["name"] == name)
                .ok_or_else(|| {
                    ApiError::not_found(
                        crate::error::Kind {
                            group: target.info.group,
                            resource: target.info.singular,
                            kind: target.info.kind,
                        },
                        name,
                    )
                });
        }
        let stored = self
            .storage
            .get(&target.key())
            .await?
            .ok_or_else(|| ApiError::not_found(target.info, target.name()))?;
        Ok(stored.object)
    }

    /// A list with selectors and paging; `response::list` shapes it.
    pub async fn list(&self, target: &Target, ctx: &Ctx) -> ApiResult<List> {
        let info = target.info;
        let labels = LabelSelector::parse(ctx.param("labelSelector").unwrap_or_default())?;
        let fields =
            FieldSelector::for_resource(info, ctx.param("fieldSelector").unwrap_or_default())?;
        if let Some(objects) = self.computed(info, ctx).await {
            let items = objects
                .into_iter()
                .filter(|o| labels.matches(o) && fields.matches(o))
                .collect();
            return Ok(List {
                items,
                revision: 0,
                next: None,
                remaining: None,
            });
        }
        let limit: i64 = match ctx.param("limit") {
            None | Some("") => 0,
            Some(l) => l
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        };
        let prefix = info.namespace_prefix(target.namespace.as_deref());
        let rv = ctx.param("resourceVersion").unwrap_or_default();
        let rv_match = ctx.param("resourceVersionMatch").unwrap_or_default();
        let continue_token = ctx.param("continue").filter(|c| !c.is_empty());
        let matches = |o: &Value| labels.matches(o) && fields.matches(o);

        // Upstream counts what follows a page only when no selector filters the items.
        let exact = labels.is_empty() && fields.is_empty();
        let mut remaining = None;
        let (items, revision, next): (Vec<Value>, i64, Option<String>) = if continue_token.is_none()
            && (rv == "0" || (!rv.is_empty() && rv_match == "NotOlderThan"))
        {
            // Served from the watch cache (any revision at least as new as the one given).
            let cacher = self.caches.get(info).await?;
            if rv != "0" {
                let n = parse_rv(rv)?;
                cacher.wait_for(n).await?;
            }
            let (objects, revision) = cacher.snapshot(&prefix);
            (
                objects
                    .iter()
                    .filter(|o| matches(o))
                    .map(|o| (**o).clone())
                    .collect(),
                revision,
                None,
            )
        } else {
            let (mut start, mut revision) = match continue_token {
                Some(token) => decode_continue(token, &prefix)?,
                None if !rv.is_empty() && rv_match == "Exact" => (None, parse_rv(rv)?),
                None => (None, 0),
            };
            // A token from a compacted list's 410 (rv -1) goes on at the latest revision.
            if revision < 0 {
                revision = 0;
            }
            // One key holds the object only when the namespace is known (or there is none): a
            // list across all namespaces reads them all.
            let one_key = !info.namespaced || target.namespace.is_some();
            if let (Some(name), None, true) = (fields.exact_name(), &start, one_key) {
                // metadata.name=x reads one key (kubectl delete/rollout status wait this way).
                let key = format!("{prefix}{name}");
                let page = self.storage.list(&key, None, revision, 1).await?;
                let items: Vec<Value> = page
                    .items
                    .into_iter()
                    .filter(|s| s.key == key)
                    .map(|s| s.object)
                    .filter(|o| matches(o))
                    .collect();
                (items, page.revision, None)
            } else {
                let mut items = Vec::new();
                let mut next = None;
                loop {
                    let want = if limit > 0 {
                        limit - items.len() as i64
                    } else {
                        0
                    };
                    let page = match self
                        .storage
                        .list(&prefix, start.as_deref(), revision, want.max(0))
                        .await
                    {
                        Err(e) if e.code == 410 && continue_token.is_some() => {
                            return Err(compacted_continue(start.as_deref().unwrap_or(&prefix)))
                        }
                        page => page?,
                    };
                    revision = page.revision;
                    items.extend(
                        page.items
                            .into_iter()
                            .map(|s| s.object)
                            .filter(|o| matches(o)),
                    );
                    match page.next_key {
                        Some(k) if limit > 0 && (items.len() as i64) < limit => start = Some(k),
                        Some(k) => {
                            next = Some(encode_continue(&k, revision));
                            remaining = exact.then_some(page.remaining);
                            break;
                        }
                        None => break,
                    }
                }
                (items, revision, next)
            }
        };
        Ok(List {
            items,
            revision,
            next,
            remaining,
        })
    }
}

impl ApiServer {
    /// A computed resource's objects (`Strategy::computed`), with its deprecation warning.
    async fn computed(
        &self,
        info: &crate::resources::ResourceInfo,
        ctx: &Ctx,
    ) -> Option<Vec<Value>> {
        let probes = crate::registry::Probes {
            storage: self.storage.clone(),
            insecure_tls: self.kubelet_client.insecure_tls(),
        };
        let objects = info.strategy.computed(&probes)?.await;
        if let Some(warning) = info.strategy.deprecated() {
            ctx.warnings.lock().push(warning.to_string());
        }
        Some(objects)
    }
}

fn encode_continue(next_key: &str, revision: i64) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": next_key});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

/// A continue token whose revision was compacted: 410 with a token that continues from the same
/// key at the latest revision (upstream's `handleCompactedErrorForPaging`, and its words).
fn compacted_continue(key: &str) -> ApiError {
    let mut e = ApiError::expired(
        "The provided continue parameter is too old to display a consistent list result. You \
         can start a new list without the continue parameter, or use the continue token in this \
         response to retrieve the remainder of the results. Continuing with the provided token \
         results in an inconsistent list - objects that were created, modified, or deleted \
         between the time the first chunk was returned and now may show up in the list.",
    );
    e.continue_token = Some(encode_continue(key, -1));
    e
}

fn decode_continue(token: &str, prefix: &str) -> ApiResult<(Option<String>, i64)> {
    let bad = || ApiError::bad_request("continue key is not valid: the token is malformed");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let start = v["start"].as_str().ok_or_else(bad)?.to_string();
    let rv = v["rv"].as_i64().ok_or_else(bad)?;
    if !start.starts_with(prefix) {
        return Err(ApiError::bad_request(
            "continue key is not valid: the token does not belong to this list",
        ));
    }
    Ok((Some(start), rv))
}
