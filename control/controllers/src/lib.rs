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
//! (`podgc.rs`).
//!
//! The certificates controllers (`certificates/`): the CSR approver (kubelet client
//! certificates, by SubjectAccessReview) and, given the cluster CA
//! (`--cluster-signing-cert-file`/`--cluster-signing-key-file`), the CSR signer.
//! Beside them: the ServiceAccount controller (`serviceaccount.rs`, a `default` account per
//! namespace), the token controller (`serviceaccount_tokens.rs`, legacy tokens in Secrets, when
//! --service-account-private-key-file is given) and the root CA publisher (`rootcacert.rs`).
//!
//! Like upstream's kube-controller-manager, the controllers run only on the instance holding
//! the Lease `kube-system/kube-controller-manager` (leader election, `skiff-leaderelection`).

pub mod backoff;
pub mod certificates;
pub mod clusterrole_aggregation;
pub mod controller_ref;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
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
pub mod podgc;
pub mod pods;
pub mod replicaset;
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

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};
use skiff_leaderelection::{default_identity, LeaderElector, LeaseConfig};

/// A client for the API server from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig =
        Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
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
}

impl Options {
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
pub async fn start(
    kubeconfig: &Path,
    options: Options,
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
    let client = client_from_kubeconfig(kubeconfig).await?;
    let config = LeaseConfig::new(LEASE_NAMESPACE, LEASE_NAME, default_identity());
    let elector = LeaderElector::new(client.clone(), config);
    Ok(tokio::spawn(elector.run_until(
        move || async move {
            let node_ipam = async {
                match ipam {
                    Some(config) => {
                        nodeipam::run(client.clone(), config, events::start(client.clone())).await
                    }
                    None => std::future::pending().await,
                }
            };
            let tokens = async {
                match token_key.clone() {
                    Some(key) => serviceaccount_tokens::run(client.clone(), key, root_ca.clone()).await,
                    None => std::future::pending().await,
                }
            };
            let service_lb = async {
                match pool {
                    Some(pool) => {
                        service_lb::run(client.clone(), pool, events::start(client.clone())).await
                    }
                    None => std::future::pending().await,
                }
            };
            let csr_signer = async {
                match signing_ca {
                    Some(ca) => {
                        certificates::signer::run(
                            client.clone(),
                            ca,
                            options.cluster_signing_duration,
                        )
                        .await
                    }
                    None => {
                        tracing::info!("no --cluster-signing-cert-file/--cluster-signing-key-file: the CSR signer does not run");
                        std::future::pending().await
                    }
                }
            };
            tokio::select! {
                _ = csr_signer => anyhow::bail!("the CSR signer stopped"),
                _ = certificates::approver::run(client.clone()) => anyhow::bail!("the CSR approver stopped"),
                _ = service_lb => anyhow::bail!("the service load-balancer controller stopped"),
                _ = namespace::run(client.clone()) => anyhow::bail!("the namespace controller stopped"),
                _ = garbage_collector::run(client.clone()) => anyhow::bail!("the garbage collector stopped"),
                _ = serviceaccount::run(client.clone()) => anyhow::bail!("the serviceaccount controller stopped"),
                _ = clusterrole_aggregation::run(client.clone()) => anyhow::bail!("the clusterrole aggregation controller stopped"),
                _ = tokens => anyhow::bail!("the serviceaccount token controller stopped"),
                _ = rootcacert::run(client.clone(), root_ca.clone()) => anyhow::bail!("the root CA publisher stopped"),
                _ = node_ipam => anyhow::bail!("the node IPAM controller stopped"),
                _ = run_workloads(client.clone(), &options) => anyhow::bail!("the workload controllers stopped"),
            }
        },
        shutdown,
    )))
}

pub async fn run_workloads(client: kube::Client, options: &Options) {
    use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet};
    use k8s_openapi::api::batch::v1::Job;
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{
        Endpoints, Node, PersistentVolumeClaim, Pod, ReplicationController,
    };
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let recorder = events::start(client.clone());
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
    let rs = replicaset::controller::<ReplicaSet>(client.clone(), pods.clone(), &recorder);
    let rc =
        replicaset::controller::<ReplicationController>(client.clone(), pods.clone(), &recorder);
    let deploy = deployment::controller(
        client.clone(),
        pods.clone(),
        replica_sets.clone(),
        &recorder,
    );
    let daemon_set = daemonset::controller(
        client.clone(),
        pods.clone(),
        nodes.clone(),
        revisions.clone(),
        &recorder,
    );
    let stateful_set = statefulset::controller(
        client.clone(),
        pods.clone(),
        revisions.clone(),
        claims.clone(),
        &recorder,
    );
    let endpoint_slice = endpointslice::controller(
        client.clone(),
        pods.clone(),
        nodes.clone(),
        slices.clone(),
        &recorder,
    );
    let endpoint =
        endpoints::controller(client.clone(), pods.clone(), endpoints.clone(), &recorder);
    let jobs = job::controller(client.clone(), pods.clone(), &recorder);
    let budgets = disruption::controller(client.clone(), pods.clone(), &recorder);
    let cronjobs = cronjob::controller(client.clone(), batch_jobs.clone(), &recorder);
    let node_lifecycle = nodelifecycle::controller(
        client.clone(),
        nodes.clone(),
        pods.clone(),
        node_leases.clone(),
        options.node_lifecycle(),
        &recorder,
    );
    let taint_eviction =
        tainteviction::controller(client.clone(), nodes.clone(), pods.clone(), &recorder);
    let pod_gc = podgc::run(
        client.clone(),
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
        _ = ttl_after_finished::run(client) => tracing::error!("ttl-after-finished controller stopped"),
    }
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
}
