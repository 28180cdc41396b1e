//! A Gemini `generateContent` reply → an OpenAI `chat.completion`.

use super::TranslateError;
use super::tool_ids::tool_call_id;
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch, for `created`.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `chatcmpl-` + Google's response id (or a random one).
pub fn completion_id(reply: &Value) -> String {
    match reply.get("responseId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => format!("chatcmpl-{id}"),
        _ => format!("chatcmpl-{:016x}", rand::random::<u64>()),
    }
}

/// Gemini's finishReason → OpenAI's finish_reason.
pub fn finish_reason(reason: Option<&str>, called_tools: bool) -> Option<&'static str> {
    if called_tools {
        return Some("tool_calls");
    }
    Some(match reason? {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => "content_filter",
        _ => "stop",
    })
}

/// The error for a prompt Google blocked (no candidates at all).
pub fn blocked_prompt(reply: &Value) -> Option<TranslateError> {
    let has_candidates = reply.get("candidates").and_then(Value::as_array).is_some_and(|c| !c.is_empty());
    let reason = reply.pointer("/promptFeedback/blockReason").and_then(Value::as_str)?;
    (!has_candidates).then(|| TranslateError {
        message: format!("Gemini blocked the prompt ({reason}); rephrase it or adjust safety settings."),
        param: Some("messages".into()),
        code: Some("content_filter"),
    })
}

/// OpenAI `usage` from Gemini's `usageMetadata`.
pub fn usage(metadata: &Value) -> Value {
    let count = |field: &str| metadata.get(field).and_then(Value::as_u64).unwrap_or(0);
    let thoughts = count("thoughtsTokenCount");
    let prompt = count("promptTokenCount") + count("toolUsePromptTokenCount");
    let completion = count("candidatesTokenCount") + thoughts;
    let total = metadata.get("totalTokenCount").and_then(Value::as_u64).unwrap_or(prompt + completion);
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
        "prompt_tokens_details": {"cached_tokens": count("cachedContentTokenCount")},
        "completion_tokens_details": {"reasoning_tokens": thoughts}
    })
}

/// What a candidate's parts say, split the way OpenAI splits a message.
#[derive(Default)]
pub struct Parts {
    /// Answer text.
    pub text: String,
    /// Thought text (`reasoning_content`).
    pub thoughts: String,
    /// `tool_calls` entries (without `index`).
    pub tool_calls: Vec<Value>,
}

/// Splits Gemini parts into text, thoughts and tool calls.
pub fn split_parts(parts: Option<&Value>) -> Parts {
    let mut out = Parts::default();
    for part in parts.and_then(Value::as_array).into_iter().flatten() {
        if let Some(call) = part.get("functionCall") {
            let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
            let args = call.get("args").cloned().unwrap_or_else(|| json!({}));
            let signature = part.get("thoughtSignature").and_then(Value::as_str);
            let id = tool_call_id(call.get("id").and_then(Value::as_str), signature);
            let mut entry =
                json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}});
            if let Some(signature) = signature {
                entry["extra_content"] = json!({"google": {"thought_signature": signature}});
            }
            out.tool_calls.push(entry);
        } else if let Some(text) = part.get("text").and_then(Value::as_str) {
            if part.get("thought").and_then(Value::as_bool) == Some(true) {
                out.thoughts.push_str(text);
            } else {
                out.text.push_str(text);
            }
        }
    }
    out
}

/// Translates a whole reply. A blocked prompt is an error, not an empty reply.
pub fn chat_completion(reply: &Value, model: &str) -> Result<Value, TranslateError> {
    if let Some(blocked) = blocked_prompt(reply) {
        return Err(blocked);
    }
    let candidates = reply.get("candidates").and_then(Value::as_array).cloned().unwrap_or_default();
    let choices: Vec<Value> = candidates
        .iter()
        .enumerate()
        .map(|(position, candidate)| {
            let parts = split_parts(candidate.pointer("/content/parts"));
            let called = !parts.tool_calls.is_empty();
            let mut message = json!({"role": "assistant", "content": Value::Null, "refusal": Value::Null});
            if !parts.text.is_empty() || !called {
                message["content"] = json!(parts.text);
            }
            if !parts.thoughts.is_empty() {
                message["reasoning_content"] = json!(parts.thoughts);
            }
            if called {
                message["tool_calls"] = Value::Array(parts.tool_calls);
            }
            let reason = candidate.get("finishReason").and_then(Value::as_str);
            json!({
                "index": candidate.get("index").and_then(Value::as_u64).unwrap_or(position as u64),
                "message": message,
                "finish_reason": finish_reason(reason, called).unwrap_or("stop"),
                "logprobs": Value::Null
            })
        })
        .collect();
    Ok(json!({
        "id": completion_id(reply),
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": choices,
        "usage": usage(reply.get("usageMetadata").unwrap_or(&Value::Null)),
        "system_fingerprint": Value::Null
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::tool_ids::split_tool_call_id;

    #[test]
    fn text_thoughts_usage_and_finish_reason() {
        let reply = json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "Let me think.", "thought": true}, {"text": "Hello"}, {"text": " world"}]},
                "finishReason": "MAX_TOKENS", "index": 0}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "thoughtsTokenCount": 3,
                "cachedContentTokenCount": 1, "totalTokenCount": 10},
            "responseId": "abc"
        });
        let out = chat_completion(&reply, "gemini-2.5-flash").unwrap();
        assert_eq!(out["id"], "chatcmpl-abc");
        assert_eq!(out["object"], "chat.completion");
        assert_eq!(out["choices"][0]["message"]["content"], "Hello world");
        assert_eq!(out["choices"][0]["message"]["reasoning_content"], "Let me think.");
        assert_eq!(out["choices"][0]["finish_reason"], "length");
        assert_eq!(out["usage"]["prompt_tokens"], 5);
        assert_eq!(out["usage"]["completion_tokens"], 5);
        assert_eq!(out["usage"]["total_tokens"], 10);
        assert_eq!(out["usage"]["completion_tokens_details"]["reasoning_tokens"], 3);
        assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
    }

    #[test]
    fn function_calls_become_tool_calls_with_their_signature() {
        let reply = json!({"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"}]},
            "finishReason": "STOP"}]});
        let out = chat_completion(&reply, "m").unwrap();
        let message = &out["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null);
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        let call = &message["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        assert_eq!(
            serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
            json!({"city": "Paris"})
        );
        assert_eq!(split_tool_call_id(call["id"].as_str().unwrap()).1, Some("c2ln"));
        assert_eq!(call["extra_content"]["google"]["thought_signature"], "c2ln");
    }

    #[test]
    fn safety_and_empty_replies() {
        assert_eq!(finish_reason(Some("SAFETY"), false), Some("content_filter"));
        assert_eq!(finish_reason(Some("RECITATION"), false), Some("content_filter"));
        assert_eq!(finish_reason(Some("STOP"), false), Some("stop"));
        assert_eq!(finish_reason(None, false), None);
        let empty = json!({"candidates": [{"content": {"role": "model"}, "finishReason": "STOP"}]});
        assert_eq!(chat_completion(&empty, "m").unwrap()["choices"][0]["message"]["content"], "");
        let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {}});
        let error = chat_completion(&blocked, "m").unwrap_err();
        assert_eq!(error.code, Some("content_filter"));
        assert!(error.message.contains("SAFETY"));
    }
}
