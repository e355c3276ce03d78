//! `exec`: run an extra process inside a running container.

use crate::cli::ExecArgs;
use crate::commands::wait;
use crate::containers;
use anyhow::{bail, Context, Result};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::ContainerStatus;
use libcontainer::syscall::syscall::SyscallType;
use std::path::Path;

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
    let mut builder = ContainerBuilder::new(args.container_id.clone(), SyscallType::default())
        .with_root_path(root)?
        .with_console_socket(args.console_socket.as_ref())
        .with_pid_file(args.pid_file.as_ref())?
        .with_preserved_fds(args.preserve_fds)
        .validate_id()?;
    let (stdout, stderr) = containers::stdio_replacements()?;
    if let Some(fd) = stdout {
        builder = builder.with_stdout(fd);
    }
    if let Some(fd) = stderr {
        builder = builder.with_stderr(fd);
    }
    let mut tenant = builder
        .as_tenant()
        .with_detach(args.detach)
        .with_cwd(args.cwd.as_ref())
        .with_env(libcontainer::utils::parse_env(&args.env))
        .with_process(args.process.as_ref())
        .with_no_new_privs(args.no_new_privs)
        .with_container_args(args.command.clone());
    if !args.cap.is_empty() {
        tenant = tenant.with_capabilities(args.cap.clone());
    }
    let pid = tenant.build().context("failed to exec in container")?;
    if args.detach {
        return Ok(0);
    }
    wait::wait_forwarding_signals(pid)
}
