//! The store's history compaction, as kube-apiserver does it (`--etcd-compaction-interval`,
//! default 5 minutes; k8s.io/apiserver `storage/etcd3/compact.go`): every interval, compact to
//! the revision seen one interval earlier, so between 5 and 10 minutes of history stay — enough
//! for watches to resume and lists to page, and no more. Several API servers on one etcd take
//! turns through a compare-and-swap on the version of `compact_rev_key` (the same key upstream
//! uses, so skiff and kube-apiservers on one etcd cooperate): only the one whose swap succeeds
//! compacts, and the others adopt the winner's clock.
//!
//! Continue tokens and `resourceVersion`s older than the compacted revision then get upstream's
//! `410 Expired` (a continue token's answer carries a fresh token for an inconsistent list, as
//! the conformance suite's chunking spec expects).

use std::time::Duration;

use etcd_client::{Compare, CompareOp, Txn, TxnOp};

use crate::storage::Storage;

const COMPACT_REV_KEY: &str = "compact_rev_key";

/// Runs forever (a spawned task): one compaction attempt per `interval`; 0 turns it off.
pub async fn run(storage: Storage, interval: Duration) {
    if interval.is_zero() {
        return;
    }
    let (mut time, mut rev) = (0i64, 0i64);
    loop {
        tokio::time::sleep(interval).await;
        match compact(&storage, time, rev).await {
            Ok(next) => (time, rev) = next,
            Err(e) => tracing::warn!("compacting the store: {e}"),
        }
    }
}

/// One round: claims the turn if `compact_rev_key`'s version is still `time`, and then
/// compacts to `rev` (the revision the previous round saw). Returns the next (time, rev).
async fn compact(storage: &Storage, time: i64, rev: i64) -> anyhow::Result<(i64, i64)> {
    let mut client = storage.client();
    let txn = Txn::new()
        .when([Compare::version(COMPACT_REV_KEY, CompareOp::Equal, time)])
        .and_then([TxnOp::put(COMPACT_REV_KEY, rev.to_string(), None)])
        .or_else([TxnOp::get(COMPACT_REV_KEY, None)]);
    let resp = client.txn(txn).await?;
    let current = resp.header().map_or(0, |h| h.revision());
    if !resp.succeeded() {
        // Another API server compacted this round: follow its clock.
        let theirs = resp
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                etcd_client::TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.version()),
                _ => None,
            })
            .unwrap_or(time);
        return Ok((theirs, current));
    }
    // Nothing is compacted on the first round: `rev` is from before this server started.
    if rev > 0 {
        client.compact(rev, None).await?;
        tracing::info!("compacted the store to revision {rev}");
    }
    Ok((time + 1, current))
}
