//! `POST serviceaccounts/<name>/token`, the TokenRequest API (upstream
//! `pkg/registry/core/serviceaccount/storage/token.go`): a bound service-account token for the
//! account, for the requested audiences (default: the API server's), for `expirationSeconds`
//! (default one hour, at least ten minutes), optionally bound to a Pod, Secret or Node that must
//! exist (and have the UID given). `kubectl create token` and the kubelet's projected
//! `serviceAccountToken` volumes use it. Answers 201 with the TokenRequest and its
//! `status.token` and `status.expirationTimestamp`.

use serde_json::{json, Value};

use super::{meta, ApiServer, Ctx, Target};
use crate::auth::serviceaccount::{self as sa, Ref, TokenSpec};
use crate::error::{ApiError, ApiResult, FieldError, Kind};
use crate::resources;

const TOKEN_REQUEST: Kind<'static> = Kind {
    group: "authentication.k8s.io",
    resource: "TokenRequest",
    kind: "TokenRequest",
};
const API_VERSION: &str = "authentication.k8s.io/v1";

impl ApiServer {
    pub async fn create_token(
        &self,
        target: &Target,
        ctx: &Ctx,
        body: Value,
    ) -> ApiResult<(u16, Value)> {
        let tokens = self
            .service_accounts
            .as_ref()
            .ok_or_else(ApiError::path_not_found)?;
        let namespace = target
            .namespace
            .clone()
            .ok_or_else(|| ApiError::bad_request("namespace is required"))?;
        let name = target.name().to_string();
        let mut request = decode(body)?;

        // metadata: may repeat the account's name and namespace, nothing else.
        let given = |field: &str| -> String {
            request["metadata"][field]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let (req_name, req_namespace, req_uid) = (given("name"), given("namespace"), given("uid"));
        if !req_name.is_empty() && req_name != name {
            return Err(ApiError::invalid(
                TOKEN_REQUEST,
                &name,
                vec![FieldError::invalid(
                    "metadata.name",
                    &json!(req_name),
                    "must match the service account name if specified",
                )],
            ));
        }
        if !req_namespace.is_empty() && req_namespace != namespace {
            return Err(ApiError::invalid(
                TOKEN_REQUEST,
                &name,
                vec![FieldError::invalid(
                    "metadata.namespace",
                    &json!(req_namespace),
                    "must match the service account namespace if specified",
                )],
            ));
        }
        let accounts = resources::find("", "v1", "serviceaccounts")
            .ok_or_else(|| ApiError::internal("serviceaccounts are not registered"))?;
        let account = self
            .storage
            .get(&accounts.key(Some(&namespace), &name))
            .await?
            .ok_or_else(|| ApiError::not_found(accounts, &name))?
            .object;
        let account_uid = meta(&account)["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !req_uid.is_empty() && req_uid != account_uid {
            return Err(ApiError::conflict(
                TOKEN_REQUEST,
                &name,
                &format!("the UID in the token request ({req_uid}) does not match the UID of the service account ({account_uid})"),
            ));
        }

        // Defaults, then validation.
        let spec = &mut request["spec"];
        let mut audiences: Vec<String> = spec["audiences"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if audiences.is_empty() {
            audiences = tokens.api_audiences().to_vec();
        }
        spec["audiences"] = json!(audiences);
        let mut expiration = spec["expirationSeconds"].as_i64().unwrap_or(3600);
        let now = jiff::Timestamp::now();
        {
            let m = request["metadata"]
                .as_object_mut()
                .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
            m.insert("name".into(), json!(name));
            m.insert("namespace".into(), json!(namespace));
            m.insert("uid".into(), json!(account_uid));
            m.insert("creationTimestamp".into(), json!(rfc3339(now)));
        }
        let errors = validate(expiration, &request["spec"]["attestations"]);
        if !errors.is_empty() {
            return Err(ApiError::invalid(TOKEN_REQUEST, "", errors));
        }

        // The bound object.
        let mut token = TokenSpec {
            namespace: namespace.clone(),
            service_account: Ref::new(&name, &account_uid),
            audiences: audiences.clone(),
            ..TokenSpec::default()
        };
        let bound = request["spec"]["boundObjectRef"].clone();
        if bound.is_object() {
            let kind = bound["kind"].as_str().unwrap_or_default();
            let api_version = bound["apiVersion"].as_str().unwrap_or_default();
            let object_name = bound["name"].as_str().unwrap_or_default();
            let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            let (object, found_uid) = match (group, kind) {
                ("", "Pod") => {
                    let pods = resources::pods();
                    let pod = self.read(pods, Some(&namespace), object_name).await?;
                    let pod_account = pod
                        .pointer("/spec/serviceAccountName")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if pod_account != name {
                        return Err(ApiError::bad_request(format!(
                            "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name."
                        )));
                    }
                    let pod_uid = uid(&pod);
                    token.pod = Some(Ref::new(object_name, &pod_uid));
                    // A pod's token also names its node (upstream's PodNodeInfo): the node's
                    // UID when the node exists.
                    let node_name = pod
                        .pointer("/spec/nodeName")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if !node_name.is_empty() {
                        let nodes = resources::find("", "v1", "nodes")
                            .ok_or_else(|| ApiError::internal("nodes are not registered"))?;
                        let node = self.storage.get(&nodes.key(None, node_name)).await?;
                        let node_uid = node.map(|n| uid(&n.object)).unwrap_or_default();
                        token.node = Some(Ref::new(node_name, node_uid));
                    }
                    ("Pod", pod_uid)
                }
                ("", "Node") => {
                    let nodes = resources::find("", "v1", "nodes")
                        .ok_or_else(|| ApiError::internal("nodes are not registered"))?;
                    let node = self.read(nodes, None, object_name).await?;
                    let node_uid = uid(&node);
                    token.node = Some(Ref::new(object_name, &node_uid));
                    ("Node", node_uid)
                }
                ("", "Secret") => {
                    let secrets = resources::find("", "v1", "secrets")
                        .ok_or_else(|| ApiError::internal("secrets are not registered"))?;
                    let secret = self.read(secrets, Some(&namespace), object_name).await?;
                    let secret_uid = uid(&secret);
                    token.secret = Some(Ref::new(object_name, &secret_uid));
                    ("Secret", secret_uid)
                }
                _ => {
                    let version = api_version.rsplit('/').next().unwrap_or_default();
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token to object of type {group}/{version}, Kind={kind}"
                    )));
                }
            };
            let wanted = bound["uid"].as_str().unwrap_or_default();
            if !wanted.is_empty() && wanted != found_uid {
                return Err(ApiError::conflict(
                    Kind {
                        group: "",
                        resource: object,
                        kind: object,
                    },
                    object_name,
                    &format!("the UID in the bound object reference ({wanted}) does not match the UID in record. The object might have been deleted and then recreated"),
                ));
            }
        }

        // Lifetime: capped by --service-account-max-token-expiration; the kubelet's pod tokens
        // for the API's audiences extended (warnafter at the requested hour).
        let only_api_audiences = audiences.iter().all(|a| tokens.api_audiences().contains(a));
        let life = lifetime(
            expiration,
            tokens.max_expiration_seconds(),
            tokens.extend_expiration() && token.pod.is_some() && only_api_audiences,
        );
        if let Some(warning) = life.warning {
            ctx.warnings.lock().push(warning);
        }
        expiration = life.expiration;
        request["spec"]["expirationSeconds"] = json!(expiration);
        token.expiration_seconds = life.exp;
        token.warn_after_seconds = life.warn_after;
        let (signed, _jti) = tokens
            .issue(&token, now.as_second())
            .map_err(ApiError::internal)?;
        request["status"] = json!({
            "token": signed,
            "expirationTimestamp": rfc3339(now + jiff::SignedDuration::from_secs(expiration)),
        });
        Ok((201, request))
    }

    /// A consistent read of one object, or upstream's NotFound.
    async fn read(
        &self,
        info: &'static resources::ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Value> {
        Ok(self
            .storage
            .get(&info.key(namespace, name))
            .await?
            .ok_or_else(|| ApiError::not_found(info, name))?
            .object)
    }
}

/// Upstream's `ValidateTokenRequest` for a request bound to no webhook configuration.
fn validate(expiration: i64, attestations: &Value) -> Vec<FieldError> {
    if attestations.as_object().is_some_and(|a| !a.is_empty()) {
        return vec![FieldError::invalid(
            "spec.attestations",
            attestations,
            "attestations may only be specified with a webhook bound object reference",
        )];
    }
    let mut errors = Vec::new();
    if expiration < sa::MIN_EXPIRATION_SECONDS {
        errors.push(FieldError::invalid(
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration less than 10 minutes",
        ));
    }
    if expiration > 1 << 32 {
        errors.push(FieldError::invalid(
            "spec.expirationSeconds",
            &json!(expiration),
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    errors
}

/// How long a token lives.
#[derive(Debug, PartialEq)]
struct Lifetime {
    /// What the TokenRequest reports (`spec.expirationSeconds`, and the expiration timestamp).
    expiration: i64,
    /// The token's `exp`, from now.
    exp: i64,
    /// The token's `warnafter`, from now; 0: none.
    warn_after: i64,
    warning: Option<String>,
}

/// The requested lifetime capped by `--service-account-max-token-expiration` (`max`, 0: none);
/// a pod token for the API's audiences asked for with the admission's 3607 s is extended to a
/// year with a warning after the hour (`extendable`: extension on, pod-bound, API audiences).
fn lifetime(requested: i64, max: i64, extendable: bool) -> Lifetime {
    let mut expiration = requested;
    let mut warning = None;
    if max > 0 && expiration > max {
        warning = Some(format!(
            "requested expiration of {expiration} seconds shortened to {max} seconds"
        ));
        expiration = max;
    }
    let (exp, warn_after) = if extendable && expiration == sa::WARN_ONLY_EXPIRATION_SECONDS {
        (sa::EXTENDED_EXPIRATION_SECONDS, expiration)
    } else {
        (expiration, 0)
    };
    Lifetime {
        expiration,
        exp,
        warn_after,
        warning,
    }
}

fn uid(object: &Value) -> String {
    meta(object)["uid"].as_str().unwrap_or_default().to_string()
}

fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The request body as a TokenRequest: its kind and apiVersion (when given) must be
/// TokenRequest's, and its fields of the right types.
fn decode(mut body: Value) -> ApiResult<Value> {
    let Some(object) = body.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object describing a TokenRequest",
        ));
    };
    match object.get("apiVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() && v != API_VERSION => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({API_VERSION})"
            )))
        }
        _ => {
            object.insert("apiVersion".into(), json!(API_VERSION));
        }
    }
    match object.get("kind").and_then(Value::as_str) {
        Some(k) if !k.is_empty() && k != "TokenRequest" => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind (TokenRequest) for this URL"
            )))
        }
        _ => {
            object.insert("kind".into(), json!("TokenRequest"));
        }
    }
    // The status is the server's (kubectl sends an empty one with a null timestamp).
    object.remove("status");
    if object.get("spec").is_none_or(Value::is_null) {
        object.insert("spec".into(), json!({}));
    }
    let typed: k8s_openapi::api::authentication::v1::TokenRequest = serde_json::from_value(body)
        .map_err(|e| {
            ApiError::bad_request(format!(
                "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: {e}"
            ))
        })?;
    let mut value = serde_json::to_value(typed)
        .map_err(|e| ApiError::internal(format!("encoding a TokenRequest: {e}")))?;
    if !value["metadata"].is_object() {
        value["metadata"] = json!({});
    }
    if !value["spec"].is_object() {
        value["spec"] = json!({});
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_rules() {
        assert!(validate(600, &Value::Null).is_empty());
        let errors = validate(599, &Value::Null);
        assert_eq!(errors[0].field, "spec.expirationSeconds");
        assert_eq!(
            errors[0].message,
            "Invalid value: 599: may not specify a duration less than 10 minutes"
        );
        assert_eq!(validate(1 << 33, &Value::Null).len(), 1);
        assert_eq!(
            validate(3600, &json!({"k": ["v"]}))[0].field,
            "spec.attestations"
        );
        // Plain requests keep their lifetime.
        let plain = lifetime(3600, 0, true);
        assert_eq!(
            (plain.expiration, plain.exp, plain.warn_after),
            (3600, 3600, 0)
        );
        // The kubelet's pod token is extended, and says when it would have expired.
        let pod = lifetime(3607, 0, true);
        assert_eq!(
            (pod.expiration, pod.exp, pod.warn_after),
            (3607, sa::EXTENDED_EXPIRATION_SECONDS, 3607)
        );
        assert_eq!(lifetime(3607, 0, false).exp, 3607);
        // The maximum shortens, with a warning.
        let capped = lifetime(100_000, 7200, true);
        assert_eq!((capped.expiration, capped.exp), (7200, 7200));
        assert_eq!(
            capped.warning.as_deref(),
            Some("requested expiration of 100000 seconds shortened to 7200 seconds")
        );
    }

    /// kubectl 1.37's client-go sends the TokenRequest as protobuf (`UseProtobufAsDefault`),
    /// with an empty status whose timestamp is the zero time.
    #[test]
    fn decodes_kubectl_protobuf() {
        use k8s_pb::api::authentication::v1 as pb;
        use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
        use prost::Message;
        let request = pb::TokenRequest {
            metadata: Some(meta::ObjectMeta::default()),
            spec: Some(pb::TokenRequestSpec {
                audiences: Vec::new(),
                expiration_seconds: Some(600),
                bound_object_ref: Some(pb::BoundObjectReference {
                    kind: Some("Pod".into()),
                    api_version: Some("v1".into()),
                    name: Some("p".into()),
                    u_id: Some(String::new()),
                }),
            }),
            status: Some(pb::TokenRequestStatus {
                token: Some(String::new()),
                expiration_timestamp: Some(meta::Time {
                    seconds: Some(0),
                    nanos: Some(0),
                }),
            }),
        };
        let unknown = k8s_pb::apimachinery::pkg::runtime::Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some(API_VERSION.into()),
                kind: Some("TokenRequest".into()),
            }),
            raw: Some(request.encode_to_vec()),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = b"k8s\0".to_vec();
        body.extend(unknown.encode_to_vec());
        let decoded = crate::protobuf::decode(&body).unwrap();
        let v = decode(decoded.object).unwrap();
        assert_eq!(v["spec"]["expirationSeconds"], 600);
        assert_eq!(v["spec"]["boundObjectRef"]["kind"], "Pod");
        assert_eq!(v["kind"], "TokenRequest");
    }

    #[test]
    fn decodes_what_kubectl_sends() {
        // kubectl create token web --duration 10m --bound-object-kind Pod --bound-object-name p
        let body = json!({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": {"audiences": null, "expirationSeconds": 600,
                     "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}},
            "status": {"token": "", "expirationTimestamp": null}});
        let v = decode(body).unwrap();
        assert_eq!(v["spec"]["expirationSeconds"], 600);
        assert!(v.get("status").is_none_or(Value::is_null));
        assert_eq!(v["spec"]["boundObjectRef"]["name"], "p");
        // The kubelet's body (kube-rs): no kind, no metadata.
        let v = decode(json!({"spec": {"audiences": [], "expirationSeconds": 3607}})).unwrap();
        assert_eq!(v["kind"], "TokenRequest");
        assert!(v["metadata"].is_object());
        assert_eq!(decode(json!({"kind": "Pod"})).unwrap_err().code, 400);
        assert_eq!(
            decode(json!({"spec": {"expirationSeconds": "soon"}}))
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(decode(json!([])).unwrap_err().code, 400);
        // An empty body is a request with every default.
        assert!(decode(json!({})).unwrap()["spec"].is_object());
    }
}
