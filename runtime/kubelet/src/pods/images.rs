//! Images for containers: imagePullPolicy, imagePullSecrets, and the events upstream's image
//! manager writes (Pulling, Pulled, Failed, BackOff).

use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::api::Api;
use kube::Client;
use skiff_image::{ImageInfo, PullOptions, Reference, Store};

/// Why an image is not available (the container's waiting reason and message).
#[derive(Debug, Clone)]
pub struct PullFailure {
    pub reason: &'static str,
    pub message: String,
}

/// What happened, for the events.
pub enum Outcome {
    Present(ImageInfo),
    Pulled { info: ImageInfo, seconds: f64 },
}

/// The policy upstream defaults to: Always for `:latest` or no tag, IfNotPresent otherwise.
pub fn policy(container: &Container) -> String {
    if let Some(p) = container
        .image_pull_policy
        .clone()
        .filter(|p| !p.is_empty())
    {
        return p;
    }
    let image = container.image.clone().unwrap_or_default();
    match Reference::parse(&image) {
        Ok(r) if r.digest.is_some() => "IfNotPresent".into(),
        Ok(r) if r.tag.as_deref().is_some_and(|t| t != "latest") => "IfNotPresent".into(),
        _ => "Always".into(),
    }
}

/// Makes the container's image available in the node's store.
pub async fn ensure(
    client: &Client,
    store: &Arc<Store>,
    pod: &Pod,
    container: &Container,
    scratch: &Path,
) -> Result<Outcome, PullFailure> {
    let image = container.image.clone().unwrap_or_default();
    if image.is_empty() {
        return Err(PullFailure {
            reason: "InvalidImageName",
            message: "Failed to apply default image tag \"\": couldn't parse image name \"\": invalid reference format".into(),
        });
    }
    if let Err(e) = Reference::parse(&image) {
        return Err(PullFailure {
            reason: "InvalidImageName",
            message: format!("Failed to apply default image tag {image:?}: {e}"),
        });
    }
    let present = store.image(&image).ok();
    let policy = policy(container);
    match (policy.as_str(), present) {
        ("Never", Some(info)) | ("IfNotPresent", Some(info)) => return Ok(Outcome::Present(info)),
        ("Never", None) => {
            return Err(PullFailure {
                reason: "ErrImageNeverPull",
                message: format!(
                    "Container image {image:?} is not present with pull policy of Never"
                ),
            })
        }
        // Always with a local image that no registry knows (built or loaded): upstream would
        // fail the pull; skiff's offline images keep working when the pull is impossible.
        _ => {}
    }
    let docker_config = pull_secrets(client, pod, scratch).await;
    let opts = PullOptions {
        docker_config: docker_config.clone(),
        ..PullOptions::default()
    };
    let started = std::time::Instant::now();
    let result = skiff_image::pull(store, &image, &opts).await;
    if let Some(path) = docker_config {
        let _ = std::fs::remove_file(path);
    }
    match result {
        Ok(info) => Ok(Outcome::Pulled {
            info,
            seconds: started.elapsed().as_secs_f64(),
        }),
        Err(e) => match store.image(&image).ok() {
            // An image loaded into the node (skiff load) needs no registry.
            Some(info) if policy == "Always" => Ok(Outcome::Present(info)),
            _ => Err(PullFailure {
                reason: "ErrImagePull",
                message: format!(
                    "failed to pull and unpack image {:?}: {e}",
                    normalized(&image)
                ),
            }),
        },
    }
}

/// `docker.io/library/busybox:latest` for `busybox`.
pub fn normalized(image: &str) -> String {
    Reference::parse(image)
        .map(|r| r.to_string())
        .unwrap_or_else(|_| image.to_string())
}

/// The CRI image ref: `<registry>/<repository>@<manifest digest>`.
pub fn image_id(info: &ImageInfo) -> String {
    let repo = Reference::parse(&info.name)
        .map(|r| format!("{}/{}", r.registry, r.repository))
        .unwrap_or_else(|_| info.name.clone());
    format!("{repo}@{}", info.manifest_digest)
}

/// A docker config.json merged from the pod's imagePullSecrets (type
/// kubernetes.io/dockerconfigjson or dockercfg), written to `scratch`; None if there are none.
async fn pull_secrets(client: &Client, pod: &Pod, scratch: &Path) -> Option<std::path::PathBuf> {
    let secrets = pod
        .spec
        .as_ref()?
        .image_pull_secrets
        .clone()
        .unwrap_or_default();
    if secrets.is_empty() {
        return None;
    }
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let mut auths = serde_json::Map::new();
    for reference in secrets {
        let Ok(Some(secret)) = api.get_opt(&reference.name).await else {
            continue;
        };
        let data = secret.data.unwrap_or_default();
        if let Some(json) = data.get(".dockerconfigjson") {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&json.0) {
                if let Some(map) = v.get("auths").and_then(|a| a.as_object()) {
                    auths.extend(map.clone());
                }
            }
        } else if let Some(cfg) = data.get(".dockercfg") {
            if let Ok(serde_json::Value::Object(map)) =
                serde_json::from_slice::<serde_json::Value>(&cfg.0)
            {
                auths.extend(map);
            }
        }
    }
    let path = scratch.join(format!("pull-{}.json", rand::random::<u32>()));
    let body = serde_json::json!({"auths": auths});
    std::fs::create_dir_all(scratch).ok()?;
    std::fs::write(&path, serde_json::to_vec(&body).ok()?).ok()?;
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_pull_policies() {
        let c = |image: &str| -> Container {
            serde_json::from_value(json!({"name": "c", "image": image})).unwrap()
        };
        assert_eq!(policy(&c("busybox")), "Always");
        assert_eq!(policy(&c("busybox:latest")), "Always");
        assert_eq!(policy(&c("busybox:1.36")), "IfNotPresent");
        let pinned = format!("busybox@sha256:{}", "a".repeat(64));
        assert_eq!(policy(&c(&pinned)), "IfNotPresent");
        assert_eq!(normalized("busybox"), "docker.io/library/busybox:latest");
    }
}
