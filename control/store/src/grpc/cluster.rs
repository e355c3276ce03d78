//! `etcdserverpb.Cluster`: skiff's store is a single member. Membership changes are not
//! offered; for replicated storage skiff runs on a real etcd cluster instead.

use etcd_client::proto::{
    PbClusterService, PbMember, PbMemberAddRequest, PbMemberAddResponse, PbMemberListRequest,
    PbMemberListResponse, PbMemberPromoteRequest, PbMemberPromoteResponse, PbMemberRemoveRequest,
    PbMemberRemoveResponse, PbMemberUpdateRequest, PbMemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use super::EtcdApi;

fn single_member() -> Status {
    Status::unimplemented(
        "skiff store is a single-member store; for a replicated cluster point skiff at real etcd (--etcd-servers)",
    )
}

#[tonic::async_trait]
impl PbClusterService for EtcdApi {
    async fn member_add(
        &self,
        _r: Request<PbMemberAddRequest>,
    ) -> Result<Response<PbMemberAddResponse>, Status> {
        Err(single_member())
    }

    async fn member_remove(
        &self,
        _r: Request<PbMemberRemoveRequest>,
    ) -> Result<Response<PbMemberRemoveResponse>, Status> {
        Err(single_member())
    }

    async fn member_update(
        &self,
        _r: Request<PbMemberUpdateRequest>,
    ) -> Result<Response<PbMemberUpdateResponse>, Status> {
        Err(single_member())
    }

    async fn member_list(
        &self,
        _r: Request<PbMemberListRequest>,
    ) -> Result<Response<PbMemberListResponse>, Status> {
        Ok(Response::new(PbMemberListResponse {
            header: self.header(self.store.visible_revision()),
            members: vec![PbMember {
                id: self.store.identity().member_id,
                name: self.config.name.clone(),
                peer_ur_ls: self.config.peer_urls.clone(),
                client_ur_ls: self.config.client_urls.clone(),
                is_learner: false,
            }],
        }))
    }

    async fn member_promote(
        &self,
        _r: Request<PbMemberPromoteRequest>,
    ) -> Result<Response<PbMemberPromoteResponse>, Status> {
        Err(single_member())
    }
}
