//! A container's seccomp filter from `securityContext.seccompProfile` (the container's, else
//! the pod's): what the kubelet and containerd's CRI plugin decide together upstream.
//!
//! - `Unconfined` (and no profile, upstream's default unless `--seccomp-default`): no filter.
//! - `RuntimeDefault`: the allowlist below — the same policy as containerd's and moby's default
//!   profile: every syscall an ordinary program makes is allowed, the rest answer EPERM
//!   (namespaces: `unshare`, `setns`, `mount`, `clone` with namespace flags; the kernel's own
//!   state: `kexec_load`, `init_module`, `reboot`, `keyctl`, `add_key`, `bpf`, `perf_event_open`,
//!   `userfaultfd`, `io_uring_*`, …) unless the container's capabilities already grant what they
//!   guard (CAP_SYS_ADMIN brings back `mount`, `unshare` …, as upstream's profile does).
//!   `clone3` answers ENOSYS instead of EPERM for containers without CAP_SYS_ADMIN, so that
//!   glibc falls back to `clone`, whose flags the filter can inspect.
//! - `Localhost`: a profile file under `<root-dir>/seccomp/` in docker's/OCI's JSON format;
//!   a missing or unreadable file is a CreateContainerError, as containerd reports it.
//!
//! Privileged containers get no filter (containerd skips it), whatever the profile says.
//!
//! The policy is data: [`ALLOWED`], [`BY_CAPABILITY`] and a few argument rules, turned into the
//! OCI spec's `linux.seccomp`; skiff-runtime loads it with libseccomp.

use std::path::Path;

use k8s_openapi::api::core::v1::SeccompProfile;
use serde_json::{json, Value};

/// Syscalls every container may make.
#[rustfmt::skip]
pub const ALLOWED: &[&str] = &[
    // files and directories
    "access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range",
    "creat", "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
    "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown",
    "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock",
    "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync",
    "ftruncate", "ftruncate64", "futimesat", "getcwd", "getdents", "getdents64", "getxattr",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "lchown",
    "lchown32", "lgetxattr", "link", "linkat", "listxattr", "llistxattr", "_llseek",
    "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "mkdir", "mkdirat", "mknod",
    "mknodat", "newfstatat", "open", "openat", "openat2", "pread64", "preadv", "preadv2",
    "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv",
    "removexattr", "rename", "renameat", "renameat2", "rmdir", "sendfile", "sendfile64",
    "setxattr", "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink",
    "symlinkat", "sync", "sync_file_range", "syncfs", "tee", "truncate", "truncate64", "umask",
    "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vmsplice",
    "write", "writev", "cachestat",
    // asynchronous I/O and polling
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "io_cancel",
    "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_setup",
    "io_submit", "_newselect", "poll", "ppoll", "ppoll_time64", "pselect6", "pselect6_time64",
    "select", "signalfd", "signalfd4", "timerfd_create", "timerfd_gettime",
    "timerfd_gettime64", "timerfd_settime", "timerfd_settime64",
    // memory
    "brk", "madvise", "membarrier", "memfd_create", "mincore", "mlock", "mlock2", "mlockall",
    "mmap", "mmap2", "mprotect", "mremap", "msync", "munlock", "munlockall", "munmap",
    "remap_file_pages", "mseal", "map_shadow_stack",
    // processes, threads and signals
    "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "futex",
    "futex_time64", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue",
    "get_robust_list", "get_thread_area", "getcpu", "getegid", "getegid32", "geteuid",
    "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer", "getpgid",
    "getpgrp", "getpid", "getppid", "getpriority", "getresgid", "getresgid32", "getresuid",
    "getresuid32", "getrlimit", "getrusage", "getsid", "gettid", "getuid", "getuid32",
    "ioprio_get", "ioprio_set", "kill", "pause", "pidfd_open", "pidfd_send_signal", "prctl",
    "prlimit64", "process_mrelease", "restart_syscall", "rseq", "rt_sigaction",
    "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity",
    "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
    "sched_yield", "seccomp", "set_robust_list", "set_thread_area", "set_tid_address",
    "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
    "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
    "setrlimit", "setsid", "setuid", "setuid32", "sigaltstack", "sigprocmask", "sigreturn",
    "tgkill", "tkill", "ugetrlimit", "vfork", "wait4", "waitid", "waitpid",
    // the process's view of time and the machine
    "alarm", "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
    "clock_nanosleep", "clock_nanosleep_time64", "getrandom", "gettimeofday", "nanosleep",
    "sysinfo", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_gettime64", "timer_settime", "timer_settime64", "times", "uname",
    // System V and POSIX IPC (in the pod's IPC namespace)
    "ipc", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl",
    "msgget", "msgrcv", "msgsnd", "semctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget",
    // sockets
    "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt",
    "listen", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send",
    "sendmmsg", "sendmsg", "sendto", "setsockopt", "shutdown", "socket", "socketcall",
    "socketpair",
    // the rest of an ordinary program's calls
    "ioctl", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
    "ptrace",
];

/// Syscalls of this machine's architecture every container may make.
#[cfg(target_arch = "x86_64")]
const ALLOWED_ARCH: &[&str] = &["arch_prctl", "modify_ldt"];
#[cfg(target_arch = "aarch64")]
const ALLOWED_ARCH: &[&str] = &[
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ALLOWED_ARCH: &[&str] = &[];

/// The architectures the filter covers (a 64-bit container may run 32-bit code).
#[cfg(target_arch = "x86_64")]
const ARCHITECTURES: &[&str] = &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];
#[cfg(target_arch = "aarch64")]
const ARCHITECTURES: &[&str] = &["SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ARCHITECTURES: &[&str] = &[];

/// Syscalls allowed when the container's bounding set holds the capability that guards them.
#[rustfmt::skip]
pub const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen",
            "fspick", "lookup_dcookie", "mount", "mount_setattr", "move_mount",
            "name_to_handle_at", "open_tree", "perf_event_open", "quotactl", "quotactl_fd",
            "setdomainname", "sethostname", "setns", "umount", "umount2", "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev"],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64", "adjtimex", "clock_adjtime", "clock_adjtime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ("CAP_SYS_NICE", &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// The namespace flags of clone(2): without CAP_SYS_ADMIN a clone must set none of them.
const CLONE_NAMESPACE_FLAGS: u64 = 0x0002_0000 // CLONE_NEWNS
    | 0x0200_0000 // CLONE_NEWCGROUP
    | 0x0400_0000 // CLONE_NEWUTS
    | 0x0800_0000 // CLONE_NEWIPC
    | 0x1000_0000 // CLONE_NEWUSER
    | 0x2000_0000 // CLONE_NEWPID
    | 0x4000_0000; // CLONE_NEWNET

/// personality(2) values programs use to ask for the usual execution domain
/// (PER_LINUX, PER_LINUX32, UNAME26 variants and the query 0xffffffff).
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

const ENOSYS: u32 = 38;

/// Which profile applies to a container.
#[derive(Debug, Clone, PartialEq)]
pub enum Profile {
    Unconfined,
    RuntimeDefault,
    /// The profile file's path on the node.
    Localhost(std::path::PathBuf),
}

/// The profile of a container from its (merged) security context: `profile` is the
/// container's, else the pod's; `default_runtime` is `--seccomp-default`.
pub fn profile(
    profile: Option<&SeccompProfile>,
    privileged: bool,
    default_runtime: bool,
    root_dir: &Path,
) -> Result<Profile, String> {
    if privileged {
        return Ok(Profile::Unconfined);
    }
    let Some(p) = profile else {
        return Ok(if default_runtime {
            Profile::RuntimeDefault
        } else {
            Profile::Unconfined
        });
    };
    match p.type_.as_str() {
        "Unconfined" => Ok(Profile::Unconfined),
        "RuntimeDefault" => Ok(Profile::RuntimeDefault),
        "Localhost" => {
            let name = p
                .localhost_profile
                .as_deref()
                .filter(|n| !n.is_empty())
                .ok_or("seccompProfile type Localhost needs localhostProfile")?;
            let relative = Path::new(name);
            if relative.is_absolute()
                || relative
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(format!(
                    "localhostProfile {name:?} must be a path relative to the seccomp profile directory, without \"..\""
                ));
            }
            Ok(Profile::Localhost(root_dir.join("seccomp").join(relative)))
        }
        other => Err(format!("unknown seccomp profile type {other:?}")),
    }
}

/// The OCI `linux.seccomp` for `profile`; None for no filter. `bounding` is the container's
/// capability bounding set (RuntimeDefault and docker-format `includes.caps` read it).
pub fn filter(profile: &Profile, bounding: &[String]) -> Result<Option<Value>, String> {
    match profile {
        Profile::Unconfined => Ok(None),
        Profile::RuntimeDefault => Ok(Some(runtime_default(bounding))),
        Profile::Localhost(path) => {
            let text = std::fs::read(path).map_err(|e| {
                format!(
                    "cannot load seccomp profile {:?}: {e}",
                    path.display().to_string()
                )
            })?;
            let parsed: Value = serde_json::from_slice(&text).map_err(|e| {
                format!(
                    "cannot load seccomp profile {:?}: decoding seccomp profile failed: {e}",
                    path.display().to_string()
                )
            })?;
            localhost(&parsed, bounding).map(Some).map_err(|e| {
                format!(
                    "cannot load seccomp profile {:?}: {e}",
                    path.display().to_string()
                )
            })
        }
    }
}

fn has(bounding: &[String], capability: &str) -> bool {
    bounding.iter().any(|c| c == capability)
}

/// The RuntimeDefault filter for a container with `bounding` capabilities.
pub fn runtime_default(bounding: &[String]) -> Value {
    let mut allowed: Vec<&str> = ALLOWED.iter().chain(ALLOWED_ARCH).copied().collect();
    for (capability, names) in BY_CAPABILITY {
        if has(bounding, capability) {
            allowed.extend(names.iter().copied());
        }
    }
    allowed.sort_unstable();
    allowed.dedup();
    let mut syscalls = vec![json!({"names": allowed, "action": "SCMP_ACT_ALLOW"})];
    for value in PERSONALITIES {
        syscalls.push(json!({
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}],
        }));
    }
    if !has(bounding, "CAP_SYS_ADMIN") {
        // clone's flags are its first argument on x86 and arm, its second on s390.
        let index = if cfg!(target_arch = "s390x") { 1 } else { 0 };
        syscalls.push(json!({
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": index, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
        }));
        // clone3 passes its flags in memory the filter cannot read: ENOSYS makes libcs fall
        // back to clone.
        syscalls.push(json!({
            "names": ["clone3"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": ENOSYS,
        }));
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ARCHITECTURES,
        "syscalls": syscalls,
    })
}

/// A profile file (docker's format, which is the OCI one plus `name`, `archMap`,
/// `includes`/`excludes`) as the OCI spec's `linux.seccomp`.
fn localhost(profile: &Value, bounding: &[String]) -> Result<Value, String> {
    let default_action = profile["defaultAction"]
        .as_str()
        .ok_or("the profile has no defaultAction")?;
    let mut out = json!({"defaultAction": default_action});
    if let Some(errno) = profile.get("defaultErrnoRet").filter(|v| !v.is_null()) {
        out["defaultErrnoRet"] = errno.clone();
    }
    let architectures: Vec<Value> = match profile.get("architectures").and_then(Value::as_array) {
        Some(list) => list.clone(),
        None => profile["archMap"]
            .as_array()
            .map(|maps| {
                maps.iter()
                    .filter(|m| {
                        ARCHITECTURES
                            .first()
                            .is_some_and(|a| m["architecture"] == *a)
                    })
                    .flat_map(|m| {
                        std::iter::once(m["architecture"].clone()).chain(
                            m["subArchitectures"]
                                .as_array()
                                .cloned()
                                .unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    if !architectures.is_empty() {
        out["architectures"] = Value::Array(architectures);
    }
    if let Some(flags) = profile.get("flags").filter(|v| !v.is_null()) {
        out["flags"] = flags.clone();
    }
    let mut syscalls = Vec::new();
    for rule in profile["syscalls"].as_array().into_iter().flatten() {
        let wanted = |key: &str| -> Vec<String> {
            rule[key]["caps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        };
        if !wanted("includes").iter().all(|c| has(bounding, c))
            || wanted("excludes").iter().any(|c| has(bounding, c))
        {
            continue;
        }
        let mut names: Vec<Value> = rule["names"].as_array().cloned().unwrap_or_default();
        if let Some(name) = rule.get("name").filter(|n| n.is_string()) {
            names.push(name.clone());
        }
        if names.is_empty() {
            return Err("a syscall rule has no names".into());
        }
        let action = rule["action"]
            .as_str()
            .ok_or("a syscall rule has no action")?;
        let mut oci = json!({"names": names, "action": action});
        for key in ["args", "errnoRet"] {
            if let Some(v) = rule.get(key).filter(|v| !v.is_null()) {
                oci[key] = v.clone();
            }
        }
        syscalls.push(oci);
    }
    out["syscalls"] = Value::Array(syscalls);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(|c| c.to_string()).collect()
    }

    fn allowed(filter: &Value) -> Vec<String> {
        serde_json::from_value(filter["syscalls"][0]["names"].clone()).unwrap()
    }

    #[test]
    fn runtime_default_blocks_namespaces_and_kernel_state_unless_admin() {
        let plain = runtime_default(&caps(&["CAP_CHOWN", "CAP_KILL"]));
        assert_eq!(plain["defaultAction"], "SCMP_ACT_ERRNO");
        let names = allowed(&plain);
        for ok in ["read", "execve", "socket", "futex", "wait4"] {
            assert!(names.iter().any(|n| n == ok), "{ok} must be allowed");
        }
        for denied in [
            "unshare",
            "mount",
            "setns",
            "kexec_load",
            "keyctl",
            "add_key",
            "init_module",
            "reboot",
            "bpf",
            "userfaultfd",
            "io_uring_setup",
            "clone3",
            "chroot",
        ] {
            assert!(
                !names.iter().any(|n| n == denied),
                "{denied} must be denied"
            );
        }
        let rules = plain["syscalls"].as_array().unwrap();
        assert!(rules
            .iter()
            .any(|r| r["names"] == json!(["clone3"]) && r["errnoRet"] == ENOSYS));
        let clone = rules
            .iter()
            .find(|r| r["names"] == json!(["clone"]))
            .unwrap();
        assert_eq!(clone["args"][0]["value"], 0x7E02_0000u64);

        let admin = runtime_default(&caps(&["CAP_SYS_ADMIN", "CAP_SYS_CHROOT"]));
        let names = allowed(&admin);
        for ok in ["unshare", "mount", "setns", "clone", "chroot"] {
            assert!(names.iter().any(|n| n == ok), "{ok} with CAP_SYS_ADMIN");
        }
        assert!(!names.iter().any(|n| n == "kexec_load"));
        assert!(!admin["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["names"] == json!(["clone3"])));
    }

    #[test]
    fn profiles_resolve_like_upstream() {
        let root = Path::new("/var/lib/kubelet");
        let p = |v: Value| -> SeccompProfile { serde_json::from_value(v).unwrap() };
        assert_eq!(profile(None, false, false, root), Ok(Profile::Unconfined));
        assert_eq!(
            profile(None, false, true, root),
            Ok(Profile::RuntimeDefault)
        );
        let rd = p(json!({"type": "RuntimeDefault"}));
        assert_eq!(
            profile(Some(&rd), false, false, root),
            Ok(Profile::RuntimeDefault)
        );
        assert_eq!(
            profile(Some(&rd), true, false, root),
            Ok(Profile::Unconfined)
        );
        let local = p(json!({"type": "Localhost", "localhostProfile": "profiles/audit.json"}));
        assert_eq!(
            profile(Some(&local), false, false, root),
            Ok(Profile::Localhost(
                "/var/lib/kubelet/seccomp/profiles/audit.json".into()
            ))
        );
        let escape = p(json!({"type": "Localhost", "localhostProfile": "../../etc/x.json"}));
        assert!(profile(Some(&escape), false, false, root).is_err());
        let missing = p(json!({"type": "Localhost"}));
        assert!(profile(Some(&missing), false, false, root).is_err());
    }

    #[test]
    fn docker_format_profiles_become_oci() {
        let docker = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "archMap": [{"architecture": ARCHITECTURES.first().copied().unwrap_or("x"), "subArchitectures": ["SCMP_ARCH_X86"]}],
            "syscalls": [
                {"name": "mkdir", "action": "SCMP_ACT_ERRNO"},
                {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13, "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
                {"names": ["reboot"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_BOOT"]}}
            ]
        });
        let oci = localhost(&docker, &caps(&["CAP_KILL"])).unwrap();
        assert_eq!(oci["defaultAction"], "SCMP_ACT_ALLOW");
        let rules = oci["syscalls"].as_array().unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0]["names"], json!(["mkdir"]));
        assert_eq!(rules[1]["errnoRet"], 13);
        assert!(localhost(&json!({"syscalls": []}), &[]).is_err());
    }
}
