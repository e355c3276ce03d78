//! Whether an authenticated caller may use the kubelet API (upstream's
//! `GetRequestAttributes` in `pkg/kubelet/server/auth.go` and the filter in `server.go`).
//!
//! Every request is a question about this kubelet's Node object: resource `nodes`, name the
//! node name, API version `v1`, the verb from the HTTP method (GET → get, POST → create, PUT →
//! update, PATCH → patch, DELETE → delete; any other method, HEAD included, has no verb, as
//! upstream's mapping has none), and a subresource from the path: `/stats…` → stats,
//! `/metrics…` → metrics, `/logs/…` → log, `/checkpoint/…` → checkpoint, `/statusz` → statusz,
//! `/flagz` → configz, anything else → proxy. Since fine-grained kubelet authorization (GA and
//! locked on in 1.36) `/pods`, `/runningpods/`, `/allocatedPods`, `/healthz` and `/configz`
//! first ask for a subresource of their own (pods, healthz, configz) and then for proxy: the
//! caller may in when either is allowed. So exec, attach, port-forward and container logs are
//! `nodes/proxy` — a WebSocket exec is a GET, verb get, as upstream's kubelet sees it; the
//! stricter `create` check on `pods/exec` belongs to the API server, which has it.
//!
//! With `--authorization-mode Webhook` (the default, as kubeadm configures kubelets) each
//! question goes to the API server as a SubjectAccessReview with the caller's name, uid,
//! groups and extra; answers are cached, keyed by the review's spec: allowed for 5 minutes,
//! denied for 30 seconds (upstream's `cacheAuthorizedTTL` and `cacheUnauthorizedTTL`
//! defaults). A denial is a 403 with upstream's text; a review that fails is a 500 and is not
//! cached. `AlwaysAllow` lets every authenticated caller do anything (upstream's bare flag
//! default, for clusters without RBAC).

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

use super::authn::User;
use super::cache::TtlCache;
use crate::config::AuthorizationMode;

/// How long an allowed answer is reused.
pub const ALLOWED_TTL: Duration = Duration::from_secs(300);
/// How long a denied answer is reused.
pub const DENIED_TTL: Duration = Duration::from_secs(30);

/// Upstream's verb for an HTTP method ("" for methods it does not map, HEAD included).
pub fn verb(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        Method::GET => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
}

/// Upstream's `isSubpath`: `path` is `prefix` (without a trailing slash) or below it.
fn is_subpath(path: &str, prefix: &str) -> bool {
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The `nodes` subresources a request for `path` asks about, in order; any one allowed lets
/// it in.
pub fn subresources(path: &str) -> Vec<&'static str> {
    let mut out = Vec::with_capacity(2);
    // Fine-grained kubelet authorization (upstream's KubeletFineGrainedAuthz, always on).
    if is_subpath(path, "/allocatedPods") || is_subpath(path, "/pods") {
        out.push("pods");
    } else if is_subpath(path, "/healthz") {
        out.push("healthz");
    } else if is_subpath(path, "/configz") {
        out.push("configz");
    } else if is_subpath(path, "/runningpods/") {
        out.push("pods");
    }
    out.push(if is_subpath(path, "/stats/") {
        "stats"
    } else if is_subpath(path, "/metrics") {
        "metrics"
    } else if is_subpath(path, "/logs/") {
        "log"
    } else if is_subpath(path, "/checkpoint/") {
        "checkpoint"
    } else if is_subpath(path, "/statusz") {
        "statusz"
    } else if is_subpath(path, "/flagz") {
        "configz"
    } else {
        "proxy"
    });
    out
}

/// Upstream's 403 text (with its newline), naming every subresource that was asked about.
pub fn forbidden_message(user: &str, verb: &str, subresources: &[&str]) -> String {
    format!(
        "Forbidden (user={user}, verb={verb}, resource=nodes, subresource(s)=[{}])\n",
        subresources.join(" ")
    )
}

/// Upstream's 500 text when a review could not be made.
pub fn error_message(user: &str, verb: &str, subresource: &str) -> String {
    format!(
        "Authorization error (user={user}, verb={verb}, resource=nodes, subresource={subresource})"
    )
}

/// The SubjectAccessReview spec for one question.
pub fn review_spec(
    user: &User,
    node: &str,
    verb: &str,
    subresource: &str,
) -> SubjectAccessReviewSpec {
    SubjectAccessReviewSpec {
        user: Some(user.name.clone()),
        uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
        groups: Some(user.groups.clone()),
        extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
        resource_attributes: Some(ResourceAttributes {
            verb: Some(verb.to_string()),
            version: Some("v1".into()),
            resource: Some("nodes".into()),
            subresource: Some(subresource.to_string()),
            name: Some(node.to_string()),
            ..ResourceAttributes::default()
        }),
        non_resource_attributes: None,
    }
}

/// Why a request may not go on: the status and text to answer with.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

pub struct Authorizer {
    mode: AuthorizationMode,
    client: kube::Client,
    node: String,
    /// The review's spec (JSON) → allowed.
    answers: TtlCache<String, bool>,
}

impl Authorizer {
    pub fn new(mode: AuthorizationMode, client: kube::Client, node: String) -> Authorizer {
        Authorizer {
            mode,
            client,
            node,
            answers: TtlCache::new(4096),
        }
    }

    /// Lets `user`'s `method` request for `path` in, or says why not.
    pub async fn authorize(&self, user: &User, method: &Method, path: &str) -> Result<(), Refusal> {
        if self.mode == AuthorizationMode::AlwaysAllow {
            return Ok(());
        }
        let verb = verb(method);
        let subresources = subresources(path);
        for subresource in &subresources {
            let spec = review_spec(user, &self.node, verb, subresource);
            match self.allowed(spec).await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(user = %user.name, verb, subresource, "authorization error: {e}");
                    return Err(Refusal {
                        status: StatusCode::INTERNAL_SERVER_ERROR,
                        message: error_message(&user.name, verb, subresource),
                    });
                }
            }
        }
        tracing::debug!(user = %user.name, verb, ?subresources, "forbidden");
        Err(Refusal {
            status: StatusCode::FORBIDDEN,
            message: forbidden_message(&user.name, verb, &subresources),
        })
    }

    /// The API server's answer to `spec`, from the cache or a SubjectAccessReview.
    async fn allowed(&self, spec: SubjectAccessReviewSpec) -> Result<bool, kube::Error> {
        let key = serde_json::to_string(&spec).unwrap_or_default();
        if let Some(allowed) = self.answers.get(&key, Instant::now()) {
            return Ok(allowed);
        }
        let review = SubjectAccessReview {
            spec,
            ..SubjectAccessReview::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api.create(&PostParams::default(), &review).await?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        let ttl = if allowed { ALLOWED_TTL } else { DENIED_TTL };
        self.answers.insert(key, allowed, ttl, Instant::now());
        Ok(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_from_methods_as_upstream() {
        assert_eq!(verb(&Method::GET), "get");
        assert_eq!(verb(&Method::POST), "create");
        assert_eq!(verb(&Method::PUT), "update");
        assert_eq!(verb(&Method::PATCH), "patch");
        assert_eq!(verb(&Method::DELETE), "delete");
        assert_eq!(verb(&Method::HEAD), "");
        assert_eq!(verb(&Method::OPTIONS), "");
    }

    #[test]
    fn paths_to_subresources_as_upstream() {
        let cases: &[(&str, &[&str])] = &[
            ("/pods", &["pods", "proxy"]),
            ("/pods/", &["pods", "proxy"]),
            ("/podsx", &["proxy"]),
            ("/runningpods/", &["pods", "proxy"]),
            ("/allocatedPods", &["pods", "proxy"]),
            ("/healthz", &["healthz", "proxy"]),
            ("/healthz/ping", &["healthz", "proxy"]),
            ("/configz", &["configz", "proxy"]),
            ("/flagz", &["configz"]),
            ("/statusz", &["statusz"]),
            ("/stats", &["stats"]),
            ("/stats/summary", &["stats"]),
            ("/metrics", &["metrics"]),
            ("/metrics/cadvisor", &["metrics"]),
            ("/metrics/resource", &["metrics"]),
            ("/metricsx", &["proxy"]),
            ("/logs/", &["log"]),
            ("/logs/syslog", &["log"]),
            ("/checkpoint/ns/pod/c", &["checkpoint"]),
            ("/containerLogs/ns/pod/c", &["proxy"]),
            ("/exec/ns/pod/c", &["proxy"]),
            ("/attach/ns/pod/c", &["proxy"]),
            ("/portForward/ns/pod", &["proxy"]),
            ("/spec/", &["proxy"]),
            ("/", &["proxy"]),
        ];
        for (path, expected) in cases {
            assert_eq!(subresources(path), *expected, "{path}");
        }
    }

    #[test]
    fn forbidden_text_as_upstream() {
        assert_eq!(
            forbidden_message(
                "system:serviceaccount:default:default",
                "get",
                &["pods", "proxy"]
            ),
            "Forbidden (user=system:serviceaccount:default:default, verb=get, resource=nodes, subresource(s)=[pods proxy])\n"
        );
        assert_eq!(
            forbidden_message("jane", "create", &["proxy"]),
            "Forbidden (user=jane, verb=create, resource=nodes, subresource(s)=[proxy])\n"
        );
        assert_eq!(
            error_message("jane", "get", "stats"),
            "Authorization error (user=jane, verb=get, resource=nodes, subresource=stats)"
        );
    }

    #[test]
    fn reviews_ask_about_this_node() {
        let user = User {
            name: "jane".into(),
            uid: "42".into(),
            groups: vec!["dev".into(), "system:authenticated".into()],
            extra: [("scopes".to_string(), vec!["a".to_string()])].into(),
        };
        let spec = review_spec(&user, "node-1", "get", "proxy");
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "user": "jane", "uid": "42", "groups": ["dev", "system:authenticated"],
                "extra": {"scopes": ["a"]},
                "resourceAttributes": {"verb": "get", "version": "v1", "resource": "nodes",
                                       "subresource": "proxy", "name": "node-1"},
            })
        );
    }

    /// A client answering every SubjectAccessReview with `allowed` for the subresources in
    /// `allow`, counting the reviews.
    fn reviewer(
        allow: &'static [&'static str],
        count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> kube::Client {
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let count = count.clone();
            async move {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = req.into_body().collect_bytes().await.unwrap();
                let mut review: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let sub = review["spec"]["resourceAttributes"]["subresource"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                review["status"] = serde_json::json!({"allowed": allow.contains(&sub.as_str())});
                Ok::<_, std::convert::Infallible>(http::Response::new(kube::client::Body::from(
                    serde_json::to_vec(&review).unwrap(),
                )))
            }
        });
        kube::Client::new(service, "default")
    }

    #[tokio::test]
    async fn any_allowed_subresource_lets_in_and_answers_are_cached() {
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let authz = Authorizer::new(
            AuthorizationMode::Webhook,
            reviewer(&["pods"], count.clone()),
            "node-1".into(),
        );
        let user = User {
            name: "jane".into(),
            ..User::default()
        };
        // nodes/pods is allowed: /pods is in after one review.
        authz.authorize(&user, &Method::GET, "/pods").await.unwrap();
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
        // nodes/proxy is not: exec is a 403 with upstream's text.
        let refusal = authz
            .authorize(&user, &Method::POST, "/exec/ns/p/c")
            .await
            .unwrap_err();
        assert_eq!(refusal.status, StatusCode::FORBIDDEN);
        assert_eq!(
            refusal.message,
            "Forbidden (user=jane, verb=create, resource=nodes, subresource(s)=[proxy])\n"
        );
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
        // Both answers come from the cache now.
        authz.authorize(&user, &Method::GET, "/pods").await.unwrap();
        assert!(authz
            .authorize(&user, &Method::POST, "/exec/ns/p/c")
            .await
            .is_err());
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
        // AlwaysAllow asks nobody.
        let open = Authorizer::new(
            AuthorizationMode::AlwaysAllow,
            reviewer(&[], count.clone()),
            "node-1".into(),
        );
        open.authorize(&user, &Method::POST, "/exec/ns/p/c")
            .await
            .unwrap();
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
