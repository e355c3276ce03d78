//! The cluster's DNS records, built from trimmed API objects into one immutable snapshot.
//!
//! Why a snapshot rather than CoreDNS's answer-at-query-time over informer indexes: a query is
//! then one hash lookup with no lock held (the key is made on the stack from the question's
//! labels), and the rules of the Kubernetes DNS specification (schema 1.1.0) live in one pure
//! function, [`build`], that the unit tests exercise without a server. The watch task calls it
//! again after every change (10,000 services take a few milliseconds) and swaps the result in
//! atomically.
//!
//! Memory: the snapshot keeps per owner name only what the records need (addresses, SRV
//! port/weight/target, a PTR or CNAME target shared through an `Arc<Name>`) and makes hickory
//! `Record`s when a question asks for them. Stored as `Record`s (272 bytes each plus the owner
//! name's heap copy, an SRV's additional records beside it) 10,000 services took 52 MB of heap;
//! in this shape 7 MB (counted with a counting allocator over [`build`], 40,006 names). During a
//! rebuild the old and the new snapshot both exist for a moment.
//!
//! What it holds, for zone `<zone>` (normally `cluster.local.`):
//! - `<svc>.<ns>.svc.<zone>`: A/AAAA of the ClusterIPs; for a headless service the ready
//!   endpoints' addresses (no records at all, hence NXDOMAIN, when none is ready); CNAME for an
//!   ExternalName service.
//! - `<host>.<svc>.<ns>.svc.<zone>`: each ready endpoint, named by its `hostname` or else its
//!   address with dashes (`10-244-1-5`), as CoreDNS does (for every service, not only headless).
//! - `_<port>._<proto>.<svc>.<ns>.svc.<zone>`: SRV for named ports, with the targets' addresses
//!   as additional records.
//! - PTR under in-addr.arpa / ip6.arpa for ClusterIPs and ready endpoint addresses.
//! - `dns-version.<zone>` TXT "1.1.0", the SOA at the apex, and every ancestor of an owner name
//!   (`<ns>.svc.<zone>`, `svc.<zone>`, `_tcp.<svc>…`) as an existing empty name, so those answer
//!   NODATA, not NXDOMAIN (RFC 8020: NXDOMAIN would deny everything below). Every namespace
//!   exists as `<ns>.svc.<zone>` and `<ns>.pod.<zone>` (CoreDNS answers NODATA for an existing
//!   namespace).
//! - Pod names `a-b-c-d.<ns>.pod.<zone>` are not stored: [`Snapshot::answer`] synthesises them
//!   (CoreDNS `pods insecure`), for namespaces that exist.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

/// The schema version of the Kubernetes DNS specification answered at `dns-version.<zone>`.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// `(namespace, name)`.
pub type Key = (String, String);

/// A port of a Service or an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port {
    /// Empty for an unnamed port (which gets no SRV record).
    pub name: String,
    /// `tcp`, `udp` or `sctp`: lowercased for the `_<proto>` label.
    pub protocol: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// One or two (dual-stack) ClusterIPs.
    ClusterIp(Vec<IpAddr>),
    /// `clusterIP: None`.
    Headless,
    /// `type: ExternalName`: the target name, absolute.
    ExternalName(String),
}

/// What DNS needs of a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub kind: ServiceKind,
    pub ports: Vec<Port>,
    /// `publishNotReadyAddresses`: every endpoint counts as ready.
    pub publish_not_ready: bool,
}

/// What DNS needs of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    /// The `kubernetes.io/service-name` label: the service the slice belongs to.
    pub service: String,
    pub endpoints: Vec<Endpoint>,
    pub ports: Vec<Port>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub addresses: Vec<IpAddr>,
    pub hostname: Option<String>,
    /// `conditions.ready` (absent counts as ready, as the API says).
    pub ready: bool,
}

/// Everything the watch task has seen: trimmed Services, EndpointSlices and namespace names.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub services: BTreeMap<Key, Service>,
    pub slices: BTreeMap<Key, Slice>,
    pub namespaces: BTreeSet<String>,
}

/// Settings of the zone.
#[derive(Clone, Debug)]
pub struct ZoneConfig {
    /// Absolute, lowercase (`cluster.local.`).
    pub zone: Name,
    /// TTL of every record and the SOA minimum (the negative-caching TTL).
    pub ttl: u32,
}

/// The target of a PTR or CNAME, or a record that lives once per zone.
#[derive(Clone, Debug, PartialEq)]
enum Target {
    Ptr(Arc<Name>),
    Cname(Arc<Name>),
    /// `dns-version.<zone>`: TXT with the schema version.
    SchemaVersion,
    /// The apex: its SOA.
    Soa,
}

/// One SRV record and the addresses of its target (sent as additional records).
#[derive(Clone, Debug, PartialEq)]
struct Srv {
    weight: u16,
    port: u16,
    target: Arc<Name>,
    addrs: Box<[IpAddr]>,
}

/// What one owner name holds. Records are made when a question asks for them: a hickory
/// `Record` is 272 bytes plus its owner name's heap copy, and 10,000 services stored as
/// records (A, SRV with its additional, PTR, the empty `_tcp` level) took 52 MB; this shape
/// takes about a tenth of that. An empty node is a name that exists with no data (NODATA).
#[derive(Debug, Default)]
struct Node {
    /// A and AAAA at this name.
    addrs: Box<[IpAddr]>,
    srv: Box<[Srv]>,
    target: Option<Target>,
}

/// A node while the snapshot is built.
#[derive(Debug, Default)]
struct Draft {
    addrs: Vec<IpAddr>,
    srv: Vec<Srv>,
    target: Option<Target>,
}

/// The longest key: a name is at most 255 bytes on the wire.
const MAX_KEY: usize = 256;

/// A name as a map key, without allocating: its labels lowercased, each after its length
/// (the wire format without the root label).
struct KeyBuf {
    bytes: [u8; MAX_KEY],
    len: usize,
}

impl KeyBuf {
    fn of(name: &Name) -> KeyBuf {
        let mut k = KeyBuf {
            bytes: [0; MAX_KEY],
            len: 0,
        };
        for label in name.iter() {
            if k.len + 1 + label.len() > MAX_KEY {
                // Not a valid name (hickory keeps names within 255 bytes): never matches.
                k.len = MAX_KEY;
                break;
            }
            k.bytes[k.len] = label.len() as u8;
            k.len += 1;
            for (slot, b) in k.bytes[k.len..].iter_mut().zip(label) {
                *slot = b.to_ascii_lowercase();
            }
            k.len += label.len();
        }
        k
    }

    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The answer to one question.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// Authoritative data (NOERROR).
    Records {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// An ExternalName service: the CNAME, whose target the server chases for the same type.
    Cname { record: Record, target: Name },
    /// The name exists, not with this type: NOERROR, no answers, the SOA in authority.
    NoData { soa: Record },
    /// The name does not exist: NXDOMAIN with the SOA in authority.
    NxDomain { soa: Record },
    /// A cluster name asked before the first sync with the API: SERVFAIL, as CoreDNS.
    NotReady,
    /// Not ours (outside the zone, or a reverse name we hold nothing for): forward it.
    Forward,
}

/// The zone at one moment. Cheap to share (`Arc`), never mutated.
#[derive(Debug)]
pub struct Snapshot {
    zone: LowerName,
    ttl: u32,
    synced: bool,
    serial: u32,
    /// By [`KeyBuf`] bytes.
    nodes: HashMap<Box<[u8]>, Node>,
    namespaces: HashSet<String>,
    soa_zone: Record,
    soa_in_addr: Record,
    soa_ip6: Record,
    in_addr: LowerName,
    ip6: LowerName,
    pod_suffix_labels: usize,
}

fn name(s: &str) -> Option<Name> {
    Name::from_ascii(s).ok()
}

fn soa(origin: &Name, ttl: u32, serial: u32, zone: &Name) -> Record {
    // CoreDNS's shape: ns.dns.<zone>, hostmaster.<zone>, refresh 7200, retry 1800, expire
    // 86400, minimum = the TTL.
    let mname = Name::from_ascii("ns.dns")
        .unwrap()
        .append_domain(zone)
        .unwrap_or_else(|_| zone.clone());
    let rname = Name::from_ascii("hostmaster")
        .unwrap()
        .append_domain(origin)
        .unwrap_or_else(|_| origin.clone());
    Record::from_rdata(
        origin.clone(),
        ttl,
        RData::SOA(SOA::new(mname, rname, serial, 7200, 1800, 86400, ttl)),
    )
}

fn address_record(owner: Name, ttl: u32, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => Record::from_rdata(owner, ttl, RData::A(A(v4))),
        IpAddr::V6(v6) => Record::from_rdata(owner, ttl, RData::AAAA(AAAA(v6))),
    }
}

/// The endpoint's own label: its hostname, else its address with dashes (CoreDNS's
/// `endpointHostname`).
pub fn endpoint_label(hostname: Option<&str>, ip: IpAddr) -> String {
    match hostname {
        Some(h) if !h.is_empty() => h.to_ascii_lowercase(),
        _ => match ip {
            IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
            IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
        },
    }
}

/// The address in a pod label (`10-244-1-5`, `fd00--1`), as CoreDNS parses it.
pub fn pod_label_ip(label: &str) -> Option<IpAddr> {
    let text = if label.matches('-').count() == 3 && !label.contains("--") {
        label.replace('-', ".")
    } else {
        label.replace('-', ":")
    };
    text.parse().ok()
}

/// Builds the snapshot. Pure: the same inputs give the same records.
pub fn build(inputs: &Inputs, config: &ZoneConfig, serial: u32, synced: bool) -> Snapshot {
    let mut b = Builder {
        zone: config.zone.clone(),
        nodes: HashMap::new(),
        reverse: HashMap::new(),
    };
    let zone = config.zone.clone();
    let ttl = config.ttl;
    b.target(&zone, Target::Soa);
    if let Some(n) = name(&format!("dns-version.{zone}")) {
        b.target(&n, Target::SchemaVersion);
    }
    for fixed in ["svc", "pod"] {
        if let Some(n) = name(&format!("{fixed}.{zone}")) {
            b.exists(&n);
        }
    }
    for ns in &inputs.namespaces {
        for kind in ["svc", "pod"] {
            if let Some(n) = name(&format!("{ns}.{kind}.{zone}")) {
                b.exists(&n);
            }
        }
    }

    // Slices by service.
    let mut slices: HashMap<(&str, &str), Vec<&Slice>> = HashMap::new();
    for ((ns, _), slice) in &inputs.slices {
        slices
            .entry((ns.as_str(), slice.service.as_str()))
            .or_default()
            .push(slice);
    }

    for ((ns, svc_name), svc) in &inputs.services {
        let Some(svc_fqdn) = name(&format!("{svc_name}.{ns}.svc.{zone}")) else {
            continue;
        };
        let svc_fqdn = Arc::new(svc_fqdn);
        // A namespace with services exists even before its Namespace object is seen.
        if let Some(n) = name(&format!("{ns}.pod.{zone}")) {
            b.exists(&n);
        }
        let svc_slices = slices
            .get(&(ns.as_str(), svc_name.as_str()))
            .map(Vec::as_slice)
            .unwrap_or(&[]);

        // Ready endpoints: (label, ip), deduplicated across slices, in a stable order.
        let mut ready: BTreeMap<(String, IpAddr), ()> = BTreeMap::new();
        // Named endpoint ports (from the slices), deduplicated.
        let mut ep_ports: BTreeSet<Port> = BTreeSet::new();
        for slice in svc_slices {
            let mut any = false;
            for ep in &slice.endpoints {
                if !(ep.ready || svc.publish_not_ready) {
                    continue;
                }
                for ip in &ep.addresses {
                    ready.insert((endpoint_label(ep.hostname.as_deref(), *ip), *ip), ());
                    any = true;
                }
            }
            if any {
                ep_ports.extend(slice.ports.iter().filter(|p| !p.name.is_empty()).cloned());
            }
        }

        match &svc.kind {
            ServiceKind::ExternalName(target) => {
                let target = target.trim_end_matches('.');
                let Some(target) = name(&format!("{target}.")) else {
                    continue;
                };
                b.target(&svc_fqdn, Target::Cname(Arc::new(target)));
                continue;
            }
            ServiceKind::ClusterIp(ips) => {
                for ip in ips {
                    b.addr(&svc_fqdn, *ip);
                    b.ptr(*ip, svc_fqdn.clone(), true);
                }
                for port in svc.ports.iter().filter(|p| !p.name.is_empty()) {
                    let Some(owner) =
                        name(&format!("_{}._{}.{svc_fqdn}", port.name, port.protocol))
                    else {
                        continue;
                    };
                    b.srv(
                        &owner,
                        Srv {
                            weight: 100,
                            port: port.port,
                            target: svc_fqdn.clone(),
                            addrs: ips.clone().into_boxed_slice(),
                        },
                    );
                }
            }
            ServiceKind::Headless => {
                for (_, ip) in ready.keys() {
                    b.addr(&svc_fqdn, *ip);
                }
                // SRV: ready endpoints × named ports, weights shared equally (CoreDNS).
                let hosts: BTreeSet<&String> = ready.keys().map(|(label, _)| label).collect();
                let weight = if hosts.is_empty() {
                    0
                } else {
                    (100 / hosts.len()).max(1) as u16
                };
                let targets: Vec<(Arc<Name>, Box<[IpAddr]>)> = hosts
                    .iter()
                    .filter_map(|host| {
                        let target = name(&format!("{host}.{svc_fqdn}"))?;
                        let addrs = ready
                            .keys()
                            .filter(|(label, _)| label == *host)
                            .map(|(_, ip)| *ip)
                            .collect();
                        Some((Arc::new(target), addrs))
                    })
                    .collect();
                for port in &ep_ports {
                    let Some(owner) =
                        name(&format!("_{}._{}.{svc_fqdn}", port.name, port.protocol))
                    else {
                        continue;
                    };
                    for (target, addrs) in &targets {
                        b.srv(
                            &owner,
                            Srv {
                                weight,
                                port: port.port,
                                target: target.clone(),
                                addrs: addrs.clone(),
                            },
                        );
                    }
                }
            }
        }
        // Endpoint names, for every kind of service with endpoints (CoreDNS answers them for
        // ClusterIP services too), and their PTRs.
        for (label, ip) in ready.keys() {
            let Some(owner) = name(&format!("{label}.{svc_fqdn}")) else {
                continue;
            };
            b.addr(&owner, *ip);
            b.ptr(*ip, Arc::new(owner), false);
        }
    }

    let Builder {
        nodes: drafts,
        reverse,
        ..
    } = b;
    let mut nodes: HashMap<Box<[u8]>, Node> = HashMap::with_capacity(drafts.len() + reverse.len());
    for (key, d) in drafts {
        nodes.insert(
            key,
            Node {
                addrs: d.addrs.into_boxed_slice(),
                srv: d.srv.into_boxed_slice(),
                target: d.target,
            },
        );
    }
    for (ip, (target, _)) in reverse {
        let owner = Name::from(ip);
        nodes.insert(
            Box::from(KeyBuf::of(&owner).as_slice()),
            Node {
                target: Some(Target::Ptr(target)),
                ..Node::default()
            },
        );
    }
    let in_addr = name("in-addr.arpa.").unwrap();
    let ip6 = name("ip6.arpa.").unwrap();
    Snapshot {
        zone: LowerName::from(&zone),
        ttl,
        synced,
        serial,
        nodes,
        namespaces: inputs.namespaces.iter().cloned().collect(),
        soa_zone: soa(&zone, ttl, serial, &zone),
        soa_in_addr: soa(&in_addr, ttl, serial, &zone),
        soa_ip6: soa(&ip6, ttl, serial, &zone),
        in_addr: LowerName::from(&in_addr),
        ip6: LowerName::from(&ip6),
        pod_suffix_labels: zone.num_labels() as usize + 1,
    }
}

struct Builder {
    zone: Name,
    nodes: HashMap<Box<[u8]>, Draft>,
    /// ip → (PTR target, is a service IP). A service IP wins over an endpoint; otherwise the
    /// first (in namespace/name order) wins: one PTR per address, as CoreDNS.
    reverse: HashMap<IpAddr, (Arc<Name>, bool)>,
}

impl Builder {
    /// Marks `owner` and its ancestors down to the zone as existing; its node.
    fn exists(&mut self, owner: &Name) -> &mut Draft {
        let key = KeyBuf::of(owner);
        if !self.nodes.contains_key(key.as_slice()) {
            self.nodes
                .insert(Box::from(key.as_slice()), Draft::default());
            let mut n = owner.clone();
            while n.num_labels() > self.zone.num_labels() {
                n = n.base_name();
                let k = KeyBuf::of(&n);
                if self.nodes.contains_key(k.as_slice()) {
                    // Its ancestors were added with it.
                    break;
                }
                self.nodes.insert(Box::from(k.as_slice()), Draft::default());
            }
        }
        self.nodes.get_mut(key.as_slice()).expect("inserted above")
    }

    fn addr(&mut self, owner: &Name, ip: IpAddr) {
        let node = self.exists(owner);
        if !node.addrs.contains(&ip) {
            node.addrs.push(ip);
        }
    }

    fn srv(&mut self, owner: &Name, srv: Srv) {
        let node = self.exists(owner);
        if !node.srv.contains(&srv) {
            node.srv.push(srv);
        }
    }

    fn target(&mut self, owner: &Name, target: Target) {
        self.exists(owner).target = Some(target);
    }

    fn ptr(&mut self, ip: IpAddr, target: Arc<Name>, service: bool) {
        match self.reverse.get(&ip) {
            Some((_, true)) => {}
            Some((_, false)) if !service => {}
            _ => {
                self.reverse.insert(ip, (target, service));
            }
        }
    }
}

impl Snapshot {
    /// The zone before the first sync: every cluster name answers SERVFAIL.
    pub fn unsynced(config: &ZoneConfig) -> Snapshot {
        build(&Inputs::default(), config, 0, false)
    }

    pub fn synced(&self) -> bool {
        self.synced
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// Whether `qname` is in the cluster zone (answered here, never forwarded).
    pub fn in_zone(&self, qname: &LowerName) -> bool {
        self.zone.zone_of(qname)
    }

    /// The number of owner names held (for logs and tests).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn node(&self, qname: &LowerName) -> Option<&Node> {
        self.nodes.get(KeyBuf::of(qname).as_slice())
    }

    /// The answer to `qname`/`qtype` (class IN).
    pub fn answer(&self, qname: &LowerName, qtype: RecordType) -> Answer {
        if self.zone.zone_of(qname) {
            if !self.synced {
                return Answer::NotReady;
            }
            return match self.node(qname) {
                Some(node) => self.node_answer(qname, node, qtype, &self.soa_zone),
                None => match self.pod(qname, qtype) {
                    Some(answer) => answer,
                    None => Answer::NxDomain {
                        soa: self.soa_zone.clone(),
                    },
                },
            };
        }
        let reverse_soa = if self.in_addr.zone_of(qname) {
            &self.soa_in_addr
        } else if self.ip6.zone_of(qname) {
            &self.soa_ip6
        } else {
            return Answer::Forward;
        };
        // Reverse names we hold answer here; the rest fall through to the upstreams (kubeadm's
        // `fallthrough in-addr.arpa ip6.arpa`).
        match self.node(qname) {
            Some(node) => self.node_answer(qname, node, qtype, reverse_soa),
            None => Answer::Forward,
        }
    }

    fn node_answer(
        &self,
        qname: &LowerName,
        node: &Node,
        qtype: RecordType,
        soa: &Record,
    ) -> Answer {
        let owner = || Name::from(qname);
        let any = qtype == RecordType::ANY;
        if let Some(Target::Cname(target)) = &node.target {
            let record =
                Record::from_rdata(owner(), self.ttl, RData::CNAME(CNAME((**target).clone())));
            if qtype != RecordType::CNAME {
                return Answer::Cname {
                    record,
                    target: (**target).clone(),
                };
            }
            return Answer::Records {
                answers: vec![record],
                additionals: Vec::new(),
            };
        }
        let mut answers = Vec::new();
        for ip in node.addrs.iter() {
            let wanted = match ip {
                IpAddr::V4(_) => RecordType::A,
                IpAddr::V6(_) => RecordType::AAAA,
            };
            if any || qtype == wanted {
                answers.push(address_record(owner(), self.ttl, *ip));
            }
        }
        let mut additionals = Vec::new();
        if any || qtype == RecordType::SRV {
            for srv in node.srv.iter() {
                answers.push(Record::from_rdata(
                    owner(),
                    self.ttl,
                    RData::SRV(SRV::new(0, srv.weight, srv.port, (*srv.target).clone())),
                ));
                if qtype == RecordType::SRV {
                    for ip in srv.addrs.iter() {
                        let record = address_record((*srv.target).clone(), self.ttl, *ip);
                        if !additionals.contains(&record) {
                            additionals.push(record);
                        }
                    }
                }
            }
        }
        match &node.target {
            Some(Target::Ptr(target)) if any || qtype == RecordType::PTR => {
                answers.push(Record::from_rdata(
                    owner(),
                    self.ttl,
                    RData::PTR(PTR((**target).clone())),
                ));
            }
            Some(Target::SchemaVersion) if any || qtype == RecordType::TXT => {
                answers.push(Record::from_rdata(
                    owner(),
                    self.ttl,
                    RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])),
                ));
            }
            Some(Target::Soa) if any || qtype == RecordType::SOA => {
                answers.push(self.soa_zone.clone());
            }
            _ => {}
        }
        if answers.is_empty() {
            return Answer::NoData { soa: soa.clone() };
        }
        Answer::Records {
            answers,
            additionals,
        }
    }

    /// `a-b-c-d.<ns>.pod.<zone>` (CoreDNS `pods insecure`): the address in the name, for a
    /// namespace that exists.
    fn pod(&self, qname: &LowerName, qtype: RecordType) -> Option<Answer> {
        let name = Name::from(qname);
        if name.num_labels() as usize != self.pod_suffix_labels + 2 {
            return None;
        }
        let labels: Vec<&[u8]> = name.iter().collect();
        if labels[2] != b"pod" {
            return None;
        }
        let namespace = std::str::from_utf8(labels[1]).ok()?;
        if !self.namespaces.contains(namespace) {
            return None;
        }
        let ip = pod_label_ip(std::str::from_utf8(labels[0]).ok()?)?;
        let record = address_record(name, self.ttl, ip);
        if qtype == record.record_type() || qtype == RecordType::ANY {
            Some(Answer::Records {
                answers: vec![record],
                additionals: Vec::new(),
            })
        } else {
            Some(Answer::NoData {
                soa: self.soa_zone.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn config() -> ZoneConfig {
        ZoneConfig {
            zone: Name::from_ascii("cluster.local.").unwrap(),
            ttl: 5,
        }
    }

    fn key(ns: &str, name: &str) -> Key {
        (ns.to_string(), name.to_string())
    }

    fn port(name: &str, port: u16) -> Port {
        Port {
            name: name.into(),
            protocol: "tcp".into(),
            port,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn endpoint(addr: &str, hostname: Option<&str>, ready: bool) -> Endpoint {
        Endpoint {
            addresses: vec![ip(addr)],
            hostname: hostname.map(str::to_string),
            ready,
        }
    }

    fn inputs() -> Inputs {
        let mut i = Inputs::default();
        i.namespaces.insert("default".into());
        i.namespaces.insert("empty".into());
        i.services.insert(
            key("default", "kubernetes"),
            Service {
                kind: ServiceKind::ClusterIp(vec![ip("10.96.0.1")]),
                ports: vec![port("https", 443)],
                publish_not_ready: false,
            },
        );
        i.services.insert(
            key("default", "dual"),
            Service {
                kind: ServiceKind::ClusterIp(vec![ip("10.96.0.2"), ip("fd00::2")]),
                ports: vec![port("", 80)],
                publish_not_ready: false,
            },
        );
        i.services.insert(
            key("default", "db"),
            Service {
                kind: ServiceKind::Headless,
                ports: vec![port("pg", 5432)],
                publish_not_ready: false,
            },
        );
        i.slices.insert(
            key("default", "db-abc"),
            Slice {
                service: "db".into(),
                endpoints: vec![
                    endpoint("10.244.1.5", Some("db-0"), true),
                    endpoint("10.244.1.6", None, true),
                    endpoint("10.244.1.7", Some("db-2"), false),
                ],
                ports: vec![port("pg", 15432)],
            },
        );
        i.services.insert(
            key("default", "nothing-ready"),
            Service {
                kind: ServiceKind::Headless,
                ports: vec![],
                publish_not_ready: false,
            },
        );
        i.slices.insert(
            key("default", "nothing-ready-x"),
            Slice {
                service: "nothing-ready".into(),
                endpoints: vec![endpoint("10.244.2.1", None, false)],
                ports: vec![port("http", 80)],
            },
        );
        i.services.insert(
            key("default", "eager"),
            Service {
                kind: ServiceKind::Headless,
                ports: vec![],
                publish_not_ready: true,
            },
        );
        i.slices.insert(
            key("default", "eager-x"),
            Slice {
                service: "eager".into(),
                endpoints: vec![endpoint("10.244.3.1", None, false)],
                ports: vec![],
            },
        );
        i.services.insert(
            key("default", "ext"),
            Service {
                kind: ServiceKind::ExternalName("example.test".into()),
                ports: vec![],
                publish_not_ready: false,
            },
        );
        i
    }

    fn snap() -> Snapshot {
        build(&inputs(), &config(), 7, true)
    }

    fn ask(s: &Snapshot, q: &str, t: RecordType) -> Answer {
        s.answer(&LowerName::from(&Name::from_ascii(q).unwrap()), t)
    }

    fn ips(a: &Answer) -> Vec<IpAddr> {
        let Answer::Records { answers, .. } = a else {
            panic!("expected records, got {a:?}")
        };
        let mut v: Vec<IpAddr> = answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(A(v4)) => Some(IpAddr::V4(*v4)),
                RData::AAAA(AAAA(v6)) => Some(IpAddr::V6(*v6)),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    fn rdata(a: &Answer) -> Vec<String> {
        let Answer::Records { answers, .. } = a else {
            panic!("expected records, got {a:?}")
        };
        let mut v: Vec<String> = answers.iter().map(|r| r.data.to_string()).collect();
        v.sort();
        v
    }

    fn is_nx(a: &Answer) -> bool {
        matches!(a, Answer::NxDomain { .. })
    }

    fn is_nodata(a: &Answer) -> bool {
        matches!(a, Answer::NoData { .. })
    }

    #[test]
    fn cluster_ip_a_and_aaaa() {
        let s = snap();
        let a = ask(&s, "kubernetes.default.svc.cluster.local.", RecordType::A);
        assert_eq!(ips(&a), vec![ip("10.96.0.1")]);
        if let Answer::Records { answers, .. } = &a {
            assert_eq!(answers[0].ttl, 5);
        }
        assert!(is_nodata(&ask(
            &s,
            "kubernetes.default.svc.cluster.local.",
            RecordType::AAAA
        )));
        assert_eq!(
            ips(&ask(
                &s,
                "dual.default.svc.cluster.local.",
                RecordType::AAAA
            )),
            vec![ip("fd00::2")]
        );
        assert_eq!(
            ips(&ask(&s, "dual.default.svc.cluster.local.", RecordType::A)),
            vec![ip("10.96.0.2")]
        );
    }

    #[test]
    fn names_are_case_insensitive() {
        let s = snap();
        assert_eq!(
            ips(&ask(
                &s,
                "KuberNetes.Default.SVC.cluster.LOCAL.",
                RecordType::A
            )),
            vec![ip("10.96.0.1")]
        );
    }

    #[test]
    fn srv_for_named_ports_with_additionals() {
        let s = snap();
        let a = ask(
            &s,
            "_https._tcp.kubernetes.default.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(
            rdata(&a),
            vec!["0 100 443 kubernetes.default.svc.cluster.local."]
        );
        let Answer::Records { additionals, .. } = &a else {
            unreachable!()
        };
        assert_eq!(additionals.len(), 1);
        // Unnamed ports have none.
        assert!(is_nx(&ask(
            &s,
            "_._tcp.dual.default.svc.cluster.local.",
            RecordType::SRV
        )));
        // The `_tcp` level exists (empty non-terminal): NODATA.
        assert!(is_nodata(&ask(
            &s,
            "_tcp.kubernetes.default.svc.cluster.local.",
            RecordType::SRV
        )));
        assert!(is_nx(&ask(
            &s,
            "_http._tcp.kubernetes.default.svc.cluster.local.",
            RecordType::SRV
        )));
    }

    #[test]
    fn headless_ready_endpoints_and_hostnames() {
        let s = snap();
        assert_eq!(
            ips(&ask(&s, "db.default.svc.cluster.local.", RecordType::A)),
            vec![ip("10.244.1.5"), ip("10.244.1.6")]
        );
        assert_eq!(
            ips(&ask(
                &s,
                "db-0.db.default.svc.cluster.local.",
                RecordType::A
            )),
            vec![ip("10.244.1.5")]
        );
        assert_eq!(
            ips(&ask(
                &s,
                "10-244-1-6.db.default.svc.cluster.local.",
                RecordType::A
            )),
            vec![ip("10.244.1.6")]
        );
        // Not ready: no name.
        assert!(is_nx(&ask(
            &s,
            "db-2.db.default.svc.cluster.local.",
            RecordType::A
        )));
        let srv = ask(
            &s,
            "_pg._tcp.db.default.svc.cluster.local.",
            RecordType::SRV,
        );
        assert_eq!(
            rdata(&srv),
            vec![
                "0 50 15432 10-244-1-6.db.default.svc.cluster.local.",
                "0 50 15432 db-0.db.default.svc.cluster.local."
            ]
        );
        let Answer::Records { additionals, .. } = &srv else {
            unreachable!()
        };
        assert_eq!(additionals.len(), 2);
    }

    #[test]
    fn headless_with_nothing_ready_is_nxdomain() {
        let s = snap();
        assert!(is_nx(&ask(
            &s,
            "nothing-ready.default.svc.cluster.local.",
            RecordType::A
        )));
        assert!(is_nx(&ask(
            &s,
            "_http._tcp.nothing-ready.default.svc.cluster.local.",
            RecordType::SRV
        )));
    }

    #[test]
    fn publish_not_ready_addresses_counts_all() {
        let s = snap();
        assert_eq!(
            ips(&ask(&s, "eager.default.svc.cluster.local.", RecordType::A)),
            vec![ip("10.244.3.1")]
        );
    }

    #[test]
    fn ptr_for_services_and_endpoints() {
        let s = snap();
        let q = Name::from(ip("10.96.0.1"));
        assert_eq!(
            rdata(&s.answer(&LowerName::from(&q), RecordType::PTR)),
            vec!["kubernetes.default.svc.cluster.local."]
        );
        let q = Name::from(ip("10.244.1.5"));
        assert_eq!(
            rdata(&s.answer(&LowerName::from(&q), RecordType::PTR)),
            vec!["db-0.db.default.svc.cluster.local."]
        );
        let q = Name::from(ip("fd00::2"));
        assert!(q.to_ascii().ends_with("ip6.arpa."));
        assert_eq!(
            rdata(&s.answer(&LowerName::from(&q), RecordType::PTR)),
            vec!["dual.default.svc.cluster.local."]
        );
        // An address we know nothing about falls through to the upstreams.
        let q = Name::from(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(
            s.answer(&LowerName::from(&q), RecordType::PTR),
            Answer::Forward
        );
        let q = Name::from(IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(
            s.answer(&LowerName::from(&q), RecordType::PTR),
            Answer::Forward
        );
        // Ours, other type: NODATA with in-addr.arpa's SOA.
        let q = Name::from(ip("10.96.0.1"));
        match s.answer(&LowerName::from(&q), RecordType::A) {
            Answer::NoData { soa } => assert_eq!(soa.name.to_ascii(), "in-addr.arpa."),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn external_name_is_a_cname() {
        let s = snap();
        match ask(&s, "ext.default.svc.cluster.local.", RecordType::A) {
            Answer::Cname { record, target } => {
                assert_eq!(target.to_ascii(), "example.test.");
                assert_eq!(record.record_type(), RecordType::CNAME);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            rdata(&ask(
                &s,
                "ext.default.svc.cluster.local.",
                RecordType::CNAME
            )),
            vec!["example.test."]
        );
    }

    #[test]
    fn nxdomain_versus_nodata() {
        let s = snap();
        for existing in [
            "cluster.local.",
            "svc.cluster.local.",
            "pod.cluster.local.",
            "default.svc.cluster.local.",
            "empty.svc.cluster.local.",
            "default.pod.cluster.local.",
        ] {
            assert!(
                is_nodata(&ask(&s, existing, RecordType::A)),
                "{existing} should be NODATA"
            );
        }
        for missing in [
            "nope.default.svc.cluster.local.",
            "kubernetes.nope.svc.cluster.local.",
            "nope.svc.cluster.local.",
            "foo.cluster.local.",
            "a.b.kubernetes.default.svc.cluster.local.",
        ] {
            assert!(
                is_nx(&ask(&s, missing, RecordType::A)),
                "{missing} should be NXDOMAIN"
            );
        }
        match ask(&s, "nope.default.svc.cluster.local.", RecordType::A) {
            Answer::NxDomain { soa } => {
                assert_eq!(soa.name.to_ascii(), "cluster.local.");
                let RData::SOA(soa) = &soa.data else { panic!() };
                assert_eq!(soa.minimum, 5);
                assert_eq!(soa.serial, 7);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn apex_soa_and_dns_version() {
        let s = snap();
        assert!(matches!(
            ask(&s, "cluster.local.", RecordType::SOA),
            Answer::Records { .. }
        ));
        assert_eq!(
            rdata(&ask(&s, "dns-version.cluster.local.", RecordType::TXT)),
            vec!["1.1.0"]
        );
    }

    #[test]
    fn pod_records() {
        let s = snap();
        assert_eq!(
            ips(&ask(
                &s,
                "10-244-1-9.default.pod.cluster.local.",
                RecordType::A
            )),
            vec![ip("10.244.1.9")]
        );
        assert_eq!(
            ips(&ask(
                &s,
                "fd00--9.default.pod.cluster.local.",
                RecordType::AAAA
            )),
            vec![ip("fd00::9")]
        );
        assert!(is_nodata(&ask(
            &s,
            "10-244-1-9.default.pod.cluster.local.",
            RecordType::AAAA
        )));
        assert!(is_nx(&ask(
            &s,
            "10-244-1-9.nope.pod.cluster.local.",
            RecordType::A
        )));
        assert!(is_nx(&ask(
            &s,
            "not-an-ip.default.pod.cluster.local.",
            RecordType::A
        )));
    }

    #[test]
    fn outside_the_zone_is_forwarded_and_unsynced_is_servfail() {
        let s = snap();
        assert_eq!(ask(&s, "example.com.", RecordType::A), Answer::Forward);
        let u = Snapshot::unsynced(&config());
        assert_eq!(
            ask(&u, "kubernetes.default.svc.cluster.local.", RecordType::A),
            Answer::NotReady
        );
        assert_eq!(ask(&u, "example.com.", RecordType::A), Answer::Forward);
    }

    #[test]
    fn slices_are_deduplicated_and_other_services_ignored() {
        let mut i = inputs();
        i.slices.insert(
            key("default", "db-def"),
            Slice {
                service: "db".into(),
                endpoints: vec![endpoint("10.244.1.5", Some("db-0"), true)],
                ports: vec![port("pg", 15432)],
            },
        );
        // A slice whose service does not exist adds nothing.
        i.slices.insert(
            key("default", "ghost-x"),
            Slice {
                service: "ghost".into(),
                endpoints: vec![endpoint("10.244.9.9", None, true)],
                ports: vec![],
            },
        );
        let s = build(&i, &config(), 1, true);
        assert_eq!(
            ips(&ask(&s, "db.default.svc.cluster.local.", RecordType::A)),
            vec![ip("10.244.1.5"), ip("10.244.1.6")]
        );
        assert!(is_nx(&ask(
            &s,
            "ghost.default.svc.cluster.local.",
            RecordType::A
        )));
    }

    #[test]
    fn pod_label_parsing() {
        assert_eq!(pod_label_ip("1-2-3-4"), Some(ip("1.2.3.4")));
        assert_eq!(pod_label_ip("fd00--1"), Some(ip("fd00::1")));
        assert_eq!(pod_label_ip("1-2-3"), None);
        assert_eq!(pod_label_ip("x"), None);
        assert_eq!(endpoint_label(None, ip("fd00::1")), "fd00--1");
        assert_eq!(endpoint_label(Some("Web-0"), ip("1.2.3.4")), "web-0");
    }

    #[test]
    fn ten_thousand_services_build() {
        let mut i = Inputs::default();
        for n in 0..10_000u32 {
            i.services.insert(
                key("default", &format!("svc-{n}")),
                Service {
                    kind: ServiceKind::ClusterIp(vec![IpAddr::V4(Ipv4Addr::from(
                        0x0a60_0000 + n + 10,
                    ))]),
                    ports: vec![port("http", 80)],
                    publish_not_ready: false,
                },
            );
        }
        let s = build(&i, &config(), 1, true);
        assert_eq!(
            ips(&ask(
                &s,
                "svc-9999.default.svc.cluster.local.",
                RecordType::A
            )),
            vec![IpAddr::V4(Ipv4Addr::from(0x0a60_0000 + 9999 + 10))]
        );
    }
}
