//! The watch cache (upstream's Cacher): one store watch per resource, fanned out to any number of
//! API watchers. It keeps the current objects (for `watch` without a resourceVersion and lists at
//! resourceVersion=0) and a window of recent events (to resume watches from a resourceVersion).
//! Events are handed to watchers in revision order under one lock, so a watcher that replays the
//! window and then subscribes sees every event exactly once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{EventType as EtcdEventType, WatchOptions};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{broadcast, Notify};

use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceInfo;
use crate::storage::{decode_value, set_resource_version, Storage};

/// How many recent events each resource keeps for resuming watches.
const HISTORY_CAPACITY: usize = 10_000;
/// How many store revisions back a new cache starts its window (replayed from the store).
const START_BACKLOG: i64 = 5_000;
/// Events in flight per resource before a slow watcher is cut off (it re-watches from its last RV).
const FANOUT_CAPACITY: usize = 16_384;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

pub struct WatchEvent {
    pub kind: EventType,
    pub key: String,
    pub revision: i64,
    /// The object after the event (for DELETED: its last state), resourceVersion = revision.
    pub object: Arc<Value>,
    /// The object before the event, so selector watchers see objects leave and enter.
    pub previous: Option<Arc<Value>>,
    /// `{"type":…,"object":…}\n`, encoded once for all JSON watchers.
    line: OnceLock<Bytes>,
}

impl WatchEvent {
    fn new(
        kind: EventType,
        key: String,
        revision: i64,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) -> WatchEvent {
        WatchEvent {
            kind,
            key,
            revision,
            object,
            previous,
            line: OnceLock::new(),
        }
    }

    pub fn json_line(&self) -> Bytes {
        self.line
            .get_or_init(|| encode_line(self.kind.as_str(), &self.object))
            .clone()
    }
}

pub fn encode_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object}))
        .expect("JSON values serialise");
    line.push(b'\n');
    Bytes::from(line)
}

struct State {
    objects: HashMap<String, Arc<Value>>,
    history: VecDeque<Arc<WatchEvent>>,
    /// The window holds every event with revision > `oldest`.
    oldest: i64,
    /// Everything up to this store revision has been applied.
    revision: i64,
    ready: bool,
    /// Bumped on every relist; watchers from an older generation are ended.
    generation: u64,
    /// Bumped whenever the cached objects change (a relist or a batch of events), so state
    /// derived from them (the RBAC index) knows when to rebuild.
    changes: u64,
}

pub struct Cacher {
    pub info: &'static ResourceInfo,
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<WatchEvent>>,
    /// Wakes waiters when `revision` moves.
    advanced: Notify,
    /// Asks the store watch for a progress notification (a waiter needs a fresher revision).
    want_progress: Notify,
}

/// What a new watcher starts from.
pub struct WatchStart {
    pub initial: Vec<Arc<WatchEvent>>,
    pub rx: broadcast::Receiver<Arc<WatchEvent>>,
    pub generation: u64,
}

impl Cacher {
    fn new(info: &'static ResourceInfo) -> Arc<Cacher> {
        let (tx, _) = broadcast::channel(FANOUT_CAPACITY);
        Arc::new(Cacher {
            info,
            state: Mutex::new(State {
                objects: HashMap::new(),
                history: VecDeque::new(),
                oldest: 0,
                revision: 0,
                ready: false,
                generation: 0,
                changes: 0,
            }),
            tx,
            advanced: Notify::new(),
            want_progress: Notify::new(),
        })
    }

    pub fn revision(&self) -> i64 {
        self.state.lock().revision
    }

    pub fn generation(&self) -> u64 {
        self.state.lock().generation
    }

    /// Moves whenever the cached objects change.
    pub fn changes(&self) -> u64 {
        self.state.lock().changes
    }

    /// Waits until the cache has seen `revision` (a client's resourceVersion may come from a
    /// fresher read than the cache). Fails with a 504 after a few seconds, as upstream does.
    pub async fn wait_for(&self, revision: i64) -> ApiResult<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            let notified = self.advanced.notified();
            {
                let s = self.state.lock();
                if s.ready && s.revision >= revision {
                    return Ok(());
                }
            }
            self.want_progress.notify_one();
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(ApiError::timeout(format!(
                    "Too large resource version: {revision}, current: {}",
                    self.revision()
                )));
            }
        }
    }

    /// How many objects the cache holds (flow control's estimate of a list's work).
    pub fn len(&self) -> usize {
        self.state.lock().objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cached object at `key`, if any.
    pub fn lookup(&self, key: &str) -> Option<Arc<Value>> {
        self.state.lock().objects.get(key).cloned()
    }

    /// Current objects under `prefix` (a namespace or the whole resource) and the revision.
    pub fn snapshot(&self, prefix: &str) -> (Vec<Arc<Value>>, i64) {
        let s = self.state.lock();
        let mut items: Vec<(&String, &Arc<Value>)> = s
            .objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .collect();
        items.sort_by(|a, b| a.0.cmp(b.0));
        (
            items.into_iter().map(|(_, v)| v.clone()).collect(),
            s.revision,
        )
    }

    /// Starts a watcher: `from = None` replays the current state as ADDED events; `Some(rv)`
    /// replays the window after rv, or fails with 410 Expired when rv has left the window.
    pub fn start_watch(&self, from: Option<i64>, prefix: &str) -> ApiResult<WatchStart> {
        let s = self.state.lock();
        let initial: Vec<Arc<WatchEvent>> = match from {
            None => {
                let mut items: Vec<(&String, &Arc<Value>)> = s
                    .objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(prefix))
                    .collect();
                items.sort_by(|a, b| a.0.cmp(b.0));
                items
                    .into_iter()
                    .map(|(k, v)| {
                        let rv = v["metadata"]["resourceVersion"]
                            .as_str()
                            .and_then(|r| r.parse().ok())
                            .unwrap_or(0);
                        Arc::new(WatchEvent::new(
                            EventType::Added,
                            k.clone(),
                            rv,
                            v.clone(),
                            None,
                        ))
                    })
                    .collect()
            }
            Some(rv) => {
                if rv < s.oldest {
                    return Err(ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        s.oldest + 1
                    )));
                }
                s.history
                    .iter()
                    .filter(|e| e.revision > rv && e.key.starts_with(prefix))
                    .cloned()
                    .collect()
            }
        };
        Ok(WatchStart {
            initial,
            rx: self.tx.subscribe(),
            generation: s.generation,
        })
    }

    fn reset(&self, objects: HashMap<String, Arc<Value>>, revision: i64) {
        let mut s = self.state.lock();
        s.objects = objects;
        s.history.clear();
        s.oldest = revision;
        s.revision = revision;
        s.ready = true;
        s.generation += 1;
        s.changes += 1;
        drop(s);
        self.advanced.notify_waiters();
    }

    fn apply(&self, events: Vec<(EventType, String, i64, Arc<Value>)>, revision: i64) {
        let mut s = self.state.lock();
        if !events.is_empty() {
            s.changes += 1;
        }
        for (kind, key, rev, object) in events {
            let previous = match kind {
                EventType::Deleted => s.objects.remove(&key),
                _ => s.objects.insert(key.clone(), object.clone()),
            };
            let event = Arc::new(WatchEvent::new(kind, key, rev, object, previous));
            s.history.push_back(event.clone());
            if s.history.len() > HISTORY_CAPACITY {
                if let Some(dropped) = s.history.pop_front() {
                    s.oldest = dropped.revision;
                }
            }
            // No receivers is fine: nobody is watching this resource right now.
            let _ = self.tx.send(event);
        }
        if revision > s.revision {
            s.revision = revision;
        }
        drop(s);
        self.advanced.notify_waiters();
    }

    /// Lists, then follows the store watch; relists when the watch breaks or is compacted away.
    async fn run(self: Arc<Self>, storage: Storage) {
        let prefix = self.info.key_prefix();
        loop {
            if let Err(e) = self.clone().list_and_watch(&storage, &prefix).await {
                tracing::warn!(resource = self.info.resource, "watch cache restarting: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    async fn list_and_watch(
        self: Arc<Self>,
        storage: &Storage,
        prefix: &str,
    ) -> anyhow::Result<()> {
        // Start the window in the past (when the store still has that history), so clients that
        // listed just before this cache started can resume their watches from their list.
        let current = storage
            .revision()
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let start = (current - START_BACKLOG).max(1);
        let page = match storage.list(prefix, None, start, 0).await {
            Ok(page) => page,
            // Compacted: begin at the present.
            Err(e) if e.code == 410 => storage
                .list(prefix, None, 0, 0)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?,
            Err(e) => anyhow::bail!(e.message),
        };
        let mut objects = HashMap::with_capacity(page.items.len());
        for item in page.items {
            objects.insert(item.key, Arc::new(item.object));
        }
        self.reset(objects, page.revision);
        let options = WatchOptions::new()
            .with_prefix()
            .with_prev_key()
            .with_progress_notify()
            .with_start_revision(page.revision + 1);
        let mut stream = storage
            .client()
            .watch_client()
            .watch(prefix, Some(options))
            .await?;
        loop {
            let message = tokio::select! {
                m = stream.message() => m?,
                _ = self.want_progress.notified() => {
                    stream.request_progress().await?;
                    continue;
                }
            };
            let Some(resp) = message else {
                anyhow::bail!("store watch ended")
            };
            if resp.canceled() {
                anyhow::bail!(
                    "store watch canceled (compacted to {}): {}",
                    resp.compact_revision(),
                    resp.cancel_reason()
                );
            }
            let header_rev = resp.header().map(|h| h.revision()).unwrap_or(0);
            let mut batch = Vec::with_capacity(resp.events().len());
            let mut last = 0;
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                let key = kv.key_str()?.to_string();
                let rev = kv.mod_revision();
                last = rev;
                match ev.event_type() {
                    EtcdEventType::Put => {
                        let stored = decode_value(&key, kv.value(), rev)
                            .map_err(|e| anyhow::anyhow!(e.message))?;
                        let kind = if kv.create_revision() == rev {
                            EventType::Added
                        } else {
                            EventType::Modified
                        };
                        batch.push((kind, key, rev, Arc::new(stored.object)));
                    }
                    EtcdEventType::Delete => {
                        // The last state, stamped with the deletion revision (as upstream).
                        let mut last_state = match ev.prev_kv() {
                            Some(p) => {
                                decode_value(&key, p.value(), rev)
                                    .map_err(|e| anyhow::anyhow!(e.message))?
                                    .object
                            }
                            None => json!({"metadata": {}}),
                        };
                        set_resource_version(&mut last_state, rev);
                        batch.push((EventType::Deleted, key, rev, Arc::new(last_state)));
                    }
                }
            }
            // Progress notifications (no events) move the revision to the header's.
            let revision = if batch.is_empty() { header_rev } else { last };
            self.apply(batch, revision);
        }
    }
}

/// All watch caches of one API server, started on first use.
pub struct Caches {
    storage: Storage,
    cachers: Mutex<HashMap<String, Arc<Cacher>>>,
}

impl Caches {
    pub fn new(storage: Storage) -> Caches {
        Caches {
            storage,
            cachers: Mutex::new(HashMap::new()),
        }
    }

    /// Starts the caches of every resource (upstream starts them with the server, so a watch
    /// never waits for an initial list).
    pub fn start_all(&self) {
        for info in crate::resources::RESOURCES.iter().filter(|r| r.is_stored()) {
            self.cacher(info);
        }
    }

    fn cacher(&self, info: &'static ResourceInfo) -> Arc<Cacher> {
        let mut map = self.cachers.lock();
        map.entry(info.key_prefix())
            .or_insert_with(|| {
                let c = Cacher::new(info);
                tokio::spawn(c.clone().run(self.storage.clone()));
                c
            })
            .clone()
    }

    /// The resource's cacher, ready (listed) before it is returned.
    pub async fn get(&self, info: &'static ResourceInfo) -> ApiResult<Arc<Cacher>> {
        let cacher = self.cacher(info);
        cacher.wait_for(0).await?;
        Ok(cacher)
    }
}
