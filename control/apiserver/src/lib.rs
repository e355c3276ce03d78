//! skiff's kube-apiserver: the Kubernetes REST API over an etcd v3 client.
//!
//! A request's path: `http` (routing, authentication, body decoding; `watch` for watch streams) → `handlers`
//! (the generic verbs) → the resource's strategy in `registry` (defaults, validation, hooks,
//! printer), found through the one table in `resources` → `storage` (etcd access) and `cache`
//! (the watch cache) → `response` (JSON, Table or PartialObjectMetadata) → `http`.
//!
//! Beside them: `patch` and `apply` (patch types, server-side apply), `protobuf` and `json` (body
//! formats), `selectors`, `names` (name predicates), `table` (printer machinery), `discovery`,
//! `openapi`, `tls` (PKI, tokens, kubeconfig), `kubelet_proxy` and `proxy` (the subresources
//! served by kubelets, pods and services: log, exec, attach, portforward, proxy), `metrics`, `audit` (the audit log), `server` (flags
//! and startup), `admission` (the LimitRanger, PodSecurity and ResourceQuota admission plugins
//! the write handlers call), `quota` (what objects cost against a ResourceQuota; the controller
//! manager's quota controller counts with it too), `flowcontrol` (API Priority and Fairness:
//! classifying, queuing and limiting requests between authentication and authorization),
//! `customresource` (CustomResourceDefinitions:
//! what an Established CRD adds to the resource table, its schema, columns, scale and the CRD
//! controllers).

pub mod admission;
pub mod aggregator;
pub mod apply;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod cluster_keys;
pub mod compactor;
pub mod customresource;
pub mod discovery;
pub mod endpoint_reconciler;
pub mod error;
pub mod flowcontrol;
pub mod handlers;
pub mod http;
pub mod json;
pub mod kubelet_proxy;
pub mod metrics;
pub mod names;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod proxy;
pub mod quota;
pub mod registry;
pub mod resources;
pub mod response;
pub mod selectors;
pub mod server;
pub mod storage;
pub mod table;
pub mod timestamps;
pub mod tls;
pub mod watch;

pub use server::{run, start, ApiServerArgs};
