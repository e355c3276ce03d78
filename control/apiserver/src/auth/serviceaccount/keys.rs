//! The keys service-account tokens are signed and verified with (upstream
//! `pkg/serviceaccount/jwt.go` and `keyutil`): PEM files holding private keys (PKCS#8, SEC1
//! `EC PRIVATE KEY`, PKCS#1 `RSA PRIVATE KEY`), public keys (`PUBLIC KEY`, `RSA PUBLIC KEY`) or
//! certificates; the key ID (base64url of the SHA-256 of the public key's PKIX DER, as upstream
//! derives it); and the public keys as JSON Web Keys for `/openid/v1/jwks`.
//!
//! Algorithms: RS256 for RSA keys, ES256 and ES384 for P-256 and P-384 keys (upstream's set
//! except ES512, which the JWS library has not). The key a new cluster creates is P-256
//! (`generate`): ring — already in the build for TLS — makes one in microseconds, while RSA key
//! generation would need another crypto crate.
//!
//! DER is read and written by the few lines at the bottom: only SEQUENCE, INTEGER, OCTET
//! STRING, BIT STRING, OID and context tags are needed.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, KeyError> {
    Err(KeyError(message.into()))
}

// Object identifiers, as their DER contents.
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

impl Curve {
    fn from_oid(oid: &[u8]) -> Result<Curve, KeyError> {
        match oid {
            OID_P256 => Ok(Curve::P256),
            OID_P384 => Ok(Curve::P384),
            _ => err("unsupported elliptic curve: P-256 and P-384 keys are supported"),
        }
    }
    fn oid(self) -> &'static [u8] {
        match self {
            Curve::P256 => OID_P256,
            Curve::P384 => OID_P384,
        }
    }
    fn coordinate_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Material {
    /// Modulus and public exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The affine coordinates, each the curve's field size.
    Ec {
        curve: Curve,
        x: Vec<u8>,
        y: Vec<u8>,
    },
}

/// A key that verifies tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// Upstream's key ID: base64url(SHA-256(PKIX DER)).
    pub kid: String,
    material: Material,
}

impl PublicKey {
    fn new(material: Material) -> PublicKey {
        let mut key = PublicKey {
            kid: String::new(),
            material,
        };
        key.kid = URL_SAFE_NO_PAD.encode(Sha256::digest(key.spki_der()));
        key
    }

    pub fn algorithm(&self) -> Algorithm {
        match &self.material {
            Material::Rsa { .. } => Algorithm::RS256,
            Material::Ec {
                curve: Curve::P256, ..
            } => Algorithm::ES256,
            Material::Ec {
                curve: Curve::P384, ..
            } => Algorithm::ES384,
        }
    }

    /// The algorithm's JOSE name (`RS256`, `ES256`, `ES384`).
    pub fn algorithm_name(&self) -> &'static str {
        match self.algorithm() {
            Algorithm::RS256 => "RS256",
            Algorithm::ES384 => "ES384",
            _ => "ES256",
        }
    }

    /// The SubjectPublicKeyInfo DER (Go's `x509.MarshalPKIXPublicKey`).
    pub fn spki_der(&self) -> Vec<u8> {
        match &self.material {
            Material::Rsa { n, e } => {
                let algorithm = tlv(0x30, &[tlv(0x06, OID_RSA), tlv(0x05, &[])].concat());
                let key = tlv(0x30, &[der_uint(n), der_uint(e)].concat());
                tlv(0x30, &[algorithm, bit_string(&key)].concat())
            }
            Material::Ec { curve, x, y } => {
                let algorithm = tlv(0x30, &[tlv(0x06, OID_EC), tlv(0x06, curve.oid())].concat());
                let point = [&[0x04][..], x, y].concat();
                tlv(0x30, &[algorithm, bit_string(&point)].concat())
            }
        }
    }

    /// The key as a PEM `PUBLIC KEY`.
    pub fn to_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.spki_der())
    }

    /// The JSON Web Key published at `/openid/v1/jwks`.
    pub fn jwk(&self) -> Value {
        match &self.material {
            Material::Rsa { n, e } => json!({
                "use": "sig", "kty": "RSA", "kid": self.kid, "alg": "RS256",
                "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e),
            }),
            Material::Ec { curve, x, y } => json!({
                "use": "sig", "kty": "EC", "kid": self.kid, "crv": curve.name(),
                "alg": self.algorithm_name(),
                "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
            }),
        }
    }

    pub(crate) fn decoding_key(&self) -> DecodingKey {
        match &self.material {
            Material::Rsa { n, e } => DecodingKey::from_rsa_raw_components(n, e),
            // ring takes the uncompressed SEC1 point.
            Material::Ec { x, y, .. } => DecodingKey::from_ec_der(&[&[0x04][..], x, y].concat()),
        }
    }
}

/// The private key tokens are signed with, and its public half.
pub struct SigningKey {
    pub public: PublicKey,
    encoding: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKey({} {})",
            self.public.algorithm_name(),
            self.public.kid
        )
    }
}

impl SigningKey {
    /// A new P-256 key; also returns it as a PKCS#8 PEM `PRIVATE KEY`.
    pub fn generate() -> Result<(SigningKey, String), KeyError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| KeyError(format!("generating a P-256 key: {e}")))?;
        let pem = pair.serialize_pem();
        Ok((SigningKey::from_pkcs8(&pair.serialize_der())?, pem))
    }

    /// The first private key in a PEM text.
    pub fn from_pem(text: &str) -> Result<SigningKey, KeyError> {
        for (label, der) in pem_blocks(text)? {
            match label.as_str() {
                "PRIVATE KEY" => return SigningKey::from_pkcs8(&der),
                "EC PRIVATE KEY" => return SigningKey::from_sec1(&der, None),
                "RSA PRIVATE KEY" => return SigningKey::from_pkcs1(&der),
                _ => {}
            }
        }
        err("no private key (PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY) in the PEM data")
    }

    pub fn from_file(path: &Path) -> Result<SigningKey, KeyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeyError(format!("reading {}: {e}", path.display())))?;
        SigningKey::from_pem(&text).map_err(|e| KeyError(format!("{}: {}", path.display(), e.0)))
    }

    fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
        let mut outer = Der::new(der);
        let mut info = Der::new(outer.expect(0x30)?);
        info.expect(0x02)?; // version
        let mut algorithm = Der::new(info.expect(0x30)?);
        let oid = algorithm.expect(0x06)?;
        let key = info.expect(0x04)?;
        match oid {
            OID_RSA => SigningKey::from_pkcs1(key),
            OID_EC => {
                let curve = Curve::from_oid(algorithm.expect(0x06)?)?;
                SigningKey::from_sec1(key, Some((curve, der)))
            }
            _ => err("unsupported private key algorithm: RSA and ECDSA keys are supported"),
        }
    }

    /// A SEC1 `ECPrivateKey`; `pkcs8` is the PKCS#8 document it came in, if any (ring signs
    /// with PKCS#8, so a bare SEC1 key is wrapped in one).
    fn from_sec1(der: &[u8], pkcs8: Option<(Curve, &[u8])>) -> Result<SigningKey, KeyError> {
        let mut outer = Der::new(der);
        let mut key = Der::new(outer.expect(0x30)?);
        key.expect(0x02)?; // version 1
        key.expect(0x04)?; // the private scalar
        let mut curve = pkcs8.map(|(c, _)| c);
        let mut point = None;
        while !key.is_empty() {
            let (tag, content) = key.read()?;
            match tag {
                0xa0 => {
                    let named = Curve::from_oid(Der::new(content).expect(0x06)?)?;
                    if curve.is_some_and(|c| c != named) {
                        return err("the EC key's curve does not match its algorithm");
                    }
                    curve = Some(named);
                }
                0xa1 => point = Some(bit_string_content(Der::new(content).expect(0x03)?)?),
                _ => {}
            }
        }
        let Some(point) = point else {
            return err("the EC private key does not include its public key");
        };
        // Without parameters the curve is the one the point's size says.
        let curve = match (curve, point.len()) {
            (Some(curve), _) => curve,
            (None, 65) => Curve::P256,
            (None, 97) => Curve::P384,
            (None, _) => return err("the EC private key does not name its curve"),
        };
        let public = PublicKey::new(ec_material(curve, point)?);
        let pkcs8 = match pkcs8 {
            Some((_, document)) => document.to_vec(),
            None => {
                let algorithm = tlv(0x30, &[tlv(0x06, OID_EC), tlv(0x06, curve.oid())].concat());
                tlv(0x30, &[tlv(0x02, &[0]), algorithm, tlv(0x04, der)].concat())
            }
        };
        SigningKey {
            public,
            encoding: EncodingKey::from_ec_der(&pkcs8),
        }
        .checked()
    }

    /// A PKCS#1 `RSAPrivateKey`.
    fn from_pkcs1(der: &[u8]) -> Result<SigningKey, KeyError> {
        let mut outer = Der::new(der);
        let mut key = Der::new(outer.expect(0x30)?);
        key.expect(0x02)?; // version
        let n = unsigned(key.expect(0x02)?);
        let e = unsigned(key.expect(0x02)?);
        SigningKey {
            public: PublicKey::new(Material::Rsa { n, e }),
            encoding: EncodingKey::from_rsa_der(der),
        }
        .checked()
    }

    /// A key that cannot sign, or whose public half does not verify, is refused at load time
    /// rather than on the first token request.
    fn checked(self) -> Result<SigningKey, KeyError> {
        let header = jsonwebtoken::Header::new(self.public.algorithm());
        let probe = json!({"probe": true});
        let token = jsonwebtoken::encode(&header, &probe, &self.encoding)
            .map_err(|e| KeyError(format!("the private key cannot sign: {e}")))?;
        let mut validation = jsonwebtoken::Validation::new(self.public.algorithm());
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        jsonwebtoken::decode::<Value>(&token, &self.public.decoding_key(), &validation).map_err(
            |e| {
                KeyError(format!(
                    "the private key does not match its public key: {e}"
                ))
            },
        )?;
        Ok(self)
    }

    /// Signs `claims` as a compact JWS with upstream's header (`alg`, `kid`; no `typ`).
    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let mut header = jsonwebtoken::Header::new(self.public.algorithm());
        header.typ = None;
        header.kid = Some(self.public.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| KeyError(format!("signing a token: {e}")))
    }
}

/// Every public key in a PEM text: public keys, certificates' keys, and the public halves of
/// private keys (upstream's `keyutil.PublicKeysFromFile` takes all of these).
pub fn public_keys_from_pem(text: &str) -> Result<Vec<PublicKey>, KeyError> {
    let mut keys = Vec::new();
    for (label, der) in pem_blocks(text)? {
        let key = match label.as_str() {
            "PUBLIC KEY" => public_from_spki(&der)?,
            "RSA PUBLIC KEY" => {
                let mut outer = Der::new(&der);
                let mut key = Der::new(outer.expect(0x30)?);
                let n = unsigned(key.expect(0x02)?);
                let e = unsigned(key.expect(0x02)?);
                PublicKey::new(Material::Rsa { n, e })
            }
            "CERTIFICATE" => public_from_certificate(&der)?,
            "PRIVATE KEY" => SigningKey::from_pkcs8(&der)?.public,
            "EC PRIVATE KEY" => SigningKey::from_sec1(&der, None)?.public,
            "RSA PRIVATE KEY" => SigningKey::from_pkcs1(&der)?.public,
            _ => continue,
        };
        keys.push(key);
    }
    if keys.is_empty() {
        return err("no public key, certificate or private key in the PEM data");
    }
    Ok(keys)
}

pub fn public_keys_from_file(path: &Path) -> Result<Vec<PublicKey>, KeyError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| KeyError(format!("reading {}: {e}", path.display())))?;
    public_keys_from_pem(&text).map_err(|e| KeyError(format!("{}: {}", path.display(), e.0)))
}

/// `<tls>/sa.key` (and `sa.pub`), created on first start: the key this cluster's tokens are
/// signed with. Returns the private key's path.
pub fn ensure_signing_key(tls_dir: &Path) -> anyhow::Result<PathBuf> {
    let private = tls_dir.join("sa.key");
    if private.exists() {
        return Ok(private);
    }
    std::fs::create_dir_all(tls_dir)?;
    let (key, pem) = SigningKey::generate()?;
    crate::tls::write_private(&tls_dir.join("sa.pub"), &key.public.to_pem())?;
    crate::tls::write_private(&private, &pem)?;
    Ok(private)
}

fn public_from_spki(der: &[u8]) -> Result<PublicKey, KeyError> {
    let mut outer = Der::new(der);
    public_from_spki_content(outer.expect(0x30)?)
}

fn public_from_spki_content(content: &[u8]) -> Result<PublicKey, KeyError> {
    let mut spki = Der::new(content);
    let mut algorithm = Der::new(spki.expect(0x30)?);
    let oid = algorithm.expect(0x06)?;
    let key = bit_string_content(spki.expect(0x03)?)?;
    match oid {
        OID_RSA => {
            let mut outer = Der::new(key);
            let mut rsa = Der::new(outer.expect(0x30)?);
            let n = unsigned(rsa.expect(0x02)?);
            let e = unsigned(rsa.expect(0x02)?);
            Ok(PublicKey::new(Material::Rsa { n, e }))
        }
        OID_EC => {
            let curve = Curve::from_oid(algorithm.expect(0x06)?)?;
            Ok(PublicKey::new(ec_material(curve, key)?))
        }
        _ => err("unsupported public key algorithm: RSA and ECDSA keys are supported"),
    }
}

/// The subject public key of an X.509 certificate.
fn public_from_certificate(der: &[u8]) -> Result<PublicKey, KeyError> {
    let mut outer = Der::new(der);
    let mut certificate = Der::new(outer.expect(0x30)?);
    let mut tbs = Der::new(certificate.expect(0x30)?);
    if tbs.peek() == Some(0xa0) {
        tbs.read()?; // version
    }
    tbs.expect(0x02)?; // serial number
    for _ in 0..4 {
        tbs.expect(0x30)?; // signature algorithm, issuer, validity, subject
    }
    public_from_spki_content(tbs.expect(0x30)?)
}

fn ec_material(curve: Curve, point: &[u8]) -> Result<Material, KeyError> {
    let size = curve.coordinate_len();
    if point.len() != 1 + 2 * size || point[0] != 0x04 {
        return err("the EC public key is not an uncompressed point");
    }
    Ok(Material::Ec {
        curve,
        x: point[1..1 + size].to_vec(),
        y: point[1 + size..].to_vec(),
    })
}

// ---------------------------------------------------------------- PEM

/// The blocks of a PEM text: (label, decoded body).
fn pem_blocks(text: &str) -> Result<Vec<(String, Vec<u8>)>, KeyError> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            // Encapsulated headers (`Proc-Type:`) mark encrypted keys, which are not supported.
            if line.contains(':') {
                return err(format!("the PEM block {label} is encrypted or has headers"));
            }
            body.push_str(line);
        }
        if !closed {
            return err(format!("the PEM block {label} has no END line"));
        }
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|e| KeyError(format!("the PEM block {label} is not base64: {e}")))?;
        blocks.push((label.to_string(), der));
    }
    Ok(blocks)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

// ---------------------------------------------------------------- DER

/// A reader over a DER sequence's contents.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Der<'a> {
        Der { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next element: (tag, contents).
    fn read(&mut self) -> Result<(u8, &'a [u8]), KeyError> {
        let malformed = || KeyError("malformed DER in the key".into());
        let (&tag, rest) = self.rest.split_first().ok_or_else(malformed)?;
        let (&first, mut rest) = rest.split_first().ok_or_else(malformed)?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let count = (first & 0x7f) as usize;
            if count == 0 || count > 4 || rest.len() < count {
                return Err(malformed());
            }
            let len = rest[..count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            rest = &rest[count..];
            len
        };
        if rest.len() < len {
            return Err(malformed());
        }
        let (content, rest) = rest.split_at(len);
        self.rest = rest;
        Ok((tag, content))
    }

    fn expect(&mut self, tag: u8) -> Result<&'a [u8], KeyError> {
        match self.read()? {
            (t, content) if t == tag => Ok(content),
            (t, _) => err(format!(
                "unexpected DER element in the key (tag {t:#04x}, wanted {tag:#04x})"
            )),
        }
    }
}

/// A BIT STRING's bits (whole bytes only).
fn bit_string_content(content: &[u8]) -> Result<&[u8], KeyError> {
    match content.split_first() {
        Some((0, bits)) => Ok(bits),
        _ => err("the key's BIT STRING has unused bits"),
    }
}

/// An INTEGER's magnitude without leading zeros.
fn unsigned(content: &[u8]) -> Vec<u8> {
    let start = content
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(content.len());
    content[start..].to_vec()
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

/// A non-negative INTEGER from its big-endian magnitude.
fn der_uint(magnitude: &[u8]) -> Vec<u8> {
    let trimmed = unsigned(magnitude);
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed.first().is_none_or(|b| *b & 0x80 != 0) {
        content.push(0);
    }
    content.extend(trimmed);
    tlv(0x02, &content)
}

fn bit_string(bytes: &[u8]) -> Vec<u8> {
    tlv(0x03, &[&[0][..], bytes].concat())
}

#[cfg(test)]
mod tests {
    use rcgen::PublicKeyData;

    use super::*;

    /// A P-256 key in SEC1 form, as `openssl ecparam -genkey -name prime256v1` writes it, and
    /// its public key as `openssl ec -pubout` writes it.
    fn openssl_p256() -> (String, String) {
        // The SEC1 key inside a generated PKCS#8 document, PEM-encoded on its own.
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let pkcs8 = pair.serialize_der();
        let mut outer = Der::new(&pkcs8);
        let mut info = Der::new(outer.expect(0x30).unwrap());
        info.expect(0x02).unwrap();
        info.expect(0x30).unwrap();
        let inner = info.expect(0x04).unwrap();
        // ring leaves the curve to PKCS#8; openssl's SEC1 names it in [0].
        let mut fields = Der::new(Der::new(inner).expect(0x30).unwrap());
        let version = tlv(0x02, fields.expect(0x02).unwrap());
        let scalar = tlv(0x04, fields.expect(0x04).unwrap());
        let public = tlv(0xa1, fields.expect(0xa1).unwrap());
        let params = tlv(0xa0, &tlv(0x06, OID_P256));
        let sec1 = tlv(0x30, &[version, scalar, params, public].concat());
        (
            pem_encode("EC PRIVATE KEY", &sec1),
            pem_encode("PUBLIC KEY", &pair.subject_public_key_info()),
        )
    }

    #[test]
    fn generated_key_roundtrips_through_pem() {
        let (key, pem) = SigningKey::generate().unwrap();
        let again = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(key.public, again.public);
        assert_eq!(key.public.algorithm_name(), "ES256");
        let publics = public_keys_from_pem(&key.public.to_pem()).unwrap();
        assert_eq!(publics, vec![key.public.clone()]);
        // The private key file also yields the public key (upstream accepts both).
        assert_eq!(public_keys_from_pem(&pem).unwrap(), vec![key.public]);
    }

    #[test]
    fn key_id_is_the_hash_of_the_pkix_der() {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = SigningKey::from_pkcs8(&pair.serialize_der()).unwrap();
        // Our SPKI encoding is byte-for-byte the one rcgen (and Go) writes.
        assert_eq!(key.public.spki_der(), pair.subject_public_key_info());
        assert_eq!(
            key.public.kid,
            URL_SAFE_NO_PAD.encode(Sha256::digest(pair.subject_public_key_info()))
        );
    }

    #[test]
    fn sec1_keys_and_certificates_load() {
        let (sec1, public) = openssl_p256();
        let key = SigningKey::from_pem(&sec1).unwrap();
        assert_eq!(
            public_keys_from_pem(&public).unwrap(),
            vec![key.public.clone()]
        );
        let token = key.sign(&json!({"sub": "x"})).unwrap();
        assert_eq!(token.split('.').count(), 3);

        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".to_string()])
            .unwrap()
            .self_signed(&pair)
            .unwrap();
        let keys = public_keys_from_pem(&cert.pem()).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].algorithm_name(), "ES384");
        assert_eq!(keys[0].spki_der(), pair.subject_public_key_info());
        assert_eq!(keys[0].jwk()["crv"], "P-384");
    }

    /// Keys openssl made (`testdata/`), with the key IDs openssl's DER gives.
    #[test]
    fn openssl_keys_load_with_openssl_key_ids() {
        let readme = include_str!("testdata/README");
        let kid = |name: &str| {
            readme
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap()
                .to_string()
        };
        let rsa = SigningKey::from_pem(include_str!("testdata/rsa.pem")).unwrap();
        assert_eq!(rsa.public.algorithm_name(), "RS256");
        assert_eq!(rsa.public.kid, kid("rsa"));
        let pkcs8 = SigningKey::from_pem(include_str!("testdata/rsa-pkcs8.pem")).unwrap();
        assert_eq!(pkcs8.public, rsa.public);
        let public = public_keys_from_pem(include_str!("testdata/rsa.pub")).unwrap();
        assert_eq!(public, vec![rsa.public.clone()]);
        let token = rsa.sign(&json!({"sub": "x"})).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        jsonwebtoken::decode::<Value>(&token, &public[0].decoding_key(), &validation).unwrap();
        assert_eq!(rsa.public.jwk()["e"], "AQAB");

        let ec = SigningKey::from_pem(include_str!("testdata/ec.pem")).unwrap();
        assert_eq!(ec.public.kid, kid("ec"));
        assert_eq!(
            public_keys_from_pem(include_str!("testdata/ec.pub")).unwrap(),
            vec![ec.public]
        );
    }

    #[test]
    fn rsa_public_keys_encode_like_go() {
        // n with its high bit set needs a leading zero in DER, and none in the JWK.
        let key = PublicKey::new(Material::Rsa {
            n: vec![0xc0; 256],
            e: vec![1, 0, 1],
        });
        let der = key.spki_der();
        assert_eq!(public_from_spki(&der).unwrap(), key);
        let jwk = key.jwk();
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(jwk["n"].as_str().unwrap())
                .unwrap()
                .len(),
            256
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for text in [
            "",
            "not pem",
            "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
            "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n",
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n",
            "-----BEGIN EC PRIVATE KEY-----\nMAA=\n",
        ] {
            assert!(SigningKey::from_pem(text).is_err(), "{text}");
            assert!(public_keys_from_pem(text).is_err(), "{text}");
        }
        let mut der = Der::new(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]);
        assert!(der.read().is_err());
    }
}
