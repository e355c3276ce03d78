//! skiff image service: OCI distribution client, content-addressed store, layer unpacking,
//! overlayfs rootfs, offline archives and runtime bundles.

pub mod archive;
pub mod build;
pub mod bundle;
pub mod cli;
pub mod error;
pub mod manifest;
pub mod overlay;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;

pub use error::{ImageError, Result};
pub use reference::Reference;
pub use registry::{pull, PullOptions};
pub use store::{ImageInfo, Store};
