//! OCI runtime bundles: `DIR/rootfs` as a flattened copy of the image layers (runnable by runc
//! without any mount) and `DIR/config.json` built from the image config on top of the same
//! defaults `runc spec` uses (oci-spec's `Spec::default` plus runc's deny-all device rule).

use crate::error::{ImageError, IoContext, Result};
use crate::store::{ImageInfo, Store};
use crate::unpack::{self, Mode};
use oci_spec::runtime::{LinuxDeviceCgroupBuilder, Spec, User};
use std::fs;
use std::path::Path;

pub fn create_bundle(store: &Store, image: &str, dir: &Path) -> Result<ImageInfo> {
    let info = store.image(image)?;
    let rootfs = dir.join("rootfs");
    if rootfs.exists() {
        return Err(ImageError::BadContent {
            what: format!("bundle dir {}", dir.display()),
            reason: "rootfs already exists; use an empty directory".into(),
        });
    }
    fs::create_dir_all(&rootfs).ctx("create", &rootfs)?;
    fs::set_permissions(&rootfs, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .ctx("chmod", &rootfs)?;
    for (layer, diff_id) in info
        .manifest
        .layers
        .iter()
        .zip(&info.config.rootfs.diff_ids)
    {
        let compression = unpack::compression_for_media_type(&layer.media_type)?;
        let actual = unpack::unpack_layer(
            &store.blob_path(&layer.digest)?,
            compression,
            &rootfs,
            Mode::Apply,
            &layer.digest,
        )?;
        if &actual != diff_id {
            return Err(ImageError::DigestMismatch {
                what: format!("uncompressed layer {}", layer.digest),
                expected: diff_id.clone(),
                actual,
            });
        }
    }
    let spec = runtime_spec(&info, &rootfs)?;
    let bytes = serde_json::to_vec_pretty(&spec).map_err(crate::error::json_err("config.json"))?;
    let path = dir.join("config.json");
    fs::write(&path, bytes).ctx("write", &path)?;
    Ok(info)
}

/// Builds config.json: Entrypoint+Cmd → args, Env, WorkingDir, User → uid/gid.
pub fn runtime_spec(info: &ImageInfo, rootfs: &Path) -> Result<Spec> {
    let mut spec = Spec::default();
    spec.set_hostname(Some("skiff".to_string()));
    let image = info.config.config.clone().unwrap_or_default();
    let mut args = image.entrypoint.clone().unwrap_or_default();
    args.extend(image.cmd.clone().unwrap_or_default());
    if args.is_empty() {
        return Err(ImageError::BadContent {
            what: format!("image {}", info.name),
            reason: "no Entrypoint or Cmd; nothing to run".into(),
        });
    }
    let mut env = image.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        );
    }
    let (uid, gid) = resolve_user(rootfs, image.user.as_deref().unwrap_or(""))?;
    let mut user = User::default();
    user.set_uid(uid);
    user.set_gid(gid);
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(args));
    process.set_env(Some(env));
    let cwd = image
        .working_dir
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    process.set_cwd(cwd.into());
    process.set_user(user);
    spec.set_process(Some(process));
    // runc's default: deny every device; the runtime allows the standard ones on top.
    // (oci-spec's default leaves the list empty, so the host's devices stay usable.)
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .expect("static device rule");
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut resources = linux.resources().clone().unwrap_or_default();
    resources.set_devices(Some(vec![deny_all]));
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// `user`, `uid`, `user:group`, `uid:gid`; names are looked up in the image's /etc files.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<(u32, u32)> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let group = fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    let bad = |reason: String| ImageError::BadContent {
        what: format!("image User {user:?}"),
        reason,
    };
    let (uid, primary_gid) = match user_part.parse::<u32>() {
        Ok(uid) => {
            let gid = lookup(&passwd, |f| f.get(2) == Some(&user_part), 3).unwrap_or(0);
            (uid, gid)
        }
        Err(_) => {
            let uid = lookup(&passwd, |f| f.first() == Some(&user_part), 2)
                .ok_or_else(|| bad(format!("user {user_part} not in /etc/passwd")))?;
            let gid = lookup(&passwd, |f| f.first() == Some(&user_part), 3).unwrap_or(0);
            (uid, gid)
        }
    };
    let gid = match group_part {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => lookup(&group, |f| f.first() == Some(&g), 2)
                .ok_or_else(|| bad(format!("group {g} not in /etc/group")))?,
        },
    };
    Ok((uid, gid))
}

fn lookup(file: &str, matches: impl Fn(&[&str]) -> bool, field: usize) -> Option<u32> {
    file.lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| matches(fields))
        .and_then(|fields| fields.get(field).and_then(|v| v.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_lookup() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65533::/:/bin/false\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nnogroup:x:65533:\nwheel:x:10:\n",
        )
        .unwrap();
        assert_eq!(resolve_user(dir.path(), "").unwrap(), (0, 0));
        assert_eq!(resolve_user(dir.path(), "nobody").unwrap(), (65534, 65533));
        assert_eq!(
            resolve_user(dir.path(), "nobody:wheel").unwrap(),
            (65534, 10)
        );
        assert_eq!(resolve_user(dir.path(), "1000:1000").unwrap(), (1000, 1000));
        assert!(resolve_user(dir.path(), "ghost").is_err());
    }
}
