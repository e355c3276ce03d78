//! Proxying a request for a remote group version to its extension server (upstream's
//! `handler_proxy.go`): the request as it came — method, path, query, body, Accept, upgrades —
//! to a ready endpoint of the APIService's Service, over TLS that verifies the backend as
//! `<service>.<namespace>.svc` against `caBundle` (or not at all with
//! `insecureSkipTLSVerify`) and presents the front-proxy client certificate; the caller's
//! identity goes in `X-Remote-User`, `X-Remote-Uid`, `X-Remote-Group` and
//! `X-Remote-Extra-<key>`. Whatever `X-Remote-*` headers the caller sent are dropped first:
//! the backend believes them because the certificate vouches for them.
//!
//! The caller was authenticated and authorized here (RBAC on the group's resources, as for
//! any API request); the extension server checks again with its own authorizer. A group
//! version whose APIService is not Available answers upstream's `503 service unavailable`.

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, Request, Response, StatusCode};
use serde_json::json;

use super::front_proxy::escape_extra_key;
use super::Remote;
use crate::auth::UserInfo;
use crate::error::{ApiError, ApiResult};
use crate::handlers::ApiServer;
use crate::proxy::Location;

/// The identity headers, as the published `requestheader-*` names spell them.
const USER: &str = "x-remote-user";
const UID: &str = "x-remote-uid";
const GROUP: &str = "x-remote-group";
const EXTRA_PREFIX: &str = "x-remote-extra-";

/// Upstream's `http.Error(w, "service unavailable", 503)`.
fn unavailable() -> Response<Body> {
    let mut resp = Response::new(Body::from("service unavailable\n"));
    *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut().insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Where `remote`'s Service sends a request now, with the TLS toward it.
pub(crate) async fn location(server: &ApiServer, remote: &Remote) -> Result<Location, String> {
    let client_config = json!({"service": remote.service});
    let endpoint = crate::admission::webhook::client::resolve(
        server,
        &client_config,
        std::time::Duration::from_secs(5),
    )
    .await?;
    let tls = server
        .aggregator
        .identity
        .tls_for(&remote.ca_bundle, remote.insecure_skip_tls_verify)
        .map_err(|e| format!("{e:#}"))?;
    Ok(Location {
        host: endpoint.address,
        port: endpoint.port,
        tls: Some(tls),
        server_name: Some(endpoint.server_name),
    })
}

/// Puts `user` in the identity headers, after removing any the caller sent.
pub(crate) fn set_identity(headers: &mut axum::http::HeaderMap, user: &UserInfo) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            k == USER || k == UID || k == GROUP || k.starts_with(EXTRA_PREFIX)
        })
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
    let mut add = |name: &str, value: &str| {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    };
    add(USER, &user.name);
    if !user.uid.is_empty() {
        add(UID, &user.uid);
    }
    for group in &user.groups {
        add(GROUP, group);
    }
    for (key, values) in &user.extra {
        let name = format!("{EXTRA_PREFIX}{}", escape_extra_key(key)).to_ascii_lowercase();
        for value in values {
            add(&name, value);
        }
    }
}

/// Sends `request` (already authorized for `user`) to `remote`'s extension server.
pub async fn serve(
    server: &ApiServer,
    remote: &Remote,
    user: &UserInfo,
    mut request: Request<Body>,
) -> ApiResult<Response<Body>> {
    if !remote.available {
        return Ok(unavailable());
    }
    let location = match location(server, remote).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(apiservice = %remote.name, "no way to the extension server: {e}");
            return Ok(unavailable());
        }
    };
    set_identity(request.headers_mut(), user);
    let path = request.uri().path().to_string();
    match crate::proxy::forward(request, &location, "", &path).await {
        Ok(response) => Ok(response),
        // Upstream's proxy answers an unreachable backend with 503 and the dial error.
        Err(e) if e.code == 503 => Err(ApiError::unavailable(e.message)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_headers_replace_what_the_caller_sent() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-remote-user", HeaderValue::from_static("system:admin"));
        headers.insert("x-remote-group", HeaderValue::from_static("system:masters"));
        headers.insert("x-remote-extra-evil", HeaderValue::from_static("1"));
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let mut user = UserInfo {
            name: "alice".into(),
            uid: "u-1".into(),
            groups: vec!["dev".into(), "system:authenticated".into()],
            ..Default::default()
        };
        user.extra.insert(
            "authentication.kubernetes.io/pod-name".into(),
            vec!["p".into()],
        );
        set_identity(&mut headers, &user);
        assert_eq!(headers["x-remote-user"], "alice");
        assert_eq!(headers["x-remote-uid"], "u-1");
        let groups: Vec<_> = headers.get_all("x-remote-group").iter().collect();
        assert_eq!(groups, ["dev", "system:authenticated"]);
        assert!(!headers.contains_key("x-remote-extra-evil"));
        assert_eq!(
            headers["x-remote-extra-authentication.kubernetes.io%2fpod-name"],
            "p"
        );
        assert_eq!(headers["accept"], "application/json");
    }
}
