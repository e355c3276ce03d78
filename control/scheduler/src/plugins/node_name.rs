//! NodeName: a pod that names a node fits only there.

use k8s_openapi::api::core::v1::Pod;

use super::FilterContext;
use crate::framework::{FilterResult, NodeInfo, Unfit};

pub fn filter(pod: &Pod, node: &NodeInfo, _ctx: &FilterContext) -> FilterResult {
    match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        Some(wanted) if !wanted.is_empty() && wanted != node.name() => Err(Unfit::unresolvable(
            "node(s) didn't match the requested node name",
        )),
        _ => Ok(()),
    }
}
