//! The kernel side: loads `ebpf/sock_lb.c` (compiled by build.rs), pins its maps and links
//! under the node's own directory on a bpffs, attaches the four socket programs to the node's
//! cgroup subtree, and writes frontends into the maps incrementally.
//!
//! Restart safety: maps are pinned and reused by the next agent (aya's `map_pin_path` opens
//! an existing pin), links are pinned, so the datapath keeps translating while no agent runs.
//! A new agent attaches its programs first and only then unpins the old links; both programs
//! run in between (cgroup links stack) and translate alike.
//!
//! Map update order (never a half-programmed service): backends, then slots, then the
//! frontend's count; when shrinking, the count first, then the surplus slots.

use std::collections::HashMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{CgroupAttachMode, CgroupSockAddr};
use aya::EbpfLoader;

use super::maps::{self, Lb4Backend, Lb4Key, Lb4Service, F_NO_BACKENDS};
use super::model::Frontend;

/// The object build.rs compiled.
static SOCK_LB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sock_lb.o"));

const MAPS: [&str; 4] = [
    "skiff_lb4_services",
    "skiff_lb4_backends",
    "skiff_lb4_revnat",
    "skiff_lb4_affinity",
];
const PROGRAMS: [&str; 4] = [
    "skiff_sock4_connect",
    "skiff_sock4_sendmsg",
    "skiff_sock4_recvmsg",
    "skiff_sock4_getpeername",
];

/// What one frontend holds in the maps now.
#[derive(Debug, Clone)]
struct Programmed {
    frontend: Frontend,
    rev_nat_index: u16,
    backend_ids: Vec<u32>,
}

pub struct Datapath {
    services: BpfHashMap<MapData, Lb4Key, Lb4Service>,
    backends: BpfHashMap<MapData, u32, Lb4Backend>,
    programmed: HashMap<(Ipv4Addr, u16, u8), Programmed>,
    /// Backend → (id, how many slots use it).
    backend_ids: HashMap<(Ipv4Addr, u16, u8), (u32, usize)>,
    next_backend_id: u32,
    next_rev_nat: u16,
    /// Backend ids a previous agent wrote: freed after the first full apply, once nothing
    /// points at them any more.
    legacy_backends: Vec<u32>,
    /// Keeps the programs (and their fds) alive.
    _ebpf: aya::Ebpf,
}

/// The cgroup2 directory of `cgroup_root` (hybrid hosts mount cgroup2 at /sys/fs/cgroup/unified).
pub fn cgroup2_dir(cgroup_root: &str) -> anyhow::Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mount = mounts
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            (right.split(' ').next() == Some("cgroup2"))
                .then(|| left.split(' ').nth(4).map(PathBuf::from))?
        })
        .next()
        .context("no cgroup2 hierarchy is mounted (the socket programs attach to one)")?;
    Ok(mount.join(cgroup_root.trim_start_matches('/')))
}

impl Datapath {
    /// Loads (or takes over) the node's datapath in `pin_dir` and attaches it to `cgroup`.
    pub fn load(pin_dir: &Path, cgroup: &Path) -> anyhow::Result<Datapath> {
        std::fs::create_dir_all(pin_dir)?;
        std::fs::create_dir_all(cgroup)
            .with_context(|| format!("creating cgroup {}", cgroup.display()))?;
        let map_pins: Vec<(&str, PathBuf)> = MAPS.iter().map(|m| (*m, pin_dir.join(m))).collect();
        let mut loader = EbpfLoader::new();
        for (name, path) in &map_pins {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(SOCK_LB).context(
            "loading the socket load-balancing programs (needs BPF and cgroup2 support)",
        )?;
        let cgroup_fd =
            File::open(cgroup).with_context(|| format!("opening {}", cgroup.display()))?;
        for name in PROGRAMS {
            let program: &mut CgroupSockAddr = ebpf
                .program_mut(name)
                .with_context(|| format!("{name} missing from the object"))?
                .try_into()?;
            program.load().with_context(|| format!("loading {name}"))?;
            let link_id = program
                .attach(&cgroup_fd, CgroupAttachMode::Single)
                .with_context(|| format!("attaching {name} to {}", cgroup.display()))?;
            let link: FdLink = program
                .take_link(link_id)?
                .try_into()
                .context("the kernel gave no bpf_link (needs Linux 5.7+)")?;
            let pin = pin_dir.join(format!("link_{name}"));
            // bpffs refuses names with dots.
            let fresh = pin_dir.join(format!("link_{name}_new"));
            let _ = std::fs::remove_file(&fresh);
            link.pin(&fresh)
                .with_context(|| format!("pinning {name}'s link"))?;
            // The previous agent's link goes only now: no moment without translation.
            if let Ok(old) = PinnedLink::from_pin(&pin) {
                old.unpin()?;
            }
            std::fs::rename(&fresh, &pin)?;
        }
        let services = BpfHashMap::try_from(
            ebpf.take_map("skiff_lb4_services")
                .context("services map")?,
        )?;
        let backends = BpfHashMap::try_from(
            ebpf.take_map("skiff_lb4_backends")
                .context("backends map")?,
        )?;
        let mut datapath = Datapath {
            services,
            backends,
            programmed: HashMap::new(),
            backend_ids: HashMap::new(),
            next_backend_id: 1,
            next_rev_nat: 1,
            legacy_backends: Vec::new(),
            _ebpf: ebpf,
        };
        // A restarted agent finds the maps full: it records what the old one wrote as stale,
        // so the first sync rewrites every wanted frontend in place (never deleting one still
        // wanted) and removes the rest.
        datapath.adopt_existing()?;
        Ok(datapath)
    }

    /// Reads what a previous agent left so the first [`Datapath::apply`] removes what is no
    /// longer wanted.
    fn adopt_existing(&mut self) -> anyhow::Result<()> {
        let mut slot0 = Vec::new();
        for entry in self.services.iter() {
            let (key, value) = entry?;
            if key.slot == 0 {
                slot0.push((key, value));
            }
        }
        for (key, value) in slot0 {
            let address = Ipv4Addr::from(u32::from_be(key.address));
            let port = u16::from_be(key.dport);
            let mut backend_ids = Vec::new();
            for slot in 1..=value.count {
                if let Ok(s) = self.services.get(&Lb4Key { slot, ..key }, 0) {
                    backend_ids.push(s.backend_id);
                }
            }
            self.next_rev_nat = self.next_rev_nat.max(value.rev_nat_index.wrapping_add(1));
            self.programmed.insert(
                (address, port, key.proto),
                Programmed {
                    frontend: Frontend {
                        service: String::new(),
                        address,
                        port,
                        proto: key.proto,
                        // Unknown: forces a rewrite on the first apply.
                        backends: vec![(Ipv4Addr::UNSPECIFIED, 0)],
                        affinity_timeout: value.affinity_timeout,
                    },
                    rev_nat_index: value.rev_nat_index,
                    backend_ids,
                },
            );
        }
        let mut old_backends = Vec::new();
        for entry in self.backends.iter() {
            old_backends.push(entry?.0);
        }
        for id in &old_backends {
            self.next_backend_id = self.next_backend_id.max(id + 1);
        }
        self.legacy_backends = old_backends;
        Ok(())
    }

    fn backend_id(&mut self, address: Ipv4Addr, port: u16, proto: u8) -> anyhow::Result<u32> {
        if let Some((id, users)) = self.backend_ids.get_mut(&(address, port, proto)) {
            *users += 1;
            return Ok(*id);
        }
        let id = self.next_backend_id;
        self.next_backend_id += 1;
        self.backends
            .insert(id, maps::backend(address, port, proto), 0)
            .context("backends map full or unwritable")?;
        self.backend_ids.insert((address, port, proto), (id, 1));
        Ok(id)
    }

    fn release_backend(&mut self, id: u32) {
        let found = self
            .backend_ids
            .iter()
            .find(|(_, (i, _))| *i == id)
            .map(|(k, _)| *k);
        if let Some(key) = found {
            let entry = self.backend_ids.get_mut(&key).expect("found above");
            entry.1 -= 1;
            if entry.1 == 0 {
                self.backend_ids.remove(&key);
                let _ = self.backends.remove(&id);
            }
        }
        // Otherwise a backend the previous agent wrote: freed at the end of the first apply.
    }

    /// Makes the maps hold exactly `desired`, touching only frontends that changed. Returns
    /// how many frontends were written or removed.
    pub fn apply(&mut self, desired: &[Frontend]) -> anyhow::Result<usize> {
        let mut changed = 0;
        let mut wanted = std::collections::HashSet::new();
        for frontend in desired {
            wanted.insert(frontend.id());
            if let Some(p) = self.programmed.get(&frontend.id()) {
                if p.frontend.backends == frontend.backends
                    && p.frontend.affinity_timeout == frontend.affinity_timeout
                {
                    continue;
                }
            }
            self.write(frontend)?;
            changed += 1;
        }
        let gone: Vec<_> = self
            .programmed
            .keys()
            .filter(|k| !wanted.contains(*k))
            .copied()
            .collect();
        for id in gone {
            self.remove(id)?;
            changed += 1;
        }
        for id in std::mem::take(&mut self.legacy_backends) {
            if !self.backend_ids.values().any(|(i, _)| *i == id) {
                let _ = self.backends.remove(&id);
            }
        }
        Ok(changed)
    }

    fn write(&mut self, frontend: &Frontend) -> anyhow::Result<()> {
        let (address, port, proto) = frontend.id();
        let old = self.programmed.remove(&frontend.id());
        let rev_nat_index = match &old {
            Some(p) => p.rev_nat_index,
            None => {
                let index = self.next_rev_nat;
                self.next_rev_nat = self.next_rev_nat.wrapping_add(1).max(1);
                index
            }
        };
        let mut ids = Vec::new();
        for (ip, p) in &frontend.backends {
            ids.push(self.backend_id(*ip, *p, proto)?);
        }
        for (i, id) in ids.iter().enumerate() {
            let slot = Lb4Service {
                backend_id: *id,
                ..Default::default()
            };
            self.services
                .insert(maps::key(address, port, proto, i as u16 + 1), slot, 0)
                .context("services map full")?;
        }
        let master = Lb4Service {
            backend_id: 0,
            count: ids.len() as u16,
            rev_nat_index,
            affinity_timeout: frontend.affinity_timeout,
            flags: if ids.is_empty() { F_NO_BACKENDS } else { 0 },
        };
        self.services
            .insert(maps::key(address, port, proto, 0), master, 0)
            .context("services map full")?;
        if let Some(old) = old {
            for slot in ids.len()..old.backend_ids.len() {
                let _ = self
                    .services
                    .remove(&maps::key(address, port, proto, slot as u16 + 1));
            }
            for id in old.backend_ids {
                self.release_backend(id);
            }
        }
        self.programmed.insert(
            frontend.id(),
            Programmed {
                frontend: frontend.clone(),
                rev_nat_index,
                backend_ids: ids,
            },
        );
        Ok(())
    }

    fn remove(&mut self, id: (Ipv4Addr, u16, u8)) -> anyhow::Result<()> {
        let Some(old) = self.programmed.remove(&id) else {
            return Ok(());
        };
        let (address, port, proto) = id;
        let _ = self.services.remove(&maps::key(address, port, proto, 0));
        for slot in 0..old.backend_ids.len() {
            let _ = self
                .services
                .remove(&maps::key(address, port, proto, slot as u16 + 1));
        }
        for backend in old.backend_ids {
            self.release_backend(backend);
        }
        Ok(())
    }

    /// The frontends as programmed, in address order, for the debug listing.
    pub fn listing(&self) -> Vec<Frontend> {
        let mut out: Vec<Frontend> = self
            .programmed
            .values()
            .map(|p| p.frontend.clone())
            .collect();
        out.sort_by_key(Frontend::id);
        out
    }
}

/// Detaches the node's programs and removes its maps (unpinning is what detaches).
pub fn remove(pin_dir: &Path) -> anyhow::Result<()> {
    for name in PROGRAMS {
        if let Ok(link) = PinnedLink::from_pin(pin_dir.join(format!("link_{name}"))) {
            link.unpin()?;
        }
    }
    for name in MAPS {
        let _ = std::fs::remove_file(pin_dir.join(name));
    }
    let _ = std::fs::remove_dir(pin_dir);
    Ok(())
}
