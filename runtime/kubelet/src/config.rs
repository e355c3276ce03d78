//! The kubelet's flags, named as upstream's kubelet names them where one exists.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context;

#[derive(Debug, Clone, clap::Args)]
pub struct KubeletArgs {
    /// Credentials of this node (user `system:node:<name>`); with --bootstrap-kubeconfig,
    /// written by the TLS bootstrap when missing or expired.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Bootstrap credentials (a bootstrap token) to ask for this node's client certificate
    /// with when --kubeconfig is missing or its certificate expired (upstream's TLS bootstrap).
    #[arg(long = "bootstrap-kubeconfig")]
    pub bootstrap_kubeconfig: Option<PathBuf>,
    /// Where the client certificates live (default: <root-dir>/pki).
    #[arg(long = "cert-dir")]
    pub cert_dir: Option<PathBuf>,
    /// Renew the client certificate before it expires (at 70–90 % of its lifetime).
    #[arg(long = "rotate-certificates", num_args = 0..=1, default_value_t = false,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub rotate_certificates: bool,
    /// Ask the cluster for the kubelet API's serving certificate (signer
    /// `kubernetes.io/kubelet-serving`, approved by an administrator) and renew it, instead of
    /// serving with a self-signed one (upstream's serverTLSBootstrap).
    #[arg(long = "rotate-server-certificates", num_args = 0..=1, default_value_t = false,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub rotate_server_certificates: bool,
    /// CA bundle the kubelet API verifies client certificates against (user = CN, groups =
    /// O), e.g. the API server's. Without it no client certificate authenticates.
    #[arg(long = "client-ca-file")]
    pub client_ca_file: Option<PathBuf>,
    /// Let requests to the kubelet API without credentials in as `system:anonymous` (then
    /// authorized like anyone). Off by default, as kubeadm configures kubelets (upstream's bare
    /// flag defaults to on).
    #[arg(long = "anonymous-auth", num_args = 0..=1, default_value_t = false,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub anonymous_auth: bool,
    /// Who may use the kubelet API: `Webhook` asks the API server (a SubjectAccessReview per
    /// request, cached), `AlwaysAllow` lets every authenticated caller do anything.
    #[arg(long = "authorization-mode", value_enum, default_value = "Webhook")]
    pub authorization_mode: AuthorizationMode,
    /// The Node's name (upstream: --hostname-override).
    #[arg(long = "node-name", alias = "hostname-override")]
    pub node_name: String,
    /// The node's InternalIP: where the API server reaches this kubelet (:10250).
    #[arg(long = "node-ip")]
    pub node_ip: IpAddr,
    /// The kubelet's state: pods, containers, volumes, the runtime's state.
    #[arg(long = "root-dir", default_value = "/var/lib/skiff/kubelet")]
    pub root_dir: PathBuf,
    /// Container logs (`<ns>_<pod>_<uid>/<container>/<restart>.log`).
    #[arg(long = "pod-logs-dir", default_value = "/var/log/pods")]
    pub pod_logs_dir: PathBuf,
    /// The image store of this node.
    #[arg(long = "image-root", default_value = "/var/lib/skiff/images")]
    pub image_root: PathBuf,
    /// The cgroup under which `kubepods` is made (several nodes on one host use one each).
    #[arg(long = "cgroup-root", default_value = "/")]
    pub cgroup_root: String,
    /// This node's pod range, used when the Node has no spec.podCIDR yet.
    #[arg(long = "pod-cidr")]
    pub pod_cidr: Option<String>,
    /// CNI network configurations (the first .conflist/.conf in name order is used).
    #[arg(long = "cni-conf-dir", default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    /// CNI plugin binaries; a colon-separated search path.
    #[arg(long = "cni-bin-dir", default_value = "/opt/cni/bin:/usr/lib/cni")]
    pub cni_bin_dir: String,
    /// Resource capacity overrides, e.g. `cpu=4,memory=8Gi,pods=110`.
    #[arg(long, value_parser = parse_map)]
    pub capacity: Option<BTreeMap<String, String>>,
    /// Taints to register the Node with, `key=value:Effect` (comma-separated).
    #[arg(long = "register-with-taints", value_delimiter = ',')]
    pub register_with_taints: Vec<String>,
    /// Labels to register the Node with, `key=value` (comma-separated).
    #[arg(long = "node-labels", value_delimiter = ',')]
    pub node_labels: Vec<String>,
    /// The cluster DNS server written into pods' resolv.conf.
    #[arg(long = "cluster-dns", default_value = "10.96.0.10")]
    pub cluster_dns: Vec<IpAddr>,
    #[arg(long = "cluster-domain", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// The resolv.conf pods with dnsPolicy Default get (and whose search list ClusterFirst
    /// extends).
    #[arg(long = "resolv-conf", default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// The HTTPS port of the kubelet API (logs, exec, port-forward, stats).
    #[arg(long, default_value_t = 10250)]
    pub port: u16,
    /// The plain-HTTP health port on 127.0.0.1 (0 = off).
    #[arg(long = "healthz-port", default_value_t = 10248)]
    pub healthz_port: u16,
    /// The OCI runtime (default: skiff-runtime beside this binary, else on PATH).
    #[arg(long = "runtime-path")]
    pub runtime_path: Option<PathBuf>,
    /// Static pods: a directory of Pod manifests (YAML or JSON; names starting with `.` are
    /// skipped) or one manifest file, run by this kubelet without the API server and shown in
    /// the API as mirror pods (upstream's staticPodPath).
    #[arg(long = "pod-manifest-path")]
    pub pod_manifest_path: Option<PathBuf>,
    /// How often --pod-manifest-path is read again besides inotify (a Go duration: 20s, 1m).
    #[arg(long = "file-check-frequency", default_value = "20s", value_parser = parse_duration)]
    pub file_check_frequency: std::time::Duration,
    /// A container's log is rotated once it reaches this size (a quantity: 10Mi, 500Ki; 0 =
    /// never).
    #[arg(long = "container-log-max-size", default_value = "10Mi", value_parser = parse_size)]
    pub container_log_max_size: u64,
    /// How many log files a container keeps, the one being written included (at least 2).
    #[arg(long = "container-log-max-files", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(2..))]
    pub container_log_max_files: u32,
    /// How often the Node's status is posted (seconds; upstream's nodeStatusUpdateFrequency).
    #[arg(long = "node-status-update-frequency", default_value_t = 10)]
    pub node_status_update_frequency: u64,
    /// The node Lease's duration (seconds); it is renewed every quarter of it.
    #[arg(long = "node-lease-duration-seconds", default_value_t = 40)]
    pub node_lease_duration_seconds: i32,
    /// Image garbage collection starts when the image filesystem is this full (percent; 100
    /// turns it off).
    #[arg(long = "image-gc-high-threshold", default_value_t = 85,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub image_gc_high_threshold: u8,
    /// ... and deletes unused images until it is down to this (percent, below the high one).
    #[arg(long = "image-gc-low-threshold", default_value_t = 80,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub image_gc_low_threshold: u8,
    /// An image first seen more recently than this is never collected (a Go duration).
    #[arg(long = "minimum-image-ttl-duration", default_value = "2m", value_parser = parse_duration)]
    pub minimum_image_ttl_duration: std::time::Duration,
    /// How often image usage is checked (upstream's fixed 5 minutes; skiff's flag).
    #[arg(long = "image-gc-period", default_value = "5m", value_parser = parse_duration)]
    pub image_gc_period: std::time::Duration,
    /// Containers without a seccompProfile get RuntimeDefault instead of Unconfined
    /// (upstream's seccompDefault).
    #[arg(long = "seccomp-default", num_args = 0..=1, default_value_t = false,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub seccomp_default: bool,
    /// Registry mirrors and credentials in k3s's registries.yaml format.
    #[arg(long = "registry-config")]
    pub registry_config: Option<PathBuf>,
}

/// The kubelet API's authorizer (upstream's `authorization.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthorizationMode {
    #[value(name = "Webhook")]
    Webhook,
    #[value(name = "AlwaysAllow")]
    AlwaysAllow,
}

impl KubeletArgs {
    /// The OCI runtime binary to run containers with.
    pub fn runtime(&self) -> PathBuf {
        if let Some(path) = &self.runtime_path {
            return path.clone();
        }
        if let Ok(exe) = std::env::current_exe() {
            let beside = exe.with_file_name("skiff-runtime");
            if beside.exists() {
                return beside;
            }
        }
        PathBuf::from("skiff-runtime")
    }

    /// `key=value` labels from --node-labels.
    pub fn labels(&self) -> anyhow::Result<BTreeMap<String, String>> {
        self.node_labels
            .iter()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                Ok((k.to_string(), v.to_string()))
            })
            .collect()
    }

    /// Taints from --register-with-taints (`key[=value]:Effect`).
    pub fn taints(&self) -> anyhow::Result<Vec<k8s_openapi::api::core::v1::Taint>> {
        self.register_with_taints
            .iter()
            .filter(|t| !t.is_empty())
            .map(|t| {
                let (kv, effect) = t
                    .rsplit_once(':')
                    .with_context(|| format!("taint {t:?}: expected key[=value]:Effect"))?;
                if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
                    anyhow::bail!(
                        "taint {t:?}: effect must be NoSchedule, PreferNoSchedule or NoExecute"
                    );
                }
                let (key, value) = match kv.split_once('=') {
                    Some((k, v)) => (k, Some(v.to_string())),
                    None => (kv, None),
                };
                Ok(k8s_openapi::api::core::v1::Taint {
                    key: key.to_string(),
                    value,
                    effect: effect.to_string(),
                    time_added: None,
                })
            })
            .collect()
    }

    /// Directories of the CNI plugin search path.
    pub fn cni_bin_dirs(&self) -> Vec<PathBuf> {
        self.cni_bin_dir
            .split(':')
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect()
    }

    /// The runtime's state root (skiff-runtime `--root`) of this node.
    pub fn runtime_root(&self) -> PathBuf {
        self.root_dir.join("runtime")
    }
}

/// A Go duration (`20s`, `1m30s`, `500ms`, `1h`).
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 20s, 1m or 500ms");
    let mut rest = text.trim();
    if rest == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut seconds = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        seconds += value
            * match &rest[..unit] {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 0.001,
                _ => return Err(bad()),
            };
        rest = &rest[unit..];
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

/// A byte quantity (`10Mi`, `500Ki`, `1G`, `1048576`).
fn parse_size(text: &str) -> Result<u64, String> {
    crate::node::machine::quantity_bytes(text)
        .ok_or_else(|| format!("{text:?} is not a size such as 10Mi or 500Ki"))
}

fn parse_map(s: &str) -> Result<BTreeMap<String, String>, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| format!("{p:?}: expected name=quantity"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: KubeletArgs,
    }

    #[test]
    fn taints_labels_and_capacity() {
        let cli = Cli::parse_from([
            "kubelet",
            "--kubeconfig=k",
            "--node-name=n1",
            "--node-ip=192.168.56.11",
            "--register-with-taints=node-role.kubernetes.io/control-plane:NoSchedule,a=b:NoExecute",
            "--node-labels=node-role.kubernetes.io/worker=,zone=a",
            "--capacity=cpu=4,memory=8Gi",
        ]);
        let taints = cli.args.taints().unwrap();
        assert_eq!(taints[0].key, "node-role.kubernetes.io/control-plane");
        assert_eq!(taints[0].value, None);
        assert_eq!(taints[1].value.as_deref(), Some("b"));
        assert_eq!(taints[1].effect, "NoExecute");
        let labels = cli.args.labels().unwrap();
        assert_eq!(labels["node-role.kubernetes.io/worker"], "");
        assert_eq!(labels["zone"], "a");
        assert_eq!(cli.args.capacity.unwrap()["memory"], "8Gi");
    }

    #[test]
    fn tls_bootstrap_flags() {
        let cli = Cli::parse_from([
            "kubelet",
            "--kubeconfig=k",
            "--node-name=n1",
            "--node-ip=10.0.0.1",
            "--bootstrap-kubeconfig=b",
            "--rotate-certificates",
        ]);
        assert_eq!(cli.args.bootstrap_kubeconfig, Some(PathBuf::from("b")));
        assert!(cli.args.rotate_certificates);
        assert_eq!(
            crate::certificate::cert_dir(&cli.args),
            PathBuf::from("/var/lib/skiff/kubelet/pki")
        );
        let cli = Cli::parse_from([
            "kubelet",
            "--kubeconfig=k",
            "--node-name=n1",
            "--node-ip=10.0.0.1",
            "--rotate-certificates=false",
        ]);
        assert!(!cli.args.rotate_certificates && cli.args.bootstrap_kubeconfig.is_none());
    }

    #[test]
    fn kubelet_api_security_flags() {
        let cli = Cli::parse_from([
            "kubelet",
            "--kubeconfig=k",
            "--node-name=n1",
            "--node-ip=10.0.0.1",
        ]);
        assert!(!cli.args.anonymous_auth && !cli.args.rotate_server_certificates);
        assert_eq!(cli.args.authorization_mode, AuthorizationMode::Webhook);
        assert_eq!(cli.args.client_ca_file, None);
        let cli = Cli::parse_from([
            "kubelet",
            "--kubeconfig=k",
            "--node-name=n1",
            "--node-ip=10.0.0.1",
            "--anonymous-auth",
            "--authorization-mode=AlwaysAllow",
            "--client-ca-file=/ca.crt",
            "--rotate-server-certificates=true",
        ]);
        assert!(cli.args.anonymous_auth && cli.args.rotate_server_certificates);
        assert_eq!(cli.args.authorization_mode, AuthorizationMode::AlwaysAllow);
        assert_eq!(cli.args.client_ca_file, Some(PathBuf::from("/ca.crt")));
        assert!(Cli::try_parse_from([
            "kubelet",
            "--kubeconfig=k",
            "--node-name=n1",
            "--node-ip=10.0.0.1",
            "--authorization-mode=RBAC",
        ])
        .is_err());
    }

    #[test]
    fn static_pod_and_log_rotation_flags() {
        let base = [
            "kubelet",
            "--kubeconfig=k",
            "--node-name=n1",
            "--node-ip=10.0.0.1",
        ];
        let cli = Cli::parse_from(base);
        assert_eq!(cli.args.pod_manifest_path, None);
        assert_eq!(
            cli.args.file_check_frequency,
            std::time::Duration::from_secs(20)
        );
        assert_eq!(cli.args.container_log_max_size, 10 << 20);
        assert_eq!(cli.args.container_log_max_files, 5);
        let cli = Cli::parse_from(base.into_iter().chain([
            "--pod-manifest-path=/etc/kubernetes/manifests",
            "--file-check-frequency=1m30s",
            "--container-log-max-size=500Ki",
            "--container-log-max-files=2",
        ]));
        assert_eq!(
            cli.args.pod_manifest_path,
            Some(PathBuf::from("/etc/kubernetes/manifests"))
        );
        assert_eq!(
            cli.args.file_check_frequency,
            std::time::Duration::from_secs(90)
        );
        assert_eq!(cli.args.container_log_max_size, 500 << 10);
        assert_eq!(cli.args.container_log_max_files, 2);
        for bad in [
            "--container-log-max-files=1",
            "--container-log-max-size=ten",
            "--file-check-frequency=20",
        ] {
            assert!(
                Cli::try_parse_from(base.into_iter().chain([bad])).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_taint_effect_is_refused() {
        let cli = Cli::parse_from([
            "kubelet",
            "--kubeconfig=k",
            "--node-name=n1",
            "--node-ip=10.0.0.1",
            "--register-with-taints=a:Sometimes",
        ]);
        assert!(cli
            .args
            .taints()
            .unwrap_err()
            .to_string()
            .contains("effect"));
    }
}
