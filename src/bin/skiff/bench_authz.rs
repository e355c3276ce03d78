//! `skiff apiserver bench-authz`: what authorization costs on the request path. The same load
//! runs against two fresh servers in one invocation — `--authorization-mode AlwaysAllow` and the
//! default `Node,RBAC`, both holding `--roles` extra Roles and RoleBindings (for other users, so
//! RBAC's index is as big as a busy cluster's) — as a user who is *not* in system:masters (which would
//! skip the checks), bound by one RoleBinding. Prints each side's throughput and latency and the
//! ratio; the goal is ≤ 5% throughput loss.

use std::time::Instant;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::bench::{self, summary};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Objects each run creates, reads and patches (ConfigMaps: no controller reacts to them).
    #[arg(long, default_value_t = 5_000)]
    pub objects: usize,
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Extra Roles and RoleBindings for other users (in both runs; only RBAC reads them).
    #[arg(long, default_value_t = 1_000)]
    pub roles: usize,
    /// Runs of each mode, alternating (the best of each is compared).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
}

struct Outcome {
    ops_per_second: f64,
    latencies: Vec<f64>,
}

async fn setup(admin: &kube::Client, roles: usize) -> anyhow::Result<()> {
    let pp = PostParams::default();
    Api::<Namespace>::all(admin.clone())
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "bench"}}))?,
        )
        .await?;
    let role_api: Api<Role> = Api::namespaced(admin.clone(), "bench");
    let binding_api: Api<RoleBinding> = Api::namespaced(admin.clone(), "bench");
    let rules = json!([
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get", "list", "patch"]},
    ]);
    role_api
        .create(
            &pp,
            &serde_json::from_value(json!({"metadata": {"name": "bench"}, "rules": rules}))?,
        )
        .await?;
    binding_api
        .create(&pp, &serde_json::from_value(json!({"metadata": {"name": "bench"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "bench"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bench"}]}))?)
        .await?;
    for i in 0..roles {
        let other_rules = json!([
            {"apiGroups": [""], "resources": ["pods", "services", format!("things{i}")], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": [format!("d{i}")], "verbs": ["*"]},
        ]);
        role_api
            .create(
                &pp,
                &serde_json::from_value(
                    json!({"metadata": {"name": format!("other-{i}")}, "rules": other_rules}),
                )?,
            )
            .await?;
        binding_api
            .create(&pp, &serde_json::from_value(json!({"metadata": {"name": format!("other-{i}")},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("other-{i}")},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": format!("user-{i}")},
                             {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": format!("group-{i}")}]}))?)
            .await?;
    }
    Ok(())
}

async fn one_run(mode: &str, args: &BenchArgs) -> anyhow::Result<Outcome> {
    let (dir, _server) = bench::start_server(&["--authorization-mode", mode]).await?;
    let admin =
        skiff_controllers::client_from_kubeconfig(&dir.path().join("admin.kubeconfig")).await?;
    // Both servers hold the same objects and have run as long before the clock starts; only the
    // mode differs.
    setup(&admin, args.roles).await?;
    let token = skiff_apiserver::auth::token_file::ensure_user_token(dir.path(), "bench", &[])?;
    let kubeconfig = dir.path().join("bench.kubeconfig");
    let admin_config = std::fs::read_to_string(dir.path().join("admin.kubeconfig"))?;
    let server = admin_config
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .unwrap_or_default()
        .to_string();
    let ca = std::fs::read_to_string(dir.path().join("tls/ca.crt"))?;
    skiff_apiserver::tls::write_kubeconfig(&kubeconfig, &server, &ca, "bench", &token)?;
    let client = skiff_controllers::client_from_kubeconfig(&kubeconfig).await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "bench");
    // Warm up (connections, caches) before the clock starts.
    api.list(&Default::default()).await?;

    let began = Instant::now();
    let per_client = args.objects.div_ceil(args.clients);
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let api = api.clone();
        let range = (c * per_client)..((c + 1) * per_client).min(args.objects);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in range {
                let name = format!("cm-{i}");
                let t = Instant::now();
                let cm: ConfigMap = serde_json::from_value(
                    json!({"metadata": {"name": name}, "data": {"n": i.to_string()}}),
                )?;
                api.create(&PostParams::default(), &cm).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                api.get(&name).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                api.patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"data": {"patched": "yes"}})),
                )
                .await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = began.elapsed().as_secs_f64();
    Ok(Outcome {
        ops_per_second: latencies.len() as f64 / elapsed,
        latencies,
    })
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut best: [Option<Outcome>; 2] = [None, None];
    let modes = ["AlwaysAllow", "Node,RBAC"];
    for round in 0..args.rounds {
        for (i, mode) in modes.iter().enumerate() {
            let outcome = one_run(mode, &args).await?;
            eprintln!(
                "round {} {mode}: {:.0} requests/s",
                round + 1,
                outcome.ops_per_second
            );
            if best[i]
                .as_ref()
                .is_none_or(|b| outcome.ops_per_second > b.ops_per_second)
            {
                best[i] = Some(outcome);
            }
        }
    }
    let [Some(off), Some(on)] = best else {
        anyhow::bail!("no runs");
    };
    println!(
        "{} ConfigMap create+get+patch as a non-admin user, {} clients, {} extra Roles and RoleBindings with RBAC; best of {} rounds each\n",
        args.objects, args.clients, args.roles, args.rounds
    );
    println!("| metric | AlwaysAllow | Node,RBAC |");
    println!("|---|---|---|");
    println!(
        "| requests/s | {:.0} | {:.0} |",
        off.ops_per_second, on.ops_per_second
    );
    let (a50, a99, _) = summary(off.latencies);
    let (b50, b99, _) = summary(on.latencies);
    println!("| latency p50 / p99 (ms) | {a50:.2} / {a99:.2} | {b50:.2} / {b99:.2} |");
    let ratio = on.ops_per_second / off.ops_per_second;
    let change = if ratio < 1.0 {
        format!("{:.1}% loss", (1.0 - ratio) * 100.0)
    } else {
        format!(
            "no loss: {:.1}% faster, within run-to-run noise",
            (ratio - 1.0) * 100.0
        )
    };
    println!("\nthroughput with RBAC / without: {ratio:.3} ({change}; goal ≤ 5% loss)");
    Ok(())
}
