//! What a request is, as the audit policy and the event see it: upstream's `RequestInfo`
//! (`apiserver/pkg/endpoints/request/requestinfo.go`), worked out from the method and URL alone
//! (before authentication and whether or not the resource exists), the long-running check, and
//! the client's addresses (`utilnet.SourceIPs`).

use std::net::IpAddr;

/// upstream's `RequestInfo`: a resource request (`/api/v1/...`, `/apis/<group>/<version>/...`)
/// with its verb, group, version, namespace, resource, subresource and name, or a non-resource
/// request (`/healthz`, `/apis`, ...) whose verb is the lower-case method.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestInfo {
    pub is_resource_request: bool,
    /// The URL's path, as sent.
    pub path: String,
    pub verb: String,
    pub api_prefix: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

/// Go's `strconv`-free reading of a boolean query parameter (`Convert_Slice_string_To_bool`):
/// anything but "0" and "false" is true.
fn query_true(value: &str) -> bool {
    !(value == "0" || value.eq_ignore_ascii_case("false"))
}

/// The name a field selector pins with `metadata.name=<name>` (or `==`).
fn selected_name(selector: &str) -> Option<&str> {
    selector.split(',').find_map(|term| {
        let value = term.trim().strip_prefix("metadata.name")?;
        let value = value
            .strip_prefix("==")
            .or_else(|| value.strip_prefix('='))?;
        Some(value)
    })
}

/// upstream's `IsPathSegmentName`.
fn is_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

impl RequestInfo {
    /// Resolves `uri` (path and query, as on the request line) for `method`.
    pub fn resolve(method: &str, uri: &str) -> RequestInfo {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, q),
            None => (uri, ""),
        };
        let mut info = RequestInfo {
            path: path.to_string(),
            verb: method.to_ascii_lowercase(),
            ..Default::default()
        };
        let trimmed = path.trim_matches('/');
        let mut parts: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
            return info;
        }
        info.api_prefix = parts[0].to_string();
        parts.remove(0);
        if info.api_prefix != "api" {
            if parts.len() < 3 {
                return info;
            }
            info.api_group = parts.remove(0).to_string();
        }
        info.is_resource_request = true;
        info.api_version = parts.remove(0).to_string();

        if matches!(parts[0], "proxy" | "watch") {
            if parts.len() < 2 {
                // upstream refuses the request here; its info so far stands.
                return info;
            }
            info.verb = parts.remove(0).to_string();
        } else {
            info.verb = match method {
                "POST" => "create",
                "GET" | "HEAD" => "get",
                "PUT" => "update",
                "PATCH" => "patch",
                "DELETE" => "delete",
                _ => "",
            }
            .to_string();
        }

        if parts[0] == "namespaces" && parts.len() > 1 {
            info.namespace = parts[1].to_string();
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

        if info.name.is_empty() && info.verb == "get" {
            let mut watch = false;
            let mut field_selector = None;
            for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                match k.as_ref() {
                    "watch" if !watch => watch = query_true(&v),
                    "fieldSelector" if field_selector.is_none() => {
                        field_selector = Some(v.into_owned())
                    }
                    _ => {}
                }
            }
            info.verb = if watch { "watch" } else { "list" }.to_string();
            if let Some(name) = field_selector.as_deref().and_then(selected_name) {
                if is_path_segment_name(name) {
                    info.name = name.to_string();
                }
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".into();
        }
        info
    }

    /// upstream kube-apiserver's long-running check: watches and proxies, and the attach, exec,
    /// proxy, log and portforward subresources. Their events get a ResponseStarted stage.
    pub fn is_long_running(&self) -> bool {
        matches!(self.verb.as_str(), "watch" | "proxy")
            || (self.is_resource_request
                && matches!(
                    self.subresource.as_str(),
                    "attach" | "exec" | "proxy" | "log" | "portforward"
                ))
    }
}

/// The client's addresses, as upstream's `SourceIPs`: the `X-Forwarded-For` chain, then
/// `X-Real-Ip` if it is not in it, then the connection's peer unless it ends the chain.
pub fn source_ips(
    forwarded_for: Option<&str>,
    real_ip: Option<&str>,
    peer: Option<IpAddr>,
) -> Vec<String> {
    let mut ips: Vec<IpAddr> = forwarded_for
        .unwrap_or_default()
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    if let Some(ip) = real_ip.and_then(|r| r.trim().parse::<IpAddr>().ok()) {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    if let Some(peer) = peer {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
            v4 => v4,
        };
        if ips.last() != Some(&peer) {
            ips.push(peer);
        }
    }
    ips.iter().map(IpAddr::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: &str, uri: &str) -> RequestInfo {
        RequestInfo::resolve(method, uri)
    }

    #[test]
    fn resource_requests() {
        let i = info(
            "POST",
            "/api/v1/namespaces/default/configmaps?fieldManager=kubectl-create",
        );
        assert!(i.is_resource_request);
        assert_eq!(
            (
                i.verb.as_str(),
                i.api_group.as_str(),
                i.api_version.as_str(),
                i.namespace.as_str(),
                i.resource.as_str(),
                i.name.as_str()
            ),
            ("create", "", "v1", "default", "configmaps", "")
        );
        let i = info("GET", "/apis/apps/v1/namespaces/a/deployments/web/scale");
        assert_eq!(
            (
                i.verb.as_str(),
                i.api_group.as_str(),
                i.resource.as_str(),
                i.name.as_str(),
                i.subresource.as_str()
            ),
            ("get", "apps", "deployments", "web", "scale")
        );
        // The namespace's own subresources.
        let i = info("PUT", "/api/v1/namespaces/blue/finalize");
        assert_eq!(
            (
                i.resource.as_str(),
                i.name.as_str(),
                i.subresource.as_str(),
                i.namespace.as_str()
            ),
            ("namespaces", "blue", "finalize", "blue")
        );
        let i = info("GET", "/api/v1/namespaces/blue");
        assert_eq!(
            (i.verb.as_str(), i.resource.as_str(), i.name.as_str()),
            ("get", "namespaces", "blue")
        );
        assert_eq!(info("GET", "/api/v1/pods").verb, "list");
        assert_eq!(info("GET", "/api/v1/pods?watch=true").verb, "watch");
        assert_eq!(info("GET", "/api/v1/pods?watch=1").verb, "watch");
        assert_eq!(info("GET", "/api/v1/pods?watch=false").verb, "list");
        assert_eq!(
            info("DELETE", "/api/v1/namespaces/a/pods").verb,
            "deletecollection"
        );
        assert_eq!(info("DELETE", "/api/v1/namespaces/a/pods/p").verb, "delete");
        assert_eq!(info("PATCH", "/api/v1/nodes/n/status").verb, "patch");
        // A list pinned to one name by its field selector names it.
        let i = info(
            "GET",
            "/api/v1/namespaces/a/pods?fieldSelector=metadata.name%3Dp1&watch=1",
        );
        assert_eq!((i.verb.as_str(), i.name.as_str()), ("watch", "p1"));
        // Legacy watch paths.
        let i = info("GET", "/api/v1/watch/namespaces/a/pods/p");
        assert_eq!(
            (
                i.verb.as_str(),
                i.namespace.as_str(),
                i.resource.as_str(),
                i.name.as_str()
            ),
            ("watch", "a", "pods", "p")
        );
        // The resource need not exist.
        assert_eq!(
            info("GET", "/apis/example.com/v1/widgets").resource,
            "widgets"
        );
        assert!(info("GET", "/api/v1/namespaces/a/pods/p/log").is_long_running());
        assert!(info("GET", "/api/v1/pods?watch=true").is_long_running());
        assert!(!info("GET", "/api/v1/pods").is_long_running());
    }

    #[test]
    fn non_resource_requests() {
        for path in [
            "/",
            "/api",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/api/v1",
            "/healthz",
            "/openapi/v3/apis/apps/v1",
        ] {
            let i = info("GET", path);
            assert!(!i.is_resource_request, "{path}");
            assert_eq!(i.verb, "get");
            assert_eq!(i.path, path);
        }
        assert_eq!(info("POST", "/healthz").verb, "post");
    }

    #[test]
    fn client_addresses() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(source_ips(None, None, Some(peer)), vec!["10.0.0.9"]);
        assert_eq!(
            source_ips(Some("1.2.3.4, bogus, 5.6.7.8"), Some("1.2.3.4"), Some(peer)),
            vec!["1.2.3.4", "5.6.7.8", "10.0.0.9"]
        );
        assert_eq!(
            source_ips(
                Some("1.2.3.4"),
                Some("9.9.9.9"),
                Some("9.9.9.9".parse().unwrap())
            ),
            vec!["1.2.3.4", "9.9.9.9"]
        );
        assert_eq!(
            source_ips(None, None, Some("::ffff:127.0.0.1".parse().unwrap())),
            vec!["127.0.0.1"]
        );
    }
}
