//! OpenAI Responses ⇄ Gemini (`docs/agent-dialects.md` §2, §3), for Codex
//! CLI and `client.responses`: pure functions over JSON values.
//!
//! - [`request`]: a Responses request (after its stored history) → a
//!   `generateContent` body.
//! - [`stream`]: Gemini's reply → the Responses events and the response
//!   object (a whole reply takes the same path).
//!
//! Thought signatures ride in reasoning items' `encrypted_content`, Google's
//! call ids in `call_id` (`super::carriers`).

pub mod request;
pub mod stream;
