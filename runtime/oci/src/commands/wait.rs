//! Waiting for a child (container init or exec'd process) while forwarding signals to it.

use crate::commands::console::Attached;
use anyhow::Result;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

const FORWARDED: [Signal; 7] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Returns the exit code as runc reports it: the exit status, or 128 + signal number. With a
/// console of ours attached, SIGWINCH resizes its pty instead of being forwarded.
pub fn wait_forwarding_signals(pid: Pid, console: Option<&Attached>) -> Result<i32> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for sig in FORWARDED {
        set.add(sig);
    }
    // Blocked (not handled) so that sigwait receives them; set only after the container was
    // started, so the container never inherits this mask.
    set.thread_block()?;
    let mut not_our_child = false;
    loop {
        // Reap before waiting: a SIGCHLD that arrived before blocking would be lost otherwise.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(code),
                Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => return Ok(128 + sig as i32),
                Ok(WaitStatus::StillAlive) => break,
                Ok(_) => continue,
                // ECHILD: not our child (e.g. reparented); poll its liveness instead.
                Err(nix::errno::Errno::ECHILD) => {
                    if kill(pid, None).is_err() {
                        return Ok(0);
                    }
                    not_our_child = true;
                    break;
                }
                Err(err) => return Err(err.into()),
            }
        }
        if not_our_child {
            // No SIGCHLD will come for a non-child: poll instead of blocking forever.
            std::thread::sleep(std::time::Duration::from_millis(10));
            continue;
        }
        let sig = set.wait()?;
        match (sig, console) {
            (Signal::SIGCHLD, _) => {}
            (Signal::SIGWINCH, Some(console)) => console.resize(),
            _ => {
                let _ = kill(pid, sig);
            }
        }
    }
}
