//! The garbage collector inside `skiff server`, driven by the real kubectl 1.32: the three
//! `--cascade` modes on objects linked by ownerReferences, and dependents of a cluster-scoped
//! owner.

mod common;

use common::{wait_until, ServerProcess};

fn uid(s: &ServerProcess, args: &[&str]) -> String {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "jsonpath={.metadata.uid}"]);
    s.kubectl_ok(&all)
}

fn exists(s: &ServerProcess, args: &[&str]) -> bool {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--ignore-not-found", "-o", "name"]);
    !s.kubectl_ok(&all).trim().is_empty()
}

/// A ConfigMap owned by `owners` ((apiVersion, kind, name, uid, blockOwnerDeletion)).
fn create_dependent(s: &ServerProcess, name: &str, owners: &[(&str, &str, &str, &str, bool)]) {
    let refs: Vec<serde_json::Value> = owners
        .iter()
        .map(|(api_version, kind, owner, uid, block)| {
            serde_json::json!({"apiVersion": api_version, "kind": kind, "name": owner,
                "uid": uid, "blockOwnerDeletion": block})
        })
        .collect();
    let manifest = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "ownerReferences": refs},
        "data": {"k": "v"}
    });
    let out = s.kubectl_stdin(&["create", "-f", "-"], &manifest.to_string());
    assert!(
        out.status.success(),
        "create {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn garbage_collection_with_kubectl() {
    let s = ServerProcess::start();

    // Background (kubectl's default): the owner goes at once, then its dependent.
    s.kubectl_ok(&["create", "configmap", "bg-owner", "--from-literal=a=1"]);
    let owner = uid(&s, &["configmap", "bg-owner"]);
    create_dependent(
        &s,
        "bg-dep",
        &[("v1", "ConfigMap", "bg-owner", &owner, false)],
    );
    s.kubectl_ok(&["delete", "configmap", "bg-owner"]);
    wait_until("bg-dep to be collected", || {
        !exists(&s, &["configmap", "bg-dep"])
    });

    // A dependent with two owners survives while one of them lives; the reference to the
    // gone owner is dropped.
    s.kubectl_ok(&["create", "configmap", "two-a", "--from-literal=a=1"]);
    s.kubectl_ok(&["create", "configmap", "two-b", "--from-literal=a=1"]);
    let (a, b) = (
        uid(&s, &["configmap", "two-a"]),
        uid(&s, &["configmap", "two-b"]),
    );
    create_dependent(
        &s,
        "two-dep",
        &[
            ("v1", "ConfigMap", "two-a", &a, false),
            ("v1", "ConfigMap", "two-b", &b, false),
        ],
    );
    s.kubectl_ok(&["delete", "configmap", "two-a"]);
    wait_until("the dangling reference to be dropped", || {
        s.kubectl_ok(&[
            "get",
            "configmap",
            "two-dep",
            "-o",
            "jsonpath={.metadata.ownerReferences[*].name}",
        ])
        .trim()
            == "two-b"
    });

    // Foreground: kubectl waits until the owner is gone, which happens only after its
    // blocking dependent was deleted.
    s.kubectl_ok(&["create", "configmap", "fg-owner", "--from-literal=a=1"]);
    let owner = uid(&s, &["configmap", "fg-owner"]);
    create_dependent(
        &s,
        "fg-dep",
        &[("v1", "ConfigMap", "fg-owner", &owner, true)],
    );
    s.kubectl_ok(&[
        "delete",
        "configmap",
        "fg-owner",
        "--cascade=foreground",
        "--timeout=30s",
    ]);
    assert!(!exists(&s, &["configmap", "fg-owner"]));
    assert!(!exists(&s, &["configmap", "fg-dep"]));

    // Orphan: the owner goes, the dependent stays without the reference.
    s.kubectl_ok(&["create", "configmap", "or-owner", "--from-literal=a=1"]);
    let owner = uid(&s, &["configmap", "or-owner"]);
    create_dependent(
        &s,
        "or-dep",
        &[("v1", "ConfigMap", "or-owner", &owner, true)],
    );
    s.kubectl_ok(&[
        "delete",
        "configmap",
        "or-owner",
        "--cascade=orphan",
        "--timeout=30s",
    ]);
    assert!(!exists(&s, &["configmap", "or-owner"]));
    let refs = s.kubectl_ok(&[
        "get",
        "configmap",
        "or-dep",
        "-o",
        "jsonpath={.metadata.ownerReferences}",
    ]);
    assert!(refs.trim().is_empty() || refs.trim() == "[]", "{refs}");

    // A namespaced dependent of a cluster-scoped owner (a Namespace here).
    s.kubectl_ok(&["create", "namespace", "owner-ns"]);
    let owner = uid(&s, &["namespace", "owner-ns"]);
    create_dependent(
        &s,
        "ns-dep",
        &[("v1", "Namespace", "owner-ns", &owner, false)],
    );
    s.kubectl_ok(&["delete", "namespace", "owner-ns", "--timeout=60s"]);
    wait_until("ns-dep to be collected", || {
        !exists(&s, &["configmap", "ns-dep"])
    });

    // A reference to an owner that never existed (wrong uid for an existing name) is dangling
    // from the start.
    s.kubectl_ok(&["create", "configmap", "real-owner", "--from-literal=a=1"]);
    create_dependent(
        &s,
        "wrong-uid-dep",
        &[(
            "v1",
            "ConfigMap",
            "real-owner",
            "00000000-0000-0000-0000-000000000000",
            false,
        )],
    );
    wait_until("wrong-uid-dep to be collected", || {
        !exists(&s, &["configmap", "wrong-uid-dep"])
    });
    assert!(exists(&s, &["configmap", "real-owner"]));

    // A circle of blocking owner references (upstream's conformance spec "should not be
    // blocked by dependency circle"): a foreground delete of one pod takes all three. The pods
    // sit on a node that does not exist, with no grace period: they go as soon as nothing
    // holds them, and PodGC leaves pods of a missing node alone for 40 s.
    for name in ["circle-1", "circle-2", "circle-3"] {
        let manifest = format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}},"spec":{{"nodeName":"nowhere","terminationGracePeriodSeconds":0,"containers":[{{"name":"c","image":"busybox"}}]}}}}"#
        );
        let out = s.kubectl_stdin(&["create", "-f", "-"], &manifest);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (name, owner) in [
        ("circle-1", "circle-3"),
        ("circle-2", "circle-1"),
        ("circle-3", "circle-2"),
    ] {
        let owner_uid = uid(&s, &["pod", owner]);
        let patch = format!(
            r#"{{"metadata":{{"ownerReferences":[{{"apiVersion":"v1","kind":"Pod","name":"{owner}","uid":"{owner_uid}","controller":true,"blockOwnerDeletion":true}}]}}}}"#
        );
        s.kubectl_ok(&["patch", "pod", name, "-p", &patch]);
    }
    // Let the collector's graph take in the references first (deleted before it knows them,
    // circle-1 has no dependents yet and nothing is circular).
    std::thread::sleep(std::time::Duration::from_secs(3));
    s.kubectl_ok(&[
        "delete",
        "pod",
        "circle-1",
        "--cascade=foreground",
        "--wait=false",
    ]);
    wait_until("the circle to be collected", || {
        ["circle-1", "circle-2", "circle-3"]
            .iter()
            .all(|p| !exists(&s, &["pod", p]))
    });
}

/// Every namespace gets a `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap with
/// the cluster CA; both come back when deleted, and an edited CA is put right.
#[test]
fn namespaces_get_default_account_and_root_ca() {
    let s = ServerProcess::start();
    let ca = std::fs::read_to_string(s.ca()).expect("the server's CA");
    s.kubectl_ok(&["create", "namespace", "fresh"]);
    let published = |s: &ServerProcess| {
        s.kubectl(&[
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-n",
            "fresh",
            "-o",
            "jsonpath={.data.ca\\.crt}",
        ])
        .stdout
    };
    wait_until("default account and root CA in fresh", || {
        exists(&s, &["serviceaccount", "default", "-n", "fresh"]) && published(&s) == ca.as_bytes()
    });
    s.kubectl_ok(&["delete", "serviceaccount", "default", "-n", "fresh"]);
    s.kubectl_ok(&["delete", "configmap", "kube-root-ca.crt", "-n", "fresh"]);
    wait_until("both recreated", || {
        exists(&s, &["serviceaccount", "default", "-n", "fresh"]) && published(&s) == ca.as_bytes()
    });
    s.kubectl_ok(&[
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "-n",
        "fresh",
        "--type=merge",
        "-p",
        r#"{"data":{"ca.crt":"tampered"}}"#,
    ]);
    wait_until("the CA put right", || published(&s) == ca.as_bytes());
    // Deleting the namespace takes its pods first: while a pod stays (a finalizer holds it),
    // the rest of the namespace's content stays too (OrderedNamespaceDeletion).
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"held","namespace":"fresh","finalizers":["example.com/hold"]},"spec":{"schedulerName":"nobody","containers":[{"name":"c","image":"busybox"}]}}"#;
    let out = s.kubectl_stdin(&["create", "-f", "-"], pod);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.kubectl_ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "fresh",
        "--from-literal=k=v",
    ]);
    // An aggregated API whose backend does not exist: its group's discovery fails (503).
    let broken = r#"{"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","metadata":{"name":"v1.broken.example.com"},"spec":{"group":"broken.example.com","version":"v1","groupPriorityMinimum":1000,"versionPriority":15,"service":{"namespace":"default","name":"nothing"},"insecureSkipTLSVerify":true}}"#;
    let out = s.kubectl_stdin(&["create", "-f", "-"], broken);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.kubectl_ok(&["delete", "namespace", "fresh", "--wait=false"]);
    wait_until("the pod marked for deletion", || {
        !s.kubectl_ok(&[
            "get",
            "pod",
            "held",
            "-n",
            "fresh",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ])
        .is_empty()
    });
    // The controller retries every 2 s; give it several passes.
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert!(
        exists(&s, &["configmap", "settings", "-n", "fresh"]),
        "content went before the pod"
    );
    // Upstream's deletion conditions say what holds the namespace (`kubectl describe ns`).
    let condition = |type_: &str| {
        s.kubectl_ok(&[
            "get",
            "namespace",
            "fresh",
            "-o",
            &format!("jsonpath={{.status.conditions[?(@.type==\"{type_}\")]['status','reason','message']}}"),
        ])
    };
    assert_eq!(
        condition("NamespaceContentRemaining"),
        "True SomeResourcesRemain Some resources are remaining: pods. has 1 resource instances"
    );
    assert_eq!(
        condition("NamespaceFinalizersRemaining"),
        "True SomeFinalizersRemain Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
    );
    let discovery = condition("NamespaceDeletionDiscoveryFailure");
    assert!(
        discovery.starts_with("True DiscoveryFailed Discovery failed for some groups, 1 failing: unable to retrieve the complete list of server APIs: broken.example.com/v1: "),
        "{discovery}"
    );
    assert_eq!(
        condition("NamespaceDeletionContentFailure"),
        "False ContentDeleted All content successfully deleted, may be waiting on finalization"
    );
    s.kubectl_ok(&[
        "patch",
        "pod",
        "held",
        "-n",
        "fresh",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    // The rest of the content goes although one group cannot be discovered; the namespace
    // waits for that group before it is finalized.
    wait_until("the content deleted", || {
        !exists(&s, &["configmap", "settings", "-n", "fresh"])
    });
    // The controller writes the conditions on its pass after the deletions went through.
    wait_until("the content reported removed", || {
        condition("NamespaceContentRemaining")
            == "False ContentRemoved All content successfully removed"
    });
    assert!(exists(&s, &["namespace", "fresh"]));
    s.kubectl_ok(&["delete", "apiservice", "v1.broken.example.com"]);
    wait_until("the namespace gone", || {
        !exists(&s, &["namespace", "fresh"])
    });

    // The built-in namespaces have them too.
    for ns in ["default", "kube-system", "kube-public"] {
        assert!(exists(&s, &["serviceaccount", "default", "-n", ns]), "{ns}");
        assert!(
            exists(&s, &["configmap", "kube-root-ca.crt", "-n", ns]),
            "{ns}"
        );
    }
}
