//! The API server driven by the real kubectl 1.32, unchanged: every command the API server issue
//! names, against `skiff server` (embedded store) and against real etcd 3.4.

mod common;

use std::time::{Duration, Instant};

use common::{wait_until, EtcdProcess, ServerProcess};

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports: [{containerPort: 80}]
        env: [{name: A, value: "1"}, {name: B, value: "2"}]
"#;

/// Namespaces: bootstrap, create (protobuf body), client dry-run YAML then create -f, delete
/// (waits for the namespace controller), terminating namespaces refuse new content.
fn namespace_lifecycle(s: &ServerProcess) {
    let out = s.kubectl_ok(&["get", "ns"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(ns) && l.contains("Active")),
            "{ns} missing in:\n{out}"
        );
    }
    assert_eq!(
        s.kubectl_ok(&["create", "namespace", "blue"]).trim(),
        "namespace/blue created"
    );
    let err = s.kubectl_err(&["create", "namespace", "blue"]);
    assert!(
        err.contains("Error from server (AlreadyExists): namespaces \"blue\" already exists"),
        "{err}"
    );
    let yaml = s.kubectl_ok(&[
        "create",
        "namespace",
        "green",
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    let file = s.dir.path().join("green.yaml");
    std::fs::write(&file, yaml).unwrap();
    assert_eq!(
        s.kubectl_ok(&["create", "-f", file.to_str().unwrap()])
            .trim(),
        "namespace/green created"
    );
    let green = s.kubectl_ok(&["get", "ns", "green", "-o", "jsonpath={.metadata.labels.kubernetes\\.io/metadata\\.name} {.spec.finalizers[0]} {.status.phase}"]);
    assert_eq!(green, "green kubernetes Active");

    // Contents go with the namespace.
    s.kubectl_ok(&[
        "create",
        "configmap",
        "settings",
        "-n",
        "blue",
        "--from-literal=a=b",
    ]);
    s.kubectl_ok(&["run", "p1", "--image=busybox", "-n", "blue"]);
    assert_eq!(
        s.kubectl_ok(&["delete", "namespace", "blue"]).trim(),
        "namespace \"blue\" deleted"
    );
    let err = s.kubectl_err(&["get", "ns", "blue"]);
    assert!(err.contains("namespaces \"blue\" not found"), "{err}");
    assert!(s
        .kubectl_ok(&["get", "configmaps", "-A"])
        .lines()
        .all(|l| !l.starts_with("blue")));

    // A finalizer holds the namespace in Terminating; new content is refused meanwhile.
    s.kubectl_ok(&["create", "namespace", "held"]);
    s.kubectl_ok(&["create", "configmap", "pin", "-n", "held"]);
    s.kubectl_ok(&[
        "patch",
        "configmap",
        "pin",
        "-n",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    s.kubectl_ok(&["delete", "namespace", "held", "--wait=false"]);
    wait_until("namespace held to be Terminating", || {
        s.kubectl_ok(&["get", "ns", "held", "-o", "jsonpath={.status.phase}"]) == "Terminating"
    });
    let err = s.kubectl_err(&["create", "configmap", "late", "-n", "held"]);
    assert!(err.contains("is forbidden: unable to create new content in namespace held because it is being terminated"), "{err}");
    s.kubectl_ok(&[
        "patch",
        "configmap",
        "pin",
        "-n",
        "held",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    wait_until("namespace held to go away", || {
        !s.kubectl(&["get", "ns", "held"]).status.success()
    });
}

/// Deployments through apply (new, changed), describe, label, annotate, the three patch types,
/// scale, get all, get -o wide.
fn workloads(s: &ServerProcess) {
    let file = s.dir.path().join("web.yaml");
    std::fs::write(&file, DEPLOYMENT).unwrap();
    let f = file.to_str().unwrap();
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", f]).trim(),
        "deployment.apps/web created"
    );
    std::fs::write(
        &file,
        DEPLOYMENT
            .replace("nginx:1.25", "nginx:1.26")
            .replace("replicas: 2", "replicas: 3"),
    )
    .unwrap();
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", f]).trim(),
        "deployment.apps/web configured"
    );
    let got = s.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.metadata.generation} {.spec.template.spec.containers[0].env[1].value} {.spec.template.spec.containers[0].ports[0].containerPort}"]);
    assert_eq!(got, "3 nginx:1.26 2 2 80");
    assert_eq!(
        s.kubectl_ok(&["apply", "-f", f]).trim(),
        "deployment.apps/web unchanged"
    );

    let wide = s.kubectl_ok(&["get", "deploy", "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert!(
        wide.contains("nginx:1.26") && wide.contains("app=web"),
        "{wide}"
    );

    let described = s.kubectl_ok(&["describe", "deployment", "web"]);
    assert!(
        described.contains("Name:")
            && described.contains("web")
            && described.contains("nginx:1.26"),
        "{described}"
    );
    assert!(
        described.contains("RollingUpdate") && described.contains("25% max unavailable"),
        "{described}"
    );

    s.kubectl_ok(&["label", "deployment", "web", "tier=front"]);
    s.kubectl_ok(&["annotate", "deployment", "web", "owner=team-a"]);
    assert_eq!(
        s.kubectl_ok(&["get", "deploy", "-l", "tier=front", "-o", "name"])
            .trim(),
        "deployment.apps/web"
    );
    s.kubectl_ok(&["label", "deployment", "web", "tier-"]);
    assert_eq!(
        s.kubectl_ok(&["get", "deploy", "-l", "tier=front", "-o", "name"])
            .trim(),
        ""
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.annotations.owner}"
        ]),
        "team-a"
    );

    // Strategic merge: containers merge by name, so the image changes and env stays.
    s.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.27"}]}}}}"#,
    ]);
    assert_eq!(s.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[0].name}"]), "nginx:1.27 A");
    // JSON merge patch replaces the list.
    s.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:1.28"}]}}}}"#,
    ]);
    assert_eq!(s.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}:{.spec.template.spec.containers[0].env}"]), "nginx:1.28:");
    // JSON patch, including a failing test op.
    s.kubectl_ok(&[
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/replicas","value":5}]"#,
    ]);
    let err = s.kubectl_err(&[
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/spec/replicas","value":9}]"#,
    ]);
    assert!(
        err.contains("The request is invalid") && err.contains("/spec/replicas"),
        "{err}"
    );

    assert_eq!(
        s.kubectl_ok(&["scale", "deployment", "web", "--replicas=7"])
            .trim(),
        "deployment.apps/web scaled"
    );
    assert_eq!(
        s.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "7"
    );
    let generation: i64 = s
        .kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.generation}",
        ])
        .parse()
        .unwrap();
    assert!(
        generation >= 6,
        "every spec change bumps generation, got {generation}"
    );

    s.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let all = s.kubectl_ok(&["get", "all"]);
    assert!(
        all.contains("service/kubernetes")
            && all.contains("service/web")
            && all.contains("deployment.apps/web"),
        "{all}"
    );
    let svc = s.kubectl_ok(&[
        "get",
        "svc",
        "web",
        "-o",
        "jsonpath={.spec.clusterIP} {.spec.ports[0].targetPort}",
    ]);
    let (ip, target) = svc.split_once(' ').unwrap();
    assert!(ip.starts_with("10.") && ip != "10.96.0.1", "{ip}");
    assert_eq!(target, "8080");

    // Node ports: the one asked for, never twice, released on delete; the health-check node
    // port exists exactly while a LoadBalancer has externalTrafficPolicy Local.
    s.kubectl_ok(&[
        "create",
        "service",
        "nodeport",
        "np",
        "--tcp=80:8080",
        "--node-port=30555",
    ]);
    let port = s.kubectl_ok(&[
        "get",
        "svc",
        "np",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    assert_eq!(port, "30555");
    let taken = s.kubectl_err(&[
        "create",
        "service",
        "nodeport",
        "np2",
        "--tcp=80",
        "--node-port=30555",
    ]);
    assert!(
        taken.contains("provided port is already allocated"),
        "{taken}"
    );
    s.kubectl_ok(&["delete", "svc", "np"]);
    s.kubectl_ok(&[
        "create",
        "service",
        "nodeport",
        "np2",
        "--tcp=80",
        "--node-port=30555",
    ]);
    s.kubectl_ok(&["delete", "svc", "np2"]);
    s.kubectl_ok(&["create", "service", "loadbalancer", "lb", "--tcp=80:8080"]);
    let health = |s: &ServerProcess| {
        s.kubectl_ok(&[
            "get",
            "svc",
            "lb",
            "-o",
            "jsonpath={.spec.healthCheckNodePort}",
        ])
    };
    assert_eq!(health(s), "");
    s.kubectl_ok(&[
        "patch",
        "svc",
        "lb",
        "-p",
        r#"{"spec":{"externalTrafficPolicy":"Local"}}"#,
    ]);
    let allocated: u16 = health(s).parse().unwrap();
    assert!((30000..=32767).contains(&allocated), "{allocated}");
    s.kubectl_ok(&[
        "patch",
        "svc",
        "lb",
        "-p",
        r#"{"spec":{"externalTrafficPolicy":"Cluster"}}"#,
    ]);
    assert_eq!(health(s), "", "released with the Local policy");
    let wrong = s.kubectl_err(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"healthCheckNodePort":31000}}"#,
    ]);
    assert!(
        wrong.contains("may only be set when `type` is 'LoadBalancer'"),
        "{wrong}"
    );
    s.kubectl_ok(&["delete", "svc", "lb"]);

    s.kubectl_ok(&["delete", "deployment", "web"]);
    assert!(s
        .kubectl_err(&["get", "deploy", "web"])
        .contains("deployments.apps \"web\" not found"));
}

/// explain, api-resources, auth can-i, set-context, get -A -o wide, edit with a scripted editor.
fn tooling(s: &ServerProcess) {
    let explain = s.kubectl_ok(&["explain", "pods"]);
    assert!(
        explain.contains("KIND:") && explain.contains("Pod") && explain.contains("spec"),
        "{explain}"
    );
    let recursive = s.kubectl_ok(&["explain", "pods", "--recursive"]);
    assert!(
        recursive.contains("containers")
            && recursive.contains("livenessProbe")
            && recursive.len() > 10_000,
        "{}",
        recursive.len()
    );
    let strategy = s.kubectl_ok(&["explain", "deployment.spec.strategy"]);
    assert!(strategy.contains("rollingUpdate"), "{strategy}");

    let resources = s.kubectl_ok(&["api-resources"]);
    for line in [
        "pods ",
        "deployments ",
        "endpointslices ",
        "leases ",
        "clusterrolebindings ",
        "selfsubjectaccessreviews ",
    ] {
        assert!(
            resources.contains(line),
            "{line} missing in api-resources:\n{resources}"
        );
    }
    assert_eq!(
        s.kubectl_ok(&["auth", "can-i", "create", "pods"]).trim(),
        "yes"
    );

    s.kubectl_ok(&["create", "namespace", "team"]);
    s.kubectl_ok(&["config", "set-context", "--current", "--namespace=team"]);
    s.kubectl_ok(&["run", "solo", "--image=busybox:1.36"]);
    assert_eq!(
        s.kubectl_ok(&["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"]),
        "solo"
    );
    let wide = s.kubectl_ok(&["get", "pods", "-A", "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAMESPACE",
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED",
            "NODE",
            "READINESS",
            "GATES"
        ]
    );
    assert!(
        wide.lines()
            .any(|l| l.starts_with("team") && l.contains("solo") && l.contains("Pending")),
        "{wide}"
    );

    let editor = s.dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/busybox:1.36/busybox:1.37/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = s
        .kubectl_cmd(&["edit", "pod", "solo"])
        .env("EDITOR", &editor)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "pod",
            "solo",
            "-o",
            "jsonpath={.spec.containers[0].image}"
        ]),
        "busybox:1.37"
    );
    s.kubectl_ok(&["delete", "pod", "solo"]);
    s.kubectl_ok(&["config", "set-context", "--current", "--namespace=default"]);
}

/// `kubectl get -w` prints the existing pods, then each change as it happens.
fn watch(s: &ServerProcess) {
    s.kubectl_ok(&["create", "namespace", "watched"]);
    s.kubectl_ok(&["run", "first", "--image=busybox", "-n", "watched"]);
    let mut child = s
        .kubectl_cmd(&["get", "pods", "-w", "-n", "watched"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut expect = |name: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !seen.iter().any(|l: &String| l.starts_with(name)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("no line for {name}; saw {seen:?}"),
            }
        }
    };
    expect("NAME");
    expect("first");
    s.kubectl_ok(&["run", "second", "--image=busybox", "-n", "watched"]);
    expect("second");
    let _ = child.kill();
    let _ = child.wait();
}

/// `kubectl apply --server-side`: a field the manager stops applying is removed, fields of
/// another manager stay, each applier has its managedFields entry; apply needs a manager.
fn server_side_apply(s: &ServerProcess) {
    let apply = |manager: &str, manifest: &str| {
        let field_manager = format!("--field-manager={manager}");
        let out = s.kubectl_stdin(
            &["apply", "--server-side", &field_manager, "-f", "-"],
            manifest,
        );
        assert!(
            out.status.success(),
            "apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let get = |path: &str| {
        s.kubectl_ok(&[
            "get",
            "configmap",
            "ssa",
            "-o",
            &format!("jsonpath={{{path}}}"),
        ])
    };
    apply(
        "kubectl",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa, labels: {app: web, tier: db}}\ndata: {a: '1', b: '2'}\n",
    );
    apply(
        "kubectl",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa, labels: {app: web}}\ndata: {a: '1', c: '3'}\n",
    );
    assert_eq!(get(".data"), r#"{"a":"1","c":"3"}"#);
    assert_eq!(get(".metadata.labels"), r#"{"app":"web"}"#);
    apply(
        "other",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {z: '9'}\n",
    );
    apply(
        "kubectl",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: '1'}\n",
    );
    assert_eq!(get(".data"), r#"{"a":"1","z":"9"}"#);
    assert_eq!(get(".metadata.managedFields[*].manager"), "kubectl other");
    assert_eq!(get(".metadata.managedFields[0].operation"), "Apply");

    // A second applier changing a field the first applied: a conflict, unless forced, which
    // moves the field to it.
    let out = s.kubectl_stdin(
        &["apply", "--server-side", "--field-manager=other", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {z: '9', a: '2'}\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl\": .data.a"),
        "{err}"
    );
    assert_eq!(get(".data.a"), "1");
    let out = s.kubectl_stdin(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=other",
            "-f",
            "-",
        ],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {z: '9', a: '2'}\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get(".data.a"), "2");
    assert_eq!(
        get(".metadata.managedFields[?(@.manager==\"other\")].fieldsV1"),
        r#"{"f:data":{"f:a":{},"f:z":{}}}"#
    );
    // The first applier no longer owns `a`: leaving it out removes nothing.
    apply(
        "kubectl",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {}\n",
    );
    assert_eq!(get(".data"), r#"{"a":"2","z":"9"}"#);

    // Items of keyed lists: an env var left out is removed; the container stays.
    let deployment = |env: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: ssa-web}}\nspec:\n  selector: {{matchLabels: {{app: ssa}}}}\n  template:\n    metadata: {{labels: {{app: ssa}}}}\n    spec:\n      containers:\n      - name: c\n        image: nginx\n        env: [{env}]\n"
        )
    };
    apply(
        "kubectl",
        &deployment("{name: A, value: '1'}, {name: B, value: '2'}"),
    );
    apply("kubectl", &deployment("{name: A, value: '1'}"));
    let env = s.kubectl_ok(&[
        "get",
        "deployment",
        "ssa-web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env[*].name}",
    ]);
    assert_eq!(env, "A");

    // Apply without a field manager is refused, as upstream does.
    let (code, text) = s.curl(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/ssa",
        "application/apply-patch+yaml",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\n",
    );
    assert_eq!(code, 422, "{text}");
    assert!(text.contains("fieldManager: Required value"), "{text}");
}

/// Field ownership of ordinary writes, as upstream records it: `Update` entries per manager
/// (the `--field-manager` kubectl sends, or its user agent's first word), an apply that would
/// change a field an updater owns conflicts until forced, apply and update on subresources get
/// entries of their own.
fn update_managers(s: &ServerProcess) {
    let stdin_ok = |args: &[&str], input: &str| {
        let out = s.kubectl_stdin(args, input);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let entries = |what: &str| {
        let out = s.kubectl_ok(&["get", what, "-o", "json", "--show-managed-fields"]);
        let object: serde_json::Value = serde_json::from_str(&out).expect("object");
        object["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                (
                    format!(
                        "{} {} {}",
                        e["manager"].as_str().unwrap_or_default(),
                        e["operation"].as_str().unwrap_or_default(),
                        e["subresource"].as_str().unwrap_or_default()
                    )
                    .trim_end()
                    .to_string(),
                    e["fieldsV1"].to_string(),
                )
            })
            .collect::<Vec<(String, String)>>()
    };
    s.kubectl_ok(&[
        "create",
        "configmap",
        "owned",
        "--from-literal=x=one",
        "--from-literal=y=two",
    ]);
    assert_eq!(
        entries("configmap/owned"),
        [(
            "kubectl-create Update".to_string(),
            r#"{"f:data":{"f:x":{},"f:y":{}}}"#.to_string()
        )]
    );
    // kubectl edit (its editor a sed script) changes x: x moves to kubectl-edit.
    let out = s
        .kubectl_cmd(&["edit", "configmap", "owned"])
        .env("KUBE_EDITOR", "sed -i s/one/edited/")
        .output()
        .expect("kubectl edit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        entries("configmap/owned"),
        [
            (
                "kubectl-create Update".to_string(),
                r#"{"f:data":{"f:y":{}}}"#.to_string()
            ),
            (
                "kubectl-edit Update".to_string(),
                r#"{"f:data":{"f:x":{}}}"#.to_string()
            ),
        ]
    );
    // An apply that changes x conflicts with the editor, in upstream's words.
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owned}\ndata: {x: applied}\n";
    let out = s.kubectl_stdin(&["apply", "--server-side", "-f", "-"], manifest);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(
            r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using v1: .data.x"#
        ),
        "{err}"
    );
    // Forced, the applier takes x; the editor's entry, left with nothing, goes.
    stdin_ok(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        manifest,
    );
    assert_eq!(
        entries("configmap/owned"),
        [
            (
                "kubectl-create Update".to_string(),
                r#"{"f:data":{"f:y":{}}}"#.to_string()
            ),
            (
                "kubectl Apply".to_string(),
                r#"{"f:data":{"f:x":{}}}"#.to_string()
            ),
        ]
    );
    // The same value applied by a second applier is shared: the first leaving it out removes
    // nothing; when the second leaves it out too, nobody owns it and it goes.
    let second = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owned}\ndata: {x: applied}\n";
    stdin_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=second",
            "-f",
            "-",
        ],
        second,
    );
    let empty = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owned}\n";
    stdin_ok(&["apply", "--server-side", "-f", "-"], empty);
    let data = || s.kubectl_ok(&["get", "configmap", "owned", "-o", "jsonpath={.data}"]);
    assert_eq!(data(), r#"{"x":"applied","y":"two"}"#);
    stdin_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=second",
            "-f",
            "-",
        ],
        empty,
    );
    assert_eq!(data(), r#"{"y":"two"}"#);

    // Client-side apply patches as kubectl-client-side-apply.
    stdin_ok(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: csa}\ndata: {k: v}\n",
    );
    stdin_ok(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: csa}\ndata: {k: w}\n",
    );
    let managers: Vec<String> = entries("configmap/csa")
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    assert_eq!(managers, ["kubectl-client-side-apply Update"]);

    // Subresources: `kubectl scale` updates through /scale (manager from kubectl's user agent),
    // an apply on /status records `subresource: status`.
    s.kubectl_ok(&[
        "create",
        "deployment",
        "owned",
        "--image=nginx",
        "--replicas=0",
    ]);
    s.kubectl_ok(&["scale", "deployment", "owned", "--replicas=2"]);
    let found = entries("deployment/owned");
    let scale = found.iter().find(|(m, _)| m == "kubectl Update scale");
    assert_eq!(
        scale.map(|(_, f)| f.as_str()),
        Some(r#"{"f:spec":{"f:replicas":{}}}"#),
        "{found:?}"
    );
    s.kubectl_ok(&["delete", "deployment", "owned"]);
    // A ClusterIP Service's status is nobody else's.
    s.kubectl_ok(&["create", "service", "clusterip", "owned", "--tcp=80:80"]);
    stdin_ok(
        &["apply", "--server-side", "--subresource=status", "--field-manager=prober", "-f", "-"],
        "apiVersion: v1\nkind: Service\nmetadata: {name: owned}\nstatus: {loadBalancer: {ingress: [{ip: 192.0.2.7}]}}\n",
    );
    let found = entries("service/owned");
    let status = found.iter().find(|(m, _)| m == "prober Apply status");
    assert_eq!(
        status.map(|(_, f)| f.as_str()),
        Some(r#"{"f:status":{"f:loadBalancer":{"f:ingress":{}}}}"#),
        "{found:?}"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "service",
            "owned",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}"
        ]),
        "192.0.2.7"
    );
    s.kubectl_ok(&["delete", "service", "owned"]);
    s.kubectl_ok(&["delete", "configmap", "owned", "csa"]);
}

/// storage.k8s.io and node.k8s.io through kubectl: StorageClasses with upstream's columns and
/// immutable provisioning fields, DefaultStorageClass admission for claims, CSIDriver defaults,
/// RuntimeClasses with a validated handler, all in `kubectl api-resources`.
fn storage_and_runtime_classes(s: &ServerProcess) {
    let apply = |yaml: &str| s.kubectl_stdin(&["apply", "-f", "-"], yaml);
    let out = apply(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: fast\n  annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}\nprovisioner: example.com/fast\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = s.kubectl_ok(&["get", "sc"]);
    for want in [
        "PROVISIONER",
        "RECLAIMPOLICY",
        "VOLUMEBINDINGMODE",
        "fast (default)",
        "example.com/fast",
        "Delete",
        "Immediate",
    ] {
        assert!(table.contains(want), "{want} in {table}");
    }
    let err = s.kubectl_err(&[
        "patch",
        "sc",
        "fast",
        "-p",
        r#"{"provisioner":"example.com/other"}"#,
    ]);
    assert!(
        err.contains("updates to provisioner are forbidden"),
        "{err}"
    );

    let claim = |name: &str, class: &str| {
        format!("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n  {class}accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: 1Gi}}}}\n")
    };
    assert!(apply(&claim("data", "")).status.success());
    let class = s.kubectl_ok(&[
        "get",
        "pvc",
        "data",
        "-o",
        "jsonpath={.spec.storageClassName}",
    ]);
    assert_eq!(
        class, "fast",
        "the default class fills in a claim without one"
    );
    assert!(apply(&claim("static", "storageClassName: \"\"\n  "))
        .status
        .success());
    let class = s.kubectl_ok(&[
        "get",
        "pvc",
        "static",
        "-o",
        "jsonpath={.spec.storageClassName}",
    ]);
    assert_eq!(class, "", "an explicit empty class asks for none");

    assert!(apply("apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata: {name: csi.example.com}\nspec: {}\n").status.success());
    let attach = s.kubectl_ok(&[
        "get",
        "csidriver",
        "csi.example.com",
        "-o",
        "jsonpath={.spec.attachRequired}/{.spec.fsGroupPolicy}",
    ]);
    assert_eq!(attach, "true/ReadWriteOnceWithFSType");

    assert!(apply(
        "apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: skiff}\nhandler: skiff\n"
    )
    .status
    .success());
    let table = s.kubectl_ok(&["get", "runtimeclass"]);
    assert!(
        table.contains("HANDLER") && table.contains("skiff"),
        "{table}"
    );
    let out = apply("apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata: {name: bad}\nhandler: Not_A_Label\n");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("handler: Invalid value"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let resources = s.kubectl_ok(&["api-resources", "--api-group=storage.k8s.io"]);
    for want in [
        "storageclasses",
        "sc",
        "csidrivers",
        "csinodes",
        "volumeattachments",
    ] {
        assert!(resources.contains(want), "{want} in {resources}");
    }
    // ReplicationControllers: the selector comes from the template, scale works through /scale.
    assert!(apply("apiVersion: v1\nkind: ReplicationController\nmetadata: {name: legacy}\nspec:\n  replicas: 2\n  template:\n    metadata: {labels: {app: legacy}}\n    spec: {containers: [{name: c, image: busybox}]}\n").status.success());
    let selector = s.kubectl_ok(&[
        "get",
        "rc",
        "legacy",
        "-o",
        "jsonpath={.spec.selector.app}/{.metadata.labels.app}",
    ]);
    assert_eq!(selector, "legacy/legacy");
    s.kubectl_ok(&["scale", "rc", "legacy", "--replicas=4"]);
    let table = s.kubectl_ok(&["get", "rc", "legacy"]);
    assert!(
        table.contains("DESIRED") && table.contains("legacy   4"),
        "{table}"
    );
    let out = apply("apiVersion: v1\nkind: ReplicationController\nmetadata: {name: mismatched}\nspec:\n  selector: {app: a}\n  template:\n    metadata: {labels: {app: b}}\n    spec: {containers: [{name: c, image: busybox}]}\n");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("`selector` does not match template `labels`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.kubectl_ok(&["delete", "rc", "legacy"]);
    s.kubectl_ok(&["delete", "pvc", "data", "static"]);
    s.kubectl_ok(&["delete", "sc", "fast"]);
    s.kubectl_ok(&["delete", "csidriver", "csi.example.com"]);
    s.kubectl_ok(&["delete", "runtimeclass", "skiff"]);
}

/// The ClusterIP allocator's state as upstream keeps it (an IPAddress per ClusterIP, the
/// `kubernetes` ServiceCIDR), the legacy `bindings` collection, and `kubectl auth whoami`.
fn allocator_bindings_and_whoami(s: &ServerProcess) {
    let apply = |yaml: &str| s.kubectl_stdin(&["apply", "-f", "-"], yaml);
    let cidrs = s.kubectl_ok(&["get", "servicecidrs"]);
    assert!(
        cidrs.contains("CIDRS") && cidrs.contains("kubernetes") && cidrs.contains("10.96.0.0/12"),
        "{cidrs}"
    );
    let ready = s.kubectl_ok(&[
        "get",
        "servicecidr",
        "kubernetes",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    assert_eq!(ready, "True");
    let kubernetes = s.kubectl_ok(&["get", "ipaddress", "10.96.0.1"]);
    assert!(
        kubernetes.contains("PARENTREF") && kubernetes.contains("services/default/kubernetes"),
        "{kubernetes}"
    );

    assert!(apply("apiVersion: v1\nkind: Service\nmetadata: {name: held}\nspec:\n  ports: [{port: 80}]\n  selector: {app: held}\n").status.success());
    let ip = s.kubectl_ok(&["get", "svc", "held", "-o", "jsonpath={.spec.clusterIP}"]);
    let parent = s.kubectl_ok(&[
        "get",
        "ip",
        &ip,
        "-o",
        "jsonpath={.spec.parentRef.resource}/{.spec.parentRef.namespace}/{.spec.parentRef.name}",
    ]);
    assert_eq!(parent, "services/default/held");
    let err = s.kubectl_err(&[
        "patch",
        "ip",
        &ip,
        "-p",
        r#"{"spec":{"parentRef":{"name":"other"}}}"#,
    ]);
    assert!(
        err.contains("spec.parentRef: Invalid value") && err.contains("field is immutable"),
        "{err}"
    );
    s.kubectl_ok(&["delete", "svc", "held"]);
    let gone = s.kubectl(&["get", "ip", &ip]);
    assert!(
        !gone.status.success(),
        "the Service's IPAddress goes with it"
    );

    let out = apply("apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: extra}\nspec: {cidrs: [10.100.0.1/24]}\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spec.cidrs[0]: Invalid value: \"10.100.0.1/24\": must be in canonical form (\"10.100.0.0/24\")"), "{err}");
    let out = apply("apiVersion: networking.k8s.io/v1\nkind: IPAddress\nmetadata: {name: 010.1.1.1}\nspec: {parentRef: {resource: services, name: x}}\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must be a valid IP address"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A Binding posted to the legacy collection binds the pod it names.
    assert!(apply("apiVersion: v1\nkind: Pod\nmetadata: {name: unbound}\nspec:\n  schedulerName: nobody\n  containers: [{name: c, image: busybox}]\n").status.success());
    // kubectl's client-side validation of a create-only kind (no patch operation in the v3
    // document) falls back to /openapi/v2, served in gnostic's protobuf.
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"unbound"},"target":{"kind":"Node","name":"node-a"}}"#,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let node = s.kubectl_ok(&["get", "pod", "unbound", "-o", "jsonpath={.spec.nodeName}"]);
    assert_eq!(node, "node-a");
    s.kubectl_ok(&["delete", "pod", "unbound", "--grace-period=0", "--force"]);

    // A page says how many items follow it when nothing filters the list (as upstream).
    let total = s.kubectl_ok(&["get", "ns", "-o", "name"]).lines().count() as u64;
    let page: serde_json::Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "--raw", "/api/v1/namespaces?limit=1"]))
            .expect("list");
    assert_eq!(
        page["metadata"]["remainingItemCount"],
        serde_json::json!(total - 1),
        "{page}"
    );
    let filtered: serde_json::Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces?limit=1&labelSelector=kubernetes.io/metadata.name",
    ]))
    .expect("list");
    assert!(
        filtered["metadata"].get("remainingItemCount").is_none(),
        "{filtered}"
    );

    // A review has no table: asking for one is 406, as upstream's default table convertor.
    let out = std::process::Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "-X", "POST", "--cacert"])
        .arg(s.ca())
        .args(["-H", &format!("Authorization: Bearer {}", s.token())])
        .args(["-H", "Content-Type: application/json"])
        .args(["-H", "Accept: application/json;as=Table;v=v1;g=meta.k8s.io"])
        .args(["--data", r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{"nonResourceAttributes":{"path":"/","verb":"get"}}}"#])
        .arg(format!("{}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", s.url()))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("\n406") && text.contains("does not support being converted to a Table"),
        "{text}"
    );

    let whoami = s.kubectl_ok(&["auth", "whoami"]);
    assert!(
        whoami.contains("Username") && whoami.contains("system:masters"),
        "{whoami}"
    );
}

const DEVICE_CLASS: &str = r#"
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: gpu.example.com}
spec:
  selectors:
  - cel: {expression: 'device.driver == "gpu.example.com"'}
"#;

const RESOURCE_SLICE: &str = r#"
apiVersion: resource.k8s.io/v1
kind: ResourceSlice
metadata: {name: node-1-gpu}
spec:
  driver: gpu.example.com
  nodeName: node-1
  pool: {name: node-1, generation: 1, resourceSliceCount: 1}
  devices:
  - name: gpu-0
    attributes:
      model: {string: a100}
"#;

fn gpu_claim(name: &str, request: &str, class: &str) -> String {
    format!(
        "apiVersion: resource.k8s.io/v1\nkind: ResourceClaim\nmetadata: {{name: {name}}}\nspec:\n  devices:\n    requests:\n    - name: {request}\n      exactly: {{deviceClassName: {class}}}\n"
    )
}

const CLAIM_TEMPLATE: &str = r#"
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: gpu-template}
spec:
  spec:
    devices:
      requests:
      - name: gpu
        exactly: {deviceClassName: gpu.example.com, count: 2}
"#;

const DEVICE_TAINT_RULE: &str = r#"
apiVersion: resource.k8s.io/v1
kind: DeviceTaintRule
metadata: {name: gpu-0-unhealthy}
spec:
  deviceSelector: {driver: gpu.example.com, pool: node-1, device: gpu-0}
  taint: {key: example.com/unhealthy, value: "true", effect: NoSchedule}
"#;

const VOLUME_ATTRIBUTES_CLASS: &str = r#"
apiVersion: storage.k8s.io/v1
kind: VolumeAttributesClass
metadata: {name: gold}
driverName: csi.example.com
parameters: {iops: "5000"}
"#;

const STORAGE_CAPACITY: &str = r#"
apiVersion: storage.k8s.io/v1
kind: CSIStorageCapacity
metadata: {name: csisc-fast-zone-a}
storageClassName: fast
capacity: 100Gi
nodeTopology:
  matchLabels: {topology.kubernetes.io/zone: zone-a}
"#;

/// What kube-scheduler and kube-controller-manager 1.37 watch beyond the core kinds, through
/// kubectl: resource.k8s.io/v1 (DeviceClass, ResourceSlice with its field selectors,
/// ResourceClaim whose STATE follows its status and whose spec never changes,
/// ResourceClaimTemplate, DeviceTaintRule) and storage.k8s.io's CSIStorageCapacity and
/// VolumeAttributesClass, each with upstream's columns and messages, in `api-resources`, deleted.
fn dynamic_resources(s: &ServerProcess) {
    let apply = |yaml: &str| s.kubectl_stdin(&["apply", "-f", "-"], yaml);
    let applied = |yaml: &str| {
        let out = apply(yaml);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let shows = |args: &[&str], wants: &[&str]| {
        let table = s.kubectl_ok(args);
        for want in wants {
            assert!(table.contains(want), "{want} in {table}");
        }
        table
    };

    applied(DEVICE_CLASS);
    let table = shows(
        &["get", "deviceclasses"],
        &["NAME", "AGE", "gpu.example.com"],
    );
    assert!(!table.contains("CREATED AT"), "{table}");

    applied(RESOURCE_SLICE);
    shows(
        &["get", "resourceslices"],
        &[
            "NODE",
            "DRIVER",
            "POOL",
            "node-1-gpu",
            "node-1",
            "gpu.example.com",
        ],
    );
    let names = s.kubectl_ok(&[
        "get",
        "resourceslices",
        "--field-selector",
        "spec.nodeName=node-1,spec.driver=gpu.example.com,spec.pool.name=node-1",
        "-o",
        "name",
    ]);
    assert_eq!(names.trim(), "resourceslice.resource.k8s.io/node-1-gpu");
    let none = s.kubectl_ok(&[
        "get",
        "resourceslices",
        "--field-selector",
        "spec.nodeName=node-2",
        "-o",
        "name",
    ]);
    assert_eq!(none.trim(), "");
    let generation = s.kubectl_ok(&[
        "get",
        "resourceslice",
        "node-1-gpu",
        "-o",
        "jsonpath={.metadata.generation}",
    ]);
    assert_eq!(generation, "1");

    applied(&gpu_claim("gpu-claim", "gpu", "gpu.example.com"));
    shows(
        &["get", "resourceclaims"],
        &["NAME", "STATE", "AGE", "gpu-claim", "pending"],
    );
    let defaults = s.kubectl_ok(&[
        "get",
        "resourceclaim",
        "gpu-claim",
        "-o",
        "jsonpath={.spec.devices.requests[0].exactly.allocationMode}/{.spec.devices.requests[0].exactly.count}",
    ]);
    assert_eq!(defaults, "ExactCount/1");
    s.kubectl_ok(&[
        "patch",
        "resourceclaim",
        "gpu-claim",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"allocation":{"devices":{"results":[{"request":"gpu","driver":"gpu.example.com","pool":"node-1","device":"gpu-0"}]}},"reservedFor":[{"resource":"pods","name":"trainer","uid":"7f9c2a4e-1b3d-4e5f-8a6b-0c1d2e3f4a5b"}]}}"#,
    ]);
    shows(
        &["get", "resourceclaims"],
        &["gpu-claim", "allocated,reserved"],
    );
    let out = apply(&gpu_claim("gpu-claim", "gpu", "other.example.com"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the spec is immutable");
    assert!(
        err.contains(r#"The ResourceClaim "gpu-claim" is invalid: spec: Invalid value: "#)
            && err.contains("field is immutable"),
        "{err}"
    );
    let out = apply(&gpu_claim("bad-claim", "GPU_0", "gpu.example.com"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"spec.devices.requests[0].name: Invalid value: "GPU_0": a lowercase RFC 1123 label must consist of lower case alphanumeric characters"#),
        "{err}"
    );

    applied(CLAIM_TEMPLATE);
    shows(
        &["get", "resourceclaimtemplates"],
        &["NAME", "AGE", "gpu-template"],
    );

    applied(DEVICE_TAINT_RULE);
    shows(
        &["get", "devicetaintrules"],
        &[
            "KEY",
            "VALUE",
            "EFFECT",
            "TIMEADDED",
            "gpu-0-unhealthy",
            "example.com/unhealthy",
            "NoSchedule",
        ],
    );

    applied(VOLUME_ATTRIBUTES_CLASS);
    shows(
        &["get", "vac"],
        &["NAME", "DRIVERNAME", "AGE", "gold", "csi.example.com"],
    );
    let err = s.kubectl_err(&[
        "patch",
        "vac",
        "gold",
        "--type=merge",
        "-p",
        r#"{"parameters":{"iops":"9000"}}"#,
    ]);
    assert!(
        err.contains("parameters: Forbidden: updates to parameters are forbidden."),
        "{err}"
    );
    applied(STORAGE_CAPACITY);
    // Upstream's CSIStorageCapacity storage prints with the generic convertor.
    shows(
        &["get", "csistoragecapacities"],
        &["NAME", "CREATED AT", "csisc-fast-zone-a"],
    );

    shows(
        &["api-resources", "--api-group=resource.k8s.io"],
        &[
            "deviceclasses",
            "resourceclaims",
            "resourceclaimtemplates",
            "resourceslices",
            "devicetaintrules",
            "resource.k8s.io/v1",
        ],
    );
    shows(
        &["api-resources", "--api-group=storage.k8s.io"],
        &["csistoragecapacities", "volumeattributesclasses", "vac"],
    );

    s.kubectl_ok(&["delete", "resourceclaim", "gpu-claim"]);
    s.kubectl_ok(&["delete", "resourceclaimtemplate", "gpu-template"]);
    s.kubectl_ok(&["delete", "devicetaintrule", "gpu-0-unhealthy"]);
    s.kubectl_ok(&["delete", "resourceslice", "node-1-gpu"]);
    s.kubectl_ok(&["delete", "deviceclass", "gpu.example.com"]);
    s.kubectl_ok(&["delete", "vac", "gold"]);
    s.kubectl_ok(&["delete", "csistoragecapacity", "csisc-fast-zone-a"]);
    let left = s.kubectl_ok(&[
        "get",
        "resourceclaims,resourceslices,deviceclasses",
        "-o",
        "name",
    ]);
    assert_eq!(left.trim(), "", "{left}");
}

/// A PEM CERTIFICATE REQUEST for `cn`, from openssl (a P-256 key, thrown away).
fn certificate_request(dir: &std::path::Path, cn: &str) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-subj", &format!("/CN={cn}"), "-keyout"])
        .arg(dir.join(format!("{cn}.key")))
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// autoscaling/v2, certificates.k8s.io, admissionregistration.k8s.io and
/// flowcontrol.apiserver.k8s.io through kubectl: an HPA with upstream's defaults and columns,
/// CertificateSigningRequests approved and denied through `/approval`, webhook configurations
/// and admission policies stored with their defaults, the bootstrap flow-control
/// configuration, all in `kubectl api-resources`.
fn autoscaling_certificates_admission_flowcontrol(s: &ServerProcess) {
    let apply = |yaml: &str| {
        let out = s.kubectl_stdin(&["apply", "-f", "-"], yaml);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let get = |args: &[&str]| s.kubectl_ok(args);

    // An HPA as `kubectl autoscale deployment web --min=2 --max=5 --cpu-percent=50` makes it
    // (kubectl 1.32's autoscale still writes autoscaling/v1, which is not served).
    apply("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 2\n  maxReplicas: 5\n  metrics:\n  - type: Resource\n    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}\n");
    let table = get(&["get", "hpa"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row[..7],
        [
            "web",
            "Deployment/web",
            "cpu:",
            "<unknown>/50%",
            "2",
            "5",
            "0"
        ],
        "{table}"
    );
    apply("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: plain}\nspec:\n  scaleTargetRef: {kind: Deployment, name: web}\n  maxReplicas: 3\n");
    assert_eq!(
        get(&["get", "hpa", "plain", "-o", "jsonpath={.spec.minReplicas}/{.spec.metrics[0].resource.target.averageUtilization}/{.metadata.generation}"]),
        "1/80/1"
    );
    s.kubectl_ok(&[
        "patch",
        "hpa",
        "plain",
        "--type=merge",
        "-p",
        r#"{"spec":{"maxReplicas":4}}"#,
    ]);
    assert_eq!(
        get(&[
            "get",
            "hpa",
            "plain",
            "-o",
            "jsonpath={.metadata.generation}"
        ]),
        "2"
    );
    let err = s.kubectl_err(&[
        "patch",
        "hpa",
        "plain",
        "--type=merge",
        "-p",
        r#"{"spec":{"minReplicas":6}}"#,
    ]);
    assert!(
        err.contains(
            "spec.maxReplicas: Invalid value: 4: must be greater than or equal to `minReplicas`"
        ),
        "{err}"
    );
    s.kubectl_ok(&["delete", "hpa", "web", "plain"]);

    // CertificateSigningRequests: the requester is who asked; approve and deny go through
    // /approval; Approved and Denied exclude each other.
    let csr = |name: &str| {
        let request = k8s_openapi::ByteString(certificate_request(s.dir.path(), name));
        serde_json::json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {"request": request, "signerName": "kubernetes.io/kube-apiserver-client",
                     "usages": ["client auth"], "username": "someone-else"}})
        .to_string()
    };
    apply(&csr("alice"));
    apply(&csr("bob"));
    let table = get(&["get", "csr"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "AGE",
            "SIGNERNAME",
            "REQUESTOR",
            "REQUESTEDDURATION",
            "CONDITION"
        ]
    );
    let alice: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("alice"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        [alice[2], alice[3], alice[4], alice[5]],
        [
            "kubernetes.io/kube-apiserver-client",
            "admin",
            "<none>",
            "Pending"
        ],
        "{table}"
    );
    assert_eq!(
        s.kubectl_ok(&["certificate", "approve", "alice"]).trim(),
        "certificatesigningrequest.certificates.k8s.io/alice approved"
    );
    assert_eq!(
        s.kubectl_ok(&["certificate", "deny", "bob"]).trim(),
        "certificatesigningrequest.certificates.k8s.io/bob denied"
    );
    // The controller manager's signer issues the approved request.
    let mut table = String::new();
    let condition = |table: &str, name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or_default()
            .to_string()
    };
    wait_until("alice's certificate to be issued", || {
        table = get(&["get", "csr"]);
        condition(&table, "alice") == "Approved,Issued"
    });
    assert_eq!(condition(&table, "bob"), "Denied", "{table}");
    assert_eq!(
        get(&[
            "get",
            "csr",
            "alice",
            "-o",
            "jsonpath={.status.conditions[0].reason}"
        ]),
        "KubectlApprove"
    );
    // kubectl refuses on its own unless forced; the server must refuse too.
    let err = s.kubectl_err(&["certificate", "approve", "bob"]);
    assert!(err.contains("is already Denied"), "{err}");
    let mut bob: serde_json::Value =
        serde_json::from_str(&s.kubectl_ok(&["get", "csr", "bob", "-o", "json"])).expect("csr");
    bob["status"]["conditions"]
        .as_array_mut()
        .expect("conditions")
        .push(serde_json::json!({"type": "Approved", "status": "True", "reason": "Sneaky"}));
    let out = s.kubectl_stdin(
        &[
            "replace",
            "--raw",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests/bob/approval",
            "-f",
            "-",
        ],
        &bob.to_string(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("Approved and Denied conditions are mutually exclusive"),
        "{err}"
    );
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {name: junk}\nspec: {request: aGVsbG8=, signerName: example.com/x, usages: [client auth]}\n",
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PEM block type must be CERTIFICATE REQUEST"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.kubectl_ok(&["delete", "csr", "alice", "bob"]);

    // Admission registration: stored with upstream's defaults (not enforced yet).
    apply("apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata: {name: pod-policy}\nwebhooks:\n- name: pods.policy.example.com\n  clientConfig:\n    service: {namespace: default, name: policy}\n  rules:\n  - {operations: [CREATE], apiGroups: [\"\"], apiVersions: [v1], resources: [pods]}\n  sideEffects: None\n  admissionReviewVersions: [v1]\n");
    let table = get(&["get", "validatingwebhookconfigurations"]);
    assert!(
        table.contains("WEBHOOKS")
            && table
                .lines()
                .any(|l| l.split_whitespace().take(2).eq(["pod-policy", "1"])),
        "{table}"
    );
    assert_eq!(
        get(&["get", "validatingwebhookconfiguration", "pod-policy", "-o",
              "jsonpath={.webhooks[0].failurePolicy}/{.webhooks[0].matchPolicy}/{.webhooks[0].timeoutSeconds}/{.webhooks[0].clientConfig.service.port}"]),
        "Fail/Equivalent/10/443"
    );
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata: {name: loose}\nwebhooks:\n- name: loose.example.com\n  clientConfig: {url: \"https://hooks.example.com/mutate\"}\n  admissionReviewVersions: [v1]\n",
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    apply("apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {name: replica-limit}\nspec:\n  matchConstraints:\n    resourceRules:\n    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}\n  validations:\n  - expression: object.spec.replicas <= 5\n");
    apply("apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {name: replica-limit}\nspec: {policyName: replica-limit, validationActions: [Deny]}\n");
    let table = get(&["get", "validatingadmissionpolicies"]);
    assert!(
        table.contains("VALIDATIONS")
            && table.lines().any(|l| l.split_whitespace().take(3).eq([
                "replica-limit",
                "1",
                "<unset>"
            ])),
        "{table}"
    );
    assert_eq!(
        get(&[
            "get",
            "validatingadmissionpolicy",
            "replica-limit",
            "-o",
            "jsonpath={.spec.failurePolicy}/{.spec.matchConstraints.matchPolicy}"
        ]),
        "Fail/Equivalent"
    );
    let table = get(&["get", "validatingadmissionpolicybindings"]);
    assert!(
        table.contains("POLICYNAME")
            && table.lines().any(|l| l.split_whitespace().take(3).eq([
                "replica-limit",
                "replica-limit",
                "<unset>"
            ])),
        "{table}"
    );
    s.kubectl_ok(&[
        "delete",
        "validatingadmissionpolicybinding",
        "replica-limit",
    ]);
    s.kubectl_ok(&["delete", "validatingadmissionpolicy", "replica-limit"]);
    s.kubectl_ok(&["delete", "validatingwebhookconfiguration", "pod-policy"]);

    // Flow control: the bootstrap configuration is there, and the mandatory specs are fixed.
    let table = get(&["get", "flowschemas"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "PRIORITYLEVEL",
            "MATCHINGPRECEDENCE",
            "DISTINGUISHERMETHOD",
            "AGE",
            "MISSINGPL"
        ]
    );
    let row = |table: &str, name: &str| -> Vec<String> {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing in:\n{table}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(row(&table, "exempt")[1..4], ["exempt", "1", "<none>"]);
    assert_eq!(
        row(&table, "catch-all")[1..4],
        ["catch-all", "10000", "ByUser"]
    );
    assert_eq!(
        row(&table, "global-default")[1..4],
        ["global-default", "9900", "ByUser"]
    );
    let table = get(&["get", "prioritylevelconfigurations"]);
    assert_eq!(row(&table, "exempt")[1..3], ["Exempt", "<none>"]);
    assert_eq!(
        row(&table, "catch-all")[1..6],
        ["Limited", "5", "<none>", "<none>", "<none>"]
    );
    let err = s.kubectl_err(&[
        "patch",
        "flowschema",
        "exempt",
        "--type=merge",
        "-p",
        r#"{"spec":{"matchingPrecedence":2}}"#,
    ]);
    assert!(
        err.contains("spec of 'exempt' must equal the fixed value"),
        "{err}"
    );

    let resources = get(&["api-resources"]);
    for (name, short) in [
        ("horizontalpodautoscalers", "hpa"),
        ("certificatesigningrequests", "csr"),
        ("validatingwebhookconfigurations", ""),
        ("mutatingwebhookconfigurations", ""),
        ("validatingadmissionpolicies", ""),
        ("validatingadmissionpolicybindings", ""),
        ("mutatingadmissionpolicies", ""),
        ("mutatingadmissionpolicybindings", ""),
        ("flowschemas", ""),
        ("prioritylevelconfigurations", ""),
    ] {
        let line = resources
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing in api-resources:\n{resources}"));
        assert!(line.contains(short), "{line}");
    }
}

#[test]
fn kubectl_against_skiff_server() {
    let s = ServerProcess::start();
    namespace_lifecycle(&s);
    workloads(&s);
    tooling(&s);
    watch(&s);
    server_side_apply(&s);
    update_managers(&s);
    storage_and_runtime_classes(&s);
    allocator_bindings_and_whoami(&s);
    dynamic_resources(&s);
    autoscaling_certificates_admission_flowcontrol(&s);
}

#[test]
fn kubectl_against_real_etcd() {
    let etcd = EtcdProcess::start();
    // The namespace controller runs in `skiff server`; on real etcd this test covers the API.
    // No ServiceAccount controller makes `default` accounts here, so pods are admitted without
    // the ServiceAccount plugin (as on an upstream kube-apiserver with no controller manager).
    let s = ServerProcess::start_apiserver_with(
        &etcd.endpoint,
        None,
        &["--disable-admission-plugins=ServiceAccount"],
    );
    let out = s.kubectl_ok(&["get", "ns"]);
    assert!(out.contains("kube-node-lease"), "{out}");
    workloads(&s);
    tooling(&s);
    watch(&s);
}

/// The store's history is compacted as kube-apiserver compacts it (`--etcd-compaction-interval`,
/// here 1 s instead of 5 min), and a paged list whose continue token outlived its revision gets
/// upstream's 410 with a token that goes on at the latest revision — the conformance suite's
/// "continue listing from the last key if the original version has been compacted away".
#[test]
fn paged_lists_across_compaction() {
    let s = ServerProcess::start_with(&["--etcd-compaction-interval=1s"]);
    s.kubectl_ok(&["create", "ns", "paging"]);
    for i in 0..12 {
        s.kubectl_ok(&[
            "-n",
            "paging",
            "create",
            "cm",
            &format!("cm-{i:02}"),
            "--from-literal=a=b",
        ]);
    }
    let list = |cont: &str| {
        let path = format!("/api/v1/namespaces/paging/configmaps?limit=4&continue={cont}");
        s.kubectl(&["get", "--raw", &path])
    };
    let first: serde_json::Value = serde_json::from_str(&s.kubectl_ok(&[
        "get",
        "--raw",
        "/api/v1/namespaces/paging/configmaps?limit=4",
    ]))
    .unwrap();
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    let first_rv = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // Writes elsewhere move the revision on; two compaction rounds later the token's revision
    // is gone.
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        s.kubectl_ok(&[
            "-n",
            "paging",
            "annotate",
            "cm",
            "cm-00",
            "--overwrite",
            &format!("t={:?}", Instant::now()),
        ]);
        let out = list(&token);
        if !out.status.success() {
            break String::from_utf8_lossy(&out.stderr).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the token's revision was never compacted"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        refused.contains(
            "The provided continue parameter is too old to display a consistent list result"
        ) && refused.contains("(Expired)"),
        "{refused}"
    );
    // The 410's own continue token (kubectl prints only the message: read the Status raw).
    let (code, body) = s.curl(
        "GET",
        &format!("/api/v1/namespaces/paging/configmaps?limit=4&continue={token}"),
        "application/json",
        b"",
    );
    assert_eq!(code, 410, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["code"], 410, "{status}");
    let inconsistent = status["metadata"]["continue"]
        .as_str()
        .expect("a continue token");
    let next: serde_json::Value =
        serde_json::from_str(&String::from_utf8_lossy(&list(inconsistent).stdout)).unwrap();
    let names: Vec<&str> = next["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cm-04", "cm-05", "cm-06", "cm-07"]);
    assert_ne!(
        next["metadata"]["resourceVersion"].as_str().unwrap(),
        first_rv
    );
}
