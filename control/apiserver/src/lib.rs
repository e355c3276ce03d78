//! skiff's kube-apiserver: the Kubernetes REST API over an etcd v3 client.
//!
//! Layout: `resources` (what is served), `http` (routing, bodies, watch streams), `handlers` (the
//! verbs), `storage` (etcd access), `cache` (the watch cache), `defaults` + `validation` (the
//! strategies), `services` (ClusterIP/NodePort allocation), `patch`, `protobuf`, `table`,
//! `discovery`, `openapi`, `tls` (PKI, tokens, kubeconfig), `server` (flags and startup).

pub mod apply;
pub mod cache;
pub mod defaults;
pub mod discovery;
pub mod error;
pub mod handlers;
pub mod http;
pub mod json;
pub mod metrics;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod services;
pub mod storage;
pub mod table;
pub mod tls;
pub mod validation;

pub use server::{run, start, ApiServerArgs};
