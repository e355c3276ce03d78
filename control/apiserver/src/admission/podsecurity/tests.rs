//! The plugin's decisions: which writes are checked, refused or warned about, with upstream's
//! messages.

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;

/// The plugin's verdict and warnings (annotations are looked at in `audit_annotations`).
fn check_pod(
    config: &Config,
    subject: &Subject,
    namespace: Option<&Value>,
    pod: &Value,
    old: Option<&Value>,
) -> ApiResult<Vec<String>> {
    let mut out = Outcome::default();
    super::check_pod(config, subject, namespace, pod, old, &mut out).map(|()| out.warnings)
}

fn check_pod_controller(
    config: &Config,
    subject: &Subject,
    namespace: Option<&Value>,
    object: &Value,
) -> Vec<String> {
    let mut out = Outcome::default();
    super::check_pod_controller(config, subject, namespace, object, &mut out);
    out.warnings
}

fn namespace(labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns", "labels": labels}})
}

fn subject<'a>(group: &'a str, resource: &'a str, name: &'a str) -> Subject<'a> {
    Subject {
        group,
        resource,
        namespace: "ns",
        name,
        user: "admin",
    }
}

fn pod(name: &str, spec: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "ns"}, "spec": spec})
}

fn root_pod() -> Value {
    pod(
        "x",
        json!({"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]}),
    )
}

fn compliant_pod() -> Value {
    pod(
        "ok",
        json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "busybox", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
        }),
    )
}

#[test]
fn enforce_refuses_with_upstreams_message() {
    let config = Config::default();
    let ns = namespace(json!({"pod-security.kubernetes.io/enforce": "restricted"}));
    let err = check_pod(
        &config,
        &subject("", "pods", "x"),
        Some(&ns),
        &root_pod(),
        None,
    )
    .unwrap_err();
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        r#"pods "x" is forbidden: violates PodSecurity "restricted:latest": privileged (container "c" must not set securityContext.privileged=true), allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
    );
    let details = err.details.unwrap();
    assert_eq!(details.name.as_deref(), Some("x"));
    assert_eq!(details.kind.as_deref(), Some("pods"));
    assert_eq!(
        check_pod(
            &config,
            &subject("", "pods", "ok"),
            Some(&ns),
            &compliant_pod(),
            None
        )
        .unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn warn_answers_warnings_and_privileged_namespaces_pass() {
    let config = Config::default();
    let ns = namespace(json!({"pod-security.kubernetes.io/warn": "baseline"}));
    let warnings = check_pod(
        &config,
        &subject("", "pods", "x"),
        Some(&ns),
        &root_pod(),
        None,
    )
    .unwrap();
    assert_eq!(
        warnings,
        [
            r#"would violate PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)"#
        ]
    );
    // Enforce baseline, warn restricted at a version: the pod passes baseline and is warned
    // about restricted.
    let ns = namespace(json!({
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": "v1.24"}));
    let plain = pod(
        "p",
        json!({"containers": [{"name": "c", "image": "busybox"}]}),
    );
    let warnings = check_pod(&config, &subject("", "pods", "p"), Some(&ns), &plain, None).unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].starts_with(
        r#"would violate PodSecurity "restricted:v1.24": allowPrivilegeEscalation != false"#
    ));
    // No labels: privileged, nothing checked.
    let ns = namespace(json!({}));
    assert!(check_pod(
        &config,
        &subject("", "pods", "x"),
        Some(&ns),
        &root_pod(),
        None
    )
    .unwrap()
    .is_empty());
    // No namespace: upstream's internal error.
    let err = check_pod(&config, &subject("", "pods", "x"), None, &root_pod(), None).unwrap_err();
    assert_eq!(
        err.message,
        r#"Internal error occurred: failed to lookup namespace "ns""#
    );
}

#[test]
fn an_invalid_enforce_level_enforces_restricted() {
    let ns = namespace(json!({"pod-security.kubernetes.io/enforce": "bogus"}));
    let err = check_pod(
        &Config::default(),
        &subject("", "pods", "x"),
        Some(&ns),
        &root_pod(),
        None,
    )
    .unwrap_err();
    assert!(
        err.message
            .contains(r#"violates PodSecurity "restricted:latest""#),
        "{}",
        err.message
    );
}

#[test]
fn updates_are_checked_only_when_significant() {
    let config = Config::default();
    let ns = namespace(json!({"pod-security.kubernetes.io/enforce": "baseline"}));
    let old = root_pod();
    let mut relabelled = old.clone();
    relabelled["metadata"]["labels"] = json!({"a": "b"});
    assert!(check_pod(
        &config,
        &subject("", "pods", "x"),
        Some(&ns),
        &relabelled,
        Some(&old)
    )
    .is_ok());
    let mut new_image = old.clone();
    new_image["spec"]["containers"][0]["image"] = json!("busybox:2");
    assert!(check_pod(
        &config,
        &subject("", "pods", "x"),
        Some(&ns),
        &new_image,
        Some(&old)
    )
    .is_err());
    let mut ephemeral = old.clone();
    ephemeral["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox"}]);
    assert!(significant_pod_update(&ephemeral, &old));
    assert!(!significant_pod_update(&ephemeral, &ephemeral));
}

#[test]
fn exemptions_skip_the_checks() {
    let ns = namespace(json!({"pod-security.kubernetes.io/enforce": "restricted"}));
    let config = Config {
        exemptions: Exemptions {
            usernames: vec!["admin".into()],
            ..Exemptions::default()
        },
        ..Config::default()
    };
    assert!(check_pod(
        &config,
        &subject("", "pods", "x"),
        Some(&ns),
        &root_pod(),
        None
    )
    .is_ok());
    let config = Config {
        exemptions: Exemptions {
            runtime_classes: vec!["kata".into()],
            ..Exemptions::default()
        },
        ..Config::default()
    };
    let mut kata = root_pod();
    kata["spec"]["runtimeClassName"] = json!("kata");
    assert!(check_pod(&config, &subject("", "pods", "x"), Some(&ns), &kata, None).is_ok());
    assert!(check_pod(
        &config,
        &subject("", "pods", "x"),
        Some(&ns),
        &root_pod(),
        None
    )
    .is_err());
    // kube-system is not exempt by default.
    let mut system = subject("", "pods", "x");
    system.namespace = "kube-system";
    assert!(check_pod(&Config::default(), &system, Some(&ns), &root_pod(), None).is_err());
}

#[test]
fn workload_templates_only_warn() {
    let config = Config::default();
    let ns = namespace(json!({"pod-security.kubernetes.io/enforce": "baseline"}));
    let deployment = json!({"metadata": {"name": "d"}, "spec": {"template": {
        "metadata": {"labels": {"app": "d"}},
        "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "nginx"}]}}}});
    // The warn level follows the enforce level: warnings, no refusal.
    assert_eq!(
        check_pod_controller(
            &config,
            &subject("apps", "deployments", "d"),
            Some(&ns),
            &deployment
        ),
        [r#"would violate PodSecurity "baseline:latest": host namespaces (hostNetwork=true)"#]
    );
    let cronjob = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "nginx", "securityContext": {"privileged": true}}]}}}}}});
    assert_eq!(
        check_pod_controller(
            &config,
            &subject("batch", "cronjobs", "cj"),
            Some(&ns),
            &cronjob
        )
        .len(),
        1
    );
    // Enforce alone with warn set to privileged: nothing.
    let quiet = namespace(json!({"pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/warn": "privileged"}));
    assert!(check_pod_controller(
        &config,
        &subject("apps", "deployments", "d"),
        Some(&quiet),
        &deployment
    )
    .is_empty());
    assert!(has_pod_template("apps", "statefulsets") && !has_pod_template("", "services"));
    assert!(pod_template("replicationcontrollers", &json!({"spec": {}})).is_none());
}

#[test]
fn namespace_labels_are_validated() {
    let config = Config::default();
    let bad = namespace(json!({"pod-security.kubernetes.io/enforce": "strict"}));
    let err = check_namespace(&config, &bad, None).unwrap_err();
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        r#"Namespace "ns" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, baseline, restricted"#
    );
    // An update that keeps the same invalid labels is allowed; one that makes them invalid is not.
    let mut relabelled = bad.clone();
    relabelled["metadata"]["labels"]["other"] = json!("x");
    assert!(check_namespace(&config, &relabelled, Some(&bad)).is_ok());
    let good = namespace(json!({}));
    assert!(check_namespace(&config, &bad, Some(&good)).is_err());
    assert_eq!(
        check_namespace(&config, &good, None).unwrap(),
        NamespaceCheck::Done(vec![])
    );
}

#[test]
fn a_stricter_enforce_level_checks_existing_pods() {
    let config = Config::default();
    let old = namespace(json!({}));
    let new = namespace(json!({"pod-security.kubernetes.io/enforce": "restricted"}));
    let enforce = match check_namespace(&config, &new, Some(&old)).unwrap() {
        NamespaceCheck::CheckPods(lv) => lv,
        other => panic!("{other:?}"),
    };
    assert_eq!(enforce.to_string(), "restricted:latest");
    // Relaxing, or keeping, the level checks nothing.
    assert_eq!(
        check_namespace(&config, &old, Some(&new)).unwrap(),
        NamespaceCheck::Done(vec![])
    );
    assert_eq!(
        check_namespace(&config, &new, Some(&new)).unwrap(),
        NamespaceCheck::Done(vec![])
    );
    let owned = |name: &str, uid: &str| {
        let mut p = pod(
            name,
            json!({"containers": [{"name": "c", "image": "busybox"}]}),
        );
        p["metadata"]["ownerReferences"] = json!([{"uid": uid, "controller": true}]);
        Arc::new(p)
    };
    let pods = vec![
        Arc::new(root_pod()),
        owned("web-b", "rs1"),
        owned("web-a", "rs1"),
        owned("web-c", "rs1"),
        Arc::new(compliant_pod()),
    ];
    assert_eq!(
        evaluate_pods_in_namespace(&config, "ns", enforce, &pods),
        [
            r#"existing pods in namespace "ns" violate the new PodSecurity enforce level "restricted:latest""#,
            "web-a (and 2 other pods): allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile",
            "x: privileged, allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile",
        ]
    );
    assert!(
        evaluate_pods_in_namespace(&config, "ns", enforce, &[Arc::new(compliant_pod())]).is_empty()
    );
}

#[test]
fn exempt_namespaces_are_told_so() {
    let config = Config {
        exemptions: Exemptions {
            namespaces: vec!["ns".into()],
            ..Exemptions::default()
        },
        ..Config::default()
    };
    let new = namespace(json!({"pod-security.kubernetes.io/enforce": "baseline"}));
    assert_eq!(
        check_namespace(&config, &new, None).unwrap(),
        NamespaceCheck::Done(vec![
            r#"namespace "ns" is exempt from Pod Security, and the policy (enforce=baseline:latest) will be ignored"#.into()
        ])
    );
    let mut s = subject("", "pods", "x");
    s.namespace = "ns";
    assert!(check_pod(&config, &s, Some(&new), &root_pod(), None).is_ok());
}

#[test]
fn audit_annotations_are_upstreams() {
    let annotations = |config: &Config, ns: &Value, pod: &Value| {
        let mut out = Outcome::default();
        let _ = super::check_pod(
            config,
            &subject("", "pods", "x"),
            Some(ns),
            pod,
            None,
            &mut out,
        );
        out.audit_annotations
    };
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    let config = Config::default();
    // Privileged namespace: the enforced policy only.
    assert_eq!(
        annotations(&config, &namespace(json!({})), &root_pod()),
        [pair(
            "pod-security.kubernetes.io/enforce-policy",
            "privileged:latest"
        )]
    );
    // Refused at enforce, with the audit level's violations recorded too.
    let ns = namespace(json!({"pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/audit": "baseline"}));
    assert_eq!(
        annotations(&config, &ns, &root_pod()),
        [
            pair(
                "pod-security.kubernetes.io/enforce-policy",
                "baseline:latest"
            ),
            pair(
                "pod-security.kubernetes.io/audit-violations",
                r#"would violate PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)"#
            ),
        ]
    );
    // Invalid labels: the parse error.
    let ns = namespace(json!({"pod-security.kubernetes.io/audit": "nope"}));
    assert_eq!(
        annotations(&config, &ns, &root_pod()),
        [
            pair(
                "pod-security.kubernetes.io/error",
                r#"Failed to parse policy: metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: "nope": must be one of privileged, baseline, restricted"#
            ),
            pair(
                "pod-security.kubernetes.io/enforce-policy",
                "privileged:latest"
            ),
        ]
    );
    // Exemptions say why.
    let exempt = Config {
        exemptions: Exemptions {
            usernames: vec!["admin".into()],
            ..Exemptions::default()
        },
        ..Config::default()
    };
    assert_eq!(
        annotations(&exempt, &namespace(json!({})), &root_pod()),
        [pair("pod-security.kubernetes.io/exempt", "user")]
    );
}
