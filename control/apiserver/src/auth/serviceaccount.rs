//! Service-account tokens, as upstream issues and checks them (`pkg/serviceaccount`: jwt.go,
//! claims.go, legacy.go; `pkg/routes/openidmetadata.go`).
//!
//! Two kinds of token are accepted:
//! - **bound tokens** from the TokenRequest API (`serviceaccounts/<name>/token`, what the
//!   kubelet mounts into pods and `kubectl create token` prints): a JWS signed with this
//!   server's key (`keys.rs`), issuer `--service-account-issuer`, audiences, expiry, a `jti`, and
//!   the private claim `kubernetes.io` naming the ServiceAccount and the Pod, Secret or Node the
//!   token is bound to. It is valid while unexpired (one minute of leeway, as upstream), while
//!   its audiences meet the API's audiences, and while the ServiceAccount and the bound object
//!   still exist with the UIDs in the token — deleting the pod revokes its tokens.
//! - **legacy tokens** from Secrets of type `kubernetes.io/service-account-token` (the token
//!   controller fills them): issuer `kubernetes/serviceaccount`, no expiry, valid while the
//!   Secret holds exactly that token and the ServiceAccount has the UID in it.
//!
//! A caller authenticated by either is `system:serviceaccount:<ns>:<name>`, with the groups
//! `system:serviceaccounts` and `system:serviceaccounts:<ns>` and upstream's extra attributes
//! (the bound pod and node, and `credential-id` `JTI=<jti>`).
//!
//! The issuer's public keys are published for other relying parties at
//! `/.well-known/openid-configuration` and `/openid/v1/jwks`.

pub mod keys;

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};

use self::keys::{KeyError, PublicKey, SigningKey};
use crate::auth::UserInfo;
use crate::handlers::ApiServer;
use crate::registry::Lookup;

/// The issuer when `--service-account-issuer` is not given (kubeadm's and kind's choice).
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The issuer of secret-based tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// What the ServiceAccount admission asks the kubelet for (one hour and seven seconds): a
/// request for exactly this, bound to a pod, for the API's audiences, is extended to a year
/// with a `warnafter` at the hour (upstream's safe rollout of bound tokens).
pub const WARN_ONLY_EXPIRATION_SECONDS: i64 = 60 * 60 + 7;
/// How far such a token is extended.
pub const EXTENDED_EXPIRATION_SECONDS: i64 = 24 * 365 * 60 * 60;
/// The shortest lifetime a TokenRequest may ask for (ten minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// Clock skew allowed on exp/nbf/iat and on deletion times (go-jose's DefaultLeeway).
pub const LEEWAY_SECONDS: i64 = 60;
/// Tokens longer than this are not looked at (a real one is about a kilobyte).
const MAX_TOKEN_LEN: usize = 64 * 1024;

pub const POD_NAME_KEY: &str = "authentication.kubernetes.io/pod-name";
pub const POD_UID_KEY: &str = "authentication.kubernetes.io/pod-uid";
pub const NODE_NAME_KEY: &str = "authentication.kubernetes.io/node-name";
pub const NODE_UID_KEY: &str = "authentication.kubernetes.io/node-uid";
pub const CREDENTIAL_ID_KEY: &str = "authentication.kubernetes.io/credential-id";

/// `system:serviceaccount:<namespace>:<name>`.
pub fn username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// (namespace, name) of a service account's user name.
pub fn split_username(user: &str) -> Option<(&str, &str)> {
    let rest = user.strip_prefix("system:serviceaccount:")?;
    let (namespace, name) = rest.split_once(':')?;
    if namespace.is_empty() || name.is_empty() || name.contains(':') {
        return None;
    }
    Some((namespace, name))
}

// ---------------------------------------------------------------- claims

/// A reference to an object by name and UID, as in the `kubernetes.io` claim.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Ref {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

impl Ref {
    pub fn new(name: impl Into<String>, uid: impl Into<String>) -> Ref {
        Ref {
            name: name.into(),
            uid: uid.into(),
        }
    }
}

/// The private claim `kubernetes.io` of a bound token.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct KubernetesClaims {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default)]
    pub serviceaccount: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Ref>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Ref>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numeric_date"
    )]
    pub warnafter: Option<i64>,
}

/// A token's payload: the registered claims, the bound token's `kubernetes.io` claim and the
/// legacy token's flat claims.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Claims {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "audience"
    )]
    pub aud: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numeric_date"
    )]
    pub exp: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numeric_date"
    )]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub iss: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    #[serde(
        rename = "kubernetes.io",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kubernetes: Option<KubernetesClaims>,
    #[serde(
        rename = "kubernetes.io/serviceaccount/namespace",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub legacy_namespace: String,
    #[serde(
        rename = "kubernetes.io/serviceaccount/secret.name",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub legacy_secret_name: String,
    #[serde(
        rename = "kubernetes.io/serviceaccount/service-account.name",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub legacy_service_account_name: String,
    #[serde(
        rename = "kubernetes.io/serviceaccount/service-account.uid",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub legacy_service_account_uid: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "numeric_date"
    )]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sub: String,
}

/// `aud` is a string or a list of strings (RFC 7519).
fn audience<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Aud>::deserialize(d)? {
        None => Vec::new(),
        Some(Aud::One(a)) => vec![a],
        Some(Aud::Many(a)) => a,
    })
}

/// A NumericDate: seconds since the epoch, integer or not.
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?
        .filter(|f| f.is_finite())
        .map(|f| f as i64))
}

/// What a bound token is issued for (upstream `serviceaccount.Claims`' arguments).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenSpec {
    pub namespace: String,
    pub service_account: Ref,
    pub audiences: Vec<String>,
    /// Seconds from `now` to `exp`.
    pub expiration_seconds: i64,
    /// Seconds from `now` to `warnafter`; 0: none.
    pub warn_after_seconds: i64,
    pub pod: Option<Ref>,
    pub secret: Option<Ref>,
    pub node: Option<Ref>,
}

impl TokenSpec {
    /// The claims of a token issued at `now` with `jti`.
    pub fn claims(&self, issuer: &str, now: i64, jti: &str) -> Result<Claims, String> {
        if self.secret.is_some() && (self.pod.is_some() || self.node.is_some()) {
            return Err("internal error, token can only be bound to one object type".into());
        }
        Ok(Claims {
            iss: issuer.to_string(),
            sub: username(&self.namespace, &self.service_account.name),
            aud: self.audiences.clone(),
            iat: Some(now),
            nbf: Some(now),
            exp: Some(now + self.expiration_seconds),
            jti: jti.to_string(),
            kubernetes: Some(KubernetesClaims {
                namespace: self.namespace.clone(),
                serviceaccount: self.service_account.clone(),
                pod: self.pod.clone(),
                secret: self.secret.clone(),
                node: self.node.clone(),
                warnafter: (self.warn_after_seconds != 0).then_some(now + self.warn_after_seconds),
            }),
            ..Claims::default()
        })
    }
}

/// A secret-based token for the token controller (upstream `LegacyClaims`): no audience, no
/// expiry, valid while the Secret holds it.
pub fn legacy_token(
    key: &SigningKey,
    namespace: &str,
    service_account: &Ref,
    secret_name: &str,
) -> Result<String, KeyError> {
    let claims = Claims {
        iss: LEGACY_ISSUER.into(),
        sub: username(namespace, &service_account.name),
        legacy_namespace: namespace.into(),
        legacy_secret_name: secret_name.into(),
        legacy_service_account_name: service_account.name.clone(),
        legacy_service_account_uid: service_account.uid.clone(),
        ..Claims::default()
    };
    key.sign(&claims)
}

// ---------------------------------------------------------------- the authenticated account

/// Who a valid token speaks for (upstream `ServiceAccountInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAccountInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub pod_name: String,
    pub pod_uid: String,
    pub node_name: String,
    pub node_uid: String,
    /// `JTI=<jti>`, or empty.
    pub credential_id: String,
}

impl ServiceAccountInfo {
    /// The user: `system:serviceaccount:<ns>:<name>`, the UID of the account, the groups
    /// `system:serviceaccounts` and `system:serviceaccounts:<ns>` (the caller adds
    /// `system:authenticated`), and the extra attributes upstream sets.
    pub fn user_info(&self) -> UserInfo {
        let mut extra = BTreeMap::new();
        if !self.pod_name.is_empty() && !self.pod_uid.is_empty() {
            extra.insert(POD_NAME_KEY.to_string(), vec![self.pod_name.clone()]);
            extra.insert(POD_UID_KEY.to_string(), vec![self.pod_uid.clone()]);
        }
        if !self.credential_id.is_empty() {
            extra.insert(
                CREDENTIAL_ID_KEY.to_string(),
                vec![self.credential_id.clone()],
            );
        }
        if !self.node_name.is_empty() {
            extra.insert(NODE_NAME_KEY.to_string(), vec![self.node_name.clone()]);
            if !self.node_uid.is_empty() {
                extra.insert(NODE_UID_KEY.to_string(), vec![self.node_uid.clone()]);
            }
        }
        UserInfo {
            name: username(&self.namespace, &self.name),
            uid: self.uid.clone(),
            groups: vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{}", self.namespace),
            ],
            extra,
        }
    }
}

// ---------------------------------------------------------------- issuer and authenticator

/// How the API server issues and checks service-account tokens (its flags, resolved).
pub struct Options {
    /// `--service-account-issuer`: the first signs, all are accepted.
    pub issuers: Vec<String>,
    /// `--api-audiences`: what a token must be meant for to authenticate to this server.
    pub api_audiences: Vec<String>,
    /// `--service-account-signing-key-file`.
    pub signing_key: SigningKey,
    /// `--service-account-key-file`: more keys that verify tokens (other servers', old keys).
    pub verification_keys: Vec<PublicKey>,
    /// `--service-account-max-token-expiration` in seconds; 0: no limit.
    pub max_expiration_seconds: i64,
    /// `--service-account-extend-token-expiration`.
    pub extend_expiration: bool,
    /// The `jwks_uri` of the discovery document.
    pub jwks_uri: String,
}

/// The service-account token issuer and authenticator of one API server.
pub struct ServiceAccountTokens {
    issuers: Vec<String>,
    api_audiences: Vec<String>,
    signing_key: SigningKey,
    /// Every key that verifies: the signing key's public half first.
    keys: Vec<PublicKey>,
    max_expiration_seconds: i64,
    extend_expiration: bool,
    openid_configuration: Option<Bytes>,
    jwks: Option<Bytes>,
}

impl std::fmt::Debug for ServiceAccountTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountTokens")
            .field("issuers", &self.issuers)
            .field("api_audiences", &self.api_audiences)
            .field("signing_key", &self.signing_key)
            .finish_non_exhaustive()
    }
}

/// A token whose signature, issuer, audiences and times are good; the objects it names are
/// checked next (`ServiceAccountTokens::validate`).
#[derive(Debug)]
struct Verified {
    claims: Claims,
    legacy: bool,
    audiences: Vec<String>,
}

pub fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

impl ServiceAccountTokens {
    pub fn new(options: Options) -> ServiceAccountTokens {
        let mut issuers = options.issuers;
        if issuers.is_empty() {
            issuers.push(DEFAULT_ISSUER.to_string());
        }
        let api_audiences = if options.api_audiences.is_empty() {
            issuers.clone()
        } else {
            options.api_audiences
        };
        let mut keys = vec![options.signing_key.public.clone()];
        for key in options.verification_keys {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        // Discovery is served when the issuer is an https URL (upstream refuses to build the
        // document otherwise), with every verification key.
        let (openid_configuration, jwks) = if issuers[0].starts_with("https://") {
            let mut algorithms: Vec<&str> = keys.iter().map(PublicKey::algorithm_name).collect();
            algorithms.sort_unstable();
            algorithms.dedup();
            let config = json!({
                "issuer": issuers[0],
                "jwks_uri": options.jwks_uri,
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": algorithms,
            });
            let jwks = json!({"keys": keys.iter().map(PublicKey::jwk).collect::<Vec<_>>()});
            (
                Some(Bytes::from(config.to_string())),
                Some(Bytes::from(jwks.to_string())),
            )
        } else {
            (None, None)
        };
        ServiceAccountTokens {
            issuers,
            api_audiences,
            signing_key: options.signing_key,
            keys,
            max_expiration_seconds: options.max_expiration_seconds,
            extend_expiration: options.extend_expiration,
            openid_configuration,
            jwks,
        }
    }

    /// The issuer new tokens carry.
    pub fn issuer(&self) -> &str {
        &self.issuers[0]
    }

    /// The API server's audiences (a TokenRequest's default).
    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// `--service-account-max-token-expiration` in seconds; 0: none.
    pub fn max_expiration_seconds(&self) -> i64 {
        self.max_expiration_seconds
    }

    /// Whether kubelet-requested pod tokens are extended to a year (`warnafter` at the hour).
    pub fn extend_expiration(&self) -> bool {
        self.extend_expiration
    }

    /// `/.well-known/openid-configuration`, when the issuer is an https URL.
    pub fn openid_configuration(&self) -> Option<Bytes> {
        self.openid_configuration.clone()
    }

    /// `/openid/v1/jwks`, when the issuer is an https URL.
    pub fn jwks(&self) -> Option<Bytes> {
        self.jwks.clone()
    }

    /// Signs a bound token for `spec` at `now`; returns the token and its `jti`.
    pub fn issue(&self, spec: &TokenSpec, now: i64) -> Result<(String, String), String> {
        let jti = uuid::Uuid::new_v4().to_string();
        let claims = spec.claims(self.issuer(), now, &jti)?;
        let token = self
            .signing_key
            .sign(&claims)
            .map_err(|e| format!("failed to generate token: {e}"))?;
        Ok((token, jti))
    }

    /// Upstream's `hasCorrectIssuer`, cheaply and before any cryptography: a compact JWS whose
    /// (unverified) payload names one of our issuers. Anything else — a static token, garbage,
    /// a token of another issuer — is not ours to judge.
    fn unverified_issuer(&self, token: &str) -> Option<bool> {
        if token.len() > MAX_TOKEN_LEN || token.trim_start().starts_with('{') {
            return None;
        }
        let mut parts = token.split('.');
        let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        #[derive(Deserialize)]
        struct Issuer {
            #[serde(default)]
            iss: Value,
        }
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let issuer = serde_json::from_slice::<Issuer>(&payload).ok()?.iss;
        let issuer = issuer.as_str()?;
        if issuer == LEGACY_ISSUER {
            Some(true)
        } else if self.issuers.iter().any(|i| i == issuer) {
            Some(false)
        } else {
            None
        }
    }

    /// Signature, issuer, audiences and (bound tokens) times: everything that needs no lookup.
    /// `requested` are the audiences the caller wants (a TokenReview's); by default the API's.
    fn verify(
        &self,
        token: &str,
        requested: Option<&[String]>,
        now: i64,
    ) -> Result<Verified, String> {
        let legacy = self
            .unverified_issuer(token)
            .ok_or("not a service-account token")?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let kid = header.kid.unwrap_or_default();
        let keys: Vec<&PublicKey> = self
            .keys
            .iter()
            .filter(|k| kid.is_empty() || k.kid == kid)
            .collect();
        if keys.is_empty() {
            return Err("invalid signature, no keys found".into());
        }
        let mut failures = Vec::new();
        let mut claims = None;
        for key in keys {
            let mut validation = jsonwebtoken::Validation::new(key.algorithm());
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation.validate_aud = false;
            match jsonwebtoken::decode::<Claims>(token, &key.decoding_key(), &validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
        let claims = claims.ok_or_else(|| failures.join(", "))?;
        // The issuer was read before the signature was checked: check it again.
        let issuer_ok = if legacy {
            claims.iss == LEGACY_ISSUER
        } else {
            self.issuers.contains(&claims.iss)
        };
        if !issuer_ok {
            return Err(format!("token issuer {:?} is invalid", claims.iss));
        }
        // A token without audiences (a legacy one) is for the API server only.
        let token_audiences = if claims.aud.is_empty() {
            &self.api_audiences
        } else {
            &claims.aud
        };
        let requested = requested
            .filter(|r| !r.is_empty())
            .unwrap_or(&self.api_audiences);
        let audiences: Vec<String> = requested
            .iter()
            .filter(|a| token_audiences.contains(a))
            .cloned()
            .collect();
        if audiences.is_empty() && !self.api_audiences.is_empty() {
            return Err(format!(
                "token audiences {token_audiences:?} is invalid for the target audiences {requested:?}"
            ));
        }
        if !legacy {
            if claims.nbf.is_some_and(|nbf| now + LEEWAY_SECONDS < nbf) {
                return Err("service account token is not valid yet".into());
            }
            if claims.exp.is_some_and(|exp| now - LEEWAY_SECONDS > exp) {
                return Err("service account token has expired".into());
            }
            if claims.iat.is_some_and(|iat| now + LEEWAY_SECONDS < iat) {
                return Err("service account token is issued in the future".into());
            }
        }
        Ok(Verified {
            claims,
            legacy,
            audiences,
        })
    }

    /// The whole check: `verify`, then the objects the token names, read through `lookup`.
    /// Returns the account and the audiences the token was accepted for.
    pub async fn authenticate(
        &self,
        lookup: &dyn Lookup,
        token: &str,
        requested: Option<&[String]>,
        now: i64,
    ) -> Result<(ServiceAccountInfo, Vec<String>), String> {
        let verified = self.verify(token, requested, now)?;
        let info = if verified.legacy {
            validate_legacy(lookup, token, &verified.claims).await?
        } else {
            validate_bound(lookup, &verified.claims, now).await?
        };
        Ok((info, verified.audiences))
    }
}

// ---------------------------------------------------------------- the lookups

async fn get(
    lookup: &dyn Lookup,
    resource: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<Arc<Value>>, String> {
    if name.is_empty() {
        return Ok(None);
    }
    lookup
        .get("", resource, namespace, name)
        .await
        .map_err(|e| e.message)
}

fn uid_of(object: &Value) -> &str {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The object's deletionTimestamp in seconds since the epoch, if it is being deleted.
fn deleted_at(object: &Value) -> Option<i64> {
    let text = object.pointer("/metadata/deletionTimestamp")?.as_str()?;
    Some(
        text.parse::<jiff::Timestamp>()
            .map(|t| t.as_second())
            .unwrap_or(i64::MIN),
    )
}

/// Upstream's validator for bound tokens (`claims.go`): the account, and the object the token
/// is bound to, still exist with the UIDs in the token, and were not deleted more than the
/// leeway ago.
async fn validate_bound(
    lookup: &dyn Lookup,
    claims: &Claims,
    now: i64,
) -> Result<ServiceAccountInfo, String> {
    let private = claims.kubernetes.clone().unwrap_or_default();
    let namespace = private.namespace.as_str();
    let invalid_if_deleted_before = now - LEEWAY_SECONDS;
    let gone = |object: &Value| deleted_at(object).is_some_and(|t| t < invalid_if_deleted_before);
    let sa = &private.serviceaccount;
    let account = get(lookup, "serviceaccounts", Some(namespace), &sa.name)
        .await?
        .ok_or_else(|| format!("serviceaccounts \"{}\" not found", sa.name))?;
    if uid_of(&account) != sa.uid {
        return Err(format!(
            "service account UID ({}) does not match claim ({})",
            uid_of(&account),
            sa.uid
        ));
    }
    if gone(&account) {
        return Err(format!(
            "service account {namespace}/{} has been deleted",
            sa.name
        ));
    }
    const INVALIDATED: &str = "service account token has been invalidated";
    if let Some(secret) = &private.secret {
        let object = get(lookup, "secrets", Some(namespace), &secret.name)
            .await?
            .ok_or(INVALIDATED)?;
        if uid_of(&object) != secret.uid {
            return Err(format!(
                "secret UID ({}) does not match service account secret ref claim ({})",
                uid_of(&object),
                secret.uid
            ));
        }
        if gone(&object) {
            return Err(INVALIDATED.into());
        }
    }
    let mut info = ServiceAccountInfo {
        namespace: namespace.to_string(),
        name: sa.name.clone(),
        uid: sa.uid.clone(),
        credential_id: if claims.jti.is_empty() {
            String::new()
        } else {
            format!("JTI={}", claims.jti)
        },
        ..ServiceAccountInfo::default()
    };
    if let Some(pod) = &private.pod {
        let object = get(lookup, "pods", Some(namespace), &pod.name)
            .await?
            .ok_or(INVALIDATED)?;
        if uid_of(&object) != pod.uid {
            return Err(format!(
                "pod UID ({}) does not match service account pod ref claim ({})",
                uid_of(&object),
                pod.uid
            ));
        }
        if gone(&object) {
            return Err(INVALIDATED.into());
        }
        info.pod_name = pod.name.clone();
        info.pod_uid = pod.uid.clone();
    }
    if let Some(node) = &private.node {
        if private.pod.is_none() {
            // A token bound to the node itself: the node must still be there.
            let object = get(lookup, "nodes", None, &node.name)
                .await?
                .ok_or(INVALIDATED)?;
            if uid_of(&object) != node.uid {
                return Err(format!(
                    "node UID ({}) does not match service account node ref claim ({})",
                    uid_of(&object),
                    node.uid
                ));
            }
            if gone(&object) {
                return Err(INVALIDATED.into());
            }
        }
        // For a pod's token the node is information only.
        info.node_name = node.name.clone();
        info.node_uid = node.uid.clone();
    }
    Ok(info)
}

/// Upstream's legacy validator (`legacy.go`): the claims are complete and consistent, the
/// Secret still holds exactly this token, and the account exists with the UID in it.
async fn validate_legacy(
    lookup: &dyn Lookup,
    token: &str,
    claims: &Claims,
) -> Result<ServiceAccountInfo, String> {
    if claims.sub.is_empty() {
        return Err("sub claim is missing".into());
    }
    let namespace = claims.legacy_namespace.as_str();
    let (secret_name, name, uid) = (
        claims.legacy_secret_name.as_str(),
        claims.legacy_service_account_name.as_str(),
        claims.legacy_service_account_uid.as_str(),
    );
    for (value, what) in [
        (namespace, "namespace"),
        (secret_name, "secretName"),
        (name, "serviceAccountName"),
        (uid, "serviceAccountUID"),
    ] {
        if value.is_empty() {
            return Err(format!("{what} claim is missing"));
        }
    }
    if split_username(&claims.sub) != Some((namespace, name)) {
        return Err("sub claim is invalid".into());
    }
    let secret = get(lookup, "secrets", Some(namespace), secret_name)
        .await?
        .ok_or("Token has been invalidated")?;
    if deleted_at(&secret).is_some() {
        return Err("Token has been invalidated".into());
    }
    let stored = secret
        .pointer("/data/token")
        .and_then(Value::as_str)
        .and_then(|b64| STANDARD.decode(b64).ok())
        .unwrap_or_default();
    if !constant_time_eq(&stored, token.as_bytes()) {
        return Err("Token does not match server's copy".into());
    }
    let account = get(lookup, "serviceaccounts", Some(namespace), name)
        .await?
        .ok_or_else(|| format!("serviceaccounts \"{name}\" not found"))?;
    if deleted_at(&account).is_some() {
        return Err(format!(
            "ServiceAccount {namespace}/{name} has been deleted"
        ));
    }
    if uid_of(&account) != uid {
        return Err(format!(
            "ServiceAccount UID ({}) does not match claim ({uid})",
            uid_of(&account)
        ));
    }
    let invalid_since = secret
        .pointer("/metadata/labels/kubernetes.io~1legacy-token-invalid-since")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !invalid_since.is_empty() {
        return Err(format!("the token in secret {namespace}/{secret_name} for service account {namespace}/{name} has been marked invalid. Use tokens from the TokenRequest API or manually created secret-based tokens, or remove the 'kubernetes.io/legacy-token-invalid-since' label from the secret to temporarily allow use of this token"));
    }
    Ok(ServiceAccountInfo {
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid: uid.to_string(),
        ..ServiceAccountInfo::default()
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

// ---------------------------------------------------------------- the API server's entry points

/// Authenticates a bearer token as a service account, for the API server's own audiences:
/// the user (`system:serviceaccount:<ns>:<name>`, the account's UID, the groups
/// `system:serviceaccounts` and `system:serviceaccounts:<ns>` — the caller adds
/// `system:authenticated` — and the extra attributes), or `None` when the token is not a valid
/// service-account token. A token that is not a JWS of one of our issuers (a static token)
/// returns `None` at once, without cryptography or lookups.
pub async fn authenticate(server: &ApiServer, token: &str) -> Option<UserInfo> {
    authenticate_for(server, token, None)
        .await
        .map(|(user, _)| user)
}

/// As [`authenticate`], for the audiences a TokenReview asks about (`None` or empty: the API's
/// own); also returns the audiences the token was accepted for.
pub async fn authenticate_for(
    server: &ApiServer,
    token: &str,
    audiences: Option<&[String]>,
) -> Option<(UserInfo, Vec<String>)> {
    let tokens = server.service_accounts.as_ref()?;
    match tokens
        .authenticate(server, token, audiences, now_unix())
        .await
    {
        Ok((info, audiences)) => Some((info.user_info(), audiences)),
        Err(why) => {
            tracing::debug!("service-account token refused: {why}");
            None
        }
    }
}

#[cfg(test)]
mod tests;
