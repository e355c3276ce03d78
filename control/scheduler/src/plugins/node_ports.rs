//! NodePorts: a host port (protocol, IP, port) can be taken once per node; `0.0.0.0` conflicts
//! with every IP.

use k8s_openapi::api::core::v1::Pod;

use super::FilterContext;
use crate::framework::{host_ports, FilterResult, NodeInfo, Unfit};

pub fn filter(pod: &Pod, node: &NodeInfo, _ctx: &FilterContext) -> FilterResult {
    for (protocol, ip, port) in host_ports(pod) {
        let conflict = node.used_ports.iter().any(|(p, i, n)| {
            *p == protocol && *n == port && (i == "0.0.0.0" || ip == "0.0.0.0" || *i == ip)
        });
        if conflict {
            return Err(Unfit::resolvable(
                "node(s) didn't have free ports for the requested pod ports",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::plugins::testing::{node, pod};
    use serde_json::json;

    fn with_port(name: &str, port: i32, ip: &str) -> Pod {
        pod(
            name,
            json!({"spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80, "hostPort": port, "hostIP": ip}]}]}}),
        )
    }

    #[test]
    fn host_ports_conflict() {
        let mut n = node("a", "1", "1Gi", json!({}));
        n.add_pod(Arc::new(with_port("web", 8080, "")));
        let err = filter(&with_port("other", 8080, ""), &n, &FilterContext::default()).unwrap_err();
        assert!(!err.unresolvable);
        assert!(filter(&with_port("other", 8081, ""), &n, &FilterContext::default()).is_ok());
        assert!(filter(
            &with_port("other", 8080, "10.0.0.1"),
            &n,
            &FilterContext::default()
        )
        .is_err());
        n.remove_pod("uid-web");
        assert!(filter(&with_port("other", 8080, ""), &n, &FilterContext::default()).is_ok());
    }
}
