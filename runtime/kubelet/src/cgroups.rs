//! Pod cgroups in upstream's QoS hierarchy (the kubelet's `cm` package, cgroupfs driver):
//! `<cgroup-root>/kubepods/pod<uid>` for Guaranteed pods, `…/kubepods/burstable/pod<uid>` and
//! `…/kubepods/besteffort/pod<uid>` for the others, each container one level below.
//!
//! The pod level carries the pod's limits (cpu shares = Σ requests; CFS quota and memory limit
//! only when every container sets one), so a pod cannot exceed its declared total however its
//! containers share it. The runtime creates the container level (and any missing parent, with
//! cpuset inheritance on v1); this module writes the pod level and removes it. Works on v1
//! hierarchies (hybrid hosts, like this one) and on pure v2 (the Vagrant VMs).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::node::machine::{quantity_bytes, quantity_millicpu};

/// The name [`Layout::V1`] gives a hybrid host's cgroup2 hierarchy.
const UNIFIED: &str = "unified";

/// Where cgroup controllers are mounted on this host.
#[derive(Debug, Clone)]
pub enum Layout {
    /// One mount per v1 hierarchy: (controllers, mount point).
    V1(Vec<(Vec<String>, PathBuf)>),
    /// The unified hierarchy's mount point.
    V2(PathBuf),
}

impl Layout {
    /// Reads /proc/self/mountinfo. v1 wins when it has a memory hierarchy (hybrid hosts keep
    /// the controllers there and an empty cgroup2 beside).
    pub fn detect() -> Layout {
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut v1 = Vec::new();
        let mut v2 = None;
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = left.split(' ').nth(4).unwrap_or_default();
            let mut right = right.split(' ');
            let fstype = right.next().unwrap_or_default();
            let _source = right.next();
            let options = right.next().unwrap_or_default();
            match fstype {
                "cgroup" => {
                    let controllers: Vec<String> = options
                        .split(',')
                        .filter(|o| {
                            !matches!(
                                *o,
                                "rw" | "ro"
                                    | "xattr"
                                    | "noprefix"
                                    | "clone_children"
                                    | "cpuset_v2_mode"
                                    | "favordynmods"
                            )
                        })
                        .map(|o| o.to_string())
                        .collect();
                    v1.push((controllers, PathBuf::from(mount_point)));
                }
                "cgroup2" if v2.is_none() => v2 = Some(PathBuf::from(mount_point)),
                _ => {}
            }
        }
        if v1.iter().any(|(c, _)| c.iter().any(|c| c == "memory")) {
            // Hybrid: the empty cgroup2 beside the v1 controllers holds no limits, but the
            // node's eBPF socket programs attach there (skiff netd's service proxy), so pods
            // are placed in it too, under the same path ("unified").
            if let Some(unified) = v2 {
                v1.push((vec![UNIFIED.to_string()], unified));
            }
            Layout::V1(v1)
        } else {
            Layout::V2(v2.unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup")))
        }
    }

    /// On a hybrid host, the cgroup2 directory of `path` whose `cgroup.procs` a container's
    /// shim joins before it starts the container (its processes inherit it). None on pure v1
    /// and on v2, where the runtime places the container itself.
    pub fn unified_dir(&self, path: &str) -> Option<PathBuf> {
        match self {
            Layout::V1(_) => self.dir(UNIFIED, path),
            Layout::V2(_) => None,
        }
    }

    /// The directory of `path` in the hierarchy holding `controller`.
    fn dir(&self, controller: &str, path: &str) -> Option<PathBuf> {
        let rel = path.trim_start_matches('/');
        match self {
            Layout::V1(mounts) => mounts
                .iter()
                .find(|(c, _)| c.iter().any(|c| c == controller))
                .map(|(_, m)| m.join(rel)),
            Layout::V2(root) => Some(root.join(rel)),
        }
    }

    /// Every directory `path` has (one per v1 hierarchy, or the v2 one).
    fn all_dirs(&self, path: &str) -> Vec<PathBuf> {
        let rel = path.trim_start_matches('/');
        match self {
            Layout::V1(mounts) => mounts.iter().map(|(_, m)| m.join(rel)).collect(),
            Layout::V2(root) => vec![root.join(rel)],
        }
    }
}

/// A pod's QoS class (upstream's `GetPodQOS`).
pub fn qos_class(pod: &Pod) -> &'static str {
    let spec = pod.spec.clone().unwrap_or_default();
    let all: Vec<Container> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .cloned()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &all {
        let resources = c.resources.clone().unwrap_or_default();
        let requests = resources.requests.unwrap_or_default();
        let limits = resources.limits.unwrap_or_default();
        for name in ["cpu", "memory"] {
            let request = requests.get(name).or_else(|| limits.get(name));
            let limit = limits.get(name);
            if request.is_some() || limit.is_some() {
                any = true;
            }
            match (request, limit) {
                (Some(r), Some(l)) if same_quantity(name, &r.0, &l.0) => {}
                _ => guaranteed = false,
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn same_quantity(name: &str, a: &str, b: &str) -> bool {
    if name == "cpu" {
        quantity_millicpu(a) == quantity_millicpu(b)
    } else {
        quantity_bytes(a) == quantity_bytes(b)
    }
}

/// The pod's cgroup path below the hierarchy roots.
pub fn pod_path(cgroup_root: &str, qos: &str, uid: &str) -> String {
    let root = cgroup_root.trim_end_matches('/');
    match qos {
        "Guaranteed" => format!("{root}/kubepods/pod{uid}"),
        "BestEffort" => format!("{root}/kubepods/besteffort/pod{uid}"),
        _ => format!("{root}/kubepods/burstable/pod{uid}"),
    }
}

/// cpu shares from millicores (upstream's `MilliCPUToShares`).
pub fn cpu_shares(millicpu: u64) -> u64 {
    if millicpu == 0 {
        return 2;
    }
    (millicpu * 1024 / 1000).clamp(2, 262_144)
}

/// CFS quota in µs for a 100 ms period (upstream's `MilliCPUToQuota`, at least 1 ms).
pub fn cpu_quota(millicpu: u64) -> i64 {
    ((millicpu * 100_000 / 1000) as i64).max(1000)
}

/// v2 cpu.weight from v1 shares (runc's and upstream's conversion).
pub fn cpu_weight(shares: u64) -> u64 {
    1 + ((shares.saturating_sub(2)) * 9999) / 262_142
}

/// A container's (request, limit) for cpu in millicores and memory in bytes.
pub fn container_resources(c: &Container) -> (Option<u64>, Option<u64>, Option<u64>, Option<u64>) {
    let resources = c.resources.clone().unwrap_or_default();
    let requests = resources.requests.unwrap_or_default();
    let limits = resources.limits.unwrap_or_default();
    let cpu_limit = limits.get("cpu").and_then(|q| quantity_millicpu(&q.0));
    let cpu_request = requests
        .get("cpu")
        .and_then(|q| quantity_millicpu(&q.0))
        .or(cpu_limit);
    let memory_limit = limits.get("memory").and_then(|q| quantity_bytes(&q.0));
    let memory_request = requests
        .get("memory")
        .and_then(|q| quantity_bytes(&q.0))
        .or(memory_limit);
    (cpu_request, cpu_limit, memory_request, memory_limit)
}

/// The pod level's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct PodLimits {
    pub cpu_shares: u64,
    pub cpu_quota: Option<i64>,
    pub memory: Option<u64>,
}

pub fn pod_limits(pod: &Pod) -> PodLimits {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut shares_millis = 0;
    let mut quota_millis = Some(0u64);
    let mut memory = Some(0u64);
    for c in &spec.containers {
        let (cpu_request, cpu_limit, _, memory_limit) = container_resources(c);
        shares_millis += cpu_request.unwrap_or(0);
        quota_millis = quota_millis.zip(cpu_limit).map(|(a, b)| a + b);
        memory = memory.zip(memory_limit).map(|(a, b)| a + b);
    }
    // Init containers run one at a time: the pod needs the largest of them if it is bigger.
    for c in spec.init_containers.iter().flatten() {
        let (cpu_request, cpu_limit, _, memory_limit) = container_resources(c);
        shares_millis = shares_millis.max(cpu_request.unwrap_or(0));
        quota_millis = match (quota_millis, cpu_limit) {
            (Some(q), Some(l)) => Some(q.max(l)),
            _ => None,
        };
        memory = match (memory, memory_limit) {
            (Some(m), Some(l)) => Some(m.max(l)),
            _ => None,
        };
    }
    PodLimits {
        cpu_shares: if qos_class(pod) == "BestEffort" {
            2
        } else {
            cpu_shares(shares_millis)
        },
        cpu_quota: quota_millis.filter(|q| *q > 0).map(cpu_quota),
        memory: memory.filter(|m| *m > 0),
    }
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    fs::write(dir.join(file), value).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing {value} to {}: {e}", dir.join(file).display()),
        )
    })
}

/// Creates the pod's cgroup with its limits (and the QoS levels above it).
pub fn ensure_pod(
    layout: &Layout,
    cgroup_root: &str,
    path: &str,
    limits: &PodLimits,
) -> io::Result<()> {
    match layout {
        Layout::V1(_) => {
            if let Some(dir) = layout.dir("cpu", path) {
                fs::create_dir_all(&dir)?;
                let besteffort = layout.dir(
                    "cpu",
                    &format!("{}/kubepods/besteffort", cgroup_root.trim_end_matches('/')),
                );
                if let Some(be) = besteffort.filter(|d| d.exists()) {
                    let _ = write(&be, "cpu.shares", "2");
                }
                write(&dir, "cpu.shares", &limits.cpu_shares.to_string())?;
                if let Some(quota) = limits.cpu_quota {
                    write(&dir, "cpu.cfs_period_us", "100000")?;
                    write(&dir, "cpu.cfs_quota_us", &quota.to_string())?;
                }
            }
            if let Some(dir) = layout.dir("memory", path) {
                fs::create_dir_all(&dir)?;
                if let Some(memory) = limits.memory {
                    write(&dir, "memory.limit_in_bytes", &memory.to_string())?;
                }
            }
            if let Some(dir) = layout.dir("pids", path) {
                fs::create_dir_all(&dir)?;
            }
            if let Some(dir) = layout.unified_dir(path) {
                fs::create_dir_all(&dir)?;
            }
        }
        Layout::V2(root) => {
            // Enable the controllers on the way down, then write the pod's files.
            let mut dir = root.clone();
            for part in path
                .trim_start_matches('/')
                .split('/')
                .filter(|p| !p.is_empty())
            {
                let available =
                    fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
                let wanted: Vec<String> = ["cpu", "memory", "pids"]
                    .iter()
                    .filter(|c| available.split_whitespace().any(|a| a == **c))
                    .map(|c| format!("+{c}"))
                    .collect();
                if !wanted.is_empty() {
                    let _ = write(&dir, "cgroup.subtree_control", &wanted.join(" "));
                }
                dir = dir.join(part);
                fs::create_dir_all(&dir)?;
            }
            if dir.join("cpu.weight").exists() {
                write(
                    &dir,
                    "cpu.weight",
                    &cpu_weight(limits.cpu_shares).to_string(),
                )?;
                if let Some(quota) = limits.cpu_quota {
                    write(&dir, "cpu.max", &format!("{quota} 100000"))?;
                }
            }
            if let Some(memory) = limits.memory.filter(|_| dir.join("memory.max").exists()) {
                write(&dir, "memory.max", &memory.to_string())?;
            }
        }
    }
    Ok(())
}

/// Removes the pod's cgroup in every hierarchy (its containers' cgroups are gone by then).
pub fn remove_pod(layout: &Layout, path: &str) -> io::Result<()> {
    for dir in layout.all_dirs(path) {
        remove_tree(&dir)?;
    }
    Ok(())
}

/// rmdir of a cgroup directory and any empty cgroup left below it (deepest first).
fn remove_tree(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("removing cgroup {}: {e}", dir.display()),
        )),
    }
}

/// How many times the kernel's OOM killer killed in this cgroup.
pub fn oom_kills(layout: &Layout, path: &str) -> u64 {
    let (dir, file) = match layout {
        Layout::V1(_) => (layout.dir("memory", path), "memory.oom_control"),
        Layout::V2(_) => (layout.dir("memory", path), "memory.events"),
    };
    dir.and_then(|d| fs::read_to_string(d.join(file)).ok())
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// What a cgroup has used, as cAdvisor reads it (its `GetStats` for the v1 and v2 managers).
/// A field is None when the hierarchy holding it lacks the cgroup or the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupStats {
    /// Cumulative CPU time, in nanoseconds (v1 `cpuacct.usage`, v2 `cpu.stat` usage_usec).
    pub cpu_usage_ns: Option<u64>,
    /// Memory charged, page cache included (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub memory_usage: Option<u64>,
    /// Usage less inactive file pages: what the kubelet evicts and metrics-server reports.
    pub working_set: Option<u64>,
    /// Anonymous memory (v1 `total_rss`, v2 `anon`).
    pub rss: Option<u64>,
    pub page_faults: Option<u64>,
    pub major_page_faults: Option<u64>,
    /// The memory limit, None when unlimited.
    pub memory_limit: Option<u64>,
    /// Tasks in the cgroup (`pids.current`).
    pub pids: Option<u64>,
}

/// cAdvisor's bound above which a memory limit means none (`1 << 62`).
const UNLIMITED: u64 = 1 << 62;

fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// The value of `key` in a flat-keyed file (`memory.stat`, `cpu.stat`, /proc/meminfo).
fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        let k = parts.next()?;
        if k.trim_end_matches(':') != key {
            return None;
        }
        parts.next()?.parse().ok()
    })
}

impl Layout {
    /// Whether the cgroup exists (in the hierarchy with the memory controller, or v2's).
    pub fn exists(&self, path: &str) -> bool {
        self.dir("memory", path).is_some_and(|d| d.is_dir())
    }

    /// When the cgroup was made: the earliest modification time of its directories (cgroup
    /// filesystems never change a directory's time afterwards; cAdvisor's creation time).
    pub fn creation_time(&self, path: &str) -> Option<std::time::SystemTime> {
        self.all_dirs(path)
            .iter()
            .filter_map(|d| fs::metadata(d).and_then(|m| m.modified()).ok())
            .min()
    }
}

/// Reads the usage of cgroup `path` (below the hierarchy roots; "/" is the root cgroup, whose
/// v2 memory comes from /proc/meminfo as cAdvisor's does). None when the cgroup is gone.
pub fn read_stats(layout: &Layout, path: &str) -> Option<CgroupStats> {
    if !layout.exists(path) {
        return None;
    }
    let root = path.trim_matches('/').is_empty();
    let mut out = CgroupStats::default();
    match layout {
        Layout::V1(_) => {
            out.cpu_usage_ns = layout
                .dir("cpuacct", path)
                .and_then(|d| read_u64(&d, "cpuacct.usage"));
            if let Some(dir) = layout.dir("memory", path) {
                out.memory_usage = read_u64(&dir, "memory.usage_in_bytes");
                let stat = fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
                out.rss = stat_value(&stat, "total_rss");
                out.page_faults = stat_value(&stat, "total_pgfault");
                out.major_page_faults = stat_value(&stat, "total_pgmajfault");
                let inactive = stat_value(&stat, "total_inactive_file").unwrap_or(0);
                out.working_set = out.memory_usage.map(|u| u.saturating_sub(inactive));
                out.memory_limit =
                    read_u64(&dir, "memory.limit_in_bytes").filter(|l| *l < UNLIMITED);
            }
            out.pids = layout
                .dir("pids", path)
                .and_then(|d| read_u64(&d, "pids.current"));
        }
        Layout::V2(_) => {
            let dir = layout.dir("memory", path)?;
            let cpu = fs::read_to_string(dir.join("cpu.stat")).unwrap_or_default();
            out.cpu_usage_ns = stat_value(&cpu, "usage_usec").map(|us| us * 1000);
            let stat = fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
            out.memory_usage = read_u64(&dir, "memory.current");
            out.rss = stat_value(&stat, "anon");
            out.page_faults = stat_value(&stat, "pgfault");
            out.major_page_faults = stat_value(&stat, "pgmajfault");
            let mut inactive = stat_value(&stat, "inactive_file").unwrap_or(0);
            if root && out.memory_usage.is_none() {
                // The root cgroup has no memory.current: the machine's numbers instead.
                let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
                let kib = |k: &str| stat_value(&meminfo, k).map(|v| v * 1024);
                out.memory_usage = kib("MemTotal")
                    .zip(kib("MemFree"))
                    .map(|(t, f)| t.saturating_sub(f));
                inactive = kib("Inactive(file)").unwrap_or(0);
            }
            out.working_set = out.memory_usage.map(|u| u.saturating_sub(inactive));
            out.memory_limit = fs::read_to_string(dir.join("memory.max"))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .filter(|l| *l < UNLIMITED);
            out.pids = read_u64(&dir, "pids.current");
        }
    }
    Some(out)
}

/// CPU time (ns) and memory working set (bytes) of a cgroup.
pub fn usage(layout: &Layout, path: &str) -> (u64, u64) {
    read_stats(layout, path)
        .map(|s| (s.cpu_usage_ns.unwrap_or(0), s.working_set.unwrap_or(0)))
        .unwrap_or((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "uid": "u1"}, "spec": {"containers": containers}}),
        )
        .unwrap()
    }

    #[test]
    fn qos_classes() {
        assert_eq!(qos_class(&pod(json!([{"name": "a"}]))), "BestEffort");
        assert_eq!(
            qos_class(&pod(
                json!([{"name": "a", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}])
            )),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&pod(
                json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}}}])
            )),
            "Burstable"
        );
        assert_eq!(
            qos_class(&pod(json!([
                {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
                {"name": "b"}]))),
            "Burstable"
        );
    }

    #[test]
    fn upstream_formulas() {
        assert_eq!(cpu_shares(0), 2);
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(cpu_shares(100), 102);
        assert_eq!(cpu_shares(1000), 1024);
        assert_eq!(cpu_quota(500), 50_000);
        assert_eq!(cpu_quota(1), 1000);
        assert_eq!(cpu_weight(1024), 39);
        assert_eq!(cpu_weight(2), 1);
    }

    #[test]
    fn stats_read_as_cadvisor_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let put = |rel: &str, file: &str, text: &str| {
            let d = dir.path().join(rel);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join(file), text).unwrap();
        };
        // v1: one hierarchy per controller.
        put("cpuacct/k/pod1", "cpuacct.usage", "123456789\n");
        put("memory/k/pod1", "memory.usage_in_bytes", "10485760\n");
        put(
            "memory/k/pod1",
            "memory.stat",
            "cache 1\nrss 2\ntotal_rss 4194304\ntotal_pgfault 100\ntotal_pgmajfault 3\ntotal_inactive_file 2097152\n",
        );
        put(
            "memory/k/pod1",
            "memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        put("pids/k/pod1", "pids.current", "4\n");
        let v1 = Layout::V1(vec![
            (vec!["cpuacct".into()], dir.path().join("cpuacct")),
            (vec!["memory".into()], dir.path().join("memory")),
            (vec!["pids".into()], dir.path().join("pids")),
        ]);
        let stats = read_stats(&v1, "/k/pod1").unwrap();
        assert_eq!(
            stats,
            CgroupStats {
                cpu_usage_ns: Some(123_456_789),
                memory_usage: Some(10 << 20),
                working_set: Some(8 << 20),
                rss: Some(4 << 20),
                page_faults: Some(100),
                major_page_faults: Some(3),
                memory_limit: None,
                pids: Some(4),
            }
        );
        assert_eq!(usage(&v1, "/k/pod1"), (123_456_789, 8 << 20));
        assert!(read_stats(&v1, "/k/gone").is_none());
        assert!(v1.creation_time("/k/pod1").is_some());
        // v2: one directory.
        put("v2/k/pod2", "cpu.stat", "usage_usec 2500\nuser_usec 2000\n");
        put("v2/k/pod2", "memory.current", "3000\n");
        put(
            "v2/k/pod2",
            "memory.stat",
            "anon 1000\nfile 2000\ninactive_file 500\npgfault 7\npgmajfault 1\n",
        );
        put("v2/k/pod2", "memory.max", "65536\n");
        let v2 = Layout::V2(dir.path().join("v2"));
        let stats = read_stats(&v2, "/k/pod2").unwrap();
        assert_eq!(stats.cpu_usage_ns, Some(2_500_000));
        assert_eq!(stats.working_set, Some(2500));
        assert_eq!(stats.rss, Some(1000));
        assert_eq!(stats.memory_limit, Some(65536));
        assert_eq!(stats.pids, None);
        assert_eq!(stat_value("MemTotal:  1024 kB\n", "MemTotal"), Some(1024));
    }

    #[test]
    fn pod_level_limits_only_when_every_container_has_them() {
        let both = pod(json!([
            {"name": "a", "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m", "memory": "64Mi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "300m", "memory": "32Mi"}}}]));
        let limits = pod_limits(&both);
        assert_eq!(limits.cpu_shares, cpu_shares(400));
        assert_eq!(limits.cpu_quota, Some(50_000));
        assert_eq!(limits.memory, Some(96 << 20));
        let partial = pod(json!([
            {"name": "a", "resources": {"limits": {"memory": "64Mi"}}},
            {"name": "b"}]));
        let limits = pod_limits(&partial);
        assert_eq!(limits.memory, None);
        assert_eq!(limits.cpu_quota, None);
        assert_eq!(
            pod_path("/skiff/n1", "Burstable", "u1"),
            "/skiff/n1/kubepods/burstable/podu1"
        );
        assert_eq!(pod_path("/", "Guaranteed", "u1"), "/kubepods/podu1");
    }
}
