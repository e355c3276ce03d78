//! Library errors. Every message says what went wrong and, where it helps, what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("image {0:?} not found in the store (pull or import it first)")]
    NotFound(String),

    #[error("digest mismatch for {what}: expected {expected}, got {actual} (the content is corrupt or was tampered with)")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("unsupported media type {0:?} (supported: OCI and Docker schema 2 manifests, indexes and tar/gzip/zstd layers)")]
    UnsupportedMediaType(String),

    #[error("no linux/amd64 image in the index of {0}")]
    NoMatchingPlatform(String),

    #[error("registry error for {reference}: {message}")]
    Registry { reference: String, message: String },

    #[error("invalid layer {digest}: {reason}")]
    BadLayer { digest: String, reason: String },

    #[error("invalid {what}: {reason}")]
    BadContent { what: String, reason: String },

    #[error("image {0:?} is in use by container rootfs {1:?}; unmount it first")]
    InUse(String, String),

    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("json error in {what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("mount error: {0}")]
    Mount(String),
}

pub type Result<T> = std::result::Result<T, ImageError>;

/// Attaches the operation and path to an io::Error; bare "No such file" messages are useless.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::result::Result<T, std::io::Error> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| ImageError::Io {
            op,
            path: path.into(),
            source,
        })
    }
}

pub(crate) fn json_err(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Json { what, source }
}
