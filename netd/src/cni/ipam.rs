//! The plugin's address store, one directory per network (`<dataDir>/<network>/`), laid out
//! like the reference host-local plugin's so operators know it: a file per allocated address
//! holding `<containerID>\n<ifname>`, `last_reserved_ip.0` for round-robin allocation, and a
//! `lock` file held with flock(2) for the whole ADD or DEL (the kubelet runs several CNI calls
//! at once).
//!
//! A file is created with O_EXCL and it and the directory are fsync'd before ADD answers, so a
//! crash or restart never hands one address out twice; DEL removes it. Round-robin (not lowest
//! free) delays the reuse of a just-released address, so a stale peer's connections do not
//! land on the next pod.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use ipnetwork::Ipv4Network;

use super::error::{CniError, Code};

/// The store of one network, locked while it lives.
pub struct Store {
    dir: PathBuf,
    _lock: File,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> CniError {
    CniError::new(Code::Io, format!("{what} {}", path.display())).with_details(e)
}

impl Store {
    /// Opens (creating) and locks the network's directory.
    pub fn open(data_dir: &Path, network: &str) -> Result<Store, CniError> {
        let dir = data_dir.join(network);
        std::fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io("opening", &lock_path, e))?;
        // SAFETY: flock on a file descriptor we own; blocking until the other call is done.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(io("locking", &lock_path, std::io::Error::last_os_error()));
        }
        Ok(Store { dir, _lock: lock })
    }

    /// Every allocation: (address, container ID, ifname).
    pub fn allocations(&self) -> Result<Vec<(Ipv4Addr, String, String)>, CniError> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| io("reading", &self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(ip) = name.to_str().and_then(|n| n.parse::<Ipv4Addr>().ok()) else {
                continue;
            };
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            let mut lines = text.lines();
            let id = lines.next().unwrap_or_default().trim().to_string();
            let ifname = lines.next().unwrap_or_default().trim().to_string();
            out.push((ip, id, ifname));
        }
        out.sort();
        Ok(out)
    }

    /// The address of `(container_id, ifname)`, if it has one.
    pub fn find(&self, container_id: &str, ifname: &str) -> Result<Option<Ipv4Addr>, CniError> {
        Ok(self
            .allocations()?
            .into_iter()
            .find(|(_, id, i)| id == container_id && i == ifname)
            .map(|(ip, _, _)| ip))
    }

    /// Reserves an address of `subnet` (never the network, gateway or broadcast address) for
    /// the attachment; the one it already has, if any.
    pub fn allocate(
        &self,
        subnet: Ipv4Network,
        gateway: Ipv4Addr,
        container_id: &str,
        ifname: &str,
    ) -> Result<Ipv4Addr, CniError> {
        if let Some(ip) = self.find(container_id, ifname)? {
            return Ok(ip);
        }
        let first = u32::from(subnet.network()) + 1;
        let last = u32::from(subnet.broadcast()) - 1;
        let size = last - first + 1;
        let last_path = self.dir.join("last_reserved_ip.0");
        let previous = std::fs::read_to_string(&last_path)
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .map(u32::from)
            .filter(|ip| (first..=last).contains(ip))
            .unwrap_or(last);
        for step in 1..=size {
            let candidate = Ipv4Addr::from(first + (previous - first + step) % size);
            if candidate == gateway {
                continue;
            }
            let path = self.dir.join(candidate.to_string());
            let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io("reserving", &path, e)),
            };
            file.write_all(format!("{container_id}\n{ifname}").as_bytes())
                .and_then(|_| file.sync_all())
                .map_err(|e| io("writing", &path, e))?;
            write_durably(&last_path, candidate.to_string().as_bytes())?;
            sync_dir(&self.dir)?;
            return Ok(candidate);
        }
        Err(CniError::new(
            Code::AddressesExhausted,
            format!(
                "no IP addresses available in range set: {}-{}",
                Ipv4Addr::from(first),
                Ipv4Addr::from(last)
            ),
        ))
    }

    /// Frees the attachment's address; nothing to free is fine (DEL is idempotent).
    pub fn release(&self, container_id: &str, ifname: &str) -> Result<Option<Ipv4Addr>, CniError> {
        let Some(ip) = self.find(container_id, ifname)? else {
            return Ok(None);
        };
        self.release_ip(ip)?;
        Ok(Some(ip))
    }

    pub fn release_ip(&self, ip: Ipv4Addr) -> Result<(), CniError> {
        let path = self.dir.join(ip.to_string());
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("releasing", &path, e)),
        }
    }

    /// Whether `subnet` has a free address left (STATUS).
    pub fn has_free(&self, subnet: Ipv4Network) -> Result<bool, CniError> {
        // Network, broadcast and gateway are never handed out.
        let usable = subnet.size().saturating_sub(3) as usize;
        Ok(self.allocations()?.len() < usable)
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), CniError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(|e| io("writing", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| io("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("renaming", path, e))
}

fn sync_dir(dir: &Path) -> Result<(), CniError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("syncing", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_round_robin_persists_and_releases() {
        let dir = tempfile::tempdir().unwrap();
        let subnet: Ipv4Network = "10.244.1.0/29".parse().unwrap();
        let gw = Ipv4Addr::new(10, 244, 1, 1);
        let store = Store::open(dir.path(), "net").unwrap();
        let a = store.allocate(subnet, gw, "c1", "eth0").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 244, 1, 2));
        // The same attachment keeps its address.
        assert_eq!(store.allocate(subnet, gw, "c1", "eth0").unwrap(), a);
        let b = store.allocate(subnet, gw, "c2", "eth0").unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 244, 1, 3));
        assert_eq!(store.release("c1", "eth0").unwrap(), Some(a));
        assert_eq!(store.release("c1", "eth0").unwrap(), None);
        drop(store);
        // A restart continues after the last reserved address, not at the freed one.
        let store = Store::open(dir.path(), "net").unwrap();
        let c = store.allocate(subnet, gw, "c3", "eth0").unwrap();
        assert_eq!(c, Ipv4Addr::new(10, 244, 1, 4));
        assert_eq!(store.find("c2", "eth0").unwrap(), Some(b));
    }

    #[test]
    fn an_exhausted_range_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        // /29: .1 gateway, .2–.6 for pods.
        let subnet: Ipv4Network = "10.244.9.0/29".parse().unwrap();
        let gw = Ipv4Addr::new(10, 244, 9, 1);
        let store = Store::open(dir.path(), "net").unwrap();
        for i in 0..5 {
            store
                .allocate(subnet, gw, &format!("c{i}"), "eth0")
                .unwrap();
        }
        assert!(!store.has_free(subnet).unwrap());
        let e = store.allocate(subnet, gw, "c9", "eth0").unwrap_err();
        assert_eq!(e.code, Code::AddressesExhausted);
        assert_eq!(
            e.msg,
            "no IP addresses available in range set: 10.244.9.1-10.244.9.6"
        );
    }
}
