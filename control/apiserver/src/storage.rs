//! Objects in the store, through the etcd v3 API only (so the same code runs on skiff's store and on
//! real etcd). Values are the object's JSON without `metadata.resourceVersion`; the version
//! clients see is the key's etcd `mod_revision`, as upstream does.

use etcd_client::{
    Client, Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse,
};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

#[derive(Clone)]
pub struct Storage {
    client: Client,
}

/// One object as read from the store.
#[derive(Clone, Debug)]
pub struct Stored {
    pub key: String,
    pub object: Value,
    pub mod_revision: i64,
}

pub struct ListPage {
    pub items: Vec<Stored>,
    /// The store revision the page was read at.
    pub revision: i64,
    /// Key to continue from when the page was cut by the limit.
    pub next_key: Option<String>,
    /// How many keys follow the page (etcd's count minus what was returned).
    pub remaining: i64,
}

/// Keys written or removed in the same transaction as an object (service IP and node port
/// allocations), so an allocation exists exactly when the object that owns it does.
#[derive(Default, Clone, Debug)]
pub struct Extra {
    /// Must not exist yet; created with the given value.
    pub creates: Vec<(String, Vec<u8>)>,
    pub deletes: Vec<String>,
    /// Must still be at the given mod_revision; replaced with the given value (the
    /// ResourceQuotas an admitted object is charged to).
    pub updates: Vec<(String, Vec<u8>, i64)>,
}

impl Extra {
    fn compares(&self) -> Vec<Compare> {
        let mut compares: Vec<Compare> = self
            .creates
            .iter()
            .map(|(k, _)| Compare::create_revision(k.as_str(), CompareOp::Equal, 0))
            .collect();
        compares.extend(
            self.updates
                .iter()
                .map(|(k, _, rev)| Compare::mod_revision(k.as_str(), CompareOp::Equal, *rev)),
        );
        compares
    }
    fn ops(&self) -> Vec<TxnOp> {
        let mut ops: Vec<TxnOp> = self
            .creates
            .iter()
            .map(|(k, v)| TxnOp::put(k.as_str(), v.clone(), None))
            .collect();
        ops.extend(
            self.updates
                .iter()
                .map(|(k, v, _)| TxnOp::put(k.as_str(), v.clone(), None)),
        );
        ops.extend(self.deletes.iter().map(|k| TxnOp::delete(k.as_str(), None)));
        ops
    }
}

/// Outcome of a conditional write.
pub enum Write {
    Done(i64),
    /// The key exists (create) or changed since it was read (update/delete).
    Conflict,
}

pub fn decode_value(key: &str, bytes: &[u8], mod_revision: i64) -> ApiResult<Stored> {
    let mut object: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::internal(format!("stored object {key} is not valid JSON: {e}")))?;
    set_resource_version(&mut object, mod_revision);
    Ok(Stored {
        key: key.to_string(),
        object,
        mod_revision,
    })
}

pub fn set_resource_version(object: &mut Value, revision: i64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

/// The bytes stored for an object: everything but the resourceVersion.
pub fn encode_value(object: &Value) -> Vec<u8> {
    if object.pointer("/metadata/resourceVersion").is_none() {
        return serde_json::to_vec(object).expect("a serde_json::Value always serialises");
    }
    let mut copy = object.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&copy).expect("a serde_json::Value always serialises")
}

/// An etcd client over a Unix socket: a tonic channel whose connector dials the socket (the
/// URI is a placeholder tonic requires; the authority h2 sends is `localhost`).
async fn connect_unix(path: std::path::PathBuf) -> anyhow::Result<Client> {
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(&path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await?;
    Ok(Client::from_channel(etcd_client::Channel::Tonic(channel), None).await?)
}

/// Upper bound of a prefix range (etcd's `prefix_end`).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// How long one write attempt may take before it is sent again (a write normally takes
/// milliseconds; a leader election, about a second), and how long the attempts may go on.
const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
const UNCERTAIN_BUDGET: std::time::Duration = std::time::Duration::from_secs(20);

/// Whether a failed request may have been lost on the way to a member or inside it (a
/// member gone, no leader, the leader changed, etcd's own request timeout) — worth sending
/// again — rather than refused for what it is.
fn outcome_unknown(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(s) => matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown
        ),
        _ => false,
    }
}

/// How often each etcd member is probed, and how long a probe may take.
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// Keeps only members that accept connections in the client's balance set (etcd clientv3's
/// health balancer does this; tonic's balanced channel alone keeps sending to a member that
/// refuses them — measured on a 3-member cluster with one member killed: every third request
/// failed with "tcp connect error"). A member that fails a probe leaves the set and comes back
/// once it accepts again; the last one left is never removed. Ends with the client.
async fn keep_healthy(client: Client, endpoints: Vec<String>, mut healthy: Vec<bool>) {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        if !probe(&client, &endpoints, &mut healthy).await {
            return;
        }
    }
}

/// One round of probes; false once the client is gone.
async fn probe(client: &Client, endpoints: &[String], healthy: &mut [bool]) -> bool {
    let address = |url: &str| {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        rest.split('/').next().unwrap_or(rest).to_string()
    };
    for (i, endpoint) in endpoints.iter().enumerate() {
        let up = matches!(
            tokio::time::timeout(
                PROBE_TIMEOUT,
                tokio::net::TcpStream::connect(address(endpoint))
            )
            .await,
            Ok(Ok(_))
        );
        let others = healthy.iter().enumerate().any(|(j, h)| j != i && *h);
        let change = if up && !healthy[i] {
            tracing::info!(endpoint, "etcd member reachable again");
            client.add_endpoint(endpoint).await
        } else if !up && healthy[i] && others {
            tracing::warn!(
                endpoint,
                "etcd member unreachable: requests go to the others"
            );
            client.remove_endpoint(endpoint).await
        } else {
            continue;
        };
        match change {
            Ok(()) => healthy[i] = up,
            // The client is gone: nothing left to balance.
            Err(etcd_client::Error::EndpointError(_)) => return false,
            Err(e) => tracing::debug!(endpoint, "etcd balance set: {e}"),
        }
    }
    true
}

/// Client TLS toward etcd (kube-apiserver's `--etcd-cafile`, `--etcd-certfile`,
/// `--etcd-keyfile`): the CA that signed the members' serving certificates and this client's
/// certificate, for an etcd cluster with `--client-cert-auth`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EtcdTlsArgs {
    /// The CA bundle that verifies the etcd members (https:// endpoints).
    #[arg(long)]
    pub etcd_cafile: Option<std::path::PathBuf>,
    /// The client certificate presented to etcd.
    #[arg(long)]
    pub etcd_certfile: Option<std::path::PathBuf>,
    /// The client certificate's private key.
    #[arg(long)]
    pub etcd_keyfile: Option<std::path::PathBuf>,
}

impl EtcdTlsArgs {
    fn options(&self) -> anyhow::Result<Option<etcd_client::ConnectOptions>> {
        use anyhow::Context;
        let read = |p: &std::path::Path| {
            std::fs::read(p).with_context(|| format!("reading {}", p.display()))
        };
        let mut tls = etcd_client::TlsOptions::new();
        let mut any = false;
        if let Some(ca) = &self.etcd_cafile {
            tls = tls.ca_certificate(etcd_client::Certificate::from_pem(read(ca)?));
            any = true;
        }
        match (&self.etcd_certfile, &self.etcd_keyfile) {
            (Some(cert), Some(key)) => {
                tls = tls.identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
                any = true;
            }
            (None, None) => {}
            _ => anyhow::bail!("--etcd-certfile and --etcd-keyfile go together"),
        }
        Ok(any.then(|| etcd_client::ConnectOptions::new().with_tls(tls)))
    }
}

impl Storage {
    /// Connects to etcd endpoints (`http://HOST:PORT`, balanced) or to one store on a Unix
    /// socket (`unix://PATH`, etcd's form; `skiff server` reaches its embedded store so).
    pub async fn connect(endpoints: &[String]) -> anyhow::Result<Storage> {
        Storage::connect_with(endpoints, &EtcdTlsArgs::default()).await
    }

    /// [`Storage::connect`] with client TLS for `https://` endpoints.
    pub async fn connect_with(endpoints: &[String], tls: &EtcdTlsArgs) -> anyhow::Result<Storage> {
        if let [only] = endpoints {
            if let Some(path) = only.strip_prefix("unix://") {
                return Ok(Storage {
                    client: connect_unix(std::path::PathBuf::from(path)).await?,
                });
            }
        }
        if let Some(unix) = endpoints.iter().find(|e| e.starts_with("unix://")) {
            anyhow::bail!("{unix}: a Unix socket endpoint must be the only one");
        }
        let client = Client::connect(endpoints, tls.options()?).await?;
        if endpoints.len() > 1 {
            // A member that is down already is out of the set before the first request.
            let mut healthy = vec![true; endpoints.len()];
            probe(&client, endpoints, &mut healthy).await;
            tokio::spawn(keep_healthy(client.clone(), endpoints.to_vec(), healthy));
        }
        Ok(Storage { client })
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub async fn get(&self, key: &str) -> ApiResult<Option<Stored>> {
        let resp = self.client.kv_client().get(key, None).await?;
        match resp.kvs().first() {
            Some(kv) => Ok(Some(decode_value(key, kv.value(), kv.mod_revision())?)),
            None => Ok(None),
        }
    }

    pub async fn revision(&self) -> ApiResult<i64> {
        let resp = self
            .client
            .kv_client()
            .get("/registry/", Some(GetOptions::new().with_count_only()))
            .await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    /// Reads up to `limit` objects (0 = all) under `prefix`, starting at `start` (inclusive), at
    /// `revision` (0 = latest). Large reads go to the store in chunks at one revision, so no
    /// single gRPC message outgrows the client's limit.
    pub async fn list(
        &self,
        prefix: &str,
        start: Option<&str>,
        revision: i64,
        limit: i64,
    ) -> ApiResult<ListPage> {
        const CHUNK: i64 = 500;
        if limit > 0 && limit <= CHUNK {
            return self.list_once(prefix, start, revision, limit).await;
        }
        let mut page = self.list_once(prefix, start, revision, CHUNK).await?;
        while let Some(next) = page.next_key.take() {
            let want = if limit > 0 {
                (limit - page.items.len() as i64).min(CHUNK)
            } else {
                CHUNK
            };
            if want <= 0 {
                page.next_key = Some(next);
                break;
            }
            let more = self
                .list_once(prefix, Some(&next), page.revision, want)
                .await?;
            page.items.extend(more.items);
            page.next_key = more.next_key;
            page.remaining = more.remaining;
        }
        Ok(page)
    }

    async fn list_once(
        &self,
        prefix: &str,
        start: Option<&str>,
        revision: i64,
        limit: i64,
    ) -> ApiResult<ListPage> {
        let from = start.unwrap_or(prefix).to_string();
        let mut options = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        if revision > 0 {
            options = options.with_revision(revision);
        }
        if limit > 0 {
            options = options.with_limit(limit);
        }
        let resp = self
            .client
            .kv_client()
            .get(from, Some(options))
            .await
            .map_err(|e| match &e {
                // A paged list's handler turns this into upstream's inconsistent-continue answer.
                etcd_client::Error::GRpcStatus(s) if s.message().contains("compacted") => {
                    ApiError::expired("The resourceVersion for the provided list is too old.")
                }
                _ => ApiError::from(e),
            })?;
        let header_revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        let mut items = Vec::with_capacity(resp.kvs().len());
        for kv in resp.kvs() {
            let key = kv
                .key_str()
                .map_err(|e| ApiError::internal(e.to_string()))?;
            items.push(decode_value(key, kv.value(), kv.mod_revision())?);
        }
        let remaining = (resp.count() - items.len() as i64).max(0);
        let next_key = if resp.more() {
            items.last().map(|last| format!("{}\0", last.key))
        } else {
            None
        };
        Ok(ListPage {
            items,
            revision: if revision > 0 {
                revision
            } else {
                header_revision
            },
            next_key,
            remaining,
        })
    }

    /// Creates `key` only if it does not exist.
    pub async fn create(&self, key: &str, object: &Value, extra: &Extra) -> ApiResult<Write> {
        let mut when = vec![Compare::create_revision(key, CompareOp::Equal, 0)];
        when.extend(extra.compares());
        self.guarded_put(key, encode_value(object), when, extra.ops())
            .await
    }

    /// Replaces `key` only if it is still at `expected` mod_revision.
    pub async fn update(
        &self,
        key: &str,
        object: &Value,
        expected: i64,
        extra: &Extra,
    ) -> ApiResult<Write> {
        let mut when = vec![Compare::mod_revision(key, CompareOp::Equal, expected)];
        when.extend(extra.compares());
        self.guarded_put(key, encode_value(object), when, extra.ops())
            .await
    }

    /// Deletes `key` only if it is still at `expected` mod_revision.
    pub async fn delete(&self, key: &str, expected: i64, extra: &Extra) -> ApiResult<Write> {
        let mut ops = vec![TxnOp::delete(key, None)];
        ops.extend(extra.ops());
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, expected)])
            .and_then(ops);
        let (resp, uncertain) = self.resent_txn(key, txn).await?;
        if !resp.succeeded() {
            // An earlier attempt whose answer was lost may have deleted it.
            if uncertain && self.get_raw(key).await?.is_none() {
                return Ok(Write::Done(self.revision().await?));
            }
            return Ok(Write::Conflict);
        }
        let deleted = resp
            .op_responses()
            .first()
            .is_some_and(|r| matches!(r, TxnOpResponse::Delete(d) if d.deleted() > 0));
        Ok(if deleted {
            Write::Done(resp.header().map(|h| h.revision()).unwrap_or(0))
        } else {
            Write::Conflict
        })
    }

    /// Puts `value` at `key` (and `extra` ops) in one txn if `when` holds, through
    /// [`Storage::resent_txn`]; a conflict after an attempt whose answer was lost is checked
    /// against the key: if it holds exactly `value`, that attempt applied it, and that is the
    /// answer.
    async fn guarded_put(
        &self,
        key: &str,
        value: Vec<u8>,
        when: Vec<Compare>,
        extra: Vec<TxnOp>,
    ) -> ApiResult<Write> {
        let mut ops = vec![TxnOp::put(key, value.clone(), None)];
        ops.extend(extra);
        let txn = Txn::new().when(when).and_then(ops);
        let (resp, uncertain) = self.resent_txn(key, txn).await?;
        if resp.succeeded() {
            return Ok(Write::Done(
                resp.header().map(|h| h.revision()).unwrap_or(0),
            ));
        }
        if !uncertain {
            return Ok(Write::Conflict);
        }
        Ok(match self.get_raw(key).await? {
            Some((current, revision)) if current == value => Write::Done(revision),
            _ => Write::Conflict,
        })
    }

    /// Sends a guarded write (a txn whose compare fails once it has applied) until a member
    /// answers it; returns the answer and whether an earlier attempt's outcome is unknown.
    /// etcd drops a proposal that a follower forwarded to a leader that just died, and the
    /// member answers only at its request timeout (7 s: "etcdserver: request timed out") —
    /// measured with `skiff bench-failover`; kube-apiserver's clientv3 passes that 500 on.
    /// Here an attempt that has not answered within `ATTEMPT_TIMEOUT`, or that failed with an
    /// unavailable member, is sent again (to a live member); the compare makes a late earlier
    /// attempt harmless.
    async fn resent_txn(&self, key: &str, txn: Txn) -> ApiResult<(etcd_client::TxnResponse, bool)> {
        let started = std::time::Instant::now();
        let mut uncertain = false;
        loop {
            let attempt =
                tokio::time::timeout(ATTEMPT_TIMEOUT, self.client.kv_client().txn(txn.clone()))
                    .await;
            let error = match attempt {
                Ok(Ok(resp)) => return Ok((resp, uncertain)),
                Ok(Err(e)) if !outcome_unknown(&e) => return Err(e.into()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer in {ATTEMPT_TIMEOUT:?}"),
            };
            if started.elapsed() >= UNCERTAIN_BUDGET {
                return Err(ApiError::new(
                    500,
                    "InternalError",
                    format!("storage error: {error}"),
                ));
            }
            tracing::warn!(key, "write to the store sent again: {error}");
            uncertain = true;
        }
    }

    /// Puts unconditionally (bootstrap data, allocator bitmaps).
    pub async fn put_raw(&self, key: &str, value: Vec<u8>) -> ApiResult<i64> {
        let resp = self.client.kv_client().put(key, value, None).await?;
        Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
    }

    pub async fn get_raw(&self, key: &str) -> ApiResult<Option<(Vec<u8>, i64)>> {
        let resp = self.client.kv_client().get(key, None).await?;
        Ok(resp
            .kvs()
            .first()
            .map(|kv| (kv.value().to_vec(), kv.mod_revision())))
    }

    /// Compare-and-swap of a raw value (mod_revision 0 = must not exist).
    pub async fn cas_raw(&self, key: &str, value: Vec<u8>, expected: i64) -> ApiResult<bool> {
        let cmp = if expected == 0 {
            Compare::create_revision(key, CompareOp::Equal, 0)
        } else {
            Compare::mod_revision(key, CompareOp::Equal, expected)
        };
        let txn = Txn::new()
            .when([cmp])
            .and_then([TxnOp::put(key, value, None)]);
        Ok(self.client.kv_client().txn(txn).await?.succeeded())
    }
}
