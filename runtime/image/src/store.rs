//! Content-addressed image store.
//!
//! ```text
//! <root>/blobs/sha256/<hex>      manifests, configs, compressed layers (verified on entry)
//! <root>/layers/<hex of diff id> each layer unpacked once, shared by every image using it
//! <root>/index.json              image name -> manifest digest
//! <root>/containers/<id>/        overlay upper/work/rootfs and the layers it pins
//! <root>/tmp/                    staging; everything is built here and renamed into place
//! <root>/lock                    flock held while committing, removing and collecting
//! ```
//! An image appears in index.json only after all its blobs and layers are in place, so a
//! failed pull or import leaves nothing behind: its staging dir is dropped.

use crate::error::{json_err, ImageError, IoContext, Result};
use crate::manifest::{self, ImageConfig, Manifest};
use crate::unpack::{self, Mode};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const DEFAULT_ROOT: &str = "/var/lib/skiff/images";

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct IndexFile {
    images: BTreeMap<String, String>,
}

/// Everything known about a stored image.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageInfo {
    pub name: String,
    pub manifest_digest: String,
    pub manifest: Manifest,
    pub config: ImageConfig,
    /// Compressed size of all layers.
    pub size: u64,
}

pub struct Store {
    root: PathBuf,
    /// In-flight work keyed by digest: concurrent pulls of one image wait for the first one
    /// and then find everything in place instead of downloading twice.
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

pub fn hex_of(digest: &str) -> Result<&str> {
    crate::reference::validate_digest(digest).map_err(|reason| ImageError::BadContent {
        what: "digest".into(),
        reason,
    })?;
    Ok(&digest["sha256:".len()..])
}

impl Store {
    pub fn open(root: impl Into<PathBuf>) -> Result<Arc<Store>> {
        let root = root.into();
        for sub in ["blobs/sha256", "layers", "containers", "tmp"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).ctx("create", &dir)?;
        }
        Ok(Arc::new(Store {
            root,
            inflight: Mutex::new(HashMap::new()),
        }))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    pub fn layer_path(&self, diff_id: &str) -> Result<PathBuf> {
        Ok(self.root.join("layers").join(hex_of(diff_id)?))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.exists()).unwrap_or(false)
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        fs::read(&path).ctx("read", path)
    }

    /// The per-digest lock for in-flight work.
    pub fn inflight_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.to_string()).or_default().clone()
    }

    /// Cross-process exclusion for index and store mutations.
    fn lock(&self) -> Result<nix::fcntl::Flock<fs::File>> {
        let path = self.root.join("lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx("open", &path)?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
            ImageError::Io {
                op: "flock",
                path,
                source: io::Error::from(e),
            }
        })
    }

    fn read_index(&self) -> Result<IndexFile> {
        let path = self.root.join("index.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(json_err("store index.json")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(IndexFile::default()),
            Err(e) => Err(e).ctx("read", path),
        }
    }

    fn write_index(&self, index: &IndexFile) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(index).map_err(json_err("store index.json"))?;
        write_atomic(&self.root.join("index.json"), &bytes)
    }

    /// Finds an image by stored name, normalised reference or manifest digest.
    pub fn resolve_name(&self, name: &str) -> Result<(String, String)> {
        let index = self.read_index()?;
        if let Some(digest) = index.images.get(name) {
            return Ok((name.to_string(), digest.clone()));
        }
        if let Ok(reference) = crate::reference::Reference::parse(name) {
            let normal = reference.to_string();
            if let Some(digest) = index.images.get(&normal) {
                return Ok((normal, digest.clone()));
            }
        }
        for (stored, digest) in &index.images {
            if digest == name {
                return Ok((stored.clone(), digest.clone()));
            }
        }
        Err(ImageError::NotFound(name.to_string()))
    }

    pub fn image(&self, name: &str) -> Result<ImageInfo> {
        let (name, digest) = self.resolve_name(name)?;
        self.image_by_digest(&name, &digest)
    }

    fn image_by_digest(&self, name: &str, digest: &str) -> Result<ImageInfo> {
        let manifest: Manifest = serde_json::from_slice(&self.read_blob(digest)?)
            .map_err(json_err(format!("manifest {digest}")))?;
        let config: ImageConfig = serde_json::from_slice(&self.read_blob(&manifest.config.digest)?)
            .map_err(json_err(format!("config {}", manifest.config.digest)))?;
        let size = manifest.layers.iter().map(|l| l.size).sum();
        Ok(ImageInfo {
            name: name.to_string(),
            manifest_digest: digest.to_string(),
            manifest,
            config,
            size,
        })
    }

    pub fn list(&self) -> Result<Vec<ImageInfo>> {
        let index = self.read_index()?;
        let mut out = Vec::new();
        for (name, digest) in &index.images {
            out.push(self.image_by_digest(name, digest)?);
        }
        Ok(out)
    }

    /// Whether `name` already points at a complete image with this manifest digest.
    pub fn is_complete(&self, manifest_digest: &str) -> bool {
        let Ok(info) = self.image_by_digest("", manifest_digest) else {
            return false;
        };
        info.manifest
            .layers
            .iter()
            .all(|l| self.has_blob(&l.digest))
            && info
                .config
                .rootfs
                .diff_ids
                .iter()
                .all(|d| self.layer_path(d).map(|p| p.exists()).unwrap_or(false))
    }

    /// Points `name` at an already complete image (second pull of the same content).
    pub fn tag(&self, name: &str, manifest_digest: &str) -> Result<()> {
        let _lock = self.lock()?;
        if !self.is_complete(manifest_digest) {
            return Err(ImageError::NotFound(manifest_digest.to_string()));
        }
        let mut index = self.read_index()?;
        index
            .images
            .insert(name.to_string(), manifest_digest.to_string());
        self.write_index(&index)
    }

    pub fn staging(self: &Arc<Self>) -> Result<Staging> {
        let dir = tempfile::Builder::new()
            .prefix("stage-")
            .tempdir_in(self.root.join("tmp"))
            .ctx("create staging dir in", self.root.join("tmp"))?;
        for sub in ["blobs", "layers"] {
            fs::create_dir(dir.path().join(sub)).ctx("create", dir.path().join(sub))?;
        }
        Ok(Staging {
            store: self.clone(),
            dir,
            blobs: HashSet::new(),
        })
    }

    /// Removes a name from the index. Content stays until `gc`.
    pub fn remove(&self, name: &str) -> Result<String> {
        let _lock = self.lock()?;
        let (stored, _) = self.resolve_name(name)?;
        let mut index = self.read_index()?;
        index.images.remove(&stored);
        self.write_index(&index)?;
        Ok(stored)
    }

    /// Deletes blobs and unpacked layers no image name and no container rootfs refers to.
    /// Returns how many entries were removed.
    pub fn gc(&self) -> Result<usize> {
        let _lock = self.lock()?;
        let index = self.read_index()?;
        let mut keep_blobs = HashSet::new();
        let mut keep_layers = HashSet::new();
        for digest in index.images.values() {
            keep_blobs.insert(digest.clone());
            let Ok(info) = self.image_by_digest("", digest) else {
                continue;
            };
            keep_blobs.insert(info.manifest.config.digest.clone());
            for layer in &info.manifest.layers {
                keep_blobs.insert(layer.digest.clone());
            }
            for diff_id in &info.config.rootfs.diff_ids {
                keep_layers.insert(diff_id.clone());
            }
        }
        // Mounted rootfs keep their lowerdirs even after the image name is removed.
        let containers = self.root.join("containers");
        for entry in fs::read_dir(&containers).ctx("readdir", &containers)? {
            let entry = entry.ctx("readdir", &containers)?;
            if let Ok(text) = fs::read_to_string(entry.path().join("layers")) {
                keep_layers.extend(text.lines().map(str::to_string));
            }
        }
        let mut removed = 0;
        let blobs = self.root.join("blobs/sha256");
        for entry in fs::read_dir(&blobs).ctx("readdir", &blobs)? {
            let entry = entry.ctx("readdir", &blobs)?;
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            if !keep_blobs.contains(&digest) {
                fs::remove_file(entry.path()).ctx("remove", entry.path())?;
                removed += 1;
            }
        }
        let layers = self.root.join("layers");
        for entry in fs::read_dir(&layers).ctx("readdir", &layers)? {
            let entry = entry.ctx("readdir", &layers)?;
            let diff_id = format!("sha256:{}", entry.file_name().to_string_lossy());
            if !keep_layers.contains(&diff_id) {
                fs::remove_dir_all(entry.path()).ctx("remove", entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A pull or import in progress: verified blobs and unpacked layers collect in a private temp
/// dir and are renamed into the store by `commit`; dropping it removes everything.
pub struct Staging {
    store: Arc<Store>,
    dir: tempfile::TempDir,
    blobs: HashSet<String>,
}

impl Staging {
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blobs.contains(digest) || self.store.has_blob(digest)
    }

    fn staged_blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.dir.path().join("blobs").join(hex_of(digest)?))
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        if self.blobs.contains(digest) {
            self.staged_blob_path(digest)
        } else {
            self.store.blob_path(digest)
        }
    }

    /// A scratch path for a download, inside the staging dir.
    pub fn scratch_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn add_blob_bytes(&mut self, digest: &str, bytes: &[u8], what: &str) -> Result<()> {
        verify(digest, &manifest::sha256_digest(bytes), what)?;
        let path = self.staged_blob_path(digest)?;
        fs::write(&path, bytes).ctx("write", &path)?;
        self.blobs.insert(digest.to_string());
        Ok(())
    }

    /// Hashes `file` and moves it into the staged blobs if it matches `digest`.
    pub fn add_blob_file(&mut self, digest: &str, file: &Path, what: &str) -> Result<()> {
        let actual = sha256_file(file)?;
        verify(digest, &actual, what)?;
        let path = self.staged_blob_path(digest)?;
        fs::rename(file, &path).ctx("rename", file)?;
        self.blobs.insert(digest.to_string());
        Ok(())
    }

    /// Copies a blob from an arbitrary reader (archives), verifying on the way.
    pub fn add_blob_reader(
        &mut self,
        digest: &str,
        reader: &mut dyn Read,
        what: &str,
    ) -> Result<()> {
        let tmp = self.scratch_path("incoming");
        let mut out = fs::File::create(&tmp).ctx("create", &tmp)?;
        io::copy(reader, &mut out).ctx("copy", &tmp)?;
        out.sync_all().ctx("sync", &tmp)?;
        self.add_blob_file(digest, &tmp, what)
    }

    /// Unpacks missing layers, checks them against the config's diff ids, moves everything
    /// into the store and records `name`. Blocking; call from spawn_blocking in async code.
    pub fn commit(self, name: &str, manifest_digest: &str) -> Result<ImageInfo> {
        let manifest_bytes = fs::read(self.blob_path(manifest_digest)?)
            .ctx("read", self.blob_path(manifest_digest)?)?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .map_err(json_err(format!("manifest {manifest_digest}")))?;
        if let Some(mt) = &manifest.media_type {
            if !manifest::MANIFEST_TYPES.contains(&mt.as_str()) {
                return Err(ImageError::UnsupportedMediaType(mt.clone()));
            }
        }
        let config_mt = manifest.config.media_type.as_str();
        if !manifest::CONFIG_TYPES.contains(&config_mt) {
            return Err(ImageError::UnsupportedMediaType(config_mt.to_string()));
        }
        let config_path = self.blob_path(&manifest.config.digest)?;
        let config: ImageConfig =
            serde_json::from_slice(&fs::read(&config_path).ctx("read", &config_path)?)
                .map_err(json_err(format!("config {}", manifest.config.digest)))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::BadContent {
                what: format!("image {name}"),
                reason: format!(
                    "manifest has {} layers but config lists {} diff ids",
                    manifest.layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            });
        }
        let mut staged_layers = Vec::new();
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            let compression = unpack::compression_for_media_type(&layer.media_type)?;
            if !self.has_blob(&layer.digest) {
                return Err(ImageError::BadContent {
                    what: format!("image {name}"),
                    reason: format!("layer blob {} is missing", layer.digest),
                });
            }
            if self.store.layer_path(diff_id)?.exists() || staged_layers.contains(diff_id) {
                continue;
            }
            let dest = self.dir.path().join("layers").join(hex_of(diff_id)?);
            fs::create_dir(&dest).ctx("create", &dest)?;
            fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .ctx("chmod", &dest)?;
            let actual = unpack::unpack_layer(
                &self.blob_path(&layer.digest)?,
                compression,
                &dest,
                Mode::Layer,
                &layer.digest,
            )?;
            verify(
                diff_id,
                &actual,
                &format!("uncompressed layer {}", layer.digest),
            )?;
            staged_layers.push(diff_id.clone());
        }

        let _lock = self.store.lock()?;
        for digest in &self.blobs {
            let dest = self.store.blob_path(digest)?;
            if !dest.exists() {
                let src = self.staged_blob_path(digest)?;
                fs::rename(&src, &dest).ctx("rename", &src)?;
            }
        }
        for diff_id in &staged_layers {
            let dest = self.store.layer_path(diff_id)?;
            if !dest.exists() {
                let src = self.dir.path().join("layers").join(hex_of(diff_id)?);
                fs::rename(&src, &dest).ctx("rename", &src)?;
            }
        }
        // A gc between download and commit could have removed content we relied on.
        if !self.store.is_complete(manifest_digest) {
            return Err(ImageError::BadContent {
                what: format!("image {name}"),
                reason: "content was garbage-collected during the pull; retry".into(),
            });
        }
        let mut index = self.store.read_index()?;
        index
            .images
            .insert(name.to_string(), manifest_digest.to_string());
        self.store.write_index(&index)?;
        drop(_lock);
        self.store.image_by_digest(name, manifest_digest)
    }
}

fn verify(expected: &str, actual: &str, what: &str) -> Result<()> {
    if expected != actual {
        return Err(ImageError::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).ctx("open", path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).ctx("read", path)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

/// Write to a sibling temp file and rename, so readers never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).ctx("create temp in", dir)?;
    tmp.write_all(bytes)
        .ctx("write", tmp.path().to_path_buf())?;
    tmp.as_file()
        .sync_all()
        .ctx("sync", tmp.path().to_path_buf())?;
    tmp.persist(path).map_err(|e| ImageError::Io {
        op: "rename",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}
