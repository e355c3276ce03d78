//! Events the workload controllers record (`kubectl describe` shows them): core/v1 Events with
//! upstream's `source.component` (`replicaset-controller`, `deployment-controller`, …),
//! written and aggregated by skiff-events (client-go's `tools/record`, shared with the
//! scheduler and the kubelet).
//!
//! Recording never blocks a sync: events go through a bounded queue to one writer task, and a
//! full queue drops the event (client-go's broadcaster drops too), so a burst of 10,000 pod
//! creations costs the controllers no latency.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::{Client, Resource, ResourceExt};
use parking_lot::Mutex;
use tokio::sync::mpsc;

pub use skiff_events::{NORMAL, WARNING};

const QUEUE: usize = 4096;
/// Event writes in flight at once.
const WRITERS: usize = 8;

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

/// Starts the writer task; every controller gets a [`Recorder`] from [`Recorder::for_component`].
pub fn start(client: Client) -> Recorder {
    let (tx, mut rx) = mpsc::channel::<Pending>(QUEUE);
    // One skiff-events recorder (and aggregation state) per component.
    let recorders: Arc<Mutex<HashMap<&'static str, Arc<skiff_events::Recorder>>>> = Arc::default();
    tokio::spawn(async move {
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        stream
            .for_each_concurrent(WRITERS, |p| {
                let client = client.clone();
                let recorder = recorders
                    .lock()
                    .entry(p.component)
                    .or_insert_with(|| Arc::new(skiff_events::Recorder::new(p.component, None)))
                    .clone();
                async move {
                    let result = recorder
                        .record(
                            &client,
                            &p.regarding,
                            p.type_,
                            p.reason,
                            p.reason,
                            &p.message,
                        )
                        .await;
                    if let Err(e) = result {
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
        let pending = Pending {
            component: self.component,
            regarding: skiff_events::reference(object),
            type_,
            reason,
            message,
        };
        if self.queue.try_send(pending).is_err() {
            tracing::debug!(object = %object.name_any(), reason, "event queue full; event dropped");
        }
    }
}
