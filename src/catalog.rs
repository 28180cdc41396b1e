//! The models this gemgate serves under which names: an allow and a deny list
//! for the whole proxy, aliases (`gpt-4o` → `gemini-2.5-flash`), and the
//! suffix variants users of other key pools rely on: `-search` adds Google
//! Search grounding, `-nothinking` turns thinking off (or to the least the
//! model allows), `-thinking` returns thoughts. Pure: names and JSON in,
//! names and JSON out.

use crate::config::CatalogConfig;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use wildmatch::WildMatch;

/// A suffix variant of a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `-search`: the Google Search tool is added.
    Search,
    /// `-nothinking`: the least thinking the model allows.
    NoThinking,
    /// `-thinking`: thoughts are included in the reply.
    Thinking,
}

const SUFFIXES: [(&str, Variant); 3] =
    [("-search", Variant::Search), ("-nothinking", Variant::NoThinking), ("-thinking", Variant::Thinking)];

/// What a requested model name means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The Gemini model to call.
    pub model: String,
    /// The variant to apply to the request, if any.
    pub variant: Option<Variant>,
}

/// A model the operator does not serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotServed(pub String);

/// The served models and their names.
#[derive(Debug, Default)]
pub struct Catalog {
    allow: Vec<WildMatch>,
    deny: Vec<WildMatch>,
    aliases: BTreeMap<String, String>,
    variants: bool,
}

impl Catalog {
    /// The catalog `[catalog]` describes.
    pub fn new(config: &CatalogConfig) -> Self {
        let patterns = |list: &[String]| list.iter().map(|p| WildMatch::new(p)).collect();
        Self {
            allow: patterns(&config.allow),
            deny: patterns(&config.deny),
            aliases: config.aliases.clone(),
            variants: config.variants,
        }
    }

    /// Whether the catalog changes nothing (no list, no alias, no variants).
    pub fn is_plain(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty() && self.aliases.is_empty() && !self.variants
    }

    /// Whether the Gemini model `model` is served (the allow list, when
    /// there is one, names it and the deny list does not).
    pub fn serves(&self, model: &str) -> bool {
        let model = model.trim_start_matches("models/");
        (self.allow.is_empty() || self.allow.iter().any(|p| p.matches(model)))
            && !self.deny.iter().any(|p| p.matches(model))
    }

    /// What `name` means: an alias, else a model with a variant suffix,
    /// else the model itself; refused when the model is not served.
    pub fn resolve(&self, name: &str) -> Result<Resolved, NotServed> {
        let name = name.trim_start_matches("models/");
        let (base, variant) = match self.aliases.get(name) {
            Some(target) => (target.as_str(), None),
            None => self.split_variant(name),
        };
        let model = self.aliases.get(base).map_or(base, String::as_str).trim_start_matches("models/");
        if self.serves(model) {
            Ok(Resolved { model: model.to_string(), variant })
        } else {
            Err(NotServed(name.to_string()))
        }
    }

    fn split_variant<'a>(&self, name: &'a str) -> (&'a str, Option<Variant>) {
        if self.variants {
            for (suffix, variant) in SUFFIXES {
                if let Some(base) = name.strip_suffix(suffix).filter(|b| !b.is_empty()) {
                    return (base, Some(variant));
                }
            }
        }
        (name, None)
    }
}

impl Catalog {
    /// Rewrites one page of Google's `models` list: models not served are
    /// left out, each generating model is followed by its variants, and the
    /// last page (no `nextPageToken`) ends with the aliases.
    pub fn rewrite_google_page(&self, page: &mut Value) {
        let last = page.get("nextPageToken").and_then(Value::as_str).is_none_or(str::is_empty);
        let Some(models) = page.get_mut("models").and_then(Value::as_array_mut) else { return };
        let mut out = Vec::with_capacity(models.len());
        for model in models.drain(..) {
            let Some(name) =
                model.get("name").and_then(Value::as_str).map(|n| n.trim_start_matches("models/").to_string())
            else {
                continue;
            };
            if !self.serves(&name) {
                continue;
            }
            let variants = if self.variants && generates(&model) { SUFFIXES.len() } else { 0 };
            out.push(model.clone());
            for (suffix, _) in &SUFFIXES[..variants] {
                out.push(renamed(&model, &format!("{name}{suffix}")));
            }
        }
        if last {
            for (alias, target) in self.aliases.iter().filter(|(_, target)| self.serves(target)) {
                let model = out
                    .iter()
                    .find(|m| m.get("name").and_then(Value::as_str) == Some(&format!("models/{target}")))
                    .cloned()
                    .unwrap_or_else(|| json!({"supportedGenerationMethods": ["generateContent", "countTokens"]}));
                let mut entry = renamed(&model, alias);
                entry["description"] = json!(format!("{alias}: another name for {target} on this gemgate"));
                out.push(entry);
            }
        }
        *models = out;
    }
}

/// Whether Google's model object says it generates content.
pub fn generates(model: &Value) -> bool {
    model
        .get("supportedGenerationMethods")
        .and_then(Value::as_array)
        .is_some_and(|methods| methods.iter().any(|m| m == "generateContent"))
}

fn renamed(model: &Value, name: &str) -> Value {
    let mut entry = model.clone();
    entry["name"] = json!(format!("models/{name}"));
    entry["displayName"] = json!(name);
    entry
}

/// Applies `variant` to a `generateContent` body for `model`.
pub fn apply_variant(variant: Variant, model: &str, body: &mut Value) {
    let Some(object) = body.as_object_mut() else { return };
    match variant {
        Variant::Search => {
            let tools = object.entry("tools").or_insert_with(|| json!([]));
            if let Some(tools) = tools.as_array_mut()
                && !tools.iter().any(|tool| tool.get("googleSearch").is_some())
            {
                tools.push(json!({"googleSearch": {}}));
            }
        }
        Variant::NoThinking | Variant::Thinking => {
            let config = object.entry("generationConfig").or_insert_with(|| json!({}));
            let Some(config) = config.as_object_mut() else { return };
            let thinking = config.entry("thinkingConfig").or_insert_with(|| json!({}));
            let Some(thinking) = thinking.as_object_mut() else { return };
            if variant == Variant::Thinking {
                thinking.insert("includeThoughts".into(), json!(true));
            } else {
                // The least thinking the model allows, as `reasoning_effort: none` asks.
                let (field, value) = crate::translate::request::effort_thinking("none", model);
                thinking.remove("thinkingBudget");
                thinking.remove("thinkingLevel");
                thinking.insert(field.into(), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(allow: &[&str], deny: &[&str], aliases: &[(&str, &str)], variants: bool) -> Catalog {
        let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
        Catalog::new(&CatalogConfig {
            allow: strings(allow),
            deny: strings(deny),
            aliases: aliases.iter().map(|(a, t)| (a.to_string(), t.to_string())).collect(),
            variants,
        })
    }

    #[test]
    fn aliases_suffixes_and_lists() {
        let c = catalog(&["gemini-2.5-*"], &["*-lite"], &[("gpt-4o", "gemini-2.5-flash")], true);
        let resolve = |name| c.resolve(name).map(|r| (r.model, r.variant));
        assert_eq!(resolve("gpt-4o"), Ok(("gemini-2.5-flash".into(), None)));
        assert_eq!(resolve("gemini-2.5-pro-search"), Ok(("gemini-2.5-pro".into(), Some(Variant::Search))));
        assert_eq!(
            resolve("models/gemini-2.5-flash-nothinking"),
            Ok(("gemini-2.5-flash".into(), Some(Variant::NoThinking)))
        );
        assert_eq!(resolve("gpt-4o-thinking"), Ok(("gemini-2.5-flash".into(), Some(Variant::Thinking))));
        assert_eq!(resolve("gemini-2.5-flash-lite"), Err(NotServed("gemini-2.5-flash-lite".into())));
        assert_eq!(resolve("gemini-3-pro-preview"), Err(NotServed("gemini-3-pro-preview".into())));
        assert_eq!(resolve("-search"), Err(NotServed("-search".into())), "a bare suffix is no model");
        let plain = catalog(&[], &[], &[], false);
        assert_eq!(plain.resolve("gemini-2.5-pro-search").map(|r| r.model), Ok("gemini-2.5-pro-search".into()));
    }

    #[test]
    fn google_pages_are_rewritten() {
        let c = catalog(&[], &["*-lite"], &[("gpt-4o", "gemini-2.5-flash")], true);
        let model = |name: &str, methods: &[&str]| json!({"name": format!("models/{name}"), "supportedGenerationMethods": methods});
        let mut page = json!({"models": [
            model("gemini-2.5-flash", &["generateContent"]),
            model("gemini-2.5-flash-lite", &["generateContent"]),
            model("gemini-embedding-001", &["embedContent"]),
        ]});
        c.rewrite_google_page(&mut page);
        let names: Vec<&str> = page["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "models/gemini-2.5-flash",
                "models/gemini-2.5-flash-search",
                "models/gemini-2.5-flash-nothinking",
                "models/gemini-2.5-flash-thinking",
                "models/gemini-embedding-001",
                "models/gpt-4o"
            ]
        );
        let mut first = json!({"models": [model("gemini-2.5-pro", &["generateContent"])], "nextPageToken": "x"});
        c.rewrite_google_page(&mut first);
        assert_eq!(first["models"].as_array().unwrap().len(), 4, "aliases wait for the last page");
    }

    #[test]
    fn variants_change_the_body() {
        let mut body = json!({"contents": [], "tools": [{"functionDeclarations": []}]});
        apply_variant(Variant::Search, "gemini-2.5-flash", &mut body);
        apply_variant(Variant::Search, "gemini-2.5-flash", &mut body);
        assert_eq!(body["tools"], json!([{"functionDeclarations": []}, {"googleSearch": {}}]));
        let mut body = json!({"generationConfig": {"thinkingConfig": {"thinkingLevel": "high"}}});
        apply_variant(Variant::NoThinking, "gemini-2.5-pro", &mut body);
        assert_eq!(body["generationConfig"]["thinkingConfig"], json!({"thinkingBudget": 128}));
        let mut body = json!({});
        apply_variant(Variant::NoThinking, "gemini-3-flash-preview", &mut body);
        assert_eq!(body["generationConfig"]["thinkingConfig"], json!({"thinkingLevel": "minimal"}));
        let mut body = json!({});
        apply_variant(Variant::Thinking, "gemini-2.5-flash", &mut body);
        assert_eq!(body["generationConfig"]["thinkingConfig"], json!({"includeThoughts": true}));
    }
}
