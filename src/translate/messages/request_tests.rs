use super::*;
use crate::translate::messages::{carrier, tool_use_id};

fn translate(request: Value) -> Value {
    messages_request(&request, "gemini-2.5-flash").unwrap().body
}

#[test]
fn system_messages_images_and_sampling() {
    let body = translate(json!({
        "model": "claude-sonnet-4-5", "max_tokens": 1000, "temperature": 0.5, "top_k": 40,
        "stop_sequences": ["a", "b", "c", "d", "e", "f"],
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1; cch=1;"},
                   {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "metadata": {"user_id": "u1"},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}]},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": "Sure."},
            {"role": "system", "content": "Be brief."}
        ]
    }));
    assert_eq!(body["systemInstruction"], json!({"parts": [{"text": "You are Claude Code."}]}), "no billing line");
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Look"}, {"inlineData": {"mimeType": "image/png", "data": "iVBOR"}},
                {"text": "again"}]},
            {"role": "model", "parts": [{"text": "Sure."}]},
            {"role": "user", "parts": [{"text": "<system-reminder>Be brief.</system-reminder>"}]}
        ])
    );
    let config = &body["generationConfig"];
    assert_eq!(config["maxOutputTokens"], 1000);
    assert_eq!(config["temperature"], 0.5);
    assert_eq!(config["topK"], 40);
    assert_eq!(config["stopSequences"].as_array().unwrap().len(), 5, "cut to Gemini's five");
    assert_eq!(config["thinkingConfig"], json!({"thinkingBudget": 0}), "no thinking asked: the least");
    assert!(body.get("metadata").is_none() && body.get("model").is_none());
}

#[test]
fn tools_calls_results_and_signatures_round_trip() {
    let call_id = tool_use_id(Some("g1"));
    let body = messages_request(
        &json!({
            "model": "m", "max_tokens": 100,
            "tools": [
                {"name": "Read", "description": "Reads", "input_schema": {"type": "object",
                    "properties": {"file_path": {"type": "string"}}, "required": ["file_path"], "additionalProperties": false}},
                {"name": "Empty", "input_schema": {"type": "object", "properties": {}}},
                {"type": "web_search_20250305", "name": "web_search"}],
            "tool_choice": {"type": "tool", "name": "Read"},
            "messages": [
                {"role": "user", "content": "read it"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "I should read.", "signature": carrier("sig-1")},
                    {"type": "tool_use", "id": call_id, "name": "Read", "input": {"file_path": "/a"}},
                    {"type": "tool_use", "id": "toolu_other", "name": "Empty", "input": {}},
                    {"type": "thinking", "thinking": "", "signature": carrier("sig-2")}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": call_id, "content": [{"type": "text", "text": "fn main"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}]},
                    {"type": "tool_result", "tool_use_id": "toolu_other", "content": "no", "is_error": true}]}
            ]
        }),
        "gemini-3-pro-preview",
    )
    .unwrap()
    .body;
    let declarations = &body["tools"][0]["functionDeclarations"];
    assert_eq!(declarations.as_array().unwrap().len(), 2, "the server tool is dropped");
    assert_eq!(declarations[0]["parameters"]["required"], json!(["file_path"]));
    assert!(declarations[0]["parameters"].get("additionalProperties").is_none(), "cleaned for Gemini");
    assert!(declarations[1].get("parameters").is_none(), "no properties: no parameters");
    assert_eq!(body["toolConfig"], json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["Read"]}}));
    let model = &body["contents"][1]["parts"];
    assert_eq!(
        model[0],
        json!({"functionCall": {"id": "g1", "name": "Read", "args": {"file_path": "/a"}}, "thoughtSignature": "sig-1"})
    );
    assert_eq!(model[1], json!({"functionCall": {"name": "Empty", "args": {}}}), "a foreign id goes back without one");
    assert_eq!(model[2], json!({"text": "", "thoughtSignature": "sig-2"}), "a trailing signature on an empty part");
    let results = &body["contents"][2]["parts"];
    assert_eq!(
        results[0],
        json!({"functionResponse": {"id": "g1", "name": "Read", "response": {"output": "fn main"}}})
    );
    assert_eq!(results[1], json!({"inlineData": {"mimeType": "image/png", "data": "AA"}}));
    assert_eq!(results[2], json!({"functionResponse": {"name": "Empty", "response": {"error": "no"}}}));
}

#[test]
fn a_call_never_signed_gets_googles_stand_in_on_gemini_3() {
    let request = json!({"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01A", "name": "a", "input": {}},
            {"type": "tool_use", "id": "toolu_01B", "name": "b", "input": {}}]}]});
    let body = messages_request(&request, "gemini-3-flash-preview").unwrap().body;
    let parts = &body["contents"][1]["parts"];
    assert_eq!(parts[0]["thoughtSignature"], DUMMY_THOUGHT_SIGNATURE);
    assert!(parts[1].get("thoughtSignature").is_none(), "only the step's first call");
    let older = messages_request(&request, "gemini-2.5-flash").unwrap().body;
    assert!(older["contents"][1]["parts"][0].get("thoughtSignature").is_none());
}

#[test]
fn thinking_and_effort_map_to_budgets_and_levels() {
    let with = |thinking: Value, model: &str| {
        let request = json!({"model": "m", "max_tokens": 20000, "thinking": thinking,
            "messages": [{"role": "user", "content": "hi"}]});
        messages_request(&request, model).unwrap().body["generationConfig"]["thinkingConfig"].clone()
    };
    assert_eq!(
        with(json!({"type": "enabled", "budget_tokens": 5000}), "gemini-2.5-pro"),
        json!({"thinkingBudget": 5000, "includeThoughts": true})
    );
    assert_eq!(
        with(json!({"type": "enabled", "budget_tokens": 5000}), "gemini-3-pro-preview"),
        json!({"thinkingLevel": "high", "includeThoughts": true}),
        "medium is Flash's only"
    );
    assert_eq!(
        with(json!({"type": "enabled", "budget_tokens": 1024, "display": "omitted"}), "gemini-3-flash-preview"),
        json!({"thinkingLevel": "low"})
    );
    assert_eq!(
        with(json!({"type": "adaptive"}), "gemini-2.5-flash"),
        json!({"thinkingBudget": -1, "includeThoughts": true})
    );
    assert_eq!(with(json!({"type": "disabled"}), "gemini-2.5-pro"), json!({"thinkingBudget": 128}));
    let effort = json!({"model": "m", "max_tokens": 10, "output_config": {"effort": "max",
        "format": {"type": "json_schema", "schema": {"type": "object"}}}, "messages": [{"role": "user", "content": "hi"}]});
    let config = &messages_request(&effort, "gemini-3-flash-preview").unwrap().body["generationConfig"];
    assert_eq!(config["thinkingConfig"], json!({"thinkingLevel": "high"}));
    assert_eq!(config["responseMimeType"], "application/json");
}

#[test]
fn bad_requests_name_the_field() {
    let error = |request: Value| messages_request(&request, "gemini-2.5-flash").unwrap_err().param.unwrap_or_default();
    let hi = json!([{"role": "user", "content": "hi"}]);
    assert_eq!(error(json!({"model": "m", "messages": hi})), "max_tokens");
    assert_eq!(error(json!({"model": "m", "max_tokens": 5, "messages": []})), "messages");
    assert_eq!(
        error(json!({"model": "m", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]})),
        "messages.0.role"
    );
    assert_eq!(
        error(json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_x", "content": "?"}]}]})),
        "messages.0.content.0.tool_use_id"
    );
    assert_eq!(
        error(
            json!({"model": "m", "max_tokens": 5, "messages": hi, "tools": [{"type": "bash_20250124", "name": "bash"}],
            "tool_choice": {"type": "tool", "name": "bash"}})
        ),
        "tool_choice.name"
    );
    assert_eq!(error(json!({"model": "m", "max_tokens": 5, "messages": hi, "temperature": 1.5})), "temperature");
    assert_eq!(
        error(json!({"model": "m", "max_tokens": 5, "messages": hi, "thinking": {"type": "enabled"}})),
        "thinking.budget_tokens"
    );
}

#[test]
fn count_tokens_wraps_the_conversation() {
    let body = count_tokens_request(
        &json!({"model": "claude-haiku-4-5", "system": "Be brief.", "messages": [{"role": "user", "content": "hi"}]}),
        "gemini-2.5-flash",
    )
    .unwrap();
    assert_eq!(body["generateContentRequest"]["model"], "models/gemini-2.5-flash");
    assert_eq!(body["generateContentRequest"]["contents"][0]["parts"][0]["text"], "hi");
    assert_eq!(body["generateContentRequest"]["systemInstruction"]["parts"][0]["text"], "Be brief.");
}
