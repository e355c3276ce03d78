//! `skiff image …`: a thin clap front end over the library.

use crate::registry::PullOptions;
use crate::store::{Store, DEFAULT_ROOT};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct ImageCommand {
    /// Image store directory.
    #[arg(long, default_value = DEFAULT_ROOT, env = "SKIFF_IMAGE_ROOT")]
    pub root: PathBuf,
    #[command(subcommand)]
    pub action: ImageAction,
}

#[derive(Debug, Subcommand)]
pub enum ImageAction {
    /// Pull an image from a registry (loopback registries use plain HTTP).
    Pull {
        reference: String,
        /// Also use plain HTTP for this registry (host:port); repeatable.
        #[arg(long = "insecure-registry")]
        insecure: Vec<String>,
        /// docker config.json with credentials (default ~/.docker/config.json).
        #[arg(long)]
        docker_config: Option<PathBuf>,
    },
    /// List stored images.
    List,
    /// Print an image's manifest digest, manifest and config as JSON.
    Inspect { image: String },
    /// Remove image names and garbage-collect unreferenced content.
    Rm { images: Vec<String> },
    /// Delete blobs and layers no image refers to.
    Gc,
    /// Import an OCI layout tar or docker-archive tar.
    Import {
        archive: PathBuf,
        /// Name for the imported image (needed if the archive has none).
        #[arg(long)]
        name: Option<String>,
    },
    /// Export images to a tar.
    Export {
        #[arg(short, long)]
        output: PathBuf,
        /// `oci` (OCI image layout) or `docker` (docker save format).
        #[arg(long, default_value = "oci")]
        format: String,
        images: Vec<String>,
    },
    /// Build a one-layer image from a directory (offline images for tests and the demo).
    Build {
        /// Name to store it under, e.g. `skiff.local/web:1`.
        name: String,
        /// Directory whose contents become the image's filesystem.
        #[arg(long = "from")]
        from: PathBuf,
        /// The image's Entrypoint (repeat for each word).
        #[arg(long)]
        entrypoint: Vec<String>,
        /// The image's Cmd (repeat for each word).
        #[arg(long)]
        cmd: Vec<String>,
        /// An environment variable `K=V`; repeatable.
        #[arg(long)]
        env: Vec<String>,
        #[arg(long)]
        workdir: Option<String>,
        #[arg(long)]
        user: Option<String>,
    },
    /// Write an OCI runtime bundle (rootfs + config.json) runnable by runc.
    Bundle { image: String, dir: PathBuf },
}

pub fn main(cmd: ImageCommand) -> anyhow::Result<()> {
    let store = Store::open(&cmd.root)
        .with_context(|| format!("opening image store {}", cmd.root.display()))?;
    match cmd.action {
        ImageAction::Pull {
            reference,
            insecure,
            docker_config,
        } => {
            let opts = PullOptions {
                insecure_registries: insecure,
                docker_config,
                progress: Some(Arc::new(|line: &str| eprintln!("{line}"))),
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting tokio runtime")?;
            let info = runtime.block_on(crate::registry::pull(&store, &reference, &opts))?;
            println!("{} {}", info.name, info.manifest_digest);
        }
        ImageAction::List => {
            println!("{:<60} {:<20} {:>12}", "NAME", "DIGEST", "SIZE");
            for info in store.list()? {
                println!(
                    "{:<60} {:<20} {:>12}",
                    info.name,
                    &info.manifest_digest[..19.min(info.manifest_digest.len())],
                    info.size
                );
            }
        }
        ImageAction::Inspect { image } => {
            let info = store.image(&image)?;
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
        ImageAction::Rm { images } => {
            for image in images {
                let name = store.remove(&image)?;
                println!("removed {name}");
            }
            let removed = store.gc()?;
            eprintln!("gc: removed {removed} blobs/layers");
        }
        ImageAction::Gc => {
            let removed = store.gc()?;
            println!("removed {removed} blobs/layers");
        }
        ImageAction::Import { archive, name } => {
            for info in crate::archive::import(&store, &archive, name.as_deref())? {
                println!("{} {}", info.name, info.manifest_digest);
            }
        }
        ImageAction::Export {
            output,
            format,
            images,
        } => {
            let refs: Vec<&str> = images.iter().map(String::as_str).collect();
            match format.as_str() {
                "oci" => crate::archive::export_oci(&store, &refs, &output)?,
                "docker" => crate::archive::export_docker(&store, &refs, &output)?,
                other => anyhow::bail!("unknown export format {other:?}; use oci or docker"),
            }
        }
        ImageAction::Build {
            name,
            from,
            entrypoint,
            cmd,
            env,
            workdir,
            user,
        } => {
            let config = crate::build::BuildConfig {
                entrypoint,
                cmd,
                env,
                working_dir: workdir,
                user,
            };
            let info = crate::build::build(&store, &name, &from, &config)?;
            println!("{} {}", info.name, info.manifest_digest);
        }
        ImageAction::Bundle { image, dir } => {
            crate::bundle::create_bundle(&store, &image, &dir)?;
            println!("{}", dir.display());
        }
    }
    Ok(())
}
