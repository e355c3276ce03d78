//! Layer unpacking. Two modes:
//! - `Mode::Layer` writes one layer into its own directory for use as an overlayfs lowerdir, so
//!   whiteouts become overlay whiteouts (0/0 char devices) and opaque markers become the
//!   `trusted.overlay.opaque=y` xattr.
//! - `Mode::Apply` applies a layer on top of a flattened rootfs (bundles), so whiteouts delete.
//!
//! Paths are confined to the destination: `..` is rejected and no parent component may be a
//! symlink, because a hostile layer could otherwise write through a link to the host.

use crate::error::{ImageError, IoContext, Result};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Layer,
    Apply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Maps OCI and Docker layer media types to a decompressor; anything else is refused rather
/// than guessed, because foreign layers and encrypted layers must not be unpacked as tar.
pub fn compression_for_media_type(media_type: &str) -> Result<Compression> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Ok(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Ok(Compression::Zstd),
        other => Err(ImageError::UnsupportedMediaType(other.to_string())),
    }
}

/// Looks at magic bytes; used for docker-archive layers, which carry no media type.
pub fn sniff_compression(path: &Path) -> Result<Compression> {
    let mut magic = [0u8; 4];
    let mut file = fs::File::open(path).ctx("open", path)?;
    let n = file.read(&mut magic).ctx("read", path)?;
    if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        Ok(Compression::Gzip)
    } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Ok(Compression::Zstd)
    } else {
        Ok(Compression::None)
    }
}

/// Opens a decompressing reader over a stored blob.
pub fn open_decompressed(path: &Path, compression: Compression) -> Result<Box<dyn Read>> {
    let file = io::BufReader::new(fs::File::open(path).ctx("open", path)?);
    Ok(match compression {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(file).ctx("zstd", path)?),
    })
}

/// Computes the sha256 of everything read through it: the diff id of a layer is the digest of
/// the uncompressed tar, which we only see while unpacking.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
        }
    }

    pub fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks a layer blob into `dest` and returns its diff id (sha256 of the uncompressed tar).
pub fn unpack_layer(
    blob: &Path,
    compression: Compression,
    dest: &Path,
    mode: Mode,
    blob_digest: &str,
) -> Result<String> {
    let bad = |reason: String| ImageError::BadLayer {
        digest: blob_digest.to_string(),
        reason,
    };
    let reader = HashingReader::new(open_decompressed(blob, compression)?);
    let mut archive = tar::Archive::new(reader);
    let mut unpacker = Unpacker {
        dest: dest.to_path_buf(),
        mode,
        created: HashSet::new(),
        is_root: nix::unistd::geteuid().is_root(),
    };
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("reading tar: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("reading tar: {e}")))?;
        unpacker.entry(&mut entry).map_err(|e| match e {
            ImageError::BadLayer { .. } => e,
            other => bad(other.to_string()),
        })?;
    }
    // Tar readers stop at the end-of-archive marker; the diff id covers the padding after it.
    let mut reader = archive.into_inner();
    io::copy(&mut reader, &mut io::sink()).map_err(|e| bad(format!("reading tar: {e}")))?;
    Ok(reader.finish())
}

struct Unpacker {
    dest: PathBuf,
    mode: Mode,
    /// Paths written by this layer; in Apply mode an opaque marker must only remove what lower
    /// layers put there, not what this layer already wrote.
    created: HashSet<PathBuf>,
    is_root: bool,
}

fn layer_err(reason: String) -> ImageError {
    ImageError::BadLayer {
        digest: String::new(),
        reason,
    }
}

/// Turns a tar path into a relative path with only normal components.
fn sanitize(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(layer_err(format!("path {path:?} escapes the layer root")))
            }
        }
    }
    Ok(out)
}

fn lstat(path: &Path) -> Option<fs::Metadata> {
    fs::symlink_metadata(path).ok()
}

fn remove_any(path: &Path) -> Result<()> {
    match lstat(path) {
        Some(meta) if meta.is_dir() => fs::remove_dir_all(path).ctx("remove", path),
        Some(_) => fs::remove_file(path).ctx("remove", path),
        None => Ok(()),
    }
}

impl Unpacker {
    /// Creates missing parent directories and refuses symlinked parents.
    fn prepare_parent(&self, rel: &Path) -> Result<PathBuf> {
        let mut current = self.dest.clone();
        if let Some(parent) = rel.parent() {
            for part in parent.components() {
                current.push(part);
                match lstat(&current) {
                    Some(meta) if meta.file_type().is_symlink() => {
                        return Err(layer_err(format!(
                            "{rel:?} goes through symlink {current:?}"
                        )))
                    }
                    Some(meta) if meta.is_dir() => {}
                    Some(_) => {
                        return Err(layer_err(format!(
                            "{rel:?}: parent {current:?} is not a directory"
                        )))
                    }
                    None => fs::create_dir(&current).ctx("mkdir", &current)?,
                }
            }
        }
        Ok(self.dest.join(rel))
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> Result<()> {
        let raw_path = entry
            .path()
            .map_err(|e| layer_err(format!("bad path: {e}")))?
            .into_owned();
        let rel = sanitize(&raw_path)?;
        let Some(name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            // The root directory itself; keep the destination's own metadata.
            return Ok(());
        };
        if name == OPAQUE_MARKER {
            let dir_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
            let dir = self.prepare_parent(&rel)?;
            let dir = dir.parent().unwrap_or(&self.dest).to_path_buf();
            match self.mode {
                Mode::Layer => set_xattr(&dir, "trusted.overlay.opaque", b"y")?,
                Mode::Apply => {
                    for child in fs::read_dir(&dir).ctx("readdir", &dir)? {
                        let child = child.ctx("readdir", &dir)?;
                        let child_rel = dir_rel.join(child.file_name());
                        if !self.created.contains(&child_rel) {
                            remove_any(&child.path())?;
                        }
                    }
                }
            }
            return Ok(());
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let target_rel = rel.with_file_name(hidden);
            let target = self.prepare_parent(&target_rel)?;
            remove_any(&target)?;
            if self.mode == Mode::Layer {
                // Overlayfs whiteout: a 0/0 character device.
                nix::sys::stat::mknod(
                    &target,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::empty(),
                    0,
                )
                .map_err(|e| layer_err(format!("whiteout {target:?}: {e} (needs root)")))?;
            }
            return Ok(());
        }

        let target = self.prepare_parent(&rel)?;
        let header = entry.header().clone();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let kind = header.entry_type();
        match kind {
            tar::EntryType::Directory => {
                if !lstat(&target).map(|m| m.is_dir()).unwrap_or(false) {
                    remove_any(&target)?;
                    fs::create_dir(&target).ctx("mkdir", &target)?;
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_any(&target)?;
                // create_new uses O_EXCL, which never follows a symlink at the final component.
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&target)
                    .ctx("create", &target)?;
                io::copy(entry, &mut file)
                    .map_err(|e| layer_err(format!("reading {rel:?}: {e}")))?;
            }
            tar::EntryType::Symlink => {
                let link = header
                    .link_name()
                    .map_err(|e| layer_err(format!("bad link name: {e}")))?
                    .ok_or_else(|| layer_err(format!("symlink {rel:?} without target")))?;
                remove_any(&target)?;
                std::os::unix::fs::symlink(&link, &target).ctx("symlink", &target)?;
            }
            tar::EntryType::Link => {
                let link = header
                    .link_name()
                    .map_err(|e| layer_err(format!("bad link name: {e}")))?
                    .ok_or_else(|| layer_err(format!("hard link {rel:?} without target")))?;
                let source_rel = sanitize(&link)?;
                let source = self.prepare_parent(&source_rel)?;
                if lstat(&source).is_none() {
                    return Err(layer_err(format!(
                        "hard link {rel:?} points to missing {source_rel:?}"
                    )));
                }
                remove_any(&target)?;
                fs::hard_link(&source, &target).ctx("link", &target)?;
                // A hard link shares the inode; its metadata was set with the source.
                self.created.insert(rel);
                return Ok(());
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let sflag = match kind {
                    tar::EntryType::Char => nix::sys::stat::SFlag::S_IFCHR,
                    tar::EntryType::Block => nix::sys::stat::SFlag::S_IFBLK,
                    _ => nix::sys::stat::SFlag::S_IFIFO,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                remove_any(&target)?;
                let result = nix::sys::stat::mknod(
                    &target,
                    sflag,
                    nix::sys::stat::Mode::from_bits_truncate(mode),
                    nix::sys::stat::makedev(major as u64, minor as u64),
                );
                if let Err(e) = result {
                    if !self.is_root && kind != tar::EntryType::Fifo {
                        // Unprivileged unpacking cannot create devices; they are rarely needed
                        // inside images because the runtime mounts /dev.
                        tracing::warn!("skipping device {rel:?}: {e}");
                        return Ok(());
                    }
                    return Err(layer_err(format!("mknod {rel:?}: {e}")));
                }
            }
            // Global pax headers and similar carry no file.
            _ => return Ok(()),
        }

        let is_symlink = kind == tar::EntryType::Symlink;
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        if self.is_root {
            std::os::unix::fs::lchown(&target, Some(uid as u32), Some(gid as u32))
                .ctx("chown", &target)?;
        }
        // After chown: chown clears setuid/setgid bits.
        if !is_symlink {
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)).ctx("chmod", &target)?;
        }
        if let Ok(Some(extensions)) = entry.pax_extensions() {
            for ext in extensions.flatten() {
                if let Some(key) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    if let Err(e) = set_xattr(&target, key, ext.value_bytes()) {
                        // security.* and trusted.* may be refused without privileges.
                        tracing::warn!("xattr {key} on {rel:?}: {e}");
                    }
                }
            }
        }
        if let Ok(mtime) = header.mtime() {
            let ts = nix::sys::time::TimeSpec::new(mtime as i64, 0);
            let _ = nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                &target,
                &ts,
                &ts,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            );
        }
        self.created.insert(rel);
        Ok(())
    }
}

pub fn set_xattr(path: &Path, key: &str, value: &[u8]) -> Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| layer_err(format!("{path:?} contains NUL")))?;
    let c_key = CString::new(key).map_err(|_| layer_err(format!("xattr {key:?} contains NUL")))?;
    // SAFETY: both strings are NUL-terminated and live across the call; value is a valid slice.
    let rc = unsafe {
        libc::lsetxattr(
            c_path.as_ptr(),
            c_key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(ImageError::Io {
            op: "setxattr",
            path: path.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn rejects_parent_dir_escape() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = tar_with(&[("ok", b"x")]);
        // tar::Builder refuses "..", so patch the name in the header bytes directly.
        data[..2].copy_from_slice(b"..");
        data[2..5].copy_from_slice(b"/ok");
        let mut header = tar::Header::from_byte_slice(&data[..512]).clone();
        header.set_cksum();
        data[..512].copy_from_slice(header.as_bytes());
        let blob = dir.path().join("blob");
        fs::write(&blob, &data).unwrap();
        let dest = dir.path().join("dest");
        fs::create_dir(&dest).unwrap();
        let err = unpack_layer(&blob, Compression::None, &dest, Mode::Apply, "d").unwrap_err();
        assert!(err.to_string().contains("escapes"), "{err}");
    }

    #[test]
    fn diff_id_is_sha_of_uncompressed_tar() {
        let dir = tempfile::tempdir().unwrap();
        let data = tar_with(&[("a/b", b"hello")]);
        let blob = dir.path().join("blob");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &data).unwrap();
        fs::write(&blob, gz.finish().unwrap()).unwrap();
        let dest = dir.path().join("dest");
        fs::create_dir(&dest).unwrap();
        let diff_id = unpack_layer(&blob, Compression::Gzip, &dest, Mode::Apply, "d").unwrap();
        assert_eq!(
            diff_id,
            format!("sha256:{}", hex::encode(Sha256::digest(&data)))
        );
        assert_eq!(fs::read(dest.join("a/b")).unwrap(), b"hello");
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let data = tar_with(&[("a", &[7u8; 100_000])]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &data).unwrap();
        let gz = gz.finish().unwrap();
        let blob = dir.path().join("blob");
        fs::write(&blob, &gz[..gz.len() / 2]).unwrap();
        let dest = dir.path().join("dest");
        fs::create_dir(&dest).unwrap();
        assert!(unpack_layer(&blob, Compression::Gzip, &dest, Mode::Apply, "d").is_err());
    }

    #[test]
    fn media_types() {
        assert_eq!(
            compression_for_media_type("application/vnd.oci.image.layer.v1.tar+zstd").unwrap(),
            Compression::Zstd
        );
        assert!(compression_for_media_type("application/x-foo").is_err());
    }
}
