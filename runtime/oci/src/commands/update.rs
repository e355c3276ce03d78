//! `update`: change the cgroup resources of a running container.

use crate::cli::UpdateArgs;
use crate::containers;
use anyhow::{Context, Result};
use libcgroups::common::{CgroupManager, ControllerOpt};
use libcontainer::oci_spec::runtime::LinuxResources;
use serde_json::json;
use std::io::Read;
use std::path::Path;

pub fn update(root: &Path, args: &UpdateArgs) -> Result<i32> {
    let container = containers::load(root, &args.container_id)?;
    let resources = resources_from_args(args)?;
    let manager = containers::cgroup_manager(&container)?;
    let opt = ControllerOpt {
        resources: &resources,
        disable_oom_killer: false,
        oom_score_adj: None,
        freezer_state: None,
    };
    manager.apply(&opt).context("failed to update resources")?;
    Ok(0)
}

/// Builds the OCI resources object from --resources JSON, then overlays the flags.
/// Going through JSON keeps the field names exactly those of the OCI spec.
fn resources_from_args(args: &UpdateArgs) -> Result<LinuxResources> {
    let mut value = match &args.resources {
        Some(path) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            serde_json::from_str(&text).context("invalid resources JSON on stdin")?
        }
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text).context("invalid resources JSON")?
        }
        None => json!({}),
    };
    if let Some(limit) = args.memory {
        value["memory"]["limit"] = json!(limit);
    }
    if let Some(limit) = args.pids_limit {
        value["pids"]["limit"] = json!(limit);
    }
    if let Some(shares) = args.cpu_shares {
        value["cpu"]["shares"] = json!(shares);
    }
    if let Some(quota) = args.cpu_quota {
        value["cpu"]["quota"] = json!(quota);
    }
    if let Some(period) = args.cpu_period {
        value["cpu"]["period"] = json!(period);
    }
    let resources: LinuxResources = serde_json::from_value(value).context("invalid resources")?;
    Ok(resources)
}
