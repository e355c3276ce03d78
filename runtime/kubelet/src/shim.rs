//! The per-container monitor (`skiff shim`): the role of containerd-shim and conmon.
//!
//! Why a process per container: the kubelet is a tokio program that restarts (upgrades,
//! crashes, kill -9), while a container must keep running, keep its stdout/stderr drained into
//! its log file and have its exit code collected by *someone*. The shim is that someone:
//!
//! 1. The kubelet starts `skiff shim …` and reads one JSON line from its stdout:
//!    `{"pid":N}` once the container runs, or `{"error":"…"}` if it could not start.
//! 2. The shim forks; the child calls `setsid` (no signal from the kubelet's process group
//!    reaches it) and becomes a child subreaper, so the container's init — whose parent,
//!    `skiff-runtime create`, exits — is re-parented to it and it can `waitpid` for it.
//! 3. `skiff-runtime create` gets pipes as stdout and stderr (the container inherits them, as
//!    with runc's pass-through stdio); the shim writes every line to the container's log file
//!    in the CRI format (`<RFC3339Nano> <stream> <P|F> <text>`) that `kubectl logs` reads
//!    back through the kubelet.
//! 4. When the init exits, the shim drains the pipes and writes `exit.json` (exit code,
//!    signal, finish time) atomically into the container's directory, then exits. The kubelet
//!    reads that file whenever it looks — before or after its own restart.
//! 5. With `--log-max-size`, the shim rotates the log itself once it reaches that size
//!    (`logrotate.rs` says why the writer rotates rather than the kubelet) and gzips older
//!    rotated files in a short-lived child.
//!
//! It is synchronous and single-threaded (started before any tokio runtime), so fork is safe
//! and its footprint is a few hundred KiB of private memory per container.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, setsid, ForkResult, Pid};
use serde::{Deserialize, Serialize};

/// `skiff shim` arguments (set by the kubelet, not meant for people).
#[derive(Debug, Clone, clap::Args)]
pub struct ShimArgs {
    /// The OCI runtime binary (skiff-runtime).
    #[arg(long)]
    pub runtime: PathBuf,
    /// The runtime's state root (`--root`).
    #[arg(long)]
    pub runtime_root: PathBuf,
    /// The OCI bundle.
    #[arg(long)]
    pub bundle: PathBuf,
    /// The container's directory: `exit.json`, `shim.pid` and `runtime.log` go there.
    #[arg(long)]
    pub dir: PathBuf,
    /// The CRI-format log file to write.
    #[arg(long)]
    pub log: PathBuf,
    /// Give the container a stdin that attached clients write to (the pod's `stdin: true`).
    #[arg(long)]
    pub stdin: bool,
    /// Close that stdin when the first attached client leaves (`stdinOnce`).
    #[arg(long)]
    pub stdin_once: bool,
    /// Rotate the log once it has this many bytes (0: never).
    #[arg(long, default_value_t = 0)]
    pub log_max_size: u64,
    /// Log files kept, the one being written included.
    #[arg(long, default_value_t = 5)]
    pub log_max_files: u32,
    /// The container id.
    pub id: String,
}

/// What the shim tells the kubelet on its stdout, once.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How the container ended (`exit.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Exit {
    pub exit_code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub finished_at: String,
}

pub const EXIT_FILE: &str = "exit.json";
pub const PID_FILE: &str = "shim.pid";
pub const RUNTIME_LOG: &str = "runtime.log";
/// The unix socket `kubectl attach` reaches the container's stdio through. Clients receive
/// frames `[1|2][u32 big-endian length][bytes]` (stdout, stderr) and send raw stdin bytes.
pub const ATTACH_SOCKET: &str = "attach.sock";

/// Runs the shim; returns only in the process the kubelet started (after the report).
pub fn main(args: ShimArgs) -> anyhow::Result<()> {
    let (report_r, report_w) = pipe()?;
    // SAFETY: `skiff shim` runs before any thread is started (no tokio runtime, no helper
    // threads), so the child may do anything after fork.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => {
            drop(report_w);
            let mut line = String::new();
            File::from(report_r).read_to_string(&mut line)?;
            if line.trim().is_empty() {
                let report = Report {
                    pid: None,
                    error: Some(format!("the shim ({child}) ended without a report")),
                };
                line = serde_json::to_string(&report)?;
            }
            println!("{}", line.trim());
            Ok(())
        }
        ForkResult::Child => {
            drop(report_r);
            let code = match monitor(&args, report_w) {
                Ok(()) => 0,
                Err(e) => {
                    let _ = fs::write(args.dir.join("shim.error"), format!("{e:#}\n"));
                    1
                }
            };
            std::process::exit(code);
        }
    }
}

fn monitor(args: &ShimArgs, report: OwnedFd) -> anyhow::Result<()> {
    setsid()?;
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes no pointers.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc != 0 {
        anyhow::bail!("PR_SET_CHILD_SUBREAPER: {}", io::Error::last_os_error());
    }
    // Our stdio was the kubelet's pipe and its stderr: nothing of ours goes there any more.
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in 0..3 {
        // SAFETY: dup2 onto 0, 1 and 2 replaces our own stdio; no Rust object owns those.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(io::Error::last_os_error().into());
        }
    }
    fs::write(args.dir.join(PID_FILE), std::process::id().to_string())?;
    let mut report = File::from(report);

    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (stdin_for_container, stdin_writer) = if args.stdin {
        let (r, w) = pipe()?;
        (Stdio::from(r), Some(File::from(w)))
    } else {
        (Stdio::null(), None)
    };
    let pid_file = args.dir.join("container.pid");
    let created = runtime(args)
        .arg("create")
        .arg("--bundle")
        .arg(&args.bundle)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&args.id)
        .stdin(stdin_for_container)
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w))
        .status();
    let failure = match created {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!("create: {}", runtime_error(args, s))),
        Err(e) => Some(format!("running {}: {e}", args.runtime.display())),
    };
    if let Some(error) = failure {
        // The create failed before the container ran; whatever it printed is in the pipes.
        drop(out_r);
        drop(err_r);
        let line = serde_json::to_string(&Report {
            pid: None,
            error: Some(error),
        })?;
        writeln!(report, "{line}")?;
        return Ok(());
    }
    let pid: i32 = fs::read_to_string(&pid_file)?.trim().parse()?;
    let policy = crate::logrotate::Policy {
        max_size: args.log_max_size,
        max_files: args.log_max_files.max(2),
    };
    let mut log = LogWriter::open(&args.log)?.rotating(policy);
    let started = runtime(args)
        .arg("start")
        .arg(&args.id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let failure = match started {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!("start: {}", runtime_error(args, s))),
        Err(e) => Some(format!("running {}: {e}", args.runtime.display())),
    };
    let line = match &failure {
        None => serde_json::to_string(&Report {
            pid: Some(pid),
            error: None,
        })?,
        Some(error) => serde_json::to_string(&Report {
            pid: None,
            error: Some(error.clone()),
        })?,
    };
    writeln!(report, "{line}")?;
    drop(report);

    let socket = args.dir.join(ATTACH_SOCKET);
    let _ = fs::remove_file(&socket);
    // A socket path may be at most 107 bytes and the container's directory can be longer:
    // bind relative to it (clients reach it through /proc/self/fd/<dir fd>/attach.sock).
    std::env::set_current_dir(&args.dir)?;
    let listener = std::os::unix::net::UnixListener::bind(ATTACH_SOCKET)?;
    listener.set_nonblocking(true)?;
    let mut attach = Attach {
        listener,
        clients: Vec::new(),
        stdin: stdin_writer,
        stdin_once: args.stdin_once,
    };
    let status = pump_until_exit(Pid::from_raw(pid), out_r, err_r, &mut log, &mut attach)?;
    drop(attach);
    let _ = fs::remove_file(&socket);
    let (exit_code, signal) = match status {
        WaitStatus::Exited(_, code) => (code, None),
        WaitStatus::Signaled(_, sig, _) => (128 + sig as i32, Some(sig as i32)),
        _ => (255, None),
    };
    let exit = Exit {
        exit_code,
        signal,
        finished_at: jiff::Timestamp::now().to_string(),
    };
    write_atomic(&args.dir.join(EXIT_FILE), &serde_json::to_vec(&exit)?)?;
    Ok(())
}

/// A close-on-exec pipe: neither the runtime nor the container may inherit an end it was
/// not given as stdio (a stray copy of the report pipe would keep the kubelet waiting).
fn pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
}

fn runtime(args: &ShimArgs) -> Command {
    let mut cmd = Command::new(&args.runtime);
    cmd.arg("--root")
        .arg(&args.runtime_root)
        .arg("--log")
        .arg(args.dir.join(RUNTIME_LOG))
        .arg("--log-format")
        .arg("json");
    cmd
}

/// The last message the runtime logged (its `--log` file in JSON lines), or its exit status.
fn runtime_error(args: &ShimArgs, status: std::process::ExitStatus) -> String {
    let text = fs::read_to_string(args.dir.join(RUNTIME_LOG)).unwrap_or_default();
    let last = text
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v.get("msg").and_then(|m| m.as_str()).map(str::to_string));
    last.unwrap_or_else(|| format!("skiff-runtime exited with {status}"))
}

/// Copies both pipes into the log until the container's init has exited and the pipes are
/// drained; returns the init's wait status. Other children re-parented to us (the container's
/// orphans after its init died) are reaped on the way.
fn pump_until_exit(
    init: Pid,
    out: OwnedFd,
    err: OwnedFd,
    log: &mut LogWriter,
    attach: &mut Attach,
) -> anyhow::Result<WaitStatus> {
    let mut streams = [
        Some(Stream::new(out, "stdout")),
        Some(Stream::new(err, "stderr")),
    ];
    let mut exited: Option<WaitStatus> = None;
    loop {
        // Reap everything that has exited.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                Ok(status) => {
                    if status.pid() == Some(init) {
                        exited = Some(status);
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if streams.iter().all(Option::is_none) {
            if let Some(status) = exited {
                return Ok(status);
            }
        }
        // Once the init is gone, its stdio closes as soon as the last process holding it does;
        // the pid namespace's other processes are killed with it, so that is quick. Poll with
        // a short timeout to notice the exit when nobody writes.
        let timeout = PollTimeout::from(if exited.is_some() { 100u16 } else { 1000u16 });
        let mut fds: Vec<PollFd> = streams
            .iter()
            .flatten()
            .map(|s| PollFd::new(s.fd.as_fd(), PollFlags::POLLIN))
            .collect();
        let stream_count = fds.len();
        fds.push(PollFd::new(attach.listener.as_fd(), PollFlags::POLLIN));
        for (client, sending) in &attach.clients {
            if *sending {
                fds.push(PollFd::new(client.as_fd(), PollFlags::POLLIN));
            }
        }
        let ready = if fds.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(100));
            0
        } else {
            match poll(&mut fds, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(e) => return Err(e.into()),
            }
        };
        let readable: Vec<bool> = fds
            .iter()
            .map(|f| {
                f.revents()
                    .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP))
            })
            .collect();
        drop(fds);
        attach.service(&readable[stream_count..]);
        if ready == 0 && exited.is_some() {
            // Quiet after the exit: whatever still holds the pipes is not the container.
            for s in streams.iter_mut().flatten() {
                s.flush_partial(log)?;
            }
            streams = [None, None];
            continue;
        }
        let mut index = 0;
        for slot in streams.iter_mut() {
            let Some(stream) = slot else { continue };
            let is_ready = readable.get(index).copied().unwrap_or(false);
            index += 1;
            if is_ready && !stream.read_into(log, attach)? {
                stream.flush_partial(log)?;
                *slot = None;
            }
        }
        compress_in_child(log.take_compressible());
    }
}

/// Gzips rotated logs in a child process, so the container's output keeps being drained
/// meanwhile; the child is reaped with the container's orphans.
fn compress_in_child(files: Vec<PathBuf>) {
    if files.is_empty() {
        return;
    }
    // SAFETY: the shim is single-threaded (see the module docs), so the child may allocate
    // and do file I/O after fork.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            // SAFETY: close_range(3, ~0, 0) closes only the descriptors this child inherited
            // (pipes, sockets); it uses none of them.
            unsafe {
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
                libc::nice(10);
            }
            for file in &files {
                let _ = crate::logrotate::compress(file);
            }
            // SAFETY: _exit ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(0) }
        }
        Ok(ForkResult::Parent { .. }) => {}
        Err(_) => {
            for file in &files {
                let _ = crate::logrotate::compress(file);
            }
        }
    }
}

/// Clients attached to the container's stdio (`kubectl attach`), and its stdin if it has one.
struct Attach {
    listener: std::os::unix::net::UnixListener,
    /// Each client, and whether it may still send input (it half-closes when its stdin ends,
    /// and keeps receiving output).
    clients: Vec<(std::os::unix::net::UnixStream, bool)>,
    stdin: Option<File>,
    stdin_once: bool,
}

impl Attach {
    /// Accepts new clients and passes their input to stdin; `readable` is the poll result for
    /// the listener, then each client.
    fn service(&mut self, readable: &[bool]) {
        // `readable` follows the poll set: the listener, then the clients still sending.
        let polled: Vec<usize> = (0..self.clients.len())
            .filter(|i| self.clients[*i].1)
            .collect();
        if readable.first().copied().unwrap_or(false) {
            while let Ok((client, _)) = self.listener.accept() {
                let _ = client.set_nonblocking(true);
                self.clients.push((client, true));
            }
        }
        let mut gone = Vec::new();
        for (slot, i) in polled.into_iter().enumerate() {
            if !readable.get(slot + 1).copied().unwrap_or(false) {
                continue;
            }
            let mut buf = [0u8; 8192];
            let (client, sending) = &mut self.clients[i];
            match client.read(&mut buf) {
                Ok(0) => {
                    // End of this client's input: it stays attached for the output.
                    *sending = false;
                    if self.stdin_once {
                        // The container sees end of input once its first client is done.
                        self.stdin = None;
                    }
                }
                Ok(n) => {
                    if let Some(stdin) = self.stdin.as_mut() {
                        if stdin.write_all(&buf[..n]).is_err() {
                            self.stdin = None;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => gone.push(i),
            }
        }
        for i in gone.into_iter().rev() {
            self.clients.remove(i);
            if self.stdin_once {
                self.stdin = None;
            }
        }
    }

    /// Sends output to every client; one that cannot keep up is dropped, never waited for
    /// (the container must not block on a slow terminal).
    fn broadcast(&mut self, stream: u8, data: &[u8]) {
        if self.clients.is_empty() {
            return;
        }
        let mut frame = Vec::with_capacity(data.len() + 5);
        frame.push(stream);
        frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
        frame.extend_from_slice(data);
        self.clients
            .retain_mut(|(c, _)| c.write_all(&frame).is_ok());
    }
}

/// One of the container's output pipes, with the unfinished line read so far.
struct Stream {
    fd: OwnedFd,
    name: &'static str,
    pending: Vec<u8>,
}

/// Lines longer than this are written as partial (`P`) entries, as containerd does.
const MAX_LINE: usize = 16 * 1024;

impl Stream {
    fn new(fd: OwnedFd, name: &'static str) -> Stream {
        Stream {
            fd,
            name,
            pending: Vec::new(),
        }
    }

    /// Reads what is there; false at end of file.
    fn read_into(&mut self, log: &mut LogWriter, attach: &mut Attach) -> io::Result<bool> {
        let mut buf = [0u8; 32 * 1024];
        let n = match nix::unistd::read(&self.fd, &mut buf) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(false);
        }
        attach.broadcast(if self.name == "stdout" { 1 } else { 2 }, &buf[..n]);
        self.pending.extend_from_slice(&buf[..n]);
        loop {
            let window = self.pending.len().min(MAX_LINE + 1);
            if let Some(end) = self.pending[..window].iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                log.write(self.name, false, &line[..line.len() - 1])?;
            } else if self.pending.len() >= MAX_LINE {
                let part: Vec<u8> = self.pending.drain(..MAX_LINE).collect();
                log.write(self.name, true, &part)?;
            } else {
                break;
            }
        }
        Ok(true)
    }

    fn flush_partial(&mut self, log: &mut LogWriter) -> io::Result<()> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            log.write(self.name, false, &rest)?;
        }
        Ok(())
    }
}

/// The container's log file in the CRI format, rotated by size when a policy is set.
pub struct LogWriter {
    file: File,
    path: PathBuf,
    /// Bytes in the file being written.
    size: u64,
    policy: Option<crate::logrotate::Policy>,
    /// A rotation could not happen in this second (the name was taken or it failed): the
    /// next attempt waits for the next second.
    held_until: Option<i64>,
    /// Rotated files waiting to be gzipped.
    compressible: Vec<PathBuf>,
}

impl LogWriter {
    pub fn open(path: &Path) -> io::Result<LogWriter> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            file,
            path: path.to_path_buf(),
            size,
            policy: None,
            held_until: None,
            compressible: Vec::new(),
        })
    }

    /// Rotates the file by `policy` (nothing when its size is 0).
    pub fn rotating(mut self, policy: crate::logrotate::Policy) -> LogWriter {
        self.policy = policy.enabled().then_some(policy);
        self
    }

    /// One entry: `<RFC3339Nano> <stream> <P|F> <text>\n`; the file is rotated after the
    /// entry that brings it to the size limit (entries are never split between files).
    pub fn write(&mut self, stream: &str, partial: bool, text: &[u8]) -> io::Result<()> {
        let now = jiff::Timestamp::now();
        let mut entry = format_entry_prefix(now, stream, partial).into_bytes();
        entry.extend_from_slice(text);
        entry.push(b'\n');
        self.file.write_all(&entry)?;
        self.size += entry.len() as u64;
        if let Some(policy) = self.policy {
            if self.size >= policy.max_size {
                self.rotate(policy, now);
            }
        }
        Ok(())
    }

    fn rotate(&mut self, policy: crate::logrotate::Policy, now: jiff::Timestamp) {
        if self.held_until.is_some_and(|s| now.as_second() <= s) {
            return;
        }
        match crate::logrotate::rotate(&self.path, policy, now) {
            Ok(Some(to_compress)) => {
                self.compressible.extend(to_compress);
                match OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                {
                    Ok(file) => {
                        self.file = file;
                        self.size = 0;
                    }
                    // Writing goes on into the rotated file; the next second tries again.
                    Err(_) => self.held_until = Some(now.as_second()),
                }
            }
            Ok(None) | Err(_) => self.held_until = Some(now.as_second()),
        }
    }

    /// The rotated files to gzip now.
    pub fn take_compressible(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.compressible)
    }
}

/// The timestamp, stream and tag of a CRI log entry, with its trailing space. Timestamps have
/// nine fractional digits as containerd writes them, so lines sort as text.
pub fn format_entry_prefix(at: jiff::Timestamp, stream: &str, partial: bool) -> String {
    let tag = if partial { "P" } else { "F" };
    format!("{} {stream} {tag} ", at.strftime("%Y-%m-%dT%H:%M:%S.%9fZ"))
}

/// Writes `path` through a temporary file and a rename, so a reader sees all or nothing.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_prefix_is_cri_format() {
        let at: jiff::Timestamp = "2025-01-02T03:04:05.123456789Z".parse().unwrap();
        assert_eq!(
            format_entry_prefix(at, "stdout", false),
            "2025-01-02T03:04:05.123456789Z stdout F "
        );
        let whole: jiff::Timestamp = "2025-01-02T03:04:05Z".parse().unwrap();
        assert_eq!(
            format_entry_prefix(whole, "stderr", true),
            "2025-01-02T03:04:05.000000000Z stderr P "
        );
    }

    #[test]
    fn the_writer_rotates_at_the_size_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c").join("0.log");
        let policy = crate::logrotate::Policy {
            max_size: 200,
            max_files: 3,
        };
        let mut log = LogWriter::open(&path).unwrap().rotating(policy);
        // An entry is 40 bytes of prefix, 9 of text and a newline: the fourth reaches 200.
        for i in 0..4 {
            log.write("stdout", false, format!("line {i:04}").as_bytes())
                .unwrap();
        }
        assert_eq!(fs::read_to_string(&path).unwrap(), "", "a fresh file");
        let rotated: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p != &path)
            .collect();
        assert_eq!(rotated.len(), 1, "{rotated:?}");
        let text = fs::read_to_string(&rotated[0]).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(text.lines().all(|l| l.contains(" stdout F line ")));
        assert!(log.take_compressible().is_empty());
        // Within the same second the name is taken: writing goes on in the current file.
        for i in 4..9 {
            log.write("stdout", false, format!("line {i:04}").as_bytes())
                .unwrap();
        }
        let current = fs::read_to_string(&path).unwrap();
        let same_second = rotated[0]
            .to_string_lossy()
            .ends_with(&jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string());
        if same_second {
            assert_eq!(current.lines().count(), 5);
        }
        // A writer without a policy never rotates.
        let plain = dir.path().join("plain.log");
        let mut log = LogWriter::open(&plain).unwrap();
        for _ in 0..100 {
            log.write("stderr", false, b"0123456789").unwrap();
        }
        assert_eq!(fs::read_to_string(&plain).unwrap().lines().count(), 100);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn long_lines_become_partial_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = LogWriter::open(&path).unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut stream = Stream::new(r, "stdout");
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.extend_from_slice(b"\nshort\nrest");
        let mut w = File::from(w);
        w.write_all(&input).unwrap();
        drop(w);
        let mut attach = Attach {
            listener: std::os::unix::net::UnixListener::bind(dir.path().join("a.sock")).unwrap(),
            clients: Vec::new(),
            stdin: None,
            stdin_once: false,
        };
        while stream.read_into(&mut log, &mut attach).unwrap() {}
        stream.flush_partial(&mut log).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let tags: Vec<&str> = text.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
        assert_eq!(tags, ["P", "F", "F", "F"]);
        assert!(text.lines().nth(2).unwrap().ends_with(" short"));
        assert!(text.lines().nth(3).unwrap().ends_with(" rest"));
    }
}
