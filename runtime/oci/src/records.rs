//! skiff's own files in a container's state directory, beside libcontainer's `state.json`:
//! the init's start time (pid-reuse check), the caller's bundle when a patched copy is used,
//! and the cgroup directories of a container skiff's launcher created.
//!
//! A leaf module: `create` writes these (launch.rs, commands/create.rs) and the later commands
//! read them (containers.rs, delete.rs), without those modules calling each other.

use anyhow::{Context, Result};
use libcontainer::container::Container;
use std::fs;
use std::path::{Path, PathBuf};

use crate::cgroups::Cgroups;

/// File in the state dir where we record the init process start time (pid-reuse check).
const START_TIME_FILE: &str = "skiff-starttime";

/// File in the state dir listing the container's cgroup directories (one per line); its
/// presence means the container was created by skiff's launcher and `delete` may remove it
/// without libcgroups (delete.rs).
const CGROUPS_FILE: &str = "skiff-cgroups";

/// File in the state dir naming the caller's bundle when libcontainer was given a patched copy.
const ORIGINAL_BUNDLE_FILE: &str = "skiff-bundle";

/// Records the init start time right after create, for the pid-reuse check in `load`.
pub fn record_start_time(container: &Container) -> Result<()> {
    let pid = container.pid().context("created container has no pid")?;
    record_start_time_of(&container.root, pid.as_raw())
}

/// `record_start_time` for the init `pid` of the container whose state dir is `dir`.
pub fn record_start_time_of(dir: &Path, pid: i32) -> Result<()> {
    let start = proc_start_time(pid).context("container init exited during create")?;
    fs::write(dir.join(START_TIME_FILE), start.to_string())?;
    Ok(())
}

/// Whether `pid` is still the init recorded in the state dir `dir`: `None` when no start time
/// was recorded (nothing to check against).
pub fn is_recorded_init(dir: &Path, pid: i32) -> Option<bool> {
    let recorded = fs::read_to_string(dir.join(START_TIME_FILE)).ok()?;
    let current = proc_start_time(pid);
    Some(current.map(|t| t.to_string()) == Some(recorded.trim().to_string()))
}

/// Field 22 of /proc/<pid>/stat (clock ticks since boot), parsed after the last ')' because
/// the comm field may contain spaces or parentheses.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // after_comm starts with " <state> <ppid> ..."; state is field 3, starttime field 22.
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

/// Records the container's cgroup directories in the state dir `dir`.
pub fn record_cgroups(dir: &Path, cgroups: &Cgroups) -> Result<()> {
    fs::write(dir.join(CGROUPS_FILE), cgroups.to_text())?;
    Ok(())
}

/// The cgroup directories recorded in the state dir `dir`; `None` when the container was
/// created by libcontainer's builder.
pub fn recorded_cgroups(dir: &Path) -> Option<Cgroups> {
    let text = fs::read_to_string(dir.join(CGROUPS_FILE)).ok()?;
    Cgroups::from_text(&text)
}

/// Remembers the caller's bundle when libcontainer was given a patched copy.
pub fn record_original_bundle(container: &Container, bundle: &Path) -> Result<()> {
    record_original_bundle_in(&container.root, bundle)
}

/// `record_original_bundle` for the container whose state dir is `dir`.
pub fn record_original_bundle_in(dir: &Path, bundle: &Path) -> Result<()> {
    fs::write(
        dir.join(ORIGINAL_BUNDLE_FILE),
        bundle.as_os_str().as_encoded_bytes(),
    )?;
    Ok(())
}

/// The bundle the caller gave `create` (runc's `state` shows that one).
pub fn original_bundle(container: &Container) -> PathBuf {
    match fs::read(container.root.join(ORIGINAL_BUNDLE_FILE)) {
        Ok(bytes) => PathBuf::from(String::from_utf8_lossy(&bytes).into_owned()),
        Err(_) => container.bundle().to_path_buf(),
    }
}
