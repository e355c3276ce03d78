//! Token discovery (`k8s.io/cluster-bootstrap`, kubeadm's join): before a new node trusts the
//! API server, it reads the ConfigMap `kube-public/cluster-info` anonymously — a kubeconfig with
//! the server's address and the cluster CA — and believes it because the bootstrap signer
//! (the controller manager) put beside it `jws-kubeconfig-<token id>`, a detached JWS (HS256)
//! of that kubeconfig keyed with the secret half of a bootstrap token the node was given. A
//! pin of the CA's public key (`--discovery-token-ca-cert-hash sha256:<hex>`, the SHA-256 of
//! its SubjectPublicKeyInfo) guards against a signer that knows the token too.
//!
//! The signature is built as upstream's `jws.ComputeDetachedSignature` builds it (the
//! protected header `{"alg":"HS256","kid":"<id>"}` with its keys in Go's sorted order,
//! base64url without padding, the payload left out), so kubeadm's discovery should accept
//! skiff's and the reverse; the test checks it against an independent HMAC, not against
//! kubeadm (no kubeadm binary here).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};

pub const NAMESPACE: &str = "kube-public";
pub const NAME: &str = "cluster-info";
pub const KUBECONFIG_KEY: &str = "kubeconfig";
/// `jws-kubeconfig-<token id>`: a signature per bootstrap token allowed to sign.
pub const SIGNATURE_PREFIX: &str = "jws-kubeconfig-";
/// kubeadm's Role (and RoleBinding) that lets `system:anonymous` read the ConfigMap.
pub const ANONYMOUS_ROLE: &str = "kubeadm:bootstrap-signer-clusterinfo";

/// The kubeconfig `cluster-info` holds, as kubeadm writes it: one nameless cluster with the
/// server's URL and the CA, no users or contexts.
pub fn kubeconfig(server: &str, ca_pem: &str) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
        STANDARD.encode(ca_pem)
    )
}

/// `ComputeDetachedSignature`: `<header>..<signature>` of `content` with `token_secret` as
/// the HMAC-SHA256 key and `token_id` as the key id.
pub fn detached_signature(content: &str, token_id: &str, token_secret: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","kid":"{token_id}"}}"#));
    let payload = URL_SAFE_NO_PAD.encode(content);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token_secret.as_bytes());
    let signature = ring::hmac::sign(&key, format!("{header}.{payload}").as_bytes());
    format!("{header}..{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

/// `DetachedTokenIsValid`: whether `signature` is the one the token makes for `content`
/// (compared in constant time).
pub fn signature_is_valid(
    signature: &str,
    content: &str,
    token_id: &str,
    token_secret: &str,
) -> bool {
    let want = detached_signature(content, token_id, token_secret);
    super::bootstrap_token::constant_time_eq(want.as_bytes(), signature.as_bytes())
}

/// kubeadm's CA pin: `sha256:<hex>` of the first certificate's SubjectPublicKeyInfo (what
/// `openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum` prints).
pub fn ca_cert_hash(ca_pem: &str) -> Result<String, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
        .map_err(|e| format!("the CA is not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("the CA certificate does not parse: {e}"))?;
    let spki = cert.tbs_certificate.subject_pki.raw;
    Ok(format!("sha256:{:x}", Sha256::digest(spki)))
}

/// A kubeconfig's `certificate-authority-data` (base64 of PEM) as PEM text.
pub fn ca_pem_from_data(data: &str) -> Result<String, String> {
    let bytes = STANDARD
        .decode(data.trim())
        .map_err(|e| format!("certificate-authority-data is not base64: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "certificate-authority-data is not PEM text".to_string())
}

/// Every certificate of a PEM bundle, DER-encoded (what a TLS client's roots take).
pub fn certificates_der(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| format!("the CA bundle is not PEM: {e}"))?;
        out.push(block.contents);
    }
    if out.is_empty() {
        return Err("the CA bundle holds no certificate".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independent_hmac() {
        // Computed with Python's hmac and base64 modules from the same header and payload.
        let signature = detached_signature(
            "apiVersion: v1\nkind: Config\n",
            "abcdef",
            "0123456789abcdef",
        );
        assert_eq!(
            signature,
            "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..vH_kT4yiol-nrAWgjfCYqvum5wsKETXe0S7OOp1VgnE"
        );
        assert!(signature_is_valid(
            &signature,
            "apiVersion: v1\nkind: Config\n",
            "abcdef",
            "0123456789abcdef"
        ));
        // Another secret, another content: refused.
        assert!(!signature_is_valid(
            &signature,
            "apiVersion: v1\nkind: Config\n",
            "abcdef",
            "0123456789abcdeg"
        ));
        assert!(!signature_is_valid(
            &signature,
            "apiVersion: v1\nkind: Config\n ",
            "abcdef",
            "0123456789abcdef"
        ));
    }

    #[test]
    fn ca_hash_is_the_public_key_info_digest() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let want = format!("sha256:{:x}", Sha256::digest(spki));
        assert_eq!(ca_cert_hash(&cert.pem()).unwrap(), want);
        assert!(ca_cert_hash("not a certificate").is_err());
    }

    #[test]
    fn kubeconfig_carries_server_and_ca() {
        let text = kubeconfig("https://192.168.56.10:6443", "PEM");
        assert!(text.contains("    server: https://192.168.56.10:6443\n"));
        assert!(text.contains(&format!(
            "certificate-authority-data: {}",
            STANDARD.encode("PEM")
        )));
    }
}
