//! `skiff dns` flags. Defaults mirror CoreDNS as kubeadm and k3s deploy it: DNS on :53,
//! health on :8080, readiness on :8181, metrics on :9153, TTL 5 s, upstreams from the node's
//! resolv.conf.

use std::net::SocketAddr;
use std::path::PathBuf;

/// An upstream resolver, `IP` or `IP:PORT` (port 53 when absent).
pub fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?} is not IP or IP:PORT (e.g. 10.0.0.2 or 10.0.0.2:5353)"))
}

/// `DOMAIN=IP[:PORT]`: names under DOMAIN go to that resolver (kube-dns's stubDomains).
pub fn parse_stub(s: &str) -> Result<(String, SocketAddr), String> {
    let (domain, server) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not DOMAIN=IP[:PORT] (e.g. corp.example=10.0.0.2)"))?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() {
        return Err(format!("{s:?}: the domain is empty"));
    }
    Ok((domain, parse_upstream(server.trim())?))
}

#[derive(clap::Args, Clone, Debug)]
pub struct DnsArgs {
    /// Kubeconfig for the API server (Services, EndpointSlices, Namespaces: list and watch).
    #[arg(long, env = "SKIFF_DNS_KUBECONFIG")]
    pub kubeconfig: PathBuf,

    /// The cluster domain answered here.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,

    /// Address to answer DNS on, UDP and TCP (repeatable).
    #[arg(long = "listen", default_values = ["0.0.0.0:53"])]
    pub listen: Vec<SocketAddr>,

    /// TTL of cluster records and of negative answers (SOA minimum), in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub ttl: u32,

    /// Upstream resolver for names outside the cluster, IP[:PORT] (repeatable). Without it, the
    /// nameservers of --resolv-conf (loopback ones skipped: they would loop back here).
    #[arg(long = "upstream", value_parser = parse_upstream)]
    pub upstream: Vec<SocketAddr>,

    /// Where the upstreams come from when no --upstream is given.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,

    /// DOMAIN=IP[:PORT]: names under DOMAIN go to that resolver (repeatable).
    #[arg(long = "stub-domain", value_parser = parse_stub)]
    pub stub_domain: Vec<(String, SocketAddr)>,

    /// Entries in the cache of forwarded answers (CoreDNS: 9,984).
    #[arg(long, default_value_t = 9984)]
    pub cache_size: u64,

    /// `/health` (200 while the process serves).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub health_listen: SocketAddr,

    /// `/ready` (503 until the first sync with the API). May equal --health-listen.
    #[arg(long, default_value = "0.0.0.0:8181")]
    pub ready_listen: SocketAddr,

    /// `/metrics` (Prometheus text, CoreDNS's metric names). May equal another HTTP address.
    #[arg(long, default_value = "0.0.0.0:9153")]
    pub metrics_listen: SocketAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_and_stubs() {
        assert_eq!(
            parse_upstream("10.0.0.2").unwrap(),
            "10.0.0.2:53".parse().unwrap()
        );
        assert_eq!(
            parse_upstream("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_upstream("fd00::1").unwrap(),
            "[fd00::1]:53".parse().unwrap()
        );
        assert!(parse_upstream("dns.example").is_err());
        assert_eq!(
            parse_stub("Corp.Example.=10.0.0.2:54").unwrap(),
            ("corp.example".to_string(), "10.0.0.2:54".parse().unwrap())
        );
        assert!(parse_stub("corp").is_err());
    }
}
