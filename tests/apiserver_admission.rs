//! The admission plugins LimitRanger and PodSecurity driven by the real kubectl against
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

#[test]
fn admission_plugins_with_kubectl() {
    let s = ServerProcess::start();
    pod_security(&s);
    limit_ranger(&s);
}
