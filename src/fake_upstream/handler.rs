//! The fake's one endpoint: parse the path like Google, check the key, apply
//! the key's behaviour, answer.

use super::FakeState;
use super::behaviour::Behaviour;
use super::bodies::{self, MODELS, find_model};
use super::reply;
use bytes::Bytes;
use poem::http::{Method, StatusCode};
use poem::web::Data;
use poem::{Body, Request, Response, handler};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Whole,
    Sse,
    Array,
}

fn respond(status: u16, value: &Value, mode: Mode) -> Response {
    let value = if mode == Mode::Array { Value::Array(vec![value.clone()]) } else { value.clone() };
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json; charset=UTF-8")
        .header("vary", "Origin, X-Origin, Referer")
        .body(text)
}

fn error_response(error: &Value, mode: Mode) -> Response {
    let status = error["error"]["code"].as_u64().unwrap_or(500) as u16;
    respond(status, error, mode)
}

/// Serves every request to the fake.
#[handler]
pub async fn serve(request: &Request, body: Bytes, state: Data<&Arc<FakeState>>) -> Response {
    let path = request.uri().path();
    let query = request.uri().query().unwrap_or_default();
    let path_and_query = request.uri().path_and_query().map_or(path, |p| p.as_str());
    state.saw(request.method().as_str(), path_and_query);
    state.saw_body(path_and_query, &body);
    if let Some(tail) = path.strip_prefix("/v1beta/openai/") {
        return openai_compat(request, tail, &body, &state).await;
    }
    let Some(tail) = path.strip_prefix("/v1beta/").or_else(|| path.strip_prefix("/v1/")) else {
        return error_response(&bodies::error(404, "NOT_FOUND", "Not found", Vec::new()), Mode::Whole);
    };
    let (model, action) = match tail.strip_prefix("models/") {
        Some(rest) => match rest.split_once(':') {
            Some((model, action)) => (model.to_string(), action.to_string()),
            None => (rest.to_string(), String::new()),
        },
        None => (String::new(), String::new()),
    };
    let mode = match action.as_str() {
        "streamGenerateContent" if query.split('&').any(|p| p == "alt=sse") => Mode::Sse,
        "streamGenerateContent" => Mode::Array,
        _ => Mode::Whole,
    };
    let key = request
        .headers()
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .or_else(|| query.split('&').find_map(|p| p.strip_prefix("key=")).map(String::from));
    let Some(key) = key else { return error_response(&bodies::unregistered_caller(), mode) };
    let Some(behaviour) = state.behaviour_of(&key) else { return error_response(&bodies::key_invalid(), mode) };
    state.record(&key, &model);

    if let Behaviour::Slow(ms) = behaviour {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    match behaviour {
        Behaviour::Invalid => return error_response(&bodies::key_invalid(), mode),
        Behaviour::Denied => return error_response(&bodies::key_suspended(&key), mode),
        _ => {}
    }
    if tail == "models" || tail == "models/" {
        if request.method() != Method::GET {
            return error_response(&bodies::error(405, "INVALID_ARGUMENT", "Method not allowed", Vec::new()), mode);
        }
        return list_models(query);
    }
    if model.is_empty() {
        return error_response(
            &bodies::error(404, "NOT_FOUND", &format!("Method not found: {tail}"), Vec::new()),
            mode,
        );
    }
    if action.is_empty() {
        return match find_model(&model) {
            Some(found) => respond(200, &bodies::model_json(found), Mode::Whole),
            None => error_response(
                &bodies::error(
                    404,
                    "NOT_FOUND",
                    &format!("models/{model} is not found for API version v1beta"),
                    Vec::new(),
                ),
                mode,
            ),
        };
    }
    if request.method() != Method::POST {
        return error_response(&bodies::error(404, "NOT_FOUND", "Method not found.", Vec::new()), mode);
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return error_response(&bodies::invalid_payload("Unexpected token.", None), mode);
    };
    if let Some(refusal) = key_refusal(behaviour, &model, &action) {
        return error_response(&refusal, mode);
    }
    match action.as_str() {
        "generateContent" | "streamGenerateContent" => {
            let cached = state.cached_tokens(&key, &payload);
            generate(&model, &action, &payload, behaviour, mode, cached).await
        }
        "countTokens" => count_tokens(&model, &payload),
        "embedContent" | "batchEmbedContents" => embed(&model, &action, &payload),
        _ => error_response(&bodies::error(404, "NOT_FOUND", &format!("Method not found: {action}"), Vec::new()), mode),
    }
}

/// Errors a key's behaviour causes on the quota-counted methods.
fn key_refusal(behaviour: Behaviour, model: &str, action: &str) -> Option<Value> {
    if action == "countTokens" {
        return None;
    }
    Some(match behaviour {
        Behaviour::Rpm(secs) => bodies::quota_exceeded(model, false, secs),
        Behaviour::ProRpm(secs) if model.contains("pro") => bodies::quota_exceeded(model, false, secs),
        Behaviour::Rpd => bodies::quota_exceeded(model, true, 0),
        Behaviour::Region => {
            bodies::error(400, "FAILED_PRECONDITION", "User location is not supported for the API use.", Vec::new())
        }
        Behaviour::Overload => {
            bodies::error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.", Vec::new())
        }
        Behaviour::Internal => bodies::error(
            500,
            "INTERNAL",
            "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
            Vec::new(),
        ),
        Behaviour::Timeout => {
            bodies::error(504, "DEADLINE_EXCEEDED", "The request timed out. Please try again.", Vec::new())
        }
        _ => return None,
    })
}

fn list_models(query: &str) -> Response {
    let param = |name: &str| query.split('&').find_map(|p| p.strip_prefix(name)).and_then(|v| v.parse::<usize>().ok());
    let size = param("pageSize=").unwrap_or(50).clamp(1, 1000);
    let start = param("pageToken=").unwrap_or(0).min(MODELS.len());
    let end = (start + size).min(MODELS.len());
    let mut value = json!({"models": MODELS[start..end].iter().map(bodies::model_json).collect::<Vec<_>>()});
    if end < MODELS.len() {
        value["nextPageToken"] = json!(end.to_string());
    }
    respond(200, &value, Mode::Whole)
}

const GENERATE_FIELDS: &[&str] = &[
    "model",
    "contents",
    "systemInstruction",
    "system_instruction",
    "tools",
    "toolConfig",
    "tool_config",
    "safetySettings",
    "safety_settings",
    "generationConfig",
    "generation_config",
    "cachedContent",
    "cached_content",
    "labels",
];

fn validate_generate(model: &str, payload: &Value) -> Result<(), Value> {
    let Some(object) = payload.as_object() else { return Err(bodies::invalid_payload("Expected an object.", None)) };
    if let Some(unknown) = object.keys().find(|k| !GENERATE_FIELDS.contains(&k.as_str())) {
        return Err(bodies::invalid_payload(&format!("Unknown name \"{unknown}\": Cannot find field."), Some(unknown)));
    }
    if payload.get("contents").and_then(Value::as_array).is_none_or(|c| c.is_empty()) {
        return Err(bodies::invalid_argument("* GenerateContentRequest.contents: contents is not specified\n"));
    }
    let config = payload.get("generationConfig").or_else(|| payload.get("generation_config"));
    let thinking = config.and_then(|c| c.get("thinkingConfig").or_else(|| c.get("thinking_config")));
    if let Some(thinking) = thinking {
        let budget = thinking.get("thinkingBudget").or_else(|| thinking.get("thinking_budget"));
        let level = thinking.get("thinkingLevel").or_else(|| thinking.get("thinking_level"));
        if budget.is_some() && level.is_some() {
            return Err(bodies::invalid_argument("You can only set only one of thinking budget and thinking level."));
        }
    }
    match find_model(model) {
        Some(found) if found.methods.contains(&"generateContent") => Ok(()),
        _ => Err(bodies::model_not_found(model, "generateContent")),
    }
}

async fn generate(
    model: &str,
    action: &str,
    payload: &Value,
    behaviour: Behaviour,
    mode: Mode,
    cached: u64,
) -> Response {
    if let Err(error) = validate_generate(model, payload) {
        return error_response(&error, mode);
    }
    let Some(found) = find_model(model) else { return error_response(&bodies::model_not_found(model, action), mode) };
    let plan = match reply::plan(found, payload) {
        Ok(plan) => plan,
        Err(error) => return error_response(&error, mode),
    };
    let system = payload.get("systemInstruction").cloned().map(|s| json!([s])).unwrap_or_default();
    let prompt_tokens = bodies::count_tokens(&payload["contents"]) + bodies::count_tokens(&system);
    let response_id = format!("fake-{:x}", rand::random::<u64>());
    let objects: Vec<Value> = match behaviour {
        Behaviour::Empty => {
            let mut reply = bodies::generate_chunk(model, "", Some((prompt_tokens, 0)), &response_id);
            reply["candidates"][0]["content"] = json!({"role": "model"});
            vec![reply]
        }
        Behaviour::Blocked => vec![json!({
            "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]},
            "usageMetadata": {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens},
            "modelVersion": model, "responseId": response_id})],
        _ => {
            let mut objects =
                plan_objects(model, &plan, action == "streamGenerateContent", prompt_tokens, &response_id);
            if cached > 0
                && let Some(usage) = objects.last_mut().and_then(|o| o.get_mut("usageMetadata"))
            {
                usage["cachedContentTokenCount"] = json!(cached.min(prompt_tokens));
                usage["cacheTokensDetails"] = json!([{"modality": "TEXT", "tokenCount": cached.min(prompt_tokens)}]);
            }
            objects
        }
    };
    let frames = frame(&objects, mode);
    let (cut_after, drip) = match behaviour {
        Behaviour::Cut(n) => (Some(n as usize), Duration::ZERO),
        Behaviour::Drip(ms) => (None, Duration::from_millis(ms)),
        _ => (None, Duration::ZERO),
    };
    let content_type = if mode == Mode::Sse { "text/event-stream" } else { "application/json; charset=UTF-8" };
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .content_type(content_type)
        .header("server-timing", "gfet4t7; dur=42");
    if cut_after.is_some() {
        // hyper ends a chunked body cleanly even when the stream fails; a
        // promised length that never arrives is a real cut for the client.
        let promised: usize = frames.iter().map(Bytes::len).sum();
        builder = builder.header("content-length", promised.to_string());
    }
    builder.body(Body::from_bytes_stream(frame_stream(frames, cut_after, drip)))
}

/// The reply as Google's response objects: one, or (streaming) the text in
/// three pieces with thoughts first and function calls and usage last.
fn plan_objects(
    model: &str,
    plan: &reply::ReplyPlan,
    streaming: bool,
    prompt_tokens: u64,
    response_id: &str,
) -> Vec<Value> {
    let text = plan.text.clone().unwrap_or_default();
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    let pieces: Vec<String> = if streaming && !words.is_empty() {
        words.chunks(words.len().div_ceil(3).max(1)).map(|c| c.concat()).collect()
    } else {
        vec![text.clone()]
    };
    let thoughts = u64::from(plan.thought.is_some()) * 3;
    let completion = words.len() as u64 + 8 * plan.calls.len() as u64;
    let last = pieces.len() - 1;
    pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let mut parts = Vec::new();
            if i == 0
                && let Some(thought) = &plan.thought
            {
                parts.push(json!({"text": thought, "thought": true}));
            }
            if !piece.is_empty() {
                parts.push(json!({"text": piece}));
            }
            if i == last {
                parts.extend(plan.calls.iter().cloned());
                parts.extend(plan.media.iter().cloned());
            }
            let candidates: Vec<Value> = (0..plan.candidates)
                .map(|index| {
                    let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": index});
                    if i == last {
                        candidate["finishReason"] = json!("STOP");
                    }
                    candidate
                })
                .collect();
            let mut object = json!({"candidates": candidates, "modelVersion": model, "responseId": response_id});
            if i == last {
                object["usageMetadata"] = json!({
                    "promptTokenCount": prompt_tokens,
                    "candidatesTokenCount": completion,
                    "thoughtsTokenCount": thoughts,
                    "totalTokenCount": prompt_tokens + completion + thoughts,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]
                });
            }
            object
        })
        .collect()
}

/// The bytes of each object as Google frames them in `mode`. A whole reply
/// is split in two frames so a cut can fall in its middle.
fn frame(objects: &[Value], mode: Mode) -> Vec<Bytes> {
    match mode {
        Mode::Sse => objects.iter().map(|o| Bytes::from(format!("data: {o}\r\n\r\n"))).collect(),
        Mode::Array => {
            let last = objects.len().saturating_sub(1);
            objects
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let pretty = serde_json::to_string_pretty(o).unwrap_or_default();
                    let open = if i == 0 { "[" } else { ",\r\n" };
                    let close = if i == last { "\n]" } else { "\n" };
                    Bytes::from(format!("{open}{pretty}{close}"))
                })
                .collect()
        }
        Mode::Whole => {
            let text = serde_json::to_string_pretty(&objects[0]).unwrap_or_default();
            let middle = text.len() / 2;
            let (head, tail) = text.split_at(text.char_indices().map(|(i, _)| i).find(|&i| i >= middle).unwrap_or(0));
            vec![Bytes::from(head.to_string()), Bytes::from(tail.to_string())]
        }
    }
}

fn frame_stream(
    frames: Vec<Bytes>,
    cut_after: Option<usize>,
    drip: Duration,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures_util::stream::unfold(Some(0usize), move |index| {
        let frames = frames.clone();
        async move {
            let index = index?;
            if cut_after == Some(index) {
                // Let what was sent reach the client first, as on a real network.
                tokio::time::sleep(Duration::from_millis(30)).await;
                return Some((Err(std::io::Error::other("fake upstream: connection cut")), None));
            }
            let frame = frames.get(index)?.clone();
            if index > 0 && !drip.is_zero() {
                tokio::time::sleep(drip).await;
            }
            Some((Ok(frame), Some(index + 1)))
        }
    })
}

fn count_tokens(model: &str, payload: &Value) -> Response {
    let contents = payload.get("contents").or_else(|| payload.pointer("/generateContentRequest/contents"));
    let Some(contents) = contents else {
        return error_response(
            &bodies::invalid_argument("* CountTokensRequest.contents: contents is not specified\n"),
            Mode::Whole,
        );
    };
    if find_model(model).is_none() {
        return error_response(&bodies::model_not_found(model, "countTokens"), Mode::Whole);
    }
    let total = bodies::count_tokens(contents);
    respond(
        200,
        &json!({"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}),
        Mode::Whole,
    )
}

fn embed(model: &str, action: &str, payload: &Value) -> Response {
    let Some(found) = find_model(model).filter(|m| m.methods.contains(&"embedContent")) else {
        return error_response(&bodies::model_not_found(model, action), Mode::Whole);
    };
    let default_dims = if found.id == "gemini-embedding-001" { 3072 } else { 768 };
    let one = |request: &Value| -> Result<Value, Value> {
        let parts = request.pointer("/content/parts").and_then(Value::as_array).filter(|p| !p.is_empty());
        let Some(parts) = parts else {
            return Err(bodies::invalid_argument("* EmbedContentRequest.content: content is not specified\n"));
        };
        let text: String = parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
        let dims = request.get("outputDimensionality").and_then(Value::as_u64).map_or(default_dims, |d| d as usize);
        if !(1..=3072).contains(&dims) {
            return Err(bodies::invalid_argument("outputDimensionality must be between 1 and 3072."));
        }
        Ok(json!({"values": bodies::embedding(&text, dims)}))
    };
    let result = if action == "embedContent" {
        one(payload).map(|e| json!({"embedding": e}))
    } else {
        match payload.get("requests").and_then(Value::as_array) {
            Some(requests) if !requests.is_empty() => {
                requests.iter().map(one).collect::<Result<Vec<_>, _>>().map(|list| json!({"embeddings": list}))
            }
            _ => Err(bodies::invalid_argument("* BatchEmbedContentsRequest.requests: requests is not specified\n")),
        }
    };
    match result {
        Ok(value) => respond(200, &value, Mode::Whole),
        Err(error) => error_response(&error, Mode::Whole),
    }
}

/// Google's OpenAI-compatible endpoint (`/v1beta/openai/…`): chat
/// completions and models, translated with gemgate's own translator around
/// the fake's Gemini answers. Errors come as Google sends them here: a list
/// wrapping Google's error body.
pub async fn openai_compat(request: &Request, tail: &str, body: &[u8], state: &FakeState) -> Response {
    use crate::translate::{
        embeddings::models_list, request::chat_request, response::chat_completion, stream::ChatStream,
    };
    use futures_util::StreamExt;
    let listed = |error: Value| error_response(&error, Mode::Array);
    let key =
        request.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let Some(key) = key else { return listed(bodies::unregistered_caller()) };
    let Some(behaviour) = state.behaviour_of(key) else { return listed(bodies::key_invalid()) };
    match behaviour {
        Behaviour::Invalid => return listed(bodies::key_invalid()),
        Behaviour::Denied => return listed(bodies::key_suspended(key)),
        _ => {}
    }
    if tail == "models" {
        state.record(key, "");
        let models: Vec<Value> = MODELS.iter().map(bodies::model_json).collect();
        return respond(200, &models_list(&models), Mode::Whole);
    }
    if tail != "chat/completions" {
        return listed(bodies::error(404, "NOT_FOUND", &format!("Method not found: {tail}"), Vec::new()));
    }
    let chat =
        match serde_json::from_slice::<Value>(body).map_err(|_| ()).and_then(|v| chat_request(&v).map_err(|_| ())) {
            Ok(chat) => chat,
            Err(()) => return listed(bodies::invalid_argument("Invalid chat completion request.")),
        };
    state.record(key, &chat.model);
    if let Some(refusal) = key_refusal(behaviour, &chat.model, "generateContent") {
        return listed(refusal);
    }
    let (action, mode) =
        if chat.stream { ("streamGenerateContent", Mode::Sse) } else { ("generateContent", Mode::Whole) };
    let cached = state.cached_tokens(key, &chat.body);
    let gemini = generate(&chat.model, action, &chat.body, behaviour, mode, cached).await;
    if !gemini.status().is_success() {
        let bytes = gemini.into_body().into_bytes().await.unwrap_or_default();
        let error: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        return listed(error);
    }
    if !chat.stream {
        let bytes = gemini.into_body().into_bytes().await.unwrap_or_default();
        let reply: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        return match chat_completion(&reply, &chat.model) {
            Ok(completion) => respond(200, &completion, Mode::Whole),
            Err(err) => listed(bodies::invalid_argument(&err.message)),
        };
    }
    let mut translator = ChatStream::new(&chat.model, chat.include_usage);
    let upstream = gemini.into_body().into_bytes_stream();
    let frames = upstream.map(Some).chain(futures_util::stream::once(async { None })).map(move |item| match item {
        Some(Ok(bytes)) => Ok(Bytes::from(translator.push(&bytes).concat())),
        Some(Err(err)) => Err(err),
        None => Ok(Bytes::from(translator.finish().concat())),
    });
    Response::builder().status(StatusCode::OK).content_type("text/event-stream").body(Body::from_bytes_stream(frames))
}
