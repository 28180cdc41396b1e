//! Gemini's SSE reply → the Responses event sequence (`docs/agent-dialects.md`
//! §2.5): `response.created`, `response.in_progress`, each output item as
//! `output_item.added`, its parts and deltas, `output_item.done`, then one
//! terminal event (`response.completed`, `response.incomplete` or
//! `response.failed`) carrying the whole response. Every event has a
//! `sequence_number` from 0. A whole (non-streamed) reply goes through the
//! same machine ([`whole`]), so both answers build their items one way.

use crate::translate::carriers::{Block, blocks, first_call_only};
use crate::translate::stream::next_event;
use serde_json::{Value, json};

/// Called with the final response (to keep it for `previous_response_id`).
pub type OnDone = Box<dyn FnOnce(&Value) + Send>;

/// The item now open.
enum Open {
    Reasoning { id: String, text: String },
    Message { id: String, text: String },
}

/// Translation state of one response.
pub struct ResponsesStream {
    /// The response object as the request shapes it (id, model, tools…).
    response: Value,
    buffer: Vec<u8>,
    sequence: u64,
    started: bool,
    output: Vec<Value>,
    open: Option<Open>,
    finish: Option<String>,
    usage: Value,
    blocked: bool,
    ended: bool,
    on_done: Option<OnDone>,
    /// At most one call (`Some(calls sent)`), for `parallel_tool_calls: false`.
    one_call: Option<usize>,
}

/// Responses `usage` from Gemini's `usageMetadata` (§3.9).
pub fn usage(metadata: &Value) -> Value {
    let count = |field: &str| metadata.get(field).and_then(Value::as_u64).unwrap_or(0);
    let input = count("promptTokenCount") + count("toolUsePromptTokenCount");
    let thoughts = count("thoughtsTokenCount");
    let output = count("candidatesTokenCount") + thoughts;
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": count("cachedContentTokenCount")},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": thoughts},
        "total_tokens": metadata.get("totalTokenCount").and_then(Value::as_u64).unwrap_or(input + output),
    })
}

/// A whole reply as the final response object (with `one_call`, at most one call).
pub fn whole(reply: &Value, response: Value, one_call: bool) -> Value {
    let mut stream = ResponsesStream::new(response, None).with_one_call(one_call);
    stream.push(format!("data: {reply}\n\n").as_bytes());
    stream.finish();
    stream.response
}

impl ResponsesStream {
    /// A translator filling in `response` (its `id`, `model`, `created_at`
    /// and the request's echoes already set).
    pub fn new(response: Value, on_done: Option<OnDone>) -> Self {
        Self {
            response,
            buffer: Vec::new(),
            sequence: 0,
            started: false,
            output: Vec::new(),
            open: None,
            finish: None,
            usage: Value::Null,
            blocked: false,
            ended: false,
            on_done,
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
            if self.ended {
                continue;
            }
            match event {
                Ok(value) => self.reply_event(&value, &mut events),
                Err(_) => self.fail("server_error", "the upstream sent an event that is not JSON", &mut events),
            }
        }
        events
    }

    /// The terminal event (and the open item's end); `response.failed` when
    /// Google's stream ended before its finish reason.
    pub fn finish(&mut self) -> Vec<String> {
        let mut events = Vec::new();
        if self.ended {
            return events;
        }
        self.start(&mut events);
        if self.finish.is_none() && !self.blocked {
            self.fail("server_error", "the upstream stream ended before the reply was complete", &mut events);
            return events;
        }
        self.close(&mut events);
        let incomplete = match self.finish.as_deref() {
            _ if self.blocked => Some("content_filter"),
            Some("MAX_TOKENS") => Some("max_output_tokens"),
            Some("SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII") => Some("content_filter"),
            _ => None,
        };
        self.response["output"] = Value::Array(std::mem::take(&mut self.output));
        self.response["usage"] = if self.usage.is_null() { usage(&Value::Null) } else { self.usage.clone() };
        let kind = match incomplete {
            Some(reason) => {
                self.response["status"] = json!("incomplete");
                self.response["incomplete_details"] = json!({ "reason": reason });
                "response.incomplete"
            }
            None => {
                self.response["status"] = json!("completed");
                "response.completed"
            }
        };
        let response = self.response.clone();
        self.emit(kind, json!({ "response": response }), &mut events);
        self.end();
        events
    }

    /// Ends the response as failed with `code` (an `error` event, then
    /// `response.failed`).
    pub fn fail(&mut self, code: &str, message: &str, events: &mut Vec<String>) {
        if self.ended {
            return;
        }
        self.start(events);
        self.emit("error", json!({"code": code, "message": message, "param": Value::Null}), events);
        self.response["status"] = json!("failed");
        self.response["error"] = json!({"code": code, "message": message});
        self.response["output"] = Value::Array(std::mem::take(&mut self.output));
        let response = self.response.clone();
        self.emit("response.failed", json!({ "response": response }), events);
        self.ended = true;
    }

    fn end(&mut self) {
        self.ended = true;
        if let Some(on_done) = self.on_done.take() {
            on_done(&self.response);
        }
    }

    fn emit(&mut self, kind: &str, mut data: Value, events: &mut Vec<String>) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        events.push(format!("event: {kind}\ndata: {data}\n\n"));
    }

    fn start(&mut self, events: &mut Vec<String>) {
        if self.started {
            return;
        }
        self.started = true;
        self.response["status"] = json!("in_progress");
        let response = self.response.clone();
        self.emit("response.created", json!({ "response": response.clone() }), events);
        self.emit("response.in_progress", json!({ "response": response }), events);
    }

    fn reply_event(&mut self, reply: &Value, events: &mut Vec<String>) {
        if let Some(error) = reply.get("error") {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("upstream error");
            let code = if error.get("code").and_then(Value::as_u64) == Some(429) {
                "rate_limit_exceeded"
            } else {
                "server_error"
            };
            self.fail(code, message, events);
            return;
        }
        self.start(events);
        if let Some(metadata) = reply.get("usageMetadata") {
            self.usage = usage(metadata);
        }
        let Some(candidate) = reply.pointer("/candidates/0") else {
            self.blocked |= reply.pointer("/promptFeedback/blockReason").is_some();
            return;
        };
        let mut blocks = blocks(candidate.pointer("/content/parts"), "call");
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

    fn next_id(&self, prefix: &str) -> String {
        let base = self.response["id"].as_str().unwrap_or("resp_gemgate").trim_start_matches("resp_");
        format!("{prefix}_{base}_{}", self.output.len())
    }

    fn block(&mut self, block: Block, events: &mut Vec<String>) {
        let index = self.output.len();
        match block {
            Block::Thinking(text, carrier) => {
                if !matches!(self.open, Some(Open::Reasoning { .. })) {
                    self.close(events);
                    let id = self.next_id("rs");
                    self.emit(
                        "response.output_item.added",
                        json!({"output_index": index, "item": {"id": id, "type": "reasoning", "summary": []}}),
                        events,
                    );
                    self.open = Some(Open::Reasoning { id, text: String::new() });
                }
                if let Some(Open::Reasoning { id, text: so_far }) = &mut self.open
                    && !text.is_empty()
                {
                    let (id, first) = (id.clone(), so_far.is_empty());
                    so_far.push_str(&text);
                    if first {
                        let part = json!({"item_id": id, "output_index": index, "summary_index": 0,
                            "part": {"type": "summary_text", "text": ""}});
                        self.emit("response.reasoning_summary_part.added", part, events);
                    }
                    let delta = json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": text});
                    self.emit("response.reasoning_summary_text.delta", delta, events);
                }
                if !carrier.is_empty() {
                    self.close_with(Some(carrier), events);
                }
            }
            Block::Text(text) => {
                if !matches!(self.open, Some(Open::Message { .. })) {
                    self.close(events);
                    let id = self.next_id("msg");
                    let item = json!({"id": id, "type": "message", "role": "assistant", "status": "in_progress", "content": []});
                    self.emit("response.output_item.added", json!({"output_index": index, "item": item}), events);
                    let part = json!({"item_id": id, "output_index": index, "content_index": 0,
                        "part": {"type": "output_text", "text": "", "annotations": []}});
                    self.emit("response.content_part.added", part, events);
                    self.open = Some(Open::Message { id, text: String::new() });
                }
                if let Some(Open::Message { id, text: so_far }) = &mut self.open {
                    so_far.push_str(&text);
                    let delta = json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text, "logprobs": []});
                    self.emit("response.output_text.delta", delta, events);
                }
            }
            Block::ToolUse(call_id, name, input) => {
                self.close(events);
                let index = self.output.len();
                let id = self.next_id("fc");
                let arguments = input.to_string();
                let mut item = json!({"id": id, "type": "function_call", "status": "in_progress",
                    "call_id": call_id, "name": name, "arguments": ""});
                self.emit("response.output_item.added", json!({"output_index": index, "item": item.clone()}), events);
                let delta = json!({"item_id": id, "output_index": index, "delta": arguments});
                self.emit("response.function_call_arguments.delta", delta, events);
                let done = json!({"item_id": id, "output_index": index, "name": name, "arguments": arguments});
                self.emit("response.function_call_arguments.done", done, events);
                item["status"] = json!("completed");
                item["arguments"] = json!(arguments);
                self.emit("response.output_item.done", json!({"output_index": index, "item": item.clone()}), events);
                self.output.push(item);
            }
        }
    }

    fn close(&mut self, events: &mut Vec<String>) {
        self.close_with(None, events);
    }

    /// Ends the open item (a reasoning item gets `carrier` as its `encrypted_content`).
    fn close_with(&mut self, carrier: Option<String>, events: &mut Vec<String>) {
        let index = self.output.len();
        let item = match self.open.take() {
            None => return,
            Some(Open::Reasoning { id, text }) => {
                let mut summary = Vec::new();
                if !text.is_empty() {
                    let part = json!({"type": "summary_text", "text": text});
                    let done = json!({"item_id": id, "output_index": index, "summary_index": 0, "text": text});
                    self.emit("response.reasoning_summary_text.done", done, events);
                    let done = json!({"item_id": id, "output_index": index, "summary_index": 0, "part": part});
                    self.emit("response.reasoning_summary_part.done", done, events);
                    summary.push(part);
                }
                let mut item = json!({"id": id, "type": "reasoning", "summary": summary});
                if let Some(carrier) = carrier {
                    item["encrypted_content"] = json!(carrier);
                }
                item
            }
            Some(Open::Message { id, text }) => {
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                let done =
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []});
                self.emit("response.output_text.done", done, events);
                let done = json!({"item_id": id, "output_index": index, "content_index": 0, "part": part});
                self.emit("response.content_part.done", done, events);
                json!({"id": id, "type": "message", "role": "assistant", "status": "completed", "content": [part]})
            }
        };
        self.emit("response.output_item.done", json!({"output_index": index, "item": item.clone()}), events);
        self.output.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::carriers::{carried, gemini_call_id};

    fn shape() -> Value {
        json!({"id": "resp_abc", "object": "response", "model": "gemini-2.5-pro", "output": []})
    }

    fn parsed(events: &[String]) -> Vec<Value> {
        events
            .iter()
            .map(|e| {
                let (head, data) = e.trim_end().split_once('\n').unwrap();
                let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(head.strip_prefix("event: ").unwrap(), data["type"].as_str().unwrap());
                data
            })
            .collect()
    }

    #[test]
    fn reasoning_text_and_a_call_stream_as_items_with_sequence_numbers() {
        let done = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = done.clone();
        let mut stream =
            ResponsesStream::new(shape(), Some(Box::new(move |r: &Value| *seen.lock().unwrap() = Some(r.clone()))));
        let first = json!({"candidates": [{"content": {"parts": [{"text": "Listing", "thought": true}]}}]});
        let second = json!({"candidates": [{"content": {"parts": [{"text": "Running ls."},
            {"functionCall": {"id": "g7", "name": "shell", "args": {"command": ["ls"]}}, "thoughtSignature": "sig"}]},
            "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 2}});
        let mut events = stream.push(format!("data: {first}\n\ndata: {second}\n\n").as_bytes());
        events.extend(stream.finish());
        let events = parsed(&events);
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        assert!(events.iter().enumerate().all(|(i, e)| e["sequence_number"] == i as u64));
        let response = &events.last().unwrap()["response"];
        assert_eq!(response["status"], "completed");
        let output = response["output"].as_array().unwrap();
        assert_eq!(output.len(), 4, "reasoning, message, the call's carrier, the call");
        assert_eq!(output[0]["summary"][0]["text"], "Listing");
        assert_eq!(output[1]["content"][0]["text"], "Running ls.");
        assert_eq!(carried(output[2]["encrypted_content"].as_str().unwrap()).as_deref(), Some("sig"));
        assert_eq!(output[3]["arguments"], "{\"command\":[\"ls\"]}");
        assert_eq!(gemini_call_id(output[3]["call_id"].as_str().unwrap()).as_deref(), Some("g7"));
        assert_eq!(response["usage"]["output_tokens"], 7);
        assert_eq!(response["usage"]["output_tokens_details"]["reasoning_tokens"], 2);
        assert_eq!(done.lock().unwrap().as_ref(), Some(response), "the final response is handed on");
    }

    #[test]
    fn whole_replies_limits_and_cut_streams() {
        let reply = json!({"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "MAX_TOKENS"}]});
        let response = whole(&reply, shape(), false);
        let two = json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "a"}}, {"functionCall": {"name": "b"}}]},
            "finishReason": "STOP"}]});
        assert_eq!(whole(&two, shape(), false)["output"].as_array().unwrap().len(), 2);
        let one = whole(&two, shape(), true);
        assert_eq!((one["output"].as_array().unwrap().len(), one["output"][0]["name"].as_str()), (1, Some("a")));
        assert_eq!(response["status"], "incomplete");
        assert_eq!(response["incomplete_details"]["reason"], "max_output_tokens");
        assert_eq!(response["output"][0]["content"][0]["text"], "Hi");
        let mut cut = ResponsesStream::new(shape(), None);
        cut.push(b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}]}}]}\n\n");
        let events = parsed(&cut.finish());
        assert_eq!(events[0]["type"], "error");
        assert_eq!(events[1]["type"], "response.failed");
        assert_eq!(events[1]["response"]["output"][0]["content"], Value::Null, "the open message never completed");
        let mut limited = ResponsesStream::new(shape(), None);
        let error = json!({"error": {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}});
        let events = parsed(&limited.push(format!("data: {error}\n\n").as_bytes()));
        assert_eq!(events.last().unwrap()["response"]["error"]["code"], "rate_limit_exceeded");
        assert!(limited.finish().is_empty(), "one terminal event");
    }
}
