//! Watch streams (upstream's `endpoints/handlers/watch.go`): events from the watch cache,
//! filtered by label and field selectors with upstream's transitions (an object entering the
//! selector is ADDED, one leaving it DELETED), shaped by `response`, batched per write, with
//! bookmarks, `sendInitialEvents` and timeouts.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::cache::{encode_line, EventType, WatchEvent};
use crate::error::{ApiError, ApiResult};
use crate::handlers::{parse_rv, Ctx, Shared, Target};
use crate::resources::ResourceInfo;
use crate::response::WatchShaper;
use crate::selectors::{FieldSelector, LabelSelector};

struct WatchFilter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl WatchFilter {
    fn is_trivial(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
    fn matches(&self, o: &Value) -> bool {
        self.labels.matches(o) && self.fields.matches(o)
    }
    /// The event this watcher sees, with upstream's transitions: an object entering the
    /// selector is ADDED, one leaving it DELETED.
    fn view<'a>(&self, ev: &'a WatchEvent) -> Option<(EventType, &'a Value)> {
        if self.is_trivial() {
            return Some((ev.kind, &ev.object));
        }
        let now = self.matches(&ev.object);
        match ev.kind {
            EventType::Added => now.then_some((EventType::Added, &*ev.object)),
            EventType::Deleted => now.then_some((EventType::Deleted, &*ev.object)),
            EventType::Modified => {
                let before = ev.previous.as_ref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => Some((EventType::Modified, &*ev.object)),
                    (false, true) => Some((EventType::Added, &*ev.object)),
                    (true, false) => Some((EventType::Deleted, &*ev.object)),
                    (false, false) => None,
                }
            }
        }
    }
}

/// Encodes one watch event for a watcher: JSON events reuse the event's shared encoded line,
/// other outputs are shaped by `response`.
struct Encoder {
    shaper: WatchShaper,
    /// The resource, when objects are shown in a version other than the one they are stored
    /// in (`handlers::served_view`): a built-in version with a conversion, or a custom
    /// resource watched through a version other than its storage version.
    convert: Option<&'static ResourceInfo>,
}

impl Encoder {
    fn line(&mut self, ev: &WatchEvent, kind: EventType, object: &Value) -> Bytes {
        if let Some(info) = self.convert {
            let mut shaped = self.shaper.shape(object).unwrap_or_else(|| object.clone());
            crate::handlers::served_view(info, &mut shaped);
            return encode_line(kind.as_str(), &shaped);
        }
        match self.shaper.shape(object) {
            None if kind == ev.kind => ev.json_line(),
            None => encode_line(kind.as_str(), object),
            Some(shaped) => encode_line(kind.as_str(), &shaped),
        }
    }
}

/// A watch stream on a collection: initial events, then changes, bookmarks, until the timeout
/// or the client leaves.
pub async fn watch(server: &Shared, target: &Target, ctx: &Ctx) -> ApiResult<Response> {
    let info = target.info;
    let filter = WatchFilter {
        labels: LabelSelector::parse(ctx.param("labelSelector").unwrap_or_default())?,
        fields: FieldSelector::for_resource(info, ctx.param("fieldSelector").unwrap_or_default())?,
    };
    let timeout = match ctx.param("timeoutSeconds") {
        Some(t) => Duration::from_secs(
            t.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {t:?}")))?,
        ),
        // Upstream picks a random timeout between 30 and 60 minutes.
        None => Duration::from_secs(1800 + rand::random::<u64>() % 1800),
    };
    let bookmarks = ctx
        .param("allowWatchBookmarks")
        .is_some_and(|v| v == "true" || v == "1");
    let send_initial = ctx.param("sendInitialEvents").is_some_and(|v| v == "true");
    let rv = ctx.param("resourceVersion").unwrap_or_default();
    let cacher = server.caches.get(info).await?;
    let from = if rv.is_empty() || rv == "0" || send_initial {
        None
    } else {
        let n = parse_rv(rv)?;
        cacher.wait_for(n).await?;
        Some(n)
    };
    let prefix = info.namespace_prefix(target.namespace.as_deref());
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
    let mut encoder = Encoder {
        shaper: WatchShaper::new(info, ctx.output),
        convert: (info.conversion.is_some()
            || info
                .custom
                .is_some_and(|c| c.storage_version != info.version))
        .then_some(info),
    };
    match cacher.start_watch(from, &prefix) {
        Err(e) => {
            // Too old: upstream answers 200 and one ERROR event with the 410 Status.
            let _ = tx.send(encode_line("ERROR", &e.to_status())).await;
        }
        Ok(start) => {
            let kind = info.kind;
            let api_version = info.api_version();
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + timeout;
                let mut last_rv = 0i64;
                let mut rx_events = start.rx;
                let bookmark = |rv: i64, initial_end: bool| {
                    let mut meta = json!({"resourceVersion": rv.to_string()});
                    if initial_end {
                        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                    }
                    encode_line(
                        "BOOKMARK",
                        &json!({"kind": kind, "apiVersion": api_version, "metadata": meta}),
                    )
                };
                for ev in &start.initial {
                    last_rv = last_rv.max(ev.revision);
                    if let Some((k, o)) = filter.view(ev) {
                        if tx.send(encoder.line(ev, k, o)).await.is_err() {
                            return;
                        }
                    }
                }
                if send_initial && bookmarks {
                    let rv = last_rv.max(cacher.revision());
                    last_rv = rv;
                    if tx.send(bookmark(rv, true)).await.is_err() {
                        return;
                    }
                }
                let mut ticker = tokio::time::interval(Duration::from_secs(60));
                ticker.tick().await;
                loop {
                    tokio::select! {
                        r = rx_events.recv() => {
                            // Everything already queued goes out in one write: under load this
                            // saves an HTTP/2 frame and a TLS record per event and watcher.
                            let mut batch: Vec<Bytes> = Vec::new();
                            let mut batch_len = 0usize;
                            let mut next = Some(r);
                            let mut ended = false;
                            while let Some(r) = next.take() {
                                let ev = match r {
                                    Ok(ev) => ev,
                                    Err(_) => {
                                        ended = true; // lagged or closed: the client re-watches
                                        break;
                                    }
                                };
                                if cacher.generation() != start.generation {
                                    ended = true; // the cache relisted: the client re-watches
                                    break;
                                }
                                if ev.revision > last_rv && ev.key.starts_with(&prefix) {
                                    last_rv = ev.revision;
                                    if let Some((k, o)) = filter.view(&ev) {
                                        let line = encoder.line(&ev, k, o);
                                        batch_len += line.len();
                                        batch.push(line);
                                    }
                                }
                                if batch_len < 64 * 1024 {
                                    next = match rx_events.try_recv() {
                                        Ok(ev) => Some(Ok(ev)),
                                        Err(tokio::sync::broadcast::error::TryRecvError::Empty) => None,
                                        Err(_) => Some(Err(RecvError::Closed)),
                                    };
                                }
                            }
                            // One event goes out as the shared encoded line, several as one buffer.
                            let out = match batch.len() {
                                0 => None,
                                1 => batch.pop(),
                                _ => Some(Bytes::from(batch.concat())),
                            };
                            if let Some(out) = out {
                                if tx.send(out).await.is_err() {
                                    return;
                                }
                            }
                            if ended {
                                return;
                            }
                        }
                        _ = tokio::time::sleep_until(deadline) => return,
                        _ = tx.closed() => return,
                        _ = ticker.tick(), if bookmarks => {
                            // Every event up to the cache's revision has been received once the
                            // queue is empty, so a bookmark there skips nothing.
                            let rv = cacher.revision();
                            if rx_events.is_empty() && rv > last_rv {
                                last_rv = rv;
                                if tx.send(bookmark(rv, false)).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            });
        }
    }
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let body = Body::from_stream(futures::StreamExt::map(stream, Ok::<Bytes, Infallible>));
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}
