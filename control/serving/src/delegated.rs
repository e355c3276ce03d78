//! Authentication and authorization delegated to the API server, as k8s.io/apiserver's
//! `DelegatingAuthenticationOptions`/`DelegatingAuthorizationOptions` configure them for
//! kube-controller-manager and kube-scheduler:
//!
//! - a client certificate first, when the server takes them ([`crate::requestheader`]: the
//!   front proxy's user headers, or the client CA's CommonName); then a bearer token, checked
//!   with a TokenReview. A token the API server does not accept (or cannot review), or a
//!   certificate no authenticator accepted with no token that did, is `401 Unauthorized`,
//!   whatever the path. No credential is the anonymous user (`system:anonymous`, group
//!   `system:unauthenticated`). Every authenticated user is also in `system:authenticated`
//!   (upstream's `AuthenticatedGroupAdder`).
//! - the always-allowed paths (upstream's `--authorization-always-allow-paths`, by default
//!   `/healthz`, `/readyz`, `/livez`; a trailing `*` matches a prefix) and the group
//!   `system:masters` pass; anything else is a SubjectAccessReview of the request's attributes
//!   as upstream's `RequestInfoFactory` reads them ([`Attributes::of`]): a resource request
//!   under `/apis/<group>/<version>/` or `/api/<version>/` (`list` metrics.k8s.io `nodes`, `get`
//!   `pods` in a namespace, …) or a non-resource one (`get /metrics`), refused as upstream
//!   refuses it: `403`, `forbidden: User "…" cannot get path "/metrics"`, `nodes.metrics.k8s.io
//!   is forbidden: User "…" cannot list resource "nodes" in API group "metrics.k8s.io" at the
//!   cluster scope`.
//!
//! Answers are cached for 10 s (upstream's `--authentication-token-webhook-cache-ttl` and
//! `--authorization-webhook-cache-{authorized,unauthorized}-ttl` defaults).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use parking_lot::Mutex;
use rustls::pki_types::CertificateDer;

use crate::requestheader::DynamicClientCerts;

const CACHE_TTL: Duration = Duration::from_secs(10);
/// Entries kept before a cache starts over (a flood of distinct tokens must not grow it).
const CACHE_MAX: usize = 1000;

/// Upstream's `--authorization-always-allow-paths` default.
pub const ALWAYS_ALLOW_PATHS: [&str; 3] = ["/healthz", "/readyz", "/livez"];
/// Upstream's `AlwaysAllowGroups`: the API server's own authorizer allows it everything anyway.
const ALWAYS_ALLOW_GROUP: &str = "system:masters";

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct User {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    pub fn anonymous() -> User {
        User {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
            extra: BTreeMap::new(),
        }
    }
}

/// `user` in `system:authenticated` (upstream's `AuthenticatedGroupAdder`).
fn authenticated(mut user: User) -> User {
    if !user.groups.iter().any(|g| g == "system:authenticated") {
        user.groups.push("system:authenticated".into());
    }
    user
}

/// What a request asks to do, as upstream's authorizer sees it (`authorizer.Attributes`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Attributes {
    NonResource {
        verb: String,
        path: String,
    },
    Resource {
        verb: String,
        group: String,
        version: String,
        resource: String,
        subresource: String,
        namespace: String,
        name: String,
    },
}

impl Attributes {
    /// A non-resource request: `verb` (lowercase) on `path`.
    pub fn non_resource(verb: &str, path: &str) -> Attributes {
        Attributes::NonResource {
            verb: verb.to_string(),
            path: path.to_string(),
        }
    }

    /// What a request is, as upstream's `RequestInfoFactory` (API prefixes `/apis` and
    /// `/api`) reads its method, path and query: resource requests need a group, version and
    /// resource in the path; a GET without a name is `list` (or `watch` with `watch=true`),
    /// and a `fieldSelector` of `metadata.name=x` names the object.
    pub fn of(method: &str, path: &str, query: Option<&str>) -> Attributes {
        let non_resource = || Attributes::non_resource(&method.to_ascii_lowercase(), path);
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, mut rest) = match parts.as_slice() {
            ["apis", group, version, rest @ ..] if !rest.is_empty() => {
                (group.to_string(), version.to_string(), rest.to_vec())
            }
            ["api", version, rest @ ..] if !rest.is_empty() => {
                (String::new(), version.to_string(), rest.to_vec())
            }
            _ => return non_resource(),
        };
        let mut verb = match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_string();
        if rest[0] == "watch" && verb == "get" {
            verb = "watch".into();
            rest.remove(0);
            if rest.is_empty() {
                return non_resource();
            }
        }
        let mut namespace = String::new();
        if rest[0] == "namespaces" && rest.len() > 1 {
            namespace = rest[1].to_string();
            // `namespaces/<ns>/status` and `/finalize` are the namespace's own subresources.
            if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                rest.drain(..2);
            }
        }
        let resource = rest[0].to_string();
        let mut name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
        let subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
        let query = |key: &str| {
            query.and_then(|q| {
                q.split('&').find_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (k == key).then(|| percent_decode(v))
                })
            })
        };
        if name.is_empty() && verb == "get" {
            let watch = query("watch").is_some_and(|w| matches!(w.as_str(), "true" | "1"));
            verb = if watch { "watch" } else { "list" }.into();
            if let Some(selector) = query("fieldSelector") {
                if let Some(exact) = exact_name(&selector) {
                    name = exact;
                }
            }
        }
        if name.is_empty() && verb == "delete" {
            verb = "deletecollection".into();
        }
        Attributes::Resource {
            verb,
            group,
            version,
            resource,
            subresource,
            namespace,
            name,
        }
    }

    pub fn verb(&self) -> &str {
        match self {
            Attributes::NonResource { verb, .. } | Attributes::Resource { verb, .. } => verb,
        }
    }
}

/// The name a field selector requires exactly (`metadata.name=x` or `==`), if it is a valid
/// path segment (upstream's `RequiresExactMatch` and `IsValidPathSegmentName`).
fn exact_name(selector: &str) -> Option<String> {
    selector.split(',').find_map(|term| {
        let (field, value) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .filter(|(f, _)| !f.ends_with('!'))?;
        (field.trim() == "metadata.name"
            && !value.is_empty()
            && value != "."
            && value != ".."
            && !value.contains('/')
            && !value.contains('%'))
        .then(|| value.to_string())
    })
}

/// `%XX` and `+` decoded, as a query value.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// 401: a credential was given and not accepted.
    Unauthorized,
    /// 403: upstream's message, and for a resource request the Status details (`group`,
    /// `kind` = the resource, `name`).
    Forbidden(String, Option<ForbiddenDetails>),
    /// 500: the API server could not answer the access review.
    Error(String),
}

#[derive(Debug, PartialEq, Eq)]
pub struct ForbiddenDetails {
    pub group: String,
    pub resource: String,
    pub name: String,
}

type Request = (User, Attributes);
/// `(allowed, reason)`.
type Decision = (bool, String);

pub struct Delegated {
    client: kube::Client,
    always_allow_paths: Vec<String>,
    client_certs: DynamicClientCerts,
    tokens: Mutex<HashMap<String, (Option<User>, Instant)>>,
    decisions: Mutex<HashMap<Request, (Decision, Instant)>>,
}

/// The bearer token of an `Authorization` header as upstream's `bearertoken` authenticator
/// reads it: scheme case-insensitive, an empty token is no token.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let mut parts = header?.trim().splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether `path` is always allowed: an exact entry, or an entry ending in `*` that is its
/// prefix (upstream's path authorizer).
pub fn always_allowed(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => p == path,
    })
}

/// Upstream's forbidden message for a non-resource request.
pub fn forbidden_message(user: &str, verb: &str, path: &str, reason: &str) -> String {
    let message = format!("forbidden: User {user:?} cannot {verb} path {path:?}");
    if reason.is_empty() {
        message
    } else {
        format!("{message}: {reason}")
    }
}

/// Upstream's 403 for `attributes` (`responsewriters.Forbidden`: the authorizer's message in
/// `errors.NewForbidden`'s wording).
pub fn forbidden(user: &str, attributes: &Attributes, reason: &str) -> Verdict {
    let (verb, group, resource, subresource, namespace, name) = match attributes {
        Attributes::NonResource { verb, path } => {
            return Verdict::Forbidden(forbidden_message(user, verb, path, reason), None)
        }
        Attributes::Resource {
            verb,
            group,
            resource,
            subresource,
            namespace,
            name,
            ..
        } => (verb, group, resource, subresource, namespace, name),
    };
    let shown = if subresource.is_empty() {
        resource.clone()
    } else {
        format!("{resource}/{subresource}")
    };
    let mut why = if namespace.is_empty() {
        format!("User {user:?} cannot {verb} resource {shown:?} in API group {group:?} at the cluster scope")
    } else {
        format!("User {user:?} cannot {verb} resource {shown:?} in API group {group:?} in the namespace {namespace:?}")
    };
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    let qualified = if group.is_empty() {
        resource.clone()
    } else {
        format!("{resource}.{group}")
    };
    let message = if name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} {name:?} is forbidden: {why}")
    };
    Verdict::Forbidden(
        message,
        Some(ForbiddenDetails {
            group: group.clone(),
            resource: resource.clone(),
            name: name.clone(),
        }),
    )
}

fn cached<K: std::hash::Hash + Eq, V: Clone>(
    cache: &Mutex<HashMap<K, (V, Instant)>>,
    key: &K,
) -> Option<V> {
    cache
        .lock()
        .get(key)
        .filter(|(_, at)| at.elapsed() < CACHE_TTL)
        .map(|(v, _)| v.clone())
}

fn remember<K: std::hash::Hash + Eq, V>(cache: &Mutex<HashMap<K, (V, Instant)>>, key: K, v: V) {
    let mut cache = cache.lock();
    if cache.len() >= CACHE_MAX {
        cache.clear();
    }
    cache.insert(key, (v, Instant::now()));
}

impl Delegated {
    /// Reviews go to the API server through `client` (the component's own credential, which
    /// upstream's roles let create TokenReviews and SubjectAccessReviews).
    pub fn new(client: kube::Client, always_allow_paths: Vec<String>) -> Delegated {
        Delegated::with_client_certs(client, always_allow_paths, DynamicClientCerts::default())
    }

    /// [`Delegated::new`], also accepting the client certificates `client_certs` allows.
    pub fn with_client_certs(
        client: kube::Client,
        always_allow_paths: Vec<String>,
        client_certs: DynamicClientCerts,
    ) -> Delegated {
        Delegated {
            client,
            always_allow_paths,
            client_certs,
            tokens: Mutex::new(HashMap::new()),
            decisions: Mutex::new(HashMap::new()),
        }
    }

    /// The verdict on the non-resource request `verb path` with this `Authorization` header
    /// (no client certificate).
    pub async fn check(&self, authorization: Option<&str>, verb: &str, path: &str) -> Verdict {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization.and_then(|a| HeaderValue::from_str(a).ok()) {
            headers.insert(axum::http::header::AUTHORIZATION, value);
        }
        self.check_request(&headers, None, &Attributes::non_resource(verb, path))
            .await
            .0
    }

    /// Who sent a request with these headers and client certificates (leaf first): Err is the
    /// 401.
    pub async fn authenticate_request(
        &self,
        headers: &HeaderMap,
        chain: Option<&[CertificateDer<'_>]>,
    ) -> Result<User, ()> {
        let cert_error = match self.client_certs.current().authenticate(chain, headers) {
            Ok(Some(user)) => return Ok(authenticated(user)),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        let authorization = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match (bearer_token(authorization), cert_error) {
            (Some(token), _) => self.authenticate(token).await.map(authenticated).ok_or(()),
            (None, Some(e)) => {
                tracing::debug!("client certificate not accepted: {e}");
                Err(())
            }
            (None, None) => Ok(User::anonymous()),
        }
    }

    /// The verdict on a request: its credentials (headers, client certificates) and what it
    /// asks (`attributes`), and the user it authenticated as (None on a 401).
    pub async fn check_request(
        &self,
        headers: &HeaderMap,
        chain: Option<&[CertificateDer<'_>]>,
        attributes: &Attributes,
    ) -> (Verdict, Option<User>) {
        let Ok(user) = self.authenticate_request(headers, chain).await else {
            return (Verdict::Unauthorized, None);
        };
        let path_allowed = matches!(attributes, Attributes::NonResource { path, .. }
            if always_allowed(&self.always_allow_paths, path));
        if path_allowed || user.groups.iter().any(|g| g == ALWAYS_ALLOW_GROUP) {
            return (Verdict::Allow, Some(user));
        }
        let verdict = match self.authorize(&user, attributes).await {
            Ok((true, _)) => Verdict::Allow,
            Ok((false, reason)) => forbidden(&user.name, attributes, &reason),
            Err(e) => Verdict::Error(e),
        };
        (verdict, Some(user))
    }

    /// The user a TokenReview finds for `token`; None when it is not accepted or the review
    /// failed (upstream answers both with 401).
    async fn authenticate(&self, token: &str) -> Option<User> {
        if let Some(user) = cached(&self.tokens, &token.to_string()) {
            return user;
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let user = match api.create(&PostParams::default(), &review).await {
            Ok(answer) => answer
                .status
                .filter(|s| s.authenticated == Some(true))
                .and_then(|s| s.user)
                .and_then(|u| {
                    Some(User {
                        name: u.username?,
                        uid: u.uid.unwrap_or_default(),
                        groups: u.groups.unwrap_or_default(),
                        extra: u.extra.unwrap_or_default().into_iter().collect(),
                    })
                }),
            Err(e) => {
                // Not cached: the next request asks again.
                tracing::warn!("token review: {e}");
                return None;
            }
        };
        remember(&self.tokens, token.to_string(), user.clone());
        user
    }

    /// A SubjectAccessReview of `attributes` for `user`: (allowed, reason).
    async fn authorize(
        &self,
        user: &User,
        attributes: &Attributes,
    ) -> Result<(bool, String), String> {
        let key = (user.clone(), attributes.clone());
        if let Some(decision) = cached(&self.decisions, &key) {
            return Ok(decision);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone().into_iter().collect()),
                non_resource_attributes: match attributes {
                    Attributes::NonResource { verb, path } => Some(NonResourceAttributes {
                        path: Some(path.clone()),
                        verb: Some(verb.clone()),
                    }),
                    Attributes::Resource { .. } => None,
                },
                resource_attributes: match attributes {
                    Attributes::NonResource { .. } => None,
                    Attributes::Resource {
                        verb,
                        group,
                        version,
                        resource,
                        subresource,
                        namespace,
                        name,
                    } => Some(ResourceAttributes {
                        verb: Some(verb.clone()),
                        group: Some(group.clone()),
                        version: Some(version.clone()),
                        resource: Some(resource.clone()),
                        subresource: (!subresource.is_empty()).then(|| subresource.clone()),
                        namespace: (!namespace.is_empty()).then(|| namespace.clone()),
                        name: (!name.is_empty()).then(|| name.clone()),
                        ..ResourceAttributes::default()
                    }),
                },
            },
            ..SubjectAccessReview::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| format!("subject access review: {e}"))?;
        let status = answer.status.unwrap_or_default();
        let decision = (status.allowed, status.reason.unwrap_or_default());
        remember(&self.decisions, key, decision.clone());
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_as_upstream_reads_them() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("  Bearer abc extra")), Some("abc"));
        assert_eq!(bearer_token(Some("Bearer ")), None, "empty: anonymous");
        assert_eq!(bearer_token(Some("Bearer")), None);
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn always_allowed_paths_are_exact_or_prefixes() {
        let defaults: Vec<String> = ALWAYS_ALLOW_PATHS.iter().map(|p| p.to_string()).collect();
        assert!(always_allowed(&defaults, "/healthz"));
        assert!(always_allowed(&defaults, "/livez"));
        assert!(!always_allowed(&defaults, "/healthz/leaderElection"));
        assert!(!always_allowed(&defaults, "/metrics"));
        assert!(always_allowed(&["/healthz/*".to_string()], "/healthz/ping"));
    }

    #[test]
    fn request_attributes_as_upstreams_request_info() {
        let r = |method, path, query| Attributes::of(method, path, query);
        let res =
            |verb: &str, group: &str, resource: &str, ns: &str, name: &str| Attributes::Resource {
                verb: verb.into(),
                group: group.into(),
                version: if group.is_empty() { "v1" } else { "v1beta1" }.into(),
                resource: resource.into(),
                subresource: String::new(),
                namespace: ns.into(),
                name: name.into(),
            };
        let m = "metrics.k8s.io";
        assert_eq!(
            r("GET", "/apis/metrics.k8s.io/v1beta1/nodes", None),
            res("list", m, "nodes", "", "")
        );
        assert_eq!(
            r("GET", "/apis/metrics.k8s.io/v1beta1/nodes/n1", None),
            res("get", m, "nodes", "", "n1")
        );
        assert_eq!(
            r(
                "GET",
                "/apis/metrics.k8s.io/v1beta1/pods",
                Some("watch=true")
            ),
            res("watch", m, "pods", "", "")
        );
        assert_eq!(
            r(
                "GET",
                "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
                Some("labelSelector=a%3Db")
            ),
            res("list", m, "pods", "default", "")
        );
        assert_eq!(
            r(
                "GET",
                "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web",
                None
            ),
            res("get", m, "pods", "default", "web")
        );
        assert_eq!(
            r(
                "GET",
                "/apis/metrics.k8s.io/v1beta1/pods",
                Some("fieldSelector=metadata.name%3Dweb")
            ),
            res("list", m, "pods", "", "web")
        );
        assert_eq!(
            r("DELETE", "/api/v1/namespaces/x/pods", None),
            res("deletecollection", "", "pods", "x", "")
        );
        // A namespace is its own namespace, as upstream reads it.
        assert_eq!(
            r("GET", "/api/v1/namespaces/x", None),
            res("get", "", "namespaces", "x", "x")
        );
        // Discovery and everything else: non-resource.
        for path in [
            "/apis",
            "/apis/metrics.k8s.io",
            "/apis/metrics.k8s.io/v1beta1",
            "/metrics",
            "/openapi/v2",
        ] {
            assert_eq!(r("GET", path, None), Attributes::non_resource("get", path));
        }
    }

    /// Whatever the path and query, an answer and no panic.
    #[test]
    fn any_request_line_is_read() {
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(
                &(
                    "(/|apis|api|namespaces|watch|x|%|\\.|[a-z]{1,3}){0,9}",
                    proptest::option::of("[a-zA-Z=&%+,.!0-9]{0,40}"),
                    proptest::sample::select(vec!["GET", "POST", "DELETE", "HEAD", "BREW"]),
                ),
                |(path, query, method)| {
                    let attributes = Attributes::of(method, &path, query.as_deref());
                    let _ = forbidden("u", &attributes, "");
                    Ok(())
                },
            )
            .unwrap();
        for (path, query) in [
            ("/apis//", None),
            ("/api", None),
            ("//", Some("fieldSelector=%")),
            ("/apis/g/v/watch", Some("watch")),
            (
                "/apis/g/v/pods",
                Some("fieldSelector=metadata.name%3D%2e%2e"),
            ),
            ("/apis/g/v/pods", Some("fieldSelector=%zz&watch=%")),
        ] {
            let _ = Attributes::of("GET", path, query);
        }
    }

    #[test]
    fn resource_forbidden_as_upstream() {
        let list = Attributes::of("GET", "/apis/metrics.k8s.io/v1beta1/nodes", None);
        let Verdict::Forbidden(message, details) = forbidden("jane", &list, "") else {
            panic!()
        };
        assert_eq!(
            message,
            r#"nodes.metrics.k8s.io is forbidden: User "jane" cannot list resource "nodes" in API group "metrics.k8s.io" at the cluster scope"#
        );
        assert_eq!(details.unwrap().resource, "nodes");
        let get = Attributes::of(
            "GET",
            "/apis/metrics.k8s.io/v1beta1/namespaces/d/pods/web",
            None,
        );
        let Verdict::Forbidden(message, _) = forbidden("jane", &get, "no RBAC policy matched")
        else {
            panic!()
        };
        assert_eq!(
            message,
            r#"pods.metrics.k8s.io "web" is forbidden: User "jane" cannot get resource "pods" in API group "metrics.k8s.io" in the namespace "d": no RBAC policy matched"#
        );
    }

    /// The message upstream's kube-controller-manager gave an anonymous scrape (measured).
    #[test]
    fn forbidden_as_upstream() {
        assert_eq!(
            forbidden_message("system:anonymous", "get", "/metrics", ""),
            r#"forbidden: User "system:anonymous" cannot get path "/metrics""#
        );
        assert_eq!(
            forbidden_message("u", "post", "/x", "no RBAC policy matched"),
            r#"forbidden: User "u" cannot post path "/x": no RBAC policy matched"#
        );
    }
}
