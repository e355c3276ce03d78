//! `spec`: write a default config.json, like `runc spec`.

use crate::cli::SpecArgs;
use anyhow::{bail, Result};
use libcontainer::oci_spec::runtime::Spec;

pub fn spec(args: &SpecArgs) -> Result<i32> {
    let path = args.bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let mut spec = serde_json::to_value(if args.rootless {
        Spec::rootless(0, 0)
    } else {
        Spec::default()
    })?;
    if !args.rootless {
        // runc's default denies every device (the default devices are allowed on top);
        // oci-spec's default has an empty list, which leaves the host's devices usable.
        spec["linux"]["resources"]["devices"] =
            serde_json::json!([{"allow": false, "access": "rwm"}]);
    }
    std::fs::write(&path, serde_json::to_string_pretty(&spec)?)?;
    Ok(0)
}
