//! Gemini's SSE reply → Anthropic's stream: `message_start`, then each
//! block as `content_block_start`, deltas and `content_block_stop` (indexes
//! 0, 1, 2… strictly in order), then `message_delta` with the stop reason
//! and cumulative usage, and `message_stop`. Every event carries its
//! `event:` line (the SDKs dispatch on it). Fed raw bytes as they arrive.

use super::response::{message_id, stop_reason, usage};
use crate::translate::carriers::{Block, blocks, first_call_only};
use crate::translate::stream::next_event;
use serde_json::{Value, json};

/// The kind of the block now open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    Thinking,
    Text,
}

/// Translation state of one streamed message.
pub struct MessagesStream {
    model: String,
    buffer: Vec<u8>,
    started: bool,
    /// The next block's index.
    next: usize,
    open: Option<Open>,
    called: bool,
    finish: Option<String>,
    usage: Value,
    blocked: bool,
    failed: bool,
    /// At most one call (`Some(calls sent)`), for `disable_parallel_tool_use`.
    one_call: Option<usize>,
}

impl MessagesStream {
    /// A translator for a client that asked for `model`.
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_string(),
            buffer: Vec::new(),
            started: false,
            next: 0,
            open: None,
            called: false,
            finish: None,
            usage: usage(&Value::Null),
            blocked: false,
            failed: false,
            one_call: None,
        }
    }

    /// Sends at most one call (the client asked for one at a time).
    pub fn with_one_call(mut self, one_call: bool) -> Self {
        self.one_call = one_call.then_some(0);
        self
    }

    /// Feeds bytes of Gemini's SSE stream; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(event) = next_event(&mut self.buffer) {
            if self.failed {
                continue;
            }
            match event {
                Ok(value) => self.event(&value, &mut events),
                Err(_) => self.fail("api_error", "gemgate: the upstream sent an event that is not JSON", &mut events),
            }
        }
        events
    }

    /// The closing events: the open block's stop, `message_delta` and
    /// `message_stop`; or an error when Google's stream ended without a
    /// finish reason (cut short).
    pub fn finish(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        if self.failed {
            return events;
        }
        if self.finish.is_none() && !self.blocked {
            self.fail("api_error", "gemgate: the upstream stream ended before the reply was complete", &mut events);
            return events;
        }
        self.start(&Value::Null, &mut events);
        self.close(&mut events);
        let reason = if self.blocked { "refusal" } else { stop_reason(self.finish.as_deref(), self.called) };
        events.push(event(
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": Value::Null},
                "usage": self.usage}),
        ));
        events.push(event("message_stop", &json!({"type": "message_stop"})));
        events
    }

    /// Ends the stream with an error event of `kind` (nothing follows it).
    pub fn fail(&mut self, kind: &str, message: &str, events: &mut Vec<String>) {
        self.failed = true;
        events.push(error_event(kind, message));
    }

    fn start(&mut self, reply: &Value, events: &mut Vec<String>) {
        if self.started {
            return;
        }
        self.started = true;
        let mut usage = self.usage.clone();
        usage["output_tokens"] = json!(1);
        events.push(event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": message_id(reply), "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": Value::Null, "stop_sequence": Value::Null, "usage": usage}}),
        ));
    }

    fn event(&mut self, reply: &Value, events: &mut Vec<String>) {
        if let Some(error) = reply.get("error") {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("upstream error");
            let kind =
                if error.get("code").and_then(Value::as_u64) == Some(503) { "overloaded_error" } else { "api_error" };
            self.fail(kind, message, events);
            return;
        }
        if let Some(metadata) = reply.get("usageMetadata") {
            self.usage = usage(metadata);
        }
        self.start(reply, events);
        let Some(candidate) = reply.pointer("/candidates/0") else {
            self.blocked |= reply.pointer("/promptFeedback/blockReason").is_some();
            return;
        };
        let mut blocks = blocks(candidate.pointer("/content/parts"), "toolu");
        if let Some(sent) = self.one_call.as_mut() {
            blocks = first_call_only(blocks, sent);
        }
        for block in blocks {
            self.block(block, events);
        }
        if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str) {
            self.finish = Some(reason.to_string());
        }
    }

    /// Sends one block, continuing the open one when it is of its kind.
    fn block(&mut self, block: Block, events: &mut Vec<String>) {
        match block {
            Block::Thinking(thinking, signature) => {
                if self.open != Some(Open::Thinking) {
                    self.close(events);
                    self.open_block(
                        Open::Thinking,
                        json!({"type": "thinking", "thinking": "", "signature": ""}),
                        events,
                    );
                }
                if !thinking.is_empty() {
                    self.delta(json!({"type": "thinking_delta", "thinking": thinking}), events);
                }
                if !signature.is_empty() {
                    self.delta(json!({"type": "signature_delta", "signature": signature}), events);
                    self.close(events);
                }
            }
            Block::Text(text) => {
                if self.open != Some(Open::Text) {
                    self.close(events);
                    self.open_block(Open::Text, json!({"type": "text", "text": ""}), events);
                }
                self.delta(json!({"type": "text_delta", "text": text}), events);
            }
            Block::ToolUse(id, name, input) => {
                self.close(events);
                self.called = true;
                let index = self.next;
                self.next += 1;
                events.push(event(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": index,
                        "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
                ));
                events.push(event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": input.to_string()}}),
                ));
                events.push(event("content_block_stop", &json!({"type": "content_block_stop", "index": index})));
            }
        }
    }

    fn open_block(&mut self, kind: Open, empty: Value, events: &mut Vec<String>) {
        self.open = Some(kind);
        events.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": self.next, "content_block": empty}),
        ));
    }

    fn delta(&self, delta: Value, events: &mut Vec<String>) {
        events.push(event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": self.next, "delta": delta}),
        ));
    }

    fn close(&mut self, events: &mut Vec<String>) {
        if self.open.take().is_some() {
            events.push(event("content_block_stop", &json!({"type": "content_block_stop", "index": self.next})));
            self.next += 1;
        }
    }
}

fn event(kind: &str, data: &Value) -> String {
    format!("event: {kind}\ndata: {data}\n\n")
}

/// Anthropic's error event (`overloaded_error`, `api_error`, …).
pub fn error_event(kind: &str, message: &str) -> String {
    event("error", &json!({"type": "error", "error": {"type": kind, "message": message}}))
}

/// Anthropic's keep-alive event.
pub const PING: &str = "event: ping\ndata: {\"type\":\"ping\"}\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// (event line, data) of each event.
    fn parsed(events: &[String]) -> Vec<(String, Value)> {
        events
            .iter()
            .map(|e| {
                let (head, data) = e.trim_end().split_once('\n').unwrap();
                let kind = head.strip_prefix("event: ").unwrap().to_string();
                let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], kind.as_str(), "the data repeats the event's type");
                (kind, data)
            })
            .collect()
    }

    #[test]
    fn thinking_text_and_a_call_stream_in_anthropics_order() {
        let mut stream = MessagesStream::new("claude-sonnet-4-5");
        let first = json!({"candidates": [{"content": {"parts": [{"text": "Hmm", "thought": true}]}}],
            "usageMetadata": {"promptTokenCount": 12}, "responseId": "r1"});
        let second = json!({"candidates": [{"content": {"parts": [{"text": "I'll "}, {"text": "look."}]}}]});
        let third = json!({"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "Read", "args": {"path": "/a"}}, "thoughtSignature": "sig"}]},
            "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 9}});
        let all = format!("data: {first}\r\n\r\ndata: {second}\r\n\r\ndata: {third}\r\n\r\n");
        let (a, b) = all.split_at(40);
        let mut events = stream.push(a.as_bytes());
        events.extend(stream.push(b.as_bytes()));
        events.extend(stream.finish());
        let events = parsed(&events);
        let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[0].1["message"]["id"], "msg_r1");
        assert_eq!(events[0].1["message"]["usage"]["input_tokens"], 12);
        assert_eq!(events[2].1["delta"], json!({"type": "thinking_delta", "thinking": "Hmm"}));
        assert_eq!(events[4].1["index"], 1);
        assert_eq!(events[5].1["delta"]["text"], "I'll look.");
        assert_eq!(events[7].1["content_block"]["type"], "thinking", "the call's signature just before it");
        assert_eq!(events[8].1["delta"]["type"], "signature_delta");
        assert_eq!(events[10].1["content_block"]["name"], "Read");
        assert_eq!(events[10].1["index"], 3);
        assert_eq!(events[11].1["delta"], json!({"type": "input_json_delta", "partial_json": "{\"path\":\"/a\"}"}));
        assert_eq!(events[13].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(events[13].1["usage"]["output_tokens"], 9);
    }

    #[test]
    fn errors_and_cut_streams_end_with_an_error_event() {
        let mut stream = MessagesStream::new("m");
        let overloaded =
            json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}});
        let events = parsed(&stream.push(format!("data: {overloaded}\n\n").as_bytes()));
        assert_eq!(events[0].1["error"]["type"], "overloaded_error");
        assert!(stream.finish().is_empty(), "nothing after an error");
        let mut cut = MessagesStream::new("m");
        let part = json!({"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]});
        cut.push(format!("data: {part}\n\n").as_bytes());
        let events = parsed(&cut.finish());
        assert_eq!(events.last().unwrap().0, "error");
    }
}
