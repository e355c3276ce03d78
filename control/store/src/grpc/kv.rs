//! `etcdserverpb.KV`.

use etcd_client::proto::{
    PbCompactionRequest, PbCompactionResponse, PbDeleteRequest, PbDeleteResponse, PbKvService,
    PbPutRequest, PbPutResponse, PbRangeRequest, PbRangeStreamResponse, PbResponseHeader,
    PbTxnOpResponse, PbTxnRequest, PbTxnResponse,
};
use prost::Message;
use tonic::{Request, Response, Status};

use super::EtcdApi;
type RangeRequest = PbRangeRequest;
type RangeResponse = etcd_client::proto::PbRangeResponse;

#[tonic::async_trait]
impl PbKvService for EtcdApi {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let req = request.into_inner();
        let (mut resp, revision) = self.store.range(&req)?;
        resp.header = self.header(revision);
        Ok(Response::new(resp))
    }

    type RangeStreamStream = futures::stream::Empty<Result<PbRangeStreamResponse, Status>>;

    async fn range_stream(
        &self,
        _request: Request<RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        // Newer than etcd 3.4, which skiff's store implements.
        Err(Status::unimplemented(
            "RangeStream is not part of the etcd 3.4 API; use Range",
        ))
    }

    async fn put(&self, request: Request<PbPutRequest>) -> Result<Response<PbPutResponse>, Status> {
        let req = request.into_inner();
        self.check_size(req.key.len() + req.value.len())?;
        let (mut resp, revision) = self.store.put(req).await?;
        resp.header = self.header(revision);
        Ok(Response::new(resp))
    }

    async fn delete_range(
        &self,
        request: Request<PbDeleteRequest>,
    ) -> Result<Response<PbDeleteResponse>, Status> {
        let req = request.into_inner();
        self.check_size(req.encoded_len())?;
        let (mut resp, revision) = self.store.delete_range(req).await?;
        resp.header = self.header(revision);
        Ok(Response::new(resp))
    }

    async fn txn(&self, request: Request<PbTxnRequest>) -> Result<Response<PbTxnResponse>, Status> {
        let req = request.into_inner();
        self.check_size(req.encoded_len())?;
        let (mut resp, revision) = self.store.txn(req).await?;
        fill_txn_headers(&mut resp, self.header(revision));
        Ok(Response::new(resp))
    }

    async fn compact(
        &self,
        request: Request<PbCompactionRequest>,
    ) -> Result<Response<PbCompactionResponse>, Status> {
        let req = request.into_inner();
        let revision = self.store.compact(req.revision).await?;
        Ok(Response::new(PbCompactionResponse {
            header: self.header(revision),
        }))
    }
}

/// etcd answers every response inside a transaction with the transaction's header.
fn fill_txn_headers(resp: &mut PbTxnResponse, header: Option<PbResponseHeader>) {
    resp.header = header;
    for op in &mut resp.responses {
        match &mut op.response {
            Some(PbTxnOpResponse::ResponseRange(r)) => r.header = header,
            Some(PbTxnOpResponse::ResponsePut(r)) => r.header = header,
            Some(PbTxnOpResponse::ResponseDeleteRange(r)) => r.header = header,
            Some(PbTxnOpResponse::ResponseTxn(t)) => fill_txn_headers(t, header),
            None => {}
        }
    }
}
