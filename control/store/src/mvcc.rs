//! The in-memory MVCC state: every key's history, the revision log that watches read, and the
//! lease table. Pure data structure, no I/O: `store.rs` adds durability (WAL, snapshots) and
//! concurrency around it.
//!
//! Semantics follow etcd's `mvcc` package: one global revision counter bumped once per write
//! transaction; per key `create_revision`, `mod_revision`, `version`; deletes are tombstones;
//! compaction at revision C keeps, per key, the newest version at or below C (unless it is a
//! tombstone older than C) and everything after it.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use etcd_client::proto::{
    PbCompare, PbDeleteRequest, PbDeleteResponse, PbKeyValue, PbPutRequest, PbPutResponse,
    PbRangeRequest, PbRangeResponse, PbResponseOp, PbTargetUnion, PbTxnOpRequest, PbTxnOpResponse,
    PbTxnRequest, PbTxnResponse,
};

use crate::error::{Result, StoreError};
use crate::record::{
    LeaseRecord, SnapshotKey, SnapshotState, SnapshotVersion, WalRecord, WalWrite,
};

/// Bytes charged per stored version on top of key and value, for the space quota.
const VERSION_OVERHEAD: u64 = 64;

/// etcd's `MaxLeaseTTL`.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

// Protobuf enum values (etcd's rpc.proto); the generated enums are not exported by etcd-client.
mod sort_order {
    pub const NONE: i32 = 0;
    pub const ASCEND: i32 = 1;
    pub const DESCEND: i32 = 2;
}
mod sort_target {
    pub const KEY: i32 = 0;
    pub const VERSION: i32 = 1;
    pub const CREATE: i32 = 2;
    pub const MOD: i32 = 3;
    pub const VALUE: i32 = 4;
}
mod compare_result {
    pub const EQUAL: i32 = 0;
    pub const GREATER: i32 = 1;
    pub const LESS: i32 = 2;
    pub const NOT_EQUAL: i32 = 3;
}
mod compare_target {
    pub const VERSION: i32 = 0;
    pub const CREATE: i32 = 1;
    pub const MOD: i32 = 2;
    pub const VALUE: i32 = 3;
    pub const LEASE: i32 = 4;
}

/// One version of a key. A tombstone (the key was deleted at `mod_revision`) has version 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
    pub value: Bytes,
}

impl Version {
    pub fn is_tombstone(&self) -> bool {
        self.version == 0
    }

    fn tombstone(revision: i64) -> Version {
        Version {
            create_revision: 0,
            mod_revision: revision,
            version: 0,
            lease: 0,
            value: Bytes::new(),
        }
    }

    pub fn to_pb(&self, key: &Bytes, with_value: bool) -> PbKeyValue {
        PbKeyValue {
            key: key.to_vec(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: if with_value {
                self.value.to_vec()
            } else {
                Vec::new()
            },
            lease: self.lease,
        }
    }
}

/// A change to one key at one revision, as watchers see it.
#[derive(Debug, Clone)]
pub struct Event {
    pub key: Bytes,
    /// The new version; a tombstone for a delete.
    pub kv: Arc<Version>,
    /// The version before the change, if the key existed.
    pub prev: Option<Arc<Version>>,
}

impl Event {
    pub fn is_delete(&self) -> bool {
        self.kv.is_tombstone()
    }
}

/// All events of one revision.
#[derive(Debug, Clone)]
pub struct RevisionRecord {
    pub revision: i64,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Default)]
pub struct LeaseEntry {
    pub ttl: i64,
    pub keys: BTreeSet<Bytes>,
}

/// A key range as etcd encodes it in `key` + `range_end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRange {
    /// `range_end` empty: exactly one key.
    Single(Bytes),
    /// `range_end == "\0"`: every key >= start.
    From(Bytes),
    /// `[start, end)`.
    Between(Bytes, Bytes),
}

impl KeyRange {
    pub fn new(key: &[u8], range_end: &[u8]) -> KeyRange {
        let start = Bytes::copy_from_slice(key);
        if range_end.is_empty() {
            KeyRange::Single(start)
        } else if range_end == [0] {
            KeyRange::From(start)
        } else {
            KeyRange::Between(start, Bytes::copy_from_slice(range_end))
        }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            KeyRange::Single(k) => k.as_ref() == key,
            KeyRange::From(start) => key >= start.as_ref(),
            KeyRange::Between(start, end) => key >= start.as_ref() && key < end.as_ref(),
        }
    }
}

/// Limits enforced on requests (etcd's `--max-txn-ops`, `--quota-backend-bytes`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_txn_ops: usize,
    pub quota_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_txn_ops: 128,
            quota_bytes: 2 * 1024 * 1024 * 1024,
        }
    }
}

#[derive(Debug)]
pub struct Mvcc {
    keys: BTreeMap<Bytes, Vec<Arc<Version>>>,
    /// Revision records in ascending order, from the compaction revision up to `revision`.
    log: VecDeque<RevisionRecord>,
    revision: i64,
    compact_revision: i64,
    leases: HashMap<i64, LeaseEntry>,
    /// Bytes held by all retained versions, for the space quota and `Status`.
    live_bytes: u64,
}

impl Default for Mvcc {
    fn default() -> Self {
        Mvcc::new()
    }
}

/// The latest version of a key at or below `rev` (`i64::MAX`: the newest, including writes of
/// the transaction being executed).
fn version_at(history: &[Arc<Version>], rev: i64) -> Option<&Arc<Version>> {
    match history.last() {
        Some(last) if last.mod_revision <= rev => Some(last),
        _ => {
            let idx = history.partition_point(|v| v.mod_revision <= rev);
            idx.checked_sub(1).map(|i| &history[i])
        }
    }
}

fn live_at(history: &[Arc<Version>], rev: i64) -> Option<&Arc<Version>> {
    version_at(history, rev).filter(|v| !v.is_tombstone())
}

fn cost(key: &[u8], value: &[u8]) -> u64 {
    key.len() as u64 + value.len() as u64 + VERSION_OVERHEAD
}

impl Mvcc {
    pub fn new() -> Mvcc {
        Mvcc {
            keys: BTreeMap::new(),
            log: VecDeque::new(),
            // etcd starts at revision 1 with an empty keyspace.
            revision: 1,
            compact_revision: 0,
            leases: HashMap::new(),
            live_bytes: 0,
        }
    }

    pub fn revision(&self) -> i64 {
        self.revision
    }

    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub fn leases(&self) -> &HashMap<i64, LeaseEntry> {
        &self.leases
    }

    /// Iterates the histories of the keys in `range`, in key order.
    fn histories<'a>(
        &'a self,
        range: &KeyRange,
    ) -> Box<dyn Iterator<Item = (&'a Bytes, &'a Vec<Arc<Version>>)> + 'a> {
        match range {
            KeyRange::Single(k) => Box::new(self.keys.get_key_value(k.as_ref()).into_iter()),
            KeyRange::From(start) => Box::new(
                self.keys
                    .range::<[u8], _>((Bound::Included(start.as_ref()), Bound::Unbounded)),
            ),
            KeyRange::Between(start, end) => {
                // BTreeMap::range panics on start > end; etcd treats it as an empty range.
                if start.as_ref() >= end.as_ref() {
                    return Box::new(std::iter::empty());
                }
                Box::new(self.keys.range::<[u8], _>((
                    Bound::Included(start.as_ref()),
                    Bound::Excluded(end.as_ref()),
                )))
            }
        }
    }

    /// Checks a read revision: 0 means `default_rev`.
    fn read_revision(&self, requested: i64, default_rev: i64) -> Result<i64> {
        if requested <= 0 {
            return Ok(default_rev);
        }
        if requested > default_rev {
            return Err(StoreError::FutureRevision);
        }
        if requested < self.compact_revision {
            return Err(StoreError::Compacted);
        }
        Ok(requested)
    }

    /// `KV.Range` at the newest revision visible to readers (`visible_rev`).
    pub fn range(&self, req: &PbRangeRequest, visible_rev: i64) -> Result<PbRangeResponse> {
        if req.key.is_empty() {
            return Err(StoreError::EmptyKey);
        }
        let rev = self.read_revision(req.revision, visible_rev)?;
        Ok(self.range_at(req, rev))
    }

    fn range_at(&self, req: &PbRangeRequest, rev: i64) -> PbRangeResponse {
        let range = KeyRange::new(&req.key, &req.range_end);
        let mut sort = req.sort_order;
        if req.sort_target != sort_target::KEY && sort == sort_order::NONE {
            sort = sort_order::ASCEND;
        }
        let needs_sort = !(sort == sort_order::NONE
            || (sort == sort_order::ASCEND && req.sort_target == sort_target::KEY));
        let filtered = req.min_mod_revision != 0
            || req.max_mod_revision != 0
            || req.min_create_revision != 0
            || req.max_create_revision != 0;
        // Without sorting or filters we can stop collecting after limit + 1 (to know `more`),
        // but `count` is always the number of keys in the range.
        let collect_limit = if req.limit > 0 && !needs_sort && !filtered {
            req.limit as usize + 1
        } else {
            usize::MAX
        };
        let mut count = 0i64;
        let mut found: Vec<(&Bytes, &Arc<Version>)> = Vec::new();
        for (key, history) in self.histories(&range) {
            if let Some(v) = live_at(history, rev) {
                count += 1;
                if !req.count_only && found.len() < collect_limit {
                    found.push((key, v));
                }
            }
        }
        if filtered {
            found.retain(|(_, v)| {
                (req.min_mod_revision == 0 || v.mod_revision >= req.min_mod_revision)
                    && (req.max_mod_revision == 0 || v.mod_revision <= req.max_mod_revision)
                    && (req.min_create_revision == 0
                        || v.create_revision >= req.min_create_revision)
                    && (req.max_create_revision == 0
                        || v.create_revision <= req.max_create_revision)
            });
        }
        if needs_sort {
            let target = req.sort_target;
            found.sort_by(|(ka, a), (kb, b)| {
                let ord = match target {
                    sort_target::VERSION => a.version.cmp(&b.version),
                    sort_target::CREATE => a.create_revision.cmp(&b.create_revision),
                    sort_target::MOD => a.mod_revision.cmp(&b.mod_revision),
                    sort_target::VALUE => a.value.cmp(&b.value),
                    _ => Ordering::Equal,
                }
                .then_with(|| ka.cmp(kb));
                if sort == sort_order::DESCEND {
                    ord.reverse()
                } else {
                    ord
                }
            });
        }
        let mut more = false;
        if req.limit > 0 && found.len() > req.limit as usize {
            found.truncate(req.limit as usize);
            more = true;
        }
        PbRangeResponse {
            header: None,
            kvs: found
                .into_iter()
                .map(|(k, v)| v.to_pb(k, !req.keys_only))
                .collect(),
            more,
            count,
        }
    }

    /// `KV.Txn` (and Put / DeleteRange, which are one-op transactions). Returns the response
    /// and, when the transaction changed anything, the WAL record describing the change.
    pub fn txn(
        &mut self,
        req: &PbTxnRequest,
        limits: &Limits,
    ) -> Result<(PbTxnResponse, Option<WalRecord>)> {
        check_txn_request(req, limits.max_txn_ops)?;
        check_intervals(&req.success)?;
        check_intervals(&req.failure)?;
        // Like etcd, every compare (nested ones too) is evaluated against the state before the
        // transaction, and the chosen path is fully validated before anything is written: a
        // transaction either applies completely or not at all.
        let mut path = Vec::new();
        self.txn_path(req, &mut path);
        let mut new_bytes = 0u64;
        let mut cursor = 0;
        self.check_path(req, &path, &mut cursor, &mut new_bytes)?;
        if new_bytes > 0 && self.live_bytes + new_bytes > limits.quota_bytes {
            return Err(StoreError::NoSpace);
        }

        let rev = self.revision + 1;
        let mut writes = Vec::new();
        let mut events = Vec::new();
        let mut cursor = 0;
        let resp = self.exec_txn(req, &path, &mut cursor, rev, &mut writes, &mut events);
        let record = self.finish_revision(rev, events).then(|| WalRecord {
            revision: rev,
            writes,
            ..Default::default()
        });
        Ok((resp, record))
    }

    fn compare(&self, c: &PbCompare) -> bool {
        let range = KeyRange::new(&c.key, &c.range_end);
        let mut any = false;
        for (_, history) in self.histories(&range) {
            if let Some(v) = live_at(history, i64::MAX) {
                any = true;
                if !compare_version(c, Some(v)) {
                    return false;
                }
            }
        }
        if !any {
            // etcd: a value compare on a missing key always fails (an empty value cannot be
            // told from a missing one); other targets compare against zero.
            if c.target == compare_target::VALUE {
                return false;
            }
            return compare_version(c, None);
        }
        true
    }

    fn txn_path(&self, req: &PbTxnRequest, path: &mut Vec<bool>) {
        let ok = req.compare.iter().all(|c| self.compare(c));
        path.push(ok);
        let ops = if ok { &req.success } else { &req.failure };
        for op in ops {
            if let Some(PbTxnOpRequest::RequestTxn(t)) = &op.request {
                self.txn_path(t, path);
            }
        }
    }

    fn check_path(
        &self,
        req: &PbTxnRequest,
        path: &[bool],
        cursor: &mut usize,
        new_bytes: &mut u64,
    ) -> Result<()> {
        let ok = path[*cursor];
        *cursor += 1;
        let ops = if ok { &req.success } else { &req.failure };
        for op in ops {
            match &op.request {
                Some(PbTxnOpRequest::RequestRange(r)) => {
                    self.read_revision(r.revision, self.revision)?;
                }
                Some(PbTxnOpRequest::RequestPut(p)) => {
                    let existing = self
                        .keys
                        .get(p.key.as_slice())
                        .and_then(|h| live_at(h, i64::MAX));
                    if (p.ignore_value || p.ignore_lease) && existing.is_none() {
                        return Err(StoreError::KeyNotFound);
                    }
                    if !p.ignore_lease && p.lease != 0 && !self.leases.contains_key(&p.lease) {
                        return Err(StoreError::LeaseNotFound);
                    }
                    let value_len = if p.ignore_value {
                        existing.map_or(0, |v| v.value.len())
                    } else {
                        p.value.len()
                    };
                    *new_bytes += p.key.len() as u64 + value_len as u64 + VERSION_OVERHEAD;
                }
                Some(PbTxnOpRequest::RequestTxn(t)) => {
                    self.check_path(t, path, cursor, new_bytes)?;
                }
                Some(PbTxnOpRequest::RequestDeleteRange(_)) | None => {}
            }
        }
        Ok(())
    }

    fn exec_txn(
        &mut self,
        req: &PbTxnRequest,
        path: &[bool],
        cursor: &mut usize,
        rev: i64,
        writes: &mut Vec<WalWrite>,
        events: &mut Vec<Event>,
    ) -> PbTxnResponse {
        let ok = path[*cursor];
        *cursor += 1;
        let ops = if ok { &req.success } else { &req.failure };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match &op.request {
                Some(PbTxnOpRequest::RequestRange(r)) => {
                    // Reads inside a write transaction see its earlier writes.
                    let at = if r.revision > 0 { r.revision } else { i64::MAX };
                    Some(PbTxnOpResponse::ResponseRange(self.range_at(r, at)))
                }
                Some(PbTxnOpRequest::RequestPut(p)) => Some(PbTxnOpResponse::ResponsePut(
                    self.exec_put(p, rev, writes, events),
                )),
                Some(PbTxnOpRequest::RequestDeleteRange(d)) => Some(
                    PbTxnOpResponse::ResponseDeleteRange(self.exec_delete(d, rev, writes, events)),
                ),
                Some(PbTxnOpRequest::RequestTxn(t)) => Some(PbTxnOpResponse::ResponseTxn(
                    self.exec_txn(t, path, cursor, rev, writes, events),
                )),
                None => None,
            };
            responses.push(PbResponseOp { response });
        }
        PbTxnResponse {
            header: None,
            succeeded: ok,
            responses,
        }
    }

    fn exec_put(
        &mut self,
        p: &PbPutRequest,
        rev: i64,
        writes: &mut Vec<WalWrite>,
        events: &mut Vec<Event>,
    ) -> PbPutResponse {
        let key = Bytes::copy_from_slice(&p.key);
        let existing = self
            .keys
            .get(&key)
            .and_then(|h| live_at(h, i64::MAX))
            .cloned();
        let value = match (&existing, p.ignore_value) {
            (Some(e), true) => e.value.clone(),
            _ => Bytes::copy_from_slice(&p.value),
        };
        let lease = match (&existing, p.ignore_lease) {
            (Some(e), true) => e.lease,
            _ => p.lease,
        };
        writes.push(WalWrite {
            delete: false,
            key: key.clone(),
            value: value.clone(),
            lease,
        });
        let event = self.apply_put(rev, key.clone(), value, lease);
        let prev_kv = if p.prev_kv {
            event.prev.as_ref().map(|v| v.to_pb(&key, true))
        } else {
            None
        };
        events.push(event);
        PbPutResponse {
            header: None,
            prev_kv,
        }
    }

    fn exec_delete(
        &mut self,
        d: &PbDeleteRequest,
        rev: i64,
        writes: &mut Vec<WalWrite>,
        events: &mut Vec<Event>,
    ) -> PbDeleteResponse {
        let range = KeyRange::new(&d.key, &d.range_end);
        let doomed: Vec<Bytes> = self
            .histories(&range)
            .filter(|(_, h)| live_at(h, i64::MAX).is_some())
            .map(|(k, _)| k.clone())
            .collect();
        let mut prev_kvs = Vec::new();
        for key in &doomed {
            writes.push(WalWrite {
                delete: true,
                key: key.clone(),
                ..Default::default()
            });
            if let Some(event) = self.apply_delete(rev, key.clone()) {
                if d.prev_kv {
                    if let Some(prev) = &event.prev {
                        prev_kvs.push(prev.to_pb(key, true));
                    }
                }
                events.push(event);
            }
        }
        PbDeleteResponse {
            header: None,
            deleted: doomed.len() as i64,
            prev_kvs,
        }
    }

    fn apply_put(&mut self, rev: i64, key: Bytes, value: Bytes, lease: i64) -> Event {
        let history = self.keys.entry(key.clone()).or_default();
        let prev = history.last().filter(|v| !v.is_tombstone()).cloned();
        let (create_revision, version) = match &prev {
            Some(p) => (p.create_revision, p.version + 1),
            None => (rev, 1),
        };
        self.live_bytes += cost(&key, &value);
        let kv = Arc::new(Version {
            create_revision,
            mod_revision: rev,
            version,
            lease,
            value,
        });
        history.push(kv.clone());
        if let Some(p) = &prev {
            if p.lease != 0 && p.lease != lease {
                if let Some(l) = self.leases.get_mut(&p.lease) {
                    l.keys.remove(&key);
                }
            }
        }
        if lease != 0 {
            if let Some(l) = self.leases.get_mut(&lease) {
                l.keys.insert(key.clone());
            }
        }
        Event { key, kv, prev }
    }

    fn apply_delete(&mut self, rev: i64, key: Bytes) -> Option<Event> {
        let history = self.keys.get_mut(&key)?;
        let prev = history.last().filter(|v| !v.is_tombstone()).cloned()?;
        let kv = Arc::new(Version::tombstone(rev));
        history.push(kv.clone());
        self.live_bytes += cost(&key, &[]);
        if prev.lease != 0 {
            if let Some(l) = self.leases.get_mut(&prev.lease) {
                l.keys.remove(&key);
            }
        }
        Some(Event {
            key,
            kv,
            prev: Some(prev),
        })
    }

    /// Publishes the events of revision `rev`; returns whether the revision was used.
    fn finish_revision(&mut self, rev: i64, events: Vec<Event>) -> bool {
        if events.is_empty() {
            return false;
        }
        self.revision = rev;
        self.log.push_back(RevisionRecord {
            revision: rev,
            events,
        });
        true
    }

    /// Replays one WAL record (startup recovery). Records are effects, so this cannot fail
    /// on a well-formed log; an inconsistency means the data dir is damaged.
    pub fn apply_record(&mut self, rec: &WalRecord) -> std::result::Result<(), String> {
        for g in &rec.lease_grants {
            self.leases.insert(
                g.id,
                LeaseEntry {
                    ttl: g.ttl,
                    keys: BTreeSet::new(),
                },
            );
        }
        if rec.revision != 0 {
            if rec.revision != self.revision + 1 {
                return Err(format!(
                    "record {} writes revision {} but the store is at revision {}",
                    rec.lsn, rec.revision, self.revision
                ));
            }
            let mut events = Vec::with_capacity(rec.writes.len());
            for w in &rec.writes {
                if w.delete {
                    events.extend(self.apply_delete(rec.revision, w.key.clone()));
                } else {
                    events.push(self.apply_put(
                        rec.revision,
                        w.key.clone(),
                        w.value.clone(),
                        w.lease,
                    ));
                }
            }
            if !self.finish_revision(rec.revision, events) {
                return Err(format!("record {} has a revision but no changes", rec.lsn));
            }
        }
        for id in &rec.lease_revokes {
            self.leases.remove(id);
        }
        if rec.compact != 0 {
            if rec.compact > self.revision {
                return Err(format!(
                    "record {} compacts at revision {} beyond the store revision {}",
                    rec.lsn, rec.compact, self.revision
                ));
            }
            self.do_compact(rec.compact);
        }
        Ok(())
    }

    pub fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<WalRecord> {
        if ttl > MAX_LEASE_TTL {
            return Err(StoreError::LeaseTtlTooLarge);
        }
        if self.leases.contains_key(&id) {
            return Err(StoreError::LeaseExists);
        }
        self.leases.insert(
            id,
            LeaseEntry {
                ttl,
                keys: BTreeSet::new(),
            },
        );
        Ok(WalRecord {
            lease_grants: vec![LeaseRecord { id, ttl }],
            ..Default::default()
        })
    }

    /// Revokes a lease, deleting every key attached to it in one revision.
    pub fn lease_revoke(&mut self, id: i64) -> Result<WalRecord> {
        let lease = self.leases.get(&id).ok_or(StoreError::LeaseNotFound)?;
        let keys: Vec<Bytes> = lease.keys.iter().cloned().collect();
        let rev = self.revision + 1;
        let mut writes = Vec::new();
        let mut events = Vec::new();
        for key in keys {
            if let Some(event) = self.apply_delete(rev, key.clone()) {
                writes.push(WalWrite {
                    delete: true,
                    key,
                    ..Default::default()
                });
                events.push(event);
            }
        }
        let used = self.finish_revision(rev, events);
        self.leases.remove(&id);
        Ok(WalRecord {
            revision: if used { rev } else { 0 },
            writes,
            lease_revokes: vec![id],
            ..Default::default()
        })
    }

    pub fn compact(&mut self, rev: i64) -> Result<WalRecord> {
        if rev <= self.compact_revision {
            return Err(StoreError::Compacted);
        }
        if rev > self.revision {
            return Err(StoreError::FutureRevision);
        }
        self.do_compact(rev);
        Ok(WalRecord {
            compact: rev,
            ..Default::default()
        })
    }

    fn do_compact(&mut self, rev: i64) {
        // Only keys written below `rev` since the last compaction can have history to drop,
        // and the log names exactly those.
        let mut touched = BTreeSet::new();
        while let Some(front) = self.log.front() {
            if front.revision >= rev {
                break;
            }
            let record = self.log.pop_front().expect("front exists");
            touched.extend(record.events.into_iter().map(|e| e.key));
        }
        for key in touched {
            let Some(history) = self.keys.get_mut(&key) else {
                continue;
            };
            let at_or_below = history.partition_point(|v| v.mod_revision <= rev);
            if at_or_below == 0 {
                continue;
            }
            let newest = &history[at_or_below - 1];
            let cut = if newest.is_tombstone() && newest.mod_revision < rev {
                at_or_below
            } else {
                at_or_below - 1
            };
            for v in history.drain(..cut) {
                self.live_bytes -= cost(&key, &v.value);
            }
            if history.is_empty() {
                self.keys.remove(&key);
            }
        }
        self.compact_revision = rev;
    }

    /// Revision records in `[from, to]`, at most `max` of them. Errors if `from` was compacted.
    pub fn records(&self, from: i64, to: i64, max: usize) -> Result<Vec<RevisionRecord>> {
        if from < self.compact_revision {
            return Err(StoreError::Compacted);
        }
        let start = self.log.partition_point(|r| r.revision < from);
        Ok(self
            .log
            .range(start..)
            .take_while(|r| r.revision <= to)
            .take(max)
            .cloned()
            .collect())
    }

    /// The keys attached to a lease.
    pub fn lease_keys(&self, id: i64) -> Option<Vec<Bytes>> {
        self.leases
            .get(&id)
            .map(|l| l.keys.iter().cloned().collect())
    }

    /// etcd's `HashKV`: a CRC-32 over every retained key version with revision <= `rev`.
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64)> {
        let rev = self.read_revision(rev, self.revision)?;
        let mut h = crc32fast::Hasher::new();
        for (key, history) in &self.keys {
            for v in history.iter().take_while(|v| v.mod_revision <= rev) {
                h.update(key);
                h.update(&v.mod_revision.to_be_bytes());
                h.update(&v.create_revision.to_be_bytes());
                h.update(&v.version.to_be_bytes());
                h.update(&v.lease.to_be_bytes());
                h.update(&v.value);
            }
        }
        Ok((h.finalize(), rev))
    }

    pub fn to_snapshot(&self, lsn: u64) -> SnapshotState {
        SnapshotState {
            lsn,
            revision: self.revision,
            compact_revision: self.compact_revision,
            keys: self
                .keys
                .iter()
                .map(|(key, history)| SnapshotKey {
                    key: key.clone(),
                    versions: history
                        .iter()
                        .map(|v| SnapshotVersion {
                            create_revision: v.create_revision,
                            mod_revision: v.mod_revision,
                            version: v.version,
                            lease: v.lease,
                            value: v.value.clone(),
                        })
                        .collect(),
                })
                .collect(),
            leases: self
                .leases
                .iter()
                .map(|(id, l)| LeaseRecord {
                    id: *id,
                    ttl: l.ttl,
                })
                .collect(),
        }
    }

    /// Rebuilds the state (key index, revision log, lease attachments) from a snapshot.
    pub fn from_snapshot(snap: SnapshotState) -> std::result::Result<Mvcc, String> {
        let mut m = Mvcc {
            revision: snap.revision,
            compact_revision: snap.compact_revision,
            ..Mvcc::new()
        };
        for l in snap.leases {
            m.leases.insert(
                l.id,
                LeaseEntry {
                    ttl: l.ttl,
                    keys: BTreeSet::new(),
                },
            );
        }
        let mut by_revision: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
        for k in snap.keys {
            let mut history: Vec<Arc<Version>> = Vec::with_capacity(k.versions.len());
            for v in k.versions {
                if v.mod_revision > snap.revision
                    || history
                        .last()
                        .is_some_and(|p| p.mod_revision >= v.mod_revision)
                {
                    return Err(format!(
                        "key {:?} has versions out of order",
                        String::from_utf8_lossy(&k.key)
                    ));
                }
                m.live_bytes += cost(&k.key, &v.value);
                let version = Arc::new(Version {
                    create_revision: v.create_revision,
                    mod_revision: v.mod_revision,
                    version: v.version,
                    lease: v.lease,
                    value: v.value,
                });
                if version.mod_revision >= snap.compact_revision {
                    by_revision
                        .entry(version.mod_revision)
                        .or_default()
                        .push(Event {
                            key: k.key.clone(),
                            kv: version.clone(),
                            prev: history.last().filter(|p| !p.is_tombstone()).cloned(),
                        });
                }
                history.push(version);
            }
            if let Some(latest) = history.last().filter(|v| !v.is_tombstone()) {
                if latest.lease != 0 {
                    match m.leases.get_mut(&latest.lease) {
                        Some(l) => {
                            l.keys.insert(k.key.clone());
                        }
                        None => {
                            return Err(format!(
                                "key {:?} is attached to lease {:x}, which does not exist",
                                String::from_utf8_lossy(&k.key),
                                latest.lease
                            ))
                        }
                    }
                }
            }
            if !history.is_empty() {
                m.keys.insert(k.key, history);
            }
        }
        m.log = by_revision
            .into_iter()
            .map(|(revision, events)| RevisionRecord { revision, events })
            .collect();
        Ok(m)
    }
}

fn compare_version(c: &PbCompare, v: Option<&Arc<Version>>) -> bool {
    let ord = match c.target {
        compare_target::VALUE => {
            let want: &[u8] = match &c.target_union {
                Some(PbTargetUnion::Value(x)) => x,
                _ => &[],
            };
            v.map_or(&[][..], |v| &v.value[..]).cmp(want)
        }
        target => {
            let actual = v.map_or(0, |v| match target {
                compare_target::VERSION => v.version,
                compare_target::CREATE => v.create_revision,
                compare_target::MOD => v.mod_revision,
                compare_target::LEASE => v.lease,
                _ => 0,
            });
            let want = match &c.target_union {
                Some(PbTargetUnion::Version(x))
                | Some(PbTargetUnion::CreateRevision(x))
                | Some(PbTargetUnion::ModRevision(x))
                | Some(PbTargetUnion::Lease(x)) => *x,
                _ => 0,
            };
            actual.cmp(&want)
        }
    };
    match c.result {
        compare_result::EQUAL => ord == Ordering::Equal,
        compare_result::GREATER => ord == Ordering::Greater,
        compare_result::LESS => ord == Ordering::Less,
        compare_result::NOT_EQUAL => ord != Ordering::Equal,
        _ => false,
    }
}

/// Static validation of a transaction (etcd's `checkTxnRequest`).
fn check_txn_request(req: &PbTxnRequest, max_ops: usize) -> Result<()> {
    if req.compare.len() > max_ops || req.success.len() > max_ops || req.failure.len() > max_ops {
        return Err(StoreError::TooManyOps);
    }
    for c in &req.compare {
        if c.key.is_empty() {
            return Err(StoreError::EmptyKey);
        }
        if !(compare_result::EQUAL..=compare_result::NOT_EQUAL).contains(&c.result)
            || !(compare_target::VERSION..=compare_target::LEASE).contains(&c.target)
        {
            return Err(StoreError::InvalidArgument(
                "unknown compare result or target".into(),
            ));
        }
    }
    for op in req.success.iter().chain(&req.failure) {
        match &op.request {
            Some(PbTxnOpRequest::RequestRange(r)) if r.key.is_empty() => {
                return Err(StoreError::EmptyKey)
            }
            Some(PbTxnOpRequest::RequestPut(p)) => check_put(p)?,
            Some(PbTxnOpRequest::RequestDeleteRange(d)) if d.key.is_empty() => {
                return Err(StoreError::EmptyKey)
            }
            Some(PbTxnOpRequest::RequestTxn(t)) => check_txn_request(t, max_ops)?,
            _ => {}
        }
    }
    Ok(())
}

pub fn check_put(p: &PbPutRequest) -> Result<()> {
    if p.key.is_empty() {
        return Err(StoreError::EmptyKey);
    }
    if p.ignore_value && !p.value.is_empty() {
        return Err(StoreError::ValueProvided);
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(StoreError::LeaseProvided);
    }
    Ok(())
}

/// etcd's `checkIntervals`: within one branch a key may be put at most once and not also be
/// deleted. Returns the branch's puts and deletes for the enclosing level.
fn check_intervals(
    ops: &[etcd_client::proto::PbTxnRequestOp],
) -> Result<(BTreeSet<Vec<u8>>, Vec<KeyRange>)> {
    let mut dels: Vec<KeyRange> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(PbTxnOpRequest::RequestDeleteRange(d)) => {
                Some(KeyRange::new(&d.key, &d.range_end))
            }
            _ => None,
        })
        .collect();
    let hits = |dels: &[KeyRange], key: &[u8]| dels.iter().any(|d| d.contains(key));
    let mut puts: BTreeSet<Vec<u8>> = BTreeSet::new();
    for op in ops {
        let Some(PbTxnOpRequest::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || hits(&dels, k) {
                return Err(StoreError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            // The two branches exclude each other, so the same key in both is fine.
            if (puts.contains(k) && !puts_then.contains(k)) || hits(&dels, k) {
                return Err(StoreError::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in ops {
        if let Some(PbTxnOpRequest::RequestPut(p)) = &op.request {
            if puts.contains(&p.key) || hits(&dels, &p.key) {
                return Err(StoreError::DuplicateKey);
            }
            puts.insert(p.key.clone());
        }
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests;
