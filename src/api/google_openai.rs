//! `/v1beta/openai/…`: Google's own OpenAI-compatible endpoint, passed
//! through untouched but served by the pool with failover, for users who
//! prefer Google's translation to gemgate's. Point a client's base URL at
//! `http://gemgate/v1beta/openai/` instead of Google's.

use super::AppState;
use super::intake::{Admitted, ClientError, Dialect, parse_json};
use crate::dispatch::{DispatchError, ProxyRequest, StreamMode};
use crate::translate::model_id;
use crate::upstream::UpstreamRequest;
use poem::http::{Method, StatusCode};
use poem::web::Data;
use poem::{Body, Request, Response, handler};
use serde_json::Value;
use std::sync::Arc;

/// The calls of Google's OpenAI layer that gemgate passes through: the
/// stateless ones any key can answer.
fn is_served(method: &Method, tail: &str) -> bool {
    match (method, tail.trim_end_matches('/')) {
        (&Method::POST, "chat/completions" | "embeddings") | (&Method::GET, "models") => true,
        (&Method::GET, path) => path
            .strip_prefix("models/")
            .is_some_and(|id| super::paths::is_valid_model_name(id.strip_prefix("models/").unwrap_or(id))),
        _ => false,
    }
}

/// Serves every `/v1beta/openai/…` path.
#[handler]
pub async fn passthrough(request: &Request, body: Body, state: Data<&Arc<AppState>>) -> Response {
    super::intake::serve(&GoogleOpenAi, request, body, &state).await
}

/// Google's OpenAI layer, passed through: OpenAI's error shape, except that
/// Google's own error body passes as it is.
pub struct GoogleOpenAi;

impl Dialect for GoogleOpenAi {
    /// The path after `/v1beta/openai/`.
    type Call = String;

    fn route(&self, request: &Request) -> Result<String, ClientError> {
        let tail = request.uri().path().strip_prefix("/v1beta/openai/").unwrap_or_default();
        if !is_served(request.method(), tail) {
            let message = format!("gemgate does not pass {} /v1beta/openai/{tail} through", request.method());
            return Err(ClientError::Route { status: 404, message });
        }
        Ok(tail.trim_end_matches('/').to_string())
    }

    async fn serve(
        &self,
        tail: &String,
        admitted: Admitted,
        request: &Request,
        state: &Arc<AppState>,
    ) -> Result<Response, ClientError> {
        let json: Option<Value> = if admitted.body.is_empty() { None } else { Some(parse_json(&admitted.body)?) };
        let field = |name: &str| json.as_ref().and_then(|j| j.get(name));
        let model = field("model").and_then(Value::as_str).map(model_id).unwrap_or_default();
        let streaming = field("stream").and_then(Value::as_bool) == Some(true);
        // Names pass to Google as they are here: the catalog's allow and deny
        // lists hold, its aliases and variants are gemgate's dialects' own.
        if !model.is_empty() && !state.rules.load().catalog.serves(model) {
            return Err(ClientError::UnknownModel(model.to_string()));
        }
        let pass = admitted.pass(model, model).await?;
        // No query parameter of the client's is forwarded: this layer documents none.
        let proxied = ProxyRequest {
            upstream: UpstreamRequest {
                method: request.method().clone(),
                path_and_query: format!("/v1beta/openai/{tail}"),
                body: admitted.body,
                content_type: request.headers().get("content-type").cloned(),
                bearer: true,
            },
            model: Arc::from(model),
            mode: if streaming { StreamMode::Sse } else { StreamMode::Whole },
            route: "google-openai",
            client: pass.client,
            charge: pass.charge,
            session: pass.session,
            request_id: pass.request_id,
        };
        let reply = state.dispatcher.dispatch(proxied).await?;
        Ok(super::relay_response(reply, move |cut| {
            let message = format!("the upstream reply was cut: {}", cut.message);
            if streaming {
                Ok(crate::translate::stream::error_frame(&message, 502).into())
            } else {
                Err(std::io::Error::other(message))
            }
        }))
    }

    fn render(&self, _tail: Option<&String>, error: ClientError) -> Response {
        // Google's own error body when it answered; OpenAI's format for gemgate's errors.
        if let ClientError::Dispatch(dispatch) = &error
            && let DispatchError::Upstream(failure) = &**dispatch
            && failure.google.http_status != 0
            && !failure.body.is_empty()
        {
            let text = String::from_utf8_lossy(&failure.body);
            return Response::builder()
                .status(StatusCode::from_u16(failure.google.http_status).unwrap_or(StatusCode::BAD_GATEWAY))
                .content_type("application/json")
                .body(crate::keys::redact_keys(&text).into_owned());
        }
        super::openai::errors::render(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stateless_calls_pass() {
        assert!(is_served(&Method::POST, "chat/completions"));
        assert!(is_served(&Method::GET, "models/gemini-2.5-flash"));
        assert!(is_served(&Method::GET, "models/models/gemini-2.5-flash"));
        assert!(!is_served(&Method::DELETE, "chat/completions"));
        assert!(!is_served(&Method::GET, "files"));
        assert!(!is_served(&Method::POST, "batches"));
        assert!(!is_served(&Method::GET, "models/.."));
    }
}
