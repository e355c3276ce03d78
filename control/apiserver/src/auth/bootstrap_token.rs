//! Bootstrap tokens (upstream `plugin/pkg/auth/authenticator/token/bootstrap` and
//! `k8s.io/cluster-bootstrap`): a bearer token `<id>.<secret>` (`[a-z0-9]{6}\.[a-z0-9]{16}`)
//! names the Secret `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`;
//! it authenticates while that Secret's `token-secret` matches (compared in constant time), its
//! `token-id` is the id, it is marked `usage-bootstrap-authentication: "true"`, not past its
//! `expiration` (RFC 3339; unparseable counts as expired) and not being deleted. The user is
//! `system:bootstrap:<id>`, in `system:bootstrappers` and the groups of `auth-extra-groups`
//! (comma-separated, each `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`; one bad group
//! fails the token), sorted as upstream's set.
//!
//! Nodes join with such a token (`skiff token create`, as `kubeadm token create`): the kubelet
//! uses it only to create its CertificateSigningRequest (the bootstrappers' RBAC), and from then
//! on its own client certificate.
//!
//! Secrets are read from the watch cache, as upstream's authenticator reads a Secret informer.

use base64::Engine;
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::handlers::ApiServer;

pub const NAMESPACE: &str = "kube-system";
pub const SECRET_PREFIX: &str = "bootstrap-token-";
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
pub const TOKEN_ID_KEY: &str = "token-id";
pub const TOKEN_SECRET_KEY: &str = "token-secret";
pub const EXPIRATION_KEY: &str = "expiration";
pub const DESCRIPTION_KEY: &str = "description";
pub const EXTRA_GROUPS_KEY: &str = "auth-extra-groups";
pub const USAGE_AUTHENTICATION_KEY: &str = "usage-bootstrap-authentication";
pub const USAGE_SIGNING_KEY: &str = "usage-bootstrap-signing";
pub const USER_PREFIX: &str = "system:bootstrap:";
pub const DEFAULT_GROUP: &str = "system:bootstrappers";
/// The extra group `skiff token create` gives node tokens by default (kubeadm's is
/// `system:bootstrappers:kubeadm:default-node-token`): the group the node-bootstrapper and
/// nodeclient-approval bindings name.
pub const DEFAULT_NODE_GROUP: &str = "system:bootstrappers:skiff:default-node-token";

const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;

fn is_token_char(c: u8) -> bool {
    c.is_ascii_digit() || c.is_ascii_lowercase()
}

/// `ParseToken`: the (id, secret) of a well-formed bootstrap token.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = id.len() == ID_LEN
        && secret.len() == SECRET_LEN
        && id.bytes().chain(secret.bytes()).all(is_token_char);
    ok.then_some((id, secret))
}

/// `ValidateBootstrapGroupName`: `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`.
pub fn check_group(group: &str) -> Result<(), String> {
    let ok = group
        .strip_prefix("system:bootstrappers:")
        .is_some_and(|rest| {
            let bytes = rest.as_bytes();
            matches!(bytes.last(), Some(&c) if is_token_char(c))
                && bytes.len() <= 256
                && bytes
                    .iter()
                    .all(|&c| is_token_char(c) || c == b':' || c == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bootstrap group {group:?} is invalid (must match \\Asystem:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]\\z)"
        ))
    }
}

/// A new random token `<6>.<16>` of `[a-z0-9]` (`GenerateBootstrapToken`).
pub fn generate_token() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let mut pick = |n: usize| -> String {
        (0..n)
            .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
            .collect()
    };
    let id = pick(ID_LEN);
    format!("{id}.{}", pick(SECRET_LEN))
}

/// The Secret that makes `token` a bootstrap token, as `kubeadm token create` writes it:
/// usable for authentication and for signing the cluster-info ConfigMap, expiring at
/// `expiration` (RFC 3339) when given, with `extra_groups` (each checked by [`check_group`]).
pub fn secret_for(
    token: &str,
    expiration: Option<&str>,
    extra_groups: &[String],
    description: &str,
) -> Result<Value, String> {
    let (id, secret) = parse_token(token).ok_or_else(|| {
        format!("the bootstrap token {token:?} is not of the form [a-z0-9]{{6}}.[a-z0-9]{{16}}")
    })?;
    for group in extra_groups {
        check_group(group)?;
    }
    let mut data = serde_json::Map::new();
    let mut put = |key: &str, value: &str| {
        data.insert(
            key.into(),
            json!(base64::engine::general_purpose::STANDARD.encode(value)),
        );
    };
    put(TOKEN_ID_KEY, id);
    put(TOKEN_SECRET_KEY, secret);
    put(USAGE_AUTHENTICATION_KEY, "true");
    put(USAGE_SIGNING_KEY, "true");
    if let Some(expiration) = expiration {
        put(EXPIRATION_KEY, expiration);
    }
    if !extra_groups.is_empty() {
        put(EXTRA_GROUPS_KEY, &extra_groups.join(","));
    }
    if !description.is_empty() {
        put(DESCRIPTION_KEY, description);
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": format!("{SECRET_PREFIX}{id}"), "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "data": data,
    }))
}

/// The user `token` authenticates as, looked up in the Secrets' watch cache; None when it is
/// not a bootstrap token or no valid Secret backs it. The groups include
/// `system:authenticated`, as `token_file::Tokens::authenticate` adds it.
pub async fn authenticate(server: &ApiServer, token: &str) -> Option<UserInfo> {
    let (id, secret) = parse_token(token)?;
    let info = crate::resources::find("", "v1", "secrets")?;
    let cache = match server.caches.get(info).await {
        Ok(cache) => cache,
        Err(e) => {
            tracing::warn!(
                "bootstrap token: the Secret cache is not ready: {}",
                e.message
            );
            return None;
        }
    };
    let stored = cache.lookup(&info.key(Some(NAMESPACE), &format!("{SECRET_PREFIX}{id}")));
    let Some(stored) = stored else {
        tracing::debug!("no Secret {SECRET_PREFIX}{id} matches the bootstrap bearer token");
        return None;
    };
    authenticate_secret(&stored, id, secret, jiff::Timestamp::now())
}

/// Constant-time equality of two byte strings (of public length), as Go's
/// `subtle.ConstantTimeCompare`.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The checks of upstream's `AuthenticateToken` on the Secret named after `id`.
pub fn authenticate_secret(
    secret_object: &Value,
    id: &str,
    secret: &str,
    now: jiff::Timestamp,
) -> Option<UserInfo> {
    let name = secret_object["metadata"]["name"]
        .as_str()
        .unwrap_or_default();
    let reject = |why: &str| {
        tracing::debug!("Bootstrap secret {NAMESPACE}/{name} matching bearer token {why}");
        None
    };
    if secret_object["metadata"]
        .get("deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return reject("is deleted and awaiting removal");
    }
    let data = match secret_object.get("data").and_then(Value::as_object) {
        Some(data) if secret_object["type"] == SECRET_TYPE => data,
        _ => return reject(&format!("has invalid type, expected {SECRET_TYPE}.")),
    };
    let get = |key: &str| -> Vec<u8> {
        data.get(key)
            .and_then(Value::as_str)
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .unwrap_or_default()
    };
    if !constant_time_eq(&get(TOKEN_SECRET_KEY), secret.as_bytes()) {
        return reject(&format!("has invalid value for key {TOKEN_SECRET_KEY}."));
    }
    if get(TOKEN_ID_KEY) != id.as_bytes() {
        return reject(&format!("has invalid value for key {TOKEN_ID_KEY}."));
    }
    let expiration = get(EXPIRATION_KEY);
    if !expiration.is_empty() {
        let at = std::str::from_utf8(&expiration)
            .ok()
            .and_then(|s| s.parse::<jiff::Timestamp>().ok());
        match at {
            Some(at) if at > now => {}
            Some(_) => return reject("has expired"),
            None => return reject("has an unparseable expiration: treating it as expired"),
        }
    }
    if get(USAGE_AUTHENTICATION_KEY) != b"true" {
        return reject(&format!("not marked {USAGE_AUTHENTICATION_KEY}=true."));
    }
    let mut groups = std::collections::BTreeSet::from([DEFAULT_GROUP.to_string()]);
    let extra = String::from_utf8(get(EXTRA_GROUPS_KEY)).unwrap_or_default();
    if !extra.is_empty() {
        for group in extra.split(',') {
            if let Err(e) = check_group(group) {
                return reject(&format!(
                    "has invalid value for key {EXTRA_GROUPS_KEY}: {e}."
                ));
            }
            groups.insert(group.to_string());
        }
    }
    let mut groups: Vec<String> = groups.into_iter().collect();
    groups.push("system:authenticated".into());
    Some(UserInfo {
        name: format!("{USER_PREFIX}{id}"),
        groups,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "abcdef.0123456789abcdef";

    fn now() -> jiff::Timestamp {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    fn check(secret: &Value, token: &str) -> Option<UserInfo> {
        let (id, s) = parse_token(token)?;
        authenticate_secret(secret, id, s, now())
    }

    fn secret(expiration: Option<&str>, groups: &[&str]) -> Value {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        secret_for(TOKEN, expiration, &groups, "test").unwrap()
    }

    fn set(object: &mut Value, key: &str, value: &str) {
        object["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(value));
    }

    #[test]
    fn token_format() {
        assert_eq!(parse_token(TOKEN), Some(("abcdef", "0123456789abcdef")));
        for bad in [
            "abcdef0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcde",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789abcdef.",
            "abcdef.0123456789abcdeF",
            "abcdef.0123456789abcd-f",
            "",
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
        for _ in 0..20 {
            let t = generate_token();
            assert!(parse_token(&t).is_some(), "{t}");
        }
    }

    #[test]
    fn valid_token_is_the_bootstrap_user() {
        let s = secret(
            Some("2030-01-02T00:00:00Z"),
            &["system:bootstrappers:skiff:default-node-token"],
        );
        assert_eq!(s["metadata"]["name"], "bootstrap-token-abcdef");
        let user = check(&s, TOKEN).unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:skiff:default-node-token",
                "system:authenticated"
            ]
        );
        // No expiration: valid forever.
        assert!(check(&secret(None, &[]), TOKEN).is_some());
    }

    #[test]
    fn wrong_secret_or_id_is_refused() {
        let s = secret(None, &[]);
        assert!(check(&s, "abcdef.0123456789abcdee").is_none());
        let mut other_id = s.clone();
        set(&mut other_id, TOKEN_ID_KEY, "zzzzzz");
        assert!(check(&other_id, TOKEN).is_none());
    }

    #[test]
    fn expired_or_unparseable_expiration_is_refused() {
        assert!(check(&secret(Some("2029-12-31T23:59:59Z"), &[]), TOKEN).is_none());
        assert!(check(&secret(Some("2030-01-01T00:00:00Z"), &[]), TOKEN).is_none());
        assert!(check(&secret(Some("tomorrow"), &[]), TOKEN).is_none());
        assert!(check(&secret(Some("2030-01-01T01:00:00+02:00"), &[]), TOKEN).is_none());
        assert!(check(&secret(Some("2030-01-01T03:00:00+02:00"), &[]), TOKEN).is_some());
    }

    #[test]
    fn wrong_usage_type_or_deletion_is_refused() {
        let mut no_usage = secret(None, &[]);
        set(&mut no_usage, USAGE_AUTHENTICATION_KEY, "false");
        assert!(check(&no_usage, TOKEN).is_none());
        no_usage["data"]
            .as_object_mut()
            .unwrap()
            .remove(USAGE_AUTHENTICATION_KEY);
        assert!(check(&no_usage, TOKEN).is_none());
        let mut opaque = secret(None, &[]);
        opaque["type"] = json!("Opaque");
        assert!(check(&opaque, TOKEN).is_none());
        let mut deleting = secret(None, &[]);
        deleting["metadata"]["deletionTimestamp"] = json!("2029-01-01T00:00:00Z");
        assert!(check(&deleting, TOKEN).is_none());
    }

    #[test]
    fn bad_extra_group_is_refused() {
        assert!(secret_for(TOKEN, None, &["system:masters".into()], "").is_err());
        let mut s = secret(None, &[]);
        for bad in [
            "system:masters",
            "system:bootstrappers:",
            "system:bootstrappers:Upper",
            "system:bootstrappers:a,system:nodes",
            "system:bootstrappers:ends-with-",
        ] {
            set(&mut s, EXTRA_GROUPS_KEY, bad);
            assert!(check(&s, TOKEN).is_none(), "{bad}");
        }
        set(
            &mut s,
            EXTRA_GROUPS_KEY,
            "system:bootstrappers:b,system:bootstrappers:a",
        );
        let user = check(&s, TOKEN).unwrap();
        assert_eq!(
            user.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:a",
                "system:bootstrappers:b",
                "system:authenticated"
            ]
        );
        assert!(check_group(&format!("system:bootstrappers:{}", "a".repeat(256))).is_ok());
        assert!(check_group(&format!("system:bootstrappers:{}", "a".repeat(257))).is_err());
    }
}
