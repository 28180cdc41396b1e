//! What the translated dialects (OpenAI, Anthropic) share: the Gemini call
//! they make, the JSON reply they read, and the relay of a streamed reply
//! through their translator.

use super::intake::{ClientError, Pass};
use crate::dispatch::{ProxyRequest, ReplyBody, StreamMode};
use crate::upstream::UpstreamRequest;
use bytes::Bytes;
use futures_util::StreamExt;
use poem::http::{Method, StatusCode};
use poem::{Body, Response};
use serde_json::Value;
use std::sync::Arc;

/// A Gemini `action` on `model` with a JSON `body` (`?alt=sse` when streamed).
pub fn gemini_request(
    model: &str,
    action: &str,
    body: &Value,
    mode: StreamMode,
    route: &'static str,
    pass: Pass,
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
        client: pass.client,
        charge: pass.charge,
        session: pass.session,
        request_id: pass.request_id,
    }
}

/// Google's whole reply as JSON.
pub fn parse_reply(bytes: &[u8]) -> Result<Value, ClientError> {
    serde_json::from_slice(bytes).map_err(|_| ClientError::BadReply("the upstream reply was not JSON".into()))
}

/// A JSON response.
pub fn json_response(value: &Value) -> Response {
    Response::builder().content_type("application/json").body(value.to_string())
}

/// A dialect's translator of Google's SSE reply into its own events.
pub trait StreamTranslator: Send + 'static {
    /// Events the bytes complete.
    fn push(&mut self, bytes: &[u8]) -> Vec<String>;
    /// The closing events, once Google's reply ended.
    fn finish(&mut self) -> Vec<String>;
    /// The closing events when Google's reply was cut (`why`).
    fn cut(&mut self, why: &str) -> Vec<String>;
    /// What keeps the client's connection busy while Google is silent (an
    /// event the dialect defines, or an SSE comment); `None`: nothing.
    fn keepalive(&self) -> Option<&'static str> {
        None
    }
}

/// Relays a streamed reply through `translator` as `text/event-stream`;
/// after `quiet` without a word from Google, the translator's keep-alive
/// (agents give up on streams that stay silent while a model thinks).
pub fn relay_stream(body: ReplyBody, translator: impl StreamTranslator, quiet: std::time::Duration) -> Response {
    let frames =
        futures_util::stream::unfold((body, translator, false), move |(mut body, mut translator, done)| async move {
            if done {
                return None;
            }
            let next = match &mut body {
                ReplyBody::Complete(bytes) => {
                    let bytes = std::mem::take(bytes);
                    if bytes.is_empty() { None } else { Some(Ok(bytes)) }
                }
                ReplyBody::Streaming(stream) => match translator.keepalive() {
                    None => stream.next().await,
                    Some(keepalive) => match tokio::time::timeout(quiet, stream.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            return Some((Ok(Bytes::from_static(keepalive.as_bytes())), (body, translator, false)));
                        }
                    },
                },
            };
            let (frames, done) = match next {
                Some(Ok(bytes)) => (translator.push(&bytes), false),
                None => (translator.finish(), true),
                Some(Err(cut)) => (translator.cut(&format!("the upstream reply was cut: {}", cut.message)), true),
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
