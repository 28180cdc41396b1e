//! Request shaping an operator sets for every generate call (`[shaping]`),
//! or for one client (`[shaping.clients.NAME]`): default thinking when the
//! client set none, a system prompt injected as the system instruction or
//! around the last user turn, and default safety settings when the client set
//! none. Pure: a Gemini body in, the same body shaped.

use crate::config::{PromptPosition, ShapingConfig};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

/// The global shaping and each client's (its own fields over the global ones).
#[derive(Debug, Default)]
pub struct Shaping {
    global: ShapingConfig,
    clients: HashMap<String, ShapingConfig>,
}

impl Shaping {
    /// The shaping `config` declares.
    pub fn new(config: &ShapingConfig) -> Self {
        let global = ShapingConfig { clients: Default::default(), ..config.clone() };
        let clients = config.clients.iter().map(|(name, own)| (name.clone(), merged(&global, own))).collect();
        Self { global, clients }
    }

    /// The shaping for `client`.
    pub fn of(&self, client: &str) -> &ShapingConfig {
        self.clients.get(client).unwrap_or(&self.global)
    }
}

/// A client's shaping: each field it sets replaces the global one.
fn merged(global: &ShapingConfig, own: &ShapingConfig) -> ShapingConfig {
    let (prompt, position) = if own.system_prompt.is_empty() {
        (global.system_prompt.clone(), global.system_prompt_position)
    } else {
        (own.system_prompt.clone(), own.system_prompt_position)
    };
    ShapingConfig {
        thinking_budget: own.thinking_budget.or(global.thinking_budget),
        thinking_level: own.thinking_level.clone().or_else(|| global.thinking_level.clone()),
        include_thoughts: own.include_thoughts.or(global.include_thoughts),
        system_prompt: prompt,
        system_prompt_position: position,
        safety_settings: if own.safety_settings.is_empty() {
            global.safety_settings.clone()
        } else {
            own.safety_settings.clone()
        },
        clients: Default::default(),
    }
}

/// Whether `config` shapes anything (bodies are left untouched otherwise).
pub fn shapes(config: &ShapingConfig) -> bool {
    config.thinking_budget.is_some()
        || config.thinking_level.is_some()
        || config.include_thoughts.is_some()
        || !config.system_prompt.is_empty()
        || !config.safety_settings.is_empty()
}

/// Shapes a `generateContent` body for `model`.
pub fn shape(config: &ShapingConfig, model: &str, body: &mut Value) {
    let Some(object) = body.as_object_mut() else { return };
    shape_thinking(config, model, object);
    if !config.system_prompt.is_empty() {
        inject_prompt(&config.system_prompt, config.system_prompt_position, object);
    }
    if !config.safety_settings.is_empty() && !object.contains_key("safetySettings") {
        object.insert("safetySettings".into(), Value::Array(config.safety_settings.clone()));
    }
}

fn shape_thinking(config: &ShapingConfig, model: &str, object: &mut Map<String, Value>) {
    let gemini3 = model.starts_with("gemini-3");
    let default = match (gemini3, &config.thinking_level, config.thinking_budget) {
        (true, Some(level), _) => Some(("thinkingLevel", json!(level))),
        (_, _, Some(budget)) => Some(("thinkingBudget", json!(budget))),
        (false, Some(_), None) | (_, None, None) => None,
    };
    if default.is_none() && config.include_thoughts.is_none() {
        return;
    }
    let generation = object.entry("generationConfig").or_insert_with(|| json!({}));
    let Some(generation) = generation.as_object_mut() else { return };
    let thinking = generation.entry("thinkingConfig").or_insert_with(|| json!({}));
    let Some(thinking) = thinking.as_object_mut() else { return };
    let client_set_depth = thinking.contains_key("thinkingBudget") || thinking.contains_key("thinkingLevel");
    if let Some((field, value)) = default
        && !client_set_depth
    {
        thinking.insert(field.into(), value);
    }
    if let Some(include) = config.include_thoughts {
        thinking.entry("includeThoughts").or_insert(json!(include));
    }
    if thinking.is_empty() {
        generation.remove("thinkingConfig");
    }
}

fn inject_prompt(prompt: &str, position: PromptPosition, object: &mut Map<String, Value>) {
    let part = json!({"text": prompt});
    if position == PromptPosition::System {
        let instruction = object.entry("systemInstruction").or_insert_with(|| json!({"parts": []}));
        if let Some(parts) = instruction.get_mut("parts").and_then(Value::as_array_mut) {
            parts.insert(0, part);
        }
        return;
    }
    let Some(contents) = object.get_mut("contents").and_then(Value::as_array_mut) else { return };
    let last_user =
        contents.iter_mut().rev().find(|c| c.get("role").and_then(Value::as_str).is_none_or(|r| r == "user"));
    if let Some(parts) = last_user.and_then(|c| c.get_mut("parts")).and_then(Value::as_array_mut) {
        match position {
            PromptPosition::Prefix => parts.insert(0, part),
            _ => parts.push(part),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(edit: impl FnOnce(&mut ShapingConfig)) -> ShapingConfig {
        let mut config = ShapingConfig::default();
        edit(&mut config);
        config
    }

    #[test]
    fn thinking_defaults_fill_only_what_the_client_left_unset() {
        let shaping = config(|c| {
            c.thinking_budget = Some(2048);
            c.thinking_level = Some("low".into());
            c.include_thoughts = Some(true);
        });
        let mut body = json!({"contents": []});
        shape(&shaping, "gemini-2.5-flash", &mut body);
        assert_eq!(
            body["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": 2048, "includeThoughts": true})
        );
        let mut body = json!({"contents": []});
        shape(&shaping, "gemini-3-pro-preview", &mut body);
        assert_eq!(
            body["generationConfig"]["thinkingConfig"],
            json!({"thinkingLevel": "low", "includeThoughts": true})
        );
        let mut body = json!({"generationConfig": {"thinkingConfig": {"thinkingBudget": 0, "includeThoughts": false}}});
        shape(&shaping, "gemini-2.5-flash", &mut body);
        assert_eq!(body["generationConfig"]["thinkingConfig"], json!({"thinkingBudget": 0, "includeThoughts": false}));
    }

    #[test]
    fn prompts_go_where_they_are_told_and_safety_defaults_when_unset() {
        let turns = json!({"contents": [
            {"role": "user", "parts": [{"text": "a"}]},
            {"role": "model", "parts": [{"text": "b"}]},
            {"role": "user", "parts": [{"text": "c"}]}
        ], "systemInstruction": {"parts": [{"text": "client's"}]}});
        let mut body = turns.clone();
        shape(&config(|c| c.system_prompt = "be brief".into()), "m", &mut body);
        assert_eq!(body["systemInstruction"]["parts"], json!([{"text": "be brief"}, {"text": "client's"}]));
        let mut body = turns.clone();
        let prefix = config(|c| {
            c.system_prompt = "P".into();
            c.system_prompt_position = PromptPosition::Prefix;
        });
        shape(&prefix, "m", &mut body);
        assert_eq!(body["contents"][2]["parts"], json!([{"text": "P"}, {"text": "c"}]));
        assert_eq!(body["contents"][0]["parts"], json!([{"text": "a"}]));
        let mut body = turns.clone();
        let suffix = config(|c| {
            c.system_prompt = "S".into();
            c.system_prompt_position = PromptPosition::Suffix;
        });
        shape(&suffix, "m", &mut body);
        assert_eq!(body["contents"][2]["parts"], json!([{"text": "c"}, {"text": "S"}]));
        let safety = json!({"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"});
        let with_safety = config(|c| c.safety_settings = vec![safety.clone()]);
        let mut body = json!({"contents": []});
        shape(&with_safety, "m", &mut body);
        assert_eq!(body["safetySettings"], json!([safety]));
        let mut body = json!({"contents": [], "safetySettings": []});
        shape(&with_safety, "m", &mut body);
        assert_eq!(body["safetySettings"], json!([]), "the client's own settings stay");
        assert!(!shapes(&ShapingConfig::default()));
    }

    #[test]
    fn a_clients_own_fields_replace_the_global_ones() {
        let shaping = Shaping::new(&config(|c| {
            c.thinking_budget = Some(512);
            c.system_prompt = "house rules".into();
            c.clients.insert(
                "alice".into(),
                config(|own| {
                    own.system_prompt = "be brief".into();
                    own.system_prompt_position = PromptPosition::Suffix;
                }),
            );
        }));
        let alice = shaping.of("alice");
        assert_eq!((alice.thinking_budget, alice.system_prompt.as_str()), (Some(512), "be brief"));
        assert_eq!(alice.system_prompt_position, PromptPosition::Suffix);
        assert_eq!(shaping.of("bob").system_prompt, "house rules");
    }
}
