//! A chat completion request → a Gemini `generateContent` body.

use super::schema::clean_schema;
use super::tool_ids::split_tool_call_id;
use super::{TranslateError, model_id};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// What the OpenAI route needs to serve one chat completion.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    /// Gemini model id.
    pub model: String,
    /// `stream: true`.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// The `generateContent` body.
    pub body: Value,
}

type Result<T> = std::result::Result<T, TranslateError>;

/// Translates a chat completion request.
pub fn chat_request(request: &Value) -> Result<ChatRequest> {
    let object =
        request.as_object().ok_or_else(|| TranslateError::invalid("", "the request body must be a JSON object"))?;
    let model = match object.get("model") {
        Some(Value::String(model)) if !model.trim().is_empty() => model_id(model.trim()).to_string(),
        _ => return Err(TranslateError::invalid("model", "`model` is required and must be a string")),
    };
    let messages = match object.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => messages,
        _ => return Err(TranslateError::invalid("messages", "`messages` must be a non-empty array")),
    };
    let (system, contents) = translate_messages(messages, needs_thought_signatures(&model))?;
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    if let Some(tools) = translate_tools(object.get("tools"))? {
        body.insert("tools".into(), tools);
    }
    if let Some(config) = translate_tool_choice(object.get("tool_choice"))? {
        body.insert("toolConfig".into(), config);
    }
    let generation = generation_config(object, &model)?;
    if !generation.is_empty() {
        body.insert("generationConfig".into(), Value::Object(generation));
    }
    let stream = match object.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(stream)) => *stream,
        Some(_) => return Err(TranslateError::invalid("stream", "`stream` must be a boolean")),
    };
    let include_usage =
        object.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false);
    Ok(ChatRequest { model, stream, include_usage, body: Value::Object(body) })
}

/// Google's documented stand-in for a thought signature that was never known
/// (a history from another client or model): Gemini 3 accepts it in place of
/// the real one, where a missing signature is a 400.
pub const DUMMY_THOUGHT_SIGNATURE: &str = "skip_thought_signature_validator";

/// Whether the model refuses function calls in the history without a thought
/// signature (Gemini 3 and later).
pub fn needs_thought_signatures(model: &str) -> bool {
    model
        .strip_prefix("gemini-")
        .and_then(|rest| rest.split(['-', '.']).next())
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major >= 3)
}

/// Messages → (system parts, contents). Consecutive turns of one role merge.
fn translate_messages(messages: &[Value], signatures_required: bool) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut system = Vec::new();
    let mut contents: Vec<(String, Vec<Value>)> = Vec::new();
    let mut tool_names: HashMap<String, String> = HashMap::new();
    for (index, message) in messages.iter().enumerate() {
        let param = format!("messages[{index}]");
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::invalid(format!("{param}.role"), "each message needs a `role` string"))?;
        let (gemini_role, parts) = match role {
            "system" | "developer" => {
                system.extend(content_parts(message.get("content"), &param, true)?);
                continue;
            }
            "user" => ("user", content_parts(message.get("content"), &param, false)?),
            "assistant" => ("model", assistant_parts(message, &param, &mut tool_names, signatures_required)?),
            "tool" | "function" => ("user", vec![tool_response_part(message, &param, &tool_names)?]),
            other => {
                return Err(TranslateError::invalid(
                    format!("{param}.role"),
                    format!("unknown role `{other}`: expected system, developer, user, assistant or tool"),
                ));
            }
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some((last_role, last_parts)) if last_role == gemini_role => last_parts.extend(parts),
            _ => contents.push((gemini_role.to_string(), parts)),
        }
    }
    if contents.is_empty() {
        return Err(TranslateError::invalid("messages", "`messages` needs at least one user or assistant message"));
    }
    let contents = contents.into_iter().map(|(role, parts)| json!({"role": role, "parts": parts})).collect();
    Ok((system, contents))
}

/// A message's `content` (a string or an array of parts) as Gemini parts.
fn content_parts(content: Option<&Value>, param: &str, text_only: bool) -> Result<Vec<Value>> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(if text.is_empty() { Vec::new() } else { vec![json!({"text": text})] }),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(i, part)| content_part(part, &format!("{param}.content[{i}]"), text_only))
            .collect(),
        Some(_) => {
            Err(TranslateError::invalid(format!("{param}.content"), "`content` must be a string or an array of parts"))
        }
    }
}

fn content_part(part: &Value, param: &str, text_only: bool) -> Result<Value> {
    let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
    let bad = |message: &str| Err(TranslateError::invalid(param, message));
    match kind {
        "text" => match part.get("text").and_then(Value::as_str) {
            Some(text) => Ok(json!({"text": text})),
            None => bad("a text part needs a `text` string"),
        },
        _ if text_only => bad("system and developer messages take text parts only"),
        "image_url" => {
            let url = part.get("image_url").and_then(|i| i.get("url").or(Some(i))).and_then(Value::as_str);
            match url {
                Some(url) => url_part(url, param),
                None => bad("an image_url part needs `image_url.url`"),
            }
        }
        "input_audio" => {
            let audio = part.get("input_audio");
            let data = audio.and_then(|a| a.get("data")).and_then(Value::as_str);
            let format = audio.and_then(|a| a.get("format")).and_then(Value::as_str).unwrap_or("wav");
            match data {
                Some(data) => Ok(json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}})),
                None => bad("an input_audio part needs `input_audio.data` (base64)"),
            }
        }
        "file" => {
            let file = part.get("file");
            if file.and_then(|f| f.get("file_id")).is_some() {
                return Err(TranslateError::invalid(param, "`file_id` is not supported; send the file as `file_data`")
                    .with_code("unsupported_parameter"));
            }
            let data = file.and_then(|f| f.get("file_data")).and_then(Value::as_str);
            let filename = file.and_then(|f| f.get("filename")).and_then(Value::as_str).unwrap_or_default();
            match data {
                Some(data) if data.starts_with("data:") => url_part(data, param),
                Some(data) => Ok(json!({"inlineData": {"mimeType": mime_from_name(filename), "data": data}})),
                None => bad("a file part needs `file.file_data`"),
            }
        }
        "" => bad("each content part needs a `type`"),
        other => Err(TranslateError::invalid(param, format!("content part type `{other}` is not supported"))),
    }
}

/// A data URL becomes `inlineData`; an http(s) URL becomes `fileData`.
fn url_part(url: &str, param: &str) -> Result<Value> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| TranslateError::invalid(param, "a data URL needs a comma before its data"))?;
        let mime = meta.strip_suffix(";base64").ok_or_else(|| {
            TranslateError::invalid(param, "only base64 data URLs are supported (data:<mime>;base64,<data>)")
        })?;
        let mime = if mime.is_empty() { "application/octet-stream" } else { mime };
        return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    if url.starts_with("http://") || url.starts_with("https://") {
        let path = url.split(['?', '#']).next().unwrap_or(url);
        return Ok(json!({"fileData": {"mimeType": mime_from_name(path), "fileUri": url}}));
    }
    Err(TranslateError::invalid(param, "an image URL must be a data: URL or an http(s) URL"))
}

/// The MIME type a file name suggests (JPEG when it says nothing known).
pub fn mime_from_name(name: &str) -> &'static str {
    let extension = name.rsplit('.').next().unwrap_or_default().to_ascii_lowercase();
    match extension.as_str() {
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "wav" => "audio/wav",
        "mp3" => "audio/mp3",
        "mp4" => "video/mp4",
        _ => "image/jpeg",
    }
}

fn assistant_parts(
    message: &Value,
    param: &str,
    tool_names: &mut HashMap<String, String>,
    signatures_required: bool,
) -> Result<Vec<Value>> {
    let mut parts = content_parts(message.get("content"), param, false)?;
    let Some(calls) = message.get("tool_calls").filter(|c| !c.is_null()) else { return Ok(parts) };
    let calls = calls
        .as_array()
        .ok_or_else(|| TranslateError::invalid(format!("{param}.tool_calls"), "`tool_calls` must be an array"))?;
    for (i, call) in calls.iter().enumerate() {
        let at = format!("{param}.tool_calls[{i}]");
        let function = call.get("function");
        let name = function.and_then(|f| f.get("name")).and_then(Value::as_str).ok_or_else(|| {
            TranslateError::invalid(format!("{at}.function.name"), "a tool call needs `function.name`")
        })?;
        let args = match function.and_then(|f| f.get("arguments")) {
            None | Some(Value::Null) => json!({}),
            Some(Value::String(text)) if text.trim().is_empty() => json!({}),
            Some(Value::String(text)) => serde_json::from_str(text).map_err(|_| {
                TranslateError::invalid(format!("{at}.function.arguments"), "`arguments` must be a JSON string")
            })?,
            Some(object @ Value::Object(_)) => object.clone(),
            Some(_) => {
                return Err(TranslateError::invalid(
                    format!("{at}.function.arguments"),
                    "`arguments` must be a JSON string",
                ));
            }
        };
        let id = call.get("id").and_then(Value::as_str).unwrap_or_default();
        let (_, id_signature) = split_tool_call_id(id);
        let signature =
            call.pointer("/extra_content/google/thought_signature").and_then(Value::as_str).or(id_signature);
        if !id.is_empty() {
            tool_names.insert(id.to_string(), name.to_string());
        }
        let mut part = json!({"functionCall": {"name": name, "args": args}});
        // Only a step's first call carries the signature; one that was never
        // known gets Google's stand-in, so the conversation can go on.
        let stand_in = (signatures_required && i == 0).then_some(DUMMY_THOUGHT_SIGNATURE);
        if let Some(signature) = signature.or(stand_in) {
            part["thoughtSignature"] = json!(signature);
        }
        parts.push(part);
    }
    Ok(parts)
}

fn tool_response_part(message: &Value, param: &str, tool_names: &HashMap<String, String>) -> Result<Value> {
    let id = message.get("tool_call_id").and_then(Value::as_str);
    let name = id
        .and_then(|id| tool_names.get(id).cloned())
        .or_else(|| message.get("name").and_then(Value::as_str).map(String::from))
        .ok_or_else(|| {
            TranslateError::invalid(
                format!("{param}.tool_call_id"),
                "a tool message's `tool_call_id` must match a tool call of an earlier assistant message",
            )
        })?;
    let text = match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("")
        }
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let response = match serde_json::from_str::<Value>(&text) {
        Ok(object @ Value::Object(_)) => object,
        _ => json!({ "content": text }),
    };
    Ok(json!({"functionResponse": {"name": name, "response": response}}))
}

fn translate_tools(tools: Option<&Value>) -> Result<Option<Value>> {
    let Some(tools) = tools.filter(|t| !t.is_null()) else { return Ok(None) };
    let tools = tools.as_array().ok_or_else(|| TranslateError::invalid("tools", "`tools` must be an array"))?;
    let mut declarations = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        if tool.get("type").and_then(Value::as_str).unwrap_or("function") != "function" {
            continue;
        }
        let function = tool.get("function").unwrap_or(tool);
        let name = function.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()).ok_or_else(|| {
            TranslateError::invalid(format!("tools[{i}].function.name"), "each function tool needs a `name`")
        })?;
        declarations.push(function_declaration(name, function.get("description"), function.get("parameters"), || {
            format!("tools[{i}].function.parameters")
        })?);
    }
    Ok((!declarations.is_empty()).then(|| json!([{ "functionDeclarations": declarations }])))
}

/// A Gemini function declaration: the name, the description if one, and
/// the parameters' schema cleaned for Gemini (left out when it declares no
/// properties); a schema too large to clean is a 400 naming `param`.
pub fn function_declaration(
    name: &str,
    description: Option<&Value>,
    parameters: Option<&Value>,
    param: impl FnOnce() -> String,
) -> Result<Value> {
    let mut declaration = json!({ "name": name });
    if let Some(description) = description.and_then(Value::as_str) {
        declaration["description"] = json!(description);
    }
    if let Some(parameters) = parameters.filter(|p| p.is_object())
        && parameters.get("properties").and_then(Value::as_object).is_some_and(|p| !p.is_empty())
    {
        declaration["parameters"] =
            clean_schema(parameters).map_err(|err| TranslateError::invalid(param(), err.to_string()))?;
    }
    Ok(declaration)
}

fn translate_tool_choice(choice: Option<&Value>) -> Result<Option<Value>> {
    let config = |mode: &str| Some(json!({"functionCallingConfig": {"mode": mode}}));
    Ok(match choice {
        None | Some(Value::Null) => None,
        Some(Value::String(choice)) => match choice.as_str() {
            "none" => config("NONE"),
            "auto" => config("AUTO"),
            "required" => config("ANY"),
            other => {
                return Err(TranslateError::invalid(
                    "tool_choice",
                    format!("unknown tool_choice `{other}`: expected none, auto, required or a named function"),
                ));
            }
        },
        Some(object) => {
            let name = object
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| TranslateError::invalid("tool_choice", "a named tool_choice needs `function.name`"))?;
            Some(json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}))
        }
    })
}

fn number(object: &Map<String, Value>, key: &str, range: std::ops::RangeInclusive<f64>) -> Result<Option<Value>> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_f64().is_some_and(|v| range.contains(&v)) => Ok(Some(Value::Number(n.clone()))),
        Some(_) => Err(TranslateError::invalid(
            key,
            format!("`{key}` must be a number from {} to {}", range.start(), range.end()),
        )),
    }
}

fn integer(object: &Map<String, Value>, key: &str, min: i64, max: i64) -> Result<Option<Value>> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_i64().is_some_and(|v| (min..=max).contains(&v)) => {
            Ok(Some(Value::Number(n.clone())))
        }
        Some(_) => Err(TranslateError::invalid(key, format!("`{key}` must be an integer from {min} to {max}"))),
    }
}

fn generation_config(object: &Map<String, Value>, model: &str) -> Result<Map<String, Value>> {
    let mut config = Map::new();
    let mut set = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            config.insert(key.to_string(), value);
        }
    };
    set("temperature", number(object, "temperature", 0.0..=2.0)?);
    set("topP", number(object, "top_p", 0.0..=1.0)?);
    set("presencePenalty", number(object, "presence_penalty", -2.0..=2.0)?);
    set("frequencyPenalty", number(object, "frequency_penalty", -2.0..=2.0)?);
    set("candidateCount", integer(object, "n", 1, 8)?);
    set("seed", integer(object, "seed", i64::from(i32::MIN), i64::from(i32::MAX))?);
    let max_tokens = integer(object, "max_completion_tokens", 1, i64::from(i32::MAX))?.or(integer(
        object,
        "max_tokens",
        1,
        i64::from(i32::MAX),
    )?);
    set("maxOutputTokens", max_tokens);
    set("stopSequences", stop_sequences(object.get("stop"))?);
    let (mime, schema) = response_format(object.get("response_format"))?;
    set("responseMimeType", mime);
    set("responseJsonSchema", schema);
    set("thinkingConfig", thinking_config(object, model)?);
    Ok(config)
}

fn stop_sequences(stop: Option<&Value>) -> Result<Option<Value>> {
    let list: Vec<Value> = match stop {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(one)) => vec![json!(one)],
        Some(Value::Array(many)) if many.iter().all(Value::is_string) => many.clone(),
        Some(_) => return Err(TranslateError::invalid("stop", "`stop` must be a string or an array of strings")),
    };
    if list.len() > 5 {
        return Err(TranslateError::invalid("stop", "Gemini takes at most 5 stop sequences"));
    }
    Ok((!list.is_empty()).then_some(Value::Array(list)))
}

fn response_format(format: Option<&Value>) -> Result<(Option<Value>, Option<Value>)> {
    let Some(format) = format.filter(|f| !f.is_null()) else { return Ok((None, None)) };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok((None, None)),
        Some("json_object") => Ok((Some(json!("application/json")), None)),
        Some("json_schema") => {
            let schema = format.pointer("/json_schema/schema").filter(|s| s.is_object()).ok_or_else(|| {
                TranslateError::invalid(
                    "response_format.json_schema.schema",
                    "a json_schema response format needs a `schema` object",
                )
            })?;
            Ok((Some(json!("application/json")), Some(schema.clone())))
        }
        _ => Err(TranslateError::invalid(
            "response_format.type",
            "`response_format.type` must be text, json_object or json_schema",
        )),
    }
}

/// The thinking setting for an effort (`none`, `minimal`, `low`, `medium`,
/// `high`) on `model`: `thinkingLevel` on Gemini 3, `thinkingBudget` before.
/// `none` is the least the model allows: Gemini 3 always thinks (`minimal`
/// on Flash, `low` on others), 2.5 Pro cannot go below 128.
pub fn effort_thinking(effort: &str, model: &str) -> (&'static str, Value) {
    if model.starts_with("gemini-3") {
        let flash = model.contains("flash");
        let level = match effort {
            "none" | "minimal" if flash => "minimal",
            "none" | "minimal" | "low" => "low",
            "medium" if flash => "medium",
            _ => "high",
        };
        ("thinkingLevel", json!(level))
    } else {
        let budget = match effort {
            "none" if model.contains("pro") => 128,
            "none" => 0,
            "minimal" | "low" => 1024,
            "medium" => 8192,
            _ => 24576,
        };
        ("thinkingBudget", json!(budget))
    }
}

/// `reasoning_effort` and Google's `thinking_config` (from `extra_body.google`,
/// which the OpenAI SDKs merge into the body root) → `thinkingConfig`.
fn thinking_config(object: &Map<String, Value>, model: &str) -> Result<Option<Value>> {
    let mut config = Map::new();
    match object.get("reasoning_effort") {
        None | Some(Value::Null) => {}
        Some(Value::String(effort)) => {
            let effort = effort.as_str();
            if !["none", "minimal", "low", "medium", "high"].contains(&effort) {
                return Err(TranslateError::invalid(
                    "reasoning_effort",
                    "`reasoning_effort` must be none, minimal, low, medium or high",
                ));
            }
            let (field, value) = effort_thinking(effort, model);
            config.insert(field.into(), value);
        }
        Some(_) => return Err(TranslateError::invalid("reasoning_effort", "`reasoning_effort` must be a string")),
    }
    let google = object.get("google").or_else(|| object.get("extra_body").and_then(|e| e.get("google")));
    if let Some(thinking) = google.and_then(|g| g.get("thinking_config").or_else(|| g.get("thinkingConfig"))) {
        let field = |snake: &str, camel: &str| thinking.get(snake).or_else(|| thinking.get(camel)).cloned();
        if let Some(budget) = field("thinking_budget", "thinkingBudget") {
            config.remove("thinkingLevel");
            config.insert("thinkingBudget".into(), budget);
        }
        if let Some(level) = field("thinking_level", "thinkingLevel") {
            config.remove("thinkingBudget");
            config.insert("thinkingLevel".into(), level);
        }
        if let Some(include) = field("include_thoughts", "includeThoughts") {
            config.insert("includeThoughts".into(), include);
        }
    }
    Ok((!config.is_empty()).then_some(Value::Object(config)))
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
