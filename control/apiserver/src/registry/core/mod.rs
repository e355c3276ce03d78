//! The core ("legacy", `/api/v1`) group: a file per resource.

pub mod componentstatuses;
pub mod configmaps;
pub mod endpoints;
pub mod events;
pub mod namespaces;
pub mod nodes;
pub mod persistentvolumes;
pub mod pods;
pub mod podspec;
pub mod podtemplates;
pub mod replicationcontrollers;
pub mod resourcequotas;
pub mod secrets;
pub mod serviceaccounts;
pub mod services;
