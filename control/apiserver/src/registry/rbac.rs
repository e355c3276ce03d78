//! rbac.authorization.k8s.io (`pkg/registry/rbac`): names are any path segment; role bindings
//! have printers (roles print with the generic convertor). Stored, not enforced yet.

use crate::names;
use crate::registry::Strategy;
use crate::table::{self, prelude::*};

/// An RBAC resource and its printer.
pub struct Rbac(&'static Printer);

pub static ROLES: Rbac = Rbac(&table::BUILTIN_DEFAULT);
pub static CLUSTER_ROLES: Rbac = Rbac(&table::BUILTIN_DEFAULT);
pub static ROLE_BINDINGS: Rbac = Rbac(&ROLE_BINDING_PRINTER);
pub static CLUSTER_ROLE_BINDINGS: Rbac = Rbac(&CLUSTER_ROLE_BINDING_PRINTER);

impl Strategy for Rbac {
    fn name_rule(&self) -> names::NameRule {
        names::PATH_SEGMENT
    }

    fn printer(&self) -> &'static Printer {
        self.0
    }
}

// ---------------------------------------------------------------- table

pub const ROLE_BINDING_COLUMNS: &[Column] = &[
    NAME,
    col("Role", "string", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
    AGE,
    wide("Users", "string", "Users in the roleBinding"),
    wide("Groups", "string", "Groups in the roleBinding"),
    wide("ServiceAccounts", "string", "ServiceAccounts in the roleBinding"),
];

pub static ROLE_BINDING_PRINTER: Printer = Printer::new(ROLE_BINDING_COLUMNS, role_binding_cells);

pub const CLUSTER_ROLE_BINDING_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Role",
        "string",
        "RoleRef can only reference a ClusterRole in the global namespace.",
    ),
    AGE,
    wide("Users", "string", "Users in the clusterRoleBinding"),
    wide("Groups", "string", "Groups in the clusterRoleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the clusterRoleBinding",
    ),
];

pub static CLUSTER_ROLE_BINDING_PRINTER: Printer =
    Printer::new(CLUSTER_ROLE_BINDING_COLUMNS, role_binding_cells);

fn role_binding_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        text(obj, &["roleRef", "kind"]),
        text(obj, &["roleRef", "name"])
    );
    let mut users: Vec<String> = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    let mut service_accounts: Vec<String> = Vec::new();
    for subject in list(obj, &["subjects"]) {
        let subject_name = text(subject, &["name"]);
        match text(subject, &["kind"]) {
            "ServiceAccount" => {
                service_accounts.push(format!("{}/{subject_name}", text(subject, &["namespace"])))
            }
            "User" => users.push(subject_name.to_string()),
            "Group" => groups.push(subject_name.to_string()),
            _ => {}
        }
    }
    vec![
        name(obj),
        role.into(),
        age(obj, now).into(),
        users.join(", ").into(),
        groups.join(", ").into(),
        service_accounts.join(", ").into(),
    ]
}
