//! OpenAI and Anthropic ⇄ Gemini translation: pure functions over JSON
//! values, no I/O, so every mapping is unit-tested field by field and fuzzed.
//!
//! - [`request`]: a chat completion request → a `generateContent` body.
//! - [`response`]: a `generateContent` reply → a `chat.completion`.
//! - [`stream`]: streamed replies → `chat.completion.chunk` events.
//! - [`schema`]: JSON Schema cleaned of what Gemini rejects.
//! - [`tool_ids`]: tool call ids that carry Gemini's thought signatures.
//! - [`embeddings`]: `/v1/embeddings` ⇄ `batchEmbedContents`, and the models list.
//! - [`messages`]: Anthropic Messages ⇄ Gemini, requests, replies and streams.
//! - [`responses`]: OpenAI Responses ⇄ Gemini, requests, replies and streams.
//! - [`carriers`]: thought signatures and call ids inside what agents replay.
//! - [`media`]: OpenAI's images and speech endpoints on Gemini image and TTS models.

pub mod carriers;
pub mod embeddings;
pub mod media;
pub mod messages;
pub mod request;
pub mod response;
pub mod responses;
pub mod schema;
pub mod stream;
pub mod tool_ids;

use std::fmt;

/// A request gemgate cannot translate, said the way OpenAI says it: a
/// message, the parameter at fault, and a code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranslateError {
    /// What is wrong, for a person.
    pub message: String,
    /// The parameter at fault (`messages[2].content`), if one.
    pub param: Option<String>,
    /// A machine-readable code, if one.
    pub code: Option<&'static str>,
}

impl TranslateError {
    /// An invalid value of `param`.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self { message: message.into(), param: Some(param.into()), code: None }
    }

    /// Sets the code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TranslateError {}

/// A model id as clients send it, without Google's `models/` prefix.
pub fn model_id(model: &str) -> &str {
    model.strip_prefix("models/").unwrap_or(model)
}
