//! Translation cost per typical request (goal: under 20 µs), with criterion.
//! Run: `cargo bench --bench translate`

use criterion::{Criterion, criterion_group, criterion_main};
use gemgate::translate::request::chat_request;
use gemgate::translate::response::chat_completion;
use gemgate::translate::stream::ChatStream;
use serde_json::{Value, json};
use std::hint::black_box;

fn typical_request() -> Value {
    json!({
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. Answer briefly and cite sources."},
            {"role": "user", "content": "What is the weather in Paris today? Also suggest what to wear."},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_abc__sig__c2lnbmF0dXJl", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"c\"}"}}]},
            {"role": "tool", "tool_call_id": "call_abc__sig__c2lnbmF0dXJl", "content": "{\"temp\":21,\"sky\":\"clear\"}"},
            {"role": "user", "content": [{"type": "text", "text": "Thanks! And tomorrow?"}]}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "additionalProperties": false,
                "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"], "enum": ["c", "f"]}},
                "required": ["city"]}}}],
        "temperature": 0.7, "max_tokens": 512, "stream": true, "stream_options": {"include_usage": true}
    })
}

fn typical_reply() -> Value {
    json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Tomorrow in Paris: 19 °C and clear skies. A light jacket is enough in the evening; sunglasses for the afternoon."}]},
        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 30, "totalTokenCount": 150},
        "modelVersion": "gemini-2.5-flash", "responseId": "abc123"})
}

fn translation(c: &mut Criterion) {
    let request = typical_request();
    let body = serde_json::to_vec(&request).unwrap_or_default();
    c.bench_function("request: parse + translate + serialize", |b| {
        b.iter(|| {
            let parsed: Value = serde_json::from_slice(black_box(&body)).unwrap_or_default();
            let chat = chat_request(&parsed).ok();
            black_box(chat.map(|c| c.body.to_string()))
        })
    });
    let reply = serde_json::to_vec(&typical_reply()).unwrap_or_default();
    c.bench_function("reply: parse + translate + serialize", |b| {
        b.iter(|| {
            let parsed: Value = serde_json::from_slice(black_box(&reply)).unwrap_or_default();
            black_box(chat_completion(&parsed, "gemini-2.5-flash").ok().map(|v| v.to_string()))
        })
    });
    let event = format!("data: {}\r\n\r\n", typical_reply());
    c.bench_function("stream: one SSE event to chunks", |b| {
        b.iter(|| {
            let mut stream = ChatStream::new("gemini-2.5-flash", true);
            black_box(stream.push(black_box(event.as_bytes())))
        })
    });
}

criterion_group!(benches, translation);
criterion_main!(benches);
