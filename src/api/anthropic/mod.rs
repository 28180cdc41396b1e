//! The Anthropic Messages API: `/v1/messages` and `/v1/messages/count_tokens`
//! (also under `/anthropic/v1`), for Claude Code and the Anthropic SDKs,
//! served through the same pool by translating to and from Gemini. Claude
//! model names map to Gemini models by `[anthropic.models]`.

pub mod errors;

use super::intake::{Admitted, ClientError, Dialect, check_model, parse_json, resolve_model};
use super::translated::{StreamTranslator, gemini_request, json_response, parse_reply, relay_stream};
use super::{AppState, ServingRules};
use crate::catalog::Variant;
use crate::config::AnthropicConfig;
use crate::dispatch::StreamMode;
use crate::translate::messages::request::{count_tokens_request, messages_request};
use crate::translate::messages::response::message;
use crate::translate::messages::stream::{MessagesStream, PING, error_event};
use crate::translate::model_id;
use poem::http::Method;
use poem::{Request, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use wildmatch::WildMatch;

/// Which Messages endpoint a path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnthropicCall {
    /// `POST messages`
    Messages,
    /// `POST messages/count_tokens`
    CountTokens,
}

/// Whether the path after `/v1/` is the Messages API's.
pub fn is_messages_path(tail: &str) -> bool {
    tail.trim_end_matches('/') == "messages" || tail.starts_with("messages/")
}

/// Claude model names → Gemini models, as `[anthropic.models]` says.
pub struct ModelMap {
    exact: std::collections::HashMap<String, String>,
    /// Patterns, longest first.
    patterns: Vec<(WildMatch, String)>,
}

impl ModelMap {
    /// The map `config` declares.
    pub fn new(config: &AnthropicConfig) -> Self {
        let (patterns, exact): (Vec<_>, Vec<_>) = config.models.iter().partition(|(from, _)| from.contains('*'));
        let mut patterns: Vec<(&String, &String)> = patterns;
        patterns.sort_by_key(|(from, _)| std::cmp::Reverse(from.len()));
        Self {
            exact: exact.into_iter().map(|(from, to)| (from.clone(), to.clone())).collect(),
            patterns: patterns.into_iter().map(|(from, to)| (WildMatch::new(from), to.clone())).collect(),
        }
    }

    /// The Gemini model for the name a client asked for (the name itself
    /// when no entry matches).
    pub fn gemini_model<'a>(&'a self, asked: &'a str) -> &'a str {
        if let Some(model) = self.exact.get(asked) {
            return model;
        }
        self.patterns.iter().find(|(pattern, _)| pattern.matches(asked)).map_or(asked, |(_, model)| model.as_str())
    }
}

/// Anthropic's dialect, translated to and from Gemini.
pub struct Anthropic;

impl Dialect for Anthropic {
    type Call = AnthropicCall;

    fn route(&self, request: &Request) -> Result<AnthropicCall, ClientError> {
        let path = request.uri().path();
        let tail = path.strip_prefix("/anthropic/v1/").or_else(|| path.strip_prefix("/v1/")).unwrap_or_default();
        let call = match tail.trim_end_matches('/') {
            "messages" => AnthropicCall::Messages,
            "messages/count_tokens" => AnthropicCall::CountTokens,
            _ => {
                return Err(ClientError::Route {
                    status: 404,
                    message: format!("Not found: {} {path}", request.method()),
                });
            }
        };
        if request.method() != Method::POST {
            return Err(ClientError::Route {
                status: 405,
                message: format!("Method not allowed: {} {path}", request.method()),
            });
        }
        Ok(call)
    }

    async fn serve(
        &self,
        call: &AnthropicCall,
        admitted: Admitted,
        _request: &Request,
        state: &Arc<AppState>,
    ) -> Result<Response, ClientError> {
        let json = parse_json(&admitted.body)?;
        match call {
            AnthropicCall::Messages => messages(json, &admitted, state).await,
            AnthropicCall::CountTokens => count_tokens(json, &admitted, state).await,
        }
    }

    fn render(&self, _call: Option<&AnthropicCall>, error: ClientError) -> Response {
        errors::render(error)
    }
}

/// The model asked for, and the Gemini model and variant that serve it.
fn resolve(json: &Value, rules: &ServingRules) -> Result<(String, String, Option<Variant>), ClientError> {
    let asked = match json.get("model").and_then(Value::as_str).map(model_id) {
        Some(asked) if !asked.is_empty() => asked.to_string(),
        _ => {
            return Err(ClientError::Translate(crate::translate::TranslateError::invalid(
                "model",
                "model: a model name is required",
            )));
        }
    };
    let resolved = resolve_model(&rules.catalog, rules.anthropic.gemini_model(&asked))?;
    check_model(&resolved.model)?;
    Ok((asked, resolved.model, resolved.variant))
}

async fn messages(json: Value, admitted: &Admitted, state: &Arc<AppState>) -> Result<Response, ClientError> {
    // One view of the rules for the whole request, even across a reload.
    let rules = state.rules.load_full();
    let (asked, model, variant) = resolve(&json, &rules)?;
    let mut request = messages_request(&json, &model)?;
    let mut pass = admitted.pass(&asked, &model).await?;
    pass.session = pass.session.or_else(|| super::session::of_gemini_value(&request.body));
    if rules.reshapes(&pass.client, variant) {
        rules.shape(&pass.client, &model, variant, &mut request.body);
    }
    let (action, mode) = if request.stream {
        ("streamGenerateContent", StreamMode::Sse)
    } else {
        ("generateContent", StreamMode::Whole)
    };
    let proxied = gemini_request(&model, action, &request.body, mode, "messages", pass);
    let reply = state.dispatcher.dispatch(proxied).await?;
    if !request.stream {
        let value = parse_reply(&super::collect_reply(reply.body).await?)?;
        return Ok(json_response(&message(&value, &asked, request.one_call)));
    }
    let translator = MessagesStream::new(&asked).with_one_call(request.one_call);
    Ok(relay_stream(reply.body, translator, super::openai::keepalive_after(&rules)))
}

async fn count_tokens(json: Value, admitted: &Admitted, state: &Arc<AppState>) -> Result<Response, ClientError> {
    let (asked, model, _) = resolve(&json, &state.rules.load())?;
    let body = count_tokens_request(&json, &model)?;
    let pass = admitted.pass(&asked, &model).await?;
    let proxied = gemini_request(&model, "countTokens", &body, StreamMode::Whole, "messages.count_tokens", pass);
    let reply = state.dispatcher.dispatch(proxied).await?;
    let value = parse_reply(&super::collect_reply(reply.body).await?)?;
    let tokens = value.get("totalTokens").and_then(Value::as_u64).unwrap_or(0);
    Ok(json_response(&json!({ "input_tokens": tokens })))
}

impl StreamTranslator for MessagesStream {
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        MessagesStream::push(self, bytes)
    }

    fn finish(&mut self) -> Vec<String> {
        MessagesStream::finish(self)
    }

    fn cut(&mut self, why: &str) -> Vec<String> {
        let mut events = Vec::new();
        self.fail("api_error", why, &mut events);
        if events.is_empty() { vec![error_event("api_error", why)] } else { events }
    }

    fn keepalive(&self) -> Option<&'static str> {
        Some(PING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_names_map_by_family_and_gemini_names_pass() {
        let map = ModelMap::new(&AnthropicConfig::default());
        assert_eq!(map.gemini_model("claude-sonnet-4-5-20250929"), "gemini-2.5-flash");
        assert_eq!(map.gemini_model("claude-opus-4-1"), "gemini-2.5-pro");
        assert_eq!(map.gemini_model("claude-haiku-4-5-20251001"), "gemini-2.5-flash-lite");
        assert_eq!(map.gemini_model("gemini-3-pro-preview"), "gemini-3-pro-preview");
        let mut config = AnthropicConfig::default();
        config.models.insert("claude-sonnet-4-5".into(), "gemini-3-pro-preview".into());
        config.models.insert("claude*".into(), "gemini-2.5-flash-lite".into());
        let map = ModelMap::new(&config);
        assert_eq!(map.gemini_model("claude-sonnet-4-5"), "gemini-3-pro-preview", "an exact name wins");
        assert_eq!(map.gemini_model("claude-sonnet-5"), "gemini-2.5-flash", "then the longest pattern");
        assert_eq!(map.gemini_model("claude-instant"), "gemini-2.5-flash-lite");
        assert!(is_messages_path("messages") && is_messages_path("messages/count_tokens"));
        assert!(!is_messages_path("messagesx") && !is_messages_path("models"));
    }
}
