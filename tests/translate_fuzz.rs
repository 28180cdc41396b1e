//! Property tests: arbitrary JSON (and JSON shaped like chat, Messages and
//! Responses requests) fed to the translators returns a value or a typed
//! error, never panics, and the agent dialects' Gemini bodies stay within a
//! bounded multiple of what the client sent.

use gemgate::translate::embeddings::embeddings_request;
use gemgate::translate::messages::request::{count_tokens_request, messages_request};
use gemgate::translate::messages::response::message;
use gemgate::translate::messages::stream::MessagesStream;
use gemgate::translate::request::chat_request;
use gemgate::translate::response::chat_completion;
use gemgate::translate::responses::request::{input_items, responses_request};
use gemgate::translate::responses::stream::{ResponsesStream, whole};
use gemgate::translate::stream::ChatStream;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| json!(f)),
        "[a-z_]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "user",
            "assistant",
            "tool",
            "system",
            "text",
            "image_url",
            "function",
            "data:image/png;base64,AA",
            "{\"a\":1}",
            "tool_use",
            "tool_result",
            "thinking",
            "image",
            "base64",
            "function_call",
            "function_call_output",
            "reasoning",
            "message",
            "input_text",
            "enabled",
            "gg1.c2ln",
            "toolu_g_x",
            "call_g_x"
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Keys that the translators look at, so random objects reach deep code.
fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "model",
        "messages",
        "role",
        "content",
        "type",
        "text",
        "image_url",
        "url",
        "tool_calls",
        "function",
        "name",
        "arguments",
        "id",
        "tool_call_id",
        "tools",
        "parameters",
        "properties",
        "items",
        "$ref",
        "$defs",
        "required",
        "tool_choice",
        "response_format",
        "json_schema",
        "schema",
        "stop",
        "temperature",
        "max_tokens",
        "n",
        "reasoning_effort",
        "google",
        "thinking_config",
        "stream",
        "stream_options",
        "input",
        "dimensions",
        "candidates",
        "parts",
        "functionCall",
        "args",
        "thoughtSignature",
        "finishReason",
        "usageMetadata",
        "promptFeedback",
        "blockReason",
        "input_audio",
        "file",
        "file_data",
        "anyOf",
        "const",
        "system",
        "source",
        "media_type",
        "data",
        "tool_use_id",
        "is_error",
        "signature",
        "thinking",
        "budget_tokens",
        "input_schema",
        "output_config",
        "effort",
        "instructions",
        "call_id",
        "output",
        "encrypted_content",
        "reasoning",
        "summary",
        "format",
        "max_output_tokens",
        "thought",
    ])
    .prop_map(String::from)
}

fn chat_shaped() -> impl Strategy<Value = Value> {
    (any_json(), prop::collection::vec(any_json(), 0..5), any_json()).prop_map(|(model, messages, extra)| {
        let mut request = json!({"model": model, "messages": messages});
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                request[k] = v;
            }
        }
        request
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn chat_request_never_panics(request in prop_oneof![any_json(), chat_shaped()]) {
        let _ = chat_request(&request);
    }

    #[test]
    fn embeddings_request_never_panics(request in any_json()) {
        let _ = embeddings_request(&request);
    }

    #[test]
    fn reply_translation_never_panics(reply in any_json()) {
        let _ = chat_completion(&reply, "m");
        let mut stream = ChatStream::new("m", true);
        let _ = stream.push(format!("data: {reply}\n\n").as_bytes());
        let _ = stream.finish();
    }

    #[test]
    fn messages_translation_never_panics_and_stays_bounded(request in prop_oneof![any_json(), chat_shaped()]) {
        let mut request = request;
        if let Value::Object(object) = &mut request {
            object.insert("max_tokens".into(), json!(100));
        }
        for model in ["gemini-2.5-flash", "gemini-3-pro-preview"] {
            if let Ok(translated) = messages_request(&request, model) {
                prop_assert!(translated.body.to_string().len() <= bound(&request));
            }
            if let Ok(body) = count_tokens_request(&request, model) {
                prop_assert!(body.to_string().len() <= bound(&request));
            }
        }
    }

    #[test]
    fn responses_translation_never_panics_and_stays_bounded(request in any_json(), items in prop::collection::vec(any_json(), 0..5)) {
        let mut request = request;
        if let Value::Object(object) = &mut request {
            object.insert("input".into(), Value::Array(items));
        }
        if let Ok(items) = input_items(&request) {
            for model in ["gemini-2.5-flash", "gemini-3-pro-preview"] {
                if let Ok(translated) = responses_request(&request, &items, model) {
                    prop_assert!(translated.body.to_string().len() <= bound(&request));
                }
            }
        }
    }

    #[test]
    fn agent_reply_translation_never_panics(reply in any_json()) {
        let _ = message(&reply, "m", true);
        let mut stream = MessagesStream::new("m");
        let _ = stream.push(format!("data: {reply}\n\n").as_bytes());
        let _ = stream.finish();
        let _ = whole(&reply, json!({"id": "resp_x"}), true);
        let mut stream = ResponsesStream::new(json!({"id": "resp_x"}), None);
        let _ = stream.push(format!("data: {reply}\n\n").as_bytes());
        let _ = stream.finish();
    }

    #[test]
    fn stream_translation_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut stream = ChatStream::new("m", false);
        let _ = stream.push(&bytes);
        let _ = stream.push(b"\n\n");
        let mut messages = MessagesStream::new("m");
        let _ = messages.push(&bytes);
        let _ = messages.push(b"\n\n");
        let mut responses = ResponsesStream::new(json!({}), None);
        let _ = responses.push(&bytes);
        let _ = responses.push(b"\n\n");
    }
}

/// What a translated body may grow to: a few times the request (schemas are
/// bounded by their cleaner; signatures and wrappers add a little), plus slack.
fn bound(request: &Value) -> usize {
    request.to_string().len() * 4 + 4_096
}
