//! A shared informer (client-go's SharedIndexInformer, on kube-runtime's `watcher`): one watch
//! of a kind, a cache of its objects indexed the way the workload controllers look them up, and
//! change handlers called with `(old, new)` after the cache is updated.
//!
//! Why not kube-runtime's `reflector::Store` alone: the ReplicaSet controller asks "which pods
//! does this ReplicaSet control, and which orphans are in its namespace" on every sync, and with
//! 10,000 pods a scan of the whole store per sync is quadratic. The cache keeps an index by
//! controller uid and one of orphans per namespace. Handlers see old and new objects (add,
//! update, delete), which expectations need: a pod counts as "created" when it first appears and
//! as "deleted" when it gets a deletionTimestamp or disappears.
//!
//! One informer per kind is shared by every controller that needs it (pods: the ReplicaSet, the
//! ReplicationController and the Deployment controllers), as upstream's controller manager
//! shares informers.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Resource, ResourceExt};
use parking_lot::RwLock;
use serde::de::DeserializeOwned;

/// `(namespace, name)`.
pub type Key = (String, String);

/// Called with `(old, new)`: `(None, Some)` added, `(Some, Some)` updated, `(Some, None)` deleted.
pub type Handler<K> = Box<dyn Fn(Option<&Arc<K>>, Option<&Arc<K>>) + Send + Sync>;

pub struct Cache<K> {
    objects: HashMap<Key, Arc<K>>,
    /// controller uid → keys of the objects whose controllerRef names it.
    by_controller: HashMap<String, HashSet<Key>>,
    /// namespace → names of the objects without a controllerRef.
    orphans: HashMap<String, HashSet<String>>,
    /// namespace → names of all its objects (a Service's pods are found by selector).
    by_namespace: HashMap<String, HashSet<String>>,
}

impl<K> Default for Cache<K> {
    fn default() -> Self {
        Cache {
            objects: HashMap::new(),
            by_controller: HashMap::new(),
            orphans: HashMap::new(),
            by_namespace: HashMap::new(),
        }
    }
}

/// The uid of the object's controller (the ownerReference with `controller: true`).
pub fn controller_uid<K: Resource>(object: &K) -> Option<&str> {
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

fn key_of<K: Resource>(object: &K) -> Key {
    (
        object.meta().namespace.clone().unwrap_or_default(),
        object.meta().name.clone().unwrap_or_default(),
    )
}

impl<K: Resource> Cache<K> {
    fn index(&mut self, key: &Key, object: &K) {
        self.by_namespace
            .entry(key.0.clone())
            .or_default()
            .insert(key.1.clone());
        match controller_uid(object) {
            Some(uid) => {
                self.by_controller
                    .entry(uid.to_string())
                    .or_default()
                    .insert(key.clone());
            }
            None => {
                self.orphans
                    .entry(key.0.clone())
                    .or_default()
                    .insert(key.1.clone());
            }
        }
    }

    fn unindex(&mut self, key: &Key, object: &K) {
        if let Some(set) = self.by_namespace.get_mut(&key.0) {
            set.remove(&key.1);
            if set.is_empty() {
                self.by_namespace.remove(&key.0);
            }
        }
        match controller_uid(object) {
            Some(uid) => {
                if let Some(set) = self.by_controller.get_mut(uid) {
                    set.remove(key);
                    if set.is_empty() {
                        self.by_controller.remove(uid);
                    }
                }
            }
            None => {
                if let Some(set) = self.orphans.get_mut(&key.0) {
                    set.remove(&key.1);
                    if set.is_empty() {
                        self.orphans.remove(&key.0);
                    }
                }
            }
        }
    }

    fn upsert(&mut self, object: Arc<K>) -> Option<Arc<K>> {
        let key = key_of(object.as_ref());
        let old = self.objects.remove(&key);
        if let Some(old) = &old {
            self.unindex(&key, old);
        }
        self.index(&key, &object);
        self.objects.insert(key, object);
        old
    }

    fn remove(&mut self, key: &Key) -> Option<Arc<K>> {
        let old = self.objects.remove(key)?;
        self.unindex(key, &old);
        Some(old)
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.objects
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Objects whose controllerRef has this uid.
    pub fn controlled_by(&self, uid: &str) -> Vec<Arc<K>> {
        self.by_controller
            .get(uid)
            .into_iter()
            .flatten()
            .filter_map(|k| self.objects.get(k).cloned())
            .collect()
    }

    /// Objects of the namespace without a controller.
    pub fn orphans_in(&self, namespace: &str) -> Vec<Arc<K>> {
        self.orphans
            .get(namespace)
            .into_iter()
            .flatten()
            .filter_map(|name| {
                self.objects
                    .get(&(namespace.to_string(), name.clone()))
                    .cloned()
            })
            .collect()
    }

    /// Every object of the namespace.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.by_namespace
            .get(namespace)
            .into_iter()
            .flatten()
            .filter_map(|name| {
                self.objects
                    .get(&(namespace.to_string(), name.clone()))
                    .cloned()
            })
            .collect()
    }

    /// Every object (the node list; the node lifecycle, taint eviction and pod GC controllers
    /// look at all pods of a node, or all pods).
    pub fn all(&self) -> Vec<Arc<K>> {
        self.objects.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

pub struct Informer<K> {
    cache: RwLock<Cache<K>>,
    handlers: RwLock<Vec<Handler<K>>>,
    synced: tokio::sync::watch::Sender<bool>,
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    pub fn new() -> Arc<Informer<K>> {
        Arc::new(Informer {
            cache: RwLock::new(Cache::default()),
            handlers: RwLock::new(Vec::new()),
            synced: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Registers a change handler; call before `run`.
    pub fn on_change(&self, handler: Handler<K>) {
        self.handlers.write().push(handler);
    }

    pub fn read(&self) -> parking_lot::RwLockReadGuard<'_, Cache<K>> {
        self.cache.read()
    }

    /// Waits until the first list has been applied (controllers must not act on an empty
    /// cache: a ReplicaSet would create pods it already has).
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        // The sender lives in `self`, so this only ends when the value turns true.
        let _ = rx.wait_for(|s| *s).await;
    }

    fn notify(&self, old: Option<&Arc<K>>, new: Option<&Arc<K>>) {
        for handler in self.handlers.read().iter() {
            handler(old, new);
        }
    }

    /// Watches `api` for good (kube-runtime's watcher with its default backoff; a 410 relists).
    pub async fn run(self: Arc<Self>, api: Api<K>) {
        let stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|o| o.meta_mut().managed_fields = None);
        let mut stream = std::pin::pin!(stream);
        let mut relist: Option<HashMap<Key, Arc<K>>> = None;
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    tracing::debug!(kind = %K::kind(&()), "watch: {e}");
                    continue;
                }
            };
            match event {
                Event::Init => relist = Some(HashMap::new()),
                Event::InitApply(object) => {
                    let object = Arc::new(object);
                    relist
                        .get_or_insert_with(HashMap::new)
                        .insert(key_of(object.as_ref()), object);
                }
                Event::InitDone => {
                    let listed = relist.take().unwrap_or_default();
                    self.replace(listed);
                    self.synced.send_replace(true);
                }
                Event::Apply(object) => {
                    let object = Arc::new(object);
                    let old = self.cache.write().upsert(object.clone());
                    self.notify(old.as_ref(), Some(&object));
                }
                Event::Delete(object) => {
                    let key = key_of(&object);
                    let old = self.cache.write().remove(&key);
                    let old = old.unwrap_or_else(|| Arc::new(object));
                    self.notify(Some(&old), None);
                }
            }
        }
    }

    /// Swaps in a fresh list, telling the handlers what changed.
    fn replace(&self, listed: HashMap<Key, Arc<K>>) {
        let mut changes = Vec::new();
        {
            let mut cache = self.cache.write();
            let gone: Vec<Key> = cache
                .objects
                .keys()
                .filter(|k| !listed.contains_key(*k))
                .cloned()
                .collect();
            for key in gone {
                if let Some(old) = cache.remove(&key) {
                    changes.push((Some(old), None));
                }
            }
            for (_, object) in listed {
                let unchanged = cache
                    .objects
                    .get(&key_of(object.as_ref()))
                    .is_some_and(|o| o.resource_version() == object.resource_version());
                let old = cache.upsert(object.clone());
                if !unchanged {
                    changes.push((old, Some(object)));
                }
            }
        }
        for (old, new) in changes {
            self.notify(old.as_ref(), new.as_ref());
        }
    }
}
