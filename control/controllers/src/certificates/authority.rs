//! The signing CA (upstream `pkg/controller/certificates/authority`): issues an X.509 v3
//! certificate for a parsed request under upstream's `PermissiveSigningPolicy` — the request's
//! subject (the attributes Go re-encodes, in Go's order) and DNS/IP/email/URI names, the key
//! usages the CSR asked for in `spec.usages`, no other extension of the request, CA:false,
//! NotBefore backdated 5 minutes, NotAfter = now + TTL (− 5 min for TTLs of 8 h or more), never
//! past the CA's own NotAfter.
//!
//! The certificate's DER is written here (a small encoder) rather than through rcgen, whose
//! distinguished names hold one value per attribute type: a client certificate may name several
//! groups (O). The CA key is an rcgen `KeyPair` (PKCS#8 PEM: ECDSA P-256/P-384, Ed25519, RSA).

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use rcgen::{PublicKeyData, SigningKey};

use super::request::{Name, Request};

/// Backdating of NotBefore (and of NotAfter for long-lived certificates), as upstream's signer.
pub const BACKDATE: Duration = Duration::from_secs(5 * 60);
/// Certificates shorter-lived than this keep their full TTL (no NotAfter backdating).
pub const SHORT: Duration = Duration::from_secs(8 * 3600);
/// The shortest certificate issued, whatever `spec.expirationSeconds` asks (2× the backdate).
pub const MIN_DURATION: Duration = Duration::from_secs(10 * 60);

/// The signer's TTL for a request: `spec.expirationSeconds` when given, within
/// [`MIN_DURATION`, `max`] (`--cluster-signing-duration`).
pub fn duration(expiration_seconds: Option<i32>, max: Duration) -> Duration {
    let Some(seconds) = expiration_seconds else {
        return max;
    };
    let requested = Duration::from_secs(seconds.max(0) as u64);
    if requested > max {
        max
    } else if requested < MIN_DURATION {
        MIN_DURATION
    } else {
        requested
    }
}

pub struct Authority {
    /// The CA certificate's subject, DER (the issuer of every certificate signed).
    subject: Vec<u8>,
    /// The CA's subject key identifier, if it has one (the certificates' authority key id).
    key_id: Option<Vec<u8>>,
    /// The CA's NotAfter, Unix seconds.
    not_after: i64,
    key: rcgen::KeyPair,
    /// The DER AlgorithmIdentifier of the key's signatures.
    signature_algorithm: &'static [u8],
    pub cert_pem: String,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn signature_algorithm(alg: &'static rcgen::SignatureAlgorithm) -> Option<&'static [u8]> {
    const ECDSA_SHA256: &[u8] = &[
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
    ];
    const ECDSA_SHA384: &[u8] = &[
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
    ];
    const ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];
    const RSA_SHA256: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
    ];
    const RSA_SHA384: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00,
    ];
    const RSA_SHA512: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00,
    ];
    let table: [(&rcgen::SignatureAlgorithm, &'static [u8]); 6] = [
        (&rcgen::PKCS_ECDSA_P256_SHA256, ECDSA_SHA256),
        (&rcgen::PKCS_ECDSA_P384_SHA384, ECDSA_SHA384),
        (&rcgen::PKCS_ED25519, ED25519),
        (&rcgen::PKCS_RSA_SHA256, RSA_SHA256),
        (&rcgen::PKCS_RSA_SHA384, RSA_SHA384),
        (&rcgen::PKCS_RSA_SHA512, RSA_SHA512),
    ];
    table
        .into_iter()
        .find(|(a, _)| *a == alg)
        .map(|(_, der)| der)
}

impl Authority {
    /// The CA from `--cluster-signing-cert-file` and `--cluster-signing-key-file`.
    pub fn load(cert_file: &Path, key_file: &Path) -> anyhow::Result<Authority> {
        let cert = std::fs::read_to_string(cert_file)
            .with_context(|| format!("reading {}", cert_file.display()))?;
        let key = std::fs::read_to_string(key_file)
            .with_context(|| format!("reading {}", key_file.display()))?;
        Authority::from_pem(&cert, &key).with_context(|| {
            format!(
                "loading the signing CA {} / {}",
                cert_file.display(),
                key_file.display()
            )
        })
    }

    /// The CA from its certificate (the first PEM block) and its PKCS#8 private key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> anyhow::Result<Authority> {
        let (_, block) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("no PEM certificate: {e}"))?;
        anyhow::ensure!(
            block.label == "CERTIFICATE",
            "expected a CERTIFICATE PEM block, found {:?}",
            block.label
        );
        let (_, cert) = x509_parser::parse_x509_certificate(&block.contents)
            .map_err(|e| anyhow::anyhow!("malformed CA certificate: {e}"))?;
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| {
            anyhow::anyhow!("the CA key must be a PKCS#8 PEM (\"PRIVATE KEY\") key: {e}")
        })?;
        anyhow::ensure!(
            key.der_bytes() == &cert.public_key().subject_public_key.data[..],
            "the CA key does not match the CA certificate"
        );
        let signature_algorithm = signature_algorithm(key.algorithm())
            .context("the CA key's algorithm is not supported for signing")?;
        let key_id = cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(id.0.to_vec())
                }
                _ => None,
            });
        Ok(Authority {
            subject: cert.subject().as_raw().to_vec(),
            key_id,
            not_after: cert.validity().not_after.timestamp(),
            key,
            signature_algorithm,
            cert_pem: cert_pem.to_string(),
        })
    }

    /// Signs `request` with `usages` (`spec.usages`) for `ttl` from `now` (Unix seconds): the
    /// certificate's DER.
    pub fn sign(
        &self,
        request: &Request,
        usages: &[String],
        ttl: Duration,
        now: i64,
    ) -> Result<Vec<u8>, String> {
        let (key_usage, ext_key_usages) = key_usages(usages)?;
        let not_before = now - BACKDATE.as_secs() as i64;
        let mut not_after = if ttl < SHORT {
            now + ttl.as_secs() as i64
        } else {
            now + ttl.as_secs() as i64 - BACKDATE.as_secs() as i64
        };
        if not_after >= self.not_after {
            not_after = self.not_after;
        }
        if not_before >= self.not_after {
            return Err(format!(
                "the signer has expired: NotAfter={}",
                time_text(self.not_after)
            ));
        }
        if now >= self.not_after {
            return Err(format!(
                "refusing to sign a certificate that expired in the past: NotAfter={}",
                time_text(self.not_after)
            ));
        }

        let mut extensions = Vec::new();
        if key_usage != 0 {
            extensions.push(extension(OID_KEY_USAGE, true, &key_usage_bits(key_usage)));
        }
        if !ext_key_usages.is_empty() {
            let oids: Vec<Vec<u8>> = ext_key_usages.iter().map(|(_, oid)| der_oid(oid)).collect();
            extensions.push(extension(OID_EXT_KEY_USAGE, false, &sequence(&oids)));
        }
        // BasicConstraints CA:false (the default, so an empty sequence), critical.
        extensions.push(extension(OID_BASIC_CONSTRAINTS, true, &sequence(&[])));
        if let Some(id) = &self.key_id {
            let value = sequence(&[tlv(0x80, id)]);
            extensions.push(extension(OID_AUTHORITY_KEY_ID, false, &value));
        }
        let subject = encode_name(&request.subject);
        if let Some(names) = subject_alt_names(request) {
            // Critical when the subject is empty (RFC 5280 4.2.1.6), as Go marks it.
            let empty = subject == sequence(&[]);
            extensions.push(extension(OID_SUBJECT_ALT_NAME, empty, &names));
        }

        let tbs = sequence(&[
            tlv(0xa0, &integer(&[2])),
            integer(&serial_number()),
            self.signature_algorithm.to_vec(),
            self.subject.clone(),
            sequence(&[time(not_before), time(not_after)]),
            subject,
            request.public_key_info.clone(),
            tlv(0xa3, &sequence(&extensions)),
        ]);
        let signature = self
            .key
            .sign(&tbs)
            .map_err(|e| format!("failed to sign certificate: {e}"))?;
        let mut bits = vec![0u8];
        bits.extend_from_slice(&signature);
        Ok(sequence(&[
            tbs,
            self.signature_algorithm.to_vec(),
            tlv(0x03, &bits),
        ]))
    }
}

/// PEM of one certificate.
pub fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn time_text(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| seconds.to_string())
}

const OID_KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const OID_EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
const OID_BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const OID_SUBJECT_ALT_NAME: &[u64] = &[2, 5, 29, 17];
const OID_AUTHORITY_KEY_ID: &[u64] = &[2, 5, 29, 35];

/// Upstream's `keyUsagesFromStrings`: the KeyUsage bits (bit n = RFC 5280's named bit n) and the
/// extended key usages, in Go's `ExtKeyUsage` order (its sort key, then the OID).
#[allow(clippy::type_complexity)]
fn key_usages(usages: &[String]) -> Result<(u16, Vec<(u8, &'static [u64])>), String> {
    let mut bits = 0u16;
    let mut extended: Vec<(u8, &'static [u64])> = Vec::new();
    let mut unrecognized = Vec::new();
    for usage in usages {
        let bit = match usage.as_str() {
            "signing" | "digital signature" => Some(0),
            "content commitment" => Some(1),
            "key encipherment" => Some(2),
            "data encipherment" => Some(3),
            "key agreement" => Some(4),
            "cert sign" => Some(5),
            "crl sign" => Some(6),
            "encipher only" => Some(7),
            "decipher only" => Some(8),
            _ => None,
        };
        if let Some(bit) = bit {
            bits |= 1 << bit;
            continue;
        }
        let eku: Option<(u8, &'static [u64])> = match usage.as_str() {
            "any" => Some((0, &[2, 5, 29, 37, 0])),
            "server auth" => Some((1, &[1, 3, 6, 1, 5, 5, 7, 3, 1])),
            "client auth" => Some((2, &[1, 3, 6, 1, 5, 5, 7, 3, 2])),
            "code signing" => Some((3, &[1, 3, 6, 1, 5, 5, 7, 3, 3])),
            "email protection" | "s/mime" => Some((4, &[1, 3, 6, 1, 5, 5, 7, 3, 4])),
            "ipsec end system" => Some((5, &[1, 3, 6, 1, 5, 5, 7, 3, 5])),
            "ipsec tunnel" => Some((6, &[1, 3, 6, 1, 5, 5, 7, 3, 6])),
            "ipsec user" => Some((7, &[1, 3, 6, 1, 5, 5, 7, 3, 7])),
            "timestamping" => Some((8, &[1, 3, 6, 1, 5, 5, 7, 3, 8])),
            "ocsp signing" => Some((9, &[1, 3, 6, 1, 5, 5, 7, 3, 9])),
            "microsoft sgc" => Some((10, &[1, 3, 6, 1, 4, 1, 311, 10, 3, 3])),
            "netscape sgc" => Some((11, &[2, 16, 840, 1, 113730, 4, 1])),
            _ => None,
        };
        match eku {
            Some(eku) if !extended.contains(&eku) => extended.push(eku),
            Some(_) => {}
            None => unrecognized.push(format!("{usage:?}")),
        }
    }
    if !unrecognized.is_empty() {
        return Err(format!(
            "unrecognized usage values: [{}]",
            unrecognized.join(" ")
        ));
    }
    extended.sort_unstable();
    Ok((bits, extended))
}

/// The KeyUsage BIT STRING: named bit n is bit 7 − n % 8 of byte n / 8; no trailing zero bits.
fn key_usage_bits(bits: u16) -> Vec<u8> {
    let len = 16 - bits.leading_zeros() as usize;
    let bytes = len.div_ceil(8);
    let mut content = vec![(bytes * 8 - len) as u8];
    content.extend((0..bytes).map(|byte| {
        (0..8).fold(0u8, |acc, bit| {
            let n = byte * 8 + bit;
            if bits & (1 << n) != 0 {
                acc | (0x80 >> bit)
            } else {
                acc
            }
        })
    }));
    tlv(0x03, &content)
}

fn subject_alt_names(request: &Request) -> Option<Vec<u8>> {
    let mut names = Vec::new();
    names.extend(request.dns_names.iter().map(|n| tlv(0x82, n.as_bytes())));
    names.extend(
        request
            .email_addresses
            .iter()
            .map(|n| tlv(0x81, n.as_bytes())),
    );
    names.extend(request.ip_addresses.iter().map(|ip| tlv(0x87, ip)));
    names.extend(request.uris.iter().map(|n| tlv(0x86, n.as_bytes())));
    (!names.is_empty()).then(|| sequence(&names))
}

/// Go's `pkix.Name.ToRDNSequence` order: C, ST, L, street, postal code, O, OU, CN, serial
/// number; one attribute per RDN.
fn encode_name(name: &Name) -> Vec<u8> {
    let mut rdns = Vec::new();
    let mut add = |oid: &[u64], values: &[String]| {
        for value in values.iter().filter(|v| !v.is_empty()) {
            let attribute = sequence(&[der_oid(oid), directory_string(value)]);
            rdns.push(tlv(0x31, &attribute));
        }
    };
    add(&[2, 5, 4, 6], &name.country);
    add(&[2, 5, 4, 8], &name.province);
    add(&[2, 5, 4, 7], &name.locality);
    add(&[2, 5, 4, 9], &name.street_address);
    add(&[2, 5, 4, 17], &name.postal_code);
    add(&[2, 5, 4, 10], &name.organization);
    add(&[2, 5, 4, 11], &name.organizational_unit);
    add(&[2, 5, 4, 3], std::slice::from_ref(&name.common_name));
    add(&[2, 5, 4, 5], std::slice::from_ref(&name.serial_number));
    sequence(&rdns)
}

/// PrintableString when every character allows it, else UTF8String, as Go marshals strings.
fn directory_string(value: &str) -> Vec<u8> {
    let printable = value
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&c));
    tlv(if printable { 0x13 } else { 0x0c }, value.as_bytes())
}

fn extension(oid: &[u64], critical: bool, value: &[u8]) -> Vec<u8> {
    let mut parts = vec![der_oid(oid)];
    if critical {
        parts.push(vec![0x01, 0x01, 0xff]);
    }
    parts.push(tlv(0x04, value));
    sequence(&parts)
}

/// A positive serial number below 2^128, as upstream's.
fn serial_number() -> Vec<u8> {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if trimmed.is_empty() {
        vec![1]
    } else {
        trimmed
    }
}

/// A DER INTEGER from big-endian magnitude bytes (non-negative).
fn integer(magnitude: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(magnitude.len() + 1);
    if magnitude.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(magnitude);
    tlv(0x02, &content)
}

/// UTCTime for 1950–2049, GeneralizedTime otherwise (RFC 5280 4.1.2.5).
fn time(seconds: i64) -> Vec<u8> {
    let t = jiff::Timestamp::from_second(seconds).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let year = t.to_zoned(jiff::tz::TimeZone::UTC).year();
    if (1950..2050).contains(&year) {
        tlv(0x17, t.strftime("%y%m%d%H%M%SZ").to_string().as_bytes())
    } else {
        tlv(0x18, t.strftime("%Y%m%d%H%M%SZ").to_string().as_bytes())
    }
}

fn der_oid(components: &[u64]) -> Vec<u8> {
    let mut content = Vec::new();
    let mut push = |mut v: u64| {
        let mut chunk = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            chunk.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        chunk.reverse();
        content.extend(chunk);
    };
    push(components[0] * 40 + components[1]);
    for &c in &components[2..] {
        push(c);
    }
    tlv(0x06, &content)
}

fn sequence(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificates::request::{self, tests::csr};
    use rcgen::{CertificateParams, DnType, IsCa, KeyPair, SanType};
    use x509_parser::extensions::ParsedExtension;

    fn ca(alg: &'static rcgen::SignatureAlgorithm, not_after: i32) -> (String, String) {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "skiff-ca");
        params.not_after = rcgen::date_time_ymd(not_after, 1, 1);
        params.key_identifier_method = rcgen::KeyIdMethod::Sha256;
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    const NOW: i64 = 1_900_000_000; // 2030-03-17

    #[test]
    fn signed_certificate_chains_to_the_ca_with_the_right_validity() {
        for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ED25519] {
            let (ca_pem, ca_key) = ca(alg, 2036);
            let authority = Authority::from_pem(&ca_pem, &ca_key).unwrap();
            let (pem, _) = csr("system:node:worker", Some("system:nodes"), vec![]);
            let req = request::parse(pem.as_bytes()).unwrap();
            let usages = strings(&["digital signature", "client auth"]);
            let ttl = duration(None, Duration::from_secs(365 * 86400));
            let der = authority.sign(&req, &usages, ttl, NOW).unwrap();

            let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
            let (_, ca_block) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes()).unwrap();
            let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_block.contents).unwrap();
            cert.verify_signature(Some(ca_cert.public_key())).unwrap();
            assert_eq!(cert.issuer(), ca_cert.subject());
            assert_eq!(cert.version(), x509_parser::x509::X509Version::V3);
            let cn: Vec<_> = cert
                .subject()
                .iter_common_name()
                .map(|a| a.as_str().unwrap())
                .collect();
            assert_eq!(cn, ["system:node:worker"]);
            let o: Vec<_> = cert
                .subject()
                .iter_organization()
                .map(|a| a.as_str().unwrap())
                .collect();
            assert_eq!(o, ["system:nodes"]);
            assert_eq!(cert.validity().not_before.timestamp(), NOW - 300);
            assert_eq!(
                cert.validity().not_after.timestamp(),
                NOW + 365 * 86400 - 300
            );
            assert_eq!(cert.public_key().raw, &req.public_key_info[..]);
            let mut saw = Vec::new();
            for ext in cert.extensions() {
                match ext.parsed_extension() {
                    ParsedExtension::KeyUsage(ku) => {
                        assert!(ext.critical);
                        assert!(ku.digital_signature() && !ku.key_encipherment());
                        saw.push("ku");
                    }
                    ParsedExtension::ExtendedKeyUsage(eku) => {
                        assert!(eku.client_auth && !eku.server_auth);
                        saw.push("eku");
                    }
                    ParsedExtension::BasicConstraints(bc) => {
                        assert!(!bc.ca && ext.critical);
                        saw.push("bc");
                    }
                    ParsedExtension::AuthorityKeyIdentifier(_) => saw.push("akid"),
                    other => panic!("unexpected extension {other:?}"),
                }
            }
            assert_eq!(saw, ["ku", "eku", "bc", "akid"]);
        }
    }

    #[test]
    fn short_lived_certificates_keep_their_full_ttl_and_end_with_the_ca() {
        let (ca_pem, ca_key) = ca(&rcgen::PKCS_ECDSA_P256_SHA256, 2031);
        let authority = Authority::from_pem(&ca_pem, &ca_key).unwrap();
        let (pem, _) = csr(
            "system:node:w",
            Some("system:nodes"),
            vec![
                SanType::DnsName("w".try_into().unwrap()),
                SanType::IpAddress("192.168.56.11".parse().unwrap()),
            ],
        );
        let req = request::parse(pem.as_bytes()).unwrap();
        let usages = strings(&["digital signature", "server auth"]);
        let max = Duration::from_secs(365 * 86400);
        let der = authority
            .sign(&req, &usages, duration(Some(3600), max), NOW)
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(cert.validity().not_after.timestamp(), NOW + 3600);
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 2);
        assert!(!san.critical);
        // Longer than the CA lives: cut at its NotAfter.
        let der = authority.sign(&req, &usages, max, NOW).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let ca_end = jiff::Timestamp::from_second(cert.validity().not_after.timestamp()).unwrap();
        assert_eq!(ca_end.to_string(), "2031-01-01T00:00:00Z");
        // An expired CA signs nothing.
        let later = 1_950_000_000;
        assert!(authority.sign(&req, &usages, max, later).is_err());
        // Unknown usages are refused.
        assert_eq!(
            authority.sign(&req, &strings(&["frobnicate"]), max, NOW),
            Err("unrecognized usage values: [\"frobnicate\"]".into())
        );
    }

    #[test]
    fn requested_durations_are_bounded() {
        let max = Duration::from_secs(86400);
        assert_eq!(duration(None, max), max);
        assert_eq!(duration(Some(600), max), Duration::from_secs(600));
        assert_eq!(duration(Some(60), max), MIN_DURATION);
        assert_eq!(duration(Some(7200), max), Duration::from_secs(7200));
        assert_eq!(duration(Some(10 * 86400), max), max);
    }

    #[test]
    fn several_organizations_survive_signing() {
        // rcgen's requests hold one O: build the subject by hand.
        let (pem, _) = csr("jane", Some("a"), vec![]);
        let mut req = request::parse(pem.as_bytes()).unwrap();
        req.subject.organization = strings(&["system:masters", "dev team"]);
        let (ca_pem, ca_key) = ca(&rcgen::PKCS_ECDSA_P256_SHA256, 2036);
        let authority = Authority::from_pem(&ca_pem, &ca_key).unwrap();
        let der = authority
            .sign(
                &req,
                &strings(&["client auth"]),
                Duration::from_secs(3600),
                NOW,
            )
            .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let o: Vec<_> = cert
            .subject()
            .iter_organization()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(o, ["system:masters", "dev team"]);
        // No KeyUsage extension when no key usage was asked for.
        assert!(cert.key_usage().unwrap().is_none());
    }

    #[test]
    fn the_api_servers_verifier_accepts_a_kubelet_client_certificate() {
        use rustls::pki_types::{CertificateDer, UnixTime};
        let (ca_pem, ca_key) = ca(&rcgen::PKCS_ECDSA_P256_SHA256, 2036);
        let authority = Authority::from_pem(&ca_pem, &ca_key).unwrap();
        let (pem, _) = csr("system:node:w", Some("system:nodes"), vec![]);
        let req = request::parse(pem.as_bytes()).unwrap();
        let now = jiff::Timestamp::now().as_second();
        let sign = |usages: &[&str]| {
            authority
                .sign(&req, &strings(usages), Duration::from_secs(3600), now)
                .unwrap()
        };
        let (_, block) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(block.contents)).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let client = sign(&["digital signature", "client auth"]);
        verifier
            .verify_client_cert(&CertificateDer::from(client), &[], UnixTime::now())
            .unwrap();
        // A serving certificate is no client certificate.
        let serving = sign(&["digital signature", "server auth"]);
        assert!(verifier
            .verify_client_cert(&CertificateDer::from(serving), &[], UnixTime::now())
            .is_err());
    }

    #[test]
    fn mismatched_key_is_refused() {
        let (ca_pem, _) = ca(&rcgen::PKCS_ECDSA_P256_SHA256, 2036);
        let other = KeyPair::generate().unwrap().serialize_pem();
        assert!(Authority::from_pem(&ca_pem, &other).is_err());
    }

    #[test]
    fn der_helpers() {
        assert_eq!(
            der_oid(&[1, 2, 840, 113549, 1, 1, 11]),
            [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]
        );
        assert_eq!(integer(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(tlv(0x04, &[0; 200])[..3], [0x04, 0x81, 200]);
        // digitalSignature | keyEncipherment → 0b101 → 05 a0.
        assert_eq!(key_usage_bits(0b101), [0x03, 0x02, 0x05, 0xa0]);
        // decipherOnly (bit 8) → two bytes.
        assert_eq!(key_usage_bits(1 << 8), [0x03, 0x03, 0x07, 0x00, 0x80]);
    }
}
