//! `etcdserverpb.Lease`.

use std::pin::Pin;

use etcd_client::proto::{
    PbLeaseGrantRequest, PbLeaseGrantResponse, PbLeaseKeepAliveRequest, PbLeaseKeepAliveResponse,
    PbLeaseLeasesRequest, PbLeaseLeasesResponse, PbLeaseRevokeRequest, PbLeaseRevokeResponse,
    PbLeaseService, PbLeaseStatus, PbLeaseTimeToLiveRequest, PbLeaseTimeToLiveResponse,
};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::EtcdApi;

#[tonic::async_trait]
impl PbLeaseService for EtcdApi {
    async fn lease_grant(
        &self,
        request: Request<PbLeaseGrantRequest>,
    ) -> Result<Response<PbLeaseGrantResponse>, Status> {
        let req = request.into_inner();
        let (id, ttl, revision) = self.store.lease_grant(req.id, req.ttl).await?;
        Ok(Response::new(PbLeaseGrantResponse {
            header: self.header(revision),
            id,
            ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<PbLeaseRevokeRequest>,
    ) -> Result<Response<PbLeaseRevokeResponse>, Status> {
        let revision = self.store.lease_revoke(request.into_inner().id).await?;
        Ok(Response::new(PbLeaseRevokeResponse {
            header: self.header(revision),
        }))
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<PbLeaseKeepAliveResponse, Status>> + Send>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let store = self.store.clone();
        let responses = request.into_inner().map(move |req| {
            let req = req?;
            // A lease that does not exist (or just expired) answers TTL 0, as etcd does.
            let ttl = store.lease_keep_alive(req.id).unwrap_or(0);
            Ok(PbLeaseKeepAliveResponse {
                header: super::header(&store, store.visible_revision()),
                id: req.id,
                ttl,
            })
        });
        Ok(Response::new(Box::pin(responses)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<PbLeaseTimeToLiveRequest>,
    ) -> Result<Response<PbLeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        let header = self.header(self.store.visible_revision());
        let resp = match self.store.lease_time_to_live(req.id) {
            Some((granted_ttl, ttl, keys)) => PbLeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl,
                granted_ttl,
                keys: if req.keys {
                    keys.into_iter().map(|k| k.to_vec()).collect()
                } else {
                    Vec::new()
                },
            },
            // etcd: an unknown or expired lease reports TTL -1.
            None => PbLeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        };
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _request: Request<PbLeaseLeasesRequest>,
    ) -> Result<Response<PbLeaseLeasesResponse>, Status> {
        Ok(Response::new(PbLeaseLeasesResponse {
            header: self.header(self.store.visible_revision()),
            leases: self
                .store
                .lease_ids()
                .into_iter()
                .map(|id| PbLeaseStatus { id })
                .collect(),
        }))
    }
}
