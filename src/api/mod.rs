//! The HTTP surface (poem): client authentication, the native Gemini routes,
//! the OpenAI-compatible routes, and errors in each dialect.

pub mod auth;
pub mod gemini;
pub mod google_errors;
pub mod google_openai;
pub mod openai;
pub mod openai_errors;

use crate::dispatch::{Dispatcher, StreamMode};
use auth::ClientAuth;
use poem::web::Data;
use poem::{Endpoint, EndpointExt, Route, handler};
use std::sync::Arc;

/// What every route needs.
pub struct AppState {
    /// Serves requests through the pool.
    pub dispatcher: Arc<Dispatcher>,
    /// Client keys (swapped whole when config.toml changes).
    pub auth: arc_swap::ArcSwap<ClientAuth>,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Google's model list for `/v1/models`.
    pub models: openai::ModelsCache,
    /// The store, for readiness.
    pub store: crate::store::Store,
}

impl AppState {
    /// Applies a reloaded config's retry budget and client keys.
    pub fn retry_and_auth(&self, config: &crate::config::Config, generated_client_key: Option<&str>) {
        self.dispatcher.retry.store(Arc::new(config.retry.clone()));
        let mut keys = config.auth.client_keys.clone();
        if keys.is_empty()
            && let Some(generated) = generated_client_key
        {
            keys.push(generated.to_string());
        }
        self.auth.store(Arc::new(ClientAuth::new(&keys, config.auth.open)));
    }
}

/// `GET /healthz`: the process is up. No client auth.
#[handler]
fn healthz() -> poem::Response {
    poem::Response::builder().content_type("application/json").body(r#"{"status":"ok"}"#)
}

/// `GET /readyz`: the store answers and at least one key is usable. No client auth.
#[handler]
async fn readyz(state: Data<&Arc<AppState>>) -> poem::Response {
    let slots = state.dispatcher.pool.slots().await;
    let usable = slots.iter().filter(|slot| slot.disabled().is_none()).count();
    let store_ok = state.store.ping().await;
    let reason = if !store_ok {
        Some("the store does not answer")
    } else if slots.is_empty() {
        Some("the key pool is empty")
    } else if usable == 0 {
        Some("every key is disabled")
    } else {
        None
    };
    let counts = serde_json::json!({"keys": slots.len(), "usable_keys": usable});
    let (status, mut body) = match reason {
        None => (poem::http::StatusCode::OK, serde_json::json!({"status": "ready"})),
        Some(reason) => {
            (poem::http::StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"status": "unready", "reason": reason}))
        }
    };
    body["keys"] = counts["keys"].clone();
    body["usable_keys"] = counts["usable_keys"].clone();
    poem::Response::builder().status(status).content_type("application/json").body(body.to_string())
}

/// Anything that matches no route: a 404 in Google's format.
#[handler]
fn not_found(request: &poem::Request) -> poem::Response {
    let message = format!("gemgate: no route for {} {}", request.method(), request.uri().path());
    google_errors::error_response(404, &message, Vec::new(), StreamMode::Whole)
}

/// `/v1/…` is both Google's stable API and OpenAI's. Chat completions and
/// embeddings are OpenAI's; `models` is OpenAI's unless the caller speaks
/// Google (an `x-goog-api-key` header or `key=` query); the rest is Google's.
#[handler]
async fn v1(request: &poem::Request, body: poem::Body, state: Data<&Arc<AppState>>) -> poem::Response {
    let tail = request.uri().path().strip_prefix("/v1/").unwrap_or_default();
    let speaks_google = request.headers().contains_key("x-goog-api-key")
        || request.uri().query().is_some_and(|q| q.split('&').any(|p| p.starts_with("key=")));
    match openai::parse_openai_path(request.method(), tail) {
        Some(call @ (openai::OpenAiCall::ChatCompletions | openai::OpenAiCall::Embeddings)) => {
            openai::serve(call, request, body, &state).await
        }
        Some(call) if !speaks_google => openai::serve(call, request, body, &state).await,
        _ => gemini::serve(request, body, &state).await,
    }
}

/// `/openai/v1/…`: OpenAI's API only.
#[handler]
async fn openai_only(request: &poem::Request, body: poem::Body, state: Data<&Arc<AppState>>) -> poem::Response {
    let tail = request.uri().path().strip_prefix("/openai/v1/").unwrap_or_default();
    match openai::parse_openai_path(request.method(), tail) {
        Some(call) => openai::serve(call, request, body, &state).await,
        None => {
            let message = format!("no such endpoint: {} /openai/v1/{tail}", request.method());
            openai_errors::openai_error(404, &message, None, None)
        }
    }
}

/// The full route table.
pub fn routes(state: Arc<AppState>) -> impl Endpoint {
    Route::new()
        .at("/v1beta/openai/*path", google_openai::passthrough)
        .at("/v1beta/*path", gemini::native)
        .at("/v1/*path", v1)
        .at("/openai/v1/*path", openai_only)
        .at("/healthz", healthz)
        .at("/readyz", readyz)
        .at("/*path", not_found)
        .data(state)
}
