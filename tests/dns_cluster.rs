//! The cluster DNS addon seen from a pod of a `skiff up` cluster (issue 19's test list): busybox
//! `nslookup` of a ClusterIP service, a headless service, a StatefulSet pod's hostname, an SRV
//! record (ClusterIP and headless), PTR of a ClusterIP and of a pod IP, an ExternalName, a name
//! that does not exist (NXDOMAIN), a short name through the pod's search path, a name outside
//! the cluster forwarded to a test upstream, and a new Service resolving soon after it is
//! created (the delay is measured and printed, not asserted).
//!
//! The test upstream is a small resolver this test runs inside the cluster's `<name>-host`
//! namespace (where a Vagrant host sits; the nodes' default route): it answers `*.example.test`
//! with 192.0.2.7 (a documentation address nothing ever sends to) and NXDOMAIN otherwise. The
//! cluster gets it the way a user gives a cluster its resolver: `skiff up --resolv-conf`
//! (k3s's flag) hands the file to every kubelet, the addon's pods (dnsPolicy Default) get it as
//! their /etc/resolv.conf, and `skiff dns` forwards to its nameservers, as CoreDNS's
//! `forward . /etc/resolv.conf` does. One cluster for every check; the upstream's thread is
//! stopped and joined before `skiff down`. Needs root; prints a skip line otherwise.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

use common::cluster::{web_image, Cluster};
use common::lab;

const NODE_CIDR: &str = "192.168.79.0/24";
/// `<name>-host`'s address on the node network: the test upstream listens here.
const HOST_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 79, 1);
/// What the test upstream answers for every name under `example.test`.
const FORWARDED_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);

/// A resolver on HOST_IP:53 inside the cluster's host namespace, on a thread of this process
/// that entered that namespace (setns affects only the calling thread). Counts the questions
/// it was asked; stopped and joined on drop.
struct TestUpstream {
    stop: Arc<AtomicBool>,
    asked: Arc<Mutex<BTreeMap<String, usize>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestUpstream {
    fn start(netns: &str) -> TestUpstream {
        let stop = Arc::new(AtomicBool::new(false));
        let asked = Arc::new(Mutex::new(BTreeMap::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let path = format!("/run/netns/{netns}");
        let thread = {
            let (stop, asked) = (stop.clone(), asked.clone());
            std::thread::spawn(move || {
                let ns = std::fs::File::open(&path).expect("open the host namespace");
                // SAFETY: setns on a valid namespace fd; CLONE_NEWNET moves only this thread,
                // which owns nothing that depends on the namespace it leaves.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                let socket = UdpSocket::bind(SocketAddr::from((HOST_IP, 53))).expect("bind :53");
                socket
                    .set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                tx.send(()).unwrap();
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    let Ok(query) = Message::from_vec(&buf[..n]) else {
                        continue;
                    };
                    let Some(question) = query.queries.first().cloned() else {
                        continue;
                    };
                    let name = question.name().to_ascii().to_lowercase();
                    *asked
                        .lock()
                        .unwrap()
                        .entry(format!("{name} {}", question.query_type()))
                        .or_default() += 1;
                    let mut reply =
                        Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
                    reply.metadata.recursion_desired = query.metadata.recursion_desired;
                    reply.metadata.recursion_available = true;
                    reply.add_query(question.clone());
                    if name.ends_with(".example.test.") {
                        if question.query_type() == RecordType::A {
                            reply.add_answer(Record::from_rdata(
                                question.name().clone(),
                                60,
                                RData::A(A(FORWARDED_ANSWER)),
                            ));
                        }
                    } else {
                        reply.metadata.response_code = ResponseCode::NXDomain;
                    }
                    if let Ok(bytes) = reply.to_vec() {
                        let _ = socket.send_to(&bytes, from);
                    }
                }
            })
        };
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the test upstream did not start");
        TestUpstream {
            stop,
            asked,
            thread: Some(thread),
        }
    }

    fn asked(&self, question: &str) -> usize {
        self.asked
            .lock()
            .unwrap()
            .get(question)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `kubectl exec deploy/client -- sh -c <script>`: its stdout and stderr together.
fn in_pod(cluster: &Cluster, script: &str) -> String {
    let out = cluster.kubectl(&["exec", "deploy/client", "--", "sh", "-c", script]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `nslookup <args>` in the client pod, retried (a few times, 200 ms apart) until the output
/// contains `want`; the last output.
fn nslookup_until(cluster: &Cluster, args: &str, want: &str) -> String {
    let mut answer = String::new();
    for _ in 0..50 {
        answer = in_pod(cluster, &format!("nslookup {args} 2>&1"));
        if answer.contains(want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    answer
}

/// `a.b.c.d` → `d.c.b.a.in-addr.arpa`.
fn reverse(ip: &str) -> String {
    let mut octets: Vec<&str> = ip.split('.').collect();
    octets.reverse();
    format!("{}.in-addr.arpa", octets.join("."))
}

#[test]
fn pods_resolve_services_pods_and_forwarded_names() {
    if let Some(why) = lab::missing() {
        eprintln!("skipping dns_cluster: {why}");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let archive = web_image(work.path(), "hello from pod $(hostname)");
    let name = format!("dns{}", std::process::id());
    let kubeconfig = work.path().join("admin.kubeconfig");
    let resolv = work.path().join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {HOST_IP}\n")).unwrap();
    let (cluster, text) = Cluster::up_with(
        &name,
        2,
        NODE_CIDR,
        &archive,
        &kubeconfig,
        &["--resolv-conf", resolv.to_str().unwrap()],
    );
    assert!(
        text.contains("✓ cluster DNS (kube-system/skiff-dns"),
        "{text}"
    );
    // Declared after the cluster: stopped (and its socket closed) before `skiff down`.
    let upstream = TestUpstream::start(&format!("{name}-host"));

    cluster.apply(
        work.path(),
        "workloads",
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: client}
spec:
  replicas: 1
  selector: {matchLabels: {app: client}}
  template:
    metadata: {labels: {app: client}}
    spec:
      containers:
      - {name: web, image: skiff.local/web:1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: client}
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: http, port: 8080, protocol: TCP}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: web
        image: skiff.local/web:1
        readinessProbe: {httpGet: {port: 8080, path: /}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: www.example.test
"#,
    );
    cluster.ok(&["rollout", "status", "deployment/client", "--timeout=90s"]);
    cluster.ok(&["rollout", "status", "statefulset/db", "--timeout=90s"]);

    // The pod's resolver points at kube-dns with kubelet's search path; the addon's own pods
    // got the nodes' resolv.conf (dnsPolicy Default), whose nameserver is the test upstream.
    let resolv_in_pod = in_pod(&cluster, "cat /etc/resolv.conf");
    assert!(
        resolv_in_pod.contains("nameserver 10.96.0.10")
            && resolv_in_pod
                .contains("search default.svc.cluster.local svc.cluster.local cluster.local")
            && resolv_in_pod.contains("ndots:5"),
        "{resolv_in_pod}"
    );
    let dns_pod = cluster.ok(&[
        "get",
        "pods",
        "-n",
        "kube-system",
        "-l",
        "k8s-app=kube-dns",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let dns_log = cluster.ok(&["logs", "-n", "kube-system", &dns_pod]);
    assert!(
        dns_log.contains(&format!("upstreams: . → {HOST_IP}:53")),
        "the addon forwards to the nodes' resolv.conf: {dns_log}"
    );

    // A ClusterIP service: its ClusterIP.
    let web_ip = cluster.ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let answer = nslookup_until(&cluster, "web.default.svc.cluster.local", &web_ip);
    assert!(
        answer.contains("Name:\tweb.default.svc.cluster.local")
            && answer.contains(&format!("Address: {web_ip}")),
        "{answer}"
    );

    // A short name through the search path (ndots:5): the C library's resolver walks
    // `default.svc.cluster.local` first; busybox nc connects to what it resolved.
    let through = in_pod(&cluster, "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc web 80");
    assert!(through.contains("hello from pod client-"), "{through}");

    // A headless service: one A record per ready pod; each StatefulSet pod by its hostname.
    let db_pods = cluster.ok(&[
        "get",
        "pods",
        "-l",
        "app=db",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{\"\\n\"}{end}",
    ]);
    let db: BTreeMap<String, String> = db_pods
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(db.len(), 2, "{db_pods}");
    let answer = nslookup_until(
        &cluster,
        "db.default.svc.cluster.local",
        &format!("Address: {}", db["db-1"]),
    );
    for ip in db.values() {
        assert!(answer.contains(&format!("Address: {ip}")), "{answer}");
    }
    let answer = nslookup_until(&cluster, "db-0.db.default.svc.cluster.local", &db["db-0"]);
    assert!(
        answer.contains("Name:\tdb-0.db.default.svc.cluster.local")
            && answer.contains(&format!("Address: {}", db["db-0"]))
            && !answer.contains(&db["db-1"]),
        "{answer}"
    );

    // SRV for a named port: the ClusterIP service's name, and each headless pod's name.
    let answer = nslookup_until(
        &cluster,
        "-type=srv _http._tcp.web.default.svc.cluster.local",
        "service =",
    );
    assert!(
        answer.contains("_http._tcp.web.default.svc.cluster.local\tservice = 0 100 80 web.default.svc.cluster.local"),
        "{answer}"
    );
    let answer = nslookup_until(
        &cluster,
        "-type=srv _http._tcp.db.default.svc.cluster.local",
        "service =",
    );
    for pod in db.keys() {
        assert!(
            answer.contains(&format!(" 8080 {pod}.db.default.svc.cluster.local")),
            "{answer}"
        );
    }

    // PTR: a ClusterIP back to its service, a StatefulSet pod's IP back to its hostname.
    let answer = nslookup_until(
        &cluster,
        &format!("-type=ptr {}", reverse(&web_ip)),
        "name =",
    );
    assert!(
        answer.contains(&format!(
            "{}\tname = web.default.svc.cluster.local",
            reverse(&web_ip)
        )),
        "{answer}"
    );
    let answer = nslookup_until(
        &cluster,
        &format!("-type=ptr {}", reverse(&db["db-0"])),
        "name =",
    );
    assert!(
        answer.contains("name = db-0.db.default.svc.cluster.local"),
        "{answer}"
    );

    // A name outside the cluster: forwarded to the test upstream (and its answer passed on).
    let answer = nslookup_until(&cluster, "www.example.test", &FORWARDED_ANSWER.to_string());
    assert!(
        answer.contains("Name:\twww.example.test")
            && answer.contains(&format!("Address: {FORWARDED_ANSWER}")),
        "{answer}"
    );
    assert!(
        upstream.asked("www.example.test. A") >= 1,
        "the test upstream was asked"
    );

    // An ExternalName service: the CNAME, and its target's address from the upstream.
    let answer = nslookup_until(&cluster, "ext.default.svc.cluster.local", "canonical name");
    assert!(
        answer.contains("ext.default.svc.cluster.local\tcanonical name = www.example.test")
            && answer.contains(&format!("Address: {FORWARDED_ANSWER}")),
        "{answer}"
    );

    // A name that does not exist: NXDOMAIN (not SERVFAIL, not an empty NOERROR).
    let answer = in_pod(&cluster, "nslookup missing.default.svc.cluster.local 2>&1");
    assert!(
        answer.contains("can't find missing.default.svc.cluster.local: NXDOMAIN"),
        "{answer}"
    );
    // ... and a name outside the cluster that the upstream denies: its NXDOMAIN passed on.
    let answer = in_pod(&cluster, "nslookup nothing.invalid 2>&1");
    assert!(
        answer.contains("can't find nothing.invalid: NXDOMAIN"),
        "{answer}"
    );

    // A new Service resolves soon after it is created. A loop in the pod asks for the name
    // (NXDOMAIN until the addon has it) and prints once it resolves; the Service is created
    // while the loop runs.
    let mut watcher = Command::new("kubectl")
        .env("KUBECONFIG", &cluster.kubeconfig)
        .args(["exec", "deploy/client", "--", "sh", "-c"])
        .arg(
            "echo looping; i=0; while [ $i -lt 5000 ]; do \
               case \"$(nslookup fresh.default.svc.cluster.local 2>&1)\" in \
                 *'Name:'*fresh*) echo resolved; exit 0;; esac; i=$((i+1)); done; echo gave up",
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watcher.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "looping");
    // Let the loop see NXDOMAIN a few times first.
    std::thread::sleep(Duration::from_millis(500));
    let issued = Instant::now();
    cluster.ok(&["create", "service", "clusterip", "fresh", "--tcp=80:8080"]);
    let created = Instant::now();
    let outcome = lines.next().unwrap().unwrap();
    let resolved = Instant::now();
    let _ = watcher.wait();
    assert_eq!(outcome, "resolved");
    println!(
        "a new Service resolved from a pod {} ms after `kubectl create` returned ({} ms after it was issued)",
        resolved.duration_since(created).as_millis(),
        resolved.duration_since(issued).as_millis()
    );

    drop(upstream);
    drop(cluster);
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        !left.lines().any(|l| l.starts_with(&format!("{name}-"))),
        "namespaces left: {left}"
    );
}
