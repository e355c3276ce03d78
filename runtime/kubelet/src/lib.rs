//! skiff's kubelet: the node agent. It registers the Node, keeps its Lease and status, runs
//! the pods bound to it with skiff-runtime and the image service, and serves the kubelet API
//! (logs, exec, health) on :10250.
//!
//! ```text
//! kube-runtime watcher (pods on this node) ─┐
//! pods/file.rs (static pods, --pod-manifest-path) ─┴─> pods/mod.rs: a worker per pod
//!    pods/mirror.rs   the static pods' mirror pods in the API
//!    pods/worker.rs   sandbox → volumes → images → init containers → containers → probes → status
//!    pods/sandbox.rs  pinned net/ipc/uts namespaces, /etc/hosts, resolv.conf   cni.rs  CNI plugins
//!    pods/spec.rs     the OCI config.json                                      cgroups.rs  QoS tree
//!    runtime.rs       skiff-runtime + shim.rs (`skiff shim`: stdio → CRI log, exit code)
//!    logrotate.rs     container log rotation (done by the shim)
//! node/               registration, status, Lease heartbeat
//! certificate/        certificates from the cluster: TLS bootstrap (--bootstrap-kubeconfig) and
//!                     client-certificate rotation, the API's serving certificate
//!                     (--rotate-server-certificates)
//! server/             the kubelet API (HTTPS :10250; authentication, authorization), /healthz
//!                     on 127.0.0.1:10248
//! ```
//!
//! A library with a thin command (`skiff kubelet`), so `skiff agent` can run it beside the
//! node's network and proxy in one process.

pub mod certificate;
pub mod cgroups;
pub mod cni;
pub mod config;
pub mod imagegc;
pub mod logrotate;
pub mod node;
pub mod pods;
pub mod runtime;
pub mod server;
pub mod shim;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use config::KubeletArgs;

/// What every part of the kubelet shares.
pub struct Kubelet {
    pub client: kube::Client,
    pub args: Arc<KubeletArgs>,
    pub runtime: runtime::Runtime,
    pub images: Arc<skiff_image::Store>,
    pub layout: cgroups::Layout,
    pub recorder: Arc<skiff_events::Recorder>,
    pub node_memory_bytes: u64,
    pub node_millicpu: u64,
    /// The node's own resolv.conf (for dnsPolicy Default and the search list).
    pub node_resolv: String,
    /// The lowest oom_score_adj containers may get: without CAP_SYS_RESOURCE nothing can be
    /// set below our own value, so scores are clamped to it (containerd's
    /// `restrict_oom_score_adj`); None when any value can be set.
    pub min_oom_score_adj: Option<i64>,
    /// The pods this kubelet runs, by uid, as the kubelet API sees them.
    pub views: Mutex<HashMap<String, PodView>>,
}

/// A pod as the kubelet API needs it.
#[derive(Debug, Clone)]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub pod_ip: Option<String>,
    /// The pod's network namespace (None with hostNetwork).
    pub netns: Option<PathBuf>,
    pub containers: Vec<ContainerView>,
}

#[derive(Debug, Clone)]
pub struct ContainerView {
    pub name: String,
    pub id: Option<String>,
    pub running: bool,
    pub restart_count: i32,
    pub log_path: Option<PathBuf>,
    pub waiting: Option<String>,
}

impl Kubelet {
    /// The view of pod `namespace/name`, if this kubelet runs it.
    pub fn find(&self, namespace: &str, name: &str) -> Option<PodView> {
        self.views
            .lock()
            .expect("not poisoned")
            .values()
            .find(|v| v.namespace == namespace && v.name == name)
            .cloned()
    }
}

/// A client for the API server from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Our own oom_score_adj when we lack CAP_SYS_RESOURCE (bit 24 of CapEff), else None.
fn restricted_oom_score_adj() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())?;
    if effective & (1 << 24) != 0 {
        return None;
    }
    let own = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()?
        .trim()
        .parse()
        .ok()?;
    tracing::info!(own, "no CAP_SYS_RESOURCE: container oom_score_adj values are kept at or above the kubelet's own");
    Some(own)
}

/// A task that ends with its owner (returns, errors and all).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the kubelet until `shutdown` completes or a part fails. Containers keep running
/// when it stops: their shims hold them, and the next start finds them again.
pub async fn run(
    args: KubeletArgs,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    if args.image_gc_high_threshold < 100
        && args.image_gc_low_threshold >= args.image_gc_high_threshold
    {
        anyhow::bail!(
            "invalid configuration: imageGCLowThresholdPercent (--image-gc-low-threshold) {} must be less than imageGCHighThresholdPercent (--image-gc-high-threshold) {}",
            args.image_gc_low_threshold,
            args.image_gc_high_threshold
        );
    }
    let args = Arc::new(args);
    for dir in [&args.root_dir, &args.pod_logs_dir] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    certificate::bootstrap(&args).await?;
    let client = client_from_kubeconfig(&args.kubeconfig).await?;
    let cert_dir = certificate::cert_dir(&args);
    let rotation =
        if args.rotate_certificates && certificate::uses_store(&args.kubeconfig, &cert_dir) {
            Some(certificate::Rotating::new(client.clone()))
        } else {
            if args.rotate_certificates {
                tracing::warn!(
                "--rotate-certificates: {} does not use a client certificate from {}; not rotating",
                args.kubeconfig.display(),
                cert_dir.display()
            );
            }
            None
        };
    let client = match &rotation {
        Some(rotating) => rotating.client(),
        None => client,
    };
    let rotate = async {
        match rotation {
            Some(rotating) => certificate::rotate(args.clone(), rotating).await,
            None => std::future::pending().await,
        }
    };
    // The kubelet API's certificate: self-signed, or (--rotate-server-certificates) issued by
    // the cluster — asked for now, so the request is out while the node registers.
    let serving = certificate::serving::initial(&args)?;
    let mut serving_renewal = AbortOnDrop(tokio::spawn({
        let (args, client, serving) = (args.clone(), client.clone(), serving.clone());
        async move {
            if args.rotate_server_certificates {
                certificate::serving::keep(args, client, serving).await
            } else {
                std::future::pending().await
            }
        }
    }));
    let images = skiff_image::Store::open(&args.image_root)
        .with_context(|| format!("opening the image store {}", args.image_root.display()))?;
    let shim = std::env::current_exe().context("finding the skiff binary for the shim")?;
    let runtime = runtime::Runtime {
        binary: args.runtime(),
        root: args.runtime_root(),
        shim,
    };
    std::fs::create_dir_all(&runtime.root)
        .with_context(|| format!("creating {}", runtime.root.display()))?;
    let recorder = Arc::new(skiff_events::Recorder::new(
        "kubelet",
        Some(&args.node_name),
    ));
    let machine = node::machine::Machine::read(&args.root_dir);
    let capacity = machine.capacity(args.capacity.as_ref());
    let node_memory_bytes = capacity
        .get("memory")
        .and_then(|q| node::machine::quantity_bytes(&q.0))
        .unwrap_or(machine.memory_kib * 1024);
    let node_millicpu = capacity
        .get("cpu")
        .and_then(|q| node::machine::quantity_millicpu(&q.0))
        .unwrap_or(machine.cpus * 1000);
    let kubelet = Arc::new(Kubelet {
        client: client.clone(),
        args: args.clone(),
        runtime,
        images,
        layout: cgroups::Layout::detect(),
        recorder: recorder.clone(),
        node_memory_bytes,
        node_millicpu,
        node_resolv: std::fs::read_to_string(&args.resolv_conf).unwrap_or_default(),
        min_oom_score_adj: restricted_oom_score_adj(),
        views: Mutex::new(HashMap::new()),
    });

    // Pods start before the node registers: static pods need no API server.
    let pods = pods::spawn(kubelet.clone());
    let agent = Arc::new(node::NodeAgent::new(client.clone(), args.clone(), recorder));
    agent.register().await?;
    let cni_dir = args.cni_conf_dir.clone();
    let health = node::NodeHealth {
        network_not_ready: Box::new(move || {
            match cni::load(&cni_dir) {
            Ok(_) => None,
            Err(e) => Some(format!(
                "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: {e}"
            )),
        }
        }),
    };
    let _image_gc = AbortOnDrop(tokio::spawn(imagegc::keep(kubelet.clone())));
    let server = server::serve(kubelet.clone(), serving).await?;
    tracing::info!(node = %args.node_name, port = args.port, "kubelet started");
    tokio::select! {
        _ = rotate => anyhow::bail!("the client certificate rotation stopped"),
        _ = &mut serving_renewal.0 => anyhow::bail!("the serving certificate rotation stopped"),
        _ = agent.clone().keep_status(health) => anyhow::bail!("the node status loop stopped"),
        _ = agent.keep_lease() => anyhow::bail!("the node lease loop stopped"),
        r = pods => r,
        r = server => r.context("the kubelet API server"),
        _ = shutdown => {
            tracing::info!("kubelet stopping; containers keep running");
            Ok(())
        }
    }
}
