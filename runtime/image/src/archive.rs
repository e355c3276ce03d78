//! Offline transfer: OCI image layout tars (`oci-layout`, `index.json`, `blobs/sha256/…`) and
//! docker-archive tars (`docker save`: `manifest.json`, config JSON, uncompressed layer tars).
//! Imports go through the same staging/commit path as pulls, so every blob is verified.

use crate::error::{json_err, ImageError, IoContext, Result};
use crate::manifest::{self, Descriptor, Index, Manifest};
use crate::store::{hex_of, ImageInfo, Store};
use crate::unpack;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

#[derive(serde::Serialize, serde::Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn bad(what: &str, reason: impl Into<String>) -> ImageError {
    ImageError::BadContent {
        what: what.to_string(),
        reason: reason.into(),
    }
}

/// Imports an OCI layout or docker-archive tar (detected by content). `name` overrides the
/// name recorded in the archive and is required when the archive has none.
pub fn import(store: &Arc<Store>, archive: &Path, name: Option<&str>) -> Result<Vec<ImageInfo>> {
    let extract = tempfile::Builder::new()
        .prefix("import-")
        .tempdir_in(store.root().join("tmp"))
        .ctx("create temp dir in", store.root().join("tmp"))?;
    let file = fs::File::open(archive).ctx("open", archive)?;
    // tar::Archive::unpack refuses paths escaping the destination.
    tar::Archive::new(file)
        .unpack(extract.path())
        .map_err(|e| {
            bad(
                &archive.display().to_string(),
                format!("not a readable tar: {e}"),
            )
        })?;
    let root = extract.path();
    if root.join("oci-layout").exists() {
        import_oci(store, root, name)
    } else if root.join("manifest.json").exists() {
        import_docker(store, root, name)
    } else {
        Err(bad(
            &archive.display().to_string(),
            "neither an OCI layout (oci-layout) nor a docker archive (manifest.json)",
        ))
    }
}

fn layout_blob(root: &Path, digest: &str) -> Result<std::path::PathBuf> {
    Ok(root.join("blobs/sha256").join(hex_of(digest)?))
}

fn import_oci(store: &Arc<Store>, root: &Path, name: Option<&str>) -> Result<Vec<ImageInfo>> {
    let index_path = root.join("index.json");
    let index: Index = serde_json::from_slice(&fs::read(&index_path).ctx("read", &index_path)?)
        .map_err(json_err("index.json"))?;
    let mut out = Vec::new();
    for entry in &index.manifests {
        let mut desc = entry.clone();
        if manifest::INDEX_TYPES.contains(&desc.media_type.as_str()) {
            let nested: Index = serde_json::from_slice(
                &fs::read(layout_blob(root, &desc.digest)?)
                    .ctx("read", layout_blob(root, &desc.digest)?)?,
            )
            .map_err(json_err(format!("index {}", desc.digest)))?;
            desc = nested
                .linux_amd64()
                .ok_or_else(|| ImageError::NoMatchingPlatform(desc.digest.clone()))?
                .clone();
        }
        if !manifest::MANIFEST_TYPES.contains(&desc.media_type.as_str()) {
            return Err(ImageError::UnsupportedMediaType(desc.media_type.clone()));
        }
        let annotations = entry.annotations.clone().unwrap_or_default();
        let image_name = match (
            name,
            annotations.get(CONTAINERD_NAME),
            annotations.get(REF_NAME),
        ) {
            (Some(n), _, _) => n.to_string(),
            (None, Some(n), _) => n.clone(),
            // A bare tag as ref.name (skopeo oci-archive:x:tag) is not a usable image name.
            (None, None, Some(n)) if n.contains('/') || n.contains('.') => n.clone(),
            _ => {
                return Err(bad(
                    "OCI layout",
                    format!("manifest {} has no image name; pass a name", desc.digest),
                ))
            }
        };
        let image_name = crate::reference::Reference::parse(&image_name)
            .map(|r| r.to_string())
            .unwrap_or(image_name);
        let mut staging = store.staging()?;
        let manifest_path = layout_blob(root, &desc.digest)?;
        let manifest_bytes = fs::read(&manifest_path).ctx("read", &manifest_path)?;
        staging.add_blob_bytes(&desc.digest, &manifest_bytes, "manifest")?;
        let parsed: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(json_err(format!("manifest {}", desc.digest)))?;
        let mut blobs = vec![parsed.config.clone()];
        blobs.extend(parsed.layers.iter().cloned());
        for blob in &blobs {
            if staging.has_blob(&blob.digest) {
                continue;
            }
            let path = layout_blob(root, &blob.digest)?;
            let mut file = fs::File::open(&path).ctx("open", &path)?;
            staging.add_blob_reader(&blob.digest, &mut file, "archive blob")?;
        }
        out.push(staging.commit(&image_name, &desc.digest)?);
    }
    Ok(out)
}

fn import_docker(store: &Arc<Store>, root: &Path, name: Option<&str>) -> Result<Vec<ImageInfo>> {
    let path = root.join("manifest.json");
    let entries: Vec<DockerEntry> = serde_json::from_slice(&fs::read(&path).ctx("read", &path)?)
        .map_err(json_err("docker manifest.json"))?;
    let mut out = Vec::new();
    for entry in &entries {
        let image_name = match (name, entry.repo_tags.as_ref().and_then(|t| t.first())) {
            (Some(n), _) => n.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => {
                return Err(bad("docker archive", "image has no RepoTags; pass a name"))
            }
        };
        let image_name = crate::reference::Reference::parse(&image_name)
            .map(|r| r.to_string())
            .unwrap_or(image_name);
        let mut staging = store.staging()?;
        let config_path = root.join(&entry.config);
        let config_bytes = fs::read(&config_path).ctx("read", &config_path)?;
        let config_digest = manifest::sha256_digest(&config_bytes);
        staging.add_blob_bytes(&config_digest, &config_bytes, "config")?;
        // docker save has no manifest blob; synthesise an OCI manifest over the same content.
        let mut layers = Vec::new();
        for layer in &entry.layers {
            let layer_path = root.join(layer);
            let media_type = match unpack::sniff_compression(&layer_path)? {
                unpack::Compression::None => manifest::OCI_LAYER_TAR,
                unpack::Compression::Gzip => manifest::OCI_LAYER_GZIP,
                unpack::Compression::Zstd => manifest::OCI_LAYER_ZSTD,
            };
            let digest = crate::store::sha256_file(&layer_path)?;
            let size = fs::metadata(&layer_path).ctx("stat", &layer_path)?.len();
            if !staging.has_blob(&digest) {
                let mut file = fs::File::open(&layer_path).ctx("open", &layer_path)?;
                staging.add_blob_reader(&digest, &mut file, "archive layer")?;
            }
            layers.push(Descriptor {
                media_type: media_type.to_string(),
                digest,
                size,
                ..Default::default()
            });
        }
        let synthesized = Manifest {
            schema_version: 2,
            media_type: Some(manifest::OCI_MANIFEST.to_string()),
            config: Descriptor {
                media_type: manifest::OCI_CONFIG.to_string(),
                digest: config_digest,
                size: config_bytes.len() as u64,
                ..Default::default()
            },
            layers,
        };
        let manifest_bytes = serde_json::to_vec(&synthesized).map_err(json_err("manifest"))?;
        let manifest_digest = manifest::sha256_digest(&manifest_bytes);
        staging.add_blob_bytes(&manifest_digest, &manifest_bytes, "manifest")?;
        out.push(staging.commit(&image_name, &manifest_digest)?);
    }
    Ok(out)
}

fn append_bytes(builder: &mut tar::Builder<fs::File>, path: &str, bytes: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, path, bytes)
        .map_err(|e| bad("archive", format!("writing {path}: {e}")))
}

fn append_file(builder: &mut tar::Builder<fs::File>, path: &str, src: &Path) -> Result<()> {
    let mut file = fs::File::open(src).ctx("open", src)?;
    builder
        .append_file(path, &mut file)
        .map_err(|e| bad("archive", format!("writing {path}: {e}")))
}

/// Writes images as one OCI layout tar; each manifest is annotated with its name.
pub fn export_oci(store: &Store, images: &[&str], out: &Path) -> Result<()> {
    let tmp_out = out.with_extension("partial");
    let file = fs::File::create(&tmp_out).ctx("create", &tmp_out)?;
    let mut builder = tar::Builder::new(file);
    append_bytes(
        &mut builder,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let mut manifests = Vec::new();
    let mut written = std::collections::HashSet::new();
    for image in images {
        let info = store.image(image)?;
        let mut annotations = BTreeMap::new();
        annotations.insert(REF_NAME.to_string(), info.name.clone());
        annotations.insert(CONTAINERD_NAME.to_string(), info.name.clone());
        manifests.push(Descriptor {
            media_type: info
                .manifest
                .media_type
                .clone()
                .unwrap_or_else(|| manifest::OCI_MANIFEST.to_string()),
            digest: info.manifest_digest.clone(),
            size: store.read_blob(&info.manifest_digest)?.len() as u64,
            platform: None,
            annotations: Some(annotations),
        });
        let mut digests = vec![
            info.manifest_digest.clone(),
            info.manifest.config.digest.clone(),
        ];
        digests.extend(info.manifest.layers.iter().map(|l| l.digest.clone()));
        for digest in digests {
            if written.insert(digest.clone()) {
                let path = format!("blobs/sha256/{}", hex_of(&digest)?);
                append_file(&mut builder, &path, &store.blob_path(&digest)?)?;
            }
        }
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(manifest::OCI_INDEX.to_string()),
        manifests,
    };
    append_bytes(
        &mut builder,
        "index.json",
        &serde_json::to_vec(&index).map_err(json_err("index.json"))?,
    )?;
    finish(builder, &tmp_out, out)
}

fn finish(builder: tar::Builder<fs::File>, tmp_out: &Path, out: &Path) -> Result<()> {
    let file = builder
        .into_inner()
        .map_err(|e| bad("archive", format!("finishing tar: {e}")))?;
    file.sync_all().ctx("sync", tmp_out)?;
    fs::rename(tmp_out, out).ctx("rename", tmp_out)
}

/// Writes images in `docker save` format: layers are stored uncompressed, named by diff id.
pub fn export_docker(store: &Store, images: &[&str], out: &Path) -> Result<()> {
    let tmp_out = out.with_extension("partial");
    let file = fs::File::create(&tmp_out).ctx("create", &tmp_out)?;
    let mut builder = tar::Builder::new(file);
    let scratch = tempfile::Builder::new()
        .prefix("export-")
        .tempdir_in(store.root().join("tmp"))
        .ctx("create temp dir in", store.root().join("tmp"))?;
    let mut entries = Vec::new();
    let mut written = std::collections::HashSet::new();
    for image in images {
        let info = store.image(image)?;
        let config_hex = hex_of(&info.manifest.config.digest)?.to_string();
        let config_name = format!("{config_hex}.json");
        if written.insert(config_name.clone()) {
            append_file(
                &mut builder,
                &config_name,
                &store.blob_path(&info.manifest.config.digest)?,
            )?;
        }
        let mut layer_names = Vec::new();
        for (layer, diff_id) in info
            .manifest
            .layers
            .iter()
            .zip(&info.config.rootfs.diff_ids)
        {
            let layer_name = format!("{}/layer.tar", hex_of(diff_id)?);
            if written.insert(layer_name.clone()) {
                let compression = unpack::compression_for_media_type(&layer.media_type)?;
                let plain = scratch.path().join(hex_of(diff_id)?);
                let mut reader =
                    unpack::open_decompressed(&store.blob_path(&layer.digest)?, compression)?;
                let mut writer = fs::File::create(&plain).ctx("create", &plain)?;
                std::io::copy(&mut reader, &mut writer).ctx("decompress", &plain)?;
                append_file(&mut builder, &layer_name, &plain)?;
                fs::remove_file(&plain).ctx("remove", &plain)?;
            }
            layer_names.push(layer_name);
        }
        entries.push(DockerEntry {
            config: config_name,
            repo_tags: Some(vec![info.name.clone()]),
            layers: layer_names,
        });
    }
    let bytes = serde_json::to_vec(&entries).map_err(json_err("manifest.json"))?;
    append_bytes(&mut builder, "manifest.json", &bytes)?;
    finish(builder, &tmp_out, out)
}
