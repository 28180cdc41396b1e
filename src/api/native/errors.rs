//! Errors in Google's dialect: `{"error":{"code","message","status","details"}}`,
//! wrapped in an array where Google would (the JSON-array stream).

use crate::api::intake::{ClientError, no_key_explanation, refusal_message, secs_until};
use crate::dispatch::{DispatchError, StreamMode, failure_status, no_key_status};
use crate::pool::LeaseError;
use crate::tenancy::Refusal;
use poem::Response;
use poem::http::StatusCode;
use serde_json::{Value, json};
use std::time::SystemTime;

/// Google's canonical status name for an HTTP status.
pub fn canonical_status(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        413 => "INVALID_ARGUMENT",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 | 502 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// The error body for `code` and `message`, with optional `details`.
pub fn error_body(code: u16, message: &str, details: Vec<Value>) -> Value {
    let mut error = json!({"code": code, "message": message, "status": canonical_status(code)});
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    json!({ "error": error })
}

/// Any client error in Google's shape, framed for `mode`.
pub fn render(error: ClientError, mode: StreamMode) -> Response {
    let plain = |code: u16, message: &str| error_response(code, message, Vec::new(), mode);
    match error {
        ClientError::Route { status, message } => plain(status, &message),
        ClientError::Auth(error) => auth_error_response(error, mode),
        ClientError::Body(error) => plain(error.status(), &format!("gemgate: {error}")),
        ClientError::NotJson => plain(400, "Invalid JSON payload received. The request body is not valid JSON."),
        ClientError::InvalidModel(model) => plain(400, &format!("gemgate: `{model}` is not a valid model name")),
        ClientError::UnknownModel(model) => plain(404, &format!("models/{model} is not found")),
        ClientError::Translate(error) => plain(400, &error.message),
        ClientError::Dispatch(error) => dispatch_error_response(&error, mode),
        ClientError::BadReply(message) => plain(502, &format!("gemgate: {message}")),
        ClientError::Internal(message) => plain(500, &format!("gemgate: {message}")),
        ClientError::Refused { refusal, model } => {
            let message = refusal_message(&refusal, &model);
            match refusal {
                Refusal::ModelNotAllowed | Refusal::Disabled | Refusal::Expired(_) => plain(403, &message),
                Refusal::Limit { until, .. } => {
                    let mut response = error_response(429, &message, vec![retry_info(until)], mode);
                    response.headers_mut().insert("retry-after", secs_until(until).into());
                    response
                }
            }
        }
    }
}

/// A complete error response in Google's format for `mode`.
pub fn error_response(code: u16, message: &str, details: Vec<Value>, mode: StreamMode) -> Response {
    let body = error_body(code, message, details);
    let body = if mode == StreamMode::JsonArray { Value::Array(vec![body]) } else { body };
    json_response(code, body.to_string().into_bytes())
}

/// A refused client key: 401, or 429 with `RetryInfo` and `Retry-After`
/// while the address is locked out.
fn auth_error_response(error: crate::api::auth::AuthError, mode: StreamMode) -> Response {
    let details = error.retry_after_secs().map(retry_info_secs).into_iter().collect();
    let mut response = error_response(error.status(), &error.message(), details, mode);
    if let Some(secs) = error.retry_after_secs() {
        response.headers_mut().insert("retry-after", secs.into());
    }
    response
}

fn json_response(code: u16, body: Vec<u8>) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json; charset=UTF-8")
        .body(body)
}

/// Renders a dispatch failure: Google's own body when it answered, else a
/// gemgate error that says what happened and what to do (with `RetryInfo` and
/// `Retry-After` while every key rests).
fn dispatch_error_response(error: &DispatchError, mode: StreamMode) -> Response {
    match error {
        DispatchError::Upstream(failure) if failure.google.http_status != 0 && !failure.body.is_empty() => {
            let text = String::from_utf8_lossy(&failure.body);
            json_response(failure.google.http_status, crate::keys::redact_keys(&text).into_owned().into_bytes())
        }
        DispatchError::Upstream(failure) => {
            let code = failure_status(failure);
            let message = format!("gemgate: {} (every attempt failed)", failure.google.message);
            error_response(code, &message, Vec::new(), mode)
        }
        DispatchError::NoKey { reason, model, last, tried } => {
            let code = no_key_status(reason);
            let message = no_key_explanation(reason, model, last.as_ref(), tried);
            let wait = match reason {
                LeaseError::AllCooling { soonest } | LeaseError::AllPaced { soonest, .. } => Some(secs_until(*soonest)),
                _ => None,
            };
            let details = wait.map(retry_info_secs).into_iter().collect();
            let mut response = error_response(code, &message, details, mode);
            if let Some(secs) = wait {
                response.headers_mut().insert("retry-after", secs.into());
            }
            response
        }
    }
}

/// Google's `RetryInfo` detail, so SDKs wait the right time.
fn retry_info(soonest: SystemTime) -> Value {
    retry_info_secs(secs_until(soonest))
}

fn retry_info_secs(secs: u64) -> Value {
    json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{secs}s")})
}

/// The event that ends a stream cut mid-reply, in the stream's own framing.
pub fn cut_frame(message: &str, mode: StreamMode) -> Option<bytes::Bytes> {
    let body = error_body(502, &format!("gemgate: the reply was cut: {message}"), Vec::new());
    match mode {
        StreamMode::Sse => Some(format!("data: {body}\r\n\r\n").into()),
        StreamMode::JsonArray => Some(format!(",\r\n{body}\r\n]").into()),
        StreamMode::Whole => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cooling_errors_carry_retry_info_and_the_soonest_time() {
        let soonest = SystemTime::now() + Duration::from_secs(30);
        let message = crate::api::intake::no_key_message(&LeaseError::AllCooling { soonest }, "gemini-2.5-pro");
        assert!(message.contains("gemini-2.5-pro") && message.contains("30s"), "{message}");
        assert_eq!(retry_info(soonest)["retryDelay"], "30s");
    }

    #[test]
    fn frames_follow_the_stream_mode() {
        let sse = cut_frame("x", StreamMode::Sse).unwrap();
        assert!(sse.starts_with(b"data: {\"error\""));
        assert!(cut_frame("x", StreamMode::JsonArray).unwrap().ends_with(b"]"));
        assert!(cut_frame("x", StreamMode::Whole).is_none());
    }
}
