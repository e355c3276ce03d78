//! `events`: container statistics and OOM notifications in runc's JSON shape
//! (`{"type":"stats","id":…,"data":{…}}` and `{"type":"oom","id":…}`), so that tools written
//! against `runc events` parse ours. libcgroups reports statistics in its own structure; this
//! module maps it onto runc's `types.Stats` field names and omit-if-empty rules.

use crate::cli::EventsArgs;
use crate::containers;
use anyhow::{bail, Result};
use libcgroups::common::CgroupManager;
use libcgroups::stats::{BlkioDeviceStat, MemoryData, Stats};
use libcontainer::container::ContainerStatus;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the streaming mode looks for a new OOM kill between two stats samples.
const OOM_POLL: Duration = Duration::from_millis(200);

pub fn events(root: &Path, args: &EventsArgs) -> Result<i32> {
    let container = containers::load(root, &args.container_id)?;
    if !matches!(
        container.status(),
        ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Created
    ) {
        bail!("container {} is not running", args.container_id);
    }
    let manager = containers::cgroup_manager(&container)?;
    let cgroup_path = container.spec()?.cgroup_path;
    let emit = |kind: &str, data: Option<Value>| {
        let mut event = json!({"type": kind, "id": args.container_id});
        if let Some(data) = data {
            event["data"] = data;
        }
        println!("{event}");
    };
    let sample = || -> Result<Value> { Ok(runc_stats(&manager.stats()?, cpuset(&cgroup_path))) };
    if args.stats {
        emit("stats", Some(sample()?));
        return Ok(0);
    }
    let interval = Duration::from_secs(args.interval.max(1));
    let mut ooms = oom_kills(&cgroup_path);
    let mut next_stats = Instant::now();
    loop {
        if Instant::now() >= next_stats {
            // As runc: a sample that cannot be read is reported and the stream goes on.
            match sample() {
                Ok(data) => emit("stats", Some(data)),
                Err(err) => eprintln!("skiff-runtime events: {err:#}"),
            }
            next_stats += interval;
        }
        let now = oom_kills(&cgroup_path);
        if now > ooms {
            emit("oom", None);
        }
        ooms = now;
        std::thread::sleep(OOM_POLL.min(next_stats.saturating_duration_since(Instant::now())));
        if !containers::exists(root, &args.container_id) {
            return Ok(0);
        }
    }
}

/// The container's directory for a controller: v1 (`/sys/fs/cgroup/<controller>/<path>`) or
/// the unified hierarchy (`/sys/fs/cgroup/<path>`).
fn cgroup_dir(controller: &str, cgroup_path: &Path) -> Option<PathBuf> {
    let relative = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    [
        Path::new("/sys/fs/cgroup").join(controller).join(relative),
        Path::new("/sys/fs/cgroup").join(relative),
    ]
    .into_iter()
    .find(|dir| dir.is_dir() && dir != Path::new("/sys/fs/cgroup"))
}

fn read_trimmed(path: PathBuf) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// OOM kills so far: `oom_kill` in memory.oom_control (v1) or memory.events (v2).
fn oom_kills(cgroup_path: &Path) -> u64 {
    let Some(dir) = cgroup_dir("memory", cgroup_path) else {
        return 0;
    };
    ["memory.oom_control", "memory.events"]
        .iter()
        .filter_map(|file| read_trimmed(dir.join(file)))
        .flat_map(|text| {
            text.lines()
                .filter_map(|l| l.strip_prefix("oom_kill "))
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .max()
        .unwrap_or(0)
}

/// "0-2,4" → [0, 1, 2, 4].
fn cpu_list(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u64>().ok()),
        }
    }
    out
}

/// runc's `cpuset` object, read from the cgroup (libcgroups has no cpuset statistics).
fn cpuset(cgroup_path: &Path) -> Value {
    let Some(dir) = cgroup_dir("cpuset", cgroup_path) else {
        return json!({});
    };
    let list = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| read_trimmed(dir.join(n)))
            .map(|t| cpu_list(&t))
            .unwrap_or_default()
    };
    let mut out = Map::new();
    out.insert(
        "cpus".into(),
        json!(list(&["cpuset.cpus", "cpuset.cpus.effective"])),
    );
    let flags = [
        ("cpu_exclusive", "cpuset.cpu_exclusive"),
        ("mem_hardwall", "cpuset.mem_hardwall"),
        ("mem_exclusive", "cpuset.mem_exclusive"),
        ("memory_migrate", "cpuset.memory_migrate"),
        ("memory_spread_page", "cpuset.memory_spread_page"),
        ("memory_spread_slab", "cpuset.memory_spread_slab"),
        ("memory_pressure", "cpuset.memory_pressure"),
        ("sched_load_balance", "cpuset.sched_load_balance"),
        (
            "sched_relax_domain_level",
            "cpuset.sched_relax_domain_level",
        ),
    ];
    out.insert(
        "mems".into(),
        json!(list(&["cpuset.mems", "cpuset.mems.effective"])),
    );
    for (key, file) in flags {
        if let Some(v) = read_trimmed(dir.join(file)).and_then(|t| t.parse::<i64>().ok()) {
            out.insert(key.into(), json!(v));
        }
    }
    Value::Object(out)
}

/// Inserts `value` unless it is zero / empty (Go's `omitempty`).
fn put(map: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Number(n) => n.as_u64() == Some(0),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::String(s) => s.is_empty(),
        Value::Null => true,
        Value::Bool(b) => !b,
    };
    if !empty {
        map.insert(key.into(), value);
    }
}

fn memory_entry(data: &MemoryData) -> Value {
    let mut m = Map::new();
    m.insert("limit".into(), json!(data.limit));
    put(&mut m, "usage", json!(data.usage));
    put(&mut m, "max", json!(data.max_usage));
    m.insert("failcnt".into(), json!(data.fail_count));
    Value::Object(m)
}

fn blkio_entries(entries: &[BlkioDeviceStat]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|e| {
                let mut m = Map::new();
                put(&mut m, "major", json!(e.major));
                put(&mut m, "minor", json!(e.minor));
                put(&mut m, "op", json!(e.op_type.clone().unwrap_or_default()));
                put(&mut m, "value", json!(e.value));
                Value::Object(m)
            })
            .collect(),
    )
}

/// libcgroups statistics in runc's `types.Stats` shape.
pub fn runc_stats(stats: &Stats, cpuset: Value) -> Value {
    let usage = &stats.cpu.usage;
    let mut cpu_usage = Map::new();
    put(&mut cpu_usage, "total", json!(usage.usage_total));
    put(&mut cpu_usage, "percpu", json!(usage.per_core_usage_total));
    put(
        &mut cpu_usage,
        "percpu_kernel",
        json!(usage.per_core_usage_kernel),
    );
    put(
        &mut cpu_usage,
        "percpu_user",
        json!(usage.per_core_usage_user),
    );
    cpu_usage.insert("kernel".into(), json!(usage.usage_kernel));
    cpu_usage.insert("user".into(), json!(usage.usage_user));
    let throttling = &stats.cpu.throttling;
    let mut throttle = Map::new();
    put(&mut throttle, "periods", json!(throttling.periods));
    put(
        &mut throttle,
        "throttledPeriods",
        json!(throttling.throttled_periods),
    );
    put(
        &mut throttle,
        "throttledTime",
        json!(throttling.throttled_time),
    );

    let mem = &stats.memory;
    let mut memory = Map::new();
    put(&mut memory, "cache", json!(mem.cache));
    memory.insert("usage".into(), memory_entry(&mem.memory));
    memory.insert("swap".into(), memory_entry(&mem.memswap));
    memory.insert("kernel".into(), memory_entry(&mem.kernel));
    memory.insert("kernelTCP".into(), memory_entry(&mem.kernel_tcp));
    let raw: Map<String, Value> = mem
        .stats
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    put(&mut memory, "raw", Value::Object(raw));

    let mut pids = Map::new();
    put(&mut pids, "current", json!(stats.pids.current));
    put(&mut pids, "limit", json!(stats.pids.limit));

    let b = &stats.blkio;
    let mut blkio = Map::new();
    for (key, entries) in [
        ("ioServiceBytesRecursive", &b.service_bytes),
        ("ioServicedRecursive", &b.serviced),
        ("ioQueueRecursive", &b.queued),
        ("ioServiceTimeRecursive", &b.service_time),
        ("ioWaitTimeRecursive", &b.wait_time),
        ("ioMergedRecursive", &b.merged),
        ("ioTimeRecursive", &b.time),
        ("sectorsRecursive", &b.sectors),
    ] {
        put(&mut blkio, key, blkio_entries(entries));
    }

    let hugetlb: Map<String, Value> = stats
        .hugetlb
        .iter()
        .map(|(size, h)| {
            let mut m = Map::new();
            put(&mut m, "usage", json!(h.usage));
            put(&mut m, "max", json!(h.max_usage));
            m.insert("failcnt".into(), json!(h.fail_count));
            (size.clone(), Value::Object(m))
        })
        .collect();

    json!({
        "cpu": {"usage": cpu_usage, "throttling": throttle},
        "cpuset": cpuset,
        "memory": memory,
        "pids": pids,
        "blkio": blkio,
        "hugetlb": hugetlb,
        "intel_rdt": {},
        "network_interfaces": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_expand_ranges() {
        assert_eq!(cpu_list("0-2,4\n"), vec![0, 1, 2, 4]);
        assert!(cpu_list("").is_empty());
    }

    #[test]
    fn stats_take_runc_names_and_omit_empty_values() {
        let mut stats = Stats::default();
        stats.cpu.usage.usage_total = 15;
        stats.cpu.usage.per_core_usage_total = vec![10, 5];
        stats.memory.memory = MemoryData {
            usage: 7,
            max_usage: 9,
            fail_count: 0,
            limit: 100,
        };
        stats.memory.stats.insert("rss".into(), 4096);
        stats.pids.current = 1;
        let v = runc_stats(&stats, json!({"cpus": [0, 1]}));
        assert_eq!(v["cpu"]["usage"]["total"], 15);
        assert_eq!(v["cpu"]["usage"]["percpu"], json!([10, 5]));
        assert_eq!(v["cpu"]["usage"]["kernel"], 0);
        assert!(v["cpu"]["usage"].get("percpu_user").is_none());
        assert_eq!(v["cpu"]["throttling"], json!({}));
        assert_eq!(
            v["memory"]["usage"],
            json!({"limit": 100, "usage": 7, "max": 9, "failcnt": 0})
        );
        assert_eq!(v["memory"]["kernelTCP"], json!({"limit": 0, "failcnt": 0}));
        assert_eq!(v["memory"]["raw"]["rss"], 4096);
        assert_eq!(v["pids"], json!({"current": 1}));
        assert_eq!(v["blkio"], json!({}));
        assert_eq!(v["network_interfaces"], Value::Null);
    }
}
