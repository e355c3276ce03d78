//! What `skiff up` made, recorded as it goes (`/var/lib/skiff/<name>/cluster.json`), so
//! `skiff down` — or a failed `up` — removes exactly that: these processes by pid, these
//! namespaces by name.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::topology::Topology;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Process {
    pub component: String,
    pub pid: i32,
    pub log: PathBuf,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Recorded {
    pub topology: Topology,
    /// Network namespaces created, in creation order.
    pub netns: Vec<String>,
    pub processes: Vec<Process>,
    pub kubeconfig: PathBuf,
    #[serde(default)]
    pub api_port: u16,
}

pub fn path(name: &str) -> PathBuf {
    PathBuf::from("/var/lib/skiff")
        .join(name)
        .join("cluster.json")
}

impl Recorded {
    pub fn read(name: &str) -> anyhow::Result<Recorded> {
        let p = path(name);
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", p.display()))
    }

    pub fn write(&self) -> anyhow::Result<()> {
        let p = path(&self.topology.name);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, &p)?;
        Ok(())
    }
}

/// Whether `pid` is a live process (not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// Mount points under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    mounts
}
