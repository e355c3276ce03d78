//! `create` and `run`.

use crate::cli::CreateArgs;
use crate::commands::console::{self, ConsoleSocket};
use crate::commands::wait;
use crate::containers;
use crate::delete;
use crate::launch;
use crate::records;
use anyhow::{bail, Context, Result};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use std::fs;
use std::path::Path;

/// Creates the container; on any failure removes what was created (state dir, cgroup,
/// init process) so a retry with the same id works.
pub fn create_container(
    root: &Path,
    args: &CreateArgs,
    systemd: bool,
    detach: bool,
    console_socket: Option<&Path>,
) -> Result<Container> {
    containers::check_id(&args.container_id)?;
    let id = args.container_id.as_str();
    if containers::container_dir(root, id).exists() {
        bail!("container with id {id} already exists");
    }
    fs::create_dir_all(root).with_context(|| format!("cannot create root {}", root.display()))?;
    let bundle = fs::canonicalize(&args.bundle)
        .with_context(|| format!("bundle {} does not exist", args.bundle.display()))?;
    let mut prepared = containers::prepare_bundle(root, id, &bundle)?;
    let result = build(root, args, systemd, detach, console_socket, &mut prepared);
    match result {
        Ok((container, recorded)) => {
            let saved = if recorded {
                Ok(())
            } else {
                records::record_start_time(&container).and_then(|_| {
                    if prepared.is_patched() {
                        records::record_original_bundle(&container, &prepared.original)
                    } else {
                        Ok(())
                    }
                })
            };
            if let Err(err) = saved {
                cleanup_failed(root, id);
                return Err(err);
            }
            Ok(container)
        }
        Err(err) => {
            cleanup_failed(root, id);
            Err(err)
        }
    }
}

fn build(
    root: &Path,
    args: &CreateArgs,
    systemd: bool,
    detach: bool,
    console_socket: Option<&Path>,
    prepared: &mut containers::PreparedBundle,
) -> Result<(Container, bool)> {
    // A patched spec names its rootfs by absolute path, so the caller's bundle resolves both.
    // --no-pivot (chroot-like root change) is left to libcontainer's builder.
    let plan = match args.no_pivot {
        true => None,
        false => launch::plan(
            prepared.spec.clone(),
            &prepared.original,
            &args.container_id,
            systemd,
        )?,
    };
    if let Some(plan) = plan {
        prepared.place_copy_in(containers::container_dir(root, &args.container_id));
        let prepared = &*prepared;
        // Done while the init prepares the rootfs: the patched copy is read only by later
        // commands (exec), never by this create.
        let side_work = |state_dir: &Path| -> Result<()> {
            prepared.write_patched()?;
            if prepared.is_patched() {
                records::record_original_bundle_in(state_dir, &prepared.original)?;
            }
            Ok(())
        };
        let (stdout, stderr) = containers::stdio_replacements()?;
        // The launcher records the start time and the caller's bundle itself.
        return launch::create(
            plan,
            prepared.dir(),
            launch::Options {
                id: &args.container_id,
                root,
                pid_file: args.pid_file.as_deref(),
                console_socket,
                preserve_fds: args.preserve_fds,
                detach,
                stdout,
                stderr,
                side_work: &side_work,
            },
        )
        .map(|container| (container, true));
    }
    let builder = ContainerBuilder::new(args.container_id.clone(), SyscallType::default())
        .with_root_path(root)?
        .with_pid_file(args.pid_file.as_ref())?
        .with_console_socket(console_socket)
        .with_preserved_fds(args.preserve_fds)
        .validate_id()?;
    let builder = containers::with_stdio(builder)?;
    prepared.write_patched()?;
    let container = builder
        .as_init(prepared.dir())
        // libcontainer defaults to systemd = true; this host has no systemd.
        .with_systemd(systemd)
        .with_detach(detach)
        .with_no_pivot(args.no_pivot)
        .build()?;
    Ok((container, false))
}

/// Best-effort removal after a failed create: kill init, remove cgroup and state dir.
fn cleanup_failed(root: &Path, id: &str) {
    containers::remove_patched_bundle(root, id);
    let dir = containers::container_dir(root, id);
    if !dir.exists() {
        return;
    }
    match Container::load(dir.clone()) {
        Ok(mut container) => {
            let _ = delete::delete(&mut container, true);
        }
        // Failed before the state was saved: the cgroups are recorded all the same.
        Err(_) => delete::remove_recorded_cgroups(&dir),
    }
    let _ = fs::remove_dir_all(&dir);
}

pub fn create(root: &Path, args: &CreateArgs, systemd: bool) -> Result<i32> {
    create_container(root, args, systemd, true, args.console_socket.as_deref())?;
    Ok(0)
}

/// `process.terminal` of the bundle's config.json.
fn wants_terminal(bundle: &Path) -> Result<bool> {
    let path = bundle.join("config.json");
    let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let config: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    Ok(config["process"]["terminal"].as_bool().unwrap_or(false))
}

/// `run` = create + start, then (unless -d) wait for init, forwarding signals, and delete.
/// A foreground container with `terminal: true` and no `--console-socket` gets a pty that we
/// attach to our stdio (console.rs), as runc does.
pub fn run(root: &Path, args: &CreateArgs, systemd: bool) -> Result<i32> {
    let console = if !args.detach && args.console_socket.is_none() && wants_terminal(&args.bundle)?
    {
        Some(ConsoleSocket::listen(root, &args.container_id)?)
    } else {
        None
    };
    let socket = console
        .as_ref()
        .map(|c| c.path())
        .or(args.console_socket.as_deref());
    // libcontainer takes a console socket only from a "detached" caller; the flag means
    // nothing else to it, and we still wait below.
    let detach = args.detach || console.is_some();
    let mut container = create_container(root, args, systemd, detach, socket)?;
    let attached = match console.map(|c| c.receive().and_then(console::attach)) {
        Some(Ok(attached)) => Some(attached),
        Some(Err(err)) => {
            let _ = delete::delete(&mut container, true);
            return Err(err);
        }
        None => None,
    };
    if let Err(err) = container.start() {
        let _ = delete::delete(&mut container, true);
        return Err(err).context("failed to start container");
    }
    if args.detach {
        return Ok(0);
    }
    let pid = container.pid().context("container has no pid")?;
    let code = wait::wait_forwarding_signals(pid, attached.as_ref());
    if let Some(attached) = attached {
        attached.finish();
    }
    delete::delete(&mut container, true).context("failed to delete container")?;
    containers::remove_patched_bundle(root, &args.container_id);
    code
}
