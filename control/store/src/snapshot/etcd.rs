//! etcd's snapshot: the bbolt database of an etcd member followed by its sha256 — what
//! `etcdctl snapshot save` receives from `Maintenance/Snapshot` and what `etcdctl snapshot
//! restore` (etcdutl in 3.6) and `skiff store restore` read. The state goes in etcd's schema
//! (etcd `server/storage/schema`, `mvcc/revision.go`), so either side restores the other's:
//! - bucket `key`: one entry per key version, keyed by its revision — `main u64 BE | '_' |
//!   sub u64 BE`, plus `'t'` for a tombstone — holding an `mvccpb.KeyValue` (a tombstone's holds
//!   only the key). `sub` orders the changes of one transaction; skiff does not keep their
//!   order, so they are numbered in key order (etcd reads them back the same way).
//! - bucket `lease`: `id i64 BE` → `leasepb.Lease {ID, TTL}`.
//! - bucket `meta`: `finishedCompactRev`/`scheduledCompactRev` (a revision key), and the raft
//!   position etcd keeps (`consistent_index`, `term`), which a restore rewrites.
//!
//! The current revision is not stored: etcd takes the newest revision in `key` (or the compacted
//! one, if later), and so does skiff — the two are equal, since compaction keeps each key's
//! newest version.

use std::collections::BTreeMap;

use bytes::Bytes;
use etcd_client::proto::PbKeyValue;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::bbolt;
use crate::record::{LeaseRecord, SnapshotKey, SnapshotState, SnapshotVersion};

const KEY: &[u8] = b"key";
const LEASE: &[u8] = b"lease";
const META: &[u8] = b"meta";
const DIGEST: usize = 32;

/// etcd's `leasepb.Lease`.
#[derive(Clone, PartialEq, prost::Message)]
struct LeasePb {
    #[prost(int64, tag = "1")]
    id: i64,
    #[prost(int64, tag = "2")]
    ttl: i64,
    #[prost(int64, tag = "3")]
    remaining_ttl: i64,
}

fn revision_key(main: i64, sub: i64, tombstone: bool) -> Vec<u8> {
    let mut k = Vec::with_capacity(18);
    k.extend_from_slice(&main.to_be_bytes());
    k.push(b'_');
    k.extend_from_slice(&sub.to_be_bytes());
    if tombstone {
        k.push(b't');
    }
    k
}

fn borrow(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
    pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect()
}

/// (main, tombstone) of a `key` bucket entry's key.
fn parse_revision_key(k: &[u8]) -> Result<(i64, bool), String> {
    let tombstone = match k.len() {
        17 => false,
        18 if k[17] == b't' => true,
        _ => {
            return Err(format!(
                "a key bucket entry has a malformed revision {k:02x?}"
            ))
        }
    };
    if k[8] != b'_' {
        return Err(format!(
            "a key bucket entry has a malformed revision {k:02x?}"
        ));
    }
    Ok((i64::from_be_bytes(k[..8].try_into().unwrap()), tombstone))
}

/// The state as an etcd snapshot file (bbolt database, then its sha256).
pub fn encode(state: &SnapshotState) -> Vec<u8> {
    let mut versions: Vec<(&Bytes, &SnapshotVersion)> = state
        .keys
        .iter()
        .flat_map(|k| k.versions.iter().map(move |v| (&k.key, v)))
        .collect();
    versions.sort_by(|a, b| (a.1.mod_revision, a.0).cmp(&(b.1.mod_revision, b.0)));
    let mut keys = Vec::with_capacity(versions.len());
    let (mut main, mut sub) = (i64::MIN, 0);
    for (key, v) in versions {
        if v.mod_revision != main {
            (main, sub) = (v.mod_revision, 0);
        }
        let tombstone = v.version == 0;
        let kv = if tombstone {
            PbKeyValue {
                key: key.to_vec(),
                ..Default::default()
            }
        } else {
            PbKeyValue {
                key: key.to_vec(),
                create_revision: v.create_revision,
                mod_revision: v.mod_revision,
                version: v.version,
                value: v.value.to_vec(),
                lease: v.lease,
            }
        };
        keys.push((revision_key(main, sub, tombstone), kv.encode_to_vec()));
        sub += 1;
    }
    let mut leases: Vec<(Vec<u8>, Vec<u8>)> = state
        .leases
        .iter()
        .map(|l| {
            let pb = LeasePb {
                id: l.id,
                ttl: l.ttl,
                remaining_ttl: 0,
            };
            (l.id.to_be_bytes().to_vec(), pb.encode_to_vec())
        })
        .collect();
    leases.sort();
    let mut meta: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (
            b"consistent_index".to_vec(),
            (state.revision as u64).to_be_bytes().to_vec(),
        ),
        (b"term".to_vec(), 1u64.to_be_bytes().to_vec()),
    ];
    if state.compact_revision > 0 {
        let rev = revision_key(state.compact_revision, 0, false);
        meta.push((b"finishedCompactRev".to_vec(), rev.clone()));
        meta.push((b"scheduledCompactRev".to_vec(), rev));
    }
    meta.sort();
    let mut file = bbolt::write(&[
        (KEY, borrow(&keys)),
        (LEASE, borrow(&leases)),
        (META, borrow(&meta)),
    ]);
    let digest = Sha256::digest(&file);
    file.extend_from_slice(&digest);
    file
}

/// Reads an etcd snapshot (from `etcdctl snapshot save`, or skiff's `Maintenance/Snapshot`),
/// or a member's bare `member/snap/db` (no digest). Everything is checked before it is used.
pub fn decode(data: &[u8]) -> Result<SnapshotState, String> {
    let db = match data.len() % 512 {
        DIGEST => {
            let (db, digest) = data.split_at(data.len() - DIGEST);
            if Sha256::digest(db).as_slice() != digest {
                return Err("sha256 mismatch: the snapshot is damaged or truncated".into());
            }
            db
        }
        0 => data,
        _ => {
            return Err(format!(
                "truncated: {} bytes is neither a bbolt file nor one followed by its sha256",
                data.len()
            ))
        }
    };
    let db = bbolt::Db::open(db)?;
    let buckets = db.buckets()?;
    let bucket = |name: &[u8]| buckets.iter().find(|(n, _)| *n == name).map(|(_, e)| e);
    let entries = bucket(KEY).ok_or("not an etcd snapshot: it has no \"key\" bucket")?;

    let mut compact_revision = 0;
    if let Some(meta) = bucket(META) {
        if let Some((_, v)) = meta.iter().find(|(k, _)| *k == b"finishedCompactRev") {
            compact_revision = parse_revision_key(v)?.0;
        }
    }
    let mut keys: BTreeMap<Bytes, Vec<SnapshotVersion>> = BTreeMap::new();
    let mut revision = compact_revision;
    for (k, v) in entries {
        let (main, tombstone) = parse_revision_key(k)?;
        let kv = PbKeyValue::decode(*v)
            .map_err(|e| format!("revision {main}: undecodable KeyValue: {e}"))?;
        if kv.key.is_empty() {
            return Err(format!("revision {main}: a KeyValue without a key"));
        }
        let version = if tombstone {
            SnapshotVersion {
                mod_revision: main,
                ..Default::default()
            }
        } else {
            if kv.mod_revision != main || kv.version <= 0 {
                return Err(format!(
                    "revision {main}: its KeyValue says mod_revision {} version {}",
                    kv.mod_revision, kv.version
                ));
            }
            SnapshotVersion {
                create_revision: kv.create_revision,
                mod_revision: main,
                version: kv.version,
                lease: kv.lease,
                value: kv.value.into(),
            }
        };
        revision = revision.max(main);
        keys.entry(kv.key.into()).or_default().push(version);
    }
    let mut leases = Vec::new();
    for (k, v) in bucket(LEASE).map(|e| &e[..]).unwrap_or_default() {
        let pb = LeasePb::decode(*v).map_err(|e| format!("undecodable lease: {e}"))?;
        if k.len() != 8 || i64::from_be_bytes((*k).try_into().unwrap()) != pb.id {
            return Err(format!("lease {:x} stored under a mismatched key", pb.id));
        }
        leases.push(LeaseRecord {
            id: pb.id,
            ttl: pb.ttl,
        });
    }
    Ok(SnapshotState {
        lsn: 0,
        revision,
        compact_revision,
        keys: keys
            .into_iter()
            .map(|(key, versions)| SnapshotKey { key, versions })
            .collect(),
        leases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::Mvcc;

    fn state() -> SnapshotState {
        let v = |c, m, ver, lease, value: &str| SnapshotVersion {
            create_revision: c,
            mod_revision: m,
            version: ver,
            lease,
            value: Bytes::copy_from_slice(value.as_bytes()),
        };
        SnapshotState {
            lsn: 0,
            revision: 9,
            compact_revision: 4,
            keys: vec![
                SnapshotKey {
                    key: "a".into(),
                    versions: vec![v(2, 3, 2, 0, "a2"), v(2, 6, 3, 0, "a3")],
                },
                SnapshotKey {
                    key: "b".into(),
                    // written in the same transaction as c (revision 6), then deleted
                    versions: vec![v(6, 6, 1, 0, "b1"), v(0, 9, 0, 0, "")],
                },
                SnapshotKey {
                    key: "c".into(),
                    versions: vec![v(6, 6, 1, 7, "c1")],
                },
            ],
            leases: vec![LeaseRecord { id: 7, ttl: 30 }],
        }
    }

    #[test]
    fn round_trip_through_etcds_schema() {
        let file = encode(&state());
        assert_eq!(file.len() % 512, DIGEST, "etcdctl's snapshot size check");
        let back = decode(&file).unwrap();
        assert_eq!(back, state());
        Mvcc::from_snapshot(back).unwrap();
        // A member's bare db file (no digest) reads the same.
        assert_eq!(decode(&file[..file.len() - DIGEST]).unwrap(), state());
    }

    #[test]
    fn one_transaction_gets_sub_revisions_in_key_order() {
        let file = encode(&state());
        let db = bbolt::Db::open(&file).unwrap();
        let buckets = db.buckets().unwrap();
        let keys: Vec<Vec<u8>> = buckets[0].1.iter().map(|(k, _)| k.to_vec()).collect();
        assert_eq!(
            keys,
            vec![
                revision_key(3, 0, false),
                revision_key(6, 0, false), // a
                revision_key(6, 1, false), // b
                revision_key(6, 2, false), // c
                revision_key(9, 0, true),
            ]
        );
    }

    #[test]
    fn damage_and_foreign_files_are_refused() {
        let mut file = encode(&state());
        file[5000] ^= 1;
        assert!(decode(&file).unwrap_err().contains("sha256"));
        let file = encode(&state());
        assert!(decode(&file[..file.len() - 100])
            .unwrap_err()
            .contains("truncated"));
        let empty = bbolt::write(&[(b"other", vec![])]);
        assert!(decode(&empty).unwrap_err().contains("no \"key\" bucket"));
        assert!(decode(&[0u8; 4096]).is_err());
    }
}
