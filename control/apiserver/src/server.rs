//! `skiff apiserver`: flags, PKI, bootstrap objects and the HTTPS listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::{json, Value};

use crate::auth::token_file::{self, Tokens};
use crate::auth::UserInfo;
use crate::cache::Caches;
use crate::handlers::{ApiServer, Ctx, Target};
use crate::resources;
use crate::response::Output;
use crate::storage::Storage;
use crate::tls;

#[derive(Debug, Clone, clap::Args)]
pub struct ApiServerArgs {
    /// etcd v3 endpoints (comma-separated): skiff's store or a real etcd cluster.
    #[arg(
        long,
        default_value = "http://127.0.0.1:2379",
        env = "SKIFF_ETCD_SERVERS"
    )]
    pub etcd_servers: String,
    #[command(flatten)]
    pub etcd_tls: crate::storage::EtcdTlsArgs,
    /// Address to serve HTTPS on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: String,
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    /// The address other nodes and pods reach this server at (the `kubernetes` endpoints).
    #[arg(long, default_value = "127.0.0.1")]
    pub advertise_address: String,
    /// Where the CA, serving certificate, token file and admin kubeconfig live.
    #[arg(long, default_value = "/var/lib/skiff/server")]
    pub data_dir: PathBuf,
    /// Authorizers in order (upstream's flag): `Node`, `RBAC`, or `AlwaysAllow` (no checks).
    #[arg(long, default_value = "Node,RBAC")]
    pub authorization_mode: String,
    /// Extra subject alternative names for the serving certificate.
    #[arg(long = "tls-san")]
    pub tls_sans: Vec<String>,
    /// Upstream's flag: an AdmissionConfiguration file; its `PodSecurity` entry sets the Pod
    /// Security defaults and exemptions.
    #[arg(long)]
    pub admission_control_config_file: Option<PathBuf>,
    #[command(flatten)]
    pub audit: crate::audit::AuditOptions,
    #[command(flatten)]
    pub service_accounts: ServiceAccountArgs,
    /// Admission plugins to turn off (upstream's names, comma-separated). `ServiceAccount`,
    /// `LimitRanger` and `PodSecurity` can be turned off in skiff; the other built-in plugins
    /// always run.
    #[arg(long, value_delimiter = ',')]
    pub disable_admission_plugins: Vec<String>,
    #[command(flatten)]
    pub kubelet: crate::kubelet_proxy::KubeletClientArgs,
    #[command(flatten)]
    pub aggregator: crate::aggregator::front_proxy::AggregatorArgs,
    /// How often the store's history is compacted (upstream's flag and default; 0 turns it
    /// off): each time to the revision seen one interval earlier.
    #[arg(long = "etcd-compaction-interval", default_value = "5m", value_parser = parse_go_duration)]
    pub etcd_compaction_interval: Duration,
    #[command(flatten)]
    pub flow_control: FlowControlArgs,
}

/// How many requests run at once (kube-apiserver's flags and defaults).
#[derive(Debug, Clone, clap::Args)]
pub struct FlowControlArgs {
    /// API Priority and Fairness: requests classified by FlowSchemas and queued fairly per
    /// priority level. Off: the max-in-flight limits alone (no queuing).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_priority_and_fairness: bool,
    /// Read-only requests at once (0: no limit); with priority and fairness, part of the seats
    /// the priority levels share.
    #[arg(long, default_value_t = 400)]
    pub max_requests_inflight: usize,
    /// Mutating requests at once (0: no limit); with priority and fairness, part of the seats
    /// the priority levels share.
    #[arg(long, default_value_t = 200)]
    pub max_mutating_requests_inflight: usize,
    /// A request's deadline (a Go duration). skiff uses it for how long a request may wait in
    /// a priority level's queue (a quarter of it, at most a minute), not to cut handlers short.
    #[arg(long, default_value = "1m0s", value_parser = parse_go_duration)]
    pub request_timeout: Duration,
}

impl FlowControlArgs {
    pub fn options(&self) -> crate::flowcontrol::Options {
        crate::flowcontrol::Options {
            enabled: self.enable_priority_and_fairness,
            max_requests_inflight: self.max_requests_inflight,
            max_mutating_requests_inflight: self.max_mutating_requests_inflight,
            request_timeout: self.request_timeout,
        }
    }
}

/// Service-account tokens: how they are signed and checked (kube-apiserver's flag names).
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceAccountArgs {
    /// The issuer of service-account tokens (their `iss`). Repeatable: the first issues new
    /// tokens, all are accepted. Default: https://kubernetes.default.svc.cluster.local.
    #[arg(long = "service-account-issuer")]
    pub service_account_issuer: Vec<String>,
    /// PEM files whose public keys (or certificates' keys, or private keys' public halves)
    /// verify service-account tokens, besides the signing key. Repeatable.
    #[arg(long = "service-account-key-file")]
    pub service_account_key_file: Vec<PathBuf>,
    /// The private key (RSA, P-256 or P-384; PEM) that signs service-account tokens. Default:
    /// `<data-dir>/tls/sa.key`, a P-256 key created on first start (with `sa.pub`).
    #[arg(long)]
    pub service_account_signing_key_file: Option<PathBuf>,
    /// The audiences a token must be meant for to authenticate to this server
    /// (comma-separated). Default: the issuers.
    #[arg(long, value_delimiter = ',')]
    pub api_audiences: Vec<String>,
    /// The longest lifetime a TokenRequest gets (a Go duration, e.g. 48h; at least 1h). Default:
    /// no limit.
    #[arg(long, value_parser = parse_duration_seconds)]
    pub service_account_max_token_expiration: Option<i64>,
    /// Extend the tokens the kubelet requests for pods (1h7s) to a year, with a warning after
    /// the hour, as upstream does by default.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub service_account_extend_token_expiration: bool,
    /// The `jwks_uri` in the issuer discovery document. Default:
    /// https://<advertise-address>:<port>/openid/v1/jwks.
    #[arg(long)]
    pub service_account_jwks_uri: Option<String>,
}

/// A Go duration as a [`Duration`] (whole seconds; negative is refused).
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let seconds = parse_duration_seconds(text)?;
    u64::try_from(seconds)
        .map(Duration::from_secs)
        .map_err(|_| format!("{text:?}: a duration cannot be negative"))
}

/// A Go duration (`1h30m`, `3600s`, `90m`) in whole seconds.
fn parse_duration_seconds(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a duration such as 48h, 90m or 3600s");
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Ok(total as i64)
}

impl ServiceAccountArgs {
    /// The token issuer: the signing key (created under `<data-dir>/tls` when no file is
    /// given), the verification keys, issuers and audiences. Also returns the signing key's
    /// path, which the token controller signs legacy tokens with.
    pub fn build(
        &self,
        data_dir: &std::path::Path,
        server_address: &str,
    ) -> anyhow::Result<(crate::auth::serviceaccount::ServiceAccountTokens, PathBuf)> {
        use crate::auth::serviceaccount::{keys, Options, ServiceAccountTokens};
        let key_path = match &self.service_account_signing_key_file {
            Some(path) => path.clone(),
            None => keys::ensure_signing_key(&data_dir.join("tls"))?,
        };
        let signing_key =
            keys::SigningKey::from_file(&key_path).context("--service-account-signing-key-file")?;
        let mut verification_keys = Vec::new();
        for file in &self.service_account_key_file {
            verification_keys
                .extend(keys::public_keys_from_file(file).context("--service-account-key-file")?);
        }
        let max = self.service_account_max_token_expiration.unwrap_or(0);
        anyhow::ensure!(
            max == 0 || (3600..=1 << 32).contains(&max),
            "the service-account-max-token-expiration must be between 1 hour and 2^32 seconds"
        );
        let issuers: Vec<String> = self
            .service_account_issuer
            .iter()
            .filter(|i| !i.is_empty())
            .cloned()
            .collect();
        let jwks_uri = self
            .service_account_jwks_uri
            .clone()
            .unwrap_or_else(|| format!("https://{server_address}/openid/v1/jwks"));
        let tokens = ServiceAccountTokens::new(Options {
            issuers,
            api_audiences: self.api_audiences.clone(),
            signing_key,
            verification_keys,
            max_expiration_seconds: max,
            extend_expiration: self.service_account_extend_token_expiration,
            jwks_uri,
        });
        Ok((tokens, key_path))
    }
}

async fn connect(
    endpoints: &[String],
    tls: &crate::storage::EtcdTlsArgs,
) -> anyhow::Result<Storage> {
    // The embedded store may still be starting: retry for a while.
    let mut last = None;
    for _ in 0..100 {
        match Storage::connect_with(endpoints, tls).await {
            Ok(s) => match s.revision().await {
                Ok(_) => return Ok(s),
                Err(e) => last = Some(anyhow::anyhow!(e.message)),
            },
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no etcd endpoint")))
        .with_context(|| format!("connecting to etcd at {}", endpoints.join(",")))
}

pub(crate) fn system_ctx() -> Ctx {
    Ctx {
        user: UserInfo {
            name: "system:apiserver".into(),
            uid: String::new(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        },
        query: vec![("fieldValidation".into(), "Strict".into())],
        output: Output::Json,
        warnings: parking_lot::Mutex::new(Vec::new()),
        duplicate_fields: Default::default(),
        audit: crate::audit::Context::of(&Default::default()),
        default_manager: "kube-apiserver".into(),
    }
}

async fn ensure(
    server: &ApiServer,
    resource: &str,
    group: &str,
    namespace: Option<&str>,
    object: Value,
) -> anyhow::Result<()> {
    let info =
        resources::find(group, "v1", resource).context("bootstrap resource is registered")?;
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let target = Target {
        info,
        namespace: namespace.map(str::to_string),
        name: None,
        sub: None,
    };
    let existing = server
        .storage
        .get(&info.key(namespace, &name))
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    if existing.is_some() && !matches!(resource, "endpoints" | "endpointslices") {
        return Ok(());
    }
    match server.create(&target, &system_ctx(), object.clone()).await {
        Ok(_) => Ok(()),
        Err(e) if e.code == 409 => {
            // Keep bootstrap objects current (the advertise address may have changed).
            if matches!(resource, "endpoints" | "endpointslices") {
                let t = Target {
                    name: Some(name),
                    ..target
                };
                server
                    .update(&t, &system_ctx(), object)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message))?;
            }
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!(
            "bootstrapping {resource} {name}: {}",
            e.message
        )),
    }
}

/// The ServiceCIDR `kubernetes` (the range ClusterIPs come from), Ready as upstream's default
/// ServiceCIDR controller marks it.
async fn default_service_cidr(server: &ApiServer) -> anyhow::Result<()> {
    use crate::registry::networking::DEFAULT_SERVICE_CIDR;
    ensure(
        server,
        "servicecidrs",
        "networking.k8s.io",
        None,
        json!({"metadata": {"name": DEFAULT_SERVICE_CIDR}, "spec": {"cidrs": [crate::registry::core::services::allocator::SERVICE_CIDR]}}),
    )
    .await?;
    let info = resources::find("networking.k8s.io", "v1", "servicecidrs")
        .context("servicecidrs are registered")?;
    let Some(stored) = server
        .storage
        .get(&info.key(None, DEFAULT_SERVICE_CIDR))
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?
    else {
        return Ok(());
    };
    let mut object = stored.object;
    let ready = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
    if ready {
        return Ok(());
    }
    object["status"] = json!({"conditions": [{
        "type": "Ready", "status": "True", "reason": "", "message": "Kubernetes default Service CIDR is ready",
        "lastTransitionTime": crate::timestamps::now_rfc3339(),
    }]});
    let target = Target {
        info,
        namespace: None,
        name: Some(DEFAULT_SERVICE_CIDR.into()),
        sub: Some(resources::Sub::Status),
    };
    server
        .update(&target, &system_ctx(), object)
        .await
        .map_err(|e| anyhow::anyhow!("marking the default ServiceCIDR ready: {}", e.message))?;
    Ok(())
}

/// The objects every cluster starts with: the four namespaces, the system PriorityClasses, the
/// flow-control configuration and the `kubernetes` service.
pub async fn bootstrap(
    server: &ApiServer,
    advertise: &str,
    port: u16,
    ca_pem: &str,
) -> anyhow::Result<()> {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        ensure(
            server,
            "namespaces",
            "",
            None,
            json!({"metadata": {"name": ns}}),
        )
        .await?;
    }
    for (name, value, description) in crate::registry::scheduling::SYSTEM_CLASSES {
        ensure(
            server,
            "priorityclasses",
            "scheduling.k8s.io",
            None,
            json!({"metadata": {"name": name}, "value": value, "description": description}),
        )
        .await?;
    }
    default_service_cidr(server).await?;
    crate::auth::rbac::policy::reconcile(server).await?;
    // Token discovery for joining nodes (kubeadm's `bootstrap-token` phase): the server's
    // address and the CA, signed per bootstrap token by the controller manager. The first
    // server of a cluster writes it; a restored or further one keeps what is there.
    use crate::auth::cluster_info;
    ensure(
        server,
        "configmaps",
        "",
        Some(cluster_info::NAMESPACE),
        json!({"metadata": {"name": cluster_info::NAME, "namespace": cluster_info::NAMESPACE},
               "data": {cluster_info::KUBECONFIG_KEY: cluster_info::kubeconfig(&format!("https://{advertise}:{port}"), ca_pem)}}),
    )
    .await?;
    // API Priority and Fairness' configuration, as upstream's apiserver keeps it: levels before
    // the schemas that name them, the mandatory objects first.
    use crate::registry::flowcontrol as apf;
    let levels = apf::mandatory_priority_levels()
        .into_iter()
        .chain(apf::suggested_priority_levels());
    for level in levels {
        let group = "flowcontrol.apiserver.k8s.io";
        ensure(server, "prioritylevelconfigurations", group, None, level).await?;
    }
    let schemas = apf::mandatory_flow_schemas()
        .into_iter()
        .chain(apf::suggested_flow_schemas());
    for schema in schemas {
        let group = "flowcontrol.apiserver.k8s.io";
        ensure(server, "flowschemas", group, None, schema).await?;
    }
    let labels = json!({"component": "apiserver", "provider": "kubernetes"});
    ensure(
        server,
        "services",
        "",
        Some("default"),
        json!({"metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
               "spec": {"type": "ClusterIP", "clusterIP": crate::registry::core::services::allocator::KUBERNETES_SERVICE_IP,
                        "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}}),
    )
    .await?;
    ensure(
        server,
        "endpoints",
        "",
        Some("default"),
        json!({"metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
               "subsets": [{"addresses": [{"ip": advertise}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}),
    )
    .await?;
    ensure(
        server,
        "endpointslices",
        "discovery.k8s.io",
        Some("default"),
        json!({"metadata": {"name": "kubernetes", "namespace": "default", "labels": {"kubernetes.io/service-name": "kubernetes"}},
               "addressType": "IPv4",
               "endpoints": [{"addresses": [advertise], "conditions": {"ready": true}}],
               "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}),
    )
    .await?;
    Ok(())
}

/// `kube-system/extension-apiserver-authentication`: whom extension servers trust (upstream's
/// `ClientCARegistrationHook`), written at every start so that it follows the flags.
async fn publish_authentication_config(server: &ApiServer) -> anyhow::Result<()> {
    const NAME: &str = "extension-apiserver-authentication";
    let info = resources::find("", "v1", "configmaps").context("configmaps are registered")?;
    let data = server.aggregator.identity.published.clone();
    let existing = server
        .storage
        .get(&info.key(Some("kube-system"), NAME))
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let target = Target {
        info,
        namespace: Some("kube-system".into()),
        name: None,
        sub: None,
    };
    let result = match existing {
        None => {
            let object =
                json!({"metadata": {"name": NAME, "namespace": "kube-system"}, "data": data});
            server.create(&target, &system_ctx(), object).await
        }
        Some(stored) if stored.object["data"] == data => return Ok(()),
        Some(stored) => {
            let mut object = stored.object;
            object["data"] = data;
            let target = Target {
                name: Some(NAME.into()),
                ..target
            };
            server.update(&target, &system_ctx(), object).await
        }
    };
    result
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("publishing kube-system/{NAME}: {}", e.message))
}

/// A running API server (for `skiff server` and tests): where it listens and its admin files.
pub struct Started {
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    pub server: Arc<ApiServer>,
    /// The key service-account tokens are signed with (the token controller signs the legacy
    /// tokens it puts in Secrets with it: `--service-account-private-key-file`).
    pub service_account_key_file: PathBuf,
    advertise_address: String,
    endpoint_reconciler: tokio::task::AbortHandle,
}

impl Started {
    /// At shutdown, as kube-apiserver's `RemoveEndpoints`: the endpoint reconciler stops and
    /// this server's address leaves the `kubernetes` Service's endpoints at once, instead of
    /// when its lease expires (up to 25 s of clients sent to a server that is gone).
    pub async fn remove_endpoint(&self) {
        self.endpoint_reconciler.abort();
        let removed = crate::endpoint_reconciler::remove(
            &self.server,
            &self.advertise_address,
            self.addr.port(),
        );
        match tokio::time::timeout(Duration::from_secs(2), removed).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("removing this server from the endpoints: {e:#}"),
            Err(_) => tracing::warn!("removing this server from the endpoints: timed out"),
        }
    }

    /// The kubeconfig of a control-plane component (`token_file::COMPONENTS`: "scheduler",
    /// "controller-manager"), which authenticates as that component.
    pub fn component_kubeconfig(&self, stem: &str) -> PathBuf {
        self.kubeconfig.with_file_name(format!("{stem}.kubeconfig"))
    }
}

/// Sets everything up and starts serving; returns once the listener accepts connections.
pub async fn start(args: ApiServerArgs) -> anyhow::Result<Started> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    // An invalid audit policy or an unwritable audit log stops the server before anything else.
    let metrics = crate::metrics::Metrics::default();
    let audit = crate::audit::Auditor::from_options(&args.audit, metrics.audit.clone())?;
    let mut sans = args.tls_sans.clone();
    sans.push(args.advertise_address.clone());
    if args.bind_address != "0.0.0.0" {
        sans.push(args.bind_address.clone());
    }
    if let Some(path) = &args.admission_control_config_file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        let config =
            crate::admission::podsecurity::config::from_admission_configuration(&text, dir)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        crate::admission::configure_podsecurity(config);
    }
    let endpoints: Vec<String> = args
        .etcd_servers
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let storage = connect(&endpoints, &args.etcd_tls).await?;
    // A store restored from a backup brings the cluster's keys back before new ones are made.
    let restored = crate::cluster_keys::restore(&storage, &args.data_dir).await?;
    if restored > 0 {
        tracing::info!("{restored} cluster key files restored from the store");
    }
    let pki = tls::ensure_pki(&args.data_dir, &sans)?;
    let proxy_client = crate::aggregator::front_proxy::ProxyClient::ensure(
        &args.aggregator,
        &args.data_dir,
        &pki.ca_pem,
    )?;
    let kubelet_client = crate::kubelet_proxy::KubeletClient::new(&args.kubelet, &args.data_dir)?;
    let (tokens, admin_token) = Tokens::ensure(&args.data_dir)?;
    let mut component_tokens = Vec::new();
    for (stem, user) in token_file::COMPONENTS {
        let token = tokens
            .token_of(user)
            .with_context(|| format!("tokens.csv has no token for {user}"))?;
        component_tokens.push((stem, user, token));
    }
    let bind: SocketAddr = format!("{}:{}", args.bind_address, args.secure_port)
        .parse()
        .with_context(|| format!("--bind-address {} is not an IP address", args.bind_address))?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("listening on {bind}"))?;
    let addr = listener.local_addr()?;
    let caches = Caches::new(storage.clone());
    caches.start_all();
    let authorizer = crate::auth::Authorizer::new(&caches, &args.authorization_mode).await?;
    let server_address = format!("{}:{}", args.advertise_address, addr.port());
    let (service_accounts, service_account_key_file) = args
        .service_accounts
        .build(&args.data_dir, &server_address)?;
    crate::cluster_keys::save(&storage, &args.data_dir).await?;
    tokio::spawn(crate::cluster_keys::keep(
        storage.clone(),
        args.data_dir.clone(),
        Duration::from_secs(5),
    ));
    tokio::spawn(crate::compactor::run(
        storage.clone(),
        args.etcd_compaction_interval,
    ));
    for plugin in &args.disable_admission_plugins {
        if ![
            "ServiceAccount",
            "LimitRanger",
            "PodSecurity",
            "MutatingAdmissionWebhook",
            "ValidatingAdmissionWebhook",
            "ValidatingAdmissionPolicy",
        ]
        .contains(&plugin.as_str())
        {
            tracing::warn!("--disable-admission-plugins: {plugin} cannot be turned off in skiff; it keeps running");
        }
    }
    let flow_control = crate::flowcontrol::FlowControl::new(
        args.flow_control.options(),
        metrics.flowcontrol.clone(),
    );
    let server = Arc::new(ApiServer {
        storage,
        caches,
        tokens: Some(tokens),
        authorizer,
        metrics,
        audit,
        server_address,
        service_accounts: Some(service_accounts),
        disabled_admission_plugins: args.disable_admission_plugins.clone(),
        live_lookups: Default::default(),
        namespace_locks: Default::default(),
        kubelet_client,
        custom: Default::default(),
        aggregator: crate::aggregator::Aggregator::new(proxy_client),
        flow_control,
    });
    bootstrap(&server, &args.advertise_address, addr.port(), &pki.ca_pem).await?;
    publish_authentication_config(&server).await?;
    let endpoint_reconciler = tokio::spawn(crate::endpoint_reconciler::run(
        server.clone(),
        args.advertise_address.clone(),
        addr.port(),
    ))
    .abort_handle();
    tokio::spawn(crate::aggregator::controller::run(server.clone()));
    if args.flow_control.enable_priority_and_fairness {
        // The configuration controller's status writes (FlowSchemas' `Dangling`).
        tokio::spawn(crate::flowcontrol::status::run(server.clone()));
    }
    // The CRD controllers (names, establishing, cleanup), which also keep `server.custom`.
    tokio::spawn(crate::customresource::controller::run(server.clone()));
    let host = if args.bind_address == "0.0.0.0" {
        "127.0.0.1".to_string()
    } else {
        args.bind_address.clone()
    };
    let url = format!("https://{host}:{}", addr.port());
    let kubeconfig = args.data_dir.join("admin.kubeconfig");
    tls::write_kubeconfig(&kubeconfig, &url, &pki.ca_pem, "admin", &admin_token)?;
    // The API server toward kubelets had a token and a kubeconfig here before it had a client
    // certificate; the kubeconfig goes (tokens.csv drops the token: `Tokens::ensure`).
    let _ = std::fs::remove_file(args.data_dir.join("apiserver-kubelet-client.kubeconfig"));
    // Each control-plane component gets a kubeconfig with its own identity.
    for (stem, user, token) in component_tokens {
        tls::write_kubeconfig(
            &args.data_dir.join(format!("{stem}.kubeconfig")),
            &url,
            &pki.ca_pem,
            user,
            &token,
        )?;
    }

    let client_certs = crate::auth::x509::ClientCertificates::new(&pki.ca_pem)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&pki, client_certs.clone())?);
    let app = crate::http::router(server.clone());
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let client_certs = client_certs.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                };
                // The client's certificate, once its chain verified, goes with every request
                // of the connection; one that did not verify makes them 401s unless a bearer
                // token authenticates them (`auth::x509`).
                let certificate = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .filter(|chain| !chain.is_empty())
                    .map(|chain| {
                        client_certs
                            .verified_leaf(chain)
                            .ok_or(crate::auth::x509::RefusedClientCertificate)
                    });
                let service =
                    TowerToHyperService::new(with_connection_info(app, peer, certificate));
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder.http2().max_concurrent_streams(1000);
                // Watch streams write many chunks: queue them (no flattening copy into one
                // buffer) and let TLS take them as they come.
                builder.http1().writev(true);
                if let Err(e) = builder
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await
                {
                    tracing::debug!(%peer, "connection: {e}");
                }
            });
        }
    });
    Ok(Started {
        addr,
        kubeconfig,
        server,
        service_account_key_file,
        advertise_address: args.advertise_address.clone(),
        endpoint_reconciler,
    })
}

/// `service` with what is known of the connection attached to each request: the peer's address
/// (`ConnectInfo`, the audit log's sourceIPs) and the client certificate, if any: verified (the
/// extension `auth::x509::ClientCertificate`) or refused (`auth::x509::RefusedClientCertificate`).
fn with_connection_info<S, B>(
    service: S,
    peer: SocketAddr,
    certificate: Option<
        Result<crate::auth::x509::ClientCertificate, crate::auth::x509::RefusedClientCertificate>,
    >,
) -> tower::util::MapRequest<S, impl FnMut(axum::http::Request<B>) -> axum::http::Request<B> + Clone>
where
    S: tower::Service<axum::http::Request<B>>,
{
    use tower::ServiceExt;
    service.map_request(move |mut req: axum::http::Request<B>| {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        match &certificate {
            Some(Ok(certificate)) => {
                req.extensions_mut().insert(certificate.clone());
            }
            Some(Err(refused)) => {
                req.extensions_mut().insert(*refused);
            }
            None => {}
        }
        req
    })
}

/// `skiff apiserver`: serve until SIGINT/SIGTERM.
pub async fn run(args: ApiServerArgs) -> anyhow::Result<()> {
    let started = start(args).await?;
    println!(
        "skiff apiserver ready: https://{} kubeconfig={}",
        started.addr,
        started.kubeconfig.display()
    );
    wait_for_signal().await;
    started.remove_endpoint().await;
    started.server.audit.flush(Duration::from_secs(5)).await;
    Ok(())
}

pub async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: ApiServerArgs,
    }

    #[test]
    fn service_account_flags() {
        Command::command().debug_assert();
        let c = Command::parse_from(["apiserver"]);
        let sa = &c.args.service_accounts;
        assert!(sa.service_account_issuer.is_empty());
        assert!(sa.service_account_extend_token_expiration);
        assert_eq!(sa.service_account_max_token_expiration, None);
        let c = Command::parse_from([
            "apiserver",
            "--service-account-issuer=https://a",
            "--service-account-issuer=https://b",
            "--api-audiences=x,y",
            "--service-account-max-token-expiration=48h",
            "--service-account-extend-token-expiration=false",
            "--service-account-signing-key-file=/k",
            "--service-account-key-file=/p1",
            "--disable-admission-plugins=ServiceAccount",
        ]);
        let sa = &c.args.service_accounts;
        assert_eq!(sa.service_account_issuer, ["https://a", "https://b"]);
        assert_eq!(sa.api_audiences, ["x", "y"]);
        assert_eq!(sa.service_account_max_token_expiration, Some(48 * 3600));
        assert!(!sa.service_account_extend_token_expiration);
        assert_eq!(c.args.disable_admission_plugins, ["ServiceAccount"]);
    }

    #[test]
    fn flow_control_flags() {
        let c = Command::parse_from(["apiserver"]);
        let options = c.args.flow_control.options();
        assert!(options.enabled);
        assert_eq!(
            (
                options.max_requests_inflight,
                options.max_mutating_requests_inflight
            ),
            (400, 200)
        );
        assert_eq!(options.request_timeout, Duration::from_secs(60));
        let c = Command::parse_from([
            "apiserver",
            "--enable-priority-and-fairness=false",
            "--max-requests-inflight=10",
            "--max-mutating-requests-inflight=5",
            "--request-timeout=2m",
        ]);
        let options = c.args.flow_control.options();
        assert!(!options.enabled);
        assert_eq!(
            options.max_requests_inflight + options.max_mutating_requests_inflight,
            15
        );
        assert_eq!(options.request_timeout, Duration::from_secs(120));
    }

    #[test]
    fn kubelet_client_flags() {
        let c = Command::parse_from(["apiserver"]);
        assert!(c.args.kubelet.kubelet_certificate_authority.is_none());
        assert!(c.args.kubelet.kubelet_client_certificate.is_none());
        let c = Command::parse_from([
            "apiserver",
            "--kubelet-client-certificate=/c.crt",
            "--kubelet-client-key=/c.key",
            "--kubelet-certificate-authority=/ca.crt",
        ]);
        assert_eq!(
            c.args.kubelet.kubelet_client_key,
            Some(PathBuf::from("/c.key"))
        );
        assert_eq!(
            c.args.kubelet.kubelet_certificate_authority,
            Some(PathBuf::from("/ca.crt"))
        );
        // A certificate needs its key.
        assert!(
            Command::try_parse_from(["apiserver", "--kubelet-client-certificate=/c.crt"]).is_err()
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration_seconds("1h30m"), Ok(5400));
        assert_eq!(parse_duration_seconds("3600s"), Ok(3600));
        assert_eq!(parse_duration_seconds("0"), Ok(0));
        assert_eq!(parse_duration_seconds("1.5h"), Ok(5400));
        for bad in ["", "h", "10", "1d", "-1h", "1h x"] {
            assert!(parse_duration_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_signing_key_is_created_once() {
        let dir = std::env::temp_dir().join(format!("skiff-sa-{}", uuid::Uuid::new_v4()));
        let args = Command::parse_from(["apiserver"]).args.service_accounts;
        let (tokens, path) = args.build(&dir, "10.0.0.1:6443").unwrap();
        assert_eq!(path, dir.join("tls/sa.key"));
        assert!(dir.join("tls/sa.pub").exists());
        assert_eq!(tokens.issuer(), crate::auth::serviceaccount::DEFAULT_ISSUER);
        let config = tokens.openid_configuration().unwrap();
        let config: Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(config["jwks_uri"], "https://10.0.0.1:6443/openid/v1/jwks");
        // A second start keeps the key (tokens already issued stay valid).
        let (again, _) = args.build(&dir, "10.0.0.1:6443").unwrap();
        assert_eq!(tokens.jwks(), again.jwks());
        // The public key file verifies what the private key signs.
        let with_pub = ServiceAccountArgs {
            service_account_key_file: vec![dir.join("tls/sa.pub")],
            ..args.clone()
        };
        with_pub.build(&dir, "10.0.0.1:6443").unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
