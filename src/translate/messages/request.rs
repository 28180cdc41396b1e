//! An Anthropic Messages request → a Gemini `generateContent` body (and a
//! `count_tokens` body → a `countTokens` body). Fields Gemini has no use
//! for (`cache_control`, `metadata`, betas' additions) are dropped, never
//! forwarded; what cannot be translated is a 400 naming the field.

use super::{carried, gemini_call_id};
use crate::translate::TranslateError;
use crate::translate::request::{
    DUMMY_THOUGHT_SIGNATURE, effort_thinking, function_declaration, mime_from_name, needs_thought_signatures,
};
use serde_json::{Map, Value, json};
use std::collections::{HashMap, HashSet};

type Result<T> = std::result::Result<T, TranslateError>;

/// Gemini takes at most this many stop sequences; more are cut (Claude
/// clients send few, and refusing the request would stop an agent).
const MAX_STOP_SEQUENCES: usize = 5;

/// What the Messages route needs to serve one request.
#[derive(Clone, Debug, PartialEq)]
pub struct MessagesRequest {
    /// `stream: true`.
    pub stream: bool,
    /// `tool_choice.disable_parallel_tool_use`: at most one call per reply.
    pub one_call: bool,
    /// The `generateContent` body.
    pub body: Value,
}

/// Translates a Messages request for the Gemini `model`.
pub fn messages_request(request: &Value, model: &str) -> Result<MessagesRequest> {
    let object = as_object(request)?;
    let max_tokens = match object.get("max_tokens") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|v| (1..=i32::MAX as u64).contains(&v)) => n.as_u64(),
        _ => return Err(TranslateError::invalid("max_tokens", "max_tokens: a positive integer is required")),
    };
    let mut body = conversation(object, model)?;
    let mut generation = Map::new();
    generation.insert("maxOutputTokens".into(), json!(max_tokens));
    if let Some(value) = number(object, "temperature", 0.0..=1.0)? {
        generation.insert("temperature".into(), value);
    }
    if let Some(value) = number(object, "top_p", 0.0..=1.0)? {
        generation.insert("topP".into(), value);
    }
    match object.get("top_k") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v >= 1) => {
            generation.insert("topK".into(), Value::Number(n.clone()));
        }
        Some(_) => return Err(TranslateError::invalid("top_k", "top_k: must be a positive integer")),
    }
    match object.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => {
            if !list.is_empty() {
                let kept: Vec<Value> = list.iter().take(MAX_STOP_SEQUENCES).cloned().collect();
                generation.insert("stopSequences".into(), Value::Array(kept));
            }
        }
        Some(_) => {
            return Err(TranslateError::invalid("stop_sequences", "stop_sequences: must be an array of strings"));
        }
    }
    if let Some(thinking) = thinking_config(object, model)? {
        generation.insert("thinkingConfig".into(), thinking);
    }
    if let Some(format) = object.get("output_config").and_then(|c| c.get("format")).filter(|f| !f.is_null()) {
        let schema = match format.get("type").and_then(Value::as_str) {
            Some("json_schema") => format.get("schema").filter(|s| s.is_object()),
            _ => None,
        };
        let schema = schema.ok_or_else(|| {
            TranslateError::invalid(
                "output_config.format",
                "output_config.format: expected a json_schema with a schema",
            )
        })?;
        generation.insert("responseMimeType".into(), json!("application/json"));
        generation.insert("responseJsonSchema".into(), schema.clone());
    }
    body.insert("generationConfig".into(), Value::Object(generation));
    let stream = match object.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => return Err(TranslateError::invalid("stream", "stream: must be a boolean")),
    };
    let one_call = object.get("tool_choice").and_then(|c| c.get("disable_parallel_tool_use")).and_then(Value::as_bool)
        == Some(true);
    Ok(MessagesRequest { stream, one_call, body: Value::Object(body) })
}

/// Translates a `count_tokens` body for the Gemini `model` into a
/// `countTokens` body.
pub fn count_tokens_request(request: &Value, model: &str) -> Result<Value> {
    let mut inner = conversation(as_object(request)?, model)?;
    inner.insert("model".into(), json!(format!("models/{model}")));
    Ok(json!({ "generateContentRequest": inner }))
}

fn as_object(request: &Value) -> Result<&Map<String, Value>> {
    request.as_object().ok_or_else(|| TranslateError::invalid("", "the request body must be a JSON object"))
}

/// The conversation: contents, system instruction, tools and tool choice.
fn conversation(object: &Map<String, Value>, model: &str) -> Result<Map<String, Value>> {
    let messages = match object.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => messages,
        _ => return Err(TranslateError::invalid("messages", "messages: a non-empty array is required")),
    };
    let mut body = Map::new();
    let system = system_parts(object.get("system"))?;
    body.insert("contents".into(), Value::Array(contents(messages, needs_thought_signatures(model))?));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    let (tools, dropped) = tools(object.get("tools"))?;
    if let Some(tools) = tools {
        body.insert("tools".into(), tools);
    }
    if let Some(config) = tool_choice(object.get("tool_choice"), &dropped)? {
        body.insert("toolConfig".into(), config);
    }
    Ok(body)
}

/// `system`: a string or text blocks, without Claude Code's per-request
/// billing line (it would defeat Gemini's implicit prefix cache).
fn system_parts(system: Option<&Value>) -> Result<Vec<Value>> {
    let texts: Vec<&str> = match system {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(blocks)) => blocks
            .iter()
            .enumerate()
            .map(|(i, block)| {
                block.get("text").and_then(Value::as_str).ok_or_else(|| {
                    TranslateError::invalid(format!("system.{i}"), "system: each block must be a text block")
                })
            })
            .collect::<Result<_>>()?,
        Some(_) => {
            return Err(TranslateError::invalid("system", "system: must be a string or an array of text blocks"));
        }
    };
    Ok(texts
        .into_iter()
        .filter(|text| !text.is_empty() && !text.starts_with("x-anthropic-billing-header:"))
        .map(|text| json!({ "text": text }))
        .collect())
}

/// A system text in the middle of the conversation, as a user turn can hold it.
fn reminder(text: &str) -> Value {
    json!({ "text": format!("<system-reminder>{text}</system-reminder>") })
}

/// Messages → contents, merging neighbours of one role.
fn contents(messages: &[Value], signatures_required: bool) -> Result<Vec<Value>> {
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // Each tool_use id's function name, for the results that answer it.
    let mut calls: HashMap<String, String> = HashMap::new();
    for (index, message) in messages.iter().enumerate() {
        let param = format!("messages.{index}");
        let role = message.get("role").and_then(Value::as_str).unwrap_or_default();
        let (role, parts) = match role {
            "user" => ("user", user_parts(message.get("content"), &param, &calls)?),
            "system" => ("user", texts(message.get("content"), &param)?.iter().map(|t| reminder(t)).collect()),
            "assistant" => ("model", model_parts(message.get("content"), &param, &mut calls, signatures_required)?),
            _ => {
                return Err(TranslateError::invalid(
                    format!("{param}.role"),
                    format!("{param}.role: expected user or assistant"),
                ));
            }
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((last, last_parts)) if *last == role => last_parts.extend(parts),
            _ => contents.push((role, parts)),
        }
    }
    if contents.is_empty() {
        return Err(TranslateError::invalid("messages", "messages: at least one message must have content"));
    }
    Ok(contents.into_iter().map(|(role, parts)| json!({"role": role, "parts": parts})).collect())
}

/// A message's content as blocks (a string is one text block).
fn blocks<'a>(content: Option<&'a Value>, param: &str) -> Result<Vec<std::borrow::Cow<'a, Value>>> {
    use std::borrow::Cow;
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![Cow::Owned(json!({"type": "text", "text": text}))]),
        Some(Value::Array(blocks)) => Ok(blocks.iter().map(Cow::Borrowed).collect()),
        Some(_) => Err(TranslateError::invalid(
            format!("{param}.content"),
            format!("{param}.content: must be a string or an array of content blocks"),
        )),
    }
}

/// The texts of a content (for system messages and blocks).
fn texts(content: Option<&Value>, param: &str) -> Result<Vec<String>> {
    Ok(blocks(content, param)?
        .iter()
        .filter_map(|block| block.get("text").and_then(Value::as_str))
        .filter(|text| !text.is_empty())
        .map(String::from)
        .collect())
}

fn user_parts(content: Option<&Value>, param: &str, calls: &HashMap<String, String>) -> Result<Vec<Value>> {
    let mut parts = Vec::new();
    for (i, block) in blocks(content, param)?.iter().enumerate() {
        let at = format!("{param}.content.{i}");
        match block.get("type").and_then(Value::as_str).unwrap_or_default() {
            "text" => match block.get("text").and_then(Value::as_str) {
                Some("") => {}
                Some(text) => parts.push(json!({ "text": text })),
                None => return Err(TranslateError::invalid(at.clone(), format!("{at}.text: a string is required"))),
            },
            "image" | "document" => parts.extend(media_parts(block, &at)?),
            "tool_result" => parts.extend(tool_result(block, &at, calls)?),
            "mid_conv_system" => parts.extend(texts(block.get("content"), &at)?.iter().map(|t| reminder(t))),
            // Thinking in a user turn, server tools' history and blocks of
            // betas gemgate does not know: nothing Gemini could use.
            _ => {}
        }
    }
    Ok(parts)
}

/// An image or document block's parts.
fn media_parts(block: &Value, at: &str) -> Result<Vec<Value>> {
    let source = block.get("source").unwrap_or(&Value::Null);
    let bad = |message: &str| Err(TranslateError::invalid(format!("{at}.source"), format!("{at}.source: {message}")));
    match source.get("type").and_then(Value::as_str).unwrap_or_default() {
        "base64" => {
            let mime = source.get("media_type").and_then(Value::as_str).unwrap_or_default();
            match source.get("data").and_then(Value::as_str) {
                Some(data) if !mime.is_empty() => Ok(vec![json!({"inlineData": {"mimeType": mime, "data": data}})]),
                _ => bad("a base64 source needs `media_type` and `data`"),
            }
        }
        "url" => match source.get("url").and_then(Value::as_str) {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                let path = url.split(['?', '#']).next().unwrap_or(url);
                Ok(vec![json!({"fileData": {"mimeType": mime_from_name(path), "fileUri": url}})])
            }
            _ => bad("a url source needs an http(s) `url`"),
        },
        "text" => {
            let data = source.get("data").and_then(Value::as_str).unwrap_or_default();
            let title = block.get("title").and_then(Value::as_str).filter(|t| !t.is_empty());
            let text = title.map_or_else(|| data.to_string(), |title| format!("{title}\n\n{data}"));
            Ok(if text.is_empty() { Vec::new() } else { vec![json!({ "text": text })] })
        }
        "content" => Ok(texts(source.get("content"), at)?.into_iter().map(|text| json!({ "text": text })).collect()),
        "file" => Err(TranslateError::invalid(
            format!("{at}.source"),
            format!("{at}.source: file sources are not supported; send the file as base64"),
        )),
        _ => bad("expected a base64, url, text or content source"),
    }
}

/// A tool result: the `functionResponse` (named after its call), then any
/// images or documents it returned.
fn tool_result(block: &Value, at: &str, calls: &HashMap<String, String>) -> Result<Vec<Value>> {
    let id = block.get("tool_use_id").and_then(Value::as_str).unwrap_or_default();
    let name = calls.get(id).ok_or_else(|| {
        TranslateError::invalid(
            format!("{at}.tool_use_id"),
            format!("{at}.tool_use_id: `{id}` answers no tool_use block of an earlier assistant message"),
        )
    })?;
    let mut text = Vec::new();
    let mut media = Vec::new();
    for (i, inner) in blocks(block.get("content"), at)?.iter().enumerate() {
        match inner.get("type").and_then(Value::as_str).unwrap_or_default() {
            "text" => text.push(inner.get("text").and_then(Value::as_str).unwrap_or_default().to_string()),
            "image" | "document" => media.extend(media_parts(inner, &format!("{at}.content.{i}"))?),
            _ => {}
        }
    }
    let key = if block.get("is_error").and_then(Value::as_bool) == Some(true) { "error" } else { "output" };
    let mut response = json!({"name": name, "response": { key: text.join("\n") }});
    if let Some(call_id) = gemini_call_id(id) {
        response["id"] = json!(call_id);
    }
    let mut parts = vec![json!({ "functionResponse": response })];
    parts.extend(media);
    Ok(parts)
}

/// An assistant turn's parts. A `thinking` block carrying our signature
/// gives it to the next part of the turn (a trailing one to an empty text
/// part); thought text is not sent back (Gemini needs only the signature).
fn model_parts(
    content: Option<&Value>,
    param: &str,
    calls: &mut HashMap<String, String>,
    signatures_required: bool,
) -> Result<Vec<Value>> {
    let mut parts = Vec::new();
    let mut signature: Option<String> = None;
    let mut called = false;
    for (i, block) in blocks(content, param)?.iter().enumerate() {
        let at = format!("{param}.content.{i}");
        let mut part = match block.get("type").and_then(Value::as_str).unwrap_or_default() {
            "text" => match block.get("text").and_then(Value::as_str) {
                Some("") if signature.is_none() => continue,
                Some(text) => json!({ "text": text }),
                None => return Err(TranslateError::invalid(at.clone(), format!("{at}.text: a string is required"))),
            },
            "thinking" => {
                if let Some(carried) = block.get("signature").and_then(Value::as_str).and_then(carried) {
                    signature = Some(carried);
                }
                continue;
            }
            "tool_use" => {
                let (id, name) = (block.get("id").and_then(Value::as_str), block.get("name").and_then(Value::as_str));
                let (Some(id), Some(name)) = (id, name.filter(|n| !n.is_empty())) else {
                    return Err(TranslateError::invalid(at.clone(), format!("{at}: a tool_use needs `id` and `name`")));
                };
                let args = match block.get("input") {
                    None | Some(Value::Null) => json!({}),
                    Some(object @ Value::Object(_)) => object.clone(),
                    Some(_) => {
                        return Err(TranslateError::invalid(format!("{at}.input"), format!("{at}.input: an object")));
                    }
                };
                calls.insert(id.to_string(), name.to_string());
                let mut call = json!({"name": name, "args": args});
                if let Some(call_id) = gemini_call_id(id) {
                    call["id"] = json!(call_id);
                }
                let mut part = json!({ "functionCall": call });
                // The step's first call must carry a signature on Gemini 3;
                // one never known gets Google's stand-in.
                if !called && signature.is_none() && signatures_required {
                    part["thoughtSignature"] = json!(DUMMY_THOUGHT_SIGNATURE);
                }
                called = true;
                part
            }
            // Foreign thinking, redacted thinking, server tools' history.
            _ => continue,
        };
        if let Some(signature) = signature.take() {
            part["thoughtSignature"] = json!(signature);
        }
        parts.push(part);
    }
    if let Some(signature) = signature {
        parts.push(json!({"text": "", "thoughtSignature": signature}));
    }
    Ok(parts)
}

/// Client tools → function declarations; server tools (any `type` but
/// `custom`) are dropped, and their names returned.
fn tools(tools: Option<&Value>) -> Result<(Option<Value>, HashSet<String>)> {
    let mut dropped = HashSet::new();
    let Some(tools) = tools.filter(|t| !t.is_null()) else { return Ok((None, dropped)) };
    let tools = tools.as_array().ok_or_else(|| TranslateError::invalid("tools", "tools: must be an array"))?;
    let mut declarations = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        let name = tool.get("name").and_then(Value::as_str).filter(|n| !n.is_empty());
        let Some(name) = name else {
            return Err(TranslateError::invalid(format!("tools.{i}.name"), format!("tools.{i}.name: required")));
        };
        if tool.get("type").and_then(Value::as_str).is_some_and(|kind| kind != "custom") {
            dropped.insert(name.to_string());
            continue;
        }
        let declaration = function_declaration(name, tool.get("description"), tool.get("input_schema"), || {
            format!("tools.{i}.input_schema")
        })
        .map_err(|err| TranslateError { message: format!("tools.{i}.input_schema: {}", err.message), ..err })?;
        declarations.push(declaration);
    }
    let tools = (!declarations.is_empty()).then(|| json!([{ "functionDeclarations": declarations }]));
    Ok((tools, dropped))
}

fn tool_choice(choice: Option<&Value>, dropped: &HashSet<String>) -> Result<Option<Value>> {
    let Some(choice) = choice.filter(|c| !c.is_null()) else { return Ok(None) };
    let mode = |mode: &str| Some(json!({"functionCallingConfig": {"mode": mode}}));
    Ok(match choice.get("type").and_then(Value::as_str) {
        Some("auto") => mode("AUTO"),
        Some("any") => mode("ANY"),
        Some("none") => mode("NONE"),
        Some("tool") => {
            let name = choice.get("name").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() || dropped.contains(name) {
                return Err(TranslateError::invalid(
                    "tool_choice.name",
                    format!("tool_choice.name: `{name}` is not a client tool gemgate can offer Gemini"),
                ));
            }
            Some(json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}))
        }
        _ => {
            return Err(TranslateError::invalid(
                "tool_choice.type",
                "tool_choice.type: expected auto, any, tool or none",
            ));
        }
    })
}

fn number(object: &Map<String, Value>, key: &str, range: std::ops::RangeInclusive<f64>) -> Result<Option<Value>> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_f64().is_some_and(|v| range.contains(&v)) => Ok(Some(Value::Number(n.clone()))),
        Some(_) => Err(TranslateError::invalid(
            key,
            format!("{key}: must be a number from {} to {}", range.start(), range.end()),
        )),
    }
}

/// `thinking` and `output_config.effort` → `thinkingConfig` (§3.4): a
/// budget on Gemini 2.5, a level on Gemini 3; thoughts are shown only when
/// thinking is enabled and not `display: "omitted"`. Without either, the
/// least thinking the model allows, as Claude without `thinking` does not think.
fn thinking_config(object: &Map<String, Value>, model: &str) -> Result<Option<Value>> {
    let thinking = object.get("thinking").filter(|t| !t.is_null());
    let effort = object.get("output_config").and_then(|c| c.get("effort")).filter(|e| !e.is_null());
    let gemini_3 = model.starts_with("gemini-3");
    let mut config = Map::new();
    let mut show = false;
    match thinking.map(|t| t.get("type").and_then(Value::as_str)) {
        None | Some(Some("disabled")) => {}
        Some(Some("enabled")) => {
            let budget = thinking.and_then(|t| t.get("budget_tokens")).and_then(Value::as_u64).ok_or_else(|| {
                TranslateError::invalid("thinking.budget_tokens", "thinking.budget_tokens: an integer is required")
            })?;
            if gemini_3 {
                let level = match budget {
                    0..=1024 => "low",
                    1025..=8192 => "medium",
                    _ => "high",
                };
                let (field, value) = effort_thinking(level, model);
                config.insert(field.into(), value);
            } else {
                config.insert("thinkingBudget".into(), json!(budget.min(32_768)));
            }
            show = true;
        }
        Some(Some("adaptive")) => {
            if !gemini_3 {
                config.insert("thinkingBudget".into(), json!(-1));
            }
            show = true;
        }
        _ => {
            return Err(TranslateError::invalid(
                "thinking.type",
                "thinking.type: expected enabled, adaptive or disabled",
            ));
        }
    }
    if let Some(effort) = effort {
        let level = match effort.as_str() {
            Some("none" | "minimal") => "none",
            Some("low") => "low",
            Some("medium") => "medium",
            Some("high" | "xhigh" | "max") => "high",
            _ => {
                return Err(TranslateError::invalid(
                    "output_config.effort",
                    "output_config.effort: expected low, medium, high, xhigh or max",
                ));
            }
        };
        config.remove("thinkingBudget");
        config.remove("thinkingLevel");
        let (field, value) = effort_thinking(level, model);
        config.insert(field.into(), value);
    } else if config.is_empty() && !show {
        let (field, value) = effort_thinking("none", model);
        config.insert(field.into(), value);
    }
    let omitted = thinking.and_then(|t| t.get("display")).and_then(Value::as_str) == Some("omitted");
    if show && !omitted {
        config.insert("includeThoughts".into(), json!(true));
    }
    Ok((!config.is_empty()).then_some(Value::Object(config)))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
