//! Durability of `skiff store`: kill -9 under load, restart, snapshot restore, damage detection.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::StoreProcess;
use etcd_client::{EventType, GetOptions, PutOptions, WatchOptions};

/// Everything under `prefix`: key -> (value, create, mod, version).
async fn dump(
    c: &mut etcd_client::Client,
    prefix: &str,
) -> BTreeMap<String, (Vec<u8>, i64, i64, i64)> {
    let g = c
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    g.kvs()
        .iter()
        .map(|kv| {
            (
                kv.key_str().unwrap().to_string(),
                (
                    kv.value().to_vec(),
                    kv.create_revision(),
                    kv.mod_revision(),
                    kv.version(),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_concurrent_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    // A small checkpoint threshold so crashes also land inside checkpoints.
    let extra = ["--snapshot-wal-bytes", "200000"];
    let mut store = StoreProcess::start_with(dir.path(), port, &extra);
    // key -> mod_revision of every acknowledged put; every event a watcher saw.
    let acked: Arc<Mutex<BTreeMap<String, i64>>> = Default::default();
    let watched: Arc<Mutex<Vec<(String, i64)>>> = Default::default();
    for round in 0..8 {
        let mut c = store.client().await;
        let start_rev = c.get("x", None).await.unwrap().header().unwrap().revision();
        let mut w = c
            .watch(
                "crash/",
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(start_rev + 1),
                ),
            )
            .await
            .unwrap();
        let seen = watched.clone();
        let watcher = tokio::spawn(async move {
            while let Ok(Some(r)) = w.message().await {
                for e in r.events() {
                    let kv = e.kv().unwrap();
                    seen.lock()
                        .unwrap()
                        .push((kv.key_str().unwrap().to_string(), kv.mod_revision()));
                }
            }
        });
        let writers: Vec<_> = (0..16)
            .map(|w| {
                let mut c = c.clone();
                let acked = acked.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        let key = format!("crash/{round}/{w}/{i}");
                        match c
                            .put(key.clone(), format!("value-{round}-{w}-{i}"), None)
                            .await
                        {
                            Ok(r) => {
                                acked
                                    .lock()
                                    .unwrap()
                                    .insert(key, r.header().unwrap().revision());
                            }
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300 + 100 * round)).await;
        store = store.restart_after_kill9();
        for w in writers {
            w.await.unwrap();
        }
        watcher.abort();

        let mut c = store.client().await;
        let all = dump(&mut c, "crash/").await;
        let acked = acked.lock().unwrap().clone();
        assert!(!acked.is_empty());
        eprintln!(
            "round {round}: {} acknowledged writes, {} keys after restart",
            acked.len(),
            all.len()
        );
        for (key, rev) in &acked {
            let Some((value, create, modrev, version)) = all.get(key) else {
                panic!("round {round}: acknowledged write {key} (revision {rev}) lost");
            };
            assert_eq!(modrev, rev, "{key}");
            assert_eq!((*create, *version), (*rev, 1));
            assert!(value.starts_with(b"value-"));
        }
        // Watchers only ever saw durable writes: everything they saw survived.
        for (key, rev) in watched.lock().unwrap().iter() {
            assert_eq!(
                all.get(key).map(|v| v.2),
                Some(*rev),
                "watched event {key}@{rev} lost"
            );
        }
        // Revisions are dense and consistent: one revision per surviving put.
        let current = c.get("x", None).await.unwrap().header().unwrap().revision();
        assert_eq!(current, 1 + all.len() as i64, "round {round}");
        let revs: std::collections::BTreeSet<i64> = all.values().map(|v| v.2).collect();
        assert_eq!(revs.len(), all.len());
        // A watch resumes from any revision after the restart with the full history.
        let mut w = c
            .watch(
                "crash/",
                Some(WatchOptions::new().with_prefix().with_start_revision(2)),
            )
            .await
            .unwrap();
        let mut got = 0i64;
        let mut last = 1;
        while got < current - 1 {
            let r = tokio::time::timeout(Duration::from_secs(10), w.message())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            for e in r.events() {
                assert_eq!(e.event_type(), EventType::Put);
                let rev = e.kv().unwrap().mod_revision();
                assert_eq!(rev, last + 1, "history has no gaps");
                last = rev;
                got += 1;
            }
        }
    }
}

#[tokio::test]
async fn leases_survive_a_crash_and_resume_their_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path());
    let mut c = store.client().await;
    let long = c.lease_grant(100, None).await.unwrap().id();
    let short = c.lease_grant(2, None).await.unwrap().id();
    c.put("lease/long", "1", Some(PutOptions::new().with_lease(long)))
        .await
        .unwrap();
    c.put(
        "lease/short",
        "1",
        Some(PutOptions::new().with_lease(short)),
    )
    .await
    .unwrap();
    let store = store.restart_after_kill9();
    let mut c = store.client().await;
    let mut ids: Vec<i64> = c
        .leases()
        .await
        .unwrap()
        .leases()
        .iter()
        .map(|l| l.id())
        .collect();
    ids.sort();
    let mut want = vec![long, short];
    want.sort();
    assert_eq!(ids, want);
    let ttl = c
        .lease_time_to_live(
            long,
            Some(etcd_client::LeaseTimeToLiveOptions::new().with_keys()),
        )
        .await
        .unwrap();
    assert_eq!(ttl.granted_ttl(), 100);
    assert!(ttl.ttl() > 90);
    assert_eq!(ttl.keys(), [b"lease/long".to_vec()]);
    // The short lease still expires after the restart and takes its key with it.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(c.get("lease/short", None).await.unwrap().count(), 0);
    assert_eq!(c.get("lease/long", None).await.unwrap().count(), 1);
}

#[tokio::test]
async fn snapshot_restores_the_exact_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path());
    let mut c = store.client().await;
    for i in 0..200 {
        c.put(format!("s/{}", i % 50), format!("v{i}"), None)
            .await
            .unwrap();
    }
    for i in 0..10 {
        c.delete(format!("s/{i}"), None).await.unwrap();
    }
    let rev = c.get("s", None).await.unwrap().header().unwrap().revision();
    c.compact(rev - 20, None).await.unwrap();
    let lease = c.lease_grant(300, None).await.unwrap().id();
    c.put("s/leased", "l", Some(PutOptions::new().with_lease(lease)))
        .await
        .unwrap();
    let before = dump(&mut c, "s/").await;
    let hash = c.hash_kv(0).await.unwrap();
    let mut snap = c.snapshot().await.unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = snap.message().await.unwrap() {
        bytes.extend_from_slice(chunk.blob());
    }
    let file = dir.path().join("backup.db");
    std::fs::write(&file, &bytes).unwrap();

    let restored_dir = tempfile::tempdir().unwrap();
    let target = restored_dir.path().join("data");
    let out = common::restore(&file, &target);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Restoring over an existing store is refused.
    let again = common::restore(&file, &target);
    assert!(!again.status.success());

    let restored = StoreProcess::start(&target);
    let mut r = restored.client().await;
    assert_eq!(dump(&mut r, "s/").await, before);
    let rh = r.hash_kv(0).await.unwrap();
    assert_eq!(
        (rh.hash(), rh.compact_version()),
        (hash.hash(), hash.compact_version())
    );
    assert_eq!(r.leases().await.unwrap().leases()[0].id(), lease);
    assert!(
        r.get("s/20", Some(GetOptions::new().with_revision(rev - 30)))
            .await
            .is_err(),
        "compaction kept"
    );
    // History above the compaction revision is there for watchers.
    let old = r
        .get(
            "s/",
            Some(GetOptions::new().with_prefix().with_revision(rev - 10)),
        )
        .await
        .unwrap();
    assert!(old.count() > 0);
    // A damaged snapshot is refused.
    let mut bad = bytes.clone();
    bad[100] ^= 0xff;
    std::fs::write(&file, &bad).unwrap();
    let out = common::restore(&file, &restored_dir.path().join("other"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("sha256"));
    assert!(
        !restored_dir.path().join("other").exists(),
        "nothing half-written"
    );
}

#[tokio::test]
async fn damaged_data_dir_is_refused_and_torn_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(dir.path());
    let mut c = store.client().await;
    for i in 0..20 {
        c.put(format!("d/{i}"), "x".repeat(100), None)
            .await
            .unwrap();
    }
    drop(c);
    store.kill9();
    let wal_dir = dir.path().join("member/wal");
    let wal = std::fs::read_dir(&wal_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let good = std::fs::read(&wal).unwrap();

    // A torn final write (half a record) is cut; every complete record survives.
    let mut torn = good.clone();
    torn.extend_from_slice(&good[..good.len() / 40]);
    std::fs::write(&wal, &torn).unwrap();
    let store = StoreProcess::start(dir.path());
    let mut c = store.client().await;
    assert_eq!(
        c.get("d/", Some(GetOptions::new().with_prefix()))
            .await
            .unwrap()
            .count(),
        20
    );
    drop(c);
    store.kill9();

    // A flipped byte in the middle of the log: refused with a clear message.
    let mut bad = std::fs::read(&wal).unwrap();
    bad[good.len() / 2] ^= 0xff;
    std::fs::write(&wal, &bad).unwrap();
    let stderr = common::start_refused(dir.path());
    assert!(stderr.contains("damaged"), "{stderr}");
}

#[tokio::test]
async fn a_second_store_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _store = StoreProcess::start(dir.path());
    let stderr = common::start_refused(dir.path());
    assert!(stderr.contains("in use"), "{stderr}");
}
