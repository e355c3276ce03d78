//! The kubelet end to end, with the real kubectl, skiff-runtime and Debian's CNI plugins: two
//! network-namespace nodes (`tests/common/lab.rs`), the control plane on the first, a kubelet
//! on each with its own node credential. One lab is shared by the checks, run in order.
//! Needs root (CI is root); prints a skip line otherwise.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::lab::{self, Lab};

#[test]
fn kubelet_runs_pods_end_to_end() {
    if let Some(why) = lab::missing() {
        eprintln!("skipping the kubelet tests: {why}");
        return;
    }
    let mut lab = Lab::start(2);
    nodes_register_with_their_own_identity(&lab);
    a_full_pod_runs_and_serves(&lab);
    logs_follow_and_config_updates(&lab);
    exec_and_cp(&lab);
    exec_terminal_resizes(&lab);
    the_pods_token_reaches_the_api(&lab);
    the_kubelet_api_checks_who_calls(&lab);
    stats_metrics_and_proxies(&lab);
    port_forward(&lab);
    attach(&lab);
    restarts_backoff_and_terminal_phases(&lab);
    bad_input_gets_upstream_reasons(&lab);
    seccomp_profiles_filter_syscalls(&lab);
    grpc_probes_call_the_health_service(&lab);
    limits_reach_the_cgroups_and_oom_is_reported(&lab);
    a_killed_kubelet_restarts_no_container(&mut lab);
    deletion_runs_prestop_and_sigterm(&lab);
    pods_on_two_nodes_reach_each_other(&lab);
    unused_images_are_collected(&mut lab);
    container_logs_rotate(&lab);
    static_pods_are_mirrored(&mut lab);
    nothing_is_left_behind(&lab);
}

fn nodes_register_with_their_own_identity(lab: &Lab) {
    let wide = lab.kubectl_ok(&["get", "nodes", "-o", "wide"]);
    assert!(wide.starts_with("NAME "), "{wide}");
    for (name, ip) in [("node-0", "192.168.56.10"), ("node-1", "192.168.56.11")] {
        let line = wide
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{wide}"));
        assert!(line.contains(" Ready "), "{line}");
        assert!(line.contains(ip), "{line}");
        assert!(line.contains("v1.32.0"), "{line}");
        assert!(line.contains("skiff://"), "{line}");
        let holder = lab.kubectl_ok(&[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            name,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ]);
        assert_eq!(holder, name);
        let labels = lab.kubectl_ok(&["get", "node", name, "-o", "jsonpath={.metadata.labels}"]);
        assert!(
            labels.contains(&format!("\"kubernetes.io/hostname\":\"{name}\"")),
            "{labels}"
        );
    }
    // Each kubelet has a credential of its own, not the admin's: node-0 a token from the
    // control plane, node-1 a certificate it asked for with a bootstrap token (TLS bootstrap).
    let kubeconfig = std::fs::read_to_string(lab.nodes[0].root.join("kubelet.kubeconfig")).unwrap();
    assert!(kubeconfig.contains("system:node:node-0"), "{kubeconfig}");
    let csrs = lab.kubectl_ok(&["get", "csr"]);
    let line = csrs
        .lines()
        .find(|l| l.contains("kubernetes.io/kube-apiserver-client-kubelet"))
        .unwrap_or_else(|| panic!("no kubelet CSR:\n{csrs}"));
    assert!(
        line.contains("system:bootstrap:") && line.contains("Approved,Issued"),
        "{line}"
    );
    let describe = lab.kubectl_ok(&["describe", "node", "node-0"]);
    for text in [
        "KubeletReady",
        "kubelet is posting ready status",
        "Non-terminated Pods:",
        "Allocated resources:",
    ] {
        assert!(
            describe.contains(text),
            "describe node lacks {text:?}:\n{describe}"
        );
    }
}

const FULL_POD: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config}
data: {index.html: "hello from config"}
---
apiVersion: v1
kind: Secret
metadata: {name: web-secret}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: full, labels: {app: full}}
spec:
  nodeName: node-0
  volumes:
  - {name: www, configMap: {name: web-config}}
  - {name: work, emptyDir: {}}
  initContainers:
  - name: init
    image: skiff.local/busybox:1
    command: ["sh", "-c", "echo done > /work/ready"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: web
    image: skiff.local/busybox:1
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: [{name: http, containerPort: 8080}]
    volumeMounts: [{name: www, mountPath: /www}]
    readinessProbe: {httpGet: {path: /index.html, port: http}, periodSeconds: 1}
    livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 2}
  - name: sidecar
    image: skiff.local/busybox:1
    command: ["sh", "-c", "echo password=$PASSWORD node=$NODE init=$(cat /work/ready) expanded=$(GREETING); i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"]
    env:
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: web-secret, key: password}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: GREETING, value: hi}
    volumeMounts: [{name: work, mountPath: /work}]
    readinessProbe: {exec: {command: ["cat", "/work/ready"]}, periodSeconds: 1}
"#;

fn a_full_pod_runs_and_serves(lab: &Lab) {
    lab.apply(FULL_POD);
    lab.wait("pod full Ready", 60, || {
        lab.pod_field("full", "{.status.conditions[?(@.type==\"Ready\")].status}") == "True"
    });
    let row = lab.kubectl_ok(&["get", "pod", "full", "-o", "wide"]);
    let line = row.lines().nth(1).unwrap();
    assert!(
        line.contains("2/2") && line.contains("Running") && line.contains("node-0"),
        "{row}"
    );
    let ip = lab.pod_field("full", "{.status.podIP}");
    assert!(ip.starts_with("10.244.0."), "pod IP {ip}");
    let logs = lab.kubectl_ok(&["logs", "full", "-c", "sidecar"]);
    assert!(
        logs.contains("password=s3cret node=node-0 init=done expanded=hi"),
        "{logs}"
    );
    // The web container serves the configMap volume on the pod IP, from the node.
    let body = node_wget(lab, 0, &format!("http://{ip}:8080/index.html"));
    assert_eq!(body, "hello from config");
    let statuses = lab.pod_field("full", "{.status.containerStatuses[*].containerID}");
    assert!(
        statuses.split(' ').all(|id| id.starts_with("skiff://")),
        "{statuses}"
    );
    assert_eq!(
        lab.pod_field(
            "full",
            "{.status.initContainerStatuses[0].state.terminated.reason}"
        ),
        "Completed"
    );
    assert_eq!(lab.pod_field("full", "{.status.qosClass}"), "BestEffort");
    let describe = lab.kubectl_ok(&["describe", "pod", "full"]);
    for text in [
        "Started container web",
        "Created container sidecar",
        "Container image \"skiff.local/busybox:1\" already present on machine",
    ] {
        assert!(
            describe.contains(text),
            "describe pod lacks {text:?}:\n{describe}"
        );
    }
    // Several containers: kubectl picks the first; a client that names none gets upstream's
    // message from the API server.
    let out = lab.kubectl(&["logs", "full"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("Defaulted container \"web\" out of: web, sidecar, init (init)"));
    let out = lab.kubectl(&["get", "--raw", "/api/v1/namespaces/default/pods/full/log"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("a container name must be specified for pod full, choose one of: [web sidecar] or one of the init containers: [init]"), "{stderr}");
}

/// curl run in node `i`'s network namespace (the host's static busybox wget crashes in glibc's
/// NSS, so the node side uses curl; pods use busybox).
fn node_wget(lab: &Lab, i: usize, url: &str) -> String {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", lab.nodes[i].netns))
        .args(["curl", "-sS", "--max-time", "5", url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {url}: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn logs_follow_and_config_updates(lab: &Lab) {
    // kubectl logs -f streams lines as the container writes them.
    let mut follow = lab
        .kubectl_cmd(&["logs", "-f", "full", "-c", "sidecar", "--tail=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    let n = |l: &str| l.trim_start_matches("tick ").parse::<u64>().unwrap();
    assert!(n(&second) > n(&first), "{first} then {second}");
    let _ = follow.kill();
    let _ = follow.wait();
    let tail = lab.kubectl_ok(&["logs", "full", "-c", "sidecar", "--tail=2", "--timestamps"]);
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(tail.lines().all(|l| l.contains("Z tick ")), "{tail}");
    // An edited ConfigMap reaches the running pod's volume.
    lab.kubectl_ok(&[
        "patch",
        "configmap",
        "web-config",
        "-p",
        r#"{"data":{"index.html":"updated"}}"#,
    ]);
    let ip = lab.pod_field("full", "{.status.podIP}");
    lab.wait("the configMap update in the volume", 60, || {
        node_wget(lab, 0, &format!("http://{ip}:8080/index.html")) == "updated"
    });
}

fn exec_and_cp(lab: &Lab) {
    // kubectl exec over the WebSocket v5 protocol, through the API server to the kubelet.
    let out = lab.kubectl(&[
        "exec",
        "full",
        "-c",
        "sidecar",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));
    let out = lab.kubectl_stdin(
        &[
            "exec",
            "-i",
            "full",
            "-c",
            "sidecar",
            "--",
            "sh",
            "-c",
            "cat > /work/from-stdin; wc -c < /work/from-stdin",
        ],
        "twelve bytes",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "12");
    let hostname = lab.kubectl_ok(&["exec", "full", "-c", "web", "--", "hostname"]);
    assert_eq!(hostname, "full\n");
    // kubectl cp both ways (tar over exec).
    let local = lab.dir.path().join("cp-in.txt");
    std::fs::write(&local, "copied in\n").unwrap();
    lab.kubectl_ok(&[
        "cp",
        local.to_str().unwrap(),
        "full:/work/cp-in.txt",
        "-c",
        "sidecar",
    ]);
    assert_eq!(
        lab.kubectl_ok(&[
            "exec",
            "full",
            "-c",
            "sidecar",
            "--",
            "cat",
            "/work/cp-in.txt"
        ]),
        "copied in\n"
    );
    let back = lab.dir.path().join("cp-out.txt");
    lab.kubectl_ok(&[
        "cp",
        "full:/work/from-stdin",
        back.to_str().unwrap(),
        "-c",
        "sidecar",
    ]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "twelve bytes");
    // A container that is not running gets a clear error.
    let out = lab.kubectl(&["exec", "full", "-c", "init", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("container init is not running in pod full"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command under a pseudo-terminal of 33 rows and 111 columns (its controlling
/// terminal), waits for `first` in its output, resizes the terminal to 40×100 (the kernel
/// sends SIGWINCH to the command) and waits for `second`; prints everything it read.
const RESIZING_TERMINAL: &str = r#"
import fcntl, os, select, struct, subprocess, sys, termios
first, second, argv = sys.argv[1].encode(), sys.argv[2].encode(), sys.argv[3:]
master, slave = os.openpty()
def size(rows, cols):
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
size(33, 111)
child = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                         preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
seen = b""
def until(text):
    global seen
    while text not in seen:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            sys.exit("no %r in %r" % (text, seen))
        try:
            data = os.read(master, 4096)
        except OSError:
            data = b""
        if not data:
            sys.exit("output ended without %r: %r" % (text, seen))
        seen += data
until(first)
size(40, 100)
until(second)
child.wait(timeout=120)
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(child.returncode)
"#;

fn exec_terminal_resizes(lab: &Lab) {
    // kubectl exec -it sends its terminal's size at the start and on every SIGWINCH
    // (channel 4); the kubelet holds the exec's pty master and sets the size on it.
    let kubectl = lab.kubectl_cmd(&[
        "exec",
        "-it",
        "full",
        "-c",
        "web",
        "--",
        "sh",
        "-c",
        // The first size comes with kubectl's first resize message, which may arrive just
        // after the process started (as upstream's): wait for it, then for the change.
        "until [ \"$(stty size 2>/dev/null)\" = \"33 111\" ]; do sleep 0.1; done; stty size; \
         while [ \"$(stty size 2>/dev/null)\" = \"33 111\" ]; do sleep 0.1; done; stty size; exit 7",
    ]);
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c")
        .arg(RESIZING_TERMINAL)
        .args(["33 111", "40 100"])
        .arg(kubectl.get_program())
        .args(kubectl.get_args());
    for (key, value) in kubectl.get_envs() {
        if let Some(value) = value {
            cmd.env(key, value);
        }
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // The process's exit code comes back through the terminal session too.
    assert_eq!(
        out.status.code(),
        Some(7),
        "{text}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.kubelet_log(0)
    );
    let sizes: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.ends_with(" 111") || l.ends_with(" 100"))
        .collect();
    assert_eq!(sizes, ["33 111", "40 100"], "{text}");
}

/// The projected `kube-api-access-*` volume: the pod's service-account token, the cluster CA
/// and its namespace, with which it calls the API and gets what RBAC grants its account.
fn the_pods_token_reaches_the_api(lab: &Lab) {
    let read = |file: &str| {
        lab.kubectl_ok(&[
            "exec",
            "full",
            "-c",
            "web",
            "--",
            "cat",
            &format!("/var/run/secrets/kubernetes.io/serviceaccount/{file}"),
        ])
    };
    let token = read("token");
    assert_eq!(read("namespace"), "default");
    let ca = lab.dir.path().join("pod-ca.crt");
    std::fs::write(&ca, read("ca.crt")).unwrap();
    let call = |path: &str| {
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", lab.nodes[1].netns))
            .args([
                "curl",
                "-sS",
                "--max-time",
                "5",
                "-w",
                "\n%{http_code}",
                "--cacert",
            ])
            .arg(&ca)
            .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
            .arg(format!("{}{path}", lab.api_url()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or_default();
        (code.to_string(), body.to_string())
    };
    let (code, body) = call("/api/v1/namespaces/default/pods");
    assert_eq!(code, "403", "{body}");
    assert!(
        body.contains(
            r#"User \"system:serviceaccount:default:default\" cannot list resource \"pods\""#
        ),
        "{body}"
    );
    lab.kubectl_ok(&[
        "create",
        "role",
        "pod-lister",
        "--verb=list",
        "--resource=pods",
    ]);
    lab.kubectl_ok(&[
        "create",
        "rolebinding",
        "default-lists-pods",
        "--role=pod-lister",
        "--serviceaccount=default:default",
    ]);
    lab.wait("the account's binding to apply", 10, || {
        call("/api/v1/namespaces/default/pods").0 == "200"
    });
    assert!(call("/api/v1/namespaces/default/pods")
        .1
        .contains("\"name\":\"full\""));
    assert_eq!(call("/api/v1/namespaces/default/secrets").0, "403");
    assert_eq!(call("/api/v1/namespaces/kube-system/pods").0, "403");
}

/// The kubelet API (:10250) authenticates and authorizes as upstream's: it serves a
/// certificate the cluster CA issued for the node's address; a request without credentials
/// is a 401; a pod's service-account token is a 403 with upstream's text on every path until
/// RBAC grants its account `nodes/pods` (then `/pods` opens after the 30 s deny cache, and exec
/// stays shut: that is `nodes/proxy`); the API server, with its client certificate, still
/// serves `kubectl exec` and `kubectl logs`.
fn the_kubelet_api_checks_who_calls(lab: &Lab) {
    let token = lab.kubectl_ok(&[
        "exec",
        "full",
        "-c",
        "web",
        "--",
        "cat",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
    ]);
    let token = token.trim().to_string();
    let ca = lab.ca_file();
    // (status, body) of a request to node `i`'s kubelet, verifying its certificate against
    // the cluster CA for its IP.
    let call = |i: usize, path: &str, token: Option<&str>| -> (String, String) {
        let node = &lab.nodes[i];
        let mut cmd = std::process::Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", node.netns))
            .args([
                "curl",
                "-sS",
                "--max-time",
                "5",
                "-w",
                "\n%{http_code}",
                "--cacert",
            ])
            .arg(&ca);
        if let Some(token) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        cmd.arg(format!("https://{}:10250{path}", node.ip));
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "curl {path} on {}: {}",
            node.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or_default();
        (code.to_string(), body.to_string())
    };
    let sa = "system:serviceaccount:default:default";
    let exec = "/exec/default/full/web?command=true&output=1";
    for i in 0..lab.nodes.len() {
        assert_eq!(
            call(i, "/pods", None),
            ("401".to_string(), "Unauthorized".to_string())
        );
        let (code, body) = call(i, "/pods", Some(&token));
        assert_eq!(code, "403", "{body}");
        assert_eq!(
            body,
            format!(
                "Forbidden (user={sa}, verb=get, resource=nodes, subresource(s)=[pods proxy])\n"
            )
        );
        let (code, body) = call(i, exec, Some(&token));
        assert_eq!(code, "403", "{body}");
        assert_eq!(
            body,
            format!("Forbidden (user={sa}, verb=get, resource=nodes, subresource(s)=[proxy])\n")
        );
        let (code, body) = call(i, "/containerLogs/default/full/web", Some(&token));
        assert_eq!(code, "403", "{body}");
        let (code, body) = call(i, "/healthz", Some(&token));
        assert_eq!(code, "403", "{body}");
        assert!(body.contains("subresource(s)=[healthz proxy]"), "{body}");
    }
    // Through the API server (its client certificate, system:kubelet-api-admin) all works.
    assert_eq!(
        lab.kubectl_ok(&[
            "exec",
            "full",
            "-c",
            "web",
            "--",
            "echo",
            "via the API server"
        ])
        .trim(),
        "via the API server"
    );
    lab.kubectl_ok(&["logs", "full", "-c", "sidecar", "--tail", "1"]);
    // RBAC grants the account nodes/pods: /pods opens once the denial has left the cache.
    lab.apply(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: node-pods-reader}
rules: [{apiGroups: [""], resources: ["nodes/pods"], verbs: ["get"]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: default-reads-node-pods}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: node-pods-reader}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
"#,
    );
    lab.wait("nodes/pods granted (after the 30 s deny cache)", 60, || {
        call(0, "/pods", Some(&token)).0 == "200"
    });
    let (_, body) = call(0, "/pods", Some(&token));
    assert!(body.contains("\"kind\":\"PodList\""), "{body}");
    assert_eq!(call(0, exec, Some(&token)).0, "403");
    lab.kubectl_ok(&[
        "delete",
        "clusterrolebinding/default-reads-node-pods",
        "clusterrole/node-pods-reader",
    ]);
    // The serving certificates were issued for the nodes (and approved like skiff up does).
    let csrs = lab.kubectl_ok(&["get", "csr"]);
    for node in &lab.nodes {
        assert!(
            csrs.lines()
                .any(|l| l.contains("kubernetes.io/kubelet-serving")
                    && l.contains(&format!("system:node:{}", node.name))
                    && l.contains("Approved,Issued")),
            "{csrs}"
        );
    }
}

/// The API server's proxy subresources and the kubelet's stats: `nodes/proxy` reaches the
/// kubelet's Summary API and resource metrics (through the API server's client certificate),
/// `pods/proxy` and `services/proxy` reach the pod's HTTP server, and RBAC guards each.
fn stats_metrics_and_proxies(lab: &Lab) {
    use serde_json::Value;
    let summary = |node: &str| -> Value {
        let raw = lab.kubectl_ok(&[
            "get",
            "--raw",
            &format!("/api/v1/nodes/{node}/proxy/stats/summary"),
        ]);
        serde_json::from_str(&raw).unwrap_or_else(|e| panic!("summary JSON: {e}: {raw}"))
    };
    let full = |s: &Value| -> Option<Value> {
        s["pods"]
            .as_array()?
            .iter()
            .find(|p| p["podRef"]["name"] == "full" && p["podRef"]["namespace"] == "default")
            .cloned()
    };
    let positive = |v: &Value| v.as_u64().is_some_and(|n| n > 0);
    // The housekeeping samples every 10 s: the pod's rate appears once it has two samples.
    lab.wait("the summary lists pod full with a CPU rate", 40, || {
        full(&summary("node-0")).is_some_and(|p| p["cpu"]["usageNanoCores"].is_u64())
    });
    let s = summary("node-0");
    assert_eq!(s["node"]["nodeName"], "node-0");
    assert!(
        positive(&s["node"]["cpu"]["usageCoreNanoSeconds"]),
        "{}",
        s["node"]
    );
    assert!(
        positive(&s["node"]["memory"]["workingSetBytes"]),
        "{}",
        s["node"]
    );
    assert!(positive(&s["node"]["fs"]["capacityBytes"]), "{}", s["node"]);
    assert!(
        positive(&s["node"]["runtime"]["imageFs"]["capacityBytes"]),
        "{}",
        s["node"]
    );
    assert!(positive(&s["node"]["rlimit"]["maxpid"]), "{}", s["node"]);
    assert_eq!(s["node"]["network"]["name"], "eth0", "{}", s["node"]);
    let pod = full(&s).unwrap();
    assert!(positive(&pod["cpu"]["usageCoreNanoSeconds"]), "{pod}");
    assert!(positive(&pod["memory"]["workingSetBytes"]), "{pod}");
    assert!(
        !pod["podRef"]["uid"].as_str().unwrap_or_default().is_empty(),
        "{pod}"
    );
    let containers: Vec<&str> = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        containers,
        ["sidecar", "web"],
        "running containers only: {pod}"
    );
    for c in pod["containers"].as_array().unwrap() {
        assert!(positive(&c["cpu"]["usageCoreNanoSeconds"]), "{c}");
        assert!(positive(&c["memory"]["workingSetBytes"]), "{c}");
        assert!(
            c["startTime"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{c}"
        );
        assert!(c["logs"]["usedBytes"].is_u64(), "{c}");
        assert!(c["rootfs"]["usedBytes"].is_u64(), "{c}");
    }
    // The readiness probes' traffic went through the pod's eth0.
    assert_eq!(pod["network"]["name"], "eth0", "{pod}");
    assert!(positive(&pod["network"]["rxBytes"]), "{pod}");
    let volumes: Vec<&str> = pod["volume"]
        .as_array()
        .map(|v| v.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        volumes.contains(&"www") && volumes.contains(&"work"),
        "{pod}"
    );
    assert!(positive(&pod["ephemeral-storage"]["usedBytes"]), "{pod}");
    // CPU and memory only, as metrics-server once asked.
    let only = lab.kubectl_ok(&[
        "get",
        "--raw",
        "/api/v1/nodes/node-0/proxy/stats/summary?only_cpu_and_memory=true",
    ]);
    let only: Value = serde_json::from_str(&only).unwrap();
    assert!(
        only["node"].get("fs").is_none() && full(&only).is_some(),
        "{only}"
    );
    assert_eq!(summary("node-1")["node"]["nodeName"], "node-1");

    // metrics-server's endpoint, and the kubelet's own.
    let resource = lab.kubectl_ok(&[
        "get",
        "--raw",
        "/api/v1/nodes/node-0/proxy/metrics/resource",
    ]);
    for line in [
        "container_memory_working_set_bytes{container=\"web\",namespace=\"default\",pod=\"full\"} ",
        "container_cpu_usage_seconds_total{container=\"sidecar\",namespace=\"default\",pod=\"full\"} ",
        "container_start_time_seconds{container=\"web\",namespace=\"default\",pod=\"full\"} ",
        "pod_memory_working_set_bytes{namespace=\"default\",pod=\"full\"} ",
        "\nnode_cpu_usage_seconds_total ",
        "\nnode_memory_working_set_bytes ",
        "\nresource_scrape_error 0\n",
    ] {
        assert!(resource.contains(line), "no {line:?} in:\n{resource}");
    }
    let own = lab.kubectl_ok(&["get", "--raw", "/api/v1/nodes/node-0/proxy/metrics"]);
    assert!(own.contains("\nkubelet_running_pods "), "{own}");
    assert!(
        own.contains("kubelet_running_containers{container_state=\"running\"} "),
        "{own}"
    );
    assert!(
        own.contains("kubelet_node_name{node=\"node-0\"} 1\n"),
        "{own}"
    );

    // pods/proxy: the pod's HTTP server, at the named port or the first declared one.
    let ip = lab.pod_field("full", "{.status.podIP}");
    let page = node_wget(lab, 0, &format!("http://{ip}:8080/index.html"));
    for path in [
        "/api/v1/namespaces/default/pods/full:8080/proxy/index.html",
        "/api/v1/namespaces/default/pods/full/proxy/index.html",
        "/api/v1/namespaces/default/pods/http:full:8080/proxy/index.html",
    ] {
        assert_eq!(lab.kubectl_ok(&["get", "--raw", path]), page, "{path}");
    }
    // A missing page is the backend's 404, not the API server's.
    let out = lab.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/full:8080/proxy/no-such-page",
    ]);
    assert!(!out.status.success());
    let out = lab.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods/full:9/proxy/",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error trying to reach service"),
        "a closed port: {stderr}"
    );

    // services/proxy: a ready endpoint of the Service, by port name or number.
    lab.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: full-web}
spec:
  selector: {app: full}
  ports: [{name: http, port: 80, targetPort: http}]
"#,
    );
    lab.wait("the Service's endpoint", 60, || {
        lab.kubectl(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/services/full-web:http/proxy/index.html",
        ])
        .status
        .success()
    });
    for path in [
        "/api/v1/namespaces/default/services/full-web:http/proxy/index.html",
        "/api/v1/namespaces/default/services/full-web:80/proxy/index.html",
        "/api/v1/namespaces/default/services/http:full-web:http/proxy/index.html",
    ] {
        assert_eq!(lab.kubectl_ok(&["get", "--raw", path]), page, "{path}");
    }
    let out = lab.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/services/full-web:81/proxy/",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no service port 81 found for service \"full-web\""),
        "{stderr}"
    );
    lab.kubectl_ok(&["delete", "service", "full-web"]);

    // RBAC: the proxy subresources are their own permissions.
    let sa = "system:serviceaccount:default:default";
    for (path, resource) in [
        ("/api/v1/nodes/node-0/proxy/stats/summary", "nodes/proxy"),
        (
            "/api/v1/namespaces/default/pods/full:8080/proxy/index.html",
            "pods/proxy",
        ),
    ] {
        let out = lab.kubectl(&["--as", sa, "get", "--raw", path]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{path} allowed for {sa}");
        assert!(
            stderr.contains("Forbidden")
                && stderr.contains(&format!("cannot get resource \"{resource}\"")),
            "{path}: {stderr}"
        );
    }
}

fn port_forward(lab: &Lab) {
    // kubectl port-forward: WebSocket + SPDY through the API server to the kubelet, which
    // connects inside the pod's network namespace.
    let mut forward = lab
        .kubectl_cmd(&["port-forward", "pod/full", "18080:8080"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(forward.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.starts_with("Forwarding from 127.0.0.1:18080 -> 8080"),
        "{first}"
    );
    for _ in 0..2 {
        let body = node_wget(lab, 0, "http://127.0.0.1:18080/index.html");
        assert_eq!(body, "updated");
    }
    let _ = forward.kill();
    let _ = forward.wait();
}

fn attach(lab: &Lab) {
    // kubectl attach: the container's own stdio through its shim, stdin included.
    lab.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: interactive}
spec:
  nodeName: node-0
  restartPolicy: Never
  containers:
  - name: c
    image: skiff.local/busybox:1
    stdin: true
    stdinOnce: true
    command: ["sh", "-c", "echo ready; while read line; do echo got $line; done; echo bye"]
"#,
    );
    lab.wait("interactive Running", 60, || {
        lab.pod_field("interactive", "{.status.phase}") == "Running"
    });
    let out = lab.kubectl_stdin(&["attach", "-i", "interactive"], "one\ntwo\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // stdinOnce: the container's input ends with kubectl's, it says bye and exits, and the
    // attach ends with it.
    assert!(text.ends_with("got one\ngot two\nbye\n"), "{text}");
    lab.wait("interactive Succeeded", 60, || {
        lab.pod_field("interactive", "{.status.phase}") == "Succeeded"
    });
    let logs = lab.kubectl_ok(&["logs", "interactive"]);
    assert_eq!(logs, "ready\ngot one\ngot two\nbye\n");
    lab.kubectl_ok(&["delete", "pod", "interactive", "--grace-period=1"]);
}

fn restarts_backoff_and_terminal_phases(lab: &Lab) {
    lab.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  nodeName: node-0
  containers: [{name: c, image: skiff.local/busybox:1, command: ["sh", "-c", "echo crashing; exit 1"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: done}
spec:
  nodeName: node-0
  restartPolicy: Never
  containers: [{name: c, image: skiff.local/busybox:1, command: ["true"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: fail}
spec:
  nodeName: node-0
  restartPolicy: Never
  containers: [{name: c, image: skiff.local/busybox:1, command: ["sh", "-c", "echo bad > /dev/termination-log; exit 3"]}]
"#,
    );
    lab.wait("done Succeeded", 60, || {
        lab.pod_field("done", "{.status.phase}") == "Succeeded"
    });
    assert_eq!(
        lab.pod_field(
            "done",
            "{.status.containerStatuses[0].state.terminated.reason}"
        ),
        "Completed"
    );
    lab.wait("fail Failed", 60, || {
        lab.pod_field("fail", "{.status.phase}") == "Failed"
    });
    assert_eq!(
        lab.pod_field(
            "fail",
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "3"
    );
    assert_eq!(
        lab.pod_field(
            "fail",
            "{.status.containerStatuses[0].state.terminated.reason}"
        ),
        "Error"
    );
    assert_eq!(
        lab.pod_field(
            "fail",
            "{.status.containerStatuses[0].state.terminated.message}"
        ),
        "bad\n"
    );
    lab.wait("crash restarted twice and backing off", 90, || {
        lab.pod_field("crash", "{.status.containerStatuses[0].restartCount}")
            .parse::<i32>()
            .unwrap_or(0)
            >= 2
            && lab.pod_field(
                "crash",
                "{.status.containerStatuses[0].state.waiting.reason}",
            ) == "CrashLoopBackOff"
    });
    let row = lab.kubectl_ok(&["get", "pod", "crash"]);
    assert!(row.contains("CrashLoopBackOff"), "{row}");
    assert_eq!(
        lab.pod_field(
            "crash",
            "{.status.containerStatuses[0].lastState.terminated.exitCode}"
        ),
        "1"
    );
    let previous = lab.kubectl_ok(&["logs", "crash", "--previous"]);
    assert_eq!(previous, "crashing\n");
    let events = lab.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=crash,reason=BackOff",
    ]);
    assert!(
        events.contains("Back-off restarting failed container c in pod crash_default"),
        "{events}"
    );
    lab.kubectl_ok(&["delete", "pod", "crash", "done", "fail", "--grace-period=1"]);
}

fn bad_input_gets_upstream_reasons(lab: &Lab) {
    lab.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: noimage}
spec:
  nodeName: node-0
  containers: [{name: c, image: "skiff.local/does-not-exist:1"}]
---
apiVersion: v1
kind: Pod
metadata: {name: noconfig}
spec:
  nodeName: node-0
  containers:
  - name: c
    image: skiff.local/busybox:1
    env: [{name: X, valueFrom: {configMapKeyRef: {name: missing, key: x}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: nocommand}
spec:
  nodeName: node-0
  containers: [{name: c, image: skiff.local/busybox:1, command: ["/not/in/the/image"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: noport}
spec:
  nodeName: node-0
  containers:
  - name: c
    image: skiff.local/busybox:1
    command: ["sleep", "3600"]
    readinessProbe: {httpGet: {port: nonexistent}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: novolume}
spec:
  nodeName: node-0
  volumes: [{name: s, secret: {secretName: missing}}]
  containers: [{name: c, image: skiff.local/busybox:1, command: ["sleep", "3600"]}]
"#,
    );
    let waiting =
        |pod: &str| lab.pod_field(pod, "{.status.containerStatuses[0].state.waiting.reason}");
    lab.wait("noimage in ErrImagePull/ImagePullBackOff", 60, || {
        matches!(
            waiting("noimage").as_str(),
            "ErrImagePull" | "ImagePullBackOff"
        )
    });
    lab.wait("noconfig in CreateContainerConfigError", 60, || {
        waiting("noconfig") == "CreateContainerConfigError"
    });
    let message = lab.pod_field(
        "noconfig",
        "{.status.containerStatuses[0].state.waiting.message}",
    );
    assert_eq!(message, "configmap \"missing\" not found");
    lab.wait("nocommand failing to start", 60, || {
        lab.pod_field(
            "nocommand",
            "{.status.containerStatuses[0].lastState.terminated.reason}",
        ) == "StartError"
            || lab.pod_field(
                "nocommand",
                "{.status.containerStatuses[0].state.terminated.reason}",
            ) == "StartError"
    });
    lab.wait("noport Unhealthy", 60, || {
        let events = lab.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=noport,reason=Unhealthy",
        ]);
        events.contains("couldn't find port \"nonexistent\"")
    });
    assert_eq!(
        lab.pod_field("noport", "{.status.containerStatuses[0].ready}"),
        "false"
    );
    lab.wait("novolume FailedMount", 60, || {
        let events = lab.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=novolume,reason=FailedMount",
        ]);
        events.contains("secret \"missing\" not found")
    });
    assert_eq!(waiting("novolume"), "ContainerCreating");
    // The other pods were not disturbed.
    assert_eq!(
        lab.pod_field("full", "{.status.conditions[?(@.type==\"Ready\")].status}"),
        "True"
    );
    lab.kubectl_ok(&[
        "delete",
        "pod",
        "noimage",
        "noconfig",
        "nocommand",
        "noport",
        "novolume",
        "--grace-period=1",
    ]);
}

fn seccomp_profiles_filter_syscalls(lab: &Lab) {
    // Localhost profiles live under <root-dir>/seccomp on the node.
    let profiles = lab.nodes[0].root.join("kubelet/seccomp/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::write(
        profiles.join("no-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let script = "grep Seccomp: /proc/self/status; \
                  if unshare -U true; then echo unshare=ok; else echo unshare=denied; fi; \
                  if mkdir /tmp/d; then echo mkdir=ok; else echo mkdir=denied; fi";
    let pod = |name: &str, profile: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: node-0
  restartPolicy: Never
  securityContext: {{seccompProfile: {profile}}}
  containers:
  - name: c
    image: skiff.local/busybox:1
    command: ["sh", "-c", {script:?}]
"#
        )
    };
    let mut yaml = String::new();
    for (name, profile) in [
        ("sc-default", "{type: RuntimeDefault}"),
        ("sc-unconfined", "{type: Unconfined}"),
        (
            "sc-local",
            "{type: Localhost, localhostProfile: profiles/no-mkdir.json}",
        ),
        (
            "sc-missing",
            "{type: Localhost, localhostProfile: profiles/missing.json}",
        ),
    ] {
        yaml.push_str(&pod(name, profile));
        yaml.push_str("---\n");
    }
    lab.apply(&yaml);
    for name in ["sc-default", "sc-unconfined", "sc-local"] {
        lab.wait(&format!("{name} Succeeded"), 60, || {
            lab.pod_field(name, "{.status.phase}") == "Succeeded"
        });
    }
    // RuntimeDefault: a filter (mode 2) that refuses a user namespace with EPERM, as
    // containerd's default profile does for a container without CAP_SYS_ADMIN.
    let logs = lab.kubectl_ok(&["logs", "sc-default"]);
    for text in [
        "Seccomp:\t2",
        "unshare(0x10000000): Operation not permitted",
        "unshare=denied",
        "mkdir=ok",
    ] {
        assert!(logs.contains(text), "sc-default lacks {text:?}:\n{logs}");
    }
    let logs = lab.kubectl_ok(&["logs", "sc-unconfined"]);
    for text in ["Seccomp:\t0", "unshare=ok", "mkdir=ok"] {
        assert!(logs.contains(text), "sc-unconfined lacks {text:?}:\n{logs}");
    }
    let logs = lab.kubectl_ok(&["logs", "sc-local"]);
    for text in [
        "Seccomp:\t2",
        "Permission denied",
        "mkdir=denied",
        "unshare=ok",
    ] {
        assert!(logs.contains(text), "sc-local lacks {text:?}:\n{logs}");
    }
    // A profile that is not on the node: CreateContainerError, as containerd reports it.
    lab.wait("sc-missing in CreateContainerError", 60, || {
        lab.pod_field(
            "sc-missing",
            "{.status.containerStatuses[0].state.waiting.reason}",
        ) == "CreateContainerError"
    });
    let message = lab.pod_field(
        "sc-missing",
        "{.status.containerStatuses[0].state.waiting.message}",
    );
    assert!(
        message.contains("cannot load seccomp profile")
            && message.contains("seccomp/profiles/missing.json"),
        "{message}"
    );
    let table = lab.kubectl_ok(&["get", "pods", "sc-default", "sc-missing"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("sc-default ") && l.contains("Completed")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("sc-missing ") && l.contains("CreateContainerError")),
        "{table}"
    );
    lab.kubectl_ok(&[
        "delete",
        "pod",
        "sc-default",
        "sc-unconfined",
        "sc-local",
        "sc-missing",
        "--grace-period=1",
    ]);
}

/// A `grpc.health.v1.Health/Check` server on plain HTTP/2, in a node's network namespace:
/// answers with the status in `status` (1 SERVING, 2 NOT_SERVING) and remembers the last
/// request's service and user agent. Stops when `stop` is set (checked between connections).
struct HealthServer {
    status: std::sync::Arc<std::sync::atomic::AtomicI32>,
    seen: std::sync::Arc<std::sync::Mutex<(String, String)>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HealthServer {
    fn start(netns: &str, address: &str) -> HealthServer {
        use std::sync::atomic::{AtomicBool, AtomicI32};
        use std::sync::{Arc, Mutex};
        let status = Arc::new(AtomicI32::new(1));
        let seen = Arc::new(Mutex::new((String::new(), String::new())));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let netns = format!("/run/netns/{netns}");
        let address = address.to_string();
        let (st, sn, sp) = (status.clone(), seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // setns moves only this thread into the node's namespace; the listening socket
            // stays there.
            let ns = std::fs::File::open(&netns).unwrap();
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a namespace fd we opened; it affects only this thread.
            let entered = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(entered, 0, "setns {netns}");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&address).await.unwrap();
                ready_tx.send(()).unwrap();
                while !sp.load(std::sync::atomic::Ordering::SeqCst) {
                    let accepted =
                        tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
                    let Ok(Ok((tcp, _))) = accepted else { continue };
                    let (st, sn) = (st.clone(), sn.clone());
                    tokio::spawn(async move {
                        let _ = serve_health(tcp, st, sn).await;
                    });
                }
            });
        });
        ready_rx.recv().unwrap();
        HealthServer {
            status,
            seen,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve_health(
    tcp: tokio::net::TcpStream,
    status: std::sync::Arc<std::sync::atomic::AtomicI32>,
    seen: std::sync::Arc<std::sync::Mutex<(String, String)>>,
) -> Result<(), h2::Error> {
    let mut connection = h2::server::handshake(tcp).await?;
    while let Some(request) = connection.accept().await {
        let (request, mut respond) = request?;
        let agent = request
            .headers()
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let path = request.uri().path().to_string();
        let mut body = request.into_body();
        let mut message = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            message.extend_from_slice(&chunk);
        }
        // A gRPC frame (flag, length) holding HealthCheckRequest{service = 1}.
        let service = message
            .get(7..)
            .map(|s| String::from_utf8_lossy(s).to_string())
            .unwrap_or_default();
        *seen.lock().unwrap() = (service, agent);
        let response = http::Response::builder()
            .status(200)
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let mut send = respond.send_response(response, false)?;
        let mut trailers = http::HeaderMap::new();
        if path == "/grpc.health.v1.Health/Check" {
            let code = status.load(std::sync::atomic::Ordering::SeqCst) as u8;
            send.send_data(bytes::Bytes::from(vec![0, 0, 0, 0, 2, 0x08, code]), false)?;
            trailers.insert("grpc-status", "0".parse().unwrap());
        } else {
            trailers.insert("grpc-status", "12".parse().unwrap());
        }
        send.send_trailers(trailers)?;
    }
    Ok(())
}

fn grpc_probes_call_the_health_service(lab: &Lab) {
    // A hostNetwork pod's probes go to the node's address, where the test serves the health
    // service itself (tests/kubelet.rs `HealthServer`).
    let server = HealthServer::start(&lab.nodes[0].netns, "192.168.56.10:50051");
    lab.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: grpc}
spec:
  nodeName: node-0
  hostNetwork: true
  containers:
  - name: c
    image: skiff.local/busybox:1
    command: ["sleep", "3600"]
    readinessProbe: {grpc: {port: 50051, service: skiff}, periodSeconds: 1}
"#,
    );
    let ready = || lab.pod_field("grpc", "{.status.conditions[?(@.type==\"Ready\")].status}");
    lab.wait("grpc Ready (SERVING)", 60, || ready() == "True");
    let (service, agent) = server.seen.lock().unwrap().clone();
    assert_eq!(service, "skiff");
    assert!(agent.starts_with("kube-probe/1.32"), "{agent}");
    server.status.store(2, std::sync::atomic::Ordering::SeqCst);
    lab.wait("grpc not Ready (NOT_SERVING)", 60, || ready() == "False");
    lab.wait("the Unhealthy event", 60, || {
        lab.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=grpc,reason=Unhealthy",
        ])
        .contains("Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")")
    });
    lab.kubectl_ok(&["delete", "pod", "grpc", "--grace-period=1"]);
    drop(server);
}

/// A file of the lab's cgroup `relative` in a v1 hierarchy (`controller`) or, with "", in
/// the unified one.
fn cgroup_file(lab: &Lab, controller: &str, relative: &str, file: &str) -> String {
    let path = std::path::Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(lab.cgroup_root.trim_start_matches('/'))
        .join(relative)
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

fn limits_reach_the_cgroups_and_oom_is_reported(lab: &Lab) {
    lab.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: limited}
spec:
  nodeName: node-0
  containers:
  - name: c
    image: skiff.local/busybox:1
    command: ["sleep", "3600"]
    resources: {limits: {cpu: 500m, memory: 64Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  nodeName: node-0
  restartPolicy: Never
  containers:
  - name: c
    image: skiff.local/busybox:1
    command: ["tail", "/dev/zero"]
    resources: {limits: {memory: 16Mi}}
"#,
    );
    lab.wait("limited Running", 60, || {
        lab.pod_field("limited", "{.status.phase}") == "Running"
    });
    assert_eq!(lab.pod_field("limited", "{.status.qosClass}"), "Guaranteed");
    let uid = lab.pod_field("limited", "{.metadata.uid}");
    let id = lab
        .pod_field("limited", "{.status.containerStatuses[0].containerID}")
        .trim_start_matches("skiff://")
        .to_string();
    let pod = format!("node-0/kubepods/pod{uid}");
    if std::path::Path::new("/sys/fs/cgroup/memory").exists() {
        assert_eq!(
            cgroup_file(
                lab,
                "memory",
                &format!("{pod}/{id}"),
                "memory.limit_in_bytes"
            ),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            cgroup_file(lab, "memory", &pod, "memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            cgroup_file(lab, "cpu", &format!("{pod}/{id}"), "cpu.cfs_quota_us"),
            "50000"
        );
        assert_eq!(cgroup_file(lab, "cpu", &pod, "cpu.shares"), "512");
    } else {
        assert_eq!(
            cgroup_file(lab, "", &format!("{pod}/{id}"), "memory.max"),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            cgroup_file(lab, "", &format!("{pod}/{id}"), "cpu.max"),
            "50000 100000"
        );
    }
    lab.wait("hog OOMKilled", 90, || {
        lab.pod_field(
            "hog",
            "{.status.containerStatuses[0].state.terminated.reason}",
        ) == "OOMKilled"
    });
    assert_eq!(
        lab.pod_field(
            "hog",
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "137"
    );
    assert_eq!(lab.pod_field("hog", "{.status.phase}"), "Failed");
    lab.kubectl_ok(&["delete", "pod", "limited", "hog", "--grace-period=1"]);
}

fn a_killed_kubelet_restarts_no_container(lab: &mut Lab) {
    let ids = lab.pod_field("full", "{.status.containerStatuses[*].containerID}");
    let ready_since = lab.pod_field(
        "full",
        "{.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}",
    );
    let before = lab
        .kubectl_ok(&["logs", "full", "-c", "sidecar"])
        .lines()
        .count();
    lab.kill_kubelet(0);
    std::thread::sleep(Duration::from_secs(2));
    lab.start_kubelet(0);
    // Lines written while the kubelet was away are in the log: the shim kept writing.
    lab.wait("logs reachable again", 60, || {
        lab.kubectl(&["logs", "full", "-c", "sidecar"])
            .status
            .success()
    });
    let after = lab
        .kubectl_ok(&["logs", "full", "-c", "sidecar"])
        .lines()
        .count();
    assert!(after >= before + 2, "{before} lines before, {after} after");
    lab.wait("the restarted kubelet reporting", 60, || {
        lab.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=node-0,reason=Starting",
        ])
        .lines()
        .count()
            >= 3
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        lab.pod_field("full", "{.status.containerStatuses[*].containerID}"),
        ids,
        "containers were replaced"
    );
    assert_eq!(
        lab.pod_field("full", "{.status.containerStatuses[*].restartCount}"),
        "0 0"
    );
    assert_eq!(
        lab.pod_field("full", "{.status.conditions[?(@.type==\"Ready\")].status}"),
        "True"
    );
    assert_eq!(
        lab.pod_field(
            "full",
            "{.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}"
        ),
        ready_since,
        "the pod flapped to not-ready"
    );
}

fn deletion_runs_prestop_and_sigterm(lab: &Lab) {
    let markers = lab.dir.path().join("markers");
    lab.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: graceful}}
spec:
  nodeName: node-0
  terminationGracePeriodSeconds: 20
  volumes: [{{name: m, hostPath: {{path: "{}", type: DirectoryOrCreate}}}}]
  containers:
  - name: c
    image: skiff.local/busybox:1
    command: ["sh", "-c", "trap 'echo term > /m/term; exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{{name: m, mountPath: /m}}]
    lifecycle: {{preStop: {{exec: {{command: ["sh", "-c", "echo prestop > /m/prestop"]}}}}}}
"#,
        markers.display()
    ));
    lab.wait("graceful Running", 60, || {
        lab.pod_field("graceful", "{.status.phase}") == "Running"
    });
    lab.kubectl_ok(&["delete", "pod", "graceful"]);
    assert_eq!(
        std::fs::read_to_string(markers.join("prestop")).unwrap(),
        "prestop\n"
    );
    assert_eq!(
        std::fs::read_to_string(markers.join("term")).unwrap(),
        "term\n"
    );
    let gone = lab.kubectl(&["get", "pod", "graceful"]);
    assert!(!gone.status.success());
}

/// `skiff image list` of node `i`'s store.
fn node_images(lab: &Lab, i: usize) -> String {
    let out = std::process::Command::new(common::skiff_bin())
        .args(["image", "--root"])
        .arg(lab.nodes[i].root.join("images"))
        .arg("list")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn unused_images_are_collected(lab: &mut Lab) {
    // An image no container uses, beside busybox which a running pod uses.
    let out = std::process::Command::new(common::skiff_bin())
        .args(["image", "--root"])
        .arg(lab.nodes[1].root.join("images"))
        .args(["build", "skiff.local/unused:1", "--from"])
        .arg(lab.dir.path().join("image"))
        .args(["--cmd", "true"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(node_images(lab, 1).contains("skiff.local/unused:1"));
    lab.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: gc-keeper}
spec:
  nodeName: node-1
  containers: [{name: c, image: skiff.local/busybox:1, command: ["sleep", "3600"]}]
"#,
    );
    lab.wait("gc-keeper Running", 60, || {
        lab.pod_field("gc-keeper", "{.status.phase}") == "Running"
    });
    // Thresholds every disk is over (1 % high, 0 % low), no minimum age, a round a second.
    lab.nodes[1].kubelet_args = [
        "--image-gc-high-threshold=1",
        "--image-gc-low-threshold=0",
        "--minimum-image-ttl-duration=0s",
        "--image-gc-period=1s",
    ]
    .map(String::from)
    .to_vec();
    lab.kill_kubelet(1);
    lab.start_kubelet(1);
    lab.wait("the unused image collected", 60, || {
        !node_images(lab, 1).contains("skiff.local/unused:1")
    });
    // The image in use stays; everything else was not enough to get to 0 %: upstream's
    // FreeDiskSpaceFailed on the Node.
    assert!(node_images(lab, 1).contains("skiff.local/busybox:1"));
    lab.wait("FreeDiskSpaceFailed on node-1", 60, || {
        lab.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=Node,involvedObject.name=node-1,reason=FreeDiskSpaceFailed",
        ])
        .contains("Failed to garbage collect required amount of images. Attempted to free")
    });
    assert_eq!(lab.pod_field("gc-keeper", "{.status.phase}"), "Running");
    // A low threshold not below the high one is refused at start, in upstream's words.
    let refused = std::process::Command::new(common::skiff_bin())
        .args([
            "kubelet",
            "--kubeconfig",
            "/nonexistent",
            "--node-name",
            "x",
        ])
        .args(["--node-ip", "127.0.0.1", "--image-gc-high-threshold=50"])
        .arg("--image-gc-low-threshold=60")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(
            "imageGCLowThresholdPercent (--image-gc-low-threshold) 60 must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) 50"
        ),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    lab.nodes[1].kubelet_args.clear();
    lab.kill_kubelet(1);
    lab.start_kubelet(1);
    lab.kubectl_ok(&["delete", "pod", "gc-keeper", "--grace-period=1"]);
}

fn pods_on_two_nodes_reach_each_other(lab: &Lab) {
    lab.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: remote}
spec:
  nodeSelector: {kubernetes.io/hostname: node-1}
  containers: [{name: web, image: skiff.local/busybox:1, command: ["sh", "-c", "echo remote > /tmp/index.html; httpd -f -p 8080 -h /tmp"]}]
"#,
    );
    lab.wait("remote Running", 60, || {
        lab.pod_field("remote", "{.status.phase}") == "Running"
    });
    assert_eq!(lab.pod_field("remote", "{.spec.nodeName}"), "node-1");
    let ip = lab.pod_field("remote", "{.status.podIP}");
    assert!(ip.starts_with("10.244.1."), "{ip}");
    assert_eq!(lab.pod_field("remote", "{.status.hostIP}"), "192.168.56.11");
    lab.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: node-0
  restartPolicy: Never
  containers:
  - name: c
    image: skiff.local/busybox:1
    # busybox-static's wget crashes in glibc's static NSS; nc speaks the HTTP by hand.
    command: ["sh", "-c", "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} 8080"]
"#
    ));
    lab.wait("client Succeeded", 60, || {
        lab.pod_field("client", "{.status.phase}") == "Succeeded"
    });
    let answer = lab.kubectl_ok(&["logs", "client"]);
    assert!(
        answer.starts_with("HTTP/1.") && answer.ends_with("remote\n"),
        "{answer}"
    );
    let node1_logs = lab.kubectl_ok(&["logs", "remote"]);
    assert_eq!(node1_logs, "");
}

/// The lab's kubelets rotate container logs at 1Mi and keep 3 files (`lab.rs`): a pod writing
/// about 270 KiB a second rotates every few seconds. `kubectl logs -f` goes on across the
/// rotations without losing a line; `kubectl logs` reads the current file (as upstream); the
/// directory holds the current file, the newest rotated one plain and an older one gzipped.
fn container_logs_rotate(lab: &Lab) {
    lab.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: chatty}
spec:
  nodeName: node-0
  containers:
  - name: c
    image: skiff.local/busybox:1
    command: ["sh", "-c", "sleep 4; i=0; while [ $i -lt 20 ]; do i=$((i+1)); busybox seq 1 6000; sleep 1; done; echo done; sleep 3600"]
"#,
    );
    lab.wait("chatty Running", 60, || {
        lab.pod_field("chatty", "{.status.phase}") == "Running"
    });
    let mut follow = lab
        .kubectl_cmd(&["logs", "-f", "chatty"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    // Every line after the first follows its predecessor: 1..6000, 1..6000, …, done.
    let mut previous: Option<u32> = None;
    let mut chunks_ended = 0;
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("kubectl logs -f stalled (lost the file at a rotation?)");
        if line == "done" {
            break;
        }
        let n: u32 = line.parse().unwrap_or_else(|_| panic!("line {line:?}"));
        if let Some(p) = previous {
            assert!(
                n == p + 1 || (p == 6000 && n == 1),
                "{n} after {p}: lines lost"
            );
        }
        if n == 6000 {
            chunks_ended += 1;
        }
        previous = Some(n);
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(chunks_ended >= 15, "followed {chunks_ended} chunks of 20");
    assert_eq!(lab.kubectl_ok(&["logs", "chatty", "--tail=1"]), "done\n");
    let uid = lab.pod_field("chatty", "{.metadata.uid}");
    let dir = lab.nodes[0]
        .root
        .join("logs")
        .join(format!("default_chatty_{uid}"))
        .join("c");
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    // The gzip runs in a child of the shim: wait for it to finish. Sorted names: the current
    // file, the older rotated one gzipped, the newest rotated one plain.
    lab.wait("3 log files: current, rotated.gz, rotated", 30, || {
        let names = listing();
        names.len() == 3 && names[1].ends_with(".gz") && !names[2].ends_with(".gz")
    });
    let names = listing();
    assert_eq!(names[0], "0.log", "{names:?}");
    let newest = names[2].strip_prefix("0.log.").unwrap();
    assert!(
        newest.len() == 15 && newest.as_bytes()[8] == b'-',
        "{names:?}"
    );
    let older = names[1]
        .strip_prefix("0.log.")
        .and_then(|n| n.strip_suffix(".gz"))
        .unwrap();
    assert!(older < newest, "{names:?}");
    let rotated = std::fs::metadata(dir.join(&names[2])).unwrap().len();
    assert!(
        (1 << 20..2 << 20).contains(&rotated),
        "rotated at {rotated} bytes"
    );
    let unzipped = std::process::Command::new("gzip")
        .arg("-dc")
        .arg(dir.join(&names[1]))
        .output()
        .unwrap();
    assert!(unzipped.status.success());
    let text = String::from_utf8(unzipped.stdout).unwrap();
    assert!(
        text.lines().all(|l| l.contains(" stdout F ")),
        "CRI lines in the gzipped file"
    );
    lab.kubectl_ok(&["delete", "pod", "chatty", "--grace-period=1"]);
}

/// Static pods (`--pod-manifest-path`, which the lab gives every kubelet as
/// `<node root>/manifests`): a manifest dropped into node-0's directory runs there and shows
/// up as the mirror pod `<name>-node-0`; a mirror pod deleted through the API comes back with
/// the same container running; an edited manifest replaces the pod; the pod keeps running
/// while the API server is down; a removed manifest stops it and removes the mirror pod.
fn static_pods_are_mirrored(lab: &mut Lab) {
    let manifests = lab.nodes[0].root.join("manifests");
    let write = |text: &str| {
        // Written beside (a dot file is not read) and renamed: the kubelet never sees half.
        let tmp = manifests.join(".web.yaml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, manifests.join("web.yaml")).unwrap();
    };
    let manifest = |greeting: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: static-web, labels: {{app: static-web}}}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: skiff.local/busybox:1
    command: ["sh", "-c", "echo {greeting} > /tmp/index.html; httpd -f -p 8080 -h /tmp"]
"#
        )
    };
    write(&manifest("static"));
    let pod = "static-web-node-0";
    lab.wait("the mirror pod Running", 60, || {
        lab.pod_field(pod, "{.status.phase}") == "Running"
    });
    let listed = lab.kubectl_ok(&["get", "pods"]);
    let row = listed
        .lines()
        .find(|l| l.starts_with(pod))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(row.contains("1/1") && row.contains("Running"), "{row}");
    let annotation = |key: &str| {
        lab.pod_field(
            pod,
            &format!("{{.metadata.annotations.kubernetes\\.io/{key}}}"),
        )
    };
    let hash = annotation("config\\.hash");
    assert_eq!(hash.len(), 32, "{hash}");
    assert_eq!(annotation("config\\.mirror"), hash);
    assert_eq!(annotation("config\\.source"), "file");
    assert!(!annotation("config\\.seen").is_empty());
    assert_eq!(
        lab.pod_field(
            pod,
            "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}/{.metadata.ownerReferences[0].controller}"
        ),
        "Node/node-0/true"
    );
    let node_uid = lab.kubectl_ok(&["get", "node", "node-0", "-o", "jsonpath={.metadata.uid}"]);
    assert_eq!(
        lab.pod_field(pod, "{.metadata.ownerReferences[0].uid}"),
        node_uid
    );
    assert_eq!(lab.pod_field(pod, "{.spec.nodeName}"), "node-0");
    let ip = lab.pod_field(pod, "{.status.podIP}");
    assert!(ip.starts_with("10.244.0."), "pod IP {ip}");
    assert_eq!(
        node_wget(lab, 0, &format!("http://{ip}:8080/index.html")),
        "static\n"
    );
    assert!(lab.kubectl(&["logs", pod]).status.success());
    let container = lab.pod_field(pod, "{.status.containerStatuses[0].containerID}");
    let mirror_uid = lab.pod_field(pod, "{.metadata.uid}");

    // Deleted through the API: made again, the same container still running. (`--wait=false`:
    // kubectl's wait for the old uid hung once in three runs when the kubelet made the new
    // mirror pod at once — the new uid is awaited below instead.)
    lab.kubectl_ok(&["delete", "pod", pod, "--wait=false"]);
    lab.wait("the mirror pod made again and Running", 60, || {
        let uid = lab.pod_field(pod, "{.metadata.uid}");
        !uid.is_empty() && uid != mirror_uid && lab.pod_field(pod, "{.status.phase}") == "Running"
    });
    assert_eq!(
        lab.pod_field(pod, "{.status.containerStatuses[0].containerID}"),
        container
    );
    assert_eq!(
        lab.pod_field(pod, "{.status.containerStatuses[0].restartCount}"),
        "0"
    );

    // Edited: a new hash, a new pod in place of the old one.
    write(&manifest("edited"));
    lab.wait("the edited static pod Running", 90, || {
        annotation("config\\.hash") != hash
            && lab.pod_field(pod, "{.status.phase}") == "Running"
            && lab.pod_field(pod, "{.status.containerStatuses[0].containerID}") != container
    });
    let new_hash = annotation("config\\.hash");
    let ip = lab.pod_field(pod, "{.status.podIP}");
    assert_eq!(
        node_wget(lab, 0, &format!("http://{ip}:8080/index.html")),
        "edited\n"
    );
    let pods_dir = lab.nodes[0].root.join("kubelet/pods");
    lab.wait("the old static pod's directory removed", 60, || {
        !pods_dir.join(&hash).exists()
    });

    // The API server away: the static pod serves on.
    lab.kill_server();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        node_wget(lab, 0, &format!("http://{ip}:8080/index.html")),
        "edited\n"
    );
    lab.start_server();
    lab.wait("the API back with the mirror pod", 90, || {
        lab.pod_field(pod, "{.status.phase}") == "Running"
    });

    // Removed: the pod stops and the mirror pod goes.
    std::fs::remove_file(manifests.join("web.yaml")).unwrap();
    lab.wait("the mirror pod deleted", 60, || {
        !lab.kubectl(&["get", "pod", pod]).status.success()
    });
    lab.wait("the static pod's directory removed", 60, || {
        !pods_dir.join(&new_hash).exists()
    });
}

fn nothing_is_left_behind(lab: &Lab) {
    lab.kubectl_ok(&["delete", "pods", "--all", "--grace-period=1"]);
    for node in &lab.nodes {
        let pods = node.root.join("kubelet/pods");
        let containers = node.root.join("kubelet/containers");
        lab.wait("the kubelet's pod and container dirs empty", 60, || {
            let empty = |d: &std::path::Path| {
                std::fs::read_dir(d)
                    .map(|mut e| e.next().is_none())
                    .unwrap_or(true)
            };
            empty(&pods) && empty(&containers)
        });
    }
    let mounts = lab.mounts();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    for hierarchy in ["memory", "cpu", "pids", "unified"] {
        let root = std::path::Path::new("/sys/fs/cgroup")
            .join(hierarchy)
            .join(lab.cgroup_root.trim_start_matches('/'));
        let mut left = Vec::new();
        find_pod_cgroups(&root, &mut left);
        assert!(left.is_empty(), "pod cgroups left: {left:?}");
    }
}

fn find_pod_cgroups(dir: &std::path::Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("pod") {
                out.push(entry.path().display().to_string());
            }
            find_pod_cgroups(&entry.path(), out);
        }
    }
}
