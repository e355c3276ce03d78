//! Helpers shared by the commands: loading containers safely, preparing bundles and stdio.
//! Each works around a libcontainer 0.7 pitfall, described where it is handled: a reused pid
//! taken for a live container, state.json read mid-rewrite, the `:youki:<id>` cgroup of a
//! spec without `linux.cgroupsPath`.

use anyhow::{bail, Context, Result};
use libcontainer::container::{Container, ContainerStatus};
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::records;

/// Cgroup parent used when config.json has no `linux.cgroupsPath`. libcontainer would use
/// the literal directory `:youki:<id>`; an absolute path keeps v1 and v2 layouts predictable.
pub const DEFAULT_CGROUP_PARENT: &str = "/skiff-runtime";
const DEFAULT_ROOT: &str = "/run/skiff-runtime";

/// The cgroup parent of containers without `linux.cgroupsPath`: `/skiff-runtime` for the
/// default `--root`, and one parent per other state root (`/skiff-runtime-tmp-x-state` for
/// `/tmp/x/state`), so independent users of the runtime (tests, benchmarks, a second node
/// agent) never share — and can remove — their parent cgroup.
pub fn cgroup_parent(root: &Path) -> String {
    if root == Path::new(DEFAULT_ROOT) {
        return DEFAULT_CGROUP_PARENT.to_string();
    }
    let flat: String = root
        .to_string_lossy()
        .trim_matches('/')
        .chars()
        .map(|c| if c == '/' { '-' } else { c })
        .collect();
    format!("{DEFAULT_CGROUP_PARENT}-{flat}")
}

pub fn container_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Temporary bundle used when we must patch config.json. `@` cannot appear in a container
/// id, so this never collides with a state directory.
fn patched_bundle_dir(root: &Path, id: &str) -> PathBuf {
    root.join(format!("bundle@{id}"))
}

/// Container ids allowed by libcontainer (and runc): `[A-Za-z0-9_+.-]`, not `.` or `..`.
pub fn check_id(id: &str) -> Result<()> {
    let valid_chars = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '.' | '-'));
    if id.is_empty() || id == "." || id == ".." || !valid_chars {
        bail!("invalid container id {id:?}");
    }
    Ok(())
}

pub fn exists(root: &Path, id: &str) -> bool {
    container_dir(root, id).join("state.json").exists()
}

/// Loads a container and corrects its status when its pid was reused by an unrelated
/// process: libcontainer's refresh_status() only checks that the pid is alive.
pub fn load(root: &Path, id: &str) -> Result<Container> {
    check_id(id)?;
    if !exists(root, id) {
        bail!("container {id} does not exist");
    }
    let dir = container_dir(root, id);
    let mut container =
        load_state(&dir).with_context(|| format!("failed to load container {id}"))?;
    let alive = matches!(
        container.status(),
        ContainerStatus::Created | ContainerStatus::Running | ContainerStatus::Paused
    );
    if alive {
        if let Some(pid) = container.pid() {
            if records::is_recorded_init(&dir, pid.as_raw()) == Some(false) {
                container.set_status(ContainerStatus::Stopped);
            }
        }
    }
    Ok(container)
}

/// libcontainer rewrites state.json in place (truncate, then write), so a reader racing a
/// `start` or `pause` in another process can find it empty or cut short. A failed parse is
/// retried for a moment before it counts.
fn load_state(dir: &Path) -> Result<Container> {
    const ATTEMPTS: u32 = 50;
    let mut attempt = 1;
    loop {
        match Container::load(dir.to_path_buf()) {
            Ok(container) => return Ok(container),
            Err(_) if attempt < ATTEMPTS && dir.join("state.json").exists() => {
                std::thread::sleep(std::time::Duration::from_millis(2));
                attempt += 1;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// The bundle a container is created from. When config.json lacks `linux.cgroupsPath` we use a
/// patched copy (absolute rootfs, cgroupsPath = <cgroup_parent(root)>/<id>) at
/// `<root>/bundle@<id>` (skiff's launcher: in the state dir `<root>/<id>`), because libcontainer only reads `<bundle>/config.json`. The copy
/// lives as long as the container: libcontainer's `exec` reads the config again from the
/// bundle recorded in state.json to find the container's cgroup (with the caller's config it
/// would put the exec'd process into a new `:youki:<id>` cgroup, outside the container's
/// limits). `state` and `list` show the caller's bundle, kept in `skiff-bundle`.
pub struct PreparedBundle {
    /// The caller's bundle.
    pub original: PathBuf,
    /// The spec the container is created from (patched when a copy is used).
    pub spec: libcontainer::oci_spec::runtime::Spec,
    /// Where the patched copy goes, and its config.json.
    patched: Option<(PathBuf, Vec<u8>)>,
}

impl PreparedBundle {
    /// The bundle directory libcontainer and state.json see.
    pub fn dir(&self) -> &Path {
        self.patched
            .as_ref()
            .map_or(self.original.as_path(), |(dir, _)| dir.as_path())
    }

    /// Whether a patched copy is used (and the caller's bundle must be recorded).
    pub fn is_patched(&self) -> bool {
        self.patched.is_some()
    }

    /// Puts the patched copy (if one is used) into `dir` instead: skiff's launcher keeps it in
    /// the container's state dir, which it creates itself, sparing a directory of its own
    /// (on a disk-backed /run, creating and removing one costs ~0.3 ms per container).
    pub fn place_copy_in(&mut self, dir: PathBuf) {
        if let Some((copy_dir, _)) = &mut self.patched {
            *copy_dir = dir;
        }
    }

    /// Writes the patched copy, if one is used.
    pub fn write_patched(&self) -> Result<()> {
        if let Some((dir, config)) = &self.patched {
            fs::create_dir_all(dir)?;
            fs::write(dir.join("config.json"), config)?;
        }
        Ok(())
    }
}

/// Reads and validates the caller's config.json (bad input fails before anything is created)
/// and prepares the patched copy in memory; nothing is written yet.
pub fn prepare_bundle(root: &Path, id: &str, bundle: &Path) -> Result<PreparedBundle> {
    let config_path = bundle.join("config.json");
    let text = fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let mut config: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("invalid JSON in {}", config_path.display()))?;
    // Parse as an OCI spec too, so unknown namespaces and similar errors are reported here.
    let spec: libcontainer::oci_spec::runtime::Spec = serde_json::from_value(config.clone())
        .with_context(|| format!("invalid OCI spec in {}", config_path.display()))?;
    let rootfs = spec
        .root()
        .as_ref()
        .context("config.json has no root")?
        .path()
        .clone();
    let rootfs = if rootfs.is_absolute() {
        rootfs
    } else {
        bundle.join(rootfs)
    };
    let rootfs = fs::canonicalize(&rootfs)
        .with_context(|| format!("rootfs {} does not exist", rootfs.display()))?;
    let has_cgroups_path = spec
        .linux()
        .as_ref()
        .map(|l| l.cgroups_path().is_some())
        .unwrap_or(false);
    if has_cgroups_path {
        return Ok(PreparedBundle {
            original: bundle.to_path_buf(),
            spec,
            patched: None,
        });
    }
    config["root"]["path"] = serde_json::Value::String(rootfs.to_string_lossy().into_owned());
    if !config["linux"].is_object() {
        config["linux"] = serde_json::json!({});
    }
    config["linux"]["cgroupsPath"] =
        serde_json::Value::String(format!("{}/{id}", cgroup_parent(root)));
    let spec = serde_json::from_value(config.clone())?;
    Ok(PreparedBundle {
        original: bundle.to_path_buf(),
        spec,
        patched: Some((patched_bundle_dir(root, id), serde_json::to_vec(&config)?)),
    })
}

pub fn remove_patched_bundle(root: &Path, id: &str) {
    let _ = fs::remove_dir_all(patched_bundle_dir(root, id));
}

/// libcontainer replaces stdio that is the host /dev/null with a read-only /dev/null inside
/// the container, so writes fail with EBADF. /dev/zero also discards writes and is not
/// matched by that check, so we hand it over for stdout/stderr in that case.
/// The builder with `stdio_replacements` applied.
pub fn with_stdio(
    mut builder: libcontainer::container::builder::ContainerBuilder,
) -> Result<libcontainer::container::builder::ContainerBuilder> {
    let (stdout, stderr) = stdio_replacements()?;
    if let Some(fd) = stdout {
        builder = builder.with_stdout(fd);
    }
    if let Some(fd) = stderr {
        builder = builder.with_stderr(fd);
    }
    Ok(builder)
}

pub fn stdio_replacements() -> Result<(Option<OwnedFd>, Option<OwnedFd>)> {
    let out = if is_dev_null(1) {
        Some(open_dev_zero()?)
    } else {
        None
    };
    let err = if is_dev_null(2) {
        Some(open_dev_zero()?)
    } else {
        None
    };
    Ok((out, err))
}

fn open_dev_zero() -> Result<OwnedFd> {
    let file = fs::OpenOptions::new().write(true).open("/dev/zero")?;
    Ok(file.into())
}

fn is_dev_null(fd: i32) -> bool {
    let Ok(path) = fs::read_link(format!("/proc/self/fd/{fd}")) else {
        return false;
    };
    let Ok(meta) = fs::metadata(&path) else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    meta.file_type().is_char_device() && meta.rdev() == libc::makedev(1, 3)
}

/// Lower-case status names as used by runc's `state` and `list`.
pub fn status_name(status: ContainerStatus) -> &'static str {
    match status {
        ContainerStatus::Creating => "creating",
        ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Stopped => "stopped",
        ContainerStatus::Paused => "paused",
    }
}

/// Cgroup manager for an existing container, built from the path saved at create time.
pub fn cgroup_manager(container: &Container) -> Result<libcgroups::common::AnyCgroupManager> {
    let config = container
        .spec()
        .context("failed to read container config")?;
    let manager = libcgroups::common::create_cgroup_manager(libcgroups::common::CgroupConfig {
        cgroup_path: config.cgroup_path,
        systemd_cgroup: container.systemd(),
        container_name: container.id().to_string(),
    })?;
    Ok(manager)
}
