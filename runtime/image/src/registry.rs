//! Pulling from OCI distribution registries through `oci-client`, which does the protocol,
//! the bearer-token dance (anonymous or with basic credentials) and per-blob digest checks.
//! We add: plain HTTP for loopback / insecure registries, docker config.json credentials,
//! linux/amd64 selection, our own digest checks and the staging/commit into the store.

use crate::error::{ImageError, IoContext, Result};
use crate::manifest::{self, Index, Manifest};
use crate::reference::Reference;
use crate::store::{ImageInfo, Store};
use base64::Engine;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use std::path::PathBuf;
use std::sync::Arc;

pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Clone, Default)]
pub struct PullOptions {
    /// Registries (host[:port]) reached over plain HTTP in addition to loopback ones.
    pub insecure_registries: Vec<String>,
    /// docker config.json with `auths`; default `$DOCKER_CONFIG/config.json` or
    /// `~/.docker/config.json`.
    pub docker_config: Option<PathBuf>,
    pub progress: Option<Progress>,
}

impl PullOptions {
    fn report(&self, line: &str) {
        if let Some(progress) = &self.progress {
            progress(line);
        }
    }
}

const ACCEPTED: &[&str] = &[
    manifest::OCI_MANIFEST,
    manifest::DOCKER_MANIFEST,
    manifest::OCI_INDEX,
    manifest::DOCKER_LIST,
];

fn registry_err(reference: &Reference, e: impl std::fmt::Display) -> ImageError {
    ImageError::Registry {
        reference: reference.to_string(),
        message: e.to_string(),
    }
}

/// Reads credentials for `registry` from a docker config.json. Credential helpers are not
/// supported; only inline `auth` or `username`/`password`.
pub fn docker_config_auth(path: Option<&PathBuf>, registry: &str) -> Result<RegistryAuth> {
    let path = match path {
        Some(p) => p.clone(),
        None => match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => PathBuf::from(dir).join("config.json"),
            None => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".docker/config.json"),
                None => return Ok(RegistryAuth::Anonymous),
            },
        },
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistryAuth::Anonymous),
        Err(e) => return Err(e).ctx("read", path),
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(crate::error::json_err(path.display().to_string()))?;
    let Some(auths) = value.get("auths").and_then(|a| a.as_object()) else {
        return Ok(RegistryAuth::Anonymous);
    };
    let mut keys = vec![
        registry.to_string(),
        format!("https://{registry}"),
        format!("http://{registry}"),
    ];
    if registry == crate::reference::DEFAULT_REGISTRY {
        keys.push("https://index.docker.io/v1/".to_string());
        keys.push("index.docker.io".to_string());
    }
    for key in keys {
        let Some(entry) = auths.get(&key) else {
            continue;
        };
        if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth)
                .map_err(|e| ImageError::BadContent {
                    what: format!("{} auth for {key}", path.display()),
                    reason: e.to_string(),
                })?;
            let text = String::from_utf8_lossy(&decoded);
            if let Some((user, pass)) = text.split_once(':') {
                return Ok(RegistryAuth::Basic(user.to_string(), pass.to_string()));
            }
        }
        if let (Some(user), Some(pass)) = (
            entry.get("username").and_then(|u| u.as_str()),
            entry.get("password").and_then(|p| p.as_str()),
        ) {
            return Ok(RegistryAuth::Basic(user.to_string(), pass.to_string()));
        }
    }
    Ok(RegistryAuth::Anonymous)
}

fn client_for(reference: &Reference, opts: &PullOptions) -> oci_client::Client {
    // reqwest is built without a bundled crypto provider; ring is the workspace's choice.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plain_http = reference.is_loopback_registry()
        || opts
            .insecure_registries
            .iter()
            .any(|r| r == &reference.registry);
    let protocol = if plain_http {
        ClientProtocol::HttpsExcept(vec![reference.registry.clone()])
    } else {
        ClientProtocol::Https
    };
    oci_client::Client::new(ClientConfig {
        protocol,
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        ..Default::default()
    })
}

fn oci_ref(reference: &Reference, digest: Option<&str>) -> oci_client::Reference {
    match (digest.or(reference.digest.as_deref()), &reference.tag) {
        (Some(d), _) => oci_client::Reference::with_digest(
            reference.registry.clone(),
            reference.repository.clone(),
            d.to_string(),
        ),
        (None, tag) => oci_client::Reference::with_tag(
            reference.registry.clone(),
            reference.repository.clone(),
            tag.clone()
                .unwrap_or_else(|| crate::reference::DEFAULT_TAG.to_string()),
        ),
    }
}

/// Pulls `image` into the store and names it with the normalised reference.
pub async fn pull(store: &Arc<Store>, image: &str, opts: &PullOptions) -> Result<ImageInfo> {
    let reference = Reference::parse(image)?;
    let name = reference.to_string();
    let client = client_for(&reference, opts);
    let auth = docker_config_auth(opts.docker_config.as_ref(), &reference.registry)?;

    opts.report(&format!("resolving {name}"));
    let (mut bytes, mut digest) = fetch_manifest(&client, &reference, None, &auth).await?;
    let mut media_type = manifest::classify(&bytes).unwrap_or_default();
    if manifest::INDEX_TYPES.contains(&media_type.as_str()) {
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(crate::error::json_err(format!("index of {name}")))?;
        let chosen = index
            .linux_amd64()
            .ok_or_else(|| ImageError::NoMatchingPlatform(name.clone()))?
            .clone();
        opts.report(&format!("index {digest}: linux/amd64 is {}", chosen.digest));
        (bytes, digest) = fetch_manifest(&client, &reference, Some(&chosen.digest), &auth).await?;
        media_type = manifest::classify(&bytes).unwrap_or_default();
    }
    if !manifest::MANIFEST_TYPES.contains(&media_type.as_str()) {
        return Err(ImageError::UnsupportedMediaType(media_type));
    }

    let lock = store.inflight_lock(&digest);
    let _guard = lock.lock().await;
    if store.is_complete(&digest) {
        opts.report(&format!("{name}: already present ({digest})"));
        store.tag(&name, &digest)?;
        return store.image(&name);
    }

    let parsed: Manifest = serde_json::from_slice(&bytes)
        .map_err(crate::error::json_err(format!("manifest of {name}")))?;
    let mut staging = store.staging()?;
    staging.add_blob_bytes(&digest, &bytes, &format!("manifest of {name}"))?;
    let blob_ref = oci_ref(&reference, Some(&digest));
    let mut blobs = vec![parsed.config.clone()];
    blobs.extend(parsed.layers.iter().cloned());
    for (i, desc) in blobs.iter().enumerate() {
        if staging.has_blob(&desc.digest) {
            opts.report(&format!("{}: already present", desc.digest));
            continue;
        }
        if i > 0 {
            // Refuse unknown layer types before downloading them.
            crate::unpack::compression_for_media_type(&desc.media_type)?;
        }
        opts.report(&format!(
            "downloading {} ({} bytes)",
            desc.digest, desc.size
        ));
        let scratch = staging.scratch_path(&format!("download-{i}"));
        let file = tokio::fs::File::create(&scratch)
            .await
            .ctx("create", &scratch)?;
        let oci_desc = oci_client::manifest::OciDescriptor {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            size: desc.size as i64,
            ..Default::default()
        };
        client
            .pull_blob(&blob_ref, &oci_desc, file)
            .await
            .map_err(|e| registry_err(&reference, format!("blob {}: {e}", desc.digest)))?;
        staging.add_blob_file(&desc.digest, &scratch, &format!("blob of {name}"))?;
    }
    opts.report(&format!("unpacking {name}"));
    let commit_name = name.clone();
    let commit_digest = digest.clone();
    let info = tokio::task::spawn_blocking(move || staging.commit(&commit_name, &commit_digest))
        .await
        .map_err(|e| registry_err(&reference, format!("unpack task failed: {e}")))??;
    opts.report(&format!("pulled {name} ({digest})"));
    Ok(info)
}

async fn fetch_manifest(
    client: &oci_client::Client,
    reference: &Reference,
    digest: Option<&str>,
    auth: &RegistryAuth,
) -> Result<(Vec<u8>, String)> {
    let target = oci_ref(reference, digest);
    let (bytes, _server_digest) = client
        .pull_manifest_raw(&target, auth, ACCEPTED)
        .await
        .map_err(|e| registry_err(reference, e))?;
    // Trust only our own hash; when the user or an index named a digest it must match.
    let actual = manifest::sha256_digest(&bytes);
    if let Some(expected) = digest.or(reference.digest.as_deref()) {
        if expected != actual {
            return Err(ImageError::DigestMismatch {
                what: format!("manifest of {reference}"),
                expected: expected.to_string(),
                actual,
            });
        }
    }
    Ok((bytes.to_vec(), actual))
}
