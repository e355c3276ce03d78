//! The loop guard: two servers that forward to each other (the classic resolv.conf loop, with
//! two hops so the start-up check on our own listen address cannot see it). Each one's probe
//! comes back to it; forwarding turns off and names outside the zone answer SERVFAIL quickly
//! instead of bouncing between the two, while cluster names still answer.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use skiff_dns::forward::Forwarder;
use skiff_dns::handler::Handler;
use skiff_dns::metrics::Metrics;
use skiff_dns::snapshot::{self, Inputs, ZoneConfig};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ask(server: SocketAddr, name: &str) -> Option<ResponseCode> {
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.send_to(&m.to_vec().unwrap(), server).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Some(Message::from_vec(&buf[..n]).unwrap().metadata.response_code)
}

#[test]
fn a_forwarding_loop_is_detected_and_stopped() {
    let a: SocketAddr = (Ipv4Addr::LOCALHOST, free_port()).into();
    let b: SocketAddr = (Ipv4Addr::LOCALHOST, free_port()).into();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut forwarders = Vec::new();
    for (me, upstream) in [(a, b), (b, a)] {
        let config = ZoneConfig {
            zone: Name::from_ascii("cluster.local.").unwrap(),
            ttl: 5,
        };
        let mut inputs = Inputs::default();
        inputs.namespaces.insert("default".into());
        let forwarder = Arc::new(Forwarder::new(&[upstream], &[], &[me], 64).unwrap());
        forwarders.push(forwarder.clone());
        let handler = Handler {
            snapshot: Arc::new(ArcSwap::from_pointee(snapshot::build(
                &inputs, &config, 1, true,
            ))),
            forwarder,
            metrics: Arc::new(Metrics::new(format!("dns://{me}"))),
        };
        let mut server = rt.block_on(skiff_dns::bind(&[me], handler)).unwrap();
        rt.spawn(async move {
            let _ = server.block_until_done().await;
        });
    }
    // The probes, as `skiff dns` sends them after binding.
    for f in &forwarders {
        let f = f.clone();
        rt.spawn(async move { f.probe_for_loops().await });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !forwarders.iter().all(|f| f.looped()) {
        assert!(Instant::now() < deadline, "the loop was never detected");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ask(a, "example.com."), Some(ResponseCode::ServFail));
    assert_eq!(ask(b, "example.com."), Some(ResponseCode::ServFail));
    // The zone is still served.
    assert_eq!(
        ask(a, "default.svc.cluster.local."),
        Some(ResponseCode::NoError)
    );
    rt.shutdown_timeout(Duration::from_secs(1));
}
