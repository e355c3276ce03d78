//! Retries as client-go makes them (rest.Request's `checkWait`): a response 429 or 5xx that
//! carries `Retry-After: N` is sent again after N seconds, at most 10 times; anything else is
//! the caller's to handle. kube-rs' default client instead retries every 429, 503 and 504 up to
//! 15 times with a backoff from 5 ms that doubles to minutes (≈ 160 s in all): an aggregated
//! API whose backend is down answers 503 without `Retry-After`, and each discovery of it kept
//! the namespace controller and the garbage collector waiting that long (measured: a namespace
//! with an unavailable APIService made no progress for minutes), where upstream's controllers
//! see the 503 at once. API Priority and Fairness' 429s carry `Retry-After`, so they are still
//! retried.

use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use tower::retry::{Policy, RetryLayer};
use tower::BoxError;

/// client-go's `maxRetries` for a request that asks to be retried.
const MAX_RETRIES: u32 = 10;

#[derive(Clone, Debug, Default)]
pub struct RetryAfter {
    attempts: u32,
}

/// Requests waiting for the client's service (tower's `Retry` needs a service it can clone,
/// so kube-rs' boxed stack is put behind a `Buffer`; the hyper client under it takes every
/// request at once, so the buffer only hands requests over).
const BUFFERED: usize = 1024;

/// The future of kube-rs' boxed service stack (`kube::client::ClientBuilder<GenericService>`).
type GenericFuture = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = Result<Response<Box<kube::client::DynBody>>, BoxError>>
            + Send,
    >,
>;

/// The service under a controller-manager client: kube-rs' stack behind a buffer, retried.
pub type Service =
    tower::retry::Retry<RetryAfter, tower::buffer::Buffer<Request<Body>, GenericFuture>>;

/// A client builder for `config` with kube-rs' retries off and client-go's on; further layers
/// (credentials) go inside the retry.
pub fn builder(
    mut config: kube::Config,
) -> Result<kube::client::ClientBuilder<Service>, kube::Error> {
    config.default_retry = false;
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&tower::buffer::BufferLayer::new(BUFFERED))
        .with_layer(&RetryLayer::new(RetryAfter::default())))
}

/// The delay a response asks for, if it is one to retry.
fn wait<Res>(response: &Response<Res>) -> Option<Duration> {
    let status = response.status().as_u16();
    if status != 429 && status < 500 {
        return None;
    }
    let seconds: u64 = response
        .headers()
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

impl<Res> Policy<Request<Body>, Response<Res>, BoxError> for RetryAfter {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _request: &mut Request<Body>,
        result: &mut Result<Response<Res>, BoxError>,
    ) -> Option<Self::Future> {
        let delay = wait(result.as_ref().ok()?)?;
        if self.attempts >= MAX_RETRIES {
            return None;
        }
        self.attempts += 1;
        Some(tokio::time::sleep(delay))
    }

    fn clone_request(&mut self, request: &Request<Body>) -> Option<Request<Body>> {
        // A streamed body cannot be sent twice; such a request is not retried.
        let body = request.body().try_clone()?;
        let mut clone = Request::builder()
            .method(request.method().clone())
            .uri(request.uri().clone())
            .version(request.version())
            .body(body)
            .ok()?;
        *clone.headers_mut() = request.headers().clone();
        *clone.extensions_mut() = request.extensions().clone();
        Some(clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, retry_after: Option<&str>) -> Response<()> {
        let mut r = Response::builder().status(status);
        if let Some(v) = retry_after {
            r = r.header("Retry-After", v);
        }
        r.body(()).unwrap()
    }

    #[test]
    fn only_responses_that_ask_are_retried() {
        assert_eq!(wait(&response(503, None)), None);
        assert_eq!(
            wait(&response(503, Some("2"))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            wait(&response(429, Some("1"))),
            Some(Duration::from_secs(1))
        );
        assert_eq!(wait(&response(404, Some("1"))), None);
        assert_eq!(wait(&response(500, Some("soon"))), None);
    }

    #[tokio::test]
    async fn at_most_ten_times() {
        let mut policy = RetryAfter::default();
        let mut request = Request::new(Body::empty());
        let mut retries = 0;
        loop {
            let mut result: Result<Response<()>, BoxError> = Ok(response(429, Some("0")));
            match Policy::retry(&mut policy, &mut request, &mut result) {
                Some(sleep) => {
                    sleep.await;
                    retries += 1;
                }
                None => break,
            }
        }
        assert_eq!(retries, MAX_RETRIES);
    }
}
