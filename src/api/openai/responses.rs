//! OpenAI's Responses API: `POST /v1/responses` (Codex CLI, `client.responses`),
//! `GET` and `DELETE /v1/responses/{id}`. A response made with `store` (the
//! default) is kept for `[openai] responses_keep_secs` with its whole
//! conversation, so `previous_response_id` continues it; only the client
//! that made it can read, continue or delete it.

use super::resolve_in_body;
use crate::api::AppState;
use crate::api::intake::{Admitted, ClientError, check_model};
use crate::api::translated::{StreamTranslator, gemini_request, json_response, parse_reply, relay_stream};
use crate::dispatch::StreamMode;
use crate::store::{Store, StoredResponse};
use crate::translate::TranslateError;
use crate::translate::response::unix_now;
use crate::translate::responses::request::{input_items, previous_response_id, responses_request};
use crate::translate::responses::stream::{OnDone, ResponsesStream, whole};
use poem::Response;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A stored conversation may grow to this many times the largest body.
const CONVERSATION_BODIES: usize = 4;

/// Responses kept for `previous_response_id`: in the store, and in memory
/// from the moment a stream ends until its row is written (so a client that
/// continues at once never misses it).
#[derive(Default)]
pub struct ResponseKeeper {
    writing: Mutex<HashMap<String, (Arc<str>, StoredResponse)>>,
}

impl ResponseKeeper {
    fn writing(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<str>, StoredResponse)>> {
        self.writing.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn get(&self, store: &Store, id: &str, client: &str) -> Result<Option<StoredResponse>, ClientError> {
        if let Some((owner, stored)) = self.writing().get(id)
            && &**owner == client
        {
            return Ok(Some(stored.clone()));
        }
        store.response(id, client).await.map_err(|err| ClientError::Internal(format!("reading responses: {err}")))
    }
}

/// Whether `id` can name a response (what gemgate makes: `resp_` and hex).
pub fn is_response_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Keeps `response` with its conversation (`items` then its output).
fn keep(
    state: &Arc<AppState>,
    client: &Arc<str>,
    mut items: Vec<Value>,
    response: &Value,
) -> Option<(String, StoredResponse)> {
    let id = response.get("id").and_then(Value::as_str)?.to_string();
    items.extend(response.get("output").and_then(Value::as_array).cloned().unwrap_or_default());
    let stored = StoredResponse { items: Value::Array(items).to_string(), response: response.to_string() };
    state.responses.writing().insert(id.clone(), (client.clone(), stored.clone()));
    Some((id, stored))
}

async fn write(state: Arc<AppState>, client: Arc<str>, id: String, stored: StoredResponse) {
    let keep_secs = state.rules.load().openai.responses_keep_secs;
    let expires = crate::store::now_ms().saturating_add(keep_secs.saturating_mul(1000) as i64);
    if let Err(err) = state.store.put_response(&id, &client, &stored, expires).await {
        tracing::warn!(%err, "a response could not be kept for previous_response_id");
    }
    state.responses.writing().remove(&id);
}

/// `POST /v1/responses`.
pub async fn create(mut json: Value, admitted: &Admitted, state: &Arc<AppState>) -> Result<Response, ClientError> {
    let rules = state.rules.load_full();
    let (asked, variant) = resolve_in_body(&mut json, &rules.catalog)?;
    let model = json.get("model").and_then(Value::as_str).unwrap_or_default().to_string();
    if model.is_empty() {
        return Err(TranslateError::invalid("model", "`model` is required").into());
    }
    check_model(&model)?;
    let client = admitted.client_name().clone();
    let mut items: Vec<Value> = Vec::new();
    if let Some(previous) = previous_response_id(&json)? {
        let stored = state.responses.get(&state.store, previous, &client).await?.ok_or_else(|| {
            TranslateError::invalid(
                "previous_response_id",
                format!("Previous response with id '{previous}' not found."),
            )
            .with_code("previous_response_not_found")
        })?;
        items = serde_json::from_str(&stored.items).unwrap_or_default();
    }
    items.extend(input_items(&json)?);
    // Measured without a copy of the conversation.
    if serde_json::to_vec(&items).map_or(usize::MAX, |bytes| bytes.len()) > CONVERSATION_BODIES * state.max_body_bytes {
        return Err(TranslateError::invalid(
            "previous_response_id",
            "the conversation through previous_response_id is too long; send the history without it",
        )
        .into());
    }
    let mut request = responses_request(&json, &items, &model)?;
    let mut pass = admitted.pass(&asked, &model).await?;
    let cache_key = json.get("prompt_cache_key").and_then(Value::as_str);
    pass.session = pass
        .session
        .or_else(|| cache_key.map(crate::api::session::from_name))
        .or_else(|| crate::api::session::of_gemini_value(&request.body));
    if rules.reshapes(&pass.client, variant) {
        rules.shape(&pass.client, &model, variant, &mut request.body);
    }
    let shown = if asked.is_empty() { model.clone() } else { asked };
    let response = shape(&json, &shown, request.store);
    let kept = request.store && rules.openai.responses_keep_secs > 0;
    let (action, mode) = if request.stream {
        ("streamGenerateContent", StreamMode::Sse)
    } else {
        ("generateContent", StreamMode::Whole)
    };
    let proxied = gemini_request(&model, action, &request.body, mode, "responses", pass);
    let reply = state.dispatcher.dispatch(proxied).await?;
    if !request.stream {
        let value = parse_reply(&crate::api::collect_reply(reply.body).await?)?;
        let response = whole(&value, response, request.one_call);
        if kept && let Some((id, stored)) = keep(state, &client, items, &response) {
            write(state.clone(), client, id, stored).await;
        }
        return Ok(json_response(&response));
    }
    let on_done: Option<OnDone> = kept.then(|| {
        let state = state.clone();
        Box::new(move |response: &Value| {
            if let Some((id, stored)) = keep(&state, &client, items, response) {
                tokio::spawn(write(state.clone(), client, id, stored));
            }
        }) as OnDone
    });
    let translator = ResponsesStream::new(response, on_done).with_one_call(request.one_call);
    Ok(relay_stream(reply.body, translator, super::keepalive_after(&rules)))
}

/// The response object before its output: a fresh id and what the request
/// set, echoed as OpenAI echoes it.
fn shape(json: &Value, model: &str, store: bool) -> Value {
    let echo = |key: &str, default: Value| json.get(key).filter(|v| !v.is_null()).cloned().unwrap_or(default);
    json!({
        "id": format!("resp_{:032x}", rand::random::<u128>()),
        "object": "response",
        "created_at": unix_now(),
        "status": "in_progress",
        "model": model,
        "error": Value::Null,
        "incomplete_details": Value::Null,
        "instructions": echo("instructions", Value::Null),
        "output": [],
        "parallel_tool_calls": echo("parallel_tool_calls", json!(true)),
        "tool_choice": echo("tool_choice", json!("auto")),
        "tools": echo("tools", json!([])),
        "store": store,
        "text": echo("text", json!({"format": {"type": "text"}})),
        "reasoning": echo("reasoning", Value::Null),
        "previous_response_id": echo("previous_response_id", Value::Null),
        "max_output_tokens": echo("max_output_tokens", Value::Null),
        "temperature": echo("temperature", Value::Null),
        "top_p": echo("top_p", Value::Null),
        "metadata": echo("metadata", json!({})),
        "usage": Value::Null,
    })
}

/// `GET /v1/responses/{id}`.
pub async fn get(id: &str, admitted: &Admitted, state: &Arc<AppState>) -> Result<Response, ClientError> {
    let client = admitted.pass("", "").await?.client;
    let stored = state.responses.get(&state.store, id, &client).await?;
    let stored = stored.ok_or_else(|| not_found(id))?;
    let response: Value = serde_json::from_str(&stored.response).map_err(|_| not_found(id))?;
    Ok(json_response(&response))
}

/// `DELETE /v1/responses/{id}`.
pub async fn delete(id: &str, admitted: &Admitted, state: &Arc<AppState>) -> Result<Response, ClientError> {
    let client = admitted.pass("", "").await?.client;
    let deleted = state
        .store
        .delete_response(id, &client)
        .await
        .map_err(|err| ClientError::Internal(format!("deleting a response: {err}")))?;
    if !deleted {
        return Err(not_found(id));
    }
    Ok(json_response(&json!({"id": id, "object": "response.deleted", "deleted": true})))
}

fn not_found(id: &str) -> ClientError {
    ClientError::Route { status: 404, message: format!("Response with id '{id}' not found.") }
}

impl StreamTranslator for ResponsesStream {
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        ResponsesStream::push(self, bytes)
    }

    fn finish(&mut self) -> Vec<String> {
        ResponsesStream::finish(self)
    }

    fn cut(&mut self, why: &str) -> Vec<String> {
        let mut events = Vec::new();
        self.fail("server_error", why, &mut events);
        events
    }

    fn keepalive(&self) -> Option<&'static str> {
        Some(": ping\n\n")
    }
}
