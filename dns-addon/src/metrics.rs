//! CoreDNS's metric names (prometheus-client), so dashboards and alerts written for CoreDNS
//! work unchanged: `coredns_dns_requests_total`, `coredns_dns_responses_total`,
//! `coredns_dns_request_duration_seconds`, `coredns_cache_hits_total`,
//! `coredns_cache_misses_total`, `coredns_build_info`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub server: String,
    pub zone: String,
    pub proto: &'static str,
    pub family: &'static str,
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResponseLabels {
    pub server: String,
    pub zone: String,
    pub rcode: &'static str,
    pub plugin: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DurationLabels {
    pub server: String,
    pub zone: String,
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheHitLabels {
    pub server: String,
    pub r#type: &'static str,
    pub zones: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheMissLabels {
    pub server: String,
    pub zones: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
    pub revision: &'static str,
    pub goversion: &'static str,
}

/// CoreDNS's `rcode` label: the mnemonic (miekg/dns's `RcodeToString`).
pub fn rcode_label(code: hickory_proto::op::ResponseCode) -> &'static str {
    match u16::from(code) {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADVERS",
        _ => "OTHER",
    }
}

/// CoreDNS's `type` label: the common types by name, the rest as "other".
pub fn type_label(t: hickory_proto::rr::RecordType) -> &'static str {
    use hickory_proto::rr::RecordType as T;
    match t {
        T::A => "A",
        T::AAAA => "AAAA",
        T::CNAME => "CNAME",
        T::HINFO => "HINFO",
        T::MX => "MX",
        T::NS => "NS",
        T::PTR => "PTR",
        T::SOA => "SOA",
        T::SRV => "SRV",
        T::TXT => "TXT",
        T::ANY => "ANY",
        T::AXFR => "AXFR",
        T::IXFR => "IXFR",
        T::HTTPS => "HTTPS",
        T::CAA => "CAA",
        _ => "other",
    }
}

pub struct Metrics {
    registry: Registry,
    /// `dns://:53`, from the first listen address.
    pub server: String,
    requests: Family<RequestLabels, Counter>,
    responses: Family<ResponseLabels, Counter>,
    duration: Family<DurationLabels, Histogram>,
    cache_hits: Family<CacheHitLabels, Counter>,
    cache_misses: Family<CacheMissLabels, Counter>,
}

/// What one request was, for the counters.
pub struct Observation {
    pub zone: &'static str,
    pub proto: &'static str,
    pub ipv6: bool,
    pub qtype: &'static str,
    pub rcode: &'static str,
    pub plugin: &'static str,
    pub seconds: f64,
}

impl Metrics {
    pub fn new(server: String) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let responses = Family::<ResponseLabels, Counter>::default();
        // CoreDNS: 0.25 ms doubling to ~8 s.
        let duration = Family::<DurationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.00025, 2.0, 16))
        });
        let cache_hits = Family::<CacheHitLabels, Counter>::default();
        let cache_misses = Family::<CacheMissLabels, Counter>::default();
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                revision: "skiff",
                goversion: "rust",
            })
            .set(1);
        registry.register(
            "coredns_dns_requests",
            "Counter of DNS requests made per zone, protocol and family",
            requests.clone(),
        );
        registry.register(
            "coredns_dns_responses",
            "Counter of response status codes",
            responses.clone(),
        );
        registry.register(
            "coredns_dns_request_duration_seconds",
            "Histogram of the time (in seconds) each request took per zone",
            duration.clone(),
        );
        registry.register(
            "coredns_cache_hits",
            "The count of cache hits",
            cache_hits.clone(),
        );
        registry.register(
            "coredns_cache_misses",
            "The count of cache misses",
            cache_misses.clone(),
        );
        registry.register(
            "coredns_build_info",
            "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built",
            build,
        );
        Metrics {
            registry,
            server,
            requests,
            responses,
            duration,
            cache_hits,
            cache_misses,
        }
    }

    pub fn observe(&self, o: Observation) {
        self.requests
            .get_or_create(&RequestLabels {
                server: self.server.clone(),
                zone: o.zone.to_string(),
                proto: o.proto,
                family: if o.ipv6 { "2" } else { "1" },
                r#type: o.qtype,
            })
            .inc();
        self.responses
            .get_or_create(&ResponseLabels {
                server: self.server.clone(),
                zone: o.zone.to_string(),
                rcode: o.rcode,
                plugin: o.plugin,
            })
            .inc();
        self.duration
            .get_or_create(&DurationLabels {
                server: self.server.clone(),
                zone: o.zone.to_string(),
                r#type: o.qtype,
            })
            .observe(o.seconds);
    }

    /// A forwarded answer: from the cache (`denial` for NXDOMAIN/NODATA) or not.
    pub fn cache(&self, hit: bool, denial: bool) {
        if hit {
            self.cache_hits
                .get_or_create(&CacheHitLabels {
                    server: self.server.clone(),
                    r#type: if denial { "denial" } else { "success" },
                    zones: ".",
                })
                .inc();
        } else {
            self.cache_misses
                .get_or_create(&CacheMissLabels {
                    server: self.server.clone(),
                    zones: ".",
                })
                .inc();
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rcode_mnemonics() {
        use hickory_proto::op::ResponseCode;
        assert_eq!(rcode_label(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_label(ResponseCode::NoError), "NOERROR");
        assert_eq!(rcode_label(ResponseCode::ServFail), "SERVFAIL");
        assert_eq!(rcode_label(ResponseCode::BADVERS), "BADVERS");
    }

    #[test]
    fn renders_coredns_names() {
        let m = Metrics::new("dns://:53".into());
        m.observe(Observation {
            zone: ".",
            proto: "udp",
            ipv6: false,
            qtype: "A",
            rcode: "NOERROR",
            plugin: "kubernetes",
            seconds: 0.0001,
        });
        m.cache(true, false);
        m.cache(false, false);
        let text = m.render();
        for want in [
            r#"coredns_dns_requests_total{server="dns://:53",zone=".",proto="udp",family="1",type="A"} 1"#,
            r#"coredns_dns_responses_total{server="dns://:53",zone=".",rcode="NOERROR",plugin="kubernetes"} 1"#,
            r#"coredns_dns_request_duration_seconds_count{server="dns://:53",zone=".",type="A"} 1"#,
            r#"coredns_cache_hits_total{server="dns://:53",type="success",zones="."} 1"#,
            r#"coredns_cache_misses_total{server="dns://:53",zones="."} 1"#,
            r#"coredns_build_info{version=""#,
        ] {
            assert!(text.contains(want), "missing {want} in\n{text}");
        }
    }
}
