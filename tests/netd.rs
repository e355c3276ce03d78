//! Pod networking end to end: `skiff netd` and the `skiff-cni` plugin on three
//! network-namespace nodes (`tests/common/lab.rs` with [`LabNetwork::Netd`]), ranges from the
//! controllers' node IPAM, pods on different nodes talking over the VXLAN overlay, egress NAT
//! to a namespace the test made ("outside"), a restart of the agent under an open TCP stream,
//! a node leaving; and the plugin alone against the CNI spec's error cases. Needs root (CI is
//! root); prints a skip line otherwise. All traffic stays inside the lab's namespaces.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::lab::{self, Lab, LabNetwork};
use serde_json::{json, Value};

#[test]
fn pods_talk_across_nodes_over_the_overlay() {
    if let Some(why) = lab::missing() {
        eprintln!("skipping the pod network tests: {why}");
        return;
    }
    let mut lab = Lab::start_with(3, LabNetwork::Netd);
    let cidrs = nodes_get_ranges_and_publish_their_vteps(&lab);
    pods_reach_each_other_nodes_and_pods(&lab, &cidrs);
    egress_is_source_natted_to_the_node(&lab);
    cluster_ips_reach_backends_in_ebpf(&lab);
    node_ports_from_outside_every_node(&lab);
    load_balancer_ips_keep_the_client_and_move_when_a_node_dies(&mut lab);
    a_deployment_scaled_to_zero_refuses_then_recovers(&lab);
    a_restarted_agent_keeps_streams_open(&mut lab);
    a_node_that_leaves_is_withdrawn(&mut lab, &cidrs);
}

fn nodes_get_ranges_and_publish_their_vteps(lab: &Lab) -> Vec<String> {
    let mut cidrs = Vec::new();
    for node in &lab.nodes {
        let cidr = lab.kubectl_ok(&["get", "node", &node.name, "-o", "jsonpath={.spec.podCIDR}"]);
        assert!(
            cidr.starts_with("10.244.") && cidr.ends_with(".0/24"),
            "{cidr}"
        );
        assert!(!cidrs.contains(&cidr), "{cidr} handed out twice");
        cidrs.push(cidr);
        let annotations = lab.kubectl_ok(&[
            "get",
            "node",
            &node.name,
            "-o",
            "jsonpath={.metadata.annotations}",
        ]);
        let annotations: Value = serde_json::from_str(&annotations).unwrap();
        assert_eq!(annotations["netd.skiff.dev/public-ip"], node.ip.as_str());
        assert_eq!(annotations["netd.skiff.dev/backend-type"], "vxlan");
        let data: Value =
            serde_json::from_str(annotations["netd.skiff.dev/backend-data"].as_str().unwrap())
                .unwrap();
        assert_eq!(data["VNI"], 1);
        let network = lab.kubectl_ok(&[
            "get",
            "node",
            &node.name,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"NetworkUnavailable\")].status}",
        ]);
        assert_eq!(network, "False");
        // The device as flannel makes it: VNI 1, port 8472, no learning, MTU 1500 − 50.
        let i = lab.nodes.iter().position(|n| n.name == node.name).unwrap();
        let link = stdout(&lab.in_node(i, &["ip", "-d", "link", "show", "skiff.1"]));
        assert!(link.contains("mtu 1450"), "{link}");
        assert!(link.contains("vxlan id 1 "), "{link}");
        assert!(link.contains("dstport 8472"), "{link}");
        assert!(link.contains("nolearning"), "{link}");
        assert!(
            link.contains(data["VtepMAC"].as_str().unwrap()),
            "{link} vs {data}"
        );
    }
    // Every node routes every other node's range through the overlay.
    for (i, _) in lab.nodes.iter().enumerate() {
        let routes = stdout(&lab.in_node(i, &["ip", "route"]));
        for (j, cidr) in cidrs.iter().enumerate() {
            if i != j {
                let gateway = cidr.trim_end_matches("/24");
                let route = routes
                    .lines()
                    .find(|l| l.starts_with(&format!("{cidr} via {gateway} dev skiff.1 ")));
                assert!(
                    route.is_some_and(|r| r.contains(" onlink")),
                    "node {i}: {routes}\nnetd:\n{}",
                    lab.netd_log(i)
                );
            }
        }
    }
    cidrs
}

fn web_pod(lab: &Lab, name: &str, node: &str) -> String {
    lab.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  containers:
  - name: web
    image: skiff.local/busybox:1
    command: ["sh", "-c", "echo {name} > /tmp/index.html; httpd -f -p 8080 -h /tmp"]
"#
    ));
    lab.wait(&format!("{name} Running"), 60, || {
        lab.pod_field(name, "{.status.phase}") == "Running"
    });
    lab.pod_field(name, "{.status.podIP}")
}

/// `kubectl exec` output, whatever the exit status.
fn exec(lab: &Lab, pod: &str, script: &str) -> Output {
    lab.kubectl(&["exec", pod, "--", "sh", "-c", script])
}

fn http_from_pod(lab: &Lab, pod: &str, ip: &str) -> String {
    // busybox-static's wget crashes in glibc's static NSS; nc speaks the HTTP by hand.
    let out = exec(
        lab,
        pod,
        &format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} 8080"),
    );
    stdout(&out)
}

fn pods_reach_each_other_nodes_and_pods(lab: &Lab, cidrs: &[String]) {
    let ips: Vec<String> = (0..3)
        .map(|i| web_pod(lab, &format!("web-{i}"), &format!("node-{i}")))
        .collect();
    for (i, ip) in ips.iter().enumerate() {
        let prefix = cidrs[i].trim_end_matches("0/24");
        assert!(
            ip.starts_with(prefix),
            "web-{i} has {ip}, node range {}",
            cidrs[i]
        );
        // The pod's side: MTU of the overlay, default route via the bridge.
        let link = stdout(&exec(
            lab,
            &format!("web-{i}"),
            "ip link show eth0; ip route",
        ));
        assert!(link.contains("mtu 1450"), "{link}");
        assert!(link.contains(&format!("default via {prefix}1")), "{link}");
    }
    // Pod → pod on every other node, by TCP and ICMP.
    for i in 0..3 {
        for (j, ip) in ips.iter().enumerate() {
            if i == j {
                continue;
            }
            let answer = http_from_pod(lab, &format!("web-{i}"), ip);
            assert!(
                answer.ends_with(&format!("web-{j}\n")),
                "web-{i} → {ip}: {answer}"
            );
        }
    }
    let ping = exec(lab, "web-0", &format!("ping -c 2 -W 5 {}", ips[1]));
    assert!(ping.status.success(), "ping: {}", stdout(&ping));
    assert!(
        stdout(&ping).contains("ttl=62"),
        "two routed hops: {}",
        stdout(&ping)
    );
    // Node → its own pod and another node's pod; pod → another node.
    for (node, ip) in [(0, &ips[0]), (0, &ips[2]), (1, &ips[0])] {
        let out = lab.in_node(
            node,
            &[
                "curl",
                "-sS",
                "--max-time",
                "5",
                &format!("http://{ip}:8080/index.html"),
            ],
        );
        assert!(
            out.status.success(),
            "node {node} → {ip}: {}\n{}\n{}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            stdout(&lab.in_node(node, &["ip", "route", "get", ip])),
            stdout(&lab.in_node(node, &["ip", "-4", "addr"])),
            stdout(&lab.in_node(node, &["ip", "neigh"])),
            stdout(&lab.in_node(node, &["nft", "list", "ruleset"]))
        );
    }
    let to_node = exec(
        lab,
        "web-0",
        &format!(
            "nc -w 3 {} 10250 </dev/null && echo connected",
            lab.nodes[1].ip
        ),
    );
    assert!(
        stdout(&to_node).contains("connected"),
        "pod → node-1:10250: {to_node:?}"
    );
}

/// The lab's switch namespace gets an address and a listener that answers with the address
/// the connection came from.
fn egress_is_source_natted_to_the_node(lab: &Lab) {
    let switch = format!("{}-sw", lab.prefix);
    let run = |args: &[&str]| {
        let out = Command::new("ip")
            .args(["netns", "exec", &switch])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["ip", "addr", "add", "192.168.56.1/24", "dev", "br0"]);
    let mut listener = Command::new("ip")
        .args(["netns", "exec", &switch, "python3", "-c"])
        .arg(
            "import socket\n\
             s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('192.168.56.1', 9000)); s.listen(8); print('listening', flush=True)\n\
             while True:\n\
             \x20   c, peer = s.accept(); c.sendall((peer[0] + '\\n').encode()); c.close()\n",
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(listener.stdout.as_mut().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "listening");
    for i in [0, 2] {
        let seen = stdout(&exec(
            lab,
            &format!("web-{i}"),
            "nc -w 3 192.168.56.1 9000 </dev/null",
        ));
        assert_eq!(
            seen.trim(),
            lab.nodes[i].ip,
            "web-{i}'s traffic to the outside"
        );
    }
    // Pod to pod keeps the pod's address: web-1's httpd logs nothing, so ask the kernel.
    let rules = stdout(&lab.in_node(0, &["nft", "list", "table", "ip", "skiff-netd"]));
    assert!(rules.contains("ip daddr 10.244.0.0/16 return"), "{rules}");
    let _ = listener.kill();
    let _ = listener.wait();
}

/// The service proxy: a ClusterIP from a pod on another node balances over both backends, a
/// Service without endpoints refuses at once, UDP through a ClusterIP answers from the
/// ClusterIP (recvmsg translation), and the agent lists what it programmed.
fn cluster_ips_reach_backends_in_ebpf(lab: &Lab) {
    lab.kubectl_ok(&["label", "pod", "web-0", "web-1", "app=web"]);
    lab.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: empty}
spec:
  selector: {app: nothing}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: udp}
spec:
  ports: [{name: echo, port: 53, protocol: UDP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: udp-1, labels: {kubernetes.io/service-name: udp}}
addressType: IPv4
ports: [{name: echo, port: 9999, protocol: UDP}]
endpoints: [{addresses: ["192.168.56.11"]}]
"#,
    );
    let ip = lab.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let empty = lab.kubectl_ok(&["get", "svc", "empty", "-o", "jsonpath={.spec.clusterIP}"]);
    let udp = lab.kubectl_ok(&["get", "svc", "udp", "-o", "jsonpath={.spec.clusterIP}"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let listing = stdout(&lab.in_node(2, &["curl", "-sS", "http://127.0.0.1:10249/services"]));
        let programmed = listing
            .lines()
            .any(|l| l.starts_with(&format!("{ip}:80/TCP")) && l.matches(":8080").count() == 2);
        if programmed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node-2's proxy never programmed {ip} with two backends:\n{listing}\nnetd:\n{}",
            lab.netd_log(2)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // 30 connections from node-2's pod: both backends answer (random choice; both missing
    // has probability 2^-29).
    let answers = stdout(&exec(
        lab,
        "web-2",
        &format!("for i in $(seq 30); do printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 3 {ip} 80; done"),
    ));
    assert!(
        answers.contains("web-0\n") && answers.contains("web-1\n"),
        "{answers}"
    );
    assert_eq!(answers.matches("HTTP/1.").count(), 30, "{answers}");
    // sessionAffinity: ClientIP pins a client to one backend.
    lab.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: sticky}
spec:
  selector: {app: web}
  sessionAffinity: ClientIP
  ports: [{port: 81, targetPort: 8080}]
"#,
    );
    let sticky = lab.kubectl_ok(&["get", "svc", "sticky", "-o", "jsonpath={.spec.clusterIP}"]);
    lab.wait("node-2's proxy programs sticky", 30, || {
        stdout(&lab.in_node(2, &["curl", "-sS", "http://127.0.0.1:10249/services"]))
            .lines()
            .any(|l| l.starts_with(&format!("{sticky}:81/TCP")) && l.matches(":8080").count() == 2)
    });
    let pinned = stdout(&exec(
        lab,
        "web-2",
        &format!("for i in $(seq 20); do printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {sticky} 81 | tail -1; done"),
    ));
    let backends: std::collections::BTreeSet<&str> = pinned.lines().collect();
    assert_eq!(pinned.lines().count(), 20, "{pinned}");
    assert_eq!(backends.len(), 1, "ClientIP affinity: {pinned}");

    let refused = exec(lab, "web-2", &format!("nc -w 3 {empty} 80 </dev/null"));
    let said = String::from_utf8_lossy(&refused.stderr).into_owned() + &stdout(&refused);
    assert!(said.contains("Connection refused"), "no endpoints: {said}");

    // UDP: an echo server on node-1, a client on node-0 inside node-0's cgroup subtree (where
    // the programs are attached), which must see the reply come from the ClusterIP.
    let mut echo = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.nodes[1].netns))
        .args(["python3", "-c"])
        .arg(
            "import socket\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('192.168.56.11', 9999))\n\
             print('ready', flush=True)\n\
             while True:\n\
             \x20   data, peer = s.recvfrom(100); s.sendto(b'echo:' + data, peer)\n",
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(echo.stdout.as_mut().unwrap())
        .read_line(&mut ready)
        .unwrap();
    lab.wait("node-0's proxy programs the UDP service", 30, || {
        stdout(&lab.in_node(0, &["curl", "-sS", "http://127.0.0.1:10249/services"])).contains(
            &format!("{udp}:53/UDP ClusterIP default/udp:echo -> 192.168.56.11:9999"),
        )
    });
    let cgroup = format!(
        "/sys/fs/cgroup/unified{}/{}",
        lab.cgroup_root, lab.nodes[0].name
    );
    let client = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)\n\
         s.sendto(b'ping', ('{udp}', 53))\n\
         data, peer = s.recvfrom(100)\n\
         print(data.decode(), peer[0], peer[1])\n"
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {cgroup}/cgroup.procs && exec nsenter --net=/run/netns/{} python3 -c \"$0\"",
            lab.nodes[0].netns
        ))
        .arg(&client)
        .output()
        .unwrap();
    let _ = echo.kill();
    let _ = echo.wait();
    assert_eq!(
        stdout(&out).trim(),
        format!("echo:ping {udp} 53"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics = stdout(&lab.in_node(0, &["curl", "-sS", "http://127.0.0.1:10249/metrics"]));
    assert!(metrics.contains("skiff_proxy_frontends "), "{metrics}");
}

/// What the outside world (the switch namespace, 192.168.56.1 on the node network) gets from
/// `curl URL` within `secs` seconds: the body, or Err with curl's complaint.
fn curl_from_outside(lab: &Lab, url: &str, secs: u32) -> Result<String, String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &format!("{}-sw", lab.prefix)])
        .args(["curl", "-sS", "--max-time", &secs.to_string(), url])
        .output()
        .unwrap();
    if out.status.success() {
        // busybox httpd listens on [::] and shows IPv4 clients as [::ffff:a.b.c.d].
        Ok(stdout(&out).replace("[::ffff:", "").replace(']', ""))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Waits until node `i`'s proxy lists a line containing every one of `needles`.
fn wait_listing(lab: &Lab, i: usize, needles: &[&str]) {
    let mut last = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        last = stdout(&lab.in_node(i, &["curl", "-sS", "http://127.0.0.1:10249/services"]));
        if last.lines().any(|l| needles.iter().all(|n| l.contains(n))) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!(
        "node-{i}'s proxy never listed {needles:?}:\n{last}\nnetd:\n{}",
        lab.netd_log(i)
    );
}

/// NodePort (externalTrafficPolicy: Cluster) from outside the cluster on every node's address
/// — node-2 has no backend, so its answers come through the SNAT path over the overlay — and
/// from a pod dialling a node's address (the socket programs' wildcard).
fn node_ports_from_outside_every_node(lab: &Lab) {
    lab.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 30080}]
"#,
    );
    for i in 0..3 {
        wait_listing(
            lab,
            i,
            &["0.0.0.0:30080/TCP NodePort", "default/web-np", ":8080 "],
        );
    }
    for node in &lab.nodes {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..12 {
            let body = curl_from_outside(lab, &format!("http://{}:30080/index.html", node.ip), 5)
                .unwrap_or_else(|e| panic!("NodePort on {}: {e}", node.ip));
            seen.insert(body.trim().to_string());
        }
        // Random choice over two backends: both answer (12 misses of one: p = 2^-11).
        assert_eq!(
            seen,
            ["web-0", "web-1"].map(String::from).into(),
            "NodePort on {}",
            node.ip
        );
    }
    // A pod dialling node-1's address: translated at connect(), no packet NAT.
    let answer = stdout(&exec(
        lab,
        "web-2",
        "printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 3 192.168.56.11 30080",
    ));
    assert!(answer.contains("web-"), "{answer}");
    // The counters: 12 flows from outside on each node's packet path, and node-2's pod's one
    // connect on its socket path.
    wait_listing(
        lab,
        2,
        &[
            "0.0.0.0:30080/TCP NodePort",
            "[connects 1, refused 0, flows 12, dropped 0]",
        ],
    );
    // Only the NodePort's port is served: another port on the node's address is the node's.
    assert!(curl_from_outside(lab, "http://192.168.56.12:30099/", 3).is_err());
    // A port the datapath cannot serve is an event on the Service, not silence.
    lab.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: sctp}
spec:
  selector: {app: web}
  ports: [{name: assoc, port: 9999, protocol: SCTP}]
"#,
    );
    lab.wait("an UnsupportedProtocol event", 30, || {
        lab.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=sctp",
        ])
        .contains("UnsupportedProtocol")
    });
    lab.kubectl_ok(&["delete", "svc", "sctp"]);
}

/// A LoadBalancer Service with externalTrafficPolicy: Local and backends on node-1 and node-2:
/// the controller assigns an IP from the pool, one of those two nodes answers ARP for it, the
/// backend sees the real client address, node-0 (no backend) refuses its NodePort; then the
/// announcing node dies (agent killed, interface down) and the other takes the IP over.
fn load_balancer_ips_keep_the_client_and_move_when_a_node_dies(lab: &mut Lab) {
    for (pod, node) in [("whoami-1", "node-1"), ("whoami-2", "node-2")] {
        lab.apply(&format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {pod}, labels: {{app: whoami}}}}
spec:
  nodeName: {node}
  containers:
  - name: web
    image: skiff.local/busybox:1
    command: ["sh", "-c", "mkdir -p /w/cgi-bin && printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho {pod} $REMOTE_ADDR\n' > /w/cgi-bin/ip && busybox chmod +x /w/cgi-bin/ip && httpd -f -p 8080 -h /w"]
"#
        ));
    }
    lab.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: whoami}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: whoami}
  ports: [{port: 80, targetPort: 8080}]
"#,
    );
    for pod in ["whoami-1", "whoami-2"] {
        lab.wait(&format!("{pod} Running"), 60, || {
            lab.pod_field(pod, "{.status.phase}") == "Running"
        });
    }
    let mut ip = String::new();
    lab.wait("a LoadBalancer IP", 30, || {
        ip = lab.kubectl_ok(&[
            "get",
            "svc",
            "whoami",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ]);
        !ip.is_empty()
    });
    assert!(ip.starts_with("192.168.56.2"), "from the pool: {ip}");
    let events = lab.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=whoami",
    ]);
    assert!(events.contains("EnsuredLoadBalancer"), "{events}");
    let node_port = lab.kubectl_ok(&[
        "get",
        "svc",
        "whoami",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    for i in 1..3 {
        wait_listing(
            lab,
            i,
            &[
                &format!("{ip}:80/TCP External"),
                "externalTrafficPolicy: Local",
                ":8080",
            ],
        );
    }
    // Exactly one of node-1 and node-2 announces; node-0 has no endpoint and does not.
    let announcer = |lab: &Lab| -> Vec<usize> {
        (0..3)
            .filter(|i| lab.nodes[*i].netd.is_some())
            .filter(|i| {
                stdout(&lab.in_node(*i, &["curl", "-sS", "http://127.0.0.1:10249/services"]))
                    .contains(&format!("{ip} announced"))
            })
            .collect()
    };
    let mut first = Vec::new();
    lab.wait("one node announces the LoadBalancer IP", 30, || {
        first = announcer(lab);
        first.len() == 1
    });
    let first = first[0];
    assert_ne!(first, 0, "node-0 has no endpoint");
    // The client's address reaches the backend; the answer comes from the announcing node's pod.
    let body = curl_from_outside(lab, &format!("http://{ip}/cgi-bin/ip"), 5).unwrap();
    assert_eq!(
        body.trim(),
        format!("whoami-{first} 192.168.56.1"),
        "LoadBalancer IP"
    );
    for i in 1..3 {
        let body = curl_from_outside(
            lab,
            &format!("http://{}:{node_port}/cgi-bin/ip", lab.nodes[i].ip),
            5,
        )
        .unwrap();
        assert_eq!(
            body.trim(),
            format!("whoami-{i} 192.168.56.1"),
            "NodePort, Local"
        );
    }
    assert!(
        curl_from_outside(
            lab,
            &format!("http://192.168.56.10:{node_port}/cgi-bin/ip"),
            2
        )
        .is_err(),
        "node-0 has no local endpoint: externalTrafficPolicy Local drops there"
    );

    // The announcing node dies: its agent is killed and its interface goes down.
    lab.kill_netd(first);
    lab.in_node(first, &["ip", "link", "set", "eth0", "down"]);
    let second = 3 - first;
    lab.wait("the other node takes the LoadBalancer IP over", 40, || {
        announcer(lab) == vec![second]
    });
    let mut body = Err(String::new());
    lab.wait("the LoadBalancer IP answers again", 30, || {
        body = curl_from_outside(lab, &format!("http://{ip}/cgi-bin/ip"), 2);
        body.is_ok()
    });
    assert_eq!(
        body.unwrap().trim(),
        format!("whoami-{second} 192.168.56.1"),
        "after the failover"
    );
    // The node comes back.
    lab.in_node(first, &["ip", "link", "set", "eth0", "up"]);
    lab.start_netd(first);
    lab.wait("the node's agent is back", 30, || {
        stdout(&lab.in_node(first, &["curl", "-sS", "http://127.0.0.1:10249/healthz"])) == "ok\n"
    });
    lab.kubectl_ok(&["delete", "svc", "whoami", "web-np"]);
    lab.kubectl_ok(&["delete", "pod", "whoami-1", "whoami-2", "--grace-period=1"]);
}

/// A Deployment behind a ClusterIP scaled 3 → 0 → 3: connections are refused (not left to time
/// out) while it has no endpoint, and answered again once it has.
fn a_deployment_scaled_to_zero_refuses_then_recovers(lab: &Lab) {
    lab.kubectl_ok(&[
        "create",
        "deployment",
        "scaled",
        "--image=skiff.local/busybox:1",
        "--replicas=3",
        "--",
        "sh",
        "-c",
        "echo scaled > /tmp/index.html; httpd -f -p 8080 -h /tmp",
    ]);
    lab.kubectl_ok(&[
        "expose",
        "deployment",
        "scaled",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let ip = lab.kubectl_ok(&["get", "svc", "scaled", "-o", "jsonpath={.spec.clusterIP}"]);
    let ask = || {
        let out = exec(
            lab,
            "web-2",
            &format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 80"),
        );
        String::from_utf8_lossy(&out.stderr).into_owned() + &stdout(&out)
    };
    lab.wait("3 replicas answer", 90, || ask().contains("scaled"));
    lab.kubectl_ok(&["scale", "deployment", "scaled", "--replicas=0"]);
    let mut said = String::new();
    lab.wait("no endpoint: refused", 60, || {
        said = ask();
        said.contains("Connection refused")
    });
    lab.kubectl_ok(&["scale", "deployment", "scaled", "--replicas=3"]);
    lab.wait("answers again", 90, || ask().contains("scaled"));
    lab.kubectl_ok(&["delete", "deployment", "scaled"]);
    lab.kubectl_ok(&["delete", "svc", "scaled"]);
}

/// A TCP stream from node 0 to a pod on node 2 while every node's agent is killed and
/// restarted: the stream keeps flowing and is never reset.
fn a_restarted_agent_keeps_streams_open(lab: &mut Lab) {
    lab.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: ticker}
spec:
  nodeName: node-2
  containers:
  - name: t
    image: skiff.local/busybox:1
    command: ["nc", "-ll", "-p", "9100", "-e", "sh", "-c", "while true; do echo tick; sleep 0.1; done"]
"#,
    );
    lab.wait("ticker Running", 60, || {
        lab.pod_field("ticker", "{.status.phase}") == "Running"
    });
    let ticker_ip = lab.pod_field("ticker", "{.status.podIP}");
    let marker = lab.dir.path().join("agents-restarted");
    // Reads ticks until the marker exists, then 10 more: "survived", or how it failed.
    let script = format!(
        "import socket, os, sys\n\
         s = socket.create_connection(('{ticker_ip}', 9100), timeout=20)\n\
         f = s.makefile()\n\
         print('connected', flush=True)\n\
         after = 0\n\
         while after < 10:\n\
         \x20   line = f.readline()\n\
         \x20   if not line:\n\
         \x20       print('closed'); sys.exit(1)\n\
         \x20   if os.path.exists('{}'):\n\
         \x20       after += 1\n\
         print('survived', flush=True)\n",
        marker.display()
    );
    let mut client = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.nodes[0].netns))
        .args(["python3", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "connected");
    let starts = |lab: &Lab, i: usize| {
        std::fs::read_to_string(lab.nodes[i].root.join("netd.log"))
            .unwrap_or_default()
            .matches("skiff netd ready")
            .count()
    };
    let before: Vec<usize> = (0..3).map(|i| starts(lab, i)).collect();
    for i in 0..3 {
        lab.kill_netd(i);
    }
    for i in 0..3 {
        lab.start_netd(i);
    }
    for (i, count) in before.iter().enumerate() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while starts(lab, i) != count + 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "node-{i}'s netd never got ready again ({count} starts before):\n{}",
                lab.netd_log(i)
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    std::fs::write(&marker, "").unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let status = client.wait().unwrap();
    assert!(status.success() && rest.contains("survived"), "{rest}");
}

/// Node 2's agents stop and its Node is deleted: the others withdraw its route, ARP and FDB
/// entries; what is left on the devices is exactly the remaining peers.
fn a_node_that_leaves_is_withdrawn(lab: &mut Lab, cidrs: &[String]) {
    lab.kubectl_ok(&["delete", "pod", "ticker", "web-2", "--grace-period=1"]);
    lab.kill_kubelet(2);
    lab.kill_netd(2);
    lab.kubectl_ok(&["delete", "node", "node-2"]);
    for i in 0..2 {
        lab.wait("node-2's route withdrawn", 30, || {
            !stdout(&lab.in_node(i, &["ip", "route"])).contains(&cidrs[2])
        });
        let neighbours = stdout(&lab.in_node(i, &["ip", "neigh", "show", "dev", "skiff.1"]));
        assert!(
            !neighbours.contains(cidrs[2].trim_end_matches("/24")),
            "{neighbours}"
        );
        let fdb = stdout(&lab.in_node(i, &["bridge", "fdb", "show", "dev", "skiff.1"]));
        assert!(!fdb.contains(&lab.nodes[2].ip), "{fdb}");
        let other = 1 - i;
        assert!(
            fdb.contains(&format!("dst {} ", lab.nodes[other].ip)),
            "{fdb}"
        );
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---- The plugin alone, against the spec ----

/// A node namespace and a pod namespace of the test's own, removed on drop.
struct CniLab {
    node: String,
    pod: String,
    dir: tempfile::TempDir,
    plugin: std::path::PathBuf,
}

impl CniLab {
    fn new() -> CniLab {
        let id = std::process::id();
        let node = format!("skc{id}-node");
        let pod = format!("skc{id}-pod");
        for ns in [&node, &pod] {
            let out = Command::new("ip")
                .args(["netns", "add", ns])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("skiff-cni");
        std::os::unix::fs::symlink(common::skiff_bin(), &plugin).unwrap();
        CniLab {
            node,
            pod,
            dir,
            plugin,
        }
    }

    fn conf(&self, version: &str, subnet: &str) -> Value {
        json!({
            "cniVersion": version, "name": "skiff", "type": "skiff-cni",
            "bridge": "cni0", "mtu": 1400, "subnet": subnet,
            "dataDir": self.dir.path().join("ipam"),
        })
    }

    /// Runs a plugin (ours unless `binary` says) in the node namespace.
    fn call_with(&self, binary: &Path, env: &[(&str, &str)], input: &Value) -> (bool, Value) {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.node))
            .arg(binary)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_PATH", "/usr/lib/cni")
            .envs(env.iter().copied());
        let out = common::run_with_stdin(cmd, &input.to_string());
        let value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.success(), value)
    }

    fn call(&self, env: &[(&str, &str)], input: &Value) -> (bool, Value) {
        self.call_with(&self.plugin, env, input)
    }

    fn attach_env<'a>(
        &'a self,
        command: &'a str,
        id: &'a str,
        netns: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        vec![
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", id),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", netns),
        ]
    }

    fn ipam_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path().join("ipam/skiff"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("10."))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn node_links(&self) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.node, "-o", "link"])
            .output()
            .unwrap();
        stdout(&out)
    }
}

impl Drop for CniLab {
    fn drop(&mut self) {
        for ns in [&self.pod, &self.node] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

#[test]
fn the_cni_plugin_follows_the_spec() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping the CNI plugin test: not root");
        return;
    }
    let lab = CniLab::new();
    let netns = format!("/run/netns/{}", lab.pod);
    let conf = lab.conf("1.0.0", "10.88.0.0/24");

    // VERSION.
    let (ok, v) = lab.call(
        &[("CNI_COMMAND", "VERSION")],
        &json!({"cniVersion": "1.0.0"}),
    );
    assert!(ok);
    assert_eq!(v["supportedVersions"], json!(["0.4.0", "1.0.0", "1.1.0"]));

    // ADD: interfaces, the address, the route, the MTU; the pod answers on it.
    let (ok, result) = lab.call(&lab.attach_env("ADD", "c1", &netns), &conf);
    assert!(ok, "{result}");
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(result["ips"][0]["address"], "10.88.0.2/24");
    assert_eq!(result["ips"][0]["gateway"], "10.88.0.1");
    assert_eq!(result["ips"][0]["interface"], 2);
    assert_eq!(result["interfaces"][2]["name"], "eth0");
    assert_eq!(result["interfaces"][2]["sandbox"], netns.as_str());
    let pod_side = stdout(
        &Command::new("ip")
            .args(["-n", &lab.pod, "addr", "show", "eth0"])
            .output()
            .unwrap(),
    );
    assert!(
        pod_side.contains("10.88.0.2/24") && pod_side.contains("mtu 1400"),
        "{pod_side}"
    );
    let routes = stdout(
        &Command::new("ip")
            .args(["-n", &lab.pod, "route"])
            .output()
            .unwrap(),
    );
    assert!(
        routes.contains("default via 10.88.0.1 dev eth0"),
        "{routes}"
    );
    let ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.node,
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "10.88.0.2",
        ])
        .output()
        .unwrap();
    assert!(ping.status.success(), "node → pod: {}", stdout(&ping));

    // Chained after it, the reference portmap plugin accepts its result.
    let portmap = json!({
        "cniVersion": "1.0.0", "name": "skiff", "type": "portmap",
        "capabilities": {"portMappings": true}, "snat": true,
        "runtimeConfig": {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]},
        "prevResult": result,
    });
    let (ok, chained) = lab.call_with(
        Path::new("/usr/lib/cni/portmap"),
        &lab.attach_env("ADD", "c1", &netns),
        &portmap,
    );
    assert!(ok, "portmap after skiff-cni: {chained}");
    let (ok, _) = lab.call_with(
        Path::new("/usr/lib/cni/portmap"),
        &lab.attach_env("DEL", "c1", &netns),
        &portmap,
    );
    assert!(ok);

    // CHECK passes while it is intact and fails once it is not.
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = result.clone();
    let (ok, v) = lab.call(&lab.attach_env("CHECK", "c1", &netns), &check_conf);
    assert!(ok, "{v}");
    let (ok, v) = lab.call(&lab.attach_env("CHECK", "c1", &netns), &conf);
    assert!(!ok);
    assert_eq!(v["code"], 7, "CHECK without prevResult: {v}");

    // Errors: the spec's codes, and nothing left behind.
    let (ok, v) = lab.call(&[("CNI_COMMAND", "ADD")], &conf);
    assert!(!ok);
    assert_eq!(v["code"], 4, "{v}");
    assert!(v["msg"].as_str().unwrap().contains("CNI_NETNS"), "{v}");
    let mut cmd = Command::new(&lab.plugin);
    cmd.env_clear().envs(lab.attach_env("ADD", "c2", &netns));
    let out = common::run_with_stdin(cmd, "{not json");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], 6, "{v}");
    let (_, v) = lab.call(
        &lab.attach_env("ADD", "c2", &netns),
        &lab.conf("0.1.0", "10.88.0.0/24"),
    );
    assert_eq!(v["code"], 1, "{v}");
    let (_, v) = lab.call(
        &lab.attach_env("ADD", "c2", &netns),
        &lab.conf("1.0.0", "10.88.0.0/33"),
    );
    assert_eq!(v["code"], 7, "{v}");
    let (_, v) = lab.call(
        &lab.attach_env("ADD", "c2", "/run/netns/no-such-namespace"),
        &conf,
    );
    assert_eq!(v["code"], 5, "{v}");
    assert_eq!(
        lab.ipam_files(),
        ["10.88.0.2"],
        "a failed ADD reserved an address"
    );

    // An exhausted range: a /30 has one pod address, taken by c1 (another network dir).
    let tiny = {
        let mut c = lab.conf("1.0.0", "10.88.0.0/30");
        c["name"] = json!("tiny");
        c
    };
    let (ok, _) = lab.call(
        &lab.attach_env("ADD", "t1", &netns)
            .iter()
            .map(|(k, v)| (*k, if *k == "CNI_IFNAME" { "eth1" } else { v }))
            .collect::<Vec<_>>(),
        &tiny,
    );
    assert!(ok);
    let (ok, v) = lab.call(
        &lab.attach_env("ADD", "t2", &netns)
            .iter()
            .map(|(k, v)| (*k, if *k == "CNI_IFNAME" { "eth2" } else { v }))
            .collect::<Vec<_>>(),
        &tiny,
    );
    assert!(!ok);
    assert_eq!(v["code"], 100, "{v}");
    assert_eq!(
        v["msg"],
        "no IP addresses available in range set: 10.88.0.1-10.88.0.2"
    );
    let pod_links = stdout(
        &Command::new("ip")
            .args(["-n", &lab.pod, "-o", "link"])
            .output()
            .unwrap(),
    );
    assert!(!pod_links.contains("eth2"), "{pod_links}");
    let (ok, _) = lab.call(
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "t1"),
            ("CNI_IFNAME", "eth1"),
            ("CNI_NETNS", &netns),
        ],
        &tiny,
    );
    assert!(ok);

    // DEL is idempotent, works without the namespace, and frees the address.
    let veth = result["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(lab.node_links().contains(&veth));
    let (ok, v) = lab.call(&lab.attach_env("DEL", "c1", &netns), &conf);
    assert!(ok, "{v}");
    assert!(!lab.node_links().contains(&veth));
    let (ok, v) = lab.call(&lab.attach_env("DEL", "c1", &netns), &conf);
    assert!(ok, "second DEL: {v}");
    let (ok, _) = lab.call(
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c9"),
            ("CNI_IFNAME", "eth0"),
        ],
        &conf,
    );
    assert!(ok, "DEL without CNI_NETNS");
    assert!(lab.ipam_files().is_empty(), "{:?}", lab.ipam_files());
    let (ok, v) = lab.call(&lab.attach_env("CHECK", "c1", &netns), &check_conf);
    assert!(!ok);
    assert_eq!(v["code"], 102, "{v}");

    // 1.1: GC frees what the runtime no longer knows; STATUS says whether ADD can work.
    let conf11 = lab.conf("1.1.0", "10.88.0.0/24");
    for id in ["keep", "leak"] {
        let env: Vec<(&str, &str)> = lab
            .attach_env("ADD", id, &netns)
            .into_iter()
            .map(|(k, v)| {
                (
                    k,
                    if k == "CNI_IFNAME" {
                        if id == "keep" {
                            "eth3"
                        } else {
                            "eth4"
                        }
                    } else {
                        v
                    },
                )
            })
            .collect();
        let (ok, v) = lab.call(&env, &conf11);
        assert!(ok, "{v}");
    }
    let mut gc = conf11.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth3"}]);
    let (ok, v) = lab.call(&[("CNI_COMMAND", "GC")], &gc);
    assert!(ok, "{v}");
    assert_eq!(lab.ipam_files().len(), 1, "{:?}", lab.ipam_files());
    let pod_links = stdout(
        &Command::new("ip")
            .args(["-n", &lab.pod, "-o", "link"])
            .output()
            .unwrap(),
    );
    assert!(
        pod_links.contains("eth3") && !pod_links.contains("eth4"),
        "{pod_links}"
    );
    let (ok, v) = lab.call(&[("CNI_COMMAND", "STATUS")], &conf11);
    assert!(ok, "{v}");
    let (ok, v) = lab.call(&[("CNI_COMMAND", "GC")], &conf);
    assert!(!ok);
    assert_eq!(v["code"], 1, "GC needs 1.1.0: {v}");

    // `skiff netd --cleanup` removes, by name, what the agent and the plugin make on a node:
    // the VXLAN device, the bridge, the egress table, the conflist and the plugin link.
    let node_ns = format!("/run/netns/{}", lab.node);
    let sh = |script: &str| {
        let out = Command::new("nsenter")
            .arg(format!("--net={node_ns}"))
            .args(["sh", "-c", script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out)
    };
    sh("ip link add skiff.1 type vxlan id 1 dstport 8472 nolearning && nft add table ip skiff-netd");
    let conf_dir = lab.dir.path().join("net.d");
    let bin_dir = lab.dir.path().join("bin");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::write(conf_dir.join("10-skiff.conflist"), "{}").unwrap();
    std::os::unix::fs::symlink(common::skiff_bin(), bin_dir.join("skiff-cni")).unwrap();
    let out = Command::new("nsenter")
        .arg(format!("--net={node_ns}"))
        .arg(common::skiff_bin())
        .args(["netd", "--cleanup", "--cni-conf-dir"])
        .arg(&conf_dir)
        .arg("--cni-bin-dir")
        .arg(&bin_dir)
        .arg("--bpf-root")
        .arg(lab.dir.path().join("no-bpf"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let links = lab.node_links();
    assert!(
        !links.contains("skiff.1") && !links.contains("cni0"),
        "{links}"
    );
    assert!(!sh("nft list tables").contains("skiff-netd"));
    assert!(!conf_dir.join("10-skiff.conflist").exists());
    assert!(!bin_dir.join("skiff-cni").exists());
}
