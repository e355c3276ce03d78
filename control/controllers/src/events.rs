//! Events the workload controllers record (`kubectl describe` shows them): core/v1 Events with
//! upstream's `source.component` (`replicaset-controller`, `deployment-controller`, …) and
//! client-go's aggregation — the same event about the same object within 10 minutes bumps
//! `count` and `lastTimestamp` of the one already written instead of adding a row.
//!
//! Recording never blocks a sync: events go through a bounded queue to one writer task, and a
//! full queue drops the event (client-go's broadcaster drops too), so a burst of 10,000 pod
//! creations costs the controllers no latency.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use parking_lot::Mutex;
use tokio::sync::mpsc;

pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

const QUEUE: usize = 4096;
/// Event writes in flight at once.
const WRITERS: usize = 8;
const AGGREGATION_WINDOW: Duration = Duration::from_secs(600);
const MAX_REMEMBERED: usize = 10_000;

struct Pending {
    component: &'static str,
    regarding: ObjectReference,
    type_: &'static str,
    reason: &'static str,
    message: String,
}

#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Pending>,
    component: &'static str,
}

type EventKey = (String, &'static str, &'static str, String);

struct Recorded {
    name: String,
    count: i32,
    first: std::time::Instant,
}

/// Starts the writer task; every controller gets a [`Recorder`] from [`Recorder::for_component`].
pub fn start(client: Client) -> Recorder {
    let (tx, mut rx) = mpsc::channel::<Pending>(QUEUE);
    let seen = std::sync::Arc::new(Mutex::new(HashMap::<EventKey, Recorded>::new()));
    tokio::spawn(async move {
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        stream
            .for_each_concurrent(WRITERS, |pending| {
                let client = client.clone();
                let seen = seen.clone();
                async move {
                    if let Err(e) = write(&client, &seen, pending).await {
                        tracing::debug!("event not recorded: {e}");
                    }
                }
            })
            .await;
    });
    Recorder {
        queue: tx,
        component: "",
    }
}

impl Recorder {
    pub fn for_component(&self, component: &'static str) -> Recorder {
        Recorder {
            queue: self.queue.clone(),
            component,
        }
    }

    /// Records an event about `object`.
    pub fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: &'static str,
        reason: &'static str,
        message: String,
    ) {
        let regarding = ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(K::kind(&()).into_owned()),
            name: object.meta().name.clone(),
            namespace: object.meta().namespace.clone(),
            uid: object.meta().uid.clone(),
            resource_version: object.meta().resource_version.clone(),
            ..ObjectReference::default()
        };
        let pending = Pending {
            component: self.component,
            regarding,
            type_,
            reason,
            message,
        };
        if self.queue.try_send(pending).is_err() {
            tracing::debug!(object = %object.name_any(), reason, "event queue full; event dropped");
        }
    }
}

async fn write(
    client: &Client,
    seen: &Mutex<HashMap<EventKey, Recorded>>,
    p: Pending,
) -> Result<(), kube::Error> {
    let namespace = p
        .regarding
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let key: EventKey = (
        p.regarding.uid.clone().unwrap_or_default(),
        p.type_,
        p.reason,
        p.message.clone(),
    );
    let now = jiff::Timestamp::now();
    let repeat = {
        let mut seen = seen.lock();
        match seen.get_mut(&key) {
            Some(r) if r.first.elapsed() < AGGREGATION_WINDOW => {
                r.count += 1;
                Some((r.name.clone(), r.count))
            }
            _ => None,
        }
    };
    let events: Api<Event> = Api::namespaced(client.clone(), &namespace);
    if let Some((name, count)) = repeat {
        let patch = serde_json::json!({"count": count, "lastTimestamp": Time(now)});
        match events
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let name = format!(
        "{}.{:x}",
        p.regarding.name.as_deref().unwrap_or("object"),
        now.as_nanosecond() as u64 ^ rand::random::<u64>()
    );
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: p.regarding,
        reason: Some(p.reason.into()),
        message: Some(truncate(&p.message, 1024)),
        type_: Some(p.type_.into()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        reporting_component: Some(p.component.into()),
        reporting_instance: Some(p.component.into()),
        source: Some(EventSource {
            component: Some(p.component.into()),
            host: None,
        }),
        ..Event::default()
    };
    events.create(&PostParams::default(), &event).await?;
    let mut seen = seen.lock();
    if seen.len() >= MAX_REMEMBERED {
        seen.retain(|_, r| r.first.elapsed() < AGGREGATION_WINDOW);
        if seen.len() >= MAX_REMEMBERED {
            seen.clear();
        }
    }
    seen.insert(
        key,
        Recorded {
            name,
            count: 1,
            first: std::time::Instant::now(),
        },
    );
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
