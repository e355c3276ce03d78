//! `etcdserverpb.Maintenance`.

use std::pin::Pin;

use etcd_client::proto::{
    PbAlarmRequest, PbAlarmResponse, PbDefragmentRequest, PbDefragmentResponse, PbDowngradeRequest,
    PbDowngradeResponse, PbHashKvRequest, PbHashKvResponse, PbHashRequest, PbHashResponse,
    PbMaintenanceService, PbMoveLeaderRequest, PbMoveLeaderResponse, PbSnapshotRequest,
    PbSnapshotResponse, PbStatusRequest, PbStatusResponse,
};
use futures::Stream;
use tonic::{Request, Response, Status};

use super::{EtcdApi, ETCD_VERSION};

const SNAPSHOT_CHUNK: usize = 64 * 1024;

fn storage_error(e: crate::datadir::DataDirError) -> Status {
    Status::unavailable(format!("etcdserver: storage failure: {e}"))
}

#[tonic::async_trait]
impl PbMaintenanceService for EtcdApi {
    async fn alarm(
        &self,
        _r: Request<PbAlarmRequest>,
    ) -> Result<Response<PbAlarmResponse>, Status> {
        // The space quota is enforced per request (ResourceExhausted), so no alarm is ever
        // raised and there is nothing to list or disarm.
        Ok(Response::new(PbAlarmResponse {
            header: self.header(self.store.visible_revision()),
            alarms: Vec::new(),
        }))
    }

    async fn status(
        &self,
        _r: Request<PbStatusRequest>,
    ) -> Result<Response<PbStatusResponse>, Status> {
        let store = &self.store;
        let lsn = store.lsn();
        Ok(Response::new(PbStatusResponse {
            header: self.header(store.visible_revision()),
            version: ETCD_VERSION.into(),
            db_size: store.disk_bytes() as i64,
            leader: store.identity().member_id,
            raft_index: lsn,
            raft_term: 1,
            raft_applied_index: lsn,
            errors: Vec::new(),
            db_size_in_use: store.live_bytes() as i64,
            is_learner: false,
            storage_version: String::new(),
            db_size_quota: 0,
            downgrade_info: None,
        }))
    }

    async fn defragment(
        &self,
        _r: Request<PbDefragmentRequest>,
    ) -> Result<Response<PbDefragmentResponse>, Status> {
        // Defragmenting = rewriting the data dir as one compact checkpoint.
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.checkpoint())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(storage_error)?;
        Ok(Response::new(PbDefragmentResponse {
            header: self.header(self.store.visible_revision()),
        }))
    }

    async fn hash(&self, _r: Request<PbHashRequest>) -> Result<Response<PbHashResponse>, Status> {
        let (hash, revision, _) = self.store.hash_kv(0)?;
        Ok(Response::new(PbHashResponse {
            header: self.header(revision),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        r: Request<PbHashKvRequest>,
    ) -> Result<Response<PbHashKvResponse>, Status> {
        let (hash, hash_revision, compact_revision) =
            self.store.hash_kv(r.into_inner().revision)?;
        Ok(Response::new(PbHashKvResponse {
            header: self.header(self.store.visible_revision()),
            hash,
            compact_revision,
            hash_revision,
        }))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<PbSnapshotResponse, Status>> + Send>>;

    async fn snapshot(
        &self,
        _r: Request<PbSnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let store = self.store.clone();
        let data = tokio::task::spawn_blocking(move || store.snapshot())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(storage_error)?;
        let header = self.header(self.store.visible_revision());
        let total = data.len();
        let chunks: Vec<Result<PbSnapshotResponse, Status>> = data
            .chunks(SNAPSHOT_CHUNK)
            .enumerate()
            .map(|(i, blob)| {
                Ok(PbSnapshotResponse {
                    header,
                    remaining_bytes: (total - (i * SNAPSHOT_CHUNK + blob.len())) as u64,
                    blob: blob.to_vec(),
                    version: ETCD_VERSION.into(),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn move_leader(
        &self,
        _r: Request<PbMoveLeaderRequest>,
    ) -> Result<Response<PbMoveLeaderResponse>, Status> {
        Err(Status::unimplemented(
            "skiff store is a single member; there is no leader to move",
        ))
    }

    async fn downgrade(
        &self,
        _r: Request<PbDowngradeRequest>,
    ) -> Result<Response<PbDowngradeResponse>, Status> {
        Err(Status::unimplemented(
            "downgrade is not supported by skiff store",
        ))
    }
}
