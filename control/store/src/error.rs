//! Store errors, and their mapping to the gRPC status codes and messages etcd uses
//! (`etcdserver/api/v3rpc/rpctypes`), so clients that match on etcd's messages keep working.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    #[error("etcdserver: {0}")]
    InvalidArgument(String),
    /// The write-ahead log could not be made durable; the store stops accepting writes.
    #[error("etcdserver: storage failure: {0}")]
    Storage(String),
}

impl From<StoreError> for Status {
    fn from(err: StoreError) -> Status {
        let code = match &err {
            StoreError::EmptyKey
            | StoreError::KeyNotFound
            | StoreError::ValueProvided
            | StoreError::LeaseProvided
            | StoreError::TooManyOps
            | StoreError::DuplicateKey
            | StoreError::RequestTooLarge
            | StoreError::InvalidArgument(_) => Code::InvalidArgument,
            StoreError::Compacted | StoreError::FutureRevision | StoreError::LeaseTtlTooLarge => {
                Code::OutOfRange
            }
            StoreError::LeaseNotFound => Code::NotFound,
            StoreError::LeaseExists => Code::FailedPrecondition,
            StoreError::NoSpace => Code::ResourceExhausted,
            StoreError::Storage(_) => Code::Unavailable,
        };
        Status::new(code, err.to_string())
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
