//! What the fake answers to a generate request: an echo of the prompt, or a
//! function call when tools are offered, JSON when JSON is asked for, a
//! thought when thoughts are asked for; and Google's refusal when a thinking
//! model's earlier function call comes back without its thought signature.

use super::bodies::{self, FakeModel};
use serde_json::{Value, json};

/// The reply's parts per candidate, before framing.
pub struct ReplyPlan {
    /// `thought: true` text, when `includeThoughts` was asked.
    pub thought: Option<String>,
    /// The answer text, if the reply is text.
    pub text: Option<String>,
    /// `functionCall` parts, if the model calls tools.
    pub calls: Vec<Value>,
    /// `candidateCount`.
    pub candidates: usize,
    /// An `inlineData` part (an image model's image, a speech model's audio).
    pub media: Option<Value>,
}

/// A 1×1 PNG, what the fake's image model draws.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
/// Audio samples the fake's speech model says per word (0.1 s at 24 kHz).
pub const SAMPLES_PER_WORD: usize = 2_400;

/// What an image or speech model answers, or Google's refusal of the modalities asked for.
fn media(model: &FakeModel, config: &Value, echo: &str) -> Result<Option<Value>, Value> {
    let modalities: Vec<&str> = config
        .get("responseModalities")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let wants = |modality: &str| modalities.iter().any(|m| m.eq_ignore_ascii_case(modality));
    if model.id.ends_with("-tts") {
        if modalities.len() != 1 || !wants("AUDIO") {
            return Err(bodies::invalid_argument(
                "The requested combination of response modalities is not supported by the model.",
            ));
        }
        let samples = echo.split_whitespace().count().max(1) * SAMPLES_PER_WORD;
        // A quiet sawtooth, s16le: real bytes, not silence.
        let pcm: Vec<u8> = (0..samples).flat_map(|i| (((i % 64) as i16 - 32) * 64).to_le_bytes()).collect();
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD.encode(pcm);
        return Ok(Some(json!({"inlineData": {"mimeType": "audio/L16;codec=pcm;rate=24000", "data": data}})));
    }
    if wants("AUDIO") {
        return Err(bodies::invalid_argument(
            "The requested combination of response modalities is not supported by the model.",
        ));
    }
    if !wants("IMAGE") {
        return Ok(None);
    }
    if !model.id.ends_with("-image") {
        return Err(bodies::invalid_argument("Multi-modal output is not supported."));
    }
    Ok(Some(json!({"inlineData": {"mimeType": "image/png", "data": PNG}})))
}

/// Plans the reply, or returns Google's error.
pub fn plan(model: &FakeModel, payload: &Value) -> Result<ReplyPlan, Value> {
    let contents = payload["contents"].as_array().cloned().unwrap_or_default();
    check_signatures(model, &contents)?;
    check_response_ids(model, &contents)?;
    let config = payload.get("generationConfig").cloned().unwrap_or(Value::Null);
    let include_thoughts = config.pointer("/thinkingConfig/includeThoughts").and_then(Value::as_bool) == Some(true);
    let candidates = config.get("candidateCount").and_then(Value::as_u64).unwrap_or(1).clamp(1, 8) as usize;
    let echo: String = bodies::last_user_text(&payload["contents"]).chars().take(200).collect();
    let thought = (include_thoughts && model.thinking).then(|| format!("Thinking about: {echo}"));
    let media = media(model, &config, &echo)?;
    if media.is_some() {
        // A speech model says only the audio; an image model adds a line.
        let text = (!model.id.ends_with("-tts")).then(|| format!("Here is {echo}"));
        return Ok(ReplyPlan { thought: None, text, calls: Vec::new(), candidates, media });
    }
    let last_parts =
        contents.last().and_then(|c| c.get("parts")).and_then(Value::as_array).cloned().unwrap_or_default();

    let responses: Vec<&Value> = last_parts.iter().filter_map(|p| p.get("functionResponse")).collect();
    if !responses.is_empty() {
        let said: Vec<String> = responses
            .iter()
            .map(|r| format!("{} returned {}", r["name"].as_str().unwrap_or("?"), r["response"]))
            .collect();
        return Ok(ReplyPlan {
            thought,
            text: Some(format!("The tools said: {}", said.join("; "))),
            calls: Vec::new(),
            candidates,
            media: None,
        });
    }
    if let Some(call) = function_call(model, payload) {
        return Ok(ReplyPlan { thought, text: None, calls: vec![call], candidates, media: None });
    }
    let attachments: Vec<String> = last_parts
        .iter()
        .filter_map(|p| p.get("inlineData").or_else(|| p.get("fileData")))
        .map(|d| d["mimeType"].as_str().unwrap_or("?").to_string())
        .collect();
    let mut text = format!("Hello from the fake {}. You said: {echo}", model.id);
    if !attachments.is_empty() {
        text.push_str(&format!(" [attachments: {}]", attachments.join(", ")));
    }
    if config.get("responseMimeType").and_then(Value::as_str) == Some("application/json") {
        let schema = config.get("responseJsonSchema").or_else(|| config.get("responseSchema"));
        text = match schema {
            Some(schema) => example_for(schema, "reply").to_string(),
            None => json!({ "reply": text }).to_string(),
        };
    }
    Ok(ReplyPlan { thought, text: Some(text), calls: Vec::new(), candidates, media: None })
}

/// Thinking models refuse an earlier function call sent back without its
/// thought signature, as Gemini 3 does.
fn check_signatures(model: &FakeModel, contents: &[Value]) -> Result<(), Value> {
    if !model.id.starts_with("gemini-3") {
        return Ok(());
    }
    for (position, content) in contents.iter().enumerate() {
        // As Google: the first function call of each model step carries the
        // signature (parallel calls after it do not).
        let first_call = content
            .get("parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|p| p.get("functionCall").is_some());
        if let Some(part) = first_call
            && part.get("thoughtSignature").is_none()
        {
            let name = part["functionCall"]["name"].as_str().unwrap_or("?");
            return Err(bodies::invalid_argument(&format!(
                "Function call is missing a thought_signature in functionCall parts. This is required for tools to work \
                 correctly, and missing thought_signature may lead to degraded model performance. Additional data, \
                 function call `default_api:{name}` , position {}. Please refer to \
                 https://ai.google.dev/gemini-api/docs/thought-signatures for more details.",
                position + 1
            )));
        }
    }
    Ok(())
}

/// A call the prompt scripts, for agents' tests: `[call NAME {args}]` in a
/// text of the last user turn makes the fake call NAME (when declared)
/// with those arguments.
fn scripted_call(payload: &Value) -> Option<(String, Value)> {
    let last = payload["contents"].as_array()?.last()?;
    let texts = last.get("parts")?.as_array()?.iter().filter_map(|p| p.get("text").and_then(Value::as_str));
    texts.into_iter().find_map(|text| {
        let rest = &text[text.find("[call ")? + "[call ".len()..];
        let (name, rest) = rest.split_once(' ')?;
        let args = serde_json::Deserializer::from_str(rest).into_iter::<Value>().next()?.ok()?;
        args.is_object().then(|| (name.to_string(), args))
    })
}

fn contents_len(payload: &Value) -> usize {
    payload["contents"].as_array().map_or(0, Vec::len)
}

/// Gemini 3 refuses a function response whose id names no call in the
/// conversation.
fn check_response_ids(model: &FakeModel, contents: &[Value]) -> Result<(), Value> {
    if !model.id.starts_with("gemini-3") {
        return Ok(());
    }
    let parts = || contents.iter().filter_map(|c| c.get("parts").and_then(Value::as_array)).flatten();
    let calls: Vec<&Value> = parts().filter_map(|p| p.pointer("/functionCall/id")).collect();
    for id in parts().filter_map(|p| p.pointer("/functionResponse/id")) {
        if !calls.contains(&id) {
            return Err(bodies::invalid_argument("functionResponse.id does not match functionCall.id"));
        }
    }
    Ok(())
}

/// A call of the first allowed declared function, unless calling is off.
fn function_call(model: &FakeModel, payload: &Value) -> Option<Value> {
    let mode = payload.pointer("/toolConfig/functionCallingConfig/mode").and_then(Value::as_str).unwrap_or("AUTO");
    if mode == "NONE" {
        return None;
    }
    let declarations: Vec<&Value> = payload
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .collect();
    let allowed = payload.pointer("/toolConfig/functionCallingConfig/allowedFunctionNames/0").and_then(Value::as_str);
    let scripted = scripted_call(payload).filter(|(name, _)| declarations.iter().any(|d| d["name"] == name.as_str()));
    let declaration = match (allowed, &scripted) {
        (Some(name), _) => declarations.iter().find(|d| d["name"] == name)?,
        (None, Some((name, _))) => declarations.iter().find(|d| d["name"] == name.as_str())?,
        (None, None) => declarations.first()?,
    };
    let name = declaration["name"].as_str()?;
    let args = match scripted.filter(|(scripted, _)| scripted == name) {
        Some((_, args)) => args,
        None => declaration
            .get("parameters")
            .or_else(|| declaration.get("parametersJsonSchema"))
            .map_or(json!({}), |s| example_for(s, "")),
    };
    let mut part = json!({"functionCall": {"name": name, "args": args}});
    if model.id.starts_with("gemini-3") {
        // Gemini 3 names each call; a response must name the call it answers.
        part["functionCall"]["id"] = json!(format!("fc-{name}-{}", contents_len(payload)));
    }
    if model.thinking {
        part["thoughtSignature"] = json!(format!("ZmFrZS1zaWduYXR1cmUt{}", name.len()));
    }
    Some(part)
}

/// A value that fits a schema: required (or all) properties filled in.
fn example_for(schema: &Value, name: &str) -> Value {
    match schema.get("type").and_then(Value::as_str).unwrap_or("object") {
        "string" => match schema.get("enum").and_then(|e| e.get(0)) {
            Some(first) => first.clone(),
            None if name.contains("city") => json!("Paris"),
            None => json!(format!("example {name}").trim().to_string()),
        },
        "integer" => json!(1),
        "number" => json!(1.5),
        "boolean" => json!(true),
        "array" => json!([example_for(schema.get("items").unwrap_or(&json!({"type": "string"})), name)]),
        _ => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let mut object = serde_json::Map::new();
            for (key, property) in properties.into_iter().flatten() {
                if required.is_empty() || required.contains(&key.as_str()) {
                    object.insert(key.clone(), example_for(property, key));
                }
            }
            Value::Object(object)
        }
    }
}
