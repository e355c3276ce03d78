//! Permission checks with the real kubectl 1.32: RBAC with upstream's default roles and
//! messages, `kubectl auth can-i` (with `--as`, `--as-group`, service accounts, `--list`),
//! impersonation, escalation and bind checks, ClusterRole aggregation, anonymous requests, and
//! the Node authorizer with NodeRestriction for a kubelet's credential. One server for all.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{skiff_bin, wait_until, ServerProcess};

/// A kubeconfig for `kind` (`user NAME`, `node NAME`) issued by `skiff token`.
fn credential(s: &ServerProcess, kind: &str, name: &str) -> PathBuf {
    let out = s.dir.path().join(format!("{kind}-{name}.kubeconfig"));
    let status = Command::new(skiff_bin())
        .args(["token", kind, name, "--data-dir"])
        .arg(s.dir.path())
        .args(["--server", &s.url(), "--output"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    out
}

/// kubectl with another kubeconfig.
fn kubectl_as(s: &ServerProcess, kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = s.kubectl_cmd(args);
    cmd.env("KUBECONFIG", kubeconfig);
    cmd.output().unwrap()
}

/// A GET with a bearer token: (code, body).
fn raw_get(s: &ServerProcess, token: &str, path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--cacert"])
        .arg(s.ca())
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{}{path}", s.url()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.to_string(), body.to_string())
}

/// A merge PATCH with the bearer token of `kubeconfig`: (code, body).
fn raw_patch(s: &ServerProcess, kubeconfig: &Path, path: &str, body: &str) -> (String, String) {
    let config = std::fs::read_to_string(kubeconfig).unwrap();
    let token = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap()
        .to_string();
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-X", "PATCH", "--cacert"])
        .arg(s.ca())
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "-H",
            "Content-Type: application/merge-patch+json",
            "-d",
            body,
        ])
        .arg(format!("{}{path}", s.url()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.to_string(), body.to_string())
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

fn can_i(s: &ServerProcess, args: &[&str]) -> String {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    String::from_utf8_lossy(&s.kubectl(&all).stdout)
        .trim()
        .to_string()
}

fn anonymous_code(s: &ServerProcess, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(s.ca())
        .arg(format!("{}{path}", s.url()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn rbac_node_authorizer_and_reviews_with_kubectl() {
    let s = ServerProcess::start();
    s.kubectl_ok(&["create", "namespace", "team"]);
    s.kubectl_ok(&["create", "namespace", "other"]);

    // Anonymous: the public endpoints only.
    assert_eq!(anonymous_code(&s, "/healthz"), "200");
    assert_eq!(anonymous_code(&s, "/version"), "200");
    assert_eq!(anonymous_code(&s, "/api"), "403");
    assert_eq!(anonymous_code(&s, "/api/v1/namespaces/team/pods"), "403");

    // The default roles exist, and aggregation fills admin/edit/view.
    let roles = s.kubectl_ok(&["get", "clusterroles", "-o", "name"]);
    for role in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:node",
        "system:kube-scheduler",
    ] {
        assert!(
            roles.contains(&format!("clusterrole.rbac.authorization.k8s.io/{role}\n")),
            "{role}"
        );
    }
    wait_until("view aggregates its rules", || {
        s.kubectl_ok(&[
            "get",
            "clusterrole",
            "view",
            "-o",
            "jsonpath={.rules[*].resources}",
        ])
        .contains("pods")
    });

    // A user bound to view in one namespace reads there and writes nowhere.
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "viewer",
        "--clusterrole=view",
        "--user=viewer",
        "-n",
        "team",
    ]);
    assert_eq!(
        can_i(&s, &["--as", "viewer", "list", "pods", "-n", "team"]),
        "yes"
    );
    assert_eq!(
        can_i(
            &s,
            &["--as", "viewer", "create", "configmaps", "-n", "team"]
        ),
        "no"
    );
    assert_eq!(
        can_i(&s, &["--as", "viewer", "list", "pods", "-n", "other"]),
        "no"
    );
    assert_eq!(
        can_i(&s, &["--as", "viewer", "get", "secrets", "-n", "team"]),
        "no"
    );
    s.kubectl_ok(&["--as", "viewer", "get", "pods", "-n", "team"]);
    let denied = s.kubectl_err(&["--as", "viewer", "create", "configmap", "x", "-n", "team"]);
    assert!(
        denied.contains(r#"configmaps is forbidden: User "viewer" cannot create resource "configmaps" in API group "" in the namespace "team""#),
        "{denied}"
    );
    let denied = s.kubectl_err(&["--as", "viewer", "get", "deployment", "web", "-n", "other"]);
    assert!(
        denied.contains(r#"deployments.apps "web" is forbidden: User "viewer" cannot get resource "deployments" in API group "apps" in the namespace "other""#),
        "{denied}"
    );
    let denied = s.kubectl_err(&["--as", "viewer", "get", "nodes"]);
    assert!(denied.contains(r#"at the cluster scope"#), "{denied}");

    // A namespaced admin: everything in its namespace, nothing in another.
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "team-admin",
        "--clusterrole=admin",
        "--user=lead",
        "-n",
        "team",
    ]);
    s.kubectl_ok(&[
        "--as",
        "lead",
        "create",
        "configmap",
        "settings",
        "-n",
        "team",
        "--from-literal=a=b",
    ]);
    s.kubectl_err(&[
        "--as",
        "lead",
        "create",
        "configmap",
        "settings",
        "-n",
        "other",
    ]);
    s.kubectl_err(&["--as", "lead", "delete", "namespace", "other"]);

    // Groups and service accounts.
    s.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "devs-view",
        "--clusterrole=view",
        "--group=devs",
    ]);
    assert_eq!(
        can_i(
            &s,
            &[
                "--as",
                "someone",
                "--as-group",
                "devs",
                "list",
                "services",
                "-A"
            ]
        ),
        "yes"
    );
    assert_eq!(
        can_i(&s, &["--as", "someone", "list", "services", "-A"]),
        "no"
    );
    s.kubectl_ok(&["create", "serviceaccount", "bot", "-n", "team"]);
    s.kubectl_ok(&[
        "create",
        "role",
        "cm-reader",
        "--verb=get,list",
        "--resource=configmaps",
        "-n",
        "team",
    ]);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "bot-cm",
        "--role=cm-reader",
        "--serviceaccount=team:bot",
        "-n",
        "team",
    ]);
    assert_eq!(
        can_i(
            &s,
            &[
                "--as",
                "system:serviceaccount:team:bot",
                "list",
                "configmaps",
                "-n",
                "team"
            ]
        ),
        "yes"
    );
    assert_eq!(
        can_i(
            &s,
            &[
                "--as",
                "system:serviceaccount:team:bot",
                "list",
                "secrets",
                "-n",
                "team"
            ]
        ),
        "no"
    );
    let list = s.kubectl_ok(&[
        "auth",
        "can-i",
        "--list",
        "--as",
        "system:serviceaccount:team:bot",
        "-n",
        "team",
    ]);
    assert!(
        list.contains("configmaps") && list.contains("[get list]"),
        "{list}"
    );
    assert!(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{list}"
    );
    // `kubectl create token`: a bound token for the account, which RBAC then judges.
    let token = s.kubectl_ok(&["create", "token", "bot", "-n", "team", "--duration", "10m"]);
    let token = token.trim();
    assert_eq!(
        raw_get(&s, token, "/api/v1/namespaces/team/configmaps").0,
        "200"
    );
    let (code, body) = raw_get(&s, token, "/api/v1/namespaces/team/secrets");
    assert_eq!(code, "403", "{body}");
    assert!(
        body.contains(
            r#"User \"system:serviceaccount:team:bot\" cannot list resource \"secrets\""#
        ),
        "{body}"
    );
    assert_eq!(
        raw_get(&s, "not.a.token", "/api/v1/namespaces/team/configmaps").0,
        "401"
    );
    let review = format!(
        r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{{"token":"{token}"}}}}"#
    );
    let out = s.kubectl_stdin(
        &[
            "create",
            "--validate=false",
            "-f",
            "-",
            "-o",
            "jsonpath={.status.authenticated} {.status.user.username} {.status.user.groups}",
        ],
        &review,
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.starts_with("true system:serviceaccount:team:bot")
            && text.contains("system:serviceaccounts:team"),
        "{text} {}",
        stderr(&out)
    );
    // Deleting the account revokes its tokens.
    s.kubectl_ok(&["create", "serviceaccount", "short-lived", "-n", "team"]);
    let token = s.kubectl_ok(&["create", "token", "short-lived", "-n", "team"]);
    assert_eq!(
        raw_get(&s, token.trim(), "/api/v1/namespaces/team/configmaps").0,
        "403"
    );
    s.kubectl_ok(&["delete", "serviceaccount", "short-lived", "-n", "team"]);
    wait_until("the deleted account's token to stop working", || {
        raw_get(&s, token.trim(), "/api/v1/namespaces/team/configmaps").0 == "401"
    });
    // whoami under impersonation.
    let whoami = s.kubectl_ok(&["auth", "whoami", "--as", "alice", "--as-group", "g1"]);
    assert!(
        whoami.contains("alice") && whoami.contains("[g1 system:authenticated]"),
        "{whoami}"
    );

    // Escalation: a user who may write roles may not grant what they lack, nor bind it.
    s.kubectl_ok(&[
        "create",
        "role",
        "rbac-writer",
        "--verb=create,get,list,update",
        "--resource=roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io",
        "-n",
        "team",
    ]);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-rbac",
        "--role=rbac-writer",
        "--user=alice",
        "-n",
        "team",
    ]);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-cm",
        "--role=cm-reader",
        "--user=alice",
        "-n",
        "team",
    ]);
    let denied = s.kubectl_err(&[
        "--as",
        "alice",
        "create",
        "role",
        "sneaky",
        "--verb=get",
        "--resource=secrets,configmaps",
        "-n",
        "team",
    ]);
    assert!(
        denied.contains("roles.rbac.authorization.k8s.io \"sneaky\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}"),
        "{denied}"
    );
    s.kubectl_ok(&[
        "--as",
        "alice",
        "create",
        "role",
        "fine",
        "--verb=get",
        "--resource=configmaps",
        "-n",
        "team",
    ]);
    s.kubectl_ok(&[
        "--as",
        "alice",
        "create",
        "rolebinding",
        "bob-fine",
        "--role=fine",
        "--user=bob",
        "-n",
        "team",
    ]);
    let denied = s.kubectl_err(&[
        "--as",
        "alice",
        "create",
        "rolebinding",
        "bob-admin",
        "--clusterrole=admin",
        "--user=bob",
        "-n",
        "team",
    ]);
    assert!(
        denied.contains("is attempting to grant RBAC permissions not currently held"),
        "{denied}"
    );
    assert!(s
        .kubectl(&["get", "rolebinding", "bob-admin", "-n", "team"])
        .status
        .success()
        .eq(&false));
    // With `bind` on that role, the binding is allowed.
    s.kubectl_ok(&[
        "create",
        "role",
        "may-bind-admin",
        "--verb=bind",
        "--resource=clusterroles.rbac.authorization.k8s.io",
        "--resource-name=admin",
        "-n",
        "team",
    ]);
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "alice-bind",
        "--role=may-bind-admin",
        "--user=alice",
        "-n",
        "team",
    ]);
    s.kubectl_ok(&[
        "--as",
        "alice",
        "create",
        "rolebinding",
        "bob-admin",
        "--clusterrole=admin",
        "--user=bob",
        "-n",
        "team",
    ]);

    // Impersonation needs the impersonate verb.
    let alice = credential(&s, "user", "alice");
    let out = kubectl_as(
        &s,
        &alice,
        &["get", "configmaps", "-n", "team", "--as", "lead"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"users "lead" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#),
        "{}",
        stderr(&out)
    );
    let out = kubectl_as(&s, &alice, &["get", "configmaps", "-n", "team"]);
    assert!(out.status.success(), "{}", stderr(&out));
    s.kubectl_ok(&[
        "create",
        "clusterrole",
        "impersonate-lead",
        "--verb=impersonate",
        "--resource=users",
        "--resource-name=lead",
    ]);
    s.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "alice-impersonates",
        "--clusterrole=impersonate-lead",
        "--user=alice",
    ]);
    let out = kubectl_as(
        &s,
        &alice,
        &[
            "create",
            "configmap",
            "as-lead",
            "-n",
            "team",
            "--as",
            "lead",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // A SubjectAccessReview from a manifest, as the kubelet's API delegates.
    let review = r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview",
        "spec":{"user":"viewer","resourceAttributes":{"namespace":"team","verb":"list","resource":"pods"}}}"#;
    // (`--validate=false`: kubectl validates create-only kinds against OpenAPI v2, not served yet.)
    let out = s.kubectl_stdin(
        &[
            "create",
            "--validate=false",
            "-f",
            "-",
            "-o",
            "jsonpath={.status.allowed} {.status.reason}",
        ],
        review,
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.starts_with("true RBAC: allowed by RoleBinding \"viewer/team\" of ClusterRole \"view\" to User \"viewer\""), "{text} {}", stderr(&out));

    // The Node authorizer: a kubelet reads what its pods use and writes only its own objects.
    let n1 = credential(&s, "node", "n1");
    let node = |name: &str| {
        format!(r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{name}"}}}}"#)
    };
    let out = common::run_with_stdin(
        {
            let mut c = s.kubectl_cmd(&["create", "-f", "-"]);
            c.env("KUBECONFIG", &n1);
            c
        },
        &node("n1"),
    );
    assert!(
        out.status.success(),
        "a node registers itself: {}",
        stderr(&out)
    );
    s.kubectl_stdin(&["create", "-f", "-"], &node("n2"));
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "used",
        "-n",
        "team",
        "--from-literal=k=v",
    ]);
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "unused",
        "-n",
        "team",
        "--from-literal=k=v",
    ]);
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"team"},
        "spec":{"nodeName":"n1","containers":[{"name":"c","image":"busybox"}],
                "volumes":[{"name":"s","secret":{"secretName":"used"}}]}}"#;
    let out = s.kubectl_stdin(&["create", "-f", "-"], pod);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kubectl_as(&s, &n1, &["get", "secret", "used", "-n", "team"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kubectl_as(&s, &n1, &["get", "secret", "unused", "-n", "team"]);
    assert!(
        stderr(&out).contains(r#"secrets "unused" is forbidden: User "system:node:n1" cannot get resource "secrets" in API group "" in the namespace "team": no relationship found between node 'n1' and this object"#),
        "{}",
        stderr(&out)
    );
    let out = kubectl_as(&s, &n1, &["get", "secrets", "-n", "team"]);
    assert!(!out.status.success());
    let out = kubectl_as(&s, &n1, &["label", "node", "n1", "mine=yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = kubectl_as(&s, &n1, &["get", "node", "n2"]);
    assert!(
        stderr(&out).contains("node 'n1' cannot read 'n2', only its own Node object"),
        "{}",
        stderr(&out)
    );
    // (kubectl reads before it patches; a kubelet patches directly.)
    let (code, body) = raw_patch(
        &s,
        &n1,
        "/api/v1/nodes/n2",
        r#"{"metadata":{"labels":{"mine":"yes"}}}"#,
    );
    assert_eq!(code, "403", "{body}");
    assert!(
        body.contains(
            r#"nodes \"n2\" is forbidden: node \"n1\" is not allowed to modify node \"n2\""#
        ),
        "{body}"
    );
    let out = kubectl_as(
        &s,
        &n1,
        &["delete", "pod", "p", "-n", "team", "--wait=false"],
    );
    assert!(
        out.status.success(),
        "a node deletes its own pod: {}",
        stderr(&out)
    );
    // Nothing was written on any denial.
    let labels = s.kubectl_ok(&["get", "node", "n2", "-o", "jsonpath={.metadata.labels}"]);
    assert!(!labels.contains("mine"), "{labels}");
    assert!(!s
        .kubectl_ok(&["get", "roles", "-n", "team", "-o", "name"])
        .contains("sneaky"));
}

/// A node joins as kubeadm's do: a bootstrap token (`skiff token create`) may only ask for a
/// kubelet client certificate; the controller manager's approver and signer issue it; the
/// certificate then authenticates as `system:node:<name>` (openssl makes the key and request,
/// kubectl does the rest).
#[test]
fn bootstrap_token_join_gets_a_node_certificate() {
    let s = ServerProcess::start();
    // kubeadm's flow: a token and the CA pin, printed as the command a joining node runs.
    let out = Command::new(skiff_bin())
        .args(["token", "create", "--print-join-command", "--kubeconfig"])
        .arg(&s.kubeconfig)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let join = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let words: Vec<&str> = join.split_whitespace().collect();
    assert_eq!(words[..3], ["skiff", "token", "discover"], "{join}");
    let flag = |name: &str| {
        let i = words
            .iter()
            .position(|w| *w == name)
            .unwrap_or_else(|| panic!("{join}"));
        words[i + 1].to_string()
    };
    let token = flag("--token");
    assert_eq!(token.len(), 23, "{token}");
    let pin = flag("--discovery-token-ca-cert-hash");
    // The pin is what kubeadm's documentation computes with openssl.
    let openssl = Command::new("sh")
        .arg("-c")
        .arg("openssl x509 -pubkey -in \"$0\" | openssl pkey -pubin -outform der | sha256sum")
        .arg(s.ca())
        .output()
        .unwrap();
    let digest = String::from_utf8_lossy(&openssl.stdout);
    assert_eq!(
        pin,
        format!("sha256:{}", digest.split_whitespace().next().unwrap())
    );
    let listed = Command::new(skiff_bin())
        .args(["token", "list", "--kubeconfig"])
        .arg(&s.kubeconfig)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&token[..6]));

    // Anyone may read cluster-info (kubeadm's Role), and nothing else in kube-public.
    let cluster_info = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
    assert_eq!(anonymous_code(&s, cluster_info), "200");
    assert_eq!(
        anonymous_code(&s, "/api/v1/namespaces/kube-public/configmaps/other"),
        "403"
    );
    // Token discovery: the bootstrap kubeconfig, once the controller manager's bootstrap
    // signer has signed cluster-info with the token.
    let dir = s.dir.path();
    let bootstrap = dir.join("bootstrap.kubeconfig");
    let discover = |token: &str, pins: &[&str]| {
        let mut cmd = Command::new(skiff_bin());
        cmd.args(["token", "discover", "--server", &s.url(), "--token", token]);
        for pin in pins {
            cmd.args(["--discovery-token-ca-cert-hash", pin]);
        }
        cmd.arg("--output").arg(&bootstrap).output().unwrap()
    };
    wait_until("token discovery with the printed command", || {
        discover(&token, &[&pin]).status.success()
    });
    let (id, _) = token.split_once('.').unwrap();
    let refused = [
        (discover(&token, &["sha256:00"]), "none of the public keys"),
        (discover(&token, &[]), "--discovery-token-ca-cert-hash"),
        (
            discover("zzzzzz.0123456789abcdef", &[&pin]),
            "token id \"zzzzzz\" is invalid for this cluster",
        ),
        (
            discover(&format!("{id}.0000000000000000"), &[&pin]),
            "failed to verify JWS signature",
        ),
    ];
    for (out, why) in refused {
        assert!(
            !out.status.success() && stderr(&out).contains(why),
            "{why}: {}",
            stderr(&out)
        );
    }
    // An expired token goes (the token cleaner), and its signature with it (the signer).
    let short = Command::new(skiff_bin())
        .args(["token", "create", "--ttl", "2s", "--kubeconfig"])
        .arg(&s.kubeconfig)
        .output()
        .unwrap();
    let short = String::from_utf8_lossy(&short.stdout).trim().to_string();
    let (short_id, _) = short.split_once('.').unwrap();
    let signature = format!("jsonpath={{.data.jws-kubeconfig-{short_id}}}");
    let signed = || {
        s.kubectl_ok(&[
            "-n",
            "kube-public",
            "get",
            "cm",
            "cluster-info",
            "-o",
            &signature,
        ])
    };
    wait_until("the short token's signature", || !signed().is_empty());
    wait_until("the expired token deleted, its signature gone", || {
        !s.kubectl(&[
            "-n",
            "kube-system",
            "get",
            "secret",
            &format!("bootstrap-token-{short_id}"),
        ])
        .status
        .success()
            && signed().is_empty()
    });
    let whoami = kubectl_as(&s, &bootstrap, &["auth", "whoami"]);
    let whoami = String::from_utf8_lossy(&whoami.stdout).to_string();
    assert!(
        whoami.contains(&format!("system:bootstrap:{}", &token[..6])),
        "{whoami}"
    );
    assert!(
        whoami.contains("system:bootstrappers:skiff:default-node-token"),
        "{whoami}"
    );
    assert!(!kubectl_as(&s, &bootstrap, &["get", "pods", "-A"])
        .status
        .success());

    let key = dir.join("joiner.key");
    let csr = dir.join("joiner.csr");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .args(["-subj", "/O=system:nodes/CN=system:node:joiner"])
        .status()
        .unwrap();
    assert!(ok.success());
    let encoded = Command::new("base64")
        .args(["-w0"])
        .arg(&csr)
        .output()
        .unwrap();
    let request = String::from_utf8(encoded.stdout).unwrap();
    let object = format!(
        r#"{{"apiVersion":"certificates.k8s.io/v1","kind":"CertificateSigningRequest","metadata":{{"name":"node-csr-joiner"}},
            "spec":{{"request":"{request}","signerName":"kubernetes.io/kube-apiserver-client-kubelet",
                     "usages":["digital signature","client auth"]}}}}"#
    );
    let out = common::run_with_stdin(
        {
            let mut c = s.kubectl_cmd(&["create", "-f", "-"]);
            c.env("KUBECONFIG", &bootstrap);
            c
        },
        &object,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let mut certificate = String::new();
    wait_until("the CSR to be approved and issued", || {
        certificate = s.kubectl_ok(&[
            "get",
            "csr",
            "node-csr-joiner",
            "-o",
            "jsonpath={.status.certificate}",
        ]);
        !certificate.is_empty()
    });
    let csr_view = s.kubectl_ok(&["get", "csr", "node-csr-joiner"]);
    assert!(csr_view.contains("Approved,Issued"), "{csr_view}");
    assert!(
        csr_view.contains(&format!("system:bootstrap:{}", &token[..6])),
        "{csr_view}"
    );
    let cert = dir.join("joiner.crt");
    let decoded = common::run_with_stdin(
        {
            let mut c = Command::new("base64");
            c.arg("-d");
            c
        },
        certificate.trim(),
    );
    std::fs::write(&cert, decoded.stdout).unwrap();

    // The certificate is the node's identity.
    let node = dir.join("joiner.kubeconfig");
    let mut cmd = s.kubectl_cmd(&[
        "config",
        "set-credentials",
        "joiner",
        "--client-certificate",
    ]);
    cmd.arg(&cert)
        .arg("--client-key")
        .arg(&key)
        .arg("--embed-certs")
        .env("KUBECONFIG", &node);
    assert!(cmd.status().unwrap().success());
    let server = s.url();
    for args in [
        vec![
            "config",
            "set-cluster",
            "skiff",
            "--server",
            server.as_str(),
            "--embed-certs",
            "--certificate-authority",
            s.ca().to_str().unwrap(),
        ],
        vec![
            "config",
            "set-context",
            "skiff",
            "--cluster",
            "skiff",
            "--user",
            "joiner",
        ],
        vec!["config", "use-context", "skiff"],
    ] {
        let mut cmd = s.kubectl_cmd(&args);
        cmd.env("KUBECONFIG", &node);
        assert!(cmd.status().unwrap().success());
    }
    let out = kubectl_as(&s, &node, &["auth", "whoami"]);
    let whoami = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        whoami.contains("system:node:joiner") && whoami.contains("system:nodes"),
        "{whoami} {}",
        stderr(&out)
    );
    let out = kubectl_as(&s, &node, &["get", "node", "joiner"]);
    assert!(
        stderr(&out).contains("NotFound") || stderr(&out).contains("not found"),
        "{}",
        stderr(&out)
    );
    // A certificate from another CA does not verify: as upstream's x509 authenticator, that
    // fails the request (401) rather than leaving it anonymous.
    let stranger = dir.join("stranger");
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-keyout",
        ])
        .arg(stranger.with_extension("key"))
        .arg("-out")
        .arg(stranger.with_extension("crt"))
        .args(["-subj", "/O=system:masters/CN=mallory"])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(s.ca())
        .arg("--cert")
        .arg(stranger.with_extension("crt"))
        .arg("--key")
        .arg(stranger.with_extension("key"))
        .arg(format!("{}/api/v1/namespaces", s.url()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
}
