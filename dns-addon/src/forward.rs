//! Names that are not the cluster's go to upstream resolvers (CoreDNS's `forward` and `cache`
//! plugins in one place).
//!
//! Why hickory's `Resolver` rather than relaying packets: it already retries across upstreams,
//! falls back to TCP on truncation and keeps connections; `preserve_intermediates` keeps CNAME
//! chains in the answer. Its own cache is turned off and hickory's [`ResponseCache`] sits in
//! front instead, so hits and misses can be counted (`coredns_cache_*`) and the TTL bounds are
//! CoreDNS's: success at most 3600 s, denial at most 1800 s, both at least 5 s.
//!
//! Loops: an upstream that is one of our own listen addresses is refused at start, loopback
//! nameservers in resolv.conf are skipped (systemd-resolved's 127.0.0.53 would hand the query
//! back to the node's resolver, which may be us), and a probe query sent at start through the
//! upstreams (CoreDNS's `loop` plugin) turns forwarding off if it comes back to us.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::{LowerName, Name, Record, RecordType};
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::{ResponseCache, TtlConfig};

/// The outcome of forwarding one question.
#[derive(Clone, Debug)]
pub struct Forwarded {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    /// Answered from the cache.
    pub cached: bool,
}

impl Forwarded {
    fn servfail() -> Forwarded {
        Forwarded {
            rcode: ResponseCode::ServFail,
            answers: Vec::new(),
            authorities: Vec::new(),
            cached: false,
        }
    }
}

type Resolver = hickory_resolver::Resolver<TokioRuntimeProvider>;

struct Upstream {
    /// Names under this domain (the root for the default upstreams).
    domain: LowerName,
    resolver: Resolver,
    servers: Vec<SocketAddr>,
}

pub struct Forwarder {
    /// Stub domains, longest first, then the default (root) upstreams.
    upstreams: Vec<Upstream>,
    cache: ResponseCache,
    /// Set when the loop probe came back: forwarding answers SERVFAIL from then on.
    looped: AtomicBool,
    probe: Option<LowerName>,
    probe_hits: AtomicU32,
}

/// The nameservers of a resolv.conf, loopback ones skipped (they would loop).
pub fn resolv_conf_upstreams(text: &str) -> (Vec<SocketAddr>, Vec<IpAddr>) {
    let mut keep = Vec::new();
    let mut skipped = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(ip) = words
            .next()
            .and_then(|w| w.split('%').next())
            .and_then(|w| w.parse::<IpAddr>().ok())
        else {
            continue;
        };
        if ip.is_loopback() || ip.is_unspecified() {
            skipped.push(ip);
        } else {
            keep.push(SocketAddr::new(ip, 53));
        }
    }
    (keep, skipped)
}

/// Whether sending to `upstream` would reach one of our own listeners.
pub fn is_own_address(upstream: SocketAddr, listen: &[SocketAddr]) -> bool {
    listen.iter().any(|l| {
        l.port() == upstream.port()
            && (l.ip() == upstream.ip()
                || (l.ip().is_unspecified()
                    && (upstream.ip().is_loopback() || upstream.ip().is_unspecified())))
    })
}

fn resolver_for(servers: &[SocketAddr]) -> anyhow::Result<Resolver> {
    let mut config = ResolverConfig::default();
    for server in servers {
        let mut udp = ConnectionConfig::udp();
        udp.port = server.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = server.port();
        config
            .name_servers
            .push(NameServerConfig::new(server.ip(), true, vec![udp, tcp]));
    }
    let mut opts = ResolverOpts::default();
    // Our own cache is in front.
    opts.cache_size = 0;
    opts.preserve_intermediates = true;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.ndots = 0;
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    opts.recursion_desired = true;
    let resolver =
        hickory_resolver::Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()?;
    Ok(resolver)
}

fn ttl_config() -> TtlConfig {
    let mut opts = ResolverOpts::default();
    opts.positive_min_ttl = Some(Duration::from_secs(5));
    opts.negative_min_ttl = Some(Duration::from_secs(5));
    opts.positive_max_ttl = Some(Duration::from_secs(3600));
    opts.negative_max_ttl = Some(Duration::from_secs(1800));
    TtlConfig::from_opts(&opts)
}

impl Forwarder {
    /// `default` serves everything without a stub domain; empty means no forwarding (SERVFAIL).
    pub fn new(
        default: &[SocketAddr],
        stubs: &[(String, SocketAddr)],
        listen: &[SocketAddr],
        cache_size: u64,
    ) -> anyhow::Result<Forwarder> {
        for server in default.iter().chain(stubs.iter().map(|(_, s)| s)) {
            anyhow::ensure!(
                !is_own_address(*server, listen),
                "upstream {server} is this server's own listen address: forwarding to it would loop; \
                 give another --upstream"
            );
        }
        let mut upstreams = Vec::new();
        let mut domains: Vec<&String> = stubs.iter().map(|(d, _)| d).collect();
        domains.sort_by_key(|d| std::cmp::Reverse(d.len()));
        domains.dedup();
        for domain in domains {
            let servers: Vec<SocketAddr> = stubs
                .iter()
                .filter(|(d, _)| d == domain)
                .map(|(_, s)| *s)
                .collect();
            let name = Name::from_ascii(format!("{domain}."))
                .map_err(|e| anyhow::anyhow!("stub domain {domain:?}: {e}"))?;
            upstreams.push(Upstream {
                domain: LowerName::from(&name),
                resolver: resolver_for(&servers)?,
                servers,
            });
        }
        if !default.is_empty() {
            upstreams.push(Upstream {
                domain: LowerName::from(&Name::root()),
                resolver: resolver_for(default)?,
                servers: default.to_vec(),
            });
        }
        let probe = format!("{}.{}.skiff-dns-loop-check.", rand_label(), rand_label());
        Ok(Forwarder {
            upstreams,
            cache: ResponseCache::new(cache_size.max(1), ttl_config()),
            looped: AtomicBool::new(false),
            probe: Name::from_ascii(probe).ok().map(|n| LowerName::from(&n)),
            probe_hits: AtomicU32::new(0),
        })
    }

    /// The upstreams, for the start-up log.
    pub fn describe(&self) -> String {
        self.upstreams
            .iter()
            .map(|u| {
                let servers: Vec<String> = u.servers.iter().map(|s| s.to_string()).collect();
                format!("{} → {}", u.domain, servers.join(","))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Counts a query for the loop probe's name; true once it has come back (a loop).
    pub fn saw_probe(&self, qname: &LowerName) -> bool {
        if self.probe.as_ref() != Some(qname) {
            return false;
        }
        // Our own probe goes out once; seeing it at all means an upstream sent it back. CoreDNS
        // halts after the third; two keeps a slow loop from multiplying.
        let hits = self.probe_hits.fetch_add(1, Ordering::Relaxed) + 1;
        if hits >= 2 && !self.looped.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "forwarding loop detected: a query sent upstream came back to this server; \
                 forwarding is off (answers SERVFAIL). Point --upstream or --resolv-conf at a \
                 resolver that is not this server."
            );
        }
        true
    }

    /// Sends the loop probe through the default upstreams (after the listeners are up).
    pub async fn probe_for_loops(&self) {
        let Some(probe) = self.probe.clone() else {
            return;
        };
        let name = Name::from(&probe);
        let _ = self.forward(&name, RecordType::HINFO).await;
    }

    pub fn looped(&self) -> bool {
        self.looped.load(Ordering::Relaxed)
    }

    fn upstream_for(&self, qname: &LowerName) -> Option<&Upstream> {
        self.upstreams.iter().find(|u| u.domain.zone_of(qname))
    }

    /// Answers `qname`/`qtype` from the cache or the upstreams.
    pub async fn forward(&self, qname: &Name, qtype: RecordType) -> Forwarded {
        if self.looped() {
            return Forwarded::servfail();
        }
        let lower = LowerName::from(qname);
        let Some(upstream) = self.upstream_for(&lower) else {
            return Forwarded::servfail();
        };
        let query = Query::query(qname.clone(), qtype);
        if let Some(hit) = self.cache.get(&query, Instant::now()) {
            let mut out = convert(hit);
            out.cached = true;
            return out;
        }
        let result = upstream
            .resolver
            .lookup(qname.clone(), qtype)
            .await
            .map(|lookup| lookup.message().clone());
        let out = convert(result.clone());
        if matches!(out.rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
            self.cache.insert(query, result, Instant::now());
        }
        out
    }
}

fn convert(result: Result<hickory_proto::op::Message, NetError>) -> Forwarded {
    match result {
        Ok(message) => Forwarded {
            rcode: ResponseCode::NoError,
            answers: message.answers,
            authorities: Vec::new(),
            cached: false,
        },
        Err(NetError::Dns(DnsError::NoRecordsFound(no))) => Forwarded {
            rcode: no.response_code,
            answers: Vec::new(),
            authorities: no
                .soa
                .map(|soa| vec![(*soa).into_record_of_rdata()])
                .unwrap_or_default(),
            cached: false,
        },
        Err(NetError::Dns(DnsError::ResponseCode(code))) => Forwarded {
            rcode: code,
            ..Forwarded::servfail()
        },
        Err(error) => {
            tracing::debug!(%error, "forwarding failed");
            Forwarded::servfail()
        }
    }
}

fn rand_label() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", h.finish())
}

/// Shared by the handler and the start-up task.
pub type SharedForwarder = Arc<Forwarder>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_skips_loopback() {
        let (keep, skipped) = resolv_conf_upstreams(
            "# comment\nnameserver 127.0.0.53\nnameserver 10.0.2.3\nnameserver ::1\n\
             nameserver fe80::1%eth0\nsearch example\noptions edns0\n",
        );
        assert_eq!(
            keep,
            vec![
                "10.0.2.3:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(skipped.len(), 2);
    }

    #[test]
    fn own_addresses_are_recognised() {
        let any: SocketAddr = "0.0.0.0:53".parse().unwrap();
        let lo: SocketAddr = "127.0.0.1:5300".parse().unwrap();
        assert!(is_own_address("127.0.0.1:53".parse().unwrap(), &[any]));
        assert!(!is_own_address("10.0.0.2:53".parse().unwrap(), &[any]));
        assert!(is_own_address(lo, &[lo]));
        assert!(!is_own_address("127.0.0.1:5301".parse().unwrap(), &[lo]));
    }

    #[tokio::test]
    async fn own_address_as_upstream_is_refused() {
        let lo: SocketAddr = "127.0.0.1:5300".parse().unwrap();
        assert!(Forwarder::new(&[lo], &[], &[lo], 16).is_err());
    }

    #[tokio::test]
    async fn stub_domains_win_over_the_default() {
        let f = Forwarder::new(
            &["10.0.0.1:53".parse().unwrap()],
            &[
                ("corp.example".into(), "10.0.0.2:53".parse().unwrap()),
                ("a.corp.example".into(), "10.0.0.3:53".parse().unwrap()),
            ],
            &[],
            16,
        )
        .unwrap();
        let pick = |n: &str| {
            f.upstream_for(&LowerName::from(&Name::from_ascii(n).unwrap()))
                .unwrap()
                .servers[0]
                .to_string()
        };
        assert_eq!(pick("x.a.corp.example."), "10.0.0.3:53");
        assert_eq!(pick("x.corp.example."), "10.0.0.2:53");
        assert_eq!(pick("example.com."), "10.0.0.1:53");
    }
}
