//! `etcdserverpb.Watch`: one task per stream serves all of the stream's watchers.
//!
//! Each watcher keeps the next revision it needs. Whenever the durable revision advances the
//! task reads the revision log from the oldest needed revision (bounded batches, under a read
//! lock held only while copying `Arc`s) and sends every watcher its matching events. A watcher
//! that falls behind the compaction revision is cancelled with `compact_revision` set, as
//! etcd does. The response channel is bounded: a slow client slows only its own stream, and the
//! events it has not read stay in the shared log, not in a per-watcher queue.

use std::collections::btree_map::{BTreeMap, Entry};
use std::pin::Pin;
use std::sync::Arc;

use etcd_client::proto::{
    PbEvent, PbWatchRequest, PbWatchRequestUnion, PbWatchResponse, PbWatchService,
};
use futures::{Stream, StreamExt};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{header, ApiConfig, EtcdApi};
use crate::error::StoreError;
use crate::mvcc::{KeyRange, RevisionRecord};
use crate::store::Store;

/// Revisions read from the log per batch (etcd's `watchBatchMaxRevs`).
const BATCH_REVISIONS: usize = 1000;
/// `WatchCreateRequest.filters`.
const FILTER_NOPUT: i32 = 0;
const FILTER_NODELETE: i32 = 1;
/// Responses to a progress request concern all of a stream's watchers (etcd's InvalidWatchID).
const ALL_WATCHERS: i64 = -1;

#[tonic::async_trait]
impl PbWatchService for EtcdApi {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<PbWatchResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (tx, rx) = mpsc::channel(64);
        let session = Session {
            store: self.store.clone(),
            config: self.config.clone(),
            tx,
            watchers: BTreeMap::new(),
            next_id: 0,
        };
        tokio::spawn(session.run(request.into_inner()));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct Watcher {
    range: KeyRange,
    /// The oldest revision not yet delivered.
    next_revision: i64,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    fragment: bool,
    progress_notify: bool,
    /// Events were sent since the last progress tick (so no notification is due).
    active: bool,
}

struct Session {
    store: Arc<Store>,
    config: ApiConfig,
    tx: mpsc::Sender<Result<PbWatchResponse, Status>>,
    watchers: BTreeMap<i64, Watcher>,
    next_id: i64,
}

/// The client went away; the session ends.
struct Gone;

impl Session {
    async fn run(mut self, mut requests: Streaming<PbWatchRequest>) {
        let mut durable = self.store.subscribe();
        let mut progress = tokio::time::interval(self.config.progress_notify_interval);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        progress.tick().await;
        let client = self.tx.clone();
        loop {
            let step = tokio::select! {
                msg = requests.next() => match msg {
                    Some(Ok(req)) => self.handle(req).await,
                    Some(Err(_)) | None => Err(Gone),
                },
                changed = durable.changed() => match changed {
                    Ok(()) => self.catch_up().await,
                    Err(_) => Err(Gone),
                },
                _ = progress.tick() => self.progress_tick().await,
                _ = client.closed() => Err(Gone),
            };
            if step.is_err() {
                return;
            }
        }
    }

    async fn send(&self, resp: PbWatchResponse) -> Result<(), Gone> {
        self.tx.send(Ok(resp)).await.map_err(|_| Gone)
    }

    fn response(&self, watch_id: i64, revision: i64) -> PbWatchResponse {
        PbWatchResponse {
            header: header(&self.store, revision),
            watch_id,
            ..Default::default()
        }
    }

    async fn handle(&mut self, req: PbWatchRequest) -> Result<(), Gone> {
        match req.request_union {
            Some(PbWatchRequestUnion::CreateRequest(c)) => {
                let visible = self.store.visible_revision();
                let mut resp = self.response(c.watch_id, visible);
                resp.created = true;
                let range = KeyRange::new(&c.key, &c.range_end);
                let empty = matches!(&range, KeyRange::Between(s, e) if s >= e);
                let id = if c.watch_id != 0 {
                    c.watch_id
                } else {
                    self.fresh_id()
                };
                resp.watch_id = id;
                if empty {
                    resp.canceled = true;
                    resp.cancel_reason = "mvcc: watcher range is empty".into();
                } else if let Entry::Vacant(slot) = self.watchers.entry(id) {
                    slot.insert(Watcher {
                        range,
                        next_revision: if c.start_revision > 0 {
                            c.start_revision
                        } else {
                            visible + 1
                        },
                        prev_kv: c.prev_kv,
                        no_put: c.filters.contains(&FILTER_NOPUT),
                        no_delete: c.filters.contains(&FILTER_NODELETE),
                        fragment: c.fragment,
                        progress_notify: c.progress_notify,
                        active: false,
                    });
                } else {
                    resp.canceled = true;
                    resp.cancel_reason = "mvcc: duplicate watch ID provided".into();
                }
                self.send(resp).await?;
                self.catch_up().await
            }
            Some(PbWatchRequestUnion::CancelRequest(c)) => {
                if self.watchers.remove(&c.watch_id).is_some() {
                    let mut resp = self.response(c.watch_id, self.store.visible_revision());
                    resp.canceled = true;
                    self.send(resp).await?;
                }
                Ok(())
            }
            Some(PbWatchRequestUnion::ProgressRequest(_)) => {
                // Deliver everything up to the current revision first, so the notification's
                // revision promises that no older event is still on its way.
                let revision = self.catch_up_to_visible().await?;
                self.send(self.response(ALL_WATCHERS, revision)).await
            }
            None => Ok(()),
        }
    }

    fn fresh_id(&mut self) -> i64 {
        while self.watchers.contains_key(&self.next_id) {
            self.next_id += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    async fn catch_up(&mut self) -> Result<(), Gone> {
        self.catch_up_to_visible().await.map(|_| ())
    }

    /// Sends every watcher its events up to the visible revision; returns that revision.
    async fn catch_up_to_visible(&mut self) -> Result<i64, Gone> {
        loop {
            let visible = self.store.visible_revision();
            let Some(from) = self.watchers.values().map(|w| w.next_revision).min() else {
                return Ok(visible);
            };
            if from > visible {
                return Ok(visible);
            }
            let records = match self.store.records(from, visible, BATCH_REVISIONS) {
                Ok(records) => records,
                Err(StoreError::Compacted) => {
                    self.cancel_compacted().await?;
                    continue;
                }
                Err(_) => return Err(Gone),
            };
            let through = match records.last() {
                Some(last) if records.len() == BATCH_REVISIONS => last.revision,
                _ => visible,
            };
            let ids: Vec<i64> = self.watchers.keys().copied().collect();
            for id in ids {
                let w = &self.watchers[&id];
                if w.next_revision > through {
                    continue;
                }
                let events = matching_events(w, &records);
                let fragment = w.fragment;
                if let Some(w) = self.watchers.get_mut(&id) {
                    w.next_revision = through + 1;
                    w.active |= !events.is_empty();
                }
                if !events.is_empty() {
                    for resp in self.split(id, through, events, fragment) {
                        self.send(resp).await?;
                    }
                }
            }
        }
    }

    async fn cancel_compacted(&mut self) -> Result<(), Gone> {
        let compact = self.store.compact_revision();
        let stale: Vec<i64> = self
            .watchers
            .iter()
            .filter(|(_, w)| w.next_revision < compact)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.watchers.remove(&id);
            let mut resp = self.response(id, self.store.visible_revision());
            resp.canceled = true;
            resp.compact_revision = compact;
            resp.cancel_reason = StoreError::Compacted.to_string();
            self.send(resp).await?;
        }
        Ok(())
    }

    /// One response, or several with `fragment` set on all but the last when the client
    /// allows fragmentation and the events exceed the request size limit.
    fn split(
        &self,
        id: i64,
        revision: i64,
        events: Vec<PbEvent>,
        fragment: bool,
    ) -> Vec<PbWatchResponse> {
        let limit = self.config.max_request_bytes;
        if !fragment || events.iter().map(|e| e.encoded_len()).sum::<usize>() <= limit {
            let mut resp = self.response(id, revision);
            resp.events = events;
            return vec![resp];
        }
        let mut out = Vec::new();
        let mut current = self.response(id, revision);
        let mut size = 0;
        for event in events {
            let len = event.encoded_len();
            if size + len > limit && !current.events.is_empty() {
                current.fragment = true;
                out.push(std::mem::replace(&mut current, self.response(id, revision)));
                size = 0;
            }
            size += len;
            current.events.push(event);
        }
        out.push(current);
        out
    }

    async fn progress_tick(&mut self) -> Result<(), Gone> {
        let revision = self.catch_up_to_visible().await?;
        let due: Vec<i64> = self
            .watchers
            .iter_mut()
            .filter(|(_, w)| w.progress_notify)
            .filter_map(|(id, w)| (!std::mem::take(&mut w.active)).then_some(*id))
            .collect();
        for id in due {
            self.send(self.response(id, revision)).await?;
        }
        Ok(())
    }
}

fn matching_events(w: &Watcher, records: &[RevisionRecord]) -> Vec<PbEvent> {
    let mut out = Vec::new();
    for record in records.iter().filter(|r| r.revision >= w.next_revision) {
        for e in &record.events {
            let delete = e.is_delete();
            if (delete && w.no_delete) || (!delete && w.no_put) || !w.range.contains(&e.key) {
                continue;
            }
            out.push(PbEvent {
                r#type: i32::from(delete),
                kv: Some(e.kv.to_pb(&e.key, true)),
                prev_kv: if w.prev_kv {
                    e.prev.as_ref().map(|p| p.to_pb(&e.key, true))
                } else {
                    None
                },
            });
        }
    }
    out
}
