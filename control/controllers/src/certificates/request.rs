//! A CertificateSigningRequest's PKCS#10 request, parsed as upstream's `x509.CertificateRequest`
//! (the subject's attributes Go keeps, the subject alternative names, the public key), and the
//! per-signer checks of the built-in signers (`pkg/apis/certificates/helpers.go`,
//! `pkg/controller/certificates/signer`).

use std::collections::BTreeSet;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
pub const KUBE_APISERVER_CLIENT_KUBELET: &str = "kubernetes.io/kube-apiserver-client-kubelet";
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
pub const LEGACY_UNKNOWN: &str = "kubernetes.io/legacy-unknown";

/// The signers this controller manager signs for, as upstream's csrsigning controllers.
pub const SIGNERS: &[&str] = &[
    KUBE_APISERVER_CLIENT,
    KUBE_APISERVER_CLIENT_KUBELET,
    KUBELET_SERVING,
    LEGACY_UNKNOWN,
];

/// A subject as Go's `pkix.Name` keeps it (the attributes it re-encodes when signing).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Name {
    pub country: Vec<String>,
    pub organization: Vec<String>,
    pub organizational_unit: Vec<String>,
    pub locality: Vec<String>,
    pub province: Vec<String>,
    pub street_address: Vec<String>,
    pub postal_code: Vec<String>,
    pub serial_number: String,
    pub common_name: String,
}

/// A parsed, signature-checked certificate request.
#[derive(Clone, Debug)]
pub struct Request {
    pub subject: Name,
    pub dns_names: Vec<String>,
    pub email_addresses: Vec<String>,
    /// 4 or 16 bytes each.
    pub ip_addresses: Vec<Vec<u8>>,
    pub uris: Vec<String>,
    /// The DER SubjectPublicKeyInfo the certificate will carry.
    pub public_key_info: Vec<u8>,
}

/// Upstream's `ParseCSR` plus `CheckSignature`: the first PEM block, of type
/// CERTIFICATE REQUEST, holding a PKCS#10 request signed by its own key.
pub fn parse(pem: &[u8]) -> Result<Request, String> {
    let block = match x509_parser::pem::parse_x509_pem(pem) {
        Ok((_, block)) if block.label == "CERTIFICATE REQUEST" => block,
        _ => return Err("PEM block type must be CERTIFICATE REQUEST".into()),
    };
    parse_der(&block.contents)
}

pub fn parse_der(der: &[u8]) -> Result<Request, String> {
    let (_, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| format!("x509: malformed certificate request: {e}"))?;
    csr.verify_signature()
        .map_err(|e| format!("unable to verify certificate request signature: {e}"))?;
    let info = &csr.certification_request_info;
    let mut subject = Name::default();
    for attribute in info.subject.iter_attributes() {
        // Go's FillFromRDNSequence keeps string values only.
        let Ok(value) = attribute.as_str() else {
            continue;
        };
        let value = value.to_string();
        match attribute.attr_type().to_id_string().as_str() {
            "2.5.4.6" => subject.country.push(value),
            "2.5.4.10" => subject.organization.push(value),
            "2.5.4.11" => subject.organizational_unit.push(value),
            "2.5.4.7" => subject.locality.push(value),
            "2.5.4.8" => subject.province.push(value),
            "2.5.4.9" => subject.street_address.push(value),
            "2.5.4.17" => subject.postal_code.push(value),
            "2.5.4.5" => subject.serial_number = value,
            "2.5.4.3" => subject.common_name = value,
            _ => {}
        }
    }
    let mut request = Request {
        subject,
        dns_names: Vec::new(),
        email_addresses: Vec::new(),
        ip_addresses: Vec::new(),
        uris: Vec::new(),
        public_key_info: info.subject_pki.raw.to_vec(),
    };
    for extension in csr.requested_extensions().into_iter().flatten() {
        let ParsedExtension::SubjectAlternativeName(san) = extension else {
            continue;
        };
        for name in &san.general_names {
            match name {
                GeneralName::DNSName(n) => request.dns_names.push(n.to_string()),
                GeneralName::RFC822Name(n) => request.email_addresses.push(n.to_string()),
                GeneralName::URI(n) => request.uris.push(n.to_string()),
                GeneralName::IPAddress(ip) if ip.len() == 4 || ip.len() == 16 => {
                    request.ip_addresses.push(ip.to_vec())
                }
                GeneralName::IPAddress(ip) => {
                    return Err(format!(
                        "x509: cannot parse IP address of length {}",
                        ip.len()
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(request)
}

fn usage_set(usages: &[String]) -> BTreeSet<&str> {
    usages.iter().map(String::as_str).collect()
}

fn is_system_nodes(request: &Request) -> Result<(), String> {
    if request.subject.organization != ["system:nodes"] {
        return Err("subject organization is not system:nodes".into());
    }
    Ok(())
}

const NOT_A_NODE: &str = "subject common name does not begin with system:node:";

/// `ValidateKubeletServingCSR`.
pub fn validate_kubelet_serving(request: &Request, usages: &[String]) -> Result<(), String> {
    is_system_nodes(request)?;
    if request.dns_names.is_empty() && request.ip_addresses.is_empty() {
        return Err("DNS or IP subjectAltName is required".into());
    }
    if !request.email_addresses.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !request.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    let set = usage_set(usages);
    let rsa = BTreeSet::from(["digital signature", "key encipherment", "server auth"]);
    let no_rsa = BTreeSet::from(["digital signature", "server auth"]);
    if set != rsa && set != no_rsa {
        return Err("usages did not match [digital signature key encipherment server auth]".into());
    }
    if !request.subject.common_name.starts_with("system:node:") {
        return Err(NOT_A_NODE.into());
    }
    Ok(())
}

/// `ValidateKubeletClientCSR`.
pub fn validate_kubelet_client(request: &Request, usages: &[String]) -> Result<(), String> {
    is_system_nodes(request)?;
    if !request.dns_names.is_empty() {
        return Err("DNS subjectAltNames are not allowed".into());
    }
    if !request.email_addresses.is_empty() {
        return Err("Email subjectAltNames are not allowed".into());
    }
    if !request.ip_addresses.is_empty() {
        return Err("IP subjectAltNames are not allowed".into());
    }
    if !request.uris.is_empty() {
        return Err("URI subjectAltNames are not allowed".into());
    }
    if !request.subject.common_name.starts_with("system:node:") {
        return Err(NOT_A_NODE.into());
    }
    let set = usage_set(usages);
    let rsa = BTreeSet::from(["client auth", "digital signature", "key encipherment"]);
    let no_rsa = BTreeSet::from(["client auth", "digital signature"]);
    if set != rsa && set != no_rsa {
        return Err("usages did not match [client auth digital signature key encipherment]".into());
    }
    Ok(())
}

/// `validAPIServerClientUsages`: client auth, optionally digital signature and key
/// encipherment, nothing else.
pub fn validate_apiserver_client_usages(usages: &[String]) -> Result<(), String> {
    let mut client_auth = false;
    for usage in usages {
        match usage.as_str() {
            "digital signature" | "key encipherment" => {}
            "client auth" => client_auth = true,
            other => return Err(format!("invalid usage for client certificate: {other}")),
        }
    }
    if !client_auth {
        return Err("missing required usage for client certificate: client auth".into());
    }
    Ok(())
}

/// The check of `signer` on a request: None when `signer` is not one of [`SIGNERS`] (someone
/// else's), else whether the request is valid for it.
pub fn validate_for_signer(
    signer: &str,
    request: &Request,
    usages: &[String],
) -> Option<Result<(), String>> {
    Some(match signer {
        KUBELET_SERVING => validate_kubelet_serving(request, usages),
        KUBE_APISERVER_CLIENT_KUBELET => validate_kubelet_client(request, usages),
        KUBE_APISERVER_CLIENT => validate_apiserver_client_usages(usages),
        // No restrictions, for backward compatibility (v1beta1's default signer).
        LEGACY_UNKNOWN => Ok(()),
        _ => return None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    /// A PEM request with `cn`, `orgs` (rcgen keeps one O) and `sans`.
    pub(crate) fn csr(cn: &str, org: Option<&str>, sans: Vec<SanType>) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(org) = org {
            params
                .distinguished_name
                .push(DnType::OrganizationName, org);
        }
        params.subject_alt_names = sans;
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        (pem, key)
    }

    fn usages(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_subject_and_sans() {
        let (pem, _) = csr(
            "system:node:a",
            Some("system:nodes"),
            vec![
                SanType::DnsName("a.example".try_into().unwrap()),
                SanType::IpAddress("10.0.0.1".parse().unwrap()),
            ],
        );
        let r = parse(pem.as_bytes()).unwrap();
        assert_eq!(r.subject.common_name, "system:node:a");
        assert_eq!(r.subject.organization, ["system:nodes"]);
        assert_eq!(r.dns_names, ["a.example"]);
        assert_eq!(r.ip_addresses, [vec![10, 0, 0, 1]]);
        assert!(parse(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err());
    }

    #[test]
    fn kubelet_client_rules() {
        let ok = usages(&["digital signature", "client auth"]);
        let (pem, _) = csr("system:node:a", Some("system:nodes"), vec![]);
        let r = parse(pem.as_bytes()).unwrap();
        assert_eq!(validate_kubelet_client(&r, &ok), Ok(()));
        let rsa = usages(&["key encipherment", "digital signature", "client auth"]);
        assert_eq!(validate_kubelet_client(&r, &rsa), Ok(()));
        // Wrong usages.
        for bad in [
            usages(&["client auth"]),
            usages(&["digital signature", "client auth", "server auth"]),
            usages(&[]),
        ] {
            assert_eq!(
                validate_kubelet_client(&r, &bad),
                Err("usages did not match [client auth digital signature key encipherment]".into())
            );
        }
        // Wrong CN or O.
        let (pem, _) = csr("jane", Some("system:nodes"), vec![]);
        let r = parse(pem.as_bytes()).unwrap();
        assert_eq!(validate_kubelet_client(&r, &ok), Err(NOT_A_NODE.into()));
        let (pem, _) = csr("system:node:a", Some("system:masters"), vec![]);
        let r = parse(pem.as_bytes()).unwrap();
        assert_eq!(
            validate_kubelet_client(&r, &ok),
            Err("subject organization is not system:nodes".into())
        );
        let (pem, _) = csr("system:node:a", None, vec![]);
        assert!(validate_kubelet_client(&parse(pem.as_bytes()).unwrap(), &ok).is_err());
        // No SANs.
        let (pem, _) = csr(
            "system:node:a",
            Some("system:nodes"),
            vec![SanType::DnsName("a".try_into().unwrap())],
        );
        assert_eq!(
            validate_kubelet_client(&parse(pem.as_bytes()).unwrap(), &ok),
            Err("DNS subjectAltNames are not allowed".into())
        );
    }

    #[test]
    fn kubelet_serving_rules() {
        let ok = usages(&["digital signature", "server auth"]);
        let (pem, _) = csr(
            "system:node:a",
            Some("system:nodes"),
            vec![SanType::IpAddress("192.168.56.11".parse().unwrap())],
        );
        let r = parse(pem.as_bytes()).unwrap();
        assert_eq!(validate_kubelet_serving(&r, &ok), Ok(()));
        assert!(
            validate_kubelet_serving(&r, &usages(&["digital signature", "client auth"])).is_err()
        );
        let (pem, _) = csr("system:node:a", Some("system:nodes"), vec![]);
        assert_eq!(
            validate_kubelet_serving(&parse(pem.as_bytes()).unwrap(), &ok),
            Err("DNS or IP subjectAltName is required".into())
        );
        let (pem, _) = csr(
            "node-a",
            Some("system:nodes"),
            vec![SanType::DnsName("a".try_into().unwrap())],
        );
        assert_eq!(
            validate_kubelet_serving(&parse(pem.as_bytes()).unwrap(), &ok),
            Err(NOT_A_NODE.into())
        );
    }

    #[test]
    fn apiserver_client_rules() {
        assert_eq!(
            validate_apiserver_client_usages(&usages(&["client auth"])),
            Ok(())
        );
        assert_eq!(
            validate_apiserver_client_usages(&usages(&["client auth", "server auth"])),
            Err("invalid usage for client certificate: server auth".into())
        );
        assert_eq!(
            validate_apiserver_client_usages(&usages(&["digital signature"])),
            Err("missing required usage for client certificate: client auth".into())
        );
        let (pem, _) = csr("anyone", None, vec![]);
        let r = parse(pem.as_bytes()).unwrap();
        assert_eq!(
            validate_for_signer(KUBE_APISERVER_CLIENT, &r, &usages(&["client auth"])),
            Some(Ok(()))
        );
        assert_eq!(validate_for_signer("example.com/other", &r, &[]), None);
    }
}
