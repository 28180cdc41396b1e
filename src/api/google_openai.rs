//! `/v1beta/openai/…`: Google's own OpenAI-compatible endpoint, passed
//! through untouched but served by the pool with failover, for users who
//! prefer Google's translation to gemgate's. Point a client's base URL at
//! `http://gemgate/v1beta/openai/` instead of Google's.

use super::AppState;
use super::auth::strip_key_param;
use super::openai_errors::{dispatch_error, openai_error};
use crate::dispatch::{DispatchError, ProxyRequest, StreamMode};
use crate::translate::model_id;
use crate::upstream::UpstreamRequest;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Body, Request, Response, handler};
use serde_json::Value;
use std::sync::Arc;

/// Serves every `/v1beta/openai/…` path.
#[handler]
pub async fn passthrough(request: &Request, body: Body, state: Data<&Arc<AppState>>) -> Response {
    let client = match state.auth.load().check(request) {
        Ok(client) => client.0,
        Err(err) => return openai_error(401, err.message(), None, Some("invalid_api_key")),
    };
    let body = match body.into_bytes_limit(state.max_body_bytes).await {
        Ok(body) => body,
        Err(poem::error::ReadBodyError::PayloadTooLarge) => {
            return openai_error(413, "the request body is too large", None, Some("request_too_large"));
        }
        Err(err) => return openai_error(400, &format!("could not read the request body: {err}"), None, None),
    };
    let json: Option<Value> = if body.is_empty() { None } else { serde_json::from_slice(&body).ok() };
    if !body.is_empty() && json.is_none() {
        return openai_error(
            400,
            "We could not parse the JSON body of your request. It must be valid JSON.",
            None,
            Some("invalid_json"),
        );
    }
    let model = json.as_ref().and_then(|j| j.get("model")).and_then(Value::as_str).map(model_id).unwrap_or_default();
    let streaming = json.as_ref().and_then(|j| j.get("stream")).and_then(Value::as_bool) == Some(true);
    let query = strip_key_param(request.uri().query().unwrap_or_default());
    let path = request.uri().path();
    let path_and_query = if query.is_empty() { path.to_string() } else { format!("{path}?{query}") };
    let proxied = ProxyRequest {
        upstream: UpstreamRequest {
            method: request.method().clone(),
            path_and_query,
            body,
            content_type: request.headers().get("content-type").cloned(),
            bearer: true,
        },
        model: Arc::from(model),
        mode: if streaming { StreamMode::Sse } else { StreamMode::Whole },
        route: "google-openai",
        client,
    };
    match state.dispatcher.dispatch(proxied).await {
        Ok(reply) => super::relay_response(reply, move |cut| {
            let message = format!("the upstream reply was cut: {}", cut.message);
            if streaming {
                Ok(crate::translate::stream::error_frame(&message, 502).into())
            } else {
                Err(std::io::Error::other(message))
            }
        }),
        // Google's own error body when it answered; OpenAI's format for gemgate's errors.
        Err(DispatchError::Upstream(failure)) if failure.google.http_status != 0 && !failure.body.is_empty() => {
            let text = String::from_utf8_lossy(&failure.body);
            Response::builder()
                .status(StatusCode::from_u16(failure.google.http_status).unwrap_or(StatusCode::BAD_GATEWAY))
                .content_type("application/json")
                .body(crate::keys::redact_keys(&text).into_owned())
        }
        Err(err) => dispatch_error(&err),
    }
}
