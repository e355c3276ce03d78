//! Per-container overlayfs rootfs: lowerdirs are the shared layer dirs (topmost first), upper
//! and work are private to the container. The container dir records the layers it pins so gc
//! keeps them while mounted.

use crate::error::{ImageError, IoContext, Result};
use crate::store::Store;
use std::fs;
use std::path::PathBuf;

fn container_dir(store: &Store, id: &str) -> Result<PathBuf> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !id.starts_with('.');
    if !valid {
        return Err(ImageError::BadContent {
            what: format!("container id {id:?}"),
            reason: "use letters, digits, '_', '.', '-'".into(),
        });
    }
    Ok(store.root().join("containers").join(id))
}

/// Mounts the image's rootfs for container `id` and returns the mountpoint.
pub fn mount_rootfs(store: &Store, image: &str, id: &str) -> Result<PathBuf> {
    let info = store.image(image)?;
    let dir = container_dir(store, id)?;
    if dir.exists() {
        return Err(ImageError::Mount(format!(
            "rootfs for {id} already exists at {}; unmount it first",
            dir.display()
        )));
    }
    let (upper, work, rootfs) = (dir.join("upper"), dir.join("work"), dir.join("rootfs"));
    for d in [&upper, &work, &rootfs] {
        fs::create_dir_all(d).ctx("create", d)?;
    }
    let diff_ids = &info.config.rootfs.diff_ids;
    fs::write(dir.join("layers"), diff_ids.join("\n")).ctx("write", dir.join("layers"))?;
    let mut lowers = Vec::new();
    for diff_id in diff_ids.iter().rev() {
        lowers.push(store.layer_path(diff_id)?.display().to_string());
    }
    if lowers.is_empty() {
        // overlayfs needs at least one lowerdir; an empty image gets an empty one.
        let empty = dir.join("empty");
        fs::create_dir_all(&empty).ctx("create", &empty)?;
        lowers.push(empty.display().to_string());
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        upper.display(),
        work.display()
    );
    let result = nix::mount::mount(
        Some("overlay"),
        &rootfs,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(options.as_str()),
    );
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&dir);
        return Err(ImageError::Mount(format!(
            "overlay on {}: {e} (needs root and a kernel with overlayfs)",
            rootfs.display()
        )));
    }
    Ok(rootfs)
}

/// Unmounts and deletes container `id`'s rootfs, upper and work dirs.
pub fn unmount_rootfs(store: &Store, id: &str) -> Result<()> {
    let dir = container_dir(store, id)?;
    let rootfs = dir.join("rootfs");
    match nix::mount::umount2(&rootfs, nix::mount::MntFlags::empty()) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(ImageError::Mount(format!(
                "unmount {}: {e}",
                rootfs.display()
            )))
        }
    }
    match fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).ctx("remove", dir),
    }
}
