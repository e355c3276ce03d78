//! The API side: kube-runtime watchers of Services, EndpointSlices (discovery.k8s.io/v1) and
//! Namespaces, each object trimmed on arrival to the few fields DNS needs (CoreDNS's
//! `object.ToService` / `EndpointSliceToEndpoints`), and a rebuild task that turns the current
//! objects into a new [`Snapshot`] and swaps it in.
//!
//! The watchers keep what a reflector keeps (a relist replaces the kind's objects at
//! `InitDone`), but store trimmed structs instead of whole objects: 10,000 services cost a few
//! megabytes rather than tens. Every change wakes the rebuild task; a burst of changes while a
//! rebuild runs costs one more rebuild, not one per change, so answers follow the API within
//! a few tens of milliseconds under churn. Until every kind has listed once the snapshot stays
//! unsynced: cluster names answer SERVFAIL and `/ready` is 503, as CoreDNS.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service as KService};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Resource;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::snapshot::{
    build, Endpoint, Inputs, Key, Port, Service, ServiceKind, Slice, Snapshot, ZoneConfig,
};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

fn key_of<K: Resource>(o: &K) -> Key {
    (
        o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.clone().unwrap_or_default(),
    )
}

fn port(name: Option<&String>, protocol: Option<&String>, port: i32) -> Option<Port> {
    Some(Port {
        name: name.cloned().unwrap_or_default().to_ascii_lowercase(),
        protocol: protocol
            .map(|p| p.to_ascii_lowercase())
            .unwrap_or_else(|| "tcp".into()),
        port: u16::try_from(port).ok()?,
    })
}

/// A Service as DNS sees it.
pub fn trim_service(s: &KService) -> Option<Service> {
    let spec = s.spec.as_ref()?;
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| port(p.name.as_ref(), p.protocol.as_ref(), p.port))
        .collect();
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        ServiceKind::ExternalName(spec.external_name.clone()?)
    } else if spec.cluster_ip.as_deref() == Some("None") {
        ServiceKind::Headless
    } else {
        let mut ips: Vec<IpAddr> = spec
            .cluster_ips
            .iter()
            .flatten()
            .chain(spec.cluster_ip.iter())
            .filter_map(|ip| ip.parse().ok())
            .collect();
        ips.sort();
        ips.dedup();
        if ips.is_empty() {
            // Not yet allocated: nothing to answer.
            return None;
        }
        ServiceKind::ClusterIp(ips)
    };
    Some(Service {
        kind,
        ports,
        publish_not_ready: spec.publish_not_ready_addresses == Some(true),
    })
}

/// An EndpointSlice as DNS sees it (FQDN slices carry no addresses DNS can serve).
pub fn trim_slice(s: &EndpointSlice) -> Option<Slice> {
    if s.address_type == "FQDN" {
        return None;
    }
    let service = s.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
    let endpoints = s
        .endpoints
        .iter()
        .flatten()
        .map(|e| Endpoint {
            addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
            hostname: e.hostname.clone(),
            ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
        })
        .collect();
    let ports = s
        .ports
        .iter()
        .flatten()
        .filter_map(|p| port(p.name.as_ref(), p.protocol.as_ref(), p.port?))
        .collect();
    Some(Slice {
        service,
        endpoints,
        ports,
    })
}

/// One watched kind: how its objects are trimmed and where they go in [`Inputs`].
trait Kind: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static {
    type Trimmed: Send + 'static;
    const NAME: &'static str;
    fn trim(&self) -> Option<Self::Trimmed>;
    fn set(inputs: &mut Inputs, key: Key, value: Option<Self::Trimmed>);
    fn replace(inputs: &mut Inputs, all: BTreeMap<Key, Self::Trimmed>);
}

impl Kind for KService {
    type Trimmed = Service;
    const NAME: &'static str = "services";
    fn trim(&self) -> Option<Service> {
        trim_service(self)
    }
    fn set(inputs: &mut Inputs, key: Key, value: Option<Service>) {
        match value {
            Some(v) => inputs.services.insert(key, v),
            None => inputs.services.remove(&key),
        };
    }
    fn replace(inputs: &mut Inputs, all: BTreeMap<Key, Service>) {
        inputs.services = all;
    }
}

impl Kind for EndpointSlice {
    type Trimmed = Slice;
    const NAME: &'static str = "endpointslices";
    fn trim(&self) -> Option<Slice> {
        trim_slice(self)
    }
    fn set(inputs: &mut Inputs, key: Key, value: Option<Slice>) {
        match value {
            Some(v) => inputs.slices.insert(key, v),
            None => inputs.slices.remove(&key),
        };
    }
    fn replace(inputs: &mut Inputs, all: BTreeMap<Key, Slice>) {
        inputs.slices = all;
    }
}

impl Kind for Namespace {
    type Trimmed = ();
    const NAME: &'static str = "namespaces";
    fn trim(&self) -> Option<()> {
        Some(())
    }
    fn set(inputs: &mut Inputs, key: Key, value: Option<()>) {
        match value {
            Some(()) => inputs.namespaces.insert(key.1),
            None => inputs.namespaces.remove(&key.1),
        };
    }
    fn replace(inputs: &mut Inputs, all: BTreeMap<Key, ()>) {
        inputs.namespaces = all.into_keys().map(|(_, name)| name).collect();
    }
}

/// What the watchers share with the rebuild task.
pub struct Shared {
    inputs: Mutex<Inputs>,
    changed: Notify,
    /// Per kind: listed at least once.
    listed: [AtomicBool; 3],
}

impl Shared {
    fn all_listed(&self) -> bool {
        self.listed.iter().all(|l| l.load(Ordering::Acquire))
    }
}

async fn follow<K: Kind>(api: Api<K>, shared: Arc<Shared>, index: usize) {
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    let mut relist: Option<BTreeMap<Key, K::Trimmed>> = None;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(error) => {
                tracing::warn!(kind = K::NAME, %error, "watch failed; retrying");
                continue;
            }
        };
        match event {
            Event::Apply(o) => {
                K::set(&mut shared.inputs.lock(), key_of(&o), o.trim());
                shared.changed.notify_one();
            }
            Event::Delete(o) => {
                K::set(&mut shared.inputs.lock(), key_of(&o), None);
                shared.changed.notify_one();
            }
            Event::Init => relist = Some(BTreeMap::new()),
            Event::InitApply(o) => {
                if let (Some(map), Some(t)) = (relist.as_mut(), o.trim()) {
                    map.insert(key_of(&o), t);
                }
            }
            Event::InitDone => {
                let all = relist.take().unwrap_or_default();
                tracing::debug!(kind = K::NAME, objects = all.len(), "listed");
                K::replace(&mut shared.inputs.lock(), all);
                shared.listed[index].store(true, Ordering::Release);
                shared.changed.notify_one();
            }
        }
    }
}

fn now_serial(previous: u32) -> u32 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    now.max(previous.wrapping_add(1))
}

/// Runs the watchers and the rebuild loop; `on_first_sync` is called once, after the first
/// synced snapshot is in place. Returns only if a task ends (they do not, normally).
pub async fn run(
    client: kube::Client,
    config: ZoneConfig,
    snapshot: Arc<ArcSwap<Snapshot>>,
    on_first_sync: impl FnOnce(&Snapshot) + Send + 'static,
) -> anyhow::Result<()> {
    let shared = Arc::new(Shared {
        inputs: Mutex::new(Inputs::default()),
        changed: Notify::new(),
        listed: [
            AtomicBool::new(false),
            AtomicBool::new(false),
            AtomicBool::new(false),
        ],
    });
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(follow::<KService>(
        Api::all(client.clone()),
        shared.clone(),
        0,
    ));
    tasks.spawn(follow::<EndpointSlice>(
        Api::all(client.clone()),
        shared.clone(),
        1,
    ));
    tasks.spawn(follow::<Namespace>(Api::all(client), shared.clone(), 2));

    let rebuild = async move {
        let mut on_first_sync = Some(on_first_sync);
        let mut serial = 0u32;
        loop {
            shared.changed.notified().await;
            if !shared.all_listed() {
                continue;
            }
            // Let a burst of events land before paying for a rebuild.
            tokio::time::sleep(Duration::from_millis(10)).await;
            let inputs = shared.inputs.lock().clone();
            serial = now_serial(serial);
            let config = config.clone();
            let started = std::time::Instant::now();
            let next =
                tokio::task::spawn_blocking(move || build(&inputs, &config, serial, true)).await?;
            tracing::debug!(
                names = next.len(),
                serial,
                ms = started.elapsed().as_millis() as u64,
                "snapshot rebuilt"
            );
            let next = Arc::new(next);
            snapshot.store(next.clone());
            if let Some(f) = on_first_sync.take() {
                f(&next);
            }
        }
        #[allow(unreachable_code)]
        Ok::<(), anyhow::Error>(())
    };
    tokio::select! {
        r = rebuild => r,
        _ = tasks.join_next() => anyhow::bail!("a watch task ended"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{
        Endpoint as KEndpoint, EndpointConditions, EndpointPort,
    };
    use kube::api::ObjectMeta;

    #[test]
    fn services_are_trimmed() {
        let mut s = KService {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.96.0.5".into()),
                cluster_ips: Some(vec!["10.96.0.5".into(), "fd00::5".into()]),
                ports: Some(vec![ServicePort {
                    name: Some("HTTP".into()),
                    port: 80,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        };
        let t = trim_service(&s).unwrap();
        assert_eq!(
            t.kind,
            ServiceKind::ClusterIp(vec![
                "10.96.0.5".parse().unwrap(),
                "fd00::5".parse().unwrap()
            ])
        );
        assert_eq!(t.ports[0].name, "http");
        assert_eq!(t.ports[0].protocol, "tcp");
        s.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        s.spec.as_mut().unwrap().cluster_ips = Some(vec!["None".into()]);
        assert_eq!(trim_service(&s).unwrap().kind, ServiceKind::Headless);
        s.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        s.spec.as_mut().unwrap().external_name = Some("example.test".into());
        assert_eq!(
            trim_service(&s).unwrap().kind,
            ServiceKind::ExternalName("example.test".into())
        );
    }

    #[test]
    fn slices_are_trimmed() {
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                name: Some("web-x".into()),
                namespace: Some("default".into()),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: Some(vec![
                KEndpoint {
                    addresses: vec!["10.244.0.5".into()],
                    hostname: Some("web-0".into()),
                    conditions: None,
                    ..Default::default()
                },
                KEndpoint {
                    addresses: vec!["10.244.0.6".into()],
                    conditions: Some(EndpointConditions {
                        ready: Some(false),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ]),
            ports: Some(vec![EndpointPort {
                name: Some("http".into()),
                port: Some(8080),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        };
        let t = trim_slice(&slice).unwrap();
        assert_eq!(t.service, "web");
        assert!(t.endpoints[0].ready, "absent conditions count as ready");
        assert!(!t.endpoints[1].ready);
        assert_eq!(t.ports[0].port, 8080);
        let mut fqdn = slice.clone();
        fqdn.address_type = "FQDN".into();
        assert!(trim_slice(&fqdn).is_none());
    }
}
