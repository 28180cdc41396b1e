//! JSON Schema as OpenAI clients write it, cleaned into the OpenAPI subset
//! Gemini's `parameters` accepts: unknown keywords dropped, `const` as a
//! one-value `enum`, `["T","null"]` types as `nullable`, local `$ref`s inlined.

use serde_json::{Map, Value};

/// Keywords Gemini's Schema understands; everything else is dropped.
const KEPT: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// String formats Gemini accepts.
const STRING_FORMATS: &[&str] = &["enum", "date-time"];

/// How deep `$ref`s are followed before giving up (recursive schemas).
const MAX_REF_DEPTH: usize = 8;

/// Cleans `schema` for a function declaration's `parameters`.
pub fn clean_schema(schema: &Value) -> Value {
    let defs = schema.get("$defs").or_else(|| schema.get("definitions")).cloned().unwrap_or(Value::Null);
    clean(schema, &defs, 0)
}

fn clean(schema: &Value, defs: &Value, depth: usize) -> Value {
    let Some(object) = schema.as_object() else { return schema.clone() };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return match defs.get(name) {
            Some(target) if depth < MAX_REF_DEPTH => clean(target, defs, depth + 1),
            _ => serde_json::json!({"type": "object"}),
        };
    }
    let mut out = Map::new();
    for (key, value) in object {
        match key.as_str() {
            "type" => match value {
                Value::Array(types) => {
                    let non_null: Vec<&Value> = types.iter().filter(|t| t.as_str() != Some("null")).collect();
                    if non_null.len() < types.len() {
                        out.insert("nullable".into(), Value::Bool(true));
                    }
                    if let Some(first) = non_null.first() {
                        out.insert("type".into(), (*first).clone());
                    }
                }
                other => {
                    out.insert("type".into(), other.clone());
                }
            },
            "const" => {
                out.insert("enum".into(), Value::Array(vec![value.clone()]));
            }
            "format" => {
                let is_string = object.get("type").and_then(Value::as_str) == Some("string");
                if !is_string || value.as_str().is_some_and(|f| STRING_FORMATS.contains(&f)) {
                    out.insert(key.clone(), value.clone());
                }
            }
            "properties" => {
                let cleaned: Map<String, Value> = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, property)| (name.clone(), clean(property, defs, depth)))
                    .collect();
                out.insert(key.clone(), Value::Object(cleaned));
            }
            "items" => {
                out.insert(key.clone(), clean(value, defs, depth));
            }
            "anyOf" | "oneOf" => {
                let cleaned = value.as_array().into_iter().flatten().map(|s| clean(s, defs, depth)).collect();
                out.insert("anyOf".into(), Value::Array(cleaned));
            }
            "enum" => {
                // Gemini's enums are strings.
                let values = value.as_array().into_iter().flatten().map(|v| match v {
                    Value::String(_) => v.clone(),
                    other => Value::String(other.to_string()),
                });
                out.insert(key.clone(), Value::Array(values.collect()));
            }
            _ if KEPT.contains(&key.as_str()) => {
                out.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drops_what_gemini_rejects_and_keeps_the_rest() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "strict": true,
            "properties": {
                "city": {"type": "string", "description": "City", "format": "hostname", "examples": ["x"]},
                "when": {"type": "string", "format": "date-time"},
                "unit": {"type": ["string", "null"], "enum": ["c", "f"]},
                "mode": {"const": "fast"},
                "count": {"type": "integer", "minimum": 1, "enum": [1, 2]},
                "tags": {"type": "array", "items": {"type": "string", "additionalProperties": false}}
            },
            "required": ["city"]
        });
        let cleaned = clean_schema(&schema);
        assert_eq!(
            cleaned,
            json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City"},
                    "when": {"type": "string", "format": "date-time"},
                    "unit": {"type": "string", "nullable": true, "enum": ["c", "f"]},
                    "mode": {"enum": ["fast"]},
                    "count": {"type": "integer", "minimum": 1, "enum": ["1", "2"]},
                    "tags": {"type": "array", "items": {"type": "string"}}
                },
                "required": ["city"]
            })
        );
    }

    #[test]
    fn local_refs_are_inlined_and_recursion_is_bounded() {
        let schema = json!({
            "type": "object",
            "properties": {"node": {"$ref": "#/$defs/Node"}},
            "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}
        });
        let cleaned = clean_schema(&schema);
        assert_eq!(cleaned["properties"]["node"]["properties"]["next"]["type"], "object");
        assert!(cleaned.get("$defs").is_none());
    }
}
