//! CNI errors as the spec defines them: a well-known code, a message and details, printed on
//! stdout as `{"cniVersion", "code", "msg", "details"}` with a non-zero exit status.

use serde_json::json;

/// Codes 1–99 are the spec's; 100+ are skiff-cni's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    IncompatibleVersion = 1,
    UnsupportedField = 2,
    UnknownContainer = 3,
    InvalidEnvironment = 4,
    Io = 5,
    Decode = 6,
    InvalidConfig = 7,
    TryAgainLater = 11,
    /// STATUS: the plugin cannot handle ADD now.
    NotAvailable = 50,
    /// The pod range has no free address left.
    AddressesExhausted = 100,
    /// A netlink request failed.
    Netlink = 101,
    /// CHECK found the interface not as ADD left it.
    CheckFailed = 102,
}

#[derive(Debug, Clone)]
pub struct CniError {
    pub code: Code,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl std::fmt::Display) -> Self {
        self.details = details.to_string();
        self
    }

    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        json!({
            "cniVersion": cni_version,
            "code": self.code as u32,
            "msg": self.msg,
            "details": self.details,
        })
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.details.is_empty() {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "{}: {}", self.msg, self.details)
        }
    }
}

impl std::error::Error for CniError {}

/// A netlink failure during ADD/DEL/CHECK.
pub fn netlink(what: &str, e: impl std::fmt::Display) -> CniError {
    CniError::new(Code::Netlink, what.to_string()).with_details(e)
}
