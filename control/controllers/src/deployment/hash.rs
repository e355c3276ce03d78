//! The `pod-template-hash` (upstream `controller.ComputeHash`): FNV-32a over the pod template,
//! then over `status.collisionCount` (as 8 bytes, its 4 low bytes little-endian), the 32-bit sum
//! printed in decimal and each digit mapped through `rand.SafeEncodeString`'s alphabet
//! ("bcdfghjklmnpqrstvwxz2456789", so only `4-9bcdf` occur). The ReplicaSet is named
//! `<deployment>-<hash>` and the label goes on its selector, labels and template, which keeps
//! the pods of two revisions apart.
//!
//! Upstream feeds the hash a Go deep-print of the template; skiff feeds it the template's JSON
//! (a stable serialization too). The names therefore differ from upstream's for the same
//! template, which nothing depends on: kubectl never recomputes the hash, it reads the label.

use k8s_openapi::api::core::v1::PodTemplateSpec;

pub const LABEL: &str = "pod-template-hash";

const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

pub fn fnv32a(mut hash: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// `rand.SafeEncodeString`: each byte mapped into an alphabet without vowels (no words) and
/// without look-alike characters.
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

pub fn hash_bytes(template_bytes: &[u8], collision_count: Option<i32>) -> String {
    let mut hash = fnv32a(FNV_OFFSET, template_bytes);
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        hash = fnv32a(hash, &bytes);
    }
    safe_encode(&hash.to_string())
}

pub fn compute(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    // Serializing a k8s-openapi type cannot fail (no maps with non-string keys).
    let bytes = serde_json::to_vec(template).unwrap_or_default();
    hash_bytes(&bytes, collision_count)
}

/// Upstream `EqualIgnoreHash`: the templates are equal once the hash label is removed.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    fn without(t: &PodTemplateSpec) -> PodTemplateSpec {
        let mut t = t.clone();
        if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            labels.remove(LABEL);
        }
        t
    }
    without(a) == without(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn fnv32a_reference_vectors() {
        // Reference values of FNV-1a 32 (the spec's test suite).
        assert_eq!(fnv32a(FNV_OFFSET, b""), 0x811c9dc5);
        assert_eq!(fnv32a(FNV_OFFSET, b"a"), 0xe40c292c);
        assert_eq!(fnv32a(FNV_OFFSET, b"foobar"), 0xbf9cf968);
    }

    #[test]
    fn encoding_uses_upstream_alphabet() {
        // Digits 0-9 are bytes 48-57: 48 % 27 = 21 → '4' … 57 % 27 = 3 → 'f'.
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
        let hash = hash_bytes(b"{}", None);
        assert!(hash.chars().all(|c| "456789bcdf".contains(c)), "{hash}");
        assert_ne!(
            hash,
            hash_bytes(b"{}", Some(1)),
            "collisions change the hash"
        );
        assert_eq!(hash, hash_bytes(b"{}", None), "stable");
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let mut a = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..ObjectMeta::default()
            }),
            spec: None,
        };
        let b = a.clone();
        a.metadata
            .as_mut()
            .and_then(|m| m.labels.as_mut())
            .expect("labels")
            .insert(LABEL.into(), "abc".into());
        assert!(equal_ignore_hash(&a, &b));
        assert_ne!(compute(&b, None), compute(&b, Some(1)));
    }
}
