//! A container's OCI runtime spec (config.json), from the image config (through the image
//! service's `runtime_spec`, on `runc spec`'s defaults) and the pod: what containerd's CRI
//! plugin does in `container_create_linux.go`.
//!
//! The spec is edited as JSON: every field the kubelet sets is one explicit line below, and
//! nothing round-trips through types that might drop a field the runtime knows.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Capabilities, Container, Pod, SecurityContext};
use serde_json::{json, Value};

use super::env::ConfigError;
use crate::cgroups;

/// containerd's default capability set (what upstream Kubernetes pods get).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// containerd's masked paths (`/proc/scsi` etc.), hidden unless the container is privileged.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// A bind mount into the container.
#[derive(Debug, Clone)]
pub struct BindMount {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// Everything about the pod the spec needs besides the container itself.
pub struct PodContext<'a> {
    pub pod: &'a Pod,
    pub pod_dir: &'a Path,
    /// The pinned namespaces (net, ipc, uts) to join; None for hostNetwork (the node's).
    pub netns: Option<PathBuf>,
    pub cgroup_parent: &'a str,
    pub node_memory_bytes: u64,
    /// The lowest oom_score_adj that can be set (see `Kubelet::min_oom_score_adj`).
    pub min_oom_score_adj: Option<i64>,
}

/// The command a container runs (upstream's rules: `command` replaces the image's
/// Entrypoint and drops its Cmd; `args` alone replaces Cmd).
pub fn command_line(container: &Container, entrypoint: &[String], cmd: &[String]) -> Vec<String> {
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    match (command.is_empty(), args.is_empty()) {
        (false, _) => command.into_iter().chain(args).collect(),
        (true, false) => entrypoint.iter().cloned().chain(args).collect(),
        (true, true) => entrypoint.iter().chain(cmd).cloned().collect(),
    }
}

/// Merges the pod-level security context's user fields under the container's.
pub fn effective_security(pod: &Pod, container: &Container) -> SecurityContext {
    let mut sc = container.security_context.clone().unwrap_or_default();
    if let Some(pod_sc) = pod.spec.as_ref().and_then(|s| s.security_context.clone()) {
        sc.run_as_user = sc.run_as_user.or(pod_sc.run_as_user);
        sc.run_as_group = sc.run_as_group.or(pod_sc.run_as_group);
        sc.run_as_non_root = sc.run_as_non_root.or(pod_sc.run_as_non_root);
        sc.seccomp_profile = sc.seccomp_profile.or(pod_sc.seccomp_profile);
    }
    sc
}

/// Edits the image's base spec for `container`. `args` and `env` are already expanded.
#[allow(clippy::too_many_arguments)]
pub fn build(
    base: Value,
    ctx: &PodContext,
    container: &Container,
    container_id: &str,
    args: Vec<String>,
    env: Vec<String>,
    mounts: &[BindMount],
    termination_log: &Path,
) -> Result<Value, ConfigError> {
    let mut spec = base;
    let pod = ctx.pod;
    let pod_spec = pod.spec.clone().unwrap_or_default();
    let sc = effective_security(pod, container);
    let privileged = sc.privileged.unwrap_or(false);

    // process
    if args.is_empty() {
        return Err(ConfigError(format!(
            "container {:?}: no command specified and the image has neither Entrypoint nor Cmd",
            container.name
        )));
    }
    spec["process"]["args"] = json!(args);
    spec["process"]["env"] = json!(env);
    if let Some(dir) = container.working_dir.as_ref().filter(|d| !d.is_empty()) {
        spec["process"]["cwd"] = json!(dir);
    }
    spec["process"]["terminal"] = json!(false);
    // runAsUser replaces the image's user; its group stays the image's unless runAsGroup.
    if let Some(uid) = sc.run_as_user {
        spec["process"]["user"]["uid"] = json!(uid);
    }
    if let Some(gid) = sc.run_as_group {
        spec["process"]["user"]["gid"] = json!(gid);
    }
    let groups: Vec<i64> = pod_spec
        .security_context
        .as_ref()
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default();
    if !groups.is_empty() {
        spec["process"]["user"]["additionalGids"] = json!(groups);
    }
    if sc.run_as_non_root.unwrap_or(false)
        && spec["process"]["user"]["uid"].as_u64().unwrap_or(0) == 0
    {
        return Err(ConfigError(
            "container has runAsNonRoot and image will run as root".to_string(),
        ));
    }
    spec["process"]["capabilities"] = json!(capabilities(privileged, sc.capabilities.as_ref()));
    spec["process"]["noNewPrivileges"] =
        json!(sc.allow_privilege_escalation == Some(false) && !privileged);
    let score = oom_score_adj(pod, container, ctx.node_memory_bytes);
    spec["process"]["oomScoreAdj"] =
        json!(ctx.min_oom_score_adj.map_or(score, |min| score.max(min)));
    spec["root"]["readonly"] = json!(sc.read_only_root_filesystem.unwrap_or(false));
    // The hostname is the sandbox's (set in its UTS namespace), not the image's.
    spec.as_object_mut().map(|o| o.remove("hostname"));

    // namespaces: our own pid and mount; the sandbox's net, ipc and uts.
    let host_ipc = pod_spec.host_ipc.unwrap_or(false);
    let host_pid = pod_spec.host_pid.unwrap_or(false);
    let mut namespaces = Vec::new();
    if !host_pid {
        namespaces.push(json!({"type": "pid"}));
    }
    namespaces.push(json!({"type": "mount"}));
    if let Some(netns) = &ctx.netns {
        namespaces.push(json!({"type": "network", "path": netns}));
        namespaces
            .push(json!({"type": "uts", "path": super::sandbox::ns_path(ctx.pod_dir, "uts")}));
    }
    if !host_ipc {
        namespaces
            .push(json!({"type": "ipc", "path": super::sandbox::ns_path(ctx.pod_dir, "ipc")}));
    }
    spec["linux"]["namespaces"] = json!(namespaces);
    spec["linux"]["cgroupsPath"] = json!(format!("{}/{container_id}", ctx.cgroup_parent));
    if privileged {
        spec["linux"]["maskedPaths"] = json!([]);
        spec["linux"]["readonlyPaths"] = json!([]);
        spec["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
    } else {
        spec["linux"]["maskedPaths"] = json!(MASKED_PATHS);
        spec["linux"]["readonlyPaths"] = json!(READONLY_PATHS);
    }
    let sysctls: serde_json::Map<String, Value> = pod_spec
        .security_context
        .as_ref()
        .and_then(|s| s.sysctls.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.name, json!(s.value)))
        .collect();
    if !sysctls.is_empty() {
        spec["linux"]["sysctl"] = Value::Object(sysctls);
    }

    // resources
    let (cpu_request, cpu_limit, _, memory_limit) = cgroups::container_resources(container);
    let mut cpu = json!({"shares": cgroups::cpu_shares(cpu_request.unwrap_or(0))});
    if let Some(limit) = cpu_limit {
        cpu["quota"] = json!(cgroups::cpu_quota(limit));
        cpu["period"] = json!(100_000);
    }
    spec["linux"]["resources"]["cpu"] = cpu;
    if let Some(limit) = memory_limit {
        spec["linux"]["resources"]["memory"] = json!({"limit": limit});
    }

    // mounts: the defaults, then the pod's files, the termination log and the volumes.
    let mut all: Vec<Value> = spec["mounts"].as_array().cloned().unwrap_or_default();
    if privileged {
        for m in all.iter_mut() {
            if m["destination"] == "/sys" {
                m["options"] = json!(["nosuid", "noexec", "nodev", "rw"]);
            }
        }
    }
    let bind = |source: &Path, destination: &str, read_only: bool| {
        let mut options = vec!["rbind", "rprivate"];
        options.push(if read_only { "ro" } else { "rw" });
        json!({"destination": destination, "type": "bind", "source": source, "options": options})
    };
    // The pod's managed files (hostNetwork pods get the node's hosts entries in theirs).
    all.push(bind(&ctx.pod_dir.join("etc-hosts"), "/etc/hosts", false));
    all.push(bind(&ctx.pod_dir.join("hostname"), "/etc/hostname", false));
    all.push(bind(
        &ctx.pod_dir.join("resolv.conf"),
        "/etc/resolv.conf",
        false,
    ));
    let termination_path = container
        .termination_message_path
        .clone()
        .unwrap_or_else(|| "/dev/termination-log".into());
    all.push(bind(termination_log, &termination_path, false));
    for m in mounts {
        all.push(bind(&m.source, &m.destination, m.read_only));
    }
    spec["mounts"] = json!(all);

    let annotations = json!({
        "io.kubernetes.pod.name": pod.metadata.name,
        "io.kubernetes.pod.namespace": pod.metadata.namespace,
        "io.kubernetes.pod.uid": pod.metadata.uid,
        "io.kubernetes.container.name": container.name,
    });
    spec["annotations"] = annotations;
    Ok(spec)
}

fn capabilities(privileged: bool, caps: Option<&Capabilities>) -> Value {
    let mut set: Vec<String> = if privileged {
        ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    } else {
        DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    };
    let normalize = |c: &str| {
        let upper = c.to_uppercase();
        if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        }
    };
    if let Some(caps) = caps {
        let drop: Vec<String> = caps.drop.iter().flatten().map(|c| normalize(c)).collect();
        if drop.iter().any(|d| d == "CAP_ALL") {
            set.clear();
        } else {
            set.retain(|c| !drop.contains(c));
        }
        for add in caps.add.iter().flatten() {
            let add = normalize(add);
            if add == "CAP_ALL" {
                set = ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect();
            } else if !set.contains(&add) {
                set.push(add);
            }
        }
    }
    // Root in a container gets the set in every category but ambient, as containerd does.
    json!({"bounding": set, "effective": set, "permitted": set})
}

/// Every capability the kernel knows (privileged containers and `add: [ALL]`).
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// upstream's `GetContainerOOMScoreAdjust`.
pub fn oom_score_adj(pod: &Pod, container: &Container, node_memory_bytes: u64) -> i64 {
    let critical = pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0) >= 2_000_000_000;
    match cgroups::qos_class(pod) {
        "Guaranteed" => -997,
        _ if critical => -997,
        "BestEffort" => 1000,
        _ => {
            let (_, _, memory_request, _) = cgroups::container_resources(container);
            let request = memory_request.unwrap_or(0) as i128;
            let capacity = node_memory_bytes.max(1) as i128;
            let adj = 1000 - (1000 * request) / capacity;
            adj.clamp(3, 999) as i64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": spec}),
        )
        .unwrap()
    }

    #[test]
    fn command_rules() {
        let ep = vec!["/entry".to_string()];
        let cmd = vec!["default".to_string()];
        let c = |v: Value| -> Container { serde_json::from_value(v).unwrap() };
        assert_eq!(
            command_line(&c(json!({"name": "a"})), &ep, &cmd),
            ["/entry", "default"]
        );
        assert_eq!(
            command_line(&c(json!({"name": "a", "args": ["x"]})), &ep, &cmd),
            ["/entry", "x"]
        );
        assert_eq!(
            command_line(
                &c(json!({"name": "a", "command": ["sh"], "args": ["-c", "y"]})),
                &ep,
                &cmd
            ),
            ["sh", "-c", "y"]
        );
        assert_eq!(
            command_line(&c(json!({"name": "a", "command": ["sh"]})), &ep, &cmd),
            ["sh"]
        );
    }

    #[test]
    fn capabilities_add_drop_all() {
        let caps: Capabilities =
            serde_json::from_value(json!({"drop": ["ALL"], "add": ["NET_ADMIN"]})).unwrap();
        assert_eq!(
            capabilities(false, Some(&caps))["effective"],
            json!(["CAP_NET_ADMIN"])
        );
        let caps: Capabilities = serde_json::from_value(json!({"drop": ["chown"]})).unwrap();
        let v = capabilities(false, Some(&caps));
        assert!(!v["bounding"]
            .as_array()
            .unwrap()
            .contains(&json!("CAP_CHOWN")));
        assert!(v["bounding"]
            .as_array()
            .unwrap()
            .contains(&json!("CAP_KILL")));
        assert_eq!(
            capabilities(true, None)["bounding"]
                .as_array()
                .unwrap()
                .len(),
            41
        );
    }

    #[test]
    fn oom_scores_by_qos() {
        let be = pod(json!({"containers": [{"name": "a"}]}));
        let c = &be.spec.as_ref().unwrap().containers[0];
        assert_eq!(oom_score_adj(&be, c, 1 << 30), 1000);
        let burst = pod(
            json!({"containers": [{"name": "a", "resources": {"requests": {"memory": "256Mi"}}}]}),
        );
        let c = &burst.spec.as_ref().unwrap().containers[0];
        assert_eq!(oom_score_adj(&burst, c, 1 << 30), 750);
        let g = pod(
            json!({"containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi", "cpu": "1"}}}]}),
        );
        let c = &g.spec.as_ref().unwrap().containers[0];
        assert_eq!(oom_score_adj(&g, c, 1 << 30), -997);
    }

    #[test]
    fn spec_joins_the_sandbox_and_refuses_root_for_non_root() {
        let p = pod(
            json!({"containers": [{"name": "a", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}]}),
        );
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        let base = json!({"process": {"user": {"uid": 0, "gid": 0}}, "root": {"path": "/r"}, "mounts": [], "linux": {"resources": {}}, "hostname": "skiff"});
        let ctx = PodContext {
            pod: &p,
            pod_dir: Path::new("/pods/u"),
            netns: Some(PathBuf::from("/pods/u/ns/net")),
            cgroup_parent: "/kubepods/podu",
            node_memory_bytes: 1 << 30,
            min_oom_score_adj: None,
        };
        let spec = build(
            base.clone(),
            &ctx,
            &c,
            "cid",
            vec!["sh".into()],
            vec![],
            &[],
            Path::new("/pods/u/tl"),
        )
        .unwrap();
        assert_eq!(spec["linux"]["cgroupsPath"], "/kubepods/podu/cid");
        assert_eq!(spec["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(spec["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert!(spec.get("hostname").is_none());
        let ns = spec["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.contains(&json!({"type": "network", "path": "/pods/u/ns/net"})));
        let mounts = spec["mounts"].as_array().unwrap();
        assert!(mounts
            .iter()
            .any(|m| m["destination"] == "/etc/resolv.conf"));
        assert!(mounts
            .iter()
            .any(|m| m["destination"] == "/dev/termination-log"));
        let mut strict = c.clone();
        strict.security_context =
            Some(serde_json::from_value(json!({"runAsNonRoot": true})).unwrap());
        let e = build(
            base,
            &ctx,
            &strict,
            "cid",
            vec!["sh".into()],
            vec![],
            &[],
            Path::new("/t"),
        )
        .unwrap_err();
        assert!(e.0.contains("runAsNonRoot"));
    }
}
