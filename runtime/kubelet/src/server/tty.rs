//! `exec -t`: the exec'd process's terminal, handed to the kubelet as runc hands it to
//! containerd. skiff-runtime connects to a console socket the kubelet listens on and sends the
//! pty master over SCM_RIGHTS; the kubelet copies between the master and the stream and
//! applies the client's resize messages (channel 4, `{"Width":…,"Height":…}`, sent by kubectl
//! at the start and on every SIGWINCH) with TIOCSWINSZ, which also signals SIGWINCH to the
//! process in the terminal.
//!
//! The socket lives in the container's directory and is named through a handle on that
//! directory (`/proc/<pid>/fd/<n>/…`), so its path stays short whatever the root dir.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A console socket the runtime sends one pty master to; removed when dropped.
pub struct ConsoleListener {
    listener: tokio::net::UnixListener,
    dir: File,
    name: String,
}

impl ConsoleListener {
    /// Listens in `dir` (a container's directory).
    pub fn bind(dir: &Path) -> io::Result<ConsoleListener> {
        let handle = File::open(dir)?;
        let name = format!(
            "console-{}-{}.sock",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = format!("/proc/self/fd/{}/{name}", handle.as_raw_fd());
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path)?;
        Ok(ConsoleListener {
            listener,
            dir: handle,
            name,
        })
    }

    /// The path the runtime connects to (`--console-socket`).
    pub fn path(&self) -> String {
        format!(
            "/proc/{}/fd/{}/{}",
            std::process::id(),
            self.dir.as_raw_fd(),
            self.name
        )
    }

    /// The pty master the runtime sends once the process runs.
    pub async fn receive(&self) -> io::Result<OwnedFd> {
        let (conn, _) = self.listener.accept().await?;
        let conn = conn.into_std()?;
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        tokio::task::spawn_blocking(move || receive_fd(conn.as_raw_fd()))
            .await
            .map_err(io::Error::other)?
    }
}

impl Drop for ConsoleListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!(
            "/proc/self/fd/{}/{}",
            self.dir.as_raw_fd(),
            self.name
        ));
    }
}

fn receive_fd(socket: RawFd) -> io::Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(fd) = fds.first() {
                // SAFETY: received just now through SCM_RIGHTS; nobody else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(io::Error::other(
        "the console socket message carried no file descriptor",
    ))
}

/// A resize message's size: (columns, rows).
pub fn parse_size(message: &[u8]) -> Option<(u16, u16)> {
    #[derive(serde::Deserialize)]
    struct Size {
        #[serde(rename = "Width")]
        width: u16,
        #[serde(rename = "Height")]
        height: u16,
    }
    let size: Size = serde_json::from_slice(message).ok()?;
    Some((size.width, size.height))
}

/// Gives the terminal behind `master` a new size.
pub fn resize(master: RawFd, columns: u16, rows: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: columns,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize through a valid pointer; `master` is an open fd the
    // caller owns for the duration of the call.
    let rc = unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &size) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_messages_are_kubectls_json() {
        assert_eq!(parse_size(br#"{"Width":111,"Height":33}"#), Some((111, 33)));
        assert_eq!(parse_size(b"garbage"), None);
    }
}
