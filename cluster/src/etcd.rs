//! The etcd cluster of a highly available `skiff up` (`--control-planes 3`): one real etcd
//! member (Debian's etcd-server) per control-plane node, as kubeadm's stacked topology lays it
//! out. Peer and client traffic is TLS with kubeadm's etcd PKI — an etcd CA of its own
//! (`etcd/ca.crt`), a serving-and-peer certificate per member for its node address and
//! loopback, and the API servers' client certificate (`apiserver-etcd-client`) — and members
//! accept only clients with a certificate from that CA (`--client-cert-auth`), so nothing on
//! the node network reaches the cluster state without one.
//!
//! The embedded store stays the default for one control plane; this is the HA path.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::topology::{NodeSpec, Topology};

/// Where Debian's etcd-server package puts the binary.
pub const ETCD: &str = "/usr/bin/etcd";
/// Debian's etcd-client package: `etcdctl snapshot restore` makes a restored member's data dir.
pub const ETCDCTL: &str = "/usr/bin/etcdctl";
pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;

/// The files of the etcd PKI (kubeadm's names, under `<state>/etcd-pki`).
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    pub fn member_cert(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.crt"))
    }
    pub fn member_key(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.key"))
    }
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("apiserver-etcd-client.crt")
    }
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("apiserver-etcd-client.key")
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Makes the etcd CA and every certificate the members and the API servers use.
pub fn make_pki(t: &Topology) -> anyhow::Result<Pki> {
    let dir = t.state_dir().join("etcd-pki");
    std::fs::create_dir_all(&dir)?;
    let pki = Pki { dir };
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name.push(DnType::CommonName, "etcd-ca");
    let ca_cert = ca.self_signed(&ca_key)?;
    std::fs::write(pki.ca(), ca_cert.pem())?;
    let issuer = rcgen::Issuer::new(ca, &ca_key);
    for node in control_planes(t) {
        // Serving and peer in one certificate (the same names and address).
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![
            node.name.clone(),
            "localhost".into(),
            node.ip.to_string(),
            "127.0.0.1".into(),
        ])?;
        params
            .distinguished_name
            .push(DnType::CommonName, &node.name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &issuer)?;
        std::fs::write(pki.member_cert(&node.name), cert.pem())?;
        write_private(&pki.member_key(&node.name), &key.serialize_pem())?;
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver-etcd-client");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer)?;
    std::fs::write(pki.client_cert(), cert.pem())?;
    write_private(&pki.client_key(), &key.serialize_pem())?;
    Ok(pki)
}

pub fn control_planes(t: &Topology) -> impl Iterator<Item = &NodeSpec> {
    t.nodes.iter().filter(|n| n.control_plane)
}

/// `https://<ip>:2379` of every member, comma-separated (the API servers' `--etcd-servers`).
pub fn client_urls(t: &Topology) -> String {
    control_planes(t)
        .map(|n| format!("https://{}:{CLIENT_PORT}", n.ip))
        .collect::<Vec<_>>()
        .join(",")
}

fn peer_url(ip: Ipv4Addr) -> String {
    format!("https://{ip}:{PEER_PORT}")
}

/// `--initial-cluster`: every member's name and peer URL.
fn initial_cluster(t: &Topology) -> String {
    control_planes(t)
        .map(|n| format!("{}={}", n.name, peer_url(n.ip)))
        .collect::<Vec<_>>()
        .join(",")
}

fn data_dir(t: &Topology, node: &NodeSpec) -> PathBuf {
    t.node_dir(node).join("etcd")
}

/// Makes `node`'s data dir from an etcd snapshot file, as etcd's disaster recovery does
/// (`etcdctl snapshot restore` once per member, each with its own name and peer URL and the
/// whole new membership): every key with its revisions, the leases, and a fresh cluster id,
/// so the members form a new cluster holding the snapshot's state. The file's sha256 is checked
/// by etcdctl.
pub fn restore_member(t: &Topology, node: &NodeSpec, snapshot: &Path) -> anyhow::Result<()> {
    let data = data_dir(t, node);
    let out = std::process::Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg("snapshot")
        .arg("restore")
        .arg(snapshot)
        .arg(format!("--name={}", node.name))
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--initial-cluster={}", initial_cluster(t)))
        .arg(format!("--initial-cluster-token={}", t.name))
        .arg(format!(
            "--initial-advertise-peer-urls={}",
            peer_url(node.ip)
        ))
        .output()
        .with_context(|| format!("running {ETCDCTL}"))?;
    anyhow::ensure!(
        out.status.success(),
        "etcdctl snapshot restore for {}: {}",
        node.name,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// The command line of `node`'s member (run inside the node's network namespace).
pub fn member_command(t: &Topology, node: &NodeSpec, pki: &Pki) -> Vec<String> {
    let initial_cluster = initial_cluster(t);
    let data = data_dir(t, node);
    let path = |p: PathBuf| p.display().to_string();
    vec![
        ETCD.into(),
        format!("--name={}", node.name),
        format!("--data-dir={}", data.display()),
        format!(
            "--listen-client-urls=https://{}:{CLIENT_PORT},https://127.0.0.1:{CLIENT_PORT}",
            node.ip
        ),
        format!("--advertise-client-urls=https://{}:{CLIENT_PORT}", node.ip),
        format!("--listen-peer-urls={}", peer_url(node.ip)),
        format!("--initial-advertise-peer-urls={}", peer_url(node.ip)),
        format!("--initial-cluster={initial_cluster}"),
        "--initial-cluster-state=new".into(),
        format!("--initial-cluster-token={}", t.name),
        format!("--cert-file={}", path(pki.member_cert(&node.name))),
        format!("--key-file={}", path(pki.member_key(&node.name))),
        format!("--trusted-ca-file={}", path(pki.ca())),
        "--client-cert-auth=true".into(),
        format!("--peer-cert-file={}", path(pki.member_cert(&node.name))),
        format!("--peer-key-file={}", path(pki.member_key(&node.name))),
        format!("--peer-trusted-ca-file={}", path(pki.ca())),
        "--peer-client-cert-auth=true".into(),
        // kubeadm's etcd manifest sets these two as well.
        "--snapshot-count=10000".into(),
        "--auto-compaction-retention=0".into(),
    ]
}

/// The flags an API server needs to reach the members.
pub fn apiserver_flags(t: &Topology, pki: &Pki) -> Vec<String> {
    vec![
        "--etcd-servers".into(),
        client_urls(t),
        "--etcd-cafile".into(),
        pki.ca().display().to_string(),
        "--etcd-certfile".into(),
        pki.client_cert().display().to_string(),
        "--etcd-keyfile".into(),
        pki.client_key().display().to_string(),
    ]
}

/// The line a member logs once it serves clients.
pub const READY_LINE: &str = "ready to serve client requests";

/// Whether `etcd` is installed (scripts/setup.sh installs Debian's etcd-server).
pub fn available() -> anyhow::Result<()> {
    anyhow::ensure!(
        Path::new(ETCD).exists(),
        "--control-planes > 1 runs an etcd cluster: {ETCD} is missing (apt-get install etcd-server)"
    );
    anyhow::ensure!(
        Path::new(ETCDCTL).exists(),
        "--control-planes > 1 restores and inspects the etcd cluster with {ETCDCTL}, which is missing (apt-get install etcd-client)"
    );
    Ok(())
}

/// Each member's health, role and size (etcd's `Maintenance/Status`), asked from the first
/// control plane's network namespace with the API servers' client certificate. Enters that
/// namespace for the calling thread: call it last, before any other thread starts.
pub fn print_members(t: &Topology) -> anyhow::Result<()> {
    use std::os::fd::AsFd;
    let first = control_planes(t).next().context("no control plane")?;
    let netns = std::fs::File::open(format!("/run/netns/{}", first.name))?;
    nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
    let pki = Pki {
        dir: t.state_dir().join("etcd-pki"),
    };
    let read = |p: PathBuf| std::fs::read(&p).with_context(|| format!("reading {}", p.display()));
    let tls = etcd_client::TlsOptions::new()
        .ca_certificate(etcd_client::Certificate::from_pem(read(pki.ca())?))
        .identity(etcd_client::Identity::from_pem(
            read(pki.client_cert())?,
            read(pki.client_key())?,
        ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    println!(
        "{:<32} {:<28} {:<10} {:<8} {:<10} DB",
        "ETCD MEMBER", "ENDPOINT", "HEALTH", "LEADER", "RAFT TERM"
    );
    for node in control_planes(t) {
        let endpoint = format!("https://{}:{CLIENT_PORT}", node.ip);
        let options = etcd_client::ConnectOptions::new()
            .with_tls(tls.clone())
            .with_connect_timeout(std::time::Duration::from_secs(2))
            .with_timeout(std::time::Duration::from_secs(2));
        let status = runtime.block_on(async {
            let mut client =
                etcd_client::Client::connect([endpoint.as_str()], Some(options)).await?;
            client.status().await
        });
        match status {
            Ok(s) => {
                let member = s.header().map(|h| h.member_id()).unwrap_or_default();
                println!(
                    "{:<32} {:<28} {:<10} {:<8} {:<10} {} bytes",
                    node.name,
                    endpoint,
                    "healthy",
                    if s.leader() == member { "yes" } else { "no" },
                    s.raft_term(),
                    s.db_size()
                );
            }
            Err(e) => println!(
                "{:<32} {:<28} {:<10} {:<8} {:<10} {e}",
                node.name, endpoint, "unhealthy", "-", "-"
            ),
        }
    }
    Ok(())
}
