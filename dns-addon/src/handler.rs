//! The hickory glue: one `RequestHandler` that answers cluster names from the current snapshot
//! and hands the rest to the forwarder.
//!
//! Why not hickory's `Catalog` with a `ZoneHandler`: the Catalog leaves RA unset on
//! authoritative answers, does not chase an ExternalName's CNAME into the forwarder, and hides
//! which part answered (the `plugin` label of `coredns_dns_responses_total`). Here the whole
//! response is ours: header flags, sections, EDNS. Parsing, truncation to the client's UDP
//! size and the wire encoding stay hickory's (`hickory-server` drops packets shorter than a
//! header and responses, and answers FORMERR to ones it cannot parse).

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, LowerName, Name, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use crate::forward::Forwarder;
use crate::metrics::{rcode_label, type_label, Metrics, Observation};
use crate::snapshot::{Answer, Snapshot};

/// The largest UDP response we send, whatever the client offers (RFC 9715's advice is 1232;
/// a client asking for more gets at most this).
pub const MAX_UDP_PAYLOAD: u16 = 4096;

/// CNAME chains inside the cluster zone are followed at most this far.
const MAX_CHASE: usize = 8;

pub struct Handler {
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    pub forwarder: Arc<Forwarder>,
    pub metrics: Arc<Metrics>,
}

/// A response before encoding.
struct Reply {
    rcode: ResponseCode,
    authoritative: bool,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
    /// The `plugin` label: which part answered.
    plugin: &'static str,
}

impl Reply {
    fn error(rcode: ResponseCode) -> Reply {
        Reply {
            rcode,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            plugin: "",
        }
    }
}

impl Handler {
    /// The reply to one question (class IN).
    async fn resolve(&self, qname: &LowerName, qtype: RecordType) -> Reply {
        if self.forwarder.saw_probe(qname) && self.forwarder.looped() {
            return Reply::error(ResponseCode::ServFail);
        }
        let snapshot = self.snapshot.load_full();
        match snapshot.answer(qname, qtype) {
            Answer::Forward => self.forwarded(&Name::from(qname), qtype).await,
            Answer::Cname { record, target } => {
                self.chase(&snapshot, vec![record], target, qtype).await
            }
            other => authoritative(other),
        }
    }

    async fn forwarded(&self, qname: &Name, qtype: RecordType) -> Reply {
        let f = self.forwarder.forward(qname, qtype).await;
        let ok = matches!(f.rcode, ResponseCode::NoError | ResponseCode::NXDomain);
        if ok {
            self.metrics.cache(f.cached, f.answers.is_empty());
        }
        Reply {
            rcode: f.rcode,
            authoritative: false,
            answers: f.answers,
            authorities: f.authorities,
            additionals: Vec::new(),
            plugin: if f.cached { "cache" } else { "forward" },
        }
    }

    /// An ExternalName's CNAME, followed into the zone or the upstreams so the client gets the
    /// addresses in the same answer (as the spec's example shows).
    async fn chase(
        &self,
        snapshot: &Snapshot,
        mut chain: Vec<Record>,
        mut target: Name,
        qtype: RecordType,
    ) -> Reply {
        for _ in 0..MAX_CHASE {
            let lower = LowerName::from(&target);
            if !snapshot.in_zone(&lower) {
                let mut f = self.forwarded(&target, qtype).await;
                chain.append(&mut f.answers);
                let rcode = if f.rcode == ResponseCode::NXDomain {
                    ResponseCode::NXDomain
                } else {
                    ResponseCode::NoError
                };
                return Reply {
                    rcode,
                    authoritative: true,
                    answers: chain,
                    authorities: f.authorities,
                    additionals: Vec::new(),
                    plugin: "kubernetes",
                };
            }
            match snapshot.answer(&lower, qtype) {
                Answer::Cname {
                    record,
                    target: next,
                } => {
                    chain.push(record);
                    target = next;
                }
                Answer::Records {
                    mut answers,
                    additionals,
                } => {
                    chain.append(&mut answers);
                    return authoritative(Answer::Records {
                        answers: chain,
                        additionals,
                    });
                }
                other => {
                    let mut reply = authoritative(other);
                    chain.append(&mut reply.answers);
                    reply.answers = chain;
                    return reply;
                }
            }
        }
        // A CNAME loop inside the zone.
        Reply::error(ResponseCode::ServFail)
    }
}

fn authoritative(answer: Answer) -> Reply {
    let mut reply = Reply {
        authoritative: true,
        plugin: "kubernetes",
        ..Reply::error(ResponseCode::NoError)
    };
    match answer {
        Answer::Records {
            answers,
            additionals,
        } => {
            reply.answers = answers;
            reply.additionals = additionals;
        }
        Answer::NoData { soa } => reply.authorities = vec![soa],
        Answer::NxDomain { soa } => {
            reply.rcode = ResponseCode::NXDomain;
            reply.authorities = vec![soa];
        }
        Answer::Cname { record, .. } => reply.answers = vec![record],
        Answer::NotReady | Answer::Forward => {
            reply.rcode = ResponseCode::ServFail;
            reply.authoritative = false;
        }
    }
    reply
}

fn failed_info(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let start = Instant::now();
        let queries = request.queries.queries();
        let qtype = queries
            .first()
            .map(|q| q.query_type())
            .unwrap_or(RecordType::Unknown(0));

        // EDNS: answer with our own OPT, the client's UDP size within [512, MAX_UDP_PAYLOAD];
        // a version above 0 is BADVERS (RFC 6891 §6.1.3).
        let response_edns = request.edns.as_ref().map(|req| {
            let mut edns = Edns::new();
            edns.set_max_payload(req.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            edns.set_version(0);
            edns
        });
        let bad_version = request.edns.as_ref().is_some_and(|e| e.version() > 0);

        let reply = if request.metadata.op_code != OpCode::Query {
            Reply::error(ResponseCode::NotImp)
        } else if bad_version {
            Reply::error(ResponseCode::BADVERS)
        } else if queries.len() != 1 {
            Reply::error(ResponseCode::FormErr)
        } else if queries[0].query_class() != DNSClass::IN {
            Reply::error(ResponseCode::Refused)
        } else if matches!(qtype, RecordType::AXFR | RecordType::IXFR | RecordType::OPT) {
            Reply::error(if qtype == RecordType::OPT {
                ResponseCode::FormErr
            } else {
                ResponseCode::Refused
            })
        } else {
            self.resolve(queries[0].name(), qtype).await
        };

        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = reply.authoritative;
        // Recursion is available: names outside the zone are resolved through the upstreams.
        metadata.recursion_available = true;
        metadata.response_code = reply.rcode;

        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &response_edns {
            builder.edns(edns);
        }
        let response = builder.build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            std::iter::empty(),
            reply.additionals.iter(),
        );
        let info = match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "sending a response failed");
                failed_info(request)
            }
        };
        self.metrics.observe(Observation {
            zone: ".",
            proto: match request.protocol() {
                Protocol::Udp => "udp",
                _ => "tcp",
            },
            ipv6: request.src().is_ipv6(),
            qtype: type_label(qtype),
            rcode: rcode_label(reply.rcode),
            plugin: reply.plugin,
            seconds: start.elapsed().as_secs_f64(),
        });
        info
    }
}
