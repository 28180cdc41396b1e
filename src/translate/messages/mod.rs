//! Anthropic Messages ⇄ Gemini (`docs/agent-dialects.md` §3): pure
//! functions over JSON values, like the OpenAI translators beside them.
//!
//! - [`request`]: a Messages request (or a `count_tokens` body) → a
//!   `generateContent` (or `countTokens`) body.
//! - [`response`]: a `generateContent` reply → a `message`.
//! - [`stream`]: Gemini's SSE reply → Anthropic's event sequence.
//!
//! Gemini's thought signatures and call ids travel in what Claude clients
//! replay untouched (`super::carriers`): a signature as the `signature` of a
//! `thinking` block just before the block whose part carried it, a call id
//! inside the `tool_use` id. gemgate keeps no state for them.

pub mod request;
pub mod response;
pub mod stream;

pub use super::carriers::{carried, carrier, gemini_call_id};

/// A `tool_use` id for a Gemini call (with or without Google's id).
pub fn tool_use_id(gemini_id: Option<&str>) -> String {
    super::carriers::call_id("toolu", gemini_id)
}
