//! What the kubelet knows about a pod's containers, in memory and on disk.
//!
//! Every container instance has a directory `<root-dir>/containers/<id>/` with `record.json`
//! (written by the kubelet before the start: whose container it is, which image, which log)
//! and `exit.json` (written by its shim when it ends). Together with the sandbox's
//! `sandbox.json` that is everything needed to rebuild this state after a kubelet restart —
//! running containers are found running, with the same ids and processes.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::ContainerStateTerminated;
use serde::{Deserialize, Serialize};

use crate::shim::{self, Exit};

/// A container instance as the kubelet created it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    pub id: String,
    pub pod_uid: String,
    pub name: String,
    pub init: bool,
    pub restart_count: i32,
    /// The image as the pod spec names it.
    pub image: String,
    /// The normalized reference (`docker.io/library/busybox:latest`).
    pub image_ref: String,
    /// `<repository>@<manifest digest>`, the CRI image_ref.
    pub image_id: String,
    pub created_at: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub pid: Option<i32>,
    pub log_path: PathBuf,
    /// The file bound at the container's terminationMessagePath.
    pub termination_log: PathBuf,
    /// Why the start failed, if it did (reason, message): the instance then counts as
    /// terminated with exit code 128, as containerd reports StartError.
    #[serde(default)]
    pub start_error: Option<(String, String)>,
}

/// The pod's sandbox as created (what cleanup needs even when the Pod object is gone).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxRecord {
    pub id: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub host_network: bool,
    pub cgroup_path: String,
    #[serde(default)]
    pub cni_result: Option<serde_json::Value>,
    #[serde(default)]
    pub pod_ips: Vec<String>,
    pub created_at: String,
    /// The network was set up (CNI ADD done) and not yet torn down.
    #[serde(default)]
    pub network_ready: bool,
    /// A static pod's (from --pod-manifest-path): after a kubelet restart, one whose manifest
    /// is gone or changed is stopped without asking the API server.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub static_pod: bool,
}

/// One instance, with what the kubelet observed of it.
#[derive(Debug, Clone)]
pub struct Instance {
    pub record: ContainerRecord,
    pub exit: Option<Exit>,
    pub oom_killed: bool,
    pub ready: bool,
    pub started: bool,
}

impl Instance {
    pub fn running(&self) -> bool {
        self.exit.is_none() && self.record.start_error.is_none() && self.record.started_at.is_some()
    }

    pub fn exit_code(&self) -> Option<i32> {
        if self.record.start_error.is_some() {
            return Some(128);
        }
        self.exit.as_ref().map(|e| e.exit_code)
    }

    /// How it ended, as a ContainerStateTerminated (None while it runs).
    pub fn terminated(&self) -> Option<ContainerStateTerminated> {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let parse = |s: &Option<String>| {
            s.as_deref()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(Time)
        };
        if let Some((reason, message)) = &self.record.start_error {
            return Some(ContainerStateTerminated {
                exit_code: 128,
                reason: Some(reason.clone()),
                message: Some(message.clone()),
                started_at: Some(Time(jiff::Timestamp::UNIX_EPOCH)),
                finished_at: parse(&Some(self.record.created_at.clone())),
                container_id: Some(format!("skiff://{}", self.record.id)),
                signal: None,
            });
        }
        let exit = self.exit.as_ref()?;
        let reason = if self.oom_killed {
            "OOMKilled"
        } else if exit.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        };
        let message = fs::read_to_string(&self.record.termination_log)
            .ok()
            .map(|m| m.chars().take(4096).collect::<String>())
            .filter(|m| !m.is_empty());
        Some(ContainerStateTerminated {
            exit_code: exit.exit_code,
            reason: Some(reason.into()),
            message,
            started_at: parse(&self.record.started_at),
            finished_at: parse(&Some(exit.finished_at.clone())),
            container_id: Some(format!("skiff://{}", self.record.id)),
            signal: exit.signal,
        })
    }
}

/// One container of the pod spec: its current instance and what came before.
#[derive(Debug, Clone, Default)]
pub struct Slot {
    pub current: Option<Instance>,
    /// How the previous instance ended (status `lastState`).
    pub last: Option<ContainerStateTerminated>,
    /// Why no instance runs right now (ContainerCreating, ErrImagePull, CrashLoopBackOff…).
    pub waiting: Option<(String, String)>,
    pub backoff: Backoff,
    /// Backoff of image pulls (ImagePullBackOff), apart from restarts.
    pub pull_backoff: Backoff,
    /// When the pull backoff's last failure happened.
    pub pull_failed_at: Option<std::time::Instant>,
    /// When the current instance was seen to end (the restart backoff counts from there).
    pub finished_seen: Option<std::time::Instant>,
    /// Consecutive probe results: (successes, failures) for liveness, readiness, startup.
    pub probes: [(u32, u32); 3],
    /// When each probe is due next.
    pub probe_due: [Option<std::time::Instant>; 3],
}

impl Slot {
    pub fn restart_count(&self) -> i32 {
        self.current
            .as_ref()
            .map(|i| i.record.restart_count)
            .unwrap_or(0)
    }
}

/// Upstream's container restart backoff: 10 s doubling to 5 min, forgotten after 10 min of
/// quiet; the first restart is immediate.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    delay: Option<Duration>,
    last_failure: Option<std::time::Instant>,
}

pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

impl Backoff {
    /// Whether a restart must wait at `now`, for a container that finished at `finished`;
    /// records the attempt when it may go ahead.
    pub fn in_backoff(
        &mut self,
        finished: std::time::Instant,
        now: std::time::Instant,
    ) -> Option<Duration> {
        if let Some(last) = self.last_failure {
            if now.duration_since(last) > 2 * BACKOFF_MAX {
                self.delay = None;
            }
        }
        match self.delay {
            None => {
                self.delay = Some(BACKOFF_INITIAL);
                self.last_failure = Some(now);
                None
            }
            Some(delay) => {
                let elapsed = now.saturating_duration_since(finished);
                if elapsed < delay {
                    Some(delay - elapsed)
                } else {
                    self.delay = Some((delay * 2).min(BACKOFF_MAX));
                    self.last_failure = Some(now);
                    None
                }
            }
        }
    }

    /// The current delay (for the "back-off 20s restarting failed container" message).
    pub fn delay(&self) -> Duration {
        self.delay.unwrap_or(BACKOFF_INITIAL)
    }
}

/// Everything on disk under `<root-dir>`, by pod uid: sandbox records and container records.
pub struct Recovered {
    pub sandboxes: HashMap<String, SandboxRecord>,
    pub containers: HashMap<String, Vec<Instance>>,
}

pub fn container_dir(root_dir: &Path, id: &str) -> PathBuf {
    root_dir.join("containers").join(id)
}

pub fn pod_dir(root_dir: &Path, uid: &str) -> PathBuf {
    root_dir.join("pods").join(uid)
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    shim::write_atomic(path, &bytes)
}

pub fn read_exit(root_dir: &Path, id: &str) -> Option<Exit> {
    let bytes = fs::read(container_dir(root_dir, id).join(shim::EXIT_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether the shim of container `id` still runs (its pid alive and still a `skiff shim`).
pub fn shim_alive(root_dir: &Path, id: &str) -> bool {
    let dir = container_dir(root_dir, id);
    let Some(pid) = fs::read_to_string(dir.join(shim::PID_FILE))
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
    else {
        return false;
    };
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmdline| {
            let text = String::from_utf8_lossy(&cmdline);
            text.contains("shim") && text.contains(id)
        })
        .unwrap_or(false)
}

/// Reads every record under `root_dir`.
pub fn recover(root_dir: &Path) -> Recovered {
    let mut sandboxes = HashMap::new();
    if let Ok(entries) = fs::read_dir(root_dir.join("pods")) {
        for entry in entries.flatten() {
            let path = entry.path().join("sandbox.json");
            if let Some(record) = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<SandboxRecord>(&b).ok())
            {
                sandboxes.insert(record.uid.clone(), record);
            }
        }
    }
    let mut containers: HashMap<String, Vec<Instance>> = HashMap::new();
    if let Ok(entries) = fs::read_dir(root_dir.join("containers")) {
        for entry in entries.flatten() {
            let path = entry.path().join("record.json");
            let Some(record) = fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<ContainerRecord>(&b).ok())
            else {
                continue;
            };
            let mut exit = read_exit(root_dir, &record.id);
            if exit.is_none()
                && record.started_at.is_some()
                && record.start_error.is_none()
                && !shim_alive(root_dir, &record.id)
            {
                // The shim is gone without writing the exit (killed, or the host rebooted):
                // the container is gone with it.
                exit = Some(Exit {
                    exit_code: 255,
                    signal: None,
                    finished_at: jiff::Timestamp::now().to_string(),
                });
            }
            let instance = Instance {
                record: record.clone(),
                exit,
                oom_killed: false,
                ready: false,
                started: record.started_at.is_some(),
            };
            containers
                .entry(record.pod_uid.clone())
                .or_default()
                .push(instance);
        }
    }
    for list in containers.values_mut() {
        list.sort_by_key(|i| (i.record.name.clone(), i.record.restart_count));
    }
    Recovered {
        sandboxes,
        containers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn backoff_first_restart_immediate_then_doubling() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        assert_eq!(b.in_backoff(t0, t0), None);
        // Crashed again right away: wait 10 s from the finish.
        assert_eq!(
            b.in_backoff(t0, t0 + Duration::from_secs(3)),
            Some(Duration::from_secs(7))
        );
        assert_eq!(b.in_backoff(t0, t0 + Duration::from_secs(10)), None);
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(
            b.in_backoff(t1, t1 + Duration::from_secs(1)),
            Some(Duration::from_secs(19))
        );
        assert_eq!(b.delay(), Duration::from_secs(20));
    }

    #[test]
    fn records_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let record = ContainerRecord {
            id: "abc".into(),
            pod_uid: "u1".into(),
            name: "c".into(),
            init: false,
            restart_count: 0,
            image: "busybox".into(),
            image_ref: "docker.io/library/busybox:latest".into(),
            image_id: "docker.io/library/busybox@sha256:00".into(),
            created_at: "2026-12-03T00:00:00Z".into(),
            started_at: Some("2026-12-03T00:00:01Z".into()),
            pid: Some(1),
            log_path: dir.path().join("0.log"),
            termination_log: dir.path().join("tl"),
            start_error: None,
        };
        let cdir = container_dir(dir.path(), "abc");
        fs::create_dir_all(&cdir).unwrap();
        write_json(&cdir.join("record.json"), &record).unwrap();
        write_json(
            &cdir.join(shim::EXIT_FILE),
            &Exit {
                exit_code: 3,
                signal: None,
                finished_at: "2026-12-03T00:00:02Z".into(),
            },
        )
        .unwrap();
        let recovered = recover(dir.path());
        let list = &recovered.containers["u1"];
        assert_eq!(list.len(), 1);
        assert!(!list[0].running());
        let t = list[0].terminated().unwrap();
        assert_eq!(t.exit_code, 3);
        assert_eq!(t.reason.as_deref(), Some("Error"));
    }
}
