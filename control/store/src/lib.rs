//! skiff's etcd-compatible store (the etcd of the skiff architecture).
//!
//! - [`mvcc`]: the in-memory multi-version state (revisions, history, leases, compaction).
//! - [`wal`], [`snapshot`], [`datadir`]: durability on disk.
//! - [`store`]: group-committed durable writes, reads at the durable revision.
//! - [`grpc`]: the etcd v3 gRPC API (KV, Watch, Lease, Maintenance, Cluster); [`authority`]:
//!   the connection layer that lets Go clients' `http://` endpoints through h2.
//! - [`server`]: flags and the `skiff store` daemon; [`bench`]: the etcd comparison.

pub mod authority;
pub mod bbolt;
pub mod bench;
pub mod cli;
pub mod datadir;
pub mod error;
pub mod grpc;
pub mod mvcc;
pub mod record;
pub mod server;
pub mod snapshot;
pub mod store;
pub mod wal;
