//! `start`, `kill`, `delete`, `pause`, `resume`.

use crate::cli::{DeleteArgs, KillArgs};
use crate::containers;
use anyhow::{bail, Context, Result};
use libcontainer::signal::Signal;
use std::path::Path;

pub fn start(root: &Path, id: &str) -> Result<i32> {
    let mut container = containers::load(root, id)?;
    if !container.can_start() {
        bail!(
            "cannot start container {id} in state {}",
            containers::status_name(container.status())
        );
    }
    container.start().context("failed to start container")?;
    Ok(0)
}

/// Accepts `KILL`, `SIGKILL` and `9`, like runc.
pub fn parse_signal(text: &str) -> Result<Signal> {
    let signal = match text.parse::<i32>() {
        Ok(number) => Signal::try_from(number).ok(),
        Err(_) => Signal::try_from(text).ok(),
    };
    signal.ok_or_else(|| anyhow::anyhow!("unknown signal {text:?}"))
}

pub fn kill(root: &Path, args: &KillArgs) -> Result<i32> {
    let signal = parse_signal(&args.signal)?;
    let mut container = containers::load(root, &args.container_id)?;
    if !container.can_kill() {
        bail!("container {} is not running", args.container_id);
    }
    container
        .kill(signal, args.all)
        .context("failed to kill container")?;
    Ok(0)
}

pub fn delete(root: &Path, args: &DeleteArgs) -> Result<i32> {
    containers::check_id(&args.container_id)?;
    if !containers::exists(root, &args.container_id) {
        if args.force {
            // runc: `delete --force` of a missing container succeeds; also clear a
            // half-written state dir left by a crash.
            let _ = std::fs::remove_dir_all(containers::container_dir(root, &args.container_id));
            containers::remove_patched_bundle(root, &args.container_id);
            return Ok(0);
        }
        bail!("container {} does not exist", args.container_id);
    }
    let mut container = containers::load(root, &args.container_id)?;
    // Like runc, a created (never started) container is deleted without --force: its init
    // only waits for `start` and is killed.
    let created = container.status() == libcontainer::container::ContainerStatus::Created;
    if !args.force && !created && !container.can_delete() {
        bail!(
            "cannot delete container {} that is not stopped: {}",
            args.container_id,
            containers::status_name(container.status())
        );
    }
    crate::delete::delete(&mut container, args.force).context("failed to delete container")?;
    containers::remove_patched_bundle(root, &args.container_id);
    Ok(0)
}

pub fn pause(root: &Path, id: &str) -> Result<i32> {
    let mut container = containers::load(root, id)?;
    if !container.can_pause() {
        bail!("container {id} is not running");
    }
    container.pause().context("failed to pause container")?;
    Ok(0)
}

pub fn resume(root: &Path, id: &str) -> Result<i32> {
    let mut container = containers::load(root, id)?;
    if !container.can_resume() {
        bail!("container {id} is not paused");
    }
    container.resume().context("failed to resume container")?;
    Ok(0)
}
