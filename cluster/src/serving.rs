//! The kubelets' serving certificates in the local cluster: `skiff up` approves them.
//!
//! Every kubelet runs with `--rotate-server-certificates`, so it serves :10250 with a
//! certificate from the cluster CA (signer `kubernetes.io/kubelet-serving`) instead of a
//! self-signed one, and the API server verifies it (`--kubelet-certificate-authority`): `kubectl
//! logs/exec` talk to the real kubelet, not to whoever took a node's address. Someone has to
//! approve those requests. Upstream's controller manager does not — a kubelet may ask for any
//! name or address, and only someone who knows the nodes can tell which are really theirs — so
//! an administrator or a dedicated approver does. `skiff up` created the nodes and gave each its
//! name and address, and holds the admin credentials, so it is that administrator: it approves
//! a request exactly when it comes from a node's own identity (`system:node:<name>`) and asks
//! for that node's name and address, nothing more ([`judge`]). Anything else stays pending for
//! a person. Later renewals (at 70–90 % of the certificate's year) are a person's
//! `kubectl certificate approve`, as in any cluster without an approver; the kubelet keeps
//! serving with the certificate it has meanwhile.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, PostParams};

/// The signer of kubelet serving certificates.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";

/// A node as `skiff up` made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub ip: IpAddr,
}

/// What `skiff up` makes of a request.
#[derive(Debug, PartialEq)]
pub enum Verdict<'a> {
    /// Not a kubelet serving request, or already decided: none of our business.
    Ignore,
    /// `node`'s own request for its own name and address: approve it.
    Approve(&'a Node),
    /// A pending serving request that is not right for any node: left for a person.
    Leave(String),
}

fn conditions(csr: &CertificateSigningRequest) -> &[CertificateSigningRequestCondition] {
    csr.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

/// Whether `csr` is a pending kubelet serving request that one of `nodes` made for its own
/// name and address: from `system:node:<name>`, CN `system:node:<name>`, O `system:nodes`,
/// DNS names only the node name, IP addresses only the node's, no other names, a valid
/// signature.
pub fn judge<'a>(csr: &CertificateSigningRequest, nodes: &'a [Node]) -> Verdict<'a> {
    if csr.spec.signer_name != KUBELET_SERVING
        || conditions(csr)
            .iter()
            .any(|c| c.type_ == "Approved" || c.type_ == "Denied" || c.type_ == "Failed")
    {
        return Verdict::Ignore;
    }
    let requester = csr.spec.username.as_deref().unwrap_or_default();
    let Some(node) = nodes
        .iter()
        .find(|n| requester == format!("system:node:{}", n.name))
    else {
        return Verdict::Leave(format!("requested by {requester:?}, not one of the nodes"));
    };
    match check_request(&csr.spec.request.0, node) {
        Ok(()) => Verdict::Approve(node),
        Err(why) => Verdict::Leave(why),
    }
}

fn check_request(pem: &[u8], node: &Node) -> Result<(), String> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not PEM: {e}"))?;
    let (_, request) =
        x509_parser::certification_request::X509CertificationRequest::from_der(&block.contents)
            .map_err(|e| format!("not a certificate request: {e}"))?;
    request
        .verify_signature()
        .map_err(|e| format!("bad signature: {e}"))?;
    let subject = &request.certification_request_info.subject;
    let common_names: Vec<&str> = subject
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .collect();
    let organizations: Vec<&str> = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .collect();
    let expected = format!("system:node:{}", node.name);
    if common_names != [expected.as_str()] || organizations != ["system:nodes"] {
        return Err(format!(
            "subject CN {common_names:?} O {organizations:?}, not {expected:?} in system:nodes"
        ));
    }
    let mut named = false;
    for extension in request.requested_extensions().into_iter().flatten() {
        let ParsedExtension::SubjectAlternativeName(names) = extension else {
            continue;
        };
        for name in &names.general_names {
            named = true;
            let ours = match name {
                GeneralName::DNSName(dns) => *dns == node.name,
                GeneralName::IPAddress(bytes) => match node.ip {
                    IpAddr::V4(ip) => *bytes == ip.octets(),
                    IpAddr::V6(ip) => *bytes == ip.octets(),
                },
                _ => false,
            };
            if !ours {
                return Err(format!(
                    "asks for {name}, not only {} and {}",
                    node.name, node.ip
                ));
            }
        }
    }
    if !named {
        return Err("names no DNS name or address".into());
    }
    Ok(())
}

/// Whether `csr` carries an issued certificate.
fn issued(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

/// Approves the nodes' serving requests as they come and waits (at most `timeout`) until every
/// node has a serving certificate issued from a request made `since` then — a restored cluster
/// also holds the requests its nodes made before the backup, issued to kubelets long gone.
pub async fn approve(
    client: kube::Client,
    nodes: &[Node],
    since: jiff::Timestamp,
    timeout: Duration,
) -> anyhow::Result<()> {
    let api: Api<CertificateSigningRequest> = Api::all(client);
    let deadline = Instant::now() + timeout;
    loop {
        let list = api.list(&ListParams::default()).await?;
        let mut waiting: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        for csr in &list.items {
            let name = csr.metadata.name.clone().unwrap_or_default();
            match judge(csr, nodes) {
                Verdict::Approve(node) => {
                    let mut approved = csr.clone();
                    approved
                        .status
                        .get_or_insert_with(Default::default)
                        .conditions
                        .get_or_insert_with(Vec::new)
                        .push(CertificateSigningRequestCondition {
                            type_: "Approved".into(),
                            status: "True".into(),
                            reason: Some("SkiffUpApprove".into()),
                            message: Some(format!(
                                "Approved by skiff up: {}'s own request for its name and address.",
                                node.name
                            )),
                            last_update_time: Some(Time(jiff::Timestamp::now())),
                            ..Default::default()
                        });
                    api.replace_subresource::<CertificateSigningRequest>(
                        "approval",
                        &name,
                        &PostParams::default(),
                        &approved,
                    )
                    .await?;
                    tracing::debug!(csr = %name, node = %node.name, "approved the kubelet's serving certificate request");
                }
                Verdict::Leave(why) => {
                    tracing::debug!(csr = %name, "not approving: {why}");
                }
                Verdict::Ignore => {}
            }
            // Creation times have whole seconds.
            let recent = csr
                .metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|t| t.0.as_second() >= since.as_second());
            if csr.spec.signer_name == KUBELET_SERVING && issued(csr) && recent {
                let requester = csr.spec.username.as_deref().unwrap_or_default();
                waiting.retain(|n| requester != format!("system:node:{n}"));
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no serving certificate issued for {} after {timeout:?} (kubectl get csr; see the kubelet logs)",
            waiting.join(", ")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::certificates::v1::{
        CertificateSigningRequestSpec, CertificateSigningRequestStatus,
    };
    use k8s_openapi::ByteString;

    fn request(cn: &str, org: &str, sans: Vec<rcgen::SanType>) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, org);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.subject_alt_names = sans;
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn csr(signer: &str, username: &str, pem: String) -> CertificateSigningRequest {
        CertificateSigningRequest {
            metadata: Default::default(),
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.into_bytes()),
                signer_name: signer.into(),
                username: Some(username.into()),
                usages: Some(vec!["digital signature".into(), "server auth".into()]),
                ..Default::default()
            },
            status: None,
        }
    }

    fn dns(name: &str) -> rcgen::SanType {
        rcgen::SanType::DnsName(name.try_into().unwrap())
    }

    fn ip(text: &str) -> rcgen::SanType {
        rcgen::SanType::IpAddress(text.parse().unwrap())
    }

    #[test]
    fn only_a_nodes_own_request_for_its_own_names_is_approved() {
        let nodes = vec![
            Node {
                name: "skiff-worker".into(),
                ip: "192.168.56.11".parse().unwrap(),
            },
            Node {
                name: "skiff-worker2".into(),
                ip: "192.168.56.12".parse().unwrap(),
            },
        ];
        let good = request(
            "system:node:skiff-worker",
            "system:nodes",
            vec![dns("skiff-worker"), ip("192.168.56.11")],
        );
        let own = csr(KUBELET_SERVING, "system:node:skiff-worker", good.clone());
        assert_eq!(judge(&own, &nodes), Verdict::Approve(&nodes[0]));
        // Only the address is fine too.
        let address_only = request(
            "system:node:skiff-worker",
            "system:nodes",
            vec![ip("192.168.56.11")],
        );
        assert_eq!(
            judge(
                &csr(KUBELET_SERVING, "system:node:skiff-worker", address_only),
                &nodes
            ),
            Verdict::Approve(&nodes[0])
        );

        // Another node asking for this one's certificate; someone else; another signer.
        let left = |c: &CertificateSigningRequest| matches!(judge(c, &nodes), Verdict::Leave(_));
        assert!(left(&csr(
            KUBELET_SERVING,
            "system:node:skiff-worker2",
            good.clone()
        )));
        assert!(left(&csr(KUBELET_SERVING, "jane", good.clone())));
        assert_eq!(
            judge(
                &csr(
                    "kubernetes.io/kube-apiserver-client-kubelet",
                    "system:node:skiff-worker",
                    good.clone()
                ),
                &nodes
            ),
            Verdict::Ignore
        );
        // Names or addresses that are not the node's, a wrong subject, no names at all.
        for (cn, org, sans) in [
            (
                "system:node:skiff-worker",
                "system:nodes",
                vec![dns("skiff-worker"), ip("192.168.56.12")],
            ),
            (
                "system:node:skiff-worker",
                "system:nodes",
                vec![dns("kubernetes.default.svc")],
            ),
            (
                "system:node:skiff-worker2",
                "system:nodes",
                vec![ip("192.168.56.11")],
            ),
            (
                "system:node:skiff-worker",
                "system:masters",
                vec![ip("192.168.56.11")],
            ),
            ("system:node:skiff-worker", "system:nodes", vec![]),
        ] {
            let bad = csr(
                KUBELET_SERVING,
                "system:node:skiff-worker",
                request(cn, org, sans.clone()),
            );
            assert!(left(&bad), "{cn} {org} {sans:?}");
        }
        assert!(left(&csr(
            KUBELET_SERVING,
            "system:node:skiff-worker",
            "garbage".into()
        )));
        // Decided requests are not touched again.
        let mut decided = own.clone();
        decided.status = Some(CertificateSigningRequestStatus {
            conditions: Some(vec![CertificateSigningRequestCondition {
                type_: "Denied".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            certificate: None,
        });
        assert_eq!(judge(&decided, &nodes), Verdict::Ignore);
    }
}
