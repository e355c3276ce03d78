//! The etcd v3 gRPC API over [`Store`]: KV, Watch, Lease, Maintenance and Cluster, using the
//! service traits that `etcd-client`'s `build-server` feature generates from etcd's protos.

mod cluster;
mod kv;
mod lease;
mod maintenance;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use etcd_client::proto::{
    PbClusterServer, PbKvServer, PbLeaseServer, PbMaintenanceServer, PbResponseHeader,
    PbWatchServer,
};
use tonic::service::Routes;

use crate::store::Store;

/// The etcd API version reported by `Status` (the API level skiff implements).
pub const ETCD_VERSION: &str = "3.4.0";

/// gRPC framing allowance on top of `max_request_bytes`, as etcd's `grpcOverheadBytes`.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub name: String,
    pub client_urls: Vec<String>,
    pub peer_urls: Vec<String>,
    /// etcd's `--max-request-bytes`: larger requests fail with InvalidArgument.
    pub max_request_bytes: usize,
    /// How often watchers that asked for progress notifications get one when idle.
    pub progress_notify_interval: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            name: "default".into(),
            client_urls: vec!["http://127.0.0.1:2379".into()],
            peer_urls: vec!["http://localhost:2380".into()],
            max_request_bytes: 1536 * 1024,
            progress_notify_interval: Duration::from_secs(600),
        }
    }
}

pub struct EtcdApi {
    store: Arc<Store>,
    config: ApiConfig,
}

impl EtcdApi {
    pub fn new(store: Arc<Store>, config: ApiConfig) -> Arc<EtcdApi> {
        Arc::new(EtcdApi { store, config })
    }

    fn header(&self, revision: i64) -> Option<PbResponseHeader> {
        header(&self.store, revision)
    }

    fn check_size(&self, size: usize) -> Result<(), tonic::Status> {
        if size > self.config.max_request_bytes {
            return Err(crate::error::StoreError::RequestTooLarge.into());
        }
        Ok(())
    }

    /// All services, ready to be served by a tonic server.
    pub fn routes(self: &Arc<Self>) -> Routes {
        let limit = self.config.max_request_bytes + GRPC_OVERHEAD_BYTES;
        let mut routes = Routes::builder();
        routes
            .add_service(PbKvServer::from_arc(self.clone()).max_decoding_message_size(limit))
            .add_service(PbWatchServer::from_arc(self.clone()).max_decoding_message_size(limit))
            .add_service(PbLeaseServer::from_arc(self.clone()).max_decoding_message_size(limit))
            .add_service(
                PbMaintenanceServer::from_arc(self.clone()).max_decoding_message_size(limit),
            )
            .add_service(PbClusterServer::from_arc(self.clone()).max_decoding_message_size(limit));
        routes.routes()
    }
}

pub(crate) fn header(store: &Store, revision: i64) -> Option<PbResponseHeader> {
    let id = store.identity();
    Some(PbResponseHeader {
        cluster_id: id.cluster_id,
        member_id: id.member_id,
        revision,
        raft_term: 1,
    })
}
