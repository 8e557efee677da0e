//! The request path: read the body, decide the route, forward, guard the canary, copy to the
//! shadow, check the contract, sample the prediction log.
//!
//! Responses with a known length are buffered (model answers are small; the comparison needs
//! them); others are streamed through. Every response carries `x-modeldeploy-revision`. A client
//! that goes away before its answer is complete is counted as `code="499"` (nginx's convention):
//! it is not the revision's error, so it stays out of the error ratio.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use tokio::sync::oneshot;

use crate::contract::violation_json;
use crate::data_path::DataPath;
use crate::errors::{
    closing, error_response, json_response, Body, BoxError, ERROR_HEADER, REQUEST_ID_HEADER,
    REVISION_HEADER,
};
use crate::local_pool::Lease;
use crate::metrics::{Metrics, CANARY, CLIENT_CLOSED, LOCAL};
use crate::prediction_log::{sampled, LogConfig};
use crate::prediction_record::{trace_id, Prediction};
use crate::router::{Decision, Router, Target, FORWARDED_HEADER, SHADOW_HEADER};
use crate::settings::Settings;
use crate::shadow::{PrimaryResult, ShadowCopy, ShadowMirror};
use crate::upstream::{build_request, request_headers, response_headers, UpstreamError, Upstreams};

const LOG: &str = "modeldeploy.sidecar.proxy";
/// Limits of the Python sidecar's parser (aiohttp): header count and line length.
pub const MAX_HEADERS: usize = 128;
pub const MAX_LINE: usize = 8190;

pub struct App {
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    pub router: Router,
    pub data_path: DataPath,
    pub upstreams: Arc<Upstreams>,
    pub shadow: Arc<ShadowMirror>,
    pub draining: AtomicBool,
}

/// Counts the request in flight; on drop before `finish`, the client went away: code 499.
struct Pending {
    app: Arc<App>,
    revision: String,
    route: &'static str,
    started: Instant,
    request_started: Instant,
    done: bool,
}

impl Pending {
    fn at(&mut self, target: &Target, started: Instant) {
        self.revision.clone_from(&target.revision);
        self.route = target.route;
        self.started = started;
    }

    fn finish(&mut self) {
        self.done = true;
    }

    fn observe(&mut self, status: u16) {
        self.app.metrics.observe_request(
            &self.revision,
            self.route,
            status,
            self.started.elapsed().as_secs_f64(),
        );
        self.done = true;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.app.metrics.inflight.dec();
        if !self.done {
            self.app.metrics.observe_request(
                &self.revision,
                self.route,
                CLIENT_CLOSED,
                self.started.elapsed().as_secs_f64(),
            );
            crate::info!(
                LOG,
                "client closed the connection before its answer was ready ({} {})",
                self.route,
                self.revision
            );
        }
    }
}

/// A request chosen for the prediction log.
struct Sample {
    arrived: SystemTime,
    trace_id: String,
    generated: bool,
    config: Arc<LogConfig>,
}

/// What happens once the primary answer is complete: the shadow's comparison and the log line.
struct After {
    app: Arc<App>,
    shadow: Option<oneshot::Sender<PrimaryResult>>,
    sample: Option<Sample>,
    body: Bytes,
    started: Instant,
}

impl After {
    fn done(mut self, revision: &str, status: u16, comparable: Option<(u16, Bytes)>) {
        if let Some(tx) = self.shadow.take() {
            let _ = tx.send(comparable.clone());
        }
        if let Some(sample) = self.sample.take() {
            let route = if revision == self.app.settings.revision {
                LOCAL
            } else {
                CANARY
            };
            let prediction = Prediction {
                arrived: sample.arrived,
                revision: revision.to_string(),
                route,
                latency_seconds: self.started.elapsed().as_secs_f64(),
                status,
                trace_id: sample.trace_id,
                request: self.body.clone(),
                response: comparable.map(|(_, b)| b),
            };
            self.app
                .data_path
                .predictions
                .submit(prediction, sample.config);
        }
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A request head beyond the parser limits the sidecar has always had.
fn head_problem<B>(request: &Request<B>) -> Option<String> {
    let headers = request.headers();
    if headers.len() > MAX_HEADERS {
        return Some(format!(
            "too many request headers ({} > {MAX_HEADERS})",
            headers.len()
        ));
    }
    let target = request.uri().to_string().len() + request.method().as_str().len() + 10;
    if target > MAX_LINE {
        return Some(format!("request line longer than {MAX_LINE} bytes"));
    }
    for (name, value) in headers {
        if name.as_str().len() + value.len() + 2 > MAX_LINE {
            return Some(format!(
                "header line longer than {MAX_LINE} bytes ({})",
                name.as_str()
            ));
        }
    }
    None
}

fn path_and_query(request: &Request<Incoming>) -> PathAndQuery {
    match request.uri().path_and_query() {
        Some(pq) if pq.as_str().starts_with('/') => pq.clone(),
        // The asterisk form (`OPTIONS *`), the only other target a parsed URI has: "/".
        Some(pq) => PathAndQuery::try_from(format!("/{}", pq.as_str().trim_start_matches('*')))
            .unwrap_or_else(|_| PathAndQuery::from_static("/")),
        None => PathAndQuery::from_static("/"),
    }
}

/// The catch-all handler of the traffic port.
pub async fn handle(app: Arc<App>, request: Request<Incoming>, remote: String) -> Response<Body> {
    let own = app.settings.revision.clone();
    app.metrics.inflight.inc();
    let started = Instant::now();
    let mut pending = Pending {
        app: app.clone(),
        revision: own.clone(),
        route: LOCAL,
        started,
        request_started: started,
        done: false,
    };

    if let Some(expect) = request.headers().get(http::header::EXPECT) {
        if !expect.as_bytes().eq_ignore_ascii_case(b"100-continue") {
            pending.observe(417);
            let shown = String::from_utf8_lossy(expect.as_bytes()).into_owned();
            return closing(error_response(
                417,
                &format!("unsupported Expect: {shown}"),
                &own,
                None,
            ));
        }
    }
    if let Some(problem) = head_problem(&request) {
        pending.observe(400);
        return closing(error_response(400, &problem, &own, Some("bad_request")));
    }
    let max = app.settings.max_body_bytes;
    if content_length(request.headers()).is_some_and(|n| n > max) {
        // Before the body is read, so `Expect: 100-continue` is answered 413 at once.
        pending.observe(413);
        let message = format!("request body exceeds the limit of {max} bytes");
        return closing(error_response(413, &message, &own, Some("body_too_large")));
    }
    let path_qs = path_and_query(&request);
    let (parts, body) = request.into_parts();
    let body = match read_body(&app.settings, body).await {
        Ok(b) => b,
        Err((status, kind, message)) => {
            pending.observe(status);
            return closing(error_response(status, &message, &own, Some(kind)));
        }
    };
    let headers = &parts.headers;
    let active = app.data_path.active();
    let sample = match &active.log {
        Some(config) if !headers.contains_key(FORWARDED_HEADER) => {
            if sampled(config.settings.sample_rate, rand::random::<f64>) {
                let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
                let (trace, generated) = trace_id(header("traceparent"), header("x-request-id"));
                Some(Sample {
                    arrived: SystemTime::now(),
                    trace_id: trace,
                    generated,
                    config: config.clone(),
                })
            } else {
                None
            }
        }
        _ => None,
    };
    let decision = app.router.decide(
        |name| headers.get(name).map(|v| v.as_bytes()),
        rand::random::<f64>,
    );
    let after = After {
        app: app.clone(),
        shadow: None,
        sample,
        body: body.clone(),
        started,
    };
    let generated_id = after
        .sample
        .as_ref()
        .filter(|s| s.generated)
        .map(|s| s.trace_id.clone());
    let remote = Some(remote.as_str());

    if decision.primary.route == LOCAL {
        if let Some(rejected) = inspect(&app, &parts.method, &body, &mut pending) {
            let bytes = rejected.1.clone();
            after.done(&own, 422, Some((422, bytes)));
            return with_request_id(rejected.0, generated_id);
        }
    }
    let mut after = after;
    if let Some(target) = &decision.shadow {
        let (tx, rx) = oneshot::channel();
        after.shadow = Some(tx);
        let own_ref = own.as_str();
        let extra = [(FORWARDED_HEADER, own_ref), (SHADOW_HEADER, "1")];
        app.shadow.submit(ShadowCopy {
            target: target.clone(),
            method: parts.method.clone(),
            path_qs: path_qs.as_str().to_string(),
            headers: request_headers(headers, &extra, remote),
            body: body.clone(),
            comparison: decision.comparison.clone(),
            primary: rx,
        });
    }
    let response = serve(
        &app,
        &parts.method,
        headers,
        &path_qs,
        body,
        &decision,
        &mut pending,
        remote,
        after,
    )
    .await;
    with_request_id(response, generated_id)
}

fn with_request_id(mut response: Response<Body>, id: Option<String>) -> Response<Body> {
    if let Some(id) = id {
        if let Ok(v) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, v);
        }
    }
    response
}

/// The whole body within the size limit and the body deadline; else (status, kind, message).
async fn read_body(
    settings: &Settings,
    body: Incoming,
) -> Result<Bytes, (u16, &'static str, String)> {
    let max = settings.max_body_bytes;
    let limited = Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX));
    match tokio::time::timeout(settings.body_timeout, limited.collect()).await {
        Err(_) => Err((
            408,
            "request_timeout",
            format!(
                "request body not received within {} s",
                crate::settings::fmt_seconds(settings.body_timeout)
            ),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err((
                    413,
                    "body_too_large",
                    format!("request body exceeds the limit of {max} bytes"),
                ))
            } else if e
                .downcast_ref::<hyper::Error>()
                .is_some_and(|h| h.is_incomplete_message())
            {
                Err((
                    400,
                    "client_disconnected",
                    "client closed the connection before sending the whole body".into(),
                ))
            } else {
                Err((
                    400,
                    "bad_request_body",
                    format!("malformed request body: {e}"),
                ))
            }
        }
    }
}

/// Contract and drift for a request served locally; the 422 response (and its body) to reject.
fn inspect(
    app: &App,
    method: &Method,
    body: &[u8],
    pending: &mut Pending,
) -> Option<(Response<Body>, Bytes)> {
    let violation = app.data_path.inspect(method, body)?;
    let own = &app.settings.revision;
    pending.at(&app.router.local, pending.request_started);
    pending.observe(422);
    let value = violation_json(&violation, own);
    let bytes = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
    let mut response = json_response(422, &value, own);
    response
        .headers_mut()
        .insert(ERROR_HEADER, HeaderValue::from_static("contract_violation"));
    Some((response, bytes))
}

#[allow(clippy::too_many_arguments)]
async fn open(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    path_qs: &PathAndQuery,
    body: Bytes,
    target: &Target,
    remote: Option<&str>,
    deadline: tokio::time::Instant,
) -> Result<(Response<Incoming>, Option<Lease>), UpstreamError> {
    if target.route == LOCAL {
        let headers = request_headers(headers, &[], remote);
        return app
            .upstreams
            .open_local(method, path_qs, headers, body, deadline)
            .await;
    }
    let own = app.settings.revision.as_str();
    let request = build_request(
        method,
        &format!("{}{}", target.url, path_qs.as_str()),
        request_headers(headers, &[(FORWARDED_HEADER, own)], remote),
        body,
    )?;
    let response = app.upstreams.open(false, true, request, deadline).await?;
    Ok((response, None))
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    app: &Arc<App>,
    method: &Method,
    headers: &HeaderMap,
    path_qs: &PathAndQuery,
    body: Bytes,
    decision: &Decision,
    pending: &mut Pending,
    remote: Option<&str>,
    after: After,
) -> Response<Body> {
    let mut target = decision.primary.clone();
    let retryable = app.settings.retry_methods.contains(method.as_str());
    if target.route == CANARY {
        let attempt = Instant::now();
        pending.at(&target, attempt);
        let deadline = tokio::time::Instant::now() + app.settings.upstream_timeout;
        match open(
            app,
            method,
            headers,
            path_qs,
            body.clone(),
            &target,
            remote,
            deadline,
        )
        .await
        {
            Err(e) => {
                app.router.record_canary(&target.revision, true);
                pending.observe(e.status);
                // A canary that could not be connected to never saw the request: the local
                // revision answers it whatever the method (a Service kube-proxy does not route
                // yet, a Pod gone). One that failed after the request was sent is retried only
                // for `retry_methods`.
                if !(retryable || e.not_sent) {
                    after.done(&target.revision, e.status, None);
                    return error_response(e.status, &e.message, &target.revision, None);
                }
                crate::info!(
                    LOG,
                    "canary {} failed ({}); retrying locally",
                    target.revision,
                    e.message
                );
            }
            Ok((upstream, lease)) => {
                let status = upstream.status().as_u16();
                let failed = status >= 500;
                app.router.record_canary(&target.revision, failed);
                if !(failed && retryable) {
                    let opened = (upstream, lease);
                    return relay(app, method, opened, &target, pending, deadline, after).await;
                }
                pending.observe(status);
                drop(upstream);
                drop(lease);
                crate::info!(
                    LOG,
                    "canary {} answered {status}; retrying locally",
                    target.revision
                );
            }
        }
        target = app.router.local.clone();
        pending.at(&target, pending.request_started);
        pending.done = false;
        if let Some((response, bytes)) = inspect(app, method, &body, pending) {
            after.done(&target.revision, 422, Some((422, bytes)));
            return response;
        }
    }
    pending.at(&target, pending.request_started);
    pending.done = false;
    let deadline = tokio::time::Instant::now() + app.settings.upstream_timeout;
    match open(
        app, method, headers, path_qs, body, &target, remote, deadline,
    )
    .await
    {
        Err(e) => {
            pending.observe(e.status);
            after.done(&target.revision, e.status, None);
            error_response(e.status, &e.message, &target.revision, None)
        }
        Ok(opened) => relay(app, method, opened, &target, pending, deadline, after).await,
    }
}

/// Pass the upstream response on: buffered when its length is known, else streamed. The pooled
/// connection (if any) goes back to its pool once the body has been read.
#[allow(clippy::too_many_arguments)]
async fn relay(
    app: &Arc<App>,
    method: &Method,
    (upstream, lease): (Response<Incoming>, Option<Lease>),
    target: &Target,
    pending: &mut Pending,
    deadline: tokio::time::Instant,
    after: After,
) -> Response<Body> {
    let status = upstream.status();
    let head = *method == Method::HEAD;
    let known = upstream
        .headers()
        .contains_key(http::header::CONTENT_LENGTH)
        || head
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let mut headers = response_headers(upstream.headers(), head);
    if let Ok(v) = HeaderValue::from_str(&target.revision) {
        headers.insert(REVISION_HEADER, v);
    }
    if app.draining.load(Ordering::Relaxed) {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    let body = upstream.into_body();
    let revision = target.revision.as_str();
    if known {
        let collected = tokio::time::timeout_at(deadline, body.collect()).await;
        drop(lease);
        return match collected {
            Ok(Ok(collected)) => {
                let bytes = collected.to_bytes();
                let code = status.as_u16();
                pending.observe(code);
                after.done(revision, code, Some((code, bytes.clone())));
                let mut response = Response::new(crate::errors::full(bytes));
                *response.status_mut() = status;
                *response.headers_mut() = headers;
                response
            }
            Ok(Err(e)) => {
                pending.observe(503);
                after.done(revision, 503, None);
                let message = format!("upstream {} broke off its body ({e})", target.url);
                error_response(503, &message, revision, None)
            }
            Err(_) => {
                pending.observe(504);
                after.done(revision, 504, None);
                let message = format!("upstream {} timed out sending its body", target.url);
                error_response(504, &message, revision, None)
            }
        };
    }
    let stream = StreamRelay {
        inner: body,
        _lease: lease,
        collected: Some(Vec::new()),
        limit: usize::try_from(app.settings.compare_max_bytes).unwrap_or(usize::MAX),
        done: Some(StreamDone {
            app: app.clone(),
            target: target.clone(),
            started: pending.started,
            status: status.as_u16(),
            after,
        }),
    };
    let mut response = Response::new(stream.boxed());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    pending.finish();
    response
}

struct StreamDone {
    app: Arc<App>,
    target: Target,
    started: Instant,
    status: u16,
    after: After,
}

/// A streamed upstream body on its way to the client; counts the outcome when it ends.
struct StreamRelay {
    inner: Incoming,
    /// Back to the pool when the stream is dropped (read to its end, or the client went away).
    _lease: Option<Lease>,
    collected: Option<Vec<u8>>,
    limit: usize,
    done: Option<StreamDone>,
}

impl StreamRelay {
    fn end(&mut self, code: u16) {
        if let Some(done) = self.done.take() {
            let elapsed = done.started.elapsed().as_secs_f64();
            done.app.metrics.observe_request(
                &done.target.revision,
                done.target.route,
                code,
                elapsed,
            );
            let comparable = if code == done.status {
                self.collected.take().map(|c| (code, Bytes::from(c)))
            } else {
                None
            };
            done.after.done(&done.target.revision, code, comparable);
        }
    }
}

impl HttpBody for StreamRelay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(buffer)) = (frame.data_ref(), this.collected.as_mut()) {
                    if buffer.len() + data.len() > this.limit {
                        this.collected = None;
                    } else {
                        buffer.extend_from_slice(data);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(done) = &this.done {
                    crate::warn!(LOG, "stream from {} broke off: {e}", done.target.url);
                }
                this.end(502);
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => {
                let status = this.done.as_ref().map_or(200, |d| d.status);
                this.end(status);
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for StreamRelay {
    fn drop(&mut self) {
        if let Some(done) = &self.done {
            crate::info!(
                LOG,
                "client closed the connection during the stream from {} (counted as {CLIENT_CLOSED}, not the revision's error)",
                done.target.url
            );
        }
        self.end(CLIENT_CLOSED);
    }
}
