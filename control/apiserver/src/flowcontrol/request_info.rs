//! Upstream's `RequestInfo` (`k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`): what a
//! request is from its method, path and query alone, before any handler looks at it. Flow
//! control classifies by it: a resource request's verb (`get`, `list`, `watch`, `create`, …),
//! API group, resource, subresource and namespace; any other request's lower-cased method and
//! path. It is parsed here rather than taken from the router because classification comes
//! before routing (and before authorization), as upstream's filter chain has it, and because
//! upstream derives it without knowing which resources exist.

use axum::http::Method;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    pub path: String,
    pub verb: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

impl RequestInfo {
    /// `query`: the decoded query parameters.
    pub fn new(method: &Method, path: &str, query: &[(String, String)]) -> RequestInfo {
        let mut info = RequestInfo {
            path: path.to_string(),
            verb: method.as_str().to_lowercase(),
            ..Default::default()
        };
        let mut parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        if path.trim_matches('/').is_empty() {
            parts.clear();
        }
        if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
            return info;
        }
        let prefix = parts.remove(0);
        if prefix == "apis" {
            if parts.len() < 3 {
                return info;
            }
            info.api_group = parts.remove(0).to_string();
        }
        info.is_resource_request = true;
        info.api_version = parts.remove(0).to_string();
        if matches!(parts[0], "proxy" | "watch") {
            if parts.len() < 2 {
                // Upstream fails the request ("unable to determine kind and namespace"); the
                // router answers it with a 404, classified as the resource request it looks like.
                info.verb = parts[0].to_string();
                return info;
            }
            info.verb = parts.remove(0).to_string();
        } else {
            info.verb = match *method {
                Method::POST => "create",
                Method::GET | Method::HEAD => "get",
                Method::PUT => "update",
                Method::PATCH => "patch",
                Method::DELETE => "delete",
                _ => "",
            }
            .to_string();
        }
        if parts[0] == "namespaces" && parts.len() > 1 {
            info.namespace = parts[1].to_string();
            // A namespace's own subresources stay under `namespaces`.
            if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
                parts.drain(..2);
            }
        }
        if parts.len() >= 3 && info.verb != "proxy" {
            info.subresource = parts[2].to_string();
        }
        if parts.len() >= 2 {
            info.name = parts[1].to_string();
        }
        if !parts.is_empty() {
            info.resource = parts[0].to_string();
        }
        let param = |key: &str| {
            query
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if info.name.is_empty() && info.verb == "get" {
            let watch = param("watch").is_some_and(|w| {
                // Upstream decodes a bool: `true`/`1` (any case); other values fail decoding and
                // fall back to "anything but false or 0".
                !matches!(w.to_lowercase().as_str(), "false" | "0")
            });
            info.verb = if watch { "watch" } else { "list" }.to_string();
            if let Some(selector) = param("fieldSelector") {
                if let Some(name) = exact_name(selector) {
                    info.name = name;
                }
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_string();
        }
        info
    }

    /// Upstream's `BasicLongRunningRequestCheck(watch, proxy; attach, exec, proxy, log,
    /// portforward)`: requests that may go on for as long as the client wants.
    pub fn is_long_running(&self) -> bool {
        self.is_resource_request
            && (matches!(self.verb.as_str(), "watch" | "proxy")
                || matches!(
                    self.subresource.as_str(),
                    "attach" | "exec" | "proxy" | "log" | "portforward"
                ))
    }

    /// Upstream's read-only verbs (`nonMutatingRequestVerbs`).
    pub fn is_mutating(&self) -> bool {
        !matches!(self.verb.as_str(), "get" | "list" | "watch")
    }
}

/// `metadata.name=<n>` (or `==`) as the only term naming the name, and a valid path segment.
fn exact_name(selector: &str) -> Option<String> {
    let mut found = None;
    for term in selector.split(',') {
        let term = term.trim();
        let value = term
            .strip_prefix("metadata.name==")
            .or_else(|| term.strip_prefix("metadata.name="));
        if let Some(value) = value {
            if found.is_some() {
                return None;
            }
            found = Some(value.to_string());
        }
    }
    found.filter(|n| !n.is_empty() && n != "." && n != ".." && !n.contains(['/', '%']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, path: &str, query: &[(&str, &str)]) -> RequestInfo {
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RequestInfo::new(&method, path, &query)
    }

    /// Cases from upstream's `TestGetAPIRequestInfo`.
    #[test]
    fn resource_requests() {
        // method, path, query, then the verb, group, namespace, resource, subresource, name.
        type Case<'a> = (Method, &'a str, &'a [(&'a str, &'a str)], [&'a str; 6]);
        let cases: &[Case] = &[
            (
                Method::GET,
                "/api/v1/namespaces",
                &[],
                ["list", "", "", "namespaces", "", ""],
            ),
            (
                Method::GET,
                "/api/v1/namespaces/other",
                &[],
                ["get", "", "other", "namespaces", "", "other"],
            ),
            (
                Method::GET,
                "/api/v1/namespaces/other/pods",
                &[],
                ["list", "", "other", "pods", "", ""],
            ),
            (
                Method::GET,
                "/api/v1/namespaces/other/pods/foo",
                &[],
                ["get", "", "other", "pods", "", "foo"],
            ),
            (
                Method::GET,
                "/api/v1/pods",
                &[],
                ["list", "", "", "pods", "", ""],
            ),
            (
                Method::POST,
                "/api/v1/namespaces/other/pods",
                &[],
                ["create", "", "other", "pods", "", ""],
            ),
            (
                Method::GET,
                "/api/v1/namespaces/other/pods/foo/status",
                &[],
                ["get", "", "other", "pods", "status", "foo"],
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/other/finalize",
                &[],
                ["update", "", "other", "namespaces", "finalize", "other"],
            ),
            (
                Method::GET,
                "/api/v1/watch/namespaces/other/pods",
                &[],
                ["watch", "", "other", "pods", "", ""],
            ),
            (
                Method::GET,
                "/api/v1/namespaces/other/pods",
                &[("watch", "true")],
                ["watch", "", "other", "pods", "", ""],
            ),
            (
                Method::GET,
                "/api/v1/namespaces/other/pods",
                &[("watch", "false")],
                ["list", "", "other", "pods", "", ""],
            ),
            (
                Method::GET,
                "/api/v1/proxy/namespaces/other/pods/foo/a/b",
                &[],
                ["proxy", "", "other", "pods", "", "foo"],
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/other/pods",
                &[],
                ["deletecollection", "", "other", "pods", "", ""],
            ),
            (
                Method::GET,
                "/apis/extensions/v1beta1/namespaces/other/extensions",
                &[],
                ["list", "extensions", "other", "extensions", "", ""],
            ),
            (
                Method::GET,
                "/apis/apps/v1/deployments",
                &[],
                ["list", "apps", "", "deployments", "", ""],
            ),
            (
                Method::GET,
                "/api/v1/namespaces/other/pods",
                &[("fieldSelector", "metadata.name=foo")],
                ["list", "", "other", "pods", "", "foo"],
            ),
            (
                Method::POST,
                "/api/v1/namespaces/other/pods/foo/exec",
                &[],
                ["create", "", "other", "pods", "exec", "foo"],
            ),
        ];
        for (method, path, query, want) in cases {
            let i = info(method.clone(), path, query);
            assert!(i.is_resource_request, "{path}");
            let got = [
                &i.verb,
                &i.api_group,
                &i.namespace,
                &i.resource,
                &i.subresource,
                &i.name,
            ];
            assert_eq!(got.map(String::as_str), *want, "{method} {path}");
        }
    }

    #[test]
    fn non_resource_requests() {
        for (method, path, verb) in [
            (Method::GET, "/healthz", "get"),
            (Method::GET, "/api", "get"),
            (Method::GET, "/apis/apps", "get"),
            (Method::GET, "/api/v1", "get"),
            (Method::POST, "/readyz/x", "post"),
            (Method::GET, "/", "get"),
        ] {
            let i = info(method, path, &[]);
            assert!(!i.is_resource_request, "{path}");
            assert_eq!((i.verb.as_str(), i.path.as_str()), (verb, path));
        }
        // `/apis/<g>/<v>` is a resource request for upstream only with something after it.
        assert!(info(Method::GET, "/apis/apps/v1/deployments", &[]).is_resource_request);
        assert!(!info(Method::GET, "/apis/apps/v1", &[]).is_resource_request);
    }

    #[test]
    fn long_running() {
        assert!(info(Method::GET, "/api/v1/pods", &[("watch", "1")]).is_long_running());
        assert!(info(Method::GET, "/api/v1/namespaces/a/pods/p/log", &[]).is_long_running());
        assert!(info(Method::POST, "/api/v1/namespaces/a/pods/p/exec", &[]).is_long_running());
        assert!(
            info(Method::GET, "/api/v1/namespaces/a/services/s/proxy/x", &[]).is_long_running()
        );
        assert!(!info(Method::GET, "/api/v1/pods", &[]).is_long_running());
        assert!(!info(Method::GET, "/healthz", &[]).is_long_running());
    }
}
