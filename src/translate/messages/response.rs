//! A Gemini `generateContent` reply → an Anthropic `message`.

use crate::translate::carriers::{Block, blocks, first_call_only};
use serde_json::{Value, json};

/// `msg_` + Google's response id (or a random one).
pub fn message_id(reply: &Value) -> String {
    match reply.get("responseId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') => {
            format!("msg_{id}")
        }
        _ => format!("msg_{:024x}", rand::random::<u128>() >> 32),
    }
}

/// Gemini's finishReason → Anthropic's `stop_reason` (§3.8).
pub fn stop_reason(reason: Option<&str>, called_tools: bool) -> &'static str {
    match reason {
        _ if called_tools => "tool_use",
        Some("MAX_TOKENS") => "max_tokens",
        Some("SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII") => "refusal",
        Some(other) if other.starts_with("IMAGE_") => "refusal",
        _ => "end_turn",
    }
}

/// Anthropic `usage` from Gemini's `usageMetadata` (§3.9): input excludes
/// cached tokens, output includes thoughts.
pub fn usage(metadata: &Value) -> Value {
    let count = |field: &str| metadata.get(field).and_then(Value::as_u64).unwrap_or(0);
    let cached = count("cachedContentTokenCount");
    let prompt = count("promptTokenCount") + count("toolUsePromptTokenCount");
    json!({
        "input_tokens": prompt.saturating_sub(cached),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": count("candidatesTokenCount") + count("thoughtsTokenCount"),
    })
}

/// A block as Anthropic shows it.
pub fn content_block(block: &Block) -> Value {
    match block {
        Block::Thinking(thinking, signature) => {
            json!({"type": "thinking", "thinking": thinking, "signature": signature})
        }
        Block::Text(text) => json!({"type": "text", "text": text}),
        Block::ToolUse(id, name, input) => json!({"type": "tool_use", "id": id, "name": name, "input": input}),
    }
}

/// Translates a whole reply for a client that asked for `model` (and, with
/// `one_call`, for at most one call). A blocked prompt is a `refusal` with
/// no content, as Claude answers one.
pub fn message(reply: &Value, model: &str, one_call: bool) -> Value {
    let candidate = reply.pointer("/candidates/0");
    let mut blocks = blocks(candidate.and_then(|c| c.pointer("/content/parts")), "toolu");
    if one_call {
        blocks = first_call_only(blocks, &mut 0);
    }
    let called = blocks.iter().any(|b| matches!(b, Block::ToolUse(..)));
    let blocked = candidate.is_none() && reply.pointer("/promptFeedback/blockReason").is_some();
    let reason = candidate.and_then(|c| c.get("finishReason")).and_then(Value::as_str);
    json!({
        "id": message_id(reply),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks.iter().map(content_block).collect::<Vec<_>>(),
        "stop_reason": if blocked { "refusal" } else { stop_reason(reason, called) },
        "stop_sequence": Value::Null,
        "usage": usage(reply.get("usageMetadata").unwrap_or(&Value::Null)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::messages::{carried, gemini_call_id};

    #[test]
    fn thoughts_text_and_calls_become_blocks_with_signatures_before_their_part() {
        let reply = json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "Let me ", "thought": true}, {"text": "think.", "thought": true},
                {"text": "I'll read "}, {"text": "the file."},
                {"functionCall": {"id": "c1", "name": "Read", "args": {"file_path": "/a.rs"}}, "thoughtSignature": "c2ln"},
                {"functionCall": {"name": "Grep"}}]},
                "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 50, "cachedContentTokenCount": 20, "candidatesTokenCount": 7,
                "thoughtsTokenCount": 3, "totalTokenCount": 60},
            "responseId": "abc"
        });
        let out = message(&reply, "claude-sonnet-4-5", false);
        let one = message(&reply, "claude-sonnet-4-5", true);
        assert_eq!(one["content"].as_array().unwrap().len(), 4, "the second call dropped");
        assert_eq!(out["id"], "msg_abc");
        assert_eq!(out["model"], "claude-sonnet-4-5");
        assert_eq!(out["stop_reason"], "tool_use");
        let content = out["content"].as_array().unwrap();
        assert_eq!(content[0], json!({"type": "thinking", "thinking": "Let me think.", "signature": ""}));
        assert_eq!(content[1], json!({"type": "text", "text": "I'll read the file."}));
        assert_eq!(content[2]["type"], "thinking", "the call's signature in a block just before it");
        assert_eq!(carried(content[2]["signature"].as_str().unwrap()).as_deref(), Some("c2ln"));
        assert_eq!(content[3]["name"], "Read");
        assert_eq!(content[3]["input"], json!({"file_path": "/a.rs"}));
        assert_eq!(gemini_call_id(content[3]["id"].as_str().unwrap()).as_deref(), Some("c1"));
        assert_eq!(content[4]["input"], json!({}), "a call without args has an empty input");
        assert!(content[4]["id"].as_str().unwrap().starts_with("toolu_s_"));
        assert_eq!(
            out["usage"],
            json!({"input_tokens": 30, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 20, "output_tokens": 10})
        );
    }

    #[test]
    fn a_signed_thought_keeps_its_signature_and_stop_reasons_map() {
        let parts = json!([{"text": "hmm", "thought": true, "thoughtSignature": "s1"}, {"text": "ok", "thoughtSignature": "s2"}]);
        let blocks = blocks(Some(&parts), "toolu");
        assert_eq!(blocks.len(), 3);
        assert!(matches!(&blocks[0], Block::Thinking(t, s) if t == "hmm" && carried(s).as_deref() == Some("s1")));
        assert!(matches!(&blocks[1], Block::Thinking(t, s) if t.is_empty() && carried(s).as_deref() == Some("s2")));
        assert_eq!(blocks[2], Block::Text("ok".into()));
        assert_eq!(stop_reason(Some("MAX_TOKENS"), false), "max_tokens");
        assert_eq!(stop_reason(Some("SAFETY"), false), "refusal");
        assert_eq!(stop_reason(Some("MALFORMED_FUNCTION_CALL"), false), "end_turn");
        let blocked = message(&json!({"promptFeedback": {"blockReason": "SAFETY"}}), "m", false);
        assert_eq!(
            (blocked["stop_reason"].as_str(), blocked["content"].as_array().map(Vec::len)),
            (Some("refusal"), Some(0))
        );
    }
}
