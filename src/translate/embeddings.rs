//! `/v1/embeddings` ⇄ `batchEmbedContents`, and Google's model list as
//! OpenAI's.

use super::{TranslateError, model_id};
use serde_json::{Value, json};

/// What the embeddings route needs.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingsRequest {
    /// Gemini model id.
    pub model: String,
    /// The `batchEmbedContents` body.
    pub body: Value,
    /// `encoding_format: base64`.
    pub base64: bool,
    /// A rough token count of the input (Gemini does not report one).
    pub prompt_tokens: u64,
}

/// Translates an embeddings request.
pub fn embeddings_request(request: &Value) -> Result<EmbeddingsRequest, TranslateError> {
    let model = match request.get("model") {
        Some(Value::String(model)) if !model.trim().is_empty() => model_id(model.trim()).to_string(),
        _ => return Err(TranslateError::invalid("model", "`model` is required and must be a string")),
    };
    let inputs: Vec<&str> = match request.get("input") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) if !many.is_empty() && many.iter().all(Value::is_string) => {
            many.iter().filter_map(Value::as_str).collect()
        }
        Some(Value::Array(many)) if !many.is_empty() => {
            return Err(TranslateError::invalid("input", "token arrays are not supported; send text")
                .with_code("unsupported_parameter"));
        }
        _ => return Err(TranslateError::invalid("input", "`input` must be a string or a non-empty array of strings")),
    };
    if inputs.len() > 100 {
        return Err(TranslateError::invalid("input", "at most 100 inputs per request"));
    }
    let dimensions = match request.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|d| (1..=3072).contains(&d)) => n.as_u64(),
        Some(_) => return Err(TranslateError::invalid("dimensions", "`dimensions` must be an integer from 1 to 3072")),
    };
    let base64 = match request.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => return Err(TranslateError::invalid("encoding_format", "`encoding_format` must be float or base64")),
    };
    let requests: Vec<Value> = inputs
        .iter()
        .map(|text| {
            let mut one = json!({"model": format!("models/{model}"), "content": {"parts": [{"text": text}]}});
            if let Some(dimensions) = dimensions {
                one["outputDimensionality"] = json!(dimensions);
            }
            one
        })
        .collect();
    let prompt_tokens = inputs.iter().map(|t| (t.len() as u64).div_ceil(4).max(1)).sum();
    Ok(EmbeddingsRequest { model, body: json!({ "requests": requests }), base64, prompt_tokens })
}

/// Translates `batchEmbedContents`' reply.
pub fn embeddings_response(reply: &Value, request: &EmbeddingsRequest) -> Value {
    let data: Vec<Value> = reply
        .get("embeddings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, embedding)| {
            let values: Vec<f64> = embedding
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_f64)
                .collect();
            let encoded = if request.base64 {
                let bytes: Vec<u8> = values.iter().flat_map(|v| (*v as f32).to_le_bytes()).collect();
                json!(base64_encode(&bytes))
            } else {
                json!(values)
            };
            json!({"object": "embedding", "index": index, "embedding": encoded})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": request.model,
        "usage": {"prompt_tokens": request.prompt_tokens, "total_tokens": request.prompt_tokens}
    })
}

/// Standard base64 (what OpenAI's `encoding_format: base64` means).
fn base64_encode(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(TABLE[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One OpenAI model object from a Google `Model`.
pub fn model_object(google: &Value) -> Option<Value> {
    let name = google.get("name").and_then(Value::as_str)?;
    Some(json!({"id": model_id(name), "object": "model", "created": 0, "owned_by": "google"}))
}

/// The OpenAI model list from Google's models.
pub fn models_list(google: &[Value]) -> Value {
    json!({"object": "list", "data": google.iter().filter_map(model_object).collect::<Vec<_>>()})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_and_array_inputs_with_dimensions() {
        let one = embeddings_request(&json!({"model": "models/gemini-embedding-001", "input": "hi", "dimensions": 8}))
            .unwrap();
        assert_eq!(one.model, "gemini-embedding-001");
        assert_eq!(one.body["requests"][0]["outputDimensionality"], 8);
        assert_eq!(one.body["requests"][0]["model"], "models/gemini-embedding-001");
        let many = embeddings_request(&json!({"model": "m", "input": ["a", "b"]})).unwrap();
        assert_eq!(many.body["requests"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn bad_inputs_name_the_parameter() {
        let param = |v: Value| embeddings_request(&v).unwrap_err().param.unwrap();
        assert_eq!(param(json!({"input": "x"})), "model");
        assert_eq!(param(json!({"model": "m", "input": [[1, 2]]})), "input");
        assert_eq!(param(json!({"model": "m", "input": []})), "input");
        assert_eq!(param(json!({"model": "m", "input": "x", "dimensions": 0})), "dimensions");
        assert_eq!(param(json!({"model": "m", "input": "x", "encoding_format": "hex"})), "encoding_format");
    }

    #[test]
    fn float_and_base64_outputs() {
        let request = embeddings_request(&json!({"model": "m", "input": ["a"], "encoding_format": "base64"})).unwrap();
        let reply = json!({"embeddings": [{"values": [1.0, -2.0]}]});
        let out = embeddings_response(&reply, &request);
        // 1.0f32 = 00 00 80 3f, -2.0f32 = 00 00 00 c0 → base64 "AACAPwAAAMA="
        assert_eq!(out["data"][0]["embedding"], "AACAPwAAAMA=");
        assert_eq!(out["object"], "list");
        let floats = embeddings_request(&json!({"model": "m", "input": "a"})).unwrap();
        assert_eq!(embeddings_response(&reply, &floats)["data"][0]["embedding"], json!([1.0, -2.0]));
        assert_eq!(base64_encode(b"ab"), "YWI=");
    }

    #[test]
    fn models_become_openai_models() {
        let list = models_list(&[json!({"name": "models/gemini-2.5-pro"}), json!({"bad": 1})]);
        assert_eq!(
            list["data"],
            json!([{"id": "gemini-2.5-pro", "object": "model", "created": 0, "owned_by": "google"}])
        );
    }
}
