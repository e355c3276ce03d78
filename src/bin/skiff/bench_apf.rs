//! `skiff apiserver bench-apf`: does one user's flood of list calls leave another user's
//! latency alone? User `user-b` gets one ConfigMap after another, first alone, then while user
//! `flood-a` lists a namespace of `--objects` ConfigMaps from `--flood-clients` clients at once
//! (a client refused with a 429 pauses 100 ms and tries again). Both are ordinary
//! authenticated users, so the bootstrap configuration puts them in the `global-default`
//! priority level as two flows (`ByUser`): what is measured is fairness between flows of one
//! level, under a server limit small enough for the flood to exceed that level's seats
//! (`--max-requests-inflight` 20 + `--max-mutating-requests-inflight` 10 by default: 3 seats for
//! `global-default`, as kube-apiserver computes them).
//!
//! Three servers, one after another, with the same flags and load: skiff with API Priority and
//! Fairness, skiff with `--enable-priority-and-fairness=false` (the max-in-flight limits), and
//! upstream's kube-apiserver (`--anchor`, on the anchor etcd) when its binaries are present.
//! Printed: user B's p50 and p99 alone and under the flood, their ratios, B's failed requests,
//! and how many of A's lists were served or refused.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION};

use crate::bench::{free_port, start_server, summary, ServerChild};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// ConfigMaps in the namespace user A lists.
    #[arg(long, default_value_t = 300)]
    pub objects: usize,
    /// Bytes of data in each ConfigMap.
    #[arg(long, default_value_t = 1024)]
    pub object_bytes: usize,
    /// User A's concurrent list clients.
    #[arg(long, default_value_t = 32)]
    pub flood_clients: usize,
    /// Seconds user B is measured in each phase (alone, under the flood).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Given to every server (kube-apiserver's flag).
    #[arg(long, default_value_t = 20)]
    pub max_requests_inflight: usize,
    /// Given to every server (kube-apiserver's flag).
    #[arg(long, default_value_t = 10)]
    pub max_mutating_requests_inflight: usize,
    /// Upstream's kube-apiserver, run as the anchor when present.
    #[arg(long, default_value = "/opt/anchors/bin/kube-apiserver")]
    pub anchor: PathBuf,
    /// The etcd the anchor runs on.
    #[arg(long, default_value = "/opt/anchors/bin/etcd")]
    pub etcd: PathBuf,
}

/// A server under test: where it is and the admin token; the processes stop when it drops.
struct Target {
    url: String,
    /// The serving certificate's CA (kube-apiserver's self-signed certificate itself).
    ca: PathBuf,
    token: String,
    _dir: tempfile::TempDir,
    _processes: Vec<ServerChild>,
}

fn client(target: &Target, user: Option<&str>) -> anyhow::Result<kube::Client> {
    let mut config = kube::Config::new(target.url.parse()?);
    config.root_cert_file = Some(target.ca.clone());
    // Every 429 counted, none retried behind the bench's back.
    config.default_retry = false;
    config.read_timeout = Some(Duration::from_secs(120));
    config.headers.push((
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", target.token))?,
    ));
    if let Some(user) = user {
        config.headers.push((
            HeaderName::from_static("impersonate-user"),
            HeaderValue::from_str(user)?,
        ));
    }
    Ok(kube::Client::try_from(config)?)
}

/// One request; its status and body (read to the end).
async fn send(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    body: Vec<u8>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(kube::client::Body::from(body))?;
    let response = client.send(request).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect_bytes().await?;
    Ok((status, bytes.to_vec()))
}

/// A create; one that exists already is fine (a bench run again on a kept server).
async fn post(admin: &kube::Client, path: &str, object: serde_json::Value) -> anyhow::Result<()> {
    let (status, body) = send(
        admin,
        http::Method::POST,
        path,
        serde_json::to_vec(&object)?,
    )
    .await?;
    anyhow::ensure!(
        status == 201 || status == 409,
        "POST {path}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    Ok(())
}

async fn setup(target: &Target, args: &BenchArgs) -> anyhow::Result<()> {
    let admin = client(target, None)?;
    post(
        &admin,
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        serde_json::json!({
            "metadata": {"name": "bench-apf"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "flood-a"},
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "user-b"},
            ],
        }),
    )
    .await?;
    post(
        &admin,
        "/api/v1/namespaces",
        serde_json::json!({"metadata": {"name": "bench"}}),
    )
    .await?;
    let data = "x".repeat(args.object_bytes);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let admin = admin.clone();
        let data = data.clone();
        let objects = args.objects;
        tasks.spawn(async move {
            for i in (worker..objects).step_by(8) {
                post(
                    &admin,
                    "/api/v1/namespaces/bench/configmaps",
                    serde_json::json!({"metadata": {"name": format!("cm-{i}")}, "data": {"d": data}}),
                )
                .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

#[derive(Default)]
struct Phase {
    /// User B's successful gets, in milliseconds.
    latencies: Vec<f64>,
    b_failed: u64,
    a_served: u64,
    a_refused: u64,
}

/// User B for `seconds`, with user A's flood when `flood` is set.
async fn phase(target: &Target, args: &BenchArgs, flood: bool) -> anyhow::Result<Phase> {
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut flooders = tokio::task::JoinSet::new();
    if flood {
        let a = client(target, Some("flood-a"))?;
        for _ in 0..args.flood_clients {
            let (a, stop, served, refused) =
                (a.clone(), stop.clone(), served.clone(), refused.clone());
            flooders.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match send(
                        &a,
                        http::Method::GET,
                        "/api/v1/namespaces/bench/configmaps",
                        vec![],
                    )
                    .await
                    {
                        Ok((200, _)) => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
        }
        // The flood fills the level's seats and queues before B is measured.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let b = client(target, Some("user-b"))?;
    let mut result = Phase::default();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut i = 0;
    while Instant::now() < deadline {
        let path = format!(
            "/api/v1/namespaces/bench/configmaps/cm-{}",
            i % args.objects
        );
        i += 1;
        let started = Instant::now();
        match send(&b, http::Method::GET, &path, vec![]).await {
            Ok((200, _)) => result
                .latencies
                .push(started.elapsed().as_secs_f64() * 1000.0),
            _ => result.b_failed += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    while flooders.join_next().await.is_some() {}
    result.a_served = served.load(Ordering::Relaxed);
    result.a_refused = refused.load(Ordering::Relaxed);
    Ok(result)
}

fn inflight_flags(args: &BenchArgs) -> [String; 2] {
    [
        format!("--max-requests-inflight={}", args.max_requests_inflight),
        format!(
            "--max-mutating-requests-inflight={}",
            args.max_mutating_requests_inflight
        ),
    ]
}

async fn skiff(args: &BenchArgs, apf: bool) -> anyhow::Result<Target> {
    let mut flags: Vec<String> = inflight_flags(args).to_vec();
    flags.push(format!("--enable-priority-and-fairness={apf}"));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (dir, child) = start_server(&flags).await?;
    let tokens = std::fs::read_to_string(dir.path().join("tokens.csv"))?;
    let token = tokens
        .lines()
        .find(|l| l.contains(",admin,"))
        .and_then(|l| l.split(',').next())
        .context("tokens.csv has no admin token")?
        .to_string();
    let port = std::fs::read_to_string(dir.path().join("admin.kubeconfig"))?
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .map(str::to_string)
        .context("admin.kubeconfig has no server")?;
    Ok(Target {
        url: port,
        ca: dir.path().join("tls/ca.crt"),
        token,
        _dir: dir,
        _processes: vec![child],
    })
}

/// etcd and kube-apiserver in a temporary directory, ready (`/readyz` ok).
async fn anchor(args: &BenchArgs) -> anyhow::Result<Target> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let tls = d.join("tls");
    std::fs::create_dir_all(&tls)?;
    skiff_apiserver::auth::serviceaccount::keys::ensure_signing_key(&tls)?;
    let token = "bench-apf-admin".to_string();
    std::fs::write(
        d.join("tokens.csv"),
        format!("{token},admin,admin,system:masters\n"),
    )?;
    let etcd_port = free_port()?;
    let etcd = std::process::Command::new(&args.etcd)
        .arg("--data-dir")
        .arg(d.join("etcd"))
        .arg(format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"))
        .arg(format!(
            "--advertise-client-urls=http://127.0.0.1:{etcd_port}"
        ))
        .arg(format!(
            "--listen-peer-urls=http://127.0.0.1:{}",
            free_port()?
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", args.etcd.display()))?;
    let etcd = ServerChild(etcd);
    let port = free_port()?;
    let path = |f: &str| d.join(f).display().to_string();
    let apiserver = std::process::Command::new(&args.anchor)
        .arg(format!("--etcd-servers=http://127.0.0.1:{etcd_port}"))
        .arg(format!("--secure-port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--cert-dir={}", path("certs")))
        .arg(format!("--token-auth-file={}", path("tokens.csv")))
        .arg("--authorization-mode=RBAC")
        .arg("--service-account-issuer=https://kubernetes.default.svc")
        .arg(format!("--service-account-key-file={}", path("tls/sa.pub")))
        .arg(format!(
            "--service-account-signing-key-file={}",
            path("tls/sa.key")
        ))
        .arg("--service-cluster-ip-range=10.96.0.0/16")
        .args(inflight_flags(args))
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(d.join("kube-apiserver.log"))?)
        .spawn()
        .with_context(|| format!("starting {}", args.anchor.display()))?;
    let target = Target {
        url: format!("https://127.0.0.1:{port}"),
        ca: d.join("certs/apiserver.crt"),
        token,
        _dir: dir,
        _processes: vec![ServerChild(apiserver), etcd],
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    // The certificate is written once the server starts.
    while !target.ca.exists() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "kube-apiserver wrote no certificate"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let admin = client(&target, None)?;
    loop {
        if let Ok((200, _)) = send(&admin, http::Method::GET, "/readyz", vec![]).await {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "kube-apiserver is not ready");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(target)
}

fn print_row(name: &str, alone: Phase, flooded: Phase) {
    let b_alone = alone.latencies.len();
    let b_flooded = flooded.latencies.len();
    let (p50a, p99a, _) = summary(alone.latencies);
    let (p50f, p99f, _) = summary(flooded.latencies);
    println!(
        "| {name} | {p50a:.2} / {p99a:.2} ({b_alone}) | {p50f:.2} / {p99f:.2} ({b_flooded}) | {:.1}× / {:.1}× | {} | {} / {} |",
        p50f / p50a,
        p99f / p99a,
        flooded.b_failed,
        flooded.a_served,
        flooded.a_refused,
    );
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    println!(
        "user B: sequential gets of one ConfigMap; user A: {} clients listing {} ConfigMaps of {} B; {} s per phase; --max-requests-inflight={} --max-mutating-requests-inflight={}",
        args.flood_clients,
        args.objects,
        args.object_bytes,
        args.seconds,
        args.max_requests_inflight,
        args.max_mutating_requests_inflight
    );
    println!();
    println!("| server | B alone p50 / p99 ms (gets) | B under A's flood p50 / p99 ms (gets) | ratio p50 / p99 | B failed under flood | A lists served / refused |");
    println!("|---|---|---|---|---|---|");
    let mut runs: Vec<(&str, bool)> = vec![
        ("skiff, priority and fairness", true),
        ("skiff, --enable-priority-and-fairness=false", false),
    ];
    if args.anchor.exists() && args.etcd.exists() {
        runs.push(("anchor kube-apiserver 1.37 (priority and fairness)", true));
    }
    for (name, apf) in runs {
        let target = if name.starts_with("anchor") {
            anchor(&args).await?
        } else {
            skiff(&args, apf).await?
        };
        setup(&target, &args).await?;
        let alone = phase(&target, &args, false).await?;
        let flooded = phase(&target, &args, true).await?;
        print_row(name, alone, flooded);
    }
    if !args.anchor.exists() || !args.etcd.exists() {
        println!(
            "| anchor kube-apiserver | not run: {} or {} is missing |",
            args.anchor.display(),
            args.etcd.display()
        );
    }
    Ok(())
}
