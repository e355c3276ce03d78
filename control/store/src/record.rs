//! On-disk messages: the write-ahead-log record and the snapshot, both protobuf (prost).
//!
//! A WAL record holds the *effects* of one state change (the resolved puts and deletes of a
//! transaction, lease grants and revokes, a compaction), never the request: replaying effects is
//! deterministic and does not depend on compare results or the lease table at replay time.

use bytes::Bytes;

#[derive(Clone, PartialEq, prost::Message)]
pub struct WalRecord {
    /// Log sequence number: dense, starting at 1; a gap means a damaged log.
    #[prost(uint64, tag = "1")]
    pub lsn: u64,
    /// The revision the writes were made at; 0 when the record makes no key writes.
    #[prost(int64, tag = "2")]
    pub revision: i64,
    #[prost(message, repeated, tag = "3")]
    pub writes: Vec<WalWrite>,
    #[prost(message, repeated, tag = "4")]
    pub lease_grants: Vec<LeaseRecord>,
    #[prost(int64, repeated, tag = "5")]
    pub lease_revokes: Vec<i64>,
    /// Compact history below this revision (0: no compaction).
    #[prost(int64, tag = "6")]
    pub compact: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct WalWrite {
    #[prost(bool, tag = "1")]
    pub delete: bool,
    #[prost(bytes = "bytes", tag = "2")]
    pub key: Bytes,
    #[prost(bytes = "bytes", tag = "3")]
    pub value: Bytes,
    #[prost(int64, tag = "4")]
    pub lease: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseRecord {
    #[prost(int64, tag = "1")]
    pub id: i64,
    #[prost(int64, tag = "2")]
    pub ttl: i64,
}

/// The whole state at one log position: every key's retained history and every lease.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotState {
    /// The last WAL record this snapshot includes.
    #[prost(uint64, tag = "1")]
    pub lsn: u64,
    #[prost(int64, tag = "2")]
    pub revision: i64,
    #[prost(int64, tag = "3")]
    pub compact_revision: i64,
    #[prost(message, repeated, tag = "4")]
    pub keys: Vec<SnapshotKey>,
    #[prost(message, repeated, tag = "5")]
    pub leases: Vec<LeaseRecord>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotKey {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    /// Ascending by mod_revision. Tombstones have version 0.
    #[prost(message, repeated, tag = "2")]
    pub versions: Vec<SnapshotVersion>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SnapshotVersion {
    #[prost(int64, tag = "1")]
    pub create_revision: i64,
    #[prost(int64, tag = "2")]
    pub mod_revision: i64,
    #[prost(int64, tag = "3")]
    pub version: i64,
    #[prost(int64, tag = "4")]
    pub lease: i64,
    #[prost(bytes = "bytes", tag = "5")]
    pub value: Bytes,
}
