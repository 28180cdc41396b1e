//! Errors in Google's dialect: `{"error":{"code","message","status","details"}}`,
//! wrapped in an array where Google would (the JSON-array stream).

use crate::dispatch::{DispatchError, StreamMode, failure_status, no_key_status};
use crate::pool::LeaseError;
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

/// A complete error response in Google's format for `mode`.
pub fn error_response(code: u16, message: &str, details: Vec<Value>, mode: StreamMode) -> Response {
    let body = error_body(code, message, details);
    let body = if mode == StreamMode::JsonArray { Value::Array(vec![body]) } else { body };
    json_response(code, body.to_string().into_bytes())
}

/// A refused client key: 401, or 429 with `RetryInfo` and `Retry-After`
/// while the address is locked out.
pub fn auth_error_response(error: super::auth::AuthError, mode: StreamMode) -> Response {
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
/// gemgate error that says what happened and what to do.
pub fn dispatch_error_response(error: &DispatchError, mode: StreamMode) -> Response {
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
            let details = match reason {
                LeaseError::AllCooling { soonest } | LeaseError::AllPaced { soonest, .. } => vec![retry_info(*soonest)],
                _ => Vec::new(),
            };
            error_response(code, &message, details, mode)
        }
    }
}

/// The whole explanation when no key could serve: why the pool said no, what
/// the keys this request tried said about themselves, or else the last
/// upstream error.
pub fn no_key_explanation(
    reason: &LeaseError,
    model: &str,
    last: Option<&crate::dispatch::AttemptFailure>,
    tried: &crate::dispatch::KeyFailures,
) -> String {
    let mut message = no_key_message(reason, model);
    if tried.total() > 0 {
        message.push_str(&format!(" Keys tried for this request: {}.", tried.describe()));
    } else if let Some(last) = last {
        let upstream: String = last.google.message.chars().take(300).collect();
        message.push_str(&format!(" Last upstream error: {} {}", last.google.http_status, upstream));
    }
    message
}

/// Words for a client when no key could be leased.
pub fn no_key_message(reason: &LeaseError, model: &str) -> String {
    let model = if model.is_empty() { "this request".to_string() } else { format!("model {model}") };
    match reason {
        LeaseError::EmptyPool => {
            "gemgate: the key pool is empty. Add Gemini API keys, one per line, to a file in the keys folder.".into()
        }
        LeaseError::AllDisabled { total } => {
            format!(
                "gemgate: all {total} keys are disabled (invalid or refused by Google). Add working keys or run a health scan."
            )
        }
        LeaseError::AllCooling { soonest } => {
            let wait = secs_until(*soonest);
            let at = chrono::DateTime::<chrono::Utc>::from(*soonest).format("%Y-%m-%dT%H:%M:%SZ");
            format!("gemgate: every key is cooling down for {model}; the soonest is free again in {wait}s (at {at}).")
        }
        LeaseError::AllPaced { soonest, limit } => {
            let wait = secs_until(*soonest);
            let at = chrono::DateTime::<chrono::Utc>::from(*soonest).format("%Y-%m-%dT%H:%M:%SZ");
            format!(
                "gemgate: every key has used the {limit} declared for {model} in config ([models]: gemgate paces \
                 itself, Google did not refuse); the soonest is free again in {wait}s (at {at})."
            )
        }
        LeaseError::AllTried => format!("gemgate: no key can serve {model} now: every usable key was tried."),
        LeaseError::Unavailable => "gemgate: the key pool is shutting down; retry shortly.".into(),
    }
}

/// Google's `RetryInfo` detail, so SDKs wait the right time.
fn retry_info(soonest: SystemTime) -> Value {
    retry_info_secs(secs_until(soonest))
}

fn retry_info_secs(secs: u64) -> Value {
    json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{secs}s")})
}

/// Whole seconds until `time`, rounded up (at least 1).
pub(super) fn secs_until(time: SystemTime) -> u64 {
    let millis = time.duration_since(SystemTime::now()).unwrap_or_default().as_millis() as u64;
    millis.div_ceil(1000).max(1)
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
        let message = no_key_message(&LeaseError::AllCooling { soonest }, "gemini-2.5-pro");
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
