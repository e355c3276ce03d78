//! Image garbage collection by disk usage, as upstream's image manager does it
//! (`pkg/kubelet/images/image_gc_manager.go`): every `--image-gc-period` (upstream's fixed
//! 5 min) the image filesystem's usage is measured; at or above `--image-gc-high-threshold`
//! (85 %) unused images are deleted — least recently used first, never one first seen less
//! than `--minimum-image-ttl-duration` (2 min) ago — until usage is back at
//! `--image-gc-low-threshold` (80 %). An image is in use while any container the kubelet keeps
//! (running or exited, `<root-dir>/containers/*/record.json`) was made from it.
//!
//! When not enough can be freed the Node gets a Warning `FreeDiskSpaceFailed` with upstream's
//! text, and a second failure in a row an `ImageGCFailed`, as upstream's kubelet reports them.
//! A deleted image's name goes first, then the store collects the blobs and layers no name
//! and no container rootfs still needs (`skiff_image::Store::gc`).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;

use crate::Kubelet;

/// What the collector knows of an image (by manifest digest) between rounds.
#[derive(Debug, Clone, Copy)]
struct Seen {
    first_detected: Instant,
    last_used: Option<Instant>,
}

/// The thresholds, from the flags.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub high: u8,
    pub low: u8,
    pub min_age: Duration,
}

/// Runs the collector until the kubelet stops.
pub async fn keep(k: Arc<Kubelet>) {
    let policy = Policy {
        high: k.args.image_gc_high_threshold,
        low: k.args.image_gc_low_threshold,
        min_age: k.args.minimum_image_ttl_duration,
    };
    if policy.high >= 100 {
        // Upstream: a high threshold of 100 turns image GC off.
        return std::future::pending().await;
    }
    let node = ObjectReference {
        kind: Some("Node".into()),
        name: Some(k.args.node_name.clone()),
        uid: Some(k.args.node_name.clone()),
        ..ObjectReference::default()
    };
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut failed_before = false;
    loop {
        tokio::time::sleep(k.args.image_gc_period).await;
        let k2 = k.clone();
        let mut state = std::mem::take(&mut seen);
        let round = tokio::task::spawn_blocking(move || {
            let result = collect(&k2, policy, &mut state, Instant::now());
            (result, state)
        })
        .await;
        let Ok((result, state)) = round else {
            continue;
        };
        seen = state;
        match result {
            Ok(None) => failed_before = false,
            Ok(Some(freed)) => {
                tracing::info!(bytes = freed, "image garbage collection freed space");
                failed_before = false;
            }
            Err(Failure::NotEnough(message)) => {
                tracing::warn!("{message}");
                event(&k, &node, "FreeDiskSpaceFailed", &message).await;
                if failed_before {
                    event(&k, &node, "ImageGCFailed", &message).await;
                }
                failed_before = true;
            }
            Err(Failure::Other(message)) => {
                tracing::warn!("image garbage collection failed: {message}");
                if failed_before {
                    event(&k, &node, "ImageGCFailed", &message).await;
                }
                failed_before = true;
            }
        }
    }
}

async fn event(k: &Kubelet, node: &ObjectReference, reason: &str, message: &str) {
    let _ = k
        .recorder
        .record(&k.client, node, "Warning", reason, reason, message)
        .await;
}

#[derive(Debug, PartialEq)]
enum Failure {
    /// Fewer bytes were eligible than needed (upstream's FreeDiskSpaceFailed).
    NotEnough(String),
    Other(String),
}

/// One round: None when usage is below the high threshold, else the bytes freed.
fn collect(
    k: &Kubelet,
    policy: Policy,
    seen: &mut HashMap<String, Seen>,
    now: Instant,
) -> Result<Option<u64>, Failure> {
    let fs = nix::sys::statvfs::statvfs(&k.args.image_root)
        .map_err(|e| Failure::Other(format!("statfs {}: {e}", k.args.image_root.display())))?;
    let capacity = fs.blocks() as u64 * fs.fragment_size() as u64;
    let available = fs.blocks_available() as u64 * fs.fragment_size() as u64;
    let images = k
        .images
        .list()
        .map_err(|e| Failure::Other(format!("listing images: {e}")))?;
    let in_use = images_in_use(&k.args.root_dir);
    // Every round notes new images and refreshes the last use of the used ones.
    let mut sizes: HashMap<String, (u64, Vec<String>)> = HashMap::new();
    for image in &images {
        let entry = sizes
            .entry(image.manifest_digest.clone())
            .or_insert((image.size, Vec::new()));
        entry.1.push(image.name.clone());
    }
    seen.retain(|digest, _| sizes.contains_key(digest));
    for (digest, (_, names)) in &sizes {
        let record = seen.entry(digest.clone()).or_insert(Seen {
            first_detected: now,
            last_used: None,
        });
        if in_use.contains(digest) || names.iter().any(|n| in_use.contains(n)) {
            record.last_used = Some(now);
        }
    }
    let Some(amount) = amount_to_free(capacity, available, policy) else {
        return Ok(None);
    };
    let candidates = choose(&sizes, seen, &in_use, policy.min_age, now);
    let mut freed = 0u64;
    for digest in candidates {
        if freed >= amount {
            break;
        }
        let (size, names) = &sizes[&digest];
        for name in names {
            tracing::info!(image = %name, size, "removing an unused image to free disk space");
            if let Err(e) = k.images.remove(name) {
                tracing::warn!(image = %name, "removing the image: {e}");
            }
        }
        seen.remove(&digest);
        freed += size;
    }
    if freed > 0 {
        k.images
            .gc()
            .map_err(|e| Failure::Other(format!("collecting image content: {e}")))?;
    }
    if freed < amount {
        return Err(Failure::NotEnough(format!(
            "Failed to garbage collect required amount of images. Attempted to free {amount} bytes, but only found {freed} bytes eligible to free."
        )));
    }
    Ok(Some(freed))
}

/// Bytes to free to get from usage ≥ high down to low; None below high.
fn amount_to_free(capacity: u64, available: u64, policy: Policy) -> Option<u64> {
    if capacity == 0 {
        return None;
    }
    let usage = 100 - (available.min(capacity) * 100 / capacity);
    if usage < policy.high as u64 {
        return None;
    }
    let target_available = capacity * (100 - policy.low as u64) / 100;
    Some(target_available.saturating_sub(available))
}

/// The images that may go, in the order they go: unused, old enough, least recently used
/// (never used first), then first detected.
fn choose(
    sizes: &HashMap<String, (u64, Vec<String>)>,
    seen: &HashMap<String, Seen>,
    in_use: &HashSet<String>,
    min_age: Duration,
    now: Instant,
) -> Vec<String> {
    let mut eligible: Vec<(&String, Seen)> = sizes
        .iter()
        .filter(|(digest, (_, names))| {
            !in_use.contains(*digest) && !names.iter().any(|n| in_use.contains(n))
        })
        .filter_map(|(digest, _)| seen.get(digest).map(|s| (digest, *s)))
        .filter(|(_, s)| now.saturating_duration_since(s.first_detected) >= min_age)
        .collect();
    eligible.sort_by_key(|(digest, s)| (s.last_used, s.first_detected, (*digest).clone()));
    eligible.into_iter().map(|(d, _)| d.clone()).collect()
}

/// Manifest digests and names of the images the kubelet's containers were made from.
fn images_in_use(root_dir: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    let Ok(entries) = std::fs::read_dir(root_dir.join("containers")) else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(bytes) = std::fs::read(entry.path().join("record.json")) else {
            continue;
        };
        let Ok(record) = serde_json::from_slice::<crate::pods::state::ContainerRecord>(&bytes)
        else {
            continue;
        };
        if let Some((_, digest)) = record.image_id.rsplit_once('@') {
            out.insert(digest.to_string());
        }
        out.insert(record.image_ref.clone());
        out.insert(record.image.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_as_upstream() {
        let policy = Policy {
            high: 85,
            low: 80,
            min_age: Duration::from_secs(120),
        };
        // 84 % used: nothing to do; 90 % used of 1000: down to 80 % = free 100.
        assert_eq!(amount_to_free(1000, 160, policy), None);
        assert_eq!(amount_to_free(1000, 100, policy), Some(100));
        assert_eq!(amount_to_free(0, 0, policy), None);
    }

    #[test]
    fn unused_old_enough_least_recently_used_first() {
        let now = Instant::now();
        let old = now - Duration::from_secs(600);
        let sizes: HashMap<String, (u64, Vec<String>)> = [
            ("sha256:a", "a:1"),
            ("sha256:b", "b:1"),
            ("sha256:c", "c:1"),
            ("sha256:d", "d:1"),
        ]
        .iter()
        .map(|(d, n)| (d.to_string(), (10, vec![n.to_string()])))
        .collect();
        let seen = HashMap::from([
            // used a minute ago
            (
                "sha256:a".to_string(),
                Seen {
                    first_detected: old,
                    last_used: Some(now - Duration::from_secs(60)),
                },
            ),
            // never used
            (
                "sha256:b".to_string(),
                Seen {
                    first_detected: old,
                    last_used: None,
                },
            ),
            // too young
            (
                "sha256:c".to_string(),
                Seen {
                    first_detected: now,
                    last_used: None,
                },
            ),
            // in use
            (
                "sha256:d".to_string(),
                Seen {
                    first_detected: old,
                    last_used: Some(now),
                },
            ),
        ]);
        let in_use = HashSet::from(["d:1".to_string()]);
        let order = choose(&sizes, &seen, &in_use, Duration::from_secs(120), now);
        assert_eq!(order, ["sha256:b", "sha256:a"]);
    }
}
