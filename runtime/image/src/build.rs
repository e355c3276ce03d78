//! `skiff image build`: a one-layer image from a directory, straight into the store.
//!
//! Why: skiff's clusters work offline, so tests and the demo make their own images (busybox
//! from Debian's busybox-static plus a script) instead of pulling them. The layer is an
//! uncompressed tar of the directory in a fixed order with zeroed timestamps, so the same
//! directory always gives the same digests (a rebuilt demo image is not a "new" image), and it
//! goes through the same staging and commit as a pull, so the result is indistinguishable
//! from a pulled image (`skiff image export` turns it into an archive for `skiff load`).

use std::path::Path;
use std::sync::Arc;

use crate::error::{json_err, ImageError, IoContext, Result};
use crate::manifest::{
    sha256_digest, ContainerConfig, Descriptor, ImageConfig, Manifest, RootFs, OCI_CONFIG,
    OCI_LAYER_TAR, OCI_MANIFEST,
};
use crate::reference::Reference;
use crate::store::{ImageInfo, Store};

/// What the image runs, as a Dockerfile would set it.
#[derive(Debug, Clone, Default)]
pub struct BuildConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

/// Builds `name` from the contents of `dir` (owners and modes as on disk, symlinks kept).
/// Blocking; call from spawn_blocking in async code.
pub fn build(
    store: &Arc<Store>,
    name: &str,
    dir: &Path,
    config: &BuildConfig,
) -> Result<ImageInfo> {
    let name = Reference::parse(name)?.to_string();
    if !dir.is_dir() {
        return Err(ImageError::BadContent {
            what: format!("build context {}", dir.display()),
            reason: "not a directory".into(),
        });
    }
    let layer = layer_tar(dir)?;
    let diff_id = sha256_digest(&layer);
    let mut env = config.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    let image_config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        config: Some(ContainerConfig {
            user: config.user.clone(),
            env: Some(env),
            entrypoint: (!config.entrypoint.is_empty()).then(|| config.entrypoint.clone()),
            cmd: (!config.cmd.is_empty()).then(|| config.cmd.clone()),
            working_dir: config.working_dir.clone(),
        }),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![diff_id.clone()],
        },
    };
    let config_bytes = serde_json::to_vec(&image_config).map_err(json_err("image config"))?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        config: Descriptor {
            media_type: OCI_CONFIG.into(),
            digest: sha256_digest(&config_bytes),
            size: config_bytes.len() as u64,
            ..Descriptor::default()
        },
        layers: vec![Descriptor {
            media_type: OCI_LAYER_TAR.into(),
            digest: diff_id,
            size: layer.len() as u64,
            ..Descriptor::default()
        }],
    };
    let manifest_bytes = serde_json::to_vec(&manifest).map_err(json_err("image manifest"))?;
    let manifest_digest = sha256_digest(&manifest_bytes);
    let mut staging = store.staging()?;
    staging.add_blob_bytes(&manifest.layers[0].digest, &layer, "layer")?;
    staging.add_blob_bytes(&manifest.config.digest, &config_bytes, "config")?;
    staging.add_blob_bytes(&manifest_digest, &manifest_bytes, "manifest")?;
    staging.commit(&name, &manifest_digest)
}

/// An uncompressed tar of `dir` with entries in sorted order and zero mtimes.
fn layer_tar(dir: &Path) -> Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Deterministic);
    append_sorted(&mut builder, dir, Path::new(""))?;
    builder.into_inner().ctx("finish tar of", dir)
}

fn append_sorted(builder: &mut tar::Builder<Vec<u8>>, root: &Path, rel: &Path) -> Result<()> {
    let here = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&here)
        .ctx("read", &here)?
        .collect::<std::io::Result<Vec<_>>>()
        .ctx("read", &here)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let rel_path = rel.join(entry.file_name());
        let path = root.join(&rel_path);
        let kind = entry.file_type().ctx("stat", &path)?;
        // Deterministic mode keeps the mode bits but not the owner; a layer made by root from
        // root's files is root-owned either way.
        builder
            .append_path_with_name(&path, &rel_path)
            .ctx("tar", &path)?;
        if kind.is_dir() {
            append_sorted(builder, root, &rel_path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_directory_same_digest_and_runnable_config() {
        let work = tempfile::tempdir().unwrap();
        let ctx = work.path().join("ctx");
        std::fs::create_dir_all(ctx.join("bin")).unwrap();
        std::fs::write(ctx.join("bin/hello"), "#!/bin/sh\necho hi\n").unwrap();
        std::os::unix::fs::symlink("hello", ctx.join("bin/hi")).unwrap();
        let store = Store::open(work.path().join("store")).unwrap();
        let config = BuildConfig {
            cmd: vec!["/bin/hello".into()],
            ..BuildConfig::default()
        };
        let first = build(&store, "local/hello:1", &ctx, &config).unwrap();
        let again = build(&store, "local/hello:2", &ctx, &config).unwrap();
        assert_eq!(first.manifest_digest, again.manifest_digest);
        assert_eq!(
            first.config.config.as_ref().unwrap().cmd,
            Some(vec!["/bin/hello".to_string()])
        );
        let layer = store.layer_path(&first.config.rootfs.diff_ids[0]).unwrap();
        assert_eq!(
            std::fs::read_link(layer.join("bin/hi")).unwrap(),
            Path::new("hello")
        );
        assert_eq!(
            store.image("local/hello:2").unwrap().name,
            "docker.io/local/hello:2"
        );
    }
}
