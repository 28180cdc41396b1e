use super::*;
use crate::translate::tool_ids::tool_call_id;

fn translate(request: Value) -> Value {
    chat_request(&request).unwrap().body
}

fn error_param(request: Value) -> String {
    chat_request(&request).unwrap_err().param.unwrap_or_default()
}

#[test]
fn system_and_developer_become_the_system_instruction_and_roles_map() {
    let body = translate(json!({"model": "models/gemini-2.5-flash", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Salut"},
        {"role": "user", "content": "Again"},
        {"role": "user", "content": "and again"}
    ]}));
    assert_eq!(body["systemInstruction"], json!({"parts": [{"text": "Be brief."}, {"text": "Use French."}]}));
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Salut"}]},
            {"role": "user", "parts": [{"text": "Again"}, {"text": "and again"}]}
        ])
    );
    assert_eq!(
        chat_request(&json!({"model": "models/x", "messages": [{"role": "user", "content": "a"}]})).unwrap().model,
        "x"
    );
}

#[test]
fn images_audio_and_files() {
    let body = translate(json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp?x=1"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}}
    ]}]}));
    let parts = &body["contents"][0]["parts"];
    assert_eq!(parts[1], json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}));
    assert_eq!(
        parts[2],
        json!({"fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/cat.webp?x=1"}})
    );
    assert_eq!(parts[3], json!({"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}}));
    assert_eq!(parts[4], json!({"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}));
    assert_eq!(
        error_param(
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}]})
        ),
        "messages[0].content[0]"
    );
    let file_id = chat_request(
        &json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f1"}}]}]}),
    );
    assert_eq!(file_id.unwrap_err().code, Some("unsupported_parameter"));
}

#[test]
fn tool_round_trip_keeps_names_and_thought_signatures() {
    let id = tool_call_id(None, Some("SIG=="));
    let body = translate(json!({"model": "m", "messages": [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": id, "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"},
             "extra_content": {"google": {"thought_signature": "OTHER"}}}
        ]},
        {"role": "tool", "tool_call_id": id, "content": "{\"temp\": 21}"},
        {"role": "tool", "tool_call_id": "call_2", "content": "sunny"}
    ]}));
    let contents = body["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 3, "consecutive tool messages share one user turn");
    assert_eq!(
        contents[1]["parts"][0],
        json!({"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "SIG=="})
    );
    assert_eq!(contents[1]["parts"][1]["thoughtSignature"], "OTHER");
    assert_eq!(contents[2]["role"], "user");
    assert_eq!(contents[2]["parts"][0], json!({"functionResponse": {"name": "get_weather", "response": {"temp": 21}}}));
    assert_eq!(
        contents[2]["parts"][1],
        json!({"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}})
    );
    assert_eq!(
        error_param(json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]})),
        "messages[0].tool_call_id"
    );
    assert_eq!(
        error_param(
            json!({"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{oops"}}]}]})
        ),
        "messages[0].tool_calls[0].function.arguments"
    );
}

#[test]
fn tools_and_tool_choice() {
    let body = translate(json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "Look up",
            "parameters": {"type": "object", "additionalProperties": false, "properties": {"q": {"type": "string"}}, "required": ["q"]},
            "strict": true}},
            {"type": "function", "function": {"name": "noop", "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}}, "parallel_tool_calls": false}));
    assert_eq!(
        body["tools"],
        json!([{"functionDeclarations": [
            {"name": "lookup", "description": "Look up", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}},
            {"name": "noop"}
        ]}])
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}})
    );
    for (choice, mode) in [("none", "NONE"), ("auto", "AUTO"), ("required", "ANY")] {
        let body =
            translate(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": choice}));
        assert_eq!(body["toolConfig"]["functionCallingConfig"]["mode"], mode);
    }
    assert_eq!(
        error_param(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"})),
        "tool_choice"
    );
}

#[test]
fn parameters_map_and_bad_ones_are_named() {
    let body = translate(json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "x"}],
        "temperature": 0.5, "top_p": 0.9, "max_tokens": 100, "max_completion_tokens": 200, "stop": ["END"],
        "n": 2, "seed": 7, "presence_penalty": 0.1, "frequency_penalty": 0.2, "user": "u1", "logit_bias": {},
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": true}},
        "reasoning_effort": "low"}));
    assert_eq!(
        body["generationConfig"],
        json!({
            "temperature": 0.5, "topP": 0.9, "maxOutputTokens": 200, "stopSequences": ["END"], "candidateCount": 2,
            "seed": 7, "presencePenalty": 0.1, "frequencyPenalty": 0.2, "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object"}, "thinkingConfig": {"thinkingBudget": 1024}
        })
    );
    let base = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    let with = |key: &str, value: Value| {
        let mut request = base.clone();
        request[key] = value;
        error_param(request)
    };
    assert_eq!(with("temperature", json!("hot")), "temperature");
    assert_eq!(with("temperature", json!(3)), "temperature");
    assert_eq!(with("max_tokens", json!(0)), "max_tokens");
    assert_eq!(with("stop", json!(["a", "b", "c", "d", "e", "f"])), "stop");
    assert_eq!(with("response_format", json!({"type": "yaml"})), "response_format.type");
    assert_eq!(with("reasoning_effort", json!("extreme")), "reasoning_effort");
    assert_eq!(with("stream", json!("yes")), "stream");
    assert_eq!(error_param(json!({"messages": []})), "model");
    assert_eq!(error_param(json!({"model": "m", "messages": []})), "messages");
    assert_eq!(error_param(json!({"model": "m", "messages": [{"content": "x"}]})), "messages[0].role");
    assert_eq!(error_param(json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]})), "messages[0].role");
}

#[test]
fn reasoning_effort_by_model_family_and_google_thinking_config_wins() {
    let config = |model: &str, extra: Value| {
        let mut request = json!({"model": model, "messages": [{"role": "user", "content": "x"}]});
        for (k, v) in extra.as_object().unwrap() {
            request[k] = v.clone();
        }
        translate(request)["generationConfig"]["thinkingConfig"].clone()
    };
    assert_eq!(config("gemini-2.5-pro", json!({"reasoning_effort": "high"})), json!({"thinkingBudget": 24576}));
    assert_eq!(config("gemini-2.5-flash", json!({"reasoning_effort": "none"})), json!({"thinkingBudget": 0}));
    assert_eq!(config("gemini-2.5-pro", json!({"reasoning_effort": "none"})), json!({"thinkingBudget": 128}));
    assert_eq!(config("gemini-3-pro-preview", json!({"reasoning_effort": "medium"})), json!({"thinkingLevel": "high"}));
    assert_eq!(config("gemini-3-flash", json!({"reasoning_effort": "minimal"})), json!({"thinkingLevel": "minimal"}));
    let google = json!({"reasoning_effort": "low", "google": {"thinking_config": {"thinking_budget": 99, "include_thoughts": true}}});
    assert_eq!(config("gemini-2.5-flash", google), json!({"thinkingBudget": 99, "includeThoughts": true}));
    let nested =
        json!({"reasoning_effort": "high", "extra_body": {"google": {"thinking_config": {"thinking_level": "low"}}}});
    assert_eq!(
        config("gemini-3-pro-preview", nested),
        json!({"thinkingLevel": "low"}),
        "never budget and level together"
    );
}

#[test]
fn stream_flags() {
    let request = chat_request(&json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "stream": true, "stream_options": {"include_usage": true}}))
    .unwrap();
    assert!(request.stream && request.include_usage);
}
