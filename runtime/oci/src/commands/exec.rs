//! `exec`: run an extra process inside a running container.

use crate::cli::ExecArgs;
use crate::commands::console::{self, ConsoleSocket};
use crate::commands::wait;
use crate::containers;
use anyhow::{bail, Context, Result};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::oci_spec::runtime::{Process, Spec};
use libcontainer::syscall::syscall::SyscallType;
use std::path::{Path, PathBuf};

pub fn exec(root: &Path, args: &ExecArgs) -> Result<i32> {
    // Our own load first: it applies the pid-reuse check before we enter any namespace.
    let container = containers::load(root, &args.container_id)?;
    if container.status() != ContainerStatus::Running {
        bail!(
            "cannot exec in container {} in state {}",
            args.container_id,
            containers::status_name(container.status())
        );
    }
    if args.process.is_none() && args.command.is_empty() {
        bail!("exec needs a command or --process");
    }
    if args.tty && args.detach && args.console_socket.is_none() {
        bail!("--tty with --detach needs --console-socket");
    }
    // libcontainer's tenant builder sets `terminal` only from a process.json; for `--tty`
    // without one we write the process runc would build from the flags.
    let tty_process = match (&args.process, args.tty) {
        (None, true) => Some(write_tty_process(root, &container, args)?),
        _ => None,
    };
    let result = build_and_wait(
        root,
        args,
        tty_process
            .as_ref()
            .map(|f| f.path.clone())
            .or(args.process.clone()),
    );
    drop(tty_process);
    result
}

/// Foreground `--tty` without `--console-socket` attaches the pty to our stdio (console.rs).
fn build_and_wait(root: &Path, args: &ExecArgs, process: Option<PathBuf>) -> Result<i32> {
    let console = if args.tty && !args.detach && args.console_socket.is_none() {
        Some(ConsoleSocket::listen(root, &args.container_id)?)
    } else {
        None
    };
    let socket = console
        .as_ref()
        .map(|c| c.path().to_path_buf())
        .or(args.console_socket.clone());
    let builder = ContainerBuilder::new(args.container_id.clone(), SyscallType::default())
        .with_root_path(root)?
        .with_console_socket(socket.as_ref())
        .with_pid_file(args.pid_file.as_ref())?
        .with_preserved_fds(args.preserve_fds)
        .validate_id()?;
    let builder = containers::with_stdio(builder)?;
    let mut tenant = builder
        .as_tenant()
        // libcontainer takes a console socket only from a "detached" caller; we still wait
        // (also with the caller's own --console-socket, as runc's foreground exec does).
        .with_detach(args.detach || args.tty)
        .with_cwd(args.cwd.as_ref())
        .with_env(libcontainer::utils::parse_env(&args.env))
        .with_process(process.as_ref())
        .with_no_new_privs(args.no_new_privs)
        .with_container_args(args.command.clone());
    if !args.cap.is_empty() {
        tenant = tenant.with_capabilities(args.cap.clone());
    }
    let pid = tenant.build().context("failed to exec in container")?;
    if args.detach {
        return Ok(0);
    }
    let attached = console
        .map(|c| c.receive().and_then(console::attach))
        .transpose()?;
    let code = wait::wait_forwarding_signals(pid, attached.as_ref());
    if let Some(attached) = attached {
        attached.finish();
    }
    code
}

/// A process.json removed when dropped.
struct TempProcess {
    path: PathBuf,
}

impl Drop for TempProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The container's own process with the exec's command, environment (the container's, then
/// `--env` overriding by name), working directory and `terminal: true`.
fn write_tty_process(root: &Path, container: &Container, args: &ExecArgs) -> Result<TempProcess> {
    let config = container.bundle().join("config.json");
    let spec = Spec::load(&config).with_context(|| format!("cannot read {}", config.display()))?;
    let mut process: Process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(args.command.clone()));
    process.set_terminal(Some(true));
    let mut env: Vec<String> = process.env().clone().unwrap_or_default();
    for pair in &args.env {
        let name = pair.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(name));
        env.push(pair.clone());
    }
    process.set_env(Some(env));
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.clone());
    }
    let path = containers::container_dir(root, &args.container_id)
        .join(format!("exec-process-{}.json", std::process::id()));
    let file = TempProcess { path };
    std::fs::write(&file.path, serde_json::to_vec(&process)?)
        .with_context(|| format!("cannot write {}", file.path.display()))?;
    Ok(file)
}
