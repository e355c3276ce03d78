//! A small cluster of network-namespace nodes for node-level tests: a switch namespace with a
//! bridge, one namespace per node (`192.168.56.10 + i` on eth0, routes to the other nodes'
//! pod ranges), `skiff server` in node 0, and `skiff kubelet` in every node with its own
//! credential (`skiff token node`), root dir, image store, CNI configuration (Debian's
//! bridge + host-local + portmap plugins, pods in 10.244.<i>.0/24) and cgroup root.
//!
//! Everything lives inside namespaces the lab creates (DESIGN.md's safety rule) and is
//! removed when the lab is dropped, by the names and pids it created: kubelets, server,
//! shims (their recorded pids), the runtime's containers, mounts under the lab dir, the
//! namespaces and the cgroup tree.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::{skiff_bin, spawn_until_ready, wait_until};

pub struct LabNode {
    pub name: String,
    pub netns: String,
    pub ip: String,
    pub root: PathBuf,
    pub kubelet: Option<Child>,
    pub netd: Option<Child>,
    /// More flags for this node's kubelet at its next (re)start.
    pub kubelet_args: Vec<String>,
}

/// How pods are networked in a lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabNetwork {
    /// Debian's bridge + host-local plugins on 10.244.<i>.0/24, host-gw routes between nodes.
    Bridge,
    /// `skiff netd` on every node: skiff-cni, the VXLAN overlay, ranges from node IPAM.
    Netd,
}

pub struct Lab {
    pub prefix: String,
    pub dir: tempfile::TempDir,
    pub server: Option<Child>,
    pub kubeconfig: PathBuf,
    pub nodes: Vec<LabNode>,
    pub cgroup_root: String,
    pub network: LabNetwork,
    created_netns: Vec<String>,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

pub fn runtime_bin() -> PathBuf {
    Path::new(skiff_bin()).with_file_name("skiff-runtime")
}

/// Whether the lab can run here (root, CNI plugins, nsenter, the runtime binary).
pub fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    for (path, what) in [
        ("/usr/lib/cni/bridge", "containernetworking-plugins"),
        ("/usr/bin/nsenter", "util-linux"),
        ("/bin/busybox", "busybox-static"),
    ] {
        if !Path::new(path).exists() {
            return Some(format!("{what} ({path}) is not installed"));
        }
    }
    if !runtime_bin().exists() {
        return Some(format!("{} is not built", runtime_bin().display()));
    }
    None
}

impl Lab {
    /// A cluster of `nodes` nodes on Debian's bridge plugin; node 0 also runs the control
    /// plane.
    pub fn start(nodes: usize) -> Lab {
        Lab::start_with(nodes, LabNetwork::Bridge)
    }

    /// A cluster of `nodes` nodes networked as `network` says.
    pub fn start_with(nodes: usize, network: LabNetwork) -> Lab {
        let prefix = format!("skl{}", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix("skiff-lab")
            .tempdir()
            .unwrap();
        let mut lab = Lab {
            prefix: prefix.clone(),
            kubeconfig: dir.path().join("server/admin.kubeconfig"),
            dir,
            server: None,
            nodes: Vec::new(),
            cgroup_root: format!("/skiff-test-{}", std::process::id()),
            network,
            created_netns: Vec::new(),
        };
        let switch = format!("{prefix}-sw");
        ip(&["netns", "add", &switch]);
        lab.created_netns.push(switch.clone());
        ip(&["-n", &switch, "link", "set", "lo", "up"]);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for i in 0..nodes {
            let netns = format!("{prefix}-n{i}");
            ip(&["netns", "add", &netns]);
            lab.created_netns.push(netns.clone());
            let address = format!("192.168.56.{}", 10 + i);
            let peer = format!("v{i}");
            ip(&[
                "-n", &switch, "link", "add", &peer, "type", "veth", "peer", "name", "eth0",
                "netns", &netns,
            ]);
            ip(&["-n", &switch, "link", "set", &peer, "master", "br0", "up"]);
            ip(&["-n", &netns, "link", "set", "lo", "up"]);
            ip(&[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{address}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &netns, "link", "set", "eth0", "up"]);
            run(Command::new("ip").args([
                "netns",
                "exec",
                &netns,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ]));
            let root = lab.dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(root.join("cni")).unwrap();
            let conf = format!(
                r#"{{"cniVersion":"1.0.0","name":"k8s-pod-network","plugins":[
  {{"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":false,"hairpinMode":true,
   "ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.244.{i}.0/24","gateway":"10.244.{i}.1"}}]],"routes":[{{"dst":"0.0.0.0/0"}}],"dataDir":"{}"}}}},
  {{"type":"portmap","capabilities":{{"portMappings":true}},"snat":true}}]}}"#,
                root.join("cni-ipam").display()
            );
            if network == LabNetwork::Bridge {
                std::fs::write(root.join("cni/10-bridge.conflist"), conf).unwrap();
            }
            lab.nodes.push(LabNode {
                name: format!("node-{i}"),
                netns,
                ip: address,
                root,
                kubelet: None,
                netd: None,
                kubelet_args: Vec::new(),
            });
        }
        // Pod ranges of the other nodes through their node address (host-gw style).
        for i in (0..nodes).filter(|_| network == LabNetwork::Bridge) {
            for j in 0..nodes {
                if i != j {
                    ip(&[
                        "-n",
                        &lab.nodes[i].netns,
                        "route",
                        "add",
                        &format!("10.244.{j}.0/24"),
                        "via",
                        &lab.nodes[j].ip,
                    ]);
                }
            }
        }
        lab.build_images();
        lab.start_server();
        for i in 0..nodes {
            lab.start_kubelet(i);
        }
        if network == LabNetwork::Netd {
            for i in 0..nodes {
                lab.start_netd(i);
            }
        }
        for i in 0..nodes {
            let name = lab.nodes[i].name.clone();
            wait_until(&format!("node {name} Ready"), || {
                let out = lab.kubectl(&[
                    "get",
                    "node",
                    &name,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ]);
                String::from_utf8_lossy(&out.stdout) == "True"
            });
        }
        lab.approve_serving_certificates();
        lab
    }

    /// The cluster CA (the API server's `tls/ca.crt`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("server/tls/ca.crt")
    }

    /// Approves the kubelets' pending serving-certificate requests (signer
    /// `kubernetes.io/kubelet-serving`, each from its own node), as `skiff up` does, and waits
    /// until every node has its certificate issued.
    pub fn approve_serving_certificates(&self) {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("system:node:{}", n.name))
            .collect();
        wait_until("the kubelets' serving certificates", || {
            let out = self.kubectl(&["get", "csr", "-o", "json"]);
            let Ok(list) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
                return false;
            };
            let mut issued = Vec::new();
            for csr in list["items"].as_array().into_iter().flatten() {
                let requester = csr["spec"]["username"].as_str().unwrap_or_default();
                if csr["spec"]["signerName"] != "kubernetes.io/kubelet-serving"
                    || !nodes.iter().any(|n| n == requester)
                {
                    continue;
                }
                if csr["status"]["certificate"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty())
                {
                    issued.push(requester.to_string());
                } else if csr["status"]["conditions"].is_null() {
                    let name = csr["metadata"]["name"].as_str().unwrap_or_default();
                    let _ = self.kubectl(&["certificate", "approve", name]);
                }
            }
            nodes.iter().all(|n| issued.contains(n))
        });
    }

    /// `skiff.local/busybox:1`: busybox-static with its applets, in every node's store.
    fn build_images(&self) {
        let ctx = self.dir.path().join("image/bin");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::copy("/bin/busybox", ctx.join("busybox")).unwrap();
        for applet in [
            "sh", "ls", "cat", "echo", "sleep", "httpd", "wget", "nc", "tail", "head", "tar",
            "true", "false", "env", "id", "grep", "mkdir", "touch", "date", "hostname", "ps",
            "kill", "ip", "ping", "unshare", "stty",
        ] {
            std::os::unix::fs::symlink("busybox", ctx.join(applet)).unwrap();
        }
        std::fs::create_dir_all(self.dir.path().join("image/tmp")).unwrap();
        std::fs::create_dir_all(self.dir.path().join("image/etc")).unwrap();
        std::fs::write(
            self.dir.path().join("image/etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
        )
        .unwrap();
        for node in &self.nodes {
            run(Command::new(skiff_bin())
                .args(["image", "--root"])
                .arg(node.root.join("images"))
                .args(["build", "skiff.local/busybox:1", "--from"])
                .arg(self.dir.path().join("image"))
                .args(["--cmd", "sh"]));
        }
    }

    pub fn api_url(&self) -> String {
        format!("https://{}:6443", self.nodes[0].ip)
    }

    /// SIGKILL of the control plane (`skiff server`); `start_server` brings it back with its
    /// data.
    pub fn kill_server(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn start_server(&mut self) {
        let data = self.dir.path().join("server");
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.nodes[0].netns))
            .arg(skiff_bin())
            .arg("server")
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--bind-address",
                &self.nodes[0].ip,
                "--advertise-address",
                &self.nodes[0].ip,
                "--secure-port",
                "6443",
            ])
            .args(["--store-listen-url", "http://127.0.0.1:2379"])
            .args(["--load-balancer-ip-range", "192.168.56.200-192.168.56.220"])
            // The kubelets serve with certificates from the cluster CA (`skiff up`'s setup).
            .arg("--kubelet-certificate-authority")
            .arg(data.join("tls/ca.crt"))
            .env("RUST_LOG", "warn");
        self.server = Some(spawn_until_ready(cmd, "skiff server ready", "skiff server"));
    }

    /// Starts (or restarts) node `i`'s kubelet with its own credential.
    pub fn start_kubelet(&mut self, i: usize) {
        let node = &self.nodes[i];
        let kubeconfig = node.root.join("kubelet.kubeconfig");
        // The first node gets its credential from the control plane (`skiff token node`); the
        // others join as kubeadm's do: a bootstrap token, then a certificate from a CSR.
        let bootstrap = node.root.join("bootstrap.kubeconfig");
        if i == 0 && !kubeconfig.exists() {
            run(Command::new(skiff_bin())
                .args(["token", "node", &node.name, "--data-dir"])
                .arg(self.dir.path().join("server"))
                .args(["--server", &self.api_url(), "--output"])
                .arg(&kubeconfig));
        }
        if i > 0 && !bootstrap.exists() {
            let out = Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", self.nodes[0].netns))
                .arg(skiff_bin())
                .args(["token", "create", "--kubeconfig"])
                .arg(&self.kubeconfig)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let admin = std::fs::read_to_string(&self.kubeconfig).unwrap();
            let admin_token = admin
                .lines()
                .find_map(|l| l.trim().strip_prefix("token: "))
                .unwrap()
                .to_string();
            std::fs::write(&bootstrap, admin.replace(&admin_token, &token)).unwrap();
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.root.join("kubelet.log"))
            .unwrap();
        // Static pod manifests (tests/kubelet.rs: static_pods_are_mirrored).
        let manifests = node.root.join("manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", node.netns))
            .arg(skiff_bin())
            .arg("kubelet")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(if i > 0 {
                vec![
                    "--bootstrap-kubeconfig".to_string(),
                    bootstrap.display().to_string(),
                    "--rotate-certificates".into(),
                ]
            } else {
                vec![]
            })
            .args(["--node-name", &node.name, "--node-ip", &node.ip])
            .arg("--root-dir")
            .arg(node.root.join("kubelet"))
            .arg("--pod-logs-dir")
            .arg(node.root.join("logs"))
            .arg("--image-root")
            .arg(node.root.join("images"))
            .arg("--cgroup-root")
            .arg(format!("{}/{}", self.cgroup_root, node.name))
            .arg("--cni-conf-dir")
            .arg(node.root.join("cni"))
            .arg("--cni-bin-dir")
            .arg(format!(
                "{}:/usr/lib/cni",
                node.root.join("cni-bin").display()
            ))
            .args(["--healthz-port", "0"])
            // The API server's client certificate authenticates; the serving certificate comes
            // from the cluster (approved by `approve_serving_certificates`).
            .arg("--client-ca-file")
            .arg(self.ca_file())
            .arg("--rotate-server-certificates")
            .arg("--pod-manifest-path")
            .arg(&manifests)
            // Small enough for tests/kubelet.rs to see rotations (container_logs_rotate).
            .args([
                "--container-log-max-size=1Mi",
                "--container-log-max-files=3",
            ])
            .args(&node.kubelet_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.nodes[i].kubelet = Some(child);
    }

    /// Starts (or restarts) node `i`'s `skiff netd` with the node's credential.
    pub fn start_netd(&mut self, i: usize) {
        let node = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.root.join("netd.log"))
            .unwrap();
        let kubeconfig = node.root.join("netd.kubeconfig");
        if !kubeconfig.exists() {
            run(Command::new(skiff_bin())
                .args(["token", "netd", &node.name, "--data-dir"])
                .arg(self.dir.path().join("server"))
                .args(["--server", &self.api_url(), "--output"])
                .arg(&kubeconfig));
        }
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", node.netns))
            .arg(skiff_bin())
            .arg("netd")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--node-name", &node.name])
            .arg("--cni-conf-dir")
            .arg(node.root.join("cni"))
            .arg("--cni-bin-dir")
            .arg(node.root.join("cni-bin"))
            .arg("--cni-data-dir")
            .arg(node.root.join("cni-ipam"))
            .args(["--resync-period", "5"])
            .arg("--cgroup-root")
            .arg(format!("{}/{}", self.cgroup_root, node.name))
            .arg("--bpf-root")
            .arg(node.root.join("bpf"))
            .env("RUST_LOG", "info")
            // The error, not a backtrace, in the log's last lines.
            .env("RUST_LIB_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.nodes[i].netd = Some(child);
    }

    /// SIGKILL of node `i`'s netd (the datapath stays).
    pub fn kill_netd(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].netd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `args` in node `i`'s network namespace.
    pub fn in_node(&self, i: usize, args: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.nodes[i].netns))
            .args(args)
            .output()
            .unwrap()
    }

    /// SIGKILL of node `i`'s kubelet (its containers keep running).
    pub fn kill_kubelet(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].kubelet.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let home = self.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.nodes[0].netns))
            .arg("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &home)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .args(args);
        cmd
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_cmd(args).output().expect("run kubectl")
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn kubectl_stdin(&self, args: &[&str], input: &str) -> Output {
        super::run_with_stdin(self.kubectl_cmd(args), input)
    }

    /// `kubectl apply -f -` that must succeed.
    pub fn apply(&self, yaml: &str) {
        let out = self.kubectl_stdin(&["apply", "-f", "-"], yaml);
        assert!(
            out.status.success(),
            "apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A jsonpath of a pod.
    pub fn pod_field(&self, pod: &str, jsonpath: &str) -> String {
        let out = self.kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={jsonpath}")]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits up to `secs` for `f`.
    pub fn wait(&self, what: &str, secs: u64, mut f: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        while !f() {
            if std::time::Instant::now() > deadline {
                let describe = self.kubectl(&["describe", "pods"]);
                panic!(
                    "timed out waiting for {what}\n{}\nkubelet log:\n{}",
                    String::from_utf8_lossy(&describe.stdout),
                    self.kubelet_log(0)
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn netd_log(&self, i: usize) -> String {
        let text = std::fs::read_to_string(self.nodes[i].root.join("netd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn kubelet_log(&self, i: usize) -> String {
        let text =
            std::fs::read_to_string(self.nodes[i].root.join("kubelet.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Every mount point under the lab dir.
    pub fn mounts(&self) -> Vec<String> {
        let prefix = self.dir.path().display().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill_kubelet(i);
            self.kill_netd(i);
        }
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        for node in &self.nodes {
            let containers = node.root.join("kubelet/containers");
            let Ok(entries) = std::fs::read_dir(&containers) else {
                continue;
            };
            for entry in entries.flatten() {
                if let Some(pid) = std::fs::read_to_string(entry.path().join("shim.pid"))
                    .ok()
                    .and_then(|p| p.trim().parse::<i32>().ok())
                {
                    // SAFETY: kill has no memory preconditions; the pid is the shim we started.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                let id = entry.file_name().to_string_lossy().into_owned();
                let _ = Command::new(runtime_bin())
                    .arg("--root")
                    .arg(node.root.join("kubelet/runtime"))
                    .args(["delete", "--force", &id])
                    .output();
            }
        }
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).output();
        }
        for netns in self.created_netns.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", netns]).output();
        }
        // The cgroup tree, deepest first, in every hierarchy.
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in hierarchies.flatten() {
                let root = h.path().join(self.cgroup_root.trim_start_matches('/'));
                remove_cgroup_tree(&root);
            }
        }
        remove_cgroup_tree(
            &Path::new("/sys/fs/cgroup").join(self.cgroup_root.trim_start_matches('/')),
        );
    }
}

fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&entry.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
}
