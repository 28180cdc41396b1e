//! JSON Schema as OpenAI clients write it, cleaned into the OpenAPI subset
//! Gemini's `parameters` accepts: unknown keywords dropped, `const` as a
//! one-value `enum`, `["T","null"]` types as `nullable`, local `$ref`s inlined.
//!
//! Inlining is where a small schema can explode (five properties that each
//! `$ref` a definition that does the same, eight levels deep, is 5^8 copies),
//! so the output is bounded: at most [`GROWTH`] times the input's JSON values
//! plus [`SLACK`], and [`SchemaTooLarge`] beyond that.

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

/// The cleaned schema may hold this many times the input's JSON values…
pub const GROWTH: usize = 4;
/// …plus this many, so that small schemas reusing a definition a few times fit.
pub const SLACK: usize = 2_000;

/// A schema whose `$ref`s would expand beyond the bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the schema expands to more than {limit} JSON values when its $refs are inlined")]
pub struct SchemaTooLarge {
    /// The bound that was hit.
    pub limit: usize,
}

/// Cleans `schema` for a function declaration's `parameters`.
pub fn clean_schema(schema: &Value) -> Result<Value, SchemaTooLarge> {
    let defs = schema.get("$defs").or_else(|| schema.get("definitions")).unwrap_or(&Value::Null);
    let limit = count_values(schema).saturating_mul(GROWTH).saturating_add(SLACK);
    let mut budget = Budget { left: limit, limit };
    clean(schema, defs, 0, &mut budget)
}

/// JSON values in `value`, itself included.
fn count_values(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_values).sum(),
        Value::Object(map) => map.values().map(count_values).sum(),
        _ => 0,
    }
}

struct Budget {
    left: usize,
    limit: usize,
}

impl Budget {
    fn spend(&mut self, values: usize) -> Result<(), SchemaTooLarge> {
        self.left = self.left.checked_sub(values).ok_or(SchemaTooLarge { limit: self.limit })?;
        Ok(())
    }
}

fn clean(schema: &Value, defs: &Value, depth: usize, budget: &mut Budget) -> Result<Value, SchemaTooLarge> {
    let Some(object) = schema.as_object() else {
        budget.spend(count_values(schema))?;
        return Ok(schema.clone());
    };
    budget.spend(1)?;
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return match defs.get(name) {
            Some(target) if depth < MAX_REF_DEPTH => clean(target, defs, depth + 1, budget),
            _ => Ok(serde_json::json!({"type": "object"})),
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
                budget.spend(count_values(value))?;
                out.insert("enum".into(), Value::Array(vec![value.clone()]));
            }
            "format" => {
                let is_string = object.get("type").and_then(Value::as_str) == Some("string");
                if !is_string || value.as_str().is_some_and(|f| STRING_FORMATS.contains(&f)) {
                    out.insert(key.clone(), value.clone());
                }
            }
            "properties" => {
                let mut cleaned = Map::new();
                for (name, property) in value.as_object().into_iter().flatten() {
                    cleaned.insert(name.clone(), clean(property, defs, depth, budget)?);
                }
                out.insert(key.clone(), Value::Object(cleaned));
            }
            "items" => {
                out.insert(key.clone(), clean(value, defs, depth, budget)?);
            }
            "anyOf" | "oneOf" => {
                let mut cleaned = Vec::new();
                for schema in value.as_array().into_iter().flatten() {
                    cleaned.push(clean(schema, defs, depth, budget)?);
                }
                out.insert("anyOf".into(), Value::Array(cleaned));
            }
            "enum" => {
                // Gemini's enums are strings.
                let values = value.as_array().into_iter().flatten().map(|v| match v {
                    Value::String(_) => v.clone(),
                    other => Value::String(other.to_string()),
                });
                budget.spend(count_values(value))?;
                out.insert(key.clone(), Value::Array(values.collect()));
            }
            _ if KEPT.contains(&key.as_str()) => {
                budget.spend(count_values(value))?;
                out.insert(key.clone(), value.clone());
            }
            _ => {}
        }
    }
    Ok(Value::Object(out))
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
        let cleaned = clean_schema(&schema).unwrap();
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
        let cleaned = clean_schema(&schema).unwrap();
        assert_eq!(cleaned["properties"]["node"]["properties"]["next"]["type"], "object");
        assert!(cleaned.get("$defs").is_none());
    }

    #[test]
    fn ref_fan_out_is_bounded_by_the_input_size() {
        // Each level refers to the next five times: 5^8 copies if unbounded.
        let mut defs = serde_json::Map::new();
        for level in 0..8 {
            let next = format!("#/$defs/L{}", level + 1);
            let properties: serde_json::Map<String, Value> =
                (0..5).map(|i| (format!("p{i}"), json!({"$ref": next}))).collect();
            defs.insert(format!("L{level}"), json!({"type": "object", "properties": properties}));
        }
        defs.insert("L8".into(), json!({"type": "string"}));
        let schema = json!({"type": "object", "properties": {"root": {"$ref": "#/$defs/L0"}}, "$defs": defs});
        let started = std::time::Instant::now();
        let error = clean_schema(&schema).unwrap_err();
        assert_eq!(error.limit, count_values(&schema) * GROWTH + SLACK);
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
    }

    #[test]
    fn modest_reuse_of_a_definition_fits() {
        let schema = json!({
            "type": "object",
            "properties": {"from": {"$ref": "#/$defs/Place"}, "to": {"$ref": "#/$defs/Place"}, "via": {"$ref": "#/$defs/Place"}},
            "$defs": {"Place": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}}}
        });
        let cleaned = clean_schema(&schema).unwrap();
        assert_eq!(cleaned["properties"]["via"]["properties"]["zip"]["type"], "string");
    }
}
