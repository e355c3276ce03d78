//! `/stats/summary`: upstream's Summary API (`k8s.io/kubelet/pkg/apis/stats/v1alpha1`), read
//! from this kubelet's cgroups, filesystems and pod network namespaces — what `kubectl get
//! --raw /api/v1/nodes/<node>/proxy/stats/summary`, the eviction logic of other tools and
//! metrics-server's older scrapers read. `/metrics/resource` (`metrics.rs`) is the same data in
//! Prometheus text.
//!
//! - **node**: the cgroup `--cgroup-root` (the whole machine when it is `/`; in the local
//!   cluster every node has a subtree of its own, so a node counts its pods, not its
//!   neighbours'), the filesystem of `--root-dir`, the image store's (`runtime.imageFs`), the
//!   node's network interfaces (the kubelet runs in the node's network namespace), the pid
//!   limits; `systemContainers` has `pods` (the `kubepods` cgroup).
//! - **pods**: every pod with a running container: its cgroup, each running container's
//!   cgroup (`<pod cgroup>/<container id>`), the writable layer (`rootfs`) and log directory
//!   (`logs`) of each container, the pod's volumes on this node and the interfaces of its
//!   network namespace (`/proc/<pid>/net/dev` of one of its processes, as cAdvisor reads it),
//!   `ephemeral-storage` as upstream sums it (container layers and logs, local ephemeral
//!   volumes, the pod's /etc/hosts), the number of processes.
//!
//! CPU: `usageCoreNanoSeconds` is the cgroup's counter; `usageNanoCores` is a rate, so it
//! needs two samples: the last sample of every cgroup is kept ([`Sampler`]), the rate is the
//! counter's increase over the time between the two, and a sample is only replaced when at
//! least a second has passed (a closer one would be noise; the rate computed last is given
//! instead). A housekeeping task samples every 10 s (cAdvisor's housekeeping interval for the
//! kubelet), so the first request after a start already has rates for what ran 10 s.
//! `?only_cpu_and_memory=true` leaves out everything but CPU and memory, as upstream's.
//! Memory as cAdvisor: working set = usage − inactive file pages; available = limit −
//! working set for a container with a limit, capacity − working set for the node.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::cgroups::{self, CgroupStats};
use crate::pods::state::{self, ContainerRecord, SandboxRecord};
use crate::Kubelet;

/// How often the housekeeping task samples every cgroup.
pub const HOUSEKEEPING: Duration = Duration::from_secs(10);
/// A sample closer than this to the last one does not replace it.
const MIN_SAMPLE_INTERVAL_NS: u64 = 1_000_000_000;
/// Samples of cgroups not seen for this long are dropped.
const FORGET_AFTER_NS: u64 = 120_000_000_000;

// ---- The Summary API's types (upstream's JSON names) ----

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Summary {
    pub node: NodeStats,
    pub pods: Vec<PodStats>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeStats {
    pub node_name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system_containers: Vec<ContainerStats>,
    pub start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rlimit: Option<RlimitStats>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct RlimitStats {
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxpid: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub curproc: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_fs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_fs: Option<FsStats>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodStats {
    pub pod_ref: PodReference,
    pub start_time: String,
    pub containers: Vec<ContainerStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    #[serde(rename = "volume", skip_serializing_if = "Vec::is_empty")]
    pub volume_stats: Vec<VolumeStats>,
    #[serde(rename = "ephemeral-storage", skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage: Option<FsStats>,
    #[serde(rename = "process_stats", skip_serializing_if = "Option::is_none")]
    pub process_stats: Option<ProcessStats>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct ProcessStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_count: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStats {
    pub name: String,
    pub start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<FsStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<FsStats>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct PodReference {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceStats {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rx_errors: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_errors: Option<u64>,
}

/// The default interface (`eth0`) inline, as upstream's embedded InterfaceStats, then all.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct NetworkStats {
    pub time: String,
    #[serde(flatten)]
    pub default: InterfaceStats,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceStats>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    #[serde(rename = "rssBytes", skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_faults: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub major_page_faults: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FsStats {
    pub time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_free: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inodes_used: Option<u64>,
}

/// A volume's usage, the FsStats inline as upstream's.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct VolumeStats {
    #[serde(flatten)]
    pub fs: FsStats,
    pub name: String,
}

// ---- Time ----

/// Nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A metav1.Time: RFC 3339 in UTC, whole seconds.
pub fn rfc3339(ns: u64) -> String {
    jiff::Timestamp::from_nanosecond(ns as i128)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

fn system_time_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Parses a stored RFC 3339 timestamp (records keep them so) into nanoseconds.
fn parse_time_ns(text: &str) -> Option<u64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_nanosecond().max(0) as u64)
}

// ---- CPU rates ----

/// The rate between two samples (time ns, cumulative usage ns) in nanocores: the usage's
/// increase per second of wall time, as cAdvisor and the kubelet compute `usageNanoCores`.
/// None when time did not advance or the counter went back (a new cgroup under the name).
pub fn nano_cores(previous: (u64, u64), current: (u64, u64)) -> Option<u64> {
    let (t0, u0) = previous;
    let (t1, u1) = current;
    if t1 <= t0 || u1 < u0 {
        return None;
    }
    Some(((u1 - u0) as u128 * 1_000_000_000 / (t1 - t0) as u128) as u64)
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: u64,
    usage: u64,
    rate: Option<u64>,
    seen: u64,
}

/// The last CPU sample of every cgroup (and the image store's size, which is slow to count).
#[derive(Default)]
pub struct Sampler {
    last: Mutex<HashMap<String, Sample>>,
    image_fs_used: Mutex<Option<(u64, u64)>>,
}

impl Sampler {
    /// Notes `usage` (cumulative ns) of `key` at `at` (ns) and returns its rate in nanocores
    /// (see the module's notes), None while there is only one sample.
    pub fn observe(&self, key: &str, at: u64, usage: u64) -> Option<u64> {
        let mut last = self.last.lock().expect("not poisoned");
        let fresh = Sample {
            at,
            usage,
            rate: None,
            seen: at,
        };
        match last.get_mut(key) {
            None => {
                last.insert(key.to_string(), fresh);
                None
            }
            Some(previous) if usage < previous.usage || at < previous.at => {
                *previous = fresh;
                None
            }
            Some(previous) if at - previous.at < MIN_SAMPLE_INTERVAL_NS => {
                previous.seen = at;
                previous.rate
            }
            Some(previous) => {
                let rate = nano_cores((previous.at, previous.usage), (at, usage));
                *previous = Sample {
                    at,
                    usage,
                    rate,
                    seen: at,
                };
                rate
            }
        }
    }

    /// Forgets cgroups not sampled since `before` (ns).
    pub fn forget_older_than(&self, before: u64) {
        self.last
            .lock()
            .expect("not poisoned")
            .retain(|_, s| s.seen >= before);
    }

    fn len(&self) -> usize {
        self.last.lock().expect("not poisoned").len()
    }
}

/// Samples everything every [`HOUSEKEEPING`], and counts the image store every 6th time.
pub async fn housekeeping(k: std::sync::Arc<Kubelet>, sampler: std::sync::Arc<Sampler>) {
    let mut tick = 0u64;
    loop {
        let (k2, s2) = (k.clone(), sampler.clone());
        let count_images = tick.is_multiple_of(6);
        let _ = tokio::task::spawn_blocking(move || {
            let _ = summary(&k2, &s2, true);
            if count_images {
                let used = disk_usage(&k2.args.image_root);
                *s2.image_fs_used.lock().expect("not poisoned") = Some(used);
            }
            s2.forget_older_than(now_ns().saturating_sub(FORGET_AFTER_NS));
            tracing::trace!(cgroups = s2.len(), "stats housekeeping");
        })
        .await;
        tick += 1;
        tokio::time::sleep(HOUSEKEEPING).await;
    }
}

// ---- Conversions ----

/// CPU stats of a cgroup sampled at `at`, the rate from `sampler` under `key`.
pub fn cpu_stats(stats: &CgroupStats, at: u64, sampler: &Sampler, key: &str) -> Option<CpuStats> {
    let usage = stats.cpu_usage_ns?;
    Some(CpuStats {
        time: rfc3339(at),
        usage_nano_cores: sampler.observe(key, at, usage),
        usage_core_nano_seconds: Some(usage),
    })
}

/// Memory stats of a cgroup; `capacity` (the node's) stands in for a missing limit when
/// given.
pub fn memory_stats(stats: &CgroupStats, at: u64, capacity: Option<u64>) -> Option<MemoryStats> {
    stats.memory_usage?;
    let limit = stats.memory_limit.or(capacity);
    Some(MemoryStats {
        time: rfc3339(at),
        available_bytes: limit
            .zip(stats.working_set)
            .map(|(l, w)| l.saturating_sub(w)),
        usage_bytes: stats.memory_usage,
        working_set_bytes: stats.working_set,
        rss_bytes: stats.rss,
        page_faults: stats.page_faults,
        major_page_faults: stats.major_page_faults,
    })
}

/// Interfaces from a `/proc/net/dev` text, without loopback and the host ends of containers'
/// links (cAdvisor's ignored prefixes); the default interface `eth0` inline.
pub fn network_stats(text: &str, at: u64) -> Option<NetworkStats> {
    let mut interfaces = Vec::new();
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if ["lo", "veth", "docker", "nerdctl"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            continue;
        }
        let n: Vec<u64> = counters
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        if n.len() < 16 {
            continue;
        }
        interfaces.push(InterfaceStats {
            name: name.to_string(),
            rx_bytes: Some(n[0]),
            rx_errors: Some(n[2]),
            tx_bytes: Some(n[8]),
            tx_errors: Some(n[10]),
        });
    }
    if interfaces.is_empty() {
        return None;
    }
    let default = interfaces
        .iter()
        .find(|i| i.name == "eth0")
        .cloned()
        .unwrap_or_default();
    Some(NetworkStats {
        time: rfc3339(at),
        default,
        interfaces,
    })
}

/// Capacity and free space of the filesystem holding `path`.
fn fs_info(path: &Path, at: u64) -> Option<FsStats> {
    let v = nix::sys::statvfs::statvfs(path).ok()?;
    let block = v.fragment_size() as u64;
    let capacity = v.blocks() as u64 * block;
    let free = v.blocks_free() as u64 * block;
    let inodes = v.files() as u64;
    let inodes_free = v.files_free() as u64;
    Some(FsStats {
        time: rfc3339(at),
        available_bytes: Some(v.blocks_available() as u64 * block),
        capacity_bytes: Some(capacity),
        used_bytes: Some(capacity.saturating_sub(free)),
        inodes_free: Some(inodes_free),
        inodes: Some(inodes),
        inodes_used: Some(inodes.saturating_sub(inodes_free)),
    })
}

/// `du -x -s`: bytes of disk used and inodes below `path`, not crossing into other mounts.
pub fn disk_usage(path: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    fn walk(dir: &Path, dev: u64, out: &mut (u64, u64)) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.dev() != dev {
                continue;
            }
            out.0 += meta.blocks() * 512;
            out.1 += 1;
            if meta.is_dir() {
                walk(&entry.path(), dev, out);
            }
        }
    }
    let Ok(meta) = path.symlink_metadata() else {
        return (0, 0);
    };
    let mut out = (meta.blocks() * 512, 1);
    if meta.is_dir() {
        walk(path, meta.dev(), &mut out);
    }
    out
}

/// A directory's usage on the filesystem that holds it.
fn usage_of(path: &Path, at: u64) -> Option<FsStats> {
    let mut stats = fs_info(path, at)?;
    let (bytes, inodes) = disk_usage(path);
    stats.used_bytes = Some(bytes);
    stats.inodes_used = Some(inodes);
    Some(stats)
}

fn add(a: &mut Option<u64>, b: Option<u64>) {
    if let Some(b) = b {
        *a = Some(a.unwrap_or(0) + b);
    }
}

/// The pod's ephemeral storage (upstream's `calcEphemeralStorage`): the node filesystem's
/// capacity, with the containers' layers and logs, the local ephemeral volumes and the
/// pod's /etc/hosts as used.
pub fn ephemeral_storage(
    root_fs: &FsStats,
    containers: &[ContainerStats],
    ephemeral_volumes: &[&VolumeStats],
    etc_hosts: Option<(u64, u64)>,
) -> FsStats {
    let mut out = FsStats {
        time: root_fs.time.clone(),
        available_bytes: root_fs.available_bytes,
        capacity_bytes: root_fs.capacity_bytes,
        inodes_free: root_fs.inodes_free,
        inodes: root_fs.inodes,
        ..Default::default()
    };
    for c in containers {
        if let Some(rootfs) = &c.rootfs {
            add(&mut out.used_bytes, rootfs.used_bytes);
            add(&mut out.inodes_used, rootfs.inodes_used);
            if let Some(logs) = &c.logs {
                add(&mut out.used_bytes, logs.used_bytes);
                add(&mut out.inodes_used, logs.inodes_used);
            }
        }
    }
    for v in ephemeral_volumes {
        add(&mut out.used_bytes, v.fs.used_bytes);
        add(&mut out.inodes_used, v.fs.inodes_used);
    }
    if let Some((bytes, inodes)) = etc_hosts {
        add(&mut out.used_bytes, Some(bytes));
        add(&mut out.inodes_used, Some(inodes));
    }
    out
}

// ---- Gathering ----

/// When the machine booted (ns), from /proc/stat.
fn boot_time_ns() -> u64 {
    fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .map(|s| s * 1_000_000_000)
        .unwrap_or(0)
}

fn rlimit(at: u64) -> RlimitStats {
    let maxpid = fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|t| t.trim().parse().ok());
    // SAFETY: sysinfo only writes the struct it is given.
    let curproc = unsafe {
        let mut info: libc::sysinfo = std::mem::zeroed();
        (libc::sysinfo(&mut info) == 0).then_some(info.procs as i64)
    };
    RlimitStats {
        time: rfc3339(at),
        maxpid,
        curproc,
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// The volumes of a pod on this node (those upstream measures): (name, directory, local
/// ephemeral — emptyDir on disk and configMap count toward ephemeral storage).
fn pod_volumes(pod_dir: &Path) -> Vec<(String, PathBuf, bool)> {
    let mut out = Vec::new();
    for plugin in [
        "empty-dir",
        "configmap",
        "secret",
        "projected",
        "downward-api",
    ] {
        let Ok(entries) = fs::read_dir(
            pod_dir
                .join("volumes")
                .join(format!("kubernetes.io~{plugin}")),
        ) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let ephemeral = match plugin {
                "configmap" => true,
                "empty-dir" => !is_tmpfs(&path),
                _ => false,
            };
            out.push((
                entry.file_name().to_string_lossy().into_owned(),
                path,
                ephemeral,
            ));
        }
    }
    out.sort();
    out
}

fn is_tmpfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        .unwrap_or(false)
}

/// The Summary of this node now. Blocking (files and directories are read): call it from a
/// blocking task.
pub fn summary(k: &Kubelet, sampler: &Sampler, only_cpu_and_memory: bool) -> Summary {
    let layout = &k.layout;
    let at = now_ns();
    let cgroup_root = k.args.cgroup_root.trim_end_matches('/');
    let node_cgroup = if cgroup_root.is_empty() {
        "/"
    } else {
        cgroup_root
    };
    let node_stats = cgroups::read_stats(layout, node_cgroup).unwrap_or_default();
    let start = if node_cgroup == "/" {
        boot_time_ns()
    } else {
        layout
            .creation_time(node_cgroup)
            .map(system_time_ns)
            .unwrap_or_else(boot_time_ns)
    };
    let mut node = NodeStats {
        node_name: k.args.node_name.clone(),
        start_time: rfc3339(start),
        cpu: cpu_stats(&node_stats, at, sampler, node_cgroup),
        memory: memory_stats(&node_stats, at, Some(k.node_memory_bytes)),
        ..Default::default()
    };
    let kubepods = format!("{cgroup_root}/kubepods");
    if let Some(pods_stats) = cgroups::read_stats(layout, &kubepods) {
        node.system_containers.push(ContainerStats {
            name: "pods".into(),
            start_time: rfc3339(
                layout
                    .creation_time(&kubepods)
                    .map(system_time_ns)
                    .unwrap_or(start),
            ),
            cpu: cpu_stats(&pods_stats, at, sampler, &kubepods),
            memory: memory_stats(&pods_stats, at, Some(k.node_memory_bytes)),
            ..Default::default()
        });
    }
    let root_fs = fs_info(&k.args.root_dir, at);
    if !only_cpu_and_memory {
        node.network = fs::read_to_string("/proc/self/net/dev")
            .ok()
            .and_then(|t| network_stats(&t, at));
        node.fs = root_fs.clone();
        let image_fs = fs_info(&k.args.image_root, at).map(|mut fs| {
            if let Some((bytes, inodes)) = *sampler.image_fs_used.lock().expect("not poisoned") {
                fs.used_bytes = Some(bytes);
                fs.inodes_used = Some(inodes);
            }
            fs
        });
        node.runtime = Some(RuntimeStats {
            image_fs: image_fs.clone(),
            container_fs: image_fs,
        });
        node.rlimit = Some(rlimit(at));
    }

    let views: Vec<crate::PodView> = k
        .views
        .lock()
        .expect("not poisoned")
        .values()
        .cloned()
        .collect();
    let mut pods = Vec::new();
    for view in views {
        let running: Vec<&crate::ContainerView> = view
            .containers
            .iter()
            .filter(|c| c.running && c.id.is_some())
            .collect();
        if running.is_empty() {
            continue;
        }
        let pod_dir = state::pod_dir(&k.args.root_dir, &view.uid);
        let Some(sandbox) = read_json::<SandboxRecord>(&pod_dir.join("sandbox.json")) else {
            continue;
        };
        let pod_cgroup = sandbox.cgroup_path.clone();
        let pod_start = parse_time_ns(&sandbox.created_at)
            .or_else(|| layout.creation_time(&pod_cgroup).map(system_time_ns))
            .unwrap_or(at);
        let mut pid = None;
        let mut containers = Vec::new();
        for c in running {
            let id = c.id.clone().unwrap_or_default();
            let record = read_json::<ContainerRecord>(
                &state::container_dir(&k.args.root_dir, &id).join("record.json"),
            );
            if pid.is_none() {
                pid = record.as_ref().and_then(|r| r.pid);
            }
            let started = record
                .as_ref()
                .and_then(|r| parse_time_ns(&r.created_at))
                .unwrap_or(pod_start);
            let path = format!("{}/{id}", pod_cgroup.trim_end_matches('/'));
            let stats = cgroups::read_stats(layout, &path).unwrap_or_default();
            let mut container = ContainerStats {
                name: c.name.clone(),
                start_time: rfc3339(started),
                cpu: cpu_stats(&stats, at, sampler, &path),
                memory: memory_stats(&stats, at, None),
                ..Default::default()
            };
            if !only_cpu_and_memory {
                container.rootfs = usage_of(
                    &k.args.image_root.join("containers").join(&id).join("upper"),
                    at,
                );
                container.logs = c
                    .log_path
                    .as_ref()
                    .and_then(|p| p.parent())
                    .and_then(|dir| usage_of(dir, at));
            }
            containers.push(container);
        }
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        let stats = cgroups::read_stats(layout, &pod_cgroup).unwrap_or_default();
        let mut pod = PodStats {
            pod_ref: PodReference {
                name: view.name.clone(),
                namespace: view.namespace.clone(),
                uid: view.uid.clone(),
            },
            start_time: rfc3339(pod_start),
            cpu: cpu_stats(&stats, at, sampler, &pod_cgroup),
            memory: memory_stats(&stats, at, None),
            containers,
            ..Default::default()
        };
        if !only_cpu_and_memory {
            if !sandbox.host_network {
                pod.network = pid
                    .and_then(|pid| fs::read_to_string(format!("/proc/{pid}/net/dev")).ok())
                    .and_then(|t| network_stats(&t, at));
            }
            let volumes: Vec<(VolumeStats, bool)> = pod_volumes(&pod_dir)
                .into_iter()
                .filter_map(|(name, path, ephemeral)| {
                    usage_of(&path, at).map(|fs| (VolumeStats { fs, name }, ephemeral))
                })
                .collect();
            if let Some(root_fs) = &root_fs {
                let ephemeral: Vec<&VolumeStats> =
                    volumes.iter().filter(|(_, e)| *e).map(|(v, _)| v).collect();
                let hosts = pod_dir.join("etc-hosts");
                let etc_hosts = hosts.exists().then(|| disk_usage(&hosts));
                pod.ephemeral_storage = Some(ephemeral_storage(
                    root_fs,
                    &pod.containers,
                    &ephemeral,
                    etc_hosts,
                ));
            }
            pod.volume_stats = volumes.into_iter().map(|(v, _)| v).collect();
            pod.process_stats = stats.pids.map(|n| ProcessStats {
                process_count: Some(n),
            });
        }
        pods.push(pod);
    }
    pods.sort_by(|a, b| {
        (&a.pod_ref.namespace, &a.pod_ref.name).cmp(&(&b.pod_ref.namespace, &b.pod_ref.name))
    });
    Summary { node, pods }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rates_need_two_samples_a_second_apart() {
        let s = Sampler::default();
        let sec = 1_000_000_000u64;
        assert_eq!(s.observe("a", 10 * sec, 5 * sec), None);
        // 0.5 s of CPU over 2 s of wall time: half a core.
        assert_eq!(
            s.observe("a", 12 * sec, 5 * sec + sec / 2),
            Some(250_000_000)
        );
        // Too close: the last rate, the sample kept.
        assert_eq!(s.observe("a", 12 * sec + 100, 9 * sec), Some(250_000_000));
        assert_eq!(
            s.observe("a", 13 * sec, 6 * sec + sec / 2),
            Some(1_000_000_000)
        );
        // A counter that went back is a new cgroup: start again.
        assert_eq!(s.observe("a", 14 * sec, sec), None);
        assert_eq!(s.observe("a", 16 * sec, 3 * sec), Some(1_000_000_000));
        s.forget_older_than(15 * sec);
        assert_eq!(s.len(), 1);
        s.forget_older_than(17 * sec);
        assert_eq!(s.len(), 0);
        assert_eq!(nano_cores((1, 1), (1, 2)), None);
        assert_eq!(
            nano_cores((0, 0), (4_000_000_000, 2_000_000_000)),
            Some(500_000_000)
        );
    }

    #[test]
    fn times_are_metav1_times() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000_999_999_999), "2023-11-14T22:13:20Z");
        assert_eq!(
            parse_time_ns("2023-11-14T22:13:20.5Z"),
            Some(1_700_000_000_500_000_000)
        );
    }

    #[test]
    fn interfaces_from_proc_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:    1296      16    1    0    0     0          0         0      656       8    2    0    0     0       0          0
vethab12:    5       1    0    0    0     0          0         0        5       1    0    0    0     0       0          0
  cni0:      10       1    0    0    0     0          0         0       20       2    0    0    0     0       0          0
";
        let n = network_stats(text, 0).unwrap();
        assert_eq!(n.default.name, "eth0");
        assert_eq!(n.default.rx_bytes, Some(1296));
        assert_eq!(n.default.rx_errors, Some(1));
        assert_eq!(n.default.tx_bytes, Some(656));
        assert_eq!(n.default.tx_errors, Some(2));
        let names: Vec<&str> = n.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth0", "cni0"]);
        assert!(network_stats("a\nb\n  lo: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", 0).is_none());
    }

    #[test]
    fn summary_json_has_upstreams_shape() {
        let s = Sampler::default();
        let cg = CgroupStats {
            cpu_usage_ns: Some(2_000_000_000),
            memory_usage: Some(3000),
            working_set: Some(2500),
            rss: Some(1000),
            page_faults: Some(7),
            major_page_faults: Some(1),
            memory_limit: None,
            pids: Some(2),
        };
        let fs = FsStats {
            time: rfc3339(0),
            available_bytes: Some(10),
            capacity_bytes: Some(20),
            used_bytes: Some(10),
            inodes_free: Some(5),
            inodes: Some(9),
            inodes_used: Some(4),
        };
        let container = ContainerStats {
            name: "web".into(),
            start_time: rfc3339(0),
            cpu: cpu_stats(&cg, 0, &s, "c"),
            memory: memory_stats(&cg, 0, None),
            rootfs: Some(FsStats {
                used_bytes: Some(100),
                inodes_used: Some(3),
                ..fs.clone()
            }),
            logs: Some(FsStats {
                used_bytes: Some(50),
                inodes_used: Some(2),
                ..fs.clone()
            }),
        };
        let volume = VolumeStats {
            fs: FsStats {
                used_bytes: Some(8),
                inodes_used: Some(1),
                ..fs.clone()
            },
            name: "www".into(),
        };
        let summary = Summary {
            node: NodeStats {
                node_name: "n1".into(),
                start_time: rfc3339(0),
                cpu: cpu_stats(&cg, 0, &s, "n"),
                memory: memory_stats(&cg, 0, Some(10_000)),
                network: network_stats("h\nh\n  eth0: 1 0 0 0 0 0 0 0 2 0 0 0 0 0 0 0\n", 0),
                fs: Some(fs.clone()),
                runtime: Some(RuntimeStats {
                    image_fs: Some(fs.clone()),
                    container_fs: None,
                }),
                rlimit: Some(RlimitStats {
                    time: rfc3339(0),
                    maxpid: Some(4194304),
                    curproc: Some(300),
                }),
                ..Default::default()
            },
            pods: vec![PodStats {
                pod_ref: PodReference {
                    name: "p".into(),
                    namespace: "ns".into(),
                    uid: "u".into(),
                },
                start_time: rfc3339(0),
                ephemeral_storage: Some(ephemeral_storage(
                    &fs,
                    std::slice::from_ref(&container),
                    &[&volume],
                    Some((4, 1)),
                )),
                containers: vec![container],
                volume_stats: vec![volume],
                process_stats: Some(ProcessStats {
                    process_count: Some(2),
                }),
                ..Default::default()
            }],
        };
        let t = "1970-01-01T00:00:00Z";
        assert_eq!(
            serde_json::to_value(&summary).unwrap(),
            json!({
                "node": {
                    "nodeName": "n1",
                    "startTime": t,
                    "cpu": {"time": t, "usageCoreNanoSeconds": 2_000_000_000u64},
                    "memory": {"time": t, "availableBytes": 7500, "usageBytes": 3000, "workingSetBytes": 2500,
                               "rssBytes": 1000, "pageFaults": 7, "majorPageFaults": 1},
                    "network": {"time": t, "name": "eth0", "rxBytes": 1, "rxErrors": 0, "txBytes": 2, "txErrors": 0,
                                "interfaces": [{"name": "eth0", "rxBytes": 1, "rxErrors": 0, "txBytes": 2, "txErrors": 0}]},
                    "fs": {"time": t, "availableBytes": 10, "capacityBytes": 20, "usedBytes": 10, "inodesFree": 5, "inodes": 9, "inodesUsed": 4},
                    "runtime": {"imageFs": {"time": t, "availableBytes": 10, "capacityBytes": 20, "usedBytes": 10, "inodesFree": 5, "inodes": 9, "inodesUsed": 4}},
                    "rlimit": {"time": t, "maxpid": 4194304, "curproc": 300},
                },
                "pods": [{
                    "podRef": {"name": "p", "namespace": "ns", "uid": "u"},
                    "startTime": t,
                    "containers": [{
                        "name": "web",
                        "startTime": t,
                        "cpu": {"time": t, "usageCoreNanoSeconds": 2_000_000_000u64},
                        "memory": {"time": t, "usageBytes": 3000, "workingSetBytes": 2500, "rssBytes": 1000, "pageFaults": 7, "majorPageFaults": 1},
                        "rootfs": {"time": t, "availableBytes": 10, "capacityBytes": 20, "usedBytes": 100, "inodesFree": 5, "inodes": 9, "inodesUsed": 3},
                        "logs": {"time": t, "availableBytes": 10, "capacityBytes": 20, "usedBytes": 50, "inodesFree": 5, "inodes": 9, "inodesUsed": 2},
                    }],
                    "volume": [{"time": t, "availableBytes": 10, "capacityBytes": 20, "usedBytes": 8, "inodesFree": 5, "inodes": 9, "inodesUsed": 1, "name": "www"}],
                    "ephemeral-storage": {"time": t, "availableBytes": 10, "capacityBytes": 20, "usedBytes": 162, "inodesFree": 5, "inodes": 9, "inodesUsed": 7},
                    "process_stats": {"process_count": 2},
                }],
            })
        );
        // The second sample a second later carries the rate.
        let later = CgroupStats {
            cpu_usage_ns: Some(2_500_000_000),
            ..cg.clone()
        };
        let cpu = cpu_stats(&later, 1_000_000_000, &s, "c").unwrap();
        assert_eq!(cpu.usage_nano_cores, Some(500_000_000));
        assert_eq!(
            serde_json::to_value(&cpu).unwrap(),
            json!({"time": "1970-01-01T00:00:01Z", "usageNanoCores": 500_000_000, "usageCoreNanoSeconds": 2_500_000_000u64})
        );
        // A container with a limit has availableBytes.
        let limited = CgroupStats {
            memory_limit: Some(4000),
            ..cg
        };
        assert_eq!(
            memory_stats(&limited, 0, None).unwrap().available_bytes,
            Some(1500)
        );
    }

    #[test]
    fn disk_usage_counts_blocks_and_inodes() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        fs::write(dir.path().join("sub/f"), vec![1u8; 10_000]).unwrap();
        let (bytes, inodes) = disk_usage(dir.path());
        assert_eq!(inodes, 3);
        assert!(bytes >= 10_000, "{bytes}");
        assert_eq!(disk_usage(&dir.path().join("none")), (0, 0));
    }
}
