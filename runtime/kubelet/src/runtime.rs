//! The container runtime as the kubelet uses it: `skiff-runtime` commands (as containerd
//! runs runc) and the per-container shim (`skiff shim`, see `shim.rs`).
//!
//! Why a separate binary and not a library call: libcontainer forks with raw `clone3` and
//! must run single-threaded; the kubelet is a multi-threaded tokio program (DESIGN.md, choice
//! 4). Every call here is a short-lived process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::shim::Report;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    Failed(String),
    #[error("running {0}: {1}")]
    Spawn(String, std::io::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// skiff-runtime with this node's state root, and the shim command that wraps it.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub binary: PathBuf,
    pub root: PathBuf,
    /// The `skiff` binary (for `skiff shim`).
    pub shim: PathBuf,
}

/// What an exec in a container produced.
#[derive(Debug)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub output: Vec<u8>,
}

impl Runtime {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root);
        cmd.stdin(Stdio::null());
        cmd.kill_on_drop(true);
        cmd
    }

    async fn run(&self, args: &[&str]) -> Result<String, RuntimeError> {
        let output = self
            .command()
            .args(args)
            .output()
            .await
            .map_err(|e| RuntimeError::Spawn(self.binary.display().to_string(), e))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            Err(RuntimeError::Failed(
                stderr
                    .trim()
                    .trim_start_matches("skiff-runtime: ")
                    .to_string(),
            ))
        }
    }

    /// Creates and starts the container through a new shim; returns the init's pid once it
    /// runs. `dir` is the container's directory (exit.json etc.), `log` its CRI log file;
    /// `stdin` is Some(stdinOnce) for a container with `stdin: true`; the shim rotates the log
    /// by `rotation`.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        &self,
        id: &str,
        bundle: &Path,
        dir: &Path,
        log: &Path,
        rotation: crate::logrotate::Policy,
        stdin: Option<bool>,
        join_cgroup: Option<&Path>,
    ) -> Result<i32, RuntimeError> {
        let mut cmd = Command::new(&self.shim);
        if let Some(dir) = join_cgroup {
            // Hybrid hosts: the shim (and so the container it starts) joins the pod's cgroup2
            // directory first, where the node's socket programs are attached.
            join_cgroup_before_exec(cmd.as_std_mut(), dir)?;
        }
        cmd.arg("shim")
            .arg("--runtime")
            .arg(&self.binary)
            .arg("--runtime-root")
            .arg(&self.root)
            .arg("--bundle")
            .arg(bundle)
            .arg("--dir")
            .arg(dir)
            .arg("--log")
            .arg(log)
            .arg(format!("--log-max-size={}", rotation.max_size))
            .arg(format!("--log-max-files={}", rotation.max_files));
        if let Some(once) = stdin {
            cmd.arg("--stdin");
            if once {
                cmd.arg("--stdin-once");
            }
        }
        cmd.arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // The shim outlives us; it must not die with the kubelet's process group.
            .process_group(0);
        let output = cmd
            .output()
            .await
            .map_err(|e| RuntimeError::Spawn(self.shim.display().to_string(), e))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let report: Report = serde_json::from_str(text.trim()).map_err(|_| {
            RuntimeError::Failed(format!(
                "the shim answered {:?} ({})",
                text.trim(),
                output.status
            ))
        })?;
        match (report.pid, report.error) {
            (Some(pid), _) => Ok(pid),
            (None, Some(error)) => Err(RuntimeError::Failed(error)),
            (None, None) => Err(RuntimeError::Failed("the shim reported nothing".into())),
        }
    }

    /// Sends `signal` (e.g. "TERM", "KILL") to the container's init.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<(), RuntimeError> {
        match self.run(&["kill", id, signal]).await {
            Ok(_) => Ok(()),
            // Already stopped: nothing to signal.
            Err(RuntimeError::Failed(m)) if m.contains("not running") || m.contains("stopped") => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Removes the container (killing it first if it still runs); absent is fine.
    pub async fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        match self.run(&["delete", "--force", id]).await {
            Ok(_) => Ok(()),
            Err(RuntimeError::Failed(m))
                if m.contains("does not exist") || m.contains("not found") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `command` in the container and collects stdout and stderr together (probes and
    /// lifecycle hooks), killed after `timeout`.
    pub async fn exec(
        &self,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, RuntimeError> {
        let mut cmd = self.command();
        if let Some(dir) = self.unified_dir_of(id) {
            join_cgroup_before_exec(cmd.as_std_mut(), &dir)?;
        }
        cmd.arg("exec").arg(id).args(command);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .map_err(|e| RuntimeError::Spawn(self.binary.display().to_string(), e))?;
        let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(result) => {
                result.map_err(|e| RuntimeError::Spawn(self.binary.display().to_string(), e))?
            }
            Err(_) => return Err(RuntimeError::Timeout(timeout)),
        };
        let mut out = output.stdout;
        out.extend_from_slice(&output.stderr);
        Ok(ExecOutput {
            exit_code: output.status.code().unwrap_or(255),
            output: out,
        })
    }

    /// A command to run an interactive exec session in the container (`kubectl exec`): the
    /// caller wires its stdio.
    /// `skiff-runtime exec`; with `console_socket`, under a terminal whose master the runtime
    /// sends to that socket (it still waits for the process and exits with its code).
    pub fn exec_command(
        &self,
        id: &str,
        command: &[String],
        console_socket: Option<&str>,
    ) -> Command {
        let mut cmd = self.command();
        if let Some(dir) = self.unified_dir_of(id) {
            if let Err(e) = join_cgroup_before_exec(cmd.as_std_mut(), &dir) {
                tracing::warn!(container = id, "exec outside the pod's cgroup2: {e}");
            }
        }
        cmd.arg("exec");
        if let Some(socket) = console_socket {
            cmd.args(["--tty", "--console-socket", socket]);
        }
        cmd.arg(id).args(command);
        cmd
    }

    /// On a hybrid host, the cgroup2 directory the container's init runs in (its shim joined
    /// it): an exec joins it too, so the node's socket programs see exec'd processes as well.
    /// None elsewhere (on pure v2 the runtime's exec joins the container's cgroup itself).
    fn unified_dir_of(&self, id: &str) -> Option<PathBuf> {
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.root.join(id).join("state.json")).ok()?)
                .ok()?;
        let pid = state.get("pid")?.as_i64()?;
        let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let path = membership.lines().find_map(|l| l.strip_prefix("0::"))?;
        if path == "/" {
            return None;
        }
        let dir = Path::new("/sys/fs/cgroup/unified").join(path.trim_start_matches('/'));
        dir.join("cgroup.procs").exists().then_some(dir)
    }
}

/// Makes the child write itself into `dir`'s `cgroup.procs` between fork and exec.
fn join_cgroup_before_exec(
    cmd: &mut std::process::Command,
    dir: &Path,
) -> Result<(), RuntimeError> {
    use std::os::unix::process::CommandExt;
    let procs = std::ffi::CString::new(dir.join("cgroup.procs").as_os_str().as_encoded_bytes())
        .map_err(|e| RuntimeError::Failed(e.to_string()))?;
    // SAFETY: runs in the forked child before exec; open/write/close are async-signal-safe
    // and touch only the path prepared above.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let written = libc::write(fd, c"0".as_ptr().cast(), 1);
            libc::close(fd);
            if written != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}
