//! An OpenAI Responses request → a Gemini `generateContent` body. The
//! conversation is the stored history of `previous_response_id` (items)
//! followed by `input`; `instructions` and system or developer messages
//! become the system instruction.

use crate::translate::TranslateError;
use crate::translate::carriers::{carried, gemini_call_id};
use crate::translate::request::{
    DUMMY_THOUGHT_SIGNATURE, effort_thinking, function_declaration, mime_from_name, needs_thought_signatures,
};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

type Result<T> = std::result::Result<T, TranslateError>;

/// What the Responses route needs to serve one request.
#[derive(Clone, Debug, PartialEq)]
pub struct ResponsesRequest {
    /// `stream: true`.
    pub stream: bool,
    /// Whether to keep the response for `previous_response_id` (`store`, true unless false).
    pub store: bool,
    /// `parallel_tool_calls: false`: at most one call per reply.
    pub one_call: bool,
    /// The `generateContent` body.
    pub body: Value,
}

/// `input` as items: a string is one user message.
pub fn input_items(request: &Value) -> Result<Vec<Value>> {
    match request.get("input") {
        Some(Value::String(text)) => Ok(vec![json!({"type": "message", "role": "user", "content": text})]),
        Some(Value::Array(items)) => Ok(items.clone()),
        _ => Err(TranslateError::invalid("input", "`input` must be a string or an array of items")),
    }
}

/// The response id a request continues, if any.
pub fn previous_response_id(request: &Value) -> Result<Option<&str>> {
    match request.get("previous_response_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) if !id.is_empty() && id.len() <= 128 => Ok(Some(id)),
        Some(_) => Err(TranslateError::invalid("previous_response_id", "`previous_response_id` must be a response id")),
    }
}

/// Translates a Responses request whose conversation is `items` (stored
/// history, then `input`) for the Gemini `model`.
pub fn responses_request(request: &Value, items: &[Value], model: &str) -> Result<ResponsesRequest> {
    let object =
        request.as_object().ok_or_else(|| TranslateError::invalid("", "the request body must be a JSON object"))?;
    let mut system = Vec::new();
    if let Some(instructions) = object.get("instructions").and_then(Value::as_str).filter(|t| !t.is_empty()) {
        system.push(json!({ "text": instructions }));
    }
    let contents = contents(items, &mut system, needs_thought_signatures(model))?;
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    let (declarations, names) = tools(object.get("tools"))?;
    if !declarations.is_empty() {
        body.insert("tools".into(), json!([{ "functionDeclarations": declarations }]));
    }
    if let Some(config) = tool_choice(object.get("tool_choice"), &names)? {
        body.insert("toolConfig".into(), config);
    }
    body.insert("generationConfig".into(), Value::Object(generation(object, model)?));
    let stream = match object.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => return Err(TranslateError::invalid("stream", "`stream` must be a boolean")),
    };
    let store = object.get("store").and_then(Value::as_bool) != Some(false);
    let one_call = object.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false);
    Ok(ResponsesRequest { stream, store, one_call, body: Value::Object(body) })
}

/// Items → contents, merging neighbours of one role. A reasoning item
/// carrying our signature gives it to the next model part.
fn contents(items: &[Value], system: &mut Vec<Value>, signatures_required: bool) -> Result<Vec<Value>> {
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut signature: Option<String> = None;
    let mut step_called = false;
    for (index, item) in items.iter().enumerate() {
        let at = format!("input[{index}]");
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
        let (role, mut part_list): (&'static str, Vec<Value>) = match kind {
            "message" => match item.get("role").and_then(Value::as_str).unwrap_or_default() {
                "system" | "developer" => {
                    system.extend(parts(item.get("content"), &at)?);
                    continue;
                }
                "user" => ("user", parts(item.get("content"), &at)?),
                "assistant" => ("model", parts(item.get("content"), &at)?),
                _ => {
                    return Err(TranslateError::invalid(
                        format!("{at}.role"),
                        "a message's `role` must be user, assistant, system or developer",
                    ));
                }
            },
            "reasoning" => {
                if let Some(carried) = item.get("encrypted_content").and_then(Value::as_str).and_then(carried) {
                    signature = Some(carried);
                }
                continue;
            }
            "function_call" => {
                let name = item.get("name").and_then(Value::as_str).filter(|n| !n.is_empty());
                let call_id = item.get("call_id").and_then(Value::as_str).unwrap_or_default();
                let Some(name) = name else {
                    return Err(TranslateError::invalid(format!("{at}.name"), "a function_call needs a `name`"));
                };
                let args = match item.get("arguments") {
                    None | Some(Value::Null) => json!({}),
                    Some(Value::String(text)) if text.trim().is_empty() => json!({}),
                    Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                        Ok(object @ Value::Object(_)) => object,
                        _ => {
                            return Err(TranslateError::invalid(
                                format!("{at}.arguments"),
                                "`arguments` must be a JSON object in a string",
                            ));
                        }
                    },
                    Some(_) => {
                        return Err(TranslateError::invalid(format!("{at}.arguments"), "`arguments` must be a string"));
                    }
                };
                names.insert(call_id.to_string(), name.to_string());
                let mut call = json!({"name": name, "args": args});
                if let Some(id) = gemini_call_id(call_id) {
                    call["id"] = json!(id);
                }
                let mut part = json!({ "functionCall": call });
                if !step_called && signature.is_none() && signatures_required {
                    part["thoughtSignature"] = json!(DUMMY_THOUGHT_SIGNATURE);
                }
                step_called = true;
                ("model", vec![part])
            }
            "function_call_output" => {
                let call_id = item.get("call_id").and_then(Value::as_str).unwrap_or_default();
                let name = names.get(call_id).ok_or_else(|| {
                    TranslateError::invalid(
                        format!("{at}.call_id"),
                        format!("`{call_id}` answers no function_call earlier in the conversation"),
                    )
                })?;
                let (text, media) = match item.get("output") {
                    Some(Value::String(text)) => (text.clone(), Vec::new()),
                    other => {
                        let all = parts(other, &at)?;
                        let text: Vec<&str> =
                            all.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
                        let text = text.join("\n");
                        (text, all.into_iter().filter(|p| p.get("text").is_none()).collect())
                    }
                };
                let mut response = json!({"name": name, "response": {"output": text}});
                if let Some(id) = gemini_call_id(call_id) {
                    response["id"] = json!(id);
                }
                let mut list = vec![json!({ "functionResponse": response })];
                list.extend(media);
                ("user", list)
            }
            // Built-in tools' items, references, compactions: nothing Gemini can use.
            _ => continue,
        };
        if role == "user" {
            step_called = false;
        }
        if role == "model"
            && let Some(signature) = signature.take()
            && let Some(first) = part_list.first_mut()
        {
            first["thoughtSignature"] = json!(signature);
        }
        if part_list.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((last, last_parts)) if *last == role => last_parts.append(&mut part_list),
            _ => contents.push((role, part_list)),
        }
    }
    if let Some(signature) = signature {
        match contents.last_mut() {
            Some(("model", parts)) => parts.push(json!({"text": "", "thoughtSignature": signature})),
            _ => contents.push(("model", vec![json!({"text": "", "thoughtSignature": signature})])),
        }
    }
    if contents.is_empty() {
        return Err(TranslateError::invalid("input", "`input` needs at least one message with content"));
    }
    Ok(contents.into_iter().map(|(role, parts)| json!({"role": role, "parts": parts})).collect())
}

/// A message's content (a string, or parts) as Gemini parts.
fn parts(content: Option<&Value>, at: &str) -> Result<Vec<Value>> {
    let list = match content {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) => return Ok(if text.is_empty() { Vec::new() } else { vec![json!({"text": text})] }),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(TranslateError::invalid(format!("{at}.content"), "`content` must be a string or an array"));
        }
    };
    let mut parts = Vec::new();
    for (i, part) in list.iter().enumerate() {
        let at = format!("{at}.content[{i}]");
        match part.get("type").and_then(Value::as_str).unwrap_or_default() {
            "input_text" | "output_text" | "text" | "refusal" => {
                let text = part.get("text").or_else(|| part.get("refusal")).and_then(Value::as_str).unwrap_or_default();
                if !text.is_empty() {
                    parts.push(json!({ "text": text }));
                }
            }
            "input_image" => {
                if part.get("file_id").is_some_and(|f| !f.is_null()) {
                    return Err(unsupported_file_id(&at));
                }
                let url = part.get("image_url").and_then(Value::as_str).unwrap_or_default();
                parts.push(url_part(url, "", &at)?);
            }
            "input_file" => {
                if part.get("file_id").is_some_and(|f| !f.is_null()) {
                    return Err(unsupported_file_id(&at));
                }
                let name = part.get("filename").and_then(Value::as_str).unwrap_or_default();
                match (part.get("file_data").and_then(Value::as_str), part.get("file_url").and_then(Value::as_str)) {
                    (Some(data), _) if data.starts_with("data:") => parts.push(url_part(data, name, &at)?),
                    (Some(data), _) => {
                        parts.push(json!({"inlineData": {"mimeType": mime_from_name(name), "data": data}}))
                    }
                    (None, Some(url)) => parts.push(url_part(url, name, &at)?),
                    (None, None) => {
                        return Err(TranslateError::invalid(at, "an input_file needs `file_data` or `file_url`"));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(parts)
}

fn unsupported_file_id(at: &str) -> TranslateError {
    TranslateError::invalid(at, "`file_id` is not supported here; send the file's data")
        .with_code("unsupported_parameter")
}

/// A data URL → `inlineData`; an http(s) URL → `fileData`.
fn url_part(url: &str, name: &str, at: &str) -> Result<Value> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').unwrap_or_default();
        let Some(mime) = meta.strip_suffix(";base64") else {
            return Err(TranslateError::invalid(at, "only base64 data URLs are supported (data:<mime>;base64,<data>)"));
        };
        return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        let path = if name.is_empty() { url.split(['?', '#']).next().unwrap_or(url) } else { name };
        return Ok(json!({"fileData": {"mimeType": mime_from_name(path), "fileUri": url}}));
    }
    Err(TranslateError::invalid(at, "an image or file URL must be a data: URL or an http(s) URL"))
}

/// Function tools (flat: `{type: function, name, parameters}`) → declarations;
/// built-in tools are dropped. Returns the declared names too.
fn tools(tools: Option<&Value>) -> Result<(Vec<Value>, Vec<String>)> {
    let Some(tools) = tools.filter(|t| !t.is_null()) else { return Ok((Vec::new(), Vec::new())) };
    let tools = tools.as_array().ok_or_else(|| TranslateError::invalid("tools", "`tools` must be an array"))?;
    let (mut declarations, mut names) = (Vec::new(), Vec::new());
    for (i, tool) in tools.iter().enumerate() {
        if tool.get("type").and_then(Value::as_str) != Some("function") {
            continue;
        }
        let name = tool.get("name").and_then(Value::as_str).filter(|n| !n.is_empty());
        let Some(name) = name else {
            return Err(TranslateError::invalid(format!("tools[{i}].name"), "each function tool needs a `name`"));
        };
        declarations.push(function_declaration(name, tool.get("description"), tool.get("parameters"), || {
            format!("tools[{i}].parameters")
        })?);
        names.push(name.to_string());
    }
    Ok((declarations, names))
}

fn tool_choice(choice: Option<&Value>, declared: &[String]) -> Result<Option<Value>> {
    let mode = |mode: &str| Some(json!({"functionCallingConfig": {"mode": mode}}));
    let forced = |names: Vec<&str>| -> Result<Option<Value>> {
        if let Some(missing) = names.iter().find(|name| !declared.iter().any(|d| d == *name)) {
            return Err(TranslateError::invalid(
                "tool_choice",
                format!("`{missing}` is not a function tool of this request"),
            ));
        }
        Ok(Some(json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": names}})))
    };
    match choice {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(choice)) => match choice.as_str() {
            "none" => Ok(mode("NONE")),
            "auto" => Ok(mode("AUTO")),
            "required" => Ok(mode("ANY")),
            _ => {
                Err(TranslateError::invalid("tool_choice", "`tool_choice` must be none, auto, required or a function"))
            }
        },
        Some(object) => match object.get("type").and_then(Value::as_str) {
            Some("function") => forced(vec![object.get("name").and_then(Value::as_str).unwrap_or_default()]),
            Some("allowed_tools") => {
                let names: Vec<&str> = object
                    .get("tools")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.get("name").and_then(Value::as_str))
                    .collect();
                let required = object.get("mode").and_then(Value::as_str) == Some("required");
                let mut config = forced(names)?;
                if !required && let Some(config) = config.as_mut() {
                    config["functionCallingConfig"]["mode"] = json!("AUTO");
                }
                Ok(config)
            }
            _ => Err(TranslateError::invalid("tool_choice", "a built-in tool cannot be forced on Gemini")),
        },
    }
}

fn generation(object: &Map<String, Value>, model: &str) -> Result<Map<String, Value>> {
    let mut config = Map::new();
    let number = |key: &str, max: f64| -> Result<Option<Value>> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_f64().is_some_and(|v| (0.0..=max).contains(&v)) => Ok(Some(json!(n))),
            Some(_) => Err(TranslateError::invalid(key, format!("`{key}` must be a number from 0 to {max}"))),
        }
    };
    if let Some(value) = number("temperature", 2.0)? {
        config.insert("temperature".into(), value);
    }
    if let Some(value) = number("top_p", 1.0)? {
        config.insert("topP".into(), value);
    }
    match object.get("max_output_tokens") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64().is_some_and(|v| (1..=i32::MAX as u64).contains(&v)) => {
            config.insert("maxOutputTokens".into(), json!(n));
        }
        Some(_) => {
            return Err(TranslateError::invalid("max_output_tokens", "`max_output_tokens` must be a positive integer"));
        }
    }
    let reasoning = object.get("reasoning").filter(|r| !r.is_null());
    let mut thinking = Map::new();
    match reasoning.and_then(|r| r.get("effort")).filter(|e| !e.is_null()) {
        None => {}
        Some(effort) => {
            let level = match effort.as_str() {
                Some("none" | "minimal") => "none",
                Some("low") => "low",
                Some("medium") => "medium",
                Some("high" | "xhigh" | "max") => "high",
                _ => {
                    return Err(TranslateError::invalid(
                        "reasoning.effort",
                        "`reasoning.effort` must be none, minimal, low, medium, high, xhigh or max",
                    ));
                }
            };
            let (field, value) = effort_thinking(level, model);
            thinking.insert(field.into(), value);
        }
    }
    if reasoning.and_then(|r| r.get("summary")).is_some_and(|s| !s.is_null()) {
        thinking.insert("includeThoughts".into(), json!(true));
    }
    if !thinking.is_empty() {
        config.insert("thinkingConfig".into(), Value::Object(thinking));
    }
    match object.get("text").and_then(|t| t.get("format")).filter(|f| !f.is_null()) {
        None => {}
        Some(format) => match format.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object") => {
                config.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                let schema = format.get("schema").filter(|s| s.is_object()).ok_or_else(|| {
                    TranslateError::invalid("text.format.schema", "a json_schema format needs a `schema` object")
                })?;
                config.insert("responseMimeType".into(), json!("application/json"));
                config.insert("responseJsonSchema".into(), schema.clone());
            }
            _ => {
                return Err(TranslateError::invalid(
                    "text.format.type",
                    "`text.format.type` must be text, json_object or json_schema",
                ));
            }
        },
    }
    Ok(config)
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
