//! The Pod Security Standards checks (upstream `pod-security-admission/policy/check_*.go`), each
//! with the versions it has, and the evaluator that runs those of a level at a version (upstream
//! `policy/registry.go`). A check reads the pod's (or template's) metadata and spec as JSON and
//! answers with upstream's reason and detail, word for word.

use std::collections::BTreeSet;

use serde_json::Value;

use super::levels::{Level, LevelVersion};

/// A check's refusal: the short reason (`host namespaces`) and the detail naming what failed
/// (`hostNetwork=true`), printed by the aggregate as `reason (detail)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub reason: String,
    pub detail: String,
}

fn violation(reason: impl Into<String>, detail: impl Into<String>) -> Option<Violation> {
    Some(Violation {
        reason: reason.into(),
        detail: detail.into(),
    })
}

type CheckFn = fn(&Value, &Value) -> Option<Violation>;

/// One version of a check: from policy version `v1.{min}` on, until the next entry.
struct Versioned {
    min: u32,
    check: CheckFn,
    /// Baseline checks a restricted check replaces while it applies.
    overrides: &'static [&'static str],
}

struct Check {
    id: &'static str,
    level: Level,
    versions: &'static [Versioned],
}

const fn v(min: u32, check: CheckFn) -> Versioned {
    Versioned {
        min,
        check,
        overrides: &[],
    }
}

const fn v_over(min: u32, check: CheckFn, overrides: &'static [&'static str]) -> Versioned {
    Versioned {
        min,
        check,
        overrides,
    }
}

/// Every check, baseline then restricted, each group sorted by id: the order upstream evaluates
/// (and so lists) them in.
static CHECKS: &[Check] = &[
    Check {
        id: "appArmorProfile",
        level: Level::Baseline,
        versions: &[v(0, app_armor_profile)],
    },
    Check {
        id: "capabilities_baseline",
        level: Level::Baseline,
        versions: &[v(0, capabilities_baseline)],
    },
    Check {
        id: "hostNamespaces",
        level: Level::Baseline,
        versions: &[v(0, host_namespaces)],
    },
    Check {
        id: "hostPathVolumes",
        level: Level::Baseline,
        versions: &[v(0, host_path_volumes)],
    },
    Check {
        id: "hostPorts",
        level: Level::Baseline,
        versions: &[v(0, host_ports)],
    },
    Check {
        id: "hostProbesAndHostLifecycle",
        level: Level::Baseline,
        versions: &[v(34, host_probes_and_lifecycle)],
    },
    Check {
        id: "privileged",
        level: Level::Baseline,
        versions: &[v(0, privileged)],
    },
    Check {
        id: "procMount",
        level: Level::Baseline,
        versions: &[v(0, proc_mount), v(35, proc_mount_1_35_baseline)],
    },
    Check {
        id: "seLinuxOptions",
        level: Level::Baseline,
        versions: &[v(0, se_linux_options_1_0), v(31, se_linux_options_1_31)],
    },
    Check {
        id: "seccompProfile_baseline",
        level: Level::Baseline,
        versions: &[
            v(0, seccomp_profile_baseline_1_0),
            v(19, seccomp_profile_baseline_1_19),
        ],
    },
    Check {
        id: "sysctls",
        level: Level::Baseline,
        versions: &[
            v(0, sysctls_1_0),
            v(27, sysctls_1_27),
            v(29, sysctls_1_29),
            v(32, sysctls_1_32),
            v(37, sysctls_1_37),
        ],
    },
    Check {
        id: "windowsHostProcess",
        level: Level::Baseline,
        versions: &[v(0, windows_host_process)],
    },
    Check {
        id: "allowPrivilegeEscalation",
        level: Level::Restricted,
        versions: &[
            v(8, allow_privilege_escalation_1_8),
            v(25, allow_privilege_escalation_1_25),
        ],
    },
    Check {
        id: "capabilities_restricted",
        level: Level::Restricted,
        versions: &[
            v_over(22, capabilities_restricted_1_22, &["capabilities_baseline"]),
            v_over(25, capabilities_restricted_1_25, &["capabilities_baseline"]),
        ],
    },
    Check {
        id: "procMount_restricted",
        level: Level::Restricted,
        versions: &[v_over(35, proc_mount, &["procMount"])],
    },
    Check {
        id: "restrictedVolumes",
        level: Level::Restricted,
        versions: &[v_over(0, restricted_volumes, &["hostPathVolumes"])],
    },
    Check {
        id: "runAsNonRoot",
        level: Level::Restricted,
        versions: &[v(0, run_as_non_root_1_0), v(35, run_as_non_root_1_35)],
    },
    Check {
        id: "runAsUser",
        level: Level::Restricted,
        versions: &[v(23, run_as_user_1_23), v(35, run_as_user_1_35)],
    },
    Check {
        id: "seccompProfile_restricted",
        level: Level::Restricted,
        versions: &[
            v_over(
                19,
                seccomp_profile_restricted_1_19,
                &["seccompProfile_baseline"],
            ),
            v_over(
                25,
                seccomp_profile_restricted_1_25,
                &["seccompProfile_baseline"],
            ),
        ],
    },
];

/// The version of `check` in force at minor version `minor`, if the check exists by then.
fn version_at(check: &Check, minor: u32) -> Option<&Versioned> {
    check.versions.iter().rev().find(|v| v.min <= minor)
}

/// Every refusal of the checks of `lv` for a pod (or template) with this metadata and spec, in
/// upstream's order. Empty: allowed. Privileged allows everything.
pub fn evaluate(lv: LevelVersion, metadata: &Value, spec: &Value) -> Vec<Violation> {
    if lv.level == Level::Privileged {
        return Vec::new();
    }
    let minor = lv.version.effective_minor();
    let mut overridden: BTreeSet<&str> = BTreeSet::new();
    if lv.level == Level::Restricted {
        for check in CHECKS.iter().filter(|c| c.level == Level::Restricted) {
            if let Some(version) = version_at(check, minor) {
                overridden.extend(version.overrides.iter().copied());
            }
        }
    }
    CHECKS
        .iter()
        .filter(|c| c.level <= lv.level && !overridden.contains(c.id))
        .filter_map(|c| version_at(c, minor))
        .filter_map(|version| (version.check)(metadata, spec))
        .collect()
}

/// Upstream `ForbiddenDetail`: `reason (detail), reason, ...`.
pub fn forbidden_detail(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.clone()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Upstream `ForbiddenReason`: the reasons alone.
pub fn forbidden_reason(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| v.reason.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

// ---- helpers (upstream policy/helpers.go, visitor.go) ----

fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let inner: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("\"{}\"", inner.join("\", \""))
}

fn pluralize<'a>(singular: &'a str, plural: &'a str, count: usize) -> &'a str {
    if count == 1 {
        singular
    } else {
        plural
    }
}

/// `containers "a", "b"` / `container "a"`.
fn containers_phrase(names: &[String]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// Init containers, containers, then ephemeral containers (upstream `visitContainers`).
fn containers(spec: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .filter_map(move |list| spec.get(list).and_then(Value::as_array))
        .flatten()
}

fn name(container: &Value) -> String {
    container["name"].as_str().unwrap_or_default().to_string()
}

/// A field that is set (present and not null).
fn set<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    v.pointer(pointer).filter(|x| !x.is_null())
}

fn is_true(v: &Value, pointer: &str) -> bool {
    v.pointer(pointer) == Some(&Value::Bool(true))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn strings_at<'a>(v: &'a Value, pointer: &str) -> Vec<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| a.iter().map(|s| s.as_str().unwrap_or_default()).collect())
        .unwrap_or_default()
}

fn annotations(metadata: &Value) -> Vec<(&str, &str)> {
    metadata
        .get("annotations")
        .and_then(Value::as_object)
        .map(|a| {
            a.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

fn windows(spec: &Value) -> bool {
    str_at(spec, "/os/name") == "windows"
}

/// `hostUsers: false`: the pod runs in a user namespace, and some restricted checks relax.
fn user_namespace(spec: &Value) -> bool {
    spec.get("hostUsers") == Some(&Value::Bool(false))
}

// ---- baseline ----

fn privileged(_: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = containers(spec)
        .filter(|c| is_true(c, "/securityContext/privileged"))
        .map(name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "privileged",
        format!(
            "{} must not set securityContext.privileged=true",
            containers_phrase(&bad)
        ),
    )
}

fn host_namespaces(_: &Value, spec: &Value) -> Option<Violation> {
    let found: Vec<&str> = [
        ("hostNetwork", "hostNetwork=true"),
        ("hostPID", "hostPID=true"),
        ("hostIPC", "hostIPC=true"),
    ]
    .into_iter()
    .filter(|(field, _)| spec.get(*field) == Some(&Value::Bool(true)))
    .map(|(_, text)| text)
    .collect();
    if found.is_empty() {
        return None;
    }
    violation("host namespaces", found.join(", "))
}

fn host_ports(_: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut ports = BTreeSet::new();
    for c in containers(spec) {
        let mut valid = true;
        for p in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let port = p["hostPort"].as_i64().unwrap_or(0);
            if port != 0 {
                valid = false;
                ports.insert(port.to_string());
            }
        }
        if !valid {
            bad.push(name(c));
        }
    }
    if bad.is_empty() {
        return None;
    }
    let ports: Vec<String> = ports.into_iter().collect();
    violation(
        "hostPort",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize("hostPort", "hostPorts", ports.len()),
            ports.join(", ")
        ),
    )
}

fn volumes(spec: &Value) -> impl Iterator<Item = &Value> {
    spec.get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn host_path_volumes(_: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = volumes(spec)
        .filter(|v| set(v, "/hostPath").is_some())
        .map(name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "hostPath volumes",
        format!(
            "{} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad)
        ),
    )
}

const DEFAULT_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

fn capabilities_baseline(_: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut caps = BTreeSet::new();
    for c in containers(spec) {
        let mut valid = true;
        for cap in strings_at(c, "/securityContext/capabilities/add") {
            if !DEFAULT_CAPABILITIES.contains(&cap) {
                valid = false;
                caps.insert(cap.to_string());
            }
        }
        if !valid {
            bad.push(name(c));
        }
    }
    if bad.is_empty() {
        return None;
    }
    let caps: Vec<String> = caps.into_iter().collect();
    violation(
        "non-default capabilities",
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&bad),
            join_quote(&caps)
        ),
    )
}

fn app_armor_profile(metadata: &Value, spec: &Value) -> Option<Violation> {
    let allowed_type = |t: &str| t == "RuntimeDefault" || t == "Localhost";
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    if set(spec, "/securityContext/appArmorProfile").is_some() {
        let t = str_at(spec, "/securityContext/appArmorProfile/type");
        if !allowed_type(t) {
            setters.push("pod".to_string());
            values.insert(t.to_string());
        }
    }
    let mut bad = Vec::new();
    for c in containers(spec) {
        if set(c, "/securityContext/appArmorProfile").is_some() {
            let t = str_at(c, "/securityContext/appArmorProfile/type");
            if !allowed_type(t) {
                bad.push(name(c));
                values.insert(t.to_string());
            }
        }
    }
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    let mut forbidden: Vec<String> = annotations(metadata)
        .into_iter()
        .filter(|(k, v)| {
            k.starts_with("container.apparmor.security.beta.kubernetes.io/")
                && !(v.is_empty() || *v == "runtime/default" || v.starts_with("localhost/"))
        })
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    let mut values: Vec<String> = values.into_iter().collect();
    if !forbidden.is_empty() {
        forbidden.sort();
        setters.push(pluralize("annotation", "annotations", forbidden.len()).to_string());
        values.extend(forbidden);
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            values.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

fn se_linux_options_1_0(metadata: &Value, spec: &Value) -> Option<Violation> {
    se_linux_options(
        metadata,
        spec,
        &["", "container_t", "container_init_t", "container_kvm_t"],
    )
}

fn se_linux_options_1_31(metadata: &Value, spec: &Value) -> Option<Violation> {
    se_linux_options(
        metadata,
        spec,
        &[
            "",
            "container_t",
            "container_init_t",
            "container_kvm_t",
            "container_engine_t",
        ],
    )
}

fn se_linux_options(_: &Value, spec: &Value, allowed: &[&str]) -> Option<Violation> {
    let mut types = BTreeSet::new();
    let (mut set_user, mut set_role) = (false, false);
    let mut valid = |opts: &Value| {
        let mut ok = true;
        let t = str_at(opts, "/type");
        if !allowed.contains(&t) {
            ok = false;
            types.insert(t.to_string());
        }
        if !str_at(opts, "/user").is_empty() {
            ok = false;
            set_user = true;
        }
        if !str_at(opts, "/role").is_empty() {
            ok = false;
            set_role = true;
        }
        ok
    };
    let mut setters = Vec::new();
    if let Some(opts) = set(spec, "/securityContext/seLinuxOptions") {
        if !valid(opts) {
            setters.push("pod".to_string());
        }
    }
    let mut bad = Vec::new();
    for c in containers(spec) {
        if let Some(opts) = set(c, "/securityContext/seLinuxOptions") {
            if !valid(opts) {
                bad.push(name(c));
            }
        }
    }
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    if !types.is_empty() {
        let types: Vec<String> = types.into_iter().collect();
        data.push(format!(
            "{} {}",
            pluralize("type", "types", types.len()),
            join_quote(&types)
        ));
    }
    if set_user {
        data.push("user may not be set".to_string());
    }
    if set_role {
        data.push("role may not be set".to_string());
    }
    violation(
        "seLinuxOptions",
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            setters.join(" and "),
            data.join("; ")
        ),
    )
}

fn proc_mount(_: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for c in containers(spec) {
        if let Some(pm) = set(c, "/securityContext/procMount") {
            let pm = pm.as_str().unwrap_or_default();
            if pm != "Default" {
                bad.push(name(c));
                types.insert(pm.to_string());
            }
        }
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    violation(
        "procMount",
        format!(
            "{} must not set securityContext.procMount to {}",
            containers_phrase(&bad),
            join_quote(&types)
        ),
    )
}

fn proc_mount_1_35_baseline(metadata: &Value, spec: &Value) -> Option<Violation> {
    if user_namespace(spec) {
        return None;
    }
    proc_mount(metadata, spec)
}

const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

fn valid_seccomp_type(t: &str) -> bool {
    t == "Localhost" || t == "RuntimeDefault"
}

fn seccomp_profile_baseline_1_0(metadata: &Value, spec: &Value) -> Option<Violation> {
    let valid =
        |v: &str| v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/");
    let annotations = annotations(metadata);
    let get = |key: &str| annotations.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let mut forbidden = BTreeSet::new();
    if let Some(value) = get(SECCOMP_POD_ANNOTATION) {
        if !valid(value) {
            forbidden.insert(format!("{SECCOMP_POD_ANNOTATION}={value:?}"));
        }
    }
    for c in containers(spec) {
        let key = format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{}", name(c));
        if let Some(value) = get(&key) {
            if !valid(value) {
                forbidden.insert(format!("{key}={value:?}"));
            }
        }
    }
    if forbidden.is_empty() {
        return None;
    }
    let forbidden: Vec<String> = forbidden.into_iter().collect();
    violation(
        "seccompProfile",
        format!(
            "forbidden {} {}",
            pluralize("annotation", "annotations", forbidden.len()),
            forbidden.join(", ")
        ),
    )
}

/// The pod's and containers' seccomp profile types: who set a forbidden one, which values, and
/// the containers that set none while the pod sets no valid one.
fn seccomp_setters(spec: &Value) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut setters = Vec::new();
    let mut values = BTreeSet::new();
    let mut pod_set = false;
    if set(spec, "/securityContext/seccompProfile").is_some() {
        let t = str_at(spec, "/securityContext/seccompProfile/type");
        if !valid_seccomp_type(t) {
            setters.push("pod".to_string());
            values.insert(t.to_string());
        } else {
            pod_set = true;
        }
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        if set(c, "/securityContext/seccompProfile").is_some() {
            let t = str_at(c, "/securityContext/seccompProfile/type");
            if !valid_seccomp_type(t) {
                explicit.push(name(c));
                values.insert(t.to_string());
            }
        } else if !pod_set {
            implicit.push(name(c));
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    (setters, values.into_iter().collect(), implicit)
}

fn seccomp_profile_baseline_1_19(_: &Value, spec: &Value) -> Option<Violation> {
    let (setters, values, _) = seccomp_setters(spec);
    if setters.is_empty() {
        return None;
    }
    violation(
        "seccompProfile",
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            setters.join(" and "),
            join_quote(&values)
        ),
    )
}

fn sysctls(spec: &Value, allowed: &[&[&str]]) -> Option<Violation> {
    let forbidden: Vec<&str> = spec
        .pointer("/securityContext/sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|s| s["name"].as_str().unwrap_or_default())
        .filter(|n| !allowed.iter().any(|set| set.contains(n)))
        .collect();
    if forbidden.is_empty() {
        return None;
    }
    violation("forbidden sysctls", forbidden.join(", "))
}

const SYSCTLS_1_0: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
];
const SYSCTLS_1_27: &[&str] = &["net.ipv4.ip_local_reserved_ports"];
const SYSCTLS_1_29: &[&str] = &[
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const SYSCTLS_1_32: &[&str] = &["net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"];
const SYSCTLS_1_37: &[&str] = &[
    "net.ipv4.tcp_slow_start_after_idle",
    "net.ipv4.tcp_notsent_lowat",
];

fn sysctls_1_0(_: &Value, spec: &Value) -> Option<Violation> {
    sysctls(spec, &[SYSCTLS_1_0])
}
fn sysctls_1_27(_: &Value, spec: &Value) -> Option<Violation> {
    sysctls(spec, &[SYSCTLS_1_0, SYSCTLS_1_27])
}
fn sysctls_1_29(_: &Value, spec: &Value) -> Option<Violation> {
    sysctls(spec, &[SYSCTLS_1_0, SYSCTLS_1_27, SYSCTLS_1_29])
}
fn sysctls_1_32(_: &Value, spec: &Value) -> Option<Violation> {
    sysctls(
        spec,
        &[SYSCTLS_1_0, SYSCTLS_1_27, SYSCTLS_1_29, SYSCTLS_1_32],
    )
}
fn sysctls_1_37(_: &Value, spec: &Value) -> Option<Violation> {
    sysctls(
        spec,
        &[
            SYSCTLS_1_0,
            SYSCTLS_1_27,
            SYSCTLS_1_29,
            SYSCTLS_1_32,
            SYSCTLS_1_37,
        ],
    )
}

fn windows_host_process(_: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = containers(spec)
        .filter(|c| is_true(c, "/securityContext/windowsOptions/hostProcess"))
        .map(name)
        .collect();
    let mut setters = Vec::new();
    if is_true(spec, "/securityContext/windowsOptions/hostProcess") {
        setters.push("pod".to_string());
    }
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        "hostProcess",
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            setters.join(" and ")
        ),
    )
}

/// The hosts a probe or lifecycle handler names (`httpGet.host`, `tcpSocket.host`).
fn handler_hosts(handler: Option<&Value>) -> Vec<String> {
    let Some(handler) = handler.filter(|h| !h.is_null()) else {
        return Vec::new();
    };
    ["/httpGet/host", "/tcpSocket/host"]
        .into_iter()
        .map(|p| str_at(handler, p))
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .collect()
}

fn host_probes_and_lifecycle(_: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for c in containers(spec) {
        let handlers = [
            c.get("livenessProbe"),
            c.get("readinessProbe"),
            c.get("startupProbe"),
            c.pointer("/lifecycle/postStart"),
            c.pointer("/lifecycle/preStop"),
        ];
        for handler in handlers {
            let found = handler_hosts(handler);
            if !found.is_empty() {
                bad.insert(name(c));
                hosts.extend(found);
            }
        }
    }
    if bad.is_empty() {
        return None;
    }
    let bad: Vec<String> = bad.into_iter().collect();
    let hosts: Vec<String> = hosts.into_iter().collect();
    violation(
        "probe or lifecycle host",
        format!(
            "{} {} {} {}",
            containers_phrase(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "probe or lifecycle host",
                "probe or lifecycle hosts",
                hosts.len()
            ),
            join_quote(&hosts)
        ),
    )
}

// ---- restricted ----

fn allow_privilege_escalation_1_8(_: &Value, spec: &Value) -> Option<Violation> {
    let bad: Vec<String> = containers(spec)
        .filter(|c| {
            c.pointer("/securityContext/allowPrivilegeEscalation") != Some(&Value::Bool(false))
        })
        .map(name)
        .collect();
    if bad.is_empty() {
        return None;
    }
    violation(
        "allowPrivilegeEscalation != false",
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            containers_phrase(&bad)
        ),
    )
}

fn allow_privilege_escalation_1_25(metadata: &Value, spec: &Value) -> Option<Violation> {
    if windows(spec) {
        return None;
    }
    allow_privilege_escalation_1_8(metadata, spec)
}

fn capabilities_restricted_1_22(_: &Value, spec: &Value) -> Option<Violation> {
    let mut missing_drop_all = Vec::new();
    let mut adding = Vec::new();
    let mut forbidden = BTreeSet::new();
    for c in containers(spec) {
        if set(c, "/securityContext/capabilities").is_none() {
            missing_drop_all.push(name(c));
            continue;
        }
        if !strings_at(c, "/securityContext/capabilities/drop").contains(&"ALL") {
            missing_drop_all.push(name(c));
        }
        let mut added_forbidden = false;
        for cap in strings_at(c, "/securityContext/capabilities/add") {
            if cap != "NET_BIND_SERVICE" {
                added_forbidden = true;
                forbidden.insert(cap.to_string());
            }
        }
        if added_forbidden {
            adding.push(name(c));
        }
    }
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&missing_drop_all)
        ));
    }
    if !adding.is_empty() {
        let forbidden: Vec<String> = forbidden.into_iter().collect();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&adding),
            join_quote(&forbidden)
        ));
    }
    if details.is_empty() {
        return None;
    }
    violation("unrestricted capabilities", details.join("; "))
}

fn capabilities_restricted_1_25(metadata: &Value, spec: &Value) -> Option<Violation> {
    if windows(spec) {
        return None;
    }
    capabilities_restricted_1_22(metadata, spec)
}

/// The volume sources restricted allows.
const ALLOWED_VOLUME_SOURCES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// The restricted volume sources, in the order upstream names the first one a volume has.
const RESTRICTED_VOLUME_SOURCES: &[(&str, &str)] = &[
    ("hostPath", "hostPath"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("gitRepo", "gitRepo"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("rbd", "rbd"),
    ("flexVolume", "flexVolume"),
    ("cinder", "cinder"),
    ("cephfs", "cephfs"),
    ("flocker", "flocker"),
    ("fc", "fc"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("quobyte", "quobyte"),
    ("azureDisk", "azureDisk"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("scaleIO", "scaleIO"),
    ("storageos", "storageos"),
];

fn restricted_volumes(_: &Value, spec: &Value) -> Option<Violation> {
    let mut bad = Vec::new();
    let mut types = BTreeSet::new();
    for volume in volumes(spec) {
        let has = |source: &str| volume.get(source).is_some_and(|s| !s.is_null());
        if ALLOWED_VOLUME_SOURCES.iter().any(|s| has(s)) {
            continue;
        }
        bad.push(name(volume));
        let kind = RESTRICTED_VOLUME_SOURCES
            .iter()
            .find(|(source, _)| has(source))
            .map_or("unknown", |(_, kind)| kind);
        types.insert(kind.to_string());
    }
    if bad.is_empty() {
        return None;
    }
    let types: Vec<String> = types.into_iter().collect();
    violation(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", bad.len()),
            join_quote(&bad),
            pluralize("uses", "use", bad.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    )
}

fn run_as_non_root_1_0(_: &Value, spec: &Value) -> Option<Violation> {
    let mut setters = Vec::new();
    let mut pod_non_root = false;
    match spec.pointer("/securityContext/runAsNonRoot") {
        Some(Value::Bool(false)) => setters.push("pod".to_string()),
        Some(Value::Bool(true)) => pod_non_root = true,
        _ => {}
    }
    let mut explicit = Vec::new();
    let mut implicit = Vec::new();
    for c in containers(spec) {
        match c.pointer("/securityContext/runAsNonRoot") {
            Some(Value::Bool(false)) => explicit.push(name(c)),
            Some(Value::Bool(true)) => {}
            _ if !pod_non_root => implicit.push(name(c)),
            _ => {}
        }
    }
    if !explicit.is_empty() {
        setters.push(containers_phrase(&explicit));
    }
    if !setters.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                setters.join(" and ")
            ),
        );
    }
    if !implicit.is_empty() {
        return violation(
            "runAsNonRoot != true",
            format!(
                "pod or {} must set securityContext.runAsNonRoot=true",
                containers_phrase(&implicit)
            ),
        );
    }
    None
}

fn run_as_non_root_1_35(metadata: &Value, spec: &Value) -> Option<Violation> {
    if user_namespace(spec) {
        return None;
    }
    run_as_non_root_1_0(metadata, spec)
}

fn run_as_user_1_23(_: &Value, spec: &Value) -> Option<Violation> {
    let root = |v: &Value| {
        v.pointer("/securityContext/runAsUser")
            .and_then(Value::as_i64)
            == Some(0)
    };
    let mut setters = Vec::new();
    if root(spec) {
        setters.push("pod".to_string());
    }
    let bad: Vec<String> = containers(spec).filter(|c| root(c)).map(name).collect();
    if !bad.is_empty() {
        setters.push(containers_phrase(&bad));
    }
    if setters.is_empty() {
        return None;
    }
    violation(
        "runAsUser=0",
        format!("{} must not set runAsUser=0", setters.join(" and ")),
    )
}

fn run_as_user_1_35(metadata: &Value, spec: &Value) -> Option<Violation> {
    if user_namespace(spec) {
        return None;
    }
    run_as_user_1_23(metadata, spec)
}

fn seccomp_profile_restricted_1_19(_: &Value, spec: &Value) -> Option<Violation> {
    let (setters, values, implicit) = seccomp_setters(spec);
    if !setters.is_empty() {
        return violation(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to {}",
                setters.join(" and "),
                join_quote(&values)
            ),
        );
    }
    if !implicit.is_empty() {
        return violation(
            "seccompProfile",
            format!(
                "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
                containers_phrase(&implicit)
            ),
        );
    }
    None
}

fn seccomp_profile_restricted_1_25(metadata: &Value, spec: &Value) -> Option<Violation> {
    if windows(spec) {
        return None;
    }
    seccomp_profile_restricted_1_19(metadata, spec)
}

#[cfg(test)]
mod tests;
