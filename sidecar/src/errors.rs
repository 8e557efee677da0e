//! Answers the sidecar makes itself: JSON `{"error", "message", "revision"}` with the header
//! `x-modeldeploy-error: <kind>` (absent on the model's answers) and `x-modeldeploy-revision`.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

pub const REVISION_HEADER: &str = "x-modeldeploy-revision";
pub const ERROR_HEADER: &str = "x-modeldeploy-error";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: std::convert::Infallible| -> BoxError { match never {} })
        .boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// The kind of a status the sidecar answers itself when no other kind is given.
pub fn default_kind(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "body_too_large",
        417 => "expectation_failed",
        500 => "internal",
        503 => "upstream_unavailable",
        504 => "upstream_timeout",
        _ => "error",
    }
}

pub fn json_response(status: u16, value: &Value, revision: &str) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(full(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(revision) {
        headers.insert(REVISION_HEADER, v);
    }
    response
}

pub fn error_response(
    status: u16,
    message: &str,
    revision: &str,
    kind: Option<&str>,
) -> Response<Body> {
    let kind = kind.unwrap_or_else(|| default_kind(status));
    let mut response = json_response(
        status,
        &json!({"error": kind, "message": message, "revision": revision}),
        revision,
    );
    if let Ok(v) = HeaderValue::from_str(kind) {
        response.headers_mut().insert(ERROR_HEADER, v);
    }
    response
}

/// Mark a response so that the connection is closed after it (the rest of a body may follow).
pub fn closing(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    response
}
