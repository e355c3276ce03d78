//! Who is asking, and may they: authentication (`x509` for client certificates, `token_file`
//! for static bearer tokens, `bootstrap_token` for bootstrap tokens), the authenticated caller
//! (`UserInfo`), and the checks built on it.

pub mod bootstrap_token;
pub mod token_file;
pub mod x509;

/// An authenticated caller.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    /// Extra attributes (service-account tokens: the pod and node they are bound to;
    /// impersonation: `Impersonate-Extra-*`), as upstream's `user.Info.GetExtra`.
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}
