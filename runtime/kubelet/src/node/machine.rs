//! What the node is made of: CPUs, memory, disk, kernel and OS, read once at start from
//! /proc, /etc and statvfs — the facts upstream's kubelet gets from cAdvisor.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: u64,
    pub memory_kib: u64,
    pub ephemeral_storage_bytes: u64,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
}

impl Machine {
    pub fn read(root_dir: &Path) -> Machine {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as u64)
            .unwrap_or(1);
        let memory_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| meminfo_kib(&m, "MemTotal"))
            .unwrap_or(0);
        let ephemeral_storage_bytes = nix::sys::statvfs::statvfs(root_dir)
            .map(|s| s.blocks() * s.fragment_size())
            .unwrap_or(0);
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "Linux".into());
        let machine_id = read("/etc/machine-id");
        let system_uuid = match read("/sys/class/dmi/id/product_uuid") {
            u if u.is_empty() => machine_id.clone(),
            u => u,
        };
        Machine {
            cpus,
            memory_kib,
            ephemeral_storage_bytes,
            machine_id,
            system_uuid,
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            kernel_version: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            os_image,
        }
    }

    /// capacity, with --capacity overrides.
    pub fn capacity(
        &self,
        overrides: Option<&BTreeMap<String, String>>,
    ) -> BTreeMap<String, Quantity> {
        let mut capacity = BTreeMap::from([
            ("cpu".to_string(), Quantity(self.cpus.to_string())),
            (
                "memory".to_string(),
                Quantity(format!("{}Ki", self.memory_kib)),
            ),
            ("pods".to_string(), Quantity("110".into())),
            (
                "ephemeral-storage".to_string(),
                Quantity(format!("{}Ki", self.ephemeral_storage_bytes / 1024)),
            ),
            ("hugepages-1Gi".to_string(), Quantity("0".into())),
            ("hugepages-2Mi".to_string(), Quantity("0".into())),
        ]);
        for (name, value) in overrides.into_iter().flatten() {
            capacity.insert(name.clone(), Quantity(value.clone()));
        }
        capacity
    }

    /// allocatable: capacity minus upstream's default hard eviction thresholds
    /// (memory.available 100Mi, nodefs.available 10%).
    pub fn allocatable(capacity: &BTreeMap<String, Quantity>) -> BTreeMap<String, Quantity> {
        let mut allocatable = capacity.clone();
        if let Some(memory) = capacity.get("memory").and_then(|q| quantity_bytes(&q.0)) {
            let left = memory.saturating_sub(100 * 1024 * 1024);
            allocatable.insert("memory".into(), Quantity(format!("{}Ki", left / 1024)));
        }
        if let Some(disk) = capacity
            .get("ephemeral-storage")
            .and_then(|q| quantity_bytes(&q.0))
        {
            allocatable.insert(
                "ephemeral-storage".into(),
                Quantity((disk - disk / 10).to_string()),
            );
        }
        allocatable
    }
}

fn meminfo_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Bytes of a memory-style quantity (`128Mi`, `1G`, `512Ki`, `1000`); None if malformed.
pub fn quantity_bytes(q: &str) -> Option<u64> {
    let q = q.trim();
    let suffixes: [(&str, u64); 12] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("Ei", 1 << 60),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
        ("E", 1_000_000_000_000_000_000),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = q.strip_suffix(suffix) {
            let value: f64 = number.parse().ok()?;
            return Some((value * factor as f64) as u64);
        }
    }
    if let Some(number) = q.strip_suffix('m') {
        let value: f64 = number.parse().ok()?;
        return Some((value / 1000.0).ceil() as u64);
    }
    q.parse::<f64>().ok().map(|v| v as u64)
}

/// Millicores of a CPU quantity (`500m`, `2`, `0.5`); None if malformed.
pub fn quantity_millicpu(q: &str) -> Option<u64> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<f64>().ok().map(|v| v.ceil() as u64);
    }
    q.parse::<f64>().ok().map(|v| (v * 1000.0).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(quantity_bytes("128Mi"), Some(128 << 20));
        assert_eq!(quantity_bytes("1G"), Some(1_000_000_000));
        assert_eq!(quantity_bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(quantity_bytes("1000"), Some(1000));
        assert_eq!(quantity_bytes("lots"), None);
        assert_eq!(quantity_millicpu("250m"), Some(250));
        assert_eq!(quantity_millicpu("2"), Some(2000));
        assert_eq!(quantity_millicpu("0.1"), Some(100));
    }

    #[test]
    fn allocatable_takes_the_eviction_thresholds() {
        let capacity = BTreeMap::from([
            ("memory".to_string(), Quantity("1048576Ki".into())),
            ("ephemeral-storage".to_string(), Quantity("1000".into())),
            ("cpu".to_string(), Quantity("2".into())),
        ]);
        let a = Machine::allocatable(&capacity);
        assert_eq!(a["memory"].0, "946176Ki");
        assert_eq!(a["ephemeral-storage"].0, "900");
        assert_eq!(a["cpu"].0, "2");
    }

    #[test]
    fn meminfo() {
        let text = "MemTotal:       24589064 kB\nMemFree:         1234 kB\n";
        assert_eq!(meminfo_kib(text, "MemTotal"), Some(24589064));
        assert_eq!(meminfo_kib(text, "MemFree"), Some(1234));
    }
}
