use std::collections::HashMap;

use futures::future::BoxFuture;
use proptest::prelude::*;

use super::*;
use crate::error::ApiResult;

const NOW: i64 = 1_800_000_000;

/// The cluster as the authenticator sees it: objects by (resource, namespace, name).
#[derive(Default)]
struct Objects(HashMap<(String, String, String), Value>);

impl Objects {
    fn with(mut self, resource: &str, namespace: &str, name: &str, uid: &str) -> Objects {
        let object = json!({"metadata": {"name": name, "namespace": namespace, "uid": uid}});
        self.0
            .insert((resource.into(), namespace.into(), name.into()), object);
        self
    }
    fn edit(&mut self, resource: &str, namespace: &str, name: &str) -> &mut Value {
        self.0
            .get_mut(&(resource.into(), namespace.into(), name.into()))
            .expect("object exists")
    }
}

impl Lookup for Objects {
    fn list<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, ApiResult<Vec<Arc<Value>>>> {
        Box::pin(async { Ok(Vec::new()) })
    }
    fn get<'a>(
        &'a self,
        _group: &'a str,
        resource: &'a str,
        namespace: Option<&'a str>,
        name: &'a str,
    ) -> BoxFuture<'a, ApiResult<Option<Arc<Value>>>> {
        let key = (
            resource.to_string(),
            namespace.unwrap_or_default().to_string(),
            name.to_string(),
        );
        let found = self.0.get(&key).cloned().map(Arc::new);
        Box::pin(async move { Ok(found) })
    }
}

fn tokens_with(key: SigningKey, extra: Vec<PublicKey>) -> ServiceAccountTokens {
    ServiceAccountTokens::new(Options {
        issuers: Vec::new(),
        api_audiences: Vec::new(),
        signing_key: key,
        verification_keys: extra,
        max_expiration_seconds: 0,
        extend_expiration: true,
        jwks_uri: "https://10.0.0.1:6443/openid/v1/jwks".into(),
    })
}

fn tokens() -> ServiceAccountTokens {
    tokens_with(SigningKey::generate().unwrap().0, Vec::new())
}

fn cluster() -> Objects {
    Objects::default()
        .with("serviceaccounts", "ns", "web", "sa-uid")
        .with("pods", "ns", "web-1", "pod-uid")
        .with("nodes", "", "node1", "node-uid")
        .with("secrets", "ns", "s", "secret-uid")
}

fn pod_spec() -> TokenSpec {
    TokenSpec {
        namespace: "ns".into(),
        service_account: Ref::new("web", "sa-uid"),
        audiences: vec![DEFAULT_ISSUER.into()],
        expiration_seconds: 3600,
        pod: Some(Ref::new("web-1", "pod-uid")),
        node: Some(Ref::new("node1", "node-uid")),
        ..TokenSpec::default()
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn check(
    tokens: &ServiceAccountTokens,
    objects: &Objects,
    token: &str,
    at: i64,
) -> Result<(ServiceAccountInfo, Vec<String>), String> {
    block_on(tokens.authenticate(objects, token, None, at))
}

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[test]
fn issue_and_authenticate_roundtrip() {
    let t = tokens();
    let (token, jti) = t.issue(&pod_spec(), NOW).unwrap();
    // Upstream's claims, and upstream's header (alg and kid, no typ).
    let claims = payload(&token);
    assert_eq!(claims["iss"], DEFAULT_ISSUER);
    assert_eq!(claims["sub"], "system:serviceaccount:ns:web");
    assert_eq!(claims["aud"], json!([DEFAULT_ISSUER]));
    assert_eq!(claims["iat"], NOW);
    assert_eq!(claims["nbf"], NOW);
    assert_eq!(claims["exp"], NOW + 3600);
    assert_eq!(claims["jti"], jti.as_str());
    assert_eq!(
        claims["kubernetes.io"],
        json!({"namespace": "ns", "serviceaccount": {"name": "web", "uid": "sa-uid"},
               "pod": {"name": "web-1", "uid": "pod-uid"}, "node": {"name": "node1", "uid": "node-uid"}})
    );
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(header.typ, None);
    assert_eq!(header.kid.as_deref(), Some(t.keys[0].kid.as_str()));

    let (info, audiences) = check(&t, &cluster(), &token, NOW + 10).unwrap();
    assert_eq!(audiences, vec![DEFAULT_ISSUER.to_string()]);
    let user = info.user_info();
    assert_eq!(user.name, "system:serviceaccount:ns:web");
    assert_eq!(user.uid, "sa-uid");
    assert_eq!(
        user.groups,
        vec!["system:serviceaccounts", "system:serviceaccounts:ns"]
    );
    let extra = |k: &str| user.extra.get(k).cloned().unwrap_or_default();
    assert_eq!(extra(POD_NAME_KEY), vec!["web-1"]);
    assert_eq!(extra(POD_UID_KEY), vec!["pod-uid"]);
    assert_eq!(extra(NODE_NAME_KEY), vec!["node1"]);
    assert_eq!(extra(NODE_UID_KEY), vec!["node-uid"]);
    assert_eq!(extra(CREDENTIAL_ID_KEY), vec![format!("JTI={jti}")]);
}

#[test]
fn expiry_has_a_minute_of_leeway() {
    let t = tokens();
    let (token, _) = t.issue(&pod_spec(), NOW).unwrap();
    let objects = cluster();
    assert!(check(&t, &objects, &token, NOW + 3600 + 59).is_ok());
    assert_eq!(
        check(&t, &objects, &token, NOW + 3600 + 61).unwrap_err(),
        "service account token has expired"
    );
    assert_eq!(
        check(&t, &objects, &token, NOW - 61).unwrap_err(),
        "service account token is not valid yet"
    );
    assert!(check(&t, &objects, &token, NOW - 59).is_ok());
}

#[test]
fn a_token_signed_with_another_key_is_refused() {
    let ours = tokens();
    let theirs = tokens();
    let (token, _) = theirs.issue(&pod_spec(), NOW).unwrap();
    // Their kid is unknown here.
    assert!(check(&ours, &cluster(), &token, NOW).is_err());
    // Without a kid, every key is tried and none verifies.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[0] = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256"}"#);
    assert!(check(&ours, &cluster(), &parts.join("."), NOW).is_err());
    // A changed payload breaks the signature.
    let (token, _) = ours.issue(&pod_spec(), NOW).unwrap();
    let mut claims = payload(&token);
    claims["kubernetes.io"]["serviceaccount"]["name"] = json!("admin");
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    assert!(check(&ours, &cluster(), &parts.join("."), NOW).is_err());
    // A key given with --service-account-key-file verifies (another server's tokens).
    let (other_key, _) = SigningKey::generate().unwrap();
    let other_public = other_key.public.clone();
    let other = tokens_with(other_key, Vec::new());
    let (token, _) = other.issue(&pod_spec(), NOW).unwrap();
    let trusting = tokens_with(SigningKey::generate().unwrap().0, vec![other_public]);
    assert!(check(&trusting, &cluster(), &token, NOW).is_ok());
}

#[test]
fn audiences_must_meet_the_api_audiences() {
    let t = tokens();
    let mut spec = pod_spec();
    spec.audiences = vec!["vault".into()];
    let (token, _) = t.issue(&spec, NOW).unwrap();
    let err = check(&t, &cluster(), &token, NOW).unwrap_err();
    assert!(err.contains("is invalid for the target audiences"), "{err}");
    // A TokenReview asking for that audience accepts it.
    let objects = cluster();
    let asked = vec!["vault".to_string(), "other".to_string()];
    let (_, accepted) = block_on(t.authenticate(&objects, &token, Some(&asked), NOW)).unwrap();
    assert_eq!(accepted, vec!["vault".to_string()]);
    // Several audiences: the intersection, in the asker's order.
    spec.audiences = vec!["vault".into(), DEFAULT_ISSUER.into()];
    let (token, _) = t.issue(&spec, NOW).unwrap();
    let (_, accepted) = check(&t, &cluster(), &token, NOW).unwrap();
    assert_eq!(accepted, vec![DEFAULT_ISSUER.to_string()]);
}

#[test]
fn deleting_the_bound_objects_revokes_the_token() {
    let t = tokens();
    let (token, _) = t.issue(&pod_spec(), NOW).unwrap();
    // The pod is gone.
    let mut objects = cluster();
    objects
        .0
        .remove(&("pods".into(), "ns".into(), "web-1".into()));
    assert_eq!(
        check(&t, &objects, &token, NOW).unwrap_err(),
        "service account token has been invalidated"
    );
    // A new pod of the same name.
    let objects = cluster().with("pods", "ns", "web-1", "other-uid");
    assert!(check(&t, &objects, &token, NOW)
        .unwrap_err()
        .starts_with("pod UID (other-uid) does not match"));
    // Being deleted: valid for the leeway after the deletion time, not later.
    let mut objects = cluster();
    objects.edit("pods", "ns", "web-1")["metadata"]["deletionTimestamp"] =
        json!(jiff::Timestamp::from_second(NOW).unwrap().to_string());
    assert!(check(&t, &objects, &token, NOW + 30).is_ok());
    assert!(check(&t, &objects, &token, NOW + 61).is_err());
    // The account recreated.
    let objects = cluster().with("serviceaccounts", "ns", "web", "new-uid");
    assert_eq!(
        check(&t, &objects, &token, NOW).unwrap_err(),
        "service account UID (new-uid) does not match claim (sa-uid)"
    );
    let mut objects = cluster();
    objects
        .0
        .remove(&("serviceaccounts".into(), "ns".into(), "web".into()));
    assert!(check(&t, &objects, &token, NOW).is_err());
    // A pod's node is information only: its deletion does not matter.
    let mut objects = cluster();
    objects
        .0
        .remove(&("nodes".into(), "".into(), "node1".into()));
    assert!(check(&t, &objects, &token, NOW).is_ok());
}

#[test]
fn node_and_secret_bound_tokens() {
    let t = tokens();
    let spec = TokenSpec {
        pod: None,
        ..pod_spec()
    };
    let (token, _) = t.issue(&spec, NOW).unwrap();
    let (info, _) = check(&t, &cluster(), &token, NOW).unwrap();
    assert_eq!(
        (info.node_name.as_str(), info.pod_name.as_str()),
        ("node1", "")
    );
    let mut objects = cluster();
    objects
        .0
        .remove(&("nodes".into(), "".into(), "node1".into()));
    assert!(check(&t, &objects, &token, NOW).is_err());

    let spec = TokenSpec {
        pod: None,
        node: None,
        secret: Some(Ref::new("s", "secret-uid")),
        ..pod_spec()
    };
    let (token, _) = t.issue(&spec, NOW).unwrap();
    let (info, _) = check(&t, &cluster(), &token, NOW).unwrap();
    assert!(info
        .user_info()
        .extra
        .keys()
        .all(|k| k == CREDENTIAL_ID_KEY));
    let objects = cluster().with("secrets", "ns", "s", "another");
    assert!(check(&t, &objects, &token, NOW).is_err());
    // A token bound to a secret and a pod cannot be made.
    let spec = TokenSpec {
        secret: Some(Ref::new("s", "secret-uid")),
        ..pod_spec()
    };
    assert!(t.issue(&spec, NOW).is_err());
}

#[test]
fn warnafter_is_written() {
    let t = tokens();
    let spec = TokenSpec {
        expiration_seconds: EXTENDED_EXPIRATION_SECONDS,
        warn_after_seconds: WARN_ONLY_EXPIRATION_SECONDS,
        ..pod_spec()
    };
    let (token, _) = t.issue(&spec, NOW).unwrap();
    let claims = payload(&token);
    assert_eq!(claims["kubernetes.io"]["warnafter"], NOW + 3607);
    assert_eq!(claims["exp"], NOW + EXTENDED_EXPIRATION_SECONDS);
    // Still good after the hour.
    assert!(check(&t, &cluster(), &token, NOW + 7200).is_ok());
}

fn legacy_cluster(token: &str) -> Objects {
    let mut objects = cluster();
    objects.edit("secrets", "ns", "s")["data"] = json!({"token": STANDARD.encode(token)});
    objects
}

#[test]
fn legacy_secret_tokens() {
    let (key, _) = SigningKey::generate().unwrap();
    let token = legacy_token(&key, "ns", &Ref::new("web", "sa-uid"), "s").unwrap();
    let claims = payload(&token);
    assert_eq!(
        claims,
        json!({"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:ns:web",
               "kubernetes.io/serviceaccount/namespace": "ns",
               "kubernetes.io/serviceaccount/secret.name": "s",
               "kubernetes.io/serviceaccount/service-account.name": "web",
               "kubernetes.io/serviceaccount/service-account.uid": "sa-uid"})
    );
    let t = tokens_with(key, Vec::new());
    // No expiry: good years later, while the secret holds it.
    let (info, audiences) = check(&t, &legacy_cluster(&token), &token, NOW * 2).unwrap();
    assert_eq!(audiences, t.api_audiences().to_vec());
    let user = info.user_info();
    assert_eq!(user.name, "system:serviceaccount:ns:web");
    assert_eq!(user.uid, "sa-uid");
    assert!(user.extra.is_empty());
    // The secret holds another token, or none, or is being deleted.
    assert_eq!(
        check(&t, &legacy_cluster("other"), &token, NOW).unwrap_err(),
        "Token does not match server's copy"
    );
    assert!(check(&t, &cluster(), &token, NOW).is_err());
    let mut objects = legacy_cluster(&token);
    objects.edit("secrets", "ns", "s")["metadata"]["deletionTimestamp"] =
        json!("2026-01-01T00:00:00Z");
    assert!(check(&t, &objects, &token, NOW).is_err());
    // The account was recreated.
    let objects = legacy_cluster(&token).with("serviceaccounts", "ns", "web", "new");
    assert!(check(&t, &objects, &token, NOW).is_err());
    // Marked invalid.
    let mut objects = legacy_cluster(&token);
    objects.edit("secrets", "ns", "s")["metadata"]["labels"] =
        json!({"kubernetes.io/legacy-token-invalid-since": "2026-01-01"});
    assert!(check(&t, &objects, &token, NOW)
        .unwrap_err()
        .contains("has been marked invalid"));
    // Claims that disagree with the subject.
    let claims = Claims {
        iss: LEGACY_ISSUER.into(),
        sub: "system:serviceaccount:ns:admin".into(),
        legacy_namespace: "ns".into(),
        legacy_secret_name: "s".into(),
        legacy_service_account_name: "web".into(),
        legacy_service_account_uid: "sa-uid".into(),
        ..Claims::default()
    };
    let forged = t.signing_key.sign(&claims).unwrap();
    assert_eq!(
        check(&t, &legacy_cluster(&forged), &forged, NOW).unwrap_err(),
        "sub claim is invalid"
    );
}

#[test]
fn malformed_tokens_are_refused_without_panicking() {
    let t = tokens();
    let objects = cluster();
    let (good, _) = t.issue(&pod_spec(), NOW).unwrap();
    let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let huge = "a".repeat(10 * 1024 * 1024);
    let huge_jws = format!("{}.{}.{}", b64("{}"), "A".repeat(200_000), "x");
    let iss = format!(r#"{{"iss":"{DEFAULT_ISSUER}"}}"#);
    let cases: Vec<String> = vec![
        "".into(),
        "garbage".into(),
        "a.b.c".into(),
        "a.b.c.d".into(),
        "..".into(),
        "{\"alg\":\"none\"}".into(),
        format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(&iss)),
        format!("{}.{}.sig", b64(r#"{"alg":"HS256"}"#), b64(&iss)),
        format!("{}.{}.sig", b64(r#"{"alg":"ES256"}"#), b64(&iss)),
        format!("{}.{}.!!!", b64("not json"), b64(&iss)),
        format!("x.{}.y", b64(r#"{"iss": 7}"#)),
        format!("x.{}.y", b64("[1,2]")),
        good.replace('.', ""),
        format!("{good}.{good}"),
        good[..good.len() - 5].to_string(),
        huge,
        huge_jws,
        "7a4a1fcb2b0e3d2d0d1e0f2c9b8a7d6e5f4c3b2a19080706".into(),
    ];
    for token in &cases {
        assert!(
            check(&t, &objects, token, NOW).is_err(),
            "{}",
            &token[..token.len().min(80)]
        );
    }
    // What is not a JWS of our issuers is refused before any signature work.
    assert!(t.unverified_issuer("a.b.c").is_none());
    assert!(t.unverified_issuer(&cases[1]).is_none());
    assert_eq!(t.unverified_issuer(&good), Some(false));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any string, and any string shaped like a JWS, is refused (never a panic).
    #[test]
    fn verify_never_panics(token in ".{0,300}", header in "[A-Za-z0-9_-]{0,60}", sig in "[A-Za-z0-9_-]{0,90}") {
        let t = tokens();
        prop_assert!(t.verify(&token, None, NOW).is_err());
        let iss = URL_SAFE_NO_PAD.encode(format!(r#"{{"iss":"{DEFAULT_ISSUER}","exp":1}}"#));
        let shaped = format!("{header}.{iss}.{sig}");
        prop_assert!(t.verify(&shaped, None, NOW).is_err());
    }
}

#[test]
fn discovery_documents() {
    let t = tokens();
    let config: Value = serde_json::from_slice(&t.openid_configuration().unwrap()).unwrap();
    assert_eq!(
        config,
        json!({"issuer": DEFAULT_ISSUER, "jwks_uri": "https://10.0.0.1:6443/openid/v1/jwks",
               "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
               "id_token_signing_alg_values_supported": ["ES256"]})
    );
    let jwks: Value = serde_json::from_slice(&t.jwks().unwrap()).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["kid"], t.keys[0].kid.as_str());
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(key["x"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    // An issuer that is not an https URL has no discovery.
    let plain = ServiceAccountTokens::new(Options {
        issuers: vec!["kubernetes".into()],
        ..options()
    });
    assert!(plain.openid_configuration().is_none());
    assert_eq!(plain.api_audiences(), ["kubernetes".to_string()]);
}

fn options() -> Options {
    Options {
        issuers: Vec::new(),
        api_audiences: Vec::new(),
        signing_key: SigningKey::generate().unwrap().0,
        verification_keys: Vec::new(),
        max_expiration_seconds: 0,
        extend_expiration: true,
        jwks_uri: String::new(),
    }
}

#[test]
fn several_issuers_and_explicit_audiences() {
    let old = ServiceAccountTokens::new(Options {
        issuers: vec!["https://old.example".into()],
        ..options()
    });
    let key = old.signing_key.public.clone();
    // This server issues as "new", still accepts "old", and its audience is "api".
    let t = ServiceAccountTokens::new(Options {
        issuers: vec!["https://new.example".into(), "https://old.example".into()],
        api_audiences: vec!["api".into()],
        verification_keys: vec![key],
        ..options()
    });
    assert_eq!(t.issuer(), "https://new.example");
    let spec = TokenSpec {
        audiences: vec!["api".into()],
        ..pod_spec()
    };
    let (token, _) = old.issue(&spec, NOW).unwrap();
    assert!(check(&t, &cluster(), &token, NOW).is_ok());
    let (token, _) = t.issue(&spec, NOW).unwrap();
    assert!(check(&t, &cluster(), &token, NOW).is_ok());
    // The old server does not know the new issuer.
    assert!(check(&old, &cluster(), &token, NOW).is_err());
}

#[test]
fn usernames_split() {
    assert_eq!(
        split_username("system:serviceaccount:ns:web"),
        Some(("ns", "web"))
    );
    assert_eq!(split_username("system:serviceaccount:ns"), None);
    assert_eq!(split_username("system:serviceaccount::web"), None);
    assert_eq!(split_username("admin"), None);
}

/// A kubeadm-style RSA key (RS256) issues and verifies like the default P-256 one.
#[test]
fn rsa_signing_keys_work() {
    let key = SigningKey::from_pem(include_str!("testdata/rsa.pem")).unwrap();
    let t = tokens_with(key, Vec::new());
    let (token, _) = t.issue(&pod_spec(), NOW).unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::RS256
    );
    assert!(check(&t, &cluster(), &token, NOW).is_ok());
    let config: Value = serde_json::from_slice(&t.openid_configuration().unwrap()).unwrap();
    assert_eq!(
        config["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
}
