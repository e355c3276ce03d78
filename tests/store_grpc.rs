//! The store's etcd v3 gRPC API, driven by the `etcd-client` crate: every RPC skiff serves.

mod common;

use std::time::Duration;

use common::{grpc_code, StoreProcess};
use etcd_client::{
    Compare, CompareOp, DeleteOptions, EventType, GetOptions, LeaseTimeToLiveOptions, PutOptions,
    SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse, WatchFilterType, WatchOptions,
};
use tonic::Code;

async fn next_events(stream: &mut etcd_client::WatchStream) -> etcd_client::WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("watch response within 10s")
        .unwrap()
        .expect("stream open")
}

#[tokio::test]
async fn kv_range_put_delete_txn_compact() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path());
    let mut c = store.client().await;

    let r = c.put("a", "1", None).await.unwrap();
    assert_eq!(r.header().unwrap().revision(), 2);
    let r = c
        .put("a", "2", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(r.prev_key().unwrap().value(), b"1");
    for k in ["b", "c", "d"] {
        c.put(k, k, None).await.unwrap();
    }
    let g = c.get("a", None).await.unwrap();
    let kv = &g.kvs()[0];
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (2, 3, 2)
    );
    let header = g.header().unwrap();
    assert_ne!(header.cluster_id(), 0);
    assert_ne!(header.member_id(), 0);
    assert_eq!(header.revision(), 6);

    // Historical read, limit + more, count_only, keys_only, from-key, sort.
    assert_eq!(
        c.get("a", Some(GetOptions::new().with_revision(2)))
            .await
            .unwrap()
            .kvs()[0]
            .value(),
        b"1"
    );
    let g = c
        .get("a", Some(GetOptions::new().with_range("z").with_limit(2)))
        .await
        .unwrap();
    assert!(g.more());
    assert_eq!((g.count(), g.kvs().len()), (4, 2));
    let g = c
        .get(
            "b",
            Some(GetOptions::new().with_from_key().with_count_only()),
        )
        .await
        .unwrap();
    assert_eq!((g.count(), g.kvs().len()), (3, 0));
    let g = c
        .get("a", Some(GetOptions::new().with_prefix().with_keys_only()))
        .await
        .unwrap();
    assert!(g.kvs()[0].value().is_empty());
    let g = c
        .get(
            "",
            Some(
                GetOptions::new()
                    .with_all_keys()
                    .with_sort(SortTarget::Mod, SortOrder::Descend),
            ),
        )
        .await
        .unwrap();
    let keys: Vec<_> = g
        .kvs()
        .iter()
        .map(|kv| kv.key_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["d", "c", "b", "a"]);
    let g = c
        .get(
            "a",
            Some(GetOptions::new().with_all_keys().with_min_mod_revision(5)),
        )
        .await
        .unwrap();
    assert_eq!(g.kvs().len(), 2);

    let d = c
        .delete(
            "c",
            Some(DeleteOptions::new().with_range("e").with_prev_key()),
        )
        .await
        .unwrap();
    assert_eq!(d.deleted(), 2);
    assert_eq!(d.prev_kvs().len(), 2);

    // kube-apiserver's optimistic update: If mod_revision == R Then Put Else Get.
    let txn = |rev| {
        Txn::new()
            .when([Compare::mod_revision("a", CompareOp::Equal, rev)])
            .and_then([TxnOp::put("a", "3", None)])
            .or_else([TxnOp::get("a", None)])
    };
    let t = c.txn(txn(3)).await.unwrap();
    assert!(t.succeeded());
    let t = c.txn(txn(3)).await.unwrap();
    assert!(!t.succeeded());
    match &t.op_responses()[0] {
        TxnOpResponse::Get(g) => assert_eq!(g.kvs()[0].value(), b"3"),
        other => panic!("unexpected {other:?}"),
    }
    let t = c
        .txn(
            Txn::new()
                .when([
                    Compare::value("a", CompareOp::Equal, "3"),
                    Compare::version("zz", CompareOp::Equal, 0),
                ])
                .and_then([
                    TxnOp::put("n1", "x", None),
                    TxnOp::txn(Txn::new().and_then([TxnOp::put("n2", "y", None)])),
                ]),
        )
        .await
        .unwrap();
    assert!(t.succeeded());
    assert_eq!(c.get("n2", None).await.unwrap().kvs()[0].value(), b"y");
    let err = c
        .txn(Txn::new().and_then([TxnOp::put("x", "1", None), TxnOp::put("x", "2", None)]))
        .await
        .unwrap_err();
    assert_eq!(grpc_code(&err), Code::InvalidArgument);

    let rev = c.get("a", None).await.unwrap().header().unwrap().revision();
    c.compact(rev - 1, None).await.unwrap();
    let err = c
        .get("a", Some(GetOptions::new().with_revision(2)))
        .await
        .unwrap_err();
    assert_eq!(grpc_code(&err), Code::OutOfRange);
    assert!(err.to_string().contains("compacted"), "{err}");
    let err = c
        .get("a", Some(GetOptions::new().with_revision(rev + 100)))
        .await
        .unwrap_err();
    assert_eq!(grpc_code(&err), Code::OutOfRange);
    let err = c.compact(rev + 100, None).await.unwrap_err();
    assert_eq!(grpc_code(&err), Code::OutOfRange);
}

#[tokio::test]
async fn bad_input_gets_clear_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path());
    let mut c = store.client().await;
    let err = c.put("", "v", None).await.unwrap_err();
    assert_eq!(grpc_code(&err), Code::InvalidArgument);
    assert!(err.to_string().contains("key is not provided"));
    // Above --max-request-bytes (1.5 MiB): InvalidArgument, like etcd.
    let err = c
        .put("big", vec![0u8; 1600 * 1024], None)
        .await
        .unwrap_err();
    assert_eq!(grpc_code(&err), Code::InvalidArgument);
    assert!(err.to_string().contains("request is too large"));
    // Above the gRPC limit: ResourceExhausted.
    let err = c
        .put("bigger", vec![0u8; 3 * 1024 * 1024], None)
        .await
        .unwrap_err();
    assert_eq!(grpc_code(&err), Code::ResourceExhausted);
    let err = c
        .put("k", "v", Some(PutOptions::new().with_lease(12345)))
        .await
        .unwrap_err();
    assert_eq!(grpc_code(&err), Code::NotFound);
    let err = c
        .put("missing", "", Some(PutOptions::new().with_ignore_value()))
        .await
        .unwrap_err();
    assert_eq!(grpc_code(&err), Code::InvalidArgument);
    // Nothing above was written.
    let g = c
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .unwrap();
    assert_eq!(g.count(), 0);
    assert_eq!(g.header().unwrap().revision(), 1);
    // The store still serves.
    c.put("ok", "1", None).await.unwrap();
}

#[tokio::test]
async fn watch_streams_history_filters_cancel_progress_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path());
    let mut c = store.client().await;
    c.put("w/a", "1", None).await.unwrap(); // rev 2
    c.put("w/a", "2", None).await.unwrap(); // rev 3
    c.delete("w/a", None).await.unwrap(); // rev 4
    c.put("other", "x", None).await.unwrap(); // rev 5

    // From an old revision with prev_kv: the full history of the prefix.
    let mut s = c
        .watch(
            "w/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(2)
                    .with_prev_key(),
            ),
        )
        .await
        .unwrap();
    let created = next_events(&mut s).await;
    assert!(created.created());
    let watch_id = created.watch_id();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let r = next_events(&mut s).await;
        for e in r.events() {
            seen.push((
                e.event_type(),
                e.kv().unwrap().mod_revision(),
                e.prev_kv().map(|p| p.value().to_vec()),
            ));
        }
    }
    assert_eq!(
        seen,
        vec![
            (EventType::Put, 2, None),
            (EventType::Put, 3, Some(b"1".to_vec())),
            (EventType::Delete, 4, Some(b"2".to_vec())),
        ]
    );
    // Live events.
    c.put("w/b", "live", None).await.unwrap();
    let r = next_events(&mut s).await;
    assert_eq!(r.events()[0].kv().unwrap().value(), b"live");
    // Progress request: an empty response at the current revision, for all watchers (-1).
    s.request_progress().await.unwrap();
    let r = next_events(&mut s).await;
    assert!(r.events().is_empty());
    assert_eq!(r.watch_id(), -1);
    assert_eq!(r.header().unwrap().revision(), 6);
    // Cancel.
    s.cancel(watch_id).await.unwrap();
    let r = next_events(&mut s).await;
    assert!(r.canceled());

    // Filters: no puts, only deletes.
    let mut f = c
        .watch(
            "f",
            Some(WatchOptions::new().with_filters([WatchFilterType::NoPut])),
        )
        .await
        .unwrap();
    assert!(next_events(&mut f).await.created());
    c.put("f", "1", None).await.unwrap();
    c.delete("f", None).await.unwrap();
    let r = next_events(&mut f).await;
    assert_eq!(r.events().len(), 1);
    assert_eq!(r.events()[0].event_type(), EventType::Delete);

    // A start revision below the compaction point is cancelled with compact_revision set.
    let rev = c.get("f", None).await.unwrap().header().unwrap().revision();
    c.compact(rev, None).await.unwrap();
    let mut old = c
        .watch(
            "w/",
            Some(WatchOptions::new().with_prefix().with_start_revision(2)),
        )
        .await
        .unwrap();
    let mut r = next_events(&mut old).await;
    if r.created() && !r.canceled() {
        r = next_events(&mut old).await;
    }
    assert!(r.canceled());
    assert_eq!(r.compact_revision(), rev);
}

#[tokio::test]
async fn many_watchers_each_get_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path());
    let mut c = store.client().await;
    let mut streams = Vec::new();
    for _ in 0..50 {
        let mut s = c
            .watch("m/", Some(WatchOptions::new().with_prefix()))
            .await
            .unwrap();
        assert!(next_events(&mut s).await.created());
        streams.push(s);
    }
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let mut c = c.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    c.put(format!("m/{w}/{i}"), "v", None).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    for s in &mut streams {
        let mut revs = Vec::new();
        while revs.len() < 200 {
            let r = next_events(s).await;
            revs.extend(r.events().iter().map(|e| e.kv().unwrap().mod_revision()));
        }
        let expected: Vec<i64> = (2..202).collect();
        assert_eq!(revs, expected, "every event once, in revision order");
    }
}

#[tokio::test]
async fn leases_grant_keepalive_ttl_list_revoke_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path());
    let mut c = store.client().await;
    let lease = c.lease_grant(60, None).await.unwrap();
    assert_eq!(lease.ttl(), 60);
    let id = lease.id();
    c.put("l/a", "1", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    c.put("l/b", "2", Some(PutOptions::new().with_lease(id)))
        .await
        .unwrap();
    let ttl = c
        .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .unwrap();
    assert_eq!(ttl.granted_ttl(), 60);
    assert!(ttl.ttl() > 50 && ttl.ttl() <= 60);
    assert_eq!(ttl.keys().len(), 2);
    let leases = c.leases().await.unwrap();
    assert_eq!(
        leases.leases().iter().map(|l| l.id()).collect::<Vec<_>>(),
        vec![id]
    );
    let (mut keeper, mut responses) = c.lease_keep_alive(id).await.unwrap();
    keeper.keep_alive().await.unwrap();
    let resp = responses.message().await.unwrap().unwrap();
    assert_eq!((resp.id(), resp.ttl()), (id, 60));

    // Explicit revoke deletes the keys (and watchers see DELETE events).
    let mut w = c
        .watch("l/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(next_events(&mut w).await.created());
    c.lease_revoke(id).await.unwrap();
    let r = next_events(&mut w).await;
    assert_eq!(r.events().len(), 2);
    assert!(r
        .events()
        .iter()
        .all(|e| e.event_type() == EventType::Delete));
    assert_eq!(
        c.get("l/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap()
            .count(),
        0
    );
    assert_eq!(c.lease_time_to_live(id, None).await.unwrap().ttl(), -1);
    let err = c.lease_revoke(id).await.unwrap_err();
    assert_eq!(grpc_code(&err), Code::NotFound);

    // Expiry: a 1s lease without keep-alives deletes its key.
    let short = c.lease_grant(1, None).await.unwrap().id();
    c.put("l/short", "x", Some(PutOptions::new().with_lease(short)))
        .await
        .unwrap();
    let r = next_events(&mut w).await;
    assert_eq!(r.events()[0].event_type(), EventType::Put);
    let r = next_events(&mut w).await;
    assert_eq!(r.events()[0].event_type(), EventType::Delete);
    assert_eq!(c.get("l/short", None).await.unwrap().count(), 0);

    // Granting a given id twice fails.
    c.lease_grant(10, Some(etcd_client::LeaseGrantOptions::new().with_id(777)))
        .await
        .unwrap();
    let err = c
        .lease_grant(10, Some(etcd_client::LeaseGrantOptions::new().with_id(777)))
        .await
        .unwrap_err();
    assert_eq!(grpc_code(&err), Code::FailedPrecondition);
}

#[tokio::test]
async fn maintenance_and_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path());
    let mut c = store.client().await;
    for i in 0..100 {
        c.put(format!("k{i}"), vec![b'v'; 1000], None)
            .await
            .unwrap();
    }
    let status = c.status().await.unwrap();
    assert!(status.db_size() > 100_000);
    assert_eq!(status.leader(), status.header().unwrap().member_id());
    assert!(status.raft_index() >= 100);

    let h1 = c.hash_kv(0).await.unwrap();
    let h2 = c.hash_kv(0).await.unwrap();
    assert_eq!(h1.hash(), h2.hash());
    c.put("k0", "changed", None).await.unwrap();
    assert_ne!(c.hash_kv(0).await.unwrap().hash(), h1.hash());
    let at_old = c.hash_kv(h1.header().unwrap().revision()).await.unwrap();
    assert_eq!(
        at_old.hash(),
        h1.hash(),
        "hash at an old revision is stable"
    );
    c.hash().await.unwrap();

    let mut snap = c.snapshot().await.unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = snap.message().await.unwrap() {
        bytes.extend_from_slice(chunk.blob());
    }
    assert_eq!(bytes.len() % 512, 32, "etcdctl 3.4's snapshot size check");

    // Compaction + defragment shrink the data on disk.
    for i in 0..100 {
        c.put(format!("k{i}"), "small", None).await.unwrap();
    }
    let rev = c.status().await.unwrap().header().unwrap().revision();
    let before = c.status().await.unwrap().db_size();
    c.compact(rev, None).await.unwrap();
    c.defragment().await.unwrap();
    let after = c.status().await.unwrap().db_size();
    assert!(after < before / 4, "db size {before} -> {after}");
    assert_eq!(c.get("k5", None).await.unwrap().kvs()[0].value(), b"small");

    assert!(c
        .alarm(
            etcd_client::AlarmAction::Get,
            etcd_client::AlarmType::None,
            None
        )
        .await
        .unwrap()
        .alarms()
        .is_empty());
    let members = c.member_list().await.unwrap();
    assert_eq!(members.members().len(), 1);
    assert_eq!(
        members.members()[0].client_urls(),
        std::slice::from_ref(&store.endpoint)
    );
    let err = c
        .member_add(["http://127.0.0.1:1"], None)
        .await
        .unwrap_err();
    assert_eq!(grpc_code(&err), Code::Unimplemented);
}

#[tokio::test]
async fn progress_notifications_auto_compaction_and_space_reclaimed() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start_with(
        dir.path(),
        common::free_port(),
        &[
            "--experimental-watch-progress-notify-interval",
            "1s",
            "--auto-compaction-retention",
            "2s",
        ],
    );
    let mut c = store.client().await;
    // Long history of few keys.
    for i in 0..2000 {
        c.put(format!("h/{}", i % 10), vec![b'x'; 500], None)
            .await
            .unwrap();
    }
    // 2,000 versions of ~570 bytes were written; only the 10 newest must stay once compacted.
    let written = 2000 * 570;

    // An idle watcher that asked for progress notifications gets one, at the current revision.
    let rev = c
        .get("h/0", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let mut w = c
        .watch("idle", Some(WatchOptions::new().with_progress_notify()))
        .await
        .unwrap();
    assert!(next_events(&mut w).await.created());
    let r = next_events(&mut w).await;
    assert!(r.events().is_empty() && !r.canceled());
    assert_eq!(r.header().unwrap().revision(), rev);

    // Periodic compaction with a 2s retention drops the old history and the memory it held.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let compacted = c
            .get("h/0", Some(GetOptions::new().with_revision(2)))
            .await
            .is_err();
        let now_in_use = c.status().await.unwrap().raft_used_db_size();
        if compacted && now_in_use < 20_000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "history not reclaimed after 20s: compacted={compacted}, {written} bytes written, {now_in_use} in use"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        c.get("h/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap()
            .count(),
        10
    );
}
