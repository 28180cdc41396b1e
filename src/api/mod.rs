//! The HTTP surface (poem): client authentication, the native Gemini routes,
//! the OpenAI-compatible routes, and errors in each dialect.

pub mod access;
pub mod anthropic;
pub mod auth;
pub mod auth_limit;
pub mod body;
pub mod google_openai;
pub mod intake;
pub mod native;
pub mod openai;
pub mod paths;
pub mod session;
pub mod translated;

use crate::dispatch::{Dispatcher, StreamMode};
use poem::web::Data;
use poem::{Endpoint, handler};
use std::sync::Arc;

/// What every route needs.
pub struct AppState {
    /// Serves requests through the pool.
    pub dispatcher: Arc<Dispatcher>,
    /// Client keys, the metrics token and the failed-auth limiter.
    pub access: access::Access,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Google's model list for `/v1/models`.
    pub models: openai::ModelsCache,
    /// Responses kept for `previous_response_id`, while their rows are written.
    pub responses: openai::responses::ResponseKeeper,
    /// The store, for readiness.
    pub store: crate::store::Store,
    /// Reload events, for `/metrics`.
    pub reloads: Arc<crate::watch::ReloadStatus>,
    /// How requests are served (swapped whole when config.toml changes).
    pub rules: arc_swap::ArcSwap<ServingRules>,
    /// The link to the other replicas, when `[cluster]` is on.
    pub cluster: Option<Arc<crate::cluster::ClusterLink>>,
}

/// What config.toml says about serving client requests.
pub struct ServingRules {
    /// The models served and their names.
    pub catalog: crate::catalog::Catalog,
    /// Operator defaults and injections for generate calls, global and per client.
    pub shaping: crate::shaping::Shaping,
    /// OpenAI API options.
    pub openai: crate::config::OpenAiConfig,
    /// Claude model names → Gemini models.
    pub anthropic: anthropic::ModelMap,
}

impl ServingRules {
    /// The rules `config` sets.
    pub fn new(config: &crate::config::Config) -> Self {
        Self {
            catalog: crate::catalog::Catalog::new(&config.catalog),
            shaping: crate::shaping::Shaping::new(&config.shaping),
            openai: config.openai.clone(),
            anthropic: anthropic::ModelMap::new(&config.anthropic),
        }
    }

    /// Applies the catalog's variant and the operator's shaping for
    /// `client` to a generate body for `model`.
    pub fn shape(
        &self,
        client: &str,
        model: &str,
        variant: Option<crate::catalog::Variant>,
        body: &mut serde_json::Value,
    ) {
        if let Some(variant) = variant {
            crate::catalog::apply_variant(variant, model, body);
        }
        crate::shaping::shape(self.shaping.of(client), model, body);
    }

    /// Whether a generate body of `client` for this call must be rewritten.
    pub fn reshapes(&self, client: &str, variant: Option<crate::catalog::Variant>) -> bool {
        variant.is_some() || crate::shaping::shapes(self.shaping.of(client))
    }
}

/// `GET /metrics`: Prometheus text, behind the metrics token (or admin key).
#[handler]
pub async fn metrics(request: &poem::Request, state: Data<&Arc<AppState>>) -> poem::Response {
    if let Err(err) = state.access.authenticate_metrics(request) {
        let mut response = poem::Response::builder()
            .status(poem::http::StatusCode::from_u16(err.status()).unwrap_or(poem::http::StatusCode::UNAUTHORIZED));
        if let Some(secs) = err.retry_after_secs() {
            response = response.header("retry-after", secs);
        }
        return match err {
            auth::AuthError::TooMany(_) => response.body(format!("{}\n", err.message())),
            _ => response.body("metrics need the admin key (or auth.metrics_token) as `Authorization: Bearer …`\n"),
        };
    }
    let m = &state.dispatcher.metrics;
    let now = std::time::SystemTime::now();
    let counts = crate::key_state::StatusCounts::of(state.dispatcher.pool.slots().iter().map(|s| s.snapshot()), now);
    for (name, count) in [
        ("active", counts.active),
        ("partial", counts.partial),
        ("cooling", counts.cooling),
        ("disabled", counts.disabled),
    ] {
        m.keys.get_or_create(&crate::metrics::StateLabels { state: name.into() }).set(count as i64);
    }
    m.cooldowns.set((counts.cooling + counts.partial) as i64);
    let scan = state.dispatcher.pool.scan_report();
    m.scan_done.set(scan.done as i64);
    m.scan_total.set(scan.total as i64);
    m.scan_running.set(i64::from(scan.running));
    m.store_dropped.set(state.dispatcher.store.dropped() as i64);
    m.policy_faults.set(state.dispatcher.policy.faults() as i64);
    let mut reloads = std::collections::HashMap::new();
    for event in state.reloads.events() {
        *reloads.entry((event.what, event.accepted)).or_insert(0i64) += 1;
    }
    for ((what, accepted), count) in reloads {
        let result = if accepted { "accepted" } else { "rejected" };
        m.reloads.get_or_create(&crate::metrics::ReloadLabels { what: what.into(), result: result.into() }).set(count);
    }
    poem::Response::builder()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(m.encode())
}

impl AppState {
    /// Applies a config's retry budget, serving rules and client keys.
    pub fn apply_config(&self, config: &crate::config::Config) {
        self.dispatcher.retry.store(Arc::new(config.retry.clone()));
        self.dispatcher.store.sample_successes(config.store.log_sample_successes);
        self.rules.store(Arc::new(ServingRules::new(config)));
        self.access.apply_config(config);
    }

    /// Reads what every client with a budget spent in its current period
    /// back from the usage rollups (at start, and when budgets change).
    pub async fn seed_budgets(&self) -> Result<(), crate::store::StoreError> {
        self.access.accounting.seed_budgets(&self.store, &self.access.budgeted()).await
    }

    /// Reads client keys again from the store into the auth in force (after
    /// an admin edit here or, in a cluster, on another replica).
    pub async fn reload_clients(&self, config: &crate::config::Config) -> Result<(), crate::store::StoreError> {
        let stored = self.store.client_keys().await?;
        self.access.set_stored(stored, config);
        self.seed_budgets().await
    }
}

/// Reads a whole reply; a cut reply is an error.
pub async fn collect_reply(body: crate::dispatch::ReplyBody) -> Result<bytes::Bytes, intake::ClientError> {
    match body {
        crate::dispatch::ReplyBody::Complete(bytes) => Ok(bytes),
        crate::dispatch::ReplyBody::Streaming(mut stream) => {
            let mut buffer = Vec::new();
            while let Some(item) = futures_util::StreamExt::next(&mut stream).await {
                match item {
                    Ok(chunk) => buffer.extend_from_slice(&chunk),
                    Err(cut) => {
                        return Err(intake::ClientError::BadReply(format!(
                            "the upstream reply was cut: {}",
                            cut.message
                        )));
                    }
                }
            }
            Ok(bytes::Bytes::from(buffer))
        }
    }
}

/// A committed reply as a poem response: Google's status and headers, the
/// body whole or streamed; `on_cut` turns a mid-reply cut into a closing
/// frame (`Ok`) or an aborted body (`Err`).
pub fn relay_response(
    reply: crate::dispatch::ProxyResponse,
    on_cut: impl Fn(crate::dispatch::StreamCut) -> Result<bytes::Bytes, std::io::Error> + Send + Sync + 'static,
) -> poem::Response {
    use futures_util::StreamExt;
    let status = poem::http::StatusCode::from_u16(reply.status).unwrap_or(poem::http::StatusCode::OK);
    let mut builder = poem::Response::builder().status(status);
    for (name, value) in reply.headers {
        builder = builder.header(name, value);
    }
    match reply.body {
        crate::dispatch::ReplyBody::Complete(bytes) => builder.body(bytes),
        crate::dispatch::ReplyBody::Streaming(stream) => {
            let body = stream.map(move |item| item.or_else(&on_cut));
            builder.body(poem::Body::from_bytes_stream(body))
        }
    }
}

/// `GET /healthz`: the process is up. No client auth.
#[handler]
pub fn healthz() -> poem::Response {
    poem::Response::builder().content_type("application/json").body(r#"{"status":"ok"}"#)
}

/// `GET /readyz`: the store answers and at least one key is usable. No client auth.
#[handler]
pub async fn readyz(state: Data<&Arc<AppState>>) -> poem::Response {
    let slots = state.dispatcher.pool.slots();
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
    // A replica whose Redis link is down still serves (from its own view): it says so, and stays ready.
    if let Some(link) = &state.cluster {
        body["cluster"] = serde_json::json!(if link.up() { "up" } else { "down" });
        body["replicas"] = serde_json::json!(link.replicas());
        if let Some(error) = link.last_error().filter(|_| !link.up()) {
            body["cluster_error"] = serde_json::json!(error);
        }
    }
    poem::Response::builder().status(status).content_type("application/json").body(body.to_string())
}

/// Anything that matches no route: a 404 in Google's format.
#[handler]
pub fn not_found(request: &poem::Request) -> poem::Response {
    let message = format!("gemgate: no route for {} {}", request.method(), request.uri().path());
    native::errors::render(intake::ClientError::Route { status: 404, message }, StreamMode::Whole)
}

/// `/v1/…` is Google's stable API, OpenAI's and Anthropic's. `messages` is
/// Anthropic's; chat completions, responses and embeddings are OpenAI's; `models` is
/// OpenAI's unless the caller speaks Google (an `x-goog-api-key` header or
/// `key=` query); the rest is Google's.
#[handler]
pub async fn v1(request: &poem::Request, body: poem::Body, state: Data<&Arc<AppState>>) -> poem::Response {
    let tail = request.uri().path().strip_prefix("/v1/").unwrap_or_default();
    let speaks_google = request.headers().contains_key("x-goog-api-key")
        || request.uri().query().is_some_and(|q| q.split('&').any(|p| p.starts_with("key=")));
    if anthropic::is_messages_path(tail) {
        return intake::serve(&anthropic::Anthropic, request, body, &state).await;
    }
    match openai::parse_openai_path(request.method(), tail) {
        Some(
            openai::OpenAiCall::ChatCompletions
            | openai::OpenAiCall::Embeddings
            | openai::OpenAiCall::Responses
            | openai::OpenAiCall::GetResponse(_)
            | openai::OpenAiCall::DeleteResponse(_),
        ) => intake::serve(&openai::OpenAi, request, body, &state).await,
        Some(_) if !speaks_google => intake::serve(&openai::OpenAi, request, body, &state).await,
        _ => intake::serve(&native::Native, request, body, &state).await,
    }
}

/// `/openai/v1/…`: OpenAI's API only.
#[handler]
pub async fn openai_only(request: &poem::Request, body: poem::Body, state: Data<&Arc<AppState>>) -> poem::Response {
    intake::serve(&openai::OpenAi, request, body, &state).await
}

/// `/anthropic/v1/…`: Anthropic's API only.
#[handler]
pub async fn anthropic_only(request: &poem::Request, body: poem::Body, state: Data<&Arc<AppState>>) -> poem::Response {
    intake::serve(&anthropic::Anthropic, request, body, &state).await
}

/// Refuses a path with dot segments, empty segments or encoded separators
/// before any route sees it, in the dialect its prefix speaks.
pub async fn refuse_unsafe_paths<E: Endpoint>(
    endpoint: Arc<E>,
    request: poem::Request,
) -> poem::Result<poem::Response> {
    let path = request.uri().path();
    let Some(reason) = paths::unsafe_path_reason(path) else {
        return Ok(endpoint.get_response(request).await);
    };
    let message = format!("gemgate: {reason}");
    let openai = ["/openai/", "/v1beta/openai/", "/v1/chat/", "/v1/embeddings"].iter().any(|p| path.starts_with(p));
    let anthropic = ["/anthropic/", "/v1/messages"].iter().any(|p| path.starts_with(p));
    Ok(if path.starts_with("/admin/") {
        poem::Response::builder()
            .status(poem::http::StatusCode::BAD_REQUEST)
            .content_type("application/json")
            .body(serde_json::json!({"error": {"code": 400, "message": message}}).to_string())
    } else if openai {
        openai::errors::openai_error(400, &message, None, Some("invalid_path"))
    } else if anthropic {
        anthropic::errors::anthropic_error(400, &message)
    } else {
        native::errors::error_response(400, &message, Vec::new(), StreamMode::Whole)
    })
}

/// A request's id, as the client sees it in `x-request-id`.
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);

/// Gives every request an id (the client's `x-request-id` when it is sane, a
/// new one otherwise): in a tracing span around the handler, so every log
/// line of the request carries it, and in the response header.
pub async fn with_request_id<E: Endpoint>(
    endpoint: Arc<E>,
    mut request: poem::Request,
) -> poem::Result<poem::Response> {
    use tracing::Instrument;
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(String::from)
        .unwrap_or_else(|| crate::store::new_request_id(rand::random()));
    let span =
        tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    // The ledger stores it with the request's row and each failed attempt.
    request.extensions_mut().insert(RequestId(Arc::from(id.as_str())));
    let mut response = endpoint.get_response(request).instrument(span).await;
    if let Ok(value) = poem::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    Ok(response)
}
