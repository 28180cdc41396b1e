//! Errors in OpenAI's dialect: `{"error":{"message","type","param","code"}}`,
//! with the status codes the OpenAI SDKs map to their exception classes.

use crate::api::intake::{ClientError, no_key_explanation, refusal_message, secs_until};
use crate::dispatch::{DispatchError, failure_status, no_key_status};
use crate::pool::LeaseError;
use crate::tenancy::Refusal;
use poem::Response;
use poem::http::StatusCode;
use serde_json::{Value, json};

/// OpenAI's error `type` for a status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// Any client error in OpenAI's shape.
pub fn render(error: ClientError) -> Response {
    match error {
        ClientError::Route { status, message } => openai_error(status, &message, None, Some("unknown_url")),
        ClientError::Auth(error) => auth_error(error),
        ClientError::Body(error) => body_error(&error),
        ClientError::NotJson => openai_error(
            400,
            "We could not parse the JSON body of your request. It must be valid JSON.",
            None,
            Some("invalid_json"),
        ),
        ClientError::InvalidModel(model) => {
            openai_error(400, &format!("`{model}` is not a valid model name"), Some("model"), None)
        }
        ClientError::UnknownModel(model) => {
            openai_error(404, &format!("The model `{model}` does not exist"), Some("model"), Some("model_not_found"))
        }
        ClientError::Translate(error) => openai_error(400, &error.message, error.param.as_deref(), error.code),
        ClientError::Dispatch(error) => dispatch_error(&error),
        ClientError::BadReply(message) => openai_error(502, &message, None, None),
        ClientError::Internal(message) => openai_error(500, &message, None, None),
        ClientError::Refused { refusal, model } => {
            let message = refusal_message(&refusal, &model);
            match refusal {
                Refusal::ModelNotAllowed => openai_error(403, &message, Some("model"), Some("model_not_allowed")),
                Refusal::Disabled => openai_error(403, &message, None, Some("key_disabled")),
                Refusal::Expired(_) => openai_error(403, &message, None, Some("key_expired")),
                Refusal::Limit { until, limit, .. } => {
                    // OpenAI's own code for spent money; limits per time are rate limits.
                    let code = if limit.starts_with("budget") { "insufficient_quota" } else { "rate_limit_exceeded" };
                    let mut response = openai_error(429, &message, None, Some(code));
                    response.headers_mut().insert("retry-after", secs_until(until).into());
                    response
                }
            }
        }
    }
}

/// An error response.
pub fn openai_error(status: u16, message: &str, param: Option<&str>, code: Option<&str>) -> Response {
    let body = json!({"error": {
        "message": message,
        "type": error_type(status),
        "param": param.map_or(Value::Null, |p| json!(p)),
        "code": code.map_or(Value::Null, |c| json!(c)),
    }});
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body.to_string())
}

/// A refused client key: 401 `invalid_api_key`, or 429 with `Retry-After`
/// while the address is locked out.
fn auth_error(error: crate::api::auth::AuthError) -> Response {
    let code = if error.status() == 429 { "rate_limit_exceeded" } else { "invalid_api_key" };
    let mut response = openai_error(error.status(), &error.message(), None, Some(code));
    if let Some(secs) = error.retry_after_secs() {
        response.headers_mut().insert("retry-after", secs.into());
    }
    response
}

/// A body that could not be read: 413, 408 or 400.
fn body_error(error: &crate::api::body::BodyError) -> Response {
    let code = match error {
        crate::api::body::BodyError::TooLarge(_) => Some("request_too_large"),
        crate::api::body::BodyError::TimedOut => Some("request_timeout"),
        crate::api::body::BodyError::Broken(_) => None,
    };
    openai_error(error.status(), &error.to_string(), None, code)
}

/// A dispatch failure as (status, message, code): Google's status and
/// message, or gemgate's words when no key could serve.
pub fn dispatch_error_parts(error: &DispatchError) -> (u16, String, Option<&'static str>) {
    match error {
        DispatchError::Upstream(failure) => {
            let status = failure_status(failure);
            let code = (status == 429).then_some("rate_limit_exceeded");
            let message = if failure.google.message.is_empty() { "upstream error" } else { &failure.google.message };
            (status, message.to_string(), code)
        }
        DispatchError::NoKey { reason, model, last, tried } => {
            let status = no_key_status(reason);
            let code = if status == 429 { "rate_limit_exceeded" } else { "no_usable_key" };
            (status, no_key_explanation(reason, model, last.as_ref(), tried), Some(code))
        }
    }
}

/// A dispatch failure as a response, with `Retry-After` when keys are resting.
fn dispatch_error(error: &DispatchError) -> Response {
    let (status, message, code) = dispatch_error_parts(error);
    let mut response = openai_error(status, &message, None, code);
    if let DispatchError::NoKey {
        reason: LeaseError::AllCooling { soonest } | LeaseError::AllPaced { soonest, .. },
        ..
    } = error
    {
        response.headers_mut().insert("retry-after", secs_until(*soonest).into());
    }
    response
}
