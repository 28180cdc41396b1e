//! What agents replay untouched, carrying what Gemini needs back: a thought
//! signature as an opaque string (`gg1.` + base64url: a thinking block's
//! `signature`, a reasoning item's `encrypted_content`), and Google's call id
//! inside the dialect's call id (`<prefix>_g_<id>`, `<prefix>_b_<base64url>`,
//! or `<prefix>_s_<random>` when Google gave none). gemgate keeps no state.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use serde_json::{Value, json};

/// Marks a thinking block's signature as ours.
const CARRIER: &str = "gg1.";

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

/// A dialect's call id (`toolu`, `call`…) for a Gemini call, with or
/// without Google's id.
pub fn call_id(prefix: &str, gemini_id: Option<&str>) -> String {
    match gemini_id.filter(|id| !id.is_empty()) {
        Some(id) if id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') => {
            format!("{prefix}_g_{id}")
        }
        Some(id) => format!("{prefix}_b_{}", URL_SAFE_NO_PAD.encode(id)),
        None => {
            let suffix: String = rand::rng().sample_iter(&rand::distr::Alphanumeric).take(24).map(char::from).collect();
            format!("{prefix}_s_{suffix}")
        }
    }
}

/// Google's call id inside a dialect's call id, if it holds one (other ids,
/// and calls Google gave no id, go back without one: Gemini pairs them in order).
pub fn gemini_call_id(call_id: &str) -> Option<String> {
    let (_, rest) = call_id.split_once('_')?;
    if let Some(id) = rest.strip_prefix("g_") {
        return (!id.is_empty()).then(|| id.to_string());
    }
    let encoded = rest.strip_prefix("b_")?;
    String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()
}

/// What a Gemini reply's parts say, in the shape both agent dialects build on.
#[derive(Debug, PartialEq)]
pub enum Block {
    /// Thought text and, when Gemini gave one, the carrier of its signature.
    Thinking(String, String),
    /// Answer text.
    Text(String),
    /// A call: id, name, input.
    ToolUse(String, String, Value),
}

impl Block {
    /// As Anthropic shows it.
    pub fn to_json(&self) -> Value {
        match self {
            Block::Thinking(thinking, signature) => {
                json!({"type": "thinking", "thinking": thinking, "signature": signature})
            }
            Block::Text(text) => json!({"type": "text", "text": text}),
            Block::ToolUse(id, name, input) => json!({"type": "tool_use", "id": id, "name": name, "input": input}),
        }
    }
}

/// A candidate's parts as blocks, in order (calls named `<call_prefix>_…`): thoughts → thinking, adjacent
/// texts joined, calls → tool_use; a signature on a text or call part goes
/// into a thinking block just before it (the open one, when it has none).
pub fn blocks(parts: Option<&Value>, call_prefix: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    for part in parts.and_then(Value::as_array).into_iter().flatten() {
        let signature = part.get("thoughtSignature").and_then(Value::as_str).filter(|s| !s.is_empty()).map(carrier);
        let thought = part.get("thought").and_then(Value::as_bool) == Some(true);
        let text = part.get("text").and_then(Value::as_str);
        if thought {
            let text = text.unwrap_or_default();
            match blocks.last_mut() {
                Some(Block::Thinking(thinking, carried)) if carried.is_empty() => {
                    thinking.push_str(text);
                    *carried = signature.unwrap_or_default();
                }
                _ => blocks.push(Block::Thinking(text.to_string(), signature.unwrap_or_default())),
            }
            continue;
        }
        if let Some(signature) = signature {
            match blocks.last_mut() {
                Some(Block::Thinking(_, carried)) if carried.is_empty() => *carried = signature,
                _ => blocks.push(Block::Thinking(String::new(), signature)),
            }
        }
        if let Some(call) = part.get("functionCall") {
            let name = call.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
            let input = call.get("args").filter(|a| a.is_object()).cloned().unwrap_or_else(|| json!({}));
            blocks.push(Block::ToolUse(call_id(call_prefix, call.get("id").and_then(Value::as_str)), name, input));
        } else if let Some(text) = text.filter(|t| !t.is_empty()) {
            match blocks.last_mut() {
                Some(Block::Text(joined)) => joined.push_str(text),
                _ => blocks.push(Block::Text(text.to_string())),
            }
        }
    }
    blocks
}

/// Keeps only a reply's first call (`sent`: calls already sent in this
/// reply), for a client that asked for one call at a time: Gemini has no such switch.
pub fn first_call_only(blocks: Vec<Block>, sent: &mut usize) -> Vec<Block> {
    blocks
        .into_iter()
        .filter(|block| {
            if !matches!(block, Block::ToolUse(..)) {
                return true;
            }
            *sent += 1;
            *sent == 1
        })
        .collect()
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
        assert_eq!(gemini_call_id(&call_id("toolu", Some("abc-1_X"))).as_deref(), Some("abc-1_X"));
        assert_eq!(call_id("toolu", Some("abc")), "toolu_g_abc");
        assert_eq!(gemini_call_id(&call_id("call", Some("a/b c"))).as_deref(), Some("a/b c"));
        let made = call_id("toolu", None);
        assert!(made.starts_with("toolu_s_") && made.len() == 32);
        assert_eq!(gemini_call_id(&made), None);
        assert_eq!(gemini_call_id("toolu_01A"), None, "a foreign id holds none");
        assert_eq!(gemini_call_id("call_abc"), None);
    }
}
