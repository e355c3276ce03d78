//! Small helpers over rtnetlink shared by the CNI plugin and the overlay: a connection in the
//! caller's network namespace or in another one, and lookups by name.
//!
//! A netlink socket talks to the namespace of the thread that created it, so work in a pod's
//! namespace runs on a fresh thread that first joins it with setns(2) and builds its own
//! single-threaded runtime; the caller's thread never changes namespace.

use std::future::Future;
use std::os::fd::AsFd;
use std::path::Path;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::Handle;

/// A connection in the current thread's network namespace; its task runs on the current
/// tokio runtime.
pub fn connect() -> std::io::Result<Handle> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(connection);
    Ok(handle)
}

/// The errno of a failed request (positive), if the kernel gave one.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

pub fn is_exists(e: &rtnetlink::Error) -> bool {
    errno(e) == Some(libc::EEXIST)
}

pub fn is_not_found(e: &rtnetlink::Error) -> bool {
    matches!(
        errno(e),
        Some(libc::ENODEV) | Some(libc::ENOENT) | Some(libc::ESRCH)
    )
}

/// The link called `name`, if there is one.
pub async fn link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, rtnetlink::Error> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A link's hardware address.
pub fn mac_of(link: &LinkMessage) -> Option<[u8; 6]> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(bytes) => bytes.as_slice().try_into().ok(),
        _ => None,
    })
}

/// A link's bridge (its controller's index), if it is enslaved.
pub fn controller_of(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(index) => Some(*index),
        _ => None,
    })
}

pub fn mtu_of(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    bytes.try_into().ok()
}

/// Runs `work` with a netlink connection inside the network namespace at `netns` (a
/// `/proc/<pid>/ns/net` or bind-mounted `/run/netns/<name>` path) and returns its result.
/// Blocks the calling thread until it is done.
pub fn in_netns<F, Fut, T>(netns: &Path, work: F) -> anyhow::Result<T>
where
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>>,
    T: Send + 'static,
{
    let file = std::fs::File::open(netns)
        .map_err(|e| anyhow::anyhow!("opening network namespace {}: {e}", netns.display()))?;
    let thread = std::thread::spawn(move || -> anyhow::Result<T> {
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| anyhow::anyhow!("joining the network namespace: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async move {
            let handle = connect()?;
            work(handle).await
        })
    });
    thread
        .join()
        .map_err(|_| anyhow::anyhow!("the network namespace worker panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip() {
        let mac = [0x0a, 0x58, 0x0a, 0xf4, 0x01, 0xff];
        assert_eq!(format_mac(&mac), "0a:58:0a:f4:01:ff");
        assert_eq!(parse_mac("0a:58:0a:f4:01:ff"), Some(mac));
        assert_eq!(parse_mac("0a:58"), None);
        assert_eq!(parse_mac("zz:58:0a:f4:01:ff"), None);
    }
}
