//! Pod volumes under `<pod dir>/volumes/kubernetes.io~<plugin>/<name>` (upstream's layout):
//! emptyDir (a directory, or tmpfs for `medium: Memory`), hostPath with its types, and the
//! API-backed ones — configMap, secret, downwardAPI, projected — written with upstream's
//! atomic writer so a container never sees a half-updated volume:
//!
//! ```text
//! <volume>/..2026_12_03_11_40_00.123456789/<files>   this version's files
//! <volume>/..data -> ..2026_12_03_11_40_00.123456789   switched by renaming ..data_tmp
//! <volume>/<key> -> ..data/<key>                       what the container opens
//! ```
//!
//! The kubelet calls [`ensure`] on every sync, so an edited ConfigMap or Secret reaches
//! running pods (subPath mounts excepted, as upstream). Secrets and projected volumes sit on
//! a tmpfs so their content never touches the disk.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume,
};
use kube::api::Api;
use kube::Client;

use super::env::ConfigError;

/// Where a volume's content lives on the node.
pub fn volume_dir(pod_dir: &Path, volume: &Volume) -> PathBuf {
    pod_dir
        .join("volumes")
        .join(format!("kubernetes.io~{}", plugin(volume)))
        .join(&volume.name)
}

/// The plugin name upstream uses in the path.
pub fn plugin(volume: &Volume) -> &'static str {
    if volume.empty_dir.is_some() {
        "empty-dir"
    } else if volume.host_path.is_some() {
        "host-path"
    } else if volume.config_map.is_some() {
        "configmap"
    } else if volume.secret.is_some() {
        "secret"
    } else if volume.downward_api.is_some() {
        "downward-api"
    } else if volume.projected.is_some() {
        "projected"
    } else {
        "unsupported"
    }
}

/// What an unsupported or failing volume reports (the FailedMount event's message).
#[derive(Debug, Clone, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
pub struct MountError {
    pub volume: String,
    pub message: String,
}

fn mount_error(volume: &Volume, message: impl ToString) -> MountError {
    MountError {
        volume: volume.name.clone(),
        message: message.to_string(),
    }
}

/// Makes every volume of the pod ready (and brings API-backed ones up to date). Returns the
/// host path of each volume by name.
pub async fn ensure(
    client: &Client,
    pod: &Pod,
    pod_dir: &Path,
    host_ip: &str,
) -> Result<BTreeMap<String, PathBuf>, MountError> {
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut paths = BTreeMap::new();
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    for volume in &volumes {
        let dir = volume_dir(pod_dir, volume);
        if let Some(host) = &volume.host_path {
            host_path(&host.path, host.type_.as_deref().unwrap_or(""))
                .map_err(|e| mount_error(volume, e))?;
            paths.insert(volume.name.clone(), PathBuf::from(&host.path));
            continue;
        }
        if let Some(empty) = &volume.empty_dir {
            if !dir.exists() {
                fs::create_dir_all(&dir).map_err(|e| mount_error(volume, e))?;
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o777))
                    .map_err(|e| mount_error(volume, e))?;
                if empty.medium.as_deref() == Some("Memory") {
                    let size = empty
                        .size_limit
                        .as_ref()
                        .and_then(|q| crate::node::machine::quantity_bytes(&q.0));
                    mount_tmpfs(&dir, size).map_err(|e| mount_error(volume, e))?;
                }
            }
            paths.insert(volume.name.clone(), dir);
            continue;
        }
        let files = if let Some(source) = &volume.config_map {
            let optional = source.optional.unwrap_or(false);
            let cm = get::<ConfigMap>(client, &namespace, &source.name)
                .await
                .map_err(|e| mount_error(volume, e))?;
            match cm {
                Some(cm) => config_map_files(&cm, source.items.as_deref(), source.default_mode)
                    .map_err(|e| mount_error(volume, e))?,
                None if optional => BTreeMap::new(),
                None => {
                    return Err(mount_error(
                        volume,
                        format!("configmap \"{}\" not found", source.name),
                    ))
                }
            }
        } else if let Some(source) = &volume.secret {
            let name = source.secret_name.clone().unwrap_or_default();
            let optional = source.optional.unwrap_or(false);
            let secret = get::<Secret>(client, &namespace, &name)
                .await
                .map_err(|e| mount_error(volume, e))?;
            match secret {
                Some(s) => secret_files(&s, source.items.as_deref(), source.default_mode)
                    .map_err(|e| mount_error(volume, e))?,
                None if optional => BTreeMap::new(),
                None => return Err(mount_error(volume, format!("secret \"{name}\" not found"))),
            }
        } else if let Some(source) = &volume.downward_api {
            downward_files(
                pod,
                source.items.as_deref().unwrap_or_default(),
                source.default_mode,
                host_ip,
            )
            .map_err(|e| mount_error(volume, e))?
        } else if let Some(projected) = &volume.projected {
            let mut files = BTreeMap::new();
            for source in projected.sources.iter().flatten() {
                if let Some(s) = &source.config_map {
                    match get::<ConfigMap>(client, &namespace, &s.name)
                        .await
                        .map_err(|e| mount_error(volume, e))?
                    {
                        Some(cm) => files.extend(
                            config_map_files(&cm, s.items.as_deref(), projected.default_mode)
                                .map_err(|e| mount_error(volume, e))?,
                        ),
                        None if s.optional.unwrap_or(false) => {}
                        None => {
                            return Err(mount_error(
                                volume,
                                format!("configmap \"{}\" not found", s.name),
                            ))
                        }
                    }
                }
                if let Some(s) = &source.secret {
                    match get::<Secret>(client, &namespace, &s.name)
                        .await
                        .map_err(|e| mount_error(volume, e))?
                    {
                        Some(secret) => files.extend(
                            secret_files(&secret, s.items.as_deref(), projected.default_mode)
                                .map_err(|e| mount_error(volume, e))?,
                        ),
                        None if s.optional.unwrap_or(false) => {}
                        None => {
                            return Err(mount_error(
                                volume,
                                format!("secret \"{}\" not found", s.name),
                            ))
                        }
                    }
                }
                if let Some(s) = &source.downward_api {
                    files.extend(
                        downward_files(
                            pod,
                            s.items.as_deref().unwrap_or_default(),
                            projected.default_mode,
                            host_ip,
                        )
                        .map_err(|e| mount_error(volume, e))?,
                    );
                }
                if let Some(s) = &source.service_account_token {
                    let token = service_account_token(
                        client,
                        pod,
                        s.audience.clone(),
                        s.expiration_seconds,
                    )
                    .await
                    .map_err(|e| mount_error(volume, e))?;
                    files.insert(
                        s.path.clone(),
                        (
                            token.into_bytes(),
                            mode(projected.default_mode, None, 0o644),
                        ),
                    );
                }
            }
            files
        } else {
            return Err(mount_error(
                volume,
                "this volume type is not supported by skiff's kubelet yet",
            ));
        };
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(|e| mount_error(volume, e))?;
            if volume.secret.is_some() || volume.projected.is_some() {
                mount_tmpfs(&dir, None).map_err(|e| mount_error(volume, e))?;
            }
        }
        write_atomic(&dir, &files).map_err(|e| mount_error(volume, e))?;
        paths.insert(volume.name.clone(), dir);
    }
    Ok(paths)
}

/// Unmounts every tmpfs below the pod's volumes and removes them (hostPath content is the
/// node's and is never touched).
pub fn remove_all(pod_dir: &Path) -> io::Result<()> {
    let root = pod_dir.join("volumes");
    let Ok(plugins) = fs::read_dir(&root) else {
        return Ok(());
    };
    for plugin in plugins.flatten() {
        for volume in fs::read_dir(plugin.path())?.flatten() {
            let path = volume.path();
            match nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH) {
                Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
                Err(e) => {
                    return Err(io::Error::new(
                        io::Error::from(e).kind(),
                        format!("unmounting {}: {e}", path.display()),
                    ))
                }
            }
        }
    }
    fs::remove_dir_all(&root).or_else(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Ok(())
        } else {
            Err(e)
        }
    })
}

fn mount_tmpfs(dir: &Path, size: Option<u64>) -> io::Result<()> {
    let options = match size {
        Some(bytes) => format!("mode=0777,size={bytes}"),
        None => "mode=0777".to_string(),
    };
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(io::Error::from)
}

async fn get<K>(client: &Client, namespace: &str, name: &str) -> Result<Option<K>, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| format!("reading {} {namespace}/{name}: {e}", K::kind(&())))
}

/// `hostPath` with its `type` check (or creation), as upstream's hostPath plugin.
pub fn host_path(path: &str, kind: &str) -> Result<(), String> {
    let p = Path::new(path);
    let meta = fs::metadata(p);
    use std::os::unix::fs::FileTypeExt;
    let is = |check: fn(&fs::FileType) -> bool| {
        meta.as_ref()
            .map(|m| check(&m.file_type()))
            .unwrap_or(false)
    };
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if !p.exists() {
                fs::create_dir_all(p).map_err(|e| format!("creating {path}: {e}"))?;
                fs::set_permissions(p, fs::Permissions::from_mode(0o755))
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        "Directory" if is(fs::FileType::is_dir) => Ok(()),
        "Directory" => Err(format!(
            "hostPath type check failed: {path} is not a directory"
        )),
        "FileOrCreate" => {
            if !p.exists() {
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                fs::File::create(p).map_err(|e| format!("creating {path}: {e}"))?;
                fs::set_permissions(p, fs::Permissions::from_mode(0o644))
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        "File" if is(fs::FileType::is_file) => Ok(()),
        "File" => Err(format!("hostPath type check failed: {path} is not a file")),
        "Socket" if is(fs::FileType::is_socket) => Ok(()),
        "Socket" => Err(format!(
            "hostPath type check failed: {path} is not a socket file"
        )),
        "CharDevice" if is(fs::FileType::is_char_device) => Ok(()),
        "CharDevice" => Err(format!(
            "hostPath type check failed: {path} is not a character device"
        )),
        "BlockDevice" if is(fs::FileType::is_block_device) => Ok(()),
        "BlockDevice" => Err(format!(
            "hostPath type check failed: {path} is not a block device"
        )),
        other => Err(format!("unknown hostPath type {other:?}")),
    }
}

type Files = BTreeMap<String, (Vec<u8>, u32)>;

fn mode(default_mode: Option<i32>, item_mode: Option<i32>, fallback: u32) -> u32 {
    item_mode
        .or(default_mode)
        .map(|m| m as u32 & 0o7777)
        .unwrap_or(fallback)
}

fn select(
    all: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    kind: &str,
    name: &str,
) -> Result<Files, String> {
    let mut files = Files::new();
    match items {
        None => {
            for (k, v) in all {
                files.insert(k, (v, mode(default_mode, None, 0o644)));
            }
        }
        Some(items) => {
            for item in items {
                let value = all.get(&item.key).ok_or_else(|| {
                    format!(
                        "configuration error: key {:?} not found in {kind} {name:?}",
                        item.key
                    )
                })?;
                check_relative(&item.path)?;
                files.insert(
                    item.path.clone(),
                    (value.clone(), mode(default_mode, item.mode, 0o644)),
                );
            }
        }
    }
    Ok(files)
}

fn config_map_files(
    cm: &ConfigMap,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
) -> Result<Files, String> {
    let mut all: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (k, v) in cm.data.clone().unwrap_or_default() {
        all.insert(k, v.into_bytes());
    }
    for (k, v) in cm.binary_data.clone().unwrap_or_default() {
        all.insert(k, v.0);
    }
    select(
        all,
        items,
        default_mode,
        "ConfigMap",
        cm.metadata.name.as_deref().unwrap_or_default(),
    )
}

fn secret_files(
    secret: &Secret,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
) -> Result<Files, String> {
    let mut all: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (k, v) in secret.data.clone().unwrap_or_default() {
        all.insert(k, v.0);
    }
    for (k, v) in secret.string_data.clone().unwrap_or_default() {
        all.insert(k, v.into_bytes());
    }
    select(
        all,
        items,
        default_mode,
        "Secret",
        secret.metadata.name.as_deref().unwrap_or_default(),
    )
}

fn downward_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
    host_ip: &str,
) -> Result<Files, String> {
    let mut files = Files::new();
    for item in items {
        check_relative(&item.path)?;
        let value = if let Some(field) = &item.field_ref {
            let meta = &pod.metadata;
            let map_text = |m: &Option<BTreeMap<String, String>>| {
                m.clone()
                    .unwrap_or_default()
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}=\"{}\"\n",
                            v.replace('\\', "\\\\")
                                .replace('"', "\\\"")
                                .replace('\n', "\\n")
                        )
                    })
                    .collect::<String>()
            };
            match field.field_path.as_str() {
                "metadata.labels" => map_text(&meta.labels),
                "metadata.annotations" => map_text(&meta.annotations),
                "metadata.name" => meta.name.clone().unwrap_or_default(),
                "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
                "metadata.uid" => meta.uid.clone().unwrap_or_default(),
                "status.hostIP" => host_ip.to_string(),
                path => {
                    let bracket = |prefix: &str| {
                        path.strip_prefix(prefix)?
                            .strip_prefix("['")?
                            .strip_suffix("']")
                            .map(str::to_string)
                    };
                    if let Some(key) = bracket("metadata.labels") {
                        meta.labels
                            .clone()
                            .unwrap_or_default()
                            .get(&key)
                            .cloned()
                            .unwrap_or_default()
                    } else if let Some(key) = bracket("metadata.annotations") {
                        meta.annotations
                            .clone()
                            .unwrap_or_default()
                            .get(&key)
                            .cloned()
                            .unwrap_or_default()
                    } else {
                        return Err(format!("unsupported fieldPath {path:?}"));
                    }
                }
            }
        } else if let Some(resource) = &item.resource_field_ref {
            let name = resource.container_name.clone().unwrap_or_default();
            let container = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == name))
                .ok_or_else(|| format!("container {name:?} not found for resourceFieldRef"))?;
            let resources = container.resources.clone().unwrap_or_default();
            let (map, key) = resource.resource.split_once('.').unwrap_or(("", ""));
            let source = if map == "limits" {
                resources.limits
            } else {
                resources.requests
            };
            source
                .unwrap_or_default()
                .get(key)
                .map(|q| q.0.clone())
                .unwrap_or_else(|| "0".into())
        } else {
            String::new()
        };
        files.insert(
            item.path.clone(),
            (value.into_bytes(), mode(default_mode, item.mode, 0o644)),
        );
    }
    Ok(files)
}

/// A token for the pod's service account through the TokenRequest API, bound to the pod.
/// Tokens fetched for projected volumes, by request, with when to fetch again and when they
/// expire. [`ensure`] runs on every sync (each second), so a token is reused until 80% of its
/// lifetime has passed, or a day — upstream's kubelet token manager — instead of asking the API
/// server (and signing) once a second per pod.
type TokenCache = std::collections::HashMap<String, (String, jiff::Timestamp, jiff::Timestamp)>;
static TOKENS: std::sync::LazyLock<std::sync::Mutex<TokenCache>> =
    std::sync::LazyLock::new(Default::default);

/// When a token valid for `seconds` until `expires` is fetched again.
fn refresh_at(expires: jiff::Timestamp, seconds: i64) -> jiff::Timestamp {
    let issued = expires - jiff::SignedDuration::from_secs(seconds);
    let by_ttl = expires - jiff::SignedDuration::from_secs(seconds / 5);
    let by_age = issued + jiff::SignedDuration::from_hours(24);
    by_ttl.min(by_age)
}

async fn service_account_token(
    client: &Client,
    pod: &Pod,
    audience: Option<String>,
    expiration: Option<i64>,
) -> Result<String, String> {
    use k8s_openapi::api::authentication::v1::{
        BoundObjectReference, TokenRequest, TokenRequestSpec,
    };
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let seconds = expiration.unwrap_or(3607);
    let key = format!(
        "{namespace}/{account}/{}/{}/{seconds}/{}",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default(),
        audience.as_deref().unwrap_or_default(),
    );
    let now = jiff::Timestamp::now();
    {
        let mut cache = TOKENS.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, (_, _, expires)| *expires > now);
        if let Some((token, refresh, _)) = cache.get(&key) {
            if *refresh > now {
                return Ok(token.clone());
            }
        }
    }
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(audience.into_iter().collect()),
            expiration_seconds: Some(seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
            attestations: None,
        }),
        ..TokenRequest::default()
    };
    let api: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), &namespace);
    let answer: TokenRequest = api
        .create_subresource(
            "token",
            &account,
            &kube::api::PostParams::default(),
            &request,
        )
        .await
        .map_err(|e| format!("failed to fetch token: {e}"))?;
    let status = answer
        .status
        .ok_or_else(|| "the token request has no status".to_string())?;
    let token = status.token.unwrap_or_default();
    let granted = answer
        .spec
        .as_ref()
        .and_then(|s| s.expiration_seconds)
        .unwrap_or(seconds);
    if let Some(expires) = status.expiration_timestamp.map(|t| t.0) {
        TOKENS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (token.clone(), refresh_at(expires, granted), expires));
    }
    Ok(token)
}

fn check_relative(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && !p.is_absolute()
        && p.components().all(|c| matches!(c, Component::Normal(_)))
        && !path.starts_with("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid path {path:?}: must be relative and may not contain '..'"
        ))
    }
}

/// Upstream's atomic writer: a new timestamped directory, `..data` switched by rename, and
/// top-level symlinks into `..data`. Nothing is written when the content is unchanged.
pub fn write_atomic(dir: &Path, files: &Files) -> io::Result<()> {
    let data = dir.join("..data");
    if let Ok(current) = fs::read_link(&data) {
        let current_dir = dir.join(&current);
        if same_content(&current_dir, files) {
            return Ok(());
        }
    }
    let now = jiff::Timestamp::now();
    let version = format!(
        "..{}.{}",
        now.strftime("%Y_%m_%d_%H_%M_%S"),
        rand::random::<u32>()
    );
    let version_dir = dir.join(&version);
    fs::create_dir(&version_dir)?;
    fs::set_permissions(&version_dir, fs::Permissions::from_mode(0o755))?;
    for (path, (bytes, mode)) in files {
        let target = version_dir.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&target, bytes)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(*mode))?;
    }
    let old = fs::read_link(&data).ok();
    let tmp = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&version, &tmp)?;
    fs::rename(&tmp, &data)?;
    // Top-level names: a symlink into ..data for each; stale ones removed.
    let tops: std::collections::BTreeSet<String> = files
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    for top in &tops {
        let link = dir.join(top);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(top), &link)?;
        }
    }
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !tops.contains(&name) {
            let _ = fs::remove_file(entry.path());
        }
    }
    if let Some(old) = old {
        let _ = fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

fn same_content(dir: &Path, files: &Files) -> bool {
    let mut count = 0;
    for (path, (bytes, mode)) in files {
        let target = dir.join(path);
        match (fs::read(&target), fs::metadata(&target)) {
            (Ok(existing), Ok(meta))
                if &existing == bytes && meta.permissions().mode() & 0o7777 == *mode =>
            {
                count += 1
            }
            _ => return false,
        }
    }
    count_files(dir) == count
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// Decodes `data:` style base64 (used by tests and the dockerconfigjson reader).
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

/// Errors a container's mounts can hit after the volumes exist.
pub fn sub_path(volume_path: &Path, sub_path: &str, create: bool) -> Result<PathBuf, ConfigError> {
    if sub_path.is_empty() {
        return Ok(volume_path.to_path_buf());
    }
    check_relative(sub_path).map_err(ConfigError)?;
    let path = volume_path.join(sub_path);
    if create && !path.exists() {
        fs::create_dir_all(&path)
            .map_err(|e| ConfigError(format!("creating subPath {sub_path:?}: {e}")))?;
    }
    // A symlink inside the volume must not lead out of it.
    let base = volume_path
        .canonicalize()
        .map_err(|e| ConfigError(e.to_string()))?;
    let real = path
        .canonicalize()
        .map_err(|e| ConfigError(format!("subPath {sub_path:?}: {e}")))?;
    if !real.starts_with(&base) {
        return Err(ConfigError(format!(
            "subPath {sub_path:?} leads outside the volume"
        )));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_at_four_fifths_of_their_life() {
        let expires: jiff::Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let at = refresh_at(expires, 3600);
        assert_eq!(
            at,
            "2026-01-01T00:48:00Z".parse::<jiff::Timestamp>().unwrap()
        );
        // A long-lived token is fetched again after a day.
        let expires: jiff::Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        let at = refresh_at(expires, 365 * 86400);
        assert_eq!(
            at,
            "2026-01-02T00:00:00Z".parse::<jiff::Timestamp>().unwrap()
        );
    }

    fn files(entries: &[(&str, &str)]) -> Files {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), (v.as_bytes().to_vec(), 0o644)))
            .collect()
    }

    #[test]
    fn atomic_writer_layout_and_updates() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), &files(&[("a", "1"), ("sub/b", "2")])).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "1");
        assert_eq!(fs::read_to_string(dir.path().join("sub/b")).unwrap(), "2");
        assert_eq!(
            fs::read_link(dir.path().join("a")).unwrap(),
            Path::new("..data/a")
        );
        let first = fs::read_link(dir.path().join("..data")).unwrap();
        // Same content: nothing rewritten.
        write_atomic(dir.path(), &files(&[("a", "1"), ("sub/b", "2")])).unwrap();
        assert_eq!(fs::read_link(dir.path().join("..data")).unwrap(), first);
        // New content: a new version, the old one and stale names gone.
        write_atomic(dir.path(), &files(&[("a", "3")])).unwrap();
        assert_eq!(fs::read_to_string(dir.path().join("a")).unwrap(), "3");
        assert!(fs::symlink_metadata(dir.path().join("sub")).is_err());
        assert!(!dir.path().join(&first).exists());
    }

    #[test]
    fn items_pick_keys_and_refuse_escapes() {
        let all = BTreeMap::from([("k".to_string(), b"v".to_vec())]);
        let items = vec![KeyToPath {
            key: "k".into(),
            path: "conf/k.txt".into(),
            mode: Some(0o600),
            user: None,
        }];
        let picked = select(all.clone(), Some(&items), None, "ConfigMap", "c").unwrap();
        assert_eq!(picked["conf/k.txt"], (b"v".to_vec(), 0o600));
        let bad = vec![KeyToPath {
            key: "k".into(),
            path: "../x".into(),
            mode: None,
            user: None,
        }];
        assert!(select(all.clone(), Some(&bad), None, "ConfigMap", "c").is_err());
        let missing = vec![KeyToPath {
            key: "nope".into(),
            path: "x".into(),
            mode: None,
            user: None,
        }];
        assert!(select(all, Some(&missing), None, "ConfigMap", "c")
            .unwrap_err()
            .contains("not found"));
    }

    #[test]
    fn host_path_types() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("made");
        host_path(made.to_str().unwrap(), "DirectoryOrCreate").unwrap();
        assert!(made.is_dir());
        assert!(host_path(made.to_str().unwrap(), "File")
            .unwrap_err()
            .contains("not a file"));
        let file = dir.path().join("f");
        host_path(file.to_str().unwrap(), "FileOrCreate").unwrap();
        host_path(file.to_str().unwrap(), "File").unwrap();
        assert!(host_path(file.to_str().unwrap(), "Directory").is_err());
    }

    #[test]
    fn sub_paths_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("out")).unwrap();
        assert!(sub_path(dir.path(), "out", false).is_err());
        assert!(sub_path(dir.path(), "../x", true).is_err());
        let inside = sub_path(dir.path(), "data/x", true).unwrap();
        assert!(inside.ends_with("data/x"));
    }
}
