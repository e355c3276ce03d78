//! Dynamic admission driven by the real kubectl against one `skiff server`: admission webhooks
//! served by a small HTTPS server the test runs (`tests/python/webhook_server.py`, with a
//! certificate from a CA the test makes) and ValidatingAdmissionPolicies. Every configuration
//! is confined to its section's namespace (a namespaceSelector or matchConstraints), so the
//! sections do not see each other's webhooks.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use base64::Engine;
use common::{free_port, wait_until, ServerProcess};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::Value;

/// The webhook server process and its files; killed (by its own pid) when dropped.
struct WebhookServer {
    child: Child,
    port: u16,
    /// The CA bundle of the server's certificate, base64 as `caBundle` holds it.
    ca_bundle: String,
    _dir: tempfile::TempDir,
}

impl WebhookServer {
    /// A server whose certificate names 127.0.0.1 and `dns_name`.
    fn start(dns_name: &str) -> WebhookServer {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.clone().self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, &ca_key);
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), dns_name.to_string()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let cert_path = dir.path().join("tls.crt");
        let key_path = dir.path().join("tls.key");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/webhook_server.py"
        );
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&cert_path)
            .arg(&key_path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the webhook server's port");
        WebhookServer {
            child,
            port,
            ca_bundle: base64::engine::general_purpose::STANDARD.encode(ca_cert.pem()),
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// GET `path` (`/last`, `/count`) from the server.
    fn get(&self, path: &str) -> Value {
        let out = Command::new("curl")
            .args(["-sSk", &self.url(path)])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn apply(s: &ServerProcess, manifest: &str) {
    let out = s.kubectl_stdin(&["apply", "-f", "-"], manifest);
    assert!(out.status.success(), "apply failed: {}", stderr(&out));
}

/// `kubectl create -f -` in `namespace`: (succeeded, stderr).
fn create(s: &ServerProcess, namespace: &str, manifest: &str) -> (bool, String) {
    let out = s.kubectl_stdin(&["create", "-n", namespace, "-f", "-"], manifest);
    (out.status.success(), stderr(&out))
}

fn create_ok(s: &ServerProcess, namespace: &str, manifest: &str) -> String {
    let (ok, err) = create(s, namespace, manifest);
    assert!(ok, "create failed: {err}");
    err
}

/// Creates `manifest` (a ConfigMap named `name`) until admission refuses it — a configuration
/// just stored reaches the API server's cache a moment later — deleting what got through.
fn refused_eventually(s: &ServerProcess, namespace: &str, name: &str, manifest: &str) -> String {
    let mut refusal = String::new();
    wait_until("the configuration to take effect", || {
        let (ok, err) = create(s, namespace, manifest);
        if ok {
            s.kubectl_ok(&["delete", "-n", namespace, name, "--wait=false"]);
        }
        refusal = err;
        !ok
    });
    refusal
}

fn configmap(name: &str, labels: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, labels: {{{labels}}}}}\n")
}

fn namespace(s: &ServerProcess, name: &str) {
    s.kubectl_ok(&["create", "namespace", name]);
    s.kubectl_ok(&["label", "namespace", name, &format!("webhooks={name}")]);
}

/// A ValidatingWebhookConfiguration with one webhook on ConfigMaps in namespace `ns`.
fn validating(name: &str, ns: &str, client: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: {name}}}
webhooks:
- name: {name}.example.com
  clientConfig: {client}
  rules:
  - {{operations: [CREATE, UPDATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}}
  namespaceSelector: {{matchLabels: {{webhooks: {ns}}}}}
  sideEffects: None
  admissionReviewVersions: [v1]
{extra}"#
    )
}

fn validating_webhooks(s: &ServerProcess, hooks: &WebhookServer) {
    namespace(s, "vwh");
    let client = format!(
        "{{url: \"{}\", caBundle: {}}}",
        hooks.url("/validate"),
        hooks.ca_bundle
    );
    apply(
        s,
        &validating(
            "deny",
            "vwh",
            &client,
            "  objectSelector: {matchExpressions: [{key: skip-webhook, operator: DoesNotExist}]}\n  \
             matchConditions:\n  - {name: not-excluded, expression: \"object.metadata.name != 'excluded'\"}\n",
        ),
    );
    let refusal = refused_eventually(s, "vwh", "cm/denied", &configmap("denied", "deny: x"));
    assert!(
        refusal.contains(
            r#"Error from server (Forbidden): error when creating "STDIN": admission webhook "deny.example.com" denied the request: the label deny is not allowed here"#
        ),
        "{refusal}"
    );
    // The request the webhook got.
    let last = hooks.get("/last");
    assert_eq!(last["operation"], "CREATE");
    assert_eq!(last["namespace"], "vwh");
    assert_eq!(last["name"], "denied");
    assert_eq!(last["kind"]["kind"], "ConfigMap");
    assert_eq!(last["resource"]["resource"], "configmaps");
    assert_eq!(last["userInfo"]["username"], "admin");
    assert_eq!(last["dryRun"], false);
    assert_eq!(last["object"]["metadata"]["labels"]["deny"], "x");
    assert!(last["oldObject"].is_null());
    assert!(last["path"].as_str().unwrap().ends_with("?timeout=10s"));

    // Warnings reach kubectl.
    let warned = create_ok(s, "vwh", &configmap("warned", "warn: x"));
    assert!(
        warned.contains("Warning: this object carries the warn label"),
        "{warned}"
    );
    // Updates are checked too, with the old object.
    let out = s.kubectl(&["label", "-n", "vwh", "cm", "warned", "deny=x"]);
    assert!(
        stderr(&out).contains(r#"admission webhook "deny.example.com" denied the request: the label deny is not allowed here"#),
        "{}",
        stderr(&out)
    );
    let last = hooks.get("/last");
    assert_eq!(last["operation"], "UPDATE");
    assert_eq!(last["oldObject"]["metadata"]["name"], "warned");
    // The objectSelector, the matchCondition and the namespaceSelector exclude.
    create_ok(s, "vwh", &configmap("skipped", "deny: x, skip-webhook: x"));
    create_ok(s, "vwh", &configmap("excluded", "deny: x"));
    s.kubectl_ok(&["create", "namespace", "unlabelled"]);
    create_ok(s, "unlabelled", &configmap("elsewhere", "deny: x"));
    // A server-side dry run reaches a webhook without side effects, flagged as one.
    let out = s.kubectl_stdin(
        &["create", "-n", "vwh", "--dry-run=server", "-f", "-"],
        &configmap("dry", "deny: x"),
    );
    assert!(
        stderr(&out).contains(r#"admission webhook "deny.example.com" denied the request"#),
        "{}",
        stderr(&out)
    );
    assert_eq!(hooks.get("/last")["dryRun"], true);
    assert_eq!(hooks.get("/last")["options"]["dryRun"][0], "All");
    s.kubectl_ok(&["delete", "validatingwebhookconfiguration", "deny"]);

    // Deletions are admitted too: the webhook gets the object being deleted as oldObject.
    namespace(s, "vwh-delete");
    create_ok(s, "vwh-delete", &configmap("kept", "deny: x"));
    apply(
        s,
        &validating("protect", "vwh-delete", &client, "").replace("[CREATE, UPDATE]", "[DELETE]"),
    );
    let mut refusal = String::new();
    wait_until("the deletion to be refused", || {
        let out = s.kubectl(&["delete", "-n", "vwh-delete", "cm", "kept"]);
        refusal = stderr(&out);
        !out.status.success()
    });
    assert!(
        refusal.contains(r#"admission webhook "protect.example.com" denied the request: the label deny is not allowed here"#),
        "{refusal}"
    );
    let last = hooks.get("/last");
    assert_eq!(last["operation"], "DELETE");
    assert!(last["object"].is_null(), "{last}");
    assert_eq!(last["oldObject"]["metadata"]["name"], "kept");
    assert_eq!(last["options"]["kind"], "DeleteOptions");
    s.kubectl_ok(&["get", "-n", "vwh-delete", "cm", "kept"]);
    s.kubectl_ok(&["delete", "validatingwebhookconfiguration", "protect"]);
    wait_until("the deletion to go through", || {
        s.kubectl(&["delete", "-n", "vwh-delete", "cm", "kept"])
            .status
            .success()
    });
}

fn failure_policies(s: &ServerProcess, hooks: &WebhookServer) {
    namespace(s, "failing");
    let down = free_port();
    let client = format!(
        "{{url: \"https://127.0.0.1:{down}/validate\", caBundle: {}}}",
        hooks.ca_bundle
    );
    apply(
        s,
        &validating("down", "failing", &client, "  failurePolicy: Fail\n"),
    );
    let refusal = refused_eventually(s, "failing", "cm/a", &configmap("a", ""));
    assert!(
        refusal.contains(&format!(
            r#"Error from server (InternalError): error when creating "STDIN": Internal error occurred: failed calling webhook "down.example.com": failed to call webhook: Post "https://127.0.0.1:{down}/validate?timeout=10s": dial tcp 127.0.0.1:{down}: connect: connection refused"#
        )),
        "{refusal}"
    );
    apply(
        s,
        &validating("down", "failing", &client, "  failurePolicy: Ignore\n"),
    );
    wait_until("failurePolicy Ignore", || {
        create(s, "failing", &configmap("b", "")).0
    });
    // A webhook slower than its timeout.
    let slow = format!(
        "{{url: \"{}\", caBundle: {}}}",
        hooks.url("/slow"),
        hooks.ca_bundle
    );
    apply(
        s,
        &validating(
            "down",
            "failing",
            &slow,
            "  failurePolicy: Fail\n  timeoutSeconds: 1\n",
        ),
    );
    let refusal = refused_eventually(s, "failing", "cm/c", &configmap("c", ""));
    assert!(
        refusal.contains(&format!(
            r#"failed calling webhook "down.example.com": failed to call webhook: Post "{}?timeout=1s": context deadline exceeded"#,
            hooks.url("/slow")
        )),
        "{refusal}"
    );
    // A CA that did not sign the server's certificate.
    let other = WebhookServer::start("other.example.com");
    let wrong_ca = format!(
        "{{url: \"{}\", caBundle: {}}}",
        hooks.url("/validate"),
        other.ca_bundle
    );
    apply(
        s,
        &validating("down", "failing", &wrong_ca, "  failurePolicy: Fail\n"),
    );
    let refusal = refused_eventually(s, "failing", "cm/d", &configmap("d", ""));
    assert!(
        refusal
            .contains(r#"failed calling webhook "down.example.com": failed to call webhook: Post"#)
            && refusal.contains("certificate"),
        "{refusal}"
    );
    s.kubectl_ok(&["delete", "validatingwebhookconfiguration", "down"]);
}

/// A mutating webhook reached through a Service: its endpoint (an EndpointSlice naming the
/// test's server) with the certificate's DNS name `hooks.mwh.svc`.
fn mutating_webhook(s: &ServerProcess, hooks: &WebhookServer) {
    namespace(s, "mwh");
    apply(
        s,
        &format!(
            r#"
apiVersion: v1
kind: Service
metadata: {{name: hooks, namespace: mwh}}
spec:
  ports: [{{name: https, port: 443, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: hooks-1
  namespace: mwh
  labels: {{kubernetes.io/service-name: hooks}}
addressType: IPv4
ports: [{{name: https, port: {port}, protocol: TCP}}]
endpoints: [{{addresses: ["127.0.0.1"], conditions: {{ready: true}}}}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: label}}
webhooks:
- name: label.example.com
  clientConfig:
    service: {{namespace: mwh, name: hooks, path: /mutate, port: 443}}
    caBundle: {ca}
  rules:
  - {{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}}
  namespaceSelector: {{matchLabels: {{webhooks: mwh}}}}
  sideEffects: None
  admissionReviewVersions: [v1]
  reinvocationPolicy: IfNeeded
"#,
            port = hooks.port,
            ca = hooks.ca_bundle
        ),
    );
    let mut n = 0;
    wait_until("the mutating webhook to label a ConfigMap", || {
        n += 1;
        let name = format!("m{n}");
        create_ok(s, "mwh", &configmap(&name, "keep: x"));
        s.kubectl_ok(&[
            "get",
            "cm",
            &name,
            "-n",
            "mwh",
            "-o",
            "jsonpath={.metadata.labels.mutated}",
        ]) == "yes"
    });
    // No labels at all: the patch adds the map.
    let out = s.kubectl_stdin(
        &[
            "create",
            "-n",
            "mwh",
            "-f",
            "-",
            "-o",
            "jsonpath={.metadata.labels}",
        ],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bare}\n",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), r#"{"mutated":"yes"}"#);
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "cm",
            "bare",
            "-n",
            "mwh",
            "-o",
            "jsonpath={.metadata.labels.mutated}"
        ]),
        "yes"
    );
    let last = hooks.get("/last");
    assert_eq!(last["path"], "/mutate?timeout=10s");
    s.kubectl_ok(&["delete", "mutatingwebhookconfiguration", "label"]);
}

const MAX_REPLICAS_POLICY: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: max-replicas}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}
    namespaceSelector: {matchLabels: {webhooks: vap}}
  validations:
  - expression: "object.spec.replicas <= 5"
    message: "replicas must be no greater than 5"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: max-replicas-binding}
spec:
  policyName: max-replicas
  validationActions: [Deny]
  # Narrowed by namespace only: no resourceRules, so every resource the policy matches.
  matchResources: {namespaceSelector: {matchLabels: {webhooks: vap}}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: label-advice}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}
    namespaceSelector: {matchLabels: {webhooks: vap}}
  variables:
  - {name: team, expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"}
  validations:
  - expression: "variables.team"
    messageExpression: "'deployment ' + object.metadata.name + ' has no team label'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: label-advice-binding}
spec:
  policyName: label-advice
  validationActions: [Warn]
"#;

fn deployment(name: &str, replicas: u32, labels: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, labels: {{{labels}}}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: c, image: busybox}}]}}
"#
    )
}

fn admission_policies(s: &ServerProcess) {
    namespace(s, "vap");
    apply(s, MAX_REPLICAS_POLICY);
    let mut refusal = String::new();
    wait_until("the policy to take effect", || {
        let (ok, err) = create(s, "vap", &deployment("big", 6, "team: a"));
        if ok {
            s.kubectl_ok(&["delete", "-n", "vap", "deployment/big", "--wait=false"]);
        }
        refusal = err;
        !ok
    });
    assert!(
        refusal.contains(
            r#"The deployments "big" is invalid: : ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-binding' denied request: replicas must be no greater than 5"#
        ),
        "{refusal}"
    );
    // Within the limit, but without a team label: warned, created.
    let warned = create_ok(s, "vap", &deployment("small", 3, "tier: x"));
    assert!(
        warned.contains(
            "Warning: Validation failed for ValidatingAdmissionPolicy 'label-advice' with binding 'label-advice-binding': deployment small has no team label"
        ),
        "{warned}"
    );
    // Raising replicas past the limit is an update, refused the same way.
    let out = s.kubectl(&[
        "patch",
        "-n",
        "vap",
        "deployment/small",
        "-p",
        r#"{"spec":{"replicas":7}}"#,
    ]);
    assert!(
        stderr(&out).contains("ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-binding' denied request: replicas must be no greater than 5"),
        "{}",
        stderr(&out)
    );
    // Elsewhere the policy does not apply.
    s.kubectl_ok(&["create", "namespace", "vap-free"]);
    create_ok(s, "vap-free", &deployment("big", 6, "team: a"));

    // Params from a ConfigMap: the limit is the ConfigMap's, and a missing one denies.
    apply(
        s,
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: param-limit}
spec:
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}
    namespaceSelector: {matchLabels: {webhooks: vap}}
  validations:
  - expression: "object.spec.replicas <= int(params.data.maxReplicas)"
    messageExpression: "'at most ' + params.data.maxReplicas + ' replicas'"
    reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: param-limit-binding}
spec:
  policyName: param-limit
  validationActions: [Deny]
  paramRef: {name: limits, namespace: vap, parameterNotFoundAction: Deny}
"#,
    );
    let mut refusal = String::new();
    wait_until("the param policy to take effect", || {
        let (ok, err) = create(s, "vap", &deployment("p1", 1, "team: a"));
        if ok {
            s.kubectl_ok(&["delete", "-n", "vap", "deployment/p1", "--wait=false"]);
        }
        refusal = err;
        !ok
    });
    assert!(
        refusal.contains(
            "ValidatingAdmissionPolicy 'param-limit' with binding 'param-limit-binding' denied request: failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"
        ),
        "{refusal}"
    );
    create_ok(
        s,
        "vap",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: limits}\ndata: {maxReplicas: \"2\"}\n",
    );
    let mut refusal = String::new();
    wait_until("the params to be read", || {
        let (ok, err) = create(s, "vap", &deployment("p3", 3, "team: a"));
        if ok {
            s.kubectl_ok(&["delete", "-n", "vap", "deployment/p3", "--wait=false"]);
        }
        refusal = err;
        refusal.contains("at most 2 replicas")
    });
    assert!(
        refusal.contains(
            r#"Error from server (Forbidden): error when creating "STDIN": deployments.apps "p3" is forbidden: ValidatingAdmissionPolicy 'param-limit' with binding 'param-limit-binding' denied request: at most 2 replicas"#
        ),
        "{refusal}"
    );
    create_ok(s, "vap", &deployment("p2", 2, "team: a"));
}

#[test]
fn webhooks_and_policies_with_kubectl() {
    let s = ServerProcess::start();
    let hooks = WebhookServer::start("hooks.mwh.svc");
    validating_webhooks(&s, &hooks);
    failure_policies(&s, &hooks);
    mutating_webhook(&s, &hooks);
    admission_policies(&s);
}
