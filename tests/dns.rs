//! The cluster DNS addon against a real `skiff server`, queried with the real `dig`: a
//! ClusterIP service (A, AA and RA set, TTL 5, UDP and TCP), NODATA and NXDOMAIN with the SOA,
//! a headless service whose EndpointSlice (created here, as a controller would) carries a
//! hostname, SRV for a ClusterIP and a headless port, PTR, the `dns-version` TXT, an
//! ExternalName whose CNAME is chased through the forwarder, a new Service answering soon
//! after it is created, and a name outside the zone answered by the test upstream: a second
//! `skiff dns` on another loopback port serving the zone `upstream.test` from the same API
//! server (nothing leaves loopback), and a stub domain served by a third instance. Also `/ready`, `/health` and `/metrics`. Every process
//! is killed by its own pid when the test ends.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{free_port, skiff_bin, spawn_until_ready, ServerProcess};

/// A `skiff dns` child, killed by pid on drop.
struct Dns {
    child: Child,
    port: u16,
    ready_port: u16,
    metrics_port: u16,
    health_port: u16,
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dns {
    fn start(server: &ServerProcess, zone: &str, upstream: &str, extra: &[&str]) -> Dns {
        let (port, health_port, ready_port, metrics_port) =
            (free_port(), free_port(), free_port(), free_port());
        let mut cmd = Command::new(skiff_bin());
        cmd.arg("dns")
            .arg("--kubeconfig")
            .arg(&server.kubeconfig)
            .args(["--cluster-domain", zone])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--upstream", upstream])
            .args(["--health-listen", &format!("127.0.0.1:{health_port}")])
            .args(["--ready-listen", &format!("127.0.0.1:{ready_port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
            .args(extra)
            .env("RUST_LOG", "warn");
        let child = spawn_until_ready(cmd, "skiff dns ready", "skiff dns");
        Dns {
            child,
            port,
            ready_port,
            metrics_port,
            health_port,
        }
    }

    /// `dig @127.0.0.1 -p PORT <args>` with the header and sections shown.
    fn dig(&self, args: &[&str]) -> Dig {
        let out = Command::new("dig")
            .args(["@127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "+tries=1",
                "+time=3",
                "+noall",
                "+comments",
                "+answer",
                "+authority",
            ])
            .args(args)
            .output()
            .expect("run dig");
        Dig(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

struct Dig(String);

impl Dig {
    fn status(&self) -> &str {
        self.0
            .split("status: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or("none")
    }

    fn flags(&self) -> Vec<&str> {
        self.0
            .split("flags: ")
            .nth(1)
            .and_then(|s| s.split(';').next())
            .map(|s| s.split_whitespace().collect())
            .unwrap_or_default()
    }

    /// Records of the answer or authority section: (owner, ttl, type, data).
    fn records(&self, section: &str) -> Vec<(String, u32, String, String)> {
        let mut lines = self.0.lines();
        let header = format!(";; {section} SECTION:");
        lines.by_ref().find(|l| l.starts_with(&header));
        lines
            .take_while(|l| !l.trim().is_empty())
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 5).then(|| {
                    (
                        f[0].to_string(),
                        f[1].parse().unwrap_or(0),
                        f[3].to_string(),
                        f[4..].join(" "),
                    )
                })
            })
            .collect()
    }

    fn answers(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .records("ANSWER")
            .into_iter()
            .map(|(_, _, t, d)| format!("{t} {d}"))
            .collect();
        v.sort();
        v
    }

    fn authority_types(&self) -> Vec<String> {
        self.records("AUTHORITY")
            .into_iter()
            .map(|(_, _, t, _)| t)
            .collect()
    }
}

impl std::fmt::Debug for Dig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// GET over plain HTTP on loopback: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

const OBJECTS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: None
  ports: [{name: pg, port: 5432, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-1
  namespace: default
  labels: {kubernetes.io/service-name: db, endpointslice.kubernetes.io/managed-by: dns-test}
addressType: IPv4
ports: [{name: pg, port: 15432, protocol: TCP}]
endpoints:
- addresses: [10.244.1.5]
  hostname: db-0
  conditions: {ready: true}
- addresses: [10.244.1.6]
  conditions: {ready: true}
- addresses: [10.244.1.7]
  hostname: db-2
  conditions: {ready: false}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec:
  type: ExternalName
  externalName: kubernetes.default.svc.upstream.test
"#;

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-v").output().is_ok()
}

#[test]
fn cluster_dns_answers_from_the_api_and_forwards_the_rest() {
    if !have("dig") {
        eprintln!("skipping: dig is not installed (bind9-dnsutils; scripts/setup.sh installs it)");
        return;
    }
    let server = ServerProcess::start();
    let out = server.kubectl_stdin(&["apply", "-f", "-"], OBJECTS);
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let web_ip = server
        .kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"])
        .trim()
        .to_string();
    assert!(!web_ip.is_empty());

    // The test upstream: a second skiff dns for the zone upstream.test; its own upstream is a
    // loopback port where nothing listens.
    let dead = format!("127.0.0.1:{}", free_port());
    let upstream = Dns::start(&server, "upstream.test", &dead, &[]);
    // And a stub domain: names under stub.test go to a third instance serving that zone.
    let stub = Dns::start(&server, "stub.test", &dead, &[]);
    let dns = Dns::start(
        &server,
        "cluster.local",
        &format!("127.0.0.1:{}", upstream.port),
        &[
            "--stub-domain",
            &format!("stub.test=127.0.0.1:{}", stub.port),
        ],
    );

    // HTTP: ready after the sync, health, metrics.
    assert_eq!(http_get(dns.ready_port, "/ready").0, 200);
    assert_eq!(http_get(dns.health_port, "/health").0, 200);

    // ClusterIP: A, authoritative, recursion available, TTL 5; over UDP and TCP.
    for transport in ["+notcp", "+tcp"] {
        let d = dns.dig(&[transport, "web.default.svc.cluster.local", "A"]);
        assert_eq!(d.status(), "NOERROR", "{d:?}");
        assert_eq!(d.answers(), vec![format!("A {web_ip}")], "{d:?}");
        assert!(d.flags().contains(&"aa"), "{d:?}");
        assert!(d.flags().contains(&"ra"), "{d:?}");
        assert_eq!(d.records("ANSWER")[0].1, 5, "{d:?}");
    }
    // Case-insensitive.
    let d = dns.dig(&["WEB.Default.svc.Cluster.Local", "A"]);
    assert_eq!(d.answers(), vec![format!("A {web_ip}")], "{d:?}");

    // NODATA: the name exists, no AAAA; the SOA in authority.
    let d = dns.dig(&["web.default.svc.cluster.local", "AAAA"]);
    assert_eq!(d.status(), "NOERROR", "{d:?}");
    assert!(d.answers().is_empty(), "{d:?}");
    assert_eq!(d.authority_types(), vec!["SOA"], "{d:?}");
    // The namespace level exists too.
    let d = dns.dig(&["default.svc.cluster.local", "A"]);
    assert_eq!(d.status(), "NOERROR", "{d:?}");
    // NXDOMAIN with the SOA.
    let d = dns.dig(&["nope.default.svc.cluster.local", "A"]);
    assert_eq!(d.status(), "NXDOMAIN", "{d:?}");
    assert_eq!(d.authority_types(), vec!["SOA"], "{d:?}");
    assert!(d.flags().contains(&"aa"), "{d:?}");

    // Headless: the ready endpoints; the hostname; SRV with the endpoint port.
    let d = dns.dig(&["db.default.svc.cluster.local", "A"]);
    assert_eq!(
        d.answers(),
        vec!["A 10.244.1.5".to_string(), "A 10.244.1.6".to_string()],
        "{d:?}"
    );
    let d = dns.dig(&["db-0.db.default.svc.cluster.local", "A"]);
    assert_eq!(d.answers(), vec!["A 10.244.1.5".to_string()], "{d:?}");
    let d = dns.dig(&["db-2.db.default.svc.cluster.local", "A"]);
    assert_eq!(d.status(), "NXDOMAIN", "not ready: {d:?}");
    let d = dns.dig(&["_pg._tcp.db.default.svc.cluster.local", "SRV"]);
    assert_eq!(
        d.answers(),
        vec![
            "SRV 0 50 15432 10-244-1-6.db.default.svc.cluster.local.".to_string(),
            "SRV 0 50 15432 db-0.db.default.svc.cluster.local.".to_string(),
        ],
        "{d:?}"
    );
    // SRV of a ClusterIP service's named port.
    let d = dns.dig(&["_http._tcp.web.default.svc.cluster.local", "SRV"]);
    assert_eq!(
        d.answers(),
        vec!["SRV 0 100 80 web.default.svc.cluster.local.".to_string()],
        "{d:?}"
    );

    // PTR: the service's IP and an endpoint's.
    let d = dns.dig(&["-x", &web_ip]);
    assert_eq!(
        d.answers(),
        vec!["PTR web.default.svc.cluster.local.".to_string()],
        "{d:?}"
    );
    let d = dns.dig(&["-x", "10.244.1.5"]);
    assert_eq!(
        d.answers(),
        vec!["PTR db-0.db.default.svc.cluster.local.".to_string()],
        "{d:?}"
    );

    // Schema version and a pod record.
    let d = dns.dig(&["dns-version.cluster.local", "TXT"]);
    assert_eq!(d.answers(), vec!["TXT \"1.1.0\"".to_string()], "{d:?}");
    let d = dns.dig(&["10-244-7-8.default.pod.cluster.local", "A"]);
    assert_eq!(d.answers(), vec!["A 10.244.7.8".to_string()], "{d:?}");

    // Forwarded: a name outside the zone, answered by the test upstream (not authoritative
    // here); a second ask comes from the cache.
    for _ in 0..2 {
        let d = dns.dig(&["kubernetes.default.svc.upstream.test", "A"]);
        assert_eq!(d.status(), "NOERROR", "{d:?}");
        assert_eq!(d.answers(), vec!["A 10.96.0.1".to_string()], "{d:?}");
        assert!(!d.flags().contains(&"aa"), "{d:?}");
        assert!(d.flags().contains(&"ra"), "{d:?}");
    }
    let d = dns.dig(&["nope.upstream.test", "A"]);
    assert_eq!(d.status(), "NXDOMAIN", "{d:?}");
    // The stub domain's resolver answers its names.
    let d = dns.dig(&["web.default.svc.stub.test", "A"]);
    assert_eq!(d.answers(), vec![format!("A {web_ip}")], "{d:?}");
    assert!(!d.flags().contains(&"aa"), "{d:?}");

    // ExternalName: the CNAME, chased through the forwarder into the same answer.
    let d = dns.dig(&["ext.default.svc.cluster.local", "A"]);
    assert_eq!(d.status(), "NOERROR", "{d:?}");
    assert_eq!(
        d.answers(),
        vec![
            "A 10.96.0.1".to_string(),
            "CNAME kubernetes.default.svc.upstream.test.".to_string()
        ],
        "{d:?}"
    );

    // A new Service answers soon after it is created (polled; the deadline is generous).
    server.kubectl_ok(&["create", "service", "clusterip", "late", "--tcp=8080:8080"]);
    let created = Instant::now();
    let late_ip = server
        .kubectl_ok(&["get", "svc", "late", "-o", "jsonpath={.spec.clusterIP}"])
        .trim()
        .to_string();
    loop {
        let d = dns.dig(&["+tries=1", "late.default.svc.cluster.local", "A"]);
        if d.answers() == vec![format!("A {late_ip}")] {
            eprintln!(
                "new service answered {:?} after creation",
                created.elapsed()
            );
            break;
        }
        assert!(
            created.elapsed() < Duration::from_secs(20),
            "the new service never resolved: {d:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // And deleting it takes it away.
    server.kubectl_ok(&["delete", "service", "late"]);
    let deleted = Instant::now();
    while dns.dig(&["late.default.svc.cluster.local", "A"]).status() != "NXDOMAIN" {
        assert!(
            deleted.elapsed() < Duration::from_secs(20),
            "still answering"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Metrics under CoreDNS's names.
    let (code, text) = http_get(dns.metrics_port, "/metrics");
    assert_eq!(code, 200);
    for want in [
        "coredns_dns_requests_total{",
        "coredns_dns_responses_total{",
        r#"rcode="NXDOMAIN",plugin="kubernetes""#,
        "coredns_dns_request_duration_seconds_bucket{",
        "coredns_cache_hits_total{",
        "coredns_cache_misses_total{",
        "coredns_build_info{",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
}
