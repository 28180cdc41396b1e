//! Errors in Anthropic's dialect: `{"type":"error","error":{"type","message"}}`
//! with the statuses the Anthropic SDKs map to their exception classes
//! (`docs/agent-dialects.md` §1.9, §3.10). When every key rests the answer
//! is 529 `overloaded_error` with `retry-after`, which Claude Code waits out
//! and retries; gemgate has already tried every key, so its own final
//! answers say `x-should-retry: false` except for those.

use crate::api::intake::{ClientError, no_key_explanation, refusal_message, secs_until};
use crate::dispatch::{DispatchError, failure_status};
use crate::pool::LeaseError;
use crate::tenancy::Refusal;
use poem::Response;
use poem::http::StatusCode;
use serde_json::json;

/// Anthropic's error `type` for a status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        504 => "timeout_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// Any client error in Anthropic's shape.
pub fn render(error: ClientError) -> Response {
    match error {
        ClientError::Route { status, message } => anthropic_error(status, &message),
        ClientError::Auth(error) => {
            let mut response = anthropic_error(error.status(), &error.message());
            if let Some(secs) = error.retry_after_secs() {
                response.headers_mut().insert("retry-after", secs.into());
            }
            response
        }
        ClientError::Body(error) => anthropic_error(error.status(), &error.to_string()),
        ClientError::NotJson => anthropic_error(400, "The request body is not valid JSON."),
        ClientError::InvalidModel(model) => {
            anthropic_error(400, &format!("model: `{model}` is not a valid model name"))
        }
        ClientError::UnknownModel(model) => anthropic_error(404, &format!("model: {model}")),
        ClientError::Translate(error) => anthropic_error(400, &error.message),
        ClientError::Dispatch(error) => dispatch_error(&error),
        ClientError::BadReply(message) => anthropic_error(502, &message),
        ClientError::Internal(message) => anthropic_error(500, &message),
        ClientError::Refused { refusal, model } => {
            let message = refusal_message(&refusal, &model);
            match refusal {
                Refusal::ModelNotAllowed | Refusal::Disabled | Refusal::Expired(_) => anthropic_error(403, &message),
                Refusal::Limit { until, .. } => {
                    let mut response = anthropic_error(429, &message);
                    response.headers_mut().insert("retry-after", secs_until(until).into());
                    response
                }
            }
        }
    }
}

/// An error response.
pub fn anthropic_error(status: u16, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": error_type(status), "message": message}});
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body.to_string())
}

/// A dispatch failure as (status, message): Google's answer after every
/// retry (a 503 is Anthropic's 529), or gemgate's words when no key could
/// serve (529 while keys rest, 500 when none is usable).
pub fn dispatch_error_parts(error: &DispatchError) -> (u16, String) {
    match error {
        DispatchError::Upstream(failure) => {
            let status = match failure_status(failure) {
                503 => 529,
                status => status,
            };
            let message = if failure.google.message.is_empty() { "upstream error" } else { &failure.google.message };
            (status, message.to_string())
        }
        DispatchError::NoKey { reason, model, last, tried } => {
            let status = match reason {
                LeaseError::AllCooling { .. } | LeaseError::AllPaced { .. } => 529,
                _ => 500,
            };
            (status, no_key_explanation(reason, model, last.as_ref(), tried))
        }
    }
}

fn dispatch_error(error: &DispatchError) -> Response {
    let (status, message) = dispatch_error_parts(error);
    let mut response = anthropic_error(status, &message);
    let headers = response.headers_mut();
    match error {
        DispatchError::NoKey {
            reason: LeaseError::AllCooling { soonest } | LeaseError::AllPaced { soonest, .. },
            ..
        } => {
            headers.insert("retry-after", secs_until(*soonest).into());
        }
        _ => {
            headers.insert("x-should-retry", poem::http::HeaderValue::from_static("false"));
        }
    }
    response
}
