//! Static pods from `--pod-manifest-path` (upstream's `pkg/kubelet/config/file.go` and
//! `common.go`): every regular file in the directory whose name does not start with `.` (or
//! the one file the path names) holds a Pod manifest, YAML or JSON. Each is read at start,
//! again on any inotify event of the directory and every `--file-check-frequency`, and
//! becomes the pod this kubelet runs:
//!
//! - name `<name>-<node name>`, namespace `default` unless given, `spec.nodeName` = this node;
//! - uid = the hash of the manifest as parsed, this node and the file (FNV-128a, 32 hex digits
//!   as upstream), unless the manifest sets one; the hash is also the annotation
//!   `kubernetes.io/config.hash`, so an edited manifest is a new pod (the old one stops);
//! - `kubernetes.io/config.source: file`, `kubernetes.io/config.seen` (when this kubelet first
//!   saw that hash), a toleration of every NoExecute taint, phase Pending.
//!
//! Pods that reference API objects (service accounts, secrets, config maps, claims…) are
//! refused, as upstream's kubelet refuses them: the mirror pod could not be created and the
//! pod must not depend on the API. A manifest that cannot be read or parsed is reported; if it
//! parsed before, its last good version keeps running (an editor's half-written file does not
//! stop the pod). Two manifests of the same pod name: the first file in name order wins.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus, Toleration};
use serde_json::Value;
use tokio::sync::watch;

pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
pub const CONFIG_SEEN: &str = "kubernetes.io/config.seen";
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";
pub const FILE_SOURCE: &str = "file";
/// Upstream's maxConfigLength.
const MAX_CONFIG_LENGTH: u64 = 10 * 1024 * 1024;

/// The current static pods, in manifest-file order.
pub type Snapshot = Arc<Vec<Pod>>;

/// Whether `pod` came from a file (a static pod).
pub fn is_static(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_SOURCE))
        .is_some_and(|s| s == FILE_SOURCE)
}

/// FNV-1a with 128 bits (Go's `hash/fnv.New128a`).
pub fn fnv128a(parts: &[&[u8]]) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;
    let mut hash = OFFSET;
    for part in parts {
        for byte in *part {
            hash ^= u128::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    format!("{hash:032x}")
}

/// A manifest made into the static pod this node runs (without config.seen, which depends
/// on when it was first read).
pub fn decode(data: &[u8], file: &Path, node: &str) -> Result<Pod, String> {
    let value: Value =
        serde_yaml::from_slice(data).map_err(|e| format!("couldn't parse as pod: {e}"))?;
    if value.is_null() {
        return Err("the file is empty".into());
    }
    let kind = value
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or_default();
    let version = value
        .get("apiVersion")
        .and_then(|k| k.as_str())
        .unwrap_or_default();
    if kind != "Pod" || version != "v1" {
        return Err(format!(
            "couldn't parse as pod: expected apiVersion v1 and kind Pod, got {version:?} {kind:?}"
        ));
    }
    let mut pod: Pod =
        serde_json::from_value(value).map_err(|e| format!("couldn't parse as pod: {e}"))?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err("invalid pod: name is needed for the pod".into());
    }
    validate(&pod)?;
    if let Some(what) =
        skiff_podutil::api_object_reference(&serde_json::to_value(&pod).map_err(|e| e.to_string())?)
    {
        return Err(format!("static pods may not reference {what}"));
    }
    let uid = match pod.metadata.uid.clone().filter(|u| !u.is_empty()) {
        Some(uid) => uid,
        None => {
            let canonical = serde_json::to_vec(&pod).map_err(|e| e.to_string())?;
            let host = format!("host:{node}");
            let source = format!("file:{}", file.display());
            fnv128a(&[&canonical, host.as_bytes(), source.as_bytes()])
        }
    };
    pod.metadata.uid = Some(uid.clone());
    pod.metadata.name = Some(format!("{name}-{}", node.to_lowercase()));
    if pod
        .metadata
        .namespace
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        pod.metadata.namespace = Some("default".into());
    }
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.to_string());
    let tolerate_no_execute = Toleration {
        operator: Some("Exists".into()),
        effect: Some("NoExecute".into()),
        ..Toleration::default()
    };
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    if !tolerations.contains(&tolerate_no_execute) {
        tolerations.push(tolerate_no_execute);
    }
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(CONFIG_HASH.into(), uid);
    annotations.insert(CONFIG_SOURCE.into(), FILE_SOURCE.into());
    pod.status = Some(PodStatus {
        phase: Some("Pending".into()),
        ..PodStatus::default()
    });
    Ok(pod)
}

/// What the API server would refuse outright: a pod needs containers with names and images.
fn validate(pod: &Pod) -> Result<(), String> {
    let spec = pod
        .spec
        .as_ref()
        .ok_or("invalid pod: spec: Required value")?;
    if spec.containers.is_empty() {
        return Err("invalid pod: spec.containers: Required value".into());
    }
    let mut names = HashSet::new();
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        if c.name.is_empty() {
            return Err("invalid pod: a container has no name".into());
        }
        if !names.insert(c.name.as_str()) {
            return Err(format!(
                "invalid pod: container name {:?}: Duplicate value",
                c.name
            ));
        }
        if c.image.as_deref().unwrap_or_default().is_empty() {
            return Err(format!(
                "invalid pod: container {:?}: image: Required value",
                c.name
            ));
        }
    }
    Ok(())
}

/// The manifest path and what was read from it last.
pub struct Source {
    path: PathBuf,
    node: String,
    /// When each uid was first seen (config.seen).
    seen: HashMap<String, String>,
    /// The last pod each file gave (kept while the file does not parse).
    last_good: HashMap<PathBuf, Pod>,
    /// The last error reported per file (each is logged once).
    reported: HashMap<PathBuf, String>,
}

impl Source {
    pub fn new(path: PathBuf, node: &str) -> Source {
        Source {
            path,
            node: node.to_string(),
            seen: HashMap::new(),
            last_good: HashMap::new(),
            reported: HashMap::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The static pods the path holds now.
    pub fn read(&mut self) -> Vec<Pod> {
        let files = match std::fs::metadata(&self.path) {
            Ok(m) if m.is_dir() => self.manifest_files(),
            Ok(m) if m.is_file() => vec![self.path.clone()],
            Ok(_) => {
                self.report(&self.path.clone(), "not a directory or file".into());
                Vec::new()
            }
            // A missing path is no error: no static pods (until it appears).
            Err(_) => Vec::new(),
        };
        let mut pods = Vec::new();
        let mut names = HashMap::<(String, String), PathBuf>::new();
        let mut current = HashSet::new();
        for file in files {
            let pod = match read_manifest(&file).and_then(|d| decode(&d, &file, &self.node)) {
                Ok(pod) => {
                    self.reported.remove(&file);
                    self.last_good.insert(file.clone(), pod.clone());
                    pod
                }
                Err(e) => {
                    self.report(&file, e);
                    match self.last_good.get(&file) {
                        Some(pod) if file.exists() => pod.clone(),
                        _ => continue,
                    }
                }
            };
            let key = (
                pod.metadata.namespace.clone().unwrap_or_default(),
                pod.metadata.name.clone().unwrap_or_default(),
            );
            if let Some(first) = names.get(&key) {
                self.report(
                    &file,
                    format!(
                        "pod {}/{} is already defined by {}; ignored",
                        key.0,
                        key.1,
                        first.display()
                    ),
                );
                continue;
            }
            names.insert(key, file.clone());
            current.insert(file);
            pods.push(pod);
        }
        self.last_good.retain(|f, _| current.contains(f));
        self.reported
            .retain(|f, _| current.contains(f) || f.exists());
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S.%9fZ")
            .to_string();
        let uids: HashSet<String> = pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        self.seen.retain(|uid, _| uids.contains(uid));
        for pod in &mut pods {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let seen = self.seen.entry(uid).or_insert_with(|| now.clone()).clone();
            pod.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(CONFIG_SEEN.into(), seen);
        }
        pods
    }

    /// The directory's regular files not starting with `.`, sorted (symlinks followed).
    fn manifest_files(&mut self) -> Vec<PathBuf> {
        let entries = match std::fs::read_dir(&self.path) {
            Ok(e) => e,
            Err(e) => {
                self.report(&self.path.clone(), e.to_string());
                return Vec::new();
            }
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
            .collect();
        files.sort();
        files
    }

    fn report(&mut self, file: &Path, error: String) {
        if self.reported.get(file) != Some(&error) {
            tracing::warn!(file = %file.display(), "static pod manifest: {error}");
            self.reported.insert(file.to_path_buf(), error);
        }
    }
}

fn read_manifest(file: &Path) -> Result<Vec<u8>, String> {
    let mut data = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| f.take(MAX_CONFIG_LENGTH + 1).read_to_end(&mut data))
        .map_err(|e| format!("reading: {e}"))?;
    if data.len() as u64 > MAX_CONFIG_LENGTH {
        return Err(format!("larger than {MAX_CONFIG_LENGTH} bytes"));
    }
    Ok(data)
}

/// Reads the source now, then keeps the returned channel up to date: on inotify events of the
/// path (a short pause lets a writer finish) and every `period`.
pub fn watch(mut source: Source, period: Duration) -> watch::Receiver<Snapshot> {
    // Watching before the first read: no change falls between the two.
    let mut notify = Notify::new(source.path());
    let first = source.read();
    tracing::info!(
        path = %source.path().display(),
        pods = first.len(),
        "reading static pod manifests"
    );
    let (tx, rx) = watch::channel(Arc::new(first));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period.max(Duration::from_millis(100)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                alive = Notify::changed(&mut notify) => {
                    if !alive {
                        notify = None;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    if let Some(n) = notify.as_mut() {
                        n.drain();
                    }
                }
                _ = tx.closed() => return,
            }
            if notify.is_none() {
                notify = Notify::new(source.path());
            }
            let read = tokio::task::spawn_blocking(move || {
                let pods = source.read();
                (source, pods)
            })
            .await;
            let Ok((back, pods)) = read else { return };
            source = back;
            tx.send_if_modified(|current| {
                if **current == pods {
                    return false;
                }
                *current = Arc::new(pods);
                true
            });
        }
    });
    rx
}

/// inotify on the manifest path (the directory, or the file).
struct Notify {
    fd: tokio::io::unix::AsyncFd<InotifyFd>,
}

/// The inotify instance as tokio registers it.
struct InotifyFd(nix::sys::inotify::Inotify);

impl std::os::fd::AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

impl Notify {
    fn new(path: &Path) -> Option<Notify> {
        use nix::sys::inotify::{AddWatchFlags as W, InitFlags, Inotify};
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let flags = W::IN_CREATE
            | W::IN_DELETE
            | W::IN_MODIFY
            | W::IN_CLOSE_WRITE
            | W::IN_MOVED_FROM
            | W::IN_MOVED_TO
            | W::IN_ATTRIB
            | W::IN_DELETE_SELF
            | W::IN_MOVE_SELF;
        inotify.add_watch(path, flags).ok()?;
        let interest = tokio::io::Interest::READABLE;
        // SAFETY: the descriptor is the Inotify's own, which the AsyncFd owns: it stays open
        // and the same until the AsyncFd is dropped.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(InotifyFd(inotify), interest)
        }
        .ok()?;
        Some(Notify { fd })
    }

    /// Waits for events (forever without a watch); false once the watch is gone (the path
    /// was removed or moved).
    async fn changed(notify: &mut Option<Notify>) -> bool {
        use nix::sys::inotify::AddWatchFlags as W;
        let Some(n) = notify.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            let Ok(mut guard) = n.fd.readable().await else {
                return false;
            };
            match guard.get_inner().0.read_events() {
                Ok(events) => {
                    let gone = events.iter().any(|e| {
                        e.mask
                            .intersects(W::IN_IGNORED | W::IN_DELETE_SELF | W::IN_MOVE_SELF)
                    });
                    return !gone;
                }
                Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
                Err(_) => return false,
            }
        }
    }

    /// Reads and drops the events queued meanwhile.
    fn drain(&mut self) {
        while let Ok(events) = self.fd.get_ref().0.read_events() {
            if events.is_empty() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NGINX: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  containers:\n  - name: c\n    image: skiff.local/busybox:1\n";

    #[test]
    fn fnv128a_is_gos() {
        // Go: hex.EncodeToString(fnv.New128a() after Write([]byte("hello")).Sum(nil))
        assert_eq!(fnv128a(&[b""]), "6c62272e07bb014262b821756295c58d");
        assert_eq!(fnv128a(&[b"hello"]), "e3e1efd54283d94f7081314b599d31b3");
        assert_eq!(fnv128a(&[b"he", b"llo"]), fnv128a(&[b"hello"]));
    }

    #[test]
    fn a_manifest_becomes_the_nodes_static_pod() {
        let pod = decode(NGINX.as_bytes(), Path::new("/m/web.yaml"), "Node-1").unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("web-node-1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let uid = pod.metadata.uid.clone().unwrap();
        assert_eq!(uid.len(), 32);
        let annotations = pod.metadata.annotations.clone().unwrap();
        assert_eq!(annotations[CONFIG_HASH], uid);
        assert_eq!(annotations[CONFIG_SOURCE], "file");
        let spec = pod.spec.clone().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("Node-1"));
        let tolerations = spec.tolerations.unwrap();
        assert_eq!(tolerations.len(), 1);
        assert_eq!(tolerations[0].operator.as_deref(), Some("Exists"));
        assert_eq!(tolerations[0].effect.as_deref(), Some("NoExecute"));
        assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
        assert!(is_static(
            &decode(NGINX.as_bytes(), Path::new("/m/web.yaml"), "n").unwrap()
        ));

        // The same manifest in JSON, reformatted: the same pod, the same hash.
        let json = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"labels":{"app":"web"},"name":"web"},
            "spec":{"containers":[{"image":"skiff.local/busybox:1","name":"c"}]}}"#;
        let same = decode(json.as_bytes(), Path::new("/m/web.yaml"), "Node-1").unwrap();
        assert_eq!(same.metadata.uid.as_deref(), Some(uid.as_str()));
        // Another file, another node or another spec: another hash.
        for (data, file, node) in [
            (NGINX.to_string(), "/m/other.yaml", "Node-1"),
            (NGINX.to_string(), "/m/web.yaml", "node-2"),
            (
                NGINX.replace("busybox:1", "busybox:2"),
                "/m/web.yaml",
                "Node-1",
            ),
        ] {
            let other = decode(data.as_bytes(), Path::new(file), node).unwrap();
            assert_ne!(
                other.metadata.uid.as_deref(),
                Some(uid.as_str()),
                "{file} {node}"
            );
        }
        // A namespace and a uid of the manifest's own are kept.
        let own = NGINX.replace(
            "  name: web\n",
            "  name: web\n  namespace: kube-system\n  uid: abc\n",
        );
        let pod = decode(own.as_bytes(), Path::new("/m/web.yaml"), "n").unwrap();
        assert_eq!(pod.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(pod.metadata.uid.as_deref(), Some("abc"));
        assert_eq!(pod.metadata.annotations.unwrap()[CONFIG_HASH], "abc");
    }

    #[test]
    fn bad_manifests_are_refused_with_upstreams_reasons() {
        let cases = [
            ("", "empty"),
            ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", "kind Pod"),
            ("apiVersion: v1\nkind: Pod\nmetadata: {}\nspec: {containers: [{name: c, image: i}]}\n", "name is needed"),
            ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n", "spec.containers"),
            ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n", "image"),
            ("{not yaml", "couldn't parse"),
            ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {serviceAccountName: x, containers: [{name: c, image: i}]}\n",
             "static pods may not reference serviceaccounts"),
            ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {volumes: [{name: v, secret: {secretName: s}}], containers: [{name: c, image: i}]}\n",
             "static pods may not reference secrets"),
            ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {volumes: [{name: v, secret: {}}], containers: [{name: c, image: i}]}\n",
             "static pods may not reference secrets (via secret volumes)"),
            ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i, envFrom: [{configMapRef: {name: m}}]}]}\n",
             "static pods may not reference configmaps"),
            ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {volumes: [{name: v, projected: {sources: [{serviceAccountToken: {path: t}}]}}], containers: [{name: c, image: i}]}\n",
             "serviceaccounts (via projected volumes)"),
        ];
        for (manifest, why) in cases {
            let err = decode(manifest.as_bytes(), Path::new("/m/p"), "n").unwrap_err();
            assert!(err.contains(why), "{manifest:?}: {err}");
        }
        // hostPath, emptyDir and downwardAPI need no API object.
        let fine = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {volumes: [{name: a, hostPath: {path: /x}}, {name: b, emptyDir: {}}, {name: d, projected: {sources: [{downwardAPI: {items: []}}]}}], containers: [{name: c, image: i}]}\n";
        decode(fine.as_bytes(), Path::new("/m/p"), "n").unwrap();
    }

    #[test]
    fn the_directory_is_read_as_upstream_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("b-web.yaml", NGINX);
        write(".hidden.yaml", &NGINX.replace("name: web", "name: hidden"));
        write(
            "a-db.json",
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"db"},"spec":{"containers":[{"name":"c","image":"i"}]}}"#,
        );
        write("c-dup.yaml", NGINX);
        write("d-broken.yaml", "kind: [");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        write("sub/x.yaml", &NGINX.replace("name: web", "name: nested"));
        let mut source = Source::new(dir.path().to_path_buf(), "n1");
        let pods = source.read();
        let names: Vec<_> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["db-n1", "web-n1"]);
        let seen = pods[1].metadata.annotations.as_ref().unwrap()[CONFIG_SEEN].clone();
        assert!(seen.ends_with('Z') && seen.len() == 30, "{seen}");

        // Read again: the same pods, seen at the same time.
        assert_eq!(source.read(), pods);

        // A broken edit keeps the last good version; a good edit replaces it.
        write(
            "b-web.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web",
        );
        assert_eq!(source.read(), pods);
        write("b-web.yaml", &NGINX.replace("busybox:1", "busybox:2"));
        let edited = source.read();
        assert_ne!(edited[1].metadata.uid, pods[1].metadata.uid);
        assert_eq!(edited[1].metadata.name.as_deref(), Some("web-n1"));

        // A removed file removes its pod; a missing directory is no pods.
        std::fs::remove_file(dir.path().join("a-db.json")).unwrap();
        let names: Vec<_> = source
            .read()
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["web-n1"]);
        let mut missing = Source::new(dir.path().join("nope"), "n1");
        assert!(missing.read().is_empty());
        // One file as the path.
        let mut single = Source::new(dir.path().join("b-web.yaml"), "n1");
        assert_eq!(single.read().len(), 1);
    }

    #[tokio::test]
    async fn changes_reach_the_channel_through_inotify() {
        let dir = tempfile::tempdir().unwrap();
        let source = Source::new(dir.path().to_path_buf(), "n1");
        // A long period: only inotify can bring the change in time.
        let mut rx = watch(source, Duration::from_secs(3600));
        assert!(rx.borrow_and_update().is_empty());
        std::fs::write(dir.path().join("web.yaml"), NGINX).unwrap();
        tokio::time::timeout(Duration::from_secs(10), rx.changed())
            .await
            .expect("noticed within 10s")
            .unwrap();
        assert_eq!(rx.borrow_and_update().len(), 1);
        std::fs::remove_file(dir.path().join("web.yaml")).unwrap();
        tokio::time::timeout(Duration::from_secs(10), rx.changed())
            .await
            .expect("noticed within 10s")
            .unwrap();
        assert!(rx.borrow().is_empty());
    }
}
