//! The entry points as the handlers call them, over a Lookup that holds a few objects: which
//! plugin runs for which write, and what reaches the client.

use std::sync::Arc;

use futures::executor::block_on;
use futures::future::BoxFuture;
use serde_json::{json, Value};

use super::*;
use crate::resources::{self, RESOURCES};

/// The verdict and warnings of the validating phase.
async fn validate(
    lookup: &dyn Lookup,
    req: &Request<'_>,
    object: &Value,
    old: Option<&Value>,
) -> ApiResult<Vec<String>> {
    let mut out = Outcome::default();
    super::validate(lookup, req, object, old, &mut out)
        .await
        .map(|()| out.warnings)
}

struct Objects(Vec<(&'static str, Value)>);

impl Lookup for Objects {
    fn list<'a>(
        &'a self,
        _group: &'a str,
        resource: &'a str,
    ) -> BoxFuture<'a, ApiResult<Vec<Arc<Value>>>> {
        let found = self
            .0
            .iter()
            .filter(|(r, _)| *r == resource)
            .map(|(_, o)| Arc::new(o.clone()))
            .collect();
        Box::pin(async move { Ok(found) })
    }
}

fn info(group: &str, resource: &str) -> &'static ResourceInfo {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.resource == resource)
        .unwrap()
}

fn objects() -> Objects {
    Objects(vec![
        (
            "namespaces",
            json!({"metadata": {"name": "secure", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}),
        ),
        ("namespaces", json!({"metadata": {"name": "open"}})),
        (
            "limitranges",
            json!({"metadata": {"name": "lr", "namespace": "open"}, "spec": {"limits": [
                {"type": "Container", "max": {"cpu": "1"}}]}}),
        ),
        (
            "pods",
            json!({"metadata": {"name": "old", "namespace": "open"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
        ),
    ])
}

fn request<'a>(
    info: &'static ResourceInfo,
    operation: Operation,
    namespace: Option<&'a str>,
    name: &'a str,
    user: &'a UserInfo,
) -> Request<'a> {
    Request {
        info,
        sub: None,
        operation,
        namespace,
        name,
        user,
        dry_run: false,
    }
}

#[test]
fn pods_get_limit_range_defaults_then_pod_security() {
    let lookup = objects();
    let user = UserInfo::default();
    let pods = info("", "pods");
    let mut pod = json!({"metadata": {"name": "p", "namespace": "open"},
        "spec": {"containers": [{"name": "c", "image": "x", "resources": {}}]}});
    let req = request(pods, Operation::Create, Some("open"), "p", &user);
    block_on(mutate(&lookup, &req, &mut pod)).unwrap();
    assert_eq!(
        pod["spec"]["containers"][0]["resources"],
        json!({"limits": {"cpu": "1"}, "requests": {"cpu": "1"}})
    );
    assert_eq!(
        block_on(validate(&lookup, &req, &pod, None)).unwrap(),
        Vec::<String>::new()
    );

    let mut big = pod.clone();
    big["spec"]["containers"][0]["resources"]["limits"]["cpu"] = json!("2");
    let err = block_on(validate(&lookup, &req, &big, None)).unwrap_err();
    assert_eq!(
        err.message,
        r#"pods "p" is forbidden: maximum cpu usage per Container is 1, but limit is 2"#
    );

    let req = request(pods, Operation::Create, Some("secure"), "p", &user);
    let err = block_on(validate(&lookup, &req, &pod, None)).unwrap_err();
    assert!(err
        .message
        .starts_with(r#"pods "p" is forbidden: violates PodSecurity "restricted:latest": "#));
    // A status write is not checked.
    let status = Request {
        sub: Some(Sub::Status),
        ..request(pods, Operation::Update, Some("secure"), "p", &user)
    };
    assert!(block_on(validate(&lookup, &status, &pod, Some(&pod))).is_ok());
}

#[test]
fn workloads_warn_and_namespaces_list_their_pods() {
    let lookup = objects();
    let user = UserInfo::default();
    let deployment = json!({"metadata": {"name": "d", "namespace": "secure"}, "spec": {"template": {
        "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": true}}]}}}});
    let req = request(
        info("apps", "deployments"),
        Operation::Create,
        Some("secure"),
        "d",
        &user,
    );
    let warnings = block_on(validate(&lookup, &req, &deployment, None)).unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].starts_with(r#"would violate PodSecurity "restricted:latest": privileged (container "c" must not set securityContext.privileged=true)"#));

    let namespaces = resources::namespaces();
    let old = json!({"metadata": {"name": "open"}});
    let new = json!({"metadata": {"name": "open", "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}});
    let req = request(namespaces, Operation::Update, None, "open", &user);
    assert_eq!(
        block_on(validate(&lookup, &req, &new, Some(&old))).unwrap(),
        Vec::<String>::new()
    );
    let restricted = json!({"metadata": {"name": "open", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    assert_eq!(
        block_on(validate(&lookup, &req, &restricted, Some(&old))).unwrap(),
        [
            r#"existing pods in namespace "open" violate the new PodSecurity enforce level "restricted:latest""#,
            "old: allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile",
        ]
    );
}

/// `--disable-admission-plugins=LimitRanger,PodSecurity`.
struct Disabled(Objects);

impl Lookup for Disabled {
    fn list<'a>(
        &'a self,
        group: &'a str,
        resource: &'a str,
    ) -> BoxFuture<'a, ApiResult<Vec<Arc<Value>>>> {
        self.0.list(group, resource)
    }
    fn admission_enabled(&self, name: &str) -> bool {
        !["LimitRanger", "PodSecurity"].contains(&name)
    }
}

#[test]
fn disabled_plugins_do_nothing() {
    let lookup = Disabled(objects());
    let user = UserInfo::default();
    let pods = info("", "pods");
    let mut pod = json!({"metadata": {"name": "p", "namespace": "open"},
        "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "2"}}}]}});
    let req = request(pods, Operation::Create, Some("open"), "p", &user);
    block_on(mutate(&lookup, &req, &mut pod)).unwrap();
    assert!(pod["metadata"].get("annotations").is_none());
    assert!(block_on(validate(&lookup, &req, &pod, None)).is_ok());
    let req = request(pods, Operation::Create, Some("secure"), "p", &user);
    assert!(block_on(validate(&lookup, &req, &pod, None)).is_ok());
}
