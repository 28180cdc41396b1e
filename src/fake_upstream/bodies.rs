//! The bodies Google sends: models, generate replies, token counts,
//! embeddings, and its exact error envelopes.

use serde_json::{Value, json};

/// A model the fake knows.
pub struct FakeModel {
    /// Id without `models/`.
    pub id: &'static str,
    /// Display name.
    pub display: &'static str,
    /// Methods it supports.
    pub methods: &'static [&'static str],
    /// Whether it thinks.
    pub thinking: bool,
}

const GENERATE: &[&str] = &["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"];
const EMBED: &[&str] = &["embedContent", "countTextTokens", "countTokens", "asyncBatchEmbedContent"];

/// The model list, in Google's order.
pub const MODELS: &[FakeModel] = &[
    FakeModel { id: "gemini-2.5-pro", display: "Gemini 2.5 Pro", methods: GENERATE, thinking: true },
    FakeModel { id: "gemini-2.5-flash", display: "Gemini 2.5 Flash", methods: GENERATE, thinking: true },
    FakeModel { id: "gemini-2.5-flash-lite", display: "Gemini 2.5 Flash-Lite", methods: GENERATE, thinking: true },
    FakeModel { id: "gemini-2.0-flash", display: "Gemini 2.0 Flash", methods: GENERATE, thinking: false },
    FakeModel { id: "gemini-3-pro-preview", display: "Gemini 3 Pro Preview", methods: GENERATE, thinking: true },
    FakeModel { id: "gemini-2.5-flash-image", display: "Gemini 2.5 Flash Image", methods: GENERATE, thinking: false },
    FakeModel {
        id: "gemini-2.5-flash-preview-tts",
        display: "Gemini 2.5 Flash Preview TTS",
        methods: GENERATE,
        thinking: false,
    },
    FakeModel { id: "gemini-embedding-001", display: "Gemini Embedding 001", methods: EMBED, thinking: false },
    FakeModel { id: "text-embedding-004", display: "Text Embedding 004", methods: EMBED, thinking: false },
];

/// Finds a model by id.
pub fn find_model(id: &str) -> Option<&'static FakeModel> {
    MODELS.iter().find(|m| m.id == id)
}

/// The `Model` resource.
pub fn model_json(model: &FakeModel) -> Value {
    let embed = model.methods.contains(&"embedContent");
    let mut value = json!({
        "name": format!("models/{}", model.id),
        "version": "001",
        "displayName": model.display,
        "description": format!("{} (fake)", model.display),
        "inputTokenLimit": if embed { 2048 } else { 1048576 },
        "outputTokenLimit": if embed { 1 } else { 65536 },
        "supportedGenerationMethods": model.methods,
    });
    if !embed {
        value["baseModelId"] = json!(model.id);
        value["temperature"] = json!(1.0);
        value["topP"] = json!(0.95);
        value["topK"] = json!(64);
        value["maxTemperature"] = json!(2.0);
        value["thinking"] = json!(model.thinking);
    }
    value
}

/// `{"error": {...}}` exactly as Google shapes it.
pub fn error(code: u16, status: &str, message: &str, details: Vec<Value>) -> Value {
    let mut error = json!({"code": code, "message": message, "status": status});
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    json!({ "error": error })
}

/// 429 for a per-minute or per-day quota.
pub fn quota_exceeded(model: &str, daily: bool, retry_secs: u64) -> Value {
    let (quota_id, metric, limit) = if daily {
        ("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "generate_content_free_tier_requests", 100)
    } else {
        ("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "generate_content_free_tier_requests", 5)
    };
    let message = format!(
        "You exceeded your current quota, please check your plan and billing details. For more information on this error, \
         head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n* Quota exceeded for metric: \
         generativelanguage.googleapis.com/{metric}, limit: {limit}, model: {model}\nPlease retry in {retry_secs}.{}s.",
        417
    );
    error(
        429,
        "RESOURCE_EXHAUSTED",
        &message,
        vec![
            json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                "quotaMetric": format!("generativelanguage.googleapis.com/{metric}"),
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": model},
                "quotaValue": limit.to_string()}]}),
            json!({"@type": "type.googleapis.com/google.rpc.Help", "links": [{
                "description": "Learn more about Gemini API quotas",
                "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}),
            json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{retry_secs}s")}),
        ],
    )
}

/// 400 API_KEY_INVALID.
pub fn key_invalid() -> Value {
    let message = "API key not valid. Please pass a valid API key.";
    error(
        400,
        "INVALID_ARGUMENT",
        message,
        vec![
            json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}),
            json!({"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message}),
        ],
    )
}

/// 403 CONSUMER_SUSPENDED; like Google's, the message quotes the key.
pub fn key_suspended(key: &str) -> Value {
    error(
        403,
        "PERMISSION_DENIED",
        &format!("Permission denied: Consumer 'api_key:{key}' has been suspended."),
        vec![json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "CONSUMER_SUSPENDED",
            "domain": "googleapis.com",
            "metadata": {"consumer": "projects/123456789012", "service": "generativelanguage.googleapis.com"}})],
    )
}

/// 403 for a request with no key.
pub fn unregistered_caller() -> Value {
    error(
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        Vec::new(),
    )
}

/// 404 for a model that does not exist or does not support the method.
pub fn model_not_found(model: &str, method: &str) -> Value {
    error(
        404,
        "NOT_FOUND",
        &format!(
            "models/{model} is not found for API version v1beta, or is not supported for {method}. \
             Call ListModels to see the list of available models and their supported methods."
        ),
        Vec::new(),
    )
}

/// 400 for a body that is not JSON or has an unknown field.
pub fn invalid_payload(detail: &str, field: Option<&str>) -> Value {
    let details = match field {
        Some(field) => vec![json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{
            "description": format!("Invalid JSON payload received. Unknown name \"{field}\": Cannot find field.")}]})],
        None => Vec::new(),
    };
    error(400, "INVALID_ARGUMENT", &format!("Invalid JSON payload received. {detail}"), details)
}

/// 400 for a request that parses but is wrong.
pub fn invalid_argument(message: &str) -> Value {
    error(400, "INVALID_ARGUMENT", message, Vec::new())
}

/// Words in every `text` part of a `contents` array (the fake's token count).
pub fn count_tokens(contents: &Value) -> u64 {
    let mut count = 0;
    for content in contents.as_array().into_iter().flatten() {
        for part in content.get("parts").and_then(Value::as_array).into_iter().flatten() {
            if let Some(text) = part.get("text").and_then(Value::as_str) {
                count += text.split_whitespace().count().max(1) as u64;
            } else {
                count += 258; // what Google charges for an image
            }
        }
    }
    count
}

/// The last user text of a request, for the echo reply.
pub fn last_user_text(contents: &Value) -> String {
    contents
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .filter(|c| c.get("role").and_then(Value::as_str).unwrap_or("user") == "user")
        .flat_map(|c| c.get("parts").and_then(Value::as_array).cloned().unwrap_or_default())
        .find_map(|p| p.get("text").and_then(Value::as_str).map(String::from))
        .unwrap_or_default()
}

/// One chunk (or the whole) of a generate reply.
pub fn generate_chunk(model: &str, text: &str, last: Option<(u64, u64)>, response_id: &str) -> Value {
    let mut candidate = json!({"content": {"parts": [{"text": text}], "role": "model"}, "index": 0});
    let mut value = json!({"candidates": [], "modelVersion": model, "responseId": response_id});
    if let Some((prompt, completion)) = last {
        candidate["finishReason"] = json!("STOP");
        value["usageMetadata"] = json!({
            "promptTokenCount": prompt,
            "candidatesTokenCount": completion,
            "totalTokenCount": prompt + completion,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]
        });
    }
    value["candidates"] = json!([candidate]);
    value
}

/// A deterministic unit-ish vector for `text`.
pub fn embedding(text: &str, dimensions: usize) -> Vec<f64> {
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        state = (state ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
    }
    (0..dimensions)
        .map(|i| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407 ^ i as u64);
            ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .map(|v| (v * 1e6).round() / 1e6 / (dimensions as f64).sqrt())
        .collect()
}
