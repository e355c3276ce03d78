//! Who is asking, and may they: authentication (`token_file` for static bearer tokens,
//! `serviceaccount` for service-account tokens and the TokenRequest issuer), the
//! authenticated caller (`UserInfo`), and the checks built on it.

pub mod serviceaccount;
pub mod token_file;

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
