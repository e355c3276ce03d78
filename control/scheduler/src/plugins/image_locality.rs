//! ImageLocality: nodes that already hold the pod's images score higher, by image size and by
//! how many nodes have it (so one node holding a common image does not attract everything).

use k8s_openapi::api::core::v1::Pod;

use super::ScoreContext;
use crate::framework::NodeInfo;

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// `nginx` → `nginx:latest`; tags and digests are kept.
fn normalized(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// The names the node's image list may use for `image`: as written, and Docker Hub's long form.
fn candidates(image: &str) -> [String; 2] {
    let n = normalized(image);
    let first = n.split('/').next().unwrap_or_default();
    let has_registry =
        n.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let long = if has_registry {
        n.clone()
    } else if n.contains('/') {
        format!("docker.io/{n}")
    } else {
        format!("docker.io/library/{n}")
    };
    [n, long]
}

/// The image's size on the node, if it has it.
fn size_on(node: &NodeInfo, image: &str) -> Option<i64> {
    let names = candidates(image);
    node.node
        .status
        .as_ref()?
        .images
        .as_ref()?
        .iter()
        .find(|i| {
            i.names
                .iter()
                .flatten()
                .any(|n| names.iter().any(|c| c == n))
        })
        .map(|i| i.size_bytes.unwrap_or(0))
}

pub fn score(pod: &Pod, node: &NodeInfo, ctx: &ScoreContext) -> i64 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let total_nodes = ctx.all_nodes.len().max(1) as i64;
    let mut sum = 0i64;
    for c in &spec.containers {
        let Some(image) = c.image.as_deref() else {
            continue;
        };
        if let Some(size) = size_on(node, image) {
            let holders = ctx
                .all_nodes
                .iter()
                .filter(|n| size_on(n, image).is_some())
                .count()
                .max(1) as i64;
            sum += size * holders / total_nodes;
        }
    }
    let max_threshold = MAX_CONTAINER_THRESHOLD * spec.containers.len().max(1) as i64;
    let clamped = sum.clamp(MIN_THRESHOLD, max_threshold);
    100 * (clamped - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn nodes_with_the_image_score_higher() {
        let with = node(
            "a",
            "1",
            "1Gi",
            json!({"status": {"images": [{"names": ["docker.io/library/redis:7"], "sizeBytes": 500 * MB}]}}),
        );
        let without = node("b", "1", "1Gi", json!({}));
        let all = [&with, &without];
        let ctx = ScoreContext::new(&pod("p", json!({})), &all, &all);
        let p = pod(
            "p",
            json!({"spec": {"containers": [{"name": "c", "image": "redis:7"}]}}),
        );
        assert!(score(&p, &with, &ctx) > 0);
        assert_eq!(score(&p, &without, &ctx), 0);
        assert_eq!(normalized("nginx"), "nginx:latest");
        assert_eq!(
            normalized("127.0.0.1:5000/busybox"),
            "127.0.0.1:5000/busybox:latest"
        );
    }
}
