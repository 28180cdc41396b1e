//! The OpenAI-compatible API: `/v1/chat/completions`, `/v1/models`,
//! `/v1/embeddings` (also under `/openai/v1`), served through the same pool
//! by translating to and from Gemini.

use super::AppState;
use super::intake::{Admitted, ClientError, Dialect, Pass, check_model, parse_json, resolve_model};
use super::translated::{gemini_request, json_response, parse_reply, relay_stream};
use crate::catalog::{Catalog, Variant};
use crate::dispatch::{ProxyRequest, StreamMode};
use crate::translate::embeddings::{embeddings_request, embeddings_response, model_object, models_list};
use crate::translate::model_id;
use crate::translate::request::chat_request;
use crate::translate::response::chat_completion;
use crate::translate::stream::{ChatStream, error_frame};
use crate::upstream::UpstreamRequest;
use bytes::Bytes;
use poem::http::{Method, StatusCode};
use poem::{Body, Request, Response};

pub mod errors;
pub mod media;
pub mod responses;
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
    /// `POST responses`
    Responses,
    /// `GET responses/{id}`
    GetResponse(String),
    /// `DELETE responses/{id}`
    DeleteResponse(String),
    /// `POST images/generations`
    Images,
    /// `POST audio/speech`
    Speech,
}

/// Parses the path after `/v1/` as an OpenAI endpoint.
pub fn parse_openai_path(method: &Method, tail: &str) -> Option<OpenAiCall> {
    match (method, tail.trim_end_matches('/')) {
        (&Method::POST, "chat/completions") => Some(OpenAiCall::ChatCompletions),
        (&Method::POST, "embeddings") => Some(OpenAiCall::Embeddings),
        (&Method::GET, "models") => Some(OpenAiCall::ListModels),
        (&Method::POST, "responses") => Some(OpenAiCall::Responses),
        (&Method::POST, "images/generations") => Some(OpenAiCall::Images),
        (&Method::POST, "audio/speech") => Some(OpenAiCall::Speech),
        (method @ (&Method::GET | &Method::DELETE), path) if path.starts_with("responses/") => {
            let id = path.strip_prefix("responses/").filter(|id| responses::is_response_id(id))?.to_string();
            Some(if method == Method::GET { OpenAiCall::GetResponse(id) } else { OpenAiCall::DeleteResponse(id) })
        }
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

/// OpenAI's dialect, translated to and from Gemini.
pub struct OpenAi;

impl Dialect for OpenAi {
    type Call = OpenAiCall;

    fn route(&self, request: &Request) -> Result<OpenAiCall, ClientError> {
        let path = request.uri().path();
        let tail = path.strip_prefix("/openai/v1/").or_else(|| path.strip_prefix("/v1/")).unwrap_or_default();
        parse_openai_path(request.method(), tail).ok_or_else(|| ClientError::Route {
            status: 404,
            message: format!("no such endpoint: {} {path}", request.method()),
        })
    }

    async fn serve(
        &self,
        call: &OpenAiCall,
        admitted: Admitted,
        _request: &Request,
        state: &Arc<AppState>,
    ) -> Result<Response, ClientError> {
        match call {
            OpenAiCall::ChatCompletions => chat(parse_json(&admitted.body)?, &admitted, state).await,
            OpenAiCall::Embeddings => embeddings(parse_json(&admitted.body)?, &admitted, state).await,
            OpenAiCall::Images => media::images(parse_json(&admitted.body)?, &admitted, state).await,
            OpenAiCall::Speech => media::speech(parse_json(&admitted.body)?, &admitted, state).await,
            OpenAiCall::Responses => responses::create(parse_json(&admitted.body)?, &admitted, state).await,
            OpenAiCall::GetResponse(id) => responses::get(id, &admitted, state).await,
            OpenAiCall::DeleteResponse(id) => responses::delete(id, &admitted, state).await,
            OpenAiCall::ListModels => Ok(json_response(&models_list(&served_models(&admitted, state).await?))),
            OpenAiCall::GetModel(id) => {
                let list = served_models(&admitted, state).await?;
                let found = list.iter().filter_map(model_object).find(|m| m["id"] == id.as_str());
                found.map(|model| json_response(&model)).ok_or_else(|| ClientError::UnknownModel(id.clone()))
            }
        }
    }

    fn render(&self, _call: Option<&OpenAiCall>, error: ClientError) -> Response {
        errors::render(error)
    }
}

/// The model the client asked for, resolved in the catalog: the body then
/// names the Gemini model; returns the name asked for and the variant.
fn resolve_in_body(json: &mut Value, catalog: &Catalog) -> Result<(String, Option<Variant>), ClientError> {
    let asked = json.get("model").and_then(Value::as_str).map(model_id).unwrap_or_default().to_string();
    if asked.is_empty() {
        return Ok((asked, None)); // the translation names the missing parameter
    }
    let resolved = resolve_model(catalog, &asked)?;
    json["model"] = Value::String(resolved.model);
    Ok((asked, resolved.variant))
}

async fn chat(mut json: Value, admitted: &Admitted, state: &Arc<AppState>) -> Result<Response, ClientError> {
    // One view of the rules for the whole request, even across a reload.
    let rules = state.rules.load_full();
    let (asked, variant) = resolve_in_body(&mut json, &rules.catalog)?;
    let mut chat = chat_request(&json)?;
    check_model(&chat.model)?;
    let mut pass = admitted.pass(&asked, &chat.model).await?;
    // The conversation: named by the client (a header, or OpenAI's
    // `prompt_cache_key`), else its start before any shaping.
    let cache_key = json.get("prompt_cache_key").and_then(Value::as_str);
    pass.session = pass
        .session
        .or_else(|| cache_key.map(super::session::from_name))
        .or_else(|| super::session::of_gemini_value(&chat.body));
    if rules.reshapes(&pass.client, variant) {
        rules.shape(&pass.client, &chat.model, variant, &mut chat.body);
    }
    // Replies name the model as the client asked for it.
    let shown = if asked.is_empty() { chat.model.clone() } else { asked };
    if chat.stream && rules.openai.fake_stream {
        return Ok(fake_stream(chat, &shown, pass, state));
    }
    let (action, mode) =
        if chat.stream { ("streamGenerateContent", StreamMode::Sse) } else { ("generateContent", StreamMode::Whole) };
    let request = gemini_request(&chat.model, action, &chat.body, mode, "chat.completions", pass);
    let reply = state.dispatcher.dispatch(request).await?;
    if !chat.stream {
        let value = parse_reply(&super::collect_reply(reply.body).await?)?;
        return Ok(json_response(&chat_completion(&value, &shown)?));
    }
    Ok(relay_stream(reply.body, ChatStream::new(&shown, chat.include_usage), keepalive_after(&rules)))
}

/// How long a translated stream may stay silent before a keep-alive
/// (`[openai] keepalive_secs`, also the agent dialects').
pub fn keepalive_after(rules: &super::ServingRules) -> Duration {
    Duration::from_secs(rules.openai.keepalive_secs.max(1))
}

impl super::translated::StreamTranslator for ChatStream {
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        ChatStream::push(self, bytes)
    }

    fn finish(&mut self) -> Vec<String> {
        ChatStream::finish(self)
    }

    fn cut(&mut self, why: &str) -> Vec<String> {
        vec![error_frame(why, 502)]
    }
}

/// A `stream: true` chat answered from one non-streamed upstream call: the
/// head goes out at once, an SSE comment every `openai.keepalive_secs` keeps
/// the client's connection busy, and the reply follows as chunks when it
/// arrives (or an error event).
fn fake_stream(
    chat: crate::translate::request::ChatRequest,
    shown: &str,
    pass: Pass,
    state: &Arc<AppState>,
) -> Response {
    let every = Duration::from_secs(state.rules.load().openai.keepalive_secs.max(1));
    let request =
        gemini_request(&chat.model, "generateContent", &chat.body, StreamMode::Whole, "chat.completions", pass);
    let state = state.clone();
    let reply = Box::pin(async move {
        let reply = state.dispatcher.dispatch(request).await.map_err(|err| {
            let (status, message, _) = errors::dispatch_error_parts(&err);
            error_frame(&message, status)
        })?;
        super::collect_reply(reply.body).await.map_err(|_| error_frame("the upstream reply was cut", 502))
    });
    let ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let translator = ChatStream::new(shown, chat.include_usage);
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

async fn embeddings(mut json: Value, admitted: &Admitted, state: &Arc<AppState>) -> Result<Response, ClientError> {
    let (asked, _) = resolve_in_body(&mut json, &state.rules.load().catalog)?;
    let request = embeddings_request(&json)?;
    check_model(&request.model)?;
    let pass = admitted.pass(&asked, &request.model).await?;
    let proxied =
        gemini_request(&request.model, "batchEmbedContents", &request.body, StreamMode::Whole, "embeddings", pass);
    let reply = state.dispatcher.dispatch(proxied).await?;
    let value = parse_reply(&super::collect_reply(reply.body).await?)?;
    Ok(json_response(&embeddings_response(&value, &request)))
}

/// Google's models as this gemgate serves them: filtered, with variants and
/// aliases (the cached list itself when the catalog changes nothing).
async fn served_models(admitted: &Admitted, state: &Arc<AppState>) -> Result<Arc<Vec<Value>>, ClientError> {
    let list = models(admitted.pass("", "").await?.client, state).await?;
    let rules = state.rules.load_full();
    if rules.catalog.is_plain() {
        return Ok(list);
    }
    let mut page = serde_json::json!({ "models": *list });
    rules.catalog.rewrite_google_page(&mut page);
    Ok(Arc::new(match page["models"].take() {
        Value::Array(models) => models,
        _ => Vec::new(),
    }))
}

/// Google's models (every page), from the cache when fresh.
async fn models(client: Arc<str>, state: &Arc<AppState>) -> Result<Arc<Vec<Value>>, ClientError> {
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
            charge: Default::default(),
            session: None,
            request_id: None,
        };
        let reply = state.dispatcher.dispatch(request).await?;
        let page = parse_reply(&super::collect_reply(reply.body).await?)?;
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
