//! CVE-2019-5736 protection: the commands that put our process into a container's namespaces
//! must not run from a file a container process could open for writing through
//! `/proc/<pid>/exe`.
//!
//! The cheap way (no copy): re-exec the binary through a private, detached, read-only
//! overlayfs mount whose top lower layer is the binary's own directory. `/proc/<pid>/exe` then
//! names a file on a read-only superblock that has no writable layer, so opening it for
//! writing fails with EROFS — also after we exit, when `ETXTBSY` no longer protects the file.
//! The mount is never attached to any mount namespace; it lives as long as our process runs
//! from it. This costs a few syscalls instead of copying the 8 MB binary into a sealed memfd
//! (11–13 ms per call measured here). Where overlayfs or the new mount API is unavailable we
//! fall back to the memfd copy (pentacle). A binary that is already on a read-only mount (an
//! installation can bind-mount its directory read-only) is protected as it is and is not
//! re-executed at all.

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Re-execs the current process from a protected copy of its binary; call only when
/// `running_sealed()` is false. Returns only on failure, with the reason.
pub fn reexec_sealed(scratch: &Path) -> anyhow::Error {
    match overlay_exe(scratch) {
        Ok(exe) => {
            let err = exec_fd(&exe);
            // execveat failed: the overlay was created but cannot be executed from
            // (e.g. a noexec policy); the memfd copy still works.
            report_fallback(&err);
        }
        Err(err) => report_fallback(&err),
    }
    match pentacle::ensure_sealed() {
        Err(err) => anyhow::Error::new(err).context("re-exec from a sealed memfd"),
        Ok(()) => anyhow::anyhow!("pentacle did not re-exec although the binary is not sealed"),
    }
}

/// Why the cheap protection was not used, when SKIFF_RUNTIME_DEBUG_SEAL is set.
fn report_fallback(err: &anyhow::Error) {
    if std::env::var_os("SKIFF_RUNTIME_DEBUG_SEAL").is_some() {
        eprintln!("skiff-runtime: overlayfs exe protection unavailable ({err:#}); copying into a sealed memfd");
    }
}

/// True when our executable cannot be written through `/proc/self/exe`: it lives on a
/// read-only mount (our own detached overlay after the re-exec, or an installation that keeps
/// the binary on a read-only bind mount, where no re-exec is needed at all), or it is
/// pentacle's sealed memfd. The read-only flag is the mount's: a container cannot remount a
/// mount of the host's namespace, and `/proc/<pid>/exe` leads only through this one.
pub fn running_sealed() -> bool {
    let exe = Path::new("/proc/self/exe");
    let on_ro_mount = rustix::fs::statvfs(exe)
        .is_ok_and(|vfs| vfs.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY));
    on_ro_mount || pentacle::is_sealed()
}

/// Opens our binary through a fresh read-only overlayfs (binary directory over an empty
/// directory: overlayfs needs two lower layers to run without an upper one).
fn overlay_exe(scratch: &Path) -> Result<OwnedFd> {
    let binary = std::fs::read_link("/proc/self/exe").context("readlink /proc/self/exe")?;
    let dir = binary.parent().context("binary has no directory")?;
    let name = binary.file_name().context("binary has no file name")?;
    let empty = scratch.join("seal@empty");
    std::fs::create_dir_all(&empty).with_context(|| format!("create {}", empty.display()))?;
    let ctx =
        rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).context("fsopen overlay")?;
    let lowerdir = format!("{}:{}", escape_lowerdir(dir), escape_lowerdir(&empty));
    rustix::mount::fsconfig_set_string(&ctx, "lowerdir", lowerdir.as_str())
        .with_context(|| format!("overlay lowerdir={lowerdir}"))?;
    // xino is irrelevant here and would only log noise when the layers are on different
    // filesystems.
    let _ = rustix::mount::fsconfig_set_string(&ctx, "xino", "off");
    rustix::mount::fsconfig_create(&ctx).context("create overlay superblock")?;
    let mount = rustix::mount::fsmount(
        &ctx,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOSUID,
    )
    .context("fsmount overlay")?;
    let exe = rustix::fs::openat(
        &mount,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open {} on the overlay", name.to_string_lossy()))?;
    Ok(exe)
}

/// overlayfs splits `lowerdir` on ':' and treats '\' as an escape.
fn escape_lowerdir(path: &Path) -> String {
    String::from_utf8_lossy(path.as_os_str().as_bytes())
        .replace('\\', "\\\\")
        .replace(':', "\\:")
}

/// execveat(fd, "", argv, environ, AT_EMPTY_PATH); returns only on failure.
fn exec_fd(exe: &OwnedFd) -> anyhow::Error {
    let args: Vec<CString> = std::env::args_os()
        .filter_map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    let err = nix::unistd::execveat(
        Some(exe.as_raw_fd()),
        c"",
        &args,
        &env,
        nix::fcntl::AtFlags::AT_EMPTY_PATH,
    )
    .unwrap_err();
    anyhow::anyhow!("execveat from the overlay: {err}")
}

#[cfg(test)]
mod tests {
    use super::escape_lowerdir;
    use std::path::Path;

    #[test]
    fn lowerdir_separators_are_escaped() {
        assert_eq!(escape_lowerdir(Path::new("/a:b\\c")), "/a\\:b\\\\c");
    }
}
