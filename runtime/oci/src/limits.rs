//! The container's cgroup limits (cgroupfs driver), set by skiff's launcher (launch.rs).
//!
//! - v1 device rules: written by the init into its new devices cgroup before any process is
//!   inside (`write_v1_device_rules`); rewriting the list later would refuse the init's own
//!   /dev/null in between.
//! - The limits a pod's container usually has on v1 — memory limit and reservation, CPU shares,
//!   period and quota, a pids limit — written straight into the container's directories
//!   (`write_common_v1_limits`): libcgroups' v1 manager re-reads mountinfo and /proc/self/cgroup
//!   for each of twelve controllers (~3 ms, the longest step of a `create` with limits). This
//!   copy of what libcgroups' controllers write stays for that measured reason; a test applies
//!   the same resources both ways and compares the files
//!   (`fast_path_writes_what_libcgroups_writes`).
//! - Everything else, and all of v2, through libcgroups' manager (`apply_resources`).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use libcgroups::common::{CgroupManager, ControllerOpt};
use libcontainer::oci_spec::runtime::{
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxResources,
};

use crate::cgroups::{Cgroups, Layout};

/// v1's device allow-list, written before any process of the container is in the cgroup:
/// the list is rewritten as deny-all followed by the allowed devices, and a process inside in
/// between (the init creating or opening /dev/null) would be refused. Like runc, a spec
/// without resources still gets the allow-list (deny everything else).
pub fn write_v1_device_rules(resources: Option<&LinuxResources>, cgroups: &Cgroups) -> Result<()> {
    let Some(dir) = cgroups.devices_dir() else {
        return Ok(());
    };
    let rules = match resources {
        Some(resources) => resources.devices().clone().unwrap_or_default(),
        None => vec![LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()?],
    };
    for rule in rules.into_iter().chain(default_device_rules()) {
        let file = dir.join(if rule.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        });
        fs::write(&file, rule.to_string())
            .with_context(|| format!("cannot write {rule} to {}", file.display()))?;
    }
    Ok(())
}

/// The limits besides v1's devices (`write_v1_device_rules`), through libcgroups' manager,
/// which knows every controller's files; on v2 all of them (its device rules are an eBPF
/// program, attached at once).
pub fn apply_resources(
    resources: &LinuxResources,
    cgroups: &Cgroups,
    cgroup_path: &Path,
) -> Result<()> {
    if cgroups.layout() == Layout::V2 {
        let opt = ControllerOpt {
            resources,
            freezer_state: None,
            oom_score_adj: None,
            disable_oom_killer: false,
        };
        let root = PathBuf::from("/sys/fs/cgroup");
        libcgroups::v2::manager::Manager::new(root, cgroup_path.to_path_buf())?.apply(&opt)?;
        return Ok(());
    }
    let only_devices = resources.memory().is_none()
        && resources.cpu().is_none()
        && resources.pids().is_none()
        && resources.block_io().is_none()
        && resources
            .hugepage_limits()
            .as_ref()
            .is_none_or(|h| h.is_empty())
        && resources.network().is_none()
        && resources.rdma().as_ref().is_none_or(|r| r.is_empty())
        && resources.unified().as_ref().is_none_or(|u| u.is_empty());
    if only_devices || write_common_v1_limits(resources, cgroups)? {
        return Ok(());
    }
    // Without devices, libcgroups' devices controller only adds the default allow rules
    // (already there): no deny-all rewrite while the init runs.
    let mut without_devices = resources.clone();
    without_devices.set_devices(None);
    let opt = ControllerOpt {
        resources: &without_devices,
        freezer_state: None,
        oom_score_adj: None,
        disable_oom_killer: false,
    };
    libcgroups::v1::Manager::new(cgroup_path)?.apply(&opt)?;
    Ok(())
}

/// The limits a pod's container usually has — memory limit and reservation, CPU shares,
/// period and quota, a pids limit — written straight into the container's directories: the
/// same files and values libcgroups' v1 controllers write for them, without its manager,
/// which re-reads mountinfo and /proc/self/cgroup for each of twelve controllers (~3 ms, the
/// longest step of a `create` with limits). `false`, with nothing written, when the resources
/// ask for anything else; libcgroups' manager then applies them all.
fn write_common_v1_limits(resources: &LinuxResources, cgroups: &Cgroups) -> Result<bool> {
    let memory_is_common = resources.memory().as_ref().is_none_or(|m| {
        m.swap().is_none()
            && m.kernel().is_none()
            && m.kernel_tcp().is_none()
            && m.swappiness().is_none()
            && m.disable_oom_killer().is_none()
            && m.use_hierarchy().is_none()
            && m.check_before_update().is_none()
            && m.limit().is_none_or(|limit| limit > 0)
    });
    let cpu_is_common = resources.cpu().as_ref().is_none_or(|c| {
        c.cpus().is_none()
            && c.mems().is_none()
            && c.realtime_period().is_none()
            && c.realtime_runtime().is_none()
            && c.idle().is_none()
            && c.burst().is_none()
    });
    let nothing_else = resources.block_io().is_none()
        && resources
            .hugepage_limits()
            .as_ref()
            .is_none_or(|h| h.is_empty())
        && resources.network().is_none()
        && resources.rdma().as_ref().is_none_or(|r| r.is_empty())
        && resources.unified().as_ref().is_none_or(|u| u.is_empty());
    if !(memory_is_common && cpu_is_common && nothing_else) {
        return Ok(false);
    }
    let write = |controller: &str, file: &str, value: String| -> Result<()> {
        let dir = cgroups
            .dir_of(controller)
            .with_context(|| format!("the {controller} cgroup controller is not mounted"))?;
        let path = dir.join(file);
        fs::write(&path, &value)
            .with_context(|| format!("cannot write {value} to {}", path.display()))
    };
    if let Some(memory) = resources.memory() {
        if let Some(limit) = memory.limit() {
            write("memory", "memory.limit_in_bytes", limit.to_string())?;
        }
        if let Some(reservation) = memory.reservation().filter(|r| *r != 0) {
            write(
                "memory",
                "memory.soft_limit_in_bytes",
                reservation.to_string(),
            )?;
        }
        write("memory", "memory.oom_control", "0".into())?;
    }
    if let Some(cpu) = resources.cpu() {
        if let Some(shares) = cpu.shares().filter(|s| *s != 0) {
            write("cpu", "cpu.shares", shares.to_string())?;
        }
        if let Some(period) = cpu.period().filter(|p| *p != 0) {
            write("cpu", "cpu.cfs_period_us", period.to_string())?;
        }
        if let Some(quota) = cpu.quota().filter(|q| *q != 0) {
            write("cpu", "cpu.cfs_quota_us", quota.to_string())?;
        }
    }
    if let Some(pids) = resources.pids() {
        let limit = match pids.limit() {
            limit if limit > 0 => limit.to_string(),
            _ => "max".to_string(),
        };
        write("pids", "pids.max", limit)?;
    }
    Ok(true)
}

/// The devices every container may use whatever its spec says, after the spec's own rules:
/// the same list libcgroups applies (runc's: the standard character devices, mknod of any
/// device, the console, ptys, tun).
fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .access(access);
        if let Some(major) = major {
            b = b.major(major);
        }
        if let Some(minor) = minor {
            b = b.minor(minor);
        }
        b.build().expect("static device rule")
    };
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, Some(1), Some(3), "rwm"),    // /dev/null
        rule(C, Some(1), Some(5), "rwm"),    // /dev/zero
        rule(C, Some(1), Some(7), "rwm"),    // /dev/full
        rule(C, Some(5), Some(0), "rwm"),    // /dev/tty
        rule(C, Some(1), Some(9), "rwm"),    // /dev/urandom
        rule(C, Some(1), Some(8), "rwm"),    // /dev/random
        rule(C, None, None, "m"),            // mknod of any character device
        rule(B, None, None, "m"),            // … and block device
        rule(C, Some(5), Some(1), "rwm"),    // /dev/console
        rule(C, Some(136), None, "rwm"),     // /dev/pts/*
        rule(C, Some(5), Some(2), "rwm"),    // /dev/ptmx
        rule(C, Some(10), Some(200), "rwm"), // /dev/net/tun
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_v1_limits_are_written_to_each_controllers_directory() {
        let hierarchies = tempfile::tempdir().unwrap();
        let base = hierarchies.path().display();
        let mountinfo = format!(
            "1 0 0:1 / {base}/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             2 0 0:2 / {base}/memory rw - cgroup cgroup rw,memory\n\
             3 0 0:3 / {base}/pids rw - cgroup cgroup rw,pids\n"
        );
        let cgroups = Cgroups::from_mountinfo(&mountinfo, Path::new("/pod/c1")).unwrap();
        cgroups.create_v1().unwrap();
        let resources: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 268435456, "reservation": 134217728},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
            "pids": {"limit": 100}
        }))
        .unwrap();
        assert!(write_common_v1_limits(&resources, &cgroups).unwrap());
        let read = |file: &str| fs::read_to_string(hierarchies.path().join(file)).unwrap();
        assert_eq!(read("memory/pod/c1/memory.limit_in_bytes"), "268435456");
        assert_eq!(
            read("memory/pod/c1/memory.soft_limit_in_bytes"),
            "134217728"
        );
        assert_eq!(read("memory/pod/c1/memory.oom_control"), "0");
        assert_eq!(read("cpu,cpuacct/pod/c1/cpu.shares"), "512");
        assert_eq!(read("cpu,cpuacct/pod/c1/cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu,cpuacct/pod/c1/cpu.cfs_period_us"), "100000");
        assert_eq!(read("pids/pod/c1/pids.max"), "100");

        // Anything beyond those goes to libcgroups' manager: nothing written here.
        let with_swap: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 1048576, "swap": 2097152}
        }))
        .unwrap();
        fs::remove_file(
            hierarchies
                .path()
                .join("memory/pod/c1/memory.limit_in_bytes"),
        )
        .unwrap();
        assert!(!write_common_v1_limits(&with_swap, &cgroups).unwrap());
        assert!(!hierarchies
            .path()
            .join("memory/pod/c1/memory.limit_in_bytes")
            .exists());
    }

    #[test]
    fn default_devices_match_runc() {
        let rules: Vec<String> = default_device_rules()
            .iter()
            .map(|r| r.to_string())
            .collect();
        for want in [
            "c 1:3 rwm",
            "c *:* m",
            "b *:* m",
            "c 136:* rwm",
            "c 10:200 rwm",
        ] {
            assert!(rules.iter().any(|r| r == want), "{want} not in {rules:?}");
        }
        assert!(default_device_rules().iter().all(|r| r.allow()));
    }

    /// Removes the test's cgroups (children before the parent) however the test ends.
    struct RemoveOnDrop(Vec<Cgroups>);

    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            for cgroups in self.0.iter().rev() {
                if let Err(err) = cgroups.remove() {
                    eprintln!("cannot remove test cgroups {:?}: {err}", cgroups.dirs());
                }
            }
        }
    }

    /// The reason for keeping `write_common_v1_limits` is speed only: the same resources
    /// through it and through libcgroups' v1 manager (as `apply_resources` calls it) must leave
    /// two fresh cgroups with the same files.
    #[test]
    fn fast_path_writes_what_libcgroups_writes() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIP fast_path_writes_what_libcgroups_writes: not root");
            return;
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let parent = PathBuf::from(format!(
            "/skiff-limits-fast-path-test-{}-{stamp}",
            std::process::id()
        ));
        let parent_cgroups = match Cgroups::for_path(&parent).unwrap() {
            Some(c)
                if c.layout() == Layout::V1
                    && ["memory", "cpu", "pids"]
                        .iter()
                        .all(|controller| c.dir_of(controller).is_some()) =>
            {
                c
            }
            _ => {
                eprintln!(
                    "SKIP fast_path_writes_what_libcgroups_writes: no cgroup v1 memory, cpu and \
                     pids controllers on this host"
                );
                return;
            }
        };
        let mut cleanup = RemoveOnDrop(vec![parent_cgroups]);

        let cases = [
            serde_json::json!({
                "memory": {"limit": 268435456, "reservation": 134217728},
                "cpu": {"shares": 512, "quota": 50000, "period": 100000},
                "pids": {"limit": 100}
            }),
            serde_json::json!({
                "memory": {"limit": 67108864},
                "cpu": {"shares": 2, "quota": -1, "period": 250000},
                "pids": {"limit": 0}
            }),
            serde_json::json!({"memory": {"reservation": 33554432}, "pids": {"limit": -1}}),
        ];
        for (i, case) in cases.into_iter().enumerate() {
            let resources: LinuxResources = serde_json::from_value(case.clone()).unwrap();
            let fast_path = parent.join(format!("fast-{i}"));
            let library_path = parent.join(format!("library-{i}"));
            let fast = Cgroups::for_path(&fast_path).unwrap().unwrap();
            let library = Cgroups::for_path(&library_path).unwrap().unwrap();
            cleanup.0.push(fast.clone());
            cleanup.0.push(library.clone());
            // Both made as the launcher's init makes them (cpuset inherited, …).
            fast.create_v1().unwrap();
            library.create_v1().unwrap();

            assert!(
                write_common_v1_limits(&resources, &fast).unwrap(),
                "case {i} is not one the fast path takes: {case}"
            );
            let mut without_devices = resources.clone();
            without_devices.set_devices(None);
            let opt = ControllerOpt {
                resources: &without_devices,
                freezer_state: None,
                oom_score_adj: None,
                disable_oom_killer: false,
            };
            libcgroups::v1::Manager::new(&library_path)
                .unwrap()
                .apply(&opt)
                .unwrap();

            let mut compared = Vec::new();
            let mut differences = Vec::new();
            for controller in ["memory", "cpu", "pids"] {
                let fast_dir = fast.dir_of(controller).unwrap();
                let library_dir = library.dir_of(controller).unwrap();
                for entry in fs::read_dir(fast_dir).unwrap() {
                    let name = entry.unwrap().file_name();
                    // Write-only and unreadable files (memory.force_empty, …) say nothing.
                    let (Ok(fast_value), Ok(library_value)) = (
                        fs::read_to_string(fast_dir.join(&name)),
                        fs::read_to_string(library_dir.join(&name)),
                    ) else {
                        continue;
                    };
                    let name = name.to_string_lossy().into_owned();
                    // Counters the kernel keeps by itself (cpu.stat's nr_periods ticks once a
                    // quota is set), not values either path wrote.
                    let counter = name.ends_with("stat")
                        || ["usage", "failcnt", "current", "events"]
                            .iter()
                            .any(|word| name.contains(word));
                    if counter {
                        continue;
                    }
                    if fast_value != library_value {
                        differences.push(format!(
                            "{name}: fast path {fast_value:?}, libcgroups {library_value:?}"
                        ));
                    }
                    compared.push(name);
                }
            }
            // Every file the fast path writes was compared (none unreadable or missing).
            for file in [
                "memory.limit_in_bytes",
                "memory.soft_limit_in_bytes",
                "memory.oom_control",
                "cpu.shares",
                "cpu.cfs_period_us",
                "cpu.cfs_quota_us",
                "pids.max",
            ] {
                assert!(compared.iter().any(|c| c == file), "{file} not compared");
            }
            assert!(
                differences.is_empty(),
                "case {i} ({case}): the fast path and libcgroups left different files:\n{}",
                differences.join("\n")
            );
            // And both wrote what was asked (not two untouched cgroups alike).
            let read = |controller: &str, file: &str| {
                fs::read_to_string(library.dir_of(controller).unwrap().join(file))
                    .unwrap()
                    .trim()
                    .to_string()
            };
            if let Some(limit) = resources.memory().as_ref().and_then(|m| m.limit()) {
                assert_eq!(read("memory", "memory.limit_in_bytes"), limit.to_string());
            }
            if let Some(shares) = resources.cpu().as_ref().and_then(|c| c.shares()) {
                assert_eq!(read("cpu", "cpu.shares"), shares.to_string());
            }
            if let Some(pids) = resources.pids() {
                let want = match pids.limit() {
                    limit if limit > 0 => limit.to_string(),
                    _ => "max".to_string(),
                };
                assert_eq!(read("pids", "pids.max"), want);
            }
            eprintln!(
                "case {i}: {} files alike in memory, cpu and pids",
                compared.len()
            );
        }
    }
}
