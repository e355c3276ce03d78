//! MVCC semantics: targeted cases and property tests against a simple model (a flat list of
//! every write ever made).

use super::*;
use etcd_client::proto::PbTxnRequestOp;
use proptest::prelude::*;

fn put_req(key: &str, value: &str) -> PbTxnRequest {
    PbTxnRequest {
        success: vec![op(PbTxnOpRequest::RequestPut(PbPutRequest {
            key: key.into(),
            value: value.into(),
            prev_kv: true,
            ..Default::default()
        }))],
        ..Default::default()
    }
}

fn op(request: PbTxnOpRequest) -> PbTxnRequestOp {
    PbTxnRequestOp {
        request: Some(request),
    }
}

fn del_req(key: &str, range_end: &str) -> PbTxnRequest {
    PbTxnRequest {
        success: vec![op(PbTxnOpRequest::RequestDeleteRange(PbDeleteRequest {
            key: key.into(),
            range_end: range_end.into(),
            prev_kv: true,
        }))],
        ..Default::default()
    }
}

fn get(m: &Mvcc, key: &str, rev: i64) -> Result<Option<PbKeyValue>> {
    let resp = m.range(
        &PbRangeRequest {
            key: key.into(),
            revision: rev,
            ..Default::default()
        },
        m.revision(),
    )?;
    Ok(resp.kvs.into_iter().next())
}

fn apply(m: &mut Mvcc, req: PbTxnRequest) -> PbTxnResponse {
    m.txn(&req, &Limits::default()).unwrap().0
}

fn cmp(key: &str, target: i32, result: i32, union: PbTargetUnion) -> PbCompare {
    PbCompare {
        key: key.into(),
        target,
        result,
        target_union: Some(union),
        range_end: Vec::new(),
    }
}

#[test]
fn revisions_versions_and_tombstones() {
    let mut m = Mvcc::new();
    assert_eq!(m.revision(), 1);
    apply(&mut m, put_req("a", "1"));
    apply(&mut m, put_req("a", "2"));
    apply(&mut m, put_req("b", "x"));
    let a = get(&m, "a", 0).unwrap().unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (2, 3, 2));
    assert_eq!(a.value, b"2");
    apply(&mut m, del_req("a", ""));
    assert_eq!(m.revision(), 5);
    assert!(get(&m, "a", 0).unwrap().is_none());
    assert_eq!(get(&m, "a", 2).unwrap().unwrap().value, b"1");
    apply(&mut m, put_req("a", "3"));
    let a = get(&m, "a", 0).unwrap().unwrap();
    assert_eq!(
        (a.create_revision, a.version),
        (6, 1),
        "a new generation after delete"
    );
    // Deleting nothing does not bump the revision.
    apply(&mut m, del_req("zzz", ""));
    assert_eq!(m.revision(), 6);
    assert_eq!(get(&m, "a", 7), Err(StoreError::FutureRevision));
}

#[test]
fn range_limit_count_sort_and_from_key() {
    let mut m = Mvcc::new();
    for (k, v) in [("k1", "c"), ("k2", "a"), ("k3", "b"), ("l", "z")] {
        apply(&mut m, put_req(k, v));
    }
    let resp = m
        .range(
            &PbRangeRequest {
                key: "k".into(),
                range_end: "l".into(),
                limit: 2,
                ..Default::default()
            },
            m.revision(),
        )
        .unwrap();
    assert_eq!(resp.count, 3);
    assert!(resp.more);
    assert_eq!(resp.kvs.len(), 2);
    let resp = m
        .range(
            &PbRangeRequest {
                key: "k".into(),
                range_end: "l".into(),
                sort_order: sort_order::DESCEND,
                sort_target: sort_target::VALUE,
                ..Default::default()
            },
            m.revision(),
        )
        .unwrap();
    let keys: Vec<_> = resp.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, vec![b"k1".to_vec(), b"k3".to_vec(), b"k2".to_vec()]);
    let resp = m
        .range(
            &PbRangeRequest {
                key: "k2".into(),
                range_end: vec![0],
                count_only: true,
                ..Default::default()
            },
            m.revision(),
        )
        .unwrap();
    assert_eq!((resp.count, resp.kvs.len()), (3, 0));
    // A reversed range is empty, not a panic.
    let resp = m
        .range(
            &PbRangeRequest {
                key: "z".into(),
                range_end: "a".into(),
                ..Default::default()
            },
            m.revision(),
        )
        .unwrap();
    assert_eq!(resp.count, 0);
    let resp = m
        .range(
            &PbRangeRequest {
                key: "k".into(),
                range_end: "m".into(),
                min_mod_revision: 3,
                max_mod_revision: 4,
                keys_only: true,
                ..Default::default()
            },
            m.revision(),
        )
        .unwrap();
    assert_eq!(resp.kvs.len(), 2);
    assert!(resp.kvs.iter().all(|kv| kv.value.is_empty()));
}

#[test]
fn txn_compares_branches_and_nested_txn() {
    let mut m = Mvcc::new();
    apply(&mut m, put_req("a", "1"));
    // Create-if-absent, as kube-apiserver does: mod_revision("b") == 0.
    let create = PbTxnRequest {
        compare: vec![cmp(
            "b",
            compare_target::MOD,
            compare_result::EQUAL,
            PbTargetUnion::ModRevision(0),
        )],
        success: put_req("b", "new").success,
        failure: vec![op(PbTxnOpRequest::RequestRange(PbRangeRequest {
            key: "b".into(),
            ..Default::default()
        }))],
    };
    assert!(apply(&mut m, create.clone()).succeeded);
    let again = apply(&mut m, create);
    assert!(!again.succeeded);
    match &again.responses[0].response {
        Some(PbTxnOpResponse::ResponseRange(r)) => assert_eq!(r.kvs[0].value, b"new"),
        other => panic!("unexpected {other:?}"),
    }
    // Value compare on a missing key fails; version compare treats it as 0.
    let t = apply(
        &mut m,
        PbTxnRequest {
            compare: vec![cmp(
                "nope",
                compare_target::VALUE,
                compare_result::EQUAL,
                PbTargetUnion::Value(vec![]),
            )],
            ..Default::default()
        },
    );
    assert!(!t.succeeded);
    let t = apply(
        &mut m,
        PbTxnRequest {
            compare: vec![cmp(
                "nope",
                compare_target::VERSION,
                compare_result::LESS,
                PbTargetUnion::Version(1),
            )],
            ..Default::default()
        },
    );
    assert!(t.succeeded);
    // Nested: the inner compare sees the state before the outer transaction.
    let rev = m.revision();
    let nested = PbTxnRequest {
        success: vec![
            op(PbTxnOpRequest::RequestPut(PbPutRequest {
                key: "c".into(),
                value: "1".into(),
                ..Default::default()
            })),
            op(PbTxnOpRequest::RequestTxn(PbTxnRequest {
                compare: vec![cmp(
                    "c",
                    compare_target::VERSION,
                    compare_result::EQUAL,
                    PbTargetUnion::Version(0),
                )],
                success: put_req("d", "inner-success").success,
                failure: put_req("d", "inner-failure").success,
            })),
            op(PbTxnOpRequest::RequestRange(PbRangeRequest {
                key: "c".into(),
                ..Default::default()
            })),
        ],
        ..Default::default()
    };
    let t = apply(&mut m, nested);
    assert_eq!(
        m.revision(),
        rev + 1,
        "one revision for the whole transaction"
    );
    assert_eq!(get(&m, "d", 0).unwrap().unwrap().value, b"inner-success");
    match &t.responses[2].response {
        Some(PbTxnOpResponse::ResponseRange(r)) => {
            assert_eq!(r.kvs[0].value, b"1", "reads see earlier writes")
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn txn_rejects_duplicates_unknown_leases_and_applies_nothing() {
    let mut m = Mvcc::new();
    let limits = Limits::default();
    let dup = PbTxnRequest {
        success: [put_req("a", "1").success, put_req("a", "2").success].concat(),
        ..Default::default()
    };
    assert_eq!(m.txn(&dup, &limits).unwrap_err(), StoreError::DuplicateKey);
    let put_in_deleted = PbTxnRequest {
        success: [del_req("a", "b").success, put_req("a1", "2").success].concat(),
        ..Default::default()
    };
    assert_eq!(
        m.txn(&put_in_deleted, &limits).unwrap_err(),
        StoreError::DuplicateKey
    );
    let bad_lease = PbTxnRequest {
        success: vec![
            put_req("x", "1").success[0].clone(),
            op(PbTxnOpRequest::RequestPut(PbPutRequest {
                key: "y".into(),
                lease: 42,
                ..Default::default()
            })),
        ],
        ..Default::default()
    };
    assert_eq!(
        m.txn(&bad_lease, &limits).unwrap_err(),
        StoreError::LeaseNotFound
    );
    assert_eq!(m.revision(), 1);
    assert!(
        get(&m, "x", 0).unwrap().is_none(),
        "nothing of a failed txn is applied"
    );
    let too_many = PbTxnRequest {
        success: (0..129)
            .map(|i| put_req(&format!("k{i}"), "v").success[0].clone())
            .collect(),
        ..Default::default()
    };
    assert_eq!(
        m.txn(&too_many, &limits).unwrap_err(),
        StoreError::TooManyOps
    );
    let ignore_missing = PbTxnRequest {
        success: vec![op(PbTxnOpRequest::RequestPut(PbPutRequest {
            key: "m".into(),
            ignore_value: true,
            ..Default::default()
        }))],
        ..Default::default()
    };
    assert_eq!(
        m.txn(&ignore_missing, &limits).unwrap_err(),
        StoreError::KeyNotFound
    );
    let quota = Limits {
        quota_bytes: 100,
        ..limits
    };
    assert_eq!(
        m.txn(&put_req("big", &"x".repeat(200)), &quota)
            .unwrap_err(),
        StoreError::NoSpace
    );
}

#[test]
fn leases_attach_and_revoke_deletes_keys_in_one_revision() {
    let mut m = Mvcc::new();
    m.lease_grant(7, 10).unwrap();
    assert_eq!(m.lease_grant(7, 10).unwrap_err(), StoreError::LeaseExists);
    for k in ["a", "b"] {
        apply(
            &mut m,
            PbTxnRequest {
                success: vec![op(PbTxnOpRequest::RequestPut(PbPutRequest {
                    key: k.into(),
                    value: "v".into(),
                    lease: 7,
                    ..Default::default()
                }))],
                ..Default::default()
            },
        );
    }
    assert_eq!(m.lease_keys(7).unwrap().len(), 2);
    // Re-putting without the lease detaches the key.
    apply(&mut m, put_req("b", "w"));
    assert_eq!(m.lease_keys(7).unwrap(), vec![Bytes::from("a")]);
    let rev = m.revision();
    let rec = m.lease_revoke(7).unwrap();
    assert_eq!(rec.revision, rev + 1);
    assert!(get(&m, "a", 0).unwrap().is_none());
    assert!(get(&m, "b", 0).unwrap().is_some());
    let events = m.records(rev + 1, rev + 1, 10).unwrap();
    assert!(events[0].events[0].is_delete());
}

#[test]
fn compaction_keeps_the_newest_version_and_drops_history() {
    let mut m = Mvcc::new();
    for i in 0..10 {
        apply(&mut m, put_req("a", &i.to_string()));
    }
    apply(&mut m, put_req("gone", "x"));
    apply(&mut m, del_req("gone", ""));
    let before = m.live_bytes();
    m.compact(m.revision()).unwrap();
    assert!(m.live_bytes() < before);
    assert_eq!(get(&m, "a", 0).unwrap().unwrap().value, b"9");
    assert_eq!(get(&m, "a", 5), Err(StoreError::Compacted));
    assert_eq!(m.compact(3).unwrap_err(), StoreError::Compacted);
    assert_eq!(m.records(2, 20, 100).unwrap_err(), StoreError::Compacted);
    assert_eq!(
        m.key_count(),
        2,
        "the tombstone at the compaction revision stays for watchers"
    );
    apply(&mut m, put_req("b", "1"));
    m.compact(m.revision()).unwrap();
    assert_eq!(m.key_count(), 2, "older tombstones are dropped");
}

// ---- property tests against a model ----

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8),
    Delete(u8),
    DeleteRange(u8, u8),
    CasPut(u8, u8, bool),
    Compact(u8),
}

const KEYS: &[&str] = &["a", "ab", "b", "ba", "c"];

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS.len() as u8, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (0..KEYS.len() as u8).prop_map(Op::Delete),
        1 => (0..KEYS.len() as u8, 0..KEYS.len() as u8).prop_map(|(a, b)| Op::DeleteRange(a, b)),
        2 => (0..KEYS.len() as u8, any::<u8>(), any::<bool>()).prop_map(|(k, v, c)| Op::CasPut(k, v, c)),
        1 => any::<u8>().prop_map(Op::Compact),
    ]
}

/// Every write ever made: (revision, key, value or None for a delete).
#[derive(Default)]
struct Model {
    writes: Vec<(i64, String, Option<Vec<u8>>)>,
    revision: i64,
    compacted: i64,
}

impl Model {
    fn get(&self, key: &str, rev: i64) -> Option<(Vec<u8>, i64, i64, i64)> {
        let mut state: Option<(Vec<u8>, i64, i64, i64)> = None;
        for (r, k, v) in &self.writes {
            if *r > rev || k != key {
                continue;
            }
            state = match (v, state) {
                (None, _) => None,
                (Some(v), None) => Some((v.clone(), *r, *r, 1)),
                (Some(v), Some((_, create, _, ver))) => Some((v.clone(), create, *r, ver + 1)),
            };
        }
        state
    }
    fn live(&self, rev: i64) -> Vec<String> {
        KEYS.iter()
            .filter(|k| self.get(k, rev).is_some())
            .map(|k| k.to_string())
            .collect()
    }
}

fn check(m: &Mvcc, model: &Model) {
    assert_eq!(m.revision(), model.revision.max(1));
    let low = model.compacted.max(1);
    for rev in low..=m.revision() {
        for key in KEYS {
            let got = get(m, key, rev)
                .unwrap()
                .map(|kv| (kv.value, kv.create_revision, kv.mod_revision, kv.version));
            assert_eq!(got, model.get(key, rev), "key {key} at revision {rev}");
        }
    }
    if model.compacted > 1 {
        assert_eq!(get(m, "a", model.compacted - 1), Err(StoreError::Compacted));
    }
    // Watch history from the compaction revision on matches the model's writes.
    let records = m.records(low, m.revision(), usize::MAX).unwrap();
    let got: Vec<(i64, String, bool)> = records
        .iter()
        .flat_map(|r| {
            r.events.iter().map(move |e| {
                (
                    r.revision,
                    String::from_utf8(e.key.to_vec()).unwrap(),
                    e.is_delete(),
                )
            })
        })
        .collect();
    let mut want: Vec<(i64, String, bool)> = model
        .writes
        .iter()
        .filter(|(r, _, _)| *r >= low)
        .map(|(r, k, v)| (*r, k.clone(), v.is_none()))
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    want.sort();
    assert_eq!(got_sorted, want);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn mvcc_matches_model(ops in proptest::collection::vec(op_strategy(), 1..40)) {
        let mut m = Mvcc::new();
        let mut model = Model { revision: 1, ..Default::default() };
        for o in ops {
            match o {
                Op::Put(k, v) => {
                    apply(&mut m, put_req(KEYS[k as usize], &v.to_string()));
                    model.revision += 1;
                    model.writes.push((model.revision, KEYS[k as usize].into(), Some(v.to_string().into_bytes())));
                }
                Op::Delete(k) => {
                    let key = KEYS[k as usize];
                    let resp = apply(&mut m, del_req(key, ""));
                    let existed = model.get(key, model.revision).is_some();
                    if existed {
                        model.revision += 1;
                        model.writes.push((model.revision, key.into(), None));
                    }
                    let deleted = match &resp.responses[0].response { Some(PbTxnOpResponse::ResponseDeleteRange(d)) => d.deleted, _ => -1 };
                    prop_assert_eq!(deleted, i64::from(existed));
                }
                Op::DeleteRange(a, b) => {
                    let (start, end) = (KEYS[a as usize], KEYS[b as usize]);
                    apply(&mut m, del_req(start, end));
                    let doomed: Vec<String> = model.live(model.revision).into_iter().filter(|k| k.as_str() >= start && k.as_str() < end).collect();
                    if !doomed.is_empty() {
                        model.revision += 1;
                        for k in doomed { model.writes.push((model.revision, k, None)); }
                    }
                }
                Op::CasPut(k, v, expect_current) => {
                    let key = KEYS[k as usize];
                    let current = model.get(key, model.revision).map_or(0, |s| s.2);
                    let want = if expect_current { current } else { current + 1 };
                    let t = apply(&mut m, PbTxnRequest {
                        compare: vec![cmp(key, compare_target::MOD, compare_result::EQUAL, PbTargetUnion::ModRevision(want))],
                        success: put_req(key, &v.to_string()).success,
                        failure: vec![],
                    });
                    prop_assert_eq!(t.succeeded, expect_current);
                    if expect_current {
                        model.revision += 1;
                        model.writes.push((model.revision, key.into(), Some(v.to_string().into_bytes())));
                    }
                }
                Op::Compact(r) => {
                    let rev = 1 + (r as i64) % model.revision.max(1);
                    let res = m.compact(rev);
                    if rev <= model.compacted { prop_assert_eq!(res.unwrap_err(), StoreError::Compacted); }
                    else { res.unwrap(); model.compacted = rev; }
                }
            }
            check(&m, &model);
        }
        // A snapshot restores exactly the same state and watch history.
        let restored = Mvcc::from_snapshot(m.to_snapshot(0)).unwrap();
        check(&restored, &model);
        prop_assert_eq!(restored.live_bytes(), m.live_bytes());
    }
}
