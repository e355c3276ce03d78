//! The admission plugins LimitRanger, PodSecurity and ResourceQuota (with the controller
//! manager's quota controller) driven by the real kubectl against
//! `skiff server`: upstream's refusals, warnings and defaults, word for word. Pods are created
//! as the admin (system:masters): Pod Security applies to everyone, as upstream.

mod common;

use std::process::Output;

use common::ServerProcess;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `kubectl create -f -` of `manifest` in `namespace`, expected to succeed; answers stderr
/// (where kubectl prints the server's warnings).
fn create_ok(s: &ServerProcess, namespace: &str, manifest: &str) -> String {
    let out = s.kubectl_stdin(&["create", "-n", namespace, "-f", "-"], manifest);
    assert!(
        out.status.success(),
        "create failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    stderr(&out)
}

/// `kubectl create -f -` expected to be refused; answers stderr.
fn create_err(s: &ServerProcess, namespace: &str, manifest: &str) -> String {
    let out = s.kubectl_stdin(&["create", "-n", namespace, "-f", "-"], manifest);
    assert!(
        !out.status.success(),
        "create unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr(&out)
}

const ROOT_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: root}
spec:
  containers:
  - name: c
    image: busybox
    securityContext: {privileged: true, runAsUser: 0}
"#;

const COMPLIANT_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: compliant}
spec:
  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: c
    image: busybox
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
"#;

const PRIVILEGED_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: privileged}
spec:
  containers:
  - name: c
    image: busybox
    securityContext: {privileged: true}
"#;

const HOST_NETWORK_DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      hostNetwork: true
      containers:
      - name: nginx
        image: nginx:1.25
"#;

/// The restricted level's reasons for a pod with one plain container, as upstream lists them
/// when checking existing pods.
const RESTRICTED_REASONS: &str =
    "allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile";

fn pod_security(s: &ServerProcess) {
    s.kubectl_ok(&["create", "namespace", "psa"]);
    // A pod from before the namespace is labelled.
    let out = s.kubectl(&["run", "legacy", "--image=busybox", "-n", "psa"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Warning"), "{}", stderr(&out));

    // Labelling the namespace names the existing pods the new level refuses.
    let out = s.kubectl(&[
        "label",
        "namespace",
        "psa",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(r#"Warning: existing pods in namespace "psa" violate the new PodSecurity enforce level "restricted:latest""#),
        "{err}"
    );
    assert!(
        err.contains(&format!("Warning: legacy: {RESTRICTED_REASONS}")),
        "{err}"
    );

    // A root, privileged pod is refused with upstream's message.
    let err = create_err(s, "psa", ROOT_POD);
    assert!(
        err.contains(r#"Error from server (Forbidden): error when creating "STDIN": pods "root" is forbidden: violates PodSecurity "restricted:latest": privileged (container "c" must not set securityContext.privileged=true), allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), runAsUser=0 (container "c" must not set runAsUser=0), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#),
        "{err}"
    );
    let err = s.kubectl_err(&["get", "pod", "root", "-n", "psa"]);
    assert!(err.contains("NotFound"), "{err}");
    // `kubectl run` gets the same answer.
    let err = s.kubectl_err(&["run", "plain", "--image=busybox", "-n", "psa"]);
    assert!(
        err.contains(r#"pods "plain" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "plain" must set securityContext.allowPrivilegeEscalation=false)"#),
        "{err}"
    );

    // A compliant pod is created without a warning.
    let err = create_ok(s, "psa", COMPLIANT_POD);
    assert!(!err.contains("Warning"), "{err}");

    // A pod update that changes an image is checked again; one that changes labels is not.
    s.kubectl_ok(&["label", "pod", "legacy", "-n", "psa", "tier=old"]);
    let err = s.kubectl_err(&[
        "set",
        "image",
        "pod/legacy",
        "legacy=busybox:1.36",
        "-n",
        "psa",
    ]);
    assert!(
        err.contains(r#"pods "legacy" is forbidden: violates PodSecurity "restricted:latest""#),
        "{err}"
    );

    // A workload's template is only warned about, at the enforce level (warn follows it).
    let err = create_ok(s, "psa", HOST_NETWORK_DEPLOYMENT);
    assert!(
        err.contains(r#"Warning: would violate PodSecurity "restricted:latest": host namespaces (hostNetwork=true), allowPrivilegeEscalation != false (container "nginx" must set securityContext.allowPrivilegeEscalation=false)"#),
        "{err}"
    );
    s.kubectl_ok(&["get", "deployment", "web", "-n", "psa"]);

    // warn=baseline: the pod is created, with upstream's warning.
    s.kubectl_ok(&["create", "namespace", "psa-warn"]);
    let out = s.kubectl(&[
        "label",
        "namespace",
        "psa-warn",
        "pod-security.kubernetes.io/warn=baseline",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("Warning"), "{}", stderr(&out));
    let err = create_ok(s, "psa-warn", PRIVILEGED_POD);
    assert!(
        err.contains(r#"Warning: would violate PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)"#),
        "{err}"
    );
    s.kubectl_ok(&["get", "pod", "privileged", "-n", "psa-warn"]);

    // Invalid label values are refused, on update and on create.
    let err = s.kubectl_err(&[
        "label",
        "namespace",
        "psa-warn",
        "pod-security.kubernetes.io/enforce=strict",
    ]);
    assert!(
        err.contains(r#"metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, baseline, restricted"#),
        "{err}"
    );
    let out = s.kubectl_stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: psa-bad\n  labels: {pod-security.kubernetes.io/enforce-version: \"1.30\"}\n",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"Namespace "psa-bad" is invalid: metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: "1.30": must be "latest" or "v1.x""#),
        "{}",
        stderr(&out)
    );

    // A pinned version: restricted:v1.22 has no runAsUser rule (it arrived in 1.23), so a pod
    // running as root by runAsUser alone passes.
    s.kubectl_ok(&["create", "namespace", "psa-pinned"]);
    s.kubectl_ok(&[
        "label",
        "namespace",
        "psa-pinned",
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=v1.22",
    ]);
    let err = create_ok(
        s,
        "psa-pinned",
        &COMPLIANT_POD.replace("runAsUser: 1000", "runAsUser: 0"),
    );
    assert!(!err.contains("Warning"), "{err}");
}

const LIMIT_RANGE: &str = r#"
apiVersion: v1
kind: LimitRange
metadata: {name: limits}
spec:
  limits:
  - type: Container
    default: {cpu: 500m, memory: 256Mi}
    defaultRequest: {cpu: 100m, memory: 128Mi}
    max: {cpu: "1", memory: 512Mi}
  - type: PersistentVolumeClaim
    max: {storage: 1Gi}
"#;

const BIG_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: big}
spec:
  containers:
  - name: c
    image: busybox
    resources:
      limits: {cpu: "2", memory: 1Gi}
"#;

const BIG_CLAIM: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: big}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests: {storage: 2Gi}
"#;

fn limit_ranger(s: &ServerProcess) {
    s.kubectl_ok(&["create", "namespace", "lr"]);
    create_ok(s, "lr", LIMIT_RANGE);
    // A container without resources gets the defaults, and the annotation says so.
    s.kubectl_ok(&["run", "plain", "--image=busybox", "-n", "lr"]);
    let got = s.kubectl_ok(&[
        "get",
        "pod",
        "plain",
        "-n",
        "lr",
        "-o",
        "jsonpath={.spec.containers[0].resources.limits.cpu} {.spec.containers[0].resources.limits.memory} {.spec.containers[0].resources.requests.cpu} {.spec.containers[0].resources.requests.memory} {.status.qosClass}",
    ]);
    assert_eq!(got, "500m 256Mi 100m 128Mi Burstable");
    let annotation = s.kubectl_ok(&[
        "get",
        "pod",
        "plain",
        "-n",
        "lr",
        "-o",
        r"jsonpath={.metadata.annotations.kubernetes\.io/limit-ranger}",
    ]);
    assert_eq!(
        annotation,
        "LimitRanger plugin set: cpu, memory request for container plain; cpu, memory limit for container plain"
    );
    // Limits beyond the maximum are refused with upstream's message.
    let err = create_err(s, "lr", BIG_POD);
    assert!(
        err.contains(r#"pods "big" is forbidden: [maximum cpu usage per Container is 1, but limit is 2, maximum memory usage per Container is 512Mi, but limit is 1Gi]"#),
        "{err}"
    );
    let err = create_err(s, "lr", BIG_CLAIM);
    assert!(
        err.contains(r#"persistentvolumeclaims "big" is forbidden: maximum storage usage per PersistentVolumeClaim is 1Gi, but request is 2Gi"#),
        "{err}"
    );
    create_ok(s, "lr", &BIG_CLAIM.replace("2Gi", "1Gi"));
}

fn quota_pod(name: &str, cpu: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
  - name: c
    image: busybox
    resources:
      requests: {{cpu: {cpu}}}
      limits: {{memory: 256Mi}}
"#
    )
}

/// Waits until the quota controller has written the quota's status (before that upstream's
/// admission does not apply it) and answers `status.used.<resource>`.
fn used(s: &ServerProcess, namespace: &str, quota: &str, resource: &str) -> String {
    let path = format!("jsonpath={{.status.used.{}}}", resource.replace('.', "\\."));
    s.kubectl_ok(&["get", "resourcequota", quota, "-n", namespace, "-o", &path])
}

fn wait_used(s: &ServerProcess, namespace: &str, quota: &str, resource: &str, want: &str) {
    common::wait_until(&format!("quota {quota} {resource} used {want}"), || {
        used(s, namespace, quota, resource) == want
    });
}

fn resource_quota(s: &ServerProcess) {
    s.kubectl_ok(&["create", "namespace", "rq"]);
    s.kubectl_ok(&[
        "create",
        "quota",
        "compute",
        "-n",
        "rq",
        "--hard=pods=2,requests.cpu=1,limits.memory=1Gi",
    ]);
    wait_used(s, "rq", "compute", "pods", "0");
    // A quota on cpu and memory makes every container state them.
    let err = s.kubectl_err(&["run", "bare", "--image=busybox", "-n", "rq"]);
    assert!(
        err.contains(r#"pods "bare" is forbidden: failed quota: compute: must specify limits.memory for: bare; requests.cpu for: bare"#),
        "{err}"
    );
    create_ok(s, "rq", &quota_pod("p1", "400m"));
    create_ok(s, "rq", &quota_pod("p2", "400m"));
    // Charged with the pods, at once: no controller round trip.
    assert_eq!(used(s, "rq", "compute", "pods"), "2");
    assert_eq!(used(s, "rq", "compute", "requests.cpu"), "800m");
    assert_eq!(used(s, "rq", "compute", "limits.memory"), "512Mi");
    let err = create_err(s, "rq", &quota_pod("p3", "400m"));
    assert!(
        err.contains(r#"pods "p3" is forbidden: exceeded quota: compute, requested: pods=1,requests.cpu=400m, used: pods=2,requests.cpu=800m, limited: pods=2,requests.cpu=1"#),
        "{err}"
    );
    assert!(s
        .kubectl_err(&["get", "pod", "p3", "-n", "rq"])
        .contains("NotFound"));
    // kubectl's columns and describe table.
    let table = s.kubectl_ok(&["get", "quota", "-n", "rq"]);
    assert!(
        table.contains("pods: 2/2, requests.cpu: 800m/1")
            && table.contains("limits.memory: 512Mi/1Gi"),
        "{table}"
    );
    let described = s.kubectl_ok(&["describe", "quota", "compute", "-n", "rq"]);
    let rows: Vec<Vec<&str>> = described
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for row in [
        ["pods", "2", "2"],
        ["requests.cpu", "800m", "1"],
        ["limits.memory", "512Mi", "1Gi"],
    ] {
        assert!(rows.iter().any(|r| r == &row), "{row:?} in\n{described}");
    }
    // Deleting a pod gives its share back (the controller recounts), and the next fits.
    s.kubectl_ok(&[
        "delete",
        "pod",
        "p1",
        "-n",
        "rq",
        "--grace-period=0",
        "--force",
    ]);
    wait_used(s, "rq", "compute", "pods", "1");
    assert_eq!(used(s, "rq", "compute", "requests.cpu"), "400m");
    create_ok(s, "rq", &quota_pod("p3", "400m"));
    // Raising the limit takes effect once the controller copies it to status.hard.
    s.kubectl_ok(&[
        "patch",
        "quota",
        "compute",
        "-n",
        "rq",
        "--type=merge",
        "-p",
        r#"{"spec":{"hard":{"pods":"3"}}}"#,
    ]);
    common::wait_until("status.hard.pods 3", || {
        s.kubectl_ok(&[
            "get",
            "quota",
            "compute",
            "-n",
            "rq",
            "-o",
            "jsonpath={.status.hard.pods}",
        ]) == "3"
    });
    create_ok(s, "rq", &quota_pod("p4", "100m"));

    // Object counts (the namespace already holds kube-root-ca.crt) and node ports.
    s.kubectl_ok(&["create", "namespace", "rq-count"]);
    common::wait_until("kube-root-ca.crt", || {
        s.kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", "rq-count"])
            .status
            .success()
    });
    s.kubectl_ok(&[
        "create",
        "quota",
        "objects",
        "-n",
        "rq-count",
        "--hard=count/configmaps=2,services.nodeports=1,services=5",
    ]);
    wait_used(s, "rq-count", "objects", "count/configmaps", "1");
    s.kubectl_ok(&["create", "configmap", "one", "-n", "rq-count"]);
    let err = s.kubectl_err(&["create", "configmap", "two", "-n", "rq-count"]);
    assert!(
        err.contains(r#"configmaps "two" is forbidden: exceeded quota: objects, requested: count/configmaps=1, used: count/configmaps=2, limited: count/configmaps=2"#),
        "{err}"
    );
    // A kind the controller does not watch from the start is given back as soon as it is
    // deleted too (a watch per kind a quota names), not at the 5-minute recount.
    s.kubectl_ok(&[
        "create",
        "quota",
        "apps",
        "-n",
        "rq-count",
        "--hard=count/deployments.apps=1",
    ]);
    wait_used(s, "rq-count", "apps", "count/deployments.apps", "0");
    let deployment = [
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "-n",
        "rq-count",
    ];
    s.kubectl_ok(&deployment);
    wait_used(s, "rq-count", "apps", "count/deployments.apps", "1");
    let err = s.kubectl_err(&[
        "create",
        "deployment",
        "web2",
        "--image=busybox",
        "-n",
        "rq-count",
    ]);
    assert!(err.contains("exceeded quota: apps"), "{err}");
    s.kubectl_ok(&["delete", "deployment", "web", "-n", "rq-count"]);
    wait_used(s, "rq-count", "apps", "count/deployments.apps", "0");
    s.kubectl_ok(&deployment);
    s.kubectl_ok(&[
        "create",
        "service",
        "nodeport",
        "web",
        "--tcp=80:80",
        "-n",
        "rq-count",
    ]);
    let err = s.kubectl_err(&[
        "create",
        "service",
        "nodeport",
        "web2",
        "--tcp=80:80",
        "-n",
        "rq-count",
    ]);
    assert!(
        err.contains("exceeded quota: objects, requested: services.nodeports=1, used: services.nodeports=1, limited: services.nodeports=1"),
        "{err}"
    );
    s.kubectl_ok(&[
        "create",
        "service",
        "clusterip",
        "inner",
        "--tcp=80:80",
        "-n",
        "rq-count",
    ]);
    // Turning a ClusterIP Service into a NodePort one is an update the quota checks too.
    let err = s.kubectl_err(&[
        "patch",
        "service",
        "inner",
        "-n",
        "rq-count",
        "--type=merge",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ]);
    assert!(err.contains("exceeded quota: objects"), "{err}");
    s.kubectl_ok(&["delete", "service", "web", "-n", "rq-count"]);
    wait_used(s, "rq-count", "objects", "services.nodeports", "0");
    s.kubectl_ok(&[
        "patch",
        "service",
        "inner",
        "-n",
        "rq-count",
        "--type=merge",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ]);

    // A scoped quota counts only the pods in its scope.
    s.kubectl_ok(&["create", "namespace", "rq-scope"]);
    s.kubectl_ok(&[
        "create",
        "quota",
        "best-effort",
        "-n",
        "rq-scope",
        "--hard=pods=1",
        "--scopes=BestEffort",
    ]);
    wait_used(s, "rq-scope", "best-effort", "pods", "0");
    s.kubectl_ok(&["run", "be1", "--image=busybox", "-n", "rq-scope"]);
    let err = s.kubectl_err(&["run", "be2", "--image=busybox", "-n", "rq-scope"]);
    assert!(
        err.contains(
            "exceeded quota: best-effort, requested: pods=1, used: pods=1, limited: pods=1"
        ),
        "{err}"
    );
    create_ok(s, "rq-scope", &quota_pod("burstable", "100m"));

    // A ReplicaSet's pods are charged one at a time though created concurrently: exactly the
    // quota's worth exist, and the controller says why the rest are missing.
    s.kubectl_ok(&["create", "namespace", "rq-burst"]);
    s.kubectl_ok(&[
        "create",
        "quota",
        "three",
        "-n",
        "rq-burst",
        "--hard=pods=3",
    ]);
    wait_used(s, "rq-burst", "three", "pods", "0");
    s.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--replicas=8",
        "-n",
        "rq-burst",
    ]);
    common::wait_until("a FailedCreate event naming the quota", || {
        s.kubectl_ok(&[
            "get",
            "events",
            "-n",
            "rq-burst",
            "--field-selector=reason=FailedCreate",
            "-o",
            "jsonpath={.items[*].message}",
        ])
        .contains("exceeded quota: three, requested: pods=1, used: pods=3, limited: pods=3")
    });
    let pods = s.kubectl_ok(&["get", "pods", "-n", "rq-burst", "-o", "name"]);
    assert_eq!(pods.lines().count(), 3, "{pods}");
    assert_eq!(used(s, "rq-burst", "three", "pods"), "3");
}

#[test]
fn admission_plugins_with_kubectl() {
    let s = ServerProcess::start();
    pod_security(&s);
    limit_ranger(&s);
    resource_quota(&s);
}
