//! The durable store: MVCC state + write-ahead log with group commit + leases.
//!
//! Write path: a writer applies its change to the in-memory state under the state lock and
//! appends the encoded WAL record to a shared buffer (still under the lock, so log order is
//! revision order). One flusher thread writes whatever has accumulated and issues a single
//! `fdatasync` for all of it (group commit), then publishes the new durable position. A writer
//! is answered only once its record is durable.
//!
//! Readers see only durable revisions: `Range` reads at the durable revision, and watches
//! deliver events only up to it. So no client can observe a write that a crash could still
//! take back.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::proto::{
    PbDeleteRequest, PbDeleteResponse, PbPutRequest, PbPutResponse, PbRangeRequest,
    PbRangeResponse, PbTxnOpRequest, PbTxnOpResponse, PbTxnRequest, PbTxnRequestOp, PbTxnResponse,
};
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::{oneshot, watch};

use crate::datadir::{write_snapshot, DataDirError, Disk, Identity};
use crate::error::{Result, StoreError};
use crate::mvcc::{check_put, Limits, Mvcc, RevisionRecord};
use crate::record::{SnapshotState, WalRecord};
use crate::wal::encode_record;

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub limits: Limits,
    /// Write a checkpoint and start a new WAL once the WAL grows past this.
    pub checkpoint_wal_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            limits: Limits::default(),
            checkpoint_wal_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The durable position published by the flusher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durable {
    pub lsn: u64,
    pub revision: i64,
    /// The WAL could not be written; nothing further will become durable.
    pub failed: bool,
}

#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    /// Last assigned log sequence number.
    lsn: u64,
    /// Revision of the newest buffered record.
    revision: i64,
    shutdown: bool,
}

pub struct Store {
    mvcc: RwLock<Mvcc>,
    pending: Mutex<Pending>,
    pending_cv: Condvar,
    disk: Mutex<Disk>,
    durable: watch::Sender<Durable>,
    /// Writers waiting for their record to be durable, by log position. A flush wakes only
    /// the writers it made durable (a watch channel would wake all of them on every flush).
    waiters: Mutex<BTreeMap<u64, Vec<oneshot::Sender<bool>>>>,
    visible_revision: AtomicI64,
    failed: AtomicBool,
    lease_deadlines: Mutex<HashMap<i64, Instant>>,
    /// A checkpoint is being written (at most one at a time).
    checkpointing: Mutex<bool>,
    checkpoint_done: Condvar,
    identity: Identity,
    config: StoreConfig,
}

impl Store {
    /// Opens the data dir, recovers the state and starts the flusher thread.
    pub fn open(dir: &Path, config: StoreConfig) -> std::result::Result<Arc<Store>, DataDirError> {
        let recovered = Disk::open(dir)?;
        let revision = recovered.mvcc.revision();
        let now = Instant::now();
        // Keep-alives are not logged, so a restarted store cannot know how much of a lease's
        // TTL had run; like etcd it grants every lease its full TTL again (never early expiry).
        let deadlines = recovered
            .mvcc
            .leases()
            .iter()
            .map(|(id, l)| (*id, now + Duration::from_secs(l.ttl.max(0) as u64)))
            .collect();
        let durable = Durable {
            lsn: recovered.lsn,
            revision,
            failed: false,
        };
        let store = Arc::new(Store {
            mvcc: RwLock::new(recovered.mvcc),
            pending: Mutex::new(Pending {
                lsn: recovered.lsn,
                revision,
                ..Default::default()
            }),
            pending_cv: Condvar::new(),
            disk: Mutex::new(recovered.disk),
            durable: watch::channel(durable).0,
            waiters: Mutex::new(BTreeMap::new()),
            visible_revision: AtomicI64::new(revision),
            failed: AtomicBool::new(false),
            lease_deadlines: Mutex::new(deadlines),
            checkpointing: Mutex::new(false),
            checkpoint_done: Condvar::new(),
            identity: recovered.identity,
            config,
        });
        let flusher = store.clone();
        std::thread::Builder::new()
            .name("store-wal-flusher".into())
            .spawn(move || flusher.flush_loop())
            .expect("spawn WAL flusher");
        Ok(store)
    }

    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// The newest revision readers may see.
    pub fn visible_revision(&self) -> i64 {
        self.visible_revision.load(Ordering::Acquire)
    }

    pub fn compact_revision(&self) -> i64 {
        self.mvcc.read().compact_revision()
    }

    pub fn subscribe(&self) -> watch::Receiver<Durable> {
        self.durable.subscribe()
    }

    pub fn durable(&self) -> Durable {
        *self.durable.borrow()
    }

    /// Stops the flusher after it has written what is buffered.
    pub fn shutdown(&self) {
        self.pending.lock().shutdown = true;
        self.pending_cv.notify_all();
    }

    fn flush_loop(self: Arc<Self>) {
        let mut spare = Vec::new();
        loop {
            let (buf, lsn, revision) = {
                let mut p = self.pending.lock();
                while p.buf.is_empty() && !p.shutdown {
                    self.pending_cv.wait(&mut p);
                }
                if p.buf.is_empty() {
                    return;
                }
                (
                    std::mem::replace(&mut p.buf, std::mem::take(&mut spare)),
                    p.lsn,
                    p.revision,
                )
            };
            let (wal, snap) = {
                let mut disk = self.disk.lock();
                if let Err(e) = disk.append(&buf) {
                    self.fail(e);
                    return;
                }
                (disk.wal_size(), disk.snap_size())
            };
            self.publish(lsn, revision);
            spare = buf;
            spare.clear();
            // The WAL may grow as large as the last snapshot before the next one: writing
            // snapshots then costs at most the bytes the WAL itself took (a fixed threshold
            // rewrote the whole state every 64 MiB; at etcdctl check perf's xl load, 1.2 GB of
            // state, that was most of the disk's time).
            if wal > self.config.checkpoint_wal_bytes.max(snap) {
                if let Err(e) = self.clone().checkpoint_in_background() {
                    self.fail(e);
                    return;
                }
            }
        }
    }

    /// Starts a checkpoint unless one is being written: captures the state and starts a new
    /// WAL file here (a pause for writers as long as the capture), then writes the snapshot on
    /// a thread of its own while the WAL goes on.
    fn checkpoint_in_background(self: Arc<Self>) -> std::result::Result<(), DataDirError> {
        {
            let mut busy = self.checkpointing.lock();
            if *busy {
                return Ok(());
            }
            *busy = true;
        }
        let (state, path) = match self.capture_and_rotate() {
            Ok(captured) => captured,
            Err(e) => {
                self.checkpoint_finished();
                return Err(e);
            }
        };
        std::thread::Builder::new()
            .name("store-checkpoint".into())
            .spawn(move || {
                let written = write_snapshot(&path, &state)
                    .and_then(|size| self.disk.lock().retire(state.lsn, size));
                self.checkpoint_finished();
                if let Err(e) = written {
                    self.fail(e);
                }
            })
            .expect("spawn checkpoint writer");
        Ok(())
    }

    fn checkpoint_finished(&self) {
        *self.checkpointing.lock() = false;
        self.checkpoint_done.notify_all();
    }

    /// Flushes what is buffered, captures the whole state and starts a new WAL file after it.
    fn capture_and_rotate(
        &self,
    ) -> std::result::Result<(SnapshotState, std::path::PathBuf), DataDirError> {
        let (state, mut disk) = self.capture()?;
        disk.rotate(state.lsn)?;
        let path = disk.snapshot_path(state.lsn);
        Ok((state, path))
    }

    fn fail(&self, e: DataDirError) {
        tracing::error!(error = %e, "WAL write failed; the store stops accepting writes");
        self.failed.store(true, Ordering::Release);
        self.durable.send_modify(|d| d.failed = true);
        for (_, waiters) in std::mem::take(&mut *self.waiters.lock()) {
            for waiter in waiters {
                let _ = waiter.send(false);
            }
        }
    }

    fn publish(&self, lsn: u64, revision: i64) {
        self.visible_revision.fetch_max(revision, Ordering::AcqRel);
        self.durable.send_modify(|d| {
            d.lsn = d.lsn.max(lsn);
            d.revision = d.revision.max(revision);
        });
        // After the durable position moved (see wait_durable for why the order matters).
        let woken = {
            let mut waiters = self.waiters.lock();
            let later = waiters.split_off(&(lsn + 1));
            std::mem::replace(&mut *waiters, later)
        };
        for waiter in woken.into_values().flatten() {
            let _ = waiter.send(true);
        }
    }

    /// Writes out whatever is buffered (caller holds the pending lock and the disk lock).
    fn flush_now(&self, p: &mut Pending, disk: &mut Disk) -> std::result::Result<(), DataDirError> {
        if !p.buf.is_empty() {
            disk.append(&p.buf)?;
            p.buf.clear();
            self.publish(p.lsn, p.revision);
        }
        Ok(())
    }

    /// Flushes everything buffered and captures the whole state, all of it durable. Returns
    /// the disk still locked, so no later record reaches the WAL before the caller is done.
    fn capture(
        &self,
    ) -> std::result::Result<(SnapshotState, parking_lot::MutexGuard<'_, Disk>), DataDirError> {
        let mvcc = self.mvcc.read();
        let mut p = self.pending.lock();
        let mut disk = self.disk.lock();
        self.flush_now(&mut p, &mut disk)?;
        Ok((mvcc.to_snapshot(p.lsn), disk))
    }

    /// Writes a checkpoint (snapshot) and starts a new WAL, shrinking the data on disk to the
    /// retained state. This is what `Defragment` does.
    pub fn checkpoint(&self) -> std::result::Result<(), DataDirError> {
        // One checkpoint at a time: wait for one being written in the background.
        let mut busy = self.checkpointing.lock();
        while *busy {
            self.checkpoint_done.wait(&mut busy);
        }
        *busy = true;
        drop(busy);
        // Writers continue in memory while the snapshot is written; their records wait in the
        // buffer until the new WAL exists (the flusher needs the disk lock held here).
        let written = self
            .capture()
            .and_then(|(state, mut disk)| disk.checkpoint(&state));
        self.checkpoint_finished();
        written
    }

    /// The full state as an etcd snapshot (bbolt and its sha256), everything in it durable
    /// (`Maintenance/Snapshot`). Encoded after the locks are released.
    pub fn snapshot(&self) -> std::result::Result<Vec<u8>, DataDirError> {
        let (state, disk) = self.capture()?;
        drop(disk);
        Ok(crate::snapshot::etcd::encode(&state))
    }

    pub fn disk_bytes(&self) -> u64 {
        self.disk.lock().size()
    }

    /// Applies a change under the state lock and queues its WAL record. Returns the change's
    /// result and the log position to wait for.
    fn commit<T>(
        &self,
        change: impl FnOnce(&mut Mvcc) -> Result<(T, Option<WalRecord>)>,
    ) -> Result<(T, u64, i64)> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StoreError::Storage("the WAL cannot be written".into()));
        }
        let mut mvcc = self.mvcc.write();
        let (out, record) = change(&mut mvcc)?;
        let mut p = self.pending.lock();
        if let Some(mut record) = record {
            p.lsn += 1;
            record.lsn = p.lsn;
            if record.revision != 0 {
                p.revision = record.revision;
            }
            encode_record(&record, &mut p.buf);
            self.pending_cv.notify_one();
        }
        Ok((out, p.lsn, mvcc.revision()))
    }

    /// Waits until the log is durable through `lsn`.
    pub async fn wait_durable(&self, lsn: u64) -> Result<()> {
        let failed = || StoreError::Storage("the WAL cannot be written".into());
        let waiter = {
            let mut waiters = self.waiters.lock();
            // Checked under the waiters lock: `publish` moves the durable position before it
            // takes this lock, so either we see the new position here or it sees our entry.
            let d = self.durable();
            if d.lsn >= lsn {
                return Ok(());
            }
            if d.failed {
                return Err(failed());
            }
            let (tx, rx) = oneshot::channel();
            waiters.entry(lsn).or_default().push(tx);
            rx
        };
        match waiter.await {
            Ok(true) => Ok(()),
            Ok(false) => Err(failed()),
            Err(_) => Err(StoreError::Storage("store stopped".into())),
        }
    }

    async fn commit_durably<T>(
        &self,
        change: impl FnOnce(&mut Mvcc) -> Result<(T, Option<WalRecord>)>,
    ) -> Result<(T, i64)> {
        let (out, lsn, revision) = self.commit(change)?;
        self.wait_durable(lsn).await?;
        Ok((out, revision))
    }

    pub fn range(&self, req: &PbRangeRequest) -> Result<(PbRangeResponse, i64)> {
        let visible = self.visible_revision();
        let resp = self.mvcc.read().range(req, visible)?;
        Ok((resp, visible))
    }

    /// A transaction; returns the response and the store revision after it.
    pub async fn txn(&self, req: PbTxnRequest) -> Result<(PbTxnResponse, i64)> {
        let limits = self.config.limits;
        self.commit_durably(|m| m.txn(&req, &limits)).await
    }

    pub async fn put(&self, req: PbPutRequest) -> Result<(PbPutResponse, i64)> {
        check_put(&req)?;
        let (resp, rev) = self.txn(single_op(PbTxnOpRequest::RequestPut(req))).await?;
        match resp.responses.into_iter().next().and_then(|r| r.response) {
            Some(PbTxnOpResponse::ResponsePut(p)) => Ok((p, rev)),
            _ => unreachable!("a one-put transaction answers with a put response"),
        }
    }

    pub async fn delete_range(&self, req: PbDeleteRequest) -> Result<(PbDeleteResponse, i64)> {
        if req.key.is_empty() {
            return Err(StoreError::EmptyKey);
        }
        let (resp, rev) = self
            .txn(single_op(PbTxnOpRequest::RequestDeleteRange(req)))
            .await?;
        match resp.responses.into_iter().next().and_then(|r| r.response) {
            Some(PbTxnOpResponse::ResponseDeleteRange(d)) => Ok((d, rev)),
            _ => unreachable!("a one-delete transaction answers with a delete response"),
        }
    }

    pub async fn compact(&self, revision: i64) -> Result<i64> {
        let visible = self.visible_revision();
        let (_, rev) = self
            .commit_durably(|m| {
                if revision > visible {
                    return Err(StoreError::FutureRevision);
                }
                Ok(((), Some(m.compact(revision)?)))
            })
            .await?;
        Ok(rev)
    }

    /// Revision records in `[from, to]` for watchers.
    pub fn records(&self, from: i64, to: i64, max: usize) -> Result<Vec<RevisionRecord>> {
        self.mvcc.read().records(from, to, max)
    }

    pub fn hash_kv(&self, revision: i64) -> Result<(u32, i64, i64)> {
        let m = self.mvcc.read();
        let (hash, rev) = m.hash_kv(revision)?;
        Ok((hash, rev, m.compact_revision()))
    }

    pub fn live_bytes(&self) -> u64 {
        self.mvcc.read().live_bytes()
    }

    pub fn lsn(&self) -> u64 {
        self.durable().lsn
    }

    // ---- leases ----

    /// Grants a lease; `id == 0` picks a fresh id. Returns (id, ttl, revision).
    pub async fn lease_grant(&self, id: i64, ttl: i64) -> Result<(i64, i64, i64)> {
        if id < 0 {
            return Err(StoreError::InvalidArgument(
                "lease ID must be positive".into(),
            ));
        }
        let ttl = ttl.max(1);
        let (id, rev) = self
            .commit_durably(|m| {
                let id = if id != 0 {
                    id
                } else {
                    loop {
                        let candidate = (rand::random::<u64>() >> 1) as i64;
                        if candidate != 0 && !m.leases().contains_key(&candidate) {
                            break candidate;
                        }
                    }
                };
                let record = m.lease_grant(id, ttl)?;
                self.lease_deadlines
                    .lock()
                    .insert(id, Instant::now() + Duration::from_secs(ttl as u64));
                Ok((id, Some(record)))
            })
            .await?;
        Ok((id, ttl, rev))
    }

    /// Revokes a lease and deletes its keys; returns the revision after.
    pub async fn lease_revoke(&self, id: i64) -> Result<i64> {
        let ((), rev) = self
            .commit_durably(|m| {
                let record = m.lease_revoke(id)?;
                self.lease_deadlines.lock().remove(&id);
                Ok(((), Some(record)))
            })
            .await?;
        Ok(rev)
    }

    /// Renews a lease; returns its TTL, or None if it does not exist.
    pub fn lease_keep_alive(&self, id: i64) -> Option<i64> {
        let ttl = self.mvcc.read().leases().get(&id).map(|l| l.ttl)?;
        let mut deadlines = self.lease_deadlines.lock();
        let deadline = deadlines.get_mut(&id)?;
        if *deadline <= Instant::now() {
            return None; // expired; the expiry task is about to revoke it
        }
        *deadline = Instant::now() + Duration::from_secs(ttl as u64);
        Some(ttl)
    }

    /// (granted TTL, remaining seconds, attached keys) of a lease.
    pub fn lease_time_to_live(&self, id: i64) -> Option<(i64, i64, Vec<bytes::Bytes>)> {
        let m = self.mvcc.read();
        let lease = m.leases().get(&id)?;
        let remaining = self
            .lease_deadlines
            .lock()
            .get(&id)
            .map(|d| d.saturating_duration_since(Instant::now()).as_secs() as i64)
            .unwrap_or(0);
        Some((lease.ttl, remaining, lease.keys.iter().cloned().collect()))
    }

    pub fn lease_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.mvcc.read().leases().keys().copied().collect();
        ids.sort();
        ids
    }

    /// Revokes every expired lease. Run periodically by the server.
    pub async fn expire_leases(&self) {
        let now = Instant::now();
        let expired: Vec<i64> = self
            .lease_deadlines
            .lock()
            .iter()
            .filter(|(_, d)| **d <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            match self.lease_revoke(id).await {
                Ok(_) | Err(StoreError::LeaseNotFound) => {
                    tracing::debug!(lease = id, "lease expired");
                }
                Err(e) => tracing::warn!(lease = id, error = %e, "could not revoke expired lease"),
            }
        }
    }
}

fn single_op(request: PbTxnOpRequest) -> PbTxnRequest {
    PbTxnRequest {
        compare: Vec::new(),
        success: vec![PbTxnRequestOp {
            request: Some(request),
        }],
        failure: Vec::new(),
    }
}
