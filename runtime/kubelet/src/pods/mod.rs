//! The pods this node runs, from two sources, each pod driven by a worker of its own
//! (`worker.rs`) whichever source it came from:
//!
//! - the API: one kube-runtime watcher (`spec.nodeName=<node>`). After every (re)list, pods
//!   the API no longer has — deleted while the kubelet was away — are terminated and cleaned
//!   up from their records on disk. Mirror pods in that watch are not run: they are the API's
//!   copies of static pods, handed to `mirror.rs`.
//! - static pods from `--pod-manifest-path` (`file.rs`), read before anything else so they
//!   start (and, after a restart, are found running) without the API server. A static pod
//!   whose manifest is removed is terminated (preStop, grace period); one whose manifest
//!   changed is a new pod (a new hash) and starts once the old one has stopped, as upstream
//!   starts static pods of one name one at a time.

pub mod env;
pub mod file;
pub mod grpc_health;
pub mod images;
pub mod mirror;
pub mod probes;
pub mod sandbox;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod status;
pub mod volumes;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::{mpsc, watch};

use crate::Kubelet;

/// Starts the pods in a task of their own (static pods do not wait for the node's
/// registration); the returned future ends with it, and dropping it stops it (the containers
/// keep running).
pub fn spawn(k: Arc<Kubelet>) -> Running {
    Running(tokio::spawn(run(k)))
}

pub struct Running(tokio::task::JoinHandle<anyhow::Result<()>>);

impl Future for Running {
    type Output = anyhow::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| match joined {
            Ok(result) => result,
            Err(e) => Err(anyhow::anyhow!("the pod manager stopped: {e}")),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where a worker's pod comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    Api,
    File,
    /// State found on disk of a pod no source has any more: being stopped and removed.
    Cleanup,
}

struct Handle {
    tx: watch::Sender<Option<Arc<Pod>>>,
    /// (namespace, name): a static pod waits for every other worker of its name to finish.
    key: mirror::Key,
    source: Source,
    /// The pod has been told to stop.
    terminating: bool,
}

struct Manager {
    k: Arc<Kubelet>,
    recovered: state::Recovered,
    workers: HashMap<String, Handle>,
    /// The static pods the manifests hold now.
    statics: file::Snapshot,
    mirrors: Arc<mirror::MirrorUids>,
}

/// Runs until the watch ends (it does not: kube-runtime retries with backoff).
pub async fn run(k: Arc<Kubelet>) -> anyhow::Result<()> {
    let recovered = state::recover(&k.args.root_dir);
    tracing::info!(
        sandboxes = recovered.sandboxes.len(),
        containers = recovered.containers.values().map(Vec::len).sum::<usize>(),
        "recovered local pod state"
    );
    let mut m = Manager {
        k: k.clone(),
        recovered,
        workers: HashMap::new(),
        statics: Arc::new(Vec::new()),
        mirrors: Arc::new(mirror::MirrorUids::default()),
    };
    // Without a manifest path, the sender stays here and the snapshot empty.
    let (mut statics, _no_source) = match &k.args.pod_manifest_path {
        Some(path) => {
            let source = file::Source::new(path.clone(), &k.args.node_name);
            (file::watch(source, k.args.file_check_frequency), None)
        }
        None => {
            let (tx, rx) = watch::channel(Arc::new(Vec::new()));
            (rx, Some(tx))
        }
    };
    let first = statics.borrow_and_update().clone();
    m.stop_outdated_static_pods(&first);
    m.set_static_pods(first);

    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    tokio::spawn(mirror::run(
        k.clone(),
        statics.clone(),
        seen_rx,
        m.mirrors.clone(),
    ));

    let api: Api<Pod> = Api::all(k.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", k.args.node_name));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    let mut listed: Option<HashSet<String>> = None;
    let mut statics_open = true;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            event = events.next() => {
                let Some(event) = event else { break };
                m.api_event(event, &mut listed, &seen_tx);
            }
            changed = statics.changed(), if statics_open => {
                statics_open = changed.is_ok();
                let snapshot = statics.borrow_and_update().clone();
                m.set_static_pods(snapshot);
            }
            // Static pods waiting for an older pod of their name to stop.
            _ = tick.tick() => m.start_static_pods(),
        }
        // Workers that finished (pod deleted) drop their receiver.
        m.workers.retain(|_, h| !h.tx.is_closed());
    }
    anyhow::bail!("the pod watch ended")
}

impl Manager {
    fn spawn_worker(
        &mut self,
        uid: String,
        pod: Option<Arc<Pod>>,
        key: mirror::Key,
        source: Source,
    ) {
        let sandbox = self.recovered.sandboxes.remove(&uid);
        let instances = self.recovered.containers.remove(&uid).unwrap_or_default();
        let mirror = (source == Source::File).then(|| self.mirrors.clone());
        let terminating = pod.is_none();
        let (tx, rx) = watch::channel(pod);
        let worker = worker::Worker::new(self.k.clone(), uid.clone(), sandbox, instances, mirror);
        tokio::spawn(worker.run(rx));
        self.workers.insert(
            uid,
            Handle {
                tx,
                key,
                source,
                terminating,
            },
        );
    }

    fn api_event(
        &mut self,
        event: Result<Event<Pod>, watcher::Error>,
        listed: &mut Option<HashSet<String>>,
        mirrors: &mpsc::UnboundedSender<mirror::Seen>,
    ) {
        match event {
            Ok(Event::Init) => {
                *listed = Some(HashSet::new());
                let _ = mirrors.send(mirror::Seen::Init);
            }
            Ok(Event::InitApply(pod)) | Ok(Event::Apply(pod)) => {
                if mirror::is_mirror(&pod) {
                    let _ = mirrors.send(mirror::Seen::Apply(pod));
                    return;
                }
                let Some(uid) = pod.metadata.uid.clone() else {
                    return;
                };
                if let Some(seen) = listed.as_mut() {
                    seen.insert(uid.clone());
                }
                let pod = Arc::new(pod);
                let alive = self
                    .workers
                    .get(&uid)
                    .is_some_and(|h| h.tx.send(Some(pod.clone())).is_ok());
                if !alive {
                    let key = mirror::key(&pod);
                    self.spawn_worker(uid, Some(pod), key, Source::Api);
                }
            }
            Ok(Event::Delete(pod)) => {
                if mirror::is_mirror(&pod) {
                    let _ = mirrors.send(mirror::Seen::Delete(pod));
                    return;
                }
                if let Some(uid) = pod.metadata.uid.as_ref() {
                    if self
                        .workers
                        .get(uid)
                        .is_some_and(|h| h.source == Source::Api)
                    {
                        if let Some(h) = self.workers.remove(uid) {
                            let _ = h.tx.send(None);
                        }
                    }
                }
            }
            Ok(Event::InitDone) => {
                let _ = mirrors.send(mirror::Seen::InitDone);
                let Some(seen) = listed.take() else { return };
                // Workers of pods that vanished while the watch was down.
                let gone: Vec<String> = self
                    .workers
                    .iter()
                    .filter(|(u, h)| h.source == Source::Api && !seen.contains(*u))
                    .map(|(u, _)| u.clone())
                    .collect();
                for uid in gone {
                    if let Some(h) = self.workers.remove(&uid) {
                        let _ = h.tx.send(None);
                    }
                }
                // Local state of pods the API no longer has (deleted while we were down);
                // static pods' own state waits for them.
                let statics: HashSet<String> = self
                    .statics
                    .iter()
                    .filter_map(|p| p.metadata.uid.clone())
                    .collect();
                let orphans: HashSet<String> = self
                    .recovered
                    .sandboxes
                    .keys()
                    .chain(self.recovered.containers.keys())
                    .filter(|u| !seen.contains(*u) && !statics.contains(*u))
                    .cloned()
                    .collect();
                for uid in orphans {
                    tracing::info!(%uid, "cleaning up a pod deleted while the kubelet was away");
                    let key = self.recovered_key(&uid);
                    self.spawn_worker(uid, None, key, Source::Cleanup);
                }
            }
            Err(e) => tracing::warn!("watching pods: {e}"),
        }
    }

    fn recovered_key(&self, uid: &str) -> mirror::Key {
        self.recovered
            .sandboxes
            .get(uid)
            .map(|s| (s.namespace.clone(), s.name.clone()))
            .unwrap_or_default()
    }

    /// At start: static pods found on disk whose manifest is gone or changed (while the
    /// kubelet was away) are stopped and removed, without waiting for the API.
    fn stop_outdated_static_pods(&mut self, statics: &[Pod]) {
        let current: HashSet<&str> = statics
            .iter()
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        let outdated: Vec<String> = self
            .recovered
            .sandboxes
            .iter()
            .filter(|(uid, s)| s.static_pod && !current.contains(uid.as_str()))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in outdated {
            tracing::info!(%uid, "stopping a static pod whose manifest is gone or changed");
            let key = self.recovered_key(&uid);
            self.spawn_worker(uid, None, key, Source::Cleanup);
        }
    }

    /// The manifests changed: static pods no longer there stop, new ones start.
    fn set_static_pods(&mut self, snapshot: file::Snapshot) {
        let wanted: HashSet<&str> = snapshot
            .iter()
            .filter_map(|p| p.metadata.uid.as_deref())
            .collect();
        for (uid, h) in self.workers.iter_mut() {
            if h.source != Source::File || h.terminating || wanted.contains(uid.as_str()) {
                continue;
            }
            // Stopped as a deleted pod is: preStop, then the pod's grace period.
            let last = h.tx.borrow().clone();
            if let Some(pod) = last {
                let mut pod = (*pod).clone();
                pod.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
                tracing::info!(pod = %format!("{}/{}", h.key.0, h.key.1), %uid, "static pod removed: stopping it");
                let _ = h.tx.send(Some(Arc::new(pod)));
            } else {
                let _ = h.tx.send(None);
            }
            h.terminating = true;
        }
        self.statics = snapshot;
        self.start_static_pods();
    }

    /// Starts the static pods that have no worker yet and no other pod of their name still
    /// stopping; passes changes to running ones.
    fn start_static_pods(&mut self) {
        let statics = self.statics.clone();
        for pod in statics.iter() {
            let Some(uid) = pod.metadata.uid.clone() else {
                continue;
            };
            if let Some(h) = self.workers.get(&uid) {
                if !h.terminating && h.source == Source::File {
                    h.tx.send_if_modified(|current| {
                        if current.as_deref() == Some(pod) {
                            return false;
                        }
                        *current = Some(Arc::new(pod.clone()));
                        true
                    });
                }
                continue;
            }
            let key = mirror::key(pod);
            if self.workers.values().any(|h| h.key == key) {
                continue;
            }
            tracing::info!(pod = %format!("{}/{}", key.0, key.1), %uid, "starting a static pod");
            self.spawn_worker(uid, Some(Arc::new(pod.clone())), key, Source::File);
        }
    }
}
