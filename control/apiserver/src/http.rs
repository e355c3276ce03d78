//! HTTP: routing of Kubernetes REST paths, authentication, body decoding (JSON, YAML, protobuf)
//! and content negotiation (JSON, Table, PartialObjectMetadata); watch streams are `watch.rs`.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::discovery;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::handlers::{Ctx, ScaleChange, Shared, Target};
use crate::patch::PatchType;
use crate::resources::{self, Sub};
use crate::response::{self, IncludeObject, Output};

/// Upstream's limit on request bodies (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

pub fn router(server: Shared) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(server)
}

fn json_response(code: u16, value: &Value, warnings: &[String]) -> Response {
    let body = serde_json::to_vec(value).expect("JSON values serialise");
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    // An API object: the audit log's response status and, at RequestResponse, its body.
    resp.extensions_mut()
        .insert(crate::audit::ApiObject::of(value));
    resp
}

fn bytes_response(code: u16, content_type: &'static str, body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

const APPLICATION_JSON: &str = "application/json";

/// Upstream's `prefixFromUserAgent`: the field manager of a write that names none.
fn manager_from_user_agent(headers: &HeaderMap) -> String {
    let agent = header_str(headers, header::USER_AGENT);
    agent.split('/').next().unwrap_or_default().to_string()
}

/// An OpenAPI document with its `ETag`; `304 Not Modified` when the client's `If-None-Match`
/// names it, as upstream's OpenAPI handlers answer.
fn openapi_response(
    headers: &HeaderMap,
    etag: &str,
    immutable: bool,
    content_type: &'static str,
    body: Bytes,
) -> Response {
    let matches = header_str(headers, header::IF_NONE_MATCH)
        .split(',')
        .any(|t| t.trim() == etag || t.trim() == "*");
    let mut resp = if matches {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        bytes_response(200, content_type, body)
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable {
            "public, immutable"
        } else {
            "no-cache, private"
        }),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    resp
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status(), &[])
}

fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn output_for(accept: &str, query: &[(String, String)]) -> ApiResult<Output> {
    if accept.contains("as=Table") {
        let include = IncludeObject::from_query(
            query
                .iter()
                .find(|(k, _)| k == "includeObject")
                .map(|(_, v)| v.as_str()),
        );
        return Ok(Output::Table(include));
    }
    if accept.contains("as=PartialObjectMetadata") {
        return Ok(Output::PartialMetadata);
    }
    let acceptable = accept.is_empty()
        || accept.split(',').any(|a| {
            let a = a.trim();
            a.starts_with("application/json")
                || a.starts_with("*/*")
                || a.starts_with("application/*")
                || a.starts_with("application/yaml")
        });
    if !acceptable {
        return Err(ApiError::not_acceptable());
    }
    Ok(Output::Json)
}

/// Decodes a request body by its Content-Type. An empty Content-Type is JSON (the Python client
/// sends none).
/// An object body for create or update: JSON duplicates are noted in `ctx` for
/// fieldValidation (YAML duplicates are already a parse error).
fn decode_request(ctx: &Ctx, content_type: &str, body: &[u8]) -> ApiResult<Value> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if matches!(media, "" | "application/json") {
        let (value, duplicates) = crate::json::parse_with_duplicates(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?;
        *ctx.duplicate_fields.lock() = duplicates;
        return Ok(value);
    }
    decode_body(content_type, body)
}

fn decode_body(content_type: &str, body: &[u8]) -> ApiResult<Value> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    match media {
        "" | "application/json" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        }),
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let v: Value = serde_yaml::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("error converting YAML to JSON: {e}"))
            })?;
            Ok(v)
        }
        crate::protobuf::MEDIA_TYPE => {
            let decoded =
                crate::protobuf::decode(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            Ok(decoded.object)
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// Reads a request body of at most MAX_BODY bytes. A larger body is read to its end (up to a
/// bound) without being kept, so the client gets a clean 413 rather than a reset stream.
async fn read_body(body: Body) -> ApiResult<Bytes> {
    use http_body_util::BodyExt;
    const DRAIN_LIMIT: usize = 64 * 1024 * 1024;
    let mut body = body;
    let mut kept = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen <= MAX_BODY {
                kept.extend_from_slice(&data);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
    }
    if seen > MAX_BODY {
        return Err(ApiError::too_large());
    }
    Ok(kept.freeze())
}

async fn handle(State(server): State<Shared>, mut req: Request) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let audit = server.audit.begin(&mut req);
    let (verb, resource, resp) = match audit.guard(route(&server, req)).await {
        Ok(r) => r,
        Err((verb, resource, e)) => (verb, resource, error_response(&e)),
    };
    let resp = audit.finish(resp).await;
    let code = resp.status().as_u16();
    if verb != "watch" {
        server
            .metrics
            .observe(&verb, &resource, code, started.elapsed());
    }
    if code >= 500 {
        tracing::warn!(%method, %path, code, "request failed on the server side");
    }
    tracing::debug!(%method, %path, code, elapsed_ms = started.elapsed().as_millis() as u64, "request");
    resp
}

/// (verb, resource) for metrics, with the response or the error.
#[allow(clippy::result_large_err)] // one per request; boxing it would buy nothing measurable
type Routed = Result<(String, String, Response), (String, String, ApiError)>;

#[allow(clippy::result_large_err)]
async fn route(server: &Shared, req: Request) -> Routed {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().trim_end_matches('/').to_string();
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    let query = parse_query(parts.uri.query());
    let accept = header_str(&parts.headers, header::ACCEPT).to_string();
    let plain = |name: &str| (name.to_string(), String::new());
    let fail = |verb: &str, e: ApiError| Err((verb.to_string(), String::new(), e));

    // Authentication, then impersonation.
    let user = match authenticate(server, &parts).await {
        Some(u) => u,
        None => return fail("", ApiError::unauthorized()),
    };
    let audit = crate::audit::Context::of(&parts.extensions);
    audit.authenticated(&user);
    let requester = user.name.clone();
    let user = match crate::auth::impersonation::impersonate(
        &server.authorizer,
        &server.storage,
        &parts.headers,
        user,
    )
    .await
    {
        Ok(u) => u,
        Err(e) => return fail("", e),
    };
    if user.name != requester {
        audit.impersonated(&user);
    }
    // Authorization of paths that name no resource (discovery, health, version, OpenAPI).
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let names_resource = matches!(
        segments.as_slice(),
        ["api", "v1", _, ..] | ["apis", _, _, _, ..]
    );
    if !names_resource {
        let attrs = crate::auth::Attributes {
            user: &user,
            verb: parts.method.as_str().to_lowercase(),
            resource: None,
            path: path.clone(),
        };
        if let Err(e) = authorize(server, &attrs, &audit).await {
            return fail("", e);
        }
    }

    if parts.method == Method::GET {
        let (verb, resource) = plain("get");
        match path.as_str() {
            "/version" => {
                return Ok((verb, resource, json_response(200, &version(), &[])));
            }
            "/healthz" | "/livez" | "/readyz" => {
                let ok = server.storage.revision().await.is_ok();
                let resp = if ok {
                    bytes_response(200, "text/plain; charset=utf-8", Bytes::from_static(b"ok"))
                } else {
                    bytes_response(
                        500,
                        "text/plain; charset=utf-8",
                        Bytes::from_static(
                            b"[-]etcd failed: storage unreachable\nhealthz check failed",
                        ),
                    )
                };
                return Ok((verb, resource, resp));
            }
            "/metrics" => {
                let text = server.metrics.render();
                return Ok((
                    verb,
                    resource,
                    bytes_response(200, "text/plain; version=0.0.4", Bytes::from(text)),
                ));
            }
            "/api" => {
                let resp = if discovery::wants_aggregated(&accept) {
                    let mut r = json_response(
                        200,
                        &discovery::aggregated(&server.custom, &server.aggregator.routes(), true),
                        &[],
                    );
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
                    );
                    r
                } else {
                    json_response(200, &discovery::api_versions(&server.server_address), &[])
                };
                return Ok((verb, resource, resp));
            }
            "/apis" => {
                let resp = if discovery::wants_aggregated(&accept) {
                    let mut r = json_response(
                        200,
                        &discovery::aggregated(&server.custom, &server.aggregator.routes(), false),
                        &[],
                    );
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
                    );
                    r
                } else {
                    json_response(
                        200,
                        &discovery::api_group_list(&server.custom, &server.aggregator.routes()),
                        &[],
                    )
                };
                return Ok((verb, resource, resp));
            }
            "/openapi/v2" => {
                let spec = crate::openapi::v2::spec(&server.custom);
                let (content_type, body) = if crate::openapi::v2::wants_protobuf(&accept) {
                    (
                        crate::openapi::v2::PROTOBUF_CONTENT_TYPE,
                        spec.protobuf.clone(),
                    )
                } else {
                    (APPLICATION_JSON, spec.json.clone())
                };
                let resp = openapi_response(&parts.headers, &spec.etag, false, content_type, body);
                return Ok((verb, resource, resp));
            }
            "/openapi/v3" => {
                return Ok((
                    verb,
                    resource,
                    bytes_response(
                        200,
                        "application/json",
                        crate::openapi::root(&server.custom),
                    ),
                ));
            }
            // Service-account issuer discovery (upstream `pkg/routes/openidmetadata.go`).
            "/.well-known/openid-configuration" | "/openid/v1/jwks" => {
                let jwks = path == "/openid/v1/jwks";
                let document = server.service_accounts.as_ref().and_then(|t| {
                    if jwks {
                        t.jwks()
                    } else {
                        t.openid_configuration()
                    }
                });
                let Some(document) = document else {
                    return fail("get", ApiError::path_not_found());
                };
                let content_type = if jwks {
                    "application/jwk-set+json"
                } else {
                    "application/json"
                };
                let mut resp = bytes_response(200, content_type, document);
                resp.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=3600"),
                );
                return Ok((verb, resource, resp));
            }
            _ => {}
        }
        if let Some(gv) = path.strip_prefix("/openapi/v3/") {
            return match crate::openapi::gv_document(&server.custom, gv) {
                Some((hash, doc)) => {
                    // A client that names the current hash may keep the document for good.
                    let immutable = query.iter().any(|(k, v)| k == "hash" && *v == hash);
                    let etag = format!("\"{hash}\"");
                    let resp =
                        openapi_response(&parts.headers, &etag, immutable, APPLICATION_JSON, doc);
                    Ok((verb, resource, resp))
                }
                None => fail("get", ApiError::path_not_found()),
            };
        }
    }

    // Group versions an extension server serves go there (`aggregator`).
    if let ["apis", g, v, ..] = segments.as_slice() {
        if !discovery::served_locally(&server.custom, g, v) {
            let routes = server.aggregator.routes();
            if let Some(remote) = routes.find(g, v) {
                let uri = parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| parts.uri.path().to_string(), |p| p.to_string());
                let info = crate::audit::RequestInfo::resolve(parts.method.as_str(), &uri);
                let resource_label = match info.subresource.as_str() {
                    "" => info.resource.clone(),
                    sub => format!("{}/{sub}", info.resource),
                };
                if info.is_resource_request && !info.resource.is_empty() {
                    let attrs = crate::auth::Attributes {
                        user: &user,
                        verb: info.verb.clone(),
                        resource: Some(crate::auth::ResourceAttributes {
                            namespace: info.namespace.clone(),
                            api_group: info.api_group.clone(),
                            api_version: info.api_version.clone(),
                            resource: info.resource.clone(),
                            subresource: info.subresource.clone(),
                            name: info.name.clone(),
                            field_selector: String::new(),
                        }),
                        path: path.clone(),
                    };
                    if let Err(e) = authorize(server, &attrs, &audit).await {
                        return Err((info.verb, resource_label, e));
                    }
                }
                let request = Request::from_parts(parts, body);
                return match crate::aggregator::proxy::serve(server, remote, &user, request).await {
                    Ok(response) => Ok((info.verb, resource_label, response)),
                    Err(e) => Err((info.verb, resource_label, e)),
                };
            }
        }
    }

    // API group paths.
    let (group, version, rest): (&str, &str, &[&str]) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        ["apis", g] if parts.method == Method::GET => {
            return match discovery::api_group(&server.custom, &server.aggregator.routes(), g) {
                Some(doc) => Ok(plain_ok("get", json_response(200, &doc, &[]))),
                None => fail("get", ApiError::path_not_found()),
            };
        }
        _ => return fail("", ApiError::path_not_found()),
    };
    if rest.is_empty() {
        if parts.method != Method::GET {
            return fail("", ApiError::method_not_allowed());
        }
        return match discovery::resource_list(&server.custom, group, version) {
            Some(doc) => Ok(plain_ok("get", json_response(200, &doc, &[]))),
            None => fail("get", ApiError::path_not_found()),
        };
    }
    let target = match parse_target(&server.custom, group, version, rest) {
        Some(t) => t,
        None => return fail("", ApiError::path_not_found()),
    };
    let resource_label = match target.sub {
        Some(s) => format!("{}/{}", target.info.resource, s.name()),
        None => target.info.resource.to_string(),
    };
    if target.sub == Some(Sub::Proxy) {
        // The path after `/proxy` belongs to the backend, as do the Accept header and the
        // query: none of it is the API server's to interpret.
        let ctx = Ctx {
            user,
            query,
            output: Output::Json,
            warnings: parking_lot::Mutex::new(Vec::new()),
            duplicate_fields: Default::default(),
            audit: crate::audit::Context::of(&parts.extensions),
            default_manager: manager_from_user_agent(&parts.headers),
        };
        let verb = crate::proxy::verb(&parts.method).to_string();
        let attrs = crate::auth::Attributes {
            user: &ctx.user,
            verb: verb.clone(),
            resource: Some(resource_attributes(&target, version, &ctx)),
            path: path.clone(),
        };
        let audit = crate::audit::Context::of(&parts.extensions);
        if let Err(e) = authorize(server, &attrs, &audit).await {
            return Err((verb, resource_label, e));
        }
        // `api/v1` or `apis/<g>/<v>`, then `[namespaces/<ns>/]<resource>/<name>/proxy`.
        let head = segments.len() - rest.len() + if target.namespace.is_some() { 5 } else { 3 };
        let raw = parts.uri.path().to_string();
        let (prefix, tail) = crate::proxy::split_after_segments(&raw, head);
        let request = Request::from_parts(parts, body);
        return match crate::proxy::serve(server, &target, &ctx, request, prefix, tail).await {
            Ok(response) => Ok((verb, resource_label, response)),
            Err(e) => Err((verb, resource_label, e)),
        };
    }
    let output = match output_for(&accept, &query) {
        Ok(o) => o,
        Err(e) => return Err(("".into(), resource_label, e)),
    };
    let ctx = Ctx {
        user,
        query,
        output,
        warnings: parking_lot::Mutex::new(Vec::new()),
        duplicate_fields: Default::default(),
        audit: crate::audit::Context::of(&parts.extensions),
        default_manager: manager_from_user_agent(&parts.headers),
    };
    let is_watch = ctx.param("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = verb_name(&parts.method, &target, is_watch);
    {
        let attrs = crate::auth::Attributes {
            user: &ctx.user,
            verb: authorization_verb(&verb, &target),
            resource: Some(resource_attributes(&target, version, &ctx)),
            path: path.clone(),
        };
        let audit = crate::audit::Context::of(&parts.extensions);
        if let Err(e) = authorize(server, &attrs, &audit).await {
            return Err((verb, resource_label, e));
        }
    }
    if target.name.is_some()
        && matches!(
            target.sub,
            Some(Sub::Log | Sub::Exec | Sub::Attach | Sub::PortForward)
        )
    {
        // Served by the pod's kubelet, upgrades included: the whole request goes there.
        let request = Request::from_parts(parts, body);
        return match crate::kubelet_proxy::proxy(server, &target, &ctx, request).await {
            Ok(response) => Ok((verb, resource_label, response)),
            Err(e) => Err((verb, resource_label, e)),
        };
    }
    let content_type = header_str(&parts.headers, header::CONTENT_TYPE).to_string();
    if target.info.is_custom()
        && content_type.split(';').next().map(str::trim) == Some(crate::protobuf::MEDIA_TYPE)
    {
        // Custom objects have no protobuf form: JSON and YAML only, as upstream's handler.
        // The body is read first (within the usual limit): an HTTP/2 reply that ends the stream
        // while the client still sends makes curl report a framing error instead of the 415.
        let _ = read_body(body).await;
        return Err((
            verb,
            resource_label,
            ApiError::new(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
            ),
        ));
    }
    let result = dispatch(
        server,
        &parts.method,
        &target,
        &ctx,
        &content_type,
        body,
        is_watch,
    )
    .await;
    match result {
        Ok(Reply::Value(code, mut value)) => {
            crate::handlers::served_view(target.info, &mut value);
            let warnings = ctx.warnings.lock().clone();
            Ok((verb, resource_label, json_response(code, &value, &warnings)))
        }
        Ok(Reply::Response(resp)) => Ok((verb, resource_label, resp)),
        Err(e) => Err((verb, resource_label, e)),
    }
}

/// Who sent the request (upstream's authenticator chain, in its order): a client certificate
/// verified against the cluster CA, else a bearer token — the static token file, bootstrap
/// tokens, service-account tokens. A request without credentials is `system:anonymous`;
/// credentials that do not check out are `None` (401, with nothing about why): a bearer token
/// no authenticator accepts, or a client certificate that did not verify (upstream's union
/// fails with the x509 authenticator's error unless a token authenticates).
async fn authenticate(server: &Shared, parts: &axum::http::request::Parts) -> Option<UserInfo> {
    use crate::auth::x509::CertificateIdentity;
    let Some(tokens) = &server.tokens else {
        // Authentication off: every caller is the admin.
        return Some(UserInfo {
            name: "admin".into(),
            uid: "admin".into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        });
    };
    let certificate = crate::auth::x509::authenticate_request(&parts.extensions);
    if let CertificateIdentity::User(user) = certificate {
        return Some(user);
    }
    let authorization = parts.headers.get(header::AUTHORIZATION);
    match authorization.and_then(|value| bearer_token(value.as_bytes())) {
        Some(token) => {
            // Bytes that are not UTF-8 are no token anyone issued.
            let token = std::str::from_utf8(token).ok()?;
            if let Some(user) = tokens.authenticate_token(token) {
                return Some(user);
            }
            if let Some(user) = crate::auth::bootstrap_token::authenticate(server, token).await {
                return Some(user);
            }
            let mut user = crate::auth::serviceaccount::authenticate(server, token).await?;
            user.groups.push("system:authenticated".into());
            Some(user)
        }
        None if certificate == CertificateIdentity::Refused => None,
        // No credentials (or a scheme no authenticator handles): anonymous, as upstream's
        // default `--anonymous-auth=true`; RBAC decides what it may see.
        None => Some(UserInfo {
            name: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
            ..Default::default()
        }),
    }
}

/// The token of an `Authorization` value, read as upstream's `bearertoken.Authenticator` does:
/// the value trimmed, then split on spaces into at most three parts; a token only when the
/// first part is `bearer` in any case and the second is not empty. So `bearer T` and
/// `Bearer T more` carry `T`; `Bearer  T` (two spaces), `Bearer`, `Basic …` carry none (the
/// caller is anonymous). The token is raw bytes: HTTP allows bytes above 0x7f in a value.
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let mut parts = value.trim_ascii().splitn(3, |&b| b == b' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case(b"bearer") && !token.is_empty()).then_some(token)
}

/// Runs the authorizer chain, noting the decision for the audit log; a denial is upstream's
/// 403.
async fn authorize(
    server: &Shared,
    attrs: &crate::auth::Attributes<'_>,
    audit: &crate::audit::Context,
) -> ApiResult<()> {
    let decision = match server
        .authorizer
        .authorize_fresh(&server.storage, attrs)
        .await
    {
        Ok(d) => d,
        Err(e) => {
            audit.authorization_error();
            return Err(e);
        }
    };
    audit.authorization_decision(decision.allowed(), decision.reason());
    if decision.allowed() {
        Ok(())
    } else {
        Err(attrs.forbidden(decision.reason()))
    }
}

/// The verb RBAC checks: as the handler's, except that exec, attach and port-forward need
/// `create` whichever method opens them (upstream's websocket rule since 1.30).
fn authorization_verb(verb: &str, target: &Target) -> String {
    match target.sub {
        Some(Sub::Exec | Sub::Attach | Sub::PortForward) => "create".into(),
        _ => verb.to_string(),
    }
}

/// A resource request's attributes. A list or watch selecting one object by
/// `metadata.name` names it (upstream's RequestInfo), so per-object grants apply.
fn resource_attributes(
    target: &Target,
    version: &str,
    ctx: &Ctx,
) -> crate::auth::ResourceAttributes {
    let field_selector = ctx.param("fieldSelector").unwrap_or_default().to_string();
    let name = target.name.clone().unwrap_or_else(|| {
        field_selector
            .split(',')
            .find_map(|r| {
                r.trim()
                    .strip_prefix("metadata.name==")
                    .or_else(|| r.trim().strip_prefix("metadata.name="))
            })
            .unwrap_or_default()
            .to_string()
    });
    crate::auth::ResourceAttributes {
        namespace: target.namespace.clone().unwrap_or_default(),
        api_group: target.info.group.to_string(),
        api_version: version.to_string(),
        resource: target.info.resource.to_string(),
        subresource: target.sub.map(|s| s.name().to_string()).unwrap_or_default(),
        name,
        field_selector,
    }
}

fn plain_ok(verb: &str, resp: Response) -> (String, String, Response) {
    (verb.to_string(), String::new(), resp)
}

fn verb_name(method: &Method, target: &Target, watch: bool) -> String {
    let collection = target.name.is_none();
    match *method {
        Method::GET if watch => "watch",
        Method::GET if collection => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if collection => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
    .to_string()
}

/// Splits the path after `/api/v1` or `/apis/<g>/<v>` into a target.
fn parse_target(
    custom: &crate::customresource::Registry,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Option<Target> {
    // Built-ins first: a CRD never shadows a resource the server itself serves.
    let find =
        |r: &str| resources::find(group, version, r).or_else(|| custom.find(group, version, r));
    let t =
        |info, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| -> Option<Target> {
            let sub = match sub {
                None => None,
                Some(s) => {
                    let sub = Sub::parse(s)?;
                    let info: &resources::ResourceInfo = info;
                    if !info.has(sub) {
                        return None;
                    }
                    Some(sub)
                }
            };
            Some(Target {
                info,
                namespace: namespace.map(str::to_string),
                name: name.map(str::to_string),
                sub,
            })
        };
    match rest {
        // namespaces/<ns>/<resource>... (namespaced resources) — but namespaces/<name>/status
        // and /finalize are subresources of the namespace itself.
        ["namespaces", ns, r, tail @ ..]
            if group.is_empty() && matches!(*r, "status" | "finalize") && tail.is_empty() =>
        {
            t(resources::namespaces(), None, Some(ns), Some(r))
        }
        ["namespaces", ns, r, tail @ ..] => {
            let info = find(r)?;
            if !info.namespaced {
                return None;
            }
            match tail {
                [] => t(info, Some(ns), None, None),
                [name] => t(info, Some(ns), Some(name), None),
                [name, sub] => t(info, Some(ns), Some(name), Some(sub)),
                // The proxy subresource's path goes on (the backend's).
                [name, "proxy", ..] => t(info, Some(ns), Some(name), Some("proxy")),
                _ => None,
            }
        }
        [r] => t(find(r)?, None, None, None),
        [r, name] => {
            let info = find(r)?;
            if info.namespaced {
                return None;
            }
            t(info, None, Some(name), None)
        }
        [r, name, sub] => {
            let info = find(r)?;
            if info.namespaced {
                return None;
            }
            t(info, None, Some(name), Some(sub))
        }
        [r, name, "proxy", ..] => {
            let info = find(r)?;
            if info.namespaced {
                return None;
            }
            t(info, None, Some(name), Some("proxy"))
        }
        _ => None,
    }
}

pub enum Reply {
    Value(u16, Value),
    Response(Response),
}

async fn dispatch(
    server: &Shared,
    method: &Method,
    target: &Target,
    ctx: &Ctx,
    content_type: &str,
    body: Body,
    is_watch: bool,
) -> ApiResult<Reply> {
    let info = target.info;
    let verb_allowed = |v: &str| info.verbs.contains(&v);
    let value = |r: ApiResult<(u16, Value)>| r.map(|(c, v)| Reply::Value(c, v));
    match (method.clone(), target.name.is_some(), target.sub) {
        (Method::GET, false, None) if is_watch => {
            if !verb_allowed("watch") {
                return Err(ApiError::method_not_allowed());
            }
            crate::watch::watch(server, target, ctx)
                .await
                .map(Reply::Response)
        }
        (Method::GET, false, None) => {
            if !verb_allowed("list") {
                return Err(ApiError::method_not_allowed());
            }
            let list = server.list(target, ctx).await?;
            Ok(Reply::Value(200, response::list(info, ctx.output, list)))
        }
        (Method::GET, true, None) if is_watch => {
            // Upstream allows watching one object by name: a field selector on metadata.name.
            let mut query = ctx.query.clone();
            query.retain(|(k, _)| k != "fieldSelector");
            query.push((
                "fieldSelector".into(),
                format!("metadata.name={}", target.name.clone().unwrap_or_default()),
            ));
            let ctx2 = Ctx {
                user: ctx.user.clone(),
                query,
                output: ctx.output,
                warnings: parking_lot::Mutex::new(Vec::new()),
                duplicate_fields: Default::default(),
                audit: ctx.audit.clone(),
                default_manager: ctx.default_manager.clone(),
            };
            let collection = Target {
                name: None,
                ..target.clone()
            };
            crate::watch::watch(server, &collection, &ctx2)
                .await
                .map(Reply::Response)
        }
        (
            Method::GET,
            true,
            None | Some(Sub::Status | Sub::Approval | Sub::EphemeralContainers | Sub::Resize),
        ) => {
            if !verb_allowed("get") {
                return Err(ApiError::method_not_allowed());
            }
            let object = server.get(target, ctx).await?;
            Ok(Reply::Value(
                200,
                response::object(info, ctx.output, object),
            ))
        }
        (Method::GET, true, Some(Sub::Scale)) => {
            let object = server
                .get(
                    &Target {
                        sub: None,
                        ..target.clone()
                    },
                    ctx,
                )
                .await?;
            Ok(Reply::Value(200, server.scale_of(info, &object)))
        }
        (Method::POST, false, None) if info.group.is_empty() && info.resource == "bindings" => {
            // The legacy `bindings` collection is `pods/binding` under another path (upstream
            // serves both from the pod storage's LegacyBinding): the pod is the binding's name.
            let bytes = read_body(body).await?;
            let object = decode_body(content_type, &bytes)?;
            let pod = Target {
                info: resources::find("", "v1", "pods")
                    .ok_or_else(|| ApiError::internal("pods are not registered"))?,
                namespace: target.namespace.clone(),
                name: object
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                sub: Some(Sub::Binding),
            };
            if pod.name.as_deref().unwrap_or_default().is_empty() {
                return Err(ApiError::invalid(
                    info,
                    "",
                    vec![FieldError::required("metadata.name", "")],
                ));
            }
            value(server.bind(&pod, ctx, object).await)
        }
        (Method::POST, false, None) => {
            if !verb_allowed("create") {
                return Err(ApiError::method_not_allowed());
            }
            let bytes = read_body(body).await?;
            let object = decode_request(ctx, content_type, &bytes)?;
            value(server.create(target, ctx, object).await)
        }
        (Method::POST, true, Some(Sub::Binding)) => {
            let bytes = read_body(body).await?;
            let object = decode_body(content_type, &bytes)?;
            value(server.bind(target, ctx, object).await)
        }
        (Method::POST, true, Some(Sub::Eviction)) => {
            let bytes = read_body(body).await?;
            let object = decode_body(content_type, &bytes)?;
            value(server.evict(target, ctx, object).await)
        }
        (Method::POST, true, Some(Sub::Token)) => {
            let bytes = read_body(body).await?;
            let object = decode_body(content_type, &bytes)?;
            value(server.create_token(target, ctx, object).await)
        }
        (Method::PUT, true, None)
        | (
            Method::PUT,
            true,
            Some(
                Sub::Status
                | Sub::Approval
                | Sub::Finalize
                | Sub::EphemeralContainers
                | Sub::Resize,
            ),
        ) => {
            if !verb_allowed("update") {
                return Err(ApiError::method_not_allowed());
            }
            let bytes = read_body(body).await?;
            let object = decode_request(ctx, content_type, &bytes)?;
            value(server.update(target, ctx, object).await)
        }
        (Method::PUT, true, Some(Sub::Scale)) => {
            let bytes = read_body(body).await?;
            let scale = decode_body(content_type, &bytes)?;
            value(
                server
                    .update_scale(target, ctx, ScaleChange::Replace(scale))
                    .await,
            )
        }
        (Method::PATCH, true, sub)
            if matches!(
                sub,
                None | Some(
                    Sub::Status
                        | Sub::Approval
                        | Sub::Scale
                        | Sub::EphemeralContainers
                        | Sub::Resize
                )
            ) =>
        {
            if !verb_allowed("patch") {
                return Err(ApiError::method_not_allowed());
            }
            let patch_type = PatchType::from_content_type(content_type)
                .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
            let bytes = read_body(body).await?;
            if sub == Some(Sub::Scale) {
                return value(
                    server
                        .update_scale(target, ctx, ScaleChange::Patch(patch_type, &bytes))
                        .await,
                );
            }
            value(server.patch(target, ctx, patch_type, &bytes).await)
        }
        (Method::DELETE, true, None) => {
            if !verb_allowed("delete") {
                return Err(ApiError::method_not_allowed());
            }
            let options = delete_options(content_type, body).await?;
            value(server.delete(target, ctx, &options).await)
        }
        (Method::DELETE, false, None) => {
            if !verb_allowed("deletecollection") {
                return Err(ApiError::method_not_allowed());
            }
            let options = delete_options(content_type, body).await?;
            value(server.delete_collection(target, ctx, &options).await)
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

async fn delete_options(content_type: &str, body: Body) -> ApiResult<Value> {
    let bytes = read_body(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v = decode_body(content_type, &bytes)?;
    if !v.is_object() {
        return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
    }
    Ok(v)
}

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.4-skiff",
        "gitCommit": env!("CARGO_PKG_VERSION"),
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ctx(validation: &str) -> Ctx {
        Ctx {
            user: UserInfo {
                name: "t".into(),
                uid: String::new(),
                groups: vec![],
                ..Default::default()
            },
            query: vec![("fieldValidation".into(), validation.into())],
            output: Output::Json,
            warnings: parking_lot::Mutex::new(Vec::new()),
            duplicate_fields: Default::default(),
            audit: crate::audit::Context::of(&Default::default()),
            default_manager: String::new(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Any body, under any media type, decodes to a value or a 4xx error — never a panic.
        #[test]
        fn body_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), media in 0usize..4) {
            let ct = ["application/json", "application/yaml", crate::protobuf::MEDIA_TYPE, ""][media];
            let mut body = bytes.clone();
            if media == 2 {
                let mut framed = b"k8s\0".to_vec();
                framed.extend_from_slice(&bytes);
                body = framed;
            }
            if let Err(e) = decode_body(ct, &body) {
                prop_assert!((400..500).contains(&e.code));
            }
        }

        /// Arbitrary JSON objects posted as any kind are decoded or refused with a 4xx.
        #[test]
        fn object_decoding_never_panics(json in "[\\[\\]{}\":,a-z0-9 ]{0,200}", kind in 0usize..8) {
            let info = &resources::RESOURCES[kind];
            if let Ok(value) = serde_json::from_str::<Value>(&json) {
                for v in ["Strict", "Warn", "Ignore"] {
                    if let Err(e) = crate::handlers::decode_object(info, &ctx(v), value.clone()) {
                        prop_assert!((400..500).contains(&e.code), "{}", e.message);
                    }
                }
            }
        }
    }

    #[test]
    fn strict_names_unknown_fields() {
        let info = resources::pods();
        let body = serde_json::json!({"metadata": {"name": "p"}, "spec": {"foo": 1, "containers": [{"name": "c", "image": "i", "bar": true}]}});
        let err = crate::handlers::decode_object(info, &ctx("Strict"), body.clone()).unwrap_err();
        assert_eq!(err.code, 400);
        assert_eq!(err.message, "strict decoding error: unknown field \"spec.containers[0].bar\", unknown field \"spec.foo\"");
        let c = ctx("Warn");
        let decoded = crate::handlers::decode_object(info, &c, body).unwrap();
        assert!(decoded["spec"].get("foo").is_none());
        assert_eq!(c.warnings.lock().len(), 2);
    }

    /// Upstream's conformance spec "should detect unknown and duplicate fields of a typed object".
    #[test]
    fn strict_lists_unknown_then_duplicate_fields() {
        let info = resources::find("apps", "v1", "deployments").expect("deployments");
        let body = br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"my-dep"},"spec":{"unknownField":"foo","replicas":2,"replicas":3,"selector":{"matchLabels":{"app":"nginx"}},"template":{"metadata":{"labels":{"app":"nginx"}},"spec":{"containers":[{"name":"nginx","image":"nginx:latest"}]}}}}"#;
        let c = ctx("Strict");
        let value = decode_request(&c, "application/json", body).unwrap();
        let err = crate::handlers::decode_object(info, &c, value).unwrap_err();
        assert!(
            err.message.contains(r#"strict decoding error: unknown field "spec.unknownField", duplicate field "spec.replicas""#),
            "{}",
            err.message
        );
    }

    #[test]
    fn duplicate_fields_follow_field_validation() {
        let info = resources::pods();
        let body = br#"{"metadata":{"name":"p","name":"q"},"spec":{"containers":[{"name":"c","image":"i"}]}}"#;
        let c = ctx("Warn");
        let value = decode_request(&c, "application/json", body).unwrap();
        let decoded = crate::handlers::decode_object(info, &c, value).unwrap();
        assert_eq!(decoded["metadata"]["name"], "q");
        assert_eq!(
            *c.warnings.lock(),
            vec!["duplicate field \"metadata.name\"".to_string()]
        );
        let c = ctx("Strict");
        let value = decode_request(&c, "application/json", body).unwrap();
        let err = crate::handlers::decode_object(info, &c, value).unwrap_err();
        assert_eq!(
            err.message,
            "strict decoding error: duplicate field \"metadata.name\""
        );
        let c = ctx("Ignore");
        let value = decode_request(&c, "application/json", body).unwrap();
        crate::handlers::decode_object(info, &c, value).unwrap();
        assert!(c.warnings.lock().is_empty());
    }

    #[test]
    fn bearer_tokens_are_read_as_upstream_reads_them() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"Bearer abc", Some(b"abc")),
            (b"bearer abc", Some(b"abc")),
            (b"BEARER abc", Some(b"abc")),
            (b"  Bearer abc  ", Some(b"abc")),
            (b"Bearer abc more", Some(b"abc")),
            (b"Bearer \xff\xfe", Some(b"\xff\xfe")),
            // No token: the caller is anonymous.
            (b"", None),
            (b"Bearer", None),
            (b"Bearer ", None),
            (b"Bearer  abc", None),
            (b"Bearer\tabc", None),
            (b"Basic YWRtaW46YWRtaW4=", None),
            (b"Token abc", None),
            (b"abc", None),
        ];
        for (value, token) in cases {
            assert_eq!(
                bearer_token(value),
                *token,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn targets() {
        let t = parse_target(
            &Default::default(),
            "",
            "v1",
            &["namespaces", "blue", "finalize"],
        )
        .unwrap();
        assert_eq!(
            (t.info.resource, t.name.as_deref(), t.sub),
            ("namespaces", Some("blue"), Some(Sub::Finalize))
        );
        let t = parse_target(
            &Default::default(),
            "",
            "v1",
            &["namespaces", "blue", "pods", "p", "status"],
        )
        .unwrap();
        assert_eq!(
            (t.info.resource, t.namespace.as_deref(), t.sub),
            ("pods", Some("blue"), Some(Sub::Status))
        );
        let t = parse_target(&Default::default(), "apps", "v1", &["deployments"]).unwrap();
        assert!(t.namespace.is_none() && t.name.is_none());
        assert!(
            parse_target(&Default::default(), "", "v1", &["pods", "p"]).is_none(),
            "namespaced item needs a namespace"
        );
        assert!(parse_target(
            &Default::default(),
            "",
            "v1",
            &["namespaces", "x", "pods", "p", "scale"]
        )
        .is_none());
        assert!(parse_target(&Default::default(), "", "v1", &["nosuch"]).is_none());
        // The proxy subresource takes the rest of the path; others do not.
        let t = parse_target(
            &Default::default(),
            "",
            "v1",
            &["namespaces", "x", "pods", "web:8080", "proxy", "a", "b"],
        )
        .unwrap();
        assert_eq!(
            (t.name.as_deref(), t.sub),
            (Some("web:8080"), Some(Sub::Proxy))
        );
        let t = parse_target(
            &Default::default(),
            "",
            "v1",
            &["nodes", "n1", "proxy", "stats", "summary"],
        )
        .unwrap();
        assert_eq!((t.info.resource, t.sub), ("nodes", Some(Sub::Proxy)));
        let t = parse_target(
            &Default::default(),
            "",
            "v1",
            &["namespaces", "x", "services", "https:s:443", "proxy"],
        );
        assert_eq!(t.unwrap().sub, Some(Sub::Proxy));
        assert!(parse_target(
            &Default::default(),
            "",
            "v1",
            &["namespaces", "x", "pods", "p", "log", "more"]
        )
        .is_none());
        assert!(parse_target(
            &Default::default(),
            "",
            "v1",
            &["namespaces", "x", "configmaps", "c", "proxy"]
        )
        .is_none());
    }
}
