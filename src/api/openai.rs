//! The OpenAI-compatible API: `/v1/chat/completions`, `/v1/models`,
//! `/v1/embeddings` (also under `/openai/v1`), served through the same pool
//! by translating to and from Gemini.

// Helpers here fail with the finished error response itself; it is built once,
// on the error path, so its size does not matter.
#![allow(clippy::result_large_err)]

use super::AppState;
use super::openai_errors::{dispatch_error, openai_error, translate_error};
use crate::dispatch::{ProxyRequest, ReplyBody, StreamMode};
use crate::translate::embeddings::{embeddings_request, embeddings_response, model_object, models_list};
use crate::translate::request::chat_request;
use crate::translate::response::chat_completion;
use crate::translate::stream::{ChatStream, error_frame};
use crate::upstream::UpstreamRequest;
use bytes::Bytes;
use futures_util::StreamExt;
use poem::http::{Method, StatusCode};
use poem::{Body, Request, Response};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which OpenAI endpoint a path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenAiCall {
    /// `POST chat/completions`
    ChatCompletions,
    /// `POST embeddings`
    Embeddings,
    /// `GET models`
    ListModels,
    /// `GET models/{id}`
    GetModel(String),
}

/// Parses the path after `/v1/` as an OpenAI endpoint.
pub fn parse_openai_path(method: &Method, tail: &str) -> Option<OpenAiCall> {
    match (method, tail.trim_end_matches('/')) {
        (&Method::POST, "chat/completions") => Some(OpenAiCall::ChatCompletions),
        (&Method::POST, "embeddings") => Some(OpenAiCall::Embeddings),
        (&Method::GET, "models") => Some(OpenAiCall::ListModels),
        (&Method::GET, path) => {
            let id = path.strip_prefix("models/")?;
            (!id.contains(':') && !id.is_empty()).then(|| OpenAiCall::GetModel(id.to_string()))
        }
        _ => None,
    }
}

/// Google's model list, cached: `/v1/models` is called often by chat front-ends.
#[derive(Default)]
pub struct ModelsCache {
    cached: Mutex<Option<(Instant, Arc<Vec<Value>>)>>,
}

/// How long the model list is reused.
const MODELS_TTL: Duration = Duration::from_secs(600);

/// Serves one OpenAI call.
pub async fn serve(call: OpenAiCall, request: &Request, body: Body, state: &Arc<AppState>) -> Response {
    let client = match state.authenticate(request) {
        Ok(client) => client.0,
        Err(err) => return super::openai_errors::auth_error(err),
    };
    match call {
        OpenAiCall::ChatCompletions | OpenAiCall::Embeddings => {
            let bytes = match super::body::read_body(body, state.max_body_bytes).await {
                Ok(bytes) => bytes,
                Err(err) => return super::openai_errors::body_error(&err),
            };
            let Ok(json) = serde_json::from_slice::<Value>(&bytes) else {
                let message = "We could not parse the JSON body of your request. It must be valid JSON.";
                return openai_error(400, message, None, Some("invalid_json"));
            };
            if call == OpenAiCall::ChatCompletions {
                chat(json, client, state).await
            } else {
                embeddings(json, client, state).await
            }
        }
        OpenAiCall::ListModels => match models(client, state).await {
            Ok(list) => json_response(&models_list(&list)),
            Err(response) => response,
        },
        OpenAiCall::GetModel(id) => match models(client, state).await {
            Ok(list) => match list.iter().filter_map(model_object).find(|m| m["id"] == id.as_str()) {
                Some(model) => json_response(&model),
                None => openai_error(
                    404,
                    &format!("The model `{id}` does not exist"),
                    Some("model"),
                    Some("model_not_found"),
                ),
            },
            Err(response) => response,
        },
    }
}

fn json_response(value: &Value) -> Response {
    Response::builder().content_type("application/json").body(value.to_string())
}

fn proxy_request(
    model: &str,
    action: &str,
    body: &Value,
    mode: StreamMode,
    route: &'static str,
    client: Arc<str>,
) -> ProxyRequest {
    let query = if mode == StreamMode::Sse { "?alt=sse" } else { "" };
    ProxyRequest {
        upstream: UpstreamRequest {
            method: Method::POST,
            path_and_query: format!("/v1beta/models/{model}:{action}{query}"),
            body: Bytes::from(body.to_string()),
            content_type: Some(poem::http::HeaderValue::from_static("application/json")),
            bearer: false,
        },
        model: Arc::from(model),
        mode,
        route,
        client,
    }
}

/// Reads a whole reply; a cut reply is an error.
async fn collect(body: ReplyBody) -> Result<Bytes, Response> {
    match body {
        ReplyBody::Complete(bytes) => Ok(bytes),
        ReplyBody::Streaming(mut stream) => {
            let mut buffer = Vec::new();
            while let Some(item) = stream.next().await {
                match item {
                    Ok(chunk) => buffer.extend_from_slice(&chunk),
                    Err(cut) => {
                        return Err(openai_error(
                            502,
                            &format!("the upstream reply was cut: {}", cut.message),
                            None,
                            None,
                        ));
                    }
                }
            }
            Ok(Bytes::from(buffer))
        }
    }
}

fn parse_reply(bytes: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice(bytes).map_err(|_| openai_error(502, "the upstream reply was not JSON", None, None))
}

async fn chat(json: Value, client: Arc<str>, state: &Arc<AppState>) -> Response {
    let chat = match chat_request(&json) {
        Ok(chat) => chat,
        Err(err) => return translate_error(&err),
    };
    if !super::paths::is_valid_model_name(&chat.model) {
        return openai_error(400, &format!("`{}` is not a valid model name", chat.model), Some("model"), None);
    }
    if chat.stream && state.openai.load().fake_stream {
        return fake_stream(chat, client, state);
    }
    let (action, mode) =
        if chat.stream { ("streamGenerateContent", StreamMode::Sse) } else { ("generateContent", StreamMode::Whole) };
    let request = proxy_request(&chat.model, action, &chat.body, mode, "chat.completions", client);
    let reply = match state.dispatcher.dispatch(request).await {
        Ok(reply) => reply,
        Err(err) => return dispatch_error(&err),
    };
    if !chat.stream {
        let bytes = match collect(reply.body).await {
            Ok(bytes) => bytes,
            Err(response) => return response,
        };
        let value = match parse_reply(&bytes) {
            Ok(value) => value,
            Err(response) => return response,
        };
        return match chat_completion(&value, &chat.model) {
            Ok(completion) => json_response(&completion),
            Err(err) => translate_error(&err),
        };
    }
    let translator = ChatStream::new(&chat.model, chat.include_usage);
    let frames =
        futures_util::stream::unfold((reply.body, translator, false), |(mut body, mut translator, done)| async move {
            if done {
                return None;
            }
            let next = match &mut body {
                ReplyBody::Complete(bytes) => {
                    let bytes = std::mem::take(bytes);
                    if bytes.is_empty() { None } else { Some(Ok(bytes)) }
                }
                ReplyBody::Streaming(stream) => stream.next().await,
            };
            let (frames, done) = match next {
                Some(Ok(bytes)) => (translator.push(&bytes), false),
                None => (translator.finish(), true),
                Some(Err(cut)) => {
                    (vec![error_frame(&format!("the upstream reply was cut: {}", cut.message), 502)], true)
                }
            };
            Some((Ok::<_, std::io::Error>(Bytes::from(frames.concat())), (body, translator, done)))
        })
        .filter(|item| futures_util::future::ready(!matches!(item, Ok(bytes) if bytes.is_empty())));
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_bytes_stream(frames))
}

/// A `stream: true` chat answered from one non-streamed upstream call: the
/// head goes out at once, an SSE comment every `openai.keepalive_secs` keeps
/// the client's connection busy, and the reply follows as chunks when it
/// arrives (or an error event).
fn fake_stream(chat: crate::translate::request::ChatRequest, client: Arc<str>, state: &Arc<AppState>) -> Response {
    let every = Duration::from_secs(state.openai.load().keepalive_secs.max(1));
    let request =
        proxy_request(&chat.model, "generateContent", &chat.body, StreamMode::Whole, "chat.completions", client);
    let state = state.clone();
    let reply = Box::pin(async move {
        let reply = state.dispatcher.dispatch(request).await.map_err(|err| {
            let (status, message, _) = super::openai_errors::dispatch_error_parts(&err);
            error_frame(&message, status)
        })?;
        collect(reply.body).await.map_err(|_| error_frame("the upstream reply was cut", 502))
    });
    let ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let translator = ChatStream::new(&chat.model, chat.include_usage);
    let frames = futures_util::stream::unfold(Some((reply, ticks, translator)), |waiting| async move {
        let (mut reply, mut ticks, mut translator) = waiting?;
        tokio::select! {
            result = &mut reply => {
                let frames = match result {
                    Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                        // The whole reply as the one event of a Gemini stream (one line).
                        Ok(reply) => {
                            let mut frames = translator.push(format!("data: {reply}\r\n\r\n").as_bytes());
                            frames.extend(translator.finish());
                            frames.concat()
                        }
                        Err(_) => error_frame("the upstream reply was not JSON", 502),
                    },
                    Err(error) => error,
                };
                Some((Ok::<_, std::io::Error>(Bytes::from(frames)), None))
            }
            _ = ticks.tick() => Some((Ok(Bytes::from_static(b": keep-alive\n\n")), Some((reply, ticks, translator)))),
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_bytes_stream(frames))
}

async fn embeddings(json: Value, client: Arc<str>, state: &Arc<AppState>) -> Response {
    let request = match embeddings_request(&json) {
        Ok(request) => request,
        Err(err) => return translate_error(&err),
    };
    if !super::paths::is_valid_model_name(&request.model) {
        return openai_error(400, &format!("`{}` is not a valid model name", request.model), Some("model"), None);
    }
    let proxied =
        proxy_request(&request.model, "batchEmbedContents", &request.body, StreamMode::Whole, "embeddings", client);
    let reply = match state.dispatcher.dispatch(proxied).await {
        Ok(reply) => reply,
        Err(err) => return dispatch_error(&err),
    };
    match collect(reply.body).await.and_then(|bytes| parse_reply(&bytes)) {
        Ok(value) => json_response(&embeddings_response(&value, &request)),
        Err(response) => response,
    }
}

/// Google's models (every page), from the cache when fresh.
async fn models(client: Arc<str>, state: &Arc<AppState>) -> Result<Arc<Vec<Value>>, Response> {
    if let Some((at, list)) = state.models.cached.lock().unwrap_or_else(|e| e.into_inner()).clone()
        && at.elapsed() < MODELS_TTL
    {
        return Ok(list);
    }
    let mut all = Vec::new();
    let mut page_token = String::new();
    for _ in 0..20 {
        let query = if page_token.is_empty() {
            "pageSize=1000".to_string()
        } else {
            format!("pageSize=1000&pageToken={page_token}")
        };
        let request = ProxyRequest {
            upstream: UpstreamRequest {
                method: Method::GET,
                path_and_query: format!("/v1beta/models?{query}"),
                body: Bytes::new(),
                content_type: None,
                bearer: false,
            },
            model: Arc::from(""),
            mode: StreamMode::Whole,
            route: "models",
            client: client.clone(),
        };
        let reply = state.dispatcher.dispatch(request).await.map_err(|err| dispatch_error(&err))?;
        let page = parse_reply(&collect(reply.body).await?)?;
        all.extend(page.get("models").and_then(Value::as_array).cloned().unwrap_or_default());
        match page.get("nextPageToken").and_then(Value::as_str) {
            Some(token)
                if !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
            {
                page_token = token.to_string();
            }
            _ => break,
        }
    }
    let list = Arc::new(all);
    *state.models.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), list.clone()));
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_paths() {
        assert_eq!(parse_openai_path(&Method::POST, "chat/completions"), Some(OpenAiCall::ChatCompletions));
        assert_eq!(parse_openai_path(&Method::POST, "embeddings"), Some(OpenAiCall::Embeddings));
        assert_eq!(parse_openai_path(&Method::GET, "models"), Some(OpenAiCall::ListModels));
        assert_eq!(
            parse_openai_path(&Method::GET, "models/gemini-2.5-pro"),
            Some(OpenAiCall::GetModel("gemini-2.5-pro".into()))
        );
        assert_eq!(parse_openai_path(&Method::POST, "models/x:generateContent"), None);
        assert_eq!(parse_openai_path(&Method::GET, "chat/completions"), None);
    }
}
