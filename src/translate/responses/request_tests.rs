use super::*;
use crate::translate::carriers::{call_id, carrier};

fn translate(request: Value, model: &str) -> Value {
    let items = input_items(&request).unwrap();
    responses_request(&request, &items, model).unwrap().body
}

#[test]
fn instructions_messages_and_settings() {
    let body = translate(
        json!({
            "model": "gpt-5-codex", "instructions": "You are Codex.", "max_output_tokens": 500,
            "reasoning": {"effort": "high", "summary": "auto"}, "store": false, "prompt_cache_key": "x",
            "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}}},
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "<env/>"}]},
                {"role": "user", "content": [{"type": "input_text", "text": "fix it"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBOR"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Done."}]}
            ]
        }),
        "gemini-2.5-pro",
    );
    assert_eq!(body["systemInstruction"]["parts"], json!([{"text": "You are Codex."}, {"text": "<env/>"}]));
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "fix it"}, {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}}]},
            {"role": "model", "parts": [{"text": "Done."}]}
        ])
    );
    let config = &body["generationConfig"];
    assert_eq!(config["maxOutputTokens"], 500);
    assert_eq!(config["thinkingConfig"], json!({"thinkingBudget": 24576, "includeThoughts": true}));
    assert_eq!(config["responseMimeType"], "application/json");
    assert_eq!(
        translate(json!({"input": "hi"}), "m")["contents"],
        json!([{"role": "user", "parts": [{"text": "hi"}]}])
    );
}

#[test]
fn calls_outputs_and_signatures_round_trip() {
    let id = call_id("call", Some("g1"));
    let body = translate(
        json!({
            "tools": [{"type": "function", "name": "shell", "parameters": {"type": "object",
                "properties": {"command": {"type": "array", "items": {"type": "string"}}}}, "strict": false},
                {"type": "web_search"}],
            "tool_choice": {"type": "function", "name": "shell"},
            "input": [
                {"role": "user", "content": "list"},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": carrier("sig-1")},
                {"type": "function_call", "call_id": id, "name": "shell", "arguments": "{\"command\":[\"ls\"]}"},
                {"type": "function_call_output", "call_id": id, "output": "Cargo.toml"}
            ]
        }),
        "gemini-3-pro-preview",
    );
    assert_eq!(body["tools"][0]["functionDeclarations"].as_array().unwrap().len(), 1, "built-ins dropped");
    assert_eq!(body["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"], json!(["shell"]));
    assert_eq!(
        body["contents"][1]["parts"][0],
        json!({"functionCall": {"id": "g1", "name": "shell", "args": {"command": ["ls"]}}, "thoughtSignature": "sig-1"})
    );
    assert_eq!(
        body["contents"][2]["parts"][0],
        json!({"functionResponse": {"id": "g1", "name": "shell", "response": {"output": "Cargo.toml"}}})
    );
    let unsigned = translate(
        json!({"input": [{"role": "user", "content": "x"},
            {"type": "function_call", "call_id": "call_1", "name": "a", "arguments": "{}"}]}),
        "gemini-3-pro-preview",
    );
    assert_eq!(unsigned["contents"][1]["parts"][0]["thoughtSignature"], DUMMY_THOUGHT_SIGNATURE);
}

#[test]
fn bad_requests_name_the_parameter() {
    let error = |request: Value| {
        let items = input_items(&request).map_err(|e| e.param.unwrap_or_default())?;
        responses_request(&request, &items, "m").map(|_| ()).map_err(|e| e.param.unwrap_or_default())
    };
    assert_eq!(error(json!({"input": 5})), Err("input".into()));
    assert_eq!(error(json!({"input": []})), Err("input".into()));
    assert_eq!(
        error(json!({"input": [{"type": "function_call_output", "call_id": "call_x", "output": "?"}]})),
        Err("input[0].call_id".into())
    );
    assert_eq!(
        error(json!({"input": [{"type": "function_call", "call_id": "c", "name": "a", "arguments": "not json"}]})),
        Err("input[0].arguments".into())
    );
    assert_eq!(
        error(json!({"input": "hi", "tool_choice": {"type": "function", "name": "nope"}})),
        Err("tool_choice".into())
    );
    assert_eq!(error(json!({"input": "hi", "reasoning": {"effort": "huge"}})), Err("reasoning.effort".into()));
    assert_eq!(
        previous_response_id(&json!({"previous_response_id": 3})).unwrap_err().param.as_deref(),
        Some("previous_response_id")
    );
}
