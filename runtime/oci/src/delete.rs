//! `delete` of a container: without libcgroups when skiff's launcher created it (launch.rs
//! recorded its cgroup directories in the state dir), through libcontainer otherwise.
//!
//! Why not libcontainer's `Container::delete` for those: it builds libcgroups' manager only to
//! remove the cgroups, and on v1 that manager re-reads mountinfo and /proc/self/cgroup for each
//! of twelve controllers (~3 ms, see cgroups.rs); the recorded directories are removed
//! directly instead.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use libcontainer::config::YoukiConfig;
use libcontainer::container::{Container, ContainerStatus};

use crate::cgroups::Cgroups;
use crate::{containers, records};

/// Deletes a container: without libcgroups when skiff's launcher created it (launch.rs),
/// through libcontainer otherwise.
pub fn delete(container: &mut Container, force: bool) -> Result<()> {
    match delete_fast(container, force) {
        Some(result) => result,
        None => Ok(container.delete(force)?),
    }
}

/// After a failed create that left no state behind: kills whatever is in the cgroups recorded
/// in the state dir `dir` and removes them.
pub fn remove_recorded_cgroups(dir: &Path) {
    if let Some(cgroups) = records::recorded_cgroups(dir) {
        let _ = cgroups.remove();
    }
}

/// `delete` of a container skiff's launcher created: libcontainer's `Container::delete` minus
/// building a cgroup manager. `None` when the container was created by libcontainer's builder.
fn delete_fast(container: &mut Container, force: bool) -> Option<Result<()>> {
    let cgroups = records::recorded_cgroups(&container.root)?;
    Some(delete_with(container, &cgroups, force))
}

fn delete_with(container: &mut Container, cgroups: &Cgroups, force: bool) -> Result<()> {
    container.refresh_status()?;
    match container.status() {
        ContainerStatus::Stopped => {}
        // Like runc and libcontainer: a created container is deleted without --force.
        ContainerStatus::Created => {}
        status if force => {
            let _ = status;
        }
        status => bail!(
            "cannot delete container {} that is not stopped: {}",
            container.id(),
            containers::status_name(status)
        ),
    }
    // Kills every process left in the cgroup (the init first, so a pid namespace collapses);
    // `remove` thaws a paused container first.
    if let Some(pid) = container.pid() {
        if container.status() != ContainerStatus::Stopped {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
    cgroups
        .remove()
        .context("cannot remove the container's cgroups")?;
    if container.root.exists() {
        if let Ok(config) = YoukiConfig::load(&container.root) {
            if let Some(hooks) = config.hooks.as_ref() {
                libcontainer::hooks::run_hooks(
                    hooks.poststop().as_ref(),
                    Some(&container.state),
                    None,
                    None,
                    None,
                )
                .context("poststop hook failed")?;
            }
        }
        fs::remove_dir_all(&container.root)
            .with_context(|| format!("cannot remove {}", container.root.display()))?;
    }
    Ok(())
}
