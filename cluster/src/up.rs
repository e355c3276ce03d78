//! `skiff up`, one step a line with its time, and the teardown `down` and a failed `up`
//! share.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use crate::addons;
use crate::etcd;
use crate::metrics_server;
use crate::network;
use crate::serving;
use crate::state::{self, Process, Recorded};
use crate::topology::{NodeSpec, Topology};
use crate::UpArgs;

/// The `skiff` binary (this one), for the daemons it starts.
fn skiff() -> anyhow::Result<PathBuf> {
    std::env::current_exe().context("finding the skiff binary")
}

struct Progress {
    started: Instant,
}

impl Progress {
    fn step<T>(&mut self, what: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let at = Instant::now();
        let result = f();
        let mark = if result.is_ok() { "✓" } else { "✗" };
        println!("{mark} {what:<46} {:>7.2} s", at.elapsed().as_secs_f64());
        result
    }
}

/// Starts `args` in `netns` (nsenter execs in place, so the pid is the daemon's), detached
/// from our session, logging to `log`.
fn spawn_in(netns: Option<&str>, args: &[String], log: &Path) -> anyhow::Result<i32> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg("--");
            c.args(args);
            c
        }
        None => {
            let mut c = Command::new(&args[0]);
            c.args(&args[1..]);
            c
        }
    };
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .env("RUST_LOG", "info")
        .process_group(0);
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {}", args.join(" ")))?;
    Ok(child.id() as i32)
}

fn wait_for_line(log: &Path, line: &str, pid: i32, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(line) {
            return Ok(());
        }
        anyhow::ensure!(state::alive(pid), "it exited; see {}", log.display());
        anyhow::ensure!(
            Instant::now() < deadline,
            "not ready after {timeout:?}; see {}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port(from: u16) -> anyhow::Result<u16> {
    (from..from + 100)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .context("no free port for the API server forward")
}

pub fn up(args: UpArgs) -> anyhow::Result<()> {
    let t = Topology::new(&args.name, args.nodes, args.control_planes, &args.node_cidr)?;
    if let Ok(existing) = Recorded::read(&t.name) {
        if existing.processes.iter().any(|p| state::alive(p.pid)) {
            anyhow::bail!(
                "cluster {:?} is already up (skiff status --name {0}; skiff down --name {0})",
                t.name
            );
        }
        // Leftovers of a cluster whose processes are gone (a reboot): clear them first.
        teardown(&existing);
    }
    // A backup that cannot be restored stops `up` before anything is made.
    let restore = match &args.restore {
        Some(path) => Some(read_backup(path)?),
        None => None,
    };
    if args.control_planes > 1 {
        etcd::available()?;
    }
    let state_dir = t.state_dir();
    std::fs::create_dir_all(state_dir.join("logs"))?;
    let kubeconfig = args
        .kubeconfig
        .clone()
        .unwrap_or_else(|| state_dir.join("admin.kubeconfig"));
    let mut recorded = Recorded {
        topology: t.clone(),
        netns: Vec::new(),
        processes: Vec::new(),
        kubeconfig: kubeconfig.clone(),
        api_port: 0,
    };
    recorded.write()?;
    let mut progress = Progress {
        started: Instant::now(),
    };
    let result = bring_up(&args, &t, &mut recorded, &mut progress, restore.as_deref());
    recorded.write()?;
    match result {
        Ok(()) => {
            println!(
                "cluster {} is up in {:.1} s: {} nodes",
                t.name,
                progress.started.elapsed().as_secs_f64(),
                t.nodes.len()
            );
            println!("export KUBECONFIG={}", kubeconfig.display());
            Ok(())
        }
        Err(e) => {
            if args.keep_on_failure {
                eprintln!(
                    "left in place for debugging; remove with: skiff down --name {}",
                    t.name
                );
            } else {
                teardown(&recorded);
            }
            Err(e)
        }
    }
}

/// A backup's bytes, once they are known to restore (checksum, format, consistent history).
fn read_backup(path: &Path) -> anyhow::Result<Vec<u8>> {
    let data = std::fs::read(path)
        .with_context(|| format!("--restore {}: cannot read it", path.display()))?;
    let state = skiff_store::snapshot::decode_any(&data)
        .map_err(|e| anyhow::anyhow!("--restore {}: {e}; nothing was changed", path.display()))?;
    skiff_store::mvcc::Mvcc::from_snapshot(state)
        .map_err(|e| anyhow::anyhow!("--restore {}: {e}; nothing was changed", path.display()))?;
    Ok(data)
}

fn bring_up(
    args: &UpArgs,
    t: &Topology,
    recorded: &mut Recorded,
    progress: &mut Progress,
    restore: Option<&[u8]>,
) -> anyhow::Result<()> {
    let skiff = skiff()?.display().to_string();
    let state_dir = t.state_dir();
    let logs = state_dir.join("logs");
    progress.step("node network (namespaces, bridge)", || {
        let result = network::create(t, &mut recorded.netns);
        recorded.write()?;
        result
    })?;
    progress.step("node directories, images", || {
        for node in &t.nodes {
            let dir = t.node_dir(node);
            std::fs::create_dir_all(dir.join("cni"))?;
            std::fs::create_dir_all(dir.join("manifests"))?;
            let store = skiff_image::Store::open(dir.join("images"))?;
            for archive in &args.load {
                skiff_image::archive::import(&store, archive, None)
                    .with_context(|| format!("loading {}", archive.display()))?;
            }
        }
        Ok(())
    })?;
    // The nodes' resolv.conf, copied into the cluster's state so the kubelets (which read it
    // when they start) never depend on a file the user may remove.
    let resolv_conf = match &args.resolv_conf {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--resolv-conf {}: cannot read it", path.display()))?;
            anyhow::ensure!(
                text.lines()
                    .any(|l| l.split_whitespace().next() == Some("nameserver")),
                "--resolv-conf {}: no `nameserver` line (the cluster DNS would have no upstream)",
                path.display()
            );
            let copy = state_dir.join("resolv.conf");
            std::fs::write(&copy, text)?;
            Some(copy)
        }
        None => None,
    };
    let cp = t.control_plane();
    let server_dir = state_dir.join("server");
    let server_log = logs.join("server.log");
    let control_planes: Vec<&NodeSpec> = t.nodes.iter().filter(|n| n.control_plane).collect();
    let ha = control_planes.len() > 1;
    if let Some(backup) = restore {
        let from = args
            .restore
            .as_deref()
            .unwrap_or(Path::new("backup"))
            .display();
        progress.step(&format!("store restored from {from}"), || {
            if !ha {
                skiff_store::datadir::Disk::restore(backup, &server_dir.join("store"))?;
                return Ok(());
            }
            // Every etcd member's data dir from the one file, in etcd's snapshot format (a
            // backup in skiff's own format is converted into the state dir first).
            let file = match args.restore.as_deref() {
                Some(path) if skiff_store::bbolt::is_bbolt(backup) => path.to_path_buf(),
                _ => {
                    let state = skiff_store::snapshot::decode_any(backup)
                        .map_err(|e| anyhow::anyhow!("{from}: {e}"))?;
                    let converted = state_dir.join("restore.db");
                    std::fs::write(&converted, skiff_store::snapshot::etcd::encode(&state))?;
                    converted
                }
            };
            for node in &control_planes {
                etcd::restore_member(t, node, &file)?;
            }
            Ok(())
        })?;
    }
    // With several control planes: the etcd cluster first, then one API server (with its
    // scheduler and controller manager, leader-elected) per control plane on it.
    let mut storage_flags = vec![
        "--store-listen-url".to_string(),
        "http://127.0.0.1:2379".into(),
    ];
    if ha {
        let pki = progress.step("etcd PKI (kubeadm's etcd CA and certificates)", || {
            etcd::make_pki(t)
        })?;
        progress.step(
            &format!("etcd cluster ({} members, TLS)", control_planes.len()),
            || {
                let mut started = Vec::new();
                for node in &control_planes {
                    let log = logs.join(format!("etcd-{}.log", node.name));
                    let pid =
                        spawn_in(Some(&node.name), &etcd::member_command(t, node, &pki), &log)
                            .context("an etcd member")?;
                    recorded.processes.push(Process {
                        component: format!("etcd {}", node.name),
                        pid,
                        log: log.clone(),
                    });
                    started.push((pid, log));
                }
                recorded.write()?;
                for (pid, log) in started {
                    wait_for_line(&log, etcd::READY_LINE, pid, Duration::from_secs(60))
                        .context("an etcd member")?;
                }
                Ok(())
            },
        )?;
        storage_flags = etcd::apiserver_flags(t, &pki);
    }
    for (i, node) in control_planes.iter().enumerate() {
        let (dir, log, component) = if i == 0 {
            (server_dir.clone(), server_log.clone(), "server".to_string())
        } else {
            (
                state_dir.join(format!("server-{}", node.name)),
                logs.join(format!("server-{}.log", node.name)),
                format!("server {}", node.name),
            )
        };
        progress.step(
            &format!("control plane (skiff server on {})", node.name),
            || {
                if i > 0 {
                    // The first server's keys and credentials (also in the store, which a
                    // server with an empty data dir would read them from — but the store gets
                    // the credentials issued just now only at its next round).
                    copy_dir(&server_dir.join("tls"), &dir.join("tls"))?;
                    std::fs::copy(server_dir.join("tokens.csv"), dir.join("tokens.csv"))?;
                }
                let mut command = vec![
                    skiff.clone(),
                    "server".into(),
                    "--data-dir".into(),
                    dir.display().to_string(),
                    "--bind-address".into(),
                    "0.0.0.0".into(),
                    "--advertise-address".into(),
                    node.ip.to_string(),
                    "--secure-port".into(),
                    "6443".into(),
                    "--tls-san".into(),
                    "127.0.0.1".into(),
                    "--load-balancer-ip-range".into(),
                    t.load_balancer_range(),
                    // The kubelets serve with certificates from the cluster CA (approved
                    // below), so the API server checks that it talks to the real kubelet.
                    "--kubelet-certificate-authority".into(),
                    server_dir.join("tls/ca.crt").display().to_string(),
                ];
                command.extend(storage_flags.iter().cloned());
                // The serving certificate (made by the first server, shared through the
                // store's cluster keys) names every control plane.
                for other in &control_planes {
                    command.push("--tls-san".into());
                    command.push(other.ip.to_string());
                }
                // In a UTS namespace named after its node, as on a machine of its own: the
                // scheduler's and controller manager's Lease holders (`<hostname>_<uuid>`)
                // then say which control plane leads.
                let mut named = vec![
                    "unshare".to_string(),
                    "--uts".into(),
                    "--".into(),
                    "sh".into(),
                    "-c".into(),
                    r#"hostname "$0" && exec "$@""#.into(),
                    node.name.clone(),
                ];
                named.extend(command);
                let pid = spawn_in(Some(&node.name), &named, &log)
                    .context("the control plane (skiff server)")?;
                recorded.processes.push(Process {
                    component: component.clone(),
                    pid,
                    log: log.clone(),
                });
                recorded.write()?;
                wait_for_line(&log, "skiff server ready", pid, Duration::from_secs(60))
                    .context("the control plane (skiff server)")
            },
        )?;
        if ha && i == 0 {
            // Static credentials go into the first server's tokens.csv, copied to the others
            // before they start (later additions reach them through the store within seconds,
            // but an agent refused meanwhile would have to wait for its retry).
            progress.step("node and addon credentials", || {
                issue_static_credentials(t, args, &skiff, &server_dir)
            })?;
        }
    }
    let port = free_port(6443)?;
    recorded.api_port = port;
    progress.step(&format!("API server forward 127.0.0.1:{port}"), || {
        let log = logs.join("forward.log");
        let pid = spawn_in(
            None,
            &[
                skiff.clone(),
                "forward".into(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--netns".into(),
                format!("/run/netns/{}", cp.name),
            ]
            .into_iter()
            .chain(api_targets(t))
            .collect::<Vec<_>>(),
            &log,
        )?;
        recorded.processes.push(Process {
            component: "forward".into(),
            pid,
            log,
        });
        recorded.write()?;
        let admin = std::fs::read_to_string(server_dir.join("admin.kubeconfig"))?;
        let admin = admin
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("server:") {
                    format!("    server: https://127.0.0.1:{port}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        write_private(&recorded.kubeconfig, &(admin + "\n"))?;
        Ok(())
    })?;
    for &(host_port, node_port) in &args.publish {
        progress.step(
            &format!("publish 127.0.0.1:{host_port} → NodePort {node_port}"),
            || {
                let log = logs.join(format!("publish-{host_port}.log"));
                let mut command = vec![
                    skiff.clone(),
                    "forward".into(),
                    "--listen".into(),
                    format!("127.0.0.1:{host_port}"),
                    "--netns".into(),
                    format!("/run/netns/{}", t.host_netns),
                ];
                for node in &t.nodes {
                    command.push("--to".into());
                    command.push(format!("{}:{node_port}", node.ip));
                }
                // Refuse a taken port here, where the user sees it, not in the forward's log.
                std::net::TcpListener::bind(("127.0.0.1", host_port))
                    .with_context(|| format!("127.0.0.1:{host_port} is taken"))?;
                let pid = spawn_in(None, &command, &log)?;
                recorded.processes.push(Process {
                    component: format!("publish {host_port}:{node_port}"),
                    pid,
                    log,
                });
                recorded.write()
            },
        )?;
    }
    // Serving-certificate requests from before this moment belong to kubelets of a backup.
    let kubelets_started = jiff::Timestamp::now();
    for node in &t.nodes {
        progress.step(&format!("kubelet and netd on {}", node.name), || {
            if ha {
                // k3s's agent load balancer: every node reaches the API servers through a
                // local forward that moves on to the next one when one does not answer.
                let log = logs.join(format!("apiserver-lb-{}.log", node.name));
                let command: Vec<String> = [
                    skiff.clone(),
                    "forward".into(),
                    "--listen".into(),
                    NODE_LB.into(),
                    "--netns".into(),
                    format!("/run/netns/{}", node.name),
                ]
                .into_iter()
                .chain(api_targets(t))
                .collect();
                let pid = spawn_in(Some(&node.name), &command, &log)?;
                recorded.processes.push(Process {
                    component: format!("apiserver-lb {}", node.name),
                    pid,
                    log,
                });
                recorded.write()?;
            }
            let pid = start_kubelet(
                t,
                node,
                &skiff,
                &server_dir,
                &recorded.kubeconfig,
                resolv_conf.as_deref(),
            )?;
            recorded.processes.push(Process {
                component: format!("kubelet {}", node.name),
                pid,
                log: logs.join(format!("kubelet-{}.log", node.name)),
            });
            recorded.write()?;
            let log = logs.join(format!("netd-{}.log", node.name));
            let dir = t.node_dir(node);
            let netd_kubeconfig = dir.join("netd.kubeconfig");
            issue_credential(
                &skiff,
                "netd",
                &node.name,
                &server_dir,
                &node_api_url(t),
                &netd_kubeconfig,
            )?;
            let pid = spawn_in(
                Some(&node.name),
                &[
                    skiff.clone(),
                    "netd".into(),
                    "--kubeconfig".into(),
                    netd_kubeconfig.display().to_string(),
                    "--node-name".into(),
                    node.name.clone(),
                    "--cluster-cidr".into(),
                    network::POD_NETWORK.into(),
                    "--cni-conf-dir".into(),
                    dir.join("cni").display().to_string(),
                    "--cni-bin-dir".into(),
                    dir.join("cni-bin").display().to_string(),
                    "--cni-data-dir".into(),
                    dir.join("cni-ipam").display().to_string(),
                    "--cgroup-root".into(),
                    format!("{}/{}", t.cgroup_root(), node.name),
                    "--bpf-root".into(),
                    dir.join("bpf").display().to_string(),
                ],
                &log,
            )?;
            recorded.processes.push(Process {
                component: format!("netd {}", node.name),
                pid,
                log,
            });
            recorded.write()
        })?;
    }
    let kubeconfig = recorded.kubeconfig.clone();
    progress.step("every node Ready", || {
        wait_nodes_ready(&kubeconfig, t.nodes.len(), &logs)
    })?;
    progress.step("kubelet serving certificates approved", || {
        let nodes: Vec<serving::Node> = t
            .nodes
            .iter()
            .map(|n| serving::Node {
                name: n.name.clone(),
                ip: n.ip.into(),
            })
            .collect();
        with_admin(&kubeconfig, |client| {
            serving::approve(client, &nodes, kubelets_started, Duration::from_secs(60))
        })
    })?;
    progress.step("cluster DNS image (this skiff binary)", || {
        addons::build_image(t, Path::new(&skiff))
    })?;
    progress.step(
        &format!(
            "cluster DNS (kube-system/skiff-dns, {})",
            addons::DNS_SERVICE_IP
        ),
        || {
            let addon_kubeconfig = addons::kubeconfig(
                &skiff,
                &server_dir,
                &pod_api_url(t),
                &state_dir.join("addons/skiff-dns.kubeconfig"),
            )?;
            with_admin(&kubeconfig, |client| {
                addons::install_dns(client, &addon_kubeconfig, 2)
            })
        },
    )?;
    if !args.metrics_server {
        return Ok(());
    }
    progress.step(
        "metrics server (kube-system/metrics-server, v1beta1.metrics.k8s.io)",
        || {
            let addon_kubeconfig = metrics_server::kubeconfig(
                &skiff,
                &server_dir,
                &pod_api_url(t),
                &state_dir.join("addons/metrics-server.kubeconfig"),
            )?;
            with_admin(&kubeconfig, |client| {
                metrics_server::install_metrics_server(client, &addon_kubeconfig)
            })
        },
    )?;
    Ok(())
}

/// Copies the files of `from` into `to` (private files stay private: permissions are copied).
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Every credential `skiff token` issues from the first server's data dir during `up`: the
/// control planes' kubelets, every node's netd, the addons.
fn issue_static_credentials(
    t: &Topology,
    args: &UpArgs,
    skiff: &str,
    server_dir: &Path,
) -> anyhow::Result<()> {
    for node in &t.nodes {
        let dir = t.node_dir(node);
        if node.control_plane {
            let out = dir.join("kubelet.kubeconfig");
            issue_credential(
                skiff,
                "node",
                &node.name,
                server_dir,
                &node_api_url(t),
                &out,
            )?;
        }
        let out = dir.join("netd.kubeconfig");
        issue_credential(
            skiff,
            "netd",
            &node.name,
            server_dir,
            &node_api_url(t),
            &out,
        )?;
    }
    let addons_dir = t.state_dir().join("addons");
    addons::kubeconfig(
        skiff,
        server_dir,
        &pod_api_url(t),
        &addons_dir.join("skiff-dns.kubeconfig"),
    )?;
    if args.metrics_server {
        metrics_server::kubeconfig(
            skiff,
            server_dir,
            &pod_api_url(t),
            &addons_dir.join("metrics-server.kubeconfig"),
        )?;
    }
    Ok(())
}

/// Where each node's local API load balancer listens (HA clusters).
const NODE_LB: &str = "127.0.0.1:6444";

fn is_ha(t: &Topology) -> bool {
    t.nodes.iter().filter(|n| n.control_plane).count() > 1
}

/// `--to <ip>:6443` for every control plane.
fn api_targets(t: &Topology) -> Vec<String> {
    t.nodes
        .iter()
        .filter(|n| n.control_plane)
        .flat_map(|n| ["--to".to_string(), format!("{}:6443", n.ip)])
        .collect()
}

/// The API server address a node's agents (kubelet, netd) use: the control plane on the node
/// network, or with several, the node's local load balancer in front of all of them.
fn node_api_url(t: &Topology) -> String {
    if is_ha(t) {
        format!("https://{NODE_LB}")
    } else {
        format!("https://{}:6443", t.control_plane().ip)
    }
}

/// The API server address for the addons' pods: the control plane, or with several, the
/// `kubernetes` Service (its endpoints list every live API server).
fn pod_api_url(t: &Topology) -> String {
    if is_ha(t) {
        "https://10.96.0.1:443".into()
    } else {
        format!("https://{}:6443", t.control_plane().ip)
    }
}

/// Runs `work` with a client of the admin kubeconfig on a runtime of its own (`up` and
/// `status` are synchronous).
pub(crate) fn with_admin<T, Fut>(
    kubeconfig: &Path,
    work: impl FnOnce(kube::Client) -> Fut,
) -> anyhow::Result<T>
where
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async { work(admin_client(kubeconfig).await?).await })
}

async fn admin_client(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(kubeconfig)?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

/// `skiff token <kind> <node>`: a node's kubelet (`node`) or network agent (`netd`)
/// credential, written as a kubeconfig.
fn issue_credential(
    skiff: &str,
    kind: &str,
    node: &str,
    server_dir: &Path,
    server: &str,
    out: &Path,
) -> anyhow::Result<()> {
    let result = Command::new(skiff)
        .args(["token", kind, node, "--data-dir"])
        .arg(server_dir)
        .args(["--server", server, "--output"])
        .arg(out)
        .output()?;
    anyhow::ensure!(
        result.status.success(),
        "issuing {node}'s {kind} credential: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    Ok(())
}

/// A worker's bootstrap kubeconfig, made as a node joins with kubeadm: a bootstrap token with
/// the cluster's CA pin (`skiff token create --print-join-command` through the admin
/// kubeconfig), then token discovery from inside the node (`skiff token discover` against the
/// API server address the node uses: the signed `cluster-info` gives it the CA) — the same
/// commands a node on its own machine runs.
fn join_credential(
    skiff: &str,
    cluster: &str,
    node: &str,
    admin_kubeconfig: &Path,
    server: &str,
    out: &Path,
) -> anyhow::Result<()> {
    let created = Command::new(skiff)
        .args([
            "token",
            "create",
            "--ttl",
            "1h",
            "--print-join-command",
            "--description",
        ])
        .arg(format!("skiff up: nodes joining {cluster}"))
        .arg("--kubeconfig")
        .arg(admin_kubeconfig)
        .output()?;
    anyhow::ensure!(
        created.status.success(),
        "creating the bootstrap token: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let join = String::from_utf8_lossy(&created.stdout).into_owned();
    let words: Vec<&str> = join.split_whitespace().collect();
    let flag = |name: &str| {
        words
            .iter()
            .position(|w| *w == name)
            .and_then(|i| words.get(i + 1))
            .map(|w| w.to_string())
            .with_context(|| format!("no {name} in the join command {join:?}"))
    };
    let (token, pin) = (flag("--token")?, flag("--discovery-token-ca-cert-hash")?);
    // Token discovery signs with the token only once the controller manager's bootstrap signer
    // has seen it: retried for a while, as kubeadm join retries discovery.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let discovered = Command::new("ip")
            .args([
                "netns", "exec", node, skiff, "token", "discover", "--server", server,
            ])
            .args(["--token", &token, "--discovery-token-ca-cert-hash", &pin])
            .arg("--output")
            .arg(out)
            .output()?;
        if discovered.status.success() {
            return Ok(());
        }
        let why = String::from_utf8_lossy(&discovered.stderr).into_owned();
        anyhow::ensure!(
            Instant::now() < deadline,
            "token discovery on {node}: {why}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start_kubelet(
    t: &Topology,
    node: &NodeSpec,
    skiff: &str,
    server_dir: &Path,
    admin_kubeconfig: &Path,
    resolv_conf: Option<&Path>,
) -> anyhow::Result<i32> {
    let dir = t.node_dir(node);
    let kubeconfig = dir.join("kubelet.kubeconfig");
    // The control plane's kubelet gets its identity from the control plane directly (kubeadm
    // init writes its kubelet.conf the same way); a worker joins as kubeadm join does: a
    // bootstrap token, then a client certificate from a CSR the controller manager approves
    // and signs, rotated before it expires.
    let join = if node.control_plane {
        issue_credential(
            skiff,
            "node",
            &node.name,
            server_dir,
            &node_api_url(t),
            &kubeconfig,
        )?;
        vec![]
    } else {
        let bootstrap = dir.join("bootstrap-kubelet.kubeconfig");
        join_credential(
            skiff,
            &t.name,
            &node.name,
            admin_kubeconfig,
            &node_api_url(t),
            &bootstrap,
        )?;
        vec![
            "--bootstrap-kubeconfig".to_string(),
            bootstrap.display().to_string(),
            "--rotate-certificates".into(),
        ]
    };
    let mut args = vec![
        skiff.to_string(),
        "kubelet".into(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
        "--node-name".into(),
        node.name.clone(),
        "--node-ip".into(),
        node.ip.to_string(),
        "--root-dir".into(),
        dir.join("kubelet").display().to_string(),
        "--pod-logs-dir".into(),
        dir.join("pods-logs").display().to_string(),
        "--image-root".into(),
        dir.join("images").display().to_string(),
        "--cgroup-root".into(),
        format!("{}/{}", t.cgroup_root(), node.name),
        "--cni-conf-dir".into(),
        dir.join("cni").display().to_string(),
        "--cni-bin-dir".into(),
        format!(
            "{}:/opt/cni/bin:/usr/lib/cni",
            dir.join("cni-bin").display()
        ),
        "--healthz-port".into(),
        "0".into(),
        // The kubelet API: the API server's client certificate (and any other from the
        // cluster CA) authenticates; a serving certificate from the cluster (`serving.rs`).
        "--client-ca-file".into(),
        server_dir.join("tls/ca.crt").display().to_string(),
        "--rotate-server-certificates".into(),
        // Static pods: manifests dropped here run on this node without the API server.
        "--pod-manifest-path".into(),
        dir.join("manifests").display().to_string(),
    ];
    args.extend(join);
    if let Some(path) = resolv_conf {
        args.push("--resolv-conf".into());
        args.push(path.display().to_string());
    }
    if node.control_plane {
        // Like kubeadm, workloads stay off the control plane — unless it is the only node
        // (kind's single-node cluster).
        if t.nodes.iter().any(|n| !n.control_plane) {
            args.push(
                "--register-with-taints=node-role.kubernetes.io/control-plane:NoSchedule".into(),
            );
        }
        args.push("--node-labels=node-role.kubernetes.io/control-plane=".into());
    }
    spawn_in(
        Some(&node.name),
        &args,
        &t.state_dir()
            .join("logs")
            .join(format!("kubelet-{}.log", node.name)),
    )
}

fn wait_nodes_ready(kubeconfig: &Path, expected: usize, logs: &Path) -> anyhow::Result<()> {
    with_admin(kubeconfig, |client| async move {
        let nodes: Api<Node> = Api::all(client);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = match nodes.list(&ListParams::default()).await {
                Ok(list) => list
                    .items
                    .iter()
                    .filter(|n| {
                        n.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|c| {
                                c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            })
                    })
                    .count(),
                Err(_) => 0,
            };
            if ready >= expected {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{ready} of {expected} nodes Ready after 60 s; see the kubelet logs in {}",
                logs.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Removes everything `up` recorded: kubelets, then the pods' shims and containers, mounts,
/// namespaces, the control plane, the forward, cgroups and the state directory.
pub fn teardown(recorded: &Recorded) {
    let t = &recorded.topology;
    let kill = |p: &Process| {
        if state::alive(p.pid) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    };
    for p in recorded
        .processes
        .iter()
        .filter(|p| p.component.starts_with("kubelet"))
    {
        kill(p);
    }
    let runtime = skiff().ok().map(|s| s.with_file_name("skiff-runtime"));
    for node in &t.nodes {
        let containers = t.node_dir(node).join("kubelet/containers");
        let Ok(entries) = std::fs::read_dir(&containers) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Some(pid) = std::fs::read_to_string(entry.path().join("shim.pid"))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
            {
                if state::alive(pid) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            if let Some(runtime) = &runtime {
                let _ = Command::new(runtime)
                    .arg("--root")
                    .arg(t.node_dir(node).join("kubelet/runtime"))
                    .args(["delete", "--force"])
                    .arg(entry.file_name())
                    .output();
            }
        }
    }
    for p in &recorded.processes {
        kill(p);
    }
    std::thread::sleep(Duration::from_millis(200));
    for mount in state::mounts_under(&t.state_dir()) {
        let _ = nix::mount::umount2(mount.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    for netns in recorded.netns.iter().rev() {
        network::delete(netns);
    }
    remove_cgroups(&t.cgroup_root());
    let _ = std::fs::remove_dir_all(t.state_dir());
}

fn remove_cgroups(root: &str) {
    let rel = root.trim_start_matches('/');
    let mut bases = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        bases.extend(entries.flatten().map(|e| e.path()));
    }
    for base in bases {
        remove_tree(&base.join(rel));
        // The parent `/skiff` goes too when no other cluster uses it.
        let _ = std::fs::remove_dir(base.join(rel).parent().unwrap_or(&base));
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
}
