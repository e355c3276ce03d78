//! The HTTP side of flow control (upstream's `WithPriorityAndFairness`), between authentication
//! (with impersonation) and authorization as in kube-apiserver's handler chain.
//!
//! Long-running requests other than watches (exec, attach, port-forward, logs, proxy) pass
//! untouched. A watch takes a seat like any request but gives it back once the watch is
//! established — when the handler has returned the response whose body streams the events —
//! never for the life of the watch. The others hold their seat until their response is built.
//!
//! A request waits for its seat at most a quarter of its deadline (the `timeout` parameter,
//! capped by `--request-timeout`), at most a minute; watches a quarter of `--request-timeout`.
//! A refused request gets upstream's 429: `Too many requests, please try again later.` with
//! `Retry-After`. Every classified request's response carries the UIDs of its FlowSchema and
//! priority level (`X-Kubernetes-PF-FlowSchema-UID`, `X-Kubernetes-PF-PriorityLevel-UID`).

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

use super::request_info::RequestInfo;
use super::{Classification, Decision, Seat};
use crate::auth::UserInfo;
use crate::handlers::ApiServer;

pub const FLOW_SCHEMA_UID_HEADER: &str = "X-Kubernetes-PF-FlowSchema-UID";
pub const PRIORITY_LEVEL_UID_HEADER: &str = "X-Kubernetes-PF-PriorityLevel-UID";

/// What the request holds while it runs.
#[derive(Default)]
pub struct Admitted {
    classification: Option<Classification>,
    _seat: Option<Seat>,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Admitted {
    /// Adds the classification headers to the response.
    pub fn stamp(&self, response: &mut Response) {
        if let Some(c) = &self.classification {
            set_headers(response, c);
        }
    }
}

fn set_headers(response: &mut Response, c: &Classification) {
    let headers = response.headers_mut();
    for (name, value) in [
        (PRIORITY_LEVEL_UID_HEADER, &c.priority_level_uid),
        (FLOW_SCHEMA_UID_HEADER, &c.flow_schema_uid),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
}

/// Upstream's `tooManyRequests` (`http.Error` with a 429).
pub fn too_many_requests(retry_after: i64) -> Response {
    let mut response = Response::new(Body::from("Too many requests, please try again later.\n"));
    *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// How long the request may wait in a queue (upstream's `getRequestWaitContext`).
pub fn wait_limit(
    info: &RequestInfo,
    query: &[(String, String)],
    request_timeout: Duration,
) -> Duration {
    let deadline = if info.is_long_running() {
        request_timeout
    } else {
        query
            .iter()
            .find(|(k, _)| k == "timeout")
            .and_then(|(_, v)| crate::server::parse_go_duration(v).ok())
            .filter(|d| !d.is_zero())
            .map_or(request_timeout, |d| d.min(request_timeout))
    };
    (deadline / 4).min(Duration::from_secs(60))
}

/// Classifies the request and waits for its seat, or answers it with a 429.
pub async fn admit(
    server: &ApiServer,
    info: &RequestInfo,
    query: &[(String, String)],
    user: &UserInfo,
) -> Result<Admitted, Response> {
    let flow_control = &server.flow_control;
    if !flow_control.options.enabled {
        return match flow_control.max_in_flight.try_acquire(info, user) {
            Ok(permit) => Ok(Admitted {
                _permit: permit,
                ..Default::default()
            }),
            Err(_) => Err(too_many_requests(1)),
        };
    }
    if info.is_long_running() && info.verb != "watch" {
        return Ok(Admitted::default());
    }
    let config = flow_control.config(&server.caches).await;
    let limit = wait_limit(info, query, flow_control.options.request_timeout);
    let stored = if super::width::counts_objects(info, query) {
        stored_objects(server, info).await
    } else {
        None
    };
    match flow_control.admit(&config, info, user, stored, limit).await {
        None => Ok(Admitted::default()),
        Some(Decision::Execute(classification, seat)) => Ok(Admitted {
            classification: Some(classification),
            _seat: Some(seat),
            _permit: None,
        }),
        Some(Decision::Reject(classification, why)) => {
            let level = &classification.priority_level;
            let now = jiff::Timestamp::now().as_second();
            flow_control.dropped.record(level, now);
            tracing::debug!(
                flow_schema = %classification.flow_schema,
                priority_level = %level,
                reason = why.reason(),
                "request rejected by API Priority and Fairness"
            );
            let mut response = too_many_requests(flow_control.dropped.retry_after(level));
            set_headers(&mut response, &classification);
            Err(response)
        }
    }
}

/// How many objects of the request's resource the watch cache holds (built-in resources).
async fn stored_objects(server: &ApiServer, info: &RequestInfo) -> Option<usize> {
    let resource = crate::resources::find(&info.api_group, &info.api_version, &info.resource)?;
    if !resource.is_stored() {
        return None;
    }
    let cacher = server.caches.get(resource).await.ok()?;
    Some(cacher.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn wait_limits_follow_the_deadline() {
        let q = |t: &str| vec![("timeout".to_string(), t.to_string())];
        let list = RequestInfo::new(&Method::GET, "/api/v1/pods", &[]);
        let minute = Duration::from_secs(60);
        assert_eq!(wait_limit(&list, &[], minute), Duration::from_secs(15));
        assert_eq!(wait_limit(&list, &q("8s"), minute), Duration::from_secs(2));
        assert_eq!(
            wait_limit(&list, &q("10m"), minute),
            Duration::from_secs(15)
        );
        assert_eq!(
            wait_limit(&list, &[], Duration::from_secs(3600)),
            Duration::from_secs(60),
            "never more than a minute"
        );
        let watch = RequestInfo::new(&Method::GET, "/api/v1/watch/pods", &[]);
        assert_eq!(
            wait_limit(&watch, &q("1s"), minute),
            Duration::from_secs(15)
        );
    }

    #[tokio::test]
    async fn the_429_is_upstreams() {
        use http_body_util::BodyExt;
        let response = too_many_requests(3);
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"Too many requests, please try again later.\n");
    }
}
