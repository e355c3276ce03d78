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
}

async fn connect(endpoints: &[String]) -> anyhow::Result<Storage> {
    // The embedded store may still be starting: retry for a while.
    let mut last = None;
    for _ in 0..100 {
        match Storage::connect(endpoints).await {
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
pub async fn bootstrap(server: &ApiServer, advertise: &str, port: u16) -> anyhow::Result<()> {
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

/// A running API server (for `skiff server` and tests): where it listens and its admin files.
pub struct Started {
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    pub server: Arc<ApiServer>,
}

impl Started {
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
    let pki = tls::ensure_pki(&args.data_dir, &sans)?;
    let (tokens, admin_token) = Tokens::ensure(&args.data_dir)?;
    let mut component_tokens = Vec::new();
    for (stem, user) in token_file::COMPONENTS {
        let token = tokens
            .token_of(user)
            .with_context(|| format!("tokens.csv has no token for {user}"))?;
        component_tokens.push((stem, user, token));
    }
    let endpoints: Vec<String> = args
        .etcd_servers
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let storage = connect(&endpoints).await?;
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
    let server = Arc::new(ApiServer {
        storage,
        caches,
        tokens: Some(tokens),
        authorizer,
        metrics: Default::default(),
        server_address: format!("{}:{}", args.advertise_address, addr.port()),
        live_lookups: Default::default(),
    });
    bootstrap(&server, &args.advertise_address, addr.port()).await?;
    let host = if args.bind_address == "0.0.0.0" {
        "127.0.0.1".to_string()
    } else {
        args.bind_address.clone()
    };
    let url = format!("https://{host}:{}", addr.port());
    let kubeconfig = args.data_dir.join("admin.kubeconfig");
    tls::write_kubeconfig(&kubeconfig, &url, &pki.ca_pem, "admin", &admin_token)?;
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

    let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&pki)?);
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
            let service = TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                        return;
                    }
                };
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
