//! certificates.k8s.io (`pkg/registry/certificates`): CertificateSigningRequests
//! (`signingrequests.rs`), ClusterTrustBundles (`trustbundles.rs`) and PodCertificateRequests
//! (`podrequests.rs`).

mod podrequests;
mod signingrequests;
mod trustbundles;

pub use podrequests::*;
pub use signingrequests::*;
pub use trustbundles::*;
