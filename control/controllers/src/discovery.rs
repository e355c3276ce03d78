//! Discovery that tolerates unavailable groups, as upstream's controllers read it
//! (client-go's `ServerPreferredResources` returns what it found with an
//! `ErrGroupDiscoveryFailed` naming the rest). kube-rs' `Discovery::run` fails as a whole when
//! one group version does not answer — and an aggregated API whose backend is down or still
//! starting (metrics-server in its first ~30 s) answers 503 — which would stop the namespace
//! controller and the garbage collector for every other resource. Here each group's preferred
//! version is asked on its own, and the failures are returned beside the resources.

use kube::core::GroupVersion;
use kube::discovery::{ApiCapabilities, ApiResource};
use kube::Client;

/// The resources of every group that answered, and the group versions that did not.
#[derive(Default)]
pub struct Resources {
    pub found: Vec<(ApiResource, ApiCapabilities)>,
    /// `group/version` and why, for each group version whose discovery failed.
    pub failed: Vec<(String, String)>,
}

impl Resources {
    /// Upstream's `ErrGroupDiscoveryFailed` text: "unable to retrieve the complete list of
    /// server APIs: metrics.k8s.io/v1beta1: …".
    pub fn failure(&self) -> Option<String> {
        if self.failed.is_empty() {
            return None;
        }
        let each: Vec<String> = self
            .failed
            .iter()
            .map(|(gv, why)| format!("{gv}: {why}"))
            .collect();
        Some(format!(
            "unable to retrieve the complete list of server APIs: {}",
            each.join(", ")
        ))
    }
}

fn reason(e: kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// The preferred version's resources of every group (core included). Fails only when the
/// group list itself cannot be read.
pub async fn preferred_resources(client: &Client) -> kube::Result<Resources> {
    let groups = client.list_api_groups().await?;
    let mut versions: Vec<GroupVersion> = vec![GroupVersion::gv("", "v1")];
    for group in &groups.groups {
        let preferred = group
            .preferred_version
            .as_ref()
            .or(group.versions.first())
            .map(|v| v.version.clone());
        if let Some(version) = preferred {
            versions.push(GroupVersion::gv(&group.name, &version));
        }
    }
    let mut out = Resources::default();
    for gv in versions {
        match kube::discovery::pinned_group(client, &gv).await {
            Ok(group) => out.found.extend(group.recommended_resources()),
            Err(e) => {
                let name = if gv.group.is_empty() {
                    gv.version.clone()
                } else {
                    format!("{}/{}", gv.group, gv.version)
                };
                out.failed.push((name, reason(e)));
            }
        }
    }
    Ok(out)
}
