//! `state`, `list`, `ps`.

use crate::cli::{ListArgs, PsArgs};
use crate::containers;
use crate::records;
use anyhow::{bail, Context, Result};
use libcgroups::common::CgroupManager;
use libcontainer::container::{Container, ContainerStatus};
use serde_json::json;
use std::path::Path;

/// The OCI state object, with runc's extra fields (rootfs, created, owner).
fn state_json(container: &Container) -> serde_json::Value {
    let status = container.status();
    let pid = match status {
        ContainerStatus::Stopped => 0,
        _ => container.pid().map(|p| p.as_raw()).unwrap_or(0),
    };
    let rootfs = rootfs_of(container.bundle());
    let owner = container
        .creator()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();
    json!({
        "ociVersion": container.state.oci_version,
        "id": container.id(),
        "pid": pid,
        "status": containers::status_name(status),
        "bundle": records::original_bundle(container),
        "rootfs": rootfs,
        "created": container.created().map(|c| c.to_rfc3339()),
        "owner": owner,
        "annotations": container.state.annotations.clone().unwrap_or_default(),
    })
}

/// root.path from the bundle's config.json, made absolute (empty if unreadable).
fn rootfs_of(bundle: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(bundle.join("config.json")).unwrap_or_default();
    let config: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    match config["root"]["path"].as_str() {
        Some(path) => bundle.join(path),
        None => std::path::PathBuf::new(),
    }
}

pub fn state(root: &Path, id: &str) -> Result<i32> {
    let container = containers::load(root, id)?;
    println!("{}", serde_json::to_string_pretty(&state_json(&container))?);
    Ok(0)
}

pub fn list(root: &Path, args: &ListArgs) -> Result<i32> {
    let mut states = Vec::new();
    if let Ok(entries) = std::fs::read_dir(root) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if containers::check_id(&name).is_err() || !containers::exists(root, &name) {
                continue;
            }
            if let Ok(container) = containers::load(root, &name) {
                states.push(state_json(&container));
            }
        }
    }
    states.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    if args.quiet {
        for s in &states {
            println!("{}", s["id"].as_str().unwrap_or(""));
        }
    } else if args.format == "json" {
        println!("{}", serde_json::to_string(&states)?);
    } else {
        println!(
            "{:<20} {:<8} {:<10} {:<40} {:<32} OWNER",
            "ID", "PID", "STATUS", "BUNDLE", "CREATED"
        );
        for s in &states {
            println!(
                "{:<20} {:<8} {:<10} {:<40} {:<32} {}",
                s["id"].as_str().unwrap_or(""),
                s["pid"],
                s["status"].as_str().unwrap_or(""),
                s["bundle"].as_str().unwrap_or(""),
                s["created"].as_str().unwrap_or(""),
                s["owner"].as_str().unwrap_or("")
            );
        }
    }
    Ok(0)
}

pub fn ps(root: &Path, args: &PsArgs) -> Result<i32> {
    let container = containers::load(root, &args.container_id)?;
    let manager = containers::cgroup_manager(&container)?;
    let mut pids: Vec<i32> = manager.get_all_pids()?.iter().map(|p| p.as_raw()).collect();
    pids.sort_unstable();
    match args.format.as_str() {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => print_ps_table(&pids, &args.ps_args)?,
        other => bail!("invalid format {other:?}: table or json"),
    }
    Ok(0)
}

/// runc's table: ps(1) run with the given options (default `-ef`), showing its header and the
/// lines whose PID column is one of the container's processes.
fn print_ps_table(pids: &[i32], ps_args: &[String]) -> Result<()> {
    let default = ["-ef".to_string()];
    let options = if ps_args.is_empty() {
        &default[..]
    } else {
        ps_args
    };
    let out = std::process::Command::new("ps")
        .args(options)
        .output()
        .context("cannot run ps (apt-get install procps)")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            options.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(column) = header.split_whitespace().position(|h| h == "PID") else {
        bail!("ps output has no PID column: {header}");
    };
    println!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(())
}
