//! The kernel side: loads `ebpf/sock_lb.c` and `ebpf/tc_lb.c` (compiled by build.rs), pins
//! their shared maps and their links under the node's own directory on a bpffs, attaches the
//! four socket programs to the node's cgroup subtree and the tc programs to the node's
//! interface (ingress, egress) and the VXLAN device (ingress), and writes frontends into the
//! maps incrementally.
//!
//! Restart safety: maps are pinned and reused by the next agent (aya's `map_pin_path` opens
//! an existing pin), links are pinned, so the datapath keeps translating while no agent runs.
//! A new agent attaches its programs first and only then unpins the old links; both programs
//! run in between (cgroup links stack) and translate alike.
//!
//! Map update order (never a half-programmed service): backends, then slots, then the
//! frontend's count; when shrinking, the count first, then the surplus slots.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::tc::TcAttachOptions;
use aya::programs::{CgroupAttachMode, CgroupSockAddr, LinkOrder, SchedClassifier, TcAttachType};
use aya::EbpfLoader;

use super::maps::{self, FrontendId, Lb4Backend, Lb4Config, Lb4Key, Lb4Service, F_NO_BACKENDS};
use super::model::Frontend;

/// The objects build.rs compiled.
static SOCK_LB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sock_lb.o"));
static TC_LB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tc_lb.o"));

const MAPS: [&str; 9] = [
    "skiff_lb4_services",
    "skiff_lb4_backends",
    "skiff_lb4_revnat",
    "skiff_lb4_affinity",
    "skiff_lb4_config",
    "skiff_lb4_node_addrs",
    "skiff_lb4_announce",
    "skiff_lb4_ct",
    "skiff_lb4_counters",
];
const PROGRAMS: [&str; 4] = [
    "skiff_sock4_connect",
    "skiff_sock4_sendmsg",
    "skiff_sock4_recvmsg",
    "skiff_sock4_getpeername",
];
/// tc programs: (name, which device, direction).
const TC_PROGRAMS: [(&str, TcDevice, TcAttachType); 3] = [
    ("skiff_tc_ingress", TcDevice::Node, TcAttachType::Ingress),
    ("skiff_tc_egress", TcDevice::Node, TcAttachType::Egress),
    ("skiff_tc_overlay", TcDevice::Overlay, TcAttachType::Ingress),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TcDevice {
    Node,
    Overlay,
}

/// Where the per-packet programs go and what they need to know about the node.
#[derive(Debug, Clone)]
pub struct TcSetup {
    /// The node's interface (NodePort and LoadBalancer traffic arrives there).
    pub iface: String,
    /// The VXLAN device (replies of forwarded flows come back through it).
    pub overlay: Option<String>,
    pub config: Lb4Config,
}

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
    node_addrs: BpfHashMap<MapData, u32, u32>,
    announce: BpfHashMap<MapData, u32, u32>,
    programmed: HashMap<FrontendId, Programmed>,
    /// Backend → (id, how many slots use it).
    backend_ids: HashMap<(Ipv4Addr, u16, u8), (u32, usize)>,
    next_backend_id: u32,
    next_rev_nat: u16,
    /// Backend ids a previous agent wrote: freed after the first full apply, once nothing
    /// points at them any more.
    legacy_backends: Vec<u32>,
    /// The per-frontend counters, until [`Datapath::take_counters`] hands them to a reader.
    counters: Option<Counters>,
    /// Keeps the programs (and their fds) alive.
    _ebpf: Vec<aya::Ebpf>,
}

/// The per-CPU counters map, read by the debug listing.
pub struct Counters(aya::maps::PerCpuArray<MapData, maps::Lb4Counters>);

impl Counters {
    /// The frontend's counters summed over the CPUs.
    pub fn get(&self, rev_nat_index: u16) -> maps::Lb4Counters {
        let mut sum = maps::Lb4Counters::default();
        if let Ok(per_cpu) = self.0.get(&u32::from(rev_nat_index), 0) {
            for c in per_cpu.iter() {
                sum.connects += c.connects;
                sum.refused += c.refused;
                sum.flows += c.flows;
                sum.dropped += c.dropped;
            }
        }
        sum
    }
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
    /// Loads (or takes over) the node's datapath in `pin_dir`, attaches the socket programs to
    /// `cgroup` and, with `tc`, the per-packet programs to the node's devices.
    pub fn load(pin_dir: &Path, cgroup: &Path, tc: Option<&TcSetup>) -> anyhow::Result<Datapath> {
        std::fs::create_dir_all(pin_dir)?;
        std::fs::create_dir_all(cgroup)
            .with_context(|| format!("creating cgroup {}", cgroup.display()))?;
        let map_pins: Vec<(&str, PathBuf)> = MAPS.iter().map(|m| (*m, pin_dir.join(m))).collect();
        let load = |object: &[u8], what: &str| {
            let mut loader = EbpfLoader::new();
            for (name, path) in &map_pins {
                loader.map_pin_path(name, path.as_path());
            }
            loader
                .load(object)
                .with_context(|| format!("loading the {what} programs (needs BPF support)"))
        };
        let mut sock = load(SOCK_LB, "socket load-balancing")?;
        let cgroup_fd =
            File::open(cgroup).with_context(|| format!("opening {}", cgroup.display()))?;
        for name in PROGRAMS {
            let program: &mut CgroupSockAddr = sock
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
            replace_pinned_link(pin_dir, name, link)?;
        }
        let mut objects = vec![];
        if let Some(tc) = tc {
            let mut per_packet = load(TC_LB, "per-packet load-balancing (tc)")?;
            let mut config: aya::maps::Array<MapData, Lb4Config> = aya::maps::Array::try_from(
                per_packet
                    .take_map("skiff_lb4_config")
                    .context("config map")?,
            )?;
            let node = Lb4Config {
                host_netns: netns_cookie()?,
                ..tc.config
            };
            config
                .set(0, node, 0)
                .context("writing the node's datapath config")?;
            for (name, device, direction) in TC_PROGRAMS {
                let iface = match device {
                    TcDevice::Node => tc.iface.as_str(),
                    TcDevice::Overlay => match &tc.overlay {
                        Some(overlay) => overlay.as_str(),
                        None => continue,
                    },
                };
                let program: &mut SchedClassifier = per_packet
                    .program_mut(name)
                    .with_context(|| format!("{name} missing from the object"))?
                    .try_into()?;
                program.load().with_context(|| format!("loading {name}"))?;
                let link_id = program
                    .attach_with_options(
                        iface,
                        direction,
                        TcAttachOptions::TcxOrder(LinkOrder::default()),
                    )
                    .with_context(|| {
                        format!("attaching {name} to {iface} (tcx needs Linux 6.6+)")
                    })?;
                let link: FdLink = program
                    .take_link(link_id)?
                    .try_into()
                    .context("the kernel gave no tcx link (needs Linux 6.6+)")?;
                replace_pinned_link(pin_dir, name, link)?;
            }
            objects.push(per_packet);
        }
        let take = |ebpf: &mut aya::Ebpf, name: &str| {
            ebpf.take_map(name)
                .with_context(|| format!("map {name} missing from the object"))
        };
        let services = BpfHashMap::try_from(take(&mut sock, "skiff_lb4_services")?)?;
        let backends = BpfHashMap::try_from(take(&mut sock, "skiff_lb4_backends")?)?;
        let node_addrs = BpfHashMap::try_from(take(&mut sock, "skiff_lb4_node_addrs")?)?;
        let announce = BpfHashMap::try_from(take(&mut sock, "skiff_lb4_announce")?)?;
        let counters = Counters(aya::maps::PerCpuArray::try_from(take(
            &mut sock,
            "skiff_lb4_counters",
        )?)?);
        if tc.is_none() {
            // The socket path reads the node's netns cookie (127.0.0.1:nodePort) from it.
            let mut config: aya::maps::Array<MapData, Lb4Config> =
                aya::maps::Array::try_from(take(&mut sock, "skiff_lb4_config")?)?;
            config.set(
                0,
                Lb4Config {
                    host_netns: netns_cookie()?,
                    ..Default::default()
                },
                0,
            )?;
        }
        objects.push(sock);
        let mut datapath = Datapath {
            services,
            backends,
            node_addrs,
            announce,
            programmed: HashMap::new(),
            backend_ids: HashMap::new(),
            next_backend_id: 1,
            next_rev_nat: 1,
            legacy_backends: Vec::new(),
            counters: Some(counters),
            _ebpf: objects,
        };
        // A restarted agent finds the maps full: it records what the old one wrote as stale,
        // so the first sync rewrites every wanted frontend in place (never deleting one still
        // wanted) and removes the rest.
        datapath.adopt_existing()?;
        Ok(datapath)
    }

    /// Makes the node-address map hold exactly `addresses` (NodePorts dialled on them from
    /// inside are translated).
    pub fn set_node_addrs(&mut self, addresses: &BTreeSet<Ipv4Addr>) -> anyhow::Result<()> {
        sync_set(&mut self.node_addrs, addresses).context("node addresses map")
    }

    /// Makes the announce map hold exactly `addresses` (ARP requests for them are answered).
    pub fn set_announced(&mut self, addresses: &BTreeSet<Ipv4Addr>) -> anyhow::Result<()> {
        sync_set(&mut self.announce, addresses).context("announce map")
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
                (address, port, key.proto, key.scope),
                Programmed {
                    frontend: Frontend {
                        service: String::new(),
                        address,
                        port,
                        proto: key.proto,
                        scope: key.scope,
                        flags: value.flags & !F_NO_BACKENDS,
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
                    && p.frontend.flags == frontend.flags
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
        let id = frontend.id();
        let proto = frontend.proto;
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
        for (i, backend_id) in ids.iter().enumerate() {
            let slot = Lb4Service {
                backend_id: *backend_id,
                ..Default::default()
            };
            self.services
                .insert(maps::key(id, i as u16 + 1), slot, 0)
                .context("services map full")?;
        }
        let master = Lb4Service {
            backend_id: 0,
            count: ids.len() as u16,
            rev_nat_index,
            affinity_timeout: frontend.affinity_timeout,
            flags: frontend.flags | if ids.is_empty() { F_NO_BACKENDS } else { 0 },
        };
        self.services
            .insert(maps::key(id, 0), master, 0)
            .context("services map full")?;
        if let Some(old) = old {
            for slot in ids.len()..old.backend_ids.len() {
                let _ = self.services.remove(&maps::key(id, slot as u16 + 1));
            }
            for backend in old.backend_ids {
                self.release_backend(backend);
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

    fn remove(&mut self, id: FrontendId) -> anyhow::Result<()> {
        let Some(old) = self.programmed.remove(&id) else {
            return Ok(());
        };
        let _ = self.services.remove(&maps::key(id, 0));
        for slot in 0..old.backend_ids.len() {
            let _ = self.services.remove(&maps::key(id, slot as u16 + 1));
        }
        for backend in old.backend_ids {
            self.release_backend(backend);
        }
        Ok(())
    }

    /// The frontends as programmed with their counter index, in address order, for the debug
    /// listing.
    pub fn listing(&self) -> Vec<(Frontend, u16)> {
        let mut out: Vec<(Frontend, u16)> = self
            .programmed
            .values()
            .map(|p| (p.frontend.clone(), p.rev_nat_index))
            .collect();
        out.sort_by_key(|(f, _)| f.id());
        out
    }

    /// The counters map, for a reader that outlives a sync (once).
    pub fn take_counters(&mut self) -> Option<Counters> {
        self.counters.take()
    }
}

/// Pins `link` as `link_<name>` and only then unpins the previous agent's: no moment without
/// the program (both run in between and translate alike).
fn replace_pinned_link(pin_dir: &Path, name: &str, link: FdLink) -> anyhow::Result<()> {
    let pin = pin_dir.join(format!("link_{name}"));
    // bpffs refuses names with dots.
    let fresh = pin_dir.join(format!("link_{name}_new"));
    let _ = std::fs::remove_file(&fresh);
    link.pin(&fresh)
        .with_context(|| format!("pinning {name}'s link"))?;
    if let Ok(old) = PinnedLink::from_pin(&pin) {
        old.unpin()?;
    }
    std::fs::rename(&fresh, &pin)?;
    Ok(())
}

/// Writes and deletes keys so `map` holds exactly `wanted`.
fn sync_set(
    map: &mut BpfHashMap<MapData, u32, u32>,
    wanted: &BTreeSet<Ipv4Addr>,
) -> anyhow::Result<()> {
    let mut present = BTreeSet::new();
    for key in map.keys() {
        present.insert(Ipv4Addr::from(u32::from_be(key?)));
    }
    for ip in wanted.difference(&present) {
        map.insert(maps::addr(*ip), 1, 0)?;
    }
    for ip in present.difference(wanted) {
        let _ = map.remove(&maps::addr(*ip));
    }
    Ok(())
}

/// This network namespace's cookie (SO_NETNS_COOKIE, Linux 5.14+): the socket programs compare
/// it with the caller's to tell the node's own loopback from a pod's.
pub fn netns_cookie() -> anyhow::Result<u64> {
    // include/uapi/asm-generic/socket.h (x86, arm64); libc does not export it for glibc.
    const SO_NETNS_COOKIE: libc::c_int = 71;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let mut cookie: u64 = 0;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: SO_NETNS_COOKIE writes a u64 into `cookie`, whose size `len` gives; the fd is
    // the live socket above.
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        anyhow::bail!(
            "reading the network namespace cookie (needs Linux 5.14+): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(cookie)
}

/// Detaches the node's programs and removes its maps (unpinning is what detaches).
pub fn remove(pin_dir: &Path) -> anyhow::Result<()> {
    for name in PROGRAMS
        .into_iter()
        .chain(TC_PROGRAMS.map(|(name, _, _)| name))
    {
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
