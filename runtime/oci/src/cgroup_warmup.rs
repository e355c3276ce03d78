//! Starting the kernel's cgroup-migration grace period early.
//!
//! Moving a process into a cgroup by writing `cgroup.procs` takes the kernel's global
//! `cgroup_threadgroup_rwsem` for writing. When no migration happened recently, that first
//! takes an RCU grace period (`rcu_sync_enter` → `synchronize_rcu`): 11–15 ms on this
//! machine, measured with a bare `echo $pid > cgroup.procs`, while every further migration
//! within the next grace period costs ~0.07 ms. runc pays it once per container, and so does
//! libcontainer's intermediate process (still used for `exec`); mounting cgroup2 in the host's
//! cgroup namespace takes the same lock (skiff's own `create` never does either: launch.rs,
//! rootfs.rs).
//!
//! The wait is idle time, not work, so where we cannot avoid it we start it early: a forked
//! helper migrates itself into the cgroup it is already in (a no-op for the cgroup tree) and
//! exits. Used at the top of `exec` (libcontainer's migration a few milliseconds later finds
//! the grace period (nearly) done). Nothing here is needed for correctness: if it cannot be
//! done it is skipped.

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Forks a helper that rewrites its own `cgroup.procs`. Must be called while the process is
/// single-threaded (the child only uses async-signal-safe calls, but fork copies one thread).
/// The helper is reaped by whoever waits for our children (`run`, `exec`) or by init.
pub fn start_migration_grace_period() {
    let Some(procs) = own_cgroup_procs_file() else {
        return;
    };
    let Ok(path) = CString::new(procs.into_os_string().into_encoded_bytes()) else {
        return;
    };
    // SAFETY: single-threaded caller; the child calls only open/write/_exit.
    unsafe {
        if libc::fork() == 0 {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                // "0" = the writing process itself.
                libc::write(fd, c"0".as_ptr().cast(), 1);
            }
            libc::_exit(0);
        }
    }
}

/// The `cgroup.procs` of our own cgroup: on the cgroup2 hierarchy when one is mounted
/// (pure v2 at /sys/fs/cgroup, hybrid at /sys/fs/cgroup/unified), else on a v1 one. The
/// rwsem is global, so any hierarchy will do.
fn own_cgroup_procs_file() -> Option<PathBuf> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in membership.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let relative = path.trim_start_matches('/');
        let candidates: Vec<PathBuf> = if controllers.is_empty() {
            vec![
                Path::new("/sys/fs/cgroup/unified").join(relative),
                Path::new("/sys/fs/cgroup").join(relative),
            ]
        } else if let Some(first) = controllers.split(',').find(|c| !c.starts_with("name=")) {
            vec![Path::new("/sys/fs/cgroup").join(first).join(relative)]
        } else {
            continue;
        };
        if let Some(file) = candidates
            .into_iter()
            .map(|dir| dir.join("cgroup.procs"))
            .find(|file| file.exists())
        {
            return Some(file);
        }
    }
    None
}
