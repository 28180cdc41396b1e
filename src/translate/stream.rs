//! Gemini's SSE reply → OpenAI `chat.completion.chunk` events. The translator
//! is fed raw bytes as they arrive (events may be split across reads) and
//! returns complete SSE frames to send on at once.

use super::response::{blocked_prompt, completion_id, finish_reason, split_parts, unix_now, usage};
use serde_json::{Value, json};

/// Translation state of one streamed chat completion.
pub struct ChatStream {
    model: String,
    include_usage: bool,
    id: Option<String>,
    created: u64,
    buffer: Vec<u8>,
    /// Per candidate: role sent yet, tool calls sent so far.
    candidates: Vec<(bool, usize)>,
    usage: Option<Value>,
}

impl ChatStream {
    /// A translator for `model`'s reply.
    pub fn new(model: &str, include_usage: bool) -> Self {
        Self {
            model: model.to_string(),
            include_usage,
            id: None,
            created: unix_now(),
            buffer: Vec::new(),
            candidates: Vec::new(),
            usage: None,
        }
    }

    /// Feeds bytes of Gemini's SSE stream; returns the OpenAI frames they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut frames = Vec::new();
        while let Some(event) = next_event(&mut self.buffer) {
            match event {
                Ok(value) => self.event(&value, &mut frames),
                Err(NotJson) => frames.push(error_frame("gemgate: the upstream sent an event that is not JSON", 502)),
            }
        }
        frames
    }

    /// The closing frames: the usage chunk (when asked for) and `[DONE]`.
    pub fn finish(&mut self) -> Vec<String> {
        let mut frames = Vec::new();
        if self.include_usage {
            let usage = self.usage.clone().unwrap_or_else(|| usage(&Value::Null));
            let mut chunk = self.chunk(Vec::new());
            chunk["usage"] = usage;
            frames.push(frame(&chunk));
        }
        frames.push("data: [DONE]\n\n".to_string());
        frames
    }

    fn event(&mut self, event: &Value, frames: &mut Vec<String>) {
        if let Some(error) = event.get("error") {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("upstream error");
            let code = error.get("code").and_then(Value::as_u64).unwrap_or(502) as u16;
            frames.push(error_frame(message, code));
            return;
        }
        if self.id.is_none() {
            self.id = Some(completion_id(event));
        }
        if let Some(metadata) = event.get("usageMetadata") {
            self.usage = Some(usage(metadata));
        }
        if let Some(blocked) = blocked_prompt(event) {
            frames.push(error_frame(&blocked.message, 400));
            return;
        }
        for (position, candidate) in event.get("candidates").and_then(Value::as_array).into_iter().flatten().enumerate()
        {
            let index = candidate.get("index").and_then(Value::as_u64).unwrap_or(position as u64) as usize;
            if self.candidates.len() <= index {
                self.candidates.resize(index + 1, (false, 0));
            }
            let parts = split_parts(candidate.pointer("/content/parts"));
            let (role_sent, tools_sent) = self.candidates[index];
            let mut delta = json!({});
            if !role_sent {
                delta["role"] = json!("assistant");
                delta["content"] = json!("");
            }
            if !parts.text.is_empty() {
                delta["content"] = json!(parts.text);
            }
            if !parts.thoughts.is_empty() {
                delta["reasoning_content"] = json!(parts.thoughts);
            }
            let called = parts.tool_calls.len();
            if called > 0 {
                let calls: Vec<Value> = parts
                    .tool_calls
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut call)| {
                        call["index"] = json!(tools_sent + i);
                        call
                    })
                    .collect();
                delta["tool_calls"] = Value::Array(calls);
            }
            self.candidates[index] = (true, tools_sent + called);
            let has_delta = delta.as_object().is_some_and(|d| !d.is_empty());
            if has_delta {
                frames.push(frame(&self.chunk(vec![choice(index, delta, None)])));
            }
            if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str) {
                let reason = finish_reason(Some(reason), self.candidates[index].1 > 0);
                frames.push(frame(&self.chunk(vec![choice(index, json!({}), reason)])));
            }
        }
    }

    fn chunk(&self, choices: Vec<Value>) -> Value {
        json!({
            "id": self.id.clone().unwrap_or_else(|| "chatcmpl-gemgate".into()),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": Value::Null,
            "choices": choices
        })
    }
}

fn choice(index: usize, delta: Value, reason: Option<&str>) -> Value {
    json!({"index": index, "delta": delta, "finish_reason": reason, "logprobs": Value::Null})
}

fn frame(value: &Value) -> String {
    format!("data: {value}\n\n")
}

/// An OpenAI-style error event for a stream that cannot go on.
pub fn error_frame(message: &str, status: u16) -> String {
    let kind = if status == 429 {
        "rate_limit_error"
    } else if status < 500 {
        "invalid_request_error"
    } else {
        "api_error"
    };
    frame(&json!({"error": {"message": message, "type": kind, "param": Value::Null, "code": Value::Null}}))
}

/// An upstream event whose data is not JSON.
#[derive(Debug, PartialEq, Eq)]
pub struct NotJson;

/// Takes the next complete server-sent event out of `buffer` and returns
/// its data as JSON (its `data:` lines joined); events without data are
/// skipped. `None` until an event is complete.
pub fn next_event(buffer: &mut Vec<u8>) -> Option<Result<Value, NotJson>> {
    loop {
        let (end, separator) = find_event_end(buffer)?;
        let event: Vec<u8> = buffer.drain(..end + separator).collect();
        let text = String::from_utf8_lossy(&event[..end]);
        let data: String = text
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect::<Vec<_>>()
            .join("\n");
        if !data.is_empty() {
            return Some(serde_json::from_str(&data).map_err(|_| NotJson));
        }
    }
}

/// Where the first complete server-sent event ends: (end of its data, separator length).
pub fn find_event_end(buffer: &[u8]) -> Option<(usize, usize)> {
    let crlf = buffer.windows(4).position(|w| w == b"\r\n\r\n").map(|p| (p, 4));
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(frames: &[String]) -> Vec<Value> {
        frames
            .iter()
            .filter(|f| !f.contains("[DONE]"))
            .map(|f| serde_json::from_str(f.trim_start_matches("data: ").trim()).unwrap())
            .collect()
    }

    #[test]
    fn text_events_split_across_reads_become_chunks_then_usage_then_done() {
        let mut stream = ChatStream::new("gemini-2.5-flash", true);
        let first = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}],\"role\":\"model\"},\"index\":0}],\"responseId\":\"r1\"}\r\n\r\n";
        let second = "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2,\"totalTokenCount\":5}}\r\n\r\n";
        let (a, b) = first.split_at(17);
        assert!(stream.push(a.as_bytes()).is_empty());
        let mut frames = stream.push(b.as_bytes());
        frames.extend(stream.push(second.as_bytes()));
        frames.extend(stream.finish());
        assert_eq!(frames.last().unwrap(), "data: [DONE]\n\n");
        let chunks = data(&frames);
        assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": "Hel"}));
        assert_eq!(chunks[0]["id"], "chatcmpl-r1");
        assert_eq!(chunks[1]["choices"][0]["delta"], json!({"content": "lo"}));
        assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[3]["choices"], json!([]));
        assert_eq!(chunks[3]["usage"]["total_tokens"], 5);
        assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["id"] == "chatcmpl-r1"));
    }

    #[test]
    fn tool_calls_get_indexes_ids_and_whole_arguments() {
        let mut stream = ChatStream::new("m", false);
        let event = json!({"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "s1"},
            {"functionCall": {"name": "b", "args": {}}}]}, "finishReason": "STOP"}]});
        let frames = stream.push(format!("data: {event}\n\n").as_bytes());
        let chunks = data(&frames);
        let calls = &chunks[0]["choices"][0]["delta"]["tool_calls"];
        assert_eq!(calls[0]["index"], 0);
        assert_eq!(calls[1]["index"], 1);
        assert_eq!(calls[0]["function"]["arguments"], "{\"x\":1}");
        assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(stream.finish(), vec!["data: [DONE]\n\n".to_string()]);
    }

    #[test]
    fn thoughts_errors_and_blocked_prompts() {
        let mut stream = ChatStream::new("m", false);
        let thought = json!({"candidates": [{"content": {"parts": [{"text": "hmm", "thought": true}]}}]});
        let chunks = data(&stream.push(format!("data: {thought}\n\n").as_bytes()));
        assert_eq!(chunks[0]["choices"][0]["delta"]["reasoning_content"], "hmm");
        let error = json!({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}});
        let chunks = data(&stream.push(format!("data: {error}\n\n").as_bytes()));
        assert_eq!(chunks[0]["error"]["type"], "api_error");
        let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}});
        let chunks = data(&stream.push(format!("data: {blocked}\n\n").as_bytes()));
        assert!(chunks[0]["error"]["message"].as_str().unwrap().contains("SAFETY"));
    }
}
