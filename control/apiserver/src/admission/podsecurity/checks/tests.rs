//! Each check with a pod it allows and one it refuses (upstream's reason and detail), then the
//! evaluator: which checks a level runs at a version, and in what order.

use serde_json::{json, Value};

use super::*;
use crate::admission::podsecurity::levels::Version;

fn none() -> Value {
    json!({})
}

/// A spec with one container `c` (securityContext `sc`) and the given pod-level fields.
fn one(sc: Value, pod: Value) -> Value {
    let mut spec =
        json!({"containers": [{"name": "c", "image": "busybox", "securityContext": sc}]});
    for (k, v) in pod.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

fn refused(check: CheckFn, metadata: &Value, spec: &Value) -> (String, String) {
    let v = check(metadata, spec).expect("the check refuses");
    (v.reason, v.detail)
}

fn pair(reason: &str, detail: &str) -> (String, String) {
    (reason.to_string(), detail.to_string())
}

#[test]
fn checks_are_in_upstream_order() {
    let ids = |level: Level| -> Vec<&str> {
        CHECKS
            .iter()
            .filter(|c| c.level == level)
            .map(|c| c.id)
            .collect()
    };
    for level in [Level::Baseline, Level::Restricted] {
        let mut sorted = ids(level);
        sorted.sort(); // byte order, as Go sorts strings
        assert_eq!(ids(level), sorted);
    }
    let first_restricted = CHECKS
        .iter()
        .position(|c| c.level == Level::Restricted)
        .unwrap();
    assert!(CHECKS[first_restricted..]
        .iter()
        .all(|c| c.level == Level::Restricted));
}

#[test]
fn privileged_check() {
    assert!(privileged(&none(), &one(json!({"privileged": false}), none())).is_none());
    let spec = json!({"initContainers": [{"name": "i", "securityContext": {"privileged": true}}],
        "containers": [{"name": "a", "securityContext": {"privileged": true}}, {"name": "b"}]});
    assert_eq!(
        refused(privileged, &none(), &spec),
        pair(
            "privileged",
            r#"containers "i", "a" must not set securityContext.privileged=true"#
        )
    );
    assert_eq!(
        refused(
            privileged,
            &none(),
            &one(json!({"privileged": true}), none())
        )
        .1,
        r#"container "c" must not set securityContext.privileged=true"#
    );
}

#[test]
fn host_namespaces_check() {
    assert!(host_namespaces(&none(), &one(none(), json!({"hostNetwork": false}))).is_none());
    let spec = one(
        none(),
        json!({"hostNetwork": true, "hostPID": true, "hostIPC": true}),
    );
    assert_eq!(
        refused(host_namespaces, &none(), &spec),
        pair(
            "host namespaces",
            "hostNetwork=true, hostPID=true, hostIPC=true"
        )
    );
}

#[test]
fn host_ports_check() {
    let ok = json!({"containers": [{"name": "c", "ports": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 0}]}]});
    assert!(host_ports(&none(), &ok).is_none());
    let one_port =
        json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]});
    assert_eq!(
        refused(host_ports, &none(), &one_port),
        pair("hostPort", r#"container "c" uses hostPort 8080"#)
    );
    let many = json!({"containers": [
        {"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 443, "hostPort": 443}]},
        {"name": "b", "ports": [{"containerPort": 90, "hostPort": 8080}]}]});
    // Ports are a sorted set of strings, as upstream's.
    assert_eq!(
        refused(host_ports, &none(), &many).1,
        r#"containers "a", "b" use hostPorts 443, 8080"#
    );
}

#[test]
fn host_path_volumes_check() {
    let ok = json!({"volumes": [{"name": "e", "emptyDir": {}}]});
    assert!(host_path_volumes(&none(), &ok).is_none());
    let bad = json!({"volumes": [{"name": "a", "hostPath": {"path": "/"}}, {"name": "b", "hostPath": {"path": "/x"}}]});
    assert_eq!(
        refused(host_path_volumes, &none(), &bad),
        pair("hostPath volumes", r#"volumes "a", "b""#)
    );
}

#[test]
fn capabilities_baseline_check() {
    let ok = one(
        json!({"capabilities": {"add": ["CHOWN", "NET_BIND_SERVICE"]}}),
        none(),
    );
    assert!(capabilities_baseline(&none(), &ok).is_none());
    let bad = one(
        json!({"capabilities": {"add": ["SYS_ADMIN", "NET_RAW", "CHOWN"]}}),
        none(),
    );
    assert_eq!(
        refused(capabilities_baseline, &none(), &bad),
        pair(
            "non-default capabilities",
            r#"container "c" must not include "NET_RAW", "SYS_ADMIN" in securityContext.capabilities.add"#
        )
    );
}

#[test]
fn app_armor_check() {
    let ok = one(
        json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}}),
        json!({"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}}),
    );
    let ok_meta =
        json!({"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "localhost/p"}});
    assert!(app_armor_profile(&ok_meta, &ok).is_none());
    let bad = one(
        json!({"appArmorProfile": {"type": "Unconfined"}}),
        json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}),
    );
    assert_eq!(
        refused(app_armor_profile, &none(), &bad),
        pair(
            "forbidden AppArmor profile",
            r#"pod and container "c" must not set AppArmor profile type to "Unconfined""#
        )
    );
    let meta =
        json!({"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}});
    assert_eq!(
        refused(app_armor_profile, &meta, &one(none(), none())),
        pair(
            "forbidden AppArmor profile",
            r#"annotation must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/c="unconfined"""#
        )
    );
}

#[test]
fn se_linux_check() {
    let ok = one(
        json!({"seLinuxOptions": {"type": "container_t", "level": "s0:c1"}}),
        json!({"securityContext": {"seLinuxOptions": {"type": "container_engine_t"}}}),
    );
    assert!(se_linux_options_1_31(&none(), &ok).is_none());
    // container_engine_t is allowed from 1.31 on.
    assert_eq!(
        refused(se_linux_options_1_0, &none(), &ok),
        pair(
            "seLinuxOptions",
            r#"pod set forbidden securityContext.seLinuxOptions: type "container_engine_t""#
        )
    );
    let bad = one(
        json!({"seLinuxOptions": {"type": "spc_t", "user": "root"}}),
        json!({"securityContext": {"seLinuxOptions": {"role": "sysadm_r"}}}),
    );
    assert_eq!(
        refused(se_linux_options_1_31, &none(), &bad).1,
        r#"pod and container "c" set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set; role may not be set"#
    );
}

#[test]
fn proc_mount_check() {
    assert!(proc_mount(&none(), &one(json!({"procMount": "Default"}), none())).is_none());
    let bad = one(json!({"procMount": "Unmasked"}), none());
    assert_eq!(
        refused(proc_mount, &none(), &bad),
        pair(
            "procMount",
            r#"container "c" must not set securityContext.procMount to "Unmasked""#
        )
    );
    // From 1.35 baseline allows it in a user namespace; restricted does not.
    let userns = one(
        json!({"procMount": "Unmasked"}),
        json!({"hostUsers": false}),
    );
    assert!(proc_mount_1_35_baseline(&none(), &userns).is_none());
    assert!(proc_mount(&none(), &userns).is_some());
}

#[test]
fn seccomp_baseline_check() {
    let ok = one(
        json!({"seccompProfile": {"type": "RuntimeDefault"}}),
        none(),
    );
    assert!(seccomp_profile_baseline_1_19(&none(), &ok).is_none());
    // Baseline accepts an unset profile.
    assert!(seccomp_profile_baseline_1_19(&none(), &one(none(), none())).is_none());
    let bad = one(
        json!({"seccompProfile": {"type": "Unconfined"}}),
        json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
    );
    assert_eq!(
        refused(seccomp_profile_baseline_1_19, &none(), &bad),
        pair(
            "seccompProfile",
            r#"pod and container "c" must not set securityContext.seccompProfile.type to "Unconfined""#
        )
    );
    let meta = json!({"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined",
        "container.seccomp.security.alpha.kubernetes.io/c": "runtime/default"}});
    assert_eq!(
        refused(seccomp_profile_baseline_1_0, &meta, &one(none(), none())),
        pair(
            "seccompProfile",
            r#"forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined""#
        )
    );
}

#[test]
fn sysctls_check() {
    let spec = |name: &str| json!({"securityContext": {"sysctls": [{"name": name, "value": "1"}]}, "containers": []});
    assert!(sysctls_1_37(&none(), &spec("net.ipv4.tcp_notsent_lowat")).is_none());
    assert!(sysctls_1_0(&none(), &spec("kernel.shm_rmid_forced")).is_none());
    assert_eq!(
        refused(sysctls_1_32, &none(), &spec("net.ipv4.tcp_notsent_lowat")),
        pair("forbidden sysctls", "net.ipv4.tcp_notsent_lowat")
    );
    let two = json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax"}, {"name": "net.core.somaxconn"}]}});
    assert_eq!(
        refused(sysctls_1_37, &none(), &two).1,
        "kernel.msgmax, net.core.somaxconn"
    );
}

#[test]
fn windows_host_process_check() {
    let ok = one(json!({"windowsOptions": {"hostProcess": false}}), none());
    assert!(windows_host_process(&none(), &ok).is_none());
    let bad = one(
        json!({"windowsOptions": {"hostProcess": true}}),
        json!({"securityContext": {"windowsOptions": {"hostProcess": true}}}),
    );
    assert_eq!(
        refused(windows_host_process, &none(), &bad),
        pair(
            "hostProcess",
            r#"pod and container "c" must not set securityContext.windowsOptions.hostProcess=true"#
        )
    );
}

#[test]
fn host_probes_check() {
    let ok = json!({"containers": [{"name": "c", "livenessProbe": {"httpGet": {"port": 80}}}]});
    assert!(host_probes_and_lifecycle(&none(), &ok).is_none());
    let bad = json!({"containers": [
        {"name": "b", "readinessProbe": {"tcpSocket": {"port": 80, "host": "10.0.0.1"}}},
        {"name": "a", "lifecycle": {"preStop": {"httpGet": {"port": 80, "host": "example.com"}}}}]});
    assert_eq!(
        refused(host_probes_and_lifecycle, &none(), &bad),
        pair(
            "probe or lifecycle host",
            r#"containers "a", "b" use probe or lifecycle hosts "10.0.0.1", "example.com""#
        )
    );
}

#[test]
fn allow_privilege_escalation_check() {
    let ok = one(json!({"allowPrivilegeEscalation": false}), none());
    assert!(allow_privilege_escalation_1_25(&none(), &ok).is_none());
    let bad = json!({"containers": [{"name": "a"}, {"name": "b", "securityContext": {"allowPrivilegeEscalation": true}}]});
    assert_eq!(
        refused(allow_privilege_escalation_1_25, &none(), &bad),
        pair(
            "allowPrivilegeEscalation != false",
            r#"containers "a", "b" must set securityContext.allowPrivilegeEscalation=false"#
        )
    );
    // Windows pods are exempt from 1.25 on.
    let mut windows = bad.clone();
    windows["os"] = json!({"name": "windows"});
    assert!(allow_privilege_escalation_1_25(&none(), &windows).is_none());
    assert!(allow_privilege_escalation_1_8(&none(), &windows).is_some());
}

#[test]
fn capabilities_restricted_check() {
    let ok = one(
        json!({"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}),
        none(),
    );
    assert!(capabilities_restricted_1_25(&none(), &ok).is_none());
    let bad = json!({"containers": [
        {"name": "a"},
        {"name": "b", "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["SYS_TIME", "CHOWN"]}}}]});
    assert_eq!(
        refused(capabilities_restricted_1_25, &none(), &bad),
        pair(
            "unrestricted capabilities",
            r#"container "a" must set securityContext.capabilities.drop=["ALL"]; container "b" must not include "CHOWN", "SYS_TIME" in securityContext.capabilities.add"#
        )
    );
}

#[test]
fn restricted_volumes_check() {
    let ok = json!({"volumes": [
        {"name": "a", "configMap": {"name": "x"}}, {"name": "b", "emptyDir": {}},
        {"name": "c", "projected": {"sources": []}}, {"name": "d", "persistentVolumeClaim": {"claimName": "p"}},
        {"name": "e", "secret": {"secretName": "s"}}, {"name": "f", "downwardAPI": {}},
        {"name": "g", "csi": {"driver": "d"}}, {"name": "h", "ephemeral": {}}, {"name": "i", "image": {"reference": "r"}}]});
    assert!(restricted_volumes(&none(), &ok).is_none());
    let one_bad = json!({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]});
    assert_eq!(
        refused(restricted_volumes, &none(), &one_bad),
        pair(
            "restricted volume types",
            r#"volume "h" uses restricted volume type "hostPath""#
        )
    );
    let bad = json!({"volumes": [{"name": "n", "nfs": {"server": "s", "path": "/"}},
        {"name": "g", "gitRepo": {"repository": "r"}}, {"name": "u", "somethingNew": {}}]});
    assert_eq!(
        refused(restricted_volumes, &none(), &bad).1,
        r#"volumes "n", "g", "u" use restricted volume types "gitRepo", "nfs", "unknown""#
    );
}

#[test]
fn run_as_non_root_check() {
    let pod_level = one(none(), json!({"securityContext": {"runAsNonRoot": true}}));
    assert!(run_as_non_root_1_35(&none(), &pod_level).is_none());
    assert!(run_as_non_root_1_35(&none(), &one(json!({"runAsNonRoot": true}), none())).is_none());
    assert_eq!(
        refused(run_as_non_root_1_35, &none(), &one(none(), none())),
        pair(
            "runAsNonRoot != true",
            r#"pod or container "c" must set securityContext.runAsNonRoot=true"#
        )
    );
    let explicit = one(
        json!({"runAsNonRoot": false}),
        json!({"securityContext": {"runAsNonRoot": false}}),
    );
    assert_eq!(
        refused(run_as_non_root_1_35, &none(), &explicit).1,
        r#"pod and container "c" must not set securityContext.runAsNonRoot=false"#
    );
    // A user-namespaced pod is exempt from 1.35 on.
    let userns = one(none(), json!({"hostUsers": false}));
    assert!(run_as_non_root_1_35(&none(), &userns).is_none());
    assert!(run_as_non_root_1_0(&none(), &userns).is_some());
}

#[test]
fn run_as_user_check() {
    let ok = one(
        json!({"runAsUser": 1000}),
        json!({"securityContext": {"runAsUser": 1}}),
    );
    assert!(run_as_user_1_35(&none(), &ok).is_none());
    let bad = one(
        json!({"runAsUser": 0}),
        json!({"securityContext": {"runAsUser": 0}}),
    );
    assert_eq!(
        refused(run_as_user_1_35, &none(), &bad),
        pair(
            "runAsUser=0",
            r#"pod and container "c" must not set runAsUser=0"#
        )
    );
    let mut userns = bad.clone();
    userns["hostUsers"] = json!(false);
    assert!(run_as_user_1_35(&none(), &userns).is_none());
}

#[test]
fn seccomp_restricted_check() {
    let ok = one(
        none(),
        json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}),
    );
    assert!(seccomp_profile_restricted_1_25(&none(), &ok).is_none());
    assert_eq!(
        refused(
            seccomp_profile_restricted_1_25,
            &none(),
            &one(none(), none())
        ),
        pair(
            "seccompProfile",
            r#"pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost""#
        )
    );
    let bad = one(json!({"seccompProfile": {"type": "Unconfined"}}), none());
    assert_eq!(
        refused(seccomp_profile_restricted_1_25, &none(), &bad).1,
        r#"container "c" must not set securityContext.seccompProfile.type to "Unconfined""#
    );
}

fn lv(level: Level, version: Version) -> LevelVersion {
    LevelVersion { level, version }
}

/// The pod of upstream's documentation: a plain container, nothing set.
fn plain_pod() -> Value {
    json!({"containers": [{"name": "c", "image": "nginx"}]})
}

fn restricted_pod() -> Value {
    json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "c", "image": "nginx", "securityContext": {
            "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
    })
}

#[test]
fn restricted_latest_lists_upstreams_message() {
    let violations = evaluate(
        lv(Level::Restricted, Version::Latest),
        &none(),
        &plain_pod(),
    );
    assert_eq!(
        forbidden_detail(&violations),
        r#"allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
    );
    assert_eq!(
        forbidden_reason(&violations),
        "allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"
    );
    assert!(evaluate(
        lv(Level::Restricted, Version::Latest),
        &none(),
        &restricted_pod()
    )
    .is_empty());
    assert!(evaluate(lv(Level::Baseline, Version::Latest), &none(), &plain_pod()).is_empty());
    assert!(evaluate(
        lv(Level::Privileged, Version::Latest),
        &none(),
        &json!({"hostPID": true})
    )
    .is_empty());
}

#[test]
fn baseline_checks_come_first_and_restricted_overrides_them() {
    let mut spec = plain_pod();
    spec["hostNetwork"] = json!(true);
    spec["containers"][0]["securityContext"] =
        json!({"privileged": true, "capabilities": {"add": ["NET_ADMIN"]}});
    spec["volumes"] = json!([{"name": "h", "hostPath": {"path": "/"}}]);
    let baseline = evaluate(lv(Level::Baseline, Version::Latest), &none(), &spec);
    assert_eq!(
        forbidden_reason(&baseline),
        "non-default capabilities, host namespaces, hostPath volumes, privileged"
    );
    let restricted = evaluate(lv(Level::Restricted, Version::Latest), &none(), &spec);
    // capabilities_baseline and hostPathVolumes give way to their restricted versions.
    assert_eq!(
        forbidden_reason(&restricted),
        "host namespaces, privileged, allowPrivilegeEscalation != false, unrestricted capabilities, restricted volume types, runAsNonRoot != true, seccompProfile"
    );
}

#[test]
fn versions_choose_the_checks() {
    // Before 1.22 restricted had no capabilities rule of its own (baseline's applies), before
    // 1.19 no seccomp requirement, before 1.23 no runAsUser rule.
    let mut spec = restricted_pod();
    spec["containers"][0]["securityContext"] =
        json!({"allowPrivilegeEscalation": false, "runAsUser": 0});
    let v1_18 = evaluate(lv(Level::Restricted, Version::V1(18)), &none(), &spec);
    assert!(v1_18.is_empty(), "{v1_18:?}");
    let latest = evaluate(lv(Level::Restricted, Version::Latest), &none(), &spec);
    assert_eq!(
        forbidden_reason(&latest),
        "unrestricted capabilities, runAsUser=0"
    );
    // hostProbesAndHostLifecycle arrived in 1.34.
    let probe = json!({"containers": [{"name": "c", "livenessProbe": {"httpGet": {"host": "h", "port": 1}}}]});
    assert!(evaluate(lv(Level::Baseline, Version::V1(33)), &none(), &probe).is_empty());
    assert_eq!(
        evaluate(lv(Level::Baseline, Version::V1(34)), &none(), &probe).len(),
        1
    );
    assert_eq!(
        evaluate(lv(Level::Baseline, Version::V1(99)), &none(), &probe).len(),
        1
    );
}
