//! `skiff apiserver bench-crd`: what serving custom resources costs next to a built-in resource
//! (the API extensions issue's check: 10,000 custom objects created and watched cost no more than
//! as many ConfigMaps). One `skiff server`, one kube-rs client process: the same load twice —
//! ConfigMaps (the anchor), then the objects of a CRD with a schema (validation, defaulting,
//! pruning), printer columns and a status subresource — each in its own namespace with its own
//! watchers; prints both side by side and the ratio.

use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::json;

use crate::bench::{self, summary};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 10_000)]
    pub objects: usize,
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    #[arg(long, default_value_t = 10)]
    pub watchers: usize,
}

/// The CRD the custom side uses (upstream's CronTab example with a schema that validates,
/// defaults and prunes).
fn crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com", "scope": "Namespaced",
            "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"}],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["cronSpec"], "properties": {
                        "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                        "image": {"type": "string", "maxLength": 64},
                        "replicas": {"type": "integer", "minimum": 1, "default": 1}
                    }},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }}}
            }]
        }
    })
}

struct Run {
    creates_per_second: f64,
    create_ms: (f64, f64, f64),
    all_watched_secs: f64,
    list_ms: (f64, f64, f64),
}

/// Creates `objects` objects with `clients` concurrent clients while `watchers` watch them
/// (label `app=bench`: the namespace's `kube-root-ca.crt` ConfigMap is not counted); then lists
/// them five times.
async fn load(
    client: &kube::Client,
    resource: &ApiResource,
    ns: &str,
    args: &BenchArgs,
    object: fn(usize) -> serde_json::Value,
) -> anyhow::Result<Run> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, resource);
    let rv = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let path = if resource.group.is_empty() {
        format!("/api/v1/namespaces/{ns}/{}", resource.plural)
    } else {
        format!(
            "/apis/{}/namespaces/{ns}/{}",
            resource.api_version, resource.plural
        )
    };
    let mut watchers = Vec::new();
    for _ in 0..args.watchers {
        let req = http::Request::get(format!(
            "{path}?watch=true&resourceVersion={rv}&timeoutSeconds=3600&labelSelector=app%3Dbench"
        ))
        .body(Vec::new())?;
        let mut stream = client.request_stream(req).await?;
        let expected = args.objects as u64;
        watchers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            let mut count = 0u64;
            while count < expected {
                match futures::AsyncReadExt::read(&mut stream, &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => count += buf[..n].iter().filter(|b| **b == b'\n').count() as u64,
                }
            }
            count
        }));
    }
    let began = Instant::now();
    let per_client = args.objects.div_ceil(args.clients);
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let api = api.clone();
        let range = (c * per_client)..((c + 1) * per_client).min(args.objects);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in range {
                let o: DynamicObject = serde_json::from_value(object(i))?;
                let t = Instant::now();
                api.create(&PostParams::default(), &o).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut create_lat = Vec::new();
    for t in tasks {
        create_lat.extend(t.await??);
    }
    let create_secs = began.elapsed().as_secs_f64();
    let mut watched = futures::stream::iter(watchers)
        .then(|w| async move { w.await.unwrap_or(0) })
        .collect::<Vec<u64>>()
        .await;
    watched.retain(|n| *n < args.objects as u64);
    anyhow::ensure!(
        watched.is_empty(),
        "some watchers missed events: {watched:?}"
    );
    let all_watched_secs = began.elapsed().as_secs_f64();
    let mut list_lat = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let list = api.list(&ListParams::default().labels("app=bench")).await?;
        list_lat.push(t.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(
            list.items.len() == args.objects,
            "listed {}",
            list.items.len()
        );
    }
    Ok(Run {
        creates_per_second: args.objects as f64 / create_secs,
        create_ms: summary(create_lat),
        all_watched_secs,
        list_ms: summary(list_lat),
    })
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let (dir, _server) = bench::start_server(&[]).await?;
    let client =
        skiff_controllers::client_from_kubeconfig(&dir.path().join("admin.kubeconfig")).await?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for ns in ["bench-configmaps", "bench-crontabs"] {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
            )
            .await?;
    }
    let crds = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        "customresourcedefinitions",
    );
    let crd_api: Api<DynamicObject> = Api::all_with(client.clone(), &crds);
    crd_api
        .create(&PostParams::default(), &serde_json::from_value(crd())?)
        .await?;
    let crontabs = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("stable.example.com", "v1", "CronTab"),
        "crontabs",
    );
    // Served once Established.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Api::<DynamicObject>::namespaced_with(client.clone(), "bench-crontabs", &crontabs)
        .list(&ListParams::default())
        .await
        .is_err()
    {
        anyhow::ensure!(Instant::now() < deadline, "the CRD was not established");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let configmaps = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("", "v1", "ConfigMap"),
        "configmaps",
    );
    let anchor = load(&client, &configmaps, "bench-configmaps", &args, |i| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("o-{i}"), "labels": {"app": "bench"}},
               "data": {"cronSpec": "*/5 * * * *", "image": "registry.local/app:1.0"}})
    })
    .await?;
    let custom = load(&client, &crontabs, "bench-crontabs", &args, |i| {
        json!({"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": format!("o-{i}"), "labels": {"app": "bench"}},
               "spec": {"cronSpec": "*/5 * * * *", "image": "registry.local/app:1.0"}})
    })
    .await?;
    println!(
        "## skiff apiserver bench-crd: {} objects, {} clients, {} watchers each (2 cores shared by server and clients)\n",
        args.objects, args.clients, args.watchers
    );
    println!(
        "| metric | ConfigMaps (anchor) | CronTabs (custom resource) | ratio custom / anchor |"
    );
    println!("|---|---|---|---|");
    let (a, c) = (&anchor, &custom);
    println!(
        "| creates/s | {:.0} | {:.0} | {:.2} |",
        a.creates_per_second,
        c.creates_per_second,
        c.creates_per_second / a.creates_per_second
    );
    println!(
        "| create latency p50 / p99 / max (ms) | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | p99 {:.2} |",
        a.create_ms.0, a.create_ms.1, a.create_ms.2, c.create_ms.0, c.create_ms.1, c.create_ms.2,
        c.create_ms.1 / a.create_ms.1
    );
    println!(
        "| creates until every watcher had every event (s) | {:.2} | {:.2} | {:.2} |",
        a.all_watched_secs,
        c.all_watched_secs,
        c.all_watched_secs / a.all_watched_secs
    );
    println!(
        "| list of all, consistent, p50 / p99 (ms) | {:.0} / {:.0} | {:.0} / {:.0} | p50 {:.2} |",
        a.list_ms.0,
        a.list_ms.1,
        c.list_ms.0,
        c.list_ms.1,
        c.list_ms.0 / a.list_ms.0
    );
    Ok(())
}
