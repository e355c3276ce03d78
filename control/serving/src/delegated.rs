//! Authentication and authorization delegated to the API server, as k8s.io/apiserver's
//! `DelegatingAuthenticationOptions`/`DelegatingAuthorizationOptions` configure them for
//! kube-controller-manager and kube-scheduler:
//!
//! - a bearer token is checked with a TokenReview; a token the API server does not accept (or
//!   cannot review) is `401 Unauthorized`, whatever the path. No token is the anonymous user
//!   (`system:anonymous`, group `system:unauthenticated`). Client certificates are not asked
//!   for (upstream reads their CA from the ConfigMap `kube-system/extension-apiserver-authentication`,
//!   which skiff's API server does not publish).
//! - the always-allowed paths (upstream's `--authorization-always-allow-paths`, by default
//!   `/healthz`, `/readyz`, `/livez`; a trailing `*` matches a prefix) and the group
//!   `system:masters` pass; anything else is a SubjectAccessReview of the non-resource request
//!   (`get /metrics`), refused as upstream refuses it: `403`, `forbidden: User "…" cannot get
//!   path "/metrics"`.
//!
//! Answers are cached for 10 s (upstream's `--authentication-token-webhook-cache-ttl` and
//! `--authorization-webhook-cache-{authorized,unauthorized}-ttl` defaults).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use parking_lot::Mutex;

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

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// 401: a token was given and not accepted.
    Unauthorized,
    /// 403 with upstream's message.
    Forbidden(String),
    /// 500: the API server could not answer the access review.
    Error(String),
}

/// `(user, verb, path)`.
type Request = (User, String, String);
/// `(allowed, reason)`.
type Decision = (bool, String);

pub struct Delegated {
    client: kube::Client,
    always_allow_paths: Vec<String>,
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
        Delegated {
            client,
            always_allow_paths,
            tokens: Mutex::new(HashMap::new()),
            decisions: Mutex::new(HashMap::new()),
        }
    }

    /// The verdict on `verb path` with this `Authorization` header.
    pub async fn check(&self, authorization: Option<&str>, verb: &str, path: &str) -> Verdict {
        let user = match bearer_token(authorization) {
            None => User::anonymous(),
            Some(token) => match self.authenticate(token).await {
                Some(user) => user,
                None => return Verdict::Unauthorized,
            },
        };
        if always_allowed(&self.always_allow_paths, path)
            || user.groups.iter().any(|g| g == ALWAYS_ALLOW_GROUP)
        {
            return Verdict::Allow;
        }
        match self.authorize(&user, verb, path).await {
            Ok((true, _)) => Verdict::Allow,
            Ok((false, reason)) => {
                Verdict::Forbidden(forbidden_message(&user.name, verb, path, &reason))
            }
            Err(e) => Verdict::Error(e),
        }
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

    /// A SubjectAccessReview of `verb path` for `user`: (allowed, reason).
    async fn authorize(
        &self,
        user: &User,
        verb: &str,
        path: &str,
    ) -> Result<(bool, String), String> {
        let key = (user.clone(), verb.to_string(), path.to_string());
        if let Some(decision) = cached(&self.decisions, &key) {
            return Ok(decision);
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone().into_iter().collect()),
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(path.to_string()),
                    verb: Some(verb.to_string()),
                }),
                ..SubjectAccessReviewSpec::default()
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
