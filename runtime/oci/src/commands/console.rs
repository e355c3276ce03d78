//! A terminal for foreground `run` and `exec --tty` without `--console-socket`, as runc does:
//! the container's process gets a pty, and we copy between our stdio and the pty's master,
//! with our own terminal (if stdin is one) in raw mode and its size passed on, also on
//! SIGWINCH.
//!
//! libcontainer only hands the master out through a console socket (and only when told the
//! container is detached, a flag it uses for nothing else), so we listen on a socket of our
//! own in the state root. No thread may run while libcontainer forks, and none needs to: the
//! connection and the fd wait in the socket's backlog until `receive` after `build()`.

use anyhow::{bail, Context, Result};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ConsoleSocket {
    /// Listens at `<root>/console@<id>.sock` (`@` never appears in a container id).
    pub fn listen(root: &Path, id: &str) -> Result<ConsoleSocket> {
        std::fs::create_dir_all(root)?;
        let path = root.join(format!("console@{id}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .with_context(|| format!("cannot listen on {}", path.display()))?;
        Ok(ConsoleSocket { listener, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes the pty master the container's process sent (already queued once `build()`
    /// returned).
    pub fn receive(self) -> Result<OwnedFd> {
        self.listener.set_nonblocking(true)?;
        let (conn, _) = self
            .listener
            .accept()
            .context("the container did not connect to its console socket")?;
        conn.set_nonblocking(false)?;
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .context("receiving the pty master")?;
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                if let Some(fd) = fds.first() {
                    // SAFETY: received just now through SCM_RIGHTS; nobody else owns it.
                    return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
                }
            }
        }
        bail!("the console socket message carried no file descriptor")
    }
}

/// Our stdio attached to a pty master until `finish`.
pub struct Attached {
    master: File,
    output: Option<std::thread::JoinHandle<()>>,
    saved: Option<Termios>,
}

/// Starts copying stdin → master and master → stdout; puts a terminal stdin into raw mode.
pub fn attach(master: OwnedFd) -> Result<Attached> {
    let master = File::from(master);
    let stdin = std::io::stdin();
    let saved = match termios::tcgetattr(stdin.as_fd()) {
        Ok(original) => {
            let mut raw = original.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
            Some(original)
        }
        Err(_) => None, // not a terminal: copy bytes as they come
    };
    let mut attached = Attached {
        master,
        output: None,
        saved,
    };
    attached.resize();
    let mut to_container = attached.master.try_clone()?;
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || to_container.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let mut from_container = attached.master.try_clone()?;
    let output = std::thread::spawn(move || {
        let mut stdout = std::io::stdout();
        let mut buf = [0u8; 4096];
        // EIO once every slave fd is closed: the process has exited.
        while let Ok(n) = from_container.read(&mut buf) {
            if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = stdout.flush();
        }
    });
    attached.output = Some(output);
    Ok(attached)
}

impl Attached {
    /// Gives the pty our terminal's size (on start and on SIGWINCH).
    pub fn resize(&self) {
        // SAFETY: winsize is plain integers, for which all-zero bytes are a valid value.
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ/TIOCSWINSZ read or write one winsize through a valid pointer.
        unsafe {
            if libc::ioctl(0, libc::TIOCGWINSZ, &mut size) == 0 {
                libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size);
            }
        }
    }

    /// After the process exited: drains its last output and restores our terminal.
    pub fn finish(mut self) {
        if let Some(output) = self.output.take() {
            let _ = output.join();
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}
