//! core/v1 Events as upstream's components write them (client-go's `tools/record`), shared by
//! the scheduler, the controllers and the kubelet so `kubectl describe` reads the same for all.
//!
//! Why core/v1 and not events.k8s.io: kubectl 1.32's `describe` lists core/v1 Events by
//! `involvedObject`, and upstream's scheduler, kubelet and controllers still record through
//! the core/v1 broadcaster.
//!
//! Aggregation is client-go's EventCorrelator: the same event — same object, type, reason and
//! message — within 10 minutes bumps the count and lastTimestamp of the one already written,
//! so `kubectl describe` shows `(x5 over 2m)` instead of five rows and an object retried often
//! does not flood the store.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;

/// Events of type Normal and Warning, as upstream names them.
pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

type EventKey = (String, String, String, String);

struct Recorded {
    name: String,
    count: i32,
    first: jiff::Timestamp,
}

const AGGREGATION_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_secs(600);
/// Aggregation state kept at most; older entries are dropped first.
const MAX_REMEMBERED: usize = 10_000;
/// Upstream caps an event's message at 1024 bytes.
const MAX_MESSAGE: usize = 1024;

/// Writes the events of one component (`source.component`, e.g. `kubelet`), optionally from
/// one host (`source.host`, the node name for a kubelet).
pub struct Recorder {
    component: String,
    host: Option<String>,
    seen: Mutex<HashMap<EventKey, Recorded>>,
}

impl Recorder {
    pub fn new(component: &str, host: Option<&str>) -> Recorder {
        Recorder {
            component: component.to_string(),
            host: host.map(str::to_string),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records an event about `object`, aggregated with the same one written recently.
    pub async fn record(
        &self,
        client: &Client,
        object: &ObjectReference,
        type_: &str,
        reason: &str,
        action: &str,
        message: &str,
    ) -> Result<(), kube::Error> {
        let key: EventKey = (
            object.uid.clone().unwrap_or_default(),
            type_.to_string(),
            reason.to_string(),
            message.to_string(),
        );
        let now = jiff::Timestamp::now();
        let repeat = {
            let mut seen = self.seen.lock().expect("not poisoned");
            match seen.get_mut(&key) {
                Some(r) if now.duration_since(r.first) < AGGREGATION_WINDOW => {
                    r.count += 1;
                    Some((r.name.clone(), r.count))
                }
                _ => None,
            }
        };
        let namespace = event_namespace(object);
        if let Some((name, count)) = repeat {
            let patch = serde_json::json!({"count": count, "lastTimestamp": Time(now)});
            let patched = Api::<Event>::namespaced(client.clone(), &namespace)
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await;
            match patched {
                Ok(_) => return Ok(()),
                // Gone (expired or deleted): write a new one.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let name = self
            .write(client, object, type_, reason, action, message)
            .await?;
        let mut seen = self.seen.lock().expect("not poisoned");
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, r| now.duration_since(r.first) < AGGREGATION_WINDOW);
            if seen.len() >= MAX_REMEMBERED {
                seen.clear();
            }
        }
        seen.insert(
            key,
            Recorded {
                name,
                count: 1,
                first: now,
            },
        );
        Ok(())
    }

    /// Forgets the aggregation state of an object that is gone.
    pub fn forget(&self, uid: &str) {
        self.seen
            .lock()
            .expect("not poisoned")
            .retain(|(u, ..), _| u != uid);
    }

    /// Writes one new Event (no aggregation) and returns its name.
    pub async fn write(
        &self,
        client: &Client,
        object: &ObjectReference,
        type_: &str,
        reason: &str,
        action: &str,
        message: &str,
    ) -> Result<String, kube::Error> {
        let namespace = event_namespace(object);
        let now = jiff::Timestamp::now();
        let event = Event {
            metadata: ObjectMeta {
                // Upstream's naming: the object's name and a unique hex suffix.
                name: Some(format!(
                    "{}.{:x}",
                    object.name.as_deref().unwrap_or("object"),
                    now.as_nanosecond() as u64 ^ rand::random::<u64>()
                )),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: object.clone(),
            reason: Some(reason.into()),
            message: Some(truncate(message, MAX_MESSAGE)),
            type_: Some(type_.into()),
            action: Some(action.into()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone().unwrap_or_else(|| self.component.clone())),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            ..Event::default()
        };
        let name = event.metadata.name.clone().unwrap_or_default();
        Api::<Event>::namespaced(client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await
            .map(|_| name)
    }
}

/// Events live in their object's namespace; events about cluster-scoped objects (nodes) in
/// `default`, as upstream puts them.
fn event_namespace(object: &ObjectReference) -> String {
    object
        .namespace
        .clone()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// A reference to `object` for an event's `involvedObject`.
pub fn reference<K>(object: &K) -> ObjectReference
where
    K: kube::Resource<DynamicType = ()>,
{
    let meta = object.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..ObjectReference::default()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let message = "é".repeat(600);
        let cut = truncate(&message, MAX_MESSAGE);
        assert_eq!(cut.len(), 1024);
        assert!(message.starts_with(&cut));
    }

    #[test]
    fn node_events_go_to_default() {
        let node = k8s_openapi::api::core::v1::Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                uid: Some("u".into()),
                ..ObjectMeta::default()
            },
            ..Default::default()
        };
        let r = reference(&node);
        assert_eq!(r.kind.as_deref(), Some("Node"));
        assert_eq!(event_namespace(&r), "default");
    }
}
