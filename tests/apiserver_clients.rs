//! The API server against the other real clients: the Python `kubernetes` package (also under
//! RBAC, as a service account), kube-rs,
//! curl with bad input, and two API servers sharing one store.

mod common;

use std::time::Duration;

use common::{ServerProcess, StoreProcess};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::json;

/// Runs `tests/python/<script>` (the Python `kubernetes` package) against `s`; asserts it exits
/// zero and prints `marker`.
fn run_python(s: &ServerProcess, script: &str, marker: &str) {
    let python =
        std::env::var("SKIFF_PYTHON").unwrap_or_else(|_| "/opt/skiff/venv/bin/python".into());
    let out = std::process::Command::new(&python)
        .arg(format!(
            "{}/tests/python/{script}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .env("KUBECONFIG", &s.kubeconfig)
        .output()
        .unwrap_or_else(|e| panic!("run {python} (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "python {script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(marker),
        "{script} did not print {marker:?}"
    );
}

#[test]
fn python_kubernetes_client() {
    let s = ServerProcess::start();
    run_python(&s, "client_test.py", "python kubernetes client: OK");
}

/// The Python client under RBAC: a service account's TokenRequest token with a Role that lets
/// it read ConfigMaps — upstream's 403 text for the rest, SelfSubjectAccessReview,
/// SelfSubjectReview, and the admin's TokenReview of the token.
#[test]
fn python_client_under_rbac() {
    let s = ServerProcess::start();
    run_python(&s, "rbac_test.py", "python rbac: OK");
}

async fn kube_client(s: &ServerProcess) -> kube::Client {
    skiff_controllers::client_from_kubeconfig(&s.kubeconfig)
        .await
        .unwrap()
}

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": name}}),
    )
    .unwrap()
}

#[tokio::test]
async fn kube_rs_crud_list_watch() {
    let s = ServerProcess::start();
    let client = kube_client(&s).await;
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    assert!(discovery.groups().any(|g| g.name() == "apps"));

    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &cm("a", json!({"app": "x"})))
        .await
        .unwrap();
    let rv_a: i64 = created
        .metadata
        .resource_version
        .clone()
        .unwrap()
        .parse()
        .unwrap();
    let mut got = api.get("a").await.unwrap();
    got.data
        .as_mut()
        .unwrap()
        .insert("extra".into(), "1".into());
    let replaced = api
        .replace("a", &PostParams::default(), &got)
        .await
        .unwrap();
    assert_eq!(replaced.data.unwrap()["extra"], "1");
    // Replacing with the stale object conflicts.
    let err = api
        .replace("a", &PostParams::default(), &got)
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref e) if e.code == 409),
        "{err:?}"
    );

    let merge = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"m": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(merge.metadata.labels.unwrap()["m"], "1");
    let strategic = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"s": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(strategic.data.unwrap()["s"], "2");
    let jp: json_patch_ops::Ops =
        serde_json::from_value(json!([{"op": "add", "path": "/data/j", "value": "3"}])).unwrap();
    let jsonp = api
        .patch("a", &PatchParams::default(), &Patch::Json::<()>(jp))
        .await
        .unwrap();
    assert_eq!(jsonp.data.unwrap()["j"], "3");

    api.create(&PostParams::default(), &cm("b", json!({"app": "y"})))
        .await
        .unwrap();
    let listed = api
        .list(&ListParams::default().labels("app=x"))
        .await
        .unwrap();
    assert_eq!(
        listed
            .items
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect::<Vec<_>>(),
        ["a"]
    );
    let meta = api.list_metadata(&ListParams::default()).await.unwrap();
    assert!(meta.items.len() >= 2);

    // Watch from the first create's resourceVersion: everything after it, in order.
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &rv_a.to_string())
        .await
        .unwrap()
        .boxed();
    let mut seen = Vec::new();
    while let Some(ev) = stream.try_next().await.unwrap() {
        match ev {
            // (The root CA publisher's ConfigMap may land in between.)
            WatchEvent::Added(c) | WatchEvent::Modified(c)
                if c.metadata.name.as_deref() == Some("kube-root-ca.crt") => {}
            WatchEvent::Added(c) | WatchEvent::Modified(c) => seen.push(c.metadata.name.unwrap()),
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {other:?}"),
        }
        if seen.len() == 5 {
            break;
        }
    }
    assert_eq!(seen, ["a", "a", "a", "a", "b"]);

    // kube-runtime's watcher: initial list then live events.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut events =
        kube::runtime::watcher(pods.clone(), kube::runtime::watcher::Config::default()).boxed();
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})).unwrap();
    let mut created_pod = false;
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(ev) = events.try_next().await.unwrap() {
            match ev {
                kube::runtime::watcher::Event::InitDone if !created_pod => {
                    pods.create(&PostParams::default(), &pod).await.unwrap();
                    created_pod = true;
                }
                kube::runtime::watcher::Event::Apply(p)
                    if p.metadata.name.as_deref() == Some("p") =>
                {
                    return p
                }
                _ => {}
            }
        }
        panic!("watcher ended")
    })
    .await
    .expect("watcher saw the pod");
    assert_eq!(
        found.spec.unwrap().service_account_name.as_deref(),
        Some("default")
    );

    api.delete("a", &DeleteParams::default()).await.unwrap();
    let err = api.get("a").await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref e) if e.code == 404 && e.reason == "NotFound"),
        "{err:?}"
    );
}

mod json_patch_ops {
    /// kube's Patch::Json takes a json_patch::Patch.
    pub type Ops = json_patch::Patch;
}

/// Bad input gets upstream's 4xx Status, never a 500.
#[test]
fn bad_input_is_rejected_cleanly() {
    let s = ServerProcess::start();
    // (method, path, content type, body, expected code, expected reason)
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Vec<u8>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            b"{not json".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/yaml",
            b"a: [unclosed".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/vnd.kubernetes.protobuf",
            b"k8s\0\x0a\xff\xff".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "text/csv",
            b"a,b".to_vec(),
            415,
            "UnsupportedMediaType",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
            "application/json",
            br#"{"metadata":{"name":"x"},"bogus":1}"#.to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods",
            "application/json",
            br#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"x"}}"#.to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            br#"{"metadata":{"name":"Bad_Name"}}"#.to_vec(),
            422,
            "Invalid",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/pods",
            "application/json",
            br#"{"metadata":{"name":"p"},"spec":{"containers":[]}}"#.to_vec(),
            422,
            "Invalid",
        ),
        (
            "POST",
            "/api/v1/namespaces/default/configmaps",
            "application/json",
            br#"{"metadata":{"name":"x"},"data":{"a":5}}"#.to_vec(),
            400,
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/nope/configmaps",
            "application/json",
            br#"{"metadata":{"name":"x"}}"#.to_vec(),
            404,
            "NotFound",
        ),
        (
            "GET",
            "/api/v1/pods?labelSelector=a%20in%20(b",
            "",
            vec![],
            400,
            "BadRequest",
        ),
        (
            "GET",
            "/api/v1/pods?fieldSelector=spec.bogus%3D1",
            "",
            vec![],
            400,
            "BadRequest",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/configmaps?continue=garbage",
            "",
            vec![],
            400,
            "BadRequest",
        ),
        (
            "GET",
            "/api/v1/namespaces/default/pods/none",
            "",
            vec![],
            404,
            "NotFound",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default",
            "application/merge-patch+json",
            b"[1,2".to_vec(),
            400,
            "BadRequest",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default",
            "application/json-patch+json",
            br#"[{"op":"frob"}]"#.to_vec(),
            422,
            "Invalid",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default",
            "application/strategic-merge-patch+json",
            br#"{"metadata":{"$patch":7}}"#.to_vec(),
            400,
            "BadRequest",
        ),
        (
            // A uid in the patched object is a precondition (guards against re-created objects).
            "PATCH",
            "/api/v1/namespaces/default",
            "application/merge-patch+json",
            br#"{"metadata":{"uid":"00000000-0000-0000-0000-000000000000","labels":{"x":"y"}}}"#
                .to_vec(),
            409,
            "Conflict",
        ),
        (
            "PATCH",
            "/api/v1/namespaces/default",
            "application/xml",
            b"<a/>".to_vec(),
            415,
            "UnsupportedMediaType",
        ),
        (
            "PUT",
            "/api/v1/namespaces/default",
            "application/json",
            br#"{"metadata":{"name":"other"}}"#.to_vec(),
            400,
            "BadRequest",
        ),
        (
            "DELETE",
            "/apis/apps/v1/namespaces/default/deployments/none",
            "",
            vec![],
            404,
            "NotFound",
        ),
    ];
    for (method, path, ct, body, code, reason) in cases {
        let (got, text) = s.curl(method, path, ct, &body);
        assert_eq!(got, code, "{method} {path} ({ct}): {text}");
        let status: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not a Status ({e}): {text}"));
        assert_eq!(status["kind"], "Status", "{text}");
        assert_eq!(status["reason"], reason, "{method} {path}: {text}");
    }
    // Duplicate fields: an error under fieldValidation=Strict, accepted (the last value wins,
    // with a warning) under the default Warn.
    let duplicated = br#"{"metadata":{"name":"dup"},"data":{"a":"1","a":"2"}}"#;
    let (code, text) = s.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
        "application/json",
        duplicated,
    );
    assert_eq!(code, 400, "{text}");
    assert!(
        text.contains(r#"strict decoding error: duplicate field \"data.a\""#),
        "{text}"
    );
    let (code, text) = s.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        duplicated,
    );
    assert_eq!(code, 201, "{text}");
    let created: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(created["data"]["a"], "2");
    // Oversized body: 413, and nothing was created.
    let big = format!(
        r#"{{"metadata":{{"name":"big"}},"data":{{"a":"{}"}}}}"#,
        "x".repeat(4 * 1024 * 1024)
    );
    let (code, _) = s.curl(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        big.as_bytes(),
    );
    assert_eq!(code, 413);
    let (code, _) = s.curl("GET", "/api/v1/namespaces/default/configmaps/big", "", b"");
    assert_eq!(code, 404);
    // Without a token: anonymous, which RBAC lets see nothing (403, as upstream); with a
    // wrong token: 401, nothing about why.
    let code_with = |header: Option<&str>| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(s.ca());
        if let Some(h) = header {
            cmd.args(["-H", h]);
        }
        let out = cmd
            .arg(format!("{}/api/v1/namespaces", s.url()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(code_with(None), "403");
    assert_eq!(code_with(Some("Authorization: Bearer not-a-token")), "401");
    // No token after the scheme is no credential (upstream's bearertoken reads none): anonymous.
    assert_eq!(code_with(Some("Authorization: Bearer ")), "403");
    // The server still works.
    assert!(s.kubectl_ok(&["get", "ns"]).contains("default"));
}

/// Two API servers on one store: a write through one is read and watched through the other.
#[tokio::test]
async fn two_apiservers_share_one_store() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(store_dir.path());
    let a = ServerProcess::start_apiserver(&store.endpoint, None);
    let b = ServerProcess::start_apiserver(&store.endpoint, Some(a.dir.path()));
    let ca = kube_client(&a).await;
    let cb = kube_client(&b).await;
    let api_a: Api<ConfigMap> = Api::namespaced(ca, "default");
    let api_b: Api<ConfigMap> = Api::namespaced(cb, "default");
    let list_rv = api_b
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut watch_b = api_b
        .watch(&WatchParams::default().timeout(20), &list_rv)
        .await
        .unwrap()
        .boxed();
    for i in 0..20 {
        let created = api_a
            .create(&PostParams::default(), &cm(&format!("c{i}"), json!({})))
            .await
            .unwrap();
        // A consistent read on the other server sees the write at once.
        let read = api_b.get(&format!("c{i}")).await.unwrap();
        assert_eq!(
            read.metadata.resource_version,
            created.metadata.resource_version
        );
    }
    let mut names = Vec::new();
    while names.len() < 20 {
        match watch_b.try_next().await.unwrap() {
            Some(WatchEvent::Added(c)) => names.push(c.metadata.name.unwrap()),
            Some(WatchEvent::Bookmark(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(names, (0..20).map(|i| format!("c{i}")).collect::<Vec<_>>());
}

/// A resourceVersion the store has compacted away is 410 Expired (kube-rs then relists).
#[tokio::test]
async fn watch_from_compacted_revision_is_410() {
    let store_dir = tempfile::tempdir().unwrap();
    let store = StoreProcess::start(store_dir.path());
    let mut etcd = store.client().await;
    for i in 0..10 {
        etcd.put(format!("/unrelated/{i}"), "x", None)
            .await
            .unwrap();
    }
    let rev = etcd
        .get("/unrelated/0", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    etcd.compact(rev, None).await.unwrap();
    let s = ServerProcess::start_apiserver(&store.endpoint, None);
    let api: Api<ConfigMap> = Api::namespaced(kube_client(&s).await, "default");
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), "2")
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    // A current resourceVersion still works.
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("after", json!({})))
        .await
        .unwrap();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Added(c)) => assert_eq!(c.metadata.name.as_deref(), Some("after")),
        other => panic!("expected ADDED, got {other:?}"),
    }
}
