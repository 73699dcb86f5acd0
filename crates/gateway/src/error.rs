//! Every way a request can fail, classified by where it came from, and the
//! one mapping to HTTP. Clients get `{"type","reason","errcode","statusCode"}`
//! (a plugin's rejection or failure adds `model: "plugin.<errcode>"`, as
//! ONES's web app expects); logs get the cause.

use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{full, Body};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    // --- the client
    #[error("no upstream is mounted at {0}")]
    NoMount(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0} is not supported: interpose is a reverse proxy in front of the standard system")]
    MethodNotAllowed(String),
    #[error("the request header fields are larger than {0} bytes")]
    HeadersTooLarge(usize),
    #[error("the request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    #[error("the request body did not arrive within {0} ms")]
    BodyTimeout(u64),
    #[error("the request body cannot be read by the hooks on this route: {0}")]
    BodyEncoding(crate::coding::DecodeError),
    // --- a plugin
    #[error("plugin {plugin} failed: {function}() {error}")]
    PluginFailure { plugin: String, function: String, error: interpose_js::HookError },
    // --- the upstream
    #[error("the upstream for scope {scope} is unavailable: {cause}")]
    UpstreamUnavailable { scope: String, cause: String },
    #[error("the upstream for scope {scope} did not answer within {ms} ms")]
    UpstreamTimeout { scope: String, ms: u64 },
    // --- ourselves
    #[error("internal error: {0}")]
    Internal(String),
}

impl GatewayError {
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::NoMount(_) => StatusCode::NOT_FOUND,
            GatewayError::BadRequest(_) => StatusCode::BAD_REQUEST,
            GatewayError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            GatewayError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            GatewayError::BodyEncoding(e) => match e {
                crate::coding::DecodeError::Unsupported(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                crate::coding::DecodeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                crate::coding::DecodeError::Corrupt { .. } => StatusCode::BAD_REQUEST,
            },
            GatewayError::PluginFailure { .. } | GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::UpstreamUnavailable { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn errcode(&self) -> &'static str {
        match self {
            GatewayError::NoMount(_) => "NotFound",
            GatewayError::BadRequest(_) => "BadRequest",
            GatewayError::MethodNotAllowed(_) => "MethodNotAllowed",
            GatewayError::HeadersTooLarge(_) => "HeaderFieldsTooLarge",
            GatewayError::BodyTooLarge(_) => "PayloadTooLarge",
            GatewayError::BodyTimeout(_) => "RequestTimeout",
            GatewayError::BodyEncoding(e) => match e {
                crate::coding::DecodeError::Unsupported(_) => "UnsupportedMediaType",
                crate::coding::DecodeError::TooLarge { .. } => "PayloadTooLarge",
                crate::coding::DecodeError::Corrupt { .. } => "BadRequest",
            },
            GatewayError::PluginFailure { .. } => "PluginFailure",
            GatewayError::UpstreamUnavailable { .. } => "UpstreamUnavailable",
            GatewayError::UpstreamTimeout { .. } => "UpstreamTimeout",
            GatewayError::Internal(_) => "InternalError",
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        match &self {
            GatewayError::PluginFailure { .. }
            | GatewayError::Internal(_)
            | GatewayError::UpstreamUnavailable { .. } => {
                tracing::warn!(status = status.as_u16(), "{self}")
            }
            _ => tracing::debug!(status = status.as_u16(), "{self}"),
        }
        match self {
            GatewayError::PluginFailure { .. } => plugin_json_error(status, "error", &self.to_string(), self.errcode()),
            _ => json_error(status, "error", &self.to_string(), self.errcode()),
        }
    }
}

/// A plugin's rejection or failure: the JSON error body with `model:
/// "plugin.<errcode>"`, by which the ONES web app knows a plugin's error
/// (`isOPError`) and shows its reason.
pub fn plugin_json_error(status: StatusCode, kind: &str, reason: &str, errcode: &str) -> Response<Body> {
    let body = serde_json::json!({
        "type": kind,
        "reason": reason,
        "errcode": errcode,
        "statusCode": status.as_u16(),
        "model": format!("plugin.{errcode}"),
    });
    json_response(status, &body)
}

/// The JSON error body every rejection uses.
pub fn json_error(status: StatusCode, kind: &str, reason: &str, errcode: &str) -> Response<Body> {
    let body = serde_json::json!({
        "type": kind,
        "reason": reason,
        "errcode": errcode,
        "statusCode": status.as_u16(),
    });
    json_response(status, &body)
}

pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    // `to_vec` writes straight into the buffer (`to_string` goes through
    // `fmt`, several times slower).
    let mut resp = Response::new(full(serde_json::to_vec(body).unwrap_or_default()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
