//! `--use-service-account-credentials`: every controller talks to the API server as its own
//! service account `kube-system/<controller-name>`, so RBAC gives each exactly upstream's
//! `system:controller:<name>` ClusterRole (the default policy binds that role to that account).
//! Upstream's `DynamicControllerClientBuilder` (k8s.io/controller-manager/pkg/clientbuilder):
//! the controller manager's own credential makes sure the account exists and requests a token
//! for it through the TokenRequest API (`expirationSeconds: 3600`); the token is renewed when
//! 80% of its life has passed (a lifetime under ten minutes counts as ten, for clock skew), and
//! a 401 answer makes the client fetch a new one at once (upstream's resettable token source).
//! Shared informers, the leader-election lock and the legacy token controller keep the
//! controller manager's own credential, as upstream.
//!
//! How a controller's client carries its token: a tower layer on the client's stack puts the
//! current token (shared with a refresh task) into each request's `Authorization` header, and the
//! client's kubeconfig credential is dropped. Token files that kube-rs re-reads (`token_file`)
//! would work too, but kube-rs reads them only once a minute and treats an unreadable file as
//! "keep the old token", the files need a private directory cleaned up on every exit path, and a
//! 401 could not trigger a refresh. With the layer the token never touches the disk, a refresh is
//! seen by the very next request, and the answer's status is at hand.
//!
//! The first token is fetched before [`ClientBuilder::client_for`] returns (a few retries with
//! backoff, then an error, as upstream's `ClientOrDie` fails the controller manager); later
//! refreshes retry with backoff (capped at 30 s) until they succeed, while the old token, still
//! valid for the remaining fifth of its life, keeps serving. The refresh tasks belong to the
//! builder: dropping it (the controllers stopped) aborts them.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http::{header::AUTHORIZATION, HeaderValue, Request, Response, StatusCode};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

/// The namespace of the controllers' service accounts (upstream's `kube-system`).
pub const NAMESPACE: &str = "kube-system";
/// The lifetime requested for each token (upstream's `defaultExpirationSeconds`).
pub const EXPIRATION_SECONDS: i64 = 3600;
/// The share of a token's life left when it is renewed (upstream's `defaultLeewayPercent`).
const LEEWAY_PERCENT: u32 = 20;
/// A shorter lifetime (clock skew) counts as this long (upstream pins it too).
const MIN_LIFETIME: Duration = Duration::from_secs(600);
/// Attempts at the first token before `client_for` gives up (upstream: 4 steps from 500 ms).
const FIRST_TOKEN_ATTEMPTS: u32 = 5;
/// Refreshes a 401 may trigger are at least this far apart.
const MIN_RESET_INTERVAL: Duration = Duration::from_secs(5);

/// The service-account username of a controller's account.
pub fn username(name: &str) -> String {
    format!("system:serviceaccount:{NAMESPACE}:{name}")
}

/// How long after a token was issued it is renewed: 80% of its lifetime (the time from now to
/// its expiration, at least ten minutes).
pub fn refresh_after(lifetime: Duration) -> Duration {
    let lifetime = lifetime.max(MIN_LIFETIME);
    lifetime - lifetime * LEEWAY_PERCENT / 100
}

/// The delay before retry `attempt` (0-based): 500 ms doubling, at most 30 s.
pub fn retry_delay(attempt: u32) -> Duration {
    Duration::from_millis(500)
        .saturating_mul(1u32 << attempt.min(10))
        .min(Duration::from_secs(30))
}

/// Builds each controller's client (upstream's `ControllerClientBuilder`).
pub struct ClientBuilder {
    root: Client,
    /// The root client's connection settings without its credential; `None` when
    /// `--use-service-account-credentials=false`.
    config: Option<kube::Config>,
    /// One client (and one refresh task) per account, however many controllers share it.
    clients: Mutex<HashMap<String, Client>>,
    refreshers: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl ClientBuilder {
    /// `root` is the controller manager's own client, made from `config`.
    pub fn new(root: Client, config: kube::Config, use_service_account_credentials: bool) -> Self {
        let config = use_service_account_credentials.then(|| {
            let mut config = config;
            // No client certificate, token, exec plugin or impersonation of the controller
            // manager's: the layer's bearer token is the only credential.
            config.auth_info = Default::default();
            config
        });
        ClientBuilder {
            root,
            config,
            clients: Mutex::default(),
            refreshers: Mutex::default(),
        }
    }

    /// The controller manager's own client (informers, leader election, the token controller).
    pub fn root(&self) -> &Client {
        &self.root
    }

    /// The client controller `name` acts with: its service account's when enabled, else the
    /// controller manager's own.
    pub async fn client_for(&self, name: &str) -> anyhow::Result<Client> {
        let Some(config) = &self.config else {
            return Ok(self.root.clone());
        };
        if let Some(client) = self.clients.lock().get(name) {
            return Ok(client.clone());
        }
        let source = TokenSource {
            accounts: Api::namespaced(self.root.clone(), NAMESPACE),
            name: name.to_string(),
        };
        let mut attempt = 0;
        let first = loop {
            match source.fetch().await {
                Ok(token) => break token,
                Err(e) if attempt + 1 < FIRST_TOKEN_ATTEMPTS => {
                    tracing::warn!(account = %username(name), "no token yet: {e:#}");
                    tokio::time::sleep(retry_delay(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e.context(format!("getting a token for {}", username(name)))),
            }
        };
        let shared = SharedToken {
            header: Arc::new(RwLock::new(first.header)),
            reset: Arc::new(Notify::new()),
        };
        let client = crate::retry::builder(config.clone())?
            .with_layer(&shared)
            .build();
        let mut clients = self.clients.lock();
        if let Some(raced) = clients.get(name) {
            // Another controller of this account got there first while the token was fetched.
            return Ok(raced.clone());
        }
        clients.insert(name.to_string(), client.clone());
        let task = tokio::spawn(keep_fresh(source, shared, first.refresh_in));
        self.refreshers.lock().push(task.abort_handle());
        Ok(client)
    }
}

impl Drop for ClientBuilder {
    fn drop(&mut self) {
        for task in self.refreshers.get_mut().drain(..) {
            task.abort();
        }
    }
}

struct Token {
    header: HeaderValue,
    refresh_in: Duration,
}

struct TokenSource {
    accounts: Api<ServiceAccount>,
    name: String,
}

impl TokenSource {
    /// Makes sure the account exists, then requests a token for it.
    async fn fetch(&self) -> anyhow::Result<Token> {
        if self.accounts.get_opt(&self.name).await?.is_none() {
            let account = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(NAMESPACE.into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            match self.accounts.create(&PostParams::default(), &account).await {
                Ok(_) => tracing::info!(account = %username(&self.name), "created"),
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(EXPIRATION_SECONDS),
                ..Default::default()
            }),
            ..Default::default()
        };
        let answer = self
            .accounts
            .create_token_request(&self.name, &PostParams::default(), &request)
            .await?;
        let status = answer
            .status
            .ok_or_else(|| anyhow::anyhow!("the TokenRequest answer has no status"))?;
        let token = status
            .token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow::anyhow!("the TokenRequest answer has no token"))?;
        let mut header = HeaderValue::from_str(&format!("Bearer {token}"))?;
        header.set_sensitive(true);
        let lifetime = match status.expiration_timestamp {
            Some(expires) => Duration::try_from(expires.0.duration_since(jiff::Timestamp::now()))
                .unwrap_or(Duration::ZERO),
            // No expiration in the answer: assume the lifetime asked for.
            None => Duration::from_secs(EXPIRATION_SECONDS as u64),
        };
        Ok(Token {
            header,
            refresh_in: refresh_after(lifetime),
        })
    }
}

/// Renews the token when it is due, or at once (rate-limited) after a 401.
async fn keep_fresh(source: TokenSource, shared: SharedToken, mut refresh_in: Duration) {
    loop {
        let due = tokio::time::sleep(refresh_in);
        tokio::select! {
            _ = due => {}
            _ = shared.reset.notified() => {
                tracing::info!(account = %username(&source.name), "401 with the current token: renewing it");
            }
        }
        let mut attempt = 0;
        refresh_in = loop {
            match source.fetch().await {
                Ok(token) => {
                    *shared.header.write() = token.header;
                    break token.refresh_in;
                }
                Err(e) => {
                    tracing::warn!(account = %username(&source.name), "renewing the token: {e:#}");
                    tokio::time::sleep(retry_delay(attempt)).await;
                    attempt += 1;
                }
            }
        };
        // A burst of 401s (say, the account was deleted and recreated) renews once.
        tokio::time::sleep(MIN_RESET_INTERVAL).await;
        refresh_in = refresh_in.saturating_sub(MIN_RESET_INTERVAL);
    }
}

/// The current token of one account, shared by its client's layer and its refresh task.
#[derive(Clone)]
struct SharedToken {
    header: Arc<RwLock<HeaderValue>>,
    reset: Arc<Notify>,
}

impl<S> tower::Layer<S> for SharedToken {
    type Service = Bearer<S>;
    fn layer(&self, inner: S) -> Bearer<S> {
        Bearer {
            inner,
            token: self.clone(),
        }
    }
}

/// Sets each request's `Authorization` to the current token; a 401 asks for a new one.
pub struct Bearer<S> {
    inner: S,
    token: SharedToken,
}

impl<S, B, RB> tower::Service<Request<B>> for Bearer<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let header = self.token.header.read().clone();
        request.headers_mut().insert(AUTHORIZATION, header);
        let reset = self.token.reset.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            if response.status() == StatusCode::UNAUTHORIZED {
                reset.notify_one();
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, Service, ServiceExt};

    #[test]
    fn renewed_at_four_fifths_of_the_life() {
        assert_eq!(
            refresh_after(Duration::from_secs(3600)),
            Duration::from_secs(2880)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(3599)),
            Duration::from_millis(2_879_200)
        );
        // Shorter than ten minutes (clock skew, or a server capping lifetimes): ten minutes.
        assert_eq!(
            refresh_after(Duration::from_secs(30)),
            Duration::from_secs(480)
        );
        assert_eq!(refresh_after(Duration::ZERO), Duration::from_secs(480));
    }

    #[test]
    fn retries_back_off_to_thirty_seconds() {
        let delays: Vec<_> = (0..8).map(|a| retry_delay(a).as_millis()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn accounts_live_in_kube_system() {
        assert_eq!(
            username("deployment-controller"),
            "system:serviceaccount:kube-system:deployment-controller"
        );
    }

    fn shared(token: &str) -> SharedToken {
        SharedToken {
            header: Arc::new(RwLock::new(HeaderValue::from_str(token).unwrap())),
            reset: Arc::new(Notify::new()),
        }
    }

    /// An echo service: answers 401 unless the request carries `Bearer good`.
    fn server() -> impl Service<
        Request<()>,
        Response = Response<String>,
        Error = std::convert::Infallible,
        Future = futures::future::Ready<Result<Response<String>, std::convert::Infallible>>,
    > {
        tower::service_fn(|request: Request<()>| {
            let auth = request
                .headers()
                .get(AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let status = if auth == "Bearer good" {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            let mut response = Response::new(auth);
            *response.status_mut() = status;
            futures::future::ready(Ok(response))
        })
    }

    #[tokio::test]
    async fn requests_carry_the_current_token() {
        let token = shared("Bearer good");
        let mut service = token.layer(server());
        // Whatever the request had is replaced.
        let request = Request::builder()
            .header(AUTHORIZATION, "Bearer root")
            .body(())
            .unwrap();
        let response = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(response.body(), "Bearer good");
        // A refresh is seen by the next request.
        *token.header.write() = HeaderValue::from_static("Bearer newer");
        let response = service
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        assert_eq!(response.body(), "Bearer newer");
    }

    #[tokio::test]
    async fn a_401_asks_for_a_new_token() {
        let token = shared("Bearer stale");
        let mut service = token.layer(server());
        let notified = token.reset.notified();
        tokio::pin!(notified);
        // Registered before the request, so the notification cannot be missed.
        notified.as_mut().enable();
        let response = service
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        tokio::time::timeout(Duration::from_secs(1), notified)
            .await
            .expect("the refresher is woken");
    }

    #[tokio::test]
    async fn disabled_gives_the_root_client() {
        let config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
        let root = Client::try_from(config.clone()).unwrap();
        let builder = ClientBuilder::new(root, config, false);
        assert!(builder.config.is_none());
        builder.client_for("deployment-controller").await.unwrap();
        assert!(builder.refreshers.lock().is_empty());
    }

    #[test]
    fn enabled_drops_the_root_credential() {
        let mut config = kube::Config::new("https://127.0.0.1:1".parse().unwrap());
        config.auth_info.token = Some("root".to_string().into());
        config.auth_info.client_certificate_data = Some("cert".into());
        config.auth_info.impersonate = Some("someone".into());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let root = Client::try_from(kube::Config::new(config.cluster_url.clone())).unwrap();
        let builder = ClientBuilder::new(root, config, true);
        let auth = &builder.config.as_ref().unwrap().auth_info;
        assert!(auth.token.is_none());
        assert!(auth.client_certificate_data.is_none());
        assert!(auth.impersonate.is_none());
    }
}
