//! Anthropic Messages ⇄ Gemini (`docs/agent-dialects.md` §3): pure
//! functions over JSON values, like the OpenAI translators beside them.
//!
//! - [`request`]: a Messages request (or a `count_tokens` body) → a
//!   `generateContent` (or `countTokens`) body.
//! - [`response`]: a `generateContent` reply → a `message`.
//! - [`stream`]: Gemini's SSE reply → Anthropic's event sequence.
//!
//! Gemini's thought signatures and call ids travel in what Claude clients
//! replay untouched: a signature as the `signature` of a `thinking` block
//! (`gg1.` + base64url) just before the block whose part carried it, a call
//! id inside the `tool_use` id. gemgate keeps no state for them.

pub mod request;
pub mod response;
pub mod stream;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;

/// Marks a thinking block's signature as ours.
const CARRIER: &str = "gg1.";
/// A `tool_use` id holding Gemini's call id as is.
const GEMINI_ID: &str = "toolu_g_";
/// A `tool_use` id holding Gemini's call id in base64url.
const ENCODED_ID: &str = "toolu_b_";

/// A thought signature as a thinking block's `signature`.
pub fn carrier(signature: &str) -> String {
    format!("{CARRIER}{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The thought signature a thinking block's `signature` carries, if it is
/// ours (a foreign one, say Anthropic's, means nothing to Gemini).
pub fn carried(signature: &str) -> Option<String> {
    let encoded = signature.strip_prefix(CARRIER)?;
    String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok().filter(|s| !s.is_empty())
}

/// A `tool_use` id for a Gemini call (with or without Google's id).
pub fn tool_use_id(gemini_id: Option<&str>) -> String {
    match gemini_id.filter(|id| !id.is_empty()) {
        Some(id) if id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') => {
            format!("{GEMINI_ID}{id}")
        }
        Some(id) => format!("{ENCODED_ID}{}", URL_SAFE_NO_PAD.encode(id)),
        None => {
            let suffix: String = rand::rng().sample_iter(&rand::distr::Alphanumeric).take(24).map(char::from).collect();
            format!("toolu_s_{suffix}")
        }
    }
}

/// Google's call id inside a `tool_use` id, if it holds one (other ids, and
/// calls Google gave no id, go back without one: Gemini pairs them in order).
pub fn gemini_call_id(tool_use_id: &str) -> Option<String> {
    if let Some(id) = tool_use_id.strip_prefix(GEMINI_ID) {
        return (!id.is_empty()).then(|| id.to_string());
    }
    let encoded = tool_use_id.strip_prefix(ENCODED_ID)?;
    String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_call_ids_survive_the_round_trip() {
        let signature = "Ck0BVKhc+/sig==";
        assert_eq!(carried(&carrier(signature)).as_deref(), Some(signature));
        assert_eq!(carried("EqQBanthropic"), None, "a foreign signature carries nothing");
        assert_eq!(carried("gg1.!!"), None);
        assert_eq!(gemini_call_id(&tool_use_id(Some("abc-1_X"))).as_deref(), Some("abc-1_X"));
        assert_eq!(tool_use_id(Some("abc")), "toolu_g_abc");
        assert_eq!(gemini_call_id(&tool_use_id(Some("a/b c"))).as_deref(), Some("a/b c"));
        let made = tool_use_id(None);
        assert!(made.starts_with("toolu_s_") && made.len() == 32);
        assert_eq!(gemini_call_id(&made), None);
        assert_eq!(gemini_call_id("toolu_01A"), None, "a foreign id holds none");
    }
}
