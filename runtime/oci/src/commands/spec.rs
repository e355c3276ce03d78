//! `spec`: write a default config.json, like `runc spec`.

use crate::cli::SpecArgs;
use anyhow::{bail, Result};
use libcontainer::oci_spec::runtime::Spec;

pub fn spec(args: &SpecArgs) -> Result<i32> {
    let path = args.bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let spec = if args.rootless {
        Spec::rootless(0, 0)
    } else {
        Spec::default()
    };
    std::fs::write(&path, serde_json::to_string_pretty(&spec)?)?;
    Ok(0)
}
