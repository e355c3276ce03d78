//! The audit log, as upstream's kube-apiserver writes it (`apiserver/pkg/audit`, the
//! `WithAuditInit`/`WithAudit`/`WithFailedAuthenticationAudit` filters and the log backend):
//! with `--audit-policy-file` and `--audit-log-path`, each request the policy selects is written
//! as `audit.k8s.io/v1` `Event`s, one JSON line per stage.
//!
//! - `policy`: the Policy file, its validation and its rules (first match wins).
//! - `request`: what a request is (verb, group, resource, namespace, name) from its URL.
//! - `event`: the Event and its JSON and legacy encodings.
//! - `writer`: the bounded queue, the writer thread and lumberjack-style rotation.
//!
//! How a request is audited (`http::handle`): `Auditor::begin` gives the request an audit ID
//! (the client's `Audit-ID` header or a new UUID, returned as the `Audit-Id` response header),
//! works out its `RequestInfo`, and puts a `Context` in the request's extensions. Once
//! authentication knows the caller, it calls `Context::authenticated`: the policy is evaluated
//! then (rules may name users and groups) and the RequestReceived event is queued. The
//! authorizer adds its decision with `Context::authorization_decision` (or any annotation with
//! `Context::annotate`). The request body is teed as it is read, and kept only when the level
//! needs it. When the handler returns, `Context::finish` records the response status (a
//! `Status` body's reason and message too) and, at RequestResponse, the response's JSON as
//! serialised for the client (no second serialisation), then queues ResponseComplete — or, for
//! long-running requests (watch, logs, exec, proxy), queues ResponseStarted and leaves
//! ResponseComplete to the moment the streamed body ends. A request that fails authentication
//! gets the one ResponseStarted event upstream writes for it; a handler panic, a Panic event.
//! Bodies become JSON on the writer thread, never on the request's path.

pub mod event;
pub mod policy;
pub mod request;
pub mod writer;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use anyhow::Context as _;
use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request};
use axum::http::{Extensions, HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use parking_lot::Mutex;

use crate::auth::UserInfo;

pub use event::{Event, MicroTime, ObjectReference, ResponseStatus, User};
pub use policy::{Level, Policy, RequestConfig, Stage};
pub use request::RequestInfo;
use writer::{Format, Output, RotatingFile, Sink};

/// The header that carries a request's audit ID, both ways (upstream's `Audit-ID`).
pub const AUDIT_ID_HEADER: HeaderName = HeaderName::from_static("audit-id");
/// The authorizer's decision annotation: `allow` or `forbid`.
pub const DECISION_ANNOTATION: &str = "authorization.k8s.io/decision";
/// The authorizer's reason annotation.
pub const REASON_ANNOTATION: &str = "authorization.k8s.io/reason";

const MAX_USER_AGENT: usize = 1024;
const USER_AGENT_TRUNCATED: &str = "...TRUNCATED";

/// The audit flags, as kube-apiserver names them.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct AuditOptions {
    /// Path to the file that defines the audit policy configuration. Without one no events are
    /// written.
    #[arg(long)]
    pub audit_policy_file: Option<PathBuf>,
    /// If set, all requests coming to the apiserver will be logged to this file. '-' means
    /// standard out.
    #[arg(long)]
    pub audit_log_path: Option<String>,
    /// The maximum number of days to retain old audit log files based on the timestamp encoded
    /// in their filename; 0: no limit.
    #[arg(long, default_value_t = 366, allow_negative_numbers = true)]
    pub audit_log_maxage: i64,
    /// The maximum number of old audit log files to retain; 0: no limit.
    #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
    pub audit_log_maxbackup: i64,
    /// The maximum size in megabytes of the audit log file before it gets rotated; 0 disables
    /// rotation.
    #[arg(long, default_value_t = 100, allow_negative_numbers = true)]
    pub audit_log_maxsize: i64,
    /// Format of saved audits: "json" (one Event a line) or "legacy" (one line of text).
    #[arg(long, default_value = "json")]
    pub audit_log_format: String,
    /// If set, the rotated log files will be compressed using gzip.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value_t = false, action = clap::ArgAction::Set)]
    pub audit_log_compress: bool,
    /// Strategy for sending audit events: skiff always queues them for a writer thread and never
    /// makes a request wait ("batch"); "blocking" is accepted and works as "batch";
    /// "blocking-strict" is refused.
    #[arg(long, default_value = "batch")]
    pub audit_log_mode: String,
    /// The size of the queue of events waiting to be written; when it is full, events are
    /// dropped and counted in apiserver_audit_error_total{plugin="buffered"}.
    #[arg(long, default_value_t = 10000, allow_negative_numbers = true)]
    pub audit_log_batch_buffer_size: i64,
    /// API group and version used for serializing audit events written to log.
    #[arg(long, default_value = policy::API_VERSION)]
    pub audit_log_version: String,
}

impl Default for AuditOptions {
    fn default() -> AuditOptions {
        AuditOptions {
            audit_policy_file: None,
            audit_log_path: None,
            audit_log_maxage: 366,
            audit_log_maxbackup: 100,
            audit_log_maxsize: 100,
            audit_log_format: "json".into(),
            audit_log_compress: false,
            audit_log_mode: "batch".into(),
            audit_log_batch_buffer_size: 10000,
            audit_log_version: policy::API_VERSION.into(),
        }
    }
}

/// upstream's aggregate of errors: one alone, several as `[a, b]`.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

impl AuditOptions {
    /// upstream's `AuditLogOptions.Validate`: checked only when the log is enabled.
    pub fn validate(&self) -> Result<(), String> {
        if self
            .audit_log_path
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            return Ok(());
        }
        let mut errors = Vec::new();
        match self.audit_log_mode.as_str() {
            "batch" | "blocking" => {}
            "blocking-strict" => errors.push(
                "audit log mode blocking-strict is not supported: skiff writes audit events asynchronously and never fails a request over its audit log".to_string(),
            ),
            other => errors.push(format!(
                "invalid audit log mode {other}, allowed modes are \"batch,blocking,blocking-strict\""
            )),
        }
        if self.audit_log_batch_buffer_size <= 0 {
            errors.push(format!(
                "invalid audit batch log buffer size {}, must be a positive number",
                self.audit_log_batch_buffer_size
            ));
        }
        if self.audit_log_version != policy::API_VERSION {
            errors.push(format!(
                "invalid group version, allowed versions are [{}]",
                policy::API_VERSION
            ));
        }
        if !matches!(self.audit_log_format.as_str(), "json" | "legacy") {
            errors.push(format!(
                "invalid audit log format {}, allowed formats are \"legacy,json\"",
                self.audit_log_format
            ));
        }
        for (flag, value) in [
            ("--audit-log-maxage", self.audit_log_maxage),
            ("--audit-log-maxbackup", self.audit_log_maxbackup),
            ("--audit-log-maxsize", self.audit_log_maxsize),
        ] {
            if value < 0 {
                errors.push(format!("{flag} {value} can't be a negative number"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(aggregate(&errors))
        }
    }

    /// Checks the flags and loads the policy file, if any: the errors that stop the server
    /// (`Auditor::from_options` starts with this; `skiff server` calls it before its store).
    pub fn load_policy(&self) -> anyhow::Result<Option<Policy>> {
        self.validate().map_err(anyhow::Error::msg)?;
        let Some(path) = self
            .audit_policy_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        else {
            return Ok(None);
        };
        let (policy, warnings) =
            Policy::load(path).map_err(|e| anyhow::anyhow!("loading audit policy file: {e}"))?;
        if !warnings.is_empty() {
            tracing::warn!(
                "Audit policy contains errors, falling back to lenient decoding: strict decoding error: {}",
                warnings.join(", ")
            );
        }
        Ok(Some(policy))
    }

    /// The log's output (upstream's `getWriter`): the file is created up front (mode 0600, its
    /// directory 0700) so that an unwritable path stops the server at start.
    fn output(&self, path: &str) -> anyhow::Result<Output> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if path == "-" {
            return Ok(Output::Stdout);
        }
        let path = PathBuf::from(path);
        let ensure = || -> std::io::Result<std::fs::File> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .mode(0o600)
                .open(&path)
        };
        let file = ensure().with_context(|| format!("ensureLogFile: {}", path.display()))?;
        if self.audit_log_maxsize == 0 {
            return Ok(Output::File(file));
        }
        drop(file);
        Ok(Output::Rotating(RotatingFile::new(
            &path,
            self.audit_log_maxsize as u64,
            self.audit_log_maxbackup as usize,
            self.audit_log_maxage as u64,
            self.audit_log_compress,
        )))
    }
}

/// The audit metrics, with upstream's names (`apiserver/pkg/audit/metrics.go`).
#[derive(Debug, Default)]
pub struct Counters {
    /// apiserver_audit_event_total: events generated and sent to the backend.
    pub events: AtomicU64,
    /// apiserver_audit_error_total{plugin="buffered"}: events dropped on a full queue.
    pub buffered_errors: AtomicU64,
    /// apiserver_audit_error_total{plugin="log"}: events that could not be written.
    pub log_errors: AtomicU64,
    /// apiserver_audit_level_total{level}: requests by policy level (one per request).
    pub levels: [AtomicU64; 4],
}

impl Counters {
    /// Prometheus text for `/metrics`.
    pub fn render(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str("# HELP apiserver_audit_event_total [ALPHA] Counter of audit events generated and sent to the audit backend.\n");
        out.push_str("# TYPE apiserver_audit_event_total counter\n");
        out.push_str(&format!(
            "apiserver_audit_event_total {}\n",
            get(&self.events)
        ));
        out.push_str("# HELP apiserver_audit_error_total [ALPHA] Counter of audit events that failed to be audited properly. Plugin identifies the plugin affected by the error.\n");
        out.push_str("# TYPE apiserver_audit_error_total counter\n");
        for (plugin, counter) in [
            ("buffered", &self.buffered_errors),
            ("log", &self.log_errors),
        ] {
            if get(counter) > 0 {
                out.push_str(&format!(
                    "apiserver_audit_error_total{{plugin=\"{plugin}\"}} {}\n",
                    get(counter)
                ));
            }
        }
        out.push_str("# HELP apiserver_audit_level_total [ALPHA] Counter of policy levels for audit events (1 per request).\n");
        out.push_str("# TYPE apiserver_audit_level_total counter\n");
        for level in Level::ALL {
            let n = get(&self.levels[level as usize]);
            if n > 0 {
                out.push_str(&format!(
                    "apiserver_audit_level_total{{level=\"{level}\"}} {n}\n"
                ));
            }
        }
        out.push_str("# HELP apiserver_audit_requests_rejected_total [ALPHA] Counter of apiserver requests rejected due to an error in audit logging backend.\n");
        out.push_str("# TYPE apiserver_audit_requests_rejected_total counter\n");
        out.push_str("apiserver_audit_requests_rejected_total 0\n");
    }
}

struct Backend {
    policy: Policy,
    sink: Sink,
    counters: Arc<Counters>,
}

/// The server's auditing: a policy and a sink, or nothing (no policy file, or no log).
#[derive(Default)]
pub struct Auditor {
    backend: Option<Arc<Backend>>,
}

impl Auditor {
    /// No auditing (audit IDs are still given out).
    pub fn disabled() -> Auditor {
        Auditor::default()
    }

    pub fn new(policy: Policy, sink: Sink, counters: Arc<Counters>) -> Auditor {
        Auditor {
            backend: Some(Arc::new(Backend {
                policy,
                sink,
                counters,
            })),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.backend.is_some()
    }

    /// Waits (up to `timeout`) for the events queued so far to be written; for shutdown.
    pub async fn flush(&self, timeout: std::time::Duration) {
        if let Some(backend) = &self.backend {
            if !backend.sink.flush(timeout).await {
                tracing::warn!("the audit log was not written out in time");
            }
        }
    }

    /// Sets auditing up from the flags: loads and validates the policy (an invalid one is an
    /// error, so the server does not start), opens the log and starts its writer thread.
    pub fn from_options(
        options: &AuditOptions,
        counters: Arc<Counters>,
    ) -> anyhow::Result<Auditor> {
        let policy = options.load_policy()?;
        let Some(path) = options.audit_log_path.as_deref().filter(|p| !p.is_empty()) else {
            return Ok(Auditor::disabled());
        };
        let Some(policy) = policy else {
            tracing::info!(
                "No audit policy file provided, no events will be recorded for log backend"
            );
            return Ok(Auditor::disabled());
        };
        if options.audit_log_mode == "blocking" {
            tracing::warn!("--audit-log-mode=blocking: skiff queues audit events for a writer thread as in batch mode; requests never wait for the audit log");
        }
        let format = if options.audit_log_format == "legacy" {
            Format::Legacy
        } else {
            Format::Json
        };
        let output = options.output(path)?;
        let sink = Sink::start(
            output,
            format,
            options.audit_log_batch_buffer_size as usize,
            counters.clone(),
        )
        .context("starting the audit log writer")?;
        Ok(Auditor::new(policy, sink, counters))
    }

    /// Starts auditing a request (`http::handle`, before anything else looks at it): its audit
    /// ID, its description, a tee on its body, and the `Context` in its extensions.
    pub fn begin(&self, req: &mut Request) -> Context {
        let id = req
            .headers()
            .get(&AUDIT_ID_HEADER)
            .filter(|v| !v.is_empty())
            .cloned()
            .unwrap_or_else(|| {
                // A v4 UUID from the thread's generator (no system call per request).
                let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
                HeaderValue::try_from(id.to_string()).unwrap_or(HeaderValue::from_static(""))
            });
        let Some(backend) = &self.backend else {
            let context = Context { id, inner: None };
            req.extensions_mut().insert(context.clone());
            return context;
        };
        let uri = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string();
        let info = RequestInfo::resolve(req.method().as_str(), &uri);
        let headers = req.headers();
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let source_ips = request::source_ips(
            header_text(headers, "x-forwarded-for").as_deref(),
            header_text(headers, "x-real-ip").as_deref(),
            peer,
        );
        let object_ref = info.is_resource_request.then(|| ObjectReference {
            resource: info.resource.clone(),
            namespace: info.namespace.clone(),
            name: info.name.clone(),
            api_group: info.api_group.clone(),
            api_version: info.api_version.clone(),
            subresource: info.subresource.clone(),
            ..Default::default()
        });
        let event = Event {
            audit_id: String::from_utf8_lossy(id.as_bytes()).into_owned(),
            request_uri: uri,
            verb: info.verb.clone(),
            source_ips,
            user_agent: user_agent(headers),
            object_ref,
            request_received_timestamp: MicroTime::now(),
            ..Default::default()
        };
        let content_type = header_text(headers, "content-type").unwrap_or_default();
        let inner = Arc::new(Inner {
            backend: backend.clone(),
            long_running: info.is_long_running(),
            fills_object_ref: info.is_resource_request
                && matches!(info.verb.as_str(), "create" | "update"),
            info,
            state: Mutex::new(State {
                config: None,
                event,
                body: Vec::new(),
                body_len: 0,
                body_overflow: false,
                content_type,
                finished: false,
            }),
        });
        let body = std::mem::take(req.body_mut());
        *req.body_mut() = Body::new(TeeBody {
            body,
            inner: inner.clone(),
        });
        let context = Context {
            id,
            inner: Some(inner),
        };
        req.extensions_mut().insert(context.clone());
        context
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The User-Agent, cut to 1024 bytes as upstream does.
fn user_agent(headers: &HeaderMap) -> String {
    let mut ua = header_text(headers, "user-agent").unwrap_or_default();
    if ua.len() > MAX_USER_AGENT {
        let mut cut = MAX_USER_AGENT;
        while !ua.is_char_boundary(cut) {
            cut -= 1;
        }
        ua.truncate(cut);
        ua.push_str(USER_AGENT_TRUNCATED);
    }
    ua
}

/// What a JSON API response carries for the audit log (`http::json_response` attaches it): the
/// Status it is, if it is one. Its presence marks the body as an API object, logged as
/// `responseObject` at RequestResponse.
#[derive(Clone, Debug)]
pub struct ApiObject {
    status: Option<ResponseStatus>,
}

impl ApiObject {
    pub fn of(value: &serde_json::Value) -> ApiObject {
        ApiObject {
            status: ResponseStatus::from_status_object(value),
        }
    }
}

struct State {
    /// The policy's decision, once the caller is known.
    config: Option<RequestConfig>,
    /// The event so far.
    event: Event,
    /// The request body's frames, as read.
    body: Vec<Bytes>,
    body_len: usize,
    /// Larger than the server accepts: not kept.
    body_overflow: bool,
    content_type: String,
    /// The last event has been queued.
    finished: bool,
}

struct Inner {
    backend: Arc<Backend>,
    info: RequestInfo,
    long_running: bool,
    /// create and update: the request body names the object.
    fills_object_ref: bool,
    state: Mutex<State>,
}

impl Inner {
    fn evaluate(
        &self,
        st: &mut State,
        user: Option<&UserInfo>,
        emit_received: bool,
    ) -> RequestConfig {
        if let Some(config) = st.config {
            return config;
        }
        let config = self.backend.policy.evaluate(&self.info, user);
        self.backend.counters.levels[config.level as usize].fetch_add(1, Ordering::Relaxed);
        st.config = Some(config);
        if config.level == Level::None {
            st.body = Vec::new();
            return config;
        }
        st.event.level = config.level;
        if let Some(user) = user {
            st.event.user = user.into();
        }
        if emit_received {
            self.emit(st, Stage::RequestReceived, false);
        }
        config
    }

    /// Queues the event at `stage` unless the policy omits it; `last` moves it out.
    fn emit(&self, st: &mut State, stage: Stage, last: bool) {
        let Some(config) = st.config else { return };
        if config.level == Level::None || config.omit_stages.contains(stage) {
            return;
        }
        let mut event = if last {
            std::mem::take(&mut st.event)
        } else {
            st.event.clone()
        };
        event.stage = stage;
        event.stage_timestamp = if stage == Stage::RequestReceived {
            event.request_received_timestamp
        } else {
            MicroTime::now()
        };
        self.backend.sink.process(event);
    }

    /// Whether the request body is worth keeping at this point.
    fn keeps_body(&self, st: &State) -> bool {
        match st.config {
            // Read before authentication: keep it until the level is known.
            None => true,
            Some(c) => {
                c.level >= Level::Request || (c.level == Level::Metadata && self.fills_object_ref)
            }
        }
    }

    fn tee(&self, data: &Bytes) {
        let mut st = self.state.lock();
        if st.body_overflow || !self.keeps_body(&st) {
            return;
        }
        st.body_len += data.len();
        if st.body_len > crate::http::MAX_BODY {
            st.body_overflow = true;
            st.body = Vec::new();
            return;
        }
        st.body.push(data.clone());
    }

    /// Hands the kept bodies to the event.
    fn attach_bodies(&self, st: &mut State, config: RequestConfig, response: Option<Bytes>) {
        let log_object = config.level >= Level::Request;
        let request = (!st.body_overflow
            && st.body_len > 0
            && (log_object || self.fills_object_ref))
            .then(|| event::RequestBody {
                chunks: std::mem::take(&mut st.body),
                content_type: st.content_type.clone(),
                log_object,
                fill_object_ref: self.fills_object_ref,
            });
        if request.is_some() || response.is_some() {
            st.event.bodies = Some(Box::new(event::Bodies {
                request,
                response,
                omit_managed_fields: config.omit_managed_fields,
            }));
        }
    }

    /// The streamed response of a long-running request ended.
    fn complete(&self) {
        let mut st = self.state.lock();
        if st.finished {
            return;
        }
        st.finished = true;
        self.emit(&mut st, Stage::ResponseComplete, true);
    }

    fn panicked(&self, message: &str) {
        let mut st = self.state.lock();
        if st.finished || st.config.is_none() {
            return;
        }
        st.finished = true;
        st.event.response_status = Some(ResponseStatus {
            code: 500,
            status: "Failure".into(),
            reason: "InternalError".into(),
            message: format!("APIServer panic'd: {message}"),
            ..Default::default()
        });
        self.emit(&mut st, Stage::Panic, true);
    }
}

/// One request's auditing, for the code that handles it: authentication reports the caller,
/// the authorizer its decision. Cheap to clone; a no-op where auditing is off.
#[derive(Clone)]
pub struct Context {
    id: HeaderValue,
    inner: Option<Arc<Inner>>,
}

impl Context {
    /// The context `Auditor::begin` put in a request's extensions (`parts.extensions`), or a
    /// disabled one.
    pub fn of(extensions: &Extensions) -> Context {
        extensions.get::<Context>().cloned().unwrap_or(Context {
            id: HeaderValue::from_static(""),
            inner: None,
        })
    }

    /// The request's audit ID (also its `Audit-Id` response header).
    pub fn audit_id(&self) -> &str {
        self.id.to_str().unwrap_or_default()
    }

    /// Whether this request may be audited (a policy and a log are configured).
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The level the policy chose, once `authenticated` has run.
    pub fn level(&self) -> Option<Level> {
        let inner = self.inner.as_ref()?;
        inner.state.lock().config.map(|c| c.level)
    }

    /// Authentication succeeded as `user` (upstream's `WithAudit`, just inside authentication):
    /// evaluates the policy for the request and queues its RequestReceived event. The first
    /// call counts. With impersonation, pass the authenticated user here and the impersonated
    /// one to `impersonated`.
    pub fn authenticated(&self, user: &UserInfo) {
        if let Some(inner) = &self.inner {
            let mut st = inner.state.lock();
            inner.evaluate(&mut st, Some(user), true);
        }
    }

    /// The request acts as `user` (impersonation): `impersonatedUser` in its events.
    pub fn impersonated(&self, user: &UserInfo) {
        if let Some(inner) = &self.inner {
            inner.state.lock().event.impersonated_user = Some(user.into());
        }
    }

    /// Adds an annotation to the request's events. As upstream, a key keeps its first value.
    pub fn annotate(&self, key: &str, value: &str) {
        let Some(inner) = &self.inner else { return };
        let mut st = inner.state.lock();
        match st.event.annotations.get(key) {
            Some(existing) if existing != value => {
                tracing::warn!(
                    audit_id = %st.event.audit_id,
                    "Failed to set annotations[{key:?}] to {value:?}, it has already been set to {existing:?}"
                );
            }
            Some(_) => {}
            None => {
                st.event
                    .annotations
                    .insert(key.to_string(), value.to_string());
            }
        }
    }

    /// The authorizer's verdict, as upstream's `WithAuthorization` records it:
    /// `authorization.k8s.io/decision` (`allow`/`forbid`) and `authorization.k8s.io/reason`.
    pub fn authorization_decision(&self, allowed: bool, reason: &str) {
        self.annotate(
            DECISION_ANNOTATION,
            if allowed { "allow" } else { "forbid" },
        );
        self.annotate(REASON_ANNOTATION, reason);
    }

    /// The authorizer failed (neither allowed nor denied): upstream records only the reason
    /// `internal error`.
    pub fn authorization_error(&self) {
        self.annotate(REASON_ANNOTATION, "internal error");
    }

    /// Runs the request's handler; if it panics, queues the Panic event and goes on panicking.
    pub async fn guard<F: Future>(&self, handler: F) -> F::Output {
        use futures::FutureExt;
        let Some(inner) = &self.inner else {
            return handler.await;
        };
        match std::panic::AssertUnwindSafe(handler).catch_unwind().await {
            Ok(out) => out,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                inner.panicked(&message);
                std::panic::resume_unwind(payload)
            }
        }
    }

    /// The handler's response is ready: sets the `Audit-Id` header and queues the events.
    pub async fn finish(&self, mut resp: Response) -> Response {
        use http_body_util::BodyExt;
        if !self.id.is_empty() && !resp.headers().contains_key(&AUDIT_ID_HEADER) {
            resp.headers_mut().insert(AUDIT_ID_HEADER, self.id.clone());
        }
        let object = resp.extensions_mut().remove::<ApiObject>();
        let Some(inner) = &self.inner else {
            return resp;
        };
        let code = resp.status().as_u16();
        let (config, failed_authentication) = {
            let mut st = inner.state.lock();
            if st.finished {
                return resp;
            }
            match st.config {
                Some(config) => (config, false),
                // Never authenticated: a 401 is upstream's failed-authentication event (no
                // RequestReceived); anything else is audited without a user.
                None => {
                    let failed = code == 401;
                    (inner.evaluate(&mut st, None, !failed), failed)
                }
            }
        };
        if config.level == Level::None {
            return resp;
        }
        let mut status = object
            .as_ref()
            .and_then(|o| o.status.clone())
            .unwrap_or_default();
        status.code = code.into();
        // At RequestResponse, the JSON the client gets: a complete body is taken as it is
        // (reference-counted bytes, not a copy) and put back.
        let mut response_json = None;
        if config.level >= Level::RequestResponse
            && object.is_some()
            && resp.body().size_hint().exact().is_some()
        {
            let (parts, body) = resp.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            response_json = Some(bytes.clone());
            resp = Response::from_parts(parts, Body::from(bytes));
        }
        let mut st = inner.state.lock();
        st.event.response_status = Some(status);
        inner.attach_bodies(&mut st, config, response_json);
        if failed_authentication {
            st.finished = true;
            inner.emit(&mut st, Stage::ResponseStarted, true);
            return resp;
        }
        if inner.long_running {
            inner.emit(&mut st, Stage::ResponseStarted, false);
            drop(st);
            let (parts, body) = resp.into_parts();
            let body = Body::new(CompleteOnDrop {
                body,
                inner: inner.clone(),
            });
            return Response::from_parts(parts, body);
        }
        st.finished = true;
        inner.emit(&mut st, Stage::ResponseComplete, true);
        resp
    }
}

/// The request body, copied (by reference count) into the audit state as it is read.
struct TeeBody {
    body: Body,
    inner: Arc<Inner>,
}

impl HttpBody for TeeBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.inner.tee(data);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A long-running response's body: ResponseComplete is queued when it is dropped (the stream
/// ended, or the client went away).
struct CompleteOnDrop {
    body: Body,
    inner: Arc<Inner>,
}

impl HttpBody for CompleteOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for CompleteOnDrop {
    fn drop(&mut self) {
        self.inner.complete();
    }
}

#[cfg(test)]
mod tests;
