//! skiff's kube-controller-manager. Controllers are kube-rs controllers (watcher → reflector →
//! reconcile) talking to the API server like any other client.
//!
//! Today: the namespace controller (ships with the API server so `kubectl delete namespace`
//! completes), the garbage collector (ownerReferences; foreground and orphan deletion, so
//! every `propagationPolicy` the API server accepts completes), and the workload controllers
//! ReplicaSet, ReplicationController (`replicaset/`), Deployment (`deployment/`), DaemonSet
//! (`daemonset/`) and StatefulSet (`statefulset/`: ordinal pods, claims from
//! volumeClaimTemplates; both with ControllerRevisions from `history.rs`), the batch
//! controllers Job (`job/`), CronJob (`cronjob/`) and TTL-after-finished
//! (`ttl_after_finished.rs`), and the service controllers EndpointSlice (`endpointslice/`) and
//! Endpoints (`endpoints/`), which share one pod informer (and ReplicaSet, node,
//! ControllerRevision, PersistentVolumeClaim, Job, EndpointSlice and Endpoints informers,
//! `informer.rs`), as upstream's controllers share informers. On the same
//! pod and node informers (plus one of the Leases in `kube-node-lease`) run the node
//! controllers: node lifecycle (`nodelifecycle/`: node health from heartbeats and Leases,
//! not-ready/unreachable taints, pods marked not ready), taint eviction (`tainteviction.rs`:
//! pods deleted for NoExecute taints they do not tolerate) and the pod garbage collector
//! (`podgc.rs`). The ResourceQuota controller (`resourcequota.rs`) recounts quotas on the pod
//! informer's deletions and its own watches of the other counted kinds. The horizontal pod
//! autoscaler (`podautoscaler/`) scales targets through their `scale` subresource from the
//! metrics APIs (metrics.k8s.io, custom and external metrics), on the same pod informer.
//!
//! The certificates controllers (`certificates/`): the CSR approver (kubelet client
//! certificates, by SubjectAccessReview) and, given the cluster CA
//! (`--cluster-signing-cert-file`/`--cluster-signing-key-file`), the CSR signer.
//! Beside them: the ServiceAccount controller (`serviceaccount.rs`, a `default` account per
//! namespace), the token controller (`serviceaccount_tokens.rs`, legacy tokens in Secrets, when
//! --service-account-private-key-file is given) and the root CA publisher (`rootcacert.rs`).
//!
//! Like upstream's kube-controller-manager, the controllers run only on the instance holding
//! the Lease `kube-system/kube-controller-manager` (leader election, `skiff-leaderelection`),
//! and every instance serves `/healthz` and `/metrics` on upstream's port 10257 ([`serve`],
//! through `skiff-serving`), with upstream's work queue metrics (`workqueue.rs`, taken around
//! each kube-runtime controller's reconciler).

pub mod backoff;
pub mod bootstrap;
pub mod certificates;
pub mod clusterrole_aggregation;
pub mod controller_ref;
pub mod credentials;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod discovery;
pub mod disruption;
pub mod duration;
pub mod endpoints;
pub mod endpointslice;
pub mod events;
pub mod expectations;
pub mod garbage_collector;
pub mod history;
pub mod informer;
pub mod job;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podautoscaler;
pub mod podgc;
pub mod pods;
pub mod replicaset;
pub mod resourcequota;
pub mod retry;
pub mod rootcacert;
pub mod selector;
pub mod service_lb;
pub mod service_pods;
pub mod serviceaccount;
pub mod serviceaccount_tokens;
pub mod statefulset;
pub mod tainteviction;
pub mod trigger_time;
pub mod ttl_after_finished;
pub mod workqueue;

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};
use skiff_leaderelection::{default_identity, LeaderElector, LeaseConfig};

/// A client for the API server from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    client_with_config(config_from_kubeconfig(path).await?)
}

/// A client with client-go's retries (`retry.rs`) in place of kube-rs' default ones.
pub fn client_with_config(config: kube::Config) -> anyhow::Result<kube::Client> {
    Ok(retry::builder(config)?.build())
}

/// The client settings of a kubeconfig file.
pub async fn config_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Config> {
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)
}

/// The Lease kube-controller-manager's instances elect their leader on, as upstream.
pub const LEASE_NAMESPACE: &str = "kube-system";
pub const LEASE_NAME: &str = "kube-controller-manager";

/// The controller manager's options (upstream kube-controller-manager's flag names).
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Give every Node a pod range (`spec.podCIDR`) out of --cluster-cidr.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub allocate_node_cidrs: bool,
    /// The cluster's pod network.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: String,
    /// The prefix length of each node's pod range.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// Addresses for Services of type LoadBalancer (`FIRST-LAST` or a CIDR on the node
    /// network); unset: they stay pending, as on a cluster without a cloud provider.
    #[arg(long)]
    pub load_balancer_ip_range: Option<String>,
    /// How often the node lifecycle controller checks node health (a Go duration, as upstream).
    #[arg(long, default_value = "5s", value_parser = duration::parse)]
    pub node_monitor_period: Duration,
    /// How long a node may go without posting status or renewing its Lease before it is
    /// marked Unknown (upstream's default since 1.32: 50s).
    #[arg(long, default_value = "50s", value_parser = duration::parse)]
    pub node_monitor_grace_period: Duration,
    /// The grace period for a node that never posted a Ready condition.
    #[arg(long, default_value = "1m0s", value_parser = duration::parse)]
    pub node_startup_grace_period: Duration,
    /// Nodes per second per zone that may get a NoExecute taint (evicting their pods).
    #[arg(long, default_value_t = 0.1)]
    pub node_eviction_rate: f64,
    /// The rate in a zone where --unhealthy-zone-threshold of the nodes are unhealthy.
    #[arg(long, default_value_t = 0.01)]
    pub secondary_node_eviction_rate: f64,
    /// Zones of at most this many nodes stop tainting when mostly unhealthy.
    #[arg(long, default_value_t = 50)]
    pub large_cluster_size_threshold: usize,
    /// The share of unhealthy nodes (at least 3) that makes a zone unhealthy.
    #[arg(long, default_value_t = 0.55)]
    pub unhealthy_zone_threshold: f64,
    /// Finished pods kept before the pod garbage collector deletes the oldest (≤ 0: never).
    #[arg(long, default_value_t = 12500)]
    pub terminated_pod_gc_threshold: i64,
    /// The CA bundle published as `kube-root-ca.crt` in every namespace; unset: the CA of the
    /// controller manager's kubeconfig.
    #[arg(long)]
    pub root_ca_file: Option<std::path::PathBuf>,
    /// The PEM CA certificate the CSR signer issues certificates with (with
    /// --cluster-signing-key-file); unset: no signer runs, as upstream.
    #[arg(long)]
    pub cluster_signing_cert_file: Option<std::path::PathBuf>,
    /// The PEM (PKCS#8) private key of --cluster-signing-cert-file.
    #[arg(long)]
    pub cluster_signing_key_file: Option<std::path::PathBuf>,
    /// The longest certificate the signer issues (a request's spec.expirationSeconds may ask
    /// for less).
    #[arg(long, default_value = "8760h0m0s", value_parser = duration::parse)]
    pub cluster_signing_duration: Duration,
    /// The private key (PEM) that signs the legacy tokens put into Secrets of type
    /// `kubernetes.io/service-account-token` (the API server's signing key); unset: no token
    /// controller, as upstream.
    #[arg(long)]
    pub service_account_private_key_file: Option<std::path::PathBuf>,
    /// Each controller acts as its own service account `kube-system/<controller-name>` with a
    /// token from the TokenRequest API, so it holds only upstream's
    /// `system:controller:<controller-name>` role (`credentials.rs`); false: every controller
    /// uses the controller manager's own credential. Upstream's default is false; skiff's is
    /// true, since its policy grants the controller manager's own user only upstream's
    /// `system:kube-controller-manager` role.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub use_service_account_credentials: bool,
    /// How often every ResourceQuota's usage is recounted in full (besides the recounts that
    /// deletions trigger).
    #[arg(long, default_value = "5m0s", value_parser = duration::parse)]
    pub resource_quota_sync_period: Duration,
    /// How often each HorizontalPodAutoscaler is synced.
    #[arg(long, default_value = "15s", value_parser = duration::parse)]
    pub horizontal_pod_autoscaler_sync_period: Duration,
    /// How long a scale-down waits for recommendations to stay lower (autoscalers without
    /// `spec.behavior`, and scale-down rules without a window).
    #[arg(long, default_value = "5m0s", value_parser = duration::parse)]
    pub horizontal_pod_autoscaler_downscale_stabilization: Duration,
    /// The share the usage may differ from the target by before the replica count changes.
    #[arg(long, default_value_t = 0.1)]
    pub horizontal_pod_autoscaler_tolerance: f64,
    /// After a pod starts, cpu samples count only once they postdate its readiness.
    #[arg(long, default_value = "5m0s", value_parser = duration::parse)]
    pub horizontal_pod_autoscaler_cpu_initialization_period: Duration,
    /// After a pod starts, how long it may take to become ready before its unreadiness counts.
    #[arg(long, default_value = "30s", value_parser = duration::parse)]
    pub horizontal_pod_autoscaler_initial_readiness_delay: Duration,
}

impl Options {
    fn podautoscaler(&self) -> podautoscaler::Config {
        podautoscaler::Config {
            sync_period: self.horizontal_pod_autoscaler_sync_period,
            downscale_stabilization: self.horizontal_pod_autoscaler_downscale_stabilization,
            tolerance: self.horizontal_pod_autoscaler_tolerance,
            cpu_initialization_period: self.horizontal_pod_autoscaler_cpu_initialization_period,
            initial_readiness_delay: self.horizontal_pod_autoscaler_initial_readiness_delay,
        }
    }

    fn node_lifecycle(&self) -> nodelifecycle::Config {
        nodelifecycle::Config {
            monitor_period: self.node_monitor_period,
            grace: nodelifecycle::health::Grace {
                monitor: self.node_monitor_grace_period,
                startup: self.node_startup_grace_period,
            },
            rates: nodelifecycle::zones::Rates {
                eviction_rate: self.node_eviction_rate,
                secondary_eviction_rate: self.secondary_node_eviction_rate,
                large_cluster_size_threshold: self.large_cluster_size_threshold,
                unhealthy_zone_threshold: self.unhealthy_zone_threshold,
            },
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            allocate_node_cidrs: true,
            cluster_cidr: "10.244.0.0/16".into(),
            node_cidr_mask_size: 24,
            load_balancer_ip_range: None,
            node_monitor_period: Duration::from_secs(5),
            node_monitor_grace_period: Duration::from_secs(50),
            node_startup_grace_period: Duration::from_secs(60),
            node_eviction_rate: 0.1,
            secondary_node_eviction_rate: 0.01,
            large_cluster_size_threshold: 50,
            unhealthy_zone_threshold: 0.55,
            terminated_pod_gc_threshold: 12500,
            root_ca_file: None,
            cluster_signing_cert_file: None,
            cluster_signing_key_file: None,
            cluster_signing_duration: Duration::from_secs(365 * 86400),
            service_account_private_key_file: None,
            use_service_account_credentials: true,
            resource_quota_sync_period: resourcequota::DEFAULT_SYNC_PERIOD,
            horizontal_pod_autoscaler_sync_period: Duration::from_secs(15),
            horizontal_pod_autoscaler_downscale_stabilization: Duration::from_secs(300),
            horizontal_pod_autoscaler_tolerance: 0.1,
            horizontal_pod_autoscaler_cpu_initialization_period: Duration::from_secs(300),
            horizontal_pod_autoscaler_initial_readiness_delay: Duration::from_secs(30),
        }
    }
}

/// Starts the controller manager: the controllers run only while this instance holds the Lease
/// `kube-system/kube-controller-manager` (identity `<hostname>_<uuid>`). A single server takes
/// it at once when the Lease is new or was released by a clean shutdown; after a crash its
/// restart waits until the old identity's lease has expired (15 s), as upstream's does. The handle ends if a controller fails, or with
/// [`skiff_leaderelection::LeaderElectionError::LeaseLost`] when a renewal misses its deadline
/// (the controllers have stopped; upstream's controller manager exits then, and so does
/// `skiff server`). When `shutdown` completes, the controllers stop, the Lease is released (so
/// a standby takes over at once) and the handle ends with `Ok`.
///
/// `serving` (port 0: nothing) is where `/healthz` and `/metrics` are served from the start,
/// on a standby too ([`serve`]); failing to bind it fails the start.
pub async fn start(
    kubeconfig: &Path,
    options: Options,
    serving: &skiff_serving::SecureServing,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let ipam = if options.allocate_node_cidrs {
        Some(nodeipam::Config::new(
            &options.cluster_cidr,
            options.node_cidr_mask_size,
        )?)
    } else {
        None
    };
    let pool = options
        .load_balancer_ip_range
        .as_deref()
        .map(service_lb::Pool::parse)
        .transpose()?;
    anyhow::ensure!(
        !options.node_monitor_period.is_zero(),
        "--node-monitor-period must be positive"
    );
    let root_ca = rootcacert::load_ca(options.root_ca_file.as_deref(), kubeconfig)?;
    let signing_ca = match (
        &options.cluster_signing_cert_file,
        &options.cluster_signing_key_file,
    ) {
        (Some(cert), Some(key)) => Some(certificates::authority::Authority::load(cert, key)?),
        (None, None) => None,
        _ => anyhow::bail!(
            "--cluster-signing-cert-file and --cluster-signing-key-file go together: give both or neither"
        ),
    };
    anyhow::ensure!(
        !options.cluster_signing_duration.is_zero(),
        "--cluster-signing-duration must be positive"
    );
    let token_key = options
        .service_account_private_key_file
        .as_deref()
        .map(skiff_apiserver::auth::serviceaccount::keys::SigningKey::from_file)
        .transpose()
        .context("--service-account-private-key-file")?
        .map(std::sync::Arc::new);
    let config = config_from_kubeconfig(kubeconfig).await?;
    let client = client_with_config(config.clone())?;
    let elector_config = LeaseConfig::new(LEASE_NAMESPACE, LEASE_NAME, default_identity());
    let elector = LeaderElector::new(client.clone(), elector_config);
    let healthz = serve(serving, client.clone(), elector.health()).await?;
    // Upstream adds a check per controller once they run (controller-manager's
    // `NamedPingChecker`): /healthz?verbose lists what this leader runs.
    let running = running_controllers(
        ipam.is_some(),
        token_key.is_some(),
        pool.is_some(),
        signing_ca.is_some(),
    );
    Ok(tokio::spawn(elector.run_until(
        move || async move {
            for name in running {
                healthz.add(skiff_serving::Check::ping(name));
            }
            // The controllers' clients are made once this instance leads, as upstream's
            // controller context is; `clients` is dropped when the controllers stop, which
            // ends their token refreshes.
            let clients = credentials::ClientBuilder::new(
                client.clone(),
                config,
                options.use_service_account_credentials,
            );
            let node_ipam = async {
                match ipam {
                    Some(config) => {
                        let own = clients.client_for(names::NODE).await?;
                        nodeipam::run(own.clone(), config, events::start(own)).await;
                        Ok(())
                    }
                    None => std::future::pending().await,
                }
            };
            // Upstream's "tokens" controller uses the controller manager's own credential.
            let tokens = async {
                match token_key.clone() {
                    Some(key) => serviceaccount_tokens::run(client.clone(), key, root_ca.clone()).await,
                    None => std::future::pending().await,
                }
            };
            let service_lb = async {
                match pool {
                    Some(pool) => {
                        let own = clients.client_for(names::SERVICE).await?;
                        service_lb::run(own.clone(), pool, events::start(own)).await;
                        Ok(())
                    }
                    None => std::future::pending().await,
                }
            };
            let csr_signer = async {
                match signing_ca {
                    Some(ca) => {
                        let own = clients.client_for(names::CERTIFICATE).await?;
                        certificates::signer::run(own, ca, options.cluster_signing_duration).await;
                        Ok(())
                    }
                    None => {
                        tracing::info!("no --cluster-signing-cert-file/--cluster-signing-key-file: the CSR signer does not run");
                        std::future::pending().await
                    }
                }
            };
            let csr_approver = async {
                certificates::approver::run(clients.client_for(names::CERTIFICATE).await?).await;
                anyhow::Ok(())
            };
            let namespaces = async {
                namespace::run(clients.client_for(names::NAMESPACE).await?).await;
                anyhow::Ok(())
            };
            let garbage_collector = async {
                garbage_collector::run(clients.client_for(names::GARBAGE_COLLECTOR).await?).await;
                anyhow::Ok(())
            };
            let service_accounts = async {
                let own = clients.client_for(names::SERVICE_ACCOUNT).await?;
                serviceaccount::run(client.clone(), own).await;
                anyhow::Ok(())
            };
            let aggregation = async {
                clusterrole_aggregation::run(clients.client_for(names::CLUSTERROLE_AGGREGATION).await?).await;
                anyhow::Ok(())
            };
            let root_ca_publisher = async {
                let own = clients.client_for(names::ROOT_CA_CERT_PUBLISHER).await?;
                rootcacert::run(client.clone(), own, root_ca.clone()).await;
                anyhow::Ok(())
            };
            let bootstrap_signer = async {
                let own = clients.client_for(names::BOOTSTRAP_SIGNER).await?;
                bootstrap::signer::run(client.clone(), own).await;
                anyhow::Ok(())
            };
            let token_cleaner = async {
                let own = clients.client_for(names::TOKEN_CLEANER).await?;
                bootstrap::cleaner::run(client.clone(), own).await;
                anyhow::Ok(())
            };
            // A controller whose client could not be made fails the controller manager (as
            // upstream's `ClientOrDie`); one that returns has stopped.
            tokio::select! {
                r = csr_signer => r.and(Err(anyhow::anyhow!("the CSR signer stopped"))),
                r = csr_approver => r.and(Err(anyhow::anyhow!("the CSR approver stopped"))),
                r = service_lb => r.and(Err(anyhow::anyhow!("the service load-balancer controller stopped"))),
                r = namespaces => r.and(Err(anyhow::anyhow!("the namespace controller stopped"))),
                r = garbage_collector => r.and(Err(anyhow::anyhow!("the garbage collector stopped"))),
                r = service_accounts => r.and(Err(anyhow::anyhow!("the serviceaccount controller stopped"))),
                r = aggregation => r.and(Err(anyhow::anyhow!("the clusterrole aggregation controller stopped"))),
                _ = tokens => anyhow::bail!("the serviceaccount token controller stopped"),
                r = root_ca_publisher => r.and(Err(anyhow::anyhow!("the root CA publisher stopped"))),
                r = bootstrap_signer => r.and(Err(anyhow::anyhow!("the bootstrap signer stopped"))),
                r = token_cleaner => r.and(Err(anyhow::anyhow!("the token cleaner stopped"))),
                r = node_ipam => r.and(Err(anyhow::anyhow!("the node IPAM controller stopped"))),
                r = run_workloads(&clients, &options) => r.and(Err(anyhow::anyhow!("the workload controllers stopped"))),
            }
        },
        shutdown,
    )))
}

/// How long a leader may go without renewing past its lease before `/healthz` fails
/// (kube-controller-manager's `NewLeaderHealthzAdaptor(time.Second * 20)`).
pub const LEADER_ELECTION_HEALTHZ_TOLERANCE: Duration = Duration::from_secs(20);

/// Serves `/healthz` (the `leaderElection` check; [`start`] adds one per controller) and
/// `/metrics` (the work queues, leader election and process metrics) on `serving`, reviewing
/// requests through `client`. Returns the checks.
pub async fn serve(
    serving: &skiff_serving::SecureServing,
    client: kube::Client,
    leader: skiff_leaderelection::LeaderHealth,
) -> anyhow::Result<std::sync::Arc<skiff_serving::Healthz>> {
    let healthz = std::sync::Arc::new(skiff_serving::Healthz::new(vec![
        skiff_serving::Check::leader_election(leader.clone(), LEADER_ELECTION_HEALTHZ_TOLERANCE),
    ]));
    let mut registry = skiff_serving::metrics::component_registry(Some(leader));
    workqueue::Workqueues::global().register(&mut registry);
    let metrics = std::sync::Arc::new(move || skiff_serving::metrics::render(&registry));
    let endpoints = skiff_serving::Endpoints {
        healthz: healthz.clone(),
        metrics,
    };
    if let Some(address) = skiff_serving::serve(serving, client, endpoints).await? {
        tracing::info!("controller manager: /healthz and /metrics on https://{address}");
    }
    Ok(healthz)
}

/// Upstream's names (cmd/kube-controller-manager/names) of the controllers [`start`] runs, in
/// the order it starts them; some run only when configured.
fn running_controllers(
    node_ipam: bool,
    tokens: bool,
    service_lb: bool,
    csr_signing: bool,
) -> Vec<&'static str> {
    let mut names = Vec::new();
    names.extend(csr_signing.then_some("certificatesigningrequest-signing-controller"));
    names.push("certificatesigningrequest-approving-controller");
    // The cloud-controller-manager's name for it.
    names.extend(service_lb.then_some("service-lb-controller"));
    names.extend([
        "namespace-controller",
        "garbage-collector-controller",
        "serviceaccount-controller",
        "clusterrole-aggregation-controller",
    ]);
    names.extend(tokens.then_some("serviceaccount-token-controller"));
    names.push("root-ca-certificate-publisher-controller");
    // Off by default upstream; kubeadm turns both on, as skiff does.
    names.extend(["bootstrap-signer-controller", "token-cleaner-controller"]);
    names.extend(node_ipam.then_some("node-ipam-controller"));
    names.extend([
        "node-lifecycle-controller",
        "taint-eviction-controller",
        "pod-garbage-collector-controller",
        "replicaset-controller",
        "replicationcontroller-controller",
        "deployment-controller",
        "daemonset-controller",
        "statefulset-controller",
        "endpointslice-controller",
        "endpoints-controller",
        "job-controller",
        "disruption-controller",
        "cronjob-controller",
        "resourcequota-controller",
        "ttl-after-finished-controller",
        "horizontal-pod-autoscaler-controller",
    ]);
    names
}

/// The service accounts (in `kube-system`) upstream's kube-controller-manager runs each
/// controller as with `--use-service-account-credentials` (cmd/kube-controller-manager/app),
/// each bound to the ClusterRole `system:controller:<name>` by upstream's default policy.
pub mod names {
    pub const DEPLOYMENT: &str = "deployment-controller";
    pub const REPLICASET: &str = "replicaset-controller";
    pub const REPLICATION: &str = "replication-controller";
    pub const DAEMON_SET: &str = "daemon-set-controller";
    pub const STATEFULSET: &str = "statefulset-controller";
    pub const JOB: &str = "job-controller";
    pub const CRONJOB: &str = "cronjob-controller";
    pub const DISRUPTION: &str = "disruption-controller";
    pub const ENDPOINT: &str = "endpoint-controller";
    pub const ENDPOINTSLICE: &str = "endpointslice-controller";
    pub const NAMESPACE: &str = "namespace-controller";
    pub const GARBAGE_COLLECTOR: &str = "generic-garbage-collector";
    pub const SERVICE_ACCOUNT: &str = "service-account-controller";
    pub const ROOT_CA_CERT_PUBLISHER: &str = "root-ca-cert-publisher";
    /// Bound to Roles (not ClusterRoles) in kube-system and kube-public by upstream's policy.
    pub const BOOTSTRAP_SIGNER: &str = "bootstrap-signer";
    pub const TOKEN_CLEANER: &str = "token-cleaner";
    /// Node lifecycle, node IPAM and taint eviction (upstream's taint-eviction-controller
    /// "uses existing cluster role from node-controller").
    pub const NODE: &str = "node-controller";
    pub const POD_GARBAGE_COLLECTOR: &str = "pod-garbage-collector";
    pub const TTL_AFTER_FINISHED: &str = "ttl-after-finished-controller";
    /// The LoadBalancer controller (upstream's cloud service controller).
    pub const SERVICE: &str = "service-controller";
    pub const CLUSTERROLE_AGGREGATION: &str = "clusterrole-aggregation-controller";
    /// The CSR signer and approver.
    pub const CERTIFICATE: &str = "certificate-controller";
    pub const RESOURCE_QUOTA: &str = "resourcequota-controller";
    pub const HORIZONTAL_POD_AUTOSCALER: &str = "horizontal-pod-autoscaler";
}

/// The workload, service and node controllers on their shared informers. The informers use
/// `clients`' root (the controller manager's own credential, upstream's "shared-informers"
/// client); each controller acts, and records its events, with its own client. Ends with an
/// error if a controller's client cannot be made; otherwise only when something stopped.
pub async fn run_workloads(
    clients: &credentials::ClientBuilder,
    options: &Options,
) -> anyhow::Result<()> {
    use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet};
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{
        Endpoints, Node, PersistentVolumeClaim, Pod, ReplicationController,
    };
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let client = clients.root().clone();
    let rs_client = clients.client_for(names::REPLICASET).await?;
    let rc_client = clients.client_for(names::REPLICATION).await?;
    let deploy_client = clients.client_for(names::DEPLOYMENT).await?;
    let ds_client = clients.client_for(names::DAEMON_SET).await?;
    let sts_client = clients.client_for(names::STATEFULSET).await?;
    let slice_client = clients.client_for(names::ENDPOINTSLICE).await?;
    let endpoint_client = clients.client_for(names::ENDPOINT).await?;
    let job_client = clients.client_for(names::JOB).await?;
    let pdb_client = clients.client_for(names::DISRUPTION).await?;
    let cronjob_client = clients.client_for(names::CRONJOB).await?;
    let node_client = clients.client_for(names::NODE).await?;
    let podgc_client = clients.client_for(names::POD_GARBAGE_COLLECTOR).await?;
    let ttl_client = clients.client_for(names::TTL_AFTER_FINISHED).await?;
    let quota_client = clients.client_for(names::RESOURCE_QUOTA).await?;
    let hpa_client = clients.client_for(names::HORIZONTAL_POD_AUTOSCALER).await?;
    let pods = informer::Informer::<Pod>::new();
    let replica_sets = informer::Informer::<ReplicaSet>::new();
    let nodes = informer::Informer::<Node>::new();
    let slices = informer::Informer::<EndpointSlice>::new();
    let endpoints = informer::Informer::<Endpoints>::new();
    let batch_jobs = informer::Informer::<Job>::new();
    let revisions = informer::Informer::<ControllerRevision>::new();
    let node_leases = informer::Informer::<Lease>::new();
    let claims = informer::Informer::<PersistentVolumeClaim>::new();
    // Controllers register their informer handlers when built, before the informers run.
    let rs = replicaset::controller::<ReplicaSet>(
        rs_client.clone(),
        pods.clone(),
        &events::start(rs_client),
    );
    let rc = replicaset::controller::<ReplicationController>(
        rc_client.clone(),
        pods.clone(),
        &events::start(rc_client),
    );
    let deploy = deployment::controller(
        deploy_client.clone(),
        pods.clone(),
        replica_sets.clone(),
        &events::start(deploy_client),
    );
    let daemon_set = daemonset::controller(
        ds_client.clone(),
        pods.clone(),
        nodes.clone(),
        revisions.clone(),
        &events::start(ds_client),
    );
    let stateful_set = statefulset::controller(
        sts_client.clone(),
        pods.clone(),
        revisions.clone(),
        claims.clone(),
        &events::start(sts_client),
    );
    let endpoint_slice = endpointslice::controller(
        slice_client.clone(),
        pods.clone(),
        nodes.clone(),
        slices.clone(),
        &events::start(slice_client),
    );
    let endpoint = endpoints::controller(
        endpoint_client.clone(),
        pods.clone(),
        endpoints.clone(),
        &events::start(endpoint_client),
    );
    let jobs = job::controller(job_client.clone(), pods.clone(), &events::start(job_client));
    let budgets =
        disruption::controller(pdb_client.clone(), pods.clone(), &events::start(pdb_client));
    let cronjobs = cronjob::controller(
        cronjob_client.clone(),
        batch_jobs.clone(),
        &events::start(cronjob_client),
    );
    let node_recorder = events::start(node_client.clone());
    let node_lifecycle = nodelifecycle::controller(
        node_client.clone(),
        nodes.clone(),
        pods.clone(),
        node_leases.clone(),
        options.node_lifecycle(),
        &node_recorder,
    );
    let taint_eviction =
        tainteviction::controller(node_client, nodes.clone(), pods.clone(), &node_recorder);
    let quotas = resourcequota::controller(
        quota_client,
        pods.clone(),
        options.resource_quota_sync_period,
    );
    let autoscalers = podautoscaler::controller(
        hpa_client.clone(),
        pods.clone(),
        &events::start(hpa_client),
        options.podautoscaler(),
    );
    let pod_gc = podgc::run(
        podgc_client,
        pods.clone(),
        nodes.clone(),
        options.terminated_pod_gc_threshold,
    );
    tokio::select! {
        _ = node_leases.run(kube::Api::namespaced(client.clone(), nodelifecycle::LEASE_NAMESPACE)) => tracing::error!("node lease informer stopped"),
        _ = node_lifecycle => tracing::error!("node lifecycle controller stopped"),
        _ = taint_eviction => tracing::error!("taint eviction controller stopped"),
        _ = pod_gc => tracing::error!("pod garbage collector stopped"),
        _ = pods.run(kube::Api::all(client.clone())) => tracing::error!("pod informer stopped"),
        _ = replica_sets.run(kube::Api::all(client.clone())) => tracing::error!("replicaset informer stopped"),
        _ = nodes.run(kube::Api::all(client.clone())) => tracing::error!("node informer stopped"),
        _ = slices.run(kube::Api::all(client.clone())) => tracing::error!("endpointslice informer stopped"),
        _ = endpoints.run(kube::Api::all(client.clone())) => tracing::error!("endpoints informer stopped"),
        _ = batch_jobs.run(kube::Api::all(client.clone())) => tracing::error!("job informer stopped"),
        _ = revisions.run(kube::Api::all(client.clone())) => tracing::error!("controllerrevision informer stopped"),
        _ = claims.run(kube::Api::all(client.clone())) => tracing::error!("persistentvolumeclaim informer stopped"),
        _ = rs => tracing::error!("replicaset controller stopped"),
        _ = rc => tracing::error!("replicationcontroller controller stopped"),
        _ = deploy => tracing::error!("deployment controller stopped"),
        _ = daemon_set => tracing::error!("daemonset controller stopped"),
        _ = stateful_set => tracing::error!("statefulset controller stopped"),
        _ = endpoint_slice => tracing::error!("endpointslice controller stopped"),
        _ = endpoint => tracing::error!("endpoints controller stopped"),
        _ = jobs => tracing::error!("job controller stopped"),
        _ = budgets => tracing::error!("disruption controller stopped"),
        _ = cronjobs => tracing::error!("cronjob controller stopped"),
        _ = quotas => tracing::error!("resourcequota controller stopped"),
        _ = autoscalers => tracing::error!("horizontal pod autoscaler controller stopped"),
        _ = ttl_after_finished::run(ttl_client) => tracing::error!("ttl-after-finished controller stopped"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    /// `skiff server` takes the API server's service-account flags and the controller
    /// manager's options side by side: no flag may be defined twice.
    #[derive(Parser)]
    struct Server {
        #[command(flatten)]
        service_accounts: skiff_apiserver::server::ServiceAccountArgs,
        #[command(flatten)]
        controllers: super::Options,
    }

    #[test]
    fn service_account_flags_do_not_collide() {
        Server::command().debug_assert();
        let s = Server::parse_from([
            "server",
            "--service-account-private-key-file=/k",
            "--service-account-signing-key-file=/s",
        ]);
        assert_eq!(
            s.controllers.service_account_private_key_file.as_deref(),
            Some(std::path::Path::new("/k"))
        );
        assert!(s
            .service_accounts
            .service_account_signing_key_file
            .is_some());
    }

    #[test]
    fn service_account_credentials_are_on_by_default() {
        let s = Server::parse_from(["server"]);
        assert!(s.controllers.use_service_account_credentials);
        assert!(super::Options::default().use_service_account_credentials);
        let s = Server::parse_from(["server", "--use-service-account-credentials=false"]);
        assert!(!s.controllers.use_service_account_credentials);
    }

    /// Every account a controller runs as is bound by upstream's default policy to the
    /// ClusterRole `system:controller:<name>`.
    #[test]
    fn every_controller_account_has_its_upstream_role() {
        use super::names::*;
        let policy = skiff_apiserver::auth::rbac::policy::upstream();
        for name in [
            DEPLOYMENT,
            REPLICASET,
            REPLICATION,
            DAEMON_SET,
            STATEFULSET,
            JOB,
            CRONJOB,
            DISRUPTION,
            ENDPOINT,
            ENDPOINTSLICE,
            NAMESPACE,
            GARBAGE_COLLECTOR,
            SERVICE_ACCOUNT,
            ROOT_CA_CERT_PUBLISHER,
            NODE,
            POD_GARBAGE_COLLECTOR,
            TTL_AFTER_FINISHED,
            SERVICE,
            CLUSTERROLE_AGGREGATION,
            CERTIFICATE,
        ] {
            let role = format!("system:controller:{name}");
            assert!(
                policy["clusterroles"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["metadata"]["name"] == role.as_str()),
                "no ClusterRole {role}"
            );
            let bound = policy["clusterrolebindings"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|b| b["roleRef"]["name"] == role.as_str())
                .flat_map(|b| b["subjects"].as_array().unwrap())
                .any(|s| {
                    s["kind"] == "ServiceAccount"
                        && s["namespace"] == super::credentials::NAMESPACE
                        && s["name"] == name
                });
            assert!(bound, "{role} is not bound to kube-system/{name}");
        }
    }

    #[test]
    fn bootstrap_accounts_have_their_upstream_roles() {
        use super::names::*;
        let policy = skiff_apiserver::auth::rbac::policy::upstream();
        for (name, namespaces) in [
            (BOOTSTRAP_SIGNER, &["kube-system", "kube-public"][..]),
            (TOKEN_CLEANER, &["kube-system"][..]),
        ] {
            for ns in namespaces {
                let role = format!("system:controller:{name}");
                let bound = policy["rolebindings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|b| {
                        b["metadata"]["namespace"] == *ns && b["roleRef"]["name"] == role.as_str()
                    })
                    .flat_map(|b| b["subjects"].as_array().unwrap())
                    .any(|s| s["kind"] == "ServiceAccount" && s["name"] == name);
                assert!(bound, "{role} in {ns} is not bound to kube-system/{name}");
            }
        }
    }
}
