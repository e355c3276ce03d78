//! Bad input against a running server (in this process, on loopback, no API server): random
//! and mutated packets over UDP and TCP (proptest), then a good query must still be answered
//! on both; and the specific malformed cases get the RFC's answer: another opcode NOTIMP, a
//! class other than IN REFUSED, two questions FORMERR, EDNS version 1 BADVERS, a response
//! dropped, AXFR refused, truncation to 512 bytes without EDNS.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use proptest::prelude::*;
use skiff_dns::forward::Forwarder;
use skiff_dns::handler::Handler;
use skiff_dns::metrics::Metrics;
use skiff_dns::snapshot::{self, Endpoint, Inputs, Port, Service, ServiceKind, Slice, ZoneConfig};

const GOOD: &str = "web.default.svc.cluster.local.";

/// One server for the whole test binary, on its own runtime thread.
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut inputs = Inputs::default();
                inputs.namespaces.insert("default".into());
                inputs.services.insert(
                    ("default".into(), "web".into()),
                    Service {
                        kind: ServiceKind::ClusterIp(vec!["10.96.0.20".parse().unwrap()]),
                        ports: vec![],
                        publish_not_ready: false,
                    },
                );
                // A headless service with 200 endpoints: its answer does not fit 512 bytes.
                inputs.services.insert(
                    ("default".into(), "big".into()),
                    Service {
                        kind: ServiceKind::Headless,
                        ports: vec![],
                        publish_not_ready: false,
                    },
                );
                inputs.slices.insert(
                    ("default".into(), "big-1".into()),
                    Slice {
                        service: "big".into(),
                        endpoints: (0..200u32)
                            .map(|i| Endpoint {
                                addresses: vec![std::net::IpAddr::V4(Ipv4Addr::from(
                                    0x0af4_0000 + i,
                                ))],
                                hostname: None,
                                ready: true,
                            })
                            .collect(),
                        ports: vec![Port {
                            name: "x".into(),
                            protocol: "tcp".into(),
                            port: 1,
                        }],
                    },
                );
                let config = ZoneConfig {
                    zone: Name::from_ascii("cluster.local.").unwrap(),
                    ttl: 5,
                };
                let snap = snapshot::build(&inputs, &config, 1, true);
                let handler = Handler {
                    snapshot: Arc::new(ArcSwap::from_pointee(snap)),
                    forwarder: Arc::new(Forwarder::new(&[], &[], &[addr], 64).unwrap()),
                    metrics: Arc::new(Metrics::new("dns://test".into())),
                };
                let mut server = skiff_dns::bind(&[addr], handler).await.unwrap();
                tx.send(()).unwrap();
                let result = server.block_until_done().await;
                panic!("the DNS server stopped: {result:?}");
            });
        });
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        addr
    })
}

fn query(name: &str, qtype: RecordType, edns: bool) -> Message {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
    }
    m
}

fn udp_exchange(bytes: &[u8], wait: Duration) -> Option<Message> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(wait)).unwrap();
    sock.send_to(bytes, server()).unwrap();
    let mut buf = [0u8; 65535];
    let n = sock.recv(&mut buf).ok()?;
    Some(Message::from_vec(&buf[..n]).expect("the server sent a message we cannot parse"))
}

fn tcp_exchange(bytes: &[u8]) -> Option<Message> {
    let mut s = TcpStream::connect(server()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(&(bytes.len() as u16).to_be_bytes()).unwrap();
    s.write_all(bytes).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(Message::from_vec(&buf).unwrap())
}

fn good_answer_over_both() {
    let bytes = query(GOOD, RecordType::A, true).to_vec().unwrap();
    for (proto, reply) in [
        (
            "udp",
            // A burst of junk can overflow the socket's receive buffer (the kernel counts
            // RcvbufErrors) and drop the query itself: retry, as every stub resolver does.
            (0..3)
                .find_map(|_| udp_exchange(&bytes, Duration::from_secs(1)))
                .expect("no UDP answer in 3 tries"),
        ),
        ("tcp", tcp_exchange(&bytes).expect("no TCP answer")),
    ] {
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NoError,
            "{proto}"
        );
        assert!(reply.metadata.authoritative, "{proto}: AA");
        assert!(reply.metadata.recursion_available, "{proto}: RA");
        assert_eq!(reply.metadata.id, 0x1234);
        match &reply.answers[..] {
            [r] => assert_eq!(r.data, RData::A("10.96.0.20".parse().unwrap())),
            other => panic!("{proto}: {other:?}"),
        }
    }
}

fn rcode_of(m: Message) -> ResponseCode {
    udp_exchange(&m.to_vec().unwrap(), Duration::from_secs(3))
        .expect("no answer")
        .metadata
        .response_code
}

#[test]
fn malformed_and_unsupported_requests_get_the_rfc_answer() {
    server();
    // Another opcode: NOTIMP.
    let mut m = query(GOOD, RecordType::A, false);
    m.metadata.op_code = OpCode::Status;
    assert_eq!(rcode_of(m), ResponseCode::NotImp);
    // Class CH: REFUSED.
    let mut m = Message::new(1, MessageType::Query, OpCode::Query);
    let mut q = Query::query(Name::from_ascii("version.bind.").unwrap(), RecordType::TXT);
    q.set_query_class(DNSClass::CH);
    m.add_query(q);
    assert_eq!(rcode_of(m), ResponseCode::Refused);
    // Two questions: FORMERR.
    let mut m = query(GOOD, RecordType::A, false);
    m.add_query(Query::query(
        Name::from_ascii(GOOD).unwrap(),
        RecordType::AAAA,
    ));
    assert_eq!(rcode_of(m), ResponseCode::FormErr);
    // No question: FORMERR.
    let m = Message::new(2, MessageType::Query, OpCode::Query);
    assert_eq!(rcode_of(m), ResponseCode::FormErr);
    // EDNS version 1: BADVERS (an extended rcode, in the OPT record).
    let mut m = query(GOOD, RecordType::A, true);
    let mut e = Edns::new();
    e.set_version(1);
    m.set_edns(e);
    // 16 is both BADVERS and BADSIG (RFC 6891 / RFC 8945); the parser names it BADSIG.
    assert_eq!(u16::from(rcode_of(m)), u16::from(ResponseCode::BADVERS));
    // Zone transfer: REFUSED.
    assert_eq!(
        rcode_of(query("cluster.local.", RecordType::AXFR, false)),
        ResponseCode::Refused
    );
    // A response is not answered (no reflection).
    let mut m = query(GOOD, RecordType::A, false);
    m.metadata.message_type = MessageType::Response;
    assert!(udp_exchange(&m.to_vec().unwrap(), Duration::from_millis(300)).is_none());
    // Shorter than a header: dropped.
    assert!(udp_exchange(&[1, 2, 3], Duration::from_millis(300)).is_none());
    // Garbage after a header: FORMERR with the request's id.
    let mut bytes = query(GOOD, RecordType::A, false).to_vec().unwrap();
    bytes.truncate(20);
    let reply = udp_exchange(&bytes, Duration::from_secs(3)).expect("FORMERR expected");
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(reply.metadata.id, 0x1234);
    good_answer_over_both();
}

#[test]
fn truncation_and_edns_sizes() {
    server();
    let name = "big.default.svc.cluster.local.";
    // No EDNS: at most 512 bytes, TC set.
    let bytes = query(name, RecordType::A, false).to_vec().unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    sock.send_to(&bytes, server()).unwrap();
    let mut buf = [0u8; 65535];
    let n = sock.recv(&mut buf).unwrap();
    assert!(n <= 512, "{n} bytes without EDNS");
    let reply = Message::from_vec(&buf[..n]).unwrap();
    assert!(reply.metadata.truncation, "TC must be set");
    // EDNS 1232: at most 1232 bytes.
    let bytes = query(name, RecordType::A, true).to_vec().unwrap();
    sock.send_to(&bytes, server()).unwrap();
    let n = sock.recv(&mut buf).unwrap();
    assert!(n <= 1232, "{n} bytes with EDNS 1232");
    assert!(Message::from_vec(&buf[..n]).unwrap().metadata.truncation);
    // TCP: everything.
    let reply = tcp_exchange(&bytes).unwrap();
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), 200);
}

fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    for (at, value) in edits {
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] = *value;
        }
    }
    if let Some(cut) = cut {
        bytes.truncate(cut % (bytes.len() + 1));
    }
    bytes
}

fn packet() -> impl Strategy<Value = Vec<u8>> {
    let good = query(GOOD, RecordType::A, true).to_vec().unwrap();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..700),
        (
            proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            proptest::option::of(any::<usize>()),
        )
            .prop_map(move |(edits, cut)| mutate(good.clone(), &edits, cut)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_and_mutated_udp_packets(bytes in packet()) {
        server();
        // Any reply must parse; no reply is fine (dropped).
        let _ = udp_exchange(&bytes, Duration::from_millis(50));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_and_mutated_tcp_frames(bytes in packet(), lie in proptest::option::of(any::<u16>())) {
        server();
        let mut s = TcpStream::connect(server()).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        // A length prefix that may lie about the frame.
        let len = lie.unwrap_or(bytes.len() as u16);
        let _ = s.write_all(&len.to_be_bytes());
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
}

#[test]
fn still_answers_after_the_fuzz() {
    server();
    // Runs beside the proptest cases (tests run in parallel) and after a burst of its own.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..500 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let len = (rng % 300) as usize;
        let junk: Vec<u8> = (0..len).map(|i| (rng >> (i % 56)) as u8).collect();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let _ = sock.send_to(&junk, server());
    }
    good_answer_over_both();
}
